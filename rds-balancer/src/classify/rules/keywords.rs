//! The keywords the rules look for: what a statement's first word makes it ([`start_of`]), and
//! the words that matter inside a query ([`body_word`]), compared as packed integers ([`key`]).

use crate::classify::Reason;
use crate::classify::lexer::Dialect;

/// What a statement's first word makes it.
#[derive(Clone, Copy)]
pub(super) enum Start {
    /// SELECT, WITH, VALUES, TABLE: read-only unless the body says otherwise.
    Query,
    Show,
    Explain,
    Analyze,
    /// START TRANSACTION, or MySQL's START REPLICA/SLAVE.
    Begin,
    /// PREPARE, or PostgreSQL's PREPARE TRANSACTION.
    Prepare,
    Write(Reason),
    Unknown,
}

/// The first 8 bytes of a word, ASCII-lowercased, packed into an integer so that keywords
/// compare as numbers (`| 0x20` maps only the two cases of a letter to the same byte). Words of
/// more than 8 bytes pack their length into the top byte instead of their eighth byte, so a
/// long word never equals a short keyword; the few longer keywords are checked in full.
pub(super) const fn key(word: &[u8]) -> u64 {
    let mut key = 0u64;
    let mut i = 0;
    while i < word.len() && i < 8 {
        key |= ((word[i] | 0x20) as u64) << (8 * i);
        i += 1;
    }
    if word.len() > 8 {
        key = (key & 0x00ff_ffff_ffff_ffff) | ((word.len() as u64 & 0x7f) << 56) | (1 << 63);
    }
    key
}

macro_rules! keywords {
    ($($name:ident)*) => {
        $(pub(in crate::classify::rules) const $name: u64 = key(stringify!($name).as_bytes());)*
    };
}

/// The statement keywords, each a constant named as the keyword itself.
pub(super) mod kw {
    use super::key;
    keywords! {
        SELECT WITH VALUES TABLE SHOW EXPLAIN DESCRIBE DESC ANALYZE ANALYSE START PREPARE
        INSERT UPDATE DELETE MERGE REPLACE UPSERT COPY LOAD CREATE ALTER DROP TRUNCATE GRANT
        REVOKE COMMENT RENAME SECURITY REASSIGN IMPORT VACUUM REINDEX CLUSTER REFRESH OPTIMIZE
        REPAIR CACHE CHECKPOINT KILL FLUSH PURGE SHUTDOWN RESTART CHANGE STOP INSTALL UNINSTALL
        BINLOG CLONE CALL DO EXECUTE BEGIN COMMIT END ROLLBACK ABORT SAVEPOINT RELEASE XA SET
        RESET USE DISCARD DEALLOCATE HANDLER DECLARE FETCH MOVE CLOSE GET LISTEN UNLISTEN
        NOTIFY LOCK UNLOCK SHARE NO KEY IN VALUE
    }
}

pub(super) fn start_of(word: &str, dialect: Dialect) -> Start {
    use Reason::*;
    use kw::*;
    let bytes = word.as_bytes();
    let key = key(bytes);
    if key >> 63 == 1 {
        // Longer than 8 bytes: the prefix and length matched; compare the rest.
        let long = ["checkpoint", "savepoint", "uninstall", "deallocate"];
        if !long
            .iter()
            .any(|k| bytes.eq_ignore_ascii_case(k.as_bytes()))
        {
            return Start::Unknown;
        }
    }
    match key {
        SELECT | WITH | VALUES | TABLE => Start::Query,
        SHOW => Start::Show,
        EXPLAIN => Start::Explain,
        DESCRIBE | DESC if dialect == Dialect::MySql => Start::Explain,
        ANALYZE | ANALYSE => Start::Analyze,
        START => Start::Begin,
        PREPARE => Start::Prepare,
        INSERT | UPDATE | DELETE | MERGE | REPLACE | UPSERT | COPY => {
            Start::Write(DataModification)
        }
        LOAD if dialect == Dialect::Postgres => Start::Write(SessionState),
        LOAD => Start::Write(DataModification),
        CREATE | ALTER | DROP | TRUNCATE | GRANT | REVOKE | COMMENT | RENAME | SECURITY
        | REASSIGN | IMPORT => Start::Write(Ddl),
        VACUUM | REINDEX | CLUSTER | REFRESH | OPTIMIZE | REPAIR | CACHE => {
            Start::Write(Maintenance)
        }
        CHECKPOINT | KILL | FLUSH | PURGE | SHUTDOWN | RESTART | CHANGE | STOP | INSTALL
        | UNINSTALL | BINLOG | CLONE => Start::Write(Administration),
        CALL | DO | EXECUTE => Start::Write(RoutineCall),
        BEGIN | COMMIT | END | ROLLBACK | ABORT | SAVEPOINT | RELEASE | XA => {
            Start::Write(TransactionControl)
        }
        SET | RESET | USE | DISCARD | DEALLOCATE | HANDLER | DECLARE | FETCH | MOVE | CLOSE => {
            Start::Write(SessionState)
        }
        GET => Start::Write(SessionBound),
        LISTEN | UNLISTEN | NOTIFY => Start::Write(Notification),
        LOCK | UNLOCK => Start::Write(TableLock),
        _ => Start::Unknown,
    }
}

/// Words that matter inside a query.
#[derive(Clone, Copy)]
pub(super) enum BodyWord {
    For,
    Lock,
    Into,
    /// INSERT/UPDATE/DELETE (MERGE in PostgreSQL, REPLACE in MySQL).
    Dml,
    /// NEXT/PREVIOUS VALUE FOR (MariaDB sequences).
    SequenceValue,
    /// `seq.nextval` / `seq.currval` (MariaDB's Oracle mode).
    SequenceAttribute,
    CalcFoundRows,
}

#[inline(always)]
pub(super) fn body_word(bytes: &[u8], dialect: Dialect) -> Option<BodyWord> {
    let is = |keyword: &str| bytes.eq_ignore_ascii_case(keyword.as_bytes());
    let first = bytes.first()? | 0x20;
    match (bytes.len(), first) {
        (3, b'f') if is("for") => Some(BodyWord::For),
        (4, b'l') if is("lock") => Some(BodyWord::Lock),
        (4, b'i') if is("into") => Some(BodyWord::Into),
        (4, b'n') if is("next") => Some(BodyWord::SequenceValue),
        (6, b'i') if is("insert") => Some(BodyWord::Dml),
        (6, b'u') if is("update") => Some(BodyWord::Dml),
        (6, b'd') if is("delete") => Some(BodyWord::Dml),
        (5, b'm') if dialect.pg_like() && is("merge") => Some(BodyWord::Dml),
        (7, b'r') if dialect.mysql_like() && is("replace") => Some(BodyWord::Dml),
        (8, b'p') if is("previous") => Some(BodyWord::SequenceValue),
        (7, b'n') if is("nextval") => Some(BodyWord::SequenceAttribute),
        (7, b'c') if is("currval") => Some(BodyWord::SequenceAttribute),
        (19, b's') if dialect.mysql_like() && is("sql_calc_found_rows") => {
            Some(BodyWord::CalcFoundRows)
        }
        _ => None,
    }
}
