//! A TCP proxy on loopback that injects network faults between a client and a server.

use std::collections::HashMap;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::error::Error;

/// How often a waiting step (an idle read, a held chunk, the accept loop) looks at the flags.
const POLL: Duration = Duration::from_millis(10);
/// How long connecting to the target may take before the client's connection is closed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The most one read takes from a socket, and so the most forwarded per latency delay.
const CHUNK: usize = 64 * 1024;
/// How long [`FaultProxy::reset_all`] waits for the closed connections to be forgotten.
const RESET_WAIT: Duration = Duration::from_secs(2);

/// A TCP proxy between a client and one server, on its own loopback port, that injects network
/// faults on command: a black hole (a hung host or a partition), latency, connection resets and
/// refused connections.
///
/// Point the code under test at [`port`](Self::port) instead of the server's port: every
/// connection accepted there is forwarded to the target (a new connection to the target for each
/// one, bytes copied both ways, half-closes passed on). Faults apply at once to the connections
/// already open and to new ones, and are lifted as quickly.
///
/// It is plain threads and blocking sockets: one thread accepts, and two copy the bytes of each
/// connection; every wait is cut into 10 ms steps, so a change of fault is noticed within that.
/// Dropping the proxy closes its port and every connection, and joins every thread.
///
/// # Examples
///
/// An echo server behind the proxy:
///
/// ```
/// use std::io::{Read, Write};
/// use std::net::{TcpListener, TcpStream};
/// use std::time::Duration;
///
/// use rds_balancer_testkit::FaultProxy;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let server = TcpListener::bind("127.0.0.1:0")?;
/// let target = server.local_addr()?;
/// std::thread::spawn(move || {
///     for mut conn in server.incoming().flatten() {
///         std::thread::spawn(move || {
///             let mut buf = [0; 64];
///             while let Ok(n @ 1..) = conn.read(&mut buf) {
///                 let _ = conn.write_all(&buf[..n]);
///             }
///         });
///     }
/// });
///
/// let proxy = FaultProxy::start(target)?;
/// let mut client = TcpStream::connect(proxy.addr())?;
/// client.set_read_timeout(Some(Duration::from_millis(300)))?;
/// let mut buf = [0; 4];
///
/// client.write_all(b"ping")?;
/// client.read_exact(&mut buf)?;
/// assert_eq!(&buf, b"ping");
///
/// proxy.blackhole(); // the connection stays open, but nothing answers
/// client.write_all(b"pong")?;
/// assert!(client.read_exact(&mut buf).is_err());
///
/// proxy.restore(); // what was held is delivered
/// client.set_read_timeout(None)?;
/// client.read_exact(&mut buf)?;
/// assert_eq!(&buf, b"pong");
///
/// proxy.reset_all(); // the connection is closed under the client's feet
/// assert_eq!(client.read(&mut buf)?, 0);
/// assert_eq!(proxy.connections(), 0);
/// # Ok(()) }
/// ```
///
/// In front of a PostgreSQL node of a [`PgCluster`](crate::PgCluster):
///
/// ```no_run
/// use std::net::SocketAddr;
/// use std::time::Duration;
///
/// use rds_balancer_testkit::{FaultProxy, PgCluster, SERVER_PORT_SQL};
///
/// # fn main() -> Result<(), rds_balancer_testkit::Error> {
/// let cluster = PgCluster::start(1)?;
/// let replica = &cluster.replicas()[0];
/// let proxy = FaultProxy::start(SocketAddr::from(([127, 0, 0, 1], replica.port())))?;
/// // Give the code under test `postgres://postgres@127.0.0.1:{proxy.port()}/db`.
/// let port = cluster.psql_at(proxy.port(), "postgres", SERVER_PORT_SQL, Duration::from_secs(10))?;
/// assert_eq!(port, replica.port().to_string());
///
/// proxy.blackhole(); // a partition: queries hang until the client's own timeout
/// assert!(cluster.psql_at(proxy.port(), "postgres", "SELECT 1", Duration::from_secs(2)).is_err());
/// proxy.restore();
/// proxy.set_latency(Duration::from_millis(200)); // a slow link
/// proxy.reset_all(); // every connection drops
/// # Ok(()) }
/// ```
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

/// What the proxy handle, the accept thread and the connection threads share.
struct Shared {
    target: SocketAddr,
    /// Set by `Drop`: everything ends.
    stop: AtomicBool,
    blackholed: AtomicBool,
    refusing: AtomicBool,
    latency_micros: AtomicU64,
    registry: Mutex<Registry>,
}

/// The open connections, and the threads that serve them.
#[derive(Default)]
struct Registry {
    next_id: u64,
    open: HashMap<u64, Conn>,
    threads: Vec<JoinHandle<()>>,
}

/// One proxied connection as seen from outside its threads.
struct Conn {
    /// Set by `reset_all` and `Drop`: this connection's threads end.
    killed: Arc<AtomicBool>,
    /// Clones of its sockets (the client's; then the target's, once connected), to shut them
    /// down from outside, which also wakes any thread blocked on them.
    sockets: Vec<TcpStream>,
}

impl Conn {
    fn kill(&self) {
        self.killed.store(true, Ordering::Release);
        for socket in &self.sockets {
            let _ = socket.shutdown(Shutdown::Both);
        }
    }
}

impl FaultProxy {
    /// Starts a proxy on `127.0.0.1:0` (a free port) that forwards every connection it accepts to
    /// `target`, with no fault. The target is connected to for each accepted connection; when
    /// that fails, the client's connection is closed.
    pub fn start(target: SocketAddr) -> Result<FaultProxy, Error> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .map_err(|e| Error::io("could not bind the fault proxy to a loopback port", e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::io("could not read the fault proxy's address", e))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| Error::io("could not make the fault proxy's listener nonblocking", e))?;
        let shared = Arc::new(Shared {
            target,
            stop: AtomicBool::new(false),
            blackholed: AtomicBool::new(false),
            refusing: AtomicBool::new(false),
            latency_micros: AtomicU64::new(0),
            registry: Mutex::default(),
        });
        let acceptor = {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name(format!("fault-proxy-{}", addr.port()))
                .spawn(move || accept_loop(&shared, &listener))
                .map_err(|e| Error::io("could not start the fault proxy's thread", e))?
        };
        Ok(FaultProxy {
            addr,
            shared,
            acceptor: Some(acceptor),
        })
    }

    /// The loopback port the proxy listens on: connect the code under test here.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The address the proxy listens on (`127.0.0.1:`[`port`](Self::port)).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address every connection is forwarded to.
    pub fn target(&self) -> SocketAddr {
        self.shared.target
    }

    /// Stops forwarding, like a hung host or a network partition as the client sees it: open
    /// connections stay open but no byte goes through in either direction, and new connections
    /// are accepted (by the kernel, so the client's connect succeeds) but not forwarded: the
    /// target is not even connected to. Clients hang until their own timeouts (TCP keepalive does
    /// not notice, since the proxy's kernel still acknowledges what they send).
    ///
    /// Nothing is lost: the bytes sent meanwhile wait (in the sockets' buffers, or a chunk already
    /// read), and [`restore`](Self::restore) delivers them.
    pub fn blackhole(&self) {
        self.shared.blackholed.store(true, Ordering::Release);
    }

    /// Lifts [`blackhole`](Self::blackhole): forwarding resumes on the open connections, with
    /// the bytes held meanwhile delivered first, and the connections accepted meanwhile are
    /// connected to the target and forwarded from then on (their clients may have given up).
    pub fn restore(&self) {
        self.shared.blackholed.store(false, Ordering::Release);
    }

    /// Delays every chunk of bytes by `latency` before forwarding it, in both directions, on open
    /// and new connections; [`Duration::ZERO`] (the default) forwards at once.
    ///
    /// Chunks of one direction go one after another (a chunk is what one read returned, up to
    /// 64 KiB), so each request/response round trip takes at least twice `latency` longer, and a
    /// stream of chunks is slowed down more than once, like a slow link.
    pub fn set_latency(&self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.shared.latency_micros.store(micros, Ordering::Release);
    }

    /// Closes every open connection at once (both sides: the client's and the one to the target),
    /// as when a host or a middlebox drops them, and returns once they are all gone from
    /// [`connections`](Self::connections). New connections are accepted as before.
    ///
    /// The client sees its connection end without a message from the server: end-of-file (a FIN),
    /// or a reset when it had sent bytes that the proxy had not read yet (the proxy cannot force
    /// a reset with `SO_LINGER` 0 in safe, stable Rust). A PostgreSQL client reports "server
    /// closed the connection unexpectedly"; the server's session ends when it next reads or
    /// writes.
    pub fn reset_all(&self) {
        let killed: Vec<u64> = {
            let registry = self.shared.registry();
            for conn in registry.open.values() {
                conn.kill();
            }
            registry.open.keys().copied().collect()
        };
        let deadline = Instant::now() + RESET_WAIT;
        while Instant::now() < deadline
            && killed
                .iter()
                .any(|id| self.shared.registry().open.contains_key(id))
        {
            thread::sleep(Duration::from_millis(1));
        }
    }

    /// While `refuse` is true, new connections are closed as soon as they are accepted (the
    /// client sees end-of-file or a reset before any answer, like a server that turns connections
    /// away); open connections are not affected. `false` (the default) accepts them again.
    pub fn refuse_new(&self, refuse: bool) {
        self.shared.refusing.store(refuse, Ordering::Release);
    }

    /// How many client connections the proxy holds open now, forwarded or held by a
    /// [`blackhole`](Self::blackhole). A connection leaves this count once both of its sides are
    /// closed; while blackholed the proxy does not read, so it notices a client that went away
    /// only after [`restore`](Self::restore) (or [`reset_all`](Self::reset_all)).
    pub fn connections(&self) -> usize {
        self.shared.registry().open.len()
    }
}

impl Drop for FaultProxy {
    /// Closes the port and every connection, and waits for every thread of the proxy to end
    /// (within a few tens of milliseconds; at most 5 s when a connection to the target is being
    /// made).
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        // No connection is accepted any more: kill those there are and wait for their threads.
        let threads = {
            let mut registry = self.shared.registry();
            for conn in registry.open.values() {
                conn.kill();
            }
            std::mem::take(&mut registry.threads)
        };
        for thread in threads {
            let _ = thread.join();
        }
    }
}

impl fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultProxy")
            .field("addr", &self.addr)
            .field("target", &self.shared.target)
            .field(
                "blackholed",
                &self.shared.blackholed.load(Ordering::Acquire),
            )
            .field("refusing", &self.shared.refusing.load(Ordering::Acquire))
            .field("latency", &self.shared.latency())
            .field("connections", &self.connections())
            .finish()
    }
}

impl Shared {
    fn registry(&self) -> MutexGuard<'_, Registry> {
        self.registry
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn latency(&self) -> Duration {
        Duration::from_micros(self.latency_micros.load(Ordering::Acquire))
    }

    /// Whether a connection's threads must end: the proxy is dropped or the connection reset.
    fn ending(&self, killed: &AtomicBool) -> bool {
        self.stop.load(Ordering::Acquire) || killed.load(Ordering::Acquire)
    }

    /// Waits while the proxy is blackholed; false when the connection must end instead.
    fn wait_open(&self, killed: &AtomicBool) -> bool {
        loop {
            if self.ending(killed) {
                return false;
            }
            if !self.blackholed.load(Ordering::Acquire) {
                return true;
            }
            thread::sleep(POLL);
        }
    }

    /// Sleeps `pause` in short steps; false when the connection must end instead.
    fn sleep(&self, killed: &AtomicBool, pause: Duration) -> bool {
        let deadline = Instant::now() + pause;
        loop {
            if self.ending(killed) {
                return false;
            }
            let now = Instant::now();
            if now >= deadline {
                return true;
            }
            thread::sleep(POLL.min(deadline - now));
        }
    }
}

/// Accepts connections until the proxy is dropped; each is served by its own thread.
fn accept_loop(shared: &Arc<Shared>, listener: &TcpListener) {
    while !shared.stop.load(Ordering::Acquire) {
        match listener.accept() {
            Ok((client, _)) => {
                if shared.refusing.load(Ordering::Acquire) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                admit(shared, client);
            }
            // WouldBlock: nobody is waiting; other errors (a client gone before accept, out of
            // file descriptors) are retried the same way.
            Err(_) => thread::sleep(POLL),
        }
    }
}

/// Registers `client` and starts the thread that serves it.
fn admit(shared: &Arc<Shared>, client: TcpStream) {
    let Ok(clone) = client.try_clone() else {
        return;
    };
    let killed = Arc::new(AtomicBool::new(false));
    let mut registry = shared.registry();
    let id = registry.next_id;
    registry.next_id += 1;
    registry.open.insert(
        id,
        Conn {
            killed: Arc::clone(&killed),
            sockets: vec![clone],
        },
    );
    let serve = {
        let shared = Arc::clone(shared);
        move || serve(&shared, id, &killed, client)
    };
    registry.threads.retain(|t| !t.is_finished());
    match thread::Builder::new()
        .name(format!("fault-proxy-conn-{id}"))
        .spawn(serve)
    {
        Ok(thread) => registry.threads.push(thread),
        Err(_) => {
            if let Some(conn) = registry.open.remove(&id) {
                conn.kill();
            }
        }
    }
}

/// Forgets connection `id` when its thread ends, closing whatever of it is left.
struct Forget<'a> {
    shared: &'a Shared,
    id: u64,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.shared.registry().open.remove(&self.id) {
            conn.kill();
        }
    }
}

/// Serves one accepted connection: waits out a black hole, connects to the target, then copies
/// bytes both ways until both directions are closed or the connection is killed.
fn serve(shared: &Shared, id: u64, killed: &AtomicBool, client: TcpStream) {
    let _forget = Forget { shared, id };
    if !shared.wait_open(killed) {
        return;
    }
    let Ok(upstream) = TcpStream::connect_timeout(&shared.target, CONNECT_TIMEOUT) else {
        return;
    };
    {
        let mut registry = shared.registry();
        let Some(conn) = registry.open.get_mut(&id) else {
            return;
        };
        let Ok(clone) = upstream.try_clone() else {
            return;
        };
        conn.sockets.push(clone);
        // Killed between connecting and registering: nobody shut this socket down.
        if shared.ending(killed) {
            return;
        }
    }
    let configured = [&client, &upstream].into_iter().all(|s| {
        s.set_nonblocking(false).is_ok()
            && s.set_nodelay(true).is_ok()
            && s.set_read_timeout(Some(POLL)).is_ok()
            && s.set_write_timeout(Some(POLL)).is_ok()
    });
    let (Ok(client_out), Ok(upstream_in)) = (client.try_clone(), upstream.try_clone()) else {
        return;
    };
    if !configured {
        return;
    }
    thread::scope(|scope| {
        scope.spawn(|| pump(shared, killed, &upstream_in, &client_out));
        pump(shared, killed, &client, &upstream);
    });
}

/// Copies bytes `from` one socket `to` the other until `from` ends (then half-closes `to`), an
/// error (then closes both), or the connection is killed.
fn pump(shared: &Shared, killed: &AtomicBool, mut from: &TcpStream, to: &TcpStream) {
    let mut buf = vec![0; CHUNK];
    loop {
        if !shared.wait_open(killed) {
            break;
        }
        match from.read(&mut buf) {
            Ok(0) => {
                let _ = to.shutdown(Shutdown::Write);
                return;
            }
            Ok(n) => {
                if !forward(shared, killed, to, &buf[..n]) {
                    break;
                }
            }
            Err(e) if is_retry(&e) => {}
            Err(_) => break,
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

/// Writes `data` to `to` after the latency, holding it while blackholed; false when the
/// connection must end.
fn forward(shared: &Shared, killed: &AtomicBool, mut to: &TcpStream, mut data: &[u8]) -> bool {
    let latency = shared.latency();
    if !latency.is_zero() && !shared.sleep(killed, latency) {
        return false;
    }
    while !data.is_empty() {
        if !shared.wait_open(killed) {
            return false;
        }
        match to.write(data) {
            Ok(0) => return false,
            Ok(n) => data = &data[n..],
            Err(e) if is_retry(&e) => {}
            Err(_) => return false,
        }
    }
    true
}

/// A read or write that timed out (a poll step) or was interrupted: try again.
fn is_retry(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}
