#![doc = include_str!("../../README.md")]

#[cfg(feature = "rds-api")]
mod aws;
mod bluegreen;
mod budget;
mod causal;
mod classify;
mod cluster;
mod connection;
mod credentials;
mod error;
mod failover;
mod health;
mod options;
mod pool;
mod position;
mod resilience;
mod route;
mod settings;
mod topology;

#[cfg(feature = "rds-api")]
pub use self::aws::AwsSettings;
pub use self::bluegreen::{
    BlueGreenEndpoint, BlueGreenEvent, BlueGreenOptions, BlueGreenPhase, BlueGreenRole,
    BlueGreenStatus,
};
pub use self::causal::{ReadYourWrites, with_position};
pub use self::classify::{Classifier, Explanation, Reason, Target, classify, explain};
pub use self::cluster::ShutdownReport;
pub use self::connection::{RdsConnection, RdsStream, RdsTransaction};
pub use self::credentials::{CredentialProvider, Credentials, Endpoint, Secret};
#[cfg(feature = "rds-api")]
pub use self::credentials::{IamAuth, IamAuthBuilder};
#[cfg(feature = "secrets-manager")]
pub use self::credentials::{RdsSecret, SecretsManagerAuth, SecretsManagerAuthBuilder};
pub use self::error::{Error, ErrorKind, Result};
pub use self::health::{HealthSnapshot, HealthState, HostHealthSnapshot, HostRole};
pub use self::options::{RdsConnectionBuilder, SslMode};
pub use self::position::{ParsePositionError, Position};
pub use self::resilience::{
    AsDbErr, BreakerError, BreakerOptions, BreakerState, CircuitBreaker, RetryPolicy,
    is_circuit_open, is_transient, retry,
};
pub use self::route::{ReaderSelection, Route, current_route, with_route};
pub use self::topology::{
    AVAILABLE, BalancerOptions, ClusterViewSource, ClusterViewSourceBuilder, EndpointResolver,
    Instance, IntoRdsConnection, RdsReplicaBalancer, Topology, TopologyChange, TopologySource,
    attach_rds_replica_balancer, connect,
};
#[cfg(feature = "rds-api")]
pub use self::topology::{RdsApiSource, RdsApiSourceBuilder};

/// Routes every statement the function issues to the writer.
///
/// ```
/// use rds_balancer::{Route, current_route, read_replica, writer};
///
/// #[writer]
/// async fn place_order(quantity: &str) -> Result<Option<Route>, std::num::ParseIntError> {
///     let _quantity: u32 = quantity.parse()?; // `?` converts into the declared error type
///     // Every statement issued here, and in the functions awaited here, goes to the writer...
///     assert_eq!(current_route(), Some(Route::Writer));
///     // ...except inside a nested `#[read_replica]` function: the innermost scope wins.
///     assert_eq!(stock_level().await, Some(Route::Reader));
///     Ok(current_route())
/// }
///
/// #[read_replica]
/// async fn stock_level() -> Option<Route> {
///     current_route()
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// assert_eq!(place_order("3").await?, Some(Route::Writer));
/// assert_eq!(current_route(), None); // the scope ends with the function's future
/// # Ok::<(), std::num::ParseIntError>(()) }).unwrap();
/// ```
///
/// Read-your-writes with a real connection:
///
/// ```no_run
/// use rds_balancer::{RdsConnection, writer};
/// use sea_orm::{ConnectionTrait, DbErr, QueryResult, Statement};
///
/// // The read must see the row just inserted, so it goes to the writer too, not to a replica
/// // that may lag behind.
/// #[writer]
/// async fn place_order(db: &RdsConnection, id: i64) -> Result<Option<QueryResult>, DbErr> {
///     let backend = db.get_database_backend();
///     db.execute_raw(Statement::from_sql_and_values(
///         backend,
///         "INSERT INTO orders (id) VALUES ($1)",
///         [id.into()],
///     ))
///     .await?;
///     db.query_one_raw(Statement::from_sql_and_values(
///         backend,
///         "SELECT * FROM orders WHERE id = $1",
///         [id.into()],
///     ))
///     .await
/// }
/// ```
///
#[cfg(feature = "macros")]
pub use rds_balancer_macros::writer;

/// Routes every statement the function issues to a read replica.
///
/// ```no_run
/// use rds_balancer::{RdsConnection, read_replica};
/// use sea_orm::{ConnectionTrait, DbErr, Statement};
///
/// #[read_replica]
/// async fn order_report(db: &RdsConnection) -> Result<usize, DbErr> {
///     let backend = db.get_database_backend();
///     let rows = db
///         .query_all_raw(Statement::from_string(
///             backend,
///             "SELECT status, count(*) FROM orders GROUP BY status",
///         ))
///         .await?;
///     // A statement that certainly writes is refused before anything is sent.
///     let refused = db
///         .execute_raw(Statement::from_string(backend, "DELETE FROM orders"))
///         .await;
///     assert!(refused.is_err());
///     Ok(rows.len())
/// }
/// ```
///
/// A task spawned inside the function does not inherit the route:
///
/// ```
/// use rds_balancer::{Route, current_route, read_replica, with_route};
///
/// #[read_replica]
/// async fn nightly_report() -> Result<(), tokio::task::JoinError> {
///     assert_eq!(current_route(), Some(Route::Reader));
///     let spawned = tokio::spawn(async { current_route() }).await?;
///     assert_eq!(spawned, None);
///     // Wrap the spawned future to give it a route.
///     let wrapped = tokio::spawn(with_route(Route::Reader, async { current_route() })).await?;
///     assert_eq!(wrapped, Some(Route::Reader));
///     Ok(())
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(nightly_report()).unwrap();
/// ```
///
#[cfg(feature = "macros")]
pub use rds_balancer_macros::read_replica;

/// Not public API: used by the code the attribute macros generate.
#[doc(hidden)]
pub mod __private {
    pub use crate::route::{Route, scoped};
}
