//! Job metric names and histogram buckets, shared by both binaries' Prometheus recorders.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};

/// Job durations span milliseconds (previews) to hours (renders); waits should be
/// milliseconds, and seconds mean a backlog.
const JOB_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
    3600.0,
];
const ATTEMPT_BUCKETS: &[f64] = &[1.0, 2.0, 3.0, 5.0, 10.0, 20.0];

/// Adds the job histograms' buckets to a recorder being built. (Setting buckets fails only
/// for an empty list, which these constants are not.)
pub fn with_job_buckets(builder: PrometheusBuilder) -> PrometheusBuilder {
    [
        ("nve_job_duration_seconds", JOB_BUCKETS),
        ("nve_job_wait_seconds", JOB_BUCKETS),
        ("nve_job_attempts", ATTEMPT_BUCKETS),
    ]
    .into_iter()
    .fold(builder, |b, (name, buckets)| {
        b.set_buckets_for_metric(Matcher::Full(name.into()), buckets)
            .unwrap_or_else(|_| PrometheusBuilder::new())
    })
}

/// Describes the job metrics (help text in the exposition).
pub fn describe() {
    metrics::describe_counter!(
        "nve_jobs_total",
        "Job attempts ended, by queue, kind and outcome"
    );
    metrics::describe_histogram!(
        "nve_job_duration_seconds",
        metrics::Unit::Seconds,
        "Run time of job attempts by queue and kind"
    );
    metrics::describe_histogram!(
        "nve_job_wait_seconds",
        metrics::Unit::Seconds,
        "Time from due to started, by queue"
    );
    metrics::describe_gauge!("nve_queue_depth", "Queued jobs by queue");
    metrics::describe_histogram!("nve_job_attempts", "Attempts a job used when it ended");
    metrics::describe_counter!(
        "nve_jobs_recovered_total",
        "Jobs taken back from dead workers"
    );
    metrics::describe_counter!(
        "nve_queue_errors_total",
        "Queue backend errors seen by workers"
    );
    metrics::describe_counter!(
        "nve_webhook_deliveries_total",
        "Webhook attempts by outcome"
    );
}
