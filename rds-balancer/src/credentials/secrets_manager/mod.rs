//! [`SecretsManagerAuth`]: the user name and password of new connections from an AWS Secrets
//! Manager secret in the RDS format, cached, and fetched again when the database refuses them
//! (a rotated password).

mod error;
mod inner;
mod options;
mod rds_secret;
#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_secretsmanager::config::Region;

use self::inner::Inner;
pub use self::options::SecretsManagerAuthBuilder;
pub use self::rds_secret::RdsSecret;
use super::{CredentialProvider, Credentials, Endpoint};
use crate::error::Result;

/// Database credentials from an AWS Secrets Manager secret in the format RDS and the rotation
/// functions use: a JSON object with `username` and `password`, and optionally `host`, `port`,
/// `engine` and `dbname` (other keys are ignored).
///
/// The secret's `AWSCURRENT` version is fetched (`GetSecretValue`) when first asked for, and
/// then served from a cache to every endpoint (one fetch serves the writer and every reader)
/// for [`cache_ttl`](SecretsManagerAuthBuilder::cache_ttl); the credentials it gives expire
/// then, so the connection asks again before that and the secret is fetched anew. When the
/// database refuses the password (a rotation changed it),
/// [`rejected`](CredentialProvider::rejected) drops the cache: the connection asks again at
/// once and gets the secret's new value. Connections already open are not affected.
///
/// The IAM policy needs `secretsmanager:GetSecretValue` on the secret (and `kms:Decrypt` on
/// its key, when it is not the AWS-managed one). The credentials only travel over TLS
/// ([`requires_tls`](CredentialProvider::requires_tls) is `true`): the connection must verify
/// the server (`sslmode=verify-full` or `verify-ca`).
///
/// Cloning is cheap: clones share one client and one cache. `Debug` shows the secret id,
/// region, endpoint URL, settings and the cached version's id, never the secret's value or an
/// AWS secret key; errors name the operation, the secret id and the AWS error code, never the
/// value.
///
/// ```no_run
/// use std::time::Duration;
///
/// use rds_balancer::{RdsConnection, SecretsManagerAuth, SslMode};
///
/// # async fn run() -> rds_balancer::Result<()> {
/// // AWS credentials and region from the environment, profile or instance metadata.
/// let secret = SecretsManagerAuth::builder("prod/orders/app")
///     .cache_ttl(Duration::from_secs(15 * 60))
///     .build()
///     .await?;
/// // No password in the URLs: every pool takes the secret's user name and password.
/// let db = RdsConnection::builder()
///     .writer("postgres://orders.cluster-abc.eu-west-1.rds.amazonaws.com/orders")
///     .reader("postgres://orders.cluster-ro-abc.eu-west-1.rds.amazonaws.com/orders")
///     .ssl_mode(SslMode::VerifyFull)
///     .ssl_root_cert("/etc/ssl/rds/global-bundle.pem")
///     .credentials(secret)
///     .build()
///     .await?;
/// # let _ = db; Ok(()) }
/// ```
#[derive(Clone)]
pub struct SecretsManagerAuth {
    inner: Arc<Inner>,
}

impl fmt::Debug for SecretsManagerAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &self.inner;
        let cached_version = inner
            .lock_cache()
            .secret
            .as_ref()
            .map(|cached| cached.secret.version_id.clone());
        f.debug_struct("SecretsManagerAuth")
            .field("secret_id", &inner.secret_id)
            .field("region", &self.region())
            .field("endpoint_url", &inner.endpoint_url)
            .field("cache_ttl", &inner.cache_ttl)
            .field("cached_version", &cached_version)
            .finish()
    }
}

impl SecretsManagerAuth {
    /// A builder of the provider reading secret `secret_id` (its name or ARN).
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let builder = rds_balancer::SecretsManagerAuth::builder("prod/orders/app")
    ///     .region("eu-west-1")
    ///     .cache_ttl(Duration::from_secs(600));
    /// assert!(format!("{builder:?}").contains("prod/orders/app"));
    /// ```
    pub fn builder(secret_id: impl Into<String>) -> SecretsManagerAuthBuilder {
        SecretsManagerAuthBuilder::new(secret_id.into())
    }

    /// The secret's name or ARN, as given to the builder.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> rds_balancer::Result<()> {
    /// let secret = rds_balancer::SecretsManagerAuth::builder("prod/orders/app")
    ///     .region("eu-west-1")
    ///     .credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG", None)
    ///     .build()
    ///     .await?;
    /// assert_eq!(secret.secret_id(), "prod/orders/app");
    /// # Ok(()) }
    /// ```
    pub fn secret_id(&self) -> &str {
        &self.inner.secret_id
    }

    /// The AWS region the secret is read from (`None` only with a ready client that has none).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> rds_balancer::Result<()> {
    /// let secret = rds_balancer::SecretsManagerAuth::builder("prod/orders/app")
    ///     .region("us-east-2")
    ///     .credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG", None)
    ///     .build()
    ///     .await?;
    /// assert_eq!(secret.region(), Some("us-east-2"));
    /// # Ok(()) }
    /// ```
    pub fn region(&self) -> Option<&str> {
        self.inner.client.config().region().map(Region::as_ref)
    }

    /// How long a fetched value is served before it is fetched again.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> rds_balancer::Result<()> {
    /// let secret = rds_balancer::SecretsManagerAuth::builder("prod/orders/app")
    ///     .region("eu-west-1")
    ///     .credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG", None)
    ///     .build()
    ///     .await?;
    /// assert_eq!(secret.cache_ttl(), Duration::from_secs(3600));
    /// # Ok(()) }
    /// ```
    pub fn cache_ttl(&self) -> Duration {
        self.inner.cache_ttl
    }

    /// The secret's current value, all of its fields: from the cache while it is fresh, else
    /// fetched (`GetSecretValue`, `AWSCURRENT`). Handy to build the connection URL from the
    /// secret's `host`, `port` and `dbname`.
    ///
    /// # Errors
    ///
    /// [`Error::Credentials`](crate::Error::Credentials) when the call fails (its message names
    /// the operation, the secret id and the AWS error code, such as `ResourceNotFoundException`
    /// or `AccessDeniedException`), or the value is not a JSON object with a string `password`.
    ///
    /// ```no_run
    /// use rds_balancer::{RdsConnection, SecretsManagerAuth};
    ///
    /// # async fn run() -> rds_balancer::Result<()> {
    /// let auth = SecretsManagerAuth::builder("prod/orders/app").build().await?;
    /// let secret = auth.secret().await?;
    /// let host = secret.host.as_deref().unwrap_or("localhost");
    /// let port = secret.port.unwrap_or(5432);
    /// let dbname = secret.dbname.as_deref().unwrap_or("postgres");
    /// let db = RdsConnection::builder()
    ///     .writer(format!("postgres://{host}:{port}/{dbname}?sslmode=verify-full"))
    ///     .credentials(auth)
    ///     .build()
    ///     .await?;
    /// # let _ = db; Ok(()) }
    /// ```
    pub async fn secret(&self) -> Result<RdsSecret> {
        let (secret, _) = self.inner.current().await?;
        Ok(RdsSecret::clone(&secret))
    }
}

#[async_trait::async_trait]
impl CredentialProvider for SecretsManagerAuth {
    /// The secret's `username` and `password`, the same for every endpoint, expiring
    /// [`cache_ttl`](SecretsManagerAuthBuilder::cache_ttl) after they were fetched. A secret
    /// without `username` keeps the user name of the connection's URL.
    ///
    /// # Errors
    ///
    /// As [`SecretsManagerAuth::secret`].
    async fn credentials(&self, endpoint: &Endpoint) -> Result<Credentials> {
        let _ = endpoint;
        let (secret, expires_at) = self.inner.current().await?;
        Ok(Credentials {
            username: secret.username.clone(),
            password: secret.password.clone(),
            expires_at: Some(expires_at),
        })
    }

    /// Drops the cached secret: the next call fetches it again (after a rotation, its new
    /// value).
    fn rejected(&self, endpoint: &Endpoint) {
        let mut cache = self.inner.lock_cache();
        cache.generation += 1;
        if cache.secret.take().is_some() {
            tracing::debug!(
                %endpoint,
                secret_id = %self.inner.secret_id,
                "the database refused the secret's credentials; it will be fetched again",
            );
        }
    }

    /// `true`: a managed secret only travels over TLS.
    fn requires_tls(&self) -> bool {
        true
    }
}
