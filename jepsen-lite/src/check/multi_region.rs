//! Multi-region keys: replicas converge on their primary's material, and ciphertexts made in
//! the primary's region decrypt in the replica region.
//!
//! - `replica-convergence` (from `run.json`'s `multi_region`): after the final heal the runner
//!   polls both regions with ListKeyRotations (`IncludeKeyMaterial=ALL_KEY_MATERIAL`, which
//!   lists every material version with its `KeyMaterialId` and `CURRENT` / `NON_CURRENT`)
//!   until, for every key whose ReplicateKey was acknowledged, the replica lists exactly the
//!   primary's material (same ids, same current one) and the primary has no on-demand
//!   rotation in progress, or [`MrConvergence::within_ms`] passes. A replica that lacks a
//!   version, holds one the primary does not, or names another current version is an
//!   anomaly; so is converging later than the limit.
//! - `replica-decryptable` (from the history): every acknowledged Encrypt under a key whose
//!   ReplicateKey was acknowledged must have a `decrypt-replica` call that returned its
//!   plaintext. Multi-region keys are never disabled or deleted by the workload, so no
//!   failure is excused.

use std::collections::{BTreeMap, HashSet};
use std::time::Instant;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::linearizable::describe_call;
use super::{Anomaly, AnomalyKind, CheckResult};
use crate::history::{Call, OpType, Value, F};

/// One material version as ListKeyRotations lists it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Material {
    /// `KeyMaterialId`.
    pub id: String,
    /// `KeyMaterialState` is `CURRENT`.
    pub current: bool,
}

/// The last observation of one multi-region key in both regions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MrKeyObservation {
    /// The key id (`mrk-...`).
    pub key: String,
    /// The primary's material (`None`: it could not be read).
    pub primary: Option<Vec<Material>>,
    /// The replica's material (`None`: it could not be read).
    pub replica: Option<Vec<Material>>,
    /// Whether the primary still had an on-demand rotation in progress.
    #[serde(default)]
    pub rotation_in_progress: bool,
    /// Why a side could not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl MrKeyObservation {
    /// Both sides read, no rotation pending, and the replica holds exactly the primary's
    /// material.
    pub fn converged(&self) -> bool {
        match (&self.primary, &self.replica) {
            (Some(p), Some(r)) => !self.rotation_in_progress && sorted(p) == sorted(r),
            _ => false,
        }
    }
}

fn sorted(m: &[Material]) -> Vec<Material> {
    let mut m = m.to_vec();
    m.sort();
    m
}

/// What the runner saw while waiting for the replicas, saved in `run.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MrConvergence {
    /// Every key with an acknowledged ReplicateKey, as last observed.
    pub keys: Vec<MrKeyObservation>,
    /// Milliseconds from the final heal until every replica matched its primary (`None`:
    /// not within the limit).
    pub converged_after_ms: Option<u64>,
    /// The limit, in milliseconds.
    pub within_ms: u64,
    /// Rounds of reads.
    pub polls: usize,
}

/// The convergence limit of issue 7: 60 s after healing.
pub const CONVERGENCE_WITHIN_MS: u64 = 60_000;

/// Judges the runner's observation (see the module docs).
pub fn check_convergence(c: &MrConvergence) -> CheckResult {
    let started = Instant::now();
    let mut result = CheckResult::new("replica-convergence");
    let (mut converged, mut unread) = (0, 0);
    for k in &c.keys {
        let (Some(p), Some(r)) = (&k.primary, &k.replica) else {
            unread += 1;
            continue;
        };
        if k.converged() {
            converged += 1;
            continue;
        }
        let ids = |m: &[Material]| m.iter().map(|m| m.id.clone()).collect::<HashSet<_>>();
        let current = |m: &[Material]| {
            m.iter()
                .filter(|m| m.current)
                .map(|m| short(&m.id))
                .collect::<Vec<_>>()
        };
        let (pi, ri) = (ids(p), ids(r));
        let mut missing: Vec<String> = pi.difference(&ri).map(|i| short(i)).collect();
        let mut extra: Vec<String> = ri.difference(&pi).map(|i| short(i)).collect();
        missing.sort();
        extra.sort();
        let mut what = Vec::new();
        if !missing.is_empty() {
            what.push(format!("lacks version(s) {}", missing.join(", ")));
        }
        if !extra.is_empty() {
            what.push(format!(
                "holds version(s) {} the primary does not",
                extra.join(", ")
            ));
        }
        if current(p) != current(r) {
            what.push(format!(
                "has current version {:?} where the primary has {:?}",
                current(r),
                current(p)
            ));
        }
        if what.is_empty() && k.rotation_in_progress {
            what.push("the primary's on-demand rotation never completed".into());
        }
        result.flag(Anomaly {
            kind: AnomalyKind::ReplicaMaterialMismatch,
            key: Some(k.key.clone()),
            ops: vec![],
            message: format!(
                "{} did not converge within {} s of the heal: the replica {}",
                k.key,
                c.within_ms / 1000,
                what.join("; ")
            ),
            detail: json!({ "primary": p, "replica": r }),
        });
    }
    match c.converged_after_ms {
        Some(ms) if ms > c.within_ms => result.flag(Anomaly {
            kind: AnomalyKind::SlowReplication,
            key: None,
            ops: vec![],
            message: format!(
                "replicas converged {ms} ms after the heal, later than the {} ms limit",
                c.within_ms
            ),
            detail: json!({ "converged_after_ms": ms }),
        }),
        None if result.anomalies.is_empty() && unread > 0 => result.unknown(format!(
            "{unread} multi-region keys could not be read in both regions within {} s",
            c.within_ms / 1000
        )),
        _ => {}
    }
    result.stats = json!({
        "keys": c.keys.len(),
        "converged": converged,
        "unread": unread,
        "converged_after_ms": c.converged_after_ms,
        "within_ms": c.within_ms,
        "polls": c.polls,
        "versions": c.keys.iter().map(|k| k.primary.as_ref().map_or(0, Vec::len)).sum::<usize>(),
    });
    result.timed(started)
}

/// The version number in a `KeyMaterialId` (64 hex digits), for messages.
fn short(id: &str) -> String {
    u64::from_str_radix(id.trim_start_matches('0'), 16)
        .map(|v| format!("v{v}"))
        .unwrap_or_else(|_| {
            if id.chars().all(|c| c == '0') {
                "v0".into()
            } else {
                id.to_owned()
            }
        })
}

/// The material version a ciphertext blob names (docs/ciphertext-format.md), if it parses.
pub fn blob_version(ciphertext_b64: &str) -> Option<u32> {
    let blob = base64::engine::general_purpose::STANDARD
        .decode(ciphertext_b64)
        .ok()?;
    let l = *blob.get(1)? as usize;
    let v = blob.get(2 + l..6 + l)?;
    Some(u32::from_be_bytes(v.try_into().ok()?))
}

/// Every acknowledged Encrypt under a replicated key decrypts in the replica region.
pub fn check_replica_decrypts(calls: &[Call<'_>]) -> CheckResult {
    let started = Instant::now();
    let mut result = CheckResult::new("replica-decryptable");
    let replicated: HashSet<&str> = calls
        .iter()
        .filter(|c| c.invoke.f == F::ReplicateKey && c.outcome() == OpType::Ok)
        .filter_map(|c| c.key())
        .collect();
    let decrypts = super::decrypt::attempts_by_ciphertext(calls, F::DecryptReplica);
    let (mut encrypted, mut verified, mut unchecked) = (0, 0, 0);
    let mut by_version: BTreeMap<u32, usize> = BTreeMap::new();
    for c in calls {
        let (F::Encrypt, OpType::Ok, Some(key)) = (c.invoke.f, c.outcome(), c.key()) else {
            continue;
        };
        if !replicated.contains(key) {
            continue;
        }
        let Some(Value::Encrypted {
            plaintext,
            ciphertext,
        }) = c.output()
        else {
            continue;
        };
        encrypted += 1;
        let Some(attempts) = decrypts.get(ciphertext.as_str()) else {
            unchecked += 1;
            continue;
        };
        let in_b = " in the replica region";
        if super::decrypt::returned_plaintext(&mut result, key, c, plaintext, attempts, in_b) {
            verified += 1;
            if let Some(v) = blob_version(ciphertext) {
                *by_version.entry(v).or_default() += 1;
            }
            continue;
        }
        if attempts.iter().any(|d| d.outcome() == OpType::Ok) {
            continue; // flagged above
        }
        let last = attempts[attempts.len() - 1];
        result.flag(Anomaly {
            kind: AnomalyKind::Undecryptable,
            key: Some(key.to_owned()),
            ops: vec![c.invoke.index, c.end(), last.invoke.index, last.end()],
            message: format!(
                "ciphertext of {} (material version {}) does not decrypt in the replica \
                 region after {} attempts: {}",
                describe_call(c),
                blob_version(ciphertext).map_or("?".into(), |v| v.to_string()),
                attempts.len(),
                last.complete
                    .and_then(|r| r.error.clone())
                    .unwrap_or_else(|| "failed".into()),
            ),
            detail: json!({ "attempts": attempts.len() }),
        });
    }
    if unchecked > 0 {
        result.unknown(format!(
            "{unchecked} acknowledged ciphertexts under replicated keys were never decrypted in \
             the replica region"
        ));
    }
    result.stats = json!({
        "replicated_keys": replicated.len(),
        "acknowledged_ciphertexts": encrypted,
        "verified": verified,
        "verified_by_material_version": by_version,
        "unchecked": unchecked,
    });
    result.timed(started)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testkit::Script;
    use crate::check::Validity;

    fn m(v: u32, current: bool) -> Material {
        Material {
            id: format!("{v:064x}"),
            current,
        }
    }

    fn observed(primary: Vec<Material>, replica: Vec<Material>) -> MrConvergence {
        MrConvergence {
            keys: vec![MrKeyObservation {
                key: "mrk-1".into(),
                primary: Some(primary),
                replica: Some(replica),
                ..MrKeyObservation::default()
            }],
            converged_after_ms: None,
            within_ms: CONVERGENCE_WITHIN_MS,
            polls: 3,
        }
    }

    #[test]
    fn a_replica_holding_the_primarys_versions_in_any_order_has_converged() {
        let mut c = observed(vec![m(1, false), m(2, true)], vec![m(2, true), m(1, false)]);
        c.converged_after_ms = Some(1200);
        let r = check_convergence(&c);
        assert_eq!(r.validity, Validity::Valid, "{r:?}");
        assert_eq!(r.stats["converged"], 1);
    }

    #[test]
    fn a_replica_missing_a_version_is_flagged_by_version() {
        let r = check_convergence(&observed(
            vec![m(1, false), m(2, false), m(3, true)],
            vec![m(1, false), m(3, true)],
        ));
        assert_eq!(r.validity, Validity::Invalid);
        assert_eq!(r.anomalies[0].kind, AnomalyKind::ReplicaMaterialMismatch);
        assert!(
            r.anomalies[0].message.contains("lacks version(s) v2"),
            "{r:?}"
        );
    }

    #[test]
    fn a_replica_with_a_stale_current_version_is_flagged() {
        let r = check_convergence(&observed(
            vec![m(1, false), m(2, true)],
            vec![m(1, true), m(2, false)],
        ));
        assert_eq!(r.validity, Validity::Invalid);
        assert!(r.anomalies[0].message.contains("current version"), "{r:?}");
    }

    #[test]
    fn converging_after_the_limit_is_flagged_and_unread_keys_are_unknown() {
        let mut c = observed(vec![m(1, true)], vec![m(1, true)]);
        c.converged_after_ms = Some(61_000);
        assert_eq!(
            check_convergence(&c).anomalies[0].kind,
            AnomalyKind::SlowReplication
        );
        c.converged_after_ms = None;
        c.keys[0].replica = None;
        assert_eq!(check_convergence(&c).validity, Validity::Unknown);
    }

    fn blob(version: u32) -> String {
        let mut b = vec![1u8, 5];
        b.extend_from_slice(b"mrk-1");
        b.extend_from_slice(&version.to_be_bytes());
        b.extend_from_slice(&[0; 48]);
        base64::engine::general_purpose::STANDARD.encode(b)
    }

    fn encrypted(s: &mut Script, pt: &str, ct: &str) {
        s.call(
            1,
            F::Encrypt,
            "mrk-1",
            Value::Plaintext(pt.into()),
            Value::Encrypted {
                plaintext: pt.into(),
                ciphertext: ct.into(),
            },
        );
    }

    fn decrypt_in_b(s: &mut Script, ct: &str, got: Result<&str, ()>) {
        s.invoke(2, F::DecryptReplica, "mrk-1", Value::Ciphertext(ct.into()));
        match got {
            Ok(pt) => s.ok(2, F::DecryptReplica, "mrk-1", Value::Plaintext(pt.into())),
            Err(()) => s.ev(
                2,
                OpType::Fail,
                F::DecryptReplica,
                Some("mrk-1"),
                Value::None,
            ),
        };
    }

    #[test]
    fn ciphertexts_under_replicated_keys_must_decrypt_in_the_replica_region() {
        let (c1, c2) = (blob(1), blob(2));
        assert_eq!(blob_version(&c2), Some(2));
        let mut s = Script::default();
        s.create(1, "mrk-1", "a");
        s.call(
            1,
            F::ReplicateKey,
            "mrk-1",
            Value::Region("us-west-2".into()),
            Value::None,
        );
        encrypted(&mut s, "p1", &c1);
        encrypted(&mut s, "p2", &c2);
        decrypt_in_b(&mut s, &c1, Err(()));
        decrypt_in_b(&mut s, &c1, Ok("p1"));
        let r = check_replica_decrypts(&s.history().calls().unwrap());
        assert_eq!(r.validity, Validity::Unknown, "c2 was never tried: {r:?}");
        decrypt_in_b(&mut s, &c2, Err(()));
        let r = check_replica_decrypts(&s.history().calls().unwrap());
        assert_eq!(r.validity, Validity::Invalid);
        assert_eq!(r.anomalies[0].kind, AnomalyKind::Undecryptable);
        assert!(
            r.anomalies[0].message.contains("material version 2"),
            "{r:?}"
        );
        decrypt_in_b(&mut s, &c2, Ok("p1"));
        let r = check_replica_decrypts(&s.history().calls().unwrap());
        assert_eq!(r.anomalies[0].kind, AnomalyKind::WrongPlaintext);
    }
}
