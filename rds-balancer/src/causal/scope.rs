//! [`with_position`]: a position the reads of a scope must see, carried from elsewhere.

use std::future::Future;

use crate::position::Position;

tokio::task_local! {
    /// `None`: two positions that cannot be compared, which no reader can be shown to have.
    static REQUIRED: Option<Position>;
}

/// Runs `future` with every plain read it issues through an
/// [`RdsConnection`](crate::RdsConnection) seeing at least `position`: sent to a reader that
/// has replayed it (waiting up to `max_wait`, as for the task's own writes), else to the
/// writer.
///
/// This carries read-your-writes across requests and processes: after a write, put
/// [`RdsConnection::write_position`](crate::RdsConnection::write_position) in a cookie or a
/// header; the next request, served by any instance, reads inside `with_position`.
///
/// Needs [`ReadYourWrites::position`](crate::ReadYourWrites::position); under another policy
/// those reads go to the writer. A position of another engine than the connection's (never
/// comparable) sends them to the writer too. Scopes nest: the reads see both positions. Like
/// [`with_route`](crate::with_route), it lives in a tokio task-local: a task spawned inside it
/// does not inherit it.
///
/// ```no_run
/// use rds_balancer::{Position, RdsConnection, with_position};
/// use sea_orm::{ConnectionTrait, DbErr, Statement};
///
/// // POST: write, then hand the position to the client.
/// async fn create(db: &RdsConnection) -> Result<String, DbErr> {
///     db.execute_unprepared("INSERT INTO orders (item) VALUES ('tea')").await?;
///     Ok(db.write_position().await?.to_string()) // e.g. a `Set-Cookie: pos=...`
/// }
///
/// // GET, maybe on another instance: read at least what that POST wrote.
/// async fn list(db: &RdsConnection, cookie: &str) -> Result<usize, DbErr> {
///     let position: Position = cookie.parse().map_err(|e| DbErr::Custom(format!("{e}")))?;
///     let sql = Statement::from_string(db.get_database_backend(), "SELECT * FROM orders");
///     let rows = with_position(position, db.query_all_raw(sql)).await?;
///     Ok(rows.len())
/// }
/// ```
pub async fn with_position<F: Future>(position: Position, future: F) -> F::Output {
    let required = match required() {
        Some(Some(outer)) => outer.join(&position),
        Some(None) => None,
        None => Some(position),
    };
    REQUIRED.scope(required, future).await
}

/// The position the current scope's reads must see: `None` outside any scope, `Some(None)`
/// when it requires two that cannot be compared (only the writer has both).
pub(crate) fn required() -> Option<Option<Position>> {
    REQUIRED.try_with(Clone::clone).ok()
}

/// Whether the current scope sets a position (no clone).
pub(crate) fn is_required() -> bool {
    REQUIRED.try_with(|_| ()).is_ok()
}
