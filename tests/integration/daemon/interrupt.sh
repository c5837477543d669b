#!/usr/bin/env bash
# `gitops run --leader-elect` stopped in the middle of a large apply (3,000 ConfigMaps), against
# the local control plane:
# - SIGTERM: the apply stops between chunks (REC_SYNC_CHUNK objects), the partial sync is
#   recorded (sync.started, "interrupted", with the counts applied), the Lease is released and
#   the process exits 0 before the apply could have finished (fewer objects than desired exist);
#   restarted, it applies the rest and records the sync once;
# - fencing: the Lease taken by another holder mid-apply: the replica stops writing at the next
#   chunk (what exists is exactly what the interrupted record counts), stands by, takes the Lease
#   back once the other holder stops renewing it, and converges;
# - watch events during a sync: an edit made while the apply runs is queued and corrected after
#   it, and one made during a health gate is corrected while the gate still waits.
# Every wait is on a condition with a generous timeout; no wall-clock time is asserted.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../../lib.sh"
need kubectl
G=${GITOPS_BIN:?run through make test}
: "${GITOPS_CLUSTER_DIR:?source build/cluster/env}"
tmp=$(mktemp -d)
p=in$$; env=e$$; ns=interrupt-it-$$; total=3000
lease=gitops-$p-$env
export GITOPS_DATA_DIR=$tmp/data
daemon_pid=
cleanup() { [ -n "$daemon_pid" ] && kill -9 "$daemon_pid" 2>/dev/null; wait 2>/dev/null
  kubectl delete ns "$ns" --wait=false >/dev/null 2>&1
  kubectl -n gitops-system get configmap,lease -o name 2>/dev/null | grep -E "gitops-$p-|gitops-replica-$p|\.$p\.$env\$" | xargs -r kubectl -n gitops-system delete >/dev/null 2>&1
  rm -rf "$tmp"; }
trap cleanup EXIT
wait_for() { local t=$1; shift; local end=$((SECONDS + t)); while [ $SECONDS -lt $end ]; do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done; return 1; }
log_has() { grep -q -- "$1" "$tmp/daemon.log"; }
hist_json() { "$G" history --repo "$repo" --env "$env" --type "$1" ${2:+--sha "$2"} --json 2>/dev/null; }
hist_count() { hist_json "$@" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'; }
count_is() { [ "$(hist_count "$1" "${3:-}")" = "$2" ]; }
applied() { kubectl -n "$ns" get configmap -o name 2>/dev/null | grep -c "/big-"; }
holder() { kubectl -n gitops-system get lease "$lease" -o jsonpath='{.spec.holderIdentity}' 2>/dev/null; }
start_daemon() { "$G" run --repo "$repo" --interval 1s --env "$env" --listen 127.0.0.1:0 --log-format text \
  --leader-elect --identity "$p-r1" --lease-namespace gitops-system --lease-duration 6s >>"$tmp/daemon.log" 2>&1 & daemon_pid=$!; }
kubectl get ns gitops-system >/dev/null 2>&1 || kubectl create ns gitops-system >/dev/null

repo=$tmp/repo; mkdir -p "$repo/app"; cd "$repo"
cat > gitops.yaml <<Y
apiVersion: gitops/v1
kind: Pipeline
name: $p
branch: main
environments:
  - name: $env
    track: main
    namespace: $ns
    apps: [{name: app, path: app}]
    sync: {auto: true, prune: true, selfHeal: true}
Y
printf 'apiVersion: v1\nkind: Namespace\nmetadata: {name: %s}\n' "$ns" > app/ns.yaml
printf 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {color: blue}\n' > app/cm.yaml
git init -q -b main . && git add -A && git -c user.name=t -c user.email=t@t commit -qm one
one=$(git rev-parse HEAD)
start_daemon
if wait_for 120 count_is sync.succeeded 1 "$one"; then ok "the first commit is synced by the leader"; else fail "first sync" "$(tail -20 "$tmp/daemon.log")"; fi

# --- SIGTERM in the middle of a large apply ------------------------------------------------------
big() { for i in $(seq 1 $total); do printf -- '---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: big-%d}\ndata: {v: "%s"}\n' "$i" "$1"; done > app/big.yaml
  git add -A && git -c user.name=t -c user.email=t@t commit -qm "big $1"; }
big 1; two=$(git rev-parse HEAD)
if wait_for 120 log_has "created ConfigMap $ns/big-"; then ok "the large apply started"; else fail "apply started" "$(tail -20 "$tmp/daemon.log")"; fi
kill -TERM "$daemon_pid"; wait "$daemon_pid"; rc=$?; daemon_pid=
expect_eq "SIGTERM in the middle of the apply exits 0" 0 "$rc"
n=$(applied)
echo "     (stopped with $n of $total objects applied)"
if [ "$n" -lt "$total" ]; then ok "it stopped before the apply could finish ($n < $total)"; else fail "stopped mid-apply" "all $n applied"; fi
ev=$(hist_json sync.started "$two")
expect_contains "the partial sync is recorded as interrupted" "interrupted (stopping)" "$ev"
expect_eq "the record counts what exists" "$n" "$(echo "$ev" | python3 -c 'import json,sys; e=json.load(sys.stdin)[0]; print(e["counts"]["created"] + e["counts"]["updated"])' 2>&1)"
expect_eq "it is not recorded as a sync" 0 "$(hist_count sync.succeeded "$two")"
expect_eq "nor as a failure" 0 "$(hist_count sync.failed "$two")"
expect_eq "the Lease was released before the exit" "" "$(holder)"
expect_contains "the log says what was left" "not applied, nothing pruned" "$(cat "$tmp/daemon.log")"
mark=$(wc -l < "$tmp/daemon.log")
since() { tail -n +"$mark" "$tmp/daemon.log" | grep -q -- "$1"; }
start_daemon
if wait_for 120 since "created ConfigMap $ns/big-"; then ok "restarted, it applies the rest"; else fail "restart apply" "$(tail -20 "$tmp/daemon.log")"; fi
# an edit that arrives while the apply runs is queued, not dropped: corrected once it is done
kubectl -n "$ns" patch configmap settings --type merge -p '{"data":{"color":"red"}}' >/dev/null
if wait_for 300 count_is sync.succeeded 1 "$two"; then ok "the rest is applied and the sync recorded"; else fail "converge after SIGTERM" "$(tail -20 "$tmp/daemon.log")"; fi
expect_eq "every object is there" "$total" "$(applied)"
if wait_for 60 since "corrected ConfigMap $ns/settings"; then ok "an edit made during the apply is corrected after it"; else fail "edit during apply" "$(kubectl -n "$ns" get configmap settings -o jsonpath='{.data.color}')"; fi
expect_eq "  and it is blue again" blue "$(kubectl -n "$ns" get configmap settings -o jsonpath='{.data.color}')"

# --- fencing: the Lease lost in the middle of an apply -------------------------------------------
wait_for 60 log_has "watching $((total + 2)) object"
mark=$(wc -l < "$tmp/daemon.log")
big 2; three=$(git rev-parse HEAD)
updated_seen() { tail -n +"$mark" "$tmp/daemon.log" | grep -q "updated ConfigMap $ns/big-"; }
if wait_for 120 updated_seen; then ok "the second large apply started"; else fail "second apply" "$(tail -20 "$tmp/daemon.log")"; fi
# another holder takes the Lease (as a replica would after a missed renewal)
kubectl -n gitops-system patch lease "$lease" --type merge -p '{"spec":{"holderIdentity":"thief"}}' >/dev/null
lost() { tail -n +"$mark" "$tmp/daemon.log" | grep -q "interrupted (the Lease was lost)"; }
if wait_for 60 lost; then ok "the replica stops its apply when its Lease is taken"; else fail "fenced" "$(tail -20 "$tmp/daemon.log")"; fi
n2=$(kubectl -n "$ns" get configmap -o jsonpath='{range .items[*]}{.metadata.name}={.data.v}{"\n"}{end}' | grep -c '^big-.*=2$')
ev=$(hist_json sync.started "$three")
expect_eq "what it wrote is exactly what the interrupted record counts (nothing after the Lease was lost)" "$n2" \
  "$(echo "$ev" | python3 -c 'import json,sys; e=json.load(sys.stdin)[0]; print(e["counts"]["updated"] + e["counts"]["created"])' 2>&1)"
echo "     (fenced with $n2 of $total objects updated; holder now: $(holder))"
if [ "$n2" -lt "$total" ]; then ok "the apply was cut short ($n2 < $total)"; else fail "cut short" "all updated"; fi
expect_eq "the Lease loss is not a daemon error" 0 "$(hist_count daemon.error)"
if wait_for 120 count_is sync.succeeded 1 "$three"; then ok "once the other holder stops renewing, the replica takes the Lease back and converges"; else fail "converge after take-back" "$(tail -20 "$tmp/daemon.log")"; fi
expect_eq "every object has the new version" "$total" "$(kubectl -n "$ns" get configmap -o jsonpath='{range .items[*]}{.metadata.name}={.data.v}{"\n"}{end}' | grep -c '^big-.*=2$')"

# --- self-heal goes on during a health gate -------------------------------------------------------
mark=$(wc -l < "$tmp/daemon.log")
cat > app/web.yaml <<Y
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  progressDeadlineSeconds: 10
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: "nginx:broken"}]}
Y
git add -A && git -c user.name=t -c user.email=t@t commit -qm web
if wait_for 120 since "health gate: waiting"; then ok "a Deployment that never gets ready holds the health gate"; else fail "gate" "$(tail -20 "$tmp/daemon.log")"; fi
kubectl -n "$ns" patch configmap settings --type merge -p '{"data":{"color":"pink"}}' >/dev/null
if wait_for 60 since "corrected ConfigMap $ns/settings"; then ok "an edit during the gate is corrected"; else fail "heal during gate" "$(tail -20 "$tmp/daemon.log")"; fi
wait_for 120 since "failed its health gate"
line_of() { tail -n +"$mark" "$tmp/daemon.log" | grep -n -- "$1" | head -1 | cut -d: -f1; }
c=$(line_of "corrected ConfigMap $ns/settings"); g=$(line_of "failed its health gate")
if [ -n "$c" ] && [ -n "$g" ] && [ "$c" -lt "$g" ]; then ok "  while the gate was still waiting (self-heal does not pause for it)"
else fail "heal before the gate ended" "corrected at line ${c:-none}, gate ended at line ${g:-none}"; fi
kill -TERM "$daemon_pid"; wait "$daemon_pid"; rc=$?; daemon_pid=
expect_eq "a SIGTERM at rest exits 0" 0 "$rc"
expect_rc "gitops history verify accepts what was recorded" 0 "$G" history verify --repo "$repo"
t_done
