#!/usr/bin/env bash
# The hostile-input fuzzer (tests/hostile.rs) run longer: CASES cases (default 3000) for each
# of SEEDS seeds (default 3). Prints each seed's summary line; for a seed with a broken
# promise, the cases that broke it, and exits 1. Rerun one seed with
#   HOSTILE_SEED=<seed> HOSTILE_CASES=<n> cargo test --test hostile -- --nocapture
set -uo pipefail
cd "$(dirname "$0")/.."
cases=${CASES:-3000}
seeds=${SEEDS:-3}
cargo test --test hostile --no-run || exit 1
log=$(mktemp)
trap 'rm -f "$log"' EXIT
failed=0
for i in $(seq 1 "$seeds"); do
    seed=$((0x5eed0000 + i * 7919))
    if HOSTILE_SEED=$seed HOSTILE_CASES=$cases \
        cargo test --test hostile -- --nocapture >"$log" 2>&1; then
        grep "hostile cases" "$log"
    else
        failed=1
        echo "seed $seed:"
        sed -n '/hostile cases/,/^failures:$/p' "$log"
    fi
done
exit $failed
