//! Credentials that may change while the application runs: a [`CredentialProvider`] is asked
//! for the user name and password of every host before its pool opens and again before what it
//! gave expires; new connections use the new ones, open connections are left alone.

#[cfg(feature = "rds-api")]
mod iam;
mod renewal;
mod secret;
#[cfg(feature = "secrets-manager")]
mod secrets_manager;

use std::future::Future;
use std::time::SystemTime;

#[cfg(feature = "rds-api")]
pub use self::iam::{IamAuth, IamAuthBuilder};
pub(crate) use self::renewal::Renewal;
pub use self::secret::Secret;
#[cfg(feature = "secrets-manager")]
pub use self::secrets_manager::{RdsSecret, SecretsManagerAuth, SecretsManagerAuthBuilder};
use crate::error::Result;

/// The host a pool connects to, as the topology names it (not the address the endpoint
/// resolver may map it to): IAM tokens are signed for this name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Endpoint {
    /// Host name (for Aurora, the instance or cluster endpoint).
    pub host: String,
    /// Port.
    pub port: u16,
}

impl Endpoint {
    /// An endpoint.
    ///
    /// ```
    /// let endpoint = rds_balancer::Endpoint::new("app.cluster-abc.us-east-1.rds.amazonaws.com", 5432);
    /// assert_eq!(endpoint.port, 5432);
    /// ```
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        Endpoint {
            host: host.into(),
            port,
        }
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// A user name and password for new connections to one host, and when they stop working.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Credentials {
    /// The user name; `None` keeps the one of the connection's URL or options.
    pub username: Option<String>,
    /// The password (an IAM token is one). Never printed.
    pub password: Secret,
    /// When they expire (an IAM token after 15 minutes); `None` for "until rejected". They are
    /// renewed well before.
    pub expires_at: Option<SystemTime>,
}

impl Credentials {
    /// Credentials that do not expire.
    ///
    /// ```
    /// use rds_balancer::Credentials;
    ///
    /// let credentials = Credentials::new("app", "s3cret");
    /// assert!(!format!("{credentials:?}").contains("s3cret"));
    /// ```
    pub fn new(username: impl Into<String>, password: impl Into<Secret>) -> Self {
        Credentials {
            username: Some(username.into()),
            password: password.into(),
            expires_at: None,
        }
    }

    /// The same credentials, expiring at `at`.
    pub fn expiring_at(mut self, at: SystemTime) -> Self {
        self.expires_at = Some(at);
        self
    }
}

/// Where the credentials of new connections come from: asked before a host's pool opens, again
/// before what it returned expires, and again after the database rejected them (a rotated
/// password). Closures `Fn(&Endpoint) -> impl Future<Output = Result<Credentials>>` are
/// providers too.
///
/// ```
/// use rds_balancer::{CredentialProvider, Credentials, Endpoint};
///
/// let provider = |_: &Endpoint| async { Ok(Credentials::new("app", std::env::var("DB_PASSWORD").unwrap_or_default())) };
/// fn takes(_: impl CredentialProvider) {}
/// takes(provider);
/// ```
#[async_trait::async_trait]
pub trait CredentialProvider: Send + Sync + 'static {
    /// The credentials for new connections to `endpoint`.
    async fn credentials(&self, endpoint: &Endpoint) -> Result<Credentials>;

    /// The database refused the credentials last returned for `endpoint` (a rotated password, an
    /// expired token): forget any cached copy, the next call must fetch fresh ones. Default:
    /// nothing to forget.
    fn rejected(&self, endpoint: &Endpoint) {
        let _ = endpoint;
    }

    /// Whether these credentials may only travel over TLS to a verified server (IAM tokens,
    /// managed secrets): then a pool whose settings do not verify the server's certificate
    /// (`sslmode=verify-full` or `verify-ca`) is a configuration error. Default: `false`.
    fn requires_tls(&self) -> bool {
        false
    }
}

/// Fixed credentials are a provider too: the static password of the three kinds.
///
/// ```no_run
/// use rds_balancer::{Credentials, RdsConnection};
///
/// # async fn demo() -> rds_balancer::Result<()> {
/// let db = RdsConnection::builder()
///     .writer("postgres://db.example.com/app?sslmode=verify-full")
///     .credentials(Credentials::new("app", std::env::var("DB_PASSWORD").unwrap_or_default()))
///     .build()
///     .await?;
/// # let _ = db; Ok(()) }
/// ```
#[async_trait::async_trait]
impl CredentialProvider for Credentials {
    async fn credentials(&self, _: &Endpoint) -> Result<Credentials> {
        Ok(self.clone())
    }
}

#[async_trait::async_trait]
impl<F, Fut> CredentialProvider for F
where
    F: Fn(&Endpoint) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Credentials>> + Send,
{
    async fn credentials(&self, endpoint: &Endpoint) -> Result<Credentials> {
        self(endpoint).await
    }
}
