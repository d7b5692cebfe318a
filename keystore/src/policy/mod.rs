//! IAM policy language: parsing, validation and evaluation of key policies and identity
//! policies, and the AWS KMS authorization decision that combines them with grants.
//!
//! Pure: no I/O, no clock (the caller puts `aws:CurrentTime` into the context), so the whole
//! engine is driven by the table in `keystore/testdata/policy/*.json`.
//!
//! # Layout
//!
//! - `json`: a strict JSON tree (rejects duplicate keys, keeps key order).
//! - `parse`: the grammar — `Policy`, statements, principals, validation and size limits.
//! - `condition`: condition operators, typed values (numbers, dates, CIDRs, base64), set
//!   qualifiers and `IfExists`.
//! - `glob`: `*`/`?` wildcard matching, plain and per ARN component.
//! - `eval`: what one policy says about one request (`PolicyDecision`).
//! - `authorize`: AWS's combination of key policy, identity policies and grants, and the
//!   lockout safety check.
//!
//! # Data flow
//!
//! ```text
//!  policy JSON --Policy::parse--> Policy (validated once, stored parsed by the caller)
//!  AuthzInput { principal, action, resource, context, key policy, identity policies, grants }
//!     --authorize--> context + global keys --Policy::evaluate (each policy)--> PolicyDecision
//!     --AWS combination rules--> AuthzDecision::{Allowed(by), Denied(reason)}
//! ```
//!
//! Policy variables (`${aws:username}` and friends) are not supported: a value containing
//! `${...}` is compared literally, so it matches only that exact text.

mod authorize;
mod condition;
mod eval;
mod glob;
mod json;
mod parse;

pub use authorize::{
    authorize, passes_lockout_check, AllowedBy, AuthzDecision, AuthzInput, DenyReason,
};
pub use parse::Policy;

/// Largest key policy AWS KMS accepts, in bytes.
pub const MAX_KEY_POLICY_BYTES: usize = 32_768;

/// Largest inline identity policy IAM accepts. AWS counts non-whitespace characters, and so
/// does `Policy::parse` for `PolicyKind::Identity`.
pub const MAX_IDENTITY_POLICY_BYTES: usize = 6_144;

/// Which grammar a document follows: key policies name a `Principal`, identity policies are
/// attached to one and must not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyKind {
    /// A key policy (resource-based).
    Key,
    /// An IAM policy attached to a user or role.
    Identity,
}

/// Why a policy document was refused. The message is shown to the user as
/// `MalformedPolicyDocumentException`: it names the statement and element at fault and
/// quotes nothing but the policy's own text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PolicyError(pub String);

/// Who is asking.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// An IAM principal: account root, user, role or assumed-role session.
    Aws {
        /// `arn:aws:iam::111122223333:user/alice`, `arn:aws:sts::…:assumed-role/R/s`, ...
        arn: String,
        /// Twelve-digit account id the principal belongs to.
        account_id: String,
    },
    /// An AWS service acting on its own behalf.
    Service {
        /// e.g. `cloudtrail.amazonaws.com`.
        name: String,
    },
}

impl Principal {
    /// `arn:<partition>:iam::<account>:root` of the principal's own account.
    pub fn is_account_root(&self) -> bool {
        match self {
            Principal::Aws { arn, account_id } => {
                root_account_of(arn).is_some_and(|acct| acct == account_id)
            }
            Principal::Service { .. } => false,
        }
    }

    /// The account of an IAM principal; services have none.
    pub fn account_id(&self) -> Option<&str> {
        match self {
            Principal::Aws { account_id, .. } => Some(account_id),
            Principal::Service { .. } => None,
        }
    }

    /// The principal's ARN; for a service, its name.
    pub fn arn(&self) -> String {
        match self {
            Principal::Aws { arn, .. } => arn.clone(),
            Principal::Service { name } => name.clone(),
        }
    }
}

/// The account id if `arn` is `arn:<partition>:iam::<account>:root`.
pub(crate) fn root_account_of(arn: &str) -> Option<&str> {
    let mut parts = arn.splitn(6, ':');
    let (prefix, _partition, service) = (parts.next()?, parts.next()?, parts.next()?);
    let (region, account, resource) = (parts.next()?, parts.next()?, parts.next()?);
    (prefix == "arn" && service == "iam" && region.is_empty() && resource == "root")
        .then_some(account)
}

/// Condition keys and their values for one request. Keys compare case-insensitively (AWS
/// treats `kms:EncryptionContext:Dept` and `kms:encryptioncontext:dept` alike); values are
/// strings and each operator interprets them.
#[derive(Clone, Debug, Default)]
pub struct ConditionContext {
    entries: std::collections::BTreeMap<String, Entry>,
}

#[derive(Clone, Debug)]
struct Entry {
    values: Vec<String>,
    multi: bool,
}

impl ConditionContext {
    /// An empty context.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets a single-valued key, replacing any previous value.
    pub fn set(&mut self, key: &str, value: impl Into<String>) {
        let entry = Entry {
            values: vec![value.into()],
            multi: false,
        };
        self.entries.insert(key.to_lowercase(), entry);
    }

    /// Sets a multi-valued key (`aws:TagKeys`, `kms:EncryptionContextKeys`, ...). An empty
    /// list behaves as an absent key.
    pub fn set_multi(&mut self, key: &str, values: Vec<String>) {
        let entry = Entry {
            values,
            multi: true,
        };
        self.entries.insert(key.to_lowercase(), entry);
    }

    /// The values of `key`, if set.
    pub fn get(&self, key: &str) -> Option<&[String]> {
        self.entries
            .get(&key.to_lowercase())
            .map(|e| e.values.as_slice())
    }

    /// Whether `key` was set with `set_multi`.
    pub fn is_multi(&self, key: &str) -> bool {
        self.entries
            .get(&key.to_lowercase())
            .is_some_and(|e| e.multi)
    }
}

/// One request as one policy sees it.
#[derive(Clone, Copy, Debug)]
pub struct EvalRequest<'a> {
    /// Who.
    pub principal: &'a Principal,
    /// `kms:Encrypt`, ...
    pub action: &'a str,
    /// The key ARN, or `*` for account-level actions.
    pub resource_arn: &'a str,
    /// Condition keys.
    pub context: &'a ConditionContext,
}

/// What one policy says about one request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PolicyDecision {
    /// Some Deny statement matched.
    pub explicit_deny: bool,
    /// Some Allow statement matched the principal itself (identity policies: any matching
    /// Allow).
    pub allow: bool,
    /// Key policies: an Allow matched only through the caller's account principal
    /// (`arn:aws:iam::<acct>:root` or `<acct>`), i.e. delegation to that account's IAM
    /// policies.
    pub allow_account: bool,
}

/// The key policy AWS attaches when CreateKey is called without one: it delegates to the
/// account's IAM policies by allowing the account root everything. Formatted the way AWS
/// returns it from GetKeyPolicy (two-space indent, `" : "` separators).
pub fn default_key_policy(account_id: &str) -> String {
    // serde_json quotes and escapes, so an odd account id cannot break the document.
    let principal = serde_json::Value::String(format!("arn:aws:iam::{account_id}:root"));
    format!(
        r#"{{
  "Version" : "2012-10-17",
  "Id" : "key-default-1",
  "Statement" : [ {{
    "Sid" : "Enable IAM User Permissions",
    "Effect" : "Allow",
    "Principal" : {{
      "AWS" : {principal}
    }},
    "Action" : "kms:*",
    "Resource" : "*"
  }} ]
}}"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_policy_is_valid_json_allowing_the_account_root_everything() {
        let doc: serde_json::Value =
            serde_json::from_str(&default_key_policy("111122223333")).unwrap();
        assert_eq!(doc["Version"], "2012-10-17");
        assert_eq!(doc["Id"], "key-default-1");
        let st = &doc["Statement"][0];
        assert_eq!(st["Sid"], "Enable IAM User Permissions");
        assert_eq!(st["Effect"], "Allow");
        assert_eq!(st["Principal"]["AWS"], "arn:aws:iam::111122223333:root");
        assert_eq!(st["Action"], "kms:*");
        assert_eq!(st["Resource"], "*");
        assert_eq!(doc["Statement"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn default_policy_is_pretty_printed_like_aws() {
        let p = default_key_policy("111122223333");
        assert!(p.starts_with("{\n  \"Version\" : \"2012-10-17\",\n"));
        assert!(p.contains("\"Statement\" : [ {\n"));
        assert!(p.contains("\"AWS\" : \"arn:aws:iam::111122223333:root\""));
        assert!(p.ends_with("} ]\n}"));
    }

    #[test]
    fn principals_know_their_account_and_whether_they_are_its_root() {
        let root = Principal::Aws {
            arn: "arn:aws:iam::111122223333:root".into(),
            account_id: "111122223333".into(),
        };
        let user = Principal::Aws {
            arn: "arn:aws:iam::111122223333:user/root".into(),
            account_id: "111122223333".into(),
        };
        let impostor = Principal::Aws {
            arn: "arn:aws:iam::111122223333:root".into(),
            account_id: "444455556666".into(),
        };
        let service = Principal::Service {
            name: "cloudtrail.amazonaws.com".into(),
        };
        assert!(root.is_account_root());
        assert!(!user.is_account_root());
        assert!(!impostor.is_account_root());
        assert!(!service.is_account_root());
        assert_eq!(user.account_id(), Some("111122223333"));
        assert_eq!(service.account_id(), None);
        assert_eq!(service.arn(), "cloudtrail.amazonaws.com");
        assert_eq!(user.arn(), "arn:aws:iam::111122223333:user/root");
    }

    #[test]
    fn context_keys_fold_case_and_remember_multiplicity() {
        let mut ctx = ConditionContext::new();
        ctx.set("kms:EncryptionContext:Dept", "Finance");
        ctx.set_multi("aws:TagKeys", vec!["a".into(), "b".into()]);
        assert_eq!(
            ctx.get("KMS:encryptioncontext:dept"),
            Some(&["Finance".to_string()][..])
        );
        assert!(ctx.is_multi("AWS:TAGKEYS"));
        assert!(!ctx.is_multi("kms:EncryptionContext:Dept"));
        assert!(!ctx.is_multi("absent"));
        assert_eq!(ctx.get("absent"), None);
        ctx.set("aws:tagkeys", "c");
        assert!(
            !ctx.is_multi("aws:TagKeys"),
            "set replaces a multi-valued entry"
        );
    }

    #[test]
    fn default_policy_parses_and_allows_the_root_everything() {
        let policy = Policy::parse(&default_key_policy("111122223333"), PolicyKind::Key).unwrap();
        let root = Principal::Aws {
            arn: "arn:aws:iam::111122223333:root".into(),
            account_id: "111122223333".into(),
        };
        let d = policy.evaluate(&EvalRequest {
            principal: &root,
            action: "kms:ScheduleKeyDeletion",
            resource_arn: "arn:aws:kms:us-east-1:111122223333:key/k",
            context: &ConditionContext::new(),
        });
        assert_eq!(
            d,
            PolicyDecision {
                explicit_deny: false,
                allow: true,
                allow_account: false
            }
        );
    }

    #[test]
    fn default_policy_escapes_a_hostile_account_id() {
        let p = default_key_policy("1\"}, \"x\": {\"");
        let doc: serde_json::Value = serde_json::from_str(&p).unwrap();
        assert_eq!(
            doc["Statement"][0]["Principal"]["AWS"],
            "arn:aws:iam::1\"}, \"x\": {\":root"
        );
    }
}
