//! Media assets of a project: the uploaded original (content-addressed blob), its probe and
//! ingest status. One row per distinct content per project.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Assets::Table)
                .col(pk_uuid(Assets::Id))
                .col(uuid(Assets::ProjectId))
                .col(uuid_null(Assets::UploadedBy))
                .col(string(Assets::Status))
                .col(string_null(Assets::Kind))
                .col(text(Assets::OriginalName))
                .col(string(Assets::ContentType))
                .col(big_integer(Assets::SizeBytes))
                .col(string(Assets::Sha256))
                .col(string(Assets::StorageKey))
                .col(json_binary_null(Assets::Probe))
                .col(json_binary_null(Assets::Derived))
                .col(string_null(Assets::ErrorCode))
                .col(text_null(Assets::ErrorMessage))
                .col(uuid_null(Assets::JobId))
                .col(timestamp_with_time_zone(Assets::CreatedAt))
                .col(timestamp_with_time_zone(Assets::UpdatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(Assets::Table, Assets::ProjectId)
                        .to(Projects::Table, Projects::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        // The same content uploaded twice to one project is one asset.
        m.create_index(
            Index::create()
                .name("idx_assets_project_sha256")
                .table(Assets::Table)
                .col(Assets::ProjectId)
                .col(Assets::Sha256)
                .unique()
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(Assets::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Projects {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Assets {
    Table,
    Id,
    ProjectId,
    UploadedBy,
    Status,
    Kind,
    OriginalName,
    ContentType,
    SizeBytes,
    Sha256,
    StorageKey,
    Probe,
    Derived,
    ErrorCode,
    ErrorMessage,
    JobId,
    CreatedAt,
    UpdatedAt,
}
