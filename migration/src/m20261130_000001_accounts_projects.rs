//! Users, their sessions and API keys; projects and their members.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Users::Table)
                .col(pk_uuid(Users::Id))
                .col(string_uniq(Users::Email))
                .col(string(Users::PasswordHash))
                .col(string(Users::DisplayName))
                .col(boolean(Users::Disabled).default(false))
                .col(timestamp_with_time_zone(Users::CreatedAt))
                .col(timestamp_with_time_zone(Users::UpdatedAt))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Sessions::Table)
                .col(pk_uuid(Sessions::Id))
                .col(uuid(Sessions::UserId))
                .col(uuid(Sessions::FamilyId))
                .col(string_uniq(Sessions::TokenHash))
                .col(timestamp_with_time_zone(Sessions::ExpiresAt))
                .col(timestamp_with_time_zone(Sessions::CreatedAt))
                .col(timestamp_with_time_zone_null(Sessions::UsedAt))
                .col(timestamp_with_time_zone_null(Sessions::RevokedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(Sessions::Table, Sessions::UserId)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_sessions_family")
                .table(Sessions::Table)
                .col(Sessions::FamilyId)
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(ApiKeys::Table)
                .col(pk_uuid(ApiKeys::Id))
                .col(uuid(ApiKeys::UserId))
                .col(string(ApiKeys::Name))
                .col(string_uniq(ApiKeys::Prefix))
                .col(string(ApiKeys::KeyHash))
                .col(timestamp_with_time_zone(ApiKeys::CreatedAt))
                .col(timestamp_with_time_zone_null(ApiKeys::LastUsedAt))
                .col(timestamp_with_time_zone_null(ApiKeys::RevokedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(ApiKeys::Table, ApiKeys::UserId)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_api_keys_user")
                .table(ApiKeys::Table)
                .col(ApiKeys::UserId)
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Projects::Table)
                .col(pk_uuid(Projects::Id))
                .col(string(Projects::Name))
                .col(text(Projects::Description))
                .col(uuid(Projects::OwnerId))
                .col(timestamp_with_time_zone(Projects::CreatedAt))
                .col(timestamp_with_time_zone(Projects::UpdatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(Projects::Table, Projects::OwnerId)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::Restrict),
                )
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(ProjectMembers::Table)
                .col(uuid(ProjectMembers::ProjectId))
                .col(uuid(ProjectMembers::UserId))
                .col(string(ProjectMembers::Role))
                .col(timestamp_with_time_zone(ProjectMembers::CreatedAt))
                .primary_key(
                    Index::create()
                        .col(ProjectMembers::ProjectId)
                        .col(ProjectMembers::UserId),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(ProjectMembers::Table, ProjectMembers::ProjectId)
                        .to(Projects::Table, Projects::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(ProjectMembers::Table, ProjectMembers::UserId)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        // "Which projects can this user see" is the hottest query; the primary key covers the other direction.
        m.create_index(
            Index::create()
                .name("idx_project_members_user")
                .table(ProjectMembers::Table)
                .col(ProjectMembers::UserId)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            ProjectMembers::Table.into_iden(),
            Projects::Table.into_iden(),
            ApiKeys::Table.into_iden(),
            Sessions::Table.into_iden(),
            Users::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Email,
    PasswordHash,
    DisplayName,
    Disabled,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    Id,
    UserId,
    FamilyId,
    TokenHash,
    ExpiresAt,
    CreatedAt,
    UsedAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    Id,
    UserId,
    Name,
    Prefix,
    KeyHash,
    CreatedAt,
    LastUsedAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum Projects {
    Table,
    Id,
    Name,
    Description,
    OwnerId,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum ProjectMembers {
    Table,
    ProjectId,
    UserId,
    Role,
    CreatedAt,
}
