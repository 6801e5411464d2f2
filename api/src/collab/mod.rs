//! Timeline storage, edits, history, and their real-time fan-out.

pub mod asset_facts;
pub mod hub;
pub mod live;
pub mod service;
