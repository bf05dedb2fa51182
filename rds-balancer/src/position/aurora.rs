//! Aurora PostgreSQL log sequence numbers, as `aurora_replica_status()` reports them
//! (`durable_lsn`, `current_read_lsn`: a `bigint`), written `aurora-pg:88492069` so that they
//! read back as Aurora's and are never taken for a PostgreSQL WAL position.

use std::fmt;

use super::decimal;
use super::error::{Flavour, ParsePositionError};

/// What starts the text of an Aurora position.
const PREFIX: &str = "aurora-pg:";

/// The number after the prefix, when `text` (leading whitespace aside) starts with it.
pub(super) fn strip_prefix(text: &str) -> Option<&str> {
    text.trim_start().strip_prefix(PREFIX)
}

/// Reads the number: decimal digits only (whitespace around ignored), at most `u64::MAX`.
pub(super) fn parse_number(text: &str) -> Result<u64, ParsePositionError> {
    let text = text.trim();
    decimal(text, "Aurora LSN")
        .map_err(|problem| ParsePositionError::new(Flavour::Aurora, problem, text))
}

/// Writes `aurora-pg:` and the number in decimal.
pub(super) fn fmt(lsn: u64, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    write!(f, "{PREFIX}{lsn}")
}
