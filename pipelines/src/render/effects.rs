//! Picture effects: brightness, contrast, saturation, greyscale and blur.
//!
//! On a video layer they run on its I420 frames at their size on screen (so a blur radius is in
//! output pixels): the balance effects through `videobalance` (lookup tables, in place), the
//! blur here (three box passes approximating a Gaussian, per plane). Stills (images, colours,
//! titles) are rasterised once, so their effects are applied once to the bitmap, with the same
//! formulas as `videobalance` on the bitmap's BT.601 YCbCr, so a picture and a still with the
//! same effect look alike.

use crate::timeline::Effect;

use super::stills::Bitmap;

/// `videobalance`'s (brightness, contrast, saturation) for a balance effect; `None` for blur.
pub(crate) fn balance(e: &Effect) -> Option<(f64, f64, f64)> {
    match *e {
        Effect::Brightness { value } => Some((value.clamp(-1.0, 1.0), 1.0, 1.0)),
        Effect::Contrast { value } => Some((0.0, value.clamp(0.0, 2.0), 1.0)),
        Effect::Saturation { value } => Some((0.0, 1.0, value.clamp(0.0, 2.0))),
        Effect::Greyscale => Some((0.0, 1.0, 0.0)),
        Effect::Blur { .. } => None,
    }
}

/// Whether the effect changes anything.
pub(crate) fn visible(e: &Effect) -> bool {
    match *e {
        Effect::Brightness { value } => value != 0.0,
        Effect::Contrast { value } | Effect::Saturation { value } => value != 1.0,
        Effect::Greyscale => true,
        Effect::Blur { radius } => blur_boxes(radius) != [0, 0, 0],
    }
}

/// Radii of three box blurs whose succession approximates a Gaussian of standard deviation
/// `sigma` (the CSS `blur()` convention: the radius given is the deviation).
pub(crate) fn blur_boxes(sigma: f64) -> [usize; 3] {
    let sigma = sigma.clamp(0.0, 100.0);
    if sigma < 0.3 {
        return [0, 0, 0];
    }
    let n = 3.0;
    let ideal = (12.0 * sigma * sigma / n + 1.0).sqrt();
    let mut wl = ideal.floor() as i64;
    if wl % 2 == 0 {
        wl -= 1;
    }
    let wu = wl + 2;
    let wlf = wl as f64;
    let m = ((12.0 * sigma * sigma - n * wlf * wlf - 4.0 * n * wlf - 3.0 * n) / (-4.0 * wlf - 4.0))
        .round() as i64;
    let mut out = [0usize; 3];
    for (i, r) in out.iter_mut().enumerate() {
        let w = if (i as i64) < m { wl } else { wu };
        *r = usize::try_from((w - 1) / 2).unwrap_or(0);
    }
    out
}

/// One box blur of `radius` along rows (`step` 1) or columns, edges clamped, in place.
fn box_pass(
    data: &mut [u8],
    (width, height, stride): (usize, usize, usize),
    radius: usize,
    horizontal: bool,
    line: &mut Vec<u32>,
) {
    if radius == 0 || width == 0 || height == 0 {
        return;
    }
    let (len, lines) = if horizontal {
        (width, height)
    } else {
        (height, width)
    };
    let at = |l: usize, i: usize| -> usize {
        if horizontal {
            l * stride + i
        } else {
            i * stride + l
        }
    };
    let win = (2 * radius + 1) as u32;
    for l in 0..lines {
        line.clear();
        line.extend((0..len).map(|i| u32::from(data.get(at(l, i)).copied().unwrap_or(0))));
        let get = |i: isize| line[i.clamp(0, len as isize - 1) as usize];
        let r = radius as isize;
        let mut sum: u32 = (-r..=r).map(get).sum();
        for i in 0..len {
            if let Some(d) = data.get_mut(at(l, i)) {
                *d = ((sum + win / 2) / win) as u8;
            }
            let i = i as isize;
            sum = sum + get(i + r + 1) - get(i - r);
        }
    }
}

/// Blurs one plane in place with the three boxes.
pub(crate) fn blur_plane(data: &mut [u8], dims: (usize, usize, usize), boxes: [usize; 3]) {
    let mut line = Vec::new();
    for r in boxes {
        box_pass(data, dims, r, true, &mut line);
        box_pass(data, dims, r, false, &mut line);
    }
}

/// Applies `effects` in order to a straight-alpha BGRA bitmap.
pub(crate) fn apply_to_bitmap(b: &mut Bitmap, effects: &[Effect]) {
    for e in effects.iter().filter(|e| visible(e)) {
        match balance(e) {
            Some(params) => balance_bitmap(b, params),
            None => {
                if let Effect::Blur { radius } = *e {
                    blur_bitmap(b, radius);
                }
            }
        }
    }
}

fn balance_bitmap(b: &mut Bitmap, (brightness, contrast, saturation): (f64, f64, f64)) {
    for px in b.data.chunks_exact_mut(4) {
        let (bl, g, r) = (f64::from(px[0]), f64::from(px[1]), f64::from(px[2]));
        // BT.601 limited range, as videobalance sees an untagged SD frame.
        let y = 16.0 + (65.481 * r + 128.553 * g + 24.966 * bl) / 255.0;
        let cb = 128.0 + (-37.797 * r - 74.203 * g + 112.0 * bl) / 255.0;
        let cr = 128.0 + (112.0 * r - 93.786 * g - 18.214 * bl) / 255.0;
        let y = (16.0 + (y - 16.0) * contrast + brightness * 255.0).clamp(0.0, 255.0);
        let cb = 128.0 + (cb - 128.0) * saturation;
        let cr = 128.0 + (cr - 128.0) * saturation;
        let l = 1.164 * (y - 16.0);
        let to = |v: f64| v.round().clamp(0.0, 255.0) as u8;
        px[2] = to(l + 1.596 * (cr - 128.0));
        px[1] = to(l - 0.392 * (cb - 128.0) - 0.813 * (cr - 128.0));
        px[0] = to(l + 2.017 * (cb - 128.0));
    }
}

/// Blurs colour premultiplied by alpha (so transparent pixels do not bleed their colour into
/// the edges), then divides it out again.
fn blur_bitmap(b: &mut Bitmap, sigma: f64) {
    let boxes = blur_boxes(sigma);
    let (w, h) = (b.width as usize, b.height as usize);
    let mut planes: Vec<Vec<u8>> = (0..4)
        .map(|c| {
            b.data
                .chunks_exact(4)
                .map(|px| {
                    if c == 3 {
                        px[3]
                    } else {
                        ((u32::from(px[c]) * u32::from(px[3]) + 127) / 255) as u8
                    }
                })
                .collect()
        })
        .collect();
    for p in &mut planes {
        blur_plane(p, (w, h, w), boxes);
    }
    for (i, px) in b.data.chunks_exact_mut(4).enumerate() {
        let a = planes[3][i];
        px[3] = a;
        for c in 0..3 {
            px[c] = if a == 0 {
                0
            } else {
                ((u32::from(planes[c][i]) * 255 + u32::from(a) / 2) / u32::from(a)).min(255) as u8
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boxes_grow_with_the_deviation() {
        assert_eq!(blur_boxes(0.0), [0, 0, 0]);
        let small = blur_boxes(2.0);
        let big = blur_boxes(20.0);
        assert!(small.iter().all(|r| *r >= 1));
        assert!(big.iter().zip(&small).all(|(b, s)| b > s));
        // Three boxes of radius r have variance 3 * ((2r+1)^2 - 1) / 12 ≈ sigma².
        let var: f64 = big
            .iter()
            .map(|r| (((2 * r + 1) * (2 * r + 1)) as f64 - 1.0) / 12.0)
            .sum();
        assert!((var.sqrt() - 20.0).abs() < 1.0, "sigma {}", var.sqrt());
    }

    #[test]
    fn a_box_pass_spreads_a_point_and_keeps_flat_areas() {
        let mut d = vec![0u8; 9];
        d[4] = 90;
        let mut line = Vec::new();
        box_pass(&mut d, (9, 1, 9), 1, true, &mut line);
        assert_eq!(d, vec![0, 0, 0, 30, 30, 30, 0, 0, 0]);
        let mut flat = vec![77u8; 64];
        blur_plane(&mut flat, (8, 8, 8), [2, 2, 3]);
        assert!(flat.iter().all(|v| *v == 77));
    }

    #[test]
    fn balance_on_a_bitmap_follows_videobalance() {
        let mut b = Bitmap::solid(2, 2, crate::timeline::Rgba::opaque(200, 40, 40));
        apply_to_bitmap(&mut b, &[Effect::Greyscale]);
        let px = &b.data[0..4];
        assert!(px[0] == px[1] && px[1] == px[2], "grey: {px:?}");
        let mut b = Bitmap::solid(1, 1, crate::timeline::Rgba::opaque(100, 100, 100));
        apply_to_bitmap(&mut b, &[Effect::Brightness { value: 0.2 }]);
        // +0.2 * 255 on limited-range luma is about +59 in full-range RGB.
        assert!((i32::from(b.data[0]) - 159).abs() <= 2, "{:?}", &b.data);
        let mut b = Bitmap::solid(1, 1, crate::timeline::Rgba::opaque(100, 100, 100));
        apply_to_bitmap(&mut b, &[Effect::Contrast { value: 1.0 }]);
        assert!((i32::from(b.data[0]) - 100).abs() <= 1);
    }
}

/// Turns the picture `src` (`sw`×`sh`, 4 bytes a pixel, rows `src_stride` apart) clockwise by
/// `angle` degrees about its centre into the centre of `dst` (`dw`×`dh`). Byte `alpha` of each
/// pixel is its alpha; the colour bytes are interpolated premultiplied (bilinear), so the
/// turned edges are smooth without dark fringes, and what the picture does not cover gets
/// `clear` (alpha 0).
#[allow(clippy::too_many_arguments)]
pub(crate) fn turn(
    src: &[u8],
    (sw, sh, src_stride): (usize, usize, usize),
    dst: &mut [u8],
    (dw, dh, dst_stride): (usize, usize, usize),
    angle: f64,
    alpha: usize,
    clear: [u8; 4],
) {
    let (sin, cos) = angle.to_radians().sin_cos();
    let (scx, scy) = (sw as f64 / 2.0, sh as f64 / 2.0);
    let (dcx, dcy) = (dw as f64 / 2.0, dh as f64 / 2.0);
    let texel = |x: i64, y: i64| -> Option<&[u8]> {
        if x < 0 || y < 0 || x >= sw as i64 || y >= sh as i64 {
            return None;
        }
        let at = y as usize * src_stride + x as usize * 4;
        src.get(at..at + 4)
    };
    for y in 0..dh {
        let Some(row) = dst.get_mut(y * dst_stride..y * dst_stride + dw * 4) else {
            break;
        };
        let dy = y as f64 + 0.5 - dcy;
        for (x, px) in row.chunks_exact_mut(4).enumerate() {
            let dx = x as f64 + 0.5 - dcx;
            let fx = dx * cos + dy * sin + scx - 0.5;
            let fy = -dx * sin + dy * cos + scy - 0.5;
            px.copy_from_slice(&bilinear(fx, fy, alpha, &texel).unwrap_or(clear));
        }
    }
}

/// The 4-byte pixel at (`fx`, `fy`) (pixel centres at integers) by bilinear interpolation of
/// `texel`, with the colour bytes weighted by byte `alpha` (premultiplied), so transparent
/// neighbours lend no colour; `None` where it is all but transparent. `texel` gives `None`
/// outside the picture (transparent).
fn bilinear<'a>(
    fx: f64,
    fy: f64,
    alpha: usize,
    texel: &impl Fn(i64, i64) -> Option<&'a [u8]>,
) -> Option<[u8; 4]> {
    let (x0, y0) = (fx.floor(), fy.floor());
    let (ux, uy) = (fx - x0, fy - y0);
    let (x0, y0) = (x0 as i64, y0 as i64);
    let mut acc = [0f64; 4];
    let mut a_sum = 0f64;
    for (tx, ty, wgt) in [
        (x0, y0, (1.0 - ux) * (1.0 - uy)),
        (x0 + 1, y0, ux * (1.0 - uy)),
        (x0, y0 + 1, (1.0 - ux) * uy),
        (x0 + 1, y0 + 1, ux * uy),
    ] {
        if wgt <= 0.0 {
            continue;
        }
        let Some(t) = texel(tx, ty) else { continue };
        let a = f64::from(t[alpha]) * wgt;
        a_sum += a;
        for c in (0..4).filter(|c| *c != alpha) {
            acc[c] += f64::from(t[c]) * a;
        }
    }
    if a_sum < 0.5 {
        return None;
    }
    let mut px = [0u8; 4];
    for (c, v) in px.iter_mut().enumerate() {
        *v = if c == alpha {
            a_sum.round().clamp(0.0, 255.0) as u8
        } else {
            (acc[c] / a_sum).round().clamp(0.0, 255.0) as u8
        };
    }
    Some(px)
}

/// A still turned by `angle` in a `canvas`×`canvas`-sized bitmap.
pub(crate) fn turn_bitmap(b: &Bitmap, canvas: (u32, u32), angle: f64) -> Bitmap {
    let mut out = Bitmap::new(canvas.0, canvas.1);
    let (w, h) = (b.width as usize, b.height as usize);
    let (cw, ch) = (canvas.0 as usize, canvas.1 as usize);
    turn(
        &b.data,
        (w, h, w * 4),
        &mut out.data,
        (cw, ch, cw * 4),
        angle,
        3,
        [0, 0, 0, 0],
    );
    out
}

#[cfg(test)]
mod turn_tests {
    use super::*;

    #[test]
    fn a_quarter_turn_moves_the_top_left_corner_to_the_top_right() {
        // 4x2 opaque picture, its top-left pixel marked, in a 4x4 canvas.
        let mut b = Bitmap::solid(4, 2, crate::timeline::Rgba::opaque(10, 10, 10));
        b.data[0..4].copy_from_slice(&[200, 200, 200, 255]);
        let t = turn_bitmap(&b, (4, 4), 90.0);
        let px = |x: usize, y: usize| &t.data[(y * 4 + x) * 4..(y * 4 + x) * 4 + 4];
        // Turned clockwise: 2 wide, 4 tall, centred: columns 1..3; the mark top right.
        assert_eq!(px(2, 0), &[200, 200, 200, 255]);
        assert_eq!(px(1, 0)[3], 255);
        assert_eq!(px(0, 0)[3], 0, "outside the turned picture is clear");
        assert_eq!(px(3, 3)[3], 0);
    }

    #[test]
    fn turned_edges_are_smooth_and_keep_their_colour() {
        let b = Bitmap::solid(40, 40, crate::timeline::Rgba::opaque(250, 20, 20));
        let t = turn_bitmap(&b, (58, 58), 45.0);
        let partial: Vec<&[u8]> = t
            .data
            .chunks_exact(4)
            .filter(|p| p[3] > 20 && p[3] < 235)
            .collect();
        assert!(partial.len() > 40, "an antialiased edge");
        // Premultiplied interpolation: partly covered pixels keep the picture's colour.
        assert!(
            partial.iter().all(|p| p[2] >= 240 && p[0] <= 30),
            "{:?}",
            partial[0]
        );
    }
}

/// The part of `b` left after `crop`, turned by `turns` quarter turns clockwise and resampled
/// to `w`×`h` (bilinear, premultiplied: transparent pixels lend no colour).
pub(crate) fn reframe(b: &Bitmap, crop: super::plan::Crop, turns: u32, w: u32, h: u32) -> Bitmap {
    let mut out = Bitmap::new(w.max(1), h.max(1));
    let (sw, sh) = (b.width as f64, b.height as f64);
    let x0 = f64::from(crop.left).min(sw);
    let y0 = f64::from(crop.top).min(sh);
    let cw = (sw - x0 - f64::from(crop.right)).max(1.0);
    let ch = (sh - y0 - f64::from(crop.bottom)).max(1.0);
    let (bw, bh) = (b.width as i64, b.height as i64);
    // Edges are extended, not faded: the crop's border is inside the picture.
    let texel = |x: i64, y: i64| -> Option<&[u8]> {
        let (x, y) = (x.clamp(0, bw - 1), y.clamp(0, bh - 1));
        let at = (y as usize * b.width as usize + x as usize) * 4;
        b.data.get(at..at + 4)
    };
    let (ow, oh) = (f64::from(out.width), f64::from(out.height));
    for y in 0..out.height as usize {
        for x in 0..out.width as usize {
            // Output fractions → fractions of the cropped picture before the turn.
            let (u, v) = ((x as f64 + 0.5) / ow, (y as f64 + 0.5) / oh);
            let (a, c) = match turns % 4 {
                1 => (v, 1.0 - u),
                2 => (1.0 - u, 1.0 - v),
                3 => (1.0 - v, u),
                _ => (u, v),
            };
            let fx = x0 + a * cw - 0.5;
            let fy = y0 + c * ch - 0.5;
            let at = (y * out.width as usize + x) * 4;
            if let (Some(px), Some(v)) = (out.data.get_mut(at..at + 4), bilinear(fx, fy, 3, &texel))
            {
                px.copy_from_slice(&v);
            }
        }
    }
    out
}

#[cfg(test)]
mod reframe_tests {
    use super::*;
    use crate::render::plan::Crop;

    #[test]
    fn crop_turn_and_scale() {
        // 4x2: left half red, right half blue.
        let mut b = Bitmap::new(4, 2);
        for (i, px) in b.data.chunks_exact_mut(4).enumerate() {
            let blue = i % 4 >= 2;
            px.copy_from_slice(if blue {
                &[255, 0, 0, 255]
            } else {
                &[0, 0, 255, 255]
            });
        }
        // Scaled up 2x: still left red, right blue.
        let s = reframe(&b, Crop::default(), 0, 8, 4);
        assert_eq!(&s.data[0..4], &[0, 0, 255, 255]);
        assert_eq!(&s.data[7 * 4..8 * 4], &[255, 0, 0, 255]);
        // A quarter turn clockwise: red on top.
        let t = reframe(&b, Crop::default(), 1, 2, 4);
        assert_eq!(&t.data[0..4], &[0, 0, 255, 255]);
        assert_eq!(&t.data[(3 * 2) * 4..(3 * 2) * 4 + 4], &[255, 0, 0, 255]);
        // Cropping the left half away leaves blue.
        let c = reframe(
            &b,
            Crop {
                left: 2,
                ..Crop::default()
            },
            0,
            2,
            2,
        );
        assert!(c.data.chunks_exact(4).all(|p| p == [255, 0, 0, 255]));
    }
}
