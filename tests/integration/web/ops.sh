#!/usr/bin/env bash
# End-to-end tests of `gitops run`'s HTTP surface against the local control plane and a real
# git repository: probes, /metrics scraped and parsed after a sync (counters moved by the
# expected amounts), /api/v1/status and /api/v1/history equal to the CLI's JSON, GitHub and
# GitLab webhooks triggering a fetch and sync (bad or missing signatures refused and counted, a
# push to another branch ignored), JSON log lines, and SIGTERM in the middle of a sync (exit 0,
# the apply stopped between chunks and recorded with what it applied, the next start finishing it).
# Every wait is on a condition with a generous timeout; no wall-clock time is asserted.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../../lib.sh"
need kubectl
need curl
G=${GITOPS_BIN:?run through make test}
: "${GITOPS_CLUSTER_DIR:?source build/cluster/env}"
tmp=$(mktemp -d)
ns=web-it-$$; env=web$$
export GITOPS_DATA_DIR=$tmp/data
daemon_pid=
stop_daemon() { [ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null; daemon_pid=; }
cleanup() { stop_daemon; kubectl delete ns "$ns" --wait=false >/dev/null 2>&1; rm -rf "$tmp"; }
trap cleanup EXIT
wait_for() { local t=$1; shift; local end=$((SECONDS + t)); while [ $SECONDS -lt $end ]; do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done; return 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port); base=http://127.0.0.1:$port
cm_is() { [ "$(kubectl -n "$ns" get configmap "$1" -o jsonpath="{.data.$2}" 2>/dev/null)" = "$3" ]; }
log_has() { grep -q -- "$1" "$tmp/daemon.log"; }
hist_count() { "$G" history --repo "$repo" --env "$env" --type "$1" ${2:+--sha "$2"} --json 2>/dev/null | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'; }
# metric NAME{LABELS}: the sample's value from /metrics, parsed ("" when absent); the label
# pipeline="<this pipeline>" of per-environment samples is left out of NAME
metric() { curl -fsS "$base/metrics" | python3 -c '
import re, sys
want = sys.argv[1]
for line in sys.stdin:
    if line.startswith("#"): continue
    name, _, value = line.rstrip("\n").rpartition(" ")
    if re.sub(r"pipeline=\"[^\"]*\",", "", name) == want: print(value); break' "$1"; }
metric_is() { [ "$(metric "$1")" = "$2" ]; }
metric_ge() { local v; v=$(metric "$1"); [ -n "$v" ] && python3 -c "import sys; sys.exit(0 if float('$v') >= float('$2') else 1)"; }
http_code() { curl -s -o "$tmp/body" -w '%{http_code}' "$@"; }
status_is() { [ "$(http_code "$1")" = "$2" ]; }
secret='hook secret, never logged'
printf '%s\n' "$secret" > "$tmp/webhook-secret"
sign() { printf '%s' "$1" | openssl dgst -sha256 -hmac "$secret" | sed 's/^.*= /sha256=/'; }
github() { http_code -X POST "$base/hooks/github" -H 'Content-Type: application/json' -H "X-GitHub-Event: ${3:-push}" ${2:+-H "X-Hub-Signature-256: $2"} --data-binary "$1"; }
gitlab() { http_code -X POST "$base/hooks/gitlab" -H 'Content-Type: application/json' -H 'X-Gitlab-Event: Push Hook' ${2:+-H "X-Gitlab-Token: $2"} --data-binary "$1"; }
start_daemon() { "$G" run --repo "$repo" --interval 10m --env "$env" --env "$env-prod" --listen "127.0.0.1:$port" \
  --webhook-secret-file "$tmp/webhook-secret" --log-format json >>"$tmp/daemon.log" 2>&1 & daemon_pid=$!; }

"$G" keygen --out "$tmp/alice.key" >/dev/null || fail "keygen"
repo=$tmp/repo; mkdir -p "$repo/app"
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
  - name: $env-prod
    from: $env
    namespace: $ns-prod
    apps: [{name: app, path: app}]
    approval:
      required: 1
      approvers: [{name: alice, key: "$(cat "$tmp/alice.key.pub")"}]
Y
printf 'apiVersion: v1\nkind: Namespace\nmetadata: {name: %s}\n' "$ns" > app/ns.yaml
printf 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {color: blue}\n' > app/cm.yaml
git init -q -b main . && git add -A && git -c user.name=t -c user.email=t@t commit -qm one

# --- probes and the first sync ------------------------------------------------------------------
start_daemon
if wait_for 60 status_is "$base/healthz" 200; then ok "/healthz answers 200"; else fail "/healthz" "$(tail -5 "$tmp/daemon.log")"; fi
if wait_for 120 status_is "$base/readyz" 200; then ok "/readyz turns 200 after the first reconcile"; else fail "/readyz" "$(cat "$tmp/body")"; fi
expect_eq "the first commit is synced" blue "$(kubectl -n "$ns" get configmap settings -o jsonpath='{.data.color}' 2>&1)"

# --- /metrics after one sync --------------------------------------------------------------------
wait_for 60 log_has '"watching 2 object'
expect_eq "Content-Type is the text format 0.0.4" "text/plain; version=0.0.4; charset=utf-8" \
  "$(curl -fsS -o /dev/null -w '%{content_type}' "$base/metrics")"
expect_eq "gitops_sync_total counts the sync" 1 "$(metric "gitops_sync_total{environment=\"$env\",result=\"succeeded\"}")"
expect_eq "per-environment samples carry the pipeline" 1 "$(curl -fsS "$base/metrics" | grep -c "^gitops_sync_total{pipeline=\"[^\"]*\",environment=\"$env\",result=\"succeeded\"} 1$")"
expect_eq "gitops_managed_objects counts the Namespace and the ConfigMap" 2 "$(metric "gitops_managed_objects{environment=\"$env\"}")"
expect_eq "gitops_environment_healthy is 1 after the gate" 1 "$(metric "gitops_environment_healthy{environment=\"$env\"}")"
fetch0=$(metric 'gitops_git_fetch_total{result="succeeded"}')
if [ "${fetch0:-0}" -ge 1 ] 2>/dev/null; then ok "gitops_git_fetch_total counts the fetch"; else fail "git fetch counter" "got '$fetch0'"; fi
if metric_ge "gitops_reconcile_duration_seconds_count{environment=\"$env\"}" 1; then ok "the reconcile histogram has the pass"; else fail "reconcile histogram"; fi
if metric_ge 'gitops_kube_requests_total{verb="PATCH",code="201"}' 1 || metric_ge 'gitops_kube_requests_total{verb="PATCH",code="200"}' 1; then
  ok "gitops_kube_requests_total counts the applies"; else fail "kube request counter" "$(curl -fsS "$base/metrics" | grep kube_requests)"; fi
# every line parses as the text format: HELP/TYPE or `name{labels} value`
bad=$(curl -fsS "$base/metrics" | python3 -c '
import re, sys
sample = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*=\"([^\"\\\\]|\\\\.)*\",?)*\})? (NaN|[+-]Inf|[-+0-9.eE]+)$")
typed = set()
for l in sys.stdin.read().splitlines():
    if l.startswith("# TYPE "):
        n = l.split()[2]
        if n in typed: print("twice:", l)
        typed.add(n)
    elif l.startswith("# HELP "): pass
    elif not sample.match(l): print(l)')
expect_eq "every /metrics line follows the text format" "" "$bad"

# --- the JSON API equals the CLI's JSON ---------------------------------------------------------
api=$(curl -fsS "$base/api/v1/history?env=$env&type=sync.succeeded" | python3 -c 'import json,sys; print([e["id"] for e in json.load(sys.stdin)])')
cli=$("$G" history --repo "$repo" --env "$env" --type sync.succeeded --json | python3 -c 'import json,sys; print([e["id"] for e in json.load(sys.stdin)])')
expect_eq "/api/v1/history?env&type gives the events of gitops history --json" "$cli" "$api"
expect_eq "/api/v1/history refuses an unknown type" 400 "$(http_code "$base/api/v1/history?type=nope")"
st=$(curl -fsS "$base/api/v1/status?env=$env")
expect_contains "/api/v1/status shows the environment synced" '"state": "Synced"' "$st"
expect_contains "/api/v1/status has the recorded sync" "\"synced\": \"$(git rev-parse HEAD)\"" "$st"
# the same JSON as gitops status --json (one library call builds both), --apps included
same_json() { python3 -c 'import json,sys; a=json.load(open(sys.argv[1])); b=json.load(open(sys.argv[2])); sys.exit(0 if a == b else 1)' "$1" "$2"; }
status_same() {
  curl -fsS "$base/api/v1/status?env=$env$1" >"$tmp/api.json" &&
  "$G" status "$env" --repo "$repo" --json $2 >"$tmp/cli.json" 2>/dev/null && same_json "$tmp/api.json" "$tmp/cli.json"; }
if wait_for 30 status_same "" ""; then ok "/api/v1/status equals gitops status --json"
else fail "/api/v1/status equals gitops status --json" "$(diff "$tmp/api.json" "$tmp/cli.json")"; fi
if wait_for 30 status_same "&apps=1" "--apps"; then ok "/api/v1/status?apps=1 equals gitops status --apps --json"
else fail "/api/v1/status?apps=1 equals gitops status --apps --json" "$(diff "$tmp/api.json" "$tmp/cli.json")"; fi
expect_contains "status --apps has a row per app with its source and health" '"source": "plain"' "$(cat "$tmp/cli.json")"
expect_eq "/api/v1/status of an unknown environment is 404" 404 "$(http_code "$base/api/v1/status?env=nope")"
expect_contains "/api/v1/daemon keeps the daemon's own view" '"leader": true' "$(curl -fsS "$base/api/v1/daemon?env=$env")"

# --- a promotion waiting for its approval shows in gitops_promotions_pending --------------------
# (set after each pass of the prod environment's reconciler: wait for its first)
if wait_for 30 metric_is "gitops_promotions_pending{environment=\"$env-prod\"}" 0; then ok "no promotion pending at first"
else fail "no promotion pending at first: $(metric "gitops_promotions_pending{environment=\"$env-prod\"}")"; fi
"$G" promote "$(git rev-parse HEAD)" "$env-prod" --repo "$repo" >/dev/null 2>&1 || fail "promote"

# --- webhooks -----------------------------------------------------------------------------------
sed -i 's/blue/green/' app/cm.yaml && git -c user.name=t -c user.email=t@t commit -qam two
two=$(git rev-parse HEAD)
push="{\"ref\":\"refs/heads/main\",\"after\":\"$two\"}"
f1=$(metric 'gitops_git_fetch_total{result="succeeded"}')
expect_eq "a GitHub push with a bad signature is refused" 401 "$(github "$push" "$(sign x)x")"
expect_eq "a GitHub push without a signature is refused" 401 "$(github "$push")"
expect_eq "a GitLab push with a bad token is refused" 401 "$(gitlab "$push" "nope")"
expect_eq "a signed push to another branch is ignored" 200 "$(github '{"ref":"refs/heads/feature"}' "$(sign '{"ref":"refs/heads/feature"}')")"
expect_contains "  and says so" ignored "$(cat "$tmp/body")"
sleep 1 # (would a refused hook fetch, it would show by now; not a timing assertion)
expect_eq "refused or ignored webhooks trigger no fetch" "$f1" "$(metric 'gitops_git_fetch_total{result="succeeded"}')"
expect_eq "refused webhooks are counted" 2 "$(metric 'gitops_webhook_requests_total{provider="github",result="unauthorized"}')"
expect_eq "a valid GitHub push is accepted" 200 "$(github "$push" "$(sign "$push")")"
if wait_for 30 cm_is settings color green; then ok "the GitHub webhook's push is fetched and synced (interval is 10m)"; else fail "github webhook sync" "$(tail -5 "$tmp/daemon.log")"; fi
expect_eq "the fetch counter moved by one: one fetch shared by the two environments" $((f1 + 1)) "$(metric 'gitops_git_fetch_total{result="succeeded"}')"
if wait_for 30 metric_is "gitops_sync_total{environment=\"$env\",result=\"succeeded\"}" 2; then ok "gitops_sync_total moved to 2"; else fail "sync counter 2"; fi
if wait_for 30 metric_is "gitops_promotions_pending{environment=\"$env-prod\"}" 1; then ok "gitops_promotions_pending counts the gated promotion"; else fail "promotions pending"; fi
sed -i 's/green/yellow/' app/cm.yaml && git -c user.name=t -c user.email=t@t commit -qam three
expect_eq "a valid GitLab push is accepted" 200 "$(gitlab "{\"object_kind\":\"push\",\"ref\":\"refs/heads/main\"}" "$secret")"
if wait_for 30 cm_is settings color yellow; then ok "the GitLab webhook's push is fetched and synced"; else fail "gitlab webhook sync"; fi
expect_eq "the secret is never logged" 0 "$(grep -c "hook secret" "$tmp/daemon.log")"

# --- drift counters -----------------------------------------------------------------------------
# (after the sync and its gate: the daemon ignores watch events while it syncs)
wait_for 60 metric_is "gitops_sync_total{environment=\"$env\",result=\"succeeded\"}" 3
kubectl -n "$ns" patch configmap settings --type merge -p '{"data":{"color":"red"}}' >/dev/null
if wait_for 30 cm_is settings color yellow; then ok "drift corrected"; else fail "drift corrected"; fi
if wait_for 30 metric_is "gitops_drift_corrected_total{environment=\"$env\"}" 1; then ok "gitops_drift_corrected_total is 1"; else fail "drift corrected counter"; fi
expect_eq "gitops_drift_detected_total is 1" 1 "$(metric "gitops_drift_detected_total{environment=\"$env\"}")"

# --- logs: one JSON object per line with the environment -----------------------------------------
badlog=$(python3 -c '
import json, sys
for l in open(sys.argv[1]):
    if not l.startswith("{"): continue
    j = json.loads(l)
    if not all(k in j for k in ("time", "level", "environment", "msg")): print(l)' "$tmp/daemon.log" 2>&1)
expect_eq "every log line is a JSON object with time, level, environment, msg" "" "$badlog"
fields=$(python3 -c '
import json, sys
seen = set()
for l in open(sys.argv[1]):
    if not l.startswith("{"): continue
    j = json.loads(l)
    if j.get("object") == "ConfigMap %s/settings" % sys.argv[2] and "drift" in j["msg"]: seen.add("object")
    if j.get("event") and j["msg"] == "recorded drift.detected" and j.get("app") == "app": seen.add("event")
print(" ".join(sorted(seen)))' "$tmp/daemon.log" "$ns")
expect_eq "drift log lines carry the object, recorded events their id and app" "event object" "$fields"
expect_eq "no log line is anything but JSON (asan aside)" 0 "$(grep -vc -e '^{' -e '^gitops: SIG' "$tmp/daemon.log")"

# --- SIGTERM in the middle of a sync ------------------------------------------------------------
for i in $(seq 1 400); do printf -- '---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: bulk-%d}\ndata: {i: "%d"}\n' "$i" "$i"; done > app/bulk.yaml
git add -A && git -c user.name=t -c user.email=t@t commit -qm four
four=$(git rev-parse HEAD)
github "{\"ref\":\"refs/heads/main\"}" "$(sign '{"ref":"refs/heads/main"}')" >/dev/null
wait_for 120 log_has "created ConfigMap $ns/bulk-"
kill -TERM "$daemon_pid"; wait "$daemon_pid"; rc=$?; daemon_pid=
expect_eq "SIGTERM mid-sync exits 0" 0 "$rc"
n=$(( $(hist_count sync.started "$four") + $(hist_count sync.succeeded "$four") ))
expect_eq "the interrupted sync is recorded" 1 "$n"
applied=$("$G" history --repo "$repo" --env "$env" --sha "$four" --json | python3 -c '
import json, sys
print(sum(e["counts"]["created"] for e in json.load(sys.stdin) if e["type"] in ("sync.started", "sync.succeeded")))')
expect_eq "the record counts the objects that exist (nothing applied after it)" "$(kubectl -n "$ns" get configmap -o name | grep -c bulk-)" "$applied"
expect_eq "nothing of it recorded as failed" 0 "$(hist_count sync.failed "$four")"
start_daemon
if wait_for 120 bash -c "[ \"\$('$G' history --repo '$repo' --env '$env' --type sync.succeeded --sha '$four' --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')\" = 1 ]"; then
  ok "restarted, it finishes the interrupted sync and records it once"; else fail "sync after restart" "$(tail -5 "$tmp/daemon.log")"; fi
expect_eq "every object is there after the restart" 400 "$(kubectl -n "$ns" get configmap -o name | grep -c bulk-)"
stop_daemon
expect_rc "gitops history verify accepts what was recorded" 0 "$G" history verify --repo "$repo"
expect_rc "--listen rejects a name" 2 "$G" run --repo "$repo" --listen localhost --once
expect_rc "--log-format rejects an unknown format" 2 "$G" run --repo "$repo" --log-format xml --once --listen off
t_done
