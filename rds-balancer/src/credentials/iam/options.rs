//! [`IamAuthBuilder`]: the settings of an [`IamAuth`].

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::SdkConfig;

use super::{IamAuth, Inner};
use crate::aws::AwsSettings;
use crate::error::{Error, Result};

/// The longest lifetime RDS accepts for a token, and the default of
/// [`IamAuthBuilder::token_lifetime`].
const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(15 * 60);
/// Default of [`IamAuthBuilder::renew_before`] (at most a third of the token's lifetime).
const DEFAULT_RENEW_BEFORE: Duration = Duration::from_secs(5 * 60);

/// Builds an [`IamAuth`]; made by [`IamAuth::builder`].
///
/// The region and the AWS credentials come from the [`AwsSettings`] given to
/// [`aws`](Self::aws) (or set through the shortcuts [`region`](Self::region),
/// [`credentials`](Self::credentials) and [`sdk_config`](Self::sdk_config)), and otherwise from
/// the AWS default chain, as for [`RdsApiSource`](crate::RdsApiSource). Credentials that expire
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
    aws: AwsSettings,
    token_lifetime: Duration,
    renew_before: Option<Duration>,
}

impl fmt::Debug for IamAuthBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IamAuthBuilder")
            .field("username", &self.username)
            .field("aws", &self.aws)
            .field("token_lifetime", &self.token_lifetime)
            .field("renew_before", &self.renew_before)
            .finish()
    }
}

impl IamAuthBuilder {
    pub(super) fn new(username: String) -> Self {
        IamAuthBuilder {
            username,
            aws: AwsSettings::new(),
            token_lifetime: MAX_TOKEN_LIFETIME,
            renew_before: None,
        }
    }

    /// Takes the region, credentials and SDK configuration from `settings` (its endpoint URL is
    /// not used: tokens are signed locally), replacing those set before on this builder; the
    /// shortcuts called after it change this builder's copy only.
    ///
    /// Default: [`AwsSettings::new`], everything from the AWS default chain.
    ///
    /// ```
    /// use rds_balancer::{AwsSettings, IamAuth};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> rds_balancer::Result<()> {
    /// let aws = AwsSettings::new()
    ///     .region("eu-west-1")
    ///     .credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG", None);
    /// let iam = IamAuth::builder("app").aws(aws).build().await?;
    /// assert_eq!(iam.region(), "eu-west-1");
    /// # Ok(()) }
    /// ```
    pub fn aws(mut self, settings: AwsSettings) -> Self {
        self.aws = settings;
        self
    }

    /// The AWS region of the database (`us-east-1`, ...): tokens are signed for it. A shortcut
    /// for [`AwsSettings::region`] on this builder's settings.
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
        self.aws = self.aws.region(region);
        self
    }

    /// Signs the tokens with these AWS credentials instead of the default chain's. A shortcut
    /// for [`AwsSettings::credentials`] on this builder's settings.
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
        self.aws = self
            .aws
            .credentials(access_key_id, secret_access_key, session_token);
        self
    }

    /// Takes the credentials provider, region and clock from this AWS SDK configuration, as
    /// loaded by `aws_config::load_defaults` or built by hand; [`region`](Self::region) and
    /// [`credentials`](Self::credentials) override it. A shortcut for
    /// [`AwsSettings::sdk_config`] on this builder's settings.
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
        self.aws = self.aws.sdk_config(config);
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
    /// seconds between 1 second and 15 minutes, `renew_before` is not shorter than it, an
    /// [AWS setting](AwsSettings) cannot work (a region that is not a region name, an endpoint
    /// URL that is not an `http(s)` URL, explicit credentials with an empty part), or no region
    /// or no AWS credentials provider is configured.
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
        let (config, region) = self.aws.resolve("IAM auth tokens").await?;
        let credentials = config.credentials_provider().ok_or_else(|| {
            Error::Config(
                "no AWS credentials for IAM auth tokens: set `credentials(..)` or give an SDK \
                 configuration with a credentials provider"
                    .into(),
            )
        })?;
        // The configuration's clock, or the system clock when it has none (an RDS client
        // configuration always has one).
        let clock = aws_sdk_rds::config::Builder::from(&config)
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
