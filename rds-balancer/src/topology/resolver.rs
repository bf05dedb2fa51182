//! The endpoint resolver hook: which address is dialled for an instance's endpoint.

/// Maps an instance's endpoint (as the topology reports it) to the address actually dialled:
/// an SSH tunnel, a local port forward, a test cluster whose fake host names all live on
/// 127.0.0.1.
///
/// Implemented for any `Fn(&str, u16) -> (String, u16)` closure:
///
/// ```
/// use rds_balancer::{EndpointResolver, RdsConnection};
///
/// // Every instance of the cluster is reached through a local tunnel, on port + 10000.
/// let tunnel = |_host: &str, port: u16| ("127.0.0.1".to_owned(), port + 10_000);
/// assert_eq!(tunnel.resolve("db-1.abc.us-east-1.rds.amazonaws.com", 5432), ("127.0.0.1".to_owned(), 15432));
/// let builder = RdsConnection::builder().endpoint_resolver(tunnel);
/// # let _ = builder;
/// ```
pub trait EndpointResolver: Send + Sync + 'static {
    /// The host and port to dial for the instance endpoint `host:port`.
    fn resolve(&self, host: &str, port: u16) -> (String, u16);
}

impl<F> EndpointResolver for F
where
    F: Fn(&str, u16) -> (String, u16) + Send + Sync + 'static,
{
    fn resolve(&self, host: &str, port: u16) -> (String, u16) {
        self(host, port)
    }
}
