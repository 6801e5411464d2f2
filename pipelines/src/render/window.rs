//! Building a render's later parts while it runs.
//!
//! A render built whole holds every source's decoder, buffer pools, queues and threads from the
//! first frame: a 60-cut timeline of 1080p sources peaked at 2.3 GB resident. Instead, each video
//! segment and each piece of sound whose start lies more than [`LOOKAHEAD_NS`] of media time
//! ahead is *deferred*: a job that builds it into the running pipeline once the output gets
//! that close. Finished segments are shut down (see `build::release_when_done`), so what is
//! alive at any moment is what plays in a window of a few seconds.
//!
//! Video needs nothing more: `concat` waits on its next pad until that segment delivers. Sound
//! does: `audiomixer` mixes whatever pads it has, so a piece added after the mixer passed its
//! start would be late and dropped. The mixer's output therefore waits ([`Window::hold`]) until
//! every piece starting within [`GUARD_NS`] of it has been added.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use gst::prelude::*;
use gstreamer as gst;

use super::RenderError;

/// How far ahead of the output a deferred part is built by default: opening a file,
/// positioning it and decoding up to its first frame (up to a GOP) has to fit in the media time
/// this covers. Shorter only costs waiting; longer, memory.
pub const LOOKAHEAD_NS: i64 = 2_000_000_000;

/// The mixer holds its output while a piece of sound starting this close has not been added.
/// Larger than one mixer buffer (10 ms).
const GUARD_NS: i64 = 200_000_000;

/// Longest the mixer waits for a piece to be built before carrying on (the stall watchdog
/// reports a render that stops making progress).
const HOLD_LIMIT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    Video,
    Audio,
}

/// Builds a deferred part into the pipeline (and sets its elements' states).
pub(crate) type Job = Box<dyn FnOnce(&gst::Pipeline) -> Result<(), RenderError> + Send>;

struct Deferred {
    stream: Stream,
    /// Running time at which the part must be in place.
    at_ns: i64,
    /// Taken when the build starts.
    job: Option<Job>,
    done: bool,
}

#[derive(Default)]
struct State {
    parts: Vec<Deferred>,
    error: Option<RenderError>,
    closed: bool,
}

/// The deferred parts of one render.
pub(crate) struct Window {
    pipeline: gst::glib::WeakRef<gst::Pipeline>,
    lookahead_ns: i64,
    state: Mutex<State>,
    changed: Condvar,
}

impl Window {
    pub(crate) fn new(pipeline: &gst::Pipeline, lookahead_ns: i64) -> Arc<Window> {
        Arc::new(Window {
            pipeline: pipeline.downgrade(),
            lookahead_ns: lookahead_ns.max(0),
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
        })
    }

    /// Whether a part starting at `at_ns` is built up front.
    pub(crate) fn eager(&self, at_ns: i64) -> bool {
        at_ns <= self.lookahead_ns
    }

    pub(crate) fn defer(&self, stream: Stream, at_ns: i64, job: Job) {
        if let Ok(mut st) = self.state.lock() {
            st.parts.push(Deferred {
                stream,
                at_ns,
                job: Some(job),
                done: false,
            });
        }
    }

    /// Parts still to be built or being built.
    pub(crate) fn outstanding(&self) -> usize {
        self.state
            .lock()
            .map(|s| s.parts.iter().filter(|p| !p.done).count())
            .unwrap_or(0)
    }

    /// The output of `stream` has reached running time `pos_ns`: start building what is due.
    /// Builds run on GStreamer's thread pool, never in the streaming thread that reports.
    pub(crate) fn reached(self: &Arc<Self>, stream: Stream, pos_ns: i64) {
        // Never less than what `hold` waits for.
        let ahead = self.lookahead_ns.max(GUARD_NS);
        let due: Vec<(usize, Job)> = {
            let Ok(mut st) = self.state.lock() else {
                return;
            };
            if st.closed {
                return;
            }
            st.parts
                .iter_mut()
                .enumerate()
                .filter(|(_, p)| p.stream == stream && p.at_ns <= pos_ns + ahead)
                .filter_map(|(i, p)| p.job.take().map(|j| (i, j)))
                .collect()
        };
        if due.is_empty() {
            return;
        }
        let Some(pipeline) = self.pipeline.upgrade() else {
            return;
        };
        for (i, job) in due {
            let me = self.clone();
            pipeline.call_async(move |e| {
                let result = match e.downcast_ref::<gst::Pipeline>() {
                    Some(p) => job(p),
                    None => Err(super::internal("not a pipeline")),
                };
                me.finish(i, result);
            });
        }
    }

    fn finish(&self, i: usize, result: Result<(), RenderError>) {
        let failed = {
            let Ok(mut st) = self.state.lock() else {
                return;
            };
            if let Some(p) = st.parts.get_mut(i) {
                p.done = true;
            }
            match result {
                Ok(()) => false,
                Err(e) => {
                    tracing::warn!(error = %e, "render: building a later part failed");
                    st.error.get_or_insert(e);
                    true
                }
            }
        };
        self.changed.notify_all();
        if failed && let Some(p) = self.pipeline.upgrade() {
            // The driver reads the error itself from `take_error`; the message wakes it.
            let _ = p.post_message(
                gst::message::Error::builder(
                    gst::CoreError::Failed,
                    "building a later part of the render failed",
                )
                .src(&p)
                .build(),
            );
        }
    }

    /// Blocks (the mixer's streaming thread) until every part of `stream` that must be in place
    /// by `pos_ns + GUARD_NS` has been built.
    pub(crate) fn hold(&self, stream: Stream, pos_ns: i64) {
        let limit = pos_ns + GUARD_NS;
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        let deadline = std::time::Instant::now() + HOLD_LIMIT;
        loop {
            let waiting = st
                .parts
                .iter()
                .any(|p| p.stream == stream && !p.done && p.at_ns <= limit);
            if !waiting || st.closed || st.error.is_some() {
                return;
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                tracing::warn!("render: a piece of sound was not built in time");
                return;
            }
            st = match self.changed.wait_timeout(st, left) {
                Ok((g, _)) => g,
                Err(_) => return,
            };
        }
    }

    /// The first failure of a deferred build.
    pub(crate) fn take_error(&self) -> Option<RenderError> {
        self.state.lock().ok().and_then(|mut s| s.error.take())
    }

    /// The render is over: drop what was not built (and the references its jobs hold), and
    /// release a waiting mixer.
    pub(crate) fn close(&self) {
        if let Ok(mut st) = self.state.lock() {
            st.closed = true;
            st.parts.clear();
        }
        self.changed.notify_all();
    }
}

/// Sets the states of elements added to a running pipeline: everything that consumes first,
/// then the sources, so no source pushes into an element that is not running yet (it would
/// get `flushing` and stop for good).
pub(crate) fn start(elements: &[gst::Element]) -> Result<(), RenderError> {
    let is_source = |e: &gst::Element| e.sink_pads().is_empty();
    for e in elements.iter().filter(|e| !is_source(e)) {
        e.sync_state_with_parent()
            .map_err(|_| super::internal(format!("cannot start {}", e.name())))?;
    }
    for e in elements.iter().filter(|e| is_source(e)) {
        e.sync_state_with_parent()
            .map_err(|_| super::internal(format!("cannot start {}", e.name())))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_due_a_lookahead_before_they_start_and_hold_waits_for_them() {
        gst::init().expect("gst");
        let pipeline = gst::Pipeline::new();
        let w = Window::new(&pipeline, 4_000_000_000);
        let (tx, rx) = std::sync::mpsc::channel::<i64>();
        for at in [5_000_000_000i64, 9_000_000_000] {
            let tx = tx.clone();
            w.defer(
                Stream::Audio,
                at,
                Box::new(move |_| {
                    let _ = tx.send(at);
                    Ok(())
                }),
            );
        }
        w.defer(Stream::Video, 5_000_000_000, Box::new(|_| Ok(())));
        assert!(w.eager(4_000_000_000) && !w.eager(4_000_000_001));
        assert_eq!(w.outstanding(), 3);
        w.reached(Stream::Audio, 500_000_000);
        assert!(rx.recv_timeout(Duration::from_millis(200)).is_err());
        w.reached(Stream::Audio, 1_000_000_000);
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(5)).ok(),
            Some(5_000_000_000)
        );
        // The video part is not started by sound reaching its time.
        w.hold(Stream::Audio, 4_900_000_000);
        assert_eq!(w.outstanding(), 2);
        w.close();
        assert_eq!(w.outstanding(), 0);
    }

    #[test]
    fn a_failed_build_is_kept_for_the_driver() {
        gst::init().expect("gst");
        let pipeline = gst::Pipeline::new();
        let w = Window::new(&pipeline, 4_000_000_000);
        w.defer(
            Stream::Video,
            6_000_000_000,
            Box::new(|_| Err(RenderError::NotDecodable("x".into()))),
        );
        w.reached(Stream::Video, 3_000_000_000);
        w.hold(Stream::Video, 6_000_000_000);
        assert_eq!(w.take_error().map(|e| e.code()), Some("not-decodable"));
    }
}
