//! The revocation workload: how long does a front keep honouring a revoked key?
//!
//! ```text
//! writer (admin, one process):  CreateKey, PutKeyPolicy(allow App Encrypt)
//!     loop: revoke ── hold HOLD ── restore ── wait GAP ──   revoke alternates between
//!           DisableKey / EnableKey and PutKeyPolicy(deny) / PutKeyPolicy(allow)
//! readers (App, one client per front endpoint): Encrypt under the current key, back to back
//! ```
//!
//! Every call is in the history; `check::revocation` finds each acknowledged revocation's
//! window and the Encrypts that succeeded inside it. The writer is one process, so its calls
//! are ordered; when one of them ends with an unknown outcome (a revocation or restore that may
//! still apply at any time) the key is retired and a fresh one takes over, so that later
//! windows stay measurable (the checker treats an undo of unknown outcome as closing every
//! window of its key opened after its invocation).
//!
//! The readers encrypt as `role/App` (`KMS_ALT_CLIENT_CERT` / `KMS_ALT_CLIENT_KEY` of the env
//! file), whom only the key policy lets Encrypt: the admin identity is allowed by the account
//! root statement, which no revocation removes.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use client::{Client, ClientBuilder, RetryPolicy};
use rand::Rng;

use super::{classify, lock, retry_until, Ctx, Outcome};
use crate::history::{KeyMeta, Value, F};

/// How long each revocation is held: long enough to probe well past a 1 s bound.
pub const HOLD: Duration = Duration::from_millis(2_500);
/// Pause after a restore before the next revocation.
pub const GAP: Duration = Duration::from_millis(500);
/// Pause between one reader's Encrypts (a resolution of a few milliseconds is plenty
/// against a bound of a second, and keeps the final phase's Decrypts few).
pub const READER_PAUSE: Duration = Duration::from_millis(10);

/// `keyraft dev`'s App identity, if the env file does not name it.
const APP: &str = "arn:aws:iam::111122223333:role/App";

/// The workload's shared state.
pub struct Revocation {
    /// One App client per front endpoint.
    apps: Vec<(String, Client)>,
    /// The key the readers encrypt under.
    current: Mutex<Option<String>>,
    account_root: String,
    app_arn: String,
}

fn policy_document(root: &str, app: &str, allow_app: bool) -> String {
    let mut statements = vec![serde_json::json!({
        "Sid": "Enable IAM User Permissions",
        "Effect": "Allow",
        "Principal": { "AWS": root },
        "Action": "kms:*",
        "Resource": "*"
    })];
    if allow_app {
        statements.push(serde_json::json!({
            "Sid": "App encrypts",
            "Effect": "Allow",
            "Principal": { "AWS": app },
            "Action": "kms:Encrypt",
            "Resource": "*"
        }));
    }
    serde_json::json!({ "Version": "2012-10-17", "Statement": statements }).to_string()
}

/// The outcome of one writer call.
enum Step {
    Ok,
    Fail,
    /// Unknown outcome: retire the key.
    Crashed,
}

impl Revocation {
    /// App clients for every front of the env file (`KMS_GRPC_ENDPOINT` may list several).
    pub fn new(env_file: &Path, op_timeout: Duration) -> anyhow::Result<Revocation> {
        let text = std::fs::read_to_string(env_file)?;
        let vars = client::config::parse_env_file(&text)?;
        let var = |name: &str| {
            vars.get(name)
                .cloned()
                .ok_or_else(|| anyhow::anyhow!("{} has no {name}", env_file.display()))
        };
        let (cert, key) = (var("KMS_ALT_CLIENT_CERT")?, var("KMS_ALT_CLIENT_KEY")?);
        let mut apps = Vec::new();
        for endpoint in client::config::split_endpoints(&var(client::config::ENV_ENDPOINT)?) {
            let app = ClientBuilder::new()
                .env_file(env_file)?
                .endpoints([endpoint.clone()])
                .client_cert_file(&cert)
                .client_key_file(&key)
                .retry_policy(RetryPolicy::none())
                .request_timeout(op_timeout)
                .connect_timeout(op_timeout.min(Duration::from_secs(1)))
                .build()?;
            apps.push((endpoint, app));
        }
        anyhow::ensure!(
            !apps.is_empty(),
            "no front endpoint in {}",
            env_file.display()
        );
        let account = vars
            .get("KMS_ACCOUNT_ID")
            .cloned()
            .unwrap_or_else(|| "111122223333".into());
        Ok(Revocation {
            apps,
            current: Mutex::new(None),
            account_root: format!("arn:aws:iam::{account}:root"),
            app_arn: vars
                .get("KMS_ALT_PRINCIPAL_ARN")
                .cloned()
                .unwrap_or_else(|| APP.into()),
        })
    }

    /// Front endpoints the readers spread over.
    pub fn fronts(&self) -> Vec<String> {
        self.apps.iter().map(|(e, _)| e.clone()).collect()
    }

    /// Creates the first key (recorded), so that readers have something to encrypt under.
    pub async fn setup(&self, ctx: &Ctx, within: Duration) -> anyhow::Result<()> {
        let key = retry_until(within, |_| self.fresh_key(ctx)).await;
        anyhow::ensure!(
            key.is_some(),
            "could not create a revocation key within {within:?}"
        );
        Ok(())
    }

    /// CreateKey + PutKeyPolicy(allow), both recorded; the new key becomes current.
    async fn fresh_key(&self, ctx: &Ctx) -> Option<String> {
        let description = format!("revocation-{}", ctx.unique());
        let meta = KeyMeta::new(description.clone());
        let pending = ctx.recorder.invoke(
            ctx.new_process(),
            F::CreateKey,
            None,
            Value::Meta(Some(meta.clone())),
        );
        let id = match ctx
            .client
            .create_key()
            .description(description)
            .send()
            .await
        {
            Ok(out) => {
                let id = out.key_metadata.unwrap_or_default().key_id;
                ctx.recorder
                    .ok_created(pending, &id, Value::Meta(Some(meta)));
                lock(&ctx.revocation_keys).push(id.clone());
                id
            }
            Err(e) => {
                match classify(&e) {
                    Outcome::Fail(m) => ctx.recorder.fail(pending, m),
                    Outcome::Info(m) => ctx.recorder.info(pending, m),
                };
                return None;
            }
        };
        // Until the allow policy is in, only the default policy (root only) applies: App is
        // refused, which is no revocation. A failed put is retried; an unknown one retires
        // the key like any other.
        loop {
            match self.put_policy(ctx, ctx.new_process(), &id, true).await {
                Step::Ok => break,
                Step::Fail if !ctx.stopped() => {
                    tokio::time::sleep(Duration::from_millis(200)).await
                }
                _ => return None,
            }
        }
        *lock(&self.current) = Some(id.clone());
        Some(id)
    }

    async fn put_policy(&self, ctx: &Ctx, process: u64, key: &str, allow: bool) -> Step {
        let name = if allow {
            "allow-app-encrypt"
        } else {
            "deny-app-encrypt"
        };
        let fut = ctx
            .client
            .put_key_policy()
            .key_id(key)
            .policy(policy_document(&self.account_root, &self.app_arn, allow))
            .send();
        let input = Value::Policy {
            name: name.into(),
            allows_encrypt: allow,
        };
        recorded(ctx, process, F::PutKeyPolicy, key, input, fut).await
    }

    async fn set_enabled(&self, ctx: &Ctx, process: u64, key: &str, enable: bool) -> Step {
        if enable {
            let fut = ctx.client.enable_key().key_id(key).send();
            recorded(ctx, process, F::Enable, key, Value::None, fut).await
        } else {
            let fut = ctx.client.disable_key().key_id(key).send();
            recorded(ctx, process, F::Disable, key, Value::None, fut).await
        }
    }

    /// The writer: revoke, hold, restore, until the workers stop.
    pub async fn writer(&self, ctx: &Ctx) {
        let mut process = ctx.new_process();
        let mut cycle: u64 = 0;
        while !ctx.stopped() {
            let key = lock(&self.current).clone();
            let Some(key) = key else {
                if self.fresh_key(ctx).await.is_none() {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                continue;
            };
            let by_policy = cycle % 2 == 1;
            cycle += 1;
            let revoked = if by_policy {
                self.put_policy(ctx, process, &key, false).await
            } else {
                self.set_enabled(ctx, process, &key, false).await
            };
            match revoked {
                Step::Ok => {}
                Step::Fail => {
                    tokio::time::sleep(GAP).await;
                    continue;
                }
                Step::Crashed => {
                    process = ctx.new_process();
                    *lock(&self.current) = None;
                    continue;
                }
            }
            tokio::time::sleep(HOLD).await;
            // Restore even after the stop signal, so that the key ends usable; a failed
            // restore definitely did not happen, so it is retried.
            loop {
                let restored = if by_policy {
                    self.put_policy(ctx, process, &key, true).await
                } else {
                    self.set_enabled(ctx, process, &key, true).await
                };
                match restored {
                    Step::Ok => break,
                    Step::Fail if !ctx.interrupted() => {
                        tokio::time::sleep(Duration::from_millis(200)).await
                    }
                    Step::Fail => break,
                    Step::Crashed => {
                        process = ctx.new_process();
                        *lock(&self.current) = None;
                        break;
                    }
                }
            }
            if !ctx.stopped() {
                tokio::time::sleep(GAP).await;
            }
        }
    }

    /// One reader call: Encrypt as App under the current key through front `reader % n`.
    /// Returns true when the process crashed (`info`).
    pub async fn read_step(&self, ctx: &Ctx, process: u64, reader: usize) -> bool {
        let key = lock(&self.current).clone();
        let Some(key) = key else {
            tokio::time::sleep(READER_PAUSE).await;
            return false;
        };
        let app = &self.apps[reader % self.apps.len()].1;
        let bytes: [u8; 16] = super::rng().gen();
        let plaintext: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let fut = app
            .encrypt()
            .key_id(&key)
            .plaintext(plaintext.clone().into_bytes())
            .send();
        let pt = plaintext.clone();
        let crashed = ctx
            .call(
                process,
                F::Encrypt,
                Some(&key),
                Value::Plaintext(plaintext),
                fut,
                move |out| Value::Encrypted {
                    plaintext: pt,
                    ciphertext: base64::Engine::encode(
                        &base64::engine::general_purpose::STANDARD,
                        out.ciphertext_blob,
                    ),
                },
            )
            .await;
        tokio::time::sleep(READER_PAUSE).await;
        crashed
    }
}

async fn recorded<T>(
    ctx: &Ctx,
    process: u64,
    f: F,
    key: &str,
    input: Value,
    fut: impl std::future::Future<Output = Result<T, client::Error>>,
) -> Step {
    let pending = ctx.recorder.invoke(process, f, Some(key), input);
    match fut.await {
        Ok(_) => {
            ctx.recorder.ok(pending, Value::None);
            Step::Ok
        }
        Err(e) => {
            let step = match classify(&e) {
                Outcome::Fail(m) => {
                    ctx.recorder.fail(pending, m);
                    Step::Fail
                }
                Outcome::Info(m) => {
                    ctx.recorder.info(pending, m);
                    Step::Crashed
                }
            };
            super::backoff_after(&e).await;
            step
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deny_policy_keeps_the_root_statement_and_drops_the_app() {
        const ACCOUNT_ROOT: &str = "arn:aws:iam::111122223333:root";
        let allow = policy_document(ACCOUNT_ROOT, APP, true);
        let deny = policy_document(ACCOUNT_ROOT, APP, false);
        assert!(allow.contains(APP) && allow.contains("kms:Encrypt"));
        assert!(deny.contains(ACCOUNT_ROOT) && !deny.contains(APP));
    }
}
