//! The job types the simulator knows, in one table: the shape of their `entities`, the type of
//! their sub-jobs, and whether the seed pages document them.

use super::spec::Service;

/// The documented shape family of a job type: decides which `entities` fields appear.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// `image_name` + `image_id`.
    ImageNamed,
    /// `image_id` only.
    ImageId,
    /// `results: [{image_id, status}]`.
    Members,
    /// `results: []`.
    MembersEmpty,
    /// `sub_jobs_result` + `sub_jobs_list`, sub-job entities `image_name` + `image_id`.
    ImsSubJobs,
    /// `volume_id`.
    Volume,
    /// `sub_jobs` of volume jobs.
    EvsSubJobs,
    /// `server_id`.
    Server,
    /// `sub_jobs_total` + `sub_jobs` of server jobs.
    EcsSubJobs,
}

impl Shape {
    pub(crate) fn has_sub_jobs(self) -> bool {
        matches!(
            self,
            Shape::ImsSubJobs | Shape::EvsSubJobs | Shape::EcsSubJobs
        )
    }
}

/// A job type of the catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobType {
    pub service: Service,
    pub job_type: &'static str,
    pub(crate) shape: Shape,
    /// The `job_type` of its sub-jobs; empty for types without sub-jobs.
    pub(crate) sub_job_type: &'static str,
    /// Shown on the seed pages (and so listed by `GET /admin/job-types`).
    documented: bool,
}

const fn documented(
    service: Service,
    job_type: &'static str,
    shape: Shape,
    sub_job_type: &'static str,
) -> JobType {
    JobType {
        service,
        job_type,
        shape,
        sub_job_type,
        documented: true,
    }
}

use Service::{Ecs, Evs, Ims};
use Shape::*;

const CATALOGUE: &[JobType] = &[
    documented(Ims, "imsCreateImageByInstance", ImageNamed, ""),
    documented(Ims, "imsImportImageJob", ImageNamed, ""),
    documented(Ims, "imsImportOvaImageJob", ImsSubJobs, "imsImportImageJob"),
    documented(Ims, "imsVolumeCreateImageJob", ImageNamed, ""),
    documented(
        Ims,
        "imsVolumesToSysDataImagesJob",
        ImsSubJobs,
        "imsCopyVolumeToImageJob",
    ),
    documented(Ims, "imsImportDataImageJob", ImageNamed, ""),
    documented(Ims, "imsCreateWholeImageByInstanceJob", ImageNamed, ""),
    documented(Ims, "imsCreateWholeImageByBackupJob", ImageNamed, ""),
    documented(Ims, "imsNativeImportImageJob", ImageId, ""),
    documented(Ims, "imsNativeExportImageJob", ImageId, ""),
    documented(Ims, "imsAddImageMembersJob", Members, ""),
    documented(Ims, "imsDelImageMembersJob", MembersEmpty, ""),
    documented(Ims, "imsUpdateImageMembersJob", Members, ""),
    documented(Ims, "imsCopyImageInRegionJob", ImageNamed, ""),
    documented(Ims, "imsCrossRegionCopyImageJob", ImageNamed, ""),
    // The old OTC page's name of imsCreateImageByInstance.
    documented(Ims, "createImageByInstance", ImageId, ""),
    documented(Evs, "createVolume", Volume, ""),
    documented(Evs, "batchCreateVolume", EvsSubJobs, "createVolume"),
    documented(Evs, "deleteVolume", Volume, ""),
    documented(Evs, "extendVolume", Volume, ""),
    documented(Evs, "bulkDeleteVolume", EvsSubJobs, "deleteSingleVolume"),
    documented(Evs, "deleteSingleVolume", Volume, ""),
    documented(Ecs, "createServer", EcsSubJobs, "createSingleServer"),
    // Not on the seed pages; rendered like createServer.
    JobType {
        service: Ecs,
        job_type: "deleteServer",
        shape: EcsSubJobs,
        sub_job_type: "deleteSingleServer",
        documented: false,
    },
];

/// The job types of the seed pages, in the pages' order.
pub fn documented_job_types() -> impl Iterator<Item = &'static JobType> {
    CATALOGUE.iter().filter(|t| t.documented)
}

/// How a job of `(service, job_type)` renders: its shape and the type of its sub-jobs. A type the
/// catalogue does not list gets its service's plain shape (`image_id`, `volume_id` or
/// `server_id`), without sub-jobs.
pub(crate) fn shape_of(service: Service, job_type: &str) -> (Shape, &'static str) {
    match CATALOGUE
        .iter()
        .find(|t| t.service == service && t.job_type == job_type)
    {
        Some(t) => (t.shape, t.sub_job_type),
        None => match service {
            Ims => (ImageId, ""),
            Evs => (Volume, ""),
            // Only IMS, EVS and ECS jobs follow timelines (`JobSpec::validate`).
            _ => (Server, ""),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_batch_type_names_its_sub_job_type_and_only_those() {
        for t in CATALOGUE {
            assert_eq!(t.shape.has_sub_jobs(), !t.sub_job_type.is_empty(), "{t:?}");
        }
    }

    #[test]
    fn unlisted_types_get_their_services_plain_shape() {
        assert_eq!(shape_of(Ims, "imsSomethingNew"), (ImageId, ""));
        assert_eq!(shape_of(Evs, "createServer"), (Volume, ""));
        assert_eq!(
            shape_of(Ecs, "deleteServer"),
            (EcsSubJobs, "deleteSingleServer")
        );
        assert_eq!(documented_job_types().count(), CATALOGUE.len() - 1);
    }
}
