//! The benchmark smoke run: a real `keyraft dev` region (the debug `keyraft` binary of this
//! workspace) and each target and operation driven briefly through the library, asserting
//! successes and no errors; then the transport floors and one open-loop run. Seconds, not
//! minutes: it exists so the tool cannot rot, not to measure.
//!
//! Needs `cargo build -p keyraft-node` first (nextest builds only this package's targets).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use keyraft_bench::{bench, Endpoints, Op, RunConfig, RunReport, TargetKind, TargetOptions};

/// `target/debug/keyraft` beside this test binary (`target/debug/deps/smoke-*`), or KEYRAFT_BIN.
fn keyraft_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("KEYRAFT_BIN") {
        return bin.into();
    }
    let exe = std::env::current_exe().unwrap();
    let debug = exe.parent().and_then(|deps| deps.parent()).unwrap();
    debug.join("keyraft")
}

/// A base with the 14 ports a dev region uses free right now. Each test has its own `slot`
/// (tests of this binary run at once and would otherwise find the same free range). The
/// range, 27500–28999, is this binary's share of the project's port map (see
/// node/tests/it/common/mod.rs): below 32768, so no outgoing connection's ephemeral port
/// can take one of them while a region is down.
fn free_port_base(slot: u16) -> u16 {
    assert!(slot < 3, "bench smoke tests have three port slots");
    let start = 27500 + slot * 500;
    (0..25)
        .map(|i| start + i * 20)
        .find(|base| (0..14).all(|p| std::net::TcpListener::bind(("127.0.0.1", base + p)).is_ok()))
        .expect("a free range of 14 loopback ports")
}

/// `keyraft dev` as a child; stopped (with its storage nodes) on drop.
struct Region {
    dir: tempfile::TempDir,
    child: Child,
}

impl Region {
    fn start(slot: u16) -> Region {
        let bin = keyraft_bin();
        assert!(
            bin.is_file(),
            "{} is missing: run `cargo build -p keyraft-node` first",
            bin.display()
        );
        let dir = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(dir.path().join("dev.log")).unwrap();
        let child = Command::new(bin)
            .args(["dev", "--dir"])
            .arg(dir.path())
            .args(["--port-base", &free_port_base(slot).to_string()])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut region = Region { dir, child };
        let deadline = Instant::now() + Duration::from_secs(90);
        while !region.env_file().exists() {
            if let Some(status) = region.child.try_wait().unwrap() {
                panic!("keyraft dev exited with {status}:\n{}", region.log());
            }
            assert!(Instant::now() < deadline, "no region:\n{}", region.log());
            std::thread::sleep(Duration::from_millis(100));
        }
        region
    }

    fn env_file(&self) -> PathBuf {
        self.dir.path().join("env")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dev.log")).unwrap_or_default()
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        for n in 1..=3 {
            if let Ok(pid) =
                std::fs::read_to_string(self.dir.path().join(format!("pids/node-{n}.pid")))
            {
                let _ = Command::new("kill").arg("-9").arg(pid.trim()).status();
            }
        }
    }
}

fn options(kind: TargetKind, op: Op, e: &Endpoints) -> TargetOptions {
    TargetOptions {
        kind,
        endpoints: e.clone(),
        op,
        payload_bytes: 64,
        run_id: keyraft_bench::run_id(),
    }
}

fn brief(op: Op, rate: Option<f64>) -> RunConfig {
    RunConfig {
        concurrency: 2,
        rate,
        warmup: Duration::from_millis(200),
        duration: Duration::from_millis(1200),
        timeout: Duration::from_secs(20),
        op,
        progress: false,
        count: None,
    }
}

fn assert_clean(r: &RunReport, what: &str) {
    assert!(r.ok > 0, "{what}: no success: {r:?}");
    assert_eq!(r.error_count(), 0, "{what}: errors {:?}", r.errors);
    assert!(
        r.latency.p50 > 0.0 && r.latency.max >= r.latency.p99,
        "{what}: {r:?}"
    );
    assert!(!r.series.is_empty(), "{what}: no per-second series");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_keyraft_target_and_operation_and_both_floors_run_clean() {
    let region = Region::start(0);
    let e = Endpoints::load(Some(&region.env_file())).unwrap();
    let ops = [
        Op::Encrypt,
        Op::Decrypt,
        Op::GenerateDataKey,
        Op::Sign,
        Op::CreateKey,
        Op::DescribeKey,
        Op::Mix,
    ];
    for kind in [TargetKind::KeyraftJson, TargetKind::KeyraftGrpc] {
        for op in ops {
            let what = format!("{} {}", kind.name(), op.name());
            let r = bench(&options(kind, op, &e), &brief(op, None))
                .await
                .unwrap_or_else(|err| panic!("{what}: {err:#}\n{}", region.log()));
            assert_clean(&r, &what);
        }
    }
    for kind in [TargetKind::EchoHttps, TargetKind::EchoGrpc] {
        let r = bench(&options(kind, Op::Encrypt, &e), &brief(Op::Encrypt, None))
            .await
            .unwrap();
        assert_clean(&r, kind.name());
    }
    // --count: exactly that many keys, then the run ends long before its window.
    let counted = RunConfig {
        warmup: Duration::ZERO,
        duration: Duration::from_secs(120),
        count: Some(20),
        ..brief(Op::CreateKey, None)
    };
    let r = bench(
        &options(TargetKind::KeyraftJson, Op::CreateKey, &e),
        &counted,
    )
    .await
    .unwrap();
    assert_clean(&r, "create-key --count 20");
    assert_eq!(r.ok, 20, "--count 20 creates 20 keys");
    assert!(r.duration_s < 120.0, "ended at the count: {}", r.duration_s);
    // Open loop: the offered rate is what is sent. 8 clients at 10/s leave room even for a
    // debug region on a loaded machine (a call may take a few hundred ms).
    let open = RunConfig {
        concurrency: 8,
        ..brief(Op::Encrypt, Some(10.0))
    };
    let r = bench(&options(TargetKind::KeyraftJson, Op::Encrypt, &e), &open)
        .await
        .unwrap();
    assert_clean(&r, "open loop");
    assert!(
        (9..=15).contains(&r.ok),
        "1.2 s at 10/s is 12 calls, got {}",
        r.ok
    );
    assert!(r.service_time.is_some());
}

#[tokio::test]
async fn a_wrong_secret_is_refused_with_the_servers_error_kind() {
    let region = Region::start(1);
    let mut e = Endpoints::load(Some(&region.env_file())).unwrap();
    // Setup with the real credentials, then every measured call signed with a wrong secret.
    let opts = options(TargetKind::KeyraftJson, Op::DescribeKey, &e);
    let good = bench(&opts, &brief(Op::DescribeKey, None)).await.unwrap();
    assert_clean(&good, "good secret");
    e.secret_access_key = Some(keyraft_bench::config::SecretString::new("wrong"));
    let err = bench(
        &options(TargetKind::KeyraftJson, Op::DescribeKey, &e),
        &brief(Op::DescribeKey, None),
    )
    .await
    .unwrap_err();
    assert!(
        format!("{err:#}").contains("InvalidSignatureException")
            || format!("{err:#}").contains("SignatureDoesNotMatch"),
        "setup fails with the server's refusal: {err:#}"
    );
}

/// The `bao` binary: BAO_BIN, or the venv `compare-openbao.sh` installs into.
fn bao_bin() -> Option<PathBuf> {
    if let Some(b) = std::env::var_os("BAO_BIN") {
        return Some(b.into());
    }
    let venv = PathBuf::from(std::env::var_os("HOME")?).join(".cache/keyraft-bench/venv/bin/bao");
    venv.is_file().then_some(venv)
}

/// The OpenBao target against `bao server -dev -dev-tls` (in memory, TLS with its own CA).
/// Runs where OpenBao is installed (`bench/compare-openbao.sh` installs it, or set BAO_BIN);
/// elsewhere it says so and checks nothing. `./scripts/test` (CI) installs it and sets BAO_BIN,
/// so there a missing or broken `bao` fails the test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openbao_target_drives_transit_where_openbao_is_installed() {
    let Some(bao) = bao_bin() else {
        eprintln!("SKIPPED: no bao binary (BAO_BIN or ~/.cache/keyraft-bench/venv/bin/bao)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port_base(2);
    let addr = format!("127.0.0.1:{port}");
    let mut child = Command::new(&bao)
        .args([
            "server",
            "-dev",
            "-dev-tls",
            "-dev-root-token-id=bench-root",
        ])
        .arg(format!("-dev-listen-address={addr}"))
        .arg(format!("-dev-tls-cert-dir={}", dir.path().display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    struct Kill<'a>(&'a mut Child);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _guard = Kill(&mut child);
    let ca = dir.path().join("vault-ca.pem");
    let url = format!("https://{addr}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let bao_cmd = |args: &[&str]| {
        Command::new(&bao)
            .args(args)
            .env("BAO_ADDR", &url)
            .env("BAO_CACERT", &ca)
            .env("BAO_TOKEN", "bench-root")
            .output()
            .unwrap()
    };
    while !(ca.is_file() && bao_cmd(&["status"]).status.success()) {
        assert!(Instant::now() < deadline, "bao -dev did not come up");
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = bao_cmd(&["secrets", "enable", "transit"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let e = Endpoints {
        openbao_addr: Some(url),
        openbao_ca: Some(ca),
        openbao_token: Some(keyraft_bench::config::SecretString::new("bench-root")),
        ..Default::default()
    };
    for op in [
        Op::Encrypt,
        Op::Decrypt,
        Op::GenerateDataKey,
        Op::Sign,
        Op::CreateKey,
        Op::DescribeKey,
        Op::Mix,
    ] {
        let what = format!("openbao {}", op.name());
        let r = bench(&options(TargetKind::Openbao, op, &e), &brief(op, None))
            .await
            .unwrap_or_else(|err| panic!("{what}: {err:#}"));
        assert_clean(&r, &what);
    }
    // A wrong token is refused at setup with OpenBao's own answer.
    let mut bad = e.clone();
    bad.openbao_token = Some(keyraft_bench::config::SecretString::new("wrong"));
    let err = bench(
        &options(TargetKind::Openbao, Op::Encrypt, &bad),
        &brief(Op::Encrypt, None),
    )
    .await
    .unwrap_err();
    assert!(format!("{err:#}").contains("403"), "{err:#}");
}
