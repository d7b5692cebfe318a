//! Leader-kill recovery: from SIGKILL of the leader to the first acknowledged write, the
//! issue's targets are p50 <= 1 s and p99 <= 3 s.
//!
//! Not a property of the history: the runner measures it with a probe writer outside the
//! history and saves it in `run.json` (`recovery`); [`check`] judges it against the targets
//! for `verdict.json` (`targets`, next to the checks) and the report. A missed target is an
//! `invalid` target, not an invalid history: it does not change the verdict or the exit code.
//! A kill after which no write succeeded within the probe's 30 s counts as slower than any
//! target.

use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Anomaly, AnomalyKind, CheckResult};

/// Target for the median, in milliseconds.
pub const P50_TARGET_MS: u64 = 1_000;
/// Target for the 99th percentile, in milliseconds.
pub const P99_TARGET_MS: u64 = 3_000;

/// The `recovery` object of `run.json` (the fields this check reads).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RecoveryTimes {
    /// Per leader kill: milliseconds to the first acknowledged probe write (`None`: never).
    #[serde(default)]
    pub per_kill_ms: Vec<Option<u64>>,
    /// Per leader kill: when it happened, in milliseconds since the start of the history.
    #[serde(default)]
    pub kill_at_ms: Vec<u64>,
    /// Per leader kill: the node killed.
    #[serde(default)]
    pub kill_node: Vec<u64>,
    /// Per leader kill: milliseconds to the first acknowledged workload write invoked after it.
    #[serde(default)]
    pub workload_per_kill_ms: Vec<Option<u64>>,
}

/// Nearest-rank percentile; a kill that never recovered ranks above every measurement.
pub fn percentile(values: &[Option<u64>], p: usize) -> Option<u64> {
    let mut v: Vec<u64> = values.iter().map(|v| v.unwrap_or(u64::MAX)).collect();
    v.sort_unstable();
    (!v.is_empty()).then(|| v[(v.len() * p).div_ceil(100).max(1) - 1])
}

fn show(v: Option<u64>) -> String {
    match v {
        Some(u64::MAX) => "never (> 30 s)".into(),
        Some(ms) => format!("{ms} ms"),
        None => "-".into(),
    }
}

/// Judges the measured recovery times against the targets.
pub fn check(times: &RecoveryTimes) -> CheckResult {
    let started = Instant::now();
    let mut result = CheckResult::new("recovery");
    let p50 = percentile(&times.per_kill_ms, 50);
    let p99 = percentile(&times.per_kill_ms, 99);
    if times.per_kill_ms.is_empty() {
        result
            .notes
            .push("no leader was killed: recovery not measured".into());
    }
    for (name, value, target) in [("p50", p50, P50_TARGET_MS), ("p99", p99, P99_TARGET_MS)] {
        if let Some(v) = value.filter(|v| *v > target) {
            result.flag(Anomaly {
                kind: AnomalyKind::SlowRecovery,
                key: None,
                ops: Vec::new(),
                message: format!(
                    "leader kill to first acknowledged write: {name} {} exceeds the {target} ms \
                     target ({} kills)",
                    show(Some(v)),
                    times.per_kill_ms.len()
                ),
                detail: json!({ "percentile": name, "ms": value, "target_ms": target }),
            });
        }
    }
    let kills: Vec<serde_json::Value> = times
        .per_kill_ms
        .iter()
        .enumerate()
        .map(|(i, ms)| {
            json!({
                "at_ms": times.kill_at_ms.get(i),
                "node": times.kill_node.get(i),
                "recovery_ms": ms,
                "workload_recovery_ms": times.workload_per_kill_ms.get(i).copied().flatten(),
            })
        })
        .collect();
    let finite = |v: Option<u64>| v.filter(|v| *v != u64::MAX);
    result.stats = json!({
        "leader_kills": times.per_kill_ms.len(),
        "p50_ms": finite(p50),
        "p99_ms": finite(p99),
        "unrecovered": times.per_kill_ms.iter().filter(|v| v.is_none()).count(),
        "p50_target_ms": P50_TARGET_MS,
        "p99_target_ms": P99_TARGET_MS,
        "kills": kills,
    });
    result.timed(started)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Validity;

    fn times(ms: &[Option<u64>]) -> RecoveryTimes {
        RecoveryTimes {
            per_kill_ms: ms.to_vec(),
            kill_at_ms: (0..ms.len() as u64).map(|i| i * 10_000).collect(),
            kill_node: vec![1; ms.len()],
            workload_per_kill_ms: Vec::new(),
        }
    }

    #[test]
    fn fast_recoveries_meet_the_targets() {
        let r = check(&times(&[Some(400), Some(900), Some(2_500)]));
        assert_eq!(r.validity, Validity::Valid, "{:?}", r.anomalies);
        assert_eq!(r.stats["p50_ms"], json!(900));
        assert_eq!(r.stats["kills"][2]["at_ms"], json!(20_000));
    }

    #[test]
    fn a_slow_median_is_flagged() {
        let r = check(&times(&[Some(1_400), Some(1_500), Some(200)]));
        assert_eq!(r.validity, Validity::Invalid);
        assert_eq!(r.anomalies[0].kind, AnomalyKind::SlowRecovery);
    }

    #[test]
    fn a_kill_that_never_recovered_misses_the_p99_target() {
        let r = check(&times(&[Some(300), None]));
        assert_eq!(r.validity, Validity::Invalid);
        assert!(
            r.anomalies[0].message.contains("never"),
            "{:?}",
            r.anomalies
        );
    }

    #[test]
    fn no_kills_is_valid_with_a_note() {
        let r = check(&RecoveryTimes::default());
        assert_eq!(r.validity, Validity::Valid);
        assert_eq!(r.notes.len(), 1);
    }
}
