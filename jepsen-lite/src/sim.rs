//! A simulated, linearizable keyraft: generates realistic concurrent histories (with
//! timeouts, fault windows and a final phase) for the self-test and the checker tests, and
//! plants anomalies into them on request.
//!
//! Every call gets an invocation time, a completion time and, if it takes effect, a
//! linearization point strictly between them (calls with unknown outcome may take effect
//! after they timed out, or never). The true state is computed by replaying the
//! linearization points in time order through the same register [`model`](crate::check::model),
//! so a history without plants is linearizable by construction. Planted anomalies are
//! sequential segments after quiescence (or final-phase lies) whose values are unique, so each
//! one is detectable whatever the concurrent part did.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashSet};

use crate::check::model::{self, Step};
use crate::check::ReplicaHash;
use crate::history::{FaultWindow, History, KeyMeta, KeyStatus, Op, OpType, Value, F};

/// Shape of a simulated run.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// RNG seed; the same config gives the same history.
    pub seed: u64,
    /// Concurrent client processes.
    pub processes: usize,
    /// Keys created up front.
    pub keys: usize,
    /// Calls in the main (concurrent) phase.
    pub calls: usize,
    /// Probability that a call times out (`info`); four times higher inside fault windows.
    pub info_rate: f64,
    /// Whether to schedule/cancel deletions (and purge some keys).
    pub deletes: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 1,
            processes: 10,
            keys: 5,
            calls: 1_000,
            info_rate: 0.05,
            deletes: true,
        }
    }
}

/// An anomaly to plant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plant {
    /// A read after two sequential writes returns the first one's value.
    StaleRead,
    /// An acknowledged write never takes effect.
    LostWrite,
    /// An acknowledged CreateKey is missing from the final reads.
    LostCreate,
    /// A key scheduled for deletion is read back enabled.
    Resurrection,
    /// An acknowledged ciphertext fails to decrypt under an enabled key.
    Undecryptable,
    /// An acknowledged ciphertext decrypts to another plaintext.
    WrongPlaintext,
    /// One replica reports a different state hash.
    DivergentReplica,
    /// After an acknowledged DisableKey, an Encrypt invoked 1.5 s later (past the 1.1 s
    /// default bound) succeeds; the key is enabled again afterwards.
    LateEncryptAfterDisable,
    /// The same after a PutKeyPolicy that stops the encrypting identity.
    LateEncryptAfterPolicyDeny,
    /// Not an anomaly: an Encrypt succeeds 600 ms after a DisableKey (a cache within its
    /// bound), and the first one past the bound is refused.
    EncryptWithinStaleness,
}

/// A generated run.
#[derive(Debug, Clone)]
pub struct Simulation {
    /// The recorded history.
    pub history: History,
    /// State hashes of three replicas.
    pub replicas: Vec<ReplicaHash>,
    /// Fault windows of the (simulated) nemesis.
    pub faults: Vec<FaultWindow>,
}

/// SplitMix64: tiny, seedable, good enough for test data (no `rand` dependency).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `lo..hi` (`hi > lo`).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo)
    }
    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

const US: u64 = 1_000;
const MS: u64 = 1_000_000;

#[derive(Debug, Clone)]
struct SimCall {
    process: u64,
    f: F,
    key: Option<String>,
    input: Value,
    invoke: u64,
    lin: Option<u64>,
    complete: u64,
    timed_out: bool,
    outcome: OpType,
    output: Value,
    error: Option<String>,
}

struct Sim {
    rng: Rng,
    calls: Vec<SimCall>,
    truth: BTreeMap<String, Option<KeyMeta>>,
    next_process: u64,
}

impl Sim {
    fn fresh_process(&mut self) -> u64 {
        self.next_process += 1;
        self.next_process
    }

    /// Appends a call that is applied immediately (only for sequential segments, where no
    /// other call is concurrent), returning its completion time.
    fn sequential(
        &mut self,
        at: u64,
        f: F,
        key: &str,
        input: Value,
        apply: bool,
        output: Value,
    ) -> u64 {
        let process = self.fresh_process();
        if apply {
            let state = self.truth.get(key).cloned().flatten();
            if let Step::To(s) = model::step(&state, f, &input, None) {
                self.truth.insert(key.to_owned(), s);
            }
        }
        self.calls.push(SimCall {
            process,
            f,
            key: Some(key.to_owned()),
            input,
            invoke: at,
            lin: Some(at + 50 * US),
            complete: at + 100 * US,
            timed_out: false,
            outcome: OpType::Ok,
            output,
            error: None,
        });
        at + 150 * US
    }

    fn live_key(&self) -> Option<String> {
        self.truth
            .iter()
            .find(|(_, m)| {
                m.as_ref()
                    .is_some_and(|m| m.status != KeyStatus::PendingDeletion)
            })
            .map(|(k, _)| k.clone())
    }
}

fn in_fault(faults: &[FaultWindow], t: u64) -> bool {
    faults.iter().any(|w| w.start <= t && t < w.end)
}

/// Generates a run; `plants` are planted after the concurrent phase.
pub fn simulate(cfg: &SimConfig, plants: &[Plant]) -> Simulation {
    let mut sim = Sim {
        rng: Rng::new(cfg.seed),
        calls: Vec::new(),
        truth: BTreeMap::new(),
        next_process: 0,
    };
    let procs = cfg.processes.max(1);
    let mut slots: Vec<(u64, u64)> = (0..procs).map(|_| (sim.fresh_process(), 0)).collect();

    // Phase 1: create the keys.
    for i in 0..cfg.keys {
        let slot = i % procs;
        let key = format!("k{i}");
        let meta = KeyMeta::new(format!("init-{key}"));
        let invoke = slots[slot].1 + sim.rng.range(1, 50) * US;
        let lin = invoke + sim.rng.range(1, 300) * US;
        let complete = lin + sim.rng.range(1, 300) * US;
        sim.truth.insert(key.clone(), Some(meta.clone()));
        sim.calls.push(SimCall {
            process: slots[slot].0,
            f: F::CreateKey,
            key: Some(key),
            input: Value::Meta(Some(meta.clone())),
            invoke,
            lin: Some(lin),
            complete,
            timed_out: false,
            outcome: OpType::Ok,
            output: Value::Meta(Some(meta)),
            error: None,
        });
        slots[slot].1 = complete;
    }
    let t1 = slots.iter().map(|s| s.1).max().unwrap_or(0) + MS;
    for s in &mut slots {
        s.1 = t1;
    }

    // Phase 2: concurrent random calls. Roughly 350 µs per call per process.
    let span = (cfg.calls as u64 * 400 * US) / procs as u64 + MS;
    let faults = vec![
        FaultWindow {
            start: t1 + span / 5,
            end: t1 + span * 7 / 20,
            name: "partition n1 | n2,n3".into(),
        },
        FaultWindow {
            start: t1 + span * 3 / 5,
            end: t1 + span * 7 / 10,
            name: "kill n2".into(),
        },
    ];
    let keys: Vec<String> = sim.truth.keys().cloned().collect();
    let main_start = sim.calls.len();
    for n in 0..cfg.calls {
        if keys.is_empty() {
            break;
        }
        let slot = (0..procs).min_by_key(|&i| slots[i].1).unwrap_or(0);
        let invoke = slots[slot].1 + sim.rng.range(1, 50) * US;
        let key = keys[sim.rng.range(0, keys.len() as u64) as usize].clone();
        let roll = sim.rng.range(0, 100);
        let (f, input) = match roll {
            0..35 => (F::Describe, Value::None),
            35..50 => (F::UpdateDescription, Value::Description(format!("d{n}"))),
            50..58 => (F::Enable, Value::None),
            58..66 => (F::Disable, Value::None),
            66..76 => {
                let t = format!("t{}", sim.rng.range(0, 3));
                let v = format!("v{}", sim.rng.range(0, 4));
                (F::Tag, Value::Tags([(t, v)].into()))
            }
            76..90 => (F::Encrypt, Value::Plaintext(format!("pt{n}"))),
            90..95 if cfg.deletes => (F::ScheduleDelete, Value::None),
            95..100 if cfg.deletes => (F::CancelDelete, Value::None),
            _ => (F::Describe, Value::None),
        };
        let faulty = in_fault(&faults, invoke);
        let rate = if faulty {
            (cfg.info_rate * 4.0).min(0.6)
        } else {
            cfg.info_rate
        };
        let slow = if faulty { 5 } else { 1 };
        let lin = invoke + sim.rng.range(1, 300 * slow) * US;
        let mut complete = lin + sim.rng.range(1, 300 * slow) * US;
        let timed_out = f != F::Describe && sim.rng.chance(rate);
        let lin = if timed_out {
            // It may still happen, even after the client gave up, or never.
            complete = invoke + 2 * MS;
            sim.rng
                .chance(0.5)
                .then(|| invoke + sim.rng.range(1, 4 * MS))
        } else {
            Some(lin)
        };
        sim.calls.push(SimCall {
            process: slots[slot].0,
            f,
            key: Some(key),
            input,
            invoke,
            lin,
            complete,
            timed_out,
            outcome: OpType::Ok,
            output: Value::None,
            error: None,
        });
        slots[slot].1 = complete;
        if timed_out {
            // A process with a call of unknown outcome is crashed; continue as a new one.
            slots[slot].0 = sim.fresh_process();
        }
    }

    // Replay linearization points in time order to compute outcomes and outputs.
    let mut order: Vec<usize> = (main_start..sim.calls.len())
        .filter(|&i| sim.calls[i].lin.is_some())
        .collect();
    order.sort_by_key(|&i| sim.calls[i].lin);
    let mut purges: BinaryHeap<Reverse<(u64, String)>> = BinaryHeap::new();
    let mut last_event = t1;
    let mut purged = 0;
    for i in order {
        let lin = sim.calls[i].lin.unwrap_or(0);
        while purges.peek().is_some_and(|Reverse((t, _))| *t <= lin) {
            if let Some(Reverse((_, k))) = purges.pop() {
                purge(&mut sim.truth, &k);
            }
        }
        let c = &sim.calls[i];
        let key = c.key.clone().unwrap_or_default();
        let state = sim.truth.get(&key).cloned().flatten();
        let (outcome, output, error) = match c.f {
            F::Describe => (OpType::Ok, Value::Meta(state), None),
            F::Encrypt => match &state {
                Some(m) if m.enabled() => {
                    let Value::Plaintext(p) = &c.input else {
                        unreachable!("encrypts are generated with a plaintext")
                    };
                    let ct = format!("ct-{}-{}", key, p);
                    (
                        OpType::Ok,
                        Value::Encrypted {
                            plaintext: p.clone(),
                            ciphertext: ct,
                        },
                        None,
                    )
                }
                _ => (OpType::Fail, Value::None, Some(refusal(&state))),
            },
            f => match model::step(&state, f, &c.input, None) {
                Step::Illegal => (OpType::Fail, Value::None, Some(refusal(&state))),
                Step::Unchanged => (OpType::Ok, Value::None, None),
                Step::To(s) => {
                    // Purges are final: keep them rare so most keys stay busy.
                    if f == F::ScheduleDelete && purged < cfg.keys / 4 && sim.rng.chance(0.2) {
                        purged += 1;
                        purges.push(Reverse((lin + sim.rng.range(1, 5 * MS), key.clone())));
                    }
                    sim.truth.insert(key.clone(), s);
                    (OpType::Ok, Value::None, None)
                }
            },
        };
        let c = &mut sim.calls[i];
        c.outcome = outcome;
        c.output = output;
        c.error = error;
        last_event = last_event.max(lin);
    }
    while let Some(Reverse((t, k))) = purges.pop() {
        purge(&mut sim.truth, &k);
        last_event = last_event.max(t);
    }
    for c in &mut sim.calls[main_start..] {
        last_event = last_event.max(c.complete);
        if c.timed_out {
            c.outcome = OpType::Info;
            c.output = Value::None;
            c.error = Some("timeout".into());
        }
    }

    // Planted anomalies: sequential segments after quiescence.
    let mut t = last_event + MS;
    let mut omitted: HashSet<String> = HashSet::new();
    let mut corrupt: BTreeMap<String, &'static str> = BTreeMap::new();
    let mut diverge = false;
    for plant in plants {
        match plant {
            Plant::StaleRead | Plant::LostWrite => {
                let key = live_or_new(&mut sim, &mut t);
                let (first, second) = if *plant == Plant::StaleRead {
                    ("planted-A", "planted-B")
                } else {
                    ("planted-base", "planted-lost")
                };
                t = sim.sequential(
                    t,
                    F::UpdateDescription,
                    &key,
                    Value::Description(first.into()),
                    true,
                    Value::None,
                );
                let old = sim.truth.get(&key).cloned().flatten();
                let lost = *plant == Plant::LostWrite;
                t = sim.sequential(
                    t,
                    F::UpdateDescription,
                    &key,
                    Value::Description(second.into()),
                    !lost,
                    Value::None,
                );
                if !lost {
                    t = sim.sequential(t, F::Describe, &key, Value::None, false, Value::Meta(old));
                }
            }
            Plant::LostCreate => {
                let key = "k-lost".to_owned();
                let meta = KeyMeta::new("lost");
                t = sim.sequential(
                    t,
                    F::CreateKey,
                    &key,
                    Value::Meta(Some(meta.clone())),
                    true,
                    Value::Meta(Some(meta)),
                );
                sim.truth.insert(key.clone(), None);
                omitted.insert(key);
            }
            Plant::Resurrection => {
                let key = "k-resurrected".to_owned();
                let meta = KeyMeta::new("resurrected");
                t = sim.sequential(
                    t,
                    F::CreateKey,
                    &key,
                    Value::Meta(Some(meta.clone())),
                    true,
                    Value::Meta(Some(meta.clone())),
                );
                t = sim.sequential(t, F::ScheduleDelete, &key, Value::None, true, Value::None);
                // The deletion is undone, e.g. by a snapshot from before it.
                sim.truth.insert(key.clone(), Some(meta.clone()));
                t = sim.sequential(
                    t,
                    F::Describe,
                    &key,
                    Value::None,
                    false,
                    Value::Meta(Some(meta)),
                );
            }
            Plant::Undecryptable | Plant::WrongPlaintext => {
                let key = live_or_new(&mut sim, &mut t);
                t = sim.sequential(t, F::Enable, &key, Value::None, true, Value::None);
                let pt = format!("pt-planted-{plant:?}");
                let ct = format!("ct-{key}-{pt}");
                t = sim.sequential(
                    t,
                    F::Encrypt,
                    &key,
                    Value::Plaintext(pt.clone()),
                    false,
                    Value::Encrypted {
                        plaintext: pt,
                        ciphertext: ct.clone(),
                    },
                );
                corrupt.insert(
                    ct,
                    if *plant == Plant::Undecryptable {
                        ""
                    } else {
                        "pt-somebody-else"
                    },
                );
            }
            Plant::DivergentReplica => diverge = true,
            Plant::LateEncryptAfterDisable
            | Plant::LateEncryptAfterPolicyDeny
            | Plant::EncryptWithinStaleness => {
                // A key of its own: an Enable of unknown outcome on an older key may apply at
                // any time, which would (rightly) leave the revocation nothing to prove.
                let key = format!("k-revoked-{plant:?}");
                let meta = KeyMeta::new("revoked");
                t = sim.sequential(
                    t,
                    F::CreateKey,
                    &key,
                    Value::Meta(Some(meta.clone())),
                    true,
                    Value::Meta(Some(meta)),
                );
                let by_policy = *plant == Plant::LateEncryptAfterPolicyDeny;
                let policy = |allows_encrypt| Value::Policy {
                    name: if allows_encrypt { "allow" } else { "deny" }.into(),
                    allows_encrypt,
                };
                t = if by_policy {
                    sim.sequential(t, F::PutKeyPolicy, &key, policy(false), false, Value::None)
                } else {
                    sim.sequential(t, F::Disable, &key, Value::None, true, Value::None)
                };
                let ack = t - 50 * US;
                let late = *plant != Plant::EncryptWithinStaleness;
                let pt = format!("pt-planted-{plant:?}");
                t = sim.sequential(
                    ack + if late { 1_500 } else { 600 } * MS,
                    F::Encrypt,
                    &key,
                    Value::Plaintext(pt.clone()),
                    false,
                    Value::Encrypted {
                        plaintext: pt,
                        ciphertext: format!("ct-{key}-{plant:?}"),
                    },
                );
                if !late {
                    // Past the bound the revocation holds.
                    let at = ack + 1_500 * MS;
                    let process = sim.fresh_process();
                    sim.calls.push(SimCall {
                        process,
                        f: F::Encrypt,
                        key: Some(key.clone()),
                        input: Value::Plaintext("pt-refused".into()),
                        invoke: at,
                        lin: None,
                        complete: at + 100 * US,
                        timed_out: false,
                        outcome: OpType::Fail,
                        output: Value::None,
                        error: Some("DisabledException".into()),
                    });
                    t = at + 150 * US;
                }
                t = if by_policy {
                    sim.sequential(t, F::PutKeyPolicy, &key, policy(true), false, Value::None)
                } else {
                    sim.sequential(t, F::Enable, &key, Value::None, true, Value::None)
                };
            }
        }
    }

    // Final phase, after healing: read every key, list keys, decrypt every ciphertext.
    let mut final_calls: Vec<FinalCall> = Vec::new();
    for (key, state) in &sim.truth {
        final_calls.push((
            F::Describe,
            Some(key.clone()),
            Value::None,
            OpType::Ok,
            Value::Meta(state.clone()),
            None,
        ));
    }
    let listed: Vec<String> = sim
        .truth
        .iter()
        .filter(|(k, m)| m.is_some() && !omitted.contains(*k))
        .map(|(k, _)| k.clone())
        .collect();
    final_calls.push((
        F::ListKeys,
        None,
        Value::None,
        OpType::Ok,
        Value::Keys(listed),
        None,
    ));
    let encrypted: Vec<(String, String, String)> = sim
        .calls
        .iter()
        .filter_map(|c| match (&c.outcome, &c.output) {
            (
                OpType::Ok,
                Value::Encrypted {
                    plaintext,
                    ciphertext,
                },
            ) => Some((
                c.key.clone().unwrap_or_default(),
                plaintext.clone(),
                ciphertext.clone(),
            )),
            _ => None,
        })
        .collect();
    for (key, pt, ct) in encrypted {
        let state = sim.truth.get(&key).cloned().flatten();
        let (outcome, output, error) = match corrupt.get(&ct) {
            Some(&"") => (
                OpType::Fail,
                Value::None,
                Some("InvalidCiphertextException".into()),
            ),
            Some(other) => (OpType::Ok, Value::Plaintext((*other).into()), None),
            None if state.as_ref().is_some_and(KeyMeta::enabled) => {
                (OpType::Ok, Value::Plaintext(pt), None)
            }
            None => (OpType::Fail, Value::None, Some(refusal(&state))),
        };
        final_calls.push((
            F::Decrypt,
            Some(key),
            Value::Ciphertext(ct),
            outcome,
            output,
            error,
        ));
    }
    let mut slots: Vec<(u64, u64)> = (0..procs.min(8))
        .map(|_| (sim.fresh_process(), t + MS))
        .collect();
    for (f, key, input, outcome, output, error) in final_calls {
        let slot = (0..slots.len()).min_by_key(|&i| slots[i].1).unwrap_or(0);
        let invoke = slots[slot].1 + sim.rng.range(1, 50) * US;
        let complete = invoke + sim.rng.range(2, 400) * US;
        sim.calls.push(SimCall {
            process: slots[slot].0,
            f,
            key,
            input,
            invoke,
            lin: Some(invoke + 1),
            complete,
            timed_out: false,
            outcome,
            output,
            error,
        });
        slots[slot].1 = complete;
    }

    let hash = format!(
        "{:016x}",
        fnv1a(
            serde_json::to_string(&sim.truth)
                .unwrap_or_default()
                .as_bytes()
        )
    );
    let replicas = (1..=3)
        .map(|n| ReplicaHash {
            node: format!("n{n}"),
            hash: if diverge && n == 3 {
                format!("{:016x}", !fnv1a(hash.as_bytes()))
            } else {
                hash.clone()
            },
        })
        .collect();
    Simulation {
        history: emit(&sim.calls),
        replicas,
        faults,
    }
}

/// A final-phase call: function, key, input, outcome, output, error.
type FinalCall = (F, Option<String>, Value, OpType, Value, Option<String>);

fn live_or_new(sim: &mut Sim, t: &mut u64) -> String {
    if let Some(k) = sim.live_key() {
        return k;
    }
    let key = format!("k-extra-{}", sim.truth.len());
    let meta = KeyMeta::new("extra");
    *t = sim.sequential(
        *t,
        F::CreateKey,
        &key,
        Value::Meta(Some(meta.clone())),
        true,
        Value::Meta(Some(meta)),
    );
    key
}

fn purge(truth: &mut BTreeMap<String, Option<KeyMeta>>, key: &str) {
    if let Some(slot) = truth.get_mut(key) {
        if slot
            .as_ref()
            .is_some_and(|m| m.status == KeyStatus::PendingDeletion)
        {
            *slot = None;
        }
    }
}

fn refusal(state: &Option<KeyMeta>) -> String {
    match state {
        None => "NotFoundException",
        Some(m) if m.status == KeyStatus::Disabled => "DisabledException",
        Some(_) => "KMSInvalidStateException",
    }
    .into()
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Turns calls into invoke and completion events, ordered by time.
fn emit(calls: &[SimCall]) -> History {
    let mut events: Vec<(u64, usize, bool)> = Vec::with_capacity(calls.len() * 2);
    for (i, c) in calls.iter().enumerate() {
        events.push((c.invoke, i, false));
        events.push((c.complete, i, true));
    }
    events.sort_unstable();
    let mut h = History::new();
    for (time, i, done) in events {
        let c = &calls[i];
        let key = if c.f == F::CreateKey && !done {
            None
        } else {
            c.key.clone()
        };
        h.push(Op {
            process: c.process,
            index: 0,
            op_type: if done { c.outcome } else { OpType::Invoke },
            f: c.f,
            key,
            value: if done {
                c.output.clone()
            } else {
                c.input.clone()
            },
            error: if done { c.error.clone() } else { None },
            time,
            node: None,
        });
    }
    h
}
