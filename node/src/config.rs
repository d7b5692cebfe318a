//! Configuration of the two long-running roles, `keyraft node` and `keyraft front`.
//!
//! Every setting is a flag, a `KEYRAFT_*` environment variable and a key in a TOML file
//! (`--config`); flags and env win over the file. Secrets are passed as file paths only.
//! `validate()` turns the raw, all-optional form into immutable parameters.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

/// TLS files shared by both roles: the deployment CA, and this process's certificate and key.
#[derive(clap::Args, Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsArgs {
    /// CA certificate (PEM) that peers and clients must chain to.
    #[arg(long = "tls-ca", env = "KEYRAFT_TLS_CA")]
    #[serde(rename = "ca")]
    pub tls_ca: Option<PathBuf>,
    /// This process's certificate chain (PEM).
    #[arg(long = "tls-cert", env = "KEYRAFT_TLS_CERT")]
    #[serde(rename = "cert")]
    pub tls_cert: Option<PathBuf>,
    /// This process's private key (PEM).
    #[arg(long = "tls-key", env = "KEYRAFT_TLS_KEY")]
    #[serde(rename = "key")]
    pub tls_key: Option<PathBuf>,
}

impl TlsArgs {
    fn merge(self, file: TlsArgs) -> TlsArgs {
        TlsArgs {
            tls_ca: self.tls_ca.or(file.tls_ca),
            tls_cert: self.tls_cert.or(file.tls_cert),
            tls_key: self.tls_key.or(file.tls_key),
        }
    }

    fn validate(self) -> anyhow::Result<raft::TlsFiles> {
        Ok(raft::TlsFiles {
            ca: require(self.tls_ca, "tls-ca")?,
            cert: require(self.tls_cert, "tls-cert")?,
            key: require(self.tls_key, "tls-key")?,
        })
    }
}

/// `keyraft node`: one storage node of a region's Raft cluster.
#[derive(clap::Args, Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeArgs {
    /// TOML file with any of these settings (flags and env override it).
    #[arg(long, env = "KEYRAFT_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// This node's Raft id (unique in the region, > 0).
    #[arg(long, env = "KEYRAFT_NODE_ID")]
    pub node_id: Option<u64>,
    /// Address to listen on for Raft and store RPCs.
    #[arg(long, env = "KEYRAFT_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// host:port peers and fronts use to reach this node (defaults to `listen`).
    #[arg(long, env = "KEYRAFT_ADVERTISE")]
    pub advertise: Option<String>,
    /// Directory for the Raft log and state machine.
    #[arg(long, env = "KEYRAFT_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Storage backend: `redb` (default) or `sled`.
    #[arg(long, env = "KEYRAFT_STORAGE")]
    pub storage: Option<String>,
    /// Initial members as `id=host:port`, comma-separated; the lowest id initializes the cluster.
    #[arg(long, env = "KEYRAFT_PEERS", value_delimiter = ',')]
    pub peers: Option<Vec<String>>,
    /// DANGER, tests only: add the signed millisecond offset in this file to the clock the
    /// leader stamps proposals with (moves scheduled deletions forward without waiting).
    #[arg(long, env = "KEYRAFT_DANGER_CLOCK_OFFSET_FILE")]
    pub danger_clock_offset_file: Option<PathBuf>,
    /// Region whose audit chain this cluster holds, named in signed digests (default us-east-1).
    #[arg(long, env = "KEYRAFT_REGION")]
    pub region: Option<String>,
    /// File holding the region's audit signing key (32 bytes, mode 0600). The leader signs
    /// audit digests with it; without it no digests are written.
    #[arg(long, env = "KEYRAFT_AUDIT_KEY")]
    pub audit_key: Option<PathBuf>,
    /// How often the leader signs a digest of the audit chain, in milliseconds (default 60000).
    #[arg(long, env = "KEYRAFT_AUDIT_DIGEST_INTERVAL_MS")]
    pub audit_digest_interval_ms: Option<u64>,
    /// Keep audit records this many days, then prune them, but only once they were exported
    /// and are covered by a signed digest (default: keep forever). Digests are never pruned.
    #[arg(long, env = "KEYRAFT_AUDIT_RETENTION_DAYS")]
    pub audit_retention_days: Option<u32>,
    /// Raft log entries between two snapshots of the state machine (default 10000). Each
    /// snapshot serializes the whole live state: fewer snapshots, less CPU.
    #[arg(long, env = "KEYRAFT_RAFT_SNAPSHOT_EVERY")]
    pub raft_snapshot_every: Option<u64>,
    /// Raft log entries kept behind each snapshot (default 50000): a node that fell behind by
    /// fewer catches up by appends rather than by installing a snapshot. Costs disk.
    #[arg(long, env = "KEYRAFT_RAFT_LOG_KEPT_AFTER_SNAPSHOT")]
    pub raft_log_kept_after_snapshot: Option<u64>,
    /// Join a running region instead of forming one: ask its leader (through `peers`) to add
    /// this node, wait until it caught up (by snapshot if need be) and become a voter. For a
    /// new node: a new id and an empty data directory (a node that lost its disk comes back
    /// under a new id, with `join-replaces`, never under its old one).
    #[arg(long, env = "KEYRAFT_JOIN")]
    #[serde(default)]
    pub join: bool,
    /// With `join`: the id of the voter this node replaces (a lost node), removed from the
    /// membership in the same change.
    #[arg(long, env = "KEYRAFT_JOIN_REPLACES")]
    pub join_replaces: Option<u64>,
    /// TLS files (a `[tls]` table in TOML: `ca`, `cert`, `key`).
    #[command(flatten)]
    #[serde(default)]
    pub tls: TlsArgs,
}

/// Validated storage node parameters (before the audit key is read).
#[derive(Clone, Debug)]
pub struct NodeParams {
    /// Raft, storage and TLS settings.
    pub storage: raft::StorageNodeConfig,
    /// Region named in audit digests.
    pub region: String,
    /// Audit signing key file, if this node may sign digests as leader.
    pub audit_key: Option<PathBuf>,
    /// How often the leader signs a digest.
    pub audit_digest_interval: Duration,
    /// Audit retention (`None`: keep forever).
    pub audit_retention: Option<Duration>,
    /// `--join`: what to ask the leader, and the peers to ask.
    pub join: Option<(raft::JoinRequest, Vec<String>)>,
}

impl NodeArgs {
    /// Merges the TOML file (if any) under the flags and checks every setting.
    pub fn validate(self) -> anyhow::Result<NodeParams> {
        let file: NodeArgs = read_toml(self.config.as_deref())?;
        let node_id = require(self.node_id.or(file.node_id), "node-id")?;
        if node_id == 0 {
            bail!("node-id must be greater than 0");
        }
        let listen = require(self.listen.or(file.listen), "listen")?;
        let advertise = self
            .advertise
            .or(file.advertise)
            .unwrap_or_else(|| listen.to_string());
        let data_dir = require(self.data_dir.or(file.data_dir), "data-dir")?;
        let backend = match self.storage.or(file.storage).as_deref().unwrap_or("redb") {
            "redb" => raft::Backend::Redb,
            "sled" => raft::Backend::Sled,
            other => bail!("unknown storage backend {other:?} (expected redb or sled)"),
        };
        let peers = parse_peers(&self.peers.or(file.peers).unwrap_or_default())?;
        if !peers.is_empty() && !peers.contains_key(&node_id) {
            bail!("peers must include this node (id {node_id})");
        }
        let region = self
            .region
            .or(file.region)
            .unwrap_or_else(|| raft::node::DEFAULT_REGION.to_owned());
        if !is_region_name(&region) {
            bail!("region {region:?} is not a region name like us-east-1");
        }
        let interval_ms = self
            .audit_digest_interval_ms
            .or(file.audit_digest_interval_ms)
            .unwrap_or(raft::node::DEFAULT_DIGEST_INTERVAL.as_millis() as u64);
        if interval_ms == 0 {
            bail!("audit-digest-interval-ms must be greater than 0");
        }
        let retention_days = self.audit_retention_days.or(file.audit_retention_days);
        if retention_days == Some(0) {
            bail!("audit-retention-days must be greater than 0 (omit it to keep records forever)");
        }
        let defaults = raft::LogRetention::default();
        let log_retention = raft::LogRetention {
            snapshot_every: self
                .raft_snapshot_every
                .or(file.raft_snapshot_every)
                .unwrap_or(defaults.snapshot_every),
            kept_after_snapshot: self
                .raft_log_kept_after_snapshot
                .or(file.raft_log_kept_after_snapshot)
                .unwrap_or(defaults.kept_after_snapshot),
        };
        if log_retention.snapshot_every == 0 {
            bail!("raft-snapshot-every must be greater than 0");
        }
        let join_replaces = self.join_replaces.or(file.join_replaces);
        let join = if self.join || file.join {
            let others: Vec<String> = peers
                .iter()
                .filter(|(id, _)| **id != node_id)
                .map(|(_, addr)| addr.clone())
                .collect();
            if others.is_empty() {
                bail!("join needs the addresses of the region's nodes in peers");
            }
            if join_replaces == Some(node_id) {
                bail!("a joining node cannot replace itself: give it a new id");
            }
            let request = raft::JoinRequest {
                node_id,
                addr: advertise.clone(),
                voter: true,
                replaces: join_replaces,
            };
            Some((request, others))
        } else {
            if join_replaces.is_some() {
                bail!("join-replaces only goes with join");
            }
            None
        };
        let storage = raft::StorageNodeConfig {
            node_id,
            listen,
            advertise,
            data_dir,
            backend,
            tls: self.tls.merge(file.tls).validate()?,
            // A joining node never initializes a cluster: it has no initial members.
            peers: if join.is_some() {
                BTreeMap::new()
            } else {
                peers
            },
            clock: match self
                .danger_clock_offset_file
                .or(file.danger_clock_offset_file)
            {
                Some(path) => {
                    tracing::warn!(path = %path.display(), "DANGER: the leader's clock follows an offset file");
                    raft::Clock::DangerOffsetFile(path)
                }
                None => raft::Clock::System,
            },
            log_retention,
        };
        Ok(NodeParams {
            storage,
            join,
            region,
            audit_key: self.audit_key.or(file.audit_key),
            audit_digest_interval: Duration::from_millis(interval_ms),
            audit_retention: retention_days
                .map(|days| Duration::from_secs(u64::from(days) * 86_400)),
        })
    }
}

/// `keyraft front`: the stateless tier serving the AWS KMS JSON API and the gRPC API.
#[derive(clap::Args, Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrontArgs {
    /// TOML file with any of these settings (flags and env override it).
    #[arg(long, env = "KEYRAFT_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// AWS region this front serves (e.g. us-east-1).
    #[arg(long, env = "KEYRAFT_REGION")]
    pub region: Option<String>,
    /// HTTPS listener for the AWS KMS JSON 1.1 protocol.
    #[arg(long, env = "KEYRAFT_JSON_LISTEN")]
    pub json_listen: Option<SocketAddr>,
    /// gRPC (mTLS) listener.
    #[arg(long, env = "KEYRAFT_GRPC_LISTEN")]
    pub grpc_listen: Option<SocketAddr>,
    /// Storage nodes (host:port), comma-separated.
    #[arg(long, env = "KEYRAFT_STORE", value_delimiter = ',')]
    pub store: Option<Vec<String>>,
    /// File holding the region domain key (32 bytes, mode 0600).
    #[arg(long, env = "KEYRAFT_DOMAIN_KEY_FILE")]
    pub domain_key_file: Option<PathBuf>,
    /// Require a client certificate on the JSON endpoint too.
    #[arg(long, env = "KEYRAFT_STRICT_CLIENT_CERT")]
    pub strict_client_cert: Option<bool>,
    /// Upper bound on how stale a cached key record may be, in milliseconds (default 1000).
    #[arg(long, env = "KEYRAFT_CACHE_STALENESS_MS")]
    pub cache_staleness_ms: Option<u64>,
    /// The deployment CA's private key (PEM, mode 0600), paired with the `tls.ca`
    /// certificate: lets IssueClientCertificate issue client certificates. Without it that
    /// operation is unsupported.
    #[arg(long, env = "KEYRAFT_ISSUING_CA_KEY")]
    pub issuing_ca_key: Option<PathBuf>,
    /// Multi-region keys: this region's transport private key (48-byte P-384 scalar, mode
    /// 0600). With `replication_key` and `region_peers`, the front replicates.
    #[arg(long, env = "KEYRAFT_TRANSPORT_KEY")]
    pub transport_key: Option<PathBuf>,
    /// Multi-region keys: this region's Ed25519 replication signing key (32-byte seed,
    /// mode 0600).
    #[arg(long, env = "KEYRAFT_REPLICATION_KEY")]
    pub replication_key: Option<PathBuf>,
    /// Multi-region keys: JSON list of trusted peer regions (region, endpoint, transport
    /// and replication public keys; see docs/multi-region.md).
    #[arg(long, env = "KEYRAFT_REGION_PEERS")]
    pub region_peers: Option<PathBuf>,
    /// Audit trail: `sync` (default) answers a call only once its audit event is committed
    /// and fails the call if that fails; `async` answers at once and appends in the
    /// background (an event can be lost).
    #[arg(long, env = "KEYRAFT_AUDIT", value_enum)]
    pub audit: Option<crate::front::audit::AuditMode>,
    /// Longest time audit events are gathered into one Raft entry, in milliseconds
    /// (default 2).
    #[arg(long, env = "KEYRAFT_AUDIT_BATCH_WINDOW_MS")]
    pub audit_batch_window_ms: Option<u64>,
    /// Most audit events in one Raft entry (default 256, at most 4096).
    #[arg(long, env = "KEYRAFT_AUDIT_BATCH_MAX")]
    pub audit_batch_max: Option<usize>,
    /// Most audit batches proposed and not yet committed at once (default 4, 1 to 64).
    #[arg(long, env = "KEYRAFT_AUDIT_BATCHES_IN_FLIGHT")]
    pub audit_batches_in_flight: Option<usize>,
    /// How long a call waits for its audit event before failing, in milliseconds
    /// (default 5000).
    #[arg(long, env = "KEYRAFT_AUDIT_TIMEOUT_MS")]
    pub audit_timeout_ms: Option<u64>,
    /// TLS files (a `[tls]` table in TOML: `ca`, `cert`, `key`).
    #[command(flatten)]
    #[serde(default)]
    pub tls: TlsArgs,
}

/// Validated front parameters (before the domain key is read).
#[derive(Clone, Debug)]
pub struct FrontParams {
    /// Region.
    pub region: String,
    /// JSON listener.
    pub json_listen: SocketAddr,
    /// gRPC listener.
    pub grpc_listen: SocketAddr,
    /// Storage nodes.
    pub store: Vec<String>,
    /// Domain key file.
    pub domain_key_file: PathBuf,
    /// Client certificate required on the JSON endpoint.
    pub strict_client_cert: bool,
    /// Cache staleness bound.
    pub cache_staleness: Duration,
    /// The CA private key for IssueClientCertificate (the CA certificate is `tls.ca`).
    pub issuing_ca_key: Option<PathBuf>,
    /// Multi-region replication files, when this front replicates.
    pub multi_region: Option<MultiRegionFiles>,
    /// Audit trail mode and group commit bounds.
    pub audit: crate::front::audit::AuditSettings,
    /// TLS files.
    pub tls: raft::TlsFiles,
}

impl FrontArgs {
    /// Merges the TOML file (if any) under the flags and checks every setting.
    pub fn validate(self) -> anyhow::Result<FrontParams> {
        let file: FrontArgs = read_toml(self.config.as_deref())?;
        let region = require(self.region.or(file.region), "region")?;
        if !is_region_name(&region) {
            bail!("region {region:?} is not a region name like us-east-1");
        }
        let store = require(self.store.or(file.store), "store")?;
        if store.is_empty() {
            bail!("store needs at least one storage node address");
        }
        let defaults = crate::front::audit::AuditSettings::default();
        let audit = crate::front::audit::AuditSettings {
            mode: self.audit.or(file.audit).unwrap_or(defaults.mode),
            batch_window: self
                .audit_batch_window_ms
                .or(file.audit_batch_window_ms)
                .map_or(defaults.batch_window, Duration::from_millis),
            batch_max: self
                .audit_batch_max
                .or(file.audit_batch_max)
                .unwrap_or(defaults.batch_max),
            batches_in_flight: self
                .audit_batches_in_flight
                .or(file.audit_batches_in_flight)
                .unwrap_or(defaults.batches_in_flight),
            timeout: self
                .audit_timeout_ms
                .or(file.audit_timeout_ms)
                .map_or(defaults.timeout, Duration::from_millis),
        };
        if audit.batch_max == 0 || audit.batch_max > keystore::apply::MAX_AUDIT_BATCH {
            bail!(
                "audit-batch-max must be 1 to {}",
                keystore::apply::MAX_AUDIT_BATCH
            );
        }
        if audit.batches_in_flight == 0
            || audit.batches_in_flight > crate::front::audit::MAX_IN_FLIGHT_LIMIT
        {
            bail!(
                "audit-batches-in-flight must be 1 to {}",
                crate::front::audit::MAX_IN_FLIGHT_LIMIT
            );
        }
        if audit.batch_window > Duration::from_secs(1) {
            bail!("audit-batch-window-ms must be at most 1000");
        }
        if audit.timeout.is_zero() {
            bail!("audit-timeout-ms must be positive");
        }
        Ok(FrontParams {
            audit,
            region,
            json_listen: require(self.json_listen.or(file.json_listen), "json-listen")?,
            grpc_listen: require(self.grpc_listen.or(file.grpc_listen), "grpc-listen")?,
            store,
            domain_key_file: require(
                self.domain_key_file.or(file.domain_key_file),
                "domain-key-file",
            )?,
            strict_client_cert: self
                .strict_client_cert
                .or(file.strict_client_cert)
                .unwrap_or(false),
            cache_staleness: Duration::from_millis(
                self.cache_staleness_ms
                    .or(file.cache_staleness_ms)
                    .unwrap_or(1000),
            ),
            issuing_ca_key: self.issuing_ca_key.or(file.issuing_ca_key),
            multi_region: match (
                self.transport_key.or(file.transport_key),
                self.replication_key.or(file.replication_key),
                self.region_peers.or(file.region_peers),
            ) {
                (Some(transport_key), Some(replication_key), Some(region_peers)) => {
                    Some(MultiRegionFiles {
                        transport_key,
                        replication_key,
                        region_peers,
                    })
                }
                (None, None, None) => None,
                _ => bail!(
                    "multi-region replication needs all of transport-key, replication-key and region-peers"
                ),
            },
            tls: self.tls.merge(file.tls).validate()?,
        })
    }
}

/// The files of a front taking part in multi-region replication.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MultiRegionFiles {
    /// Transport private key (P-384 scalar).
    pub transport_key: PathBuf,
    /// Replication signing key (Ed25519 seed).
    pub replication_key: PathBuf,
    /// Trusted peer regions (JSON).
    pub region_peers: PathBuf,
}

/// `us-east-1`-shaped: lowercase letters and digits in dash-separated parts.
pub fn is_region_name(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() >= 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

fn parse_peers(raw: &[String]) -> anyhow::Result<BTreeMap<u64, String>> {
    let mut peers = BTreeMap::new();
    for entry in raw {
        let (id, addr) = entry
            .split_once('=')
            .with_context(|| format!("peer {entry:?} is not id=host:port"))?;
        let id: u64 = id
            .trim()
            .parse()
            .with_context(|| format!("peer id in {entry:?}"))?;
        if addr.rsplit_once(':').is_none() {
            bail!("peer {entry:?} has no port");
        }
        if peers.insert(id, addr.trim().to_string()).is_some() {
            bail!("peer id {id} appears twice");
        }
    }
    Ok(peers)
}

fn read_toml<T: for<'de> Deserialize<'de> + Default>(path: Option<&Path>) -> anyhow::Result<T> {
    let Some(path) = path else {
        return Ok(T::default());
    };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

fn require<T>(value: Option<T>, name: &str) -> anyhow::Result<T> {
    value.with_context(|| {
        format!(
            "missing setting {name} (flag --{name}, env KEYRAFT_{}, or config file)",
            name.to_uppercase().replace('-', "_")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_parse_and_reject_duplicates() {
        let ok = parse_peers(&["1=127.0.0.1:1".into(), "2=localhost:2".into()]).unwrap();
        assert_eq!(ok.get(&2).map(String::as_str), Some("localhost:2"));
        assert!(parse_peers(&["1=a:1".into(), "1=b:2".into()]).is_err());
        assert!(parse_peers(&["x=a:1".into()]).is_err());
        assert!(parse_peers(&["1=nohost".into()]).is_err());
    }

    #[test]
    fn a_joining_node_asks_the_other_peers_and_never_initializes() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("node.toml");
        std::fs::write(
            &file,
            "node_id = 4\nlisten = \"127.0.0.1:9004\"\ndata_dir = \"/tmp/x\"\npeers = [\"1=127.0.0.1:9001\", \"2=127.0.0.1:9002\", \"4=127.0.0.1:9004\"]\n[tls]\nca = \"ca\"\ncert = \"c\"\nkey = \"k\"\n",
        )
        .unwrap();
        let args = |join: bool, join_replaces: Option<u64>| NodeArgs {
            config: Some(file.clone()),
            join,
            join_replaces,
            ..Default::default()
        };
        let params = args(true, Some(3)).validate().unwrap();
        let (request, peers) = params.join.unwrap();
        assert_eq!(
            request,
            raft::JoinRequest {
                node_id: 4,
                addr: "127.0.0.1:9004".into(),
                voter: true,
                replaces: Some(3),
            }
        );
        assert_eq!(peers, vec!["127.0.0.1:9001", "127.0.0.1:9002"]);
        assert!(
            params.storage.peers.is_empty(),
            "no initial members: never initializes"
        );
        // Without --join: the usual initial members, no join.
        let params = args(false, None).validate().unwrap();
        assert!(params.join.is_none());
        assert_eq!(params.storage.peers.len(), 3);
        assert!(
            args(false, Some(3)).validate().is_err(),
            "replaces needs join"
        );
        assert!(
            args(true, Some(4)).validate().is_err(),
            "cannot replace itself"
        );
    }

    #[test]
    fn flags_override_the_toml_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("node.toml");
        std::fs::write(
            &file,
            "node_id = 2\nlisten = \"127.0.0.1:9000\"\ndata_dir = \"/tmp/x\"\npeers = [\"2=127.0.0.1:9000\"]\n[tls]\nca = \"ca\"\ncert = \"c\"\nkey = \"k\"\n",
        )
        .unwrap();
        let args = NodeArgs {
            config: Some(file),
            storage: Some("sled".into()),
            ..Default::default()
        };
        let params = args.validate().unwrap();
        let cfg = &params.storage;
        assert_eq!(cfg.node_id, 2);
        assert_eq!(cfg.advertise, "127.0.0.1:9000");
        assert!(matches!(cfg.backend, raft::Backend::Sled));
        assert_eq!(params.region, "us-east-1", "the default region");
        assert_eq!(params.audit_key, None);
        assert_eq!(params.audit_digest_interval, Duration::from_secs(60));
    }

    #[test]
    fn audit_settings_come_from_toml_and_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("node.toml");
        std::fs::write(
            &file,
            "node_id = 1\nlisten = \"127.0.0.1:9000\"\ndata_dir = \"/tmp/x\"\nregion = \"eu-west-1\"\naudit_key = \"/k/audit.key\"\naudit_digest_interval_ms = 1500\n[tls]\nca = \"ca\"\ncert = \"c\"\nkey = \"k\"\n",
        )
        .unwrap();
        let args = || NodeArgs {
            config: Some(file.clone()),
            ..Default::default()
        };
        let params = args().validate().unwrap();
        assert_eq!(params.region, "eu-west-1");
        assert_eq!(params.audit_key, Some(PathBuf::from("/k/audit.key")));
        assert_eq!(params.audit_digest_interval, Duration::from_millis(1500));
        let flagged = NodeArgs {
            audit_digest_interval_ms: Some(0),
            ..args()
        };
        assert!(flagged.validate().is_err(), "a zero interval is refused");
        let bad_region = NodeArgs {
            region: Some("Mars".into()),
            ..args()
        };
        assert!(bad_region.validate().is_err());
    }

    #[test]
    fn raft_log_retention_has_defaults_and_reads_file_and_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("node.toml");
        std::fs::write(
            &file,
            "node_id = 1\nlisten = \"127.0.0.1:9000\"\ndata_dir = \"/tmp/x\"\nraft_snapshot_every = 2000\n[tls]\nca = \"ca\"\ncert = \"c\"\nkey = \"k\"\n",
        )
        .unwrap();
        let args = || NodeArgs {
            config: Some(file.clone()),
            ..Default::default()
        };
        let retention = args().validate().unwrap().storage.log_retention;
        assert_eq!(retention.snapshot_every, 2000);
        assert_eq!(
            retention.kept_after_snapshot,
            raft::LogRetention::default().kept_after_snapshot
        );
        let flagged = NodeArgs {
            raft_log_kept_after_snapshot: Some(100),
            ..args()
        };
        assert_eq!(
            flagged
                .validate()
                .unwrap()
                .storage
                .log_retention
                .kept_after_snapshot,
            100
        );
        let zero = NodeArgs {
            raft_snapshot_every: Some(0),
            ..args()
        };
        assert!(zero.validate().is_err());
    }

    #[test]
    fn audit_retention_is_off_by_default_and_read_in_days() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("node.toml");
        std::fs::write(
            &file,
            "node_id = 1\nlisten = \"127.0.0.1:9000\"\ndata_dir = \"/tmp/x\"\naudit_retention_days = 30\n[tls]\nca = \"ca\"\ncert = \"c\"\nkey = \"k\"\n",
        )
        .unwrap();
        let args = || NodeArgs {
            config: Some(file.clone()),
            ..Default::default()
        };
        let params = args().validate().unwrap();
        assert_eq!(
            params.audit_retention,
            Some(Duration::from_secs(30 * 86_400))
        );
        let flagged = NodeArgs {
            audit_retention_days: Some(7),
            ..args()
        };
        assert_eq!(
            flagged.validate().unwrap().audit_retention,
            Some(Duration::from_secs(7 * 86_400)),
            "the flag overrides the file"
        );
        let zero = NodeArgs {
            audit_retention_days: Some(0),
            ..args()
        };
        assert!(
            zero.validate().is_err(),
            "zero days is refused, not 'prune at once'"
        );
        let plain = dir.path().join("plain.toml");
        std::fs::write(
            &plain,
            "node_id = 1\nlisten = \"127.0.0.1:9000\"\ndata_dir = \"/tmp/x\"\n[tls]\nca = \"ca\"\ncert = \"c\"\nkey = \"k\"\n",
        )
        .unwrap();
        let plain = NodeArgs {
            config: Some(plain),
            ..Default::default()
        };
        assert_eq!(
            plain.validate().unwrap().audit_retention,
            None,
            "keep forever"
        );
    }

    #[test]
    fn unknown_toml_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("node.toml");
        std::fs::write(&file, "node_idd = 2\n").unwrap();
        let args = NodeArgs {
            config: Some(file),
            ..Default::default()
        };
        assert!(args.validate().is_err());
    }

    #[test]
    fn the_issuing_ca_key_is_optional_and_read_from_toml() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("front.toml");
        let base = "region = \"us-east-1\"\njson_listen = \"127.0.0.1:1\"\ngrpc_listen = \"127.0.0.1:2\"\nstore = [\"127.0.0.1:3\"]\ndomain_key_file = \"dk\"\n";
        let tls = "[tls]\nca = \"ca\"\ncert = \"c\"\nkey = \"k\"\n";
        std::fs::write(&file, format!("{base}{tls}")).unwrap();
        let args = || FrontArgs {
            config: Some(file.clone()),
            ..Default::default()
        };
        assert_eq!(args().validate().unwrap().issuing_ca_key, None);
        std::fs::write(&file, format!("{base}issuing_ca_key = \"ca.key\"\n{tls}")).unwrap();
        assert_eq!(
            args().validate().unwrap().issuing_ca_key,
            Some(PathBuf::from("ca.key"))
        );
    }

    #[test]
    fn audit_settings_default_to_sync_and_read_flags_env_and_toml() {
        use crate::front::audit::{AuditMode, AuditSettings};
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("front.toml");
        let base = "region = \"us-east-1\"\njson_listen = \"127.0.0.1:1\"\ngrpc_listen = \"127.0.0.1:2\"\nstore = [\"127.0.0.1:3\"]\ndomain_key_file = \"dk\"\n";
        let tls = "[tls]\nca = \"ca\"\ncert = \"c\"\nkey = \"k\"\n";
        std::fs::write(&file, format!("{base}{tls}")).unwrap();
        let args = || FrontArgs {
            config: Some(file.clone()),
            ..Default::default()
        };
        assert_eq!(args().validate().unwrap().audit, AuditSettings::default());
        std::fs::write(
            &file,
            format!("{base}audit = \"async\"\naudit_batch_max = 64\naudit_batch_window_ms = 5\naudit_batches_in_flight = 2\naudit_timeout_ms = 900\n{tls}"),
        )
        .unwrap();
        let audit = args().validate().unwrap().audit;
        assert_eq!(audit.mode, AuditMode::Async);
        assert_eq!(audit.batch_max, 64);
        assert_eq!(audit.batch_window, Duration::from_millis(5));
        assert_eq!(audit.batches_in_flight, 2);
        assert_eq!(audit.timeout, Duration::from_millis(900));
        let flag = FrontArgs {
            audit: Some(AuditMode::Sync),
            ..args()
        };
        assert_eq!(flag.validate().unwrap().audit.mode, AuditMode::Sync);
        for bad in [
            FrontArgs {
                audit_batch_max: Some(0),
                ..args()
            },
            FrontArgs {
                audit_timeout_ms: Some(0),
                ..args()
            },
            FrontArgs {
                audit_batches_in_flight: Some(0),
                ..args()
            },
            FrontArgs {
                audit_batches_in_flight: Some(crate::front::audit::MAX_IN_FLIGHT_LIMIT + 1),
                ..args()
            },
        ] {
            assert!(bad.validate().is_err());
        }
    }

    #[test]
    fn region_names_are_checked() {
        assert!(is_region_name("us-east-1"));
        assert!(is_region_name("eu-central-2"));
        assert!(!is_region_name("US-east-1"));
        assert!(!is_region_name("useast1"));
    }
}
