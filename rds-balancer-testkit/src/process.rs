//! Running helper processes: as which OS user, with a deadline, and sending signals.

use std::ffi::OsStr;
use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::error::Error;

/// The OS identity the database servers and their tools run as.
///
/// Servers refuse to run as root, so when the test process is root they run as an unprivileged
/// user (`postgres`); otherwise as the current user.
#[derive(Debug, Clone)]
pub(crate) struct RunAs {
    ids: Option<(u32, u32)>,
}

impl RunAs {
    /// `user` when this process is root, else the current user.
    pub(crate) fn server_user(user: &str) -> Result<Self, Error> {
        if effective_uid()? != 0 {
            return Ok(RunAs { ids: None });
        }
        match lookup_user(user) {
            Some(ids) => Ok(RunAs { ids: Some(ids) }),
            None => Err(Error::NoServerUser {
                user: user.to_owned(),
            }),
        }
    }

    /// Hands `path` to the server user (no-op when not root).
    pub(crate) fn chown(&self, path: &Path) -> Result<(), Error> {
        match self.ids {
            Some((uid, gid)) => std::os::unix::fs::chown(path, Some(uid), Some(gid))
                .map_err(|e| Error::io(format!("chown {}", path.display()), e)),
            None => Ok(()),
        }
    }

    /// Creates directory `path` (and parents) owned by the server user.
    pub(crate) fn create_dir(&self, path: &Path) -> Result<(), Error> {
        fs::create_dir_all(path).map_err(|e| Error::io(format!("mkdir {}", path.display()), e))?;
        self.chown(path)
    }

    /// A command for `program` that runs as the server user, in `cwd`, with a clean environment
    /// (only `PATH`, `HOME=cwd` and `LC_ALL=C`; no stray `PG*` variables) and no standard input.
    pub(crate) fn command(&self, program: impl AsRef<OsStr>, cwd: &Path) -> Command {
        let mut cmd = Command::new(program);
        let path =
            std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
        cmd.env_clear()
            .env("PATH", path)
            .env("HOME", cwd)
            .env("LC_ALL", "C")
            .current_dir(cwd)
            .stdin(Stdio::null());
        if let Some((uid, gid)) = self.ids {
            cmd.uid(uid).gid(gid);
        }
        cmd
    }
}

/// The effective uid of this process (the owner of `/proc/self`).
fn effective_uid() -> Result<u32, Error> {
    if let Ok(meta) = fs::metadata("/proc/self") {
        return Ok(meta.uid());
    }
    let out = Command::new("id")
        .arg("-u")
        .output()
        .map_err(|e| Error::io("could not find this process's uid (`id -u`)", e))?;
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .map_err(|_| {
            Error::io(
                "could not parse `id -u`",
                std::io::ErrorKind::InvalidData.into(),
            )
        })
}

/// `user`'s uid and primary gid, from /etc/passwd or else `id`.
fn lookup_user(user: &str) -> Option<(u32, u32)> {
    let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
    let from_passwd = passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        if fields.next()? != user {
            return None;
        }
        let uid = fields.nth(1)?.parse().ok()?;
        let gid = fields.next()?.parse().ok()?;
        Some((uid, gid))
    });
    from_passwd.or_else(|| {
        let id = |flag: &str| -> Option<u32> {
            let out = Command::new("id").args([flag, user]).output().ok()?;
            if !out.status.success() {
                return None;
            }
            String::from_utf8_lossy(&out.stdout).trim().parse().ok()
        };
        Some((id("-u")?, id("-g")?))
    })
}

/// What a finished command printed.
#[derive(Debug)]
pub(crate) struct Captured {
    pub(crate) status: ExitStatus,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

/// Runs `cmd` to completion, capturing its output; kills it after `timeout`.
/// `what` names the command in errors.
pub(crate) fn run(mut cmd: Command, what: &str, timeout: Duration) -> Result<Captured, Error> {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::io(format!("could not run {what}"), e))?;
    let stdout = child.stdout.take().map(drain);
    let stderr = child.stderr.take().map(drain);
    let collect = |reader: Option<thread::JoinHandle<Vec<u8>>>| -> String {
        let bytes = reader.and_then(|r| r.join().ok()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    let status = match wait_deadline(&mut child, timeout) {
        Ok(Some(status)) => status,
        other => {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = collect(stderr);
            if let Err(e) = other {
                return Err(Error::io(format!("waiting for {what}"), e));
            }
            let detail = if stderr.trim().is_empty() {
                String::new()
            } else {
                format!(" ({})", stderr.trim())
            };
            return Err(Error::Timeout {
                what: format!("{what}{detail}"),
                after: timeout,
            });
        }
    };
    Ok(Captured {
        status,
        stdout: collect(stdout),
        stderr: collect(stderr),
    })
}

/// Like [`run`], but an unsuccessful exit is an [`Error::Command`]; returns standard output.
pub(crate) fn run_ok(cmd: Command, what: &str, timeout: Duration) -> Result<String, Error> {
    let out = run(cmd, what, timeout)?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(Error::Command {
            command: what.to_owned(),
            status: out.status.to_string(),
            stderr: out.stderr.trim().to_owned(),
        })
    }
}

fn drain(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        buf
    })
}

/// Waits for `child` to exit, at most `timeout`; `None` when it is still running.
pub(crate) fn wait_deadline(
    child: &mut Child,
    timeout: Duration,
) -> std::io::Result<Option<ExitStatus>> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// Sends signal `sig` (a name such as `STOP`) to `pids`, as this process's user.
pub(crate) fn signal(sig: &str, pids: &[u32]) -> Result<(), Error> {
    // A process that exited meanwhile (a backend ending its session) is not an error.
    let pids: Vec<u32> = pids.iter().copied().filter(|&p| is_alive(p)).collect();
    if pids.is_empty() {
        return Ok(());
    }
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("sig=$1; shift; kill -s \"$sig\" \"$@\"")
        .arg("sh")
        .arg(sig);
    cmd.args(pids.iter().map(u32::to_string));
    match run_ok(
        cmd,
        &format!("kill -s {sig} {pids:?}"),
        Duration::from_secs(10),
    ) {
        Err(Error::Command { stderr, .. }) if stderr.contains("No such process") => Ok(()),
        other => other.map(drop),
    }
}

/// The pids whose parent is `pid` (from `/proc/*/stat`).
pub(crate) fn children_of(pid: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&child| stat_fields(child).is_some_and(|(_, ppid)| ppid == pid))
        .collect()
}

/// Whether process `pid` exists and is not a zombie.
pub(crate) fn is_alive(pid: u32) -> bool {
    stat_fields(pid).is_some_and(|(state, _)| state != 'Z')
}

/// The state letter and parent pid of `pid`.
fn stat_fields(pid: u32) -> Option<(char, u32)> {
    let stat = fs::read_to_string(PathBuf::from(format!("/proc/{pid}/stat"))).ok()?;
    // "pid (comm) S ppid ...": comm may hold spaces and parentheses, so parse after the last ')'.
    let mut rest = stat.get(stat.rfind(')')? + 1..)?.split_whitespace();
    let state = rest.next()?.chars().next()?;
    Some((state, rest.next()?.parse().ok()?))
}

/// Waits until none of `pids` is alive, at most `timeout`; returns whether they all went.
pub(crate) fn wait_gone(pids: &[u32], timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if !pids.iter().any(|&p| is_alive(p)) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(5));
    }
}
