//! Unit tests of the secret's parsing and of the errors.

use aws_sdk_secretsmanager::error::SdkError;

use super::error::from_sdk;
use super::rds_secret::parse;

#[test]
fn the_standard_rds_secret_is_parsed() {
    let text = r#"{"engine":"postgres","host":"orders.cluster-abc.eu-west-1.rds.amazonaws.com",
        "username":"app","password":"p@ss\"word","dbname":"orders","port":5432,
        "dbClusterIdentifier":"orders"}"#;
    let secret = parse(text, Some("v1")).unwrap();
    assert_eq!(secret.username.as_deref(), Some("app"));
    assert_eq!(secret.password.expose(), "p@ss\"word");
    assert_eq!(
        secret.host.as_deref(),
        Some("orders.cluster-abc.eu-west-1.rds.amazonaws.com")
    );
    assert_eq!(secret.port, Some(5432));
    assert_eq!(secret.engine.as_deref(), Some("postgres"));
    assert_eq!(secret.dbname.as_deref(), Some("orders"));
    assert_eq!(secret.version_id.as_deref(), Some("v1"));
    assert!(!format!("{secret:?}").contains("p@ss"));

    let minimal = parse(r#"{"password":"x","port":"3306","host":null}"#, None).unwrap();
    assert_eq!(minimal.username, None);
    assert_eq!(minimal.port, Some(3306));
    assert_eq!(minimal.host, None);
}

#[test]
fn a_malformed_secret_is_refused_without_showing_its_value() {
    for (text, why) in [
        (r#"{"username":"app"}"#, "no `password`"),
        (r#"{"password":""}"#, "`password` is empty"),
        (r#"{"password":4242424242}"#, "`password` is not a string"),
        (
            r#"{"password":"x","port":"hunter2"}"#,
            "`port` is not a port number",
        ),
        (
            r#"{"password":"x","port":70000}"#,
            "`port` is not a port number",
        ),
        (
            r#"{"password":"x","username":["hunter2"]}"#,
            "`username` is not a string",
        ),
        (r#"["hunter2"]"#, "not a JSON object"),
    ] {
        let err = parse(text, None).unwrap_err();
        assert_eq!(err, why, "{text}");
    }
    let err = parse(r#"{"password":"hunter2"#, None).unwrap_err();
    assert!(
        err.starts_with("not valid JSON (Eof error at line 1"),
        "{err}"
    );
    let err = parse("hunter2", None).unwrap_err();
    assert!(!err.contains("hunter2"), "{err}");
}

#[test]
fn errors_name_the_operation_the_secret_and_the_code() {
    use aws_sdk_secretsmanager::error::ErrorMetadata;
    use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError;

    let meta = ErrorMetadata::builder()
        .code("ResourceNotFoundException")
        .message("Secrets Manager can't find the specified secret.")
        .build();
    let err = from_sdk(
        "app-db",
        SdkError::service_error(GetSecretValueError::generic(meta), ()),
    );
    assert_eq!(err.kind(), crate::ErrorKind::Credentials);
    assert_eq!(
        err.to_string(),
        "could not get database credentials: GetSecretValue for secret app-db failed: \
         ResourceNotFoundException: Secrets Manager can't find the specified secret."
    );
    let err = from_sdk::<GetSecretValueError, ()>("app-db", SdkError::timeout_error("elapsed"));
    assert!(
        err.to_string()
            .contains("GetSecretValue for secret app-db failed: timed out")
    );
}
