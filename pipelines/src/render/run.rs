//! Driving a built render to its end: positioning seeks, progress, cancellation, errors; and
//! single frames through the same compiler.
//!
//! No GLib main loop: the bus is polled with a short timeout, which is also where the cancel
//! flag and the stall watchdog are checked. The pipeline is set to `Null` on every path.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use gst::prelude::*;
use gstreamer as gst;
use gstreamer_app as gst_app;

use super::build::{BuildOptions, Built, build};
use super::plan::{RenderPlan, SourceLookup, plan};
use super::{RenderError, internal};
use crate::timeline::Timeline;

/// How a render runs.
#[derive(Debug, Clone)]
pub struct RenderOptions {
    pub build: BuildOptions,
    /// Fail with `timed-out` when no frame (or sample) comes out for this long.
    pub stall_timeout: Duration,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            build: BuildOptions::default(),
            stall_timeout: Duration::from_secs(60),
        }
    }
}

/// Where a running render is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    pub frames_done: i64,
    pub frames_total: i64,
    /// 0..=1.
    pub fraction: f64,
    /// Output media time rendered, seconds.
    pub media_seconds: f64,
    /// Media seconds per wall second so far.
    pub speed: f64,
}

/// What a finished render did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RenderReport {
    pub frames: i64,
    pub audio_samples: i64,
    pub media_seconds: f64,
    pub wall_seconds: f64,
    /// Media seconds per wall second.
    pub speed: f64,
}

struct NullOnDrop(gst::Pipeline);

impl Drop for NullOnDrop {
    fn drop(&mut self) {
        let _ = self.0.set_state(gst::State::Null);
    }
}

/// Builds `plan`, lets `attach` link the output pads (to an encoder, or to sinks), and runs the
/// pipeline to EOS. `progress` is called from this thread at most every 100 ms while frames come
/// out; `cancel` is checked as often.
pub fn render(
    plan: &RenderPlan,
    opts: &RenderOptions,
    attach: &mut dyn FnMut(&gst::Pipeline, &Built) -> Result<(), RenderError>,
    progress: &mut dyn FnMut(&Progress),
    cancel: &AtomicBool,
) -> Result<RenderReport, RenderError> {
    let started = Instant::now();
    crate::elements::inventory().map_err(internal)?;
    let pipeline = gst::Pipeline::new();
    let _guard = NullOnDrop(pipeline.clone());
    let built = build(plan, &pipeline, &opts.build)?;
    // Whatever way this returns, parts not built yet are dropped (their jobs hold elements).
    struct CloseWindow<'a>(&'a Built);
    impl Drop for CloseWindow<'_> {
        fn drop(&mut self) {
            self.0.window.close();
        }
    }
    let _window = CloseWindow(&built);
    attach(&pipeline, &built)?;
    let bus = pipeline
        .bus()
        .ok_or_else(|| internal("pipeline without a bus"))?;
    let out = &plan.output;
    let done = |b: &Built| -> i64 {
        if b.video.is_some() {
            b.frames_out.load(Ordering::Relaxed)
        } else {
            let samples = b.samples_out.load(Ordering::Relaxed);
            (i128::from(samples) * i128::from(out.fps_num)
                / (i128::from(out.sample_rate.max(1)) * i128::from(out.fps_den.max(1))))
                as i64
        }
    };
    if pipeline.set_state(gst::State::Paused).is_err() {
        return Err(first_error(&bus).unwrap_or_else(|| internal("the pipeline cannot start")));
    }
    let mut seeked = false;
    let mut prerolled = false;
    let mut playing = false;
    let mut last_done = -1i64;
    let mut last_change = Instant::now();
    let mut last_report = Instant::now() - Duration::from_secs(1);
    loop {
        if cancel.load(Ordering::Relaxed) {
            tracing::info!("render cancelled");
            return Err(RenderError::Cancelled);
        }
        if !seeked {
            let (ready, total) = built.branches.ready();
            if ready == total {
                built.branches.seek_all()?;
                seeked = true;
                last_change = Instant::now();
            }
        }
        if seeked && prerolled && !playing {
            pipeline
                .set_state(gst::State::Playing)
                .map_err(|_| first_error(&bus).unwrap_or_else(|| internal("cannot play")))?;
            playing = true;
        }
        if let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(50)) {
            match msg.view() {
                gst::MessageView::AsyncDone(_) => prerolled = true,
                gst::MessageView::Eos(_) => break,
                gst::MessageView::Error(_) => {
                    return Err(built.window.take_error().unwrap_or_else(|| map_error(&msg)));
                }
                _ => {}
            }
        }
        let now = Instant::now();
        let d = done(&built);
        if d != last_done {
            last_done = d;
            last_change = now;
        } else if now.duration_since(last_change) > opts.stall_timeout {
            let (ready, total) = built.branches.ready();
            return Err(RenderError::TimedOut(if seeked {
                format!(
                    "no output for {:?} after {d} of {} frames ({} later parts not built yet)",
                    opts.stall_timeout,
                    plan.frames,
                    built.window.outstanding()
                )
            } else {
                format!(
                    "only {ready} of {total} sources started decoding (waiting: {})",
                    built.branches.waiting().join(", ")
                )
            }));
        }
        if now.duration_since(last_report) >= Duration::from_millis(100) && d > 0 {
            last_report = now;
            progress(&progress_of(plan, d, started));
        }
    }
    let d = done(&built);
    progress(&progress_of(plan, d, started));
    let wall = started.elapsed().as_secs_f64();
    let media = d as f64 / out.fps();
    Ok(RenderReport {
        frames: d,
        audio_samples: built.samples_out.load(Ordering::Relaxed),
        media_seconds: media,
        wall_seconds: wall,
        speed: if wall > 0.0 { media / wall } else { 0.0 },
    })
}

fn progress_of(plan: &RenderPlan, d: i64, started: Instant) -> Progress {
    let media = d as f64 / plan.output.fps();
    let wall = started.elapsed().as_secs_f64();
    Progress {
        frames_done: d,
        frames_total: plan.frames,
        fraction: (d as f64 / plan.frames.max(1) as f64).clamp(0.0, 1.0),
        media_seconds: media,
        speed: if wall > 0.0 { media / wall } else { 0.0 },
    }
}

fn first_error(bus: &gst::Bus) -> Option<RenderError> {
    while let Some(msg) = bus.pop() {
        if let gst::MessageView::Error(_) = msg.view() {
            return Some(map_error(&msg));
        }
    }
    None
}

/// A bus error from a source branch (or a decoding failure anywhere) is the media's fault;
/// anything else is the renderer's.
fn map_error(msg: &gst::Message) -> RenderError {
    let gst::MessageView::Error(e) = msg.view() else {
        return internal("not an error");
    };
    let path = msg
        .src()
        .map(|s| s.path_string().to_string())
        .unwrap_or_default();
    let err = e.error();
    let details = e.debug().map(|d| d.to_string()).unwrap_or_default();
    tracing::warn!(source = %path, error = %err, details = %details, "render failed");
    let from_source = path.contains("/src-");
    let media_kind = err.matches(gst::StreamError::Decode)
        || err.matches(gst::StreamError::Demux)
        || err.matches(gst::StreamError::WrongType)
        || err.matches(gst::StreamError::TypeNotFound)
        || err.matches(gst::StreamError::CodecNotFound)
        || err.matches(gst::StreamError::Format);
    if from_source || media_kind {
        let name = path.rsplit("/src-").next().unwrap_or(&path);
        RenderError::NotDecodable(format!("source {name}: {err}"))
    } else {
        RenderError::Internal(format!("{path}: {err} ({details})"))
    }
}

/// A packed RGB picture (`width * 3` bytes per row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbFrame {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
}

impl RgbFrame {
    /// Encodes the frame as JPEG.
    pub fn to_jpeg(&self, quality: i32) -> Result<Vec<u8>, RenderError> {
        let caps = gst::Caps::builder("video/x-raw")
            .field("format", "RGB")
            .field("width", self.width as i32)
            .field("height", self.height as i32)
            .field("framerate", gst::Fraction::new(0, 1))
            .build();
        let src = gst_app::AppSrc::builder().caps(&caps).build();
        let sink = gst_app::AppSink::builder().sync(false).build();
        let pipeline = gst::Pipeline::new();
        let _guard = NullOnDrop(pipeline.clone());
        let conv = gst::ElementFactory::make("videoconvert")
            .build()
            .map_err(internal)?;
        let enc = gst::ElementFactory::make("jpegenc")
            .property("quality", quality.clamp(1, 100))
            .build()
            .map_err(internal)?;
        pipeline
            .add_many([src.upcast_ref(), &conv, &enc, sink.upcast_ref()])
            .map_err(internal)?;
        gst::Element::link_many([src.upcast_ref(), &conv, &enc, sink.upcast_ref()])
            .map_err(internal)?;
        pipeline.set_state(gst::State::Playing).map_err(internal)?;
        // videoconvert expects RGB rows padded to 4 bytes.
        let row = self.width as usize * 3;
        let stride = row.div_ceil(4) * 4;
        let mut padded = vec![0u8; stride * self.height as usize];
        for y in 0..self.height as usize {
            if let (Some(d), Some(s)) = (
                padded.get_mut(y * stride..y * stride + row),
                self.data.get(y * row..y * row + row),
            ) {
                d.copy_from_slice(s);
            }
        }
        src.push_buffer(gst::Buffer::from_mut_slice(padded))
            .map_err(|e| internal(format!("{e:?}")))?;
        let _ = src.end_of_stream();
        let sample = sink
            .try_pull_sample(gst::ClockTime::from_seconds(10))
            .ok_or_else(|| internal("the JPEG encoder produced nothing"))?;
        let buf = sample.buffer().ok_or_else(|| internal("no JPEG buffer"))?;
        let map = buf.map_readable().map_err(internal)?;
        Ok(map.to_vec())
    }
}

/// The picture of timeline frame `frame`, `width` pixels wide, rendered by the same compiler as
/// a full render (a one-frame range), so a preview is exactly the render.
pub fn frame_at(
    timeline: &Timeline,
    sources: SourceLookup<'_>,
    frame: i64,
    width: u32,
) -> Result<RgbFrame, RenderError> {
    let p = plan(timeline, sources, Some((frame, frame + 1)))?;
    plan_frame(&p, width)
}

/// The first frame of `plan`, `width` pixels wide, as RGB.
pub fn plan_frame(plan: &RenderPlan, width: u32) -> Result<RgbFrame, RenderError> {
    let o = &plan.output;
    let w = width.clamp(2, 8192) & !1;
    let h = ((u64::from(w) * u64::from(o.height) / u64::from(o.width.max(1))) as u32).max(2) & !1;
    let sink = gst_app::AppSink::builder()
        .sync(false)
        .caps(
            &gst::Caps::builder("video/x-raw")
                .field("format", "RGB")
                .field("width", w as i32)
                .field("height", h as i32)
                .build(),
        )
        .build();
    let opts = RenderOptions {
        build: BuildOptions {
            video: true,
            audio: false,
            ..BuildOptions::default()
        },
        ..RenderOptions::default()
    };
    let sink_c = sink.clone();
    let mut attach = move |pipeline: &gst::Pipeline, built: &Built| -> Result<(), RenderError> {
        let conv = gst::ElementFactory::make("videoconvertscale")
            .property("add-borders", false)
            .build()
            .map_err(internal)?;
        pipeline
            .add_many([&conv, sink_c.upcast_ref()])
            .map_err(internal)?;
        conv.link(&sink_c).map_err(internal)?;
        let video = built
            .video
            .as_ref()
            .ok_or_else(|| internal("no video pad"))?;
        let cs = conv
            .static_pad("sink")
            .ok_or_else(|| internal("no sink pad"))?;
        video.link(&cs).map_err(|e| internal(format!("{e:?}")))?;
        Ok(())
    };
    let grabbed: std::sync::Arc<std::sync::Mutex<Option<gst::Sample>>> = Default::default();
    let g = grabbed.clone();
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |s| {
                if let Ok(sample) = s.pull_sample()
                    && let Ok(mut slot) = g.lock()
                {
                    *slot = Some(sample);
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    render(
        plan,
        &opts,
        &mut attach,
        &mut |_| {},
        &AtomicBool::new(false),
    )?;
    let sample = grabbed
        .lock()
        .ok()
        .and_then(|mut s| s.take())
        .ok_or_else(|| internal("no frame came out"))?;
    let buf = sample.buffer().ok_or_else(|| internal("no buffer"))?;
    let map = buf.map_readable().map_err(internal)?;
    let row = w as usize * 3;
    let stride = row.div_ceil(4) * 4;
    let mut data = Vec::with_capacity(row * h as usize);
    for y in 0..h as usize {
        let s = map
            .get(y * stride..y * stride + row)
            .ok_or_else(|| internal("short frame"))?;
        data.extend_from_slice(s);
    }
    Ok(RgbFrame {
        width: w,
        height: h,
        data,
    })
}
