//! The crate's error type and its stable mapping to and from SeaORM's [`DbErr`].

use std::borrow::Cow;

use sea_orm::DbErr;

use crate::resilience::Summary;

/// A `Result` whose error defaults to the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything rds-balancer can fail with.
///
/// Inside SeaORM calls (`ConnectionTrait`, `TransactionTrait`, `StreamTrait`) it reaches you as a
/// [`DbErr`]; [`ErrorKind::of`] recovers the kind from it. No variant carries SQL text, a URL with
/// credentials, or any other secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No reader is active and `fallback_to_writer(false)` forbids using the writer for reads.
    #[error("no active reader, and fallback to the writer is disabled")]
    NoActiveReaders,
    /// [`RdsConnection::shutdown`](crate::RdsConnection::shutdown) has begun: no new statement or
    /// transaction is accepted.
    #[error("the connection is shutting down and accepts no new statements")]
    ShuttingDown,
    /// A statement that certainly writes was issued under a reader route (a `#[read_replica]`
    /// function, `with_route(Route::Reader, ..)` or a `/*@reader*/` hint). Nothing was sent.
    #[error("refused to send a write to a reader: {why}")]
    WriteRefused {
        /// Why the statement counts as a write (the classifier's reason).
        why: Cow<'static, str>,
    },
    /// The options given to the builder cannot work.
    #[error("invalid configuration: {0}")]
    Config(Cow<'static, str>),
    /// A pool to a host could not be opened.
    #[error("could not connect to {host}: {source}")]
    Connect {
        /// The host's endpoint (`host:port`, never credentials).
        host: String,
        /// What the driver said.
        #[source]
        source: DbErr,
    },
    /// A [`TopologySource`](crate::TopologySource) could not describe the cluster (the RDS API
    /// refused, timed out or could not be reached, or the cluster does not exist). The last good
    /// topology stays in use.
    ///
    /// The message names the operation and the service's error code and message; it never
    /// carries credentials. [`Error::is_throttling`] tells when to back off.
    #[error("{operation} failed: {}{message}", code.as_deref().map(|c| format!("{c}: ")).unwrap_or_default())]
    Topology {
        /// The operation that failed (`DescribeDBClusters`, `DescribeDBInstances`, ...).
        operation: Cow<'static, str>,
        /// The service's error code (`DBClusterNotFoundFault`, `Throttling`, ...), when it
        /// answered with one; `None` for timeouts and transport failures.
        code: Option<String>,
        /// The service's message, or what went wrong on the way to it.
        message: String,
    },
    /// A statement was cut short because its host stopped answering: enhanced failure
    /// monitoring probed it and gave up, or its circuit breaker opened while the statement ran.
    /// The host leaves scheduling until a probe succeeds. A read may be issued again at once (it
    /// goes elsewhere); a write's outcome is unknown.
    #[error("host {host} is unavailable: {why}")]
    HostUnavailable {
        /// The host's name (`host:port` or the instance identifier, never credentials).
        host: String,
        /// What showed it (failed probes, the errors its statements returned).
        why: Cow<'static, str>,
    },
    /// The writer failed while this write (or `BEGIN`) was in flight, and the connection has
    /// since followed the cluster to a writer that accepts writes. Whether the write took effect
    /// is unknown: nothing was replayed. Issue it again if it is safe to (idempotent, or checked).
    ///
    /// Only when the writer really died or stopped accepting writes under the statement (the
    /// host was probed): an error the writer returned while it still accepts writes reaches the
    /// caller unchanged.
    #[error(
        "the writer failed over while the statement ran; its outcome is unknown and it was not replayed (the writer's error: {})",
        Summary(.source)
    )]
    FailoverCompleted {
        /// What the statement got from the writer that failed. Its message stays out of this
        /// error's text (it may quote data); the code is there.
        #[source]
        source: DbErr,
    },
    /// The writer failed while a transaction ran (its `COMMIT` included): whether it committed
    /// is unknown. The connection has followed the cluster to a new writer.
    #[error("the writer failed over during the transaction; whether it committed is unknown{}", source_summary(.source.as_ref()))]
    TransactionResolutionUnknown {
        /// What the transaction got from the writer that failed, when the driver reported it
        /// (`None` when the transaction's own callback returned its error).
        #[source]
        source: Option<DbErr>,
    },
    /// The writer failed and no writer that accepts writes was found within the failover
    /// timeout.
    #[error("the writer failed and no new writer was confirmed within {0:?}")]
    FailoverFailed(std::time::Duration),
    /// A [`CredentialProvider`](crate::CredentialProvider) could not produce credentials (an IAM
    /// token could not be signed, Secrets Manager could not be reached or returned a secret
    /// without a password). The message never carries a secret.
    #[error("could not get database credentials: {0}")]
    Credentials(Cow<'static, str>),
    /// The connection budget
    /// ([`max_total_connections`](crate::RdsConnectionBuilder::max_total_connections)) stayed
    /// full for the whole wait: nothing was sent.
    #[error("all {limit} connections of the budget stayed in use for {waited:?}")]
    BudgetExhausted {
        /// The budget.
        limit: u32,
        /// How long the statement waited for a slot.
        waited: std::time::Duration,
    },
    /// A blue/green switchover was in progress for the whole wait (`bg_connect_timeout`): the
    /// statement was held back and never sent. Issue it again; the switchover is usually over
    /// within seconds.
    ///
    /// Also what the statements and the `commit` of an [`RdsTransaction`](crate::RdsTransaction)
    /// open when the switchover began return once it held statements back that long: the
    /// transaction was cut on blue and nothing of it was committed.
    #[error("a blue/green switchover held the statement back for {waited:?}; nothing was sent")]
    BlueGreenSwitchover {
        /// How long the statement waited.
        waited: std::time::Duration,
    },
    /// The database (or the driver) returned an error for a statement.
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// The kind of an [`Error`]: small, `Copy`, and recoverable from a [`DbErr`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// See [`Error::NoActiveReaders`].
    NoActiveReaders,
    /// See [`Error::ShuttingDown`].
    ShuttingDown,
    /// See [`Error::WriteRefused`].
    WriteRefused,
    /// See [`Error::Config`].
    Config,
    /// See [`Error::Connect`].
    Connect,
    /// See [`Error::Db`]: an error from the database itself.
    Database,
    /// See [`Error::Topology`].
    Topology,
    /// See [`Error::HostUnavailable`].
    HostUnavailable,
    /// See [`Error::FailoverCompleted`].
    FailoverCompleted,
    /// See [`Error::TransactionResolutionUnknown`].
    TransactionResolutionUnknown,
    /// See [`Error::FailoverFailed`].
    FailoverFailed,
    /// See [`Error::Credentials`].
    Credentials,
    /// See [`Error::BudgetExhausted`].
    BudgetExhausted,
    /// See [`Error::BlueGreenSwitchover`].
    BlueGreenSwitchover,
}

/// Every `DbErr` made from an [`Error`] (other than [`Error::Db`], passed through unchanged)
/// is a `DbErr::Custom` whose message starts with this prefix, then the kind's code and `] `.
const PREFIX: &str = "[rds-balancer:";

impl ErrorKind {
    const ALL: [ErrorKind; 14] = [
        ErrorKind::NoActiveReaders,
        ErrorKind::ShuttingDown,
        ErrorKind::WriteRefused,
        ErrorKind::Config,
        ErrorKind::Connect,
        ErrorKind::Database,
        ErrorKind::Topology,
        ErrorKind::HostUnavailable,
        ErrorKind::FailoverCompleted,
        ErrorKind::TransactionResolutionUnknown,
        ErrorKind::FailoverFailed,
        ErrorKind::Credentials,
        ErrorKind::BudgetExhausted,
        ErrorKind::BlueGreenSwitchover,
    ];

    /// A stable snake-case code, used in the `DbErr` message prefix (`[rds-balancer:<code>]`).
    pub const fn code(self) -> &'static str {
        match self {
            ErrorKind::NoActiveReaders => "no_active_readers",
            ErrorKind::ShuttingDown => "shutting_down",
            ErrorKind::WriteRefused => "write_refused",
            ErrorKind::Config => "config",
            ErrorKind::Connect => "connect",
            ErrorKind::Database => "database",
            ErrorKind::Topology => "topology",
            ErrorKind::HostUnavailable => "host_unavailable",
            ErrorKind::FailoverCompleted => "failover_completed",
            ErrorKind::TransactionResolutionUnknown => "transaction_resolution_unknown",
            ErrorKind::FailoverFailed => "failover_failed",
            ErrorKind::Credentials => "credentials",
            ErrorKind::BudgetExhausted => "budget_exhausted",
            ErrorKind::BlueGreenSwitchover => "blue_green_switchover",
        }
    }

    /// Recovers the kind of an rds-balancer error from the [`DbErr`] a SeaORM call returned.
    ///
    /// Returns `None` for errors that did not come from rds-balancer (the database's own errors).
    ///
    /// ```
    /// use rds_balancer::{Error, ErrorKind};
    /// use sea_orm::DbErr;
    ///
    /// let db_err: DbErr = Error::NoActiveReaders.into();
    /// assert_eq!(ErrorKind::of(&db_err), Some(ErrorKind::NoActiveReaders));
    /// assert_eq!(ErrorKind::of(&DbErr::RecordNotFound("cake".into())), None);
    /// ```
    pub fn of(err: &DbErr) -> Option<ErrorKind> {
        let DbErr::Custom(message) = err else {
            return None;
        };
        let rest = message.strip_prefix(PREFIX)?;
        let (code, _) = rest.split_once(']')?;
        Self::ALL.into_iter().find(|kind| kind.code() == code)
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

impl Error {
    /// This error's kind.
    ///
    /// ```
    /// assert_eq!(rds_balancer::Error::ShuttingDown.kind(), rds_balancer::ErrorKind::ShuttingDown);
    /// ```
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NoActiveReaders => ErrorKind::NoActiveReaders,
            Error::ShuttingDown => ErrorKind::ShuttingDown,
            Error::WriteRefused { .. } => ErrorKind::WriteRefused,
            Error::Config(_) => ErrorKind::Config,
            Error::Connect { .. } => ErrorKind::Connect,
            Error::Db(_) => ErrorKind::Database,
            Error::Topology { .. } => ErrorKind::Topology,
            Error::HostUnavailable { .. } => ErrorKind::HostUnavailable,
            Error::FailoverCompleted { .. } => ErrorKind::FailoverCompleted,
            Error::TransactionResolutionUnknown { .. } => ErrorKind::TransactionResolutionUnknown,
            Error::FailoverFailed(_) => ErrorKind::FailoverFailed,
            Error::Credentials(_) => ErrorKind::Credentials,
            Error::BudgetExhausted { .. } => ErrorKind::BudgetExhausted,
            Error::BlueGreenSwitchover { .. } => ErrorKind::BlueGreenSwitchover,
        }
    }

    /// True for an [`Error::Topology`] whose code says the API is throttling its callers
    /// (`Throttling`, `ThrottlingException`, `RequestLimitExceeded`): poll less often.
    ///
    /// ```
    /// use rds_balancer::Error;
    ///
    /// let err = Error::Topology {
    ///     operation: "DescribeDBClusters".into(),
    ///     code: Some("Throttling".into()),
    ///     message: "Rate exceeded".into(),
    /// };
    /// assert!(err.is_throttling());
    /// assert_eq!(err.to_string(), "DescribeDBClusters failed: Throttling: Rate exceeded");
    /// assert!(!Error::ShuttingDown.is_throttling());
    /// ```
    pub fn is_throttling(&self) -> bool {
        match self {
            Error::Topology {
                code: Some(code), ..
            } => THROTTLING_CODES.contains(&code.as_str()),
            _ => false,
        }
    }
}

/// ` (the writer's error: <summary>)`, or nothing.
fn source_summary(source: Option<&DbErr>) -> String {
    source.map_or_else(String::new, |source| {
        format!(" (the writer's error: {})", Summary(source))
    })
}

/// The error codes AWS APIs answer with when they throttle (the SDK's own list, for RDS).
const THROTTLING_CODES: [&str; 3] = ["Throttling", "ThrottlingException", "RequestLimitExceeded"];

impl From<Error> for DbErr {
    /// The database's own errors pass through unchanged; every other kind becomes a
    /// `DbErr::Custom("[rds-balancer:<code>] <message>")` that [`ErrorKind::of`] recognises.
    fn from(err: Error) -> DbErr {
        match err {
            Error::Db(db) => db,
            other => DbErr::Custom(format!("{PREFIX}{}] {other}", other.kind().code())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_through_db_err() {
        let errors = [
            Error::NoActiveReaders,
            Error::ShuttingDown,
            Error::WriteRefused {
                why: "an INSERT".into(),
            },
            Error::Config("no writer".into()),
            Error::Connect {
                host: "127.0.0.1:1".into(),
                source: DbErr::Custom("refused".into()),
            },
            Error::Topology {
                operation: "DescribeDBClusters".into(),
                code: Some("DBClusterNotFoundFault".into()),
                message: "DBCluster app not found.".into(),
            },
            Error::HostUnavailable {
                host: "reader-1".into(),
                why: "3 probes failed".into(),
            },
            Error::FailoverCompleted {
                source: DbErr::Custom("hunter2".into()),
            },
            Error::TransactionResolutionUnknown { source: None },
            Error::FailoverFailed(std::time::Duration::from_secs(60)),
            Error::Credentials("Secrets Manager: ResourceNotFoundException".into()),
            Error::BudgetExhausted {
                limit: 10,
                waited: std::time::Duration::from_secs(30),
            },
            Error::BlueGreenSwitchover {
                waited: std::time::Duration::from_secs(30),
            },
        ];
        for err in errors {
            let kind = err.kind();
            let db: DbErr = err.into();
            assert!(!db.to_string().contains("hunter2"), "{db}");
            assert_eq!(ErrorKind::of(&db), Some(kind), "{db}");
            assert!(
                db.to_string()
                    .contains(&format!("[rds-balancer:{}]", kind.code()))
            );
        }
        assert_eq!(ErrorKind::ALL.len(), 14);
    }

    #[test]
    fn topology_errors_name_the_operation_and_recognise_throttling() {
        let topology = |code: Option<&str>| Error::Topology {
            operation: "DescribeDBInstances".into(),
            code: code.map(str::to_owned),
            message: "something".into(),
        };
        for code in ["Throttling", "ThrottlingException", "RequestLimitExceeded"] {
            assert!(topology(Some(code)).is_throttling(), "{code}");
        }
        assert!(!topology(Some("DBClusterNotFoundFault")).is_throttling());
        assert!(!topology(None).is_throttling());
        assert_eq!(
            topology(None).to_string(),
            "DescribeDBInstances failed: something"
        );
        let db: DbErr = topology(Some("Throttling")).into();
        assert_eq!(ErrorKind::of(&db), Some(ErrorKind::Topology));
        assert_eq!(
            db.to_string(),
            "Custom Error: [rds-balancer:topology] DescribeDBInstances failed: Throttling: something"
        );
    }

    #[test]
    fn database_errors_pass_through_unchanged() {
        let db: DbErr = Error::Db(DbErr::RecordNotFound("cake".into())).into();
        assert!(matches!(db, DbErr::RecordNotFound(_)));
        assert_eq!(ErrorKind::of(&db), None);
        assert_eq!(
            ErrorKind::of(&DbErr::Custom("[rds-balancer:nonsense] x".into())),
            None
        );
        assert_eq!(ErrorKind::of(&DbErr::Custom("user text".into())), None);
    }
}
