//! Code generation: the function body runs inside `::rds_balancer::__private::scoped`.
//!
//! Three shapes are recognised from the signature:
//!
//! | shape                                    | new body                                                   |
//! |------------------------------------------|------------------------------------------------------------|
//! | `async fn f(..) -> T`                    | `scoped::<T, _>(route, async move { body }).await`         |
//! | `fn f(..) -> impl Future<Output = T>`    | `scoped::<T, _>(route, { body })`                          |
//! | `fn f(..) -> Pin<Box<dyn Future<..>..>>` | `let fut: Ret = { body }; Box::pin(scoped(route, fut))`    |
//!
//! The turbofish names the output type so that `?` inside the `async` block infers its error
//! type; it is left out when the type cannot be written in a turbofish (`impl Trait`, `!`).
//! The boxed shape is what `#[async_trait]` turns an `async fn` into before this attribute
//! (written on the method, inside the `#[async_trait]` impl or trait) is expanded.

use proc_macro2::{Ident, Span, TokenStream, TokenTree};
use quote::{ToTokens, quote};
use syn::punctuated::Punctuated;
use syn::{GenericArgument, PathArguments, ReturnType, Signature, Token, Type, TypeParamBound};

use crate::attr::{FnBody, ItemHead, MaybeItemFn, RouteAttr, check_no_args};

/// Expands `#[writer]` / `#[read_replica]` written with `args` on `item`.
///
/// On any error the original item is emitted unchanged after the errors, so that the user sees
/// only the attribute's error and not a cascade of "cannot find function" errors.
pub(crate) fn expand(attr: RouteAttr, args: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Vec::new();
    if let Err(error) = check_no_args(attr, args) {
        errors.push(error);
    }
    match syn::parse2::<MaybeItemFn>(item.clone()) {
        Ok(function) => match gen_function(attr, &function) {
            Ok(expanded) if errors.is_empty() => return expanded,
            Ok(_) => {}
            Err(error) => errors.push(error),
        },
        Err(_) => errors.push(not_a_function(attr, &item)),
    }
    let errors = errors.iter().map(syn::Error::to_compile_error);
    quote!(#(#errors)* #item)
}

/// How the function produces its future.
enum Shape<'a> {
    /// `async fn`; the output type when it can be named in a turbofish.
    AsyncFn(Option<TokenStream>),
    /// A plain fn returning `impl Future<Output = T>`; `T` when it can be named.
    ImplFuture(Option<&'a Type>),
    /// A plain fn returning a boxed future (`Pin<Box<dyn Future ..>>`, `BoxFuture`): the
    /// declared return type.
    BoxedFuture(&'a Type),
}

/// Rewrites the function so that its body runs inside the route scope.
fn gen_function(attr: RouteAttr, function: &MaybeItemFn) -> syn::Result<TokenStream> {
    let MaybeItemFn {
        outer_attrs,
        vis,
        sig,
        body,
    } = function;
    let shape = shape(attr, sig, body)?;
    let body = match body {
        FnBody::Block(body) => body,
        FnBody::Semi(semi) => {
            return Err(syn::Error::new_spanned(
                quote!(#sig #semi),
                format!(
                    "{} needs a function body to wrap: put it on the method in the `impl` \
                     block, not on the trait's declaration",
                    attr.display()
                ),
            ));
        }
    };

    let scoped = quote!(::rds_balancer::__private::scoped);
    let variant = attr.variant();
    let route = quote!(::rds_balancer::__private::Route::#variant);
    let block = body.block();
    let wrapped = match shape {
        Shape::AsyncFn(output) => {
            let turbofish = output.map(|output| quote!(::<#output, _>));
            quote!(#scoped #turbofish (#route, async move #block).await)
        }
        Shape::ImplFuture(output) => {
            let turbofish = output.map(|output| quote!(::<#output, _>));
            quote!(#scoped #turbofish (#route, #block))
        }
        Shape::BoxedFuture(ret) => {
            // Binding the body with the declared type first keeps its type-checking exactly as
            // written (the unsizing coercion to `dyn Future` happens there).
            let future = Ident::new("__rds_balancer_future", Span::mixed_site());
            quote! {
                let #future: #ret = #block;
                ::std::boxed::Box::pin(#scoped(#route, #future))
            }
        }
    };

    let inner_attrs = &body.inner_attrs;
    let mut new_body = TokenStream::new();
    body.brace_token.surround(&mut new_body, |tokens| {
        quote!(#(#inner_attrs)* #wrapped).to_tokens(tokens);
    });
    Ok(quote!(#(#outer_attrs)* #vis #sig #new_body))
}

/// Classifies the signature, or explains why the attribute does not apply to it.
fn shape<'a>(attr: RouteAttr, sig: &'a Signature, body: &FnBody) -> syn::Result<Shape<'a>> {
    if let Some(constness) = &sig.constness {
        return Err(syn::Error::new_spanned(
            constness,
            format!("{} cannot be applied to a `const fn`", attr.display()),
        ));
    }
    if sig.asyncness.is_some() {
        let output = match &sig.output {
            ReturnType::Default => Some(quote!(())),
            ReturnType::Type(_, ty) => nameable(ty).then(|| ty.to_token_stream()),
        };
        return Ok(Shape::AsyncFn(output));
    }
    if let ReturnType::Type(_, ty) = &sig.output {
        match future_kind(ty) {
            Some(FutureKind::Impl(output)) => return Ok(Shape::ImplFuture(output)),
            Some(FutureKind::Boxed) => return Ok(Shape::BoxedFuture(ty)),
            None => {}
        }
    }
    // Span from `fn` to the end of the return type (or the closing parenthesis).
    let end = match &sig.output {
        ReturnType::Type(_, ty) => last_span(ty.to_token_stream()),
        ReturnType::Default => None,
    }
    .unwrap_or_else(|| sig.paren_token.span.close());
    let mut message = format!(
        "{} can only be applied to an `async fn` (or a fn returning a boxed/impl future)",
        attr.display()
    );
    // `#[tokio::main]` / `#[tokio::test]` written above this attribute have already turned the
    // `async fn` into a plain fn that blocks on the body.
    if let FnBody::Block(body) = body
        && mentions(&body.stmts, "block_on")
    {
        message.push_str(&format!(
            "; if an attribute such as `#[tokio::main]` or `#[tokio::test]` made this `async fn` \
             a plain fn, write {} above it",
            attr.display()
        ));
    }
    Err(error_between(sig.fn_token.span, end, message))
}

/// Whether `tokens` contain the identifier `name`, at any depth.
fn mentions(tokens: &TokenStream, name: &str) -> bool {
    tokens.clone().into_iter().any(|token| match token {
        TokenTree::Ident(ident) => ident == name,
        TokenTree::Group(group) => mentions(&group.stream(), name),
        _ => false,
    })
}

/// What kind of future a plain fn's return type is.
enum FutureKind<'a> {
    /// `impl Future<Output = T> ..`, with `T` when it can be named in a turbofish.
    Impl(Option<&'a Type>),
    /// `Pin<Box<dyn Future ..>>`, `BoxFuture<'_, T>`, `LocalBoxFuture<'_, T>`.
    Boxed,
}

fn future_kind(ty: &Type) -> Option<FutureKind<'_>> {
    match ty {
        Type::Group(group) => future_kind(&group.elem),
        Type::Paren(paren) => future_kind(&paren.elem),
        Type::ImplTrait(impl_trait) => {
            let output = future_bound_output(&impl_trait.bounds)?;
            Some(FutureKind::Impl(output.filter(|output| nameable(output))))
        }
        Type::Path(path) if path.qself.is_none() => {
            let last = path.path.segments.last()?;
            if last.ident == "BoxFuture" || last.ident == "LocalBoxFuture" {
                return Some(FutureKind::Boxed);
            }
            if last.ident == "Pin"
                && single_type_arg(&last.arguments).is_some_and(is_boxed_dyn_future)
            {
                return Some(FutureKind::Boxed);
            }
            None
        }
        _ => None,
    }
}

/// `Box<dyn Future ..>`
fn is_boxed_dyn_future(ty: &Type) -> bool {
    match ty {
        Type::Group(group) => is_boxed_dyn_future(&group.elem),
        Type::Paren(paren) => is_boxed_dyn_future(&paren.elem),
        Type::Path(path) if path.qself.is_none() => path.path.segments.last().is_some_and(|last| {
            last.ident == "Box"
                && single_type_arg(&last.arguments).is_some_and(|inner| match inner {
                    Type::TraitObject(object) => future_bound_output(&object.bounds).is_some(),
                    _ => false,
                })
        }),
        _ => false,
    }
}

/// The only type argument of `Name<T>`.
fn single_type_arg(arguments: &PathArguments) -> Option<&Type> {
    let PathArguments::AngleBracketed(arguments) = arguments else {
        return None;
    };
    let mut types = arguments.args.iter().filter_map(|argument| match argument {
        GenericArgument::Type(ty) => Some(ty),
        _ => None,
    });
    let ty = types.next()?;
    types.next().is_none().then_some(ty)
}

/// For bounds containing `Future<..>`: `Some(Some(T))` when it says `Output = T`, `Some(None)`
/// when it does not; `None` when no bound is `Future`.
fn future_bound_output(bounds: &Punctuated<TypeParamBound, Token![+]>) -> Option<Option<&Type>> {
    bounds.iter().find_map(|bound| {
        let TypeParamBound::Trait(bound) = bound else {
            return None;
        };
        let last = bound.path.segments.last()?;
        if last.ident != "Future" {
            return None;
        }
        let PathArguments::AngleBracketed(arguments) = &last.arguments else {
            return Some(None);
        };
        Some(arguments.args.iter().find_map(|argument| match argument {
            GenericArgument::AssocType(assoc) if assoc.ident == "Output" => Some(&assoc.ty),
            _ => None,
        }))
    })
}

/// Whether `ty` can be written in a turbofish inside the function body: not when it contains
/// `impl Trait` or `!` (the never type, or a type macro: both left to inference).
fn nameable(ty: &Type) -> bool {
    fn scan(tokens: TokenStream) -> bool {
        tokens.into_iter().all(|token| match token {
            TokenTree::Ident(ident) => ident != "impl",
            TokenTree::Punct(punct) => punct.as_char() != '!',
            TokenTree::Group(group) => scan(group.stream()),
            TokenTree::Literal(_) => true,
        })
    }
    scan(ty.to_token_stream())
}

fn last_span(tokens: TokenStream) -> Option<Span> {
    tokens.into_iter().last().map(|token| match token {
        TokenTree::Group(group) => group.span_close(),
        token => token.span(),
    })
}

/// An error covering the source from `start` to `end` (on stable, `syn::Error::new_spanned`
/// reports the range from its first token to its last).
fn error_between(start: Span, end: Span, message: String) -> syn::Error {
    let mut range = TokenStream::new();
    range.extend([
        TokenTree::Ident(Ident::new("start", start)),
        TokenTree::Ident(Ident::new("end", end)),
    ]);
    syn::Error::new_spanned(range, message)
}

/// The error for an item that is not a function, spanned on its head (`struct Foo`).
fn not_a_function(attr: RouteAttr, item: &TokenStream) -> syn::Error {
    let message = format!(
        "{} can only be applied to an `async fn` (or a fn returning a boxed/impl future)",
        attr.display()
    );
    match syn::parse2::<ItemHead>(item.clone()) {
        Ok(ItemHead(head)) if !head.is_empty() => syn::Error::new_spanned(head, message),
        _ => syn::Error::new(Span::call_site(), message),
    }
}

#[cfg(test)]
mod tests;
