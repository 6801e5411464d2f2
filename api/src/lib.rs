//! nve's HTTP edge: authentication, projects, the OpenAPI document, and the operations surface.

pub mod app;
pub mod auth;
pub mod cli;
pub mod collab;
pub mod domain;
pub mod error;
pub mod metrics;
pub mod payload;
pub mod render_cli;
pub mod routes;
pub mod state;
pub mod telemetry;
pub mod ui;
