//! The official Huawei Cloud Python SDK clients (`huaweicloudsdk<service>`, pinned in
//! tools/sdk-clients/setup.sh, which tools/test.sh runs) against the simulator, for every service the
//! operator reads: their job calls must be accepted, must parse every field of every fixture, and must get
//! the service's answer for an unknown job. The clients reach the simulator as they reach the cloud: by
//! host name (`rds.eu-de.sim.test`), with no path prefix.

use std::{path::PathBuf, process::Command};

use cloudjob_sim::{Service, SimConfig, Simulator};
use cloudjob_testkit::{command, repo_root};
use serde_json::{Value, json};

const AK: &str = "sim-ak";
const SK: &str = "sim-sk";
const PROJECT: &str = "0123456789abcdef0123456789abcdef";

/// service, fixtures, SDK package, client, method, request, the request's id parameter, host label, the
/// unknown-job answer (HTTP status, error code when the body is flat, or an empty list).
struct Client {
    service: Service,
    fixtures: &'static [&'static str],
    package: &'static str,
    client: &'static str,
    method: &'static str,
    request: &'static str,
    id_param: &'static str,
    host: &'static str,
    unknown: Value,
}

fn clients() -> Vec<Client> {
    let c = |service, fixtures, package, client, method, request, id_param, host, unknown| Client {
        service,
        fixtures,
        package,
        client,
        method,
        request,
        id_param,
        host,
        unknown,
    };
    let by_job_id = "job_id";
    let by_id = "id";
    vec![
        c(
            Service::Ims,
            &["ims-success", "ims-fail", "ims-running"],
            "huaweicloudsdkims.v2",
            "ImsClient",
            "show_job_progress",
            "ShowJobProgressRequest",
            by_job_id,
            "ims",
            json!({"status": 404}),
        ),
        // The older IMS path (its model has no `subJobId`), with the seed pages' examples: sub-jobs, member
        // results, the old OTC time format and fraction progress.
        c(
            Service::Ims,
            &[
                "seeds/huawei-ims-imsImportOvaImageJob",
                "seeds/huawei-ims-imsAddImageMembersJob",
                "seeds/huawei-ims-imsCreateImageByInstance",
                "seeds/otc-ims-legacy-createImageByInstance",
            ],
            "huaweicloudsdkims.v2",
            "ImsClient",
            "show_job",
            "ShowJobRequest",
            by_job_id,
            "ims",
            json!({"status": 404}),
        ),
        c(
            Service::Bms,
            &[
                "bms-success",
                "bms-fail",
                "bms-subjobs",
                "bms-pending-payment",
            ],
            "huaweicloudsdkbms.v1",
            "BmsClient",
            "show_job_infos",
            "ShowJobInfosRequest",
            by_job_id,
            "bms",
            json!({"status": 400}),
        ),
        c(
            Service::Sdrs,
            &["sdrs-success", "sdrs-fail", "sdrs-subjobs"],
            "huaweicloudsdksdrs.v1",
            "SdrsClient",
            "show_job_status",
            "ShowJobStatusRequest",
            by_job_id,
            "sdrs",
            json!({"status": 404}),
        ),
        c(
            Service::Eip,
            &["eip-success", "eip-fail", "eip-subjobs"],
            "huaweicloudsdkeip.v2",
            "EipClient",
            "show_resources_job_detail",
            "ShowResourcesJobDetailRequest",
            by_job_id,
            "vpc",
            json!({"status": 404}),
        ),
        c(
            Service::Rds,
            &["rds-success", "rds-fail", "rds-running"],
            "huaweicloudsdkrds.v3",
            "RdsClient",
            "list_job_info",
            "ListJobInfoRequest",
            by_id,
            "rds",
            json!({"status": 404, "code": "DBS.0404"}),
        ),
        c(
            Service::Dds,
            &["dds-success", "dds-fail", "dds-running"],
            "huaweicloudsdkdds.v3",
            "DdsClient",
            "show_job_detail",
            "ShowJobDetailRequest",
            by_id,
            "dds",
            json!({"status": 404, "code": "DBS.0404"}),
        ),
        c(
            Service::Gaussdb,
            &["gaussdb-success", "gaussdb-fail", "gaussdb-running"],
            "huaweicloudsdkgaussdb.v3",
            "GaussDBClient",
            "show_gauss_my_sql_job_info",
            "ShowGaussMySqlJobInfoRequest",
            by_id,
            "gaussdb",
            json!({"status": 404, "code": "DBS.0404"}),
        ),
        c(
            Service::Opengauss,
            &["opengauss-success", "opengauss-fail", "opengauss-running"],
            "huaweicloudsdkgaussdbforopengauss.v3",
            "GaussDBforopenGaussClient",
            "show_job_detail",
            "ShowJobDetailRequest",
            by_id,
            "gaussdb-opengauss",
            json!({"status": 404, "code": "DBS.0404"}),
        ),
        c(
            Service::Geminidb,
            &["geminidb-success", "geminidb-fail", "geminidb-running"],
            "huaweicloudsdkgaussdbfornosql.v3",
            "GaussDBforNoSQLClient",
            "list_jobs",
            "ListJobsRequest",
            by_id,
            "gaussdb-nosql",
            json!({"empty_list": true}),
        ),
        c(
            Service::Dcs,
            &["dcs-success", "dcs-fail", "dcs-running"],
            "huaweicloudsdkdcs.v2",
            "DcsClient",
            "show_job_info",
            "ShowJobInfoRequest",
            by_job_id,
            "dcs",
            json!({"status": 404}),
        ),
        c(
            Service::Cce,
            &["cce-success", "cce-fail", "cce-subjobs"],
            "huaweicloudsdkcce.v3",
            "CceClient",
            "show_job",
            "ShowJobRequest",
            by_job_id,
            "cce",
            json!({"status": 404, "code": "CCE.01404001"}),
        ),
        c(
            Service::Elb,
            &["elb-success", "elb-fail", "elb-subjobs"],
            "huaweicloudsdkelb.v3",
            "ElbClient",
            "show_job",
            "ShowJobRequest",
            by_job_id,
            "elb",
            json!({"status": 404, "code": "ELB.0404"}),
        ),
        c(
            Service::Sfsturbo,
            &["sfsturbo-success", "sfsturbo-fail", "sfsturbo-running"],
            "huaweicloudsdksfsturbo.v1",
            "SFSTurboClient",
            "show_job_detail",
            "ShowJobDetailRequest",
            by_job_id,
            "sfs-turbo",
            json!({"status": 404}),
        ),
    ]
}

/// The venv tools/sdk-clients/setup.sh fills.
fn sdk_python() -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .expect("HOME or XDG_CACHE_HOME");
    cache.join("cloudjob-operator/venv-sdk-clients/bin/python")
}

/// The job id a fixture of any layout names.
fn job_id(body: &Value) -> String {
    [
        "/job_id",
        "/job/job_id",
        "/job/id",
        "/jobs/0/id",
        "/metadata/uid",
    ]
    .iter()
    .find_map(|p| body.pointer(p).and_then(Value::as_str))
    .expect("a job id")
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_python_sdk_clients_read_every_services_jobs_from_the_simulator() {
    let python = sdk_python();
    if !python.exists() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{} is missing: run tools/sdk-clients/setup.sh",
            python.display()
        );
        eprintln!(
            "skipped: {} is missing; tools/sdk-clients/setup.sh (run by tools/test.sh) installs the SDK clients",
            python.display()
        );
        return;
    }
    let root = repo_root().expect("repository");
    let sim = Simulator::start(SimConfig::default())
        .await
        .expect("simulator starts");
    let mut cases = Vec::new();
    let mut served = std::collections::HashSet::new();
    for client in clients() {
        for fixture in client.fixtures {
            // `seeds/...` are the documented examples; plain names are tests/fixtures/services.
            let relative = if fixture.contains('/') {
                format!("tests/fixtures/{fixture}.json")
            } else {
                format!("tests/fixtures/services/{fixture}.json")
            };
            let path = root.join(relative);
            let body: Value =
                serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture"))
                    .expect("json");
            let id = job_id(&body);
            if served.insert(id.clone()) {
                sim.create_fixture_job(client.service, PROJECT, body)
                    .expect("fixture served");
            }
            cases.push(json!({
                "name": format!("{}.{} {fixture}", client.client, client.method),
                "package": client.package, "client": client.client, "method": client.method,
                "request": client.request, "params": {client.id_param: id}, "host": client.host,
                "fixture": path,
            }));
        }
        cases.push(json!({
            "name": format!("{}.{} unknown job", client.client, client.method),
            "package": client.package, "client": client.client, "method": client.method,
            "request": client.request, "params": {client.id_param: "0000000000000000000000000000dead"},
            "host": client.host, "unknown": client.unknown,
        }));
    }
    let plan = json!({
        "port": sim.local_addr().port(), "ak": AK, "sk": SK, "project_id": PROJECT, "cases": cases,
    });
    let mut run = Command::new(&python);
    run.arg(root.join("tools/sdk-clients/check_clients.py"))
        // Straight to the simulator, whatever proxy the environment names.
        .env("NO_PROXY", "*")
        .env_remove("HTTP_PROXY")
        .env_remove("HTTPS_PROXY")
        .env_remove("http_proxy")
        .env_remove("https_proxy");
    let out = command::output_with_stdin(run, plan.to_string())
        .await
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let results: Vec<Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let failed: Vec<&Value> = results.iter().filter(|r| r["ok"] != true).collect();
    assert!(
        out.status.success() && failed.is_empty() && results.len() == cases.len(),
        "{} of {} SDK calls failed:\n{}\nstderr:\n{}",
        failed.len(),
        cases.len(),
        failed
            .iter()
            .map(|f| f.to_string())
            .collect::<Vec<_>>()
            .join("\n"),
        String::from_utf8_lossy(&out.stderr)
    );
    // Every service's requests arrived by host name, without the simulator's path prefix.
    for client in clients() {
        let stats = sim.global_stats();
        assert!(
            stats
                .by_service
                .get(client.service.as_str())
                .is_some_and(|s| s.total_requests > 0),
            "{}: no request counted",
            client.service
        );
    }
}
