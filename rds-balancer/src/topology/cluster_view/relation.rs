//! The relation the topology query reads: Aurora's own, or another of the same shape that the
//! user names ([`ClusterViewSourceBuilder::status_relation`](super::ClusterViewSourceBuilder::status_relation)).
//!
//! A user-given name is pasted into the query unquoted, so it is checked against a grammar that
//! leaves no room for anything but a name: `part`, `part.part`, and (where the backend can select
//! from a function) `part()` or `part.part()`, each part an unquoted identifier of ASCII letters,
//! digits and `_` that does not start with a digit.

use std::borrow::Cow;

/// The longest part accepted: PostgreSQL's identifier limit (63 bytes; MySQL's is 64
/// characters). PostgreSQL would silently truncate a longer one.
const MAX_PART_LEN: usize = 63;

/// A checked relation name, as it appears after `FROM`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct StatusRelation(Cow<'static, str>);

/// Why a name was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    /// An empty string.
    Empty,
    /// Not `part`, `part.part`, `part()` or `part.part()` of plain identifiers.
    NotAName,
    /// A function call where the backend cannot select from one.
    FunctionCall,
}

impl StatusRelation {
    /// A relation known to be well formed (the backends' own).
    pub(super) const fn known(name: &'static str) -> Self {
        StatusRelation(Cow::Borrowed(name))
    }

    /// Checks a user-given name; `calls` says whether `name()` is allowed (PostgreSQL selects
    /// from set-returning functions, MySQL cannot).
    pub(super) fn parse(name: &str, calls: bool) -> Result<Self, Refusal> {
        if name.is_empty() {
            return Err(Refusal::Empty);
        }
        let (path, is_call) = match name.strip_suffix("()") {
            Some(path) => (path, true),
            None => (name, false),
        };
        let mut parts = 0;
        for part in path.split('.') {
            parts += 1;
            if parts > 2 || !is_identifier(part) {
                return Err(Refusal::NotAName);
            }
        }
        if is_call && !calls {
            return Err(Refusal::FunctionCall);
        }
        Ok(StatusRelation(Cow::Owned(name.to_owned())))
    }

    pub(super) fn as_str(&self) -> &str {
        &self.0
    }
}

/// An unquoted identifier: ASCII letters, digits and `_`, not starting with a digit, at most
/// [`MAX_PART_LEN`] bytes.
fn is_identifier(part: &str) -> bool {
    let bytes = part.as_bytes();
    matches!(bytes.first(), Some(b) if b.is_ascii_alphabetic() || *b == b'_')
        && bytes.len() <= MAX_PART_LEN
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_qualified_names_and_calls_are_accepted() {
        for name in [
            "replica_host_status",
            "information_schema.replica_host_status",
            "_private.Status_2",
            "aurora_replica_status()",
            "monitoring.aurora_replica_status()",
            "x",
        ] {
            let relation = StatusRelation::parse(name, true).unwrap();
            assert_eq!(relation.as_str(), name);
        }
        let longest = "a".repeat(MAX_PART_LEN);
        assert!(StatusRelation::parse(&format!("{longest}.{longest}"), false).is_ok());
    }

    #[test]
    fn anything_but_a_name_is_refused() {
        assert_eq!(StatusRelation::parse("", true), Err(Refusal::Empty));
        for name in [
            " ",
            " replica_host_status",
            "replica_host_status ",
            "replica_host_status; DROP TABLE users",
            "replica_host_status -- comment",
            "replica_host_status/**/",
            "(SELECT 1) AS x",
            "a.b.c",
            "a..b",
            ".a",
            "a.",
            "1abc",
            "a.1b",
            "\"quoted\"",
            "`quoted`",
            "[bracketed]",
            "a-b",
            "a$b",
            "schéma.table",
            "f(1)",
            "f( )",
            "f())",
            "()",
            "a.()",
            "f()()",
            "a\0b",
            "a\nb",
        ] {
            assert_eq!(
                StatusRelation::parse(name, true),
                Err(Refusal::NotAName),
                "{name:?}"
            );
        }
        let too_long = "a".repeat(MAX_PART_LEN + 1);
        assert_eq!(
            StatusRelation::parse(&too_long, true),
            Err(Refusal::NotAName)
        );
    }

    #[test]
    fn calls_are_refused_where_the_backend_has_none() {
        assert_eq!(
            StatusRelation::parse("aurora_replica_status()", false),
            Err(Refusal::FunctionCall)
        );
        assert_eq!(
            StatusRelation::parse("s.f()", false),
            Err(Refusal::FunctionCall)
        );
        // A malformed call is reported as such, whatever the backend.
        assert_eq!(StatusRelation::parse("f(x)", false), Err(Refusal::NotAName));
        assert!(StatusRelation::parse("replica_host_status", false).is_ok());
    }
}
