//! Jobs: the database is the record of every job (status, attempts, lease, progress, error,
//! timings); queues only carry its id.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Jobs::Table)
                .col(pk_uuid(Jobs::Id))
                .col(uuid_null(Jobs::ProjectId))
                .col(uuid_null(Jobs::CreatedBy))
                .col(string(Jobs::Queue))
                .col(string(Jobs::Kind))
                .col(json_binary(Jobs::Payload))
                .col(string(Jobs::Status))
                .col(small_integer(Jobs::Priority))
                .col(integer(Jobs::Attempts))
                .col(integer(Jobs::MaxAttempts))
                .col(string_null(Jobs::LeaseOwner))
                .col(uuid_null(Jobs::LeaseToken))
                .col(timestamp_with_time_zone_null(Jobs::LeaseExpiresAt))
                .col(timestamp_with_time_zone(Jobs::RunAt))
                .col(double_null(Jobs::Progress))
                .col(string_null(Jobs::ErrorCode))
                .col(text_null(Jobs::ErrorMessage))
                .col(json_binary_null(Jobs::Result))
                .col(string(Jobs::CorrelationId))
                .col(boolean(Jobs::CancelRequested).default(false))
                .col(timestamp_with_time_zone(Jobs::QueuedAt))
                .col(timestamp_with_time_zone_null(Jobs::StartedAt))
                .col(timestamp_with_time_zone_null(Jobs::FinishedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(Jobs::Table, Jobs::ProjectId)
                        .to(Projects::Table, Projects::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        // The claim query: the next due job of a queue by priority.
        m.create_index(
            Index::create()
                .name("idx_jobs_due")
                .table(Jobs::Table)
                .col(Jobs::Queue)
                .col(Jobs::Status)
                .col(Jobs::Priority)
                .col(Jobs::RunAt)
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_jobs_project")
                .table(Jobs::Table)
                .col(Jobs::ProjectId)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(Jobs::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Projects {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Jobs {
    Table,
    Id,
    ProjectId,
    CreatedBy,
    Queue,
    Kind,
    Payload,
    Status,
    Priority,
    Attempts,
    MaxAttempts,
    LeaseOwner,
    LeaseToken,
    LeaseExpiresAt,
    RunAt,
    Progress,
    ErrorCode,
    ErrorMessage,
    Result,
    CorrelationId,
    CancelRequested,
    QueuedAt,
    StartedAt,
    FinishedAt,
}
