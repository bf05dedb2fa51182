//! Hint comments at the start of a statement: `/*@writer*/` and `/*@reader*/`.

use super::Route;

/// The route a leading hint comment asks for, if the statement starts with one.
///
/// Leading whitespace is skipped; spaces inside the comment and the case of the word do not
/// matter (`/* @Reader */`). Only the first comment is looked at, and only a complete one.
pub(crate) fn hint(sql: &str) -> Option<Route> {
    let rest = sql.trim_start().strip_prefix("/*")?;
    let end = rest.find("*/")?;
    let word = rest[..end].trim().strip_prefix('@')?.trim_end();
    if word.eq_ignore_ascii_case("writer") {
        Some(Route::Writer)
    } else if word.eq_ignore_ascii_case("reader") {
        Some(Route::Reader)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_are_read_only_from_a_leading_comment() {
        assert_eq!(hint("/*@writer*/ SELECT 1"), Some(Route::Writer));
        assert_eq!(hint("  \n/*@reader*/SELECT 1"), Some(Route::Reader));
        assert_eq!(hint("/* @Reader */ SELECT 1"), Some(Route::Reader));
        assert_eq!(hint("/*@WRITER*/"), Some(Route::Writer));
        assert_eq!(hint("SELECT 1 /*@writer*/"), None);
        assert_eq!(hint("/* a comment */ /*@writer*/ SELECT 1"), None);
        assert_eq!(hint("/*@writerx*/ SELECT 1"), None);
        assert_eq!(hint("/*@writer SELECT 1"), None);
        assert_eq!(hint("/**/"), None);
        assert_eq!(hint(""), None);
        assert_eq!(hint("/*@*/"), None);
    }
}
