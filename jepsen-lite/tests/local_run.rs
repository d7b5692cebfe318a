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
