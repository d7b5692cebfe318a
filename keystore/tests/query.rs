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
        ..Default::default()
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

// ---- grants, identities, access keys ----

use keystore::grant::{GrantOperation, GrantRecord};

fn grant_ids(out: QueryOutput) -> (Vec<String>, Option<String>) {
    match out {
        QueryOutput::Grants {
            grants,
            next_marker,
        } => (
            grants
                .into_iter()
                .map(|g: GrantRecord| format!("{}/{}", g.key_id, g.grant_id))
                .collect(),
            next_marker,
        ),
        other => panic!("unexpected {other:?}"),
    }
}

fn list_grants(
    st: &State,
    key_id: &str,
    grantee: Option<&str>,
    limit: u32,
    marker: Option<&str>,
) -> (Vec<String>, Option<String>) {
    grant_ids(query(
        st,
        &Query::ListGrants {
            key_id: s(key_id),
            grant_id: None,
            grantee_principal: grantee.map(s),
            marker: marker.map(s),
            limit,
        },
    ))
}

fn list_retirable(
    st: &State,
    principal: &str,
    limit: u32,
    marker: Option<&str>,
) -> (Vec<String>, Option<String>) {
    grant_ids(query(
        st,
        &Query::ListRetirableGrants {
            retiring_principal: s(principal),
            marker: marker.map(s),
            limit,
        },
    ))
}

/// Pages through `list` with `limit` and returns everything seen, checking that each next
/// marker names the page's last entry.
fn all_pages(list: impl Fn(Option<&str>) -> (Vec<String>, Option<String>)) -> (Vec<String>, usize) {
    let mut seen = Vec::new();
    let mut marker: Option<String> = None;
    let mut pages = 0;
    loop {
        let (page, next) = list(marker.as_deref());
        pages += 1;
        seen.extend(page);
        match next {
            Some(m) => marker = Some(m),
            None => return (seen, pages),
        }
    }
}

/// with_grants() plus g00..g11 on k-disabled (even ones to another grantee, retirable by
/// RETIRER) and grants retirable by RETIRER on k-enabled and k-other.
fn many_grants() -> State {
    let mut st = with_grants();
    for i in 0..12 {
        let mut g = grant_on(
            "k-disabled",
            &format!("g{i:02}"),
            &[GrantOperation::Decrypt],
        );
        if i % 2 == 0 {
            g.grantee_principal = s(ALICE);
            g.retiring_principal = Some(s(RETIRER));
        }
        insert_grant(&mut st, g);
    }
    let mut other = grant_on("k-other", "gx", &[GrantOperation::Encrypt]);
    other.retiring_principal = Some(s(RETIRER));
    insert_grant(&mut st, other);
    st
}

#[test]
fn get_grant_is_scoped_to_its_key() {
    let st = with_grants();
    let get = |key_id: &str, grant_id: &str| {
        query(
            &st,
            &Query::GetGrant {
                key_id: s(key_id),
                grant_id: s(grant_id),
            },
        )
    };
    assert_eq!(
        get("k-enabled", "g1"),
        QueryOutput::Grant(Some(st.grants[&(s("k-enabled"), s("g1"))].clone()))
    );
    assert_eq!(get("k-disabled", "g1"), QueryOutput::Grant(None));
    assert_eq!(get("k-enabled", "g3"), QueryOutput::Grant(None));
}

#[test]
fn list_grants_returns_one_keys_grants_in_grant_id_order() {
    let st = with_grants();
    assert_eq!(
        list_grants(&st, "k-enabled", None, 100, None),
        (vec![s("k-enabled/g1"), s("k-enabled/g2")], None)
    );
    assert_eq!(
        list_grants(&st, "k-pending", None, 100, None),
        (vec![s("k-pending/g3")], None)
    );
    assert_eq!(list_grants(&st, "nope", None, 100, None), (vec![], None));
}

#[test]
fn list_grants_pages_without_crossing_into_another_key() {
    let st = many_grants();
    let (all, pages) = all_pages(|m| list_grants(&st, "k-disabled", None, 5, m));
    let want: Vec<String> = (0..12).map(|i| format!("k-disabled/g{i:02}")).collect();
    assert_eq!(all, want);
    assert_eq!(pages, 3);
    let (page, next) = list_grants(&st, "k-disabled", None, 5, None);
    assert_eq!(
        next.as_deref(),
        Some("g04"),
        "the marker is the last grant id"
    );
    assert_eq!(page.len(), 5);
}

#[test]
fn list_grants_filters_by_grantee_and_by_grant_id() {
    let st = many_grants();
    let (alices, _) = all_pages(|m| list_grants(&st, "k-disabled", Some(ALICE), 4, m));
    let want: Vec<String> = (0..12)
        .step_by(2)
        .map(|i| format!("k-disabled/g{i:02}"))
        .collect();
    assert_eq!(alices, want);
    let one = query(
        &st,
        &Query::ListGrants {
            key_id: s("k-disabled"),
            grant_id: Some(s("g07")),
            grantee_principal: None,
            marker: None,
            limit: 100,
        },
    );
    assert_eq!(grant_ids(one), (vec![s("k-disabled/g07")], None));
}

#[test]
fn list_grants_clamps_its_limit_to_one_hundred() {
    let mut st = world();
    for i in 0..150 {
        insert_grant(
            &mut st,
            grant_on("k-enabled", &format!("g{i:03}"), &[GrantOperation::Decrypt]),
        );
    }
    let (page, next) = list_grants(&st, "k-enabled", None, 1000, None);
    assert_eq!(page.len(), 100);
    assert_eq!(next.as_deref(), Some("g099"));
    let (page, next) = list_grants(&st, "k-enabled", None, 0, None);
    assert_eq!((page.len(), next.as_deref()), (1, Some("g000")));
}

#[test]
fn list_retirable_grants_spans_keys_in_key_then_grant_order() {
    let st = many_grants();
    let (all, pages) = all_pages(|m| list_retirable(&st, RETIRER, 3, m));
    let mut want: Vec<String> = (0..12)
        .step_by(2)
        .map(|i| format!("k-disabled/g{i:02}"))
        .collect();
    want.push(s("k-enabled/g2"));
    want.push(s("k-other/gx"));
    assert_eq!(all, want);
    assert_eq!(pages, 3);
    let (_, next) = list_retirable(&st, RETIRER, 3, None);
    assert_eq!(next.as_deref(), Some("k-disabled/g04"));
    assert_eq!(list_retirable(&st, GRANTEE, 10, None), (vec![], None));
}

#[test]
fn list_identities_pages_through_one_account_in_arn_order() {
    let mut st = with_grants();
    for i in 0..7 {
        let arn = format!("arn:aws:iam::{ACCT}:role/r{i}");
        st.identities.insert(arn.clone(), identity(&arn, ACCT));
    }
    let stranger = format!("arn:aws:iam::{OTHER}:user/eve");
    st.identities
        .insert(stranger.clone(), identity(&stranger, OTHER));
    let list = |m: Option<&str>| match query(
        &st,
        &Query::ListIdentities {
            account_id: s(ACCT),
            marker: m.map(s),
            limit: 4,
        },
    ) {
        QueryOutput::Identities {
            identities,
            next_marker,
        } => (
            identities.into_iter().map(|i| i.arn).collect::<Vec<_>>(),
            next_marker,
        ),
        other => panic!("unexpected {other:?}"),
    };
    let (all, pages) = all_pages(list);
    assert_eq!(all.len(), 9);
    assert!(!all.contains(&stranger));
    let mut sorted = all.clone();
    sorted.sort();
    assert_eq!(all, sorted);
    assert_eq!(pages, 3);
}

#[test]
fn list_access_keys_returns_exactly_the_principals_keys() {
    let st = with_grants();
    let ids = |principal: &str| match query(
        &st,
        &Query::ListAccessKeys {
            principal_arn: s(principal),
        },
    ) {
        QueryOutput::AccessKeys(keys) => keys
            .into_iter()
            .map(|k| k.access_key_id)
            .collect::<Vec<_>>(),
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(ids(ALICE), vec!["AKIA1", "AKIA2"]);
    assert_eq!(ids(BOB), vec!["AKIA3"]);
    assert!(ids(GRANTEE).is_empty());
}
