//! [`SecretsManagerAuth`]: the user name and password of new connections from an AWS Secrets
//! Manager secret in the RDS format, cached, and fetched again when the database refuses them
//! (a rotated password).

use std::error::Error as StdError;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::config::Region;
use aws_sdk_secretsmanager::config::retry::RetryConfig;
use aws_sdk_secretsmanager::config::timeout::TimeoutConfig;
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use serde_json::{Map, Value};

use super::{CredentialProvider, Credentials, Endpoint, Secret};
use crate::aws::{ExplicitCredentials, error_chain, http_client};
use crate::error::{Error, Result};

/// Default of [`SecretsManagerAuthBuilder::cache_ttl`].
const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(60 * 60);
/// The shortest [`SecretsManagerAuthBuilder::cache_ttl`] accepted.
const MIN_CACHE_TTL: Duration = Duration::from_secs(1);
/// Default of [`SecretsManagerAuthBuilder::operation_timeout`].
const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(10);
/// Default of [`SecretsManagerAuthBuilder::max_attempts`].
const DEFAULT_MAX_ATTEMPTS: u32 = 3;
/// The version stage fetched: the secret's current value, the one a rotation moves forward.
const VERSION_STAGE: &str = "AWSCURRENT";
/// The operation named in errors.
const OPERATION: &str = "GetSecretValue";

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

struct Inner {
    client: Client,
    secret_id: String,
    /// The endpoint URL given to the builder (`None` with a ready client).
    endpoint_url: Option<String>,
    cache_ttl: Duration,
    cache: Mutex<Cache>,
    /// Held while fetching, so that callers asking at once share one `GetSecretValue`.
    fetching: tokio::sync::Mutex<()>,
}

/// The cached secret, and how many times a cached copy was dropped as rejected.
#[derive(Default)]
struct Cache {
    secret: Option<Cached>,
    generation: u64,
}

/// One fetched value.
struct Cached {
    secret: Arc<RdsSecret>,
    /// When it was fetched, to tell whether it is fresh (monotonic).
    fetched: Instant,
    /// When the credentials made from it expire: fetched + the cache's TTL (wall clock).
    expires_at: SystemTime,
    /// The cache's generation when the fetch began: a copy fetched before a rejection is not
    /// served after it.
    generation: u64,
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
        SecretsManagerAuthBuilder {
            secret_id: secret_id.into(),
            region: None,
            endpoint_url: None,
            credentials: None,
            sdk_config: None,
            client: None,
            cache_ttl: DEFAULT_CACHE_TTL,
            operation_timeout: DEFAULT_OPERATION_TIMEOUT,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
        }
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
    /// [`Error::Credentials`] when the call fails (its message names the operation, the secret
    /// id and the AWS error code, such as `ResourceNotFoundException` or
    /// `AccessDeniedException`), or the value is not a JSON object with a string `password`.
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

impl Inner {
    fn lock_cache(&self) -> MutexGuard<'_, Cache> {
        // The cache is consistent after every statement: a panic elsewhere cannot corrupt it.
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The cached value when it is fresh and not rejected since it was fetched.
    fn fresh(&self) -> Option<(Arc<RdsSecret>, SystemTime)> {
        let cache = self.lock_cache();
        cache
            .secret
            .as_ref()
            .filter(|cached| {
                cached.generation == cache.generation && cached.fetched.elapsed() < self.cache_ttl
            })
            .map(|cached| (Arc::clone(&cached.secret), cached.expires_at))
    }

    /// The secret and when the credentials made from it expire: cached, or fetched (once for
    /// every caller waiting at the same time).
    async fn current(&self) -> Result<(Arc<RdsSecret>, SystemTime)> {
        if let Some(fresh) = self.fresh() {
            return Ok(fresh);
        }
        let _fetching = self.fetching.lock().await;
        // Another caller may have fetched it while this one waited.
        if let Some(fresh) = self.fresh() {
            return Ok(fresh);
        }
        let generation = self.lock_cache().generation;
        let fetched = Instant::now();
        let expires_at = SystemTime::now() + self.cache_ttl;
        let secret = Arc::new(self.fetch().await?);
        tracing::debug!(
            secret_id = %self.secret_id,
            version_id = secret.version_id.as_deref().unwrap_or("?"),
            ?expires_at,
            "fetched the database credentials from Secrets Manager",
        );
        let mut cache = self.lock_cache();
        // Rejected while fetching: this copy may be the one refused; serve it to this caller
        // only.
        if cache.generation == generation {
            cache.secret = Some(Cached {
                secret: Arc::clone(&secret),
                fetched,
                expires_at,
                generation,
            });
        }
        Ok((secret, expires_at))
    }

    /// `GetSecretValue` for the `AWSCURRENT` version, parsed.
    async fn fetch(&self) -> Result<RdsSecret> {
        let output = self
            .client
            .get_secret_value()
            .secret_id(&self.secret_id)
            .version_stage(VERSION_STAGE)
            .send()
            .await
            .map_err(|err| from_sdk(&self.secret_id, err))?;
        let Some(text) = output.secret_string() else {
            return Err(invalid(
                &self.secret_id,
                "has no SecretString (a binary secret?)",
            ));
        };
        parse(text, output.version_id())
            .map_err(|why| invalid(&self.secret_id, &format!("is not an RDS secret: {why}")))
    }
}

/// The fields of an RDS database secret (the JSON object Secrets Manager stores for RDS and
/// its rotation functions update). The password is a [`Secret`]: `Debug` never shows it.
///
/// Made by [`SecretsManagerAuth::secret`]:
///
/// ```no_run
/// use rds_balancer::{RdsSecret, SecretsManagerAuth};
///
/// /// The URL of the host the secret was made for, without credentials.
/// fn url(secret: &RdsSecret) -> String {
///     format!(
///         "postgres://{}:{}/{}?sslmode=verify-full",
///         secret.host.as_deref().unwrap_or("localhost"),
///         secret.port.unwrap_or(5432),
///         secret.dbname.as_deref().unwrap_or("postgres"),
///     )
/// }
///
/// # async fn run() -> rds_balancer::Result<()> {
/// let secret = SecretsManagerAuth::builder("prod/orders/app").build().await?.secret().await?;
/// assert!(!format!("{secret:?}").contains(secret.password.expose()));
/// println!("connecting to {}", url(&secret));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RdsSecret {
    /// `username`; `None` when the secret has none (the connection's URL then names the user).
    pub username: Option<String>,
    /// `password`. Never printed.
    pub password: Secret,
    /// `host`: the cluster or instance endpoint the secret was made for.
    pub host: Option<String>,
    /// `port` (a number or a string of digits in the secret).
    pub port: Option<u16>,
    /// `engine` (`postgres`, `mysql`, ...).
    pub engine: Option<String>,
    /// `dbname`.
    pub dbname: Option<String>,
    /// The id of the secret's version that was read.
    pub version_id: Option<String>,
}

/// Parses an RDS secret. The error names the field at fault, never a value (a malformed
/// secret may still hold the password).
fn parse(text: &str, version_id: Option<&str>) -> std::result::Result<RdsSecret, String> {
    let value: Value = serde_json::from_str(text).map_err(|err| {
        // serde_json's message may quote part of the input: keep only its category and place.
        format!(
            "not valid JSON ({:?} error at line {} column {})",
            err.classify(),
            err.line(),
            err.column()
        )
    })?;
    let Value::Object(fields) = value else {
        return Err("not a JSON object".to_owned());
    };
    let password = match string(&fields, "password")? {
        Some(password) if !password.is_empty() => password,
        Some(_) => return Err("`password` is empty".to_owned()),
        None => return Err("no `password`".to_owned()),
    };
    let port = match fields.get("port") {
        None | Some(Value::Null) => None,
        Some(Value::Number(number)) => Some(
            number
                .as_u64()
                .and_then(|port| u16::try_from(port).ok())
                .ok_or("`port` is not a port number")?,
        ),
        Some(Value::String(text)) => Some(
            text.trim()
                .parse::<u16>()
                .map_err(|_| "`port` is not a port number")?,
        ),
        Some(_) => return Err("`port` is not a port number".to_owned()),
    };
    Ok(RdsSecret {
        username: string(&fields, "username")?.filter(|name| !name.is_empty()),
        password: Secret::new(password),
        host: string(&fields, "host")?,
        port,
        engine: string(&fields, "engine")?,
        dbname: string(&fields, "dbname")?,
        version_id: version_id.map(str::to_owned),
    })
}

/// The string field `key`, `None` when absent or null.
fn string(fields: &Map<String, Value>, key: &str) -> std::result::Result<Option<String>, String> {
    match fields.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(_) => Err(format!("`{key}` is not a string")),
    }
}

/// A secret that could be read but not used.
fn invalid(secret_id: &str, why: &str) -> Error {
    Error::Credentials(format!("{OPERATION} for secret {secret_id}: the value {why}").into())
}

/// An SDK error as an [`Error::Credentials`]: the operation, the secret id, the AWS error code
/// and the service's message; nothing that could hold a secret (no raw response, no request).
fn from_sdk<E, R>(secret_id: &str, err: SdkError<E, R>) -> Error
where
    E: ProvideErrorMetadata + StdError + 'static,
    R: fmt::Debug,
{
    let what = match &err {
        SdkError::ServiceError(context) => {
            let service = context.err();
            let code = service.code().unwrap_or("an unnamed error");
            match service.message() {
                Some(message) => format!("{code}: {message}"),
                None => error_chain(code, service.source()),
            }
        }
        SdkError::TimeoutError(_) => {
            "timed out (the operation timeout elapsed, retries included)".to_owned()
        }
        SdkError::DispatchFailure(failure) => {
            let what = if failure.is_timeout() {
                "timed out reaching the endpoint"
            } else if failure.is_io() {
                "could not reach the endpoint"
            } else {
                "could not send the request"
            };
            error_chain(what, StdError::source(&err))
        }
        SdkError::ResponseError(_) => error_chain("unreadable response", StdError::source(&err)),
        SdkError::ConstructionFailure(_) => {
            error_chain("could not build the request", StdError::source(&err))
        }
        _ => error_chain("request failed", StdError::source(&err)),
    };
    Error::Credentials(format!("{OPERATION} for secret {secret_id} failed: {what}").into())
}

/// Builds a [`SecretsManagerAuth`]; made by [`SecretsManagerAuth::builder`].
///
/// AWS credentials come, by order of precedence, from a ready [`client`](Self::client) (which
/// wins over every other setting), [`credentials`](Self::credentials), the
/// [`sdk_config`](Self::sdk_config), and otherwise the AWS default chain (environment, profile
/// files, web identity, ECS and EC2 instance metadata; SSO profiles and `credential_process`
/// are not compiled in), as for [`RdsApiSource`](crate::RdsApiSource) and
/// [`IamAuth`](crate::IamAuth).
///
/// ```no_run
/// use std::time::Duration;
///
/// use rds_balancer::SecretsManagerAuth;
///
/// # async fn run() -> rds_balancer::Result<()> {
/// let secret = SecretsManagerAuth::builder("arn:aws:secretsmanager:eu-west-1:123456789012:secret:orders-app-AbCdEf")
///     .region("eu-west-1")
///     .cache_ttl(Duration::from_secs(30 * 60))
///     .operation_timeout(Duration::from_secs(5))
///     .build()
///     .await?;
/// # let _ = secret; Ok(()) }
/// ```
#[must_use = "a builder does nothing until `build` is awaited"]
pub struct SecretsManagerAuthBuilder {
    secret_id: String,
    region: Option<String>,
    endpoint_url: Option<String>,
    credentials: Option<ExplicitCredentials>,
    sdk_config: Option<SdkConfig>,
    client: Option<Client>,
    cache_ttl: Duration,
    operation_timeout: Duration,
    max_attempts: u32,
}

impl fmt::Debug for SecretsManagerAuthBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretsManagerAuthBuilder")
            .field("secret_id", &self.secret_id)
            .field("region", &self.region)
            .field("endpoint_url", &self.endpoint_url)
            .field("credentials", &self.credentials)
            .field("sdk_config", &self.sdk_config.as_ref().map(|_| ".."))
            .field("client", &self.client.as_ref().map(|_| ".."))
            .field("cache_ttl", &self.cache_ttl)
            .field("operation_timeout", &self.operation_timeout)
            .field("max_attempts", &self.max_attempts)
            .finish()
    }
}

impl SecretsManagerAuthBuilder {
    /// The AWS region of the secret (`us-east-1`, ...).
    ///
    /// Default: the region of the [`sdk_config`](Self::sdk_config), else the default chain's
    /// (`AWS_REGION`, the profile, instance metadata). [`build`](Self::build) fails when none
    /// is found.
    ///
    /// ```
    /// let builder = rds_balancer::SecretsManagerAuth::builder("app-db").region("ap-southeast-2");
    /// assert!(format!("{builder:?}").contains("ap-southeast-2"));
    /// ```
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// Sends the calls to this URL instead of the region's Secrets Manager endpoint: a VPC
    /// endpoint, or a local emulator in tests.
    ///
    /// Default: the region's endpoint (or the [`sdk_config`](Self::sdk_config)'s URL).
    ///
    /// ```
    /// let builder = rds_balancer::SecretsManagerAuth::builder("app-db")
    ///     .endpoint_url("https://vpce-0abc.secretsmanager.eu-west-1.vpce.amazonaws.com");
    /// assert!(format!("{builder:?}").contains("vpce-0abc"));
    /// ```
    pub fn endpoint_url(mut self, url: impl Into<String>) -> Self {
        self.endpoint_url = Some(url.into());
        self
    }

    /// Signs the calls with these AWS credentials instead of the default chain's.
    ///
    /// The secret key and the session token are kept in a redacting wrapper: no `Debug`, log
    /// line or error of rds-balancer shows them.
    ///
    /// Default: the [`sdk_config`](Self::sdk_config)'s credentials, else the default chain.
    ///
    /// ```
    /// use rds_balancer::SecretsManagerAuth;
    ///
    /// let builder = SecretsManagerAuth::builder("app-db")
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

    /// Starts from this AWS SDK configuration (credentials, region, HTTP client, ...), as
    /// loaded by `aws_config::load_defaults` or built by hand; the setters of this builder
    /// apply on top of it.
    ///
    /// Default: the configuration `aws_config` loads from the default chain.
    ///
    /// ```no_run
    /// use rds_balancer::SecretsManagerAuth;
    ///
    /// # async fn run() -> rds_balancer::Result<()> {
    /// let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    /// let secret = SecretsManagerAuth::builder("app-db").sdk_config(config).build().await?;
    /// # let _ = secret; Ok(()) }
    /// ```
    pub fn sdk_config(mut self, config: SdkConfig) -> Self {
        self.sdk_config = Some(config);
        self
    }

    /// Uses this ready Secrets Manager client as it is: it wins over every other AWS setting of
    /// this builder (region, endpoint, credentials, SDK configuration, timeout and attempts).
    ///
    /// Default: a client built from the other settings.
    ///
    /// ```no_run
    /// use rds_balancer::SecretsManagerAuth;
    ///
    /// # async fn run() -> rds_balancer::Result<()> {
    /// let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    /// let client = aws_sdk_secretsmanager::Client::new(&config);
    /// let secret = SecretsManagerAuth::builder("app-db").client(client).build().await?;
    /// # let _ = secret; Ok(()) }
    /// ```
    pub fn client(mut self, client: Client) -> Self {
        self.client = Some(client);
        self
    }

    /// How long a fetched value is served (to every endpoint) before it is fetched again; the
    /// credentials it gives expire then, so the connection asks for new ones before. A refused
    /// password drops the cache at once, whatever is left of it. At least 1 second.
    ///
    /// Default: 1 hour.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let builder = rds_balancer::SecretsManagerAuth::builder("app-db")
    ///     .cache_ttl(Duration::from_secs(5 * 60));
    /// # drop(builder);
    /// ```
    pub fn cache_ttl(mut self, ttl: Duration) -> Self {
        self.cache_ttl = ttl;
        self
    }

    /// How long one `GetSecretValue` may take, retries included, before it fails with an
    /// [`Error::Credentials`]. Not applied to a ready [`client`](Self::client).
    ///
    /// Default: 10 seconds.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let builder = rds_balancer::SecretsManagerAuth::builder("app-db")
    ///     .operation_timeout(Duration::from_secs(3));
    /// # drop(builder);
    /// ```
    pub fn operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = timeout;
        self
    }

    /// How many times one call is attempted (the SDK's standard retry mode, with exponential
    /// back-off, for throttling, transient and transport errors); 1 disables retries. Not
    /// applied to a ready [`client`](Self::client).
    ///
    /// Default: 3.
    ///
    /// ```
    /// let builder = rds_balancer::SecretsManagerAuth::builder("app-db").max_attempts(5);
    /// # drop(builder);
    /// ```
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// Builds the provider, loading the AWS configuration when no ready client was given.
    /// Fetches nothing: the secret is read when credentials are first asked for.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the secret id is empty, the cache TTL is under 1 second,
    /// `max_attempts` is 0, or no region is configured (unless a ready client was given).
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// use rds_balancer::{ErrorKind, SecretsManagerAuth};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let too_short = SecretsManagerAuth::builder("app-db")
    ///     .region("eu-west-1")
    ///     .credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG", None)
    ///     .cache_ttl(Duration::from_millis(10))
    ///     .build()
    ///     .await;
    /// assert_eq!(too_short.err().map(|err| err.kind()), Some(ErrorKind::Config));
    /// # }
    /// ```
    pub async fn build(self) -> Result<SecretsManagerAuth> {
        if self.secret_id.trim().is_empty() {
            return Err(Error::Config(
                "the Secrets Manager secret id is empty".into(),
            ));
        }
        if self.cache_ttl < MIN_CACHE_TTL {
            return Err(Error::Config(
                format!(
                    "cache_ttl must be at least 1 second (got {:?})",
                    self.cache_ttl
                )
                .into(),
            ));
        }
        let (client, endpoint_url) = match self.client {
            Some(client) => (client, None),
            None => {
                if self.max_attempts == 0 {
                    return Err(Error::Config("max_attempts must be at least 1".into()));
                }
                let base = match self.sdk_config {
                    Some(config) => config,
                    None => {
                        // Explicit settings go in before loading, so that the default chain
                        // does not look for a region or credentials it is given.
                        let mut loader = aws_config::defaults(BehaviorVersion::latest())
                            .http_client(http_client());
                        if let Some(region) = &self.region {
                            loader = loader.region(Region::new(region.clone()));
                        }
                        if let Some(credentials) = &self.credentials {
                            loader = loader.credentials_provider(credentials.to_sdk());
                        }
                        loader.load().await
                    }
                };
                let mut config = aws_sdk_secretsmanager::config::Builder::from(&base);
                if base.http_client().is_none() {
                    config = config.http_client(http_client());
                }
                if let Some(region) = self.region {
                    config = config.region(Region::new(region));
                }
                if let Some(url) = &self.endpoint_url {
                    config = config.endpoint_url(url);
                }
                if let Some(credentials) = &self.credentials {
                    config = config.credentials_provider(credentials.to_sdk());
                }
                let timeouts = base
                    .timeout_config()
                    .map(TimeoutConfig::to_builder)
                    .unwrap_or_default()
                    .operation_timeout(self.operation_timeout)
                    .build();
                let retries = base
                    .retry_config()
                    .cloned()
                    .unwrap_or_else(RetryConfig::standard)
                    .with_max_attempts(self.max_attempts);
                let config = config
                    .timeout_config(timeouts)
                    .retry_config(retries)
                    .build();
                if config.region().is_none() {
                    return Err(Error::Config(
                        "no AWS region for Secrets Manager: set `region(..)`, AWS_REGION or a \
                         profile's region"
                            .into(),
                    ));
                }
                (Client::from_conf(config), self.endpoint_url)
            }
        };
        Ok(SecretsManagerAuth {
            inner: Arc::new(Inner {
                client,
                secret_id: self.secret_id,
                endpoint_url,
                cache_ttl: self.cache_ttl,
                cache: Mutex::new(Cache::default()),
                fetching: tokio::sync::Mutex::new(()),
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standard_rds_secret_is_parsed() {
        let text = r#"{"engine":"postgres","host":"orders.cluster-abc.eu-west-1.rds.amazonaws.com",
            "username":"app","password":"p@ss\"word","dbname":"orders","port":5432,
            "dbClusterIdentifier":"orders"}"#;
        let secret = parse(text, Some("v1")).unwrap();
        assert_eq!(secret.username.as_deref(), Some("app"));
        assert_eq!(secret.password.expose(), "p@ss\"word");
        assert_eq!(
            secret.host.as_deref(),
            Some("orders.cluster-abc.eu-west-1.rds.amazonaws.com")
        );
        assert_eq!(secret.port, Some(5432));
        assert_eq!(secret.engine.as_deref(), Some("postgres"));
        assert_eq!(secret.dbname.as_deref(), Some("orders"));
        assert_eq!(secret.version_id.as_deref(), Some("v1"));
        assert!(!format!("{secret:?}").contains("p@ss"));

        let minimal = parse(r#"{"password":"x","port":"3306","host":null}"#, None).unwrap();
        assert_eq!(minimal.username, None);
        assert_eq!(minimal.port, Some(3306));
        assert_eq!(minimal.host, None);
    }

    #[test]
    fn a_malformed_secret_is_refused_without_showing_its_value() {
        for (text, why) in [
            (r#"{"username":"app"}"#, "no `password`"),
            (r#"{"password":""}"#, "`password` is empty"),
            (r#"{"password":4242424242}"#, "`password` is not a string"),
            (
                r#"{"password":"x","port":"hunter2"}"#,
                "`port` is not a port number",
            ),
            (
                r#"{"password":"x","port":70000}"#,
                "`port` is not a port number",
            ),
            (
                r#"{"password":"x","username":["hunter2"]}"#,
                "`username` is not a string",
            ),
            (r#"["hunter2"]"#, "not a JSON object"),
        ] {
            let err = parse(text, None).unwrap_err();
            assert_eq!(err, why, "{text}");
        }
        let err = parse(r#"{"password":"hunter2"#, None).unwrap_err();
        assert!(
            err.starts_with("not valid JSON (Eof error at line 1"),
            "{err}"
        );
        let err = parse("hunter2", None).unwrap_err();
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn errors_name_the_operation_the_secret_and_the_code() {
        use aws_sdk_secretsmanager::error::ErrorMetadata;
        use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError;

        let meta = ErrorMetadata::builder()
            .code("ResourceNotFoundException")
            .message("Secrets Manager can't find the specified secret.")
            .build();
        let err = from_sdk(
            "app-db",
            SdkError::service_error(GetSecretValueError::generic(meta), ()),
        );
        assert_eq!(err.kind(), crate::ErrorKind::Credentials);
        assert_eq!(
            err.to_string(),
            "could not get database credentials: GetSecretValue for secret app-db failed: \
             ResourceNotFoundException: Secrets Manager can't find the specified secret."
        );
        let err = from_sdk::<GetSecretValueError, ()>("app-db", SdkError::timeout_error("elapsed"));
        assert!(
            err.to_string()
                .contains("GetSecretValue for secret app-db failed: timed out")
        );
    }
}
