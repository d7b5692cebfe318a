//! The load loop: N clients, closed loop (each sends its next request when the previous
//! answers) or open loop (requests are due at a fixed rate whatever the answers; latency is
//! measured from the time a request was due, so queueing in the client or the server shows
//! instead of silently lowering the rate: no coordinated omission).
//!
//! ```text
//! prepare target (keys, ciphertext)  ->  N conns dialled  ->  t0
//! t0 .. t0+warmup        requests sent, not recorded
//! t0+warmup .. +duration recorded: HDR histogram per client (µs), merged at the end;
//!                        per-second buckets (completions, errors, latency) for the plot
//! progress task          one line per second on stderr
//! ```

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::ops::Op;
use crate::target::{Conn, Target};

/// How to load the target.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// Clients (connections) sending at once.
    pub concurrency: usize,
    /// Open loop at this many requests per second; `None`: closed loop.
    pub rate: Option<f64>,
    /// Sent but not recorded, first.
    pub warmup: Duration,
    /// Recorded.
    pub duration: Duration,
    /// One call longer than this counts as a `timeout` error.
    pub timeout: Duration,
    /// The operation.
    pub op: Op,
    /// Print a progress line each second (stderr).
    pub progress: bool,
    /// Stop after this many requests (warm-up included), or at the end of the window if that
    /// comes first: a fixed amount of work, e.g. filling a region with keys. `None`: no limit.
    pub count: Option<u64>,
}

/// Latency percentiles, in milliseconds.
#[derive(Clone, Debug, Default, Serialize, serde::Deserialize)]
pub struct Percentiles {
    /// Samples.
    pub count: u64,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Maximum.
    pub max: f64,
}

impl Percentiles {
    fn of(h: &Histogram<u64>) -> Percentiles {
        let ms = |us: u64| us as f64 / 1000.0;
        if h.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            count: h.len(),
            mean: h.mean() / 1000.0,
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        }
    }
}

/// One second of the measured window (by completion time).
#[derive(Clone, Debug, Default, Serialize, serde::Deserialize)]
pub struct Second {
    /// Seconds since the measured window began.
    pub t: u32,
    /// Successful calls completed in this second.
    pub ok: u64,
    /// Failed calls completed in this second.
    pub errors: u64,
    /// Median latency of this second's successes (ms).
    pub p50: f64,
    /// 99th percentile (ms).
    pub p99: f64,
    /// Maximum (ms).
    pub max: f64,
}

/// The result of one run.
#[derive(Clone, Debug, Default, Serialize, serde::Deserialize)]
pub struct RunReport {
    /// Target name.
    pub target: String,
    /// Operation name.
    pub op: String,
    /// `closed` or `open`.
    pub mode: String,
    /// Clients (connections).
    pub concurrency: usize,
    /// Offered rate (open loop).
    pub rate: Option<f64>,
    /// Plaintext/message bytes.
    pub payload_bytes: usize,
    /// Warm-up seconds.
    pub warmup_s: f64,
    /// Measured seconds.
    pub duration_s: f64,
    /// Unix time (s) the measured window began.
    pub started_unix: u64,
    /// Successful calls in the window.
    pub ok: u64,
    /// Failed calls in the window, by kind.
    pub errors: BTreeMap<String, u64>,
    /// Successes per second over the window.
    pub throughput: f64,
    /// Latency of the successes: from send (closed loop) or from the due time (open loop).
    pub latency: Percentiles,
    /// Open loop only: from the actual send, i.e. without the client-side wait.
    pub service_time: Option<Percentiles>,
    /// Per second, for the plot.
    pub series: Vec<Second>,
}

impl RunReport {
    /// Total errors.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// Open loop: requests due in the window that the clients had not sent when it ended.
pub const NOT_SENT: &str = "not sent: clients behind schedule at the end";

fn histogram(sigfig: u8) -> Histogram<u64> {
    // 1 µs .. 10 min, auto-resize off: values above are clamped.
    Histogram::new_with_bounds(1, 600_000_000, sigfig).expect("static bounds")
}

struct Shared {
    cfg: RunConfig,
    start: Instant,
    measure_start: Instant,
    end: Instant,
    next: AtomicU64,
    live_ok: AtomicU64,
    live_err: AtomicU64,
    seconds: Mutex<Vec<(u64, u64, Histogram<u64>)>>,
}

impl Shared {
    fn flush_second(&self, sec: usize, ok: u64, errors: u64, h: &Histogram<u64>) {
        let mut secs = self.seconds.lock().expect("no panics while held");
        while secs.len() <= sec {
            secs.push((0, 0, histogram(2)));
        }
        let s = &mut secs[sec];
        s.0 += ok;
        s.1 += errors;
        let _ = s.2.add(h);
    }
}

struct WorkerOut {
    latency: Histogram<u64>,
    service: Histogram<u64>,
    ok: u64,
    errors: BTreeMap<String, u64>,
}

async fn worker(mut conn: Box<dyn Conn>, shared: Arc<Shared>, seed: u64) -> WorkerOut {
    let cfg = &shared.cfg;
    let mut out = WorkerOut {
        latency: histogram(3),
        service: histogram(3),
        ok: 0,
        errors: BTreeMap::new(),
    };
    let mut rng = seed | 1;
    let (mut sec, mut sec_ok, mut sec_err, mut sec_h) = (0usize, 0u64, 0u64, histogram(2));
    loop {
        let seq = shared.next.fetch_add(1, Ordering::Relaxed);
        if cfg.count.is_some_and(|n| seq >= n) {
            break;
        }
        let due = match cfg.rate {
            None => Instant::now(),
            Some(rate) => shared.start + Duration::from_secs_f64(seq as f64 / rate),
        };
        if due >= shared.end {
            break;
        }
        if cfg.rate.is_some() {
            // Behind schedule at the end of the window: stop; what was due and not sent is
            // counted below, so a saturated target cannot stretch the run or hide the backlog.
            if Instant::now() >= shared.end {
                break;
            }
            tokio::time::sleep_until(due.into()).await;
        }
        // xorshift: the mix's draw must not cost more than the call it picks.
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let call = cfg.op.call((rng % 100) as u32);
        let sent = Instant::now();
        let result = tokio::time::timeout(cfg.timeout, conn.call(call, seq)).await;
        let done = Instant::now();
        let ok = matches!(result, Ok(Ok(())));
        if ok {
            shared.live_ok.fetch_add(1, Ordering::Relaxed);
        } else {
            shared.live_err.fetch_add(1, Ordering::Relaxed);
        }
        if due < shared.measure_start {
            continue;
        }
        let now_sec = done
            .saturating_duration_since(shared.measure_start)
            .as_secs() as usize;
        if now_sec != sec {
            shared.flush_second(sec, sec_ok, sec_err, &sec_h);
            (sec, sec_ok, sec_err) = (now_sec, 0, 0);
            sec_h.reset();
        }
        match result {
            Ok(Ok(())) => {
                let us = done.duration_since(due).as_micros() as u64;
                out.latency.saturating_record(us.max(1));
                out.service
                    .saturating_record((done.duration_since(sent).as_micros() as u64).max(1));
                sec_h.saturating_record(us.max(1));
                out.ok += 1;
                sec_ok += 1;
            }
            Ok(Err(kind)) => {
                *out.errors.entry(kind).or_default() += 1;
                sec_err += 1;
            }
            Err(_) => {
                *out.errors.entry("timeout".into()).or_default() += 1;
                sec_err += 1;
            }
        }
    }
    shared.flush_second(sec, sec_ok, sec_err, &sec_h);
    out
}

/// Opens `cfg.concurrency` connections, runs the load, and returns the report.
pub async fn run(
    target: &dyn Target,
    cfg: &RunConfig,
    target_name: &str,
    payload_bytes: usize,
) -> anyhow::Result<RunReport> {
    anyhow::ensure!(cfg.concurrency > 0, "--concurrency must be at least 1");
    if let Some(r) = cfg.rate {
        anyhow::ensure!(r > 0.0 && r.is_finite(), "--rate must be positive");
    }
    let mut conns = Vec::with_capacity(cfg.concurrency);
    for _ in 0..cfg.concurrency {
        conns.push(target.conn().await?);
    }
    let start = Instant::now();
    let shared = Arc::new(Shared {
        cfg: cfg.clone(),
        start,
        measure_start: start + cfg.warmup,
        end: start + cfg.warmup + cfg.duration,
        next: AtomicU64::new(0),
        live_ok: AtomicU64::new(0),
        live_err: AtomicU64::new(0),
        seconds: Mutex::new(Vec::new()),
    });
    let started_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        + cfg.warmup.as_secs();
    let progress = cfg.progress.then(|| {
        let shared = shared.clone();
        let name = format!("{target_name} {}", cfg.op.name());
        tokio::spawn(progress_lines(shared, name))
    });
    let mut tasks = Vec::new();
    for (i, conn) in conns.into_iter().enumerate() {
        tasks.push(tokio::spawn(worker(
            conn,
            shared.clone(),
            0x9E37_79B9_7F4A_7C15u64.wrapping_mul(i as u64 + 1),
        )));
    }
    let mut latency = histogram(3);
    let mut service = histogram(3);
    let mut ok = 0;
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    for t in tasks {
        let w = t.await?;
        latency.add(&w.latency)?;
        service.add(&w.service)?;
        ok += w.ok;
        for (k, v) in w.errors {
            *errors.entry(k).or_default() += v;
        }
    }
    if let Some(p) = progress {
        p.abort();
    }
    // A run cut short by `count` is measured over the time it took, not the whole window.
    let measured_for = measured_time(
        cfg,
        Instant::now().saturating_duration_since(shared.measure_start),
    );
    if let Some(rate) = cfg.rate {
        let mut due = (measured_for.as_secs_f64() * rate).floor() as u64;
        if let Some(n) = cfg.count {
            let warmup_due = (cfg.warmup.as_secs_f64() * rate).floor() as u64;
            due = due.min(n.saturating_sub(warmup_due));
        }
        let sent = ok + errors.values().sum::<u64>();
        if due > sent {
            errors.insert(NOT_SENT.into(), due - sent);
        }
    }
    let secs = shared.seconds.lock().expect("workers are done");
    let measured = match cfg.count {
        // Stopped early: the last second is partial but holds real answers.
        Some(_) => measured_for.as_secs_f64().ceil() as usize,
        None => cfg.duration.as_secs() as usize,
    };
    let series = secs
        .iter()
        .enumerate()
        // The last, partial second holds the stragglers that finished after the window.
        .take(measured.max(1))
        .map(|(t, (ok, errors, h))| {
            let p = Percentiles::of(h);
            Second {
                t: t as u32,
                ok: *ok,
                errors: *errors,
                p50: p.p50,
                p99: p.p99,
                max: p.max,
            }
        })
        .collect();
    Ok(RunReport {
        target: target_name.to_string(),
        op: cfg.op.name().to_string(),
        mode: if cfg.rate.is_some() { "open" } else { "closed" }.into(),
        concurrency: cfg.concurrency,
        rate: cfg.rate,
        payload_bytes,
        warmup_s: cfg.warmup.as_secs_f64(),
        duration_s: measured_for.as_secs_f64(),
        started_unix,
        ok,
        errors,
        throughput: ok as f64 / measured_for.as_secs_f64().max(1e-9),
        latency: Percentiles::of(&latency),
        service_time: cfg.rate.map(|_| Percentiles::of(&service)),
        series,
    })
}

/// How long the measured window lasted: the configured duration, or less when `count`
/// stopped the clients early (`elapsed`: from the window's start until the last answer).
fn measured_time(cfg: &RunConfig, elapsed: Duration) -> Duration {
    match cfg.count {
        Some(_) => elapsed.min(cfg.duration),
        None => cfg.duration,
    }
}

async fn progress_lines(shared: Arc<Shared>, name: String) {
    let mut tick = tokio::time::interval_at(
        (shared.start + Duration::from_secs(1)).into(),
        Duration::from_secs(1),
    );
    let (mut last_ok, mut last_err) = (0, 0);
    loop {
        tick.tick().await;
        let now = Instant::now();
        let (ok, err) = (
            shared.live_ok.load(Ordering::Relaxed),
            shared.live_err.load(Ordering::Relaxed),
        );
        let phase = if now < shared.measure_start {
            "warmup "
        } else {
            "measure"
        };
        // The newest second every client has moved past (clients flush a second when they
        // finish a call in a later one), so its p99 is complete or nearly.
        let p99 = {
            let secs = shared.seconds.lock().expect("no panics while held");
            secs.len()
                .checked_sub(2)
                .map(|i| Percentiles::of(&secs[i].2).p99)
        };
        eprintln!(
            "[{:>4.0}s] {name} {phase} {:>8} ok/s {:>6} err/s  p99 {}",
            now.duration_since(shared.start).as_secs_f64(),
            ok - last_ok,
            err - last_err,
            p99.map(|p| format!("{p:.2} ms"))
                .unwrap_or_else(|| "-".into()),
        );
        (last_ok, last_err) = (ok, err);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::Call;
    use crate::target::{CallFuture, ConnFuture};

    /// Answers every call at once, successfully.
    struct Instant0;
    struct Conn0;

    impl Conn for Conn0 {
        fn call(&mut self, _call: Call, _seq: u64) -> CallFuture<'_> {
            Box::pin(async { Ok(()) })
        }
    }

    impl Target for Instant0 {
        fn conn(&self) -> ConnFuture<'_> {
            Box::pin(async { Ok(Box::new(Conn0) as Box<dyn Conn>) })
        }
    }

    fn cfg(count: Option<u64>, duration: Duration) -> RunConfig {
        RunConfig {
            concurrency: 4,
            rate: None,
            warmup: Duration::ZERO,
            duration,
            timeout: Duration::from_secs(1),
            op: Op::CreateKey,
            progress: false,
            count,
        }
    }

    #[tokio::test]
    async fn count_stops_after_exactly_that_many_requests_and_rates_over_the_time_taken() {
        let started = Instant::now();
        let r = run(
            &Instant0,
            &cfg(Some(1000), Duration::from_secs(60)),
            "test",
            0,
        )
        .await
        .unwrap();
        assert_eq!(r.ok, 1000);
        assert_eq!(r.error_count(), 0);
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "did not wait for the window"
        );
        assert!(
            r.duration_s < 30.0,
            "duration is the time taken: {}",
            r.duration_s
        );
        assert!(
            (r.throughput - r.ok as f64 / r.duration_s).abs() < 1e-6 * r.throughput,
            "throughput over the time taken"
        );
        assert_eq!(r.series.iter().map(|s| s.ok).sum::<u64>(), 1000);
    }

    #[tokio::test]
    async fn without_count_the_window_bounds_the_run() {
        let r = run(&Instant0, &cfg(None, Duration::from_millis(200)), "test", 0)
            .await
            .unwrap();
        assert!(r.ok > 0);
        assert_eq!(r.duration_s, 0.2);
    }
}
