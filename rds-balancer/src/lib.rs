#![doc = include_str!("../../README.md")]

mod classify;
mod connection;
mod error;
mod options;
mod pool;
mod route;
mod shutdown;

pub use self::classify::{Classifier, Explanation, Reason, Target, classify, explain};
pub use self::connection::{RdsConnection, RdsStream};
pub use self::error::{Error, ErrorKind, Result};
pub use self::options::RdsConnectionBuilder;
pub use self::route::{ReaderSelection, Route, current_route, with_route};
pub use self::shutdown::ShutdownReport;

#[cfg(feature = "macros")]
pub use rds_balancer_macros::{read_replica, writer};

/// Not public API: used by the code the attribute macros generate.
#[doc(hidden)]
pub mod __private {
    pub use crate::route::{Route, scoped};
}
