#!/usr/bin/env bash
# Benchmark of the slug export against `tar | gzip -6` and `tar | pigz -6`, in the same run,
# on the same tree and cores. Not a test: it prints figures (docs/export.md keeps them).
#
#   bench/export.sh [ROUNDS]        (default 3; the median of the rounds is reported)
#
# Environment:
#   BENCH_TREE  the tree to export (default /var/tmp/slugc-bench-tree; made once with
#               `npm install` of a few big packages, ~200 MB / ~24k files, then reused)
#   BENCH_OUT   where outputs go (default /var/tmp/slugc-bench-out; same disk for all three)
#   THREADS     compressing threads for ours and pigz (default: nproc)
set -euo pipefail

rounds=${1:-3}
tree=${BENCH_TREE:-/var/tmp/slugc-bench-tree}
out=${BENCH_OUT:-/var/tmp/slugc-bench-out}
threads=${THREADS:-$(nproc)}
repo=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}

need() { command -v "$1" >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq "$2" >/dev/null; }; }
need pigz pigz
[ -x /usr/bin/time ] || { apt-get update -qq && apt-get install -y -qq time >/dev/null; }

if [ ! -d "$tree/node_modules" ]; then
  echo "making $tree (npm install; once)" >&2
  mkdir -p "$tree"
  printf '{"name":"slugc-bench-tree","version":"1.0.0","private":true}\n' >"$tree/package.json"
  (cd "$tree" && npm install --no-audit --no-fund --ignore-scripts \
    typescript @babel/core aws-sdk rxjs lodash date-fns core-js @mui/material react react-dom >&2)
fi

(cd "$repo" && cargo build --release --example export_tree >&2)
bin=$target/release/examples/export_tree

mkdir -p "$out"
files=$(find "$tree" | wc -l)
# Read the tree once so every contender starts from a warm page cache.
tar_bytes=$(tar -cf - -C "$tree" . | wc -c)

# run NAME COMMAND: appends "seconds max_rss_kb output_bytes" to $out/NAME.runs
run() {
  local name=$1 cmd=$2
  /usr/bin/time -f "%e %M" -o "$out/time.txt" bash -c "$cmd"
  local size
  if [ "$name" = slugc ] || [ "$name" = warm ]; then
    size=$(stat -c %s "$out"/store/sha256-*.tgz)
    gzip -t "$out"/store/sha256-*.tgz
    basename "$out"/store/sha256-*.tgz >>"$out/names"
    rm -rf "$out/store"
  else
    size=$(stat -c %s "$out/$name.tgz")
  fi
  echo "$(cat "$out/time.txt") $size" >>"$out/$name.runs"
}

rm -f "$out"/*.runs "$out/names"
# A part cache filled once, for the warm row: every part a hit.
rm -rf "$out/parts" "$out/store"
"$bin" "$tree" "$out/store" --threads "$threads" --part-cache "$out/parts" >/dev/null
rm -rf "$out/store"
load=$(cut -d' ' -f1-3 /proc/loadavg)
for i in $(seq "$rounds"); do
  echo "round $i/$rounds" >&2
  run slugc "'$bin' '$tree' '$out/store' --threads $threads >/dev/null"
  run gzip "tar -cf - -C '$tree' . | gzip -6 >'$out/gzip.tgz'"
  run pigz "tar -cf - -C '$tree' . | pigz -6 -p $threads >'$out/pigz.tgz'"
  run warm "'$bin' '$tree' '$out/store' --threads $threads --part-cache '$out/parts' >/dev/null"
done

# Once more on 1 thread and on many more threads than cores: the bytes must not depend on
# the thread count, and memory must stay bounded however many cores a machine has.
scaling=""
for t in 1 8 32 64; do
  /usr/bin/time -f "%e %M" -o "$out/time.txt" "$bin" "$tree" "$out/store" --threads "$t" >/dev/null
  scaling="$scaling| $t | $(awk '{printf "%.1f", $2 / 1024}' "$out/time.txt") |\n"
  basename "$out"/store/sha256-*.tgz >>"$out/names"
  rm -rf "$out/store"
done
# The compressor alone: gzip -6 of the very tar bytes we compress (ours, sorted), so the
# size comparison does not mix in the effect of tar order.
"$bin" "$tree" "$out/store" >/dev/null
same_tar_gzip=$(gzip -dc "$out"/store/sha256-*.tgz | gzip -6 | wc -c)
rm -rf "$out/store"

# median NAME FIELD(1=seconds 2=rss 3=size)
median() { cut -d' ' -f"$2" "$out/$1.runs" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

calc() { awk "BEGIN {print $1}"; }
printf '\nload average before: %s\n' "$load"
printf 'tree: %s, %d entries, tar %.1f MB; %d rounds (median), %d threads, %d cores\n\n' \
  "$tree" "$files" "$(calc "$tar_bytes / 1000000")" "$rounds" "$threads" "$(nproc)"
printf '| command | seconds | MB/s | output MB | peak RSS MB |\n|---|---|---|---|---|\n'
for name in slugc gzip pigz warm; do
  s=$(median $name 1); r=$(median $name 2); z=$(median $name 3)
  case $name in
    slugc) label="slugc export ($threads threads)" ;;
    warm) label="slugc export, warm part cache (hash + verify + copy)" ;;
    gzip) label='`tar -cf - \| gzip -6`' ;;
    pigz) label="\`tar -cf - \\| pigz -6 -p $threads\`" ;;
  esac
  printf '| %s | %.2f | %.1f | %.2f | %.1f |\n' "$label" "$s" \
    "$(calc "$tar_bytes / 1000000 / $s")" "$(calc "$z / 1000000")" "$(calc "$r / 1024")"
done
s_ours=$(median slugc 1); s_pigz=$(median pigz 1); s_gzip=$(median gzip 1)
z_ours=$(median slugc 3); z_gzip=$(median gzip 3); r_ours=$(median slugc 2)
printf '\nspeed vs pigz: %.2fx   speed vs gzip: %.2fx   size vs gzip -6: %.4f   peak RSS: %.1f MB\n' \
  "$(calc "$s_pigz / $s_ours")" "$(calc "$s_gzip / $s_ours")" \
  "$(calc "$z_ours / $z_gzip")" "$(calc "$r_ours / 1024")"
# Cold, warm, one thread or many, every round: one name, since the same tree gives the same bytes.
[ "$(sort -u "$out/names" | wc -l)" = 1 ] || { echo "slug names differ:"; sort -u "$out/names"; exit 1; }
echo "every slugc run gave $(head -1 "$out/names")"
printf '\nsize vs gzip -6 of the same tar bytes (ours, sorted): %.4f (%d vs %d)\n' \
  "$(calc "$z_ours / $same_tar_gzip")" "$z_ours" "$same_tar_gzip"
printf '\n| threads | peak RSS MB |\n|---|---|\n'"$scaling"
bar=pass
awk -v a="$s_ours" -v b="$s_pigz" 'BEGIN {exit !(a <= b)}' || bar="MISSED (slower than pigz)"
[ "$z_ours" -le "$z_gzip" ] || bar="MISSED (larger than gzip -6)"
[ "$r_ours" -lt 102400 ] || bar="MISSED (RSS over 100 MB)"
echo "bar: $bar"
