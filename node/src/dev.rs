//! `keyraft dev`: one whole region on loopback, for laptops and CI.
//!
//! ```text
//! keyraft dev --dir DIR
//!   ├─ DIR/ca.pem (+ ca.key), storage.pem, front.pem, admin.pem, app.pem,
//!   │    other-root.pem (+ .key, 0600)                                        generated once
//!   │    (again, with the CA, when DIR/pki-version is older than this binary's PKI layout)
//!   ├─ DIR/domain-key (0600), DIR/credentials.json (0600)                     generated once
//!   ├─ DIR/audit.key (0600, every storage node signs digests with it as leader) and
//!   │    DIR/audit-public-keys.json (its public key + validity, for `verify`)  generated once
//!   ├─ child `keyraft node --config DIR/node-N.toml` × N  → DIR/pids/node-N.pid, DIR/logs/
//!   ├─ DIR/front.toml: the same front as a `keyraft front --config` file (run role by role)
//!   ├─ front (in this process): AWS JSON on port-base, gRPC on port-base+1
//!   ├─ bootstrap: identities + access keys proposed through Raft (only those missing)
//!   └─ DIR/env: shell exports for aws CLI, boto3, the Rust SDK and kmsctl
//! ```
//! Restarting on the same DIR reuses every file, so keys, certificates and credentials survive.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use tokio::process::{Child, Command};

use keystore::crypto::{self, DomainKey};
use keystore::model::{AccessKeyRecord, IdentityRecord};

use crate::certs::{write_pair, write_private, DevCa};
use crate::config::{is_region_name, FrontParams};

/// The account the dev identities belong to.
pub const DEV_ACCOUNT: &str = "111122223333";
/// The administrator identity (may do everything with the account's keys).
pub const DEV_ADMIN_ARN: &str = "arn:aws:iam::111122223333:role/Admin";
/// The unprivileged identity of the same account.
pub const DEV_APP_ARN: &str = "arn:aws:iam::111122223333:role/App";
/// A second account, for cross-account tests.
pub const DEV_OTHER_ACCOUNT: &str = "444455556666";
/// The root of the second account (has an access key and a client certificate).
pub const DEV_OTHER_ROOT_ARN: &str = "arn:aws:iam::444455556666:root";

/// `keyraft dev` arguments.
#[derive(clap::Args, Clone, Debug)]
pub struct DevArgs {
    /// Directory holding certificates, keys, data and the env file.
    #[arg(long, env = "KEYRAFT_DEV_DIR", default_value = ".dev")]
    pub dir: PathBuf,
    /// Number of storage nodes.
    #[arg(long, env = "KEYRAFT_DEV_NODES", default_value_t = 3)]
    pub nodes: u64,
    /// Region name.
    #[arg(long, env = "KEYRAFT_DEV_REGION", default_value = "us-east-1")]
    pub region: String,
    /// First loopback port: AWS JSON on it, gRPC on +1, storage node N on +10+N.
    #[arg(long, env = "KEYRAFT_DEV_PORT_BASE", default_value_t = 7400)]
    pub port_base: u16,
    /// Storage backend for the nodes (`redb` or `sled`).
    #[arg(long, env = "KEYRAFT_DEV_STORAGE", default_value = "redb")]
    pub storage: String,
    /// Two regions (`A,B`) for multi-region keys: region A in DIR (ports from
    /// --port-base), region B in DIR/B (ports from --port-base + 20), each its own Raft
    /// cluster, domain key, transport and replication keys, trusting the other. The env file
    /// DIR/env adds KMS_ENDPOINT_B, KMS_GRPC_ENDPOINT_B and KMS_REGION_B. --region is ignored.
    #[arg(long, env = "KEYRAFT_DEV_REGIONS")]
    pub regions: Option<String>,
    /// DANGER, tests only: every storage node's leader clock adds the millisecond offset in
    /// this file (see `keyraft node --danger-clock-offset-file`).
    #[arg(long, env = "KEYRAFT_DEV_DANGER_CLOCK_OFFSET_FILE")]
    pub danger_clock_offset_file: Option<PathBuf>,
    /// The front's audit mode (`sync`: fail closed; `async`: answer first).
    #[arg(long, env = "KEYRAFT_DEV_AUDIT", value_enum, default_value = "sync")]
    pub audit: crate::front::audit::AuditMode,
    /// Most audit batches the front proposes and has not seen committed at once.
    #[arg(
        long,
        env = "KEYRAFT_DEV_AUDIT_BATCHES_IN_FLIGHT",
        default_value_t = crate::front::audit::MAX_IN_FLIGHT
    )]
    pub audit_batches_in_flight: usize,
    /// How often the storage leader signs an audit digest, in milliseconds.
    #[arg(
        long,
        env = "KEYRAFT_DEV_AUDIT_DIGEST_INTERVAL_MS",
        default_value_t = 60_000
    )]
    pub audit_digest_interval_ms: u64,
    /// Audit retention in days for every storage node (default: keep forever); records are
    /// pruned only once exported and covered by a signed digest.
    #[arg(long, env = "KEYRAFT_DEV_AUDIT_RETENTION_DAYS")]
    pub audit_retention_days: Option<u32>,
    /// Each storage node on its own loopback address (node N on 127.0.0.(N+1)), outgoing
    /// connections included, so packet filters can cut the links between two nodes
    /// (jepsen-lite's partitions). The front stays on 127.0.0.1.
    #[arg(long, env = "KEYRAFT_DEV_NODE_IPS")]
    pub node_ips: bool,
    /// Containers (deploy/docker): extra DNS names the storage and front certificates carry,
    /// comma-separated (the containers' host names). Read only when the PKI is generated.
    #[arg(long, env = "KEYRAFT_DEV_HOSTS", value_delimiter = ',')]
    pub hosts: Vec<String>,
    /// Containers: storage node N runs elsewhere, reached at the Nth `host:port` here. No node
    /// is spawned; node-N.toml listens on 0.0.0.0 and advertises that address, front.toml
    /// listens on 0.0.0.0. Unless --init-only, dev then bootstraps the identities through a
    /// front of its own on an ephemeral loopback port, writes the env file and exits.
    #[arg(long, env = "KEYRAFT_DEV_EXTERNAL_NODES", value_delimiter = ',')]
    pub external_nodes: Vec<String>,
    /// Containers: exit once the PKI, keys, credentials and config files are written (no
    /// nodes, no front, no identities, no env file).
    #[arg(long, env = "KEYRAFT_DEV_INIT_ONLY")]
    pub init_only: bool,
    /// The AWS JSON endpoint the env file names (default: this process's own front).
    #[arg(long, env = "KEYRAFT_DEV_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// The gRPC endpoint the env file names (default: this process's own front).
    #[arg(long, env = "KEYRAFT_DEV_PUBLIC_GRPC_URL")]
    pub public_grpc_url: Option<String>,
    /// With --regions: region A's replication endpoint as region B's fronts reach it (in
    /// A's region-public.json and B's region-peers.json; it must be a name the front
    /// certificate carries). Default: `https://127.0.0.1:<port-base>`.
    #[arg(long, env = "KEYRAFT_DEV_REPLICATION_URL")]
    pub replication_url: Option<String>,
    /// With --regions: region B's replication endpoint as region A's fronts reach it.
    /// Default: `https://127.0.0.1:<port-base + 20>`.
    #[arg(long, env = "KEYRAFT_DEV_REPLICATION_URL_B")]
    pub replication_url_b: Option<String>,
    /// With --regions and --external-nodes (containers): region B's storage nodes, as
    /// --external-nodes lists region A's.
    #[arg(long, env = "KEYRAFT_DEV_EXTERNAL_NODES_B", value_delimiter = ',')]
    pub external_nodes_b: Vec<String>,
    /// With --regions: region B's AWS JSON endpoint in the env files (KMS_ENDPOINT_B of DIR/env,
    /// KMS_ENDPOINT of B's own env file). Default: `https://127.0.0.1:<port-base + 20>`.
    #[arg(long, env = "KEYRAFT_DEV_PUBLIC_URL_B")]
    pub public_url_b: Option<String>,
    /// With --regions: region B's gRPC endpoint in the env files.
    #[arg(long, env = "KEYRAFT_DEV_PUBLIC_GRPC_URL_B")]
    pub public_grpc_url_b: Option<String>,
    /// With --regions: start (or, with --external-nodes, bootstrap) only this one of the two
    /// regions; the other region's files are still written (unchanged files are left alone).
    /// For a container that reaches only its own region's storage network.
    #[arg(long, env = "KEYRAFT_DEV_ONLY_REGION")]
    pub only_region: Option<String>,
}

/// Dev credentials persisted across restarts (mode 0600).
#[derive(Clone, Serialize, Deserialize)]
struct Credentials {
    admin_access_key_id: String,
    admin_secret_access_key: String,
    app_access_key_id: String,
    app_secret_access_key: String,
    // Added with the second account: absent from older files, then generated and saved.
    #[serde(default)]
    other_root_access_key_id: String,
    #[serde(default)]
    other_root_secret_access_key: String,
}

/// Everything a running dev region exposes.
pub struct DevRegion {
    /// The env file.
    pub env_file: PathBuf,
    /// AWS JSON endpoint URL.
    pub json_url: String,
    /// gRPC endpoint URL.
    pub grpc_url: String,
    /// The region's name (with `--regions`, the region this value stands for).
    pub region: String,
    children: Vec<Child>,
    // None after --init-only.
    front: Option<crate::roles::RunningFront>,
    // `--regions A,B`: region B, stopped with this one.
    peer: Option<Box<DevRegion>>,
}

impl DevRegion {
    /// Stops the front, then asks each storage node to shut down (SIGTERM: it closes its
    /// database cleanly) and kills any that has not exited within five seconds.
    pub async fn stop(mut self) {
        if let Some(peer) = self.peer.take() {
            Box::pin(peer.stop()).await;
        }
        if let Some(front) = self.front {
            // Bounded: a client that keeps an HTTP/2 connection open must not keep the
            // storage nodes (stopped next) running after the dev process is gone.
            if tokio::time::timeout(Duration::from_secs(5), front.stop())
                .await
                .is_err()
            {
                tracing::warn!("front did not stop within 5 s; stopping the storage nodes anyway");
            }
        }
        for child in &self.children {
            if let Some(pid) = child.id() {
                let _ = std::process::Command::new("kill")
                    .arg("-TERM")
                    .arg(pid.to_string())
                    .status();
            }
        }
        for child in &mut self.children {
            if tokio::time::timeout(Duration::from_secs(5), child.wait())
                .await
                .is_err()
            {
                let _ = child.kill().await;
            }
        }
    }
}

/// Starts (or restarts) a dev region in `args.dir` and returns once it serves requests.
pub async fn start(args: &DevArgs) -> anyhow::Result<DevRegion> {
    match &args.regions {
        Some(regions) => start_two_regions(args, regions).await,
        None => {
            let b_only = [
                ("--replication-url", args.replication_url.is_some()),
                ("--replication-url-b", args.replication_url_b.is_some()),
                ("--external-nodes-b", !args.external_nodes_b.is_empty()),
                ("--public-url-b", args.public_url_b.is_some()),
                ("--public-grpc-url-b", args.public_grpc_url_b.is_some()),
                ("--only-region", args.only_region.is_some()),
            ];
            if let Some((flag, _)) = b_only.iter().find(|(_, set)| *set) {
                bail!("{flag} needs --regions A,B");
            }
            start_region(args, None, &[]).await
        }
    }
}

/// Port offset of region B under `--regions` (region A uses fewer than 20 ports).
pub const REGION_B_PORT_OFFSET: u16 = 20;

/// `--regions A,B`: region B first (in DIR/B, sharing A's CA, certificates and
/// credentials, so the same identities work in both), then region A, whose env file names
/// B's endpoint; each front trusts the other region's transport and replication keys.
///
/// Containers (`--external-nodes` and `--external-nodes-b`): the storage nodes and fronts of
/// both regions run elsewhere; `--init-only` writes every file of both regions, and without
/// it each region is bootstrapped (`--only-region` picks one) and dev exits.
async fn start_two_regions(args: &DevArgs, regions: &str) -> anyhow::Result<DevRegion> {
    let names: Vec<&str> = regions.split(',').map(str::trim).collect();
    let [a, b] = names[..] else {
        bail!("--regions takes exactly two regions, like us-east-1,us-west-2");
    };
    for r in [a, b] {
        if !is_region_name(r) {
            bail!("--regions: {r:?} is not a region name like us-east-1");
        }
    }
    if a == b {
        bail!("--regions needs two different regions");
    }
    if args.external_nodes.is_empty() != args.external_nodes_b.is_empty() {
        bail!("--regions with external nodes needs both --external-nodes (region {a}) and --external-nodes-b (region {b})");
    }
    let only = args.only_region.as_deref();
    if let Some(only) = only {
        if only != a && only != b {
            bail!("--only-region {only:?} is neither of --regions {a},{b}");
        }
    }
    for url in [&args.replication_url, &args.replication_url_b]
        .into_iter()
        .flatten()
    {
        if !url.starts_with("https://") {
            bail!("replication endpoint {url:?} must be an https:// URL");
        }
    }
    fs::create_dir_all(&args.dir).with_context(|| format!("creating {}", args.dir.display()))?;
    let dir_a = fs::canonicalize(&args.dir)?;
    let dir_b = dir_a.join(b);
    fs::create_dir_all(&dir_b)?;
    // One CA and one set of identities for both regions.
    ensure_pki(&dir_a, &args.hosts)?;
    ensure_credentials(&dir_a)?;
    for f in fs::read_dir(&dir_a)?.flatten() {
        let name = f.file_name();
        let name = name.to_string_lossy();
        let shared = name.ends_with(".pem")
            || name.ends_with(".key")
                && !matches!(&*name, "audit.key" | "transport.key" | "replication.key")
            || name == "pki-version"
            || name == "credentials.json";
        if shared && f.path().is_file() {
            let to = dir_b.join(&*name);
            if fs::read(&to).ok() != fs::read(f.path()).ok() {
                fs::copy(f.path(), &to)?;
            }
        }
    }
    let port_b = args
        .port_base
        .checked_add(REGION_B_PORT_OFFSET)
        .context("--port-base too high for two regions")?;
    let url_a = args
        .replication_url
        .clone()
        .unwrap_or_else(|| format!("https://127.0.0.1:{}", args.port_base));
    let url_b = args
        .replication_url_b
        .clone()
        .unwrap_or_else(|| format!("https://127.0.0.1:{port_b}"));
    let entry_a = ensure_region_keys(&dir_a, a, &url_a)?;
    let entry_b = ensure_region_keys(&dir_b, b, &url_b)?;
    write_peers(&dir_a, &[entry_b])?;
    write_peers(&dir_b, &[entry_a])?;

    // What the env files name for region B (its own front when dev runs it).
    let json_b = args
        .public_url_b
        .clone()
        .unwrap_or_else(|| format!("https://127.0.0.1:{port_b}"));
    let grpc_b = args
        .public_grpc_url_b
        .clone()
        .unwrap_or_else(|| format!("https://127.0.0.1:{}", port_b + 1));
    let args_b = DevArgs {
        dir: dir_b.clone(),
        region: b.to_string(),
        port_base: port_b,
        regions: None,
        external_nodes: args.external_nodes_b.clone(),
        public_url: Some(json_b.clone()),
        public_grpc_url: Some(grpc_b.clone()),
        init_only: args.init_only || only == Some(a),
        ..args.clone()
    };
    let region_b = start_region(&args_b, Some(multi_region_files(&dir_b)), &[]).await?;
    let args_a = DevArgs {
        dir: dir_a.clone(),
        region: a.to_string(),
        regions: None,
        init_only: args.init_only || only == Some(b),
        ..args.clone()
    };
    let extra_env = [
        ("KMS_ENDPOINT_B".to_string(), json_b),
        ("KMS_GRPC_ENDPOINT_B".to_string(), grpc_b),
        ("KMS_REGION_B".to_string(), b.to_string()),
        ("KMS_DIR_B".to_string(), dir_b.display().to_string()),
    ];
    let mut region_a =
        match start_region(&args_a, Some(multi_region_files(&dir_a)), &extra_env).await {
            Ok(r) => r,
            Err(e) => {
                region_b.stop().await;
                return Err(e);
            }
        };
    match only {
        // Region A's files are written; region B is the one that runs.
        Some(o) if o == b => Ok(region_b),
        Some(_) => Ok(region_a),
        None => {
            region_a.peer = Some(Box::new(region_b));
            Ok(region_a)
        }
    }
}

/// The transport and replication key files of a region directory.
const TRANSPORT_KEY_FILE: &str = "transport.key";
const REPLICATION_KEY_FILE: &str = "replication.key";
/// This region's public half (what the other region lists as a peer); not secret.
const REGION_PUBLIC_FILE: &str = "region-public.json";
/// The peer regions this region's front trusts.
const REGION_PEERS_FILE: &str = "region-peers.json";

fn multi_region_files(dir: &Path) -> crate::config::MultiRegionFiles {
    crate::config::MultiRegionFiles {
        transport_key: dir.join(TRANSPORT_KEY_FILE),
        replication_key: dir.join(REPLICATION_KEY_FILE),
        region_peers: dir.join(REGION_PEERS_FILE),
    }
}

/// Generates the region's transport (P-384) and replication (Ed25519) keys once (0600) and
/// writes its public entry; returns that entry.
fn ensure_region_keys(
    dir: &Path,
    region: &str,
    endpoint: &str,
) -> anyhow::Result<crate::front::ops::multi_region::PeerRegion> {
    use keystore::transport::{ReplicationSigningKey, TransportPrivateKey};
    let tpath = dir.join(TRANSPORT_KEY_FILE);
    if !tpath.exists() {
        let k = TransportPrivateKey::generate().map_err(|e| anyhow::anyhow!("{e}"))?;
        write_private(&tpath, k.expose_secret())?;
    }
    let rpath = dir.join(REPLICATION_KEY_FILE);
    if !rpath.exists() {
        write_private(&rpath, ReplicationSigningKey::generate().expose_secret())?;
    }
    use crate::front::ops::multi_region::read_private_key_file;
    let t = TransportPrivateKey::from_bytes(&read_private_key_file(
        &tpath,
        keystore::transport::TRANSPORT_PRIVATE_LEN,
    )?)
    .map_err(|e| anyhow::anyhow!("{}: {e}", tpath.display()))?;
    let r = ReplicationSigningKey::from_bytes(&read_private_key_file(&rpath, 32)?)
        .map_err(|e| anyhow::anyhow!("{}: {e}", rpath.display()))?;
    let entry = crate::front::ops::multi_region::public_entry(region, endpoint, &t, &r)?;
    write_if_changed(
        &dir.join(REGION_PUBLIC_FILE),
        &serde_json::to_string_pretty(&entry)?,
    )?;
    Ok(entry)
}

fn write_peers(
    dir: &Path,
    peers: &[crate::front::ops::multi_region::PeerRegion],
) -> anyhow::Result<()> {
    write_if_changed(
        &dir.join(REGION_PEERS_FILE),
        &serde_json::to_string_pretty(peers)?,
    )
}

/// Writes a (non-secret) file unless it already holds `text`: in containers, the init step
/// and both regions' bootstrap steps write the same files while fronts and nodes may be
/// reading them, so an unchanged file must not be truncated and rewritten.
fn write_if_changed(path: &Path, text: &str) -> anyhow::Result<()> {
    if fs::read_to_string(path).ok().as_deref() != Some(text) {
        fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Starts one region; `multi_region` makes its front replicate, `extra_env` is appended to
/// its env file.
async fn start_region(
    args: &DevArgs,
    multi_region: Option<crate::config::MultiRegionFiles>,
    extra_env: &[(String, String)],
) -> anyhow::Result<DevRegion> {
    if !is_region_name(&args.region) {
        bail!(
            "--region {:?} is not a region name like us-east-1",
            args.region
        );
    }
    let nodes = match args.external_nodes.len() {
        0 => args.nodes,
        n => n as u64,
    };
    if nodes == 0 || nodes > 9 {
        bail!("--nodes must be between 1 and 9");
    }
    fs::create_dir_all(&args.dir).with_context(|| format!("creating {}", args.dir.display()))?;
    let dir = fs::canonicalize(&args.dir)?;
    for sub in ["pids", "logs", "data"] {
        fs::create_dir_all(dir.join(sub))?;
    }
    stop_stale_children(&dir);
    ensure_pki(&dir, &args.hosts)?;
    let domain_key = ensure_domain_key(&dir)?;
    let creds = ensure_credentials(&dir)?;
    ensure_audit_key(&dir)?;
    if args.audit_batches_in_flight == 0
        || args.audit_batches_in_flight > crate::front::audit::MAX_IN_FLIGHT_LIMIT
    {
        bail!(
            "--audit-batches-in-flight must be 1 to {}",
            crate::front::audit::MAX_IN_FLIGHT_LIMIT
        );
    }
    if args.audit_digest_interval_ms == 0 {
        bail!("--audit-digest-interval-ms must be greater than 0");
    }

    let node_ip = |id: u64| {
        if args.node_ips {
            format!("127.0.0.{}", id + 1)
        } else {
            "127.0.0.1".to_string()
        }
    };
    let external = !args.external_nodes.is_empty();
    let node_addr = |id: u64| match args.external_nodes.get(id as usize - 1) {
        Some(addr) => addr.clone(),
        None => format!("{}:{}", node_ip(id), args.port_base as u64 + 10 + id),
    };
    // A container binds every interface of its own and is reached by its host name.
    let node_listen = |id: u64| {
        let addr = node_addr(id);
        match addr.rsplit_once(':') {
            Some((_, port)) if external => {
                format!("listen = \"0.0.0.0:{port}\"\nadvertise = \"{addr}\"")
            }
            _ => format!("listen = \"{addr}\""),
        }
    };
    let peers: Vec<String> = (1..=nodes)
        .map(|id| format!("{id}={}", node_addr(id)))
        .collect();
    let mut children = Vec::new();
    for id in 1..=nodes {
        let config = dir.join(format!("node-{id}.toml"));
        // Optional settings, one TOML line each.
        let mut extra = match &args.danger_clock_offset_file {
            Some(path) => format!("danger_clock_offset_file = \"{}\"\n", path.display()),
            None => String::new(),
        };
        if let Some(days) = args.audit_retention_days {
            extra.push_str(&format!("audit_retention_days = {days}\n"));
        }
        let toml = format!(
            "node_id = {id}\n{listen}\ndata_dir = \"{data}\"\nstorage = \"{storage}\"\npeers = {peers:?}\nregion = \"{region}\"\naudit_key = \"{audit_key}\"\naudit_digest_interval_ms = {interval}\n{extra}\n[tls]\nca = \"{ca}\"\ncert = \"{cert}\"\nkey = \"{key}\"\n",
            region = args.region,
            audit_key = dir.join(AUDIT_KEY_FILE).display(),
            interval = args.audit_digest_interval_ms,
            listen = node_listen(id),
            data = dir.join("data").join(format!("node-{id}")).display(),
            storage = args.storage,
            ca = dir.join("ca.pem").display(),
            cert = dir.join("storage.pem").display(),
            key = dir.join("storage.key").display(),
        );
        // Unchanged files are left alone: a container may be reading its config right now.
        write_if_changed(&config, &toml)?;
        // --init-only writes files and starts nothing: a node started here and stopped on
        // return could be killed while creating its database, leaving a file without redb's
        // magic number that no node opens again (seen with bench/scale.sh: 2 of 10 starts).
        if !external && !args.init_only {
            children.push(spawn_node(&dir, id, &config)?);
        }
    }

    let front_ip = if external { "0.0.0.0" } else { "127.0.0.1" };
    let mut params = FrontParams {
        region: args.region.clone(),
        json_listen: format!("{front_ip}:{}", args.port_base).parse()?,
        grpc_listen: format!("{front_ip}:{}", args.port_base + 1).parse()?,
        store: (1..=nodes).map(node_addr).collect(),
        domain_key_file: dir.join("domain-key"),
        strict_client_cert: false,
        cache_staleness: Duration::from_secs(1),
        issuing_ca_key: Some(dir.join("ca.key")),
        multi_region,
        audit: crate::front::audit::AuditSettings {
            mode: args.audit,
            batches_in_flight: args.audit_batches_in_flight,
            ..Default::default()
        },
        tls: raft::TlsFiles {
            ca: dir.join("ca.pem"),
            cert: dir.join("front.pem"),
            key: dir.join("front.key"),
        },
    };
    write_front_config(&dir.join("front.toml"), &params)?;
    let env_file = dir.join("env");
    if args.init_only {
        return Ok(DevRegion {
            env_file,
            region: args.region.clone(),
            json_url: String::new(),
            grpc_url: String::new(),
            children,
            front: None,
            peer: None,
        });
    }
    if external {
        // The containerized fronts own the public ports and replicate; this one only
        // bootstraps (its network may not even reach the peer region).
        params.json_listen = "127.0.0.1:0".parse()?;
        params.grpc_listen = "127.0.0.1:0".parse()?;
        params.multi_region = None;
    }
    let front = crate::roles::start_front(&params).await?;
    bootstrap_identities(&front, &domain_key, &creds).await?;

    let json_url = args
        .public_url
        .clone()
        .unwrap_or_else(|| format!("https://127.0.0.1:{}", front.json_addr.port()));
    let grpc_url = args
        .public_grpc_url
        .clone()
        .unwrap_or_else(|| format!("https://127.0.0.1:{}", front.grpc_addr.port()));
    let mut env_text = env_file_text(&dir, &args.region, &json_url, &grpc_url, &creds);
    for (name, value) in extra_env {
        env_text.push_str(&format!("export {name}='{value}'\n"));
    }
    write_private(&env_file, env_text.as_bytes())?;
    Ok(DevRegion {
        env_file,
        region: args.region.clone(),
        json_url,
        grpc_url,
        children,
        front: Some(front),
        peer: None,
    })
}

/// The `keyraft dev` command: start, print the banner, serve until Ctrl-C / SIGTERM.
pub async fn run(args: DevArgs) -> anyhow::Result<()> {
    let region = start(&args).await?;
    if args.init_only || !args.external_nodes.is_empty() {
        // Containers: a one-shot step; the long-running roles are other containers.
        let step = if args.init_only {
            "files written"
        } else {
            "identities bootstrapped"
        };
        // The region's own directory (DIR/B for `--only-region B`).
        let dir = match region.env_file.parent() {
            Some(d) => d.to_path_buf(),
            None => fs::canonicalize(&args.dir)?,
        };
        println!("keyraft dev: {step} in {}", dir.display());
        region.stop().await;
        return Ok(());
    }
    println!(
        "keyraft dev: region {} with {} storage nodes is up\n  AWS KMS JSON endpoint: {}\n  gRPC endpoint:         {}\n\nIn another shell:\n  source {}\n  aws kms create-key --description demo\n\nCtrl-C stops the region; starting again on the same --dir keeps every key.",
        region.region,
        args.nodes,
        region.json_url,
        region.grpc_url,
        region.env_file.display()
    );
    if let Some(b) = &region.peer {
        println!(
            "\nSecond region (multi-region keys): AWS KMS JSON endpoint {} (KMS_ENDPOINT_B, KMS_REGION_B in the env file)",
            b.json_url
        );
    }
    crate::shutdown_signal().await;
    region.stop().await;
    Ok(())
}

/// Writes the dev front's settings as a `keyraft front --config` file, so the same region can
/// also be run role by role (nodes from `node-N.toml`, the front from `front.toml`).
fn write_front_config(path: &Path, params: &FrontParams) -> anyhow::Result<()> {
    let toml = format!(
        "region = \"{region}\"\njson_listen = \"{json}\"\ngrpc_listen = \"{grpc}\"\nstore = {store:?}\ndomain_key_file = \"{dk}\"\nstrict_client_cert = {strict}\ncache_staleness_ms = {staleness}\naudit = \"{audit}\"\naudit_batches_in_flight = {in_flight}\n{issuing}\n[tls]\nca = \"{ca}\"\ncert = \"{cert}\"\nkey = \"{key}\"\n",
        region = params.region,
        json = params.json_listen,
        grpc = params.grpc_listen,
        store = params.store,
        dk = params.domain_key_file.display(),
        strict = params.strict_client_cert,
        staleness = params.cache_staleness.as_millis(),
        in_flight = params.audit.batches_in_flight,
        audit = match params.audit.mode {
            crate::front::audit::AuditMode::Sync => "sync",
            crate::front::audit::AuditMode::Async => "async",
        },
        issuing = match &params.issuing_ca_key {
            Some(p) => format!("issuing_ca_key = \"{}\"\n", p.display()),
            None => String::new(),
        } + &match &params.multi_region {
            Some(f) => format!(
                "transport_key = \"{}\"\nreplication_key = \"{}\"\nregion_peers = \"{}\"\n",
                f.transport_key.display(),
                f.replication_key.display(),
                f.region_peers.display()
            ),
            None => String::new(),
        },
        ca = params.tls.ca.display(),
        cert = params.tls.cert.display(),
        key = params.tls.key.display(),
    );
    write_if_changed(path, &toml)
}

fn spawn_node(dir: &Path, id: u64, config: &Path) -> anyhow::Result<Child> {
    let exe = std::env::current_exe().context("locating the keyraft binary")?;
    let log = fs::File::create(dir.join("logs").join(format!("node-{id}.log")))?;
    let child = Command::new(exe)
        .arg("node")
        .arg("--config")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .context("starting a storage node")?;
    let pid = child.id().context("storage node exited at once")?;
    fs::write(
        dir.join("pids").join(format!("node-{id}.pid")),
        pid.to_string(),
    )?;
    Ok(child)
}

/// Kills storage nodes left running by an earlier dev process on the same directory (it may
/// have been killed without a chance to stop them), so ports and data dirs are free.
fn stop_stale_children(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir.join("pids")) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(pid) = fs::read_to_string(entry.path()) else {
            continue;
        };
        let pid = pid.trim();
        let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline);
        if cmdline.contains("keyraft") && cmdline.contains(&*dir.to_string_lossy()) {
            let _ = std::process::Command::new("kill")
                .arg("-9")
                .arg(pid)
                .status();
        }
        let _ = fs::remove_file(entry.path());
    }
}

/// Version of the dev PKI layout, kept in `DIR/pki-version`. 2: internal certificates carry
/// a role URI SAN (`raft::tls::ROLE_STORAGE` / `ROLE_FRONT`), which storage nodes require.
/// 3: the CA key is kept (`ca.key`, for IssueClientCertificate) and the second account's root
/// has a certificate (`other-root.pem`). 4: internal certificates also name 127.0.0.2–10
/// (`--node-ips`).
const PKI_VERSION: u32 = 4;

/// Files a complete PKI of [`PKI_VERSION`] has.
const PKI_FILES: &[&str] = &[
    "ca.pem",
    "ca.key",
    "storage.key",
    "front.key",
    "admin.key",
    "app.key",
    "other-root.key",
];

/// Generates the CA and every certificate unless a complete PKI of the current version is
/// there. An older or incomplete one (no `pki-version`, as written before roles existed) is
/// replaced as a whole; the domain key, credentials and data are not touched.
fn ensure_pki(dir: &Path, extra_hosts: &[String]) -> anyhow::Result<()> {
    let marker = dir.join("pki-version");
    let version = fs::read_to_string(&marker)
        .ok()
        .and_then(|v| v.trim().parse::<u32>().ok())
        .unwrap_or(0);
    if version >= PKI_VERSION && PKI_FILES.iter().all(|f| dir.join(f).exists()) {
        return Ok(());
    }
    if dir.join("ca.pem").exists() {
        tracing::info!(
            dir = %dir.display(),
            from = version,
            to = PKI_VERSION,
            "regenerating the dev CA and certificates (domain key, credentials and data are kept)"
        );
    }
    // Whatever was there is no longer complete until the new marker is written.
    let _ = fs::remove_file(&marker);
    let ca = DevCa::generate("keyraft dev CA")?;
    fs::write(dir.join("ca.pem"), ca.cert_pem())?;
    write_private(&dir.join("ca.key"), ca.key_pem().as_bytes())?;
    let node_ips: Vec<String> = (2..=10).map(|i| format!("127.0.0.{i}")).collect();
    let mut hosts = vec!["localhost", "127.0.0.1", "::1"];
    hosts.extend(node_ips.iter().map(String::as_str));
    hosts.extend(extra_hosts.iter().map(String::as_str));
    write_pair(
        dir,
        "storage",
        ca.issue_storage("keyraft storage node", &hosts)?,
    )?;
    write_pair(dir, "front", ca.issue_front("keyraft front", &hosts)?)?;
    write_pair(dir, "admin", ca.issue_client(DEV_ADMIN_ARN)?)?;
    write_pair(dir, "app", ca.issue_client(DEV_APP_ARN)?)?;
    write_pair(dir, "other-root", ca.issue_client(DEV_OTHER_ROOT_ARN)?)?;
    // Written last: its presence marks a complete PKI of this version.
    fs::write(&marker, format!("{PKI_VERSION}\n"))?;
    Ok(())
}

fn ensure_domain_key(dir: &Path) -> anyhow::Result<DomainKey> {
    let path = dir.join("domain-key");
    if !path.exists() {
        let key = DomainKey::generate(1);
        write_private(&path, key.expose_secret())?;
    }
    crate::roles::read_domain_key(&path)
}

/// The dev region's audit signing key (32 bytes, 0600) and its published public key.
const AUDIT_KEY_FILE: &str = "audit.key";
/// JSON list of `keystore::audit::AuditPublicKey` (what `verify` needs); not secret.
const AUDIT_PUBLIC_KEYS_FILE: &str = "audit-public-keys.json";

/// Generates the audit signing key once, and (re)writes the public key list when it does not
/// list that key: a dev directory made before audit existed gains both on its next start.
/// A key found without a list is published as valid from the key file's modification time.
fn ensure_audit_key(dir: &Path) -> anyhow::Result<()> {
    let path = dir.join(AUDIT_KEY_FILE);
    if !path.exists() {
        let key = keystore::audit::AuditSigningKey::generate();
        write_private(&path, key.expose_secret())?;
    }
    let key = crate::roles::read_audit_key(&path)?;
    let list_path = dir.join(AUDIT_PUBLIC_KEYS_FILE);
    let mut keys: Vec<keystore::audit::AuditPublicKey> = match fs::read_to_string(&list_path) {
        Ok(text) => serde_json::from_str(&text).context("parsing audit-public-keys.json")?,
        Err(_) => Vec::new(),
    };
    if keys.iter().any(|k| k.key_id == key.key_id()) {
        return Ok(());
    }
    let created = fs::metadata(&path)?
        .modified()?
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as u64;
    keys.push(key.public_key(created, None));
    fs::write(&list_path, serde_json::to_string_pretty(&keys)?)?;
    Ok(())
}

fn ensure_credentials(dir: &Path) -> anyhow::Result<Credentials> {
    let path = dir.join("credentials.json");
    let mut creds = match fs::read_to_string(&path) {
        Ok(text) => {
            let creds: Credentials =
                serde_json::from_str(&text).context("parsing credentials.json")?;
            if !creds.other_root_access_key_id.is_empty() {
                return Ok(creds);
            }
            creds
        }
        Err(_) => Credentials {
            admin_access_key_id: new_access_key_id(),
            admin_secret_access_key: new_secret_access_key(),
            app_access_key_id: new_access_key_id(),
            app_secret_access_key: new_secret_access_key(),
            other_root_access_key_id: String::new(),
            other_root_secret_access_key: String::new(),
        },
    };
    // A new file, or one written before the second account existed.
    creds.other_root_access_key_id = new_access_key_id();
    creds.other_root_secret_access_key = new_secret_access_key();
    write_private(&path, serde_json::to_string_pretty(&creds)?.as_bytes())?;
    Ok(creds)
}

/// Access key generators, shared with the front's CreateAccessKey.
pub use crate::front::ops::{new_access_key_id, new_secret_access_key};

/// Puts the dev identities and access keys that are missing. Existing ones are left alone, so
/// policies attached through the API survive a restart.
async fn bootstrap_identities(
    front: &crate::roles::RunningFront,
    domain_key: &DomainKey,
    creds: &Credentials,
) -> anyhow::Result<()> {
    use keystore::command::{Command, Query, QueryOutput};
    const WITHIN: Duration = Duration::from_secs(60);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as u64;
    let identities = [
        (
            format!("arn:aws:iam::{DEV_ACCOUNT}:root"),
            DEV_ACCOUNT,
            true,
        ),
        (DEV_ADMIN_ARN.to_string(), DEV_ACCOUNT, true),
        (DEV_APP_ARN.to_string(), DEV_ACCOUNT, false),
        (DEV_OTHER_ROOT_ARN.to_string(), DEV_OTHER_ACCOUNT, false),
    ];
    for (arn, account, admin) in identities {
        let q = Query::GetIdentity { arn: arn.clone() };
        if let QueryOutput::Identity(Some(_)) = front.query_with_retry(q, WITHIN).await? {
            continue;
        }
        let identity = IdentityRecord {
            arn,
            account_id: account.into(),
            admin,
            created_at: now,
            ..Default::default()
        };
        front
            .propose_with_retry(Command::PutIdentity { identity }, WITHIN)
            .await?;
    }
    for (id, secret, arn, account) in [
        (
            &creds.admin_access_key_id,
            &creds.admin_secret_access_key,
            DEV_ADMIN_ARN,
            DEV_ACCOUNT,
        ),
        (
            &creds.app_access_key_id,
            &creds.app_secret_access_key,
            DEV_APP_ARN,
            DEV_ACCOUNT,
        ),
        (
            &creds.other_root_access_key_id,
            &creds.other_root_secret_access_key,
            DEV_OTHER_ROOT_ARN,
            DEV_OTHER_ACCOUNT,
        ),
    ] {
        let q = Query::GetAccessKey {
            access_key_id: id.clone(),
        };
        if let QueryOutput::AccessKey(Some(_)) = front.query_with_retry(q, WITHIN).await? {
            continue;
        }
        let secret = crypto::Secret::new(secret.as_bytes().to_vec());
        let record = AccessKeyRecord {
            access_key_id: id.clone(),
            principal_arn: arn.into(),
            account_id: account.into(),
            wrapped_secret: crypto::wrap_access_secret(domain_key, id, &secret),
            created_at: now,
        };
        front
            .propose_with_retry(Command::PutAccessKey { record }, WITHIN)
            .await?;
    }
    Ok(())
}

fn env_file_text(
    dir: &Path,
    region: &str,
    json_url: &str,
    grpc_url: &str,
    creds: &Credentials,
) -> String {
    let p = |name: &str| dir.join(name).display().to_string();
    let lines = [
        ("KMS_ENDPOINT", json_url.to_string()),
        ("KMS_GRPC_ENDPOINT", grpc_url.to_string()),
        ("KMS_REGION", region.to_string()),
        ("KMS_ACCOUNT_ID", DEV_ACCOUNT.to_string()),
        ("AWS_ENDPOINT_URL_KMS", json_url.to_string()),
        ("AWS_DEFAULT_REGION", region.to_string()),
        ("AWS_REGION", region.to_string()),
        ("AWS_ACCESS_KEY_ID", creds.admin_access_key_id.clone()),
        (
            "AWS_SECRET_ACCESS_KEY",
            creds.admin_secret_access_key.clone(),
        ),
        ("AWS_CA_BUNDLE", p("ca.pem")),
        ("KMS_CA_BUNDLE", p("ca.pem")),
        ("KMS_CLIENT_CERT", p("admin.pem")),
        ("KMS_CLIENT_KEY", p("admin.key")),
        ("KMS_PRINCIPAL_ARN", DEV_ADMIN_ARN.to_string()),
        ("KMS_ALT_ACCESS_KEY_ID", creds.app_access_key_id.clone()),
        (
            "KMS_ALT_SECRET_ACCESS_KEY",
            creds.app_secret_access_key.clone(),
        ),
        ("KMS_ALT_PRINCIPAL_ARN", DEV_APP_ARN.to_string()),
        ("KMS_ALT_CLIENT_CERT", p("app.pem")),
        ("KMS_ALT_CLIENT_KEY", p("app.key")),
        ("KMS_OTHER_ACCOUNT_ID", DEV_OTHER_ACCOUNT.to_string()),
        (
            "KMS_OTHER_ACCESS_KEY_ID",
            creds.other_root_access_key_id.clone(),
        ),
        (
            "KMS_OTHER_SECRET_ACCESS_KEY",
            creds.other_root_secret_access_key.clone(),
        ),
        ("KMS_OTHER_PRINCIPAL_ARN", DEV_OTHER_ROOT_ARN.to_string()),
        ("KMS_OTHER_CLIENT_CERT", p("other-root.pem")),
        ("KMS_OTHER_CLIENT_KEY", p("other-root.key")),
        ("KMS_AUDIT_PUBLIC_KEYS", p(AUDIT_PUBLIC_KEYS_FILE)),
    ];
    let mut text = String::from("# Written by `keyraft dev`. Use: source this file.\n");
    for (name, value) in lines {
        text.push_str(&format!("export {name}='{value}'\n"));
    }
    text.push_str("# KMS_ENDPOINT_B / KMS_REGION_B are added by `keyraft dev --regions A,B`.\n");
    text
}

#[cfg(test)]
mod audit_key_tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn the_dev_audit_key_is_made_once_private_and_published_with_its_validity() {
        let dir = tempfile::tempdir().unwrap();
        ensure_audit_key(dir.path()).unwrap();
        let key_file = dir.path().join(AUDIT_KEY_FILE);
        let mode = fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "audit.key is private");
        let list = || -> Vec<keystore::audit::AuditPublicKey> {
            serde_json::from_str(
                &fs::read_to_string(dir.path().join(AUDIT_PUBLIC_KEYS_FILE)).unwrap(),
            )
            .unwrap()
        };
        let first = list();
        assert_eq!(first.len(), 1);
        let key = crate::roles::read_audit_key(&key_file).unwrap();
        assert_eq!(first[0].key_id, key.key_id());
        assert!(first[0].valid_to.is_none());
        // A restart keeps the key and the published validity.
        let bytes = fs::read(&key_file).unwrap();
        ensure_audit_key(dir.path()).unwrap();
        assert_eq!(fs::read(&key_file).unwrap(), bytes);
        assert_eq!(list(), first);
        // A directory whose list was lost (or predates it) gets it back.
        fs::remove_file(dir.path().join(AUDIT_PUBLIC_KEYS_FILE)).unwrap();
        ensure_audit_key(dir.path()).unwrap();
        assert_eq!(list()[0].key_id, key.key_id());
    }
}

#[cfg(test)]
mod container_tests {
    use super::*;
    use clap::Parser;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        dev: DevArgs,
    }

    fn args(dir: &Path, extra: &[&str]) -> DevArgs {
        let mut argv = vec!["keyraft-dev", "--dir", dir.to_str().unwrap()];
        argv.extend_from_slice(extra);
        Cli::try_parse_from(argv).unwrap().dev
    }

    /// The flags docker-compose.regions.yml passes (through KEYRAFT_DEV_* variables).
    const TWO_REGIONS_IN_CONTAINERS: &[&str] = &[
        "--regions",
        "us-east-1,us-west-2",
        "--hosts",
        "a-node1,a-node2,a-node3,a-front1,a-front2,b-node1,b-node2,b-node3,b-front1,b-front2,kms-a,kms-b",
        "--external-nodes",
        "a-node1:7411,a-node2:7412,a-node3:7413",
        "--external-nodes-b",
        "b-node1:7411,b-node2:7412,b-node3:7413",
        "--replication-url",
        "https://kms-a:7400",
        "--replication-url-b",
        "https://kms-b:7420",
    ];

    fn peers(path: &Path) -> Vec<crate::front::ops::multi_region::PeerRegion> {
        serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap()
    }

    fn dns_sans(pem_path: &Path) -> Vec<String> {
        let pem = fs::read(pem_path).unwrap();
        let der = rustls_pemfile::certs(&mut pem.as_slice())
            .next()
            .unwrap()
            .unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        let san = cert.subject_alternative_name().unwrap().unwrap();
        san.value
            .general_names
            .iter()
            .filter_map(|n| match n {
                x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_string()),
                _ => None,
            })
            .collect()
    }

    #[tokio::test]
    async fn init_only_starts_no_storage_node() {
        // Before: it spawned the nodes and stopped them on return, and a node killed while
        // creating its database left a file no node could open.
        let tmp = tempfile::tempdir().unwrap();
        let region = start(&args(tmp.path(), &["--init-only", "--port-base", "47300"]))
            .await
            .unwrap();
        assert!(region.children.is_empty());
        assert!(tmp.path().join("node-1.toml").exists());
        let databases: Vec<_> = fs::read_dir(tmp.path().join("data"))
            .unwrap()
            .flatten()
            .filter(|e| e.path().join("keyraft.redb").exists())
            .collect();
        assert!(databases.is_empty(), "{databases:?}");
    }

    #[tokio::test]
    async fn init_only_two_regions_in_containers_names_the_container_hosts_in_every_file() {
        let tmp = tempfile::tempdir().unwrap();
        let mut flags = TWO_REGIONS_IN_CONTAINERS.to_vec();
        flags.push("--init-only");
        start(&args(tmp.path(), &flags)).await.unwrap();
        let a = fs::canonicalize(tmp.path()).unwrap();
        let b = a.join("us-west-2");

        // Each region trusts the other at its replication endpoint (a container host name),
        // with the keys that region published.
        let a_peers = peers(&a.join(REGION_PEERS_FILE));
        let b_public: crate::front::ops::multi_region::PeerRegion =
            serde_json::from_str(&fs::read_to_string(b.join(REGION_PUBLIC_FILE)).unwrap()).unwrap();
        assert_eq!(a_peers, vec![b_public.clone()]);
        assert_eq!(b_public.region, "us-west-2");
        assert_eq!(b_public.endpoint, "https://kms-b:7420");
        let b_peers = peers(&b.join(REGION_PEERS_FILE));
        assert_eq!(b_peers.len(), 1);
        assert_eq!(b_peers[0].region, "us-east-1");
        assert_eq!(b_peers[0].endpoint, "https://kms-a:7400");
        assert_ne!(
            b_peers[0].transport_public_key, b_public.transport_public_key,
            "each region has its own transport key"
        );

        // Region B's nodes form their own cluster of B's containers.
        for n in 1..=3u64 {
            let node: toml::Value =
                toml::from_str(&fs::read_to_string(b.join(format!("node-{n}.toml"))).unwrap())
                    .unwrap();
            assert_eq!(node["region"].as_str(), Some("us-west-2"));
            assert_eq!(node["listen"].as_str(), Some(&*format!("0.0.0.0:741{n}")));
            assert_eq!(
                node["advertise"].as_str(),
                Some(&*format!("b-node{n}:741{n}"))
            );
            let node_peers: Vec<&str> = node["peers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p.as_str().unwrap())
                .collect();
            assert_eq!(
                node_peers,
                ["1=b-node1:7411", "2=b-node2:7412", "3=b-node3:7413"]
            );
        }
        // Each front talks to its own region's nodes and replicates with its own keys.
        for (dir, region, port, node) in [
            (&a, "us-east-1", 7400, "a-node"),
            (&b, "us-west-2", 7420, "b-node"),
        ] {
            let front: toml::Value =
                toml::from_str(&fs::read_to_string(dir.join("front.toml")).unwrap()).unwrap();
            assert_eq!(front["region"].as_str(), Some(region));
            assert_eq!(
                front["json_listen"].as_str(),
                Some(&*format!("0.0.0.0:{port}"))
            );
            let store: Vec<&str> = front["store"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap())
                .collect();
            assert_eq!(
                store,
                [1, 2, 3].map(|n| format!("{node}{n}:741{n}")),
                "{region}"
            );
            for (k, file) in [
                ("transport_key", TRANSPORT_KEY_FILE),
                ("replication_key", REPLICATION_KEY_FILE),
                ("region_peers", REGION_PEERS_FILE),
            ] {
                assert_eq!(
                    front[k].as_str(),
                    Some(&*dir.join(file).display().to_string())
                );
            }
            // The front certificate (server and client side of the replication mTLS) names
            // the replication endpoints of both regions and every container.
            let sans = dns_sans(&dir.join("front.pem"));
            for host in ["kms-a", "kms-b", "a-front1", "b-front2", "b-node3"] {
                assert!(sans.iter().any(|s| s == host), "{host} not in {sans:?}");
            }
        }
        // init writes no env file: the bootstrap steps do, once the identities exist.
        assert!(!a.join("env").exists() && !b.join("env").exists());

        // A second init (compose `up` again) changes nothing, keys included.
        let before: Vec<Vec<u8>> = [
            a.join(TRANSPORT_KEY_FILE),
            b.join(REPLICATION_KEY_FILE),
            a.join(REGION_PEERS_FILE),
            b.join("front.toml"),
            b.join("ca.pem"),
        ]
        .iter()
        .map(|p| fs::read(p).unwrap())
        .collect();
        start(&args(tmp.path(), &flags)).await.unwrap();
        let after: Vec<Vec<u8>> = [
            a.join(TRANSPORT_KEY_FILE),
            b.join(REPLICATION_KEY_FILE),
            a.join(REGION_PEERS_FILE),
            b.join("front.toml"),
            b.join("ca.pem"),
        ]
        .iter()
        .map(|p| fs::read(p).unwrap())
        .collect();
        assert!(before == after, "a second init rewrote files");
    }

    #[tokio::test]
    async fn two_region_container_flags_are_refused_when_incomplete_or_inconsistent() {
        let tmp = tempfile::tempdir().unwrap();
        let refused = |extra: &'static [&'static str]| {
            let a = args(tmp.path(), extra);
            async move { start(&a).await.err().expect("refused").to_string() }
        };
        let only_a = refused(&[
            "--regions",
            "us-east-1,us-west-2",
            "--init-only",
            "--external-nodes",
            "a-node1:7411",
        ])
        .await;
        assert!(only_a.contains("--external-nodes-b"), "{only_a}");
        let stranger = refused(&[
            "--regions",
            "us-east-1,us-west-2",
            "--init-only",
            "--only-region",
            "eu-west-1",
        ])
        .await;
        assert!(stranger.contains("eu-west-1"), "{stranger}");
        let plain = refused(&[
            "--regions",
            "us-east-1,us-west-2",
            "--init-only",
            "--replication-url-b",
            "http://kms-b:7420",
        ])
        .await;
        assert!(plain.contains("https://"), "{plain}");
        let single = refused(&["--init-only", "--public-url-b", "https://x:1"]).await;
        assert!(
            single.contains("--public-url-b needs --regions"),
            "{single}"
        );
    }
}
