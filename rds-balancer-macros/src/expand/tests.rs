use proc_macro2::{TokenStream, TokenTree};
use quote::quote;

use super::expand;
use crate::attr::RouteAttr;

/// Expands `#[writer]` (or `#[read_replica]`) and renders the result without whitespace (token
/// streams print `>>` and `> >` depending on how they were built).
fn render(attr: RouteAttr, args: TokenStream, item: TokenStream) -> String {
    squash(expand(attr, args, item))
}

fn squash(tokens: TokenStream) -> String {
    tokens.to_string().split_whitespace().collect()
}

fn writer(item: TokenStream) -> String {
    render(RouteAttr::Writer, TokenStream::new(), item)
}

#[test]
fn async_fn_body_runs_in_a_scope_typed_with_the_return_type() {
    let expanded = writer(quote! {
        /// Docs.
        #[inline]
        pub(crate) async fn f(&self, (a, b): (u8, u8)) -> Result<u8, E> { let x = a?; Ok(x + b) }
    });
    let expected = quote! {
        /// Docs.
        #[inline]
        pub(crate) async fn f(&self, (a, b): (u8, u8)) -> Result<u8, E> {
            ::rds_balancer::__private::scoped::<Result<u8, E>, _>(
                ::rds_balancer::__private::Route::Writer,
                async move { let x = a?; Ok(x + b) }
            ).await
        }
    };
    assert_eq!(expanded, squash(expected));
}

#[test]
fn read_replica_uses_the_reader_route() {
    let expanded = render(
        RouteAttr::ReadReplica,
        TokenStream::new(),
        quote!(
            async fn f() {}
        ),
    );
    assert!(
        expanded.contains("::rds_balancer::__private::Route::Reader"),
        "{expanded}"
    );
}

#[test]
fn unit_return_is_named_and_inner_attributes_stay_first() {
    let expanded = writer(quote!(
        async fn f() {
            #![allow(unused)]
            g().await
        }
    ));
    let expected = quote! {
        async fn f() {
            #![allow(unused)]
            ::rds_balancer::__private::scoped::<(), _>(
                ::rds_balancer::__private::Route::Writer,
                async move { g().await }
            ).await
        }
    };
    assert_eq!(expanded, squash(expected));
}

#[test]
fn unnameable_return_types_are_inferred() {
    for item in [
        quote!(
            async fn f() -> impl Display {
                1
            }
        ),
        quote!(
            async fn f() -> Box<impl Display> {
                Box::new(1)
            }
        ),
        quote!(
            async fn f() -> ! {
                loop {}
            }
        ),
    ] {
        let expanded = writer(item);
        assert!(
            expanded.contains("::rds_balancer::__private::scoped(::rds_balancer"),
            "{expanded}"
        );
    }
}

#[test]
fn fn_returning_impl_future_wraps_the_returned_future() {
    let expanded = writer(quote! {
        fn f(&self) -> impl Future<Output = Result<u8, E>> + Send + '_ { async move { Ok(1) } }
    });
    let expected = quote! {
        fn f(&self) -> impl Future<Output = Result<u8, E>> + Send + '_ {
            ::rds_balancer::__private::scoped::<Result<u8, E>, _>(
                ::rds_balancer::__private::Route::Writer,
                { async move { Ok(1) } }
            )
        }
    };
    assert_eq!(expanded, squash(expected));
}

#[test]
fn fn_returning_a_boxed_future_boxes_the_wrapped_future() {
    // What `#[async_trait]` generates for `async fn f(&self) -> u8`.
    let expanded = writer(quote! {
        fn f<'life0, 'async_trait>(&'life0 self)
            -> ::core::pin::Pin<Box<dyn ::core::future::Future<Output = u8> + ::core::marker::Send + 'async_trait>>
        where 'life0: 'async_trait, Self: 'async_trait
        { Box::pin(async move { 1 }) }
    });
    assert!(
        expanded.contains(
            "let__rds_balancer_future:::core::pin::Pin<Box<dyn::core::future::\
Future<Output=u8>+::core::marker::Send+'async_trait>>=\
{Box::pin(asyncmove{1})};::std::boxed::Box::pin\
(::rds_balancer::__private::scoped(::rds_balancer::__private::Route::\
Writer,__rds_balancer_future))"
        ),
        "{expanded}"
    );
    for ret in [
        quote!(Pin<Box<dyn Future<Output = u8> + '_>>),
        quote!(std::pin::Pin<std::boxed::Box<dyn std::future::Future<Output = u8> + Send>>),
        quote!(BoxFuture<'_, u8>),
        quote!(futures::future::LocalBoxFuture<'static, u8>),
    ] {
        let expanded = writer(quote!(fn f() -> #ret { todo() }));
        assert!(expanded.contains("__rds_balancer_future"), "{expanded}");
    }
}

/// The `compile_error!` messages in an expansion, and the rest of it.
fn errors(attr: RouteAttr, args: TokenStream, item: TokenStream) -> (Vec<String>, String) {
    let mut messages = Vec::new();
    let mut rest = Vec::new();
    let mut tokens = expand(attr, args, item).into_iter().peekable();
    while let Some(token) = tokens.next() {
        match &token {
            TokenTree::Ident(ident) if ident == "compile_error" => {
                // syn writes `::core::compile_error! { "message" }`.
                rest.truncate(rest.len().saturating_sub(5));
                let _bang = tokens.next();
                let Some(TokenTree::Group(group)) = tokens.next() else {
                    panic!("compile_error without arguments");
                };
                let message: syn::LitStr = syn::parse2(group.stream()).unwrap();
                messages.push(message.value());
                // `compile_error! { .. }` in braces needs no semicolon; in parentheses it has one.
                if matches!(tokens.peek(), Some(TokenTree::Punct(p)) if p.as_char() == ';') {
                    tokens.next();
                }
            }
            _ => rest.push(token),
        }
    }
    (messages, squash(rest.into_iter().collect()))
}

const NOT_ASYNC: &str =
    "`#[writer]` can only be applied to an `async fn` (or a fn returning a boxed/impl future)";

#[test]
fn misuse_is_an_error_and_the_item_is_kept() {
    let cases = [
        (
            quote!(
                fn f() -> u8 {
                    1
                }
            ),
            NOT_ASYNC,
        ),
        (
            quote!(
                fn f() {}
            ),
            NOT_ASYNC,
        ),
        (
            quote!(
                fn f() -> Pin<Box<u8>> {
                    todo()
                }
            ),
            NOT_ASYNC,
        ),
        (
            quote!(
                pub struct S;
            ),
            NOT_ASYNC,
        ),
        (quote!(impl S {}), NOT_ASYNC),
        (
            quote!(
                const fn f() -> u8 {
                    1
                }
            ),
            "`#[writer]` cannot be applied to a `const fn`",
        ),
        (
            quote!(
                async fn f(&self) -> u8;
            ),
            "`#[writer]` needs a function body to wrap: put it on the method in the `impl` block, \
             not on the trait's declaration",
        ),
    ];
    for (item, message) in cases {
        let (messages, rest) = errors(RouteAttr::Writer, TokenStream::new(), item.clone());
        assert_eq!(messages, [message], "{item}");
        assert_eq!(rest, squash(item));
    }
}

#[test]
fn arguments_are_an_error_and_the_item_is_kept() {
    let item = quote!(
        async fn f() {}
    );
    let (messages, rest) = errors(RouteAttr::ReadReplica, quote!(foo), item.clone());
    assert_eq!(
        messages,
        ["`#[read_replica]` takes no arguments; write it as `#[read_replica]`"]
    );
    assert_eq!(rest, squash(item));

    // Empty parentheses are no arguments.
    let (messages, _) = errors(
        RouteAttr::Writer,
        quote!(),
        quote!(
            async fn f() {}
        ),
    );
    assert!(messages.is_empty());

    // Errors are collected: the arguments and the item.
    let (messages, _) = errors(
        RouteAttr::Writer,
        quote!(a = 1),
        quote!(
            struct S;
        ),
    );
    assert_eq!(messages.len(), 2, "{messages:?}");
}

#[test]
fn plain_fn_blocking_on_its_body_gets_an_attribute_order_hint() {
    // What `#[tokio::main]` written above `#[writer]` hands to it.
    let item = quote! {
        fn main() {
            let body = async {};
            tokio::runtime::Builder::new_multi_thread().build().unwrap().block_on(body)
        }
    };
    let (messages, _) = errors(RouteAttr::Writer, TokenStream::new(), item);
    assert_eq!(
        messages,
        [format!(
            "{NOT_ASYNC}; if an attribute such as `#[tokio::main]` or `#[tokio::test]` made this \
             `async fn` a plain fn, write `#[writer]` above it"
        )]
    );
}
