//! `apply` as a table: (starting state, command, expected result, expected changes), plus a
//! check on the resulting state. Every refused command must leave the state untouched.

mod common;

use common::*;
use keystore::apply;
use keystore::command::{Change, Command, CommandOutput, Proposal};
use keystore::error::DomainError;
use keystore::model::{AccessKeyRecord, IdentityRecord, KeyState, State, Wrapped};

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
    let mut st = world();
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
    for c in &changes {
        match c {
            Change::Key(id) => assert!(!st.keys.contains_key(id)),
            Change::Alias(acct, name) => {
                assert!(!st.aliases.contains_key(&(acct.clone(), name.clone())))
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
