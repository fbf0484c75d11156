#!/usr/bin/env bash
# Builds the control plane (kube-apiserver, kube-controller-manager, kube-scheduler) and the node
# binaries (kubelet, kube-proxy) of v1.20.2 from Debian bookworm's `kubernetes` source package (with
# Debian's Go 1.19) and takes etcd from `etcd-server`, once per machine: the binaries land in a cache
# folder keyed by this script's hash, and later runs only print that folder.
# Cold: ~10 min on 2 cores, ~140 MB download, ~3 GB disk. Output (stdout, last line): the bin folder.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
key=$(sha256sum "$here/k8s-build.sh" | cut -c1-12)
CACHE_ROOT=${LDAPSYNC_CACHE:-/var/cache/ldapsync}
W=$CACHE_ROOT/k8s-1.20.2-$key
OUT=$W/bin
binaries=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy)
complete=yes
for b in etcd "${binaries[@]}"; do [ -x "$OUT/$b" ] || complete=no; done
if [ $complete = yes ]; then echo "$OUT"; exit 0; fi
log() { echo "[k8s-build $(date +%T)] $*" >&2; }
mkdir -p "$W" "$OUT"; cd "$W"
export DEBIAN_FRONTEND=noninteractive
command -v rsync >/dev/null || { apt-get -o DPkg::Lock::Timeout=600 update -qq >&2; apt-get -o DPkg::Lock::Timeout=600 install -y -qq rsync >&2; }
# A private apt configuration with deb-src enabled, on the mirror this machine already uses.
mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
[ -n "$mirror" ] || mirror=$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list)
mkdir -p apt/lists/partial apt/cache/archives/partial
echo "deb-src $mirror bookworm main" > apt/sources.list
echo "deb $mirror bookworm main" >> apt/sources.list
A=(-o "Dir::Etc::SourceList=$W/apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
   -o "Dir::State::Lists=$W/apt/lists" -o "Dir::Cache=$W/apt/cache")
log "kubernetes 1.20.2 source package"
apt-get "${A[@]}" update -qq >&2
rm -rf src-dl debs root; mkdir -p src-dl debs root
(cd src-dl && apt-get "${A[@]}" source --download-only -qq kubernetes/bookworm >&2)
log "go 1.19, reflect2 1.0.2, etcd-server (unpacked, not installed)"
(cd debs && apt-get "${A[@]}" download -qq golang-1.19-go golang-1.19-src golang-github-modern-go-reflect2-dev etcd-server >&2)
for d in debs/*.deb; do dpkg-deb -x "$d" root; done
log "unpack; the vendored reflect2 1.0.1 breaks on Go >= 1.18, use Debian's 1.0.2"
rm -rf k8s && mkdir k8s && tar xzf src-dl/kubernetes_*.orig.tar.gz -C k8s --strip-components=1
rm -rf k8s/vendor/github.com/modern-go/reflect2
cp -r root/usr/share/gocode/src/github.com/modern-go/reflect2 k8s/vendor/github.com/modern-go/reflect2
rm -f k8s/vendor/github.com/modern-go/reflect2/go.mod
log "make ${binaries[*]}"
export GOROOT=$W/root/usr/lib/go-1.19 PATH=$W/root/usr/lib/go-1.19/bin:$PATH GOCACHE=$W/gocache HOME=$W/home
export GOPROXY=off GOFLAGS= CGO_ENABLED=0 KUBE_GIT_VERSION=v1.20.2 KUBE_GIT_TREE_STATE=clean
export KUBE_GIT_COMMIT=faecb196815e248d3ecfb03c680a4507229c2a56
unset GOPATH GO111MODULE
mkdir -p "$HOME"
what=(); for b in "${binaries[@]}"; do what+=("cmd/$b"); done
(cd k8s && make WHAT="${what[*]}" > ../make.log 2>&1) || { tail -30 make.log >&2; exit 1; }
cp root/usr/bin/etcd "$OUT/"
for b in "${binaries[@]}"; do cp "k8s/_output/bin/$b" "$OUT/"; done
# The sources and Go caches are only needed for the build.
rm -rf k8s gocache src-dl debs root home
log "done"
echo "$OUT"
