//! The front tier: stateless servers that authenticate callers, authorize, unwrap key
//! material with the region domain key and perform KMS operations over the storage cluster.
//!
//! # Layout
//!
//! ```text
//! aws_json.rs   HTTPS listener: X-Amz-Target -> Operation, SigV4, JSON errors, health
//! grpc.rs       gRPC adapter over the same Kms (mTLS)
//! grpc_iam.rs   (child of grpc) the gRPC Iam service over the identity operations
//! grpc_audit.rs (child of grpc) the gRPC Audit service over the audit operations
//! ops.rs        Kms: one async method per operation (validate -> resolve -> authorize -> act)
//! multi_region.rs (child of ops) multi-region keys: ReplicateKey, UpdatePrimaryRegion, the
//!               region-to-region delivery endpoint and the outbox replicator
//! rotation.rs   (child of ops) key rotation operations + the next-material preparer task
//! import.rs     (child of ops) BYOK: GetParametersForImport, ImportKeyMaterial, DeleteImportedKeyMaterial
//! iam.rs        (child of ops) identities: principals, access keys, identity policies,
//!               client certificates (KeyraftIam.* on the JSON endpoint)
//! audit.rs      one audit event per call, group committed before the answer (fail closed)
//! audit_lookup.rs  (child of ops) KeyraftAudit.LookupEvents and the KeyraftAudit.<Op> routing
//! audit_export.rs  (child of ops) the raw chain and digests for the region's operators
//! authz.rs      the single authorization decision
//! cache.rs      key/alias/identity/access-key cache fed by the store's watch stream
//! shapes.rs     AWS request/response shapes (serde)
//! operation.rs  the Operation enum and its IAM actions
//! errors.rs     KmsError and its (__type, HTTP status) mapping
//! ```
//!
//! # Data flow
//!
//! ```text
//! client --HTTPS+SigV4--> aws_json --(Caller, Operation, body)--> Kms::dispatch
//!                                      Kms --reads--> Cache --miss--> StoreClient::query
//!                                      Kms --writes--> StoreClient::propose (Raft)
//!                   StoreClient::watch --WatchEvent--> Cache (invalidate / clear)
//! aws_json / grpc --one event per call--> Kms::audit_call --> AuditSink (group commit)
//!                                      --> StoreClient::propose(AppendAudit) --> answer
//! ```

pub mod audit;
pub mod authz;
pub mod aws_json;
pub mod cache;
pub mod errors;
pub mod grpc;
pub mod operation;
pub mod ops;
pub mod shapes;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use keystore::crypto::DomainKey;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

pub use authz::Caller;
pub use errors::KmsError;
pub use operation::Operation;
pub use ops::Kms;

/// Everything a front needs.
pub struct FrontConfig {
    /// The region served (credential scopes must name it).
    pub region: String,
    /// Where the AWS JSON endpoint listens (port 0 for an ephemeral port).
    pub json_listen: SocketAddr,
    /// Storage nodes (host:port).
    pub store_endpoints: Vec<String>,
    /// CA, certificate and key of this front: server identity towards clients and client
    /// identity towards storage nodes.
    pub tls: raft::TlsFiles,
    /// The region domain key.
    pub domain_key: DomainKey,
    /// Require a client certificate on the JSON endpoint.
    pub strict_client_cert: bool,
    /// Upper bound on how stale a cached record may be.
    pub cache_staleness: Duration,
    /// Audit trail: sync (fail closed) or async, and the group commit's bounds.
    pub audit: audit::AuditSettings,
}

/// A bound, not yet serving, front.
pub struct Front {
    kms: Arc<Kms>,
    listener: TcpListener,
    acceptor: TlsAcceptor,
    watch_task: tokio::task::JoinHandle<()>,
}

impl Front {
    /// Connects to the store, loads TLS material and binds the JSON listener. Returns the
    /// bound address (useful with port 0).
    pub async fn bind(cfg: FrontConfig) -> anyhow::Result<(Front, SocketAddr)> {
        let tls = aws_json::server_tls_config(&cfg.tls, cfg.strict_client_cert)?;
        let store = raft::StoreClient::connect(cfg.store_endpoints.clone(), &cfg.tls)
            .await
            .context("connecting to the storage nodes")?;
        let kms = Arc::new(
            Kms::new(cfg.region, store, cfg.domain_key, cfg.cache_staleness).with_audit(cfg.audit),
        );
        Self::bind_with(kms, cfg.json_listen, tls).await
    }

    /// Like [`Front::bind`] over an already built [`Kms`] (tests).
    pub async fn bind_with(
        kms: Arc<Kms>,
        listen: SocketAddr,
        tls: rustls::ServerConfig,
    ) -> anyhow::Result<(Front, SocketAddr)> {
        let listener = TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding JSON listener {listen}"))?;
        let addr = listener.local_addr()?;
        let watch_task = kms.follow_store_changes();
        let acceptor = TlsAcceptor::from(Arc::new(tls));
        Ok((
            Front {
                kms,
                listener,
                acceptor,
                watch_task,
            },
            addr,
        ))
    }

    /// The operations, for other adapters (gRPC) to share.
    pub fn kms(&self) -> Arc<Kms> {
        self.kms.clone()
    }

    /// Serves the JSON endpoint until `shutdown` resolves.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let Front {
            kms,
            listener,
            acceptor,
            watch_task,
        } = self;
        let r = aws_json::serve(kms.clone(), listener, acceptor, shutdown).await;
        watch_task.abort();
        // Counts only: how well group commit batched (events per Raft entry) over the run.
        let stats = kms.audit().stats();
        tracing::info!(
            events = stats.appended,
            batches = stats.batches,
            failed = stats.failed,
            dropped = stats.dropped,
            "audit totals at shutdown"
        );
        r
    }
}

/// Binds and serves a front until `shutdown` resolves.
pub async fn run_front(cfg: FrontConfig, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let (front, addr) = Front::bind(cfg).await?;
    tracing::info!(%addr, "AWS JSON endpoint listening");
    front.serve(shutdown).await
}

#[cfg(test)]
mod testing;
#[cfg(test)]
mod tests;
