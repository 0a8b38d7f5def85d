//! Builders for unit tests.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use crate::crd::{Cloud, CloudJob, CloudJobSpec, SecretReference, Service};

/// A minimal valid CloudJob named `name` in namespace `ns`, generation 1, created at 2026-01-01T00:00:00Z.
pub fn cloudjob(name: &str) -> CloudJob {
    let mut cj = CloudJob::new(
        name,
        CloudJobSpec {
            service: Service::Ims,
            region: "eu-de".into(),
            project_id: "0123456789abcdef0123456789abcdef".into(),
            job_id: "ff8080814dbd65d7014dbe0d84db0013".into(),
            cloud: Cloud::Huaweicloud,
            ims_job_path: None,
            endpoint: None,
            credentials_secret_ref: SecretReference {
                name: "creds".into(),
                namespace: None,
                access_key_key: None,
                secret_key_key: None,
                security_token_key: None,
            },
            polling: None,
            active_deadline_seconds: None,
            credentials_grace_period_seconds: None,
            outputs_config_map: None,
        },
    );
    cj.metadata = ObjectMeta {
        name: Some(name.into()),
        namespace: Some("ns".into()),
        generation: Some(1),
        creation_timestamp: Some(Time(
            "2026-01-01T00:00:00Z".parse().expect("valid timestamp"),
        )),
        ..Default::default()
    };
    cj
}

/// A duration model that has seen no job finish: the adaptive mode's age and progress rule applies.
pub fn no_history() -> &'static crate::durations::DurationModel {
    static EMPTY: std::sync::LazyLock<crate::durations::DurationModel> =
        std::sync::LazyLock::new(Default::default);
    &EMPTY
}
