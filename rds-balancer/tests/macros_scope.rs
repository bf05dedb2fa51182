//! `#[writer]` and `#[read_replica]` set the route override for exactly the function's future,
//! observed through `current_route()` (no database needed).
//!
//! These tests are backend-independent (the macros only set a task-local scope), so they run
//! once, not per backend; `tests/overrides.rs` proves on PostgreSQL and on MariaDB that the
//! scopes route real statements (free fns, methods, `async_trait` impls and default bodies,
//! fns returning futures).

use std::future::Future;
use std::num::ParseIntError;
use std::pin::Pin;

use async_trait::async_trait;
use rds_balancer::{Route, current_route, read_replica, with_route, writer};

fn assert_send<T: Send>(_: &T) {}

#[derive(Debug, PartialEq, Eq)]
enum MyError {
    NotANumber,
    Negative,
}

impl From<ParseIntError> for MyError {
    fn from(_: ParseIntError) -> Self {
        MyError::NotANumber
    }
}

#[writer]
async fn on_writer() -> Option<Route> {
    current_route()
}

#[read_replica]
async fn on_reader() -> Option<Route> {
    current_route()
}

#[tokio::test]
async fn writer_fn_runs_with_the_writer_route() {
    assert_eq!(on_writer().await, Some(Route::Writer));
}

#[tokio::test]
async fn read_replica_fn_runs_with_the_reader_route() {
    assert_eq!(on_reader().await, Some(Route::Reader));
}

#[tokio::test]
async fn route_is_set_only_while_the_future_runs() {
    assert_eq!(current_route(), None);
    let future = on_writer();
    assert_eq!(current_route(), None, "creating the future sets nothing");
    assert_eq!(future.await, Some(Route::Writer));
    assert_eq!(current_route(), None, "the scope ends with the future");
}

#[writer]
async fn writer_calling_reader() -> [Option<Route>; 3] {
    let before = current_route();
    let inside = on_reader().await;
    let after = current_route();
    [before, inside, after]
}

#[tokio::test]
async fn innermost_scope_wins_and_outer_scope_resumes_after_the_call() {
    assert_eq!(
        writer_calling_reader().await,
        [
            Some(Route::Writer),
            Some(Route::Reader),
            Some(Route::Writer)
        ]
    );
    // The attribute is a scope like `with_route`: inside an outer `with_route`, it still wins.
    assert_eq!(
        with_route(Route::Reader, on_writer()).await,
        Some(Route::Writer)
    );
}

#[writer]
async fn parse_positive(input: &str) -> Result<(u32, Option<Route>), MyError> {
    let number: i64 = input.parse()?;
    if number < 0 {
        return Err(MyError::Negative);
    }
    let number = u32::try_from(number).map_err(|_| MyError::NotANumber)?;
    Ok((number, current_route()))
}

#[tokio::test]
async fn question_mark_converts_into_the_declared_error_type() {
    assert_eq!(parse_positive("7").await, Ok((7, Some(Route::Writer))));
    assert_eq!(parse_positive("x").await, Err(MyError::NotANumber));
}

#[read_replica]
async fn first_even(numbers: Vec<u32>) -> Option<(u32, Option<Route>)> {
    for n in numbers {
        if n % 2 == 0 {
            return Some((n, current_route()));
        }
    }
    None
}

#[tokio::test]
async fn early_return_returns_from_the_function() {
    assert_eq!(parse_positive("-1").await, Err(MyError::Negative));
    assert_eq!(
        first_even(vec![1, 4, 6]).await,
        Some((4, Some(Route::Reader)))
    );
    assert_eq!(first_even(vec![1, 3]).await, None);
}

#[derive(Debug, Default)]
struct Service {
    calls: u32,
}

impl Service {
    #[writer]
    async fn by_ref(&self) -> (u32, Option<Route>) {
        (self.calls, current_route())
    }

    #[read_replica]
    async fn by_mut(&mut self) -> Option<Route> {
        self.calls += 1;
        current_route()
    }

    /// Doc comments and other attributes are kept.
    #[writer]
    #[allow(clippy::unused_async)]
    pub(crate) async fn by_value(self) -> (u32, Option<Route>) {
        (self.calls, current_route())
    }
}

#[tokio::test]
async fn methods_taking_ref_mut_ref_and_self() {
    let mut service = Service::default();
    assert_eq!(service.by_mut().await, Some(Route::Reader));
    assert_eq!(service.by_ref().await, (1, Some(Route::Writer)));
    assert_eq!(service.by_value().await, (1, Some(Route::Writer)));
}

#[read_replica]
async fn generic<T: std::fmt::Debug + Send>(value: T) -> (T, Option<Route>) {
    (value, current_route())
}

#[writer]
async fn with_lifetime<'a>(items: &'a [u32], extra: impl Into<u32>) -> (&'a u32, u32) {
    (&items[0], extra.into())
}

#[read_replica]
async fn with_patterns((a, b): (u32, u32), mut total: u32) -> (u32, Option<Route>) {
    total += a + b;
    (total, current_route())
}

#[tokio::test]
async fn generic_fns_lifetimes_impl_trait_args_and_patterns() {
    assert_eq!(generic("x").await, ("x", Some(Route::Reader)));
    let items = [3, 4];
    assert_eq!(with_lifetime(&items, 5u8).await, (&3, 5));
    assert_eq!(with_patterns((1, 2), 10).await, (13, Some(Route::Reader)));
}

#[async_trait]
trait Repository {
    async fn load(&self, id: &str) -> Result<(u32, Option<Route>), MyError>;

    async fn name(&self) -> &str;

    /// A default body, routed to a reader.
    #[read_replica]
    async fn count(&self) -> Option<Route> {
        current_route()
    }
}

struct Orders {
    name: String,
}

#[async_trait]
impl Repository for Orders {
    #[writer]
    async fn load(&self, id: &str) -> Result<(u32, Option<Route>), MyError> {
        let id: u32 = id.parse()?;
        Ok((id, current_route()))
    }

    #[read_replica]
    async fn name(&self) -> &str {
        &self.name
    }
}

#[async_trait(?Send)]
trait LocalRepository {
    async fn local(&self) -> Option<Route>;
}

#[async_trait(?Send)]
impl LocalRepository for Orders {
    #[read_replica]
    async fn local(&self) -> Option<Route> {
        current_route()
    }
}

#[tokio::test]
async fn async_trait_methods_and_default_bodies() {
    let orders = Orders {
        name: "orders".to_owned(),
    };
    assert_eq!(orders.load("5").await, Ok((5, Some(Route::Writer))));
    assert_eq!(orders.load("five").await, Err(MyError::NotANumber));
    assert_eq!(orders.name().await, "orders");
    assert_eq!(orders.count().await, Some(Route::Reader));
    assert_eq!(orders.local().await, Some(Route::Reader));

    let repository: &dyn Repository = &orders;
    let future = repository.load("1");
    assert_send(&future);
    assert_eq!(future.await, Ok((1, Some(Route::Writer))));
}

trait Native {
    /// A default body in the trait.
    #[writer]
    async fn default_writer(&self) -> Option<Route> {
        current_route()
    }

    async fn implemented(&self) -> Result<Option<Route>, MyError>;
}

struct NativeImpl;

impl Native for NativeImpl {
    #[read_replica]
    async fn implemented(&self) -> Result<Option<Route>, MyError> {
        let _: u8 = "1".parse()?;
        Ok(current_route())
    }
}

#[tokio::test]
async fn async_fn_in_trait_default_body_and_impl() {
    assert_eq!(NativeImpl.default_writer().await, Some(Route::Writer));
    assert_eq!(NativeImpl.implemented().await, Ok(Some(Route::Reader)));
}

#[writer]
fn impl_future(input: &str) -> impl Future<Output = Result<(u32, Option<Route>), MyError>> + Send {
    let input = input.to_owned();
    async move {
        let number: u32 = input.parse()?;
        Ok((number, current_route()))
    }
}

#[read_replica]
fn boxed_future(service: &Service) -> Pin<Box<dyn Future<Output = Option<Route>> + Send + '_>> {
    Box::pin(async move {
        let _ = service.calls;
        current_route()
    })
}

#[tokio::test]
async fn fns_returning_impl_or_boxed_futures() {
    assert_eq!(impl_future("3").await, Ok((3, Some(Route::Writer))));
    let service = Service::default();
    assert_eq!(boxed_future(&service).await, Some(Route::Reader));
}

#[tokio::test]
async fn futures_of_annotated_fns_are_send() {
    let service = Service::default();
    let futures = (
        on_writer(),
        parse_positive("1"),
        service.by_ref(),
        generic(1u8),
        NativeImpl.implemented(),
        impl_future("2"),
    );
    assert_send(&futures);
    let (writer, parsed, by_ref, generic, native, impl_future) = futures;
    assert_eq!(writer.await, Some(Route::Writer));
    assert_eq!(parsed.await, Ok((1, Some(Route::Writer))));
    assert_eq!(by_ref.await, (0, Some(Route::Writer)));
    assert_eq!(generic.await, (1, Some(Route::Reader)));
    assert_eq!(native.await, Ok(Some(Route::Reader)));
    assert_eq!(impl_future.await, Ok((2, Some(Route::Writer))));
}

#[writer]
async fn spawns_tasks() -> Result<[Option<Route>; 3], tokio::task::JoinError> {
    let plain = tokio::spawn(async { current_route() }).await?;
    let wrapped = tokio::spawn(with_route(Route::Writer, async { current_route() })).await?;
    Ok([current_route(), plain, wrapped])
}

#[tokio::test]
async fn spawned_task_does_not_inherit_the_route_unless_wrapped() {
    assert_eq!(
        spawns_tasks().await.unwrap(),
        [Some(Route::Writer), None, Some(Route::Writer)]
    );
}

// Written above `#[tokio::test]`, the attribute scopes the whole test body.
#[read_replica]
#[tokio::test]
async fn attribute_above_tokio_test_scopes_the_test_body() {
    assert_eq!(current_route(), Some(Route::Reader));
}
