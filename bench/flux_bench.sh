#!/usr/bin/env bash
# bench: the Flux baseline. Flux's source-controller and kustomize-controller (built from their Go
# modules at the versions pinned in tests/testenv/versions.env by tests/testenv/build-flux.sh) run
# out of cluster against the local control plane, on loopback only, reconciling a git repository
# served over smart HTTP (tests/fixtures/git_http_server.py) with one Kustomization per app:
#   1. commit to all applied: FLUX_BENCH_APPS apps (default 1,000) of one ConfigMap each;
#   2. requests in FLUX_BENCH_STEADY_SECONDS (60) of steady state, by verb (apiserver_request_total,
#      lease heartbeats, non-resource requests and this bench's own requests left out);
#   3. a commit touching one app to applied (the source reconcile forced with the
#      reconcile.fluxcd.io/requestedAt annotation, as `flux reconcile source git` does);
#   4. with FLUX_BENCH_CYCLE=1, one forced reconcile of every Kustomization (requestedAt on all):
#      what each interval costs (otherwise 3., where every Kustomization reconciles, stands for it);
#   5. peak RSS of both controllers (VmHWM from /proc) managing FLUX_BENCH_OBJECTS (10,000) objects
#      (FLUX_BENCH_OBJECTS / FLUX_BENCH_APPS ConfigMaps per app, in one commit);
#   6. drift: FLUX_BENCH_DRIFT_EDITS (10) ConfigMap edits, each followed by requestedAt on its
#      Kustomization (as `flux reconcile kustomization` does): edit to corrected;
#   7. drift left to the interval: FLUX_BENCH_DRIFT_EDITS edits and nothing forced: edit to corrected
#      (bounded by FLUX_BENCH_INTERVAL, default 10m as `flux bootstrap` writes; skip with
#      FLUX_BENCH_DRIFT_INTERVAL=0).
# Needs the control plane (source build/cluster/env; make cluster-up). Nothing else should use the
# cluster meanwhile. Smoke run: FLUX_BENCH_APPS=20 FLUX_BENCH_OBJECTS=100 FLUX_BENCH_INTERVAL=1m
# FLUX_BENCH_STEADY_SECONDS=10 FLUX_BENCH_DRIFT_EDITS=3 bench/flux_bench.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
APPS=${FLUX_BENCH_APPS:-1000}
OBJECTS=${FLUX_BENCH_OBJECTS:-10000}
STEADY=${FLUX_BENCH_STEADY_SECONDS:-60}
EDITS=${FLUX_BENCH_DRIFT_EDITS:-10}
INTERVAL=${FLUX_BENCH_INTERVAL:-10m}
SOURCE_INTERVAL=${FLUX_BENCH_SOURCE_INTERVAL:-1m}
DRIFT_INTERVAL=${FLUX_BENCH_DRIFT_INTERVAL:-1}
CYCLE=${FLUX_BENCH_CYCLE:-0}
# Where the controllers unpack and store artifacts: tmpfs, as Flux recommends for many
# Kustomizations ("in-memory kustomize builds"; its benchmark runs so); every reconcile unpacks the
# whole artifact of its source.
TMPFS=${FLUX_BENCH_TMPFS:-/dev/shm}
# The concurrency of Flux's published benchmark (fluxcd/flux-benchmark RESULTS.md); the
# controllers' own defaults are 2 and 4.
SC_CONCURRENT=${FLUX_BENCH_SOURCE_CONCURRENT:-10}
KC_CONCURRENT=${FLUX_BENCH_KUSTOMIZE_CONCURRENT:-20}
TIMEOUT=${FLUX_BENCH_TIMEOUT:-1800}   # seconds any one wait may take before the bench fails

[ -n "${KUBECONFIG:-}" ] && [ -n "${GITOPS_CLUSTER_DIR:-}" ] || {
  echo "flux_bench: no control plane in the environment: run make cluster-up, then source build/cluster/env" >&2; exit 2; }
per_app=$(( (OBJECTS + APPS - 1) / APPS ))
dur_s() { python3 -c '
import re, sys
s = sys.argv[1]; t = 0.0
for n, u in re.findall(r"([0-9.]+)(ms|h|m|s)", s): t += float(n) * {"ms": .001, "s": 1, "m": 60, "h": 3600}[u]
print(int(t))' "$1"; }
interval_s=$(dur_s "$INTERVAL")

flux=$("$root/tests/testenv/build-flux.sh" | tail -n 1)
tmp=$(mktemp -d); shm=$(mktemp -d -p "$TMPFS" flux-bench.XXXXXX); export KAPI_OWN_DIR=$tmp/own; mkdir -p "$KAPI_OWN_DIR"
K() { python3 "$root/bench/kapi.py" "$@"; }
fns=flux-bench-$$; ans=flux-apps-$$
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  K release "$fns" >/dev/null 2>&1 || true
  kubectl delete --raw "/api/v1/namespaces/$ans/configmaps" >/dev/null 2>&1 || true
  kubectl delete ns "$fns" "$ans" --wait=false >/dev/null 2>&1 || true
  rm -rf "$tmp" "$shm"
}
trap cleanup EXIT
now_ms() { date +%s%3N; }
freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
fmt_s() { python3 -c "print(f'{$1/1000:.1f} s')"; }
row() { printf '%-52s %10s %10s %10s\n' "$@"; }
snap() { K snap > "$tmp/$1.json"; }
# phase NAME: after snap NAME.0 ... snap NAME.1, sets reqs, writes, split.
phase() { read -r reqs writes split < <(K delta "$tmp/$1.0.json" "$tmp/$1.1.json")
  byres=$(K delta "$tmp/$1.0.json" "$tmp/$1.1.json" --resources)
  client=$(K delta "$tmp/$1.0.json" "$tmp/$1.1.json" --client); }
rss() { # PID: "VmHWM VmRSS" in MiB
  awk '/^VmHWM/{h=$2} /^VmRSS/{r=$2} END{printf "%.1f %.1f\n", h/1024, r/1024}' "/proc/$1/status"; }

echo "Flux source-controller $(. "$root/tests/testenv/versions.env"; echo "$FLUX_SOURCE_CONTROLLER_VERSION"), kustomize-controller $(. "$root/tests/testenv/versions.env"; echo "$FLUX_KUSTOMIZE_CONTROLLER_VERSION"), out of cluster (concurrency $SC_CONCURRENT / $KC_CONCURRENT); Kustomization interval $INTERVAL, GitRepository interval $SOURCE_INTERVAL"
kubectl apply --server-side -f "$flux/crds" >/dev/null
kubectl wait --for=condition=Established crd --all --timeout=60s >/dev/null
kubectl create namespace "$fns" >/dev/null; kubectl create namespace "$ans" >/dev/null

# --- the git repository: apps/app-NNNN/cm.yaml, served over smart HTTP with basic auth ---------
write_apps() { # PER_APP MARK: every app gets PER_APP ConfigMaps; MARK goes into their data
  python3 - "$tmp/work/apps" "$APPS" "$1" "$2" <<'PY'
import os, sys
d, apps, per, mark = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
for i in range(apps):
    a = f"{d}/app-{i:04d}"; os.makedirs(a, exist_ok=True)
    with open(f"{a}/cm.yaml", "w") as f:
        for j in range(per):
            name = f"app-{i:04d}" if j == 0 else f"app-{i:04d}-{j:02d}"
            f.write(f"---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  labels: {{tier: bench}}\n"
                    f"data:\n  index: \"{i}\"\n  mark: \"{mark}\"\n  payload: \"{'x' * 64}\"\n")
PY
}
commit() { # MESSAGE: commits the work tree, pushes to the served bare repository, prints the SHA
  (cd "$tmp/work" && git add -A && git -c user.name=bench -c user.email=bench@localhost commit -qm "$1" &&
   git push -q origin main && git rev-parse HEAD)
}
mkdir -p "$tmp/srv" "$tmp/work"
git init -q --bare -b main "$tmp/srv/apps.git"
(cd "$tmp/work" && git init -q -b main && git remote add origin "$tmp/srv/apps.git")
password=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
python3 "$root/tests/fixtures/git_http_server.py" "$tmp/srv" "$password" "$tmp/git.port" &
pids+=($!)
for _ in $(seq 50); do [ -s "$tmp/git.port" ] && break; sleep 0.1; done
url="http://127.0.0.1:$(cat "$tmp/git.port")/apps.git"

# --- the controllers, on loopback only ----------------------------------------------------------
storage=$(freeport)
mkdir -p "$shm/data" "$shm/tmp"
export RUNTIME_NAMESPACE=$fns TMPDIR=$shm/tmp
sc_health=$(freeport); kc_health=$(freeport); sc_metrics=$(freeport); kc_metrics=$(freeport)
"$flux/bin/source-controller" --watch-all-namespaces=true --concurrent="$SC_CONCURRENT" \
  --storage-path="$shm/data" --storage-addr="127.0.0.1:$storage" --storage-adv-addr="127.0.0.1:$storage" \
  --metrics-addr="127.0.0.1:$sc_metrics" --health-addr="127.0.0.1:$sc_health" >"$tmp/source-controller.log" 2>&1 &
sc_pid=$!; pids+=("$sc_pid")
"$flux/bin/kustomize-controller" --watch-all-namespaces=true --concurrent="$KC_CONCURRENT" \
  --metrics-addr="127.0.0.1:$kc_metrics" --health-addr="127.0.0.1:$kc_health" >"$tmp/kustomize-controller.log" 2>&1 &
kc_pid=$!; pids+=("$kc_pid")
unset TMPDIR
for port in "$sc_health" "$kc_health"; do
  for i in $(seq 120); do
    curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
    if ! kill -0 "$sc_pid" 2>/dev/null || ! kill -0 "$kc_pid" 2>/dev/null || [ "$i" = 120 ]; then
      echo "flux_bench: a controller did not become ready; last lines of their logs:" >&2
      tail -n 15 "$tmp/source-controller.log" "$tmp/kustomize-controller.log" >&2; exit 1
    fi
    sleep 0.5
  done
done
export KAPI_METRICS="http://127.0.0.1:$sc_metrics http://127.0.0.1:$kc_metrics"
fail() { echo "flux_bench: $*; last lines of the controllers' logs:" >&2
  tail -n 10 "$tmp/source-controller.log" "$tmp/kustomize-controller.log" >&2; exit 1; }

row "Flux: $APPS apps of 1 ConfigMap, 1 Kustomization each" "wall ms" "requests" "writes"
# 1. commit to all applied
write_apps 1 v1; sha=$(commit "apps v1")
snap init.0; t0=$(now_ms)
K create "$fns" "$ans" "$APPS" "$url" "$INTERVAL" "$SOURCE_INTERVAL" bench "$password"
ms=$(K wait-ks "$fns" "$APPS" "$sha" "$t0" "$TIMEOUT") || fail "the initial sync did not finish"
snap init.1; phase init
row "commit to all applied (objects created)" "$ms" "$reqs" "$writes"
echo "  by verb: $split"; echo "  most: $byres"; echo "  the controllers' own count (rest_client_requests_total): $client"
n=$(K count "/api/v1/namespaces/$ans/configmaps?labelSelector=tier%3Dbench")
[ "$n" = "$APPS" ] || fail "$n ConfigMaps applied, $APPS expected"
read -r sc_hwm sc_rss < <(rss "$sc_pid"); read -r kc_hwm kc_rss < <(rss "$kc_pid")

# 2. steady state
snap steady.0; sleep "$STEADY"; snap steady.1; phase steady
row "steady state, $STEADY s ($APPS objects)" "" "$reqs" "$writes"
echo "  by verb: $split"; echo "  most: $byres"; echo "  the controllers' own count (rest_client_requests_total): $client"

# 3. a commit touching one app
(cd "$tmp/work" && sed -i 's/mark: "v1"/mark: "v2"/' apps/app-0000/cm.yaml); sha=$(commit "app-0000 v2")
snap one.0; t0=$(now_ms); token=$(date +%s%N)
K annotate "$fns" gitrepositories "$token" apps
K wait-cm "$ans" mark v2 "$t0" "$TIMEOUT" app-0000 >"$tmp/one.cm" &
cm_wait=$!
ms_all=$(K wait-ks "$fns" "$APPS" "$sha" "$t0" "$TIMEOUT") || fail "the one-app commit did not reach every Kustomization"
wait "$cm_wait"; ms=$(cat "$tmp/one.cm")
snap one.1; phase one; one_reqs=$reqs; one_writes=$writes
[ "$ms" != timeout ] || fail "app-0000 was not updated"
row "commit touching 1 app: that app applied" "$ms" "" ""
row "  ... every Kustomization reconciled at it" "$ms_all" "$reqs" "$writes"
echo "  by verb: $split"; echo "  most: $byres"; echo "  the controllers' own count (rest_client_requests_total): $client"

# 4. one forced reconcile of every Kustomization: the work of each interval (FLUX_BENCH_CYCLE=1;
# otherwise the figures of 3., where every Kustomization reconciled once, stand for it)
if [ "$CYCLE" = 1 ]; then
snap cycle.0; t0=$(now_ms); token=$(date +%s%N)
K annotate "$fns" kustomizations "$token" --all
ms=$(K wait-ks "$fns" "$APPS" "$sha" "$t0" "$TIMEOUT" "$token") || fail "the forced reconcile did not finish"
snap cycle.1; phase cycle
row "reconcile of all $APPS (each interval's work)" "$ms" "$reqs" "$writes"
echo "  by verb: $split"; echo "  most: $byres"; echo "  the controllers' own count (rest_client_requests_total): $client"
else reqs=$one_reqs; writes=$one_writes; fi
row "  = per 60 s at interval $INTERVAL, on average" "" "$(( reqs * 60 / interval_s ))" "$(( writes * 60 / interval_s ))"

# 5. peak RSS managing OBJECTS objects
if [ "$per_app" -gt 1 ]; then
  write_apps "$per_app" v3; sha=$(commit "apps: $per_app ConfigMaps each")
  snap big.0; t0=$(now_ms); token=$(date +%s%N)
  K annotate "$fns" gitrepositories "$token" apps
  ms=$(K wait-ks "$fns" "$APPS" "$sha" "$t0" "$TIMEOUT") || fail "the $OBJECTS-object commit did not finish"
  snap big.1; phase big
  n=$(K count "/api/v1/namespaces/$ans/configmaps?labelSelector=tier%3Dbench")
  [ "$n" = $((APPS * per_app)) ] || fail "$n ConfigMaps applied, $((APPS * per_app)) expected"
  row "commit growing to $n objects: all applied" "$ms" "$reqs" "$writes"
  echo "  by verb: $split"; echo "  most: $byres"; echo "  the controllers' own count (rest_client_requests_total): $client"
  t_all=$(now_ms)
fi
read -r sc_hwm2 sc_rss2 < <(rss "$sc_pid"); read -r kc_hwm2 kc_rss2 < <(rss "$kc_pid")
printf '%-52s %10s %10s %10s\n' "resident memory, MiB" "peak" "now" ""
row "  source-controller, $APPS objects" "$sc_hwm" "$sc_rss" ""
row "  kustomize-controller, $APPS objects" "$kc_hwm" "$kc_rss" ""
if [ "$per_app" -gt 1 ]; then
  row "  source-controller, $((APPS * per_app)) objects" "$sc_hwm2" "$sc_rss2" ""
  row "  kustomize-controller, $((APPS * per_app)) objects" "$kc_hwm2" "$kc_rss2" ""
fi
row "  both, $((APPS * per_app)) objects" "$(python3 -c "print(f'{$sc_hwm2+$kc_hwm2:.1f}')")" "" ""

# 6. drift corrected on demand: edit (payload changed, as a kubectl edit would), then requestedAt
# on its Kustomization, as `flux reconcile kustomization` does
payload=$(printf 'x%.0s' $(seq 64))
lat=()
for i in $(seq 1 "$EDITS"); do
  name=$(printf 'app-%04d' "$i")
  t0=$(K edit-cm "$ans" payload drifted "$name"); token=$(date +%s%N)
  K wait-cm "$ans" payload "$payload" "$t0" "$TIMEOUT" "$name" >"$tmp/drift.cm" &
  w=$!
  K annotate "$fns" kustomizations "$token" "$name"
  wait "$w"; ms=$(cat "$tmp/drift.cm"); [ "$ms" != timeout ] || fail "$name was not corrected"
  lat+=("$ms")
done
stats() { printf '%s\n' "$@" | sort -n | awk '{v[NR]=$1} END{printf "%d %d %d\n", v[int((NR+1)/2)], v[1], v[NR]}'; }
read -r p50 lo hi < <(stats "${lat[@]}")
row "drift, $EDITS edits + forced reconcile: to corrected" "p50 $p50" "min $lo" "max $hi"
t_all=$(now_ms)

# 7. drift left to the interval: nothing forced. kustomize-controller does not watch what it
# applied; its next reconcile of the Kustomization (every .spec.interval, +-5 % jitter, counted from
# its last reconcile) finds the drift with a server-side dry run and applies it back.
if [ "$DRIFT_INTERVAL" != 0 ]; then
  names=(); for i in $(seq 1 "$EDITS"); do names+=("$(printf 'app-%04d' "$i")"); done
  edited=$(K edit-cm "$ans" payload drifted "${names[@]}")
  since=$(( edited - t_all ))
  read -r -a lat < <(K wait-cm "$ans" payload "$payload" "$edited" $((interval_s * 12 / 10 + 120)) "${names[@]}")
  [ ${#lat[@]} -eq "$EDITS" ] || fail "waiting for the interval-bound drift correction failed"
  ok=(); for v in "${lat[@]}"; do [ "$v" = timeout ] || ok+=("$v"); done
  [ ${#ok[@]} -eq ${#lat[@]} ] || fail "$(( ${#lat[@]} - ${#ok[@]} )) of $EDITS edits not corrected within 1.2 x $INTERVAL + 2 min"
  read -r p50 lo hi < <(stats "${ok[@]}")
  row "drift, $EDITS edits, interval $INTERVAL: to corrected" "p50 $p50" "min $lo" "max $hi"
  echo "  (edited $(fmt_s "$since") after the last reconcile of every Kustomization: Flux corrects at"
  echo "   its next interval, so an edit at a random moment waits U(0, $INTERVAL), mean half of it)"
else
  echo "drift left to the interval: not measured (FLUX_BENCH_DRIFT_INTERVAL=0); it waits for the next"
  echo "  reconcile of its Kustomization: U(0, $INTERVAL) after a random edit, mean half of it"
fi
