#!/usr/bin/env bash
# Coverage-guided fuzzing (cargo-fuzz, libFuzzer) of the parsers that face untrusted bytes.
#
#   scripts/fuzz.sh smoke [SECONDS]      every target for SECONDS (default 30), after replaying its
#                                        corpus and regressions; what it finds is not kept
#   scripts/fuzz.sh run TARGET SECONDS   one long run; new inputs go into fuzz/corpus/TARGET
#   scripts/fuzz.sh cmin TARGET          shrink fuzz/corpus/TARGET to the inputs that add coverage
#   scripts/fuzz.sh list                 the targets
#   scripts/fuzz.sh props [NAME]         the proptest properties of tests/fuzz_properties.rs (corpus
#                                        in tests/corpus/) for LDAPSYNC_FUZZ_SECONDS each (default 600)
#
# libFuzzer runs on the stable toolchain with RUSTC_BOOTSTRAP=1 (cargo-fuzz passes nightly-only
# flags). No sanitizer: the code under test is safe Rust, and a panic or an abort is a finding.
# A crash is written to fuzz/artifacts/TARGET/; copy it to fuzz/regressions/TARGET/ with the fix.
set -euo pipefail
cd "$(dirname "$0")/.."
export RUSTC_BOOTSTRAP=1
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
targets() { sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^ldapsync-fuzz$'; }
# Inputs over 64 KiB and runs over 10 s an input are findings too; 2 GiB of RSS at the most.
limits=(-max_len=65536 -timeout=10 -rss_limit_mb=2048)
fuzz() { cargo fuzz run --sanitizer none --release "$@"; }

case "${1:-}" in
  list) targets ;;
  props)
    shift
    export LDAPSYNC_FUZZ_SECONDS=${LDAPSYNC_FUZZ_SECONDS:-600}
    log=$(mktemp)
    status=0
    # cargo test (not nextest), so that no per-test timeout applies.
    cargo test --release --locked --test fuzz_properties -- --nocapture --test-threads 5 "$@" >"$log" 2>&1 || status=1
    grep -E 'cases in|test result|panicked|minimal|FAILED|error' "$log" || true
    echo "full output in $log"
    exit $status ;;
  smoke)
    seconds=${2:-30}
    cargo fuzz build --sanitizer none --release
    for t in $(targets); do
      mkdir -p "fuzz/corpus/$t" "fuzz/regressions/$t"
      scratch=$(mktemp -d)
      regressions=(fuzz/regressions/"$t"/*)
      if [ -e "${regressions[0]}" ]; then
        echo "[fuzz] $t: replaying ${#regressions[@]} regression input(s)"
        fuzz "$t" -- "${limits[@]}" "${regressions[@]}" 2>&1 | tail -n 3
      fi
      echo "[fuzz] $t: ${seconds}s from $(ls "fuzz/corpus/$t" | wc -l) corpus inputs"
      # New inputs land in the scratch folder (the first), the kept corpus is only read.
      log="$scratch.log"
      if fuzz "$t" "$scratch" "fuzz/corpus/$t" -- "${limits[@]}" -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1; then
        grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb)|DONE' "$log" || true
        rm -rf "$scratch" "$log"
      else
        tail -n 40 "$log"
        echo "[fuzz] $t FAILED: the input is in fuzz/artifacts/$t/"
        exit 1
      fi
    done ;;
  run)
    t=${2:?target}; seconds=${3:?seconds}
    mkdir -p "fuzz/corpus/$t"
    fuzz "$t" "fuzz/corpus/$t" -- "${limits[@]}" -max_total_time="$seconds" -print_final_stats=1 ;;
  cmin)
    t=${2:?target}
    cargo fuzz cmin --sanitizer none --release "$t" "fuzz/corpus/$t" -- "${limits[@]}" ;;
  *) sed -n '2,14p' "$0"; exit 2 ;;
esac
