#!/usr/bin/env bash
# Ingest benchmark (issue 4): the same work through ffmpeg and through nve's pipelines
# (pipelines/examples/ingest_bench.rs), whole processes, runs interleaved, medians printed
# side by side with ratios (ours ÷ ffmpeg; below 1 is faster):
#   - first thumbnail of clipA at 10 s, 320x180        (ffmpeg: e3.sh first_ff)
#   - 10-thumbnail strip of clipA at 1, 3, … 19 s      (ffmpeg: e3.sh ff_pass, one decoding pass)
#   - 640x360 proxy of clipA, x264 veryfast ~800 kb/s  (ffmpeg: e4.sh ff)
#   - waveform peaks of clipA's sound                  (ffmpeg: decoding the sound to null, the floor)
#
#   bench/ingest.sh [RUNS]        (default 3)
#
# NVE_SHARED_MEDIA  directory holding make_media.sh, e3.sh, e4.sh (default ../shared/media)
# NVE_BENCH_MEDIA   where the reference media are generated once and kept (default target/bench-media)
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=$(realpath -m "${NVE_SHARED_MEDIA:-../shared/media}")
[ -f "$SHARED/make_media.sh" ] || { echo "no make_media.sh in $SHARED: set NVE_SHARED_MEDIA" >&2; exit 2; }
MEDIA=${NVE_BENCH_MEDIA:-target/bench-media}
RUNS=${1:-3}
TIME=/usr/bin/time
[ -x "$TIME" ] || { echo "needs GNU time: apt-get install time" >&2; exit 2; }
command -v ffmpeg >/dev/null || { echo "needs ffmpeg: apt-get install ffmpeg" >&2; exit 2; }

cargo build --release -q -p nve-pipelines --example ingest_bench
BIN="${CARGO_TARGET_DIR:-target}/release/examples/ingest_bench"
if [ ! -f "$MEDIA/clipA.mp4" ]; then
  mkdir -p "$MEDIA"
  sh "$SHARED/make_media.sh" "$MEDIA" >/dev/null
fi
IN="$MEDIA/clipA.mp4"
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

# The proxy spec matching e4.sh's ffmpeg settings: 360 lines, 800 kb/s ABR, 2 s VBV buffer,
# GOP 60 at 30 fps, veryfast. (x264enc ties the VBV maximum rate to the average; ffmpeg's is
# 1 Mb/s. Output sizes are printed to show the bits are comparable.)
SPEC='{"max_height":360,"video_bitrate_kbps":800,"vbv_buffer_ms":2000,"keyframe_interval_secs":2,"speed_preset":"veryfast"}'

# run NAME CMD...: one timed run, appended to $OUT/NAME.times as "wall cpu maxrss_kb". Wall
# time from the clock in ns (GNU time rounds to 10 ms, a tenth of the short rows); CPU time
# (user + system) and peak RSS from GNU time.
run() {
  local name=$1 t0 t1; shift
  t0=$(date +%s%N)
  if ! "$TIME" -f "%U %S %M" -o "$OUT/t" "$@" >"$OUT/$name.log" 2>&1; then
    echo "failed: $*" >&2; cat "$OUT/$name.log" >&2; exit 1
  fi
  t1=$(date +%s%N)
  awk -v w=$((t1 - t0)) '{ printf "%.4f %.3f %d\n", w / 1e9, $1 + $2, $3 }' "$OUT/t" >>"$OUT/$name.times"
}

# median NAME COLUMN
median() {
  cut -d' ' -f"$2" "$OUT/$1.times" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

FF="ffmpeg -hide_banner -nostdin -loglevel error"
# Warm the page cache and the GStreamer registry so the first timed run is not special.
"$BIN" first-thumb "$IN" "$OUT/first.jpg" 10 >/dev/null
sh "$SHARED/e3.sh" "$MEDIA" "$OUT/ff" first_ff

# The sub-second rows run 5 times per round: at 0.1 s a single scheduling hiccup is 10 %.
for _ in $(seq "$RUNS"); do
  for _ in 1 2 3 4 5; do
    run ff_first sh "$SHARED/e3.sh" "$MEDIA" "$OUT/ff" first_ff
    run us_first "$BIN" first-thumb "$IN" "$OUT/first.jpg" 10
    # shellcheck disable=SC2086
    run ff_wave $FF -i "$IN" -vn -f null -
    run us_wave "$BIN" waveform "$IN" "$OUT/peaks.json"
  done
  run ff_strip sh "$SHARED/e3.sh" "$MEDIA" "$OUT/ff" ff_pass
  run us_strip "$BIN" strip "$IN" "$OUT/strip.jpg" 10 320 5
  run ff_proxy sh "$SHARED/e4.sh" "$MEDIA" "$OUT/ff_proxy.mp4" ff
  run us_proxy "$BIN" proxy "$IN" "$OUT/proxy.mp4" "$SPEC"
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
row() { # label key
  local fw fc fm uw uc um
  fw=$(median "ff_$2" 1); fc=$(median "ff_$2" 2); fm=$(median "ff_$2" 3)
  uw=$(median "us_$2" 1); uc=$(median "us_$2" 2); um=$(median "us_$2" 3)
  printf "| %s | %.3f | %.3f | **%s** | %.2f | %.2f | %s | %d | %d |\n" "$1" "$fw" "$uw" "$(ratio "$uw" "$fw")" \
    "$fc" "$uc" "$(ratio "$uc" "$fc")" $((fm / 1024)) $((um / 1024))
}

echo "ingest benchmark: $(nproc) cores, medians of $RUNS interleaved runs ($((RUNS * 5)) for the sub-second rows), $(date -u +%Y-%m-%d)"
echo
echo "| work (clipA, 1080p30, 20 s) | ffmpeg wall s | nve wall s | wall ÷ ffmpeg | ffmpeg CPU s | nve CPU s | CPU ÷ ffmpeg | ffmpeg peak MiB | nve peak MiB |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
row "first thumbnail at 10 s" first
row "strip of 10 thumbnails" strip
row "640x360 proxy" proxy
row "waveform peaks (ffmpeg: decode only)" wave
echo
printf "proxy sizes: ffmpeg %d bytes, nve %d bytes\n" "$(stat -c %s "$OUT/ff_proxy.mp4")" "$(stat -c %s "$OUT/proxy.mp4")"
