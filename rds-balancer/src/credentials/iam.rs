//! [`IamAuth`]: RDS IAM authentication tokens as the passwords of new connections.
//!
//! A token is a SigV4-presigned `connect` URL for one host, port and database user, signed
//! locally (no API call) with the application's AWS credentials. RDS accepts it for at most 15
//! minutes after it was signed; connections opened with it stay open after it expires.

use std::collections::HashMap;
use std::fmt;
use std::net::Ipv6Addr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_rds::auth_token::{AuthTokenGenerator, Config as TokenConfig};
use aws_sdk_rds::config::{ProvideCredentials, Region, SharedCredentialsProvider};
use aws_sdk_rds::primitives::{DateTime, DateTimeFormat};

use super::{CredentialProvider, Credentials, Endpoint, Secret};
use tracing::instrument::WithSubscriber;
use tracing::subscriber::NoSubscriber;

use crate::aws::{ExplicitCredentials, error_chain, http_client};
use crate::error::{Error, Result};

/// The longest lifetime RDS accepts for a token, and the default of
/// [`IamAuthBuilder::token_lifetime`].
const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(15 * 60);
/// Default of [`IamAuthBuilder::renew_before`] (at most a third of the token's lifetime).
const DEFAULT_RENEW_BEFORE: Duration = Duration::from_secs(5 * 60);

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

struct Inner {
    username: String,
    region: Region,
    credentials: SharedCredentialsProvider,
    /// Only its time source is used: the clock tokens are signed and renewed by.
    clock: SdkConfig,
    lifetime: Duration,
    renew_before: Duration,
    tokens: Mutex<HashMap<Endpoint, Token>>,
}

/// A signed token and when to stop handing it out.
#[derive(Clone)]
struct Token {
    token: Secret,
    expires_at: SystemTime,
    renew_at: SystemTime,
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
        IamAuthBuilder {
            username: username.into(),
            region: None,
            credentials: None,
            sdk_config: None,
            token_lifetime: MAX_TOKEN_LIFETIME,
            renew_before: None,
        }
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
    /// [`Error::Credentials`] when the endpoint's host cannot be signed for, or the AWS
    /// credentials cannot be loaded (the default chain found none, a role could not be
    /// assumed, instance metadata did not answer).
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

impl Inner {
    fn lock_tokens(&self) -> std::sync::MutexGuard<'_, HashMap<Endpoint, Token>> {
        // The map is consistent after every statement: a panic elsewhere cannot corrupt it.
        self.tokens.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Now, by the configuration's clock (the one the signer uses).
    fn now(&self) -> SystemTime {
        self.clock
            .time_source()
            .map_or_else(SystemTime::now, |clock| clock.now())
    }

    /// A new token for `endpoint`; `now` was read just before.
    async fn sign(&self, endpoint: &Endpoint, now: SystemTime) -> Result<Token> {
        let host = signing_host(&endpoint.host).ok_or_else(|| {
            Error::Credentials(
                format!("cannot sign an IAM auth token for the host name of {endpoint}").into(),
            )
        })?;
        let aws = self
            .credentials
            .provide_credentials()
            .await
            .map_err(|err| {
                Error::Credentials(
                    error_chain("could not load the AWS credentials", Some(&err)).into(),
                )
            })?;
        let aws_expiry = aws.expiry();
        let config = TokenConfig::builder()
            .hostname(host)
            .port(u64::from(endpoint.port))
            .username(encode_username(&self.username))
            .region(self.region.clone())
            .expires_in(self.lifetime.as_secs())
            .credentials(aws)
            .build()
            .map(AuthTokenGenerator::new);
        let token = match config {
            // aws-sigv4 logs the canonical request, session token included, at TRACE: nothing
            // is logged while signing.
            Ok(generator) => {
                generator
                    .auth_token(&self.clock)
                    .with_subscriber(NoSubscriber::default())
                    .await
            }
            Err(err) => Err(err),
        }
        .map_err(|err| {
            Error::Credentials(
                error_chain(
                    &format!("could not sign an IAM auth token for {endpoint}"),
                    Some(err.as_ref()),
                )
                .into(),
            )
        })?;
        let token = signature_last(token.as_str());
        // The token is valid from the second in its X-Amz-Date; should that not be readable,
        // the second before signing is a safe (earlier) stand-in.
        let signed_at = signed_at(&token).unwrap_or_else(|| whole_seconds(now));
        let mut expires_at = signed_at + self.lifetime;
        if let Some(aws_expiry) = aws_expiry {
            // A token stops working when the credentials that signed it expire.
            expires_at = expires_at.min(aws_expiry);
        }
        let renew_at = expires_at
            .checked_sub(self.renew_before)
            .unwrap_or(UNIX_EPOCH);
        Ok(Token {
            token: Secret::from(token),
            expires_at,
            renew_at,
        })
    }
}

/// Builds an [`IamAuth`]; made by [`IamAuth::builder`].
///
/// AWS credentials come, by order of precedence, from [`credentials`](Self::credentials), the
/// [`sdk_config`](Self::sdk_config), and otherwise the AWS default chain (environment, profile
/// files, web identity, ECS and EC2 instance metadata; SSO profiles and `credential_process`
/// are not compiled in), as for [`RdsApiSource`](crate::RdsApiSource). Credentials that expire
/// (an assumed role, instance metadata) are loaded again for each new token.
///
/// ```no_run
/// use std::time::Duration;
///
/// use rds_balancer::IamAuth;
///
/// # async fn run() -> rds_balancer::Result<()> {
/// // Credentials and region from the environment, instance metadata, ...
/// let iam = IamAuth::builder("app")
///     .renew_before(Duration::from_secs(10 * 60))
///     .build()
///     .await?;
/// # Ok(()) }
/// ```
#[must_use = "a builder does nothing until `build` is awaited"]
pub struct IamAuthBuilder {
    username: String,
    region: Option<String>,
    credentials: Option<ExplicitCredentials>,
    sdk_config: Option<SdkConfig>,
    token_lifetime: Duration,
    renew_before: Option<Duration>,
}

impl fmt::Debug for IamAuthBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IamAuthBuilder")
            .field("username", &self.username)
            .field("region", &self.region)
            .field("credentials", &self.credentials)
            .field("sdk_config", &self.sdk_config.as_ref().map(|_| ".."))
            .field("token_lifetime", &self.token_lifetime)
            .field("renew_before", &self.renew_before)
            .finish()
    }
}

impl IamAuthBuilder {
    /// The AWS region of the database (`us-east-1`, ...): tokens are signed for it.
    ///
    /// Default: the region of the [`sdk_config`](Self::sdk_config), else the default chain's
    /// (`AWS_REGION`, the profile, instance metadata). [`build`](Self::build) fails when none
    /// is found.
    ///
    /// ```
    /// let builder = rds_balancer::IamAuth::builder("app").region("ap-southeast-2");
    /// assert!(format!("{builder:?}").contains("ap-southeast-2"));
    /// ```
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// Signs the tokens with these AWS credentials instead of the default chain's.
    ///
    /// The secret key and the session token are kept in a redacting wrapper: no `Debug`, log
    /// line or error of rds-balancer shows them.
    ///
    /// Default: the [`sdk_config`](Self::sdk_config)'s credentials, else the default chain.
    ///
    /// ```
    /// use rds_balancer::IamAuth;
    ///
    /// let builder = IamAuth::builder("app")
    ///     .credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG", Some("FwoGZXIvYXdzEXAMPLE".into()));
    /// let shown = format!("{builder:?}");
    /// assert!(shown.contains("AKIDEXAMPLE"));
    /// assert!(!shown.contains("wJalrXUtnFEMI") && !shown.contains("FwoGZXIvYXdz"));
    /// ```
    pub fn credentials(
        mut self,
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
        session_token: Option<String>,
    ) -> Self {
        self.credentials = Some(ExplicitCredentials::new(
            access_key_id,
            secret_access_key,
            session_token,
        ));
        self
    }

    /// Takes the credentials provider, region and clock from this AWS SDK configuration, as
    /// loaded by `aws_config::load_defaults` or built by hand; [`region`](Self::region) and
    /// [`credentials`](Self::credentials) override it.
    ///
    /// Default: the configuration `aws_config` loads from the default chain.
    ///
    /// ```no_run
    /// use rds_balancer::IamAuth;
    ///
    /// # async fn run() -> rds_balancer::Result<()> {
    /// let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    /// let iam = IamAuth::builder("app").sdk_config(config).build().await?;
    /// # Ok(()) }
    /// ```
    pub fn sdk_config(mut self, config: SdkConfig) -> Self {
        self.sdk_config = Some(config);
        self
    }

    /// How long a token stays valid after it is signed (`X-Amz-Expires`), in whole seconds
    /// between 1 second and 15 minutes, the most RDS accepts.
    ///
    /// Default: 15 minutes.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let builder = rds_balancer::IamAuth::builder("app").token_lifetime(Duration::from_secs(600));
    /// # drop(builder);
    /// ```
    pub fn token_lifetime(mut self, lifetime: Duration) -> Self {
        self.token_lifetime = lifetime;
        self
    }

    /// How long before its expiry a token is replaced: from then on, new connections get a new
    /// token. It must be shorter than the [`token_lifetime`](Self::token_lifetime), and long
    /// enough for a connection to be opened with the old one.
    ///
    /// Default: 5 minutes, or a third of the [`token_lifetime`](Self::token_lifetime) when
    /// that is shorter (a 15-minute token is used for its first 10 minutes).
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let builder = rds_balancer::IamAuth::builder("app").renew_before(Duration::from_secs(600));
    /// # drop(builder);
    /// ```
    pub fn renew_before(mut self, margin: Duration) -> Self {
        self.renew_before = Some(margin);
        self
    }

    /// Builds the provider, loading the AWS configuration unless one was given. Signs nothing
    /// and makes no network call of its own (the default chain may, to find the region).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the user name is empty, the lifetime is not a whole number of
    /// seconds between 1 second and 15 minutes, `renew_before` is not shorter than it, or no
    /// region or no AWS credentials provider is configured.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// use rds_balancer::{ErrorKind, IamAuth};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let too_long = IamAuth::builder("app")
    ///     .region("eu-west-1")
    ///     .credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG", None)
    ///     .token_lifetime(Duration::from_secs(3600))
    ///     .build()
    ///     .await;
    /// assert_eq!(too_long.err().map(|err| err.kind()), Some(ErrorKind::Config));
    /// # }
    /// ```
    pub async fn build(self) -> Result<IamAuth> {
        if self.username.trim().is_empty() {
            return Err(Error::Config("the IAM database user name is empty".into()));
        }
        let lifetime = self.token_lifetime;
        if lifetime < Duration::from_secs(1)
            || lifetime > MAX_TOKEN_LIFETIME
            || lifetime.subsec_nanos() != 0
        {
            return Err(Error::Config(
                format!(
                    "token_lifetime must be a whole number of seconds from 1 s to 15 min \
                     (got {lifetime:?})"
                )
                .into(),
            ));
        }
        let renew_before = self
            .renew_before
            .unwrap_or_else(|| DEFAULT_RENEW_BEFORE.min(lifetime / 3));
        if renew_before >= lifetime {
            return Err(Error::Config(
                format!(
                    "renew_before ({renew_before:?}) must be shorter than token_lifetime \
                     ({lifetime:?})"
                )
                .into(),
            ));
        }
        let base = match self.sdk_config {
            Some(config) => config,
            None => {
                // Explicit settings go in before loading, so that the default chain does not
                // look for a region or credentials it is given.
                let mut loader =
                    aws_config::defaults(BehaviorVersion::latest()).http_client(http_client());
                if let Some(region) = &self.region {
                    loader = loader.region(Region::new(region.clone()));
                }
                if let Some(credentials) = &self.credentials {
                    loader = loader.credentials_provider(credentials.to_sdk());
                }
                loader.load().await
            }
        };
        let region = match self.region {
            Some(region) => Region::new(region),
            None => base.region().cloned().ok_or_else(|| {
                Error::Config(
                    "no AWS region for IAM auth tokens: set `region(..)`, AWS_REGION or a \
                     profile's region"
                        .into(),
                )
            })?,
        };
        let credentials = match &self.credentials {
            Some(credentials) => SharedCredentialsProvider::new(credentials.to_sdk()),
            None => base.credentials_provider().ok_or_else(|| {
                Error::Config(
                    "no AWS credentials for IAM auth tokens: set `credentials(..)` or give an \
                     SDK configuration with a credentials provider"
                        .into(),
                )
            })?,
        };
        // The configuration's clock, or the system clock when it has none (an RDS client
        // configuration always has one).
        let clock = aws_sdk_rds::config::Builder::from(&base)
            .build()
            .time_source()
            .ok_or_else(|| Error::Config("the AWS SDK configuration has no clock".into()))?;
        Ok(IamAuth {
            inner: Arc::new(Inner {
                username: self.username,
                region,
                credentials,
                clock: SdkConfig::builder().time_source(clock).build(),
                lifetime,
                renew_before,
                tokens: Mutex::new(HashMap::new()),
            }),
        })
    }
}

/// The host as the token names it: lower case (as the URL it is written into makes it, so
/// that the signature covers the same name), an IPv6 address in brackets. `None` for a name
/// the signer cannot put in a URL.
fn signing_host(host: &str) -> Option<String> {
    if let Ok(ip) = host.trim_matches(['[', ']']).parse::<Ipv6Addr>() {
        return Some(format!("[{ip}]"));
    }
    let valid = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    valid.then(|| host.to_ascii_lowercase())
}

/// `username` percent-encoded as SigV4 encodes query values (everything but `A-Z a-z 0-9 - _
/// . ~`). The SDK's signer writes the user name into the URL as it is; encoded first, a name
/// with `+`, `&`, `#`, `@` or a space gets the same token botocore and the AWS CLI give it.
fn encode_username(username: &str) -> String {
    let mut encoded = String::with_capacity(username.len());
    for byte in username.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// `token` with its `X-Amz-Signature` parameter moved to the end, where botocore (the AWS CLI)
/// and most SDKs put it; the Rust SDK puts `X-Amz-Security-Token` after it. The order does not
/// change the signature (SigV4 signs the parameters sorted), but a token byte-identical to
/// the reference implementation's is easier to check.
fn signature_last(token: &str) -> String {
    let Some((url, query)) = token.split_once('?') else {
        return token.to_owned();
    };
    let (signature, mut params): (Vec<&str>, Vec<&str>) = query
        .split('&')
        .partition(|param| param.starts_with("X-Amz-Signature="));
    params.extend(signature);
    format!("{url}?{}", params.join("&"))
}

/// When `token` was signed: its `X-Amz-Date` (`20240826T220000Z`).
fn signed_at(token: &str) -> Option<SystemTime> {
    let (_, rest) = token.split_once("X-Amz-Date=")?;
    let stamp = rest.get(..16)?.as_bytes();
    if !stamp.iter().all(u8::is_ascii_alphanumeric) {
        return None;
    }
    let part = |range: std::ops::Range<usize>| std::str::from_utf8(&stamp[range]).ok();
    let rfc3339 = format!(
        "{}-{}-{}T{}:{}:{}Z",
        part(0..4)?,
        part(4..6)?,
        part(6..8)?,
        part(9..11)?,
        part(11..13)?,
        part(13..15)?,
    );
    let parsed = DateTime::from_str(&rfc3339, DateTimeFormat::DateTime).ok()?;
    SystemTime::try_from(parsed).ok()
}

/// `time` without its fraction of a second.
fn whole_seconds(time: SystemTime) -> SystemTime {
    let seconds = time
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    UNIX_EPOCH + Duration::from_secs(seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signing_time_is_read_from_the_token_or_the_clock() {
        let time = UNIX_EPOCH + Duration::from_millis(1_500);
        assert_eq!(whole_seconds(time), UNIX_EPOCH + Duration::from_secs(1));
        let token = "h:5432/?Action=connect&DBUser=u&X-Amz-Date=20240826T220000Z&X-Amz-Expires=900";
        assert_eq!(
            signed_at(token),
            Some(UNIX_EPOCH + Duration::from_secs(1_724_709_600))
        );
        assert_eq!(signed_at("h:5432/?X-Amz-Date=2024"), None);
        assert_eq!(signed_at("h:5432/?X-Amz-Date=2024082éT220000Z"), None);
    }

    #[test]
    fn the_signature_goes_last() {
        assert_eq!(
            signature_last("h:1/?Action=connect&X-Amz-Signature=ab&X-Amz-Security-Token=t%2F"),
            "h:1/?Action=connect&X-Amz-Security-Token=t%2F&X-Amz-Signature=ab"
        );
        assert_eq!(
            signature_last("h:1/?Action=connect&X-Amz-Signature=ab"),
            "h:1/?Action=connect&X-Amz-Signature=ab"
        );
        assert_eq!(signature_last("no-query"), "no-query");
    }

    #[test]
    fn user_names_are_encoded_as_sigv4_encodes_query_values() {
        assert_eq!(encode_username("app_user-1.x~"), "app_user-1.x~");
        assert_eq!(encode_username("a+b c@d&e#é"), "a%2Bb%20c%40d%26e%23%C3%A9");
    }

    #[test]
    fn hosts_are_checked_and_normalised() {
        assert_eq!(
            signing_host("DB-1.Example.com").as_deref(),
            Some("db-1.example.com")
        );
        assert_eq!(signing_host("::1").as_deref(), Some("[::1]"));
        assert_eq!(signing_host("[fe80::1]").as_deref(), Some("[fe80::1]"));
        for bad in ["", "a b", "a/b", "a:1", "a?b", "é.example"] {
            assert_eq!(signing_host(bad), None, "{bad}");
        }
    }
}
