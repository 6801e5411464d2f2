//! Rotation metadata, end to end: a clip that ffmpeg tagged `rotate=90/180/270` must look the
//! same in our renders, posters and proxies as in ffmpeg's own decode, which applies the
//! container's display matrix the way players do. Each clip has a white block in one corner of
//! its stored picture, so a turn the wrong way round moves the block to the wrong corner.

mod common;

use common::*;
use nve_pipelines::proxy::{ProxySpec, make_proxy};
use nve_pipelines::thumbs::poster;
use nve_pipelines::timeline::TrackKind;

/// ffmpeg's `rotate=` value, the clockwise display rotation the probe must report for it,
/// and where the block (top-left as stored) must be seen. ffmpeg 5.1 writes `rotate=N` as a
/// display matrix that turns the picture N degrees counter-clockwise (ffprobe prints the
/// matrix as `rotation=N`, its counter-clockwise convention), so N = 90 is a 270° clockwise
/// turn: GStreamer tags it `rotate-270` and ffmpeg shows the block bottom-left.
const CASES: [(u32, u32, Corner); 4] = [
    (0, 0, Corner::TopLeft),
    (90, 270, Corner::BottomLeft),
    (180, 180, Corner::BottomRight),
    (270, 90, Corner::TopRight),
];

/// Displayed size of the corner clip turned by `rotation`.
fn displayed(rotation: u32) -> (usize, usize) {
    if rotation % 180 == 90 {
        (CORNER_H, CORNER_W)
    } else {
        (CORNER_W, CORNER_H)
    }
}

#[test]
fn rotated_clips_render_as_ffmpeg_displays_them() {
    init();
    let dir = tempfile::tempdir().expect("tempdir");
    for (tag, rotation, corner) in CASES {
        let clip = corner_clip(dir.path(), tag);
        let (w, h, luma) = ffmpeg_display(&clip);
        assert_eq!((w, h), displayed(rotation), "rotate={tag}: ffmpeg's size");
        assert_eq!(
            bright_corner(&luma, w, h),
            Some(corner),
            "rotate={tag}: ffmpeg's picture"
        );
        let m = media(&clip);
        assert_eq!(m.rotation, rotation, "rotate={tag}: probed rotation");

        // A square output holds either orientation whole, centred in bars.
        let lib = Library(vec![("r".into(), m)]);
        let tl = timeline(
            output(320, 320, 25),
            vec![track("v", TrackKind::Video, vec![asset("r", 0, 0, 5)])],
        );
        let out = capture(&plan_of(&tl, &lib, None)).expect("render");
        assert_eq!(out.frames.len(), 5, "rotate={tag}");
        let f = &out.frames[2];
        assert_eq!(
            bright_corner(&f.data[..f.width * f.height], f.width, f.height),
            Some(corner),
            "rotate={tag}: rendered picture"
        );
        // Bars where the turned picture leaves room: left and right of a portrait one, above
        // and below a landscape one.
        if rotation % 180 == 90 {
            assert!(f.mean(0, 0, 60, 320) < 20.0, "rotate={tag}: left bar");
            assert!(f.mean(260, 0, 320, 320) < 20.0, "rotate={tag}: right bar");
        } else {
            assert!(f.mean(0, 0, 320, 60) < 20.0, "rotate={tag}: top bar");
            assert!(f.mean(0, 260, 320, 320) < 20.0, "rotate={tag}: bottom bar");
        }
    }
}

#[test]
fn rotated_clips_give_posters_and_proxies_as_ffmpeg_displays_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    for (tag, rotation, corner) in CASES {
        let clip = corner_clip(d, tag);
        let (dw, dh) = displayed(rotation);

        let jpg = d.join(format!("poster-{tag}.jpg"));
        let size = poster(&clip, 0.5, 160, &jpg).expect("poster");
        let (w, h, luma) = ffmpeg_display(&jpg);
        assert_eq!((w, h), (size.0 as usize, size.1 as usize));
        assert_eq!(w < h, dw < dh, "rotate={tag}: poster shape {w}x{h}");
        assert_eq!(
            bright_corner(&luma, w, h),
            Some(corner),
            "rotate={tag}: poster"
        );

        let proxy = d.join(format!("proxy-{tag}.mp4"));
        let report = make_proxy(&clip, &proxy, &ProxySpec::default(), &mut |_| {}).expect("proxy");
        assert_eq!(
            (report.width as usize, report.height as usize),
            (dw, dh),
            "rotate={tag}: proxy size"
        );
        // The proxy is upright in its pixels (no matrix left), so this is its stored picture.
        let (w, h, luma) = ffmpeg_display(&proxy);
        assert_eq!(
            bright_corner(&luma, w, h),
            Some(corner),
            "rotate={tag}: proxy"
        );
        assert_eq!(media(&proxy).rotation, 0, "rotate={tag}: proxy rotation");
    }
}
