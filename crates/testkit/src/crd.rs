//! The CloudJob CustomResourceDefinition, installed the way a user does it.

use std::time::Duration;

use anyhow::Context as _;
use cloudjob_testenv::ControlPlane;

/// The generated CRD, relative to the repository root.
pub const CRD_FILE: &str = "crds/cloudjobs.cloudjob.io.yaml";
/// Its name.
pub const CRD_NAME: &str = "cloudjobs.cloudjob.io";

/// `kubectl apply -f crds/cloudjobs.cloudjob.io.yaml`, then a watch of the CRD until it is Established
/// (CloudJobs can be created from then on).
pub async fn install_crd(cp: &ControlPlane) -> anyhow::Result<()> {
    let mut apply = cp.kubectl();
    apply
        .args(["apply", "-f"])
        .arg(crate::repo_root()?.join(CRD_FILE));
    crate::command::stdout(apply)
        .await
        .context("installing the CloudJob CRD")?;
    cloudjob_testenv::wait_for_crd_established(&cp.client(), CRD_NAME, Duration::from_secs(30))
        .await
}
