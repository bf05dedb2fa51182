//! The test kit's calls to the emulator: one JSON `POST` to the launcher's admin route per call,
//! over a plain loopback TCP connection (HTTP/1.1, `Connection: close`).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::time::Duration;

use serde_json::Value;

use super::server::ADMIN_PATH;
use crate::error::Error;

/// The deadline of one admin call (they take milliseconds).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Sends `request` to the admin route of the emulator on `port` and returns the `ok` value of
/// its answer; an `error` answer becomes [`Error::Rds`] naming `operation` when `service` is
/// `rds`, else [`Error::Aws`].
pub(super) fn admin(
    port: u16,
    service: &str,
    operation: &str,
    request: &Value,
) -> Result<Value, Error> {
    let failed = |code: &str, message: String| {
        if service == "rds" {
            Error::Rds {
                operation: operation.to_owned(),
                code: code.to_owned(),
                message,
            }
        } else {
            Error::Aws {
                service: service.to_owned(),
                operation: operation.to_owned(),
                code: code.to_owned(),
                message,
            }
        }
    };
    let body = post(port, ADMIN_PATH, &request.to_string())
        .map_err(|e| failed("EmulatorUnreachable", format!("{e} (port {port})")))?;
    let mut answer: Value = serde_json::from_str(&body)
        .map_err(|e| failed("BadAnswer", format!("{e}: {body:.500}")))?;
    if let Some(ok) = answer.get_mut("ok") {
        return Ok(ok.take());
    }
    let text = |key: &str| {
        answer
            .pointer(&format!("/error/{key}"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    Err(failed(&text("code"), text("message")))
}

/// POSTs `json` to `path` on the emulator and returns the body of a `200` answer.
pub(super) fn post(port: u16, path: &str, json: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port))?;
    stream.set_read_timeout(Some(CALL_TIMEOUT))?;
    stream.set_write_timeout(Some(CALL_TIMEOUT))?;
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{json}",
        json.len()
    );
    stream.write_all(request.as_bytes())?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let response = String::from_utf8_lossy(&response);
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("malformed answer: {response:.200}")))?;
    let status = head.lines().next().unwrap_or("");
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(std::io::Error::other(format!("{status}: {body:.500}")));
    }
    Ok(body.to_owned())
}
