//! Smart rendering: cuts of sources that match the output are copied GOP by GOP and
//! re-encoded only around the cut points, frame-exactly.

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use common::{Frame, Library, asset, init, media, output, plan_of, tag_of, timeline, track};
use nve_pipelines::render::file::{FileRender, plan_file, render_to_file};
use nve_pipelines::render::profiles::OutputProfile;
use nve_pipelines::render::smart::{SmartReport, eligible, smart_render};
use nve_pipelines::timeline::{Frames, Timeline, TrackKind, Transition, TransitionKind};

const W: usize = 320;
const H: usize = 180;
const FPS: u32 = 25;

/// A 320×180 25 fps H.264 High clip (GOP 25, B-frames, 8-bit 4:2:0) whose frame `i` shows `i`
/// in the blocks `common::Frame::index` reads, and luma `tag` below; AAC 48 kHz stereo, silent
/// but for a 1 kHz burst of 20 ms at each second + 0.3 s.
fn source(dir: &Path, name: &str, frames: u32, tag: u8) -> PathBuf {
    let out = dir.join(name);
    let secs = f64::from(frames) / f64::from(FPS);
    let mut child = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(["-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", "320x180"])
        .args(["-r", "25", "-i", "-", "-f", "lavfi", "-i"])
        .arg(format!(
            "aevalsrc='0.5*sin(2*PI*1000*t)*between(mod(t,1),0.3,0.32)':s=48000:c=stereo:d={secs}"
        ))
        .args(["-c:v", "libx264", "-profile:v", "high", "-crf", "18"])
        .args([
            "-g",
            "25",
            "-keyint_min",
            "25",
            "-sc_threshold",
            "0",
            "-bf",
            "3",
        ])
        .args([
            "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k", "-ac", "2",
        ])
        .arg(&out)
        .stdin(Stdio::piped())
        .spawn()
        .expect("ffmpeg");
    {
        let stdin = child.stdin.as_mut().expect("stdin");
        for i in 0..frames {
            stdin.write_all(&indexed_frame(i, tag)).expect("frame");
        }
    }
    assert!(child.wait().expect("ffmpeg").success(), "{name}");
    out
}

/// The same picture `common` draws: 10 index bits as 32-pixel blocks across the top.
fn indexed_frame(i: u32, tag: u8) -> Vec<u8> {
    let mut y = vec![tag; W * H];
    for row in 0..32 {
        for b in 0..10 {
            let v = if (i >> b) & 1 == 1 { 235 } else { 16 };
            y[row * W + b * 32..row * W + (b + 1) * 32].fill(v);
        }
    }
    y[32 * W..(H / 2) * W].fill(128);
    y.extend(std::iter::repeat_n(128u8, (W / 2) * (H / 2) * 2));
    y
}

/// Every frame of a file, decoded by ffmpeg (an independent decoder).
fn decode_frames(path: &Path) -> Vec<Frame> {
    let mut out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-i"])
        .arg(path)
        .args(["-map", "0:v", "-f", "rawvideo", "-pix_fmt", "yuv420p", "-"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("ffmpeg");
    let mut data = Vec::new();
    out.stdout
        .take()
        .expect("stdout")
        .read_to_end(&mut data)
        .expect("read");
    assert!(out.wait().expect("ffmpeg").success());
    let size = W * H * 3 / 2;
    data.chunks_exact(size)
        .enumerate()
        .map(|(i, c)| Frame {
            pts: i as u64,
            width: W,
            height: H,
            data: c.to_vec(),
        })
        .collect()
}

/// Mono mix of a file's audio at 48 kHz.
fn decode_audio(path: &Path) -> Vec<f32> {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-i"])
        .arg(path)
        .args([
            "-map", "0:a", "-ac", "1", "-ar", "48000", "-f", "f32le", "-",
        ])
        .output()
        .expect("ffmpeg");
    assert!(out.status.success());
    out.stdout
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// Seconds at which bursts start (after at least 0.1 s of quiet).
fn bursts(samples: &[f32]) -> Vec<f64> {
    let mut out = Vec::new();
    let mut quiet = 4800usize;
    for (i, s) in samples.iter().enumerate() {
        if s.abs() > 0.1 {
            if quiet >= 4800 {
                out.push(i as f64 / 48_000.0);
            }
            quiet = 0;
        } else {
            quiet += 1;
        }
    }
    out
}

fn ffprobe_duration(path: &Path, stream: &str) -> f64 {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", stream])
        .args(["-show_entries", "stream=duration", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("duration")
}

struct Set {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    lib: Library,
}

fn sources() -> Set {
    init();
    let dir = tempfile::tempdir().expect("tempdir");
    let a = source(dir.path(), "a.mp4", 250, tag_of(0));
    let b = source(dir.path(), "b.mp4", 250, tag_of(1));
    let lib = Library(vec![("a".into(), media(&a)), ("b".into(), media(&b))]);
    Set {
        dir: dir.path().to_path_buf(),
        _dir: dir,
        lib,
    }
}

fn h264() -> OutputProfile {
    OutputProfile::preset("h264").expect("preset")
}

/// Smart-renders `tl` and checks every frame: `expect(k)` is (source index, tag) of output
/// frame `k`. Returns the report.
fn check(set: &Set, tl: &Timeline, name: &str, expect: &dyn Fn(usize) -> (u32, u8)) -> SmartReport {
    let plan = plan_of(tl, &set.lib, None);
    let sp = eligible(&plan, &h264()).expect("eligible");
    let out = set.dir.join(name);
    let report = smart_render(&sp, &out, &mut |_| {}, &AtomicBool::new(false)).expect("render");
    let frames = decode_frames(&out);
    assert_eq!(frames.len() as i64, plan.frames, "frame count");
    for (k, f) in frames.iter().enumerate() {
        let (index, tag) = expect(k);
        assert_eq!(f.index(), Some(index), "output frame {k}");
        assert!(
            (f.tag() - f64::from(tag)).abs() < 4.0,
            "output frame {k}: tag {}",
            f.tag()
        );
    }
    let secs = plan.frames as f64 / f64::from(FPS);
    let v = ffprobe_duration(&out, "v:0");
    assert!((v - secs).abs() < 1e-3, "video lasts {v} s, not {secs}");
    let a = ffprobe_duration(&out, "a:0");
    assert!((a - secs).abs() < 0.05, "audio lasts {a} s, not {secs}");
    assert_eq!(report.frames, plan.frames);
    assert_eq!(report.copied_frames + report.encoded_frames, plan.frames);
    report
}

/// Bursts in the output at the times the sources put them, within a frame.
fn check_sync(path: &Path, expected: &[f64]) {
    let found = bursts(&decode_audio(path));
    assert_eq!(
        found.len(),
        expected.len(),
        "bursts {found:?} vs {expected:?}"
    );
    for (f, e) in found.iter().zip(expected) {
        assert!(
            (f - e).abs() < 1.0 / f64::from(FPS),
            "burst at {f} s, expected {e} s"
        );
    }
}

#[test]
fn trim_mid_gop_is_frame_exact_and_mostly_copied() {
    let set = sources();
    // Source frames 13..213: starts 13 frames into GOP 0 and ends 13 frames into GOP 8.
    let tl = timeline(
        output(320, 180, FPS),
        vec![track("v", TrackKind::Video, vec![asset("a", 0, 13, 200)])],
    );
    let report = check(&set, &tl, "trim.mp4", &|k| (13 + k as u32, tag_of(0)));
    assert_eq!(report.copied_frames, 175, "{report:?}");
    assert_eq!(report.encoded_frames, 25, "{report:?}");
    assert!(report.copied_seconds > 6.0 * report.encoded_seconds);
    assert_eq!(report.gops_copied, 7);
    assert_eq!(report.encoded_runs, 2);
    // Source bursts at 1.3 .. 8.3 s; the trim starts at 0.52 s.
    let expected: Vec<f64> = (1..=8).map(|s| f64::from(s) + 0.3 - 0.52).collect();
    check_sync(&set.dir.join("trim.mp4"), &expected);
}

#[test]
fn two_cut_edit_of_two_clips_is_frame_exact() {
    let set = sources();
    // a 30..150 (mid-GOP start, GOP-aligned end), then b 40..177 (mid-GOP both ends).
    let tl = timeline(
        output(320, 180, FPS),
        vec![track(
            "v",
            TrackKind::Video,
            vec![asset("a", 0, 30, 120), asset("b", 120, 40, 137)],
        )],
    );
    let report = check(&set, &tl, "edit.mp4", &|k| {
        if k < 120 {
            (30 + k as u32, tag_of(0))
        } else {
            (40 + (k - 120) as u32, tag_of(1))
        }
    });
    // a: 30..50 encoded, 50..150 copied; b: 40..50 encoded, 50..175 copied, 175..177 encoded.
    assert_eq!(report.copied_frames, 225, "{report:?}");
    assert_eq!(report.encoded_frames, 32, "{report:?}");
    assert_eq!(report.encoded_runs, 3, "{report:?}");
    // a's bursts at 1.3 .. 5.3 s (output 0.1 ..), b's at 2.3 .. 6.3 s (output 4.8 + 0.7 ..).
    let mut expected: Vec<f64> = (1..=5).map(|s| f64::from(s) + 0.3 - 1.2).collect();
    expected.extend((2..=6).map(|s| 4.8 + f64::from(s) + 0.3 - 1.6));
    check_sync(&set.dir.join("edit.mp4"), &expected);
}

#[test]
fn a_cut_inside_one_gop_is_re_encoded_exactly() {
    let set = sources();
    let tl = timeline(
        output(320, 180, FPS),
        vec![track("v", TrackKind::Video, vec![asset("b", 0, 53, 15)])],
    );
    let report = check(&set, &tl, "short.mp4", &|k| (53 + k as u32, tag_of(1)));
    assert_eq!(report.copied_frames, 0);
    assert_eq!(report.encoded_frames, 15);
}

fn reason(set: &Set, tl: &Timeline) -> String {
    let plan = plan_of(tl, &set.lib, None);
    match eligible(&plan, &h264()) {
        Ok(_) => panic!("eligible"),
        Err(e) => e.reason,
    }
}

#[test]
fn ineligible_renders_say_why() {
    let set = sources();
    let mut v = track(
        "v",
        TrackKind::Video,
        vec![asset("a", 0, 0, 40), asset("b", 30, 10, 40)],
    );
    v.transitions = vec![Transition {
        from: "a@0".into(),
        to: "b@30".into(),
        kind: TransitionKind::Crossfade,
        duration: Frames(10),
    }];
    let r = reason(&set, &timeline(output(320, 180, FPS), vec![v]));
    assert!(
        r.contains("layers are composited") || r.contains("transition"),
        "{r}"
    );

    let title = nve_pipelines::timeline::Clip::new(
        "t",
        nve_pipelines::timeline::Source::Title(Box::new(nve_pipelines::timeline::Title {
            text: "HELLO".into(),
            font_family: "DejaVu Sans".into(),
            size: 40.0,
            weight: 700,
            color: nve_pipelines::timeline::Rgba::WHITE,
            outline: None,
            shadow: None,
            background: None,
            align: nve_pipelines::timeline::HAlign::Center,
            valign: nve_pipelines::timeline::VAlign::Middle,
            x: 0.5,
            y: 0.5,
            fade_in: Frames(0),
            fade_out: Frames(0),
        })),
        Frames(0),
        Frames(20),
    );
    let tl = timeline(
        output(320, 180, FPS),
        vec![track("o", TrackKind::Overlay, vec![title])],
    );
    let r = reason(&set, &tl);
    assert!(r.contains("title"), "{r}");

    let tl = timeline(
        output(640, 360, FPS),
        vec![track("v", TrackKind::Video, vec![asset("a", 0, 0, 50)])],
    );
    let r = reason(&set, &tl);
    assert!(r.contains("320x180") && r.contains("640x360"), "{r}");

    let mut fast = asset("a", 0, 0, 50);
    fast.speed = nve_pipelines::timeline::Speed::from_millis(2000).expect("speed");
    fast.audio.mute = true;
    let tl = timeline(
        output(320, 180, FPS),
        vec![track("v", TrackKind::Video, vec![fast])],
    );
    let r = reason(&set, &tl);
    assert!(r.contains("2x"), "{r}");

    // The lossless test clips of `common` are High 4:4:4: not copyable into a High stream.
    let lossless = common::indexed_clip(&set.dir, "ll.mp4", (25, 1), 30, 60, Some((440, 0.5)));
    let lib = Library(vec![("a".into(), media(&lossless))]);
    let tl = timeline(
        output(320, 180, FPS),
        vec![track("v", TrackKind::Video, vec![asset("a", 0, 3, 20)])],
    );
    match eligible(&plan_of(&tl, &lib, None), &h264()) {
        Ok(_) => panic!("eligible"),
        Err(e) => assert!(e.reason.contains("profile"), "{}", e.reason),
    }
}

/// Times a 10 s trim of a 20 s 1080p30 clip: smart vs a full re-encode through
/// `render_to_file`. `cargo test -p nve-pipelines --test render_smart -- --ignored --nocapture`
#[test]
#[ignore = "benchmark: about 15 s of encoding"]
fn timing_1080p_trim_smart_vs_full() {
    init();
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("hd.mp4");
    let ok = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=30"])
        .args(["-f", "lavfi", "-i", "sine=f=440:sample_rate=48000"])
        .args([
            "-t",
            "20",
            "-c:v",
            "libx264",
            "-g",
            "60",
            "-keyint_min",
            "60",
        ])
        .args([
            "-sc_threshold",
            "0",
            "-preset",
            "veryfast",
            "-pix_fmt",
            "yuv420p",
        ])
        .args(["-c:a", "aac", "-b:a", "128k", "-ac", "2"])
        .arg(&src)
        .status()
        .expect("ffmpeg")
        .success();
    assert!(ok);
    let lib = Library(vec![("a".into(), media(&src))]);
    // 3.5 s .. 13.5 s: both ends mid-GOP (keyframes every 2 s).
    let tl = timeline(
        output(1920, 1080, 30),
        vec![track("v", TrackKind::Video, vec![asset("a", 0, 105, 300)])],
    );
    let profile = h264();
    let lookup = |id: &str| lib.get(id);
    fn job<'a>(
        tl: &'a Timeline,
        lookup: &'a dyn Fn(&str) -> Option<nve_pipelines::render::SourceMedia>,
        profile: &'a OutputProfile,
        out: &'a Path,
    ) -> FileRender<'a> {
        FileRender {
            timeline: tl,
            sources: lookup,
            profile,
            range: None,
            policy: nve_pipelines::render::encoders::EncoderPolicy::Off,
            output: out,
            // The comparison is smart rendering against a full encode.
            smart: false,
        }
    }
    let smart_out = dir.path().join("smart.mp4");
    let t = Instant::now();
    let (plan, _) = plan_file(&job(&tl, &lookup, &profile, &smart_out)).expect("plan");
    let sp = eligible(&plan, &profile).expect("eligible");
    let eligible_s = t.elapsed().as_secs_f64();
    let report =
        smart_render(&sp, &smart_out, &mut |_| {}, &AtomicBool::new(false)).expect("smart");
    let smart_s = t.elapsed().as_secs_f64();
    let full_out = dir.path().join("full.mp4");
    let t = Instant::now();
    let full = render_to_file(
        &job(&tl, &lookup, &profile, &full_out),
        &mut |_| {},
        &AtomicBool::new(false),
    )
    .expect("full");
    let full_s = t.elapsed().as_secs_f64();
    eprintln!(
        "smart: {smart_s:.2} s (eligible {eligible_s:.2} s; copied {:.2} s, encoded {:.2} s, {} bytes); full render_to_file: {full_s:.2} s ({} bytes, {})",
        report.copied_seconds, report.encoded_seconds, report.bytes, full.bytes, full.verified
    );
    assert_eq!(decode_count(&smart_out), 300);
}

fn decode_count(path: &Path) -> usize {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args(["-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("count")
}
