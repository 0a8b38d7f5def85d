//! What differs between the services' job APIs, one row per service: the path family a job is asked on,
//! the host names the official SDKs send (`Host: rds.eu-de.myhuaweicloud.com`), how a fixture body names
//! its job, and the answer for a job id the service does not know.
//!
//! The simulator is "the cloud": it keeps its own table instead of reading the operator's, so that a
//! mistake in one is caught by the other.

use serde_json::Value;

use super::spec::Service;

/// The path shapes the jobs API is asked on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    /// `/v1/{project_id}/jobs/{job_id}` (ECS, EVS, IMS, BMS, SDRS, DeH, EIP) and IMS's
    /// `/v1/cloudimages/job/{job_id}`.
    ProjectJobsV1,
    /// `/v3/{project_id}/jobs?id={job_id}` (RDS, DDS, GaussDB, openGauss, GeminiDB).
    DatabaseQuery,
    /// `/v2/{project_id}/jobs/{job_id}` (DCS).
    ProjectJobsV2,
    /// `/api/v3/projects/{project_id}/jobs/{job_id}` (CCE).
    CceJobs,
    /// `/v3/{project_id}/elb/jobs/{job_id}` (ELB v3).
    ElbJobs,
    /// `/v1/{project_id}/sfs-turbo/jobs/{job_id}` (SFS Turbo).
    SfsTurboJobs,
}

impl Family {
    /// The path of a job of this family, behind the simulator's `/{service}` prefix.
    pub(crate) fn path(self, project_id: &str, job_id: &str) -> String {
        match self {
            Family::ProjectJobsV1 => format!("/v1/{project_id}/jobs/{job_id}"),
            Family::DatabaseQuery => format!("/v3/{project_id}/jobs?id={job_id}"),
            Family::ProjectJobsV2 => format!("/v2/{project_id}/jobs/{job_id}"),
            Family::CceJobs => format!("/api/v3/projects/{project_id}/jobs/{job_id}"),
            Family::ElbJobs => format!("/v3/{project_id}/elb/jobs/{job_id}"),
            Family::SfsTurboJobs => format!("/v1/{project_id}/sfs-turbo/jobs/{job_id}"),
        }
    }
}

/// Where a body names its job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    /// Top-level `job_id` and `status`.
    Flat,
    /// `{"job": {"id", "status", ...}}`.
    DatabaseJob,
    /// `{"jobs": [{"id", "status", ...}], "total_count"}`.
    DatabaseJobList,
    /// `{"kind": "Job", "metadata": {"uid"}, "status": {"phase"}}` (CCE).
    CceJob,
    /// `{"job": {"job_id", "status", ...}}` (ELB v3).
    ElbJob,
}

/// How the service answers a job id it does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UnknownJob {
    /// `{"error": {"code", "message"}}` with this HTTP status (ECS family).
    ServiceError { status: u16, code: &'static str },
    /// `{"error_code", "error_msg"}` with this HTTP status (the database family's flat error body).
    FlatError { status: u16, code: &'static str },
    /// 200 with an empty list (GeminiDB's answer to a query by id).
    EmptyList,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct ServiceRow {
    pub service: Service,
    pub family: Family,
    /// First labels of the service's public host names on Huawei Cloud and OTC.
    pub hosts: &'static [&'static str],
    pub layout: Layout,
    pub unknown_job: UnknownJob,
}

use Family::{CceJobs, DatabaseQuery, ElbJobs, ProjectJobsV1, ProjectJobsV2, SfsTurboJobs};
use Layout::{CceJob, DatabaseJob, DatabaseJobList, ElbJob, Flat};
use UnknownJob::{EmptyList, FlatError, ServiceError};

/// Unknown-job answers: ECS's 400 `Common.0011` is documented (OTC) and BMS shares ECS's error
/// conventions; IMS's `IMG.0024` and EVS's 404 follow their pages' error tables. For SDRS, DeH, EIP and the
/// database family no page gives a code for this case: they answer 404 (the status every service
/// documents for a missing resource) with a `<SVC>.0404` code of the simulator's.
const ROWS: &[ServiceRow] = &[
    row(
        Service::Ims,
        ProjectJobsV1,
        &["ims"],
        Flat,
        svc(404, "IMG.0024"),
    ),
    row(
        Service::Evs,
        ProjectJobsV1,
        &["evs"],
        Flat,
        svc(404, "EVS.0404"),
    ),
    row(
        Service::Ecs,
        ProjectJobsV1,
        &["ecs"],
        Flat,
        svc(400, "Common.0011"),
    ),
    row(
        Service::Bms,
        ProjectJobsV1,
        &["bms"],
        Flat,
        svc(400, "Common.0011"),
    ),
    row(
        Service::Sdrs,
        ProjectJobsV1,
        &["sdrs"],
        Flat,
        svc(404, "SDRS.0404"),
    ),
    row(
        Service::Deh,
        ProjectJobsV1,
        &["deh"],
        Flat,
        svc(404, "DEH.0404"),
    ),
    row(
        Service::Eip,
        ProjectJobsV1,
        &["vpc", "eip"],
        Flat,
        svc(404, "VPC.0404"),
    ),
    row(
        Service::Rds,
        DatabaseQuery,
        &["rds"],
        DatabaseJob,
        flat(404, "DBS.0404"),
    ),
    row(
        Service::Dds,
        DatabaseQuery,
        &["dds"],
        DatabaseJob,
        flat(404, "DBS.0404"),
    ),
    row(
        Service::Gaussdb,
        DatabaseQuery,
        &["gaussdb", "gaussdb-mysql", "gaussdbformysql"],
        DatabaseJob,
        flat(404, "DBS.0404"),
    ),
    row(
        Service::Opengauss,
        DatabaseQuery,
        &["gaussdb-opengauss", "opengauss", "gaussdbforopengauss"],
        DatabaseJob,
        flat(404, "DBS.0404"),
    ),
    row(
        Service::Geminidb,
        DatabaseQuery,
        &["gaussdb-nosql", "geminidb", "gaussdbfornosql"],
        DatabaseJobList,
        EmptyList,
    ),
    row(
        Service::Dcs,
        ProjectJobsV2,
        &["dcs"],
        Flat,
        svc(404, "DCS.0404"),
    ),
    // CCE's own error body is flat (`error_code`/`error_msg`); CCE.01404001 is its not-found code family.
    row(
        Service::Cce,
        CceJobs,
        &["cce"],
        CceJob,
        flat(404, "CCE.01404001"),
    ),
    row(
        Service::Elb,
        ElbJobs,
        &["elb"],
        ElbJob,
        flat(404, "ELB.0404"),
    ),
    row(
        Service::Sfsturbo,
        SfsTurboJobs,
        &["sfs-turbo", "sfsturbo"],
        Flat,
        svc(404, "SFS.TURBO.0404"),
    ),
];

const fn svc(status: u16, code: &'static str) -> UnknownJob {
    ServiceError { status, code }
}

const fn flat(status: u16, code: &'static str) -> UnknownJob {
    FlatError { status, code }
}

const fn row(
    service: Service,
    family: Family,
    hosts: &'static [&'static str],
    layout: Layout,
    unknown_job: UnknownJob,
) -> ServiceRow {
    ServiceRow {
        service,
        family,
        hosts,
        layout,
        unknown_job,
    }
}

/// The row of `service`.
pub(crate) fn row_of(service: Service) -> &'static ServiceRow {
    ROWS.iter()
        .find(|r| r.service == service)
        .unwrap_or(&ROWS[0])
}

/// The service a host's first label names (`rds` of `rds.eu-de.otc.t-systems.com`), or its service name.
pub(crate) fn service_of_host_label(label: &str) -> Option<Service> {
    ROWS.iter()
        .find(|r| r.hosts.iter().any(|h| h.eq_ignore_ascii_case(label)))
        .map(|r| r.service)
        .or_else(|| label.parse().ok())
}

/// The job a fixture body of `layout` describes: its id and status.
pub(crate) fn fixture_identity(layout: Layout, body: &Value) -> Option<(String, String)> {
    let (job, id, status): (&Value, &[&str], &[&str]) = match layout {
        Flat => (body, &["job_id"], &["status"]),
        DatabaseJob => (body.get("job")?, &["id"], &["status"]),
        DatabaseJobList => (body.get("jobs")?.as_array()?.first()?, &["id"], &["status"]),
        CceJob => (body, &["metadata", "uid"], &["status", "phase"]),
        ElbJob => (body.get("job")?, &["job_id"], &["status"]),
    };
    let at = |path: &[&str]| {
        path.iter()
            .try_fold(job, |v, key| v.get(*key))
            .and_then(Value::as_str)
    };
    let id = at(id)
        .filter(|s| !s.is_empty() && !s.contains('/'))?
        .to_owned();
    let status = at(status).unwrap_or("").to_owned();
    Some((id, status))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_service_has_one_row() {
        for service in Service::EVERY {
            assert_eq!(
                ROWS.iter().filter(|r| r.service == service).count(),
                1,
                "{service}"
            );
        }
    }

    #[test]
    fn host_labels_name_services() {
        assert_eq!(service_of_host_label("vpc"), Some(Service::Eip));
        assert_eq!(
            service_of_host_label("gaussdb-nosql"),
            Some(Service::Geminidb)
        );
        assert_eq!(service_of_host_label("rds"), Some(Service::Rds));
        assert_eq!(service_of_host_label("127"), None);
    }

    #[test]
    fn fixtures_name_their_job_in_each_layout() {
        let id = |layout, body| fixture_identity(layout, &body).map(|(id, _)| id);
        assert_eq!(
            id(Flat, json!({"job_id": "a", "status": "INIT"})).as_deref(),
            Some("a")
        );
        assert_eq!(
            id(
                DatabaseJob,
                json!({"job": {"id": "b", "status": "Running"}})
            )
            .as_deref(),
            Some("b")
        );
        assert_eq!(
            id(
                DatabaseJobList,
                json!({"jobs": [{"id": "c"}], "total_count": 1})
            )
            .as_deref(),
            Some("c")
        );
        assert_eq!(id(DatabaseJob, json!({"job_id": "a"})), None);
    }
}
