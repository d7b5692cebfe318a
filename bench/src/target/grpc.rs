//! keyraft's gRPC API through the Rust SDK (`client`), one SDK client (one HTTP/2
//! connection) per benchmark client, SDK retries off so every failure is counted.

use anyhow::{bail, Context};

use super::{payload, CallFuture, Conn, ConnFuture, Target, TargetOptions};
use crate::config::Endpoints;
use crate::ops::Call;

/// The keyraft gRPC target.
pub struct GrpcTarget {
    builder: client::ClientBuilder,
    key_id: String,
    sign_key_id: String,
    plaintext: Vec<u8>,
    ciphertext: Vec<u8>,
    run_id: String,
}

fn builder(e: &Endpoints) -> anyhow::Result<client::ClientBuilder> {
    let url = Endpoints::need(&e.grpc_url, "gRPC endpoint (KMS_GRPC_ENDPOINT)")?;
    Ok(client::Client::builder()
        .endpoint(url.clone())
        .ca_bundle_file(Endpoints::need(&e.ca, "CA bundle (KMS_CA_BUNDLE)")?)
        .client_cert_file(Endpoints::need(
            &e.client_cert,
            "client cert (KMS_CLIENT_CERT)",
        )?)
        .client_key_file(Endpoints::need(
            &e.client_key,
            "client key (KMS_CLIENT_KEY)",
        )?)
        .max_attempts(1))
}

fn kind(e: client::Error) -> String {
    match e {
        client::Error::Transport { .. } => {
            format!("transport: {}", crate::https::short(e.message()))
        }
        other => other.error_type().to_string(),
    }
}

impl GrpcTarget {
    /// Connects through the SDK and creates the keys (and a ciphertext) the op needs.
    pub async fn prepare(opts: &TargetOptions) -> anyhow::Result<Self> {
        let b = builder(&opts.endpoints)?;
        let kms = b.clone().max_attempts(3).build()?;
        let calls = opts.op.calls();
        let plaintext = payload(opts.payload_bytes);
        let mut t = GrpcTarget {
            builder: b,
            key_id: String::new(),
            sign_key_id: String::new(),
            plaintext,
            ciphertext: Vec::new(),
            run_id: opts.run_id.clone(),
        };
        if calls
            .iter()
            .any(|c| *c != Call::CreateKey && *c != Call::Sign)
        {
            let k = kms
                .create_key()
                .description(format!("keyraft-bench {}", t.run_id))
                .send()
                .await
                .context("setup CreateKey")?;
            t.key_id = k.key_metadata.unwrap_or_default().key_id;
        }
        if calls.contains(&Call::Sign) {
            let k = kms
                .create_key()
                .description(format!("keyraft-bench {} signing", t.run_id))
                .key_spec("ECC_NIST_P256")
                .key_usage("SIGN_VERIFY")
                .send()
                .await
                .context("setup CreateKey (signing)")?;
            t.sign_key_id = k.key_metadata.unwrap_or_default().key_id;
        }
        if calls.contains(&Call::Decrypt) {
            let out = kms
                .encrypt()
                .key_id(t.key_id.clone())
                .plaintext(t.plaintext.clone())
                .send()
                .await
                .context("setup Encrypt")?;
            t.ciphertext = out.ciphertext_blob;
        }
        if calls.iter().any(|c| *c != Call::CreateKey)
            && t.key_id.is_empty()
            && t.sign_key_id.is_empty()
        {
            bail!("setup created no key");
        }
        Ok(t)
    }
}

struct GrpcConn {
    kms: client::Client,
    key_id: String,
    sign_key_id: String,
    plaintext: Vec<u8>,
    ciphertext: Vec<u8>,
    run_id: String,
}

impl Target for GrpcTarget {
    fn conn(&self) -> ConnFuture<'_> {
        Box::pin(async move {
            let kms = self.builder.clone().build()?;
            // Dial (and handshake) now, not in the measured window.
            if !self.key_id.is_empty() {
                kms.describe_key()
                    .key_id(self.key_id.clone())
                    .send()
                    .await
                    .context("connecting")?;
            }
            Ok(Box::new(GrpcConn {
                kms,
                key_id: self.key_id.clone(),
                sign_key_id: self.sign_key_id.clone(),
                plaintext: self.plaintext.clone(),
                ciphertext: self.ciphertext.clone(),
                run_id: self.run_id.clone(),
            }) as Box<dyn Conn>)
        })
    }
}

impl Conn for GrpcConn {
    fn call(&mut self, call: Call, seq: u64) -> CallFuture<'_> {
        Box::pin(async move {
            let kms = &self.kms;
            match call {
                Call::Encrypt => {
                    let out = kms
                        .encrypt()
                        .key_id(self.key_id.clone())
                        .plaintext(self.plaintext.clone())
                        .send()
                        .await
                        .map_err(kind)?;
                    if out.ciphertext_blob.is_empty() {
                        return Err("bad answer: empty ciphertext".into());
                    }
                }
                Call::Decrypt => {
                    let out = kms
                        .decrypt()
                        .ciphertext_blob(self.ciphertext.clone())
                        .send()
                        .await
                        .map_err(kind)?;
                    if out.plaintext != self.plaintext {
                        return Err("bad answer: wrong plaintext".into());
                    }
                }
                Call::GenerateDataKey => {
                    let out = kms
                        .generate_data_key()
                        .key_id(self.key_id.clone())
                        .key_spec("AES_256")
                        .send()
                        .await
                        .map_err(kind)?;
                    if out.plaintext.len() != 32 || out.ciphertext_blob.is_empty() {
                        return Err("bad answer: data key".into());
                    }
                }
                Call::Sign => {
                    let out = kms
                        .sign()
                        .key_id(self.sign_key_id.clone())
                        .message(self.plaintext.clone())
                        .message_type("RAW")
                        .signing_algorithm("ECDSA_SHA_256")
                        .send()
                        .await
                        .map_err(kind)?;
                    if out.signature.is_empty() {
                        return Err("bad answer: empty signature".into());
                    }
                }
                Call::CreateKey => {
                    let out = kms
                        .create_key()
                        .description(format!("keyraft-bench {} {seq}", self.run_id))
                        .send()
                        .await
                        .map_err(kind)?;
                    if out.key_metadata.is_none_or(|m| m.key_id.is_empty()) {
                        return Err("bad answer: no key id".into());
                    }
                }
                Call::DescribeKey => {
                    let out = kms
                        .describe_key()
                        .key_id(self.key_id.clone())
                        .send()
                        .await
                        .map_err(kind)?;
                    if out.key_metadata.is_none_or(|m| m.key_id != self.key_id) {
                        return Err("bad answer: another key".into());
                    }
                }
            }
            Ok(())
        })
    }
}
