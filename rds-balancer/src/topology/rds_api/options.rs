//! [`RdsApiSourceBuilder`]: how an [`RdsApiSource`] reaches the RDS API.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_rds::Client;

use super::{Inner, RdsApiSource};
use crate::aws::{AwsSettings, CallSettings};
use crate::error::{Error, Result};

/// Default of [`RdsApiSourceBuilder::page_size`]: the most `DescribeDBInstances` returns at once.
const DEFAULT_PAGE_SIZE: i32 = 100;
/// The page sizes the RDS API accepts.
const PAGE_SIZES: std::ops::RangeInclusive<i32> = 20..=100;

/// Builds an [`RdsApiSource`]; made by [`RdsApiSource::builder`].
///
/// A ready [`client`](Self::client) wins over every other AWS setting. Without one, the region,
/// endpoint URL and credentials come from the [`AwsSettings`] given to [`aws`](Self::aws) (or
/// set through the shortcuts [`region`](Self::region), [`endpoint_url`](Self::endpoint_url),
/// [`credentials`](Self::credentials) and [`sdk_config`](Self::sdk_config)), and otherwise from
/// the AWS default chain (environment, profile files, web identity, ECS and EC2 instance
/// metadata; SSO profiles and `credential_process` are not compiled in).
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
    aws: AwsSettings,
    client: Option<Client>,
    calls: CallSettings,
    page_size: i32,
}

impl fmt::Debug for RdsApiSourceBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RdsApiSourceBuilder")
            .field("cluster_id", &self.cluster_id)
            .field("aws", &self.aws)
            .field("client", &self.client.as_ref().map(|_| ".."))
            .field("operation_timeout", &self.calls.operation_timeout)
            .field("max_attempts", &self.calls.max_attempts)
            .field("page_size", &self.page_size)
            .finish()
    }
}

impl RdsApiSourceBuilder {
    pub(super) fn new(cluster_id: String) -> Self {
        RdsApiSourceBuilder {
            cluster_id,
            aws: AwsSettings::new(),
            client: None,
            calls: CallSettings::default(),
            page_size: DEFAULT_PAGE_SIZE,
        }
    }

    /// Takes the region, endpoint URL, credentials and SDK configuration from `settings`,
    /// replacing those set before on this builder; the shortcuts called after it change this
    /// builder's copy only.
    ///
    /// Default: [`AwsSettings::new`], everything from the AWS default chain.
    ///
    /// ```
    /// use rds_balancer::{AwsSettings, RdsApiSource};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> rds_balancer::Result<()> {
    /// let aws = AwsSettings::new()
    ///     .region("eu-west-1")
    ///     .credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG", None);
    /// let source = RdsApiSource::builder("orders-cluster").aws(aws).build().await?;
    /// assert_eq!(source.region(), Some("eu-west-1"));
    /// # Ok(()) }
    /// ```
    pub fn aws(mut self, settings: AwsSettings) -> Self {
        self.aws = settings;
        self
    }

    /// The AWS region of the cluster (`us-east-1`, ...). A shortcut for
    /// [`AwsSettings::region`] on this builder's settings.
    ///
    /// Default: the region of the [`sdk_config`](Self::sdk_config), else the default chain's
    /// (`AWS_REGION`, the profile, instance metadata). [`build`](Self::build) fails when none
    /// is found.
    ///
    /// ```
    /// let builder = rds_balancer::RdsApiSource::builder("orders-cluster").region("eu-west-1");
    /// assert!(format!("{builder:?}").contains("eu-west-1"));
    /// ```
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.aws = self.aws.region(region);
        self
    }

    /// Sends the API calls to this URL instead of the region's RDS endpoint: a VPC endpoint,
    /// or a local emulator in tests. A shortcut for [`AwsSettings::endpoint_url`] on this
    /// builder's settings.
    ///
    /// Default: the [`sdk_config`](Self::sdk_config)'s URL, else the environment's
    /// (`AWS_ENDPOINT_URL_RDS`, `AWS_ENDPOINT_URL`), else the region's endpoint.
    ///
    /// ```
    /// let builder = rds_balancer::RdsApiSource::builder("orders-cluster")
    ///     .endpoint_url("https://vpce-0abc.rds.eu-west-1.vpce.amazonaws.com");
    /// assert!(format!("{builder:?}").contains("vpce-0abc"));
    /// ```
    pub fn endpoint_url(mut self, url: impl Into<String>) -> Self {
        self.aws = self.aws.endpoint_url(url);
        self
    }

    /// Signs the calls with these credentials instead of the default chain's. A shortcut for
    /// [`AwsSettings::credentials`] on this builder's settings.
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
    /// use rds_balancer::RdsApiSource;
    ///
    /// # async fn run() -> rds_balancer::Result<()> {
    /// let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    /// let source = RdsApiSource::builder("orders-cluster").sdk_config(config).build().await?;
    /// # Ok(()) }
    /// ```
    pub fn sdk_config(mut self, config: SdkConfig) -> Self {
        self.aws = self.aws.sdk_config(config);
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
    /// Default: 10 seconds. Zero is refused by [`build`](Self::build).
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let builder = rds_balancer::RdsApiSource::builder("orders-cluster")
    ///     .operation_timeout(Duration::from_secs(3));
    /// assert!(format!("{builder:?}").contains("operation_timeout: 3s"));
    /// ```
    pub fn operation_timeout(mut self, timeout: Duration) -> Self {
        self.calls.operation_timeout = timeout;
        self
    }

    /// How many times one API call is attempted (the SDK's standard retry mode, with
    /// exponential back-off, for throttling, transient and transport errors); 1 disables
    /// retries.
    ///
    /// Default: 3. Zero is refused by [`build`](Self::build).
    ///
    /// ```
    /// let builder = rds_balancer::RdsApiSource::builder("orders-cluster").max_attempts(5);
    /// assert!(format!("{builder:?}").contains("max_attempts: 5"));
    /// ```
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.calls.max_attempts = attempts;
        self
    }

    /// How many instances one `DescribeDBInstances` page asks for (`MaxRecords`); the RDS API
    /// accepts 20 to 100.
    ///
    /// Default: 100.
    ///
    /// ```
    /// let builder = rds_balancer::RdsApiSource::builder("orders-cluster").page_size(50);
    /// assert!(format!("{builder:?}").contains("page_size: 50"));
    /// ```
    pub fn page_size(mut self, records: i32) -> Self {
        self.page_size = records;
        self
    }

    /// Builds the source, loading the AWS configuration when no ready client was given. Makes
    /// no API call.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the cluster id is empty or the page size is out of range; and,
    /// unless a ready client was given, when `max_attempts` or `operation_timeout` is 0, an
    /// [AWS setting](AwsSettings) cannot work (a region that is not a region name, an endpoint
    /// URL that is not an `http(s)` URL, explicit credentials with an empty part), or no region
    /// is configured.
    ///
    /// ```
    /// use rds_balancer::{ErrorKind, RdsApiSource};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let too_big = RdsApiSource::builder("orders-cluster")
    ///     .region("eu-west-1")
    ///     .credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG", None)
    ///     .page_size(500)
    ///     .build()
    ///     .await;
    /// assert_eq!(too_big.err().map(|err| err.kind()), Some(ErrorKind::Config));
    /// # }
    /// ```
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
                let sdk = self.aws.client_config("the RDS API", self.calls).await?;
                let mut config = aws_sdk_rds::config::Builder::from(&sdk);
                if let Some(url) = self.aws.explicit_endpoint_url() {
                    // Over AWS_ENDPOINT_URL_RDS too.
                    config = config.endpoint_url(url);
                }
                let endpoint_url = self.aws.explicit_endpoint_url().map(str::to_owned);
                (Client::from_conf(config.build()), endpoint_url)
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
