//! MariaDB GTID positions (`@@gtid_binlog_pos`, `@@gtid_slave_pos`, `@@gtid_current_pos`):
//! `0-1-100,1-2-5`, for each replication domain the last transaction's `domain-server-sequence`.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::fmt;

use super::decimal;
use super::error::{Flavour, ParsePositionError, Problem};

/// A MariaDB GTID position: replication domain to its last GTID. May be empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub(super) struct GtidPos(BTreeMap<u32, Last>);

/// The last GTID of one domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Last {
    server: u32,
    seq: u64,
}

impl Last {
    /// Whether a server whose last GTID in the domain is `replayed` has this one.
    ///
    /// A domain's sequence numbers go on across servers (a failover changes the server id, not
    /// the sequence), so a higher sequence number has it whatever the server. The same sequence
    /// number from another server is another transaction: not reached.
    fn reached_by(self, replayed: Last) -> bool {
        self.seq < replayed.seq || self == replayed
    }

    /// The least GTID that reaches both: the later one. None for the same sequence number from
    /// two servers: the next sequence number from any server reaches both, and none is least.
    fn join(self, other: Last) -> Option<Last> {
        match self.seq.cmp(&other.seq) {
            std::cmp::Ordering::Less => Some(other),
            std::cmp::Ordering::Greater => Some(self),
            std::cmp::Ordering::Equal => (self == other).then_some(self),
        }
    }
}

impl GtidPos {
    /// Reads `domain-server-sequence` entries separated by commas (whitespace around them
    /// ignored), at most one per domain; the empty text is the empty position.
    pub(super) fn parse(text: &str) -> Result<GtidPos, ParsePositionError> {
        let text = text.trim();
        let mut domains = BTreeMap::new();
        if text.is_empty() {
            return Ok(GtidPos(domains));
        }
        for entry in text.split(',') {
            let entry = entry.trim();
            if entry.is_empty() {
                return Err(ParsePositionError::new(
                    Flavour::MariaDb,
                    Problem::EmptyEntry,
                    text,
                ));
            }
            let error = |problem| ParsePositionError::new(Flavour::MariaDb, problem, entry);
            let mut fields = entry.split('-');
            let (Some(domain), Some(server), Some(seq), None) =
                (fields.next(), fields.next(), fields.next(), fields.next())
            else {
                return Err(error(Problem::MariaDbShape));
            };
            let domain: u32 = decimal(domain, "domain").map_err(error)?;
            let server = decimal(server, "server id").map_err(error)?;
            let seq = decimal(seq, "sequence number").map_err(error)?;
            if domains.insert(domain, Last { server, seq }).is_some() {
                return Err(error(Problem::DuplicateDomain));
            }
        }
        Ok(GtidPos(domains))
    }

    /// Whether no domain is listed.
    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether a server at `replayed` has every domain listed here, each up to its last GTID.
    pub(super) fn reached_by(&self, replayed: &GtidPos) -> bool {
        self.0.iter().all(|(domain, last)| {
            replayed
                .0
                .get(domain)
                .is_some_and(|theirs| last.reached_by(*theirs))
        })
    }

    /// Every domain of either, each at the later GTID; `None` when a domain ends at the same
    /// sequence number from two different servers.
    pub(super) fn join(&self, other: &GtidPos) -> Option<GtidPos> {
        let mut joined = self.0.clone();
        for (&domain, &theirs) in &other.0 {
            match joined.entry(domain) {
                Entry::Vacant(vacant) => {
                    vacant.insert(theirs);
                }
                Entry::Occupied(mut ours) => {
                    let later = ours.get().join(theirs)?;
                    ours.insert(later);
                }
            }
        }
        Some(GtidPos(joined))
    }
}

/// As MariaDB prints it: entries sorted by domain, separated by commas.
impl fmt::Display for GtidPos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (domain, last)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{domain}-{}-{}", last.server, last.seq)?;
        }
        Ok(())
    }
}
