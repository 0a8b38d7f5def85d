//! HTTP: the transport (accept loop, connections that faults can kill), the jobs API and the
//! admin API.

mod admin;
mod jobs_api;
mod transport;

use std::sync::Arc;

use axum::Router;

use crate::SimState;

pub(crate) use transport::serve;

/// The admin routes; everything else goes to the jobs API, which answers unknown paths itself
/// with the gateway's 404.
pub(crate) fn router(state: Arc<SimState>) -> Router {
    admin::routes().fallback(jobs_api::handle).with_state(state)
}
