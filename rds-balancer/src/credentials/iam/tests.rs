//! Unit tests of the token's text.

use std::time::{Duration, UNIX_EPOCH};

use super::token::{encode_username, signature_last, signed_at, signing_host, whole_seconds};

#[test]
fn the_signing_time_is_read_from_the_token_or_the_clock() {
    let time = UNIX_EPOCH + Duration::from_millis(1_500);
    assert_eq!(whole_seconds(time), UNIX_EPOCH + Duration::from_secs(1));
    let token = "h:5432/?Action=connect&DBUser=u&X-Amz-Date=20240826T220000Z&X-Amz-Expires=900";
    assert_eq!(
        signed_at(token),
        Some(UNIX_EPOCH + Duration::from_secs(1_724_709_600))
    );
    assert_eq!(signed_at("h:5432/?X-Amz-Date=2024"), None);
    assert_eq!(signed_at("h:5432/?X-Amz-Date=2024082éT220000Z"), None);
}

#[test]
fn the_signature_goes_last() {
    assert_eq!(
        signature_last("h:1/?Action=connect&X-Amz-Signature=ab&X-Amz-Security-Token=t%2F"),
        "h:1/?Action=connect&X-Amz-Security-Token=t%2F&X-Amz-Signature=ab"
    );
    assert_eq!(
        signature_last("h:1/?Action=connect&X-Amz-Signature=ab"),
        "h:1/?Action=connect&X-Amz-Signature=ab"
    );
    assert_eq!(signature_last("no-query"), "no-query");
}

#[test]
fn user_names_are_encoded_as_sigv4_encodes_query_values() {
    assert_eq!(encode_username("app_user-1.x~"), "app_user-1.x~");
    assert_eq!(encode_username("a+b c@d&e#é"), "a%2Bb%20c%40d%26e%23%C3%A9");
}

#[test]
fn hosts_are_checked_and_normalised() {
    assert_eq!(
        signing_host("DB-1.Example.com").as_deref(),
        Some("db-1.example.com")
    );
    assert_eq!(signing_host("::1").as_deref(), Some("[::1]"));
    assert_eq!(signing_host("[fe80::1]").as_deref(), Some("[fe80::1]"));
    for bad in ["", "a b", "a/b", "a:1", "a?b", "é.example"] {
        assert_eq!(signing_host(bad), None, "{bad}");
    }
}
