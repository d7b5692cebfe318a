//! What one policy says about one request: does some Deny match, does some Allow match the
//! caller directly, or only through its account (delegation to the account's IAM policies)?

use super::glob::{arn_match, glob_match};
use super::parse::{AwsPrincipal, Effect, PrincipalSet, Statement};
use super::{EvalRequest, Policy, PolicyDecision, Principal};

/// How a statement's principal element covers the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Reach {
    None,
    /// Through `arn:aws:iam::<acct>:root` / `<acct>` for a non-root principal of that account.
    Account,
    Direct,
}

impl Policy {
    /// Evaluates every statement against the request. Pure; the caller supplies the whole
    /// condition context.
    pub fn evaluate(&self, req: &EvalRequest<'_>) -> PolicyDecision {
        let mut decision = PolicyDecision::default();
        for st in &self.statements {
            let reach = match &st.principal {
                None => Reach::Direct,
                Some(spec) if spec.negated => {
                    // NotPrincipal excludes exactly the principals it names; naming an
                    // account excludes its root, not every user in it.
                    if principal_reach(&spec.set, req.principal) == Reach::Direct {
                        Reach::None
                    } else {
                        Reach::Direct
                    }
                }
                Some(spec) => principal_reach(&spec.set, req.principal),
            };
            if reach == Reach::None || !statement_applies(st, req) {
                continue;
            }
            match (st.effect, reach) {
                (Effect::Deny, _) => decision.explicit_deny = true,
                (Effect::Allow, Reach::Direct) => decision.allow = true,
                (Effect::Allow, _) => decision.allow_account = true,
            }
        }
        decision
    }
}

fn statement_applies(st: &Statement, req: &EvalRequest<'_>) -> bool {
    let action_listed = st
        .actions
        .patterns
        .iter()
        .any(|p| glob_match(p, req.action, true));
    if action_listed == st.actions.negated {
        return false;
    }
    if let Some(res) = &st.resources {
        let listed = res.patterns.iter().any(|p| arn_match(p, req.resource_arn));
        if listed == res.negated {
            return false;
        }
    }
    st.conditions.iter().all(|c| c.holds(req.context))
}

fn principal_reach(set: &PrincipalSet, principal: &Principal) -> Reach {
    if set.everyone {
        return Reach::Direct;
    }
    match principal {
        Principal::Service { name } => {
            if set.services.iter().any(|s| s.eq_ignore_ascii_case(name)) {
                Reach::Direct
            } else {
                Reach::None
            }
        }
        Principal::Aws { arn, account_id } => {
            let is_root = principal.is_account_root();
            let mut best = Reach::None;
            for entry in &set.aws {
                let reach = match entry {
                    AwsPrincipal::Any => Reach::Direct,
                    AwsPrincipal::Account(a) if a == account_id => {
                        if is_root {
                            Reach::Direct
                        } else {
                            Reach::Account
                        }
                    }
                    AwsPrincipal::Account(_) => Reach::None,
                    AwsPrincipal::Arn(p) if p == arn || role_of_session(p, arn) => Reach::Direct,
                    AwsPrincipal::Arn(_) => Reach::None,
                };
                best = best.max(reach);
            }
            best
        }
    }
}

/// A role named in a resource policy covers all of its sessions:
/// `arn:aws:iam::A:role/[path/]R` covers `arn:aws:sts::A:assumed-role/R/<session>`.
fn role_of_session(role_arn: &str, caller_arn: &str) -> bool {
    let Some((role_prefix, role_path)) = role_arn.split_once(":role/") else {
        return false;
    };
    let Some((sts_prefix, session)) = caller_arn.split_once(":assumed-role/") else {
        return false;
    };
    let role_name = role_path.rsplit('/').next().unwrap_or(role_path);
    let Some((session_role, _)) = session.split_once('/') else {
        return false;
    };
    // Same partition and account: compare "arn:<p>:iam::<acct>" with "arn:<p>:sts::<acct>".
    role_prefix.replacen(":iam:", ":sts:", 1) == sts_prefix && session_role == role_name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_belong_to_their_role_only() {
        let role = "arn:aws:iam::111122223333:role/ops/Admin";
        assert!(role_of_session(
            role,
            "arn:aws:sts::111122223333:assumed-role/Admin/alice"
        ));
        assert!(!role_of_session(
            role,
            "arn:aws:sts::444455556666:assumed-role/Admin/alice"
        ));
        assert!(!role_of_session(
            role,
            "arn:aws:sts::111122223333:assumed-role/Admin2/alice"
        ));
        assert!(!role_of_session(
            "arn:aws:iam::111122223333:user/Admin",
            "arn:aws:sts::111122223333:assumed-role/Admin/alice"
        ));
    }
}
