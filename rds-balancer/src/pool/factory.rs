//! Opening pools for hosts a topology names, from the writer's URL as a template.

use std::sync::Arc;

use sea_orm::{Database, DatabaseConnection};

use crate::error::{Error, Result};
use crate::options::PoolOptions;
use crate::topology::EndpointResolver;

/// Opens a pool to any `host:port` with the writer URL's scheme, credentials, database and
/// parameters. Holds a password: its `Debug` shows none of the URL.
pub(crate) struct HostFactory {
    template: url::Url,
    pool: PoolOptions,
    resolver: Option<Arc<dyn EndpointResolver>>,
}

impl std::fmt::Debug for HostFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostFactory")
            .field("scheme", &self.template.scheme())
            .field("pool", &self.pool)
            .field("resolver", &self.resolver.is_some())
            .finish_non_exhaustive()
    }
}

impl HostFactory {
    /// A factory using `writer_url` as the template, or `None` when it is not a URL with a host.
    pub(crate) fn new(
        writer_url: &str,
        pool: PoolOptions,
        resolver: Option<Arc<dyn EndpointResolver>>,
    ) -> Option<Self> {
        let template = url::Url::parse(writer_url).ok()?;
        template.host_str()?;
        Some(HostFactory {
            template,
            pool,
            resolver,
        })
    }

    /// The address dialled for the instance endpoint `host:port`: the resolver's answer, or the
    /// endpoint itself.
    fn dialled(&self, host: &str, port: u16) -> (String, u16) {
        match &self.resolver {
            Some(resolver) => resolver.resolve(host, port),
            None => (host.to_owned(), port),
        }
    }

    /// The template with its host and port replaced.
    fn url_for(&self, host: &str, port: u16) -> Result<url::Url> {
        let mut url = self.template.clone();
        url.set_host(Some(host))
            .map_err(|_| Error::Config(format!("`{host}` is not a valid host name").into()))?;
        url.set_port(Some(port))
            .map_err(|()| Error::Config("the writer URL cannot carry a port".into()))?;
        Ok(url)
    }

    /// Whether the instance endpoint `host:port` (through the resolver, if any) is the host the
    /// template itself points at: the writer the builder was given.
    pub(crate) fn dials_template(&self, host: &str, port: u16) -> bool {
        let (host, port) = self.dialled(host, port);
        self.template
            .host_str()
            .is_some_and(|h| h.eq_ignore_ascii_case(&host))
            && self
                .template
                .port_or_known_default()
                .is_none_or(|p| p == port)
    }

    /// Opens a pool to the instance endpoint `host:port` (through the resolver, if any).
    pub(crate) async fn open(&self, host: &str, port: u16) -> Result<DatabaseConnection> {
        let (host, port) = self.dialled(host, port);
        let url = self.url_for(&host, port)?;
        Database::connect(self.pool.connect_options(url.as_str()))
            .await
            .map_err(|source| Error::Connect {
                host: format!("{host}:{port}"),
                source,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_keeps_credentials_database_and_parameters() {
        let factory = HostFactory::new(
            "postgres://app:s3cret@writer.example.com:5432/shop?sslmode=require",
            PoolOptions::default(),
            None,
        )
        .expect("a template");
        let url = factory
            .url_for("reader-1.example.com", 5433)
            .expect("a url");
        assert_eq!(
            url.as_str(),
            "postgres://app:s3cret@reader-1.example.com:5433/shop?sslmode=require"
        );
        assert!(!format!("{factory:?}").contains("s3cret"));
        assert!(factory.dials_template("WRITER.example.com", 5432));
        assert!(!factory.dials_template("writer.example.com", 5433));
        assert!(!factory.dials_template("reader-1.example.com", 5432));
        assert!(HostFactory::new("not a url", PoolOptions::default(), None).is_none());
    }
}
