#!/usr/bin/env bash
# The one-command demo. On a fresh Debian machine (as root) it installs what it needs, starts a
# local stack in a private network namespace (Kubernetes control plane, Samba AD DC seeded with a
# demo directory, OpenLDAP, dnsmasq), installs the Helm chart, runs the controller and two agents
# as local processes standing in for two gateway pods, applies example connections and schedules,
# waits until they are Ready, and prints what an administrator sees.
#
#   scripts/demo.sh              everything, then waits; Ctrl-C stops it all
#   scripts/demo.sh up           everything, then returns (stop with `scripts/demo.sh down`)
#   scripts/demo.sh down         stops everything (by saved PIDs)
#   scripts/demo.sh kubectl ...  kubectl against the demo cluster, e.g. `get lc -n mail-gateway`
#   scripts/demo.sh lookup ADDR  asks gateway-0's agent about an address
set -euo pipefail
cd "$(dirname "$0")/.."
here=$(pwd)
export LDAPSYNC_TEST_STATE=${LDAPSYNC_DEMO_STATE:-/tmp/ldapsync-demo}
STATE=$LDAPSYNC_TEST_STATE
NS=mail-gateway
log() { printf '[demo %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
in_netns() { nsenter --net="/proc/$(cat "$STATE/netns.pid")/ns/net" "$@"; }
running() { [ -f "$STATE/netns.pid" ] && kill -0 "$(cat "$STATE/netns.pid")" 2>/dev/null; }

stop_all() {
  for p in "$STATE"/demo-*.pid; do
    [ -f "$p" ] || continue
    pid=$(cat "$p")
    kill "$pid" 2>/dev/null && while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    rm -f "$p"
  done
  if running; then in_netns bash "$here/scripts/test-env.sh" down; fi
  log "stopped"
}

# Runs inside the demo's network namespace, with the stack up.
inside() {
  # shellcheck disable=SC1091
  source "$STATE/env.sh"
  local kubectl="$LDAPSYNC_TEST_KUBECTL --kubeconfig $LDAPSYNC_TEST_KUBECONFIG"
  local helm="$LDAPSYNC_TEST_HELM --kubeconfig $LDAPSYNC_TEST_KUBECONFIG"
  local bin="$here/target/release/ldapsync"
  log "installing the Helm chart (CRDs, RBAC, controller Deployment) into namespace $NS"
  $helm upgrade --install ldapsync "$here/charts/ldapsync" --namespace "$NS" --create-namespace \
    --set 'agent.secretNames={openldap-password,corp-ca,ldapsync-keytab}' >/dev/null
  # No kubelet runs here: the controller and the agents run as local processes instead of pods,
  # and two Pod objects stand for the gateway pods the agents belong to.
  for pod in gateway-0 gateway-1; do
    $kubectl -n "$NS" apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata: {name: $pod, labels: {ldapsync.io/gateway: "true", app: demo-gateway}}
spec:
  serviceAccountName: ldapsync-agent
  automountServiceAccountToken: false
  containers: [{name: gateway, image: demo-gateway:stand-in}]
EOF
  done
  $kubectl -n "$NS" create secret generic openldap-password --from-literal=password="$LDAPSYNC_TEST_SLAPD_PASSWORD" \
    --dry-run=client -o yaml | $kubectl apply -f - >/dev/null
  $kubectl -n "$NS" create secret generic corp-ca --from-file=ca.crt="$LDAPSYNC_TEST_CA_FILE" \
    --dry-run=client -o yaml | $kubectl apply -f - >/dev/null
  $kubectl -n "$NS" create secret generic ldapsync-keytab --from-file=keytab="$LDAPSYNC_TEST_KEYTAB" \
    --dry-run=client -o yaml | $kubectl apply -f - >/dev/null

  log "starting the controller and the agents of gateway-0 and gateway-1"
  KUBECONFIG=$LDAPSYNC_TEST_KUBECONFIG LDAPSYNC_LOG=info setsid "$bin" controller --namespace "$NS" \
    --identity demo-controller --listen 127.0.0.1:8080 >"$STATE/demo-controller.log" 2>&1 &
  echo $! >"$STATE/demo-controller.pid"
  local port=8390
  for pod in gateway-0 gateway-1; do
    mkdir -p "$STATE/demo-cache/$pod"
    KUBECONFIG=$LDAPSYNC_TEST_KUBECONFIG LDAPSYNC_LOG=info POD_NAME=$pod POD_NAMESPACE=$NS setsid "$bin" agent \
      --store "$STATE/demo-cache/$pod" --listen "127.0.0.1:$port" --dns-server "$LDAPSYNC_TEST_AD_DNS" \
      >"$STATE/demo-agent-$pod.log" 2>&1 &
    echo $! >"$STATE/demo-agent-$pod.pid"
    port=$((port + 1))
  done

  log "applying two schedules and two connections: Samba AD ($LDAPSYNC_TEST_AD_DOMAIN) and OpenLDAP"
  $kubectl -n "$NS" apply -f - >/dev/null <<EOF
apiVersion: ldapsync.io/v1alpha1
kind: LdapSyncSchedule
metadata: {name: every-15-minutes}
spec: {interval: {every: 15m}}
---
apiVersion: ldapsync.io/v1alpha1
kind: LdapSyncSchedule
metadata: {name: nightly}
spec: {daily: {at: "02:30"}, timeZone: Europe/Berlin, jitter: 10m}
---
# Active Directory (Samba AD DC): the whole domain, DCs from DNS SRV records, Kerberos from a
# keytab with GSSAPI's own encryption layer.
apiVersion: ldapsync.io/v1alpha1
kind: LdapConnection
metadata: {name: corp}
spec:
  domain: $LDAPSYNC_TEST_AD_DOMAIN
  searchBase: $LDAPSYNC_TEST_AD_BASE
  servers: {srv: {}}
  tls: {mode: None}
  auth: {kerberos: {keytabSecretRef: {name: ldapsync-keytab}}}
  contacts: {enabled: true}
  scheduleRef: {name: every-15-minutes}
---
# OpenLDAP: a generic directory, simple bind over StartTLS, verified with the CA.
apiVersion: ldapsync.io/v1alpha1
kind: LdapConnection
metadata: {name: openldap}
spec:
  domain: example.test
  searchBase: $LDAPSYNC_TEST_SLAPD_BASE
  directoryType: Generic
  servers: {static: ["127.0.0.2:389"]}
  tls: {mode: StartTLS, ca: {secretRef: {name: corp-ca}}}
  auth: {simple: {bindDN: "$LDAPSYNC_TEST_SLAPD_BIND_DN", passwordSecretRef: {name: openldap-password}}}
  emailAttributes: [mail]
  scheduleRef: {name: nightly}
EOF
  log "waiting until both connections are Ready"
  if ! $kubectl -n "$NS" wait --for=condition=Ready ldapconnection --all --timeout=180s >/dev/null; then
    $kubectl -n "$NS" get ldapconnections -o yaml >&2
    log "not Ready after 3 minutes; logs are in $STATE/demo-*.log"
    return 1
  fi
  echo
  echo "\$ kubectl get ldapconnections -n $NS"
  $kubectl -n "$NS" get ldapconnections
  echo
  echo "\$ kubectl get ldapconnection corp -n $NS -o jsonpath='{.status.nodes[0]}'   # gateway pod's row"
  $kubectl -n "$NS" get ldapconnection corp -o jsonpath='{.status.nodes[0]}' | python3 -m json.tool
  echo
  echo "\$ kubectl get ldapconnection corp -n $NS -o jsonpath='{.status.conditions}'"
  $kubectl -n "$NS" get ldapconnection corp \
    -o jsonpath='{range .status.conditions[*]}{.type}{"\t"}{.status}{"\t"}{.reason}{"\t"}{.message}{"\n"}{end}'
  echo
  echo "\$ curl -s 127.0.0.1:8390/v1/addresses/alice@$LDAPSYNC_TEST_AD_DOMAIN   # gateway-0's lookup API"
  curl -s "127.0.0.1:8390/v1/addresses/alice@$LDAPSYNC_TEST_AD_DOMAIN" | python3 -m json.tool
}

lookup() {
  in_netns curl -s "127.0.0.1:8390/v1/addresses/$1"
  echo
}

case "${1:-run}" in
  down) stop_all; exit 0 ;;
  kubectl)
    shift
    running || { echo "the demo is not running: scripts/demo.sh up" >&2; exit 1; }
    in_netns "${LDAPSYNC_CACHE:-/var/cache/ldapsync}/tools/bin/kubectl" --kubeconfig "$STATE/kube/kubeconfig" "$@"
    exit ;;
  lookup) lookup "${2:?address}"; exit ;;
  __inside) inside; exit ;;
  up | run) ;;
  *) echo "usage: scripts/demo.sh [up|down|kubectl ARGS|lookup ADDRESS]" >&2; exit 2 ;;
esac

mode=${1:-run}
[ "$mode" = up ] || mode=run
if running; then log "an earlier demo is still running: stopping it"; stop_all; fi
log "installing dependencies and building (the first run takes a while)"
bash scripts/install-deps.sh
bash scripts/k8s-build.sh >/dev/null
cargo build --release --locked --bin ldapsync
log "starting the local stack in a private network namespace ($STATE)"
unshare --net --fork -- bash scripts/test-env.sh up
if [ "$mode" = run ]; then trap 'echo; stop_all; exit 0' INT TERM; fi
if ! in_netns bash "$here/scripts/demo.sh" __inside; then
  stop_all
  exit 1
fi
echo
echo "More: scripts/demo.sh kubectl get lc -n $NS -o yaml | scripts/demo.sh lookup bob@corp.example.test"
echo "      scripts/demo.sh kubectl annotate lc corp -n $NS ldapsync.io/sync-requested-at=\$(date -Is) --overwrite"
if [ "$mode" = up ]; then
  echo "Stop with: scripts/demo.sh down"
  exit 0
fi
echo "Running; Ctrl-C (or scripts/demo.sh down) stops everything."
while running; do sleep 2; done
