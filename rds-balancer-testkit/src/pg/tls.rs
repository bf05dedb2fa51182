//! A cluster's TLS material: a throw-away CA and a server certificate it signs, made with the
//! `openssl` command-line tool in `<cluster dir>/tls`, owned by the server user.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::Error;
use crate::process::{RunAs, run_ok};

/// The names the server certificate is valid for (its subject alternative names): loopback,
/// and the instance host names of the RDS emulator (which resolve to loopback).
pub(crate) const SERVER_NAMES: &str =
    "DNS:localhost, IP:127.0.0.1, DNS:*.aaaaaaaaaa.us-east-1.rds.amazonaws.com";

/// `openssl` configuration for both certificates (written to `openssl.cnf`, so that the
/// machine's own configuration adds no extension). The CA: `CA:TRUE`, may sign certificates;
/// the server: not a CA, `serverAuth`, [`SERVER_NAMES`]. As strict verifiers (rustls/webpki)
/// expect: version 3, key identifiers, P-256 ECDSA with SHA-256.
const OPENSSL_CNF: &str = "
[req]
distinguished_name = dn
prompt = no

[dn]
CN = rds-balancer-testkit

[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = @names
";

/// Each `openssl` run takes milliseconds.
const OPENSSL_TIMEOUT: Duration = Duration::from_secs(60);

/// Ten years: far longer than any test, and still inside what verifiers accept.
const DAYS: &str = "3650";

/// The files of a cluster's TLS set-up.
#[derive(Debug)]
pub(crate) struct Tls {
    /// The CA certificate (PEM) that clients trust.
    pub(crate) ca: PathBuf,
    /// The server certificate (PEM), signed by the CA.
    pub(crate) cert: PathBuf,
    /// The server's private key (PEM), mode 0600, owned by the server user.
    pub(crate) key: PathBuf,
}

impl Tls {
    /// Makes a CA and a server certificate in `dir` (created, owned by the server user).
    pub(crate) fn generate(run_as: &RunAs, dir: &Path) -> Result<Tls, Error> {
        run_as.create_dir(dir)?;
        let cnf = dir.join("openssl.cnf");
        let names: String = SERVER_NAMES
            .split(", ")
            .enumerate()
            .map(|(i, name)| {
                let (kind, value) = name.split_once(':').unwrap_or(("DNS", name));
                format!("{kind}.{} = {value}\n", i + 1)
            })
            .collect();
        let text = format!("{OPENSSL_CNF}\n[names]\n{names}");
        fs::write(&cnf, text).map_err(|e| Error::io(format!("write {}", cnf.display()), e))?;
        run_as.chown(&cnf)?;

        let openssl = |args: &[&str], what: &str| {
            let mut cmd = run_as.command("openssl", dir);
            cmd.args(args);
            run_ok(
                cmd,
                &format!(
                    "openssl {what} (TLS test certificates; if it is missing: \
                     apt-get install -y openssl)"
                ),
                OPENSSL_TIMEOUT,
            )
        };
        let new_key = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-config",
            "openssl.cnf",
        ];
        // A name of its own (the cluster directory's), so that a verifier given another
        // cluster's CA reports an unknown issuer rather than a bad signature.
        let cluster = dir
            .parent()
            .and_then(Path::file_name)
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        let ca_subject = format!("/CN=rds-balancer-testkit CA {cluster}");
        let mut ca_args = vec!["req", "-x509", "-sha256", "-days", DAYS];
        ca_args.extend(new_key);
        ca_args.extend([
            "-extensions",
            "ca",
            "-subj",
            &ca_subject,
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
        ]);
        openssl(&ca_args, "req -x509 (the CA)")?;
        let mut csr_args = vec!["req", "-new"];
        csr_args.extend(new_key);
        csr_args.extend([
            "-subj",
            "/CN=localhost",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ]);
        openssl(&csr_args, "req -new (the server key)")?;
        openssl(
            &[
                "x509",
                "-req",
                "-sha256",
                "-days",
                DAYS,
                "-in",
                "server.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-extfile",
                "openssl.cnf",
                "-extensions",
                "server",
                "-out",
                "server.crt",
            ],
            "x509 -req (signing the server certificate)",
        )?;
        let tls = Tls {
            ca: dir.join("ca.crt"),
            cert: dir.join("server.crt"),
            key: dir.join("server.key"),
        };
        // PostgreSQL refuses a key file that its group or others may read.
        for (path, mode) in [
            (&tls.key, 0o600),
            (&dir.join("ca.key"), 0o600),
            (&tls.cert, 0o644),
            (&tls.ca, 0o644),
        ] {
            fs::set_permissions(path, fs::Permissions::from_mode(mode))
                .map_err(|e| Error::io(format!("chmod {mode:o} {}", path.display()), e))?;
        }
        Ok(tls)
    }

    /// The `postgresql.conf` lines that serve this certificate (absolute paths, so replicas
    /// made by `pg_basebackup`, which copies `postgresql.conf`, serve it too).
    pub(crate) fn settings(&self) -> String {
        format!(
            "ssl = on\nssl_cert_file = {}\nssl_key_file = {}\n",
            quote(&self.cert),
            quote(&self.key)
        )
    }
}

/// `path` as a `postgresql.conf` string literal.
fn quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', "''"))
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn settings_quote_paths() {
        let tls = Tls {
            ca: PathBuf::from("/t/ca.crt"),
            cert: PathBuf::from("/t/it's/server.crt"),
            key: PathBuf::from("/t/server.key"),
        };
        assert_eq!(
            tls.settings(),
            "ssl = on\nssl_cert_file = '/t/it''s/server.crt'\nssl_key_file = '/t/server.key'\n"
        );
    }
}
