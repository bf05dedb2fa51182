//! The route override scope: a task-local set by [`with_route`] and the attribute macros.

use std::future::Future;

tokio::task_local! {
    static ROUTE: Route;
}

/// Where every statement in a scope goes, overriding the statement classifier.
///
/// Set with [`with_route`] or the `#[writer]` / `#[read_replica]` attribute macros. Scopes nest;
/// the innermost wins.
///
/// ```
/// use rds_balancer::{Route, current_route, with_route};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// assert_eq!(current_route(), None);
/// with_route(Route::Reader, async {
///     assert_eq!(current_route(), Some(Route::Reader));
///     with_route(Route::Writer, async {
///         assert_eq!(current_route(), Some(Route::Writer));
///     })
///     .await;
/// })
/// .await;
/// # });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    /// Every statement and transaction goes to the writer.
    Writer,
    /// Every read-only statement goes to a reader (or the writer when no reader is active and
    /// fallback is on), even under a `/*@writer*/` hint. A statement that is certainly a write
    /// is refused with [`ErrorKind::WriteRefused`](crate::ErrorKind::WriteRefused) before
    /// anything is sent; one the classifier cannot prove read-only still goes to the writer.
    /// `begin()` opens a read-only transaction on a reader.
    Reader,
}

impl Route {
    /// The lower-case name used in logs and span fields: `"writer"` or `"reader"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Route::Writer => "writer",
            Route::Reader => "reader",
        }
    }
}

impl std::fmt::Display for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Runs `future` with every statement it issues through an
/// [`RdsConnection`](crate::RdsConnection) routed to `route`.
///
/// The override lives in a tokio task-local: it covers everything `future` awaits, including
/// nested calls, but **a task spawned inside it (`tokio::spawn`) does not inherit it**; wrap the
/// spawned future in its own `with_route` if it needs one. Scopes nest and the innermost wins.
/// A transaction keeps the host it was opened on, whatever scope its statements run in.
///
/// ```no_run
/// use rds_balancer::{RdsConnection, Route, with_route};
/// use sea_orm::ConnectionTrait;
///
/// # async fn demo(db: RdsConnection) -> Result<(), sea_orm::DbErr> {
/// // Read-your-writes: this read must see the row just written, so send it to the writer.
/// let row = with_route(Route::Writer, async {
///     db.query_one_raw(sea_orm::Statement::from_string(
///         db.get_database_backend(),
///         "SELECT count(*) FROM orders",
///     ))
///     .await
/// })
/// .await?;
/// # let _ = row; Ok(()) }
/// ```
pub async fn with_route<F: Future>(route: Route, future: F) -> F::Output {
    ROUTE.scope(route, future).await
}

/// The innermost route override in scope for the current task, if any.
///
/// ```
/// assert_eq!(rds_balancer::current_route(), None);
/// ```
pub fn current_route() -> Option<Route> {
    ROUTE.try_with(|route| *route).ok()
}

/// Used by the attribute macros: like [`with_route`], with the output type named so that `?`
/// inside the wrapped `async` block infers its error type from the function's return type.
#[doc(hidden)]
pub fn scoped<T, F>(route: Route, future: F) -> impl Future<Output = T>
where
    F: Future<Output = T>,
{
    ROUTE.scope(route, future)
}
