//! An `async unsafe fn` keeps its `unsafe`.
#![deny(warnings)]

use rds_balancer::{Route, current_route, writer};

/// # Safety
/// None needed: this only checks that the signature is kept.
#[writer]
async unsafe fn raw(pointer: *const u32) -> (u32, Option<Route>) {
    // SAFETY: the caller passes a valid pointer.
    (unsafe { *pointer }, current_route())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let value = 5;
    // SAFETY: `value` outlives the call.
    let future = unsafe { raw(&value) };
    assert_eq!(future.await, (5, Some(Route::Writer)));
}
