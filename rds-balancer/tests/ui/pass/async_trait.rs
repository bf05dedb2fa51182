//! Methods of `#[async_trait]` traits and impls: the attribute goes on the method.
#![deny(warnings)]

use async_trait::async_trait;
use rds_balancer::{Route, current_route, read_replica, writer};

#[async_trait]
trait Repository: Sync {
    async fn find(&self, id: u32) -> Result<Option<Route>, std::num::ParseIntError>;

    async fn generic<T: Send + 'static>(&self, value: T) -> T;

    async fn name(&self) -> &str;

    #[read_replica]
    async fn default_body(&self, (a, b): (u32, u32)) -> (u32, Option<Route>) {
        (a + b, current_route())
    }
}

struct Orders(String);

#[async_trait]
impl Repository for Orders {
    #[writer]
    async fn find(&self, id: u32) -> Result<Option<Route>, std::num::ParseIntError> {
        let parsed: u32 = id.to_string().parse()?;
        assert_eq!(parsed, id);
        Ok(current_route())
    }

    #[read_replica]
    async fn generic<T: Send + 'static>(&self, value: T) -> T {
        value
    }

    #[writer]
    async fn name(&self) -> &str {
        &self.0
    }
}

#[async_trait]
trait WithItem {
    type Item: Send;

    async fn item(&self) -> Self::Item;
}

struct Borrowed<'a>(&'a str);

#[async_trait]
impl<'a> WithItem for Borrowed<'a> {
    type Item = &'a str;

    #[read_replica]
    async fn item(&self) -> &'a str {
        self.0
    }
}

#[async_trait(?Send)]
trait Local {
    async fn local(&self) -> Option<Route>;
}

#[async_trait(?Send)]
impl Local for std::rc::Rc<u32> {
    #[writer]
    async fn local(&self) -> Option<Route> {
        current_route()
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let orders = Orders("orders".to_owned());
    assert_eq!(orders.find(1).await.unwrap(), Some(Route::Writer));
    assert_eq!(orders.generic(5).await, 5);
    assert_eq!(orders.name().await, "orders");
    assert_eq!(orders.default_body((1, 2)).await, (3, Some(Route::Reader)));
    assert_eq!(std::rc::Rc::new(1).local().await, Some(Route::Writer));
    assert_eq!(Borrowed("x").item().await, "x");
}
