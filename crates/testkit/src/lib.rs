//! The test kit: what the end-to-end tests (`tests/`), the benchmark (`crates/bench`) and the demo
//! (`examples/demo`) share, on top of the local control plane of `cloudjob-testenv`.
//!
//! - [`install_crd`]: `kubectl apply -f crds/cloudjobs.cloudjob.io.yaml`, then a watch until it is
//!   Established.
//! - [`Operator`]: the operator in process ([`Operator::in_process`], `cloudjob_operator::run` on a task)
//!   or as a child process of the real binary ([`Operator::process`], for restarts, kills and leader
//!   election), ready once `/readyz` answers; [`Operator::metrics`] scrapes it into [`Metrics`].
//! - [`ObjectWatch`]: waits that watch one object and see every write the API server reports, instead of
//!   sampling it.
//! - [`command`]: running kubectl, helm and cargo to completion, off the async workers.
//! - [`repo_root`]: the repository, wherever the caller runs.
//! - [`chart`]: the Helm chart's manifests as objects.
//! - [`e2e`]: the end-to-end tests' environment (control plane, CRD, simulator, CloudJobs, operator).

pub mod chart;
pub mod command;
mod crd;
pub mod e2e;
mod metrics;
mod operator;
mod watch;

pub use cloudjob_testenv::repo_root;
pub use crd::{CRD_FILE, CRD_NAME, install_crd};
pub use metrics::{Metrics, Sample};
pub use operator::{Operator, ProcessOptions};
pub use watch::ObjectWatch;
