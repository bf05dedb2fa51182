//! Aurora PostgreSQL positions: the `bigint` LSNs of `aurora_replica_status()`, kept apart from
//! PostgreSQL's WAL positions.

use std::cmp::Ordering;

use super::{error, pos};
use crate::position::Position;

#[test]
fn aurora_lsns_read_as_the_server_prints_them_and_print_with_their_prefix() {
    // `durable_lsn` as the AWS documentation's example shows it.
    let durable = Position::from_aurora_lsn("88492069").unwrap();
    assert_eq!(durable.to_string(), "aurora-pg:88492069");
    assert_eq!(pos("aurora-pg:88492069"), durable);
    assert_eq!(pos(" aurora-pg: 0088492069\n"), durable);
    assert_eq!(Position::from_aurora_lsn(" 88492069 "), Ok(durable.clone()));
    assert_eq!(pos("aurora-pg:0").to_string(), "aurora-pg:0");
    let max = format!("aurora-pg:{}", u64::MAX);
    assert_eq!(pos(&max).to_string(), max);
    assert_eq!(durable.lsn(), None, "not a PostgreSQL WAL position");
    assert_eq!(format!("{durable:?}"), r#"Position("aurora-pg:88492069")"#);
    let json = serde_json::to_string(&durable).unwrap();
    assert_eq!(json, r#""aurora-pg:88492069""#);
    assert_eq!(serde_json::from_str::<Position>(&json).unwrap(), durable);
}

#[test]
fn aurora_order_and_join_are_numeric() {
    let (early, late) = (pos("aurora-pg:100"), pos("aurora-pg:4294967296"));
    assert_eq!(early.partial_cmp(&late), Some(Ordering::Less));
    assert!(early.reached_by(&late) && !late.reached_by(&early));
    assert!(early.reached_by(&early.clone()));
    assert_eq!(early.join(&late), Some(late.clone()));
    assert_eq!(late.join(&early), Some(late.clone()));
    assert_eq!(
        late.lag_bytes(&early),
        None,
        "Aurora LSNs are not WAL bytes"
    );
}

#[test]
fn aurora_lsns_do_not_compare_with_postgres_lsns_or_gtids() {
    let aurora = pos("aurora-pg:50331744");
    // The same number as a PostgreSQL WAL position (0/3000060 is 50331744).
    let wal = pos("0/3000060");
    assert_eq!(wal.lsn(), Some(50_331_744));
    for other in [
        wal,
        pos("0-1-100"),
        pos(""),
        pos("3e11fa47-71ca-11e1-9e33-c80aa9429562:1"),
    ] {
        assert_ne!(aurora, other);
        assert_eq!(aurora.partial_cmp(&other), None, "{other:?}");
        assert!(!aurora.reached_by(&other) && !other.reached_by(&aurora));
        assert_eq!(aurora.join(&other), None);
        assert_eq!(other.join(&aurora), None);
    }
}

#[test]
fn malformed_aurora_text_is_refused_with_what_is_wrong() {
    let cases: &[(&str, &str)] = &[
        (
            "aurora-pg:",
            r#"invalid Aurora PostgreSQL LSN "": the Aurora LSN is not a decimal number"#,
        ),
        ("aurora-pg:-1", "the Aurora LSN is not a decimal number"),
        ("aurora-pg:+1", "not a decimal number"),
        ("aurora-pg:1 2", "not a decimal number"),
        ("aurora-pg:0/3000060", "not a decimal number"),
        (
            "aurora-pg:18446744073709551616",
            "the Aurora LSN is too large",
        ),
    ];
    for (text, expected) in cases {
        let message = error(text);
        assert!(message.contains(expected), "{text:?}: {message}");
    }
    assert!(Position::from_aurora_lsn("0/3000060").is_err());
    assert!(Position::from_pg_lsn("aurora-pg:1").is_err());
    assert!(Position::from_aurora_lsn("").is_err());
}
