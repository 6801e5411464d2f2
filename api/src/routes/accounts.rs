//! Registration, login, token refresh, logout, the caller's profile, and API keys.

use chrono::{DateTime, Duration, Utc};
use poem::web::Data;
use poem::web::RemoteAddr;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set,
};
use serde::Deserialize;
use uuid::Uuid;

use nve_entity::{api_keys, sessions, users};

use crate::auth::{Auth, keys, password};
use crate::domain::{self, Email, Fields, Password, accepted};
use crate::error::{ApiError, ErrorKind};
use crate::payload::JsonBody;
use crate::routes::ApiTags;
use crate::state::AppState;

const REFRESH_MARKER: &str = "nvr_";

pub struct AuthApi;

#[derive(Debug, Deserialize, Object)]
#[serde(deny_unknown_fields)]
#[oai(deny_unknown_fields)]
pub struct RegisterRequest {
    /// E-mail address; compared case-insensitively.
    #[oai(validator(max_length = 254, pattern = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"))]
    pub email: String,
    /// At least 8 characters.
    #[oai(validator(min_length = 8, max_length = 1024))]
    pub password: String,
    #[oai(validator(min_length = 1, max_length = 100))]
    pub display_name: String,
}

#[derive(Debug, Deserialize, Object)]
#[serde(deny_unknown_fields)]
#[oai(deny_unknown_fields)]
pub struct LoginRequest {
    #[oai(validator(max_length = 254))]
    pub email: String,
    #[oai(validator(max_length = 1024))]
    pub password: String,
}

#[derive(Debug, Deserialize, Object)]
#[serde(deny_unknown_fields)]
#[oai(deny_unknown_fields)]
pub struct RefreshRequest {
    /// The refresh token from the last login or refresh. Each one works once.
    pub refresh_token: String,
}

#[derive(Debug, Object)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub display_name: String,
    pub created_at: DateTime<Utc>,
}

impl From<users::Model> for User {
    fn from(u: users::Model) -> Self {
        Self {
            id: u.id,
            email: u.email,
            display_name: u.display_name,
            created_at: u.created_at,
        }
    }
}

#[derive(Debug, Object)]
pub struct TokenPair {
    /// Send as `Authorization: Bearer <access_token>`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// Exchange at `POST /v1/auth/refresh` for a new pair; single use.
    pub refresh_token: String,
    /// Seconds until the refresh token expires.
    pub refresh_expires_in: i64,
    pub user: User,
}

#[derive(ApiResponse)]
pub enum Created<T: poem_openapi::types::ToJSON> {
    #[oai(status = 201)]
    Created(Json<T>),
}

#[OpenApi(tag = "ApiTags::Auth")]
impl AuthApi {
    /// Create an account.
    ///
    /// Allowed when `auth.allow_registration` is on; operators can always use
    /// `nve admin create-user`.
    #[oai(path = "/auth/register", method = "post", operation_id = "register")]
    async fn register(
        &self,
        state: Data<&AppState>,
        body: JsonBody<RegisterRequest>,
    ) -> Result<Created<User>, ApiError> {
        if !state.config.auth.allow_registration {
            return Err(ApiError::new(
                ErrorKind::RegistrationClosed,
                "self-service registration is disabled on this server",
            ));
        }
        let b = body.0;
        let mut f = Fields::default();
        let email = f.check("/email", Email::parse(&b.email));
        let pw = f.check("/password", Password::parse(&b.password));
        let name = f.check("/display_name", domain::display_name(&b.display_name));
        f.finish()?;
        let user = create_user(
            &state.db,
            &accepted(email)?,
            &accepted(pw)?,
            &accepted(name)?,
        )
        .await?;
        Ok(Created::Created(Json(user.into())))
    }

    /// Log in with e-mail and password.
    ///
    /// Rate-limited per client address and per e-mail address (429 with `Retry-After`).
    #[oai(path = "/auth/login", method = "post", operation_id = "login")]
    async fn login(
        &self,
        state: Data<&AppState>,
        remote: &RemoteAddr,
        body: JsonBody<LoginRequest>,
    ) -> Result<Json<TokenPair>, ApiError> {
        let b = body.0;
        let per_minute = state.config.auth.login_attempts_per_minute;
        let email_key = b.email.trim().to_lowercase();
        state
            .limiter
            .hit(
                &format!("login-addr:{}", client_addr(remote)),
                per_minute.saturating_mul(5),
            )
            .and_then(|()| {
                state
                    .limiter
                    .hit(&format!("login-email:{email_key}"), per_minute)
            })
            .map_err(ApiError::rate_limited)?;

        let user = match Email::parse(&b.email) {
            Ok(email) => {
                users::Entity::find()
                    .filter(users::Column::Email.eq(email.as_str()))
                    .one(&state.db)
                    .await?
            }
            Err(_) => None,
        };
        let ok =
            password::verify(b.password, user.as_ref().map(|u| u.password_hash.clone())).await?;
        let user = match user {
            Some(u) if ok && !u.disabled => u,
            _ => {
                return Err(ApiError::new(
                    ErrorKind::InvalidCredentials,
                    "the e-mail address or password is wrong",
                ));
            }
        };
        let pair = start_session(&state, &state.db, user, Uuid::now_v7()).await?;
        Ok(Json(pair))
    }

    /// Exchange a refresh token for a new token pair.
    ///
    /// Refresh tokens rotate: each works once. Presenting one that was already used revokes
    /// every token of that login, since it means the token was copied.
    #[oai(path = "/auth/refresh", method = "post", operation_id = "refresh")]
    async fn refresh(
        &self,
        state: Data<&AppState>,
        body: JsonBody<RefreshRequest>,
    ) -> Result<Json<TokenPair>, ApiError> {
        let invalid = || {
            ApiError::new(
                ErrorKind::InvalidToken,
                "the refresh token is invalid, expired or already used",
            )
        };
        let token = body.0.refresh_token;
        if !token.starts_with(REFRESH_MARKER) {
            return Err(invalid());
        }
        let hash = keys::sha256_hex(&token);
        let txn = nve_worker::db::begin_write(&state.db).await?;
        let session = sessions::Entity::find()
            .filter(sessions::Column::TokenHash.eq(hash))
            .one(&txn)
            .await?
            .ok_or_else(invalid)?;
        let now = Utc::now();
        if session.used_at.is_some() || session.revoked_at.is_some() {
            revoke_family(&txn, session.family_id).await?;
            txn.commit().await?;
            tracing::warn!(user_id = %session.user_id, "refresh token reuse; session family revoked");
            return Err(invalid());
        }
        if session.expires_at <= now {
            return Err(invalid());
        }
        // Guarded update: of two concurrent refreshes with one token, exactly one wins.
        let claimed = sessions::Entity::update_many()
            .col_expr(
                sessions::Column::UsedAt,
                sea_orm::sea_query::Expr::value(now),
            )
            .filter(sessions::Column::Id.eq(session.id))
            .filter(sessions::Column::UsedAt.is_null())
            .exec(&txn)
            .await?;
        if claimed.rows_affected != 1 {
            return Err(invalid());
        }
        let user = users::Entity::find_by_id(session.user_id)
            .one(&txn)
            .await?
            .filter(|u| !u.disabled)
            .ok_or_else(invalid)?;
        let pair = start_session(&state, &txn, user, session.family_id).await?;
        txn.commit().await?;
        Ok(Json(pair))
    }

    /// Log out: revokes the refresh token and every rotation of it.
    #[oai(path = "/auth/logout", method = "post", operation_id = "logout")]
    async fn logout(
        &self,
        state: Data<&AppState>,
        body: JsonBody<RefreshRequest>,
    ) -> Result<NoContent, ApiError> {
        let hash = keys::sha256_hex(&body.0.refresh_token);
        if let Some(s) = sessions::Entity::find()
            .filter(sessions::Column::TokenHash.eq(hash))
            .one(&state.db)
            .await?
        {
            revoke_family(&state.db, s.family_id).await?;
        }
        // Unknown tokens succeed too: logging out twice is not an error.
        Ok(NoContent::Done)
    }

    /// The authenticated user.
    #[oai(path = "/me", method = "get", operation_id = "me")]
    async fn me(&self, state: Data<&AppState>, auth: Auth) -> Result<Json<User>, ApiError> {
        let user = users::Entity::find_by_id(auth.0.user_id)
            .one(&state.db)
            .await?
            .ok_or_else(|| ApiError::not_found("user"))?;
        Ok(Json(user.into()))
    }
}

#[derive(ApiResponse)]
pub enum NoContent {
    #[oai(status = 204)]
    Done,
}

fn client_addr(remote: &RemoteAddr) -> String {
    remote
        .as_socket_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|| remote.to_string())
}

/// Creates a user; shared by registration and `nve admin create-user`.
pub async fn create_user<C: ConnectionTrait>(
    db: &C,
    email: &Email,
    pw: &Password,
    display_name: &str,
) -> Result<users::Model, ApiError> {
    let exists = users::Entity::find()
        .filter(users::Column::Email.eq(email.as_str()))
        .one(db)
        .await?;
    if exists.is_some() {
        return Err(ApiError::new(
            ErrorKind::EmailTaken,
            format!("{} already has an account", email.as_str()),
        ));
    }
    let hash = password::hash(pw.expose().to_owned()).await?;
    let now = Utc::now();
    let model = users::ActiveModel {
        id: Set(Uuid::now_v7()),
        email: Set(email.as_str().to_owned()),
        password_hash: Set(hash),
        display_name: Set(display_name.to_owned()),
        disabled: Set(false),
        created_at: Set(now),
        updated_at: Set(now),
    };
    // The unique index decides races between two registrations of one address.
    model.insert(db).await.map_err(|e| match e.sql_err() {
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) => ApiError::new(
            ErrorKind::EmailTaken,
            format!("{} already has an account", email.as_str()),
        ),
        _ => ApiError::from(e),
    })
}

async fn start_session<C: ConnectionTrait>(
    state: &AppState,
    db: &C,
    user: users::Model,
    family_id: Uuid,
) -> Result<TokenPair, ApiError> {
    let access_token = state.jwt.issue(user.id)?;
    let refresh_token = format!(
        "{REFRESH_MARKER}{}",
        hex::encode(rand::random::<[u8; 32]>())
    );
    let now = Utc::now();
    let ttl = i64::try_from(state.config.auth.refresh_token_ttl_secs).unwrap_or(86_400);
    sessions::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(user.id),
        family_id: Set(family_id),
        token_hash: Set(keys::sha256_hex(&refresh_token)),
        expires_at: Set(now + Duration::seconds(ttl)),
        created_at: Set(now),
        used_at: Set(None),
        revoked_at: Set(None),
    }
    .insert(db)
    .await?;
    Ok(TokenPair {
        access_token,
        token_type: "Bearer".into(),
        expires_in: state.jwt.ttl_secs(),
        refresh_token,
        refresh_expires_in: ttl,
        user: user.into(),
    })
}

async fn revoke_family<C: ConnectionTrait>(db: &C, family_id: Uuid) -> Result<(), ApiError> {
    sessions::Entity::update_many()
        .col_expr(
            sessions::Column::RevokedAt,
            sea_orm::sea_query::Expr::value(Utc::now()),
        )
        .filter(sessions::Column::FamilyId.eq(family_id))
        .filter(sessions::Column::RevokedAt.is_null())
        .exec(db)
        .await?;
    Ok(())
}

pub struct ApiKeysApi;

#[derive(Debug, Deserialize, Object)]
#[serde(deny_unknown_fields)]
#[oai(deny_unknown_fields)]
pub struct CreateApiKey {
    /// A label to tell keys apart, e.g. the integration that uses it.
    #[oai(validator(min_length = 1, max_length = 100))]
    pub name: String,
}

#[derive(Debug, Object)]
pub struct ApiKey {
    pub id: Uuid,
    pub name: String,
    /// The visible start of the key (`nve_<prefix>_…`).
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    #[oai(skip_serializing_if_is_none)]
    pub last_used_at: Option<DateTime<Utc>>,
    #[oai(skip_serializing_if_is_none)]
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<api_keys::Model> for ApiKey {
    fn from(k: api_keys::Model) -> Self {
        Self {
            id: k.id,
            name: k.name,
            prefix: k.prefix,
            created_at: k.created_at,
            last_used_at: k.last_used_at,
            revoked_at: k.revoked_at,
        }
    }
}

#[derive(Debug, Object)]
pub struct CreatedApiKey {
    /// The whole key. It is shown only in this response; store it now.
    pub key: String,
    pub api_key: ApiKey,
}

#[OpenApi(tag = "ApiTags::ApiKeys")]
impl ApiKeysApi {
    /// Create an API key. The key is returned once.
    #[oai(path = "/api-keys", method = "post", operation_id = "createApiKey")]
    async fn create(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        body: JsonBody<CreateApiKey>,
    ) -> Result<Created<CreatedApiKey>, ApiError> {
        state
            .limiter
            .hit(
                &format!("api-key-create:{}", auth.0.user_id),
                state.config.auth.api_key_creations_per_minute,
            )
            .map_err(ApiError::rate_limited)?;
        let mut f = Fields::default();
        let name = f.check("/name", domain::key_name(&body.0.name));
        f.finish()?;
        let new = keys::generate();
        let model = api_keys::ActiveModel {
            id: Set(Uuid::now_v7()),
            user_id: Set(auth.0.user_id),
            name: Set(accepted(name)?),
            prefix: Set(new.prefix),
            key_hash: Set(new.hash),
            created_at: Set(Utc::now()),
            last_used_at: Set(None),
            revoked_at: Set(None),
        }
        .insert(&state.db)
        .await?;
        Ok(Created::Created(Json(CreatedApiKey {
            key: new.key,
            api_key: model.into(),
        })))
    }

    /// The caller's API keys, newest first (never the keys themselves).
    #[oai(path = "/api-keys", method = "get", operation_id = "listApiKeys")]
    async fn list(
        &self,
        state: Data<&AppState>,
        auth: Auth,
    ) -> Result<Json<Vec<ApiKey>>, ApiError> {
        let keys = api_keys::Entity::find()
            .filter(api_keys::Column::UserId.eq(auth.0.user_id))
            .order_by_desc(api_keys::Column::CreatedAt)
            .all(&state.db)
            .await?;
        Ok(Json(keys.into_iter().map(Into::into).collect()))
    }

    /// Revoke an API key. Requests with it fail from now on.
    #[oai(
        path = "/api-keys/:id",
        method = "delete",
        operation_id = "revokeApiKey"
    )]
    async fn revoke(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        id: Path<Uuid>,
    ) -> Result<NoContent, ApiError> {
        let key = api_keys::Entity::find_by_id(id.0)
            .one(&state.db)
            .await?
            .filter(|k| k.user_id == auth.0.user_id)
            .ok_or_else(|| ApiError::not_found("API key"))?;
        if key.revoked_at.is_none() {
            let mut active: api_keys::ActiveModel = key.into();
            active.revoked_at = Set(Some(Utc::now()));
            active.update(&state.db).await?;
        }
        Ok(NoContent::Done)
    }
}
