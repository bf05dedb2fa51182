//! Small text helpers shared by the PostgreSQL and MariaDB servers.

use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// The last lines of `path` written after byte `from`.
pub(crate) fn log_tail(path: &Path, from: u64) -> String {
    const MAX: u64 = 4096;
    let Ok(mut file) = fs::File::open(path) else {
        return format!("(no log at {})", path.display());
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let start = from.max(len.saturating_sub(MAX));
    let mut text = String::new();
    if file.seek(SeekFrom::Start(start)).is_ok() {
        let mut buf = Vec::new();
        let _ = file.read_to_end(&mut buf);
        text = String::from_utf8_lossy(&buf).into_owned();
    }
    if text.trim().is_empty() {
        "(the server logged nothing)".to_owned()
    } else {
        text.trim_end().to_owned()
    }
}

/// `text` percent-encoded for the user-info part of a URL: everything but RFC 3986's unreserved
/// characters.
pub(crate) fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}
