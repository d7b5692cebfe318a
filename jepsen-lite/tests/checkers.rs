//! The checking half end to end: self-test cases, the 20,000-call timing bound, and
//! re-checking a saved results directory.

use std::time::{Duration, Instant};

use jepsen_lite::check::{check_all, Options, Validity};
use jepsen_lite::results::{check_dir, files, Run};
use jepsen_lite::selftest;
use jepsen_lite::sim::{simulate, Plant, SimConfig};

#[test]
fn every_self_test_case_gets_its_expected_verdict() {
    let opts = Options::default();
    let failed: Vec<String> = selftest::cases()
        .iter()
        .map(|c| selftest::run_case(c, &opts))
        .filter(|r| !r.passed)
        .map(|r| r.line)
        .collect();
    assert!(failed.is_empty(), "{failed:#?}");
}

#[test]
fn twenty_thousand_concurrent_calls_over_fifty_keys_check_in_under_ten_seconds() {
    let sim = simulate(
        &SimConfig {
            seed: 2026,
            // About eight calls in flight per key.
            processes: 400,
            keys: 50,
            calls: 20_000,
            info_rate: 0.05,
            deletes: true,
        },
        &[],
    );
    let started = Instant::now();
    let v = check_all(&sim.history, Some(&sim.replicas), &Options::default()).unwrap();
    let took = started.elapsed();
    eprintln!(
        "20k calls ({} events): {took:?}: {}",
        sim.history.len(),
        v.summary()
    );
    assert_eq!(v.validity, Validity::Valid, "{}", v.summary());
    assert!(took < Duration::from_secs(10), "took {took:?}");
}

#[test]
fn check_dir_rechecks_a_saved_run_and_writes_verdict_and_report() {
    let sim = simulate(&SimConfig::default(), &[Plant::LostWrite]);
    let dir = tempfile::tempdir().unwrap();
    Run {
        history: sim.history,
        faults: sim.faults,
        replicas: Some(sim.replicas),
    }
    .save(dir.path())
    .unwrap();
    let v = check_dir(dir.path(), &Options::default()).unwrap();
    assert_eq!(v.validity, Validity::Invalid);
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join(files::VERDICT)).unwrap()).unwrap();
    assert_eq!(saved["validity"], "invalid");
    assert!(dir.path().join(files::INDEX).exists());
}
