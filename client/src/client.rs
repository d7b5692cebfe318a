//! The typed client: endpoint failover and the retry loop every operation goes through.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::config::{normalize_endpoint, ClientBuilder};
use crate::error::Error;
use crate::proto::audit_client::AuditClient;
use crate::proto::iam_client::IamClient;
use crate::proto::kms_client::KmsClient;
use crate::retry::RetryPolicy;

/// Largest message sent or accepted; the server's limit too. A full batch (1000 items of
/// 4 KiB) is above tonic's 4 MiB default.
const MAX_MESSAGE: usize = 16 * 1024 * 1024;

/// A keyraft KMS client. Cheap to clone (shares connections); safe to use from many tasks.
///
/// ```no_run
/// # async fn demo() -> Result<(), client::Error> {
/// let kms = client::Client::from_env()?;
/// let out = kms
///     .encrypt()
///     .key_id("alias/app")
///     .plaintext(b"secret".to_vec())
///     .encryption_context("purpose", "demo")
///     .send()
///     .await?;
/// let back = kms
///     .decrypt()
///     .ciphertext_blob(out.ciphertext_blob)
///     .encryption_context("purpose", "demo")
///     .send()
///     .await?;
/// assert_eq!(back.plaintext, b"secret");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    fronts: Vec<Front>,
    /// Index of the front calls go to first; moves on when a front fails.
    current: AtomicUsize,
    retry: RetryPolicy,
    region: Option<String>,
}

struct Front {
    uri: String,
    rpc: KmsClient<Channel>,
    // The same connection, for the other services (`Iam`).
    channel: Channel,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("endpoints", &self.endpoints())
            .field("region", &self.inner.region)
            .field("retry", &self.inner.retry)
            .finish()
    }
}

impl Client {
    /// An empty builder.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::new()
    }

    /// A client configured from the `KMS_*` environment variables.
    pub fn from_env() -> Result<Client, Error> {
        ClientBuilder::from_env().build()
    }

    /// The configured endpoints, in failover order.
    pub fn endpoints(&self) -> Vec<&str> {
        self.inner.fronts.iter().map(|f| f.uri.as_str()).collect()
    }

    /// The configured region, if any.
    pub fn region(&self) -> Option<&str> {
        self.inner.region.as_deref()
    }

    pub(crate) fn from_builder(b: ClientBuilder) -> Result<Client, Error> {
        // tonic's lazy channels spawn their worker task right away.
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::config(
                "the client must be built inside a tokio runtime",
            ));
        }
        if b.endpoints.is_empty() {
            return Err(Error::config(
                "no endpoint configured (set KMS_GRPC_ENDPOINT or call .endpoint())",
            ));
        }
        let tls = b.load_tls()?.map(|m| {
            let mut cfg = ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(m.ca))
                .identity(Identity::from_pem(m.cert, m.key));
            if let Some(name) = &b.server_name {
                cfg = cfg.domain_name(name.clone());
            }
            cfg
        });
        let mut fronts = Vec::with_capacity(b.endpoints.len());
        for e in &b.endpoints {
            let uri = normalize_endpoint(e);
            let mut endpoint = Endpoint::from_shared(uri.clone())
                .map_err(|err| Error::config(format!("invalid endpoint {uri:?}: {err}")))?
                .connect_timeout(b.connect_timeout)
                .timeout(b.request_timeout)
                .tcp_nodelay(true);
            if uri.starts_with("https://") {
                let tls = tls.clone().ok_or_else(|| {
                    Error::config(format!(
                        "{uri} needs mTLS: set a CA bundle, client certificate and client key \
                         (KMS_CA_BUNDLE, KMS_CLIENT_CERT, KMS_CLIENT_KEY)"
                    ))
                })?;
                endpoint = endpoint.tls_config(tls).map_err(|err| {
                    Error::config(format!("invalid TLS configuration for {uri}: {err}"))
                })?;
            }
            let channel = endpoint.connect_lazy();
            fronts.push(Front {
                uri,
                rpc: KmsClient::new(channel.clone())
                    .max_decoding_message_size(MAX_MESSAGE)
                    .max_encoding_message_size(MAX_MESSAGE),
                channel,
            });
        }
        Ok(Client {
            inner: Arc::new(Inner {
                fronts,
                current: AtomicUsize::new(0),
                retry: b.retry,
                region: b.region,
            }),
        })
    }

    /// Runs one RPC with failover and retries.
    ///
    /// A retryable failure that says "this front cannot answer" (connection error,
    /// Unavailable) first moves on to fronts not yet tried in this call, immediately. Once
    /// every front has been tried, each further attempt sleeps a full-jitter backoff, up to
    /// `max_attempts`. Non-retryable errors are returned at once.
    pub(crate) async fn call<Req, Resp, F, Fut>(
        &self,
        op: &'static str,
        req: Req,
        rpc: F,
    ) -> Result<Resp, Error>
    where
        Req: Clone,
        F: Fn(KmsClient<Channel>, Req) -> Fut,
        Fut: Future<Output = Result<tonic::Response<Resp>, tonic::Status>>,
    {
        self.call_indexed(op, req, |_, client, req| rpc(client, req))
            .await
    }

    /// [`Client::call`] for the `Iam` service: same failover and retries.
    pub(crate) async fn call_iam<Req, Resp, F, Fut>(
        &self,
        op: &'static str,
        req: Req,
        rpc: F,
    ) -> Result<Resp, Error>
    where
        Req: Clone,
        F: Fn(IamClient<Channel>, Req) -> Fut,
        Fut: Future<Output = Result<tonic::Response<Resp>, tonic::Status>>,
    {
        self.call_on(
            op,
            req,
            |front| {
                IamClient::new(front.channel.clone())
                    .max_decoding_message_size(MAX_MESSAGE)
                    .max_encoding_message_size(MAX_MESSAGE)
            },
            |_, client, req| rpc(client, req),
        )
        .await
    }

    /// [`Client::call`] for the `Audit` service: same failover and retries.
    pub(crate) async fn call_audit<Req, Resp, F, Fut>(
        &self,
        op: &'static str,
        req: Req,
        rpc: F,
    ) -> Result<Resp, Error>
    where
        Req: Clone,
        F: Fn(AuditClient<Channel>, Req) -> Fut,
        Fut: Future<Output = Result<tonic::Response<Resp>, tonic::Status>>,
    {
        self.call_on(
            op,
            req,
            |front| {
                AuditClient::new(front.channel.clone())
                    .max_decoding_message_size(MAX_MESSAGE)
                    .max_encoding_message_size(MAX_MESSAGE)
            },
            |_, client, req| rpc(client, req),
        )
        .await
    }

    /// [`Client::call`] with the index of the front tried passed to `rpc` (for tests).
    async fn call_indexed<Req, Resp, F, Fut>(
        &self,
        op: &'static str,
        req: Req,
        rpc: F,
    ) -> Result<Resp, Error>
    where
        Req: Clone,
        F: Fn(usize, KmsClient<Channel>, Req) -> Fut,
        Fut: Future<Output = Result<tonic::Response<Resp>, tonic::Status>>,
    {
        self.call_on(op, req, |front| front.rpc.clone(), rpc).await
    }

    /// The failover and retry loop over any service client `client_of` makes for a front.
    async fn call_on<Req, Resp, C, M, F, Fut>(
        &self,
        op: &'static str,
        req: Req,
        client_of: M,
        rpc: F,
    ) -> Result<Resp, Error>
    where
        Req: Clone,
        M: Fn(&Front) -> C,
        F: Fn(usize, C, Req) -> Fut,
        Fut: Future<Output = Result<tonic::Response<Resp>, tonic::Status>>,
    {
        let n = self.inner.fronts.len();
        let mut idx = self.inner.current.load(Ordering::Relaxed) % n;
        let mut tried = vec![false; n];
        let mut attempt = 1u32;
        // When giving up, an answer from a front says more than a front that did not answer.
        let mut last_service_error: Option<Error> = None;
        loop {
            tried[idx] = true;
            let front = &self.inner.fronts[idx];
            let err = match rpc(idx, client_of(front), req.clone()).await {
                Ok(resp) => return Ok(resp.into_inner()),
                Err(status) => Error::from(status),
            };
            if !err.is_retryable() {
                return Err(err);
            }
            tracing::debug!(op, endpoint = %front.uri, attempt, error_type = err.error_type(),
                "retryable error");
            let fail_over = err.should_fail_over();
            let err = match err {
                Error::Service { .. } => last_service_error.insert(err).clone(),
                other => last_service_error.clone().unwrap_or(other),
            };
            if fail_over {
                idx = (idx + 1) % n;
                // Remember for later calls, unless another call already moved on.
                let _ = self.inner.current.compare_exchange(
                    (idx + n - 1) % n,
                    idx,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
                if !tried[idx] {
                    continue;
                }
            }
            if attempt >= self.inner.retry.max_attempts {
                return Err(err);
            }
            let sleep = self.inner.retry.backoff(attempt, &mut rand::thread_rng());
            attempt += 1;
            tokio::time::sleep(sleep).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::Mutex;
    use std::time::Duration;

    fn status(code: tonic::Code, error_type: Option<&str>) -> tonic::Status {
        let mut s = tonic::Status::new(code, "scripted");
        if let Some(t) = error_type {
            s.metadata_mut()
                .insert(crate::ERROR_TYPE_METADATA_KEY, t.parse().unwrap());
        }
        s
    }

    /// A client over `n` fronts that are never dialled: `call_indexed` is driven by a script.
    fn scripted_client(n: usize, max_attempts: u32) -> Client {
        Client::builder()
            .endpoints((0..n).map(|i| format!("http://front-{i}.invalid:1")))
            .retry_policy(RetryPolicy {
                max_attempts,
                initial_backoff: Duration::from_millis(1),
                max_backoff: Duration::from_millis(2),
            })
            .build()
            .unwrap()
    }

    /// Runs one call where front `i` answers `script(i, nth call to it)`; returns the result
    /// and the fronts tried, in order.
    async fn run_script(
        kms: &Client,
        script: impl Fn(usize, usize) -> Result<(), tonic::Status>,
    ) -> (Result<(), Error>, Vec<usize>) {
        let log = Mutex::new(Vec::new());
        let result = kms
            .call_indexed("Test", (), |i, _, ()| {
                let nth = {
                    let mut log = log.lock().unwrap();
                    log.push(i);
                    log.iter().filter(|&&j| j == i).count() - 1
                };
                let r = script(i, nth).map(tonic::Response::new);
                async move { r }
            })
            .await;
        (result, log.into_inner().unwrap())
    }

    #[tokio::test]
    async fn a_dead_front_fails_over_at_once_and_later_calls_start_at_the_live_one() {
        let kms = scripted_client(3, 3);
        let (r, tried) = run_script(&kms, |i, _| match i {
            0 => Err(status(tonic::Code::Unavailable, None)),
            _ => Ok(()),
        })
        .await;
        assert!(r.is_ok());
        assert_eq!(tried, vec![0, 1]);
        let (_, tried) = run_script(&kms, |_, _| Ok(())).await;
        assert_eq!(
            tried,
            vec![1],
            "the next call goes straight to the front that answered"
        );
    }

    #[tokio::test]
    async fn non_retryable_errors_are_returned_after_one_attempt() {
        let kms = scripted_client(2, 5);
        for t in [
            "ValidationException",
            "NotFoundException",
            "AccessDeniedException",
        ] {
            let (r, tried) = run_script(&kms, |_, _| {
                Err(status(tonic::Code::InvalidArgument, Some(t)))
            })
            .await;
            assert_eq!(r.unwrap_err().error_type(), t);
            assert_eq!(tried.len(), 1, "{t} must not be retried");
        }
    }

    #[tokio::test]
    async fn internal_errors_are_retried_on_the_same_front_up_to_max_attempts() {
        let kms = scripted_client(2, 3);
        let (r, tried) = run_script(&kms, |_, _| {
            Err(status(tonic::Code::Internal, Some("KMSInternalException")))
        })
        .await;
        assert_eq!(r.unwrap_err().error_type(), "KMSInternalException");
        assert_eq!(tried, vec![0, 0, 0]);
    }

    #[tokio::test]
    async fn a_transient_error_then_success_succeeds() {
        let kms = scripted_client(1, 3);
        let (r, tried) = run_script(&kms, |_, nth| match nth {
            0 => Err(status(
                tonic::Code::Unavailable,
                Some("DependencyTimeoutException"),
            )),
            _ => Ok(()),
        })
        .await;
        assert!(r.is_ok());
        assert_eq!(tried, vec![0, 0]);
    }

    #[tokio::test]
    async fn giving_up_reports_a_fronts_answer_over_a_dead_front() {
        let kms = scripted_client(2, 2);
        let (r, tried) = run_script(&kms, |i, _| match i {
            0 => Err(status(
                tonic::Code::Unavailable,
                Some("DependencyTimeoutException"),
            )),
            _ => Err(status(tonic::Code::Unavailable, None)),
        })
        .await;
        assert_eq!(r.unwrap_err().error_type(), "DependencyTimeoutException");
        // Front 0 (attempt 1), free failover to untried front 1, then one backoff and
        // attempt 2 on front 0; then max_attempts (2) is spent.
        assert_eq!(tried, vec![0, 1, 0]);
    }

    #[test]
    fn building_outside_a_runtime_is_an_error_not_a_panic() {
        let err = Client::builder()
            .endpoint("http://127.0.0.1:1")
            .build()
            .unwrap_err();
        assert_eq!(err.error_type(), "ConfigError");
    }

    #[tokio::test]
    async fn build_without_endpoint_is_a_config_error() {
        let err = Client::builder().build().unwrap_err();
        assert_eq!(err.error_type(), "ConfigError");
    }

    #[tokio::test]
    async fn https_endpoint_without_tls_material_is_a_config_error() {
        let err = Client::builder()
            .endpoint("127.0.0.1:1")
            .build()
            .unwrap_err();
        assert!(err.message().contains("mTLS"), "{err}");
    }

    #[tokio::test]
    async fn unreachable_fronts_fail_over_then_give_up_with_a_transport_error() {
        // Two ports nothing listens on: both fronts are tried, then backoff rounds.
        let ports: Vec<u16> = (0..2)
            .map(|_| {
                let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                l.local_addr().unwrap().port()
            })
            .collect();
        let kms = Client::builder()
            .endpoints(ports.iter().map(|p| format!("http://127.0.0.1:{p}")))
            .retry_policy(RetryPolicy {
                max_attempts: 2,
                initial_backoff: std::time::Duration::from_millis(1),
                max_backoff: std::time::Duration::from_millis(5),
            })
            .build()
            .unwrap();
        let err = kms
            .generate_random()
            .number_of_bytes(8)
            .send()
            .await
            .unwrap_err();
        assert_eq!(err.error_type(), "TransportError");
        assert!(err.is_retryable());
    }
}
