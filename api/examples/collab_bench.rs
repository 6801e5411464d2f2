//! Edit round-trip and fan-out latency of the live timeline, on this machine.
//!
//! Boots the real server in-process (embedded mode: SQLite, in-process fan-out), connects one
//! editing client and N watching clients to one project over WebSocket, then sends edits one at
//! a time and measures
//!   round trip: send → the editor's own `ack`,
//!   fan-out:    send → the `op` arriving at each watcher.
//!
//! cargo run --release -p nve-api --example collab_bench -- [watchers=100] [edits=300]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use nve_api::app::Application;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let watchers: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100);
    let edits: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(300);

    let dir = tempfile::tempdir()?;
    let env = vec![
        ("NVE_DATA_DIR".to_owned(), dir.path().display().to_string()),
        ("NVE_SERVER__BIND".to_owned(), "127.0.0.1:0".to_owned()),
        ("NVE_LOG__LEVEL".to_owned(), "warn".to_owned()),
        (
            "NVE_UI__DIST_DIR".to_owned(),
            dir.path().join("none").display().to_string(),
        ),
    ];
    let loaded = nve_config::load_from(&nve_config::LoadOptions::default(), &env)?;
    let app = Application::build(loaded).await?;
    let base = format!("http://{}", app.local_addr());
    tokio::spawn(app.run_until_stopped(std::future::pending()));

    let http = reqwest::Client::new();
    http.post(format!("{base}/v1/auth/register"))
        .json(&json!({"email": "bench@example.org", "password": "bench password", "display_name": "Bench"}))
        .send()
        .await?;
    let login: Value = http
        .post(format!("{base}/v1/auth/login"))
        .json(&json!({"email": "bench@example.org", "password": "bench password"}))
        .send()
        .await?
        .json()
        .await?;
    let token = login["access_token"].as_str().ok_or("no token")?.to_owned();
    let project: Value = http
        .post(format!("{base}/v1/projects"))
        .bearer_auth(&token)
        .json(&json!({"name": "bench"}))
        .send()
        .await?
        .json()
        .await?;
    let project = project["id"].as_str().ok_or("no project")?.to_owned();
    let ws_url = format!(
        "{}/v1/projects/{project}/live?access_token={token}",
        base.replace("http://", "ws://")
    );

    // Watchers record when each version reaches them.
    let arrivals: Arc<Mutex<HashMap<i64, Vec<Instant>>>> = Arc::default();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(watchers.max(1));
    for _ in 0..watchers {
        let (mut ws, _) = tokio_tungstenite::connect_async(&ws_url).await?;
        ws.send(Message::Text(json!({"type": "hello"}).to_string().into()))
            .await?;
        let arrivals = arrivals.clone();
        let ready = ready_tx.clone();
        tokio::spawn(async move {
            while let Some(Ok(msg)) = ws.next().await {
                let Message::Text(t) = msg else { continue };
                let Ok(v) = serde_json::from_str::<Value>(&t) else {
                    continue;
                };
                match v["type"].as_str() {
                    Some("presence_list") => {
                        let _ = ready.send(()).await;
                    }
                    Some("op") => {
                        let now = Instant::now();
                        if let Some(version) = v["version"].as_i64() {
                            arrivals
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .entry(version)
                                .or_default()
                                .push(now);
                        }
                    }
                    _ => {}
                }
            }
        });
    }
    for _ in 0..watchers {
        ready_rx.recv().await;
    }

    let (mut editor, _) = tokio_tungstenite::connect_async(&ws_url).await?;
    editor
        .send(Message::Text(json!({"type": "hello"}).to_string().into()))
        .await?;
    let mut version = 0i64;
    loop {
        let Some(Ok(Message::Text(t))) = editor.next().await else {
            return Err("editor closed".into());
        };
        let v: Value = serde_json::from_str(&t)?;
        if v["type"] == "snapshot" {
            version = v["version"].as_i64().unwrap_or(0);
        }
        if v["type"] == "presence_list" {
            break;
        }
    }
    // One clip, moved back and forth: the document stays small, as in an interactive session.
    let add = json!({"type": "add_clip", "track_id": "V1",
        "clip": {"id": "c", "source": {"type": "color", "rgba": "#336699"}, "start": 0, "duration": 1}});
    let mut sent: HashMap<i64, Instant> = HashMap::new();
    let mut round_trips = Vec::with_capacity(edits);
    let started = Instant::now();
    for i in 0..=edits {
        let op = if i == 0 {
            add.clone()
        } else {
            json!({"type": "move_clip", "clip_id": "c", "start": (i % 20) as f64 + 1.0})
        };
        let t0 = Instant::now();
        let msg = json!({"type": "edit", "base_version": version, "client_op_id": format!("e{i}"), "ops": [op]});
        editor.send(Message::Text(msg.to_string().into())).await?;
        loop {
            let Some(Ok(Message::Text(t))) = editor.next().await else {
                return Err("editor closed".into());
            };
            let v: Value = serde_json::from_str(&t)?;
            match v["type"].as_str() {
                Some("ack") => {
                    version = v["version"].as_i64().ok_or("ack without version")?;
                    if i > 0 {
                        round_trips.push(t0.elapsed().as_secs_f64() * 1000.0);
                    }
                    sent.insert(version, t0);
                    break;
                }
                Some("error") => return Err(format!("edit refused: {v}").into()),
                _ => {}
            }
        }
    }
    let wall = started.elapsed();
    // Let the last ops reach everyone.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let done = arrivals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&version)
            .map_or(0, Vec::len)
            >= watchers;
        if done || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut fanout = Vec::new();
    let mut missing = 0usize;
    {
        let arrivals = arrivals.lock().unwrap_or_else(|p| p.into_inner());
        for (v, t0) in &sent {
            if *v == 1 {
                continue; // the add, before steady state
            }
            let got = arrivals.get(v).map_or(&[][..], Vec::as_slice);
            missing += watchers.saturating_sub(got.len());
            fanout.extend(
                got.iter()
                    .map(|t| t.duration_since(*t0).as_secs_f64() * 1000.0),
            );
        }
    }
    round_trips.sort_by(f64::total_cmp);
    fanout.sort_by(f64::total_cmp);
    let out = format!(
        "edits={edits} watchers={watchers} wall={:.2}s ({:.0} edits/s)\n\
         round trip (send -> own ack):        p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms\n\
         fan-out (send -> op at each watcher): p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms  ({} deliveries, {} missing)",
        wall.as_secs_f64(),
        edits as f64 / wall.as_secs_f64(),
        percentile(&round_trips, 0.5),
        percentile(&round_trips, 0.99),
        round_trips.last().copied().unwrap_or(f64::NAN),
        percentile(&fanout, 0.5),
        percentile(&fanout, 0.99),
        fanout.last().copied().unwrap_or(f64::NAN),
        fanout.len(),
        missing,
    );
    std::io::Write::write_all(&mut std::io::stdout(), format!("{out}\n").as_bytes())?;
    Ok(())
}
