//! Promoting a replica re-points the other replicas at it, checked by asking the servers. Fails
//! (never skips) when PostgreSQL is missing.
// Helper functions of tests panic on failure like the tests themselves.
#![allow(clippy::unwrap_used)]

use std::thread;
use std::time::{Duration, Instant};

use rds_balancer_testkit::{PgCluster, PgNode};

const WAIT: Duration = Duration::from_secs(30);

fn start(replicas: usize) -> PgCluster {
    PgCluster::start(replicas).unwrap_or_else(|e| panic!("could not start the cluster: {e}"))
}

/// Waits until `node` answers `sql` with `want`.
fn wait_for(node: &PgNode, sql: &str, want: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let got = node.psql("postgres", sql);
        if got.as_deref().is_ok_and(|got| got == want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} never answered {want:?} to `{sql}` (last answer: {got:?})",
            node.name()
        );
        thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until `replica` has row `id` in table `t` and streams from `primary`, in recovery.
fn wait_following(replica: &PgNode, primary: &PgNode, id: u32) {
    wait_for(
        replica,
        &format!("SELECT count(*) FROM t WHERE id = {id}"),
        "1",
    );
    wait_for(
        replica,
        "SELECT status, sender_port FROM pg_stat_wal_receiver",
        &format!("streaming|{}", primary.port()),
    );
    wait_for(replica, "SELECT pg_is_in_recovery()", "t");
}

#[test]
fn a_write_on_the_promoted_replica_reaches_the_other_replica() {
    let cluster = start(2);
    cluster
        .psql(
            "postgres",
            "CREATE TABLE t (id int); INSERT INTO t VALUES (1)",
        )
        .unwrap();
    cluster.wait_replicated(WAIT).unwrap();
    let (old_primary, new_primary, other) = (
        cluster.primary(),
        &cluster.replicas()[0],
        &cluster.replicas()[1],
    );

    old_primary.kill().unwrap();
    cluster.promote(0).unwrap();

    assert_eq!(cluster.primary().port(), new_primary.port());
    let replicas: Vec<u16> = cluster.replicas().iter().map(PgNode::port).collect();
    assert_eq!(replicas, [other.port()]);
    assert_eq!(
        new_primary
            .psql("postgres", "SELECT pg_is_in_recovery()")
            .unwrap(),
        "f"
    );
    new_primary
        .psql("postgres", "INSERT INTO t VALUES (2)")
        .unwrap();
    wait_following(other, new_primary, 2);
    assert_eq!(
        other.psql("postgres", "SELECT count(*) FROM t").unwrap(),
        "2"
    );
}

#[test]
fn replicas_down_during_a_promotion_follow_once_back_and_promotions_repeat() {
    let cluster = start(3);
    cluster
        .psql(
            "postgres",
            "CREATE TABLE t (id int); INSERT INTO t VALUES (1)",
        )
        .unwrap();
    cluster.wait_replicated(WAIT).unwrap();
    let [r1, r2, r3] = [0, 1, 2].map(|i| &cluster.replicas()[i]);

    // First failover, with replica-2 stopped and replica-3 paused meanwhile.
    r2.stop().unwrap();
    r3.pause().unwrap();
    cluster.primary().kill().unwrap();
    cluster.promote(0).unwrap();
    assert_eq!(cluster.primary().name(), "replica-1");
    r1.psql("postgres", "INSERT INTO t VALUES (2)").unwrap();
    r2.start().unwrap();
    r3.resume().unwrap();
    wait_following(r2, r1, 2);
    wait_following(r3, r1, 2);

    // Second failover: replica-2 takes over from replica-1, and replica-3 follows it.
    r1.psql("postgres", "CHECKPOINT").unwrap();
    cluster.wait_replicated(WAIT).unwrap();
    r1.kill().unwrap();
    cluster.promote(0).unwrap();
    assert_eq!(cluster.primary().name(), "replica-2");
    let names: Vec<&str> = cluster.replicas().iter().map(PgNode::name).collect();
    assert_eq!(names, ["replica-3"]);
    r2.psql("postgres", "INSERT INTO t VALUES (3)").unwrap();
    wait_following(r3, r2, 3);
    assert_eq!(r3.psql("postgres", "SELECT count(*) FROM t").unwrap(), "3");
}
