//! Issue 5, audit retention and key last usage: `MarkAuditExported`, `PruneAudit`, and the
//! usage marks `AppendAudit` carries (GetKeyLastUsage), through `apply` and `query`.

mod common;

use common::*;
use keystore::apply::{apply, MAX_PRUNE_BATCH};
use keystore::audit::{sign_digest, AuditSigningKey, DigestBody};
use keystore::command::{Command, CommandOutput, Proposal, Query, QueryOutput};
use keystore::error::DomainError;
use keystore::model::{KeyState, State};
use keystore::query;
use keystore::usage::{KeyUsageMark, TrackedOperation, UsageBatch};

const NOW: u64 = 5 * DAY;

fn run(st: &mut State, now: u64, command: Command) -> Result<CommandOutput, DomainError> {
    apply(st, &Proposal { now, command }).0
}

fn events(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{{\"i\":{i}}}")).collect()
}

fn append(st: &mut State, n: usize) {
    run(
        st,
        NOW,
        Command::AppendAudit {
            events: events(n),
            usage: None,
        },
    )
    .unwrap();
}

fn digest(st: &mut State) {
    let body = DigestBody::next(
        st.audit.last_digest.as_ref(),
        "us-east-1",
        &st.audit.head,
        NOW,
    );
    let digest = sign_digest(&AuditSigningKey::from_bytes(&[7u8; 32]), body);
    run(st, NOW, Command::AppendDigest { digest }).unwrap();
}

fn retention(st: &State) -> (u64, u64) {
    match query(st, &Query::AuditRetention) {
        QueryOutput::AuditRetention {
            exported_through,
            pruned_through,
        } => (exported_through, pruned_through),
        other => panic!("unexpected {other:?}"),
    }
}

/// 10 records, a digest over the first 6, then 4 more unsigned.
fn chain() -> State {
    let mut st = world();
    append(&mut st, 6);
    digest(&mut st);
    append(&mut st, 4);
    st.audit.take_appended();
    st
}

fn export(st: &mut State, through_seq: u64) -> Result<CommandOutput, DomainError> {
    run(st, NOW, Command::MarkAuditExported { through_seq })
}

fn prune(st: &mut State, through_seq: u64) -> Result<CommandOutput, DomainError> {
    run(st, NOW, Command::PruneAudit { through_seq })
}

// ---- MarkAuditExported ----

#[test]
fn marking_exported_moves_the_mark_and_asks_storage_to_persist_it() {
    let mut st = chain();
    assert_eq!(retention(&st), (0, 0));
    assert_eq!(export(&mut st, 4), Ok(CommandOutput::Done));
    assert_eq!(retention(&st), (4, 0));
    assert_eq!(st.audit.take_retention(), (true, None));
    assert_eq!(st.audit.take_retention(), (false, None), "taken once");
}

#[test]
fn marking_exported_beyond_the_head_or_the_newest_digest_is_refused_untouched() {
    let mut st = chain();
    let before = st.clone();
    for through in [11, 7] {
        assert!(
            matches!(export(&mut st, through), Err(DomainError::Validation(_))),
            "{through}"
        );
        assert_eq!(st, before, "a refusal changes nothing ({through})");
    }
    // No digest at all: nothing may be marked.
    let mut fresh = world();
    append(&mut fresh, 3);
    assert!(matches!(
        export(&mut fresh, 1),
        Err(DomainError::Validation(_))
    ));
}

#[test]
fn marking_exported_never_moves_back() {
    let mut st = chain();
    export(&mut st, 6).unwrap();
    st.audit.take_retention();
    assert_eq!(export(&mut st, 2), Ok(CommandOutput::Done));
    assert_eq!(retention(&st), (6, 0));
    assert_eq!(
        st.audit.take_retention(),
        (false, None),
        "a no-op persists nothing"
    );
}

// ---- PruneAudit ----

#[test]
fn pruning_hands_storage_the_range_to_delete_and_moves_pruned_through() {
    let mut st = chain();
    export(&mut st, 6).unwrap();
    st.audit.take_retention();
    assert_eq!(prune(&mut st, 3), Ok(CommandOutput::Done));
    assert_eq!(retention(&st), (6, 3));
    assert_eq!(st.audit.take_retention(), (true, Some((1, 3))));
    prune(&mut st, 5).unwrap();
    assert_eq!(st.audit.take_retention(), (true, Some((4, 5))));
    // The chain head is untouched: appends go on from seq 11.
    assert_eq!(st.audit.head.next_seq, 11);
}

#[test]
fn two_prunes_before_storage_takes_them_merge_into_one_range() {
    let mut st = chain();
    export(&mut st, 6).unwrap();
    prune(&mut st, 2).unwrap();
    prune(&mut st, 4).unwrap();
    assert_eq!(st.audit.take_retention(), (true, Some((1, 4))));
}

#[test]
fn an_unexported_range_is_never_pruned() {
    let mut st = chain();
    let before = st.clone();
    assert!(matches!(prune(&mut st, 1), Err(DomainError::Conflict(_))));
    assert_eq!(st, before);
    export(&mut st, 3).unwrap();
    assert!(matches!(prune(&mut st, 4), Err(DomainError::Conflict(_))));
    assert_eq!(retention(&st), (3, 0));
}

#[test]
fn pruning_stops_at_the_newest_digest_even_when_exported_further() {
    let mut st = chain();
    export(&mut st, 6).unwrap();
    // Records 7..=10 are not signed; exporting them is refused, so is pruning them.
    assert!(export(&mut st, 8).is_err());
    assert!(matches!(prune(&mut st, 7), Err(DomainError::Conflict(_))));
    assert_eq!(prune(&mut st, 6), Ok(CommandOutput::Done));
}

#[test]
fn pruning_again_at_or_below_the_mark_is_a_no_op() {
    let mut st = chain();
    export(&mut st, 6).unwrap();
    prune(&mut st, 4).unwrap();
    st.audit.take_retention();
    assert_eq!(prune(&mut st, 4), Ok(CommandOutput::Done));
    assert_eq!(prune(&mut st, 2), Ok(CommandOutput::Done));
    assert_eq!(st.audit.take_retention(), (false, None));
    assert_eq!(retention(&st), (6, 4));
}

#[test]
fn one_prune_is_bounded() {
    let mut st = world();
    let n = usize::try_from(MAX_PRUNE_BATCH).unwrap() + 1;
    append(&mut st, 4096);
    while (st.audit.head.last_seq() as usize) < n {
        append(&mut st, 4096);
    }
    digest(&mut st);
    st.audit.take_appended();
    export(&mut st, n as u64).unwrap();
    assert!(matches!(
        prune(&mut st, n as u64),
        Err(DomainError::Validation(_))
    ));
    assert_eq!(prune(&mut st, MAX_PRUNE_BATCH), Ok(CommandOutput::Done));
}

#[test]
fn retention_marks_survive_a_snapshot_round_trip() {
    let mut st = chain();
    export(&mut st, 6).unwrap();
    prune(&mut st, 5).unwrap();
    let json = serde_json::to_vec(&st).unwrap();
    let back: State = serde_json::from_slice(&json).unwrap();
    assert_eq!(retention(&back), (6, 5));
    // Old snapshots without the fields read as nothing exported or pruned.
    let old: State =
        serde_json::from_str("{\"keys\":{},\"aliases\":[],\"identities\":{},\"access_keys\":{}}")
            .unwrap();
    assert_eq!(retention(&old), (0, 0));
}

// ---- key last usage ----

fn mark(key_id: &str, op: TrackedOperation, event_id: &str, at: u64) -> KeyUsageMark {
    KeyUsageMark {
        key_id: key_id.into(),
        operation: op,
        event_id: event_id.into(),
        request_id: format!("req-{event_id}"),
        at,
    }
}

fn append_marked(
    st: &mut State,
    now: u64,
    n: usize,
    marks: Vec<KeyUsageMark>,
) -> Result<CommandOutput, DomainError> {
    run(
        st,
        now,
        Command::AppendAudit {
            events: events(n),
            usage: Some(UsageBatch {
                tracked_since: 0,
                marks,
            }),
        },
    )
}

fn last_usage(st: &State, key_id: &str) -> (Option<KeyUsageMark>, Option<u64>) {
    match query(
        st,
        &Query::GetKeyLastUsage {
            key_id: key_id.into(),
        },
    ) {
        QueryOutput::KeyLastUsage {
            last_usage,
            tracking_start,
        } => (last_usage, tracking_start),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn a_batch_without_usage_marks_never_starts_tracking() {
    let mut st = world();
    append(&mut st, 2);
    assert_eq!(last_usage(&st, "k-enabled"), (None, None));
}

#[test]
fn the_first_batch_with_marks_starts_tracking_at_its_fronts_start_even_when_empty() {
    let batch = |tracked_since| Command::AppendAudit {
        events: events(1),
        usage: Some(UsageBatch {
            tracked_since,
            marks: vec![],
        }),
    };
    let mut st = world();
    run(&mut st, NOW, batch(NOW - 7)).unwrap();
    // Later batches (another front, started earlier or later) do not move it.
    run(&mut st, NOW + 9, batch(NOW - 100)).unwrap();
    run(&mut st, NOW + 9, batch(NOW + 5)).unwrap();
    assert_eq!(last_usage(&st, "k-enabled"), (None, Some(NOW - 7)));
    // A front's clock ahead of the leader's is capped at the entry's time.
    let mut st = world();
    run(&mut st, NOW, batch(NOW + 1000)).unwrap();
    assert_eq!(last_usage(&st, "k-enabled").1, Some(NOW));
}

#[test]
fn the_newest_mark_per_key_wins_and_ties_go_to_the_later_entry() {
    let mut st = world();
    let m1 = mark("k-enabled", TrackedOperation::Encrypt, "e1", 100);
    let m2 = mark("k-enabled", TrackedOperation::Decrypt, "e2", 200);
    let m0 = mark("k-enabled", TrackedOperation::Sign, "e0", 50);
    append_marked(&mut st, NOW, 2, vec![m1, m2.clone()]).unwrap();
    // An older mark arriving later (another front's clock) does not win.
    append_marked(&mut st, NOW, 1, vec![m0]).unwrap();
    assert_eq!(last_usage(&st, "k-enabled").0, Some(m2));
    let tie = mark("k-enabled", TrackedOperation::GenerateMac, "e3", 200);
    append_marked(&mut st, NOW, 1, vec![tie.clone()]).unwrap();
    assert_eq!(last_usage(&st, "k-enabled").0, Some(tie));
    assert_eq!(
        st.take_usage_touched().into_iter().collect::<Vec<_>>(),
        vec!["k-enabled".to_string()]
    );
    assert!(st.take_usage_touched().is_empty(), "taken once");
}

#[test]
fn usage_marks_touch_no_cached_entity_and_ignore_unknown_keys() {
    let mut st = world();
    let (_, changes) = apply(
        &mut st,
        &Proposal {
            now: NOW,
            command: Command::AppendAudit {
                events: events(2),
                usage: Some(UsageBatch {
                    tracked_since: 0,
                    marks: vec![
                        mark("k-enabled", TrackedOperation::Encrypt, "e1", 1),
                        mark("k-gone", TrackedOperation::Encrypt, "e2", 1),
                    ],
                }),
            },
        },
    );
    assert!(changes.is_empty());
    assert!(st.key_last_usage.contains_key("k-enabled"));
    assert!(!st.key_last_usage.contains_key("k-gone"));
}

#[test]
fn a_batch_with_too_many_or_malformed_marks_is_refused_untouched() {
    let mut st = world();
    let before = st.clone();
    let m = mark("k-enabled", TrackedOperation::Encrypt, "e", 1);
    let got = append_marked(&mut st, NOW, 1, vec![m.clone(), m.clone(), m.clone()]);
    assert!(matches!(got, Err(DomainError::Validation(_))));
    let empty_key = mark("", TrackedOperation::Encrypt, "e", 1);
    assert!(append_marked(&mut st, NOW, 1, vec![empty_key]).is_err());
    let long_id = mark("k-enabled", TrackedOperation::Encrypt, &"x".repeat(200), 1);
    assert!(append_marked(&mut st, NOW, 1, vec![long_id]).is_err());
    assert_eq!(st, before);
}

#[test]
fn a_deleted_key_loses_its_last_usage() {
    let mut st = world();
    append_marked(
        &mut st,
        NOW,
        1,
        vec![mark("k-pending", TrackedOperation::Decrypt, "e", 1)],
    )
    .unwrap();
    st.take_usage_touched();
    assert_eq!(st.keys["k-pending"].state, KeyState::PendingDeletion);
    run(
        &mut st,
        11 * DAY,
        Command::DeleteDueKey {
            key_id: "k-pending".into(),
        },
    )
    .unwrap();
    assert!(!st.key_last_usage.contains_key("k-pending"));
    assert!(st.take_usage_touched().contains("k-pending"));
}

#[test]
fn old_append_audit_entries_without_usage_still_parse() {
    let old = r#"{"AppendAudit":{"events":["{}"]}}"#;
    let c: Command = serde_json::from_str(old).unwrap();
    assert_eq!(
        c,
        Command::AppendAudit {
            events: vec!["{}".into()],
            usage: None
        }
    );
}

#[test]
fn every_tracked_operation_round_trips_through_its_wire_name() {
    for op in TrackedOperation::ALL {
        assert_eq!(TrackedOperation::from_event_name(op.as_str()), Some(op));
        assert_eq!(
            serde_json::to_string(&op).unwrap(),
            format!("\"{}\"", op.as_str())
        );
    }
    assert_eq!(TrackedOperation::from_event_name("DescribeKey"), None);
    assert_eq!(TrackedOperation::from_event_name("GetPublicKey"), None);
}
