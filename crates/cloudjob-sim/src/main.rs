//! `cloudjob-sim`: serve the simulated jobs API until Ctrl-C / SIGTERM.

use std::net::SocketAddr;

use anyhow::{Context, bail};
use clap::Parser;
use cloudjob_sim::{Clock, Credentials, SimConfig, Simulator};

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Simulator of the Huawei Cloud / OTC jobs API (IMS, EVS, ECS)"
)]
struct Args {
    /// Address to listen on. The admin API only answers loopback peers.
    #[arg(long, env = "CLOUDJOB_SIM_LISTEN", default_value = "127.0.0.1:8443")]
    listen: SocketAddr,
    /// Accepted credentials, `AK:SK[,AK:SK...]`.
    #[arg(
        long,
        env = "CLOUDJOB_SIM_CREDENTIALS",
        default_value = "sim-ak:sim-sk"
    )]
    credentials: String,
    /// Simulated seconds per real second.
    #[arg(long, env = "CLOUDJOB_SIM_TIME_SCALE", default_value_t = 1.0)]
    time_scale: f64,
    /// Simulated seconds after which a finished job is deleted (returns not-found).
    #[arg(long, env = "CLOUDJOB_SIM_EXPIRY_SECS", default_value_t = 86_400)]
    expiry_secs: u64,
    /// Largest accepted X-Sdk-Date offset, in seconds.
    #[arg(long, env = "CLOUDJOB_SIM_MAX_CLOCK_SKEW_SECS", default_value_t = 900)]
    max_clock_skew_secs: u64,
}

fn parse_credentials(s: &str) -> anyhow::Result<Vec<Credentials>> {
    let creds = s
        .split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|pair| {
            let (ak, sk) = pair
                .trim()
                .split_once(':')
                .with_context(|| "credentials must be AK:SK pairs separated by commas")?;
            if ak.is_empty() || sk.is_empty() {
                bail!("empty AK or SK in --credentials");
            }
            Ok(Credentials::new(ak, sk))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    if creds.is_empty() {
        bail!("--credentials needs at least one AK:SK pair");
    }
    Ok(creds)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let cfg = SimConfig {
        listen: args.listen,
        credentials: parse_credentials(&args.credentials)?,
        time_scale: args.time_scale,
        expiry: std::time::Duration::from_secs(args.expiry_secs),
        max_clock_skew: std::time::Duration::from_secs(args.max_clock_skew_secs),
        clock: Clock::System,
    };
    let access_keys: Vec<&str> = cfg
        .credentials
        .iter()
        .map(|c| c.access_key.as_str())
        .collect();
    tracing::info!(?access_keys, time_scale = cfg.time_scale, "starting");
    let sim = Simulator::start(cfg.clone()).await?;
    tracing::info!(
        base_url = %sim.base_url(),
        "serving /{{ims,evs,ecs}}/v1/{{project_id}}/jobs/{{job_id}} and /admin/..."
    );
    shutdown_signal().await;
    tracing::info!("shutting down");
    drop(sim);
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn credentials_flag_accepts_pairs_and_rejects_garbage() {
        let c = parse_credentials("a:b, c:d").unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c[1].access_key, "c");
        assert!(parse_credentials("nocolon").is_err());
        assert!(parse_credentials("").is_err());
        assert!(parse_credentials(":x").is_err());
    }
}
