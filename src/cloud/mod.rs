//! The cloud side: the jobs API's responses, where its endpoints are, and the signed client.

pub mod catalogue;
pub mod client;
pub mod endpoint;
pub mod model;
pub mod rate;
