//! Checkers: each takes the recorded history (plus, for convergence, the replicas' state
//! hashes) and returns a [`CheckResult`]; [`check_all`] runs them all into a [`Verdict`].
//!
//! | checker | module | what it proves |
//! | --- | --- | --- |
//! | `linearizable` | [`linearizable`] | per key, the metadata register (description, status, tags) behaves like one copy: WGL search over the [`model`] |
//! | `lost-writes` | [`lost`] | every acknowledged CreateKey is in the final ListKeys and final DescribeKey |
//! | `resurrection` | [`lost`] | a key scheduled for deletion (or seen purged) is never seen live again without a CancelKeyDeletion |
//! | `decryptable` | [`decrypt`] | every acknowledged ciphertext decrypts to its plaintext after healing |
//! | `convergence` | [`convergence`] | all replicas report the same state-machine hash |
//! | `revocation` | [`revocation`] | after an acknowledged DisableKey / deny policy, no Encrypt invoked later than the staleness bound succeeds |
//! | `replica-decryptable` | [`multi_region`] | two regions: every acknowledged ciphertext under a replicated multi-region key decrypts in the replica region (only when the history replicates keys) |
//! | `replica-convergence` | [`multi_region`] | two regions: after the heal, every replica lists exactly its primary's material versions within 60 s (from `run.json`) |
//!
//! Performance targets are judged next to the verdict, in [`Verdict::targets`], and do not
//! change its validity (a slow failover is not a safety violation):
//!
//! | target | module | what it measures |
//! | --- | --- | --- |
//! | `recovery` | [`recovery`] | leader kill to first acknowledged write: p50 <= 1 s, p99 <= 3 s (from `run.json`) |
//!
//! Acknowledged writes whose effect vanished are caught by `linearizable` as long as the
//! runner ends with a final DescribeKey of every key (the final read must observe them).

pub mod convergence;
pub mod decrypt;
pub mod linearizable;
pub mod lost;
pub mod model;
pub mod multi_region;
pub mod recovery;
pub mod revocation;

use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::history::History;
pub use convergence::ReplicaHash;
pub use revocation::RevocationBound;

/// Whether a property holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Validity {
    /// Holds.
    Valid,
    /// Violated: see the anomalies.
    Invalid,
    /// Could not be decided (search budget exhausted, missing final reads, ...).
    Unknown,
}

impl Validity {
    /// Combines results: any invalid makes the whole invalid, else any unknown makes it unknown.
    pub fn merge(self, other: Validity) -> Validity {
        use Validity::*;
        match (self, other) {
            (Invalid, _) | (_, Invalid) => Invalid,
            (Unknown, _) | (_, Unknown) => Unknown,
            _ => Valid,
        }
    }
}

/// What went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AnomalyKind {
    /// No linearization of a key's register history exists (stale read, lost write, ...).
    NonLinearizable,
    /// An acknowledged CreateKey is missing from the final reads.
    LostCreate,
    /// A key scheduled for deletion, or seen purged, was seen live again.
    Resurrected,
    /// An acknowledged ciphertext failed to decrypt although its key is enabled.
    Undecryptable,
    /// An acknowledged ciphertext decrypted to something else.
    WrongPlaintext,
    /// Replicas report different state-machine hashes.
    DivergentReplicas,
    /// An Encrypt succeeded later than the staleness bound after a revocation was
    /// acknowledged.
    StaleRevocation,
    /// Leader-kill recovery missed its p50 or p99 target.
    SlowRecovery,
    /// After healing, a multi-region replica does not hold exactly its primary's material
    /// versions (one missing, one extra, another current version).
    ReplicaMaterialMismatch,
    /// The replicas converged, but later than the limit after the heal.
    SlowReplication,
}

/// One violation, with what a human needs to find it in the history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Anomaly {
    /// Class of violation.
    pub kind: AnomalyKind,
    /// Key id concerned, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// History indices of the events involved (invokes and completions).
    #[serde(default)]
    pub ops: Vec<u64>,
    /// One-paragraph explanation.
    pub message: String,
    /// Structured details (possible states, hashes by node, ...).
    #[serde(default)]
    pub detail: serde_json::Value,
}

/// The result of one checker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    /// Checker name (`linearizable`, `lost-writes`, ...).
    pub checker: String,
    /// Verdict of this checker.
    pub validity: Validity,
    /// Violations found (empty when valid).
    pub anomalies: Vec<Anomaly>,
    /// Why the result is unknown, or other remarks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Counters worth reporting (keys, ops, search steps, ...).
    #[serde(default)]
    pub stats: serde_json::Value,
    /// Wall time spent, in milliseconds.
    pub elapsed_ms: u64,
}

impl CheckResult {
    pub(crate) fn new(checker: &str) -> Self {
        CheckResult {
            checker: checker.to_owned(),
            validity: Validity::Valid,
            anomalies: Vec::new(),
            notes: Vec::new(),
            stats: serde_json::Value::Null,
            elapsed_ms: 0,
        }
    }

    pub(crate) fn flag(&mut self, anomaly: Anomaly) {
        self.validity = Validity::Invalid;
        self.anomalies.push(anomaly);
    }

    pub(crate) fn unknown(&mut self, note: impl Into<String>) {
        self.validity = self.validity.merge(Validity::Unknown);
        self.notes.push(note.into());
    }

    pub(crate) fn timed(mut self, started: Instant) -> Self {
        self.elapsed_ms = started.elapsed().as_millis() as u64;
        self
    }
}

/// All checkers' results: what `verdict.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// Merged validity of all checks.
    pub validity: Validity,
    /// Number of events in the history.
    pub events: usize,
    /// One result per checker.
    pub checks: Vec<CheckResult>,
    /// Performance targets (`invalid` = missed); not part of `validity`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<CheckResult>,
}

impl Verdict {
    /// Adds a performance target's result; the verdict's validity is unchanged.
    pub fn push_target(&mut self, target: CheckResult) {
        self.targets.push(target);
    }

    /// Every anomaly of every checker.
    pub fn anomalies(&self) -> impl Iterator<Item = &Anomaly> {
        self.checks.iter().flat_map(|c| c.anomalies.iter())
    }

    /// Whether some checker flagged an anomaly of this kind.
    pub fn has(&self, kind: AnomalyKind) -> bool {
        self.anomalies().any(|a| a.kind == kind)
    }

    /// One line: validity and anomaly counts by checker.
    pub fn summary(&self) -> String {
        let parts: Vec<String> = self
            .checks
            .iter()
            .map(|c| match c.validity {
                Validity::Invalid => format!("{}: {} anomalies", c.checker, c.anomalies.len()),
                v => format!("{}: {}", c.checker, validity_word(v)),
            })
            .collect();
        let targets: Vec<String> = self
            .targets
            .iter()
            .map(|t| {
                let met = match t.validity {
                    Validity::Valid => "met",
                    Validity::Invalid => "MISSED",
                    Validity::Unknown => "unknown",
                };
                format!("{}: {met}", t.checker)
            })
            .collect();
        format!(
            "{} ({} events; {}){}",
            validity_word(self.validity),
            self.events,
            parts.join(", "),
            if targets.is_empty() {
                String::new()
            } else {
                format!("; targets: {}", targets.join(", "))
            }
        )
    }
}

/// `valid` / `INVALID` / `unknown`.
pub fn validity_word(v: Validity) -> &'static str {
    match v {
        Validity::Valid => "valid",
        Validity::Invalid => "INVALID",
        Validity::Unknown => "unknown",
    }
}

/// Tuning for [`check_all`].
#[derive(Debug, Clone)]
pub struct Options {
    /// Linearizability search steps allowed per key before giving up with `unknown`.
    pub search_budget_per_key: u64,
    /// Threads for the per-key searches (keys are independent: P-compositionality).
    pub threads: usize,
    /// How long after an acknowledged revocation a front may still honour the old state.
    pub revocation_bound: RevocationBound,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            search_budget_per_key: 5_000_000,
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            revocation_bound: RevocationBound::default(),
        }
    }
}

/// Runs every checker. `replicas` is `None` when the run collected no hashes (convergence is
/// then not checked at all rather than reported unknown).
pub fn check_all(
    history: &History,
    replicas: Option<&[ReplicaHash]>,
    opts: &Options,
) -> anyhow::Result<Verdict> {
    let calls = history.calls()?;
    let mut checks = vec![
        linearizable::check(&calls, opts),
        lost::check_lost_creates(&calls),
        lost::check_resurrection(&calls),
        decrypt::check(&calls),
        revocation::check(&calls, &opts.revocation_bound),
    ];
    if calls
        .iter()
        .any(|c| c.invoke.f == crate::history::F::ReplicateKey)
    {
        checks.push(multi_region::check_replica_decrypts(&calls));
    }
    if let Some(replicas) = replicas {
        checks.push(convergence::check(replicas));
    }
    let validity = checks
        .iter()
        .fold(Validity::Valid, |v, c| v.merge(c.validity));
    Ok(Verdict {
        validity,
        events: history.len(),
        checks,
        targets: Vec::new(),
    })
}

/// Hand-written histories for the checkers' tests.
#[cfg(test)]
pub(crate) mod testkit {
    use crate::history::{History, KeyMeta, KeyStatus, Op, OpType, Value, F};

    /// Appends events one by one; `t` is a line of the script.
    #[derive(Default)]
    pub struct Script(pub History);

    impl Script {
        pub fn ev(
            &mut self,
            process: u64,
            op_type: OpType,
            f: F,
            key: Option<&str>,
            value: Value,
        ) -> &mut Self {
            let time = self.0.len() as u64 * 1_000;
            self.0.push(Op {
                process,
                index: 0,
                op_type,
                f,
                key: key.map(str::to_owned),
                value,
                error: matches!(op_type, OpType::Fail | OpType::Info).then(|| "err".to_owned()),
                time,
                node: None,
            });
            self
        }
        pub fn invoke(&mut self, p: u64, f: F, key: &str, value: Value) -> &mut Self {
            self.ev(p, OpType::Invoke, f, Some(key), value)
        }
        pub fn ok(&mut self, p: u64, f: F, key: &str, value: Value) -> &mut Self {
            self.ev(p, OpType::Ok, f, Some(key), value)
        }
        pub fn info(&mut self, p: u64, f: F, key: &str) -> &mut Self {
            self.ev(p, OpType::Info, f, Some(key), Value::None)
        }
        /// A whole call, invoke then ok.
        pub fn call(&mut self, p: u64, f: F, key: &str, input: Value, output: Value) -> &mut Self {
            self.invoke(p, f, key, input).ok(p, f, key, output)
        }
        pub fn create(&mut self, p: u64, key: &str, desc: &str) -> &mut Self {
            let m = Value::Meta(Some(KeyMeta::new(desc)));
            self.ev(p, OpType::Invoke, F::CreateKey, None, m.clone())
                .ok(p, F::CreateKey, key, m)
        }
        pub fn set_desc(&mut self, p: u64, key: &str, d: &str) -> &mut Self {
            self.call(p, F::UpdateDescription, key, desc(d), Value::None)
        }
        pub fn read(&mut self, p: u64, key: &str, seen: Option<KeyMeta>) -> &mut Self {
            self.call(p, F::Describe, key, Value::None, Value::Meta(seen))
        }
        pub fn history(&self) -> History {
            self.0.clone()
        }
    }

    pub fn desc(d: &str) -> Value {
        Value::Description(d.into())
    }

    pub fn meta(d: &str, status: KeyStatus) -> Option<KeyMeta> {
        Some(KeyMeta {
            description: d.into(),
            status,
            tags: Default::default(),
        })
    }
}
