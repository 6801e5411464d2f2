//! Queue benchmark: enqueue → completion throughput of no-op (`canary`) jobs through 1 and 2
//! `nve-worker` processes on Redis + PostgreSQL, the queued → started latency under load and
//! on an idle queue, and the raw Redis floor (`redis-benchmark` LPUSH/RPOP) on the same
//! machine, side by side. Run it with `bench/queue.sh` (release build).
//!
//! Each job is what the API does after validation: a row inserted in PostgreSQL, its id
//! pushed to Redis, claimed by a worker (one `UPDATE … RETURNING`), completed (one guarded
//! `UPDATE`) and its events published.

// The report on stdout is what this program is for.
#![allow(clippy::print_stdout)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nve_entity::jobs as job_rows;
use nve_migration::MigratorTrait;
use nve_worker::dispatch::Dispatcher;
use nve_worker::jobs::{self, NewJob, PRIORITY_INTERACTIVE, Queue};
use nve_worker::testing::PgDatabase;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, EntityTrait, PaginatorTrait};

const REDIS: &str = "redis://127.0.0.1:6379/0";

fn worker_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/examples/queue_bench → target/<profile>/nve-worker
    exe.parent()
        .and_then(|p| p.parent())
        .map(|p| p.join("nve-worker"))
        .expect("target dir")
}

fn start_workers(n: usize, db_url: &str, prefix: &str, concurrency: usize) -> Vec<Child> {
    (0..n)
        .map(|i| {
            let data = std::env::temp_dir().join(format!("nve-bench-{prefix}-{i}"));
            Command::new(worker_bin())
                .env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .env("NVE_DATA_DIR", data)
                .env("NVE_DATABASE__URL", db_url)
                .env("NVE_DATABASE__MAX_CONNECTIONS", "40")
                .env(
                    "NVE_AUTH__JWT_SECRET",
                    "bench-secret-0123456789abcdef0123456789ab",
                )
                .env("NVE_QUEUE__BACKEND", "redis")
                .env("NVE_QUEUE__REDIS_URL", REDIS)
                .env("NVE_QUEUE__REDIS_PREFIX", prefix)
                .env("NVE_JOBS__WORKER_BIND", "127.0.0.1:0")
                .env("NVE_LOG__LEVEL", "warn")
                .args([
                    "run",
                    "--queues",
                    "edit",
                    "--concurrency",
                    &concurrency.to_string(),
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("start nve-worker (build it with --release first)")
        })
        .collect()
}

fn stop(workers: Vec<Child>) {
    for mut w in workers {
        let _ = Command::new("kill")
            .args(["-TERM", &w.id().to_string()])
            .status();
        let _ = w.wait();
    }
}

fn new_job() -> NewJob {
    NewJob {
        project_id: None,
        created_by: None,
        queue: Queue::Edit,
        kind: "canary".into(),
        payload: serde_json::json!({}),
        priority: PRIORITY_INTERACTIVE,
        max_attempts: 3,
        correlation_id: "bench".into(),
        callback_url: None,
    }
}

async fn succeeded(db: &DatabaseConnection) -> u64 {
    use sea_orm::{ColumnTrait, QueryFilter};
    job_rows::Entity::find()
        .filter(job_rows::Column::Status.eq("succeeded"))
        .count(db)
        .await
        .unwrap_or(0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// queued → started of every job, in ms, sorted.
async fn waits(db: &DatabaseConnection) -> (Vec<f64>, f64) {
    let rows = job_rows::Entity::find().all(db).await.expect("rows");
    let mut w: Vec<f64> = rows
        .iter()
        .filter_map(|r| r.started_at.map(|s| (s - r.queued_at).num_microseconds()))
        .flatten()
        .map(|us| us as f64 / 1000.0)
        .collect();
    w.sort_by(f64::total_cmp);
    let first = rows.iter().map(|r| r.queued_at).min();
    let last = rows.iter().filter_map(|r| r.finished_at).max();
    let span = match (first, last) {
        (Some(a), Some(b)) => (b - a).num_microseconds().unwrap_or(0) as f64 / 1e6,
        _ => f64::NAN,
    };
    (w, span)
}

async fn run(workers: usize, n: usize, pg: &PgDatabase) -> (f64, f64, f64, f64, f64) {
    let db = Database::connect(&pg.url).await.expect("db");
    db.execute_unprepared("DELETE FROM jobs")
        .await
        .expect("clear");
    let prefix = format!("nve-bench-{}", uuid::Uuid::new_v4().simple());
    let dispatcher = Dispatcher::redis(REDIS, &prefix, 1000)
        .await
        .expect("redis");
    let procs = start_workers(workers, &pg.url, &prefix, 32);
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // Throughput: 16 enqueuers as fast as they go.
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let db = db.clone();
        let d = dispatcher.clone();
        let per = n / 16;
        tasks.push(tokio::spawn(async move {
            for _ in 0..per {
                let row = jobs::enqueue(&db, new_job()).await.expect("enqueue");
                nve_worker::runtime::dispatch_new(&db, &d, &row)
                    .await
                    .expect("dispatch");
            }
        }));
    }
    for t in tasks {
        t.await.expect("enqueuer");
    }
    let total = (n / 16 * 16) as u64;
    while succeeded(&db).await < total {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let wall = start.elapsed().as_secs_f64();
    let (load_waits, span) = waits(&db).await;
    let throughput = total as f64 / span.min(wall);

    // Idle pickup: one job at a time into an idle queue.
    db.execute_unprepared("DELETE FROM jobs")
        .await
        .expect("clear");
    for _ in 0..200 {
        let row = jobs::enqueue(&db, new_job()).await.expect("enqueue");
        nve_worker::runtime::dispatch_new(&db, &dispatcher, &row)
            .await
            .expect("dispatch");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    while succeeded(&db).await < 200 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (idle_waits, _) = waits(&db).await;
    stop(procs);
    (
        throughput,
        percentile(&load_waits, 0.5),
        percentile(&load_waits, 0.99),
        percentile(&idle_waits, 0.5),
        percentile(&idle_waits, 0.99),
    )
}

fn redis_floor() -> (f64, f64) {
    let out = Command::new("redis-benchmark")
        .args(["-q", "-t", "lpush,rpop", "-n", "200000", "-c", "16"])
        .output();
    let text = out
        .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
        .unwrap_or_default();
    let rate = |name: &str| {
        text.lines()
            .filter_map(|l| l.rsplit('\r').next())
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    (rate("LPUSH:"), rate("RPOP:"))
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20_000);
    let pg = PgDatabase::create().await;
    let db = Database::connect(&pg.url).await.expect("db");
    nve_migration::Migrator::up(&db, None)
        .await
        .expect("migrate");
    drop(db);
    let (lpush, rpop) = redis_floor();
    println!("jobs per run: {n}; worker concurrency 32; PostgreSQL + Redis on this machine");
    println!(
        "{:<28} {:>12} {:>14} {:>14} {:>14} {:>14}",
        "setup", "jobs/s", "load p50 ms", "load p99 ms", "idle p50 ms", "idle p99 ms"
    );
    for workers in [1, 2] {
        let (tput, lp50, lp99, ip50, ip99) = run(workers, n, &pg).await;
        println!(
            "{:<28} {:>12.0} {:>14.2} {:>14.2} {:>14.2} {:>14.2}",
            format!("nve, {workers} worker process(es)"),
            tput,
            lp50,
            lp99,
            ip50,
            ip99
        );
        println!(
            "{:<28} {:>12}",
            "  ratio to Redis RPOP floor",
            format!("{:.3}", tput / rpop)
        );
    }
    println!("{:<28} {:>12.0}", "redis-benchmark LPUSH (c=16)", lpush);
    println!("{:<28} {:>12.0}", "redis-benchmark RPOP (c=16)", rpop);
}
