//! [`ExplicitCredentials`]: AWS credentials given in code, their secret parts redacted.

use aws_sdk_rds::config::Credentials as AwsCredentials;

use crate::credentials::Secret;
use crate::error::{Error, Result};

/// Explicit AWS credentials: the key id is shown, the secret key and session token are not.
#[derive(Clone, Debug)]
pub(super) struct ExplicitCredentials {
    access_key_id: String,
    secret_access_key: Secret,
    session_token: Option<Secret>,
}

impl ExplicitCredentials {
    pub(super) fn new(
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
        session_token: Option<String>,
    ) -> Self {
        ExplicitCredentials {
            access_key_id: access_key_id.into(),
            secret_access_key: Secret::new(secret_access_key),
            session_token: session_token.map(Secret::new),
        }
    }

    /// Refuses an empty key id, secret key or session token (naming which, never a value).
    pub(super) fn validate(&self) -> Result<()> {
        let empty = if self.access_key_id.trim().is_empty() {
            "access key id"
        } else if self.secret_access_key.expose().is_empty() {
            "secret access key"
        } else if self
            .session_token
            .as_ref()
            .is_some_and(|token| token.expose().is_empty())
        {
            "session token"
        } else {
            return Ok(());
        };
        Err(Error::Config(
            format!("the explicit AWS credentials have an empty {empty}").into(),
        ))
    }

    /// The SDK's form (whose `Debug` redacts the secret too).
    pub(super) fn to_sdk(&self) -> AwsCredentials {
        AwsCredentials::new(
            self.access_key_id.clone(),
            self.secret_access_key.expose().to_owned(),
            self.session_token
                .as_ref()
                .map(|token| token.expose().to_owned()),
            None,
            "rds-balancer",
        )
    }
}
