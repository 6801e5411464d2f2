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

/// Grabs the frames at `times` (seconds; one frame for a still image) scaled to `width`.
fn grab(input: &Path, times: &[f64], width: u32) -> Result<Vec<Frame>, ThumbError> {
    crate::elements::inventory().map_err(|e| err("internal", e.to_string()))?;
    let abs = std::fs::canonicalize(input).map_err(|e| err("unreadable", e.to_string()))?;
    let uri =
        gst::glib::filename_to_uri(&abs, None).map_err(|e| err("unreadable", e.to_string()))?;
    let description = format!(
        "uridecodebin uri=\"{}\" ! videoconvert ! \
         videoflip video-direction=auto ! videoscale ! \
         video/x-raw,format=RGB,width={width},pixel-aspect-ratio=1/1 ! \
         appsink name=sink sync=false max-buffers=1 drop=true",
        uri.replace('"', "%22")
    );
    let pipeline = gst::parse::launch(&description)
        .map_err(|e| err("internal", e.to_string()))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| err("internal", "not a pipeline"))?;
    let sink = pipeline
        .by_name("sink")
        .ok_or_else(|| err("internal", "no sink"))?;
    let bus = pipeline.bus().ok_or_else(|| err("internal", "no bus"))?;
    let result = (|| {
        pipeline
            .set_state(gst::State::Paused)
            .map_err(|_| err("not-decodable", "the file cannot be decoded"))?;
        wait_async_done(&bus)?;
        let mut frames = Vec::with_capacity(times.len());
        for (i, t) in times.iter().enumerate() {
            if i > 0 || *t > 0.0 {
                let at = gst::ClockTime::from_nseconds((t.max(0.0) * 1e9) as u64);
                pipeline
                    .seek_simple(gst::SeekFlags::FLUSH | gst::SeekFlags::ACCURATE, at)
                    .map_err(|_| err("not-seekable", format!("cannot seek to {t:.3} s")))?;
                wait_async_done(&bus)?;
            }
            let sample = sink
                .emit_by_name::<Option<gst::Sample>>("pull-preroll", &[])
                .ok_or_else(|| err("no-frame", format!("no frame at {t:.3} s")))?;
            frames.push(to_frame(&sample)?);
        }
        Ok(frames)
    })();
    let _ = pipeline.set_state(gst::State::Null);
    result
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
    let p = grab(input, &[poster_at], poster_width)?;
    let first = p
        .first()
        .ok_or_else(|| err("no-frame", "no poster frame"))?;
    write_jpeg(&packed(first), first.width, first.height, poster)?;

    let frames = grab(input, &times, tile_width)?;
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
    write_jpeg(&sheet, sheet_w, sheet_h, strip)?;
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
