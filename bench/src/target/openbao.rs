//! OpenBao's transit engine over HTTPS with a token, through the same HTTPS client as the
//! keyraft JSON target (one kept-alive HTTP/1.1 connection per client).
//!
//! | call              | request                                                   |
//! |-------------------|-----------------------------------------------------------|
//! | encrypt           | POST /v1/transit/encrypt/K        {"plaintext": b64}      |
//! | decrypt           | POST /v1/transit/decrypt/K        {"ciphertext": "bao:v1:.."} |
//! | generate-data-key | POST /v1/transit/datakey/plaintext/K {"bits": 256}        |
//! | sign              | POST /v1/transit/sign/S/sha2-256  {"input": b64} (ecdsa-p256) |
//! | create-key        | POST /v1/transit/keys/NEW         {"type": "aes256-gcm96"} |
//! | describe-key      | GET  /v1/transit/keys/K                                   |

use anyhow::{bail, Context};
use base64::Engine as _;
use http::Request;
use http_body_util::Full;
use hyper::body::Bytes;
use serde_json::{json, Value};

use super::json::str_at;
use super::{payload, CallFuture, Conn, ConnFuture, Target, TargetOptions};
use crate::config::{Endpoints, SecretString};
use crate::https::{client_tls, HttpsConn, HttpsEndpoint};
use crate::ops::Call;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The OpenBao transit target.
#[derive(Clone)]
pub struct OpenbaoTarget {
    endpoint: HttpsEndpoint,
    token: SecretString,
    key: String,
    sign_key: String,
    plaintext_b64: String,
    encrypt_body: Bytes,
    decrypt_body: Bytes,
    sign_body: Bytes,
    run_id: String,
}

impl OpenbaoTarget {
    /// Connects and creates the transit keys (and a ciphertext) the op needs. Transit must be
    /// mounted at `transit/` (`bao secrets enable transit`).
    pub async fn prepare(opts: &TargetOptions) -> anyhow::Result<Self> {
        let e = &opts.endpoints;
        let url = Endpoints::need(
            &e.openbao_addr,
            "OpenBao address (--openbao-addr / BAO_ADDR)",
        )?;
        let ca = Endpoints::need(&e.openbao_ca, "OpenBao CA (--openbao-ca / BAO_CACERT)")?;
        let token = Endpoints::need(&e.openbao_token, "OpenBao token (BAO_TOKEN)")?.clone();
        let endpoint = HttpsEndpoint::new(url, client_tls(ca, None)?)?;
        let plaintext_b64 = B64.encode(payload(opts.payload_bytes));
        let mut t = OpenbaoTarget {
            endpoint,
            token,
            key: format!("bench-{}", opts.run_id),
            sign_key: format!("bench-{}-sign", opts.run_id),
            encrypt_body: Bytes::from(json!({ "plaintext": plaintext_b64 }).to_string()),
            decrypt_body: Bytes::new(),
            sign_body: Bytes::from(json!({ "input": plaintext_b64 }).to_string()),
            plaintext_b64,
            run_id: opts.run_id.clone(),
        };
        let mut conn = t.endpoint.conn();
        let calls = opts.op.calls();
        if calls
            .iter()
            .any(|c| *c != Call::CreateKey && *c != Call::Sign)
        {
            t.setup(
                &mut conn,
                format!("/v1/transit/keys/{}", t.key),
                json!({"type": "aes256-gcm96"}),
            )
            .await?;
        }
        if calls.contains(&Call::Sign) {
            t.setup(
                &mut conn,
                format!("/v1/transit/keys/{}", t.sign_key),
                json!({"type": "ecdsa-p256"}),
            )
            .await?;
        }
        if calls.contains(&Call::Decrypt) {
            let out = t
                .setup(
                    &mut conn,
                    format!("/v1/transit/encrypt/{}", t.key),
                    json!({"plaintext": t.plaintext_b64}),
                )
                .await?;
            let ct = str_at(&out, &["data", "ciphertext"])?.to_string();
            t.decrypt_body = Bytes::from(json!({ "ciphertext": ct }).to_string());
        }
        Ok(t)
    }

    async fn setup(
        &self,
        conn: &mut HttpsConn,
        path: String,
        body: Value,
    ) -> anyhow::Result<Value> {
        let req = self.request(http::Method::POST, &path, Bytes::from(body.to_string()))?;
        let answer = conn.send(req).await.map_err(anyhow::Error::msg)?;
        let v: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
        if !answer.status.is_success() {
            bail!("setup POST {path}: HTTP {} {v}", answer.status);
        }
        Ok(v)
    }

    fn request(
        &self,
        method: http::Method,
        path: &str,
        body: Bytes,
    ) -> anyhow::Result<Request<Full<Bytes>>> {
        Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, &self.endpoint.authority)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header("x-vault-token", self.token.expose_secret())
            .body(Full::new(body))
            .context("building request")
    }

    fn call_request(&self, call: Call, seq: u64) -> anyhow::Result<Request<Full<Bytes>>> {
        use http::Method;
        let (k, s) = (&self.key, &self.sign_key);
        match call {
            Call::Encrypt => self.request(
                Method::POST,
                &format!("/v1/transit/encrypt/{k}"),
                self.encrypt_body.clone(),
            ),
            Call::Decrypt => self.request(
                Method::POST,
                &format!("/v1/transit/decrypt/{k}"),
                self.decrypt_body.clone(),
            ),
            Call::GenerateDataKey => self.request(
                Method::POST,
                &format!("/v1/transit/datakey/plaintext/{k}"),
                Bytes::from_static(b"{\"bits\":256}"),
            ),
            Call::Sign => self.request(
                Method::POST,
                &format!("/v1/transit/sign/{s}/sha2-256"),
                self.sign_body.clone(),
            ),
            Call::CreateKey => self.request(
                Method::POST,
                &format!("/v1/transit/keys/bench-{}-{seq}", self.run_id),
                Bytes::from_static(b"{\"type\":\"aes256-gcm96\"}"),
            ),
            Call::DescribeKey => {
                self.request(Method::GET, &format!("/v1/transit/keys/{k}"), Bytes::new())
            }
        }
    }

    fn check(&self, call: Call, body: &[u8]) -> Result<(), String> {
        if call == Call::CreateKey {
            // 204 (older) or 200 with the key's description.
            return Ok(());
        }
        let v: Value = serde_json::from_slice(body).map_err(|_| "bad answer: not JSON")?;
        let s = |path: &[&str]| str_at(&v, path).map_err(|e| format!("bad answer: {e}"));
        match call {
            Call::Encrypt => s(&["data", "ciphertext"]).map(drop),
            Call::Decrypt => {
                if s(&["data", "plaintext"])? == self.plaintext_b64 {
                    Ok(())
                } else {
                    Err("bad answer: wrong plaintext".into())
                }
            }
            Call::GenerateDataKey => {
                s(&["data", "ciphertext"])?;
                match B64.decode(s(&["data", "plaintext"])?) {
                    Ok(k) if k.len() == 32 => Ok(()),
                    _ => Err("bad answer: data key is not 32 bytes".into()),
                }
            }
            Call::Sign => s(&["data", "signature"]).map(drop),
            Call::DescribeKey => {
                if s(&["data", "name"])? == self.key {
                    Ok(())
                } else {
                    Err("bad answer: another key".into())
                }
            }
            Call::CreateKey => Ok(()),
        }
    }
}

/// OpenBao's errors: the status and the first message, shortened (`{"errors": [..]}`).
fn error_kind(status: http::StatusCode, body: &[u8]) -> String {
    let first = serde_json::from_slice::<Value>(body).ok().and_then(|v| {
        v.get("errors")?
            .as_array()?
            .first()?
            .as_str()
            .map(crate::https::short)
    });
    match first {
        Some(m) => format!("HTTP {}: {m}", status.as_u16()),
        None => format!("HTTP {}", status.as_u16()),
    }
}

struct OpenbaoConn {
    target: OpenbaoTarget,
    conn: HttpsConn,
}

impl Target for OpenbaoTarget {
    fn conn(&self) -> ConnFuture<'_> {
        Box::pin(async move {
            let mut conn = self.endpoint.conn();
            conn.connect().await.map_err(anyhow::Error::msg)?;
            Ok(Box::new(OpenbaoConn {
                target: self.clone(),
                conn,
            }) as Box<dyn Conn>)
        })
    }
}

impl Conn for OpenbaoConn {
    fn call(&mut self, call: Call, seq: u64) -> CallFuture<'_> {
        Box::pin(async move {
            let req = self
                .target
                .call_request(call, seq)
                .map_err(|e| e.to_string())?;
            let answer = self.conn.send(req).await?;
            if !answer.status.is_success() {
                return Err(error_kind(answer.status, &answer.body));
            }
            self.target.check(call, &answer.body)
        })
    }
}
