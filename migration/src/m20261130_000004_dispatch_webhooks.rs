//! Dispatch bookkeeping and webhooks: when a job's id was last handed to the queue (so the
//! reconciler can tell a live dispatch from a lost one), the job's callback URL, and the
//! webhook outbox with one row per delivery attempt.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // SQLite takes one column per ALTER TABLE.
        m.alter_table(
            Table::alter()
                .table(Jobs::Table)
                .add_column(timestamp_with_time_zone_null(Jobs::DispatchedAt))
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Jobs::Table)
                .add_column(text_null(Jobs::CallbackUrl))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_jobs_lease")
                .table(Jobs::Table)
                .col(Jobs::Status)
                .col(Jobs::LeaseExpiresAt)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(Webhooks::Table)
                .col(pk_uuid(Webhooks::Id))
                .col(uuid(Webhooks::JobId))
                .col(uuid_null(Webhooks::OwnerId))
                .col(text(Webhooks::Url))
                .col(string(Webhooks::Event))
                .col(json_binary(Webhooks::Body))
                .col(string(Webhooks::Status))
                .col(integer(Webhooks::Attempts))
                .col(integer(Webhooks::MaxAttempts))
                .col(timestamp_with_time_zone(Webhooks::NextAttemptAt))
                .col(string_null(Webhooks::LeaseOwner))
                .col(timestamp_with_time_zone_null(Webhooks::LeaseExpiresAt))
                .col(timestamp_with_time_zone(Webhooks::CreatedAt))
                .col(timestamp_with_time_zone_null(Webhooks::FinishedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(Webhooks::Table, Webhooks::JobId)
                        .to(Jobs::Table, Jobs::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_webhooks_due")
                .table(Webhooks::Table)
                .col(Webhooks::Status)
                .col(Webhooks::NextAttemptAt)
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_webhooks_job")
                .table(Webhooks::Table)
                .col(Webhooks::JobId)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(WebhookAttempts::Table)
                .col(pk_uuid(WebhookAttempts::Id))
                .col(uuid(WebhookAttempts::WebhookId))
                .col(integer(WebhookAttempts::Attempt))
                .col(timestamp_with_time_zone(WebhookAttempts::StartedAt))
                .col(integer(WebhookAttempts::DurationMs))
                .col(small_integer_null(WebhookAttempts::StatusCode))
                .col(text_null(WebhookAttempts::Error))
                .foreign_key(
                    ForeignKey::create()
                        .from(WebhookAttempts::Table, WebhookAttempts::WebhookId)
                        .to(Webhooks::Table, Webhooks::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_webhook_attempts_webhook")
                .table(WebhookAttempts::Table)
                .col(WebhookAttempts::WebhookId)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(WebhookAttempts::Table).to_owned())
            .await?;
        m.drop_table(Table::drop().table(Webhooks::Table).to_owned())
            .await?;
        m.drop_index(
            Index::drop()
                .name("idx_jobs_lease")
                .table(Jobs::Table)
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Jobs::Table)
                .drop_column(Jobs::CallbackUrl)
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Jobs::Table)
                .drop_column(Jobs::DispatchedAt)
                .to_owned(),
        )
        .await
    }
}

#[derive(DeriveIden)]
enum Jobs {
    Table,
    Id,
    Status,
    LeaseExpiresAt,
    DispatchedAt,
    CallbackUrl,
}

#[derive(DeriveIden)]
enum Webhooks {
    Table,
    Id,
    JobId,
    OwnerId,
    Url,
    Event,
    Body,
    Status,
    Attempts,
    MaxAttempts,
    NextAttemptAt,
    LeaseOwner,
    LeaseExpiresAt,
    CreatedAt,
    FinishedAt,
}

#[derive(DeriveIden)]
enum WebhookAttempts {
    Table,
    Id,
    WebhookId,
    Attempt,
    StartedAt,
    DurationMs,
    StatusCode,
    Error,
}
