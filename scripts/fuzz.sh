#!/usr/bin/env bash
# Fuzzes the parsers of outside input with proptest (cargo-fuzz needs a nightly toolchain, which
# these machines do not have): DNs, cron and schedules, proxyAddresses, keytabs and the snapshot
# decoder (tests/fuzz_properties.rs, corpus in tests/corpus/). Every target generates inputs for
# LDAPSYNC_FUZZ_SECONDS (default 600) and prints how many cases it ran. A failure prints the minimal failing input: add it to the
# corpus and fix the parser with a regression test.
set -euo pipefail
cd "$(dirname "$0")/.."
export LDAPSYNC_FUZZ_SECONDS=${LDAPSYNC_FUZZ_SECONDS:-600}
started=$(date +%s)
log=$(mktemp)
status=0
# Release build for throughput; cargo test (not nextest) so that no per-test timeout applies.
# Extra arguments pick tests by name, e.g. `scripts/fuzz.sh snapshot`.
cargo test --release --locked --test fuzz_properties -- --nocapture --test-threads 5 "$@" >"$log" 2>&1 || status=1
grep -E 'cases in|test result|panicked|minimal|FAILED|error' "$log" || true
echo "fuzzing took $(( $(date +%s) - started )) s; full output in $log"
exit $status
