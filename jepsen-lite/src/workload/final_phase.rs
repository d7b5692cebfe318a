//! The final phase, after every fault is healed: read back everything that was acknowledged.
//!
//! 1. ListKeys (all pages, recorded as one `list-keys` call);
//! 2. a recorded key read of every acknowledged key (register keys, acknowledged creates);
//! 3. Decrypt of every acknowledged ciphertext.
//!
//! Each read is retried (as a new call, by a new process after an `info`) until it gets an
//! answer or `within` passes: the checkers need one answered final read per item.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde::Serialize;

use super::{classify, lock, pause_before_retry, read_meta, Ctx, Outcome, ReadError};
use crate::history::{OpType, Value, F};

/// Workers for the final reads.
const PARALLEL: usize = 16;

/// What the final phase managed to read.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FinalStats {
    /// Keys listed by the final ListKeys (`None` if it never answered).
    pub listed: Option<usize>,
    /// Keys read back / keys that never answered.
    pub keys_read: usize,
    /// Keys whose final read never answered.
    pub keys_unread: usize,
    /// Ciphertexts decrypted (any answer) / never answered.
    pub decrypted: usize,
    /// Ciphertexts whose Decrypt never answered.
    pub undecrypted: usize,
}

/// Runs the final reads.
pub async fn run(ctx: &Arc<Ctx>, within: Duration) -> FinalStats {
    let deadline = Instant::now() + within;
    let mut stats = FinalStats::default();
    let listed = list_keys(ctx, deadline).await;
    stats.listed = listed.as_ref().map(Vec::len);

    // Only acknowledged keys: a key listed but created by a call of unknown outcome has no
    // create in the history to explain it (the register checker drops such creates).
    let mut keys: BTreeSet<String> = ctx.register_keys().into_iter().collect();
    keys.extend(lock(&ctx.created).iter().cloned());
    keys.extend(lock(&ctx.revocation_keys).iter().cloned());
    let (read, unread) = parallel(ctx, keys.into_iter().collect(), deadline, read_key).await;
    stats.keys_read = read;
    stats.keys_unread = unread;

    let ciphertexts: Vec<(String, String)> = ctx
        .recorder
        .snapshot()
        .ops
        .into_iter()
        .filter(|o| o.f == F::Encrypt && o.op_type == OpType::Ok)
        .filter_map(|o| match o.value {
            Value::Encrypted { ciphertext, .. } => Some((o.key.unwrap_or_default(), ciphertext)),
            _ => None,
        })
        .collect();
    let (done, undone) = parallel(ctx, ciphertexts, deadline, decrypt).await;
    stats.decrypted = done;
    stats.undecrypted = undone;
    stats
}

/// Runs `one` over `items` with [`PARALLEL`] workers; returns (answered, unanswered).
async fn parallel<T, Fut>(
    ctx: &Arc<Ctx>,
    items: Vec<T>,
    deadline: Instant,
    one: fn(Arc<Ctx>, T, Instant) -> Fut,
) -> (usize, usize)
where
    T: Send + 'static,
    Fut: std::future::Future<Output = bool> + Send + 'static,
{
    let queue = Arc::new(Mutex::new(items));
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..PARALLEL {
        let (ctx, queue) = (ctx.clone(), queue.clone());
        set.spawn(async move {
            let (mut yes, mut no) = (0, 0);
            loop {
                let Some(item) = lock(&queue).pop() else {
                    break;
                };
                if one(ctx.clone(), item, deadline).await {
                    yes += 1;
                } else {
                    no += 1;
                }
            }
            (yes, no)
        });
    }
    let (mut yes, mut no) = (0, 0);
    while let Some(r) = set.join_next().await {
        if let Ok((y, n)) = r {
            yes += y;
            no += n;
        }
    }
    (yes, no)
}

async fn list_keys(ctx: &Ctx, deadline: Instant) -> Option<Vec<String>> {
    let mut attempt = 0;
    loop {
        let pending = ctx
            .recorder
            .invoke(ctx.new_process(), F::ListKeys, None, Value::None);
        let mut keys = Vec::new();
        let mut marker: Option<String> = None;
        let result = loop {
            let mut req = ctx.client.list_keys().limit(1000);
            if let Some(m) = marker.take() {
                req = req.marker(m);
            }
            match req.send().await {
                Ok(out) => {
                    keys.extend(out.keys.into_iter().map(|k| k.key_id));
                    match out.next_marker.filter(|_| out.truncated) {
                        Some(m) => marker = Some(m),
                        None => break Ok(()),
                    }
                }
                Err(e) => break Err(e),
            }
        };
        match result {
            Ok(()) => {
                ctx.recorder.ok(pending, Value::Keys(keys.clone()));
                return Some(keys);
            }
            Err(e) => {
                // A read has no effect: record it as failed, whatever the error.
                ctx.recorder.fail(pending, classify_text(&e));
            }
        }
        if Instant::now() >= deadline || ctx.interrupted() {
            return None;
        }
        pause_before_retry(attempt).await;
        attempt += 1;
    }
}

fn classify_text(e: &client::Error) -> String {
    match classify(e) {
        Outcome::Fail(m) | Outcome::Info(m) => m,
    }
}

/// Reads one key until it answers; true if it did.
async fn read_key(ctx: Arc<Ctx>, key: String, deadline: Instant) -> bool {
    let mut attempt = 0;
    loop {
        let pending = ctx
            .recorder
            .invoke(ctx.new_process(), F::Describe, Some(&key), Value::None);
        match read_meta(&ctx.client, &key).await {
            Ok(meta) => {
                ctx.recorder.ok(pending, Value::Meta(meta));
                return true;
            }
            Err(ReadError::Inconsistent(m)) => {
                ctx.recorder.fail(pending, m);
            }
            Err(ReadError::Call(e)) => {
                ctx.recorder.fail(pending, classify_text(&e));
            }
        }
        if Instant::now() >= deadline || ctx.interrupted() {
            return false;
        }
        pause_before_retry(attempt).await;
        attempt += 1;
    }
}

/// Decrypts one ciphertext until the service answers (plaintext or a definite error).
async fn decrypt(ctx: Arc<Ctx>, (key, ciphertext): (String, String), deadline: Instant) -> bool {
    let Ok(blob) = base64::engine::general_purpose::STANDARD.decode(&ciphertext) else {
        return false;
    };
    let mut attempt = 0;
    loop {
        let pending = ctx.recorder.invoke(
            ctx.new_process(),
            F::Decrypt,
            Some(&key),
            Value::Ciphertext(ciphertext.clone()),
        );
        match ctx
            .client
            .decrypt()
            .ciphertext_blob(blob.clone())
            .send()
            .await
        {
            Ok(out) => {
                let text = String::from_utf8_lossy(&out.plaintext).into_owned();
                ctx.recorder.ok(pending, Value::Plaintext(text));
                return true;
            }
            Err(e) => match classify(&e) {
                Outcome::Fail(m) => {
                    ctx.recorder.fail(pending, m);
                    return true;
                }
                Outcome::Info(m) => {
                    ctx.recorder.info(pending, m);
                }
            },
        }
        if Instant::now() >= deadline || ctx.interrupted() {
            return false;
        }
        pause_before_retry(attempt).await;
        attempt += 1;
    }
}
