use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_dbs;
use crate::helpers::{Db, Session, TestApp, spawn_app};

both_dbs!(
    edits_history_and_idempotency,
    concurrent_edits_rebase_or_conflict,
    undo_redo_and_restore,
    whole_document_replacement_needs_if_match,
    timeline_authorization,
    document_limits_come_from_configuration,
    an_edit_snaps_each_op_on_the_grid_it_applies_on,
    tracks_added_together_without_ids_each_get_one,
);

async fn document_limits_come_from_configuration(db: Db) {
    let app = crate::helpers::spawn_app_with(db, &[("NVE_TIMELINE__MAX_CLIPS", "2")]).await;
    let a = app.user("lim@example.org").await;
    let p = app.project(&a, "limits").await;
    let ok = edit(
        &app,
        &a,
        &p,
        0,
        "l1",
        json!([color_clip("c1", 0.0, 1.0), color_clip("c2", 1.0, 1.0)]),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    let over = edit(&app, &a, &p, 1, "l2", json!([color_clip("c3", 2.0, 1.0)])).await;
    over.assert_problem(422, "invalid-edit");
    assert!(over.text.contains("too-many-clips"), "{}", over.text);
}

pub fn color_clip(id: &str, start: f64, duration: f64) -> Value {
    json!({"type": "add_clip", "track_id": "V1",
           "clip": {"id": id, "source": {"type": "color", "rgba": "#ff0000"}, "start": start, "duration": duration}})
}

async fn edit(
    app: &TestApp,
    s: &Session,
    project: &str,
    base: i64,
    op_id: &str,
    ops: Value,
) -> crate::helpers::Reply {
    app.post(
        &format!("/v1/projects/{project}/edits"),
        Some(&s.token),
        json!({"base_version": base, "client_op_id": op_id, "ops": ops}),
    )
    .await
}

fn clips(doc: &Value, track: usize) -> Vec<String> {
    doc["tracks"][track]["clips"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|c| c["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

async fn edits_history_and_idempotency(db: Db) {
    let app = spawn_app(db).await;
    let a = app.user("ed@example.org").await;
    let p = app.project(&a, "tl").await;
    let t = app
        .get(&format!("/v1/projects/{p}/timeline"), &a.token)
        .await;
    assert_eq!(t.status, StatusCode::OK, "{}", t.text);
    assert_eq!(t.body["version"], 0);
    assert_eq!(t.headers["etag"], "\"0\"");
    assert_eq!(t.body["document"]["tracks"][0]["id"], "V1");
    assert_eq!(t.body["document"]["tracks"][1]["kind"], "audio");

    let r = edit(
        &app,
        &a,
        &p,
        0,
        "op-1",
        json!([color_clip("c1", 0.0, 2.0), color_clip("c2", 2.0, 1.5)]),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["version"], 1);
    assert_eq!(r.body["duplicate"], false);
    // The same client op id again: acknowledged, not applied twice.
    let again = edit(
        &app,
        &a,
        &p,
        0,
        "op-1",
        json!([color_clip("c1", 0.0, 2.0), color_clip("c2", 2.0, 1.5)]),
    )
    .await;
    assert_eq!(again.body["version"], 1);
    assert_eq!(again.body["duplicate"], true);

    // Seconds snap to the 30 fps grid: 1.01 s is frame 30.
    let r = edit(
        &app,
        &a,
        &p,
        1,
        "op-2",
        json!([{"type": "move_clip", "clip_id": "c2", "start": 3.01}]),
    )
    .await;
    assert_eq!(r.body["version"], 2, "{}", r.text);
    let t = app
        .get(&format!("/v1/projects/{p}/timeline"), &a.token)
        .await;
    assert_eq!(clips(&t.body["document"], 0), ["c1", "c2"]);
    assert_eq!(t.body["document"]["tracks"][0]["clips"][1]["start"], 3.0);

    // A bad op is refused with a pointer into the request, and nothing changes.
    let bad = edit(
        &app,
        &a,
        &p,
        2,
        "op-3",
        json!([{"type": "move_clip", "clip_id": "nope", "start": 1}]),
    )
    .await;
    bad.assert_problem(422, "invalid-edit");
    assert_eq!(bad.body["errors"][0]["pointer"], "/ops");
    let shape = edit(
        &app,
        &a,
        &p,
        2,
        "op-4",
        json!([{"type": "add_clip", "track_id": "V1", "clip": {"id": 5}}]),
    )
    .await;
    shape.assert_problem(422, "validation-failed");
    assert!(
        shape.body["errors"][0]["pointer"]
            .as_str()
            .unwrap_or_default()
            .starts_with("/ops/0"),
        "{}",
        shape.text
    );
    let overlap = edit(&app, &a, &p, 2, "op-5", json!([color_clip("c3", 1.0, 1.0)])).await;
    overlap.assert_problem(422, "invalid-edit");
    let empty = edit(&app, &a, &p, 2, "op-6", json!([])).await;
    empty.assert_problem(422, "validation-failed");

    let versions = app
        .get(&format!("/v1/projects/{p}/timeline/versions"), &a.token)
        .await;
    let list = versions.body.as_array().expect("versions");
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["client_op_id"], "op-1");
    assert_eq!(list[1]["kind"], "edit");
    let v1 = app
        .get(&format!("/v1/projects/{p}/timeline/versions/1"), &a.token)
        .await;
    assert_eq!(v1.body["document"]["tracks"][0]["clips"][1]["start"], 2.0);
    app.get(&format!("/v1/projects/{p}/timeline/versions/9"), &a.token)
        .await
        .assert_problem(404, "not-found");
}

/// The output frame rate and the clip on track 0 at `index`: (start, duration) in seconds.
async fn rate_and_clip(app: &TestApp, s: &Session, path: &str, index: usize) -> (Value, Value) {
    let t = app.get(path, &s.token).await;
    assert_eq!(t.status, StatusCode::OK, "{}", t.text);
    let doc = &t.body["document"];
    let clip = &doc["tracks"][0]["clips"][index];
    (
        doc["output"]["frame_rate"].clone(),
        json!([clip["start"], clip["duration"]]),
    )
}

async fn an_edit_snaps_each_op_on_the_grid_it_applies_on(db: Db) {
    let app = spawn_app(db).await;
    let a = app.user("grid@example.org").await;
    let p = app.project(&a, "grid").await;
    let current = format!("/v1/projects/{p}/timeline");
    // A 30 fps timeline goes to 25 fps, then gets a 0.8 s clip at 4 s: 20 frames from frame
    // 100 of the new grid (on the old grid it became 24 frames from 120: 0.96 s at 4.8 s).
    let r = edit(
        &app,
        &a,
        &p,
        0,
        "g1",
        json!([
            {"type": "set_output", "patch": {"frame_rate": 25}},
            color_clip("c1", 4.0, 0.8)
        ]),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let at_25 = (json!(25), json!([4.0, 0.8]));
    assert_eq!(rate_and_clip(&app, &a, &current, 0).await, at_25);
    // The same inside one posted batch.
    let r = edit(
        &app,
        &a,
        &p,
        1,
        "g2",
        json!([{"type": "batch", "ops": [
            {"type": "set_output", "patch": {"frame_rate": 24}},
            color_clip("c2", 6.0, 0.5)
        ]}]),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        rate_and_clip(&app, &a, &current, 1).await,
        (json!(24), json!([6.0, 0.5]))
    );
    // History rebuilds version 1 by replaying the logged (frame) ops.
    let v1 = format!("/v1/projects/{p}/timeline/versions/1");
    assert_eq!(rate_and_clip(&app, &a, &v1, 0).await, at_25);
    // Undo and redo go back and forth between exactly these documents.
    let undo = app
        .post(
            &format!("/v1/projects/{p}/undo"),
            Some(&a.token),
            json!({"client_op_id": "u1"}),
        )
        .await;
    assert_eq!(undo.status, StatusCode::OK, "{}", undo.text);
    assert_eq!(rate_and_clip(&app, &a, &current, 0).await, at_25);
    let undo = app
        .post(
            &format!("/v1/projects/{p}/undo"),
            Some(&a.token),
            json!({"client_op_id": "u2"}),
        )
        .await;
    assert_eq!(undo.status, StatusCode::OK, "{}", undo.text);
    let t = app.get(&current, &a.token).await;
    assert_eq!(t.body["document"]["output"]["frame_rate"], 30);
    assert_eq!(clips(&t.body["document"], 0), Vec::<String>::new());
    let redo = app
        .post(
            &format!("/v1/projects/{p}/redo"),
            Some(&a.token),
            json!({"client_op_id": "r1"}),
        )
        .await;
    assert_eq!(redo.status, StatusCode::OK, "{}", redo.text);
    assert_eq!(rate_and_clip(&app, &a, &current, 0).await, at_25);
}

/// The ids of the document's tracks at `path`, bottom to top.
async fn track_ids(app: &TestApp, s: &Session, path: &str) -> Vec<String> {
    let t = app.get(path, &s.token).await;
    assert_eq!(t.status, StatusCode::OK, "{}", t.text);
    t.body["document"]["tracks"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

async fn tracks_added_together_without_ids_each_get_one(db: Db) {
    let app = spawn_app(db).await;
    let a = app.user("tracks@example.org").await;
    let p = app.project(&a, "tracks").await;
    let current = format!("/v1/projects/{p}/timeline");
    let start = track_ids(&app, &a, &current).await;
    assert_eq!(start.len(), 2, "{start:?}");
    let overlay = json!({"type": "add_track", "track": {"kind": "overlay"}});
    // Two id-less tracks in one batch: each is named and stacked after the one before it
    // (both used to be `track-2` at index 2, refused as `duplicate-id`).
    let r = edit(
        &app,
        &a,
        &p,
        0,
        "t1",
        json!([{"type": "batch", "ops": [overlay, overlay]}]),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let with = |ids: &[&str]| {
        let mut all = start.clone();
        all.extend(ids.iter().map(|id| (*id).to_owned()));
        all
    };
    let v1 = with(&["track-2", "track-3"]);
    assert_eq!(track_ids(&app, &a, &current).await, v1);
    // The same with the ops of one edit.
    let r = edit(&app, &a, &p, 1, "t2", json!([overlay, overlay])).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let v2 = with(&["track-2", "track-3", "track-4", "track-5"]);
    assert_eq!(track_ids(&app, &a, &current).await, v2);
    // History replays the logged ops, which hold the ids given.
    let version = |n: i64| format!("/v1/projects/{p}/timeline/versions/{n}");
    assert_eq!(track_ids(&app, &a, &version(1)).await, v1);
    assert_eq!(track_ids(&app, &a, &version(2)).await, v2);
    // Undo and redo go back and forth between exactly these documents.
    for (n, expected) in [(1, &v1), (2, &start)] {
        let undo = app
            .post(
                &format!("/v1/projects/{p}/undo"),
                Some(&a.token),
                json!({"client_op_id": format!("u{n}")}),
            )
            .await;
        assert_eq!(undo.status, StatusCode::OK, "{}", undo.text);
        assert_eq!(&track_ids(&app, &a, &current).await, expected);
    }
    for (n, expected) in [(1, &v1), (2, &v2)] {
        let redo = app
            .post(
                &format!("/v1/projects/{p}/redo"),
                Some(&a.token),
                json!({"client_op_id": format!("r{n}")}),
            )
            .await;
        assert_eq!(redo.status, StatusCode::OK, "{}", redo.text);
        assert_eq!(&track_ids(&app, &a, &current).await, expected);
    }
}

async fn concurrent_edits_rebase_or_conflict(db: Db) {
    let app = spawn_app(db).await;
    let a = app.user("a1@example.org").await;
    let p = app.project(&a, "c").await;
    edit(
        &app,
        &a,
        &p,
        0,
        "base",
        json!([color_clip("c1", 0.0, 2.0), color_clip("c2", 5.0, 1.0)]),
    )
    .await;
    // Two edits made against version 1: one moves c1, one sets c2's opacity. They touch
    // different clips, so the second is applied on top of the first.
    let first = edit(
        &app,
        &a,
        &p,
        1,
        "x1",
        json!([{"type": "move_clip", "clip_id": "c1", "start": 0.5}]),
    )
    .await;
    assert_eq!(first.body["version"], 2, "{}", first.text);
    let other = edit(
        &app,
        &a,
        &p,
        1,
        "x2",
        json!([{"type": "add_track", "track": {"id": "V2", "kind": "video"}}]),
    )
    .await;
    assert_eq!(other.status, StatusCode::OK, "{}", other.text);
    assert_eq!(other.body["version"], 3);
    // An edit of c1 made against version 1 conflicts with version 2's move of c1.
    let clash = edit(
        &app,
        &a,
        &p,
        1,
        "x3",
        json!([{"type": "move_clip", "clip_id": "c1", "start": 1.0}]),
    )
    .await;
    clash.assert_problem(409, "edit-conflict");
    assert_eq!(clash.body["current_version"], 3);
    let future = edit(
        &app,
        &a,
        &p,
        99,
        "x4",
        json!([{"type": "remove_clip", "clip_id": "c2"}]),
    )
    .await;
    future.assert_problem(409, "edit-conflict");
}

async fn undo_redo_and_restore(db: Db) {
    let app = spawn_app(db).await;
    let a = app.user("u@example.org").await;
    let b = app.user("u2@example.org").await;
    let p = app.project(&a, "u").await;
    app.post(
        &format!("/v1/projects/{p}/members"),
        Some(&a.token),
        json!({"email": "u2@example.org", "role": "editor"}),
    )
    .await;
    edit(&app, &a, &p, 0, "a1", json!([color_clip("c1", 0.0, 2.0)])).await;
    edit(&app, &b, &p, 1, "b1", json!([color_clip("c2", 4.0, 1.0)])).await;
    edit(
        &app,
        &a,
        &p,
        2,
        "a2",
        json!([{"type": "move_clip", "clip_id": "c1", "start": 2.0}]),
    )
    .await;

    let undo = |s: &Session, id: &str| {
        let body = json!({"client_op_id": id});
        let path = format!("/v1/projects/{p}/undo");
        let token = s.token.clone();
        let app = &app;
        async move { app.post(&path, Some(&token), body).await }
    };
    // A's undo reverts A's move, not B's clip.
    let u = undo(&a, "undo-1").await;
    assert_eq!(u.body["version"], 4, "{}", u.text);
    let doc = app
        .get(&format!("/v1/projects/{p}/timeline"), &a.token)
        .await
        .body;
    assert_eq!(doc["document"]["tracks"][0]["clips"][0]["start"], 0.0);
    assert_eq!(clips(&doc["document"], 0), ["c1", "c2"]);
    // Then A's add of c1.
    undo(&a, "undo-2").await;
    let doc = app
        .get(&format!("/v1/projects/{p}/timeline"), &a.token)
        .await
        .body;
    assert_eq!(clips(&doc["document"], 0), ["c2"]);
    undo(&a, "undo-3")
        .await
        .assert_problem(409, "nothing-to-undo");
    // Redo brings c1 back.
    let r = app
        .post(
            &format!("/v1/projects/{p}/redo"),
            Some(&a.token),
            json!({"client_op_id": "redo-1"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let doc = app
        .get(&format!("/v1/projects/{p}/timeline"), &a.token)
        .await
        .body;
    assert_eq!(clips(&doc["document"], 0), ["c1", "c2"]);

    // Restore version 1 (only c1), as a new version, and snapshots name versions.
    let snap = app
        .post(
            &format!("/v1/projects/{p}/snapshots"),
            Some(&a.token),
            json!({"name": "before restore"}),
        )
        .await;
    assert_eq!(snap.status, StatusCode::CREATED, "{}", snap.text);
    let restored = app
        .post(
            &format!("/v1/projects/{p}/timeline/restore"),
            Some(&a.token),
            json!({"version": 1, "client_op_id": "rs"}),
        )
        .await;
    assert_eq!(restored.status, StatusCode::OK, "{}", restored.text);
    let doc = app
        .get(&format!("/v1/projects/{p}/timeline"), &a.token)
        .await
        .body;
    assert_eq!(clips(&doc["document"], 0), ["c1"]);
    let snaps = app
        .get(&format!("/v1/projects/{p}/snapshots"), &a.token)
        .await;
    assert_eq!(snaps.body[0]["name"], "before restore");
    assert_eq!(snaps.body[0]["version"], 6);
}

async fn whole_document_replacement_needs_if_match(db: Db) {
    let app = spawn_app(db).await;
    let a = app.user("put@example.org").await;
    let p = app.project(&a, "put").await;
    let doc = json!({
        "output": {"width": 1280, "height": 720, "frame_rate": {"num": 30000, "den": 1001}},
        "tracks": [{"id": "V1", "kind": "video", "clips": [
            {"id": "bg", "source": {"type": "color", "rgba": "#000000"}, "duration": 3.0}
        ]}]
    });
    let path = format!("/v1/projects/{p}/timeline");
    let put = |if_match: Option<&str>, body: Value| {
        let mut req = app
            .client
            .put(app.url(&path))
            .bearer_auth(&a.token)
            .json(&body);
        if let Some(v) = if_match {
            req = req.header("if-match", v);
        }
        app.send(req)
    };
    put(None, doc.clone())
        .await
        .assert_problem(428, "if-match-required");
    put(Some("\"5\""), doc.clone())
        .await
        .assert_problem(412, "version-mismatch");
    let ok = put(Some("\"0\""), doc.clone()).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    assert_eq!(ok.body["version"], 1);
    assert_eq!(ok.headers["etag"], "\"1\"");
    assert_eq!(ok.body["document"]["output"]["width"], 1280);
    let invalid = json!({"output": {"width": 1281, "height": 720}, "tracks": [{"id": "V1", "kind": "video", "clips": [
        {"id": "x", "source": {"type": "asset", "asset_id": "00000000-0000-0000-0000-000000000000"}, "duration": 1}]}]});
    let bad = put(Some("\"1\""), invalid).await;
    bad.assert_problem(422, "validation-failed");
    let pointers: Vec<&str> = bad.body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["pointer"].as_str())
        .collect();
    assert!(
        pointers.iter().any(|p| p.starts_with("/output")),
        "{pointers:?}"
    );
    assert!(
        pointers.iter().any(|p| p.starts_with("/tracks/0/clips/0")),
        "{pointers:?}"
    );
    // The replacement is in the history and can be undone.
    let u = app
        .post(
            &format!("/v1/projects/{p}/undo"),
            Some(&a.token),
            json!({"client_op_id": "u"}),
        )
        .await;
    assert_eq!(u.status, StatusCode::OK, "{}", u.text);
    let now = app.get(&path, &a.token).await;
    assert_eq!(now.body["document"]["output"]["width"], 1920);
}

async fn timeline_authorization(db: Db) {
    let app = spawn_app(db).await;
    let a = app.user("own@example.org").await;
    let v = app.user("view@example.org").await;
    let s = app.user("str@example.org").await;
    let p = app.project(&a, "auth").await;
    app.post(
        &format!("/v1/projects/{p}/members"),
        Some(&a.token),
        json!({"email": "view@example.org", "role": "viewer"}),
    )
    .await;
    assert_eq!(
        app.get(&format!("/v1/projects/{p}/timeline"), &v.token)
            .await
            .status,
        StatusCode::OK
    );
    edit(&app, &v, &p, 0, "v1", json!([color_clip("c", 0.0, 1.0)]))
        .await
        .assert_problem(403, "forbidden");
    app.post(
        &format!("/v1/projects/{p}/undo"),
        Some(&v.token),
        json!({"client_op_id": "x"}),
    )
    .await
    .assert_problem(403, "forbidden");
    for path in ["timeline", "timeline/versions", "snapshots"] {
        app.get(&format!("/v1/projects/{p}/{path}"), &s.token)
            .await
            .assert_problem(404, "not-found");
    }
    edit(&app, &s, &p, 0, "s1", json!([color_clip("c", 0.0, 1.0)]))
        .await
        .assert_problem(404, "not-found");
    let put = app
        .send(
            app.client
                .request(Method::PUT, app.url(&format!("/v1/projects/{p}/timeline")))
                .bearer_auth(&s.token)
                .header("if-match", "\"0\"")
                .json(&json!({"tracks": []})),
        )
        .await;
    put.assert_problem(404, "not-found");
    assert_eq!(
        app.get(&format!("/v1/projects/{p}/timeline"), &a.token)
            .await
            .body["version"],
        0
    );
}
