//! What a storage node's data directory holds and what opening it costs: per table, the row
//! count and key/value bytes; then the time to open the database (a crash repair included if
//! the node was killed) and to load the state machine, as a restart does.
//!
//! ```text
//! cargo run --release -p keyraft-raft --example store_stats -- <node data dir> [redb|sled] [--sample] [--leave-dirty] [--load-only]
//! ```
//!
//! `--leave-dirty` ends the process without closing the database, as a kill -9 would, so that
//! the next open measures a crash repair. `--sample` also prints the start of each table's last value (wrapped material, not secrets:
//! the data directory holds nothing unwrapped).
//!
//! Opening writes (redb creates missing tables, repair rewrites the allocator state): run it on
//! a copy of a stopped node's directory.

use std::path::PathBuf;
use std::time::Instant;

use raft::store::{StateMachineStore, Table};
use raft::Backend;

fn main() -> anyhow::Result<()> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let sample = args.iter().any(|a| a == "--sample");
    let leave_dirty = args.iter().any(|a| a == "--leave-dirty");
    let load_only = args.iter().any(|a| a == "--load-only");
    args.retain(|a| !a.starts_with("--"));
    let mut args = args.into_iter();
    let dir = PathBuf::from(
        args.next()
            .ok_or_else(|| anyhow::anyhow!("usage: store_stats <node data dir> [redb|sled]"))?,
    );
    let backend: Backend = match args.next() {
        Some(b) => b.parse().map_err(anyhow::Error::msg)?,
        None => Backend::Redb,
    };

    // Opening creates a database: a mistyped path must not leave an empty one behind.
    let db = match backend {
        Backend::Redb => dir.join("keyraft.redb"),
        Backend::Sled => dir.join("sled"),
    };
    anyhow::ensure!(db.exists(), "no {backend} database at {}", db.display());

    let started = Instant::now();
    let kv = backend.open_kv(&dir)?;
    let opened = started.elapsed();
    println!("open (repair if needed): {:>8} ms", opened.as_millis());

    if load_only {
        // Skip the tables' figures (for profiling the load alone).
    } else {
        println!(
            "{:<14} {:>10} {:>14} {:>14} {:>10}",
            "table", "rows", "key bytes", "value bytes", "scan ms"
        );
        for table in Table::ALL {
            let (mut rows, mut key_bytes, mut value_bytes) = (0u64, 0u64, 0u64);
            let scan_started = Instant::now();
            kv.scan(table, 4096, &mut |batch| {
                for (k, v) in &batch {
                    rows += 1;
                    key_bytes += k.len() as u64;
                    value_bytes += v.len() as u64;
                }
                Ok(())
            })?;
            println!(
                "{:<14} {:>10} {:>14} {:>14} {:>10}",
                table.name(),
                rows,
                key_bytes,
                value_bytes,
                scan_started.elapsed().as_millis()
            );
        }
        // The stored snapshot document lives in a file beside the database (since 2026-11-29).
        let snapshot_files: u64 = std::fs::read_dir(dir.join("snapshots"))
            .map(|d| {
                d.flatten()
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0);
        println!(
            "{:<14} {:>10} {:>14} {:>14}",
            "snapshots/", "", "", snapshot_files
        );
    }
    if sample {
        // The value at the middle of each table: the last one is often a special case.
        for table in Table::ALL {
            let mut values = Vec::new();
            kv.scan(table, 4096, &mut |batch| {
                values.extend(batch.into_iter().map(|(_, v)| v));
                Ok(())
            })?;
            if let Some(v) = values.get(values.len() / 2) {
                let shown = String::from_utf8_lossy(&v[..v.len().min(3000)]).into_owned();
                println!(
                    "--- {} (middle value, {} bytes):\n{shown}",
                    table.name(),
                    v.len()
                );
            }
        }
    }
    drop(kv);

    let started = Instant::now();
    let kv = backend.open_kv(&dir)?;
    let reopened = started.elapsed();
    let started = Instant::now();
    let (events, _) = tokio::sync::broadcast::channel(16);
    let sm = StateMachineStore::load(kv, events)?;
    let loaded = started.elapsed();
    let state = sm.state();
    let state = state
        .read()
        .map_err(|_| anyhow::anyhow!("state lock poisoned"))?;
    println!(
        "reopen: {} ms, load state machine: {} ms ({} entities, {} keys)",
        reopened.as_millis(),
        loaded.as_millis(),
        state.entity_count(),
        state.keys.len()
    );
    if leave_dirty {
        // As a kill -9 would: the next open repairs.
        std::process::abort();
    }
    Ok(())
}
