//! A CloudJob the operator cannot decode is skipped, never fatal: every other CloudJob, in every namespace,
//! is still reconciled, also when the bad one is met at start-up in the initial list.

use cloudjob_operator::crd::{CloudJob, Phase, crd};
use cloudjob_sim::{JobSpec, Service};
use cloudjob_testkit::e2e::*;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{
    Api,
    api::{ApiResource, DynamicObject, Patch, PatchParams, PostParams},
};

/// The installed CRD with `spec.service` loosened to any string: what an older, laxer version of the CRD
/// could have let into etcd.
fn looser_crd() -> CustomResourceDefinition {
    let mut crd = crd();
    let schema = crd.spec.versions[0]
        .schema
        .as_mut()
        .and_then(|s| s.open_api_v3_schema.as_mut())
        .expect("schema");
    let spec = schema
        .properties
        .as_mut()
        .and_then(|p| p.get_mut("spec"))
        .expect("spec");
    let service = spec
        .properties
        .as_mut()
        .and_then(|p| p.get_mut("service"))
        .expect("service");
    service.enum_ = None;
    crd
}

async fn install(env: &Env, crd: &CustomResourceDefinition) {
    let api: Api<CustomResourceDefinition> = Api::all(env.client.clone());
    api.patch(
        "cloudjobs.cloudjob.io",
        &PatchParams::apply("e2e-invalid-objects").force(),
        &Patch::Apply(crd),
    )
    .await
    .expect("CRD applied");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_undecodable_cloudjob_is_reported_and_every_other_cloudjob_completes() {
    let env = Env::start().await;
    let (first, second) = (env.namespace("first").await, env.namespace("second").await);

    // Stored under the looser schema: a service this operator does not know.
    install(&env, &looser_crd()).await;
    let raw: Api<DynamicObject> = Api::namespaced_with(
        env.client.clone(),
        &first,
        &ApiResource::erase::<CloudJob>(&()),
    );
    let mut bad = env.cloudjob_manifest("unknown-service", "ims", "job0");
    bad["spec"]["service"] = "quantum".into();
    let bad: DynamicObject = serde_json::from_value(bad).expect("object");
    raw.create(&PostParams::default(), &bad)
        .await
        .expect("accepted under the looser CRD");
    install(&env, &crd()).await;

    let mut good = Vec::new();
    for (namespace, count) in [(&first, 3), (&second, 3)] {
        for i in 0..count {
            let job =
                env.job(JobSpec::new(Service::Evs, PROJECT, "createVolume").duration_secs(2.0));
            let name = format!("volume-{i}");
            env.create_cloudjob(namespace, &name, "evs", &job.job_id)
                .await;
            good.push((namespace.clone(), name));
        }
    }

    // The operator meets the bad object in its initial list.
    let operator = env.operator(&[]).await;
    for (namespace, name) in &good {
        env.wait_status(&operator, namespace, name, "Succeeded", |s| {
            s.phase == Some(Phase::Succeeded)
        })
        .await;
    }
    let warnings = env
        .wait_event(&first, "unknown-service", None, "InvalidObject")
        .await;
    let invalid = warnings
        .iter()
        .find(|e| e.reason.as_deref() == Some("InvalidObject"))
        .unwrap_or_else(|| panic!("an InvalidObject event: {warnings:?}"));
    assert_eq!(invalid.type_.as_deref(), Some("Warning"));
    assert!(
        invalid
            .note
            .as_deref()
            .is_some_and(|n| n.contains("quantum")),
        "the note names what does not decode: {:?}",
        invalid.note
    );
    let stored = raw.get("unknown-service").await.expect("still there");
    assert_eq!(
        stored.data["status"]["observedGeneration"], -1,
        "the operator wrote nothing to an object it cannot read"
    );
}
