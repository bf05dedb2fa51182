//! [`RdsSecret`]: the fields of an RDS database secret, and parsing them without ever showing
//! a value.

use serde_json::{Map, Value};

use crate::credentials::Secret;

/// The fields of an RDS database secret (the JSON object Secrets Manager stores for RDS and
/// its rotation functions update). The password is a [`Secret`]: `Debug` never shows it.
///
/// Made by [`SecretsManagerAuth::secret`](super::SecretsManagerAuth::secret):
///
/// ```no_run
/// use rds_balancer::{RdsSecret, SecretsManagerAuth};
///
/// /// The URL of the host the secret was made for, without credentials.
/// fn url(secret: &RdsSecret) -> String {
///     format!(
///         "postgres://{}:{}/{}?sslmode=verify-full",
///         secret.host.as_deref().unwrap_or("localhost"),
///         secret.port.unwrap_or(5432),
///         secret.dbname.as_deref().unwrap_or("postgres"),
///     )
/// }
///
/// # async fn run() -> rds_balancer::Result<()> {
/// let secret = SecretsManagerAuth::builder("prod/orders/app").build().await?.secret().await?;
/// assert!(!format!("{secret:?}").contains(secret.password.expose()));
/// println!("connecting to {}", url(&secret));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RdsSecret {
    /// `username`; `None` when the secret has none (the connection's URL then names the user).
    pub username: Option<String>,
    /// `password`. Never printed.
    pub password: Secret,
    /// `host`: the cluster or instance endpoint the secret was made for.
    pub host: Option<String>,
    /// `port` (a number or a string of digits in the secret).
    pub port: Option<u16>,
    /// `engine` (`postgres`, `mysql`, ...).
    pub engine: Option<String>,
    /// `dbname`.
    pub dbname: Option<String>,
    /// The id of the secret's version that was read.
    pub version_id: Option<String>,
}

/// Parses an RDS secret. The error names the field at fault, never a value (a malformed
/// secret may still hold the password).
pub(super) fn parse(
    text: &str,
    version_id: Option<&str>,
) -> std::result::Result<RdsSecret, String> {
    let value: Value = serde_json::from_str(text).map_err(|err| {
        // serde_json's message may quote part of the input: keep only its category and place.
        format!(
            "not valid JSON ({:?} error at line {} column {})",
            err.classify(),
            err.line(),
            err.column()
        )
    })?;
    let Value::Object(fields) = value else {
        return Err("not a JSON object".to_owned());
    };
    let password = match string(&fields, "password")? {
        Some(password) if !password.is_empty() => password,
        Some(_) => return Err("`password` is empty".to_owned()),
        None => return Err("no `password`".to_owned()),
    };
    let port = match fields.get("port") {
        None | Some(Value::Null) => None,
        Some(Value::Number(number)) => Some(
            number
                .as_u64()
                .and_then(|port| u16::try_from(port).ok())
                .ok_or("`port` is not a port number")?,
        ),
        Some(Value::String(text)) => Some(
            text.trim()
                .parse::<u16>()
                .map_err(|_| "`port` is not a port number")?,
        ),
        Some(_) => return Err("`port` is not a port number".to_owned()),
    };
    Ok(RdsSecret {
        username: string(&fields, "username")?.filter(|name| !name.is_empty()),
        password: Secret::new(password),
        host: string(&fields, "host")?,
        port,
        engine: string(&fields, "engine")?,
        dbname: string(&fields, "dbname")?,
        version_id: version_id.map(str::to_owned),
    })
}

/// The string field `key`, `None` when absent or null.
fn string(fields: &Map<String, Value>, key: &str) -> std::result::Result<Option<String>, String> {
    match fields.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(_) => Err(format!("`{key}` is not a string")),
    }
}
