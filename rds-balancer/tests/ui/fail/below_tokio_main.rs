// `#[tokio::main]` turns `main` into a plain fn before `#[writer]` sees it: write `#[writer]`
// above `#[tokio::main]`.
use rds_balancer::writer;

#[tokio::main(flavor = "current_thread")]
#[writer]
async fn main() {}
