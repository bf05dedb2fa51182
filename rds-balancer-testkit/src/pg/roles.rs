//! Login roles with passwords, for tests of credentials that change.

use super::PgCluster;
use super::cluster::REPLICATION_TIMEOUT;
use crate::error::Error;

impl PgCluster {
    /// Creates role `name` on the primary, with `LOGIN` and `password` (stored as a SCRAM-SHA-256
    /// verifier), and waits until every answering replica has it. Only `postgres` is trusted by
    /// the kit's `pg_hba.conf`: this role must give its password over TCP (SCRAM), and a wrong
    /// one is refused (`password authentication failed for user "name"`), on every node.
    ///
    /// The role gets no privilege beyond what PostgreSQL grants every role (connecting to
    /// databases, using the `public` schema); grant more with [`psql`](Self::psql), or make it
    /// the owner of a database.
    ///
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// use rds_balancer_testkit::PgCluster;
    ///
    /// # fn main() -> Result<(), rds_balancer_testkit::Error> {
    /// let cluster = PgCluster::start(1)?;
    /// cluster.create_role("app", "first")?;
    /// cluster.psql("postgres", "CREATE DATABASE app OWNER app")?;
    /// cluster.wait_replicated(Duration::from_secs(30))?;
    /// // Give the code under test `cluster.primary().url_as("app", "app", "first")`, and for the
    /// // replica `cluster.replicas()[0].url_as("app", "app", "first")`.
    /// let url = cluster.replicas()[0].url_as("app", "app", "first");
    /// let who = cluster.psql_conninfo(&url, "SELECT current_user", Duration::from_secs(10))?;
    /// assert_eq!(who, "app");
    /// # Ok(()) }
    /// ```
    pub fn create_role(&self, name: &str, password: &str) -> Result<(), Error> {
        let sql = format!(
            "CREATE ROLE {} LOGIN PASSWORD {}",
            quote_ident(name),
            quote_literal(password)
        );
        self.psql("postgres", &sql)?;
        self.wait_replicated(REPLICATION_TIMEOUT)
    }

    /// Changes role `name`'s password to `password` on the primary (`ALTER ROLE ... PASSWORD`),
    /// and waits until every answering replica has the change. From then on only the new
    /// password is accepted for new connections; connections already open stay open, as in a
    /// real rotation.
    ///
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// use rds_balancer_testkit::PgCluster;
    ///
    /// # fn main() -> Result<(), rds_balancer_testkit::Error> {
    /// let cluster = PgCluster::start(0)?;
    /// let primary = cluster.primary();
    /// let timeout = Duration::from_secs(10);
    /// cluster.create_role("app", "old")?;
    /// cluster.set_password("app", "new")?;
    /// let old = primary.url_as("postgres", "app", "old");
    /// let new = primary.url_as("postgres", "app", "new");
    /// assert!(cluster.psql_conninfo(&old, "SELECT 1", timeout).is_err());
    /// assert_eq!(cluster.psql_conninfo(&new, "SELECT 1", timeout)?, "1");
    /// # Ok(()) }
    /// ```
    pub fn set_password(&self, name: &str, password: &str) -> Result<(), Error> {
        let sql = format!(
            "ALTER ROLE {} PASSWORD {}",
            quote_ident(name),
            quote_literal(password)
        );
        self.psql("postgres", &sql)?;
        self.wait_replicated(REPLICATION_TIMEOUT)
    }
}

/// `name` as an SQL identifier: `"name"`, inner double quotes doubled.
pub(super) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `text` as an SQL string literal (`standard_conforming_strings` is on: only quotes need
/// doubling).
fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[cfg(test)]
mod test {
    use super::{quote_ident, quote_literal};

    #[test]
    fn names_and_passwords_are_quoted() {
        assert_eq!(quote_ident("app"), "\"app\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_literal("it's\\"), "'it''s\\'");
    }
}
