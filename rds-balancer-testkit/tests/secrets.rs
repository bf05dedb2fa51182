//! Secrets Manager on the moto emulator, beside its RDS API. Fails (never skips) when python3 or
//! moto is missing.
// Helper functions of tests panic on failure like the tests themselves.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::OnceLock;

use rds_balancer_testkit::{Error, RdsEmulator};
use serde_json::{Value, json};

/// The emulator shared by the tests; each uses its own secret names.
fn aws() -> &'static RdsEmulator {
    static AWS: OnceLock<RdsEmulator> = OnceLock::new();
    AWS.get_or_init(|| RdsEmulator::start().unwrap_or_else(|e| panic!("could not start moto: {e}")))
}

fn secret_call(method: &str, params: Value) -> Value {
    aws()
        .call_service("secretsmanager", method, params)
        .unwrap()
}

#[test]
fn a_created_secret_reads_back_and_a_put_value_becomes_current() {
    let aws = aws();
    let first_value = r#"{"username":"app","password":"first"}"#;
    let first = aws.create_secret("rotated", first_value).unwrap();
    assert_eq!(first.name, "rotated");
    assert!(
        first.arn.starts_with("arn:aws:secretsmanager:us-east-1:")
            && first.arn.contains(":secret:rotated-"),
        "{first:?}"
    );
    assert!(!first.version_id.is_empty());
    assert_eq!(aws.get_secret_value("rotated").unwrap(), first_value);
    assert_eq!(aws.get_secret_value(&first.arn).unwrap(), first_value);

    let second_value = r#"{"username":"app","password":"second"}"#;
    let second = aws.put_secret_value(&first.arn, second_value).unwrap();
    assert_eq!(second.arn, first.arn);
    assert_eq!(second.name, "rotated");
    assert_ne!(second.version_id, first.version_id);

    // Read back with plain Secrets Manager calls, by stage and by version id.
    let current = secret_call("get_secret_value", json!({"SecretId": "rotated"}));
    assert_eq!(current["SecretString"], second_value);
    assert_eq!(current["VersionId"], second.version_id.as_str());
    assert_eq!(current["ARN"], first.arn.as_str());
    let previous = secret_call(
        "get_secret_value",
        json!({"SecretId": "rotated", "VersionStage": "AWSPREVIOUS"}),
    );
    assert_eq!(previous["SecretString"], first_value);
    let by_id = secret_call(
        "get_secret_value",
        json!({"SecretId": first.arn, "VersionId": first.version_id}),
    );
    assert_eq!(by_id["SecretString"], first_value);
    let described = secret_call("describe_secret", json!({"SecretId": "rotated"}));
    let stages = &described["VersionIdsToStages"];
    assert_eq!(stages[&second.version_id], json!(["AWSCURRENT"]));
    assert_eq!(stages[&first.version_id], json!(["AWSPREVIOUS"]));
}

#[test]
fn unknown_and_duplicate_secrets_are_aws_errors() {
    let aws = aws();
    match aws.get_secret_value("no-such-secret") {
        Err(Error::Aws {
            service,
            operation,
            code,
            ..
        }) => {
            assert_eq!(service, "secretsmanager");
            assert_eq!(operation, "get_secret_value");
            assert_eq!(code, "ResourceNotFoundException");
        }
        other => panic!("expected ResourceNotFoundException, got {other:?}"),
    }
    aws.create_secret("taken", "x").unwrap();
    let err = aws.create_secret("taken", "y").unwrap_err();
    assert!(
        matches!(&err, Error::Aws { code, .. } if code == "ResourceExistsException"),
        "{err:?}"
    );
    assert_eq!(aws.get_secret_value("taken").unwrap(), "x");
    // RDS calls still report RDS errors.
    let err = aws
        .call(
            "describe_db_clusters",
            json!({"DBClusterIdentifier": "nope"}),
        )
        .unwrap_err();
    assert!(
        matches!(&err, Error::Rds { code, .. } if code == "DBClusterNotFoundFault"),
        "{err:?}"
    );
}

#[test]
fn a_secrets_manager_client_at_the_endpoint_url_reads_the_current_value() {
    let aws = aws();
    aws.create_secret("over-http", "one").unwrap();
    aws.put_secret_value("over-http", "two").unwrap();
    // The request an AWS SDK sends (JSON 1.1 protocol), with the dummy credentials; moto picks
    // the service from the credential scope, so RDS and Secrets Manager share the endpoint.
    let body = r#"{"SecretId":"over-http"}"#;
    let url = aws.endpoint_url();
    let authority = url.strip_prefix("http://").unwrap();
    let mut stream = TcpStream::connect(authority).unwrap();
    let credential = format!(
        "{}/20250101/{}/secretsmanager/aws4_request",
        RdsEmulator::ACCESS_KEY_ID,
        aws.region()
    );
    write!(
        stream,
        "POST / HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\
         Content-Type: application/x-amz-json-1.1\r\n\
         X-Amz-Target: secretsmanager.GetSecretValue\r\nContent-Length: {}\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential={credential}, SignedHeaders=host, Signature=0\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let (_, json) = answer.split_once("\r\n\r\n").unwrap();
    let json: Value = serde_json::from_str(json).unwrap();
    assert_eq!(json["SecretString"], "two");
    assert_eq!(json["Name"], "over-http");
    // And the RDS API answers on the same port.
    assert!(aws.call("describe_db_clusters", json!({})).is_ok());
}
