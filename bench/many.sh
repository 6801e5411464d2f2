#!/usr/bin/env bash
# Many short clips: what the windowed render builder is for. Generates two timelines of cuts
# between the reference clips (60 cuts of 0.5 s; 200 cuts of 0.4 s plus 40 music pieces) and
# renders each with `nve render --profile h264-fast` (1280x720), printing wall time, CPU time
# and peak RSS, then the 200-cut render again under the address-space limit a render child
# gets by default (jobs.child_memory_mb = 4096).
#
#   bench/many.sh [RUNS]     (default 2)
#
# NVE_SHARED_MEDIA / NVE_BENCH_MEDIA as for bench/render.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=$(realpath -m "${NVE_SHARED_MEDIA:-../shared/media}")
MEDIA=$(realpath -m "${NVE_BENCH_MEDIA:-target/bench-media}")
RUNS=${1:-2}
[ -x /usr/bin/time ] || { echo "needs GNU time: apt-get install time" >&2; exit 2; }
if [ ! -f "$MEDIA/clipC.mp4" ] || [ ! -f "$MEDIA/music.m4a" ]; then
  mkdir -p "$MEDIA"
  sh "$SHARED/make_media.sh" "$MEDIA" >/dev/null
fi
cargo build --release -q -p nve-api --bin nve
NVE="${CARGO_TARGET_DIR:-target}/release/nve"
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

# timeline CUTS LENGTH FPS MUSIC: cuts of LENGTH seconds cycling clipA/B/C with in-points
# cycling 0..14 s, and MUSIC pieces of 1.5 s every 2 s on an audio track.
timeline() {
  local cuts=$1 len=$2 fps=$3 music=$4 i src
  local srcs=(clipA clipB clipC)
  printf '{"output":{"width":1280,"height":720,"frame_rate":%s,"sample_rate":48000,"channels":2},' "$fps"
  printf '"tracks":[{"id":"main","kind":"video","clips":['
  for ((i = 0; i < cuts; i++)); do
    src=${srcs[$((i % 3))]}
    [ "$i" -gt 0 ] && printf ','
    printf '{"id":"c%d","source":{"type":"asset","asset_id":"%s/%s.mp4"},"start":%s,"in_point":%d,"duration":%s}' \
      "$i" "$MEDIA" "$src" "$(awk -v i="$i" -v l="$len" 'BEGIN { printf "%.3f", i * l }')" "$((i % 15))" "$len"
  done
  printf ']}'
  if [ "$music" -gt 0 ]; then
    printf ',{"id":"music","kind":"audio","clips":['
    for ((i = 0; i < music; i++)); do
      [ "$i" -gt 0 ] && printf ','
      printf '{"id":"m%d","source":{"type":"asset","asset_id":"%s/music.m4a"},"start":%d,"in_point":%d,"duration":1.5}' \
        "$i" "$MEDIA" "$((i * 2))" "$((i % 5))"
    done
    printf ']}'
  fi
  printf ']}\n'
}
timeline 60 0.5 30 0 >"$OUT/cuts60.json"
timeline 200 0.4 25 40 >"$OUT/cuts200.json"

echo "| timeline | run | wall s | CPU s | peak RSS MiB |"
echo "|---|---:|---:|---:|---:|"
for name in cuts60 cuts200; do
  for ((r = 1; r <= RUNS; r++)); do
    /usr/bin/time -f "%e %U %S %M" -o "$OUT/t" "$NVE" render "$OUT/$name.json" -o "$OUT/$name.mp4" \
      --profile h264-fast >/dev/null 2>"$OUT/$name.log" || { cat "$OUT/$name.log" >&2; exit 1; }
    read -r wall user sys rss <"$OUT/t"
    printf '| %s | %d | %.2f | %.2f | %d |\n' "$name" "$r" "$wall" "$(awk -v u="$user" -v s="$sys" 'BEGIN { print u + s }')" "$((rss / 1024))"
  done
done
if prlimit --as=4294967296 "$NVE" render "$OUT/cuts200.json" -o "$OUT/limited.mp4" --profile h264-fast \
  >/dev/null 2>"$OUT/limited.log"; then
  echo "cuts200 under prlimit --as=4GiB: rendered"
else
  echo "cuts200 under prlimit --as=4GiB: FAILED: $(tail -n 1 "$OUT/limited.log")"
fi
