//! Causal reads: read-your-writes by replication position.
//!
//! A task that wrote reads from a replica that has replayed the writer's position as of its
//! write, or from the writer. The pieces, each free of routing:
//!
//! - [`ReadYourWrites`]: the policy the application sets;
//! - [`fetch`]: the engines' own position queries;
//! - [`WriterPosition`]: the writer's position, fetched once for every task waiting;
//! - [`Replayed`]: each reader's replayed position, read once for every task waiting on it.
//!
//! Writes are numbered by the read-your-writes table ([`Sticky::by_position`]); a writer
//! position *covers* the writes numbered before it was fetched. Once every reader has replayed
//! a position, the writes it covers are covered for good: their tasks read anywhere again.
//!
//! [`Sticky::by_position`]: crate::route::Sticky::by_position

pub(crate) mod fetch;
mod join;
mod lag;
mod policy;
mod replayed;
mod scope;
mod writer;

use std::sync::Arc;
use std::time::Duration;

pub(crate) use self::fetch::Flavour;
pub(crate) use self::join::{JoinGate, hold as hold_joining, let_in as let_joining_in};
pub(crate) use self::lag::{ReplicaLag, spawn_monitor as spawn_lag_monitor};
pub(crate) use self::policy::Mode;
pub use self::policy::ReadYourWrites;
pub(crate) use self::replayed::{Replay, Replayed};
pub use self::scope::with_position;
pub(crate) use self::scope::{is_required, required};
pub(crate) use self::writer::{Fetched, WriterPosition};

/// Position mode's state of one connection.
#[derive(Debug)]
pub(crate) struct Causal {
    pub(crate) max_wait: Duration,
    pub(crate) flavour: Flavour,
    pub(crate) writer: Arc<WriterPosition>,
}

impl Causal {
    pub(crate) fn new(max_wait: Duration, flavour: Flavour) -> Self {
        Causal {
            max_wait,
            flavour,
            writer: Arc::default(),
        }
    }
}
