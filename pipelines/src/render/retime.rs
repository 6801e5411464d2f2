//! Sound at another speed or backwards.
//!
//! The stretch of source a segment plays is decoded once, resampled so that its samples at the
//! output rate last exactly as long as the segment (a clip at speed 2 is decoded at half the
//! output rate and played at the output rate: twice as fast, an octave higher, like tape), and
//! reversed when the clip is. Resampling is `audioresample`'s (band-limited), so speeding up
//! does not alias. The result is pushed by an `appsrc` into the same mixer input as a
//! streamed segment, so gain, fades and placement are shared with the plain path.
//!
//! Live streaming with a rate in the seek was the other way: `audiomixer` only mixes segments
//! of rate 1, and reverse playback of compressed audio through decoders is not exact to the
//! sample. Decoding ahead is bounded by [`super::plan::RETIMED_SOUND_LIMIT_SECS`].

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use gst::prelude::*;
use gstreamer as gst;
use gstreamer_app as gst_app;

use super::{RenderError, internal};

/// How long a stretch's decoding may take before it counts as stalled.
const DECODE_TIMEOUT: Duration = Duration::from_secs(120);

/// Samples of `[lo_ns, hi_ns)` of `path`'s sound, interleaved F32 at `rate` and `channels`.
/// Where the file has no sound for part of the stretch (it starts late or ends early), that
/// part is silence, so positions stay exact.
pub(crate) fn decode_stretch(
    path: &Path,
    (lo_ns, hi_ns): (i64, i64),
    rate: i32,
    channels: i32,
) -> Result<Vec<f32>, RenderError> {
    let label = path.display().to_string();
    let abs = std::fs::canonicalize(path)
        .map_err(|e| RenderError::MissingSource(format!("{label}: {e}")))?;
    let uri = gst::glib::filename_to_uri(&abs, None).map_err(internal)?;
    let pipeline = gst::Pipeline::new();
    let guard = NullOnDrop(pipeline.clone());
    let dec = gst::ElementFactory::make("uridecodebin")
        .property("uri", uri.as_str())
        .build()
        .map_err(internal)?;
    let conv = gst::ElementFactory::make("audioconvert")
        .build()
        .map_err(internal)?;
    let res = gst::ElementFactory::make("audioresample")
        .property("quality", 6i32)
        .build()
        .map_err(internal)?;
    let caps = gst::Caps::builder("audio/x-raw")
        .field("format", "F32LE")
        .field("layout", "interleaved")
        .field("rate", rate)
        .field("channels", channels)
        .build();
    let sink = gst_app::AppSink::builder().caps(&caps).sync(false).build();
    pipeline
        .add_many([&dec, &conv, &res, sink.upcast_ref()])
        .map_err(internal)?;
    gst::Element::link_many([&conv, &res, sink.upcast_ref()]).map_err(internal)?;
    let conv_sink = conv
        .static_pad("sink")
        .ok_or_else(|| internal("audioconvert without sink"))?;
    let linked = super::build::decode_only(&dec, "audio", move |pad| {
        if let Err(e) = pad.link(&conv_sink) {
            tracing::warn!(error = ?e, "retime: linking the decoded sound failed");
        }
    });
    let bus = pipeline.bus().ok_or_else(|| internal("no bus"))?;
    let fail = |msg: &gst::Message| -> RenderError {
        match msg.view() {
            gst::MessageView::Error(e) => {
                RenderError::NotDecodable(format!("{label} (sound): {}", e.error()))
            }
            _ => internal("unexpected message"),
        }
    };
    pipeline
        .set_state(gst::State::Paused)
        .map_err(|_| RenderError::NotDecodable(format!("{label} (sound): cannot open")))?;
    let deadline = Instant::now() + DECODE_TIMEOUT;
    // Preroll, then position.
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(RenderError::TimedOut(format!("{label}: opening its sound")));
        }
        let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(left.as_millis() as u64))
        else {
            continue;
        };
        match msg.view() {
            gst::MessageView::AsyncDone(_) => break,
            gst::MessageView::Error(_) => return Err(fail(&msg)),
            _ => {}
        }
    }
    if !linked.load(Ordering::Acquire) {
        return Err(RenderError::NotDecodable(format!(
            "{label}: the file has no sound stream"
        )));
    }
    let ns = |v: i64| gst::ClockTime::from_nseconds(u64::try_from(v.max(0)).unwrap_or(0));
    pipeline
        .seek(
            1.0,
            gst::SeekFlags::FLUSH | gst::SeekFlags::ACCURATE,
            gst::SeekType::Set,
            ns(lo_ns),
            gst::SeekType::Set,
            ns(hi_ns.max(lo_ns + 1)),
        )
        .map_err(|_| {
            RenderError::NotDecodable(format!("{label}: the sound cannot be positioned"))
        })?;
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|_| internal("cannot play the sound decoder"))?;
    let frames = frames_in(hi_ns - lo_ns, rate);
    let ch = usize::try_from(channels.max(1)).unwrap_or(1);
    let mut out = vec![0f32; frames * ch];
    loop {
        if Instant::now() > deadline {
            return Err(RenderError::TimedOut(format!(
                "{label}: decoding its sound"
            )));
        }
        if let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error]) {
            return Err(fail(&msg));
        }
        let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_mseconds(200)) else {
            if sink.is_eos() {
                break;
            }
            continue;
        };
        let Some(buf) = sample.buffer() else { continue };
        let Some(pts) = buf.pts() else { continue };
        let map = buf.map_readable().map_err(internal)?;
        // Placed by timestamp, not appended: a stream that starts late or has a gap keeps
        // its samples where they belong.
        let first = frames_in(pts.nseconds() as i64 - lo_ns, rate) * ch;
        for (i, s) in map.chunks_exact(4).enumerate() {
            match out.get_mut(first + i) {
                Some(d) => *d = f32::from_le_bytes([s[0], s[1], s[2], s[3]]),
                None => break,
            }
        }
    }
    drop(guard);
    Ok(out)
}

/// Whole sample frames in `ns` at `rate` (rounded to nearest; negative counts as 0).
fn frames_in(ns: i64, rate: i32) -> usize {
    let n = (i128::from(ns.max(0)) * i128::from(rate.max(1)) + 500_000_000) / 1_000_000_000;
    usize::try_from(n).unwrap_or(0)
}

/// The decoding rate that makes a stretch played at `speed_milli` last its segment: samples
/// decoded at `rate * 1000 / speed` play at `rate`.
pub(crate) fn decode_rate(rate: u32, speed_milli: u32) -> i32 {
    let r = (u64::from(rate) * 1000 + u64::from(speed_milli.max(1)) / 2)
        / u64::from(speed_milli.max(1));
    i32::try_from(r.clamp(1, i32::MAX as u64)).unwrap_or(i32::MAX)
}

/// Exactly `frames` sample frames of `decoded` (cut, or padded with silence at the source's
/// end), in reverse order when `reverse`.
pub(crate) fn fit(
    mut decoded: Vec<f32>,
    channels: usize,
    frames: usize,
    reverse: bool,
) -> Vec<f32> {
    let ch = channels.max(1);
    decoded.resize(frames * ch, 0.0);
    if reverse {
        // Reverse the order of sample frames, keeping each frame's channels in order.
        let n = frames;
        for i in 0..n / 2 {
            let (a, b) = (i * ch, (n - 1 - i) * ch);
            for c in 0..ch {
                decoded.swap(a + c, b + c);
            }
        }
    }
    decoded
}

/// An `appsrc` that plays `[lo_ns, hi_ns)` of `path` retimed to last `frames_out` sample frames
/// at `rate`: decoded on its first request for data (in its own streaming thread, so sources
/// decode side by side and only when the pipeline starts), then pushed in 100 ms buffers.
pub(crate) fn retimed_source(
    src: &gst_app::AppSrc,
    path: &Path,
    (lo_ns, hi_ns): (i64, i64),
    speed_milli: u32,
    reverse: bool,
    (rate, channels): (u32, u16),
    frames_out: usize,
) {
    let path = path.to_path_buf();
    let ch = usize::from(channels.max(1));
    let chunk = (rate as usize / 10).max(1);
    let state: Mutex<Option<(Vec<f32>, usize)>> = Mutex::new(None);
    src.set_callbacks(
        gst_app::AppSrcCallbacks::builder()
            .need_data(move |src, _| {
                let Ok(mut st) = state.lock() else { return };
                if st.is_none() {
                    let decoded = decode_stretch(
                        &path,
                        (lo_ns, hi_ns),
                        decode_rate(rate, speed_milli),
                        i32::from(channels),
                    );
                    match decoded {
                        Ok(d) => *st = Some((fit(d, ch, frames_out, reverse), 0)),
                        Err(e) => {
                            let _ = src.post_message(
                                gst::message::Error::builder(
                                    gst::StreamError::Decode,
                                    &e.to_string(),
                                )
                                .src(src)
                                .build(),
                            );
                            return;
                        }
                    }
                }
                let Some((samples, pos)) = st.as_mut() else {
                    return;
                };
                if *pos >= frames_out {
                    let _ = src.end_of_stream();
                    // Done: the samples are not needed any more.
                    *st = Some((Vec::new(), frames_out));
                    return;
                }
                let n = chunk.min(frames_out - *pos);
                let Some(slice) = samples.get(*pos * ch..(*pos + n) * ch) else {
                    let _ = src.end_of_stream();
                    return;
                };
                let mut bytes = Vec::with_capacity(slice.len() * 4);
                for v in slice {
                    bytes.extend_from_slice(&v.to_le_bytes());
                }
                let mut buf = gst::Buffer::from_mut_slice(bytes);
                if let Some(b) = buf.get_mut() {
                    let t = |f: usize| {
                        gst::ClockTime::from_nseconds(
                            (f as u128 * 1_000_000_000 / u128::from(rate.max(1))) as u64,
                        )
                    };
                    b.set_pts(t(*pos));
                    b.set_duration(t(*pos + n) - t(*pos));
                }
                *pos += n;
                let _ = src.push_buffer(buf);
            })
            .build(),
    );
}

struct NullOnDrop(gst::Pipeline);

impl Drop for NullOnDrop {
    fn drop(&mut self) {
        let _ = self.0.set_state(gst::State::Null);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_rate_makes_the_stretch_last_the_segment() {
        assert_eq!(decode_rate(48_000, 1000), 48_000);
        assert_eq!(decode_rate(48_000, 2000), 24_000);
        assert_eq!(decode_rate(48_000, 500), 96_000);
        assert_eq!(decode_rate(44_100, 1500), 29_400);
        assert_eq!(decode_rate(48_000, 700), 68_571);
    }

    #[test]
    fn fit_pads_cuts_and_reverses_whole_frames() {
        let d = vec![1.0, -1.0, 2.0, -2.0, 3.0, -3.0];
        assert_eq!(fit(d.clone(), 2, 2, false), vec![1.0, -1.0, 2.0, -2.0]);
        assert_eq!(
            fit(d.clone(), 2, 4, false),
            vec![1.0, -1.0, 2.0, -2.0, 3.0, -3.0, 0.0, 0.0]
        );
        assert_eq!(
            fit(d.clone(), 2, 3, true),
            vec![3.0, -3.0, 2.0, -2.0, 1.0, -1.0]
        );
        // Missing source at the end plays first when reversed.
        assert_eq!(
            fit(d, 2, 4, true),
            vec![0.0, 0.0, 3.0, -3.0, 2.0, -2.0, 1.0, -1.0]
        );
    }

    #[test]
    fn frames_in_rounds_to_nearest() {
        assert_eq!(frames_in(1_000_000_000, 48_000), 48_000);
        assert_eq!(frames_in(-5, 48_000), 0);
        assert_eq!(frames_in(33_366_666, 48_000), 1602);
    }
}
