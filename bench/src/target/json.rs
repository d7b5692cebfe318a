//! keyraft's AWS JSON 1.1 API, driven the way an AWS SDK drives it: one kept-alive HTTPS/1.1
//! connection per client, every request SigV4-signed with `aws-sigv4` (the signer the AWS
//! SDKs use) and a fresh timestamp. The SDK's orchestrator (interceptors, retry classifiers,
//! endpoint resolution) is left out on purpose: on a shared 2-core machine its CPU would be
//! taken from the server under test, and it measures nothing about the server.
//!
//! The same client, with the same signed requests, drives the `echo-https` floor.

use std::collections::HashMap;
use std::time::SystemTime;

use anyhow::{bail, Context};
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use base64::Engine as _;
use http::Request;
use http_body_util::Full;
use hyper::body::Bytes;
use serde_json::{json, Value};

use super::{payload, CallFuture, Conn, ConnFuture, Target, TargetOptions};
use crate::config::Endpoints;
use crate::https::{client_tls, HttpsConn, HttpsEndpoint};
use crate::ops::Call;

const CONTENT_TYPE: &str = "application/x-amz-json-1.1";
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// What the answers must show for a call to count as a success.
#[derive(Clone, Default)]
struct Fixture {
    key_id: String,
    sign_key_id: String,
    plaintext_b64: String,
    /// Bodies that do not change between calls, built once.
    bodies: HashMap<&'static str, Bytes>,
}

/// The keyraft AWS JSON target (or, with `echo`, the HTTPS floor).
#[derive(Clone)]
pub struct JsonTarget {
    endpoint: HttpsEndpoint,
    identity: Identity,
    region: String,
    fixture: Fixture,
    echo: bool,
    run_id: String,
}

fn target_of(call: Call) -> &'static str {
    match call {
        Call::Encrypt => "TrentService.Encrypt",
        Call::Decrypt => "TrentService.Decrypt",
        Call::GenerateDataKey => "TrentService.GenerateDataKey",
        Call::Sign => "TrentService.Sign",
        Call::CreateKey => "TrentService.CreateKey",
        Call::DescribeKey => "TrentService.DescribeKey",
    }
}

impl JsonTarget {
    fn new(e: &Endpoints, url: &str, echo: bool, run_id: &str) -> anyhow::Result<Self> {
        let ca = Endpoints::need(&e.ca, "CA bundle (--ca / KMS_CA_BUNDLE)")?;
        let endpoint = HttpsEndpoint::new(url, client_tls(ca, None)?)?;
        let key = Endpoints::need(&e.access_key_id, "access key (AWS_ACCESS_KEY_ID)")?;
        let secret = Endpoints::need(&e.secret_access_key, "secret (AWS_SECRET_ACCESS_KEY)")?;
        let identity: Identity =
            Credentials::new(key, secret.expose_secret(), None, None, "keyraft-bench").into();
        Ok(JsonTarget {
            endpoint,
            identity,
            region: e.region.clone(),
            fixture: Fixture::default(),
            echo,
            run_id: run_id.to_string(),
        })
    }

    /// Connects to keyraft's JSON endpoint and creates the keys (and a ciphertext) the op needs.
    pub async fn prepare(opts: &TargetOptions) -> anyhow::Result<Self> {
        let url = Endpoints::need(&opts.endpoints.json_url, "JSON endpoint (KMS_ENDPOINT)")?;
        let mut t = Self::new(&opts.endpoints, url, false, &opts.run_id)?;
        let mut conn = t.endpoint.conn();
        let calls = opts.op.calls();
        let plaintext = payload(opts.payload_bytes);
        let mut f = Fixture {
            plaintext_b64: B64.encode(&plaintext),
            ..Default::default()
        };
        if calls
            .iter()
            .any(|c| *c != Call::CreateKey && *c != Call::Sign)
        {
            let out = t
                .setup_call(
                    &mut conn,
                    "TrentService.CreateKey",
                    json!({"Description": format!("keyraft-bench {}", t.run_id)}),
                )
                .await?;
            f.key_id = str_at(&out, &["KeyMetadata", "KeyId"])?.to_string();
        }
        if calls.contains(&Call::Sign) {
            let out = t
                .setup_call(
                    &mut conn,
                    "TrentService.CreateKey",
                    json!({"Description": format!("keyraft-bench {} signing", t.run_id),
                           "KeySpec": "ECC_NIST_P256", "KeyUsage": "SIGN_VERIFY"}),
                )
                .await?;
            f.sign_key_id = str_at(&out, &["KeyMetadata", "KeyId"])?.to_string();
        }
        let mut bodies = HashMap::new();
        let mut put = |call: Call, v: Value| {
            bodies.insert(target_of(call), Bytes::from(v.to_string()));
        };
        put(
            Call::Encrypt,
            json!({"KeyId": f.key_id, "Plaintext": f.plaintext_b64}),
        );
        put(
            Call::GenerateDataKey,
            json!({"KeyId": f.key_id, "KeySpec": "AES_256"}),
        );
        put(
            Call::Sign,
            json!({"KeyId": f.sign_key_id, "Message": f.plaintext_b64,
                   "MessageType": "RAW", "SigningAlgorithm": "ECDSA_SHA_256"}),
        );
        put(Call::DescribeKey, json!({"KeyId": f.key_id}));
        if calls.contains(&Call::Decrypt) {
            let out = t
                .setup_call(
                    &mut conn,
                    "TrentService.Encrypt",
                    json!({"KeyId": f.key_id, "Plaintext": f.plaintext_b64}),
                )
                .await?;
            let blob = str_at(&out, &["CiphertextBlob"])?;
            put(
                Call::Decrypt,
                json!({"KeyId": f.key_id, "CiphertextBlob": blob}),
            );
        }
        f.bodies = bodies;
        t.fixture = f;
        Ok(t)
    }

    /// The same client aimed at the in-process HTTPS echo at `url`: the requests are those
    /// an Encrypt (or the op's calls) would send, signed, of the same size.
    pub fn echo(opts: &TargetOptions, url: &str) -> anyhow::Result<Self> {
        let mut t = Self::new(&opts.endpoints, url, true, &opts.run_id)?;
        let plaintext_b64 = B64.encode(payload(opts.payload_bytes));
        let key_id = "00000000-0000-4000-8000-000000000000".to_string();
        let mut bodies = HashMap::new();
        for call in opts.op.calls() {
            let v = match call {
                Call::CreateKey => json!({"Description": "keyraft-bench echo"}),
                Call::DescribeKey | Call::GenerateDataKey => json!({"KeyId": key_id}),
                _ => json!({"KeyId": key_id, "Plaintext": plaintext_b64}),
            };
            bodies.insert(target_of(call), Bytes::from(v.to_string()));
        }
        t.fixture = Fixture {
            key_id,
            sign_key_id: String::new(),
            plaintext_b64,
            bodies,
        };
        Ok(t)
    }

    async fn setup_call(
        &self,
        conn: &mut HttpsConn,
        target: &'static str,
        body: Value,
    ) -> anyhow::Result<Value> {
        let body = Bytes::from(body.to_string());
        let req = self.request(target, body).map_err(anyhow::Error::msg)?;
        let answer = conn.send(req).await.map_err(anyhow::Error::msg)?;
        let v: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
        if !answer.status.is_success() {
            bail!("setup {target}: HTTP {} {v}", answer.status);
        }
        Ok(v)
    }

    /// A signed `POST /` for `target` (X-Amz-Target) with `body`.
    fn request(&self, target: &str, body: Bytes) -> Result<Request<Full<Bytes>>, String> {
        let mut req = Request::post("/")
            .header(http::header::HOST, &self.endpoint.authority)
            .header(http::header::CONTENT_TYPE, CONTENT_TYPE)
            .header("x-amz-target", target)
            .body(Full::new(body.clone()))
            .map_err(|e| format!("request: {e}"))?;
        let params = v4::SigningParams::builder()
            .identity(&self.identity)
            .region(&self.region)
            .name("kms")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| format!("signing: {e}"))?
            .into();
        let headers = req
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)));
        let url = format!("{}/", self.endpoint.base);
        let signable = SignableRequest::new("POST", &url, headers, SignableBody::Bytes(&body))
            .map_err(|e| format!("signing: {e}"))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| format!("signing: {e}"))?
            .into_parts();
        instructions.apply_to_request_http1x(&mut req);
        Ok(req)
    }

    fn body(&self, call: Call, seq: u64) -> Bytes {
        if call == Call::CreateKey && !self.echo {
            return Bytes::from(
                json!({"Description": format!("keyraft-bench {} {seq}", self.run_id)}).to_string(),
            );
        }
        self.fixture
            .bodies
            .get(target_of(call))
            .cloned()
            .unwrap_or_default()
    }

    /// Checks a 200 answer says what the call should have returned.
    fn check(&self, call: Call, sent: &[u8], body: &[u8]) -> Result<(), String> {
        if self.echo {
            return if body == sent {
                Ok(())
            } else {
                Err("echo: body differs".into())
            };
        }
        let v: Value = serde_json::from_slice(body).map_err(|_| "bad answer: not JSON")?;
        let s = |path: &[&str]| str_at(&v, path).map_err(|e| format!("bad answer: {e}"));
        match call {
            Call::Encrypt => s(&["CiphertextBlob"]).map(drop),
            Call::Decrypt => {
                if s(&["Plaintext"])? == self.fixture.plaintext_b64 {
                    Ok(())
                } else {
                    Err("bad answer: wrong plaintext".into())
                }
            }
            Call::GenerateDataKey => {
                s(&["CiphertextBlob"])?;
                match B64.decode(s(&["Plaintext"])?) {
                    Ok(k) if k.len() == 32 => Ok(()),
                    _ => Err("bad answer: data key is not 32 bytes".into()),
                }
            }
            Call::Sign => s(&["Signature"]).map(drop),
            Call::CreateKey => s(&["KeyMetadata", "KeyId"]).map(drop),
            Call::DescribeKey => {
                if s(&["KeyMetadata", "KeyId"])? == self.fixture.key_id {
                    Ok(())
                } else {
                    Err("bad answer: another key".into())
                }
            }
        }
    }
}

/// The string at `path` in `v`.
pub fn str_at<'a>(v: &'a Value, path: &[&str]) -> anyhow::Result<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur
            .get(p)
            .with_context(|| format!("no {}", path.join(".")))?;
    }
    cur.as_str()
        .filter(|s| !s.is_empty())
        .with_context(|| format!("{} is not a string", path.join(".")))
}

/// The error kind of a non-2xx AWS JSON answer: its `__type` (without namespace).
fn error_kind(status: http::StatusCode, body: &[u8]) -> String {
    let t = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("__type")?.as_str().map(str::to_owned));
    match t {
        Some(t) => t.rsplit('#').next().unwrap_or(&t).to_string(),
        None => format!("HTTP {}", status.as_u16()),
    }
}

struct JsonConn {
    // A copy per connection (made once, at connect): calls then share nothing but the process.
    target: JsonTarget,
    conn: HttpsConn,
}

impl Conn for JsonConn {
    fn call(&mut self, call: Call, seq: u64) -> CallFuture<'_> {
        Box::pin(async move {
            let t = &self.target;
            let body = t.body(call, seq);
            let req = t.request(target_of(call), body.clone())?;
            let answer = self.conn.send(req).await?;
            if !answer.status.is_success() {
                return Err(error_kind(answer.status, &answer.body));
            }
            t.check(call, &body, &answer.body)
        })
    }
}

impl Target for JsonTarget {
    fn conn(&self) -> ConnFuture<'_> {
        Box::pin(async move {
            let mut conn = self.endpoint.conn();
            conn.connect().await.map_err(anyhow::Error::msg)?;
            Ok(Box::new(JsonConn {
                target: self.clone(),
                conn,
            }) as Box<dyn Conn>)
        })
    }
}
