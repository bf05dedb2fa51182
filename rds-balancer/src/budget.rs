//! The connection budget: at most `max_total_connections` connections open across the
//! writer's and every reader's pool of one connection, so that a burst waits here instead of
//! meeting the server's (or RDS Proxy's) "too many connections".
//!
//! Each statement, stream or `transaction(..)` holds a [`Slot`] while it runs. What a slot
//! promises is exact, counted under one lock, with what the pools report (open and idle
//! connections, `sqlx`'s own counts):
//! - a slot *from idle* is given while its host has more idle connections than the slots from
//!   idle it already gave and the idle connections the budget is closing there: every such
//!   slot not yet served finds one, so none of them opens a connection;
//! - otherwise a slot *that may open* one is given while the connections open across the pools,
//!   plus the openings already allowed and not yet seen, stay under the limit (a pool's size
//!   counts a connection from the moment it starts opening; an opening is seen when a pool
//!   grows). A slot that may open but takes an idle connection instead lets at most one slot
//!   from idle open in its place;
//! - otherwise an idle connection of another host that no slot counts on is closed to make
//!   room, and the statement looks again.
//!
//! The cost of exactness: `sqlx` does not tell when a statement takes its connection, so a slot
//! from idle counts against its host's idle connections until it is released, even once its
//! statement holds the connection. With `k` such statements running on a host, one more reuses
//! an idle connection there only while the host has more than `k` idle; when the budget is
//! full, it waits otherwise.
//!
//! A statement that finds none of these waits, holding no lock, for a slot to be released or a
//! connection to be closed. One thing gives no signal: `sqlx` pings a connection its statement
//! is done with, in a task of its own, before putting it back among the idle ones. While a
//! pool has more connections busy than slots could hold, a waiter also looks again after a
//! short back-off (1 ms, doubling to 32 ms).

use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use tokio::sync::Notify;

use crate::error::Error;
use crate::pool::{HostPool, Hosts, close_one_idle, occupancy};

/// The longest back-off between two looks while a connection is on its way back to its pool.
const MAX_BACKOFF: Duration = Duration::from_millis(32);

/// The budget shared by the pools of one connection.
#[derive(Debug)]
pub(crate) struct Budget {
    limit: u32,
    wait: Duration,
    shared: Arc<Shared>,
}

/// The counts, and the signal that they changed.
#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    /// Woken when a slot is released, a connection closed, or the budget closed.
    changed: Notify,
}

#[derive(Debug, Default)]
struct State {
    hosts: Vec<Tracked>,
    closed: bool,
}

/// What the budget counts for one host's pool.
#[derive(Debug)]
struct Tracked {
    /// The host's address: its identity while it is tracked.
    key: usize,
    pool: Weak<HostPool>,
    /// Slots given to reuse an idle connection.
    from_idle: u32,
    /// Slots given with room to open a connection.
    may_open: u32,
    /// Openings seen (the pool grew) while slots that may open were held; at most `may_open`.
    opened: u32,
    /// The pool's size when last seen.
    size_seen: u32,
    /// Idle connections the budget is closing to make room.
    closing: u32,
}

/// A host's pool as seen now, with its counts.
struct Seen {
    index: usize,
    pool: Arc<HostPool>,
    size: u32,
    idle: u32,
}

/// A slot of the budget, held while a statement, stream or transaction runs.
#[derive(Debug)]
pub(crate) struct Slot {
    shared: Arc<Shared>,
    key: usize,
    kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    FromIdle,
    MayOpen,
}

/// What one look at the counts decided.
enum Step {
    Granted(Slot),
    /// Close an idle connection of this host, then look again.
    Close(Arc<HostPool>, usize),
    /// Wait for a change; `true` when a connection may be on its way back to a pool (no signal).
    Wait(bool),
    Closed,
}

impl Budget {
    /// A budget of `limit` connections; a statement waits up to `wait` for a slot.
    pub(crate) fn new(limit: u32, wait: Duration) -> Self {
        Budget {
            limit,
            wait,
            shared: Arc::default(),
        }
    }

    /// Takes a slot for work on `host` (one of `hosts`, or a host leaving service), waiting up to
    /// the acquire timeout, such that the pools together never hold more than the limit.
    pub(crate) async fn reserve(&self, host: &Arc<HostPool>, hosts: &Hosts) -> Result<Slot, Error> {
        let deadline = tokio::time::Instant::now() + self.wait;
        let mut backoff = Duration::from_millis(1);
        loop {
            // Listening before looking: a change after the look wakes this wait.
            let changed = self.shared.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let step = self.step(&mut self.shared.lock(), host, hosts);
            match step {
                Step::Granted(slot) => return Ok(slot),
                Step::Closed => return Err(Error::ShuttingDown),
                Step::Close(victim, key) => {
                    let _closing = Closing {
                        shared: &self.shared,
                        key,
                    };
                    close_one_idle(victim.conn()).await;
                }
                Step::Wait(in_transit) => {
                    let look_again = async {
                        if in_transit {
                            tokio::time::sleep(backoff).await;
                        } else {
                            std::future::pending::<()>().await;
                        }
                    };
                    tokio::select! {
                        () = &mut changed => {}
                        () = look_again => backoff = (backoff * 2).min(MAX_BACKOFF),
                        () = tokio::time::sleep_until(deadline) => {
                            return Err(Error::BudgetExhausted {
                                limit: self.limit,
                                waited: self.wait,
                            });
                        }
                    }
                }
            }
        }
    }

    /// Refuses every slot from now on (`ShuttingDown`), waiters included.
    pub(crate) fn close(&self) {
        self.shared.lock().closed = true;
        self.shared.changed.notify_waiters();
    }

    /// One look at the counts, under the lock.
    fn step(&self, state: &mut State, host: &Arc<HostPool>, hosts: &Hosts) -> Step {
        if state.closed {
            return Step::Closed;
        }
        let target = state.track(host);
        for other in std::iter::once(&hosts.writer).chain(&hosts.readers) {
            state.track(other);
        }
        let seen = state.look();
        let (open, unseen_openings) = seen.iter().fold((0u64, 0u64), |(open, unseen), s| {
            let t = &state.hosts[s.index];
            (
                open + u64::from(s.size),
                unseen + u64::from(t.may_open - t.opened),
            )
        });
        let spare_idle = |s: &Seen, t: &Tracked| s.idle > t.from_idle + t.closing;
        let mine = seen.iter().find(|s| s.index == target);
        if mine.is_some_and(|s| spare_idle(s, &state.hosts[target])) {
            return state.grant(target, Kind::FromIdle, &self.shared);
        }
        if open + unseen_openings < u64::from(self.limit) {
            return state.grant(target, Kind::MayOpen, &self.shared);
        }
        let victim = seen
            .iter()
            .filter(|s| s.index != target && spare_idle(s, &state.hosts[s.index]))
            .max_by_key(|s| s.idle.saturating_sub(state.hosts[s.index].from_idle));
        if let Some(victim) = victim {
            let tracked = &mut state.hosts[victim.index];
            tracked.closing += 1;
            return Step::Close(Arc::clone(&victim.pool), tracked.key);
        }
        // Busy connections beyond what the slots and closings account for are on their way back
        // to their pool (or used outside the budget): no signal when they arrive.
        let in_transit = seen.iter().any(|s| {
            let t = &state.hosts[s.index];
            s.size - s.idle.min(s.size) > t.from_idle + t.may_open + t.closing
        });
        Step::Wait(in_transit)
    }
}

impl State {
    /// The index of `host`'s counts, tracking it from now on if it was not.
    fn track(&mut self, host: &Arc<HostPool>) -> usize {
        let key = Arc::as_ptr(host) as usize;
        if let Some(index) = self.hosts.iter().position(|t| t.key == key) {
            return index;
        }
        self.hosts.push(Tracked {
            key,
            pool: Arc::downgrade(host),
            from_idle: 0,
            may_open: 0,
            opened: 0,
            size_seen: occupancy(host.conn()).0,
            closing: 0,
        });
        self.hosts.len() - 1
    }

    /// Every tracked pool as it is now; forgets the pools dropped with nothing counted, and
    /// records the openings seen since the last look.
    fn look(&mut self) -> Vec<Seen> {
        self.hosts
            .retain(|t| t.pool.strong_count() > 0 || t.from_idle + t.may_open + t.closing > 0);
        let mut seen = Vec::with_capacity(self.hosts.len());
        for (index, tracked) in self.hosts.iter_mut().enumerate() {
            let Some(pool) = tracked.pool.upgrade() else {
                continue;
            };
            let (size, idle) = occupancy(pool.conn());
            if size > tracked.size_seen {
                tracked.opened =
                    (tracked.opened + (size - tracked.size_seen)).min(tracked.may_open);
            }
            tracked.size_seen = size;
            seen.push(Seen {
                index,
                pool,
                size,
                idle: u32::try_from(idle).unwrap_or(u32::MAX),
            });
        }
        seen
    }

    fn grant(&mut self, index: usize, kind: Kind, shared: &Arc<Shared>) -> Step {
        let tracked = &mut self.hosts[index];
        match kind {
            Kind::FromIdle => tracked.from_idle += 1,
            Kind::MayOpen => tracked.may_open += 1,
        }
        Step::Granted(Slot {
            shared: Arc::clone(shared),
            key: tracked.key,
            kind,
        })
    }

    fn tracked(&mut self, key: usize) -> Option<&mut Tracked> {
        self.hosts.iter_mut().find(|t| t.key == key)
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(tracked) = self.shared.lock().tracked(self.key) {
            match self.kind {
                Kind::FromIdle => tracked.from_idle -= 1,
                Kind::MayOpen => {
                    tracked.may_open -= 1;
                    // Count it as one that opened: the openings not yet seen never shrink.
                    tracked.opened = tracked.opened.saturating_sub(1).min(tracked.may_open);
                }
            }
        }
        self.shared.changed.notify_waiters();
    }
}

/// An idle connection being closed to make room; counted until the close is done (or given
/// up, when the statement waiting for it is dropped).
struct Closing<'a> {
    shared: &'a Shared,
    key: usize,
}

impl Drop for Closing<'_> {
    fn drop(&mut self) {
        if let Some(tracked) = self.shared.lock().tracked(self.key) {
            tracked.closing -= 1;
        }
        self.shared.changed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts() -> Hosts {
        Hosts {
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
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_beyond_the_budget_waits_then_fails_typed() {
        let budget = Budget::new(2, Duration::from_secs(3));
        let hosts = hosts();
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

    #[tokio::test(start_paused = true)]
    async fn a_waiter_is_woken_by_a_release_not_by_the_clock() {
        let budget = Arc::new(Budget::new(1, Duration::from_secs(3600)));
        let hosts = Arc::new(hosts());
        let held = budget.reserve(&hosts.writer, &hosts).await.expect("slot");
        let waiter = {
            let (budget, hosts) = (Arc::clone(&budget), Arc::clone(&hosts));
            tokio::spawn(async move { budget.reserve(&hosts.writer, &hosts).await.map(drop) })
        };
        // With the clock paused, the runtime advances it only when every task waits on a
        // timer: the waiter waits on no timer but its deadline, an hour away.
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        let before = tokio::time::Instant::now();
        drop(held);
        waiter.await.expect("task").expect("the released slot");
        assert!(
            before.elapsed() < Duration::from_secs(1),
            "woken, not timed out"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_closed_budget_refuses_and_wakes_its_waiters() {
        let budget = Arc::new(Budget::new(1, Duration::from_secs(3600)));
        let hosts = Arc::new(hosts());
        let _held = budget.reserve(&hosts.writer, &hosts).await.expect("slot");
        let waiter = {
            let (budget, hosts) = (Arc::clone(&budget), Arc::clone(&hosts));
            tokio::spawn(async move { budget.reserve(&hosts.writer, &hosts).await.map(drop) })
        };
        tokio::task::yield_now().await;
        budget.close();
        let err = waiter.await.expect("task").expect_err("refused");
        assert_eq!(err.kind(), crate::ErrorKind::ShuttingDown);
        let err = budget
            .reserve(&hosts.writer, &hosts)
            .await
            .expect_err("refused");
        assert_eq!(err.kind(), crate::ErrorKind::ShuttingDown);
    }
}
