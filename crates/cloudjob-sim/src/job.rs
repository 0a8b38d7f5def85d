//! A job as the simulator keeps it: what it serves, who owns it, and its request counters.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use jiff::{SignedDuration, Timestamp};

use crate::clock::add;
use crate::model::{Service, Timeline};
use crate::stats::JobCounters;

/// What a job serves: a computed timeline, or a verbatim body.
#[derive(Debug, Clone)]
pub(crate) enum JobBody {
    Timeline(Box<Timeline>),
    Fixture { raw: Bytes, status: String },
}

#[derive(Debug)]
pub(crate) struct Job {
    pub id: String,
    pub service: Service,
    pub project_id: String,
    pub body: JobBody,
    pub expiry: Option<SignedDuration>,
    /// Shared with replacements of this job (see `finish_job`), so counters survive.
    pub counters: Arc<Mutex<JobCounters>>,
}

impl Job {
    /// Simulated end time, if the job has one (fixtures never end).
    pub(crate) fn end(&self) -> Option<Timestamp> {
        match &self.body {
            JobBody::Timeline(t) => Some(t.end),
            JobBody::Fixture { .. } => None,
        }
    }

    pub(crate) fn is_expired(&self, sim_now: Timestamp) -> bool {
        match (self.end(), self.expiry) {
            (Some(end), Some(expiry)) => sim_now >= add(end, expiry),
            _ => false,
        }
    }

    pub(crate) fn status_at(&self, sim_now: Timestamp) -> String {
        match &self.body {
            JobBody::Timeline(t) => t.status(sim_now).to_owned(),
            JobBody::Fixture { status, .. } => status.clone(),
        }
    }
}
