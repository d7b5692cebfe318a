//! The create-and-use workload: CreateKey now and then, Encrypt random plaintexts under
//! acknowledged keys the rest of the time. Every acknowledged key must survive (lost-writes)
//! and every acknowledged ciphertext must decrypt after healing (decryptable); the final
//! phase does those reads.

use base64::Engine as _;
use rand::Rng;

use super::{lock, Ctx};
use crate::history::{KeyMeta, Value, F};

/// Share of calls that create a key (the rest encrypt).
const CREATE_PERCENT: u32 = 15;

/// One call by `process`. Returns true when the process crashed (`info`).
pub async fn step(ctx: &Ctx, process: u64, rng: &mut (impl Rng + Send)) -> bool {
    let key = {
        let created = lock(&ctx.created);
        if created.is_empty() || rng.gen_range(0..100) < CREATE_PERCENT {
            None
        } else {
            Some(created[rng.gen_range(0..created.len())].clone())
        }
    };
    match key {
        None => create(ctx, process).await,
        Some(key) => encrypt(ctx, process, &key, rng).await,
    }
}

async fn create(ctx: &Ctx, process: u64) -> bool {
    let description = format!("cu-{}", ctx.unique());
    let meta = KeyMeta::new(description.clone());
    let pending = ctx
        .recorder
        .invoke(process, F::CreateKey, None, Value::Meta(Some(meta.clone())));
    match ctx
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
            lock(&ctx.created).push(id);
            false
        }
        Err(e) => {
            let crashed = match super::classify(&e) {
                super::Outcome::Fail(m) => {
                    ctx.recorder.fail(pending, m);
                    false
                }
                super::Outcome::Info(m) => {
                    ctx.recorder.info(pending, m);
                    true
                }
            };
            super::backoff_after(&e).await;
            crashed
        }
    }
}

async fn encrypt(ctx: &Ctx, process: u64, key: &str, rng: &mut (impl Rng + Send)) -> bool {
    let bytes: [u8; 16] = rng.gen();
    let plaintext: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let fut = ctx
        .client
        .encrypt()
        .key_id(key)
        .plaintext(plaintext.clone().into_bytes())
        .send();
    let pt = plaintext.clone();
    ctx.call(
        process,
        F::Encrypt,
        Some(key),
        Value::Plaintext(plaintext),
        fut,
        move |out| Value::Encrypted {
            plaintext: pt,
            ciphertext: base64::engine::general_purpose::STANDARD.encode(out.ciphertext_blob),
        },
    )
    .await
}
