//! `kmsctl compliance report`: see [`crate::compliance`] for the checks.

use clap::Subcommand;
use serde_json::Value;

use super::{param_err, parse_timestamp, Failure, GlobalArgs, OutputFormat};
use crate::compliance::{self, ReportParams};
use crate::Client;

/// `kmsctl compliance` subcommands.
#[derive(Debug, Subcommand)]
pub(super) enum ComplianceCommand {
    /// The weekly compliance job's checks over the caller's account: customer keys without
    /// rotation, keys unused for N days, keys pending deletion, denied calls by principal,
    /// calls per key and per principal over a period. Exit code 0 when there is no finding,
    /// 3 when there are findings (the report is printed either way).
    Report {
        /// A key is unused when not used for this many days.
        #[arg(long, default_value_t = 90)]
        unused_days: u32,
        /// Start of the call statistics period: RFC 3339 in UTC or epoch seconds
        /// (default: 7 days ago).
        #[arg(long)]
        start_time: Option<String>,
        /// End of the period (default: now).
        #[arg(long)]
        end_time: Option<String>,
    },
}

/// Exit code when the report has findings.
pub(super) const EXIT_FINDINGS: i32 = 3;

impl ComplianceCommand {
    /// The API operation named in errors.
    pub(super) fn operation(&self) -> &'static str {
        "ComplianceReport"
    }
}

/// Runs one `kmsctl compliance` subcommand.
pub(super) async fn execute(
    kms: &Client,
    g: &GlobalArgs,
    cmd: ComplianceCommand,
) -> Result<Option<Value>, Failure> {
    let ComplianceCommand::Report {
        unused_days,
        start_time,
        end_time,
    } = cmd;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let period_end = match end_time {
        Some(t) => parse_timestamp("--end-time", &t)?,
        None => now,
    };
    let period_start = match start_time {
        Some(t) => parse_timestamp("--start-time", &t)?,
        None => period_end - 7.0 * 86_400.0,
    };
    if period_start > period_end {
        return Err(param_err("--start-time", "must not be after --end-time".to_string()).into());
    }
    let params = ReportParams {
        now,
        unused_days,
        period_start,
        period_end,
    };
    let (keys, skipped) = compliance::gather_keys(kms).await?;
    let events = compliance::gather_events(kms, period_start, period_end).await?;
    let report = compliance::build(&keys, &events, params);
    for s in &skipped {
        eprintln!("kmsctl: skipped key {s}");
    }
    let out = if g.output == OutputFormat::Table {
        Value::String(compliance::render_table(&report))
    } else {
        serde_json::to_value(&report).map_err(|e| Failure::Local {
            message: e.to_string(),
            code: super::EXIT_OTHER_ERROR,
        })?
    };
    if report.is_clean() {
        return Ok(Some(out));
    }
    // Findings: the report is printed all the same; the exit code tells a scheduled job.
    Err(Failure::Findings {
        value: out,
        code: EXIT_FINDINGS,
    })
}
