//! Replica lag on purpose, against real PostgreSQL and MariaDB servers (each test body runs on
//! both): an apply delay holds a new row back for the delay, a paused replay holds it back while
//! the replica keeps receiving, and the guards put the replica back when they end. Fails (never
//! skips) when PostgreSQL or MariaDB is missing.
//!
//! Each test starts its own cluster (a primary and one replica): a lagging replica holds up the
//! waits (`create_database`, `wait_replicated`) of every test sharing it.
// Helper functions of tests panic on failure like the tests themselves.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::thread;
use std::time::{Duration, Instant};

use rds_balancer_testkit::{ApplyDelay, MariaDbCluster, PgCluster, ReplayPaused};

/// The deadline of waits that should end at once or within a replica's ordinary catching up.
const WAIT: Duration = Duration::from_secs(30);
/// How much later than its delay a row may appear on the replica.
const LATE: Duration = Duration::from_secs(5);
/// How long a row on a replica whose replay is paused is watched to stay invisible.
const HOLD: Duration = Duration::from_millis(500);

/// Runs a test body once per backend: `both_backends!(a)` makes module `a` with tests
/// `postgres` and `mariadb`, calling `a(Kind::Postgres)` / `a(Kind::MariaDb)`.
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn postgres() {
                super::$name(super::Kind::Postgres)
            }
            #[test]
            fn mariadb() {
                super::$name(super::Kind::MariaDb)
            }
        }
    )*};
}

both_backends!(
    apply_delay_holds_a_new_row_back_for_the_delay_and_zero_makes_replication_prompt,
    paused_replay_holds_a_new_row_back_while_the_replica_keeps_receiving,
    dropped_guards_and_resume_replay_leave_the_replica_replaying_without_delay,
);

#[derive(Debug, Clone, Copy)]
enum Kind {
    Postgres,
    MariaDb,
}

/// A primary and one replica with database `lag` and its table `t (id int primary key)`.
enum Cluster {
    Postgres(PgCluster),
    MariaDb(MariaDbCluster),
}

impl Cluster {
    fn start(kind: Kind) -> Cluster {
        let table = "CREATE TABLE t (id int PRIMARY KEY)";
        let cluster = match kind {
            Kind::Postgres => {
                let cluster = PgCluster::start(1)
                    .unwrap_or_else(|e| panic!("could not start the PostgreSQL cluster: {e}"));
                cluster.create_database("lag").unwrap();
                cluster.psql("lag", table).unwrap();
                Cluster::Postgres(cluster)
            }
            Kind::MariaDb => {
                let cluster = MariaDbCluster::start(1)
                    .unwrap_or_else(|e| panic!("could not start the MariaDB cluster: {e}"));
                cluster.create_database("lag").unwrap();
                cluster.sql("lag", table).unwrap();
                Cluster::MariaDb(cluster)
            }
        };
        match &cluster {
            Cluster::Postgres(c) => c.wait_replicated(WAIT),
            Cluster::MariaDb(c) => c.wait_replicated(WAIT),
        }
        .unwrap();
        cluster
    }

    /// The apply delay the tests set: 300 ms on PostgreSQL; MariaDB counts whole seconds.
    fn delay(&self) -> Duration {
        match self {
            Cluster::Postgres(_) => Duration::from_millis(300),
            Cluster::MariaDb(_) => Duration::from_secs(1),
        }
    }

    /// Inserts row `id` on the primary.
    fn insert(&self, id: u32) {
        let sql = format!("INSERT INTO t VALUES ({id})");
        match self {
            Cluster::Postgres(c) => c.psql("lag", &sql),
            Cluster::MariaDb(c) => c.sql("lag", &sql),
        }
        .unwrap();
    }

    /// Whether the replica has row `id`.
    fn visible(&self, id: u32) -> bool {
        let sql = format!("SELECT count(*) FROM t WHERE id = {id}");
        let count = match self {
            Cluster::Postgres(c) => c.replicas()[0].psql("lag", &sql),
            Cluster::MariaDb(c) => c.replicas()[0].sql("lag", &sql),
        }
        .unwrap();
        count == "1"
    }

    /// Pauses replay with SQL of its own, bypassing the kit.
    fn pause_replay_by_hand(&self) {
        match self {
            Cluster::Postgres(c) => {
                c.replicas()[0].psql("postgres", "SELECT pg_wal_replay_pause()")
            }
            Cluster::MariaDb(c) => c.replicas()[0].sql("", "STOP SLAVE SQL_THREAD"),
        }
        .unwrap();
    }

    fn pause_replay(&self) -> ReplayPaused<'_> {
        match self {
            Cluster::Postgres(c) => c.pause_replay(0),
            Cluster::MariaDb(c) => c.pause_replay(0),
        }
        .unwrap()
    }

    fn resume_replay(&self) {
        match self {
            Cluster::Postgres(c) => c.resume_replay(0),
            Cluster::MariaDb(c) => c.resume_replay(0),
        }
        .unwrap()
    }

    fn set_apply_delay(&self, delay: Duration) -> ApplyDelay<'_> {
        match self {
            Cluster::Postgres(c) => c.set_apply_delay(0, delay),
            Cluster::MariaDb(c) => c.set_apply_delay(0, delay),
        }
        .unwrap()
    }

    fn writer_position(&self) -> String {
        match self {
            Cluster::Postgres(c) => c.writer_position(),
            Cluster::MariaDb(c) => c.writer_position(),
        }
        .unwrap()
    }

    fn replayed_position(&self) -> String {
        match self {
            Cluster::Postgres(c) => c.replayed_position(0),
            Cluster::MariaDb(c) => c.replayed_position(0),
        }
        .unwrap()
    }

    fn received_position(&self) -> String {
        match self {
            Cluster::Postgres(c) => c.received_position(0),
            Cluster::MariaDb(c) => c.received_position(0),
        }
        .unwrap()
    }

    /// Whether position `at` is at or past `target`: LSNs compared as numbers; GTID positions
    /// by sequence number, in every domain of `target`.
    fn reached(&self, at: &str, target: &str) -> bool {
        match self {
            Cluster::Postgres(_) => lsn(at) >= lsn(target),
            Cluster::MariaDb(_) => {
                let at = gtids(at);
                gtids(target)
                    .iter()
                    .all(|(domain, seq)| at.get(domain).is_some_and(|s| s >= seq))
            }
        }
    }

    /// Waits until the replica has row `id`; fails the test unless it is there within `within`
    /// of `since`. Returns how long after `since` it was first seen.
    fn wait_visible(&self, id: u32, since: Instant, within: Duration) -> Duration {
        wait_until(
            &format!("row {id} to appear on the replica"),
            since,
            within,
            || self.visible(id),
        )
    }

    /// Waits until the replica's replayed position reaches `target` (within [`WAIT`]).
    fn wait_replayed(&self, target: &str) {
        let what = format!("the replica's replayed position to reach {target}");
        wait_until(&what, Instant::now(), WAIT, || {
            self.reached(&self.replayed_position(), target)
        });
    }
}

/// `X/Y` (two hexadecimal halves) as a number.
fn lsn(text: &str) -> u64 {
    let (high, low) = text
        .split_once('/')
        .unwrap_or_else(|| panic!("not an LSN: {text:?}"));
    (u64::from_str_radix(high, 16).unwrap() << 32) | u64::from_str_radix(low, 16).unwrap()
}

/// `domain-server-seq,...` as domain -> sequence number.
fn gtids(text: &str) -> BTreeMap<u32, u64> {
    text.split(',')
        .filter(|gtid| !gtid.trim().is_empty())
        .map(|gtid| {
            let parts: Vec<&str> = gtid.trim().split('-').collect();
            let [domain, _server, seq] = parts[..] else {
                panic!("not a GTID: {gtid:?}");
            };
            (domain.parse().unwrap(), seq.parse().unwrap())
        })
        .collect()
}

/// Polls `done` until it holds; fails the test if that takes longer than `within` after
/// `since`. Returns how long after `since` it held.
fn wait_until(
    what: &str,
    since: Instant,
    within: Duration,
    mut done: impl FnMut() -> bool,
) -> Duration {
    loop {
        if done() {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < within,
            "timed out after {within:?} waiting for {what}"
        );
        thread::sleep(Duration::from_millis(5));
    }
}

fn apply_delay_holds_a_new_row_back_for_the_delay_and_zero_makes_replication_prompt(kind: Kind) {
    let cluster = Cluster::start(kind);
    let delay = cluster.delay();
    let delayed = cluster.set_apply_delay(delay);

    let written = Instant::now();
    cluster.insert(1);
    let writer = cluster.writer_position();
    assert!(
        !cluster.visible(1),
        "{kind:?}: the row is on the replica right after the insert, despite a {delay:?} delay"
    );
    let seen = cluster.wait_visible(1, written, delay + LATE);
    assert!(
        seen >= delay,
        "{kind:?}: the row appeared {seen:?} after the insert began, before the {delay:?} delay"
    );
    // Not within LATE: on PostgreSQL a replica that replayed everything stays behind the insert
    // position when the last record ended at a WAL page boundary, until the next record (the
    // background writer logs one within 15 s).
    cluster.wait_replayed(&writer);
    eprintln!("{kind:?}: with a {delay:?} apply delay the row appeared after {seen:?}");

    delayed.reset().unwrap();
    let written = Instant::now();
    cluster.insert(2);
    let seen = cluster.wait_visible(2, written, WAIT);
    assert!(
        seen < delay,
        "{kind:?}: with the delay back to zero the row took {seen:?} to appear (the delay was \
         {delay:?})"
    );
    eprintln!("{kind:?}: with no apply delay the row appeared after {seen:?}");
}

fn paused_replay_holds_a_new_row_back_while_the_replica_keeps_receiving(kind: Kind) {
    let cluster = Cluster::start(kind);
    let paused = cluster.pause_replay();
    let replayed = cluster.replayed_position();
    let received = cluster.received_position();

    cluster.insert(1);
    let writer = cluster.writer_position();
    let what = format!("the replica's received position to advance from {received}");
    wait_until(&what, Instant::now(), WAIT, || {
        let now = cluster.received_position();
        now != received && cluster.reached(&now, &received)
    });
    let watched = Instant::now();
    while watched.elapsed() < HOLD {
        assert!(
            !cluster.visible(1),
            "{kind:?}: the row is on a replica whose replay is paused"
        );
        assert_eq!(
            cluster.replayed_position(),
            replayed,
            "{kind:?}: a replica whose replay is paused replayed"
        );
        thread::sleep(Duration::from_millis(20));
    }
    assert!(!cluster.reached(&cluster.replayed_position(), &writer));

    paused.resume().unwrap();
    cluster.wait_visible(1, Instant::now(), LATE);
    cluster.wait_replayed(&writer);
}

fn dropped_guards_and_resume_replay_leave_the_replica_replaying_without_delay(kind: Kind) {
    let cluster = Cluster::start(kind);
    let delay = cluster.delay();
    {
        let _paused = cluster.pause_replay();
        let _delayed = cluster.set_apply_delay(delay);
        cluster.insert(1);
        // Setting the delay left replay paused: the row stays away past its delay.
        let written = Instant::now();
        while written.elapsed() < delay + HOLD {
            assert!(
                !cluster.visible(1),
                "{kind:?}: the row is on the replica, whose replay was paused before an apply \
                 delay was set"
            );
            thread::sleep(Duration::from_millis(20));
        }
    } // The delay is set back to zero, then replay resumes.
    cluster.wait_visible(1, Instant::now(), LATE);
    let written = Instant::now();
    cluster.insert(2);
    let seen = cluster.wait_visible(2, written, WAIT);
    assert!(
        seen < delay,
        "{kind:?}: after its guard was dropped the delay still held a row back {seen:?}"
    );

    // A pause made without the kit ends with resume_replay.
    cluster.pause_replay_by_hand();
    cluster.insert(3);
    let watched = Instant::now();
    while watched.elapsed() < HOLD {
        assert!(
            !cluster.visible(3),
            "{kind:?}: the pause by hand did not hold"
        );
        thread::sleep(Duration::from_millis(20));
    }
    cluster.resume_replay();
    cluster.wait_visible(3, Instant::now(), LATE);
    cluster.resume_replay(); // Nothing to resume: does nothing.
}
