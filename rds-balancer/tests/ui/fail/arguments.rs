use rds_balancer::writer;

#[writer(foo)]
async fn with_argument() {}

#[writer(route = "reader", fallback)]
async fn with_arguments() {}

fn main() {
    let _ = with_argument();
    let _ = with_arguments();
}
