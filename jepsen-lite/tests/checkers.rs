//! The checking half end to end: self-test cases (multi-region ones too), the 20,000-call
//! timing bound, and re-checking a saved results directory.

use std::time::{Duration, Instant};

use jepsen_lite::check::{check_all, AnomalyKind, Options, Validity};
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
fn every_multi_region_self_test_case_gets_its_expected_verdict() {
    let cases = selftest::multi_region_cases();
    assert!(
        cases.iter().any(
            |(name, _, expect)| name.contains("missing a material version")
                && expect == &[AnomalyKind::ReplicaMaterialMismatch]
        ),
        "the planted replica missing a version is among the cases"
    );
    for (name, result, expect) in cases {
        if expect.is_empty() {
            assert_eq!(result.validity, Validity::Valid, "{name}: {result:#?}");
            continue;
        }
        assert_eq!(result.validity, Validity::Invalid, "{name}: {result:#?}");
        for kind in expect {
            assert!(
                result.anomalies.iter().any(|a| a.kind == kind),
                "{name}: {kind:?} flagged in {result:#?}"
            );
        }
    }
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

#[test]
fn check_dir_takes_the_revocation_bound_and_leader_kill_recovery_from_run_json() {
    // An Encrypt honoured 600 ms after DisableKey: within dev's 1.1 s, not within 400 ms.
    let sim = simulate(&SimConfig::default(), &[Plant::EncryptWithinStaleness]);
    let dir = tempfile::tempdir().unwrap();
    Run {
        history: sim.history,
        faults: sim.faults,
        replicas: Some(sim.replicas),
    }
    .save(dir.path())
    .unwrap();
    assert_eq!(
        check_dir(dir.path(), &Options::default()).unwrap().validity,
        Validity::Valid
    );

    let run = serde_json::json!({
        "revocation_bound": { "cache_staleness_ms": 300, "allowance_ms": 100 },
        "recovery": {
            "per_kill_ms": [800, 4200],
            "kill_at_ms": [5000, 25000],
            "kill_node": [1, 3],
            "workload_per_kill_ms": [900, null],
            "p50_ms": 800,
            "p99_ms": 4200
        }
    });
    std::fs::write(dir.path().join(files::RUN), run.to_string()).unwrap();
    let v = check_dir(dir.path(), &Options::default()).unwrap();
    assert!(
        v.validity == Validity::Invalid && v.has(AnomalyKind::StaleRevocation),
        "{}",
        v.summary()
    );
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join(files::VERDICT)).unwrap()).unwrap();
    let recovery = &saved["targets"][0];
    assert_eq!(recovery["checker"], "recovery");
    assert_eq!(recovery["validity"], "invalid", "p99 4.2 s misses 3 s");
    assert_eq!(recovery["stats"]["p50_ms"], 800);
    assert_eq!(recovery["stats"]["kills"][1]["at_ms"], 25000);
    let html = std::fs::read_to_string(dir.path().join(files::INDEX)).unwrap();
    assert!(html.contains("MISSED") && html.contains("<td>25.000</td>"));
}

#[test]
fn check_dir_says_why_convergence_is_unknown_from_run_json() {
    let sim = simulate(&SimConfig::default(), &[]);
    let dir = tempfile::tempdir().unwrap();
    Run {
        history: sim.history,
        faults: sim.faults,
        replicas: Some(Vec::new()),
    }
    .save(dir.path())
    .unwrap();
    let why = "the replicas never reported a state hash at one common applied index within 60s";
    let run = serde_json::json!({ "convergence_unknown": why });
    std::fs::write(dir.path().join(files::RUN), run.to_string()).unwrap();
    let v = check_dir(dir.path(), &Options::default()).unwrap();
    assert_eq!(v.validity, Validity::Unknown, "{}", v.summary());
    let convergence = v
        .checks
        .iter()
        .find(|c| c.checker == "convergence")
        .expect("a convergence check");
    assert_eq!(convergence.validity, Validity::Unknown);
    assert!(
        convergence.notes.iter().any(|n| n == why),
        "{:?}",
        convergence.notes
    );
}
