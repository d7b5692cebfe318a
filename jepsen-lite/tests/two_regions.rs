//! A short real two-region run: `keyraft dev --regions` laid out by the local backend, both
//! regions from the `keyraft` binary, region partitions (and kills in region A) while the
//! multi-region workload creates, replicates, rotates, encrypts in A and decrypts in B; then
//! every replica must hold exactly its primary's material within 60 s of the heal and every
//! acknowledged ciphertext must decrypt in B. Needs `cargo build -p keyraft-node` first.

use std::path::PathBuf;
use std::time::Duration;

use jepsen_lite::nemesis::Family;
use jepsen_lite::runner::{run, RunOptions};
use jepsen_lite::workload::Workload;
use jepsen_lite::Validity;

fn keyraft_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("KEYRAFT_BIN") {
        return bin.into();
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/debug/keyraft")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_regions_under_region_partitions_converge_and_decrypt_across_regions() {
    let bin = keyraft_bin();
    assert!(
        bin.is_file(),
        "{} is missing: run `cargo build -p keyraft-node` first",
        bin.display()
    );
    // Kept when the test fails (the path is in the message); removed when it passes.
    let dir = tempfile::Builder::new()
        .prefix("jepsen-lite-two-regions-")
        .tempdir()
        .unwrap()
        .keep();
    let mut opts = RunOptions::new(dir.join("results"), bin);
    opts.regions = 2;
    opts.time = Duration::from_secs(30);
    opts.workloads = vec![Workload::CreateAndUse, Workload::MultiRegion];
    opts.nemesis.families = vec![Family::RegionPartition, Family::Kill];
    opts.nemesis.interval = Duration::from_secs(7);
    opts.nemesis.hold = Duration::from_secs(4);
    opts.concurrency = 6;

    let out = run(opts).await.expect("the run completes");

    let faults = |kind: &str| out.stats.faults.get(kind).copied().unwrap_or(0);
    if out.stats.partitions_unavailable.is_none() {
        assert!(
            faults("region-partition") >= 1,
            "the regions were cut apart: {:?}",
            out.stats.faults
        );
    }
    let ok = |op: &str| out.stats.ok_by_op.get(op).copied().unwrap_or(0);
    assert!(
        ok("replicate-key") >= 1 && ok("encrypt") > 50 && ok("decrypt-replica") > 10,
        "keys were replicated and used in both regions: {:?}",
        out.stats.ok_by_op
    );
    let mr = out
        .stats
        .multi_region
        .as_ref()
        .expect("the replicas were observed");
    assert!(
        mr.converged_after_ms.is_some_and(|ms| ms <= 60_000),
        "replicas converged within 60 s: {mr:#?}"
    );
    let checked: Vec<&str> = out
        .verdict
        .checks
        .iter()
        .map(|c| c.checker.as_str())
        .collect();
    assert!(
        checked.contains(&"replica-convergence") && checked.contains(&"replica-decryptable"),
        "{checked:?}"
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
