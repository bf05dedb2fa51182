//! Streamed queries: [`StreamTrait`] on [`RdsConnection`], and the [`RdsStream`] that keeps its
//! host counted in flight until dropped.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::Stream;
use sea_orm::{DatabaseBackend, DbErr, QueryResult, QueryStream, Statement, StreamTrait};

use super::RdsConnection;
use crate::budget::Slot;
use crate::pool::InFlight;

impl StreamTrait for RdsConnection {
    type Stream<'a> = RdsStream;

    fn get_database_backend(&self) -> DatabaseBackend {
        self.cluster().backend()
    }

    fn stream_raw<'a>(
        &'a self,
        stmt: Statement,
    ) -> Pin<Box<dyn Future<Output = Result<RdsStream, DbErr>> + 'a + Send>> {
        Box::pin(async move {
            self.before_statement().await?;
            let routed = self.caught_up(self.route(&stmt.sql)?).await?;
            if !self.is_read(routed.decision, &stmt.sql) {
                self.wrote();
            }
            let inner = routed.run(|conn| conn.stream_raw(stmt)).await?;
            let slot = routed.take_slot();
            Ok(RdsStream {
                inner,
                _guard: routed.guard,
                _slot: slot,
            })
        })
    }
}

/// The rows of a streamed query ([`StreamTrait::stream_raw`] on an [`RdsConnection`]).
///
/// It holds its host's connection, and counts as in flight there, until it is dropped.
///
/// ```no_run
/// use futures_util::TryStreamExt;
/// use sea_orm::{Statement, StreamTrait};
///
/// # async fn demo(db: rds_balancer::RdsConnection) -> Result<(), sea_orm::DbErr> {
/// let backend = db.get_database_backend();
/// let mut rows = db.stream_raw(Statement::from_string(backend, "SELECT id FROM orders")).await?;
/// while let Some(row) = rows.try_next().await? {
///     let _id: i64 = row.try_get("", "id")?;
/// }
/// # Ok(()) }
/// ```
pub struct RdsStream {
    inner: QueryStream,
    _guard: InFlight,
    _slot: Option<Slot>,
}

impl std::fmt::Debug for RdsStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RdsStream")
            .field("host", &self._guard.host().name())
            .finish_non_exhaustive()
    }
}

impl Stream for RdsStream {
    type Item = Result<QueryResult, DbErr>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.get_mut().inner).poll_next(cx)
    }
}
