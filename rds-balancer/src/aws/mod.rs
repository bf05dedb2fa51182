//! What every part of rds-balancer that talks to AWS shares: [`AwsSettings`] (region, endpoint
//! URL, credentials and SDK configuration, resolved into one `SdkConfig`), the timeout and
//! retry settings of the clients it builds, explicit credentials that never print their secret,
//! the HTTPS client, and error texts built from `Display` only.

mod credentials;
mod settings;

use std::error::Error as StdError;

use aws_sdk_rds::config::SharedHttpClient;
use aws_sdk_rds::error::SdkError;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};

pub use self::settings::AwsSettings;
pub(crate) use self::settings::CallSettings;

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

/// What went wrong with a call that got no answer from the service itself (every [`SdkError`]
/// but a service error, which each caller words with the service's code): built with
/// [`error_chain`], so it holds no raw response or request.
pub(crate) fn failed_call<E, R>(err: &SdkError<E, R>) -> String
where
    E: StdError + 'static,
    R: std::fmt::Debug,
{
    let what = match err {
        SdkError::TimeoutError(_) => {
            return "timed out (the operation timeout elapsed, retries included)".to_owned();
        }
        SdkError::DispatchFailure(failure) if failure.is_timeout() => {
            "timed out reaching the endpoint"
        }
        SdkError::DispatchFailure(failure) if failure.is_io() => "could not reach the endpoint",
        SdkError::DispatchFailure(_) => "could not send the request",
        SdkError::ResponseError(_) => "unreadable response",
        SdkError::ConstructionFailure(_) => "could not build the request",
        _ => "request failed",
    };
    error_chain(what, StdError::source(err))
}
