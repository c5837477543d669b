#!/usr/bin/env bash
# bench: the figures of bench/flux_bench.sh, measured through `gitops run` on the same objects
# (apps/app-NNNN/cm.yaml, one app per directory, all under one environment with sync.auto and
# selfHeal), so the two sit side by side in make bench. Same environment variables:
# FLUX_BENCH_APPS (1000), FLUX_BENCH_OBJECTS (10000), FLUX_BENCH_STEADY_SECONDS (60),
# FLUX_BENCH_DRIFT_EDITS (10); the daemon fetches every GITOPS_BENCH_INTERVAL (10s).
# bench/run.sh (make bench) runs it right after bench/flux_bench.sh, on the same control plane.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
G=${GITOPS:-$root/build/gitops}
APPS=${FLUX_BENCH_APPS:-1000}
OBJECTS=${FLUX_BENCH_OBJECTS:-10000}
STEADY=${FLUX_BENCH_STEADY_SECONDS:-60}
EDITS=${FLUX_BENCH_DRIFT_EDITS:-10}
RUN_INTERVAL=${GITOPS_BENCH_INTERVAL:-10s}
TIMEOUT=${FLUX_BENCH_TIMEOUT:-1800}
[ -n "${KUBECONFIG:-}" ] && [ -n "${GITOPS_CLUSTER_DIR:-}" ] || {
  echo "gitops_run_bench: no control plane in the environment: run make cluster-up, then source build/cluster/env" >&2; exit 2; }
per_app=$(( (OBJECTS + APPS - 1) / APPS ))
# the growth phase goes to OBJECTS (10,000, as Flux's): past 1 MiB an environment's inventory is
# written grouped, so one environment holds them all
tmp=$(mktemp -d); export KAPI_OWN_DIR=$tmp/own GITOPS_DATA_DIR=$tmp/data; mkdir -p "$KAPI_OWN_DIR"
K() { python3 "$root/bench/kapi.py" "$@"; }
ans=gitops-apps-$$
pid=
cleanup() {
  [ -n "$pid" ] && { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
  kubectl delete --raw "/api/v1/namespaces/$ans/configmaps" >/dev/null 2>&1 || true
  kubectl delete ns "$ans" --wait=false >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT
now_ms() { date +%s%3N; }
row() { printf '%-52s %10s %10s %10s\n' "$@"; }
snap() { K snap > "$tmp/$1.json"; }
phase() { read -r reqs writes split < <(K delta "$tmp/$1.0.json" "$tmp/$1.1.json")
  byres=$(K delta "$tmp/$1.0.json" "$tmp/$1.1.json" --resources); }
fail() { echo "gitops_run_bench: $*; last lines of the daemon's output:" >&2; tail -n 15 "$tmp/run.log" >&2; exit 1; }
stats() { printf '%s\n' "$@" | sort -n | awk '{v[NR]=$1} END{printf "%d %d %d\n", v[int((NR+1)/2)], v[1], v[NR]}'; }
rss() { awk '/^VmHWM/{h=$2} /^VmRSS/{r=$2} END{printf "%.1f %.1f\n", h/1024, r/1024}' "/proc/$1/status"; }

kubectl create namespace "$ans" >/dev/null
mkdir -p "$tmp/work"; git init -q --bare -b main "$tmp/apps.git"
(cd "$tmp/work" && git init -q -b main && git remote add origin "$tmp/apps.git")
write_apps() { # PER_APP MARK
  python3 - "$tmp/work" "$APPS" "$1" "$2" "$ans" <<'PY'
import os, sys
d, apps, per, mark, ns = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
with open(f"{d}/gitops.yaml", "w") as f:
    f.write(f"apiVersion: gitops/v1\nkind: Pipeline\nenvironments:\n  - name: bench\n    track: main\n"
            f"    namespace: {ns}\n    sync: {{auto: true, selfHeal: true}}\n    apps:\n")
    for i in range(apps):
        f.write(f"      - {{name: app-{i:04d}, path: apps/app-{i:04d}}}\n")
for i in range(apps):
    a = f"{d}/apps/app-{i:04d}"; os.makedirs(a, exist_ok=True)
    with open(f"{a}/cm.yaml", "w") as f:
        for j in range(per):
            name = f"app-{i:04d}" if j == 0 else f"app-{i:04d}-{j:02d}"
            f.write(f"---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  labels: {{tier: bench}}\n"
                    f"data:\n  index: \"{i}\"\n  mark: \"{mark}\"\n  payload: \"{'x' * 64}\"\n")
PY
}
commit() { (cd "$tmp/work" && git add -A && git -c user.name=bench -c user.email=bench@localhost commit -qm "$1" &&
  git push -q origin main && git rev-parse HEAD); }

row "gitops run: $APPS apps of 1 ConfigMap, fetch every $RUN_INTERVAL" "wall ms" "requests" "writes"
write_apps 1 v1; commit "apps v1" >/dev/null
snap init.0; t0=$(now_ms)
"$G" run --repo "$tmp/apps.git" --interval "$RUN_INTERVAL" --listen 127.0.0.1:0 >"$tmp/run.log" 2>&1 &
pid=$!
ms=$(K wait-all "$ans" tier=bench mark v1 "$APPS" "$t0" "$TIMEOUT") || fail "the initial sync did not finish"
snap init.1; phase init
row "commit to all applied (daemon started)" "$ms" "$reqs" "$writes"
read -r hwm1 rss1 < <(rss "$pid")

snap steady.0; sleep "$STEADY"; snap steady.1; phase steady
row "steady state, $STEADY s ($APPS objects)" "" "$reqs" "$writes"
echo "  by verb: $split"; echo "  most: $byres"

(cd "$tmp/work" && sed -i 's/mark: "v1"/mark: "v2"/' apps/app-0000/cm.yaml); commit "app-0000 v2" >/dev/null
snap one.0; t0=$(now_ms)
ms=$(K wait-cm "$ans" mark v2 "$t0" "$TIMEOUT" app-0000); [ "$ms" != timeout ] || fail "app-0000 was not updated"
snap one.1; phase one
row "commit touching 1 app: applied (next fetch)" "$ms" "$reqs" "$writes"

payload=$(printf 'x%.0s' $(seq 64))
lat=()
for i in $(seq 1 "$EDITS"); do
  name=$(printf 'app-%04d' "$i")
  t0=$(K edit-cm "$ans" payload drifted "$name")
  ms=$(K wait-cm "$ans" payload "$payload" "$t0" "$TIMEOUT" "$name"); [ "$ms" != timeout ] || fail "$name was not corrected"
  lat+=("$ms")
done
read -r p50 lo hi < <(stats "${lat[@]}")
row "drift, $EDITS edits, selfHeal: edit to corrected" "p50 $p50" "min $lo" "max $hi"

if [ "$per_app" -gt 1 ]; then
  write_apps "$per_app" v3; commit "apps: $per_app ConfigMaps each" >/dev/null
  snap big.0; t0=$(now_ms)
  ms=$(K wait-all "$ans" tier=bench mark v3 $((APPS * per_app)) "$t0" "$TIMEOUT") || fail "the $OBJECTS-object commit did not finish"
  snap big.1; phase big
  row "commit growing to $((APPS * per_app)) objects: all applied" "$ms" "$reqs" "$writes"
fi
read -r hwm2 rss2 < <(rss "$pid")
printf '%-52s %10s %10s\n' "resident memory of gitops run, MiB" "peak" "now"
row "  $APPS objects" "$hwm1" "$rss1" ""
row "  $((APPS * per_app)) objects" "$hwm2" "$rss2" ""
