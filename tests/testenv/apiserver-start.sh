#!/usr/bin/env bash
# Starts kube-apiserver with the arguments cluster-up saved and waits for /readyz.
# Used by cluster-up and by tests that restart the apiserver while etcd keeps running.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/versions.env"; . "$here/lib.sh"
dir=$1; bin=$(testenv_bindir)
mapfile -t args < "$dir/apiserver.args"
port=$(grep -- '--secure-port=' "$dir/apiserver.args" | cut -d= -f2)
setsid nohup "$bin/kube-apiserver" "${args[@]}" >>"$dir/logs/kube-apiserver.log" 2>&1 </dev/null 9>&- &
echo $! > "$dir/apiserver.pid"
for i in $(seq 1 120); do
  if out=$(curl -s --max-time 2 --cacert "$dir/pki/ca.crt" --cert "$dir/pki/admin.crt" --key "$dir/pki/admin.key" \
      "https://127.0.0.1:$port/readyz" 2>/dev/null) && [ "$out" = ok ]; then
    exit 0
  fi
  if ! kill -0 "$(cat "$dir/apiserver.pid")" 2>/dev/null; then
    echo "[cluster] kube-apiserver exited; last lines of $dir/logs/kube-apiserver.log:" >&2
    tail -n 30 "$dir/logs/kube-apiserver.log" >&2
    exit 1
  fi
  sleep 0.5
done
echo "[cluster] kube-apiserver not ready after 60s; last lines of its log:" >&2
tail -n 30 "$dir/logs/kube-apiserver.log" >&2
exit 1
