//! Native `async fn` in traits: default bodies and impls.
#![deny(warnings)]

use rds_balancer::{Route, current_route, read_replica, writer};

trait Service {
    #[writer]
    async fn default_body(&self) -> Option<Route> {
        current_route()
    }

    async fn required(&self, input: &str) -> Result<u32, std::num::ParseIntError>;

    /// Returning `impl Future` (needed for a `Send` bound) is supported too.
    fn sendable(&self) -> impl std::future::Future<Output = Option<Route>> + Send;
}

struct Impl;

impl Service for Impl {
    #[read_replica]
    async fn required(&self, input: &str) -> Result<u32, std::num::ParseIntError> {
        let value = input.parse()?;
        Ok(value)
    }

    #[read_replica]
    fn sendable(&self) -> impl std::future::Future<Output = Option<Route>> + Send {
        async { current_route() }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert_eq!(Impl.default_body().await, Some(Route::Writer));
    assert_eq!(Impl.required("4").await.unwrap(), 4);
    assert_eq!(Impl.sendable().await, Some(Route::Reader));
}
