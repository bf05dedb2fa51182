use rds_balancer::{read_replica, writer};

#[writer]
struct Orders {
    id: u32,
}

#[read_replica]
const LIMIT: u32 = 10;

fn main() {
    let _ = Orders { id: LIMIT };
}
