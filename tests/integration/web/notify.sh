#!/usr/bin/env bash
# Outgoing notifications end to end: gitops.yaml's `notifications:` with a signed JSON webhook
# and a Slack-format sink, delivered by `gitops run` to a local receiver (python3 http.server)
# that refuses the first attempt with 503: the daemon retries, the signature checks out with the
# shared secret, the Slack payload has text and blocks, the URL and secret never appear in the
# log, a change of `notifications:` on the main branch applies without a restart, and a bad
# `notifications:` entry is refused at start naming gitops.yaml's line.
# Every wait is on a condition with a generous timeout; no wall-clock time is asserted.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../../lib.sh"
need kubectl
need python3
G=${GITOPS_BIN:?run through make test}
: "${GITOPS_CLUSTER_DIR:?source build/cluster/env}"
tmp=$(mktemp -d)
ns=notify-it-$$; env=nt$$
export GITOPS_DATA_DIR=$tmp/data
daemon_pid=; recv_pid=
cleanup() { [ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null; [ -n "$recv_pid" ] && kill "$recv_pid" 2>/dev/null
  wait 2>/dev/null; kubectl delete ns "$ns" --wait=false >/dev/null 2>&1; rm -rf "$tmp"; }
trap cleanup EXIT
wait_for() { local t=$1; shift; local end=$((SECONDS + t)); while [ $SECONDS -lt $end ]; do "$@" >/dev/null 2>&1 && return 0; sleep 0.3; done; return 1; }
secret='notify-secret-xyz'
printf '%s\n' "$secret" > "$tmp/hook-secret"

# the receiver: the first POST to /hook gets 503, then 200; every request is written down with
# whether its X-Gitops-Signature is the HMAC-SHA256 of the body with the secret
cat > "$tmp/recv.py" <<'PY'
import hashlib, hmac, http.server, json, sys
secret, out = sys.argv[1].encode(), sys.argv[2]
state = {"first": True}
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        sig = self.headers.get("X-Gitops-Signature", "")
        good = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
        code = 200
        if self.path == "/hook" and state["first"]:
            state["first"], code = False, 503
        with open(out, "a") as f:
            f.write(json.dumps({"path": self.path, "code": code, "signed": hmac.compare_digest(sig, good),
                                "event": self.headers.get("X-Gitops-Event"), "body": json.loads(body)}) + "\n")
        self.send_response(code); self.end_headers(); self.wfile.write(b"ok")
    def log_message(self, *a): pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
PY
python3 -u "$tmp/recv.py" "$secret" "$tmp/received" > "$tmp/recv.port" & recv_pid=$!
wait_for 30 test -s "$tmp/recv.port"
rport=$(head -1 "$tmp/recv.port")
echo "http://127.0.0.1:$rport/hook" > "$tmp/hook-url"
export NOTIFY_SLACK_URL="http://127.0.0.1:$rport/slack"

repo=$tmp/repo; mkdir -p "$repo/app"; cd "$repo"
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
notifications:
  - name: audit
    type: webhook
    urlFrom: {file: $tmp/hook-url}
    secretFrom: {file: $tmp/hook-secret}
    events: [sync.succeeded, drift.detected]
  - name: chat
    type: slack
    urlFrom: {env: NOTIFY_SLACK_URL}
    events: [drift.detected]
    environments: [$env]
Y
printf 'apiVersion: v1\nkind: Namespace\nmetadata: {name: %s}\n' "$ns" > app/ns.yaml
printf 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {color: blue}\n' > app/cm.yaml
git init -q -b main . && git add -A && git -c user.name=t -c user.email=t@t commit -qm one

got() { python3 -c '
import json, sys
n = 0
for l in open(sys.argv[1]):
    r = json.loads(l)
    if r["path"] == sys.argv[2] and r["event"] == sys.argv[3] and r["code"] == int(sys.argv[4]): n += 1
print(n)' "$tmp/received" "$@" 2>/dev/null || echo 0; }
got_is() { [ "$(got "$1" "$2" "$3")" = "$4" ]; }

"$G" run --repo "$repo" --interval 1s --env "$env" --listen off --log-format text >"$tmp/daemon.log" 2>&1 & daemon_pid=$!
if wait_for 120 got_is /hook sync.succeeded 200 1; then ok "sync.succeeded is delivered to the webhook"; else fail "webhook delivery" "$(cat "$tmp/received" 2>&1)" "$(tail -5 "$tmp/daemon.log")"; fi
expect_eq "after a refused (503) first attempt" 1 "$(got /hook sync.succeeded 503)"
expect_contains "the retry is logged, naming the sink" "notification audit: sync.succeeded" "$(cat "$tmp/daemon.log")"
expect_eq "every webhook delivery carries a valid X-Gitops-Signature" "" \
  "$(python3 -c 'import json,sys; print("".join(l for l in open(sys.argv[1]) if json.loads(l)["path"]=="/hook" and not json.loads(l)["signed"]))' "$tmp/received")"
body=$(python3 -c 'import json,sys; print([json.loads(l)["body"] for l in open(sys.argv[1]) if json.loads(l)["code"]==200][0])' "$tmp/received")
expect_contains "the webhook body is the recorded event" "'type': 'sync.succeeded'" "$body"
expect_contains "  with its environment" "'environment': '$env'" "$body"
expect_eq "no Slack message for an event it did not ask for" 0 "$(got /slack sync.succeeded 200)"

wait_for 60 grep -q "$env: watching" "$tmp/daemon.log"
kubectl -n "$ns" patch configmap settings --type merge -p '{"data":{"color":"red"}}' >/dev/null
if wait_for 60 got_is /slack drift.detected 200 1; then ok "drift.detected reaches Slack"; else fail "slack delivery" "$(cat "$tmp/received")"; fi
if wait_for 60 got_is /hook drift.detected 200 1; then ok "  and the webhook"; else fail "webhook drift delivery"; fi
slack=$(python3 -c 'import json,sys; print([json.loads(l)["body"] for l in open(sys.argv[1]) if json.loads(l)["path"]=="/slack"][0])' "$tmp/received")
expect_contains "the Slack payload has a text" "'text': '" "$slack"
expect_contains "  and mrkdwn blocks naming the object" "ConfigMap $ns/settings" "$slack"
expect_eq "the URL is never logged" 0 "$(grep -c "127.0.0.1:$rport" "$tmp/daemon.log")"
expect_eq "the secret is never logged" 0 "$(grep -c "$secret" "$tmp/daemon.log")"

# notifications: re-read when gitops.yaml changes on the main branch, without a restart
python3 - gitops.yaml <<'PY'
import sys
p = sys.argv[1]; s = open(p).read()
s = s.replace("    events: [drift.detected]\n    environments:", "    events: [drift.detected, sync.succeeded]\n    environments:")
open(p, "w").write(s)
PY
sed -i 's/blue/green/' app/cm.yaml && git -c user.name=t -c user.email=t@t commit -qam "chat hears of syncs too"
if wait_for 60 got_is /slack sync.succeeded 200 1; then ok "a sink's new event type in gitops.yaml applies without a restart"; else fail "notifications reload" "$(tail -10 "$tmp/daemon.log")"; fi
expect_contains "  and the reload is logged" "notifications: 2 sink(s) from gitops.yaml at $(git rev-parse --short=12 HEAD)" "$(cat "$tmp/daemon.log")"
kill -TERM "$daemon_pid"; wait "$daemon_pid"; rc=$?; daemon_pid=
expect_eq "SIGTERM exits 0 with notifications running" 0 "$rc"

# a bad entry is refused at start, naming the file and line
sed -i 's/events: \[drift.detected, sync.succeeded\]/events: [drift.detectd]/' gitops.yaml && git -c user.name=t -c user.email=t@t commit -qam bad
expect_rc "an unknown event type is refused at start (exit 3)" 3 "$G" run --repo "$repo" --env "$env" --listen off
expect_contains "  naming gitops.yaml's line" "gitops.yaml:" "$out"
expect_contains "  and the type" "drift.detectd" "$out"
sed -i 's/urlFrom: {env: NOTIFY_SLACK_URL}/url: http:\/\/example/' gitops.yaml && git -c user.name=t -c user.email=t@t commit -qam bad2
expect_rc "a URL written in gitops.yaml is refused" 3 "$G" run --repo "$repo" --env "$env" --listen off
t_done
