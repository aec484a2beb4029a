#!/usr/bin/env bash
# Benchmark of the Python buildpack on fixtures/python-django, in one run:
#   1. plain `pip install -r requirements.txt` into a fresh venv (no pip cache: a cold install),
#   2. our cold build (`slug build` with an empty cache dir),
#   3. `uv pip install -r requirements.txt` into a fresh venv (`uv venv`, no uv cache): the
#      second baseline, with the uv the cold build installed (or $UV),
#   4. our warm rebuild with nothing changed (same cache dir).
# Usage: bench/python.sh [path/to/slug] [ROUNDS]   (default: target/release/slug, built if
# missing; 1 round). Prints each round's wall times in seconds and the ratios the bar is about
# (cold ≤ 0.5× pip; warm ≤ 2 s) and the cold build against uv, then with several rounds the medians: pip's time swings with
# PyPI's, so a single round says little.
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

rounds="${2:-1}"
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
pips=() uvs=() colds=() warms=() ratios=() uv_ratios=()
for round in $(seq 1 "$rounds"); do
  r="$scratch/round-$round"
  mkdir -p "$r"

  sync
  t0=$(now)
  "$python" -m venv "$r/venv"
  PIP_NO_CACHE_DIR=1 "$r/venv/bin/pip" install -q -r "$app/requirements.txt"
  t1=$(now)
  pip_s=$(elapsed "$t0" "$t1")

  sync
  t0=$(now)
  "$slug" build "$app" --cache-dir "$r/cache" --content-cache "$r/content" --output "$r/out" > /dev/null 2> "$r/cold.log"
  t1=$(now)
  cold_s=$(elapsed "$t0" "$t1")

  uv="${UV:-$r/cache/layers/slugc_python/uv/bin/uv}"
  [[ -x "$uv" ]] || { echo "no uv at $uv (set UV=/path/to/uv)"; exit 1; }
  sync
  t0=$(now)
  "$uv" venv --quiet --python "$python" "$r/uv-venv"
  UV_NO_CACHE=1 "$uv" pip install --quiet --python "$r/uv-venv/bin/python" -r "$app/requirements.txt"
  t1=$(now)
  uv_s=$(elapsed "$t0" "$t1")

  sync
  t0=$(now)
  "$slug" build "$app" --cache-dir "$r/cache" --content-cache "$r/content" --output "$r/out" > /dev/null 2> "$r/warm.log"
  t1=$(now)
  warm_s=$(elapsed "$t0" "$t1")

  grep -q "Dependencies unchanged" "$r/warm.log" || { echo "warm build reinstalled:"; cat "$r/warm.log"; exit 1; }
  ratio=$(awk -v c="$cold_s" -v p="$pip_s" 'BEGIN { printf "%.2f", c / p }')
  uv_ratio=$(awk -v c="$cold_s" -v u="$uv_s" 'BEGIN { printf "%.2f", c / u }')
  pips+=("$pip_s") uvs+=("$uv_s") colds+=("$cold_s") warms+=("$warm_s") ratios+=("$ratio") uv_ratios+=("$uv_ratio")
  echo "round $round: pip install into fresh venv ${pip_s} s, uv pip install into fresh venv ${uv_s} s, slug build cold ${cold_s} s (${ratio}× pip, ${uv_ratio}× uv), warm no-change ${warm_s} s"
  # Venvs stay until the end: deleting thousands of files between rounds slows the next
  # round's file creation on ext4 without a journal (docs/nodejs.md), on both sides.
done

slug_bytes=$(stat -c %s "$scratch"/round-1/out/*.tgz | head -1)
echo "pip install into fresh venv: $(printf '%s\n' "${pips[@]}" | median) s (median of $rounds)"
echo "uv pip install, fresh venv:  $(printf '%s\n' "${uvs[@]}" | median) s (median of $rounds)"
echo "slug build, cold:            $(printf '%s\n' "${colds[@]}" | median) s  ($(printf '%s\n' "${ratios[@]}" | median)× pip, median of the rounds' ratios; bar ≤ 0.5×)"
echo "                             ($(printf '%s\n' "${uv_ratios[@]}" | median)× uv pip install; no bar: it is the floor of an install, slug adds the runtime, bytecode and the slug)"
echo "slug build, warm no-change:  $(printf '%s\n' "${warms[@]}" | median) s  (bar ≤ 2 s)"
echo "slug size:                   $(awk -v b="$slug_bytes" 'BEGIN { printf "%.1f", b / 1048576 }') MiB"
