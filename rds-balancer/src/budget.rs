//! The connection budget: at most `max_total_connections` connections across the writer's and
//! every reader's pool of one connection, so that a burst waits here instead of meeting the
//! server's (or RDS Proxy's) "too many connections".
//!
//! Each statement, stream or `transaction(..)` holds a slot while it runs, so no more than the
//! budget are ever checked out at once. A host that needs a new connection while the pools
//! together already hold the budget first closes an idle connection of another pool.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::Error;
use crate::pool::{HostPool, Hosts, close_one_idle, occupancy};

/// The budget shared by the pools of one connection.
#[derive(Debug)]
pub(crate) struct Budget {
    limit: u32,
    slots: Arc<Semaphore>,
    /// Slots whose host had no idle connection when taken: each may be opening one, not yet
    /// counted in its pool's size.
    opening: Arc<AtomicU32>,
    /// Serialises making room, so two statements do not both see space for one connection.
    making_room: tokio::sync::Mutex<()>,
    wait: Duration,
}

/// A slot of the budget, held while a statement, stream or transaction runs.
#[derive(Debug)]
pub(crate) struct Slot {
    _permit: OwnedSemaphorePermit,
    /// Set when this slot counts in `opening`.
    opening: Option<Arc<AtomicU32>>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(opening) = &self.opening {
            opening.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl Budget {
    /// A budget of `limit` connections; a statement waits up to `wait` for a slot.
    pub(crate) fn new(limit: u32, wait: Duration) -> Self {
        Budget {
            limit,
            slots: Arc::new(Semaphore::new(usize::try_from(limit).unwrap_or(usize::MAX))),
            opening: Arc::new(AtomicU32::new(0)),
            making_room: tokio::sync::Mutex::new(()),
            wait,
        }
    }

    /// Takes a slot for work on `host`, waiting up to the acquire timeout, and makes sure `host`
    /// can get a connection without the pools exceeding the budget together.
    pub(crate) async fn reserve(&self, host: &HostPool, hosts: &Hosts) -> Result<Slot, Error> {
        let permit = tokio::time::timeout(self.wait, Arc::clone(&self.slots).acquire_owned())
            .await
            .map_err(|_| Error::BudgetExhausted {
                limit: self.limit,
                waited: self.wait,
            })?
            .map_err(|_| Error::ShuttingDown)?;
        let mut opening = None;
        if occupancy(host.conn()).1 == 0 {
            let _room = self.making_room.lock().await;
            let all = || std::iter::once(&hosts.writer).chain(&hosts.readers);
            let deadline = tokio::time::Instant::now() + self.wait;
            // Fewer than `limit` connections are checked out (this slot is free), so while the
            // pools hold the budget, a pool holds an idle one, or will in a moment (a pool takes
            // a connection back just after the statement that used it ends).
            loop {
                if occupancy(host.conn()).1 > 0 {
                    // `host` has one to reuse: nothing to open.
                    break;
                }
                let open: u32 = all().map(|h| occupancy(h.conn()).0).sum();
                if open + self.opening.load(Ordering::SeqCst) < self.limit {
                    self.opening.fetch_add(1, Ordering::SeqCst);
                    opening = Some(Arc::clone(&self.opening));
                    break;
                }
                let mut closed = false;
                for other in all().filter(|h| !std::ptr::eq(h.as_ref(), host)) {
                    if close_one_idle(other.conn()).await {
                        closed = true;
                        break;
                    }
                }
                if !closed {
                    if tokio::time::Instant::now() >= deadline {
                        return Err(Error::BudgetExhausted {
                            limit: self.limit,
                            waited: self.wait,
                        });
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        }
        Ok(Slot {
            _permit: permit,
            opening,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_burst_beyond_the_budget_waits_then_fails_typed() {
        let budget = Budget::new(2, Duration::from_secs(3));
        let hosts = Hosts {
            writer: HostPool::new(
                "writer",
                crate::pool::Role::Writer,
                crate::pool::Origin::Handed,
                sea_orm::DatabaseConnection::default(),
                &crate::health::HealthOptions::default(),
                None,
                false,
            ),
            readers: Vec::new(),
        };
        let a = budget.reserve(&hosts.writer, &hosts).await.expect("slot 1");
        let _b = budget.reserve(&hosts.writer, &hosts).await.expect("slot 2");
        let err = budget
            .reserve(&hosts.writer, &hosts)
            .await
            .expect_err("no third slot");
        assert_eq!(err.kind(), crate::ErrorKind::BudgetExhausted);
        drop(a);
        budget
            .reserve(&hosts.writer, &hosts)
            .await
            .expect("a slot freed is taken");
    }
}
