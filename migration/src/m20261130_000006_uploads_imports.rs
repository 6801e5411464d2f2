//! Resumable uploads and imports by URL. An upload session records how many bytes of a
//! declared length have arrived and where each received part is stored, so any API replica
//! can take the next part; the asset row remembers the URL it was imported from.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Uploads::Table)
                .col(pk_uuid(Uploads::Id))
                .col(uuid(Uploads::ProjectId))
                .col(uuid(Uploads::UserId))
                .col(big_integer(Uploads::Length))
                .col(big_integer(Uploads::ReceivedBytes))
                .col(json_binary(Uploads::Parts))
                .col(text(Uploads::Filename))
                .col(string(Uploads::ContentType))
                .col(uuid_null(Uploads::AssetId))
                .col(timestamp_with_time_zone(Uploads::CreatedAt))
                .col(timestamp_with_time_zone(Uploads::UpdatedAt))
                .col(timestamp_with_time_zone(Uploads::ExpiresAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(Uploads::Table, Uploads::ProjectId)
                        .to(Projects::Table, Projects::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_uploads_expires")
                .table(Uploads::Table)
                .col(Uploads::ExpiresAt)
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Assets::Table)
                .add_column(text_null(Assets::SourceUrl))
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(Uploads::Table).to_owned())
            .await?;
        m.alter_table(
            Table::alter()
                .table(Assets::Table)
                .drop_column(Assets::SourceUrl)
                .to_owned(),
        )
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
    SourceUrl,
}

#[derive(DeriveIden)]
enum Uploads {
    Table,
    Id,
    ProjectId,
    UserId,
    /// Declared total size.
    Length,
    /// The tus offset: bytes stored so far.
    ReceivedBytes,
    /// Start offsets of the stored parts, in order.
    Parts,
    Filename,
    ContentType,
    /// Set once the last byte arrived and the asset was created.
    AssetId,
    CreatedAt,
    UpdatedAt,
    ExpiresAt,
}
