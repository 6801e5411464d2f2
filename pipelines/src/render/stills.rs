//! Stills (images, colours, titles): rasterised once into straight-alpha BGRA bitmaps and
//! blended in place on the I420 frames by `overlaycomposition` (README: no RGBA mixing at full
//! frame). Also the transition masks, shared by stills and pictures so both reveal alike.

use std::path::Path;
use std::time::Duration;

use gst::prelude::*;
use gstreamer as gst;
use gstreamer_video as gst_video;

use super::plan::{Crop, PlanOutput};
use super::{RenderError, internal};
use crate::timeline::{HAlign, Rgba, Title, TransitionKind, VAlign};

/// A straight-alpha BGRA picture (`width * 4` bytes per row).
#[derive(Clone)]
pub(crate) struct Bitmap {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
}

impl Bitmap {
    pub fn new(width: u32, height: u32) -> Bitmap {
        Bitmap {
            width,
            height,
            data: vec![0; width as usize * height as usize * 4],
        }
    }

    pub fn solid(width: u32, height: u32, c: Rgba) -> Bitmap {
        let mut b = Bitmap::new(width, height);
        for px in b.data.chunks_exact_mut(4) {
            px.copy_from_slice(&[c.b, c.g, c.r, c.a]);
        }
        b
    }

    /// Copies `src` into this bitmap with its top-left corner at (`x`, `y`), clipped.
    pub fn draw(&mut self, src: &Bitmap, x: i32, y: i32) {
        let (dw, dh) = (self.width as i64, self.height as i64);
        for sy in 0..src.height as i64 {
            let ty = i64::from(y) + sy;
            if !(0..dh).contains(&ty) {
                continue;
            }
            for sx in 0..src.width as i64 {
                let tx = i64::from(x) + sx;
                if !(0..dw).contains(&tx) {
                    continue;
                }
                let s = ((sy * src.width as i64 + sx) * 4) as usize;
                let d = ((ty * dw + tx) * 4) as usize;
                if let (Some(from), Some(to)) =
                    (src.data.get(s..s + 4), self.data.get_mut(d..d + 4))
                {
                    to.copy_from_slice(from);
                }
            }
        }
    }

    /// A buffer the overlay blender accepts (BGRA is the overlay "RGB" format on little-endian
    /// machines, which is what the video blender converts from).
    pub fn to_buffer(&self) -> Result<gst::Buffer, RenderError> {
        let mut buf = gst::Buffer::from_mut_slice(self.data.clone());
        {
            let b = buf
                .get_mut()
                .ok_or_else(|| internal("fresh buffer not writable"))?;
            gst_video::VideoMeta::add(
                b,
                gst_video::VideoFrameFlags::empty(),
                overlay_format(),
                self.width,
                self.height,
            )
            .map_err(internal)?;
        }
        Ok(buf)
    }
}

fn overlay_format() -> gst_video::VideoFormat {
    if cfg!(target_endian = "little") {
        gst_video::VideoFormat::Bgra
    } else {
        gst_video::VideoFormat::Argb
    }
}

/// Whether the incoming clip is visible at output pixel centre (`x`, `y`) at progress `p`.
/// Wipes name the direction the edge travels: `wipe_left` reveals from the right edge towards
/// the left.
pub(crate) fn reveal(kind: TransitionKind, p: f64, x: f64, y: f64, w: f64, h: f64) -> bool {
    match kind {
        TransitionKind::Crossfade => true,
        TransitionKind::WipeLeft => x >= w * (1.0 - p),
        TransitionKind::WipeRight => x < w * p,
        TransitionKind::WipeUp => y >= h * (1.0 - p),
        TransitionKind::WipeDown => y < h * p,
        TransitionKind::Iris => {
            let (dx, dy) = (x - w / 2.0, y - h / 2.0);
            let r = (w * w + h * h).sqrt() / 2.0;
            (dx * dx + dy * dy).sqrt() < p * r
        }
        TransitionKind::Clock => {
            let (dx, dy) = (x - w / 2.0, y - h / 2.0);
            // Clockwise angle from 12 o'clock, 0..1 of a turn.
            let a = dx.atan2(-dy) / std::f64::consts::TAU;
            let a = if a < 0.0 { a + 1.0 } else { a };
            a < p
        }
        TransitionKind::BarnDoorHorizontal => (x - w / 2.0).abs() < p * w / 2.0,
        TransitionKind::BarnDoorVertical => (y - h / 2.0).abs() < p * h / 2.0,
    }
}

/// Clears the alpha of a BGRA bitmap placed at (`rx`, `ry`) size (`rw`, `rh`) on screen where
/// the transition does not reveal it yet.
pub(crate) fn mask_bitmap(
    b: &mut Bitmap,
    kind: TransitionKind,
    p: f64,
    (rx, ry, rw, rh): (i32, i32, i32, i32),
    out: &PlanOutput,
) {
    let (w, h) = (f64::from(out.width), f64::from(out.height));
    let sx = f64::from(rw) / f64::from(b.width.max(1));
    let sy = f64::from(rh) / f64::from(b.height.max(1));
    let stride = b.width as usize * 4;
    for (py, row) in b.data.chunks_exact_mut(stride).enumerate() {
        let y = f64::from(ry) + (py as f64 + 0.5) * sy;
        for (px, pixel) in row.chunks_exact_mut(4).enumerate() {
            let x = f64::from(rx) + (px as f64 + 0.5) * sx;
            if !reveal(kind, p, x, y, w, h) {
                pixel[3] = 0;
            }
        }
    }
}

/// Decodes an image once: cropped (stored pixels), scaled to `w`×`h` after `turns` clockwise
/// quarter turns of the stored picture, as BGRA.
pub(crate) fn image_bitmap(
    path: &Path,
    crop: Crop,
    turns: u32,
    w: u32,
    h: u32,
) -> Result<Bitmap, RenderError> {
    if !path.is_file() {
        return Err(RenderError::MissingSource(format!(
            "{} does not exist",
            path.display()
        )));
    }
    let method = match turns % 4 {
        1 => "clockwise",
        2 => "rotate-180",
        3 => "counterclockwise",
        _ => "none",
    };
    let loc = path.to_string_lossy().replace('"', "\\\"");
    let desc = format!(
        "filesrc location=\"{loc}\" ! decodebin ! videoconvert ! videocrop left={} right={} top={} bottom={} \
         ! videoscale add-borders=false ! videoflip method={method} ! videoconvert \
         ! video/x-raw,format={},width={w},height={h},pixel-aspect-ratio=1/1 \
         ! appsink name=sink sync=false",
        crop.left,
        crop.right,
        crop.top,
        crop.bottom,
        overlay_format().to_str()
    );
    let frame = grab_one(&desc, &format!("image {}", path.display()))?;
    Ok(Bitmap {
        width: w,
        height: h,
        data: frame,
    })
}

/// Runs a one-frame pipeline ending in an appsink named `sink` and returns its frame's bytes
/// (rows packed).
fn grab_one(desc: &str, what: &str) -> Result<Vec<u8>, RenderError> {
    let pipeline = gst::parse::launch(desc)
        .map_err(internal)?
        .downcast::<gst::Pipeline>()
        .map_err(|_| internal("not a pipeline"))?;
    let result = (|| {
        let sink = pipeline
            .by_name("sink")
            .ok_or_else(|| internal("no appsink"))?;
        let bus = pipeline.bus().ok_or_else(|| internal("no bus"))?;
        pipeline
            .set_state(gst::State::Paused)
            .map_err(|_| RenderError::NotDecodable(format!("{what} cannot be decoded")))?;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if std::time::Instant::now() > deadline {
                return Err(RenderError::TimedOut(format!(
                    "decoding {what} took too long"
                )));
            }
            let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(100)) else {
                continue;
            };
            match msg.view() {
                gst::MessageView::AsyncDone(_) => break,
                gst::MessageView::Error(e) => {
                    return Err(RenderError::NotDecodable(format!("{what}: {}", e.error())));
                }
                _ => {}
            }
        }
        let sample = sink
            .emit_by_name::<Option<gst::Sample>>("pull-preroll", &[])
            .ok_or_else(|| RenderError::NotDecodable(format!("{what}: no picture")))?;
        let buffer = sample
            .buffer()
            .ok_or_else(|| internal("sample without buffer"))?;
        let caps = sample
            .caps()
            .ok_or_else(|| internal("sample without caps"))?;
        let info = gst_video::VideoInfo::from_caps(caps).map_err(internal)?;
        let map = buffer.map_readable().map_err(internal)?;
        // Repack rows without padding.
        let row = info.width() as usize * info.format_info().pixel_stride()[0].max(1) as usize;
        let stride = usize::try_from(info.stride()[0]).unwrap_or(row);
        let mut out = Vec::with_capacity(row * info.height() as usize);
        for y in 0..info.height() as usize {
            let from = y * stride + info.offset()[0];
            let Some(slice) = map.get(from..from + row) else {
                return Err(internal("short frame"));
            };
            out.extend_from_slice(slice);
        }
        Ok(out)
    })();
    let _ = pipeline.set_state(gst::State::Null);
    result
}

/// Pango weight names (the font description grammar has no numeric weights).
fn weight_name(w: u16) -> &'static str {
    match w {
        0..=149 => "Thin",
        150..=249 => "Ultra-Light",
        250..=324 => "Light",
        325..=374 => "Semi-Light",
        375..=449 => "",
        450..=549 => "Medium",
        550..=649 => "Semi-Bold",
        650..=749 => "Bold",
        750..=849 => "Ultra-Bold",
        _ => "Heavy",
    }
}

/// A rendered title and where its top-left corner goes on screen.
pub(crate) struct TitleBitmap {
    pub bitmap: Bitmap,
    pub x: i32,
    pub y: i32,
}

/// Renders a title once: Pango (through `textoverlay`) draws the text as white on black, which
/// gives its coverage; box, shadow, outline and fill are composed from it here.
pub(crate) fn title_bitmap(
    t: &Title,
    out: &PlanOutput,
) -> Result<Option<TitleBitmap>, RenderError> {
    let margin = 8u32;
    let cw = (out.width * 2).clamp(64, 8192);
    let ch = (out.height * 2).clamp(64, 8192);
    let font = format!(
        "{} {} {}px",
        t.font_family.replace(['"', ',', '\\'], " "),
        weight_name(t.weight),
        t.size.round().max(1.0)
    );
    let text = gst::glib::markup_escape_text(&t.text);
    let line = match t.align {
        HAlign::Left => "left",
        HAlign::Center => "center",
        HAlign::Right => "right",
    };
    let pipeline = gst::Pipeline::new();
    let mk = |f: &str| gst::ElementFactory::make(f).build().map_err(internal);
    let src = gst::ElementFactory::make("videotestsrc")
        .property_from_str("pattern", "solid-color")
        .property("foreground-color", 0xff00_0000u32)
        .property("num-buffers", 1i32)
        .build()
        .map_err(internal)?;
    let caps = gst::ElementFactory::make("capsfilter")
        .property(
            "caps",
            gst::Caps::builder("video/x-raw")
                .field("format", "BGRx")
                .field("width", cw as i32)
                .field("height", ch as i32)
                .field("framerate", gst::Fraction::new(1, 1))
                .build(),
        )
        .build()
        .map_err(internal)?;
    let overlay = mk("textoverlay")?;
    overlay.set_property("text", text.as_str());
    overlay.set_property("font-desc", font.as_str());
    overlay.set_property("auto-resize", false);
    overlay.set_property_from_str("halignment", "left");
    overlay.set_property_from_str("valignment", "top");
    overlay.set_property_from_str("line-alignment", line);
    overlay.set_property_from_str("wrap-mode", "none");
    overlay.set_property("xpad", margin as i32);
    overlay.set_property("ypad", margin as i32);
    overlay.set_property("shaded-background", false);
    overlay.set_property("draw-outline", false);
    overlay.set_property("draw-shadow", false);
    overlay.set_property("color", 0xffff_ffffu32);
    let sink = gst::ElementFactory::make("appsink")
        .name("sink")
        .property("sync", false)
        .build()
        .map_err(internal)?;
    pipeline
        .add_many([&src, &caps, &overlay, &sink])
        .map_err(internal)?;
    gst::Element::link_many([&src, &caps, &overlay, &sink]).map_err(internal)?;
    // Reuse the one-frame grabber through a bin description would re-parse; run it here.
    let coverage = run_grab(&pipeline, &sink, "title")?;
    let stride = cw as usize * 4;
    // Coverage is the green channel of white-on-black.
    let cov = |x: usize, y: usize| coverage.get(y * stride + x * 4 + 1).copied().unwrap_or(0);
    let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0usize, 0usize);
    for y in 0..ch as usize {
        for x in 0..cw as usize {
            if cov(x, y) > 0 {
                x0 = x0.min(x);
                y0 = y0.min(y);
                x1 = x1.max(x + 1);
                y1 = y1.max(y + 1);
            }
        }
    }
    if x0 >= x1 || y0 >= y1 {
        return Ok(None);
    }
    let (tw, th) = (x1 - x0, y1 - y0);
    let outline = t.outline.map_or(0.0, |o| o.width.max(0.0));
    let pad = t.background.map_or(0.0, |b| b.padding.max(0.0));
    let (sdx, sdy, sblur) = t
        .shadow
        .map_or((0.0, 0.0, 0.0), |s| (s.x, s.y, s.blur.max(0.0)));
    let extra = (outline.ceil() as i64)
        .max(pad.ceil() as i64)
        .max((sdx.abs() + sblur * 2.0 + outline).ceil() as i64)
        .max((sdy.abs() + sblur * 2.0 + outline).ceil() as i64)
        + 2;
    let m = usize::try_from(extra).unwrap_or(2);
    let (bw, bh) = (tw + 2 * m, th + 2 * m);
    // Text coverage in the final bitmap's coordinates.
    let mut text_a = vec![0f32; bw * bh];
    for y in 0..th {
        for x in 0..tw {
            text_a[(y + m) * bw + x + m] = f32::from(cov(x0 + x, y0 + y)) / 255.0;
        }
    }
    let mut acc = vec![[0f32; 4]; bw * bh]; // straight RGBA in 0..1
    let over = |acc: &mut Vec<[f32; 4]>, alpha: &[f32], c: Rgba| {
        let (cr, cg, cb, ca) = (
            f32::from(c.r) / 255.0,
            f32::from(c.g) / 255.0,
            f32::from(c.b) / 255.0,
            f32::from(c.a) / 255.0,
        );
        for (d, &a) in acc.iter_mut().zip(alpha) {
            let sa = a * ca;
            if sa <= 0.0 {
                continue;
            }
            let da = d[3];
            let oa = sa + da * (1.0 - sa);
            let mix = |s: f32, dv: f32| (s * sa + dv * da * (1.0 - sa)) / oa;
            *d = [mix(cr, d[0]), mix(cg, d[1]), mix(cb, d[2]), oa];
        }
    };
    if let Some(b) = t.background {
        let p = pad.round() as usize;
        let mut a = vec![0f32; bw * bh];
        for y in m.saturating_sub(p)..(m + th + p).min(bh) {
            for x in m.saturating_sub(p)..(m + tw + p).min(bw) {
                a[y * bw + x] = 1.0;
            }
        }
        over(&mut acc, &a, b.color);
    }
    let outlined = if outline > 0.0 {
        dilate(&text_a, bw, bh, outline)
    } else {
        text_a.clone()
    };
    if let Some(s) = t.shadow {
        let mut a = shift(&outlined, bw, bh, s.x.round() as i64, s.y.round() as i64);
        if sblur > 0.0 {
            a = blur(&a, bw, bh, sblur);
        }
        over(&mut acc, &a, s.color);
    }
    if let Some(o) = t.outline
        && outline > 0.0
    {
        over(&mut acc, &outlined, o.color);
    }
    over(&mut acc, &text_a, t.color);
    let mut bitmap = Bitmap::new(bw as u32, bh as u32);
    for (px, c) in bitmap.data.chunks_exact_mut(4).zip(&acc) {
        let q = |v: f32| (v * 255.0).round().clamp(0.0, 255.0) as u8;
        px.copy_from_slice(&[q(c[2]), q(c[1]), q(c[0]), q(c[3])]);
    }
    // Anchor the text block (its ink box).
    let (ax, ay) = (t.x * f64::from(out.width), t.y * f64::from(out.height));
    let bx = match t.align {
        HAlign::Left => ax,
        HAlign::Center => ax - tw as f64 / 2.0,
        HAlign::Right => ax - tw as f64,
    };
    let by = match t.valign {
        VAlign::Top => ay,
        VAlign::Middle => ay - th as f64 / 2.0,
        VAlign::Bottom => ay - th as f64,
    };
    Ok(Some(TitleBitmap {
        bitmap,
        x: bx.round() as i32 - m as i32,
        y: by.round() as i32 - m as i32,
    }))
}

fn run_grab(
    pipeline: &gst::Pipeline,
    sink: &gst::Element,
    what: &str,
) -> Result<Vec<u8>, RenderError> {
    let result = (|| {
        let bus = pipeline.bus().ok_or_else(|| internal("no bus"))?;
        pipeline
            .set_state(gst::State::Paused)
            .map_err(|_| internal(format!("{what}: cannot start")))?;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if std::time::Instant::now() > deadline {
                return Err(RenderError::TimedOut(format!(
                    "rendering {what} took too long"
                )));
            }
            let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(100)) else {
                continue;
            };
            match msg.view() {
                gst::MessageView::AsyncDone(_) => break,
                gst::MessageView::Error(e) => {
                    return Err(internal(format!("{what}: {}", e.error())));
                }
                _ => {}
            }
        }
        let sample = sink
            .emit_by_name::<Option<gst::Sample>>("pull-preroll", &[])
            .ok_or_else(|| internal(format!("{what}: no frame")))?;
        let buffer = sample.buffer().ok_or_else(|| internal("no buffer"))?;
        let map = buffer.map_readable().map_err(internal)?;
        Ok(map.to_vec())
    })();
    let _ = pipeline.set_state(gst::State::Null);
    result
}

/// Grows a coverage mask by `r` pixels (a disc for small radii, a square beyond).
fn dilate(a: &[f32], w: usize, h: usize, r: f64) -> Vec<f32> {
    let ri = r.ceil() as i64;
    if ri <= 8 {
        let offsets: Vec<(i64, i64)> = (-ri..=ri)
            .flat_map(|dy| (-ri..=ri).map(move |dx| (dx, dy)))
            .filter(|(dx, dy)| ((dx * dx + dy * dy) as f64).sqrt() <= r + 0.5)
            .collect();
        let mut out = vec![0f32; w * h];
        for y in 0..h as i64 {
            for x in 0..w as i64 {
                let mut m = 0f32;
                for (dx, dy) in &offsets {
                    let (sx, sy) = (x + dx, y + dy);
                    if sx >= 0 && sy >= 0 && (sx as usize) < w && (sy as usize) < h {
                        m = m.max(a[sy as usize * w + sx as usize]);
                    }
                }
                out[y as usize * w + x as usize] = m;
            }
        }
        return out;
    }
    let max1d = |src: &[f32], horizontal: bool| {
        let mut out = vec![0f32; w * h];
        for y in 0..h {
            for x in 0..w {
                let mut m = 0f32;
                for d in -ri..=ri {
                    let (sx, sy) = if horizontal {
                        (x as i64 + d, y as i64)
                    } else {
                        (x as i64, y as i64 + d)
                    };
                    if sx >= 0 && sy >= 0 && (sx as usize) < w && (sy as usize) < h {
                        m = m.max(src[sy as usize * w + sx as usize]);
                    }
                }
                out[y * w + x] = m;
            }
        }
        out
    };
    max1d(&max1d(a, true), false)
}

fn shift(a: &[f32], w: usize, h: usize, dx: i64, dy: i64) -> Vec<f32> {
    let mut out = vec![0f32; w * h];
    for y in 0..h as i64 {
        for x in 0..w as i64 {
            let (sx, sy) = (x - dx, y - dy);
            if sx >= 0 && sy >= 0 && (sx as usize) < w && (sy as usize) < h {
                out[y as usize * w + x as usize] = a[sy as usize * w + sx as usize];
            }
        }
    }
    out
}

/// An approximate Gaussian of radius `r` (σ = r / 2): three box blurs.
fn blur(a: &[f32], w: usize, h: usize, r: f64) -> Vec<f32> {
    let sigma = (r / 2.0).max(0.5);
    let bx = ((sigma * sigma * 4.0 + 1.0).sqrt() / 2.0).round().max(1.0) as i64;
    let pass = |src: &[f32], horizontal: bool| {
        let mut out = vec![0f32; w * h];
        let n = (2 * bx + 1) as f32;
        for y in 0..h {
            for x in 0..w {
                let mut s = 0f32;
                for d in -bx..=bx {
                    let (sx, sy) = if horizontal {
                        (x as i64 + d, y as i64)
                    } else {
                        (x as i64, y as i64 + d)
                    };
                    if sx >= 0 && sy >= 0 && (sx as usize) < w && (sy as usize) < h {
                        s += src[sy as usize * w + sx as usize];
                    }
                }
                out[y * w + x] = s / n;
            }
        }
        out
    };
    let mut v = a.to_vec();
    for _ in 0..3 {
        v = pass(&pass(&v, true), false);
    }
    v
}
