#!/usr/bin/env bash
# Assembles the root filesystem of the ldapsync image: the binary, the dynamic loader and every
# library it loads (GSSAPI/Kerberos, libc), CA roots, passwd/group entries for UID 65532, and the
# folders the chart mounts over. No shell, no package manager. Used by scripts/image.sh and by the
# Dockerfile, so that both build the same image.
#   rootfs.sh BINARY ROOT
set -euo pipefail
bin=${1:?binary} R=${2:?root folder}
mkdir -p "$R/usr/local/bin" "$R/etc/ssl/certs" "$R/tmp" "$R/run/ldapsync" "$R/var/lib/ldapsync"
install -m 0755 "$bin" "$R/usr/local/bin/ldapsync"
ldd "$bin" | awk '/=> \// {print $3} /^[[:space:]]*\/[^ ]+ \(/ {print $1}' | sort -u | while read -r lib; do
  mkdir -p "$R$(dirname "$lib")"
  cp -L "$lib" "$R$lib"
done
cp -L /etc/ssl/certs/ca-certificates.crt "$R/etc/ssl/certs/ca-certificates.crt"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' > "$R/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' > "$R/etc/group"
printf 'hosts: files dns\n' > "$R/etc/nsswitch.conf"
chmod 1777 "$R/tmp"
chown 65532:65532 "$R/var/lib/ldapsync" "$R/run/ldapsync"
