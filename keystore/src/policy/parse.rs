//! The policy grammar: turning a JSON document into a validated `Policy`.
//!
//! Strict where AWS is strict (unknown elements, duplicate Sids, a key policy without a
//! principal, an identity policy with one), so that a document keyraft accepts behaves the
//! same under AWS and a typo cannot silently widen or narrow access.

use super::condition::{self, Condition};
use super::json::Json;
use super::{PolicyError, PolicyKind, MAX_IDENTITY_POLICY_BYTES, MAX_KEY_POLICY_BYTES};

/// A parsed, validated policy document.
#[derive(Clone, Debug)]
pub struct Policy {
    pub(crate) kind: PolicyKind,
    pub(crate) statements: Vec<Statement>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Effect {
    Allow,
    Deny,
}

/// `Action`/`NotAction`, `Resource`/`NotResource`: patterns, and whether the element is the
/// `Not` form (matches what none of the patterns match).
#[derive(Clone, Debug)]
pub(crate) struct Patterns {
    pub(crate) negated: bool,
    pub(crate) patterns: Vec<String>,
}

#[derive(Clone, Debug)]
pub(crate) struct Statement {
    pub(crate) effect: Effect,
    /// `None` in identity policies: the principal is whoever the policy is attached to.
    pub(crate) principal: Option<PrincipalSpec>,
    pub(crate) actions: Patterns,
    /// `None`: no Resource element (key policies), meaning the key itself.
    pub(crate) resources: Option<Patterns>,
    pub(crate) conditions: Vec<Condition>,
}

#[derive(Clone, Debug)]
pub(crate) struct PrincipalSpec {
    /// `NotPrincipal`.
    pub(crate) negated: bool,
    pub(crate) set: PrincipalSet,
}

/// The principals one `Principal` element names.
#[derive(Clone, Debug, Default)]
pub(crate) struct PrincipalSet {
    /// `"Principal": "*"`: everyone, services included.
    pub(crate) everyone: bool,
    pub(crate) aws: Vec<AwsPrincipal>,
    pub(crate) services: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum AwsPrincipal {
    /// `{"AWS": "*"}`: every IAM principal of every account.
    Any,
    /// `"111122223333"` or `"arn:aws:iam::111122223333:root"`: the account.
    Account(String),
    /// A user, role or session ARN.
    Arn(String),
}

const TOP_LEVEL: &[&str] = &["Version", "Id", "Statement"];
const STATEMENT_ELEMENTS: &[&str] = &[
    "Sid",
    "Effect",
    "Principal",
    "NotPrincipal",
    "Action",
    "NotAction",
    "Resource",
    "NotResource",
    "Condition",
];

impl Policy {
    /// Whether any statement has a condition on `key` (case-insensitive, as condition keys
    /// are): lets callers gather costly context values (e.g. `kms:ResourceAliases`) only for
    /// policies that read them.
    pub fn uses_condition_key(&self, key: &str) -> bool {
        self.statements
            .iter()
            .flat_map(|s| &s.conditions)
            .any(|c| c.key().eq_ignore_ascii_case(key))
    }

    /// Parses and validates a policy document of the given kind.
    pub fn parse(json: &str, kind: PolicyKind) -> Result<Policy, PolicyError> {
        check_size(json, kind)?;
        let doc = Json::parse(json)
            .map_err(|e| PolicyError(format!("The policy is not valid JSON: {e}")))?;
        let Json::Object(top) = doc else {
            return Err(PolicyError(format!(
                "The policy must be a JSON object, not {}",
                doc.type_name()
            )));
        };
        for (name, _) in &top {
            if !TOP_LEVEL.contains(&name.as_str()) {
                return Err(PolicyError(format!(
                    "Unknown policy element \"{name}\" (expected Version, Id, Statement)"
                )));
            }
        }
        let field = |name: &str| top.iter().find(|(k, _)| k == name).map(|(_, v)| v);
        match field("Version") {
            None => {}
            Some(Json::String(v)) if v == "2012-10-17" || v == "2008-10-17" => {}
            Some(Json::String(v)) => {
                return Err(PolicyError(format!(
                    "Unsupported policy Version \"{v}\" (use \"2012-10-17\")"
                )))
            }
            Some(v) => {
                return Err(PolicyError(format!(
                    "Version must be a string, not {}",
                    v.type_name()
                )))
            }
        }
        if let Some(id) = field("Id") {
            if !matches!(id, Json::String(_)) {
                return Err(PolicyError(format!(
                    "Id must be a string, not {}",
                    id.type_name()
                )));
            }
        }
        let raw_statements: Vec<&Json> = match field("Statement") {
            None => return Err(PolicyError("The policy has no Statement".into())),
            Some(Json::Array(items)) => items.iter().collect(),
            Some(obj @ Json::Object(_)) => vec![obj],
            Some(other) => {
                return Err(PolicyError(format!(
                    "Statement must be an object or a list of objects, not {}",
                    other.type_name()
                )))
            }
        };
        if raw_statements.is_empty() {
            return Err(PolicyError("The policy's Statement list is empty".into()));
        }
        let mut sids: Vec<&str> = Vec::new();
        let mut statements = Vec::with_capacity(raw_statements.len());
        for (i, raw) in raw_statements.into_iter().enumerate() {
            let (statement, sid) = parse_statement(raw, i + 1, kind)?;
            if let Some(sid) = sid {
                if sids.contains(&sid) {
                    return Err(PolicyError(format!(
                        "Statement {}: duplicate Sid \"{sid}\" (Sids must be unique)",
                        i + 1
                    )));
                }
                sids.push(sid);
            }
            statements.push(statement);
        }
        Ok(Policy { kind, statements })
    }

    /// Which grammar the policy was parsed with.
    pub fn kind(&self) -> PolicyKind {
        self.kind
    }
}

fn check_size(json: &str, kind: PolicyKind) -> Result<(), PolicyError> {
    let (size, max, unit) = match kind {
        PolicyKind::Key => (json.len(), MAX_KEY_POLICY_BYTES, "bytes"),
        PolicyKind::Identity => (
            json.chars().filter(|c| !c.is_whitespace()).count(),
            MAX_IDENTITY_POLICY_BYTES,
            "non-whitespace characters",
        ),
    };
    if size > max {
        return Err(PolicyError(format!(
            "The policy is {size} {unit}, which exceeds the maximum size of {max} {unit}"
        )));
    }
    Ok(())
}

fn parse_statement(
    raw: &Json,
    index: usize,
    kind: PolicyKind,
) -> Result<(Statement, Option<&str>), PolicyError> {
    let Json::Object(fields) = raw else {
        return Err(PolicyError(format!(
            "Statement {index} must be an object, not {}",
            raw.type_name()
        )));
    };
    let sid = match fields.iter().find(|(k, _)| k == "Sid").map(|(_, v)| v) {
        None => None,
        Some(Json::String(s)) => Some(s.as_str()),
        Some(other) => {
            return Err(PolicyError(format!(
                "Statement {index}: Sid must be a string, not {}",
                other.type_name()
            )))
        }
    };
    let at = match sid {
        Some(s) => format!("Statement {index} (Sid \"{s}\")"),
        None => format!("Statement {index}"),
    };
    for (name, _) in fields {
        if !STATEMENT_ELEMENTS.contains(&name.as_str()) {
            return Err(PolicyError(format!("{at}: unknown element \"{name}\"")));
        }
    }
    let get = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v);

    let effect = match get("Effect") {
        Some(Json::String(e)) if e == "Allow" => Effect::Allow,
        Some(Json::String(e)) if e == "Deny" => Effect::Deny,
        Some(Json::String(e)) => {
            return Err(PolicyError(format!(
                "{at}: Effect must be \"Allow\" or \"Deny\", not \"{e}\""
            )))
        }
        Some(other) => {
            return Err(PolicyError(format!(
                "{at}: Effect must be \"Allow\" or \"Deny\", not {}",
                other.type_name()
            )))
        }
        None => return Err(PolicyError(format!("{at}: missing Effect"))),
    };

    let principal = match (get("Principal"), get("NotPrincipal"), kind) {
        (Some(_), Some(_), _) => {
            return Err(PolicyError(format!(
                "{at}: has both Principal and NotPrincipal"
            )))
        }
        (Some(_), None, PolicyKind::Identity) | (None, Some(_), PolicyKind::Identity) => {
            return Err(PolicyError(format!(
                "{at}: identity policies must not have a Principal or NotPrincipal"
            )))
        }
        (None, None, PolicyKind::Identity) => None,
        (None, None, PolicyKind::Key) => {
            return Err(PolicyError(format!(
                "{at}: missing Principal (key policies must name one)"
            )))
        }
        (Some(p), None, PolicyKind::Key) => Some(PrincipalSpec {
            negated: false,
            set: parse_principal(p, &at, "Principal")?,
        }),
        (None, Some(p), PolicyKind::Key) => Some(PrincipalSpec {
            negated: true,
            set: parse_principal(p, &at, "NotPrincipal")?,
        }),
    };

    let actions = match (get("Action"), get("NotAction")) {
        (Some(_), Some(_)) => {
            return Err(PolicyError(format!("{at}: has both Action and NotAction")))
        }
        (None, None) => return Err(PolicyError(format!("{at}: missing Action"))),
        (Some(a), None) => Patterns {
            negated: false,
            patterns: parse_actions(a, &at, "Action")?,
        },
        (None, Some(a)) => Patterns {
            negated: true,
            patterns: parse_actions(a, &at, "NotAction")?,
        },
    };

    let resources = match (get("Resource"), get("NotResource")) {
        (Some(_), Some(_)) => {
            return Err(PolicyError(format!(
                "{at}: has both Resource and NotResource"
            )))
        }
        (None, None) => match kind {
            PolicyKind::Key => None,
            PolicyKind::Identity => return Err(PolicyError(format!("{at}: missing Resource"))),
        },
        (Some(r), None) => Some(Patterns {
            negated: false,
            patterns: parse_resources(r, &at, "Resource")?,
        }),
        (None, Some(r)) => Some(Patterns {
            negated: true,
            patterns: parse_resources(r, &at, "NotResource")?,
        }),
    };

    let conditions = match get("Condition") {
        None => Vec::new(),
        Some(block) => condition::parse_block(block, &at)?,
    };

    Ok((
        Statement {
            effect,
            principal,
            actions,
            resources,
            conditions,
        },
        sid,
    ))
}

/// A string or a non-empty list of strings.
fn string_list(raw: &Json, at: &str, element: &str) -> Result<Vec<String>, PolicyError> {
    let bad = |v: &Json| {
        PolicyError(format!(
            "{at}: {element} must be a string or a list of strings, not {}",
            v.type_name()
        ))
    };
    match raw {
        Json::String(s) => Ok(vec![s.clone()]),
        Json::Array(items) => {
            if items.is_empty() {
                return Err(PolicyError(format!("{at}: {element} is an empty list")));
            }
            items
                .iter()
                .map(|v| match v {
                    Json::String(s) => Ok(s.clone()),
                    other => Err(bad(other)),
                })
                .collect()
        }
        other => Err(bad(other)),
    }
}

fn parse_actions(raw: &Json, at: &str, element: &str) -> Result<Vec<String>, PolicyError> {
    let actions = string_list(raw, at, element)?;
    for a in &actions {
        let valid = a == "*"
            || a.split_once(':').is_some_and(|(service, name)| {
                !service.is_empty()
                    && !name.is_empty()
                    && service
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-')
                    && !name.contains(':')
            });
        if !valid {
            return Err(PolicyError(format!(
                "{at}: {element} \"{a}\" is not \"*\" or \"service:action\" (e.g. \"kms:Encrypt\")"
            )));
        }
    }
    Ok(actions)
}

fn parse_resources(raw: &Json, at: &str, element: &str) -> Result<Vec<String>, PolicyError> {
    let resources = string_list(raw, at, element)?;
    for r in &resources {
        if r != "*" && !(r.starts_with("arn:") && r.splitn(6, ':').count() == 6) {
            return Err(PolicyError(format!(
                "{at}: {element} \"{r}\" must be \"*\" or an ARN"
            )));
        }
    }
    Ok(resources)
}

fn parse_principal(raw: &Json, at: &str, element: &str) -> Result<PrincipalSet, PolicyError> {
    let mut set = PrincipalSet::default();
    let entries = match raw {
        Json::String(s) if s == "*" => {
            set.everyone = true;
            return Ok(set);
        }
        Json::Object(entries) if !entries.is_empty() => entries,
        Json::Object(_) => {
            return Err(PolicyError(format!("{at}: {element} is an empty object")));
        }
        other => {
            return Err(PolicyError(format!(
                "{at}: {element} must be \"*\" or an object such as {{\"AWS\": \"...\"}}, \
                 not {}",
                match other {
                    Json::String(s) => format!("\"{s}\""),
                    _ => other.type_name().to_owned(),
                }
            )))
        }
    };
    for (ptype, value) in entries {
        let where_ = format!("{element} \"{ptype}\"");
        let values = string_list(value, at, &where_)?;
        match ptype.as_str() {
            "AWS" => {
                for v in values {
                    set.aws.push(parse_aws_principal(&v).ok_or_else(|| {
                        PolicyError(format!(
                            "{at}: {element} contains an invalid AWS principal \"{v}\" \
                             (use \"*\", an account id, or an IAM ARN without wildcards)"
                        ))
                    })?);
                }
            }
            "Service" => {
                for v in values {
                    if v.is_empty() || v.contains(['*', '?']) || v.contains(char::is_whitespace) {
                        return Err(PolicyError(format!(
                            "{at}: {element} contains an invalid Service principal \"{v}\""
                        )));
                    }
                    set.services.push(v);
                }
            }
            // Federated and CanonicalUser principals never call keyraft; they are accepted
            // so documents written for AWS load, and match no request.
            "Federated" | "CanonicalUser" => {}
            other => {
                return Err(PolicyError(format!(
                    "{at}: {element} has unknown principal type \"{other}\" \
                     (expected AWS, Service, Federated or CanonicalUser)"
                )))
            }
        }
    }
    Ok(set)
}

fn parse_aws_principal(v: &str) -> Option<AwsPrincipal> {
    if v == "*" {
        return Some(AwsPrincipal::Any);
    }
    if v.len() == 12 && v.bytes().all(|b| b.is_ascii_digit()) {
        return Some(AwsPrincipal::Account(v.to_owned()));
    }
    // AWS allows no partial wildcards in principals.
    if v.contains(['*', '?']) {
        return None;
    }
    let parts: Vec<&str> = v.splitn(6, ':').collect();
    let [prefix, partition, service, region, account, resource] = parts.as_slice() else {
        return None;
    };
    let valid = *prefix == "arn"
        && !partition.is_empty()
        && (*service == "iam" || *service == "sts")
        && region.is_empty()
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && !resource.is_empty();
    if !valid {
        return None;
    }
    if *service == "iam" && *resource == "root" {
        return Some(AwsPrincipal::Account((*account).to_owned()));
    }
    Some(AwsPrincipal::Arn(v.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aws_principals_normalise_accounts() {
        assert_eq!(
            parse_aws_principal("111122223333"),
            Some(AwsPrincipal::Account("111122223333".into()))
        );
        assert_eq!(
            parse_aws_principal("arn:aws:iam::111122223333:root"),
            Some(AwsPrincipal::Account("111122223333".into()))
        );
        assert_eq!(
            parse_aws_principal("arn:aws:iam::111122223333:role/R"),
            Some(AwsPrincipal::Arn("arn:aws:iam::111122223333:role/R".into()))
        );
        for bad in [
            "11112222333",
            "arn:aws:iam::111122223333:role/*",
            "arn:aws:s3:::bucket",
            "arn:aws:iam::1:root",
            "arn:aws:iam:us-east-1:111122223333:user/u",
            "alice",
        ] {
            assert_eq!(parse_aws_principal(bad), None, "{bad:?}");
        }
    }
}
