//! How long apalis-redis 1.0 takes to pick up a job pushed into an idle queue: 30 pushes
//! 300 ms apart, each carrying its push time; the handler prints the delay. Measured before
//! choosing nve's dispatch (docs/jobs.md).

use apalis::prelude::*;
use apalis_redis::{Config, RedisStorage};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

async fn handle(pushed: u64) -> Result<(), BoxDynError> {
    let lat = now_us() - pushed;
    eprintln!("latency_ms {:.2}", lat as f64 / 1000.0);
    Ok(())
}

#[tokio::main]
async fn main() {
    let conn = apalis_redis::connect("redis://127.0.0.1/").await.unwrap();
    let cfg = Config::default()
        .queue("apx-lat")
        .heartbeat_interval(Duration::from_secs(5));
    let mut storage: RedisStorage<u64> = RedisStorage::new(conn.clone()).with_config(cfg.clone());
    let mut pusher = storage.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        for _ in 0..30 {
            pusher.push(now_us()).await.unwrap();
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        tokio::time::sleep(Duration::from_secs(6)).await;
        std::process::exit(0);
    });
    let _ = &mut storage;
    let worker = WorkerBuilder::new("lat")
        .backend(storage)
        .concurrency(4)
        .build(handle);
    worker.run().await.unwrap();
}
