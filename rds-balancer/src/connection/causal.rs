//! Causal reads: a read of a task that wrote goes to a reader that has replayed its write,
//! waiting up to `max_wait` for one, else to the writer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;

use super::RdsConnection;
use super::router::Routed;
use crate::causal::{Causal, Fetched, Flavour, Replay, fetch};
use crate::error::Error;
use crate::pool::HostPool;
use crate::position::Position;
use crate::route::{Decision, Route, Why};

/// The pause between two reads of the readers' positions while a read waits: doubling from
/// the first, up to the last.
const PACE: (Duration, Duration) = (Duration::from_millis(1), Duration::from_millis(8));

impl RdsConnection {
    /// The writer's replication position now: at least as new as every write this connection
    /// (or any other) had acknowledged when it was called. Hand it to another request or
    /// process, which reads inside [`with_position`](crate::with_position) to see those
    /// writes.
    ///
    /// One short query on the writer. Fails with [`ErrorKind::Config`](crate::ErrorKind::Config)
    /// when the writer keeps no comparable position (MariaDB without binary logging, MySQL
    /// without GTIDs, Aurora MySQL), and with the database's error when it cannot be asked.
    /// On Aurora PostgreSQL it is the writer's `durable_lsn` (`aurora-pg:88492069`).
    ///
    /// ```no_run
    /// use sea_orm::ConnectionTrait;
    ///
    /// # async fn demo(db: rds_balancer::RdsConnection) -> Result<(), sea_orm::DbErr> {
    /// db.execute_unprepared("UPDATE orders SET state = 'paid' WHERE id = 7").await?;
    /// let position = db.write_position().await?;
    /// let header = position.to_string(); // e.g. "0/3000148" on PostgreSQL
    /// # let _ = header; Ok(()) }
    /// ```
    pub async fn write_position(&self) -> crate::Result<Position> {
        let writer = Arc::clone(&self.cluster().hosts().writer);
        let flavour = match &self.router().causal {
            Some(causal) => causal.flavour,
            None => fetch::flavour(writer.conn()).await?,
        };
        fetch::writer_position(writer.conn(), flavour)
            .await?
            .ok_or(Error::Config(
                "the writer keeps no replication position to compare (binary logging or GTIDs are \
                 off, or Aurora MySQL)"
                    .into(),
            ))
    }

    /// In position mode, sends a read that read-your-writes held on the writer to a reader
    /// that has replayed the task's last write, if one has or catches up within `max_wait`;
    /// otherwise returns `routed` (the writer) as is.
    pub(super) async fn caught_up(&self, routed: Routed) -> Result<Routed, Error> {
        let router = self.router();
        let (Some(causal), Why::ReadYourWrites) = (&router.causal, routed.decision.why) else {
            return Ok(routed);
        };
        // The task's last write not known to be everywhere yet, and a `with_position` scope's.
        let (write, required) = (router.sticky.pending(), crate::causal::required());
        if write.is_none() && required.is_none() {
            return Ok(routed);
        }
        let operation = routed.operation;
        // Not counted on the writer while it waits for a reader.
        drop(routed);
        // Boxed: the statement's future stays small (and cheap to set up) for the reads that
        // do not wait.
        Box::pin(self.wait_caught_up(causal, write, required, operation)).await
    }

    /// [`caught_up`](Self::caught_up) for a read that waits: for the task's write number
    /// `write` and the scope's position `required`.
    async fn wait_caught_up(
        &self,
        causal: &Causal,
        write: Option<u64>,
        required: Option<Option<Position>>,
        operation: &'static str,
    ) -> Result<Routed, Error> {
        let router = self.router();
        let asked = Instant::now();
        let deadline = asked + causal.max_wait;
        let cluster = self.cluster();
        let mut hosts = cluster.hosts();
        // The writer's position and the readers' at once: one round trip when a reader has it.
        let writer_position = async {
            match write {
                Some(write) => self
                    .writer_position(causal, &hosts.writer, write)
                    .await
                    .map(Some),
                None => Some(None),
            }
        };
        let (fetched, ()) =
            futures_util::join!(writer_position, refresh(causal, &hosts.readers, asked));
        let held = Decision {
            route: Route::Writer,
            why: Why::ReadYourWrites,
        };
        // `None`: the writer's position could not be read, or the two cannot be compared.
        let target = match (&fetched, required) {
            (None, _) | (Some(None), None) | (_, Some(None)) => None,
            (Some(Some(fetched)), None) => Some(fetched.position.clone()),
            (Some(None), Some(Some(required))) => Some(required),
            (Some(Some(fetched)), Some(Some(required))) => fetched.position.join(&required),
        };
        let Some(target) = target else {
            return self.admit(held, operation, None);
        };
        let covers = fetched.flatten().map(|fetched| fetched.covers);
        let mut pause = PACE.0;
        loop {
            let has = |reader: &HostPool| reader.replayed().has(&target);
            // The readers in service now (not as of the last refresh): a reader that joined
            // meanwhile is judged too, or it might lack what this covers.
            let current = cluster.hosts();
            if let Some(covers) = covers
                && !current.readers.is_empty()
                && current.readers.iter().all(|r| has(r))
            {
                // Every reader has these writes: their tasks read anywhere again.
                router.sticky.cover(covers);
                causal.writer.forget_covered(covers);
            }
            if let Some(guard) = cluster.admit_reader_if(has)? {
                let decision = Decision {
                    route: Route::Reader,
                    why: Why::CaughtUp,
                };
                return Ok(self.routed(guard, decision, operation));
            }
            let now = Instant::now();
            // No reader left that may catch up (none at all, or every one replays nothing
            // anymore: promoted): the writer, without waiting out `max_wait`. A reader that
            // joins meanwhile is read on the next turn, as `hosts` is read again.
            if now >= deadline || !hosts.readers.iter().any(|r| r.replayed().may_catch_up()) {
                return self.admit(held, operation, None);
            }
            tokio::time::sleep(pause.min(deadline - now)).await;
            pause = (pause * 2).min(PACE.1);
            let since = Instant::now();
            hosts = cluster.hosts();
            let _ =
                tokio::time::timeout_at(deadline.into(), refresh(causal, &hosts.readers, since))
                    .await;
        }
    }

    /// Records that the current task wrote (acknowledged). In position mode, also starts
    /// reading the writer's position in the background (bursts of writes share one), so that
    /// the write's target is a position close to it.
    pub(super) fn wrote(&self) {
        let router = self.router();
        router.wrote();
        let (Some(causal), Some(count)) = (&router.causal, router.sticky.write_count()) else {
            return;
        };
        if !causal.writer.claim_prefetch() {
            return;
        }
        let (positions, flavour) = (Arc::clone(&causal.writer), causal.flavour);
        let writer = Arc::clone(&self.cluster().hosts().writer);
        self.cluster().lifecycle().spawn_until_stopped(async move {
            let written = || count.load(std::sync::atomic::Ordering::SeqCst);
            positions
                .prefetch(written, || writer_position(&writer, flavour))
                .await;
        });
    }

    /// The writer's position covering write number `write`, shared with every task waiting.
    async fn writer_position(
        &self,
        causal: &Causal,
        writer: &Arc<HostPool>,
        write: u64,
    ) -> Option<Fetched> {
        let sticky = &self.router().sticky;
        causal
            .writer
            .covering(
                write,
                || sticky.written(),
                || writer_position(writer, causal.flavour),
            )
            .await
    }
}

/// The writer's position now, or `None` (logged) when it could not be read in time.
async fn writer_position(writer: &HostPool, flavour: Flavour) -> Option<Position> {
    fetch::in_time(writer, fetch::writer_position(writer.conn(), flavour))
        .await
        .flatten()
}

/// Reads every reader's replayed position, unless one read since `since` is known.
async fn refresh(causal: &Causal, readers: &[Arc<HostPool>], since: Instant) {
    let schedulable = readers.iter().filter(|r| r.health().is_schedulable());
    join_all(schedulable.map(|reader| {
        let read = || async {
            let read = fetch::replayed_while_replicating(reader.conn(), causal.flavour);
            match fetch::in_time(reader, read).await {
                Some(Some(position)) => Replay::At(position),
                Some(None) => Replay::Stopped,
                None => Replay::Unknown,
            }
        };
        reader.replayed().refresh(since, read)
    }))
    .await;
}
