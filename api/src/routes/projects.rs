//! Projects and members. Every project-scoped query goes through [`membership`], which answers
//! 404 for a project the caller is not a member of, exactly as for one that does not exist.

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Enum, Object, OpenApi};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, JoinType, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, RelationTrait, Set,
};
use serde::Deserialize;
use uuid::Uuid;

use nve_entity::{project_members, projects, users};

use crate::auth::Auth;
use crate::domain::{self, Email, Fields, accepted};
use crate::error::{ApiError, ErrorKind};
use crate::payload::JsonBody;
use crate::routes::ApiTags;
use crate::routes::accounts::{Created, NoContent};
use crate::state::AppState;

/// What a member may do. Owners manage members and can delete the project; editors change it;
/// viewers read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Enum, Deserialize)]
#[oai(rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Editor,
    Owner,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Editor => "editor",
            Role::Owner => "owner",
        }
    }

    fn from_db(s: &str) -> Result<Self, ApiError> {
        match s {
            "viewer" => Ok(Role::Viewer),
            "editor" => Ok(Role::Editor),
            "owner" => Ok(Role::Owner),
            other => Err(ApiError::internal(format!(
                "unknown role `{other}` in the database"
            ))),
        }
    }
}

/// The caller's membership of a project, or 404.
pub async fn membership<C: ConnectionTrait>(
    db: &C,
    project_id: Uuid,
    user_id: Uuid,
) -> Result<(projects::Model, Role), ApiError> {
    let row = projects::Entity::find_by_id(project_id)
        .find_also_related(project_members::Entity)
        .filter(project_members::Column::UserId.eq(user_id))
        .one(db)
        .await?;
    match row {
        Some((project, Some(member))) => Ok((project, Role::from_db(&member.role)?)),
        _ => Err(ApiError::not_found("project")),
    }
}

/// Membership with at least `needed`; a member with too little gets 403 (they can see the
/// project, so hiding it would be pointless).
pub async fn require_role<C: ConnectionTrait>(
    db: &C,
    project_id: Uuid,
    user_id: Uuid,
    needed: Role,
) -> Result<(projects::Model, Role), ApiError> {
    let (project, role) = membership(db, project_id, user_id).await?;
    if role < needed {
        return Err(ApiError::forbidden(format!(
            "this needs the {} role; you are {}",
            needed.as_str(),
            role.as_str()
        )));
    }
    Ok((project, role))
}

#[derive(Debug, Object)]
pub struct Project {
    pub id: Uuid,
    pub name: String,
    pub description: String,
    /// The user who created the project.
    pub owner_id: Uuid,
    /// Made for one standalone render (`POST /v1/renders`), which it belongs to: left out of
    /// `GET /v1/projects` unless asked for, deleted with the render.
    pub scratch: bool,
    /// The caller's role in this project.
    pub role: Role,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Project {
    fn new(p: projects::Model, role: Role) -> Self {
        Self {
            id: p.id,
            name: p.name,
            description: p.description,
            owner_id: p.owner_id,
            scratch: p.scratch,
            role,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, Object)]
#[serde(deny_unknown_fields)]
#[oai(deny_unknown_fields)]
pub struct CreateProject {
    #[oai(validator(min_length = 1, max_length = 200))]
    pub name: String,
    #[serde(default)]
    #[oai(default)]
    #[oai(validator(max_length = 5000))]
    pub description: String,
}

#[derive(Debug, Deserialize, Object)]
#[serde(deny_unknown_fields)]
#[oai(deny_unknown_fields)]
pub struct UpdateProject {
    #[oai(validator(min_length = 1, max_length = 200))]
    pub name: Option<String>,
    #[oai(validator(max_length = 5000))]
    pub description: Option<String>,
}

#[derive(Debug, Object)]
pub struct ProjectPage {
    pub items: Vec<Project>,
    /// Pass as `after` to get the next page; absent on the last page.
    #[oai(skip_serializing_if_is_none)]
    pub next_after: Option<Uuid>,
}

#[derive(Debug, Object)]
pub struct Member {
    pub user_id: Uuid,
    pub email: String,
    pub display_name: String,
    pub role: Role,
    pub added_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize, Object)]
#[serde(deny_unknown_fields)]
#[oai(deny_unknown_fields)]
pub struct AddMember {
    /// E-mail address of an existing user.
    #[oai(validator(max_length = 254))]
    pub email: String,
    pub role: Role,
}

#[derive(Debug, Deserialize, Object)]
#[serde(deny_unknown_fields)]
#[oai(deny_unknown_fields)]
pub struct UpdateMember {
    pub role: Role,
}

pub struct ProjectsApi;

#[OpenApi(tag = "ApiTags::Projects")]
impl ProjectsApi {
    /// Create a project; the caller becomes its owner.
    #[oai(path = "/projects", method = "post", operation_id = "createProject")]
    async fn create(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        body: JsonBody<CreateProject>,
    ) -> Result<Created<Project>, ApiError> {
        let mut f = Fields::default();
        let name = f.check("/name", domain::project_name(&body.0.name));
        let description = f.check("/description", domain::description(&body.0.description));
        f.finish()?;
        let now = Utc::now();
        let id = Uuid::now_v7();
        let txn = nve_worker::db::begin_write(&state.db).await?;
        let project = projects::ActiveModel {
            id: Set(id),
            name: Set(accepted(name)?),
            description: Set(accepted(description)?),
            owner_id: Set(auth.0.user_id),
            scratch: Set(false),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(&txn)
        .await?;
        project_members::ActiveModel {
            project_id: Set(id),
            user_id: Set(auth.0.user_id),
            role: Set(Role::Owner.as_str().to_owned()),
            created_at: Set(now),
        }
        .insert(&txn)
        .await?;
        txn.commit().await?;
        Ok(Created::Created(Json(Project::new(project, Role::Owner))))
    }

    /// Projects the caller is a member of, newest first.
    #[oai(path = "/projects", method = "get", operation_id = "listProjects")]
    async fn list(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        /// Page size, 1 to 100.
        #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
        limit: Query<Option<u64>>,
        /// The `next_after` of the previous page.
        after: Query<Option<Uuid>>,
        /// Also list the scratch projects of standalone renders (default false).
        include_scratch: Query<Option<bool>>,
    ) -> Result<Json<ProjectPage>, ApiError> {
        let limit = limit.0.unwrap_or(50);
        let mut q = projects::Entity::find()
            .join(JoinType::InnerJoin, projects::Relation::Members.def())
            .filter(project_members::Column::UserId.eq(auth.0.user_id))
            .select_also(project_members::Entity)
            // Ids are UUIDv7: ordering by id is ordering by creation, and a stable cursor.
            .order_by_desc(projects::Column::Id)
            .limit(limit + 1);
        if let Some(after) = after.0 {
            q = q.filter(projects::Column::Id.lt(after));
        }
        // One scratch project per standalone render would bury an integrator's own projects.
        if !include_scratch.0.unwrap_or(false) {
            q = q.filter(projects::Column::Scratch.eq(false));
        }
        let rows = q.all(&state.db).await?;
        let has_more = rows.len() as u64 > limit;
        let mut items = Vec::with_capacity(rows.len());
        for (project, member) in rows
            .into_iter()
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
        {
            let role = match member {
                Some(m) => Role::from_db(&m.role)?,
                None => continue,
            };
            items.push(Project::new(project, role));
        }
        let next_after = if has_more {
            items.last().map(|p| p.id)
        } else {
            None
        };
        Ok(Json(ProjectPage { items, next_after }))
    }

    /// One project.
    #[oai(path = "/projects/:id", method = "get", operation_id = "getProject")]
    async fn get(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        id: Path<Uuid>,
    ) -> Result<Json<Project>, ApiError> {
        let (project, role) = membership(&state.db, id.0, auth.0.user_id).await?;
        Ok(Json(Project::new(project, role)))
    }

    /// Rename or describe a project (editors and owners).
    #[oai(
        path = "/projects/:id",
        method = "patch",
        operation_id = "updateProject"
    )]
    async fn update(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        id: Path<Uuid>,
        body: JsonBody<UpdateProject>,
    ) -> Result<Json<Project>, ApiError> {
        let (project, role) = require_role(&state.db, id.0, auth.0.user_id, Role::Editor).await?;
        let mut f = Fields::default();
        let name = body
            .0
            .name
            .as_deref()
            .map(|n| f.check("/name", domain::project_name(n)));
        let description = body
            .0
            .description
            .as_deref()
            .map(|d| f.check("/description", domain::description(d)));
        f.finish()?;
        let mut active: projects::ActiveModel = project.into();
        if let Some(name) = name {
            active.name = Set(accepted(name)?);
        }
        if let Some(description) = description {
            active.description = Set(accepted(description)?);
        }
        active.updated_at = Set(Utc::now());
        let project = active.update(&state.db).await?;
        Ok(Json(Project::new(project, role)))
    }

    /// Delete a project and everything in it (owners only).
    #[oai(
        path = "/projects/:id",
        method = "delete",
        operation_id = "deleteProject"
    )]
    async fn delete(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        id: Path<Uuid>,
    ) -> Result<NoContent, ApiError> {
        let (project, _) = require_role(&state.db, id.0, auth.0.user_id, Role::Owner).await?;
        delete_with_media(&state, project.id).await?;
        Ok(NoContent::Done)
    }

    /// Members of a project.
    #[oai(
        path = "/projects/:id/members",
        method = "get",
        operation_id = "listMembers"
    )]
    async fn members(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        id: Path<Uuid>,
    ) -> Result<Json<Vec<Member>>, ApiError> {
        membership(&state.db, id.0, auth.0.user_id).await?;
        Ok(Json(list_members(&state.db, id.0).await?))
    }

    /// Add an existing user to a project (owners only).
    #[oai(
        path = "/projects/:id/members",
        method = "post",
        operation_id = "addMember"
    )]
    async fn add_member(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        id: Path<Uuid>,
        body: JsonBody<AddMember>,
    ) -> Result<Created<Member>, ApiError> {
        require_role(&state.db, id.0, auth.0.user_id, Role::Owner).await?;
        let mut f = Fields::default();
        let email = f.check("/email", Email::parse(&body.0.email));
        f.finish()?;
        let email = accepted(email)?;
        let user = users::Entity::find()
            .filter(users::Column::Email.eq(email.as_str()))
            .one(&state.db)
            .await?
            .ok_or_else(|| {
                ApiError::validation(vec![crate::error::FieldError::new(
                    "/email",
                    "unknown-user",
                    format!("no user has the address {}", email.as_str()),
                )])
            })?;
        let existing = project_members::Entity::find_by_id((id.0, user.id))
            .one(&state.db)
            .await?;
        if existing.is_some() {
            return Err(ApiError::new(
                ErrorKind::Conflict,
                format!("{} is already a member", user.email),
            ));
        }
        let member = project_members::ActiveModel {
            project_id: Set(id.0),
            user_id: Set(user.id),
            role: Set(body.0.role.as_str().to_owned()),
            created_at: Set(Utc::now()),
        }
        .insert(&state.db)
        .await?;
        Ok(Created::Created(Json(Member {
            user_id: user.id,
            email: user.email,
            display_name: user.display_name,
            role: body.0.role,
            added_at: member.created_at,
        })))
    }

    /// Change a member's role (owners only). A project always keeps at least one owner.
    #[oai(
        path = "/projects/:id/members/:user_id",
        method = "patch",
        operation_id = "updateMember"
    )]
    async fn update_member(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        id: Path<Uuid>,
        user_id: Path<Uuid>,
        body: JsonBody<UpdateMember>,
    ) -> Result<Json<Member>, ApiError> {
        let txn = nve_worker::db::begin_write(&state.db).await?;
        require_role(&txn, id.0, auth.0.user_id, Role::Owner).await?;
        let member = project_members::Entity::find_by_id((id.0, user_id.0))
            .one(&txn)
            .await?
            .ok_or_else(|| ApiError::not_found("member"))?;
        if Role::from_db(&member.role)? == Role::Owner && body.0.role != Role::Owner {
            ensure_another_owner(&txn, id.0).await?;
        }
        let mut active: project_members::ActiveModel = member.into();
        active.role = Set(body.0.role.as_str().to_owned());
        active.update(&txn).await?;
        txn.commit().await?;
        list_members(&state.db, id.0)
            .await?
            .into_iter()
            .find(|m| m.user_id == user_id.0)
            .map(Json)
            .ok_or_else(|| ApiError::not_found("member"))
    }

    /// Remove a member (owners), or leave a project (any member, for themselves).
    #[oai(
        path = "/projects/:id/members/:user_id",
        method = "delete",
        operation_id = "removeMember"
    )]
    async fn remove_member(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        id: Path<Uuid>,
        user_id: Path<Uuid>,
    ) -> Result<NoContent, ApiError> {
        let txn = nve_worker::db::begin_write(&state.db).await?;
        let leaving = user_id.0 == auth.0.user_id;
        if leaving {
            membership(&txn, id.0, auth.0.user_id).await?;
        } else {
            require_role(&txn, id.0, auth.0.user_id, Role::Owner).await?;
        }
        let member = project_members::Entity::find_by_id((id.0, user_id.0))
            .one(&txn)
            .await?
            .ok_or_else(|| ApiError::not_found("member"))?;
        if Role::from_db(&member.role)? == Role::Owner {
            ensure_another_owner(&txn, id.0).await?;
        }
        project_members::Entity::delete_by_id((id.0, user_id.0))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(NoContent::Done)
    }
}

/// Deletes a project, its rows (cascade) and its media. Also how a standalone render's scratch
/// project goes when the render is deleted.
pub(crate) async fn delete_with_media(state: &AppState, project: Uuid) -> Result<(), ApiError> {
    let uploads: Vec<Uuid> = nve_entity::uploads::Entity::find()
        .select_only()
        .column(nve_entity::uploads::Column::Id)
        .filter(nve_entity::uploads::Column::ProjectId.eq(project))
        .into_tuple()
        .all(&state.db)
        .await?;
    projects::Entity::delete_by_id(project)
        .exec(&state.db)
        .await?;
    // The rows went with the project (cascade); its media goes too: every original, derived
    // file and render output lives under the project's prefix, unfinished uploads under their
    // own. A storage failure here leaves files no row points to, which is logged, not fatal:
    // the project is gone either way.
    let mut prefixes = vec![format!("projects/{project}")];
    prefixes.extend(uploads.iter().map(|u| format!("uploads/{u}")));
    for prefix in prefixes {
        if let Err(e) = state.storage.remove_prefix(&prefix).await {
            tracing::warn!(error = %e, %prefix, "media of a deleted project not removed");
        }
    }
    Ok(())
}

async fn ensure_another_owner<C: ConnectionTrait>(
    db: &C,
    project_id: Uuid,
) -> Result<(), ApiError> {
    let owners = project_members::Entity::find()
        .filter(project_members::Column::ProjectId.eq(project_id))
        .filter(project_members::Column::Role.eq(Role::Owner.as_str()))
        .count(db)
        .await?;
    if owners <= 1 {
        return Err(ApiError::new(
            ErrorKind::LastOwner,
            "this is the project's only owner; make someone else owner first or delete the project",
        ));
    }
    Ok(())
}

async fn list_members<C: ConnectionTrait>(
    db: &C,
    project_id: Uuid,
) -> Result<Vec<Member>, ApiError> {
    let rows = project_members::Entity::find()
        .filter(project_members::Column::ProjectId.eq(project_id))
        .order_by_asc(project_members::Column::CreatedAt)
        .all(db)
        .await?;
    let ids: Vec<Uuid> = rows.iter().map(|m| m.user_id).collect();
    let people = users::Entity::find()
        .filter(users::Column::Id.is_in(ids))
        .all(db)
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for m in rows {
        if let Some(u) = people.iter().find(|u| u.id == m.user_id) {
            out.push(Member {
                user_id: u.id,
                email: u.email.clone(),
                display_name: u.display_name.clone(),
                role: Role::from_db(&m.role)?,
                added_at: m.created_at,
            });
        }
    }
    Ok(out)
}
