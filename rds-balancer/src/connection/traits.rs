//! SeaORM's connection and transaction traits on [`RdsConnection`]: each call is routed, then
//! delegated to the chosen host's pool.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use sea_orm::{
    AccessMode, ConnectionTrait, DatabaseBackend, DatabaseTransaction, DbErr, ExecResult,
    IsolationLevel, QueryResult, Statement, TransactionError, TransactionOptions, TransactionTrait,
};

use super::RdsConnection;
use crate::route::Route;

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
    type Transaction = DatabaseTransaction;

    /// Opens a transaction on the writer (on a reader, read-only, under `Route::Reader`).
    async fn begin(&self) -> Result<DatabaseTransaction, DbErr> {
        self.begin_with_options(TransactionOptions::default()).await
    }

    /// Opens a transaction; `Some(AccessMode::ReadOnly)` opens it on a reader.
    async fn begin_with_config(
        &self,
        isolation_level: Option<IsolationLevel>,
        access_mode: Option<AccessMode>,
    ) -> Result<DatabaseTransaction, DbErr> {
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
    ) -> Result<DatabaseTransaction, DbErr> {
        RdsConnection::begin(self, options).await
    }

    async fn transaction<F, T, E>(&self, callback: F) -> Result<T, TransactionError<E>>
    where
        F: for<'c> FnOnce(
                &'c DatabaseTransaction,
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
                &'c DatabaseTransaction,
            ) -> Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'c>>
            + Send,
        T: Send,
        E: std::fmt::Display + std::fmt::Debug + Send,
    {
        let options = TransactionOptions {
            isolation_level,
            access_mode,
            ..Default::default()
        };
        let (routed, options) = self
            .admit_transaction(options)
            .await
            .map_err(|e| TransactionError::Connection(e.into()))?;
        // The guard is held for the whole transaction, so shutdown waits for it.
        let outcome = routed
            .run(|conn| {
                conn.transaction_with_config(callback, options.isolation_level, options.access_mode)
            })
            .await;
        let host = Arc::clone(routed.host());
        if routed.decision.route == Route::Writer {
            self.router().wrote();
        }
        drop(routed);
        self.after_transaction(&host, outcome).await
    }
}
