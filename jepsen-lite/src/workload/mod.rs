//! Workloads: concurrent client processes that call keyraft through the SDK and record every
//! call in the history.
//!
//! # Layout
//!
//! ```text
//! mod.rs          Workload, Ctx (client, recorder, process ids, shared key lists), outcome
//!                 classification (fail vs info), the recorded key read (read_meta)
//! register.rs     UpdateKeyDescription / EnableKey / DisableKey / TagResource / DescribeKey
//!                 on a few keys, plus ScheduleKeyDeletion / CancelKeyDeletion on some of
//!                 them: the per-key register the linearizability checker searches
//! revocation.rs   DisableKey / deny policy, hold, restore on a key of its own, while readers
//!                 Encrypt as App through every front: the revocation checker's input
//! create_use.rs   CreateKey, then Encrypt random plaintexts under acknowledged keys
//! multi_region.rs two regions: CreateKey MultiRegion + ReplicateKey, Encrypt in A, Decrypt
//!                 in B, RotateKeyOnDemand; reads both regions' material after the heal
//! final_phase.rs  after healing: ListKeys, DescribeKey every key, Decrypt every ciphertext
//! ```
//!
//! # Processes
//!
//! As in Jepsen, a process has one call in flight; a call whose outcome is unknown (`info`)
//! crashes its process and the worker continues under a fresh id. The SDK is built without
//! retries (one attempt per call, a short request timeout): a retried write could apply twice,
//! at two different points, which no single history event could describe.

pub mod create_use;
pub mod final_phase;
pub mod multi_region;
pub mod register;
pub mod revocation;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use client::Client;
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::history::{KeyMeta, KeyStatus, Recorder, Value, F};

/// A workload, as named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Workload {
    /// Key-metadata register operations on a small set of keys.
    Register,
    /// CreateKey and Encrypt; everything acknowledged is read back after healing.
    CreateAndUse,
    /// Revoke and restore a key while readers Encrypt under it.
    Revocation,
    /// Two regions: multi-region keys created and rotated in region A, replicated to B,
    /// Encrypt in A, Decrypt in B.
    MultiRegion,
}

impl Workload {
    /// Every workload (`all`; the runner drops `multi-region` when one region runs).
    pub const ALL: [Workload; 4] = [
        Workload::Register,
        Workload::CreateAndUse,
        Workload::Revocation,
        Workload::MultiRegion,
    ];

    /// Command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Register => "register",
            Workload::CreateAndUse => "create-and-use",
            Workload::Revocation => "revocation",
            Workload::MultiRegion => "multi-region",
        }
    }

    /// Parses `all` or a comma-separated list of workload names.
    pub fn parse_list(s: &str) -> anyhow::Result<Vec<Workload>> {
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "all" => out.extend(Workload::ALL),
                _ => match Workload::ALL.iter().find(|w| w.name() == part) {
                    Some(w) => out.push(*w),
                    None => anyhow::bail!(
                        "unknown workload {part:?} (expected all, register, create-and-use, \
                         revocation or multi-region)"
                    ),
                },
            }
        }
        out.sort();
        out.dedup();
        if out.is_empty() {
            anyhow::bail!("no workload selected");
        }
        Ok(out)
    }
}

/// Everything the workers share.
pub struct Ctx {
    /// The SDK client (no retries).
    pub client: Client,
    /// The history.
    pub recorder: Recorder,
    /// Keys of the register workload (created during setup).
    pub register_keys: Mutex<Vec<String>>,
    /// Keys whose CreateKey was acknowledged by the create-and-use workload.
    pub created: Mutex<Vec<String>>,
    /// Keys of the revocation workload (the current one and those it retired).
    pub revocation_keys: Mutex<Vec<String>>,
    /// Two regions: a client of region B (no retries, like `client`).
    pub peer: Option<Client>,
    /// State of the multi-region workload.
    pub mr: multi_region::MrState,
    /// Set when the workers must stop (end of the run, or Ctrl-C).
    pub stop: AtomicBool,
    /// Set on SIGINT / SIGTERM: the final phase gives up too.
    pub interrupted: AtomicBool,
    next_process: AtomicU64,
    unique: AtomicU64,
}

impl Ctx {
    /// A context over a client and a recorder.
    pub fn new(client: Client, recorder: Recorder) -> Arc<Ctx> {
        Ctx::with_peer(client, None, recorder)
    }

    /// A context for two regions: `peer` is a client of region B.
    pub fn with_peer(client: Client, peer: Option<Client>, recorder: Recorder) -> Arc<Ctx> {
        Arc::new(Ctx {
            client,
            recorder,
            register_keys: Mutex::new(Vec::new()),
            created: Mutex::new(Vec::new()),
            revocation_keys: Mutex::new(Vec::new()),
            peer,
            mr: multi_region::MrState::default(),
            stop: AtomicBool::new(false),
            interrupted: AtomicBool::new(false),
            next_process: AtomicU64::new(0),
            unique: AtomicU64::new(0),
        })
    }

    /// A process id never used before.
    pub fn new_process(&self) -> u64 {
        self.next_process.fetch_add(1, Ordering::Relaxed)
    }

    /// A number never returned before (unique written values make histories checkable).
    pub fn unique(&self) -> u64 {
        self.unique.fetch_add(1, Ordering::Relaxed)
    }

    /// Whether workers should stop.
    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || crate::signals::interrupted()
    }

    /// Whether the run was interrupted (SIGINT / SIGTERM).
    pub fn interrupted(&self) -> bool {
        self.interrupted.load(Ordering::Relaxed) || crate::signals::interrupted()
    }

    /// The register keys.
    pub fn register_keys(&self) -> Vec<String> {
        lock(&self.register_keys).clone()
    }

    /// Records one call: invoke now, then ok with `ok(output)`, fail or info by the error.
    /// Returns true when the process crashed (`info`).
    pub async fn call<T, Fut>(
        &self,
        process: u64,
        f: F,
        key: Option<&str>,
        input: Value,
        fut: Fut,
        ok: impl FnOnce(T) -> Value,
    ) -> bool
    where
        Fut: Future<Output = Result<T, client::Error>>,
    {
        // The request is built but not sent until polled, so the invoke precedes it.
        let pending = self.recorder.invoke(process, f, key, input);
        match fut.await {
            Ok(out) => {
                self.recorder.ok(pending, ok(out));
                false
            }
            Err(e) => {
                let crashed = match classify(&e) {
                    Outcome::Fail(msg) => {
                        self.recorder.fail(pending, msg);
                        false
                    }
                    Outcome::Info(msg) => {
                        self.recorder.info(pending, msg);
                        true
                    }
                };
                backoff_after(&e).await;
                crashed
            }
        }
    }
}

/// Locks, ignoring poisoning (a panicked worker leaves plain data behind).
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A fresh RNG that can cross awaits.
pub fn rng() -> StdRng {
    StdRng::from_entropy()
}

/// How a failed call is recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It definitely did not take effect.
    Fail(String),
    /// It may have taken effect.
    Info(String),
}

/// AWS errors that may come after the request reached the store: the front gave up waiting,
/// not the cluster.
const AMBIGUOUS_TYPES: &[&str] = &["DependencyTimeoutException", "KMSInternalException"];

/// Fail or info: a service error that names a definite refusal (not found, invalid state,
/// validation, ...) is a fail; transport errors, timeouts and internal or dependency errors
/// are info, since the request may have been applied.
pub fn classify(e: &client::Error) -> Outcome {
    // gRPC codes (tonic::Code discriminants): Unknown, DeadlineExceeded, Internal, Unavailable.
    const AMBIGUOUS_CODES: &[i32] = &[2, 4, 13, 14];
    let text = format!("{}: {}", e.error_type(), e.message());
    match e {
        client::Error::Service {
            error_type, code, ..
        } if !AMBIGUOUS_TYPES.contains(&error_type.as_str())
            && !AMBIGUOUS_CODES.contains(&(*code as i32)) =>
        {
            Outcome::Fail(text)
        }
        client::Error::Config(_) => Outcome::Fail(text),
        // No TCP connection, so no request was sent.
        client::Error::Transport { message, .. } if message.contains("tcp connect error") => {
            Outcome::Fail(text)
        }
        _ => Outcome::Info(text),
    }
}

/// After a transport error, waits a little before the process's next call, so that clients
/// facing a dead front do not spin on refused connections.
pub async fn backoff_after(e: &client::Error) {
    if matches!(e, client::Error::Transport { .. }) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Why a recorded key read did not produce a value.
#[derive(Debug)]
pub enum ReadError {
    /// One of the three calls failed.
    Call(client::Error),
    /// The pieces disagree (tags changed between the two tag reads, found vs not found).
    Inconsistent(String),
}

/// Reads a key's register: ListResourceTags, DescribeKey, ListResourceTags.
///
/// DescribeKey does not return tags. Every tag write names a value never written before and
/// tags are never removed, so a tag holds one value over one interval: when both tag reads
/// agree, the tags were constant from the first to the second, and in particular at the
/// moment DescribeKey was served. The triple is then one atomic read. `Ok(None)`: the key
/// does not exist (all three said NotFound).
pub async fn read_meta(client: &Client, key: &str) -> Result<Option<KeyMeta>, ReadError> {
    let t1 = list_tags(client, key).await?;
    let d = match client.describe_key().key_id(key).send().await {
        Ok(out) => Some(out.key_metadata.unwrap_or_default()),
        Err(e) if e.error_type() == "NotFoundException" => None,
        Err(e) => return Err(ReadError::Call(e)),
    };
    let t2 = list_tags(client, key).await?;
    match (t1, d, t2) {
        (None, None, None) => Ok(None),
        (Some(t1), Some(d), Some(t2)) if t1 == t2 => {
            let status = match d.key_state.as_str() {
                "Enabled" => KeyStatus::Enabled,
                "Disabled" => KeyStatus::Disabled,
                "PendingDeletion" => KeyStatus::PendingDeletion,
                other => {
                    return Err(ReadError::Inconsistent(format!(
                        "unexpected key state {other:?}"
                    )))
                }
            };
            Ok(Some(KeyMeta {
                description: d.description,
                status,
                tags: t1,
            }))
        }
        (Some(_), Some(_), Some(_)) => Err(ReadError::Inconsistent(
            "tags changed during the read".into(),
        )),
        (t1, d, t2) => Err(ReadError::Inconsistent(format!(
            "found/not found disagree: tags {} describe {} tags {}",
            t1.is_some(),
            d.is_some(),
            t2.is_some()
        ))),
    }
}

async fn list_tags(
    client: &Client,
    key: &str,
) -> Result<Option<BTreeMap<String, String>>, ReadError> {
    let mut tags = BTreeMap::new();
    let mut marker = None;
    loop {
        let mut req = client.list_resource_tags().key_id(key);
        if let Some(m) = marker.take() {
            req = req.marker(m);
        }
        match req.send().await {
            Ok(out) => {
                tags.extend(out.tags.into_iter().map(|t| (t.tag_key, t.tag_value)));
                match out.next_marker.filter(|_| out.truncated) {
                    Some(m) => marker = Some(m),
                    None => return Ok(Some(tags)),
                }
            }
            Err(e) if e.error_type() == "NotFoundException" => return Ok(None),
            Err(e) => return Err(ReadError::Call(e)),
        }
    }
}

/// Records a [`read_meta`] as one `describe` call. Returns true when the process crashed.
pub async fn recorded_read(ctx: &Ctx, process: u64, key: &str) -> bool {
    let pending = ctx
        .recorder
        .invoke(process, F::Describe, Some(key), Value::None);
    match read_meta(&ctx.client, key).await {
        Ok(meta) => {
            ctx.recorder.ok(pending, Value::Meta(meta));
            false
        }
        // A read changes nothing: whatever went wrong, it did not happen.
        Err(ReadError::Inconsistent(msg)) => {
            ctx.recorder.fail(pending, msg);
            false
        }
        Err(ReadError::Call(e)) => {
            let crashed = match classify(&e) {
                Outcome::Fail(msg) => {
                    ctx.recorder.fail(pending, msg);
                    false
                }
                Outcome::Info(msg) => {
                    ctx.recorder.info(pending, msg);
                    true
                }
            };
            backoff_after(&e).await;
            crashed
        }
    }
}

/// Sleeps a little between retries of the final phase and setup.
pub async fn pause_before_retry(attempt: u32) {
    let ms = (100u64 << attempt.min(4)).min(1000);
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// Runs `body` until it returns `Some` or `within` passes.
pub async fn retry_until<T, Fut>(within: Duration, mut body: impl FnMut(u32) -> Fut) -> Option<T>
where
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    let mut attempt = 0;
    loop {
        if let Some(v) = body(attempt).await {
            return Some(v);
        }
        if Instant::now() >= deadline || crate::signals::interrupted() {
            return None;
        }
        pause_before_retry(attempt).await;
        attempt += 1;
    }
}
