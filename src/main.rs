use anyhow::Context as _;
use clap::Parser;
use cloudjob_operator::cli::{Cli, Command, LogFormat};
use tracing_subscriber::{EnvFilter, fmt};

#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Crd => {
            print!("{}", cloudjob_operator::crd::crd_yaml()?);
            Ok(())
        }
        Command::Run(args) => {
            let filter = EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("info,kube=warn"));
            match args.log_format {
                LogFormat::Json => fmt().json().with_env_filter(filter).init(),
                LogFormat::Text => fmt().with_env_filter(filter).init(),
            }
            let client = kube::Client::try_default()
                .await
                .context("cannot configure a Kubernetes client")?;
            cloudjob_operator::run(client, args.config()).await
        }
    }
}
