//! Test harness: a real `keyraft dev` region as a child process, and clients for it.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_kms::config::{BehaviorVersion, Credentials, Region};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode, TlsContext, TrustStore};

/// A dev region started with the real binary; killed on drop.
pub struct DevRegion {
    pub dir: PathBuf,
    pub env: HashMap<String, String>,
    port_base: u16,
    extra_args: Vec<String>,
    child: Option<Child>,
    _tmp: Option<tempfile::TempDir>,
}

/// Each test gets its own port range so nextest can run them in parallel.
///
/// Ranges stay below 32768, where Linux starts handing out ephemeral ports: an outgoing
/// connection from another test may otherwise hold a port a region is about to listen on
/// (EADDRINUSE, seen in CI). The project's port map: these tests 10100–27299, bench smoke
/// tests 27500–28999, Python tests 29000–30999, bench scripts 31000–31299, jepsen-lite
/// 2000–9999. A region uses fewer than 40 ports above its base, so `KEYRAFT_TEST_PORT_SHIFT`
/// (0–50) lets several checkouts run the suite on one machine at once without sharing a port.
pub fn port_base_for(test_slot: u16) -> u16 {
    let shift: u16 = std::env::var("KEYRAFT_TEST_PORT_SHIFT")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|s| *s <= 50)
        .unwrap_or(0);
    let base = 10000 + test_slot * 100 + shift;
    assert!(
        (10100..27300).contains(&base),
        "test slot {test_slot} is outside the tests' port range"
    );
    base
}

impl DevRegion {
    /// Starts a fresh region in a temp dir.
    pub fn start(port_base: u16) -> DevRegion {
        Self::start_with(port_base, &[])
    }

    /// Starts a fresh region with extra `keyraft dev` arguments.
    pub fn start_with(port_base: u16, extra_args: &[&str]) -> DevRegion {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let mut region = DevRegion {
            dir,
            env: HashMap::new(),
            port_base,
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            child: None,
            _tmp: Some(tmp),
        };
        region.launch();
        region
    }

    /// (Re)starts `keyraft dev` on this region's directory and waits for its env file.
    pub fn launch(&mut self) {
        let env_file = self.dir.join("env");
        let _ = std::fs::remove_file(&env_file);
        let log = std::fs::File::create(self.dir.join("dev.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_keyraft"))
            .args(["dev", "--dir"])
            .arg(&self.dir)
            .args(["--port-base", &self.port_base.to_string()])
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawning keyraft dev");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(90);
        while !env_file.exists() {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("keyraft dev exited with {status}:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "dev region did not come up:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        self.env = parse_env_file(&env_file);
    }

    /// Stops the dev process (and with it its storage nodes).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(15);
            loop {
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        // Storage nodes die with the dev process (kill_on_drop); make sure of it.
        for pid in self.node_pids() {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        }
    }

    pub fn node_pids(&self) -> Vec<u32> {
        (1..=3)
            .filter_map(|n| {
                std::fs::read_to_string(self.dir.join("pids").join(format!("node-{n}.pid"))).ok()
            })
            .filter_map(|s| s.trim().parse().ok())
            .collect()
    }

    /// Kills storage node `n` (1-based) with SIGKILL.
    pub fn kill_node(&self, n: u32) {
        let pid =
            std::fs::read_to_string(self.dir.join("pids").join(format!("node-{n}.pid"))).unwrap();
        let status = Command::new("kill")
            .arg("-9")
            .arg(pid.trim())
            .status()
            .unwrap();
        assert!(status.success());
    }

    pub fn log(&self) -> String {
        let mut out = std::fs::read_to_string(self.dir.join("dev.log")).unwrap_or_default();
        for n in 1..=3 {
            if let Ok(s) =
                std::fs::read_to_string(self.dir.join("logs").join(format!("node-{n}.log")))
            {
                let tail: Vec<&str> = s.lines().rev().take(30).collect();
                out.push_str(&format!("\n--- node-{n} (last lines) ---\n"));
                for l in tail.into_iter().rev() {
                    out.push_str(l);
                    out.push('\n');
                }
            }
        }
        out
    }

    pub fn var(&self, name: &str) -> String {
        self.env
            .get(name)
            .unwrap_or_else(|| panic!("{name} missing from env file"))
            .clone()
    }

    /// An aws-sdk-kms client as the admin identity.
    pub fn admin_client(&self) -> aws_sdk_kms::Client {
        self.sdk_client(
            &self.var("AWS_ACCESS_KEY_ID"),
            &self.var("AWS_SECRET_ACCESS_KEY"),
        )
    }

    /// An aws-sdk-kms client as the unprivileged identity.
    pub fn app_client(&self) -> aws_sdk_kms::Client {
        self.sdk_client(
            &self.var("KMS_ALT_ACCESS_KEY_ID"),
            &self.var("KMS_ALT_SECRET_ACCESS_KEY"),
        )
    }

    pub fn sdk_client(&self, access_key_id: &str, secret: &str) -> aws_sdk_kms::Client {
        self.sdk_client_with_retries(
            access_key_id,
            secret,
            aws_sdk_kms::config::retry::RetryConfig::standard(),
        )
    }

    /// The admin client without SDK retries, to see the first answer of the region.
    pub fn admin_client_without_retries(&self) -> aws_sdk_kms::Client {
        self.sdk_client_with_retries(
            &self.var("AWS_ACCESS_KEY_ID"),
            &self.var("AWS_SECRET_ACCESS_KEY"),
            aws_sdk_kms::config::retry::RetryConfig::disabled(),
        )
    }

    pub fn sdk_client_with_retries(
        &self,
        access_key_id: &str,
        secret: &str,
        retry: aws_sdk_kms::config::retry::RetryConfig,
    ) -> aws_sdk_kms::Client {
        let ca = std::fs::read(self.var("AWS_CA_BUNDLE")).unwrap();
        let tls = TlsContext::builder()
            .with_trust_store(TrustStore::empty().with_pem_certificate(ca))
            .build()
            .unwrap();
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
            .tls_context(tls)
            .build_https();
        let conf = aws_sdk_kms::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(self.var("AWS_DEFAULT_REGION")))
            .endpoint_url(self.var("KMS_ENDPOINT"))
            .credentials_provider(Credentials::new(
                access_key_id,
                secret,
                None,
                None,
                "keyraft-test",
            ))
            .http_client(http)
            .retry_config(retry)
            .build();
        aws_sdk_kms::Client::from_conf(conf)
    }
}

impl Drop for DevRegion {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn parse_env_file(path: &Path) -> HashMap<String, String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('\'').to_string()))
        .collect()
}

/// The `__type`-derived error code of an SDK error (e.g. "NotFoundException").
pub fn error_code<E, R>(err: &aws_sdk_kms::error::SdkError<E, R>) -> String
where
    E: aws_sdk_kms::error::ProvideErrorMetadata + std::fmt::Debug,
    R: std::fmt::Debug,
{
    use aws_sdk_kms::error::ProvideErrorMetadata;
    err.code()
        .map(str::to_string)
        .unwrap_or_else(|| format!("no code: {err:?}"))
}

impl DevRegion {
    /// `GET <path>` on the front's HTTPS endpoint (no SigV4: health and status pages).
    pub async fn get(&self, path: &str) -> (u16, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let ca = std::fs::read(self.var("AWS_CA_BUNDLE")).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pemfile::certs(&mut ca.as_slice()) {
            roots.add(cert.unwrap()).unwrap();
        }
        let config = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
        let endpoint = self.var("KMS_ENDPOINT");
        let hostport = endpoint.trim_start_matches("https://").to_string();
        let tcp = tokio::net::TcpStream::connect(&hostport).await.unwrap();
        let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let mut tls = connector.connect(name, tcp).await.unwrap();
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: {hostport}\r\nConnection: close\r\n\r\n");
        tls.write_all(request.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        let _ = tls.read_to_end(&mut response).await;
        let text = String::from_utf8_lossy(&response).to_string();
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (status, body)
    }

    /// The current Raft leader's node id, from the front's `/status` page (waits for one).
    pub async fn leader_id(&self) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (status, body) = self.get("/status").await;
            if status == 200 {
                let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
                if let Some(id) = v["leaderId"].as_u64() {
                    return id;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no leader reported: {status} {body}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Clients of the region's gRPC endpoint (the keyraft Rust SDK, mTLS).
impl DevRegion {
    /// The admin identity (AdministratorAccess), configured the way `kmsctl --env-file` does it.
    pub fn grpc_admin_builder(&self) -> client::ClientBuilder {
        client::ClientBuilder::new()
            .env_file(self.dir.join("env"))
            .unwrap()
    }

    /// A client of the admin identity, with the SDK's default options.
    pub fn grpc_admin(&self) -> client::Client {
        self.grpc_admin_builder().build().unwrap()
    }

    /// The region's gRPC endpoint and CA with the given client certificate and key files.
    pub fn grpc_builder(&self, cert: &str, key: &str) -> client::ClientBuilder {
        client::Client::builder()
            .endpoints(client::config::split_endpoints(
                &self.var("KMS_GRPC_ENDPOINT"),
            ))
            .ca_bundle_file(self.var("KMS_CA_BUNDLE"))
            .client_cert_file(cert)
            .client_key_file(key)
    }

    /// The unprivileged identity of the same account.
    pub fn grpc_app_builder(&self) -> client::ClientBuilder {
        self.grpc_builder(
            &self.var("KMS_ALT_CLIENT_CERT"),
            &self.var("KMS_ALT_CLIENT_KEY"),
        )
    }

    /// A client of the unprivileged identity, with the SDK's default options.
    pub fn grpc_app(&self) -> client::Client {
        self.grpc_app_builder().build().unwrap()
    }
}

/// The region's storage nodes, read directly.
impl DevRegion {
    /// The region's store, with the front's identity (storage node N listens on
    /// 127.0.0.1:port_base+10+N).
    pub async fn store(&self) -> raft::StoreClient {
        let tls = raft::TlsFiles {
            ca: self.dir.join("ca.pem"),
            cert: self.dir.join("front.pem"),
            key: self.dir.join("front.key"),
        };
        let endpoints = (1..=3)
            .map(|n| format!("127.0.0.1:{}", self.port_base + 10 + n))
            .collect();
        raft::StoreClient::connect(endpoints, &tls).await.unwrap()
    }

    /// Every audit event of the region from `from_seq` on, in chain order, as (stored JSON,
    /// parsed event), read from the storage nodes in pages of 1000; asserts the records are
    /// consecutive and hash right.
    pub async fn audit_events_from(
        &self,
        from_seq: u64,
    ) -> Vec<(String, keystore::audit::AuditEvent)> {
        let store = self.store().await;
        let mut out = Vec::new();
        let mut from = from_seq;
        loop {
            let page = store.audit_records(from, 1000).await.unwrap();
            let n = page.len();
            for r in page {
                assert_eq!(r.seq, from, "records are consecutive");
                assert!(r.hash_is_valid(), "record {} hashes right", r.seq);
                from += 1;
                let event = keystore::audit::AuditEvent::from_json(&r.event).unwrap();
                out.push((r.event, event));
            }
            if n < 1000 {
                return out;
            }
        }
    }
}

/// `kmsctl`, built next to `keyraft` by `cargo build --workspace` (as `scripts/test` does).
/// A test cannot build it: Cargo only builds the binaries of the package under test.
pub fn kmsctl_bin() -> PathBuf {
    let bin = Path::new(env!("CARGO_BIN_EXE_keyraft")).with_file_name("kmsctl");
    assert!(
        bin.exists(),
        "{} is missing: build the whole workspace first \
         (`cargo build --workspace`, or run ./scripts/test)",
        bin.display()
    );
    bin
}

/// Keeps a developer's sourced `KMS_*` variables out of a child: the env file alone configures.
pub fn without_kms_env(cmd: &mut Command) {
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("KMS_") {
            cmd.env_remove(k);
        }
    }
}

/// Runs kmsctl commands as one identity of a region, configured by its env file (and any
/// identity flags) only: no `KMS_*` leaks in from the test's environment.
pub struct Kmsctl {
    bin: PathBuf,
    env_file: PathBuf,
    identity: Vec<String>,
}

impl Kmsctl {
    /// The env file's identity (the admin).
    pub fn new(region: &DevRegion) -> Kmsctl {
        Kmsctl::with_identity(region, Vec::new())
    }

    /// The env file with `identity` flags (e.g. `--client-cert`, `--client-key`) after it.
    pub fn with_identity(region: &DevRegion, identity: Vec<String>) -> Kmsctl {
        Kmsctl {
            bin: kmsctl_bin(),
            env_file: region.dir.join("env"),
            identity,
        }
    }

    /// The unprivileged identity of the env file's account.
    pub fn app(region: &DevRegion) -> Kmsctl {
        Kmsctl::with_identity(
            region,
            vec![
                "--client-cert".into(),
                region.var("KMS_ALT_CLIENT_CERT"),
                "--client-key".into(),
                region.var("KMS_ALT_CLIENT_KEY"),
            ],
        )
    }

    /// A command with `--env-file` and the identity set, and no `KMS_*` from the environment.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(&self.bin);
        without_kms_env(&mut cmd);
        cmd.arg("--env-file")
            .arg(&self.env_file)
            .args(&self.identity);
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command().args(args).output().expect("running kmsctl")
    }

    /// Runs a command that must succeed; returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "kmsctl {args:?} failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs a command that must succeed with JSON output.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let text = self.ok(args);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?}: {e}: {text}"))
    }

    /// Runs a command that must fail with nothing on stdout; returns (exit code, stderr).
    pub fn fails(&self, args: &[&str]) -> (i32, String) {
        let out = self.failed_output(args);
        assert!(out.stdout.is_empty(), "errors go to stderr only");
        Self::code_and_stderr(out)
    }

    /// Runs a command that must fail, whatever it wrote to stdout; returns (exit code, stderr).
    pub fn fails_ignoring_stdout(&self, args: &[&str]) -> (i32, String) {
        Self::code_and_stderr(self.failed_output(args))
    }

    fn failed_output(&self, args: &[&str]) -> Output {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "kmsctl {args:?} should have failed; stdout: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        out
    }

    fn code_and_stderr(out: Output) -> (i32, String) {
        (
            out.status.code().expect("exited, not killed"),
            String::from_utf8(out.stderr).unwrap(),
        )
    }

    /// `kmsctl <args> | base64 -d > out`, in bash with pipefail, as a user would type it.
    pub fn base64_decode_into(&self, args: &[&str], out: &Path) {
        let mut bash = Command::new("bash");
        without_kms_env(&mut bash);
        let status = bash
            .arg("-c")
            .arg(r#"set -euo pipefail; out="$1"; shift; "$@" | base64 -d > "$out""#)
            .arg("kmsctl-pipe")
            .arg(out)
            .arg(&self.bin)
            .arg("--env-file")
            .arg(&self.env_file)
            .args(&self.identity)
            .args(args)
            .status()
            .expect("running bash");
        assert!(status.success(), "kmsctl {args:?} | base64 -d: {status}");
    }
}
