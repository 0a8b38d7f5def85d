//! Bad CloudJobs are refused by the real API server at apply time (schema and CEL rules from the generated
//! CRD), with a message that names the field, through the real kubectl.

use cloudjob_testkit::e2e::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_cloudjobs_are_rejected_by_the_api_server_naming_the_field() {
    let env = Env::start().await;
    let ns = env.namespace("validation").await;
    let valid = env.cloudjob_manifest("valid", "ims", "ff8080814dbd65d7014dbe0d84db0013");

    env.apply_accepted(&ns, &valid, "a valid CloudJob").await;

    let mut cases: Vec<(&str, serde_json::Value, Vec<&str>)> = Vec::new();
    let mut no_job_id = valid.clone();
    no_job_id["metadata"]["name"] = "no-job-id".into();
    no_job_id["spec"]
        .as_object_mut()
        .expect("spec")
        .remove("jobId");
    cases.push((
        "missing jobId",
        no_job_id,
        vec!["spec.jobId", "Required value"],
    ));

    let mut bad_service = valid.clone();
    bad_service["metadata"]["name"] = "bad-service".into();
    bad_service["spec"]["service"] = "s3".into();
    cases.push((
        "unknown service",
        bad_service,
        vec!["spec.service", "Unsupported value", "\"s3\""],
    ));

    let mut bad_endpoint = valid.clone();
    bad_endpoint["metadata"]["name"] = "bad-endpoint".into();
    bad_endpoint["spec"]["endpoint"] = "ftp://example.com".into();
    cases.push((
        "non-http endpoint",
        bad_endpoint,
        vec!["spec.endpoint", "must be an absolute http or https URL"],
    ));

    let mut not_a_url = valid.clone();
    not_a_url["metadata"]["name"] = "not-a-url".into();
    not_a_url["spec"]["endpoint"] = "ims eu-de".into();
    cases.push(("endpoint that is no URL", not_a_url, vec!["spec.endpoint"]));

    let mut other_namespace = valid.clone();
    other_namespace["metadata"]["name"] = "other-namespace".into();
    other_namespace["spec"]["credentialsSecretRef"] =
        json!({"name": "creds", "namespace": "kube-system"});
    cases.push((
        "Secret in another namespace",
        other_namespace,
        vec![
            "spec.credentialsSecretRef.namespace",
            "must be in the CloudJob's own namespace",
        ],
    ));

    let mut bad_job_id = valid.clone();
    bad_job_id["metadata"]["name"] = "bad-job-id".into();
    bad_job_id["spec"]["jobId"] = "../../etc/passwd".into();
    cases.push(("job id with a path", bad_job_id, vec!["spec.jobId"]));

    let mut bad_region = valid.clone();
    bad_region["metadata"]["name"] = "bad-region".into();
    bad_region["spec"]["region"] = "Europe/Berlin".into();
    cases.push(("bad region", bad_region, vec!["spec.region"]));

    let mut bad_polling = valid.clone();
    bad_polling["metadata"]["name"] = "bad-polling".into();
    bad_polling["spec"]["polling"] = json!({"minIntervalSeconds": 30, "maxIntervalSeconds": 5});
    cases.push((
        "min above max",
        bad_polling,
        vec!["spec.polling", "minIntervalSeconds must not exceed"],
    ));

    let mut bad_deadline = valid.clone();
    bad_deadline["metadata"]["name"] = "bad-deadline".into();
    bad_deadline["spec"]["activeDeadlineSeconds"] = 0.into();
    cases.push((
        "zero deadline",
        bad_deadline,
        vec!["spec.activeDeadlineSeconds"],
    ));

    for (what, manifest, needles) in cases {
        env.apply_refused(&ns, &manifest, what, &needles).await;
    }

    // jobId cannot change once set.
    let mut changed = valid.clone();
    changed["spec"]["jobId"] = "0000000000000000000000000000abcd".into();
    env.apply_refused(
        &ns,
        &changed,
        "changing jobId",
        &["spec.jobId", "immutable"],
    )
    .await;

    // Other fields may be edited.
    let mut edited = valid.clone();
    edited["spec"]["region"] = "eu-nl".into();
    env.apply_accepted(&ns, &edited, "editing the region").await;
}

/// The API server does not enforce `format: int32`, so the status's integers carry schema bounds: a status
/// written out of range through the status subresource (by anyone with access) is refused naming the
/// field, instead of being stored and making the CloudJob undecodable for the operator.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_integers_out_of_range_are_refused_naming_the_field() {
    use kube::api::{Patch, PatchParams};
    let env = Env::start().await;
    let ns = env.namespace("status-bounds").await;
    env.create_cloudjob(&ns, "bounded", "ims", "ff8080814dbd65d7014dbe0d84db0013")
        .await;
    let api = env.cloudjobs(&ns);
    let cases = [
        (
            json!({"status": {"progress": 3_000_000_000_i64}}),
            "status.progress",
        ),
        (json!({"status": {"progress": 101}}), "status.progress"),
        (json!({"status": {"progress": -1}}), "status.progress"),
        (
            json!({"status": {"subJobs": {"total": 3_000_000_000_i64, "succeeded": 0, "failed": 0}}}),
            "status.subJobs.total",
        ),
        (
            json!({"status": {"subJobs": {"total": 1, "succeeded": -1, "failed": 0}}}),
            "status.subJobs.succeeded",
        ),
    ];
    for (patch, field) in cases {
        let refused = api
            .patch_status("bounded", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect_err(&format!("{patch} is refused"));
        assert!(
            refused.to_string().contains(field),
            "the refusal of {patch} names {field}: {refused}"
        );
    }
    let in_range =
        json!({"status": {"progress": 100, "subJobs": {"total": 2, "succeeded": 1, "failed": 1}}});
    api.patch_status("bounded", &PatchParams::default(), &Patch::Merge(&in_range))
        .await
        .expect("a status in range is stored");
}
