//! A lean HTTPS/1.1 client: one kept-alive connection per benchmark client, as an AWS SDK or
//! the `bao` CLI holds one per in-flight request. Nothing is pooled or retried, so each
//! measured call is exactly one request on the wire, and a broken connection is an error
//! counted once (the next call dials again).

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use http::{Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// A rustls client config trusting `ca`, presenting `identity` (cert, key) if given.
pub fn client_tls(
    ca: &Path,
    identity: Option<(&Path, &Path)>,
) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in
        CertificateDer::pem_file_iter(ca).with_context(|| format!("reading CA {}", ca.display()))?
    {
        roots.add(cert.context("parsing CA certificate")?)?;
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let mut config = match identity {
        Some((cert, key)) => {
            let (chain, key) = read_identity(cert, key)?;
            builder.with_client_auth_cert(chain, key)?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A PEM certificate chain and its private key.
pub fn read_identity(
    cert: &Path,
    key: &Path,
) -> anyhow::Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let chain = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("reading certificate {}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .context("parsing certificate chain")?;
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("reading key {}", key.display()))?;
    Ok((chain, key))
}

/// Where and how to dial: shared by every connection of one target.
#[derive(Clone)]
pub struct HttpsEndpoint {
    /// `host:port` to dial.
    pub addr: String,
    /// The `Host` header / SigV4 host.
    pub authority: String,
    /// The full base URL (`https://host:port`), no trailing slash.
    pub base: String,
    server_name: ServerName<'static>,
    connector: TlsConnector,
}

impl HttpsEndpoint {
    /// Parses `https://host:port` and binds it to a TLS configuration.
    pub fn new(url: &str, tls: Arc<rustls::ClientConfig>) -> anyhow::Result<Self> {
        let uri: Uri = url
            .parse()
            .with_context(|| format!("invalid URL {url:?}"))?;
        if uri.scheme_str() != Some("https") {
            anyhow::bail!("{url}: only https:// endpoints are measured");
        }
        let host = uri.host().context("URL without host")?.to_string();
        let port = uri.port_u16().unwrap_or(443);
        let server_name = ServerName::try_from(host.trim_matches(['[', ']']).to_string())
            .with_context(|| format!("invalid TLS server name {host:?}"))?;
        Ok(HttpsEndpoint {
            addr: format!("{host}:{port}"),
            authority: format!("{host}:{port}"),
            base: format!("https://{host}:{port}"),
            server_name,
            connector: TlsConnector::from(tls),
        })
    }

    /// A connection that dials on first use.
    pub fn conn(&self) -> HttpsConn {
        HttpsConn {
            endpoint: self.clone(),
            sender: None,
        }
    }
}

/// One kept-alive HTTP/1.1 connection.
pub struct HttpsConn {
    endpoint: HttpsEndpoint,
    sender: Option<hyper::client::conn::http1::SendRequest<Full<Bytes>>>,
}

/// The status and body of an answer.
pub struct Answer {
    /// HTTP status.
    pub status: http::StatusCode,
    /// The whole body.
    pub body: Bytes,
}

impl HttpsConn {
    /// Dials now (setup does, so the measured window does not pay for handshakes).
    pub async fn connect(&mut self) -> Result<(), String> {
        if self.sender.as_ref().is_some_and(|s| !s.is_closed()) {
            return Ok(());
        }
        let tcp = TcpStream::connect(&self.endpoint.addr)
            .await
            .map_err(|e| format!("transport: connect: {}", e.kind()))?;
        let _ = tcp.set_nodelay(true);
        let tls = self
            .endpoint
            .connector
            .connect(self.endpoint.server_name.clone(), tcp)
            .await
            .map_err(|e| format!("transport: tls: {}", short(&e.to_string())))?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| format!("transport: http: {}", short(&e.to_string())))?;
        tokio::spawn(async move {
            // Ends when the connection closes; the next send sees a closed sender.
            let _ = conn.await;
        });
        self.sender = Some(sender);
        Ok(())
    }

    /// Sends one request and reads the whole answer. Errors are short kinds for the table.
    pub async fn send(&mut self, req: Request<Full<Bytes>>) -> Result<Answer, String> {
        self.connect().await?;
        let sender = self.sender.as_mut().expect("connected above");
        let result = async {
            sender
                .ready()
                .await
                .map_err(|e| format!("transport: http: {}", short(&e.to_string())))?;
            let resp = sender
                .send_request(req)
                .await
                .map_err(|e| format!("transport: http: {}", short(&e.to_string())))?;
            let status = resp.status();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| format!("transport: body: {}", short(&e.to_string())))?
                .to_bytes();
            Ok(Answer { status, body })
        }
        .await;
        if result.is_err() {
            self.sender = None;
        }
        result
    }
}

/// Error kinds are table rows: keep them short and free of per-call detail.
pub fn short(s: &str) -> String {
    let s: String = s.chars().take(60).collect();
    s.replace(char::is_numeric, "#")
}
