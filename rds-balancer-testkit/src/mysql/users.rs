//! Users with passwords, for the code under test and for tests of credentials that change.

use super::MariaDbCluster;
use super::cluster::REPLICATION_TIMEOUT;
use super::node::quote_string;
use crate::error::Error;

impl MariaDbCluster {
    /// Creates user `name`@`%` with `password` and the privileges an application needs on every
    /// database (`SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, INDEX, ALTER, CREATE TEMPORARY
    /// TABLES, LOCK TABLES, EXECUTE, CREATE VIEW, SHOW VIEW`), but not `SUPER` or `READ ONLY
    /// ADMIN`: the replicas' `read_only` refuses its writes. Waits until the replicas have it.
    pub fn create_user(&self, name: &str, password: &str) -> Result<(), Error> {
        let user = format!("{}@'%'", quote_string(name));
        self.sql(
            "",
            &format!(
                "CREATE USER {user} IDENTIFIED BY {}; GRANT SELECT, INSERT, UPDATE, DELETE, \
                 CREATE, DROP, INDEX, ALTER, CREATE TEMPORARY TABLES, LOCK TABLES, EXECUTE, \
                 CREATE VIEW, SHOW VIEW ON *.* TO {user}",
                quote_string(password)
            ),
        )?;
        self.wait_replicated(REPLICATION_TIMEOUT)
    }

    /// Changes user `name`@`%`'s password to `password` on the primary (`ALTER USER ...
    /// IDENTIFIED BY`), and waits until every answering replica has the change. From then on
    /// only the new password is accepted for new connections, on every node; connections
    /// already open stay open, as in a real rotation.
    ///
    /// ```no_run
    /// use rds_balancer_testkit::MariaDbCluster;
    ///
    /// # fn main() -> Result<(), rds_balancer_testkit::Error> {
    /// let cluster = MariaDbCluster::start(1)?;
    /// cluster.create_user("app", "old")?;
    /// cluster.set_password("app", "new")?;
    /// let replica = &cluster.replicas()[0];
    /// assert!(replica.sql_as("", "app", "old", "SELECT 1").is_err());
    /// assert_eq!(replica.sql_as("", "app", "new", "SELECT 1")?, "1");
    /// # Ok(()) }
    /// ```
    pub fn set_password(&self, name: &str, password: &str) -> Result<(), Error> {
        self.sql(
            "",
            &format!(
                "ALTER USER {}@'%' IDENTIFIED BY {}",
                quote_string(name),
                quote_string(password)
            ),
        )?;
        self.wait_replicated(REPLICATION_TIMEOUT)
    }
}
