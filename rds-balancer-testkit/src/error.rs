//! The test kit's error type.

use std::io;
use std::time::Duration;

/// The command that installs what the test kit needs on the project's machines (Debian/Ubuntu).
pub const INSTALL_HINT: &str = "apt-get update && apt-get install -y postgresql";

/// The command that installs the moto RDS emulator (with boto3) that
/// [`RdsEmulator`](crate::RdsEmulator) runs.
pub const MOTO_INSTALL_HINT: &str = "python3 -m pip install 'moto[server]==5.2.1'";

/// Why a test-kit operation failed.
///
/// Every message says what was being done; a server that does not come up carries the tail of
/// its log.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The PostgreSQL server binaries (`initdb`, `postgres`, ...) were not found.
    #[error("PostgreSQL server binaries not found ({detail}); install them with `{INSTALL_HINT}`")]
    PostgresNotInstalled {
        /// Where the test kit looked and what was missing.
        detail: String,
    },
    /// The process runs as root but the unprivileged user to run the servers as does not exist.
    #[error(
        "running as root, but there is no `{user}` OS user to run the database servers as \
         (the server package creates it: `{INSTALL_HINT}`)"
    )]
    NoServerUser {
        /// The missing user's name.
        user: String,
    },
    /// A file-system or process operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A helper command (`initdb`, `pg_basebackup`, `psql`, ...) exited unsuccessfully.
    #[error("{command} failed ({status}): {stderr}")]
    Command {
        /// The command, or what it was run for.
        command: String,
        /// How it exited.
        status: String,
        /// Its standard error, trimmed.
        stderr: String,
    },
    /// A database server did not start or did not become ready.
    #[error("{node} (port {port}) failed to start: {reason}\n--- tail of {log} ---\n{log_tail}")]
    ServerStart {
        /// The node's name (`primary`, `replica-1`, ...).
        node: String,
        /// The port it was to listen on.
        port: u16,
        /// What went wrong.
        reason: String,
        /// The server log's path.
        log: String,
        /// The last lines the server logged during this start.
        log_tail: String,
    },
    /// A wait did not finish in time.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout {
        /// What was awaited, with any detail gathered (e.g. a command's standard error).
        what: String,
        /// How long it waited.
        after: Duration,
    },
    /// The operation needs a running (and not paused) server.
    #[error("{node} is not running")]
    NotRunning {
        /// The node's name.
        node: String,
    },
    /// The cluster was found in a state it should not be in.
    #[error("unexpected cluster state: {what}")]
    Unexpected {
        /// What was found.
        what: String,
    },
    /// `promote` was given an index past the end of `replicas()`.
    #[error("no replica at index {index} (the cluster has {count} replicas)")]
    NoSuchReplica {
        /// The index asked for.
        index: usize,
        /// How many replicas there are.
        count: usize,
    },
    /// `python3`, moto or boto3 was not found, so the RDS emulator cannot run.
    #[error("the moto RDS emulator cannot run ({detail}); install it with `{MOTO_INSTALL_HINT}`")]
    MotoNotInstalled {
        /// What was missing.
        detail: String,
    },
    /// The RDS emulator did not start or did not answer.
    #[error(
        "the moto RDS emulator failed to start: {reason}\n--- its standard error ---\n{log_tail}"
    )]
    EmulatorStart {
        /// What went wrong.
        reason: String,
        /// The end of what the emulator wrote to its standard error.
        log_tail: String,
    },
    /// An RDS API call to the emulator was rejected (an unknown instance, a state that forbids
    /// the action, ...), or its answer could not be read.
    #[error("RDS {operation} failed: {code}: {message}")]
    Rds {
        /// The API operation (`create_db_instance`, `failover_db_cluster`, ...).
        operation: String,
        /// The AWS error code (`DBInstanceNotFound`, `InvalidDBInstanceState`, ...), or what
        /// went wrong on the way.
        code: String,
        /// The error message.
        message: String,
    },
    /// A call of another AWS service to the emulator (Secrets Manager, ...) was rejected (an
    /// unknown secret, a name already taken, ...), or its answer could not be read.
    #[error("{service} {operation} failed: {code}: {message}")]
    Aws {
        /// The service, as boto3 names it (`secretsmanager`).
        service: String,
        /// The API operation, as boto3 names it (`get_secret_value`).
        operation: String,
        /// The AWS error code (`ResourceNotFoundException`, `ResourceExistsException`, ...), or
        /// what went wrong on the way.
        code: String,
        /// The error message.
        message: String,
    },
}

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// Whether this is a server start that failed because its port was taken.
    pub(crate) fn is_port_conflict(&self) -> bool {
        matches!(self, Error::ServerStart { log_tail, .. }
            if log_tail.contains("could not bind") || log_tail.contains("Address already in use"))
    }
}
