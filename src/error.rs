//! Errors of a reconcile that could not finish its work against the Kubernetes API.
//!
//! Problems with the cloud or the user's input are not errors here: they become conditions and events
//! (see `plan::Problem`). These are the operator's own failures, retried by the error policy.

/// A reconcile failure, retried with back-off.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the CloudJob has no namespace")]
    MissingNamespace,
    #[error("cannot read the credentials Secret: {0}")]
    SecretRead(#[source] kube::Error),
    #[error("cannot read the CloudJob: {0}")]
    CloudJobRead(#[source] kube::Error),
    #[error("cannot write the CloudJob status: {0}")]
    StatusPatch(#[source] kube::Error),
    #[error("cannot read or write the outputs ConfigMap: {0}")]
    ConfigMap(#[source] kube::Error),
    #[error("the Kubernetes API did not answer within {0:?}")]
    Timeout(std::time::Duration),
}

impl Error {
    /// A bounded label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::MissingNamespace => "missing_namespace",
            Error::SecretRead(_) => "secret_read",
            Error::CloudJobRead(_) => "cloudjob_read",
            Error::StatusPatch(_) => "status_patch",
            Error::ConfigMap(_) => "configmap",
            Error::Timeout(_) => "timeout",
        }
    }
}
