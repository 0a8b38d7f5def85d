//! Small helpers the harness and the tests built on it share.

use std::future::Future;
use std::net::{Ipv4Addr, TcpListener};
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::time::Instant;

/// A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it; the listener is closed again).
/// Another process may take it before it is used; [`crate::ControlPlane::start`] retries once for that.
pub fn free_port() -> u16 {
    try_free_port().unwrap_or_else(|e| panic!("cannot find a free port on 127.0.0.1: {e:#}"))
}

pub(crate) fn try_free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("binding 127.0.0.1:0")?;
    Ok(listener
        .local_addr()
        .context("reading the bound address")?
        .port())
}

/// Calls `f` every 100 ms until it returns `Some`, and returns that value; fails with a message naming
/// `what` once `timeout` has passed. `f` is always called at least once.
pub async fn wait_for<F, Fut, T>(timeout: Duration, what: &str, mut f: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = f().await {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits, watching it, until the CustomResourceDefinition `name` is `Established`, i.e. its objects can be
/// created.
pub async fn wait_for_crd_established(
    client: &kube::Client,
    name: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::runtime::wait::{await_condition, conditions::is_crd_established};
    let crds: kube::Api<CustomResourceDefinition> = kube::Api::all(client.clone());
    tokio::time::timeout(timeout, await_condition(crds, name, is_crd_established()))
        .await
        .with_context(|| {
            format!("timed out after {timeout:?} waiting for the CRD {name} to be established")
        })?
        .with_context(|| format!("watching the CRD {name}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_port_can_be_bound_again() {
        let port = free_port();
        assert_ne!(port, 0);
        TcpListener::bind((Ipv4Addr::LOCALHOST, port)).expect("the port is free");
    }

    #[tokio::test]
    async fn wait_for_returns_the_first_some() {
        let mut calls = 0;
        let value = wait_for(Duration::from_secs(5), "the third call", || {
            calls += 1;
            let done = calls == 3;
            async move { done.then_some(calls) }
        })
        .await
        .expect("succeeds on the third call");
        assert_eq!(value, 3);
    }

    #[tokio::test]
    async fn wait_for_names_what_timed_out() {
        let err = wait_for(Duration::from_millis(250), "godot", || async { None::<()> })
            .await
            .expect_err("never ready");
        assert!(err.to_string().contains("waiting for godot"), "{err}");
    }
}
