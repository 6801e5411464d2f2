//! The one path every timeline change takes, whether it comes over HTTP or the WebSocket:
//! order it against the current version, rebase it over what came since when nothing
//! conflicts, apply and validate, append it to the op log, move the timeline's version with a
//! guarded update, and publish it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::Utc;
use nve_pipelines::timeline::{
    Context, EditError, Op, OpDoc, Timeline, TimelineDoc, TimelineLimits, Track, TrackKind,
};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};
use uuid::Uuid;

use nve_entity::{edits, timelines};

use crate::collab::asset_facts;
use crate::collab::hub::{Hub, ProjectEvent};
use crate::error::{ApiError, ErrorKind, FieldError};

/// Attempts of the optimistic commit before giving up (another replica kept winning).
const COMMIT_ATTEMPTS: usize = 8;

/// Serialises commits to one project inside this process; across replicas the guarded update
/// of the version decides, and the loser retries.
#[derive(Default, Clone)]
pub struct ProjectLocks(Arc<Mutex<HashMap<Uuid, Arc<tokio::sync::Mutex<()>>>>>);

impl ProjectLocks {
    fn get(&self, project: Uuid) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(project).or_default().clone()
    }
}

/// Which kind of change, as recorded in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Edit,
    Undo,
    Redo,
    Replace,
    Restore,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Edit => "edit",
            Kind::Undo => "undo",
            Kind::Redo => "redo",
            Kind::Replace => "replace",
            Kind::Restore => "restore",
        }
    }
}

/// A committed version (or the earlier commit of a repeated `client_op_id`).
#[derive(Debug, Clone)]
pub struct Committed {
    pub version: i64,
    pub client_op_id: String,
    /// True when this `client_op_id` had already been applied and nothing new happened.
    pub duplicate: bool,
}

/// A validation context over loaded asset facts.
fn context<'a>(
    limits: &'a TimelineLimits,
    lookup: &'a (dyn Fn(&str) -> Option<nve_pipelines::timeline::AssetInfo> + Sync),
) -> Context<'a> {
    Context {
        limits,
        assets: lookup,
    }
}

/// The facts of every asset a stretch of history uses (deleted ones included: history stays
/// readable after its media is gone).
async fn history_facts<C: ConnectionTrait>(
    db: &C,
    project: Uuid,
    start: &Timeline,
    ops: &[&serde_json::Value],
) -> Result<asset_facts::Facts, ApiError> {
    let mut ids = asset_facts::in_timeline(start);
    for op in ops {
        asset_facts::in_json(op, &mut ids);
    }
    asset_facts::load(db, project, &ids, &ids).await
}

/// A new project's timeline: 1080p30 with one video and one audio track.
pub fn initial_timeline() -> Timeline {
    Timeline {
        tracks: vec![
            Track::new("V1", TrackKind::Video),
            Track::new("A1", TrackKind::Audio),
        ],
        ..Timeline::default()
    }
}

/// A logged op (or inverse) back as the domain type.
fn decode_op(json: &serde_json::Value) -> Result<Op, ApiError> {
    serde_json::from_value(json.clone()).map_err(|e| ApiError::internal(format!("stored op: {e}")))
}

/// Re-applies a logged op while rebuilding an old version.
fn replay(tl: &Timeline, op: &Op, version: i64, cx: &Context<'_>) -> Result<Timeline, ApiError> {
    tl.apply(op, cx)
        .map(|(next, _)| next)
        .map_err(|e| ApiError::internal(format!("replaying version {version}: {e}")))
}

fn decode_timeline(json: &serde_json::Value) -> Result<Timeline, ApiError> {
    serde_json::from_value(json.clone())
        .map_err(|e| ApiError::internal(format!("stored timeline: {e}")))
}

fn encode<T: serde::Serialize>(v: &T) -> Result<serde_json::Value, ApiError> {
    serde_json::to_value(v).map_err(ApiError::internal)
}

/// The current version and document, creating version 0 on first access.
pub async fn current<C: ConnectionTrait>(
    db: &C,
    project: Uuid,
) -> Result<(i64, Timeline), ApiError> {
    let version = match timelines::Entity::find_by_id(project).one(db).await? {
        Some(row) => row.version,
        None => {
            let inserted = timelines::ActiveModel {
                project_id: Set(project),
                version: Set(0),
                updated_at: Set(Utc::now()),
            }
            .insert(db)
            .await;
            match inserted {
                Ok(_) => 0,
                // Two first accesses raced; the other one created it.
                Err(e)
                    if matches!(
                        e.sql_err(),
                        Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
                    ) =>
                {
                    timelines::Entity::find_by_id(project)
                        .one(db)
                        .await?
                        .ok_or_else(|| {
                            ApiError::internal("timeline vanished after a conflicting insert")
                        })?
                        .version
                }
                Err(e) => return Err(e.into()),
            }
        }
    };
    Ok((version, at_version(db, project, version).await?))
}

/// Versions whose log row keeps the whole document; others are rebuilt by replaying ops from
/// the checkpoint before them.
pub const CHECKPOINT_EVERY: i64 = 50;

/// The document at `version`: the nearest checkpoint at or before it, plus the logged ops.
pub async fn at_version<C: ConnectionTrait>(
    db: &C,
    project: Uuid,
    version: i64,
) -> Result<Timeline, ApiError> {
    if version < 0 {
        return Err(ApiError::not_found("version"));
    }
    if version == 0 {
        return Ok(initial_timeline());
    }
    let checkpoint = edits::Entity::find()
        .filter(edits::Column::ProjectId.eq(project))
        .filter(edits::Column::Version.lte(version))
        .filter(edits::Column::Document.is_not_null())
        .order_by_desc(edits::Column::Version)
        .one(db)
        .await?;
    let (mut at, mut tl) = match checkpoint {
        Some(row) => (
            row.version,
            decode_timeline(
                row.document
                    .as_ref()
                    .ok_or_else(|| ApiError::internal("checkpoint without document"))?,
            )?,
        ),
        None => (0, initial_timeline()),
    };
    if at == version {
        return Ok(tl);
    }
    let rows: Vec<(i64, serde_json::Value)> = edits::Entity::find()
        .select_only()
        .column(edits::Column::Version)
        .column(edits::Column::Ops)
        .filter(edits::Column::ProjectId.eq(project))
        .filter(edits::Column::Version.gt(at))
        .filter(edits::Column::Version.lte(version))
        .order_by_asc(edits::Column::Version)
        .into_tuple()
        .all(db)
        .await?;
    // Replaying history re-applies ops that were valid when committed.
    let limits = TimelineLimits::unbounded();
    let ops: Vec<&serde_json::Value> = rows.iter().map(|(_, op)| op).collect();
    let facts = history_facts(db, project, &tl, &ops).await?;
    let lookup = |id: &str| facts.get(id).copied();
    let cx = context(&limits, &lookup);
    for (v, op) in rows {
        tl = replay(&tl, &decode_op(&op)?, v, &cx)?;
        at = v;
    }
    if at != version {
        return Err(ApiError::not_found("version"));
    }
    Ok(tl)
}

/// The wire form of a logged version's op, for clients replaying the log. Converted as a
/// whole, so each op's seconds are on the grid in effect when it applied (after a frame-rate
/// change earlier in the version), which is how clients convert them back.
fn wire_ops(op: &Op, before: &Timeline) -> Result<Vec<serde_json::Value>, ApiError> {
    match before.op_to_doc(op) {
        OpDoc::Batch { ops } => ops.iter().map(encode).collect(),
        other => Ok(vec![encode(&other)?]),
    }
}

/// The event that announces a logged version whose op is `op`.
fn event_for(row: &edits::Model, op: &Op, before: &Timeline) -> Result<ProjectEvent, ApiError> {
    Ok(ProjectEvent::Op {
        version: row.version,
        base_version: row.base_version,
        author_id: row.author_id,
        client_op_id: row.client_op_id.clone(),
        kind: row.kind.clone(),
        ops: wire_ops(op, before)?,
    })
}

/// The events of versions `after+1 ..= upto` (at most 200 per call), oldest first.
pub async fn events_after(
    db: &DatabaseConnection,
    project: Uuid,
    after: i64,
    upto: i64,
) -> Result<Vec<(i64, ProjectEvent)>, ApiError> {
    let rows = edits::Entity::find()
        .filter(edits::Column::ProjectId.eq(project))
        .filter(edits::Column::Version.gt(after))
        .filter(edits::Column::Version.lte(upto))
        .order_by_asc(edits::Column::Version)
        .limit(200)
        .all(db)
        .await?;
    // Ops are written in seconds using the document they were applied to.
    let mut before = at_version(db, project, after).await?;
    // Replaying history re-applies ops that were valid when committed.
    let limits = TimelineLimits::unbounded();
    let ops: Vec<&serde_json::Value> = rows.iter().map(|r| &r.ops).collect();
    let facts = history_facts(db, project, &before, &ops).await?;
    let lookup = |id: &str| facts.get(id).copied();
    let cx = context(&limits, &lookup);
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let op = decode_op(&row.ops)?;
        out.push((row.version, event_for(&row, &op, &before)?));
        before = replay(&before, &op, row.version, &cx)?;
    }
    Ok(out)
}

/// What a caller asks for.
pub enum Change {
    /// Wire ops against `base_version`.
    Ops {
        base_version: i64,
        ops: Vec<serde_json::Value>,
    },
    /// The whole document, if the timeline is still at `expected_version`.
    Replace {
        expected_version: i64,
        doc: serde_json::Value,
    },
    Undo,
    Redo,
    Restore {
        version: i64,
    },
}

/// Documents kept decoded at most; see `Collab::remember`.
const DOC_CACHE_PROJECTS: usize = 512;

/// Project -> (version, document).
type DocCache = HashMap<Uuid, (i64, Arc<Timeline>)>;

#[derive(Clone)]
pub struct Collab {
    pub db: DatabaseConnection,
    pub hub: Hub,
    pub locks: ProjectLocks,
    pub limits: Arc<TimelineLimits>,
    /// The last document this process committed or read per project, reused while the
    /// database still holds that version (decoding a large document on every edit dominated).
    pub cache: Arc<Mutex<DocCache>>,
}

impl Collab {
    pub fn new(db: DatabaseConnection, hub: Hub, limits: TimelineLimits) -> Self {
        Self {
            db,
            hub,
            locks: ProjectLocks::default(),
            limits: Arc::new(limits),
            cache: Arc::default(),
        }
    }

    fn cached(&self, project: Uuid) -> Option<(i64, Arc<Timeline>)> {
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&project)
            .cloned()
    }

    fn remember(&self, project: Uuid, version: i64, tl: Arc<Timeline>) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        // A bound on memory: projects being edited right now are re-read once after a reset.
        if cache.len() >= DOC_CACHE_PROJECTS && !cache.contains_key(&project) {
            cache.clear();
        }
        cache.insert(project, (version, tl));
    }

    /// The current version and document, from this process's cache while it is up to date.
    pub async fn current_cached<C: ConnectionTrait>(
        &self,
        db: &C,
        project: Uuid,
    ) -> Result<(i64, Arc<Timeline>), ApiError> {
        let version: Option<i64> = timelines::Entity::find_by_id(project)
            .select_only()
            .column(timelines::Column::Version)
            .into_tuple()
            .one(db)
            .await?;
        if let (Some(v), Some((cv, tl))) = (version, self.cached(project))
            && v == cv
        {
            return Ok((v, tl));
        }
        let (v, tl) = current(db, project).await?;
        let tl = Arc::new(tl);
        self.remember(project, v, tl.clone());
        Ok((v, tl))
    }

    /// Applies `change` for `author`; idempotent per (`author`, `client_op_id`).
    pub async fn commit(
        &self,
        project: Uuid,
        author: Uuid,
        client_op_id: &str,
        change: Change,
    ) -> Result<Committed, ApiError> {
        check_client_op_id(client_op_id)?;
        let lock = self.locks.get(project);
        let _guard = lock.lock().await;
        for attempt in 0..COMMIT_ATTEMPTS {
            let outcome = match self
                .try_commit(project, author, client_op_id, &change)
                .await
            {
                Err(e) if e.transient && attempt + 1 < COMMIT_ATTEMPTS => {
                    // Another writer held the database; back off a little, with jitter.
                    let ms = 5 * (attempt as u64 + 1) + u64::from(rand::random::<u8>() % 10);
                    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                    continue;
                }
                other => other?,
            };
            match outcome {
                Attempt::Done(committed, event) => {
                    if let Some(event) = event {
                        self.hub.publish(project, event).await;
                    }
                    return Ok(committed);
                }
                Attempt::Raced => continue,
            }
        }
        Err(ApiError::new(
            ErrorKind::Unavailable,
            "the timeline is too busy right now; retry",
        ))
    }

    async fn try_commit(
        &self,
        project: Uuid,
        author: Uuid,
        client_op_id: &str,
        change: &Change,
    ) -> Result<Attempt, ApiError> {
        let txn = nve_worker::db::begin_write(&self.db).await?;
        if let Some(done) = edits::Entity::find()
            .filter(edits::Column::ProjectId.eq(project))
            .filter(edits::Column::AuthorId.eq(author))
            .filter(edits::Column::ClientOpId.eq(client_op_id))
            .one(&txn)
            .await?
        {
            return Ok(Attempt::Done(
                Committed {
                    version: done.version,
                    client_op_id: client_op_id.to_owned(),
                    duplicate: true,
                },
                None,
            ));
        }
        let (version, tl) = self.current_cached(&txn, project).await?;
        // Changes that bring their op from history are planned first, so the assets they
        // name are known before validation.
        let from_history = match change {
            Change::Restore { version: target } => {
                if *target < 0 || *target > version {
                    return Err(ApiError::not_found("version"));
                }
                let old = at_version(&txn, project, *target).await?;
                Some(Planned::new(
                    Op::ReplaceTimeline {
                        timeline: Box::new(old),
                    },
                    Kind::Restore,
                    Some(*target),
                ))
            }
            // Undo applies the inverse of the caller's last change; redo the inverse of their
            // last undo, which is the change again.
            Change::Undo | Change::Redo => {
                let (target, kind) = match change {
                    Change::Undo => (undo_target(&txn, project, author).await?, Kind::Undo),
                    _ => (redo_target(&txn, project, author).await?, Kind::Redo),
                };
                Some(Planned::new(
                    decode_op(&target.inverse)?,
                    kind,
                    Some(target.version),
                ))
            }
            Change::Ops { .. } | Change::Replace { .. } => None,
        };
        let current = asset_facts::in_timeline(&tl);
        let mut wanted = current.clone();
        match (change, &from_history) {
            (_, Some(planned)) => asset_facts::in_json(&encode(&planned.op)?, &mut wanted),
            (Change::Ops { ops, .. }, None) => ops
                .iter()
                .for_each(|op| asset_facts::in_json(op, &mut wanted)),
            (Change::Replace { doc, .. }, None) => asset_facts::in_json(doc, &mut wanted),
            _ => {}
        }
        let facts = asset_facts::load(&txn, project, &wanted, &current).await?;
        let lookup = |id: &str| facts.get(id).copied();
        let cx = context(&self.limits, &lookup);
        let planned = match (change, from_history) {
            (_, Some(planned)) => planned,
            (Change::Ops { base_version, ops }, None) => {
                self.plan_ops(&txn, project, &tl, version, *base_version, ops, &cx)
                    .await?
            }
            (
                Change::Replace {
                    expected_version,
                    doc,
                },
                None,
            ) => {
                if *expected_version != version {
                    return Err(ApiError::new(
                        ErrorKind::VersionMismatch,
                        format!("the timeline is at version {version}, not {expected_version}"),
                    )
                    .with_version(version));
                }
                let doc: TimelineDoc = crate::payload::decode_value(doc)?;
                let next =
                    Timeline::from_doc(&doc, &cx).map_err(|errors| invalid_document(&errors))?;
                Planned::new(
                    Op::ReplaceTimeline {
                        timeline: Box::new(next),
                    },
                    Kind::Replace,
                    None,
                )
            }
            (Change::Restore { .. } | Change::Undo | Change::Redo, None) => {
                return Err(ApiError::internal("a change from history was not planned"));
            }
        };
        let (next, inverse) = tl.apply(&planned.op, &cx).map_err(|e| match planned.kind {
            Kind::Undo | Kind::Redo => ApiError::new(
                ErrorKind::EditConflict,
                format!(
                    "cannot {}: the timeline changed since ({})",
                    planned.kind.as_str(),
                    e
                ),
            )
            .with_version(version),
            _ if planned.rebased => ApiError::new(
                ErrorKind::EditConflict,
                format!("the edit no longer applies on version {version}: {e}"),
            )
            .with_version(version),
            _ => edit_error(&e, "/ops"),
        })?;
        let new_version = version + 1;
        let base_version = match change {
            Change::Ops { base_version, .. } => *base_version,
            _ => version,
        };
        let row = edits::ActiveModel {
            project_id: Set(project),
            version: Set(new_version),
            base_version: Set(base_version),
            author_id: Set(author),
            client_op_id: Set(client_op_id.to_owned()),
            kind: Set(planned.kind.as_str().to_owned()),
            ops: Set(encode(&planned.op)?),
            inverse: Set(encode(&inverse)?),
            document: Set(
                if new_version % CHECKPOINT_EVERY == 0
                    || matches!(planned.kind, Kind::Replace | Kind::Restore)
                {
                    Some(encode(&next)?)
                } else {
                    None
                },
            ),
            target_version: Set(planned.target),
            reverted: Set(false),
            created_at: Set(Utc::now()),
        };
        let row = match row.insert(&txn).await {
            Ok(row) => row,
            Err(e)
                if matches!(
                    e.sql_err(),
                    Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
                ) =>
            {
                return Ok(Attempt::Raced);
            }
            Err(e) => return Err(e.into()),
        };
        let moved = timelines::Entity::update_many()
            .col_expr(
                timelines::Column::Version,
                sea_orm::sea_query::Expr::value(new_version),
            )
            .col_expr(
                timelines::Column::UpdatedAt,
                sea_orm::sea_query::Expr::value(Utc::now()),
            )
            .filter(timelines::Column::ProjectId.eq(project))
            .filter(timelines::Column::Version.eq(version))
            .exec(&txn)
            .await?;
        if moved.rows_affected != 1 {
            return Ok(Attempt::Raced);
        }
        if let Some(target) = planned
            .target
            .filter(|_| matches!(planned.kind, Kind::Undo | Kind::Redo))
        {
            edits::Entity::update_many()
                .col_expr(
                    edits::Column::Reverted,
                    sea_orm::sea_query::Expr::value(true),
                )
                .filter(edits::Column::ProjectId.eq(project))
                .filter(edits::Column::Version.eq(target))
                .exec(&txn)
                .await?;
        }
        let event = event_for(&row, &planned.op, &tl)?;
        txn.commit().await?;
        self.remember(project, new_version, Arc::new(next));
        Ok(Attempt::Done(
            Committed {
                version: new_version,
                client_op_id: client_op_id.to_owned(),
                duplicate: false,
            },
            Some(event),
        ))
    }

    #[allow(clippy::too_many_arguments)]
    async fn plan_ops<C: ConnectionTrait>(
        &self,
        db: &C,
        project: Uuid,
        tl: &Timeline,
        version: i64,
        base_version: i64,
        ops: &[serde_json::Value],
        cx: &Context<'_>,
    ) -> Result<Planned, ApiError> {
        if base_version > version || base_version < 0 {
            return Err(ApiError::new(
                ErrorKind::EditConflict,
                format!("base_version {base_version} does not exist; the timeline is at {version}"),
            )
            .with_version(version));
        }
        if ops.is_empty() {
            return Err(ApiError::validation(vec![FieldError::new(
                "/ops",
                "required",
                "send at least one op",
            )]));
        }
        let mut domain = Vec::with_capacity(ops.len());
        let mut problems = Vec::new();
        // The ops apply one after another: each snaps on the grid the ones before it leave.
        let mut intake = tl.op_intake();
        for (i, raw) in ops.iter().enumerate() {
            let pointer = format!("/ops/{i}");
            match crate::payload::decode_value_at::<OpDoc>(raw, &pointer) {
                Ok(doc) => match intake.convert(&doc, cx) {
                    Ok(op) => domain.push(op),
                    Err(e) => problems.extend(edit_error(&e, &pointer).errors),
                },
                Err(e) => problems.extend(e.errors),
            }
        }
        if !problems.is_empty() {
            return Err(ApiError::validation(problems));
        }
        let rebased = base_version < version;
        if rebased {
            // Edits since the base: the new ops may apply on top of them only if they touch
            // different things. Each logged op is one version's (possibly batched) op.
            let since: Vec<(i64, serde_json::Value)> = edits::Entity::find()
                .select_only()
                .column(edits::Column::Version)
                .column(edits::Column::Ops)
                .filter(edits::Column::ProjectId.eq(project))
                .filter(edits::Column::Version.gt(base_version))
                .order_by_asc(edits::Column::Version)
                .into_tuple()
                .all(db)
                .await?;
            for (their_version, their_ops) in since {
                let theirs = decode_op(&their_ops)?;
                if domain.iter().any(|mine| tl.ops_conflict(mine, &theirs)) {
                    return Err(ApiError::new(
                        ErrorKind::EditConflict,
                        format!(
                            "version {their_version} changed what this edit changes; fetch the timeline (now at {version}) and edit again"
                        ),
                    )
                    .with_version(version));
                }
            }
        }
        let op = if domain.len() == 1 {
            domain.remove(0)
        } else {
            Op::Batch { ops: domain }
        };
        Ok(Planned {
            op,
            kind: Kind::Edit,
            target: None,
            rebased,
        })
    }
}

enum Attempt {
    Done(Committed, Option<ProjectEvent>),
    Raced,
}

struct Planned {
    op: Op,
    kind: Kind,
    target: Option<i64>,
    rebased: bool,
}

impl Planned {
    fn new(op: Op, kind: Kind, target: Option<i64>) -> Self {
        Self {
            op,
            kind,
            target,
            rebased: false,
        }
    }
}

/// The caller's most recent change that can still be undone.
async fn undo_target<C: ConnectionTrait>(
    db: &C,
    project: Uuid,
    author: Uuid,
) -> Result<edits::Model, ApiError> {
    edits::Entity::find()
        .filter(edits::Column::ProjectId.eq(project))
        .filter(edits::Column::AuthorId.eq(author))
        .filter(edits::Column::Kind.is_in(["edit", "redo", "replace", "restore"]))
        .filter(edits::Column::Reverted.eq(false))
        .order_by_desc(edits::Column::Version)
        .one(db)
        .await?
        .ok_or_else(|| ApiError::new(ErrorKind::NothingToUndo, "you have nothing left to undo"))
}

/// The caller's most recent undo, unless they have made a new change since (which, as in every
/// editor, clears the redo stack).
async fn redo_target<C: ConnectionTrait>(
    db: &C,
    project: Uuid,
    author: Uuid,
) -> Result<edits::Model, ApiError> {
    let latest_own = edits::Entity::find()
        .filter(edits::Column::ProjectId.eq(project))
        .filter(edits::Column::AuthorId.eq(author))
        .filter(edits::Column::Kind.is_in(["edit", "replace", "restore", "undo"]))
        .order_by_desc(edits::Column::Version)
        .all(db)
        .await?;
    // Walk back over this author's undos; stop at their last fresh change.
    for row in latest_own {
        match row.kind.as_str() {
            "undo" if !row.reverted => return Ok(row),
            "undo" => continue,
            _ => break,
        }
    }
    Err(ApiError::new(
        ErrorKind::NothingToUndo,
        "you have nothing to redo",
    ))
}

fn check_client_op_id(id: &str) -> Result<(), ApiError> {
    let ok = !id.is_empty() && id.len() <= 128 && id.chars().all(|c| c.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err(ApiError::validation(vec![FieldError::new(
            "/client_op_id",
            "invalid",
            "client_op_id must be 1 to 128 printable ASCII characters (a UUID is ideal)",
        )]))
    }
}

fn edit_error(e: &EditError, pointer: &str) -> ApiError {
    let errors = match e.problems() {
        Some(list) => list
            .iter()
            .map(|p| {
                FieldError::new(
                    format!("{pointer}{}", p.path),
                    p.code.as_str(),
                    p.message.clone(),
                )
            })
            .collect(),
        None => vec![FieldError::new(pointer, e.code(), e.to_string())],
    };
    ApiError {
        errors,
        ..ApiError::new(ErrorKind::InvalidEdit, e.to_string())
    }
}

fn invalid_document(errors: &nve_pipelines::timeline::ValidationErrors) -> ApiError {
    ApiError::validation(
        errors
            .iter()
            .map(|p| FieldError::new(p.path.clone(), p.code.as_str(), p.message.clone()))
            .collect(),
    )
}
