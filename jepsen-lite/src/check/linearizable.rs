//! Linearizability of each key's register, by Wing–Gong–Lowe search as in Porcupine.
//!
//! P-compositionality: a history is linearizable iff each key's sub-history is, so keys are
//! searched independently (and in parallel). Within a key, events are ordered by their
//! position in the history. The search walks a linked list of call and return events,
//! linearizing a call whose model step is legal and backtracking when it reaches the return
//! of a call it has not linearized; `(linearized set, state)` pairs already explored are
//! memoized, which is what makes thousands of operations per key tractable.
//!
//! Calls with unknown outcome (`info`, or never completed) have no return event: they may
//! take effect at any point after their invocation, or never. Two reductions keep them from
//! exploding the search, both sound:
//! - open calls with the same function and input are interchangeable, so they are only
//!   linearized in invocation order;
//! - an open UpdateKeyDescription / TagResource whose written value no acknowledged read ever
//!   returned cannot help explain anything and is dropped.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use serde_json::json;

use super::model::{self, State, Step};
use super::{Anomaly, AnomalyKind, CheckResult, Options};
use crate::history::{Call, KeyMeta, KeyStatus, OpType, Value, F};

/// One call as the search sees it.
#[derive(Debug, Clone)]
pub struct SearchOp {
    /// Position of the invocation (history index).
    pub call: u64,
    /// Position of the return; `None` for calls that stay open until the end.
    pub ret: Option<u64>,
    /// `None` for a call that must be linearized (acknowledged). For an optional (open)
    /// call, its class of interchangeable calls and its rank in that class: open calls of a
    /// class are only ever linearized in rank order.
    pub class: Option<(usize, u16)>,
    /// Whether the call is an acknowledged read: it leaves the state unchanged, except for
    /// a read that observes the key purged.
    pub read_only: bool,
}

/// Why a key's history is not linearizable.
#[derive(Debug, Clone)]
pub struct Stuck<S> {
    /// The call whose return was reached without finding a legal place for it.
    pub op: usize,
    /// How many acknowledged calls had been linearized at the deepest point.
    pub linearized: usize,
    /// Acknowledged calls in total.
    pub total: usize,
    /// States the register could be in at that point (a sample, at most [`MAX_STATES`]).
    pub states: Vec<S>,
}

/// Most states kept for an explanation.
pub const MAX_STATES: usize = 8;

/// Result of one search.
#[derive(Debug, Clone)]
pub enum Outcome<S> {
    /// A linearization exists.
    Linearizable {
        /// Search steps taken.
        steps: u64,
    },
    /// None exists.
    NotLinearizable(Stuck<S>),
    /// The step budget ran out first.
    GaveUp {
        /// Search steps taken.
        steps: u64,
    },
}

const NIL: usize = usize::MAX;
const HEAD: usize = 0;

fn call_node(i: usize) -> usize {
    1 + 2 * i
}
fn ret_node(i: usize) -> usize {
    2 + 2 * i
}
fn op_of(node: usize) -> usize {
    (node - 1) / 2
}
fn is_call(node: usize) -> bool {
    node % 2 == 1
}

struct Bits(Vec<u64>);

impl Bits {
    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    fn clear(&mut self, i: usize) {
        self.0[i / 64] &= !(1 << (i % 64));
    }
}

/// Open calls used so far, per class.
type UsedCounts = Box<[u16]>;

/// WGL search over `ops` from `init`; `step(state, i)` applies op `i`.
///
/// Memoization is by subsumption: a configuration is (acknowledged calls linearized, state,
/// open calls used per class). Having used fewer open calls leaves strictly more options, so
/// a configuration is skipped when one with the same calls and state and no more open calls
/// used per class was already explored.
pub fn search<S: Clone + Eq + Hash>(
    ops: &[SearchOp],
    init: S,
    step: impl Fn(&S, usize) -> Step<S>,
    budget: u64,
) -> Outcome<S> {
    let n = ops.len();
    let total = ops.iter().filter(|o| o.class.is_none()).count();
    if total == 0 {
        return Outcome::Linearizable { steps: 0 };
    }
    let classes = ops
        .iter()
        .filter_map(|o| o.class.map(|c| c.0 + 1))
        .max()
        .unwrap_or(0);
    // The event list: calls and returns ordered by history position.
    let mut events: Vec<(u64, usize)> = Vec::with_capacity(2 * n);
    for (i, op) in ops.iter().enumerate() {
        events.push((op.call, call_node(i)));
        if let Some(r) = op.ret {
            events.push((r, ret_node(i)));
        }
    }
    events.sort_unstable();
    let mut next = vec![NIL; 2 * n + 1];
    let mut prev = vec![NIL; 2 * n + 1];
    let mut last = HEAD;
    for &(_, node) in &events {
        next[last] = node;
        prev[node] = last;
        last = node;
    }
    let unlink = |next: &mut Vec<usize>, prev: &mut Vec<usize>, x: usize| {
        next[prev[x]] = next[x];
        if next[x] != NIL {
            prev[next[x]] = prev[x];
        }
    };
    let relink = |next: &mut Vec<usize>, prev: &mut Vec<usize>, x: usize| {
        next[prev[x]] = x;
        if next[x] != NIL {
            prev[next[x]] = x;
        }
    };

    let mut states: Vec<S> = vec![init.clone()];
    let mut ids: HashMap<S, u32> = HashMap::from([(init, 0)]);
    let mut cur: u32 = 0;
    let mut lin = Bits(vec![0; n.div_ceil(64)]);
    let mut used: Vec<u16> = vec![0; classes];
    let mut seen: HashMap<(Box<[u64]>, u32), Vec<UsedCounts>> = HashMap::new();
    // (op, state before it, pass it was linearized in)
    let mut stack: Vec<(usize, u32, u8)> = Vec::new();
    let mut done = 0usize;
    let mut best: Option<Stuck<u32>> = None;
    let mut steps = 0u64;
    let mut entry = next[HEAD];
    // Each window of candidates is scanned in three passes. Reads first: a read that is
    // legal now can be linearized now without loss of generality (it changes nothing, and
    // everything that had to precede it already has), so it is never a choice point. Then
    // acknowledged writes, then open calls, so that configurations using fewer open calls are
    // explored first and subsume the others.
    let mut pass = 0u8;

    loop {
        steps += 1;
        if steps > budget {
            return Outcome::GaveUp { steps };
        }
        if entry != NIL && is_call(entry) {
            let i = op_of(entry);
            let allowed = match (pass, ops[i].class) {
                (0 | 1, None) => true,
                (2, Some((c, rank))) => used[c] == rank,
                _ => false,
            };
            if allowed {
                let to = match (step(&states[cur as usize], i), pass, ops[i].read_only) {
                    (Step::Illegal, ..) => None,
                    // Unchanging reads in pass 0 only; state-changing reads (observing a
                    // purge) and writes in pass 1.
                    (Step::Unchanged, 0, true) => Some(cur),
                    (Step::To(_) | Step::Unchanged, 0, _) => None,
                    (Step::Unchanged, 1, true) => None,
                    // An open call that changes nothing need not be linearized here.
                    (Step::Unchanged, 2, _) => None,
                    (Step::Unchanged, ..) => Some(cur),
                    (Step::To(s), ..) => Some(match ids.get(&s) {
                        Some(&id) => id,
                        None => {
                            let id = states.len() as u32;
                            states.push(s.clone());
                            ids.insert(s, id);
                            id
                        }
                    }),
                };
                if let Some(to) = to {
                    match ops[i].class {
                        None => lin.set(i),
                        Some((c, _)) => used[c] += 1,
                    }
                    let explored = seen
                        .entry((lin.0.clone().into_boxed_slice(), to))
                        .or_default();
                    let subsumed = explored
                        .iter()
                        .any(|e| e.iter().zip(&used).all(|(a, b)| a <= b));
                    if !subsumed {
                        explored.retain(|e| !e.iter().zip(&used).all(|(a, b)| a >= b));
                        explored.push(used.clone().into_boxed_slice());
                        stack.push((i, cur, pass));
                        cur = to;
                        unlink(&mut next, &mut prev, entry);
                        if ops[i].ret.is_some() {
                            unlink(&mut next, &mut prev, ret_node(i));
                        }
                        if ops[i].class.is_none() {
                            done += 1;
                            if done == total {
                                return Outcome::Linearizable { steps };
                            }
                        }
                        entry = next[HEAD];
                        pass = 0;
                        continue;
                    }
                    match ops[i].class {
                        None => lin.clear(i),
                        Some((c, _)) => used[c] -= 1,
                    }
                }
            }
            entry = next[entry];
        } else if pass < 2 {
            pass += 1;
            entry = next[HEAD];
        } else {
            // The return of a call not yet linearized (or, defensively, the end of the
            // list): something already linearized must move.
            if entry != NIL {
                let better = best.as_ref().is_none_or(|b| done > b.linearized);
                if better {
                    best = Some(Stuck {
                        op: op_of(entry),
                        linearized: done,
                        total,
                        states: vec![cur],
                    });
                } else if let Some(b) = best.as_mut() {
                    if done == b.linearized
                        && b.states.len() < MAX_STATES
                        && !b.states.contains(&cur)
                    {
                        b.states.push(cur);
                    }
                }
            }
            // Undo the last choice; a read was no choice, so undo past it.
            loop {
                let Some((i, before, taken_in)) = stack.pop() else {
                    let b = best.unwrap_or(Stuck {
                        op: 0,
                        linearized: 0,
                        total,
                        states: vec![0],
                    });
                    return Outcome::NotLinearizable(Stuck {
                        op: b.op,
                        linearized: b.linearized,
                        total,
                        states: b
                            .states
                            .iter()
                            .map(|&s| states[s as usize].clone())
                            .collect(),
                    });
                };
                cur = before;
                if ops[i].ret.is_some() {
                    relink(&mut next, &mut prev, ret_node(i));
                }
                relink(&mut next, &mut prev, call_node(i));
                match ops[i].class {
                    None => {
                        lin.clear(i);
                        done -= 1;
                    }
                    Some((c, _)) => used[c] -= 1,
                }
                pass = taken_in;
                entry = next[call_node(i)];
                if pass != 0 {
                    break;
                }
            }
        }
    }
}

/// The calls on one key, ready to search.
struct KeyHistory<'a> {
    key: String,
    calls: Vec<Call<'a>>,
    ops: Vec<SearchOp>,
}

fn partition<'a>(calls: &[Call<'a>]) -> (Vec<KeyHistory<'a>>, usize) {
    let mut by_key: HashMap<&str, Vec<Call<'a>>> = HashMap::new();
    let mut dropped = 0;
    for c in calls {
        if !c.invoke.f.is_register_op() {
            continue;
        }
        let outcome = c.outcome();
        let keep = match outcome {
            OpType::Ok => true,
            // Definitely did not happen.
            OpType::Fail => false,
            // A read of unknown outcome constrains nothing; a create of unknown outcome has
            // no key id anyone could have used.
            _ => c.invoke.f.is_register_write() && c.invoke.f != F::CreateKey,
        };
        if !keep {
            continue;
        }
        if let Some(k) = c.key() {
            by_key.entry(k).or_default().push(*c);
        }
    }
    let mut keys: Vec<KeyHistory<'a>> = Vec::with_capacity(by_key.len());
    for (key, list) in by_key {
        // Values that some acknowledged read returned.
        let mut seen_desc: HashSet<&str> = HashSet::new();
        let mut seen_tags: HashSet<(&str, &str)> = HashSet::new();
        for c in &list {
            if let (F::Describe, Some(Value::Meta(Some(m)))) = (c.invoke.f, c.output()) {
                seen_desc.insert(&m.description);
                seen_tags.extend(m.tags.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            }
        }
        let mut kept: Vec<Call<'a>> = Vec::with_capacity(list.len());
        for c in list {
            let open = c.outcome() != OpType::Ok;
            let unobserved = match (&c.invoke.f, &c.invoke.value) {
                (F::UpdateDescription, Value::Description(d)) => !seen_desc.contains(d.as_str()),
                (F::Tag, Value::Tags(t)) => t
                    .iter()
                    .all(|(k, v)| !seen_tags.contains(&(k.as_str(), v.as_str()))),
                _ => false,
            };
            if open && unobserved {
                dropped += 1;
            } else {
                kept.push(c);
            }
        }
        let ops = build_ops(&kept);
        keys.push(KeyHistory {
            key: key.to_owned(),
            calls: kept,
            ops,
        });
    }
    keys.sort_by(|a, b| b.ops.len().cmp(&a.ops.len()).then(a.key.cmp(&b.key)));
    (keys, dropped)
}

/// Search ops for calls already filtered to one key (and possibly one field).
fn build_ops(calls: &[Call<'_>]) -> Vec<SearchOp> {
    // Open calls with the same function and input form a class; rank = order within it.
    let mut classes: HashMap<(F, &Value), (usize, u16)> = HashMap::new();
    calls
        .iter()
        .map(|c| {
            let must = c.outcome() == OpType::Ok;
            let class = (!must).then(|| {
                let fresh = classes.len();
                let slot = classes
                    .entry((c.invoke.f, &c.invoke.value))
                    .or_insert((fresh, 0));
                slot.1 += 1;
                (slot.0, slot.1 - 1)
            });
            SearchOp {
                call: c.invoke.index,
                ret: if must {
                    c.complete.map(|r| r.index)
                } else {
                    None
                },
                class,
                read_only: must && c.invoke.f == F::Describe,
            }
        })
        .collect()
}

/// One field of the register, for the fallback search by projection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field<'a> {
    Description,
    Status,
    Tag(&'a str),
}

impl std::fmt::Display for Field<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Field::Description => write!(f, "description"),
            Field::Status => write!(f, "status"),
            Field::Tag(k) => write!(f, "tag {k}"),
        }
    }
}

/// A field's value; `None` (outside) = the key does not exist.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
enum FieldValue {
    Description(String),
    Status(KeyStatus),
    Tag(Option<String>),
}

fn project(meta: &KeyMeta, field: Field<'_>) -> FieldValue {
    match field {
        Field::Description => FieldValue::Description(meta.description.clone()),
        Field::Status => FieldValue::Status(meta.status),
        Field::Tag(k) => FieldValue::Tag(meta.tags.get(k).cloned()),
    }
}

fn touches(c: &Call<'_>, field: Field<'_>) -> bool {
    match (c.invoke.f, field) {
        (F::CreateKey | F::Describe, _) => true,
        (F::UpdateDescription, Field::Description) => true,
        (F::Enable | F::Disable | F::ScheduleDelete | F::CancelDelete, Field::Status) => true,
        (F::Tag, Field::Tag(k)) => matches!(&c.invoke.value, Value::Tags(t) if t.contains_key(k)),
        _ => false,
    }
}

/// The register model projected on one field, relaxed wherever the projection cannot see
/// the other fields (writes are legal on any existing key; outside the status field a read
/// may find the key purged at any time). Every linearization of the whole register projects
/// to one of this model, so a projection with none proves the key non-linearizable.
fn field_step(
    state: &Option<FieldValue>,
    field: Field<'_>,
    c: &Call<'_>,
    output: Option<&Value>,
) -> Step<Option<FieldValue>> {
    let to = |v: FieldValue| {
        if state.as_ref() == Some(&v) {
            Step::Unchanged
        } else {
            Step::To(Some(v))
        }
    };
    match (c.invoke.f, state) {
        (F::CreateKey, None) => {
            let mut meta = match &c.invoke.value {
                Value::Meta(Some(m)) => m.clone(),
                _ => KeyMeta::new(""),
            };
            meta.status = KeyStatus::Enabled;
            Step::To(Some(project(&meta, field)))
        }
        (F::Describe, _) => match output {
            None => Step::Unchanged,
            Some(Value::Meta(Some(m))) if state.as_ref() == Some(&project(m, field)) => {
                Step::Unchanged
            }
            Some(Value::Meta(None)) => match state {
                None => Step::Unchanged,
                Some(FieldValue::Status(KeyStatus::PendingDeletion)) => Step::To(None),
                Some(FieldValue::Status(_)) => Step::Illegal,
                Some(_) => Step::To(None),
            },
            Some(_) => Step::Illegal,
        },
        (_, None) => Step::Illegal,
        (F::UpdateDescription, Some(_)) => match &c.invoke.value {
            Value::Description(d) => to(FieldValue::Description(d.clone())),
            _ => Step::Illegal,
        },
        (F::Tag, Some(_)) => match (&c.invoke.value, field) {
            (Value::Tags(t), Field::Tag(k)) => to(FieldValue::Tag(t.get(k).cloned())),
            _ => Step::Illegal,
        },
        (f, Some(FieldValue::Status(status))) => {
            let meta = KeyMeta {
                description: String::new(),
                status: *status,
                tags: Default::default(),
            };
            match model::step(&Some(meta), f, &c.invoke.value, None) {
                Step::Illegal => Step::Illegal,
                Step::Unchanged => Step::Unchanged,
                Step::To(m) => match m {
                    Some(m) => to(FieldValue::Status(m.status)),
                    None => Step::Illegal,
                },
            }
        }
        _ => Step::Illegal,
    }
}

/// Fallback for a key whose full search gave up: search each field's projection. Returns the
/// first field whose projection is not linearizable.
fn search_fields<'k, 'a>(
    k: &'k KeyHistory<'a>,
    budget: u64,
) -> Option<(Field<'k>, Vec<Call<'a>>, Stuck<Option<FieldValue>>)> {
    let mut fields = vec![Field::Description, Field::Status];
    let mut tag_keys: Vec<&str> = k
        .calls
        .iter()
        .filter_map(|c| match &c.invoke.value {
            Value::Tags(t) => Some(t.keys().map(String::as_str).collect::<Vec<_>>()),
            _ => None,
        })
        .flatten()
        .collect();
    tag_keys.sort_unstable();
    tag_keys.dedup();
    fields.extend(tag_keys.into_iter().map(Field::Tag));
    for field in fields {
        let calls: Vec<Call<'a>> = k
            .calls
            .iter()
            .filter(|c| touches(c, field))
            .copied()
            .collect();
        let ops = build_ops(&calls);
        let out = search(
            &ops,
            None,
            |s: &Option<FieldValue>, i| {
                let output = if ops[i].class.is_none() {
                    calls[i].output()
                } else {
                    None
                };
                field_step(s, field, &calls[i], output)
            },
            budget,
        );
        if let Outcome::NotLinearizable(stuck) = out {
            return Some((field, calls, stuck));
        }
    }
    None
}

fn search_key(k: &KeyHistory<'_>, budget: u64) -> Outcome<State> {
    search(
        &k.ops,
        None,
        |s: &State, i| {
            let c = &k.calls[i];
            let output = if k.ops[i].class.is_none() {
                c.output()
            } else {
                None
            };
            model::step(s, c.invoke.f, &c.invoke.value, output)
        },
        budget,
    )
}

/// Describes a call in one line: `op 17 (process 3, describe k1 -> {...})`.
pub fn describe_call(c: &Call<'_>) -> String {
    let input = match &c.invoke.value {
        Value::None => String::new(),
        v => format!(" {}", serde_json::to_string(v).unwrap_or_default()),
    };
    let output = match (c.complete, c.output()) {
        (Some(done), _) if done.op_type == OpType::Info => " -> info (unknown outcome)".to_owned(),
        (None, _) => " -> never completed".to_owned(),
        (_, Some(Value::None)) | (_, None) => " -> ok".to_owned(),
        (_, Some(v)) => format!(" -> {}", serde_json::to_string(v).unwrap_or_default()),
    };
    format!(
        "op {} (process {}, {} {}{}{})",
        c.invoke.index,
        c.invoke.process,
        serde_json::to_value(c.invoke.f)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        c.key().unwrap_or("?"),
        input,
        output
    )
}

/// Checks every key's register for linearizability.
pub fn check(calls: &[Call<'_>], opts: &Options) -> CheckResult {
    let started = Instant::now();
    let mut result = CheckResult::new("linearizable");
    let (keys, dropped) = partition(calls);
    let next = AtomicUsize::new(0);
    let outcomes: Mutex<Vec<(usize, Outcome<State>)>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..opts.threads.clamp(1, keys.len().max(1)) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(k) = keys.get(i) else { break };
                let out = search_key(k, opts.search_budget_per_key);
                outcomes
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((i, out));
            });
        }
    });
    let mut outcomes = outcomes.into_inner().unwrap_or_else(|e| e.into_inner());
    outcomes.sort_by(|a, b| keys[a.0].key.cmp(&keys[b.0].key));
    let mut steps = 0u64;
    let budget = opts.search_budget_per_key;
    for (i, out) in outcomes {
        let k = &keys[i];
        match out {
            Outcome::Linearizable { steps: s } => steps += s,
            Outcome::GaveUp { steps: s } => {
                steps += s;
                if let Some((field, calls, stuck)) = search_fields(k, budget) {
                    let c = &calls[stuck.op];
                    let mut ops = vec![c.invoke.index];
                    ops.extend(c.complete.map(|r| r.index));
                    result.flag(Anomaly {
                        kind: AnomalyKind::NonLinearizable,
                        key: Some(k.key.clone()),
                        ops,
                        message: format!(
                            "key {}: even the {field} alone is not linearizable: {} cannot be \
                             linearized: at best {} of {} acknowledged calls touching it fit \
                             before it (the full search gave up after {s} steps)",
                            k.key,
                            describe_call(c),
                            stuck.linearized,
                            stuck.total,
                        ),
                        detail: json!({
                            "op": describe_call(c),
                            "field": field.to_string(),
                            "linearized": stuck.linearized,
                            "acknowledged": stuck.total,
                            "possible_values": stuck.states,
                        }),
                    });
                } else {
                    result.unknown(format!(
                        "key {}: search gave up after {s} steps ({} calls); every field \
                         alone is linearizable",
                        k.key,
                        k.ops.len()
                    ));
                }
            }
            Outcome::NotLinearizable(stuck) => {
                let c = &k.calls[stuck.op];
                let mut ops = vec![c.invoke.index];
                ops.extend(c.complete.map(|r| r.index));
                result.flag(Anomaly {
                    kind: AnomalyKind::NonLinearizable,
                    key: Some(k.key.clone()),
                    ops,
                    message: format!(
                        "key {}: {} cannot be linearized: at best {} of {} acknowledged calls \
                         fit before it, and it is legal in none of the {} register states \
                         possible at that point",
                        k.key,
                        describe_call(c),
                        stuck.linearized,
                        stuck.total,
                        stuck.states.len()
                    ),
                    detail: json!({
                        "op": describe_call(c),
                        "linearized": stuck.linearized,
                        "acknowledged": stuck.total,
                        "possible_states": stuck.states,
                    }),
                });
            }
        }
    }
    result.stats = json!({
        "keys": keys.len(),
        "calls": keys.iter().map(|k| k.ops.len()).sum::<usize>(),
        "open_calls_dropped_as_unobserved": dropped,
        "search_steps": steps,
    });
    result.timed(started)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testkit::{desc, meta, Script};
    use crate::check::Validity;
    use crate::history::KeyStatus::*;

    fn verdict(s: &Script) -> CheckResult {
        let h = s.history();
        check(&h.calls().unwrap(), &Options::default())
    }

    #[test]
    fn sequential_reads_of_the_latest_write_are_linearizable() {
        let mut s = Script::default();
        s.create(1, "k", "a")
            .set_desc(1, "k", "b")
            .read(2, "k", meta("b", Enabled));
        assert_eq!(verdict(&s).validity, Validity::Valid);
    }

    #[test]
    fn stale_read_after_a_completed_write_is_flagged_with_the_read_and_the_state() {
        let mut s = Script::default();
        s.create(1, "k", "a")
            .set_desc(1, "k", "b")
            .read(2, "k", meta("a", Enabled));
        let r = verdict(&s);
        assert_eq!(r.validity, Validity::Invalid);
        let a = &r.anomalies[0];
        assert_eq!(a.key.as_deref(), Some("k"));
        assert_eq!(a.ops, vec![4, 5], "the read's invoke and completion");
        assert!(a.message.contains("describe k"), "{}", a.message);
        assert_eq!(a.detail["possible_states"][0]["description"], "b");
    }

    #[test]
    fn a_read_concurrent_with_a_write_may_see_either_value() {
        for seen in ["a", "b"] {
            let mut s = Script::default();
            s.create(1, "k", "a")
                .invoke(1, F::UpdateDescription, "k", desc("b"))
                .invoke(2, F::Describe, "k", Value::None)
                .ok(2, F::Describe, "k", Value::Meta(meta(seen, Enabled)))
                .ok(1, F::UpdateDescription, "k", Value::None);
            assert_eq!(verdict(&s).validity, Validity::Valid, "saw {seen}");
        }
    }

    #[test]
    fn a_timed_out_write_may_take_effect_later_or_never() {
        for later in [meta("a", Enabled), meta("b", Enabled)] {
            let mut s = Script::default();
            s.create(1, "k", "a")
                .invoke(1, F::UpdateDescription, "k", desc("b"))
                .info(1, F::UpdateDescription, "k")
                .read(2, "k", meta("a", Enabled))
                .read(2, "k", later.clone());
            assert_eq!(verdict(&s).validity, Validity::Valid, "{later:?}");
        }
    }

    #[test]
    fn a_timed_out_write_takes_effect_at_most_once() {
        // b is written once (timed out) and overwritten by c; reading b again after c
        // would need it to take effect twice.
        let mut s = Script::default();
        s.create(1, "k", "a")
            .invoke(1, F::UpdateDescription, "k", desc("b"))
            .info(1, F::UpdateDescription, "k")
            .read(2, "k", meta("b", Enabled))
            .set_desc(3, "k", "c")
            .read(2, "k", meta("c", Enabled))
            .read(2, "k", meta("b", Enabled));
        assert_eq!(verdict(&s).validity, Validity::Invalid);
    }

    #[test]
    fn failed_writes_never_take_effect() {
        let mut s = Script::default();
        s.create(1, "k", "a")
            .invoke(1, F::UpdateDescription, "k", desc("b"))
            .ev(
                1,
                OpType::Fail,
                F::UpdateDescription,
                Some("k"),
                Value::None,
            )
            .read(2, "k", meta("b", Enabled));
        assert_eq!(verdict(&s).validity, Validity::Invalid);
    }

    #[test]
    fn writes_to_a_key_pending_deletion_are_not_acknowledged() {
        let mut s = Script::default();
        s.create(1, "k", "a")
            .call(1, F::ScheduleDelete, "k", Value::None, Value::None)
            .call(1, F::Enable, "k", Value::None, Value::None);
        assert_eq!(verdict(&s).validity, Validity::Invalid);
    }

    #[test]
    fn a_purged_key_reads_as_not_found_and_stays_gone() {
        let mut s = Script::default();
        s.create(1, "k", "a")
            .call(1, F::ScheduleDelete, "k", Value::None, Value::None)
            .read(2, "k", meta("a", PendingDeletion))
            .read(2, "k", None);
        assert_eq!(verdict(&s).validity, Validity::Valid);
        s.read(2, "k", meta("a", PendingDeletion));
        assert_eq!(verdict(&s).validity, Validity::Invalid);
    }

    #[test]
    fn keys_are_checked_independently() {
        let mut s = Script::default();
        s.create(1, "good", "a")
            .create(1, "bad", "a")
            .set_desc(1, "bad", "b")
            .read(2, "good", meta("a", Enabled))
            .read(2, "bad", meta("a", Enabled));
        let r = verdict(&s);
        assert_eq!(r.anomalies.len(), 1);
        assert_eq!(r.anomalies[0].key.as_deref(), Some("bad"));
    }

    #[test]
    fn an_exhausted_budget_is_unknown_not_valid() {
        let mut s = Script::default();
        s.create(1, "k", "a")
            .set_desc(1, "k", "b")
            .read(2, "k", meta("b", Enabled));
        let h = s.history();
        let r = check(
            &h.calls().unwrap(),
            &Options {
                search_budget_per_key: 1,
                threads: 1,
                ..Options::default()
            },
        );
        assert_eq!(r.validity, Validity::Unknown);
    }

    #[test]
    fn the_field_fallback_flags_a_stale_description_when_the_full_search_gives_up() {
        let mut s = Script::default();
        s.create(1, "k", "a")
            .set_desc(1, "k", "b")
            .read(2, "k", meta("a", Enabled));
        let h = s.history();
        let calls = h.calls().unwrap();
        let (keys, _) = partition(&calls);
        let (field, _, stuck) = search_fields(&keys[0], 1_000).expect("description is stale");
        assert_eq!(field, Field::Description);
        assert_eq!(
            stuck.states,
            vec![Some(FieldValue::Description("b".into()))]
        );
    }
}
