//! IAM auth tokens: byte-identical to botocore's, cached per endpoint, renewed before they
//! expire, and never shown. Everything is signed locally: no AWS endpoint is contacted.

// Helpers outside `#[test]` functions panic to fail the test, as the tests themselves do.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_config::SdkConfig;
use aws_sdk_rds::config::{Region, SharedCredentialsProvider};
use aws_sdk_rds::primitives::{DateTime, DateTimeFormat};
use rds_balancer::{AwsSettings, CredentialProvider, Credentials, Endpoint, ErrorKind, IamAuth};

const ACCESS_KEY_ID: &str = "AKIDEXAMPLE";
const SECRET_ACCESS_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const SESSION_TOKEN: &str = "FwoGZXIvYXdzEXAMPLESESSIONTOKEN/with+odd=chars";

/// Signs with botocore, its clock pinned to a given second.
///
/// Reads a JSON list of cases on stdin and writes the list of their tokens. Current botocore
/// (1.43 here) reads the time through `botocore.auth.get_current_datetime()`; older versions
/// call `datetime.datetime.utcnow()` in `botocore.auth`. Either is patched to return the case's
/// instant, and the token is checked to carry it, so a patch that did not take fails loudly.
/// A lifetime of 900 s goes through the public `generate_db_auth_token` (which always uses
/// 900 s); any other through the same steps with `expires_in` set (botocore's own body of
/// that function).
const BOTOCORE_SIGNER: &str = r#"
import datetime, json, sys
from unittest import mock

import botocore
import botocore.auth
import botocore.session
import botocore.signers

cases = json.load(sys.stdin)
tokens = []
for case in cases:
    fixed = datetime.datetime.strptime(case["signed_at"], "%Y%m%dT%H%M%SZ")
    if hasattr(botocore.auth, "get_current_datetime"):
        clock = mock.patch("botocore.auth.get_current_datetime", return_value=fixed)
    else:
        fake = mock.MagicMock(wraps=datetime)
        fake.datetime.utcnow.return_value = fixed
        clock = mock.patch("botocore.auth.datetime", fake)
    client = botocore.session.Session().create_client(
        "rds",
        region_name=case["region"],
        aws_access_key_id=case["access_key_id"],
        aws_secret_access_key=case["secret_access_key"],
        aws_session_token=case["session_token"],
    )
    with clock:
        if case["expires_in"] == 900:
            token = client.generate_db_auth_token(
                DBHostname=case["host"], Port=case["port"], DBUsername=case["user"],
                Region=case["region"],
            )
        else:
            request_dict = {
                "url_path": "/", "query_string": "", "headers": {},
                "body": {"Action": "connect", "DBUser": case["user"]}, "method": "GET",
            }
            botocore.signers.prepare_request_dict(
                request_dict, f"https://{case['host']}:{case['port']}"
            )
            url = client._request_signer.generate_presigned_url(
                operation_name="connect", request_dict=request_dict,
                region_name=case["region"], expires_in=case["expires_in"],
                signing_name="rds-db",
            )
            token = url[len("https://"):]
    if "X-Amz-Date=" + case["signed_at"] not in token:
        sys.exit(f"botocore {botocore.__version__} ignored the patched clock: {token}")
    tokens.append(token)
json.dump({"botocore": botocore.__version__, "tokens": tokens}, sys.stdout)
"#;

/// One token to sign on both sides.
struct Case {
    region: &'static str,
    host: &'static str,
    port: u16,
    user: &'static str,
    session_token: Option<&'static str>,
    lifetime: Duration,
}

/// botocore's tokens for `cases`, each signed at its `signed_at` (`20240826T220000Z`).
/// Panics, failing the test, when python3 or botocore is missing.
fn botocore_tokens(cases: &[(&Case, &str)]) -> Vec<String> {
    let input = serde_json::Value::Array(
        cases
            .iter()
            .map(|(case, signed_at)| {
                serde_json::json!({
                    "access_key_id": ACCESS_KEY_ID,
                    "secret_access_key": SECRET_ACCESS_KEY,
                    "session_token": case.session_token,
                    "region": case.region,
                    "host": case.host,
                    "port": case.port,
                    "user": case.user,
                    "expires_in": case.lifetime.as_secs(),
                    "signed_at": signed_at,
                })
            })
            .collect(),
    );
    run_botocore(&input)
}

/// Runs [`BOTOCORE_SIGNER`] on `input`; fails the test when python3 or botocore is missing.
fn run_botocore(input: &serde_json::Value) -> Vec<String> {
    let mut python = Command::new("python3")
        .args(["-c", BOTOCORE_SIGNER])
        // Only the arguments count: no profile, no environment credentials or region.
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_DEFAULT_PROFILE")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| {
            panic!("python3 is required to check the tokens against botocore: {err}")
        });
    python
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.to_string().as_bytes())
        .expect("write the cases to python3");
    let output = python.wait_with_output().expect("python3 ran");
    assert!(
        output.status.success(),
        "python3 with botocore (installed with moto: `pip install moto[server]`) is required \
         to check the tokens; it failed with {}:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let answer: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("botocore's answer is JSON");
    eprintln!("compared with botocore {}", answer["botocore"]);
    answer["tokens"]
        .as_array()
        .expect("a list of tokens")
        .iter()
        .map(|token| token.as_str().expect("a token").to_owned())
        .collect()
}

async fn iam_auth(case: &Case) -> IamAuth {
    IamAuth::builder(case.user)
        .region(case.region)
        .credentials(
            ACCESS_KEY_ID,
            SECRET_ACCESS_KEY,
            case.session_token.map(str::to_owned),
        )
        .token_lifetime(case.lifetime)
        .build()
        .await
        .expect("an IAM provider with explicit credentials builds offline")
}

/// The `X-Amz-Date` of a token (`20240826T220000Z`).
fn amz_date(token: &str) -> &str {
    let (_, rest) = token
        .split_once("X-Amz-Date=")
        .unwrap_or_else(|| panic!("no X-Amz-Date in the token"));
    &rest[..16]
}

/// A `20240826T220000Z` stamp as a time.
fn parse_amz_date(stamp: &str) -> SystemTime {
    let rfc3339 = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &stamp[0..4],
        &stamp[4..6],
        &stamp[6..8],
        &stamp[9..11],
        &stamp[11..13],
        &stamp[13..15]
    );
    let parsed = DateTime::from_str(&rfc3339, DateTimeFormat::DateTime).expect("an RFC 3339 date");
    SystemTime::try_from(parsed).expect("a representable time")
}

fn token_of(credentials: &Credentials) -> &str {
    credentials.password.expose()
}

/// When a token was signed, from its `X-Amz-Date`.
fn signed_at(credentials: &Credentials) -> SystemTime {
    parse_amz_date(amz_date(token_of(credentials)))
}

/// Our tokens are signed at whatever second the system clock says, and botocore's clock is
/// then pinned to that second (read back from our `X-Amz-Date`): both sign the same request at
/// the same instant. (`with_a_fixed_clock_the_token_is_botocores` fixes both clocks.)
#[tokio::test]
async fn tokens_are_byte_identical_to_botocores() {
    let cases = [
        Case {
            region: "us-east-1",
            host: "prod-instance.us-east-1.rds.amazonaws.com",
            port: 3306,
            user: "peccy",
            session_token: None,
            lifetime: Duration::from_secs(900),
        },
        Case {
            region: "eu-west-1",
            host: "orders.cluster-ro-c9akciq32.eu-west-1.rds.amazonaws.com",
            port: 5432,
            user: "iam_app",
            session_token: Some(SESSION_TOKEN),
            lifetime: Duration::from_secs(900),
        },
        // A user name that must be percent-encoded: `+`, space, `@`, `&`, `#`, `%`, `é`.
        Case {
            region: "ap-southeast-2",
            host: "reports-1.abcdefghijkl.ap-southeast-2.rds.amazonaws.com",
            port: 3306,
            user: "report+ro user@team&x=#1%é",
            session_token: None,
            lifetime: Duration::from_secs(900),
        },
        // Addresses instead of names.
        Case {
            region: "us-east-1",
            host: "10.0.3.12",
            port: 5432,
            user: "app",
            session_token: None,
            lifetime: Duration::from_secs(900),
        },
        Case {
            region: "us-east-1",
            host: "[fd00:ec2::254]",
            port: 3306,
            user: "app",
            session_token: None,
            lifetime: Duration::from_secs(900),
        },
        // A shorter lifetime is the X-Amz-Expires of both.
        Case {
            region: "us-west-2",
            host: "writer.cluster-xyz.us-west-2.rds.amazonaws.com",
            port: 15432,
            user: "app",
            session_token: Some(SESSION_TOKEN),
            lifetime: Duration::from_secs(300),
        },
    ];
    let mut ours = Vec::new();
    for case in &cases {
        let before = SystemTime::now();
        let credentials = iam_auth(case)
            .await
            .credentials(&Endpoint::new(case.host, case.port))
            .await
            .expect("a token is signed offline");
        let token = token_of(&credentials).to_owned();
        // Signed now, by the SDK configuration's (system) clock...
        let signed = signed_at(&credentials);
        assert!(
            signed + Duration::from_secs(1) >= before && signed <= SystemTime::now(),
            "signed at {signed:?}"
        );
        // ...valid for the lifetime from that second on...
        assert_eq!(credentials.expires_at, Some(signed + case.lifetime));
        assert_eq!(credentials.username.as_deref(), Some(case.user));
        assert!(
            token.contains(&format!("&X-Amz-Expires={}&", case.lifetime.as_secs())),
            "{}",
            amz_date(&token)
        );
        ours.push(token);
    }
    // ...and botocore, its clock pinned to that same second, signs exactly the same URL.
    let stamps: Vec<String> = ours
        .iter()
        .map(|token| amz_date(token).to_owned())
        .collect();
    let inputs: Vec<(&Case, &str)> = cases
        .iter()
        .zip(stamps.iter().map(String::as_str))
        .collect();
    let theirs = botocore_tokens(&inputs);
    assert_eq!(theirs.len(), cases.len());
    for ((case, ours), theirs) in cases.iter().zip(&ours).zip(&theirs) {
        // Compared without printing either token (a mismatch shows where they part).
        let common = ours
            .bytes()
            .zip(theirs.bytes())
            .take_while(|(a, b)| a == b)
            .count();
        assert!(
            ours == theirs,
            "the token for {}@{}:{} differs from botocore's after {common} bytes \
             (lengths {} and {}): {:?} vs {:?}",
            case.user,
            case.host,
            case.port,
            ours.len(),
            theirs.len(),
            ours.get(..common).map(|same| same.split('&').next_back()),
            theirs
                .get(common..)
                .map(|rest| rest.chars().take(20).collect::<String>()),
        );
    }
}

/// The harness itself agrees with the AWS SDK's own known answer (aws-sdk-rds' `auth_token`
/// test: fixed clock 2024-08-26T22:00:00Z, key `akid` / `secret`), so a broken clock patch
/// cannot make both sides agree on a wrong token.
#[test]
fn the_botocore_harness_reproduces_the_sdks_known_answer() {
    const SDK_KNOWN_ANSWER: &str = "prod-instance.us-east-1.rds.amazonaws.com:3306/?Action=connect\
        &DBUser=peccy&X-Amz-Algorithm=AWS4-HMAC-SHA256\
        &X-Amz-Credential=akid%2F20240826%2Fus-east-1%2Frds-db%2Faws4_request\
        &X-Amz-Date=20240826T220000Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host\
        &X-Amz-Signature=dd0cba843009474347af724090233265628ace491ea17ce3eb3da098b983ad89";
    let input = serde_json::json!([{
        "access_key_id": "akid",
        "secret_access_key": "secret",
        "session_token": null,
        "region": "us-east-1",
        "host": "prod-instance.us-east-1.rds.amazonaws.com",
        "port": 3306,
        "user": "peccy",
        "expires_in": 900,
        "signed_at": "20240826T220000Z",
    }]);
    assert_eq!(run_botocore(&input), [SDK_KNOWN_ANSWER]);
}

/// Sleeps until `at` (by the system clock, which the provider's default configuration uses).
async fn sleep_until(at: SystemTime) {
    if let Ok(left) = at.duration_since(SystemTime::now()) {
        tokio::time::sleep(left).await;
    }
}

#[tokio::test]
async fn tokens_are_cached_per_endpoint_and_renewed_before_they_expire() {
    // A 6 s token is handed out for its first 3 s. X-Amz-Date has a resolution of a second:
    // a token read from the cache a second after it was signed differs from a fresh one.
    let lifetime = Duration::from_secs(6);
    let renew_before = Duration::from_secs(3);
    let iam = IamAuth::builder("app")
        .region("us-east-1")
        .credentials(ACCESS_KEY_ID, SECRET_ACCESS_KEY, None)
        .token_lifetime(lifetime)
        .renew_before(renew_before)
        .build()
        .await
        .expect("builds");
    let writer = Endpoint::new("writer.cluster-abc.us-east-1.rds.amazonaws.com", 5432);
    let reader = Endpoint::new("reader-1.abc.us-east-1.rds.amazonaws.com", 5432);
    let other_port = Endpoint::new("writer.cluster-abc.us-east-1.rds.amazonaws.com", 5433);

    // Start just after a second begins, to have the most of it.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970");
    sleep_until(UNIX_EPOCH + Duration::from_secs(now.as_secs() + 1) + Duration::from_millis(20))
        .await;

    let first = iam.credentials(&writer).await.expect("signed");
    let issued = signed_at(&first);
    assert_eq!(first.expires_at, Some(issued + lifetime));
    assert_eq!(iam.credentials(&writer).await.expect("cached"), first);

    // Other endpoints (another host, the same host on another port) get their own tokens.
    let for_reader = iam.credentials(&reader).await.expect("signed");
    let for_other_port = iam.credentials(&other_port).await.expect("signed");
    assert_ne!(token_of(&for_reader), token_of(&first));
    assert_ne!(token_of(&for_other_port), token_of(&first));
    assert_ne!(token_of(&for_reader), token_of(&for_other_port));
    assert!(token_of(&for_reader).starts_with("reader-1.abc.us-east-1.rds.amazonaws.com:5432/?"));
    assert!(
        token_of(&for_other_port)
            .starts_with("writer.cluster-abc.us-east-1.rds.amazonaws.com:5433/?")
    );

    // A second later, still inside the window: the same token, not a new one (which would
    // carry the new second).
    sleep_until(issued + Duration::from_millis(1_300)).await;
    let again = iam.credentials(&writer).await.expect("cached");
    assert!(
        SystemTime::now() < issued + lifetime - renew_before,
        "the test ran too slowly"
    );
    assert_eq!(again, first, "a token within its window is reused");

    // Rejected: a new token at once, for that endpoint only.
    iam.rejected(&writer);
    let after_rejection = iam.credentials(&writer).await.expect("signed");
    assert_ne!(token_of(&after_rejection), token_of(&first));
    let reissued = signed_at(&after_rejection);
    assert!(reissued > issued);
    assert_eq!(after_rejection.expires_at, Some(reissued + lifetime));
    assert_eq!(
        iam.credentials(&writer).await.expect("cached"),
        after_rejection
    );
    assert_eq!(iam.credentials(&reader).await.expect("cached"), for_reader);

    // Past the window (renew_before ahead of the expiry): a new token.
    sleep_until(reissued + lifetime - renew_before + Duration::from_millis(100)).await;
    let renewed = iam.credentials(&writer).await.expect("renewed");
    assert_ne!(token_of(&renewed), token_of(&after_rejection));
    assert!(signed_at(&renewed) >= reissued + lifetime - renew_before);
    assert_eq!(renewed.expires_at, Some(signed_at(&renewed) + lifetime));
    // The reader's token, signed earlier, is past its window too.
    assert_ne!(iam.credentials(&reader).await.expect("renewed"), for_reader);
}

#[tokio::test]
async fn an_sdk_config_provides_region_credentials_and_clock() {
    let config = SdkConfig::builder()
        .region(Region::new("eu-central-1"))
        .credentials_provider(SharedCredentialsProvider::new(
            aws_sdk_rds::config::Credentials::new(
                ACCESS_KEY_ID,
                SECRET_ACCESS_KEY,
                None,
                None,
                "test",
            ),
        ))
        .build();
    // No time source in the configuration: the system clock.
    let iam = IamAuth::builder("app")
        .sdk_config(config.clone())
        .build()
        .await
        .expect("builds");
    assert_eq!(iam.region(), "eu-central-1");
    let credentials = iam
        .credentials(&Endpoint::new("db.example", 3306))
        .await
        .expect("signed");
    assert!(token_of(&credentials).contains("%2Feu-central-1%2Frds-db%2Faws4_request"));
    // `region(..)` wins over the configuration's.
    let iam = IamAuth::builder("app")
        .sdk_config(config)
        .region("sa-east-1")
        .build()
        .await
        .expect("builds");
    assert_eq!(iam.region(), "sa-east-1");

    let no_region = IamAuth::builder("app")
        .sdk_config(SdkConfig::builder().build())
        .build()
        .await
        .expect_err("no region");
    assert_eq!(no_region.kind(), ErrorKind::Config);
    assert!(no_region.to_string().contains("region"), "{no_region}");
    let no_credentials = IamAuth::builder("app")
        .sdk_config(
            SdkConfig::builder()
                .region(Region::new("eu-west-1"))
                .build(),
        )
        .build()
        .await
        .expect_err("no credentials");
    assert_eq!(no_credentials.kind(), ErrorKind::Config);
    assert!(
        no_credentials.to_string().contains("credentials"),
        "{no_credentials}"
    );
}

/// The shared AWS settings sign the same tokens as the builder's shortcuts, IAM ignores their
/// endpoint URL, and neither the settings nor the builder show a secret.
#[tokio::test]
async fn shared_aws_settings_sign_as_the_shortcuts_do_and_show_no_secret() {
    let fixed = UNIX_EPOCH + Duration::from_secs(1_724_709_600);
    let clock_only = SdkConfig::builder()
        .time_source(aws_smithy_async::time::StaticTimeSource::new(fixed))
        .build();
    let aws = AwsSettings::new()
        .sdk_config(clock_only.clone())
        .region("eu-west-1")
        .endpoint_url("http://127.0.0.1:9")
        .credentials(ACCESS_KEY_ID, SECRET_ACCESS_KEY, Some(SESSION_TOKEN.into()));
    let shown_settings = format!("{aws:?} {aws:#?}");
    assert!(shown_settings.contains(ACCESS_KEY_ID), "{shown_settings}");
    assert!(shown_settings.contains("eu-west-1"), "{shown_settings}");
    assert!(
        shown_settings.contains("http://127.0.0.1:9"),
        "{shown_settings}"
    );
    assert_no_secret(&shown_settings);

    let shared = IamAuth::builder("app").aws(aws.clone());
    let shown_builder = format!("{shared:?}");
    assert!(shown_builder.contains(ACCESS_KEY_ID), "{shown_builder}");
    assert_no_secret(&shown_builder);
    let shared = shared.build().await.expect("builds offline");
    let shortcuts = IamAuth::builder("app")
        .sdk_config(clock_only)
        .region("eu-west-1")
        .credentials(ACCESS_KEY_ID, SECRET_ACCESS_KEY, Some(SESSION_TOKEN.into()))
        .build()
        .await
        .expect("builds offline");
    let endpoint = Endpoint::new("db-1.abc.eu-west-1.rds.amazonaws.com", 5432);
    let token = shared.credentials(&endpoint).await.expect("signed");
    assert_eq!(
        shortcuts.credentials(&endpoint).await.expect("signed"),
        token
    );
    assert_eq!(amz_date(token_of(&token)), "20240826T220000Z");
    assert!(token_of(&token).starts_with("db-1.abc.eu-west-1.rds.amazonaws.com:5432/?"));

    // A shortcut after `aws(..)` changes this builder's copy only.
    let other_region = IamAuth::builder("app")
        .aws(aws.clone())
        .region("sa-east-1")
        .build()
        .await
        .expect("builds offline");
    assert_eq!(other_region.region(), "sa-east-1");
    // `aws(..)` replaces what the shortcuts set before it.
    let replaced = IamAuth::builder("app")
        .region("sa-east-1")
        .aws(aws)
        .build()
        .await
        .expect("builds offline");
    assert_eq!(replaced.region(), "eu-west-1");
}

#[tokio::test]
async fn settings_that_cannot_work_are_refused() {
    let builder = || {
        IamAuth::builder("app").region("us-east-1").credentials(
            ACCESS_KEY_ID,
            SECRET_ACCESS_KEY,
            Some(SESSION_TOKEN.into()),
        )
    };
    let refused = [
        builder().token_lifetime(Duration::from_secs(901)),
        builder().token_lifetime(Duration::ZERO),
        builder().token_lifetime(Duration::from_millis(1_500)),
        builder()
            .token_lifetime(Duration::from_secs(60))
            .renew_before(Duration::from_secs(60)),
        IamAuth::builder(" ").region("us-east-1").credentials(
            ACCESS_KEY_ID,
            SECRET_ACCESS_KEY,
            None,
        ),
    ];
    for builder in refused {
        let shown = format!("{builder:?}");
        let err = builder.build().await.expect_err("refused");
        assert_eq!(err.kind(), ErrorKind::Config, "{err}");
        assert_no_secret(&format!("{err} {err:?} {shown}"));
    }
    // The extremes that work.
    for lifetime in [Duration::from_secs(1), Duration::from_secs(900)] {
        builder()
            .token_lifetime(lifetime)
            .renew_before(Duration::ZERO)
            .build()
            .await
            .expect("accepted");
    }
}

fn assert_no_secret(shown: &str) {
    for secret in [
        SECRET_ACCESS_KEY,
        "wJalrXUtnFEMI",
        SESSION_TOKEN,
        "FwoGZXIvYXdz",
    ] {
        assert!(!shown.contains(secret), "a secret is shown in: {shown}");
    }
}

#[tokio::test]
#[allow(deprecated)] // aws-config's ProfileFiles alias: the type itself lives in aws-runtime.
async fn secrets_and_tokens_never_show() {
    let builder = IamAuth::builder("app").region("us-east-1").credentials(
        ACCESS_KEY_ID,
        SECRET_ACCESS_KEY,
        Some(SESSION_TOKEN.into()),
    );
    let shown_builder = format!("{builder:?}");
    assert!(shown_builder.contains(ACCESS_KEY_ID));
    assert_no_secret(&shown_builder);
    let iam = builder.build().await.expect("builds");
    let endpoint = Endpoint::new("db-1.abc.us-east-1.rds.amazonaws.com", 5432);
    let credentials = iam.credentials(&endpoint).await.expect("signed");
    let token = token_of(&credentials).to_owned();
    let signature = token
        .split_once("X-Amz-Signature=")
        .map(|(_, signature)| signature.to_owned())
        .expect("signed");

    let mut shown = vec![
        format!("{iam:?}"),
        format!("{:?}", iam.clone()),
        format!("{credentials:?}"),
        format!("{:?} {}", credentials.password, credentials.password),
    ];
    assert!(
        shown[0].contains("db-1.abc.us-east-1.rds.amazonaws.com:5432"),
        "{}",
        shown[0]
    );

    // Errors: an endpoint that cannot be signed for...
    let bad_host = iam
        .credentials(&Endpoint::new("db 1/../x", 5432))
        .await
        .expect_err("not a host name");
    assert_eq!(bad_host.kind(), ErrorKind::Credentials);
    shown.push(format!("{bad_host} {bad_host:?}"));
    // ...and AWS credentials that cannot be loaded (a profile holding a secret key that
    // assumes a role from a profile that does not exist: refused before any call to STS).
    let files = aws_config::profile::profile_file::ProfileFiles::builder()
        .with_contents(
            aws_config::profile::profile_file::ProfileFileKind::Credentials,
            format!(
                "[broken]\nrole_arn = arn:aws:iam::123456789012:role/app\n\
                 source_profile = nowhere\naws_secret_access_key = {SECRET_ACCESS_KEY}\n"
            ),
        )
        .build();
    // (The provider builds an instance-metadata provider for other profiles: it wants an
    // HTTP client, which this one never uses.)
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let broken = aws_config::profile::ProfileFileCredentialsProvider::builder()
        .configure(
            &aws_config::provider_config::ProviderConfig::without_region().with_http_client(http),
        )
        .profile_files(files)
        .profile_name("broken")
        .build();
    let iam_broken = IamAuth::builder("app")
        .sdk_config(
            SdkConfig::builder()
                .region(Region::new("us-east-1"))
                .credentials_provider(SharedCredentialsProvider::new(broken))
                .build(),
        )
        .build()
        .await
        .expect("builds");
    let not_loaded = iam_broken
        .credentials(&endpoint)
        .await
        .expect_err("no source profile");
    assert_eq!(not_loaded.kind(), ErrorKind::Credentials);
    assert!(
        not_loaded.to_string().contains("AWS credentials"),
        "{not_loaded}"
    );
    shown.push(format!("{not_loaded} {not_loaded:?} {iam_broken:?}"));
    let as_db_err: sea_orm::DbErr = not_loaded.into();
    shown.push(format!("{as_db_err} {as_db_err:?}"));

    for text in &shown {
        assert_no_secret(text);
        assert!(!text.contains(&token), "the token is shown in: {text}");
        assert!(
            !text.contains(&signature),
            "the signature is shown in: {text}"
        );
    }
}

/// Both sides on one fixed clock: our `SdkConfig` carries a static time source, botocore's
/// clock is pinned to the same instant, and the tokens are byte-identical.
#[tokio::test]
async fn with_a_fixed_clock_the_token_is_botocores() {
    let fixed = UNIX_EPOCH + Duration::from_secs(1_724_709_600); // 2024-08-26T22:00:00Z
    let case = Case {
        region: "us-east-1",
        host: "prod-instance.us-east-1.rds.amazonaws.com",
        port: 5432,
        user: "peccy",
        session_token: Some(SESSION_TOKEN),
        lifetime: Duration::from_secs(900),
    };
    let config = SdkConfig::builder()
        .region(Region::new(case.region))
        .credentials_provider(SharedCredentialsProvider::new(
            aws_sdk_rds::config::Credentials::new(
                ACCESS_KEY_ID,
                SECRET_ACCESS_KEY,
                case.session_token.map(str::to_owned),
                None,
                "test",
            ),
        ))
        .time_source(aws_smithy_async::time::StaticTimeSource::new(fixed))
        .build();
    let iam = IamAuth::builder(case.user)
        .sdk_config(config)
        .build()
        .await
        .expect("builds offline");
    let ours = iam
        .credentials(&Endpoint::new(case.host, case.port))
        .await
        .expect("signed");
    assert_eq!(amz_date(token_of(&ours)), "20240826T220000Z");
    assert_eq!(ours.expires_at, Some(fixed + case.lifetime));
    let theirs = botocore_tokens(&[(&case, "20240826T220000Z")]);
    assert_eq!(theirs, vec![token_of(&ours).to_owned()]);
}
