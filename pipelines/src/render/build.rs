//! Render plan → GStreamer pipeline.
//!
//! ```text
//! segment 0:  uridecodebin ─▶ FrameMap ─▶ videocrop ─▶ videoconvertscale ─▶ videoflip ─▶ caps ─▶ queue ──┐
//! segment 1:  videotestsrc (background) ─┐                                                                │
//!             layer branch ──────────────┼▶ compositor (I420) ─▶ caps ─▶ overlaycomposition (stills) ─▶ queue ─┤
//!             layer branch (masked: AYUV)┘                                                                │
//!   …                                                                                                    ▼
//!                                              concat ─▶ identity single-segment=true ─▶ video pad
//!
//! audiotestsrc (silence, exact length) ─┐
//! uridecodebin ─▶ audioconvert ─▶ audioresample ─▶ caps F32LE ─▶ gain ─▶ queue (offset) ─┼▶ audiomixer ─▶ caps ─▶ queue ─▶ audio pad
//! ```
//!
//! Spans are grouped into *segments*: consecutive spans joined by a picture clip that continues
//! across their boundary share one compositor (so that clip is decoded once), a cut starts a new
//! segment (concat, no compositor), and a span with a wipe-like transition on a picture is a
//! segment of its own (its compositor mixes in AYUV; everything else stays I420). A segment
//! whose only picture is one full-frame, opaque one skips the compositor altogether (stills
//! above it are blended in place), and a compositor whose pictures cover every frame has no
//! background source. A finished segment's elements are shut down (pools, decoders). Every
//! segment ends in the same fully specified I420 caps (concat trap: a caps change re-initialises
//! the encoder). Each source branch is positioned by its own flushing, accurate seek with start
//! and stop, sent while the branch is blocked before its first decoded frame (the driver in
//! `run.rs` does that once every branch is blocked).

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use gst::prelude::*;
use gst_video::prelude::*;
use gstreamer as gst;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;

use super::effects;
use super::framemap::{FrameMap, MapSpec, TOLERANCE_NS};
use super::plan::{AudioSegment, Layer, LayerSource, PlanOutput, Rect, RenderPlan};
use super::stills::{self, Bitmap};
use super::window::{self, Stream, Window};
use super::{RenderError, internal};
use crate::timeline::TransitionKind;

/// What to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuildOptions {
    pub video: bool,
    pub audio: bool,
    /// Parts starting later than this (media time, ns) are built while the render runs, this
    /// far ahead of the output (see `window.rs`).
    pub lookahead_ns: i64,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            video: true,
            audio: true,
            lookahead_ns: window::LOOKAHEAD_NS,
        }
    }
}

/// The built graph's outputs, unlinked: the caller links them to an encoder or to sinks.
pub struct Built {
    /// `video/x-raw, format=I420`, output size and rate, pixel aspect 1/1, exactly
    /// `plan.frames` frames stamped from 0.
    pub video: Option<gst::Pad>,
    /// `audio/x-raw, format=F32LE, layout=interleaved`, output rate and channels, as long as the
    /// video.
    pub audio: Option<gst::Pad>,
    pub(crate) branches: Arc<Branches>,
    /// Video frames that have left the video pad.
    pub(crate) frames_out: Arc<AtomicI64>,
    /// Audio samples (per channel) that have left the audio pad.
    pub(crate) samples_out: Arc<AtomicI64>,
    /// The parts built while the render runs.
    pub(crate) window: Arc<Window>,
}

/// A decoding branch waiting for its positioning seek.
pub(crate) struct Branch {
    pub label: String,
    start_ns: i64,
    stop_ns: i64,
    state: Mutex<BranchState>,
    /// Built while the pipeline runs: it positions itself once blocked (the driver's one
    /// `seek_all` is long past).
    lazy: bool,
}

impl Branch {
    /// A flushing, accurate seek with start and stop on the decoded pad (it reaches the
    /// demuxer); the flush releases the block.
    fn seek(&self, pad: &gst::Pad) -> Result<(), RenderError> {
        let start = gst::ClockTime::from_nseconds(u64::try_from(self.start_ns.max(0)).unwrap_or(0));
        let stop = gst::ClockTime::from_nseconds(u64::try_from(self.stop_ns.max(1)).unwrap_or(1));
        let seek = gst::event::Seek::new(
            1.0,
            gst::SeekFlags::FLUSH | gst::SeekFlags::ACCURATE,
            gst::SeekType::Set,
            start,
            gst::SeekType::Set,
            stop,
        );
        if pad.send_event(seek) {
            Ok(())
        } else {
            Err(RenderError::NotDecodable(format!(
                "{}: the source cannot be positioned (not seekable)",
                self.label
            )))
        }
    }
}

#[derive(Default)]
struct BranchState {
    /// The decoded pad, once it is blocked before its first frame.
    pad: Option<gst::Pad>,
    seeked: bool,
}

#[derive(Default)]
pub(crate) struct Branches {
    list: Mutex<Vec<Arc<Branch>>>,
}

impl Branches {
    fn add(&self, b: Arc<Branch>) {
        if let Ok(mut l) = self.list.lock() {
            l.push(b);
        }
    }

    /// How many branches are blocked and waiting, of how many.
    pub(crate) fn ready(&self) -> (usize, usize) {
        let Ok(l) = self.list.lock() else {
            return (0, 0);
        };
        let ready = l
            .iter()
            .filter(|b| b.state.lock().map(|s| s.pad.is_some()).unwrap_or(false))
            .count();
        (ready, l.len())
    }

    /// Labels of the branches not yet waiting for their seek.
    pub(crate) fn waiting(&self) -> Vec<String> {
        let Ok(l) = self.list.lock() else {
            return Vec::new();
        };
        l.iter()
            .filter(|b| b.state.lock().map(|s| s.pad.is_none()).unwrap_or(true))
            .map(|b| b.label.clone())
            .collect()
    }

    /// Positions every branch: a flushing, accurate seek with start and stop on its decoder
    /// (which takes it to the demuxer); the flush releases the block.
    pub(crate) fn seek_all(&self) -> Result<(), RenderError> {
        let list: Vec<Arc<Branch>> = self.list.lock().map(|l| l.clone()).unwrap_or_default();
        for b in list {
            let pad = {
                let mut st = b
                    .state
                    .lock()
                    .map_err(|_| internal("branch lock poisoned"))?;
                if st.seeked {
                    continue;
                }
                st.seeked = true;
                st.pad.clone()
            };
            let Some(pad) = pad else {
                return Err(internal(format!("{}: not ready to seek", b.label)));
            };
            b.seek(&pad)?;
        }
        Ok(())
    }
}

/// Builds the plan's graph into `pipeline` and returns its unlinked output pads.
pub fn build(
    plan: &RenderPlan,
    pipeline: &gst::Pipeline,
    opts: &BuildOptions,
) -> Result<Built, RenderError> {
    crate::elements::inventory().map_err(internal)?;
    // Every file is looked at now (once, though a clip spans many spans): a part built later
    // must not be the first to find one gone.
    let paths: std::collections::BTreeSet<&std::path::Path> = plan
        .spans
        .iter()
        .flat_map(|s| s.layers.iter())
        .filter_map(|l| match &l.source {
            LayerSource::Video { path, .. } if opts.video => Some(path.as_path()),
            _ => None,
        })
        .chain(
            plan.audio
                .iter()
                .filter(|_| opts.audio)
                .map(|a| a.path.as_path()),
        )
        .collect();
    for path in paths {
        std::fs::canonicalize(path)
            .map_err(|e| RenderError::MissingSource(format!("{}: {e}", path.display())))?;
    }
    let shared = Arc::new(plan.clone());
    let window = Window::new(pipeline, opts.lookahead_ns);
    let mut cx = Cx {
        pipeline,
        out: &plan.output,
        branches: Arc::new(Branches::default()),
        n: Arc::new(AtomicUsize::new(0)),
        made: Vec::new(),
        lazy: false,
    };
    let frames_out = Arc::new(AtomicI64::new(0));
    let samples_out = Arc::new(AtomicI64::new(0));
    let video = if opts.video {
        let pad = video(&mut cx, &shared, &window)?;
        let counter = frames_out.clone();
        let w = window.clone();
        let out = plan.output.clone();
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            let n = counter.fetch_add(1, Ordering::Relaxed) + 1;
            w.reached(Stream::Video, out.frame_ns(n));
            gst::PadProbeReturn::Ok
        });
        Some(pad)
    } else {
        None
    };
    let audio = if opts.audio {
        let pad = audio(&mut cx, &shared, &window)?;
        let counter = samples_out.clone();
        let bpf = 4 * i64::from(plan.output.channels.max(1));
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let Some(b) = info.buffer() {
                counter.fetch_add(b.size() as i64 / bpf, Ordering::Relaxed);
            }
            gst::PadProbeReturn::Ok
        });
        Some(pad)
    } else {
        None
    };
    Ok(Built {
        video,
        audio,
        branches: cx.branches,
        frames_out,
        samples_out,
        window,
    })
}

struct Cx<'a> {
    pipeline: &'a gst::Pipeline,
    out: &'a PlanOutput,
    branches: Arc<Branches>,
    /// Numbers element names, also of parts built while the pipeline runs.
    n: Arc<AtomicUsize>,
    /// Every element added, in order (a segment's are released when it is done).
    made: Vec<gst::Element>,
    /// Building into a running pipeline (a deferred part).
    lazy: bool,
}

impl Cx<'_> {
    fn next(&self) -> usize {
        self.n.fetch_add(1, Ordering::Relaxed) + 1
    }

    fn make(&mut self, factory: &str) -> Result<gst::Element, RenderError> {
        let e = gst::ElementFactory::make(factory)
            .name(format!("{factory}-{}", self.next()))
            .build()
            .map_err(|e| internal(format!("cannot create {factory}: {e}")))?;
        self.pipeline.add(&e).map_err(internal)?;
        self.made.push(e.clone());
        Ok(e)
    }

    fn capsfilter(&mut self, caps: gst::Caps) -> Result<gst::Element, RenderError> {
        let e = self.make("capsfilter")?;
        e.set_property("caps", caps);
        Ok(e)
    }

    fn queue(&mut self, buffers: u32) -> Result<gst::Element, RenderError> {
        let q = self.make("queue")?;
        q.set_property("max-size-buffers", buffers);
        q.set_property("max-size-bytes", 0u32);
        q.set_property("max-size-time", 0u64);
        // Allocation queries are refused here rather than queued: downstream of a later
        // segment waits behind an inactive concat pad (or an aggregator that is itself
        // waiting), which would hold the query, and with it the caps event that sent it, until
        // that segment's turn; the branch would never reach its first frame. Upstream then
        // allocates from its own pool.
        if let Some(sink) = q.static_pad("sink") {
            sink.add_probe(gst::PadProbeType::QUERY_DOWNSTREAM, |_, info| {
                match info.query() {
                    Some(q) if matches!(q.view(), gst::QueryView::Allocation(_)) => {
                        gst::PadProbeReturn::Drop
                    }
                    _ => gst::PadProbeReturn::Ok,
                }
            });
        }
        Ok(q)
    }

    /// Converter/scaler: one pass, and a no-op when input and output agree.
    fn convertscale(&mut self) -> Result<gst::Element, RenderError> {
        let e = self.make("videoconvertscale")?;
        e.set_property("add-borders", false);
        e.set_property("n-threads", 2u32);
        Ok(e)
    }

    /// The caps every segment ends in (and the encoder gets).
    fn video_caps(&self, format: &str, size: Option<(i32, i32)>) -> gst::Caps {
        let o = self.out;
        let (w, h) = size.unwrap_or((o.width as i32, o.height as i32));
        let mut b = gst::Caps::builder("video/x-raw")
            .field("format", format)
            .field("width", w)
            .field("height", h)
            .field(
                "framerate",
                gst::Fraction::new(o.fps_num as i32, o.fps_den as i32),
            )
            .field("pixel-aspect-ratio", gst::Fraction::new(1, 1));
        if size.is_none() && format == "I420" {
            // Untagged sources decode as mpeg2 siting and the size's default matrix; choosing
            // the same keeps converters in pass-through for the usual case.
            b = b
                .field("interlace-mode", "progressive")
                .field("chroma-site", "mpeg2")
                .field(
                    "colorimetry",
                    if o.height > 576 { "bt709" } else { "bt601" },
                );
        }
        b.build()
    }

    fn audio_caps(&self) -> gst::Caps {
        gst::Caps::builder("audio/x-raw")
            .field("format", "F32LE")
            .field("layout", "interleaved")
            .field("rate", self.out.sample_rate as i32)
            .field("channels", i32::from(self.out.channels))
            .build()
    }

    fn link(&self, chain: &[&gst::Element]) -> Result<(), RenderError> {
        gst::Element::link_many(chain.iter().copied()).map_err(|e| {
            internal(format!(
                "cannot link {}: {e}",
                chain
                    .iter()
                    .map(|e| e.name().to_string())
                    .collect::<Vec<_>>()
                    .join(" ! ")
            ))
        })
    }

    /// A decoder for `path` whose decoded stream of `kind` (`video` or `audio`) is linked to
    /// `sink` once it appears, blocked there until the driver's seek to `[start, stop)`.
    fn source(
        &mut self,
        path: &std::path::Path,
        kind: &'static str,
        label: &str,
        (start_ns, stop_ns): (i64, i64),
        sink: gst::Pad,
    ) -> Result<(), RenderError> {
        let abs = std::fs::canonicalize(path)
            .map_err(|e| RenderError::MissingSource(format!("{label}: {}: {e}", path.display())))?;
        let uri = gst::glib::filename_to_uri(&abs, None).map_err(internal)?;
        let n = self.next();
        let safe: String = label
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .take(40)
            .collect();
        let dec = gst::ElementFactory::make("uridecodebin")
            .name(format!("src-{n}-{safe}"))
            .property("uri", uri.as_str())
            .build()
            .map_err(internal)?;
        self.pipeline.add(&dec).map_err(internal)?;
        self.made.push(dec.clone());
        let branch = Arc::new(Branch {
            label: label.to_owned(),
            start_ns: (start_ns - TOLERANCE_NS).max(0),
            stop_ns: stop_ns.max(start_ns + 1),
            state: Mutex::new(BranchState::default()),
            lazy: self.lazy,
        });
        if !self.lazy {
            self.branches.add(branch.clone());
        }
        let what = label.to_owned();
        if kind == "video" {
            // One decoding thread per source: frame-threaded decoding holds a frame and a
            // decoder context per thread (tens of MiB at 1080p, for every source of the
            // render), while the encoder's threads already keep every core busy and a 1080p
            // H.264 decode is a small fraction of an x264 encode. (E1: peak memory -5 %, no
            // loss of wall time.)
            dec.connect("deep-element-added", false, move |args| {
                let e = args.get(2).and_then(|v| v.get::<gst::Element>().ok())?;
                if e.factory().is_some_and(|f| f.name().starts_with("avdec_"))
                    && e.has_property("max-threads")
                {
                    e.set_property("max-threads", 1i32);
                }
                None
            });
        }
        let linked = decode_only(&dec, kind, move |pad| {
            let b = branch.clone();
            pad.add_probe(
                gst::PadProbeType::BLOCK
                    | gst::PadProbeType::BUFFER
                    | gst::PadProbeType::BUFFER_LIST,
                move |pad, _| {
                    let Ok(mut st) = b.state.lock() else {
                        return gst::PadProbeReturn::Remove;
                    };
                    if st.seeked {
                        return gst::PadProbeReturn::Remove;
                    }
                    if b.lazy && st.pad.is_none() {
                        // Not from this streaming thread: the seek's flush has to reach
                        // the thread blocked here.
                        st.seeked = true;
                        let (b, pad) = (b.clone(), pad.clone());
                        if let Some(e) = pad.parent_element() {
                            e.call_async(move |e| {
                                if let Err(err) = b.seek(&pad) {
                                    let _ = e.post_message(
                                        gst::message::Error::builder(
                                            gst::StreamError::Failed,
                                            &err.to_string(),
                                        )
                                        .src(e)
                                        .build(),
                                    );
                                }
                            });
                        }
                    }
                    st.pad = Some(pad.clone());
                    gst::PadProbeReturn::Ok
                },
            );
            if let Err(e) = pad.link(&sink) {
                tracing::warn!(error = ?e, "render: linking a decoded stream failed");
            }
        });
        dec.connect_no_more_pads(move |dec| {
            if !linked.load(Ordering::Acquire) {
                let _ = dec.post_message(
                    gst::message::Error::builder(
                        gst::StreamError::WrongType,
                        &format!("{what}: the file has no {kind} stream"),
                    )
                    .src(dec)
                    .build(),
                );
            }
        });
        Ok(())
    }

    /// Solid background for `frames` frames.
    fn background(&mut self, frames: i64) -> Result<gst::Pad, RenderError> {
        let c = self.out.background;
        let src = self.make("videotestsrc")?;
        src.set_property_from_str("pattern", "solid-color");
        src.set_property(
            "foreground-color",
            0xff00_0000u32 | (u32::from(c.r) << 16) | (u32::from(c.g) << 8) | u32::from(c.b),
        );
        src.set_property("num-buffers", i32::try_from(frames).unwrap_or(i32::MAX));
        let caps = self.capsfilter(self.video_caps("I420", None))?;
        self.link(&[&src, &caps])?;
        caps.static_pad("src")
            .ok_or_else(|| internal("capsfilter without src"))
    }
}

/// Makes `dec` (a `uridecodebin`) decode only streams of `kind` (`video` or `audio`; the others
/// stop at the demuxer) and hands the first decoded one to `on_stream`. Any other pad is
/// discarded right there: a fakesink would hold the demuxer in preroll while paused. The flag
/// says whether a stream was handed over.
pub(crate) fn decode_only(
    dec: &gst::Element,
    kind: &'static str,
    on_stream: impl Fn(&gst::Pad) + Send + Sync + 'static,
) -> Arc<AtomicBool> {
    let prefix = format!("{kind}/");
    dec.connect("autoplug-continue", false, move |values| {
        Some(crate::waveform::keep_plugging(values, |name| name.starts_with(&prefix)).to_value())
    });
    let raw = format!("{kind}/x-raw");
    let linked = Arc::new(AtomicBool::new(false));
    let handed = linked.clone();
    dec.connect_pad_added(move |_, pad| {
        let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
        let is_raw = caps.structure(0).is_some_and(|s| s.name() == raw.as_str());
        if is_raw && !handed.swap(true, Ordering::AcqRel) {
            on_stream(pad);
            return;
        }
        pad.add_probe(
            gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST,
            |_, _| gst::PadProbeReturn::Drop,
        );
    });
    linked
}

/// Index of the output frame a segment-relative timestamp belongs to.
fn frame_of(out: &PlanOutput, pts: u64) -> i64 {
    let n = i128::from(pts) * i128::from(out.fps_num);
    let d = i128::from(out.fps_den) * 1_000_000_000;
    ((n + d / 2) / d) as i64
}

/// A run of spans built by one sub-graph.
#[derive(Debug, Clone)]
struct Segment {
    start: i64,
    frames: i64,
    spans: std::ops::Range<usize>,
}

fn segments(plan: &RenderPlan) -> Vec<Segment> {
    let masked = |i: usize| {
        plan.spans[i]
            .layers
            .iter()
            .any(|l| l.is_picture() && l.masked().is_some())
    };
    let mut segs: Vec<Segment> = Vec::new();
    for (i, s) in plan.spans.iter().enumerate() {
        let join = i > 0 && masked(i) == masked(i - 1) && {
            let prev = &plan.spans[i - 1];
            s.layers.iter().filter(|l| l.is_picture()).any(|l| {
                prev.layers
                    .iter()
                    .any(|p| p.is_picture() && p.clip_id == l.clip_id)
            })
        };
        match segs.last_mut() {
            Some(seg) if join => {
                seg.frames += s.frames;
                seg.spans.end = i + 1;
            }
            _ => segs.push(Segment {
                start: s.start,
                frames: s.frames,
                spans: i..i + 1,
            }),
        }
    }
    segs
}

/// One clip's layer over the frames of a segment it shows in.
struct Occ<'p> {
    track: usize,
    clip_start: i64,
    /// Segment-relative first frame.
    first: i64,
    /// (segment-relative span start, span frames, layer)
    parts: Vec<(i64, i64, &'p Layer)>,
}

impl<'p> Occ<'p> {
    fn frames(&self) -> i64 {
        self.parts.iter().map(|p| p.1).sum()
    }

    fn layer(&self) -> &'p Layer {
        self.parts[0].2
    }

    /// (layer, index within its span) for segment frame `j`.
    fn at(&self, j: i64) -> Option<(&'p Layer, i64)> {
        self.parts
            .iter()
            .find(|(s, n, _)| (*s..*s + *n).contains(&j))
            .map(|(s, _, l)| (*l, j - s))
    }

    fn table(&self) -> Vec<FrameProps> {
        (self.first..self.first + self.frames())
            .filter_map(|j| self.at(j))
            .map(|(l, i)| FrameProps {
                rect: l.rect_at(i),
                alpha: l.alpha_at(i),
                mask: l.masked().map(|t| (t.kind, t.progress(i))),
                angle: l.geometry.turned.map(|_| l.angle_at(i)),
            })
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct FrameProps {
    rect: Rect,
    alpha: f64,
    mask: Option<(TransitionKind, f64)>,
    /// Clockwise degrees of a picture turned in its canvas (which it never fills).
    angle: Option<f64>,
}

fn video(
    cx: &mut Cx<'_>,
    plan: &Arc<RenderPlan>,
    window: &Arc<Window>,
) -> Result<gst::Pad, RenderError> {
    let segs = segments(plan);
    let single = cx.make("identity")?;
    single.set_property("single-segment", true);
    let identity_sink = single
        .static_pad("sink")
        .ok_or_else(|| internal("identity sink"))?;
    // concat's pads are all requested now (they cost nothing), in order; a deferred segment is
    // linked to its pad when it is built.
    let sinks: Vec<gst::Pad> = if segs.len() == 1 {
        vec![identity_sink]
    } else {
        let concat = cx.make("concat")?;
        cx.link(&[&concat, &single])?;
        (0..segs.len())
            .map(|_| {
                concat
                    .request_pad_simple("sink_%u")
                    .ok_or_else(|| internal("concat pad"))
            })
            .collect::<Result<_, _>>()?
    };
    let last = segs.len() - 1;
    for (k, (seg, sink)) in segs.into_iter().zip(sinks).enumerate() {
        let at = cx.out.frame_ns(seg.start);
        if window.eager(at) {
            segment_into(cx, plan, &seg, &sink, k < last)?;
            continue;
        }
        let (plan, branches, n) = (plan.clone(), cx.branches.clone(), cx.n.clone());
        window.defer(
            Stream::Video,
            at,
            Box::new(move |pipeline| {
                let mut cx = Cx {
                    pipeline,
                    out: &plan.output,
                    branches,
                    n,
                    made: Vec::new(),
                    lazy: true,
                };
                segment_into(&mut cx, &plan, &seg, &sink, k < last)?;
                window::start(&cx.made)
            }),
        );
    }
    // No queue here: every segment ends in one, and the consumer (the output bin) starts with
    // its own; a third would only hold three more full frames in flight.
    single
        .static_pad("src")
        .ok_or_else(|| internal("identity src"))
}

/// Builds `seg` and links it to `sink` (its concat pad); `release` shuts it down when done.
fn segment_into(
    cx: &mut Cx<'_>,
    plan: &RenderPlan,
    seg: &Segment,
    sink: &gst::Pad,
    release: bool,
) -> Result<(), RenderError> {
    let before = cx.made.len();
    let pad = segment(cx, plan, seg)?;
    pad.link(sink).map_err(|e| internal(format!("{e:?}")))?;
    if release {
        release_when_done(&pad, cx.made[before..].to_vec());
    }
    Ok(())
}

/// Shuts a segment's elements down once its end has passed `pad`: their buffer pools are
/// deactivated, so the frames the encoder still holds are freed as it lets them go instead of
/// returning to a pool nobody will use again, and the decoders' threads end. Without this a
/// render holds every finished segment's pools (the x264 encoder alone keeps ~16 input frames)
/// while the next segment fills its own: +75 MiB at E1's cut to its third clip.
fn release_when_done(pad: &gst::Pad, elements: Vec<gst::Element>) {
    let elements = Mutex::new(Some(elements));
    pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
        let eos = match &info.data {
            Some(gst::PadProbeData::Event(e)) => e.type_() == gst::EventType::Eos,
            _ => false,
        };
        if !eos {
            return gst::PadProbeReturn::Ok;
        }
        let Some(list) = elements.lock().ok().and_then(|mut l| l.take()) else {
            return gst::PadProbeReturn::Remove;
        };
        // Not from this streaming thread (it belongs to one of these elements): the state
        // change waits for the EOS to finish its way downstream.
        if let Some(first) = list.first().cloned() {
            first.call_async(move |_| {
                for e in &list {
                    e.set_locked_state(true);
                    let _ = e.set_state(gst::State::Null);
                }
            });
        }
        gst::PadProbeReturn::Remove
    });
}

fn segment(cx: &mut Cx<'_>, plan: &RenderPlan, seg: &Segment) -> Result<gst::Pad, RenderError> {
    // Occurrences in stacking order: track, then the later clip (a transition's `to`) on top.
    let mut occs: Vec<Occ<'_>> = Vec::new();
    for span in &plan.spans[seg.spans.clone()] {
        let rel = span.start - seg.start;
        for l in &span.layers {
            let clip_start = span.start - l.clip_offset;
            match occs
                .iter_mut()
                .find(|o| o.layer().clip_id == l.clip_id && o.clip_start == clip_start)
            {
                Some(o) => o.parts.push((rel, span.frames, l)),
                None => occs.push(Occ {
                    track: l.track,
                    clip_start,
                    first: rel,
                    parts: vec![(rel, span.frames, l)],
                }),
            }
        }
    }
    occs.sort_by(|a, b| a.track.cmp(&b.track).then(a.clip_start.cmp(&b.clip_start)));

    let out = cx.out;
    // One full-frame, opaque, unmoving picture under everything else (stills may be blended on
    // top of it in place): no compositor, no background.
    let direct = occs.first().is_some_and(|o| {
        o.layer().is_picture()
            && o.first == 0
            && o.frames() == seg.frames
            && o.parts.iter().all(|(_, _, l)| l.is_full_frame(out))
    }) && occs.iter().filter(|o| o.layer().is_picture()).count() == 1;
    let mut current: Option<gst::Pad> = None;
    let mut i = 0;
    while i < occs.len() {
        let picture = occs[i].layer().is_picture();
        let mut j = i;
        while j < occs.len() && occs[j].layer().is_picture() == picture {
            j += 1;
        }
        let run = &occs[i..j];
        current = Some(if picture {
            if direct {
                picture_branch(cx, seg, &run[0], true)?
            } else {
                composite(cx, seg, run, current.take())?
            }
        } else {
            let base = match current.take() {
                Some(p) => p,
                None => cx.background(seg.frames)?,
            };
            overlay(cx, run, base)?
        });
        i = j;
    }
    let end = match current {
        Some(p) => p,
        None => cx.background(seg.frames)?,
    };
    // A direct picture branch with nothing blended on it already ends in a queue.
    if end
        .parent_element()
        .and_then(|e| e.factory())
        .is_some_and(|f| f.name() == "queue")
    {
        return Ok(end);
    }
    let q = cx.queue(2)?;
    let qs = q.static_pad("sink").ok_or_else(|| internal("queue sink"))?;
    end.link(&qs).map_err(|e| internal(format!("{e:?}")))?;
    q.static_pad("src").ok_or_else(|| internal("queue src"))
}

/// Decodes one occurrence's frames: exactly its frames, at its size, upright; `direct` ends in
/// the output caps (the layer is the whole segment).
fn picture_branch(
    cx: &mut Cx<'_>,
    seg: &Segment,
    occ: &Occ<'_>,
    direct: bool,
) -> Result<gst::Pad, RenderError> {
    let l = occ.layer();
    let LayerSource::Video {
        path,
        rotation,
        width,
        height,
        fps_num,
        fps_den,
    } = &l.source
    else {
        return Err(internal("picture branch for a still"));
    };
    let out = cx.out;
    let mut targets = Vec::with_capacity(usize::try_from(occ.frames()).unwrap_or(0));
    for j in occ.first..occ.first + occ.frames() {
        let (layer, i) = occ
            .at(j)
            .ok_or_else(|| internal("frame outside occurrence"))?;
        let t = layer
            .timing
            .as_ref()
            .ok_or_else(|| internal("picture without timing"))?;
        targets.push(t.source_ns(layer.clip_offset + i));
    }
    let pts: Vec<u64> = (occ.first..=occ.first + occ.frames())
        .map(|j| u64::try_from(out.frame_ns(j)).unwrap_or(0))
        .collect();
    let lo = targets.iter().copied().min().unwrap_or(0);
    let hi = targets.iter().copied().max().unwrap_or(0);
    let label = format!("clip {:?}", l.clip_id);
    // Size on screen: the static rect, or the largest an animation reaches (the compositor
    // scales down from there).
    let table = occ.table();
    let (w, h) = table.iter().fold((2, 2), |(w, h), f| {
        (w.max(f.rect.width), h.max(f.rect.height))
    });
    // A picture turned by any angle is scaled to its own size, then turned in its canvas
    // (`(w, h)`), as large as the largest canvas of the occurrence.
    let inner = l.turned_size((w, h), true);
    let (iw, ih) = inner.unwrap_or((w, h));
    let turns = (rotation / 90 + u32::from(l.geometry.quarter_turns)) % 4;
    let (pw, ph) = if turns % 2 == 1 { (ih, iw) } else { (iw, ih) };
    let c = l.geometry.crop;
    let reshaped = c != Default::default()
        || turns != 0
        || (i64::from(*width), i64::from(*height)) != (i64::from(pw), i64::from(ph));
    // A source with fewer frames than the layer shows (a lower frame rate, slow motion) is
    // scaled before the frame map repeats its frames, so each source frame is scaled once. Not
    // on a direct branch: stills may be blended in place after it, and a frame the map still
    // holds (to repeat it) would have to be copied first.
    let scale_first = reshaped
        && !direct
        && l.timing.as_ref().is_some_and(|t| {
            !t.reverse
                && *fps_num > 0
                && u64::from(*fps_num) * u64::from(t.speed_milli) * u64::from(out.fps_den)
                    < u64::from(out.fps_num) * 1000 * u64::from(*fps_den)
        });
    let fm = FrameMap::new(MapSpec {
        targets,
        pts,
        fps: (out.fps_num as i32, out.fps_den as i32),
        label: label.clone(),
        // Unless the frames leave this branch untouched (a full-frame source passed through
        // to the output), everything after the map handles padded frames.
        video_meta: !direct || reshaped,
    });
    cx.pipeline.add(&fm).map_err(internal)?;
    let fm: gst::Element = fm.upcast();
    cx.made.push(fm.clone());
    let mut chain: Vec<gst::Element> = Vec::new();
    if !scale_first {
        chain.push(fm.clone());
    }
    if c != Default::default() {
        let crop = cx.make("videocrop")?;
        crop.set_property("left", c.left as i32);
        crop.set_property("right", c.right as i32);
        crop.set_property("top", c.top as i32);
        crop.set_property("bottom", c.bottom as i32);
        chain.push(crop);
    }
    let scale = cx.convertscale()?;
    let scaled = cx.capsfilter(
        gst::Caps::builder("video/x-raw")
            .field("width", pw)
            .field("height", ph)
            .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
            .build(),
    )?;
    chain.push(scale);
    chain.push(scaled);
    if turns != 0 {
        let flip = cx.make("videoflip")?;
        flip.set_property_from_str(
            "method",
            match turns {
                1 => "clockwise",
                2 => "rotate-180",
                _ => "counterclockwise",
            },
        );
        chain.push(flip);
    }
    if scale_first {
        chain.push(fm.clone());
    }
    let fin = if direct {
        cx.capsfilter(cx.video_caps("I420", None))?
    } else {
        cx.capsfilter(cx.video_caps("I420", Some((iw, ih))))?
    };
    chain.push(fin);
    // Effects run on the I420 frames at their size on screen.
    for e in &l.effects {
        chain.push(effect(cx, e)?);
    }
    if inner.is_some() {
        chain.extend(turned(cx, occ.first, &table, (iw, ih), (w, h))?);
    }
    let q = cx.queue(2)?;
    chain.push(q.clone());
    let refs: Vec<&gst::Element> = chain.iter().collect();
    cx.link(&refs)?;
    let sink = chain[0]
        .static_pad("sink")
        .ok_or_else(|| internal("branch sink"))?;
    let stop = hi + TOLERANCE_NS + 1;
    let _ = seg;
    cx.source(path, "video", &label, (lo, stop), sink)?;
    q.static_pad("src").ok_or_else(|| internal("queue src"))
}

/// Turns a picture (`iw`×`ih`, I420) in its transparent canvas (`w`×`h`, AYUV) by each
/// frame's angle: converted to AYUV, bordered with clear pixels by `videobox`, turned in place.
fn turned(
    cx: &mut Cx<'_>,
    first: i64,
    table: &[FrameProps],
    (iw, ih): (i32, i32),
    (w, h): (i32, i32),
) -> Result<Vec<gst::Element>, RenderError> {
    let conv = cx.convertscale()?;
    let ayuv = cx.capsfilter(
        gst::Caps::builder("video/x-raw")
            .field("format", "AYUV")
            .build(),
    )?;
    let boxed = cx.make("videobox")?;
    let (left, top) = ((w - iw) / 2, (h - ih) / 2);
    boxed.set_property("left", -left);
    boxed.set_property("right", -(w - iw - left));
    boxed.set_property("top", -top);
    boxed.set_property("bottom", -(h - ih - top));
    boxed.set_property("border-alpha", 0.0f64);
    let sized = cx.capsfilter(cx.video_caps("AYUV", Some((w, h))))?;
    let turn = cx.make("identity")?;
    let pad = turn
        .static_pad("src")
        .ok_or_else(|| internal("identity src"))?;
    let angles: Vec<f64> = table.iter().map(|f| f.angle.unwrap_or(0.0)).collect();
    let out = cx.out.clone();
    let scratch: Mutex<Vec<u8>> = Mutex::new(Vec::new());
    edit_frames(
        &pad,
        move |pts| {
            let j = frame_of(&out, pts?.nseconds());
            let angle = usize::try_from(j - first)
                .ok()
                .and_then(|i| angles.get(i))
                .copied()
                .unwrap_or(0.0);
            (angle.rem_euclid(360.0) != 0.0).then_some(angle)
        },
        move |frame, angle| {
            let (fw, fh) = (frame.width() as usize, frame.height() as usize);
            let stride = usize::try_from(frame.plane_stride()[0]).unwrap_or(fw * 4);
            let (Ok(data), Ok(mut src)) = (frame.plane_data_mut(0), scratch.lock()) else {
                return;
            };
            src.clear();
            src.extend_from_slice(data);
            // AYUV: alpha first; clear is transparent black.
            effects::turn(
                &src,
                (fw, fh, stride),
                data,
                (fw, fh, stride),
                angle,
                0,
                [0, 16, 128, 128],
            );
        },
    );
    Ok(vec![conv, ayuv, boxed, sized, turn])
}

/// One effect on I420 frames: `videobalance` for the balance effects, a blur of each plane (the
/// chroma planes at half the radius, they are half the size).
fn effect(cx: &mut Cx<'_>, e: &crate::timeline::Effect) -> Result<gst::Element, RenderError> {
    if let Some((brightness, contrast, saturation)) = effects::balance(e) {
        let b = cx.make("videobalance")?;
        b.set_property("brightness", brightness);
        b.set_property("contrast", contrast);
        b.set_property("saturation", saturation);
        return Ok(b);
    }
    let crate::timeline::Effect::Blur { radius } = *e else {
        return Err(internal("unknown effect"));
    };
    let luma = effects::blur_boxes(radius);
    let chroma = effects::blur_boxes(radius / 2.0);
    let id = cx.make("identity")?;
    let pad = id
        .static_pad("src")
        .ok_or_else(|| internal("identity src"))?;
    edit_frames(
        &pad,
        |_| Some(()),
        move |frame, ()| {
            for plane in 0..frame.n_planes() {
                let (w, h) = (
                    frame.comp_width(plane) as usize,
                    frame.comp_height(plane) as usize,
                );
                let stride = usize::try_from(frame.plane_stride()[plane as usize]).unwrap_or(w);
                let boxes = if plane == 0 { luma } else { chroma };
                if let Ok(data) = frame.plane_data_mut(plane) {
                    effects::blur_plane(data, (w, h, stride), boxes);
                }
            }
        },
    );
    Ok(id)
}

/// A compositor over `run`'s pictures, on top of `base` (or the background).
fn composite(
    cx: &mut Cx<'_>,
    seg: &Segment,
    run: &[Occ<'_>],
    base: Option<gst::Pad>,
) -> Result<gst::Pad, RenderError> {
    let out = cx.out;
    let ayuv = run.iter().any(|o| {
        o.parts
            .iter()
            .any(|p| p.2.masked().is_some() || p.2.geometry.turned.is_some())
    });
    let comp = cx.make("compositor")?;
    comp.set_property_from_str("background", "black");
    comp.set_property("emit-signals", true);
    // The background is only needed where no opaque picture covers the whole frame: a
    // compositor skips what is obscured, but the background would still be generated.
    let bottom = match base {
        Some(p) => Some(p),
        None if covered(seg, run, out) => None,
        None => Some(cx.background(seg.frames)?),
    };
    if let Some(bottom) = bottom {
        let pad0 = comp
            .request_pad_simple("sink_%u")
            .ok_or_else(|| internal("compositor pad"))?;
        pad0.set_property("zorder", 0u32);
        bottom.link(&pad0).map_err(|e| internal(format!("{e:?}")))?;
    }
    type Table = (gst::Pad, i64, Vec<FrameProps>);
    let mut animated: Vec<Table> = Vec::new();
    for (z, occ) in run.iter().enumerate() {
        let mut src = picture_branch(cx, seg, occ, false)?;
        let table = occ.table();
        if table.iter().any(|f| f.mask.is_some()) {
            src = masked(cx, src, occ.first, table.clone())?;
        }
        let pad = comp
            .request_pad_simple("sink_%u")
            .ok_or_else(|| internal("compositor pad"))?;
        pad.set_property("zorder", (z + 1) as u32);
        let f0 = table
            .first()
            .copied()
            .ok_or_else(|| internal("empty occurrence"))?;
        set_pad(&pad, &f0);
        src.link(&pad).map_err(|e| internal(format!("{e:?}")))?;
        if table
            .iter()
            .any(|f| f.rect != f0.rect || f.alpha != f0.alpha)
        {
            animated.push((pad, occ.first, table));
        }
    }
    if !animated.is_empty() {
        let out = out.clone();
        let last: Mutex<Vec<Option<FrameProps>>> = Mutex::new(vec![None; animated.len()]);
        // Runs in the compositor's thread after it picked this output frame's inputs and
        // before it reads the pad properties: per-frame values are exact.
        comp.connect("samples-selected", false, move |args| {
            let pts = args.get(2).and_then(|v| v.get::<u64>().ok())?;
            let j = frame_of(&out, pts);
            let Ok(mut last) = last.lock() else {
                return None;
            };
            for (k, (pad, first, table)) in animated.iter().enumerate() {
                let Some(f) = usize::try_from(j - first).ok().and_then(|i| table.get(i)) else {
                    continue;
                };
                if last[k].as_ref() != Some(f) {
                    set_pad(pad, f);
                    last[k] = Some(*f);
                }
            }
            None
        });
    }
    let mut chain = vec![comp.clone()];
    if ayuv {
        chain.push(cx.capsfilter(cx.video_caps("AYUV", None))?);
        chain.push(cx.convertscale()?);
    }
    chain.push(cx.capsfilter(cx.video_caps("I420", None))?);
    let refs: Vec<&gst::Element> = chain.iter().collect();
    cx.link(&refs)?;
    chain
        .last()
        .and_then(|e| e.static_pad("src"))
        .ok_or_else(|| internal("composite src"))
}

/// Every frame of the segment shows at least one opaque picture over the whole frame (no mask,
/// full alpha), so nothing below the run can be seen.
fn covered(seg: &Segment, run: &[Occ<'_>], out: &PlanOutput) -> bool {
    let full = Rect {
        x: 0,
        y: 0,
        width: out.width as i32,
        height: out.height as i32,
    };
    let tables: Vec<(i64, Vec<FrameProps>)> = run.iter().map(|o| (o.first, o.table())).collect();
    (0..seg.frames).all(|j| {
        tables.iter().any(|(first, t)| {
            usize::try_from(j - first)
                .ok()
                .and_then(|i| t.get(i))
                .is_some_and(|f| {
                    f.rect == full && f.alpha >= 1.0 && f.mask.is_none() && f.angle.is_none()
                })
        })
    })
}

fn set_pad(pad: &gst::Pad, f: &FrameProps) {
    pad.set_property("xpos", f.rect.x);
    pad.set_property("ypos", f.rect.y);
    pad.set_property("width", f.rect.width);
    pad.set_property("height", f.rect.height);
    pad.set_property("alpha", f.alpha.clamp(0.0, 1.0));
}

/// Edits the frames leaving `pad` in place. `pick` sees each frame's timestamp and says what to
/// do with it, or `None` to let it pass untouched (not made writable, so not copied); `edit`
/// then gets the frame mapped writable (copied first if it is shared, e.g. held by a frame map
/// to repeat it).
fn edit_frames<P: 'static>(
    pad: &gst::Pad,
    pick: impl Fn(Option<gst::ClockTime>) -> Option<P> + Send + Sync + 'static,
    edit: impl Fn(&mut gst_video::VideoFrameRef<&mut gst::BufferRef>, P) + Send + Sync + 'static,
) {
    let info: Mutex<Option<gst_video::VideoInfo>> = Mutex::new(None);
    pad.add_probe(
        gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM,
        move |_, probe| {
            if let Some(gst::PadProbeData::Event(ev)) = &probe.data {
                if let gst::EventView::Caps(c) = ev.view()
                    && let Ok(mut i) = info.lock()
                {
                    *i = gst_video::VideoInfo::from_caps(c.caps()).ok();
                }
                return gst::PadProbeReturn::Ok;
            }
            let Some(vi) = info.lock().ok().and_then(|i| i.clone()) else {
                return gst::PadProbeReturn::Ok;
            };
            let Some(buffer) = probe.buffer_mut() else {
                return gst::PadProbeReturn::Ok;
            };
            let Some(what) = pick(buffer.pts()) else {
                return gst::PadProbeReturn::Ok;
            };
            if let Ok(mut frame) =
                gst_video::VideoFrameRef::from_buffer_ref_writable(buffer.make_mut(), &vi)
            {
                edit(&mut frame, what);
            }
            gst::PadProbeReturn::Ok
        },
    );
}

/// Converts a picture to AYUV and clears the alpha of what its transition does not reveal yet.
fn masked(
    cx: &mut Cx<'_>,
    src: gst::Pad,
    first: i64,
    table: Vec<FrameProps>,
) -> Result<gst::Pad, RenderError> {
    let conv = cx.convertscale()?;
    let caps = cx.capsfilter(
        gst::Caps::builder("video/x-raw")
            .field("format", "AYUV")
            .build(),
    )?;
    cx.link(&[&conv, &caps])?;
    let sink = conv
        .static_pad("sink")
        .ok_or_else(|| internal("convert sink"))?;
    src.link(&sink).map_err(|e| internal(format!("{e:?}")))?;
    let pad = caps.static_pad("src").ok_or_else(|| internal("caps src"))?;
    let out = cx.out.clone();
    let frame_out = out.clone();
    edit_frames(
        &pad,
        move |pts| {
            let j = frame_of(&frame_out, pts?.nseconds());
            let f = usize::try_from(j - first).ok().and_then(|i| table.get(i))?;
            f.mask.map(|m| (f.rect, m))
        },
        move |frame, (rect, (kind, p))| {
            let (bw, bh) = (frame.width() as usize, frame.height() as usize);
            let stride = usize::try_from(frame.plane_stride()[0]).unwrap_or(bw * 4);
            let sx = f64::from(rect.width) / bw.max(1) as f64;
            let sy = f64::from(rect.height) / bh.max(1) as f64;
            let (ow, oh) = (f64::from(out.width), f64::from(out.height));
            let Ok(data) = frame.plane_data_mut(0) else {
                return;
            };
            for y in 0..bh {
                let fy = f64::from(rect.y) + (y as f64 + 0.5) * sy;
                let Some(row) = data.get_mut(y * stride..y * stride + bw * 4) else {
                    break;
                };
                for (x, px) in row.chunks_exact_mut(4).enumerate() {
                    let fx = f64::from(rect.x) + (x as f64 + 0.5) * sx;
                    if !stills::reveal(kind, p, fx, fy, ow, oh) {
                        px[0] = 0;
                    }
                }
            }
        },
    );
    Ok(pad)
}

/// A still, rasterised once, and how it is drawn at each of its frames.
struct Still {
    first: i64,
    table: Vec<FrameProps>,
    bitmap: Bitmap,
    buffer: gst::Buffer,
    /// Titles have their own position and size.
    fixed: Option<(i32, i32)>,
    /// The rectangle of the plain case (full opacity, no mask, first placement), made once.
    plain: Mutex<Option<(FrameProps, gst_video::VideoOverlayRectangle)>>,
}

fn still(cx: &Cx<'_>, occ: &Occ<'_>) -> Result<Option<Still>, RenderError> {
    let l = occ.layer();
    let table = occ.table();
    let (w, h) = table.iter().fold((2, 2), |(w, h), f| {
        (w.max(f.rect.width), h.max(f.rect.height))
    });
    let (w, h) = (w.max(2) as u32, h.max(2) as u32);
    // A still turned by any angle is drawn at its own size, turned once into its canvas.
    let canvas = (w, h);
    let (w, h) = match l.turned_size((w as i32, h as i32), false) {
        Some((iw, ih)) => (iw as u32, ih as u32),
        None => (w, h),
    };
    let (bitmap, fixed) = match &l.source {
        LayerSource::Color { rgba } => (Bitmap::solid(w, h, *rgba), None),
        LayerSource::Image { path, rotation, .. } => (
            stills::image_bitmap(
                path,
                l.geometry.crop,
                rotation / 90 + u32::from(l.geometry.quarter_turns),
                w,
                h,
            )?,
            None,
        ),
        LayerSource::Title {
            title,
            framed: false,
        } => match stills::title_bitmap(title, cx.out)? {
            Some(t) => (t.bitmap, Some((t.x, t.y))),
            None => return Ok(None),
        },
        LayerSource::Title {
            title,
            framed: true,
        } => {
            // Drawn at its anchor on a frame-sized picture, which is then cropped, turned and
            // scaled like an image.
            let Some(t) = stills::title_bitmap(title, cx.out)? else {
                return Ok(None);
            };
            let mut frame = Bitmap::new(cx.out.width, cx.out.height);
            frame.draw(&t.bitmap, t.x, t.y);
            (
                effects::reframe(
                    &frame,
                    l.geometry.crop,
                    u32::from(l.geometry.quarter_turns),
                    w,
                    h,
                ),
                None,
            )
        }
        LayerSource::Video { .. } => return Err(internal("still for a picture")),
    };
    let mut bitmap = bitmap;
    effects::apply_to_bitmap(&mut bitmap, &l.effects);
    if let Some(t) = l.geometry.turned {
        bitmap = effects::turn_bitmap(&bitmap, canvas, t.angle);
    }
    let buffer = bitmap.to_buffer()?;
    Ok(Some(Still {
        first: occ.first,
        table,
        bitmap,
        buffer,
        fixed,
        plain: Mutex::new(None),
    }))
}

impl Still {
    fn rectangle(&self, j: i64, out: &PlanOutput) -> Option<gst_video::VideoOverlayRectangle> {
        let f = *usize::try_from(j - self.first)
            .ok()
            .and_then(|i| self.table.get(i))?;
        if f.alpha <= 0.0 {
            return None;
        }
        let (x, y, w, h) = match self.fixed {
            Some((x, y)) => (x, y, self.bitmap.width as i32, self.bitmap.height as i32),
            None => (f.rect.x, f.rect.y, f.rect.width, f.rect.height),
        };
        if w <= 0 || h <= 0 {
            return None;
        }
        let flags = gst_video::VideoOverlayFormatFlags::GLOBAL_ALPHA;
        if let Some((kind, p)) = f.mask {
            let mut b = self.bitmap.clone();
            stills::mask_bitmap(&mut b, kind, p, (x, y, w, h), out);
            let buf = b.to_buffer().ok()?;
            let mut r =
                gst_video::VideoOverlayRectangle::new_raw(&buf, x, y, w as u32, h as u32, flags);
            r.get_mut()?.set_global_alpha(f.alpha as f32);
            return Some(r);
        }
        if let Ok(mut plain) = self.plain.lock() {
            if let Some((pf, r)) = plain.as_ref()
                && *pf == f
            {
                return Some(r.clone());
            }
            let mut r = gst_video::VideoOverlayRectangle::new_raw(
                &self.buffer,
                x,
                y,
                w as u32,
                h as u32,
                flags,
            );
            r.get_mut()?.set_global_alpha(f.alpha as f32);
            *plain = Some((f, r.clone()));
            return Some(r);
        }
        None
    }
}

/// Blends a run of stills in place on the frames coming from `base`.
fn overlay(cx: &mut Cx<'_>, run: &[Occ<'_>], base: gst::Pad) -> Result<gst::Pad, RenderError> {
    let mut list = Vec::new();
    for occ in run {
        if let Some(s) = still(cx, occ)? {
            list.push(s);
        }
    }
    let ov = cx.make("overlaycomposition")?;
    let sink = ov
        .static_pad("sink")
        .ok_or_else(|| internal("overlay sink"))?;
    base.link(&sink).map_err(|e| internal(format!("{e:?}")))?;
    let out = cx.out.clone();
    ov.connect("draw", false, move |args| {
        let sample = args.get(1).and_then(|v| v.get::<gst::Sample>().ok())?;
        let pts = sample.buffer()?.pts()?;
        let j = frame_of(&out, pts.nseconds());
        let rects: Vec<_> = list.iter().filter_map(|s| s.rectangle(j, &out)).collect();
        if rects.is_empty() {
            return None;
        }
        gst_video::VideoOverlayComposition::new(rects.iter())
            .ok()
            .map(|c| c.to_value())
    });
    ov.static_pad("src").ok_or_else(|| internal("overlay src"))
}

fn audio(
    cx: &mut Cx<'_>,
    plan: &Arc<RenderPlan>,
    window: &Arc<Window>,
) -> Result<gst::Pad, RenderError> {
    let out = cx.out;
    let total_ns = out.frame_ns(plan.frames);
    let mixer = cx.make("audiomixer")?;
    // Silence for the whole duration: the output is exactly as long as the video even where
    // nothing plays. audiotestsrc honours a seek's stop to the sample; sent before it starts, it
    // is applied when it starts.
    let silence = cx.make("audiotestsrc")?;
    silence.set_property_from_str("wave", "silence");
    silence.set_property("samplesperbuffer", 1024i32);
    let seek = gst::event::Seek::new(
        1.0,
        gst::SeekFlags::FLUSH | gst::SeekFlags::ACCURATE,
        gst::SeekType::Set,
        gst::ClockTime::ZERO,
        gst::SeekType::Set,
        gst::ClockTime::from_nseconds(u64::try_from(total_ns).unwrap_or(0)),
    );
    if !silence.send_event(seek) {
        return Err(internal("cannot bound the silence source"));
    }
    let scaps = cx.capsfilter(cx.audio_caps())?;
    cx.link(&[&silence, &scaps, &mixer])?;
    let mut deferred = false;
    for (i, seg) in plan.audio.iter().enumerate() {
        let at = out.frame_ns(seg.start);
        if window.eager(at) {
            audio_segment(cx, seg, &mixer)?;
            continue;
        }
        deferred = true;
        let (plan, branches, n) = (plan.clone(), cx.branches.clone(), cx.n.clone());
        let mixer = mixer.downgrade();
        window.defer(
            Stream::Audio,
            at,
            Box::new(move |pipeline| {
                let mixer = mixer
                    .upgrade()
                    .ok_or_else(|| internal("the mixer is gone"))?;
                let mut cx = Cx {
                    pipeline,
                    out: &plan.output,
                    branches,
                    n,
                    made: Vec::new(),
                    lazy: true,
                };
                audio_segment(&mut cx, &plan.audio[i], &mixer)?;
                window::start(&cx.made)
            }),
        );
    }
    if deferred {
        // The mixer's output reports where it is (what is due gets built) and waits for any
        // piece starting right ahead that is not in place yet.
        let w = window.clone();
        let src = mixer
            .static_pad("src")
            .ok_or_else(|| internal("mixer src"))?;
        src.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let Some(b) = info.buffer()
                && let Some(pts) = b.pts()
            {
                let end = (pts + b.duration().unwrap_or(gst::ClockTime::ZERO)).nseconds() as i64;
                w.reached(Stream::Audio, end);
                w.hold(Stream::Audio, end);
            }
            gst::PadProbeReturn::Ok
        });
    }
    let caps = cx.capsfilter(cx.audio_caps())?;
    let q = cx.queue(8)?;
    cx.link(&[&mixer, &caps, &q])?;
    q.static_pad("src").ok_or_else(|| internal("queue src"))
}

fn audio_segment(
    cx: &mut Cx<'_>,
    seg: &AudioSegment,
    mixer: &gst::Element,
) -> Result<(), RenderError> {
    let out = cx.out.clone();
    let first_made = cx.made.len();
    let start = out.frame_ns(seg.start);
    let len = out.frame_ns(seg.start + seg.frames) - start;
    let label = format!("clip {:?} (sound)", seg.clip_id);
    // A retimed segment comes from an appsrc in output caps; a streamed one is decoded,
    // converted and resampled here.
    let (head, caps) = if seg.retimed() {
        let src = gst_app::AppSrc::builder()
            .name(format!("src-{}-retimed", cx.next()))
            .caps(&cx.audio_caps())
            .format(gst::Format::Time)
            .max_buffers(4)
            .build();
        cx.pipeline.add(&src).map_err(internal)?;
        let frames_out = usize::try_from(
            (i128::from(len) * i128::from(out.sample_rate) + 500_000_000) / 1_000_000_000,
        )
        .unwrap_or(0);
        super::retime::retimed_source(
            &src,
            &seg.path,
            (seg.source_start_ns, seg.source_end_ns),
            seg.speed_milli,
            seg.reverse,
            (out.sample_rate, out.channels.into()),
            frames_out,
        );
        let src: gst::Element = src.upcast();
        cx.made.push(src.clone());
        (None, src)
    } else {
        let conv = cx.make("audioconvert")?;
        let res = cx.make("audioresample")?;
        let caps = cx.capsfilter(cx.audio_caps())?;
        cx.link(&[&conv, &res, &caps])?;
        (Some(conv), caps)
    };
    let q = cx.queue(8)?;
    cx.link(&[&caps, &q])?;
    // The gain envelope, applied per sample from the time since the segment's start.
    let gain = seg.gain.clone();
    let unity = gain.iter().all(|p| (p.gain - 1.0).abs() < 1e-12);
    if !unity {
        let seg_c = seg.clone();
        let rate = f64::from(out.sample_rate);
        let fps = out.fps();
        let ch = usize::from(out.channels.max(1));
        let segment: Mutex<Option<gst::FormattedSegment<gst::ClockTime>>> = Mutex::new(None);
        let pad = caps.static_pad("src").ok_or_else(|| internal("caps src"))?;
        pad.add_probe(
            gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM,
            move |_, probe| {
                if let Some(gst::PadProbeData::Event(ev)) = &probe.data {
                    if let gst::EventView::Segment(s) = ev.view()
                        && let Ok(seg) = s.segment().clone().downcast::<gst::ClockTime>()
                        && let Ok(mut g) = segment.lock()
                    {
                        *g = Some(seg);
                    }
                    return gst::PadProbeReturn::Ok;
                }
                let running = {
                    let Ok(g) = segment.lock() else {
                        return gst::PadProbeReturn::Ok;
                    };
                    let Some(b) = probe.buffer() else {
                        return gst::PadProbeReturn::Ok;
                    };
                    b.pts()
                        .and_then(|p| g.as_ref().and_then(|s| s.to_running_time(p)))
                        .map(|t| t.nseconds() as f64 / 1e9)
                };
                let Some(t0) = running else {
                    return gst::PadProbeReturn::Ok;
                };
                let Some(buffer) = probe.buffer_mut() else {
                    return gst::PadProbeReturn::Ok;
                };
                let b = buffer.make_mut();
                let Ok(mut map) = b.map_writable() else {
                    return gst::PadProbeReturn::Ok;
                };
                for (n, frame) in map.chunks_exact_mut(4 * ch).enumerate() {
                    let t = t0 + n as f64 / rate;
                    let g = seg_c.gain_at(t * fps) as f32;
                    for s in frame.chunks_exact_mut(4) {
                        let v = f32::from_le_bytes([s[0], s[1], s[2], s[3]]) * g;
                        s.copy_from_slice(&v.to_le_bytes());
                    }
                }
                gst::PadProbeReturn::Ok
            },
        );
    }
    let qsrc = q.static_pad("src").ok_or_else(|| internal("queue src"))?;
    qsrc.set_offset(start);
    let mpad = mixer
        .request_pad_simple("sink_%u")
        .ok_or_else(|| internal("mixer pad"))?;
    qsrc.link(&mpad).map_err(|e| internal(format!("{e:?}")))?;
    if let Some(conv) = head {
        let sink = conv
            .static_pad("sink")
            .ok_or_else(|| internal("convert sink"))?;
        cx.source(
            &seg.path,
            "audio",
            &label,
            (seg.source_start_ns, seg.source_start_ns + len),
            sink,
        )?;
    }
    // A finished piece's decoder and queue are shut down (its mixer pad stays, at EOS).
    release_when_done(&qsrc, cx.made[first_made..].to_vec());
    Ok(())
}
