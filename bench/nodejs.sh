#!/usr/bin/env bash
# Benchmark of the Node.js buildpack on fixtures/node-express, all in one run on the same
# machine: the baseline `npm ci` (empty npm cache) + `tar -czf` of the result, our cold build
# (empty app cache and empty machine-wide content cache: it also downloads and verifies
# Node.js and npm, compresses everything, and writes the slug), our cold build of the app as a
# new app on a machine that built it once (empty app cache, the content cache of the first
# build), and our warm rebuild with nothing changed. Then the same cold and warm builds of a
# pnpm app (fixtures/node-pnpm-dev) and a Yarn 4 app (fixtures/node-yarn-berry), each against
# its own tool's frozen install (`pnpm install --frozen-lockfile`, `yarn install --immutable`,
# empty tool cache) + `tar -czf`, with the tool version the buildpack picks for that app,
# fetched from the registry with `npm pack` and run on the host's node. Not a test: it prints
# figures (docs/performance.md keeps them).
#
#   bench/nodejs.sh [ROUNDS]     (default 3; the median of the rounds is reported)
#
# Environment:
#   SLUG        the slug binary (default: `cargo build --release` of this checkout)
#   BENCH_DIR   scratch dir (default: a fresh dir under /var/tmp; disk, like a real build)
#   BENCH_APP   the app (default fixtures/node-express)
#   BENCH_TOOLS `pnpm yarn` (default) or a subset, or empty: which other package managers
# The baseline uses the `npm` on PATH; the slug's own Node/npm come from the registry.
set -euo pipefail

rounds=${1:-3}
repo=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}
app=${BENCH_APP:-$repo/fixtures/node-express}
if [ -z "${SLUG:-}" ]; then
  (cd "$repo" && cargo build --release --bin slug >&2)
  SLUG=$target/release/slug
fi
scratch=${BENCH_DIR:-$(mktemp -d /var/tmp/slugc-bench-nodejs.XXXXXX)}
mkdir -p "$scratch"
trap 'rm -rf "$scratch"' EXIT

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
# slug_build APP ROUND CACHE LOG: one `slug build` of APP into ROUND/out with app cache CACHE
# and the content cache ROUND/content; prints its seconds.
slug_build() {
  local t0 t1
  t0=$(now)
  "$SLUG" build "$1" --output "$2/out" --cache-dir "$3" --content-cache "$2/content" >"$4" 2>&1
  t1=$(now)
  elapsed "$t0" "$t1"
}
# check_round ROUND WARM_LOG INSTALL_PATTERN: the warm build installed and downloaded
# nothing, and every build of the round made the same slug.
check_round() {
  if grep -q "$3\|Downloading" "$2"; then
    echo "warm rebuild installed or downloaded something:" >&2
    cat "$2" >&2
    exit 1
  fi
  if [ "$(find "$1/out" -name 'sha256-*.tgz' | wc -l)" != 1 ]; then
    echo "the builds of $1 made different slugs:" >&2
    ls "$1/out" >&2
    exit 1
  fi
}

base_times=() cold_times=() newapp_times=() warm_times=()
for round in $(seq 1 "$rounds"); do
  r=$scratch/round-$round
  mkdir -p "$r"

  # Baseline: what a hand-rolled build does. Empty npm cache, like our cold build.
  cp -r "$app" "$r/base"
  t0=$(now)
  (cd "$r/base" && npm_config_cache="$r/npm-cache" npm ci --no-audit --no-fund >/dev/null 2>&1)
  tar -czf "$r/base.tgz" -C "$r/base" .
  t1=$(now)
  base_times+=("$(elapsed "$t0" "$t1")")

  # Ours, cold: empty app cache, empty content cache.
  cold_times+=("$(slug_build "$app" "$r" "$r/cache" "$r/cold.log")")
  # Ours, a new app on this machine: empty app cache, the content cache the cold build left.
  newapp_times+=("$(slug_build "$app" "$r" "$r/cache-new" "$r/newapp.log")")
  # Ours, warm: same caches, nothing changed.
  warm_times+=("$(slug_build "$app" "$r" "$r/cache" "$r/warm.log")")
  # Cold, new app and warm must have made the same slug.
  check_round "$r" "$r/warm.log" "Running npm ci"
  echo "round $round: npm ci + tar ${base_times[-1]} s, cold ${cold_times[-1]} s, new app ${newapp_times[-1]} s, warm ${warm_times[-1]} s" >&2
done

base=$(printf '%s\n' "${base_times[@]}" | median)
cold=$(printf '%s\n' "${cold_times[@]}" | median)
newapp=$(printf '%s\n' "${newapp_times[@]}" | median)
warm=$(printf '%s\n' "${warm_times[@]}" | median)
slug_size=$(stat -c %s "$scratch"/round-1/out/sha256-*.tgz | head -1)
base_size=$(stat -c %s "$scratch/round-1/base.tgz")

echo
echo "node-express, median of $rounds rounds ($(nproc) cores)"
printf '%-34s %8s %12s\n' "step" "seconds" "output MB"
printf '%-34s %8s %12.1f\n' "npm ci + tar -czf (baseline)" "$base" "$(awk -v s="$base_size" 'BEGIN{print s/1e6}')"
printf '%-34s %8s %12.1f\n' "slug build, cold (incl. Node.js)" "$cold" "$(awk -v s="$slug_size" 'BEGIN{print s/1e6}')"
printf '%-34s %8s %12s\n' "slug build, new app (content warm)" "$newapp" "same slug"
printf '%-34s %8s %12s\n' "slug build, warm, no change" "$warm" "same slug"
ratio=$(awk -v c="$cold" -v b="$base" 'BEGIN { printf "%.2f", c / b }')
newratio=$(awk -v c="$newapp" -v b="$base" 'BEGIN { printf "%.2f", c / b }')
echo
echo "cold / baseline = $ratio (bar: <= 1.2)   new app / baseline = $newratio (bar: <= 1.05)   warm = $warm s (bar: <= 1.0)"

# ---- pnpm and Yarn 4: each app against its own tool's frozen install + tar, same rounds ----
tools=${BENCH_TOOLS-pnpm yarn}
# The tool as the buildpack picks it for the app (pnpm: the newest 10.x for lockfile 9;
# Yarn: the packageManager pin), unpacked once, run with the host's node.
fetch_tool() { # package spec -> path of its JS entry
  local dir=$scratch/tools/${1//\//_}
  mkdir -p "$dir"
  (cd "$dir" && npm pack "$1" --silent >/dev/null 2>&1 && tar -xzf ./*.tgz)
  echo "$dir/package"
}
for tool in $tools; do
  case $tool in
    pnpm)
      tool_app=$repo/fixtures/node-pnpm-dev
      entry=$(fetch_tool pnpm@10)/bin/pnpm.cjs
      tool_install() { node "$entry" install --frozen-lockfile --store-dir "$1/store" >/dev/null 2>&1; }
      ;;
    yarn)
      tool_app=$repo/fixtures/node-yarn-berry
      pin=$(node -p "require('$tool_app/package.json').packageManager.split('@')[1]")
      entry=$(fetch_tool "@yarnpkg/cli-dist@$pin")/bin/yarn.js
      tool_install() {
        YARN_ENABLE_GLOBAL_CACHE=false YARN_CACHE_FOLDER="$1/yarn-cache" YARN_NODE_LINKER=node-modules \
          YARN_ENABLE_TELEMETRY=0 node "$entry" install --immutable >/dev/null 2>&1
      }
      ;;
    *) echo "unknown tool $tool" >&2; exit 2 ;;
  esac
  t_base=() t_cold=() t_warm=()
  for round in $(seq 1 "$rounds"); do
    r=$scratch/$tool-round-$round
    mkdir -p "$r"
    cp -r "$tool_app" "$r/base"
    t0=$(now)
    (cd "$r/base" && tool_install "$r")
    tar -czf "$r/base.tgz" -C "$r/base" .
    t1=$(now)
    t_base+=("$(elapsed "$t0" "$t1")")
    t_cold+=("$(slug_build "$tool_app" "$r" "$r/cache" "$r/cold.log")")
    t_warm+=("$(slug_build "$tool_app" "$r" "$r/cache" "$r/warm.log")")
    check_round "$r" "$r/warm.log" "Running $tool install"
    echo "$tool round $round: frozen install + tar ${t_base[-1]} s, cold ${t_cold[-1]} s, warm ${t_warm[-1]} s" >&2
  done
  base=$(printf '%s\n' "${t_base[@]}" | median)
  cold=$(printf '%s\n' "${t_cold[@]}" | median)
  warm=$(printf '%s\n' "${t_warm[@]}" | median)
  echo
  echo "$(basename "$tool_app") ($tool), median of $rounds rounds"
  printf '%-34s %8s\n' "$tool frozen install + tar -czf" "$base"
  printf '%-34s %8s\n' "slug build, cold (incl. Node.js)" "$cold"
  printf '%-34s %8s\n' "slug build, warm, no change" "$warm"
  echo "cold / baseline = $(awk -v c="$cold" -v b="$base" 'BEGIN { printf "%.2f", c / b }')   warm = $warm s"
done
