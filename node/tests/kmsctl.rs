//! The built `kmsctl` binary against a real dev region, configured only by `--env-file`, used
//! the way the README and AWS CLI habits suggest: blobs through `fileb://`, `--query ... --output
//! text` piped through `base64 -d`, AWS error text on stderr and AWS CLI exit codes.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{port_base_for, DevRegion};
use serde_json::Value;

/// `kmsctl`, built next to `keyraft` by `cargo build --workspace` (as `scripts/test` does).
/// A test cannot build it: Cargo only builds the binaries of the package under test.
fn kmsctl_bin() -> PathBuf {
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
fn without_kms_env(cmd: &mut Command) {
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("KMS_") {
            cmd.env_remove(k);
        }
    }
}

/// Runs kmsctl commands against one region, configured by its env file only.
struct Kmsctl {
    bin: PathBuf,
    env_file: PathBuf,
}

impl Kmsctl {
    fn new(region: &DevRegion) -> Kmsctl {
        Kmsctl {
            bin: kmsctl_bin(),
            env_file: region.dir.join("env"),
        }
    }

    /// A command with `--env-file` set and no `KMS_*` leaking in from the test's environment.
    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.bin);
        without_kms_env(&mut cmd);
        cmd.arg("--env-file").arg(&self.env_file);
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command().args(args).output().expect("running kmsctl")
    }

    /// Runs a command that must succeed; returns its stdout.
    fn ok(&self, args: &[&str]) -> String {
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
    fn json(&self, args: &[&str]) -> Value {
        let text = self.ok(args);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?}: {e}: {text}"))
    }

    /// Runs a command that must fail; returns (exit code, stderr).
    fn fails(&self, args: &[&str]) -> (i32, String) {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "kmsctl {args:?} should have failed; stdout: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(out.stdout.is_empty(), "errors go to stderr only");
        (
            out.status.code().expect("exited, not killed"),
            String::from_utf8(out.stderr).unwrap(),
        )
    }

    /// `kmsctl <args> | base64 -d > out`, in bash with pipefail, as a user would type it.
    fn base64_decode_into(&self, args: &[&str], out: &Path) {
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
            .args(args)
            .status()
            .expect("running bash");
        assert!(status.success(), "kmsctl {args:?} | base64 -d: {status}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kmsctl_encrypts_and_decrypts_files_like_the_aws_cli() {
    let region = DevRegion::start(port_base_for(18));
    let kmsctl = Kmsctl::new(&region);
    let work = tempfile::tempdir().unwrap();

    let created = kmsctl.json(&["create-key", "--description", "demo"]);
    let meta = &created["KeyMetadata"];
    let key_id = meta["KeyId"].as_str().unwrap().to_string();
    assert_eq!(meta["Description"], "demo");
    assert_eq!(meta["KeyState"], "Enabled");
    assert_eq!(meta["Enabled"], true);
    assert_eq!(meta["AWSAccountId"], "111122223333");
    assert_eq!(
        meta["Arn"],
        format!("arn:aws:kms:us-east-1:111122223333:key/{key_id}")
    );
    assert!(
        meta["CreationDate"].as_str().unwrap().ends_with("+00:00"),
        "ISO 8601 like the AWS CLI: {}",
        meta["CreationDate"]
    );

    // Binary plaintext (every byte value) survives fileb:// -> base64 text -> base64 -d.
    let plaintext: Vec<u8> = (0..=255u8).chain(*b"config.json\n").collect();
    let input = work.path().join("config.json");
    std::fs::write(&input, &plaintext).unwrap();
    let fileb_in = format!("fileb://{}", input.display());
    let sealed = work.path().join("config.enc");
    kmsctl.base64_decode_into(
        &[
            "encrypt",
            "--key-id",
            &key_id,
            "--plaintext",
            &fileb_in,
            "--encryption-context",
            "app=orders",
            "--query",
            "CiphertextBlob",
            "--output",
            "text",
        ],
        &sealed,
    );
    let ciphertext = std::fs::read(&sealed).unwrap();
    assert!(!ciphertext.is_empty());
    assert!(!ciphertext.windows(11).any(|w| w == b"config.json"));

    let fileb_sealed = format!("fileb://{}", sealed.display());
    let opened = work.path().join("config.out");
    kmsctl.base64_decode_into(
        &[
            "decrypt",
            "--ciphertext-blob",
            &fileb_sealed,
            "--encryption-context",
            "app=orders",
            "--query",
            "Plaintext",
            "--output",
            "text",
        ],
        &opened,
    );
    assert_eq!(std::fs::read(&opened).unwrap(), plaintext);

    // Full JSON output of decrypt names the key by ARN; JSON contexts work as shorthand does.
    let out = kmsctl.json(&[
        "decrypt",
        "--ciphertext-blob",
        &fileb_sealed,
        "--encryption-context",
        r#"{"app":"orders"}"#,
    ]);
    assert_eq!(out["KeyId"], meta["Arn"]);
    assert_eq!(out["EncryptionAlgorithm"], "SYMMETRIC_DEFAULT");

    // The context is bound to the ciphertext.
    let (code, stderr) = kmsctl.fails(&[
        "decrypt",
        "--ciphertext-blob",
        &fileb_sealed,
        "--encryption-context",
        "app=billing",
    ]);
    assert_eq!(code, 254, "{stderr}");
    assert!(
        stderr.contains(
            "An error occurred (InvalidCiphertextException) when calling the Decrypt operation"
        ),
        "{stderr}"
    );

    // list-keys pages through everything by default.
    let second = kmsctl.json(&["create-key"]);
    let second_id = second["KeyMetadata"]["KeyId"].as_str().unwrap().to_string();
    let listed = kmsctl.json(&["list-keys"]);
    let mut ids: Vec<_> = listed["Keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["KeyId"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    let mut expected = vec![key_id.clone(), second_id];
    expected.sort();
    assert_eq!(ids, expected);
    assert_eq!(listed["Truncated"], false);
    let page = kmsctl.json(&["list-keys", "--limit", "1"]);
    assert_eq!(page["Keys"].as_array().unwrap().len(), 1);
    assert_eq!(page["Truncated"], true);
    assert!(page["NextMarker"].is_string());

    // Aliases: create-alias prints nothing, list-aliases shows the target, and the alias
    // works wherever a key id does.
    let out = kmsctl.ok(&[
        "create-alias",
        "--alias-name",
        "alias/orders",
        "--target-key-id",
        &key_id,
    ]);
    assert_eq!(out, "");
    let aliases = kmsctl.json(&["list-aliases"]);
    let orders = aliases["Aliases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["AliasName"] == "alias/orders")
        .unwrap_or_else(|| panic!("alias/orders not listed: {aliases}"));
    assert_eq!(orders["TargetKeyId"], key_id.as_str());
    assert_eq!(
        orders["AliasArn"],
        "arn:aws:kms:us-east-1:111122223333:alias/orders"
    );
    let arn = kmsctl.ok(&[
        "describe-key",
        "--key-id",
        "alias/orders",
        "--query",
        "KeyMetadata.Arn",
        "--output",
        "text",
    ]);
    assert_eq!(arn.trim(), meta["Arn"].as_str().unwrap());
    let via_alias = kmsctl.json(&[
        "encrypt",
        "--key-id",
        "alias/orders",
        "--plaintext",
        "literal text",
    ]);
    assert_eq!(via_alias["KeyId"], meta["Arn"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kmsctl_reports_failures_with_aws_cli_messages_and_exit_codes() {
    let region = DevRegion::start(port_base_for(19));
    let kmsctl = Kmsctl::new(&region);

    // A service error: exit 254, the AWS CLI's sentence on stderr, nothing on stdout.
    let (code, stderr) = kmsctl.fails(&["describe-key", "--key-id", "alias/nope"]);
    assert_eq!(code, 254, "{stderr}");
    assert!(
        stderr.contains(
            "An error occurred (NotFoundException) when calling the DescribeKey operation"
        ),
        "{stderr}"
    );

    // The app identity, chosen by flags over the env file, is denied.
    let (code, stderr) = kmsctl.fails(&[
        "--client-cert",
        &region.var("KMS_ALT_CLIENT_CERT"),
        "--client-key",
        &region.var("KMS_ALT_CLIENT_KEY"),
        "create-key",
    ]);
    assert_eq!(code, 254, "{stderr}");
    assert!(
        stderr.contains("An error occurred (AccessDeniedException) when calling the CreateKey"),
        "{stderr}"
    );

    // Bad arguments never reach the service: exit 252.
    let (code, stderr) = kmsctl.fails(&[
        "encrypt",
        "--key-id",
        "alias/x",
        "--plaintext",
        "fileb:///definitely/not/here",
    ]);
    assert_eq!(code, 252, "{stderr}");
    assert!(stderr.contains("--plaintext"), "{stderr}");
    let (code, stderr) = kmsctl.fails(&["encrypt", "--plaintext", "x"]);
    assert_eq!(code, 252, "missing --key-id: {stderr}");

    // No front answering: exit 255, the AWS CLI's connection message.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("https://127.0.0.1:{}", l.local_addr().unwrap().port())
    };
    let (code, stderr) = kmsctl.fails(&[
        "--endpoint",
        &dead,
        "--max-attempts",
        "1",
        "generate-random",
        "--number-of-bytes",
        "8",
    ]);
    assert_eq!(code, 255, "{stderr}");
    assert!(
        stderr.contains("Could not connect to the endpoint"),
        "{stderr}"
    );

    // The same command against the region's endpoint works, and shapes its output as AWS.
    let random = kmsctl.json(&["generate-random", "--number-of-bytes", "8"]);
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(random["Plaintext"].as_str().unwrap())
        .unwrap();
    assert_eq!(bytes.len(), 8);
}
