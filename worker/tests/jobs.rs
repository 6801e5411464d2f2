//! The job state machine against real SQLite and PostgreSQL.

use std::time::Duration;

use nve_entity::jobs;
use nve_worker::jobs::{
    self as j, Failure, JobError, NewJob, PRIORITY_BATCH, PRIORITY_INTERACTIVE, Queue, Status,
};
use nve_worker::testing::TestDb;
use sea_orm::{ConnectionTrait, EntityTrait};

macro_rules! both_dbs {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name(nve_worker::testing::TestDb::sqlite().await).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name(nve_worker::testing::TestDb::postgres().await).await
                }
            }
        )*
    };
}

both_dbs!(
    claims_in_priority_order_once_each,
    an_expired_lease_cannot_commit,
    a_job_that_keeps_dying_fails_after_its_attempts,
    transient_failures_back_off_permanent_ones_end,
    release_and_cancel,
    a_dead_workers_cancelled_job_ends_cancelled,
    the_backlog_is_taken_for_dispatch_once,
);

fn new_job(queue: Queue, priority: i16, max_attempts: i32) -> NewJob {
    NewJob {
        project_id: None,
        created_by: None,
        queue,
        kind: "noop".into(),
        payload: serde_json::json!({"n": 1}),
        priority,
        max_attempts,
        correlation_id: "test".into(),
        callback_url: None,
    }
}

async fn row<C: ConnectionTrait>(db: &C, id: uuid::Uuid) -> jobs::Model {
    jobs::Entity::find_by_id(id)
        .one(db)
        .await
        .expect("query")
        .expect("row")
}

const LEASE: Duration = Duration::from_secs(30);

async fn claims_in_priority_order_once_each(t: TestDb) {
    let db = &t.conn;
    let batch = j::enqueue(db, new_job(Queue::Edit, PRIORITY_BATCH, 3))
        .await
        .expect("enqueue");
    let interactive = j::enqueue(db, new_job(Queue::Edit, PRIORITY_INTERACTIVE, 3))
        .await
        .expect("enqueue");
    let render = j::enqueue(db, new_job(Queue::Render, PRIORITY_INTERACTIVE, 3))
        .await
        .expect("enqueue");
    let (first, _) = j::claim_next(db, Queue::Edit, "w1", LEASE)
        .await
        .expect("claim")
        .expect("a job");
    assert_eq!(first.job_id, interactive.id, "interactive before batch");
    assert_eq!(first.attempt, 1);
    let (second, _) = j::claim_next(db, Queue::Edit, "w2", LEASE)
        .await
        .expect("claim")
        .expect("a job");
    assert_eq!(second.job_id, batch.id);
    assert!(
        j::claim_next(db, Queue::Edit, "w3", LEASE)
            .await
            .expect("claim")
            .is_none(),
        "edit queue drained"
    );
    // A second claim of the same job loses.
    assert!(
        j::claim(db, batch.id, "w4", LEASE)
            .await
            .expect("claim")
            .is_none()
    );
    // The render queue is separate.
    let (r, _) = j::claim_next(db, Queue::Render, "w1", LEASE)
        .await
        .expect("claim")
        .expect("render job");
    assert_eq!(r.job_id, render.id);

    // Many claimers racing for many jobs: each job is claimed exactly once.
    let mut ids = Vec::new();
    for _ in 0..40 {
        ids.push(
            j::enqueue(db, new_job(Queue::Edit, PRIORITY_BATCH, 3))
                .await
                .expect("enqueue")
                .id,
        );
    }
    let mut tasks = Vec::new();
    for w in 0..4 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                match j::claim_next(&db, Queue::Edit, &format!("racer{w}"), LEASE).await {
                    Ok(Some((lease, _))) => mine.push(lease.job_id),
                    Ok(None) => break,
                    // SQLite may report a busy database under contention; try again.
                    Err(JobError::Database(_)) => {
                        tokio::time::sleep(Duration::from_millis(5)).await
                    }
                    Err(e) => panic!("{e}"),
                }
            }
            mine
        }));
    }
    let mut claimed = Vec::new();
    for t in tasks {
        claimed.extend(t.await.expect("task"));
    }
    claimed.sort();
    ids.sort();
    assert_eq!(claimed, ids);
}

async fn expire(db: &impl ConnectionTrait, id: uuid::Uuid) {
    use sea_orm::sea_query::Expr;
    use sea_orm::{ColumnTrait, QueryFilter};
    jobs::Entity::update_many()
        .col_expr(
            jobs::Column::LeaseExpiresAt,
            Expr::value(chrono::Utc::now() - chrono::Duration::seconds(1)),
        )
        .filter(jobs::Column::Id.eq(id))
        .exec(db)
        .await
        .expect("expire");
}

async fn an_expired_lease_cannot_commit(t: TestDb) {
    let db = &t.conn;
    let job = j::enqueue(db, new_job(Queue::Render, PRIORITY_BATCH, 3))
        .await
        .expect("enqueue");
    let stale = j::claim(db, job.id, "slow-worker", LEASE)
        .await
        .expect("claim")
        .expect("claimed");
    expire(db, job.id).await;
    let requeued = j::reconcile(db).await.expect("reconcile");
    assert_eq!(requeued, vec![job.id]);
    let fresh = j::claim(db, job.id, "other-worker", LEASE)
        .await
        .expect("claim")
        .expect("re-claimed");
    assert_eq!(fresh.attempt, 2);
    // The first worker wakes up and tries to write its result: refused, nothing changes.
    let err = j::complete(db, &stale, serde_json::json!({"out": "stale"}))
        .await
        .expect_err("fenced");
    assert!(matches!(err, JobError::LeaseLost(_)));
    assert!(matches!(
        j::heartbeat(db, &stale, LEASE, Some(0.5)).await,
        Err(JobError::LeaseLost(_))
    ));
    j::complete(db, &fresh, serde_json::json!({"out": "fresh"}))
        .await
        .expect("complete");
    let done = row(db, job.id).await;
    assert_eq!(done.status, "succeeded");
    assert_eq!(done.result, Some(serde_json::json!({"out": "fresh"})));
    assert_eq!(done.attempts, 2);
    // Completing twice is refused too.
    assert!(
        j::complete(db, &fresh, serde_json::json!({}))
            .await
            .is_err()
    );
}

async fn a_job_that_keeps_dying_fails_after_its_attempts(t: TestDb) {
    let db = &t.conn;
    let job = j::enqueue(db, new_job(Queue::Edit, PRIORITY_BATCH, 2))
        .await
        .expect("enqueue");
    for attempt in 1..=2 {
        let lease = j::claim(db, job.id, "crashy", LEASE)
            .await
            .expect("claim")
            .expect("claimed");
        assert_eq!(lease.attempt, attempt);
        expire(db, job.id).await; // the worker died
        j::reconcile(db).await.expect("reconcile");
    }
    let dead = row(db, job.id).await;
    assert_eq!(dead.status, "failed");
    assert_eq!(dead.error_code.as_deref(), Some("too-many-attempts"));
    assert!(
        j::claim(db, job.id, "w", LEASE)
            .await
            .expect("claim")
            .is_none()
    );

    // A queued job that already used its attempts (re-enqueued by a crashed peer) is failed at
    // claim time instead of being started again.
    let other = j::enqueue(db, new_job(Queue::Edit, PRIORITY_BATCH, 1))
        .await
        .expect("enqueue");
    let lease = j::claim(db, other.id, "w", LEASE)
        .await
        .expect("claim")
        .expect("claimed");
    j::release(db, &lease).await.expect("release");
    use sea_orm::sea_query::Expr;
    use sea_orm::{ColumnTrait, QueryFilter};
    jobs::Entity::update_many()
        .col_expr(jobs::Column::Attempts, Expr::value(1))
        .filter(jobs::Column::Id.eq(other.id))
        .exec(db)
        .await
        .expect("update");
    assert!(
        j::claim(db, other.id, "w", LEASE)
            .await
            .expect("claim")
            .is_none()
    );
    assert_eq!(row(db, other.id).await.status, "failed");
}

async fn transient_failures_back_off_permanent_ones_end(t: TestDb) {
    let db = &t.conn;
    let job = j::enqueue(db, new_job(Queue::Edit, PRIORITY_BATCH, 3))
        .await
        .expect("enqueue");
    let lease = j::claim(db, job.id, "w", LEASE)
        .await
        .expect("claim")
        .expect("claimed");
    let transient = Failure {
        code: "storage-unavailable".into(),
        message: "the bucket timed out".into(),
        transient: true,
    };
    assert_eq!(
        j::fail(db, &lease, 3, &transient).await.expect("fail"),
        Status::Queued
    );
    let waiting = row(db, job.id).await;
    assert_eq!(waiting.status, "queued");
    assert!(
        waiting.run_at > chrono::Utc::now(),
        "retried later, not at once"
    );
    assert!(
        j::claim(db, job.id, "w", LEASE)
            .await
            .expect("claim")
            .is_none(),
        "not due yet"
    );

    let job2 = j::enqueue(db, new_job(Queue::Edit, PRIORITY_BATCH, 3))
        .await
        .expect("enqueue");
    let lease2 = j::claim(db, job2.id, "w", LEASE)
        .await
        .expect("claim")
        .expect("claimed");
    let permanent = Failure {
        code: "not-media".into(),
        message: "the file is not audio or video".into(),
        transient: false,
    };
    assert_eq!(
        j::fail(db, &lease2, 3, &permanent).await.expect("fail"),
        Status::Failed
    );
    let failed = row(db, job2.id).await;
    assert_eq!(failed.error_code.as_deref(), Some("not-media"));
    assert!(failed.finished_at.is_some());

    for attempt in 1..=8 {
        let b = j::backoff(attempt);
        let base = 2f64.powi(attempt).min(300.0);
        assert!(
            b.as_secs_f64() >= base * 0.74 && b.as_secs_f64() <= base * 1.26,
            "{attempt}: {b:?}"
        );
    }
}

async fn release_and_cancel(t: TestDb) {
    let db = &t.conn;
    let job = j::enqueue(db, new_job(Queue::Render, PRIORITY_BATCH, 3))
        .await
        .expect("enqueue");
    let lease = j::claim(db, job.id, "draining", LEASE)
        .await
        .expect("claim")
        .expect("claimed");
    j::release(db, &lease).await.expect("release");
    let back = row(db, job.id).await;
    assert_eq!(
        (back.status.as_str(), back.attempts),
        ("queued", 0),
        "a hand-over is not an attempt"
    );
    let lease = j::claim(db, job.id, "next", LEASE)
        .await
        .expect("claim")
        .expect("taken at once");
    assert_eq!(lease.attempt, 1);

    // Cancelling a running job flags it; its worker learns at the next heartbeat.
    assert_eq!(
        j::cancel(db, job.id).await.expect("cancel"),
        Status::Running
    );
    assert!(
        j::heartbeat(db, &lease, LEASE, Some(0.3))
            .await
            .expect("heartbeat")
    );
    j::cancelled(db, &lease).await.expect("cancelled");
    assert_eq!(row(db, job.id).await.status, "cancelled");

    let queued = j::enqueue(db, new_job(Queue::Render, PRIORITY_BATCH, 3))
        .await
        .expect("enqueue");
    assert_eq!(
        j::cancel(db, queued.id).await.expect("cancel"),
        Status::Cancelled
    );
    assert!(
        j::claim(db, queued.id, "w", LEASE)
            .await
            .expect("claim")
            .is_none()
    );
    assert!(matches!(
        j::cancel(db, uuid::Uuid::now_v7()).await,
        Err(JobError::NotFound(_))
    ));
}

async fn a_dead_workers_cancelled_job_ends_cancelled(t: TestDb) {
    let db = &t.conn;
    let job = j::enqueue(db, new_job(Queue::Edit, PRIORITY_BATCH, 3))
        .await
        .expect("enqueue");
    j::claim(db, job.id, "doomed", LEASE)
        .await
        .expect("claim")
        .expect("claimed");
    assert_eq!(
        j::cancel(db, job.id).await.expect("cancel"),
        Status::Running
    );
    // Its worker dies before seeing the request: the job must not run again.
    expire(db, job.id).await;
    assert!(j::reconcile(db).await.expect("reconcile").is_empty());
    let done = row(db, job.id).await;
    assert_eq!(done.status, "cancelled");
    assert!(done.finished_at.is_some());
}

async fn the_backlog_is_taken_for_dispatch_once(t: TestDb) {
    let db = &t.conn;
    let mut ids = Vec::new();
    for p in [PRIORITY_BATCH, PRIORITY_INTERACTIVE, PRIORITY_BATCH] {
        let job = j::enqueue(db, new_job(Queue::Edit, p, 3))
            .await
            .expect("enqueue");
        j::undispatched(db, job.id).await.expect("undispatched");
        ids.push(job.id);
    }
    let stale_before = chrono::Utc::now() - chrono::Duration::seconds(30);
    let first = j::take_for_dispatch(db, Queue::Edit, stale_before, 2)
        .await
        .expect("take");
    // Best first (interactive), never-dispatched rows are not resends.
    assert_eq!(first.len(), 2);
    assert_eq!(first[0].id, ids[1]);
    assert!(first.iter().all(|t| !t.resend));
    let second = j::take_for_dispatch(db, Queue::Edit, stale_before, 10)
        .await
        .expect("take");
    assert_eq!(second.len(), 1, "each row is taken once: {second:?}");
    assert!(
        j::take_for_dispatch(db, Queue::Edit, stale_before, 10)
            .await
            .expect("take")
            .is_empty()
    );
    // Once a dispatch goes stale, the row comes back, marked as a resend.
    let later = chrono::Utc::now() + chrono::Duration::seconds(1);
    let resent = j::take_for_dispatch(db, Queue::Edit, later, 10)
        .await
        .expect("take");
    assert_eq!(resent.len(), 3);
    assert!(resent.iter().all(|t| t.resend));
}
