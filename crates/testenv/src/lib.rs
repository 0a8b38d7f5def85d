//! A real, local Kubernetes control plane for tests and the demo: etcd and kube-apiserver run as child
//! processes (the way controller-runtime's envtest does it), built from pinned Go modules by
//! `tools/control-plane/build.sh`, together with the pinned `kubectl` and `helm`.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let cp = cloudjob_testenv::ControlPlane::start().await?;
//! let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(cp.client());
//! namespaces.get("default").await?;
//! let out = cp.kubectl().args(["get", "--raw", "/readyz"]).output()?;
//! assert!(out.status.success());
//! # Ok(())
//! # }
//! ```
//!
//! Set `CLOUDJOB_TEST_KUBECONFIG` to run the same tests against an existing cluster instead.

mod binaries;
mod certs;
mod control_plane;
mod detached;
mod kubeconfig;
mod node;
mod process;
mod util;

pub use binaries::{Binaries, binaries, cache_dir, repo_root};
pub use control_plane::{ControlPlane, ControlPlaneOptions, EXISTING_KUBECONFIG_ENV};
pub use detached::{DetachedProcess, DetachedState, NODE_RUNNER, STATE_FILE, remove_dir};
pub use node::{
    BRIDGE, GATEWAY, HOST_STATE_DIR, HostState, NODE_NAME, Node, NodeBinaries, NodeUnavailable,
    prepare_node, start_node_or_skip,
};
pub use process::{process_is_running, terminate};
pub use util::{free_port, wait_for, wait_for_crd_established};
