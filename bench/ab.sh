#!/usr/bin/env bash
# A/B benchmark: two variants of slugc in one run, rounds interleaved (A then B, then B then
# A, ...) so that the machine's swings fall on both alike. Each round also times the
# baseline tool, so each variant is reported as the ratio the bars are about.
#
#   bench/ab.sh nodejs|python|export [ROUNDS]      (default 5)
#
# Environment:
#   SLUG_A, SLUG_B  the two `slug` binaries (default: both `cargo build --release` of this
#                   checkout); for `export`, two `export_tree` example binaries
#   ENV_A, ENV_B    extra environment for each variant, as `KEY=VALUE ...`
#   BENCH_APP       the app (default fixtures/node-express or fixtures/python-django)
#   BENCH_TREE      the tree for `export` (default /var/tmp/slugc-bench-tree, as export.sh)
#   BENCH_DIR       scratch dir (default: a fresh dir under /var/tmp)
#
# Not a test: it prints figures (docs/performance.md keeps them).
set -euo pipefail
shopt -s inherit_errexit

kind=${1:?usage: bench/ab.sh nodejs|python|export [ROUNDS]}
rounds=${2:-5}
repo=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}
case $kind in
  nodejs) app=${BENCH_APP:-$repo/fixtures/node-express} ;;
  python) app=${BENCH_APP:-$repo/fixtures/python-django} ;;
  export) tree=${BENCH_TREE:-/var/tmp/slugc-bench-tree} ;;
  *) echo "unknown kind $kind" >&2; exit 2 ;;
esac
if [ "$kind" = export ]; then
  command -v pigz >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq pigz >/dev/null; }
  if [ -z "${SLUG_A:-}" ] || [ -z "${SLUG_B:-}" ]; then
    (cd "$repo" && cargo build --release --example export_tree >&2)
  fi
  default=$target/release/examples/export_tree
  [ -d "$tree/node_modules" ] || { echo "no $tree: run bench/export.sh once to make it" >&2; exit 2; }
else
  if [ -z "${SLUG_A:-}" ] || [ -z "${SLUG_B:-}" ]; then
    (cd "$repo" && cargo build --release --bin slug >&2)
  fi
  default=$target/release/slug
fi
slug_a=${SLUG_A:-$default} slug_b=${SLUG_B:-$default}
env_a=${ENV_A:-} env_b=${ENV_B:-}
scratch=${BENCH_DIR:-$(mktemp -d /var/tmp/slugc-bench-ab.XXXXXX)}
mkdir -p "$scratch"
trap 'rm -rf "$scratch"' EXIT
python=$(command -v python3.11 || echo /usr/bin/python3.11)

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
spread() { sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%s–%s", lo, hi }'; }

# baseline DIR: the tool's own cold install (+ tar), as nodejs.sh and python.sh time it;
# for `export`, `tar | pigz -6` on all cores.
baseline() {
  local r=$1
  sync
  local t0 t1
  t0=$(now)
  case $kind in
    nodejs)
      cp -r "$app" "$r/base"
      (cd "$r/base" && npm_config_cache="$r/npm-cache" npm ci --no-audit --no-fund >/dev/null 2>&1)
      tar -czf "$r/base.tgz" -C "$r/base" . ;;
    python)
      "$python" -m venv "$r/venv"
      PIP_NO_CACHE_DIR=1 "$r/venv/bin/pip" install -q -r "$app/requirements.txt" ;;
    export)
      tar -cf - -C "$tree" . | pigz -6 -p "$(nproc)" >"$r/pigz.tgz" ;;
  esac
  t1=$(now)
  elapsed "$t0" "$t1"
}

# once BIN ENV DIR LOG [CACHE]: one build (or export) into DIR/out with the app cache
# DIR/CACHE (default DIR/cache); prints its seconds.
once() {
  local bin=$1 extra=$2 r=$3 log=$4 app_cache=${5:-cache} t0 t1
  rm -rf "$r/out"
  sync
  t0=$(now)
  if [ "$kind" = export ]; then
    env $extra "$bin" "$tree" "$r/out" --part-cache "$r/parts" >/dev/null
  else
    env $extra "$bin" build "$app" --output "$r/out" --cache-dir "$r/$app_cache" \
      --content-cache "$r/content" >"$log" 2>&1 \
      || { echo "build failed:" >&2; cat "$log" >&2; exit 1; }
  fi
  t1=$(now)
  elapsed "$t0" "$t1"
}

# variant NAME BIN ENV DIR: cold, then warm, then (builds only) a new app: an empty app
# cache with the content cache the cold build filled; prints "cold warm new".
variant() {
  local name=$1 bin=$2 extra=$3 r=$4/$1 cold warm new=0
  mkdir -p "$r"
  cold=$(once "$bin" "$extra" "$r" "$r/cold.log")
  warm=$(once "$bin" "$extra" "$r" "$r/warm.log")
  [ "$kind" = export ] || new=$(once "$bin" "$extra" "$r" "$r/new.log" cache-new)
  basename "$r"/out/sha256-*.tgz >>"$scratch/$name.names"
  stat -c %s "$r"/out/sha256-*.tgz >>"$scratch/$name.sizes"
  echo "$cold $warm $new"
}

for round in $(seq 1 "$rounds"); do
  r=$scratch/round-$round
  mkdir -p "$r"
  base=$(baseline "$r")
  if [ $((round % 2)) = 1 ]; then
    read -r ac aw an < <(variant A "$slug_a" "$env_a" "$r")
    read -r bc bw bn < <(variant B "$slug_b" "$env_b" "$r")
  else
    read -r bc bw bn < <(variant B "$slug_b" "$env_b" "$r")
    read -r ac aw an < <(variant A "$slug_a" "$env_a" "$r")
  fi
  echo "$base $ac $aw $bc $bw $an $bn" >>"$scratch/rounds"
  echo "round $round: baseline $base s | A cold $ac warm $aw new app $an | B cold $bc warm $bw new app $bn" >&2
  # Rounds stay until the end: on ext4 without a journal, files created in the minutes after
  # thousands were deleted are slow to make (docs/performance.md), so deleting a round here
  # slowed the next one's file creation, on both sides and more with each round.
done

col() { awk -v c="$1" '{ print $c }' "$scratch/rounds"; }
ratio() { awk -v c="$1" '{ printf "%.2f\n", $c / $1 }' "$scratch/rounds"; }
echo
echo "$kind, $rounds rounds, $(nproc) cores; A: ${env_a:-} $slug_a; B: ${env_b:-} $slug_b"
echo "baseline median $(col 1 | median) s ($(col 1 | spread))"
for v in A:2:3:6 B:4:5:7; do
  IFS=: read -r name c w n <<<"$v"
  printf '%s: cold/baseline median %s (%s), cold %s s, warm median %s s (%s), size %s B, slugs: %s\n' \
    "$name" "$(ratio "$c" | median)" "$(ratio "$c" | spread)" "$(col "$c" | median)" \
    "$(col "$w" | median)" "$(col "$w" | spread)" "$(sort -u "$scratch/$name.sizes" | tr '\n' ' ')" \
    "$(sort -u "$scratch/$name.names" | wc -l)"
  [ "$kind" = export ] ||
    printf '%s: new app/baseline median %s (%s), new app %s s\n' \
      "$name" "$(ratio "$n" | median)" "$(ratio "$n" | spread)" "$(col "$n" | median)"
done
awk -v export="$([ "$kind" = export ] && echo 1)" '{ c += ($4 - $2) / $2; w += ($5 - $3) / $3; if (!export) n += ($7 - $6) / $6 } END {
  printf "B vs A: cold %+.1f%%, warm %+.1f%%", 100 * c / NR, 100 * w / NR
  if (!export) printf ", new app %+.1f%%", 100 * n / NR
  print " (mean of per-round changes)" }' "$scratch/rounds"
