//! The fault-injection proxy in front of a real PostgreSQL server, driven with psql. Fails (never
//! skips) when PostgreSQL is missing.
// Helper functions of tests panic on failure like the tests themselves.
#![allow(clippy::unwrap_used)]

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{OnceLock, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use rds_balancer_testkit::{Error, FaultProxy, PgCluster, SERVER_PORT_SQL};

const WAIT: Duration = Duration::from_secs(30);

/// PostgreSQL's SSLRequest: the first message psql sends; the server answers one byte, `N`.
const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

/// One server shared by the tests (each has its own proxy, and tells its queries apart by text).
fn cluster() -> &'static PgCluster {
    static CLUSTER: OnceLock<PgCluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        PgCluster::start(0).unwrap_or_else(|e| panic!("could not start PostgreSQL: {e}"))
    })
}

/// A proxy in front of the shared server.
fn proxy() -> FaultProxy {
    let target = SocketAddr::from(([127, 0, 0, 1], cluster().primary().port()));
    FaultProxy::start(target).unwrap()
}

fn psql(proxy: &FaultProxy, sql: &str, timeout: Duration) -> Result<String, Error> {
    cluster().psql_at(proxy.port(), "postgres", sql, timeout)
}

/// Runs `sql` through `proxy` on another thread.
fn spawn_psql(proxy: &FaultProxy, sql: &'static str) -> thread::JoinHandle<Result<String, Error>> {
    let port = proxy.port();
    thread::spawn(move || cluster().psql_at(port, "postgres", sql, Duration::from_secs(120)))
}

/// How many sessions run exactly `sql` now, asked of the server directly (not through a proxy).
fn running(sql: &str) -> usize {
    let query = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query = '{}'",
        sql.replace('\'', "''")
    );
    cluster()
        .primary()
        .psql("postgres", &query)
        .unwrap()
        .parse()
        .unwrap()
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// A raw connection through `proxy` that has sent PostgreSQL's SSLRequest.
fn raw_connect(proxy: &FaultProxy) -> TcpStream {
    let mut conn = TcpStream::connect(proxy.addr()).unwrap();
    conn.write_all(&SSL_REQUEST).unwrap();
    conn
}

/// Reads one byte within `timeout`: `Ok(Some(b))`, `Ok(None)` at end-of-file, or the error.
fn read_byte(conn: &mut TcpStream, timeout: Duration) -> io::Result<Option<u8>> {
    conn.set_read_timeout(Some(timeout))?;
    let mut byte = [0];
    match conn.read(&mut byte)? {
        0 => Ok(None),
        _ => Ok(Some(byte[0])),
    }
}

fn is_timeout(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

#[test]
fn queries_through_the_proxy_reach_the_target_both_ways_and_leave_nothing_open() {
    let node = cluster().primary();
    let proxy = proxy();
    assert_eq!(
        proxy.addr(),
        SocketAddr::from(([127, 0, 0, 1], proxy.port()))
    );
    assert_eq!(proxy.target().port(), node.port());
    assert_ne!(proxy.port(), node.port());

    assert_eq!(
        psql(&proxy, SERVER_PORT_SQL, WAIT).unwrap(),
        node.port().to_string()
    );
    // Many chunks each way.
    let upload = format!("SELECT length('{}')", "x".repeat(100_000));
    assert_eq!(psql(&proxy, &upload, WAIT).unwrap(), "100000");
    let download = psql(&proxy, "SELECT repeat('y', 2000000)", WAIT).unwrap();
    assert_eq!(download.len(), 2_000_000);
    assert!(download.bytes().all(|b| b == b'y'));
    // Several at once.
    let ports: Vec<_> = (0..4)
        .map(|_| spawn_psql(&proxy, "SELECT inet_server_port() FROM pg_sleep(0.2)"))
        .collect();
    for port in ports {
        let port = port.join().unwrap();
        assert!(
            port.as_deref().is_ok_and(|p| p == node.port().to_string()),
            "{port:?}"
        );
    }
    // psql closed its connections, and so did the proxy.
    wait_until("the proxy has no connection left", || {
        proxy.connections() == 0
    });
}

#[test]
fn a_blackhole_holds_an_in_flight_answer_until_restored() {
    const SQL: &str = "SELECT pg_sleep(3), 'held' AS blackhole_test";
    let proxy = proxy();
    let query = spawn_psql(&proxy, SQL);
    wait_until("the query runs on the server", || running(SQL) == 1);
    assert_eq!(proxy.connections(), 1);
    proxy.blackhole();
    let blackholed = Instant::now();

    // The server answers, but the answer does not get through.
    wait_until("the server has finished the query", || running(SQL) == 0);
    thread::sleep(Duration::from_millis(500));
    assert!(
        !query.is_finished(),
        "the answer got through the black hole: {:?}",
        query.join()
    );
    assert_eq!(proxy.connections(), 1, "the connection stays open");

    proxy.restore();
    assert_eq!(query.join().unwrap().unwrap(), "|held");
    assert!(blackholed.elapsed() >= Duration::from_millis(500));
    assert_eq!(psql(&proxy, "SELECT 1", WAIT).unwrap(), "1");
}

#[test]
fn a_connection_made_during_a_blackhole_hangs_and_is_forwarded_after_restore() {
    let proxy = proxy();
    proxy.blackhole();
    // The connect succeeds (a hung host, not a refusing one), but nothing answers.
    let mut raw = raw_connect(&proxy);
    let silence = read_byte(&mut raw, Duration::from_millis(500));
    assert!(
        silence.as_ref().is_err_and(is_timeout),
        "expected no answer, got {silence:?}"
    );
    wait_until("the proxy holds the connection", || {
        proxy.connections() == 1
    });

    // psql gives up after its own (connect) timeout, not at once as on a refused connection.
    let started = Instant::now();
    let err = psql(&proxy, "SELECT 1", Duration::from_secs(2)).unwrap_err();
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(1500), "{waited:?}: {err}");

    // Restored: the held connection reaches the server, with what it sent meanwhile.
    proxy.restore();
    assert_eq!(read_byte(&mut raw, WAIT).unwrap(), Some(b'N'));
    assert_eq!(psql(&proxy, "SELECT 1", WAIT).unwrap(), "1");
}

#[test]
fn latency_slows_every_round_trip_until_set_back_to_zero() {
    let proxy = proxy();
    let latency = Duration::from_millis(250);
    proxy.set_latency(latency);
    // At least four forwards one after another: startup, its answer, the query, its answer.
    let started = Instant::now();
    assert_eq!(psql(&proxy, "SELECT 1", WAIT).unwrap(), "1");
    let took = started.elapsed();
    assert!(took >= latency * 4, "took {took:?}");

    proxy.set_latency(Duration::ZERO);
    assert_eq!(psql(&proxy, "SELECT 2", WAIT).unwrap(), "2");
}

#[test]
fn reset_all_breaks_an_in_flight_query_at_once() {
    const SQL: &str = "SELECT pg_sleep(60) AS reset_all_test";
    let proxy = proxy();
    let query = spawn_psql(&proxy, SQL);
    wait_until("the query runs on the server", || running(SQL) == 1);
    assert_eq!(proxy.connections(), 1);

    let reset = Instant::now();
    proxy.reset_all();
    assert_eq!(proxy.connections(), 0);
    let result = query.join().unwrap();
    let took = reset.elapsed();
    // Far less than the minute the query had left; psql saw the connection drop, it was not
    // killed at its deadline.
    assert!(took < Duration::from_secs(20), "took {took:?}");
    let Err(Error::Command { stderr, .. }) = &result else {
        panic!("expected psql to fail on its own, got {result:?}");
    };
    assert!(stderr.to_lowercase().contains("connection"), "{stderr}");

    // The server's session sleeps on (it notices only when it next writes): end it.
    let terminate = format!(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE query = '{SQL}'"
    );
    cluster().primary().psql("postgres", &terminate).unwrap();
    assert_eq!(psql(&proxy, "SELECT 1", WAIT).unwrap(), "1");
}

#[test]
fn refused_connections_close_at_once_while_open_ones_go_on() {
    const SQL: &str = "SELECT pg_sleep(1), 'survived' AS refuse_test";
    let proxy = proxy();
    let query = spawn_psql(&proxy, SQL);
    wait_until("the query runs on the server", || running(SQL) == 1);
    proxy.refuse_new(true);

    // psql fails by itself (an `Error::Command`, not killed at the deadline).
    let result = psql(&proxy, "SELECT 1", WAIT);
    assert!(matches!(result, Err(Error::Command { .. })), "{result:?}");
    // A raw connection is accepted, then closed without an answer.
    let mut raw = raw_connect(&proxy);
    match read_byte(&mut raw, WAIT) {
        Ok(None) => {}
        Err(e) if !is_timeout(&e) => {}
        other => panic!("expected the connection to be closed, got {other:?}"),
    }

    assert_eq!(query.join().unwrap().unwrap(), "|survived");
    proxy.refuse_new(false);
    assert_eq!(psql(&proxy, "SELECT 1", WAIT).unwrap(), "1");
}

#[test]
fn dropping_the_proxy_closes_its_port_and_every_connection_at_once() {
    let proxy = proxy();
    let addr = proxy.addr();
    let mut forwarded = raw_connect(&proxy);
    assert_eq!(read_byte(&mut forwarded, WAIT).unwrap(), Some(b'N'));
    // A chunk waiting out a long latency, and a connection held by a black hole.
    proxy.set_latency(Duration::from_secs(60));
    forwarded.write_all(b"held").unwrap();
    proxy.blackhole();
    let mut held = raw_connect(&proxy);
    wait_until("the proxy holds both connections", || {
        proxy.connections() == 2
    });

    // Drop joins every thread of the proxy: none may wait out the latency or the black hole.
    let (dropped, done) = mpsc::channel();
    let started = Instant::now();
    thread::spawn(move || {
        drop(proxy);
        let _ = dropped.send(());
    });
    let returned = done.recv_timeout(Duration::from_secs(10));
    assert!(
        returned.is_ok(),
        "drop did not return within {:?}",
        started.elapsed()
    );

    let refused = TcpStream::connect(addr);
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.kind() == io::ErrorKind::ConnectionRefused),
        "the port still accepts: {refused:?}"
    );
    for conn in [&mut forwarded, &mut held] {
        match read_byte(conn, WAIT) {
            Ok(None) => {}
            Err(e) if !is_timeout(&e) => {}
            other => panic!("expected the connection to be closed, got {other:?}"),
        }
    }
}
