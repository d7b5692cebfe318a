//! Each role as its own process, configured the way an operator would: storage nodes from TOML
//! files, the front from a TOML file with one setting overridden by a `KEYRAFT_*` variable.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{port_base_for, DevRegion};
use aws_sdk_kms::primitives::Blob;

struct Killed(Vec<Child>);

impl Drop for Killed {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_and_front_run_as_separate_processes_from_config_files() {
    // `keyraft dev` generates the PKI, domain key, identities and the config files; a key made
    // through it must still be there when the region is run role by role.
    let mut region = DevRegion::start(port_base_for(7));
    let blob = {
        let kms = region.admin_client();
        let key = kms
            .create_key()
            .send()
            .await
            .unwrap()
            .key_metadata()
            .unwrap()
            .key_id()
            .to_string();
        kms.encrypt()
            .key_id(&key)
            .plaintext(Blob::new("role by role"))
            .send()
            .await
            .unwrap()
            .ciphertext_blob()
            .unwrap()
            .clone()
    };
    region.stop();

    let bin = env!("CARGO_BIN_EXE_keyraft");
    let mut children = Killed(Vec::new());
    for n in 1..=3 {
        let log = std::fs::File::create(region.dir.join(format!("separate-node-{n}.log"))).unwrap();
        children.0.push(
            Command::new(bin)
                .args(["node", "--config"])
                .arg(region.dir.join(format!("node-{n}.toml")))
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap(),
        );
    }
    // The env var overrides the file's cache bound; the file supplies everything else.
    let log = std::fs::File::create(region.dir.join("separate-front.log")).unwrap();
    children.0.push(
        Command::new(bin)
            .args(["front", "--config"])
            .arg(region.dir.join("front.toml"))
            .env("KEYRAFT_CACHE_STALENESS_MS", "500")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );

    let kms = region.admin_client();
    let deadline = Instant::now() + Duration::from_secs(60);
    let plaintext = loop {
        match kms.decrypt().ciphertext_blob(blob.clone()).send().await {
            Ok(out) => break out.plaintext().unwrap().as_ref().to_vec(),
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            Err(e) => panic!(
                "separately run region never served: {e:?}\n{}",
                std::fs::read_to_string(region.dir.join("separate-front.log")).unwrap_or_default()
            ),
        }
    };
    assert_eq!(plaintext, b"role by role");
    kms.create_key()
        .description("made role by role")
        .send()
        .await
        .unwrap();
}

#[test]
fn a_node_with_a_bad_config_exits_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("node.toml");
    std::fs::write(&config, "node_id = 0\nlisten = \"127.0.0.1:1\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_keyraft"))
        .args(["node", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("node-id must be greater than 0"),
        "{stderr}"
    );

    let out = Command::new(env!("CARGO_BIN_EXE_keyraft"))
        .args(["front", "--region", "us-east-1"])
        .env_remove("KEYRAFT_CONFIG")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("missing setting store"), "{stderr}");
}
