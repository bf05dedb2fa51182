//! The classifier's tests: a labelled corpus, pinned details, and properties over arbitrary input.

mod corpus;

use proptest::prelude::*;
use sea_orm::DatabaseBackend;

use self::corpus::{CORPUS, Case};
use super::{Classifier, Reason, Target, classify, explain};

const BACKENDS: [DatabaseBackend; 3] = [
    DatabaseBackend::Postgres,
    DatabaseBackend::MySql,
    DatabaseBackend::Sqlite,
];

/// Every reason, so that tests can walk them.
const REASONS: [Reason; 23] = [
    Reason::ReadOnlyQuery,
    Reason::DataModification,
    Reason::Ddl,
    Reason::Maintenance,
    Reason::Administration,
    Reason::RoutineCall,
    Reason::TransactionControl,
    Reason::SessionState,
    Reason::Notification,
    Reason::TableLock,
    Reason::LockingRead,
    Reason::SelectInto,
    Reason::DataModifyingCte,
    Reason::WriteFunction,
    Reason::UserWriteFunction,
    Reason::SessionBound,
    Reason::VariableAssignment,
    Reason::ExplainAnalyze,
    Reason::MultipleStatements,
    Reason::Unrecognized,
    Reason::Unterminated,
    Reason::Ambiguous,
    Reason::Empty,
];

#[test]
fn corpus_statements_are_classified_as_labelled() {
    let mismatches: Vec<String> = CORPUS
        .iter()
        .filter_map(|case| {
            let got = explain(case.sql, case.backend);
            let reason_ok = case.reason.is_none_or(|reason| reason == got.reason);
            (got.target != case.target || !reason_ok).then(|| {
                format!(
                    "  {:?} {:?}\n    expected {:?} {:?}, got {:?} {:?} (detail {:?})",
                    case.backend,
                    case.sql,
                    case.target,
                    case.reason,
                    got.target,
                    got.reason,
                    got.detail
                )
            })
        })
        .collect();
    assert!(
        mismatches.is_empty(),
        "{} of {} corpus statements misclassified:\n{}",
        mismatches.len(),
        CORPUS.len(),
        mismatches.join("\n")
    );
}

#[test]
fn corpus_is_large_and_covers_both_dialects_and_every_reason() {
    assert!(
        CORPUS.len() >= 200,
        "the corpus has only {} statements",
        CORPUS.len()
    );
    let count = |f: &dyn Fn(&Case) -> bool| CORPUS.iter().filter(|c| f(c)).count();
    for backend in [DatabaseBackend::Postgres, DatabaseBackend::MySql] {
        for target in [Target::Reader, Target::Writer] {
            assert!(
                count(&|c| c.backend == backend && c.target == target) >= 40,
                "{backend:?} {target:?}"
            );
        }
    }
    assert!(
        count(&|c| c.reason.is_some()) * 10 >= CORPUS.len() * 9,
        "pin most reasons"
    );
    for reason in REASONS {
        assert!(
            count(&|c| c.reason == Some(reason)) > 0 || reason == Reason::UserWriteFunction,
            "{reason:?}"
        );
    }
}

#[test]
fn details_are_slices_of_the_input() {
    for case in CORPUS {
        let explanation = explain(case.sql, case.backend);
        if let Some(detail) = explanation.detail {
            let (start, end) = (
                case.sql.as_ptr() as usize,
                case.sql.as_ptr() as usize + case.sql.len(),
            );
            let at = detail.as_ptr() as usize;
            assert!(
                start <= at && at + detail.len() <= end,
                "{:?}: detail {detail:?}",
                case.sql
            );
        }
    }
}

#[test]
fn details_name_what_decided() {
    let pg = DatabaseBackend::Postgres;
    let my = DatabaseBackend::MySql;
    let detail = |sql, backend| explain(sql, backend).detail;
    assert_eq!(
        detail("SELECT pg_catalog.nextval('s')", pg),
        Some("nextval")
    );
    assert_eq!(detail(r#"SELECT "setval"('s', 1)"#, pg), Some("setval"));
    assert_eq!(detail("SELECT * FROM t for update", pg), Some("for"));
    assert_eq!(
        detail("SELECT * FROM t LOCK IN SHARE MODE", my),
        Some("LOCK")
    );
    assert_eq!(detail("SELECT NEXT VALUE FOR s", my), Some("NEXT"));
    assert_eq!(detail("SELECT 1; SELECT 2", pg), Some(";"));
    assert_eq!(detail("SELECT $body$ x", pg), Some("$body$"));
    assert_eq!(detail("SELECT 'x", pg), Some("'"));
    assert_eq!(detail("SELECT 1 /* x", pg), Some("/*"));
    assert_eq!(detail(r"SELECT 'a\'", my), Some(r"\'"));
    assert_eq!(detail("SELECT /*!40001 x */ 1", my), Some("/*!"));
    assert_eq!(detail("-- nothing", pg), None);
    assert_eq!(detail("  select 1", pg), Some("select"));
    assert_eq!(detail("EXPLAIN (ANALYZE) SELECT 1", pg), Some("ANALYZE"));
    assert_eq!(detail("SELECT @v := 1", my), Some("@v"));
}

#[test]
fn user_write_functions_match_any_case_and_schema() {
    let pg = DatabaseBackend::Postgres;
    let classifier = Classifier::new()
        .with_write_function("Audit_Log")
        .with_write_function("app.enqueue");
    for sql in [
        "SELECT audit_log(1)",
        "SELECT app.AUDIT_LOG (1)",
        r#"SELECT "audit_log"(1)"#,
        "SELECT * FROM enqueue('job')",
        "SELECT other.enqueue('job')",
    ] {
        let got = classifier.explain(sql, pg);
        assert_eq!(
            (got.target, got.reason),
            (Target::Writer, Reason::UserWriteFunction),
            "{sql}"
        );
        assert!(got.reason.is_write());
        assert_eq!(Classifier::new().classify(sql, pg), Target::Reader, "{sql}");
    }
    assert_eq!(
        classifier.classify("SELECT audit_log FROM t", pg),
        Target::Reader
    );
    assert_eq!(
        classifier.classify("SELECT 'audit_log(1)'", pg),
        Target::Reader
    );
    assert_eq!(
        classifier.classify("SELECT audit_logs(1)", pg),
        Target::Reader
    );
    // Built-in names win, so the reason stays the precise one.
    let classifier = Classifier::new().with_write_function("nextval");
    assert_eq!(
        classifier.explain("SELECT nextval('s')", pg).reason,
        Reason::WriteFunction
    );
    // An empty name adds nothing.
    assert_eq!(
        Classifier::new()
            .with_write_function("")
            .classify("SELECT \"\"(1)", pg),
        Target::Reader
    );
}

#[test]
fn reasons_have_sentences_and_only_certain_writes_are_writes() {
    let unsure = [
        Reason::ReadOnlyQuery,
        Reason::MultipleStatements,
        Reason::Unrecognized,
        Reason::Unterminated,
        Reason::Ambiguous,
        Reason::Empty,
    ];
    for reason in REASONS {
        let sentence = reason.to_string();
        assert!(
            !sentence.is_empty() && !sentence.ends_with('.'),
            "{reason:?}: {sentence:?}"
        );
        assert_eq!(reason.is_write(), !unsure.contains(&reason), "{reason:?}");
    }
}

#[test]
fn a_delete_appended_to_any_corpus_statement_goes_to_the_writer() {
    for case in CORPUS {
        // A trailing line comment would hide the DELETE from the server too.
        let sql = if case.sql.contains("--") || case.sql.contains('#') {
            format!("{}\n; DELETE FROM t", case.sql)
        } else {
            format!("{}; DELETE FROM t", case.sql)
        };
        for backend in BACKENDS {
            assert_eq!(
                classify(&sql, backend),
                Target::Writer,
                "{backend:?}: {sql:?}"
            );
        }
    }
}

#[test]
fn the_default_classifier_and_the_free_functions_agree() {
    let classifier = Classifier::default();
    for case in CORPUS {
        assert_eq!(
            classifier.explain(case.sql, case.backend),
            explain(case.sql, case.backend)
        );
        assert_eq!(
            classify(case.sql, case.backend),
            explain(case.sql, case.backend).target
        );
    }
}

/// Fragments that exercise every lexer state, glued together by the SQL-ish strategy.
const FRAGMENTS: &[&str] = &[
    "SELECT ",
    "select",
    " FROM t",
    " WHERE ",
    "WITH x AS (",
    "(",
    ")",
    ";",
    ",",
    ".",
    " ",
    "\n",
    "\r",
    "\t",
    "'",
    "''",
    "\"",
    "`",
    "\\",
    "\\'",
    "E'",
    "e'",
    "U&'",
    "U&\"",
    "$",
    "$$",
    "$1",
    "$a$",
    "$b$",
    "--",
    "-- ",
    "#",
    "/*",
    "*/",
    "/*!",
    "/*M!",
    "*",
    "/",
    "-",
    "@",
    "@@",
    ":=",
    ":",
    "=",
    "[",
    "]",
    "FOR",
    " UPDATE",
    " SHARE",
    "NO",
    "KEY",
    "LOCK",
    " IN ",
    "INTO",
    "INSERT",
    "DELETE",
    "MERGE",
    "REPLACE",
    "NEXT",
    "VALUE",
    "nextval",
    "last_insert_id",
    "EXPLAIN",
    "ANALYZE",
    "SHOW",
    "VALUES",
    "TABLE",
    "DESC",
    "1",
    "0",
    "1e5",
    "2E-3",
    ".5",
    "x",
    "é",
    "ü'",
    "\u{a0}",
];

fn sqlish() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(FRAGMENTS), 0..24).prop_map(|parts| parts.concat())
}

/// Corpus statements cut short at a random place, with a random fragment inserted.
fn mutated_corpus() -> impl Strategy<Value = (String, DatabaseBackend)> {
    (
        0..CORPUS.len(),
        any::<prop::sample::Index>(),
        any::<prop::sample::Index>(),
        prop::sample::select(FRAGMENTS),
        any::<bool>(),
    )
        .prop_map(|(i, cut, at, fragment, truncate)| {
            let case = &CORPUS[i];
            let boundaries: Vec<usize> = (0..=case.sql.len())
                .filter(|&b| case.sql.is_char_boundary(b))
                .collect();
            let mut sql = case.sql.to_owned();
            if truncate {
                sql.truncate(*cut.get(&boundaries));
            } else {
                sql.insert_str(*at.get(&boundaries), fragment);
            }
            (sql, case.backend)
        })
}

/// The properties every input must keep, on every backend.
fn check(sql: &str) -> Result<(), TestCaseError> {
    for backend in BACKENDS {
        check_on(sql, backend)?;
    }
    // The strict dialect is the most careful: whatever it sends to a reader, MySQL does too, and
    // so does PostgreSQL (for which a backtick is a syntax error, whatever follows it).
    if classify(sql, DatabaseBackend::Sqlite) == Target::Reader {
        prop_assert_eq!(
            classify(sql, DatabaseBackend::MySql),
            Target::Reader,
            "MySQL on {:?}",
            sql
        );
        if !sql.contains('`') {
            prop_assert_eq!(
                classify(sql, DatabaseBackend::Postgres),
                Target::Reader,
                "PostgreSQL on {:?}",
                sql
            );
        }
    }
    Ok(())
}

fn check_on(sql: &str, backend: DatabaseBackend) -> Result<(), TestCaseError> {
    let explanation = explain(sql, backend);
    prop_assert_eq!(classify(sql, backend), explanation.target);
    if explanation.target == Target::Reader {
        prop_assert_eq!(explanation.reason, Reason::ReadOnlyQuery);
        prop_assert!(!explanation.reason.is_write());
    } else {
        prop_assert_ne!(explanation.reason, Reason::ReadOnlyQuery);
    }
    // A newline first: a statement may end inside a line comment, which would hide anything
    // appended to it from the server too.
    let appended = format!("{sql}\n; DELETE FROM t");
    prop_assert_eq!(
        classify(&appended, backend),
        Target::Writer,
        "{:?} on {:?}",
        appended,
        backend
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn arbitrary_strings_keep_the_properties(sql in any::<String>()) {
        check(&sql)?;
    }

    #[test]
    fn arbitrary_bytes_keep_the_properties(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        check(&String::from_utf8_lossy(&bytes))?;
    }

    #[test]
    fn sql_like_strings_keep_the_properties(sql in sqlish()) {
        check(&sql)?;
    }

    #[test]
    fn mutated_corpus_statements_keep_the_properties((sql, backend) in mutated_corpus()) {
        check_on(&sql, backend)?;
        check(&sql)?;
    }
}
