//! The WebSocket: ordering, resume, fan-out across replicas, authorization, presence.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use nve_pipelines::timeline::{AssetInfo, Context, OpDoc, Timeline, TimelineDoc, TimelineLimits};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::both_dbs;
use crate::helpers::{Db, Session, TestApp, spawn_app, spawn_replicas};
use crate::timeline::color_clip;

both_dbs!(
    strangers_and_viewers_are_refused,
    resume_sends_exactly_the_missed_ops,
    removed_members_are_disconnected_and_presence_is_shared,
    job_events_reach_the_projects_sockets_only,
    many_clients_converge_on_one_history,
    ops_after_a_frame_rate_change_replay_to_the_servers_document,
);

struct Ws {
    inner: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

async fn connect(
    app: &TestApp,
    project: &str,
    token: &str,
) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    let url = format!(
        "{}/v1/projects/{project}/live?access_token={token}",
        app.base.replace("http://", "ws://")
    );
    let (inner, _) = tokio_tungstenite::connect_async(url).await?;
    Ok(Ws { inner })
}

impl Ws {
    async fn send(&mut self, v: Value) {
        self.inner
            .send(Message::Text(v.to_string().into()))
            .await
            .expect("send");
    }

    /// The next JSON message, or `None` when the server closed the socket.
    async fn next(&mut self) -> Option<Value> {
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(20), self.inner.next())
                .await
                .expect("a message within 20 s")?;
            match msg.ok()? {
                Message::Text(t) => return serde_json::from_str(&t).ok(),
                Message::Close(_) => return None,
                _ => continue,
            }
        }
    }

    /// Skips messages until one of type `ty`.
    async fn until(&mut self, ty: &str) -> Value {
        loop {
            let m = self.next().await.expect("socket open");
            if m["type"] == ty {
                return m;
            }
        }
    }

    async fn hello(app: &TestApp, project: &str, s: &Session, last: Option<i64>) -> (Ws, Value) {
        let mut ws = connect(app, project, &s.token).await.expect("connect");
        let welcome = ws.next().await.expect("welcome");
        assert_eq!(welcome["type"], "welcome");
        ws.send(json!({"type": "hello", "last_version": last}))
            .await;
        (ws, welcome)
    }
}

async fn strangers_and_viewers_are_refused(db: Db) {
    let app = spawn_app(db).await;
    let a = app.user("o@example.org").await;
    let v = app.user("v@example.org").await;
    let s = app.user("s@example.org").await;
    let p = app.project(&a, "ws").await;
    app.post(
        &format!("/v1/projects/{p}/members"),
        Some(&a.token),
        json!({"email": "v@example.org", "role": "viewer"}),
    )
    .await;
    for token in [s.token.as_str(), "garbage"] {
        match connect(&app, &p, token).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                assert!(
                    matches!(resp.status().as_u16(), 401 | 404),
                    "{}",
                    resp.status()
                )
            }
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("a non-member got a socket"),
        }
    }
    let (mut ws, welcome) = Ws::hello(&app, &p, &v, None).await;
    assert_eq!(welcome["role"], "viewer");
    ws.until("snapshot").await;
    ws.send(json!({"type": "edit", "base_version": 0, "client_op_id": "v1", "ops": [color_clip("c", 0.0, 1.0)]})).await;
    let err = ws.until("error").await;
    assert_eq!(err["problem"]["code"], "forbidden");
    assert_eq!(err["client_op_id"], "v1");
    assert_eq!(
        app.get(&format!("/v1/projects/{p}/timeline"), &a.token)
            .await
            .body["version"],
        0
    );
}

async fn resume_sends_exactly_the_missed_ops(db: Db) {
    let app = spawn_app(db).await;
    let a = app.user("r@example.org").await;
    let p = app.project(&a, "resume").await;
    let (mut ws, _) = Ws::hello(&app, &p, &a, None).await;
    assert_eq!(ws.until("snapshot").await["version"], 0);
    for i in 0..3 {
        ws.send(
            json!({"type": "edit", "base_version": i, "client_op_id": format!("w{i}"),
                       "ops": [color_clip(&format!("c{i}"), f64::from(i as u8) * 2.0, 1.0)]}),
        )
        .await;
        let ack = ws.until("ack").await;
        assert_eq!(ack["version"], i + 1);
    }
    drop(ws);
    // While disconnected, three more versions arrive over HTTP.
    for i in 3..6 {
        let r = app
            .post(&format!("/v1/projects/{p}/edits"), Some(&a.token),
                  json!({"base_version": i, "client_op_id": format!("h{i}"), "ops": [color_clip(&format!("c{i}"), f64::from(i as u8) * 2.0, 1.0)]}))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
    let (mut ws, _) = Ws::hello(&app, &p, &a, Some(3)).await;
    let mut got = Vec::new();
    loop {
        let m = ws.next().await.expect("open");
        match m["type"].as_str() {
            Some("op") => got.push((
                m["version"].as_i64().unwrap_or(-1),
                m["client_op_id"].as_str().unwrap_or("").to_owned(),
            )),
            Some("presence_list") => break,
            Some("snapshot") => panic!("resume within range must not send a snapshot"),
            _ => {}
        }
    }
    assert_eq!(
        got,
        vec![
            (4, "h3".to_owned()),
            (5, "h4".to_owned()),
            (6, "h5".to_owned())
        ]
    );
    // A live edit after the resume arrives next, once.
    app.post(
        &format!("/v1/projects/{p}/edits"),
        Some(&a.token),
        json!({"base_version": 6, "client_op_id": "h6", "ops": [color_clip("c6", 12.0, 1.0)]}),
    )
    .await;
    let next = ws.until("op").await;
    assert_eq!(next["version"], 7);
}

async fn removed_members_are_disconnected_and_presence_is_shared(db: Db) {
    let app = spawn_app(db).await;
    let a = app.user("pa@example.org").await;
    let b = app.user("pb@example.org").await;
    let p = app.project(&a, "presence").await;
    let add = app
        .post(
            &format!("/v1/projects/{p}/members"),
            Some(&a.token),
            json!({"email": "pb@example.org", "role": "editor"}),
        )
        .await;
    assert_eq!(add.status, StatusCode::CREATED);
    let (mut wa, _) = Ws::hello(&app, &p, &a, None).await;
    wa.until("presence_list").await;
    let (mut wb, _) = Ws::hello(&app, &p, &b, None).await;
    wb.until("presence_list").await;
    wb.send(json!({"type": "presence", "playhead": 4.5, "selection": ["c1"]}))
        .await;
    let seen = wa.until("presence").await;
    assert_eq!(seen["user_id"], b.user_id.as_str());
    assert_eq!(seen["playhead"], 4.5);

    let removed = app
        .call(
            reqwest::Method::DELETE,
            &format!("/v1/projects/{p}/members/{}", b.user_id),
            Some(&a.token),
            None,
        )
        .await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT);
    let start = std::time::Instant::now();
    loop {
        match wb.next().await {
            None => break,
            Some(_) => assert!(start.elapsed() < Duration::from_secs(10), "still connected"),
        }
    }
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "closed after {:?}",
        start.elapsed()
    );
    let left = wa.until("presence").await;
    assert_eq!(left["left"], true);
}

/// Applies the wire ops of an `op` message to a replica document, as a client would.
fn apply_wire(doc: &mut Timeline, msg: &Value) {
    let limits = TimelineLimits::default();
    let none = |_: &str| -> Option<AssetInfo> { None };
    let cx = Context {
        limits: &limits,
        assets: &none,
    };
    for raw in msg["ops"].as_array().expect("ops") {
        let op_doc: OpDoc = serde_json::from_value(raw.clone()).expect("op doc");
        let op = doc.op_from_doc(&op_doc, &cx).expect("op converts");
        let (next, _) = doc.apply(&op, &cx).expect("op applies to the replica");
        *doc = next;
    }
}

fn from_wire(doc: &Value) -> Timeline {
    let limits = TimelineLimits::default();
    let none = |_: &str| -> Option<AssetInfo> { None };
    let cx = Context {
        limits: &limits,
        assets: &none,
    };
    let d: TimelineDoc = serde_json::from_value(doc.clone()).expect("doc");
    Timeline::from_doc(&d, &cx).expect("valid doc")
}

/// Op messages carry each op's seconds on the grid in effect when it applied, which is how a
/// client converts them: replaying them, live or from the log, gives the server's document.
async fn ops_after_a_frame_rate_change_replay_to_the_servers_document(db: Db) {
    let app = spawn_app(db).await;
    let a = app.user("rate@example.org").await;
    let p = app.project(&a, "rate").await;
    let (mut ws, _) = Ws::hello(&app, &p, &a, None).await;
    let snapshot = ws.until("snapshot").await;
    let initial = from_wire(&snapshot["document"]);
    let edits = [
        json!([{"type": "set_output", "patch": {"frame_rate": 25}}, color_clip("c1", 4.0, 0.8)]),
        json!([{"type": "batch", "ops": [
            {"type": "set_output", "patch": {"frame_rate": 24}},
            color_clip("c2", 6.0, 0.5)
        ]}]),
    ];
    for (i, ops) in edits.into_iter().enumerate() {
        let r = app
            .post(
                &format!("/v1/projects/{p}/edits"),
                Some(&a.token),
                json!({"base_version": i, "client_op_id": format!("e{i}"), "ops": ops}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
    // The undo's op is the inverse: the clip goes, then the 25 fps document comes back.
    let r = app
        .post(
            &format!("/v1/projects/{p}/undo"),
            Some(&a.token),
            json!({"client_op_id": "u"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    let server = |version: i64| {
        let app = &app;
        let (p, token) = (p.clone(), a.token.clone());
        async move {
            let path = format!("/v1/projects/{p}/timeline/versions/{version}");
            from_wire(&app.get(&path, &token).await.body["document"])
        }
    };
    let mut live = initial.clone();
    for version in 1..=3 {
        let m = ws.until("op").await;
        assert_eq!(m["version"], version);
        apply_wire(&mut live, &m);
        assert_eq!(live, server(version).await, "live, version {version}");
    }
    // A client resuming from version 0 gets the same ops from the log.
    let (mut ws, _) = Ws::hello(&app, &p, &a, Some(0)).await;
    let mut resumed = initial;
    for version in 1..=3 {
        let m = ws.until("op").await;
        assert_eq!(m["version"], version);
        apply_wire(&mut resumed, &m);
        assert_eq!(resumed, server(version).await, "resumed, version {version}");
    }
}

async fn many_clients_converge_on_one_history(db: Db) {
    const CLIENTS: usize = 20;
    const EDITS: usize = 50;
    let app = spawn_app(db).await;
    let owner = app.user("conv@example.org").await;
    let p = app.project(&owner, "converge").await;
    // One track per client, so concurrent edits never conflict and all must land.
    let tracks: Vec<Value> = (0..CLIENTS)
        .map(|i| json!({"type": "add_track", "track": {"id": format!("T{i}"), "kind": "video"}}))
        .collect();
    let r = app
        .post(
            &format!("/v1/projects/{p}/edits"),
            Some(&owner.token),
            json!({"base_version": 0, "client_op_id": "tracks", "ops": tracks}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let (mut ws, _) = Ws::hello(&app, &p, &owner, None).await;
        let snapshot = ws.until("snapshot").await;
        let base = app.client.clone();
        let url = app.url(&format!("/v1/projects/{p}/edits"));
        let token = owner.token.clone();
        // Client 0 keeps a full replica; the others check they saw the same op sequence, which
        // (apply being deterministic) means the same document, at a fraction of the cost.
        let replicate = c == 0;
        tasks.push(tokio::spawn(async move {
            let mut doc = from_wire(&snapshot["document"]);
            let mut version = snapshot["version"].as_i64().expect("version");
            let mut acked = Vec::new();
            let mut seen: BTreeMap<i64, String> = BTreeMap::new();
            for e in 0..EDITS {
                let op_id = format!("c{c}-e{e}");
                let op = json!({"type": "add_clip", "track_id": format!("T{c}"),
                                "clip": {"id": format!("k{c}-{e}"), "source": {"type": "color", "rgba": "#00ff00"},
                                         "start": e as f64, "duration": 1.0}});
                // Even clients edit over the socket, odd ones over HTTP; both share one path.
                if c % 2 == 0 {
                    ws.send(json!({"type": "edit", "base_version": version, "client_op_id": op_id, "ops": [op]})).await;
                } else {
                    let r = base
                        .post(&url)
                        .bearer_auth(&token)
                        .json(&json!({"base_version": version, "client_op_id": op_id, "ops": [op]}))
                        .send()
                        .await
                        .expect("post");
                    assert_eq!(r.status(), StatusCode::OK);
                    acked.push(op_id.clone());
                }
                // Drain until our own op comes back, applying everything in order.
                loop {
                    let m = ws.next().await.expect("open");
                    match m["type"].as_str() {
                        Some("op") => {
                            let v = m["version"].as_i64().expect("v");
                            assert_eq!(v, version + 1, "ops arrive in order without gaps");
                            if replicate {
                                apply_wire(&mut doc, &m);
                            }
                            version = v;
                            let id = m["client_op_id"].as_str().unwrap_or_default().to_owned();
                            assert!(seen.insert(v, id.clone()).is_none());
                            if id == op_id {
                                break;
                            }
                        }
                        Some("ack") => acked.push(m["client_op_id"].as_str().unwrap_or_default().to_owned()),
                        Some("error") => panic!("edit refused: {m}"),
                        _ => {}
                    }
                }
            }
            (ws, doc, version, acked, seen, replicate)
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.expect("client task"));
    }
    let final_version = 1 + (CLIENTS * EDITS) as i64;
    let current = app
        .get(&format!("/v1/projects/{p}/timeline"), &owner.token)
        .await;
    assert_eq!(current.body["version"], final_version);
    let server_doc = from_wire(&current.body["document"]);

    // Every client catches up to the end, and all hold the server's document.
    let versions = app
        .get(
            &format!("/v1/projects/{p}/timeline/versions?limit=500"),
            &owner.token,
        )
        .await;
    let mut log_ids: Vec<String> = Vec::new();
    let mut after = 0;
    loop {
        let page = app
            .get(
                &format!("/v1/projects/{p}/timeline/versions?after={after}&limit=500"),
                &owner.token,
            )
            .await;
        let items = page.body.as_array().expect("versions").clone();
        if items.is_empty() {
            break;
        }
        after = items
            .last()
            .and_then(|v| v["version"].as_i64())
            .expect("version");
        log_ids.extend(
            items
                .iter()
                .filter_map(|v| v["client_op_id"].as_str().map(str::to_owned)),
        );
    }
    assert_eq!(versions.status, StatusCode::OK);
    assert_eq!(log_ids.len() as i64, final_version);
    let unique: HashSet<&String> = log_ids.iter().collect();
    assert_eq!(
        unique.len(),
        log_ids.len(),
        "each op exactly once in the log"
    );
    for (mut ws, mut doc, mut version, acked, mut seen, replicate) in results {
        for id in &acked {
            assert!(unique.contains(id), "acknowledged op {id} is in the log");
        }
        assert_eq!(acked.len(), EDITS);
        while version < final_version {
            let m = ws.until("op").await;
            let v = m["version"].as_i64().expect("v");
            assert_eq!(v, version + 1);
            if replicate {
                apply_wire(&mut doc, &m);
            }
            seen.insert(v, m["client_op_id"].as_str().unwrap_or_default().to_owned());
            version = v;
        }
        // What this client saw, from its snapshot on, is the log in the log's order.
        let first_seen = *seen.keys().next().expect("saw ops");
        let expected: Vec<&String> = log_ids
            .iter()
            .skip(usize::try_from(first_seen - 1).unwrap_or(0))
            .collect();
        let got: Vec<&String> = seen.values().collect();
        assert_eq!(got, expected, "the stream is the log");
        if replicate {
            assert_eq!(
                doc, server_doc,
                "replaying the stream gives the server's document"
            );
        }
    }
    assert_eq!(
        server_doc
            .tracks
            .iter()
            .map(|t| t.clips.len())
            .sum::<usize>(),
        CLIENTS * EDITS
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_on_one_replica_reaches_a_client_of_the_other() {
    let (one, two) = spawn_replicas().await;
    let a = one.user("rep@example.org").await;
    let p = one.project(&a, "replicated").await;
    // The same account and project are visible through the second replica (shared database).
    let login = two.login("rep@example.org", "correct horse battery").await;
    assert_eq!(login.status, StatusCode::OK);
    let (mut ws, _) = Ws::hello(&two, &p, &a, None).await;
    ws.until("presence_list").await;
    let r = one
        .post(&format!("/v1/projects/{p}/edits"), Some(&a.token), json!({"base_version": 0, "client_op_id": "via-one", "ops": [color_clip("c1", 0.0, 1.0)]}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let op = ws.until("op").await;
    assert_eq!(op["client_op_id"], "via-one");
    assert_eq!(op["version"], 1);
    // And the other way round, over the socket of replica two, seen by a socket on replica one.
    let (mut w1, _) = Ws::hello(&one, &p, &a, Some(1)).await;
    w1.until("presence_list").await;
    ws.send(json!({"type": "edit", "base_version": 1, "client_op_id": "via-two", "ops": [color_clip("c2", 2.0, 1.0)]})).await;
    let seen = w1.until("op").await;
    assert_eq!(seen["client_op_id"], "via-two");
}

async fn job_events_reach_the_projects_sockets_only(db: Db) {
    use nve_api::collab::hub::ProjectEvent;
    let app = spawn_app(db).await;
    let a = app.user("jobs@example.org").await;
    let p = app.project(&a, "with jobs").await;
    let other = app.project(&a, "other").await;
    let (mut here, _) = Ws::hello(&app, &p, &a, None).await;
    here.until("presence_list").await;
    let (mut there, _) = Ws::hello(&app, &other, &a, None).await;
    there.until("presence_list").await;
    let job = uuid::Uuid::now_v7();
    let project = uuid::Uuid::parse_str(&p).expect("uuid");
    for (status, progress) in [("running", Some(0.5)), ("succeeded", Some(1.0))] {
        app.state
            .collab
            .hub
            .publish(
                project,
                ProjectEvent::Job {
                    job_id: job,
                    kind: "render".into(),
                    status: status.into(),
                    progress,
                    detail: json!({"eta_secs": 3}),
                },
            )
            .await;
    }
    let first = here.until("job").await;
    assert_eq!(first["job_id"], job.to_string());
    assert_eq!(first["status"], "running");
    assert_eq!(first["progress"], 0.5);
    assert_eq!(here.until("job").await["status"], "succeeded");
    // The other project's socket hears nothing about it.
    there.send(json!({"type": "ping"})).await;
    assert_eq!(there.next().await.expect("open")["type"], "pong");
}
