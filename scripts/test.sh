#!/usr/bin/env bash
# The test command. On a fresh Debian machine (as root) it installs what the tests need, builds the
# Kubernetes control plane and node once (cached), builds ldapsync and its image, then runs every
# unit and integration test against real servers (Samba AD DC, OpenLDAP, dnsmasq, kube-apiserver and
# a node running the chart's pods) inside a private network and mount namespace, so no packet leaves
# the machine and nothing of the node touches the host. Extra arguments go to `cargo nextest run`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/k8s-build.sh >/dev/null
command -v cargo-nextest >/dev/null || cargo install --locked cargo-nextest
# Build outside the namespace: cargo needs the registry; inside, it runs offline.
cargo nextest run --locked --no-run
bash scripts/image.sh
netns=(unshare --net --mount --propagation private --fork --)
# Without arguments: a 30-second coverage-guided fuzz run of every parser target (scripts/fuzz.sh),
# every test, then the fault-injection tests alone (they stop shared peers), then the
# incremental-sync tests, one at a time (they change the shared Samba domain, its schema too: an
# agent that sees the schema change reads in full).
if [ $# -gt 0 ]; then
  exec "${netns[@]}" bash scripts/test-env.sh run env CARGO_NET_OFFLINE=true cargo nextest run --locked "$@"
fi
bash scripts/fuzz.sh smoke 30
exec "${netns[@]}" bash scripts/test-env.sh run env CARGO_NET_OFFLINE=true bash -c \
  "cargo nextest run --locked -E 'not (binary(fault_injection) | binary(incremental))' && cargo nextest run --locked -E 'binary(fault_injection)' --test-threads 1 && cargo nextest run --locked -E 'binary(incremental)' --test-threads 1"
