#!/usr/bin/env bash
# bench: a sync that brings many CustomResourceDefinitions and their custom resources at once:
# with KUBE_PROMETHEUS_DIR (kube-prometheus's manifests/ directory, setup/ included: 10 large
# CRDs and 85 other files) those manifests, else BENCH_CRDS generated CRDs (default 20) with one
# custom resource each. Prints the initial sync's wall time, API requests (all of the
# cluster's, controllers included) and the time spent waiting for the CRDs to be established,
# then deletes what it created. Needs `make cluster-up`; GITOPS picks the binary.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
G=${GITOPS:-$root/build/gitops}
tmp=$(mktemp -d); export GITOPS_DATA_DIR=$tmp/data
repo=$tmp/repo; mkdir -p "$repo/objects"
ns=monitoring
if [ -n "${KUBE_PROMETHEUS_DIR:-}" ]; then
  cp "$KUBE_PROMETHEUS_DIR"/setup/*.yaml "$KUBE_PROMETHEUS_DIR"/*.yaml "$repo/objects/"
  what="kube-prometheus ($(ls "$repo/objects" | wc -l) files)"
else
  ns=bench-crd-$$
  python3 - "$repo/objects" "${BENCH_CRDS:-20}" "$ns" <<'PY'
import sys
d, n, ns = sys.argv[1], int(sys.argv[2]), sys.argv[3]
with open(f"{d}/crds.yaml", "w") as f, open(f"{d}/crs.yaml", "w") as g:
    for i in range(n):
        f.write(f"""---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {{name: widgets{i}.bench.gitops.dev}}
spec:
  group: bench.gitops.dev
  scope: Namespaced
  names: {{plural: widgets{i}, singular: widget{i}, kind: Widget{i}, listKind: Widget{i}List}}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec: {{type: object, properties: {{size: {{type: integer}}}}}}
""")
        g.write(f"---\napiVersion: bench.gitops.dev/v1\nkind: Widget{i}\nmetadata: {{name: w, namespace: {ns}}}\nspec: {{size: {i}}}\n")
PY
  printf -- "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: %s}\n" "$ns" > "$repo/objects/ns.yaml"
  what="${BENCH_CRDS:-20} generated CRDs and custom resources"
fi
crds() { grep -h -A3 '^kind: CustomResourceDefinition' "$repo"/objects/*.yaml | sed -n 's/^  name: //p; s/^metadata: {name: \(.*\)}$/\1/p'; }
cleanup() {
  kubectl delete -f "$repo/objects" --ignore-not-found --wait=false >/dev/null 2>&1 || true
  kubectl -n gitops-system get configmap,lease -o name 2>/dev/null | grep -E "\.crdbench$" | xargs -r kubectl -n gitops-system delete >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT
cat > "$repo/gitops.yaml" <<Y
apiVersion: gitops/v1
kind: Pipeline
name: crdbench
environments:
  - name: crdbench
    track: main
    namespace: $ns
    apps: [{name: objects, path: objects}]
Y
(cd "$repo" && git init -q -b main && git add -A && git -c user.name=b -c user.email=b@b commit -qm bench)
requests() { kubectl get --raw /metrics | awk '/^apiserver_request_total\{/ && !/subresource="\/metrics"/ && !/resource="leases"/ {s+=$NF} END {printf "%d\n", s}'; }
now_ms() { date +%s%3N; }
echo "$what"
r0=$(requests); t0=$(now_ms)
# each progress line stamped with the milliseconds since the start, to time the CRD wait
set +e
"$G" sync crdbench --repo "$repo" 2>&1 | python3 -uc '
import sys, time
t = time.time()
for l in sys.stdin: sys.stdout.write("%d %s" % ((time.time() - t) * 1000, l))' >"$tmp/sync.out"
rc=${PIPESTATUS[0]}; set -e
[ "$rc" = 0 ] || { echo "gitops sync failed:"; tail -5 "$tmp/sync.out"; exit 1; }
t1=$(now_ms); r1=$(requests)
# from the first "waiting for" line to the first line after the last one
wait_ms=$(awk '/waiting for/ {if (!s) s = $1; w = 1; next} w && !e {e = $1} END {print (s && e) ? e - s : 0}' "$tmp/sync.out")
printf '%-44s %10s %10s %10s\n' "" "wall ms" "requests" "CRD wait"
printf '%-44s %10d %10d %10d\n' "gitops sync (initial)" $((t1 - t0)) $((r1 - r0 - 1)) "$wait_ms"
grep -E "^[0-9]+ crdbench at" "$tmp/sync.out" | cut -d" " -f2- | sed 's/^/  /'
# leave the cluster as it was: the next run starts from nothing again
names=$(crds); cleanup; trap - EXIT
for c in $names; do kubectl wait --for=delete "crd/$c" --timeout=60s >/dev/null 2>&1 || true; done
kubectl wait --for=delete "ns/$ns" --timeout=120s >/dev/null 2>&1 || true
