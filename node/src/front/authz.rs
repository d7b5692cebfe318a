//! Authorization: the single decision point every operation passes through before it acts.
//!
//! # Layout
//!
//! ```text
//!  transport -> Caller (principal ARN, account, source IP; a service identity calling on
//!               behalf of a principal becomes that principal with via_service set)
//!  handler   -> Facts (encryption context, algorithms, grant tokens, ... of the request)
//!  Kms::authorize_key / authorize_account (ops.rs) gathers the key policy, the caller's
//!     identity policies and grants, then calls
//!  keystore::policy::authorize(AuthzInput) -> Allowed | Denied(reason) -> denial() here
//! ```
//!
//! Everything here is plain data and pure functions; the store reads (identity record,
//! grants, key) happen in `ops.rs` through the cache, so revocations take effect within the
//! cache's staleness bound.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, OnceLock};

use keystore::model::{KeyRecord, Origin};
use keystore::policy::{ConditionContext, DenyReason, Policy, PolicyKind, Principal};

use super::errors::KmsError;

/// The authenticated caller, whichever transport it came through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// `arn:aws:iam::<account>:root|user/<name>|role/<name>`.
    pub principal_arn: String,
    /// The principal's account (12 digits).
    pub account_id: String,
    /// The service (`s3.us-east-1.amazonaws.com`) that made this call on behalf of
    /// `principal_arn` (`kms:ViaService`).
    pub via_service: Option<String>,
    /// Set when the caller *is* a service identity acting for itself: its service principal
    /// name (`cloudtrail.amazonaws.com`), which is what key policies name.
    pub service_principal: Option<String>,
    /// The client's address (`aws:SourceIp`), when the transport knows it.
    pub source_ip: Option<IpAddr>,
}

impl Caller {
    /// A caller from an IAM principal ARN (`arn:aws:iam::<account>:...`); `None` if the ARN
    /// is not an IAM principal ARN. The gRPC adapter uses this for certificate URI SANs.
    pub fn from_principal_arn(arn: &str) -> Option<Caller> {
        let account = principal_account(arn)?;
        Some(Caller {
            principal_arn: arn.to_string(),
            account_id: account.to_string(),
            via_service: None,
            service_principal: None,
            source_ip: None,
        })
    }

    /// Whether this is the account's root principal.
    pub fn is_root(&self) -> bool {
        self.service_principal.is_none()
            && self.principal_arn == format!("arn:aws:iam::{}:root", self.account_id)
    }

    /// The principal as the policy evaluator sees it.
    pub fn principal(&self) -> Principal {
        match &self.service_principal {
            Some(name) => Principal::Service { name: name.clone() },
            None => Principal::Aws {
                arn: self.principal_arn.clone(),
                account_id: self.account_id.clone(),
            },
        }
    }
}

/// The account of an IAM principal ARN, if `arn` is one.
pub fn principal_account(arn: &str) -> Option<&str> {
    let mut parts = arn.splitn(6, ':');
    let (prefix, partition, service) = (parts.next()?, parts.next()?, parts.next()?);
    let (region, account, resource) = (parts.next()?, parts.next()?, parts.next()?);
    let ok = prefix == "arn"
        && (partition == "aws" || partition.starts_with("aws-"))
        && (service == "iam" || service == "sts")
        && region.is_empty()
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && !resource.is_empty();
    ok.then_some(account)
}

/// The service principal name of a service endpoint: `s3.us-east-1.amazonaws.com` ->
/// `s3.amazonaws.com` (what `"Principal": {"Service": ...}` names).
pub fn service_principal_name(service: &str) -> String {
    match service.split_once('.') {
        Some((name, rest)) => match rest.split_once('.') {
            // `<name>.<region>.amazonaws.com`: drop the region.
            Some((maybe_region, domain)) if maybe_region.contains('-') && domain.contains('.') => {
                format!("{name}.{domain}")
            }
            _ => service.to_string(),
        },
        None => service.to_string(),
    }
}

/// What a request says beyond who and which key: the condition keys of the operation, its
/// encryption context, its grant tokens.
#[derive(Clone, Debug, Default)]
pub struct Facts<'a> {
    /// `EncryptionContext` of the request (`kms:EncryptionContext:*`, grant constraints).
    pub encryption_context: Option<&'a BTreeMap<String, String>>,
    /// `GrantTokens` of the request.
    pub grant_tokens: &'a [String],
    /// Single-valued condition keys (`kms:SigningAlgorithm`, ...).
    pub values: Vec<(&'static str, String)>,
    /// Multi-valued condition keys (`aws:TagKeys`, `kms:GrantOperations`).
    pub multi: Vec<(&'static str, Vec<String>)>,
    /// Request tags (`aws:RequestTag/<k>`).
    pub request_tags: Vec<(String, String)>,
}

impl<'a> Facts<'a> {
    /// No facts.
    pub fn none() -> Self {
        Facts::default()
    }

    /// The request's encryption context.
    pub fn context(mut self, ctx: Option<&'a BTreeMap<String, String>>) -> Self {
        self.encryption_context = ctx;
        self
    }

    /// The request's grant tokens.
    pub fn tokens(mut self, tokens: &'a Option<Vec<String>>) -> Self {
        self.grant_tokens = tokens.as_deref().unwrap_or(&[]);
        self
    }

    /// A single-valued condition key.
    pub fn with(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.values.push((key, value.into()));
        self
    }

    /// A single-valued condition key, if the request has it.
    pub fn with_opt(self, key: &'static str, value: Option<impl Into<String>>) -> Self {
        match value {
            Some(v) => self.with(key, v),
            None => self,
        }
    }

    /// A multi-valued condition key.
    pub fn with_multi(mut self, key: &'static str, values: Vec<String>) -> Self {
        self.multi.push((key, values));
        self
    }

    /// `kms:RequestAlias`, when the request named its key by an alias (`alias/name` or an
    /// alias ARN).
    pub fn key_ref(self, key_ref: &str) -> Self {
        match key_ref.find("alias/") {
            Some(i) if i == 0 || key_ref.starts_with("arn:") => {
                let alias = key_ref[i..].to_string();
                self.with("kms:RequestAlias", alias)
            }
            _ => self,
        }
    }

    /// Tags of the request (`aws:RequestTag/<k>` and `aws:TagKeys`).
    pub fn request_tags(mut self, tags: Vec<(String, String)>) -> Self {
        self.multi
            .push(("aws:TagKeys", tags.iter().map(|(k, _)| k.clone()).collect()));
        self.request_tags = tags;
        self
    }
}

/// The condition context of one request: the global keys, the key's own (when there is a
/// key), and the request's facts. `now_millis` feeds `aws:CurrentTime` / `aws:EpochTime`.
pub fn condition_context(
    caller: &Caller,
    key: Option<&KeyRecord>,
    facts: &Facts<'_>,
    now_millis: u64,
) -> ConditionContext {
    let mut c = ConditionContext::new();
    // Every transport is TLS.
    c.set("aws:SecureTransport", "true");
    c.set("aws:CurrentTime", rfc3339(now_millis));
    c.set("aws:EpochTime", (now_millis / 1000).to_string());
    if let Some(ip) = caller.source_ip {
        c.set("aws:SourceIp", ip.to_string());
    }
    if let Some(via) = &caller.via_service {
        c.set("kms:ViaService", via.clone());
    }
    if let Some(key) = key {
        c.set("kms:KeySpec", key.key_spec.as_str());
        c.set("kms:KeyUsage", key.key_usage.as_str());
        c.set(
            "kms:KeyOrigin",
            match key.origin {
                Origin::AwsKms => "AWS_KMS",
                Origin::External => "EXTERNAL",
            },
        );
        c.set("kms:MultiRegion", key.multi_region.to_string());
        for (k, v) in &key.tags {
            c.set(&format!("aws:ResourceTag/{k}"), v.clone());
        }
    }
    if let Some(ctx) = facts.encryption_context {
        for (k, v) in ctx {
            c.set(&format!("kms:EncryptionContext:{k}"), v.clone());
        }
        c.set_multi(
            "kms:EncryptionContextKeys",
            ctx.keys().cloned().collect::<Vec<_>>(),
        );
    }
    for (k, v) in &facts.values {
        c.set(k, v.clone());
    }
    for (k, vs) in &facts.multi {
        c.set_multi(k, vs.clone());
    }
    for (k, v) in &facts.request_tags {
        c.set(&format!("aws:RequestTag/{k}"), v.clone());
    }
    c
}

/// `2024-05-01T12:00:00Z` from epoch milliseconds (UTC, civil-from-days).
fn rfc3339(millis: u64) -> String {
    let secs = millis / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    // Howard Hinnant's days-to-civil algorithm.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}Z")
}

/// AWS's AccessDeniedException for `caller` doing `action` on `resource_arn`. A caller from
/// another account learns only that no resource-based policy allowed it: whether the key
/// policy denies explicitly is the owner's business.
pub fn denial(caller: &Caller, action: &str, resource_arn: &str, reason: DenyReason) -> KmsError {
    let cross_account = resource_account(resource_arn).is_some_and(|a| a != caller.account_id);
    let why = match reason {
        _ if cross_account => {
            format!("because no resource-based policy allows the {action} action")
        }
        DenyReason::ExplicitDenyInKeyPolicy => {
            "with an explicit deny in a resource-based policy".to_string()
        }
        DenyReason::ExplicitDenyInIdentityPolicy => {
            "with an explicit deny in an identity-based policy".to_string()
        }
        DenyReason::NoResourcePolicyAllows => {
            format!("because no resource-based policy allows the {action} action")
        }
        DenyReason::NoIdentityPolicyAllows => {
            format!("because no identity-based policy allows the {action} action")
        }
    };
    let who = caller
        .service_principal
        .as_deref()
        .unwrap_or(&caller.principal_arn);
    KmsError::AccessDenied(format!(
        "User: {who} is not authorized to perform: {action} on resource: {resource_arn} {why}"
    ))
}

/// The account of a KMS resource ARN (`arn:aws:kms:<region>:<account>:key/<id>`); `None`
/// for `*` (account-level actions).
fn resource_account(arn: &str) -> Option<&str> {
    let mut parts = arn.splitn(6, ':');
    let _ = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    parts.next().filter(|a| a.len() == 12)
}

/// The identity policy an `admin` identity record stands for (AdministratorAccess).
pub fn administrator_access() -> Arc<Policy> {
    static ADMIN: OnceLock<Arc<Policy>> = OnceLock::new();
    ADMIN
        .get_or_init(|| {
            Arc::new(
                Policy::parse(
                    r#"{"Version":"2012-10-17","Statement":[{"Sid":"AdministratorAccess","Effect":"Allow","Action":"*","Resource":"*"}]}"#,
                    PolicyKind::Identity,
                )
                .expect("the built-in AdministratorAccess policy parses"),
            )
        })
        .clone()
}

/// Parsed policies by (kind, SHA-256 of the document): key policies and identity policies
/// are parsed once per distinct document, not once per request.
pub struct PolicyCache {
    parsed: Mutex<HashMap<PolicyId, Arc<Policy>>>,
}

/// (is a key policy, SHA-256 of the document).
type PolicyId = (bool, [u8; 32]);

/// Distinct documents a front keeps parsed; beyond it the map starts over (rare).
const MAX_PARSED_POLICIES: usize = 10_000;

impl Default for PolicyCache {
    fn default() -> Self {
        PolicyCache {
            parsed: Mutex::new(HashMap::new()),
        }
    }
}

impl PolicyCache {
    /// The parsed form of a stored document. Stored documents were validated when they were
    /// written, so a failure here means a record written by an older, laxer version: it
    /// then grants nothing (fails closed) and is logged without its contents.
    pub fn get(&self, document: &str, kind: PolicyKind) -> Option<Arc<Policy>> {
        let id = (
            kind == PolicyKind::Key,
            keystore::crypto::sha256(document.as_bytes()),
        );
        let mut map = self.parsed.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = map.get(&id) {
            return Some(p.clone());
        }
        match Policy::parse(document, kind) {
            Ok(p) => {
                if map.len() >= MAX_PARSED_POLICIES {
                    map.clear();
                }
                let p = Arc::new(p);
                map.insert(id, p.clone());
                Some(p)
            }
            Err(_) => {
                tracing::warn!(?kind, "a stored policy no longer parses; it allows nothing");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(arn: &str) -> Caller {
        Caller::from_principal_arn(arn).unwrap()
    }

    #[test]
    fn denial_uses_aws_message_shape() {
        let app = caller("arn:aws:iam::111122223333:role/App");
        let key = "arn:aws:kms:us-east-1:111122223333:key/k";
        let e = denial(&app, "kms:Encrypt", key, DenyReason::NoIdentityPolicyAllows);
        assert_eq!(e.aws_type(), "AccessDeniedException");
        assert_eq!(
            e.to_string(),
            "User: arn:aws:iam::111122223333:role/App is not authorized to perform: kms:Encrypt \
             on resource: arn:aws:kms:us-east-1:111122223333:key/k because no identity-based \
             policy allows the kms:Encrypt action"
        );
        let e = denial(
            &app,
            "kms:Decrypt",
            key,
            DenyReason::ExplicitDenyInKeyPolicy,
        );
        assert!(e
            .to_string()
            .ends_with("with an explicit deny in a resource-based policy"));
    }

    #[test]
    fn another_accounts_caller_never_learns_of_an_explicit_deny() {
        let other = caller("arn:aws:iam::444455556666:role/Ci");
        let key = "arn:aws:kms:us-east-1:111122223333:key/k";
        for reason in [
            DenyReason::ExplicitDenyInKeyPolicy,
            DenyReason::NoResourcePolicyAllows,
            DenyReason::NoIdentityPolicyAllows,
        ] {
            let e = denial(&other, "kms:Decrypt", key, reason).to_string();
            assert!(
                e.ends_with("because no resource-based policy allows the kms:Decrypt action"),
                "{e}"
            );
        }
    }

    #[test]
    fn principal_arns_parse_strictly() {
        assert_eq!(
            caller("arn:aws:iam::111122223333:root").account_id,
            "111122223333"
        );
        assert!(caller("arn:aws:iam::111122223333:root").is_root());
        assert!(!caller("arn:aws:iam::111122223333:user/root").is_root());
        for bad in [
            "",
            "arn:aws:iam::1111:root",
            "arn:aws:kms:us-east-1:111122223333:key/x",
            "arn:aws:iam:us-east-1:111122223333:root",
            "arn:aws:iam::111122223333:",
            "arn:aws:iam::11112222333x:root",
        ] {
            assert_eq!(Caller::from_principal_arn(bad), None, "{bad}");
        }
    }

    #[test]
    fn service_endpoints_name_their_service_principal() {
        assert_eq!(
            service_principal_name("s3.us-east-1.amazonaws.com"),
            "s3.amazonaws.com"
        );
        assert_eq!(
            service_principal_name("cloudtrail.amazonaws.com"),
            "cloudtrail.amazonaws.com"
        );
        assert_eq!(service_principal_name("rds"), "rds");
    }

    #[test]
    fn current_time_is_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_709_251_199_000), "2024-02-29T23:59:59Z");
        assert_eq!(rfc3339(4_102_444_800_000), "2100-01-01T00:00:00Z");
    }

    #[test]
    fn condition_context_carries_key_and_request_facts() {
        let mut c = caller("arn:aws:iam::111122223333:role/App");
        c.via_service = Some("s3.us-east-1.amazonaws.com".into());
        let ctx: BTreeMap<String, String> = [("Pipeline".to_string(), "DevOps".to_string())]
            .into_iter()
            .collect();
        let facts = Facts::none()
            .context(Some(&ctx))
            .with("kms:EncryptionAlgorithm", "SYMMETRIC_DEFAULT");
        let cc = condition_context(&c, None, &facts, 0);
        assert_eq!(
            cc.get("kms:encryptioncontext:pipeline"),
            Some(&["DevOps".to_string()][..])
        );
        assert_eq!(
            cc.get("kms:ViaService"),
            Some(&["s3.us-east-1.amazonaws.com".to_string()][..])
        );
        assert_eq!(
            cc.get("kms:EncryptionContextKeys"),
            Some(&["Pipeline".to_string()][..])
        );
        assert!(cc.get("aws:SourceIp").is_none());
    }
}
