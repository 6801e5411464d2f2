use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::both_dbs;
use crate::helpers::{Db, TestApp, spawn_app_with};
use nve_worker::jobs::{self as store, NewJob, PRIORITY_BATCH, Queue};

both_dbs!(jobs_are_visible_to_members_and_cancellable_by_editors);

async fn enqueue(app: &TestApp, project: Option<&str>, created_by: Option<&str>) -> String {
    let job = store::enqueue(
        &app.state.db,
        NewJob {
            project_id: project.map(|p| uuid::Uuid::parse_str(p).expect("uuid")),
            created_by: created_by.map(|u| uuid::Uuid::parse_str(u).expect("uuid")),
            queue: Queue::Edit,
            kind: "probe".into(),
            payload: json!({"asset_id": "x"}),
            priority: PRIORITY_BATCH,
            max_attempts: 3,
            correlation_id: "req-1".into(),
            callback_url: None,
        },
    )
    .await
    .expect("enqueue");
    job.id.to_string()
}

async fn jobs_are_visible_to_members_and_cancellable_by_editors(db: Db) {
    // No workers: these jobs must stay queued while the test looks at them.
    let app = spawn_app_with(db, &[("NVE_JOBS__EMBEDDED_WORKERS", "false")]).await;
    let owner = app.user("jo@example.org").await;
    let viewer = app.user("jv@example.org").await;
    let stranger = app.user("js@example.org").await;
    let p = app.project(&owner, "jobs").await;
    app.post(
        &format!("/v1/projects/{p}/members"),
        Some(&owner.token),
        json!({"email": "jv@example.org", "role": "viewer"}),
    )
    .await;
    let a = enqueue(&app, Some(&p), Some(&owner.user_id)).await;
    let b = enqueue(&app, Some(&p), Some(&owner.user_id)).await;
    let mine = enqueue(&app, None, Some(&stranger.user_id)).await;

    let got = app.get(&format!("/v1/jobs/{a}"), &viewer.token).await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.text);
    assert_eq!(got.body["status"], "queued");
    assert_eq!(got.body["correlation_id"], "req-1");
    app.get(&format!("/v1/jobs/{a}"), &stranger.token)
        .await
        .assert_problem(404, "not-found");
    app.get(&format!("/v1/jobs/{}", uuid::Uuid::now_v7()), &owner.token)
        .await
        .assert_problem(404, "not-found");
    // A job outside projects belongs to whoever created it.
    assert_eq!(
        app.get(&format!("/v1/jobs/{mine}"), &stranger.token)
            .await
            .status,
        StatusCode::OK
    );
    app.get(&format!("/v1/jobs/{mine}"), &owner.token)
        .await
        .assert_problem(404, "not-found");

    let list = app
        .get(&format!("/v1/projects/{p}/jobs?limit=1"), &viewer.token)
        .await;
    assert_eq!(list.body["items"][0]["id"], b.as_str(), "newest first");
    let next = list.body["next_after"].as_str().expect("more");
    let page2 = app
        .get(
            &format!("/v1/projects/{p}/jobs?limit=1&after={next}"),
            &viewer.token,
        )
        .await;
    assert_eq!(page2.body["items"][0]["id"], a.as_str());
    app.get(&format!("/v1/projects/{p}/jobs"), &stranger.token)
        .await
        .assert_problem(404, "not-found");
    app.get(&format!("/v1/projects/{p}/jobs?status=bogus"), &owner.token)
        .await
        .assert_problem(400, "invalid-parameter");

    app.call(
        Method::DELETE,
        &format!("/v1/jobs/{a}"),
        Some(&viewer.token),
        None,
    )
    .await
    .assert_problem(403, "forbidden");
    app.call(
        Method::DELETE,
        &format!("/v1/jobs/{a}"),
        Some(&stranger.token),
        None,
    )
    .await
    .assert_problem(404, "not-found");
    let cancelled = app
        .call(
            Method::DELETE,
            &format!("/v1/jobs/{a}"),
            Some(&owner.token),
            None,
        )
        .await;
    assert_eq!(cancelled.status, StatusCode::ACCEPTED, "{}", cancelled.text);
    assert_eq!(cancelled.body["status"], "cancelled");
    let queued = app
        .get(
            &format!("/v1/projects/{p}/jobs?status=queued"),
            &owner.token,
        )
        .await;
    assert_eq!(queued.body["items"].as_array().map(Vec::len), Some(1));
}
