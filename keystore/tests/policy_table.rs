//! Table-driven specification of the policy engine: every `testdata/policy/*.json` file is a
//! list of cases, each a request against a key policy, identity policies and grants, with
//! the decision AWS KMS would make.
//!
//! File format:
//!
//! ```text
//! { "description": "...",
//!   "defaults": { <any case field> },        // merged under every case (shallow)
//!   "cases": [ {
//!     "name": "root_is_allowed_by_default_policy",
//!     "key_policy": "<JSON text>" | {object} | null,   // null: account-level action
//!     "identity_policies": [ "<JSON text>" | {object}, ... ],
//!     "principal": "arn:aws:iam::111122223333:user/alice"   // account taken from the ARN
//!                | {"service": "cloudtrail.amazonaws.com"}
//!                | {"arn": "...", "account_id": "..."},
//!     "action": "kms:Encrypt",
//!     "resource": "arn:aws:kms:...:key/..." | "*",
//!     "resource_account": "111122223333",     // default: from the resource ARN, else caller's
//!     "context": { "kms:ViaService": "s3...", "aws:TagKeys": ["a", "b"] },  // list = multi
//!     "grant_allows": false,
//!     "pad": 40000, "pad_char": " ",          // replaces "@PAD@" in policy texts (x's)
//!     "expected": "Allowed:KeyPolicy" | "Denied:NoIdentityPolicyAllows" | ...
//!               | "MalformedPolicy" (with "message": "<substring>")
//!               | "LockoutPasses" | "LockoutFails"   // passes_lockout_check(key_policy, ...)
//!   } ] }
//! ```

use std::path::Path;

use keystore::policy::{
    authorize, passes_lockout_check, AllowedBy, AuthzDecision, AuthzInput, ConditionContext,
    DenyReason, Policy, PolicyKind, Principal,
};
use serde_json::{Map, Value};

const MIN_CASES: usize = 180;

#[test]
fn policy_table() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/policy");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let mut total = 0;
    let mut failures = Vec::new();
    let mut names = std::collections::HashSet::new();
    for file in &files {
        let fname = file.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(file).unwrap();
        let doc: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{fname}: invalid JSON: {e}"));
        let defaults = doc
            .get("defaults")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let cases = doc["cases"]
            .as_array()
            .unwrap_or_else(|| panic!("{fname}: no \"cases\" list"));
        for case in cases {
            let mut merged = defaults.clone();
            merged.extend(case.as_object().expect("case is an object").clone());
            let name = merged["name"].as_str().expect("case has a name").to_owned();
            assert!(
                names.insert(format!("{fname}/{name}")),
                "{fname}: duplicate case name {name}"
            );
            total += 1;
            if let Err(why) = run_case(&merged) {
                failures.push(format!("{fname} :: {name}: {why}"));
            }
        }
    }
    for f in &failures {
        eprintln!("FAIL {f}");
    }
    assert!(
        failures.is_empty(),
        "{} of {total} policy cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        total >= MIN_CASES,
        "only {total} policy cases, want at least {MIN_CASES}"
    );
    eprintln!("{total} policy cases passed in {} files", files.len());
}

fn run_case(case: &Map<String, Value>) -> Result<(), String> {
    let expected = case["expected"].as_str().ok_or("no expected")?;
    let pad = case.get("pad").and_then(Value::as_u64).unwrap_or(0) as usize;
    let pad_char = case.get("pad_char").and_then(Value::as_str).unwrap_or("x");
    let policy_text = |v: &Value| -> String {
        let text = match v {
            Value::String(s) => s.clone(),
            other => serde_json::to_string_pretty(other).unwrap(),
        };
        text.replace("@PAD@", &pad_char.repeat(pad))
    };

    let parsed = (|| {
        let key_policy = match case.get("key_policy") {
            None | Some(Value::Null) => None,
            Some(v) => Some(Policy::parse(&policy_text(v), PolicyKind::Key)?),
        };
        let identity = case
            .get("identity_policies")
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .map(|v| Policy::parse(&policy_text(v), PolicyKind::Identity))
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?
            .unwrap_or_default();
        Ok::<_, keystore::policy::PolicyError>((key_policy, identity))
    })();

    let (key_policy, identity) = match (parsed, expected) {
        (Err(e), "MalformedPolicy") => {
            let want = case["message"]
                .as_str()
                .ok_or("MalformedPolicy case needs a message")?;
            return if e.0.contains(want) {
                Ok(())
            } else {
                Err(format!("error {:?} does not contain {want:?}", e.0))
            };
        }
        (Err(e), _) => return Err(format!("unexpected policy error: {}", e.0)),
        (Ok(_), "MalformedPolicy") => return Err("policy parsed, expected an error".into()),
        (Ok(p), _) => p,
    };

    let principal = principal_of(case.get("principal").ok_or("no principal")?)?;
    let action = case["action"].as_str().ok_or("no action")?;
    let resource = case["resource"].as_str().ok_or("no resource")?;
    let resource_account = match case.get("resource_account").and_then(Value::as_str) {
        Some(a) => a.to_owned(),
        None => match resource.split(':').nth(4) {
            Some(a) => a.to_owned(),
            None => principal.account_id().unwrap_or_default().to_owned(),
        },
    };
    let mut context = ConditionContext::new();
    if let Some(map) = case.get("context").and_then(Value::as_object) {
        for (k, v) in map {
            match v {
                Value::String(s) => context.set(k, s.clone()),
                Value::Array(items) => context.set_multi(
                    k,
                    items
                        .iter()
                        .map(|i| i.as_str().expect("context list of strings").to_owned())
                        .collect(),
                ),
                other => return Err(format!("context value {other} is not a string or list")),
            }
        }
    }
    let grant_allows = case
        .get("grant_allows")
        .and_then(Value::as_bool)
        .unwrap_or(false);

    if let Some(want) = expected.strip_prefix("Lockout") {
        let policy = key_policy
            .as_ref()
            .ok_or("lockout case needs a key_policy")?;
        let identity: Vec<_> = identity.iter().collect();
        let got = passes_lockout_check(policy, &principal, resource, &resource_account, &identity);
        let want = match want {
            "Passes" => true,
            "Fails" => false,
            _ => return Err(format!("bad expected {expected}")),
        };
        return if got == want {
            Ok(())
        } else {
            Err(format!("lockout check returned {got}, want {want}"))
        };
    }

    let decision = authorize(&AuthzInput {
        principal: &principal,
        action,
        resource_arn: resource,
        resource_account: &resource_account,
        context: &context,
        key_policy: key_policy.as_ref(),
        identity_policies: &identity.iter().collect::<Vec<_>>(),
        grant_allows,
    });
    let got = format_decision(decision);
    if got == expected {
        Ok(())
    } else {
        Err(format!("got {got}, want {expected}"))
    }
}

fn principal_of(v: &Value) -> Result<Principal, String> {
    match v {
        Value::String(arn) => Ok(Principal::Aws {
            arn: arn.clone(),
            account_id: arn
                .split(':')
                .nth(4)
                .ok_or_else(|| format!("no account in principal {arn}"))?
                .to_owned(),
        }),
        Value::Object(o) => {
            if let Some(name) = o.get("service").and_then(Value::as_str) {
                Ok(Principal::Service { name: name.into() })
            } else {
                Ok(Principal::Aws {
                    arn: o["arn"].as_str().ok_or("principal.arn")?.into(),
                    account_id: o["account_id"]
                        .as_str()
                        .ok_or("principal.account_id")?
                        .into(),
                })
            }
        }
        other => Err(format!("bad principal {other}")),
    }
}

fn format_decision(d: AuthzDecision) -> String {
    match d {
        AuthzDecision::Allowed(by) => format!(
            "Allowed:{}",
            match by {
                AllowedBy::KeyPolicy => "KeyPolicy",
                AllowedBy::IdentityPolicy => "IdentityPolicy",
                AllowedBy::Grant => "Grant",
                AllowedBy::AccountRoot => "AccountRoot",
            }
        ),
        AuthzDecision::Denied(why) => format!(
            "Denied:{}",
            match why {
                DenyReason::ExplicitDenyInKeyPolicy => "ExplicitDenyInKeyPolicy",
                DenyReason::ExplicitDenyInIdentityPolicy => "ExplicitDenyInIdentityPolicy",
                DenyReason::NoResourcePolicyAllows => "NoResourcePolicyAllows",
                DenyReason::NoIdentityPolicyAllows => "NoIdentityPolicyAllows",
            }
        ),
    }
}
