//! Writes a simulated run into a results directory and checks it, to try the checkers and
//! the report without a cluster:
//!
//! ```text
//! cargo run -p jepsen-lite --example simulate -- /tmp/run [stale-read|lost-write|lost-create|
//!     resurrection|undecryptable|wrong-plaintext|divergent-replica] [calls] [processes] [keys]
//! ```

use std::path::PathBuf;

use jepsen_lite::check::Options;
use jepsen_lite::results::{check_dir, Run};
use jepsen_lite::sim::{simulate, Plant, SimConfig};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = PathBuf::from(args.first().map_or("jepsen-lite-sim", String::as_str));
    let plant = match args.get(1).map(String::as_str) {
        None | Some("none") => None,
        Some("stale-read") => Some(Plant::StaleRead),
        Some("lost-write") => Some(Plant::LostWrite),
        Some("lost-create") => Some(Plant::LostCreate),
        Some("resurrection") => Some(Plant::Resurrection),
        Some("undecryptable") => Some(Plant::Undecryptable),
        Some("wrong-plaintext") => Some(Plant::WrongPlaintext),
        Some("divergent-replica") => Some(Plant::DivergentReplica),
        Some(other) => anyhow::bail!("unknown plant {other}"),
    };
    let num = |i: usize, default: usize| -> anyhow::Result<usize> {
        Ok(args
            .get(i)
            .map(|s| s.parse())
            .transpose()?
            .unwrap_or(default))
    };
    let cfg = SimConfig {
        calls: num(2, 5_000)?,
        processes: num(3, 16)?,
        keys: num(4, 8)?,
        ..SimConfig::default()
    };
    let sim = simulate(&cfg, plant.as_slice());
    Run {
        history: sim.history,
        faults: sim.faults,
        replicas: Some(sim.replicas),
    }
    .save(&dir)?;
    let verdict = check_dir(&dir, &Options::default())?;
    println!("{}", verdict.summary());
    for a in verdict.anomalies() {
        println!("  - {}", a.message);
    }
    println!("report: {}", dir.join("index.html").display());
    Ok(())
}
