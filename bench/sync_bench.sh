#!/usr/bin/env bash
# bench: gitops against kubectl on the same control plane, in one run, on the same objects, at
# two sizes (BENCH_SIZES, default "1100 11000": ten ConfigMaps for each Deployment, in one plain
# directory, each tool in its own namespace): the initial sync against `kubectl apply
# --server-side`, then a no-op diff against `kubectl diff --server-side`, then a no-op sync.
# The diffs run once every Deployment has its Pod (the controllers' rollout over); gitops diff
# runs three times, the median shown. Prints wall time, the ratio, the API requests and writes
# each made (from the apiserver's apiserver_request_total, the control plane's own controllers
# left out) and gitops' peak resident memory, then how each figure grows from the first size
# to the last.
# BENCH_CONFIGMAPS and BENCH_DEPLOYMENTS run one size with those counts instead.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
G=${GITOPS:-$root/build/gitops}
if [ -n "${BENCH_CONFIGMAPS:-}${BENCH_DEPLOYMENTS:-}" ]; then
  sizes=$(( ${BENCH_CONFIGMAPS:-1000} + ${BENCH_DEPLOYMENTS:-100} ))
else
  sizes=${BENCH_SIZES:-1100 11000}
fi
tmp=$(mktemp -d)
gns=; kns=
cleanup_ns() {
  for ns in $gns $kns; do
    kubectl delete --raw "/api/v1/namespaces/$ns/configmaps" >/dev/null 2>&1 || true
    kubectl delete --raw "/apis/apps/v1/namespaces/$ns/deployments" >/dev/null 2>&1 || true
    kubectl delete ns "$ns" --wait=false >/dev/null 2>&1 || true
  done
  kubectl -n gitops-system get configmap,lease -o name 2>/dev/null | grep -E "\.bench$" | xargs -r kubectl -n gitops-system delete >/dev/null 2>&1 || true
  # between sizes: the namespace controller's lists and deletes must not count in the next size
  [ "${1:-}" = wait ] && for ns in $gns $kns; do kubectl wait --for=delete "ns/$ns" --timeout=300s >/dev/null 2>&1 || true; done
  return 0
}
trap 'cleanup_ns; rm -rf "$tmp"' EXIT

# Counters from the apiserver: "<all requests> <writes>" (dry runs and our own scrapes excluded;
# so are the resources and subresources only the control plane's controllers and kwok write, as
# they react to the bench's Deployments: pods, replicasets, events, status, ...).
counters() {
  kubectl get --raw /metrics | python3 -c '
import re, sys
total = writes = 0
skip = {"leases", "pods", "replicasets", "events", "endpoints", "endpointslices", "nodes", "serviceaccounts",
        "controllerrevisions", "tokenreviews", "subjectaccessreviews", "selfsubjectaccessreviews"}
for line in sys.stdin:
    if not line.startswith("apiserver_request_total{"): continue
    labels, value = line.rsplit(" ", 1)
    if "subresource=\"/metrics\"" in labels or "subresource=\"/readyz\"" in labels: continue
    res = re.search(r"resource=\"([^\"]*)\"", labels)
    sub = re.search(r"subresource=\"([^\"]*)\"", labels)
    if (res and res.group(1) in skip) or (sub and sub.group(1) in ("status", "binding", "eviction", "token")): continue
    n = int(float(value)); total += n
    verb = re.search(r"verb=\"([A-Z]+)\"", labels).group(1)
    if verb in ("POST", "PUT", "PATCH", "APPLY", "DELETE") and "dry_run=\"\"" in labels: writes += n
print(total, writes)'
}
now_ms() { date +%s%3N; }
# measure NAME CMD...: runs CMD, sets ms, reqs, writes, kib (peak resident memory).
measure() {
  local name=$1; shift
  local c0 c1 t0 t1 rc=0
  c0=$(counters); t0=$(now_ms)
  /usr/bin/time -f %M -o "$tmp/$name.rss" "$@" >"$tmp/$name.out" 2>&1 || rc=$?
  t1=$(now_ms); c1=$(counters)
  ms=$((t1 - t0)); reqs=$(( ${c1% *} - ${c0% *} - 1 )); writes=$(( ${c1#* } - ${c0#* } ))
  kib=$(tail -1 "$tmp/$name.rss"); last_rc=$rc
}
row() { printf '%-44s %10s %10s %10s %10s\n' "$@"; }
ratio() { python3 -c "print(f'{$1/max($2,1):.2f}')"; }

declare -A fig
for size in $sizes; do
  cleanup_ns wait
  if [ -n "${BENCH_CONFIGMAPS:-}${BENCH_DEPLOYMENTS:-}" ]; then
    CMS=${BENCH_CONFIGMAPS:-1000}; DEPLOYS=${BENCH_DEPLOYMENTS:-100}
  else
    DEPLOYS=$((size / 11)); CMS=$((size - DEPLOYS))
  fi
  export GITOPS_DATA_DIR=$tmp/data-$size
  gns=bench-gitops-$$-$size; kns=bench-kubectl-$$-$size
  repo=$tmp/repo-$size; mkdir -p "$repo/objects"
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
  echo
  row "$objects objects (${CMS} ConfigMaps, ${DEPLOYS} Deployments)" "wall ms" "requests" "writes" "peak KiB"

  measure gitops-sync "$G" sync bench --repo "$repo" --quiet
  [ "$last_rc" = 0 ] || { echo "gitops sync failed:"; tail -5 "$tmp/gitops-sync.out"; exit 1; }
  g_ms=$ms; row "gitops sync (initial)" "$ms" "$reqs" "$writes" "$kib"
  fig[$size,sync,ms]=$ms; fig[$size,sync,req]=$reqs; fig[$size,sync,kib]=$kib
  measure kubectl-apply kubectl apply --server-side -n "$kns" -f "$repo/objects"
  [ "$last_rc" = 0 ] || { echo "kubectl apply failed:"; tail -5 "$tmp/kubectl-apply.out"; exit 1; }
  k_ms=$ms; row "kubectl apply --server-side (initial)" "$ms" "$reqs" "$writes" "$kib"
  fig[$size,ksync,ms]=$ms
  row "  ratio gitops/kubectl (target <= 0.35)" "$(ratio "$g_ms" "$k_ms")"

  # The diffs are measured once the control plane settled: right after the two initial syncs its
  # controllers still create the Deployments' ReplicaSets and Pods, and the wall time would
  # measure them. (Not "Available": the 3 kwok nodes hold 330 Pods, so most stay Pending; and
  # the controller-manager writes at 20 requests/s, so 2,000 Deployments take minutes: at most
  # 120 s are waited, the worst of the burst.)
  for ns in $gns $kns; do
    kubectl -n "$ns" wait --for=jsonpath='{.status.replicas}'=1 deployment --all --timeout=120s >/dev/null 2>&1 ||
      echo "  (not every Deployment of $ns got its Pod in 120 s: the diffs run anyway)"
  done
  # gitops diff: three runs, the median's figures (one run moves by ±20% with the machine's load)
  runs=()
  for i in 1 2 3; do
    measure gitops-diff "$G" diff bench --repo "$repo" --quiet
    [ "$last_rc" = 0 ] || { echo "gitops diff found differences after sync (exit $last_rc):"; head -20 "$tmp/gitops-diff.out"; exit 1; }
    [ "$writes" = 0 ] || { echo "gitops diff wrote $writes times"; exit 1; }
    runs+=("$ms $reqs $writes $kib")
  done
  read -r ms reqs writes kib < <(printf '%s\n' "${runs[@]}" | sort -n | sed -n 2p)
  all=$(printf '%s\n' "${runs[@]}" | cut -d' ' -f1 | sort -n | paste -sd/)
  g_ms=$ms; g_writes=$writes; row "gitops diff (no changes, median of 3)" "$ms" "$reqs" "$writes" "$kib"
  echo "  the three runs: $all ms"
  fig[$size,diff,ms]=$ms; fig[$size,diff,req]=$reqs; fig[$size,diff,kib]=$kib
  measure kubectl-diff kubectl diff --server-side -n "$kns" -f "$repo/objects"
  [ "$last_rc" = 0 ] || { echo "kubectl diff found differences (exit $last_rc):"; head -20 "$tmp/kubectl-diff.out"; exit 1; }
  k_ms=$ms; row "kubectl diff --server-side (no changes)" "$ms" "$reqs" "$writes" "$kib"
  fig[$size,kdiff,ms]=$ms
  row "  ratio gitops/kubectl (target <= 0.10)" "$(ratio "$g_ms" "$k_ms")"
  [ "$g_writes" = 0 ] || { echo "gitops diff wrote $g_writes times"; exit 1; }

  measure gitops-resync "$G" sync bench --repo "$repo" --quiet
  row "gitops sync again (nothing changed)" "$ms" "$reqs" "$writes" "$kib"
  fig[$size,resync,ms]=$ms; fig[$size,resync,req]=$reqs; fig[$size,resync,kib]=$kib
  [ "$writes" = 0 ] || { echo "a sync with nothing to do wrote $writes times"; exit 1; }
  last=$size
done

set -- $sizes
first=$1
if [ "$first" != "$last" ]; then
  echo
  echo "growth from $first to $last objects (x$(ratio "$last" "$first") the work): time, requests, peak memory"
  for op in sync diff resync; do
    row "  gitops $op" "x$(ratio "${fig[$last,$op,ms]}" "${fig[$first,$op,ms]}")" \
      "x$(ratio "${fig[$last,$op,req]}" "${fig[$first,$op,req]}")" "" "x$(ratio "${fig[$last,$op,kib]}" "${fig[$first,$op,kib]}")"
  done
  row "  kubectl apply / diff" "x$(ratio "${fig[$last,ksync,ms]}" "${fig[$first,ksync,ms]}")" \
    "x$(ratio "${fig[$last,kdiff,ms]}" "${fig[$first,kdiff,ms]}")"
fi
