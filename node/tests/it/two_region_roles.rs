//! The two-region container layout (deploy/docker/docker-compose.regions.yml) without the
//! containers: `keyraft dev --regions A,B --init-only` with external nodes writes every file of
//! both regions, each storage node and front then runs as its own process from those files,
//! `keyraft dev --only-region X` bootstraps each region on its own (as the compose bootstrap
//! services do), and the fronts replicate a multi-region key to each other at the replication
//! URLs the peer files name.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_kms::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_kms::primitives::Blob;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode, TlsContext, TrustStore};

use crate::common::{parse_env_file, port_base_for};

const A: &str = "us-east-1";
const B: &str = "us-west-2";

struct Killed(Vec<Child>);

impl Drop for Killed {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn spawn(dir: &Path, log: &str, args: &[&str]) -> Child {
    let log = std::fs::File::create(dir.join(log)).unwrap();
    Command::new(env!("CARGO_BIN_EXE_keyraft"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap()
}

fn logs(dir: &Path) -> String {
    let mut out = String::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with("roles-") {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(15).collect();
            out.push_str(&format!("\n--- {name} ---\n"));
            for l in tail.into_iter().rev() {
                out.push_str(l);
                out.push('\n');
            }
        }
    }
    out
}

/// An admin client of the region whose env file is `env`.
fn client(env: &HashMap<String, String>) -> aws_sdk_kms::Client {
    let ca = std::fs::read(&env["AWS_CA_BUNDLE"]).unwrap();
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
        .region(Region::new(env["AWS_DEFAULT_REGION"].clone()))
        .endpoint_url(&env["KMS_ENDPOINT"])
        .credentials_provider(Credentials::new(
            &env["AWS_ACCESS_KEY_ID"],
            &env["AWS_SECRET_ACCESS_KEY"],
            None,
            None,
            "keyraft-test",
        ))
        .http_client(http)
        .build();
    aws_sdk_kms::Client::from_conf(conf)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_regions_run_role_by_role_from_init_only_files_and_replicate() {
    let base = port_base_for(170);
    let tmp = tempfile::tempdir().unwrap();
    let dir = std::fs::canonicalize(tmp.path()).unwrap();
    let dir_b = dir.join(B);
    let nodes = |first: u16| -> String {
        (1..=3)
            .map(|n| format!("127.0.0.1:{}", first + 10 + n))
            .collect::<Vec<_>>()
            .join(",")
    };
    let url = |host: &str, port: u16| format!("https://{host}:{port}");
    // Replication endpoints by a name other than the loopback default: what the peer files
    // name is what the fronts dial (and what the front certificate must carry).
    let owned: Vec<String> = vec![
        "dev".into(),
        "--dir".into(),
        dir.display().to_string(),
        "--port-base".into(),
        base.to_string(),
        "--regions".into(),
        format!("{A},{B}"),
        "--hosts".into(),
        "kms-a.test,kms-b.test".into(),
        "--external-nodes".into(),
        nodes(base),
        "--external-nodes-b".into(),
        nodes(base + 20),
        "--replication-url".into(),
        url("localhost", base),
        "--replication-url-b".into(),
        url("localhost", base + 20),
        "--public-url".into(),
        url("127.0.0.1", base),
        "--public-grpc-url".into(),
        url("127.0.0.1", base + 1),
        "--public-url-b".into(),
        url("127.0.0.1", base + 20),
        "--public-grpc-url-b".into(),
        url("127.0.0.1", base + 21),
    ];
    let common: Vec<&str> = owned.iter().map(String::as_str).collect();

    // init: every file of both regions, nothing started.
    let mut init = common.clone();
    init.push("--init-only");
    let out = Command::new(env!("CARGO_BIN_EXE_keyraft"))
        .args(&init)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let peers_a = std::fs::read_to_string(dir.join("region-peers.json")).unwrap();
    assert!(
        peers_a.contains(&url("localhost", base + 20)) && peers_a.contains(B),
        "{peers_a}"
    );
    let peers_b = std::fs::read_to_string(dir_b.join("region-peers.json")).unwrap();
    assert!(
        peers_b.contains(&url("localhost", base)) && peers_b.contains(A),
        "{peers_b}"
    );

    let mut children = Killed(Vec::new());
    for (d, r) in [(&dir, "a"), (&dir_b, "b")] {
        for n in 1..=3 {
            let config = d.join(format!("node-{n}.toml"));
            children.0.push(spawn(
                &dir,
                &format!("roles-{r}-node-{n}.log"),
                &["node", "--config", config.to_str().unwrap()],
            ));
        }
    }
    // One bootstrap per region, at the same time, each only for its own region.
    let mut boots: Vec<(&str, Child)> = [A, B]
        .into_iter()
        .map(|region| {
            let mut args = common.clone();
            args.extend(["--only-region", region]);
            (
                region,
                spawn(&dir, &format!("roles-bootstrap-{region}.log"), &args),
            )
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(90);
    for (region, boot) in &mut boots {
        let status = loop {
            if let Some(status) = boot.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "bootstrap {region} hangs:{}",
                logs(&dir)
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        assert!(
            status.success(),
            "bootstrap {region}: {status}{}",
            logs(&dir)
        );
    }
    let env_a = parse_env_file(&dir.join("env"));
    let env_b = parse_env_file(&dir_b.join("env"));
    assert_eq!(env_a["KMS_ENDPOINT_B"], url("127.0.0.1", base + 20));
    assert_eq!(env_a["KMS_REGION_B"], B);
    assert_eq!(env_b["KMS_ENDPOINT"], url("127.0.0.1", base + 20));
    assert_eq!(env_b["AWS_DEFAULT_REGION"], B);

    for (d, r) in [(&dir, "a"), (&dir_b, "b")] {
        let config = d.join("front.toml");
        children.0.push(spawn(
            &dir,
            &format!("roles-{r}-front.log"),
            &["front", "--config", config.to_str().unwrap()],
        ));
    }
    let a = client(&env_a);
    let b = client(&env_b);

    // The fronts may still be starting: retry the first call.
    let deadline = Instant::now() + Duration::from_secs(60);
    let key_id = loop {
        match a.create_key().multi_region(true).send().await {
            Ok(out) => break out.key_metadata().unwrap().key_id().to_string(),
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "create-key in A: {e:?}{}",
                    logs(&dir)
                );
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
    };
    assert!(key_id.starts_with("mrk-"), "{key_id}");
    a.replicate_key()
        .key_id(&key_id)
        .replica_region(B)
        .send()
        .await
        .unwrap();
    let blob = a
        .encrypt()
        .key_id(&key_id)
        .plaintext(Blob::new("crossed regions"))
        .send()
        .await
        .unwrap()
        .ciphertext_blob()
        .unwrap()
        .clone();
    // Only region A's front can have delivered it: B's replica exists once A's front reached
    // B's front at the replication URL of A's peer file.
    let started = Instant::now();
    let deadline = started + Duration::from_secs(30);
    loop {
        match b.decrypt().ciphertext_blob(blob.clone()).send().await {
            Ok(out) => {
                assert_eq!(out.plaintext().unwrap().as_ref(), b"crossed regions");
                break;
            }
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "decrypt in B: {e:?}{}",
                    logs(&dir)
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    eprintln!(
        "replica decryptable in {B} {:?} after ReplicateKey",
        started.elapsed()
    );
}
