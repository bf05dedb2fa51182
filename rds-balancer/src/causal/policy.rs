//! [`ReadYourWrites`]: how a task's reads see its own writes.

use std::time::Duration;

/// How long a read waits by default for a replica to replay its task's last write.
const DEFAULT_MAX_WAIT: Duration = Duration::from_millis(100);

/// How a task's reads see its own writes, set with
/// [`RdsConnectionBuilder::read_your_writes`](crate::RdsConnectionBuilder::read_your_writes).
///
/// "A task" is the tokio task that ran the write (a request handler, typically), or the thread
/// outside a task. After it writes (a statement, a `transaction(..)`, a committed
/// [`RdsTransaction`](crate::RdsTransaction)):
///
/// - [`off`](Self::off): its reads go to replicas at once, and may miss the write;
/// - [`window`](Self::window): its reads go to the writer for a time window, a guess both
///   ways (a replica lagging more than the window serves a stale row once it ends; a task that
///   writes often never reads from a replica);
/// - [`position`](Self::position): its reads go to a replica that has replayed the writer's
///   replication position as of the write (a PostgreSQL WAL position, an Aurora PostgreSQL
///   LSN, a MariaDB GTID position, a MySQL GTID set), waiting up to
///   [`max_wait`](Self::max_wait) for one to catch
///   up, else to the writer. Exact: never a stale read, and reads leave the writer as soon as a
///   replica has the write. It costs a task that wrote one round trip to the writer for its
///   position (shared by every task waiting at the time) and to the readers for theirs; a task
///   that has not written pays nothing. Where the writer gives no comparable position (binary
///   logging or GTIDs off, Aurora MySQL), its reads go to the writer for
///   [`FALLBACK_WINDOW`](Self::FALLBACK_WINDOW).
///
/// The default, [`engine_default`](Self::engine_default), is position mode where the engine
/// gives an exact position that rds-balancer has been tested against (PostgreSQL, MariaDB with
/// binary logging, MySQL with GTIDs), and a 1 s window elsewhere (Aurora, engines without
/// positions).
///
/// A `Duration` converts into a window (`Duration::ZERO`: off), so
/// `.read_your_writes(Duration::from_secs(2))` reads as before.
///
/// ```
/// use std::time::Duration;
/// use rds_balancer::ReadYourWrites;
///
/// let exact = ReadYourWrites::position().max_wait(Duration::from_millis(50));
/// assert_eq!(exact.max_wait_time(), Some(Duration::from_millis(50)));
/// assert_eq!(ReadYourWrites::from(Duration::from_secs(1)), ReadYourWrites::window(Duration::from_secs(1)));
/// assert_eq!(ReadYourWrites::from(Duration::ZERO), ReadYourWrites::off());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadYourWrites(Mode);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Position mode where exact and tested, else the fallback window; decided at build.
    Auto,
    Off,
    Window(Duration),
    Position {
        max_wait: Duration,
    },
}

impl ReadYourWrites {
    /// In position mode, where the writer gives no comparable position: its reads go to the
    /// writer for this long after a write.
    pub const FALLBACK_WINDOW: Duration = Duration::from_secs(1);

    /// The default: chosen per engine when the connection is built, from what the writer is.
    ///
    /// - PostgreSQL (RDS, self-managed), MariaDB with binary logging, MySQL with
    ///   `gtid_mode=ON`: [`position`](Self::position) (100 ms `max_wait`). Exact, and a task
    ///   that wrote reads from replicas again as soon as they have its write.
    /// - Aurora PostgreSQL: a window of [`FALLBACK_WINDOW`](Self::FALLBACK_WINDOW). Its
    ///   positions (`aurora_replica_status()`) are supported, but only tested against
    ///   stand-ins; choose `position()` to use them.
    /// - Aurora MySQL, MariaDB without binary logging, MySQL without GTIDs, or a writer that
    ///   could not be asked when the connection was built: the same window.
    /// - With [`max_total_connections`](crate::RdsConnectionBuilder::max_total_connections)
    ///   set, on every engine: the same window (position mode's queries are not counted in
    ///   that budget).
    ///
    /// ```
    /// use rds_balancer::ReadYourWrites;
    ///
    /// assert_eq!(ReadYourWrites::default(), ReadYourWrites::engine_default());
    /// assert_eq!(ReadYourWrites::engine_default().max_wait_time(), None); // decided at build
    /// ```
    pub const fn engine_default() -> Self {
        ReadYourWrites(Mode::Auto)
    }

    /// A task's reads go to replicas right after it wrote.
    ///
    /// ```
    /// assert_eq!(rds_balancer::ReadYourWrites::off(), std::time::Duration::ZERO.into());
    /// ```
    pub const fn off() -> Self {
        ReadYourWrites(Mode::Off)
    }

    /// A task's reads go to the writer for `window` after it wrote (`Duration::ZERO`: off).
    ///
    /// ```
    /// # use std::time::Duration;
    /// let policy = rds_balancer::ReadYourWrites::window(Duration::from_secs(2));
    /// assert_eq!(policy.max_wait_time(), None);
    /// ```
    pub const fn window(window: Duration) -> Self {
        if window.is_zero() {
            Self::off()
        } else {
            ReadYourWrites(Mode::Window(window))
        }
    }

    /// A task's reads go to a replica that has replayed its last write, waiting up to
    /// [`max_wait`](Self::max_wait) (100 ms unless set) for one, else to the writer.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let policy = rds_balancer::ReadYourWrites::position();
    /// assert_eq!(policy.max_wait_time(), Some(Duration::from_millis(100)));
    /// ```
    pub const fn position() -> Self {
        ReadYourWrites(Mode::Position {
            max_wait: DEFAULT_MAX_WAIT,
        })
    }

    /// In position mode, how long a read may wait for a replica to catch up before it goes to
    /// the writer (`Duration::ZERO`: never waits; a replica that has the write already, else
    /// the writer). Makes any other policy a position policy.
    ///
    /// ```
    /// # use std::time::Duration;
    /// use rds_balancer::ReadYourWrites;
    ///
    /// let policy = ReadYourWrites::position().max_wait(Duration::ZERO);
    /// assert_eq!(policy.max_wait_time(), Some(Duration::ZERO));
    /// ```
    #[must_use]
    pub const fn max_wait(self, max_wait: Duration) -> Self {
        ReadYourWrites(Mode::Position { max_wait })
    }

    /// How long a read may wait for a replica in position mode; `None` in the other modes.
    ///
    /// ```
    /// assert_eq!(rds_balancer::ReadYourWrites::off().max_wait_time(), None);
    /// ```
    pub const fn max_wait_time(&self) -> Option<Duration> {
        match self.0 {
            Mode::Position { max_wait } => Some(max_wait),
            _ => None,
        }
    }

    pub(crate) const fn mode(&self) -> Mode {
        self.0
    }
}

/// [`ReadYourWrites::engine_default`].
impl Default for ReadYourWrites {
    fn default() -> Self {
        Self::engine_default()
    }
}

/// A window (`Duration::ZERO`: off).
impl From<Duration> for ReadYourWrites {
    fn from(window: Duration) -> Self {
        Self::window(window)
    }
}
