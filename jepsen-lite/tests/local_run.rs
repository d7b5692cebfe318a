//! A short real run: a local three-node region of the `keyraft` binary under kill and
//! partition faults, both workloads, every checker. Needs `cargo build -p keyraft-node` first
//! (the binary is taken from the workspace's target/debug).

use std::path::PathBuf;
use std::time::Duration;

use jepsen_lite::nemesis::Family;
use jepsen_lite::runner::{run, RunOptions};
use jepsen_lite::Validity;

fn keyraft_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("KEYRAFT_BIN") {
        return bin.into();
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/debug/keyraft")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_short_run_with_kills_and_partitions_is_linearizable_and_loses_nothing() {
    let bin = keyraft_bin();
    assert!(
        bin.is_file(),
        "{} is missing: run `cargo build -p keyraft-node` first",
        bin.display()
    );
    // Kept when the test fails (the path is in the message); removed when it passes.
    let dir = tempfile::Builder::new()
        .prefix("jepsen-lite-local-run-")
        .tempdir()
        .unwrap()
        .keep();
    let mut opts = RunOptions::new(dir.join("results"), bin);
    opts.time = Duration::from_secs(30);
    opts.nemesis.families = vec![Family::Kill, Family::Partition];
    opts.nemesis.interval = Duration::from_secs(8);
    opts.nemesis.hold = Duration::from_secs(4);
    opts.concurrency = 6;

    let out = run(opts).await.expect("the run completes");

    let faults: usize = out.stats.faults.values().sum();
    assert!(faults >= 2, "faults were injected: {:?}", out.stats.faults);
    assert!(
        out.stats.ok > 100,
        "the cluster served calls: {:?}",
        out.stats
    );
    assert!(
        out.results.join("history.jsonl").is_file() && out.results.join("verdict.json").is_file(),
        "results are written"
    );
    assert_eq!(
        out.verdict.validity,
        Validity::Valid,
        "{}\n{:#?}\nresults: {}",
        out.verdict.summary(),
        out.verdict
            .checks
            .iter()
            .flat_map(|c| c.anomalies.iter().map(|a| &a.message).chain(&c.notes))
            .collect::<Vec<_>>(),
        out.results.display()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Processes whose command line mentions `needle` (the run's directory).
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(needle) {
            out.push(format!(
                "{}: {cmdline}",
                entry.file_name().to_string_lossy()
            ));
        }
    }
    out
}

fn iptables_rules() -> Option<String> {
    let out = std::process::Command::new("iptables")
        .args(["-w", "-S"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn sigterm_stops_the_run_and_removes_its_processes_and_iptables_chain() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let bin = keyraft_bin();
    assert!(
        bin.is_file(),
        "{} is missing: run `cargo build -p keyraft-node` first",
        bin.display()
    );
    let dir = tempfile::Builder::new()
        .prefix("jepsen-lite-sigterm-")
        .tempdir()
        .unwrap();
    let results = dir.path().join("results");
    let mut run = Command::new(env!("CARGO_BIN_EXE_jepsen-lite"))
        .args([
            "run",
            "--backend",
            "local",
            "--time",
            "120",
            "--nemesis",
            "none",
        ])
        .arg("--keyraft-bin")
        .arg(&bin)
        .arg("--results")
        .arg(&results)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = run.id();
    let chain = format!("KEYRAFT-JL-{pid}-");
    // Wait until the workload runs: every child is up and the chain exists.
    let mut lines = BufReader::new(run.stdout.take().unwrap()).lines();
    let started = loop {
        match lines.next() {
            Some(Ok(line)) if line.contains("jepsen-lite: running") => break true,
            Some(Ok(_)) => {}
            _ => break false,
        }
    };
    assert!(started, "the run did not get to its workload");
    let needle = results.to_string_lossy().into_owned();
    assert!(
        processes_mentioning(&needle).len() >= 4,
        "three nodes and a front run: {:?}",
        processes_mentioning(&needle)
    );
    let rules = iptables_rules();
    if let Some(rules) = &rules {
        assert!(rules.contains(&chain), "the run's chain exists:\n{rules}");
    }

    let killed = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    // Drain stdout so the harness never blocks on a full pipe while it cleans up.
    std::thread::spawn(move || for _ in lines {});
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(status) = run.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the run did not exit within 90 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(status.code(), Some(2), "an interrupted run exits 2");
    assert_eq!(
        processes_mentioning(&needle),
        Vec::<String>::new(),
        "no keyraft process of the run is left"
    );
    if rules.is_some() {
        let after = iptables_rules().unwrap_or_default();
        assert!(!after.contains(&chain), "the chain is gone:\n{after}");
    }
}
