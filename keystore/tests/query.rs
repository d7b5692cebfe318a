//! `query`: lookups, marker paging for ListKeys/ListAliases, and the deletion scheduler's view.

mod common;

use common::*;
use keystore::command::{Query, QueryOutput};
use keystore::model::{AliasRecord, KeyRecord, KeyState, State};
use keystore::query;

fn s(v: &str) -> String {
    v.into()
}

fn list_keys(
    st: &State,
    account: &str,
    limit: u32,
    marker: Option<&str>,
) -> (Vec<String>, Option<String>) {
    match query(
        st,
        &Query::ListKeys {
            account_id: s(account),
            limit,
            marker: marker.map(s),
        },
    ) {
        QueryOutput::Keys { keys, next_marker } => (
            keys.into_iter().map(|k: KeyRecord| k.key_id).collect(),
            next_marker,
        ),
        other => panic!("unexpected {other:?}"),
    }
}

fn list_aliases(
    st: &State,
    account: &str,
    key_id: Option<&str>,
    limit: u32,
    marker: Option<&str>,
) -> (Vec<String>, Option<String>) {
    match query(
        st,
        &Query::ListAliases {
            account_id: s(account),
            key_id: key_id.map(s),
            limit,
            marker: marker.map(s),
        },
    ) {
        QueryOutput::Aliases {
            aliases,
            next_marker,
        } => (
            aliases
                .into_iter()
                .map(|a: AliasRecord| a.alias_name)
                .collect(),
            next_marker,
        ),
        other => panic!("unexpected {other:?}"),
    }
}

/// world() plus keys k-00..k-09 and aliases alias/a-00..a-09 on k-enabled.
fn big() -> State {
    let mut st = world();
    for i in 0..10 {
        insert_key(&mut st, key(&format!("k-{i:02}"), KeyState::Enabled));
        insert_alias(&mut st, alias(&format!("alias/a-{i:02}"), "k-enabled"));
    }
    let mut other_alias = alias("alias/zzz", "k-other");
    other_alias.account_id = s(OTHER);
    insert_alias(&mut st, other_alias);
    st
}

#[test]
fn get_key_returns_the_record_or_none() {
    let st = world();
    assert_eq!(
        query(
            &st,
            &Query::GetKey {
                key_id: s("k-enabled")
            }
        ),
        QueryOutput::Key(Some(Box::new(st.keys["k-enabled"].clone())))
    );
    assert_eq!(
        query(&st, &Query::GetKey { key_id: s("nope") }),
        QueryOutput::Key(None)
    );
}

#[test]
fn get_alias_is_scoped_to_the_account() {
    let st = world();
    let QueryOutput::Alias(Some(a)) = query(
        &st,
        &Query::GetAlias {
            account_id: s(ACCT),
            alias_name: s("alias/app"),
        },
    ) else {
        panic!("alias missing");
    };
    assert_eq!(a.target_key_id, "k-enabled");
    assert_eq!(
        query(
            &st,
            &Query::GetAlias {
                account_id: s(OTHER),
                alias_name: s("alias/app")
            }
        ),
        QueryOutput::Alias(None)
    );
}

#[test]
fn list_keys_returns_only_the_accounts_keys_in_id_order() {
    let (ids, next) = list_keys(&world(), ACCT, 100, None);
    assert_eq!(
        ids,
        vec!["k-disabled", "k-enabled", "k-import", "k-pending"]
    );
    assert_eq!(next, None);
    let (ids, _) = list_keys(&world(), OTHER, 100, None);
    assert_eq!(ids, vec!["k-other"]);
}

#[test]
fn list_keys_pages_with_an_exclusive_marker_until_no_marker_is_returned() {
    let st = big();
    let (all, _) = list_keys(&st, ACCT, 1000, None);
    assert_eq!(all.len(), 14);
    let mut seen = Vec::new();
    let mut marker: Option<String> = None;
    let mut pages = 0;
    loop {
        let (page, next) = list_keys(&st, ACCT, 4, marker.as_deref());
        assert!(page.len() <= 4);
        pages += 1;
        seen.extend(page.clone());
        match next {
            Some(m) => {
                assert_eq!(Some(&m), page.last(), "next marker is the last returned id");
                marker = Some(m);
            }
            None => break,
        }
    }
    assert_eq!(seen, all);
    assert_eq!(pages, 4);
}

#[test]
fn list_keys_gives_no_marker_when_the_page_ends_exactly_at_the_last_key() {
    let (ids, next) = list_keys(&world(), ACCT, 4, None);
    assert_eq!(ids.len(), 4);
    assert_eq!(next, None);
}

#[test]
fn list_keys_ignores_other_accounts_when_deciding_whether_more_remain() {
    // k-other sorts after k-import but belongs to OTHER; k-pending still follows.
    let (ids, next) = list_keys(&world(), ACCT, 3, None);
    assert_eq!(ids, vec!["k-disabled", "k-enabled", "k-import"]);
    assert_eq!(next.as_deref(), Some("k-import"));
    let (ids, next) = list_keys(&world(), ACCT, 3, Some("k-import"));
    assert_eq!(ids, vec!["k-pending"]);
    assert_eq!(next, None);
}

#[test]
fn list_keys_with_a_marker_past_the_end_is_empty() {
    assert_eq!(list_keys(&world(), ACCT, 10, Some("zzz")), (vec![], None));
}

#[test]
fn list_keys_clamps_a_zero_limit_to_one() {
    let (ids, next) = list_keys(&world(), ACCT, 0, None);
    assert_eq!(ids, vec!["k-disabled"]);
    assert_eq!(next.as_deref(), Some("k-disabled"));
}

#[test]
fn list_keys_clamps_limits_above_one_thousand() {
    let mut st = State::default();
    for i in 0..1001 {
        insert_key(&mut st, key(&format!("k-{i:04}"), KeyState::Enabled));
    }
    let (ids, next) = list_keys(&st, ACCT, u32::MAX, None);
    assert_eq!(ids.len(), 1000);
    assert_eq!(next.as_deref(), Some("k-0999"));
}

#[test]
fn list_aliases_returns_the_accounts_aliases_in_name_order() {
    let (names, next) = list_aliases(&world(), ACCT, None, 100, None);
    assert_eq!(names, vec!["alias/app", "alias/old", "alias/older"]);
    assert_eq!(next, None);
}

#[test]
fn list_aliases_filters_by_key() {
    let (names, _) = list_aliases(&world(), ACCT, Some("k-pending"), 100, None);
    assert_eq!(names, vec!["alias/old", "alias/older"]);
    let (names, _) = list_aliases(&world(), ACCT, Some("k-disabled"), 100, None);
    assert!(names.is_empty());
}

#[test]
fn list_aliases_pages_without_crossing_into_another_account() {
    let st = big();
    let (all, _) = list_aliases(&st, ACCT, None, 100, None);
    assert_eq!(all.len(), 13);
    assert!(!all.contains(&s("alias/zzz")));
    let mut seen = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let (page, next) = list_aliases(&st, ACCT, None, 5, marker.as_deref());
        seen.extend(page);
        match next {
            Some(m) => marker = Some(m),
            None => break,
        }
    }
    assert_eq!(seen, all);
}

#[test]
fn list_aliases_clamps_limits_above_one_hundred() {
    let mut st = world();
    for i in 0..150 {
        insert_alias(&mut st, alias(&format!("alias/b-{i:03}"), "k-enabled"));
    }
    let (names, next) = list_aliases(&st, ACCT, None, 1000, None);
    assert_eq!(names.len(), 100);
    assert!(next.is_some());
}

#[test]
fn due_for_deletion_lists_pending_keys_whose_date_has_come() {
    let mut st = world();
    let mut later = key("k-later", KeyState::PendingDeletion);
    later.deletion_date = Some(20 * DAY);
    insert_key(&mut st, later);
    // A disabled key with a stale date is not due: only PendingDeletion counts.
    st.keys.get_mut("k-disabled").unwrap().deletion_date = Some(DAY);

    let due = |now| query(&st, &Query::DueForDeletion { now });
    assert_eq!(due(10 * DAY - 1), QueryOutput::KeyIds(vec![]));
    assert_eq!(due(10 * DAY), QueryOutput::KeyIds(vec![s("k-pending")]));
    assert_eq!(
        due(20 * DAY),
        QueryOutput::KeyIds(vec![s("k-later"), s("k-pending")])
    );
}

#[test]
fn identities_and_access_keys_are_looked_up_by_id() {
    let mut st = world();
    let alice = keystore::model::IdentityRecord {
        arn: format!("arn:aws:iam::{ACCT}:user/alice"),
        account_id: s(ACCT),
        admin: false,
    };
    st.identities.insert(alice.arn.clone(), alice.clone());
    assert_eq!(
        query(
            &st,
            &Query::GetIdentity {
                arn: alice.arn.clone()
            }
        ),
        QueryOutput::Identity(Some(alice))
    );
    assert_eq!(
        query(
            &st,
            &Query::GetIdentity {
                arn: s("arn:aws:iam::1:root")
            }
        ),
        QueryOutput::Identity(None)
    );
    assert_eq!(
        query(
            &st,
            &Query::GetAccessKey {
                access_key_id: s("AKIA")
            }
        ),
        QueryOutput::AccessKey(None)
    );
}
