#!/usr/bin/env bash
# Benchmarks `ldapsync sync` against `ldapsearch -E pr=1000/noprompt` reading the same entries and
# attributes from OpenLDAP over StartTLS, in the same run, on this machine. Sizes default to 10k and
# 100k users (1k groups); set BENCH_SIZES="10000 100000 1000000" for more. Results: a Markdown table
# on stdout. BENCH_KEEP_STORE=1 makes every run after the first a resync against the stored snapshot.
# Then, in the same run, the test environment is started for the rest (BENCH_SKIP_ENV=1 skips it):
# a Samba AD sync against ldapsearch reading the same objects and attributes, and the controller's
# 1,000-connection steady state and write count (benches/controller.rs).
# LOOKUP_SIZE (default 100000) is the size whose store the lookup benchmarks serve; another value
# skips them. BENCH_LOOKUPS (default "lookup postfix") chooses among them: the HTTP API and index
# (lookup), Postfix's postmap through the socketmap against its ldap: table (postfix). Runs as root; builds the release binary outside and measures inside a private netns.
set -euo pipefail
trap 'echo "bench: failed at line $LINENO: $BASH_COMMAND" >&2' ERR
cd "$(dirname "$0")/.."
if [ -z "${IN_BENCH_NETNS:-}" ]; then
  bash scripts/install-deps.sh
  cargo build --release --locked --bin ldapsync >&2
  cargo bench --locked --bench lookup --no-run >&2
  cargo bench --locked --bench controller --no-run >&2
  cargo bench --locked --bench socketmap_client --no-run >&2
  cargo bench --locked --bench push --no-run >&2
  bash scripts/k8s-build.sh >/dev/null
  command -v wrk >/dev/null || apt-get -o DPkg::Lock::Timeout=600 install -y -qq wrk >/dev/null
  # The benchmarks need no node: it would only add noise to the figures.
  exec env IN_BENCH_NETNS=1 LDAPSYNC_TEST_NODE=off unshare --net --fork -- bash "$0" "$@"
fi
ip link set lo up
here=$(pwd)
W=${BENCH_DIR:-/tmp/ldapsync-bench}
SIZES=${BENCH_SIZES:-"10000 100000"}
RUNS=${BENCH_RUNS:-3}
BASE=dc=volume,dc=test
PW=bench-Root-Pw1
rm -rf "$W"; mkdir -p "$W/pki"
openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj '/CN=bench CA' -keyout "$W/pki/ca.key" -out "$W/pki/ca.pem" \
  -addext 'basicConstraints=critical,CA:TRUE' 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj '/CN=127.0.0.7' -keyout "$W/pki/server.key" -out "$W/pki/server.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.7\n' > "$W/pki/ext.cnf"
openssl x509 -req -in "$W/pki/server.csr" -CA "$W/pki/ca.pem" -CAkey "$W/pki/ca.key" -CAcreateserial -days 30 \
  -extfile "$W/pki/ext.cnf" -out "$W/pki/server.pem" 2>/dev/null
mkdir -p "$W/secrets/pw" "$W/secrets/ca"; printf '%s' "$PW" > "$W/secrets/pw/password"; cp "$W/pki/ca.pem" "$W/secrets/ca/ca.crt"
cat > "$W/conn.yaml" <<YAML
apiVersion: ldapsync.io/v1alpha1
kind: LdapConnection
metadata: {name: volume, namespace: bench, uid: bench-volume}
spec:
  domain: volume.test
  searchBase: "$BASE"
  directoryType: Generic
  servers: {static: ["127.0.0.7:389"]}
  tls: {mode: StartTLS, ca: {secretRef: {name: ca}}}
  auth: {simple: {bindDN: "cn=admin,$BASE", passwordSecretRef: {name: pw}}}
  emailAttributes: [mail]
  pageSize: 1000
  timeouts: {operation: 120s, sync: 30m}
  deletionSafety: {maxDeletedObjects: 0, maxDeletedPercent: 0}
YAML
slapd_pid=
stop_slapd() { [ -n "$slapd_pid" ] && kill "$slapd_pid" 2>/dev/null && while kill -0 "$slapd_pid" 2>/dev/null; do sleep 0.1; done; slapd_pid=; }
trap stop_slapd EXIT
measure() { # prints "wall user+sys maxrss_kib" of a command, output discarded
  /usr/bin/time -f '%e %U %S %M' -o "$W/time" "$@" > /dev/null
  # time(1) puts "Command exited with non-zero status N" before the figures when it did.
  tail -1 "$W/time" | awk '{printf "%s %.2f %s\n", $1, $2 + $3, $4}'
}
median() { sort -n | awk '{a[NR]=$0} END {print a[int((NR+1)/2)]}'; }
measure_sync() { # like measure, for `ldapsync sync`: also "entriesRead apply_ms" of its summary and log
  /usr/bin/time -f '%e %U %S %M' -o "$W/time" "$@" --log ldapsync=info > "$W/sync.json" 2> "$W/sync.log"
  local entries apply
  entries=$(jq -r .entriesRead "$W/sync.json")
  apply=$(grep -o 'apply_ms=[0-9.]*' "$W/sync.log" | tail -1 | cut -d= -f2 || true) # none when nothing changed
  tail -1 "$W/time" | awk -v e="$entries" -v a="${apply:--}" '{if (a != "-") a = sprintf("%.1f", a); printf "%s %.2f %s %s %s\n", $1, $2 + $3, $4, e, a}'
}

# Incremental syncs against the full one of the same run: unchanged, then 100 changes each run
# (`change_100 RUN` makes them). The store must hold a full sync of CONN already. Prints rows of
# "| label | mode | wall s | CPU s | peak RSS MiB | entries read | apply ms |".
delta_rows() {
  local label=$1 conn=$2 store=$3 secrets=$4; shift 4
  local kind
  for kind in unchanged 100-changes; do
    : > "$W/delta-runs"
    for r in $(seq 1 "$RUNS"); do
      [ "$kind" = unchanged ] || change_100 "$r"
      measure_sync "$here/target/release/ldapsync" sync -f "$conn" --secrets-dir "$secrets" --store "$store" "$@" >> "$W/delta-runs"
      [ "$(jq -r .mode "$W/sync.json")" = Incremental ] || { echo "bench: the $kind sync of $label was not incremental: $(cat "$W/sync.json" "$W/sync.log")" >&2; exit 1; }
    done
    local col
    col() { cut -d' ' -f"$1" "$W/delta-runs" | median; }
    echo "| $label | incremental, $kind | $(col 1) | $(col 2) | $(( $(col 3) / 1024 )) | $(col 4) | $(col 5) |"
  done
  # What holding the snapshot alone costs: the baseline of "resident snapshot + 10 MiB".
  measure "$here/target/release/ldapsync" lookup nobody@nowhere.invalid --store "$store" > "$W/resident" || true
  echo "| $label | snapshot loaded, nothing else (\`ldapsync lookup\`) | | | $(( $(cut -d' ' -f3 "$W/resident") / 1024 )) | | |"
}
# Lookups over the store of the last sync: the HTTP API under wrk (keep-alive, 2 threads, 16
# connections, random addresses), the index itself, and live LDAP searches for the same addresses.
lookup_bench() {
  local port=8389 serve_pid
  LDAPSYNC_LOG=info "$here/target/release/ldapsync" serve --store "$W/store" --listen "127.0.0.1:$port" 2> "$W/serve.log" &
  serve_pid=$!
  until curl -sf "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; do sleep 0.05; done
  echo
  echo "warm start (ldapsync serve, $n users): $(grep -o 'elapsed_ms=[0-9]*' "$W/serve.log" | head -1)"
  cat > "$W/addr.lua" <<LUA
math.randomseed(42)
request = function()
  return wrk.format("GET", string.format("/v1/addresses/u%07d@volume.example", math.random(0, $n - 1)))
end
LUA
  cat > "$W/auto.lua" <<LUA
math.randomseed(7)
request = function()
  return wrk.format("GET", string.format("/v1/autocomplete?prefix=u%05d&limit=10", math.random(0, $n / 100 - 1)))
end
LUA
  for script in addr auto; do
    for load in "-t1 -c4" "-t2 -c16"; do
      echo "wrk $script $load:" $(wrk $load -d10s --latency -s "$W/$script.lua" "http://127.0.0.1:$port" \
        | grep -E "Requests/sec|^ +(50|99)%" | tr -s ' ')
    done
  done
  echo "index, fixed-rate HTTP and live LDAP (cargo bench --bench lookup):"
  LDAPSYNC_BENCH_LDAP="127.0.0.7:389|$BASE|cn=admin,$BASE|$PW|$W/pki/ca.pem" CARGO_NET_OFFLINE=true \
    LDAPSYNC_BENCH_HTTP="127.0.0.1:$port" LDAPSYNC_BENCH_HTTP_USERS="$n" \
    cargo bench --locked --bench lookup 2>/dev/null | grep -v '^$'
  kill "$serve_pid"; wait "$serve_pid" 2>/dev/null || true
}

# Postfix's own client, `postmap -q -` (one query per stdin line), on the same 20,000 keys (90 %
# known): the socketmap of `ldapsync serve` over the last sync's store against Postfix's ldap: table
# on the same slapd (mail indexed), one postmap and eight at once. Then the socketmap's latency
# per request and its throughput over eight connections, from a native client (benches/socketmap_client.rs).
postfix_bench() {
  local port=8391 serve_pid P=$W/postfix
  mkdir -p "$P"
  # A fixed host name: postmap would otherwise resolve this machine's name at start.
  printf 'compatibility_level = 3.6\nmyhostname = bench.test\nmydomain = bench.test\n' > "$P/main.cf"
  cat > "$P/ldap.cf" <<CF
server_host = ldap://127.0.0.7:389
search_base = $BASE
query_filter = (mail=%s)
result_attribute = mail
bind = yes
bind_dn = cn=admin,$BASE
bind_pw = $PW
version = 3
CF
  python3 -c "
import random; random.seed(5)
for i in range(20000):
    print(f'nobody{i}@volume.example' if i % 10 == 0 else f'u{random.randrange($n):07d}@volume.example')" > "$P/keys"
  # postmap's own cost per key: the same keys from an in-memory texthash table.
  awk '!/^nobody/ && !seen[$1]++ {print $1, "x"}' "$P/keys" > "$P/texthash"
  LDAPSYNC_LOG=warn "$here/target/release/ldapsync" serve --store "$W/store" --listen 127.0.0.1:8388 \
    --socketmap-listen "127.0.0.1:$port" 2> "$P/serve.log" &
  serve_pid=$!
  until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do sleep 0.05; done
  echo
  echo "| Postfix lookups, 20,000 keys | table | wall s | lookups/s | found |"
  echo "|---|---|---:|---:|---:|"
  local table name
  for table in "texthash:$P/texthash" "socketmap:inet:127.0.0.1:$port:recipient" "ldap:$P/ldap.cf"; do
    name=${table%%:*}
    /usr/bin/time -f '%e' -o "$P/time" postmap -c "$P" -q - "$table" < "$P/keys" > "$P/found-$name"
    echo "| postmap -q - | $name | $(cat "$P/time") | $(awk -v t="$(cat "$P/time")" 'BEGIN {printf "%d", 20000 / t}') | $(wc -l < "$P/found-$name") |"
  done
  # Parallel load, as many smtpd processes ask at once: 8 postmap processes per table.
  echo
  echo "| Postfix lookups, 8 postmap processes at once, 8 × 20,000 keys | table | wall s | lookups/s |"
  echo "|---|---|---:|---:|"
  for table in "socketmap:inet:127.0.0.1:$port:recipient" "ldap:$P/ldap.cf"; do
    name=${table%%:*}
    local started ended
    started=$(date +%s.%N)
    for i in 1 2 3 4 5 6 7 8; do postmap -c "$P" -q - "$table" < "$P/keys" > "$P/parallel-$name-$i" & done
    wait $(jobs -p | grep -v "^$serve_pid$")
    ended=$(date +%s.%N)
    awk -v a="$started" -v b="$ended" -v n="$name" 'BEGIN {printf "| 8 × postmap -q - | %s | %.2f | %d |\n", n, b - a, 160000 / (b - a)}'
  done
  # A native client: no interpreter or postmap start in the figures.
  SOCKETMAP_ADDR="127.0.0.1:$port" KEYS="$P/keys" CONNECTIONS=8 \
    cargo bench --locked --bench socketmap_client 2>/dev/null
  rcpt_bench "$port"
  kill "$serve_pid"; wait "$serve_pid" 2>/dev/null || true
}

# End to end through a real smtpd: smtp-source, 8 sessions, 10 recipients per transaction, every
# recipient a new unknown address (-N: no smtpd cache helps), as in a directory-harvest attack,
# the load recipient validation exists for. Each RCPT is one lookup in relay_recipient_maps and is
# refused with 550; the transaction then has no recipient, so no queue file is written and the
# figure is the lookups' and smtpd's own cost (texthash: smtpd's alone).
rcpt_bench() {
  local port=$1 P=$W/postfix table name
  local messages=2000 recipients=10
  echo
  echo "| smtpd, smtp-source -s 8 -r $recipients -N, $((messages * recipients)) unknown recipients | relay_recipient_maps | wall s | RCPT/s | refused |"
  echo "|---|---|---:|---:|---:|"
  # texthash: smtpd's own cost, the table in memory.
  for table in "texthash:$P/texthash" "socketmap:inet:127.0.0.1:$port:recipient" "ldap:$P/ldap.cf"; do
    name=${table%%:*}
    local R=$P/smtpd-$name smtp=8425
    rm -rf "$R"; mkdir -p "$R/etc" "$R/spool"
    sed "s/^smtp      inet  n       -       y       -       -       smtpd/127.0.0.1:$smtp inet n - n - - smtpd/" \
      /etc/postfix/master.cf > "$R/etc/master.cf"
    cat > "$R/etc/main.cf" <<CF
compatibility_level = 3.6
queue_directory = $R/spool
data_directory = $R/spool/data
mail_owner = postfix
myhostname = mx.bench.test
inet_interfaces = loopback-only
inet_protocols = ipv4
mydestination =
relay_domains = volume.example
relay_recipient_maps = $table
relay_transport = discard:
smtpd_recipient_restrictions = reject_unauth_destination
default_process_limit = 100
smtpd_client_connection_rate_limit = 0
smtpd_error_sleep_time = 0
smtpd_soft_error_limit = 1000
smtpd_hard_error_limit = 1000
maillog_file_prefixes = $R
maillog_file = $R/maillog
CF
    postfix -c "$R/etc" start 2> "$R/start.log"
    until (exec 3<>"/dev/tcp/127.0.0.1/$smtp") 2>/dev/null; do sleep 0.1; done
    local started ended
    started=$(date +%s.%N)
    smtp-source -A -N -s 8 -m "$messages" -r "$recipients" -f bench@sender.test -t u@volume.example \
      -M client.bench.test "127.0.0.1:$smtp" > "$R/source.log" 2>&1
    ended=$(date +%s.%N)
    postfix -c "$R/etc" stop 2>/dev/null
    awk -v a="$started" -v b="$ended" -v n="$name" -v r="$((messages * recipients))" \
      -v refused="$(grep -c 'Recipient address rejected' "$R/maillog" || true)" \
      'BEGIN {printf "| smtp-source | %s | %.2f | %d | %d |\n", n, b - a, r / (b - a), refused}'
  done
}

# The Samba AD DC of the test environment: ldapsync sync against ldapsearch reading the same
# users, contacts and groups with the same attributes, over StartTLS.
samba_bench() {
  local S=$W/samba; mkdir -p "$S/secrets/pw" "$S/secrets/ca"
  printf '%s' "$LDAPSYNC_TEST_AD_PASSWORD" > "$S/secrets/pw/password"
  cp "$LDAPSYNC_TEST_CA_FILE" "$S/secrets/ca/ca.crt"
  cat > "$S/conn.yaml" <<YAML
apiVersion: ldapsync.io/v1alpha1
kind: LdapConnection
metadata: {name: samba, namespace: bench, uid: bench-samba}
spec:
  domain: $LDAPSYNC_TEST_AD_DOMAIN
  searchBase: "$LDAPSYNC_TEST_AD_BASE"
  servers: {static: ["$LDAPSYNC_TEST_AD_HOST:389"]}
  tls: {mode: StartTLS, ca: {secretRef: {name: ca}}}
  auth: {simple: {bindDN: "$LDAPSYNC_TEST_AD_BIND_DN", passwordSecretRef: {name: pw}}}
  contacts: {enabled: true}
  deletionSafety: {maxDeletedObjects: 0, maxDeletedPercent: 0}
YAML
  sq() {
    LDAPTLS_CACERT=$LDAPSYNC_TEST_CA_FILE ldapsearch -ZZ -LLL -x -H "ldap://$LDAPSYNC_TEST_AD_ADDR" \
      -D "$LDAPSYNC_TEST_AD_BIND_DN" -w "$LDAPSYNC_TEST_AD_PASSWORD" -E pr=1000/noprompt -b "$LDAPSYNC_TEST_AD_BASE" "$@"
  }
  samba_all() {
    local attrs="objectGUID sAMAccountName displayName userPrincipalName userAccountControl mail proxyAddresses"
    sq '(&(objectCategory=person)(objectClass=user))' $attrs
    sq '(objectClass=contact)' $attrs
    sq '(objectClass=group)' $attrs member
  }
  export -f sq samba_all
  local users
  users=$(sq '(&(objectCategory=person)(objectClass=user))' 1.1 | grep -c '^dn:')
  echo
  echo "| Samba AD ($users users) | tool | wall s | CPU s | peak RSS MiB |"
  echo "|---|---|---:|---:|---:|"
  for tool in ldapsearch ldapsync; do
    : > "$S/runs"
    for _ in $(seq 1 "$RUNS"); do
      if [ $tool = ldapsearch ]; then
        measure bash -c samba_all >> "$S/runs"
      else
        rm -rf "$S/store"
        measure "$here/target/release/ldapsync" sync -f "$S/conn.yaml" --secrets-dir "$S/secrets" --store "$S/store" \
          --dns-server "$LDAPSYNC_TEST_AD_DNS" >> "$S/runs"
      fi
    done
    echo "| StartTLS, simple bind | $tool | $(cut -d' ' -f1 "$S/runs" | median) | $(cut -d' ' -f2 "$S/runs" | median) | $(( $(cut -d' ' -f3 "$S/runs" | median) / 1024 )) |"
  done
  # Incremental syncs after the last full one (uSNChanged; svc-sync may not read tombstones, so
  # deletions come from an id listing).
  # (All of them first: `head` closing the pipe early would fail it under pipefail.)
  sq -o ldif-wrap=no '(&(objectCategory=person)(objectClass=user))' 1.1 | awk '/^dn: /{print substr($0, 5)}' > "$S/users"
  head -100 "$S/users" > "$S/changed"
  change_100() {
    local r=$1
    while read -r dn; do printf 'dn: %s\nchangetype: modify\nreplace: displayName\ndisplayName: Changed %s\n\n' "$dn" "$r"; done < "$S/changed" |
      LDAPTLS_CACERT=$LDAPSYNC_TEST_CA_FILE ldapmodify -ZZ -x -H "ldap://$LDAPSYNC_TEST_AD_ADDR" \
        -D "Administrator@$LDAPSYNC_TEST_AD_DOMAIN" -w "$LDAPSYNC_TEST_AD_ADMIN_PASSWORD" > /dev/null
  }
  echo
  echo "| directory | sync | wall s | CPU s | peak RSS MiB | entries read | apply ms |"
  echo "|---|---|---:|---:|---:|---:|---:|"
  delta_rows "Samba AD ($users users)" "$S/conn.yaml" "$S/store" "$S/secrets" --dns-server "$LDAPSYNC_TEST_AD_DNS"
}

echo "| users | groups | tool | wall s | CPU s | peak RSS MiB |"
echo "|---:|---:|---|---:|---:|---:|"
for n in $SIZES; do
  groups=1000
  D=$W/slapd-$n; mkdir -p "$D/data"
  cat > "$D/slapd.conf" <<CONF
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include $here/scripts/seed/ad-like.schema
pidfile $D/slapd.pid
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload syncprov
TLSCertificateFile $W/pki/server.pem
TLSCertificateKeyFile $W/pki/server.key
sizelimit unlimited
database mdb
maxsize 8589934592
suffix "$BASE"
rootdn "cn=admin,$BASE"
rootpw $PW
directory $D/data
dbnosync
index objectClass,uid,mail,cn,member,entryUUID,entryCSN eq
overlay syncprov
syncprov-sessionlog 10000
CONF
  python3 scripts/seed/volume_ldif.py "$BASE" "$n" "$groups" > "$D/seed.ldif"
  slapadd -q -w -f "$D/slapd.conf" -l "$D/seed.ldif"
  slapd -f "$D/slapd.conf" -h "ldap://127.0.0.7:389/"
  slapd_pid=$(cat "$D/slapd.pid")
  until ldapsearch -x -H ldap://127.0.0.7 -b '' -s base >/dev/null 2>&1; do sleep 0.05; done
  q() { LDAPTLS_CACERT=$W/pki/ca.pem ldapsearch -ZZ -LLL -x -H ldap://127.0.0.7 -D "cn=admin,$BASE" -w "$PW" -E pr=1000/noprompt -b "$BASE" "$@"; }
  both() {
    q '(objectClass=inetOrgPerson)' entryUUID uid cn mail
    q '(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames))' entryUUID uid cn mail member uniqueMember
  }
  export -f q both; export W BASE PW
  for tool in ldapsearch ldapsync; do
    : > "$W/runs"
    for _ in $(seq 1 "$RUNS"); do
      if [ $tool = ldapsearch ]; then
        measure bash -c both >> "$W/runs"
      else
        [ -n "${BENCH_KEEP_STORE:-}" ] || rm -rf "$W/store"
        if [ -n "${BENCH_PERF:-}" ]; then  # profile instead: BENCH_PERF=out.data
          perf record -e cpu-clock -F 1999 -g -o "$BENCH_PERF" "$here/target/release/ldapsync" sync -f "$W/conn.yaml" \
            --secrets-dir "$W/secrets" --store "$W/store" > /dev/null 2>&1
          echo "0 0 0" >> "$W/runs"
        else
          measure env ${BENCH_ENV:-LDAPSYNC_BENCH=1} "$here/target/release/ldapsync" sync -f "$W/conn.yaml" --secrets-dir "$W/secrets" --store "$W/store" >> "$W/runs"
        fi
      fi
    done
    wall=$(cut -d' ' -f1 "$W/runs" | median); cpu=$(cut -d' ' -f2 "$W/runs" | median); rss=$(cut -d' ' -f3 "$W/runs" | median)
    echo "| $n | $groups | $tool | $wall | $cpu | $(( rss / 1024 )) |"
  done
  # The store holds the last full sync: incremental syncs follow it (in their own table, below).
  change_100() { # 100 users get another display name, different in every run
    local r=$1 i
    for i in $(seq 0 99); do
      printf 'dn: uid=u%07d,ou=people,%s\nchangetype: modify\nreplace: displayName\ndisplayName: Changed %s %s\n\n' \
        $(( i * (n / 100) )) "$BASE" "$r" "$i"
    done | LDAPTLS_CACERT=$W/pki/ca.pem ldapmodify -ZZ -x -H ldap://127.0.0.7 -D "cn=admin,$BASE" -w "$PW" > /dev/null
  }
  delta_rows "$n users" "$W/conn.yaml" "$W/store" "$W/secrets" >> "$W/delta-table"
  if [ "$n" = "${LOOKUP_SIZE:-100000}" ]; then
    for part in ${BENCH_LOOKUPS:-lookup postfix}; do "${part}_bench"; done
  fi
  stop_slapd
  rm -rf "$D"
done
echo
echo "Incremental syncs (RFC 4533 refreshOnly against the same slapd; 100 changes = 100 users' displayName):"
echo
echo "| directory | sync | wall s | CPU s | peak RSS MiB | entries read | apply ms |"
echo "|---|---|---:|---:|---:|---:|---:|"
cat "$W/delta-table"

if [ -z "${BENCH_SKIP_ENV:-}" ]; then
  export LDAPSYNC_TEST_STATE=$W/env
  bash scripts/test-env.sh up > "$W/env.log" 2>&1
  trap 'bash "$here/scripts/test-env.sh" down >/dev/null 2>&1; stop_slapd' EXIT
  # shellcheck disable=SC1091
  source "$W/env/env.sh"
  samba_bench
  echo
  echo "Push: a user added on the server until the lookup API answers (benches/push.rs):"
  echo
  CARGO_NET_OFFLINE=true cargo bench --locked --bench push 2>/dev/null | grep '^|'
  echo
  echo "Controller, 1,000 LdapConnections (benches/controller.rs):"
  echo
  LDAPSYNC_BENCH_BINARY=$here/target/release/ldapsync CARGO_NET_OFFLINE=true \
    cargo bench --locked --bench controller 2>/dev/null | grep '^|'
fi
