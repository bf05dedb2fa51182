//! The text of a token: the host and user name as it names them, where its signature goes,
//! and when it was signed.

use std::net::Ipv6Addr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_rds::primitives::{DateTime, DateTimeFormat};

/// The host as the token names it: lower case (as the URL it is written into makes it, so
/// that the signature covers the same name), an IPv6 address in brackets. `None` for a name
/// the signer cannot put in a URL.
pub(super) fn signing_host(host: &str) -> Option<String> {
    if let Ok(ip) = host.trim_matches(['[', ']']).parse::<Ipv6Addr>() {
        return Some(format!("[{ip}]"));
    }
    let valid = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    valid.then(|| host.to_ascii_lowercase())
}

/// `username` percent-encoded as SigV4 encodes query values (everything but `A-Z a-z 0-9 - _
/// . ~`). The SDK's signer writes the user name into the URL as it is; encoded first, a name
/// with `+`, `&`, `#`, `@` or a space gets the same token botocore and the AWS CLI give it.
pub(super) fn encode_username(username: &str) -> String {
    let mut encoded = String::with_capacity(username.len());
    for byte in username.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// `token` with its `X-Amz-Signature` parameter moved to the end, where botocore (the AWS CLI)
/// and most SDKs put it; the Rust SDK puts `X-Amz-Security-Token` after it. The order does not
/// change the signature (SigV4 signs the parameters sorted), but a token byte-identical to
/// the reference implementation's is easier to check.
pub(super) fn signature_last(token: &str) -> String {
    let Some((url, query)) = token.split_once('?') else {
        return token.to_owned();
    };
    let (signature, mut params): (Vec<&str>, Vec<&str>) = query
        .split('&')
        .partition(|param| param.starts_with("X-Amz-Signature="));
    params.extend(signature);
    format!("{url}?{}", params.join("&"))
}

/// When `token` was signed: its `X-Amz-Date` (`20240826T220000Z`).
pub(super) fn signed_at(token: &str) -> Option<SystemTime> {
    let (_, rest) = token.split_once("X-Amz-Date=")?;
    let stamp = rest.get(..16)?.as_bytes();
    if !stamp.iter().all(u8::is_ascii_alphanumeric) {
        return None;
    }
    let part = |range: std::ops::Range<usize>| std::str::from_utf8(&stamp[range]).ok();
    let rfc3339 = format!(
        "{}-{}-{}T{}:{}:{}Z",
        part(0..4)?,
        part(4..6)?,
        part(6..8)?,
        part(9..11)?,
        part(11..13)?,
        part(13..15)?,
    );
    let parsed = DateTime::from_str(&rfc3339, DateTimeFormat::DateTime).ok()?;
    SystemTime::try_from(parsed).ok()
}

/// `time` without its fraction of a second.
pub(super) fn whole_seconds(time: SystemTime) -> SystemTime {
    let seconds = time
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    UNIX_EPOCH + Duration::from_secs(seconds)
}
