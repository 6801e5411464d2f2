//! SeaORM entities: the database's shape, nothing else. Domain types live in `nve-pipelines`
//! and the API crate; these never appear in the HTTP schema.

pub mod api_keys;
pub mod assets;
pub mod edits;
pub mod jobs;
pub mod project_members;
pub mod projects;
pub mod renders;
pub mod sessions;
pub mod snapshots;
pub mod timelines;
pub mod uploads;
pub mod users;
pub mod webhook_attempts;
pub mod webhooks;
