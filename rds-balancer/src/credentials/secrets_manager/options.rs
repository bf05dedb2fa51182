//! [`SecretsManagerAuthBuilder`]: the settings of a [`SecretsManagerAuth`].

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_secretsmanager::Client;

use super::SecretsManagerAuth;
use super::inner::{Cache, Inner};
use crate::aws::{AwsSettings, CallSettings};
use crate::error::{Error, Result};

/// Default of [`SecretsManagerAuthBuilder::cache_ttl`].
const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(60 * 60);
/// The shortest [`SecretsManagerAuthBuilder::cache_ttl`] accepted.
const MIN_CACHE_TTL: Duration = Duration::from_secs(1);

/// Builds a [`SecretsManagerAuth`]; made by [`SecretsManagerAuth::builder`].
///
/// A ready [`client`](Self::client) wins over every other AWS setting. Without one, the region,
/// endpoint URL and AWS credentials come from the [`AwsSettings`] given to [`aws`](Self::aws)
/// (or set through the shortcuts [`region`](Self::region), [`endpoint_url`](Self::endpoint_url),
/// [`credentials`](Self::credentials) and [`sdk_config`](Self::sdk_config)), and otherwise from
/// the AWS default chain, as for [`RdsApiSource`](crate::RdsApiSource) and
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
    aws: AwsSettings,
    client: Option<Client>,
    cache_ttl: Duration,
    calls: CallSettings,
}

impl fmt::Debug for SecretsManagerAuthBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretsManagerAuthBuilder")
            .field("secret_id", &self.secret_id)
            .field("aws", &self.aws)
            .field("client", &self.client.as_ref().map(|_| ".."))
            .field("cache_ttl", &self.cache_ttl)
            .field("operation_timeout", &self.calls.operation_timeout)
            .field("max_attempts", &self.calls.max_attempts)
            .finish()
    }
}

impl SecretsManagerAuthBuilder {
    pub(super) fn new(secret_id: String) -> Self {
        SecretsManagerAuthBuilder {
            secret_id,
            aws: AwsSettings::new(),
            client: None,
            cache_ttl: DEFAULT_CACHE_TTL,
            calls: CallSettings::default(),
        }
    }

    /// Takes the region, endpoint URL, credentials and SDK configuration from `settings`,
    /// replacing those set before on this builder; the shortcuts called after it change this
    /// builder's copy only.
    ///
    /// Default: [`AwsSettings::new`], everything from the AWS default chain.
    ///
    /// ```
    /// use rds_balancer::{AwsSettings, SecretsManagerAuth};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> rds_balancer::Result<()> {
    /// let aws = AwsSettings::new()
    ///     .region("eu-west-1")
    ///     .credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG", None);
    /// let secret = SecretsManagerAuth::builder("prod/orders/app")
    ///     .aws(aws)
    ///     .endpoint_url("https://vpce-0abc.secretsmanager.eu-west-1.vpce.amazonaws.com")
    ///     .build()
    ///     .await?;
    /// assert_eq!(secret.region(), Some("eu-west-1"));
    /// # Ok(()) }
    /// ```
    pub fn aws(mut self, settings: AwsSettings) -> Self {
        self.aws = settings;
        self
    }

    /// The AWS region of the secret (`us-east-1`, ...). A shortcut for
    /// [`AwsSettings::region`] on this builder's settings.
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
        self.aws = self.aws.region(region);
        self
    }

    /// Sends the calls to this URL instead of the region's Secrets Manager endpoint: a VPC
    /// endpoint, or a local emulator in tests. A shortcut for [`AwsSettings::endpoint_url`] on
    /// this builder's settings.
    ///
    /// Default: the [`sdk_config`](Self::sdk_config)'s URL, else the environment's
    /// (`AWS_ENDPOINT_URL_SECRETS_MANAGER`, `AWS_ENDPOINT_URL`), else the region's endpoint.
    ///
    /// ```
    /// let builder = rds_balancer::SecretsManagerAuth::builder("app-db")
    ///     .endpoint_url("https://vpce-0abc.secretsmanager.eu-west-1.vpce.amazonaws.com");
    /// assert!(format!("{builder:?}").contains("vpce-0abc"));
    /// ```
    pub fn endpoint_url(mut self, url: impl Into<String>) -> Self {
        self.aws = self.aws.endpoint_url(url);
        self
    }

    /// Signs the calls with these AWS credentials instead of the default chain's. A shortcut
    /// for [`AwsSettings::credentials`] on this builder's settings.
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
        self.aws = self
            .aws
            .credentials(access_key_id, secret_access_key, session_token);
        self
    }

    /// Starts from this AWS SDK configuration (credentials, region, HTTP client, ...), as
    /// loaded by `aws_config::load_defaults` or built by hand; the other AWS settings of this
    /// builder apply on top of it. A shortcut for [`AwsSettings::sdk_config`] on this builder's
    /// settings.
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
        self.aws = self.aws.sdk_config(config);
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
    /// Default: 10 seconds. Zero is refused by [`build`](Self::build).
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let builder = rds_balancer::SecretsManagerAuth::builder("app-db")
    ///     .operation_timeout(Duration::from_secs(3));
    /// # drop(builder);
    /// ```
    pub fn operation_timeout(mut self, timeout: Duration) -> Self {
        self.calls.operation_timeout = timeout;
        self
    }

    /// How many times one call is attempted (the SDK's standard retry mode, with exponential
    /// back-off, for throttling, transient and transport errors); 1 disables retries. Not
    /// applied to a ready [`client`](Self::client).
    ///
    /// Default: 3. Zero is refused by [`build`](Self::build).
    ///
    /// ```
    /// let builder = rds_balancer::SecretsManagerAuth::builder("app-db").max_attempts(5);
    /// # drop(builder);
    /// ```
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.calls.max_attempts = attempts;
        self
    }

    /// Builds the provider, loading the AWS configuration when no ready client was given.
    /// Fetches nothing: the secret is read when credentials are first asked for.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the secret id is empty, the cache TTL is under 1 second; and,
    /// unless a ready client was given, when `max_attempts` or `operation_timeout` is 0, an
    /// [AWS setting](AwsSettings) cannot work (a region that is not a region name, an endpoint
    /// URL that is not an `http(s)` URL, explicit credentials with an empty part), or no region
    /// is configured.
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
                let sdk = self
                    .aws
                    .client_config("Secrets Manager", self.calls)
                    .await?;
                let mut config = aws_sdk_secretsmanager::config::Builder::from(&sdk);
                if let Some(url) = self.aws.explicit_endpoint_url() {
                    // Over AWS_ENDPOINT_URL_SECRETS_MANAGER too.
                    config = config.endpoint_url(url);
                }
                let endpoint_url = self.aws.explicit_endpoint_url().map(str::to_owned);
                (Client::from_conf(config.build()), endpoint_url)
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
