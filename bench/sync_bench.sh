#!/usr/bin/env bash
# bench: gitops against kubectl on the same control plane, in one run, on the same objects
# (default 1,000 ConfigMaps and 100 Deployments in one plain directory, each tool in its own
# namespace): the initial sync against `kubectl apply --server-side`, then a no-op diff against
# `kubectl diff --server-side`. Prints wall time, the ratio, and the API requests each made
# (from the apiserver's apiserver_request_total; nothing else should use the cluster meanwhile).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
G=${GITOPS:-$root/build/gitops}
CMS=${BENCH_CONFIGMAPS:-1000}; DEPLOYS=${BENCH_DEPLOYMENTS:-100}
tmp=$(mktemp -d); export GITOPS_DATA_DIR=$tmp/data
gns=bench-gitops-$$; kns=bench-kubectl-$$
cleanup() {
  for ns in "$gns" "$kns"; do
    kubectl delete --raw "/api/v1/namespaces/$ns/configmaps" >/dev/null 2>&1 || true
    kubectl delete --raw "/apis/apps/v1/namespaces/$ns/deployments" >/dev/null 2>&1 || true
    kubectl delete ns "$ns" --wait=false >/dev/null 2>&1 || true
  done
  kubectl -n gitops-system get configmap,lease -o name 2>/dev/null | grep -E "\.bench$" | xargs -r kubectl -n gitops-system delete >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT

# Counters from the apiserver: "<all requests> <writes>" (dry runs and our own scrapes excluded).
counters() {
  kubectl get --raw /metrics | python3 -c '
import re, sys
total = writes = 0
for line in sys.stdin:
    if not line.startswith("apiserver_request_total{"): continue
    labels, value = line.rsplit(" ", 1)
    if "subresource=\"/metrics\"" in labels or "subresource=\"/readyz\"" in labels: continue
    if "resource=\"leases\"" in labels: continue  # heartbeats of the apiserver itself
    n = int(float(value)); total += n
    verb = re.search(r"verb=\"([A-Z]+)\"", labels).group(1)
    if verb in ("POST", "PUT", "PATCH", "APPLY", "DELETE") and "dry_run=\"\"" in labels: writes += n
print(total, writes)'
}
now_ms() { date +%s%3N; }
# measure NAME CMD...: runs CMD, sets ms, reqs, writes.
measure() {
  local name=$1; shift
  local c0 c1 t0 t1 rc=0
  c0=$(counters); t0=$(now_ms)
  "$@" >"$tmp/$name.out" 2>&1 || rc=$?
  t1=$(now_ms); c1=$(counters)
  ms=$((t1 - t0)); reqs=$(( ${c1% *} - ${c0% *} - 1 )); writes=$(( ${c1#* } - ${c0#* } ))
  last_rc=$rc
}

repo=$tmp/repo; mkdir -p "$repo/objects"
python3 - "$repo/objects" "$CMS" "$DEPLOYS" <<'PY'
import sys
d, cms, deps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with open(f"{d}/configmaps.yaml", "w") as f:
    for i in range(cms):
        f.write(f"---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i:04d}\n  labels: {{tier: bench}}\n"
                f"data:\n  index: \"{i}\"\n  payload: \"{'x' * 64}\"\n")
with open(f"{d}/deployments.yaml", "w") as f:
    for i in range(deps):
        f.write(f"---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app-{i:03d}\nspec:\n"
                f"  selector: {{matchLabels: {{app: app-{i:03d}}}}}\n  template:\n    metadata:\n"
                f"      labels: {{app: app-{i:03d}}}\n    spec:\n      containers:\n        - name: main\n"
                f"          image: nginx:1.27\n          ports: [{{containerPort: 80}}]\n"
                f"          resources: {{requests: {{cpu: 100m, memory: 64Mi}}}}\n")
PY
cat > "$repo/gitops.yaml" <<Y
apiVersion: gitops/v1
kind: Pipeline
environments:
  - name: bench
    track: main
    namespace: $gns
    apps: [{name: objects, path: objects}]
Y
(cd "$repo" && git init -q -b main && git add -A && git -c user.name=b -c user.email=b@b commit -qm bench)
kubectl create namespace "$gns" >/dev/null; kubectl create namespace "$kns" >/dev/null
objects=$((CMS + DEPLOYS))
printf '%-44s %10s %10s %10s\n' "$objects objects (${CMS} ConfigMaps, ${DEPLOYS} Deployments)" "wall ms" "requests" "writes"

measure gitops-sync "$G" sync bench --repo "$repo" --quiet
[ "$last_rc" = 0 ] || { echo "gitops sync failed:"; tail -5 "$tmp/gitops-sync.out"; exit 1; }
g_ms=$ms; printf '%-44s %10d %10d %10d\n' "gitops sync (initial)" "$ms" "$reqs" "$writes"
measure kubectl-apply kubectl apply --server-side -n "$kns" -f "$repo/objects"
[ "$last_rc" = 0 ] || { echo "kubectl apply failed:"; tail -5 "$tmp/kubectl-apply.out"; exit 1; }
k_ms=$ms; printf '%-44s %10d %10d %10d\n' "kubectl apply --server-side (initial)" "$ms" "$reqs" "$writes"
printf '%-44s %10s\n' "  ratio gitops/kubectl (target <= 0.50)" "$(python3 -c "print(f'{$g_ms/$k_ms:.2f}')")"

measure gitops-diff "$G" diff bench --repo "$repo" --quiet
[ "$last_rc" = 0 ] || { echo "gitops diff found differences after sync (exit $last_rc):"; head -20 "$tmp/gitops-diff.out"; exit 1; }
g_ms=$ms; g_writes=$writes; printf '%-44s %10d %10d %10d\n' "gitops diff (no changes)" "$ms" "$reqs" "$writes"
measure kubectl-diff kubectl diff --server-side -n "$kns" -f "$repo/objects"
[ "$last_rc" = 0 ] || { echo "kubectl diff found differences (exit $last_rc):"; head -20 "$tmp/kubectl-diff.out"; exit 1; }
k_ms=$ms; printf '%-44s %10d %10d %10d\n' "kubectl diff --server-side (no changes)" "$ms" "$reqs" "$writes"
printf '%-44s %10s\n' "  ratio gitops/kubectl (target <= 0.10)" "$(python3 -c "print(f'{$g_ms/$k_ms:.2f}')")"
[ "$g_writes" = 0 ] || { echo "gitops diff wrote $g_writes times"; exit 1; }

measure gitops-resync "$G" sync bench --repo "$repo" --quiet
printf '%-44s %10d %10d %10d\n' "gitops sync again (nothing changed)" "$ms" "$reqs" "$writes"
