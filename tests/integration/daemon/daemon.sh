#!/usr/bin/env bash
# End-to-end tests of `gitops run` against the local control plane and a real git repository:
# auto-sync of a new commit; drift (edit, delete) corrected without a manual sync and recorded
# folded; one environment whose cluster cannot be reached while another keeps syncing, its error
# recorded once and shown by status; suspend/resume; the daemon killed (-9) in the middle of a
# sync and restarted (nothing lost, nothing recorded twice); the apiserver restarted while the
# daemon runs (drift still corrected afterwards); SIGTERM stops it with exit 0.
# Every wait is on a condition with a generous timeout; no wall-clock time is asserted.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../../lib.sh"
need kubectl
G=${GITOPS_BIN:?run through make test}
: "${GITOPS_CLUSTER_DIR:?source build/cluster/env}"
tmp=$(mktemp -d)
ns=daemon-it-$$; env=dm$$; far=far$$
export GITOPS_DATA_DIR=$tmp/data
daemon_pid=
stop_daemon() { [ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null; daemon_pid=; }
cleanup() { stop_daemon; kubectl delete ns "$ns" --wait=false >/dev/null 2>&1
  kubectl -n gitops-system get configmap,lease -o name 2>/dev/null | grep -E "\.$env\$" | xargs -r kubectl -n gitops-system delete >/dev/null 2>&1
  rm -rf "$tmp"; }
trap cleanup EXIT

# wait_for TIMEOUT_S CMD...: true once CMD succeeds.
wait_for() { local t=$1; shift; local end=$((SECONDS + t)); while [ $SECONDS -lt $end ]; do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done; return 1; }
cm_is() { [ "$(kubectl -n "$ns" get configmap "$1" -o jsonpath="{.data.$2}" 2>/dev/null)" = "$3" ]; }
log_has() { grep -q -- "$1" "$tmp/daemon.log"; }
hist_count() { "$G" history --repo "$repo" --env "$1" --type "$2" ${3:+--sha "$3"} --json 2>/dev/null | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'; }
count_is() { [ "$(hist_count "$1" "$2" "${4:-}")" = "$3" ]; }
start_daemon() { "$G" run --repo "$repo" --interval 1s --env "$env" --env "$far" --listen 127.0.0.1:0 >>"$tmp/daemon.log" 2>&1 & daemon_pid=$!; }

repo=$tmp/repo; mkdir -p "$repo/app"
# an environment whose cluster is a closed port: it must fail alone
cat > "$tmp/far.kubeconfig" <<Y
apiVersion: v1
kind: Config
clusters: [{name: far, cluster: {server: "https://127.0.0.1:9", insecure-skip-tls-verify: true}}]
users: [{name: far, user: {token: nope}}]
contexts: [{name: far, context: {cluster: far, user: far}}]
current-context: far
Y
cd "$repo"
cat > gitops.yaml <<Y
apiVersion: gitops/v1
kind: Pipeline
branch: main
environments:
  - name: $env
    track: main
    namespace: $ns
    apps: [{name: app, path: app}]
    sync: {auto: true, prune: true, selfHeal: true}
    rollback: {onFailure: true, healthTimeout: 90s}
  - name: stg$$
    from: $env
    namespace: $ns-stg
    apps: [{name: app, path: app}]
  - name: $far
    track: main
    namespace: $ns
    cluster: {kubeconfig: $tmp/far.kubeconfig}
    apps: [{name: app, path: app}]
    sync: {auto: true, prune: true, selfHeal: true}
Y
cat > app/ns.yaml <<Y
apiVersion: v1
kind: Namespace
metadata: {name: $ns}
Y
cat > app/cm.yaml <<'Y'
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {color: blue}
Y
git init -q -b main . && git add -A && git -c user.name=t -c user.email=t@t commit -qm one

# --- auto-sync: the first commit, then a new one, without any gitops sync ---------------------
start_daemon
if wait_for 90 cm_is settings color blue; then ok "the daemon syncs the tracked branch"; else fail "initial sync" "$(tail -20 "$tmp/daemon.log")"; fi
sed -i 's/blue/green/' app/cm.yaml && git -c user.name=t -c user.email=t@t commit -qam two
two=$(git rev-parse HEAD)
if wait_for 60 cm_is settings color green; then ok "a new commit reaches the environment by itself"; else fail "auto-sync" "$(tail -20 "$tmp/daemon.log")"; fi
if wait_for 30 count_is "$env" sync.succeeded 1 "$two"; then ok "the sync of the new commit is recorded once"; else fail "sync recorded" "got $(hist_count "$env" sync.succeeded "$two")"; fi

# --- the unreachable environment fails alone, its error recorded once and shown ------------------
if wait_for 60 count_is "$far" daemon.error 1; then ok "the unreachable cluster's error is recorded"; else fail "daemon.error" "got $(hist_count "$far" daemon.error)"; fi
wait_for 120 log_has "$far: error (attempt 3"
expect_eq "a steady failure is recorded only once (retries with backoff)" 1 "$(hist_count "$far" daemon.error)"
st=$("$G" status --repo "$repo" 2>&1)
expect_contains "status shows the daemon's last error of the unreachable environment" "gitops run:" "$st"
expect_contains "status shows the other environment synced" "Synced" "$(echo "$st" | grep "^$env ")"

# --- self-heal: an edit and a delete are corrected without a sync, recorded folded --------------
wait_for 30 log_has "$env: watching"
kubectl -n "$ns" patch configmap settings --type merge -p '{"data":{"color":"red"}}' >/dev/null
if wait_for 20 cm_is settings color green; then ok "an edit is corrected by self-heal"; else fail "edit corrected" "$(tail -20 "$tmp/daemon.log")"; fi
if wait_for 30 count_is "$env" drift.detected 1; then ok "the drift is recorded (drift.detected)"; else fail "drift.detected" "got $(hist_count "$env" drift.detected)"; fi
# a fight: the same object changed again and again is folded into the open episode
for i in 1 2 3; do
  kubectl -n "$ns" patch configmap settings --type merge -p "{\"data\":{\"color\":\"red$i\"}}" >/dev/null
  wait_for 20 cm_is settings color green
done
if wait_for 60 count_is "$env" drift.corrected 1; then ok "the episode is closed by one drift.corrected"; else fail "drift.corrected" "got $(hist_count "$env" drift.corrected)"; fi
expect_eq "repeated drift of one object is folded (one drift.detected)" 1 "$(hist_count "$env" drift.detected)"
ev=$("$G" history --repo "$repo" --env "$env" --type drift.corrected --json)
expect_contains "the folded event carries the count and says it was a fight" '"count": 4' "$ev"
expect_contains "the folded event names the object" "ConfigMap $ns/settings" "$ev"
kubectl -n "$ns" delete configmap settings >/dev/null
if wait_for 20 cm_is settings color green; then ok "a deleted object is recreated by self-heal"; else fail "delete corrected"; fi
lat=$(grep -o "corrected ConfigMap $ns/settings [0-9]* ms" "$tmp/daemon.log" | awk '{print $4}' | sort -n | tail -1)
echo "     (slowest correction seen: ${lat:-?} ms after the watch event)"

# --- suspend: no sync, no heal, drift still reported; resume catches up ------------------------
# (the deletion's episode closes first: a new drift within it would be folded into it)
if wait_for 60 count_is "$env" drift.corrected 2; then ok "the deletion's episode is closed too"; else fail "second drift.corrected"; fi
expect_rc "gitops suspend" 0 "$G" suspend "$env" --repo "$repo" --reason "maintenance"
expect_rc "a second suspend is refused" 7 "$G" suspend "$env" --repo "$repo"
expect_contains "status shows the suspension" "suspended by" "$("$G" status "$env" --repo "$repo" 2>&1)"
wait_for 30 log_has "$env: suspended"
before=$(hist_count "$env" drift.detected)
kubectl -n "$ns" patch configmap settings --type merge -p '{"data":{"color":"pink"}}' >/dev/null
if wait_for 30 count_is "$env" drift.detected $((before + 1)); then ok "drift of a suspended environment is still reported"; else fail "suspended drift reported"; fi
expect_eq "drift of a suspended environment is not corrected" pink "$(kubectl -n "$ns" get configmap settings -o jsonpath='{.data.color}')"
sed -i 's/green/yellow/' app/cm.yaml && git -c user.name=t -c user.email=t@t commit -qam three
three=$(git rev-parse HEAD)
wait_for 30 log_has "suspended: OutOfSync at ${three:0:12}"
expect_eq "a suspended environment does not sync a new commit" pink "$(kubectl -n "$ns" get configmap settings -o jsonpath='{.data.color}')"
expect_rc "gitops resume ends the suspension" 0 "$G" resume "$env" --repo "$repo"
if wait_for 60 cm_is settings color yellow; then ok "after resume the new commit is synced"; else fail "resume sync" "$(tail -20 "$tmp/daemon.log")"; fi

# --- killed in the middle of a sync, restarted: converges, nothing lost or recorded twice -------
for i in $(seq 1 1000); do printf -- '---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: bulk-%d}\ndata: {i: "%d"}\n' "$i" "$i"; done > app/bulk.yaml
git add -A && git -c user.name=t -c user.email=t@t commit -qm four
four=$(git rev-parse HEAD)
wait_for 120 log_has "created ConfigMap $ns/bulk-"
kill -9 "$daemon_pid"; wait "$daemon_pid" 2>/dev/null; daemon_pid=
n_before=$(kubectl -n "$ns" get configmap -o name | grep -c bulk-)
echo "     (killed with $n_before of 1000 objects applied)"
expect_eq "the interrupted sync is not recorded" 0 "$(hist_count "$env" sync.succeeded "$four")"
start_daemon
if wait_for 120 count_is "$env" sync.succeeded 1 "$four"; then ok "restarted, the daemon finishes the sync and records it"; else fail "resync after kill" "$(tail -20 "$tmp/daemon.log")"; fi
expect_eq "every object is there after the restart" 1000 "$(kubectl -n "$ns" get configmap -o name | grep -c bulk-)"
expect_eq "the sync is recorded once" 1 "$(hist_count "$env" sync.succeeded "$four")"
expect_eq "no sync of that commit failed" 0 "$(hist_count "$env" sync.failed "$four")"

# --- the apiserver restarted while the daemon runs: drift still corrected afterwards ----------
wait_for 60 log_has "$env: watching 1002"
"$here/../../testenv/apiserver-stop.sh" "$GITOPS_CLUSTER_DIR"
sleep 2 # let the watches notice (not an assertion)
"$here/../../testenv/apiserver-start.sh" "$GITOPS_CLUSTER_DIR" || fail "apiserver restart"
kubectl -n "$ns" patch configmap bulk-7 --type merge -p '{"data":{"i":"x"}}' >/dev/null
if wait_for 60 cm_is bulk-7 i 7; then ok "drift is corrected after an apiserver restart"; else fail "heal after apiserver restart" "$(tail -20 "$tmp/daemon.log")"; fi

# --- health gate and automatic rollback of a broken commit --------------------------------------
web() { cat > app/web.yaml <<Y
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  progressDeadlineSeconds: 10
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: "nginx:$1"}]}
Y
git add -A && git -c user.name=t -c user.email=t@t commit -qm "web $1"; }
image() { kubectl -n "$ns" get deployment web -o jsonpath='{.spec.template.spec.containers[0].image}' 2>/dev/null; }
image_is() { [ "$(image)" = "$1" ]; }
web 1.27; good=$(git rev-parse HEAD)
if wait_for 120 count_is "$env" sync.succeeded 1 "$good"; then ok "a Deployment that rolls out passes the health gate"; else fail "gate of a good commit" "$(tail -20 "$tmp/daemon.log")"; fi
expect_contains "the sync was recorded after the gate" "health gate passed" "$(cat "$tmp/daemon.log")"
web broken; bad=$(git rev-parse HEAD)
if wait_for 180 count_is "$env" rollback 1; then ok "a commit whose Deployment never gets ready is rolled back"; else fail "automatic rollback" "$(tail -30 "$tmp/daemon.log")"; fi
rb=$("$G" history --repo "$repo" --env "$env" --type rollback --json)
expect_contains "the rollback names the failed commit" "\"previous\": \"$bad\"" "$rb"
expect_contains "the rollback names the failed object" "Deployment $ns/web" "$rb"
expect_contains "the rollback is automatic" '"trigger": "auto"' "$rb"
expect_eq "the failed commit is recorded as sync.failed" 1 "$(hist_count "$env" sync.failed "$bad")"
expect_eq "the failed commit never counts as a healthy deploy" 0 "$(hist_count "$env" sync.succeeded "$bad")"
expect_eq "its health is recorded as degraded" 1 "$(hist_count "$env" health.degraded)"
if wait_for 120 image_is nginx:1.27; then ok "the last healthy commit is deployed again"; else fail "rolled back image" "$(image)"; fi
if wait_for 120 count_is "$env" health.recovered 1; then ok "its health is recorded as recovered"; else fail "health.recovered"; fi
expect_rc "the rolled-back commit is refused for promotion" 7 "$G" promote "$bad" "stg$$" --repo "$repo"
expect_contains "the refusal says why" "rolled back" "$out"
st=$("$G" status "$env" --repo "$repo" 2>&1)
expect_contains "status shows the rollback pin" "pinned to ${good:0:12} by rollback" "$st"
web 1.28; fixed=$(git rev-parse HEAD)
expect_contains "a later commit does not override the rollback" "${good:0:12}" "$("$G" status "$env" --repo "$repo" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["target"])')"
expect_rc "gitops resume drops the rollback pin" 0 "$G" resume "$env" --repo "$repo"
if wait_for 120 image_is nginx:1.28; then ok "after resume the branch head is deployed"; else fail "resume after rollback" "$(image)"; fi
# status --apps judges health on the whole live objects (a plan cuts in-sync ones down otherwise)
apps_json() { "$G" status "$env" --repo "$repo" --apps --json 2>/dev/null; }
apps_healthy() { [ "$(apps_json | python3 -c 'import json,sys; print(" ".join(a["health"] for a in json.load(sys.stdin)[0]["apps"]))' 2>/dev/null)" = Healthy ]; }
if wait_for 120 apps_healthy; then ok "status --apps: the app with a rolled-out Deployment is Healthy"
else fail "status --apps health" "$("$G" status "$env" --repo "$repo" --apps 2>&1)"; fi

# --- SIGTERM: a clean stop ---------------------------------------------------------------------
kill -TERM "$daemon_pid"; wait "$daemon_pid"; rc=$?; daemon_pid=
expect_eq "SIGTERM stops the daemon with exit 0" 0 "$rc"
expect_rc "gitops history verify accepts what the daemon recorded" 0 "$G" history verify --repo "$repo"
expect_rc "run --interval rejects a bad duration" 2 "$G" run --repo "$repo" --interval soon --listen off
expect_rc "run --env rejects an unknown environment" 3 "$G" run --repo "$repo" --env nope --once --listen off
t_done
