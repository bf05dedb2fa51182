//! Attribute macros for [rds-balancer](https://docs.rs/rds-balancer): `#[writer]` and
//! `#[read_replica]`.
//!
//! Use them through `rds_balancer`, which re-exports them behind its default `macros` feature;
//! the code they generate refers to `::rds_balancer` and does not compile without it.
//!
//! Both wrap the body of an `async fn` (or of a fn returning a boxed or `impl Future`) in a
//! route override scope, the same one `rds_balancer::with_route` sets:
//!
//! ```text
//! #[rds_balancer::writer]
//! async fn place_order(db: &RdsConnection, order: Order) -> Result<i64, DbErr> {
//!     /* body */
//! }
//! // expands to
//! async fn place_order(db: &RdsConnection, order: Order) -> Result<i64, DbErr> {
//!     ::rds_balancer::__private::scoped::<Result<i64, DbErr>, _>(
//!         ::rds_balancer::__private::Route::Writer,
//!         async move { /* body */ },
//!     )
//!     .await
//! }
//! ```
//!
//! (The examples in this crate are not compiled: it cannot depend on `rds_balancer`. The
//! runnable examples are on the re-exports, `rds_balancer::writer` and
//! `rds_balancer::read_replica`, whose docs come before the ones written here.)

mod attr;
mod expand;

use proc_macro::TokenStream;

use crate::attr::RouteAttr;

/// Sends every statement issued while the function runs to the cluster's **writer**.
///
/// The body runs as if wrapped in `rds_balancer::with_route(Route::Writer, async move { body })`:
/// every statement and transaction issued through an `RdsConnection` while the function's future
/// runs, including in the functions it awaits, goes to the writer, whatever the statement
/// classifier would have decided. Use it for read-your-writes (a read that must see a row just
/// written) and for reads that must not lag behind the writer.
///
/// # Precedence
///
/// - Scopes nest and **the innermost wins**: a `#[read_replica]` function called from a
///   `#[writer]` function sends its own statements to a reader, and the writer scope applies
///   again once it returns. `with_route` scopes nest the same way.
/// - **Inside a transaction, the transaction's host wins**: a transaction keeps the host it was
///   opened on, whatever scope its statements run in. A transaction begun under `#[writer]` is
///   opened on the writer.
/// - Otherwise the scope wins over `/*@reader*/` hint comments and the statement classifier.
///
/// # Spawned tasks do not inherit the route
///
/// The scope is a tokio task-local. A task started with `tokio::spawn` (or `spawn_blocking`, a
/// `JoinSet`, ...) inside the function runs **outside** it: its statements are routed as if no
/// scope were set. Wrap the spawned future if it needs the route:
/// `tokio::spawn(rds_balancer::with_route(Route::Writer, async move { .. }))`.
///
/// # Supported functions
///
/// The attribute takes no arguments and applies to:
///
/// - an `async fn`: a free function, an inherent method (`self`, `&self`, `&mut self`), a
///   generic function, an `async fn` in a trait with a default body or in a trait impl. The
///   signature is unchanged; `?` and `return` in the body behave as before.
/// - a method of an `#[async_trait]` impl, or a default method of an `#[async_trait]` trait:
///   write `#[writer]` on the method and `#[async_trait]` on the `impl` / `trait`.
/// - a plain fn returning `impl Future<Output = T>` or a boxed future
///   (`Pin<Box<dyn Future<Output = T> + ..>>`, `BoxFuture<'_, T>`, `LocalBoxFuture<'_, T>`):
///   the future it returns is wrapped.
///
/// It is a compile error on anything else: a non-async fn that does not return a future, a
/// `const fn`, a non-function item, and a trait method declaration without a body (put the
/// attribute on the method in the `impl` instead). Write it **above** attributes that turn an
/// `async fn` into a plain fn, such as `#[tokio::main]` and `#[tokio::test]`.
#[proc_macro_attribute]
pub fn writer(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::expand(RouteAttr::Writer, args.into(), item.into()).into()
}

/// Sends every statement issued while the function runs to a **read replica**.
///
/// The body runs as if wrapped in `rds_balancer::with_route(Route::Reader, async move { body })`:
/// every statement issued through an `RdsConnection` while the function's future runs,
/// including in the functions it awaits, goes to a reader (or to the writer when no reader is
/// active and `fallback_to_writer` is on), even under a `/*@writer*/` hint. Use it for reports
/// and other reads that tolerate replica lag.
///
/// A statement that is **certainly a write** (`INSERT`, `UPDATE`, `DELETE`, DDL, ...) is
/// **refused with `Error::WriteRefused`** (kind `ErrorKind::WriteRefused`) **before anything is
/// sent**. One the classifier cannot prove read-only (unrecognised, or lexed differently
/// depending on a session setting) still goes to the writer: a write never reaches a reader.
/// `begin()` opens a read-only transaction on a reader.
///
/// # Precedence
///
/// - Scopes nest and **the innermost wins**: a `#[writer]` function called from a
///   `#[read_replica]` function sends its own statements to the writer, and the reader scope
///   applies again once it returns. `with_route` scopes nest the same way.
/// - **Inside a transaction, the transaction's host wins**: a transaction keeps the host it was
///   opened on, whatever scope its statements run in.
/// - Otherwise the scope wins over `/*@writer*/` hint comments and the statement classifier.
///
/// # Spawned tasks do not inherit the route
///
/// The scope is a tokio task-local. A task started with `tokio::spawn` (or `spawn_blocking`, a
/// `JoinSet`, ...) inside the function runs **outside** it: its statements are routed as if no
/// scope were set. Wrap the spawned future if it needs the route:
/// `tokio::spawn(rds_balancer::with_route(Route::Reader, async move { .. }))`.
///
/// # Supported functions
///
/// The same as [`macro@writer`]: an `async fn` (free, method, generic, in a trait with a
/// default body or a trait impl), a method of an `#[async_trait]` impl or trait (attribute on
/// the method), or a plain fn returning `impl Future` or a boxed future. It takes no arguments,
/// and is a compile error on anything else. Write it **above** `#[tokio::main]` /
/// `#[tokio::test]`.
#[proc_macro_attribute]
pub fn read_replica(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::expand(RouteAttr::ReadReplica, args.into(), item.into()).into()
}
