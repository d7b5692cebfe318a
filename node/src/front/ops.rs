//! The KMS operations, independent of transport. The AWS JSON router and the gRPC service are
//! thin adapters over [`Kms`].
//!
//! Every operation follows the same steps: validate the request's shape (AWS's model
//! constraints) -> resolve the key (management reads go to the store, linearizable; crypto
//! operations read through the cache) -> [`authorize`](super::authz::authorize) -> check the
//! key state -> act (crypto here, writes as Raft commands) -> build the AWS response.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use keystore::ciphertext;
use keystore::command::{Command, CommandOutput, Query, QueryOutput};
use keystore::context::EncryptionContext;
use keystore::crypto::{self, DomainKey, KeyMaterial, Secret};
use keystore::ids;
use keystore::model::{AccessKeyRecord, KeyRecord, KeyState, MaterialVersion, Origin};
use keystore::state::{self, check_state};

use super::authz::{self, Caller, Facts, PolicyCache};
use super::cache::Cache;
use super::errors::KmsError;
use super::operation::Operation;
use super::shapes::*;

// Asymmetric, HMAC and key-agreement operations: a child module, so it shares this
// module's private plumbing (resolve, authorize, materials) without widening it.
#[path = "asymmetric.rs"]
mod asymmetric;

// Key rotation operations and the task that prepares next-version material: a child module
// for the same reason.
#[path = "rotation.rs"]
mod rotation;

// Imported key material (BYOK): a child module for the same reason.
#[path = "import.rs"]
mod import;

// Grants and how they admit their grantees: a child module for the same reason.
#[path = "grants.rs"]
mod grants;

// Identity management (principals, access keys, identity policies, client certificates):
// a child module for the same reason.
#[path = "iam.rs"]
mod iam;
// KeyraftAudit.LookupEvents: CloudTrail-style lookup over the audit chain.
#[path = "audit_lookup.rs"]
mod audit_lookup;
pub use self::audit_lookup::{
    AuditOperation, LookupAttribute, LookupEvent, LookupEventsRequest, LookupEventsResponse,
    LookupResource,
};
// KeyraftAudit.GetAuditRecords / GetAuditDigests / MarkAuditExported: the raw chain for the
// region's operators.
#[path = "audit_export.rs"]
mod audit_export;
pub use self::audit_export::*;
// GetKeyLastUsage, answered from the audit batches' usage marks.
#[path = "last_usage.rs"]
mod last_usage;
// Multi-region keys (ReplicateKey, UpdatePrimaryRegion, deliveries, the replicator): a
// child module for the same reason.
#[path = "multi_region.rs"]
pub mod multi_region;
pub use self::iam::*;
pub use self::last_usage::*;
pub use self::{asymmetric::*, rotation::*};

/// Largest plaintext Encrypt accepts (bytes).
pub const MAX_PLAINTEXT: usize = 4096;
/// Largest ciphertext blob accepted (bytes).
pub const MAX_CIPHERTEXT: usize = 6144;
/// Largest data key / random byte count.
pub const MAX_NUMBER_OF_BYTES: i64 = 1024;
/// Longest description (characters).
pub const MAX_DESCRIPTION: usize = 8192;
/// Longest alias name (characters, including `alias/`).
pub const MAX_ALIAS_NAME: usize = 256;
/// Longest key id / ARN / alias reference.
pub const MAX_KEY_ID: usize = 2048;
/// Longest key policy (characters).
pub const MAX_POLICY: usize = 131_072;

const SYMMETRIC_DEFAULT: &str = "SYMMETRIC_DEFAULT";
const KEY_SPECS: &[&str] = &[
    "RSA_2048",
    "RSA_3072",
    "RSA_4096",
    "ECC_NIST_P256",
    "ECC_NIST_P384",
    "ECC_NIST_P521",
    "ECC_SECG_P256K1",
    "SYMMETRIC_DEFAULT",
    "HMAC_224",
    "HMAC_256",
    "HMAC_384",
    "HMAC_512",
    "SM2",
    "ML_DSA_44",
    "ML_DSA_65",
    "ML_DSA_87",
    "ECC_NIST_EDWARDS25519",
    // Newer than issue 3's table: known (UnsupportedOperationException), not offered yet.
    "ML_KEM_512",
    "ML_KEM_768",
    "ML_KEM_1024",
];
const KEY_USAGES: &[&str] = &[
    "SIGN_VERIFY",
    "ENCRYPT_DECRYPT",
    "GENERATE_VERIFY_MAC",
    "KEY_AGREEMENT",
];
const ORIGINS: &[&str] = &["AWS_KMS", "EXTERNAL", "AWS_CLOUDHSM", "EXTERNAL_KEY_STORE"];
const ENCRYPTION_ALGORITHMS: &[&str] = &[
    "SYMMETRIC_DEFAULT",
    "RSAES_OAEP_SHA_1",
    "RSAES_OAEP_SHA_256",
    "SM2PKE",
];

/// The operations of one front, over one store and one region domain key.
pub struct Kms {
    region: String,
    store: raft::StoreClient,
    // Shared with the rotation material preparer task (`rotation.rs`).
    domain_key: Arc<DomainKey>,
    cache: Arc<Cache>,
    // Key and identity policies, parsed once per distinct document.
    policies: PolicyCache,
    // The deployment CA's signing key, when the front was given it (IssueClientCertificate;
    // `iam.rs`). Set once at startup.
    client_cert_issuer: std::sync::OnceLock<iam::ClientCertIssuer>,
    // Group commit of the audit events of this front's calls (`audit.rs`).
    audit: super::audit::AuditSink,
    // Multi-region replication keys and peers (`multi_region.rs`), set once at startup;
    // shared with the replicator task.
    multi_region: Arc<std::sync::OnceLock<Arc<multi_region::MultiRegionSettings>>>,
    // Replication lag as the replicator last measured it.
    replication_lag: multi_region::LagMap,
}

/// Why a request was let through: grants carry conditions of their own (a grant's CreateGrant
/// permission only lets its grantee pass on a subset of it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Authorized {
    /// A key policy or identity policy allowed it.
    ByPolicy,
    /// Only this grant allowed it.
    ByGrant(Box<keystore::grant::GrantRecord>),
}

/// How a key reference was written in a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyRef {
    /// A bare key id.
    KeyId(String),
    /// `arn:aws:kms:<region>:<account>:key/<id>`.
    KeyArn {
        /// Region in the ARN.
        region: String,
        /// Account in the ARN.
        account: String,
        /// Key id.
        key_id: String,
    },
    /// `alias/<name>`.
    AliasName(String),
    /// `arn:aws:kms:<region>:<account>:alias/<name>`.
    AliasArn {
        /// Region in the ARN.
        region: String,
        /// Account in the ARN.
        account: String,
        /// `alias/<name>`.
        alias_name: String,
    },
}

/// Parses a `KeyId`-style member: key id, key ARN, alias name or alias ARN.
pub fn parse_key_ref(s: &str) -> Result<KeyRef, KmsError> {
    check_len("KeyId", s, 1, MAX_KEY_ID)?;
    if s.starts_with("arn:") {
        let (region, account, resource) = ids::parse_kms_arn(s)
            .ok_or_else(|| KmsError::InvalidArn(format!("Invalid arn {s}")))?;
        if let Some(key_id) = resource.strip_prefix("key/").filter(|k| !k.is_empty()) {
            return Ok(KeyRef::KeyArn {
                region,
                account,
                key_id: key_id.to_string(),
            });
        }
        if resource.starts_with("alias/") && resource.len() > "alias/".len() {
            return Ok(KeyRef::AliasArn {
                region,
                account,
                alias_name: resource,
            });
        }
        return Err(KmsError::InvalidArn(format!("Invalid arn {s}")));
    }
    if s.starts_with("alias/") {
        return Ok(KeyRef::AliasName(s.to_string()));
    }
    Ok(KeyRef::KeyId(s.to_string()))
}

/// Checks an alias name as AWS does (model pattern, `alias/` prefix, reserved `alias/aws/`).
pub fn validate_alias_name(name: &str) -> Result<(), KmsError> {
    check_len("AliasName", name, 1, MAX_ALIAS_NAME)?;
    let model_ok = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'/' | b'_' | b'-'));
    if !model_ok {
        return Err(KmsError::constraint(
            "AliasName",
            &format!("'{name}'"),
            "Member must satisfy regular expression pattern: ^[a-zA-Z0-9:/_-]+$",
        ));
    }
    let Some(rest) = name.strip_prefix("alias/") else {
        return Err(KmsError::Validation(
            "Alias must start with the prefix \"alias/\". Please see \
             https://docs.aws.amazon.com/kms/latest/developerguide/kms-alias.html"
                .into(),
        ));
    };
    if rest.starts_with("aws/") {
        return Err(KmsError::NotAuthorized(
            "Alias names that begin with alias/aws/ are reserved for AWS managed keys.".into(),
        ));
    }
    if rest.is_empty() || rest.contains(':') {
        return Err(KmsError::InvalidAliasName(format!(
            "Alias {name} must match ^alias/[a-zA-Z0-9/_-]+$"
        )));
    }
    Ok(())
}

fn require<T>(v: Option<T>, member: &str) -> Result<T, KmsError> {
    v.ok_or_else(|| KmsError::missing(member))
}

/// Length in characters, as AWS counts it.
fn check_len(member: &str, s: &str, min: usize, max: usize) -> Result<(), KmsError> {
    let n = s.chars().count();
    if n < min {
        return Err(KmsError::constraint(
            member,
            &format!("'{s}'"),
            &format!("Member must have length greater than or equal to {min}"),
        ));
    }
    if n > max {
        // Do not echo long values.
        return Err(KmsError::constraint(
            member,
            &format!("({n} characters)"),
            &format!("Member must have length less than or equal to {max}"),
        ));
    }
    Ok(())
}

fn check_range(member: &str, v: i64, min: i64, max: i64) -> Result<(), KmsError> {
    if v < min {
        return Err(KmsError::constraint(
            member,
            &format!("'{v}'"),
            &format!("Member must have value greater than or equal to {min}"),
        ));
    }
    if v > max {
        return Err(KmsError::constraint(
            member,
            &format!("'{v}'"),
            &format!("Member must have value less than or equal to {max}"),
        ));
    }
    Ok(())
}

fn check_enum(member: &str, v: &str, allowed: &[&str]) -> Result<(), KmsError> {
    if allowed.contains(&v) {
        return Ok(());
    }
    let shown: String = v.chars().take(64).collect();
    Err(KmsError::constraint(
        member,
        &format!("'{shown}'"),
        &format!(
            "Member must satisfy enum value set: [{}]",
            allowed.join(", ")
        ),
    ))
}

/// `PolicyName` of the key policy operations: only `default` exists (AWS's message).
fn check_policy_name(name: Option<&str>) -> Result<(), KmsError> {
    match name {
        None | Some("default") => Ok(()),
        Some(other) => {
            check_len("PolicyName", other, 1, 128)?;
            Err(KmsError::NotFound(format!(
                "No such policy exists: {other}. The only valid value is default."
            )))
        }
    }
}

fn check_grant_tokens(t: &Option<Vec<String>>) -> Result<(), KmsError> {
    if let Some(t) = t {
        if t.len() > 10 {
            return Err(KmsError::constraint(
                "GrantTokens",
                "(list)",
                "Member must have length less than or equal to 10",
            ));
        }
    }
    Ok(())
}

/// The listing a pagination marker belongs to. Markers are opaque to clients (base64url of
/// a listing tag and the last position returned); one that this front did not issue for the
/// same listing is `InvalidMarkerException`, as in AWS. They carry no authority: a forged one
/// only moves the start of a listing within the caller's own account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Listing {
    Keys,
    Aliases,
    Tags,
}

impl Listing {
    fn tag(self) -> &'static str {
        match self {
            Listing::Keys => "k1:",
            Listing::Aliases => "a1:",
            Listing::Tags => "t1:",
        }
    }
}

const MARKER_B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

fn encode_marker(listing: Listing, position: &str) -> String {
    use base64::Engine as _;
    MARKER_B64.encode(format!("{}{position}", listing.tag()))
}

fn decode_marker(listing: Listing, marker: Option<String>) -> Result<Option<String>, KmsError> {
    use base64::Engine as _;
    let Some(m) = marker else { return Ok(None) };
    let invalid = || KmsError::InvalidMarker("Invalid marker".into());
    if m.is_empty() || m.len() > 1024 {
        return Err(invalid());
    }
    let bytes = MARKER_B64.decode(m.as_bytes()).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    match text.strip_prefix(listing.tag()) {
        Some(position) if !position.is_empty() => Ok(Some(position.to_string())),
        _ => Err(invalid()),
    }
}

/// Symmetric keys accept only `SYMMETRIC_DEFAULT`.
fn check_algorithm(member: &str, a: &Option<String>) -> Result<(), KmsError> {
    match a.as_deref() {
        None | Some(SYMMETRIC_DEFAULT) => Ok(()),
        Some(other) => {
            check_enum(member, other, ENCRYPTION_ALGORITHMS)?;
            Err(KmsError::InvalidKeyUsage(format!(
                "The encryption algorithm {other} is not compatible with the key spec \
                 SYMMETRIC_DEFAULT."
            )))
        }
    }
}

fn context(m: Option<EncryptionContextMap>) -> EncryptionContext {
    EncryptionContext::from_map(m.unwrap_or_default())
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn dry_run() -> KmsError {
    KmsError::DryRunOperation(
        "The request would have succeeded, but the DryRun option is set.".into(),
    )
}

fn key_state_name(s: KeyState) -> &'static str {
    match s {
        KeyState::Creating => "Creating",
        KeyState::Enabled => "Enabled",
        KeyState::Disabled => "Disabled",
        KeyState::PendingDeletion => "PendingDeletion",
        KeyState::PendingImport => "PendingImport",
        KeyState::PendingReplicaDeletion => "PendingReplicaDeletion",
        KeyState::Unavailable => "Unavailable",
        KeyState::Updating => "Updating",
    }
}

/// The AWS `KeyMetadata` of a record.
pub fn key_metadata(k: &KeyRecord) -> KeyMetadata {
    let spec = k.key_spec.as_str();
    let usage = k.key_usage.as_str();
    let origin = match k.origin {
        Origin::AwsKms => "AWS_KMS",
        Origin::External => "EXTERNAL",
    };
    let pending = k.state == KeyState::PendingDeletion;
    KeyMetadata {
        aws_account_id: Some(k.account_id.clone()),
        key_id: Some(k.key_id.clone()),
        arn: Some(k.arn.clone()),
        creation_date: Some(epoch_seconds(k.creation_date)),
        enabled: Some(k.state == KeyState::Enabled),
        description: Some(k.description.clone()),
        key_usage: Some(usage.into()),
        key_state: Some(key_state_name(k.state).into()),
        deletion_date: k.deletion_date.filter(|_| pending).map(epoch_seconds),
        origin: Some(origin.into()),
        key_manager: Some("CUSTOMER".into()),
        customer_master_key_spec: Some(spec.into()),
        key_spec: Some(spec.into()),
        encryption_algorithms: asymmetric::wire_list(k.key_spec.encryption_algorithms(k.key_usage)),
        signing_algorithms: asymmetric::wire_list(k.key_spec.signing_algorithms(k.key_usage)),
        mac_algorithms: asymmetric::wire_list(k.key_spec.mac_algorithms(k.key_usage)),
        key_agreement_algorithms: asymmetric::wire_list(
            k.key_spec.key_agreement_algorithms(k.key_usage),
        ),
        multi_region: Some(k.multi_region),
        multi_region_configuration: multi_region::multi_region_configuration(k),
        pending_deletion_window_in_days: k.pending_deletion_window_days.filter(|_| pending),
        valid_to: k.import.valid_to.map(epoch_seconds),
        expiration_model: (k.origin == Origin::External)
            .then_some(k.import.expiration_model)
            .flatten()
            .map(|m| m.as_str().into()),
    }
}

/// Model-level tag checks (lengths); AWS's semantic tag rules run in `apply`.
fn tag_pairs(tags: Vec<Tag>) -> Result<Vec<(String, String)>, KmsError> {
    tags.into_iter()
        .map(|t| {
            let k = t
                .tag_key
                .ok_or_else(|| KmsError::missing("Tags.member.TagKey"))?;
            let v = t
                .tag_value
                .ok_or_else(|| KmsError::missing("Tags.member.TagValue"))?;
            check_len("Tags.member.TagKey", &k, 1, 128)?;
            check_len("Tags.member.TagValue", &v, 0, 256)?;
            Ok((k, v))
        })
        .collect()
}

/// Which key references an operation accepts, and where it reads the key from.
#[derive(Clone, Copy)]
struct Lookup {
    allow_alias: bool,
    /// Linearizable store read (management) or cache (crypto).
    consistent: bool,
}

const MANAGEMENT: Lookup = Lookup {
    allow_alias: false,
    consistent: true,
};
const MANAGEMENT_ALIAS_OK: Lookup = Lookup {
    allow_alias: true,
    consistent: true,
};
const CRYPTO: Lookup = Lookup {
    allow_alias: true,
    consistent: false,
};

impl Kms {
    /// Operations for `region` over `store`. Call [`Kms::follow_store_changes`] inside a
    /// runtime to keep the cache fed.
    pub fn new(
        region: String,
        store: raft::StoreClient,
        domain_key: DomainKey,
        cache_staleness: Duration,
    ) -> Self {
        Kms {
            region,
            audit: super::audit::AuditSink::new(
                store.clone(),
                super::audit::AuditSettings::default(),
            ),
            store,
            domain_key: Arc::new(domain_key),
            cache: Arc::new(Cache::new(cache_staleness)),
            policies: PolicyCache::default(),
            client_cert_issuer: std::sync::OnceLock::new(),
            multi_region: Default::default(),
            replication_lag: Default::default(),
        }
    }

    /// The region served.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The same operations with these audit settings (default: sync, 2 ms, 256, 5 s).
    pub fn with_audit(mut self, settings: super::audit::AuditSettings) -> Self {
        self.audit = super::audit::AuditSink::new(self.store.clone(), settings);
        self
    }

    /// The audit sink (settings and counters).
    pub fn audit(&self) -> &super::audit::AuditSink {
        &self.audit
    }

    /// Up to `limit` audit records of the region from `from_seq` on (linearizable read of
    /// the storage nodes).
    pub async fn audit_records(
        &self,
        from_seq: u64,
        limit: u32,
    ) -> Result<Vec<keystore::audit::AuditRecord>, KmsError> {
        Ok(self.store.audit_records(from_seq, limit).await?)
    }

    /// Records the audit event of one call (see [`super::audit::AuditSink::record_call`]).
    /// `Err` is what the call must answer instead of its result (sync mode only).
    pub async fn audit_call(
        &self,
        call: super::audit::CallInfo<'_>,
        outcome: Result<&serde_json::Value, &KmsError>,
    ) -> Result<(), KmsError> {
        self.audit.record_call(&self.region, call, outcome).await
    }

    /// Spawns the task that invalidates the cache from the store's watch stream (and prepares
    /// rotation material for keys that lack it).
    pub fn follow_store_changes(&self) -> tokio::task::JoinHandle<()> {
        let rx = self.store.watch();
        let cache = self.cache.clone().follow(rx);
        // Keys whose prepared rotation material was consumed get the next one from here.
        let preparer = self.rotation_material_preparer();
        // Multi-region keys: deliveries from this region's outbox to peer regions.
        let replicator = self.replicator();
        tokio::spawn(async move {
            tokio::join!(cache, preparer, replicator);
        })
    }

    /// The region's Raft view from every storage node, as JSON (for `/status`). Holds no
    /// secrets: node ids, terms, roles and the leader each node knows of.
    pub async fn cluster_status(&self) -> serde_json::Value {
        let nodes = tokio::time::timeout(Duration::from_secs(3), self.store.node_status())
            .await
            .unwrap_or_default();
        let nodes: Vec<serde_json::Value> = nodes
            .into_iter()
            .map(|(endpoint, status)| match status {
                Ok(s) => serde_json::json!({
                    "endpoint": endpoint,
                    "nodeId": s.node_id,
                    "leaderId": s.leader_id,
                    "term": s.term,
                    "lastApplied": s.last_applied,
                    "state": s.state,
                    "stateHash": s.state_hash,
                    "stateApplied": s.state_applied,
                    "lastSnapshot": s.last_snapshot,
                    "lastPurged": s.last_purged,
                }),
                Err(e) => serde_json::json!({ "endpoint": endpoint, "error": e.to_string() }),
            })
            .collect();
        let leader = nodes
            .iter()
            .find(|n| n["state"] == "Leader")
            .and_then(|n| n["nodeId"].as_u64());
        serde_json::json!({
            "region": self.region,
            "leaderId": leader,
            "nodes": nodes,
            "replication": self.replication_status(),
        })
    }

    /// Whether the store answers (for `/readyz`).
    pub async fn ready(&self) -> bool {
        let q = Query::GetIdentity { arn: String::new() };
        matches!(
            tokio::time::timeout(Duration::from_secs(2), self.store.query(q)).await,
            Ok(Ok(_))
        )
    }

    /// The access key record and its unwrapped secret, for SigV4. `None` if unknown.
    pub async fn access_key_secret(
        &self,
        access_key_id: &str,
    ) -> Result<Option<(AccessKeyRecord, Secret)>, KmsError> {
        let Some(rec) = self.cache.access_key(&self.store, access_key_id).await? else {
            return Ok(None);
        };
        let secret = crypto::unwrap_access_secret(
            &self.domain_key,
            &rec.access_key_id,
            &rec.wrapped_secret,
        )?;
        Ok(Some((rec, secret)))
    }

    /// The caller operations run as. A service identity (its record names a service such as
    /// `s3.us-east-1.amazonaws.com`) acts as its service principal, or — when it names a
    /// principal it calls for (`on_behalf_of`) — as that principal with `kms:ViaService` set,
    /// the way AWS services call KMS for their users. Anyone else naming a principal is
    /// refused.
    pub async fn effective_caller(
        &self,
        caller: Caller,
        on_behalf_of: Option<&str>,
    ) -> Result<Caller, KmsError> {
        let identity = if caller.is_root() {
            None
        } else {
            self.cache
                .identity(&self.store, &caller.principal_arn)
                .await?
        };
        let service = identity
            .filter(|i| i.account_id == caller.account_id)
            .and_then(|i| i.service);
        match (on_behalf_of, service) {
            (None, None) => Ok(caller),
            (None, Some(service)) => Ok(Caller {
                service_principal: Some(authz::service_principal_name(&service)),
                ..caller
            }),
            (Some(principal), Some(service)) => {
                let mut on_behalf = Caller::from_principal_arn(principal).ok_or_else(|| {
                    KmsError::Validation(format!(
                        "{principal} is not an IAM principal ARN (arn:aws:iam::<account>:...)"
                    ))
                })?;
                on_behalf.via_service = Some(service);
                on_behalf.source_ip = caller.source_ip;
                Ok(on_behalf)
            }
            (Some(_), None) => Err(KmsError::AccessDenied(format!(
                "User: {} is not a service identity and cannot call on behalf of another \
                 principal",
                caller.principal_arn
            ))),
        }
    }

    /// Runs `op` with a JSON request body and returns the JSON response body.
    pub async fn dispatch(
        &self,
        caller: &Caller,
        op: Operation,
        body: &[u8],
    ) -> Result<Vec<u8>, KmsError> {
        use Operation as O;
        match op {
            O::CreateKey => to_body(&self.create_key(caller, parse_request(body)?).await?),
            O::DescribeKey => to_body(&self.describe_key(caller, parse_request(body)?).await?),
            O::ListKeys => to_body(&self.list_keys(caller, parse_request(body)?).await?),
            O::EnableKey => to_body(&self.enable_key(caller, parse_request(body)?).await?),
            O::DisableKey => to_body(&self.disable_key(caller, parse_request(body)?).await?),
            O::UpdateKeyDescription => to_body(
                &self
                    .update_key_description(caller, parse_request(body)?)
                    .await?,
            ),
            O::ScheduleKeyDeletion => to_body(
                &self
                    .schedule_key_deletion(caller, parse_request(body)?)
                    .await?,
            ),
            O::CancelKeyDeletion => to_body(
                &self
                    .cancel_key_deletion(caller, parse_request(body)?)
                    .await?,
            ),
            O::CreateAlias => to_body(&self.create_alias(caller, parse_request(body)?).await?),
            O::UpdateAlias => to_body(&self.update_alias(caller, parse_request(body)?).await?),
            O::DeleteAlias => to_body(&self.delete_alias(caller, parse_request(body)?).await?),
            O::ListAliases => to_body(&self.list_aliases(caller, parse_request(body)?).await?),
            O::TagResource => to_body(&self.tag_resource(caller, parse_request(body)?).await?),
            O::UntagResource => to_body(&self.untag_resource(caller, parse_request(body)?).await?),
            O::ListResourceTags => to_body(
                &self
                    .list_resource_tags(caller, parse_request(body)?)
                    .await?,
            ),
            O::Encrypt => to_body(&self.encrypt(caller, parse_request(body)?).await?),
            O::Decrypt => to_body(&self.decrypt(caller, parse_request(body)?).await?),
            O::ReEncrypt => to_body(&self.re_encrypt(caller, parse_request(body)?).await?),
            O::GenerateDataKey => {
                to_body(&self.generate_data_key(caller, parse_request(body)?).await?)
            }
            O::GenerateDataKeyWithoutPlaintext => to_body(
                &self
                    .generate_data_key_without_plaintext(caller, parse_request(body)?)
                    .await?,
            ),
            O::GenerateRandom => {
                to_body(&self.generate_random(caller, parse_request(body)?).await?)
            }
            O::GetPublicKey
            | O::Sign
            | O::Verify
            | O::GenerateMac
            | O::VerifyMac
            | O::DeriveSharedSecret
            | O::GenerateDataKeyPair
            | O::GenerateDataKeyPairWithoutPlaintext => {
                self.dispatch_asymmetric(caller, op, body).await
            }
            O::EnableKeyRotation
            | O::DisableKeyRotation
            | O::GetKeyRotationStatus
            | O::RotateKeyOnDemand
            | O::ListKeyRotations => self.dispatch_rotation(caller, op, body).await,
            O::GetParametersForImport | O::ImportKeyMaterial | O::DeleteImportedKeyMaterial => {
                self.dispatch_import(caller, op, body).await
            }
            O::PutKeyPolicy => to_body(&self.put_key_policy(caller, parse_request(body)?).await?),
            O::GetKeyPolicy => to_body(&self.get_key_policy(caller, parse_request(body)?).await?),
            O::ListKeyPolicies => {
                to_body(&self.list_key_policies(caller, parse_request(body)?).await?)
            }
            O::CreateGrant
            | O::ListGrants
            | O::ListRetirableGrants
            | O::RetireGrant
            | O::RevokeGrant => self.dispatch_grants(caller, op, body).await,
            O::ReplicateKey | O::UpdatePrimaryRegion => {
                self.dispatch_multi_region(caller, op, body).await
            }
            O::GetKeyLastUsage => to_body(
                &self
                    .get_key_last_usage(caller, parse_request(body)?)
                    .await?,
            ),
        }
    }

    // ---- plumbing -------------------------------------------------------------------------

    /// The one authorization path: gathers the key policy, the caller's identity policies
    /// and (only when policies do not already allow) the grants, and asks
    /// [`keystore::policy::authorize`]. `key` is `None` for account-level actions and for
    /// alias resources, which only identity policies govern (as in AWS).
    async fn authorize(
        &self,
        caller: &Caller,
        action: &str,
        resource_arn: &str,
        resource_account: &str,
        key: Option<&KeyRecord>,
        facts: Facts<'_>,
    ) -> Result<Authorized, KmsError> {
        use keystore::policy::{AuthzDecision, AuthzInput, DenyReason, PolicyKind};
        let key_policy = match key {
            Some(k) => match self.policies.get(&k.policy, PolicyKind::Key) {
                Some(p) => Some(p),
                None => {
                    return Err(authz::denial(
                        caller,
                        action,
                        resource_arn,
                        DenyReason::NoResourcePolicyAllows,
                    ))
                }
            },
            None => None,
        };
        let identity_policies = self.identity_policies(caller).await?;
        let identity_policies: Vec<&keystore::policy::Policy> =
            identity_policies.iter().map(|p| &**p).collect();
        let principal = caller.principal();
        let mut context = authz::condition_context(caller, key, &facts, now_millis());
        if let Some(key) = key {
            // Listing a key's aliases costs a store read, so only when a policy asks.
            const ALIASES: &str = "kms:ResourceAliases";
            if key_policy
                .as_ref()
                .is_some_and(|p| p.uses_condition_key(ALIASES))
                || identity_policies
                    .iter()
                    .any(|p| p.uses_condition_key(ALIASES))
            {
                context.set_multi(ALIASES, self.aliases_of(key).await?);
            }
        }
        let decision = keystore::policy::authorize(&AuthzInput {
            principal: &principal,
            action,
            resource_arn,
            resource_account,
            context: &context,
            key_policy: key_policy.as_deref(),
            identity_policies: &identity_policies,
            grant_allows: false,
        });
        let reason = match decision {
            AuthzDecision::Allowed(_) => return Ok(Authorized::ByPolicy),
            AuthzDecision::Denied(
                r
                @ (DenyReason::ExplicitDenyInKeyPolicy | DenyReason::ExplicitDenyInIdentityPolicy),
            ) => r,
            AuthzDecision::Denied(r) => {
                // Grants only add permissions; they are read only when policies said no.
                if let Some(key) = key {
                    if let Some(grant) = self.grant_allows(caller, action, key, &facts).await? {
                        return Ok(Authorized::ByGrant(Box::new(grant)));
                    }
                }
                r
            }
        };
        Err(authz::denial(caller, action, resource_arn, reason))
    }

    /// The caller's identity policies: none for the account root (only the key policy
    /// governs it) and for service principals; the inline policies of its identity record
    /// otherwise, plus AdministratorAccess for `admin` records. Read through the cache, so a
    /// detached policy stops applying within the staleness bound.
    async fn identity_policies(
        &self,
        caller: &Caller,
    ) -> Result<Vec<Arc<keystore::policy::Policy>>, KmsError> {
        use keystore::policy::PolicyKind;
        if caller.is_root() || caller.service_principal.is_some() {
            return Ok(vec![]);
        }
        let Some(identity) = self
            .cache
            .identity(&self.store, &caller.principal_arn)
            .await?
        else {
            return Ok(vec![]);
        };
        if identity.account_id != caller.account_id {
            return Ok(vec![]);
        }
        let mut out = Vec::with_capacity(identity.policies.len() + 1);
        if identity.admin {
            out.push(authz::administrator_access());
        }
        out.extend(
            identity
                .policies
                .values()
                .filter_map(|document| self.policies.get(document, PolicyKind::Identity)),
        );
        Ok(out)
    }

    /// The aliases pointing at `key` (`kms:ResourceAliases`), at most the first 100.
    async fn aliases_of(&self, key: &KeyRecord) -> Result<Vec<String>, KmsError> {
        match self
            .store
            .query(Query::ListAliases {
                account_id: key.account_id.clone(),
                key_id: Some(key.key_id.clone()),
                limit: 100,
                marker: None,
            })
            .await?
        {
            QueryOutput::Aliases { aliases, .. } => {
                Ok(aliases.into_iter().map(|a| a.alias_name).collect())
            }
            _ => Err(KmsError::internal()),
        }
    }

    async fn authorize_key(
        &self,
        caller: &Caller,
        action: &str,
        key: &KeyRecord,
        facts: Facts<'_>,
    ) -> Result<Authorized, KmsError> {
        self.authorize(caller, action, &key.arn, &key.account_id, Some(key), facts)
            .await
    }

    async fn authorize_account(
        &self,
        caller: &Caller,
        action: &str,
        facts: Facts<'_>,
    ) -> Result<Authorized, KmsError> {
        self.authorize(caller, action, "*", &caller.account_id, None, facts)
            .await
    }

    async fn get_key(&self, key_id: &str, consistent: bool) -> Result<Option<KeyRecord>, KmsError> {
        if consistent {
            match self
                .store
                .query(Query::GetKey {
                    key_id: key_id.to_string(),
                })
                .await?
            {
                QueryOutput::Key(k) => Ok(k.map(|b| *b)),
                _ => Err(KmsError::internal()),
            }
        } else {
            self.cache.key(&self.store, key_id).await
        }
    }

    async fn get_alias_target(
        &self,
        account: &str,
        alias_name: &str,
        consistent: bool,
    ) -> Result<Option<String>, KmsError> {
        let alias = if consistent {
            match self
                .store
                .query(Query::GetAlias {
                    account_id: account.to_string(),
                    alias_name: alias_name.to_string(),
                })
                .await?
            {
                QueryOutput::Alias(a) => a,
                _ => return Err(KmsError::internal()),
            }
        } else {
            self.cache.alias(&self.store, account, alias_name).await?
        };
        Ok(alias.map(|a| a.target_key_id))
    }

    fn key_not_found(&self, account: &str, key_id: &str) -> KmsError {
        KmsError::NotFound(format!(
            "Key '{}' does not exist",
            ids::key_arn(&self.region, account, key_id)
        ))
    }

    fn alias_not_found(&self, account: &str, alias_name: &str) -> KmsError {
        KmsError::NotFound(format!(
            "Alias {} is not found.",
            ids::alias_arn(&self.region, account, alias_name)
        ))
    }

    /// Finds the key a `KeyId`-style member names, in the caller's account unless an ARN
    /// names another one (then authorization decides).
    async fn resolve(
        &self,
        caller: &Caller,
        key_ref: &str,
        how: Lookup,
    ) -> Result<KeyRecord, KmsError> {
        let r = parse_key_ref(key_ref)?;
        if !how.allow_alias && matches!(r, KeyRef::AliasName(_) | KeyRef::AliasArn { .. }) {
            return Err(KmsError::NotFound(format!("Invalid keyId {key_ref}")));
        }
        let (account, key_id) = match r {
            KeyRef::KeyId(id) => (caller.account_id.clone(), id),
            KeyRef::KeyArn {
                region,
                account,
                key_id,
            } => {
                if region != self.region {
                    return Err(KmsError::NotFound(format!("Invalid arn {region}")));
                }
                (account, key_id)
            }
            KeyRef::AliasName(name) => {
                let account = caller.account_id.clone();
                let target = self
                    .get_alias_target(&account, &name, how.consistent)
                    .await?
                    .ok_or_else(|| self.alias_not_found(&account, &name))?;
                (account, target)
            }
            KeyRef::AliasArn {
                region,
                account,
                alias_name,
            } => {
                if region != self.region {
                    return Err(KmsError::NotFound(format!("Invalid arn {region}")));
                }
                let target = self
                    .get_alias_target(&account, &alias_name, how.consistent)
                    .await?
                    .ok_or_else(|| self.alias_not_found(&account, &alias_name))?;
                (account, target)
            }
        };
        match self.get_key(&key_id, how.consistent).await? {
            Some(k) if k.account_id == account && k.region == self.region => {
                tracing::Span::current().record("key_id", k.key_id.as_str());
                Ok(k)
            }
            _ => Err(self.key_not_found(&account, &key_id)),
        }
    }

    fn material(&self, key: &KeyRecord, version: u32) -> Result<KeyMaterial, KmsError> {
        let mv = key
            .materials
            .iter()
            .find(|m| m.version == version)
            .ok_or_else(|| KmsError::InvalidCiphertext(String::new()))?;
        Ok(crypto::unwrap_material(
            &self.domain_key,
            &key.key_id,
            version,
            &mv.wrapped,
        )?)
    }

    fn seal_under(
        &self,
        key: &KeyRecord,
        plaintext: &[u8],
        ctx: &EncryptionContext,
    ) -> Result<Vec<u8>, KmsError> {
        let version = key.current_material_version;
        let m = self.material(key, version).map_err(|_| {
            tracing::error!(key_id = %key.key_id, version, "current material version missing");
            KmsError::internal()
        })?;
        Ok(ciphertext::seal(&key.key_id, version, &m, plaintext, ctx))
    }

    /// Proposes through Raft, then drops the cache entries of what the command named, so the
    /// caller's next request on this front sees its own write at once (other fronts see it
    /// through the watch stream, within the staleness bound).
    async fn propose(&self, command: Command) -> Result<CommandOutput, KmsError> {
        let subjects = command.subjects();
        let result = self.store.propose(command).await;
        for change in &subjects {
            self.cache.invalidate(change);
        }
        Ok(result?)
    }

    async fn propose_key(&self, command: Command) -> Result<KeyRecord, KmsError> {
        match self.propose(command).await? {
            CommandOutput::Key(k) => Ok(*k),
            _ => Err(KmsError::internal()),
        }
    }

    /// Decrypts `blob` for `caller` (shared by Decrypt and ReEncrypt).
    #[allow(clippy::too_many_arguments)]
    async fn open_blob(
        &self,
        caller: &Caller,
        action: &str,
        op: state::Operation,
        blob: Option<Blob>,
        key_id: Option<String>,
        ctx: Option<EncryptionContextMap>,
        grant_tokens: &Option<Vec<String>>,
    ) -> Result<(KeyRecord, Secret), KmsError> {
        let blob = require(blob, "CiphertextBlob")?.0;
        if blob.is_empty() || blob.len() > MAX_CIPHERTEXT {
            return Err(KmsError::constraint(
                "CiphertextBlob",
                "(blob)",
                &format!("Member must have length between 1 and {MAX_CIPHERTEXT}"),
            ));
        }
        let header = ciphertext::peek_header(&blob)?;
        if let Some(named) = key_id {
            let named = self.resolve(caller, &named, CRYPTO).await?;
            if named.key_id != header.key_id {
                return Err(KmsError::IncorrectKey(
                    "The key ID in the request does not identify a KMS key that can perform this \
                     operation."
                        .into(),
                ));
            }
        }
        // A well-formed blob naming an unknown key is as invalid as a corrupt one.
        let key = self
            .get_key(&header.key_id, false)
            .await?
            .filter(|k| k.region == self.region)
            .ok_or_else(|| KmsError::InvalidCiphertext(String::new()))?;
        tracing::Span::current().record("key_id", key.key_id.as_str());
        self.authorize_key(
            caller,
            action,
            &key,
            Facts::none()
                .context(ctx.as_ref())
                .tokens(grant_tokens)
                .with("kms:EncryptionAlgorithm", SYMMETRIC_DEFAULT),
        )
        .await?;
        check_state(&key, op)?;
        asymmetric::check_symmetric(&key, op)?;
        let m = self.material(&key, header.material_version)?;
        let plaintext = ciphertext::open(&blob, &m, &context(ctx))?;
        Ok((key, plaintext))
    }

    fn data_key_len(
        number_of_bytes: Option<i64>,
        key_spec: Option<&str>,
    ) -> Result<usize, KmsError> {
        match (number_of_bytes, key_spec) {
            (Some(_), Some(_)) => Err(KmsError::Validation(
                "Please specify either number of bytes or key spec, not both.".into(),
            )),
            (None, None) => Err(KmsError::Validation(
                "Please specify either number of bytes or key spec.".into(),
            )),
            (Some(n), None) => {
                check_range("NumberOfBytes", n, 1, MAX_NUMBER_OF_BYTES)?;
                Ok(n as usize)
            }
            (None, Some(spec)) => match spec {
                "AES_256" => Ok(32),
                "AES_128" => Ok(16),
                other => Err(check_enum("KeySpec", other, &["AES_256", "AES_128"]).unwrap_err()),
            },
        }
    }

    // ---- key management -------------------------------------------------------------------

    /// CreateKey (every key spec and usage of AWS but SM2; origin `AWS_KMS` or `EXTERNAL`).
    pub async fn create_key(
        &self,
        caller: &Caller,
        req: CreateKeyRequest,
    ) -> Result<CreateKeyResponse, KmsError> {
        let spec =
            match (
                req.key_spec.as_deref(),
                req.customer_master_key_spec.as_deref(),
            ) {
                (Some(_), Some(_)) => return Err(KmsError::Validation(
                    "You cannot specify KeySpec and CustomerMasterKeySpec in the same request. \
                     CustomerMasterKeySpec is deprecated."
                        .into(),
                )),
                (Some(s), None) => {
                    check_enum("KeySpec", s, KEY_SPECS)?;
                    s
                }
                (None, Some(s)) => {
                    check_enum("CustomerMasterKeySpec", s, KEY_SPECS)?;
                    s
                }
                (None, None) => SYMMETRIC_DEFAULT,
            };
        let usage = req.key_usage.as_deref().unwrap_or("ENCRYPT_DECRYPT");
        check_enum("KeyUsage", usage, KEY_USAGES)?;
        let origin = req.origin.as_deref().unwrap_or("AWS_KMS");
        check_enum("Origin", origin, ORIGINS)?;
        if let Some(d) = &req.description {
            check_len("Description", d, 0, MAX_DESCRIPTION)?;
        }
        // Every spec of the enum except SM2 (China regions only); the usage must fit it.
        let (key_spec, key_usage) =
            asymmetric::spec_and_usage(spec, usage, req.key_usage.is_some())?;
        let external = origin == "EXTERNAL";
        if origin != "AWS_KMS" && !external {
            return Err(KmsError::UnsupportedOperation(format!(
                "Origin {origin} is not supported."
            )));
        }
        if req.custom_key_store_id.is_some() || req.xks_key_id.is_some() {
            return Err(KmsError::UnsupportedOperation(
                "Custom key stores are not supported.".into(),
            ));
        }
        let multi_region = req.multi_region == Some(true);
        if multi_region && external {
            // Replicas of imported keys need their own import in each region (AWS's
            // flow); not built yet.
            return Err(KmsError::UnsupportedOperation(
                "Multi-Region keys with imported key material are not supported.".into(),
            ));
        }
        let bypass = req.bypass_policy_lockout_safety_check == Some(true);
        let tags = tag_pairs(req.tags.unwrap_or_default())?;
        self.authorize_account(
            caller,
            Operation::CreateKey.action(),
            Facts::none()
                .with("kms:KeySpec", key_spec.as_str())
                .with("kms:KeyUsage", key_usage.as_str())
                .with("kms:KeyOrigin", origin)
                .with("kms:MultiRegion", multi_region.to_string())
                .with("kms:BypassPolicyLockoutSafetyCheck", bypass.to_string())
                .request_tags(tags.clone()),
        )
        .await?;
        let key_id = if multi_region {
            keystore::multi_region::new_mrk_id()
        } else {
            ids::new_key_id()
        };
        let key_arn = ids::key_arn(&self.region, &caller.account_id, &key_id);
        let policy = match req.policy {
            Some(p) => {
                self.checked_key_policy(caller, &p, &key_arn, &caller.account_id, bypass)
                    .await?;
                p
            }
            None => keystore::policy::default_key_policy(&caller.account_id),
        };

        let now = now_millis();
        let record = KeyRecord {
            arn: key_arn,
            account_id: caller.account_id.clone(),
            region: self.region.clone(),
            description: req.description.unwrap_or_default(),
            key_spec,
            key_usage,
            // EXTERNAL keys wait, without material, for ImportKeyMaterial.
            origin: if external {
                Origin::External
            } else {
                Origin::AwsKms
            },
            state: if external {
                KeyState::PendingImport
            } else {
                KeyState::Enabled
            },
            creation_date: now,
            deletion_date: None,
            pending_deletion_window_days: None,
            tags: tags.into_iter().collect(),
            policy,
            multi_region,
            materials: if external {
                vec![]
            } else {
                vec![MaterialVersion {
                    version: 1,
                    wrapped: self.new_wrapped_material(key_spec, &key_id, 1).await?,
                    created_at: now,
                }]
            },
            current_material_version: 1,
            rotation: Default::default(),
            import: Default::default(),
            multi_region_config: multi_region.then(|| {
                Box::new(keystore::multi_region::MultiRegionConfig::primary(
                    &self.region,
                ))
            }),
            key_id,
        };
        tracing::Span::current().record("key_id", record.key_id.as_str());
        let created = self.propose_key(Command::CreateKey { record }).await?;
        Ok(CreateKeyResponse {
            key_metadata: Some(key_metadata(&created)),
        })
    }

    /// Validates a key policy document for CreateKey/PutKeyPolicy: AWS's size limit, the
    /// grammar (MalformedPolicyDocumentException with what is wrong), and — unless the caller
    /// bypasses it — the lockout safety check: the caller must still be allowed
    /// kms:PutKeyPolicy under the new policy.
    async fn checked_key_policy(
        &self,
        caller: &Caller,
        document: &str,
        key_arn: &str,
        key_account: &str,
        bypass_lockout_check: bool,
    ) -> Result<keystore::policy::Policy, KmsError> {
        use keystore::policy::{Policy, PolicyKind, MAX_KEY_POLICY_BYTES};
        check_len("Policy", document, 1, MAX_POLICY)?;
        if document.len() > MAX_KEY_POLICY_BYTES {
            return Err(KmsError::LimitExceeded(format!(
                "The key policy exceeds the maximum size of {MAX_KEY_POLICY_BYTES} bytes."
            )));
        }
        let policy = Policy::parse(document, PolicyKind::Key)
            .map_err(|e| KmsError::MalformedPolicyDocument(e.to_string()))?;
        if !bypass_lockout_check {
            let identity_policies = self.identity_policies(caller).await?;
            let identity_policies: Vec<&Policy> = identity_policies.iter().map(|p| &**p).collect();
            if !keystore::policy::passes_lockout_check(
                &policy,
                &caller.principal(),
                key_arn,
                key_account,
                &identity_policies,
            ) {
                return Err(KmsError::MalformedPolicyDocument(
                    "The new key policy will not allow you to update the key policy in the future."
                        .into(),
                ));
            }
        }
        Ok(policy)
    }

    /// PutKeyPolicy (PolicyName `default`, the only key policy a key has).
    pub async fn put_key_policy(
        &self,
        caller: &Caller,
        req: PutKeyPolicyRequest,
    ) -> Result<Empty, KmsError> {
        let key_id = require(req.key_id, "KeyId")?;
        let document = require(req.policy, "Policy")?;
        check_policy_name(req.policy_name.as_deref())?;
        let bypass = req.bypass_policy_lockout_safety_check == Some(true);
        let key = self.resolve(caller, &key_id, MANAGEMENT).await?;
        self.authorize_key(
            caller,
            Operation::PutKeyPolicy.action(),
            &key,
            Facts::none().with("kms:BypassPolicyLockoutSafetyCheck", bypass.to_string()),
        )
        .await?;
        check_state(&key, state::Operation::PutKeyPolicy)?;
        self.checked_key_policy(caller, &document, &key.arn, &key.account_id, bypass)
            .await?;
        self.propose(Command::PutKeyPolicy {
            key_id: key.key_id,
            policy: document,
        })
        .await?;
        Ok(Empty {})
    }

    /// GetKeyPolicy: the document as stored (AWS returns it as written).
    pub async fn get_key_policy(
        &self,
        caller: &Caller,
        req: GetKeyPolicyRequest,
    ) -> Result<GetKeyPolicyResponse, KmsError> {
        let key_id = require(req.key_id, "KeyId")?;
        check_policy_name(req.policy_name.as_deref())?;
        let key = self.resolve(caller, &key_id, MANAGEMENT).await?;
        self.authorize_key(
            caller,
            Operation::GetKeyPolicy.action(),
            &key,
            Facts::none(),
        )
        .await?;
        check_state(&key, state::Operation::GetKeyPolicy)?;
        Ok(GetKeyPolicyResponse {
            policy: Some(key.policy),
            policy_name: Some("default".into()),
        })
    }

    /// ListKeyPolicies: always `["default"]`, as in AWS.
    pub async fn list_key_policies(
        &self,
        caller: &Caller,
        req: ListKeyPoliciesRequest,
    ) -> Result<ListKeyPoliciesResponse, KmsError> {
        let key_id = require(req.key_id, "KeyId")?;
        if let Some(limit) = req.limit {
            check_range("Limit", limit, 1, 1000)?;
        }
        if let Some(m) = &req.marker {
            check_len("Marker", m, 1, 320)?;
        }
        let key = self.resolve(caller, &key_id, MANAGEMENT).await?;
        self.authorize_key(
            caller,
            Operation::ListKeyPolicies.action(),
            &key,
            Facts::none(),
        )
        .await?;
        check_state(&key, state::Operation::ListKeyPolicies)?;
        Ok(ListKeyPoliciesResponse {
            policy_names: Some(vec!["default".into()]),
            truncated: Some(false),
            next_marker: None,
        })
    }

    /// DescribeKey.
    pub async fn describe_key(
        &self,
        caller: &Caller,
        req: DescribeKeyRequest,
    ) -> Result<DescribeKeyResponse, KmsError> {
        check_grant_tokens(&req.grant_tokens)?;
        let key_id = require(req.key_id, "KeyId")?;
        let key = self.resolve(caller, &key_id, MANAGEMENT_ALIAS_OK).await?;
        self.authorize_key(
            caller,
            Operation::DescribeKey.action(),
            &key,
            Facts::none().key_ref(&key_id).tokens(&req.grant_tokens),
        )
        .await?;
        Ok(DescribeKeyResponse {
            key_metadata: Some(key_metadata(&key)),
        })
    }

    /// ListKeys.
    pub async fn list_keys(
        &self,
        caller: &Caller,
        req: ListKeysRequest,
    ) -> Result<ListKeysResponse, KmsError> {
        let limit = req.limit.unwrap_or(100);
        check_range("Limit", limit, 1, 1000)?;
        let marker = decode_marker(Listing::Keys, req.marker)?;
        self.authorize_account(caller, Operation::ListKeys.action(), Facts::none())
            .await?;
        let q = Query::ListKeys {
            account_id: caller.account_id.clone(),
            limit: limit as u32,
            marker,
        };
        match self.store.query(q).await? {
            QueryOutput::Keys { keys, next_marker } => Ok(ListKeysResponse {
                keys: keys
                    .into_iter()
                    .map(|k| KeyListEntry {
                        key_id: Some(k.key_id),
                        key_arn: Some(k.arn),
                    })
                    .collect(),
                truncated: next_marker.is_some(),
                next_marker: next_marker.map(|m| encode_marker(Listing::Keys, &m)),
            }),
            _ => Err(KmsError::internal()),
        }
    }

    async fn set_enabled(
        &self,
        caller: &Caller,
        key_id: Option<String>,
        enabled: bool,
    ) -> Result<Empty, KmsError> {
        let (op, sop) = if enabled {
            (Operation::EnableKey, state::Operation::EnableKey)
        } else {
            (Operation::DisableKey, state::Operation::DisableKey)
        };
        let key = self
            .resolve(caller, &require(key_id, "KeyId")?, MANAGEMENT)
            .await?;
        self.authorize_key(caller, op.action(), &key, Facts::none())
            .await?;
        check_state(&key, sop)?;
        self.propose(Command::SetKeyEnabled {
            key_id: key.key_id,
            enabled,
        })
        .await?;
        Ok(Empty {})
    }

    /// EnableKey.
    pub async fn enable_key(&self, caller: &Caller, req: KeyIdRequest) -> Result<Empty, KmsError> {
        self.set_enabled(caller, req.key_id, true).await
    }

    /// DisableKey.
    pub async fn disable_key(&self, caller: &Caller, req: KeyIdRequest) -> Result<Empty, KmsError> {
        self.set_enabled(caller, req.key_id, false).await
    }

    /// UpdateKeyDescription.
    pub async fn update_key_description(
        &self,
        caller: &Caller,
        req: UpdateKeyDescriptionRequest,
    ) -> Result<Empty, KmsError> {
        let key_id = require(req.key_id, "KeyId")?;
        let description = require(req.description, "Description")?;
        check_len("Description", &description, 0, MAX_DESCRIPTION)?;
        let key = self.resolve(caller, &key_id, MANAGEMENT).await?;
        self.authorize_key(
            caller,
            Operation::UpdateKeyDescription.action(),
            &key,
            Facts::none(),
        )
        .await?;
        check_state(&key, state::Operation::UpdateKeyDescription)?;
        self.propose(Command::UpdateKeyDescription {
            key_id: key.key_id,
            description,
        })
        .await?;
        Ok(Empty {})
    }

    /// ScheduleKeyDeletion.
    pub async fn schedule_key_deletion(
        &self,
        caller: &Caller,
        req: ScheduleKeyDeletionRequest,
    ) -> Result<ScheduleKeyDeletionResponse, KmsError> {
        let key_id = require(req.key_id, "KeyId")?;
        let days = req.pending_window_in_days.unwrap_or(30);
        check_range("PendingWindowInDays", days, 1, 365)?;
        if !(7..=30).contains(&days) {
            return Err(KmsError::Validation(
                "PendingWindowInDays value must be between 7 and 30 (inclusive).".into(),
            ));
        }
        let key = self.resolve(caller, &key_id, MANAGEMENT).await?;
        self.authorize_key(
            caller,
            Operation::ScheduleKeyDeletion.action(),
            &key,
            Facts::none().with(
                "kms:ScheduleKeyDeletionPendingWindowInDays",
                days.to_string(),
            ),
        )
        .await?;
        check_state(&key, state::Operation::ScheduleKeyDeletion)?;
        let k = self
            .propose_key(Command::ScheduleKeyDeletion {
                key_id: key.key_id,
                pending_window_days: days as u32,
            })
            .await?;
        Ok(ScheduleKeyDeletionResponse {
            key_id: Some(k.arn.clone()),
            deletion_date: k.deletion_date.map(epoch_seconds),
            key_state: Some(key_state_name(k.state).into()),
            pending_window_in_days: Some(k.pending_deletion_window_days.unwrap_or(days as u32)),
        })
    }

    /// CancelKeyDeletion (the key ends up Disabled, as in AWS).
    pub async fn cancel_key_deletion(
        &self,
        caller: &Caller,
        req: KeyIdRequest,
    ) -> Result<CancelKeyDeletionResponse, KmsError> {
        let key = self
            .resolve(caller, &require(req.key_id, "KeyId")?, MANAGEMENT)
            .await?;
        self.authorize_key(
            caller,
            Operation::CancelKeyDeletion.action(),
            &key,
            Facts::none(),
        )
        .await?;
        check_state(&key, state::Operation::CancelKeyDeletion)?;
        self.propose(Command::CancelKeyDeletion {
            key_id: key.key_id.clone(),
        })
        .await?;
        Ok(CancelKeyDeletionResponse {
            key_id: Some(key.arn),
        })
    }

    // ---- aliases ---------------------------------------------------------------------------

    /// CreateAlias.
    pub async fn create_alias(
        &self,
        caller: &Caller,
        req: AliasRequest,
    ) -> Result<Empty, KmsError> {
        let name = require(req.alias_name, "AliasName")?;
        let target = require(req.target_key_id, "TargetKeyId")?;
        validate_alias_name(&name)?;
        let key = self.resolve(caller, &target, MANAGEMENT).await?;
        let alias_arn = ids::alias_arn(&self.region, &caller.account_id, &name);
        let action = Operation::CreateAlias.action();
        self.authorize(
            caller,
            action,
            &alias_arn,
            &caller.account_id,
            None,
            Facts::none(),
        )
        .await?;
        self.authorize_key(caller, action, &key, Facts::none())
            .await?;
        check_state(&key, state::Operation::CreateAlias)?;
        self.propose(Command::CreateAlias {
            account_id: caller.account_id.clone(),
            alias_name: name,
            alias_arn,
            target_key_id: key.key_id,
        })
        .await?;
        Ok(Empty {})
    }

    /// UpdateAlias.
    pub async fn update_alias(
        &self,
        caller: &Caller,
        req: AliasRequest,
    ) -> Result<Empty, KmsError> {
        let name = require(req.alias_name, "AliasName")?;
        let target = require(req.target_key_id, "TargetKeyId")?;
        validate_alias_name(&name)?;
        let key = self.resolve(caller, &target, MANAGEMENT).await?;
        let alias_arn = ids::alias_arn(&self.region, &caller.account_id, &name);
        let action = Operation::UpdateAlias.action();
        self.authorize(
            caller,
            action,
            &alias_arn,
            &caller.account_id,
            None,
            Facts::none(),
        )
        .await?;
        self.authorize_key(caller, action, &key, Facts::none())
            .await?;
        check_state(&key, state::Operation::UpdateAlias)?;
        self.propose(Command::UpdateAlias {
            account_id: caller.account_id.clone(),
            alias_name: name,
            target_key_id: key.key_id,
        })
        .await?;
        Ok(Empty {})
    }

    /// DeleteAlias.
    pub async fn delete_alias(
        &self,
        caller: &Caller,
        req: DeleteAliasRequest,
    ) -> Result<Empty, KmsError> {
        let name = require(req.alias_name, "AliasName")?;
        validate_alias_name(&name)?;
        let alias_arn = ids::alias_arn(&self.region, &caller.account_id, &name);
        self.authorize(
            caller,
            Operation::DeleteAlias.action(),
            &alias_arn,
            &caller.account_id,
            None,
            Facts::none(),
        )
        .await?;
        self.propose(Command::DeleteAlias {
            account_id: caller.account_id.clone(),
            alias_name: name,
        })
        .await?;
        Ok(Empty {})
    }

    /// ListAliases.
    pub async fn list_aliases(
        &self,
        caller: &Caller,
        req: ListAliasesRequest,
    ) -> Result<ListAliasesResponse, KmsError> {
        let limit = req.limit.unwrap_or(50);
        check_range("Limit", limit, 1, 1000)?;
        let marker = decode_marker(Listing::Aliases, req.marker)?;
        let key_id = match req.key_id {
            Some(k) => Some(self.resolve(caller, &k, MANAGEMENT).await?.key_id),
            None => None,
        };
        self.authorize_account(caller, Operation::ListAliases.action(), Facts::none())
            .await?;
        let q = Query::ListAliases {
            account_id: caller.account_id.clone(),
            key_id,
            limit: limit.min(100) as u32,
            marker,
        };
        match self.store.query(q).await? {
            QueryOutput::Aliases {
                aliases,
                next_marker,
            } => Ok(ListAliasesResponse {
                aliases: aliases
                    .into_iter()
                    .map(|a| AliasListEntry {
                        alias_name: Some(a.alias_name),
                        alias_arn: Some(a.alias_arn),
                        target_key_id: Some(a.target_key_id),
                        creation_date: Some(epoch_seconds(a.creation_date)),
                        last_updated_date: Some(epoch_seconds(a.last_updated_date)),
                    })
                    .collect(),
                truncated: next_marker.is_some(),
                next_marker: next_marker.map(|m| encode_marker(Listing::Aliases, &m)),
            }),
            _ => Err(KmsError::internal()),
        }
    }

    // ---- tags ------------------------------------------------------------------------------

    /// TagResource.
    pub async fn tag_resource(
        &self,
        caller: &Caller,
        req: TagResourceRequest,
    ) -> Result<Empty, KmsError> {
        let key_id = require(req.key_id, "KeyId")?;
        let tags = tag_pairs(require(req.tags, "Tags")?)?;
        let key = self.resolve(caller, &key_id, MANAGEMENT).await?;
        self.authorize_key(
            caller,
            Operation::TagResource.action(),
            &key,
            Facts::none().request_tags(tags.clone()),
        )
        .await?;
        check_state(&key, state::Operation::TagResource)?;
        self.propose(Command::TagResource {
            key_id: key.key_id,
            tags,
        })
        .await?;
        Ok(Empty {})
    }

    /// UntagResource.
    pub async fn untag_resource(
        &self,
        caller: &Caller,
        req: UntagResourceRequest,
    ) -> Result<Empty, KmsError> {
        let key_id = require(req.key_id, "KeyId")?;
        let tag_keys = require(req.tag_keys, "TagKeys")?;
        for k in &tag_keys {
            check_len("TagKeys.member", k, 1, 128)?;
        }
        let key = self.resolve(caller, &key_id, MANAGEMENT).await?;
        self.authorize_key(
            caller,
            Operation::UntagResource.action(),
            &key,
            Facts::none().with_multi("aws:TagKeys", tag_keys.clone()),
        )
        .await?;
        check_state(&key, state::Operation::UntagResource)?;
        self.propose(Command::UntagResource {
            key_id: key.key_id,
            tag_keys,
        })
        .await?;
        Ok(Empty {})
    }

    /// ListResourceTags. The marker encodes the last tag key of the previous page.
    pub async fn list_resource_tags(
        &self,
        caller: &Caller,
        req: ListResourceTagsRequest,
    ) -> Result<ListResourceTagsResponse, KmsError> {
        let key_id = require(req.key_id, "KeyId")?;
        let limit = req.limit.unwrap_or(50);
        check_range("Limit", limit, 1, 1000)?;
        let limit = limit.min(50) as usize;
        let after = decode_marker(Listing::Tags, req.marker)?;
        let key = self.resolve(caller, &key_id, MANAGEMENT).await?;
        self.authorize_key(
            caller,
            Operation::ListResourceTags.action(),
            &key,
            Facts::none(),
        )
        .await?;
        let mut rest = key
            .tags
            .iter()
            .filter(|(k, _)| after.as_deref().is_none_or(|m| k.as_str() > m))
            .peekable();
        let mut tags = Vec::new();
        while tags.len() < limit {
            match rest.next() {
                Some((k, v)) => tags.push(Tag {
                    tag_key: Some(k.clone()),
                    tag_value: Some(v.clone()),
                }),
                None => break,
            }
        }
        let truncated = rest.peek().is_some();
        let next_marker = if truncated {
            tags.last()
                .and_then(|t| t.tag_key.as_deref())
                .map(|k| encode_marker(Listing::Tags, k))
        } else {
            None
        };
        Ok(ListResourceTagsResponse {
            tags,
            next_marker,
            truncated,
        })
    }

    // ---- cryptography ----------------------------------------------------------------------

    /// Encrypt.
    pub async fn encrypt(
        &self,
        caller: &Caller,
        req: EncryptRequest,
    ) -> Result<EncryptResponse, KmsError> {
        let key_id = require(req.key_id, "KeyId")?;
        let plaintext = require(req.plaintext, "Plaintext")?;
        if plaintext.0.is_empty() || plaintext.0.len() > MAX_PLAINTEXT {
            return Err(KmsError::constraint(
                "Plaintext",
                "(blob)",
                &format!("Member must have length between 1 and {MAX_PLAINTEXT}"),
            ));
        }
        check_grant_tokens(&req.grant_tokens)?;
        if asymmetric::is_rsa_algorithm(&req.encryption_algorithm) {
            return self
                .encrypt_rsa(
                    caller,
                    key_id,
                    plaintext,
                    req.encryption_context,
                    req.encryption_algorithm,
                    req.dry_run,
                )
                .await;
        }
        check_algorithm("EncryptionAlgorithm", &req.encryption_algorithm)?;
        let key = self.resolve(caller, &key_id, CRYPTO).await?;
        self.authorize_key(
            caller,
            Operation::Encrypt.action(),
            &key,
            Facts::none()
                .key_ref(&key_id)
                .context(req.encryption_context.as_ref())
                .tokens(&req.grant_tokens)
                .with("kms:EncryptionAlgorithm", SYMMETRIC_DEFAULT),
        )
        .await?;
        check_state(&key, state::Operation::Encrypt)?;
        asymmetric::check_symmetric(&key, state::Operation::Encrypt)?;
        if req.dry_run == Some(true) {
            return Err(dry_run());
        }
        let blob = self.seal_under(
            &key,
            plaintext.expose_secret(),
            &context(req.encryption_context),
        )?;
        Ok(EncryptResponse {
            ciphertext_blob: Some(Blob(blob)),
            key_id: Some(key.arn),
            encryption_algorithm: Some(SYMMETRIC_DEFAULT.into()),
        })
    }

    /// Decrypt.
    pub async fn decrypt(
        &self,
        caller: &Caller,
        req: DecryptRequest,
    ) -> Result<DecryptResponse, KmsError> {
        check_grant_tokens(&req.grant_tokens)?;
        if asymmetric::is_rsa_algorithm(&req.encryption_algorithm) {
            return self.decrypt_rsa(caller, req).await;
        }
        check_algorithm("EncryptionAlgorithm", &req.encryption_algorithm)?;
        let dry = req.dry_run == Some(true);
        let (key, plaintext) = self
            .open_blob(
                caller,
                Operation::Decrypt.action(),
                state::Operation::Decrypt,
                req.ciphertext_blob,
                req.key_id,
                req.encryption_context,
                &req.grant_tokens,
            )
            .await?;
        if dry {
            return Err(dry_run());
        }
        Ok(DecryptResponse {
            key_id: Some(key.arn),
            plaintext: Some(SecretBlob(plaintext)),
            encryption_algorithm: Some(SYMMETRIC_DEFAULT.into()),
        })
    }

    /// ReEncrypt: decrypt under the source key (`kms:ReEncryptFrom`), encrypt under the
    /// destination key (`kms:ReEncryptTo`); the plaintext never leaves the front.
    pub async fn re_encrypt(
        &self,
        caller: &Caller,
        req: ReEncryptRequest,
    ) -> Result<ReEncryptResponse, KmsError> {
        let dest = require(req.destination_key_id, "DestinationKeyId")?;
        check_grant_tokens(&req.grant_tokens)?;
        if asymmetric::is_rsa_algorithm(&req.source_encryption_algorithm)
            || asymmetric::is_rsa_algorithm(&req.destination_encryption_algorithm)
        {
            let req = ReEncryptRequest {
                destination_key_id: Some(dest),
                ..req
            };
            return self.re_encrypt_rsa(caller, req).await;
        }
        check_algorithm(
            "SourceEncryptionAlgorithm",
            &req.source_encryption_algorithm,
        )?;
        check_algorithm(
            "DestinationEncryptionAlgorithm",
            &req.destination_encryption_algorithm,
        )?;
        let (source, plaintext) = self
            .open_blob(
                caller,
                "kms:ReEncryptFrom",
                state::Operation::ReEncryptFrom,
                req.ciphertext_blob,
                req.source_key_id,
                req.source_encryption_context,
                &req.grant_tokens,
            )
            .await?;
        let dest = self.resolve(caller, &dest, CRYPTO).await?;
        self.authorize_key(
            caller,
            "kms:ReEncryptTo",
            &dest,
            Facts::none()
                .context(req.destination_encryption_context.as_ref())
                .tokens(&req.grant_tokens)
                .with("kms:EncryptionAlgorithm", SYMMETRIC_DEFAULT)
                .with(
                    "kms:ReEncryptOnSameKey",
                    (source.key_id == dest.key_id).to_string(),
                ),
        )
        .await?;
        check_state(&dest, state::Operation::ReEncryptTo)?;
        asymmetric::check_symmetric(&dest, state::Operation::ReEncryptTo)?;
        if req.dry_run == Some(true) {
            return Err(dry_run());
        }
        let blob = self.seal_under(
            &dest,
            plaintext.expose_secret(),
            &context(req.destination_encryption_context),
        )?;
        Ok(ReEncryptResponse {
            ciphertext_blob: Some(Blob(blob)),
            source_key_id: Some(source.arn),
            key_id: Some(dest.arn),
            source_encryption_algorithm: Some(SYMMETRIC_DEFAULT.into()),
            destination_encryption_algorithm: Some(SYMMETRIC_DEFAULT.into()),
        })
    }

    async fn data_key(
        &self,
        caller: &Caller,
        req: GenerateDataKeyRequest,
        op: Operation,
        sop: state::Operation,
    ) -> Result<(KeyRecord, Secret, Vec<u8>), KmsError> {
        let key_id = require(req.key_id, "KeyId")?;
        check_grant_tokens(&req.grant_tokens)?;
        let len = Self::data_key_len(req.number_of_bytes, req.key_spec.as_deref())?;
        let key = self.resolve(caller, &key_id, CRYPTO).await?;
        self.authorize_key(
            caller,
            op.action(),
            &key,
            Facts::none()
                .key_ref(&key_id)
                .context(req.encryption_context.as_ref())
                .tokens(&req.grant_tokens),
        )
        .await?;
        check_state(&key, sop)?;
        asymmetric::check_symmetric(&key, sop)?;
        if req.dry_run == Some(true) {
            return Err(dry_run());
        }
        let data_key = crypto::random_secret(len);
        let blob = self.seal_under(
            &key,
            data_key.expose_secret(),
            &context(req.encryption_context),
        )?;
        Ok((key, data_key, blob))
    }

    /// GenerateDataKey.
    pub async fn generate_data_key(
        &self,
        caller: &Caller,
        req: GenerateDataKeyRequest,
    ) -> Result<GenerateDataKeyResponse, KmsError> {
        let (key, data_key, blob) = self
            .data_key(
                caller,
                req,
                Operation::GenerateDataKey,
                state::Operation::GenerateDataKey,
            )
            .await?;
        Ok(GenerateDataKeyResponse {
            ciphertext_blob: Some(Blob(blob)),
            plaintext: Some(SecretBlob(data_key)),
            key_id: Some(key.arn),
        })
    }

    /// GenerateDataKeyWithoutPlaintext.
    pub async fn generate_data_key_without_plaintext(
        &self,
        caller: &Caller,
        req: GenerateDataKeyRequest,
    ) -> Result<GenerateDataKeyWithoutPlaintextResponse, KmsError> {
        let (key, _data_key, blob) = self
            .data_key(
                caller,
                req,
                Operation::GenerateDataKeyWithoutPlaintext,
                state::Operation::GenerateDataKeyWithoutPlaintext,
            )
            .await?;
        Ok(GenerateDataKeyWithoutPlaintextResponse {
            ciphertext_blob: Some(Blob(blob)),
            key_id: Some(key.arn),
        })
    }

    /// GenerateRandom.
    pub async fn generate_random(
        &self,
        caller: &Caller,
        req: GenerateRandomRequest,
    ) -> Result<GenerateRandomResponse, KmsError> {
        let n = require(req.number_of_bytes, "NumberOfBytes")?;
        check_range("NumberOfBytes", n, 1, MAX_NUMBER_OF_BYTES)?;
        if req.custom_key_store_id.is_some() {
            return Err(KmsError::UnsupportedOperation(
                "Custom key stores are not supported.".into(),
            ));
        }
        self.authorize_account(caller, Operation::GenerateRandom.action(), Facts::none())
            .await?;
        Ok(GenerateRandomResponse {
            plaintext: Some(SecretBlob(crypto::random_secret(n as usize))),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_refs_parse_into_their_four_forms() {
        assert_eq!(
            parse_key_ref("1234abcd").unwrap(),
            KeyRef::KeyId("1234abcd".into())
        );
        assert_eq!(
            parse_key_ref("alias/app").unwrap(),
            KeyRef::AliasName("alias/app".into())
        );
        assert_eq!(
            parse_key_ref("arn:aws:kms:us-east-1:111122223333:key/k-1").unwrap(),
            KeyRef::KeyArn {
                region: "us-east-1".into(),
                account: "111122223333".into(),
                key_id: "k-1".into()
            }
        );
        assert_eq!(
            parse_key_ref("arn:aws:kms:us-east-1:111122223333:alias/app/x").unwrap(),
            KeyRef::AliasArn {
                region: "us-east-1".into(),
                account: "111122223333".into(),
                alias_name: "alias/app/x".into()
            }
        );
    }

    #[test]
    fn bad_key_refs_are_refused_with_aws_types() {
        assert_eq!(
            parse_key_ref("").unwrap_err().aws_type(),
            "ValidationException"
        );
        assert_eq!(
            parse_key_ref(&"k".repeat(2049)).unwrap_err().aws_type(),
            "ValidationException"
        );
        for bad in [
            "arn:aws:s3:::bucket",
            "arn:aws:kms:us-east-1:111122223333:grant/x",
            "arn:aws:kms:us-east-1:111122223333:key/",
            "arn:",
        ] {
            assert_eq!(
                parse_key_ref(bad).unwrap_err().aws_type(),
                "InvalidArnException",
                "{bad}"
            );
        }
    }

    #[test]
    fn alias_names_follow_aws_rules() {
        validate_alias_name("alias/app-1/prod_x").unwrap();
        let ty = |n: &str| validate_alias_name(n).unwrap_err().aws_type();
        assert_eq!(ty("app"), "ValidationException");
        assert_eq!(ty("alias/has space"), "ValidationException");
        assert_eq!(ty(""), "ValidationException");
        assert_eq!(
            ty(&format!("alias/{}", "a".repeat(251))),
            "ValidationException"
        );
        assert_eq!(ty("alias/aws/s3"), "NotAuthorizedException");
        assert_eq!(ty("alias/"), "InvalidAliasNameException");
        assert_eq!(ty("alias/a:b"), "InvalidAliasNameException");
        validate_alias_name(&format!("alias/{}", "a".repeat(250))).unwrap();
    }

    #[test]
    fn data_key_length_needs_exactly_one_of_spec_and_bytes() {
        assert_eq!(Kms::data_key_len(None, Some("AES_256")).unwrap(), 32);
        assert_eq!(Kms::data_key_len(None, Some("AES_128")).unwrap(), 16);
        assert_eq!(Kms::data_key_len(Some(1024), None).unwrap(), 1024);
        for (n, s) in [
            (None, None),
            (Some(32), Some("AES_256")),
            (Some(0), None),
            (Some(1025), None),
            (None, Some("AES_512")),
        ] {
            assert_eq!(
                Kms::data_key_len(n, s).unwrap_err().aws_type(),
                "ValidationException",
                "{n:?} {s:?}"
            );
        }
    }

    #[test]
    fn only_symmetric_default_algorithm_is_usable() {
        check_algorithm("EncryptionAlgorithm", &None).unwrap();
        check_algorithm("EncryptionAlgorithm", &Some("SYMMETRIC_DEFAULT".into())).unwrap();
        assert_eq!(
            check_algorithm("EncryptionAlgorithm", &Some("RSAES_OAEP_SHA_256".into()))
                .unwrap_err()
                .aws_type(),
            "InvalidKeyUsageException"
        );
        assert_eq!(
            check_algorithm("EncryptionAlgorithm", &Some("ROT13".into()))
                .unwrap_err()
                .aws_type(),
            "ValidationException"
        );
    }

    #[test]
    fn tag_lengths_are_model_validated() {
        let t = |k: &str, v: &str| Tag {
            tag_key: Some(k.into()),
            tag_value: Some(v.into()),
        };
        tag_pairs(vec![t("a", ""), t(&"k".repeat(128), &"v".repeat(256))]).unwrap();
        assert!(tag_pairs(vec![t("", "v")]).is_err());
        assert!(tag_pairs(vec![t(&"k".repeat(129), "v")]).is_err());
        assert!(tag_pairs(vec![t("k", &"v".repeat(257))]).is_err());
        assert!(tag_pairs(vec![Tag {
            tag_key: Some("k".into()),
            tag_value: None
        }])
        .is_err());
    }

    #[test]
    fn ranges_and_markers() {
        assert!(check_range("Limit", 0, 1, 1000).is_err());
        assert!(check_range("Limit", 1001, 1, 1000).is_err());
        check_range("Limit", 1000, 1, 1000).unwrap();
        let m = encode_marker(Listing::Keys, "k-1");
        assert!(m
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        assert_eq!(
            decode_marker(Listing::Keys, Some(m.clone()))
                .unwrap()
                .as_deref(),
            Some("k-1")
        );
        assert_eq!(decode_marker(Listing::Keys, None).unwrap(), None);
        // A marker from another listing, or one we never issued, is refused.
        for bad in [
            m.clone(),
            String::new(),
            "not-a-marker-we-issued".into(),
            "\u{1}".into(),
            "x".repeat(1025),
        ] {
            let listing = if bad == m {
                Listing::Tags
            } else {
                Listing::Keys
            };
            assert_eq!(
                decode_marker(listing, Some(bad)).unwrap_err().aws_type(),
                "InvalidMarkerException"
            );
        }
        let longest_tag = "\u{10348}".repeat(128);
        assert!(encode_marker(Listing::Tags, &longest_tag).len() <= 1024);
    }
}
