//! Wiring of the long-running roles: a storage node, and a front (JSON + gRPC listeners over
//! one shared `Kms`). `main.rs` and dev mode call these; tests call them on port 0.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use keystore::command::{Command, CommandOutput};
use keystore::crypto::DomainKey;

use crate::config::FrontParams;

/// Reads a domain key file (32 raw bytes). Refuses files others can read.
pub fn read_domain_key(path: &Path) -> anyhow::Result<DomainKey> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        anyhow::bail!(
            "{} must not be readable by group or others (chmod 600)",
            path.display()
        );
    }
    let bytes = zeroizing_read(path)?;
    DomainKey::from_bytes(1, bytes.expose_secret())
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// Loads the CA that IssueClientCertificate signs with: its certificate (the first one of the
/// trust anchor file) and its private key, which must be private to this user like the domain
/// key.
pub fn read_issuing_ca(ca_cert: &Path, ca_key: &Path) -> anyhow::Result<crate::certs::IssuingCa> {
    use std::os::unix::fs::PermissionsExt;
    let meta =
        std::fs::metadata(ca_key).with_context(|| format!("reading {}", ca_key.display()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        anyhow::bail!(
            "{} must not be readable by group or others (chmod 600)",
            ca_key.display()
        );
    }
    let cert = std::fs::read_to_string(ca_cert)
        .with_context(|| format!("reading {}", ca_cert.display()))?;
    let key = zeroizing_read(ca_key)?;
    let key = std::str::from_utf8(key.expose_secret())
        .map_err(|_| anyhow::anyhow!("{} is not PEM", ca_key.display()))?;
    crate::certs::DevCa::from_pem(&cert, key)
        .with_context(|| format!("loading the issuing CA ({})", ca_key.display()))
}

/// Reads the audit signing key file (32 raw bytes). Refuses files others can read, like the
/// domain key. The key itself is never logged; only its public key id is.
pub fn read_audit_key(path: &Path) -> anyhow::Result<keystore::audit::AuditSigningKey> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        anyhow::bail!(
            "{} must not be readable by group or others (chmod 600)",
            path.display()
        );
    }
    let bytes = zeroizing_read(path)?;
    let seed: &[u8; 32] = bytes.expose_secret().try_into().map_err(|_| {
        anyhow::anyhow!(
            "{}: an audit key file holds exactly 32 bytes, not {}",
            path.display(),
            bytes.len()
        )
    })?;
    Ok(keystore::audit::AuditSigningKey::from_bytes(seed))
}

/// How long a `--join` node keeps asking the region to add it.
const JOIN_GIVE_UP: std::time::Duration = std::time::Duration::from_secs(3600);

/// Runs a storage node (`keyraft node`) until `shutdown` resolves, reading its audit key first.
pub async fn run_storage_node(
    params: crate::config::NodeParams,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let signing_key = match &params.audit_key {
        Some(path) => Some(raft::AuditKey::new(read_audit_key(path)?)),
        None => {
            tracing::warn!("no audit key configured: this node will not sign audit digests");
            None
        }
    };
    let audit = raft::AuditSettings {
        signing_key,
        region: params.region.clone(),
        digest_interval: params.audit_digest_interval,
        retention: params.audit_retention,
    };
    let joining = params.join.clone().map(|(request, peers)| {
        let tls = params.storage.tls.clone();
        tokio::spawn(async move {
            tracing::info!(node = request.node_id, replaces = ?request.replaces, "joining the region");
            match raft::join_region(&tls, &peers, &request, JOIN_GIVE_UP).await {
                Ok(reply) => tracing::info!(
                    voters = ?reply.voters,
                    caught_up_ms = reply.caught_up_ms,
                    "joined the region"
                ),
                Err(e) => tracing::error!(error = %e, "could not join the region"),
            }
        })
    });
    let result = raft::run_storage_node_with_audit(params.storage, audit, shutdown).await;
    if let Some(task) = joining {
        task.abort();
    }
    result?;
    Ok(())
}

fn zeroizing_read(path: &Path) -> anyhow::Result<keystore::crypto::Secret> {
    Ok(keystore::crypto::Secret::new(std::fs::read(path)?))
}

/// A front serving both listeners until stopped.
pub struct RunningFront {
    /// Bound AWS JSON address.
    pub json_addr: SocketAddr,
    /// Bound gRPC address.
    pub grpc_addr: SocketAddr,
    store: raft::StoreClient,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<anyhow::Result<()>>>,
}

impl RunningFront {
    /// Proposes a command through the store, retrying while the cluster has no leader yet.
    pub async fn propose_with_retry(
        &self,
        command: Command,
        within: Duration,
    ) -> anyhow::Result<CommandOutput> {
        let deadline = Instant::now() + within;
        loop {
            match self.store.propose(command.clone()).await {
                Ok(out) => return Ok(out),
                Err(raft::StoreError::Unavailable(why)) if Instant::now() < deadline => {
                    tracing::info!(%why, "store not ready yet");
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                Err(e) => return Err(e).context("proposing through the store"),
            }
        }
    }

    /// Runs a (linearizable) store query, retrying while the cluster has no leader yet.
    pub async fn query_with_retry(
        &self,
        query: keystore::command::Query,
        within: Duration,
    ) -> anyhow::Result<keystore::command::QueryOutput> {
        let deadline = Instant::now() + within;
        loop {
            match self.store.query(query.clone()).await {
                Ok(out) => return Ok(out),
                Err(raft::StoreError::Unavailable(why)) if Instant::now() < deadline => {
                    tracing::info!(%why, "store not ready yet");
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                Err(e) => return Err(e).context("querying the store"),
            }
        }
    }

    /// Stops both listeners and waits for them.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }

    /// Waits until either listener fails (or both finish).
    pub async fn wait(self) -> anyhow::Result<()> {
        for task in self.tasks {
            task.await??;
        }
        Ok(())
    }
}

/// Binds both listeners of a front and starts serving.
pub async fn start_front(params: &FrontParams) -> anyhow::Result<RunningFront> {
    let domain_key = read_domain_key(&params.domain_key_file)?;
    let store = raft::StoreClient::connect(params.store.clone(), &params.tls)
        .await
        .context("connecting to the storage nodes")?;
    let config = crate::front::FrontConfig {
        region: params.region.clone(),
        json_listen: params.json_listen,
        store_endpoints: params.store.clone(),
        tls: params.tls.clone(),
        domain_key,
        strict_client_cert: params.strict_client_cert,
        cache_staleness: params.cache_staleness,
        audit: params.audit.clone(),
    };
    let (front, json_addr) = crate::front::Front::bind(config).await?;
    if let Some(key_path) = &params.issuing_ca_key {
        let issuer = read_issuing_ca(&params.tls.ca, key_path)?;
        front.kms().set_client_cert_issuer(issuer);
    }
    if let Some(files) = &params.multi_region {
        let settings = crate::front::ops::multi_region::MultiRegionSettings::load(
            &files.transport_key,
            &files.replication_key,
            &files.region_peers,
            &params.tls,
        )?;
        tracing::info!(peers = ?settings.peer_regions(), "multi-region replication on");
        front.kms().set_multi_region(settings);
    }
    let grpc_listener = tokio::net::TcpListener::bind(params.grpc_listen)
        .await
        .with_context(|| format!("binding gRPC listener {}", params.grpc_listen))?;
    let grpc_addr = grpc_listener.local_addr()?;
    let grpc_tls = crate::front::grpc::server_tls(&params.tls)?;
    let kms = front.kms();

    let (stop, stopped) = watch::channel(false);
    let until_stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let json_task = tokio::spawn({
        let rx = stopped.clone();
        async move { front.serve(until_stopped(rx)).await }
    });
    let grpc_task = tokio::spawn(async move {
        crate::front::grpc::serve_grpc(kms, grpc_listener, grpc_tls, until_stopped(stopped)).await
    });
    tracing::info!(%json_addr, %grpc_addr, region = %params.region, "front serving");
    Ok(RunningFront {
        json_addr,
        grpc_addr,
        store,
        stop,
        tasks: vec![json_task, grpc_task],
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn audit_key_files_must_be_private_and_32_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.key");
        std::fs::write(&path, [9u8; 32]).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(
            super::read_audit_key(&path).is_err(),
            "group/other readable"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let key = super::read_audit_key(&path).unwrap();
        assert_eq!(
            key.key_id(),
            keystore::audit::AuditSigningKey::from_bytes(&[9u8; 32]).key_id()
        );
        std::fs::write(&path, [9u8; 31]).unwrap();
        assert!(super::read_audit_key(&path).is_err(), "wrong length");
    }
}
