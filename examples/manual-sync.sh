#!/usr/bin/env sh
# Ask every gateway pod to sync connection $1 now (like Flux's requestedAt): any new value works.
# Each pod echoes the value in its row once it has handled the request.
set -eu
conn=${1:?usage: manual-sync.sh CONNECTION [NAMESPACE]}
ns=${2:-mail-gateway}
value=$(date -u +%Y-%m-%dT%H:%M:%SZ)
kubectl -n "$ns" annotate ldapconnection "$conn" "ldapsync.io/sync-requested-at=$value" --overwrite
echo "requested at $value; handled by:"
sleep 5
kubectl -n "$ns" get ldapconnection "$conn" \
  -o jsonpath='{range .status.nodes[*]}{.pod}{"\t"}{.phase}{"\t"}{.lastHandledSyncRequest}{"\n"}{end}'
