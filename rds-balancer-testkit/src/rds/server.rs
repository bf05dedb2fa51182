//! The emulator's process: moto's server app on a loopback port, run by a small Python launcher
//! that adds the test kit's admin route and exits when its standard input closes.

use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use tempfile::NamedTempFile;

use crate::error::Error;
use crate::process::wait_deadline;

/// How long the server may take to start and answer its first request.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The path of the admin route the launcher adds in front of moto's app.
pub(super) const ADMIN_PATH: &str = "/rds-balancer-testkit";

/// The launcher, run as `python3 -c LAUNCHER`.
///
/// - A thread reads standard input, a pipe whose only writer is the test process; at end of
///   file (the emulator was dropped, or the test process died in any way, `SIGKILL` included)
///   it ends the process with `os._exit`. The server needs no separate supervisor.
/// - It serves the app `python3 -m moto.server` serves (`DomainDispatcherApplication`), on a
///   port the kernel picks (no race between choosing and binding a port), threaded.
/// - `POST /rds-balancer-testkit` with `{"op": "call", "service", "method", "params"}` runs one
///   boto3 call of `service` (`rds` when absent, `secretsmanager`, ...: moto serves every AWS
///   service on the one port) against the server itself, so each call goes through moto's real
///   HTTP API, and answers `{"ok": response}` or `{"error": {"code", "message"}}` as JSON (one
///   boto3 client per service, made at its first call);
///   `{"op": "set_status", "instance_id", "status"}` sets an instance's status in moto's backend,
///   which its public API cannot do.
/// - Once a first RDS call has been answered (which also loads moto's RDS backend) it prints
///   `READY <port> <moto version>`; a missing module prints `MISSING <error>` and exits.
const LAUNCHER: &str = r#"
import os, sys, threading

def watch_stdin():
    try:
        while sys.stdin.buffer.read(65536):
            pass
    finally:
        os._exit(0)

threading.Thread(target=watch_stdin, daemon=True).start()
try:
    import json, logging
    import boto3, moto
    from botocore.config import Config
    from werkzeug.serving import make_server
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
except ImportError as e:
    print("MISSING %s" % e, flush=True)
    os._exit(3)

REGION = "us-east-1"
for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
    os.environ.pop(var, None)  # the calls to itself go straight to 127.0.0.1
logging.getLogger("werkzeug").setLevel(logging.ERROR)
app = DomainDispatcherApplication(create_backend_app)
clients = {}
clients_lock = threading.Lock()

def client(service):
    with clients_lock:  # making a boto3 client is not thread-safe
        if service not in clients:
            clients[service] = boto3.client(
                service, endpoint_url="http://127.0.0.1:%s" % os.environ["MOTO_PORT"],
                region_name=REGION, aws_access_key_id="test", aws_secret_access_key="test",
                config=Config(retries={"total_max_attempts": 1}))
        return clients[service]

def set_status(instance_id, status):
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.rds.models import rds_backends
    db = rds_backends[DEFAULT_ACCOUNT_ID][REGION].databases.get(instance_id)
    if db is None:
        raise LookupError("DBInstance %s not found." % instance_id)
    db.status = status
    return {}

def admin(req):
    if req["op"] == "call":
        out = getattr(client(req.get("service", "rds")), req["method"])(**req.get("params", {}))
        out.pop("ResponseMetadata", None)
        return out
    if req["op"] == "set_status":
        return set_status(req["instance_id"], req["status"])
    raise ValueError("unknown op %r" % req["op"])

def serve(environ, start_response):
    if environ.get("PATH_INFO") != "/rds-balancer-testkit":
        return app(environ, start_response)
    try:
        size = int(environ.get("CONTENT_LENGTH") or 0)
        body = {"ok": admin(json.loads(environ["wsgi.input"].read(size)))}
    except Exception as e:
        err = getattr(e, "response", None) or {}
        err = err.get("Error", {}) if isinstance(err, dict) else {}
        code = "DBInstanceNotFound" if isinstance(e, LookupError) else type(e).__name__
        body = {"error": {"code": err.get("Code", code), "message": err.get("Message", str(e))}}
    data = json.dumps(body, default=str).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]

srv = make_server("127.0.0.1", 0, serve, threaded=True)
os.environ["MOTO_PORT"] = str(srv.port)
threading.Thread(target=srv.serve_forever, daemon=True).start()
client("rds").describe_db_clusters()
print("READY %d %s" % (srv.port, moto.__version__), flush=True)
threading.Event().wait()
"#;

/// The running server; dropping it closes its standard input and waits for it to exit.
#[derive(Debug)]
pub(super) struct Server {
    child: Child,
    stdin: Option<ChildStdin>,
    pub(super) port: u16,
    pub(super) moto_version: String,
    /// Its standard error (moto's tracebacks), for start errors.
    log: NamedTempFile,
}

impl Server {
    /// Starts the launcher and waits until it has answered a first RDS call.
    pub(super) fn start() -> Result<Server, Error> {
        let log = NamedTempFile::with_prefix("rds-balancer-moto-")
            .map_err(|e| Error::io("could not create the emulator's log file", e))?;
        let stderr = log
            .as_file()
            .try_clone()
            .map_err(|e| Error::io("could not open the emulator's log file", e))?;
        let mut child = Command::new("python3")
            .arg("-c")
            .arg(LAUNCHER)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => Error::MotoNotInstalled {
                    detail: "`python3` is not on PATH".to_owned(),
                },
                _ => Error::io("could not start python3 for the moto RDS emulator", e),
            })?;
        let stdin = child.stdin.take();
        let mut server = Server {
            child,
            stdin,
            port: 0,
            moto_version: String::new(),
            log,
        };
        // From here on, dropping `server` stops the process.
        let first_line = server.first_line()?;
        match first_line.split_whitespace().collect::<Vec<_>>()[..] {
            ["READY", port, version] => match port.parse() {
                Ok(port) => {
                    server.port = port;
                    server.moto_version = version.to_owned();
                    Ok(server)
                }
                Err(_) => Err(server.start_error(format!("bad port in {first_line:?}"))),
            },
            ["MISSING", ..] => Err(Error::MotoNotInstalled {
                detail: first_line.trim_start_matches("MISSING ").to_owned(),
            }),
            _ => Err(server.start_error(format!("unexpected first line {first_line:?}"))),
        }
    }

    /// The launcher's first line of standard output; the rest is drained by a thread that ends
    /// with the process.
    fn first_line(&mut self) -> Result<String, Error> {
        let Some(stdout) = self.child.stdout.take() else {
            return Err(self.start_error("no standard output".to_owned()));
        };
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = tx.send(lines.next());
            lines.for_each(drop);
        });
        match rx.recv_timeout(START_TIMEOUT) {
            Ok(Some(Ok(line))) => Ok(line),
            Ok(Some(Err(e))) => Err(Error::io("reading the emulator's standard output", e)),
            Ok(None) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = wait_deadline(&mut self.child, Duration::from_secs(5))
                    .ok()
                    .flatten()
                    .map_or_else(|| "closed its output".to_owned(), |s| s.to_string());
                Err(self.start_error(format!("it exited before answering ({status})")))
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                Err(self.start_error(format!("it did not answer within {START_TIMEOUT:?}")))
            }
        }
    }

    fn start_error(&self, reason: String) -> Error {
        let log = fs::read_to_string(self.log.path()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let mut log_tail = String::new();
        for line in &lines[lines.len().saturating_sub(40)..] {
            let _ = writeln!(log_tail, "{line}");
        }
        Error::EmulatorStart { reason, log_tail }
    }

    /// The server's process id.
    pub(super) fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // End of file on its standard input: the launcher exits at once.
        drop(self.stdin.take());
        if let Ok(None) = wait_deadline(&mut self.child, Duration::from_secs(10)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[cfg(test)]
mod test {
    use super::{ADMIN_PATH, LAUNCHER};

    #[test]
    fn the_launcher_serves_the_admin_path() {
        assert!(LAUNCHER.contains(&format!("!= \"{ADMIN_PATH}\"")));
    }
}
