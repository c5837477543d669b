#!/usr/bin/env bash
# Exit 0 when the local control plane in build/cluster is up and ready.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
dir=${GITOPS_CLUSTER_DIR:-$root/build/cluster}
[ -f "$dir/env" ] || { echo "down"; exit 1; }
for p in etcd apiserver controller-manager scheduler kwok; do kill -0 "$(cat "$dir/$p.pid" 2>/dev/null)" 2>/dev/null || { echo "down ($p not running)"; exit 1; }; done
port=$(grep -- '--secure-port=' "$dir/apiserver.args" | cut -d= -f2)
out=$(curl -s --max-time 3 --cacert "$dir/pki/ca.crt" --cert "$dir/pki/admin.crt" --key "$dir/pki/admin.key" "https://127.0.0.1:$port/readyz")
[ "$out" = ok ] || { echo "down (readyz: $out)"; exit 1; }
echo "up https://127.0.0.1:$port"
