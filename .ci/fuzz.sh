#!/usr/bin/env bash
# Fuzz smoke run: builds every cargo-fuzz target in fuzz/ and runs each for
# a fixed time (default 20 s; FUZZ_SECONDS overrides) on stable Rust, without
# a sanitizer. Starts from the checked-in seeds (fuzz/corpus/<target>/seed-*)
# plus whatever earlier runs left there. Exits non-zero if any target
# crashes; the input is left in fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${FUZZ_SECONDS:-20}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

targets=$(cargo fuzz list)
cargo fuzz build -s none

status=0
for t in $targets; do
    printf '\n=== fuzz %s (%ss)\n' "$t" "$seconds"
    mkdir -p "corpus/$t"
    if ! cargo fuzz run -s none "$t" "corpus/$t" -- \
        -max_total_time="$seconds" -print_final_stats=1 2>"target/fuzz-$t.log"; then
        grep -A3 -E 'panicked at|ERROR: libFuzzer' "target/fuzz-$t.log" | head -n 40 || true
        tail -n 20 "target/fuzz-$t.log"
        # The input, so a failure on a CI machine can be reproduced here:
        # `base64 -d > crash` and `cargo fuzz run -s none $t crash`.
        for f in "artifacts/$t"/crash-* "artifacts/$t"/timeout-* "artifacts/$t"/oom-*; do
            [ -f "$f" ] || continue
            echo "--- $f (base64)"
            head -c 65536 "$f" | base64
        done
        echo "fuzz target $t FAILED; reproduce with: cargo fuzz run -s none $t fuzz/artifacts/$t/<file>"
        status=1
    else
        grep -E 'stat::number_of_executed_units|stat::peak_rss_mb|^Done' "target/fuzz-$t.log" || true
    fi
done
exit "$status"
