use rds_balancer::writer;

#[writer]
const fn limit() -> u32 {
    10
}

fn main() {
    let _ = limit();
}
