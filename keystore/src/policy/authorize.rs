//! The AWS KMS authorization decision: key policy, the caller's identity policies and
//! grants combined, plus the lockout safety check of PutKeyPolicy/CreateKey.
//!
//! Order (AWS's): any explicit Deny wins, grants included; then the key policy must allow
//! the caller, either directly or by delegating to the caller's account, in which case an
//! identity policy must allow too; cross-account callers always need both; grants allow
//! what the policies did not.

use super::{ConditionContext, EvalRequest, Policy, PolicyDecision, Principal};

/// Everything one authorization decision depends on.
#[derive(Clone, Copy, Debug)]
pub struct AuthzInput<'a> {
    /// Who.
    pub principal: &'a Principal,
    /// `kms:Encrypt`, ...
    pub action: &'a str,
    /// The key ARN, or `*` for account-level actions.
    pub resource_arn: &'a str,
    /// Owning account of the resource (the caller's for account-level actions).
    pub resource_account: &'a str,
    /// Request condition keys; `authorize` adds the principal's global keys itself.
    pub context: &'a ConditionContext,
    /// The key's policy; `None` for account-level actions (CreateKey, ListKeys, ...).
    pub key_policy: Option<&'a Policy>,
    /// The caller's attached identity policies (ignored for service principals).
    pub identity_policies: &'a [&'a Policy],
    /// Whether some grant on the key allows the action (computed by the caller).
    pub grant_allows: bool,
}

/// What allowed a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AllowedBy {
    /// The key policy names the caller (or `*`) and, cross-account, an identity policy or
    /// the caller being its account root completes it.
    KeyPolicy,
    /// The key policy delegates to the caller's account and an identity policy allows; or,
    /// for account-level actions, an identity policy allows.
    IdentityPolicy,
    /// A grant.
    Grant,
    /// An account-level action by the account's root.
    AccountRoot,
}

/// Why a request was denied; the front turns it into AWS's AccessDenied wording.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DenyReason {
    /// A Deny statement in the key policy matched.
    ExplicitDenyInKeyPolicy,
    /// A Deny statement in one of the caller's identity policies matched.
    ExplicitDenyInIdentityPolicy,
    /// The key policy does not allow the caller, directly or through its account.
    NoResourcePolicyAllows,
    /// The key policy delegates to the account (or there is no key policy), but no identity
    /// policy allows.
    NoIdentityPolicyAllows,
}

/// The outcome of `authorize`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthzDecision {
    /// Go ahead.
    Allowed(AllowedBy),
    /// AccessDeniedException.
    Denied(DenyReason),
}

impl AuthzDecision {
    /// Whether the request may proceed.
    pub fn is_allowed(&self) -> bool {
        matches!(self, AuthzDecision::Allowed(_))
    }
}

/// Decides a request with AWS KMS semantics. Pure.
pub fn authorize(input: &AuthzInput<'_>) -> AuthzDecision {
    let context = with_global_keys(input.context, input.principal);
    let req = EvalRequest {
        principal: input.principal,
        action: input.action,
        resource_arn: input.resource_arn,
        context: &context,
    };
    let key = input
        .key_policy
        .map(|p| p.evaluate(&req))
        .unwrap_or_default();
    // Services act under the key policy alone; they have no IAM identity.
    let identity_policies: &[&Policy] = match input.principal {
        Principal::Service { .. } => &[],
        Principal::Aws { .. } => input.identity_policies,
    };
    let identity = identity_policies.iter().map(|p| p.evaluate(&req)).fold(
        PolicyDecision::default(),
        |acc, d| PolicyDecision {
            explicit_deny: acc.explicit_deny || d.explicit_deny,
            allow: acc.allow || d.allow,
            allow_account: false,
        },
    );

    if key.explicit_deny {
        return AuthzDecision::Denied(DenyReason::ExplicitDenyInKeyPolicy);
    }
    if identity.explicit_deny {
        return AuthzDecision::Denied(DenyReason::ExplicitDenyInIdentityPolicy);
    }

    let same_account = input.principal.account_id() == Some(input.resource_account);
    let is_root = input.principal.is_account_root();

    if input.key_policy.is_none() {
        // Account-level actions have no key and so no grants.
        return match (same_account, is_root, identity.allow) {
            (true, true, _) => AuthzDecision::Allowed(AllowedBy::AccountRoot),
            (true, false, true) => AuthzDecision::Allowed(AllowedBy::IdentityPolicy),
            _ => AuthzDecision::Denied(DenyReason::NoIdentityPolicyAllows),
        };
    }

    let policies = match input.principal {
        Principal::Service { .. } if key.allow => Ok(AllowedBy::KeyPolicy),
        Principal::Service { .. } => Err(DenyReason::NoResourcePolicyAllows),
        // The root is allowed only by the key policy itself, never by IAM policies: that is
        // what lets a key policy without the root statement lock the account out.
        Principal::Aws { .. } if same_account && is_root => {
            if key.allow {
                Ok(AllowedBy::KeyPolicy)
            } else {
                Err(DenyReason::NoResourcePolicyAllows)
            }
        }
        Principal::Aws { .. } if same_account => {
            if key.allow {
                Ok(AllowedBy::KeyPolicy)
            } else if key.allow_account && identity.allow {
                Ok(AllowedBy::IdentityPolicy)
            } else if key.allow_account {
                Err(DenyReason::NoIdentityPolicyAllows)
            } else {
                Err(DenyReason::NoResourcePolicyAllows)
            }
        }
        // Cross-account: the key's account must let the caller in, and the caller's account
        // must let it out (its root speaks for the account).
        Principal::Aws { .. } => {
            if !(key.allow || key.allow_account) {
                Err(DenyReason::NoResourcePolicyAllows)
            } else if !(is_root || identity.allow) {
                Err(DenyReason::NoIdentityPolicyAllows)
            } else if key.allow {
                Ok(AllowedBy::KeyPolicy)
            } else {
                Ok(AllowedBy::IdentityPolicy)
            }
        }
    };
    match policies {
        Ok(by) => AuthzDecision::Allowed(by),
        Err(_) if input.grant_allows => AuthzDecision::Allowed(AllowedBy::Grant),
        Err(reason) => AuthzDecision::Denied(reason),
    }
}

/// The lockout safety check of PutKeyPolicy/CreateKey: would `caller` still be allowed
/// `kms:PutKeyPolicy` on the key under `new_policy`, with its identity policies and without
/// grants or request-specific condition keys?
pub fn passes_lockout_check(
    new_policy: &Policy,
    caller: &Principal,
    key_arn: &str,
    key_account: &str,
    identity_policies: &[&Policy],
) -> bool {
    authorize(&AuthzInput {
        principal: caller,
        action: "kms:PutKeyPolicy",
        resource_arn: key_arn,
        resource_account: key_account,
        context: &ConditionContext::new(),
        key_policy: Some(new_policy),
        identity_policies,
        grant_allows: false,
    })
    .is_allowed()
}

/// The request context plus the keys every request carries, unless the caller already set
/// them (it may know better, e.g. a role's path for `aws:PrincipalArn`).
fn with_global_keys(context: &ConditionContext, principal: &Principal) -> ConditionContext {
    let mut ctx = context.clone();
    let mut default = |key: &str, value: &str| {
        if ctx.get(key).is_none() {
            ctx.set(key, value);
        }
    };
    match principal {
        Principal::Aws { arn, account_id } => {
            // AWS reports a session's role, not the session, as aws:PrincipalArn.
            default(
                "aws:PrincipalArn",
                &session_role_arn(arn).unwrap_or_else(|| arn.clone()),
            );
            default("aws:PrincipalAccount", account_id);
            default("kms:CallerAccount", account_id);
        }
        Principal::Service { name } => default("aws:PrincipalServiceName", name),
    }
    ctx
}

/// `arn:aws:sts::A:assumed-role/R/s` -> `arn:aws:iam::A:role/R` (the path is not known
/// from the session ARN).
fn session_role_arn(arn: &str) -> Option<String> {
    let (prefix, rest) = arn.split_once(":assumed-role/")?;
    let (role, _session) = rest.split_once('/')?;
    let mut parts = prefix.splitn(5, ':');
    let (arn_lit, partition, service, region, account) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    (arn_lit == "arn" && service == "sts" && region.is_empty())
        .then(|| format!("arn:{partition}:iam::{account}:role/{role}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_report_their_role_as_principal_arn() {
        assert_eq!(
            session_role_arn("arn:aws:sts::111122223333:assumed-role/App/i-123").as_deref(),
            Some("arn:aws:iam::111122223333:role/App")
        );
        assert_eq!(
            session_role_arn("arn:aws:iam::111122223333:user/alice"),
            None
        );
    }

    #[test]
    fn global_keys_are_filled_but_not_overridden() {
        let p = Principal::Aws {
            arn: "arn:aws:iam::111122223333:user/alice".into(),
            account_id: "111122223333".into(),
        };
        let mut ctx = ConditionContext::new();
        ctx.set(
            "aws:PrincipalArn",
            "arn:aws:iam::111122223333:user/path/alice",
        );
        let out = with_global_keys(&ctx, &p);
        assert_eq!(
            out.get("aws:principalarn"),
            Some(&["arn:aws:iam::111122223333:user/path/alice".to_string()][..])
        );
        assert_eq!(
            out.get("kms:CallerAccount"),
            Some(&["111122223333".to_string()][..])
        );
        assert_eq!(
            out.get("aws:PrincipalAccount"),
            Some(&["111122223333".to_string()][..])
        );
    }
}
