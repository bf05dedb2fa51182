//! The errors of a fetch: the operation, the secret id and the AWS error code, never a value.

use std::error::Error as StdError;
use std::fmt;

use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};

use crate::aws::{error_chain, failed_call};
use crate::error::Error;

/// The operation named in errors.
const OPERATION: &str = "GetSecretValue";

/// A secret that could be read but not used.
pub(super) fn invalid(secret_id: &str, why: &str) -> Error {
    Error::Credentials(format!("{OPERATION} for secret {secret_id}: the value {why}").into())
}

/// An SDK error as an [`Error::Credentials`]: the operation, the secret id, the AWS error code
/// and the service's message; nothing that could hold a secret (no raw response, no request).
pub(super) fn from_sdk<E, R>(secret_id: &str, err: SdkError<E, R>) -> Error
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
        _ => failed_call(&err),
    };
    Error::Credentials(format!("{OPERATION} for secret {secret_id} failed: {what}").into())
}
