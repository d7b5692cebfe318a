//! `apply` as a table: (starting state, command, expected result, expected changes), plus a
//! check on the resulting state. Every refused command must leave the state untouched.

mod common;

use common::*;
use keystore::apply;
use keystore::command::{Change, Command, CommandOutput, Proposal};
use keystore::error::DomainError;
use keystore::grant::{GrantConstraints, GrantOperation as Op, GrantRecord, MAX_GRANTS_PER_KEY};
use keystore::model::{AccessKeyRecord, IdentityRecord, KeyState, State, Wrapped};
use keystore::model::{KeySpec, MaterialVersion};
use keystore::rotation::{RotationRecord, RotationType};

const NOW: u64 = 5 * DAY;

enum Want {
    /// Success; the check inspects the output and the state after.
    Ok(fn(&CommandOutput, &State)),
    /// Refusal with exactly this error.
    Err(DomainError),
}

struct Case {
    name: &'static str,
    start: fn() -> State,
    now: u64,
    command: Command,
    want: Want,
    changes: Vec<Change>,
}

fn k(id: &str) -> Change {
    Change::Key(id.into())
}

fn a(name: &str) -> Change {
    Change::Alias(ACCT.into(), name.into())
}

fn s(v: &str) -> String {
    v.into()
}

fn tags(n: usize, prefix: &str) -> Vec<(String, String)> {
    (0..n).map(|i| (format!("{prefix}{i}"), s("v"))).collect()
}

fn output_key(out: &CommandOutput) -> &keystore::model::KeyRecord {
    match out {
        CommandOutput::Key(k) => k,
        other => panic!("expected a key, got {other:?}"),
    }
}

fn with_tags(n: usize) -> State {
    let mut st = world();
    st.keys.get_mut("k-enabled").unwrap().tags = tags(n, "t").into_iter().collect();
    st
}

/// Next-version material whose bytes are marked by `mark` (to tell two preparations apart).
fn mv(version: u32, mark: u8) -> MaterialVersion {
    MaterialVersion {
        version,
        wrapped: Wrapped {
            domain_key_version: 1,
            nonce: [mark; 12],
            ciphertext: vec![mark; 48],
        },
        created_at: 1,
    }
}

/// `k-enabled` rotates every 90 days, next at `NOW + 90 days`, version 2 prepared.
fn rotating() -> State {
    let mut st = world();
    let r = &mut st.keys.get_mut("k-enabled").unwrap().rotation;
    r.period_days = Some(90);
    r.next_rotation_date = Some(NOW + 90 * DAY);
    r.prepared = Some(mv(2, 7));
    st
}

fn rotating_without_material() -> State {
    let mut st = rotating();
    st.keys.get_mut("k-enabled").unwrap().rotation.prepared = None;
    st
}

fn rotating_but_disabled() -> State {
    let mut st = rotating();
    st.keys.get_mut("k-enabled").unwrap().state = KeyState::Disabled;
    st
}

/// `k-enabled` has an on-demand rotation requested, version 2 prepared.
fn on_demand_pending() -> State {
    let mut st = world();
    let r = &mut st.keys.get_mut("k-enabled").unwrap().rotation;
    r.on_demand_start_date = Some(NOW - 1);
    r.prepared = Some(mv(2, 7));
    st
}

fn ten_on_demand_rotations() -> State {
    let mut st = world();
    let key = st.keys.get_mut("k-enabled").unwrap();
    for version in 2..=11 {
        key.materials.push(mv(version, 1));
        key.rotation.history.push(RotationRecord {
            version,
            rotation_date: version.into(),
            rotation_type: RotationType::OnDemand,
        });
    }
    key.current_material_version = 11;
    st
}

fn with_rsa_key() -> State {
    let mut st = world();
    let mut rsa = key("k-rsa", KeyState::Enabled);
    rsa.key_spec = KeySpec::Rsa2048;
    insert_key(&mut st, rsa);
    st
}

fn g(key_id: &str, grant_id: &str) -> Change {
    Change::Grant(key_id.into(), grant_id.into())
}

/// with_grants(), and ALICE has ten inline policies `p0`..`p9`.
fn alice_with_ten_policies() -> State {
    let mut st = with_grants();
    let alice = st.identities.get_mut(ALICE).unwrap();
    alice.policies = (0..10).map(|i| (format!("p{i}"), s("{}"))).collect();
    st
}

fn cases() -> Vec<Case> {
    vec![
        // ---- CreateKey ----
        Case {
            name: "create_key_inserts_the_record",
            start: world,
            now: NOW,
            command: Command::CreateKey {
                record: key("k-new", KeyState::Enabled),
            },
            want: Want::Ok(|out, st| {
                assert_eq!(output_key(out).key_id, "k-new");
                assert_eq!(st.keys["k-new"], key("k-new", KeyState::Enabled));
            }),
            changes: vec![k("k-new")],
        },
        Case {
            name: "create_key_refuses_an_existing_id",
            start: world,
            now: NOW,
            command: Command::CreateKey {
                record: key("k-enabled", KeyState::Enabled),
            },
            want: Want::Err(DomainError::AlreadyExists(format!(
                "Key '{}' already exists",
                arn("k-enabled")
            ))),
            changes: vec![],
        },
        Case {
            name: "create_key_refuses_an_empty_id",
            start: world,
            now: NOW,
            command: Command::CreateKey {
                record: key("", KeyState::Enabled),
            },
            want: Want::Err(DomainError::Validation(s(
                "A key id must be 1 to 255 bytes long",
            ))),
            changes: vec![],
        },
        Case {
            name: "create_key_refuses_an_id_too_long_for_the_ciphertext_header",
            start: world,
            now: NOW,
            command: Command::CreateKey {
                record: key(&"x".repeat(256), KeyState::Enabled),
            },
            want: Want::Err(DomainError::Validation(s(
                "A key id must be 1 to 255 bytes long",
            ))),
            changes: vec![],
        },
        Case {
            name: "create_key_refuses_reserved_tag_keys",
            start: world,
            now: NOW,
            command: Command::CreateKey {
                record: {
                    let mut r = key("k-new", KeyState::Enabled);
                    r.tags.insert(s("aws:owner"), s("me"));
                    r
                },
            },
            want: Want::Err(DomainError::Tag(s(
                "Tag keys beginning with aws: are reserved for AWS use",
            ))),
            changes: vec![],
        },
        Case {
            name: "create_key_refuses_more_than_fifty_tags",
            start: world,
            now: NOW,
            command: Command::CreateKey {
                record: {
                    let mut r = key("k-new", KeyState::Enabled);
                    r.tags = tags(51, "t").into_iter().collect();
                    r
                },
            },
            want: Want::Err(DomainError::LimitExceeded(s(
                "A KMS key can have at most 50 tags",
            ))),
            changes: vec![],
        },
        // ---- SetKeyEnabled ----
        Case {
            name: "disable_key_disables_an_enabled_key",
            start: world,
            now: NOW,
            command: Command::SetKeyEnabled {
                key_id: s("k-enabled"),
                enabled: false,
            },
            want: Want::Ok(|out, st| {
                assert_eq!(output_key(out).state, KeyState::Disabled);
                assert_eq!(st.keys["k-enabled"].state, KeyState::Disabled);
            }),
            changes: vec![k("k-enabled")],
        },
        Case {
            name: "enable_key_enables_a_disabled_key",
            start: world,
            now: NOW,
            command: Command::SetKeyEnabled {
                key_id: s("k-disabled"),
                enabled: true,
            },
            want: Want::Ok(|_, st| assert_eq!(st.keys["k-disabled"].state, KeyState::Enabled)),
            changes: vec![k("k-disabled")],
        },
        Case {
            name: "enable_key_on_an_enabled_key_succeeds_idempotently",
            start: world,
            now: NOW,
            command: Command::SetKeyEnabled {
                key_id: s("k-enabled"),
                enabled: true,
            },
            want: Want::Ok(|_, st| assert_eq!(st.keys["k-enabled"].state, KeyState::Enabled)),
            changes: vec![k("k-enabled")],
        },
        Case {
            name: "enable_key_refuses_an_unknown_key",
            start: world,
            now: NOW,
            command: Command::SetKeyEnabled {
                key_id: s("nope"),
                enabled: true,
            },
            want: Want::Err(DomainError::NotFound(s("Key 'nope' does not exist"))),
            changes: vec![],
        },
        Case {
            name: "enable_key_refuses_a_key_pending_deletion",
            start: world,
            now: NOW,
            command: Command::SetKeyEnabled {
                key_id: s("k-pending"),
                enabled: true,
            },
            want: Want::Err(DomainError::InvalidState(format!(
                "{} is pending deletion.",
                arn("k-pending")
            ))),
            changes: vec![],
        },
        Case {
            name: "disable_key_refuses_a_key_pending_import",
            start: world,
            now: NOW,
            command: Command::SetKeyEnabled {
                key_id: s("k-import"),
                enabled: false,
            },
            want: Want::Err(DomainError::InvalidState(format!(
                "{} is pending import.",
                arn("k-import")
            ))),
            changes: vec![],
        },
        // ---- UpdateKeyDescription ----
        Case {
            name: "update_key_description_replaces_the_description",
            start: world,
            now: NOW,
            command: Command::UpdateKeyDescription {
                key_id: s("k-disabled"),
                description: s("new"),
            },
            want: Want::Ok(|_, st| assert_eq!(st.keys["k-disabled"].description, "new")),
            changes: vec![k("k-disabled")],
        },
        Case {
            name: "update_key_description_refuses_a_key_pending_deletion",
            start: world,
            now: NOW,
            command: Command::UpdateKeyDescription {
                key_id: s("k-pending"),
                description: s("x"),
            },
            want: Want::Err(DomainError::InvalidState(format!(
                "{} is pending deletion.",
                arn("k-pending")
            ))),
            changes: vec![],
        },
        Case {
            name: "update_key_description_refuses_more_than_8192_characters",
            start: world,
            now: NOW,
            command: Command::UpdateKeyDescription {
                key_id: s("k-enabled"),
                description: "d".repeat(8193),
            },
            want: Want::Err(DomainError::Validation(s(
                "1 validation error detected: Value at 'description' failed to satisfy \
                 constraint: Member must have length less than or equal to 8192",
            ))),
            changes: vec![],
        },
        // ---- ScheduleKeyDeletion ----
        Case {
            name: "schedule_key_deletion_sets_the_date_window_and_state",
            start: world,
            now: NOW,
            command: Command::ScheduleKeyDeletion {
                key_id: s("k-enabled"),
                pending_window_days: 7,
            },
            want: Want::Ok(|out, st| {
                let key = &st.keys["k-enabled"];
                assert_eq!(key.state, KeyState::PendingDeletion);
                assert_eq!(key.deletion_date, Some(NOW + 7 * DAY));
                assert_eq!(key.pending_deletion_window_days, Some(7));
                assert_eq!(output_key(out), key);
            }),
            changes: vec![k("k-enabled")],
        },
        Case {
            name: "schedule_key_deletion_accepts_thirty_days_on_a_disabled_key",
            start: world,
            now: NOW,
            command: Command::ScheduleKeyDeletion {
                key_id: s("k-disabled"),
                pending_window_days: 30,
            },
            want: Want::Ok(|_, st| {
                assert_eq!(st.keys["k-disabled"].deletion_date, Some(NOW + 30 * DAY));
            }),
            changes: vec![k("k-disabled")],
        },
        Case {
            name: "schedule_key_deletion_accepts_a_key_pending_import",
            start: world,
            now: NOW,
            command: Command::ScheduleKeyDeletion {
                key_id: s("k-import"),
                pending_window_days: 7,
            },
            want: Want::Ok(|_, st| {
                assert_eq!(st.keys["k-import"].state, KeyState::PendingDeletion);
            }),
            changes: vec![k("k-import")],
        },
        Case {
            name: "schedule_key_deletion_refuses_six_days",
            start: world,
            now: NOW,
            command: Command::ScheduleKeyDeletion {
                key_id: s("k-enabled"),
                pending_window_days: 6,
            },
            want: Want::Err(DomainError::Validation(s(
                "1 validation error detected: Value '6' at 'pendingWindowInDays' failed to \
                 satisfy constraint: Member must have value greater than or equal to 7",
            ))),
            changes: vec![],
        },
        Case {
            name: "schedule_key_deletion_refuses_thirty_one_days",
            start: world,
            now: NOW,
            command: Command::ScheduleKeyDeletion {
                key_id: s("k-enabled"),
                pending_window_days: 31,
            },
            want: Want::Err(DomainError::Validation(s(
                "1 validation error detected: Value '31' at 'pendingWindowInDays' failed to \
                 satisfy constraint: Member must have value less than or equal to 30",
            ))),
            changes: vec![],
        },
        Case {
            name: "schedule_key_deletion_refuses_a_key_already_pending_deletion",
            start: world,
            now: NOW,
            command: Command::ScheduleKeyDeletion {
                key_id: s("k-pending"),
                pending_window_days: 7,
            },
            want: Want::Err(DomainError::InvalidState(format!(
                "{} is pending deletion.",
                arn("k-pending")
            ))),
            changes: vec![],
        },
        Case {
            name: "schedule_key_deletion_refuses_an_unknown_key",
            start: world,
            now: NOW,
            command: Command::ScheduleKeyDeletion {
                key_id: s("nope"),
                pending_window_days: 7,
            },
            want: Want::Err(DomainError::NotFound(s("Key 'nope' does not exist"))),
            changes: vec![],
        },
        // ---- CancelKeyDeletion ----
        Case {
            name: "cancel_key_deletion_leaves_the_key_disabled_without_dates",
            start: world,
            now: NOW,
            command: Command::CancelKeyDeletion {
                key_id: s("k-pending"),
            },
            want: Want::Ok(|_, st| {
                let key = &st.keys["k-pending"];
                assert_eq!(key.state, KeyState::Disabled);
                assert_eq!(key.deletion_date, None);
                assert_eq!(key.pending_deletion_window_days, None);
            }),
            changes: vec![k("k-pending")],
        },
        Case {
            name: "cancel_key_deletion_returns_an_imported_key_without_material_to_pending_import",
            start: || {
                let mut st = world();
                let key = st.keys.get_mut("k-import").unwrap();
                key.state = KeyState::PendingDeletion;
                key.deletion_date = Some(9 * DAY);
                st
            },
            now: NOW,
            command: Command::CancelKeyDeletion {
                key_id: s("k-import"),
            },
            want: Want::Ok(|_, st| assert_eq!(st.keys["k-import"].state, KeyState::PendingImport)),
            changes: vec![k("k-import")],
        },
        Case {
            name: "cancel_key_deletion_refuses_a_key_not_pending_deletion",
            start: world,
            now: NOW,
            command: Command::CancelKeyDeletion {
                key_id: s("k-enabled"),
            },
            want: Want::Err(DomainError::InvalidState(format!(
                "{} is not pending deletion.",
                arn("k-enabled")
            ))),
            changes: vec![],
        },
        Case {
            name: "cancel_key_deletion_refuses_an_unknown_key",
            start: world,
            now: NOW,
            command: Command::CancelKeyDeletion { key_id: s("nope") },
            want: Want::Err(DomainError::NotFound(s("Key 'nope' does not exist"))),
            changes: vec![],
        },
        // ---- DeleteDueKey ----
        Case {
            name: "delete_due_key_removes_the_key_and_every_alias_pointing_at_it",
            start: world,
            now: 10 * DAY,
            command: Command::DeleteDueKey {
                key_id: s("k-pending"),
            },
            want: Want::Ok(|out, st| {
                assert_eq!(out, &CommandOutput::Done);
                assert!(!st.keys.contains_key("k-pending"));
                let names: Vec<_> = st.aliases.keys().map(|(_, n)| n.as_str()).collect();
                assert_eq!(names, vec!["alias/app"]);
            }),
            changes: vec![k("k-pending"), a("alias/old"), a("alias/older")],
        },
        Case {
            name: "delete_due_key_is_a_no_op_before_the_deletion_date",
            start: world,
            now: 10 * DAY - 1,
            command: Command::DeleteDueKey {
                key_id: s("k-pending"),
            },
            want: Want::Ok(|_, st| assert_eq!(st, &world())),
            changes: vec![],
        },
        Case {
            name: "delete_due_key_is_a_no_op_for_a_key_no_longer_pending",
            start: world,
            now: 100 * DAY,
            command: Command::DeleteDueKey {
                key_id: s("k-enabled"),
            },
            want: Want::Ok(|_, st| assert_eq!(st, &world())),
            changes: vec![],
        },
        Case {
            name: "delete_due_key_is_a_no_op_for_a_key_already_gone",
            start: world,
            now: 100 * DAY,
            command: Command::DeleteDueKey { key_id: s("nope") },
            want: Want::Ok(|_, st| assert_eq!(st, &world())),
            changes: vec![],
        },
        // ---- CreateAlias ----
        Case {
            name: "create_alias_points_a_new_alias_at_the_key",
            start: world,
            now: NOW,
            command: Command::CreateAlias {
                account_id: s(ACCT),
                alias_name: s("alias/new"),
                alias_arn: keystore::ids::alias_arn(REGION, ACCT, "alias/new"),
                target_key_id: s("k-disabled"),
            },
            want: Want::Ok(|out, st| {
                let rec = &st.aliases[&(s(ACCT), s("alias/new"))];
                assert_eq!(rec.target_key_id, "k-disabled");
                assert_eq!((rec.creation_date, rec.last_updated_date), (NOW, NOW));
                assert_eq!(out, &CommandOutput::Alias(rec.clone()));
            }),
            changes: vec![a("alias/new")],
        },
        Case {
            name: "create_alias_refuses_an_existing_name",
            start: world,
            now: NOW,
            command: Command::CreateAlias {
                account_id: s(ACCT),
                alias_name: s("alias/app"),
                alias_arn: keystore::ids::alias_arn(REGION, ACCT, "alias/app"),
                target_key_id: s("k-disabled"),
            },
            want: Want::Err(DomainError::AlreadyExists(format!(
                "An alias with the name {} already exists",
                keystore::ids::alias_arn(REGION, ACCT, "alias/app")
            ))),
            changes: vec![],
        },
        Case {
            name: "create_alias_refuses_an_unknown_target",
            start: world,
            now: NOW,
            command: Command::CreateAlias {
                account_id: s(ACCT),
                alias_name: s("alias/new"),
                alias_arn: keystore::ids::alias_arn(REGION, ACCT, "alias/new"),
                target_key_id: s("nope"),
            },
            want: Want::Err(DomainError::NotFound(format!(
                "Key '{}' does not exist",
                arn("nope")
            ))),
            changes: vec![],
        },
        Case {
            name: "create_alias_refuses_a_target_in_another_account",
            start: world,
            now: NOW,
            command: Command::CreateAlias {
                account_id: s(ACCT),
                alias_name: s("alias/new"),
                alias_arn: keystore::ids::alias_arn(REGION, ACCT, "alias/new"),
                target_key_id: s("k-other"),
            },
            want: Want::Err(DomainError::NotFound(format!(
                "Key '{}' does not exist",
                arn("k-other")
            ))),
            changes: vec![],
        },
        Case {
            name: "create_alias_refuses_a_target_pending_deletion",
            start: world,
            now: NOW,
            command: Command::CreateAlias {
                account_id: s(ACCT),
                alias_name: s("alias/new"),
                alias_arn: keystore::ids::alias_arn(REGION, ACCT, "alias/new"),
                target_key_id: s("k-pending"),
            },
            want: Want::Err(DomainError::InvalidState(format!(
                "{} is pending deletion.",
                arn("k-pending")
            ))),
            changes: vec![],
        },
        // ---- UpdateAlias ----
        Case {
            name: "update_alias_repoints_the_alias_and_stamps_the_update",
            start: world,
            now: NOW,
            command: Command::UpdateAlias {
                account_id: s(ACCT),
                alias_name: s("alias/app"),
                target_key_id: s("k-disabled"),
            },
            want: Want::Ok(|_, st| {
                let rec = &st.aliases[&(s(ACCT), s("alias/app"))];
                assert_eq!(rec.target_key_id, "k-disabled");
                assert_eq!((rec.creation_date, rec.last_updated_date), (1, NOW));
            }),
            changes: vec![a("alias/app")],
        },
        Case {
            name: "update_alias_refuses_an_unknown_alias",
            start: world,
            now: NOW,
            command: Command::UpdateAlias {
                account_id: s(ACCT),
                alias_name: s("alias/nope"),
                target_key_id: s("k-enabled"),
            },
            want: Want::Err(DomainError::NotFound(s("Alias alias/nope is not found."))),
            changes: vec![],
        },
        Case {
            name: "update_alias_refuses_an_alias_of_another_account",
            start: world,
            now: NOW,
            command: Command::UpdateAlias {
                account_id: s(OTHER),
                alias_name: s("alias/app"),
                target_key_id: s("k-other"),
            },
            want: Want::Err(DomainError::NotFound(s("Alias alias/app is not found."))),
            changes: vec![],
        },
        Case {
            name: "update_alias_refuses_an_unknown_target",
            start: world,
            now: NOW,
            command: Command::UpdateAlias {
                account_id: s(ACCT),
                alias_name: s("alias/app"),
                target_key_id: s("nope"),
            },
            want: Want::Err(DomainError::NotFound(format!(
                "Key '{}' does not exist",
                arn("nope")
            ))),
            changes: vec![],
        },
        Case {
            name: "update_alias_refuses_a_target_in_another_account",
            start: world,
            now: NOW,
            command: Command::UpdateAlias {
                account_id: s(ACCT),
                alias_name: s("alias/app"),
                target_key_id: s("k-other"),
            },
            want: Want::Err(DomainError::NotFound(format!(
                "Key '{}' does not exist",
                arn("k-other")
            ))),
            changes: vec![],
        },
        Case {
            name: "update_alias_refuses_a_target_pending_deletion",
            start: world,
            now: NOW,
            command: Command::UpdateAlias {
                account_id: s(ACCT),
                alias_name: s("alias/app"),
                target_key_id: s("k-pending"),
            },
            want: Want::Err(DomainError::InvalidState(format!(
                "{} is pending deletion.",
                arn("k-pending")
            ))),
            changes: vec![],
        },
        // ---- DeleteAlias ----
        Case {
            name: "delete_alias_removes_the_alias_even_if_its_key_is_pending_deletion",
            start: world,
            now: NOW,
            command: Command::DeleteAlias {
                account_id: s(ACCT),
                alias_name: s("alias/old"),
            },
            want: Want::Ok(|_, st| {
                assert!(!st.aliases.contains_key(&(s(ACCT), s("alias/old"))));
                assert!(st.keys.contains_key("k-pending"));
            }),
            changes: vec![a("alias/old")],
        },
        Case {
            name: "delete_alias_refuses_an_unknown_alias",
            start: world,
            now: NOW,
            command: Command::DeleteAlias {
                account_id: s(ACCT),
                alias_name: s("alias/nope"),
            },
            want: Want::Err(DomainError::NotFound(s("Alias alias/nope is not found."))),
            changes: vec![],
        },
        // ---- TagResource / UntagResource ----
        Case {
            name: "tag_resource_adds_new_tags_and_overwrites_existing_values",
            start: || with_tags(2),
            now: NOW,
            command: Command::TagResource {
                key_id: s("k-enabled"),
                tags: vec![(s("t0"), s("new")), (s("extra"), s("x"))],
            },
            want: Want::Ok(|_, st| {
                let tags = &st.keys["k-enabled"].tags;
                assert_eq!(tags.len(), 3);
                assert_eq!(tags["t0"], "new");
                assert_eq!(tags["t1"], "v");
                assert_eq!(tags["extra"], "x");
            }),
            changes: vec![k("k-enabled")],
        },
        Case {
            name: "tag_resource_accepts_exactly_fifty_tags",
            start: || with_tags(49),
            now: NOW,
            command: Command::TagResource {
                key_id: s("k-enabled"),
                tags: tags(1, "u"),
            },
            want: Want::Ok(|_, st| assert_eq!(st.keys["k-enabled"].tags.len(), 50)),
            changes: vec![k("k-enabled")],
        },
        Case {
            name: "tag_resource_overwriting_at_fifty_tags_is_not_over_the_limit",
            start: || with_tags(50),
            now: NOW,
            command: Command::TagResource {
                key_id: s("k-enabled"),
                tags: vec![(s("t7"), s("w"))],
            },
            want: Want::Ok(|_, st| assert_eq!(st.keys["k-enabled"].tags["t7"], "w")),
            changes: vec![k("k-enabled")],
        },
        Case {
            name: "tag_resource_refuses_a_fifty_first_tag",
            start: || with_tags(50),
            now: NOW,
            command: Command::TagResource {
                key_id: s("k-enabled"),
                tags: tags(1, "u"),
            },
            want: Want::Err(DomainError::LimitExceeded(s(
                "A KMS key can have at most 50 tags",
            ))),
            changes: vec![],
        },
        Case {
            name: "tag_resource_refuses_reserved_aws_prefix",
            start: world,
            now: NOW,
            command: Command::TagResource {
                key_id: s("k-enabled"),
                tags: vec![(s("aws:x"), s("v"))],
            },
            want: Want::Err(DomainError::Tag(s(
                "Tag keys beginning with aws: are reserved for AWS use",
            ))),
            changes: vec![],
        },
        Case {
            name: "tag_resource_refuses_an_empty_tag_key",
            start: world,
            now: NOW,
            command: Command::TagResource {
                key_id: s("k-enabled"),
                tags: vec![(s(""), s("v"))],
            },
            want: Want::Err(DomainError::Tag(s(
                "Tag keys must be 1 to 128 characters long",
            ))),
            changes: vec![],
        },
        Case {
            name: "tag_resource_refuses_a_129_character_tag_key",
            start: world,
            now: NOW,
            command: Command::TagResource {
                key_id: s("k-enabled"),
                tags: vec![("k".repeat(129), s("v"))],
            },
            want: Want::Err(DomainError::Tag(s(
                "Tag keys must be 1 to 128 characters long",
            ))),
            changes: vec![],
        },
        Case {
            name: "tag_resource_refuses_a_257_character_tag_value",
            start: world,
            now: NOW,
            command: Command::TagResource {
                key_id: s("k-enabled"),
                tags: vec![(s("k"), "v".repeat(257))],
            },
            want: Want::Err(DomainError::Tag(s(
                "Tag values must be 0 to 256 characters long",
            ))),
            changes: vec![],
        },
        Case {
            name: "tag_resource_refuses_duplicate_keys_in_one_request",
            start: world,
            now: NOW,
            command: Command::TagResource {
                key_id: s("k-enabled"),
                tags: vec![(s("k"), s("1")), (s("k"), s("2"))],
            },
            want: Want::Err(DomainError::Tag(s("Duplicate tag key: k"))),
            changes: vec![],
        },
        Case {
            name: "tag_resource_refuses_a_key_pending_deletion",
            start: world,
            now: NOW,
            command: Command::TagResource {
                key_id: s("k-pending"),
                tags: tags(1, "t"),
            },
            want: Want::Err(DomainError::InvalidState(format!(
                "{} is pending deletion.",
                arn("k-pending")
            ))),
            changes: vec![],
        },
        Case {
            name: "tag_resource_refuses_an_unknown_key",
            start: world,
            now: NOW,
            command: Command::TagResource {
                key_id: s("nope"),
                tags: tags(1, "t"),
            },
            want: Want::Err(DomainError::NotFound(s("Key 'nope' does not exist"))),
            changes: vec![],
        },
        Case {
            name: "untag_resource_removes_named_tags_and_ignores_absent_ones",
            start: || with_tags(3),
            now: NOW,
            command: Command::UntagResource {
                key_id: s("k-enabled"),
                tag_keys: vec![s("t1"), s("absent")],
            },
            want: Want::Ok(|_, st| {
                let keys: Vec<_> = st.keys["k-enabled"].tags.keys().cloned().collect();
                assert_eq!(keys, vec![s("t0"), s("t2")]);
            }),
            changes: vec![k("k-enabled")],
        },
        Case {
            name: "untag_resource_refuses_a_key_pending_deletion",
            start: world,
            now: NOW,
            command: Command::UntagResource {
                key_id: s("k-pending"),
                tag_keys: vec![s("t")],
            },
            want: Want::Err(DomainError::InvalidState(format!(
                "{} is pending deletion.",
                arn("k-pending")
            ))),
            changes: vec![],
        },
        // ---- identities and access keys ----
        Case {
            name: "put_identity_creates_or_replaces_the_identity",
            start: world,
            now: NOW,
            command: Command::PutIdentity {
                identity: IdentityRecord {
                    arn: format!("arn:aws:iam::{ACCT}:user/alice"),
                    account_id: s(ACCT),
                    admin: true,
                    ..Default::default()
                },
            },
            want: Want::Ok(|_, st| {
                assert!(st.identities[&format!("arn:aws:iam::{ACCT}:user/alice")].admin);
            }),
            changes: vec![Change::Identity(format!("arn:aws:iam::{ACCT}:user/alice"))],
        },
        Case {
            name: "put_access_key_creates_or_replaces_the_access_key",
            start: world,
            now: NOW,
            command: Command::PutAccessKey {
                record: AccessKeyRecord {
                    access_key_id: s("AKIAEXAMPLE"),
                    principal_arn: format!("arn:aws:iam::{ACCT}:user/alice"),
                    account_id: s(ACCT),
                    wrapped_secret: Wrapped {
                        domain_key_version: 1,
                        nonce: [1; 12],
                        ciphertext: vec![2; 56],
                    },
                    created_at: NOW,
                },
            },
            want: Want::Ok(|_, st| {
                assert_eq!(st.access_keys["AKIAEXAMPLE"].account_id, ACCT);
            }),
            changes: vec![Change::AccessKey(s("AKIAEXAMPLE"))],
        },
        // ---- rotation: EnableKeyRotation ----
        Case {
            name: "enable_key_rotation_sets_period_schedule_and_prepared_material",
            start: world,
            now: NOW,
            command: Command::EnableKeyRotation {
                key_id: s("k-enabled"),
                rotation_period_days: 90,
                prepared: Some(mv(2, 7)),
            },
            want: Want::Ok(|out, st| {
                let r = &st.keys["k-enabled"].rotation;
                assert_eq!(r.period_days, Some(90));
                assert_eq!(r.next_rotation_date, Some(NOW + 90 * DAY));
                assert_eq!(r.prepared, Some(mv(2, 7)));
                assert_eq!(output_key(out).rotation, *r);
                // Enabling rotation does not rotate.
                assert_eq!(st.keys["k-enabled"].current_material_version, 1);
            }),
            changes: vec![k("k-enabled")],
        },
        Case {
            name: "enable_key_rotation_refuses_a_period_under_90_days",
            start: world,
            now: NOW,
            command: Command::EnableKeyRotation {
                key_id: s("k-enabled"),
                rotation_period_days: 89,
                prepared: None,
            },
            want: Want::Err(DomainError::Validation(s(
                "1 validation error detected: Value '89' at 'rotationPeriodInDays' failed to \
                 satisfy constraint: Member must have value greater than or equal to 90",
            ))),
            changes: vec![],
        },
        Case {
            name: "enable_key_rotation_refuses_a_period_over_2560_days",
            start: world,
            now: NOW,
            command: Command::EnableKeyRotation {
                key_id: s("k-enabled"),
                rotation_period_days: 2561,
                prepared: None,
            },
            want: Want::Err(DomainError::Validation(s(
                "1 validation error detected: Value '2561' at 'rotationPeriodInDays' failed to \
                 satisfy constraint: Member must have value less than or equal to 2560",
            ))),
            changes: vec![],
        },
        Case {
            name: "enable_key_rotation_refuses_a_disabled_key",
            start: world,
            now: NOW,
            command: Command::EnableKeyRotation {
                key_id: s("k-disabled"),
                rotation_period_days: 365,
                prepared: None,
            },
            want: Want::Err(DomainError::Disabled(format!(
                "{} is disabled.",
                arn("k-disabled")
            ))),
            changes: vec![],
        },
        Case {
            name: "enable_key_rotation_refuses_a_key_pending_deletion",
            start: world,
            now: NOW,
            command: Command::EnableKeyRotation {
                key_id: s("k-pending"),
                rotation_period_days: 365,
                prepared: None,
            },
            want: Want::Err(DomainError::InvalidState(format!(
                "{} is pending deletion.",
                arn("k-pending")
            ))),
            changes: vec![],
        },
        Case {
            name: "enable_key_rotation_refuses_imported_key_material",
            start: world,
            now: NOW,
            command: Command::EnableKeyRotation {
                key_id: s("k-import"),
                rotation_period_days: 365,
                prepared: None,
            },
            want: Want::Err(DomainError::UnsupportedOperation(format!(
                "{} key rotation is not supported for KMS keys with imported key material.",
                arn("k-import")
            ))),
            changes: vec![],
        },
        Case {
            name: "enable_key_rotation_refuses_an_asymmetric_key",
            start: with_rsa_key,
            now: NOW,
            command: Command::EnableKeyRotation {
                key_id: s("k-rsa"),
                rotation_period_days: 365,
                prepared: None,
            },
            want: Want::Err(DomainError::UnsupportedOperation(format!(
                "{} key rotation is not supported for asymmetric or HMAC KMS keys.",
                arn("k-rsa")
            ))),
            changes: vec![],
        },
        Case {
            name: "enable_key_rotation_refuses_an_unknown_key",
            start: world,
            now: NOW,
            command: Command::EnableKeyRotation {
                key_id: s("nope"),
                rotation_period_days: 365,
                prepared: None,
            },
            want: Want::Err(DomainError::NotFound(s("Key 'nope' does not exist"))),
            changes: vec![],
        },
        Case {
            name: "enable_key_rotation_again_keeps_the_schedule_and_the_prepared_material",
            start: rotating,
            now: NOW + DAY,
            command: Command::EnableKeyRotation {
                key_id: s("k-enabled"),
                rotation_period_days: 90,
                prepared: Some(mv(2, 8)),
            },
            want: Want::Ok(|_, st| {
                let r = &st.keys["k-enabled"].rotation;
                assert_eq!(r.next_rotation_date, Some(NOW + 90 * DAY));
                assert_eq!(r.prepared, Some(mv(2, 7)), "first prepared material wins");
            }),
            changes: vec![k("k-enabled")],
        },
        Case {
            name: "enable_key_rotation_with_a_new_period_restarts_the_schedule",
            start: rotating,
            now: NOW + DAY,
            command: Command::EnableKeyRotation {
                key_id: s("k-enabled"),
                rotation_period_days: 180,
                prepared: None,
            },
            want: Want::Ok(|_, st| {
                let r = &st.keys["k-enabled"].rotation;
                assert_eq!(r.period_days, Some(180));
                assert_eq!(r.next_rotation_date, Some(NOW + DAY + 180 * DAY));
            }),
            changes: vec![k("k-enabled")],
        },
        Case {
            name: "enable_key_rotation_ignores_material_for_a_stale_version",
            start: world,
            now: NOW,
            command: Command::EnableKeyRotation {
                key_id: s("k-enabled"),
                rotation_period_days: 365,
                prepared: Some(mv(5, 7)),
            },
            want: Want::Ok(|_, st| {
                let r = &st.keys["k-enabled"].rotation;
                assert_eq!(r.period_days, Some(365));
                assert_eq!(r.prepared, None);
            }),
            changes: vec![k("k-enabled")],
        },
        // ---- rotation: DisableKeyRotation ----
        Case {
            name: "disable_key_rotation_clears_the_schedule_and_keeps_prepared_material",
            start: rotating,
            now: NOW,
            command: Command::DisableKeyRotation {
                key_id: s("k-enabled"),
            },
            want: Want::Ok(|_, st| {
                let r = &st.keys["k-enabled"].rotation;
                assert_eq!(r.period_days, None);
                assert_eq!(r.next_rotation_date, None);
                assert_eq!(r.prepared, Some(mv(2, 7)));
            }),
            changes: vec![k("k-enabled")],
        },
        Case {
            name: "disable_key_rotation_refuses_a_disabled_key",
            start: world,
            now: NOW,
            command: Command::DisableKeyRotation {
                key_id: s("k-disabled"),
            },
            want: Want::Err(DomainError::Disabled(format!(
                "{} is disabled.",
                arn("k-disabled")
            ))),
            changes: vec![],
        },
        // ---- rotation: PrepareNextMaterial ----
        Case {
            name: "prepare_next_material_stores_material_for_the_next_version",
            start: world,
            now: NOW,
            command: Command::PrepareNextMaterial {
                key_id: s("k-enabled"),
                material: mv(2, 7),
            },
            want: Want::Ok(|_, st| {
                assert_eq!(st.keys["k-enabled"].rotation.prepared, Some(mv(2, 7)));
            }),
            changes: vec![k("k-enabled")],
        },
        Case {
            name: "prepare_next_material_is_a_no_op_when_material_is_already_prepared",
            start: rotating,
            now: NOW,
            command: Command::PrepareNextMaterial {
                key_id: s("k-enabled"),
                material: mv(2, 8),
            },
            want: Want::Ok(|_, st| {
                assert_eq!(st.keys["k-enabled"].rotation.prepared, Some(mv(2, 7)));
            }),
            changes: vec![],
        },
        Case {
            name: "prepare_next_material_is_a_no_op_for_a_version_that_is_not_next",
            start: world,
            now: NOW,
            command: Command::PrepareNextMaterial {
                key_id: s("k-enabled"),
                material: mv(1, 7),
            },
            want: Want::Ok(|_, st| {
                assert_eq!(st.keys["k-enabled"].rotation.prepared, None);
            }),
            changes: vec![],
        },
        Case {
            name: "prepare_next_material_refuses_an_unknown_key",
            start: world,
            now: NOW,
            command: Command::PrepareNextMaterial {
                key_id: s("nope"),
                material: mv(2, 7),
            },
            want: Want::Err(DomainError::NotFound(s("Key 'nope' does not exist"))),
            changes: vec![],
        },
        // ---- rotation: StartOnDemandRotation ----
        Case {
            name: "start_on_demand_rotation_records_its_start_and_material",
            start: world,
            now: NOW,
            command: Command::StartOnDemandRotation {
                key_id: s("k-enabled"),
                prepared: Some(mv(2, 7)),
            },
            want: Want::Ok(|_, st| {
                let key = &st.keys["k-enabled"];
                assert_eq!(key.rotation.on_demand_start_date, Some(NOW));
                assert_eq!(key.rotation.prepared, Some(mv(2, 7)));
                assert_eq!(key.current_material_version, 1, "the leader activates it");
            }),
            changes: vec![k("k-enabled")],
        },
        Case {
            name: "start_on_demand_rotation_refuses_while_one_is_in_progress",
            start: on_demand_pending,
            now: NOW,
            command: Command::StartOnDemandRotation {
                key_id: s("k-enabled"),
                prepared: None,
            },
            want: Want::Err(DomainError::Conflict(format!(
                "An on-demand rotation of {} is already in progress.",
                arn("k-enabled")
            ))),
            changes: vec![],
        },
        Case {
            name: "start_on_demand_rotation_refuses_an_eleventh_on_demand_rotation",
            start: ten_on_demand_rotations,
            now: NOW,
            command: Command::StartOnDemandRotation {
                key_id: s("k-enabled"),
                prepared: None,
            },
            want: Want::Err(DomainError::LimitExceeded(format!(
                "{} has reached the maximum of 10 on-demand rotations.",
                arn("k-enabled")
            ))),
            changes: vec![],
        },
        Case {
            name: "start_on_demand_rotation_refuses_within_20_minutes_of_an_automatic_rotation",
            start: rotating,
            now: NOW + 90 * DAY - 19 * 60_000,
            command: Command::StartOnDemandRotation {
                key_id: s("k-enabled"),
                prepared: None,
            },
            want: Want::Err(DomainError::Conflict(format!(
                "An automatic rotation of {} is in progress or scheduled to begin within the \
                 next 20 minutes.",
                arn("k-enabled")
            ))),
            changes: vec![],
        },
        Case {
            name: "start_on_demand_rotation_refuses_a_disabled_key",
            start: world,
            now: NOW,
            command: Command::StartOnDemandRotation {
                key_id: s("k-disabled"),
                prepared: None,
            },
            want: Want::Err(DomainError::Disabled(format!(
                "{} is disabled.",
                arn("k-disabled")
            ))),
            changes: vec![],
        },
        // ---- rotation: RotateKey (the leader's scheduler) ----
        Case {
            name: "rotate_key_on_demand_activates_the_prepared_material",
            start: on_demand_pending,
            now: NOW,
            command: Command::RotateKey {
                key_id: s("k-enabled"),
                to_version: 2,
                rotation_type: RotationType::OnDemand,
            },
            want: Want::Ok(|_, st| {
                let key = &st.keys["k-enabled"];
                assert_eq!(key.current_material_version, 2);
                assert_eq!(
                    key.materials.len(),
                    2,
                    "old material stays for old ciphertexts"
                );
                assert_eq!(key.materials[1].version, 2);
                assert_eq!(key.materials[1].wrapped, mv(2, 7).wrapped);
                assert_eq!(key.materials[1].created_at, NOW);
                assert_eq!(key.rotation.prepared, None);
                assert_eq!(key.rotation.on_demand_start_date, None);
                assert_eq!(
                    key.rotation.history,
                    vec![RotationRecord {
                        version: 2,
                        rotation_date: NOW,
                        rotation_type: RotationType::OnDemand
                    }]
                );
            }),
            changes: vec![k("k-enabled")],
        },
        Case {
            name: "rotate_key_automatic_activates_when_due_and_schedules_the_next_period",
            start: rotating,
            now: NOW + 90 * DAY + 1,
            command: Command::RotateKey {
                key_id: s("k-enabled"),
                to_version: 2,
                rotation_type: RotationType::Automatic,
            },
            want: Want::Ok(|_, st| {
                let key = &st.keys["k-enabled"];
                assert_eq!(key.current_material_version, 2);
                assert_eq!(key.rotation.next_rotation_date, Some(NOW + 180 * DAY));
                assert_eq!(key.rotation.history.len(), 1);
                assert_eq!(
                    key.rotation.history[0].rotation_type,
                    RotationType::Automatic
                );
            }),
            changes: vec![k("k-enabled")],
        },
        Case {
            name: "rotate_key_automatic_is_a_no_op_before_the_due_date",
            start: rotating,
            now: NOW + 90 * DAY - 1,
            command: Command::RotateKey {
                key_id: s("k-enabled"),
                to_version: 2,
                rotation_type: RotationType::Automatic,
            },
            want: Want::Ok(|out, st| {
                assert_eq!(*out, CommandOutput::Done);
                assert_eq!(st.keys["k-enabled"].current_material_version, 1);
            }),
            changes: vec![],
        },
        Case {
            name: "rotate_key_is_a_no_op_for_a_version_other_than_the_prepared_one",
            start: rotating,
            now: NOW + 90 * DAY,
            command: Command::RotateKey {
                key_id: s("k-enabled"),
                to_version: 3,
                rotation_type: RotationType::Automatic,
            },
            want: Want::Ok(|_, st| {
                assert_eq!(st.keys["k-enabled"].current_material_version, 1);
            }),
            changes: vec![],
        },
        Case {
            name: "rotate_key_is_a_no_op_without_prepared_material",
            start: rotating_without_material,
            now: NOW + 90 * DAY,
            command: Command::RotateKey {
                key_id: s("k-enabled"),
                to_version: 2,
                rotation_type: RotationType::Automatic,
            },
            want: Want::Ok(|_, st| {
                assert_eq!(st.keys["k-enabled"].current_material_version, 1);
            }),
            changes: vec![],
        },
        Case {
            name: "rotate_key_is_a_no_op_on_a_disabled_key",
            start: rotating_but_disabled,
            now: NOW + 90 * DAY,
            command: Command::RotateKey {
                key_id: s("k-enabled"),
                to_version: 2,
                rotation_type: RotationType::Automatic,
            },
            want: Want::Ok(|_, st| {
                assert_eq!(st.keys["k-enabled"].current_material_version, 1);
            }),
            changes: vec![],
        },
        Case {
            name: "rotate_key_on_demand_is_a_no_op_when_none_was_requested",
            start: rotating,
            now: NOW,
            command: Command::RotateKey {
                key_id: s("k-enabled"),
                to_version: 2,
                rotation_type: RotationType::OnDemand,
            },
            want: Want::Ok(|_, st| {
                assert_eq!(st.keys["k-enabled"].current_material_version, 1);
            }),
            changes: vec![],
        },
        Case {
            name: "rotate_key_is_a_no_op_for_an_unknown_key",
            start: world,
            now: NOW,
            command: Command::RotateKey {
                key_id: s("nope"),
                to_version: 2,
                rotation_type: RotationType::OnDemand,
            },
            want: Want::Ok(|out, _| assert_eq!(*out, CommandOutput::Done)),
            changes: vec![],
        },
        // ---- import (BYOK): PutImportParameters ----
        Case {
            name: "put_import_parameters_stores_them_valid_for_24_hours",
            start: world,
            now: NOW,
            command: Command::PutImportParameters {
                key_id: s("k-import"),
                parameters: import_params("t1", 0),
            },
            want: Want::Ok(|out, st| {
                let p = st.keys["k-import"].import.parameters.as_ref().unwrap();
                assert_eq!(p.token_id, "t1");
                assert_eq!(p.valid_to, NOW + DAY);
                assert_eq!(output_key(out).state, KeyState::PendingImport);
            }),
            changes: vec![k("k-import")],
        },
        Case {
            name: "put_import_parameters_replaces_older_ones",
            start: import_ready,
            now: NOW + 1,
            command: Command::PutImportParameters {
                key_id: s("k-import"),
                parameters: import_params("t2", 0),
            },
            want: Want::Ok(|_, st| {
                let p = st.keys["k-import"].import.parameters.as_ref().unwrap();
                assert_eq!((p.token_id.as_str(), p.valid_to), ("t2", NOW + 1 + DAY));
            }),
            changes: vec![k("k-import")],
        },
        Case {
            name: "put_import_parameters_refuses_keys_with_generated_material",
            start: world,
            now: NOW,
            command: Command::PutImportParameters {
                key_id: s("k-enabled"),
                parameters: import_params("t1", 0),
            },
            want: Want::Err(DomainError::UnsupportedOperation(format!(
                "{} origin is AWS_KMS which is not valid for this operation.",
                arn("k-enabled")
            ))),
            changes: vec![],
        },
        Case {
            name: "put_import_parameters_refuses_an_imported_key_pending_deletion",
            start: imported_pending_deletion,
            now: NOW,
            command: Command::PutImportParameters {
                key_id: s("k-import"),
                parameters: import_params("t2", 0),
            },
            want: Want::Err(DomainError::InvalidState(format!(
                "{} is pending deletion.",
                arn("k-import")
            ))),
            changes: vec![],
        },
        Case {
            name: "put_import_parameters_refuses_an_unknown_key",
            start: world,
            now: NOW,
            command: Command::PutImportParameters {
                key_id: s("nope"),
                parameters: import_params("t1", 0),
            },
            want: Want::Err(DomainError::NotFound(s("Key 'nope' does not exist"))),
            changes: vec![],
        },
        // ---- import: ImportKeyMaterial ----
        Case {
            name: "import_key_material_enables_a_key_pending_import",
            start: import_ready,
            now: NOW,
            command: import_cmd("t1", 1, Some(NOW + 10 * DAY)),
            want: Want::Ok(|out, st| {
                let key = &st.keys["k-import"];
                assert_eq!(key.state, KeyState::Enabled);
                assert_eq!(key.materials.len(), 1);
                assert_eq!(key.materials[0].version, 1);
                assert_eq!(key.materials[0].created_at, NOW);
                assert_eq!(key.current_material_version, 1);
                assert_eq!(key.import.fingerprint, Some(vec![1; 32]));
                assert_eq!(key.import.valid_to, Some(NOW + 10 * DAY));
                assert_eq!(
                    key.import.expiration_model,
                    Some(ExpirationModel::KeyMaterialExpires)
                );
                assert_eq!(output_key(out), key);
            }),
            changes: vec![k("k-import")],
        },
        Case {
            name: "import_key_material_without_expiry_records_does_not_expire",
            start: import_ready,
            now: NOW,
            command: import_cmd("t1", 1, None),
            want: Want::Ok(|_, st| {
                let key = &st.keys["k-import"];
                assert_eq!(key.import.valid_to, None);
                assert_eq!(
                    key.import.expiration_model,
                    Some(ExpirationModel::KeyMaterialDoesNotExpire)
                );
            }),
            changes: vec![k("k-import")],
        },
        Case {
            name: "import_key_material_refuses_a_superseded_token",
            start: import_ready,
            now: NOW,
            command: import_cmd("t0", 1, None),
            want: Want::Err(DomainError::InvalidImportToken(s(
                "Import token is invalid.",
            ))),
            changes: vec![],
        },
        Case {
            name: "import_key_material_refuses_a_key_without_parameters",
            start: world,
            now: NOW,
            command: import_cmd("t1", 1, None),
            want: Want::Err(DomainError::InvalidImportToken(s(
                "Import token is invalid.",
            ))),
            changes: vec![],
        },
        Case {
            name: "import_key_material_refuses_an_expired_token",
            start: import_ready,
            now: NOW + DAY,
            command: import_cmd("t1", 1, None),
            want: Want::Err(DomainError::ExpiredImportToken(s(
                "The import token has expired. Use GetParametersForImport to get a new import \
                 token and public key.",
            ))),
            changes: vec![],
        },
        Case {
            name: "import_key_material_refuses_different_material_than_before",
            start: imported_then_deleted,
            now: NOW,
            command: import_cmd("t1", 2, None),
            want: Want::Err(DomainError::IncorrectKeyMaterial(format!(
                "The key material is not the key material previously imported into {}.",
                arn("k-import")
            ))),
            changes: vec![],
        },
        Case {
            name: "import_key_material_accepts_the_same_material_after_deletion",
            start: imported_then_deleted,
            now: NOW,
            command: import_cmd("t1", 1, None),
            want: Want::Ok(|_, st| {
                let key = &st.keys["k-import"];
                assert_eq!(key.state, KeyState::Enabled);
                assert_eq!(key.materials.len(), 1);
            }),
            changes: vec![k("k-import")],
        },
        Case {
            name: "import_key_material_into_a_disabled_key_keeps_it_disabled",
            start: imported_disabled,
            now: NOW,
            command: import_cmd("t1", 1, None),
            want: Want::Ok(|_, st| {
                assert_eq!(st.keys["k-import"].state, KeyState::Disabled);
                assert_eq!(st.keys["k-import"].import.valid_to, None);
            }),
            changes: vec![k("k-import")],
        },
        Case {
            name: "import_key_material_refuses_an_expiry_model_without_valid_to",
            start: import_ready,
            now: NOW,
            command: Command::ImportKeyMaterial {
                key_id: s("k-import"),
                token_id: s("t1"),
                material: mv(1, 1),
                fingerprint: vec![1; 32],
                expiration_model: ExpirationModel::KeyMaterialExpires,
                valid_to: None,
            },
            want: Want::Err(DomainError::Validation(s(
                "ValidTo is required with KEY_MATERIAL_EXPIRES and not allowed with \
                 KEY_MATERIAL_DOES_NOT_EXPIRE.",
            ))),
            changes: vec![],
        },
        Case {
            name: "import_key_material_refuses_keys_with_generated_material",
            start: world,
            now: NOW,
            command: Command::ImportKeyMaterial {
                key_id: s("k-enabled"),
                token_id: s("t1"),
                material: mv(1, 1),
                fingerprint: vec![1; 32],
                expiration_model: ExpirationModel::KeyMaterialDoesNotExpire,
                valid_to: None,
            },
            want: Want::Err(DomainError::UnsupportedOperation(format!(
                "{} origin is AWS_KMS which is not valid for this operation.",
                arn("k-enabled")
            ))),
            changes: vec![],
        },
        Case {
            name: "import_key_material_refuses_a_key_pending_deletion",
            start: imported_pending_deletion,
            now: NOW,
            command: import_cmd("t1", 1, None),
            want: Want::Err(DomainError::InvalidState(format!(
                "{} is pending deletion.",
                arn("k-import")
            ))),
            changes: vec![],
        },
        // ---- import: DeleteImportedKeyMaterial ----
        Case {
            name: "delete_imported_key_material_returns_the_key_to_pending_import",
            start: imported,
            now: NOW,
            command: Command::DeleteImportedKeyMaterial {
                key_id: s("k-import"),
            },
            want: Want::Ok(|_, st| {
                let key = &st.keys["k-import"];
                assert_eq!(key.state, KeyState::PendingImport);
                assert!(key.materials.is_empty());
                assert_eq!(key.import.valid_to, None);
                assert_eq!(key.import.expiration_model, None);
                // Kept, so only the same material can come back.
                assert_eq!(key.import.fingerprint, Some(vec![1; 32]));
            }),
            changes: vec![k("k-import")],
        },
        Case {
            name: "delete_imported_key_material_keeps_a_key_pending_deletion_pending",
            start: imported_pending_deletion,
            now: NOW,
            command: Command::DeleteImportedKeyMaterial {
                key_id: s("k-import"),
            },
            want: Want::Ok(|_, st| {
                let key = &st.keys["k-import"];
                assert_eq!(key.state, KeyState::PendingDeletion);
                assert!(key.materials.is_empty());
            }),
            changes: vec![k("k-import")],
        },
        Case {
            name: "delete_imported_key_material_refuses_keys_with_generated_material",
            start: world,
            now: NOW,
            command: Command::DeleteImportedKeyMaterial {
                key_id: s("k-disabled"),
            },
            want: Want::Err(DomainError::UnsupportedOperation(format!(
                "{} origin is AWS_KMS which is not valid for this operation.",
                arn("k-disabled")
            ))),
            changes: vec![],
        },
        // ---- import: ExpireImportedMaterial (the leader's scheduler) ----
        Case {
            name: "expire_imported_material_removes_material_past_valid_to",
            start: imported,
            now: NOW + 10 * DAY,
            command: Command::ExpireImportedMaterial {
                key_id: s("k-import"),
            },
            want: Want::Ok(|_, st| {
                let key = &st.keys["k-import"];
                assert_eq!(key.state, KeyState::PendingImport);
                assert!(key.materials.is_empty());
                assert_eq!(key.import.fingerprint, Some(vec![1; 32]));
            }),
            changes: vec![k("k-import")],
        },
        Case {
            name: "expire_imported_material_is_a_no_op_before_valid_to",
            start: imported,
            now: NOW + 10 * DAY - 1,
            command: Command::ExpireImportedMaterial {
                key_id: s("k-import"),
            },
            want: Want::Ok(|out, st| {
                assert_eq!(*out, CommandOutput::Done);
                assert_eq!(st.keys["k-import"].state, KeyState::Enabled);
            }),
            changes: vec![],
        },
        Case {
            name: "expire_imported_material_is_a_no_op_for_material_that_does_not_expire",
            start: imported_disabled,
            now: NOW + 1000 * DAY,
            command: Command::ExpireImportedMaterial {
                key_id: s("k-import"),
            },
            want: Want::Ok(|_, st| {
                assert_eq!(st.keys["k-import"].materials.len(), 1);
            }),
            changes: vec![],
        },
        Case {
            name: "expire_imported_material_is_a_no_op_for_an_unknown_key",
            start: world,
            now: NOW,
            command: Command::ExpireImportedMaterial { key_id: s("nope") },
            want: Want::Ok(|out, _| assert_eq!(*out, CommandOutput::Done)),
            changes: vec![],
        },
        // ---- DeleteDueKey and grants ----
        Case {
            name: "delete_due_key_also_deletes_the_keys_grants",
            start: with_grants,
            now: 10 * DAY,
            command: Command::DeleteDueKey {
                key_id: s("k-pending"),
            },
            want: Want::Ok(|_, st| {
                let left: Vec<_> = st.grants.keys().map(|(_, g)| g.as_str()).collect();
                assert_eq!(left, vec!["g1", "g2"]);
            }),
            changes: vec![
                k("k-pending"),
                a("alias/old"),
                a("alias/older"),
                g("k-pending", "g3"),
            ],
        },
        // ---- CreateGrant ----
        Case {
            name: "create_grant_stores_the_grant_with_the_keys_identity_and_the_time",
            start: world,
            now: NOW,
            command: Command::CreateGrant {
                grant: GrantRecord {
                    key_arn: s("arn:aws:kms:us-east-1:999999999999:key/elsewhere"),
                    account_id: s(OTHER),
                    creation_date: 0,
                    ..grant_on("k-enabled", "gnew", &[Op::Decrypt])
                },
            },
            want: Want::Ok(|out, st| {
                let stored = &st.grants[&(s("k-enabled"), s("gnew"))];
                assert_eq!(stored.key_arn, arn("k-enabled"));
                assert_eq!(stored.account_id, ACCT);
                assert_eq!(stored.creation_date, NOW);
                assert_eq!(out, &CommandOutput::Grant(stored.clone()));
            }),
            changes: vec![g("k-enabled", "gnew")],
        },
        Case {
            name: "create_grant_drops_duplicate_operations_keeping_their_order",
            start: world,
            now: NOW,
            command: Command::CreateGrant {
                grant: grant_on(
                    "k-enabled",
                    "gnew",
                    &[Op::Encrypt, Op::Decrypt, Op::Encrypt],
                ),
            },
            want: Want::Ok(|_, st| {
                let ops = &st.grants[&(s("k-enabled"), s("gnew"))].operations;
                assert_eq!(ops, &vec![Op::Encrypt, Op::Decrypt]);
            }),
            changes: vec![g("k-enabled", "gnew")],
        },
        Case {
            name: "create_grant_accepts_a_disabled_key",
            start: world,
            now: NOW,
            command: Command::CreateGrant {
                grant: grant_on("k-disabled", "gnew", &[Op::Decrypt]),
            },
            want: Want::Ok(|_, st| assert_eq!(st.grants.len(), 1)),
            changes: vec![g("k-disabled", "gnew")],
        },
        Case {
            name: "create_grant_refuses_a_key_pending_deletion",
            start: world,
            now: NOW,
            command: Command::CreateGrant {
                grant: grant_on("k-pending", "gnew", &[Op::Decrypt]),
            },
            want: Want::Err(DomainError::InvalidState(format!(
                "{} is pending deletion.",
                arn("k-pending")
            ))),
            changes: vec![],
        },
        Case {
            name: "create_grant_refuses_an_unknown_key",
            start: world,
            now: NOW,
            command: Command::CreateGrant {
                grant: grant_on("nope", "gnew", &[Op::Decrypt]),
            },
            want: Want::Err(DomainError::NotFound(s("Key 'nope' does not exist"))),
            changes: vec![],
        },
        Case {
            name: "create_grant_with_the_same_name_and_parameters_returns_the_existing_grant",
            start: with_grants,
            now: NOW,
            command: Command::CreateGrant {
                grant: GrantRecord {
                    name: Some(s("app-grant")),
                    token_nonce: [9; 16],
                    // Same operations in another order.
                    ..grant_on("k-enabled", "gother", &[Op::Encrypt, Op::Decrypt])
                },
            },
            want: Want::Ok(|out, st| {
                assert_eq!(st, &with_grants());
                let CommandOutput::Grant(existing) = out else {
                    panic!("expected a grant, got {out:?}");
                };
                assert_eq!(existing.grant_id, "g1");
                assert_eq!(existing.token_nonce, [7; 16]);
            }),
            changes: vec![],
        },
        Case {
            name: "create_grant_with_the_same_name_but_other_operations_creates_a_new_grant",
            start: with_grants,
            now: NOW,
            command: Command::CreateGrant {
                grant: GrantRecord {
                    name: Some(s("app-grant")),
                    ..grant_on("k-enabled", "gother", &[Op::Decrypt])
                },
            },
            want: Want::Ok(|_, st| assert_eq!(st.grants.len(), 4)),
            changes: vec![g("k-enabled", "gother")],
        },
        Case {
            name: "create_grant_of_an_identical_unnamed_grant_creates_a_second_one",
            start: with_grants,
            now: NOW,
            command: Command::CreateGrant {
                grant: GrantRecord {
                    retiring_principal: Some(s(RETIRER)),
                    ..grant_on("k-enabled", "gother", &[Op::DescribeKey, Op::RetireGrant])
                },
            },
            want: Want::Ok(|_, st| {
                assert!(st.grants.contains_key(&(s("k-enabled"), s("g2"))));
                assert!(st.grants.contains_key(&(s("k-enabled"), s("gother"))));
            }),
            changes: vec![g("k-enabled", "gother")],
        },
        Case {
            name: "create_grant_applied_twice_returns_the_first_result",
            start: with_grants,
            now: NOW,
            command: Command::CreateGrant {
                grant: GrantRecord {
                    retiring_principal: Some(s(RETIRER)),
                    ..grant_on("k-enabled", "g2", &[Op::DescribeKey, Op::RetireGrant])
                },
            },
            want: Want::Ok(|out, st| {
                assert_eq!(st, &with_grants());
                assert_eq!(
                    out,
                    &CommandOutput::Grant(st.grants[&(s("k-enabled"), s("g2"))].clone())
                );
            }),
            changes: vec![],
        },
        Case {
            name: "create_grant_refuses_another_grant_reusing_an_id",
            start: with_grants,
            now: NOW,
            command: Command::CreateGrant {
                grant: grant_on("k-enabled", "g2", &[Op::Encrypt]),
            },
            want: Want::Err(DomainError::AlreadyExists(format!(
                "Grant g2 already exists on key {}",
                arn("k-enabled")
            ))),
            changes: vec![],
        },
        Case {
            name: "create_grant_refuses_the_grant_after_the_fifty_thousandth",
            start: || {
                let mut st = world();
                for i in 0..MAX_GRANTS_PER_KEY {
                    insert_grant(
                        &mut st,
                        grant_on("k-enabled", &format!("g{i:05}"), &[Op::Decrypt]),
                    );
                }
                st
            },
            now: NOW,
            command: Command::CreateGrant {
                grant: grant_on("k-enabled", "gnew", &[Op::Decrypt]),
            },
            want: Want::Err(DomainError::LimitExceeded(s(
                "A KMS key can have at most 50000 grants",
            ))),
            changes: vec![],
        },
        Case {
            name: "create_grant_refuses_no_operations",
            start: world,
            now: NOW,
            command: Command::CreateGrant {
                grant: grant_on("k-enabled", "gnew", &[]),
            },
            want: Want::Err(DomainError::Validation(s(
                "1 validation error detected: Value '[]' at 'operations' failed to satisfy \
                 constraint: Member must have length greater than or equal to 1",
            ))),
            changes: vec![],
        },
        Case {
            name: "create_grant_refuses_sign_on_a_symmetric_key",
            start: world,
            now: NOW,
            command: Command::CreateGrant {
                grant: grant_on(
                    "k-enabled",
                    "gnew",
                    &[Op::Decrypt, Op::Sign, Op::GenerateMac],
                ),
            },
            want: Want::Err(DomainError::Validation(s(
                "Grant operations [Sign, GenerateMac] are not valid for a KMS key with KeySpec \
                 SYMMETRIC_DEFAULT and KeyUsage ENCRYPT_DECRYPT",
            ))),
            changes: vec![],
        },
        Case {
            name: "create_grant_refuses_generate_data_key_on_an_rsa_key",
            start: with_rsa_key,
            now: NOW,
            command: Command::CreateGrant {
                grant: grant_on("k-rsa", "gnew", &[Op::GenerateDataKey]),
            },
            want: Want::Err(DomainError::Validation(s(
                "Grant operations [GenerateDataKey] are not valid for a KMS key with KeySpec \
                 RSA_2048 and KeyUsage ENCRYPT_DECRYPT",
            ))),
            changes: vec![],
        },
        Case {
            name: "create_grant_accepts_encrypt_and_get_public_key_on_an_rsa_encryption_key",
            start: with_rsa_key,
            now: NOW,
            command: Command::CreateGrant {
                grant: grant_on(
                    "k-rsa",
                    "gnew",
                    &[Op::Encrypt, Op::Decrypt, Op::GetPublicKey, Op::CreateGrant],
                ),
            },
            want: Want::Ok(|_, st| assert_eq!(st.grants.len(), 1)),
            changes: vec![g("k-rsa", "gnew")],
        },
        Case {
            name: "create_grant_refuses_constraints_on_an_rsa_key",
            start: with_rsa_key,
            now: NOW,
            command: Command::CreateGrant {
                grant: GrantRecord {
                    constraints: subset(&[("a", "b")]),
                    ..grant_on("k-rsa", "gnew", &[Op::Decrypt])
                },
            },
            want: Want::Err(DomainError::Validation(s(
                "Grant constraints are not supported for KMS keys with KeySpec RSA_2048; only \
                 symmetric encryption KMS keys take an encryption context",
            ))),
            changes: vec![],
        },
        Case {
            name: "create_grant_accepts_constraints_with_management_operations_they_ignore",
            start: world,
            now: NOW,
            command: Command::CreateGrant {
                grant: GrantRecord {
                    constraints: subset(&[("a", "b")]),
                    ..grant_on(
                        "k-enabled",
                        "gnew",
                        &[
                            Op::Decrypt,
                            Op::GenerateDataKeyPair,
                            Op::DescribeKey,
                            Op::RetireGrant,
                            Op::CreateGrant,
                        ],
                    )
                },
            },
            want: Want::Ok(|_, st| {
                assert_eq!(
                    st.grants[&(s("k-enabled"), s("gnew"))].constraints,
                    subset(&[("a", "b")])
                );
            }),
            changes: vec![g("k-enabled", "gnew")],
        },
        Case {
            name: "create_grant_refuses_more_than_eight_constraint_pairs",
            start: world,
            now: NOW,
            command: Command::CreateGrant {
                grant: GrantRecord {
                    constraints: Some(GrantConstraints {
                        encryption_context_equals: Some(
                            (0..9).map(|i| (format!("k{i}"), s("v"))).collect(),
                        ),
                        encryption_context_subset: None,
                    }),
                    ..grant_on("k-enabled", "gnew", &[Op::Decrypt])
                },
            },
            want: Want::Err(DomainError::Validation(s(
                "EncryptionContextEquals can have at most 8 encryption context pairs",
            ))),
            changes: vec![],
        },
        Case {
            name: "create_grant_refuses_a_constraint_value_over_384_characters",
            start: world,
            now: NOW,
            command: Command::CreateGrant {
                grant: GrantRecord {
                    constraints: Some(GrantConstraints {
                        encryption_context_equals: None,
                        encryption_context_subset: Some(
                            [(s("k"), "v".repeat(385))].into_iter().collect(),
                        ),
                    }),
                    ..grant_on("k-enabled", "gnew", &[Op::Decrypt])
                },
            },
            want: Want::Err(DomainError::Validation(s(
                "EncryptionContextSubset values must be at most 384 characters long",
            ))),
            changes: vec![],
        },
        Case {
            name: "create_grant_refuses_a_name_outside_the_pattern",
            start: world,
            now: NOW,
            command: Command::CreateGrant {
                grant: GrantRecord {
                    name: Some(s("my grant")),
                    ..grant_on("k-enabled", "gnew", &[Op::Decrypt])
                },
            },
            want: Want::Err(DomainError::Validation(s(
                "1 validation error detected: Value 'my grant' at 'name' failed to satisfy \
                 constraint: Member must satisfy regular expression pattern: ^[a-zA-Z0-9:/_-]+$",
            ))),
            changes: vec![],
        },
        Case {
            name: "create_grant_refuses_a_name_over_256_characters",
            start: world,
            now: NOW,
            command: Command::CreateGrant {
                grant: GrantRecord {
                    name: Some("n".repeat(257)),
                    ..grant_on("k-enabled", "gnew", &[Op::Decrypt])
                },
            },
            want: Want::Err(DomainError::Validation(format!(
                "1 validation error detected: Value '{}' at 'name' failed to satisfy \
                 constraint: Member must have length between 1 and 256",
                "n".repeat(257)
            ))),
            changes: vec![],
        },
        Case {
            name: "create_grant_refuses_an_empty_grantee",
            start: world,
            now: NOW,
            command: Command::CreateGrant {
                grant: GrantRecord {
                    grantee_principal: String::new(),
                    ..grant_on("k-enabled", "gnew", &[Op::Decrypt])
                },
            },
            want: Want::Err(DomainError::Validation(s(
                "1 validation error detected: Value '' at 'granteePrincipal' failed to satisfy \
                 constraint: Member must have length between 1 and 256",
            ))),
            changes: vec![],
        },
        Case {
            name: "create_grant_refuses_a_grant_id_that_is_not_alphanumeric",
            start: world,
            now: NOW,
            command: Command::CreateGrant {
                grant: grant_on("k-enabled", "g/1", &[Op::Decrypt]),
            },
            want: Want::Err(DomainError::Validation(s(
                "1 validation error detected: Value 'g/1' at 'grantId' failed to satisfy \
                 constraint: Member must be 1 to 128 letters and digits",
            ))),
            changes: vec![],
        },
        // ---- RetireGrant / RevokeGrant ----
        Case {
            name: "retire_grant_removes_the_grant",
            start: with_grants,
            now: NOW,
            command: Command::RetireGrant {
                key_id: s("k-enabled"),
                grant_id: s("g2"),
            },
            want: Want::Ok(|out, st| {
                assert_eq!(out, &CommandOutput::Done);
                assert!(!st.grants.contains_key(&(s("k-enabled"), s("g2"))));
                assert_eq!(st.grants.len(), 2);
            }),
            changes: vec![g("k-enabled", "g2")],
        },
        Case {
            name: "retire_grant_works_on_a_key_pending_deletion",
            start: with_grants,
            now: NOW,
            command: Command::RetireGrant {
                key_id: s("k-pending"),
                grant_id: s("g3"),
            },
            want: Want::Ok(|_, st| assert_eq!(st.grants.len(), 2)),
            changes: vec![g("k-pending", "g3")],
        },
        Case {
            name: "retire_grant_refuses_an_unknown_grant_id",
            start: with_grants,
            now: NOW,
            command: Command::RetireGrant {
                key_id: s("k-enabled"),
                grant_id: s("gnope"),
            },
            want: Want::Err(DomainError::InvalidGrantId(format!(
                "Grant ID gnope is not valid for key {}",
                arn("k-enabled")
            ))),
            changes: vec![],
        },
        Case {
            name: "revoke_grant_removes_the_grant",
            start: with_grants,
            now: NOW,
            command: Command::RevokeGrant {
                key_id: s("k-enabled"),
                grant_id: s("g1"),
            },
            want: Want::Ok(|_, st| {
                assert!(!st.grants.contains_key(&(s("k-enabled"), s("g1"))));
            }),
            changes: vec![g("k-enabled", "g1")],
        },
        Case {
            name: "revoke_grant_refuses_a_grant_of_another_key",
            start: with_grants,
            now: NOW,
            command: Command::RevokeGrant {
                key_id: s("k-enabled"),
                grant_id: s("g3"),
            },
            want: Want::Err(DomainError::InvalidGrantId(format!(
                "Grant ID g3 is not valid for key {}",
                arn("k-enabled")
            ))),
            changes: vec![],
        },
        Case {
            name: "revoke_grant_refuses_an_unknown_key",
            start: with_grants,
            now: NOW,
            command: Command::RevokeGrant {
                key_id: s("nope"),
                grant_id: s("g1"),
            },
            want: Want::Err(DomainError::NotFound(s("Key 'nope' does not exist"))),
            changes: vec![],
        },
        // ---- identities, their policies, access keys ----
        Case {
            name: "delete_identity_removes_it_and_only_its_access_keys",
            start: with_grants,
            now: NOW,
            command: Command::DeleteIdentity { arn: s(ALICE) },
            want: Want::Ok(|out, st| {
                assert_eq!(out, &CommandOutput::Done);
                assert!(!st.identities.contains_key(ALICE));
                let keys: Vec<_> = st.access_keys.keys().map(String::as_str).collect();
                assert_eq!(keys, vec!["AKIA3"]);
                // Grants are the key's: they stay.
                assert_eq!(st.grants.len(), 3);
            }),
            changes: vec![
                Change::Identity(s(ALICE)),
                Change::AccessKey(s("AKIA1")),
                Change::AccessKey(s("AKIA2")),
            ],
        },
        Case {
            name: "delete_identity_refuses_an_unknown_identity",
            start: with_grants,
            now: NOW,
            command: Command::DeleteIdentity {
                arn: s("arn:aws:iam::1:user/x"),
            },
            want: Want::Err(DomainError::NotFound(s(
                "Identity 'arn:aws:iam::1:user/x' does not exist",
            ))),
            changes: vec![],
        },
        Case {
            name: "put_identity_policy_adds_a_policy",
            start: with_grants,
            now: NOW,
            command: Command::PutIdentityPolicy {
                arn: s(BOB),
                name: s("kms"),
                document: s(r#"{"Version":"2012-10-17","Statement":[]}"#),
            },
            want: Want::Ok(|_, st| {
                assert_eq!(
                    st.identities[BOB].policies["kms"],
                    r#"{"Version":"2012-10-17","Statement":[]}"#
                );
            }),
            changes: vec![Change::Identity(s(BOB))],
        },
        Case {
            name: "put_identity_policy_replaces_a_policy_of_the_same_name_even_at_the_limit",
            start: alice_with_ten_policies,
            now: NOW,
            command: Command::PutIdentityPolicy {
                arn: s(ALICE),
                name: s("p9"),
                document: s("{\"new\":1}"),
            },
            want: Want::Ok(|_, st| {
                assert_eq!(st.identities[ALICE].policies.len(), 10);
                assert_eq!(st.identities[ALICE].policies["p9"], "{\"new\":1}");
            }),
            changes: vec![Change::Identity(s(ALICE))],
        },
        Case {
            name: "put_identity_policy_refuses_an_eleventh_policy",
            start: alice_with_ten_policies,
            now: NOW,
            command: Command::PutIdentityPolicy {
                arn: s(ALICE),
                name: s("p10"),
                document: s("{}"),
            },
            want: Want::Err(DomainError::LimitExceeded(s(
                "An identity can have at most 10 inline policies",
            ))),
            changes: vec![],
        },
        Case {
            name: "put_identity_policy_refuses_an_unknown_identity",
            start: with_grants,
            now: NOW,
            command: Command::PutIdentityPolicy {
                arn: s("arn:aws:iam::1:user/x"),
                name: s("p"),
                document: s("{}"),
            },
            want: Want::Err(DomainError::NotFound(s(
                "Identity 'arn:aws:iam::1:user/x' does not exist",
            ))),
            changes: vec![],
        },
        Case {
            name: "delete_identity_policy_removes_it",
            start: with_grants,
            now: NOW,
            command: Command::DeleteIdentityPolicy {
                arn: s(ALICE),
                name: s("read"),
            },
            want: Want::Ok(|_, st| assert!(st.identities[ALICE].policies.is_empty())),
            changes: vec![Change::Identity(s(ALICE))],
        },
        Case {
            name: "delete_identity_policy_refuses_an_unknown_policy",
            start: with_grants,
            now: NOW,
            command: Command::DeleteIdentityPolicy {
                arn: s(ALICE),
                name: s("write"),
            },
            want: Want::Err(DomainError::NotFound(format!(
                "Policy 'write' does not exist on identity '{ALICE}'"
            ))),
            changes: vec![],
        },
        Case {
            name: "delete_identity_policy_refuses_an_unknown_identity",
            start: with_grants,
            now: NOW,
            command: Command::DeleteIdentityPolicy {
                arn: s("arn:aws:iam::1:user/x"),
                name: s("read"),
            },
            want: Want::Err(DomainError::NotFound(s(
                "Identity 'arn:aws:iam::1:user/x' does not exist",
            ))),
            changes: vec![],
        },
        Case {
            name: "delete_access_key_removes_it",
            start: with_grants,
            now: NOW,
            command: Command::DeleteAccessKey {
                access_key_id: s("AKIA2"),
            },
            want: Want::Ok(|_, st| {
                assert!(!st.access_keys.contains_key("AKIA2"));
                assert_eq!(st.access_keys.len(), 2);
            }),
            changes: vec![Change::AccessKey(s("AKIA2"))],
        },
        Case {
            name: "delete_access_key_refuses_an_unknown_access_key",
            start: with_grants,
            now: NOW,
            command: Command::DeleteAccessKey {
                access_key_id: s("AKIANOPE"),
            },
            want: Want::Err(DomainError::NotFound(s(
                "Access key 'AKIANOPE' does not exist",
            ))),
            changes: vec![],
        },
    ]
}

#[test]
fn every_command_behaves_as_its_table_row_says() {
    let cases = cases();
    let mut names: Vec<_> = cases.iter().map(|c| c.name).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), cases.len(), "case names must be unique");

    for case in cases {
        let before = (case.start)();
        let mut state = before.clone();
        let proposal = Proposal {
            now: case.now,
            command: case.command.clone(),
        };
        let (result, changes) = apply(&mut state, &proposal);
        assert_eq!(changes, case.changes, "{}: changes", case.name);
        match (&case.want, result) {
            (Want::Ok(check), Ok(out)) => check(&out, &state),
            (Want::Err(want), Err(got)) => {
                assert_eq!(&got, want, "{}: error", case.name);
                assert_eq!(
                    state, before,
                    "{}: a refused command changed the state",
                    case.name
                );
            }
            (Want::Ok(_), Err(e)) => panic!("{}: expected success, got {e:?}", case.name),
            (Want::Err(e), Ok(out)) => panic!("{}: expected {e:?}, got {out:?}", case.name),
        }

        // Determinism: a second replica applying the same proposal ends up identical.
        let mut replica = before.clone();
        let again = apply(&mut replica, &proposal);
        assert_eq!(replica, state, "{}: replicas diverged", case.name);
        assert_eq!(again.1, case.changes, "{}: replica changes", case.name);
    }
}

#[test]
fn every_change_names_an_entity_whose_current_value_storage_can_write() {
    // After a successful command, each Change names something that either exists (write it)
    // or is gone (delete it) - never an entity the command did not touch.
    let mut st = with_grants();
    let (res, changes) = apply(
        &mut st,
        &Proposal {
            now: 10 * DAY,
            command: Command::DeleteDueKey {
                key_id: s("k-pending"),
            },
        },
    );
    res.unwrap();
    assert!(changes.contains(&g("k-pending", "g3")));
    for c in &changes {
        match c {
            Change::Key(id) => assert!(!st.keys.contains_key(id)),
            Change::Alias(acct, name) => {
                assert!(!st.aliases.contains_key(&(acct.clone(), name.clone())))
            }
            Change::Grant(key_id, grant_id) => {
                assert!(!st.grants.contains_key(&(key_id.clone(), grant_id.clone())))
            }
            other => panic!("unexpected change {other:?}"),
        }
    }
}

#[test]
fn delete_due_key_is_idempotent_across_leader_changes() {
    let mut st = world();
    let p = Proposal {
        now: 11 * DAY,
        command: Command::DeleteDueKey {
            key_id: s("k-pending"),
        },
    };
    let (first, first_changes) = apply(&mut st, &p);
    let after_first = st.clone();
    let (second, second_changes) = apply(&mut st, &p);
    assert_eq!(first, Ok(CommandOutput::Done));
    assert_eq!(second, Ok(CommandOutput::Done));
    assert!(!first_changes.is_empty());
    assert!(second_changes.is_empty());
    assert_eq!(st, after_first);
}

#[test]
fn schedule_then_cancel_then_enable_restores_a_usable_key() {
    let mut st = world();
    let steps = [
        Command::ScheduleKeyDeletion {
            key_id: s("k-enabled"),
            pending_window_days: 7,
        },
        Command::CancelKeyDeletion {
            key_id: s("k-enabled"),
        },
        Command::SetKeyEnabled {
            key_id: s("k-enabled"),
            enabled: true,
        },
    ];
    for command in steps {
        apply(&mut st, &Proposal { now: NOW, command }).0.unwrap();
    }
    let key = &st.keys["k-enabled"];
    assert_eq!(key.state, KeyState::Enabled);
    assert_eq!(key.deletion_date, None);
    // Its alias survived the round trip.
    assert_eq!(
        st.aliases[&(s(ACCT), s("alias/app"))].target_key_id,
        "k-enabled"
    );
}

#[test]
fn deletion_date_saturates_instead_of_overflowing() {
    let mut st = world();
    let p = Proposal {
        now: u64::MAX - 1,
        command: Command::ScheduleKeyDeletion {
            key_id: s("k-enabled"),
            pending_window_days: 30,
        },
    };
    apply(&mut st, &p).0.unwrap();
    assert_eq!(st.keys["k-enabled"].deletion_date, Some(u64::MAX));
}

mod random_sequences {
    use super::*;
    use proptest::prelude::*;

    const KEY_IDS: [&str; 4] = ["k-enabled", "k-pending", "k-import", "k-x"];
    const ALIASES: [&str; 3] = ["alias/app", "alias/old", "alias/new"];
    const ACCOUNTS: [&str; 2] = [ACCT, OTHER];

    fn command() -> impl Strategy<Value = Command> {
        let id = proptest::sample::select(KEY_IDS.to_vec()).prop_map(s);
        let alias_name = proptest::sample::select(ALIASES.to_vec()).prop_map(s);
        let account = proptest::sample::select(ACCOUNTS.to_vec()).prop_map(s);
        prop_oneof![
            id.clone().prop_map(|id| Command::CreateKey {
                record: key(&id, KeyState::Enabled)
            }),
            (id.clone(), any::<bool>())
                .prop_map(|(key_id, enabled)| Command::SetKeyEnabled { key_id, enabled }),
            (id.clone(), 0u32..40).prop_map(|(key_id, pending_window_days)| {
                Command::ScheduleKeyDeletion {
                    key_id,
                    pending_window_days,
                }
            }),
            id.clone()
                .prop_map(|key_id| Command::CancelKeyDeletion { key_id }),
            id.clone()
                .prop_map(|key_id| Command::DeleteDueKey { key_id }),
            (account.clone(), alias_name.clone(), id.clone()).prop_map(
                |(account_id, alias_name, target_key_id)| Command::CreateAlias {
                    alias_arn: keystore::ids::alias_arn(REGION, &account_id, &alias_name),
                    account_id,
                    alias_name,
                    target_key_id,
                }
            ),
            (account.clone(), alias_name.clone(), id.clone()).prop_map(
                |(account_id, alias_name, target_key_id)| Command::UpdateAlias {
                    account_id,
                    alias_name,
                    target_key_id,
                }
            ),
            (account, alias_name).prop_map(|(account_id, alias_name)| Command::DeleteAlias {
                account_id,
                alias_name
            }),
            (id.clone(), 0usize..30).prop_map(|(key_id, n)| Command::TagResource {
                key_id,
                tags: tags(n, "r"),
            }),
            (id, 0usize..5).prop_map(|(key_id, n)| Command::UntagResource {
                key_id,
                tag_keys: tags(n, "r").into_iter().map(|(k, _)| k).collect(),
            }),
        ]
    }

    proptest! {
        #[test]
        fn any_command_sequence_keeps_the_state_consistent(
            steps in proptest::collection::vec((command(), 0u64..40), 1..40)
        ) {
            let mut st = world();
            for (command, day) in steps {
                let before = st.clone();
                let (result, changes) =
                    apply(&mut st, &Proposal { now: day * DAY, command: command.clone() });
                let mut sorted = changes.clone();
                sorted.sort();
                sorted.dedup();
                prop_assert_eq!(&changes, &sorted, "changes sorted and unique");
                if result.is_err() {
                    prop_assert_eq!(&st, &before, "refused {:?} changed the state", command);
                    prop_assert!(changes.is_empty());
                }
                for ((account, _), a) in &st.aliases {
                    let target = st.keys.get(&a.target_key_id);
                    prop_assert!(target.is_some(), "alias {} dangles", a.alias_name);
                    prop_assert_eq!(&target.unwrap().account_id, account);
                }
                for k in st.keys.values() {
                    let pending = k.state == KeyState::PendingDeletion;
                    prop_assert_eq!(pending, k.deletion_date.is_some(), "{}", k.key_id);
                    prop_assert_eq!(pending, k.pending_deletion_window_days.is_some());
                    prop_assert!(k.tags.len() <= 50);
                }
            }
        }
    }
}

#[test]
fn rotate_key_is_idempotent_across_leader_changes() {
    // An old leader and a new one both propose the rotation they saw due: one rotation.
    let mut st = rotating();
    let p = Proposal {
        now: NOW + 90 * DAY,
        command: Command::RotateKey {
            key_id: s("k-enabled"),
            to_version: 2,
            rotation_type: RotationType::Automatic,
        },
    };
    let (first, first_changes) = apply(&mut st, &p);
    assert!(matches!(first, Ok(CommandOutput::Key(_))));
    assert_eq!(first_changes, vec![k("k-enabled")]);
    // A front prepares version 3 before the stale proposal lands: still a no-op.
    apply(
        &mut st,
        &Proposal {
            now: NOW + 90 * DAY,
            command: Command::PrepareNextMaterial {
                key_id: s("k-enabled"),
                material: mv(3, 3),
            },
        },
    )
    .0
    .unwrap();
    let after_first = st.clone();
    let (second, second_changes) = apply(&mut st, &p);
    assert_eq!(second, Ok(CommandOutput::Done));
    assert!(second_changes.is_empty());
    assert_eq!(st, after_first);
    assert_eq!(st.keys["k-enabled"].rotation.history.len(), 1);
}

#[test]
fn the_leader_finds_exactly_the_rotations_that_are_due() {
    use keystore::rotation::{awaiting_material, due_rotations};
    let rotate = |to_version, rotation_type| Command::RotateKey {
        key_id: s("k-enabled"),
        to_version,
        rotation_type,
    };
    assert!(due_rotations(&rotating(), NOW + 90 * DAY - 1).is_empty());
    assert_eq!(
        due_rotations(&rotating(), NOW + 90 * DAY),
        vec![rotate(2, RotationType::Automatic)]
    );
    assert_eq!(
        due_rotations(&on_demand_pending(), NOW),
        vec![rotate(2, RotationType::OnDemand)]
    );
    assert!(due_rotations(&rotating_but_disabled(), NOW + 90 * DAY).is_empty());
    // Due but nothing prepared: the leader waits, and fronts are asked for material.
    assert!(due_rotations(&rotating_without_material(), NOW + 90 * DAY).is_empty());
    assert_eq!(
        awaiting_material(&rotating_without_material()),
        vec![s("k-enabled")]
    );
    assert!(awaiting_material(&rotating()).is_empty());
    assert!(awaiting_material(&world()).is_empty());
    // The same answer for named keys only (what a front asks after keys changed).
    let among = |st: &State, ids: &[&str]| {
        keystore::query::query(
            st,
            &keystore::command::Query::KeysAwaitingMaterialAmong {
                key_ids: ids.iter().map(|i| s(i)).collect(),
            },
        )
    };
    assert_eq!(
        among(&rotating_without_material(), &["k-enabled", "no-such-key"]),
        keystore::command::QueryOutput::KeyIds(vec![s("k-enabled")])
    );
    assert_eq!(
        among(&rotating_without_material(), &["no-such-key"]),
        keystore::command::QueryOutput::KeyIds(vec![])
    );
    assert_eq!(
        among(&rotating(), &["k-enabled"]),
        keystore::command::QueryOutput::KeyIds(vec![])
    );
}

#[test]
fn a_key_rotated_many_times_keeps_every_version_and_lists_each_rotation_once() {
    let mut st = world();
    let mut now = NOW;
    let step = |st: &mut State, now: u64, command: Command| {
        apply(st, &Proposal { now, command }).0.unwrap();
    };
    step(
        &mut st,
        now,
        Command::EnableKeyRotation {
            key_id: s("k-enabled"),
            rotation_period_days: 90,
            prepared: Some(mv(2, 2)),
        },
    );
    for version in 2..=4u32 {
        if version > 2 {
            step(
                &mut st,
                now,
                Command::PrepareNextMaterial {
                    key_id: s("k-enabled"),
                    material: mv(version, version as u8),
                },
            );
        }
        step(
            &mut st,
            now,
            Command::StartOnDemandRotation {
                key_id: s("k-enabled"),
                prepared: None,
            },
        );
        for command in keystore::rotation::due_rotations(&st, now) {
            step(&mut st, now, command);
        }
        now += DAY;
    }
    // Automatic rotation at its date, after a front prepared version 5.
    step(
        &mut st,
        now,
        Command::PrepareNextMaterial {
            key_id: s("k-enabled"),
            material: mv(5, 5),
        },
    );
    let due = NOW + 90 * DAY;
    for command in keystore::rotation::due_rotations(&st, due) {
        step(&mut st, due, command);
    }
    let key = &st.keys["k-enabled"];
    assert_eq!(key.current_material_version, 5);
    let versions: Vec<u32> = key.materials.iter().map(|m| m.version).collect();
    assert_eq!(versions, vec![1, 2, 3, 4, 5]);
    let types: Vec<_> = key
        .rotation
        .history
        .iter()
        .map(|h| (h.version, h.rotation_type))
        .collect();
    assert_eq!(
        types,
        vec![
            (2, RotationType::OnDemand),
            (3, RotationType::OnDemand),
            (4, RotationType::OnDemand),
            (5, RotationType::Automatic),
        ]
    );
    assert_eq!(key.rotation.next_rotation_date, Some(NOW + 180 * DAY));
}

mod rotation_sequences {
    use super::*;
    use keystore::rotation::{due_rotations, next_version};
    use proptest::prelude::*;

    const KEY_IDS: [&str; 4] = ["k-enabled", "k-disabled", "k-pending", "k-import"];

    fn command() -> impl Strategy<Value = Command> {
        let id = proptest::sample::select(KEY_IDS.to_vec()).prop_map(s);
        // Material for versions near the front of every key's history, stale ones included.
        let material = (1u32..6, any::<u8>()).prop_map(|(v, mark)| mv(v, mark));
        prop_oneof![
            (
                id.clone(),
                80u32..400,
                proptest::option::of(material.clone())
            )
                .prop_map(|(key_id, rotation_period_days, prepared)| {
                    Command::EnableKeyRotation {
                        key_id,
                        rotation_period_days,
                        prepared,
                    }
                }),
            id.clone()
                .prop_map(|key_id| Command::DisableKeyRotation { key_id }),
            (id.clone(), material.clone())
                .prop_map(|(key_id, material)| Command::PrepareNextMaterial { key_id, material }),
            (id.clone(), proptest::option::of(material))
                .prop_map(|(key_id, prepared)| Command::StartOnDemandRotation { key_id, prepared }),
            (id.clone(), 1u32..6, any::<bool>()).prop_map(|(key_id, to_version, auto)| {
                Command::RotateKey {
                    key_id,
                    to_version,
                    rotation_type: if auto {
                        RotationType::Automatic
                    } else {
                        RotationType::OnDemand
                    },
                }
            }),
            (id.clone(), any::<bool>())
                .prop_map(|(key_id, enabled)| Command::SetKeyEnabled { key_id, enabled }),
            id.prop_map(|key_id| Command::CancelKeyDeletion { key_id }),
        ]
    }

    proptest! {
        #[test]
        fn rotation_keeps_every_version_and_never_rotates_twice(
            steps in proptest::collection::vec((command(), 0u64..400), 1..60)
        ) {
            let mut st = world();
            for (command, day) in steps {
                let now = day * DAY;
                let before = st.clone();
                let (result, changes) = apply(&mut st, &Proposal { now, command: command.clone() });
                if result.is_err() {
                    prop_assert_eq!(&st, &before, "refused {:?} changed the state", command);
                    prop_assert!(changes.is_empty());
                }
                // What the leader proposes is always accepted, and only once.
                for due in due_rotations(&st, now) {
                    let p = Proposal { now, command: due.clone() };
                    let (first, _) = apply(&mut st, &p);
                    prop_assert!(matches!(first, Ok(CommandOutput::Key(_))), "{:?}", due);
                    let after = st.clone();
                    let (_, again) = apply(&mut st, &p);
                    prop_assert!(again.is_empty());
                    prop_assert_eq!(&st, &after);
                }
                for k in st.keys.values() {
                    let versions: Vec<u32> = k.materials.iter().map(|m| m.version).collect();
                    let expected: Vec<u32> = (1..=versions.len() as u32).collect();
                    prop_assert_eq!(&versions, &expected, "{}: versions", k.key_id);
                    if !versions.is_empty() {
                        prop_assert_eq!(k.current_material_version, versions.len() as u32);
                    }
                    if let Some(p) = &k.rotation.prepared {
                        prop_assert_eq!(p.version, next_version(k));
                    }
                    prop_assert_eq!(k.rotation.history.len(), versions.len().saturating_sub(1));
                    let on_demand = k
                        .rotation
                        .history
                        .iter()
                        .filter(|h| h.rotation_type == RotationType::OnDemand)
                        .count();
                    prop_assert!(on_demand <= 10);
                }
            }
        }
    }
}

// ---- import (BYOK) builders and scheduler tests ----

use keystore::import::{ExpirationModel, ImportParameters, WrappingAlgorithm};

fn import_params(token_id: &str, valid_to: u64) -> ImportParameters {
    ImportParameters {
        token_id: token_id.into(),
        wrapping_algorithm: WrappingAlgorithm::RsaesOaepSha256,
        wrapping_key_spec: KeySpec::Rsa2048,
        wrapped_private_key: Wrapped {
            domain_key_version: 1,
            nonce: [3; 12],
            ciphertext: vec![3; 64],
        },
        public_key: vec![0x30, 1, 2],
        valid_to,
    }
}

/// ImportKeyMaterial with token `token_id`, material (and fingerprint) marked by `mark`.
fn import_cmd(token_id: &str, mark: u8, valid_to: Option<u64>) -> Command {
    Command::ImportKeyMaterial {
        key_id: s("k-import"),
        token_id: token_id.into(),
        material: mv(1, mark),
        fingerprint: vec![mark; 32],
        expiration_model: if valid_to.is_some() {
            ExpirationModel::KeyMaterialExpires
        } else {
            ExpirationModel::KeyMaterialDoesNotExpire
        },
        valid_to,
    }
}

/// `k-import` (PendingImport) with import parameters `t1`, valid until `NOW + DAY`.
fn import_ready() -> State {
    let mut st = world();
    st.keys.get_mut("k-import").unwrap().import.parameters = Some(import_params("t1", NOW + DAY));
    st
}

/// `k-import` Enabled with material marked 1 that expires at `NOW + 10 days`.
fn imported() -> State {
    let mut st = import_ready();
    let (res, _) = apply(
        &mut st,
        &Proposal {
            now: NOW,
            command: import_cmd("t1", 1, Some(NOW + 10 * DAY)),
        },
    );
    res.unwrap();
    st
}

/// `k-import` Disabled, with material marked 1 that never expires.
fn imported_disabled() -> State {
    let mut st = import_ready();
    for command in [
        import_cmd("t1", 1, None),
        Command::SetKeyEnabled {
            key_id: s("k-import"),
            enabled: false,
        },
    ] {
        apply(&mut st, &Proposal { now: NOW, command }).0.unwrap();
    }
    st
}

/// `k-import` after material marked 1 was imported and deleted again.
fn imported_then_deleted() -> State {
    let mut st = imported();
    let command = Command::DeleteImportedKeyMaterial {
        key_id: s("k-import"),
    };
    apply(&mut st, &Proposal { now: NOW, command }).0.unwrap();
    st
}

/// `k-import` with material, scheduled for deletion.
fn imported_pending_deletion() -> State {
    let mut st = imported();
    let command = Command::ScheduleKeyDeletion {
        key_id: s("k-import"),
        pending_window_days: 7,
    };
    apply(&mut st, &Proposal { now: NOW, command }).0.unwrap();
    st
}

#[test]
fn the_leader_finds_exactly_the_expired_imports() {
    let st = imported();
    assert!(keystore::import::due_expirations(&st, NOW + 10 * DAY - 1).is_empty());
    assert_eq!(
        keystore::import::due_expirations(&st, NOW + 10 * DAY),
        vec![Command::ExpireImportedMaterial {
            key_id: s("k-import")
        }]
    );
    // Once expired, nothing is due any more; material that never expires is never due.
    let mut after = st.clone();
    let command = Command::ExpireImportedMaterial {
        key_id: s("k-import"),
    };
    let p = Proposal {
        now: NOW + 10 * DAY,
        command,
    };
    apply(&mut after, &p).0.unwrap();
    assert!(keystore::import::due_expirations(&after, NOW + 100 * DAY).is_empty());
    assert!(keystore::import::due_expirations(&imported_disabled(), NOW + 1000 * DAY).is_empty());
    // A second proposal (a new leader, a retry) changes nothing.
    let again = after.clone();
    let (res, changes) = apply(&mut after, &p);
    assert_eq!(res, Ok(CommandOutput::Done));
    assert!(changes.is_empty());
    assert_eq!(after, again);
}

#[test]
fn imported_material_survives_expiry_and_the_same_material_comes_back() {
    let mut st = imported();
    let expire = Proposal {
        now: NOW + 10 * DAY,
        command: Command::ExpireImportedMaterial {
            key_id: s("k-import"),
        },
    };
    apply(&mut st, &expire).0.unwrap();
    let fresh = Proposal {
        now: NOW + 10 * DAY,
        command: Command::PutImportParameters {
            key_id: s("k-import"),
            parameters: import_params("t9", 0),
        },
    };
    apply(&mut st, &fresh).0.unwrap();
    let other = Proposal {
        now: NOW + 10 * DAY,
        command: import_cmd("t9", 2, None),
    };
    assert!(matches!(
        apply(&mut st, &other).0,
        Err(DomainError::IncorrectKeyMaterial(_))
    ));
    let same = Proposal {
        now: NOW + 10 * DAY,
        command: import_cmd("t9", 1, None),
    };
    apply(&mut st, &same).0.unwrap();
    assert_eq!(st.keys["k-import"].state, KeyState::Enabled);
    assert_eq!(st.keys["k-import"].current_material_version, 1);
}

// ---- The audit chain: AppendAudit, AppendDigest, and the leader's service events ----

use keystore::apply::{service_event_id, MAX_AUDIT_BATCH, MAX_AUDIT_EVENT_BYTES};
use keystore::audit::{
    sign_digest, verify, AuditEvent, AuditRecord, AuditSigningKey, ChainHead, DigestBody,
    DigestRecord, EventType,
};

fn append(st: &mut State, events: Vec<String>) -> Result<CommandOutput, DomainError> {
    apply(
        st,
        &Proposal {
            now: NOW,
            command: Command::AppendAudit {
                events,
                usage: None,
            },
        },
    )
    .0
}

fn append_digest(st: &mut State, digest: DigestRecord) -> Result<CommandOutput, DomainError> {
    apply(
        st,
        &Proposal {
            now: NOW,
            command: Command::AppendDigest { digest },
        },
    )
    .0
}

fn events(n: usize, tag: &str) -> Vec<String> {
    (0..n).map(|i| format!("{{\"e\":\"{tag}{i}\"}}")).collect()
}

fn audit_key() -> AuditSigningKey {
    AuditSigningKey::from_bytes(&[7u8; 32])
}

fn next_digest(st: &State, at: u64) -> DigestRecord {
    sign_digest(
        &audit_key(),
        DigestBody::next(
            st.audit.last_digest.as_ref(),
            "us-east-1",
            &st.audit.head,
            at,
        ),
    )
}

#[test]
fn append_audit_assigns_consecutive_seqs_across_batches_and_hands_records_to_storage() {
    let mut st = world();
    assert_eq!(
        append(&mut st, events(3, "a")),
        Ok(CommandOutput::AuditAppended {
            first_seq: 1,
            last_seq: 3
        })
    );
    assert_eq!(
        append(&mut st, events(2, "b")),
        Ok(CommandOutput::AuditAppended {
            first_seq: 4,
            last_seq: 5
        })
    );
    let (records, digests) = st.audit.take_appended();
    assert!(digests.is_empty());
    assert_eq!(
        records.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5]
    );
    assert_eq!(
        records[3].event, "{\"e\":\"b0\"}",
        "events are stored verbatim, in order"
    );
    assert_eq!(ChainHead::after(&records[4]), Some(st.audit.head.clone()));
    // Taken once: the next call hands over nothing.
    assert_eq!(st.audit.take_appended(), (vec![], vec![]));
    // AppendAudit touches no cached entity.
    let (_, changes) = apply(
        &mut st,
        &Proposal {
            now: NOW,
            command: Command::AppendAudit {
                events: events(1, "c"),
                usage: None,
            },
        },
    );
    assert!(changes.is_empty());
}

#[test]
fn append_audit_refuses_empty_and_oversized_batches_without_touching_the_chain() {
    let big = "x".repeat(MAX_AUDIT_EVENT_BYTES + 1);
    for (what, batch) in [
        ("empty", vec![]),
        ("too many", events(MAX_AUDIT_BATCH + 1, "n")),
        ("too big", vec![s("{}"), big]),
    ] {
        let mut st = world();
        append(&mut st, events(1, "first")).unwrap();
        let before = st.clone();
        let got = append(&mut st, batch);
        assert!(
            matches!(got, Err(DomainError::Validation(_))),
            "{what}: {got:?}"
        );
        assert_eq!(st, before, "{what}: a refused batch changed the chain");
    }
    let mut st = world();
    assert!(append(&mut st, events(MAX_AUDIT_BATCH, "full")).is_ok());
}

#[test]
fn digests_must_follow_the_newest_one_may_lag_the_head_and_never_lead_it() {
    let mut st = world();
    append(&mut st, events(3, "a")).unwrap();
    // The first digest: digest_seq 1 from seq 1, no previous signature.
    let d1 = next_digest(&st, NOW);
    assert_eq!((d1.digest_seq, d1.from_seq, d1.to_seq), (1, 1, 3));
    append(&mut st, events(2, "b")).unwrap();
    // It lags the head by two records now: still accepted.
    assert_eq!(append_digest(&mut st, d1.clone()), Ok(CommandOutput::Done));
    assert_eq!(st.audit.last_digest.as_ref(), Some(&d1));
    // The same digest again (a retry, a second leader) no longer follows.
    let before = st.clone();
    assert!(matches!(
        append_digest(&mut st, d1.clone()),
        Err(DomainError::Conflict(_))
    ));
    assert_eq!(st, before);

    // Leading the head: to_seq beyond the last record.
    let mut ahead = DigestBody::next(Some(&d1), "us-east-1", &st.audit.head, NOW);
    ahead.to_seq += 1;
    assert!(matches!(
        append_digest(&mut st, sign_digest(&audit_key(), ahead)),
        Err(DomainError::Conflict(_))
    ));
    // At the head but naming another hash.
    let mut wrong = DigestBody::next(Some(&d1), "us-east-1", &st.audit.head, NOW);
    wrong.head_hash = "00".repeat(32);
    assert!(matches!(
        append_digest(&mut st, sign_digest(&audit_key(), wrong)),
        Err(DomainError::Conflict(_))
    ));
    // Skipping a digest_seq, or a range that does not start after the previous one.
    let mut skip = DigestBody::next(Some(&d1), "us-east-1", &st.audit.head, NOW);
    skip.digest_seq += 1;
    assert!(append_digest(&mut st, sign_digest(&audit_key(), skip)).is_err());
    let mut gap = DigestBody::next(Some(&d1), "us-east-1", &st.audit.head, NOW);
    gap.from_seq += 1;
    assert!(append_digest(&mut st, sign_digest(&audit_key(), gap)).is_err());
    // A first digest that claims a predecessor is refused on an empty digest chain.
    let mut fresh = world();
    let mut not_first = DigestBody::next(Some(&d1), "us-east-1", &fresh.audit.head, NOW);
    not_first.to_seq = 0;
    assert!(append_digest(&mut fresh, sign_digest(&audit_key(), not_first)).is_err());
    assert_eq!(st, before, "refused digests changed the state");

    // The proper successor is accepted, and storage gets both digests in order.
    let d2 = next_digest(&st, NOW + 1);
    assert_eq!((d2.digest_seq, d2.from_seq, d2.to_seq), (2, 4, 5));
    append_digest(&mut st, d2.clone()).unwrap();
    let (_, digests) = st.audit.take_appended();
    assert_eq!(digests, vec![d1, d2]);
    // With nothing new appended, a digest covering no records (from = to + 1) still follows.
    let d3 = next_digest(&st, NOW + 2);
    assert_eq!((d3.from_seq, d3.to_seq), (6, 5));
    append_digest(&mut st, d3).unwrap();
}

/// (CloudTrail event name, starting state, the leader's proposal).
type ScheduledAction = (&'static str, fn() -> State, Proposal);

fn scheduled_actions() -> Vec<ScheduledAction> {
    vec![
        (
            "DeleteKey",
            world,
            Proposal {
                now: 11 * DAY,
                command: Command::DeleteDueKey {
                    key_id: s("k-pending"),
                },
            },
        ),
        (
            "RotateKey",
            rotating,
            Proposal {
                now: NOW + 90 * DAY,
                command: Command::RotateKey {
                    key_id: s("k-enabled"),
                    to_version: 2,
                    rotation_type: RotationType::Automatic,
                },
            },
        ),
        (
            "DeleteExpiredKeyMaterial",
            imported,
            Proposal {
                now: NOW + 10 * DAY,
                command: Command::ExpireImportedMaterial {
                    key_id: s("k-import"),
                },
            },
        ),
    ]
}

#[test]
fn the_leaders_scheduled_actions_are_audited_once_deterministically() {
    for (name, start, proposal) in scheduled_actions() {
        let key_id = match &proposal.command {
            Command::DeleteDueKey { key_id }
            | Command::RotateKey { key_id, .. }
            | Command::ExpireImportedMaterial { key_id } => key_id.clone(),
            _ => unreachable!(),
        };
        let mut st = start();
        st.audit.take_appended();
        let key = st.keys[&key_id].clone();
        apply(&mut st, &proposal).0.unwrap();
        let (records, _) = st.audit.take_appended();
        assert_eq!(records.len(), 1, "{name}: one event");
        let event = AuditEvent::from_json(&records[0].event).unwrap();
        assert_eq!(event.event_name, name);
        assert_eq!(event.event_type, EventType::AwsServiceEvent);
        assert_eq!(event.aws_region, key.region);
        assert_eq!(
            event.recipient_account_id.as_deref(),
            Some(key.account_id.as_str())
        );
        assert_eq!(event.resources[0].arn, key.arn);
        assert_eq!(
            event.event_time,
            keystore::audit::format_event_time(proposal.now)
        );
        assert_eq!(
            event.event_id,
            service_event_id(name, &key_id, proposal.now)
        );

        // A second replica writes the identical record; a repeat proposal writes none.
        let mut replica = start();
        replica.audit.take_appended();
        apply(&mut replica, &proposal).0.unwrap();
        assert_eq!(replica.audit.take_appended().0, records, "{name}: replicas");
        apply(&mut st, &proposal).0.unwrap();
        assert!(st.audit.take_appended().0.is_empty(), "{name}: repeat");
    }
}

#[test]
fn service_event_ids_are_uuid_shaped_and_distinct_per_action_key_and_time() {
    let id = service_event_id("DeleteKey", "k1", 1);
    let parts: Vec<&str> = id.split('-').collect();
    assert_eq!(
        parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
        vec![8, 4, 4, 4, 12]
    );
    assert!(id
        .bytes()
        .all(|b| b == b'-' || b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    assert_eq!(&parts[2][..1], "8", "version 8 (custom)");
    assert!(
        matches!(&parts[3][..1], "8" | "9" | "a" | "b"),
        "RFC 9562 variant"
    );
    assert_eq!(id, service_event_id("DeleteKey", "k1", 1));
    for other in [
        service_event_id("RotateKey", "k1", 1),
        service_event_id("DeleteKey", "k2", 1),
        service_event_id("DeleteKey", "k1", 2),
        // Length prefixes: moving a character between name and key id changes the id.
        service_event_id("DeleteKe", "yk1", 1),
    ] {
        assert_ne!(id, other);
    }
}

#[test]
fn a_chain_of_batches_service_events_and_digests_verifies() {
    let mut st = world();
    let mut records: Vec<AuditRecord> = Vec::new();
    let mut digests = Vec::new();
    let take = |st: &mut State, records: &mut Vec<AuditRecord>, digests: &mut Vec<_>| {
        let (r, d) = st.audit.take_appended();
        records.extend(r);
        digests.extend(d);
    };
    append(&mut st, events(4, "a")).unwrap();
    let d = next_digest(&st, NOW);
    append_digest(&mut st, d).unwrap();
    take(&mut st, &mut records, &mut digests);
    apply(
        &mut st,
        &Proposal {
            now: 11 * DAY,
            command: Command::DeleteDueKey {
                key_id: s("k-pending"),
            },
        },
    )
    .0
    .unwrap();
    append(&mut st, events(2, "b")).unwrap();
    let d = next_digest(&st, 11 * DAY);
    append_digest(&mut st, d).unwrap();
    take(&mut st, &mut records, &mut digests);
    assert_eq!(records.len(), 7);
    let keys = vec![audit_key().public_key(0, None)];
    let report = verify(&records, &digests, &keys, None);
    assert!(report.is_ok(), "{report:?}");
}
