#!/usr/bin/env bash
# Measures a library scan (README, "Library scans"): `moodscope analyze FOLDER` on a few hundred
# files, cold (a new library database: every file analysed) and warm (the same database: every
# file unchanged), 3 runs each, and prints the median wall time, files per second and the
# multiple of real time.
#
#   bash scripts/bench-scan.sh [FILES] [SECONDS_EACH]      # default: 300 files of 30 s
#
# The files are excerpts of the HyperRogue soundtrack (Debian `hyperrogue-music`), each from
# its own offset, in FLAC, MP3, Ogg Vorbis, Opus and M4A (AAC) in turn, made with ffmpeg. Not a
# test: the figures depend on the machine.
set -euo pipefail
cd "$(dirname "$0")/.."

files=${1:-300}
each=${2:-30}
runs=3

for tool in ffmpeg python3; do
  command -v "$tool" >/dev/null || { echo "needs $tool (apt-get install ffmpeg python3)"; exit 2; }
done
tracks=()
for t in /usr/share/hyperrogue/music/*.ogg; do
  # (One track of the package, hr-savino-caribbean.ogg, has a header ffmpeg cannot read.)
  ffprobe -v error "$t" >/dev/null 2>&1 && tracks+=("$t")
done
[ "${#tracks[@]}" -gt 0 ] || { echo "needs apt-get install hyperrogue-music"; exit 2; }

cargo build --release --quiet --features cli --bin moodscope
bin=target/release/moodscope
models=${MOODSCOPE_MODELS:-models}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
music="$work/music"
mkdir -p "$music"

echo "making $files excerpts of $each s in $music ..." >&2
formats=("flac:-c:a flac" "mp3:-c:a libmp3lame -b:a 192k" "ogg:-c:a libvorbis" \
         "opus:-c:a libopus -b:a 128k" "m4a:-c:a aac -b:a 192k")
for ((i = 0; i < files; i++)); do
  track=${tracks[$((i % ${#tracks[@]}))]}
  round=$((i / ${#tracks[@]}))
  spec=${formats[$((i % ${#formats[@]}))]}
  ext=${spec%%:*}
  codec=${spec#*:}
  dir="$music/album-$((i % 10))"
  mkdir -p "$dir"
  # Each round starts 7 s later, wrapping inside the track so that every excerpt is full length.
  length=$(ffprobe -v error -show_entries format=duration -of csv=p=0 "$track" | cut -d. -f1)
  span=$((length > each + 1 ? length - each - 1 : 1))
  # shellcheck disable=SC2086
  ffmpeg -nostdin -v error -y -ss $(((round * 7) % span)) -t "$each" -i "$track" \
    $codec "$dir/$(printf '%04d' "$i").$ext"
done
total_seconds=$((files * each))

time_run() { # prints the wall seconds of one scan with database $1
  local start end
  start=$(date +%s.%N)
  "$bin" analyze --models "$models" --db "$1" --out /dev/null "$music" 2>"$work/stderr" || {
    cat "$work/stderr" >&2
    exit 1
  }
  end=$(date +%s.%N)
  tail -n 1 "$work/stderr" >&2
  python3 -c "print($end - $start)"
}

cold=()
for ((r = 0; r < runs; r++)); do
  rm -f "$work"/cold.sqlite*
  cold+=("$(time_run "$work/cold.sqlite")")
done
warm=()
for ((r = 0; r < runs; r++)); do
  warm+=("$(time_run "$work/cold.sqlite")")
done

python3 - "$files" "$total_seconds" "${cold[*]}" "${warm[*]}" "$(nproc)" <<'EOF'
import statistics
import sys

files, audio = int(sys.argv[1]), float(sys.argv[2])
cores = sys.argv[5]
print(f"{files} files, {audio / 3600:.2f} h of audio, {cores} cores")
print("| scan | median wall time (3 runs) | files/s | multiple of real time |")
print("| --- | --- | --- | --- |")
for name, times in (("cold (new database)", sys.argv[3]), ("warm (unchanged files)", sys.argv[4])):
    t = statistics.median(float(x) for x in times.split())
    print(f"| {name} | {t:.2f} s | {files / t:.1f} | {audio / t:.0f}x |")
EOF
