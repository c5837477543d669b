#!/usr/bin/env bash
# One `gitops run` serving two pipelines (--repo twice), both with an environment named dev,
# against the local control plane: both are synced, each into its own state branch; /metrics
# carries the pipeline label; /api/v1/status lists both; /api/v1/history?pipeline= reads the one
# asked for; a commit to one pipeline moves only that one; with leader election each pipeline's
# environment has its own Lease, and a second replica serving the same two pipelines takes its
# fair share (one each).
# Every wait is on a condition with a generous timeout; no wall-clock time is asserted.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../../lib.sh"
need kubectl
need curl
G=${GITOPS_BIN:?run through make test}
: "${GITOPS_CLUSTER_DIR:?source build/cluster/env}"
tmp=$(mktemp -d)
pa=pa$$; pb=pb$$
declare -A pid port
cleanup() { for r in r1 r2; do [ -n "${pid[$r]:-}" ] && kill -9 "${pid[$r]}" 2>/dev/null; done; wait 2>/dev/null
  kubectl delete ns "$pa-dev" "$pb-dev" --wait=false >/dev/null 2>&1
  kubectl -n gitops-system get configmap,lease -o name 2>/dev/null | grep -E "gitops-($pa|$pb)-|gitops-replica-mp$$|\.($pa|$pb)\.dev\$" | xargs -r kubectl -n gitops-system delete >/dev/null 2>&1
  rm -rf "$tmp"; }
trap cleanup EXIT
wait_for() { local t=$1; shift; local end=$((SECONDS + t)); while [ $SECONDS -lt $end ]; do "$@" >/dev/null 2>&1 && return 0; sleep 0.3; done; return 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cm_is() { [ "$(kubectl -n "$1-dev" get configmap settings -o jsonpath='{.data.color}' 2>/dev/null)" = "$2" ]; }
metric() { curl -fsS "http://127.0.0.1:${port[r1]}/metrics" | python3 -c '
import sys
want = sys.argv[1]
for line in sys.stdin:
    if line.startswith("#"): continue
    name, _, value = line.rstrip("\n").rpartition(" ")
    if name == want: print(value); break' "$1"; }
metric_is() { [ "$(metric "$1")" = "$2" ]; }
holder() { kubectl -n gitops-system get lease "gitops-$1-dev" -o jsonpath='{.spec.holderIdentity}' 2>/dev/null; }
start() { local r=$1; port[$r]=$(free_port)
  GITOPS_DATA_DIR=$tmp/data-$r "$G" run --repo "$tmp/$pa" --repo "$tmp/$pb" --interval 1s --listen "127.0.0.1:${port[$r]}" \
    --leader-elect --identity "mp$$-$r" --lease-namespace gitops-system --lease-duration 6s --log-format text \
    >>"$tmp/$r.log" 2>&1 & pid[$r]=$!; }
kubectl get ns gitops-system >/dev/null 2>&1 || kubectl create ns gitops-system >/dev/null

for p in $pa $pb; do
  mkdir -p "$tmp/$p/app"; cd "$tmp/$p"
  cat > gitops.yaml <<Y
apiVersion: gitops/v1
kind: Pipeline
name: $p
branch: main
environments:
  - {name: dev, track: main, namespace: $p-dev, apps: [{name: app, path: app}], sync: {auto: true, selfHeal: true}}
Y
  printf 'apiVersion: v1\nkind: Namespace\nmetadata: {name: %s-dev}\n' "$p" > app/ns.yaml
  printf 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {color: blue}\n' > app/cm.yaml
  git init -q -b main . && git add -A && git -c user.name=t -c user.email=t@t commit -qm one
done

start r1
if wait_for 120 cm_is $pa blue && wait_for 60 cm_is $pb blue; then ok "one process syncs both pipelines"; else fail "both synced" "$(tail -20 "$tmp/r1.log")"; fi
for p in $pa $pb; do
  n=$("$G" history --repo "$tmp/$p" --env dev --type sync.succeeded --json 2>/dev/null | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
  expect_eq "$p's sync is recorded in its own state branch" 1 "$n"
  expect_eq "$p's Lease is held by the replica" "mp$$-r1" "$(holder $p)"
done
expect_contains "log lines name the pipeline and the environment" "$pb/dev: synced" "$(cat "$tmp/r1.log")"
if wait_for 30 metric_is "gitops_sync_total{pipeline=\"$pa\",environment=\"dev\",result=\"succeeded\"}" 1; then ok "gitops_sync_total carries the pipeline label ($pa)"; else fail "metric $pa" "$(curl -fsS "http://127.0.0.1:${port[r1]}/metrics" | grep sync_total)"; fi
expect_eq "  and counts the other pipeline apart" 1 "$(metric "gitops_sync_total{pipeline=\"$pb\",environment=\"dev\",result=\"succeeded\"}")"
expect_eq "gitops_managed_objects per pipeline" 2 "$(metric "gitops_managed_objects{pipeline=\"$pb\",environment=\"dev\"}")"
st=$(curl -fsS "http://127.0.0.1:${port[r1]}/api/v1/status")
expect_eq "/api/v1/status lists both pipelines' dev" "$pa/dev $pb/dev" "$(echo "$st" | python3 -c 'import json,sys; print(" ".join(sorted("%s/%s" % (r["pipeline"], r["environment"]) for r in json.load(sys.stdin))))')"
expect_eq "  each with its own state branch's last sync" "2" "$(echo "$st" | python3 -c 'import json,sys; print(sum(1 for r in json.load(sys.stdin) if len(r.get("synced", "")) == 40))')"
h=$(curl -fsS "http://127.0.0.1:${port[r1]}/api/v1/history?pipeline=$pb&type=sync.succeeded")
expect_eq "/api/v1/history?pipeline= reads that pipeline's history" "$(cd "$tmp/$pb" && git rev-parse HEAD)" "$(echo "$h" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["sha"])')"
expect_eq "an unknown pipeline is a 404" 404 "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:${port[r1]}/api/v1/history?pipeline=nope")"

# --- a commit to one pipeline moves that one only ---------------------------------------------------
cd "$tmp/$pb" && sed -i 's/blue/green/' app/cm.yaml && git -c user.name=t -c user.email=t@t commit -qam two
if wait_for 60 cm_is $pb green; then ok "a commit to $pb reaches its dev"; else fail "pb commit" "$(tail -20 "$tmp/r1.log")"; fi
expect_eq "  and $pa's dev is untouched" blue "$(kubectl -n "$pa-dev" get configmap settings -o jsonpath='{.data.color}')"

# --- a second replica of the same two pipelines takes its fair share -------------------------------
start r2
spread() { [ "$(holder $pa)" != "$(holder $pb)" ] && [ -n "$(holder $pa)" ] && [ -n "$(holder $pb)" ]; }
if wait_for 120 spread; then ok "two replicas hold one Lease each ($pa: $(holder $pa), $pb: $(holder $pb))"; else fail "fair share" "$pa: $(holder $pa), $pb: $(holder $pb)"; fi
cd "$tmp/$pa" && sed -i 's/blue/yellow/' app/cm.yaml && git -c user.name=t -c user.email=t@t commit -qam three
if wait_for 60 cm_is $pa yellow; then ok "after the hand-over both pipelines still sync"; else fail "sync after spread" "$(tail -5 "$tmp/r1.log")" "$(tail -5 "$tmp/r2.log")"; fi
for r in r1 r2; do kill -TERM "${pid[$r]}"; wait "${pid[$r]}"; rc=$?; pid[$r]=; expect_eq "SIGTERM stops $r with exit 0" 0 "$rc"; done
expect_rc "a pipeline given twice is refused (exit 3)" 3 "$G" run --repo "$tmp/$pa" --repo "$tmp/$pa" --listen off --once
expect_contains "  naming it" "same pipeline $pa" "$out"
t_done
