#!/usr/bin/env bash
# Benchmark of the Python buildpack on fixtures/python-django, in one run:
#   1. plain `pip install -r requirements.txt` into a fresh venv (no pip cache: a cold install),
#   2. our cold build (`slug build` with an empty cache dir),
#   3. our warm rebuild with nothing changed (same cache dir).
# Usage: bench/python.sh [path/to/slug]   (default: target/release/slug, built if missing)
# Prints wall times in seconds and the ratios the bar is about (cold ≤ 0.5× pip; warm ≤ 2 s).
# Each timed step starts after a `sync` (not timed): otherwise a step pays for flushing the
# previous one's writes (pip's venv is ~50 MB), which made our cold build 2-5 s slower on disk.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
slug="${1:-${CARGO_TARGET_DIR:-$repo/target}/release/slug}"
if [[ ! -x "$slug" ]]; then
  (cd "$repo" && cargo build --release --bin slug)
fi
app="$repo/fixtures/python-django"
scratch="$(mktemp -d "${TMPDIR:-/tmp}/slugc-bench-python.XXXXXX")"
trap 'rm -rf "$scratch"' EXIT
python="$(command -v python3.11 || echo /usr/bin/python3.11)"

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

sync
t0=$(now)
"$python" -m venv "$scratch/venv"
PIP_NO_CACHE_DIR=1 "$scratch/venv/bin/pip" install -q -r "$app/requirements.txt"
t1=$(now)
pip_s=$(elapsed "$t0" "$t1")

sync
t0=$(now)
"$slug" build "$app" --cache-dir "$scratch/cache" --output "$scratch/out" > /dev/null 2> "$scratch/cold.log"
t1=$(now)
cold_s=$(elapsed "$t0" "$t1")

sync
t0=$(now)
"$slug" build "$app" --cache-dir "$scratch/cache" --output "$scratch/out" > /dev/null 2> "$scratch/warm.log"
t1=$(now)
warm_s=$(elapsed "$t0" "$t1")

grep -q "Dependencies unchanged" "$scratch/warm.log" || { echo "warm build reinstalled:"; cat "$scratch/warm.log"; exit 1; }
echo "pip install into fresh venv: ${pip_s} s"
echo "slug build, cold:            ${cold_s} s  ($(awk -v c="$cold_s" -v p="$pip_s" 'BEGIN { printf "%.2f", c / p }')× pip; bar ≤ 0.5×)"
echo "slug build, warm no-change:  ${warm_s} s  (bar ≤ 2 s)"
slug_bytes=$(stat -c %s "$scratch"/out/*.tgz | head -1)
echo "slug size:                   $(awk -v b="$slug_bytes" 'BEGIN { printf "%.1f", b / 1048576 }') MiB"
