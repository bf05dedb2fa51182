//! The topology queries' choice by backend, host patterns, and rows assembled into a topology.

use super::*;

fn row(id: Option<&str>, session: &str) -> Row {
    Row {
        server_id: id.map(str::to_owned),
        session_id: Some(session.to_owned()),
        ..Row::default()
    }
}

fn pattern() -> HostPattern {
    HostPattern::parse("?.cluster-xyz.us-east-1.rds.amazonaws.com").unwrap()
}

#[test]
fn the_query_is_chosen_by_backend() {
    let pg = dialect(DbBackend::Postgres).unwrap();
    let mysql = dialect(DbBackend::MySql).unwrap();
    assert!(dialect(DbBackend::Sqlite).is_none());
    assert_eq!(pg.default_port, 5432);
    assert_eq!(mysql.default_port, 3306);
    assert!(pg.selects_from_functions);
    assert!(!mysql.selects_from_functions);

    let pg_sql = pg.sql(&pg.aurora_relation);
    assert!(
        pg_sql.contains(" FROM aurora_replica_status() WHERE "),
        "{pg_sql}"
    );
    assert!(pg_sql.contains("replica_lag_in_msec"));
    assert!(pg_sql.contains("<= 300"));
    let mysql_sql = mysql.sql(&mysql.aurora_relation);
    assert!(
        mysql_sql.contains(" FROM information_schema.replica_host_status WHERE "),
        "{mysql_sql}"
    );
    assert!(mysql_sql.contains("REPLICA_LAG_IN_MILLISECONDS"));
    // Ages to the microsecond: `NOW()` alone has whole seconds.
    assert!(mysql_sql.contains("<= 300000000"));
    assert!(!mysql_sql.contains("NOW()"), "{mysql_sql}");
    for (sql, dialect) in [(&pg_sql, pg), (&mysql_sql, mysql)] {
        assert!(sql.contains("'MASTER_SESSION_ID'"));
        let relation = dialect.aurora_relation.as_str();
        assert_eq!(sql.matches(relation).count(), 1, "{sql}");
        for column in ["server_id", "session_id", "cpu", "replica_lag_ms", "age_ms"] {
            assert!(sql.contains(&format!("AS {column}")), "{column} in {sql}");
        }
    }
}

#[test]
fn another_relation_takes_the_place_of_auroras_and_nothing_else_changes() {
    for (backend, name) in [
        (DbBackend::Postgres, "monitoring.replica_status()"),
        (DbBackend::Postgres, "replica_status_rows"),
        (DbBackend::MySql, "replica_host_status"),
        (DbBackend::MySql, "app.replica_host_status_delayed"),
    ] {
        let dialect = dialect(backend).unwrap();
        let relation = StatusRelation::parse(name, dialect.selects_from_functions).unwrap();
        let default = dialect.sql(&dialect.aurora_relation);
        let sql = dialect.sql(&relation);
        assert_eq!(
            sql,
            default.replace(
                &format!(" FROM {} WHERE ", dialect.aurora_relation.as_str()),
                &format!(" FROM {name} WHERE ")
            ),
            "{backend:?} {name}"
        );
        assert_ne!(sql, default);
    }
}

#[test]
fn host_patterns_need_exactly_one_placeholder() {
    assert_eq!(
        pattern().host("app-1"),
        "app-1.cluster-xyz.us-east-1.rds.amazonaws.com"
    );
    assert_eq!(HostPattern::parse("db-?").unwrap().host("a"), "db-a");
    assert_eq!(HostPattern::parse("?").unwrap().host("a"), "a");
    assert!(HostPattern::parse("no-placeholder.example").is_none());
    assert!(HostPattern::parse("?.?.example").is_none());
    assert!(HostPattern::parse("").is_none());
}

#[test]
fn rows_become_a_writer_and_readers() {
    let rows = vec![
        row(Some("reader-1"), "8d5a-uuid"),
        Row {
            cpu: Some(12.5),
            replica_lag_ms: Some(1500.0),
            ..row(Some("reader-2"), "9e6b-uuid")
        },
        row(Some("writer-1"), WRITER_SESSION_ID),
    ];
    let topology = assemble(rows, &pattern(), 5432);
    let ids: Vec<_> = topology.instances.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, ["writer-1", "reader-1", "reader-2"]);
    let writer = topology.writer().unwrap();
    assert_eq!(
        writer.address(),
        Some(("writer-1.cluster-xyz.us-east-1.rds.amazonaws.com", 5432))
    );
    assert!(writer.is_available());
    let reader_2 = &topology.instances[2];
    assert_eq!(reader_2.replica_lag, Some(Duration::from_millis(1500)));
    assert_eq!(reader_2.cpu_percent, Some(12.5));
    assert_eq!(topology.instances[1].replica_lag, None);
}

#[test]
fn odd_rows_are_skipped_and_odd_numbers_ignored() {
    let rows = vec![
        row(None, "x"),
        row(Some(""), "x"),
        row(Some("  "), WRITER_SESSION_ID),
        row(Some("bad/host"), "x"),
        Row {
            session_id: None,
            cpu: Some(f64::NAN),
            replica_lag_ms: Some(-1.0),
            ..row(Some("reader-1"), "")
        },
        Row {
            replica_lag_ms: Some(f64::MAX),
            cpu: Some(-3.0),
            ..row(Some("reader-1"), "dup")
        },
        Row {
            replica_lag_ms: Some(f64::INFINITY),
            ..row(Some("reader-2"), "y")
        },
    ];
    let topology = assemble(rows, &pattern(), 1);
    assert!(topology.writer().is_none());
    let ids: Vec<_> = topology.instances.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, ["reader-1", "reader-2"]);
    for instance in &topology.instances {
        assert_eq!(instance.replica_lag, None);
        assert_eq!(instance.cpu_percent, None);
    }
    let huge = assemble(
        vec![Row {
            replica_lag_ms: Some(1e300),
            ..row(Some("r"), "z")
        }],
        &pattern(),
        1,
    );
    assert_eq!(huge.instances[0].replica_lag, None);
}

#[test]
fn of_two_writer_rows_the_freshest_wins() {
    let rows = vec![
        Row {
            age_ms: Some(20_000.0),
            ..row(Some("old-writer"), WRITER_SESSION_ID)
        },
        Row {
            age_ms: Some(10.0),
            ..row(Some("new-writer"), WRITER_SESSION_ID)
        },
        row(Some("reader-1"), "uuid"),
    ];
    let topology = assemble(rows, &pattern(), 5432);
    assert_eq!(topology.writer().unwrap().id, "new-writer");
    let ids: Vec<_> = topology.instances.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, ["new-writer", "reader-1"]);

    // A NULL age (the connected instance's own row) counts as the freshest.
    let rows = vec![
        Row {
            age_ms: Some(5.0),
            ..row(Some("a"), WRITER_SESSION_ID)
        },
        row(Some("b"), WRITER_SESSION_ID),
    ];
    assert_eq!(assemble(rows, &pattern(), 1).writer().unwrap().id, "b");
}

#[test]
fn a_writer_reported_again_as_reader_stays_the_writer() {
    let rows = vec![
        row(Some("w"), "uuid"),
        row(Some("w"), WRITER_SESSION_ID),
        row(Some("r"), "uuid-2"),
    ];
    let topology = assemble(rows, &pattern(), 5432);
    assert_eq!(topology.instances.len(), 2);
    assert_eq!(topology.writer().unwrap().id, "w");
    assert_eq!(topology.readers().count(), 1);
}
