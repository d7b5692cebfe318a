//! jepsen-lite: keyraft's chaos harness.
//!
//! The runner starts a real region from the `keyraft` binary (a [`backend::Backend`]), drives
//! it through the client SDK with concurrent workloads while nemeses inject faults, records
//! every call as invoke/outcome events, heals, reads everything back, and hands the history to
//! the checkers. A simulator produces histories with known answers for `self-test`, which
//! proves the checkers flag planted anomalies.
//!
//! # Layout
//!
//! ```text
//! history.rs      Op / History / Recorder: events, JSON Lines on disk
//! check/          one checker per property, check_all -> Verdict
//!   model.rs        the per-key register (description, status, tags) as a pure step fn
//!   linearizable.rs WGL search per key (P-compositional, memoized), explanations
//!   lost.rs         lost creates, keys resurrected after deletion
//!   decrypt.rs      every acknowledged ciphertext decrypts to its plaintext
//!   convergence.rs  replicas agree on the state-machine hash
//!   revocation.rs   no Encrypt succeeds later than the staleness bound after a revocation
//!   recovery.rs     leader-kill recovery against its targets (reported, not a validity)
//!   multi_region.rs two regions: replicas hold their primary's material within 60 s of the
//!                   heal; ciphertexts made in A decrypt in B
//! results.rs      the results directory: save a Run, check_dir re-checks and reports
//! report.rs       verdict + SVG plots (plotters) -> index.html
//! sim.rs          simulated linearizable cluster with plantable anomalies
//! selftest.rs     the `self-test` cases
//! backend/        Backend trait; local.rs: processes on 127.0.0.x, iptables partitions,
//!                 optionally a second region (multi-region keys) as the backend's peer
//! nemesis.rs      fault schedule (kill, pause, partition, clock, front restart, region
//!                 partition) + heal
//! workload/       register (per-key metadata, deletions), create-and-use, revocation,
//!                 multi-region, the final read-back phase
//! runner.rs       `jepsen-lite run`: backend + workloads + nemesis -> results -> checkers
//! signals.rs      SIGINT / SIGTERM: stop, heal, remove the cluster, then exit
//! ```
//!
//! # Data flow
//!
//! ```text
//!  clients --Recorder::invoke/ok/fail/info--> History --Run::save--> results dir
//!  nemesis --FaultWindow----------------------------------------^        |
//!  final phase: DescribeKey all, ListKeys, Decrypt all, state hashes ---^ |
//!                                                                        v
//!                  check_all(history, replicas) -> Verdict -> verdict.json, index.html
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod backend;
pub mod check;
pub mod history;
pub mod nemesis;
pub mod report;
pub mod results;
pub mod runner;
pub mod selftest;
pub mod signals;
pub mod sim;
pub mod workload;

pub use check::{check_all, AnomalyKind, Options, ReplicaHash, Validity, Verdict};
pub use history::{FaultWindow, History, KeyMeta, KeyStatus, Op, OpType, Recorder, Value, F};
pub use results::{check_dir, Run};
