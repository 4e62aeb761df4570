#!/bin/sh
# Fuzzes memlm's model file reading: any bytes opened as a model (quick open, forged checksums, full
# check) and queried every way (fuzz/fuzz_targets/query.rs): a panic, a hang (-timeout) or an
# out-of-bounds read is a finding, saved under fuzz/artifacts/query/. Needs cargo-fuzz and the nightly
# toolchain; not run in CI.
#
#   bench/fuzz.sh [SECONDS]      (default 300; niced, one job)
#
# Seeds (small real models) are written to bench/out/fuzz/corpus, which keeps what the fuzzer finds
# between runs; the log goes to bench/out/fuzz/fuzz.log.
set -eu
cd "$(dirname "$0")/.."
seconds=${1:-300}
out=bench/out/fuzz
mkdir -p "$out/corpus"
python3 -m bench.fuzz_seeds "$out/corpus"
corpus=$(cd "$out/corpus" && pwd)
log=$(pwd)/$out/fuzz.log
cd fuzz
status=0
nice cargo +nightly fuzz run query "$corpus" -- \
    -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 -max_len=131072 -len_control=0 \
    -print_final_stats=1 >"$log" 2>&1 || status=$?
grep -E "^(stat::|Done|SUMMARY|Test unit written)" "$log" | awk '!seen[$0]++' || true
if [ "$status" -ne 0 ]; then
    tail -n 40 "$log" >&2
    echo "fuzz: FINDING (status $status): see $log and fuzz/artifacts/query/" >&2
fi
exit "$status"
