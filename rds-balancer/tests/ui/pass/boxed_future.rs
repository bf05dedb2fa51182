//! Plain fns returning a boxed future.
#![deny(warnings)]

use std::future::Future;
use std::pin::Pin;

use rds_balancer::{Route, current_route, read_replica, writer};

#[writer]
fn boxed(value: &u32) -> Pin<Box<dyn Future<Output = Option<Route>> + Send + '_>> {
    Box::pin(async move {
        let _ = value;
        current_route()
    })
}

#[read_replica]
fn boxed_local() -> std::pin::Pin<std::boxed::Box<dyn std::future::Future<Output = u32>>> {
    Box::pin(async { 1 })
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert_eq!(boxed(&1).await, Some(Route::Writer));
    assert_eq!(boxed_local().await, 1);
}
