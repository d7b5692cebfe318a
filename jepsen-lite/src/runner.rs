//! The `run` subcommand: start a cluster, run workloads under a nemesis, heal, read
//! everything back, check, report.
//!
//! ```text
//! backend start ─> setup (register keys) ─> workers (client::Client, no retries) ──────────┐
//!                                           nemesis thread: quiet, fault, hold, heal ...    │
//!                                           progress line every 5 s                         │
//! deadline: stop workers, stop nemesis (final heal) ─> wait for a leader ─> final phase ────┘
//!   ─> convergence (every node's state hash at one common stateApplied, across polls)
//!   ─> stop cluster
//!   ─> results::Run::save + results::check_dir (verdict.json, index.html) + run.json
//! ```
//!
//! Leader-kill recovery is measured by a probe writer, and from the workload's history for
//! comparison (see [`Recovery`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use client::{ClientBuilder, RetryPolicy};
use serde::Serialize;

use crate::backend::{
    Backend, ClusterStatus, DockerBackend, DockerOptions, LocalBackend, LocalOptions,
};
use crate::check::multi_region::{MrConvergence, CONVERGENCE_WITHIN_MS};
use crate::check::{Options, ReplicaHash, RevocationBound, Validity, Verdict};
use crate::history::{History, OpType, Recorder, F};
use crate::nemesis::{self, Family, NemesisConfig, NemesisLog, NemesisState};
use crate::results::{check_dir, Run};
use crate::signals;
use crate::workload::{self, final_phase, Ctx, Workload};

/// `jepsen-lite run` arguments.
#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// Cluster backend: `local` (processes on this machine) or `docker` (the
    /// deploy/docker compose project; image built from --keyraft-bin).
    #[arg(long, default_value = "local")]
    pub backend: String,
    /// Seconds of workload under faults (setup and the final phase come on top).
    #[arg(long, default_value_t = 60)]
    pub time: u64,
    /// Faults: `all`, `none`, or a list of kill, pause, partition, clock, front-restart,
    /// region-partition (two regions only; part of `all` then).
    #[arg(long, default_value = "all")]
    pub nemesis: String,
    /// Workloads: `all`, or a list of register, create-and-use, revocation, multi-region
    /// (two regions only; part of `all` then).
    #[arg(long, default_value = "all")]
    pub workload: String,
    /// Regions: 1, or 2 for multi-region keys (local backend: `keyraft dev --regions
    /// us-east-1,us-west-2`; the nemesis hurts region A's nodes and cuts the regions apart).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=2))]
    pub regions: u8,
    /// Concurrent client workers (split between the workloads).
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Results directory (default `jepsen-results/<unix time>`); the cluster lives in
    /// `<results>/cluster`.
    #[arg(long)]
    pub results: Option<PathBuf>,
    /// The `keyraft` binary (default: `keyraft` next to this binary).
    #[arg(long, env = "KEYRAFT_BIN")]
    pub keyraft_bin: Option<PathBuf>,
    /// Seconds from one fault to the next.
    #[arg(long, default_value_t = 10)]
    pub interval: u64,
    /// Seconds each fault is held.
    #[arg(long, default_value_t = 5)]
    pub hold: u64,
    /// Per-call timeout in milliseconds; a call that times out is recorded as `info`.
    #[arg(long, default_value_t = 3000)]
    pub op_timeout_ms: u64,
    /// Keys of the register workload.
    #[arg(long, default_value_t = 5)]
    pub keys: usize,
    /// Largest leader-clock offset of the clock nemesis, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    pub clock_skew_ms: i64,
    /// First port of the local cluster (default: a free range in 2000–9999).
    #[arg(long)]
    pub port_base: Option<u16>,
    /// Storage backend of the local cluster's nodes: `redb` (default) or `sled` (crash tests
    /// run on both).
    #[arg(long, default_value = "redb", value_parser = ["redb", "sled"])]
    pub storage: String,
    /// The fronts' cache staleness, for the revocation bound (default: `cache_staleness_ms`
    /// of the `front.toml` next to the backend's env file, else 1000).
    #[arg(long)]
    pub cache_staleness_ms: Option<u64>,
    /// Added to the cache staleness to make the revocation bound (see check::revocation).
    #[arg(long, default_value_t = crate::check::RevocationBound::DEFAULT_ALLOWANCE_MS)]
    pub staleness_allowance_ms: u64,
}

/// A validated run configuration.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Results directory.
    pub results: PathBuf,
    /// The `keyraft` binary.
    pub keyraft_bin: PathBuf,
    /// Workload duration.
    pub time: Duration,
    /// Nemesis schedule.
    pub nemesis: NemesisConfig,
    /// Workloads.
    pub workloads: Vec<Workload>,
    /// Client workers.
    pub concurrency: usize,
    /// Per-call timeout.
    pub op_timeout: Duration,
    /// Register keys.
    pub keys: usize,
    /// Local cluster port base.
    pub port_base: Option<u16>,
    /// Local cluster storage backend (`redb` or `sled`).
    pub storage: String,
    /// The fronts' cache staleness in ms (`None`: from the backend's front config, else 1000).
    pub cache_staleness_ms: Option<u64>,
    /// Allowance added to it for the revocation bound.
    pub staleness_allowance_ms: u64,
    /// Print progress lines.
    pub progress: bool,
    /// `local` or `docker`.
    pub backend: String,
    /// 1, or 2 regions (multi-region keys; local backend only).
    pub regions: u8,
}

impl RunOptions {
    /// Defaults: 60 s, every fault, every workload, 8 workers.
    pub fn new(results: impl Into<PathBuf>, keyraft_bin: impl Into<PathBuf>) -> Self {
        RunOptions {
            results: results.into(),
            keyraft_bin: keyraft_bin.into(),
            time: Duration::from_secs(60),
            nemesis: NemesisConfig::default(),
            workloads: Workload::ALL.to_vec(),
            concurrency: 8,
            op_timeout: Duration::from_secs(3),
            keys: 5,
            port_base: None,
            storage: "redb".into(),
            cache_staleness_ms: None,
            staleness_allowance_ms: crate::check::RevocationBound::DEFAULT_ALLOWANCE_MS,
            progress: true,
            backend: "local".into(),
            regions: 1,
        }
    }
}

impl RunArgs {
    /// Checks the arguments and fills in defaults.
    pub fn into_options(self) -> anyhow::Result<RunOptions> {
        if self.backend != "local" && self.backend != "docker" {
            bail!(
                "backend {:?} is not available (`local` or `docker`)",
                self.backend
            );
        }
        if self.hold > self.interval {
            bail!("--hold must not exceed --interval");
        }
        if self.concurrency == 0 || self.keys == 0 {
            bail!("--concurrency and --keys must be at least 1");
        }
        let results = match self.results {
            Some(r) => r,
            None => PathBuf::from("jepsen-results").join(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0)
                    .to_string(),
            ),
        };
        let named = |list: &str, name: &str| list.split(',').any(|p| p.trim() == name);
        if self.regions == 1 {
            if named(&self.nemesis, "region-partition") {
                bail!("the region-partition nemesis needs --regions 2");
            }
            if named(&self.workload, "multi-region") {
                bail!("the multi-region workload needs --regions 2");
            }
        } else if self.backend != "local" {
            bail!("--regions 2 runs on the local backend only");
        }
        let keyraft_bin = match self.keyraft_bin {
            Some(b) => b,
            None => default_keyraft_bin()?,
        };
        Ok(RunOptions {
            results,
            keyraft_bin,
            time: Duration::from_secs(self.time),
            nemesis: NemesisConfig {
                families: Family::parse_list(&self.nemesis)?,
                interval: Duration::from_secs(self.interval),
                hold: Duration::from_secs(self.hold),
                clock_skew_ms: self.clock_skew_ms,
            },
            workloads: Workload::parse_list(&self.workload)?,
            concurrency: self.concurrency,
            op_timeout: Duration::from_millis(self.op_timeout_ms),
            keys: self.keys,
            port_base: self.port_base,
            storage: self.storage,
            cache_staleness_ms: self.cache_staleness_ms,
            staleness_allowance_ms: self.staleness_allowance_ms,
            progress: true,
            backend: self.backend,
            regions: self.regions,
        })
    }
}

/// `keyraft` next to the running binary (or one level up, for test binaries in `deps/`).
fn default_keyraft_bin() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating jepsen-lite")?;
    let mut dir = exe.parent();
    while let Some(d) = dir {
        let candidate = d.join("keyraft");
        if candidate.is_file() {
            return Ok(candidate);
        }
        if d.file_name().is_some_and(|n| n != "deps") {
            break;
        }
        dir = d.parent();
    }
    bail!(
        "no keyraft binary next to {} (build it with `cargo build -p keyraft-node`, or pass \
         --keyraft-bin / KEYRAFT_BIN)",
        exe.display()
    )
}

/// Leader-kill recovery times.
///
/// The probe is the measure: from the kill, a fresh UpdateKeyDescription on a probe key (not
/// part of the history) starts every 100 ms until one is acknowledged. The workload's own
/// view (first acknowledged write invoked after the kill) is kept for comparison; it is
/// pessimistic, since workers stuck in calls to the dead leader invoke nothing new until
/// their calls time out.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Recovery {
    /// Per kill of a known leader: milliseconds to the first acknowledged probe write
    /// (`None`: none within 30 s, or the run ended first).
    pub per_kill_ms: Vec<Option<u64>>,
    /// Median of the probe times.
    pub p50_ms: Option<u64>,
    /// 99th percentile (nearest rank) of the probe times.
    pub p99_ms: Option<u64>,
    /// Per kill: milliseconds to the first acknowledged workload write invoked after it.
    pub workload_per_kill_ms: Vec<Option<u64>>,
    /// Per kill: when it happened (ms since the start of the history).
    pub kill_at_ms: Vec<u64>,
    /// Per kill: the node killed.
    pub kill_node: Vec<u64>,
}

/// What a run measured, saved as `run.json`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunStats {
    /// Workload seconds actually run.
    pub seconds: f64,
    /// Calls by outcome during the workload (final phase excluded).
    pub ok: usize,
    /// Definitely failed calls.
    pub fail: usize,
    /// Calls of unknown outcome.
    pub info: usize,
    /// Acknowledged calls per second during the workload.
    pub ok_per_sec: f64,
    /// Acknowledged calls by operation.
    pub ok_by_op: BTreeMap<String, usize>,
    /// Faults injected, by kind.
    pub faults: BTreeMap<String, usize>,
    /// Faults or heals that failed.
    pub nemesis_errors: Vec<String>,
    /// Why partitions were skipped, if they were.
    pub partitions_unavailable: Option<String>,
    /// Leader-kill recovery.
    pub recovery: Recovery,
    /// The revocation checker's bound (read back by `check`).
    pub revocation_bound: RevocationBound,
    /// Front endpoints the revocation readers used.
    pub revocation_fronts: Vec<String>,
    /// The final reads.
    pub final_phase: final_phase::FinalStats,
    /// Replica hashes compared (empty if they never lined up).
    pub replicas: Vec<ReplicaHash>,
    /// The applied index the replica hashes were taken at.
    pub replicas_at: Option<u64>,
    /// Why the replicas could not be compared (the convergence check's note; read back by
    /// `check`).
    pub convergence_unknown: Option<String>,
    /// Two regions: the multi-region keys' material in both regions after the heal (read
    /// back by `check`: replica-convergence).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub multi_region: Option<MrConvergence>,
    /// Two regions: ciphertexts decrypted (any answer) in the replica region after the heal.
    pub replica_decrypted: usize,
    /// Two regions: ciphertexts whose Decrypt in the replica region never answered.
    pub replica_undecrypted: usize,
}

/// The result of a run.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// The checkers' verdict.
    pub verdict: Verdict,
    /// Measurements.
    pub stats: RunStats,
    /// Where everything was written.
    pub results: PathBuf,
}

/// Stops and joins the nemesis thread, also when the runner unwinds: its final heal must run
/// and the backend (iptables chain, children) must be dropped before the process exits.
struct NemesisHandle {
    state: Arc<NemesisState>,
    thread: Option<std::thread::JoinHandle<NemesisLog>>,
}

impl NemesisHandle {
    fn finish(mut self) -> NemesisLog {
        self.state.stop.store(true, Ordering::Relaxed);
        let thread = self.thread.take().expect("joined once");
        tokio::task::block_in_place(|| thread.join()).unwrap_or_default()
    }
}

impl Drop for NemesisHandle {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The CLI entry point: runs, prints, and maps the verdict to an exit code (0 valid,
/// 1 invalid, 2 unknown or error).
pub fn main(args: RunArgs) -> ExitCode {
    let result = args.into_options().and_then(|opts| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(run(opts))
    });
    match result {
        Ok(out) => match out.verdict.validity {
            Validity::Valid => ExitCode::SUCCESS,
            Validity::Invalid => ExitCode::FAILURE,
            Validity::Unknown => ExitCode::from(2),
        },
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs one test. Needs a multi-threaded tokio runtime.
pub async fn run(mut opts: RunOptions) -> anyhow::Result<RunOutcome> {
    let two_regions = opts.regions == 2;
    if !two_regions {
        // `all` names them; they need a second region.
        opts.workloads.retain(|w| *w != Workload::MultiRegion);
        opts.nemesis
            .families
            .retain(|f| *f != Family::RegionPartition);
        if opts.workloads.is_empty() {
            bail!("the multi-region workload needs two regions");
        }
    } else if opts.backend != "local" {
        bail!("two regions run on the local backend only");
    }
    // Before anything exists that a signal must not leave behind.
    let signal_watch = signals::Watch::install().context("installing signal handlers")?;
    std::fs::create_dir_all(&opts.results)
        .with_context(|| format!("creating {}", opts.results.display()))?;
    let results = std::fs::canonicalize(&opts.results)?;
    let say = |msg: String| {
        if opts.progress {
            println!("{msg}");
        }
    };

    say(format!(
        "jepsen-lite: starting {} {} in {}",
        if two_regions { "two" } else { "a" },
        if two_regions {
            format!(
                "{} regions ({})",
                opts.backend,
                crate::backend::local::REGIONS.join(", ")
            )
        } else {
            format!("{} region", opts.backend)
        },
        results.join("cluster").display()
    ));
    let backend: Arc<dyn Backend> = if opts.backend == "docker" {
        let docker = DockerOptions::new(results.join("cluster"), &opts.keyraft_bin);
        Arc::new(tokio::task::spawn_blocking(move || DockerBackend::start(&docker)).await??)
    } else {
        let local = LocalOptions {
            port_base: opts.port_base,
            storage: opts.storage.clone(),
            regions: opts.regions,
            ..LocalOptions::new(results.join("cluster"), &opts.keyraft_bin)
        };
        Arc::new(tokio::task::spawn_blocking(move || LocalBackend::start(&local)).await??)
    };

    let mut nemesis_cfg = opts.nemesis.clone();
    let partitions_unavailable = backend.partitions_unavailable();
    if let Some(why) = &partitions_unavailable {
        if nemesis_cfg.families.contains(&Family::Partition) {
            println!("jepsen-lite: partitions are UNAVAILABLE and skipped: {why}");
            nemesis_cfg.families.retain(|f| *f != Family::Partition);
        }
    }
    if nemesis_cfg.families.contains(&Family::RegionPartition) {
        if let Some(why) = backend.region_partition_unavailable() {
            println!("jepsen-lite: region partitions are UNAVAILABLE and skipped: {why}");
            nemesis_cfg
                .families
                .retain(|f| *f != Family::RegionPartition);
        }
    }

    let recorder = Recorder::new();
    let client = ClientBuilder::new()
        .env_file(backend.env_file())?
        .retry_policy(RetryPolicy::none())
        .request_timeout(opts.op_timeout)
        .connect_timeout(opts.op_timeout.min(Duration::from_secs(1)))
        .build()?;
    let peer_client = match backend.peer() {
        Some(peer) => Some(
            ClientBuilder::new()
                .env_file(peer.env_file())?
                .retry_policy(RetryPolicy::none())
                .request_timeout(opts.op_timeout)
                .connect_timeout(opts.op_timeout.min(Duration::from_secs(1)))
                .build()?,
        ),
        None => None,
    };
    let ctx = Ctx::with_peer(client, peer_client, recorder.clone());
    if opts.workloads.contains(&Workload::Register) {
        workload::register::setup(&ctx, opts.keys, Duration::from_secs(60)).await?;
    }
    let revocation_bound = RevocationBound {
        cache_staleness_ms: opts
            .cache_staleness_ms
            .or_else(|| front_cache_staleness_ms(backend.env_file()))
            .unwrap_or(1_000),
        allowance_ms: opts.staleness_allowance_ms,
    };
    let revocation = if opts.workloads.contains(&Workload::Revocation) {
        let r = workload::revocation::Revocation::new(backend.env_file(), opts.op_timeout)?;
        r.setup(&ctx, Duration::from_secs(60)).await?;
        Some(Arc::new(r))
    } else {
        None
    };
    // The recovery probe writes to a key of its own, outside the history.
    let probe_key = if nemesis_cfg.families.contains(&Family::Kill) {
        let client = ctx.client.clone();
        let id = workload::retry_until(Duration::from_secs(60), |_| {
            let client = client.clone();
            async move {
                let out = client
                    .create_key()
                    .description("jepsen-lite recovery probe")
                    .send()
                    .await
                    .ok()?;
                Some(out.key_metadata.unwrap_or_default().key_id)
            }
        })
        .await;
        Some(id.context("creating the recovery probe key")?)
    } else {
        None
    };

    // SIGINT / SIGTERM: stop workers, the nemesis and the final phase; the heal and the
    // cleanup (the backend's drop: children, iptables chain) still run.
    let nemesis_state = Arc::new(NemesisState::default());
    let interrupt_watch = {
        let (ctx, state) = (ctx.clone(), nemesis_state.clone());
        tokio::spawn(async move {
            while !signals::interrupted() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            ctx.interrupted.store(true, Ordering::Relaxed);
            ctx.stop.store(true, Ordering::Relaxed);
            state.stop.store(true, Ordering::Relaxed);
        })
    };

    say(format!(
        "jepsen-lite: running {} for {}s, {} workers, nemesis {}",
        opts.workloads
            .iter()
            .map(|w| w.name())
            .collect::<Vec<_>>()
            .join("+"),
        opts.time.as_secs(),
        opts.concurrency,
        if nemesis_cfg.families.is_empty() {
            "none".to_owned()
        } else {
            nemesis_cfg
                .families
                .iter()
                .map(|f| f.name())
                .collect::<Vec<_>>()
                .join(",")
        }
    ));
    let started = Instant::now();
    let workload_start_ns = recorder.now();
    let nemesis = {
        let (backend, recorder, state, cfg) = (
            backend.clone(),
            recorder.clone(),
            nemesis_state.clone(),
            nemesis_cfg.clone(),
        );
        NemesisHandle {
            state: nemesis_state.clone(),
            thread: Some(std::thread::spawn(move || {
                nemesis::run(&*backend, &cfg, &recorder, &state)
            })),
        }
    };

    let probe_out = Arc::new(std::sync::Mutex::new(Vec::new()));
    let probe = probe_key.map(|key| {
        tokio::spawn(probe_recovery(
            ctx.client.clone(),
            key,
            recorder.clone(),
            nemesis_state.clone(),
            probe_out.clone(),
        ))
    });

    let mut workers = tokio::task::JoinSet::new();
    if let Some(r) = &revocation {
        let (r, ctx) = (r.clone(), ctx.clone());
        workers.spawn(async move { r.writer(&ctx).await });
    }
    for i in 0..opts.concurrency {
        let kind = opts.workloads[i % opts.workloads.len()];
        let ctx = ctx.clone();
        let revocation = revocation.clone();
        workers.spawn(async move {
            let mut rng = workload::rng();
            let mut process = ctx.new_process();
            while !ctx.stopped() {
                let crashed = match kind {
                    Workload::Register => workload::register::step(&ctx, process, &mut rng).await,
                    Workload::CreateAndUse => {
                        workload::create_use::step(&ctx, process, &mut rng).await
                    }
                    Workload::Revocation => match &revocation {
                        Some(r) => r.read_step(&ctx, process, i).await,
                        None => false,
                    },
                    Workload::MultiRegion => {
                        workload::multi_region::step(&ctx, process, &mut rng).await
                    }
                };
                if crashed {
                    process = ctx.new_process();
                }
            }
        });
    }
    let progress = opts.progress.then(|| {
        let (recorder, state, ctx) = (recorder.clone(), nemesis_state.clone(), ctx.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            tick.tick().await;
            while !ctx.stopped() {
                tick.tick().await;
                let h = recorder.snapshot();
                let (ok, fail, info) = outcome_counts(&h, 0);
                let secs = started.elapsed().as_secs_f64();
                println!(
                    "[{secs:5.0}s] {ok} ok, {fail} fail, {info} info ({:.1} ok/s) | fault: {}",
                    ok as f64 / secs.max(0.001),
                    state.current().unwrap_or_else(|| "-".into())
                );
            }
        })
    });

    let deadline = started + opts.time;
    while Instant::now() < deadline && !ctx.stopped() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ctx.stop.store(true, Ordering::Relaxed);
    while workers.join_next().await.is_some() {}
    if let Some(p) = progress {
        p.abort();
    }
    let seconds = started.elapsed().as_secs_f64();
    let workload_end_ns = recorder.now();
    say("jepsen-lite: workload done; healing".into());
    let nemesis_log = nemesis.finish();
    // Healed: the replicas' convergence is timed from here, while the final reads run.
    let mr_poll = (two_regions && opts.workloads.contains(&Workload::MultiRegion)).then(|| {
        let ctx = ctx.clone();
        let healed = Instant::now();
        tokio::spawn(async move { poll_replicas(&ctx, healed).await })
    });
    if let Some(probe) = probe {
        // A kill late in the run is still being probed: give it time to see the recovery.
        let until = Instant::now() + Duration::from_secs(35);
        while workload::lock(&probe_out).len() < nemesis_log.leader_kills.len()
            && Instant::now() < until
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        probe.abort();
    }

    let mut stats = RunStats {
        seconds,
        revocation_bound,
        revocation_fronts: revocation.as_ref().map(|r| r.fronts()).unwrap_or_default(),
        partitions_unavailable,
        faults: nemesis_log.counts.clone(),
        nemesis_errors: nemesis_log.errors.clone(),
        ..RunStats::default()
    };
    let mut replicas = None;
    if !ctx.interrupted() {
        {
            let (backend, ctx) = (backend.clone(), ctx.clone());
            let ready = tokio::task::spawn_blocking(move || {
                wait_for_leader(&*backend, Duration::from_secs(60), &ctx.interrupted)
            })
            .await?;
            if let Err(e) = ready {
                println!("jepsen-lite: cluster not healthy after healing: {e:#}");
            }
        }
        say("jepsen-lite: final reads".into());
        // Batches of decrypts take longer than one call: give them their own request timeout
        // (reads, so a retry after a timeout changes nothing).
        let reads = ClientBuilder::new()
            .env_file(backend.env_file())
            .and_then(|b| {
                b.retry_policy(RetryPolicy::none())
                    .request_timeout(final_phase::BATCH_TIMEOUT)
                    .connect_timeout(Duration::from_secs(1))
                    .build()
            })
            .unwrap_or_else(|e| {
                println!("jepsen-lite: final reads use the workload's client: {e}");
                ctx.client.clone()
            });
        stats.final_phase = final_phase::run(&ctx, &reads, Duration::from_secs(120)).await;
        if stats.final_phase.undecrypted > 0 || stats.final_phase.keys_unread > 0 {
            println!(
                "jepsen-lite: final phase left {} ciphertexts and {} keys unanswered",
                stats.final_phase.undecrypted, stats.final_phase.keys_unread
            );
        }
        if let Some(poll) = mr_poll {
            say("jepsen-lite: waiting for the multi-region replicas to hold their primary's material".into());
            let mr = poll.await?;
            match mr.converged_after_ms {
                Some(ms) => say(format!(
                    "jepsen-lite: {} multi-region replicas hold exactly their primary's material {ms} ms after the heal",
                    mr.keys.len()
                )),
                None => println!(
                    "jepsen-lite: multi-region replicas did NOT converge within {} s of the heal",
                    mr.within_ms / 1000
                ),
            }
            stats.multi_region = Some(mr);
            if let Some(peer) = backend.peer() {
                let batches = ClientBuilder::new()
                    .env_file(peer.env_file())
                    .and_then(|b| {
                        b.retry_policy(RetryPolicy::none())
                            .request_timeout(final_phase::BATCH_TIMEOUT)
                            .connect_timeout(Duration::from_secs(1))
                            .build()
                    })?;
                say("jepsen-lite: decrypting in the replica region".into());
                let (done, undone) =
                    final_phase::decrypt_in_replica(&ctx, &batches, Duration::from_secs(120)).await;
                stats.replica_decrypted = done;
                stats.replica_undecrypted = undone;
                if undone > 0 {
                    println!(
                        "jepsen-lite: {undone} ciphertexts were never answered in the replica region"
                    );
                }
            }
        }
        say("jepsen-lite: waiting for the replicas to converge".into());
        let (backend, ctx) = (backend.clone(), ctx.clone());
        let hashes = tokio::task::spawn_blocking(move || {
            converged_hashes(&*backend, CONVERGENCE_WITHIN, &ctx.interrupted)
        })
        .await?;
        match hashes {
            Ok((at, h)) => {
                stats.replicas = h.clone();
                stats.replicas_at = Some(at);
                replicas = Some(h);
            }
            Err(why) => {
                println!("jepsen-lite: convergence unknown: {why}");
                stats.convergence_unknown = Some(why);
                replicas = Some(Vec::new());
            }
        }
    }
    let interrupted = ctx.interrupted();
    // Stop the cluster (children killed, iptables chain deleted) before checking.
    drop(ctx);
    drop(nemesis_state);
    tokio::task::spawn_blocking(move || drop(backend)).await?;
    interrupt_watch.abort();
    signal_watch.cleaned_up();

    let history = recorder.snapshot();
    let (ok, fail, info) = outcome_counts_between(&history, workload_start_ns, workload_end_ns);
    stats.ok = ok;
    stats.fail = fail;
    stats.info = info;
    stats.ok_per_sec = ok as f64 / seconds.max(0.001);
    stats.ok_by_op = ok_by_op(&history, workload_start_ns, workload_end_ns);
    let probed = workload::lock(&probe_out).clone();
    stats.recovery = recovery(&history, &nemesis_log, probed);

    let run = Run {
        history,
        faults: nemesis_log.faults.clone(),
        replicas,
    };
    run.save(&results)?;
    std::fs::write(results.join("run.json"), serde_json::to_vec_pretty(&stats)?)?;
    if interrupted {
        bail!(
            "interrupted; the history so far is in {} (jepsen-lite check can still read it)",
            results.display()
        );
    }
    let verdict = tokio::task::spawn_blocking({
        let results = results.clone();
        move || check_dir(&results, &Options::default())
    })
    .await??;

    print_summary(&stats, &verdict, &results);
    Ok(RunOutcome {
        verdict,
        stats,
        results,
    })
}

fn print_summary(stats: &RunStats, verdict: &Verdict, results: &Path) {
    let faults: Vec<String> = stats
        .faults
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    println!(
        "jepsen-lite: {:.0}s, {} ok / {} fail / {} info, {:.1} ok/s; faults: {}",
        stats.seconds,
        stats.ok,
        stats.fail,
        stats.info,
        stats.ok_per_sec,
        if faults.is_empty() {
            "none".to_owned()
        } else {
            faults.join(" ")
        }
    );
    let ms = |v: Option<u64>| v.map_or("-".to_owned(), |v| format!("{v} ms"));
    let list = |v: &[Option<u64>]| v.iter().map(|v| ms(*v)).collect::<Vec<_>>().join(", ");
    if !stats.recovery.workload_per_kill_ms.is_empty() {
        println!(
            "jepsen-lite: leader-kill to first acknowledged write: p50 {} p99 {} (probe, {} \
             kills: {}; first workload write invoked after the kill: {})",
            ms(stats.recovery.p50_ms),
            ms(stats.recovery.p99_ms),
            stats.recovery.workload_per_kill_ms.len(),
            list(&stats.recovery.per_kill_ms),
            list(&stats.recovery.workload_per_kill_ms),
        );
    }
    for e in &stats.nemesis_errors {
        println!("jepsen-lite: nemesis error: {e}");
    }
    if let Some(r) = verdict.checks.iter().find(|c| c.checker == "revocation") {
        println!(
            "jepsen-lite: revocation: max observed staleness {} ms (bound {} ms), {} \
             acknowledged revocations, {} probed past the bound",
            r.stats["max_observed_staleness_ms"],
            r.stats["bound_ms"],
            r.stats["acknowledged_revocations"],
            r.stats["windows_probed_past_bound"],
        );
    }
    for c in verdict.checks.iter().chain(&verdict.targets) {
        for a in &c.anomalies {
            println!("  {} - {}", c.checker, a.message);
        }
        for n in &c.notes {
            println!("  {} ? {n}", c.checker);
        }
    }
    println!(
        "verdict: {} -> {}",
        verdict.summary(),
        results.join("index.html").display()
    );
}

/// `cache_staleness_ms` of the front config that `keyraft dev` writes next to its env file.
fn front_cache_staleness_ms(env_file: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(env_file.parent()?.join("front.toml")).ok()?;
    text.lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        (k.trim() == "cache_staleness_ms")
            .then(|| v.trim().parse().ok())
            .flatten()
    })
}

/// Waits until some node leads and every node knows it.
fn wait_for_leader(
    backend: &dyn Backend,
    within: Duration,
    interrupted: &AtomicBool,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    loop {
        if interrupted.load(Ordering::Relaxed) {
            bail!("interrupted");
        }
        let s = backend.status(Duration::from_secs(4));
        if let Ok(s) = &s {
            if s.leader_id.is_some()
                && s.nodes
                    .iter()
                    .all(|n| n.error.is_none() && n.leader_id == s.leader_id)
            {
                return Ok(());
            }
        }
        if Instant::now() >= deadline {
            bail!("last status: {s:?}");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// How long the convergence probe polls.
const CONVERGENCE_WITHIN: Duration = Duration::from_secs(60);

/// From the heal until [`CONVERGENCE_WITHIN_MS`]: reads every replicated key's material in
/// both regions (see [`workload::multi_region::observe`]) until every replica lists exactly
/// its primary's material and no on-demand rotation is in progress.
async fn poll_replicas(ctx: &Ctx, healed: Instant) -> MrConvergence {
    let keys = workload::lock(&ctx.mr.replicated).clone();
    let mut out = MrConvergence {
        within_ms: CONVERGENCE_WITHIN_MS,
        ..MrConvergence::default()
    };
    let Some(peer) = ctx.peer.as_ref() else {
        return out;
    };
    loop {
        // Every key at once: a round costs one key's reads, so the time measured is close to
        // the moment the last replica caught up.
        let mut round = tokio::task::JoinSet::new();
        for (i, key) in keys.iter().enumerate() {
            let (a, b, key) = (ctx.client.clone(), peer.clone(), key.clone());
            round.spawn(async move { (i, workload::multi_region::observe(&a, &b, &key).await) });
        }
        let mut seen = Vec::with_capacity(keys.len());
        while let Some(r) = round.join_next().await {
            if let Ok(r) = r {
                seen.push(r);
            }
        }
        seen.sort_by_key(|(i, _)| *i);
        out.polls += 1;
        out.keys = seen.into_iter().map(|(_, o)| o).collect();
        let elapsed = healed.elapsed().as_millis() as u64;
        if out.keys.iter().all(|k| k.converged()) {
            out.converged_after_ms = Some(elapsed);
            return out;
        }
        if elapsed >= CONVERGENCE_WITHIN_MS || ctx.interrupted() {
            return out;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Every replica's state hash at one applied index, gathered across polls.
///
/// A node's state at a given index is the same on every replica that applied it, so hashes
/// need not be taken at one moment: each poll of `/status` adds every node's (stateApplied,
/// stateHash) pair, and the replicas can be compared as soon as every node has reported a
/// hash at some common index (the highest such index is used). Nodes that keep applying
/// (digests, the scheduler) therefore still line up. Gives up after `within`, saying why.
#[derive(Debug, Default)]
struct HashProbe {
    /// node -> stateApplied -> stateHash, from every poll.
    seen: BTreeMap<u64, BTreeMap<u64, String>>,
    polls: usize,
    /// What the last poll said about each node, for the reason when it never lines up.
    last: BTreeMap<u64, String>,
}

/// Per node this many indexes are remembered (polls are ~3 per second).
const HASHES_KEPT: usize = 500;

impl HashProbe {
    fn observe(&mut self, s: &ClusterStatus, nodes: &[u64]) {
        self.polls += 1;
        for (i, n) in s.nodes.iter().enumerate() {
            let id = n.node_id.or_else(|| nodes.get(i).copied()).unwrap_or(0);
            let what = match (&n.error, n.state_applied, &n.state_hash) {
                (Some(e), _, _) => format!("unreachable ({e})"),
                (None, Some(at), Some(h)) if !h.is_empty() => {
                    let seen = self.seen.entry(id).or_default();
                    seen.insert(at, h.clone());
                    while seen.len() > HASHES_KEPT {
                        seen.pop_first();
                    }
                    format!("hash at {at}")
                }
                (None, _, _) => format!(
                    "no hash (applying; lastApplied {})",
                    n.last_applied.map_or("-".into(), |a| a.to_string())
                ),
            };
            self.last.insert(id, what);
        }
    }

    /// The highest index every node reported a hash at, with the hashes.
    fn common(&self, nodes: &[u64]) -> Option<(u64, Vec<ReplicaHash>)> {
        let first = self.seen.get(nodes.first()?)?;
        let at = first.keys().rev().copied().find(|at| {
            nodes
                .iter()
                .all(|n| self.seen.get(n).is_some_and(|m| m.contains_key(at)))
        })?;
        Some((
            at,
            nodes
                .iter()
                .map(|n| ReplicaHash {
                    node: format!("n{n}"),
                    hash: self.seen[n][&at].clone(),
                })
                .collect(),
        ))
    }

    fn why_not(&self, within: Duration, nodes: &[u64]) -> String {
        let per_node: Vec<String> = nodes
            .iter()
            .map(|n| {
                let range = match self.seen.get(n) {
                    Some(m) if !m.is_empty() => format!(
                        "hashes at {}..={}",
                        m.keys().next().unwrap_or(&0),
                        m.keys().next_back().unwrap_or(&0)
                    ),
                    _ => "no hash ever".into(),
                };
                let last = self.last.get(n).map_or("never answered", String::as_str);
                format!("n{n}: {range}, last poll: {last}")
            })
            .collect();
        format!(
            "the replicas never reported a state hash at one common applied index within {}s              ({} polls of /status): {}",
            within.as_secs(),
            self.polls,
            per_node.join("; ")
        )
    }
}

/// Polls `/status` until every node has reported a hash at one common `stateApplied` (see
/// [`HashProbe`]); returns that index and the hashes, or why it could not.
fn converged_hashes(
    backend: &dyn Backend,
    within: Duration,
    interrupted: &AtomicBool,
) -> Result<(u64, Vec<ReplicaHash>), String> {
    let nodes = backend.nodes();
    let deadline = Instant::now() + within;
    let mut probe = HashProbe::default();
    let mut last_err = None;
    loop {
        match backend.status(Duration::from_secs(4)) {
            Ok(s) => {
                probe.observe(&s, &nodes);
                if let Some(found) = probe.common(&nodes) {
                    return Ok(found);
                }
            }
            Err(e) => last_err = Some(format!("{e:#}")),
        }
        if interrupted.load(Ordering::Relaxed) {
            return Err("interrupted".into());
        }
        if Instant::now() >= deadline {
            let mut why = probe.why_not(within, &nodes);
            if let Some(e) = last_err {
                why.push_str(&format!("; last /status error: {e}"));
            }
            return Err(why);
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn outcome_counts(h: &History, from: u64) -> (usize, usize, usize) {
    outcome_counts_between(h, from, u64::MAX)
}

fn outcome_counts_between(h: &History, from: u64, to: u64) -> (usize, usize, usize) {
    let (mut ok, mut fail, mut info) = (0, 0, 0);
    for op in h.ops.iter().filter(|o| o.time >= from && o.time <= to) {
        match op.op_type {
            OpType::Ok => ok += 1,
            OpType::Fail => fail += 1,
            OpType::Info => info += 1,
            OpType::Invoke => {}
        }
    }
    (ok, fail, info)
}

fn ok_by_op(h: &History, from: u64, to: u64) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for op in h
        .ops
        .iter()
        .filter(|o| o.op_type == OpType::Ok && o.time >= from && o.time <= to)
    {
        let name = serde_json::to_value(op.f)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        *out.entry(name).or_default() += 1;
    }
    out
}

/// Nearest-rank percentile of measured values.
fn percentile(values: &[Option<u64>], p: usize) -> Option<u64> {
    let mut measured: Vec<u64> = values.iter().flatten().copied().collect();
    measured.sort_unstable();
    (!measured.is_empty()).then(|| measured[(measured.len() * p).div_ceil(100).max(1) - 1])
}

/// The recovery probe: for each leader kill the nemesis reports, writes to `key` every 100 ms
/// until one is acknowledged; pushes milliseconds from the kill (or `None`) to `out`.
async fn probe_recovery(
    client: client::Client,
    key: String,
    recorder: Recorder,
    state: Arc<NemesisState>,
    out: Arc<std::sync::Mutex<Vec<Option<u64>>>>,
) {
    let mut seen = 0;
    loop {
        let kills = state.leader_kills();
        let Some(&at) = kills.get(seen) else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        seen += 1;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let give_up = Instant::now() + Duration::from_secs(30);
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        let found = loop {
            tokio::select! {
                Some(done) = rx.recv() => break Some((done - at) / 1_000_000),
                _ = tick.tick() => {
                    if Instant::now() > give_up {
                        break None;
                    }
                    let (client, key, recorder, tx) =
                        (client.clone(), key.clone(), recorder.clone(), tx.clone());
                    tokio::spawn(async move {
                        let d = format!("probe-{}", recorder.now());
                        let w = client.update_key_description().key_id(key).description(d);
                        if w.send().await.is_ok() {
                            let _ = tx.send(recorder.now());
                        }
                    });
                }
            }
        };
        workload::lock(&out).push(found);
    }
}

/// For each leader kill: time to the first acknowledged workload write invoked after it.
fn recovery(h: &History, log: &NemesisLog, probe: Vec<Option<u64>>) -> Recovery {
    let Ok(calls) = h.calls() else {
        return Recovery::default();
    };
    let writes: Vec<(u64, u64)> = calls
        .iter()
        .filter(|c| c.outcome() == OpType::Ok)
        .filter(|c| c.invoke.f.is_register_write() || c.invoke.f == F::CreateKey)
        .filter_map(|c| Some((c.invoke.time, c.complete?.time)))
        .collect();
    let workload_per_kill_ms: Vec<Option<u64>> = log
        .leader_kills
        .iter()
        .map(|k| {
            writes
                .iter()
                .filter(|(invoked, _)| *invoked >= k.at)
                .map(|(_, done)| (done - k.at) / 1_000_000)
                .min()
        })
        .collect();
    Recovery {
        p50_ms: percentile(&probe, 50),
        p99_ms: percentile(&probe, 99),
        per_kill_ms: probe,
        workload_per_kill_ms,
        kill_at_ms: log.leader_kills.iter().map(|k| k.at / 1_000_000).collect(),
        kill_node: log.leader_kills.iter().map(|k| k.node).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::NodeStatus;
    use crate::history::{Recorder, Value};
    use crate::nemesis::LeaderKill;

    fn status(nodes: &[(u64, Option<(u64, &str)>)]) -> ClusterStatus {
        ClusterStatus {
            nodes: nodes
                .iter()
                .map(|(id, seen)| NodeStatus {
                    node_id: Some(*id),
                    state_applied: seen.map(|(at, _)| at),
                    state_hash: seen.map(|(_, h)| h.to_owned()),
                    last_applied: Some(seen.map_or(99, |(at, _)| at)),
                    ..NodeStatus::default()
                })
                .collect(),
            ..ClusterStatus::default()
        }
    }

    #[test]
    fn replica_hashes_line_up_at_a_common_index_seen_in_different_polls() {
        let nodes = [1, 2, 3];
        let mut probe = HashProbe::default();
        // Never all three at one index in one poll: the cluster keeps applying.
        probe.observe(
            &status(&[(1, Some((10, "a"))), (2, Some((11, "b"))), (3, None)]),
            &nodes,
        );
        assert_eq!(probe.common(&nodes), None);
        probe.observe(
            &status(&[
                (1, Some((12, "c"))),
                (2, Some((12, "c"))),
                (3, Some((10, "a"))),
            ]),
            &nodes,
        );
        probe.observe(
            &status(&[
                (1, Some((13, "d"))),
                (2, Some((13, "d"))),
                (3, Some((12, "x"))),
            ]),
            &nodes,
        );
        let (at, hashes) = probe.common(&nodes).expect("all three reported index 12");
        assert_eq!(at, 12, "the highest common index");
        assert_eq!(
            hashes.iter().map(|h| h.hash.as_str()).collect::<Vec<_>>(),
            ["c", "c", "x"],
            "hashes are compared as reported, so a divergent replica shows"
        );
    }

    #[test]
    fn replica_hashes_that_never_line_up_say_why_per_node() {
        let nodes = [1, 2, 3];
        let mut probe = HashProbe::default();
        let mut s = status(&[(1, Some((10, "a"))), (2, Some((11, "b"))), (3, None)]);
        s.nodes[2].node_id = None;
        s.nodes[2].error = Some("connect timeout".into());
        probe.observe(&s, &nodes);
        assert_eq!(probe.common(&nodes), None);
        let why = probe.why_not(Duration::from_secs(60), &nodes);
        assert!(why.contains("n1: hashes at 10..=10"), "{why}");
        assert!(
            why.contains("n3: no hash ever, last poll: unreachable (connect timeout)"),
            "{why}"
        );
        assert!(why.contains("1 polls"), "{why}");
    }

    #[test]
    fn recovery_is_the_first_acknowledged_write_invoked_after_the_kill() {
        let r = Recorder::new();
        let before = r.invoke(1, F::Enable, Some("k"), Value::None);
        std::thread::sleep(Duration::from_millis(2));
        let at = r.now();
        let read = r.invoke(2, F::Describe, Some("k"), Value::None);
        let w = r.invoke(3, F::Disable, Some("k"), Value::None);
        r.ok(before, Value::None);
        std::thread::sleep(Duration::from_millis(3));
        r.ok(read, Value::Meta(None));
        r.ok(w, Value::None);
        let h = r.snapshot();
        let log = NemesisLog {
            leader_kills: vec![LeaderKill { at, node: 1 }],
            ..NemesisLog::default()
        };
        let rec = recovery(&h, &log, vec![Some(40), None, Some(10), Some(30), Some(20)]);
        let ms = rec.workload_per_kill_ms[0].expect("a write succeeded after the kill");
        let disable_done = h.ops.last().unwrap().time;
        assert_eq!(ms, (disable_done - at) / 1_000_000);
        assert_eq!(
            rec.p50_ms,
            Some(20),
            "nearest rank over the measured probes"
        );
        assert_eq!(rec.p99_ms, Some(40));
    }
}
