//! Schema migrations, append-only: one dated module per change, never edited once applied.
//! Every migration must run on both PostgreSQL and SQLite.

pub use sea_orm_migration::prelude::*;

mod m20261130_000001_accounts_projects;
mod m20261130_000002_timelines;
mod m20261130_000003_jobs;
mod m20261130_000004_dispatch_webhooks;
mod m20261130_000005_assets;
mod m20261130_000006_uploads_imports;
mod m20261130_000007_renders;
mod m20261130_000008_standalone_renders;

pub struct Migrator;

#[sea_orm_migration::async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261130_000001_accounts_projects::Migration),
            Box::new(m20261130_000002_timelines::Migration),
            Box::new(m20261130_000003_jobs::Migration),
            Box::new(m20261130_000004_dispatch_webhooks::Migration),
            Box::new(m20261130_000005_assets::Migration),
            Box::new(m20261130_000006_uploads_imports::Migration),
            Box::new(m20261130_000007_renders::Migration),
            Box::new(m20261130_000008_standalone_renders::Migration),
        ]
    }
}
