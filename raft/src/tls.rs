//! mTLS for the cluster: every peer presents a certificate chaining to the deployment CA, in
//! both directions. Files are read once at start-up.
//!
//! Chaining to the CA is not enough to call a storage node: the same CA issues client
//! certificates to users (an ARN in a URI SAN). Internal certificates carry a role URI SAN,
//! [`ROLE_STORAGE`] or [`ROLE_FRONT`], and the server checks it on every call
//! ([`RequireRole`]): Raft RPCs need the storage role, the store API storage or front.

use std::path::PathBuf;
use std::time::Duration;

use tonic::transport::{
    Certificate, Channel, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig,
};
use tonic::{Request, Status};
use x509_parser::extensions::GeneralName;

use crate::RaftError;

/// PEM files of a node's or a front's TLS identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// The CA certificate peers must chain to.
    pub ca: PathBuf,
    /// This party's certificate chain.
    pub cert: PathBuf,
    /// This party's private key.
    pub key: PathBuf,
}

/// URI SAN of a storage node's certificate: may call Raft RPCs and the store API.
pub const ROLE_STORAGE: &str = "urn:keyraft:role:storage";
/// URI SAN of a front's certificate: may call the store API, not Raft RPCs.
pub const ROLE_FRONT: &str = "urn:keyraft:role:front";

/// The connections `listener` accepts, with Nagle's algorithm off, for
/// `serve_with_incoming*`: tonic sets `TCP_NODELAY` only on listeners it binds itself. With
/// Nagle on, an HTTP/2 reply written in several small frames waits for the peer's delayed ACK
/// (~40 ms on Linux) before its last frame leaves, on every call and every Raft RPC.
pub fn nodelay_incoming(
    listener: tokio::net::TcpListener,
) -> impl futures::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    use futures::StreamExt;
    tokio_stream::wrappers::TcpListenerStream::new(listener).map(|conn| {
        if let Ok(stream) = &conn {
            if let Err(e) = stream.set_nodelay(true) {
                tracing::debug!(error = %e, "cannot set TCP_NODELAY on an accepted connection");
            }
        }
        conn
    })
}

/// The URI SANs of a DER certificate (roles, ARNs, anything else), in certificate order.
pub(crate) fn uri_sans(der: &[u8]) -> Result<Vec<String>, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| format!("unparsable certificate: {e}"))?;
    let san = cert
        .subject_alternative_name()
        .map_err(|e| format!("bad subjectAltName: {e}"))?;
    Ok(san
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    GeneralName::URI(u) => Some(u.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default())
}

/// The URI SANs of the first (leaf) certificate in a PEM file.
fn pem_uri_sans(pem: &[u8]) -> Result<Vec<String>, String> {
    let first = x509_parser::pem::Pem::iter_from_buffer(pem)
        .next()
        .ok_or("no PEM certificate found")?
        .map_err(|e| format!("unreadable PEM: {e}"))?;
    uri_sans(&first.contents)
}

/// A tonic interceptor admitting only callers whose (CA-verified) client certificate carries
/// one of `allowed` as a URI SAN; everyone else gets `PERMISSION_DENIED`. Runs before any
/// handler, so nothing of the request is decoded for a refused caller.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RequireRole {
    /// The service, for messages and logs.
    pub(crate) service: &'static str,
    /// Any one of these roles admits the caller.
    pub(crate) allowed: &'static [&'static str],
}

impl RequireRole {
    /// Raft RPCs: storage nodes only.
    pub(crate) const RAFT: RequireRole = RequireRole {
        service: "raft",
        allowed: &[ROLE_STORAGE],
    };
    /// The store API: storage nodes (forwarding) and fronts.
    pub(crate) const STORE: RequireRole = RequireRole {
        service: "store",
        allowed: &[ROLE_STORAGE, ROLE_FRONT],
    };

    fn check<T>(&self, req: &Request<T>) -> Result<(), Status> {
        let sans = match req.peer_certs() {
            Some(chain) => match chain.first() {
                Some(leaf) => uri_sans(leaf.as_ref()),
                None => Err("no client certificate".to_string()),
            },
            None => Err("no client certificate".to_string()),
        };
        let admitted = match &sans {
            Ok(sans) => sans.iter().any(|s| self.allowed.contains(&s.as_str())),
            Err(_) => false,
        };
        if admitted {
            return Ok(());
        }
        // URI SANs are names (roles, ARNs), never secrets.
        tracing::warn!(
            service = self.service,
            remote = ?req.remote_addr(),
            presented = ?sans,
            "refused a caller without an internal role"
        );
        Err(Status::permission_denied(format!(
            "the {} service requires a client certificate with URI SAN {}",
            self.service,
            self.allowed.join(" or ")
        )))
    }
}

impl tonic::service::Interceptor for RequireRole {
    fn call(&mut self, req: Request<()>) -> Result<Request<()>, Status> {
        self.check(&req)?;
        Ok(req)
    }
}

/// Loaded TLS material.
#[derive(Clone)]
pub(crate) struct Tls {
    ca: Certificate,
    identity: Identity,
    /// URI SANs of this party's own certificate.
    own_uris: Vec<String>,
    /// Source address of outgoing connections (a storage node's listen address), so that
    /// peers see each node at its own address — packet filters between 127.0.0.x addresses
    /// (jepsen-lite's partitions) then cut exactly the links they name.
    local_ip: Option<std::net::IpAddr>,
}

/// The largest gRPC message accepted: a snapshot carries the whole state in one message.
pub(crate) const MAX_MESSAGE: usize = 512 * 1024 * 1024;

impl Tls {
    pub(crate) fn load(files: &TlsFiles) -> Result<Self, RaftError> {
        let read = |p: &PathBuf| {
            std::fs::read(p).map_err(|e| RaftError::Tls(format!("reading {}: {e}", p.display())))
        };
        let ca = Certificate::from_pem(read(&files.ca)?);
        let cert = read(&files.cert)?;
        let own_uris = pem_uri_sans(&cert)
            .map_err(|e| RaftError::Tls(format!("{}: {e}", files.cert.display())))?;
        let identity = Identity::from_pem(cert, read(&files.key)?);
        Ok(Tls {
            ca,
            identity,
            own_uris,
            local_ip: None,
        })
    }

    /// Outgoing connections bind to `ip` (unless it is unspecified, `0.0.0.0` / `::`).
    pub(crate) fn with_local_ip(mut self, ip: std::net::IpAddr) -> Self {
        self.local_ip = (!ip.is_unspecified()).then_some(ip);
        self
    }

    /// Whether this party's own certificate carries `role` as a URI SAN.
    pub(crate) fn has_role(&self, role: &str) -> bool {
        self.own_uris.iter().any(|u| u == role)
    }

    /// Server side: a client certificate signed by the CA is required.
    pub(crate) fn server_config(&self) -> ServerTlsConfig {
        ServerTlsConfig::new()
            .identity(self.identity.clone())
            .client_ca_root(self.ca.clone())
    }

    /// A lazily connecting channel to `addr` (`host:port`); the server name checked is `host`.
    pub(crate) fn channel(&self, addr: &str) -> Result<Channel, RaftError> {
        let host = host_of(addr);
        let tls = ClientTlsConfig::new()
            .ca_certificate(self.ca.clone())
            .identity(self.identity.clone())
            .domain_name(host);
        let endpoint = Endpoint::from_shared(format!("https://{addr}"))
            .map_err(|e| RaftError::Config(format!("bad address {addr:?}: {e}")))?
            .tls_config(tls)
            .map_err(|e| RaftError::Tls(format!("client TLS for {addr}: {e}")))?
            .connect_timeout(Duration::from_secs(2))
            .local_address(self.local_ip)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(5));
        Ok(endpoint.connect_lazy())
    }
}

/// `host` of `host:port` (brackets of an IPv6 literal removed).
pub(crate) fn host_of(addr: &str) -> String {
    let host = match addr.rsplit_once(':') {
        Some((h, _)) => h,
        None => addr,
    };
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::host_of;

    #[test]
    fn host_of_strips_port_and_ipv6_brackets() {
        assert_eq!(host_of("node1.example:7000"), "node1.example");
        assert_eq!(host_of("127.0.0.1:1"), "127.0.0.1");
        assert_eq!(host_of("[::1]:7000"), "::1");
    }
}
