//! Authentication: who is calling. Authorization (what they may do in a project) lives with
//! the project routes, because it needs the project.

pub mod keys;
pub mod limiter;
pub mod password;
pub mod tokens;

use chrono::Utc;
use poem::Request;
use poem_openapi::SecurityScheme;
use poem_openapi::auth::Bearer;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};
use uuid::Uuid;

use nve_entity::{api_keys, users};

use crate::error::{ApiError, ErrorKind};
use crate::state::AppState;

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user_id: Uuid,
    pub email: String,
    /// Set when the caller used an API key rather than a session.
    pub api_key_id: Option<Uuid>,
}

/// `Authorization: Bearer <token>` where the token is an access token from `/v1/auth/login`
/// or an API key (`nve_…`).
#[derive(SecurityScheme)]
#[oai(
    ty = "bearer",
    bearer_format = "JWT or nve_ API key",
    checker = "authenticate"
)]
pub struct Auth(pub Principal);

async fn authenticate(req: &Request, bearer: Bearer) -> poem::Result<Principal> {
    let state = req
        .data::<AppState>()
        .ok_or_else(|| ApiError::internal("application state missing from request"))?;
    let principal = principal_for(state, &bearer.token).await?;
    tracing::Span::current().record("user_id", tracing::field::display(principal.user_id));
    Ok(principal)
}

pub(crate) async fn principal_for(state: &AppState, token: &str) -> Result<Principal, ApiError> {
    let (user_id, api_key_id) = match keys::prefix_of(token) {
        Some(prefix) => {
            let key = api_keys::Entity::find()
                .filter(api_keys::Column::Prefix.eq(prefix))
                .one(&state.db)
                .await?
                .filter(|k| keys::digest_eq(&k.key_hash, &keys::sha256_hex(token)))
                .ok_or_else(|| ApiError::new(ErrorKind::InvalidToken, "unknown API key"))?;
            if key.revoked_at.is_some() {
                return Err(ApiError::new(
                    ErrorKind::InvalidToken,
                    "this API key has been revoked",
                ));
            }
            touch_key(state, &key).await;
            (key.user_id, Some(key.id))
        }
        None => (state.jwt.verify(token)?, None),
    };
    let user = users::Entity::find_by_id(user_id)
        .one(&state.db)
        .await?
        .filter(|u| !u.disabled)
        .ok_or_else(|| {
            ApiError::new(
                ErrorKind::InvalidToken,
                "the account no longer exists or is disabled",
            )
        })?;
    Ok(Principal {
        user_id: user.id,
        email: user.email,
        api_key_id,
    })
}

/// Records when a key was last used, at most once a minute, so a busy integrator does not turn
/// every read into a write.
async fn touch_key(state: &AppState, key: &api_keys::Model) {
    let now = Utc::now();
    let stale = key
        .last_used_at
        .is_none_or(|t| now.signed_duration_since(t).num_seconds() >= 60);
    if stale {
        let mut active: api_keys::ActiveModel = key.clone().into();
        active.last_used_at = Set(Some(now));
        if let Err(e) = active.update(&state.db).await {
            tracing::warn!(error = %e, "could not record API key use");
        }
    }
}
