//! SeaORM's connection and transaction traits on [`RdsConnection`]: each call is routed, then
//! delegated to the chosen host's pool.

use std::future::Future;
use std::pin::Pin;

use sea_orm::{
    AccessMode, ConnectionTrait, DatabaseBackend, DbErr, ExecResult, IsolationLevel, QueryResult,
    Statement, TransactionError, TransactionOptions, TransactionTrait,
};

use super::{RdsConnection, RdsTransaction};

#[async_trait::async_trait]
impl ConnectionTrait for RdsConnection {
    fn get_database_backend(&self) -> DatabaseBackend {
        self.cluster().backend()
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        self.statement(stmt, async |conn, stmt| conn.execute_raw(stmt).await)
            .await
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        let stmt = Statement::from_string(self.cluster().backend(), sql);
        self.statement(stmt, async |conn, stmt| {
            conn.execute_unprepared(&stmt.sql).await
        })
        .await
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        self.statement(stmt, async |conn, stmt| conn.query_one_raw(stmt).await)
            .await
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        self.statement(stmt, async |conn, stmt| conn.query_all_raw(stmt).await)
            .await
    }
}

#[async_trait::async_trait]
impl TransactionTrait for RdsConnection {
    type Transaction = RdsTransaction;

    /// Opens a transaction on the writer (on a reader, read-only, under `Route::Reader`).
    async fn begin(&self) -> Result<RdsTransaction, DbErr> {
        self.begin_with_options(TransactionOptions::default()).await
    }

    /// Opens a transaction; `Some(AccessMode::ReadOnly)` opens it on a reader.
    async fn begin_with_config(
        &self,
        isolation_level: Option<IsolationLevel>,
        access_mode: Option<AccessMode>,
    ) -> Result<RdsTransaction, DbErr> {
        let options = TransactionOptions {
            isolation_level,
            access_mode,
            ..Default::default()
        };
        self.begin_with_options(options).await
    }

    async fn begin_with_options(
        &self,
        options: TransactionOptions,
    ) -> Result<RdsTransaction, DbErr> {
        self.open_transaction(options).await
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

    /// Opens a transaction as [`begin_with_config`](Self::begin_with_config) does, runs
    /// `callback` in it, then commits it (or rolls it back when the callback failed).
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
        let txn = self
            .begin_with_config(isolation_level, access_mode)
            .await
            .map_err(TransactionError::Connection)?;
        txn.run(callback).await
    }
}
