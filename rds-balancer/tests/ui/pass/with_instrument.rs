//! Combined with `#[tracing::instrument]`, in either order.
#![deny(warnings)]

use rds_balancer::{Route, current_route, read_replica, writer};

#[writer]
#[tracing::instrument]
async fn writer_outside(id: u32) -> Result<Option<Route>, std::num::ParseIntError> {
    let parsed: u32 = id.to_string().parse()?;
    assert_eq!(parsed, id);
    Ok(current_route())
}

#[tracing::instrument(skip_all)]
#[read_replica]
async fn instrument_outside(id: u32) -> Result<Option<Route>, std::num::ParseIntError> {
    let parsed: u32 = id.to_string().parse()?;
    assert_eq!(parsed, id);
    Ok(current_route())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert_eq!(writer_outside(1).await.unwrap(), Some(Route::Writer));
    assert_eq!(instrument_outside(1).await.unwrap(), Some(Route::Reader));
}
