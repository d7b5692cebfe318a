//! `jepsen-lite self-test`: the checkers against histories with known answers.
//!
//! Each case simulates a run (see [`sim`](crate::sim)), optionally with one planted anomaly,
//! checks it, and passes when exactly the expected verdict comes out: planted anomalies must
//! be flagged with their kind, valid histories must be judged valid (not merely "not
//! invalid").

use std::time::Instant;

use crate::check::{
    check_all, validity_word, AnomalyKind, CheckResult, Options, Validity, Verdict,
};
use crate::sim::{simulate, Plant, SimConfig};

/// One self-test case.
#[derive(Debug, Clone)]
pub struct Case {
    /// Name printed in the verdict line.
    pub name: &'static str,
    /// Simulation parameters.
    pub config: SimConfig,
    /// Anomaly to plant, if any.
    pub plant: Option<Plant>,
    /// Kinds that must be flagged (empty: the history must be valid).
    pub expect: Vec<AnomalyKind>,
}

/// Outcome of one case.
#[derive(Debug, Clone)]
pub struct CaseResult {
    /// Case name.
    pub name: &'static str,
    /// Whether the verdict was the expected one.
    pub passed: bool,
    /// One line: PASS/FAIL, the case, the verdict and the time taken.
    pub line: String,
    /// The full verdict.
    pub verdict: Option<Verdict>,
}

/// The standard cases: every plantable anomaly, plus valid histories under heavy
/// concurrency, many timeouts, deletions, a 20,000-call run over 50 keys and a revocation
/// honoured by a cache within its bound.
pub fn cases() -> Vec<Case> {
    let base = SimConfig {
        seed: 7,
        processes: 16,
        keys: 8,
        calls: 3_000,
        info_rate: 0.05,
        deletes: true,
    };
    let planted = |name, plant, expect: Vec<AnomalyKind>| Case {
        name,
        config: base.clone(),
        plant: Some(plant),
        expect,
    };
    use AnomalyKind::*;
    vec![
        Case {
            name: "valid: heavy concurrency (48 processes, 6 keys)",
            config: SimConfig {
                seed: 11,
                processes: 48,
                keys: 6,
                calls: 4_000,
                ..base.clone()
            },
            plant: None,
            expect: vec![],
        },
        Case {
            name: "valid: many timeouts (30% info)",
            config: SimConfig {
                seed: 12,
                processes: 20,
                keys: 5,
                calls: 2_000,
                info_rate: 0.3,
                ..base.clone()
            },
            plant: None,
            expect: vec![],
        },
        Case {
            name: "valid: no deletions",
            config: SimConfig {
                seed: 13,
                deletes: false,
                ..base.clone()
            },
            plant: None,
            expect: vec![],
        },
        Case {
            name: "valid: 20,000 calls over 50 keys",
            config: SimConfig {
                seed: 14,
                processes: 32,
                keys: 50,
                calls: 20_000,
                info_rate: 0.05,
                deletes: true,
            },
            plant: None,
            expect: vec![],
        },
        planted("stale read", Plant::StaleRead, vec![NonLinearizable]),
        planted("lost write", Plant::LostWrite, vec![NonLinearizable]),
        planted(
            "lost create",
            Plant::LostCreate,
            vec![LostCreate, NonLinearizable],
        ),
        planted(
            "write resurrected after delete",
            Plant::Resurrection,
            vec![Resurrected, NonLinearizable],
        ),
        planted(
            "non-decryptable ciphertext",
            Plant::Undecryptable,
            vec![Undecryptable],
        ),
        planted(
            "ciphertext decrypts to another plaintext",
            Plant::WrongPlaintext,
            vec![WrongPlaintext],
        ),
        planted(
            "divergent replica hash",
            Plant::DivergentReplica,
            vec![DivergentReplicas],
        ),
        planted(
            "Encrypt honoured 1.5 s after an acknowledged DisableKey",
            Plant::LateEncryptAfterDisable,
            vec![StaleRevocation],
        ),
        planted(
            "Encrypt honoured 1.5 s after an acknowledged deny policy",
            Plant::LateEncryptAfterPolicyDeny,
            vec![StaleRevocation],
        ),
        Case {
            name: "valid: Encrypt honoured 600 ms after DisableKey (within the 1.1 s bound)",
            config: base.clone(),
            plant: Some(Plant::EncryptWithinStaleness),
            expect: vec![],
        },
        Case {
            name: "stale read amid 30% timeouts",
            config: SimConfig {
                seed: 15,
                info_rate: 0.3,
                ..base.clone()
            },
            plant: Some(Plant::StaleRead),
            expect: vec![NonLinearizable],
        },
    ]
}

/// Runs one case.
pub fn run_case(case: &Case, opts: &Options) -> CaseResult {
    let started = Instant::now();
    let sim = simulate(&case.config, case.plant.as_slice());
    let verdict = match check_all(&sim.history, Some(&sim.replicas), opts) {
        Ok(v) => v,
        Err(e) => {
            return CaseResult {
                name: case.name,
                passed: false,
                line: format!("FAIL {}: malformed history: {e:#}", case.name),
                verdict: None,
            }
        }
    };
    let elapsed = started.elapsed();
    let (passed, why) = if case.expect.is_empty() {
        (
            verdict.validity == Validity::Valid,
            format!("expected valid, got {}", verdict.summary()),
        )
    } else {
        let missing: Vec<_> = case.expect.iter().filter(|k| !verdict.has(**k)).collect();
        (
            verdict.validity == Validity::Invalid && missing.is_empty(),
            match verdict.anomalies().find(|a| case.expect.contains(&a.kind)) {
                Some(a) if missing.is_empty() => format!("flagged: {}", a.message),
                _ => format!(
                    "expected {:?} flagged, got {}",
                    case.expect,
                    verdict.summary()
                ),
            },
        )
    };
    let line = format!(
        "{} {} [{} events, {:.2}s]: {}",
        if passed { "PASS" } else { "FAIL" },
        case.name,
        sim.history.len(),
        elapsed.as_secs_f64(),
        if passed && case.expect.is_empty() {
            verdict.summary()
        } else {
            why
        }
    );
    CaseResult {
        name: case.name,
        passed,
        line,
        verdict: Some(verdict),
    }
}

/// The multi-region cases: the runner's observation of both regions after the heal (and a
/// history of cross-region decrypts), each judged by its checker alone.
pub fn multi_region_cases() -> Vec<(&'static str, CheckResult, Vec<AnomalyKind>)> {
    use crate::check::multi_region::{
        check_convergence, check_replica_decrypts, Material, MrConvergence, MrKeyObservation,
        CONVERGENCE_WITHIN_MS,
    };
    use crate::history::{KeyMeta, Recorder, Value, F};
    let m = |v: u32, current: bool| Material {
        id: format!("{v:064x}"),
        current,
    };
    let observed = |primary: Vec<Material>, replica: Vec<Material>, after: Option<u64>| {
        let key = |i: u32, p: Vec<Material>, r: Vec<Material>| MrKeyObservation {
            key: format!("mrk-{i:032x}"),
            primary: Some(p),
            replica: Some(r),
            ..MrKeyObservation::default()
        };
        MrConvergence {
            keys: vec![
                key(1, vec![m(1, true)], vec![m(1, true)]),
                key(2, primary, replica),
            ],
            converged_after_ms: after,
            within_ms: CONVERGENCE_WITHIN_MS,
            polls: 10,
        }
    };
    // Three ciphertexts under a replicated key, made before and after a rotation; the
    // replica region decrypts the first two and refuses the third.
    let decrypts = |third_decrypts: bool| {
        let r = Recorder::new();
        let key = "mrk-00000000000000000000000000000003";
        let p = r.invoke(1, F::CreateKey, None, Value::Meta(Some(KeyMeta::new("mr"))));
        r.ok_created(p, key, Value::Meta(Some(KeyMeta::new("mr"))));
        let p = r.invoke(1, F::ReplicateKey, Some(key), Value::Region("b".into()));
        r.ok(p, Value::None);
        for (i, ct) in ["AQ==", "Ag==", "Aw=="].iter().enumerate() {
            let pt = format!("p{i}");
            let e = r.invoke(1, F::Encrypt, Some(key), Value::Plaintext(pt.clone()));
            r.ok(
                e,
                Value::Encrypted {
                    plaintext: pt.clone(),
                    ciphertext: ct.to_string(),
                },
            );
            let d = r.invoke(
                2,
                F::DecryptReplica,
                Some(key),
                Value::Ciphertext(ct.to_string()),
            );
            if i < 2 || third_decrypts {
                r.ok(d, Value::Plaintext(pt));
            } else {
                r.fail(d, "InvalidCiphertextException: the replica lacks version 2");
            }
        }
        let h = r.snapshot();
        let calls = h.calls().expect("a well-formed history");
        check_replica_decrypts(&calls)
    };
    use AnomalyKind::*;
    vec![
        (
            "valid: replicas hold their primary's versions 2.1 s after the heal",
            check_convergence(&observed(
                vec![m(1, false), m(2, false), m(3, true)],
                vec![m(3, true), m(1, false), m(2, false)],
                Some(2_100),
            )),
            vec![],
        ),
        (
            "replica missing a material version",
            check_convergence(&observed(
                vec![m(1, false), m(2, false), m(3, true)],
                vec![m(1, false), m(3, true)],
                None,
            )),
            vec![ReplicaMaterialMismatch],
        ),
        (
            "replica stuck on an older current version",
            check_convergence(&observed(
                vec![m(1, false), m(2, true)],
                vec![m(1, true), m(2, false)],
                None,
            )),
            vec![ReplicaMaterialMismatch],
        ),
        (
            "replicas converged 75 s after the heal (limit 60 s)",
            check_convergence(&observed(vec![m(1, true)], vec![m(1, true)], Some(75_000))),
            vec![SlowReplication],
        ),
        (
            "valid: ciphertexts from before and after a rotation decrypt in the replica region",
            decrypts(true),
            vec![],
        ),
        (
            "ciphertext that does not decrypt in the replica region",
            decrypts(false),
            vec![Undecryptable],
        ),
    ]
}

/// Runs every case, printing one line each; returns whether all passed.
pub fn run(opts: &Options, mut out: impl std::io::Write) -> std::io::Result<bool> {
    let mut all = true;
    let mut n = 0;
    for case in cases() {
        let r = run_case(&case, opts);
        writeln!(out, "{}", truncate(&r.line, 400))?;
        all &= r.passed;
        n += 1;
    }
    for (name, result, expect) in multi_region_cases() {
        let passed = if expect.is_empty() {
            result.validity == Validity::Valid
        } else {
            result.validity == Validity::Invalid
                && expect
                    .iter()
                    .all(|k| result.anomalies.iter().any(|a| a.kind == *k))
        };
        let what = match result.anomalies.first() {
            Some(a) => format!("flagged: {}", a.message),
            None => format!("{} {}", result.checker, validity_word(result.validity)),
        };
        writeln!(
            out,
            "{} {name}: {}",
            if passed { "PASS" } else { "FAIL" },
            truncate(&what, 300)
        )?;
        all &= passed;
        n += 1;
    }
    writeln!(
        out,
        "self-test: {} ({n} cases)",
        if all { "all passed" } else { "FAILED" }
    )?;
    Ok(all)
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}
