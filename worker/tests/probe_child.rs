//! The `probe` child through the isolation layer, as a probe job runs it: a real file gives
//! its report, a broken or over-limit one a permanent failure with the rejection's code.

use std::time::Duration;

use nve_pipelines::probe::MediaLimits;
use nve_worker::child::ProbeSpec;
use nve_worker::isolate::{ChildError, Limits, run};

const WORKER: &str = env!("CARGO_BIN_EXE_nve-worker");

fn limits() -> MediaLimits {
    MediaLimits {
        max_duration_secs: 3600.0,
        max_width: 4096,
        max_height: 4096,
        max_pixels: 4096 * 4096,
        max_fps: 120.0,
        max_audio_channels: 8,
        max_audio_rate: 96_000,
        codecs: vec![],
        containers: vec![],
    }
}

async fn probe(spec: &ProbeSpec) -> Result<serde_json::Value, ChildError> {
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let args = vec![
        "exec".to_owned(),
        "probe".to_owned(),
        serde_json::to_string(spec).expect("spec"),
    ];
    let limits = Limits {
        wall: Duration::from_secs(60),
        cpu_secs: 60,
        memory_bytes: 2 << 30,
    };
    run(WORKER, &args, &limits, rx, |_| {}).await
}

#[tokio::test]
async fn probe_reports_and_rejects_through_the_child() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clip = dir.path().join("clip.mp4");
    let status = std::process::Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
        ])
        .arg("testsrc=size=320x240:rate=25:duration=1")
        .args(["-c:v", "libx264", "-pix_fmt", "yuv420p"])
        .arg(&clip)
        .status()
        .expect("ffmpeg");
    assert!(status.success());

    let ok = probe(&ProbeSpec {
        path: clip.clone(),
        limits: limits(),
        timeout_secs: 20,
    })
    .await
    .expect("probed");
    assert_eq!(ok["report"]["kind"], "video");
    assert_eq!(ok["report"]["video"][0]["width"], 320);

    let tight = MediaLimits {
        max_width: 100,
        ..limits()
    };
    let err = probe(&ProbeSpec {
        path: clip,
        limits: tight,
        timeout_secs: 20,
    })
    .await
    .expect_err("over the limit");
    assert_eq!(err.code(), "too-large");
    assert!(!err.transient(), "the same file would fail again");

    let junk = dir.path().join("junk.mp4");
    std::fs::write(&junk, vec![7u8; 50_000]).expect("write");
    let err = probe(&ProbeSpec {
        path: junk,
        limits: limits(),
        timeout_secs: 20,
    })
    .await
    .expect_err("not media");
    assert_eq!(err.code(), "not-media");
}
