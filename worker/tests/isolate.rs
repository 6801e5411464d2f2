//! Child processes that misbehave in every way a media library can.

use std::time::{Duration, Instant};

use nve_worker::isolate::{ChildError, Limits, run};
use tokio::sync::watch;

fn limits() -> Limits {
    Limits {
        wall: Duration::from_secs(20),
        cpu_secs: 20,
        memory_bytes: 2 << 30,
    }
}

fn sh(script: &str) -> Vec<String> {
    vec!["-c".to_owned(), script.to_owned()]
}

#[tokio::test]
async fn progress_then_result() {
    let (_tx, rx) = watch::channel(false);
    let mut seen = Vec::new();
    let out = run(
        "sh",
        &sh(r#"echo '{"progress":0.25}'; echo 'noise from a library'; echo '{"progress":0.5,"detail":{"frame":12}}'; echo '{"result":{"ok":true}}'"#),
        &limits(),
        rx,
        |p| seen.push(p),
    )
    .await
    .expect("result");
    assert_eq!(out, serde_json::json!({"ok": true}));
    assert_eq!(
        seen.iter().map(|p| p.fraction).collect::<Vec<_>>(),
        [0.25, 0.5]
    );
    assert_eq!(seen[1].detail["frame"], 12);
}

#[tokio::test]
async fn a_crash_is_an_error_with_the_signal_and_stderr() {
    let (_tx, rx) = watch::channel(false);
    let err = run(
        "sh",
        &sh("echo 'plugin exploded' >&2; kill -SEGV $$"),
        &limits(),
        rx,
        |_| {},
    )
    .await
    .expect_err("crash");
    match &err {
        ChildError::Signal {
            signal,
            name,
            stderr,
        } => {
            assert_eq!((*signal, *name), (11, "SIGSEGV"));
            assert!(stderr.contains("plugin exploded"), "{stderr}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(err.code(), "crashed");
    let (_tx, rx) = watch::channel(false);
    let err = run("sh", &sh("kill -ABRT $$"), &limits(), rx, |_| {})
        .await
        .expect_err("abort");
    assert!(
        matches!(err, ChildError::Signal { signal: 6, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn exiting_without_a_result_and_reported_failures() {
    let (_tx, rx) = watch::channel(false);
    let err = run("sh", &sh("echo oops >&2; exit 3"), &limits(), rx, |_| {})
        .await
        .expect_err("exit");
    assert_eq!(
        err,
        ChildError::Exited {
            code: 3,
            stderr: "oops".into()
        }
    );
    let (_tx, rx) = watch::channel(false);
    let err = run(
        "sh",
        &sh(r#"echo '{"error":{"code":"not-media","message":"no streams"}}'; exit 1"#),
        &limits(),
        rx,
        |_| {},
    )
    .await
    .expect_err("failed");
    assert_eq!(err.code(), "not-media");
    assert!(!err.transient());
    let (_tx, rx) = watch::channel(false);
    let err = run("/nonexistent/program", &[], &limits(), rx, |_| {})
        .await
        .expect_err("missing");
    assert!(matches!(err, ChildError::Spawn { .. }), "{err:?}");
    assert_eq!(err.code(), "worker-misconfigured");
}

#[tokio::test]
async fn wall_clock_and_cpu_limits_kill_the_child() {
    let (_tx, rx) = watch::channel(false);
    let started = Instant::now();
    let short = Limits {
        wall: Duration::from_millis(500),
        ..limits()
    };
    let err = run("sleep", &["30".to_owned()], &short, rx, |_| {})
        .await
        .expect_err("timeout");
    assert_eq!(err, ChildError::TimedOut(Duration::from_millis(500)));
    assert!(started.elapsed() < Duration::from_secs(5));

    let (_tx, rx) = watch::channel(false);
    let cpu = Limits {
        cpu_secs: 1,
        ..limits()
    };
    let err = run("sh", &sh("while :; do :; done"), &cpu, rx, |_| {})
        .await
        .expect_err("cpu");
    assert!(
        matches!(
            err,
            ChildError::CpuLimit(1) | ChildError::Signal { signal: 9, .. }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn the_memory_limit_holds() {
    let (_tx, rx) = watch::channel(false);
    let small = Limits {
        memory_bytes: 256 << 20,
        ..limits()
    };
    // Asking for 1 GiB under a 256 MiB address-space limit fails inside the child.
    let err = run(
        "python3",
        &[
            "-c".to_owned(),
            "b = bytearray(1 << 30)\nprint('{\"result\": {}}')".to_owned(),
        ],
        &small,
        rx,
        |_| {},
    )
    .await
    .expect_err("limited");
    match err {
        ChildError::Exited { stderr, .. } => assert!(stderr.contains("MemoryError"), "{stderr}"),
        ChildError::Signal { .. } => {}
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn cancellation_kills_the_child_quickly() {
    let (tx, rx) = watch::channel(false);
    let started = Instant::now();
    let job =
        tokio::spawn(async move { run("sleep", &["30".to_owned()], &limits(), rx, |_| {}).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    tx.send(true).expect("send");
    let err = job.await.expect("join").expect_err("cancelled");
    assert_eq!(err, ChildError::Cancelled);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}
