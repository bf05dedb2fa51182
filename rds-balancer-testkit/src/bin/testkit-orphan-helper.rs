//! Not a tool: the process that the test kit's `a_killed_test_process_leaves_no_server_behind`
//! test starts and then kills with SIGKILL. It starts a cluster in a `static` (never dropped),
//! pauses a replica, prints the cluster's directory and waits to be killed.
#![allow(clippy::print_stdout)]

use std::io::Write;
use std::sync::OnceLock;

use rds_balancer_testkit::PgCluster;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    static CLUSTER: OnceLock<PgCluster> = OnceLock::new();
    let cluster = CLUSTER.get_or_init(|| match PgCluster::start(2) {
        Ok(cluster) => cluster,
        Err(err) => {
            eprintln!("could not start the cluster: {err}");
            std::process::exit(1);
        }
    });
    cluster.replicas()[1].pause()?;
    println!("DIR {}", cluster.dir().display());
    std::io::stdout().flush()?;
    loop {
        std::thread::park();
    }
}
