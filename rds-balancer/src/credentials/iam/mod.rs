//! [`IamAuth`]: RDS IAM authentication tokens as the passwords of new connections.
//!
//! A token is a SigV4-presigned `connect` URL for one host, port and database user, signed
//! locally (no API call) with the application's AWS credentials. RDS accepts it for at most 15
//! minutes after it was signed; connections opened with it stay open after it expires.

mod inner;
mod options;
#[cfg(test)]
mod tests;
mod token;

use std::fmt;
use std::sync::Arc;

use self::inner::Inner;
pub use self::options::IamAuthBuilder;
use super::{CredentialProvider, Credentials, Endpoint};
use crate::error::Result;

/// IAM database authentication: each new connection to a host gets an RDS auth token, signed
/// for that host's name and port, as its password.
///
/// A token is signed locally with the AWS credentials (no API call), kept per endpoint and
/// reused until it comes within [`renew_before`](IamAuthBuilder::renew_before) of its expiry
/// ([`token_lifetime`](IamAuthBuilder::token_lifetime) after it was signed, earlier when the AWS
/// credentials that signed it expire first); then the next call signs a new one. Connections
/// already open are not affected: RDS checks the token only when a connection opens.
/// [`rejected`](CredentialProvider::rejected) forgets an endpoint's token, so the next call
/// signs a fresh one.
///
/// The database user must be granted IAM authentication (`GRANT rds_iam TO app` on PostgreSQL,
/// `IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS'` on MySQL), the AWS identity needs
/// `rds-db:connect` on it, and the connection must use TLS.
///
/// Cloning is cheap: clones share one token cache. `Debug` shows the user, region, settings
/// and which endpoints have a token, never a token or an AWS secret.
///
/// ```
/// use rds_balancer::{CredentialProvider, Endpoint, IamAuth};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> rds_balancer::Result<()> {
/// let iam = IamAuth::builder("app")
///     .region("eu-west-1")
///     .credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG", None)
///     .build()
///     .await?;
/// let endpoint = Endpoint::new("orders-1.abc123.eu-west-1.rds.amazonaws.com", 5432);
/// let credentials = iam.credentials(&endpoint).await?;
/// assert_eq!(credentials.username.as_deref(), Some("app"));
/// assert!(credentials.password.expose().starts_with(
///     "orders-1.abc123.eu-west-1.rds.amazonaws.com:5432/?Action=connect&DBUser=app&"
/// ));
/// // The same token until it comes within five minutes of its expiry.
/// assert_eq!(iam.credentials(&endpoint).await?, credentials);
/// assert!(!format!("{iam:?} {credentials:?}").contains(credentials.password.expose()));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct IamAuth {
    inner: Arc<Inner>,
}

impl fmt::Debug for IamAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &self.inner;
        let mut cached: Vec<String> = inner
            .lock_tokens()
            .keys()
            .map(ToString::to_string)
            .collect();
        cached.sort_unstable();
        f.debug_struct("IamAuth")
            .field("username", &inner.username)
            .field("region", &inner.region.as_ref())
            .field("token_lifetime", &inner.lifetime)
            .field("renew_before", &inner.renew_before)
            .field("cached_endpoints", &cached)
            .finish()
    }
}

impl IamAuth {
    /// A builder of tokens for the database user `username`.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let builder = rds_balancer::IamAuth::builder("app")
    ///     .region("eu-west-1")
    ///     .renew_before(Duration::from_secs(600));
    /// # drop(builder);
    /// ```
    pub fn builder(username: impl Into<String>) -> IamAuthBuilder {
        IamAuthBuilder::new(username.into())
    }

    /// The database user the tokens are for.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> rds_balancer::Result<()> {
    /// let iam = rds_balancer::IamAuth::builder("app")
    ///     .region("eu-west-1")
    ///     .credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG", None)
    ///     .build()
    ///     .await?;
    /// assert_eq!(iam.username(), "app");
    /// assert_eq!(iam.region(), "eu-west-1");
    /// # Ok(()) }
    /// ```
    pub fn username(&self) -> &str {
        &self.inner.username
    }

    /// The AWS region the tokens are signed for.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> rds_balancer::Result<()> {
    /// let iam = rds_balancer::IamAuth::builder("app")
    ///     .region("us-east-2")
    ///     .credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG", None)
    ///     .build()
    ///     .await?;
    /// assert_eq!(iam.region(), "us-east-2");
    /// # Ok(()) }
    /// ```
    pub fn region(&self) -> &str {
        self.inner.region.as_ref()
    }
}

#[async_trait::async_trait]
impl CredentialProvider for IamAuth {
    /// RDS accepts IAM authentication over TLS only; the token must not travel unverified.
    fn requires_tls(&self) -> bool {
        true
    }

    /// The cached token for `endpoint` while it is fresh, else a newly signed one.
    ///
    /// # Errors
    ///
    /// [`Error::Credentials`](crate::Error::Credentials) when the endpoint's host cannot be
    /// signed for, or the AWS credentials cannot be loaded (the default chain found none, a
    /// role could not be assumed, instance metadata did not answer).
    async fn credentials(&self, endpoint: &Endpoint) -> Result<Credentials> {
        let inner = &self.inner;
        let now = inner.now();
        let cached = inner.lock_tokens().get(endpoint).cloned();
        let token = match cached {
            Some(token) if now < token.renew_at => token,
            _ => {
                let token = inner.sign(endpoint, now).await?;
                tracing::debug!(
                    %endpoint,
                    username = %inner.username,
                    expires_at = ?token.expires_at,
                    "signed a new RDS IAM auth token",
                );
                inner.lock_tokens().insert(endpoint.clone(), token.clone());
                token
            }
        };
        Ok(Credentials::new(inner.username.clone(), token.token).expiring_at(token.expires_at))
    }

    /// Forgets `endpoint`'s token: the next call signs a new one.
    fn rejected(&self, endpoint: &Endpoint) {
        if self.inner.lock_tokens().remove(endpoint).is_some() {
            tracing::debug!(%endpoint, "forgot a rejected RDS IAM auth token");
        }
    }
}
