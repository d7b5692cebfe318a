//! The multi-region workload (two regions): CreateKey `MultiRegion=true` in region A, then
//! ReplicateKey to region B; the rest of the time Encrypt in A under a replicated key,
//! Decrypt in B a ciphertext acknowledged in A, and now and then RotateKeyOnDemand on the
//! primary. Every call is recorded. After the heal the runner waits for every replica to list
//! exactly its primary's material ([`observe`], the `replica-convergence` checker), then
//! decrypts every acknowledged ciphertext under a replicated key in B (`replica-decryptable`);
//! the keys themselves join the create-and-use keys for the final reads in A (lost-writes,
//! decryptable).

use std::sync::Mutex;

use base64::Engine as _;
use client::Client;
use rand::Rng;

use super::{backoff_after, classify, lock, Ctx, Outcome};
use crate::check::multi_region::{Material, MrKeyObservation};
use crate::history::{KeyMeta, Value, F};

/// Share of calls (percent) that create a key, while fewer than [`MAX_KEYS`] exist.
const CREATE_PERCENT: u32 = 3;
/// Share of calls that rotate a primary.
const ROTATE_PERCENT: u32 = 2;
/// Share of calls that decrypt in region B (the rest encrypt in A).
const DECRYPT_PERCENT: u32 = 35;
/// Multi-region keys the workload creates at most: rotations then pile up on few keys, so
/// each key sees several versions.
const MAX_KEYS: usize = 8;
/// Acknowledged ciphertexts kept for live decrypts in B (the final phase reads the history).
const KEEP_CIPHERTEXTS: usize = 2_000;

/// What the multi-region workers share.
#[derive(Debug, Default)]
pub struct MrState {
    /// Keys whose ReplicateKey was acknowledged: usable in both regions.
    pub replicated: Mutex<Vec<String>>,
    /// Keys created, whose ReplicateKey has not been acknowledged yet.
    pending: Mutex<Vec<String>>,
    /// CreateKey calls that may have created a key (for [`MAX_KEYS`]).
    created: Mutex<usize>,
    /// (key, ciphertext base64) of acknowledged Encrypts, for live decrypts in B.
    ciphertexts: Mutex<Vec<(String, String)>>,
}

/// The replica region's name, as ReplicateKey takes it.
pub fn replica_region() -> &'static str {
    crate::backend::local::REGIONS[1]
}

/// One call by `process`. Returns true when the process crashed (`info`).
pub async fn step(ctx: &Ctx, process: u64, rng: &mut (impl Rng + Send)) -> bool {
    let Some(peer) = ctx.peer.as_ref() else {
        // One region: nothing to do (the runner does not schedule this workload then).
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        return false;
    };
    let waiting = lock(&ctx.mr.pending).pop();
    if let Some(key) = waiting {
        return replicate(ctx, process, &key).await;
    }
    let keys = lock(&ctx.mr.replicated).clone();
    let roll = rng.gen_range(0..100);
    if keys.is_empty() || roll < CREATE_PERCENT {
        // Reserve a slot first: workers decide concurrently.
        let reserved = {
            let mut created = lock(&ctx.mr.created);
            (*created < MAX_KEYS).then(|| *created += 1).is_some()
        };
        if reserved {
            return create(ctx, process).await;
        }
    }
    if keys.is_empty() {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        return false;
    }
    let key = keys[rng.gen_range(0..keys.len())].clone();
    if roll < CREATE_PERCENT + ROTATE_PERCENT {
        let fut = ctx.client.rotate_key_on_demand().key_id(key.clone()).send();
        return ctx
            .call(process, F::Rotate, Some(&key), Value::None, fut, |_| {
                Value::None
            })
            .await;
    }
    if roll < CREATE_PERCENT + ROTATE_PERCENT + DECRYPT_PERCENT {
        let picked = {
            let cts = lock(&ctx.mr.ciphertexts);
            (!cts.is_empty()).then(|| cts[rng.gen_range(0..cts.len())].clone())
        };
        if let Some((key, ciphertext)) = picked {
            return decrypt_in_replica(ctx, peer, process, &key, &ciphertext).await;
        }
    }
    encrypt(ctx, process, &key, rng).await
}

async fn create(ctx: &Ctx, process: u64) -> bool {
    let description = format!("mr-{}", ctx.unique());
    let meta = KeyMeta::new(description.clone());
    let pending = ctx
        .recorder
        .invoke(process, F::CreateKey, None, Value::Meta(Some(meta.clone())));
    match ctx
        .client
        .create_key()
        .description(description)
        .multi_region(true)
        .send()
        .await
    {
        Ok(out) => {
            let id = out.key_metadata.unwrap_or_default().key_id;
            ctx.recorder
                .ok_created(pending, &id, Value::Meta(Some(meta)));
            // Read back after the heal like every acknowledged create (lost-writes).
            lock(&ctx.created).push(id.clone());
            lock(&ctx.mr.pending).push(id);
            false
        }
        Err(e) => {
            let crashed = match classify(&e) {
                Outcome::Fail(m) => {
                    // Not created: give the slot back.
                    *lock(&ctx.mr.created) -= 1;
                    ctx.recorder.fail(pending, m);
                    false
                }
                Outcome::Info(m) => {
                    // It may exist: the slot stays taken.
                    ctx.recorder.info(pending, m);
                    true
                }
            };
            backoff_after(&e).await;
            crashed
        }
    }
}

/// ReplicateKey to region B. A definite failure or an unknown outcome leaves the key waiting
/// for another attempt, unless the replica already exists (an earlier attempt of unknown
/// outcome took effect): that key is given up, since no acknowledged ReplicateKey vouches
/// for it.
async fn replicate(ctx: &Ctx, process: u64, key: &str) -> bool {
    let region = replica_region();
    let pending = ctx.recorder.invoke(
        process,
        F::ReplicateKey,
        Some(key),
        Value::Region(region.into()),
    );
    let result = ctx
        .client
        .replicate_key()
        .key_id(key)
        .replica_region(region)
        .description(format!("replica of {key}"))
        .send()
        .await;
    match result {
        Ok(_) => {
            ctx.recorder.ok(pending, Value::None);
            lock(&ctx.mr.replicated).push(key.to_owned());
            false
        }
        Err(e) => {
            let retry = e.error_type() != "AlreadyExistsException";
            let crashed = match classify(&e) {
                Outcome::Fail(m) => {
                    ctx.recorder.fail(pending, m);
                    false
                }
                Outcome::Info(m) => {
                    ctx.recorder.info(pending, m);
                    true
                }
            };
            if retry {
                lock(&ctx.mr.pending).push(key.to_owned());
            }
            backoff_after(&e).await;
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
    let acknowledged = std::sync::Arc::new(Mutex::new(None));
    let seen = acknowledged.clone();
    let crashed = ctx
        .call(
            process,
            F::Encrypt,
            Some(key),
            Value::Plaintext(plaintext),
            fut,
            move |out| {
                let ct = base64::engine::general_purpose::STANDARD.encode(out.ciphertext_blob);
                *lock(&seen) = Some(ct.clone());
                Value::Encrypted {
                    plaintext: pt,
                    ciphertext: ct,
                }
            },
        )
        .await;
    let ct = lock(&acknowledged).take();
    if let Some(ct) = ct {
        let mut cts = lock(&ctx.mr.ciphertexts);
        if cts.len() >= KEEP_CIPHERTEXTS {
            let i = rng.gen_range(0..KEEP_CIPHERTEXTS);
            cts[i] = (key.to_owned(), ct);
        } else {
            cts.push((key.to_owned(), ct));
        }
    }
    crashed
}

/// Decrypt in region B, recorded as `decrypt-replica`.
async fn decrypt_in_replica(
    ctx: &Ctx,
    peer: &Client,
    process: u64,
    key: &str,
    ciphertext: &str,
) -> bool {
    let Ok(blob) = base64::engine::general_purpose::STANDARD.decode(ciphertext) else {
        return false;
    };
    let fut = peer.decrypt().ciphertext_blob(blob).send();
    ctx.call(
        process,
        F::DecryptReplica,
        Some(key),
        Value::Ciphertext(ciphertext.to_owned()),
        fut,
        |out| Value::Plaintext(String::from_utf8_lossy(&out.plaintext).into_owned()),
    )
    .await
}

/// The material of `key` in one region: ListKeyRotations with
/// `IncludeKeyMaterial=ALL_KEY_MATERIAL` (every version, `CURRENT` / `NON_CURRENT`).
async fn materials(client: &Client, key: &str) -> Result<Vec<Material>, String> {
    let entries = client
        .list_key_rotations()
        .key_id(key)
        .include_key_material("ALL_KEY_MATERIAL")
        .send_all()
        .await
        .map_err(|e| format!("{}: {}", e.error_type(), e.message()))?;
    entries
        .into_iter()
        .map(|e| match e.key_material_id {
            Some(id) => Ok(Material {
                id,
                current: e.key_material_state.as_deref() == Some("CURRENT"),
            }),
            None => Err("ListKeyRotations listed material without a KeyMaterialId".into()),
        })
        .collect()
}

/// Reads `key` in both regions (unrecorded: these reads are the convergence checker's input,
/// saved in `run.json`).
pub async fn observe(a: &Client, b: &Client, key: &str) -> MrKeyObservation {
    let mut o = MrKeyObservation {
        key: key.to_owned(),
        ..MrKeyObservation::default()
    };
    let mut errors = Vec::new();
    match materials(a, key).await {
        Ok(m) => o.primary = Some(m),
        Err(e) => errors.push(format!("primary: {e}")),
    }
    match a.get_key_rotation_status().key_id(key).send().await {
        Ok(s) => o.rotation_in_progress = s.on_demand_rotation_start_date.is_some(),
        Err(e) => errors.push(format!(
            "primary GetKeyRotationStatus: {}: {}",
            e.error_type(),
            e.message()
        )),
    }
    match materials(b, key).await {
        Ok(m) => o.replica = Some(m),
        Err(e) => errors.push(format!("replica: {e}")),
    }
    if !errors.is_empty() {
        o.error = Some(errors.join("; "));
    }
    o
}
