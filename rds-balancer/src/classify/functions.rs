//! Built-in functions whose call makes a statement a write: side effects (sequences, locks,
//! notifications, administration) or session binding (a result that only means something on
//! the connection that ran the earlier statements).

use super::lexer::Dialect;

/// PostgreSQL functions, lowercase, sorted (a test checks the order).
static PG_FUNCTIONS: &[&str] = &[
    "currval",
    "lastval",
    "loread",
    "lowrite",
    "nextval",
    "pg_backup_start",
    "pg_backup_stop",
    "pg_cancel_backend",
    "pg_current_wal_flush_lsn",
    "pg_current_wal_insert_lsn",
    "pg_current_wal_lsn",
    "pg_current_xact_id",
    "pg_current_xact_id_if_assigned",
    "pg_export_snapshot",
    "pg_import_system_collations",
    "pg_log_backend_memory_contexts",
    "pg_notify",
    "pg_promote",
    "pg_read_binary_file",
    "pg_read_file",
    "pg_reload_conf",
    "pg_rotate_logfile",
    "pg_start_backup",
    "pg_stat_statements_reset",
    "pg_stop_backup",
    "pg_switch_wal",
    "pg_switch_xlog",
    "pg_terminate_backend",
    "set_config",
    "setseed",
    "setval",
    "txid_current",
    "txid_current_if_assigned",
];

/// PostgreSQL function families, by prefix (`pg_advisory_lock`, `pg_advisory_xact_lock_shared`,
/// `pg_create_logical_replication_slot`, `lo_unlink`, `dblink_exec`, ...).
static PG_PREFIXES: &[&str] = &[
    "dblink",
    "lo_",
    "pg_advisory_",
    "pg_copy_",
    "pg_create_",
    "pg_drop_",
    "pg_file_",
    "pg_logical_",
    "pg_replication_",
    "pg_stat_reset",
    "pg_try_advisory_",
    "pg_wal_replay_",
];

/// MySQL and MariaDB functions, lowercase, sorted (a test checks the order).
static MYSQL_FUNCTIONS: &[&str] = &[
    "found_rows",
    "get_lock",
    "is_free_lock",
    "is_used_lock",
    "last_insert_id",
    "lastval",
    "load_file",
    "master_gtid_wait",
    "master_pos_wait",
    "nextval",
    "release_all_locks",
    "release_lock",
    "row_count",
    "service_release_locks",
    "setval",
    "source_pos_wait",
    "wait_for_executed_gtid_set",
    "wait_until_sql_thread_after_gtids",
];

/// MySQL plugin function families (audit log filters, keyring, locking service, version tokens).
static MYSQL_PREFIXES: &[&str] = &[
    "audit_log_",
    "keyring_key_",
    "service_get_",
    "version_tokens_",
];

/// The longest name worth lowercasing for an exact match; longer names only match prefixes.
const MAX_NAME: usize = 40;

/// A quick filter: for each first letter (`(byte | 0x20) & 31`), a bit per name length that a
/// listed name or family can have (lengths from 63 on share the top bit). Most calls in
/// generated SQL (`COUNT`, `LOWER`, `IN`, `EXISTS`, `VALUES`) fail it at once.
type Filter = [u64; 32];

const fn filter(names: &[&str], prefixes: &[&str]) -> Filter {
    let mut filter = [0u64; 32];
    let mut i = 0;
    while i < names.len() {
        let name = names[i].as_bytes();
        let len = if name.len() < 63 { name.len() } else { 63 };
        filter[((name[0] | 0x20) & 31) as usize] |= 1 << len;
        i += 1;
    }
    let mut i = 0;
    while i < prefixes.len() {
        let prefix = prefixes[i].as_bytes();
        // Every length from the prefix's own on.
        filter[((prefix[0] | 0x20) & 31) as usize] |= u64::MAX << prefix.len();
        i += 1;
    }
    filter
}

static PG_FILTER: Filter = filter(PG_FUNCTIONS, PG_PREFIXES);
static MYSQL_FILTER: Filter = filter(MYSQL_FUNCTIONS, MYSQL_PREFIXES);

fn may_match(filter: &Filter, name: &[u8]) -> bool {
    let Some(&first) = name.first() else {
        return false;
    };
    filter[usize::from((first | 0x20) & 31)] & (1 << name.len().min(63)) != 0
}

/// True when `name` (any case) is a built-in write function of `dialect`.
pub(crate) fn is_write_function(name: &str, dialect: Dialect) -> bool {
    let name = name.as_bytes();
    let (pg, mysql) = match dialect {
        Dialect::Postgres => (may_match(&PG_FILTER, name), false),
        Dialect::MySql => (false, may_match(&MYSQL_FILTER, name)),
        Dialect::Strict => (may_match(&PG_FILTER, name), may_match(&MYSQL_FILTER, name)),
    };
    if !pg && !mysql {
        return false;
    }
    let mut buf = [0u8; MAX_NAME];
    let len = name.len().min(MAX_NAME);
    for (dst, src) in buf.iter_mut().zip(name) {
        *dst = src.to_ascii_lowercase();
    }
    let lower = &buf[..len];
    let exact = name.len() <= MAX_NAME;
    (pg && matches(lower, exact, PG_FUNCTIONS, PG_PREFIXES))
        || (mysql && matches(lower, exact, MYSQL_FUNCTIONS, MYSQL_PREFIXES))
}

fn matches(lower: &[u8], exact: bool, names: &[&str], prefixes: &[&str]) -> bool {
    (exact && names.binary_search_by(|n| n.as_bytes().cmp(lower)).is_ok())
        || prefixes.iter().any(|p| lower.starts_with(p.as_bytes()))
}

/// True for a MySQL system variable (`@@name`, `@@scope.name`) whose value is bound to the
/// session: the last insert id, warning counts, or any explicitly session-scoped value.
pub(crate) fn is_session_bound_sysvar(text: &str) -> bool {
    let name = text.get(2..).unwrap_or_default();
    let (scope, name) = match name.split_once('.') {
        Some((scope, name)) => (scope, name),
        None => ("", name),
    };
    const BOUND: &[&str] = &[
        "error_count",
        "identity",
        "insert_id",
        "last_gtid",
        "last_insert_id",
        "last_query_cost",
        "warning_count",
    ];
    name.is_empty()
        || ["session", "local"]
            .iter()
            .any(|s| scope.eq_ignore_ascii_case(s) || name.eq_ignore_ascii_case(s))
        || BOUND.iter().any(|b| name.eq_ignore_ascii_case(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_sorted_lowercase_and_unique() {
        for list in [PG_FUNCTIONS, MYSQL_FUNCTIONS] {
            for pair in list.windows(2) {
                assert!(
                    pair[0] < pair[1],
                    "{} must sort before {}",
                    pair[0],
                    pair[1]
                );
            }
            for name in list.iter().chain(PG_PREFIXES).chain(MYSQL_PREFIXES) {
                assert_eq!(*name, name.to_ascii_lowercase());
                assert!(name.len() <= MAX_NAME);
            }
        }
    }

    #[test]
    fn the_filter_lets_every_listed_name_and_family_through() {
        for (filter, names, prefixes) in [
            (&PG_FILTER, PG_FUNCTIONS, PG_PREFIXES),
            (&MYSQL_FILTER, MYSQL_FUNCTIONS, MYSQL_PREFIXES),
        ] {
            for name in names.iter().chain(prefixes) {
                assert!(may_match(filter, name.as_bytes()));
                assert!(may_match(filter, name.to_ascii_uppercase().as_bytes()));
            }
            for prefix in prefixes {
                assert!(may_match(
                    filter,
                    format!("{prefix}{}", "x".repeat(70)).as_bytes()
                ));
            }
        }
        assert!(!may_match(&PG_FILTER, b"COUNT"));
        assert!(!may_match(&MYSQL_FILTER, b"FROM"));
    }

    #[test]
    fn names_match_case_insensitively_and_by_family() {
        assert!(is_write_function("NextVal", Dialect::Postgres));
        assert!(is_write_function(
            "pg_advisory_xact_lock_shared",
            Dialect::Postgres
        ));
        assert!(is_write_function("PG_TRY_ADVISORY_LOCK", Dialect::Postgres));
        assert!(!is_write_function("pg_sleep", Dialect::Postgres));
        assert!(!is_write_function("last_insert_id", Dialect::Postgres));
        assert!(is_write_function("LAST_INSERT_ID", Dialect::MySql));
        assert!(!is_write_function("sleep", Dialect::MySql));
        assert!(is_write_function("get_lock", Dialect::Strict));
        assert!(is_write_function("pg_notify", Dialect::Strict));
        let long = "pg_advisory_lock_with_a_very_long_made_up_suffix_beyond_the_buffer";
        assert!(is_write_function(long, Dialect::Postgres));
    }

    #[test]
    fn session_bound_system_variables() {
        assert!(is_session_bound_sysvar("@@identity"));
        assert!(is_session_bound_sysvar("@@SESSION.sql_mode"));
        assert!(is_session_bound_sysvar("@@local.x"));
        assert!(is_session_bound_sysvar("@@"));
        assert!(!is_session_bound_sysvar("@@port"));
        assert!(!is_session_bound_sysvar("@@global.read_only"));
    }
}
