use rds_balancer::{read_replica, writer};

trait Service {
    #[writer]
    async fn save(&self, id: u32) -> u32;
}

#[async_trait::async_trait]
trait Repository {
    #[read_replica]
    async fn load(&self) -> u32;
}

fn main() {}
