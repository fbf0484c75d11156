#!/usr/bin/env bash
# The real peers of the integration tests, on loopback inside the caller's network namespace:
#   Samba AD DC      dc1.corp.example.test   127.0.0.1  (DNS 53, Kerberos 88, LDAP 389, LDAPS 636)
#                    and 127.0.0.5 (LDAP only, same database, allow_sasl_over_tls)
#   OpenLDAP slapd   ldap1.example.test      127.0.0.2:389 (priority 10)   same data on both
#                    ldap2.example.test      127.0.0.3:389 (priority 20)
#                    ldap4.example.test      127.0.0.6:389 (slapd-3, only for the failover test)
#                    127.0.0.8:389 (slapd-volume: 100k users, 1k groups under dc=volume,dc=test)
#                    127.0.0.9:389 (slapd-volume-2: a copy of slapd-volume, stopped by fault tests)
#                    127.0.0.11:389 (slapd-delta: two databases the incremental-sync tests change)
#   dnsmasq          SRV records for example.test on 127.0.0.1:5353 (ldap3.example.test, 127.0.0.4,
#                    is listed at priority 20 but never started: a dead DC); failover.example.test
#                    lists ldap4 (priority 10) and ldap2 (priority 20)
#   etcd + kube-apiserver + kube-controller-manager on 127.0.0.1:2379 / 6443 (the API server on every
#                    address of the namespace; pods reach it as 10.99.0.1, the node's address)
#   a node           kube-scheduler, kubelet, kube-proxy, containerd + runc + CNI bridge, running the
#                    images of scripts/image.sh (see scripts/test-env-node.sh); pods reach Samba as
#                    10.99.0.2 and slapd-1 as 10.99.0.3 through their own DNS (dnsmasq on 10.99.0.1)
#                    LDAPSYNC_TEST_NODE=off leaves the node out (the benchmarks do)
#
# Usage (as root, inside `unshare --net --mount --propagation private --fork`; scripts/test.sh does
# this):
#   test-env.sh up             start everything, seed, write $STATE/env.sh
#   test-env.sh down           stop everything by saved PIDs
#   test-env.sh stop PEER      stop one peer (samba, samba-sasl-tls, slapd-1, slapd-2, slapd-3,
#                              slapd-volume-2, dnsmasq, kube, node)
#   test-env.sh kill PEER      SIGKILL one slapd (slapd-1, slapd-2, slapd-3, slapd-volume-2)
#   test-env.sh start PEER     start one stopped peer again, with its data
#   test-env.sh run CMD...     up, run CMD with the environment, down (also on failure)
# STATE defaults to /tmp/ldapsync-test-env. A stale state from a crashed run is cleaned up by `up`.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
STATE=${LDAPSYNC_TEST_STATE:-/tmp/ldapsync-test-env}
ADMIN_PASS='Adm1n#Corp-Test'
SYNC_PASS='Svc#Sync-Pass123'
REALM=CORP.EXAMPLE.TEST
AD_DOMAIN=corp.example.test
AD_BASE=DC=corp,DC=example,DC=test
OL_BASE=dc=example,dc=test
OL_ROOT_PW='slapd-Root-Pw1'
VOLUME_BASE=dc=volume,dc=test
DELTA_LOG_BASE=dc=log,dc=delta
DELTA_PRESENT_BASE=dc=present,dc=delta
VOLUME_USERS=${LDAPSYNC_TEST_VOLUME_USERS:-100000}
NODE=${LDAPSYNC_TEST_NODE:-on}

log() { echo "[test-env $(date +%T)] $*" >&2; }
die() { echo "test-env: $*" >&2; exit 1; }
# shellcheck source=scripts/test-env-node.sh
source "$here/test-env-node.sh"

require_netns() {
  # Servers must only ever be reachable on a private loopback: refuse to run in the host namespace.
  if [ -z "${LDAPSYNC_ALLOW_HOST_NET:-}" ] && ip -o link show | grep -qv ': lo:'; then
    die "run inside a private network namespace, e.g. unshare --net --fork -- $0 $*"
  fi
  ip link set lo up
}

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

stop_pidfile() {
  local f=$1 p
  [ -f "$f" ] || return 0
  p=$(cat "$f")
  if kill -0 "$p" 2>/dev/null; then
    kill -TERM "$p" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null || true
  fi
  rm -f "$f"
}

wait_for() { # wait_for DESCRIPTION SECONDS CMD...
  local what=$1 secs=$2; shift 2
  for _ in $(seq 1 $((secs * 10))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  die "$what did not come up within ${secs}s"
}

# ---------------------------------------------------------------- TLS material
make_pki() {
  local P=$STATE/pki
  mkdir -p "$P"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj '/CN=ldapsync test CA' \
    -keyout "$P/ca.key" -out "$P/ca.pem" \
    -addext 'basicConstraints=critical,CA:TRUE' -addext 'keyUsage=critical,keyCertSign,cRLSign' 2>/dev/null
  # A second, unrelated CA: the "wrong CA" of bad-input tests.
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj '/CN=unrelated CA' \
    -keyout "$P/other-ca.key" -out "$P/other-ca.pem" -addext 'basicConstraints=critical,CA:TRUE' 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=dc1.$AD_DOMAIN" -keyout "$P/server.key" -out "$P/server.csr" 2>/dev/null
  printf 'subjectAltName=DNS:dc1.%s,DNS:%s,DNS:ldap1.example.test,DNS:ldap2.example.test,DNS:ldap3.example.test,DNS:ldap4.example.test,DNS:localhost,IP:127.0.0.1,IP:127.0.0.2,IP:127.0.0.3,IP:127.0.0.5,IP:127.0.0.6,IP:127.0.0.8,IP:127.0.0.9,IP:127.0.0.11,IP:10.99.0.2,IP:10.99.0.3\nextendedKeyUsage=serverAuth\n' \
    "$AD_DOMAIN" "$AD_DOMAIN" > "$P/ext.cnf"
  openssl x509 -req -in "$P/server.csr" -CA "$P/ca.pem" -CAkey "$P/ca.key" -CAcreateserial -days 3650 \
    -extfile "$P/ext.cnf" -out "$P/server.pem" 2>/dev/null
  chmod 600 "$P/server.key" "$P/ca.key" "$P/other-ca.key"
}

# ---------------------------------------------------------------- Samba AD DC
samba_provision() {
  local S=$STATE/samba
  log "samba: provision $REALM"
  samba-tool domain provision --targetdir="$S" --realm=$REALM --domain=CORP --server-role=dc \
    --dns-backend=SAMBA_INTERNAL --adminpass="$ADMIN_PASS" --use-rfc2307 --host-name=dc1 \
    --backend-store=mdb --backend-store-size=1Gb \
    --option="interfaces=127.0.0.1" --option="bind interfaces only=yes" > "$STATE/samba-provision.log" 2>&1 \
    || { tail -20 "$STATE/samba-provision.log" >&2; die "samba provision failed"; }
  mkdir -p "$S/log" "$S/run" "$S/cache"
  # Private log/pid/socket paths; our own CA-signed certificate with SANs. `ldap server require strong
  # auth` stays at its default (yes): simple binds need TLS, GSSAPI on plain LDAP needs sealing.
  # Schema extensions over LDAP are allowed, as a site that extends its schema has them (the
  # schema-change test of incremental sync adds a definition).
  sed -i "s#^\tlog file = .*#\tlog file = $S/log/log.%m\n\tpid directory = $S/run\n\tncalrpc dir = $S/run/ncalrpc\n\twinbindd socket directory = $S/run/winbindd\n\tntp signd socket directory = $S/run/ntp_signd\n\ttls certfile = $STATE/pki/server.pem\n\ttls keyfile = $STATE/pki/server.key\n\ttls cafile = $STATE/pki/ca.pem\n\tdsdb:schema update allowed = true#" \
    "$S/etc/smb.conf"
}

samba_start() {
  local S=$STATE/samba
  setsid samba -F --no-process-group -s "$S/etc/smb.conf" --debug-stdout -d1 > "$S/log/samba.out" 2>&1 &
  echo $! > "$STATE/samba.pid"
  wait_for "samba LDAP" 60 ldapsearch -x -H ldap://127.0.0.1 -b '' -s base dnsHostName
  wait_for "samba DNS" 30 dig +time=1 +tries=1 +short @127.0.0.1 SOA $AD_DOMAIN
}

# A second Samba process on the same database, LDAP only, on 127.0.0.5, with
# `ldap server require strong auth = allow_sasl_over_tls`: it accepts GSSAPI over TLS, which the
# default (on 127.0.0.1) refuses.
samba_sasl_tls_start() {
  local S=$STATE/samba
  mkdir -p "$S/run2" "$S/log2"
  ip addr add 127.0.0.5/8 dev lo 2>/dev/null || true
  sed -e "s#interfaces = 127.0.0.1#interfaces = 127.0.0.5\n\tserver services = ldap\n\tldap server require strong auth = allow_sasl_over_tls#" \
    -e "s#$S/run#$S/run2#g" -e "s#$S/log/#$S/log2/#" "$S/etc/smb.conf" > "$S/etc/smb-sasl-tls.conf"
  setsid samba -F --no-process-group -s "$S/etc/smb-sasl-tls.conf" --debug-stdout -d1 > "$S/log2/samba.out" 2>&1 &
  echo $! > "$STATE/samba-sasl-tls.pid"
  wait_for "samba (allow_sasl_over_tls)" 60 ldapsearch -x -H ldap://127.0.0.5 -b '' -s base dnsHostName
}

samba_seed() {
  local S=$STATE/samba
  local DA=(-s "$S/etc/smb.conf" -U Administrator --password="$ADMIN_PASS")
  log "samba: DNS records"
  samba-tool dns add 127.0.0.1 $AD_DOMAIN dc1 A 127.0.0.1 "${DA[@]}" >/dev/null 2>&1
  # Site hq holds the clients of 127.0.0.0/8 (a netlogon ping places the tests there) and lists dc1
  # as its DC, as a DC covering a site registers itself.
  log "samba: site hq"
  { samba-tool sites create hq "${DA[@]}" \
    && samba-tool sites subnet create 127.0.0.0/8 hq "${DA[@]}" \
    && samba-tool dns add 127.0.0.1 "_msdcs.$AD_DOMAIN" _ldap._tcp.hq._sites.dc SRV "dc1.$AD_DOMAIN 389 0 100" "${DA[@]}"; } \
    > "$STATE/samba-sites.log" 2>&1 || { tail -5 "$STATE/samba-sites.log" >&2; die "cannot create site hq"; }
  log "samba: seed directory"
  python3 "$here/seed/samba_ldif.py" "$AD_BASE" "$SYNC_PASS" > "$STATE/samba-seed.ldif"
  LDAPTLS_CACERT=$STATE/pki/ca.pem ldapadd -ZZ -x -H ldap://127.0.0.1 \
    -D "Administrator@$AD_DOMAIN" -w "$ADMIN_PASS" -f "$STATE/samba-seed.ldif" > "$STATE/samba-seed.log" 2>&1 \
    || { tail -20 "$STATE/samba-seed.log" >&2; die "samba seed failed"; }
  samba-tool user setprimarygroup carol Support "${DA[@]}" >> "$STATE/samba-seed.log" 2>&1 \
    || { tail -5 "$STATE/samba-seed.log" >&2; die "cannot make Support carol's primary group"; }
  # AD's lockout policy for svc-lockout alone: 5 bad attempts within 30 minutes lock it for 30.
  { samba-tool domain passwordsettings pso create lockout-test 1 --account-lockout-threshold=5 \
      --account-lockout-duration=30 --reset-account-lockout-after=30 "${DA[@]}" \
    && samba-tool domain passwordsettings pso apply lockout-test svc-lockout "${DA[@]}"; } >> "$STATE/samba-seed.log" 2>&1 \
    || { tail -5 "$STATE/samba-seed.log" >&2; die "cannot give svc-lockout its lockout policy"; }
  log "samba: keytabs"
  samba-tool domain exportkeytab "$STATE/svc-sync.keytab" --principal=svc-sync@$REALM -s "$S/etc/smb.conf" >/dev/null
  samba-tool domain exportkeytab "$STATE/svc-sync2.keytab" --principal=svc-sync2@$REALM -s "$S/etc/smb.conf" >/dev/null
  # exportkeytab appends: one file with two principals, for the KeytabInvalid tests.
  samba-tool domain exportkeytab "$STATE/two-principals.keytab" --principal=svc-sync@$REALM -s "$S/etc/smb.conf" >/dev/null
  samba-tool domain exportkeytab "$STATE/two-principals.keytab" --principal=svc-sync2@$REALM -s "$S/etc/smb.conf" >/dev/null
  local sid
  sid=$(samba-tool user show svc-sync2 -s "$S/etc/smb.conf" --attributes=objectSid 2>/dev/null | awk '/^objectSid:/ {print $2}')
  [ -n "$sid" ] || die "no objectSid for svc-sync2"
  samba-tool dsacl set -H ldap://127.0.0.1 "${DA[@]}" --objectdn="OU=Restricted,$AD_BASE" \
    --sddl="(D;CI;RPLCLORC;;;$sid)" >/dev/null 2>&1 || die "cannot restrict svc-sync2 on OU=Restricted"
  cat > "$STATE/krb5.conf" <<EOF
[libdefaults]
  default_realm = $REALM
  dns_lookup_kdc = false
  dns_lookup_realm = false
  dns_canonicalize_hostname = false
  rdns = false
[realms]
  $REALM = {
    kdc = 127.0.0.1
  }
[domain_realm]
  .$AD_DOMAIN = $REALM
  $AD_DOMAIN = $REALM
EOF
  echo "127.0.0.1 dc1.$AD_DOMAIN dc1" > "$STATE/hosts"
}

# ---------------------------------------------------------------- OpenLDAP slapd x2
slapd_prepare() {
  local n=$1
  local D=$STATE/slapd-$n
  mkdir -p "$D/data" "$D/run"
  cat > "$D/slapd.conf" <<EOF
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/nis.schema
include /etc/ldap/schema/inetorgperson.schema
include $here/seed/ad-like.schema
pidfile $D/run/slapd.pid
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload memberof
moduleload syncprov
TLSCACertificateFile $STATE/pki/ca.pem
TLSCertificateFile $STATE/pki/server.pem
TLSCertificateKeyFile $STATE/pki/server.key
sizelimit size.soft=1000 size.hard=unlimited size.prtotal=unlimited
database mdb
maxsize 4294967296
suffix "$OL_BASE"
rootdn "cn=admin,$OL_BASE"
rootpw $OL_ROOT_PW
directory $D/data
dbnosync
index objectClass,uid,mail,cn,member,memberOf,entryCSN,entryUUID,sAMAccountName,proxyAddresses eq
overlay memberof
overlay syncprov
EOF
  slapadd -q -f "$D/slapd.conf" -l "$STATE/slapd-seed.ldif" >/dev/null 2>&1 || die "slapadd into slapd-$n failed"
}

slapd_ip() { case $1 in 1) echo 127.0.0.2 ;; 2) echo 127.0.0.3 ;; 3) echo 127.0.0.6 ;; volume) echo 127.0.0.8 ;; volume-2) echo 127.0.0.9 ;; delta) echo 127.0.0.11 ;; esac; }

# The incremental-sync tests change this one at will: two databases with syncprov, one with a
# session log (deletions arrive as a delete phase), one without (a refresh from a cookie is a
# present phase). Neither runs refint: what refint changes gets no CSN, so no syncrepl consumer
# ever sees it (OpenLDAP ITS#7405); groups keep the DNs of deleted members, as slapd's do.
slapd_delta_prepare() {
  local D=$STATE/slapd-delta
  mkdir -p "$D/log" "$D/present" "$D/run"
  cat > "$D/slapd.conf" <<EOF
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/nis.schema
include /etc/ldap/schema/inetorgperson.schema
include $here/seed/ad-like.schema
pidfile $D/run/slapd.pid
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload syncprov
TLSCACertificateFile $STATE/pki/ca.pem
TLSCertificateFile $STATE/pki/server.pem
TLSCertificateKeyFile $STATE/pki/server.key
sizelimit unlimited
database mdb
maxsize 1073741824
suffix "$DELTA_LOG_BASE"
rootdn "cn=admin,$DELTA_LOG_BASE"
rootpw $OL_ROOT_PW
directory $D/log
dbnosync
index objectClass,entryCSN,entryUUID,member,uniqueMember eq
overlay syncprov
syncprov-sessionlog 1000
database mdb
maxsize 1073741824
suffix "$DELTA_PRESENT_BASE"
rootdn "cn=admin,$DELTA_PRESENT_BASE"
rootpw $OL_ROOT_PW
directory $D/present
dbnosync
index objectClass,entryCSN,entryUUID,member,uniqueMember eq
overlay syncprov
EOF
  local base dc
  for base in "$DELTA_LOG_BASE" "$DELTA_PRESENT_BASE"; do
    dc=${base#dc=}; dc=${dc%%,*}
    printf 'dn: %s\nobjectClass: dcObject\nobjectClass: organization\no: %s\ndc: %s\n\ndn: ou=in,%s\nobjectClass: organizationalUnit\nou: in\n\ndn: ou=out,%s\nobjectClass: organizationalUnit\nou: out\n' \
      "$base" "$dc" "$dc" "$base" "$base" > "$D/seed.ldif"
    slapadd -q -f "$D/slapd.conf" -b "$base" -l "$D/seed.ldif" >/dev/null 2>&1 || die "slapadd into slapd-delta ($base) failed"
  done
}


# 100k users and 1k groups under dc=volume,dc=test on 127.0.0.8, for the volume test.
slapd_volume_prepare() {
  local D=$STATE/slapd-volume
  mkdir -p "$D/data" "$D/run"
  sed -e "s#^suffix .*#suffix \"$VOLUME_BASE\"#" -e "s#^rootdn .*#rootdn \"cn=admin,$VOLUME_BASE\"#" \
    -e "s#$STATE/slapd-1/#$D/#g" "$STATE/slapd-1/slapd.conf" > "$D/slapd.conf"
  python3 "$here/seed/volume_ldif.py" "$VOLUME_BASE" "$VOLUME_USERS" 1000 > "$D/seed.ldif"
  slapadd -q -f "$D/slapd.conf" -l "$D/seed.ldif" >/dev/null 2>&1 || die "slapadd into slapd-volume failed"
  rm -f "$D/seed.ldif"
}

# A replica of slapd-volume (a copy of its database, so the same entryUUIDs) on 127.0.0.9: the
# server that fault-injection tests stop in the middle of a paged search.
slapd_volume2_prepare() {
  local D=$STATE/slapd-volume-2
  mkdir -p "$D/data" "$D/run"
  sed -e "s#$STATE/slapd-volume/#$D/#g" "$STATE/slapd-volume/slapd.conf" > "$D/slapd.conf"
  cp --sparse=always "$STATE/slapd-volume/data/data.mdb" "$D/data/data.mdb"
}

slapd_start() {
  local n=$1
  local D=$STATE/slapd-$n ip
  ip=$(slapd_ip "$n")
  local urls="ldap://$ip:389/ ldaps://$ip:636/"
  # slapd-1 also serves the pods of the node.
  [ "$n" != 1 ] || [ "$NODE" != on ] || urls="$urls ldap://$SLAPD_POD_IP:389/"
  slapd -f "$D/slapd.conf" -h "$urls" || die "slapd-$n did not start"
  cp "$D/run/slapd.pid" "$STATE/slapd-$n.pid"
  wait_for "slapd-$n" 20 ldapsearch -x -H "ldap://$ip:389" -b '' -s base
}

# ---------------------------------------------------------------- dnsmasq
dnsmasq_start() {
  # ldap1 is preferred (priority 10); within priority 20, two targets share the load 3:1. Site hq
  # has ldap2; site branch only ldap3, where nothing listens.
  dnsmasq --port=5353 --listen-address=127.0.0.1 --bind-interfaces --no-resolv --no-hosts \
    --conf-file=/dev/null --local=/example.test/ --pid-file="$STATE/dnsmasq.pid" --user=root \
    --host-record=ldap1.example.test,127.0.0.2 --host-record=ldap2.example.test,127.0.0.3 \
    --host-record=ldap3.example.test,127.0.0.4 --host-record=nosrv.example.test,127.0.0.2 \
    --host-record=ldap4.example.test,127.0.0.6 \
    --srv-host=_ldap._tcp.failover.example.test,ldap4.example.test,389,10,100 \
    --srv-host=_ldap._tcp.failover.example.test,ldap2.example.test,389,20,100 \
    --srv-host=_ldap._tcp.example.test,ldap1.example.test,389,10,100 \
    --srv-host=_ldap._tcp.example.test,ldap2.example.test,389,20,75 \
    --srv-host=_ldap._tcp.example.test,ldap3.example.test,389,20,25 \
    --srv-host=_ldap._tcp.hq._sites.dc._msdcs.example.test,ldap2.example.test,389,0,100 \
    --srv-host=_ldap._tcp.branch._sites.dc._msdcs.example.test,ldap3.example.test,389,0,100 \
    || die "dnsmasq did not start"
  wait_for "dnsmasq" 10 dig +time=1 +tries=1 +short -p 5353 @127.0.0.1 SRV _ldap._tcp.example.test
}

# ---------------------------------------------------------------- Kubernetes
kube_start() {
  local K=$STATE/kube BIN
  BIN=$(bash "$here/k8s-build.sh")
  mkdir -p "$K/pki"
  if [ ! -f "$K/pki/ca.crt" ]; then
    openssl req -x509 -newkey rsa:2048 -nodes -keyout "$K/pki/ca.key" -out "$K/pki/ca.crt" -days 3650 -subj "/CN=kube-ca" 2>/dev/null
    openssl genrsa -out "$K/pki/sa.key" 2048 2>/dev/null
    openssl rsa -in "$K/pki/sa.key" -pubout -out "$K/pki/sa.pub" 2>/dev/null
    echo "$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n'),admin,admin-uid,system:masters" > "$K/pki/tokens.csv"
    # The serving certificate, signed by the cluster CA that pods trust: valid for the tests
    # (127.0.0.1), the node and pods (10.99.0.1) and the `kubernetes` Service (10.0.0.1).
    openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" -keyout "$K/pki/apiserver.key" \
      -out "$K/pki/apiserver.csr" 2>/dev/null
    printf 'subjectAltName=DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:localhost,IP:127.0.0.1,IP:%s,IP:10.0.0.1\nextendedKeyUsage=serverAuth\n' \
      "$NODE_IP" > "$K/pki/apiserver.ext"
    openssl x509 -req -in "$K/pki/apiserver.csr" -CA "$K/pki/ca.crt" -CAkey "$K/pki/ca.key" -CAcreateserial \
      -days 3650 -extfile "$K/pki/apiserver.ext" -out "$K/pki/apiserver.crt" 2>/dev/null
  fi
  local TOKEN; TOKEN=$(cut -d, -f1 "$K/pki/tokens.csv")
  "$BIN/etcd" --data-dir "$K/etcd" --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster default=http://127.0.0.1:2380 --unsafe-no-fsync > "$K/etcd.log" 2>&1 &
  echo $! > "$STATE/etcd.pid"
  # Every address of the namespace (127.0.0.1 for the tests, the node's for kubelet and pods).
  "$BIN/kube-apiserver" --etcd-servers=http://127.0.0.1:2379 --bind-address=0.0.0.0 --advertise-address=$NODE_IP \
    --kubelet-preferred-address-types=InternalIP \
    --secure-port=6443 --insecure-port=0 --tls-cert-file="$K/pki/apiserver.crt" \
    --tls-private-key-file="$K/pki/apiserver.key" --client-ca-file="$K/pki/ca.crt" \
    --token-auth-file="$K/pki/tokens.csv" --service-account-issuer=https://kubernetes.default.svc \
    --service-account-key-file="$K/pki/sa.pub" --service-account-signing-key-file="$K/pki/sa.key" \
    --authorization-mode=RBAC --service-cluster-ip-range=10.0.0.0/24 > "$K/apiserver.log" 2>&1 &
  echo $! > "$STATE/apiserver.pid"
  cat > "$K/kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters: [{name: local, cluster: {server: "https://127.0.0.1:6443", certificate-authority: "$K/pki/ca.crt"}}]
users: [{name: admin, user: {token: "$TOKEN"}}]
contexts: [{name: local, context: {cluster: local, user: admin, namespace: default}}]
current-context: local
KC
  wait_for "kube-apiserver" 120 curl -sf --cacert "$K/pki/ca.crt" -H "Authorization: Bearer $TOKEN" https://127.0.0.1:6443/readyz
  "$BIN/kube-controller-manager" --kubeconfig="$K/kubeconfig" --leader-elect=false --port=0 --secure-port=0 \
    --controllers=garbagecollector,namespace,serviceaccount,serviceaccount-token,nodelifecycle,endpoint,endpointslice,deployment,replicaset,statefulset,disruption,podgc,persistentvolume-binder,pv-protection,pvc-protection \
    --service-account-private-key-file="$K/pki/sa.key" --root-ca-file="$K/pki/ca.crt" > "$K/kcm.log" 2>&1 &
  echo $! > "$STATE/kcm.pid"
}

kube_stop() { for p in kcm apiserver etcd; do stop_pidfile "$STATE/$p.pid"; done; }

# ---------------------------------------------------------------- environment for the tests
write_env() {
  cat > "$STATE/env.sh" <<EOF
# Written by scripts/test-env.sh up: the peers of the integration tests.
export LDAPSYNC_TEST_STATE='$STATE'
export LDAPSYNC_TEST_SCRIPTS='$here'
export LDAPSYNC_TEST_KUBECONFIG='$STATE/kube/kubeconfig'
export LDAPSYNC_TEST_KUBECTL='${LDAPSYNC_CACHE:-/var/cache/ldapsync}/tools/bin/kubectl'
export LDAPSYNC_TEST_HELM='${LDAPSYNC_CACHE:-/var/cache/ldapsync}/tools/bin/helm'
export LDAPSYNC_TEST_CA_FILE='$STATE/pki/ca.pem'
export LDAPSYNC_TEST_OTHER_CA_FILE='$STATE/pki/other-ca.pem'
export LDAPSYNC_TEST_AD_DOMAIN='$AD_DOMAIN'
export LDAPSYNC_TEST_AD_BASE='$AD_BASE'
export LDAPSYNC_TEST_AD_HOST='dc1.$AD_DOMAIN'
export LDAPSYNC_TEST_AD_ADDR='127.0.0.1'
export LDAPSYNC_TEST_AD_DNS='127.0.0.1:53'
export LDAPSYNC_TEST_AD_SASL_TLS_ADDR='127.0.0.5'
export LDAPSYNC_TEST_AD_REALM='$REALM'
export LDAPSYNC_TEST_AD_BIND_DN='svc-sync@$AD_DOMAIN'
export LDAPSYNC_TEST_AD_PASSWORD='$SYNC_PASS'
export LDAPSYNC_TEST_AD_LOCKOUT_USER='svc-lockout'
export LDAPSYNC_TEST_AD_ADMIN_PASSWORD='$ADMIN_PASS'
export LDAPSYNC_TEST_KEYTAB='$STATE/svc-sync.keytab'
export LDAPSYNC_TEST_KEYTAB2='$STATE/svc-sync2.keytab'
export LDAPSYNC_TEST_KEYTAB_TWO_PRINCIPALS='$STATE/two-principals.keytab'
export LDAPSYNC_TEST_KRB5_CONFIG='$STATE/krb5.conf'
export KRB5_CONFIG='$STATE/krb5.conf'
export LDAPSYNC_TEST_SLAPD_URLS='ldap://127.0.0.2:389,ldap://127.0.0.3:389'
export LDAPSYNC_TEST_SLAPD_BASE='$OL_BASE'
export LDAPSYNC_TEST_SLAPD_BIND_DN='cn=admin,$OL_BASE'
export LDAPSYNC_TEST_SLAPD_PASSWORD='$OL_ROOT_PW'
export LDAPSYNC_TEST_DNS='127.0.0.1:5353'
export LDAPSYNC_TEST_VOLUME_URL='ldap://127.0.0.8:389'
export LDAPSYNC_TEST_VOLUME_BASE='$VOLUME_BASE'
export LDAPSYNC_TEST_VOLUME_USERS='$VOLUME_USERS'
export LDAPSYNC_TEST_VOLUME2_URL='ldap://127.0.0.9:389'
export LDAPSYNC_TEST_DELTA_ADDR='127.0.0.11:389'
export LDAPSYNC_TEST_DELTA_BASES='$DELTA_LOG_BASE;$DELTA_PRESENT_BASE'
export LDAPSYNC_TEST_SRV_DOMAIN='example.test'
EOF
  [ "$NODE" = on ] || return 0
  cat >> "$STATE/env.sh" <<EOF
export LDAPSYNC_TEST_NODE_NAME='$NODE_NAME'
export LDAPSYNC_TEST_NODE_IP='$NODE_IP'
export LDAPSYNC_TEST_NODE_PV_DIR='$(node_dir)/pv'
export LDAPSYNC_TEST_CONTAINERD_SOCKET='$(node_socket)'
export LDAPSYNC_TEST_POD_AD_ADDR='$SAMBA_POD_IP'
export LDAPSYNC_TEST_POD_SLAPD_ADDR='$SLAPD_POD_IP'
export LDAPSYNC_TEST_IMAGE='localhost/ldapsync:$(awk -F'"' '/^appVersion:/ {print $2}' "$here/../charts/ldapsync/Chart.yaml")'
export LDAPSYNC_TEST_GATEWAY_IMAGE='localhost/gateway-standin:1'
EOF
}

# ---------------------------------------------------------------- commands
down() {
  node_stop
  for p in dnsmasq slapd-1 slapd-2 slapd-3 slapd-volume slapd-volume-2 slapd-delta samba samba-sasl-tls samba-pods kcm apiserver etcd netns; do stop_pidfile "$STATE/$p.pid"; done
}

up() {
  require_netns up
  local t0; t0=$(date +%s)
  [ "$NODE" != on ] || { require_private_mounts; node_addresses; }
  if [ -d "$STATE" ]; then
    log "cleaning up a previous run in $STATE"
    down
    rm -rf "$STATE"
  fi
  mkdir -p "$STATE"
  # A process that only holds the namespace, so `nsenter --net=/proc/$(cat netns.pid)/ns/net` works
  # whichever peer is stopped.
  setsid sleep infinity > /dev/null 2>&1 &
  echo $! > "$STATE/netns.pid"
  for tool in samba samba-tool slapd slapadd dnsmasq ldapsearch dig openssl; do
    command -v "$tool" >/dev/null || die "$tool is not installed: run scripts/install-deps.sh"
  done
  make_pki
  kube_start &
  local kube_job=$!
  python3 "$here/seed/slapd_ldif.py" "$OL_BASE" > "$STATE/slapd-seed.ldif"
  slapd_prepare 1; slapd_prepare 2; slapd_prepare 3; slapd_volume_prepare; slapd_volume2_prepare; slapd_delta_prepare
  slapd_start 1; slapd_start 2; slapd_start 3; slapd_start volume; slapd_start volume-2; slapd_start delta
  dnsmasq_start
  samba_provision
  samba_start
  samba_seed
  samba_sasl_tls_start
  [ "$NODE" != on ] || samba_pods_start
  wait "$kube_job" || die "the Kubernetes control plane did not start (see $STATE/kube/*.log)"
  [ "$NODE" != on ] || node_start
  write_env
  log "up in $(( $(date +%s) - t0 ))s; environment in $STATE/env.sh"
}

start_one() {
  case $1 in
    samba) samba_start ;;
    samba-sasl-tls) samba_sasl_tls_start ;;
    slapd-1) slapd_start 1 ;;
    slapd-2) slapd_start 2 ;;
    slapd-3) slapd_start 3 ;;
    slapd-volume-2) slapd_start volume-2 ;;
    dnsmasq) dnsmasq_start ;;
    kube) kube_start ;;
    node) node_start ;;
    *) die "unknown peer '$1' (samba, samba-sasl-tls, slapd-1, slapd-2, slapd-3, slapd-volume-2, dnsmasq, kube, node)" ;;
  esac
}

stop_one() {
  case $1 in
    samba|samba-sasl-tls|slapd-1|slapd-2|slapd-3|slapd-volume-2|dnsmasq) stop_pidfile "$STATE/$1.pid" ;;
    kube) kube_stop ;;
    node) node_stop ;;
    *) die "unknown peer '$1' (samba, samba-sasl-tls, slapd-1, slapd-2, slapd-3, slapd-volume-2, dnsmasq, kube, node)" ;;
  esac
}

# A sudden death (SIGKILL): no goodbye on open connections.
kill_one() {
  case $1 in
    slapd-1|slapd-2|slapd-3|slapd-volume-2)
      [ -f "$STATE/$1.pid" ] || die "$1 is not running"
      local p; p=$(cat "$STATE/$1.pid")
      kill -KILL "$p" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
      rm -f "$STATE/$1.pid"
      ;;
    *) die "kill supports slapd-1, slapd-2, slapd-3 and slapd-volume-2, not '$1'" ;;
  esac
}

case ${1:-} in
  up) up ;;
  down) down; log "stopped" ;;
  start) start_one "${2:?peer}" ;;
  stop) stop_one "${2:?peer}" ;;
  kill) kill_one "${2:?peer}" ;;
  run)
    shift
    [ $# -gt 0 ] || die "usage: $0 run CMD..."
    trap down EXIT
    up
    # shellcheck disable=SC1091
    source "$STATE/env.sh"
    "$@"
    ;;
  *) awk 'NR>1 && /^#/ {print; next} NR>1 {exit}' "$0" >&2; exit 2 ;;
esac
