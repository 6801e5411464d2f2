//! Jobs through the API with the embedded workers of the same process: creation, completion,
//! events, bad requests, cancellation and webhooks.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_dbs;
use crate::helpers::{Db, TestApp, spawn_app, spawn_app_with};

both_dbs!(
    a_canary_job_runs_in_the_same_process,
    bad_job_requests_get_precise_problems,
    a_queued_job_is_cancelled_at_once,
    webhooks_are_signed_retried_and_recorded,
);

/// Polls a job until `done` says so, or panics after `limit`.
pub async fn wait_job(
    app: &TestApp,
    token: &str,
    id: &str,
    limit: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let start = Instant::now();
    loop {
        let r = app.get(&format!("/v1/jobs/{id}"), token).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        if done(&r.body) {
            return r.body;
        }
        assert!(
            start.elapsed() < limit,
            "job {id} not done after {limit:?}: {}",
            r.text
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn finished(job: &Value) -> bool {
    matches!(
        job["status"].as_str(),
        Some("succeeded" | "failed" | "cancelled")
    )
}

async fn a_canary_job_runs_in_the_same_process(db: Db) {
    let app = spawn_app(db).await;
    let owner = app.user("q1@example.org").await;
    let p = app.project(&owner, "queue").await;
    let project = uuid::Uuid::parse_str(&p).expect("uuid");
    let mut events = app.state.collab.hub.subscribe(project);

    let r = app
        .call(
            Method::POST,
            &format!("/v1/projects/{p}/jobs"),
            Some(&owner.token),
            Some(json!({"kind": "canary"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let id = r.body["id"].as_str().expect("id").to_owned();
    assert_eq!(r.body["queue"], "edit");
    let request_id = r
        .headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .expect("request id")
        .to_owned();
    assert_eq!(r.body["correlation_id"], request_id.as_str());

    let job = wait_job(&app, &owner.token, &id, Duration::from_secs(10), finished).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["attempts"], 1);
    assert_eq!(job["progress"], 1.0);
    assert!(job["result"]["worker"].is_string(), "{job}");
    assert!(job["started_at"].is_string() && job["finished_at"].is_string());

    // Every state change reached the project's event stream, in order.
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !seen.contains(&"succeeded".to_owned()) && Instant::now() < deadline {
        if let Ok(Ok(ev)) = tokio::time::timeout(Duration::from_secs(1), events.recv()).await {
            let v = serde_json::to_value(ev.as_ref()).expect("event json");
            if v["type"] == "job" && v["job_id"] == id.as_str() {
                seen.push(v["status"].as_str().unwrap_or_default().to_owned());
            }
        }
    }
    assert_eq!(seen, ["queued", "running", "succeeded"]);

    let list = app
        .get(
            &format!("/v1/projects/{p}/jobs?status=succeeded"),
            &owner.token,
        )
        .await;
    assert_eq!(list.body["items"][0]["id"], id.as_str(), "{}", list.text);

    // The job metrics moved.
    let m = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("metrics");
    let text = m.text().await.expect("text");
    assert!(
        text.contains("nve_jobs_total{queue=\"edit\",kind=\"canary\",outcome=\"succeeded\"}"),
        "{text}"
    );
    assert!(text.contains("nve_job_wait_seconds_bucket"), "{text}");
}

async fn bad_job_requests_get_precise_problems(db: Db) {
    let app = spawn_app(db).await;
    let owner = app.user("q2@example.org").await;
    let viewer = app.user("q2v@example.org").await;
    let stranger = app.user("q2s@example.org").await;
    let p = app.project(&owner, "bad jobs").await;
    app.post(
        &format!("/v1/projects/{p}/members"),
        Some(&owner.token),
        json!({"email": "q2v@example.org", "role": "viewer"}),
    )
    .await;
    let path = format!("/v1/projects/{p}/jobs");
    let post = |token: &str, body: Value| {
        let token = token.to_owned();
        let path = path.clone();
        let app = &app;
        async move { app.post(&path, Some(&token), body).await }
    };
    post(
        &owner.token,
        json!({"kind": "chaos", "chaos": {"action": "crash"}}),
    )
    .await
    .assert_problem(403, "forbidden");
    post(
        &owner.token,
        json!({"kind": "canary", "chaos": {"action": "crash"}}),
    )
    .await
    .assert_problem(422, "validation-failed");
    post(&owner.token, json!({"kind": "transcode"}))
        .await
        .assert_problem(422, "validation-failed");
    post(&owner.token, json!({"kind": "canary", "max_attempts": 0}))
        .await
        .assert_problem(422, "validation-failed");
    post(&owner.token, json!({"kind": "canary", "priority": 3}))
        .await
        .assert_problem(422, "validation-failed");
    for (url, code) in [
        ("http://127.0.0.1:9/hook", "destination-refused"),
        ("http://localhost/hook", "destination-refused"),
        ("http://169.254.169.254/latest", "destination-refused"),
        ("http://[::1]/hook", "destination-refused"),
        ("http://10.0.0.8/hook", "destination-refused"),
        ("ftp://example.com/hook", "invalid-url"),
        ("not a url", "invalid-url"),
    ] {
        let r = post(&owner.token, json!({"kind": "canary", "callback_url": url})).await;
        r.assert_problem(422, "validation-failed");
        assert_eq!(
            r.body["errors"][0]["pointer"], "/callback_url",
            "{}",
            r.text
        );
        assert_eq!(r.body["errors"][0]["code"], code, "{url}: {}", r.text);
    }
    post(&viewer.token, json!({"kind": "canary"}))
        .await
        .assert_problem(403, "forbidden");
    post(&stranger.token, json!({"kind": "canary"}))
        .await
        .assert_problem(404, "not-found");
    let r = app
        .send(
            app.client
                .post(app.url(&path))
                .bearer_auth(&owner.token)
                .header("content-type", "application/json")
                .body("{\"kind\": \"canary\""),
        )
        .await;
    r.assert_problem(400, "malformed-json");
    // Nothing of the refused requests was queued.
    let list = app.get(&path, &owner.token).await;
    assert_eq!(list.body["items"], json!([]), "{}", list.text);
}

async fn a_queued_job_is_cancelled_at_once(db: Db) {
    let app = spawn_app_with(db, &[("NVE_JOBS__EMBEDDED_WORKERS", "false")]).await;
    let owner = app.user("q3@example.org").await;
    let p = app.project(&owner, "cancel").await;
    let r = app
        .post(
            &format!("/v1/projects/{p}/jobs"),
            Some(&owner.token),
            json!({"kind": "canary", "priority": "batch"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert_eq!(r.body["priority"], 10);
    let id = r.body["id"].as_str().expect("id").to_owned();
    let c = app
        .call(
            Method::DELETE,
            &format!("/v1/jobs/{id}"),
            Some(&owner.token),
            None,
        )
        .await;
    assert_eq!(c.status, StatusCode::ACCEPTED, "{}", c.text);
    assert_eq!(c.body["status"], "cancelled");
    assert!(c.body["finished_at"].is_string());
}

type Received = Arc<Mutex<Vec<(reqwest::header::HeaderMap, Vec<u8>)>>>;

/// A receiver that answers 500 to its first delivery and 200 afterwards, recording each
/// request's headers and body.
async fn receiver() -> (
    String,
    Arc<Mutex<Vec<(reqwest::header::HeaderMap, Vec<u8>)>>>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen: Received = Arc::default();
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let log = log.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let (head_end, length) = loop {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..pos]).to_lowercase();
                        let length = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        break (pos + 4, length);
                    }
                };
                while buf.len() < head_end + length {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                let mut headers = reqwest::header::HeaderMap::new();
                for line in head.lines().skip(1) {
                    if let Some((k, v)) = line.split_once(':')
                        && let (Ok(k), Ok(v)) = (
                            reqwest::header::HeaderName::from_bytes(k.trim().as_bytes()),
                            reqwest::header::HeaderValue::from_str(v.trim()),
                        )
                    {
                        headers.insert(k, v);
                    }
                }
                let body = buf[head_end..].to_vec();
                let first = {
                    let mut l = log.lock().expect("lock");
                    l.push((headers, body));
                    l.len() == 1
                };
                let status = if first {
                    "500 Internal Server Error"
                } else {
                    "200 OK"
                };
                let _ = sock
                    .write_all(
                        format!(
                            "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                        )
                        .as_bytes(),
                    )
                    .await;
            });
        }
    });
    (format!("http://{addr}/hooks/nve"), seen)
}

async fn webhooks_are_signed_retried_and_recorded(db: Db) {
    use hmac::{Hmac, Mac};
    let app = spawn_app_with(db, &[("NVE_WEBHOOKS__ALLOW_PRIVATE", "true")]).await;
    let owner = app.user("q4@example.org").await;
    let p = app.project(&owner, "hooks").await;
    let (url, seen) = receiver().await;
    let r = app
        .post(
            &format!("/v1/projects/{p}/jobs"),
            Some(&owner.token),
            json!({"kind": "canary", "callback_url": url}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert_eq!(r.body["callback_url"], url.as_str());
    let id = r.body["id"].as_str().expect("id").to_owned();

    // First attempt answered 500; the retry comes after the first backoff (about 5 s).
    let start = Instant::now();
    let hooks = loop {
        let h = app
            .get(&format!("/v1/jobs/{id}/webhooks"), &owner.token)
            .await;
        assert_eq!(h.status, StatusCode::OK, "{}", h.text);
        if h.body[0]["status"] == "delivered" {
            break h.body;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "{}", h.text);
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(hooks[0]["attempts"], 2, "{hooks}");
    assert_eq!(hooks[0]["event"], "job.succeeded");
    let deliveries = hooks[0]["deliveries"].as_array().expect("deliveries");
    assert_eq!(deliveries.len(), 2);
    assert_eq!(deliveries[0]["status_code"], 500);
    assert!(deliveries[0]["error"].is_string());
    assert_eq!(deliveries[1]["status_code"], 200);

    let secret = app.get("/v1/webhooks/secret", &owner.token).await;
    assert_eq!(secret.status, StatusCode::OK, "{}", secret.text);
    let secret = secret.body["secret"].as_str().expect("secret").to_owned();
    assert!(secret.starts_with("whsec_"));
    let requests = seen.lock().expect("lock").clone();
    assert_eq!(requests.len(), 2);
    for (headers, body) in &requests {
        let sig = headers
            .get("nve-signature")
            .and_then(|v| v.to_str().ok())
            .expect("signature header");
        let (t, v1) = sig
            .split_once(',')
            .and_then(|(t, v)| Some((t.strip_prefix("t=")?, v.strip_prefix("v1=")?)))
            .expect("t=…,v1=…");
        // Verify the way the documentation tells receivers to.
        let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("key");
        mac.update(format!("{t}.").as_bytes());
        mac.update(body);
        mac.verify_slice(&hex::decode(v1).expect("hex"))
            .expect("signature verifies");
        let event: Value = serde_json::from_slice(body).expect("json body");
        assert_eq!(event["type"], "job.succeeded");
        assert_eq!(event["data"]["job"]["id"], id.as_str());
        assert_eq!(
            headers.get("nve-webhook-id").and_then(|v| v.to_str().ok()),
            hooks[0]["id"].as_str()
        );
    }
    // Another user's secret does not verify this body.
    let other = app.user("q4x@example.org").await;
    let theirs = app.get("/v1/webhooks/secret", &other.token).await;
    assert_ne!(theirs.body["secret"].as_str(), Some(secret.as_str()));
    app.get(&format!("/v1/jobs/{id}/webhooks"), &other.token)
        .await
        .assert_problem(404, "not-found");
}
