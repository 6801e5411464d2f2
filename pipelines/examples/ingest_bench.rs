//! One ingest step per process, so `bench/ingest.sh` can time whole processes the way it
//! times ffmpeg's.
//!
//! ```text
//! ingest_bench first-thumb IN OUT.jpg T [WIDTH]      one frame at T seconds (default 320 wide)
//! ingest_bench strip IN OUT.jpg N [WIDTH [COLUMNS]]  N tiles over the duration (320 wide, N columns)
//! ingest_bench proxy IN OUT.mp4 [SPEC_JSON]          a proxy; SPEC_JSON is a ProxySpec, e.g.
//!                                                    '{"max_height":360,"video_bitrate_kbps":800}'
//! ingest_bench waveform IN OUT.json [SPEC_JSON]      peaks as JSON
//! ```
//! The result (size, index or report) is printed as one JSON line on stdout.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use nve_pipelines::proxy::{ProxySpec, make_proxy};
use nve_pipelines::thumbs::{poster, strip};
use nve_pipelines::waveform::{WaveformSpec, peaks};

const USAGE: &str = "usage: ingest_bench first-thumb IN OUT.jpg T [WIDTH]
       ingest_bench strip IN OUT.jpg N [WIDTH [COLUMNS]]
       ingest_bench proxy IN OUT.mp4 [SPEC_JSON]
       ingest_bench waveform IN OUT.json [SPEC_JSON]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(line) => {
            let _ = writeln!(std::io::stdout(), "{line}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            let _ = writeln!(std::io::stderr(), "{message}");
            ExitCode::FAILURE
        }
    }
}

fn number<T: std::str::FromStr>(
    args: &[String],
    i: usize,
    default: Option<T>,
) -> Result<T, String> {
    match args.get(i) {
        Some(a) => a.parse().map_err(|_| format!("not a number: {a}\n{USAGE}")),
        None => default.ok_or_else(|| USAGE.to_string()),
    }
}

fn json<T: serde::de::DeserializeOwned + Default>(args: &[String], i: usize) -> Result<T, String> {
    match args.get(i) {
        Some(a) => serde_json::from_str(a).map_err(|e| format!("bad spec: {e}")),
        None => Ok(T::default()),
    }
}

fn run(args: &[String]) -> Result<String, String> {
    let (Some(cmd), Some(input), Some(output)) = (args.first(), args.get(1), args.get(2)) else {
        return Err(USAGE.into());
    };
    let (input, output) = (Path::new(input), Path::new(output));
    match cmd.as_str() {
        "first-thumb" => {
            let at: f64 = number(args, 3, None)?;
            let width: u32 = number(args, 4, Some(320))?;
            let (w, h) = poster(input, at, width, output).map_err(|e| e.to_string())?;
            Ok(format!("{{\"width\":{w},\"height\":{h}}}"))
        }
        "strip" => {
            let n: u32 = number(args, 3, None)?;
            let width: u32 = number(args, 4, Some(320))?;
            let columns: u32 = number(args, 5, Some(n))?;
            let index = strip(input, n, width, columns, output).map_err(|e| e.to_string())?;
            serde_json::to_string(&index).map_err(|e| e.to_string())
        }
        "proxy" => {
            let spec: ProxySpec = json(args, 3)?;
            let report =
                make_proxy(input, output, &spec, &mut |_| {}).map_err(|e| e.to_string())?;
            serde_json::to_string(&report).map_err(|e| e.to_string())
        }
        "waveform" => {
            let spec: WaveformSpec = json(args, 3)?;
            let w = peaks(input, &spec).map_err(|e| e.to_string())?;
            let text = serde_json::to_string(&w).map_err(|e| e.to_string())?;
            std::fs::write(output, &text).map_err(|e| e.to_string())?;
            Ok(format!(
                "{{\"levels\":{},\"duration\":{},\"bytes\":{}}}",
                w.levels.len(),
                w.duration,
                text.len()
            ))
        }
        _ => Err(USAGE.into()),
    }
}
