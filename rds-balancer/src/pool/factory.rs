//! Opening host pools: a [`Template`]'s settings with a host's address, credentials from the
//! provider (renewed while the pool lives), and the endpoint resolver in between.

use std::future::Future;
use std::sync::Arc;

use sea_orm::DatabaseConnection;

use super::template::Template;
use super::{HostPool, Origin, Role};
use crate::bluegreen::{BlueGreen, Dial};
use crate::cluster::Lifecycle;
use crate::credentials::{CredentialProvider, Credentials, Endpoint, Renewal};
use crate::error::{Error, Result};
use crate::health::HealthOptions;
use crate::resilience::Fault;
use crate::topology::EndpointResolver;

/// Opens pools to any `host:port` with one template's settings (credentials, database, TLS,
/// session settings, pool sizes and timeouts). Holds a password: its `Debug` shows none.
pub(crate) struct HostFactory {
    template: Template,
    resolver: Option<Arc<dyn EndpointResolver>>,
    credentials: Option<Arc<dyn CredentialProvider>>,
    /// During a blue/green switchover, where new pools for blue and green endpoints dial.
    blue_green: Option<Arc<BlueGreen>>,
    /// Whether the template's pools mark when a statement gets its connection (built from a
    /// URL, not copied from a pool the application handed over).
    marked: bool,
}

impl std::fmt::Debug for HostFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostFactory")
            .field("template", &self.template)
            .field("resolver", &self.resolver.is_some())
            .field("credentials", &self.credentials.is_some())
            .finish()
    }
}

/// Opens a pool with `open(false)`; when that fails only because the host is down
/// ([`is_host_down`]), opens one that connects on first use (`open(true)`) instead, and returns
/// it with the error that says the host is down: such a host is not left out but joins
/// unhealthy, and is probed (with back-off) until it answers.
pub(crate) async fn open_or_lazily<Fut>(
    open: impl Fn(bool) -> Fut,
) -> Result<(Opened, Option<Error>)>
where
    Fut: Future<Output = Result<Opened>>,
{
    match open(false).await {
        Ok(opened) => Ok((opened, None)),
        Err(error) if is_host_down(&error) => Ok((open(true).await?, Some(error))),
        Err(error) => Err(error),
    }
}

/// Whether `error`, from opening a pool, says only that its host is down (unreachable, too
/// busy, or too slow to answer).
pub(crate) fn is_host_down(error: &Error) -> bool {
    match error {
        Error::Connect { source, .. } => matches!(
            Fault::of(source),
            Fault::Unreachable | Fault::ConnectionLost | Fault::PoolTimeout | Fault::Overloaded
        ),
        _ => false,
    }
}

/// A pool just opened, with the credentials it was given (to renew).
pub(crate) struct Opened {
    conn: DatabaseConnection,
    credentials: Option<(Arc<dyn CredentialProvider>, Endpoint, Credentials)>,
    /// Whether its pool marks when a statement gets a connection ([`super::track`]).
    marked: bool,
}

impl Opened {
    /// A pool the application opened: rds-balancer manages no credentials for it.
    pub(crate) fn handed(conn: DatabaseConnection) -> Self {
        Opened {
            conn,
            credentials: None,
            marked: false,
        }
    }

    pub(crate) fn conn(&self) -> &DatabaseConnection {
        &self.conn
    }

    /// The host in service, its credentials renewed until it leaves service or `lifecycle`
    /// stops.
    pub(crate) fn into_host(
        self,
        name: impl Into<Arc<str>>,
        role: Role,
        origin: Origin,
        health: &HealthOptions,
        lifecycle: &Lifecycle,
    ) -> Arc<HostPool> {
        let renewal = self.credentials.map(|(provider, endpoint, first)| {
            Renewal::start(lifecycle, provider, endpoint, self.conn.clone(), &first)
        });
        HostPool::new(name, role, origin, self.conn, health, renewal, self.marked)
    }
}

impl HostFactory {
    /// A factory with `template`'s settings. With a credential provider that needs TLS, the
    /// template must verify the server (a password or token sent to an unverified server can
    /// be taken by whoever is in the middle).
    pub(crate) fn new(
        template: Template,
        resolver: Option<Arc<dyn EndpointResolver>>,
        credentials: Option<Arc<dyn CredentialProvider>>,
    ) -> Result<Self> {
        if credentials.as_ref().is_some_and(|c| c.requires_tls()) && !template.verifies_server() {
            return Err(Error::Config(
                "these credentials must travel over verified TLS: set `sslmode=verify-full` (or \
                 verify-ca) in the URL, or `ssl_mode(SslMode::VerifyFull)` on the builder"
                    .into(),
            ));
        }
        Ok(HostFactory {
            template,
            resolver,
            credentials,
            blue_green: None,
            marked: false,
        })
    }

    /// Says that the template's pools mark when a statement gets its connection (a template
    /// built from a URL, whose pool settings are rds-balancer's own).
    pub(crate) fn marked(mut self, marked: bool) -> Self {
        self.marked = marked;
        self
    }

    /// Consults `blue_green` (if any) for every pool it opens to an instance endpoint.
    pub(crate) fn with_blue_green(mut self, blue_green: Option<Arc<BlueGreen>>) -> Self {
        self.blue_green = blue_green;
        self
    }

    /// The address dialled for the instance endpoint `host:port`: the resolver's answer, or the
    /// endpoint itself.
    fn dialled(&self, host: &str, port: u16) -> (String, u16) {
        match &self.resolver {
            Some(resolver) => resolver.resolve(host, port),
            None => (host.to_owned(), port),
        }
    }

    /// Whether the instance endpoint `host:port` (through the resolver, if any) is the host the
    /// template itself dials: the writer the connection was built with.
    pub(crate) fn dials_template(&self, host: &str, port: u16) -> bool {
        let (host, port) = self.dialled(host, port);
        let (template_host, template_port) = self.template.address();
        template_host.eq_ignore_ascii_case(&host) && template_port == port
    }

    /// Opens a pool to the instance endpoint `host:port` (through the resolver, if any), with
    /// credentials for that endpoint; `lazy`: without connecting yet.
    pub(crate) async fn open(&self, host: &str, port: u16, lazy: bool) -> Result<Opened> {
        if let Some(bg) = &self.blue_green {
            match bg.dial_for(host, port).await {
                Dial::AsUsual => {}
                Dial::At(at_host, at_port) => {
                    return self
                        .connect(Endpoint::new(host, port), &at_host, at_port, lazy)
                        .await;
                }
                Dial::TimedOut(waited) => return Err(Error::BlueGreenSwitchover { waited }),
                Dial::Refuse => {
                    return Err(Error::Connect {
                        host: format!("{host}:{port}"),
                        source: sea_orm::DbErr::Custom(
                            "refused: a green host name, about to disappear after the blue/green \
                             switchover"
                                .to_owned(),
                        ),
                    });
                }
            }
        }
        let (dialled_host, dialled_port) = self.dialled(host, port);
        self.connect(Endpoint::new(host, port), &dialled_host, dialled_port, lazy)
            .await
    }

    /// Opens a pool that dials `dial` (an address, no resolver in between) for the endpoint
    /// `endpoint` (whose credentials it gets): a blue/green switchover's substitute.
    pub(crate) async fn open_at(&self, endpoint: Endpoint, dial: (&str, u16)) -> Result<Opened> {
        self.connect(endpoint, dial.0, dial.1, false).await
    }

    /// Opens a pool to the host the template itself dials (its endpoint as configured, with no
    /// resolver in between); `lazy`: without connecting yet.
    pub(crate) async fn open_template(&self, lazy: bool) -> Result<Opened> {
        let (host, port) = self.template.address();
        let host = host.to_owned();
        self.connect(Endpoint::new(host.clone(), port), &host, port, lazy)
            .await
    }

    async fn connect(
        &self,
        endpoint: Endpoint,
        host: &str,
        port: u16,
        lazy: bool,
    ) -> Result<Opened> {
        let credentials = match &self.credentials {
            Some(provider) => Some((Arc::clone(provider), provider.credentials(&endpoint).await?)),
            None => None,
        };
        let given = credentials.as_ref().map(|(_, c)| c);
        let conn = if lazy {
            self.template.open_lazy(host, port, given)
        } else {
            self.template.open(host, port, given).await?
        };
        Ok(Opened {
            conn,
            credentials: credentials.map(|(provider, first)| (provider, endpoint, first)),
            marked: self.marked,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::SqlxPostgresConnector;
    use sea_orm::sqlx::pool::PoolOptions;
    use sea_orm::sqlx::postgres::{PgConnectOptions, Postgres};

    #[tokio::test]
    async fn the_template_keeps_credentials_database_and_parameters() {
        let options: PgConnectOptions =
            "postgres://app:s3cret@writer.example.com:5432/shop?sslmode=require&application_name=x"
                .parse()
                .expect("options");
        let pool = PoolOptions::<Postgres>::new()
            .max_connections(7)
            .connect_lazy_with(options);
        let writer = SqlxPostgresConnector::from_sqlx_postgres_pool(pool);
        let template = Template::from_connection(&writer).expect("a template");
        let Template::Postgres(connect, pool) = &template else {
            panic!("a postgres template");
        };
        let derived = connect.clone().host("reader-1.example.com").port(5433);
        assert_eq!(derived.get_host(), "reader-1.example.com");
        assert_eq!(derived.get_port(), 5433);
        assert_eq!(derived.get_username(), "app");
        assert_eq!(derived.get_database(), Some("shop"));
        assert_eq!(derived.get_application_name(), Some("x"));
        assert_eq!(pool.get_max_connections(), 7);
        let factory = HostFactory::new(template, None, None).expect("a factory");
        assert!(!format!("{factory:?}").contains("s3cret"));
        assert!(factory.dials_template("WRITER.example.com", 5432));
        assert!(!factory.dials_template("writer.example.com", 5433));
        assert!(!factory.dials_template("reader-1.example.com", 5432));
        assert!(Template::from_connection(&DatabaseConnection::default()).is_none());
    }
}
