#!/usr/bin/env bash
# Benchmarks the controller at scale (benches/controller.rs): 1,000 LdapConnections in 100 domains,
# 5 % conflicting, against the real kube-apiserver of the test environment; then a fresh controller
# resyncs the unchanged objects and must write nothing. Prints a Markdown table. Runs as root;
# builds outside, measures inside a private network namespace.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/k8s-build.sh >/dev/null
cargo build --release --locked --bin ldapsync >&2
cargo bench --locked --bench controller --no-run >&2
export LDAPSYNC_TEST_STATE=${LDAPSYNC_TEST_STATE:-/tmp/ldapsync-bench-env}
export LDAPSYNC_TEST_NODE=off   # the node would only add noise to the figures
exec unshare --net --fork -- bash scripts/test-env.sh run \
  env CARGO_NET_OFFLINE=true LDAPSYNC_BENCH_BINARY="$PWD/target/release/ldapsync" cargo bench --locked --bench controller
