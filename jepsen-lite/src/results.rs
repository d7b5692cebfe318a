//! The results directory of one run: what the runner saves and what `check` reads back.
//!
//! ```text
//! <dir>/history.jsonl   every event, one JSON object per line      (runner; required)
//! <dir>/faults.jsonl    fault windows {start, end, name}           (runner; optional)
//! <dir>/replicas.json   [{node, hash}] after the final phase       (runner; optional)
//! <dir>/run.json        measurements; `check` reads `recovery`,     (runner; optional)
//!                       `revocation_bound`, `convergence_unknown` and
//!                       `multi_region` (two regions: replica-convergence)
//! <dir>/verdict.json    the checkers' verdict                      (check)
//! <dir>/index.html      report with latency.svg, throughput.svg,   (check)
//!                       outcomes.svg inline
//! ```

use std::path::Path;

use anyhow::Context;

use crate::check::multi_region::{self, MrConvergence};
use crate::check::recovery::{self, RecoveryTimes};
use crate::check::{check_all, Options, ReplicaHash, RevocationBound, Validity, Verdict};
use crate::history::{load_jsonl, save_jsonl, FaultWindow, History};
use crate::report;

/// File names inside a results directory.
pub mod files {
    /// The history.
    pub const HISTORY: &str = "history.jsonl";
    /// Fault windows.
    pub const FAULTS: &str = "faults.jsonl";
    /// Replica state hashes.
    pub const REPLICAS: &str = "replicas.json";
    /// The runner's measurements.
    pub const RUN: &str = "run.json";
    /// The verdict.
    pub const VERDICT: &str = "verdict.json";
    /// The HTML report.
    pub const INDEX: &str = "index.html";
}

/// Everything a run recorded.
#[derive(Debug, Clone, Default)]
pub struct Run {
    /// The history.
    pub history: History,
    /// Fault windows injected by nemeses.
    pub faults: Vec<FaultWindow>,
    /// Replica hashes, if collected.
    pub replicas: Option<Vec<ReplicaHash>>,
}

impl Run {
    /// Saves the run's inputs (history, faults, replicas) into `dir`, creating it.
    pub fn save(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        self.history.save(&dir.join(files::HISTORY))?;
        save_jsonl(&dir.join(files::FAULTS), &self.faults)?;
        if let Some(r) = &self.replicas {
            std::fs::write(dir.join(files::REPLICAS), serde_json::to_vec_pretty(r)?)?;
        }
        Ok(())
    }

    /// Loads a run saved by [`Run::save`]; faults and replicas are optional.
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        let history = History::load(&dir.join(files::HISTORY))?;
        let faults_path = dir.join(files::FAULTS);
        let faults = if faults_path.exists() {
            load_jsonl(&faults_path)?
        } else {
            Vec::new()
        };
        let replicas_path = dir.join(files::REPLICAS);
        let replicas = if replicas_path.exists() {
            let bytes = std::fs::read(&replicas_path)?;
            Some(
                serde_json::from_slice(&bytes)
                    .with_context(|| format!("parsing {}", replicas_path.display()))?,
            )
        } else {
            None
        };
        Ok(Run {
            history,
            faults,
            replicas,
        })
    }
}

/// The parts of `run.json` that checks read; the rest is for humans.
#[derive(Debug, Default, serde::Deserialize)]
struct RunInfo {
    #[serde(default)]
    recovery: Option<RecoveryTimes>,
    #[serde(default)]
    revocation_bound: Option<RevocationBound>,
    /// Why the runner could not compare the replicas' state hashes.
    #[serde(default)]
    convergence_unknown: Option<String>,
    /// Two-region runs: the multi-region keys' material after the heal.
    #[serde(default)]
    multi_region: Option<MrConvergence>,
}

impl RunInfo {
    fn load(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join(files::RUN);
        if !path.exists() {
            return Ok(RunInfo::default());
        }
        let bytes = std::fs::read(&path)?;
        serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))
    }
}

/// Checks the run saved in `dir`, writes `verdict.json` and the report there, and returns
/// the verdict. With a `run.json`, the revocation bound comes from it and the leader-kill
/// recovery times join the verdict.
pub fn check_dir(dir: &Path, opts: &Options) -> anyhow::Result<Verdict> {
    let run = Run::load(dir)?;
    let info = RunInfo::load(dir)?;
    let mut opts = opts.clone();
    if let Some(bound) = info.revocation_bound {
        opts.revocation_bound = bound;
    }
    let mut verdict = check_all(&run.history, run.replicas.as_deref(), &opts)?;
    if let Some(why) = info.convergence_unknown {
        if let Some(c) = verdict
            .checks
            .iter_mut()
            .find(|c| c.checker == "convergence" && c.validity == Validity::Unknown)
        {
            c.notes.push(why);
        }
    }
    if let Some(mr) = &info.multi_region {
        let c = multi_region::check_convergence(mr);
        verdict.validity = verdict.validity.merge(c.validity);
        verdict.checks.push(c);
    }
    if let Some(times) = &info.recovery {
        verdict.push_target(recovery::check(times));
    }
    std::fs::write(
        dir.join(files::VERDICT),
        serde_json::to_vec_pretty(&verdict)?,
    )?;
    report::write(dir, &run.history, &run.faults, &verdict)?;
    Ok(verdict)
}
