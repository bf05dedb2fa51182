//! The watchdog that stops a cluster's servers when the test process goes away.
//!
//! A `static OnceLock<PgCluster>` is never dropped, and `panic = "abort"`, `process::exit` or a
//! `SIGKILL` skip destructors, so `Drop` alone cannot promise "no orphans". Each cluster therefore
//! starts one tiny `sh` supervisor, running as the server user in its own process group, whose
//! standard input is a pipe whose only writer is the test process (std opens it close-on-exec, so
//! no other child inherits it). The supervisor blocks in `read`; when the pipe closes, because
//! the cluster was dropped or because the test process died in any way, it:
//!
//! 1. finds every process whose command line names a path under the cluster's directory (the
//!    servers run as `postgres -D <dir>/<node>/data`, likewise `initdb` and `pg_basebackup`);
//! 2. resumes each with its children (`SIGCONT`, in case a node was paused) and asks it to stop
//!    (`SIGINT`: PostgreSQL's fast shutdown);
//! 3. waits up to 15 s, then `SIGKILL`s whatever is left;
//! 4. removes the cluster's directory.

use std::path::Path;
use std::process::{Child, ChildStdin, Stdio};
use std::time::Duration;

use crate::error::Error;
use crate::process::{RunAs, wait_deadline};

/// The supervisor's script; `ROOT`, `ROOT_RE` and `STOP_SIGNAL` come from its environment, so
/// its own command line never names the directory it scans for.
const SCRIPT: &str = r#"
trap '' HUP INT QUIT PIPE
while read -r _; do :; done
alive() { read -r s < "/proc/$1/stat" 2>/dev/null || return 1; s=${s##*) }; [ "${s%% *}" != Z ]; }
kids() {
  want=$1
  for f in /proc/[0-9]*/stat; do
    read -r s < "$f" 2>/dev/null || continue
    s=${s##*) }; s=${s#* }
    [ "${s%% *}" = "$want" ] || continue
    p=${f#/proc/}; echo "${p%/stat}"
  done
}
servers=$(grep -alE -e "$ROOT_RE" /proc/[0-9]*/cmdline 2>/dev/null | sed -e 's|^/proc/||' -e 's|/cmdline$||')
for pm in $servers; do
  kill -CONT $pm $(kids $pm) 2>/dev/null
  kill -s "$STOP_SIGNAL" $pm 2>/dev/null
done
n=0
while [ $n -lt 150 ]; do
  left=
  for pm in $servers; do alive $pm && left=1; done
  [ -z "$left" ] && break
  sleep 0.1; n=$((n+1))
done
for pm in $servers; do alive $pm && kill -KILL $pm $(kids $pm) 2>/dev/null; done
rm -rf "$ROOT" 2>/dev/null || find "$ROOT" -mindepth 1 -delete 2>/dev/null
exit 0
"#;

/// A running supervisor; dropping it closes the pipe and waits for the clean-up to finish.
#[derive(Debug)]
pub(crate) struct Supervisor {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Supervisor {
    /// Starts a supervisor for the cluster in `root`, stopping servers with `stop_signal`.
    pub(crate) fn spawn(root: &Path, run_as: &RunAs, stop_signal: &str) -> Result<Self, Error> {
        use std::os::unix::process::CommandExt;
        let root_str = root.to_string_lossy();
        // Matches "<root>/<letter>": a server's `-D <root>/primary/data`, never this pattern
        // itself as it appears in grep's own command line ("<root>/[a-z]").
        let root_re = format!("{}/[a-z]", regex_escape(&root_str));
        let mut cmd = run_as.command("sh", root);
        cmd.arg("-c")
            .arg(SCRIPT)
            .env("ROOT", root)
            .env("ROOT_RE", root_re)
            .env("STOP_SIGNAL", stop_signal)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group: a Ctrl-C or a group kill aimed at the tests spares it.
            .process_group(0);
        let mut child = cmd
            .spawn()
            .map_err(|e| Error::io("could not start the cluster supervisor (sh)", e))?;
        let stdin = child.stdin.take();
        Ok(Supervisor { child, stdin })
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        drop(self.stdin.take());
        // The script bounds its own work (15 s of grace, then SIGKILL); this is a backstop.
        if let Ok(None) = wait_deadline(&mut self.child, Duration::from_secs(60)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Escapes POSIX ERE metacharacters.
fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\^$.|?*+()[]{}".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod test {
    use super::regex_escape;

    #[test]
    fn regex_metacharacters_are_escaped() {
        assert_eq!(regex_escape("/tmp/a.b+c(d)"), "/tmp/a\\.b\\+c\\(d\\)");
        assert_eq!(
            regex_escape("/tmp/rds-balancer-pg-x1"),
            "/tmp/rds-balancer-pg-x1"
        );
    }
}
