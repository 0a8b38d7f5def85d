//! The bounded set of reasons that appear in conditions, events and metrics.

/// Why a CloudJob is in the state it is in. Every value is documented in the README's conditions table.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::VariantArray,
)]
pub enum Reason {
    /// The job is pending or running normally.
    Progressing,
    /// The job waits for a yearly/monthly order to be paid (PENDING_PAYMENT): someone must pay or cancel
    /// the order. Polled slowly; never a failure by itself.
    PendingPayment,
    /// The job finished with SUCCESS.
    Succeeded,
    /// The job finished with FAIL.
    JobFailed,
    /// The job was cancelled (CANCELLED, CANCELED, ABORTED).
    JobCancelled,
    /// Some sub-jobs of a batch failed.
    PartiallyFailed,
    /// `spec.activeDeadlineSeconds` passed before the job finished.
    DeadlineExceeded,
    /// Polling is paused by the `cloudjob.io/paused` annotation.
    Suspended,
    /// The credentials Secret does not exist in the CloudJob's namespace.
    SecretNotFound,
    /// The credentials Secret lacks a key or holds an unusable value.
    SecretInvalid,
    /// The cloud rejected the AK/SK signature (HTTP 401).
    AuthenticationFailed,
    /// The credentials may not read this job (HTTP 403).
    Forbidden,
    /// The cloud does not know the job (HTTP 404, or ECS 400 Common.0011).
    JobNotFound,
    /// The cloud rejected the request for another reason (other 4xx).
    RequestRejected,
    /// The endpoint cannot be built from the spec and the operator's settings.
    InvalidEndpoint,
    /// `spec.endpoint` is not on the operator's allow-list (`--allowed-endpoints`); nothing was sent.
    EndpointNotAllowed,
    /// The cloud throttled the request (HTTP 429, APIGW.0308); retried after its Retry-After or a back-off.
    Throttled,
    /// The cloud answered 5xx, timed out or could not be reached; retried with back-off.
    CloudUnavailable,
    /// The cloud answered something that is not a job (malformed JSON, a cut-off body, an error body with 200).
    InvalidResponse,
    /// `spec.outputsConfigMap` names a ConfigMap that exists and is not owned by this CloudJob.
    ConfigMapConflict,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// A problem that will not go away by itself: it needs a person (a Secret, a permission, a job id),
    /// so the CloudJob reads as Stalled. It is still retried with back-off, and clears when fixed.
    pub fn is_lasting_problem(self) -> bool {
        matches!(
            self,
            Reason::SecretNotFound
                | Reason::SecretInvalid
                | Reason::AuthenticationFailed
                | Reason::Forbidden
                | Reason::JobNotFound
                | Reason::RequestRejected
                | Reason::InvalidEndpoint
                | Reason::ConfigMapConflict
                | Reason::EndpointNotAllowed
        )
    }

    /// A lasting problem that one answer does not prove: a job the cloud has just created can be
    /// unknown for a moment to the replica that answers, and a gateway can answer 404 briefly. It is
    /// asked once more before it reads as Stalled.
    pub fn needs_confirmation(self) -> bool {
        matches!(self, Reason::JobNotFound)
    }

    /// A problem with the credentials, which often fixes itself shortly (a Secret created by External
    /// Secrets or Sealed Secrets a few seconds after the CloudJob, keys being rotated): it reads as
    /// Reconciling for a grace period before it reads as Stalled.
    pub fn is_credentials_problem(self) -> bool {
        matches!(
            self,
            Reason::SecretNotFound | Reason::SecretInvalid | Reason::AuthenticationFailed
        )
    }

    /// A passing problem: retried with back-off while the CloudJob keeps reading as Reconciling.
    pub fn is_transient_problem(self) -> bool {
        matches!(
            self,
            Reason::Throttled | Reason::CloudUnavailable | Reason::InvalidResponse
        )
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strum::VariantArray as _;

    #[test]
    fn reasons_match_the_kubernetes_condition_reason_format() {
        for reason in Reason::VARIANTS {
            let s = reason.as_str();
            assert!(
                s.chars().next().is_some_and(|c| c.is_ascii_alphabetic()),
                "{s}"
            );
            assert!(s.chars().all(|c| c.is_ascii_alphanumeric()), "{s}");
        }
    }

    #[test]
    fn no_reason_is_both_lasting_and_transient() {
        for reason in Reason::VARIANTS {
            assert!(
                !(reason.is_lasting_problem() && reason.is_transient_problem()),
                "{reason}"
            );
        }
    }
}
