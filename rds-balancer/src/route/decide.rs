//! Rules 2 to 4 of the routing contract (see the crate documentation), and read-your-writes,
//! free of I/O.
//!
//! Rule 1 (a transaction keeps its host) holds by construction: an
//! [`RdsTransaction`](crate::RdsTransaction) runs every statement on its host's connection.
//! Rule 6 (which reader) is the [`Picker`](super::Picker)'s.

use std::borrow::Cow;

use sea_orm::{AccessMode, DatabaseBackend};

use super::Route;
use super::hint::hint;
use crate::classify::{Classifier, Target};
use crate::error::Error;

/// What decided a statement's destination; recorded on the statement's span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Why {
    /// A `with_route` scope or route macro.
    Override,
    /// A `/*@writer*/` or `/*@reader*/` comment.
    Hint,
    /// The statement classifier.
    Classifier,
    /// A transaction's access mode (read-only transactions go to a reader).
    AccessMode,
    /// A reader was asked for, but the classifier could not tell that the statement is
    /// read-only: the writer, to be safe.
    Unsure,
    /// A read by a task that wrote less than the read-your-writes window ago (or whose write
    /// no reader is known to have replayed).
    ReadYourWrites,
    /// A read by a task that wrote, sent to a reader that has replayed its write.
    CaughtUp,
}

impl Why {
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Why::Override => "override",
            Why::Hint => "hint",
            Why::Classifier => "classifier",
            Why::AccessMode => "access_mode",
            Why::Unsure => "unsure",
            Why::ReadYourWrites => "read_your_writes",
            Why::CaughtUp => "caught_up",
        }
    }
}

/// Where one statement goes, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Decision {
    pub(crate) route: Route,
    pub(crate) why: Why,
}

/// Decides where `sql` goes given the route override in scope (`scope`).
///
/// Under a reader override or hint, a statement the classifier finds read-only goes to a reader,
/// one that is certainly a write is refused, and one it is unsure about (unrecognised, or lexed
/// differently depending on a session setting) still goes to the writer: a write must never
/// reach a reader, and a writable replica (MySQL's `read_only` does not stop privileged users)
/// would accept it.
///
/// Otherwise, a statement the classifier finds read-only goes to the writer when
/// `wrote_recently()` (read-your-writes; asked only then), else to a reader.
pub(crate) fn decide(
    scope: Option<Route>,
    sql: &str,
    backend: DatabaseBackend,
    classifier: &Classifier,
    wrote_recently: impl FnOnce() -> bool,
) -> Result<Decision, Error> {
    let (forced, why) = match scope {
        Some(route) => (Some(route), Why::Override),
        None => (hint(sql), Why::Hint),
    };
    match forced {
        Some(Route::Writer) => Ok(Decision {
            route: Route::Writer,
            why,
        }),
        Some(Route::Reader) => {
            let explanation = classifier.explain(sql, backend);
            match explanation.target {
                Target::Reader => Ok(Decision {
                    route: Route::Reader,
                    why,
                }),
                Target::Writer if explanation.reason.is_write() => Err(Error::WriteRefused {
                    why: Cow::Owned(explanation.reason.to_string()),
                }),
                Target::Writer => Ok(Decision {
                    route: Route::Writer,
                    why: Why::Unsure,
                }),
            }
        }
        None => {
            let (route, why) = match classifier.classify(sql, backend) {
                Target::Reader if wrote_recently() => (Route::Writer, Why::ReadYourWrites),
                Target::Reader => (Route::Reader, Why::Classifier),
                Target::Writer => (Route::Writer, Why::Classifier),
            };
            Ok(Decision { route, why })
        }
    }
}

/// Decides where a transaction opens, given the route override in scope and the access mode
/// asked for. `Route::Reader` means a read-only transaction on a reader.
pub(crate) fn decide_transaction(
    scope: Option<Route>,
    access_mode: Option<AccessMode>,
) -> Result<Decision, Error> {
    match (scope, access_mode) {
        (Some(Route::Writer), _) => Ok(Decision {
            route: Route::Writer,
            why: Why::Override,
        }),
        (Some(Route::Reader), Some(AccessMode::ReadWrite)) => Err(Error::WriteRefused {
            why: Cow::Borrowed("a read-write transaction"),
        }),
        (Some(Route::Reader), _) => Ok(Decision {
            route: Route::Reader,
            why: Why::Override,
        }),
        (None, Some(AccessMode::ReadOnly)) => Ok(Decision {
            route: Route::Reader,
            why: Why::AccessMode,
        }),
        (None, _) => Ok(Decision {
            route: Route::Writer,
            why: Why::AccessMode,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    const PG: DatabaseBackend = DatabaseBackend::Postgres;

    fn route(scope: Option<Route>, sql: &str) -> Result<(Route, Why), ErrorKind> {
        decide(scope, sql, PG, &Classifier::new(), || false)
            .map(|d| (d.route, d.why))
            .map_err(|e| e.kind())
    }

    #[test]
    fn without_override_or_hint_the_classifier_decides() {
        assert_eq!(
            route(None, "SELECT 1"),
            Ok((Route::Reader, Why::Classifier))
        );
        assert_eq!(
            route(None, "INSERT INTO t VALUES (1)"),
            Ok((Route::Writer, Why::Classifier))
        );
        assert_eq!(
            route(None, "SELECT 1 FOR UPDATE"),
            Ok((Route::Writer, Why::Classifier))
        );
    }

    #[test]
    fn a_writer_override_sends_everything_to_the_writer() {
        assert_eq!(
            route(Some(Route::Writer), "SELECT 1"),
            Ok((Route::Writer, Why::Override))
        );
        assert_eq!(
            route(Some(Route::Writer), "/*@reader*/ SELECT 1"),
            Ok((Route::Writer, Why::Override))
        );
    }

    #[test]
    fn a_reader_override_refuses_certain_writes() {
        assert_eq!(
            route(Some(Route::Reader), "SELECT 1"),
            Ok((Route::Reader, Why::Override))
        );
        assert_eq!(
            route(Some(Route::Reader), "DELETE FROM t"),
            Err(ErrorKind::WriteRefused)
        );
        assert_eq!(
            route(Some(Route::Reader), "/*@writer*/ SELECT 1"),
            Ok((Route::Reader, Why::Override))
        );
    }

    #[test]
    fn a_reader_override_still_sends_unsure_statements_to_the_writer() {
        for unsure in [
            "SELEKT 1",
            "SELECT 1; SELECT 2",
            "",
            "SELECT 'unterminated",
            "/*@reader*/ SELECT 1; SELECT 2",
        ] {
            assert_eq!(
                route(Some(Route::Reader), unsure),
                Ok((Route::Writer, Why::Unsure)),
                "{unsure:?}"
            );
        }
        // MySQL: an executable comment, or a backslash-escaped quote whose meaning depends on
        // `NO_BACKSLASH_ESCAPES` (here it could hide a second statement).
        for unsure in [
            "/*!40001 SQL_NO_CACHE */ DELETE FROM t",
            r"SELECT '\'; DELETE FROM t; -- '",
        ] {
            let decision = decide(
                Some(Route::Reader),
                unsure,
                DatabaseBackend::MySql,
                &Classifier::new(),
                || false,
            )
            .map(|d| (d.route, d.why))
            .map_err(|e| e.kind());
            assert_ne!(decision.map(|d| d.0), Ok(Route::Reader), "{unsure:?}");
        }
    }

    #[test]
    fn a_task_that_wrote_recently_reads_from_the_writer() {
        let decide = |scope, sql| {
            decide(scope, sql, PG, &Classifier::new(), || true)
                .map(|d| (d.route, d.why))
                .map_err(|e| e.kind())
        };
        assert_eq!(
            decide(None, "SELECT 1"),
            Ok((Route::Writer, Why::ReadYourWrites))
        );
        // Overrides and hints win over it.
        assert_eq!(
            decide(Some(Route::Reader), "SELECT 1"),
            Ok((Route::Reader, Why::Override))
        );
        assert_eq!(
            decide(None, "/*@reader*/ SELECT 1"),
            Ok((Route::Reader, Why::Hint))
        );
        // Writes are unaffected; asked only for reads.
        let asked = std::cell::Cell::new(false);
        let write = super::decide(None, "DELETE FROM t", PG, &Classifier::new(), || {
            asked.set(true);
            true
        });
        assert_eq!(write.map(|d| d.why).ok(), Some(Why::Classifier));
        assert!(!asked.get());
    }

    #[test]
    fn hints_apply_when_no_override_is_in_scope() {
        assert_eq!(
            route(None, "/*@writer*/ SELECT 1"),
            Ok((Route::Writer, Why::Hint))
        );
        assert_eq!(
            route(None, "/*@reader*/ SELECT 1"),
            Ok((Route::Reader, Why::Hint))
        );
        assert_eq!(
            route(None, "/*@reader*/ UPDATE t SET a = 1"),
            Err(ErrorKind::WriteRefused)
        );
    }

    #[test]
    fn transactions_open_on_the_writer_unless_read_only() {
        let route = |scope, mode| {
            decide_transaction(scope, mode)
                .map(|d| d.route)
                .map_err(|e| e.kind())
        };
        assert_eq!(route(None, None), Ok(Route::Writer));
        assert_eq!(route(None, Some(AccessMode::ReadWrite)), Ok(Route::Writer));
        assert_eq!(route(None, Some(AccessMode::ReadOnly)), Ok(Route::Reader));
        assert_eq!(
            route(Some(Route::Writer), Some(AccessMode::ReadOnly)),
            Ok(Route::Writer)
        );
        assert_eq!(route(Some(Route::Reader), None), Ok(Route::Reader));
        assert_eq!(
            route(Some(Route::Reader), Some(AccessMode::ReadWrite)),
            Err(ErrorKind::WriteRefused)
        );
    }
}
