//! The distributed mode with real processes: the API on PostgreSQL and Redis, `nve-worker`
//! processes consuming the queues, and the faults the job system must survive (workers killed
//! with SIGKILL, poison jobs, SIGTERM drains, Redis restarts, a large backlog), plus the
//! embedded `nve serve` restarting with a job still queued.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};

use crate::helpers::{JWT_SECRET, PgDatabase, TestApp, spawn_app_on};
use crate::queue::{finished, wait_job};
use nve_entity::jobs as job_rows;

const NVE: &str = env!("CARGO_BIN_EXE_nve");

/// `nve-worker` sits next to `nve` in the target directory (`cargo test --workspace` builds
/// it); a lone `cargo test -p nve-api` builds it here first.
fn worker_bin() -> PathBuf {
    let path = Path::new(NVE).with_file_name("nve-worker");
    if !path.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-p", "nve-worker", "--bin", "nve-worker"])
            .status()
            .expect("run cargo build");
        assert!(status.success(), "cannot build nve-worker");
    }
    path
}

/// A deployment under test: its database, Redis prefix and the environment every process
/// of it gets.
struct Deployment {
    pg: Arc<PgDatabase>,
    redis_url: String,
    prefix: String,
    dir: tempfile::TempDir,
}

impl Deployment {
    async fn new(redis_url: &str) -> Self {
        Deployment {
            pg: Arc::new(PgDatabase::create().await),
            redis_url: redis_url.to_owned(),
            prefix: format!("nve-test-{}", uuid::Uuid::new_v4().simple()),
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn env(&self) -> Vec<(String, String)> {
        vec![
            ("NVE_QUEUE__BACKEND".into(), "redis".into()),
            ("NVE_QUEUE__REDIS_URL".into(), self.redis_url.clone()),
            ("NVE_QUEUE__REDIS_PREFIX".into(), self.prefix.clone()),
            ("NVE_JOBS__CHAOS".into(), "true".into()),
            ("NVE_JOBS__REDISPATCH_AFTER_SECS".into(), "3".into()),
            ("NVE_JOBS__RECONCILE_INTERVAL_MS".into(), "200".into()),
        ]
    }

    /// The API, with no workers of its own.
    async fn api(&self, extra: &[(&str, &str)]) -> TestApp {
        let mut env = self.env();
        env.push(("NVE_JOBS__EMBEDDED_WORKERS".into(), "false".into()));
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        spawn_app_on(Some(self.pg.clone()), &refs).await
    }

    fn worker(&self, name: &str, extra: &[(&str, &str)]) -> Worker {
        let log = self.dir.path().join(format!("{name}.log"));
        let file = std::fs::File::create(&log).expect("log file");
        let mut cmd = Command::new(worker_bin());
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("NVE_DATA_DIR", self.dir.path().join(name))
            .env("NVE_DATABASE__URL", &self.pg.url)
            .env("NVE_AUTH__JWT_SECRET", JWT_SECRET)
            .env("NVE_JOBS__WORKER_BIND", "127.0.0.1:0")
            .env("NVE_LOG__LEVEL", "info")
            .env("NVE_LOG__FORMAT", "json");
        for (k, v) in self.env() {
            cmd.env(k, v);
        }
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let child = cmd
            .args(["run", "--queues", "edit,render"])
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("start nve-worker");
        Worker {
            child,
            log,
            name: name.to_owned(),
        }
    }
}

struct Worker {
    child: Child,
    log: PathBuf,
    name: String,
}

impl Worker {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.pid().to_string()])
            .status()
            .expect("kill");
        assert!(ok.success());
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            assert!(start.elapsed() < limit, "{} did not exit", self.name);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let text = self.log_text();
            let tail: String = text
                .lines()
                .rev()
                .take(40)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n");
            eprintln!("--- {} log (tail) ---\n{tail}", self.name);
        }
    }
}

async fn create(app: &TestApp, token: &str, project: &str, body: Value) -> String {
    let r = app
        .post(&format!("/v1/projects/{project}/jobs"), Some(token), body)
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    r.body["id"].as_str().expect("id").to_owned()
}

async fn row(app: &TestApp, id: &str) -> job_rows::Model {
    job_rows::Entity::find_by_id(uuid::Uuid::parse_str(id).expect("uuid"))
        .one(&app.state.db)
        .await
        .expect("query")
        .expect("job row")
}

/// Chaos children still running anywhere on this machine for `marker`.
fn chaos_children(marker: &str) -> usize {
    let out = Command::new("pgrep")
        .args(["-f", marker])
        .output()
        .expect("pgrep");
    String::from_utf8_lossy(&out.stdout).lines().count()
}

async fn wait_until(limit: Duration, what: &str, mut ok: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !ok().await {
        assert!(start.elapsed() < limit, "{what}: not after {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn count(app: &TestApp, status: &str) -> u64 {
    job_rows::Entity::find()
        .filter(job_rows::Column::Status.eq(status))
        .count(&app.state.db)
        .await
        .expect("count")
}

const REDIS: &str = "redis://127.0.0.1:6379/0";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_workers_complete_500_jobs_each_exactly_once() {
    let d = Deployment::new(REDIS).await;
    let app = d.api(&[]).await;
    let owner = app.user("d1@example.org").await;
    let p = app.project(&owner, "fleet").await;
    let mut events = app
        .state
        .collab
        .hub
        .subscribe(uuid::Uuid::parse_str(&p).expect("uuid"));
    let succeeded_events = Arc::new(std::sync::Mutex::new(HashMap::<String, usize>::new()));
    let tally = succeeded_events.clone();
    tokio::spawn(async move {
        while let Ok(ev) = events.recv().await {
            let v = serde_json::to_value(ev.as_ref()).unwrap_or_default();
            if v["type"] == "job" && v["status"] == "succeeded" {
                let id = v["job_id"].as_str().unwrap_or_default().to_owned();
                *tally.lock().expect("lock").entry(id).or_default() += 1;
            }
        }
    });
    let _a = d.worker("a", &[("NVE_JOBS__EDIT_CONCURRENCY", "8")]);
    let _b = d.worker("b", &[("NVE_JOBS__EDIT_CONCURRENCY", "8")]);

    let mut ids = Vec::new();
    for chunk in 0..25 {
        let batch = (0..20).map(|_| create(&app, &owner.token, &p, json!({"kind": "canary"})));
        ids.extend(futures_util::future::join_all(batch).await);
        let _ = chunk;
    }
    assert_eq!(ids.len(), 500);
    wait_until(Duration::from_secs(120), "500 jobs succeeded", async || {
        count(&app, "succeeded").await == 500
    })
    .await;
    let mut workers = HashSet::new();
    for id in &ids {
        let r = row(&app, id).await;
        assert_eq!(r.status, "succeeded");
        assert_eq!(r.attempts, 1, "job {id} ran more than once");
        let result = r.result.expect("result");
        workers.insert(result["worker"].as_str().unwrap_or_default().to_owned());
    }
    assert_eq!(workers.len(), 2, "both workers took jobs: {workers:?}");
    // Exactly one success was published per job.
    wait_until(Duration::from_secs(10), "500 success events", async || {
        succeeded_events.lock().expect("lock").len() == 500
    })
    .await;
    let tally = succeeded_events.lock().expect("lock").clone();
    assert!(tally.values().all(|n| *n == 1), "{tally:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_job_is_taken_over() {
    let d = Deployment::new(REDIS).await;
    let app = d.api(&[]).await;
    let owner = app.user("d2@example.org").await;
    let p = app.project(&owner, "kill -9").await;
    let fast = [("NVE_JOBS__LEASE_SECS", "3")];
    let mut a = d.worker("a", &fast);
    let mut b = d.worker("b", &fast);
    // A duration no other test uses marks this test's children.
    let id = create(
        &app,
        &owner.token,
        &p,
        json!({"kind": "chaos", "chaos": {"action": "sleep", "duration_ms": 4321}}),
    )
    .await;
    let running = wait_job(&app, &owner.token, &id, Duration::from_secs(10), |j| {
        j["status"] == "running"
    })
    .await;
    assert_eq!(running["attempts"], 1);
    let owner_name = row(&app, &id).await.lease_owner.expect("lease owner");
    let (victim, survivor) = if owner_name.contains(&format!(":{}:", a.pid())) {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };
    victim.signal("-KILL");
    victim.wait_exit(Duration::from_secs(5));
    let killed_at = Instant::now();
    let done = wait_job(&app, &owner.token, &id, Duration::from_secs(30), finished).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["attempts"], 2, "{done}");
    let r = row(&app, &id).await;
    assert!(
        r.lease_owner
            .as_deref()
            .is_some_and(|o| o.contains(&format!(":{}:", survivor.pid()))),
        "{r:?}"
    );
    // Taken over after the lease (3 s) expired, not after apalis' five minutes.
    assert!(killed_at.elapsed() < Duration::from_secs(20));
    assert!(survivor.alive());
    // The dead worker's child noticed its parent was gone and exited.
    wait_until(Duration::from_secs(5), "orphan child exited", async || {
        chaos_children("\"duration_ms\":4321") == 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_job_fails_after_its_attempts_and_others_flow() {
    let d = Deployment::new(REDIS).await;
    let app = d.api(&[]).await;
    let owner = app.user("d3@example.org").await;
    let p = app.project(&owner, "poison").await;
    let mut w = d.worker("w", &[]);
    let poison = create(
        &app,
        &owner.token,
        &p,
        json!({"kind": "chaos", "max_attempts": 3, "chaos": {"action": "crash"}}),
    )
    .await;
    let mut others = Vec::new();
    for _ in 0..10 {
        others.push(create(&app, &owner.token, &p, json!({"kind": "canary"})).await);
    }
    let done = wait_job(
        &app,
        &owner.token,
        &poison,
        Duration::from_secs(40),
        finished,
    )
    .await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["attempts"], 3, "{done}");
    assert_eq!(done["error"]["code"], "crashed", "{done}");
    assert!(
        done["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("SIGABRT")),
        "{done}"
    );
    for id in &others {
        let j = wait_job(&app, &owner.token, id, Duration::from_secs(10), finished).await;
        assert_eq!(j["status"], "succeeded");
    }
    assert!(w.alive(), "the worker survived its children's crashes");
    let after = create(&app, &owner.token, &p, json!({"kind": "canary"})).await;
    let j = wait_job(
        &app,
        &owner.token,
        &after,
        Duration::from_secs(10),
        finished,
    )
    .await;
    assert_eq!(j["status"], "succeeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_hands_running_jobs_to_another_worker_at_once() {
    let d = Deployment::new(REDIS).await;
    let app = d.api(&[]).await;
    let owner = app.user("d4@example.org").await;
    let p = app.project(&owner, "drain").await;
    let mut a = d.worker("a", &[("NVE_JOBS__SHUTDOWN_GRACE_SECS", "1")]);
    let id = create(
        &app,
        &owner.token,
        &p,
        json!({"kind": "chaos", "chaos": {"action": "sleep", "duration_ms": 6000}}),
    )
    .await;
    wait_job(&app, &owner.token, &id, Duration::from_secs(10), |j| {
        j["status"] == "running"
    })
    .await;
    let b = d.worker("b", &[]);
    let start = Instant::now();
    a.signal("-TERM");
    let status = a.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "drained worker exits 0: {status}");
    assert!(
        a.log_text().contains("handing running jobs back"),
        "{}",
        a.log_text()
    );
    let done = wait_job(&app, &owner.token, &id, Duration::from_secs(20), finished).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    // The released start is not counted; the default lease (30 s) was never waited out.
    assert_eq!(done["attempts"], 1, "{done}");
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "{:?}",
        start.elapsed()
    );
    let r = row(&app, &id).await;
    assert!(
        r.lease_owner
            .as_deref()
            .is_some_and(|o| o.contains(&format!(":{}:", b.pid()))),
        "{r:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_running_job_stops_it_within_two_seconds() {
    let d = Deployment::new(REDIS).await;
    let app = d.api(&[]).await;
    let owner = app.user("d5@example.org").await;
    let p = app.project(&owner, "cancel").await;
    let _w = d.worker("w", &[]);
    let id = create(
        &app,
        &owner.token,
        &p,
        json!({"kind": "chaos", "chaos": {"action": "hang"}}),
    )
    .await;
    wait_job(&app, &owner.token, &id, Duration::from_secs(10), |j| {
        j["status"] == "running"
    })
    .await;
    let start = Instant::now();
    let c = app
        .call(
            Method::DELETE,
            &format!("/v1/jobs/{id}"),
            Some(&owner.token),
            None,
        )
        .await;
    assert_eq!(c.status, StatusCode::ACCEPTED, "{}", c.text);
    assert!(c.body["cancel_requested"] == true || c.body["status"] == "cancelled");
    let done = wait_job(&app, &owner.token, &id, Duration::from_secs(2), finished).await;
    assert_eq!(done["status"], "cancelled", "{done}");
    assert!(
        start.elapsed() <= Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
}

/// A Redis server of the test's own, with AOF, that can be stopped and started again.
struct OwnRedis {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl OwnRedis {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let mut r = OwnRedis {
            port,
            dir: tempfile::tempdir().expect("tempdir"),
            child: None,
        };
        r.up();
        r
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    fn up(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
                "--dir",
            ])
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "redis did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn down(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.down();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_accepted_job_completes_across_a_redis_restart() {
    let mut redis = OwnRedis::start();
    let d = Deployment::new(&redis.url()).await;
    let app = d.api(&[]).await;
    let owner = app.user("d6@example.org").await;
    let p = app.project(&owner, "redis restart").await;
    let _w = d.worker("w", &[("NVE_JOBS__EDIT_CONCURRENCY", "2")]);
    let mut accepted = Vec::new();
    for _ in 0..20 {
        accepted.push(
            create(
                &app,
                &owner.token,
                &p,
                json!({"kind": "chaos", "chaos": {"action": "sleep", "duration_ms": 200}}),
            )
            .await,
        );
    }
    // Killed, not shut down: whatever it had not written to its AOF is gone.
    redis.down();
    let r = app
        .post(
            &format!("/v1/projects/{p}/jobs"),
            Some(&owner.token),
            json!({"kind": "canary"}),
        )
        .await;
    r.assert_problem(503, "unavailable");
    assert!(r.headers.contains_key("retry-after"), "{:?}", r.headers);
    tokio::time::sleep(Duration::from_secs(2)).await;
    redis.up();
    // Accepted again once Redis is back.
    wait_until(
        Duration::from_secs(20),
        "API accepts jobs again",
        async || {
            app.post(
                &format!("/v1/projects/{p}/jobs"),
                Some(&owner.token),
                json!({"kind": "canary"}),
            )
            .await
            .status
                == StatusCode::ACCEPTED
        },
    )
    .await;
    for id in &accepted {
        let j = wait_job(&app, &owner.token, id, Duration::from_secs(60), finished).await;
        assert_eq!(j["status"], "succeeded", "{j}");
    }
    // Live events flow again: the worker's publisher and the API's subscription reconnected.
    let mut events = app
        .state
        .collab
        .hub
        .subscribe(uuid::Uuid::parse_str(&p).expect("uuid"));
    let fresh = create(&app, &owner.token, &p, json!({"kind": "canary"})).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut relayed = false;
    while !relayed && Instant::now() < deadline {
        if let Ok(Ok(ev)) = tokio::time::timeout(Duration::from_secs(1), events.recv()).await {
            let v = serde_json::to_value(ev.as_ref()).unwrap_or_default();
            relayed = v["job_id"] == fresh.as_str() && v["status"] == "succeeded";
        }
    }
    assert!(relayed, "no success event for {fresh} after the restart");
    // Refused requests left no job behind: the 20 before the outage, the one that proved
    // recovery, and the one after.
    let total = job_rows::Entity::find()
        .count(&app.state.db)
        .await
        .expect("count");
    assert_eq!(total, 22);
    wait_until(Duration::from_secs(20), "every job succeeded", async || {
        count(&app, "succeeded").await == 22
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backlog_of_20000_jobs_drains_through_two_workers() {
    let d = Deployment::new(REDIS).await;
    let app = d.api(&[("NVE_JOBS__REDIS_BACKLOG", "1000")]).await;
    let owner = app.user("d7@example.org").await;
    let p = uuid::Uuid::parse_str(&app.project(&owner, "backlog").await).expect("uuid");
    let user = uuid::Uuid::parse_str(&owner.user_id).expect("uuid");
    // Enqueued the way the API does (record, then dispatch) while no worker runs.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let db = app.state.db.clone();
        let dispatcher = app.state.dispatcher.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..2500 {
                let row = nve_worker::jobs::enqueue(
                    &db,
                    nve_worker::jobs::NewJob {
                        project_id: Some(p),
                        created_by: Some(user),
                        queue: nve_worker::jobs::Queue::Edit,
                        kind: "canary".into(),
                        payload: json!({}),
                        priority: nve_worker::jobs::PRIORITY_BATCH,
                        max_attempts: 3,
                        correlation_id: "backlog".into(),
                        callback_url: None,
                    },
                )
                .await
                .expect("enqueue");
                nve_worker::runtime::dispatch_new(&db, &dispatcher, &row)
                    .await
                    .expect("dispatch");
            }
        }));
    }
    for t in tasks {
        t.await.expect("enqueue task");
    }
    assert_eq!(count(&app, "queued").await, 20_000);
    // Redis holds at most the configured backlog (1000 here); the database holds the rest.
    let client = redis::Client::open(REDIS).expect("redis");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis connection");
    let held: usize = redis::cmd("LLEN")
        .arg(format!("{}:jobs:edit:batch", d.prefix))
        .query_async(&mut conn)
        .await
        .expect("llen");
    assert_eq!(held, 1000);

    let started = Instant::now();
    let bounded = [
        ("NVE_JOBS__EDIT_CONCURRENCY", "16"),
        ("NVE_JOBS__REDIS_BACKLOG", "1000"),
    ];
    let _a = d.worker("a", &bounded);
    let _b = d.worker("b", &bounded);
    wait_until(
        Duration::from_secs(600),
        "20000 jobs succeeded",
        async || count(&app, "succeeded").await == 20_000,
    )
    .await;
    assert_eq!(count(&app, "failed").await, 0);
    eprintln!("20000-job backlog drained in {:?}", started.elapsed());
}

/// The embedded mode: `nve serve` on SQLite restarted with a job still queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_job_survives_a_restart_of_nve_serve() {
    let dir = tempfile::tempdir().expect("tempdir");
    let serve = |extra: &[(&str, &str)]| {
        let mut cmd = Command::new(NVE);
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("NVE_DATA_DIR", dir.path().join("data"))
            .env("NVE_SERVER__BIND", "127.0.0.1:0")
            .env("NVE_LOG__FORMAT", "json")
            .env("NVE_LOG__LEVEL", "info")
            .env("NVE_UI__DIST_DIR", dir.path().join("no-ui"));
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let mut child = cmd
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start nve serve");
        // Logs go to stderr.
        let stdout = child.stderr.take().expect("stderr");
        let mut lines = BufReader::new(stdout).lines();
        let mut addr = None;
        for line in lines.by_ref() {
            let Ok(line) = line else { break };
            if let Ok(v) = serde_json::from_str::<Value>(&line)
                && v["message"] == "nve listening"
            {
                addr = v["addr"].as_str().map(str::to_owned);
                break;
            }
        }
        // Keep reading so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        (child, format!("http://{}", addr.expect("listening")))
    };
    nve_worker::install_tls_provider();
    let http = reqwest::Client::new();
    // First run: no edit workers, so the job stays queued.
    let (mut first, base) = serve(&[("NVE_JOBS__EDIT_CONCURRENCY", "0")]);
    let reg = http
        .post(format!("{base}/v1/auth/register"))
        .json(&json!({"email": "e@example.org", "password": "correct horse battery", "display_name": "E"}))
        .send()
        .await
        .expect("register");
    assert_eq!(reg.status(), StatusCode::CREATED);
    let login: Value = http
        .post(format!("{base}/v1/auth/login"))
        .json(&json!({"email": "e@example.org", "password": "correct horse battery"}))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("json");
    let token = login["access_token"].as_str().expect("token").to_owned();
    let project: Value = http
        .post(format!("{base}/v1/projects"))
        .bearer_auth(&token)
        .json(&json!({"name": "durable"}))
        .send()
        .await
        .expect("project")
        .json()
        .await
        .expect("json");
    let pid = project["id"].as_str().expect("id");
    let job: Value = http
        .post(format!("{base}/v1/projects/{pid}/jobs"))
        .bearer_auth(&token)
        .json(&json!({"kind": "canary"}))
        .send()
        .await
        .expect("job")
        .json()
        .await
        .expect("json");
    let id = job["id"].as_str().expect("id").to_owned();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let status = |base: String, token: String, id: String| {
        let http = http.clone();
        async move {
            let v: Value = http
                .get(format!("{base}/v1/jobs/{id}"))
                .bearer_auth(token)
                .send()
                .await
                .expect("get")
                .json()
                .await
                .expect("json");
            v["status"].as_str().unwrap_or_default().to_owned()
        }
    };
    assert_eq!(
        status(base.clone(), token.clone(), id.clone()).await,
        "queued"
    );
    let _ = Command::new("kill")
        .args(["-TERM", &first.id().to_string()])
        .status();
    let exit = first.wait().expect("wait");
    assert!(exit.success(), "{exit}");

    // Second run with workers: the queued job completes.
    let (mut second, base) = serve(&[]);
    let start = Instant::now();
    loop {
        let s = status(base.clone(), token.clone(), id.clone()).await;
        if s == "succeeded" {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(15), "still {s}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = second.kill();
    let _ = second.wait();
}
