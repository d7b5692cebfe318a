//! The transport floors: servers that do nothing but answer, started in this process with
//! the front's own certificate, so a keyraft figure can be read as a fraction of what TLS,
//! HTTP and this machine allow.
//!
//! ```text
//! echo-grpc   tonic server, mTLS required (as the front's gRPC), unary Echo(payload) -> payload
//! echo-https  hyper (HTTP/1.1 + h2) over rustls, client cert optional (as the front's JSON
//!             endpoint), POST / -> the request body, as application/x-amz-json-1.1
//! ```

use std::convert::Infallible;
use std::sync::Arc;

use anyhow::Context;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tonic::transport::{
    Certificate, Channel, ClientTlsConfig, Endpoint, Identity, Server, ServerTlsConfig,
};

use super::{payload, CallFuture, Conn, ConnFuture, Target, TargetOptions};
use crate::config::Endpoints;
use crate::ops::Call;

/// The generated echo service.
#[allow(missing_docs, clippy::all)]
pub mod pb {
    tonic::include_proto!("keyraft.bench.v1");
}

/// A running echo server; stopped when dropped.
pub struct EchoServer {
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    task: JoinHandle<()>,
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct EchoSvc;

#[tonic::async_trait]
impl pb::echo_server::Echo for EchoSvc {
    async fn echo(
        &self,
        request: tonic::Request<pb::EchoMessage>,
    ) -> Result<tonic::Response<pb::EchoMessage>, tonic::Status> {
        Ok(tonic::Response::new(request.into_inner()))
    }
}

fn server_files(
    e: &Endpoints,
) -> anyhow::Result<(&std::path::Path, &std::path::Path, &std::path::Path)> {
    Ok((
        Endpoints::need(
            &e.echo_cert,
            "echo server certificate (--echo-cert; dev: front.pem)",
        )?,
        Endpoints::need(&e.echo_key, "echo server key (--echo-key; dev: front.key)")?,
        Endpoints::need(&e.ca, "CA bundle (KMS_CA_BUNDLE)")?,
    ))
}

impl EchoServer {
    /// Starts the tonic mTLS echo on an ephemeral loopback port.
    pub async fn start_grpc(e: &Endpoints) -> anyhow::Result<EchoServer> {
        let (cert, key, ca) = server_files(e)?;
        let read = |p: &std::path::Path| {
            std::fs::read(p).with_context(|| format!("reading {}", p.display()))
        };
        let tls = ServerTlsConfig::new()
            .identity(Identity::from_pem(read(cert)?, read(key)?))
            .client_ca_root(Certificate::from_pem(read(ca)?))
            .client_auth_optional(false);
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("https://127.0.0.1:{}", listener.local_addr()?.port());
        let incoming = {
            use futures::StreamExt;
            tokio_stream::wrappers::TcpListenerStream::new(listener).map(|c| {
                if let Ok(s) = &c {
                    let _ = s.set_nodelay(true);
                }
                c
            })
        };
        let router = Server::builder()
            .tls_config(tls)
            .context("echo gRPC TLS")?
            .add_service(pb::echo_server::EchoServer::new(EchoSvc));
        let task = tokio::spawn(async move {
            if let Err(e) = router.serve_with_incoming(incoming).await {
                eprintln!("echo-grpc server stopped: {e}");
            }
        });
        Ok(EchoServer { url, task })
    }

    /// Starts the hyper + rustls HTTPS echo on an ephemeral loopback port.
    pub async fn start_https(e: &Endpoints) -> anyhow::Result<EchoServer> {
        let (cert, key, ca) = server_files(e)?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        {
            use rustls::pki_types::pem::PemObject;
            for c in rustls::pki_types::CertificateDer::pem_file_iter(ca)? {
                roots.add(c?)?;
            }
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .allow_unauthenticated()
        .build()?;
        let (chain, key) = crate::https::read_identity(cert, key)?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("https://127.0.0.1:{}", listener.local_addr()?.port());
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let _ = tcp.set_nodelay(true);
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(
                        |req: http::Request<hyper::body::Incoming>| async move {
                            let body = req
                                .into_body()
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            Ok::<_, Infallible>(
                                http::Response::builder()
                                    .header(
                                        http::header::CONTENT_TYPE,
                                        "application/x-amz-json-1.1",
                                    )
                                    .body(Full::new(body))
                                    .expect("static response"),
                            )
                        },
                    );
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Ok(EchoServer { url, task })
    }
}

/// The gRPC floor's client: a bare tonic client with the same mTLS identity as the SDK.
pub struct EchoGrpcTarget {
    endpoint: Endpoint,
    payload: Bytes,
}

impl EchoGrpcTarget {
    /// A client of the echo at `url`, sending `payload_bytes` each way.
    pub fn new(opts: &TargetOptions, url: &str) -> anyhow::Result<Self> {
        let e = &opts.endpoints;
        let read = |p: &Option<std::path::PathBuf>, what: &str| -> anyhow::Result<Vec<u8>> {
            let p = Endpoints::need(p, what)?;
            std::fs::read(p).with_context(|| format!("reading {}", p.display()))
        };
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(read(&e.ca, "CA bundle")?))
            .identity(Identity::from_pem(
                read(&e.client_cert, "client certificate (KMS_CLIENT_CERT)")?,
                read(&e.client_key, "client key (KMS_CLIENT_KEY)")?,
            ));
        let endpoint = Endpoint::from_shared(url.to_string())?
            .tls_config(tls)?
            .tcp_nodelay(true);
        Ok(EchoGrpcTarget {
            endpoint,
            payload: Bytes::from(payload(opts.payload_bytes)),
        })
    }
}

struct EchoGrpcConn {
    rpc: pb::echo_client::EchoClient<Channel>,
    payload: Bytes,
}

impl Target for EchoGrpcTarget {
    fn conn(&self) -> ConnFuture<'_> {
        Box::pin(async move {
            // One channel (HTTP/2 connection) per client, as the SDK target has.
            let channel = self
                .endpoint
                .connect()
                .await
                .context("connecting to echo-grpc")?;
            Ok(Box::new(EchoGrpcConn {
                rpc: pb::echo_client::EchoClient::new(channel),
                payload: self.payload.clone(),
            }) as Box<dyn Conn>)
        })
    }
}

impl Conn for EchoGrpcConn {
    fn call(&mut self, _call: Call, _seq: u64) -> CallFuture<'_> {
        Box::pin(async move {
            let out = self
                .rpc
                .echo(pb::EchoMessage {
                    payload: self.payload.to_vec(),
                })
                .await
                .map_err(|s| format!("{:?}", s.code()))?
                .into_inner();
            if out.payload.len() == self.payload.len() {
                Ok(())
            } else {
                Err("echo: payload differs".into())
            }
        })
    }
}
