//! What every handler shares.

use std::collections::HashMap;
use std::sync::Arc;

use nve_config::{Config, Profile};
use nve_worker::storage::Storage;
use sea_orm::DatabaseConnection;

use crate::auth::limiter::RateLimiter;
use crate::auth::tokens::JwtKeys;
use crate::collab::service::Collab;

#[derive(Clone)]
pub struct AppState {
    pub db: DatabaseConnection,
    pub config: Arc<Config>,
    pub profile: Profile,
    pub jwt: Arc<JwtKeys>,
    pub limiter: Arc<RateLimiter>,
    pub storage: Storage,
    pub collab: Collab,
    /// Hands new jobs to the workers.
    pub dispatcher: nve_worker::dispatch::Dispatcher,
    /// The server key webhook signing secrets derive from (the JWT secret's bytes).
    pub webhook_key: Arc<Vec<u8>>,
    /// OpenAPI operation id -> route template (`/v1/projects/{id}`), for metric labels.
    pub routes: Arc<HashMap<String, String>>,
}
