//! Multi-region keys on the front (issue 7, design: `docs/multi-region.md`): ReplicateKey,
//! UpdatePrimaryRegion, the region-to-region delivery endpoint, and the replicator task
//! that drains the primary region's outbox.
//!
//! A child module of `ops`, so it shares `Kms`'s private plumbing (resolve, authorize,
//! propose) without widening it.
//!
//! # Data flow
//!
//! ```text
//!  ReplicateKey / UpdatePrimaryRegion --> Raft (outbox entries on the key)
//!  Replicator (every front, every TICK): Query::ReplicationOutbox
//!    -> per (key, region): Delivery { body (materials sealed to the target's transport key),
//!       Ed25519 signature } --HTTPS, mTLS (front certificate)--> peer front
//!       POST /keyraft/replication: role check, verify against the configured peer key,
//!       re-wrap under its domain key -> Command::InstallReplica -> 200
//!    -> Command::AckReplication (entries up to seq removed); failure: backoff per target
//! ```
//!
//! Every front of the primary region runs the replicator; two fronts delivering the same
//! entries is harmless, because installs are idempotent by (key, version) and
//! acknowledgements only remove entries up to a seq.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;

use anyhow::Context as _;
use std::path::Path;
use std::sync::Mutex;

use base64::Engine as _;
use http_body_util::BodyExt as _;
use keystore::multi_region::{self as mr, OutboxKind, ReplicaInit, ReplicaInstall};
use keystore::transport::{self, ReplicationSigningKey, TransportPrivateKey, TransportSealed};
use serde::{Deserialize, Serialize};

use super::*;

/// The path peers deliver to (not an AWS operation: no SigV4, mTLS + signature instead).
pub const DELIVERY_PATH: &str = "/keyraft/replication";
/// How often the replicator looks at the outbox.
const TICK: Duration = Duration::from_millis(500);
/// Longest wait between attempts at an unreachable or refusing region.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How often a primary waiting in PendingReplicaDeletion asks each replica region whether
/// its replica still exists.
const PROBE_EVERY: Duration = Duration::from_secs(2);
/// How long one delivery may take.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

// ---- shapes ------------------------------------------------------------------------------

/// `ReplicateKeyRequest`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReplicateKeyRequest {
    /// The primary key (id or ARN).
    #[serde(default)]
    pub key_id: Option<String>,
    /// The replica's region.
    #[serde(default)]
    pub replica_region: Option<String>,
    /// The replica's key policy (default: the default key policy).
    #[serde(default)]
    pub policy: Option<String>,
    /// Skip the lockout safety check.
    #[serde(default)]
    pub bypass_policy_lockout_safety_check: Option<bool>,
    /// The replica's description.
    #[serde(default)]
    pub description: Option<String>,
    /// The replica's tags.
    #[serde(default)]
    pub tags: Option<Vec<Tag>>,
}

/// `ReplicateKeyResponse`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReplicateKeyResponse {
    /// The replica as it is being created (`Creating`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica_key_metadata: Option<KeyMetadata>,
    /// The replica's key policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica_policy: Option<String>,
    /// The replica's tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica_tags: Option<Vec<Tag>>,
}

/// `UpdatePrimaryRegionRequest`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdatePrimaryRegionRequest {
    /// The current primary key (id or ARN).
    #[serde(default)]
    pub key_id: Option<String>,
    /// The replica region that becomes primary.
    #[serde(default)]
    pub primary_region: Option<String>,
}

/// AWS's `MultiRegionConfiguration` of a record, as the region holding it knows it.
pub fn multi_region_configuration(k: &KeyRecord) -> Option<MultiRegionConfiguration> {
    let c = k.multi_region_config.as_deref()?;
    let key = |region: &str| MultiRegionKey {
        arn: Some(ids::key_arn(region, &k.account_id, &k.key_id)),
        region: Some(region.to_string()),
    };
    Some(MultiRegionConfiguration {
        multi_region_key_type: Some(c.key_type.as_str().into()),
        primary_key: Some(key(&c.primary_region)),
        replica_keys: Some(
            c.replica_regions
                .iter()
                .filter(|r| **r != c.primary_region)
                .map(|r| key(r))
                .collect(),
        ),
    })
}

// ---- trust configuration -------------------------------------------------------------------

/// One peer region as a front trusts it (an entry of the peers file).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerRegion {
    /// Region name.
    pub region: String,
    /// The peer's front JSON endpoint (`https://host:port`).
    pub endpoint: String,
    /// Its transport public key (uncompressed P-384 point, hex).
    pub transport_public_key: String,
    /// Its replication public key (Ed25519, hex).
    pub replication_public_key: String,
}

/// This region's public half, as peers list it (`DIR/region-public.json` in dev).
pub fn public_entry(
    region: &str,
    endpoint: &str,
    transport: &TransportPrivateKey,
    signing: &ReplicationSigningKey,
) -> anyhow::Result<PeerRegion> {
    Ok(PeerRegion {
        region: region.into(),
        endpoint: endpoint.into(),
        transport_public_key: hex::encode(transport.public_key()?),
        replication_public_key: hex::encode(signing.public_key()),
    })
}

/// What a front needs to take part in multi-region replication.
pub struct MultiRegionSettings {
    transport: TransportPrivateKey,
    signing: ReplicationSigningKey,
    peers: BTreeMap<String, PeerRegion>,
    client_tls: Arc<rustls::ClientConfig>,
}

/// Reads a secret key file: must exist, be private (0600) and hold exactly `len` bytes.
pub fn read_private_key_file(path: &Path, len: usize) -> anyhow::Result<Vec<u8>> {
    use std::os::unix::fs::PermissionsExt as _;
    let meta = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        anyhow::bail!(
            "{} must not be readable by group or others (chmod 600)",
            path.display()
        );
    }
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if bytes.len() != len {
        anyhow::bail!(
            "{} must hold {len} bytes, it holds {}",
            path.display(),
            bytes.len()
        );
    }
    Ok(bytes)
}

impl MultiRegionSettings {
    /// Loads the region's keys and the peers file; `tls` is this front's certificate, used
    /// as the client identity towards peer fronts (which must trust its CA).
    pub fn load(
        transport_key: &Path,
        replication_key: &Path,
        peers_file: &Path,
        tls: &raft::TlsFiles,
    ) -> anyhow::Result<Self> {
        let transport = TransportPrivateKey::from_bytes(&read_private_key_file(
            transport_key,
            transport::TRANSPORT_PRIVATE_LEN,
        )?)
        .map_err(|e| anyhow::anyhow!("{}: {e}", transport_key.display()))?;
        let signing =
            ReplicationSigningKey::from_bytes(&read_private_key_file(replication_key, 32)?)
                .map_err(|e| anyhow::anyhow!("{}: {e}", replication_key.display()))?;
        let text = std::fs::read_to_string(peers_file)
            .with_context(|| format!("reading {}", peers_file.display()))?;
        let list: Vec<PeerRegion> = serde_json::from_str(&text)
            .with_context(|| format!("parsing {}", peers_file.display()))?;
        let mut peers = BTreeMap::new();
        for p in list {
            if hex::decode(&p.transport_public_key).map_or(true, |b| b.len() != 97)
                || hex::decode(&p.replication_public_key).map_or(true, |b| b.len() != 32)
            {
                anyhow::bail!(
                    "{}: bad public key for region {}",
                    peers_file.display(),
                    p.region
                );
            }
            peers.insert(p.region.clone(), p);
        }
        Ok(Self {
            transport,
            signing,
            peers,
            client_tls: Arc::new(client_tls(tls)?),
        })
    }

    /// The regions this front trusts.
    pub fn peer_regions(&self) -> Vec<String> {
        self.peers.keys().cloned().collect()
    }
}

fn client_tls(tls: &raft::TlsFiles) -> anyhow::Result<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&tls.ca)
        .with_context(|| format!("reading CA {}", tls.ca.display()))?
    {
        roots.add(cert.context("parsing CA certificate")?)?;
    }
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.cert)
        .with_context(|| format!("reading certificate {}", tls.cert.display()))?
        .collect::<Result<_, _>>()?;
    let key = PrivateKeyDer::from_pem_file(&tls.key)
        .with_context(|| format!("reading key {}", tls.key.display()))?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

// ---- the wire format between regions ----------------------------------------------------------

/// One material version in a delivery.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct SealedVersion {
    version: u32,
    created_at: u64,
    sealed: TransportSealed,
}

/// The signed part of a delivery.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct DeliveryBody {
    key_id: String,
    account_id: String,
    source_region: String,
    target_region: String,
    key_spec: keystore::model::KeySpec,
    key_usage: keystore::model::KeyUsage,
    origin: Origin,
    creation_date: u64,
    primary_region: String,
    replica_regions: std::collections::BTreeSet<String>,
    epoch: u64,
    current_version: u32,
    init: Option<ReplicaInit>,
    materials: Vec<SealedVersion>,
    promote: bool,
    through_seq: u64,
}

/// What crosses the wire: the body exactly as signed, and the signature.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Delivery {
    source_region: String,
    target_region: String,
    /// Base64 of the body's JSON bytes (signed as they are).
    body: String,
    /// Base64 Ed25519 signature.
    signature: String,
}

/// The peer certificate's role URIs, set by the accept loop (empty without a certificate).
#[derive(Clone, Debug, Default)]
pub struct PeerRoles(pub Vec<String>);

/// URI SANs of a DER certificate (roles of internal certificates).
pub fn uri_sans(der: &[u8]) -> Vec<String> {
    use x509_parser::extensions::GeneralName;
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return vec![];
    };
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return vec![];
    };
    san.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::URI(u) => Some(u.to_string()),
            _ => None,
        })
        .collect()
}

// ---- operations --------------------------------------------------------------------------

fn check_region_name(member: &str, region: &str) -> Result<(), KmsError> {
    check_len(member, region, 1, 32)?;
    if !crate::config::is_region_name(region) {
        return Err(KmsError::constraint(
            member,
            &format!("'{region}'"),
            "Member must satisfy regular expression pattern: ^([a-z]+-){2,3}\\d+$",
        ));
    }
    Ok(())
}

impl Kms {
    /// Installs the multi-region settings (once, at startup).
    pub fn set_multi_region(&self, settings: MultiRegionSettings) {
        let _ = self.multi_region.set(Arc::new(settings));
    }

    /// Runs a multi-region operation with a JSON request body.
    pub(super) async fn dispatch_multi_region(
        &self,
        caller: &Caller,
        op: Operation,
        body: &[u8],
    ) -> Result<Vec<u8>, KmsError> {
        match op {
            Operation::ReplicateKey => {
                to_body(&self.replicate_key(caller, parse_request(body)?).await?)
            }
            Operation::UpdatePrimaryRegion => to_body(
                &self
                    .update_primary_region(caller, parse_request(body)?)
                    .await?,
            ),
            _ => Err(KmsError::internal()),
        }
    }

    fn peer(&self, region: &str) -> Result<PeerRegion, KmsError> {
        self.multi_region
            .get()
            .and_then(|s| s.peers.get(region).cloned())
            .ok_or_else(|| {
                KmsError::UnsupportedOperation(format!(
                    "Region {region} is not a region this cluster replicates to."
                ))
            })
    }

    /// ReplicateKey: queues the replica's creation and every material version; the replica
    /// answers `Creating` until the replicator has delivered them.
    pub async fn replicate_key(
        &self,
        caller: &Caller,
        req: ReplicateKeyRequest,
    ) -> Result<ReplicateKeyResponse, KmsError> {
        let key_id = require(req.key_id, "KeyId")?;
        let region = require(req.replica_region, "ReplicaRegion")?;
        check_region_name("ReplicaRegion", &region)?;
        if let Some(d) = &req.description {
            check_len("Description", d, 0, MAX_DESCRIPTION)?;
        }
        let tags = tag_pairs(req.tags.unwrap_or_default())?;
        let key = self.resolve(caller, &key_id, MANAGEMENT).await?;
        self.authorize_key(
            caller,
            Operation::ReplicateKey.action(),
            &key,
            Facts::none()
                .with("kms:ReplicaRegion", region.as_str())
                .request_tags(tags.clone()),
        )
        .await?;
        mr::config_of(&key)?;
        if region == self.region {
            return Err(KmsError::Validation(format!(
                "The replica region {region} is the region of the primary key."
            )));
        }
        self.peer(&region)?;
        let replica_arn = ids::key_arn(&region, &key.account_id, &key.key_id);
        let bypass = req.bypass_policy_lockout_safety_check == Some(true);
        let policy = match req.policy {
            Some(p) => {
                self.checked_key_policy(caller, &p, &replica_arn, &key.account_id, bypass)
                    .await?;
                p
            }
            None => keystore::policy::default_key_policy(&key.account_id),
        };
        let init = ReplicaInit {
            description: req.description.unwrap_or_default(),
            policy: policy.clone(),
            tags: tags.iter().cloned().collect(),
        };
        let updated = self
            .propose_key(Command::ReplicateKey {
                key_id: key.key_id.clone(),
                replica_region: region.clone(),
                init: init.clone(),
            })
            .await?;
        // The replica as it will look in its region once created.
        let mut replica = updated.clone();
        replica.arn = replica_arn;
        replica.region = region.clone();
        replica.state = KeyState::Creating;
        replica.description = init.description;
        replica.tags = init.tags;
        replica.policy = policy.clone();
        if let Some(c) = replica.multi_region_config.as_deref_mut() {
            c.key_type = mr::MultiRegionKeyType::Replica;
        }
        Ok(ReplicateKeyResponse {
            replica_key_metadata: Some(key_metadata(&replica)),
            replica_policy: Some(policy),
            replica_tags: Some(
                tags.into_iter()
                    .map(|(k, v)| Tag {
                        tag_key: Some(k),
                        tag_value: Some(v),
                    })
                    .collect(),
            ),
        })
    }

    /// UpdatePrimaryRegion: the key is `Updating` here until the new primary region took
    /// over (the replicator delivers the promotion).
    pub async fn update_primary_region(
        &self,
        caller: &Caller,
        req: UpdatePrimaryRegionRequest,
    ) -> Result<Empty, KmsError> {
        let key_id = require(req.key_id, "KeyId")?;
        let region = require(req.primary_region, "PrimaryRegion")?;
        check_region_name("PrimaryRegion", &region)?;
        let key = self.resolve(caller, &key_id, MANAGEMENT).await?;
        self.authorize_key(
            caller,
            Operation::UpdatePrimaryRegion.action(),
            &key,
            Facts::none().with("kms:PrimaryRegion", region.as_str()),
        )
        .await?;
        mr::config_of(&key)?;
        if region != self.region {
            self.peer(&region)?;
        }
        self.propose_key(Command::UpdatePrimaryRegion {
            key_id: key.key_id.clone(),
            primary_region: region,
        })
        .await?;
        Ok(Empty {})
    }

    /// POST /keyraft/replication from a peer region's front. `roles` are the URI SANs of
    /// the client certificate the TLS layer verified against the CA.
    pub async fn receive_delivery(
        &self,
        roles: &[String],
        body: &[u8],
    ) -> Result<Vec<u8>, KmsError> {
        if !roles.iter().any(|r| r == raft::tls::ROLE_FRONT) {
            return Err(KmsError::AccessDenied(
                "Replication deliveries need a front certificate.".into(),
            ));
        }
        let settings = self.multi_region.get().cloned().ok_or_else(|| {
            KmsError::UnsupportedOperation(
                "This front does not take part in multi-Region replication.".into(),
            )
        })?;
        let delivery: Delivery = serde_json::from_slice(body)
            .map_err(|_| KmsError::Serialization("Malformed replication delivery".into()))?;
        if delivery.target_region != self.region {
            return Err(KmsError::Validation(format!(
                "This front serves {}, not {}.",
                self.region, delivery.target_region
            )));
        }
        let peer = settings.peers.get(&delivery.source_region).ok_or_else(|| {
            KmsError::AccessDenied(format!(
                "Region {} is not a trusted peer region.",
                delivery.source_region
            ))
        })?;
        let bad = || KmsError::Validation("The replication message signature is invalid.".into());
        let body_bytes = B64.decode(&delivery.body).map_err(|_| bad())?;
        let signature = B64.decode(&delivery.signature).map_err(|_| bad())?;
        let peer_key = hex::decode(&peer.replication_public_key).map_err(|_| bad())?;
        transport::verify(
            &peer_key,
            &delivery.source_region,
            &delivery.target_region,
            &body_bytes,
            &signature,
        )?;
        let b: DeliveryBody = serde_json::from_slice(&body_bytes)
            .map_err(|_| KmsError::Serialization("Malformed replication body".into()))?;
        if b.source_region != delivery.source_region || b.target_region != delivery.target_region {
            return Err(bad());
        }
        let mut materials = Vec::with_capacity(b.materials.len());
        for m in &b.materials {
            let wrapped = transport::rewrap_from_region(
                &self.domain_key,
                &settings.transport,
                &b.key_id,
                m.version,
                b.key_spec,
                &m.sealed,
                &b.source_region,
                &b.target_region,
            )?;
            materials.push(MaterialVersion {
                version: m.version,
                wrapped,
                created_at: m.created_at,
            });
        }
        let install = ReplicaInstall {
            arn: ids::key_arn(&self.region, &b.account_id, &b.key_id),
            key_id: b.key_id,
            account_id: b.account_id,
            source_region: b.source_region,
            key_spec: b.key_spec,
            key_usage: b.key_usage,
            origin: b.origin,
            creation_date: b.creation_date,
            primary_region: b.primary_region,
            replica_regions: b.replica_regions,
            epoch: b.epoch,
            current_version: b.current_version,
            init: b.init,
            materials,
            promote: b.promote,
        };
        tracing::info!(key_id = %install.key_id, from = %install.source_region, versions = install.materials.len(), promote = install.promote, "replication delivery");
        self.propose(Command::InstallReplica {
            install: Box::new(install),
        })
        .await?;
        Ok(b"{}".to_vec())
    }

    /// Replication lag per (key, region) of the outbox entries the replicator last saw (for
    /// `/status`): the age of the oldest undelivered entry, now. It keeps growing while
    /// deliveries are blocked, even when the replicator itself is stuck waiting on them.
    pub fn replication_status(&self) -> serde_json::Value {
        let lag = self
            .replication_lag
            .lock()
            .map(|m| m.clone())
            .unwrap_or_default();
        let now = now_millis();
        let age = |oldest: u64| now.saturating_sub(oldest);
        let pending: Vec<serde_json::Value> = lag
            .iter()
            .map(|((key, region), (entries, oldest))| {
                serde_json::json!({ "keyId": key, "region": region, "entries": entries, "lagMs": age(*oldest) })
            })
            .collect();
        let max = lag
            .values()
            .map(|(_, oldest)| age(*oldest))
            .max()
            .unwrap_or(0);
        serde_json::json!({ "pending": pending, "maxLagMs": max })
    }

    /// The replicator: drains this region's outbox towards peer regions (a no-op until
    /// multi-region settings are installed).
    pub(super) fn replicator(&self) -> impl Future<Output = ()> + Send + 'static {
        let r = Replicator {
            region: self.region.clone(),
            store: self.store.clone(),
            domain_key: self.domain_key.clone(),
            settings: self.multi_region.clone(),
            lag: self.replication_lag.clone(),
        };
        r.run()
    }
}

/// (key id, region) -> (entries pending, when the oldest was enqueued, ms since the epoch).
pub(super) type LagMap = Arc<Mutex<BTreeMap<(String, String), (usize, u64)>>>;

struct Replicator {
    region: String,
    store: raft::StoreClient,
    domain_key: Arc<DomainKey>,
    settings: Arc<std::sync::OnceLock<Arc<MultiRegionSettings>>>,
    lag: LagMap,
}

impl Replicator {
    async fn run(self) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // (key, region) -> (next attempt, current backoff)
        let mut backoff: HashMap<(String, String), (tokio::time::Instant, Duration)> =
            HashMap::new();
        let mut probed: HashMap<(String, String), tokio::time::Instant> = HashMap::new();
        loop {
            tick.tick().await;
            let Some(settings) = self.settings.get().cloned() else {
                continue;
            };
            let keys = match self.store.query(Query::ReplicationOutbox).await {
                Ok(QueryOutput::Keys { keys, .. }) => keys,
                Ok(_) => continue,
                Err(e) => {
                    tracing::debug!(error = %e, "replication outbox not readable");
                    continue;
                }
            };
            let now = now_millis();
            let mut lag = BTreeMap::new();
            for key in &keys {
                let Some(cfg) = key.multi_region_config.as_deref() else {
                    continue;
                };
                for (region, ms) in cfg.lag_millis(now) {
                    let n = cfg.outbox.iter().filter(|e| e.region == region).count();
                    lag.insert((key.key_id.clone(), region), (n, now.saturating_sub(ms)));
                }
            }
            if let Ok(mut m) = self.lag.lock() {
                *m = lag.clone();
            }
            for key in keys
                .iter()
                .filter(|k| k.state == KeyState::PendingReplicaDeletion)
            {
                let Some(cfg) = key.multi_region_config.as_deref() else {
                    continue;
                };
                for region in &cfg.replica_regions {
                    let slot = (key.key_id.clone(), region.clone());
                    let pending = cfg.outbox.iter().any(|e| e.region == *region);
                    let recent = probed.get(&slot).is_some_and(|t| t.elapsed() < PROBE_EVERY);
                    if pending || recent {
                        continue;
                    }
                    probed.insert(slot, tokio::time::Instant::now());
                    self.probe(&settings, key, region).await;
                }
            }
            for ((key_id, region), _) in lag {
                let slot = (key_id.clone(), region.clone());
                if let Some((next, _)) = backoff.get(&slot) {
                    if tokio::time::Instant::now() < *next {
                        continue;
                    }
                }
                let Some(key) = keys.iter().find(|k| k.key_id == key_id) else {
                    continue;
                };
                match self.deliver(&settings, key, &region).await {
                    Ok(()) => {
                        backoff.remove(&slot);
                    }
                    Err(e) => {
                        let wait = backoff
                            .get(&slot)
                            .map(|(_, d)| (*d * 2).min(MAX_BACKOFF))
                            .unwrap_or(Duration::from_millis(500));
                        tracing::warn!(key_id = %key_id, %region, error = %e, retry_in_ms = wait.as_millis() as u64, "replication delivery failed");
                        backoff.insert(slot, (tokio::time::Instant::now() + wait, wait));
                    }
                }
            }
        }
    }

    /// Asks `region` whether the replica still exists (an empty delivery); when the region
    /// answers NotFound, the replica is gone and the primary forgets it.
    async fn probe(&self, settings: &MultiRegionSettings, key: &KeyRecord, region: &str) {
        let Some(peer) = settings.peers.get(region) else {
            return;
        };
        let Ok((payload, _)) =
            build_delivery(&self.domain_key, &self.region, settings, key, region)
        else {
            return;
        };
        let answer = tokio::time::timeout(
            DELIVERY_TIMEOUT,
            post(&settings.client_tls, &peer.endpoint, payload),
        )
        .await;
        let gone = matches!(&answer, Ok(Err(e)) if e.downcast_ref::<PeerRefused>().is_some_and(|r| r.aws_type == "NotFoundException"));
        if !gone {
            return;
        }
        match self
            .store
            .propose(Command::RemoveReplicaRegion {
                key_id: key.key_id.clone(),
                region: region.to_string(),
            })
            .await
        {
            Ok(_) => tracing::info!(key_id = %key.key_id, %region, "replica deleted in its region"),
            Err(e) => {
                tracing::warn!(key_id = %key.key_id, %region, error = %e, "cannot forget a deleted replica")
            }
        }
    }

    async fn deliver(
        &self,
        settings: &MultiRegionSettings,
        key: &KeyRecord,
        region: &str,
    ) -> anyhow::Result<()> {
        let peer = settings
            .peers
            .get(region)
            .with_context(|| format!("region {region} is not a configured peer"))?;
        let (payload, through_seq) =
            build_delivery(&self.domain_key, &self.region, settings, key, region)?;
        tokio::time::timeout(
            DELIVERY_TIMEOUT,
            post(&settings.client_tls, &peer.endpoint, payload),
        )
        .await
        .context("timed out")??;
        if through_seq == 0 {
            return Ok(());
        }
        self.store
            .propose(Command::AckReplication {
                key_id: key.key_id.clone(),
                region: region.to_string(),
                through_seq,
            })
            .await
            .map_err(|e| anyhow::anyhow!("acknowledging: {e}"))?;
        tracing::info!(key_id = %key.key_id, %region, through_seq, "replicated");
        Ok(())
    }
}

/// The signed delivery of every outbox entry of `key` for `region` (JSON bytes), and the
/// highest seq it covers. Material is sealed to the region's transport key here.
fn build_delivery(
    domain_key: &DomainKey,
    own_region: &str,
    settings: &MultiRegionSettings,
    key: &KeyRecord,
    region: &str,
) -> anyhow::Result<(Vec<u8>, u64)> {
    let cfg = key
        .multi_region_config
        .as_deref()
        .context("not a multi-region key")?;
    let peer = settings
        .peers
        .get(region)
        .with_context(|| format!("region {region} is not a configured peer"))?;
    let target_public = hex::decode(&peer.transport_public_key)?;
    let entries: Vec<_> = cfg.outbox.iter().filter(|e| e.region == region).collect();
    // 0: an empty delivery (a probe: does the replica still exist?).
    let through_seq = entries.iter().map(|e| e.seq).max().unwrap_or(0);
    let mut init = None;
    let mut promote = false;
    let mut materials = vec![];
    for e in &entries {
        match &e.kind {
            OutboxKind::CreateReplica(i) => init = Some(i.clone()),
            OutboxKind::Promote => promote = true,
            OutboxKind::Config => {}
            OutboxKind::Material { version } => {
                let version = *version;
                let Some(mv) = key.materials.iter().find(|m| m.version == version) else {
                    continue;
                };
                let sealed = transport::rewrap_for_region(
                    domain_key,
                    &key.key_id,
                    mv.version,
                    key.key_spec,
                    &mv.wrapped,
                    &target_public,
                    own_region,
                    region,
                )
                .map_err(|e| anyhow::anyhow!("sealing version {}: {e}", mv.version))?;
                materials.push(SealedVersion {
                    version: mv.version,
                    created_at: mv.created_at,
                    sealed,
                });
            }
        }
    }
    let body = DeliveryBody {
        key_id: key.key_id.clone(),
        account_id: key.account_id.clone(),
        source_region: own_region.to_string(),
        target_region: region.to_string(),
        key_spec: key.key_spec,
        key_usage: key.key_usage,
        origin: key.origin,
        creation_date: key.creation_date,
        primary_region: cfg.primary_region.clone(),
        replica_regions: cfg.replica_regions.clone(),
        epoch: cfg.epoch,
        current_version: key.current_material_version,
        init,
        materials,
        promote,
        through_seq,
    };
    let body_bytes = serde_json::to_vec(&body)?;
    let signature = settings.signing.sign(own_region, region, &body_bytes);
    let delivery = Delivery {
        source_region: own_region.to_string(),
        target_region: region.to_string(),
        body: B64.encode(&body_bytes),
        signature: B64.encode(signature),
    };
    Ok((serde_json::to_vec(&delivery)?, through_seq))
}

/// One HTTPS POST of a delivery to a peer front (HTTP/1.1 over mTLS).
async fn post(
    tls: &Arc<rustls::ClientConfig>,
    endpoint: &str,
    payload: Vec<u8>,
) -> anyhow::Result<()> {
    let uri: http::Uri = endpoint.parse().context("peer endpoint")?;
    let host = uri.host().context("peer endpoint has no host")?.to_string();
    let port = uri.port_u16().unwrap_or(443);
    let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .with_context(|| format!("connecting to {host}:{port}"))?;
    let _ = tcp.set_nodelay(true);
    let name = rustls::pki_types::ServerName::try_from(host.clone())?;
    let stream = tokio_rustls::TlsConnector::from(tls.clone())
        .connect(name, tcp)
        .await
        .context("TLS handshake with the peer front")?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    let conn_task = tokio::spawn(conn);
    let req = http::Request::post(DELIVERY_PATH)
        .header(http::header::HOST, format!("{host}:{port}"))
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(http_body_util::Full::new(hyper::body::Bytes::from(payload)))?;
    let resp = sender.send_request(req).await?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    conn_task.abort();
    if !status.is_success() {
        let aws_type = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["__type"].as_str().map(str::to_owned))
            .unwrap_or_default();
        return Err(PeerRefused {
            status: status.as_u16(),
            aws_type,
        }
        .into());
    }
    Ok(())
}

/// A peer front answered a delivery with an error.
#[derive(Debug, thiserror::Error)]
#[error("peer answered {status} {aws_type}")]
struct PeerRefused {
    status: u16,
    aws_type: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::front::testing::{self, StorageNode, ACCOUNT, ADMIN};

    const B: &str = "us-west-2";

    fn settings(
        own_transport: TransportPrivateKey,
        own_signing: ReplicationSigningKey,
        peers: Vec<PeerRegion>,
    ) -> MultiRegionSettings {
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
        MultiRegionSettings {
            transport: own_transport,
            signing: own_signing,
            peers: peers.into_iter().map(|p| (p.region.clone(), p)).collect(),
            client_tls: Arc::new(tls),
        }
    }

    fn keys() -> (TransportPrivateKey, ReplicationSigningKey) {
        (
            TransportPrivateKey::generate().unwrap(),
            ReplicationSigningKey::generate(),
        )
    }

    /// Region A (us-east-1) and region B (us-west-2): one storage node and one front each,
    /// their own domain keys, trusting each other.
    async fn two_regions() -> (Arc<Kms>, Arc<Kms>, StorageNode, StorageNode) {
        let (kms_a, node_a) = testing::kms().await;
        let node_b = StorageNode::start().await;
        let store_b = node_b.client().await;
        let dk_b = DomainKey::generate(1);
        testing::seed(&store_b, &dk_b).await;
        let kms_b = Arc::new(Kms::new(B.into(), store_b, dk_b, Duration::from_secs(1)));
        let (ta, sa) = keys();
        let (tb, sb) = keys();
        let entry_a = public_entry(testing::REGION, "https://127.0.0.1:1", &ta, &sa).unwrap();
        let entry_b = public_entry(B, "https://127.0.0.1:2", &tb, &sb).unwrap();
        kms_a.set_multi_region(settings(ta, sa, vec![entry_b]));
        kms_b.set_multi_region(settings(tb, sb, vec![entry_a]));
        (kms_a, kms_b, node_a, node_b)
    }

    async fn primary_with_replica_in_b(kms_a: &Kms) -> KeyRecord {
        let admin = Caller::from_principal_arn(ADMIN).unwrap();
        let meta = kms_a
            .create_key(
                &admin,
                CreateKeyRequest {
                    multi_region: Some(true),
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .key_metadata
            .unwrap();
        let key_id = meta.key_id.unwrap();
        kms_a
            .replicate_key(
                &admin,
                ReplicateKeyRequest {
                    key_id: Some(key_id.clone()),
                    replica_region: Some(B.into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        kms_a.get_key(&key_id, true).await.unwrap().unwrap()
    }

    fn delivery_of(kms_a: &Kms, key: &KeyRecord) -> Vec<u8> {
        let settings = kms_a.multi_region.get().unwrap();
        build_delivery(&kms_a.domain_key, &kms_a.region, settings, key, B)
            .unwrap()
            .0
    }

    fn front_role() -> Vec<String> {
        vec![raft::tls::ROLE_FRONT.to_string()]
    }

    /// `/status` lag is the age of the oldest undelivered entry *now*: while region B accepts
    /// connections but never answers (a black-holed link), the replicator waits on its
    /// delivery for up to DELIVERY_TIMEOUT, and the published lag must keep growing meanwhile.
    #[tokio::test]
    async fn replication_lag_keeps_growing_while_a_delivery_hangs() {
        let (kms_a, _node_a) = testing::kms().await;
        // A TCP port that completes connections (the kernel's backlog) but never speaks TLS.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://{}", silent.local_addr().unwrap());
        let (ta, sa) = keys();
        let (tb, sb) = keys();
        kms_a.set_multi_region(settings(
            ta,
            sa,
            vec![public_entry(B, &url, &tb, &sb).unwrap()],
        ));
        let key = primary_with_replica_in_b(&kms_a).await;
        let replicator = tokio::spawn(kms_a.replicator());
        let lag_of = |status: serde_json::Value| {
            status["pending"]
                .as_array()
                .and_then(|p| p.iter().find(|e| e["keyId"] == key.key_id.as_str()))
                .and_then(|e| e["lagMs"].as_u64())
        };
        let mut first = None;
        for _ in 0..50 {
            first = lag_of(kms_a.replication_status());
            if first.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let first = first.expect("the replicator publishes the pending entries");
        tokio::time::sleep(Duration::from_millis(2_000)).await;
        let later = lag_of(kms_a.replication_status()).unwrap();
        assert!(
            later >= first + 1_500,
            "lag {first} ms, 2 s later {later} ms: it must grow while the delivery hangs"
        );
        assert!(kms_a.replication_status()["maxLagMs"].as_u64().unwrap() >= later);
        replicator.abort();
        drop(silent);
    }

    #[tokio::test]
    async fn a_signed_delivery_creates_the_replica_with_material_only_its_region_can_unwrap() {
        let (kms_a, kms_b, _na, _nb) = two_regions().await;
        let key = primary_with_replica_in_b(&kms_a).await;
        let payload = delivery_of(&kms_a, &key);
        kms_b
            .receive_delivery(&front_role(), &payload)
            .await
            .unwrap();
        let replica = kms_b.get_key(&key.key_id, true).await.unwrap().unwrap();
        assert_eq!(replica.state, KeyState::Enabled);
        assert_eq!(replica.account_id, ACCOUNT);
        assert_eq!(replica.arn, ids::key_arn(B, ACCOUNT, &key.key_id));
        // Same material, wrapped under B's domain key (A's does not open it).
        let m_a = kms_a.material(&key, 1).unwrap();
        let m_b = kms_b.material(&replica, 1).unwrap();
        assert!(m_a == m_b);
        assert!(kms_a.material(&replica, 1).is_err());
        // Delivered twice (two fronts, a lost ack): the same record.
        kms_b
            .receive_delivery(&front_role(), &payload)
            .await
            .unwrap();
        assert_eq!(
            kms_b.get_key(&key.key_id, true).await.unwrap().unwrap(),
            replica
        );
    }

    #[tokio::test]
    async fn deliveries_without_a_front_certificate_trusted_signature_or_intact_body_are_refused() {
        let (kms_a, kms_b, _na, _nb) = two_regions().await;
        let key = primary_with_replica_in_b(&kms_a).await;
        let payload = delivery_of(&kms_a, &key);

        // No front certificate (a client certificate, or none).
        let e = kms_b.receive_delivery(&[], &payload).await.unwrap_err();
        assert_eq!(e.aws_type(), "AccessDeniedException");
        let e = kms_b
            .receive_delivery(&["arn:aws:iam::111122223333:role/App".into()], &payload)
            .await
            .unwrap_err();
        assert_eq!(e.aws_type(), "AccessDeniedException");

        // A body altered after signing (here: promote flipped on).
        let mut d: Delivery = serde_json::from_slice(&payload).unwrap();
        let mut body: serde_json::Value =
            serde_json::from_slice(&B64.decode(&d.body).unwrap()).unwrap();
        body["promote"] = serde_json::Value::Bool(true);
        d.body = B64.encode(serde_json::to_vec(&body).unwrap());
        let e = kms_b
            .receive_delivery(&front_role(), &serde_json::to_vec(&d).unwrap())
            .await
            .unwrap_err();
        assert_eq!(e.aws_type(), "ValidationException");

        // Signed by a key that is not the configured one for the source region.
        let b_entry = kms_a.multi_region.get().unwrap().peers[B].clone();
        let (t, sig) = keys();
        let impostor = settings(t, sig, vec![b_entry]);
        let (forged, _) =
            build_delivery(&kms_a.domain_key, &kms_a.region, &impostor, &key, B).unwrap();
        let e = kms_b
            .receive_delivery(&front_role(), &forged)
            .await
            .unwrap_err();
        assert_eq!(e.aws_type(), "ValidationException");

        // From a region B does not trust, and addressed to another region.
        let mut d: Delivery = serde_json::from_slice(&payload).unwrap();
        d.source_region = "eu-west-1".into();
        let e = kms_b
            .receive_delivery(&front_role(), &serde_json::to_vec(&d).unwrap())
            .await
            .unwrap_err();
        assert_eq!(e.aws_type(), "AccessDeniedException");
        let mut d: Delivery = serde_json::from_slice(&payload).unwrap();
        d.target_region = "eu-west-1".into();
        let e = kms_b
            .receive_delivery(&front_role(), &serde_json::to_vec(&d).unwrap())
            .await
            .unwrap_err();
        assert_eq!(e.aws_type(), "ValidationException");

        // Nothing of the refused deliveries reached B's store.
        assert!(kms_b.get_key(&key.key_id, true).await.unwrap().is_none());
        // Garbage.
        let e = kms_b
            .receive_delivery(&front_role(), b"{not json")
            .await
            .unwrap_err();
        assert_eq!(e.aws_type(), "SerializationException");
    }
}
