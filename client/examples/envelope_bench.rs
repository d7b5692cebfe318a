//! Envelope encryption throughput against a real region: records per second and KMS calls per
//! 10,000 records, for encryption and for decryption with a fresh (cold) encryptor.
//!
//! ```text
//! keyraft dev --dir /tmp/kr &                     # a region; writes /tmp/kr/env
//! cargo build --release -p keyraft-client --example envelope_bench
//! taskset -c 0 target/release/examples/envelope_bench --env-file /tmp/kr/env
//! ```
//!
//! `--threads N` encrypting tasks (default 1) share one encryptor, on a tokio runtime with
//! `--workers W` threads (default 2; 0 = current-thread runtime). Under `taskset -c 0` all of
//! them share one core. With a current-thread runtime a loop that never waits starves every
//! other task, so the data-key prefetch cannot run until the loop blocks on the refill; with
//! two workers the prefetch is driven by the idle worker, as in an application whose tasks
//! wait for I/O. `--no-prefetch` turns prefetching off (refill on demand only).

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use client::envelope::{EncryptionContext, EnvelopeEncryptor};

struct Args {
    env_file: Option<String>,
    key_id: Option<String>,
    records: u64,
    size: usize,
    threads: usize,
    max_messages: u64,
    max_age: Duration,
    workers: usize,
    prefetch: bool,
}

fn parse_args() -> Result<Args> {
    let mut a = Args {
        env_file: None,
        key_id: None,
        records: 1_000_000,
        size: 1024,
        threads: 1,
        max_messages: 100_000,
        max_age: Duration::from_secs(300),
        workers: 2,
        prefetch: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--env-file" => a.env_file = Some(value()?),
            "--key-id" => a.key_id = Some(value()?),
            "--records" => a.records = value()?.parse()?,
            "--size" => a.size = value()?.parse()?,
            "--threads" => a.threads = value()?.parse()?,
            "--max-messages" => a.max_messages = value()?.parse()?,
            "--max-age-secs" => a.max_age = Duration::from_secs(value()?.parse()?),
            "--workers" => a.workers = value()?.parse()?,
            "--no-prefetch" => a.prefetch = false,
            _ => bail!(
                "usage: envelope_bench [--env-file F] [--key-id K] [--records N] [--size B] \
                 [--threads T] [--workers W] [--max-messages M] [--max-age-secs S] [--no-prefetch]"
            ),
        }
    }
    if a.threads == 0 || a.records == 0 {
        bail!("--threads and --records must be positive");
    }
    Ok(a)
}

/// This process's CPU time (user + system) from /proc/self/stat, in seconds; `None` elsewhere.
/// On a shared machine wall-clock rates depend on the neighbours; CPU time does not.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0) // USER_HZ is 100 on Linux
}

fn per_cpu_second(records: u64, cpu: Option<f64>) -> String {
    match cpu {
        Some(c) if c > 0.0 => format!("{:.0} records per CPU-second", records as f64 / c),
        _ => "CPU time unavailable".into(),
    }
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let rt = if args.workers == 0 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.workers)
            .enable_all()
            .build()?
    };
    rt.block_on(run(args))
}

async fn run(args: Args) -> Result<()> {
    let mut builder = client::Client::builder();
    builder = match &args.env_file {
        Some(f) => builder.env_file(f)?,
        None => client::ClientBuilder::from_env(),
    };
    let kms = builder.build()?;
    let key_id = match &args.key_id {
        Some(k) => k.clone(),
        None => {
            kms.create_key()
                .description("envelope_bench")
                .send()
                .await?
                .key_metadata
                .context("CreateKey returned no metadata")?
                .key_id
        }
    };
    let ctx = EncryptionContext::from_pairs([("bench", "envelope"), ("tenant", "acme")]);
    let plaintext = vec![0x5au8; args.size];
    let per_task = args.records / args.threads as u64;
    let total = per_task * args.threads as u64;

    let enc = EnvelopeEncryptor::builder(kms.clone())
        .max_messages(args.max_messages)
        .max_age(args.max_age)
        .prefetch(args.prefetch)
        .build()?;
    // Warm-up: the first data key and the connection, outside the timed loop.
    let sample = enc.encrypt(&key_id, &ctx, &plaintext).await?;
    let warm_calls = enc.stats().generate_data_key_calls;

    let (started, cpu0) = (Instant::now(), cpu_seconds());
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..args.threads {
        let (enc, ctx, key_id, pt) = (enc.clone(), ctx.clone(), key_id.clone(), plaintext.clone());
        tasks.spawn(async move {
            let mut last = Vec::new();
            for _ in 0..per_task {
                last = enc.encrypt(&key_id, &ctx, &pt).await?;
            }
            anyhow::Ok(last)
        });
    }
    let mut records = vec![sample];
    while let Some(r) = tasks.join_next().await {
        records.push(r??);
    }
    let enc_secs = started.elapsed().as_secs_f64();
    let enc_cpu = cpu_seconds().zip(cpu0).map(|(b, a)| b - a);
    let enc_calls = enc.stats().generate_data_key_calls - warm_calls;

    // Decrypt with a fresh encryptor: nothing shared with the one that encrypted.
    let dec = EnvelopeEncryptor::builder(kms.clone()).build()?;
    let record = records.last().context("no record")?.clone();
    dec.decrypt(&record, &ctx).await?;
    let warm_dec = dec.stats().decrypt_calls;
    let (started, cpu0) = (Instant::now(), cpu_seconds());
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..args.threads {
        let (dec, ctx, record, pt) = (dec.clone(), ctx.clone(), record.clone(), plaintext.clone());
        tasks.spawn(async move {
            for _ in 0..per_task {
                let out = dec.decrypt(&record, &ctx).await?;
                anyhow::ensure!(out == pt, "round trip mismatch");
            }
            anyhow::Ok(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    let dec_secs = started.elapsed().as_secs_f64();
    let dec_cpu = cpu_seconds().zip(cpu0).map(|(b, a)| b - a);
    let dec_calls = dec.stats().decrypt_calls - warm_dec;

    println!(
        "envelope_bench: {total} records of {} B, {} task(s), {} worker(s), max_messages {}, prefetch {}",
        args.size, args.threads, args.workers, args.max_messages, args.prefetch
    );
    println!(
        "encrypt: {:.0} records/s wall ({:.1} MiB/s), {}, {enc_calls} GenerateDataKey calls = {:.2} per 10,000 records",
        total as f64 / enc_secs,
        total as f64 * args.size as f64 / enc_secs / (1 << 20) as f64,
        per_cpu_second(total, enc_cpu),
        enc_calls as f64 * 10_000.0 / total as f64,
    );
    println!(
        "decrypt: {:.0} records/s wall ({:.1} MiB/s), {}, {dec_calls} Decrypt calls after warm-up (fresh encryptor)",
        total as f64 / dec_secs,
        total as f64 * args.size as f64 / dec_secs / (1 << 20) as f64,
        per_cpu_second(total, dec_cpu),
    );
    Ok(())
}
