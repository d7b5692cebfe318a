//! Identity management: principals, their access keys, identity policies and client
//! certificates (`X-Amz-Target: KeyraftIam.<Operation>` on the JSON endpoint, service `Iam`
//! over gRPC).
//!
//! # Layout
//!
//! ```text
//! IamOperation          wire name <-> "iam:<Operation>" action
//! Kms::dispatch_iam     JSON body -> request shape -> Kms::<operation> -> JSON body
//! Kms::<operation>      validate -> same account? -> authorize_account("iam:<Op>") -> act
//! ```
//!
//! Every operation is an account-level action: the account root is always allowed, anyone
//! else needs an identity policy allowing `iam:<Operation>`. A caller manages principals of
//! its own account only; an ARN naming another account is refused with AccessDenied. Calls a
//! service identity makes on behalf of someone are refused too: services act on keys, not on
//! identities. The root's own credentials (access keys, certificates) are managed by the root
//! alone, as in IAM.
//!
//! Secrets (an access key's secret, an issued private key) exist in the clear only in the one
//! response that hands them out; the access-key secret is stored wrapped under the domain key.

use keystore::model::IdentityRecord;
use keystore::policy::{Policy, PolicyKind, MAX_IDENTITY_POLICY_BYTES};
use serde::{Deserialize, Serialize};

use super::*;

/// Most access keys one principal may have (`LimitExceededException` beyond), as in IAM.
pub const MAX_ACCESS_KEYS_PER_PRINCIPAL: usize = 2;
/// Validity of an issued client certificate unless the request says otherwise (days).
pub const DEFAULT_CERT_VALIDITY_DAYS: i64 = 365;
/// Longest validity IssueClientCertificate grants (days).
pub const MAX_CERT_VALIDITY_DAYS: i64 = 3650;
/// Largest ListPrincipals page.
pub const MAX_LIST_PRINCIPALS_LIMIT: i64 = 1000;
/// Longest user or role name, as in IAM.
pub const MAX_PRINCIPAL_NAME: usize = 64;
/// Longest inline policy name, as in IAM.
pub const MAX_POLICY_NAME: usize = 128;

/// The CA a front issues client certificates with (IssueClientCertificate).
pub type ClientCertIssuer = crate::certs::IssuingCa;

/// `AKIA` + 16 characters of base32, like AWS access key ids.
pub fn new_access_key_id() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let random = crypto::random_secret(16);
    let tail: String = random
        .expose_secret()
        .iter()
        .map(|b| ALPHABET[(*b & 31) as usize] as char)
        .collect();
    format!("AKIA{tail}")
}

/// 40 characters from AWS's secret alphabet (base64 of 30 random bytes).
pub fn new_secret_access_key() -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(crypto::random_secret(30).expose_secret())
}

/// The identity management operations, by wire name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IamOperation {
    /// CreatePrincipal.
    CreatePrincipal,
    /// ListPrincipals.
    ListPrincipals,
    /// GetPrincipal.
    GetPrincipal,
    /// DeletePrincipal.
    DeletePrincipal,
    /// CreateAccessKey.
    CreateAccessKey,
    /// ListAccessKeys.
    ListAccessKeys,
    /// DeleteAccessKey.
    DeleteAccessKey,
    /// PutPrincipalPolicy.
    PutPrincipalPolicy,
    /// GetPrincipalPolicy.
    GetPrincipalPolicy,
    /// ListPrincipalPolicies.
    ListPrincipalPolicies,
    /// DeletePrincipalPolicy.
    DeletePrincipalPolicy,
    /// IssueClientCertificate.
    IssueClientCertificate,
}

impl IamOperation {
    /// The `X-Amz-Target` prefix of these operations.
    pub const TARGET_PREFIX: &'static str = "KeyraftIam.";

    /// Every operation.
    pub const ALL: [IamOperation; 12] = [
        IamOperation::CreatePrincipal,
        IamOperation::ListPrincipals,
        IamOperation::GetPrincipal,
        IamOperation::DeletePrincipal,
        IamOperation::CreateAccessKey,
        IamOperation::ListAccessKeys,
        IamOperation::DeleteAccessKey,
        IamOperation::PutPrincipalPolicy,
        IamOperation::GetPrincipalPolicy,
        IamOperation::ListPrincipalPolicies,
        IamOperation::DeletePrincipalPolicy,
        IamOperation::IssueClientCertificate,
    ];

    /// `KeyraftIam.<Operation>` -> the operation.
    pub fn from_target(target: &str) -> Option<IamOperation> {
        let name = target.strip_prefix(Self::TARGET_PREFIX)?;
        Self::ALL.into_iter().find(|op| op.name() == name)
    }

    /// The wire name.
    pub fn name(self) -> &'static str {
        self.action().trim_start_matches("iam:")
    }

    /// The IAM action an identity policy must allow.
    pub fn action(self) -> &'static str {
        use IamOperation as O;
        match self {
            O::CreatePrincipal => "iam:CreatePrincipal",
            O::ListPrincipals => "iam:ListPrincipals",
            O::GetPrincipal => "iam:GetPrincipal",
            O::DeletePrincipal => "iam:DeletePrincipal",
            O::CreateAccessKey => "iam:CreateAccessKey",
            O::ListAccessKeys => "iam:ListAccessKeys",
            O::DeleteAccessKey => "iam:DeleteAccessKey",
            O::PutPrincipalPolicy => "iam:PutPrincipalPolicy",
            O::GetPrincipalPolicy => "iam:GetPrincipalPolicy",
            O::ListPrincipalPolicies => "iam:ListPrincipalPolicies",
            O::DeletePrincipalPolicy => "iam:DeletePrincipalPolicy",
            O::IssueClientCertificate => "iam:IssueClientCertificate",
        }
    }
}

// ---- shapes ---------------------------------------------------------------------------------

// Request shapes: every member optional, so a missing one is AWS's "Value null" error.
use crate::front::shapes::shape;

shape!(
    /// `CreatePrincipalRequest`.
    CreatePrincipalRequest {
        /// `user/<name>` or `role/<name>`.
        principal_name: String,
        /// Makes a service identity (e.g. `s3.us-east-1.amazonaws.com`).
        service: String,
    }
);

shape!(
    /// `ListPrincipalsRequest`.
    ListPrincipalsRequest {
        /// Page size (1..=1000, default 100).
        limit: i64,
        /// `NextMarker` of the previous page.
        marker: String,
    }
);

shape!(
    /// A request naming one principal (GetPrincipal, DeletePrincipal, CreateAccessKey,
    /// ListAccessKeys, ListPrincipalPolicies).
    PrincipalArnRequest {
        /// `arn:aws:iam::<account>:root|user/<name>|role/<name>`.
        principal_arn: String,
    }
);

shape!(
    /// `DeleteAccessKeyRequest`.
    DeleteAccessKeyRequest {
        /// The access key.
        access_key_id: String,
        /// Optional: the principal it must belong to.
        principal_arn: String,
    }
);

shape!(
    /// `PutPrincipalPolicyRequest`.
    PutPrincipalPolicyRequest {
        /// The principal.
        principal_arn: String,
        /// Policy name (IAM's `[\w+=,.@-]+`, 1..=128).
        policy_name: String,
        /// The identity policy (JSON).
        policy_document: String,
    }
);

shape!(
    /// GetPrincipalPolicy and DeletePrincipalPolicy.
    PrincipalPolicyRequest {
        /// The principal.
        principal_arn: String,
        /// Policy name.
        policy_name: String,
    }
);

shape!(
    /// `IssueClientCertificateRequest`.
    IssueClientCertificateRequest {
        /// The principal the certificate names.
        principal_arn: String,
        /// Validity in days (1..=3650, default 365).
        validity_days: i64,
    }
);

/// A principal as the API shows it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PrincipalMetadata {
    /// Its ARN.
    pub arn: String,
    /// Owning account.
    pub account_id: String,
    /// `root`, `user/<name>` or `role/<name>`.
    pub principal_name: String,
    /// Set for a service identity.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Whether it has AdministratorAccess built in (dev identities).
    pub admin: bool,
    /// Creation time (epoch seconds; 0 when unknown).
    pub creation_date: EpochSeconds,
    /// Names of its inline identity policies.
    pub policy_names: Vec<String>,
}

/// `{"Principal": ...}`: CreatePrincipal and GetPrincipal.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PrincipalResponse {
    /// The principal.
    pub principal: PrincipalMetadata,
}

/// `ListPrincipalsResponse`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListPrincipalsResponse {
    /// This page, in ARN order.
    pub principals: Vec<PrincipalMetadata>,
    /// Pass as `Marker` for the next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_marker: Option<String>,
    /// Whether more pages remain.
    pub truncated: bool,
}

/// An access key without its secret.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AccessKeyMetadata {
    /// The access key id.
    pub access_key_id: String,
    /// The principal it authenticates as.
    pub principal_arn: String,
    /// Creation time (epoch seconds).
    pub creation_date: EpochSeconds,
}

/// A secret string handed out once (an access key secret, a private key PEM): zeroized on
/// drop, redacted in `Debug`, serialized as a plain string.
#[derive(Clone)]
pub struct SecretText(Secret);

impl SecretText {
    /// Takes ownership of `text`.
    pub fn new(text: String) -> Self {
        SecretText(Secret::new(text.into_bytes()))
    }

    /// The secret text.
    pub fn expose_secret(&self) -> &str {
        // Built from a `String` only.
        std::str::from_utf8(self.0.expose_secret()).unwrap_or_default()
    }
}

impl std::fmt::Debug for SecretText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretText(<redacted>)")
    }
}

impl Serialize for SecretText {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.expose_secret())
    }
}

/// `CreateAccessKeyResponse`: the only place the secret is ever shown.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateAccessKeyResponse {
    /// The new key.
    pub access_key: NewAccessKey,
}

/// A new access key with its secret.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct NewAccessKey {
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key (shown only here).
    pub secret_access_key: SecretText,
    /// The principal it authenticates as.
    pub principal_arn: String,
    /// Creation time (epoch seconds).
    pub creation_date: EpochSeconds,
}

/// `ListAccessKeysResponse`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListAccessKeysResponse {
    /// The principal's keys, in id order.
    pub access_keys: Vec<AccessKeyMetadata>,
}

/// `GetPrincipalPolicyResponse`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetPrincipalPolicyResponse {
    /// The principal.
    pub principal_arn: String,
    /// Policy name.
    pub policy_name: String,
    /// The document.
    pub policy_document: String,
}

/// `ListPrincipalPoliciesResponse`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListPrincipalPoliciesResponse {
    /// Policy names, sorted.
    pub policy_names: Vec<String>,
}

/// `IssueClientCertificateResponse`: the private key is shown only here.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct IssueClientCertificateResponse {
    /// The principal the certificate names (URI SAN).
    pub principal_arn: String,
    /// The certificate (PEM).
    pub certificate_pem: String,
    /// Its private key (PKCS#8 PEM).
    pub private_key_pem: SecretText,
    /// The CA certificate it chains to (PEM).
    pub ca_certificate_pem: String,
    /// End of validity (epoch seconds).
    pub not_after: EpochSeconds,
}

// ---- validation -----------------------------------------------------------------------------

/// IAM's name alphabet (`[\w+=,.@-]`).
fn iam_name_ok(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_+=,.@-".contains(&b))
}

/// Checks a `user/<name>` or `role/<name>` principal name.
fn check_principal_name(member: &str, s: &str) -> Result<(), KmsError> {
    check_len(member, s, 1, MAX_PRINCIPAL_NAME + 5)?;
    let name = s
        .strip_prefix("user/")
        .or_else(|| s.strip_prefix("role/"))
        .ok_or_else(|| {
            KmsError::Validation(format!(
                "{member} must be user/<name> or role/<name>, not '{}'",
                s.chars().take(64).collect::<String>()
            ))
        })?;
    if name.is_empty() || name.chars().count() > MAX_PRINCIPAL_NAME || !iam_name_ok(name) {
        return Err(KmsError::constraint(
            member,
            &format!("'{s}'"),
            &format!(
                "the name after user/ or role/ must have 1 to {MAX_PRINCIPAL_NAME} characters \
                 of [A-Za-z0-9_+=,.@-]"
            ),
        ));
    }
    Ok(())
}

/// A target principal ARN, checked: `arn:aws:iam::<account>:root|user/<n>|role/<n>`.
#[derive(Debug)]
struct Target {
    arn: String,
    account_id: String,
    /// `root`, `user/<name>` or `role/<name>`.
    name: String,
}

impl Target {
    fn is_root(&self) -> bool {
        self.name == "root"
    }
}

fn parse_target(member: &str, arn: Option<String>) -> Result<Target, KmsError> {
    let arn = require(arn, member)?;
    check_len(member, &arn, 1, MAX_KEY_ID)?;
    let invalid = || {
        KmsError::Validation(format!(
            "{member} must be an IAM principal ARN (arn:aws:iam::<account>:root, \
             ...:user/<name> or ...:role/<name>), not '{}'",
            arn.chars().take(128).collect::<String>()
        ))
    };
    let mut parts = arn.splitn(6, ':');
    let fields: Vec<&str> = (0..6).filter_map(|_| parts.next()).collect();
    let [prefix, partition, service, region, account, resource] = fields[..] else {
        return Err(invalid());
    };
    let ok = prefix == "arn"
        && (partition == "aws" || partition.starts_with("aws-"))
        && service == "iam"
        && region.is_empty()
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit());
    if !ok {
        return Err(invalid());
    }
    if resource != "root" {
        check_principal_name(member, resource).map_err(|_| invalid())?;
    }
    Ok(Target {
        account_id: account.to_string(),
        name: resource.to_string(),
        arn: arn.clone(),
    })
}

fn check_policy_name_iam(name: Option<String>) -> Result<String, KmsError> {
    let name = require(name, "PolicyName")?;
    check_len("PolicyName", &name, 1, MAX_POLICY_NAME)?;
    if !iam_name_ok(&name) {
        return Err(KmsError::constraint(
            "PolicyName",
            &format!("'{name}'"),
            "Member must satisfy regular expression pattern: [\\w+=,.@-]+",
        ));
    }
    Ok(name)
}

/// A service name like `s3.us-east-1.amazonaws.com`.
fn check_service(s: &str) -> Result<(), KmsError> {
    check_len("Service", s, 1, 253)?;
    let ok = s
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && !s.starts_with('.')
        && !s.ends_with('.')
        && !s.contains("..");
    if !ok {
        return Err(KmsError::constraint(
            "Service",
            &format!("'{s}'"),
            "Member must be a service endpoint name such as s3.us-east-1.amazonaws.com",
        ));
    }
    Ok(())
}

fn check_access_key_id(id: &str) -> Result<(), KmsError> {
    check_len("AccessKeyId", id, 16, 128)?;
    if !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(KmsError::constraint(
            "AccessKeyId",
            &format!("'{id}'"),
            "Member must satisfy regular expression pattern: [\\w]+",
        ));
    }
    Ok(())
}

fn principal_not_found(arn: &str) -> KmsError {
    KmsError::NotFound(format!("The principal {arn} cannot be found."))
}

fn principal_metadata(i: &IdentityRecord) -> PrincipalMetadata {
    PrincipalMetadata {
        arn: i.arn.clone(),
        account_id: i.account_id.clone(),
        principal_name: i.arn.splitn(6, ':').nth(5).unwrap_or_default().to_string(),
        service: i.service.clone(),
        admin: i.admin,
        creation_date: epoch_seconds(i.created_at),
        policy_names: i.policies.keys().cloned().collect(),
    }
}

const PRINCIPALS_MARKER_TAG: &str = "p1:";

// ---- operations -----------------------------------------------------------------------------

impl Kms {
    /// Lets this front issue client certificates (IssueClientCertificate) with `issuer`, the
    /// deployment CA. Only the first call has an effect.
    pub fn set_client_cert_issuer(&self, issuer: ClientCertIssuer) {
        let _ = self.client_cert_issuer.set(issuer);
    }

    /// Runs an identity management operation with a JSON request body and returns the JSON
    /// response body.
    pub async fn dispatch_iam(
        &self,
        caller: &Caller,
        op: IamOperation,
        body: &[u8],
    ) -> Result<Vec<u8>, KmsError> {
        use IamOperation as O;
        match op {
            O::CreatePrincipal => {
                to_body(&self.create_principal(caller, parse_request(body)?).await?)
            }
            O::ListPrincipals => {
                to_body(&self.list_principals(caller, parse_request(body)?).await?)
            }
            O::GetPrincipal => to_body(&self.get_principal(caller, parse_request(body)?).await?),
            O::DeletePrincipal => {
                to_body(&self.delete_principal(caller, parse_request(body)?).await?)
            }
            O::CreateAccessKey => {
                to_body(&self.create_access_key(caller, parse_request(body)?).await?)
            }
            O::ListAccessKeys => {
                to_body(&self.list_access_keys(caller, parse_request(body)?).await?)
            }
            O::DeleteAccessKey => {
                to_body(&self.delete_access_key(caller, parse_request(body)?).await?)
            }
            O::PutPrincipalPolicy => to_body(
                &self
                    .put_principal_policy(caller, parse_request(body)?)
                    .await?,
            ),
            O::GetPrincipalPolicy => to_body(
                &self
                    .get_principal_policy(caller, parse_request(body)?)
                    .await?,
            ),
            O::ListPrincipalPolicies => to_body(
                &self
                    .list_principal_policies(caller, parse_request(body)?)
                    .await?,
            ),
            O::DeletePrincipalPolicy => to_body(
                &self
                    .delete_principal_policy(caller, parse_request(body)?)
                    .await?,
            ),
            O::IssueClientCertificate => to_body(
                &self
                    .issue_client_certificate(caller, parse_request(body)?)
                    .await?,
            ),
        }
    }

    /// The checks every identity operation starts with: not through a service acting on
    /// someone's behalf, the target (if any) in the caller's own account, and an identity
    /// policy (or being the root) allowing the action.
    async fn authorize_iam(
        &self,
        caller: &Caller,
        op: IamOperation,
        target: Option<&Target>,
    ) -> Result<(), KmsError> {
        if caller.via_service.is_some() || caller.service_principal.is_some() {
            return Err(KmsError::AccessDenied(format!(
                "User: {} is not authorized to perform: {} through a service",
                caller
                    .service_principal
                    .as_deref()
                    .unwrap_or(&caller.principal_arn),
                op.action()
            )));
        }
        if let Some(t) = target {
            if t.account_id != caller.account_id {
                return Err(authz::denial(
                    caller,
                    op.action(),
                    &t.arn,
                    keystore::policy::DenyReason::NoResourcePolicyAllows,
                ));
            }
        }
        self.authorize_account(caller, op.action(), Facts::none())
            .await
            .map(|_| ())
    }

    /// The root's own credentials are the root's business only.
    fn check_root_credentials(
        caller: &Caller,
        op: IamOperation,
        target: &Target,
    ) -> Result<(), KmsError> {
        if target.is_root() && !caller.is_root() {
            return Err(KmsError::AccessDenied(format!(
                "User: {} is not authorized to perform: {} on resource: {} because only the \
                 account root manages its own credentials",
                caller.principal_arn,
                op.action(),
                target.arn
            )));
        }
        Ok(())
    }

    async fn find_identity(&self, arn: &str) -> Result<Option<IdentityRecord>, KmsError> {
        match self
            .store
            .query(Query::GetIdentity {
                arn: arn.to_string(),
            })
            .await?
        {
            QueryOutput::Identity(i) => Ok(i),
            _ => Err(KmsError::internal()),
        }
    }

    /// The target's record; the account root exists even without one.
    async fn existing_principal(&self, target: &Target) -> Result<IdentityRecord, KmsError> {
        match self.find_identity(&target.arn).await? {
            Some(i) if i.account_id == target.account_id => Ok(i),
            Some(_) => Err(principal_not_found(&target.arn)),
            None if target.is_root() => Ok(IdentityRecord {
                arn: target.arn.clone(),
                account_id: target.account_id.clone(),
                ..Default::default()
            }),
            None => Err(principal_not_found(&target.arn)),
        }
    }

    async fn access_keys_of(&self, arn: &str) -> Result<Vec<AccessKeyRecord>, KmsError> {
        match self
            .store
            .query(Query::ListAccessKeys {
                principal_arn: arn.to_string(),
            })
            .await?
        {
            QueryOutput::AccessKeys(keys) => Ok(keys),
            _ => Err(KmsError::internal()),
        }
    }

    /// CreatePrincipal: a user or role (or service identity) in the caller's account.
    pub async fn create_principal(
        &self,
        caller: &Caller,
        req: CreatePrincipalRequest,
    ) -> Result<PrincipalResponse, KmsError> {
        let name = require(req.principal_name, "PrincipalName")?;
        check_principal_name("PrincipalName", &name)?;
        if let Some(s) = &req.service {
            check_service(s)?;
        }
        self.authorize_iam(caller, IamOperation::CreatePrincipal, None)
            .await?;
        let arn = format!("arn:aws:iam::{}:{name}", caller.account_id);
        // Checked here, not in `apply` (PutIdentity replaces): two concurrent creations of
        // the same name both succeed, the second overwriting an identical empty record.
        if self.find_identity(&arn).await?.is_some() {
            return Err(KmsError::AlreadyExists(format!(
                "The principal {arn} already exists."
            )));
        }
        let identity = IdentityRecord {
            arn,
            account_id: caller.account_id.clone(),
            admin: false,
            service: req.service,
            policies: Default::default(),
            created_at: now_millis(),
        };
        self.propose(Command::PutIdentity {
            identity: identity.clone(),
        })
        .await?;
        Ok(PrincipalResponse {
            principal: principal_metadata(&identity),
        })
    }

    /// ListPrincipals: the caller's account's principals, in ARN order, paged.
    pub async fn list_principals(
        &self,
        caller: &Caller,
        req: ListPrincipalsRequest,
    ) -> Result<ListPrincipalsResponse, KmsError> {
        use base64::Engine as _;
        let limit = req.limit.unwrap_or(100);
        check_range("Limit", limit, 1, MAX_LIST_PRINCIPALS_LIMIT)?;
        let marker = match req.marker {
            None => None,
            Some(m) => {
                let invalid = || KmsError::InvalidMarker("Invalid marker".into());
                if m.is_empty() || m.len() > 4096 {
                    return Err(invalid());
                }
                let bytes = MARKER_B64.decode(m.as_bytes()).map_err(|_| invalid())?;
                let text = String::from_utf8(bytes).map_err(|_| invalid())?;
                match text.strip_prefix(PRINCIPALS_MARKER_TAG) {
                    Some(p) if !p.is_empty() => Some(p.to_string()),
                    _ => return Err(invalid()),
                }
            }
        };
        self.authorize_iam(caller, IamOperation::ListPrincipals, None)
            .await?;
        let (identities, next) = match self
            .store
            .query(Query::ListIdentities {
                account_id: caller.account_id.clone(),
                marker,
                limit: limit as u32,
            })
            .await?
        {
            QueryOutput::Identities {
                identities,
                next_marker,
            } => (identities, next_marker),
            _ => return Err(KmsError::internal()),
        };
        let next_marker = next.map(|p| MARKER_B64.encode(format!("{PRINCIPALS_MARKER_TAG}{p}")));
        Ok(ListPrincipalsResponse {
            principals: identities.iter().map(principal_metadata).collect(),
            truncated: next_marker.is_some(),
            next_marker,
        })
    }

    /// GetPrincipal.
    pub async fn get_principal(
        &self,
        caller: &Caller,
        req: PrincipalArnRequest,
    ) -> Result<PrincipalResponse, KmsError> {
        let target = parse_target("PrincipalArn", req.principal_arn)?;
        self.authorize_iam(caller, IamOperation::GetPrincipal, Some(&target))
            .await?;
        let identity = self.existing_principal(&target).await?;
        Ok(PrincipalResponse {
            principal: principal_metadata(&identity),
        })
    }

    /// DeletePrincipal: the principal, its policies and its access keys. Not the root.
    pub async fn delete_principal(
        &self,
        caller: &Caller,
        req: PrincipalArnRequest,
    ) -> Result<Empty, KmsError> {
        let target = parse_target("PrincipalArn", req.principal_arn)?;
        if target.is_root() {
            return Err(KmsError::Validation(
                "The account root cannot be deleted.".into(),
            ));
        }
        self.authorize_iam(caller, IamOperation::DeletePrincipal, Some(&target))
            .await?;
        self.existing_principal(&target).await?;
        // `apply` deletes the access keys too; drop them from this front's cache at once
        // (other fronts hear of it through the watch stream).
        let keys = self.access_keys_of(&target.arn).await?;
        let result = self
            .propose(Command::DeleteIdentity {
                arn: target.arn.clone(),
            })
            .await;
        for k in &keys {
            self.cache.invalidate(&keystore::command::Change::AccessKey(
                k.access_key_id.clone(),
            ));
        }
        result?;
        Ok(Empty {})
    }

    /// CreateAccessKey: a new SigV4 key pair for the principal; the secret is in this
    /// response only and stored wrapped under the domain key.
    pub async fn create_access_key(
        &self,
        caller: &Caller,
        req: PrincipalArnRequest,
    ) -> Result<CreateAccessKeyResponse, KmsError> {
        let op = IamOperation::CreateAccessKey;
        let target = parse_target("PrincipalArn", req.principal_arn)?;
        self.authorize_iam(caller, op, Some(&target)).await?;
        Self::check_root_credentials(caller, op, &target)?;
        self.existing_principal(&target).await?;
        // Checked here, as for CreatePrincipal: two concurrent creations may both pass.
        if self.access_keys_of(&target.arn).await?.len() >= MAX_ACCESS_KEYS_PER_PRINCIPAL {
            return Err(KmsError::LimitExceeded(format!(
                "Cannot exceed quota for AccessKeysPerPrincipal: {MAX_ACCESS_KEYS_PER_PRINCIPAL}"
            )));
        }
        let access_key_id = new_access_key_id();
        let secret = SecretText::new(new_secret_access_key());
        let wrapped = crypto::wrap_access_secret(
            &self.domain_key,
            &access_key_id,
            &Secret::new(secret.expose_secret().as_bytes().to_vec()),
        );
        let created_at = now_millis();
        self.propose(Command::PutAccessKey {
            record: AccessKeyRecord {
                access_key_id: access_key_id.clone(),
                principal_arn: target.arn.clone(),
                account_id: target.account_id.clone(),
                wrapped_secret: wrapped,
                created_at,
            },
        })
        .await?;
        Ok(CreateAccessKeyResponse {
            access_key: NewAccessKey {
                access_key_id,
                secret_access_key: secret,
                principal_arn: target.arn,
                creation_date: epoch_seconds(created_at),
            },
        })
    }

    /// ListAccessKeys: ids and creation dates, never secrets.
    pub async fn list_access_keys(
        &self,
        caller: &Caller,
        req: PrincipalArnRequest,
    ) -> Result<ListAccessKeysResponse, KmsError> {
        let target = parse_target("PrincipalArn", req.principal_arn)?;
        self.authorize_iam(caller, IamOperation::ListAccessKeys, Some(&target))
            .await?;
        self.existing_principal(&target).await?;
        let keys = self.access_keys_of(&target.arn).await?;
        Ok(ListAccessKeysResponse {
            access_keys: keys
                .iter()
                .filter(|k| k.account_id == target.account_id)
                .map(|k| AccessKeyMetadata {
                    access_key_id: k.access_key_id.clone(),
                    principal_arn: k.principal_arn.clone(),
                    creation_date: epoch_seconds(k.created_at),
                })
                .collect(),
        })
    }

    /// DeleteAccessKey. A key of another account is as unknown as a missing one.
    pub async fn delete_access_key(
        &self,
        caller: &Caller,
        req: DeleteAccessKeyRequest,
    ) -> Result<Empty, KmsError> {
        let op = IamOperation::DeleteAccessKey;
        let id = require(req.access_key_id, "AccessKeyId")?;
        check_access_key_id(&id)?;
        let named = match req.principal_arn {
            Some(arn) => Some(parse_target("PrincipalArn", Some(arn))?),
            None => None,
        };
        self.authorize_iam(caller, op, named.as_ref()).await?;
        let not_found =
            || KmsError::NotFound(format!("The Access Key with id {id} cannot be found."));
        let record = match self
            .store
            .query(Query::GetAccessKey {
                access_key_id: id.clone(),
            })
            .await?
        {
            QueryOutput::AccessKey(Some(r)) if r.account_id == caller.account_id => r,
            QueryOutput::AccessKey(_) => return Err(not_found()),
            _ => return Err(KmsError::internal()),
        };
        if named
            .as_ref()
            .is_some_and(|t| t.arn != record.principal_arn)
        {
            return Err(not_found());
        }
        let owner = parse_target("PrincipalArn", Some(record.principal_arn.clone()))?;
        Self::check_root_credentials(caller, op, &owner)?;
        self.propose(Command::DeleteAccessKey { access_key_id: id })
            .await?;
        Ok(Empty {})
    }

    /// PutPrincipalPolicy: creates or replaces one inline identity policy.
    pub async fn put_principal_policy(
        &self,
        caller: &Caller,
        req: PutPrincipalPolicyRequest,
    ) -> Result<Empty, KmsError> {
        let target = parse_target("PrincipalArn", req.principal_arn)?;
        let name = check_policy_name_iam(req.policy_name)?;
        let document = require(req.policy_document, "PolicyDocument")?;
        if document.is_empty() {
            return Err(KmsError::MalformedPolicyDocument(
                "The policy document is empty.".into(),
            ));
        }
        if document.len() > MAX_IDENTITY_POLICY_BYTES {
            return Err(KmsError::LimitExceeded(format!(
                "Maximum policy size of {MAX_IDENTITY_POLICY_BYTES} bytes exceeded for {}",
                target.arn
            )));
        }
        if target.is_root() {
            return Err(KmsError::Validation(
                "The account root has no identity policies: key policies govern it.".into(),
            ));
        }
        self.authorize_iam(caller, IamOperation::PutPrincipalPolicy, Some(&target))
            .await?;
        Policy::parse(&document, PolicyKind::Identity)
            .map_err(|e| KmsError::MalformedPolicyDocument(e.0))?;
        self.existing_principal(&target).await?;
        self.propose(Command::PutIdentityPolicy {
            arn: target.arn,
            name,
            document,
        })
        .await?;
        Ok(Empty {})
    }

    /// GetPrincipalPolicy.
    pub async fn get_principal_policy(
        &self,
        caller: &Caller,
        req: PrincipalPolicyRequest,
    ) -> Result<GetPrincipalPolicyResponse, KmsError> {
        let target = parse_target("PrincipalArn", req.principal_arn)?;
        let name = check_policy_name_iam(req.policy_name)?;
        self.authorize_iam(caller, IamOperation::GetPrincipalPolicy, Some(&target))
            .await?;
        let identity = self.existing_principal(&target).await?;
        let document = identity.policies.get(&name).cloned().ok_or_else(|| {
            KmsError::NotFound(format!(
                "The policy {name} of principal {} cannot be found.",
                target.arn
            ))
        })?;
        Ok(GetPrincipalPolicyResponse {
            principal_arn: target.arn,
            policy_name: name,
            policy_document: document,
        })
    }

    /// ListPrincipalPolicies.
    pub async fn list_principal_policies(
        &self,
        caller: &Caller,
        req: PrincipalArnRequest,
    ) -> Result<ListPrincipalPoliciesResponse, KmsError> {
        let target = parse_target("PrincipalArn", req.principal_arn)?;
        self.authorize_iam(caller, IamOperation::ListPrincipalPolicies, Some(&target))
            .await?;
        let identity = self.existing_principal(&target).await?;
        Ok(ListPrincipalPoliciesResponse {
            policy_names: identity.policies.keys().cloned().collect(),
        })
    }

    /// DeletePrincipalPolicy.
    pub async fn delete_principal_policy(
        &self,
        caller: &Caller,
        req: PrincipalPolicyRequest,
    ) -> Result<Empty, KmsError> {
        let target = parse_target("PrincipalArn", req.principal_arn)?;
        let name = check_policy_name_iam(req.policy_name)?;
        self.authorize_iam(caller, IamOperation::DeletePrincipalPolicy, Some(&target))
            .await?;
        self.existing_principal(&target).await?;
        self.propose(Command::DeleteIdentityPolicy {
            arn: target.arn,
            name,
        })
        .await?;
        Ok(Empty {})
    }

    /// IssueClientCertificate: a client certificate naming the principal (URI SAN, clientAuth
    /// EKU) signed by the deployment CA, with a fresh private key shown only here. Needs the
    /// CA key on this front (`issuing_ca_key`).
    pub async fn issue_client_certificate(
        &self,
        caller: &Caller,
        req: IssueClientCertificateRequest,
    ) -> Result<IssueClientCertificateResponse, KmsError> {
        let op = IamOperation::IssueClientCertificate;
        let target = parse_target("PrincipalArn", req.principal_arn)?;
        let days = req.validity_days.unwrap_or(DEFAULT_CERT_VALIDITY_DAYS);
        check_range("ValidityDays", days, 1, MAX_CERT_VALIDITY_DAYS)?;
        self.authorize_iam(caller, op, Some(&target)).await?;
        Self::check_root_credentials(caller, op, &target)?;
        let Some(issuer) = self.client_cert_issuer.get() else {
            return Err(KmsError::UnsupportedOperation(
                "IssueClientCertificate is not available: this front was not given the CA key \
                 (issuing_ca_key / KEYRAFT_ISSUING_CA_KEY)."
                    .into(),
            ));
        };
        self.existing_principal(&target).await?;
        let (certificate_pem, key_pem) =
            issuer.issue_client(&target.arn, days as u32).map_err(|e| {
                // The error names no secret: it comes from parameter encoding or signing.
                tracing::error!(error = %e, "issuing a client certificate failed");
                KmsError::internal()
            })?;
        let not_after = (now_millis() / 1000) as i64 + days * 86_400;
        Ok(IssueClientCertificateResponse {
            principal_arn: target.arn,
            certificate_pem,
            private_key_pem: SecretText::new(key_pem),
            ca_certificate_pem: issuer.ca_cert_pem().to_string(),
            not_after: not_after as f64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_round_trip_through_their_wire_names() {
        for op in IamOperation::ALL {
            let target = format!("KeyraftIam.{}", op.name());
            assert_eq!(IamOperation::from_target(&target), Some(op));
            assert_eq!(op.action(), format!("iam:{}", op.name()));
        }
        assert_eq!(IamOperation::from_target("KeyraftIam.Nope"), None);
        assert_eq!(
            IamOperation::from_target("TrentService.CreatePrincipal"),
            None
        );
    }

    #[test]
    fn principal_names_follow_iam_rules() {
        for ok in ["role/Ci", "user/alice", "user/a.b+c=d,e@f_g-h"] {
            check_principal_name("PrincipalName", ok).unwrap();
        }
        for bad in [
            "Ci",
            "root",
            "group/x",
            "role/",
            "role/a b",
            "role/a/b",
            &format!("role/{}", "x".repeat(65)),
        ] {
            let e = check_principal_name("PrincipalName", bad).unwrap_err();
            assert_eq!(e.aws_type(), "ValidationException", "{bad}");
        }
    }

    #[test]
    fn target_arns_are_iam_principals_only() {
        let t = parse_target(
            "PrincipalArn",
            Some("arn:aws:iam::111122223333:role/Ci".into()),
        )
        .unwrap();
        assert_eq!(
            (t.account_id.as_str(), t.name.as_str()),
            ("111122223333", "role/Ci")
        );
        assert!(parse_target(
            "PrincipalArn",
            Some("arn:aws:iam::111122223333:root".into())
        )
        .unwrap()
        .is_root());
        for bad in [
            "",
            "arn:aws:sts::111122223333:assumed-role/x/y",
            "arn:aws:kms:us-east-1:111122223333:key/k",
            "arn:aws:iam::1111:root",
            "arn:aws:iam::111122223333:group/x",
            "arn:aws:iam::111122223333:role/a b",
        ] {
            let e = parse_target("PrincipalArn", Some(bad.into())).unwrap_err();
            assert_eq!(e.aws_type(), "ValidationException", "{bad}");
        }
        assert_eq!(
            parse_target("PrincipalArn", None).unwrap_err().aws_type(),
            "ValidationException"
        );
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let r = CreateAccessKeyResponse {
            access_key: NewAccessKey {
                access_key_id: "AKIAEXAMPLE".into(),
                secret_access_key: SecretText::new("very-secret".into()),
                principal_arn: "arn:aws:iam::111122223333:role/Ci".into(),
                creation_date: 0.0,
            },
        };
        assert!(!format!("{r:?}").contains("very-secret"));
        let json = String::from_utf8(to_body(&r).unwrap()).unwrap();
        assert!(
            json.contains("\"SecretAccessKey\":\"very-secret\""),
            "{json}"
        );
    }

    #[test]
    fn generated_access_keys_look_like_aws() {
        let id = new_access_key_id();
        assert_eq!(id.len(), 20);
        assert!(id.starts_with("AKIA"));
        assert!(id
            .bytes()
            .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b)));
        assert_ne!(id, new_access_key_id());
        assert_eq!(new_secret_access_key().len(), 40);
    }
}
