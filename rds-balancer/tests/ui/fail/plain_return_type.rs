use rds_balancer::read_replica;

#[read_replica]
pub fn count_orders(limit: u32) -> Result<u64, std::io::Error> {
    Ok(u64::from(limit))
}

fn main() {
    let _ = count_orders(1);
}
