#!/usr/bin/env bash
# Starts a real local control plane (etcd + kube-apiserver) on free loopback ports, with
# certificates from a throwaway CA, and writes build/cluster/env (source it: KUBECONFIG and PATH).
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
mkdir -p "$dir/pki" "$dir/etcd-data" "$dir/logs"

freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
etcd_client=$(freeport); etcd_peer=$(freeport); api_port=$(freeport)

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

cat > "$dir/kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: https://127.0.0.1:$api_port
    certificate-authority: $pki/ca.crt
users:
- name: admin
  user:
    client-certificate: $pki/admin.crt
    client-key: $pki/admin.key
contexts:
- name: local
  context: {cluster: local, user: admin}
current-context: local
KC
cat > "$dir/env" <<ENV
# Source this file: it points kubectl, helm, kustomize and gitops at the local control plane.
export KUBECONFIG=$dir/kubeconfig
# build/ holds gitops itself (make): examples/shop's README runs it by name
export PATH=$bin:$root/build:\$PATH
export GITOPS_TESTENV_BIN=$bin
export GITOPS_CLUSTER_DIR=$dir
export GITOPS_APISERVER=https://127.0.0.1:$api_port
ENV
log "ready: kube-apiserver $KUBERNETES_VERSION at https://127.0.0.1:$api_port"
log "use it: source $dir/env"
