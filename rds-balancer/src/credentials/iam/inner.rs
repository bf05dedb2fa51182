//! The state clones of an [`IamAuth`](super::IamAuth) share: the settings, the clock and the
//! token of each endpoint; and signing a new token.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_config::SdkConfig;
use aws_sdk_rds::auth_token::{AuthTokenGenerator, Config as TokenConfig};
use aws_sdk_rds::config::{ProvideCredentials, Region, SharedCredentialsProvider};
use tracing::instrument::WithSubscriber;
use tracing::subscriber::NoSubscriber;

use super::token::{encode_username, signature_last, signed_at, signing_host, whole_seconds};
use crate::aws::error_chain;
use crate::credentials::{Endpoint, Secret};
use crate::error::{Error, Result};

pub(super) struct Inner {
    pub(super) username: String,
    pub(super) region: Region,
    pub(super) credentials: SharedCredentialsProvider,
    /// Only its time source is used: the clock tokens are signed and renewed by.
    pub(super) clock: SdkConfig,
    pub(super) lifetime: Duration,
    pub(super) renew_before: Duration,
    pub(super) tokens: Mutex<HashMap<Endpoint, Token>>,
}

/// A signed token and when to stop handing it out.
#[derive(Clone)]
pub(super) struct Token {
    pub(super) token: Secret,
    pub(super) expires_at: SystemTime,
    pub(super) renew_at: SystemTime,
}

impl Inner {
    pub(super) fn lock_tokens(&self) -> MutexGuard<'_, HashMap<Endpoint, Token>> {
        // The map is consistent after every statement: a panic elsewhere cannot corrupt it.
        self.tokens.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Now, by the configuration's clock (the one the signer uses).
    pub(super) fn now(&self) -> SystemTime {
        self.clock
            .time_source()
            .map_or_else(SystemTime::now, |clock| clock.now())
    }

    /// A new token for `endpoint`; `now` was read just before.
    pub(super) async fn sign(&self, endpoint: &Endpoint, now: SystemTime) -> Result<Token> {
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
