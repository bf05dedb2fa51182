//! Parsing: the attribute's (absent) arguments and the item it is written on.
//!
//! Like tracing-attributes' `MaybeItemFn`, the function body is not parsed into statements: it is
//! kept as tokens and re-emitted unchanged (with its original spans) inside the route scope.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::ToTokens;
use syn::parse::{Parse, ParseStream};
use syn::token::Brace;
use syn::{Attribute, Signature, Token, Visibility};

/// Which attribute is being expanded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RouteAttr {
    /// `#[writer]`
    Writer,
    /// `#[read_replica]`
    ReadReplica,
}

impl RouteAttr {
    /// The attribute as the user writes it, for error messages: "`#[writer]`".
    pub(crate) fn display(self) -> &'static str {
        match self {
            RouteAttr::Writer => "`#[writer]`",
            RouteAttr::ReadReplica => "`#[read_replica]`",
        }
    }

    /// The `rds_balancer::__private::Route` variant the scope is set to.
    pub(crate) fn variant(self) -> proc_macro2::Ident {
        let name = match self {
            RouteAttr::Writer => "Writer",
            RouteAttr::ReadReplica => "Reader",
        };
        proc_macro2::Ident::new(name, Span::call_site())
    }
}

/// Checks that the attribute was written without arguments.
///
/// `#[writer()]` (empty parentheses) is accepted; `#[writer(anything)]` is an error spanned on
/// the arguments. (`#[writer = "x"]` never reaches the macro: rustc rejects key-value syntax for
/// attribute macros itself.)
pub(crate) fn check_no_args(attr: RouteAttr, args: TokenStream) -> syn::Result<()> {
    if args.is_empty() {
        return Ok(());
    }
    Err(syn::Error::new_spanned(
        args,
        format!(
            "{} takes no arguments; write it as {}",
            attr.display(),
            attr.display()
        ),
    ))
}

/// A function, with or without a body (a trait method declaration has none).
pub(crate) struct MaybeItemFn {
    pub(crate) outer_attrs: Vec<Attribute>,
    pub(crate) vis: Visibility,
    pub(crate) sig: Signature,
    pub(crate) body: FnBody,
}

/// What follows the signature.
pub(crate) enum FnBody {
    /// `{ #![inner] stmts }`
    Block(Body),
    /// `;`: a method declaration in a trait.
    Semi(Token![;]),
}

/// A function body, kept as tokens.
pub(crate) struct Body {
    pub(crate) brace_token: Brace,
    pub(crate) inner_attrs: Vec<Attribute>,
    pub(crate) stmts: TokenStream,
}

impl Body {
    /// The body without its inner attributes, as a braced block with the original brace spans.
    pub(crate) fn block(&self) -> TokenStream {
        let mut tokens = TokenStream::new();
        self.brace_token
            .surround(&mut tokens, |tokens| self.stmts.to_tokens(tokens));
        tokens
    }
}

impl Parse for MaybeItemFn {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let outer_attrs = input.call(Attribute::parse_outer)?;
        let vis: Visibility = input.parse()?;
        let sig: Signature = input.parse()?;
        let body = if input.peek(Token![;]) {
            FnBody::Semi(input.parse()?)
        } else {
            let content;
            let brace_token = syn::braced!(content in input);
            let inner_attrs = content.call(Attribute::parse_inner)?;
            let stmts: TokenStream = content.parse()?;
            FnBody::Block(Body {
                brace_token,
                inner_attrs,
                stmts,
            })
        };
        Ok(Self {
            outer_attrs,
            vis,
            sig,
            body,
        })
    }
}

/// The head of an item that is not a function (`struct Foo`, `const X`, `impl`), to span the
/// "not a function" error on rather than on the whole item.
pub(crate) struct ItemHead(pub(crate) TokenStream);

impl Parse for ItemHead {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let _attrs = input.call(Attribute::parse_outer)?;
        let _vis: Visibility = input.parse()?;
        let mut head = TokenStream::new();
        // The keyword, and the item's name when the next token is one.
        if !input.is_empty() {
            let first: TokenTree = input.parse()?;
            let keyword = matches!(first, TokenTree::Ident(_));
            head.extend([first]);
            if keyword && let Ok(name @ TokenTree::Ident(_)) = input.fork().parse::<TokenTree>() {
                head.extend([name]);
            }
        }
        let _rest: TokenStream = input.parse()?;
        Ok(Self(head))
    }
}
