//! Not a tool: the process that the test kit's `a_killed_test_process_leaves_no_emulator_behind`
//! test starts and then kills with SIGKILL. It starts an RDS emulator in a `static` (never
//! dropped), describes a cluster there, prints the emulator's pid and port and waits to be killed.
#![allow(clippy::print_stdout)]

use std::io::Write;
use std::sync::OnceLock;

use rds_balancer_testkit::RdsEmulator;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    static EMULATOR: OnceLock<RdsEmulator> = OnceLock::new();
    let rds = EMULATOR.get_or_init(|| match RdsEmulator::start() {
        Ok(rds) => rds,
        Err(err) => {
            eprintln!("could not start the emulator: {err}");
            std::process::exit(1);
        }
    });
    rds.create_cluster("orphan", "aurora-postgresql")?;
    rds.add_instance("orphan", "orphan-1", 5432, None)?;
    println!("EMULATOR {} {}", rds.pid(), rds.port());
    std::io::stdout().flush()?;
    loop {
        std::thread::park();
    }
}
