//! `keyraft`: storage node, front, or a whole dev region in one command.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "keyraft",
    version,
    about = "Self-hosted, AWS KMS compatible key management"
)]
struct Cli {
    /// Log as JSON lines instead of human-readable text.
    #[arg(long, global = true, env = "KEYRAFT_LOG_JSON")]
    log_json: bool,
    #[command(subcommand)]
    role: Role,
}

#[derive(Subcommand)]
enum Role {
    /// A whole region on loopback: storage nodes as child processes, one front.
    Dev(node::dev::DevArgs),
    /// One storage node of a region's Raft cluster.
    Node(node::config::NodeArgs),
    /// A stateless front: AWS KMS JSON 1.1 (HTTPS) and gRPC (mTLS).
    Front(node::config::FrontArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    node::init_process(cli.log_json);
    match cli.role {
        Role::Dev(args) => node::dev::run(args).await,
        Role::Node(args) => {
            let params = args.validate()?;
            node::roles::run_storage_node(params, node::shutdown_signal()).await
        }
        Role::Front(args) => {
            let params = args.validate()?;
            let front = node::roles::start_front(&params).await?;
            tokio::select! {
                res = front.wait() => res,
                _ = node::shutdown_signal() => Ok(()),
            }
        }
    }
}
