//! `FrameMap`: the element that turns a decoded source stream into exactly the output frames a
//! layer needs, with output timestamps.
//!
//! For output frame `i` it wants the source frame on screen at source time `targets[i]` (the
//! latest frame whose timestamp is ≤ the target, within [`TOLERANCE_NS`]); it sends that frame
//! (a shallow copy: the memory is shared) stamped `pts[i]`. This one rule gives exact cuts, frame
//! rate conversion (a 25 fps source on a 30 fps grid repeats the frames `floor(t × 25)`), any
//! speed (fast and slow motion), holding the last frame when the source ends early, and reversed
//! playback (targets that go backwards are collected from a forward decode, then sent in order).
//! `videorate` cannot do this: it picks the *nearest* frame and knows nothing of speed.
//!
//! It also isolates the branch: the flushing seek that positions the decoder is swallowed here
//! (nothing downstream has seen data yet), and the upstream segment is replaced by one starting
//! at 0, so downstream sees a plain stream of exactly `targets.len()` frames and then EOS.

use std::sync::{LazyLock, Mutex};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gstreamer as gst;

/// Source timestamps within this much after a target still count as "on screen" at it:
/// containers store times in their own timescales, so a frame meant to start exactly at a
/// target may be stamped a nanosecond late.
pub(crate) const TOLERANCE_NS: i64 = 1_000;

/// What a branch must output.
#[derive(Debug, Clone, Default)]
pub(crate) struct MapSpec {
    /// Source stream time (ns) wanted at each output frame, in output order.
    pub targets: Vec<i64>,
    /// Output timestamps: frame `i` is stamped `pts[i]` and lasts until `pts[i + 1]`
    /// (`targets.len() + 1` entries).
    pub pts: Vec<u64>,
    /// Output frame rate written into the caps.
    pub fps: (i32, i32),
    /// For messages.
    pub label: String,
    /// Everything downstream of this branch copies or maps frames through their video meta
    /// (a compositor, a scaler that changes the size): upstream may then hand over padded
    /// decoder buffers instead of copying each frame into the default layout.
    pub video_meta: bool,
}

#[derive(Default)]
struct State {
    spec: MapSpec,
    /// Forward: index of the next target to decide.
    next: usize,
    prev: Option<gst::Buffer>,
    segment: Option<gst::FormattedSegment<gst::ClockTime>>,
    sent_segment: bool,
    finished: bool,
    /// Reversed/non-monotonic targets: indices sorted by target, the next one to decide, the
    /// frame chosen for each output frame, and the last deep copy (shared between targets).
    order: Vec<usize>,
    chosen: Vec<Option<gst::Buffer>>,
    last_copy: Option<(i64, gst::Buffer)>,
    collecting: bool,
}

mod imp {
    use super::*;

    pub struct FrameMap {
        pub(super) sinkpad: gst::Pad,
        pub(super) srcpad: gst::Pad,
        pub(super) state: Mutex<State>,
    }

    #[glib::object_subclass]
    impl ObjectSubclass for FrameMap {
        const NAME: &'static str = "NveFrameMap";
        type Type = super::FrameMap;
        type ParentType = gst::Element;

        fn with_class(klass: &Self::Class) -> Self {
            let sink_t = klass.pad_template("sink").expect("sink template");
            let sinkpad = gst::Pad::builder_from_template(&sink_t)
                .chain_function(|pad, parent, buffer| {
                    FrameMap::catch_panic_pad_function(
                        parent,
                        || Err(gst::FlowError::Error),
                        |this| this.chain(pad, buffer),
                    )
                })
                .event_function(|pad, parent, event| {
                    FrameMap::catch_panic_pad_function(
                        parent,
                        || false,
                        |this| this.sink_event(pad, event),
                    )
                })
                .query_function(|pad, parent, query| {
                    FrameMap::catch_panic_pad_function(
                        parent,
                        || false,
                        |this| this.sink_query(pad, query),
                    )
                })
                .build();
            let src_t = klass.pad_template("src").expect("src template");
            let srcpad = gst::Pad::builder_from_template(&src_t)
                .query_function(|pad, parent, query| {
                    FrameMap::catch_panic_pad_function(
                        parent,
                        || false,
                        |this| this.src_query(pad, query),
                    )
                })
                .build();
            FrameMap {
                sinkpad,
                srcpad,
                state: Mutex::new(State::default()),
            }
        }
    }

    impl ObjectImpl for FrameMap {
        fn constructed(&self) {
            self.parent_constructed();
            let obj = self.obj();
            let _ = obj.add_pad(&self.sinkpad);
            let _ = obj.add_pad(&self.srcpad);
        }
    }

    impl GstObjectImpl for FrameMap {}

    impl ElementImpl for FrameMap {
        fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
            static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
                gst::subclass::ElementMetadata::new(
                    "nve frame map",
                    "Filter/Video",
                    "Picks the source frame shown at each output frame's source time",
                    "nve",
                )
            });
            Some(&*META)
        }

        fn pad_templates() -> &'static [gst::PadTemplate] {
            static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
                let caps = gst::Caps::new_empty_simple("video/x-raw");
                ["src", "sink"]
                    .into_iter()
                    .map(|name| {
                        let dir = if name == "src" {
                            gst::PadDirection::Src
                        } else {
                            gst::PadDirection::Sink
                        };
                        gst::PadTemplate::new(name, dir, gst::PadPresence::Always, &caps)
                            .expect("pad template")
                    })
                    .collect()
            });
            TEMPLATES.as_ref()
        }
    }

    impl FrameMap {
        fn lock(&self) -> std::sync::MutexGuard<'_, State> {
            self.state.lock().unwrap_or_else(|p| p.into_inner())
        }

        fn with_rate(&self, caps: &gst::Caps) -> gst::Caps {
            let (n, d) = self.lock().spec.fps;
            let mut caps = caps.clone();
            for s in caps.make_mut().iter_mut() {
                s.set("framerate", gst::Fraction::new(n, d));
            }
            caps
        }

        fn without_rate(caps: &gst::Caps) -> gst::Caps {
            let mut caps = caps.clone();
            for s in caps.make_mut().iter_mut() {
                s.remove_field("framerate");
            }
            caps
        }

        fn sink_query(&self, pad: &gst::Pad, query: &mut gst::QueryRef) -> bool {
            match query.view_mut() {
                gst::QueryViewMut::Caps(q) => {
                    // Upstream may produce any frame rate: this element makes the output's.
                    let down = self.srcpad.peer_query_caps(None);
                    let mut caps = Self::without_rate(&down);
                    if let Some(f) = q.filter() {
                        caps = f.intersect_with_mode(&caps, gst::CapsIntersectMode::First);
                    }
                    q.set_result(&caps);
                    true
                }
                gst::QueryViewMut::AcceptCaps(q) => {
                    let down = Self::without_rate(&self.srcpad.peer_query_caps(None));
                    let ok = Self::without_rate(&q.caps_owned()).can_intersect(&down);
                    q.set_result(ok);
                    true
                }
                // Answered here, not forwarded: downstream of a later segment sits behind an
                // inactive concat pad, which holds serialized queries until its turn, and the
                // decoder would never produce the first frame the positioning seek waits for.
                // The decoder then uses its own buffer pool; told that video meta is fine, it
                // sends its padded frames as they are rather than copying each one.
                gst::QueryViewMut::Allocation(q) => {
                    let ok = self.lock().spec.video_meta;
                    if ok {
                        q.add_allocation_meta::<gstreamer_video::VideoMeta>(None);
                    }
                    ok
                }
                gst::QueryViewMut::Drain(_) => true,
                _ => gst::Pad::query_default(pad, Some(&*self.obj()), query),
            }
        }

        fn src_query(&self, pad: &gst::Pad, query: &mut gst::QueryRef) -> bool {
            match query.view_mut() {
                gst::QueryViewMut::Caps(q) => {
                    let up = self.sinkpad.peer_query_caps(None);
                    let mut caps = self.with_rate(&Self::without_rate(&up));
                    if let Some(f) = q.filter() {
                        caps = f.intersect_with_mode(&caps, gst::CapsIntersectMode::First);
                    }
                    q.set_result(&caps);
                    true
                }
                _ => gst::Pad::query_default(pad, Some(&*self.obj()), query),
            }
        }

        fn sink_event(&self, pad: &gst::Pad, event: gst::Event) -> bool {
            match event.view() {
                // The flushing seek that positions the branch: nothing downstream has data.
                gst::EventView::FlushStart(_) => true,
                gst::EventView::FlushStop(_) => {
                    let mut st = self.lock();
                    if !st.sent_segment {
                        st.next = 0;
                        st.prev = None;
                        st.last_copy = None;
                        let n = st.spec.targets.len();
                        st.chosen = vec![None; n];
                    }
                    true
                }
                gst::EventView::Segment(s) => {
                    if let Ok(seg) = s.segment().clone().downcast::<gst::ClockTime>() {
                        self.lock().segment = Some(seg);
                    }
                    true
                }
                gst::EventView::Caps(c) => {
                    let caps = self.with_rate(&c.caps_owned());
                    self.srcpad.push_event(gst::event::Caps::new(&caps))
                }
                gst::EventView::Gap(_) => true,
                gst::EventView::Eos(_) => {
                    let res = self.finish();
                    if let Err(e) = res
                        && e != gst::FlowError::Eos
                        && e != gst::FlowError::Flushing
                    {
                        tracing::debug!(error = ?e, "frame map: pushing the held frames failed");
                    }
                    true
                }
                _ => gst::Pad::event_default(pad, Some(&*self.obj()), event),
            }
        }

        /// Stream time of a buffer (its position in the source).
        fn time_of(st: &State, buf: &gst::BufferRef) -> Option<i64> {
            let pts = buf.pts()?;
            let t = st
                .segment
                .as_ref()
                .and_then(|s| s.to_stream_time(pts))
                .unwrap_or(pts);
            i64::try_from(t.nseconds()).ok()
        }

        fn push_frame(
            &self,
            st: &mut State,
            i: usize,
            src: &gst::Buffer,
        ) -> Result<(), gst::FlowError> {
            if !st.sent_segment {
                let seg = gst::FormattedSegment::<gst::ClockTime>::new();
                self.srcpad.push_event(gst::event::Segment::new(&seg));
                st.sent_segment = true;
            }
            let (Some(&a), Some(&b)) = (st.spec.pts.get(i), st.spec.pts.get(i + 1)) else {
                return Err(gst::FlowError::Error);
            };
            let mut out = src.copy();
            {
                let o = out.make_mut();
                o.set_pts(gst::ClockTime::from_nseconds(a));
                o.set_dts(gst::ClockTime::NONE);
                o.set_duration(gst::ClockTime::from_nseconds(b.saturating_sub(a)));
                o.set_offset(u64::MAX);
                o.set_offset_end(u64::MAX);
                if i == 0 {
                    o.set_flags(gst::BufferFlags::DISCONT);
                } else {
                    o.unset_flags(gst::BufferFlags::DISCONT);
                }
            }
            // The state lock is held while pushing: this element has one streaming thread and
            // nothing else takes the lock while data flows.
            self.srcpad.push(out).map(|_| ())
        }

        fn chain(
            &self,
            _pad: &gst::Pad,
            buffer: gst::Buffer,
        ) -> Result<gst::FlowSuccess, gst::FlowError> {
            let mut st = self.lock();
            if st.finished {
                return Err(gst::FlowError::Eos);
            }
            let Some(p) = Self::time_of(&st, &buffer) else {
                return Ok(gst::FlowSuccess::Ok);
            };
            let n = st.spec.targets.len();
            if st.collecting {
                while st.next < n {
                    let idx = st.order[st.next];
                    if st.spec.targets[idx] + TOLERANCE_NS >= p {
                        break;
                    }
                    // The frame on screen at this target is the previous one (or, before the
                    // first frame, this one).
                    let pick = match &st.prev {
                        Some(b) => b.clone(),
                        None => buffer.clone(),
                    };
                    let copy = self.deep_copy(&mut st, &pick);
                    st.chosen[idx] = Some(copy);
                    st.next += 1;
                }
                st.prev = Some(buffer);
                if st.next >= n {
                    drop(st);
                    return self.finish().map(|_| gst::FlowSuccess::Ok);
                }
                return Ok(gst::FlowSuccess::Ok);
            }
            while st.next < n && st.spec.targets[st.next] + TOLERANCE_NS < p {
                let i = st.next;
                let pick = st.prev.clone().unwrap_or_else(|| buffer.clone());
                self.push_frame(&mut st, i, &pick)?;
                st.next += 1;
            }
            st.prev = Some(buffer);
            if st.next >= n {
                drop(st);
                self.finish()?;
                return Err(gst::FlowError::Eos);
            }
            Ok(gst::FlowSuccess::Ok)
        }

        fn deep_copy(&self, st: &mut State, b: &gst::Buffer) -> gst::Buffer {
            let t = b.pts().map_or(-1, |p| p.nseconds() as i64);
            if let Some((lt, c)) = &st.last_copy
                && *lt == t
            {
                return c.clone();
            }
            // Held frames must not come from the decoder's pool, or a long reverse would starve
            // it.
            let c = b.copy_deep().unwrap_or_else(|_| b.clone());
            st.last_copy = Some((t, c.clone()));
            c
        }

        /// Sends every frame not yet sent (holding the last source frame), then EOS.
        fn finish(&self) -> Result<(), gst::FlowError> {
            let mut st = self.lock();
            if st.finished {
                return Ok(());
            }
            st.finished = true;
            let n = st.spec.targets.len();
            let result = (|| {
                if st.collecting {
                    while st.next < n {
                        let idx = st.order[st.next];
                        let Some(prev) = st.prev.clone() else { break };
                        let copy = self.deep_copy(&mut st, &prev);
                        st.chosen[idx] = Some(copy);
                        st.next += 1;
                    }
                    for i in 0..n {
                        let Some(b) = st.chosen[i].take() else {
                            return Err(gst::FlowError::Error);
                        };
                        self.push_frame(&mut st, i, &b)?;
                    }
                    st.prev = None;
                    st.last_copy = None;
                    return Ok(());
                }
                while st.next < n {
                    let Some(prev) = st.prev.clone() else {
                        return Err(gst::FlowError::Error);
                    };
                    let i = st.next;
                    self.push_frame(&mut st, i, &prev)?;
                    st.next += 1;
                }
                st.prev = None;
                Ok(())
            })();
            let label = st.spec.label.clone();
            drop(st);
            if result == Err(gst::FlowError::Error) {
                gst::element_imp_error!(
                    self,
                    gst::StreamError::Decode,
                    ["{}: no picture could be decoded in the source range", label]
                );
                return result;
            }
            self.srcpad.push_event(gst::event::Eos::new());
            result
        }
    }
}

glib::wrapper! {
    pub struct FrameMap(ObjectSubclass<imp::FrameMap>) @extends gst::Element, gst::Object;
}

impl FrameMap {
    pub(crate) fn new(spec: MapSpec) -> FrameMap {
        let fm: FrameMap = glib::Object::new();
        {
            let mut st = fm.imp().lock_state();
            let n = spec.targets.len();
            let monotonic = spec.targets.windows(2).all(|w| w[0] <= w[1]);
            st.collecting = !monotonic;
            if st.collecting {
                let mut order: Vec<usize> = (0..n).collect();
                order.sort_by_key(|&i| spec.targets[i]);
                st.order = order;
                st.chosen = vec![None; n];
            }
            st.spec = spec;
        }
        fm
    }
}

impl imp::FrameMap {
    fn lock_state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}
