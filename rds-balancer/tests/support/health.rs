//! Helpers shared by the health, network-fault and failover tests: a connection that notices
//! failures within a second or two, waits on what the health snapshot says, and steady readers
//! that count what callers see.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rds_balancer::{
    ErrorKind, HealthState, HostHealthSnapshot, RdsConnection, RdsConnectionBuilder,
};
use sea_orm::{ConnectionTrait, DbErr};
use tokio::task::JoinHandle;

use super::{port_in, served_by, stmt};

/// How long any awaited condition may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(20);
/// How often a condition is looked at.
pub const POLL: Duration = Duration::from_millis(20);

/// A connection builder with writer `writer_url` (no readers yet) that notices failures within
/// a second or two: probes every 200 ms, enhanced failure monitoring after 1 s, two failed
/// probes 300 ms apart, 2 s to connect or get a pooled connection.
pub fn fast_builder(writer_url: String) -> RdsConnectionBuilder {
    RdsConnection::builder()
        .writer(writer_url)
        .sqlx_logging(false)
        .acquire_timeout(Duration::from_secs(2))
        .connect_timeout(Duration::from_secs(2))
        .health_check_interval(Some(Duration::from_millis(200)))
        .failure_detection_time(Duration::from_secs(1))
        .failure_detection_interval(Duration::from_millis(300))
        .failure_detection_count(2)
}

/// `host:port` of a host given by URL, as the builder names it.
pub fn name_of(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

/// Host `name` in `db`'s health snapshot.
pub fn host_of(db: &RdsConnection, name: &str) -> HostHealthSnapshot {
    let health = db.health();
    health
        .hosts
        .iter()
        .find(|h| h.name == name)
        .cloned()
        .unwrap_or_else(|| panic!("no host {name} in {health:#?}"))
}

/// The state of host `name` in `db`'s health snapshot.
pub fn state_of(db: &RdsConnection, name: &str) -> HealthState {
    host_of(db, name).state
}

/// Waits until `done` holds, failing with `what` and `db`'s health after [`DEADLINE`]; returns
/// how long that took.
pub async fn until(db: &RdsConnection, what: &str, mut done: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < DEADLINE,
            "{what}: not within {DEADLINE:?}; {:#?}",
            db.health()
        );
        tokio::time::sleep(POLL).await;
    }
    start.elapsed()
}

/// Waits until host `name` is in `state`; returns how long that took.
pub async fn until_state(db: &RdsConnection, name: &str, state: HealthState) -> Duration {
    until(db, &format!("{name} to become {state:?}"), || {
        state_of(db, name) == state
    })
    .await
}

/// Waits until a plain read through `db` is served by `port`; returns how long that took.
pub async fn until_served_by(db: &RdsConnection, port: u16) -> Duration {
    let start = Instant::now();
    while served_by(db).await != port {
        assert!(
            start.elapsed() < DEADLINE,
            "no read reached port {port} within {DEADLINE:?}; {:#?}",
            db.health()
        );
    }
    start.elapsed()
}

/// Runs a blocking call of the test kit (a client process, `reset_all`) off the runtime's
/// threads.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

/// Four workers reading continuously through one connection, counting what callers see.
#[derive(Debug)]
pub struct Readers {
    stop: Arc<AtomicBool>,
    /// Reads served, by the port of the server that answered.
    served: Arc<Mutex<HashMap<u16, usize>>>,
    failed: Arc<AtomicUsize>,
    errors: Arc<Mutex<Vec<String>>>,
    /// The longest a read took (since the start or [`Readers::reset_slowest`]).
    slowest: Arc<Mutex<Duration>>,
    /// When the workers started: the errors say when they happened since.
    pub origin: Instant,
    workers: Vec<JoinHandle<()>>,
}

/// What the workers of [`Readers`] saw, once stopped.
#[derive(Debug)]
pub struct ReadsSeen {
    /// Reads served, by the port of the server that answered.
    pub served: HashMap<u16, usize>,
    /// Reads that failed (an error, or no port in the answer).
    pub failed: usize,
    /// What each failure was, and when.
    pub errors: Vec<String>,
    /// The longest a read took (since the start or [`Readers::reset_slowest`]).
    pub slowest: Duration,
}

impl ReadsSeen {
    /// Every read served.
    pub fn total(&self) -> usize {
        self.served.values().sum()
    }

    /// Reads served by `port`.
    pub fn by(&self, port: u16) -> usize {
        self.served.get(&port).copied().unwrap_or(0)
    }
}

impl Readers {
    /// Starts the workers, each running `sql` (a read returning the serving server's port as
    /// `port`) in a loop.
    pub fn start(db: &RdsConnection, sql: impl Into<String>) -> Readers {
        let sql: Arc<str> = sql.into().into();
        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new(Mutex::new(HashMap::new()));
        let failed = Arc::new(AtomicUsize::new(0));
        let errors = Arc::new(Mutex::new(Vec::new()));
        let slowest = Arc::new(Mutex::new(Duration::ZERO));
        let origin = Instant::now();
        let workers = (0..4)
            .map(|_| {
                let (db, sql, stop, served, failed, errors, slowest) = (
                    db.clone(),
                    Arc::clone(&sql),
                    Arc::clone(&stop),
                    Arc::clone(&served),
                    Arc::clone(&failed),
                    Arc::clone(&errors),
                    Arc::clone(&slowest),
                );
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let sent = Instant::now();
                        let outcome: Result<_, DbErr> = db.query_one_raw(stmt(&db, &sql)).await;
                        {
                            let mut slowest = slowest.lock().unwrap();
                            *slowest = (*slowest).max(sent.elapsed());
                        }
                        let port = match &outcome {
                            Ok(Some(row)) => port_in(row),
                            _ => None,
                        };
                        match port {
                            Some(port) => *served.lock().unwrap().entry(port).or_default() += 1,
                            None => {
                                failed.fetch_add(1, Ordering::Relaxed);
                                let hosts: Vec<_> = db
                                    .health()
                                    .hosts
                                    .into_iter()
                                    .map(|h| (h.name, h.state, h.breaker, h.consecutive_failures))
                                    .collect();
                                let text = format!(
                                    "{outcome:?} (kind {:?}) at {:?}, after {:?}; hosts then {hosts:?}",
                                    outcome.as_ref().err().and_then(ErrorKind::of),
                                    origin.elapsed(),
                                    sent.elapsed(),
                                );
                                eprintln!("a read failed: {text}");
                                errors.lock().unwrap().push(text);
                            }
                        }
                    }
                })
            })
            .collect();
        Readers {
            stop,
            served,
            failed,
            errors,
            slowest,
            origin,
            workers,
        }
    }

    /// Forgets the longest read so far (reads then in progress still count).
    pub fn reset_slowest(&self) {
        *self.slowest.lock().unwrap() = Duration::ZERO;
    }

    /// Reads served so far by `port`.
    pub fn served_by(&self, port: u16) -> usize {
        self.served.lock().unwrap().get(&port).copied().unwrap_or(0)
    }

    /// Stops the workers; returns what they saw.
    pub async fn stop(self) -> ReadsSeen {
        self.stop.store(true, Ordering::Relaxed);
        for worker in self.workers {
            worker.await.unwrap();
        }
        let served = self.served.lock().unwrap().clone();
        let errors = self.errors.lock().unwrap().clone();
        ReadsSeen {
            served,
            failed: self.failed.load(Ordering::Relaxed),
            errors,
            slowest: *self.slowest.lock().unwrap(),
        }
    }
}
