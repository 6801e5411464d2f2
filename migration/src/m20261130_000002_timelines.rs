//! The timeline of each project (current version and document), the append-only edit log that
//! is its history, and named snapshots.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Timelines::Table)
                .col(uuid(Timelines::ProjectId).primary_key())
                .col(big_integer(Timelines::Version))
                .col(timestamp_with_time_zone(Timelines::UpdatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(Timelines::Table, Timelines::ProjectId)
                        .to(Projects::Table, Projects::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Edits::Table)
                .col(uuid(Edits::ProjectId))
                .col(big_integer(Edits::Version))
                .col(big_integer(Edits::BaseVersion))
                .col(uuid(Edits::AuthorId))
                .col(string(Edits::ClientOpId))
                .col(string(Edits::Kind))
                .col(json_binary(Edits::Ops))
                .col(json_binary(Edits::Inverse))
                .col(json_binary_null(Edits::Document))
                .col(big_integer_null(Edits::TargetVersion))
                .col(boolean(Edits::Reverted).default(false))
                .col(timestamp_with_time_zone(Edits::CreatedAt))
                .primary_key(Index::create().col(Edits::ProjectId).col(Edits::Version))
                .foreign_key(
                    ForeignKey::create()
                        .from(Edits::Table, Edits::ProjectId)
                        .to(Projects::Table, Projects::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        // A retried request carries the same client op id; the index makes "apply once" a
        // database guarantee rather than a check that two requests can both pass.
        m.create_index(
            Index::create()
                .name("idx_edits_client_op")
                .table(Edits::Table)
                .col(Edits::ProjectId)
                .col(Edits::AuthorId)
                .col(Edits::ClientOpId)
                .unique()
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Snapshots::Table)
                .col(pk_uuid(Snapshots::Id))
                .col(uuid(Snapshots::ProjectId))
                .col(string(Snapshots::Name))
                .col(big_integer(Snapshots::Version))
                .col(uuid(Snapshots::CreatedBy))
                .col(timestamp_with_time_zone(Snapshots::CreatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(Snapshots::Table, Snapshots::ProjectId)
                        .to(Projects::Table, Projects::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_snapshots_project")
                .table(Snapshots::Table)
                .col(Snapshots::ProjectId)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Snapshots::Table.into_iden(),
            Edits::Table.into_iden(),
            Timelines::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Projects {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Timelines {
    Table,
    ProjectId,
    Version,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Edits {
    Table,
    ProjectId,
    Version,
    BaseVersion,
    AuthorId,
    ClientOpId,
    Kind,
    Ops,
    Inverse,
    Document,
    TargetVersion,
    Reverted,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Snapshots {
    Table,
    Id,
    ProjectId,
    Name,
    Version,
    CreatedBy,
    CreatedAt,
}
