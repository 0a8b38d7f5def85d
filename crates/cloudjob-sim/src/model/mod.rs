//! Jobs: what they should do ([`spec`]), the job types known ([`catalogue`]), and the JSON they
//! serve at a given simulated time ([`render`]).

mod catalogue;
mod render;
pub(crate) mod services;
mod spec;

pub use catalogue::{JobType, documented_job_types};
pub use render::{Timeline, fmt_time};
pub use spec::{JobSpec, Outcome, ProgressCurve, Service, SubJobs, TimeStyle, UnknownService};

pub(crate) use render::random_hex32;
