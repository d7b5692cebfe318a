//! The history: what clients asked for and what they were told, in the order they saw it.
//!
//! A history is a list of [`Op`] events. Every client call is recorded twice: an
//! [`OpType::Invoke`] when the request is sent and one completion when the client learns the
//! outcome: [`OpType::Ok`] (it happened), [`OpType::Fail`] (it definitely did not happen) or
//! [`OpType::Info`] (unknown: a timeout, a dropped connection; it may take effect at any time
//! from its invocation until the end of the test). As in Jepsen, a process that got an `info`
//! is considered crashed: the runner continues with a fresh process id, so each process has at
//! most one call in flight and its invoke/complete pairs never interleave.
//!
//! Timestamps are monotonic nanoseconds since the start of the test (see [`Recorder`]).
//! On disk a history is JSON Lines, one [`Op`] per line (`history.jsonl`).

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufWriter, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

/// Outcome class of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpType {
    /// The request was sent.
    Invoke,
    /// The call was acknowledged: it took effect exactly once, between invoke and now.
    Ok,
    /// The call definitely did not take effect.
    Fail,
    /// Unknown outcome (timeout, connection lost): it may or may not take effect, at any time
    /// until the end of the history.
    Info,
}

/// The operation a client performed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum F {
    /// CreateKey. Invoke value: [`Value::Meta`] with the requested description and tags;
    /// the ok event carries the new key id in [`Op::key`].
    CreateKey,
    /// DescribeKey, a read of the key's register. Ok value: [`Value::Meta`] (`None` =
    /// NotFoundException).
    Describe,
    /// UpdateKeyDescription. Value: [`Value::Description`].
    UpdateDescription,
    /// EnableKey. Value: [`Value::None`].
    Enable,
    /// DisableKey. Value: [`Value::None`].
    Disable,
    /// TagResource. Value: [`Value::Tags`] (merged into the key's tags).
    Tag,
    /// ScheduleKeyDeletion. Value: [`Value::None`].
    ScheduleDelete,
    /// CancelKeyDeletion (the key comes back Disabled, as in AWS). Value: [`Value::None`].
    CancelDelete,
    /// Encrypt. Invoke value: [`Value::Plaintext`]; ok value: [`Value::Encrypted`].
    Encrypt,
    /// Decrypt, normally in the final phase after healing. Invoke value:
    /// [`Value::Ciphertext`]; ok value: [`Value::Plaintext`].
    Decrypt,
    /// ListKeys, the final read of all keys. Ok value: [`Value::Keys`].
    ListKeys,
    /// PutKeyPolicy. Value: [`Value::Policy`]. Not part of the register: the revocation
    /// checker reads it (does the policy let the encrypting identity Encrypt?).
    PutKeyPolicy,
    /// ReplicateKey of a multi-region primary into the second region. Value:
    /// [`Value::Region`] (the replica region). Not part of the register (the primary's
    /// description, state and tags do not change).
    ReplicateKey,
    /// RotateKeyOnDemand on a multi-region primary. Value: [`Value::None`].
    Rotate,
    /// Decrypt in the replica region of a ciphertext made in the primary's region. Invoke
    /// value: [`Value::Ciphertext`]; ok value: [`Value::Plaintext`]. Checked by the
    /// `replica-decryptable` checker, not by `decryptable`.
    DecryptReplica,
}

impl F {
    /// Operations on the per-key register checked for linearizability.
    pub fn is_register_op(self) -> bool {
        matches!(
            self,
            F::CreateKey
                | F::Describe
                | F::UpdateDescription
                | F::Enable
                | F::Disable
                | F::Tag
                | F::ScheduleDelete
                | F::CancelDelete
        )
    }

    /// Register operations that change state (everything but `describe`).
    pub fn is_register_write(self) -> bool {
        self.is_register_op() && self != F::Describe
    }
}

/// The AWS key state as far as the register model cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyStatus {
    /// `KeyState: Enabled`.
    Enabled,
    /// `KeyState: Disabled`.
    Disabled,
    /// `KeyState: PendingDeletion`: only reads and CancelKeyDeletion are allowed.
    PendingDeletion,
}

/// The register held per key: the metadata tuple DescribeKey returns.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct KeyMeta {
    /// `Description`.
    pub description: String,
    /// `KeyState` (the `enabled` flag is `status == Enabled`).
    pub status: KeyStatus,
    /// Tags, by tag key.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

impl KeyMeta {
    /// A freshly created key: enabled, with the given description and tags.
    pub fn new(description: impl Into<String>) -> Self {
        KeyMeta {
            description: description.into(),
            status: KeyStatus::Enabled,
            tags: BTreeMap::new(),
        }
    }

    /// Whether the key is usable for cryptographic operations.
    pub fn enabled(&self) -> bool {
        self.status == KeyStatus::Enabled
    }
}

/// Input (on invoke) or output (on ok) of an operation; see [`F`] for which goes with which.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Value {
    /// Nothing to say (Enable, Disable, a read's invoke, ...).
    #[default]
    None,
    /// A key's metadata; `None` means the key was not found.
    Meta(Option<KeyMeta>),
    /// A new description.
    Description(String),
    /// Tags to merge into the key's tags.
    Tags(BTreeMap<String, String>),
    /// A plaintext, or a digest of it chosen by the runner: checkers only compare for equality.
    Plaintext(String),
    /// A ciphertext blob, base64.
    Ciphertext(String),
    /// An acknowledged encryption: what was encrypted and what came back.
    Encrypted {
        /// Plaintext (or its digest), as on the invoke.
        plaintext: String,
        /// The ciphertext blob, base64.
        ciphertext: String,
    },
    /// Key ids (ListKeys).
    Keys(Vec<String>),
    /// A region name (ReplicateKey's replica region).
    Region(String),
    /// A key policy written by the runner: its name, and whether it lets the identity that
    /// the revocation workload encrypts as (`role/App`) call `kms:Encrypt`.
    Policy {
        /// The runner's name for the document (`allow-app-encrypt`, ...).
        name: String,
        /// Whether the App identity may Encrypt under it.
        allows_encrypt: bool,
    },
}

/// One event of the history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Op {
    /// Logical client; one call in flight at a time.
    pub process: u64,
    /// Position of this event in the history (0, 1, 2, ...).
    pub index: u64,
    /// Invoke or outcome.
    #[serde(rename = "type")]
    pub op_type: OpType,
    /// What was called.
    pub f: F,
    /// Key id the call is about, when known (a create's invoke has none; its ok has the id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Input or output.
    #[serde(default)]
    pub value: Value,
    /// Error text on fail/info (the AWS `__type` or a transport error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Nanoseconds since the start of the test, monotonic.
    pub time: u64,
    /// Which node the client talked to, when known; informative only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// A fault injected by a nemesis, for the report: `[start, end)` in history nanoseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultWindow {
    /// When the fault began.
    pub start: u64,
    /// When it was healed.
    pub end: u64,
    /// What it was (`partition {1,2}|{3}`, `kill n2`, `pause n1`, ...).
    pub name: String,
}

/// A call and its completion, paired up.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    /// The invoke event.
    pub invoke: &'a Op,
    /// Its completion; `None` if the history ended first (treated like `info`).
    pub complete: Option<&'a Op>,
}

impl<'a> Call<'a> {
    /// Outcome; a call that never completed counts as `Info`.
    pub fn outcome(&self) -> OpType {
        self.complete.map_or(OpType::Info, |c| c.op_type)
    }

    /// Key id: the completion's when it has one (creates learn their id there).
    pub fn key(&self) -> Option<&'a str> {
        self.complete
            .and_then(|c| c.key.as_deref())
            .or(self.invoke.key.as_deref())
    }

    /// History index of the completion; `u64::MAX` for calls with unknown outcome (they
    /// stay open until the end).
    pub fn end(&self) -> u64 {
        match self.complete {
            Some(c) if c.op_type != OpType::Info => c.index,
            _ => u64::MAX,
        }
    }

    /// The completion's value (the output), if the call completed.
    pub fn output(&self) -> Option<&'a Value> {
        self.complete.map(|c| &c.value)
    }
}

/// An ordered list of events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    /// Events in the order they happened.
    pub ops: Vec<Op>,
}

impl History {
    /// An empty history.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends an event, assigning its index.
    pub fn push(&mut self, mut op: Op) -> u64 {
        let index = self.ops.len() as u64;
        op.index = index;
        self.ops.push(op);
        index
    }

    /// Number of events.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether there are no events.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Pairs every invoke with its process's next completion, in invoke order.
    ///
    /// Fails on a malformed history: a completion without an invoke, or a second invoke
    /// from a process whose previous call is still open.
    pub fn calls(&self) -> anyhow::Result<Vec<Call<'_>>> {
        let mut open: HashMap<u64, usize> = HashMap::new();
        let mut calls: Vec<Call<'_>> = Vec::with_capacity(self.ops.len() / 2 + 1);
        for op in &self.ops {
            match op.op_type {
                OpType::Invoke => {
                    if let Some(prev) = open.insert(op.process, calls.len()) {
                        bail!(
                            "process {} invoked op {} while op {} is still open",
                            op.process,
                            op.index,
                            calls[prev].invoke.index
                        );
                    }
                    calls.push(Call {
                        invoke: op,
                        complete: None,
                    });
                }
                _ => {
                    let Some(i) = open.remove(&op.process) else {
                        bail!(
                            "op {} completes process {} which has no open call",
                            op.index,
                            op.process
                        );
                    };
                    if calls[i].invoke.f != op.f {
                        bail!(
                            "op {} ({:?}) completes op {} ({:?})",
                            op.index,
                            op.f,
                            calls[i].invoke.index,
                            calls[i].invoke.f
                        );
                    }
                    calls[i].complete = Some(op);
                }
            }
        }
        Ok(calls)
    }

    /// Time of the last event.
    pub fn end_time(&self) -> u64 {
        self.ops.iter().map(|o| o.time).max().unwrap_or(0)
    }

    /// Writes JSON Lines.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let file =
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let mut w = BufWriter::new(file);
        for op in &self.ops {
            serde_json::to_writer(&mut w, op)?;
            w.write_all(b"\n")?;
        }
        w.flush()?;
        Ok(())
    }

    /// Reads JSON Lines written by [`History::save`] (blank lines are skipped).
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        Ok(History {
            ops: load_jsonl(path)?,
        })
    }
}

/// Reads a JSON Lines file of `T`s.
pub fn load_jsonl<T: serde::de::DeserializeOwned>(path: &Path) -> anyhow::Result<Vec<T>> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut out = Vec::new();
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        out.push(
            serde_json::from_str(&line).with_context(|| format!("{}:{}", path.display(), n + 1))?,
        );
    }
    Ok(out)
}

/// Writes `T`s as JSON Lines.
pub fn save_jsonl<T: Serialize>(path: &Path, items: &[T]) -> anyhow::Result<()> {
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut w = BufWriter::new(file);
    for item in items {
        serde_json::to_writer(&mut w, item)?;
        w.write_all(b"\n")?;
    }
    w.flush()?;
    Ok(())
}

/// A handle on an open call, returned by [`Recorder::invoke`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "complete the call with ok, fail or info"]
pub struct Pending {
    process: u64,
    f: F,
    key: Option<String>,
    /// Index of the invoke event.
    pub index: u64,
}

/// Thread-safe history recorder for workload runners: timestamps from one monotonic clock,
/// indices in append order. Clone it into every client task.
#[derive(Debug, Clone)]
pub struct Recorder {
    start: Instant,
    history: Arc<Mutex<History>>,
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    /// A recorder whose clock starts now.
    pub fn new() -> Self {
        Recorder {
            start: Instant::now(),
            history: Arc::new(Mutex::new(History::new())),
        }
    }

    /// Nanoseconds since the recorder started; use it for fault windows too.
    pub fn now(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    fn append(&self, mut op: Op) -> u64 {
        let mut h = self.history.lock().unwrap_or_else(|e| e.into_inner());
        // Take the time under the lock so that history order and time order agree.
        op.time = self.now();
        h.push(op)
    }

    /// Records an invoke. `key` is `None` only for calls that do not name a key yet
    /// (CreateKey, ListKeys).
    pub fn invoke(&self, process: u64, f: F, key: Option<&str>, value: Value) -> Pending {
        let index = self.append(Op {
            process,
            index: 0,
            op_type: OpType::Invoke,
            f,
            key: key.map(str::to_owned),
            value,
            error: None,
            time: 0,
            node: None,
        });
        Pending {
            process,
            f,
            key: key.map(str::to_owned),
            index,
        }
    }

    fn complete(&self, p: Pending, op_type: OpType, value: Value, error: Option<String>) -> u64 {
        self.append(Op {
            process: p.process,
            index: 0,
            op_type,
            f: p.f,
            key: p.key,
            value,
            error,
            time: 0,
            node: None,
        })
    }

    /// The call took effect; `value` is its output.
    pub fn ok(&self, p: Pending, value: Value) -> u64 {
        self.complete(p, OpType::Ok, value, None)
    }

    /// A CreateKey took effect and produced `key_id`.
    pub fn ok_created(&self, mut p: Pending, key_id: &str, value: Value) -> u64 {
        p.key = Some(key_id.to_owned());
        self.complete(p, OpType::Ok, value, None)
    }

    /// The call definitely did not take effect.
    pub fn fail(&self, p: Pending, error: impl Into<String>) -> u64 {
        self.complete(p, OpType::Fail, Value::None, Some(error.into()))
    }

    /// Unknown outcome. The process must not be reused afterwards.
    pub fn info(&self, p: Pending, error: impl Into<String>) -> u64 {
        self.complete(p, OpType::Info, Value::None, Some(error.into()))
    }

    /// A copy of the history so far.
    pub fn snapshot(&self) -> History {
        self.history
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> History {
        let r = Recorder::new();
        let c = r.invoke(1, F::CreateKey, None, Value::Meta(Some(KeyMeta::new("d"))));
        r.ok_created(c, "k1", Value::Meta(Some(KeyMeta::new("d"))));
        let w = r.invoke(
            2,
            F::UpdateDescription,
            Some("k1"),
            Value::Description("x".into()),
        );
        let rd = r.invoke(3, F::Describe, Some("k1"), Value::None);
        r.info(w, "timeout");
        r.ok(rd, Value::Meta(None));
        r.snapshot()
    }

    #[test]
    fn recorder_assigns_indices_and_monotonic_times() {
        let h = sample();
        assert_eq!(h.len(), 6);
        for (i, op) in h.ops.iter().enumerate() {
            assert_eq!(op.index, i as u64);
        }
        assert!(h.ops.windows(2).all(|w| w[0].time <= w[1].time));
    }

    #[test]
    fn jsonl_round_trips() {
        let h = sample();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.jsonl");
        h.save(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 6);
        assert!(text.contains(r#""type":"invoke""#));
        assert!(text.contains(r#""f":"update-description""#));
        assert_eq!(History::load(&path).unwrap(), h);
    }

    #[test]
    fn calls_pair_invokes_with_completions_and_leave_info_open() {
        let h = sample();
        let calls = h.calls().unwrap();
        assert_eq!(calls.len(), 3);
        assert_eq!(calls[0].key(), Some("k1"), "create learns its key on ok");
        assert_eq!(calls[1].outcome(), OpType::Info);
        assert_eq!(calls[1].end(), u64::MAX);
        assert_eq!(calls[2].outcome(), OpType::Ok);
    }

    #[test]
    fn calls_reject_overlapping_invokes_of_one_process() {
        let mut h = History::new();
        let op = Op {
            process: 1,
            index: 0,
            op_type: OpType::Invoke,
            f: F::Describe,
            key: Some("k".into()),
            value: Value::None,
            error: None,
            time: 0,
            node: None,
        };
        h.push(op.clone());
        h.push(op);
        assert!(h.calls().is_err());
    }
}
