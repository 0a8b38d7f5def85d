//! `spec.outputsConfigMap`: the produced ids land in a ConfigMap the CloudJob owns, for downstream GitOps
//! steps (Flux `postBuild.substituteFrom`, `envFrom`, kro); a ConfigMap someone else made is never taken over.

use cloudjob_operator::crd::Phase;
use cloudjob_sim::{JobSpec, Service};
use cloudjob_testkit::e2e::*;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::{Api, api::PostParams};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn produced_ids_are_exported_to_an_owned_config_map_and_a_foreign_one_is_never_taken_over() {
    let (env, operator, ns) = Env::with_operator(&[], "exports").await;
    let config_maps: Api<ConfigMap> = Api::namespaced(env.client.clone(), &ns);

    let job =
        env.job(JobSpec::new(Service::Ims, PROJECT, "imsCreateImageByInstance").duration_secs(2.0));
    let mut manifest = env.cloudjob_manifest("image", "ims", &job.job_id);
    manifest["spec"]["outputsConfigMap"] = "image-ids".into();
    let cj = env.create_cloudjob_from(&ns, manifest).await;
    let done = env
        .wait_status(&operator, &ns, "image", "Succeeded", |s| {
            s.phase == Some(Phase::Succeeded)
        })
        .await;
    let image_id = done
        .outputs
        .and_then(|o| o.image_id)
        .expect("the job produced an image");
    let exported = config_maps
        .get("image-ids")
        .await
        .expect("the ConfigMap exists");
    let data = exported.data.clone().unwrap_or_default();
    assert_eq!(data.get("imageId"), Some(&image_id));
    assert_eq!(data.get("phase").map(String::as_str), Some("Succeeded"));
    assert_eq!(data.get("jobId"), Some(&job.job_id));
    assert!(
        data.keys()
            .all(|k| !k.to_lowercase().contains("key") && !k.contains("token")),
        "no credentials: {data:?}"
    );
    let owner = exported
        .metadata
        .owner_references
        .as_ref()
        .and_then(|o| o.first())
        .expect("an owner");
    assert_eq!(
        (owner.kind.as_str(), Some(&owner.uid), owner.controller),
        ("CloudJob", cj.metadata.uid.as_ref(), Some(true)),
        "owned by the CloudJob, so that it is deleted with it"
    );

    // A ConfigMap that exists already and is someone else's.
    let theirs: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "shared-settings"},
        "data": {"owner": "team-a"}
    }))
    .expect("configmap");
    config_maps
        .create(&PostParams::default(), &theirs)
        .await
        .expect("created");
    let other =
        env.job(JobSpec::new(Service::Ims, PROJECT, "imsCreateImageByInstance").duration_secs(2.0));
    let mut manifest = env.cloudjob_manifest("clash", "ims", &other.job_id);
    manifest["spec"]["outputsConfigMap"] = "shared-settings".into();
    env.create_cloudjob_from(&ns, manifest).await;
    let stalled = env
        .wait_status(
            &operator,
            &ns,
            "clash",
            "Stalled with ConfigMapConflict",
            |s| condition_is(s, "Stalled", "True", "ConfigMapConflict"),
        )
        .await;
    let message = &condition(&stalled, "Stalled").expect("stalled").message;
    assert!(message.contains("shared-settings"), "{message}");
    let untouched = config_maps
        .get("shared-settings")
        .await
        .expect("still there");
    assert_eq!(untouched.data, theirs.data, "never overwritten");
    assert!(
        untouched.metadata.owner_references.is_none(),
        "never taken over"
    );
}
