//! [`RdsApiSourceBuilder`]: how an [`RdsApiSource`] reaches the RDS API.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_rds::Client;
use aws_sdk_rds::config::Region;
use aws_sdk_rds::config::retry::RetryConfig;
use aws_sdk_rds::config::timeout::TimeoutConfig;

use super::{Inner, RdsApiSource};
use crate::aws::{ExplicitCredentials, http_client};
use crate::error::{Error, Result};

/// Default of [`RdsApiSourceBuilder::operation_timeout`].
const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(10);
/// Default of [`RdsApiSourceBuilder::max_attempts`].
const DEFAULT_MAX_ATTEMPTS: u32 = 3;
/// Default of [`RdsApiSourceBuilder::page_size`]: the most `DescribeDBInstances` returns at once.
const DEFAULT_PAGE_SIZE: i32 = 100;
/// The page sizes the RDS API accepts.
const PAGE_SIZES: std::ops::RangeInclusive<i32> = 20..=100;

/// Builds an [`RdsApiSource`]; made by [`RdsApiSource::builder`].
///
/// Credentials come, by order of precedence, from a ready [`client`](Self::client) (which wins
/// over every other setting), [`credentials`](Self::credentials), the
/// [`sdk_config`](Self::sdk_config), and otherwise the AWS default chain (environment, profile
/// files, web identity, ECS and EC2 instance metadata; SSO profiles and `credential_process`
/// are not compiled in).
///
/// ```no_run
/// use std::time::Duration;
///
/// use rds_balancer::RdsApiSource;
///
/// # async fn run() -> rds_balancer::Result<()> {
/// let source = RdsApiSource::builder("orders-cluster")
///     .region("eu-west-1")
///     .operation_timeout(Duration::from_secs(5))
///     .build()
///     .await?;
/// # Ok(()) }
/// ```
#[must_use = "a builder does nothing until `build` is awaited"]
pub struct RdsApiSourceBuilder {
    cluster_id: String,
    region: Option<String>,
    endpoint_url: Option<String>,
    credentials: Option<ExplicitCredentials>,
    sdk_config: Option<SdkConfig>,
    client: Option<Client>,
    operation_timeout: Duration,
    max_attempts: u32,
    page_size: i32,
}

impl fmt::Debug for RdsApiSourceBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RdsApiSourceBuilder")
            .field("cluster_id", &self.cluster_id)
            .field("region", &self.region)
            .field("endpoint_url", &self.endpoint_url)
            .field("credentials", &self.credentials)
            .field("sdk_config", &self.sdk_config.as_ref().map(|_| ".."))
            .field("client", &self.client.as_ref().map(|_| ".."))
            .field("operation_timeout", &self.operation_timeout)
            .field("max_attempts", &self.max_attempts)
            .field("page_size", &self.page_size)
            .finish()
    }
}

impl RdsApiSourceBuilder {
    pub(super) fn new(cluster_id: String) -> Self {
        RdsApiSourceBuilder {
            cluster_id,
            region: None,
            endpoint_url: None,
            credentials: None,
            sdk_config: None,
            client: None,
            operation_timeout: DEFAULT_OPERATION_TIMEOUT,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            page_size: DEFAULT_PAGE_SIZE,
        }
    }

    /// The AWS region of the cluster (`us-east-1`, ...).
    ///
    /// Default: the region of the [`sdk_config`](Self::sdk_config), else the default chain's
    /// (`AWS_REGION`, the profile, instance metadata). [`build`](Self::build) fails when none
    /// is found.
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// Sends the API calls to this URL instead of the region's RDS endpoint: a VPC endpoint,
    /// or a local emulator in tests.
    ///
    /// Default: the region's endpoint (or the [`sdk_config`](Self::sdk_config)'s URL).
    pub fn endpoint_url(mut self, url: impl Into<String>) -> Self {
        self.endpoint_url = Some(url.into());
        self
    }

    /// Signs the calls with these credentials instead of the default chain's.
    ///
    /// The secret key and the session token are kept in a redacting wrapper: no `Debug`, log
    /// line or error of rds-balancer shows them.
    ///
    /// Default: the [`sdk_config`](Self::sdk_config)'s credentials, else the default chain.
    ///
    /// ```
    /// use rds_balancer::RdsApiSource;
    ///
    /// let builder = RdsApiSource::builder("orders-cluster")
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
    /// use rds_balancer::RdsApiSource;
    ///
    /// # async fn run() -> rds_balancer::Result<()> {
    /// let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    /// let source = RdsApiSource::builder("orders-cluster").sdk_config(config).build().await?;
    /// # Ok(()) }
    /// ```
    pub fn sdk_config(mut self, config: SdkConfig) -> Self {
        self.sdk_config = Some(config);
        self
    }

    /// Uses this ready RDS client as it is: it wins over every other setting of this builder
    /// (region, endpoint, credentials, SDK configuration, timeout and attempts), so its own
    /// timeout and retry configuration apply.
    ///
    /// Default: a client built from the other settings.
    ///
    /// ```no_run
    /// use rds_balancer::RdsApiSource;
    ///
    /// # async fn run() -> rds_balancer::Result<()> {
    /// let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    /// let client = aws_sdk_rds::Client::new(&config);
    /// let source = RdsApiSource::builder("orders-cluster").client(client).build().await?;
    /// # Ok(()) }
    /// ```
    pub fn client(mut self, client: Client) -> Self {
        self.client = Some(client);
        self
    }

    /// How long one API call may take, retries included, before it fails with an
    /// [`Error::Topology`]. A fetch makes one `DescribeDBClusters` call and one
    /// `DescribeDBInstances` call per page.
    ///
    /// Default: 10 seconds.
    pub fn operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = timeout;
        self
    }

    /// How many times one API call is attempted (the SDK's standard retry mode, with
    /// exponential back-off, for throttling, transient and transport errors); 1 disables
    /// retries.
    ///
    /// Default: 3.
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// How many instances one `DescribeDBInstances` page asks for (`MaxRecords`); the RDS API
    /// accepts 20 to 100.
    ///
    /// Default: 100.
    pub fn page_size(mut self, records: i32) -> Self {
        self.page_size = records;
        self
    }

    /// Builds the source, loading the AWS configuration when no ready client was given. Makes
    /// no API call.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the cluster id is empty, the page size or the number of attempts
    /// is out of range, or no region is configured (unless a ready client was given).
    pub async fn build(self) -> Result<RdsApiSource> {
        if self.cluster_id.trim().is_empty() {
            return Err(Error::Config("the RDS cluster identifier is empty".into()));
        }
        if !PAGE_SIZES.contains(&self.page_size) {
            return Err(Error::Config(
                format!(
                    "page_size must be between 20 and 100 (got {})",
                    self.page_size
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
                let client = client_from(
                    &base,
                    self.region,
                    self.endpoint_url.clone(),
                    self.credentials,
                    self.operation_timeout,
                    self.max_attempts,
                )?;
                (client, self.endpoint_url)
            }
        };
        Ok(RdsApiSource {
            inner: Arc::new(Inner {
                client,
                cluster_id: self.cluster_id,
                endpoint_url,
                page_size: self.page_size,
            }),
        })
    }
}

/// An RDS client over `base`, with the builder's explicit settings on top.
fn client_from(
    base: &SdkConfig,
    region: Option<String>,
    endpoint_url: Option<String>,
    credentials: Option<ExplicitCredentials>,
    operation_timeout: Duration,
    max_attempts: u32,
) -> Result<Client> {
    let mut config = aws_sdk_rds::config::Builder::from(base);
    if base.http_client().is_none() {
        config = config.http_client(http_client());
    }
    if let Some(region) = region {
        config = config.region(Region::new(region));
    }
    if let Some(url) = endpoint_url {
        config = config.endpoint_url(url);
    }
    if let Some(credentials) = &credentials {
        config = config.credentials_provider(credentials.to_sdk());
    }
    let timeouts = base
        .timeout_config()
        .map(TimeoutConfig::to_builder)
        .unwrap_or_default()
        .operation_timeout(operation_timeout)
        .build();
    let retries = base
        .retry_config()
        .cloned()
        .unwrap_or_else(RetryConfig::standard)
        .with_max_attempts(max_attempts);
    let config = config
        .timeout_config(timeouts)
        .retry_config(retries)
        .build();
    if config.region().is_none() {
        return Err(Error::Config(
            "no AWS region for the RDS API: set `region(..)`, AWS_REGION or a profile's region"
                .into(),
        ));
    }
    Ok(Client::from_conf(config))
}
