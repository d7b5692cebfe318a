//! `jepsen-lite`: thin CLI over the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use jepsen_lite::{check::validity_word, selftest, Options, Validity};

#[derive(Parser)]
#[command(
    name = "jepsen-lite",
    about = "Chaos harness for keyraft: run, check, report"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check the checkers against generated histories with planted anomalies.
    SelfTest,
    /// Re-check a saved run: reads history.jsonl (+ faults.jsonl, replicas.json), writes
    /// verdict.json and index.html. Exits 1 if the history is invalid, 2 if undecided.
    Check {
        /// Results directory of a run.
        dir: PathBuf,
        /// Linearizability search steps per key before giving up.
        #[arg(long, default_value_t = Options::default().search_budget_per_key)]
        budget: u64,
    },
    /// Run workloads against a real cluster under faults, then check and report. Exits 1 if
    /// the history is invalid, 2 if undecided or on error.
    Run(jepsen_lite::runner::RunArgs),
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::SelfTest => {
            let ok = selftest::run(&Options::default(), std::io::stdout().lock())?;
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Check { dir, budget } => {
            let opts = Options {
                search_budget_per_key: budget,
                ..Options::default()
            };
            let verdict = jepsen_lite::check_dir(&dir, &opts)?;
            for c in &verdict.checks {
                println!("{:<13} {}", c.checker, validity_word(c.validity));
                for a in &c.anomalies {
                    println!("  - {}", a.message);
                }
                for n in &c.notes {
                    println!("  ? {n}");
                }
            }
            // Performance targets: reported, not part of the verdict.
            for c in &verdict.targets {
                let met = if c.validity == Validity::Valid {
                    "target met"
                } else {
                    "target MISSED"
                };
                println!("{:<13} {met}", c.checker);
                for a in &c.anomalies {
                    println!("  - {}", a.message);
                }
                for n in &c.notes {
                    println!("  ? {n}");
                }
            }
            println!("verdict: {}", verdict.summary());
            println!("report: {}", dir.join("index.html").display());
            Ok(match verdict.validity {
                Validity::Valid => ExitCode::SUCCESS,
                Validity::Invalid => ExitCode::FAILURE,
                Validity::Unknown => ExitCode::from(2),
            })
        }
        Command::Run(args) => Ok(jepsen_lite::runner::main(args)),
    }
}
