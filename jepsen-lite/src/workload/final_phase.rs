//! The final phase, after every fault is healed: read back everything that was acknowledged.
//!
//! 1. ListKeys (all pages, recorded as one `list-keys` call);
//! 2. a recorded key read of every acknowledged key (register keys, acknowledged creates);
//! 3. Decrypt of every acknowledged ciphertext, [`BATCH`] per BatchDecrypt call, each item
//!    recorded as a `decrypt` call of its own.
//!
//! Each read is retried (as a new call, by a new process after an `info`) until it gets an
//! answer: the checkers need one answered final read per item, and a ciphertext never answered
//! makes the verdict `unknown`. Every phase's budget grows with its item count (a 10-minute
//! run acknowledges ~10^5 ciphertexts) and is extended while answers keep coming, so only a
//! cluster that stopped answering ends the phase with items unread.

use std::collections::{BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use client::Client;
use serde::Serialize;

use super::{classify, lock, pause_before_retry, read_meta, Ctx, Outcome, ReadError};
use crate::history::{OpType, Value, F};

/// Workers for the final key reads.
const PARALLEL: usize = 16;
/// Workers sending decrypt batches. Few: the front and the nodes share the machine, and a
/// flood of decrypts (each with its audit event) starves the nodes' Raft timers into
/// elections; more calls in flight add latency, not throughput.
const DECRYPT_PARALLEL: usize = 4;
/// Ciphertexts per BatchDecrypt call (the front takes up to 1000 and works on 32 at once).
pub const BATCH: usize = 32;
/// Request timeout of the client the batches are sent with.
pub const BATCH_TIMEOUT: Duration = Duration::from_secs(20);
/// Budget added per key read (three calls each).
const PER_KEY: Duration = Duration::from_millis(20);
/// Budget added per ciphertext.
const PER_CIPHERTEXT: Duration = Duration::from_millis(2);
/// After the budget, a phase still goes on while some item was answered this recently.
const STALL: Duration = Duration::from_secs(30);

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
    /// Seconds the final phase took.
    pub seconds: f64,
}

/// When a phase over `n` items gives up retrying: `base` plus `per_item` for each item, and
/// past that only once no item was answered for [`STALL`].
#[derive(Debug)]
struct Budget {
    until: Instant,
    last_answer: Mutex<Instant>,
}

impl Budget {
    fn new(base: Duration, n: usize, per_item: Duration) -> Budget {
        let now = Instant::now();
        let scaled = per_item.saturating_mul(u32::try_from(n).unwrap_or(u32::MAX));
        Budget {
            until: now + base + scaled,
            last_answer: Mutex::new(now),
        }
    }

    fn answered(&self) {
        *lock(&self.last_answer) = Instant::now();
    }

    fn spent(&self) -> bool {
        let now = Instant::now();
        now >= self.until && now >= *lock(&self.last_answer) + STALL
    }
}

/// Runs the final reads; each phase gets `within` plus a share per item. The decrypt
/// batches go through `batches` (a client with [`BATCH_TIMEOUT`]), the rest through the
/// context's client.
pub async fn run(ctx: &Arc<Ctx>, batches: &Client, within: Duration) -> FinalStats {
    let started = Instant::now();
    let mut stats = FinalStats::default();
    let listed = list_keys(ctx, &Budget::new(within, 0, Duration::ZERO)).await;
    stats.listed = listed.as_ref().map(Vec::len);

    // Only acknowledged keys: a key listed but created by a call of unknown outcome has no
    // create in the history to explain it (the register checker drops such creates).
    let mut keys: BTreeSet<String> = ctx.register_keys().into_iter().collect();
    keys.extend(lock(&ctx.created).iter().cloned());
    keys.extend(lock(&ctx.revocation_keys).iter().cloned());
    let budget = Arc::new(Budget::new(within, keys.len(), PER_KEY));
    let (read, unread) = parallel(ctx, keys.into_iter().collect(), budget, read_key).await;
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
    let budget = Budget::new(within, ciphertexts.len(), PER_CIPHERTEXT);
    let (done, undone) = decrypt_all(ctx, batches, ciphertexts, Arc::new(budget), F::Decrypt).await;
    stats.decrypted = done;
    stats.undecrypted = undone;
    stats.seconds = started.elapsed().as_secs_f64();
    stats
}

/// Two regions, after the replicas converged: decrypts in region B (through `peer_batches`)
/// every acknowledged ciphertext under a key whose ReplicateKey was acknowledged, each item
/// recorded as a `decrypt-replica` call. Returns (answered, unanswered).
pub async fn decrypt_in_replica(
    ctx: &Arc<Ctx>,
    peer_batches: &Client,
    within: Duration,
) -> (usize, usize) {
    let history = ctx.recorder.snapshot();
    let replicated: BTreeSet<String> = lock(&ctx.mr.replicated).iter().cloned().collect();
    let ciphertexts: Vec<(String, String)> = history
        .ops
        .into_iter()
        .filter(|o| o.f == F::Encrypt && o.op_type == OpType::Ok)
        .filter(|o| o.key.as_ref().is_some_and(|k| replicated.contains(k)))
        .filter_map(|o| match o.value {
            Value::Encrypted { ciphertext, .. } => Some((o.key.unwrap_or_default(), ciphertext)),
            _ => None,
        })
        .collect();
    let budget = Budget::new(within, ciphertexts.len(), PER_CIPHERTEXT);
    decrypt_all(
        ctx,
        peer_batches,
        ciphertexts,
        Arc::new(budget),
        F::DecryptReplica,
    )
    .await
}

/// Runs `one` over `items` with [`PARALLEL`] workers; returns (answered, unanswered).
async fn parallel<T, Fut>(
    ctx: &Arc<Ctx>,
    items: Vec<T>,
    budget: Arc<Budget>,
    one: fn(Arc<Ctx>, T, Arc<Budget>) -> Fut,
) -> (usize, usize)
where
    T: Send + 'static,
    Fut: std::future::Future<Output = bool> + Send + 'static,
{
    let queue = Arc::new(Mutex::new(items));
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..PARALLEL {
        let (ctx, queue, budget) = (ctx.clone(), queue.clone(), budget.clone());
        set.spawn(async move {
            let (mut yes, mut no) = (0, 0);
            loop {
                let Some(item) = lock(&queue).pop() else {
                    break;
                };
                if one(ctx.clone(), item, budget.clone()).await {
                    budget.answered();
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

async fn list_keys(ctx: &Ctx, budget: &Budget) -> Option<Vec<String>> {
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
        if budget.spent() || ctx.interrupted() {
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
async fn read_key(ctx: Arc<Ctx>, key: String, budget: Arc<Budget>) -> bool {
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
        if budget.spent() || ctx.interrupted() {
            return false;
        }
        pause_before_retry(attempt).await;
        attempt += 1;
    }
}

/// An acknowledged ciphertext waiting for an answered Decrypt.
struct Pending {
    key: String,
    ciphertext: String,
    blob: Vec<u8>,
}

/// Decrypts every ciphertext, [`BATCH`] per call over [`DECRYPT_PARALLEL`] workers, until each got
/// an answer (its plaintext or a definite refusal) or the budget is spent; returns (answered,
/// unanswered). An item whose answer is ambiguous (internal error, timeout), or whose whole
/// batch failed, goes back to the end of the queue, so a bad patch of the cluster delays
/// items rather than losing them.
async fn decrypt_all(
    ctx: &Arc<Ctx>,
    client: &Client,
    items: Vec<(String, String)>,
    budget: Arc<Budget>,
    f: F,
) -> (usize, usize) {
    let mut queue = VecDeque::with_capacity(items.len());
    let mut malformed = 0;
    for (key, ciphertext) in items {
        match base64::engine::general_purpose::STANDARD.decode(&ciphertext) {
            Ok(blob) => queue.push_back(Pending {
                key,
                ciphertext,
                blob,
            }),
            Err(_) => malformed += 1,
        }
    }
    let queue = Arc::new(Mutex::new(queue));
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..DECRYPT_PARALLEL {
        let (ctx, queue, budget) = (ctx.clone(), queue.clone(), budget.clone());
        let client = client.clone();
        set.spawn(async move {
            let (mut yes, mut no) = (0, 0);
            let mut attempt = 0;
            loop {
                if ctx.interrupted() {
                    break;
                }
                let batch: Vec<Pending> = {
                    let mut q = lock(&queue);
                    let n = q.len().min(BATCH);
                    q.drain(..n).collect()
                };
                if batch.is_empty() {
                    break;
                }
                let before = yes;
                let retry = decrypt_batch(&ctx, &client, batch, &mut yes, f).await;
                if yes > before {
                    budget.answered();
                }
                if retry.is_empty() {
                    attempt = 0;
                    continue;
                }
                if budget.spent() || ctx.interrupted() {
                    no += retry.len();
                    continue;
                }
                lock(&queue).extend(retry);
                pause_before_retry(attempt).await;
                attempt += 1;
            }
            (yes, no)
        });
    }
    let (mut yes, mut no) = (0, malformed);
    while let Some(r) = set.join_next().await {
        if let Ok((y, n)) = r {
            yes += y;
            no += n;
        }
    }
    // Left in the queue by an interruption.
    no += lock(&queue).len();
    (yes, no)
}

/// One BatchDecrypt call; each item is recorded as its own `decrypt` call (all invoked
/// before the request, all completed after it). Counts answered items into `answered` and
/// returns the items to try again.
async fn decrypt_batch(
    ctx: &Ctx,
    client: &Client,
    batch: Vec<Pending>,
    answered: &mut usize,
    f: F,
) -> Vec<Pending> {
    let invoked: Vec<_> = batch
        .iter()
        .map(|p| {
            ctx.recorder.invoke(
                ctx.new_process(),
                f,
                Some(&p.key),
                Value::Ciphertext(p.ciphertext.clone()),
            )
        })
        .collect();
    let request = batch.iter().fold(client.batch_decrypt(), |b, p| {
        b.decrypt(p.blob.clone(), Default::default())
    });
    let mut retry = Vec::new();
    match request.send().await {
        Ok(results) if results.len() == batch.len() => {
            for ((p, pending), r) in batch.into_iter().zip(invoked).zip(results) {
                match r {
                    Ok(out) => {
                        let text = String::from_utf8_lossy(&out.plaintext).into_owned();
                        ctx.recorder.ok(pending, Value::Plaintext(text));
                        *answered += 1;
                    }
                    Err(e) => match classify(&e) {
                        Outcome::Fail(m) => {
                            ctx.recorder.fail(pending, m);
                            *answered += 1;
                        }
                        Outcome::Info(m) => {
                            ctx.recorder.info(pending, m);
                            retry.push(p);
                        }
                    },
                }
            }
        }
        other => {
            // The batch as a whole failed (or the reply does not line up with it): no item got
            // an answer about its ciphertext. `info`, not `fail`, so that the decrypt checker
            // does not take a refused request for a refused ciphertext.
            let why = match other {
                Err(e) => classify_text(&e),
                Ok(r) => format!("{} results for {} items", r.len(), batch.len()),
            };
            for pending in invoked {
                ctx.recorder.info(pending, why.clone());
            }
            retry = batch;
        }
    }
    retry
}
