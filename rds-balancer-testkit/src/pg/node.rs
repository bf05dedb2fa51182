//! One PostgreSQL server of a cluster: its identity and how to query it (its process
//! lifecycle and faults are in `server.rs`).

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::Ctx;
use crate::error::Error;
use crate::process;
use crate::text::percent_encode;

/// The default deadline of [`PgNode::psql`].
pub(crate) const PSQL_TIMEOUT: Duration = Duration::from_secs(60);

/// One PostgreSQL server of a [`PgCluster`](crate::PgCluster): its name, port and data, and the
/// faults it can be put through (stop, crash, pause, restart).
///
/// Obtained from the cluster (`primary()`, `replicas()`, `nodes()`); it stays valid, with the
/// same name and port, across restarts and promotions.
pub struct PgNode {
    inner: Arc<Inner>,
}

struct Inner {
    ctx: Arc<Ctx>,
    name: String,
    port: u16,
    /// `<cluster dir>/<name>`: holds `data/`, `sock/` and `postgres.log`.
    dir: PathBuf,
    state: Mutex<State>,
}

/// The server process, guarded by the node's lock.
#[derive(Default)]
pub(super) struct State {
    /// The postmaster, a child of this process (never daemonized).
    pub(super) server: Option<Child>,
    /// Stopped with `SIGSTOP` by `pause`.
    pub(super) paused: bool,
}

impl PgNode {
    pub(crate) fn new(ctx: Arc<Ctx>, name: &str, port: u16) -> Self {
        let dir = ctx.root.join(name);
        PgNode {
            inner: Arc::new(Inner {
                ctx,
                name: name.to_owned(),
                port,
                dir,
                state: Mutex::default(),
            }),
        }
    }

    /// Another handle to the same node.
    pub(crate) fn handle(&self) -> PgNode {
        PgNode {
            inner: Arc::clone(&self.inner),
        }
    }

    /// The node's name: `primary`, `replica-1`, `replica-2`, ... (fixed at creation: after a
    /// promotion `replica-1` may be the primary).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The loopback port it listens on (on 127.0.0.1 only).
    pub fn port(&self) -> u16 {
        self.inner.port
    }

    /// A connection URL for database `db` as the `postgres` superuser (trust authentication):
    /// `postgres://postgres@127.0.0.1:PORT/db`.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.inner.port)
    }

    /// A connection URL for database `db` as role `user` with `password` (both
    /// percent-encoded): `postgres://user:password@127.0.0.1:PORT/db`. Roles other than
    /// `postgres` must give their password
    /// ([`PgCluster::create_role`](crate::PgCluster::create_role)).
    ///
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// use rds_balancer_testkit::PgCluster;
    ///
    /// # fn main() -> Result<(), rds_balancer_testkit::Error> {
    /// let cluster = PgCluster::start(0)?;
    /// cluster.create_role("app", "s3cret/+")?;
    /// let url = cluster.primary().url_as("postgres", "app", "s3cret/+");
    /// assert_eq!(
    ///     url,
    ///     format!("postgres://app:s3cret%2F%2B@127.0.0.1:{}/postgres", cluster.primary().port())
    /// );
    /// let who = cluster.psql_conninfo(&url, "SELECT current_user", Duration::from_secs(10))?;
    /// assert_eq!(who, "app");
    /// # Ok(()) }
    /// ```
    pub fn url_as(&self, db: &str, user: &str, password: &str) -> String {
        format!(
            "postgres://{}:{}@127.0.0.1:{}/{db}",
            percent_encode(user),
            percent_encode(password),
            self.inner.port
        )
    }

    /// The server's data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.inner.dir.join("data")
    }

    /// The server's log file (all starts of this node append to it).
    pub fn log_path(&self) -> PathBuf {
        self.inner.dir.join("postgres.log")
    }

    pub(crate) fn ctx(&self) -> &Ctx {
        &self.inner.ctx
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.inner.dir
    }

    pub(super) fn sock_dir(&self) -> PathBuf {
        self.inner.dir.join("sock")
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether the server process is alive (a paused server counts as running).
    pub fn is_running(&self) -> bool {
        Self::alive(&mut self.lock())
    }

    /// Whether the server is paused by [`pause`](Self::pause).
    pub fn is_paused(&self) -> bool {
        let mut state = self.lock();
        Self::alive(&mut state) && state.paused
    }

    /// Running and not paused: it will answer.
    pub(crate) fn is_answering(&self) -> bool {
        let mut state = self.lock();
        Self::alive(&mut state) && !state.paused
    }

    pub(super) fn alive(state: &mut State) -> bool {
        matches!(state.server.as_mut().map(Child::try_wait), Some(Ok(None)))
    }

    /// Runs `sql` (one or more statements) on this server in database `db` with `psql -X -q -At
    /// -w -v ON_ERROR_STOP=1` as `postgres`, and returns what it printed, without the final
    /// newline: one line per row, columns separated by `|`, no headers and no command tags. A
    /// failing statement is an [`Error::Command`] carrying psql's standard error. Gives up after
    /// 60 s.
    pub fn psql(&self, db: &str, sql: &str) -> Result<String, Error> {
        self.psql_with_timeout(db, sql, PSQL_TIMEOUT)
    }

    /// Like [`psql`](Self::psql) with a deadline of `timeout` for connecting and running (psql is
    /// killed then, and an [`Error::Timeout`] returned): the way to observe a paused server.
    pub fn psql_with_timeout(
        &self,
        db: &str,
        sql: &str,
        timeout: Duration,
    ) -> Result<String, Error> {
        run_psql(&self.inner.ctx, self.name(), self.port(), db, sql, timeout)
    }
}

/// Runs `sql` with psql on `127.0.0.1:port` (see [`PgNode::psql`]); `who` names what listens
/// there in errors.
pub(crate) fn run_psql(
    ctx: &Ctx,
    who: &str,
    port: u16,
    db: &str,
    sql: &str,
    timeout: Duration,
) -> Result<String, Error> {
    let mut cmd = psql_command(ctx);
    cmd.args(["-h", "127.0.0.1", "-U", "postgres"]);
    cmd.arg("-p")
        .arg(port.to_string())
        .arg("-d")
        .arg(db)
        .arg("-c")
        .arg(sql);
    // libpq treats values under 2 as 2.
    cmd.env(
        "PGCONNECT_TIMEOUT",
        timeout.as_secs().clamp(2, 10).to_string(),
    );
    let what = format!(
        "psql on {who} (port {port}, db {db}) running `{}`",
        sql.trim()
    );
    finish_psql(cmd, &what, timeout)
}

/// Runs `sql` with psql connecting with the libpq connection string `conninfo` (see
/// [`PgCluster::psql_conninfo`](crate::PgCluster::psql_conninfo)).
pub(crate) fn run_psql_conninfo(
    ctx: &Ctx,
    conninfo: &str,
    sql: &str,
    timeout: Duration,
) -> Result<String, Error> {
    let mut cmd = psql_command(ctx);
    cmd.arg("-d").arg(conninfo).arg("-c").arg(sql);
    // A `connect_timeout` in `conninfo` wins over this.
    cmd.env(
        "PGCONNECT_TIMEOUT",
        timeout.as_secs().clamp(2, 10).to_string(),
    );
    let what = format!(
        "psql with `{}` running `{}`",
        redact_password(conninfo),
        sql.trim()
    );
    finish_psql(cmd, &what, timeout)
}

/// `psql -X -q -At -w -v ON_ERROR_STOP=1`: no psqlrc, quiet, unaligned tuples only, never a
/// password prompt (a missing password fails at once), stop at the first error.
fn psql_command(ctx: &Ctx) -> Command {
    let mut cmd = ctx.run_as.command(ctx.bin.tool("psql"), &ctx.root);
    cmd.args(["-X", "-q", "-At", "-w", "-v", "ON_ERROR_STOP=1"]);
    cmd
}

fn finish_psql(cmd: Command, what: &str, timeout: Duration) -> Result<String, Error> {
    let out = process::run_ok(cmd, what, timeout)?;
    Ok(out.strip_suffix('\n').unwrap_or(&out).to_owned())
}

/// `conninfo` with the values of its passwords replaced by `***`: `password=...` (keyword/value
/// or URI query) and the `user:password@` of a URI.
pub(crate) fn redact_password(conninfo: &str) -> String {
    let mut text = conninfo.to_owned();
    // The URI's user info: `scheme://user:password@host...`.
    if let Some(scheme_end) = text.find("://") {
        let rest = scheme_end + 3;
        let authority_end = text[rest..]
            .find(['/', '?'])
            .map_or(text.len(), |at| rest + at);
        if let Some(at) = text[rest..authority_end].rfind('@') {
            let userinfo = &text[rest..rest + at];
            if let Some(colon) = userinfo.find(':') {
                text.replace_range(rest + colon + 1..rest + at, "***");
            }
        }
    }
    // `password=value`, `password = 'quoted value'`, `?password=value&...`.
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(found) = rest.find("password") {
        let (before, after) = rest.split_at(found + "password".len());
        out.push_str(before);
        let trimmed = after.trim_start();
        let Some(value) = trimmed.strip_prefix('=') else {
            rest = after;
            continue;
        };
        out.push_str(&after[..after.len() - trimmed.len()]);
        out.push('=');
        let value_start = value.trim_start();
        out.push_str(&value[..value.len() - value_start.len()]);
        let (skip, mask) = if let Some(quoted) = value_start.strip_prefix('\'') {
            // Up to the closing quote that is not escaped with a backslash.
            let mut end = quoted.len();
            let mut escaped = false;
            for (i, c) in quoted.char_indices() {
                match c {
                    _ if escaped => escaped = false,
                    '\\' => escaped = true,
                    '\'' => {
                        end = i + 1;
                        break;
                    }
                    _ => {}
                }
            }
            (1 + end, "'***'")
        } else {
            let end = value_start
                .find(|c: char| c.is_whitespace() || c == '&')
                .unwrap_or(value_start.len());
            (end, "***")
        };
        out.push_str(mask);
        rest = &value_start[skip..];
    }
    out.push_str(rest);
    out
}

impl fmt::Debug for PgNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgNode")
            .field("name", &self.inner.name)
            .field("port", &self.inner.port)
            .field("dir", &self.inner.dir)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod test {
    use super::{percent_encode, redact_password};

    #[test]
    fn passwords_are_redacted_from_connection_strings() {
        let cases = [
            (
                "host=127.0.0.1 user=app password=s3cret dbname=x",
                "host=127.0.0.1 user=app password=*** dbname=x",
            ),
            (
                "host=h password = 'a b\\' c' sslmode=require",
                "host=h password = '***' sslmode=require",
            ),
            (
                "postgres://app:s3cret@127.0.0.1:5432/db?sslmode=verify-full",
                "postgres://app:***@127.0.0.1:5432/db?sslmode=verify-full",
            ),
            (
                "postgresql://app@h/db?password=x&sslmode=require",
                "postgresql://app@h/db?password=***&sslmode=require",
            ),
            ("host=h user=postgres", "host=h user=postgres"),
            ("passwordless=1", "passwordless=1"),
        ];
        for (conninfo, redacted) in cases {
            assert_eq!(redact_password(conninfo), redacted, "{conninfo}");
        }
    }

    #[test]
    fn user_info_is_percent_encoded() {
        assert_eq!(percent_encode("a-b_c.d~E9"), "a-b_c.d~E9");
        assert_eq!(percent_encode("p@ss:w/rd é"), "p%40ss%3Aw%2Frd%20%C3%A9");
    }
}
