//! Every job API the operator reads, one table entry per service: where its endpoint is on each cloud, the
//! path of a job, how the answer is laid out, its status words and what they mean, where progress, produced
//! ids, sub-jobs and the failure reason are, and the error it documents for an unknown job.
//!
//! Nothing else in the operator branches on the service: `endpoint` builds URLs from [`JobPath`], `model`
//! reads answers through [`Layout`] and [`ServiceApi::statuses`], and `client` recognises an unknown job by
//! [`ServiceApi::unknown_job`]. Adding a service is adding an entry here (and its fixtures and e2e row).
//!
//! Sources are named on each entry: the official Go SDK's request path (`services/<svc>/<ver>/<svc>_meta.go`)
//! and response model (`services/<svc>/<ver>/model/...`) of huaweicloud/huaweicloud-sdk-go-v3, or the
//! service's API reference page where the SDK was not read.

use url::Url;

use crate::cloud::model::JobState;
use crate::crd::{Cloud, ImsJobPath, Service};

/// Where a job is read from, below the endpoint's base URL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobPath {
    /// `GET /v1/{project_id}/jobs/{job_id}`: ECS, EVS, BMS, SDRS, DeH, EIP v2, and IMS's older path.
    ProjectJobsV1,
    /// `GET /v1/cloudimages/job/{job_id}`: IMS's newer path (no project id in the path).
    CloudImagesJob,
    /// `GET /v3/{project_id}/jobs?id={job_id}`: the database family.
    DatabaseJobsQuery,
    /// `GET /v2/{project_id}/jobs/{job_id}`: DCS.
    ProjectJobsV2,
    /// `GET /api/v3/projects/{project_id}/jobs/{job_id}`: CCE.
    CceJobs,
    /// `GET /v3/{project_id}/elb/jobs/{job_id}`: ELB v3.
    ElbJobs,
    /// `GET /v1/{project_id}/sfs-turbo/jobs/{job_id}`: SFS Turbo.
    SfsTurboJobs,
}

impl JobPath {
    /// The job's URL: `base` (any path prefix kept, query and fragment dropped) joined with this path.
    pub fn url(self, base: &Url, project_id: &str, job_id: &str) -> Url {
        let mut url = base.clone();
        url.set_query(None);
        url.set_fragment(None);
        let segments: Vec<&str> = match self {
            JobPath::ProjectJobsV1 => vec!["v1", project_id, "jobs", job_id],
            JobPath::CloudImagesJob => vec!["v1", "cloudimages", "job", job_id],
            JobPath::DatabaseJobsQuery => vec!["v3", project_id, "jobs"],
            JobPath::ProjectJobsV2 => vec!["v2", project_id, "jobs", job_id],
            JobPath::CceJobs => vec!["api", "v3", "projects", project_id, "jobs", job_id],
            JobPath::ElbJobs => vec!["v3", project_id, "elb", "jobs", job_id],
            JobPath::SfsTurboJobs => vec!["v1", project_id, "sfs-turbo", "jobs", job_id],
        };
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        if self == JobPath::DatabaseJobsQuery {
            url.query_pairs_mut().append_pair("id", job_id);
        }
        url
    }
}

/// How a service lays out its answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// The ECS/IMS/EVS object at the top level: `status`, `job_id`, `job_type`, `begin_time`, `end_time`,
    /// `error_code`, `fail_reason`, `entities` (ids, `process_percent`, `sub_jobs`...). DCS and SFS Turbo
    /// too (DCS with epoch-millisecond times, which the time parser reads).
    Flat,
    /// `{"job": {id, name, status, created, ended, <progress>: "60%", instance: {id, name}, fail_reason}}`:
    /// the database family; `progress` names the progress field (`process` in RDS).
    DatabaseJob { progress: &'static str },
    /// `{"jobs": [<as DatabaseJob>], "total_count"}`: GeminiDB answers the query with a list.
    DatabaseJobList { progress: &'static str },
    /// Flat, but `sub_jobs` beside `status` instead of in `entities`: SFS Turbo.
    FlatTopLevelSubJobs,
    /// A Kubernetes-style CCE Job: `metadata.uid`, `spec.type`, `spec.subJobs` (nested), `status.phase`.
    CceJob,
    /// `{"job": {status, job_id, job_type, error_code, error_msg, resource_id, sub_jobs}}`: ELB v3.
    ElbJob,
}

/// A documented answer for a job id the service does not know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnknownJob {
    pub http_status: u16,
    /// The error code in the body; empty when any body with this status means an unknown job.
    pub code: &'static str,
}

/// One service's job API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServiceApi {
    pub service: Service,
    /// First label of the public endpoint on Huawei Cloud (`rds` in `rds.cn-north-4.myhuaweicloud.com`).
    pub huawei_host: &'static str,
    /// First label on Open Telekom Cloud; `None` where OTC has no such endpoint documented (then only
    /// `spec.endpoint` or `--endpoint-template` can point at one).
    pub otc_host: Option<&'static str>,
    /// The job path on Huawei Cloud.
    pub path: JobPath,
    /// The job path on OTC (IMS: the older one, which OTC still documents).
    pub otc_path: JobPath,
    pub layout: Layout,
    /// The status words the service documents and what each means; matched without regard to case. Any
    /// other word reads as still running ([`JobState::Other`]).
    pub statuses: &'static [(&'static str, JobState)],
    /// `entities` fields that name what the job produced, with the kind listed in `outputs.resources`
    /// (beyond the image, volume, server and nic ids every flat layout is searched for).
    pub produced: &'static [(&'static str, &'static str)],
    /// The answers it documents for an unknown job id; a 404 always counts as one.
    pub unknown_job: &'static [UnknownJob],
    /// Where the shape was read.
    pub source: &'static str,
}

impl ServiceApi {
    /// The job path for a CloudJob on `cloud`, unless it chooses one with `spec.imsJobPath` (which the
    /// CRD allows on IMS only, the one service with two paths).
    pub fn path(&self, cloud: Cloud, ims_choice: Option<ImsJobPath>) -> JobPath {
        match (ims_choice, cloud) {
            (Some(ImsJobPath::CloudImages), _) => JobPath::CloudImagesJob,
            (Some(ImsJobPath::ProjectJobs), _) => JobPath::ProjectJobsV1,
            (None, Cloud::Huaweicloud) => self.path,
            (None, Cloud::Opentelekomcloud) => self.otc_path,
        }
    }

    /// The host label on `cloud`, if the cloud has the service.
    pub fn host(&self, cloud: Cloud) -> Option<&'static str> {
        match cloud {
            Cloud::Huaweicloud => Some(self.huawei_host),
            Cloud::Opentelekomcloud => self.otc_host,
        }
    }

    /// What `raw` means in this service's vocabulary.
    pub fn state(&self, raw: &str) -> JobState {
        let word = raw.trim();
        self.statuses
            .iter()
            .find(|(w, _)| w.eq_ignore_ascii_case(word))
            .map_or_else(|| JobState::Other(raw.to_string()), |(_, s)| s.clone())
    }

    /// Whether an error answer means the job id is unknown to the service.
    pub fn is_unknown_job(&self, http_status: u16, code: &str) -> bool {
        http_status == 404
            || self
                .unknown_job
                .iter()
                .any(|u| u.http_status == http_status && (u.code.is_empty() || u.code == code))
    }
}

use JobState::{Cancelled, Fail, Init, PendingPayment, Running, Success};

/// The ECS family's words: the four documented everywhere, Huawei's PENDING_PAYMENT, and the failure and
/// cancel spellings other Huawei APIs (and gateways in front of them) use for the same ends.
const V1_STATUSES: &[(&str, JobState)] = &[
    ("INIT", Init),
    ("PENDING_PAYMENT", PendingPayment),
    ("RUNNING", Running),
    ("SUCCESS", Success),
    ("FAIL", Fail),
    ("FAILED", Fail),
    ("ERROR", Fail),
    ("CANCELLED", Cancelled),
    ("CANCELED", Cancelled),
    ("ABORTED", Cancelled),
];

/// DCS's words (`ShowJobInfoResponseStatus`): exactly the four of the ECS family.
const DCS_STATUSES: &[(&str, JobState)] = &[
    ("INIT", Init),
    ("RUNNING", Running),
    ("SUCCESS", Success),
    ("FAIL", Fail),
];

/// CCE's job phases (`JobStatus.phase`).
const CCE_STATUSES: &[(&str, JobState)] = &[
    ("Initializing", Init),
    ("Running", Running),
    ("Success", Success),
    ("Failed", Fail),
];

/// ELB v3's words (`MainJobStatus`). The SDK describes none of them. ROLLBACKING is still changing;
/// COMPLETE follows ROLLBACKING in the enum and reads as "rollback complete": the job's change was undone,
/// so it is a failure, never a success; ROLLBACK_FAIL fails too; CANCEL is a cancellation.
const ELB_STATUSES: &[(&str, JobState)] = &[
    ("INIT", Init),
    ("RUNNING", Running),
    ("ROLLBACKING", Running),
    ("SUCCESS", Success),
    ("FAIL", Fail),
    ("COMPLETE", Fail),
    ("ROLLBACK_FAIL", Fail),
    ("CANCEL", Cancelled),
];

/// SFS Turbo's lowercase words (`ShowJobDetailResponseStatus`); `waiting` has not started.
const SFS_TURBO_STATUSES: &[(&str, JobState)] = &[
    ("waiting", Init),
    ("running", Running),
    ("success", Success),
    ("failed", Fail),
];

/// The database family's words (`Running`, `Completed`, `Failed`).
const DATABASE_STATUSES: &[(&str, JobState)] = &[
    ("Running", Running),
    ("Completed", Success),
    ("Failed", Fail),
];

/// 404 with any body is always an unknown job; ECS also answers 400 `Common.0011`.
const NOT_FOUND_ONLY: &[UnknownJob] = &[];

/// The database family's shared entry, per service.
const fn database(
    service: Service,
    huawei_host: &'static str,
    otc_host: Option<&'static str>,
    layout: Layout,
    source: &'static str,
) -> ServiceApi {
    ServiceApi {
        service,
        huawei_host,
        otc_host,
        path: JobPath::DatabaseJobsQuery,
        otc_path: JobPath::DatabaseJobsQuery,
        layout,
        statuses: DATABASE_STATUSES,
        produced: &[("instance_id", "instance")],
        unknown_job: NOT_FOUND_ONLY,
        source,
    }
}

/// The ECS family's shared entry, per service.
const fn v1(
    service: Service,
    host: &'static str,
    produced: &'static [(&'static str, &'static str)],
    unknown_job: &'static [UnknownJob],
    source: &'static str,
) -> ServiceApi {
    ServiceApi {
        service,
        huawei_host: host,
        otc_host: Some(host),
        path: JobPath::ProjectJobsV1,
        otc_path: JobPath::ProjectJobsV1,
        layout: Layout::Flat,
        statuses: V1_STATUSES,
        produced,
        unknown_job,
        source,
    }
}

/// The catalogue: one entry per [`Service`], in the order of the CRD's enum.
pub const CATALOGUE: &[ServiceApi] = &[
    // The newer path (ShowJobProgress) on Huawei Cloud, which marked the older one deprecated in 2026-04;
    // OTC documents only the older one, which answers as ECS. Same shape, plus `entities.subJobId`.
    ServiceApi {
        path: JobPath::CloudImagesJob,
        ..v1(
            Service::Ims,
            "ims",
            &[],
            NOT_FOUND_ONLY,
            "Go SDK services/ims/v2 ShowJob and ShowJobProgress (model_show_job_progress_response.go, model_job_progress_entities.go); seed pages 000-002",
        )
    },
    v1(
        Service::Evs,
        "evs",
        &[],
        NOT_FOUND_ONLY,
        "seed page 003 (EVS Querying Task Status)",
    ),
    v1(
        Service::Ecs,
        "ecs",
        &[],
        &[UnknownJob {
            http_status: 400,
            code: "Common.0011",
        }],
        "ECS Querying Task Execution Status (jobs-api.md); OTC answers an unknown id with 400 Common.0011",
    ),
    v1(
        Service::Bms,
        "bms",
        &[],
        &[UnknownJob {
            http_status: 400,
            code: "Common.0011",
        }],
        "Go SDK services/bms/v1/model/model_show_job_infos_response.go (ShowJobInfos; entities.sub_jobs[].entities.server_id)",
    ),
    v1(
        Service::Sdrs,
        "sdrs",
        &[
            ("protected_instance_id", "protectedInstance"),
            ("replication_pair_id", "replicationPair"),
            ("server_group_id", "protectionGroup"),
            // The disaster-recovery site's server: not the job's main product, so not `server`/`serverId`.
            ("native_server_id", "nativeServer"),
        ],
        NOT_FOUND_ONLY,
        "Go SDK services/sdrs/v1/model/model_show_job_status_response.go and model_job_entities.go (ShowJobStatus; entities replication_pair_id, volume_ids, server_group_id, protected_instance_id, native_server_id, nic_id, sub_jobs)",
    ),
    v1(
        Service::Deh,
        "deh",
        &[("dedicated_host_id", "dedicatedHost")],
        NOT_FOUND_ONLY,
        "the Huawei Terraform provider's DeH waiter (@API DeH GET /v1/{project_id}/jobs/{job_id}); no DeH job model in the Go SDK",
    ),
    v1(
        Service::Eip,
        "vpc",
        // SubJobsInfo types only `sub_jobs` ("same type as the main job"); the ids are not typed in the SDK.
        &[("publicip_id", "publicip"), ("bandwidth_id", "bandwidth")],
        NOT_FOUND_ONLY,
        "Go SDK services/eip/v2/model/model_show_resources_job_detail_response.go (ShowResourcesJobDetail; entities.sub_jobs untyped)",
    ),
    database(
        Service::Rds,
        "rds",
        Some("rds"),
        Layout::DatabaseJob {
            progress: "process",
        },
        "Go SDK services/rds/v3/model/model_list_job_info_response.go (ListJobInfo, GetJobInfoResponseBodyJob: process)",
    ),
    database(
        Service::Dds,
        "dds",
        Some("dds"),
        Layout::DatabaseJob {
            progress: "progress",
        },
        "Go SDK services/dds/v3/model/model_job_detail.go (ShowJobDetail; progress, instance{id,name})",
    ),
    database(
        Service::Gaussdb,
        "gaussdb",
        None,
        Layout::DatabaseJob {
            progress: "process",
        },
        "Go SDK services/gaussdb/v3 ShowGaussMySqlJobInfo (GaussDB for MySQL / TaurusDB); shape as RDS per jobs-api.md",
    ),
    database(
        Service::Opengauss,
        "gaussdb-opengauss",
        None,
        Layout::DatabaseJob {
            progress: "progress",
        },
        "Go SDK services/gaussdbforopengauss/v3 (jobs?id=); host from the Python SDK's gaussdbforopengauss_region.py",
    ),
    database(
        Service::Geminidb,
        "gaussdb-nosql",
        None,
        Layout::DatabaseJobList {
            progress: "progress",
        },
        "Go SDK services/gaussdbfornosql/v3 (jobs?id= answered with {jobs, total_count}); host from gaussdbfornosql_region.py",
    ),
    ServiceApi {
        service: Service::Dcs,
        huawei_host: "dcs",
        otc_host: Some("dcs"),
        path: JobPath::ProjectJobsV2,
        otc_path: JobPath::ProjectJobsV2,
        // Times are epoch milliseconds as strings, which the time parser reads.
        layout: Layout::Flat,
        statuses: DCS_STATUSES,
        produced: &[],
        unknown_job: NOT_FOUND_ONLY,
        source: "Go SDK services/dcs/v2/model/model_show_job_info_response.go (ShowJobInfo: job_id, job_type, status, begin_time/end_time in ms, fail_reason)",
    },
    ServiceApi {
        service: Service::Cce,
        huawei_host: "cce",
        otc_host: Some("cce"),
        path: JobPath::CceJobs,
        otc_path: JobPath::CceJobs,
        layout: Layout::CceJob,
        statuses: CCE_STATUSES,
        produced: &[("cluster_id", "cluster"), ("node_id", "node")],
        unknown_job: NOT_FOUND_ONLY,
        source: "Go SDK services/cce/v3/model/model_show_job_response.go, model_job_metadata.go, model_job_spec.go (subJobs []Job), model_job_status.go (phase Initializing/Running/Failed/Success)",
    },
    ServiceApi {
        service: Service::Elb,
        huawei_host: "elb",
        otc_host: Some("elb"),
        path: JobPath::ElbJobs,
        otc_path: JobPath::ElbJobs,
        layout: Layout::ElbJob,
        statuses: ELB_STATUSES,
        produced: &[("resource_id", "resource")],
        unknown_job: NOT_FOUND_ONLY,
        source: "Go SDK services/elb/v3/model/model_show_job_response.go, model_main_job.go, model_sub_job.go (ShowJob)",
    },
    ServiceApi {
        service: Service::Sfsturbo,
        huawei_host: "sfs-turbo",
        otc_host: Some("sfs-turbo"),
        path: JobPath::SfsTurboJobs,
        otc_path: JobPath::SfsTurboJobs,
        layout: Layout::FlatTopLevelSubJobs,
        statuses: SFS_TURBO_STATUSES,
        produced: &[],
        unknown_job: NOT_FOUND_ONLY,
        source: "Go SDK services/sfsturbo/v1/model/model_show_job_detail_response.go and model_get_sub_job_detail.go (ShowJobDetail; times '2016-01-02 15:04:05')",
    },
];

/// The entry of `service`.
pub fn api(service: Service) -> &'static ServiceApi {
    CATALOGUE
        .iter()
        .find(|a| a.service == service)
        .unwrap_or(&CATALOGUE[0])
}

#[cfg(test)]
mod tests {
    use super::*;
    use strum::VariantArray as _;

    #[test]
    fn every_service_has_exactly_one_entry_with_a_source() {
        for service in Service::VARIANTS {
            let entries: Vec<_> = CATALOGUE.iter().filter(|a| a.service == *service).collect();
            assert_eq!(entries.len(), 1, "{service:?}");
            assert!(!entries[0].source.is_empty());
            assert!(!entries[0].statuses.is_empty());
        }
    }

    #[test]
    fn paths_follow_each_service() {
        let base = Url::parse("http://127.0.0.1:9000/prefix").expect("url");
        let url = |s: Service, cloud: Cloud, choice| {
            let a = api(s);
            a.path(cloud, choice).url(&base, "p", "j").to_string()
        };
        assert_eq!(
            url(Service::Ims, Cloud::Huaweicloud, None),
            "http://127.0.0.1:9000/prefix/v1/cloudimages/job/j"
        );
        assert_eq!(
            url(Service::Ims, Cloud::Opentelekomcloud, None),
            "http://127.0.0.1:9000/prefix/v1/p/jobs/j"
        );
        assert_eq!(
            url(
                Service::Ims,
                Cloud::Huaweicloud,
                Some(ImsJobPath::ProjectJobs)
            ),
            "http://127.0.0.1:9000/prefix/v1/p/jobs/j"
        );
        assert_eq!(
            url(
                Service::Ims,
                Cloud::Opentelekomcloud,
                Some(ImsJobPath::CloudImages)
            ),
            "http://127.0.0.1:9000/prefix/v1/cloudimages/job/j"
        );
        assert_eq!(
            url(Service::Bms, Cloud::Huaweicloud, None),
            "http://127.0.0.1:9000/prefix/v1/p/jobs/j"
        );
        assert_eq!(
            url(Service::Rds, Cloud::Huaweicloud, None),
            "http://127.0.0.1:9000/prefix/v3/p/jobs?id=j"
        );
        let other = |p: JobPath| p.url(&base, "p", "j").to_string();
        assert_eq!(
            other(JobPath::ProjectJobsV2),
            "http://127.0.0.1:9000/prefix/v2/p/jobs/j"
        );
        assert_eq!(
            other(JobPath::CceJobs),
            "http://127.0.0.1:9000/prefix/api/v3/projects/p/jobs/j"
        );
        assert_eq!(
            other(JobPath::ElbJobs),
            "http://127.0.0.1:9000/prefix/v3/p/elb/jobs/j"
        );
        assert_eq!(
            other(JobPath::SfsTurboJobs),
            "http://127.0.0.1:9000/prefix/v1/p/sfs-turbo/jobs/j"
        );
    }

    #[test]
    fn unknown_words_stay_running_and_known_ones_map_without_case() {
        let rds = api(Service::Rds);
        assert_eq!(rds.state("Completed"), Success);
        assert_eq!(rds.state("FAILED"), Fail);
        assert_eq!(rds.state("Queued"), JobState::Other("Queued".into()));
        assert!(!rds.state("SUCCESS").is_terminal(), "not an RDS word");
        let bms = api(Service::Bms);
        assert_eq!(bms.state("PENDING_PAYMENT"), PendingPayment);
        assert_eq!(bms.state("success"), Success);
    }

    #[test]
    fn unknown_jobs_are_recognised_per_service() {
        assert!(api(Service::Ecs).is_unknown_job(400, "Common.0011"));
        assert!(!api(Service::Evs).is_unknown_job(400, "Common.0011"));
        assert!(api(Service::Rds).is_unknown_job(404, ""));
        assert!(!api(Service::Rds).is_unknown_job(400, "DBS.0001"));
    }
}
