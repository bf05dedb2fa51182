use rds_balancer::read_replica;

#[read_replica = "x"]
async fn name_value() {}

fn main() {
    let _ = name_value();
}
