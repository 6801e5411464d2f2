//! Posters and thumbnail strips: frames grabbed with accurate seeks from one decoding
//! pipeline (upright: the container's rotation is applied), scaled once in the pipeline, laid
//! out in a sprite sheet and encoded as JPEG, with an index of their times.

use std::path::Path;
use std::time::Duration;

use gst::prelude::*;
use gstreamer as gst;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ThumbError {
    pub code: &'static str,
    pub message: String,
}

fn err(code: &'static str, message: impl Into<String>) -> ThumbError {
    ThumbError {
        code,
        message: message.into(),
    }
}

/// Where each frame of a strip is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StripIndex {
    /// One tile's size.
    pub tile_width: u32,
    pub tile_height: u32,
    pub columns: u32,
    pub rows: u32,
    /// The time (seconds) of each tile, left to right, top to bottom.
    pub times: Vec<f64>,
}

/// One decoded RGB frame.
struct Frame {
    width: u32,
    height: u32,
    stride: usize,
    data: Vec<u8>,
}

/// Which frames to grab.
enum Times<'a> {
    /// At these times (seconds).
    At(&'a [f64]),
    /// At the centres of this many equal slots of the duration the pipeline reports (one frame
    /// at 0 when it reports none, as for a still image).
    Evenly(u32),
}

/// Grabs frames scaled to `width` and upright, returning them with their times.
///
/// `filesrc ! parsebin`, then the picture stream's decoder, then `videoscale ! videoflip !
/// videoconvert` to RGB into an appsink; other streams stay unlinked (the demuxer carries on
/// while one stream is linked), so sound is never decoded.
///
/// - The flip and the RGB conversion work on the thumbnail, not on the decoded frame
///   (converting a 1080p frame to RGB before scaling cost more than decoding it). Scaling first
///   means the scaler's target must account for the rotation, and the orientation tag arrives
///   after the caps: the branch is linked to the decoder only at its first frame, by a probe
///   that has seen both (the same scheme as `proxy`).
/// - The first frame wanted is usually not the first of the file. `decodebin` would decode the
///   start of the file to learn the stream's format before anything could seek (half of a
///   poster's decoding work); `parsebin` exposes the parsed stream undecoded, so its first
///   packet is held back while a seek to the first time goes upstream, and the decoder starts
///   at the right keyframe.
fn grab(input: &Path, times: Times<'_>, width: u32) -> Result<(Vec<Frame>, Vec<f64>), ThumbError> {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    crate::elements::inventory().map_err(|e| err("internal", e.to_string()))?;
    let abs = std::fs::canonicalize(input).map_err(|e| err("unreadable", e.to_string()))?;
    if !abs.is_file() {
        return Err(err("unreadable", "not a regular file"));
    }
    let pipeline = gst::Pipeline::new();
    let mk = |factory: &str| {
        gst::ElementFactory::make(factory)
            .build()
            .map_err(|e| err("internal", format!("cannot create {factory}: {e}")))
    };
    let src = gst::ElementFactory::make("filesrc")
        .property("location", abs.to_string_lossy().to_string())
        .build()
        .map_err(|e| err("internal", e.to_string()))?;
    let parse = mk("parsebin")?;
    // matrix-mode=none: the scaled picture keeps the source's colorimetry (set with the size
    // below), so videoscale has no matrix to convert; videoconvert does the one YUV → RGB.
    // bilinear2 widens its kernel with the reduction: a 1920 → 320 tile is filtered, not
    // aliased (the 2-tap default skips most pixels); sharpness 1.5 is about an area average
    // and the cheapest setting of it (see proxy.rs).
    let scale = gst::ElementFactory::make("videoscale")
        .property_from_str("method", "bilinear2")
        .property("sharpness", 1.5f64)
        .property_from_str("matrix-mode", "none")
        .build()
        .map_err(|e| err("internal", e.to_string()))?;
    let scaled = mk("capsfilter")?;
    let flip = mk("videoflip")?;
    let convert = mk("videoconvert")?;
    let rgb = mk("capsfilter")?;
    let sink = gst::ElementFactory::make("appsink")
        .property("sync", false)
        .property("max-buffers", 1u32)
        .property("drop", true)
        .build()
        .map_err(|e| err("internal", e.to_string()))?;
    let chain = [&scale, &scaled, &flip, &convert, &rgb, &sink];
    pipeline
        .add_many([&src, &parse])
        .and_then(|_| pipeline.add_many(chain))
        .map_err(|e| err("internal", e.to_string()))?;
    src.link(&parse)
        .map_err(|e| err("internal", e.to_string()))?;
    gst::Element::link_many(chain).map_err(|e| err("internal", e.to_string()))?;
    let scale_sink = scale
        .static_pad("sink")
        .ok_or_else(|| err("internal", "videoscale without a pad"))?;

    // Seek before decoding when the first frame wanted is not at the start.
    let (fixed, count) = match times {
        Times::At(t) => (Some(t.to_vec()), None),
        Times::Evenly(n) => (None, Some(n)),
    };
    let preseek = match &fixed {
        Some(t) => t.first().is_some_and(|t| *t > 0.0),
        None => true,
    };
    let (held_tx, held_rx) = std::sync::mpsc::channel::<gst::Pad>();
    let released = Arc::new(AtomicBool::new(false));
    let hold: Arc<Mutex<Option<(gst::Pad, gst::PadProbeId)>>> = Arc::new(Mutex::new(None));

    let video_seen = Arc::new(AtomicBool::new(false));
    let seen_by_end = Arc::clone(&video_seen);
    // Without a picture the appsink would wait for a preroll that never comes.
    parse.connect_no_more_pads(move |parse| {
        if !seen_by_end.load(Ordering::Acquire) {
            fail(parse, gst::StreamError::WrongType, "the file has no video");
        }
    });
    let (hold_in, released_in) = (Arc::clone(&hold), Arc::clone(&released));
    parse.connect_pad_added(move |parse, pad| {
        let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
        let Some(name) = caps.structure(0).map(|s| s.name().to_string()) else {
            return;
        };
        let picture = name.starts_with("video/") || name.starts_with("image/");
        if !picture || video_seen.swap(true, Ordering::AcqRel) {
            return;
        }
        let Some(pipeline) = parse
            .parent()
            .and_then(|p| p.downcast::<gst::Pipeline>().ok())
        else {
            return;
        };
        if preseek {
            let (tx, released) = (held_tx.clone(), Arc::clone(&released_in));
            let id = pad.add_probe(
                gst::PadProbeType::BLOCK
                    | gst::PadProbeType::BUFFER
                    | gst::PadProbeType::BUFFER_LIST,
                move |pad, _| {
                    if released.load(Ordering::Acquire) {
                        return gst::PadProbeReturn::Remove;
                    }
                    let _ = tx.send(pad.clone());
                    gst::PadProbeReturn::Ok
                },
            );
            if let (Some(id), Ok(mut h)) = (id, hold_in.lock()) {
                *h = Some((pad.clone(), id));
            }
        }
        // Raw pictures need no decoder; otherwise the highest-ranked one for the caps, as
        // decodebin would pick.
        let decoded = if name == "video/x-raw" {
            pad.clone()
        } else {
            match decoder_for(&caps).and_then(|d| {
                pipeline.add(&d).ok()?;
                d.sync_state_with_parent().ok()?;
                let sink = d.static_pad("sink")?;
                pad.link(&sink).ok()?;
                d.static_pad("src")
            }) {
                Some(p) => p,
                None => {
                    fail(
                        parse,
                        gst::StreamError::CodecNotFound,
                        &format!("no decoder for {name}"),
                    );
                    return;
                }
            }
        };
        let (scale_sink, scaled, flip, rgb) = (
            scale_sink.clone(),
            scaled.clone(),
            flip.clone(),
            rgb.clone(),
        );
        let seen = Mutex::new(crate::proxy::Preamble::default());
        let parse = parse.downgrade();
        decoded.add_probe(
            gst::PadProbeType::BUFFER
                | gst::PadProbeType::BUFFER_LIST
                | gst::PadProbeType::EVENT_DOWNSTREAM,
            move |pad, info| {
                if let Some(event) = info.event() {
                    if let Ok(mut seen) = seen.lock() {
                        seen.observe(event);
                    }
                    return gst::PadProbeReturn::Ok;
                }
                let (caps, orientation) = match seen.lock() {
                    Ok(s) => (s.caps.clone(), s.orientation),
                    Err(_) => (None, None),
                };
                let linked = configure(caps.as_ref(), orientation, width, &scaled, &flip, &rgb)
                    .and_then(|()| {
                        pad.link(&scale_sink)
                            .map(|_| ())
                            .map_err(|e| err("internal", format!("{e:?}")))
                    });
                match linked {
                    Ok(()) => gst::PadProbeReturn::Remove,
                    Err(e) => {
                        if let Some(p) = parse.upgrade() {
                            fail(&p, gst::CoreError::Negotiation, &e.message);
                        }
                        gst::PadProbeReturn::Drop
                    }
                }
            },
        );
    });

    let bus = pipeline.bus().ok_or_else(|| err("internal", "no bus"))?;
    let result = (|| {
        pipeline
            .set_state(gst::State::Paused)
            .map_err(|_| err("not-decodable", "the file cannot be decoded"))?;
        let mut first_sought = false;
        let times: Vec<f64> = if preseek {
            // The picture stream's first packet is held at parsebin's output.
            let held = wait_held(&bus, &held_rx)?;
            let times = match (&fixed, count) {
                (Some(t), _) => t.clone(),
                (None, n) => evenly(held.query_duration::<gst::ClockTime>(), n.unwrap_or(1)),
            };
            let first = times.first().copied().unwrap_or(0.0);
            released.store(true, Ordering::Release);
            let seek = gst::event::Seek::new(
                1.0,
                gst::SeekFlags::FLUSH | gst::SeekFlags::ACCURATE,
                gst::SeekType::Set,
                at(first),
                gst::SeekType::None,
                gst::ClockTime::NONE,
            );
            // Sent upstream from the held pad, the seek reaches the demuxer; its flush releases
            // the held packet and the probe removes itself at the next one.
            if first > 0.0 && held.send_event(seek) {
                first_sought = true;
            } else if let Ok(mut h) = hold.lock()
                && let Some((pad, id)) = h.take()
            {
                // Not seekable this way: start from the beginning, the seek after the
                // preroll decides.
                pad.remove_probe(id);
            }
            times
        } else {
            fixed.clone().unwrap_or_else(|| vec![0.0])
        };
        wait_async_done(&bus)?;
        let mut frames = Vec::with_capacity(times.len());
        for (i, t) in times.iter().enumerate() {
            let prerolled_here = i == 0 && (first_sought || *t <= 0.0);
            if !prerolled_here {
                pipeline
                    .seek_simple(gst::SeekFlags::FLUSH | gst::SeekFlags::ACCURATE, at(*t))
                    .map_err(|_| err("not-seekable", format!("cannot seek to {t:.3} s")))?;
                wait_async_done(&bus)?;
            }
            let sample = sink
                .emit_by_name::<Option<gst::Sample>>("pull-preroll", &[])
                .ok_or_else(|| err("no-frame", format!("no frame at {t:.3} s")))?;
            frames.push(to_frame(&sample)?);
        }
        Ok((frames, times))
    })();
    let _ = pipeline.set_state(gst::State::Null);
    result
}

fn at(seconds: f64) -> gst::ClockTime {
    gst::ClockTime::from_nseconds((seconds.max(0.0) * 1e9) as u64)
}

/// `n` times at the centres of `n` equal slots of `duration`; 0 alone without a duration.
fn evenly(duration: Option<gst::ClockTime>, n: u32) -> Vec<f64> {
    match duration
        .map(|d| d.nseconds() as f64 / 1e9)
        .filter(|d| *d > 0.0)
    {
        Some(d) => (0..n.max(1))
            .map(|i| (f64::from(i) + 0.5) * d / f64::from(n.max(1)))
            .collect(),
        None => vec![0.0],
    }
}

/// Posts an error from a streaming thread, where returning one is not possible.
fn fail<T: gst::MessageErrorDomain>(element: &gst::Element, kind: T, message: &str) {
    let _ = element.post_message(
        gst::message::Error::builder(kind, message)
            .src(element)
            .build(),
    );
}

/// The highest-ranked decoder for a parsed picture stream, as decodebin would choose it.
fn decoder_for(caps: &gst::Caps) -> Option<gst::Element> {
    let mut factories: Vec<gst::ElementFactory> = gst::ElementFactory::factories_with_type(
        gst::ElementFactoryType::DECODER
            | gst::ElementFactoryType::MEDIA_VIDEO
            | gst::ElementFactoryType::MEDIA_IMAGE,
        gst::Rank::MARGINAL,
    )
    .into_iter()
    .filter(|f| f.can_sink_any_caps(caps))
    .collect();
    factories.sort_by_key(|f| std::cmp::Reverse(f.rank()));
    factories.iter().find_map(|f| f.create().build().ok())
}

/// Waits until the picture stream's first packet is held (or the file fails to open).
fn wait_held(
    bus: &gst::Bus,
    held: &std::sync::mpsc::Receiver<gst::Pad>,
) -> Result<gst::Pad, ThumbError> {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(pad) = held.recv_timeout(Duration::from_millis(5)) {
            return Ok(pad);
        }
        if let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error])
            && let gst::MessageView::Error(e) = msg.view()
        {
            return Err(err("not-decodable", e.error().to_string()));
        }
        if std::time::Instant::now() > deadline {
            return Err(err("timed-out", "opening the file took too long"));
        }
    }
}

/// Sizes the scaler's output (before the flip) and the RGB output (after it) for a source.
fn configure(
    caps: Option<&gst::Caps>,
    orientation: Option<(u32, bool)>,
    width: u32,
    scaled: &gst::Element,
    flip: &gst::Element,
    rgb: &gst::Element,
) -> Result<(), ThumbError> {
    let s = caps
        .and_then(|c| c.structure(0))
        .ok_or_else(|| err("not-decodable", "the decoder announced no format"))?;
    let dim = |f: &str| {
        s.get::<i32>(f)
            .ok()
            .filter(|v| *v > 0)
            .map(f64::from)
            .ok_or_else(|| err("not-decodable", format!("the decoded picture has no {f}")))
    };
    let (w, h) = (dim("width")?, dim("height")?);
    let par = s
        .get::<gst::Fraction>("pixel-aspect-ratio")
        .ok()
        .filter(|p| p.numer() > 0 && p.denom() > 0)
        .map(|p| f64::from(p.numer()) / f64::from(p.denom()))
        .unwrap_or(1.0);
    let (rotation, flipped) = orientation.unwrap_or((0, false));
    let turned = rotation % 180 == 90;
    let (shown_w, shown_h) = if turned { (h, w * par) } else { (w * par, h) };
    let out_w = width.max(1);
    let out_h = ((f64::from(out_w) * shown_h / shown_w).round() as u32).max(1);
    let (pre_w, pre_h) = if turned {
        (out_h, out_w)
    } else {
        (out_w, out_h)
    };
    let int = |v: u32| i32::try_from(v).unwrap_or(i32::MAX);
    let mut pre = gst::Caps::builder("video/x-raw")
        .field("width", int(pre_w))
        .field("height", int(pre_h))
        .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
        .build();
    if let Some(c) = crate::proxy::source_colorimetry(s)
        && let Some(st) = pre.make_mut().structure_mut(0)
    {
        st.set("colorimetry", c.as_str());
    }
    scaled.set_property("caps", &pre);
    flip.set_property_from_str(
        "video-direction",
        crate::proxy::flip_direction(rotation, flipped),
    );
    rgb.set_property(
        "caps",
        gst::Caps::builder("video/x-raw")
            .field("format", "RGB")
            .field("width", int(out_w))
            .field("height", int(out_h))
            .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
            .build(),
    );
    Ok(())
}

fn wait_async_done(bus: &gst::Bus) -> Result<(), ThumbError> {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err(err("timed-out", "decoding a frame took too long"));
        }
        let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(left.as_millis() as u64))
        else {
            continue;
        };
        match msg.view() {
            gst::MessageView::AsyncDone(_) => return Ok(()),
            gst::MessageView::Error(e) => {
                return Err(err("not-decodable", e.error().to_string()));
            }
            _ => {}
        }
    }
}

fn to_frame(sample: &gst::Sample) -> Result<Frame, ThumbError> {
    let caps = sample
        .caps()
        .ok_or_else(|| err("internal", "frame without caps"))?;
    let s = caps
        .structure(0)
        .ok_or_else(|| err("internal", "empty caps"))?;
    let width = s
        .get::<i32>("width")
        .map_err(|e| err("internal", e.to_string()))?;
    let height = s
        .get::<i32>("height")
        .map_err(|e| err("internal", e.to_string()))?;
    let buffer = sample
        .buffer()
        .ok_or_else(|| err("internal", "frame without data"))?;
    let map = buffer
        .map_readable()
        .map_err(|e| err("internal", e.to_string()))?;
    let (width, height) = (
        u32::try_from(width).unwrap_or(0),
        u32::try_from(height).unwrap_or(0),
    );
    // RGB rows are padded to 4 bytes.
    let stride = (width as usize * 3).div_ceil(4) * 4;
    if map.len() < stride * height as usize {
        return Err(err("internal", "short frame"));
    }
    Ok(Frame {
        width,
        height,
        stride,
        data: map.to_vec(),
    })
}

/// Encodes packed RGB (`width * 3` bytes per row) as JPEG at `out`.
fn write_jpeg(rgb: &[u8], width: u32, height: u32, out: &Path) -> Result<(), ThumbError> {
    let description = format!(
        "appsrc name=src caps=video/x-raw,format=RGB,width={width},height={height},framerate=0/1 \
         ! videoconvert ! jpegenc quality=85 ! filesink name=out"
    );
    let pipeline = gst::parse::launch(&description)
        .map_err(|e| err("internal", e.to_string()))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| err("internal", "not a pipeline"))?;
    let file = pipeline
        .by_name("out")
        .ok_or_else(|| err("internal", "no filesink"))?;
    file.set_property("location", out.to_string_lossy().to_string());
    let src = pipeline
        .by_name("src")
        .ok_or_else(|| err("internal", "no appsrc"))?;
    // videoconvert expects rows padded to 4 bytes; repack.
    let stride = (width as usize * 3).div_ceil(4) * 4;
    let mut padded = vec![0u8; stride * height as usize];
    for row in 0..height as usize {
        let from = row * width as usize * 3;
        padded[row * stride..row * stride + width as usize * 3]
            .copy_from_slice(&rgb[from..from + width as usize * 3]);
    }
    let bus = pipeline.bus().ok_or_else(|| err("internal", "no bus"))?;
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|_| err("internal", "cannot start the JPEG encoder"))?;
    let _ = src.emit_by_name::<gst::FlowReturn>("push-buffer", &[&gst::Buffer::from_slice(padded)]);
    let _ = src.emit_by_name::<gst::FlowReturn>("end-of-stream", &[]);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let outcome = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            break Err(err("timed-out", "JPEG encoding took too long"));
        }
        match bus.timed_pop(gst::ClockTime::from_mseconds(left.as_millis() as u64)) {
            Some(msg) => match msg.view() {
                gst::MessageView::Eos(_) => break Ok(()),
                gst::MessageView::Error(e) => break Err(err("internal", e.error().to_string())),
                _ => {}
            },
            None => continue,
        }
    };
    let _ = pipeline.set_state(gst::State::Null);
    outcome
}

/// Sizes of the derived pictures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThumbSpec {
    pub poster_width: u32,
    pub tile_width: u32,
    /// Tiles in the strip (one for a still image).
    pub count: u32,
    pub columns: u32,
}

/// Writes a poster (one frame, `poster_width` wide, at 10 % of the duration capped at 2 s; the
/// image itself for stills) and a strip of `count` tiles `tile_width` wide in `columns`
/// columns, returning the strip's index.
pub fn poster_and_strip(
    input: &Path,
    duration: Option<f64>,
    poster: &Path,
    strip: &Path,
    spec: ThumbSpec,
) -> Result<StripIndex, ThumbError> {
    let ThumbSpec {
        poster_width,
        tile_width,
        count,
        columns,
    } = spec;
    let (poster_at, times) = match duration.filter(|d| *d > 0.0) {
        Some(d) => {
            let n = count.max(1);
            let times: Vec<f64> = (0..n)
                .map(|i| (f64::from(i) + 0.5) * d / f64::from(n))
                .collect();
            ((d * 0.1).min(2.0), times)
        }
        None => (0.0, vec![0.0]),
    };
    write_poster(input, poster_at, poster_width, poster)?;
    let (frames, times) = grab(input, Times::At(&times), tile_width)?;
    write_sheet(&frames, times, columns, strip)
}

/// Writes one frame at `at` seconds, `width` pixels wide and upright, as a JPEG at `out`;
/// returns its size.
pub fn poster(input: &Path, at: f64, width: u32, out: &Path) -> Result<(u32, u32), ThumbError> {
    write_poster(input, at, width, out)
}

/// Writes a strip of `count` tiles `tile_width` wide at the centres of `count` equal slots of
/// the file's duration (one tile for a still image), in `columns` columns, as a JPEG at `out`.
pub fn strip(
    input: &Path,
    count: u32,
    tile_width: u32,
    columns: u32,
    out: &Path,
) -> Result<StripIndex, ThumbError> {
    let (frames, times) = grab(input, Times::Evenly(count), tile_width)?;
    write_sheet(&frames, times, columns, out)
}

fn write_poster(input: &Path, at: f64, width: u32, out: &Path) -> Result<(u32, u32), ThumbError> {
    let (frames, _) = grab(input, Times::At(&[at]), width)?;
    let first = frames
        .first()
        .ok_or_else(|| err("no-frame", "no poster frame"))?;
    write_jpeg(&packed(first), first.width, first.height, out)?;
    Ok((first.width, first.height))
}

/// Lays the frames out left to right, top to bottom, and writes the sheet.
fn write_sheet(
    frames: &[Frame],
    times: Vec<f64>,
    columns: u32,
    out: &Path,
) -> Result<StripIndex, ThumbError> {
    let first = frames.first().ok_or_else(|| err("no-frame", "no frames"))?;
    let (tw, th) = (first.width, first.height);
    let columns = columns.clamp(1, frames.len() as u32);
    let rows = (frames.len() as u32).div_ceil(columns);
    let sheet_w = tw * columns;
    let sheet_h = th * rows;
    let mut sheet = vec![0u8; sheet_w as usize * sheet_h as usize * 3];
    for (i, f) in frames.iter().enumerate() {
        let (col, row) = (i as u32 % columns, i as u32 / columns);
        let w = f.width.min(tw) as usize;
        for y in 0..f.height.min(th) as usize {
            let src = &f.data[y * f.stride..y * f.stride + w * 3];
            let dy = row as usize * th as usize + y;
            let dx = col as usize * tw as usize;
            let at = (dy * sheet_w as usize + dx) * 3;
            sheet[at..at + w * 3].copy_from_slice(src);
        }
    }
    write_jpeg(&sheet, sheet_w, sheet_h, out)?;
    Ok(StripIndex {
        tile_width: tw,
        tile_height: th,
        columns,
        rows,
        times,
    })
}

fn packed(f: &Frame) -> Vec<u8> {
    let row = f.width as usize * 3;
    (0..f.height as usize)
        .flat_map(|y| f.data[y * f.stride..y * f.stride + row].iter().copied())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 2 s, 10 fps clip whose frame n is a flat grey of luma 16 + 10n, with a keyframe each
    /// second and B-frames, so a grabbed pixel says which frame it came from; with sound, which
    /// the grab leaves undecoded and unlinked.
    fn counting_clip(dir: &Path) -> std::path::PathBuf {
        let out = dir.join("count.mp4");
        let ok = std::process::Command::new("ffmpeg")
            .args([
                "-hide_banner",
                "-loglevel",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
            ])
            .arg("color=black:s=160x90:r=10:d=2,format=yuv420p,geq=lum='16+10*N':cb=128:cr=128")
            .args(["-f", "lavfi", "-i", "sine=sample_rate=48000:duration=2"])
            .args([
                "-c:v", "libx264", "-qp", "0", "-g", "10", "-bf", "2", "-c:a", "aac",
            ])
            .arg(&out)
            .status()
            .expect("ffmpeg runs")
            .success();
        assert!(ok, "ffmpeg");
        out
    }

    /// Which frame a grabbed RGB picture shows: its grey back to the luma step (steps of about
    /// 11.6 leave room for the converters' rounding).
    fn frame_number(f: &Frame) -> i64 {
        let grey = f64::from(f.data[f.stride * (f.height as usize / 2) + 3 * 10]);
        (grey / (10.0 * 255.0 / 219.0)).round() as i64
    }

    #[test]
    fn grabs_are_the_exact_frames_asked_for() {
        let dir = tempfile::tempdir().expect("tempdir");
        let clip = counting_clip(dir.path());
        // The first time is sought before anything is decoded (1.45 s: frame 14, four past the
        // keyframe at 1 s); then ordinary seeks, backwards included.
        let (frames, times) = grab(&clip, Times::At(&[1.45, 0.52, 1.96, 0.0]), 80).expect("grab");
        assert_eq!(times, vec![1.45, 0.52, 1.96, 0.0]);
        let got: Vec<i64> = frames.iter().map(frame_number).collect();
        assert_eq!(got, vec![14, 5, 19, 0]);
        assert_eq!((frames[0].width, frames[0].height), (80, 45));

        // Evenly spaced: the centres of 4 slots of 2 s.
        let (frames, times) = grab(&clip, Times::Evenly(4), 80).expect("grab");
        assert_eq!(times, vec![0.25, 0.75, 1.25, 1.75]);
        let got: Vec<i64> = frames.iter().map(frame_number).collect();
        assert_eq!(got, vec![2, 7, 12, 17]);
    }
}
