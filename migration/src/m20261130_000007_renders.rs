//! Renders: a timeline document pinned at the version it was asked for, the output profile,
//! an optional range, the job that renders it, and where the output went.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Renders::Table)
                .col(pk_uuid(Renders::Id))
                .col(uuid(Renders::ProjectId))
                .col(uuid_null(Renders::CreatedBy))
                .col(uuid(Renders::JobId))
                .col(big_integer(Renders::TimelineVersion))
                .col(json_binary(Renders::Document))
                .col(json_binary(Renders::Profile))
                .col(big_integer_null(Renders::RangeStart))
                .col(big_integer_null(Renders::RangeEnd))
                .col(string_null(Renders::OutputKey))
                .col(json_binary_null(Renders::Output))
                .col(timestamp_with_time_zone(Renders::CreatedAt))
                .col(timestamp_with_time_zone(Renders::UpdatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(Renders::Table, Renders::ProjectId)
                        .to(Projects::Table, Projects::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_renders_project")
                .table(Renders::Table)
                .col(Renders::ProjectId)
                .col(Renders::Id)
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_renders_job")
                .table(Renders::Table)
                .col(Renders::JobId)
                .unique()
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(Renders::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Projects {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Renders {
    Table,
    Id,
    ProjectId,
    CreatedBy,
    JobId,
    /// The timeline version the render was asked for.
    TimelineVersion,
    /// That version's document (domain form), so the render does not depend on the op log.
    Document,
    /// The output profile, resolved (named presets expanded).
    Profile,
    /// Timeline frames [start, end), when only a range is rendered.
    RangeStart,
    RangeEnd,
    /// Where the finished file is stored.
    OutputKey,
    /// What the verification probe found, the encoder used, stage timings.
    Output,
    CreatedAt,
    UpdatedAt,
}
