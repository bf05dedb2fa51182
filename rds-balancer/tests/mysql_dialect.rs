//! The classifier's MySQL dialect against a real MariaDB replica (`read_only=ON`), as users
//! without `SUPER`, whose writes `read_only` refuses (ER_OPTION_PREVENTS_STATEMENT, 1290).
//!
//! - Every MySQL statement of the classifier's corpus that goes to a reader runs on the replica
//!   without a read-only error, directly (SeaORM over sqlx, prepared and as text) and through an
//!   `RdsConnection`, whose statements the replica's general log holds and the primary's does
//!   not. The few that MariaDB fails otherwise are listed, with the reason.
//! - The corpus statements sent to the writer because they write are refused by the replica
//!   with a read-only error, and reach the primary through an `RdsConnection`.
//! - Statements bound to the session (`LAST_INSERT_ID()`, named locks, user variables, locking
//!   reads, temporary tables, `SET`, sequences) go to the writer through an `RdsConnection`:
//!   the server that answers says so (`@@port`), and so do the values they return.
//!
//! The corpus is the unit tests' own file (`src/classify/tests/corpus.rs`), included here.

// Helper functions of tests panic on failure like the tests themselves.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../src/classify/tests/corpus.rs"]
mod corpus;

use std::collections::HashSet;
use std::sync::OnceLock;
use std::time::Duration;

use rds_balancer::{Classifier, RdsConnection, Reason, Target, explain};
use rds_balancer_testkit::{MariaDbCluster, MariaDbNode};
use sea_orm::sqlx::mysql::MySqlDatabaseError;
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseBackend, DatabaseConnection, DbErr,
    QueryResult, RuntimeErr, Statement, Value,
};

use self::corpus::{CORPUS, Case};

const MY: DatabaseBackend = DatabaseBackend::MySql;
const WAIT: Duration = Duration::from_secs(60);

/// MariaDB's ER_OPTION_PREVENTS_STATEMENT: "The MariaDB server is running with the --read-only
/// option so it cannot execute this statement".
const READ_ONLY: u16 = 1290;
/// ER_PARSE_ERROR.
const SYNTAX: u16 = 1064;

/// The reads of the corpus that must run successfully on the replica, at least: all but those
/// in [`READS_FAILING_ON_MARIADB`] (so that the test cannot pass with nothing run).
const MIN_READS_RUN: usize = 54;
/// The writes of the corpus that the replica must refuse with a read-only error, at least.
const MIN_WRITES_REFUSED: usize = 22;

/// Corpus reads that MariaDB 10.11 fails, with its error number (the same as prepared
/// statements and as text) and why. Never a read-only error.
const READS_FAILING_ON_MARIADB: &[(&str, u16, &str)] = &[
    (
        "EXPLAIN FORMAT = TREE SELECT * FROM t",
        1791,
        "FORMAT=TREE is MySQL 8 only (ER_UNKNOWN_EXPLAIN_FORMAT)",
    ),
    (
        "VALUES ROW(1, 2), ROW(3, 4)",
        SYNTAX,
        "VALUES ROW(..) is MySQL 8.0.19 syntax",
    ),
    (
        "TABLE cake",
        SYNTAX,
        "the TABLE statement is MySQL 8.0.19 syntax",
    ),
    (
        "SELECT pg_notify('a', 'b'), pg_advisory_lock(1)",
        1305,
        "PostgreSQL functions (there to prove the MySQL rules ignore them): no such function",
    ),
    (
        "SELECT a.b.c, `a`.`b`.`c` FROM a",
        1146,
        "`a.b.c` is database a, table b, which is not the table in FROM: no schema runs it",
    ),
];

/// Corpus writes (see [`writes_on_mariadb`]) that the replica does not refuse with a read-only
/// error: the statement, what it does prepared and as text (`None`: it runs), and why.
const WRITES_NOT_REFUSED: &[(&str, Option<u16>, Option<u16>, &str)] = &[
    (
        "SELECT `cake`.`id` FROM `cake` FOR SHARE SKIP LOCKED",
        Some(SYNTAX),
        Some(SYNTAX),
        "FOR SHARE is MySQL 8 syntax",
    ),
    (
        "WITH x AS (SELECT 1) UPDATE t SET a = 1",
        Some(SYNTAX),
        Some(SYNTAX),
        "WITH .. UPDATE is MySQL 8 syntax",
    ),
    (
        "SELECT s.nextval",
        Some(1109),
        Some(1109),
        "seq.nextval is the syntax of sql_mode=ORACLE only (unknown table otherwise)",
    ),
    (
        "REPAIR TABLE t",
        None,
        None,
        "read_only does not refuse REPAIR TABLE (of an InnoDB table: nothing to repair)",
    ),
    (
        "SELECT 1 # comment\nFOR UPDATE",
        None,
        None,
        "no table, so nothing to lock",
    ),
    (
        "SELECT 1; SELECT 2 FOR UPDATE",
        Some(SYNTAX),
        None,
        "no table; a prepared statement holds one statement only",
    ),
    (
        "SELECT 1; DROP TABLE t",
        Some(SYNTAX),
        Some(READ_ONLY),
        "a prepared statement holds one statement only; as text, DROP is refused",
    ),
];

/// The database of the reads.
const READS_DB: &str = "dialect_reads";
/// The database of the writes sent to the replica directly.
const WRITES_DB: &str = "dialect_writes";
/// The database the writes sent through an `RdsConnection` land in (on the primary): its own,
/// since they change it (`SELECT 1; DROP TABLE t` as text drops `t`).
const RDS_WRITES_DB: &str = "dialect_rds_writes";
/// The database of the session-bound statements.
const SESSION_DB: &str = "dialect_session";

/// Every user's password.
const PASSWORD: &str = "dialect-pw";
/// Runs statements directly on the replica.
const APP: &str = "dialect_app";
/// The users of the `RdsConnection`s, one per test, so that the general log tells them apart.
const READS_RDS: &str = "dialect_reads_rds";
const WRITES_RDS: &str = "dialect_writes_rds";
const SESSION_RDS: &str = "dialect_session_rds";
const FUNCTION_RDS: &str = "dialect_function_rds";

/// The tables, sequence and rows the corpus statements use, and a stored function that writes.
const SCHEMA: &str = "
SET NAMES utf8mb4;
CREATE TABLE cake (id INT NOT NULL AUTO_INCREMENT PRIMARY KEY, name VARCHAR(64) NOT NULL,
    price DECIMAL(8, 2), KEY idx_name (name));
CREATE TABLE fruit (id INT NOT NULL AUTO_INCREMENT PRIMARY KEY, name VARCHAR(64) NOT NULL,
    cake_id INT, KEY (cake_id));
CREATE TABLE filling (id INT PRIMARY KEY, name VARCHAR(64));
CREATE TABLE cake_filling (cake_id INT NOT NULL, filling_id INT NOT NULL,
    PRIMARY KEY (cake_id, filling_id));
CREATE TABLE permissions (id INT PRIMARY KEY, `update` INT, `delete` INT, `insert` INT,
    `for` INT, `into` INT);
CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(64), x INT, a INT, v INT, amount INT,
    update_count INT, insert_id INT, replace_me INT, `$col` INT, `a$b` INT, `for` INT,
    `update` INT, `a``b` INT) WITH SYSTEM VERSIONING;
CREATE TABLE u (id INT PRIMARY KEY);
CREATE TABLE `tëst` (id INT PRIMARY KEY);
CREATE SEQUENCE s;
CREATE FUNCTION take_ticket() RETURNS BIGINT RETURN NEXTVAL(s);
INSERT INTO cake (name, price) VALUES ('sponge', 3.50), ('lemon', 4.00);
INSERT INTO fruit (name, cake_id) VALUES ('apple', 1), ('pear', 2);
INSERT INTO filling (id, name) VALUES (1, 'cream');
INSERT INTO cake_filling (cake_id, filling_id) VALUES (1, 1);
INSERT INTO permissions VALUES (1, 1, 1, 1, 1, 1);
INSERT INTO t (id, name, x, amount) VALUES (1, 'a', 1, 10), (2, 'b', 2, 20);
INSERT INTO u (id) VALUES (1);
INSERT INTO `tëst` (id) VALUES (1);
";

/// The cluster shared by the tests of this binary: a primary and one read-only replica, the
/// schema in each database, the users, and the general log (as a table) on both servers.
fn cluster() -> &'static MariaDbCluster {
    static CLUSTER: OnceLock<MariaDbCluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        let cluster = MariaDbCluster::start(1)
            .unwrap_or_else(|e| panic!("could not start the MariaDB cluster: {e}"));
        for node in cluster.nodes() {
            // `take_ticket()` is neither deterministic nor free of writes: binary logging
            // refuses to create it otherwise.
            node.sql(
                "",
                "SET GLOBAL log_output = 'TABLE'; SET GLOBAL general_log = ON; \
                 SET GLOBAL log_bin_trust_function_creators = ON",
            )
            .unwrap();
        }
        for db in [READS_DB, WRITES_DB, RDS_WRITES_DB, SESSION_DB] {
            cluster.create_database(db).unwrap();
            cluster.sql(db, SCHEMA).unwrap();
        }
        for user in [APP, READS_RDS, WRITES_RDS, SESSION_RDS, FUNCTION_RDS] {
            cluster.create_user(user, PASSWORD).unwrap();
        }
        // For `SHOW SLAVE STATUS`; it does not lift read_only.
        cluster
            .sql(
                "",
                &format!("GRANT SLAVE MONITOR ON *.* TO '{APP}'@'%', '{READS_RDS}'@'%'"),
            )
            .unwrap();
        cluster.wait_replicated(WAIT).unwrap();
        assert_eq!(
            cluster.replicas()[0].sql("", "SELECT @@read_only").unwrap(),
            "1"
        );
        cluster
    })
}

fn primary() -> &'static MariaDbNode {
    cluster().primary()
}

fn replica() -> &'static MariaDbNode {
    &cluster().replicas()[0]
}

/// What a server did with a statement: ran it, or failed it with a MariaDB error.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Ran,
    Failed(u16, String),
}

impl Outcome {
    fn of<T>(result: Result<T, DbErr>) -> Outcome {
        let err = match result {
            Ok(_) => return Outcome::Ran,
            Err(err) => err,
        };
        let number = match &err {
            DbErr::Query(RuntimeErr::SqlxError(e))
            | DbErr::Exec(RuntimeErr::SqlxError(e))
            | DbErr::Conn(RuntimeErr::SqlxError(e)) => e
                .as_database_error()
                .and_then(|e| e.try_downcast_ref::<MySqlDatabaseError>())
                .map(MySqlDatabaseError::number),
            _ => None,
        };
        match number {
            Some(number) => Outcome::Failed(number, err.to_string()),
            None => panic!("not an error of the server: {err}"),
        }
    }

    /// The MariaDB error number; `None` when it ran.
    fn code(&self) -> Option<u16> {
        match self {
            Outcome::Ran => None,
            Outcome::Failed(code, _) => Some(*code),
        }
    }
}

/// The statement with a value (1) bound to each `?`, as SeaORM sends it (prepared).
fn prepared(sql: &str) -> Statement {
    let values = vec![Value::Int(Some(1)); sql.matches('?').count()];
    Statement::from_sql_and_values(MY, sql, values)
}

/// The statement with each `?` replaced by 1, for the text protocol. (The corpus's MySQL
/// statements hold `?` only as placeholders.)
fn text(sql: &str) -> String {
    sql.replace('?', "1")
}

/// Runs `sql` as SeaORM's `query_all` does: a prepared statement.
async fn run_prepared(db: &impl ConnectionTrait, sql: &str) -> Outcome {
    Outcome::of(db.query_all_raw(prepared(sql)).await)
}

/// Runs `sql` as SeaORM's `execute_unprepared` does: the text protocol, verbatim (unlike the
/// `mariadb` client, which strips comments).
async fn run_text(db: &impl ConnectionTrait, sql: &str) -> Outcome {
    Outcome::of(db.execute_unprepared(&text(sql)).await)
}

/// A SeaORM connection (one pooled connection) to `url`.
async fn connect(url: String) -> DatabaseConnection {
    let mut options = ConnectOptions::new(url);
    options.sqlx_logging(false).max_connections(1);
    Database::connect(options).await.unwrap()
}

/// A SeaORM connection to the replica, as the application user without `SUPER`.
async fn on_replica(db: &str) -> DatabaseConnection {
    connect(replica().url_as(db, APP, PASSWORD)).await
}

/// An `RdsConnection` as `user`: the primary as writer, the replica as the only reader; one
/// connection per pool (so that session state carries from one statement to the next on the
/// writer), no fallback to the writer, no health probes.
async fn rds(db: &str, user: &str, classifier: Classifier) -> RdsConnection {
    RdsConnection::builder()
        .writer(primary().url_as(db, user, PASSWORD))
        .reader(replica().url_as(db, user, PASSWORD))
        .classifier(classifier)
        .max_connections(1)
        .fallback_to_writer(false)
        .health_check_interval(None)
        .sqlx_logging(false)
        .build()
        .await
        .unwrap()
}

/// The statements `user` sent to `node`, from its general log: as text, prepared (with their
/// `?`) and executed (values in place). A statement is logged as text before it is parsed; a
/// prepared one only once it parsed.
async fn logged(node: &MariaDbNode, user: &str) -> HashSet<String> {
    let root = connect(node.url("mysql")).await;
    let sql = format!(
        "SELECT CAST(argument AS CHAR CHARACTER SET utf8mb4) AS arg FROM mysql.general_log \
         WHERE user_host LIKE '{user}[%' AND command_type IN ('Query', 'Prepare', 'Execute')"
    );
    root.query_all_raw(Statement::from_string(MY, sql))
        .await
        .unwrap()
        .iter()
        .map(|row| row.try_get::<String>("", "arg").unwrap())
        .collect()
}

/// Asserts that `node`'s general log holds every one of `statements` that `user` sent as text,
/// and that `other`'s holds none of them in any form.
async fn assert_served_by(
    node: &MariaDbNode,
    other: &MariaDbNode,
    user: &str,
    statements: &[&str],
) {
    let (on_node, on_other) = (logged(node, user).await, logged(other, user).await);
    let missing: Vec<&&str> = statements
        .iter()
        .filter(|sql| !on_node.contains(&text(sql)))
        .collect();
    assert!(
        missing.is_empty(),
        "{} (port {}) never saw these from {user}: {missing:#?}",
        node.name(),
        node.port()
    );
    let strays: Vec<&&str> = statements
        .iter()
        .filter(|sql| on_other.contains(**sql) || on_other.contains(&text(sql)))
        .collect();
    assert!(
        strays.is_empty(),
        "{} (port {}) got these from {user}: {strays:#?}",
        other.name(),
        other.port()
    );
}

/// An integer column, whatever integer type the server gave it.
fn int(row: &QueryResult, index: usize) -> i64 {
    row.try_get_by_index::<i64>(index)
        .or_else(|_| {
            row.try_get_by_index::<u64>(index)
                .map(|v| i64::try_from(v).unwrap())
        })
        .or_else(|_| row.try_get_by_index::<i32>(index).map(i64::from))
        .or_else(|_| row.try_get_by_index::<u32>(index).map(i64::from))
        .unwrap_or_else(|e| panic!("column {index} is not an integer: {e}"))
}

/// The MySQL statements of the corpus that go to `target`.
fn mysql_cases(target: Target) -> impl Iterator<Item = &'static Case> {
    CORPUS
        .iter()
        .filter(move |case| case.backend == MY && case.target == target)
}

/// True for a corpus statement the writer gets because it writes, by MariaDB's measure: a data,
/// schema or maintenance change, a `FOR UPDATE` locking read, a sequence function. The
/// replica must refuse each with a read-only error, but for [`WRITES_NOT_REFUSED`].
fn writes_on_mariadb(case: &Case) -> bool {
    let detail = explain(case.sql, MY)
        .detail
        .unwrap_or_default()
        .to_ascii_lowercase();
    case.backend == MY
        && case.target == Target::Writer
        && match case.reason {
            Some(
                Reason::DataModification
                | Reason::Ddl
                | Reason::DataModifyingCte
                | Reason::Maintenance,
            ) => true,
            // `FOR UPDATE` (`FOR SHARE` in MySQL 8); `LOCK IN SHARE MODE` is allowed.
            Some(Reason::LockingRead) => detail == "for",
            // NEXTVAL / SETVAL / NEXT VALUE FOR; the others are session-bound, not writes.
            Some(Reason::WriteFunction) => matches!(detail.as_str(), "nextval" | "setval" | "next"),
            _ => false,
        }
}

#[tokio::test]
async fn corpus_reads_run_on_the_replica_as_a_user_without_super() {
    let direct = on_replica(READS_DB).await;
    let mut ran = 0;
    let mut wrong = Vec::new();
    for case in mysql_cases(Target::Reader) {
        let prepared = run_prepared(&direct, case.sql).await;
        let text = run_text(&direct, case.sql).await;
        let expected = READS_FAILING_ON_MARIADB
            .iter()
            .find(|(sql, ..)| *sql == case.sql)
            .map(|(_, code, _)| *code);
        if prepared.code() == expected && text.code() == expected {
            ran += usize::from(expected.is_none());
        } else {
            wrong.push(format!(
                "{:?}\n    expected {expected:?}\n    prepared {prepared:?}\n    text     {text:?}",
                case.sql
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "corpus reads that did not do on the replica what was expected:\n{}",
        wrong.join("\n")
    );
    assert!(
        ran >= MIN_READS_RUN,
        "only {ran} corpus reads ran on the replica"
    );
    // Every listed failure is a corpus read, and none is a read-only error.
    for (sql, code, why) in READS_FAILING_ON_MARIADB {
        assert!(
            mysql_cases(Target::Reader).any(|case| case.sql == *sql),
            "{sql:?} ({why}) is not a MySQL read of the corpus"
        );
        assert_ne!(*code, READ_ONLY, "{sql:?}");
    }
}

#[tokio::test]
async fn corpus_reads_through_rds_connection_are_served_by_the_replica() {
    let db = rds(READS_DB, READS_RDS, Classifier::new()).await;
    let direct = on_replica(READS_DB).await;
    let mut sent = Vec::new();
    for case in mysql_cases(Target::Reader) {
        for (protocol, through_rds, on_replica) in [
            (
                "prepared",
                run_prepared(&db, case.sql).await,
                run_prepared(&direct, case.sql).await,
            ),
            (
                "text",
                run_text(&db, case.sql).await,
                run_text(&direct, case.sql).await,
            ),
        ] {
            assert_eq!(
                through_rds.code(),
                on_replica.code(),
                "{:?} ({protocol}) through RdsConnection: {through_rds:?}; on the replica: \
                 {on_replica:?}",
                case.sql
            );
            assert_ne!(through_rds.code(), Some(READ_ONLY), "{:?}", case.sql);
        }
        sent.push(case.sql);
    }
    assert!(sent.len() >= MIN_READS_RUN);
    assert_served_by(replica(), primary(), READS_RDS, &sent).await;

    // The server says who it is, and that it is read-only.
    let whoami = "SELECT @@port, @@hostname, @@read_only, @@version";
    assert!(mysql_cases(Target::Reader).any(|case| case.sql == whoami));
    let row = db
        .query_one_raw(Statement::from_string(MY, whoami))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(int(&row, 0), i64::from(replica().port()));
    assert_eq!(int(&row, 2), 1, "@@read_only");
}

#[tokio::test]
async fn corpus_writes_are_refused_by_the_replica() {
    let mut refused = 0;
    let mut wrong = Vec::new();
    for case in CORPUS.iter().filter(|case| writes_on_mariadb(case)) {
        // A connection each: a refused statement leaves nothing behind, but keep them apart.
        let direct = on_replica(WRITES_DB).await;
        let prepared = run_prepared(&direct, case.sql).await;
        let text = run_text(&direct, case.sql).await;
        let (want_prepared, want_text) = WRITES_NOT_REFUSED
            .iter()
            .find(|(sql, ..)| *sql == case.sql)
            .map_or((Some(READ_ONLY), Some(READ_ONLY)), |(_, p, t, _)| (*p, *t));
        if (prepared.code(), text.code()) == (want_prepared, want_text) {
            refused +=
                usize::from(want_prepared == Some(READ_ONLY) || want_text == Some(READ_ONLY));
        } else {
            wrong.push(format!(
                "{:?} ({:?})\n    expected {want_prepared:?} / {want_text:?}\n    prepared \
                 {prepared:?}\n    text     {text:?}",
                case.sql, case.reason
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "corpus writes that the replica did not refuse as expected:\n{}",
        wrong.join("\n")
    );
    assert!(
        refused >= MIN_WRITES_REFUSED,
        "only {refused} corpus writes refused by the replica"
    );
    for (sql, _, _, why) in WRITES_NOT_REFUSED {
        assert!(
            CORPUS
                .iter()
                .any(|case| case.sql == *sql && writes_on_mariadb(case)),
            "{sql:?} ({why}) is not a write of the corpus"
        );
    }
}

#[tokio::test]
async fn corpus_writes_through_rds_connection_reach_the_primary() {
    let db = rds(RDS_WRITES_DB, WRITES_RDS, Classifier::new()).await;
    let mut sent = Vec::new();
    for case in CORPUS.iter().filter(|case| writes_on_mariadb(case)) {
        for outcome in [
            run_prepared(&db, case.sql).await,
            run_text(&db, case.sql).await,
        ] {
            // The primary takes writes (whatever else it thinks of the statement).
            assert_ne!(
                outcome.code(),
                Some(READ_ONLY),
                "{:?}: {outcome:?}",
                case.sql
            );
        }
        sent.push(case.sql);
    }
    assert!(sent.len() >= MIN_WRITES_REFUSED);
    assert_served_by(primary(), replica(), WRITES_RDS, &sent).await;
}

/// Runs `sql` through `db` and returns its `v` column (as text) and the port of the server that
/// answered (its `port` column).
async fn probe(db: &RdsConnection, sql: &str) -> (Option<String>, u16) {
    let row = db
        .query_one_raw(Statement::from_string(MY, sql))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .expect("one row");
    let port = u16::try_from(int(&row, 1)).unwrap();
    (row.try_get("", "v").unwrap(), port)
}

/// Asserts that the classifier sends `sql` to the writer for `reason`, that the writer answered
/// it, and that its `v` column is `expected`.
#[track_caller]
fn check(sql: &str, reason: Reason, answer: (Option<String>, u16), expected: &str) {
    check_writer(sql, reason, answer.1);
    assert_eq!(answer.0.as_deref(), Some(expected), "{sql}");
}

/// Asserts that the classifier sends `sql` to the writer for `reason`, and that the writer
/// answered it (from `port`).
#[track_caller]
fn check_writer(sql: &str, reason: Reason, port: u16) {
    let why = explain(sql, MY);
    assert_eq!((why.target, why.reason), (Target::Writer, reason), "{sql}");
    assert_eq!(
        port,
        primary().port(),
        "{sql}: the writer is {}, the replica {}",
        primary().port(),
        replica().port()
    );
}

#[tokio::test]
async fn session_bound_statements_go_to_the_writer() {
    let db = rds(SESSION_DB, SESSION_RDS, Classifier::new()).await;
    let writer = primary().port().to_string();
    let exec = async |sql: &str, reason: Reason| {
        let why = explain(sql, MY);
        assert_eq!((why.target, why.reason), (Target::Writer, reason), "{sql}");
        db.execute_unprepared(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    };
    // Before any write: a plain read goes to the replica.
    let (_, port) = probe(&db, "SELECT NULL AS v, @@port AS port").await;
    assert_eq!(port, replica().port());

    // LAST_INSERT_ID(): the id of this session's last insert.
    let id = exec(
        "INSERT INTO cake (name) VALUES ('session')",
        Reason::DataModification,
    )
    .await
    .last_insert_id()
    .to_string();
    let sql = "SELECT CAST(LAST_INSERT_ID() AS CHAR) AS v, @@port AS port";
    check(sql, Reason::WriteFunction, probe(&db, sql).await, &id);

    // ROW_COUNT(): the rows this session's last statement changed. (Only who answers is
    // checked: run as a prepared statement, as SeaORM runs queries, it answers 0 here.)
    exec(
        &format!("UPDATE cake SET name = 'session-2' WHERE id = {id}"),
        Reason::DataModification,
    )
    .await;
    let sql = "SELECT CAST(ROW_COUNT() AS CHAR) AS v, @@port AS port";
    check_writer(sql, Reason::WriteFunction, probe(&db, sql).await.1);

    // FOUND_ROWS(): what this session's last SQL_CALC_FOUND_ROWS query would have returned.
    let sql = "SELECT CAST(FOUND_ROWS() AS CHAR) AS v, @@port AS port";
    exec(
        "SELECT SQL_CALC_FOUND_ROWS id FROM cake LIMIT 1",
        Reason::SessionState,
    )
    .await;
    check(sql, Reason::WriteFunction, probe(&db, sql).await, "3");

    // Named locks belong to a session of the writer.
    let sql = "SELECT CAST(GET_LOCK('dialect_session', 0) AS CHAR) AS v, @@port AS port";
    check(sql, Reason::WriteFunction, probe(&db, sql).await, "1");
    let held = "SELECT IS_USED_LOCK('dialect_session') IS NOT NULL";
    assert_eq!(primary().sql("", held).unwrap(), "1", "held on the primary");
    assert_eq!(
        replica().sql("", held).unwrap(),
        "0",
        "unknown to the replica"
    );
    let sql = "SELECT CAST(IS_USED_LOCK('dialect_session') = CONNECTION_ID() AS CHAR) AS v, \
               @@port AS port";
    check(sql, Reason::WriteFunction, probe(&db, sql).await, "1");
    let sql = "SELECT CAST(RELEASE_LOCK('dialect_session') AS CHAR) AS v, @@port AS port";
    check(sql, Reason::WriteFunction, probe(&db, sql).await, "1");
    assert_eq!(primary().sql("", held).unwrap(), "0", "released");

    // User variables: assigned, read, set.
    let sql = "SELECT CAST(@v := 41 AS CHAR) AS v, @@port AS port";
    check(sql, Reason::VariableAssignment, probe(&db, sql).await, "41");
    let sql = "SELECT CAST(@v + 1 AS CHAR) AS v, @@port AS port";
    check(sql, Reason::SessionBound, probe(&db, sql).await, "42");
    exec("SET @w = 7", Reason::SessionState).await;
    let sql = "SELECT CAST(@w AS CHAR) AS v, @@port AS port";
    check(sql, Reason::SessionBound, probe(&db, sql).await, "7");

    // SELECT .. INTO @p runs where @p is read next: the writer, whose port it holds.
    exec("SELECT @@port INTO @p", Reason::SelectInto).await;
    let sql = "SELECT CAST(@p AS CHAR) AS v, @@port AS port";
    check(sql, Reason::SessionBound, probe(&db, sql).await, &writer);

    // Session variables: set, then read back with @@session.
    exec(
        "SET @@session.group_concat_max_len = 4321",
        Reason::SessionState,
    )
    .await;
    let sql = "SELECT CAST(@@session.group_concat_max_len AS CHAR) AS v, @@port AS port";
    check(sql, Reason::SessionBound, probe(&db, sql).await, "4321");
    let sql = "SELECT CAST(@@warning_count AS CHAR) AS v, @@port AS port";
    check(sql, Reason::SessionBound, probe(&db, sql).await, "0");

    // Locking reads.
    let sql = format!(
        "SELECT CAST(id AS CHAR) AS v, @@port AS port FROM cake WHERE id = {id} FOR UPDATE"
    );
    check(&sql, Reason::LockingRead, probe(&db, &sql).await, &id);
    let sql = format!(
        "SELECT CAST(id AS CHAR) AS v, @@port AS port FROM cake WHERE id = {id} LOCK IN SHARE MODE"
    );
    check(&sql, Reason::LockingRead, probe(&db, &sql).await, &id);

    // Sequences: NEXTVAL writes; LASTVAL and PREVIOUS VALUE FOR are this session's last value.
    let sql = "SELECT CAST(NEXTVAL(s) AS CHAR) AS v, @@port AS port";
    check(sql, Reason::WriteFunction, probe(&db, sql).await, "1");
    let sql = "SELECT CAST(LASTVAL(s) AS CHAR) AS v, @@port AS port";
    check(sql, Reason::WriteFunction, probe(&db, sql).await, "1");
    let sql = "SELECT CAST(PREVIOUS VALUE FOR s AS CHAR) AS v, @@port AS port";
    check(sql, Reason::WriteFunction, probe(&db, sql).await, "1");

    // A temporary table lives in the writer's session: created there; a read of it must be
    // routed there explicitly (the classifier cannot know the table is temporary), here with
    // a hint. The replica has no such table.
    exec(
        "CREATE TEMPORARY TABLE tmp_port AS SELECT @@port AS port",
        Reason::Ddl,
    )
    .await;
    let sql = "/*@writer*/ SELECT CAST(port AS CHAR) AS v, @@port AS port FROM tmp_port";
    assert_eq!(explain(sql, MY).target, Target::Reader);
    assert_eq!(
        probe(&db, sql).await,
        (Some(writer.clone()), primary().port())
    );
    let on_replica = run_prepared(&on_replica(SESSION_DB).await, "SELECT port FROM tmp_port").await;
    assert_eq!(on_replica.code(), Some(1146), "{on_replica:?}");
}

#[tokio::test]
async fn functions_registered_as_writes_go_to_the_writer() {
    // `take_ticket()` calls NEXTVAL: a write the default classifier cannot see into.
    let sql = "SELECT CAST(take_ticket() AS CHAR) AS v, @@port AS port";
    assert_eq!(explain(sql, MY).target, Target::Reader);
    let refused = run_prepared(&on_replica(WRITES_DB).await, sql).await;
    assert_eq!(refused.code(), Some(READ_ONLY), "{refused:?}");

    let classifier = Classifier::new().with_write_function("take_ticket");
    let db = rds(WRITES_DB, FUNCTION_RDS, classifier).await;
    let (ticket, port) = probe(&db, sql).await;
    assert_eq!(port, primary().port());
    assert!(ticket.is_some_and(|t| t.parse::<u64>().is_ok_and(|t| t > 0)));
}
