//! MySQL GTID sets (`@@gtid_executed`): `3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5:7-9,...`, for
//! each source UUID the intervals of transaction numbers it holds. Since MySQL 8.3 a tag may
//! follow the UUID: `uuid:1-5:tag_a:1-3` holds `uuid:1` to `uuid:5` and `uuid:tag_a:1` to
//! `uuid:tag_a:3`.

use std::collections::BTreeMap;
use std::fmt;

use super::decimal;
use super::error::{Flavour, ParsePositionError, Problem};

/// The highest transaction number MySQL gives (a signed 64-bit integer).
const MAX_TRANSACTION: u64 = i64::MAX as u64;

/// A MySQL GTID set: source to the transactions of it held. May be empty; no source maps to an
/// empty set, so two equal sets are equal structurally.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub(super) struct GtidSet(BTreeMap<Source, Intervals>);

/// Where transactions come from: a server UUID and a tag, lower case (empty when untagged, which
/// sorts first, as MySQL prints it).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Source {
    uuid: u128,
    tag: Box<str>,
}

/// Inclusive intervals of transaction numbers, sorted, neither overlapping nor touching.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
struct Intervals(Vec<(u64, u64)>);

impl Intervals {
    /// `raw` sorted and merged.
    fn merged(mut raw: Vec<(u64, u64)>) -> Intervals {
        raw.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(raw.len());
        for (start, end) in raw {
            match merged.last_mut() {
                Some(last) if start <= last.1.saturating_add(1) => last.1 = last.1.max(end),
                _ => merged.push((start, end)),
            }
        }
        Intervals(merged)
    }

    /// Whether every number here is in `other`.
    fn is_subset(&self, other: &Intervals) -> bool {
        let mut theirs = other.0.iter().peekable();
        'ours: for &(start, end) in &self.0 {
            while let Some(&&(their_start, their_end)) = theirs.peek() {
                if their_end < start {
                    theirs.next();
                    continue;
                }
                // The only one of theirs that can hold `start`: the earlier ones end before it,
                // the later ones start past `their_end + 1`.
                if their_start <= start && end <= their_end {
                    continue 'ours;
                }
                return false;
            }
            return false;
        }
        true
    }

    fn union(&self, other: &Intervals) -> Intervals {
        Intervals::merged(self.0.iter().chain(&other.0).copied().collect())
    }
}

impl GtidSet {
    /// Reads `uuid:interval[:interval...]` entries separated by commas, whitespace (MySQL's
    /// newlines) around entries and parts ignored; a part that is not an interval is a tag, for
    /// the intervals after it. A source given twice, or overlapping intervals, are merged. The
    /// empty text is the empty set.
    pub(super) fn parse(text: &str) -> Result<GtidSet, ParsePositionError> {
        let text = text.trim();
        let mut raw: BTreeMap<Source, Vec<(u64, u64)>> = BTreeMap::new();
        if text.is_empty() {
            return Ok(GtidSet::default());
        }
        for entry in text.split(',') {
            let entry = entry.trim();
            let error = |problem, piece| ParsePositionError::new(Flavour::MySql, problem, piece);
            if entry.is_empty() {
                return Err(error(Problem::EmptyEntry, text));
            }
            let (uuid_text, parts) = match entry.split_once(':') {
                Some((uuid, parts)) => (uuid.trim(), Some(parts)),
                None => (entry, None),
            };
            let uuid = uuid(uuid_text).ok_or_else(|| error(Problem::Uuid, uuid_text))?;
            let parts = parts.ok_or_else(|| error(Problem::MissingInterval, entry))?;
            let mut source = Source {
                uuid,
                tag: Box::default(),
            };
            // Intervals read since the UUID or the last tag.
            let mut intervals = 0;
            for part in parts.split(':').map(str::trim) {
                if part.starts_with(|c: char| c.is_ascii_digit()) {
                    let interval = interval(part).map_err(|problem| error(problem, part))?;
                    raw.entry(source.clone()).or_default().push(interval);
                    intervals += 1;
                } else if part.is_empty() || (intervals == 0 && !source.tag.is_empty()) {
                    return Err(error(Problem::MissingInterval, entry));
                } else {
                    source.tag = tag(part).ok_or_else(|| error(Problem::Tag, part))?;
                    intervals = 0;
                }
            }
            if intervals == 0 {
                return Err(error(Problem::MissingInterval, entry));
            }
        }
        Ok(GtidSet(
            raw.into_iter()
                .map(|(source, raw)| (source, Intervals::merged(raw)))
                .collect(),
        ))
    }

    /// Whether no transaction is held.
    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether every transaction here is in `other`.
    pub(super) fn is_subset(&self, other: &GtidSet) -> bool {
        self.0.iter().all(|(source, ours)| {
            other
                .0
                .get(source)
                .is_some_and(|theirs| ours.is_subset(theirs))
        })
    }

    /// Every transaction of either.
    pub(super) fn union(&self, other: &GtidSet) -> GtidSet {
        let mut union = self.0.clone();
        for (source, theirs) in &other.0 {
            let joined = match union.get(source) {
                Some(ours) => ours.union(theirs),
                None => theirs.clone(),
            };
            union.insert(source.clone(), joined);
        }
        GtidSet(union)
    }
}

/// A UUID in its 8-4-4-4-12 form, hexadecimal digits in either case.
fn uuid(text: &str) -> Option<u128> {
    const HYPHENS: [usize; 4] = [8, 13, 18, 23];
    if text.len() != 36 {
        return None;
    }
    let mut uuid = 0u128;
    for (i, byte) in text.bytes().enumerate() {
        if HYPHENS.contains(&i) {
            if byte != b'-' {
                return None;
            }
        } else {
            let digit = char::from(byte).to_digit(16)?;
            uuid = uuid << 4 | u128::from(digit);
        }
    }
    Some(uuid)
}

/// `n` or `n-m`, with 1 <= n <= m <= 2^63 - 1.
fn interval(text: &str) -> Result<(u64, u64), Problem> {
    let number = |part: &str| match decimal::<u64>(part, "transaction number") {
        Ok(n) if (1..=MAX_TRANSACTION).contains(&n) => Ok(n),
        Ok(_) | Err(Problem::TooLarge(_)) => Err(Problem::TransactionNumber),
        Err(_) => Err(Problem::Interval),
    };
    let (start, end) = match text.split_once('-') {
        Some((start, end)) => (number(start)?, number(end)?),
        None => {
            let n = number(text)?;
            (n, n)
        }
    };
    if end < start {
        return Err(Problem::ReversedInterval);
    }
    Ok((start, end))
}

/// A tag: ASCII letters, digits and underscores, not starting with a digit; lower-cased (MySQL's
/// tags are case-insensitive).
fn tag(text: &str) -> Option<Box<str>> {
    let valid = text.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    valid.then(|| text.to_ascii_lowercase().into_boxed_str())
}

/// As MySQL prints it, without its newlines: sources sorted by UUID (lower case), each UUID
/// once with its untagged intervals first and then each tag's, intervals sorted and merged.
impl fmt::Display for GtidSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut previous = None;
        for (source, intervals) in &self.0 {
            if previous != Some(source.uuid) {
                if previous.is_some() {
                    f.write_str(",")?;
                }
                let u = source.uuid;
                write!(
                    f,
                    "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
                    u >> 96,
                    (u >> 80) & 0xFFFF,
                    (u >> 64) & 0xFFFF,
                    (u >> 48) & 0xFFFF,
                    u & 0xFFFF_FFFF_FFFF
                )?;
                previous = Some(source.uuid);
            }
            if !source.tag.is_empty() {
                write!(f, ":{}", source.tag)?;
            }
            for &(start, end) in &intervals.0 {
                if start == end {
                    write!(f, ":{start}")?;
                } else {
                    write!(f, ":{start}-{end}")?;
                }
            }
        }
        Ok(())
    }
}
