#!/usr/bin/env bash
# Builds the ldapsync image here, without a registry or a Docker engine: buildah from scratch with
# the root of scripts/image/rootfs.sh (the release binary, the shared libraries it loads (GSSAPI),
# CA roots, a passwd entry for UID 65532 — no shell, no package manager). Also builds the two small images a local node needs: the
# pod sandbox (pause) and a stand-in gateway (busybox: `sh`, `wget`, `nc`, `sleep`).
#
#   scripts/image.sh                      build all three into target/images/*.tar (docker-archive)
#   scripts/image.sh --import SOCKET      also import them into containerd (namespace k8s.io)
#   scripts/image.sh --skip-build ...     use the existing target/release/ldapsync
#
# Images: localhost/ldapsync:<chart appVersion>, localhost/pause:1, localhost/gateway-standin:1.
# The Dockerfile describes the same ldapsync image for users who build with a registry.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
OUT=${LDAPSYNC_IMAGES:-$root/target/images}
CACHE_ROOT=${LDAPSYNC_CACHE:-/var/cache/ldapsync}
import_socket="" build=yes
while [ $# -gt 0 ]; do
  case $1 in
    --import) import_socket=${2:?--import needs the containerd socket}; shift 2 ;;
    --skip-build) build=no; shift ;;
    *) echo "usage: scripts/image.sh [--skip-build] [--import CONTAINERD_SOCKET]" >&2; exit 2 ;;
  esac
done
log() { printf '[image %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
for tool in buildah gcc; do
  command -v "$tool" >/dev/null || { echo "image.sh: $tool is not installed: run scripts/install-deps.sh" >&2; exit 1; }
done
[ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1 \
  || { echo "image.sh: a static /bin/busybox is needed (Debian package busybox-static)" >&2; exit 1; }
version=$(awk -F'"' '/^appVersion:/ {print $2}' charts/ldapsync/Chart.yaml)
[ -n "$version" ] || { echo "image.sh: no appVersion in charts/ldapsync/Chart.yaml" >&2; exit 1; }
if [ $build = yes ]; then
  log "cargo build --release"
  cargo build --release --locked --bin ldapsync
fi
bin=$root/target/release/ldapsync
[ -x "$bin" ] || { echo "image.sh: $bin is missing (build it, or drop --skip-build)" >&2; exit 1; }

# buildah keeps its layers in a private store (vfs needs no overlay mounts), not /var/lib/containers.
B=(buildah --root "$CACHE_ROOT/buildah/root" --runroot "$CACHE_ROOT/buildah/run" --storage-driver vfs)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$OUT"

# from_scratch NAME:TAG ROOTFS ARCHIVE [buildah config flags...]: commit ROOTFS as an image and
# export it as a docker-archive.
from_scratch() {
  local ref=$1 rootfs=$2 archive=$3; shift 3
  local c
  c=$("${B[@]}" from scratch)
  "${B[@]}" copy "$c" "$rootfs"/ / >/dev/null
  "${B[@]}" config "$@" "$c"
  "${B[@]}" commit -q --rm --format docker "$c" "$ref" >/dev/null
  rm -f "$archive"
  "${B[@]}" push -q "$ref" "docker-archive:$archive:$ref" >/dev/null
  "${B[@]}" rmi -f "$ref" >/dev/null 2>&1 || true
  log "$ref: $(du -h "$archive" | cut -f1) ($archive)"
}

log "localhost/ldapsync:$version"
R=$work/ldapsync
bash scripts/image/rootfs.sh "$bin" "$R"
strip "$R/usr/local/bin/ldapsync"
# The image must start on its own files alone: run it in its root before committing.
chroot --userspec=65532:65532 "$R" /usr/local/bin/ldapsync --version >/dev/null \
  || { echo "image.sh: the binary does not start inside the image (a library missing?)" >&2; exit 1; }
from_scratch "localhost/ldapsync:$version" "$R" "$OUT/ldapsync.tar" \
  --user 65532:65532 --entrypoint '["/usr/local/bin/ldapsync"]' --cmd '["--help"]' \
  --label org.opencontainers.image.title=ldapsync --label "org.opencontainers.image.version=$version"

log "localhost/pause:1"
P=$work/pause
mkdir -p "$P"
gcc -static -Os -o "$P/pause" scripts/image/pause.c
strip "$P/pause"
from_scratch localhost/pause:1 "$P" "$OUT/pause.tar" --user 65535:65535 --entrypoint '["/pause"]'

log "localhost/gateway-standin:1"
G=$work/gateway
mkdir -p "$G/bin" "$G/tmp"
cp /bin/busybox "$G/bin/busybox"
for applet in sh sleep wget cat ls nc printf; do ln -s busybox "$G/bin/$applet"; done
chmod 1777 "$G/tmp"
from_scratch localhost/gateway-standin:1 "$G" "$OUT/gateway-standin.tar" --user 65532:65532 \
  --cmd '["/bin/sh", "-c", "trap \"exit 0\" TERM; while true; do sleep 3600 & wait; done"]'

if [ -n "$import_socket" ]; then
  for archive in ldapsync pause gateway-standin; do
    ctr --address "$import_socket" -n k8s.io images import "$OUT/$archive.tar" >/dev/null
  done
  log "imported into containerd at $import_socket"
fi
