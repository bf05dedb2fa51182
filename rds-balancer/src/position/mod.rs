//! Replication positions: how far a writer had written, or a replica has replayed, in each
//! engine's own terms, so that a read can wait for (or skip) a replica that has not replayed a
//! write yet.
//!
//! Pure logic: reading the text a server returns, printing it back, ordering and joining
//! positions. Nothing here talks to a server.

mod aurora;
mod error;
mod lsn;
mod mariadb;
mod mysql;
#[cfg(test)]
mod tests;

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

pub use self::error::ParsePositionError;
use self::error::Problem;
use self::mariadb::GtidPos;
use self::mysql::GtidSet;

/// A replication position: what a writer had written, or what a replica has replayed.
///
/// One of four engine flavours, each kept as the text its server returns:
///
/// | Engine | Read from | Text |
/// |---|---|---|
/// | PostgreSQL | `pg_current_wal_lsn()`, `pg_last_wal_replay_lsn()` | `16/B374D848`: a WAL position, its high and low 32 bits in hexadecimal |
/// | Aurora PostgreSQL | `aurora_replica_status()`: the writer's `durable_lsn`, a reader's `current_read_lsn` | `aurora-pg:88492069`: an Aurora log sequence number (a `bigint`), in decimal after the prefix |
/// | MariaDB | `@@gtid_binlog_pos`, `@@gtid_slave_pos`, `@@gtid_current_pos` | `0-1-100,1-2-5`: for each replication domain, the last transaction's `domain-server-sequence` |
/// | MySQL | `@@gtid_executed` | `3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5:7-9`: for each source UUID (and [tag]), the intervals of transaction numbers held |
///
/// [`Display`](fmt::Display) prints the engine's canonical text: PostgreSQL's `%X/%X`; MariaDB's
/// entries sorted by domain; MySQL's UUIDs in lower case and sorted, each once, with its
/// intervals merged and sorted (untagged ones first, then each tag's), entries separated by `,`
/// without MySQL's newlines; Aurora's `aurora-pg:` and the number, without leading zeros.
/// [`FromStr`] reads any of the four, telling them apart by shape (the prefix `aurora-pg:` is
/// Aurora, then a `/` is PostgreSQL, a `:` MySQL, anything else MariaDB), so a position kept as
/// text (in a
/// header, or percent-encoded in a cookie) comes back without knowing the backend:
/// `p.to_string().parse() == Ok(p)`. Whitespace around the text, its entries and (MySQL) its
/// parts is ignored. Serde reads and writes the same text.
///
/// # The order: "has replayed at least"
///
/// `a <= b` when a replica at `b` has every transaction a writer at `a` had:
///
/// - PostgreSQL: `a`'s LSN is at most `b`'s.
/// - Aurora PostgreSQL: likewise, `a`'s Aurora LSN is at most `b`'s. Aurora's LSNs number its
///   storage log, not PostgreSQL's WAL: an Aurora position and a PostgreSQL LSN do not compare.
/// - MariaDB: every domain of `a` is in `b`, at a higher sequence number (from any server: a
///   failover changes the server id while the domain's sequence goes on), or at the same one
///   from the same server. The same sequence number from another server is another transaction,
///   so `0-1-100` and `0-2-100` are not comparable (and not equal).
/// - MySQL: `a`'s set is included in `b`'s.
///
/// It is a partial order, and `==` agrees with it (`a == b` exactly when `a <= b` and
/// `b <= a`): positions of different engines are not comparable, so that `a <= b` and `b <= a`
/// are both false and [`partial_cmp`](PartialOrd::partial_cmp) is `None`. A caller that finds a
/// replica not (yet) comparable reads from the writer: never from a replica that may be stale.
///
/// # The empty position
///
/// The empty text is the empty GTID position: nothing written yet. MariaDB and MySQL both print
/// it for a server that has no transaction, and it reads back as one value, `<=` every MariaDB
/// and MySQL position (every replica of either engine has replayed nothing). A PostgreSQL LSN is
/// never empty (the earliest is `0/0`), and is not comparable with it.
///
/// ```
/// use rds_balancer::Position;
///
/// // PostgreSQL: the writer's `pg_current_wal_lsn()` after a write, and a replica's
/// // `pg_last_wal_replay_lsn()` a moment later.
/// let written: Position = "16/B374D848".parse()?;
/// assert!(written <= "16/B3750000".parse::<Position>()?);
/// assert!(written > "16/B3740000".parse::<Position>()?);
///
/// // MariaDB: the last transaction of each domain.
/// let written: Position = "1-2-5,0-1-100".parse()?;
/// assert_eq!(written.to_string(), "0-1-100,1-2-5");
/// assert!(written <= "0-3-120,1-2-5".parse::<Position>()?); // a failover in domain 0
/// assert!(!(written <= "0-1-100".parse::<Position>()?)); // nothing of domain 1
///
/// // Aurora PostgreSQL: the writer's `durable_lsn`, a reader's `current_read_lsn`.
/// let durable: Position = "aurora-pg:88492069".parse()?;
/// assert!(durable <= "aurora-pg:88492070".parse::<Position>()?);
///
/// // Different engines do not compare, Aurora's LSNs and PostgreSQL's included.
/// let lsn: Position = "0/3000060".parse()?;
/// assert_eq!(lsn.partial_cmp(&written), None);
/// assert!(!(lsn <= written) && !(written <= lsn));
/// assert_eq!(lsn.partial_cmp(&durable), None);
/// # Ok::<(), rds_balancer::ParsePositionError>(())
/// ```
///
/// Through serde, as its text:
///
/// ```
/// use rds_balancer::Position;
///
/// let set: Position = "3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5:6-9".parse()?;
/// let json = serde_json::to_string(&set)?;
/// assert_eq!(json, r#""3e11fa47-71ca-11e1-9e33-c80aa9429562:1-9""#);
/// assert_eq!(serde_json::from_str::<Position>(&json)?, set);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// [tag]: https://dev.mysql.com/doc/refman/8.4/en/replication-gtids-concepts.html
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Position(Repr);

/// What a [`Position`] holds. An empty GTID position or set is always [`Repr::Empty`], so that
/// equal positions are equal structurally.
#[derive(Clone, PartialEq, Eq, Hash)]
enum Repr {
    /// The empty GTID position (MariaDB) or set (MySQL).
    Empty,
    /// A PostgreSQL WAL position.
    Lsn(u64),
    /// An Aurora PostgreSQL log sequence number (`aurora_replica_status()`).
    Aurora(u64),
    /// A MariaDB GTID position, not empty.
    MariaDb(GtidPos),
    /// A MySQL GTID set, not empty.
    MySql(GtidSet),
}

impl Position {
    /// Reads what PostgreSQL returns for a `pg_lsn` (`16/B374D848`).
    pub(crate) fn from_pg_lsn(text: &str) -> Result<Position, ParsePositionError> {
        lsn::parse(text).map(|lsn| Position(Repr::Lsn(lsn)))
    }

    /// A PostgreSQL WAL position from its number.
    pub(crate) fn lsn_at(lsn: u64) -> Position {
        Position(Repr::Lsn(lsn))
    }

    /// Reads what Aurora PostgreSQL returns for `aurora_replica_status()`'s `durable_lsn` or
    /// `current_read_lsn` (a `bigint`: `88492069`), without the prefix of its [`Display`] text.
    pub(crate) fn from_aurora_lsn(text: &str) -> Result<Position, ParsePositionError> {
        aurora::parse_number(text).map(|lsn| Position(Repr::Aurora(lsn)))
    }

    /// Reads what MariaDB returns for `@@gtid_binlog_pos`, `@@gtid_slave_pos` or
    /// `@@gtid_current_pos` (`0-1-100,1-2-5`, or empty).
    pub(crate) fn from_mariadb_gtid(text: &str) -> Result<Position, ParsePositionError> {
        GtidPos::parse(text).map(Position::mariadb)
    }

    /// Reads what MySQL returns for `@@gtid_executed` (`uuid:1-5:7-9,\nuuid:1-3`, or empty).
    pub(crate) fn from_mysql_gtid_set(text: &str) -> Result<Position, ParsePositionError> {
        GtidSet::parse(text).map(Position::mysql)
    }

    fn mariadb(pos: GtidPos) -> Position {
        Position(if pos.is_empty() {
            Repr::Empty
        } else {
            Repr::MariaDb(pos)
        })
    }

    fn mysql(set: GtidSet) -> Position {
        Position(if set.is_empty() {
            Repr::Empty
        } else {
            Repr::MySql(set)
        })
    }

    /// The PostgreSQL LSN, if this is one.
    pub(crate) fn lsn(&self) -> Option<u64> {
        match self.0 {
            Repr::Lsn(lsn) => Some(lsn),
            _ => None,
        }
    }

    /// Whether a replica at `replayed` has every transaction a writer at `self` had: `self <=
    /// replayed`.
    ///
    /// False when the two are not comparable (different engines, or a MariaDB domain at the same
    /// sequence number from two servers): the caller then reads from the writer, never from a
    /// replica that may be stale.
    ///
    /// ```
    /// use rds_balancer::Position;
    ///
    /// let written: Position = "0/3000060".parse()?;
    /// assert!(written.reached_by(&"0/3000060".parse()?));
    /// assert!(written.reached_by(&"0/3000100".parse()?));
    /// assert!(!written.reached_by(&"0/2FFFFF8".parse()?));
    /// assert!(!written.reached_by(&"0-1-100".parse()?)); // another engine
    ///
    /// // Nothing written yet: every MariaDB or MySQL replica has it.
    /// let nothing: Position = "".parse()?;
    /// assert!(nothing.reached_by(&"0-1-100".parse()?));
    /// # Ok::<(), rds_balancer::ParsePositionError>(())
    /// ```
    pub fn reached_by(&self, replayed: &Position) -> bool {
        match (&self.0, &replayed.0) {
            (Repr::Empty, Repr::Empty | Repr::MariaDb(_) | Repr::MySql(_)) => true,
            (Repr::Lsn(written), Repr::Lsn(replayed))
            | (Repr::Aurora(written), Repr::Aurora(replayed)) => written <= replayed,
            (Repr::MariaDb(written), Repr::MariaDb(replayed)) => written.reached_by(replayed),
            (Repr::MySql(written), Repr::MySql(replayed)) => written.is_subset(replayed),
            _ => false,
        }
    }

    /// The least position that reaches both (PostgreSQL and Aurora: the later LSN; MariaDB: every domain at
    /// its later GTID; MySQL: the union), or `None` when there is no least one: different
    /// engines, or a MariaDB domain at the same sequence number from two servers (any later
    /// sequence number reaches both, from whichever server: none is least).
    pub(crate) fn join(&self, other: &Position) -> Option<Position> {
        match (&self.0, &other.0) {
            (Repr::Empty, Repr::Empty | Repr::MariaDb(_) | Repr::MySql(_)) => Some(other.clone()),
            (Repr::MariaDb(_) | Repr::MySql(_), Repr::Empty) => Some(self.clone()),
            (Repr::Lsn(a), Repr::Lsn(b)) => Some(Position(Repr::Lsn(*a.max(b)))),
            (Repr::Aurora(a), Repr::Aurora(b)) => Some(Position(Repr::Aurora(*a.max(b)))),
            (Repr::MariaDb(a), Repr::MariaDb(b)) => a.join(b).map(Position::mariadb),
            (Repr::MySql(a), Repr::MySql(b)) => Some(Position::mysql(a.union(b))),
            _ => None,
        }
    }

    /// How many bytes of WAL a replica at `replayed` has still to replay to reach a writer at
    /// `self` (0 once it has); `None` unless both are PostgreSQL LSNs.
    #[cfg_attr(
        not(test),
        expect(dead_code, reason = "for the lag-aware routing to come (issue 15)")
    )]
    pub(crate) fn lag_bytes(&self, replayed: &Position) -> Option<u64> {
        match (&self.0, &replayed.0) {
            (Repr::Lsn(written), Repr::Lsn(replayed)) => Some(written.saturating_sub(*replayed)),
            _ => None,
        }
    }
}

impl PartialOrd for Position {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        match (self.reached_by(other), other.reached_by(self)) {
            (true, true) => Some(Ordering::Equal),
            (true, false) => Some(Ordering::Less),
            (false, true) => Some(Ordering::Greater),
            (false, false) => None,
        }
    }

    fn le(&self, other: &Self) -> bool {
        self.reached_by(other)
    }

    fn ge(&self, other: &Self) -> bool {
        other.reached_by(self)
    }
}

/// The canonical text (see [`Position`]).
impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Repr::Empty => Ok(()),
            Repr::Lsn(lsn) => lsn::fmt(*lsn, f),
            Repr::Aurora(lsn) => aurora::fmt(*lsn, f),
            Repr::MariaDb(pos) => pos.fmt(f),
            Repr::MySql(set) => set.fmt(f),
        }
    }
}

/// The text says it all (it reads back into the same value).
impl fmt::Debug for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Position").field(&self.to_string()).finish()
    }
}

/// Reads an Aurora PostgreSQL LSN (the text starts with `aurora-pg:`), a PostgreSQL LSN (it
/// has a `/`), a MySQL GTID set (a `:`) or a MariaDB GTID position (neither); the empty text is
/// the empty position.
impl FromStr for Position {
    type Err = ParsePositionError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if let Some(number) = aurora::strip_prefix(text) {
            Position::from_aurora_lsn(number)
        } else if text.contains('/') {
            Position::from_pg_lsn(text)
        } else if text.contains(':') {
            Position::from_mysql_gtid_set(text)
        } else {
            Position::from_mariadb_gtid(text)
        }
    }
}

/// As its canonical text.
impl Serialize for Position {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// From any text [`FromStr`] reads.
impl<'de> Deserialize<'de> for Position {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Text;

        impl Visitor<'_> for Text {
            type Value = Position;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a replication position: a PostgreSQL or Aurora LSN, a MariaDB GTID position or a MySQL GTID set")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<Position, E> {
                text.parse().map_err(E::custom)
            }
        }

        deserializer.deserialize_str(Text)
    }
}

/// A field of decimal digits only (no sign, no space), as a `T`.
fn decimal<T: FromStr>(text: &str, field: &'static str) -> Result<T, Problem> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Problem::NotDecimal(field));
    }
    text.parse().map_err(|_| Problem::TooLarge(field))
}
