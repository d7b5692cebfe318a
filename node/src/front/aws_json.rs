//! The AWS KMS JSON 1.1 endpoint over HTTPS.
//!
//! ```text
//! TLS (client cert optional, or required when strict; must chain to the CA)
//!  -> GET /healthz, /readyz, /status (Raft view + multi-region replication lag)
//!  -> POST /keyraft/replication: a peer region's delivery (front certificate + Ed25519
//!     signature of the source region; ops/multi_region.rs), no SigV4
//!  -> POST /  X-Amz-Target: TrentService.<Op> -> Operation   (else UnknownOperationException)
//!             X-Amz-Target: KeyraftIam.<Op>   -> IamOperation (identity management, iam.rs)
//!             X-Amz-Target: KeyraftAudit.<Op> -> AuditOperation (LookupEvents, audit_lookup.rs;
//!                                                GetAuditRecords/-Digests, MarkAuditExported,
//!                                                audit_export.rs)
//!     Content-Type application/x-amz-json-1.1, body <= 1 MiB
//!     SigV4: Authorization header -> access key (cache) -> secret (unwrapped) -> verify
//!     Kms::dispatch(caller, op, body)   (authorize -> handler, inside Kms; dispatch_iam for IAM)
//!     Kms::audit_call: one audit event per call whose caller is known (allowed or denied,
//!     succeeded or failed), committed before the answer; if it cannot be, KMSInternalException
//!  <- 200 JSON | {"__type", "message"} with the mapped status; x-amzn-RequestId always
//! ```

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use http::{header, HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use keystore::audit::{TlsDetails, UserIdentity};
use keystore::sigv4;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tracing::Instrument as _;

use super::audit::{identity_of, CallInfo};
use super::authz::Caller;
use super::errors::KmsError;
use super::operation::Operation;
use super::ops::multi_region::{PeerRoles, DELIVERY_PATH};
use super::ops::Kms;
use super::ops::{AuditOperation, IamOperation};

/// Largest request body accepted.
pub const MAX_BODY: usize = 1024 * 1024;
/// The content type of the protocol.
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.1";
/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The service name in SigV4 credential scopes.
const SERVICE: &str = "kms";
/// How long a client may take to send request headers, and then the body.
const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections served at once; beyond it the listener stops accepting until one closes.
const MAX_CONNECTIONS: usize = 4096;

/// Builds the rustls server config: this front's certificate, HTTP/2 and HTTP/1.1, and a
/// client verifier over the CA (client certificates optional unless `strict`).
pub fn server_tls_config(
    tls: &raft::TlsFiles,
    strict: bool,
) -> anyhow::Result<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&tls.ca)
        .with_context(|| format!("reading CA {}", tls.ca.display()))?
    {
        roots
            .add(cert.context("parsing CA certificate")?)
            .context("adding CA certificate")?;
    }
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.cert)
        .with_context(|| format!("reading certificate {}", tls.cert.display()))?
        .collect::<Result<_, _>>()
        .context("parsing certificate chain")?;
    let key = PrivateKeyDer::from_pem_file(&tls.key)
        .with_context(|| format!("reading key {}", tls.key.display()))?;

    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    );
    let verifier = if strict {
        verifier
    } else {
        verifier.allow_unauthenticated()
    };
    let verifier = verifier
        .build()
        .context("building client certificate verifier")?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .context("front certificate and key")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Serves until `shutdown` resolves, then lets in-flight requests finish.
pub async fn serve(
    kms: Arc<Kms>,
    listener: TcpListener,
    acceptor: TlsAcceptor,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (tcp, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Per-connection accept errors (EMFILE, resets) must not stop the server.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // A reply written in several small segments must not wait for the client's delayed
        // ACK (see raft::tls::nodelay_incoming).
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(%peer, error = %e, "cannot set TCP_NODELAY");
        }
        // Reap finished connection tasks so the set does not grow without bound.
        while connections.try_join_next().is_some() {}
        let kms = kms.clone();
        let acceptor = acceptor.clone();
        let mut stop = stop_rx.clone();
        connections.spawn(async move {
            let _permit = permit;
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let tls_details = tls_details(tls.get_ref().1);
            // Roles of a verified client certificate (region-to-region deliveries).
            let peer_roles = PeerRoles(
                tls.get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|chain| chain.first())
                    .map(|leaf| super::ops::multi_region::uri_sans(leaf.as_ref()))
                    .unwrap_or_default(),
            );
            let service = hyper::service::service_fn(move |mut req: Request<_>| {
                let kms = kms.clone();
                // The client's address, for aws:SourceIp.
                req.extensions_mut().insert(ClientAddr(peer.ip()));
                // The TLS session, for the audit event's tlsDetails.
                req.extensions_mut().insert(tls_details.clone());
                req.extensions_mut().insert(peer_roles.clone());
                async move { Ok::<_, Infallible>(handle(&kms, req).await) }
            });
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(READ_TIMEOUT);
            builder.http2().timer(TokioTimer::new());
            let conn = builder.serve_connection(TokioIo::new(tls), service);
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                }
                _ = async { let _ = stop.wait_for(|s| *s).await; } => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(10), conn).await;
                }
            }
        });
    }
    let _ = stop_tx.send(true);
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// `tlsDetails` of a connection, in CloudTrail's spelling (`TLSv1.3`,
/// `TLS_AES_128_GCM_SHA256`); the host header is filled per request.
fn tls_details(conn: &rustls::ServerConnection) -> TlsDetails {
    let tls_version = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_string(),
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_string(),
        Some(v) => format!("{v:?}"),
        None => String::new(),
    };
    let cipher_suite = conn
        .negotiated_cipher_suite()
        .map(|s| match s.suite().as_str() {
            // rustls names TLS 1.3 suites `TLS13_*`; IANA (and CloudTrail) `TLS_*`.
            Some(name) => name.replacen("TLS13_", "TLS_", 1),
            None => format!("{:?}", s.suite()),
        })
        .unwrap_or_default();
    TlsDetails {
        tls_version,
        cipher_suite,
        client_provided_host_header: None,
    }
}

fn now_epoch_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// One request -> one response. Never fails: every error becomes an AWS JSON error.
pub async fn handle<B>(kms: &Kms, req: Request<B>) -> Response<Full<Bytes>>
where
    B: hyper::body::Body<Data = Bytes> + Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let request_id = uuid::Uuid::new_v4().to_string();
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/healthz") => return plain(StatusCode::OK, "ok", &request_id),
        (&Method::GET, "/status") => {
            let body = kms.cluster_status().await.to_string();
            let mut r = Response::new(Full::new(Bytes::from(body)));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
            return r;
        }
        (&Method::POST, DELIVERY_PATH) => {
            // Region-to-region: authenticated by the front certificate and the source
            // region's signature, not SigV4.
            let roles = req
                .extensions()
                .get::<PeerRoles>()
                .map(|r| r.0.clone())
                .unwrap_or_default();
            let body = tokio::time::timeout(
                READ_TIMEOUT,
                Limited::new(req.into_body(), MAX_BODY).collect(),
            )
            .await;
            let r = match body {
                Ok(Ok(b)) => kms.receive_delivery(&roles, &b.to_bytes()).await,
                _ => Err(KmsError::Serialization(
                    "Could not read the request body".into(),
                )),
            };
            return match r {
                Ok(body) => json(StatusCode::OK, body, &request_id),
                Err(e) => {
                    tracing::warn!(error = e.aws_type(), "replication delivery refused");
                    let status =
                        StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
                    json(status, e.to_json(), &request_id)
                }
            };
        }
        (&Method::GET, "/readyz") => {
            return if kms.ready().await {
                plain(StatusCode::OK, "ready", &request_id)
            } else {
                plain(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store unavailable",
                    &request_id,
                )
            };
        }
        _ => {}
    }
    let target = req
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let op = Operation::from_target(target);
    let iam_op = IamOperation::from_target(target);
    let audit_op = AuditOperation::from_target(target);
    let op_name = op
        .map(Operation::name)
        .or(iam_op.map(IamOperation::name))
        .or(audit_op.map(AuditOperation::name));
    let user_agent = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let source_ip = req.extensions().get::<ClientAddr>().map(|a| a.0);
    let tls = req.extensions().get::<TlsDetails>().cloned().map(|mut t| {
        t.client_provided_host_header = req
            .headers()
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .or(req.uri().authority().map(|a| a.as_str()))
            .map(str::to_owned);
        t
    });
    let span = tracing::info_span!(
        "kms",
        op = op
            .map(Operation::name)
            .or(iam_op.map(IamOperation::name))
            .or(audit_op.map(AuditOperation::name))
            .unwrap_or("unknown"),
        request_id = %request_id,
        key_id = tracing::field::Empty,
    );
    let result = async {
        let mut seen = Seen::default();
        let r = api_call(kms, op, iam_op, audit_op, req, &mut seen).await;
        // Every call whose caller is known gets exactly one event, allowed or denied,
        // succeeded or failed; it is committed before the answer (sync mode).
        let r = match (op_name, seen.identity.take()) {
            (Some(operation), Some(identity)) => {
                let request: Value = serde_json::from_slice(&seen.body).unwrap_or(Value::Null);
                let response = match &r {
                    Ok(body) => Ok(serde_json::from_slice::<Value>(body).unwrap_or(Value::Null)),
                    Err(e) => Err(e),
                };
                let call = CallInfo {
                    operation,
                    request_id: &request_id,
                    identity,
                    source_ip,
                    user_agent,
                    tls,
                    request: &request,
                };
                match kms
                    .audit_call(call, response.as_ref().map_err(|e| *e))
                    .await
                {
                    Ok(()) => r,
                    Err(e) => Err(e),
                }
            }
            _ => r,
        };
        match &r {
            Ok(_) => tracing::info!("ok"),
            Err(e) => tracing::info!(error = e.aws_type(), "refused"),
        }
        r
    }
    .instrument(span)
    .await;
    match result {
        Ok(body) => json(StatusCode::OK, body, &request_id),
        Err(e) => {
            let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
            json(status, e.to_json(), &request_id)
        }
    }
}

/// The TCP peer address of a request (a request extension set by the accept loop).
#[derive(Clone, Copy, Debug)]
pub struct ClientAddr(pub std::net::IpAddr);

/// The header a service identity names the principal it calls for with (`kms:ViaService`).
pub const ON_BEHALF_OF_HEADER: &str = "x-keyraft-on-behalf-of";

/// What the router learned of a call before it failed or finished, for its audit event.
#[derive(Default)]
struct Seen {
    /// The caller: set once SigV4 named a known access key (even if the signature then
    /// failed), replaced by the effective caller.
    identity: Option<UserIdentity>,
    /// The request body.
    body: Bytes,
}

/// Which API a target belongs to.
enum Route {
    /// `TrentService.<Op>`.
    Kms(Operation),
    /// `KeyraftIam.<Op>`.
    Iam(IamOperation),
    /// `KeyraftAudit.<Op>`.
    Audit(AuditOperation),
}

async fn api_call<B>(
    kms: &Kms,
    op: Option<Operation>,
    iam_op: Option<IamOperation>,
    audit_op: Option<AuditOperation>,
    req: Request<B>,
    seen: &mut Seen,
) -> Result<Vec<u8>, KmsError>
where
    B: hyper::body::Body<Data = Bytes> + Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if req.method() != Method::POST || req.uri().path() != "/" {
        return Err(KmsError::UnknownOperation(String::new()));
    }
    let route = match (op, iam_op, audit_op) {
        (Some(op), _, _) => Route::Kms(op),
        (None, Some(iam_op), _) => Route::Iam(iam_op),
        (None, None, Some(audit_op)) => Route::Audit(audit_op),
        (None, None, None) => {
            let target = req
                .headers()
                .get("x-amz-target")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            return Err(match Operation::unsupported_aws_operation(target) {
                Some(name) => KmsError::UnsupportedOperation(format!(
                    "{name} is not supported by this endpoint yet."
                )),
                None => KmsError::UnknownOperation(String::new()),
            });
        }
    };
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = content_type.split(';').next().unwrap_or("").trim();
    if !media.eq_ignore_ascii_case(CONTENT_TYPE) {
        return Err(KmsError::Serialization(format!(
            "Content-Type must be {CONTENT_TYPE}"
        )));
    }
    if let Some(len) = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
    {
        if len.parse::<u64>().map_or(true, |n| n > MAX_BODY as u64) {
            return Err(too_large());
        }
    }
    let (parts, body) = req.into_parts();
    let collected = tokio::time::timeout(READ_TIMEOUT, Limited::new(body, MAX_BODY).collect())
        .await
        .map_err(|_| KmsError::Serialization("Timed out reading the request body".into()))?;
    let body = match collected {
        Ok(c) => c.to_bytes(),
        Err(e) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                return Err(too_large());
            }
            return Err(KmsError::Serialization(
                "Could not read the request body".into(),
            ));
        }
    };
    seen.body = body.clone();
    let (mut caller, access_key_id) = authenticate(kms, &parts, &body, seen).await?;
    caller.source_ip = parts.extensions.get::<ClientAddr>().map(|a| a.0);
    let on_behalf_of = match parts.headers.get(ON_BEHALF_OF_HEADER) {
        Some(v) => Some(v.to_str().map_err(|_| {
            KmsError::Validation(format!("{ON_BEHALF_OF_HEADER} is not valid ASCII"))
        })?),
        None => None,
    };
    let caller = kms.effective_caller(caller, on_behalf_of).await?;
    seen.identity = Some(identity_of(&caller, Some(&access_key_id), None));
    match route {
        Route::Kms(op) => kms.dispatch(&caller, op, &body).await,
        Route::Iam(op) => kms.dispatch_iam(&caller, op, &body).await,
        Route::Audit(op) => kms.dispatch_audit(&caller, op, &body).await,
    }
}

fn too_large() -> KmsError {
    KmsError::RequestTooLarge(format!("Request body exceeds {MAX_BODY} bytes"))
}

/// SigV4 -> the caller and its access key id. Scope and clock are checked before any store
/// read. Once the access key is known, `seen` names its principal (so a call with a bad
/// signature over a real access key is still audited).
async fn authenticate(
    kms: &Kms,
    parts: &http::request::Parts,
    body: &[u8],
    seen: &mut Seen,
) -> Result<(Caller, String), KmsError> {
    let auth = parts.headers.get(header::AUTHORIZATION).ok_or_else(|| {
        KmsError::MissingAuthenticationToken("Missing Authentication Token".into())
    })?;
    let auth = auth.to_str().map_err(|_| {
        KmsError::IncompleteSignature("Authorization header is not valid ASCII".into())
    })?;
    let auth = sigv4::parse_authorization(auth).map_err(sig_error)?;
    let headers = header_pairs(&parts.headers, parts.uri.authority().map(|a| a.as_str()));
    let pairs: Vec<(&str, &[u8])> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_slice()))
        .collect();
    let sreq = sigv4::Request {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query().unwrap_or(""),
        headers: &pairs,
        payload: body,
    };
    let exp = sigv4::Expectations {
        region: kms.region(),
        service: SERVICE,
        now_epoch_secs: now_epoch_secs(),
    };
    sigv4::precheck(&sreq, &auth, &exp).map_err(sig_error)?;
    let (record, secret) = kms
        .access_key_secret(&auth.access_key_id)
        .await?
        .ok_or_else(|| {
            KmsError::UnrecognizedClient(
                "The security token included in the request is invalid.".into(),
            )
        })?;
    let caller = Caller::from_principal_arn(&record.principal_arn)
        .filter(|c| c.account_id == record.account_id)
        .ok_or_else(|| {
            tracing::error!("an access key names a principal that is not an IAM ARN");
            KmsError::internal()
        })?;
    seen.identity = Some(identity_of(&caller, Some(&auth.access_key_id), None));
    sigv4::verify(&sreq, &auth, secret.expose_secret(), &exp).map_err(sig_error)?;
    Ok((caller, auth.access_key_id.clone()))
}

/// Header pairs for SigV4; HTTP/2 carries the host in `:authority`, which hyper puts in the
/// URI rather than the header map.
fn header_pairs(headers: &HeaderMap, authority: Option<&str>) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = headers
        .iter()
        .map(|(n, v)| (n.as_str().to_string(), v.as_bytes().to_vec()))
        .collect();
    if !headers.contains_key(header::HOST) {
        if let Some(a) = authority {
            out.push(("host".into(), a.as_bytes().to_vec()));
        }
    }
    out
}

fn sig_error(e: sigv4::SigV4Error) -> KmsError {
    match e {
        sigv4::SigV4Error::Incomplete(m) => KmsError::IncompleteSignature(m),
        sigv4::SigV4Error::Invalid(m) | sigv4::SigV4Error::Scope(m) => {
            KmsError::InvalidSignature(m)
        }
    }
}

fn json(status: StatusCode, body: Vec<u8>, request_id: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static(CONTENT_TYPE),
    );
    if let Ok(v) = http::HeaderValue::from_str(request_id) {
        h.insert("x-amzn-requestid", v);
    }
    r
}

fn plain(status: StatusCode, text: &'static str, request_id: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    if let Ok(v) = http::HeaderValue::from_str(request_id) {
        r.headers_mut().insert("x-amzn-requestid", v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certs::{write_pair, DevCa};
    use rcgen::ExtendedKeyUsagePurpose;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

    struct Pki {
        _dir: tempfile::TempDir,
        files: raft::TlsFiles,
        ca: DevCa,
    }

    fn pki() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let ca = DevCa::generate("test CA").unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.cert_pem()).unwrap();
        let front = write_pair(
            dir.path(),
            "front",
            ca.issue_server("front", &["localhost"]).unwrap(),
        )
        .unwrap();
        let files = raft::TlsFiles {
            ca: dir.path().join("ca.pem"),
            cert: front.cert,
            key: front.key,
        };
        Pki {
            _dir: dir,
            files,
            ca,
        }
    }

    /// Runs one handshake in memory; returns whether the server accepted it.
    async fn handshake(
        server: rustls::ServerConfig,
        ca_pem: &str,
        client_cert: Option<(String, String)>,
    ) -> bool {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
            .unwrap();
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let client = match client_cert {
            Some((cert, key)) => builder
                .with_client_auth_cert(
                    vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()],
                    PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
                )
                .unwrap(),
            None => builder.with_no_client_auth(),
        };
        let (c, s) = tokio::io::duplex(64 * 1024);
        let acceptor = TlsAcceptor::from(Arc::new(server));
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
        let name = ServerName::try_from("localhost").unwrap();
        let (server_side, _client_side) =
            tokio::join!(acceptor.accept(s), connector.connect(name, c));
        server_side.is_ok()
    }

    #[tokio::test]
    async fn client_certificates_are_optional_unless_strict() {
        let p = pki();
        let ca = p.ca.cert_pem();
        let lax = || server_tls_config(&p.files, false).unwrap();
        let strict = || server_tls_config(&p.files, true).unwrap();
        let good = || {
            Some(
                p.ca.issue_client("arn:aws:iam::111122223333:role/App")
                    .unwrap(),
            )
        };
        assert!(handshake(lax(), &ca, None).await);
        assert!(handshake(lax(), &ca, good()).await);
        assert!(!handshake(strict(), &ca, None).await);
        assert!(handshake(strict(), &ca, good()).await);
    }

    #[tokio::test]
    async fn presented_certificates_must_chain_to_the_ca_and_allow_client_auth() {
        let p = pki();
        let ca = p.ca.cert_pem();
        let stranger = DevCa::generate("other CA")
            .unwrap()
            .issue_client("arn:aws:iam::111122223333:root")
            .unwrap();
        assert!(
            !handshake(
                server_tls_config(&p.files, false).unwrap(),
                &ca,
                Some(stranger)
            )
            .await
        );
        let server_only =
            p.ca.issue_client_with_eku(
                "arn:aws:iam::111122223333:root",
                vec![ExtendedKeyUsagePurpose::ServerAuth],
            )
            .unwrap();
        assert!(
            !handshake(
                server_tls_config(&p.files, true).unwrap(),
                &ca,
                Some(server_only)
            )
            .await
        );
    }

    #[test]
    fn missing_tls_files_are_reported() {
        let files = raft::TlsFiles {
            ca: "/nonexistent/ca.pem".into(),
            cert: "/x".into(),
            key: "/y".into(),
        };
        let e = server_tls_config(&files, false).unwrap_err();
        assert!(format!("{e:#}").contains("/nonexistent/ca.pem"));
    }
}
