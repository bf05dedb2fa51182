//! Every `async fn` shape compiles, keeps its signature, and the expansion adds no warnings.
#![deny(warnings)]
#![forbid(unsafe_code)]

use std::fmt::Display;

use rds_balancer::{Route, current_route, read_replica, writer};

#[derive(Debug)]
struct MyError;

impl From<std::num::ParseIntError> for MyError {
    fn from(_: std::num::ParseIntError) -> Self {
        MyError
    }
}

/// Doc comments, visibility and other attributes are kept.
#[writer]
#[cfg_attr(all(), inline)]
pub async fn public_unit() {
    #![allow(clippy::unused_async)]
    assert_eq!(current_route(), Some(Route::Writer));
}

#[read_replica]
pub(crate) async fn question_mark(input: &str) -> Result<u32, MyError> {
    let value: u32 = input.parse()?;
    if value == 0 {
        return Err(MyError);
    }
    Ok(value)
}

#[writer]
async fn generic<T, U>(value: T, other: impl Into<U>) -> (T, U)
where
    T: Send,
{
    (value, other.into())
}

#[read_replica]
async fn lifetimes<'a, 'b: 'a>(first: &'a str, _second: &'b str) -> &'a str {
    first
}

#[writer]
async fn elided(input: &str) -> &str {
    input.trim()
}

#[read_replica]
async fn patterns((a, b): (u32, u32), mut c: u32, _: u8, Wrapper(d): Wrapper) -> u32 {
    c += a + b + d;
    c
}

struct Wrapper(u32);

#[writer]
async fn returns_impl_trait() -> impl Display {
    7
}

#[writer]
async fn returns_nested_impl_trait() -> Box<impl Display + Send> {
    Box::new(7)
}

#[read_replica]
async fn diverges() -> ! {
    loop {
        tokio::task::yield_now().await;
    }
}

struct Service {
    count: u32,
}

impl Service {
    #[writer]
    fn new() -> impl std::future::Future<Output = Self> {
        async { Service { count: 0 } }
    }

    #[read_replica]
    async fn get(&self) -> u32 {
        self.count
    }

    #[writer]
    async fn bump(&mut self) -> &mut Self {
        self.count += 1;
        self
    }

    #[writer]
    async fn into_count(self: Box<Self>) -> u32 {
        self.count
    }
}

#[writer]
#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert_eq!(current_route(), Some(Route::Writer));
    public_unit().await;
    assert_eq!(question_mark("3").await.unwrap(), 3);
    assert!(question_mark("0").await.is_err());
    assert_eq!(generic::<_, u64>(1u8, 2u32).await, (1, 2));
    assert_eq!(lifetimes("a", "b").await, "a");
    assert_eq!(elided(" x ").await, "x");
    assert_eq!(patterns((1, 2), 3, 0, Wrapper(4)).await, 10);
    assert_eq!(returns_impl_trait().await.to_string(), "7");
    assert_eq!(returns_nested_impl_trait().await.to_string(), "7");
    let _never = diverges;
    let mut service = Service::new().await;
    assert_eq!(service.bump().await.count, 1);
    assert_eq!(service.get().await, 1);
    assert_eq!(Box::new(service).into_count().await, 1);
}
