# shellcheck shell=bash
# A one-node Kubernetes cluster for scripts/test-env.sh (sourced there, not run): kube-scheduler,
# kubelet and kube-proxy from the same build as the control plane, containerd + runc + the CNI
# bridge plugin from Debian, all inside the caller's private network *and* mount namespace.
#
#   node IP, API server   10.99.0.1 (on lo of the namespace; pods reach it, nothing outside does)
#   pod DNS               dnsmasq on 10.99.0.1:53 (the pods' resolv.conf): dc1.corp.example.test ->
#                         10.99.0.2, ldap1.example.test -> 10.99.0.3, and their SRV records
#   pods                  10.88.0.0/24 on the bridge cni0; Services 10.0.0.0/24 (kube-proxy, iptables)
#
# Nothing of it touches the host: kubelet's and containerd's fixed paths (/run/containerd,
# /var/lib/kubelet, /var/lib/cni, /var/log/pods, /var/log/containers) are private bind mounts, the
# kernel defaults kubelet insists on are checked against bind-mounted files, not set host-wide, and
# the pods' cgroups live under one root that `node_stop` removes.

NODE_IP=10.99.0.1
SAMBA_POD_IP=10.99.0.2
SLAPD_POD_IP=10.99.0.3
POD_CIDR=10.88.0.0/24
NODE_NAME=ldapsync-node

node_dir() { echo "$STATE/node"; }
node_socket() { echo "$(node_dir)/containerd/containerd.sock"; }
node_cgroup_root() { echo "ldapsync-$(basename "$STATE")"; }

# The addresses pods use to reach the node and the directory peers (inside the namespace only).
node_addresses() {
  local ip
  for ip in $NODE_IP $SAMBA_POD_IP $SLAPD_POD_IP; do
    ip addr add "$ip/32" dev lo 2>/dev/null || ip -o addr show dev lo | grep -q " $ip/" \
      || die "cannot add $ip to lo"
  done
}

require_private_mounts() {
  [ "$(readlink /proc/self/ns/mnt)" != "$(readlink /proc/1/ns/mnt)" ] \
    || die "the node needs a private mount namespace: run inside unshare --net --mount --propagation private --fork"
}

node_mounts() {
  local N; N=$(node_dir)
  local pair src dst
  for pair in run-containerd:/run/containerd kubelet:/var/lib/kubelet cni:/var/lib/cni \
    log-pods:/var/log/pods log-containers:/var/log/containers; do
    src=$N/mnt/${pair%%:*} dst=${pair#*:}
    mkdir -p "$src" "$dst"
    mount --bind "$src" "$dst" || die "node: cannot bind-mount $src over $dst"
  done
  # kubelet --protect-kernel-defaults only checks these; where the host differs, the namespace sees
  # a file with the expected value instead (the host keeps its own).
  local kv key want path
  for kv in vm/overcommit_memory=1 vm/panic_on_oom=0 kernel/panic=10 kernel/panic_on_oops=1 \
    kernel/keys/root_maxkeys=1000000 kernel/keys/root_maxbytes=25000000; do
    key=${kv%%=*} want=${kv#*=} path=/proc/sys/${kv%%=*}
    [ "$(cat "$path")" = "$want" ] && continue
    mkdir -p "$N/sysctl/$(dirname "$key")"
    echo "$want" > "$N/sysctl/$key"
    mount --bind "$N/sysctl/$key" "$path" || die "node: cannot bind-mount a value over $path"
  done
}

# One cgroup root in every v1 hierarchy (kubelet's cgroupfs driver needs real cgroups).
node_cgroups() {
  local root h; root=$(node_cgroup_root)
  for h in /sys/fs/cgroup/*/; do
    h=${h%/}
    [ -L "$h" ] || [ ! -f "$h/cgroup.procs" ] || [ "$(basename "$h")" = unified ] && continue
    mkdir -p "$h/$root"
  done
  cat /sys/fs/cgroup/cpuset/cpuset.cpus > "/sys/fs/cgroup/cpuset/$root/cpuset.cpus"
  cat /sys/fs/cgroup/cpuset/cpuset.mems > "/sys/fs/cgroup/cpuset/$root/cpuset.mems"
}

node_configs() {
  local N; N=$(node_dir)
  mkdir -p "$N/containerd" "$N/cni" "$N/volume-plugins" "$N/logs" "$N/pv"
  cat > "$N/containerd/config.toml" <<EOF
version = 2
root = "$N/containerd/root"
state = "$N/containerd/state"
[grpc]
  address = "$N/containerd/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "localhost/pause:1"
  disable_apparmor = true
  # This host's capability bounding set has no CAP_SYS_RESOURCE: a negative oom_score_adj fails.
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  tolerate_missing_hugetlb_controller = true
  disable_hugetlb_controller = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$N/cni"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
    snapshotter = "overlayfs"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
EOF
  # No ipam routes: with isDefaultGateway the default route would be added twice.
  cat > "$N/cni/10-ldapsync.conflist" <<EOF
{"cniVersion": "0.4.0", "name": "ldapsync-pods", "plugins": [
  {"type": "bridge", "bridge": "cni0", "isGateway": true, "isDefaultGateway": true, "ipMasq": true,
   "hairpinMode": true, "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_CIDR"}]]}},
  {"type": "portmap", "capabilities": {"portMappings": true}}]}
EOF
  echo "nameserver $NODE_IP" > "$N/resolv.conf"
  cat > "$N/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
cgroupRoot: /$(node_cgroup_root)
failSwapOn: false
address: $NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication: {anonymous: {enabled: true}, webhook: {enabled: false}}
authorization: {mode: AlwaysAllow}
protectKernelDefaults: true
oomScoreAdj: 0
resolvConf: $N/resolv.conf
volumePluginDir: $N/volume-plugins
serializeImagePulls: false
# Images are imported, never pulled: never collect them, never evict for a busy disk.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, nodefs.inodesFree: 1%, imagefs.available: 1%}
EOF
}

# The pods' view of DNS: the same names as the host's peers, at addresses pods can reach.
node_dns_start() {
  dnsmasq --port=53 --listen-address=$NODE_IP --bind-interfaces --no-resolv --no-hosts \
    --conf-file=/dev/null --local=/example.test/ --local=/$AD_DOMAIN/ --pid-file="$STATE/dnsmasq-pods.pid" --user=root \
    --host-record=dc1.$AD_DOMAIN,$SAMBA_POD_IP --host-record=ldap1.example.test,$SLAPD_POD_IP \
    --srv-host=_ldap._tcp.$AD_DOMAIN,dc1.$AD_DOMAIN,389,0,100 \
    --srv-host=_ldap._tcp.dc._msdcs.$AD_DOMAIN,dc1.$AD_DOMAIN,389,0,100 \
    --srv-host=_kerberos._tcp.$AD_DOMAIN,dc1.$AD_DOMAIN,88,0,100 \
    --srv-host=_kerberos._udp.$AD_DOMAIN,dc1.$AD_DOMAIN,88,0,100 \
    --srv-host=_ldap._tcp.example.test,ldap1.example.test,389,0,100 \
    || die "dnsmasq (pod DNS on $NODE_IP) did not start"
  wait_for "dnsmasq (pod DNS)" 10 dig +time=1 +tries=1 +short @$NODE_IP A dc1.$AD_DOMAIN
}

# A third Samba process on the same database for the pods: LDAP, Kerberos and CLDAP on 10.99.0.2,
# so that the main one keeps its loopback-only view (and its DNS records) unchanged.
samba_pods_start() {
  local S=$STATE/samba
  mkdir -p "$S/run3" "$S/log3"
  sed -e "s#interfaces = 127.0.0.1#interfaces = $SAMBA_POD_IP\n\tserver services = ldap kdc cldap#" \
    -e "s#$S/run#$S/run3#g" -e "s#$S/log/#$S/log3/#" "$S/etc/smb.conf" > "$S/etc/smb-pods.conf"
  setsid samba -F --no-process-group -s "$S/etc/smb-pods.conf" --debug-stdout -d1 > "$S/log3/samba.out" 2>&1 &
  echo $! > "$STATE/samba-pods.pid"
  wait_for "samba (pod address $SAMBA_POD_IP)" 60 ldapsearch -x -H "ldap://$SAMBA_POD_IP" -b '' -s base dnsHostName
}

node_check() { # node_check COMPONENT PIDFILE CMD...: fail naming the component when it is down.
  local what=$1 pidfile=$2; shift 2
  for _ in $(seq 1 600); do
    pid_alive "$pidfile" || die "$what exited (log: $(node_dir)/logs/$what.log): $(tail -5 "$(node_dir)/logs/$what.log" 2>/dev/null)"
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  die "$what did not come up within 60s (log: $(node_dir)/logs/$what.log)"
}

node_start() {
  local N BIN SOCK L KC
  N=$(node_dir) BIN=$(bash "$here/k8s-build.sh") SOCK=$(node_socket) L=$N/logs KC=$STATE/kube/kubeconfig
  local images=${LDAPSYNC_IMAGES:-$here/../target/images}
  for image in pause ldapsync gateway-standin; do
    [ -f "$images/$image.tar" ] || die "node: $images/$image.tar is missing: run scripts/image.sh first"
  done
  for tool in containerd ctr runc iptables /usr/lib/cni/bridge /usr/lib/cni/host-local; do
    command -v "$tool" >/dev/null || die "node: $tool is not installed: run scripts/install-deps.sh"
  done
  require_private_mounts
  node_configs
  node_mounts
  node_cgroups
  log "node: containerd, images"
  containerd --config "$N/containerd/config.toml" > "$L/containerd.log" 2>&1 &
  echo $! > "$STATE/containerd.pid"
  node_check containerd "$STATE/containerd.pid" ctr --address "$SOCK" version
  for image in pause ldapsync gateway-standin; do
    ctr --address "$SOCK" -n k8s.io images import "$images/$image.tar" > /dev/null \
      || die "node: containerd cannot import $images/$image.tar"
  done
  node_dns_start
  log "node: kube-scheduler, kubelet, kube-proxy"
  "$BIN/kube-scheduler" --kubeconfig="$KC" --leader-elect=false --port=0 --bind-address=127.0.0.1 \
    --secure-port=10259 > "$L/kube-scheduler.log" 2>&1 &
  echo $! > "$STATE/kube-scheduler.pid"
  "$BIN/kubelet" --config="$N/kubelet.yaml" --kubeconfig="$KC" --container-runtime=remote \
    --container-runtime-endpoint="unix://$SOCK" --hostname-override=$NODE_NAME --node-ip=$NODE_IP \
    --pod-infra-container-image=localhost/pause:1 --v=1 > "$L/kubelet.log" 2>&1 &
  echo $! > "$STATE/kubelet.pid"
  "$BIN/kube-proxy" --kubeconfig="$KC" --hostname-override=$NODE_NAME --proxy-mode=iptables \
    --cluster-cidr=$POD_CIDR --bind-address=$NODE_IP --healthz-bind-address=127.0.0.1:10256 \
    --metrics-bind-address=127.0.0.1:10249 --conntrack-max-per-core=0 --conntrack-tcp-timeout-established=0 \
    --conntrack-tcp-timeout-close-wait=0 --oom-score-adj=0 > "$L/kube-proxy.log" 2>&1 &
  echo $! > "$STATE/kube-proxy.pid"
  node_check kube-scheduler "$STATE/kube-scheduler.pid" curl -skf https://127.0.0.1:10259/healthz
  node_check kubelet "$STATE/kubelet.pid" curl -sf http://127.0.0.1:10248/healthz
  node_check kube-proxy "$STATE/kube-proxy.pid" curl -sf http://127.0.0.1:10256/healthz
  local kubectl=${LDAPSYNC_CACHE:-/var/cache/ldapsync}/tools/bin/kubectl
  node_check kubelet "$STATE/kubelet.pid" bash -c \
    "'$kubectl' --kubeconfig '$KC' get node $NODE_NAME -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}' | grep -qx True"
}

node_stop() {
  local N SOCK root
  N=$(node_dir) SOCK=$(node_socket) root=$(node_cgroup_root)
  [ -d "$N" ] || return 0
  for p in kube-proxy kubelet kube-scheduler; do stop_pidfile "$STATE/$p.pid"; done
  if pid_alive "$STATE/containerd.pid"; then
    local task
    for task in $(ctr --address "$SOCK" -n k8s.io tasks ls -q 2>/dev/null); do
      ctr --address "$SOCK" -n k8s.io tasks kill -s SIGKILL "$task" >/dev/null 2>&1 || true
    done
  fi
  stop_pidfile "$STATE/containerd.pid"
  # The shims outlive containerd (they are re-parented); this node's name its socket.
  local shim
  for shim in $(grep -lsF -- "$SOCK" /proc/[0-9]*/cmdline | cut -d/ -f3); do
    [ "$shim" != "$$" ] && kill -KILL "$shim" 2>/dev/null || true
  done
  stop_pidfile "$STATE/dnsmasq-pods.pid"
  # Whatever still runs in the pods' cgroups (shims, containers), by PID; then the cgroups go.
  local procs pid
  for procs in $(find /sys/fs/cgroup/pids/"$root" -name cgroup.procs 2>/dev/null); do
    while read -r pid; do kill -KILL "$pid" 2>/dev/null || true; done < "$procs"
  done
  for h in /sys/fs/cgroup/*/"$root"; do
    [ -d "$h" ] && find "$h" -depth -type d -exec rmdir {} \; 2>/dev/null
  done
  local m
  for m in $(awk -v n="$N" '$5 ~ "^"n || $5 ~ "^/var/lib/kubelet" {print $5}' /proc/self/mountinfo | sort -r); do
    umount -l "$m" 2>/dev/null || true
  done
}
