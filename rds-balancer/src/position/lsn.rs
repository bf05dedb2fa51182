//! PostgreSQL WAL positions (`pg_lsn`): `16/B374D848`, the high and low 32 bits of a byte
//! position in the write-ahead log, each in hexadecimal.

use std::fmt;

use super::error::{Flavour, ParsePositionError, Problem};

/// Reads `pg_lsn` text as PostgreSQL does: 1 to 8 hexadecimal digits, `/`, 1 to 8 more, in either
/// case (so `0/03000060`, with the low half padded, is read too).
pub(super) fn parse(text: &str) -> Result<u64, ParsePositionError> {
    let text = text.trim();
    let bad = || ParsePositionError::new(Flavour::Lsn, Problem::LsnShape, text);
    let (high, low) = text.split_once('/').ok_or_else(bad)?;
    let (high, low) = (half(high).ok_or_else(bad)?, half(low).ok_or_else(bad)?);
    Ok(u64::from(high) << 32 | u64::from(low))
}

/// One half: 1 to 8 hexadecimal digits, nothing else (no sign, no space).
fn half(text: &str) -> Option<u32> {
    if (1..=8).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        u32::from_str_radix(text, 16).ok()
    } else {
        None
    }
}

/// Writes `lsn` as PostgreSQL prints it: `%X/%X`, upper case, no leading zeros.
pub(super) fn fmt(lsn: u64, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    write!(f, "{:X}/{:X}", lsn >> 32, lsn & 0xFFFF_FFFF)
}
