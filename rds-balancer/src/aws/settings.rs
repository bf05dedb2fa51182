//! [`AwsSettings`]: the region, endpoint URL, credentials and SDK configuration of the AWS
//! parts, resolved into one `SdkConfig` here and only here; and [`CallSettings`], the timeout
//! and attempts of the clients built from it.

use std::fmt;
use std::time::Duration;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_rds::config::retry::RetryConfig;
use aws_sdk_rds::config::timeout::TimeoutConfig;
use aws_sdk_rds::config::{Region, SharedCredentialsProvider};

use super::credentials::ExplicitCredentials;
use super::http_client;
use crate::error::{Error, Result};

/// Where the AWS parts of rds-balancer ([`RdsApiSource`](crate::RdsApiSource),
/// [`IamAuth`](crate::IamAuth), `SecretsManagerAuth`) find AWS: the region, the endpoint URL,
/// explicit credentials and a base SDK configuration. Give one value to each builder with its
/// `aws(..)` setter, or set the same four things on a builder through its shortcuts.
///
/// Each setting comes, by order of precedence, from its setter here, the
/// [`sdk_config`](Self::sdk_config), and otherwise the AWS default chain, loaded when a
/// builder's `build()` is awaited:
///
/// - region: `AWS_REGION`, the profile, instance metadata; `build()` fails when none is found;
/// - credentials: the environment, profile files, web identity, ECS and EC2 instance metadata
///   (SSO profiles and `credential_process` are not compiled in);
/// - endpoint URL: `AWS_ENDPOINT_URL` and its per-service variants, else the region's endpoint;
/// - everything else (HTTP client, clock, retry and timeout defaults) from the SDK
///   configuration, or `aws_config`'s defaults with an HTTPS client on rustls.
///
/// Cloning copies the settings (an SDK configuration's providers are shared). `Debug` shows the
/// region, the endpoint URL and the access key id, never the secret access key or the session
/// token, and of an SDK configuration only that there is one.
///
/// ```no_run
/// use rds_balancer::{AwsSettings, IamAuth, RdsApiSource};
///
/// # async fn run() -> rds_balancer::Result<()> {
/// // One place for the AWS settings of the topology source and the IAM tokens.
/// let aws = AwsSettings::new().region("eu-west-1");
/// let source = RdsApiSource::builder("orders-cluster").aws(aws.clone()).build().await?;
/// let iam = IamAuth::builder("app").aws(aws).build().await?;
/// # let _ = (source, iam); Ok(()) }
/// ```
#[derive(Clone, Default)]
#[must_use = "settings do nothing until passed to a builder's `aws(..)`"]
pub struct AwsSettings {
    region: Option<String>,
    endpoint_url: Option<String>,
    credentials: Option<ExplicitCredentials>,
    sdk_config: Option<SdkConfig>,
}

impl fmt::Debug for AwsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsSettings")
            .field("region", &self.region)
            .field("endpoint_url", &self.endpoint_url)
            .field("credentials", &self.credentials)
            .field("sdk_config", &self.sdk_config.as_ref().map(|_| ".."))
            .finish()
    }
}

impl AwsSettings {
    /// No setting of its own: everything from the AWS default chain.
    ///
    /// ```
    /// let aws = rds_balancer::AwsSettings::new();
    /// assert_eq!(
    ///     format!("{aws:?}"),
    ///     "AwsSettings { region: None, endpoint_url: None, credentials: None, sdk_config: None }"
    /// );
    /// ```
    pub fn new() -> Self {
        AwsSettings::default()
    }

    /// The AWS region (`us-east-1`, ...): where the cluster, the secret and the database are,
    /// and what IAM auth tokens are signed for.
    ///
    /// Default: the region of the [`sdk_config`](Self::sdk_config), else the default chain's
    /// (`AWS_REGION`, the profile, instance metadata).
    ///
    /// ```
    /// let aws = rds_balancer::AwsSettings::new().region("ap-southeast-2");
    /// assert!(format!("{aws:?}").contains("ap-southeast-2"));
    /// ```
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// Sends the API calls to this URL instead of the region's endpoint: a local emulator in
    /// tests, which serves every service at one URL. It applies to every service these settings
    /// are given to; a VPC endpoint serves one service, so set it on that builder alone (its
    /// `endpoint_url(..)` shortcut). [`IamAuth`](crate::IamAuth) calls no API and ignores it.
    ///
    /// Default: the [`sdk_config`](Self::sdk_config)'s URL, else the environment's
    /// (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_RDS`, ...), else the region's endpoint.
    ///
    /// ```
    /// let aws = rds_balancer::AwsSettings::new().endpoint_url("http://127.0.0.1:5000");
    /// assert!(format!("{aws:?}").contains("http://127.0.0.1:5000"));
    /// ```
    pub fn endpoint_url(mut self, url: impl Into<String>) -> Self {
        self.endpoint_url = Some(url.into());
        self
    }

    /// Signs with these AWS credentials instead of the default chain's.
    ///
    /// The secret key and the session token are kept in a redacting wrapper: no `Debug`, log
    /// line or error of rds-balancer shows them.
    ///
    /// Default: the [`sdk_config`](Self::sdk_config)'s credentials provider, else the default
    /// chain.
    ///
    /// ```
    /// use rds_balancer::AwsSettings;
    ///
    /// let aws = AwsSettings::new().credentials(
    ///     "AKIDEXAMPLE",
    ///     "wJalrXUtnFEMI/K7MDENG",
    ///     Some("FwoGZXIvYXdzEXAMPLE".into()),
    /// );
    /// let shown = format!("{aws:?}");
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

    /// Starts from this AWS SDK configuration (credentials provider, region, endpoint URL, HTTP
    /// client, clock, ...), as loaded by `aws_config::load_defaults` or built by hand, instead
    /// of loading the default chain; the other setters apply on top of it, whatever their
    /// order.
    ///
    /// Default: the configuration `aws_config` loads from the default chain.
    ///
    /// ```no_run
    /// use rds_balancer::{AwsSettings, RdsApiSource};
    ///
    /// # async fn run() -> rds_balancer::Result<()> {
    /// let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    /// let aws = AwsSettings::new().sdk_config(config).region("eu-west-1");
    /// let source = RdsApiSource::builder("orders-cluster").aws(aws).build().await?;
    /// # let _ = source; Ok(()) }
    /// ```
    pub fn sdk_config(mut self, config: SdkConfig) -> Self {
        self.sdk_config = Some(config);
        self
    }

    /// The endpoint URL set here, which a client builder applies once more, over a URL the
    /// environment names for its service alone (`AWS_ENDPOINT_URL_RDS`, ...).
    pub(crate) fn explicit_endpoint_url(&self) -> Option<&str> {
        self.endpoint_url.as_deref()
    }

    /// Refuses settings that cannot work: a region that is not a region name, an endpoint URL
    /// that is not an `http` or `https` URL with a host, explicit credentials with an empty
    /// part. The errors never show a secret.
    fn validate(&self) -> Result<()> {
        if let Some(region) = &self.region {
            let valid = !region.is_empty()
                && region
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !valid {
                return Err(Error::Config(
                    format!("the AWS region {region:?} is not a region name such as `us-east-1`")
                        .into(),
                ));
            }
        }
        if let Some(endpoint_url) = &self.endpoint_url {
            let valid = url::Url::parse(endpoint_url).is_ok_and(|url| {
                matches!(url.scheme(), "http" | "https") && url.host_str().is_some()
            });
            if !valid {
                return Err(Error::Config(
                    format!(
                        "the AWS endpoint URL {endpoint_url:?} is not an http or https URL with a \
                         host"
                    )
                    .into(),
                ));
            }
        }
        if let Some(credentials) = &self.credentials {
            credentials.validate()?;
        }
        Ok(())
    }

    /// These settings as one SDK configuration, and its region: the base configuration (given,
    /// or loaded from the default chain with the explicit region and credentials, so that the
    /// chain does not look for them), with the explicit settings on top and rds-balancer's
    /// HTTPS client when it has none.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when a setting cannot work (see `validate`) or no region is found;
    /// `service` names what needs one.
    pub(crate) async fn resolve(&self, service: &str) -> Result<(SdkConfig, Region)> {
        self.validate()?;
        let base = match &self.sdk_config {
            Some(config) => config.clone(),
            None => {
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
        let mut config = base.to_builder();
        if base.http_client().is_none() {
            config = config.http_client(http_client());
        }
        if let Some(region) = &self.region {
            config = config.region(Region::new(region.clone()));
        }
        if let Some(url) = &self.endpoint_url {
            config = config.endpoint_url(url);
        }
        if let Some(credentials) = &self.credentials {
            config =
                config.credentials_provider(SharedCredentialsProvider::new(credentials.to_sdk()));
        }
        let config = config.build();
        let region = config.region().cloned().ok_or_else(|| {
            Error::Config(
                format!(
                    "no AWS region for {service}: set `region(..)`, AWS_REGION or a profile's \
                     region"
                )
                .into(),
            )
        })?;
        Ok((config, region))
    }

    /// The SDK configuration of a client of `service` that calls it as `calls` says: these
    /// settings [resolved](Self::resolve), with the operation timeout and the number of
    /// attempts over the configuration's own timeout and retry settings.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when `calls` allows no attempt or no time, a setting cannot work, or no
    /// region is found.
    pub(crate) async fn client_config(
        &self,
        service: &str,
        calls: CallSettings,
    ) -> Result<SdkConfig> {
        if calls.max_attempts == 0 {
            return Err(Error::Config("max_attempts must be at least 1".into()));
        }
        if calls.operation_timeout.is_zero() {
            return Err(Error::Config(
                "operation_timeout must be more than zero".into(),
            ));
        }
        let (config, _) = self.resolve(service).await?;
        let timeouts = config
            .timeout_config()
            .map(TimeoutConfig::to_builder)
            .unwrap_or_default()
            .operation_timeout(calls.operation_timeout)
            .build();
        let retries = config
            .retry_config()
            .cloned()
            .unwrap_or_else(RetryConfig::standard)
            .with_max_attempts(calls.max_attempts);
        Ok(config
            .into_builder()
            .timeout_config(timeouts)
            .retry_config(retries)
            .build())
    }
}

/// How a client rds-balancer builds calls its service: how long one operation may take, retries
/// included, and how many times it is attempted (the SDK's standard retry mode, with
/// exponential back-off). Not applied to a ready client given to a builder.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CallSettings {
    pub(crate) operation_timeout: Duration,
    pub(crate) max_attempts: u32,
}

impl Default for CallSettings {
    /// 10 seconds, 3 attempts.
    fn default() -> Self {
        CallSettings {
            operation_timeout: Duration::from_secs(10),
            max_attempts: 3,
        }
    }
}
