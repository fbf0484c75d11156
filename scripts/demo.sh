#!/usr/bin/env bash
# The one-command demo. On a fresh Debian machine (as root) it installs what it needs, builds the
# image, starts a local stack in a private network and mount namespace (a one-node Kubernetes
# cluster, Samba AD DC seeded with a demo directory, OpenLDAP, dnsmasq), installs the Helm chart with
# that image — the controller Deployment and an example gateway StatefulSet whose two pods carry the
# agent sidecar —, applies example connections and schedules, waits until the pods run and the
# connections are Ready, and prints what an administrator sees. No ldapsync runs outside a pod.
#
#   scripts/demo.sh              everything, then waits; Ctrl-C stops it all
#   scripts/demo.sh up           everything, then returns (stop with `scripts/demo.sh down`)
#   scripts/demo.sh down         stops everything (by saved PIDs)
#   scripts/demo.sh kubectl ...  kubectl against the demo cluster, e.g. `get lc -n mail-gateway`
#   scripts/demo.sh lookup ADDR  asks gateway pod 0's agent, from its gateway container
#   scripts/demo.sh ldapsync ... kubectl ldapsync against the demo, e.g. `get -n mail-gateway`
set -euo pipefail
cd "$(dirname "$0")/.."
here=$(pwd)
export LDAPSYNC_TEST_STATE=${LDAPSYNC_DEMO_STATE:-/tmp/ldapsync-demo}
STATE=$LDAPSYNC_TEST_STATE
NS=mail-gateway
GATEWAY=ldapsync-example-gateway-0
log() { printf '[demo %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
in_netns() { nsenter --net="/proc/$(cat "$STATE/netns.pid")/ns/net" --mount="/proc/$(cat "$STATE/netns.pid")/ns/mnt" "$@"; }
running() { [ -f "$STATE/netns.pid" ] && kill -0 "$(cat "$STATE/netns.pid")" 2>/dev/null; }

stop_all() {
  if running; then in_netns bash "$here/scripts/test-env.sh" down; fi
  log "stopped"
}

# Runs inside the demo's network and mount namespace, with the stack up.
inside() {
  # shellcheck disable=SC1091
  source "$STATE/env.sh"
  local kubectl="$LDAPSYNC_TEST_KUBECTL --kubeconfig $LDAPSYNC_TEST_KUBECONFIG"
  local helm="$LDAPSYNC_TEST_HELM --kubeconfig $LDAPSYNC_TEST_KUBECONFIG"
  $kubectl create namespace "$NS" --dry-run=client -o yaml | $kubectl apply -f - >/dev/null
  $kubectl -n "$NS" create secret generic openldap-password --from-literal=password="$LDAPSYNC_TEST_SLAPD_PASSWORD" \
    --dry-run=client -o yaml | $kubectl apply -f - >/dev/null
  $kubectl -n "$NS" create secret generic corp-ca --from-file=ca.crt="$LDAPSYNC_TEST_CA_FILE" \
    --dry-run=client -o yaml | $kubectl apply -f - >/dev/null
  $kubectl -n "$NS" create secret generic ldapsync-keytab --from-file=keytab="$LDAPSYNC_TEST_KEYTAB" \
    --dry-run=client -o yaml | $kubectl apply -f - >/dev/null
  # The node has no volume provisioner: one local volume per gateway pod, bound to its claim, so
  # that a pod's cache survives the pod.
  for i in 0 1; do
    local dir=$LDAPSYNC_TEST_NODE_PV_DIR/demo/$i
    mkdir -p "$dir" && chown 65532:65532 "$dir"
    $kubectl apply -f - >/dev/null <<EOF
apiVersion: v1
kind: PersistentVolume
metadata: {name: demo-gateway-cache-$i}
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  hostPath: {path: $dir, type: Directory}
  claimRef: {namespace: $NS, name: ldapsync-cache-ldapsync-example-gateway-$i}
EOF
  done
  # Kerberos for the pods: the realm's KDC is the DC, at the address pods reach it on.
  cat > "$STATE/demo-krb5.conf" <<EOF
[libdefaults]
  default_realm = $LDAPSYNC_TEST_AD_REALM
  dns_lookup_kdc = false
  rdns = false
  dns_canonicalize_hostname = false
[realms]
  $LDAPSYNC_TEST_AD_REALM = {
    kdc = $LDAPSYNC_TEST_POD_AD_ADDR
  }
EOF
  log "helm install: the controller Deployment (2 replicas) and a gateway StatefulSet (2 pods, agent sidecar)"
  $helm upgrade --install ldapsync "$here/charts/ldapsync" --namespace "$NS" \
    --set image.repository="${LDAPSYNC_TEST_IMAGE%:*}" --set image.tag="${LDAPSYNC_TEST_IMAGE##*:}" \
    --set image.pullPolicy=Never --set 'agent.secretNames={openldap-password,corp-ca,ldapsync-keytab}' \
    --set exampleGateway.enabled=true --set exampleGateway.image="$LDAPSYNC_TEST_GATEWAY_IMAGE" \
    --set-file agent.krb5Config="$STATE/demo-krb5.conf" >/dev/null

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
  servers: {static: ["ldap1.example.test:389"]}
  tls: {mode: StartTLS, ca: {secretRef: {name: corp-ca}}}
  auth: {simple: {bindDN: "$LDAPSYNC_TEST_SLAPD_BIND_DN", passwordSecretRef: {name: openldap-password}}}
  emailAttributes: [mail]
  scheduleRef: {name: nightly}
EOF
  log "waiting until the pods run and both connections are Ready"
  # The StatefulSet starts its pods one by one (each Ready once it has synced); the connections
  # are Ready when every gateway pod has synced them.
  if ! $kubectl -n "$NS" rollout status statefulset/ldapsync-example-gateway --timeout=240s >/dev/null \
    || ! $kubectl -n "$NS" rollout status deployment/ldapsync-controller --timeout=120s >/dev/null \
    || ! $kubectl -n "$NS" wait --for=condition=Ready ldapconnection --all --timeout=120s >/dev/null; then
    $kubectl -n "$NS" get pods,ldapconnections -o wide >&2
    log "not Ready after 4 minutes; see kubectl logs, and the node's logs in $STATE/node/logs"
    return 1
  fi
  echo
  echo "\$ kubectl get pods -n $NS"
  $kubectl -n "$NS" get pods
  echo
  echo "\$ kubectl get ldapconnections -n $NS"
  $kubectl -n "$NS" get ldapconnections
  echo
  echo "\$ kubectl get ldapconnection corp -n $NS -o jsonpath='{.status.nodes[0]}'   # a gateway pod's row"
  $kubectl -n "$NS" get ldapconnection corp -o jsonpath='{.status.nodes[0]}' | python3 -m json.tool
  echo
  echo "\$ kubectl get ldapconnection corp -n $NS -o jsonpath='{.status.conditions}'"
  $kubectl -n "$NS" get ldapconnection corp \
    -o jsonpath='{range .status.conditions[*]}{.type}{"\t"}{.status}{"\t"}{.reason}{"\t"}{.message}{"\n"}{end}'
  echo
  echo "\$ kubectl exec $GATEWAY -c gateway -- wget -qO- http://127.0.0.1:8389/v1/addresses/alice@$LDAPSYNC_TEST_AD_DOMAIN"
  $kubectl -n "$NS" exec "$GATEWAY" -c gateway -- wget -qO- "http://127.0.0.1:8389/v1/addresses/alice@$LDAPSYNC_TEST_AD_DOMAIN" \
    | python3 -m json.tool
}

lookup() {
  in_netns "${LDAPSYNC_CACHE:-/var/cache/ldapsync}/tools/bin/kubectl" --kubeconfig "$STATE/kube/kubeconfig" \
    -n "$NS" exec "$GATEWAY" -c gateway -- wget -qO- "http://127.0.0.1:8389/v1/addresses/$1"
  echo
}

case "${1:-run}" in
  down) stop_all; exit 0 ;;
  kubectl)
    shift
    running || { echo "the demo is not running: scripts/demo.sh up" >&2; exit 1; }
    in_netns "${LDAPSYNC_CACHE:-/var/cache/ldapsync}/tools/bin/kubectl" --kubeconfig "$STATE/kube/kubeconfig" "$@"
    exit ;;
  ldapsync)
    # kubectl ldapsync: the plugin is the release binary (kubectl refuses flags before a plugin's name).
    shift
    running || { echo "the demo is not running: scripts/demo.sh up" >&2; exit 1; }
    [ -x target/release/ldapsync ] || cargo build --release --locked --bin ldapsync >&2
    in_netns "$here/target/release/ldapsync" ctl --kubeconfig "$STATE/kube/kubeconfig" "$@"
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
bash scripts/image.sh
log "starting the local stack and the node in a private network and mount namespace ($STATE)"
unshare --net --mount --propagation private --fork -- bash scripts/test-env.sh up
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
