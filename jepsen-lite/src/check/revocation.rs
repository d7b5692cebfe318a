//! Revocation: once a revocation is acknowledged, no front may keep honouring the old state
//! for longer than the staleness bound.
//!
//! Fronts cache key records and policies for at most `cache_staleness` (node/src/front/
//! cache.rs); the store's watch stream normally drops an entry at once. So an Encrypt that
//! *starts* more than the bound after a revocation was acknowledged, and *ends* before anything
//! could have undone the revocation, must be refused.
//!
//! Revocations, per key:
//!
//! | blocks Encrypt | revoked by (acknowledged) | undone by (any call not definitely failed) |
//! | --- | --- | --- |
//! | key state | DisableKey, ScheduleKeyDeletion | EnableKey |
//! | key policy | PutKeyPolicy that does not allow the App identity to Encrypt | PutKeyPolicy that does |
//!
//! A revocation `r` opens a window at its acknowledgement. The window closes at the earliest
//! invocation of an undo that may take effect after `r`: one that is acknowledged but did not
//! complete before `r` was invoked, or one of unknown outcome (it may apply at any later time).
//! An undo invoked before `r` was acknowledged may be ordered after `r`: the window is empty.
//! CancelKeyDeletion is not an undo: it leaves the key Disabled.
//!
//! Within a window `[ack, end)`, an acknowledged Encrypt of the key invoked at `i` and completed
//! before `end` honoured the old state at least until `i`: its *observed staleness* is
//! `i - ack`, and `i > ack + bound` is a violation. Times are the harness's monotonic clock
//! only (invoke and completion times), so no clock is compared with a front's: the front
//! committed the revocation before the harness saw the ack, and looked the key up after the
//! harness sent the Encrypt, so both errors shrink the observed staleness, never grow it.

use std::collections::BTreeMap;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::linearizable::describe_call;
use super::{Anomaly, AnomalyKind, CheckResult};
use crate::history::{Call, OpType, Value, F};

/// How stale a front may be: its configured cache staleness plus an allowance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationBound {
    /// The fronts' `cache_staleness_ms` (1 000 in `keyraft dev`).
    pub cache_staleness_ms: u64,
    /// Added to it. The argument above needs none on one host; the allowance covers fronts
    /// whose monotonic clock runs at a slightly different rate than the harness's (a VM under
    /// Docker Desktop), and the front's coarse timer wheel.
    pub allowance_ms: u64,
}

impl RevocationBound {
    /// The allowance used unless the runner says otherwise.
    pub const DEFAULT_ALLOWANCE_MS: u64 = 100;

    /// `cache_staleness_ms` plus the default allowance.
    pub fn with_default_allowance(cache_staleness_ms: u64) -> Self {
        RevocationBound {
            cache_staleness_ms,
            allowance_ms: Self::DEFAULT_ALLOWANCE_MS,
        }
    }

    /// The bound, in milliseconds.
    pub fn total_ms(&self) -> u64 {
        self.cache_staleness_ms + self.allowance_ms
    }
}

impl Default for RevocationBound {
    /// `keyraft dev`'s fronts: 1 s.
    fn default() -> Self {
        Self::with_default_allowance(1_000)
    }
}

/// What a revocation blocks through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Via {
    State,
    Policy,
}

impl Via {
    fn name(self) -> &'static str {
        match self {
            Via::State => "key-state",
            Via::Policy => "key-policy",
        }
    }
}

/// Whether `c` revokes (`Some(true)`) or undoes a revocation (`Some(false)`) through `via`.
fn role(c: &Call<'_>, via: Via) -> Option<bool> {
    match (via, c.invoke.f, &c.invoke.value) {
        (Via::State, F::Disable | F::ScheduleDelete, _) => Some(true),
        (Via::State, F::Enable, _) => Some(false),
        (Via::Policy, F::PutKeyPolicy, Value::Policy { allows_encrypt, .. }) => {
            Some(!allows_encrypt)
        }
        _ => None,
    }
}

struct Window<'c, 'a> {
    via: Via,
    revoke: &'c Call<'a>,
    start: u64,
    end: u64,
}

const MS: u64 = 1_000_000;

fn ms(ns: u64) -> f64 {
    ns as f64 / MS as f64
}

/// Checks every acknowledged revocation against the Encrypts that followed it.
pub fn check(calls: &[Call<'_>], bound: &RevocationBound) -> CheckResult {
    let started = Instant::now();
    let mut result = CheckResult::new("revocation");
    let bound_ns = bound.total_ms() * MS;
    let mut by_key: BTreeMap<&str, Vec<&Call<'_>>> = BTreeMap::new();
    for c in calls {
        if let Some(k) = c.key() {
            by_key.entry(k).or_default().push(c);
        }
    }
    let (mut revocations, mut empty, mut probed) = (0usize, 0usize, 0usize);
    let mut per_window_ms: Vec<f64> = Vec::new();
    let mut first_probe_ms: Vec<f64> = Vec::new();
    let mut max_by_via: BTreeMap<&str, f64> = BTreeMap::new();
    let mut max_staleness: Option<(f64, String)> = None;
    for (key, list) in &by_key {
        let encrypts: Vec<(u64, u64, &Call<'_>)> = list
            .iter()
            .filter(|c| c.invoke.f == F::Encrypt)
            .filter(|c| matches!(c.outcome(), OpType::Ok | OpType::Fail))
            .filter_map(|c| Some((c.invoke.time, c.complete?.time, *c)))
            .collect();
        let mut windows = Vec::new();
        for via in [Via::State, Via::Policy] {
            for r in list.iter().filter(|c| role(c, via) == Some(true)) {
                let (OpType::Ok, Some(ack)) = (r.outcome(), r.complete) else {
                    continue;
                };
                revocations += 1;
                let end = list
                    .iter()
                    .filter(|s| role(s, via) == Some(false) && s.outcome() != OpType::Fail)
                    .filter(|s| match (s.outcome(), s.complete) {
                        (OpType::Ok, Some(done)) => done.time > r.invoke.time,
                        _ => true,
                    })
                    .map(|s| s.invoke.time)
                    .min()
                    .unwrap_or(u64::MAX);
                if end <= ack.time {
                    empty += 1;
                    continue;
                }
                windows.push(Window {
                    via,
                    revoke: r,
                    start: ack.time,
                    end,
                });
            }
        }
        for w in &windows {
            let inside: Vec<&(u64, u64, &Call<'_>)> = encrypts
                .iter()
                .filter(|(i, done, _)| *i >= w.start && *done < w.end)
                .collect();
            if inside.iter().any(|(i, _, _)| *i > w.start + bound_ns) {
                probed += 1;
            }
            // How soon the first Encrypt probed the window: the resolution of a 0 ms result.
            if let Some(first) = inside.iter().map(|(i, _, _)| *i).min() {
                first_probe_ms.push(ms(first - w.start));
            }
            let Some(&&(i, _, e)) = inside
                .iter()
                .filter(|(_, _, e)| e.outcome() == OpType::Ok)
                .max_by_key(|(i, _, _)| *i)
            else {
                if !inside.is_empty() {
                    per_window_ms.push(0.0);
                }
                continue;
            };
            let staleness = ms(i - w.start);
            per_window_ms.push(staleness);
            let slot = max_by_via.entry(w.via.name()).or_insert(0.0);
            *slot = slot.max(staleness);
            if max_staleness.as_ref().is_none_or(|(m, _)| staleness > *m) {
                max_staleness = Some((staleness, key.to_string()));
            }
            if i > w.start + bound_ns {
                result.flag(Anomaly {
                    kind: AnomalyKind::StaleRevocation,
                    key: Some(key.to_string()),
                    ops: vec![
                        w.revoke.invoke.index,
                        w.revoke.end(),
                        e.invoke.index,
                        e.end(),
                    ],
                    message: format!(
                        "key {key}: an Encrypt invoked {staleness:.0} ms after the revocation \
                         ({}) was acknowledged succeeded ({}); the bound is {} ms ({} ms cache \
                         staleness + {} ms allowance)",
                        describe_call(w.revoke),
                        describe_call(e),
                        bound.total_ms(),
                        bound.cache_staleness_ms,
                        bound.allowance_ms,
                    ),
                    detail: json!({
                        "via": w.via.name(),
                        "staleness_ms": staleness,
                        "bound_ms": bound.total_ms(),
                    }),
                });
            }
        }
    }
    if revocations > 0 && probed == 0 {
        result.notes.push(format!(
            "none of the {revocations} acknowledged revocations was probed by an Encrypt more \
             than {} ms after its acknowledgement",
            bound.total_ms()
        ));
    }
    per_window_ms.sort_by(f64::total_cmp);
    // Windows probed but never honoured count as 0 ms.
    let max_ms = per_window_ms.last().copied();
    let pct = |p: usize| {
        (!per_window_ms.is_empty())
            .then(|| per_window_ms[(per_window_ms.len() * p).div_ceil(100).max(1) - 1])
    };
    result.stats = json!({
        "bound_ms": bound.total_ms(),
        "cache_staleness_ms": bound.cache_staleness_ms,
        "allowance_ms": bound.allowance_ms,
        "acknowledged_revocations": revocations,
        "windows_undone_at_once": empty,
        "windows_probed_past_bound": probed,
        "windows_with_encrypts": per_window_ms.len(),
        "max_observed_staleness_ms": max_ms.map(|m| (m * 10.0).round() / 10.0),
        "max_observed_staleness_key": max_staleness.map(|(_, k)| k),
        "p50_observed_staleness_ms": pct(50),
        "p99_observed_staleness_ms": pct(99),
        "max_observed_staleness_ms_by_via": max_by_via,
        "max_first_probe_after_ack_ms": first_probe_ms
            .iter()
            .copied()
            .reduce(f64::max)
            .map(|m| m.round()),
    });
    result.timed(started)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testkit::Script;
    use crate::check::Validity;
    use crate::history::{History, Op};

    /// Events at explicit times (ms), so that windows can be longer than the bound.
    #[derive(Default)]
    struct Timed(History);

    impl Timed {
        fn ev(&mut self, ms: u64, p: u64, t: OpType, f: F, v: Value) -> &mut Self {
            self.0.push(Op {
                process: p,
                index: 0,
                op_type: t,
                f,
                key: Some("k".into()),
                value: v,
                error: (t == OpType::Fail).then(|| "DisabledException".into()),
                time: ms * MS,
                node: None,
            });
            self
        }
        fn call(&mut self, from: u64, to: u64, p: u64, f: F, out: OpType) -> &mut Self {
            let v = match f {
                F::Encrypt => Value::Plaintext("x".into()),
                _ => Value::None,
            };
            self.ev(from, p, OpType::Invoke, f, v);
            let out_v = match (f, out) {
                (F::Encrypt, OpType::Ok) => Value::Encrypted {
                    plaintext: "x".into(),
                    ciphertext: "c".into(),
                },
                _ => Value::None,
            };
            self.ev(to, p, out, f, out_v)
        }
        fn policy(&mut self, from: u64, to: u64, p: u64, allows: bool, out: OpType) -> &mut Self {
            let v = Value::Policy {
                name: if allows { "allow" } else { "deny" }.into(),
                allows_encrypt: allows,
            };
            self.ev(from, p, OpType::Invoke, F::PutKeyPolicy, v).ev(
                to,
                p,
                out,
                F::PutKeyPolicy,
                Value::None,
            )
        }
        fn check(&self) -> CheckResult {
            let calls = self.0.calls().unwrap();
            check(&calls, &RevocationBound::default())
        }
    }

    #[test]
    fn success_later_than_the_bound_after_a_disable_is_flagged() {
        let mut h = Timed::default();
        h.call(0, 10, 1, F::Disable, OpType::Ok)
            .call(500, 510, 2, F::Encrypt, OpType::Ok)
            .call(1_500, 1_510, 2, F::Encrypt, OpType::Ok)
            .call(2_000, 2_010, 1, F::Enable, OpType::Ok);
        let r = h.check();
        assert_eq!(r.validity, Validity::Invalid);
        assert_eq!(r.anomalies.len(), 1, "one anomaly per window");
        assert_eq!(r.anomalies[0].kind, AnomalyKind::StaleRevocation);
        assert_eq!(r.stats["max_observed_staleness_ms"], json!(1490.0));
    }

    #[test]
    fn success_within_the_bound_is_stale_but_allowed() {
        let mut h = Timed::default();
        h.call(0, 10, 1, F::Disable, OpType::Ok)
            .call(900, 910, 2, F::Encrypt, OpType::Ok)
            .call(1_200, 1_210, 2, F::Encrypt, OpType::Fail);
        let r = h.check();
        assert_eq!(r.validity, Validity::Valid, "{:?}", r.anomalies);
        assert_eq!(r.stats["max_observed_staleness_ms"], json!(890.0));
        assert_eq!(r.stats["windows_probed_past_bound"], json!(1));
    }

    #[test]
    fn a_success_that_overlaps_the_restore_is_not_a_violation() {
        let mut h = Timed::default();
        h.call(0, 10, 1, F::Disable, OpType::Ok)
            .ev(
                1_500,
                2,
                OpType::Invoke,
                F::Encrypt,
                Value::Plaintext("x".into()),
            )
            .call(1_600, 1_700, 1, F::Enable, OpType::Ok)
            .ev(
                1_800,
                2,
                OpType::Ok,
                F::Encrypt,
                Value::Encrypted {
                    plaintext: "x".into(),
                    ciphertext: "c".into(),
                },
            );
        assert_eq!(h.check().validity, Validity::Valid);
    }

    #[test]
    fn an_enable_of_unknown_outcome_invoked_earlier_may_undo_the_disable() {
        let mut h = Timed::default();
        h.ev(0, 3, OpType::Invoke, F::Enable, Value::None)
            .ev(5, 3, OpType::Info, F::Enable, Value::None)
            .call(10, 20, 1, F::Disable, OpType::Ok)
            .call(2_000, 2_010, 2, F::Encrypt, OpType::Ok);
        let r = h.check();
        assert_eq!(r.validity, Validity::Valid);
        assert_eq!(r.stats["windows_undone_at_once"], json!(1));
    }

    #[test]
    fn an_enable_that_completed_before_the_disable_does_not_undo_it() {
        let mut h = Timed::default();
        h.call(0, 5, 3, F::Enable, OpType::Ok)
            .call(10, 20, 1, F::Disable, OpType::Ok)
            .call(2_000, 2_010, 2, F::Encrypt, OpType::Ok);
        assert_eq!(h.check().validity, Validity::Invalid);
    }

    #[test]
    fn a_policy_that_stops_encrypt_is_a_revocation_too() {
        let mut h = Timed::default();
        h.policy(0, 10, 1, true, OpType::Ok)
            .call(20, 30, 2, F::Encrypt, OpType::Ok)
            .policy(40, 50, 1, false, OpType::Ok)
            .call(1_300, 1_310, 2, F::Encrypt, OpType::Ok)
            .policy(1_400, 1_410, 1, true, OpType::Ok)
            .call(1_500, 1_510, 2, F::Encrypt, OpType::Ok);
        let r = h.check();
        assert_eq!(r.validity, Validity::Invalid);
        assert_eq!(r.anomalies[0].detail["via"], json!("key-policy"));
        assert_eq!(r.stats["acknowledged_revocations"], json!(1));
    }

    #[test]
    fn registers_without_encrypts_are_not_judged() {
        let mut s = Script::default();
        s.create(1, "k", "d")
            .call(1, F::Disable, "k", Value::None, Value::None);
        let calls = s.0.calls().unwrap();
        let r = check(&calls, &RevocationBound::default());
        assert_eq!(r.validity, Validity::Valid);
        assert_eq!(r.stats["windows_with_encrypts"], json!(0));
    }
}
