use rds_balancer::writer;

#[writer]
fn not_async() {}

fn main() {
    not_async();
}
