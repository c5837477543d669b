#!/usr/bin/env bash
# gitops run on the local control plane: drift correction latency over 100 edits (p50, p99), and
# the apiserver requests the daemon makes in 60 s of steady state with N managed objects (its own
# client counters, which the daemon logs after every pass that made any request).
# usage: bench/daemon_bench.sh [N=1000]   (needs build/gitops and a running `make cluster-up`)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/build/cluster/env"
G=$root/build/gitops
n=${1:-1000}
tmp=$(mktemp -d); ns=daemon-bench-$$; env=bench$$
export GITOPS_DATA_DIR=$tmp/data
daemon=
cleanup() { [ -n "$daemon" ] && kill "$daemon" 2>/dev/null; wait 2>/dev/null
  kubectl delete ns "$ns" --wait=false >/dev/null 2>&1; rm -rf "$tmp"; }
trap cleanup EXIT
mkdir -p "$tmp/repo/app"; cd "$tmp/repo"
cat > gitops.yaml <<Y
apiVersion: gitops/v1
kind: Pipeline
branch: main
environments:
  - name: $env
    track: main
    namespace: $ns
    apps: [{name: app, path: app}]
    sync: {auto: true, selfHeal: true}
Y
printf 'apiVersion: v1\nkind: Namespace\nmetadata: {name: %s}\n' "$ns" > app/ns.yaml
for i in $(seq 1 "$n"); do printf -- '---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm-%d}\ndata: {v: "%d"}\n' "$i" "$i"; done > app/cms.yaml
git init -q -b main . && git add -A && git -c user.name=b -c user.email=b@b commit -qm bench
log=$tmp/run.log
"$G" run --repo "$tmp/repo" --interval 5s --listen 127.0.0.1:0 >"$log" 2>&1 & daemon=$!
for _ in $(seq 1 1200); do grep -q "watching" "$log" && break; sleep 0.1; done
grep -q "watching" "$log" || { echo "the daemon did not start watching:"; tail "$log"; exit 1; }
echo "[bench] $(grep -o "watching.*" "$log" | head -1)"

# Steady state: 60 s with nothing moving.
sleep 5; mark=$(wc -l <"$log"); sleep 60
req=$(tail -n +"$((mark + 1))" "$log" | { grep -o 'kube: [0-9]* requests ([0-9]* writes) since the last pass' || true; } |
  awk '{r += $2; w += substr($4, 2)} END {printf "%d requests, %d writes", r, w}')
fetches=$(( $(wc -l <"$log") - mark ))
echo "[bench] steady state, 60 s, $n objects: $req to the apiserver ($fetches log lines)"

# Drift: 100 edits of distinct objects, each waited for before the next.
lat=()
for i in $(seq 1 100); do
  t0=$(date +%s%3N)
  kubectl -n "$ns" patch configmap "cm-$i" --type merge -p '{"data":{"v":"x"}}' >/dev/null
  for _ in $(seq 1 500); do grep -q "corrected ConfigMap $ns/cm-$i " "$log" && break; sleep 0.01; done
  line=$(grep "corrected ConfigMap $ns/cm-$i " "$log" | head -1)
  [ -n "$line" ] || { echo "cm-$i was not corrected"; exit 1; }
  ts=${line%%Z *}; t1=$(date -d "$ts" +%s%3N)
  lat+=($((t1 - t0)))
done
printf '%s\n' "${lat[@]}" | sort -n > "$tmp/lat"
p50=$(sed -n 50p "$tmp/lat"); p99=$(sed -n 99p "$tmp/lat")
ev=$(grep -o "corrected ConfigMap $ns/cm-[0-9]* [0-9]* ms" "$log" | awk '{print $4}' | sort -n)
echo "[bench] drift correction, 100 kubectl edits: p50 ${p50} ms, p99 ${p99} ms from the edit command's start;" \
  "watch event to corrected: p50 $(echo "$ev" | sed -n 50p) ms, p99 $(echo "$ev" | sed -n 99p) ms"
kill -TERM "$daemon"; wait "$daemon" || true; daemon=
grep -o "kube: .* since start" "$log" | tail -1 | sed 's/^/[bench] /'
