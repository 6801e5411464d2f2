//! Standalone renders (`POST /v1/renders`): an integrator posts a whole document whose sources
//! are asset ids or URLs. The render still lives in a project, a scratch project made for it;
//! `projects.scratch` tells those apart (the project list leaves them out, deleting the render
//! deletes them). `renders.sources` maps each URL source's name to the asset it was imported
//! into, so the render job knows which imports to wait for.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite's ALTER TABLE adds one at a time.
        m.alter_table(
            Table::alter()
                .table(Projects::Table)
                .add_column(boolean(Projects::Scratch).default(false))
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Renders::Table)
                .add_column(json_binary_null(Renders::Sources))
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Renders::Table)
                .drop_column(Renders::Sources)
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Projects::Table)
                .drop_column(Projects::Scratch)
                .to_owned(),
        )
        .await
    }
}

#[derive(DeriveIden)]
enum Projects {
    Table,
    /// Made for one standalone render, owned by its caller.
    Scratch,
}

#[derive(DeriveIden)]
enum Renders {
    Table,
    /// Standalone renders only: URL source name → the asset it was imported into.
    Sources,
}
