#!/usr/bin/env bash
# Starts a real local control plane on free loopback ports, with certificates from a throwaway CA:
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler, and kwok managing a few fake
# nodes (pods become Ready, Jobs' pods complete, an image tagged `broken` never gets Ready; stages
# in kwok/stages.yaml). Writes build/cluster/env (source it: KUBECONFIG and PATH).
# Running it again while the cluster is up does nothing.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
. "$here/versions.env"
. "$here/lib.sh"
dir=${GITOPS_CLUSTER_DIR:-$root/build/cluster}
log() { printf '[cluster] %s\n' "$*" >&2; }
if [ -f "$dir/env" ] && "$here/cluster-status.sh" >/dev/null 2>&1; then
  log "already up ($dir/env)"
  exit 0
fi
FAKE_NODES=${GITOPS_FAKE_NODES:-3}
case $FAKE_NODES in ''|*[!0-9]*|0) log "GITOPS_FAKE_NODES=$FAKE_NODES: give a number of fake nodes, 1 or more"; exit 2 ;; esac
# One start at a time; the daemons started below must not inherit the lock (9>&-).
mkdir -p "$(dirname "$dir")"
exec 9>"$(dirname "$dir")/.cluster.lock"
flock 9
if [ -f "$dir/env" ] && "$here/cluster-status.sh" >/dev/null 2>&1; then
  log "already up ($dir/env)"
  exit 0
fi
# A stale or half-started cluster: stop what is left of it first.
[ -d "$dir" ] && "$here/cluster-down.sh" >/dev/null 2>&1 || true

bin=$("$here/build.sh" | tail -n 1)
# A start that fails half-way stops what it started (no stray daemons).
trap 'rc=$?; if [ "$rc" -ne 0 ]; then log "start failed; stopping what was started"; "$here/cluster-down.sh" >/dev/null 2>&1; fi' EXIT
mkdir -p "$dir/pki" "$dir/etcd-data" "$dir/logs"

freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
etcd_client=$(freeport); etcd_peer=$(freeport); api_port=$(freeport)
kcm_port=$(freeport); sched_port=$(freeport); kwok_port=$(freeport)

log "generating certificates"
pki=$dir/pki
(
  cd "$pki"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 365 -subj "/CN=gitops-test-ca" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr -subj "/CN=kube-apiserver" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,IP:10.0.0.1\nextendedKeyUsage=serverAuth\n' > apiserver.ext
  openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out apiserver.crt -days 365 -extfile apiserver.ext 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -keyout admin.key -out admin.csr -subj "/O=system:masters/CN=admin" 2>/dev/null
  printf 'extendedKeyUsage=clientAuth\n' > client.ext
  openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out admin.crt -days 365 -extfile client.ext 2>/dev/null
  # The controller-manager and the scheduler authenticate as the users their default RBAC binds.
  for c in controller-manager scheduler; do
    openssl req -newkey rsa:2048 -nodes -keyout $c.key -out $c.csr -subj "/CN=system:kube-$c" 2>/dev/null
    openssl x509 -req -in $c.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out $c.crt -days 365 -extfile client.ext 2>/dev/null
  done
  openssl genrsa -out sa.key 2048 2>/dev/null
  openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
  rm -f ./*.csr
)

log "starting etcd $ETCD_VERSION on 127.0.0.1:$etcd_client"
setsid nohup "$bin/etcd" --name default --data-dir "$dir/etcd-data" \
  --listen-client-urls "http://127.0.0.1:$etcd_client" --advertise-client-urls "http://127.0.0.1:$etcd_client" \
  --listen-peer-urls "http://127.0.0.1:$etcd_peer" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer" \
  --initial-cluster "default=http://127.0.0.1:$etcd_peer" --unsafe-no-fsync=true \
  --quota-backend-bytes=8589934592 >"$dir/logs/etcd.log" 2>&1 </dev/null 9>&- &
echo $! > "$dir/etcd.pid"

# The apiserver's command line is kept so tests can restart it with the same state.
cat > "$dir/apiserver.args" <<ARGS
--etcd-servers=http://127.0.0.1:$etcd_client
--secure-port=$api_port
--bind-address=127.0.0.1
--advertise-address=127.0.0.1
--cert-dir=$dir/pki
--tls-cert-file=$pki/apiserver.crt
--tls-private-key-file=$pki/apiserver.key
--client-ca-file=$pki/ca.crt
--service-cluster-ip-range=10.0.0.0/16
--authorization-mode=RBAC
--allow-privileged=true
--disable-admission-plugins=ServiceAccount
--service-account-issuer=https://kubernetes.default.svc.cluster.local
--service-account-key-file=$pki/sa.pub
--service-account-signing-key-file=$pki/sa.key
--max-requests-inflight=1000
--max-mutating-requests-inflight=500
ARGS
"$here/apiserver-start.sh" "$dir"

# kubeconfig NAME USER: a kubeconfig with the client certificate pki/USER.crt.
kubeconfig() {
  cat > "$dir/$1" <<KC
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: https://127.0.0.1:$api_port
    certificate-authority: $pki/ca.crt
users:
- name: $2
  user:
    client-certificate: $pki/$2.crt
    client-key: $pki/$2.key
contexts:
- name: local
  context: {cluster: local, user: $2}
current-context: local
KC
}
kubeconfig kubeconfig admin
kubeconfig controller-manager.kubeconfig controller-manager
kubeconfig scheduler.kubeconfig scheduler

# start NAME CMD...: runs a daemon in its own session with its log and pid file.
start() {
  local name=$1; shift
  setsid nohup "$@" >"$dir/logs/$name.log" 2>&1 </dev/null 9>&- &
  echo $! > "$dir/$name.pid"
}
log "starting kube-controller-manager, kube-scheduler, kwok $KWOK_VERSION"
start controller-manager "$bin/kube-controller-manager" --kubeconfig="$dir/controller-manager.kubeconfig" \
  --authentication-kubeconfig="$dir/controller-manager.kubeconfig" --authorization-kubeconfig="$dir/controller-manager.kubeconfig" \
  --service-account-private-key-file="$pki/sa.key" --root-ca-file="$pki/ca.crt" \
  --cluster-signing-cert-file="$pki/ca.crt" --cluster-signing-key-file="$pki/ca.key" \
  --service-cluster-ip-range=10.0.0.0/16 --use-service-account-credentials --controllers='*' \
  --leader-elect=false --bind-address=127.0.0.1 --secure-port="$kcm_port" \
  --authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics
cat > "$dir/scheduler.yaml" <<Y
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection: {kubeconfig: $dir/scheduler.kubeconfig}
leaderElection: {leaderElect: false}
Y
start scheduler "$bin/kube-scheduler" --config="$dir/scheduler.yaml" \
  --authentication-kubeconfig="$dir/scheduler.kubeconfig" --authorization-kubeconfig="$dir/scheduler.kubeconfig" \
  --bind-address=127.0.0.1 --secure-port="$sched_port" --authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics
# HOME is the cluster dir so that a ~/.kwok/kwok.yaml of the user is not read.
start kwok env HOME="$dir" "$bin/kwok" --kubeconfig="$dir/kubeconfig" --manage-all-nodes=true \
  --node-lease-duration-seconds=40 --cidr=10.244.0.0/16 --server-address="127.0.0.1:$kwok_port" \
  -c "$here/kwok/stages.yaml"
echo "controller-manager=$kcm_port scheduler=$sched_port kwok=$kwok_port" > "$dir/ports"

# Fake nodes (kwok's docs' shape, with room for 1000 pods each so that benchmarks with many
# Deployments are not capped by the kubelet's usual 110); kwok makes them Ready and keeps their leases.
for i in $(seq 0 $((FAKE_NODES - 1))); do
  cat <<Y
---
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-$i
  labels: {type: kwok, kubernetes.io/hostname: kwok-node-$i, kubernetes.io/os: linux}
  annotations: {kwok.x-k8s.io/node: fake, node.alpha.kubernetes.io/ttl: "0"}
status:
  allocatable: {cpu: "32", memory: 256Gi, pods: "1000"}
  capacity: {cpu: "32", memory: 256Gi, pods: "1000"}
Y
done > "$dir/nodes.yaml"
KUBECONFIG=$dir/kubeconfig "$bin/kubectl" apply -f "$dir/nodes.yaml" >/dev/null

# healthy NAME PORT: the component is running and its /healthz answers ok.
healthy() {
  kill -0 "$(cat "$dir/$1.pid")" 2>/dev/null || { log "$1 exited; last lines of $dir/logs/$1.log:"; tail -n 30 "$dir/logs/$1.log" >&2; exit 1; }
  [ "$(curl -sk --max-time 2 "https://127.0.0.1:$2/healthz" 2>/dev/null)" = ok ]
}
ready=0
for i in $(seq 1 240); do
  if healthy controller-manager "$kcm_port" && healthy scheduler "$sched_port" && \
     kill -0 "$(cat "$dir/kwok.pid")" 2>/dev/null && \
     [ "$(KUBECONFIG=$dir/kubeconfig "$bin/kubectl" get nodes -l type=kwok \
           -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' 2>/dev/null | grep -c True)" = "$FAKE_NODES" ]; then
    ready=1; break
  fi
  kill -0 "$(cat "$dir/kwok.pid")" 2>/dev/null || { log "kwok exited; last lines of $dir/logs/kwok.log:"; tail -n 30 "$dir/logs/kwok.log" >&2; exit 1; }
  sleep 0.25
done
[ "$ready" = 1 ] || { log "controller-manager, scheduler or the fake nodes not ready after 60s (logs in $dir/logs)"; exit 1; }

cat > "$dir/env" <<ENV
# Source this file: it points kubectl, helm, kustomize and gitops at the local control plane.
export KUBECONFIG=$dir/kubeconfig
# build/ holds gitops itself (make): examples/shop's README runs it by name
export PATH=$bin:$root/build:\$PATH
export GITOPS_TESTENV_BIN=$bin
export GITOPS_CLUSTER_DIR=$dir
export GITOPS_APISERVER=https://127.0.0.1:$api_port
ENV
log "ready: kube-apiserver $KUBERNETES_VERSION at https://127.0.0.1:$api_port, $FAKE_NODES kwok nodes"
log "use it: source $dir/env"
