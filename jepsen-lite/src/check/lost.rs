//! Lost creates and resurrected keys: direct checks with one-line explanations, for anomalies
//! that the linearizability search would also reject but explain less plainly (and, for lost
//! creates, that it cannot see without a final DescribeKey of the key).

use std::collections::{BTreeMap, HashSet};
use std::time::Instant;

use serde_json::json;

use super::linearizable::describe_call;
use super::{Anomaly, AnomalyKind, CheckResult};
use crate::history::{Call, KeyStatus, OpType, Value, F};

/// The last acknowledged ListKeys: the final read of all keys.
fn final_list<'a, 'b>(calls: &'b [Call<'a>]) -> Option<&'b Call<'a>> {
    calls
        .iter()
        .filter(|c| c.invoke.f == F::ListKeys && c.outcome() == OpType::Ok)
        .max_by_key(|c| c.complete.map_or(0, |r| r.index))
}

/// The last acknowledged DescribeKey of each key.
pub(crate) fn final_reads<'a>(calls: &[Call<'a>]) -> BTreeMap<&'a str, Call<'a>> {
    let mut out: BTreeMap<&'a str, Call<'a>> = BTreeMap::new();
    for c in calls {
        if c.invoke.f != F::Describe || c.outcome() != OpType::Ok {
            continue;
        }
        let Some(k) = c.key() else { continue };
        let newer = out.get(k).is_none_or(|prev| prev.end() < c.end());
        if newer {
            out.insert(k, *c);
        }
    }
    out
}

/// Every acknowledged CreateKey that completed before the final ListKeys was invoked must be
/// listed by it, and must not be NotFound in its key's final DescribeKey, unless a deletion
/// of the key was attempted (a purged key legitimately disappears).
pub fn check_lost_creates(calls: &[Call<'_>]) -> CheckResult {
    let started = Instant::now();
    let mut result = CheckResult::new("lost-writes");
    let deleted: HashSet<&str> = calls
        .iter()
        .filter(|c| c.invoke.f == F::ScheduleDelete && c.outcome() != OpType::Fail)
        .filter_map(|c| c.key())
        .collect();
    let reads = final_reads(calls);
    let list = final_list(calls);
    let listed: Option<HashSet<&str>> = list.and_then(|l| match l.output() {
        Some(Value::Keys(keys)) => Some(keys.iter().map(String::as_str).collect()),
        _ => None,
    });
    if listed.is_none() {
        result.unknown("no acknowledged final ListKeys in the history");
    }
    let mut creates = 0;
    for c in calls {
        if c.invoke.f != F::CreateKey || c.outcome() != OpType::Ok {
            continue;
        }
        let Some(key) = c.key() else { continue };
        creates += 1;
        if deleted.contains(key) {
            continue;
        }
        let created_at = c.end();
        if let (Some(list), Some(listed)) = (list, &listed) {
            if created_at < list.invoke.index && !listed.contains(key) {
                result.flag(Anomaly {
                    kind: AnomalyKind::LostCreate,
                    key: Some(key.to_owned()),
                    ops: vec![c.invoke.index, created_at, list.invoke.index],
                    message: format!(
                        "key {key} was created ({}) but the final ListKeys (op {}) does not list it",
                        describe_call(c),
                        list.invoke.index
                    ),
                    detail: json!({}),
                });
                continue;
            }
        }
        if let Some(read) = reads.get(key) {
            if read.invoke.index > created_at && read.output() == Some(&Value::Meta(None)) {
                result.flag(Anomaly {
                    kind: AnomalyKind::LostCreate,
                    key: Some(key.to_owned()),
                    ops: vec![c.invoke.index, created_at, read.invoke.index],
                    message: format!(
                        "key {key} was created ({}) but its final read finds nothing ({})",
                        describe_call(c),
                        describe_call(read)
                    ),
                    detail: json!({}),
                });
            }
        }
    }
    result.stats = json!({ "acknowledged_creates": creates });
    result.timed(started)
}

/// After an acknowledged ScheduleKeyDeletion, no read that starts later may find the key live
/// unless a CancelKeyDeletion (acknowledged or of unknown outcome) was invoked before that
/// read completed; after a read finds a created key gone (purged), no later read may find it.
pub fn check_resurrection(calls: &[Call<'_>]) -> CheckResult {
    let started = Instant::now();
    let mut result = CheckResult::new("resurrection");
    let mut by_key: BTreeMap<&str, Vec<&Call<'_>>> = BTreeMap::new();
    for c in calls {
        if c.invoke.f.is_register_op() && c.outcome() != OpType::Fail {
            if let Some(k) = c.key() {
                by_key.entry(k).or_default().push(c);
            }
        }
    }
    let mut deletes = 0;
    for (key, list) in by_key {
        let ok = |f: F| {
            list.iter()
                .filter(move |c| c.invoke.f == f && c.outcome() == OpType::Ok)
        };
        let created_at = ok(F::CreateKey).map(|c| c.end()).min();
        let cancels: Vec<u64> = list
            .iter()
            .filter(|c| c.invoke.f == F::CancelDelete)
            .map(|c| c.invoke.index)
            .collect();
        let reads: Vec<&&Call<'_>> = ok(F::Describe).collect();
        let live = |c: &Call<'_>| matches!(c.output(), Some(Value::Meta(Some(m))) if m.status != KeyStatus::PendingDeletion);
        let mut flagged = false;
        for d in ok(F::ScheduleDelete) {
            deletes += 1;
            let after = reads.iter().find(|r| {
                r.invoke.index > d.end() && live(r) && !cancels.iter().any(|&ci| ci < r.end())
            });
            if let Some(r) = after {
                result.flag(Anomaly {
                    kind: AnomalyKind::Resurrected,
                    key: Some(key.to_owned()),
                    ops: vec![d.invoke.index, d.end(), r.invoke.index, r.end()],
                    message: format!(
                        "key {key} was scheduled for deletion ({}) and later seen live ({}) \
                         with no CancelKeyDeletion in between",
                        describe_call(d),
                        describe_call(r)
                    ),
                    detail: json!({}),
                });
                flagged = true;
                break;
            }
        }
        if flagged {
            continue;
        }
        let Some(created_at) = created_at else {
            continue;
        };
        let gone = reads
            .iter()
            .filter(|r| r.invoke.index > created_at && r.output() == Some(&Value::Meta(None)))
            .min_by_key(|r| r.end());
        if let Some(gone) = gone {
            if let Some(r) = reads.iter().find(|r| {
                r.invoke.index > gone.end() && matches!(r.output(), Some(Value::Meta(Some(_))))
            }) {
                result.flag(Anomaly {
                    kind: AnomalyKind::Resurrected,
                    key: Some(key.to_owned()),
                    ops: vec![gone.invoke.index, gone.end(), r.invoke.index, r.end()],
                    message: format!(
                        "key {key} was seen purged ({}) and later seen again ({})",
                        describe_call(gone),
                        describe_call(r)
                    ),
                    detail: json!({}),
                });
            }
        }
    }
    result.stats = json!({ "acknowledged_deletes": deletes });
    result.timed(started)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testkit::{meta, Script};
    use crate::check::Validity;
    use crate::history::KeyStatus::*;

    fn list(s: &mut Script, keys: &[&str]) {
        s.ev(9, OpType::Invoke, F::ListKeys, None, Value::None).ev(
            9,
            OpType::Ok,
            F::ListKeys,
            None,
            Value::Keys(keys.iter().map(|k| k.to_string()).collect()),
        );
    }

    #[test]
    fn an_acknowledged_create_missing_from_the_final_list_is_lost() {
        let mut s = Script::default();
        s.create(1, "k1", "a").create(1, "k2", "a");
        list(&mut s, &["k1"]);
        let h = s.history();
        let r = check_lost_creates(&h.calls().unwrap());
        assert_eq!(r.validity, Validity::Invalid);
        assert_eq!(r.anomalies[0].kind, AnomalyKind::LostCreate);
        assert_eq!(r.anomalies[0].key.as_deref(), Some("k2"));
    }

    #[test]
    fn a_created_key_whose_final_read_finds_nothing_is_lost() {
        let mut s = Script::default();
        s.create(1, "k1", "a").read(2, "k1", None);
        list(&mut s, &["k1"]);
        let h = s.history();
        assert_eq!(
            check_lost_creates(&h.calls().unwrap()).validity,
            Validity::Invalid
        );
    }

    #[test]
    fn a_deleted_key_may_vanish_and_a_missing_final_list_is_unknown() {
        let mut s = Script::default();
        s.create(1, "k1", "a")
            .call(1, F::ScheduleDelete, "k1", Value::None, Value::None);
        let h = s.history();
        assert_eq!(
            check_lost_creates(&h.calls().unwrap()).validity,
            Validity::Unknown
        );
        list(&mut s, &[]);
        let h = s.history();
        assert_eq!(
            check_lost_creates(&h.calls().unwrap()).validity,
            Validity::Valid
        );
    }

    #[test]
    fn a_key_read_live_after_its_deletion_is_resurrected() {
        let mut s = Script::default();
        s.create(1, "k", "a")
            .call(1, F::ScheduleDelete, "k", Value::None, Value::None)
            .read(2, "k", meta("a", Enabled));
        let h = s.history();
        let r = check_resurrection(&h.calls().unwrap());
        assert_eq!(r.validity, Validity::Invalid);
        assert_eq!(r.anomalies[0].kind, AnomalyKind::Resurrected);
    }

    #[test]
    fn a_cancelled_deletion_is_not_a_resurrection_even_if_the_cancel_timed_out() {
        let mut s = Script::default();
        s.create(1, "k", "a")
            .call(1, F::ScheduleDelete, "k", Value::None, Value::None)
            .invoke(3, F::CancelDelete, "k", Value::None)
            .info(3, F::CancelDelete, "k")
            .read(2, "k", meta("a", Disabled));
        let h = s.history();
        assert_eq!(
            check_resurrection(&h.calls().unwrap()).validity,
            Validity::Valid
        );
    }

    #[test]
    fn a_key_seen_purged_and_then_seen_again_is_resurrected() {
        let mut s = Script::default();
        s.create(1, "k", "a")
            .call(1, F::ScheduleDelete, "k", Value::None, Value::None)
            .invoke(3, F::CancelDelete, "k", Value::None)
            .info(3, F::CancelDelete, "k")
            .read(2, "k", None)
            .read(2, "k", meta("a", Disabled));
        let h = s.history();
        let r = check_resurrection(&h.calls().unwrap());
        assert_eq!(r.validity, Validity::Invalid);
        assert!(
            r.anomalies[0].message.contains("purged"),
            "{}",
            r.anomalies[0].message
        );
    }
}
