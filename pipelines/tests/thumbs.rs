//! Posters and thumbnail strips from generated clips and images.

use std::path::Path;
use std::process::Command;

use nve_pipelines::probe::probe;
use nve_pipelines::thumbs::{ThumbSpec, poster_and_strip};

fn ffmpeg(dir: &Path, name: &str, args: &[&str]) -> std::path::PathBuf {
    let out = dir.join(name);
    let ok = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .arg(&out)
        .status()
        .expect("ffmpeg")
        .success();
    assert!(ok, "{name}");
    out
}

fn spec(poster_width: u32, tile_width: u32, count: u32, columns: u32) -> ThumbSpec {
    ThumbSpec {
        poster_width,
        tile_width,
        count,
        columns,
    }
}

fn jpeg_size(path: &Path) -> (u32, u32) {
    let r = probe(path, std::time::Duration::from_secs(10)).expect("a JPEG");
    assert_eq!(r.video[0].codec, "jpeg");
    (r.video[0].width, r.video[0].height)
}

#[test]
fn strips_have_evenly_spaced_tiles_and_the_right_shape() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let clip = ffmpeg(
        d,
        "c.mp4",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=640x360:rate=25:duration=4",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
        ],
    );
    let idx = poster_and_strip(
        &clip,
        Some(4.0),
        &d.join("p.jpg"),
        &d.join("s.jpg"),
        spec(320, 160, 8, 4),
    )
    .expect("thumbnails");
    assert_eq!((idx.tile_width, idx.tile_height), (160, 90));
    assert_eq!((idx.columns, idx.rows), (4, 2));
    assert_eq!(idx.times.len(), 8);
    assert!((idx.times[0] - 0.25).abs() < 1e-9 && (idx.times[7] - 3.75).abs() < 1e-9);
    assert_eq!(jpeg_size(&d.join("p.jpg")), (320, 180));
    assert_eq!(jpeg_size(&d.join("s.jpg")), (640, 180));

    // A portrait clip (rotated by its container) gets upright thumbnails.
    let plain = clip.display().to_string();
    let rotated = ffmpeg(
        d,
        "r.mp4",
        &[
            "-i",
            plain.as_str(),
            "-c",
            "copy",
            "-metadata:s:v",
            "rotate=90",
        ],
    );
    let idx = poster_and_strip(
        &rotated,
        Some(4.0),
        &d.join("rp.jpg"),
        &d.join("rs.jpg"),
        spec(180, 90, 2, 2),
    )
    .expect("thumbnails");
    assert_eq!((idx.tile_width, idx.tile_height), (90, 160), "{idx:?}");

    // A still image: one tile, and a poster.
    let png = ffmpeg(
        d,
        "i.png",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=200x100",
            "-frames:v",
            "1",
        ],
    );
    let idx = poster_and_strip(
        &png,
        None,
        &d.join("ip.jpg"),
        &d.join("is.jpg"),
        spec(100, 50, 8, 4),
    )
    .expect("thumbnails");
    assert_eq!(idx.times, vec![0.0]);
    assert_eq!(jpeg_size(&d.join("ip.jpg")), (100, 50));
}
