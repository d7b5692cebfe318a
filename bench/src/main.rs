//! `keyraft-bench`: see the library docs and docs/benchmarks.md.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use keyraft_bench::config::SecretString;
use keyraft_bench::{report, Endpoints, Op, RunConfig, TargetKind, TargetOptions};

#[derive(Parser)]
#[command(
    name = "keyraft-bench",
    about = "Load generator for keyraft and OpenBao transit"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Runs one operation against one target and reports it.
    Run(Box<RunArgs>),
    /// Prints the runs of JSON files (from `run --json`) as one table with ratios.
    Compare {
        /// JSON files written by `run --json`.
        files: Vec<PathBuf>,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// The system under load.
    #[arg(long, value_enum)]
    target: TargetKind,
    /// The operation.
    #[arg(long, value_enum, default_value = "encrypt")]
    op: Op,
    /// Clients (one connection each), all sending at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Open loop: requests per second, due at fixed intervals (latency from the due time).
    #[arg(long)]
    rate: Option<f64>,
    /// Seconds sent but not recorded, first.
    #[arg(long, default_value_t = 3.0)]
    warmup: f64,
    /// Seconds recorded.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Plaintext / message bytes (encrypt, decrypt, sign, echoes).
    #[arg(long, default_value_t = 200)]
    payload_bytes: usize,
    /// A call taking longer counts as a timeout error (seconds).
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
    /// `keyraft dev` env file (KMS_ENDPOINT, KMS_GRPC_ENDPOINT, AWS_*, KMS_CA_BUNDLE, ...).
    #[arg(long, env = "KEYRAFT_BENCH_ENV_FILE")]
    env_file: Option<PathBuf>,
    /// keyraft AWS JSON endpoint (overrides KMS_ENDPOINT).
    #[arg(long)]
    json_endpoint: Option<String>,
    /// keyraft gRPC endpoint (overrides KMS_GRPC_ENDPOINT).
    #[arg(long)]
    grpc_endpoint: Option<String>,
    /// CA bundle for keyraft and the echoes (overrides KMS_CA_BUNDLE).
    #[arg(long)]
    ca: Option<PathBuf>,
    /// Client certificate for gRPC (overrides KMS_CLIENT_CERT).
    #[arg(long)]
    client_cert: Option<PathBuf>,
    /// Client key for gRPC (overrides KMS_CLIENT_KEY).
    #[arg(long)]
    client_key: Option<PathBuf>,
    /// Echo servers' certificate (default: front.pem beside the dev CA).
    #[arg(long)]
    echo_cert: Option<PathBuf>,
    /// Echo servers' key (default: front.key beside the dev CA).
    #[arg(long)]
    echo_key: Option<PathBuf>,
    /// OpenBao address (default BAO_ADDR).
    #[arg(long)]
    openbao_addr: Option<String>,
    /// OpenBao CA file (default BAO_CACERT).
    #[arg(long)]
    openbao_ca: Option<PathBuf>,
    /// File holding the OpenBao token (default: BAO_TOKEN).
    #[arg(long)]
    openbao_token_file: Option<PathBuf>,
    /// Write the run as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the plot (throughput and latency over time) as SVG here.
    #[arg(long)]
    svg: Option<PathBuf>,
    /// No progress lines.
    #[arg(long)]
    quiet: bool,
    /// Stop after this many requests (warm-up included), or at the end of --duration if that
    /// comes first; throughput is then taken over the time the run took.
    #[arg(long)]
    count: Option<u64>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Compare { files } => {
            let mut runs = Vec::new();
            for f in &files {
                runs.extend(report::read_json(f)?);
            }
            print!("{}", report::compare(&runs));
            Ok(())
        }
        Cmd::Run(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(run(*args)),
    }
}

async fn run(a: RunArgs) -> anyhow::Result<()> {
    let mut e = Endpoints::load(a.env_file.as_deref())?;
    macro_rules! over {
        ($($field:ident <- $flag:expr),* $(,)?) => {$(if let Some(v) = $flag { e.$field = Some(v); })*};
    }
    over!(json_url <- a.json_endpoint, grpc_url <- a.grpc_endpoint, ca <- a.ca,
          client_cert <- a.client_cert, client_key <- a.client_key, echo_cert <- a.echo_cert,
          echo_key <- a.echo_key, openbao_addr <- a.openbao_addr, openbao_ca <- a.openbao_ca);
    if let Some(p) = a.openbao_token_file {
        let token = std::fs::read_to_string(&p)?;
        e.openbao_token = Some(SecretString::new(token.trim()));
    }
    let target = TargetOptions {
        kind: a.target,
        endpoints: e,
        op: a.op,
        payload_bytes: a.payload_bytes,
        run_id: keyraft_bench::run_id(),
    };
    let cfg = RunConfig {
        concurrency: a.concurrency,
        rate: a.rate,
        warmup: Duration::from_secs_f64(a.warmup),
        duration: Duration::from_secs_f64(a.duration),
        timeout: Duration::from_secs_f64(a.timeout),
        op: a.op,
        progress: !a.quiet,
        count: a.count,
    };
    let r = keyraft_bench::bench(&target, &cfg).await?;
    print!("{}", report::table(std::slice::from_ref(&r)));
    if let Some(p) = &a.json {
        report::write_json(p, std::slice::from_ref(&r))?;
    }
    if let Some(p) = &a.svg {
        report::write_svg(p, &r)?;
    }
    Ok(())
}
