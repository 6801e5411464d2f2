//! Single-frame preview latency: times `nve_pipelines::render::frame_at` on a timeline document
//! (sources are file paths in place of asset ids, relative to the document, as for
//! `nve render`), in one process, after one warm-up frame.
//!
//! ```text
//! frame_bench TIMELINE.json [WIDTH [T_SECONDS...]]   (default 640 wide; 1, 9.5, 15, 25 s)
//! frame_bench TIMELINE.json WIDTH T --jpeg OUT.jpg   also writes the last frame as a JPEG
//! ```
//! Prints one line per time: `t=… s frame=… ms=…`, then the median.

use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use nve_pipelines::render::{SourceMedia, frame_at};
use nve_pipelines::timeline::{AssetInfo, Context, Timeline, TimelineDoc, TimelineLimits};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("frame_bench: {message}");
            ExitCode::FAILURE
        }
    }
}

fn collect_ids(v: &serde_json::Value, out: &mut BTreeSet<String>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                match v {
                    serde_json::Value::String(s) if k == "asset_id" => {
                        out.insert(s.clone());
                    }
                    other => collect_ids(other, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_ids(v, out)),
        _ => {}
    }
}

fn load(path: &Path) -> Result<(Timeline, HashMap<String, SourceMedia>), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let raw: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let base = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut ids = BTreeSet::new();
    collect_ids(&raw, &mut ids);
    let mut sources = HashMap::new();
    for id in ids {
        let file: PathBuf = base.join(&id);
        let report = nve_pipelines::probe::probe(&file, Duration::from_secs(60))
            .map_err(|e| format!("{}: {e}", file.display()))?;
        sources.insert(id, SourceMedia::from_probe(file, &report));
    }
    let doc: TimelineDoc = serde_json::from_value(raw).map_err(|e| e.to_string())?;
    let facts: HashMap<String, AssetInfo> = sources
        .iter()
        .map(|(k, s)| {
            let (width, height) = if s.rotation % 180 == 90 {
                (s.height, s.width)
            } else {
                (s.width, s.height)
            };
            let info = AssetInfo {
                duration_ns: s.duration_ns,
                has_video: s.has_video && !s.is_image,
                has_audio: s.has_audio && !s.is_image,
                is_image: s.is_image,
                width,
                height,
            };
            (k.clone(), info)
        })
        .collect();
    let lookup = |id: &str| facts.get(id).copied();
    let limits = TimelineLimits::default();
    let cx = Context {
        limits: &limits,
        assets: &lookup,
    };
    let timeline = Timeline::from_doc(&doc, &cx).map_err(|e| format!("invalid timeline: {e:?}"))?;
    Ok((timeline, sources))
}

fn run(args: &[String]) -> Result<(), String> {
    let doc = args
        .first()
        .ok_or("usage: frame_bench TIMELINE.json [WIDTH [T...]] [--jpeg OUT.jpg]")?;
    let mut width = 640u32;
    let mut times = Vec::new();
    let mut jpeg = None;
    let mut rest = args[1..].iter();
    let mut positional = 0;
    while let Some(a) = rest.next() {
        if a == "--jpeg" {
            jpeg = rest.next().cloned();
            continue;
        }
        let v: f64 = a.parse().map_err(|_| format!("{a:?} is not a number"))?;
        if positional == 0 {
            width = v as u32;
        } else {
            times.push(v);
        }
        positional += 1;
    }
    if times.is_empty() {
        times = vec![1.0, 9.5, 15.0, 25.0];
    }
    gstreamer::init().map_err(|e| e.to_string())?;
    let (timeline, sources) = load(Path::new(doc))?;
    let lookup = |id: &str| sources.get(id).cloned();
    let fps = timeline.output.frame_rate;
    let frame_of = |t: f64| (t * fps.fps()).round() as i64;
    // Warm-up: the registry, fonts and the page cache, as in a long-running worker.
    frame_at(&timeline, &lookup, frame_of(times[0]), width).map_err(|e| e.to_string())?;
    let mut stdout = std::io::stdout().lock();
    let mut ms = Vec::new();
    let mut last = None;
    for &t in &times {
        let f = frame_of(t);
        let t0 = Instant::now();
        let rgb = frame_at(&timeline, &lookup, f, width).map_err(|e| e.to_string())?;
        let took = t0.elapsed().as_secs_f64() * 1000.0;
        writeln!(stdout, "t={t} s frame={f} ms={took:.1}").map_err(|e| e.to_string())?;
        ms.push(took);
        last = Some(rgb);
    }
    ms.sort_by(f64::total_cmp);
    writeln!(stdout, "median_ms={:.1}", ms[ms.len() / 2]).map_err(|e| e.to_string())?;
    if let (Some(path), Some(rgb)) = (jpeg, last) {
        let bytes = rgb.to_jpeg(90).map_err(|e| e.to_string())?;
        std::fs::write(&path, bytes).map_err(|e| format!("{path}: {e}"))?;
    }
    Ok(())
}
