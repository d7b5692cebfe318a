//! Convergence: after healing and quiescence, every replica's state machine is the same.

use std::collections::BTreeMap;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Anomaly, AnomalyKind, CheckResult};

/// A replica's state-machine hash, as reported by the node after the final phase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaHash {
    /// Node name or id.
    pub node: String,
    /// Hash of its applied state (opaque; compared for equality).
    pub hash: String,
}

/// All replicas must report the same hash; an empty list is `unknown`.
pub fn check(replicas: &[ReplicaHash]) -> CheckResult {
    let started = Instant::now();
    let mut result = CheckResult::new("convergence");
    let mut groups: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for r in replicas {
        groups.entry(&r.hash).or_default().push(&r.node);
    }
    match groups.len() {
        0 => result.unknown("no replica hashes were collected"),
        1 => {}
        _ => {
            let parts: Vec<String> = groups
                .iter()
                .map(|(h, nodes)| format!("{} -> {h}", nodes.join(",")))
                .collect();
            result.flag(Anomaly {
                kind: AnomalyKind::DivergentReplicas,
                key: None,
                ops: vec![],
                message: format!(
                    "replicas disagree on the state-machine hash: {}",
                    parts.join("; ")
                ),
                detail: json!(groups),
            });
        }
    }
    result.stats = json!({ "replicas": replicas.len(), "distinct_hashes": groups.len() });
    result.timed(started)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Validity;

    fn r(node: &str, hash: &str) -> ReplicaHash {
        ReplicaHash {
            node: node.into(),
            hash: hash.into(),
        }
    }

    #[test]
    fn identical_hashes_converge() {
        let res = check(&[r("n1", "a"), r("n2", "a"), r("n3", "a")]);
        assert_eq!(res.validity, Validity::Valid);
    }

    #[test]
    fn one_divergent_replica_is_flagged_with_its_name() {
        let res = check(&[r("n1", "a"), r("n2", "a"), r("n3", "b")]);
        assert_eq!(res.validity, Validity::Invalid);
        assert!(res.anomalies[0].message.contains("n3 -> b"));
    }

    #[test]
    fn no_hashes_is_unknown() {
        assert_eq!(check(&[]).validity, Validity::Unknown);
    }
}
