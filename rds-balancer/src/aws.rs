//! Plumbing shared by everything that talks to AWS (the RDS API source, IAM auth tokens):
//! explicit credentials that never print their secret, the HTTPS client, and error texts built
//! from `Display` only.

use std::error::Error as StdError;

use aws_sdk_rds::config::Credentials as AwsCredentials;
use aws_sdk_rds::config::SharedHttpClient;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};

use crate::credentials::Secret;

/// Explicit AWS credentials: the key id is shown, the secret key and session token are not.
#[derive(Clone, Debug)]
pub(crate) struct ExplicitCredentials {
    access_key_id: String,
    secret_access_key: Secret,
    session_token: Option<Secret>,
}

impl ExplicitCredentials {
    pub(crate) fn new(
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

    /// The SDK's form (whose `Debug` redacts the secret too).
    pub(crate) fn to_sdk(&self) -> AwsCredentials {
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

/// The HTTPS client of the AWS clients rds-balancer builds (and of the default credential
/// chain's providers): hyper and rustls with the ring provider, trusting the platform's roots.
pub(crate) fn http_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// `what`, then the `Display` of each error in the source chain (never their `Debug`, which
/// for a response includes its headers and body), skipping repeats.
pub(crate) fn error_chain(what: &str, mut source: Option<&(dyn StdError + 'static)>) -> String {
    let mut message = what.to_owned();
    let mut last = String::new();
    while let Some(err) = source {
        let text = err.to_string();
        if !text.is_empty() && text != last && !message.ends_with(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        last = text;
        source = err.source();
    }
    message
}
