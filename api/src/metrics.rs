//! Prometheus metrics: the recorder (installed once per process), metric names as constants,
//! and process CPU/memory read from /proc at scrape time.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const HTTP_REQUEST_DURATION: &str = "http_request_duration_seconds";
pub const HTTP_REQUESTS_TOTAL: &str = "http_requests_total";

const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The process-wide recorder. Several servers in one process (tests) share it.
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = nve_worker::metrics::with_job_buckets(PrometheusBuilder::new())
            .set_buckets_for_metric(
                Matcher::Full(HTTP_REQUEST_DURATION.to_owned()),
                LATENCY_BUCKETS,
            )
            .unwrap_or_else(|_| PrometheusBuilder::new());
        match builder.install_recorder() {
            Ok(handle) => {
                describe();
                nve_worker::metrics::describe();
                handle
            }
            // Another recorder is already installed (embedding); render ours unregistered.
            Err(_) => PrometheusBuilder::new().build_recorder().handle(),
        }
    })
}

fn describe() {
    metrics::describe_histogram!(
        HTTP_REQUEST_DURATION,
        metrics::Unit::Seconds,
        "HTTP request latency by method, route template and status"
    );
    metrics::describe_counter!(
        HTTP_REQUESTS_TOTAL,
        "HTTP requests by method, route template and status"
    );
    metrics::describe_gauge!(
        "process_cpu_seconds_total",
        "CPU time used by the process (user + system)"
    );
    metrics::describe_gauge!("process_resident_memory_bytes", "Resident set size");
    metrics::describe_gauge!("process_virtual_memory_bytes", "Virtual memory size");
    metrics::describe_gauge!("process_open_fds", "Open file descriptors");
    metrics::describe_gauge!("process_threads", "OS threads");
    metrics::describe_gauge!(
        "process_start_time_seconds",
        "Start time since the Unix epoch"
    );
}

/// The text exposition, with process metrics refreshed first.
pub fn render() -> String {
    let handle = handle();
    if let Some(p) = read_process() {
        metrics::gauge!("process_cpu_seconds_total").set(p.cpu_seconds);
        metrics::gauge!("process_resident_memory_bytes").set(p.rss_bytes);
        metrics::gauge!("process_virtual_memory_bytes").set(p.vsize_bytes);
        metrics::gauge!("process_threads").set(p.threads);
        metrics::gauge!("process_start_time_seconds").set(p.start_time);
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        metrics::gauge!("process_open_fds").set(fds.count() as f64);
    }
    handle.render()
}

struct ProcessStats {
    cpu_seconds: f64,
    rss_bytes: f64,
    vsize_bytes: f64,
    threads: f64,
    start_time: f64,
}

/// Linux's USER_HZ: the unit of /proc times, fixed at 100 on every architecture Linux exports it for.
const CLOCK_TICKS_PER_SEC: f64 = 100.0;
const PAGE_SIZE: f64 = 4096.0;

fn read_process() -> Option<ProcessStats> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name may contain spaces and parentheses; fields resume after the last ')'.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Field numbers from proc(5), minus the two before the name's end.
    let num = |i: usize| f.get(i - 3).and_then(|v| v.parse::<f64>().ok());
    let utime = num(14)?;
    let stime = num(15)?;
    let threads = num(20)?;
    let start_ticks = num(22)?;
    let vsize = num(23)?;
    let rss_pages = num(24)?;
    let boot_time = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| {
            l.strip_prefix("btime ")
                .and_then(|v| v.trim().parse::<f64>().ok())
        })?;
    Some(ProcessStats {
        cpu_seconds: (utime + stime) / CLOCK_TICKS_PER_SEC,
        rss_bytes: rss_pages * PAGE_SIZE,
        vsize_bytes: vsize,
        threads,
        start_time: boot_time + start_ticks / CLOCK_TICKS_PER_SEC,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_stats_are_plausible() {
        let p = read_process().expect("linux /proc");
        assert!(p.rss_bytes > 1e6);
        assert!(p.threads >= 1.0);
        assert!(p.start_time > 1.6e9);
    }
}
