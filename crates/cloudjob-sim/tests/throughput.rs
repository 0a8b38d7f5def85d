//! Load generator: 10,000 live jobs, signed GETs from a bounded pool of concurrent clients on
//! 127.0.0.1. Ignored by default (it takes ~10 s and wants a release build):
//!
//! `cargo test --release -p cloudjob-sim --test throughput -- --ignored --nocapture`
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cloudjob_sim::{JobSpec, ProgressCurve, Service, SimConfig, Simulator};
use jiff::Timestamp;
use rand::Rng;

const JOBS: usize = 10_000;
const CONCURRENCY: usize = 32;
const RUN: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "load test; run in release with --ignored --nocapture"]
async fn serves_2000_signed_requests_per_second_with_10k_live_jobs() {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let mut paths = Vec::with_capacity(JOBS);
    for i in 0..JOBS {
        let service = Service::ALL[i % 3];
        let job_type = match service {
            Service::Ims => "imsCreateImageByInstance",
            Service::Evs => "batchCreateVolume",
            _ => "createServer",
        };
        let spec = JobSpec::new(service, format!("proj{}", i % 50), job_type)
            .duration_secs(3600.0)
            .progress(ProgressCurve::Ease)
            .tasks(["A", "B", "C"]);
        paths.push(format!(
            "{}{}",
            sim.base_url(),
            sim.create_job(spec).unwrap().path
        ));
    }
    let paths = Arc::new(paths);
    let ok = Arc::new(AtomicU64::new(0));
    let bad = Arc::new(AtomicU64::new(0));
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CONCURRENCY)
        .build()
        .unwrap();
    let creds = common::creds();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let (paths, ok, bad, client, creds) = (
            paths.clone(),
            ok.clone(),
            bad.clone(),
            client.clone(),
            creds.clone(),
        );
        tasks.push(tokio::spawn(async move {
            while start.elapsed() < RUN {
                let i = rand::rng().random_range(0..paths.len());
                let r = common::signed_request(&client, &paths[i], &creds, Timestamp::now())
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == 200 => {
                        // Read the body too: a benchmark that skips it flatters the server.
                        let _ = r.bytes().await;
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        bad.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = start.elapsed().as_secs_f64();
    let ok = ok.load(Ordering::Relaxed);
    let rps = ok as f64 / elapsed;
    let g = sim.global_stats();
    println!(
        "{JOBS} live jobs, {CONCURRENCY} concurrent clients, {elapsed:.1}s: {ok} signed 200s ({rps:.0} req/s), {} failures; peak per-second by service: {:?}",
        bad.load(Ordering::Relaxed),
        g.by_service
            .iter()
            .map(|(k, v)| (k.as_str(), v.max_requests_per_second))
            .collect::<Vec<_>>()
    );
    assert_eq!(bad.load(Ordering::Relaxed), 0);
    assert!(rps >= 2000.0, "only {rps:.0} req/s");
}
