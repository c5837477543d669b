#!/usr/bin/env bash
# Stops what cluster-up started (each by its pid file) and removes its data.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
dir=${GITOPS_CLUSTER_DIR:-$root/build/cluster}
[ -d "$dir" ] || { echo "[cluster] not running"; exit 0; }
for p in kwok scheduler controller-manager apiserver etcd; do
  pid=$(cat "$dir/$p.pid" 2>/dev/null) || continue
  kill "$pid" 2>/dev/null || continue
  for i in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
done
rm -rf "$dir"
echo "[cluster] stopped"
