//! End to end: a timeline rendered through the H.264/AAC MP4 output profile.

mod common;

use std::process::Command;
use std::sync::atomic::AtomicBool;

use common::*;
use gstreamer::prelude::*;
use nve_pipelines::render::encoders::{EncoderPolicy, candidates};
use nve_pipelines::render::output::output_bin;
use nve_pipelines::render::profiles::{BaseFormat, OutputProfile};
use nve_pipelines::render::{RenderError, RenderOptions, render};
use nve_pipelines::timeline::TrackKind;

#[test]
fn h264_mp4_has_every_frame_and_the_sound() {
    init();
    let dir = tempfile::tempdir().expect("tempdir");
    let a = indexed_clip(
        dir.path(),
        "a.mp4",
        (25, 1),
        75,
        tag_of(0),
        Some((440, 0.3)),
    );
    let b = indexed_clip(dir.path(), "b.mp4", (30, 1), 60, tag_of(1), None);
    let lib = Library(vec![("a".into(), media(&a)), ("b".into(), media(&b))]);
    let tl = timeline(
        output(320, 180, 30),
        vec![track(
            "v",
            TrackKind::Video,
            vec![asset("a", 0, 0, 45), asset("b", 45, 0, 45)],
        )],
    );
    let plan = plan_of(&tl, &lib, None);
    let profile = OutputProfile::preset("h264").expect("preset");
    let formats = profile
        .resolve(&BaseFormat::from_output(&tl.output))
        .expect("formats");
    let enc = candidates(&profile, EncoderPolicy::Off)
        .expect("encoders")
        .into_iter()
        .next()
        .expect("an H.264 encoder");
    let path = dir.path().join("out.mp4");
    let ob = output_bin(
        &profile,
        formats.video.as_ref(),
        formats.audio.as_ref(),
        &enc,
        &path,
    )
    .expect("output bin");
    let (bin, vs, asink) = (ob.bin.clone(), ob.video_sink.clone(), ob.audio_sink.clone());
    let mut attach = move |p: &gstreamer::Pipeline,
                           built: &nve_pipelines::render::Built|
          -> Result<(), RenderError> {
        p.add(&bin)
            .map_err(|e| RenderError::Internal(e.to_string()))?;
        for (from, to) in [(&built.video, &vs), (&built.audio, &asink)] {
            if let (Some(f), Some(t)) = (from, to) {
                f.link(t)
                    .map_err(|e| RenderError::Internal(format!("{e:?}")))?;
            }
        }
        Ok(())
    };
    let t = std::time::Instant::now();
    let report = render(
        &plan,
        &RenderOptions::default(),
        &mut attach,
        &mut |_| {},
        &AtomicBool::new(false),
    )
    .expect("render");
    let wall = t.elapsed();
    let out = ob.finish().expect("finish");
    assert!(out.bytes > 1000);
    assert_eq!(report.frames, 90);
    // Count the frames in the file.
    let probe = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args(["-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"])
        .arg(&path)
        .output()
        .expect("ffprobe");
    let frames = String::from_utf8_lossy(&probe.stdout).trim().to_string();
    assert_eq!(frames, "90", "{frames}");
    let m = media(&path);
    assert!(m.has_audio);
    assert!(
        (m.duration_ns as f64 / 1e9 - 3.0).abs() < 0.1,
        "{}",
        m.duration_ns
    );
    eprintln!("encoded 3 s of 320x180 in {wall:?} ({:.1}x)", report.speed);
}
