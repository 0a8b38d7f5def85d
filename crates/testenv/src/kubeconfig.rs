//! Writing the kubeconfigs the harness hands out, and reading the one of an existing cluster.

use std::path::Path;

use anyhow::{Context as _, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::json;

/// How clients verify the API server's certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Trust {
    /// A CA bundle, base64-encoded PEM exactly as in `certificate-authority-data`.
    CaData(String),
    /// `insecure-skip-tls-verify: true` in the existing kubeconfig.
    Insecure,
    /// No CA configured: the system roots (a cluster with a publicly trusted certificate).
    SystemRoots,
}

/// Where a cluster is and how to trust it: what a kubeconfig for another user of it needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Endpoint {
    pub server: String,
    pub trust: Trust,
}

impl Endpoint {
    pub(crate) fn with_ca_pem(server: String, ca_pem: &str) -> Self {
        Self {
            server,
            trust: Trust::CaData(BASE64.encode(ca_pem)),
        }
    }

    fn cluster_json(&self) -> serde_json::Value {
        let mut cluster = json!({ "server": self.server });
        match &self.trust {
            Trust::CaData(data) => cluster["certificate-authority-data"] = json!(data),
            Trust::Insecure => cluster["insecure-skip-tls-verify"] = json!(true),
            Trust::SystemRoots => {}
        }
        cluster
    }
}

/// A kubeconfig with one cluster, one user and one context, all named `name`, as YAML.
fn single_context(
    name: &str,
    endpoint: &Endpoint,
    user: serde_json::Value,
    namespace: Option<&str>,
) -> anyhow::Result<String> {
    let mut context = json!({ "cluster": name, "user": name });
    if let Some(namespace) = namespace {
        context["namespace"] = json!(namespace);
    }
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{ "name": name, "cluster": endpoint.cluster_json() }],
        "users": [{ "name": name, "user": user }],
        "contexts": [{ "name": name, "context": context }],
        "current-context": name,
    });
    serde_yaml::to_string(&config).context("serializing a kubeconfig")
}

/// The admin kubeconfig: client-certificate authentication, everything inline.
pub(crate) fn admin(endpoint: &Endpoint, cert_pem: &str, key_pem: &str) -> anyhow::Result<String> {
    let user = json!({
        "client-certificate-data": BASE64.encode(cert_pem),
        "client-key-data": BASE64.encode(key_pem),
    });
    single_context("cloudjob-testenv", endpoint, user, None)
}

/// A kubeconfig that authenticates with a bearer token only (no client certificate).
pub(crate) fn token(
    endpoint: &Endpoint,
    name: &str,
    namespace: &str,
    token: &str,
) -> anyhow::Result<String> {
    single_context(name, endpoint, json!({ "token": token }), Some(namespace))
}

/// The cluster of `kubeconfig`'s current context. Relative CA paths must already be absolute
/// ([`Kubeconfig::read_from`] does that).
pub(crate) fn current_endpoint(kubeconfig: &Kubeconfig) -> anyhow::Result<Endpoint> {
    let context_name = kubeconfig
        .current_context
        .as_deref()
        .filter(|name| !name.is_empty())
        .context("the kubeconfig has no current-context")?;
    let context = kubeconfig
        .contexts
        .iter()
        .find(|c| c.name == context_name)
        .and_then(|c| c.context.as_ref())
        .with_context(|| format!("the kubeconfig has no context named {context_name:?}"))?;
    let cluster = kubeconfig
        .clusters
        .iter()
        .find(|c| c.name == context.cluster)
        .and_then(|c| c.cluster.as_ref())
        .with_context(|| format!("the kubeconfig has no cluster named {:?}", context.cluster))?;
    let server = cluster
        .server
        .clone()
        .filter(|s| !s.is_empty())
        .with_context(|| format!("cluster {:?} has no server", context.cluster))?;
    let trust = if let Some(data) = cluster
        .certificate_authority_data
        .as_deref()
        .filter(|d| !d.is_empty())
    {
        Trust::CaData(data.to_owned())
    } else if let Some(path) = cluster
        .certificate_authority
        .as_deref()
        .filter(|p| !p.is_empty())
    {
        let pem =
            std::fs::read(path).with_context(|| format!("reading certificate-authority {path}"))?;
        Trust::CaData(BASE64.encode(pem))
    } else if cluster.insecure_skip_tls_verify == Some(true) {
        Trust::Insecure
    } else {
        Trust::SystemRoots
    };
    if !server.starts_with("https://") && !server.starts_with("http://") {
        bail!(
            "cluster {:?} has an unsupported server URL {server:?}",
            context.cluster
        );
    }
    Ok(Endpoint { server, trust })
}

/// A client for the current context of the kubeconfig file at `path`.
pub(crate) async fn client_from_file(path: &Path) -> anyhow::Result<kube::Client> {
    let kubeconfig = Kubeconfig::read_from(path)
        .with_context(|| format!("reading kubeconfig {}", path.display()))?;
    client_from(kubeconfig)
        .await
        .with_context(|| format!("building a client from {}", path.display()))
}

pub(crate) async fn client_from(kubeconfig: Kubeconfig) -> anyhow::Result<kube::Client> {
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .context("loading the kubeconfig")?;
    kube::Client::try_from(config).context("creating the client")
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXISTING: &str = r#"
apiVersion: v1
kind: Config
current-context: b
clusters:
- name: one
  cluster: { server: "https://one.example:6443", certificate-authority-data: Q0EgT05F }
- name: two
  cluster: { server: "https://10.1.2.3:443", insecure-skip-tls-verify: true }
users:
- name: u
  user: { token: abc }
contexts:
- name: a
  context: { cluster: one, user: u }
- name: b
  context: { cluster: two, user: u }
"#;

    #[test]
    fn existing_kubeconfig_yields_the_current_contexts_cluster() {
        let kubeconfig = Kubeconfig::from_yaml(EXISTING).expect("valid kubeconfig");
        let endpoint = current_endpoint(&kubeconfig).expect("has a current cluster");
        assert_eq!(
            endpoint,
            Endpoint {
                server: "https://10.1.2.3:443".into(),
                trust: Trust::Insecure
            }
        );
    }

    #[test]
    fn existing_kubeconfig_ca_data_is_kept_verbatim() {
        let yaml = EXISTING.replace("current-context: b", "current-context: a");
        let kubeconfig = Kubeconfig::from_yaml(&yaml).expect("valid kubeconfig");
        let endpoint = current_endpoint(&kubeconfig).expect("has a current cluster");
        assert_eq!(endpoint.server, "https://one.example:6443");
        assert_eq!(endpoint.trust, Trust::CaData("Q0EgT05F".into()));
    }

    #[test]
    fn existing_kubeconfig_ca_file_is_read_relative_to_the_kubeconfig() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("ca.pem"), "PEM").expect("write ca");
        let yaml = EXISTING
            .replace("current-context: b", "current-context: a")
            .replace(
                "certificate-authority-data: Q0EgT05F",
                "certificate-authority: ca.pem",
            );
        let path = dir.path().join("config");
        std::fs::write(&path, yaml).expect("write kubeconfig");
        let kubeconfig = Kubeconfig::read_from(&path).expect("valid kubeconfig");
        let endpoint = current_endpoint(&kubeconfig).expect("has a current cluster");
        assert_eq!(endpoint.trust, Trust::CaData(BASE64.encode("PEM")));
    }

    #[test]
    fn existing_kubeconfig_without_current_context_is_an_error() {
        let yaml = EXISTING.replace("current-context: b", "");
        let kubeconfig = Kubeconfig::from_yaml(&yaml).expect("valid kubeconfig");
        let err = current_endpoint(&kubeconfig).expect_err("no current context");
        assert!(err.to_string().contains("current-context"), "{err}");
    }

    #[test]
    fn existing_kubeconfig_with_dangling_context_is_an_error() {
        let yaml = EXISTING.replace("context: { cluster: two", "context: { cluster: three");
        let kubeconfig = Kubeconfig::from_yaml(&yaml).expect("valid kubeconfig");
        let err = current_endpoint(&kubeconfig).expect_err("cluster three does not exist");
        assert!(err.to_string().contains("\"three\""), "{err}");
    }

    #[test]
    fn token_kubeconfig_round_trips_through_kube() {
        let endpoint = Endpoint::with_ca_pem("https://127.0.0.1:1234".into(), "PEM");
        let yaml = token(&endpoint, "sa", "ns-a", "t0ken").expect("serializes");
        let kubeconfig = Kubeconfig::from_yaml(&yaml).expect("kube parses what we write");
        assert_eq!(current_endpoint(&kubeconfig).expect("endpoint"), endpoint);
        let context = kubeconfig.contexts[0].context.as_ref().expect("context");
        assert_eq!(context.namespace.as_deref(), Some("ns-a"));
    }
}
