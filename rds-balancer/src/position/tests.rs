//! The position tests: real server outputs, canonical text, the order on examples, errors and
//! serde; the order's laws and the parser's robustness on generated input in `laws`.

mod aurora;
mod laws;

use std::cmp::Ordering;

use super::{ParsePositionError, Position};

const UUID_A: &str = "2174b383-5441-11e8-b90a-c80aa9429562";
const UUID_B: &str = "3e11fa47-71ca-11e1-9e33-c80aa9429562";

fn pos(text: &str) -> Position {
    match text.parse() {
        Ok(position) => position,
        Err(error) => panic!("{text:?} does not parse: {error}"),
    }
}

fn error(text: &str) -> String {
    match text.parse::<Position>() {
        Ok(position) => panic!("{text:?} parses, as {position:?}"),
        Err(error) => error.to_string(),
    }
}

#[test]
fn postgres_lsns_read_as_the_server_prints_them() {
    let cases = [
        ("0/3000060", 0x300_0060, "0/3000060"),
        ("16/B374D848", 0x16_B374_D848, "16/B374D848"),
        ("16/b374d848", 0x16_B374_D848, "16/B374D848"),
        ("00000016/0B374D84", 0x16_0B37_4D84, "16/B374D84"),
        ("0/0", 0, "0/0"),
        ("FFFFFFFF/FFFFFFFF", u64::MAX, "FFFFFFFF/FFFFFFFF"),
        (" 1/0\n", 1 << 32, "1/0"),
    ];
    for (text, lsn, canonical) in cases {
        let position = pos(text);
        assert_eq!(position.lsn(), Some(lsn), "{text}");
        assert_eq!(position.to_string(), canonical, "{text}");
        assert_eq!(Position::from_pg_lsn(text), Ok(position));
    }
}

#[test]
fn mariadb_positions_read_as_the_server_prints_them() {
    let cases = [
        ("0-1-100", "0-1-100"),
        ("0-1-100,1-2-5", "0-1-100,1-2-5"),
        ("1-2-5,0-1-100", "0-1-100,1-2-5"),
        (" 1-2-5 , 0-1-100 ", "0-1-100,1-2-5"),
        ("0-0-0", "0-0-0"),
        ("007-01-0100", "7-1-100"),
        (
            "4294967295-4294967295-18446744073709551615",
            "4294967295-4294967295-18446744073709551615",
        ),
    ];
    for (text, canonical) in cases {
        let position = pos(text);
        assert_eq!(position.to_string(), canonical, "{text}");
        assert_eq!(position.lsn(), None);
        assert_eq!(Position::from_mariadb_gtid(text), Ok(position), "{text}");
    }
}

#[test]
fn mysql_gtid_sets_read_as_the_server_prints_them() {
    // @@gtid_executed puts a newline after each comma.
    let executed =
        "3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5:7-9,\n2174B383-5441-11E8-B90A-C80AA9429562:1-3";
    let position = pos(executed);
    assert_eq!(position, Position::from_mysql_gtid_set(executed).unwrap());
    assert_eq!(
        position.to_string(),
        format!("{UUID_A}:1-3,{UUID_B}:1-5:7-9")
    );

    let cases = [
        // Intervals out of order, overlapping and touching merge.
        (format!("{UUID_B}:7-9:1-5:6:3-4"), format!("{UUID_B}:1-9")),
        (format!("{UUID_B}:5"), format!("{UUID_B}:5")),
        (format!("{UUID_B}:5-5:10"), format!("{UUID_B}:5:10")),
        // A UUID given twice is one.
        (
            format!("{UUID_B}:1-3, {UUID_A}:4 ,{UUID_B}:4-6:9"),
            format!("{UUID_A}:4,{UUID_B}:1-6:9"),
        ),
        (
            format!("{UUID_B}:1-9223372036854775807"),
            format!("{UUID_B}:1-9223372036854775807"),
        ),
        (format!(" {UUID_B} : 1-2 : 4 \n"), format!("{UUID_B}:1-2:4")),
    ];
    for (text, canonical) in cases {
        let position = pos(&text);
        assert_eq!(position.to_string(), canonical, "{text}");
        assert_eq!(pos(&canonical), position);
    }
}

#[test]
fn mysql_tags_are_part_of_the_source() {
    // MySQL 9.1 prints the set `SET GLOBAL gtid_purged` was given like this.
    let purged = "3E11FA47-71CA-11E1-9E33-C80AA9429562:Domain_1:1-3:15-21, 3E11FA47-71CA-11E1-9E33-C80AA9429562:Domain_2:8-52";
    assert_eq!(
        pos(purged).to_string(),
        format!("{UUID_B}:domain_1:1-3:15-21:domain_2:8-52")
    );
    // Untagged intervals first, then each tag's, sorted; tags are case-insensitive.
    let mixed = format!("{UUID_B}:TAG_a:1-3:b:7:_x:2, {UUID_B}:1-5:tag_A:4");
    assert_eq!(
        pos(&mixed).to_string(),
        format!("{UUID_B}:1-5:_x:2:b:7:tag_a:1-4")
    );
    // A tag is not the untagged source: neither holds the other.
    let tagged = pos(&format!("{UUID_B}:t:1-5"));
    let untagged = pos(&format!("{UUID_B}:1-5"));
    assert_eq!(tagged.partial_cmp(&untagged), None);
    assert!(tagged <= pos(&format!("{UUID_B}:1-5:t:1-9")));
}

#[test]
fn the_empty_position_is_nothing_written_yet_for_both_gtid_engines() {
    let empty = pos("");
    assert_eq!(empty.to_string(), "");
    assert_eq!(format!("{empty:?}"), r#"Position("")"#);
    assert_eq!(pos(" \n "), empty);
    assert_eq!(Position::from_mariadb_gtid(""), Ok(empty.clone()));
    assert_eq!(Position::from_mysql_gtid_set(""), Ok(empty.clone()));

    let mariadb = pos("0-1-1");
    let mysql = pos(&format!("{UUID_A}:1"));
    for gtid in [&mariadb, &mysql] {
        assert_eq!(empty.partial_cmp(gtid), Some(Ordering::Less));
        assert!(empty.reached_by(gtid) && !gtid.reached_by(&empty));
        assert_eq!(empty.join(gtid).as_ref(), Some(gtid));
        assert_eq!(gtid.join(&empty).as_ref(), Some(gtid));
    }
    assert_eq!(empty.join(&empty), Some(empty.clone()));
    // A PostgreSQL LSN is never empty, and is another engine.
    let lsn = pos("0/0");
    assert_eq!(empty.partial_cmp(&lsn), None);
    assert!(!empty.reached_by(&lsn) && !lsn.reached_by(&empty));
    assert_eq!(empty.join(&lsn), None);
}

#[test]
fn postgres_order_join_and_lag_are_numeric() {
    let (early, late) = (pos("0/3000060"), pos("16/B374D848"));
    assert_eq!(early.partial_cmp(&late), Some(Ordering::Less));
    assert!(late > early);
    assert!(early.reached_by(&late) && !late.reached_by(&early));
    assert_eq!(early.join(&late), Some(late.clone()));
    assert_eq!(late.lag_bytes(&early), Some(0x16_B374_D848 - 0x300_0060));
    assert_eq!(
        early.lag_bytes(&late),
        Some(0),
        "a replica ahead has no lag"
    );
    assert_eq!(late.lag_bytes(&pos("0-1-1")), None);
    assert_eq!(pos("0-1-1").lag_bytes(&late), None);
}

#[test]
fn mariadb_order_follows_each_domain_across_failovers() {
    let written = pos("0-1-100,1-2-5");
    // Every domain at a later sequence number, whatever the server (a failover in domain 0).
    assert!(written < pos("0-3-101,1-2-5"));
    assert!(written < pos("0-1-100,1-2-5,2-9-1"), "an extra domain");
    assert!(!written.reached_by(&pos("0-1-100")), "domain 1 missing");
    assert!(!written.reached_by(&pos("0-1-99,1-2-9")), "domain 0 behind");
    assert_eq!(written.partial_cmp(&pos("0-1-101,1-2-4")), None);

    // The same sequence number from another server is another transaction.
    let (one, two) = (pos("0-1-100"), pos("0-2-100"));
    assert_ne!(one, two);
    assert_eq!(one.partial_cmp(&two), None);
    assert!(!one.reached_by(&two) && !two.reached_by(&one));
    assert_eq!(one.join(&two), None);
    assert_eq!(
        pos("0-1-100,1-1-7").partial_cmp(&pos("0-2-100,1-1-9")),
        None
    );

    assert_eq!(
        pos("0-1-100,1-2-5").join(&pos("0-3-90,1-2-6,2-1-1")),
        Some(pos("0-1-100,1-2-6,2-1-1"))
    );
}

#[test]
fn mysql_order_is_set_inclusion() {
    let written = pos(&format!("{UUID_B}:1-5"));
    assert!(written < pos(&format!("{UUID_B}:1-9")));
    assert!(written < pos(&format!("{UUID_B}:1-5,{UUID_A}:1")));
    assert!(written <= pos(&format!("{UUID_B}:1-3:4-5")));
    assert!(
        !written.reached_by(&pos(&format!("{UUID_B}:1-4:6-9"))),
        "a gap"
    );
    assert!(!written.reached_by(&pos(&format!("{UUID_A}:1-5"))));
    assert_eq!(
        written.partial_cmp(&pos(&format!("{UUID_B}:2-9"))),
        None,
        "neither holds the other"
    );
    assert_eq!(
        pos(&format!("{UUID_B}:1-3:9")).join(&pos(&format!("{UUID_B}:4-5,{UUID_A}:2"))),
        Some(pos(&format!("{UUID_A}:2,{UUID_B}:1-5:9")))
    );
}

#[test]
fn engines_do_not_compare() {
    let lsn = pos("0/3000060");
    let mariadb = pos("0-1-100");
    let mysql = pos(&format!("{UUID_B}:1-100"));
    for (a, b) in [(&lsn, &mariadb), (&lsn, &mysql), (&mariadb, &mysql)] {
        assert_eq!(a.partial_cmp(b), None);
        assert_eq!(b.partial_cmp(a), None);
        assert!(!a.le(b) && !a.ge(b) && !a.lt(b) && !a.gt(b) && a != b);
        assert!(!a.reached_by(b) && !b.reached_by(a));
        assert_eq!(a.join(b), None);
    }
}

#[test]
fn malformed_text_is_refused_with_what_is_wrong() {
    let long_uuid = "é".repeat(40);
    let cases: &[(&str, &str)] = &[
        ("1/", r#"invalid PostgreSQL LSN "1/": expected two groups"#),
        (
            "zz/1",
            r#"invalid PostgreSQL LSN "zz/1": expected two groups"#,
        ),
        ("/1", "expected two groups"),
        ("1/2/3", "expected two groups"),
        ("123456789/0", "1 to 8 hexadecimal digits"),
        ("+1/0", "expected two groups"),
        ("1 /0", "expected two groups"),
        (
            "0-1",
            r#"invalid MariaDB GTID position "0-1": expected domain-server-sequence"#,
        ),
        ("0-1-2-3", "expected domain-server-sequence"),
        (
            "0-1-x",
            r#""0-1-x": the sequence number is not a decimal number"#,
        ),
        ("x-1-2", "the domain is not a decimal number"),
        ("0--2", "the server id is not a decimal number"),
        ("0-+1-2", "the server id is not a decimal number"),
        ("4294967296-1-1", "the domain is too large"),
        ("0-4294967296-1", "the server id is too large"),
        (
            "0-1-18446744073709551616",
            "the sequence number is too large",
        ),
        (
            "0-1-100,0-2-101",
            r#""0-2-101": a second entry for the same domain"#,
        ),
        ("0-1-100,", r#""0-1-100,": empty entry"#),
        (",", "empty entry"),
        ("0-1-1,,1-1-1", "empty entry"),
        ("garbage", "expected domain-server-sequence"),
        (UUID_B, "expected domain-server-sequence"),
        (
            "3e11fa47-71ca-11e1-9e33-c80aa9429562:",
            "a UUID or tag with no interval",
        ),
        (
            "3e11fa47-71ca-11e1-9e33-c80aa9429562:1,2174b383-5441-11e8-b90a-c80aa9429562",
            r#""2174b383-5441-11e8-b90a-c80aa9429562": a UUID or tag with no interval"#,
        ),
        ("3e11fa47-71ca-11e1-9e33-c80aa9429562:t", "no interval"),
        ("3e11fa47-71ca-11e1-9e33-c80aa9429562:1:t", "no interval"),
        ("3e11fa47-71ca-11e1-9e33-c80aa9429562:a:b:1", "no interval"),
        ("3e11fa47-71ca-11e1-9e33-c80aa9429562:1::2", "no interval"),
        (
            "3e11fa47-71ca-11e1-9e33-c80aa9429562:5-3",
            r#"invalid MySQL GTID set "5-3": the interval ends before it starts"#,
        ),
        (
            "3e11fa47-71ca-11e1-9e33-c80aa9429562:0",
            "from 1 to 9223372036854775807",
        ),
        ("3e11fa47-71ca-11e1-9e33-c80aa9429562:0-5", "from 1 to"),
        (
            "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-9223372036854775808",
            "from 1 to",
        ),
        (
            "3e11fa47-71ca-11e1-9e33-c80aa9429562:99999999999999999999",
            "from 1 to",
        ),
        (
            "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-",
            "expected an interval, n or n-m",
        ),
        (
            "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-2-3",
            "expected an interval",
        ),
        (
            "3e11fa47-71ca-11e1-9e33-c80aa9429562:1a",
            "expected an interval",
        ),
        (
            "3e11fa47-71ca-11e1-9e33-c80aa9429562:-1",
            r#""-1": expected an interval (n or n-m) or a tag"#,
        ),
        ("3e11fa47-71ca-11e1-9e33-c80aa9429562:ta-g:1", "or a tag"),
        ("3e11fa47-71ca-11e1-9e33-c80aa9429562:1,", "empty entry"),
        ("3e11fa4771ca11e19e33c80aa9429562:1", "expected a UUID"),
        (
            "3e11fa47-71ca-11e1-9e33-c80aa942956g:1",
            r#""3e11fa47-71ca-11e1-9e33-c80aa942956g": expected a UUID"#,
        ),
        (
            "{3e11fa47-71ca-11e1-9e33-c80aa9429562}:1",
            "expected a UUID",
        ),
        ("0-1-1:1", "expected a UUID"),
        (":", "expected a UUID"),
    ];
    for (text, expected) in cases {
        let message = error(text);
        assert!(message.contains(expected), "{text:?}: {message}");
    }
    // A long piece is quoted cut, at a character boundary.
    let message = error(&format!("{long_uuid}:1"));
    assert!(
        message.starts_with(&format!(r#"invalid MySQL GTID set "{}…""#, "é".repeat(32))),
        "{message}"
    );
}

#[test]
fn each_engine_reader_refuses_the_others_text() {
    assert!(Position::from_pg_lsn("0-1-100").is_err());
    assert!(Position::from_pg_lsn("").is_err());
    assert!(Position::from_mariadb_gtid("0/3000060").is_err());
    assert!(Position::from_mariadb_gtid(&format!("{UUID_B}:1")).is_err());
    assert!(Position::from_mysql_gtid_set("0-1-100").is_err());
    assert!(Position::from_mysql_gtid_set("0/3000060").is_err());
}

#[test]
fn the_error_is_a_plain_value() {
    fn is_error<E: std::error::Error + Clone + PartialEq + Send + Sync + 'static>(_: &E) {}
    let error: ParsePositionError = "0-1".parse::<Position>().unwrap_err();
    is_error(&error);
    assert_eq!(error.clone(), error);
    assert_ne!(error, "0-2".parse::<Position>().unwrap_err());
    assert!(format!("{error:?}").contains("MariaDbShape"));
}

#[test]
fn serde_uses_the_canonical_text() {
    let cases = [
        ("16/b374d848", "16/B374D848"),
        ("1-2-5,0-1-100", "0-1-100,1-2-5"),
        (
            "3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5:6-9",
            "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-9",
        ),
        ("", ""),
    ];
    for (text, canonical) in cases {
        let position = pos(text);
        let json = serde_json::to_string(&position).unwrap();
        assert_eq!(json, format!("\"{canonical}\""));
        assert_eq!(serde_json::from_str::<Position>(&json).unwrap(), position);
        // Any text the parser reads deserializes.
        let raw = serde_json::to_string(text).unwrap();
        assert_eq!(serde_json::from_str::<Position>(&raw).unwrap(), position);
    }
    let refused = serde_json::from_str::<Position>(r#""0-1""#).unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("expected domain-server-sequence"),
        "{refused}"
    );
    let refused = serde_json::from_str::<Position>("42").unwrap_err();
    assert!(
        refused.to_string().contains("a replication position"),
        "{refused}"
    );
}

#[test]
fn debug_shows_the_text() {
    assert_eq!(format!("{:?}", pos("0-1-100")), r#"Position("0-1-100")"#);
    assert_eq!(
        format!("{:?}", pos("0/3000060")),
        r#"Position("0/3000060")"#
    );
}
