//! Properties of the policy engine that no table can exhaust:
//!
//! - an explicit Deny that matches the request always wins, whatever mix of Allow
//!   statements, identity policies and grants surrounds it;
//! - `Policy::parse` never panics, on arbitrary text or on arbitrary JSON built from the
//!   policy vocabulary, and whatever it accepts can be evaluated without panicking.

use keystore::policy::{
    authorize, AuthzDecision, AuthzInput, ConditionContext, DenyReason, EvalRequest, Policy,
    PolicyKind, Principal,
};
use proptest::prelude::*;
use serde_json::{json, Value};

const KEY: &str = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
const OWNER: &str = "111122223333";

fn principals() -> impl Strategy<Value = Principal> {
    let aws = |arn: &str, acct: &str| Principal::Aws {
        arn: arn.into(),
        account_id: acct.into(),
    };
    prop_oneof![
        Just(aws("arn:aws:iam::111122223333:root", OWNER)),
        Just(aws("arn:aws:iam::111122223333:user/alice", OWNER)),
        Just(aws("arn:aws:sts::111122223333:assumed-role/App/s1", OWNER)),
        Just(aws("arn:aws:iam::444455556666:root", "444455556666")),
        Just(aws("arn:aws:iam::444455556666:user/bob", "444455556666")),
        Just(Principal::Service {
            name: "cloudtrail.amazonaws.com".into()
        }),
    ]
}

fn actions() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "kms:Encrypt",
        "kms:Decrypt",
        "kms:ReEncryptFrom",
        "kms:GenerateDataKey",
        "kms:PutKeyPolicy",
        "kms:ScheduleKeyDeletion",
        "kms:CreateGrant",
    ])
}

fn principal_element() -> impl Strategy<Value = Value> {
    prop::sample::select(vec![
        json!("*"),
        json!({"AWS": "*"}),
        json!({"AWS": OWNER}),
        json!({"AWS": "arn:aws:iam::111122223333:root"}),
        json!({"AWS": "arn:aws:iam::444455556666:root"}),
        json!({"AWS": ["arn:aws:iam::111122223333:user/alice", "arn:aws:iam::111122223333:role/App"]}),
        json!({"Service": "cloudtrail.amazonaws.com"}),
        json!({"AWS": "444455556666", "Service": "logs.amazonaws.com"}),
    ])
}

fn action_element() -> impl Strategy<Value = Value> {
    prop::sample::select(vec![
        json!("*"),
        json!("kms:*"),
        json!("kms:Encrypt"),
        json!(["kms:Decrypt", "kms:ReEncrypt*"]),
        json!("kms:Generate*"),
        json!("KMS:put?eyPolicy"),
        json!("s3:*"),
    ])
}

fn condition_element() -> impl Strategy<Value = Option<Value>> {
    prop::option::of(prop::sample::select(vec![
        json!({"StringEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}}),
        json!({"StringNotLike": {"kms:ViaService": "*.amazonaws.com"}}),
        json!({"Bool": {"aws:SecureTransport": "true"}}),
        json!({"IpAddress": {"aws:SourceIp": ["10.0.0.0/8", "2001:db8::/32"]}}),
        json!({"ForAllValues:StringEquals": {"aws:TagKeys": ["Owner"]}}),
        json!({"ForAnyValue:StringLike": {"kms:EncryptionContextKeys": "t*"}}),
        json!({"NumericLessThanIfExists": {"kms:ScheduleKeyDeletionPendingWindowInDays": 10}}),
        json!({"DateLessThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"}}),
        json!({"Null": {"kms:EncryptionContext:tenant": "false"}}),
    ]))
}

/// An Allow statement; identity statements have no principal and need a Resource.
fn allow_statement(identity: bool) -> impl Strategy<Value = Value> {
    (
        principal_element(),
        action_element(),
        prop::bool::ANY,
        condition_element(),
    )
        .prop_map(move |(principal, action, not_action, condition)| {
            let mut st = json!({"Effect": "Allow"});
            if !identity {
                st["Principal"] = principal;
            }
            st[if not_action { "NotAction" } else { "Action" }] = action;
            if identity {
                st["Resource"] = json!("arn:aws:kms:*:111122223333:key/*");
            }
            if let Some(c) = condition {
                st["Condition"] = c;
            }
            st
        })
}

fn context() -> impl Strategy<Value = ConditionContext> {
    (
        prop::option::of(prop::sample::select(vec![
            "s3.us-east-1.amazonaws.com",
            "ec2.amazonaws.com",
        ])),
        prop::option::of(prop::bool::ANY),
        prop::option::of(prop::sample::select(vec![
            "10.1.2.3",
            "192.0.2.1",
            "2001:db8::9",
        ])),
        prop::collection::vec(prop::sample::select(vec!["Owner", "tenant", "x"]), 0..3),
    )
        .prop_map(|(via, secure, ip, tags)| {
            let mut ctx = ConditionContext::new();
            if let Some(v) = via {
                ctx.set("kms:ViaService", v);
            }
            if let Some(s) = secure {
                ctx.set("aws:SecureTransport", s.to_string());
            }
            if let Some(ip) = ip {
                ctx.set("aws:SourceIp", ip);
            }
            ctx.set_multi("aws:TagKeys", tags.iter().map(|t| t.to_string()).collect());
            ctx.set_multi(
                "kms:EncryptionContextKeys",
                tags.iter().map(|t| t.to_string()).collect(),
            );
            ctx.set("aws:CurrentTime", "2026-11-28T12:00:00Z");
            ctx
        })
}

/// A Deny statement built to match `principal` doing `action` under `ctx`.
fn matching_deny(principal: &Principal, action: &str, identity: bool, variant: usize) -> Value {
    let action_el = match variant % 3 {
        0 => json!(action),
        1 => json!("kms:*"),
        _ => json!(["s3:GetObject", action.to_uppercase()]),
    };
    let mut st = json!({"Effect": "Deny", "Action": action_el});
    if identity {
        st["Resource"] = json!(if variant.is_multiple_of(2) { "*" } else { KEY });
    } else {
        st["Principal"] = match (principal, variant % 4) {
            (_, 0) => json!("*"),
            (Principal::Service { name }, _) => json!({"Service": name}),
            (Principal::Aws { account_id, .. }, 1) => json!({"AWS": account_id}),
            (Principal::Aws { arn, .. }, _) if !arn.contains(":assumed-role/") => {
                json!({"AWS": arn})
            }
            (Principal::Aws { .. }, _) => json!({"AWS": "*"}),
        };
    }
    // A condition that holds for every request: the current time is always set below 2030.
    if variant.is_multiple_of(5) {
        st["Condition"] = json!({"DateLessThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"}});
    }
    st
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        // Integration tests have no lib.rs beside them for proptest's regression files.
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn explicit_deny_always_wins(
        principal in principals(),
        action in actions(),
        key_allows in prop::collection::vec(allow_statement(false), 0..5),
        identity_allows in prop::collection::vec(
            prop::collection::vec(allow_statement(true), 1..4), 0..3),
        ctx in context(),
        grant_allows in prop::bool::ANY,
        deny_in_identity in prop::bool::ANY,
        deny_position in 0usize..8,
        variant in 0usize..60,
    ) {
        // Services have no identity policies, so their Deny must come from the key policy.
        let deny_in_identity =
            deny_in_identity && matches!(principal, Principal::Aws { .. });
        let deny = matching_deny(&principal, action, deny_in_identity, variant);
        let mut key_statements = key_allows;
        let mut identity_docs = identity_allows;
        if deny_in_identity {
            if identity_docs.is_empty() {
                identity_docs.push(Vec::new());
            }
            let doc = deny_position % identity_docs.len();
            let at = deny_position.min(identity_docs[doc].len());
            identity_docs[doc].insert(at, deny);
        } else {
            let at = deny_position.min(key_statements.len());
            key_statements.insert(at, deny);
        }
        if key_statements.is_empty() {
            // A key policy needs a statement; this one never matches the generated callers.
            key_statements.push(json!({
                "Effect": "Allow",
                "Principal": {"Service": "logs.amazonaws.com"},
                "Action": "kms:DescribeKey",
            }));
        }
        let key_policy = Policy::parse(
            &json!({"Version": "2012-10-17", "Statement": key_statements}).to_string(),
            PolicyKind::Key,
        ).unwrap();
        let identity: Vec<Policy> = identity_docs
            .iter()
            .map(|sts| Policy::parse(
                &json!({"Version": "2012-10-17", "Statement": sts}).to_string(),
                PolicyKind::Identity,
            ).unwrap())
            .collect();
        let account = principal.account_id().unwrap_or(OWNER).to_owned();
        let decision = authorize(&AuthzInput {
            principal: &principal,
            action,
            resource_arn: KEY,
            resource_account: if variant.is_multiple_of(2) { OWNER } else { &account },
            context: &ctx,
            key_policy: Some(&key_policy),
            identity_policies: &identity.iter().collect::<Vec<_>>(),
            grant_allows,
        });
        // Every generated statement but the planted one is an Allow, so the reason is known.
        let expected = if deny_in_identity {
            DenyReason::ExplicitDenyInIdentityPolicy
        } else {
            DenyReason::ExplicitDenyInKeyPolicy
        };
        prop_assert_eq!(decision, AuthzDecision::Denied(expected));
    }

    #[test]
    fn parse_never_panics_on_arbitrary_text(text in any::<String>()) {
        for kind in [PolicyKind::Key, PolicyKind::Identity] {
            let _ = Policy::parse(&text, kind);
        }
    }

    #[test]
    fn parse_never_panics_on_json_shaped_text(text in r#"[{}\[\]",:*?a-zA-Z0-9 \-/.$]{0,200}"#) {
        for kind in [PolicyKind::Key, PolicyKind::Identity] {
            let _ = Policy::parse(&text, kind);
        }
    }

    #[test]
    fn parse_and_evaluate_never_panic_on_arbitrary_policy_json(
        doc in policy_json(),
        principal in principals(),
        action in actions(),
        ctx in context(),
    ) {
        let text = doc.to_string();
        for kind in [PolicyKind::Key, PolicyKind::Identity] {
            if let Ok(policy) = Policy::parse(&text, kind) {
                let _ = policy.evaluate(&EvalRequest {
                    principal: &principal,
                    action,
                    resource_arn: KEY,
                    context: &ctx,
                });
            }
        }
    }
}

/// Arbitrary JSON whose object keys and strings come mostly from the policy vocabulary, so
/// that generated documents reach deep into the parser instead of failing at the top.
fn policy_json() -> impl Strategy<Value = Value> {
    let words = prop::sample::select(vec![
        "Version",
        "Id",
        "Statement",
        "Sid",
        "Effect",
        "Allow",
        "Deny",
        "Principal",
        "NotPrincipal",
        "AWS",
        "Service",
        "Federated",
        "Action",
        "NotAction",
        "Resource",
        "NotResource",
        "Condition",
        "StringEquals",
        "StringNotLikeIfExists",
        "ForAnyValue:StringLike",
        "ForAllValues:NumericLessThan",
        "DateGreaterThan",
        "IpAddress",
        "NotIpAddress",
        "Bool",
        "BinaryEquals",
        "ArnLike",
        "Null",
        "aws:SourceIp",
        "aws:CurrentTime",
        "aws:TagKeys",
        "kms:ViaService",
        "kms:EncryptionContext:x",
        "*",
        "kms:*",
        "kms:Encrypt",
        "2012-10-17",
        "111122223333",
        "arn:aws:iam::111122223333:root",
        "10.0.0.0/8",
        "::/0",
        "2024-02-29T12:00:00Z",
        "1700000000",
        "AQID",
        "true",
        "",
        "?",
    ]);
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        words.clone().prop_map(|w| Value::String(w.into())),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 64, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((words.clone(), inner), 0..6).prop_map(|entries| {
                Value::Object(
                    entries
                        .into_iter()
                        .map(|(k, v)| (k.to_owned(), v))
                        .collect(),
                )
            }),
        ]
    })
}
