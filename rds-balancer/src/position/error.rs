//! [`ParsePositionError`]: what was wrong with a position's text.

use std::fmt;

/// The longest piece of the input an error quotes, in bytes; past it the quote is cut (at a
/// character boundary) and ends with `…`.
const QUOTED: usize = 64;

/// The text given for a [`Position`](crate::Position) is not one: not a PostgreSQL or Aurora
/// LSN, a MariaDB GTID position or a MySQL GTID set.
///
/// Its message names the engine the text looked like, quotes the offending piece (cut at 64
/// bytes) and says what is wrong with it.
///
/// ```
/// use rds_balancer::{ParsePositionError, Position};
///
/// let error: ParsePositionError = "0-1-x".parse::<Position>().unwrap_err();
/// assert_eq!(
///     error.to_string(),
///     r#"invalid MariaDB GTID position "0-1-x": the sequence number is not a decimal number"#,
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsePositionError {
    flavour: Flavour,
    problem: Problem,
    /// The offending piece of the input, cut at [`QUOTED`] bytes.
    quoted: Box<str>,
}

/// The engine whose text the input looked like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Flavour {
    Lsn,
    Aurora,
    MariaDb,
    MySql,
}

/// What was wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Problem {
    /// An LSN is not two groups of 1 to 8 hexadecimal digits around one `/`.
    LsnShape,
    /// Two commas in a row, or one at either end.
    EmptyEntry,
    /// A MariaDB entry is not three numbers joined by `-`.
    MariaDbShape,
    /// A field that must be a decimal number is not one (the field's name).
    NotDecimal(&'static str),
    /// A decimal field does not fit its type (the field's name).
    TooLarge(&'static str),
    /// A second MariaDB entry for a domain already given.
    DuplicateDomain,
    /// Not a UUID in its 8-4-4-4-12 hexadecimal form.
    Uuid,
    /// A MySQL UUID or tag with no interval after it.
    MissingInterval,
    /// A MySQL interval is not `n` or `n-m`.
    Interval,
    /// A MySQL transaction number is 0 or above 2^63 - 1.
    TransactionNumber,
    /// A MySQL interval `n-m` with `m < n`.
    ReversedInterval,
    /// Neither an interval nor a tag.
    Tag,
}

impl ParsePositionError {
    /// An error about `piece` of the input.
    pub(super) fn new(flavour: Flavour, problem: Problem, piece: &str) -> Self {
        let quoted = if piece.len() <= QUOTED {
            piece.into()
        } else {
            let mut end = QUOTED;
            while !piece.is_char_boundary(end) {
                end -= 1;
            }
            format!("{}…", &piece[..end]).into_boxed_str()
        };
        ParsePositionError {
            flavour,
            problem,
            quoted,
        }
    }
}

impl fmt::Display for ParsePositionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let flavour = match self.flavour {
            Flavour::Lsn => "PostgreSQL LSN",
            Flavour::Aurora => "Aurora PostgreSQL LSN",
            Flavour::MariaDb => "MariaDB GTID position",
            Flavour::MySql => "MySQL GTID set",
        };
        write!(f, "invalid {flavour} {:?}: ", self.quoted)?;
        match self.problem {
            Problem::LsnShape => f.write_str(
                "expected two groups of 1 to 8 hexadecimal digits separated by '/' (like 16/B374D848)",
            ),
            Problem::EmptyEntry => f.write_str("empty entry (two commas in a row, or one at an end)"),
            Problem::MariaDbShape => {
                f.write_str("expected domain-server-sequence, three decimal numbers (like 0-1-100)")
            }
            Problem::NotDecimal(field) => write!(f, "the {field} is not a decimal number"),
            Problem::TooLarge(field) => write!(f, "the {field} is too large"),
            Problem::DuplicateDomain => {
                f.write_str("a second entry for the same domain (at most one per domain)")
            }
            Problem::Uuid => f.write_str(
                "expected a UUID, 8-4-4-4-12 hexadecimal digits (like 3e11fa47-71ca-11e1-9e33-c80aa9429562)",
            ),
            Problem::MissingInterval => {
                f.write_str("a UUID or tag with no interval of transactions after it")
            }
            Problem::Interval => f.write_str("expected an interval, n or n-m in decimal"),
            Problem::TransactionNumber => {
                f.write_str("transaction numbers run from 1 to 9223372036854775807")
            }
            Problem::ReversedInterval => f.write_str("the interval ends before it starts"),
            Problem::Tag => f.write_str(
                "expected an interval (n or n-m) or a tag (letters, digits and underscores, not starting with a digit)",
            ),
        }
    }
}

impl std::error::Error for ParsePositionError {}
