#!/usr/bin/env sh
# A sync that would remove more objects than spec.deletionSafety allows is held: the pods keep
# serving their previous cache, their rows say Held, and the connection is Stalled (DeletionHeld).
# Check the numbers, then approve exactly the held content (its hash) to let that sync through.
set -eu
conn=${1:?usage: approve-deletions.sh CONNECTION [NAMESPACE]}
ns=${2:-mail-gateway}
kubectl -n "$ns" get ldapconnection "$conn" \
  -o jsonpath='{range .status.nodes[?(@.phase=="Held")]}{.pod}: removes {.held.deletedObjects} of {.held.previousObjects} objects, content {.held.contentHash}{"\n"}{end}'
hash=$(kubectl -n "$ns" get ldapconnection "$conn" -o jsonpath='{.status.nodes[?(@.phase=="Held")].held.contentHash}' | awk '{print $1}')
[ -n "$hash" ] || { echo "no pod holds a sync of $conn"; exit 1; }
kubectl -n "$ns" annotate ldapconnection "$conn" "ldapsync.io/approve-deletions=$hash" --overwrite
