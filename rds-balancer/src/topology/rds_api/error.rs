//! SDK errors to [`Error::Topology`], keeping the service's code and message and nothing that
//! could hold a secret (no raw response, no request).

use std::error::Error as StdError;

use aws_sdk_rds::error::{ProvideErrorMetadata, SdkError};

use crate::aws::{error_chain, failed_call};
use crate::error::Error;

/// The code given to a cluster that `DescribeDBClusters` did not list (the code the API uses
/// when it answers with an error instead).
pub(super) const CLUSTER_NOT_FOUND: &str = "DBClusterNotFoundFault";

/// `err`, from `operation`, as an [`Error::Topology`].
pub(super) fn from_sdk<E, R>(operation: &'static str, err: SdkError<E, R>) -> Error
where
    E: ProvideErrorMetadata + StdError + 'static,
    R: std::fmt::Debug,
{
    let (code, message) = match &err {
        SdkError::ServiceError(context) => {
            let service = context.err();
            let message = match service.message() {
                Some(message) => message.to_owned(),
                None => error_chain("the service returned an error", service.source()),
            };
            (service.code().map(str::to_owned), message)
        }
        _ => (None, failed_call(&err)),
    };
    Error::Topology {
        operation: operation.into(),
        code,
        message,
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_rds::error::ErrorMetadata;
    use aws_sdk_rds::operation::describe_db_clusters::DescribeDBClustersError;

    use super::*;
    use crate::error::ErrorKind;

    fn service_error(code: &str, message: &str) -> SdkError<DescribeDBClustersError, ()> {
        let meta = ErrorMetadata::builder().code(code).message(message).build();
        SdkError::service_error(DescribeDBClustersError::generic(meta), ())
    }

    #[test]
    fn service_errors_keep_the_operation_code_and_message() {
        let err = from_sdk(
            "DescribeDBClusters",
            service_error("DBClusterNotFoundFault", "DBCluster app not found."),
        );
        assert_eq!(err.kind(), ErrorKind::Topology);
        assert!(!err.is_throttling());
        assert_eq!(
            err.to_string(),
            "DescribeDBClusters failed: DBClusterNotFoundFault: DBCluster app not found."
        );
    }

    #[test]
    fn throttling_codes_are_recognised() {
        for code in ["Throttling", "ThrottlingException", "RequestLimitExceeded"] {
            let err = from_sdk("DescribeDBInstances", service_error(code, "Rate exceeded"));
            assert!(err.is_throttling(), "{code}");
            assert!(err.to_string().contains(code));
        }
    }

    #[test]
    fn timeouts_have_no_code() {
        let err = from_sdk::<DescribeDBClustersError, ()>(
            "DescribeDBClusters",
            SdkError::timeout_error("elapsed"),
        );
        assert!(matches!(&err, Error::Topology { code: None, .. }));
        assert!(
            err.to_string()
                .starts_with("DescribeDBClusters failed: timed out")
        );
    }

    #[test]
    fn the_chain_skips_repeats() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert_eq!(
            error_chain("could not reach", Some(&io)),
            "could not reach: refused"
        );
        assert_eq!(error_chain("nothing more", None), "nothing more");
    }
}
