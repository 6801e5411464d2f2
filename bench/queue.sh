#!/usr/bin/env bash
# Queue benchmark (issue: job system): enqueue → completion throughput of no-op jobs through
# 1 and 2 nve-worker processes on Redis + PostgreSQL, queued → started latency under load and
# idle, and the raw Redis floor, printed side by side. Needs the local PostgreSQL and Redis.
#   bench/queue.sh [JOBS]      (default 20000)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p nve-worker --bin nve-worker --example queue_bench
exec target/release/examples/queue_bench "${1:-20000}"
