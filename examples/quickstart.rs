//! Quickstart: a real local cluster (a primary and two replicas, started by the test kit), a few
//! SeaORM operations through an `RdsConnection`, and which server ran each; then an RDS API
//! emulator describes the cluster and the balancer follows it as readers come and go.
//!
//! Run it with `cargo run -p rds-balancer --example quickstart` (PostgreSQL), or
//! `cargo run -p rds-balancer --example quickstart -- --mysql` (MariaDB, as Aurora MySQL).
#![allow(clippy::print_stdout)]

use std::time::Duration;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rds_balancer::{
    BalancerOptions, RdsApiSource, RdsConnection, TopologyChange, read_replica, writer,
};
use rds_balancer_testkit::{
    MariaDbCluster, MariaDbNode, PgCluster, RdsEmulator, resolve_to_loopback,
};
use sea_orm::entity::prelude::*;
use sea_orm::{AccessMode, ActiveValue::Set, DbBackend, Statement, TransactionTrait};

/// A table whose `served_by` column a trigger fills with the port of the server that wrote it.
#[allow(unreachable_pub)]
mod cake {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "cake")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        pub name: String,
        pub served_by: Option<i32>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

const PG_SCHEMA: &str = "
CREATE TABLE cake (id serial PRIMARY KEY, name text NOT NULL, served_by int);
CREATE FUNCTION stamp() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.served_by := inet_server_port(); RETURN NEW; END $$;
CREATE TRIGGER stamp BEFORE INSERT OR UPDATE ON cake FOR EACH ROW EXECUTE FUNCTION stamp();";

const MYSQL_SCHEMA: &str = "
CREATE TABLE cake (id int AUTO_INCREMENT PRIMARY KEY, name varchar(255) NOT NULL, served_by int);
CREATE TRIGGER stamp_insert BEFORE INSERT ON cake FOR EACH ROW SET NEW.served_by = @@port;
CREATE TRIGGER stamp_update BEFORE UPDATE ON cake FOR EACH ROW SET NEW.served_by = @@port;";

/// The local cluster: PostgreSQL, or MariaDB standing in for Aurora MySQL.
enum Local {
    Postgres(PgCluster),
    MySql(MariaDbCluster),
}

impl Local {
    /// Starts a primary and two replicas with the `cake` table.
    fn start(mysql: bool) -> Result<Local, rds_balancer_testkit::Error> {
        if mysql {
            let cluster = MariaDbCluster::start(2)?;
            cluster.create_database("demo")?;
            cluster.sql("demo", MYSQL_SCHEMA)?;
            // The application's user: the replicas' read_only refuses its writes (root's not).
            cluster.create_user("app", "app-password")?;
            Ok(Local::MySql(cluster))
        } else {
            let cluster = PgCluster::start(2)?;
            cluster.psql("postgres", PG_SCHEMA)?;
            cluster.wait_replicated(Duration::from_secs(30))?;
            Ok(Local::Postgres(cluster))
        }
    }

    /// The URLs of the primary and of the two replicas.
    fn urls(&self) -> [String; 3] {
        match self {
            Local::Postgres(c) => [
                c.primary().url("postgres"),
                c.replicas()[0].url("postgres"),
                c.replicas()[1].url("postgres"),
            ],
            Local::MySql(c) => {
                let url = |n: &MariaDbNode| n.url_as("demo", "app", "app-password");
                [
                    url(c.primary()),
                    url(&c.replicas()[0]),
                    url(&c.replicas()[1]),
                ]
            }
        }
    }

    /// The ports of the primary and of the two replicas.
    fn ports(&self) -> [u16; 3] {
        match self {
            Local::Postgres(c) => [
                c.primary().port(),
                c.replicas()[0].port(),
                c.replicas()[1].port(),
            ],
            Local::MySql(c) => [
                c.primary().port(),
                c.replicas()[0].port(),
                c.replicas()[1].port(),
            ],
        }
    }

    /// "replica-1 (port 5433)" for the node on `port`.
    fn name(&self, port: i64) -> String {
        let node = u16::try_from(port).ok().and_then(|p| match self {
            Local::Postgres(c) => c.node_by_port(p).map(|n| n.name().to_owned()),
            Local::MySql(c) => c.node_by_port(p).map(|n| n.name().to_owned()),
        });
        match node {
            Some(node) => format!("{node} (port {port})"),
            None => format!("port {port}"),
        }
    }

    fn wait_replicated(&self) -> Result<(), rds_balancer_testkit::Error> {
        match self {
            Local::Postgres(c) => c.wait_replicated(Duration::from_secs(30)),
            Local::MySql(c) => c.wait_replicated(Duration::from_secs(30)),
        }
    }

    /// The RDS engine it stands for.
    fn engine(&self) -> &'static str {
        match self {
            Local::Postgres(_) => "aurora-postgresql",
            Local::MySql(_) => "aurora-mysql",
        }
    }
}

/// Asks the server that `db` routes a plain read to for its port.
async fn who_reads(db: &impl ConnectionTrait) -> Result<i64, DbErr> {
    let sql = match db.get_database_backend() {
        DbBackend::MySql => "SELECT CAST(@@port AS SIGNED) AS port",
        _ => "SELECT inet_server_port()::int8 AS port",
    };
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await?;
    row.ok_or(DbErr::RecordNotFound("no row".into()))?
        .try_get("", "port")
}

#[writer]
async fn fresh_read(db: &RdsConnection) -> Result<i64, DbErr> {
    who_reads(db).await
}

#[read_replica]
async fn report(db: &RdsConnection) -> Result<(usize, i64), DbErr> {
    Ok((
        cake::Entity::find().all(db).await?.len(),
        who_reads(db).await?,
    ))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mysql = std::env::args().skip(1).any(|arg| arg == "--mysql");
    let cluster = Local::start(mysql)?;
    let name = |port: i64| cluster.name(port);
    let [writer, reader_1, reader_2] = cluster.urls();

    let db = RdsConnection::builder()
        .writer(writer)
        .reader(reader_1)
        .reader(reader_2)
        .sqlx_logging(false)
        .build()
        .await?;

    let cake = cake::ActiveModel {
        name: Set("sponge".into()),
        ..Default::default()
    }
    .insert(&db)
    .await?;
    let insert = if mysql {
        "INSERT, read back (ActiveModel::insert)"
    } else {
        "INSERT .. RETURNING (ActiveModel::insert)"
    };
    println!(
        "{insert:<40} -> {}",
        name(cake.served_by.map_or(0, i64::from))
    );
    println!(
        "SELECT right after, same task            -> {} (read-your-writes: a replica that \
         has replayed the insert, else the writer)",
        name(who_reads(&db).await?)
    );
    for _ in 0..4 {
        println!(
            "SELECT (plain read)                      -> {}",
            name(who_reads(&db).await?)
        );
    }

    let txn = db.begin().await?;
    println!(
        "SELECT inside a transaction              -> {}",
        name(who_reads(&txn).await?)
    );
    txn.commit().await?;
    let txn = db
        .begin_with_config(None, Some(AccessMode::ReadOnly))
        .await?;
    println!(
        "SELECT in a read-only transaction        -> {}",
        name(who_reads(&txn).await?)
    );
    txn.commit().await?;

    println!(
        "SELECT in a #[writer] fn                 -> {}",
        name(fresh_read(&db).await?)
    );
    cluster.wait_replicated()?;
    let (cakes, port) = report(&db).await?;
    println!(
        "Entity::find in a #[read_replica] fn     -> {} ({cakes} cake)",
        name(port)
    );

    let report = db.shutdown(Duration::from_secs(5)).await;
    println!("shutdown: drained = {}", report.drained);

    follow_the_cluster(&cluster).await
}

/// Part two: the RDS API (a local emulator) describes the cluster; the balancer polls it while
/// reads keep flowing, and a reader is added and another removed with no read failing.
async fn follow_the_cluster(cluster: &Local) -> Result<(), Box<dyn std::error::Error>> {
    let [writer_port, r1, r2] = cluster.ports();
    let rds = RdsEmulator::start()?;
    rds.create_cluster("demo", cluster.engine())?;
    rds.add_instance("demo", "demo-writer", writer_port, Some(0))?;
    rds.add_instance("demo", "demo-reader-1", r1, Some(1))?;

    let [writer, _, _] = cluster.urls();
    let builder = RdsConnection::builder()
        .writer(writer)
        // The emulator's instance host names all live on this machine.
        .endpoint_resolver(|host: &str, port: u16| {
            let ip = resolve_to_loopback(host).map_or_else(|| host.to_owned(), |ip| ip.to_string());
            (ip, port)
        })
        .sqlx_logging(false);
    let source = RdsApiSource::builder("demo")
        .region(rds.region())
        .endpoint_url(rds.endpoint_url())
        .credentials(
            RdsEmulator::ACCESS_KEY_ID,
            RdsEmulator::SECRET_ACCESS_KEY,
            None,
        )
        .build()
        .await?;
    let options = BalancerOptions::new(source)
        .poll_interval(Duration::from_millis(200))
        .on_topology_change(|changes| {
            for change in changes {
                match change {
                    TopologyChange::ReaderAdded(r) => println!("  balancer: reader {} added", r.id),
                    TopologyChange::ReaderRemoved(id) => {
                        println!("  balancer: reader {id} removed")
                    }
                    TopologyChange::WriterChanged(w) => println!("  balancer: writer is {}", w.id),
                    other => println!("  balancer: {other:?}"),
                }
            }
        });
    // Syncs with the API once (demo-reader-1 takes reads from here on), then polls it.
    let db = rds_balancer::connect(builder, options).await?;

    // Steady reads in the background, counting failures.
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    // The port of the last read served, for the main task to watch.
    let last_port = Arc::new(std::sync::atomic::AtomicI64::new(0));
    let load = {
        let (db, ok, failed, last_port) = (
            db.clone(),
            Arc::clone(&ok),
            Arc::clone(&failed),
            Arc::clone(&last_port),
        );
        tokio::spawn(async move {
            while !db.is_shutting_down() {
                match who_reads(&db).await {
                    Ok(port) => {
                        last_port.store(port, Ordering::Relaxed);
                        ok.fetch_add(1, Ordering::Relaxed)
                    }
                    Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        })
    };

    println!("adding demo-reader-2 (port {r2}) in the RDS API");
    rds.add_instance("demo", "demo-reader-2", r2, Some(1))?;
    let added = std::time::Instant::now();
    let first_read_on_r2 = async {
        while last_port.load(Ordering::Relaxed) != i64::from(r2) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), first_read_on_r2)
        .await
        .map_err(|_| "demo-reader-2 got no read within 10 s")?;
    println!(
        "  first read served by demo-reader-2 {:?} after it appeared in the API",
        added.elapsed()
    );
    println!("removing demo-reader-1 (port {r1}) from the RDS API");
    rds.remove_instance("demo-reader-1")?;
    while db
        .topology()
        .await
        .readers()
        .any(|r| r.id == "demo-reader-1")
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let readers: Vec<String> = db
        .topology()
        .await
        .readers()
        .map(|r| r.id.clone())
        .collect();
    println!("readers in use now: {readers:?}");
    tokio::time::sleep(Duration::from_millis(200)).await;

    db.shutdown(Duration::from_secs(5)).await;
    load.await?;
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    // The last reads may meet the shutdown itself: those are refused, not lost.
    println!("reads while the cluster changed: {ok} served, {failed} refused or failed");
    Ok(())
}
