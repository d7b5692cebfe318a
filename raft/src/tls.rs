//! mTLS for the cluster: every peer presents a certificate chaining to the deployment CA, in
//! both directions. Files are read once at start-up.

use std::path::PathBuf;
use std::time::Duration;

use tonic::transport::{
    Certificate, Channel, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig,
};

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

/// Loaded TLS material.
#[derive(Clone)]
pub(crate) struct Tls {
    ca: Certificate,
    identity: Identity,
}

/// The largest gRPC message accepted: a snapshot carries the whole state in one message.
pub(crate) const MAX_MESSAGE: usize = 512 * 1024 * 1024;

impl Tls {
    pub(crate) fn load(files: &TlsFiles) -> Result<Self, RaftError> {
        let read = |p: &PathBuf| {
            std::fs::read(p).map_err(|e| RaftError::Tls(format!("reading {}: {e}", p.display())))
        };
        let ca = Certificate::from_pem(read(&files.ca)?);
        let identity = Identity::from_pem(read(&files.cert)?, read(&files.key)?);
        Ok(Tls { ca, identity })
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
