#!/usr/bin/env bash
# Render benchmark (the reference edit E1 of shared/media/README.md): the same edit through
# `nve render bench/e1.json` and through the reference tools, whole processes, runs
# interleaved, medians printed side by side with ratios to ffmpeg (below 1 is faster/smaller):
#   - E1: nve render (h264 preset = x264 veryfast CRF 23 + AAC 128k, as e1_ffmpeg.sh),
#         e1_ffmpeg.sh, e1_ges.sh, e1_melt.sh (skipped with a reason when melt is missing),
#         and the floors of limits.sh (pure encode of E1's own frames from RAM + decode of the
#         used input portions)
#   - trim of clipA 4-14 s: nve render --profile h264 (smart rendering: whole GOPs copied,
#     partial ones re-encoded), the same with --no-smart (a full re-encode), ffmpeg stream copy
#     and ffmpeg re-encode (e2.sh)
#   - single-frame preview: frame_at on E1 in a warm process (pipelines/examples/frame_bench.rs),
#     and a whole `nve render --range t..t+1/30 --profile jpeg` process
#
#   bench/render.sh [RUNS]        (default 3)
#
# NVE_SHARED_MEDIA  directory holding make_media.sh and the e1_*.sh / e2.sh / limits.sh scripts
#                   (default ../shared/media)
# NVE_BENCH_MEDIA   where the reference media are generated once and kept (default target/bench-media)
# NVE_BENCH_KEEP    directory where the E1 outputs and frames grabbed from them are kept for
#                   inspection (default target/bench-e1)
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=$(realpath -m "${NVE_SHARED_MEDIA:-../shared/media}")
[ -f "$SHARED/make_media.sh" ] || { echo "no make_media.sh in $SHARED: set NVE_SHARED_MEDIA" >&2; exit 2; }
MEDIA=$(realpath -m "${NVE_BENCH_MEDIA:-target/bench-media}")
KEEP=$(realpath -m "${NVE_BENCH_KEEP:-target/bench-e1}")
RUNS=${1:-3}
TIME=/usr/bin/time
[ -x "$TIME" ] || { echo "needs GNU time: apt-get install time" >&2; exit 2; }
command -v ffmpeg >/dev/null || { echo "needs ffmpeg: apt-get install ffmpeg" >&2; exit 2; }

cargo build --release -q -p nve-api --bin nve
cargo build --release -q -p nve-pipelines --example frame_bench
NVE="${CARGO_TARGET_DIR:-target}/release/nve"
FRAME_BENCH="${CARGO_TARGET_DIR:-target}/release/examples/frame_bench"
if [ ! -f "$MEDIA/clipA.mp4" ]; then
  mkdir -p "$MEDIA"
  sh "$SHARED/make_media.sh" "$MEDIA" >/dev/null
fi
OUT=$(mktemp -d)
RAW=/dev/shm/e1_raw_1920x1080_i420.yuv
trap 'rm -rf "$OUT" "$RAW"' EXIT
mkdir -p "$KEEP"

# bench/e1.json names its media relative to itself (../target/bench-media); point it at $MEDIA.
sed "s|\.\./target/bench-media|$MEDIA|g" bench/e1.json >"$OUT/e1.json"
cat >"$OUT/trim.json" <<EOF
{"output": {"width": 1920, "height": 1080, "frame_rate": 30},
 "tracks": [{"kind": "video", "clips": [{"id": "a",
   "source": {"type": "asset", "asset_id": "$MEDIA/clipA.mp4"},
   "start": 0, "in_point": 4, "duration": 10}]}]}
EOF

# melt: installed, or installable here, or skipped with the reason.
MELT=""
if command -v melt >/dev/null; then
  MELT=yes
elif [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null \
  && DEBIAN_FRONTEND=noninteractive apt-get install -y -q melt >"$OUT/melt-install.log" 2>&1 \
  && command -v melt >/dev/null; then
  MELT=yes
else
  MELT_WHY="melt is not installed and could not be installed with apt-get (see 'apt-get install melt')"
fi

# run NAME CMD...: one timed run, appended to $OUT/NAME.times as "wall cpu maxrss_kb". Wall
# time from the clock in ns; CPU time (user + system) and peak RSS from GNU time.
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

FF="ffmpeg -hide_banner -nostdin -loglevel error -y"
E1_NVE=("$NVE" render "$OUT/e1.json" -o "$OUT/nve.mp4" --profile h264 --hardware off)
# Warm the page cache, the GStreamer registry and fontconfig so the first timed run is not
# special; the ffmpeg output also feeds limits.sh's raw frames.
"${E1_NVE[@]}" >/dev/null 2>&1
sh "$SHARED/e1_ffmpeg.sh" "$MEDIA" "$OUT/ff.mp4"
sh "$SHARED/limits.sh" "$MEDIA" "$OUT/ff.mp4" prep_raw

for _ in $(seq "$RUNS"); do
  run e1_nve "${E1_NVE[@]}"
  run e1_ff sh "$SHARED/e1_ffmpeg.sh" "$MEDIA" "$OUT/ff.mp4"
  run e1_ges sh "$SHARED/e1_ges.sh" "$MEDIA" "$OUT/ges.mp4"
  [ -n "$MELT" ] && run e1_melt sh "$SHARED/e1_melt.sh" "$MEDIA" "$OUT/melt.mp4"
  run floor_enc sh "$SHARED/limits.sh" "$MEDIA" "$OUT/floor.mp4" enc_ff_raw
  run floor_dec sh "$SHARED/limits.sh" "$MEDIA" "$OUT/floor" dec_ff_portions
  run trim_nve "$NVE" render "$OUT/trim.json" -o "$OUT/trim_nve.mp4" --profile h264 --hardware off
  run trim_nve_full "$NVE" render "$OUT/trim.json" -o "$OUT/trim_full.mp4" --profile h264 --hardware off --no-smart
  run trim_copy sh "$SHARED/e2.sh" "$MEDIA" "$OUT/trim_copy.mp4" ff_copy
  run trim_ff sh "$SHARED/e2.sh" "$MEDIA" "$OUT/trim_ff.mp4" ff_reencode
  for _ in 1 2 3; do
    run frame_nve "$NVE" render "$OUT/e1.json" -o "$OUT/f.jpg" --profile jpeg --range 15..15.0333
    run frame_ff $FF -ss 15 -i "$OUT/ff.mp4" -frames:v 1 "$OUT/f_ff.jpg"
  done
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
FW=$(median e1_ff 1); FC=$(median e1_ff 2); FM=$(median e1_ff 3)
row() { # label key
  local w c m
  w=$(median "$2" 1); c=$(median "$2" 2); m=$(median "$2" 3)
  printf "| %s | %.2f | **%s** | %.2f | %s | %d | %s |\n" "$1" "$w" "$(ratio "$w" "$FW")" \
    "$c" "$(ratio "$c" "$FC")" $((m / 1024)) "$(ratio "$m" "$FM")"
}

echo "render benchmark (E1): $(nproc) cores, medians of $RUNS interleaved runs, $(date -u +%Y-%m-%d)"
echo
echo "| E1 (29 s 1080p30, x264 veryfast CRF 23 + AAC 128k) | wall s | wall ÷ ffmpeg | CPU s | CPU ÷ ffmpeg | peak MiB | peak ÷ ffmpeg |"
echo "|---|---:|---:|---:|---:|---:|---:|"
row "**nve render bench/e1.json**" e1_nve
row "ffmpeg filter_complex (e1_ffmpeg.sh)" e1_ff
row "ges-launch-1.0 (e1_ges.sh)" e1_ges
if [ -n "$MELT" ]; then row "melt (e1_melt.sh)" e1_melt; else echo "| melt: skipped, $MELT_WHY | | | | | | |"; fi
row "floor: encode E1's frames from RAM (limits.sh enc_ff_raw)" floor_enc
row "floor: decode the used inputs (limits.sh dec_ff_portions)" floor_dec
echo
echo "| trim clipA 4-14 s | wall s | CPU s | peak MiB |"
echo "|---|---:|---:|---:|"
for k in "nve render --profile h264 (smart rendering):trim_nve" \
         "nve render --profile h264 --no-smart (re-encode):trim_nve_full" \
         "ffmpeg stream copy (e2.sh ff_copy):trim_copy" "ffmpeg re-encode (e2.sh ff_reencode):trim_ff"; do
  printf "| %s | %.3f | %.2f | %d |\n" "${k%%:*}" "$(median "${k##*:}" 1)" "$(median "${k##*:}" 2)" \
    $(($(median "${k##*:}" 3) / 1024))
done
echo
echo "single frame of E1 at 15 s (whole processes, $((RUNS * 3)) runs):"
printf "  nve render --range 15..15.0333 --profile jpeg: %.3f s   ffmpeg -ss 15 on the finished file: %.3f s\n" \
  "$(median frame_nve 1)" "$(median frame_ff 1)"
echo "frame_at on E1 in a warm process (pipelines/examples/frame_bench.rs, 640 wide):"
"$FRAME_BENCH" "$OUT/e1.json" 640 1 9.5 15 25 | sed 's/^/  /'
echo
for f in nve ff; do
  printf "%-4s %s bytes, %s\n" "$f" "$(stat -c %s "$OUT/$f.mp4")" \
    "$(ffprobe -v error -show_entries stream=codec_name,nb_frames,duration -of compact=p=0:nk=1 "$OUT/$f.mp4" | tr '\n' ' ')"
done
# Frames of each output at a few times, kept for a look: title (1 s), dissolve (9.5 s), clipB
# (15 s), clipC (25 s); the logo is in every one.
cp "$OUT/nve.mp4" "$OUT/ff.mp4" "$KEEP/"
for t in 1 9.5 15 25; do
  for f in nve ff; do
    $FF -ss "$t" -i "$OUT/$f.mp4" -frames:v 1 -vf scale=960:-2 "$KEEP/${f}_$t.png"
  done
done
echo "outputs and frames (nve_T.png, ff_T.png) kept in $KEEP"
