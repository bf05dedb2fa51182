//! AWS Secrets Manager on the emulator (moto serves every service on the one port), and calls of
//! any service.

use serde_json::{Value, json};

use super::{RdsEmulator, http};
use crate::error::Error;

/// A version of a secret, as `CreateSecret` and `PutSecretValue` report it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SecretVersion {
    /// The secret's ARN (`arn:aws:secretsmanager:us-east-1:123456789012:secret:<name>-XXXXXX`);
    /// the same for every version.
    pub arn: String,
    /// The secret's name.
    pub name: String,
    /// This version's id; the version is `AWSCURRENT` when made.
    pub version_id: String,
}

impl SecretVersion {
    fn from_api(answer: &Value) -> SecretVersion {
        let text = |key: &str| {
            answer
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        SecretVersion {
            arn: text("ARN"),
            name: text("Name"),
            version_id: text("VersionId"),
        }
    }
}

impl RdsEmulator {
    /// Runs one call of AWS service `service` (as boto3 names it: `secretsmanager`, `rds`,
    /// `sts`, ...) on the emulator, with boto3's method and parameter names; returns the response
    /// without its `ResponseMetadata`, timestamps as strings. A rejected call is an
    /// [`Error::Aws`] ([`Error::Rds`] for `rds`) with the AWS error code.
    ///
    /// The emulator serves every service moto emulates on [`endpoint_url`](Self::endpoint_url):
    /// point the code under test's client for that service there too.
    ///
    /// ```no_run
    /// use rds_balancer_testkit::RdsEmulator;
    /// use serde_json::json;
    ///
    /// # fn main() -> Result<(), rds_balancer_testkit::Error> {
    /// let aws = RdsEmulator::start()?;
    /// aws.create_secret("app-db", r#"{"username":"app","password":"one"}"#)?;
    /// aws.put_secret_value("app-db", r#"{"username":"app","password":"two"}"#)?;
    /// let previous = aws.call_service(
    ///     "secretsmanager",
    ///     "get_secret_value",
    ///     json!({"SecretId": "app-db", "VersionStage": "AWSPREVIOUS"}),
    /// )?;
    /// assert_eq!(previous["SecretString"], r#"{"username":"app","password":"one"}"#);
    /// # Ok(()) }
    /// ```
    pub fn call_service(&self, service: &str, method: &str, params: Value) -> Result<Value, Error> {
        let request = json!({"op": "call", "service": service, "method": method, "params": params});
        http::admin(self.server.port, service, method, &request)
    }

    /// Creates secret `name` in Secrets Manager with `secret_string` as its `AWSCURRENT` value
    /// (`CreateSecret`). Fails with [`Error::Aws`] code `ResourceExistsException` when the name
    /// is taken.
    ///
    /// ```no_run
    /// use rds_balancer_testkit::RdsEmulator;
    ///
    /// # fn main() -> Result<(), rds_balancer_testkit::Error> {
    /// let aws = RdsEmulator::start()?;
    /// let secret = aws.create_secret("app-db", r#"{"username":"app","password":"s3cret"}"#)?;
    /// assert_eq!(secret.name, "app-db");
    /// assert!(secret.arn.starts_with("arn:aws:secretsmanager:us-east-1:"));
    /// // Give the code under test endpoint_url(), region(), the dummy keys and `secret.arn`.
    /// assert_eq!(aws.get_secret_value(&secret.arn)?, r#"{"username":"app","password":"s3cret"}"#);
    /// # Ok(()) }
    /// ```
    pub fn create_secret(&self, name: &str, secret_string: &str) -> Result<SecretVersion, Error> {
        let params = json!({"Name": name, "SecretString": secret_string});
        let answer = self.call_service("secretsmanager", "create_secret", params)?;
        Ok(SecretVersion::from_api(&answer))
    }

    /// Stores `secret_string` as a new version of secret `secret_id` (its name or ARN), which
    /// becomes `AWSCURRENT`; the one it replaces becomes `AWSPREVIOUS` (`PutSecretValue`), as a
    /// rotation does. Returns the new version.
    ///
    /// ```no_run
    /// use rds_balancer_testkit::RdsEmulator;
    ///
    /// # fn main() -> Result<(), rds_balancer_testkit::Error> {
    /// let aws = RdsEmulator::start()?;
    /// let first = aws.create_secret("app-db", "one")?;
    /// let second = aws.put_secret_value("app-db", "two")?;
    /// assert_eq!(second.arn, first.arn);
    /// assert_ne!(second.version_id, first.version_id);
    /// assert_eq!(aws.get_secret_value("app-db")?, "two");
    /// # Ok(()) }
    /// ```
    pub fn put_secret_value(
        &self,
        secret_id: &str,
        secret_string: &str,
    ) -> Result<SecretVersion, Error> {
        let params = json!({"SecretId": secret_id, "SecretString": secret_string});
        let answer = self.call_service("secretsmanager", "put_secret_value", params)?;
        Ok(SecretVersion::from_api(&answer))
    }

    /// The `SecretString` of secret `secret_id`'s (name or ARN) `AWSCURRENT` version
    /// (`GetSecretValue`). Fails with [`Error::Aws`] code `ResourceNotFoundException` for an
    /// unknown secret.
    ///
    /// ```no_run
    /// use rds_balancer_testkit::RdsEmulator;
    ///
    /// # fn main() -> Result<(), rds_balancer_testkit::Error> {
    /// let aws = RdsEmulator::start()?;
    /// aws.create_secret("app-db", "one")?;
    /// assert_eq!(aws.get_secret_value("app-db")?, "one");
    /// # Ok(()) }
    /// ```
    pub fn get_secret_value(&self, secret_id: &str) -> Result<String, Error> {
        let params = json!({"SecretId": secret_id});
        let answer = self.call_service("secretsmanager", "get_secret_value", params)?;
        match answer.get("SecretString").and_then(Value::as_str) {
            Some(value) => Ok(value.to_owned()),
            None => Err(Error::Aws {
                service: "secretsmanager".to_owned(),
                operation: "get_secret_value".to_owned(),
                code: "NoSecretString".to_owned(),
                message: format!("secret {secret_id} has no SecretString (a binary secret?)"),
            }),
        }
    }
}
