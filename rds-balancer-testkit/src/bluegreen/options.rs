//! How a [`BlueGreenDeployment`] is set up.

use super::BlueGreenDeployment;
use super::deployment::Servers;
use super::relation::MetadataRelation;
use crate::error::Error;
use crate::mysql::MariaDbCluster;
use crate::pg::PgCluster;

/// Options for a [`BlueGreenDeployment`]: which metadata relation to install and, on
/// PostgreSQL, in which databases. Finish with [`postgres`](Self::postgres) or
/// [`mariadb`](Self::mariadb).
///
/// ```no_run
/// use rds_balancer_testkit::{BlueGreenDeployment, MetadataRelation, PgCluster};
///
/// # fn main() -> Result<(), rds_balancer_testkit::Error> {
/// let (blue, green) = (PgCluster::start(0)?, PgCluster::start(0)?);
/// for cluster in [&blue, &green] {
///     cluster.create_database("app")?;
/// }
/// let deployment = BlueGreenDeployment::builder("app")
///     .relation(MetadataRelation::RdsPostgres)
///     .database("app")
///     .postgres(&blue, &green)?;
/// assert_eq!(deployment.databases(), ["app"]);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct BlueGreenDeploymentBuilder {
    id: String,
    relation: Option<MetadataRelation>,
    databases: Vec<String>,
}

impl BlueGreenDeploymentBuilder {
    pub(super) fn new(id: &str) -> Self {
        BlueGreenDeploymentBuilder {
            id: id.to_owned(),
            relation: None,
            databases: Vec::new(),
        }
    }

    /// The metadata relation to install on both primaries.
    ///
    /// Default: [`MetadataRelation::AuroraPostgres`] for [`postgres`](Self::postgres),
    /// [`MetadataRelation::MySql`] for [`mariadb`](Self::mariadb) (the only one it can have).
    pub fn relation(mut self, relation: MetadataRelation) -> Self {
        self.relation = Some(relation);
        self
    }

    /// A PostgreSQL database to install the relation in, and to write the rows in (a function
    /// lives in one database: install it in the one the code under test connects to). Call it
    /// once per database; each must exist on both clusters. Ignored by
    /// [`mariadb`](Self::mariadb), whose `mysql.rds_topology` is one per server.
    ///
    /// Default: `postgres` alone.
    pub fn database(mut self, name: &str) -> Self {
        self.databases.push(name.to_owned());
        self
    }

    /// Makes `blue` (the source) and `green` (the target) one deployment, installs the relation
    /// on both primaries, with no rows: no deployment yet, until
    /// [`set_status`](BlueGreenDeployment::set_status). See [`BlueGreenDeployment::postgres`].
    pub fn postgres<'a>(
        self,
        blue: &'a PgCluster,
        green: &'a PgCluster,
    ) -> Result<BlueGreenDeployment<'a>, Error> {
        let relation = self.relation.unwrap_or(MetadataRelation::AuroraPostgres);
        if !relation.is_postgres() {
            return Err(unexpected(format!(
                "{relation} is a MySQL relation; a PostgreSQL blue/green deployment has \
                 MetadataRelation::AuroraPostgres or MetadataRelation::RdsPostgres"
            )));
        }
        let databases = if self.databases.is_empty() {
            vec!["postgres".to_owned()]
        } else {
            self.databases
        };
        let nodes = |cluster: &PgCluster| {
            std::iter::once(cluster.primary())
                .chain(cluster.replicas())
                .map(|node| (node.name().to_owned(), node.port()))
                .collect()
        };
        let servers = Servers::Postgres {
            blue,
            green,
            databases,
        };
        BlueGreenDeployment::start(&self.id, servers, relation, nodes(blue), nodes(green))
    }

    /// Makes `blue` (the source) and `green` (the target) one deployment, installs
    /// `mysql.rds_topology` on both primaries, with no rows. See [`BlueGreenDeployment::mariadb`].
    pub fn mariadb<'a>(
        self,
        blue: &'a MariaDbCluster,
        green: &'a MariaDbCluster,
    ) -> Result<BlueGreenDeployment<'a>, Error> {
        let relation = self.relation.unwrap_or(MetadataRelation::MySql);
        if relation != MetadataRelation::MySql {
            return Err(unexpected(format!(
                "{relation} is a PostgreSQL relation; a MariaDB blue/green deployment has \
                 MetadataRelation::MySql"
            )));
        }
        let nodes = |cluster: &MariaDbCluster| {
            std::iter::once(cluster.primary())
                .chain(cluster.replicas())
                .map(|node| (node.name().to_owned(), node.port()))
                .collect()
        };
        let servers = Servers::MariaDb { blue, green };
        BlueGreenDeployment::start(&self.id, servers, relation, nodes(blue), nodes(green))
    }
}

pub(super) fn unexpected(what: String) -> Error {
    Error::Unexpected { what }
}

/// Checks that `id` can be the first label of a host name: lower-case letters, digits and
/// hyphens, starting with a letter, not ending with a hyphen, at most 40 characters (room for
/// the node name and `-green-abcdef`).
pub(super) fn check_id(id: &str) -> Result<(), Error> {
    let valid = id.len() <= 40
        && id.starts_with(|c: char| c.is_ascii_lowercase())
        && !id.ends_with('-')
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if valid {
        Ok(())
    } else {
        Err(unexpected(format!(
            "blue/green deployment id {id:?} cannot name hosts: use 1 to 40 lower-case letters, \
             digits and hyphens, starting with a letter and not ending with a hyphen"
        )))
    }
}

#[cfg(test)]
mod test {
    use super::check_id;

    #[test]
    fn ids_must_be_host_name_labels() {
        for ok in ["app", "a1-b2", "x"] {
            assert!(check_id(ok).is_ok(), "{ok}");
        }
        for bad in ["", "App", "1app", "app-", "a.b", "a_b", &"a".repeat(41)] {
            let err = check_id(bad).unwrap_err().to_string();
            assert!(err.contains("cannot name hosts"), "{bad}: {err}");
        }
    }
}
