//! Test media and helpers for the render tests: generated clips whose frames carry their own
//! index, timelines built in code, and renders captured raw (I420 frames, F32 samples).
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use nve_pipelines::render::{
    Built, RenderError, RenderOptions, RenderPlan, RenderReport, SourceMedia, plan, render,
};
use nve_pipelines::timeline::{
    Clip, Frames, Output, Rate, Rgba, Source, Timeline, Track, TrackKind,
};

/// Index blocks: 10 bits across the top, 32 source pixels each, on a 320×180 source.
pub const SRC_W: u32 = 320;
pub const SRC_H: u32 = 180;
const BITS: u32 = 10;
const BLOCK: u32 = 32;

pub fn init() {
    gst::init().expect("GStreamer");
}

/// Luma of the lower half of a generated clip: identifies the source.
pub fn tag_of(n: u32) -> u8 {
    [60u8, 180, 120, 220, 90][n as usize % 5]
}

/// Writes an H.264 (lossless) clip of `frames` frames at `fps` whose frame `i` shows `i` as
/// black/white blocks in its top 32 rows and luma `tag` below; with a sine tone at `hz` and
/// `amp` (linear peak) when `tone` is given. GOP 12 with B-frames, so seeks land between
/// keyframes and frames are reordered.
pub fn indexed_clip(
    dir: &Path,
    name: &str,
    fps: (u32, u32),
    frames: u32,
    tag: u8,
    tone: Option<(u32, f64)>,
) -> PathBuf {
    let out = dir.join(name);
    let secs = f64::from(frames) * f64::from(fps.1) / f64::from(fps.0);
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(["-f", "rawvideo", "-pix_fmt", "yuv420p"])
        .args(["-s", &format!("{SRC_W}x{SRC_H}")])
        .args(["-r", &format!("{}/{}", fps.0, fps.1)])
        .args(["-i", "-"]);
    if let Some((hz, amp)) = tone {
        cmd.args([
            "-f",
            "lavfi",
            "-i",
            &format!("aevalsrc={amp}*sin(2*PI*{hz}*t)|{amp}*sin(2*PI*{hz}*t):s=48000:d={secs}"),
        ]);
    }
    cmd.args([
        "-c:v", "libx264", "-qp", "0", "-g", "12", "-pix_fmt", "yuv420p",
    ]);
    if tone.is_some() {
        cmd.args(["-c:a", "aac", "-b:a", "256k", "-shortest"]);
    }
    cmd.arg(&out).stdin(Stdio::piped());
    let mut child = cmd.spawn().expect("ffmpeg");
    {
        let stdin = child.stdin.as_mut().expect("stdin");
        for i in 0..frames {
            stdin
                .write_all(&indexed_frame(i, tag))
                .expect("write frame");
        }
    }
    assert!(child.wait().expect("ffmpeg").success(), "{name}");
    out
}

fn indexed_frame(i: u32, tag: u8) -> Vec<u8> {
    let (w, h) = (SRC_W as usize, SRC_H as usize);
    let mut y = vec![tag; w * h];
    for row in 0..BLOCK as usize {
        for b in 0..BITS {
            let v = if (i >> b) & 1 == 1 { 235 } else { 16 };
            for x in (b * BLOCK) as usize..((b + 1) * BLOCK) as usize {
                y[row * w + x] = v;
            }
        }
    }
    // A grey band between the blocks and the tag area.
    for row in BLOCK as usize..(h / 2) {
        for x in 0..w {
            y[row * w + x] = 128;
        }
    }
    let mut f = y;
    f.extend(std::iter::repeat_n(128u8, (w / 2) * (h / 2) * 2));
    f
}

/// An image (PNG, 200×100, opaque red) or with an alpha channel.
pub fn png(dir: &Path, name: &str, color: &str) -> PathBuf {
    let out = dir.join(name);
    let ok = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
        ])
        .arg(format!("color=c={color}:s=200x100:d=1"))
        .args(["-frames:v", "1"])
        .arg(&out)
        .status()
        .expect("ffmpeg")
        .success();
    assert!(ok);
    out
}

/// Facts about a generated file, as the probe reports them.
pub fn media(path: &Path) -> SourceMedia {
    let r = nve_pipelines::probe::probe(path, std::time::Duration::from_secs(20)).expect("probe");
    SourceMedia::from_probe(path.to_path_buf(), &r)
}

pub fn output(w: u32, h: u32, fps: u32) -> Output {
    Output {
        width: w,
        height: h,
        frame_rate: Rate::new(u64::from(fps), 1).expect("rate"),
        sample_rate: 48_000,
        channels: 2,
        background: Rgba::opaque(0, 0, 0),
    }
}

pub fn asset(id: &str, start: i64, in_point: i64, duration: i64) -> Clip {
    let mut c = Clip::new(
        format!("{id}@{start}"),
        Source::Asset {
            asset_id: id.into(),
        },
        Frames(start),
        Frames(duration),
    );
    c.in_point = Frames(in_point);
    c
}

pub fn track(id: &str, kind: TrackKind, clips: Vec<Clip>) -> Track {
    let mut t = Track::new(id, kind);
    t.clips = clips;
    t
}

pub fn timeline(output: Output, tracks: Vec<Track>) -> Timeline {
    Timeline { output, tracks }
}

/// A lookup over named files.
pub struct Library(pub Vec<(String, SourceMedia)>);

impl Library {
    pub fn get(&self, id: &str) -> Option<SourceMedia> {
        self.0.iter().find(|(n, _)| n == id).map(|(_, m)| m.clone())
    }
}

/// One output frame, I420 as packed planes.
#[derive(Clone)]
pub struct Frame {
    pub pts: u64,
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

impl Frame {
    pub fn y(&self, x: usize, y: usize) -> u8 {
        self.data[y * self.width + x]
    }

    /// Mean luma of a rectangle.
    pub fn mean(&self, x0: usize, y0: usize, x1: usize, y1: usize) -> f64 {
        let mut s = 0u64;
        for y in y0..y1 {
            for x in x0..x1 {
                s += u64::from(self.y(x, y));
            }
        }
        s as f64 / ((x1 - x0) * (y1 - y0)) as f64
    }

    /// Reads the index of a generated source drawn at `(x, y, w, h)`.
    pub fn index_in(&self, x: i32, y: i32, w: i32, h: i32) -> Option<u32> {
        let mut v = 0;
        for b in 0..BITS {
            let cx = x as f64 + (f64::from(b * BLOCK) + 16.0) * f64::from(w) / f64::from(SRC_W);
            let cy = y as f64 + 16.0 * f64::from(h) / f64::from(SRC_H);
            let (cx, cy) = (cx as usize, cy as usize);
            if cx >= self.width || cy >= self.height {
                return None;
            }
            let l = self.y(cx, cy);
            if l > 200 {
                v |= 1 << b;
            } else if l > 50 {
                return None;
            }
        }
        Some(v)
    }

    /// Index of a full-frame source.
    pub fn index(&self) -> Option<u32> {
        self.index_in(0, 0, self.width as i32, self.height as i32)
    }

    /// Luma of the tag area of a full-frame source (lower half).
    pub fn tag(&self) -> f64 {
        let (w, h) = (self.width, self.height);
        self.mean(w / 4, h * 3 / 4, w * 3 / 4, h * 7 / 8)
    }
}

/// What a render produced, raw.
pub struct Captured {
    pub frames: Vec<Frame>,
    /// Interleaved samples.
    pub audio: Vec<f32>,
    pub report: RenderReport,
}

/// Renders `plan` to appsinks.
pub fn capture(plan: &RenderPlan) -> Result<Captured, RenderError> {
    capture_with(plan, &RenderOptions::default(), &AtomicBool::new(false))
}

pub fn capture_with(
    plan: &RenderPlan,
    opts: &RenderOptions,
    cancel: &AtomicBool,
) -> Result<Captured, RenderError> {
    let frames: Arc<Mutex<Vec<Frame>>> = Arc::default();
    let audio: Arc<Mutex<Vec<f32>>> = Arc::default();
    let (f2, a2) = (frames.clone(), audio.clone());
    let mut attach = move |pipeline: &gst::Pipeline, built: &Built| -> Result<(), RenderError> {
        if let Some(v) = &built.video {
            let sink = gst_app::AppSink::builder().sync(false).build();
            pipeline.add(&sink).expect("add");
            v.link(&sink.static_pad("sink").expect("pad"))
                .expect("link video");
            let f = f2.clone();
            sink.set_callbacks(
                gst_app::AppSinkCallbacks::builder()
                    .new_sample(move |s| {
                        let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                        let caps = sample.caps().expect("caps");
                        let st = caps.structure(0).expect("structure");
                        assert_eq!(st.get::<&str>("format").ok(), Some("I420"));
                        let (w, h) = (
                            st.get::<i32>("width").expect("w") as usize,
                            st.get::<i32>("height").expect("h") as usize,
                        );
                        let buf = sample.buffer().expect("buffer");
                        let map = buf.map_readable().expect("map");
                        f.lock().expect("lock").push(Frame {
                            pts: buf.pts().map(|p| p.nseconds()).unwrap_or(u64::MAX),
                            width: w,
                            height: h,
                            data: map.to_vec(),
                        });
                        Ok(gst::FlowSuccess::Ok)
                    })
                    .build(),
            );
        }
        if let Some(a) = &built.audio {
            let sink = gst_app::AppSink::builder().sync(false).build();
            pipeline.add(&sink).expect("add");
            a.link(&sink.static_pad("sink").expect("pad"))
                .expect("link audio");
            let au = a2.clone();
            sink.set_callbacks(
                gst_app::AppSinkCallbacks::builder()
                    .new_sample(move |s| {
                        let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                        let buf = sample.buffer().expect("buffer");
                        let map = buf.map_readable().expect("map");
                        let mut v = au.lock().expect("lock");
                        v.extend(
                            map.chunks_exact(4)
                                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
                        );
                        Ok(gst::FlowSuccess::Ok)
                    })
                    .build(),
            );
        }
        Ok(())
    };
    let report = render(plan, opts, &mut attach, &mut |_| {}, cancel)?;
    let frames = std::mem::take(&mut *frames.lock().expect("lock"));
    let audio = std::mem::take(&mut *audio.lock().expect("lock"));
    Ok(Captured {
        frames,
        audio,
        report,
    })
}

pub fn plan_of(tl: &Timeline, lib: &Library, range: Option<(i64, i64)>) -> RenderPlan {
    plan(tl, &|id| lib.get(id), range).expect("plan")
}

/// RMS in dB of interleaved stereo samples `[from, to)` seconds.
pub fn rms_db(samples: &[f32], from: f64, to: f64) -> f64 {
    let a = (from * 48_000.0) as usize * 2;
    let b = ((to * 48_000.0) as usize * 2).min(samples.len());
    let s: f64 = samples[a..b]
        .iter()
        .map(|v| f64::from(*v) * f64::from(*v))
        .sum();
    10.0 * (s / (b - a) as f64).max(1e-20).log10()
}

/// The error of a render that must fail.
pub fn failure(r: Result<Captured, RenderError>) -> RenderError {
    match r {
        Ok(c) => panic!("the render succeeded with {} frames", c.frames.len()),
        Err(e) => e,
    }
}

/// Size of [`corner_clip`]'s stored picture and of its white block.
pub const CORNER_W: usize = 320;
pub const CORNER_H: usize = 180;

/// A 1 s, 25 fps H.264 clip: black, with a white 80×60 block in the top-left corner of the
/// stored picture, and (unless `rotate` is 0) the display matrix that ffmpeg writes for
/// `-metadata:s:v:0 rotate=<rotate>`. The block shows which way the picture was turned.
pub fn corner_clip(dir: &Path, rotate: u32) -> PathBuf {
    let plain = dir.join("corner.mp4");
    if !plain.exists() {
        let ok = Command::new("ffmpeg")
            .args([
                "-hide_banner",
                "-loglevel",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
            ])
            .arg(format!(
                "color=black:size={CORNER_W}x{CORNER_H}:rate=25:duration=1,\
                 drawbox=x=0:y=0:w=80:h=60:color=white:t=fill"
            ))
            .args(["-c:v", "libx264", "-qp", "0", "-pix_fmt", "yuv420p"])
            .arg(&plain)
            .status()
            .expect("ffmpeg")
            .success();
        assert!(ok, "corner clip");
    }
    if rotate == 0 {
        return plain;
    }
    let out = dir.join(format!("corner-{rotate}.mp4"));
    let ok = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y", "-i"])
        .arg(&plain)
        .args(["-c", "copy", "-metadata:s:v:0"])
        .arg(format!("rotate={rotate}"))
        .arg(&out)
        .status()
        .expect("ffmpeg")
        .success();
    assert!(ok, "rotate={rotate}");
    out
}

/// A corner of a picture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Corner {
    TopLeft,
    TopRight,
    BottomLeft,
    BottomRight,
}

/// The corner the bright pixels of a `w`×`h` luma plane gather in (relative to its centre, so
/// a picture centred in bars counts as the picture).
pub fn bright_corner(luma: &[u8], w: usize, h: usize) -> Option<Corner> {
    let (mut n, mut sx, mut sy) = (0usize, 0usize, 0usize);
    for y in 0..h {
        for x in 0..w {
            if luma[y * w + x] > 200 {
                n += 1;
                sx += x;
                sy += y;
            }
        }
    }
    if n == 0 {
        return None;
    }
    let (right, bottom) = (2 * sx > n * w, 2 * sy > n * h);
    Some(match (right, bottom) {
        (false, false) => Corner::TopLeft,
        (true, false) => Corner::TopRight,
        (false, true) => Corner::BottomLeft,
        (true, true) => Corner::BottomRight,
    })
}

/// The first frame of `path` as ffmpeg shows it (with the container's rotation applied, its
/// default, as players do): width, height and luma.
pub fn ffmpeg_display(path: &Path) -> (usize, usize, Vec<u8>) {
    ffmpeg_first_frame(path, true)
}

/// The first frame of `path` as stored, ignoring the container's rotation.
pub fn ffmpeg_stored(path: &Path) -> (usize, usize, Vec<u8>) {
    ffmpeg_first_frame(path, false)
}

fn ffmpeg_first_frame(path: &Path, autorotate: bool) -> (usize, usize, Vec<u8>) {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-loglevel", "error"]);
    if !autorotate {
        cmd.args(["-autorotate", "0"]);
    }
    let out = cmd
        .arg("-i")
        .arg(path)
        .args(["-frames:v", "1", "-pix_fmt", "gray", "-c:v", "pgm"])
        .args(["-f", "image2pipe", "-"])
        .output()
        .expect("ffmpeg");
    assert!(out.status.success(), "decoding {}", path.display());
    parse_pgm(&out.stdout)
}

/// A binary PGM ("P5", 8 bits) as ffmpeg writes it: width, height and pixels.
fn parse_pgm(data: &[u8]) -> (usize, usize, Vec<u8>) {
    // Header: four whitespace-separated fields, then one whitespace byte.
    let mut fields = Vec::new();
    let mut at = 0;
    while fields.len() < 4 {
        while data[at].is_ascii_whitespace() {
            at += 1;
        }
        let start = at;
        while !data[at].is_ascii_whitespace() {
            at += 1;
        }
        fields.push(String::from_utf8_lossy(&data[start..at]).into_owned());
    }
    assert_eq!(fields[0], "P5", "a binary PGM");
    let w: usize = fields[1].parse().expect("width");
    let h: usize = fields[2].parse().expect("height");
    let pixels = data[at + 1..at + 1 + w * h].to_vec();
    (w, h, pixels)
}

/// A `w`×`h` luma plane turned clockwise by `degrees` (a multiple of 90): its new width,
/// height and pixels.
pub fn turn_clockwise(luma: &[u8], w: usize, h: usize, degrees: u32) -> (usize, usize, Vec<u8>) {
    let (mut w, mut h, mut luma) = (w, h, luma.to_vec());
    for _ in 0..(degrees / 90) % 4 {
        // A quarter turn clockwise: the bottom row becomes the left column.
        let mut turned = vec![0u8; w * h];
        for y in 0..h {
            for x in 0..w {
                turned[x * h + (h - 1 - y)] = luma[y * w + x];
            }
        }
        (w, h, luma) = (h, w, turned);
    }
    (w, h, luma)
}
