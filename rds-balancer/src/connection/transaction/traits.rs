//! SeaORM's traits on [`RdsTransaction`]: each statement runs on the transaction's own
//! connection, guarded by its bookkeeping.

use std::future::Future;
use std::pin::Pin;

use sea_orm::{
    AccessMode, ConnectionTrait, DatabaseBackend, DatabaseExecutor, DbErr, ExecResult,
    IntoDatabaseExecutor, IsolationLevel, QueryResult, Statement, StreamTrait, TransactionError,
    TransactionOptions, TransactionStream, TransactionTrait,
};

use super::RdsTransaction;

#[async_trait::async_trait]
impl ConnectionTrait for RdsTransaction {
    fn get_database_backend(&self) -> DatabaseBackend {
        ConnectionTrait::get_database_backend(&self.inner)
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        self.open.guarded(self.inner.execute_raw(stmt)).await
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        self.open.guarded(self.inner.execute_unprepared(sql)).await
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        self.open.guarded(self.inner.query_one_raw(stmt)).await
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        self.open.guarded(self.inner.query_all_raw(stmt)).await
    }
}

#[async_trait::async_trait]
impl TransactionTrait for RdsTransaction {
    type Transaction = RdsTransaction;

    /// Opens a savepoint in this transaction.
    async fn begin(&self) -> Result<RdsTransaction, DbErr> {
        let inner = self.open.guarded(self.inner.begin()).await?;
        Ok(self.nested(inner))
    }

    async fn begin_with_config(
        &self,
        isolation_level: Option<IsolationLevel>,
        access_mode: Option<AccessMode>,
    ) -> Result<RdsTransaction, DbErr> {
        let begin = self.inner.begin_with_config(isolation_level, access_mode);
        let inner = self.open.guarded(begin).await?;
        Ok(self.nested(inner))
    }

    async fn begin_with_options(
        &self,
        options: TransactionOptions,
    ) -> Result<RdsTransaction, DbErr> {
        let inner = self
            .open
            .guarded(self.inner.begin_with_options(options))
            .await?;
        Ok(self.nested(inner))
    }

    async fn transaction<F, T, E>(&self, callback: F) -> Result<T, TransactionError<E>>
    where
        F: for<'c> FnOnce(
                &'c RdsTransaction,
            ) -> Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'c>>
            + Send,
        T: Send,
        E: std::fmt::Display + std::fmt::Debug + Send,
    {
        self.transaction_with_config(callback, None, None).await
    }

    async fn transaction_with_config<F, T, E>(
        &self,
        callback: F,
        isolation_level: Option<IsolationLevel>,
        access_mode: Option<AccessMode>,
    ) -> Result<T, TransactionError<E>>
    where
        F: for<'c> FnOnce(
                &'c RdsTransaction,
            ) -> Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'c>>
            + Send,
        T: Send,
        E: std::fmt::Display + std::fmt::Debug + Send,
    {
        let savepoint = self
            .begin_with_config(isolation_level, access_mode)
            .await
            .map_err(TransactionError::Connection)?;
        savepoint.run(callback).await
    }
}

impl StreamTrait for RdsTransaction {
    type Stream<'a> = TransactionStream<'a>;

    fn get_database_backend(&self) -> DatabaseBackend {
        ConnectionTrait::get_database_backend(&self.inner)
    }

    fn stream_raw<'a>(
        &'a self,
        stmt: Statement,
    ) -> Pin<Box<dyn Future<Output = Result<TransactionStream<'a>, DbErr>> + 'a + Send>> {
        Box::pin(self.open.guarded(self.inner.stream_raw(stmt)))
    }
}

/// For APIs that take `impl IntoDatabaseExecutor` (sea-orm-migration's `Migrator::up`,
/// `SchemaManager`): they run on this transaction's connection. The transaction stays counted
/// and holds its slot; statements run this way are not guarded one by one.
///
/// ```no_run
/// use rds_balancer::RdsConnection;
/// use sea_orm::{IntoDatabaseExecutor, TransactionSession, TransactionTrait};
///
/// # async fn demo(db: RdsConnection) -> Result<(), sea_orm::DbErr> {
/// let txn = db.begin().await?;
/// let executor = (&txn).into_database_executor();
/// # drop(executor);
/// txn.commit().await?;
/// # Ok(()) }
/// ```
impl<'c> IntoDatabaseExecutor<'c> for &'c RdsTransaction {
    fn into_database_executor(self) -> DatabaseExecutor<'c> {
        DatabaseExecutor::Transaction(&self.inner)
    }
}
