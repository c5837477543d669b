#!/usr/bin/env bash
# The state branch under stress (no cluster needed): two promote processes racing on one
# environment both land in order; many writers at once lose nothing (local worktree repository,
# local bare repository, and a file:// remote with fetch + push); a writer killed in the middle
# of an append leaves the branch valid; `history verify` catches tampered events and rewrites.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../../lib.sh"
G=${GITOPS_BIN:?run through make test}
tmp=$(mktemp -d)
export GITOPS_DATA_DIR=$tmp/data
unset GITLAB_USER_LOGIN GITHUB_ACTOR CI GITLAB_CI GITHUB_ACTIONS GITOPS_STATE_REPO GITOPS_STATE_BRANCH
trap 'rm -rf "$tmp"' EXIT
count() { git -C "$1" rev-list --count "${2:-gitops/state}" 2>/dev/null || echo 0; }
parents_ok() { git -C "$1" rev-list --parents gitops/state | awk 'NF > 2 {bad=1} END {print bad ? "merge" : "linear"}'; }

repo=$tmp/repo; mkdir -p "$repo/app"; cd "$repo"
cat > gitops.yaml <<'Y'
apiVersion: gitops/v1
kind: Pipeline
branch: main
environments:
  - {name: dev, track: main, namespace: d, apps: [{name: web, path: app}]}
  - {name: staging, from: dev, namespace: s, apps: [{name: web, path: app}]}
Y
printf 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n' > app/a.yaml
git init -q -b main && git add -A && git -c user.name=t -c user.email=t@t commit -qm one && C1=$(git rev-parse HEAD)
echo 2 >> app/a.yaml && git -c user.name=t -c user.email=t@t commit -qam two && C2=$(git rev-parse HEAD)
for c in "$C1" "$C2"; do "$G" history record --type sync.succeeded --env dev --sha "$c" --failed 0 >/dev/null || fail "record"; done

# --- two promote processes racing on one environment
"$G" render dev >/dev/null 2>&1 # the manifests mirror exists before the race (its creation is manifests/' business)
for round in 1 2 3 4 5; do
  before=$(count "$repo")
  "$G" promote "$C1" staging >"$tmp/p1" 2>&1 & a=$!
  "$G" promote "$C2" staging >"$tmp/p2" 2>&1 & b=$!
  wait $a; ra=$?; wait $b; rb=$?
  [ "$ra$rb" = 00 ] || fail "round $round: both promotes exit 0" "$(cat "$tmp/p1" "$tmp/p2")"
  # the second to land is the pin; the chain holds both, in the order they landed
  last=$(git log -1 --format=%B gitops/state | python3 -c 'import json,sys; print(json.load(sys.stdin)["sha"])')
  pin=$(git show gitops/state:environments/staging.json | python3 -c 'import json,sys; print(json.load(sys.stdin)["pinned"])')
  [ "$last" = "$pin" ] || fail "round $round: the pin is the last promotion landed"
  # the next round promotes both again: make them new by recording a resync in between
  "$G" history record --type sync.succeeded --env dev --sha "$C1" --failed 0 >/dev/null
  added=$(( $(count "$repo") - before ))
  # C1 and C2: each lands once unless the pin was already that SHA (then: same promotion)
  [ "$added" -ge 2 ] && [ "$added" -le 3 ] || fail "round $round: promotions landed ($added commits)"
done
ok "racing promotes: both land, pin = last landed, 5 rounds"
expect_eq "racing promotes: chain linear" linear "$(parents_ok "$repo")"

# --- many writers at once: nothing lost
stress() { # stress REPO_ARGS... : 6 processes x 12 appends
  local pids=() i
  for i in 1 2 3 4 5 6; do
    ( for j in $(seq 1 12); do "$G" history record --type drift.detected --env "w$i" --reason "n$j" "$@" >/dev/null || echo "lost w$i n$j"; done ) >"$tmp/w$i" 2>&1 &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p"; done
  cat "$tmp"/w[1-6]
}
before=$(count "$repo")
lost=$(stress)
expect_eq "worktree repo: no append failed" "" "$lost"
expect_eq "worktree repo: 72 concurrent appends all landed" $((before + 72)) "$(count "$repo")"
expect_eq "worktree repo: chain linear" linear "$(parents_ok "$repo")"
expect_eq "worktree repo: every writer's events present" 72 "$("$G" history --type drift.detected --json | python3 -c 'import json,sys; a=json.load(sys.stdin); print(len({(e["environment"], e["reason"]) for e in a}))')"

bare=$tmp/state.git; git init -q --bare "$bare"
lost=$(stress --state-repo "$bare")
expect_eq "bare repo: no append failed" "" "$lost"
expect_eq "bare repo: 72 concurrent appends all landed" 72 "$(count "$bare")"
expect_eq "bare repo: chain linear" linear "$(parents_ok "$bare")"
expect_rc "bare repo: verify" 0 "$G" history verify --state-repo "$bare"

# a file:// URL is this machine: the local compare-and-swap
fileurl=$tmp/fileurl.git; git init -q --bare "$fileurl"
lost=$(stress --state-repo "file://$fileurl")
expect_eq "file:// repo: no append failed" "" "$lost"
expect_eq "file:// repo: 72 concurrent appends all landed" 72 "$(count "$fileurl")"

# a real remote: smart HTTP (git http-backend), separate mirrors per writer, fetch + push
mkdir -p "$tmp/srv" && git init -q --bare "$tmp/srv/state.git"
python3 "$here/../../fixtures/git_http_server.py" "$tmp/srv" pw "$tmp/port" & srv=$!
trap 'kill $srv 2>/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 50); do [ -s "$tmp/port" ] && break; sleep 0.1; done
url="http://127.0.0.1:$(cat "$tmp/port")/state.git"
export GITOPS_GIT_TOKEN=pw
pids=()
for i in 1 2 3 4; do
  ( for j in 1 2 3 4 5 6; do GITOPS_DATA_DIR=$tmp/data-$i "$G" history record --type health.degraded --env "r$i" --state-repo "$url" >/dev/null || echo lost; done ) >"$tmp/r$i" 2>&1 &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
remote=$tmp/srv/state.git
expect_eq "remote (http, fetch + push, separate mirrors): no append failed" "" "$(cat "$tmp"/r[1-4])"
expect_eq "remote: 24 concurrent appends all landed" 24 "$(count "$remote")"
expect_eq "remote: chain linear" linear "$(parents_ok "$remote")"
expect_rc "remote: verify" 0 "$G" history verify --state-repo "$url"
expect_eq "remote: query through the mirror" 6 "$("$G" history --state-repo "$url" --env r3 --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')"
expect_rc "remote: wrong token is an error, not a lost event" 5 env GITOPS_GIT_TOKEN=nope "$G" history record --type health.degraded --env x --state-repo "$url"
unset GITOPS_GIT_TOKEN
kill $srv 2>/dev/null

# --- a writer killed in the middle of an append
before=$(count "$repo"); tip=$(git rev-parse gitops/state)
GITOPS_TEST_APPEND_DELAY_MS=5000 "$G" history record --type drift.detected --env killed >/dev/null 2>&1 & k=$!
sleep 1.5; kill -9 "$k"; wait "$k" 2>/dev/null
expect_eq "killed between objects and ref: the branch did not move" "$tip" "$(git rev-parse gitops/state)"
expect_eq "git fsck: no broken objects" "" "$(git fsck --no-dangling 2>&1 | grep -v '^Checking' )"
expect_rc "the next append works" 0 "$G" history record --type drift.corrected --env killed
for i in $(seq 1 15); do   # kills at random points of an append
  "$G" history record --type drift.detected --env "k$i" >/dev/null 2>&1 & k=$!
  sleep "0.$((RANDOM % 30))"; kill -9 "$k" 2>/dev/null; wait "$k" 2>/dev/null
done
expect_rc "after 15 random kills: verify passes" 0 "$G" history verify
expect_eq "after 15 random kills: chain linear" linear "$(parents_ok "$repo")"
expect_eq "no stale ref lock left behind (or it is cleared)" 1 "$( [ ! -e .git/refs/heads/gitops/state.lock ] && echo 1 || echo 0)"
rm -f .git/refs/heads/gitops/state.lock

# --- tampering
expect_rc "verify before tampering" 0 "$G" history verify
# rewrite: change one old event (its sha) and re-chain the later commits with git plumbing
python3 - "$repo" "$C2" <<'PY'
import json, os, subprocess, sys
repo, c2 = sys.argv[1], sys.argv[2]
git = lambda *a, **k: subprocess.run(["git", "-C", repo] + list(a), check=True, capture_output=True, text=True, **k).stdout.strip()
commits = git("rev-list", "--reverse", "gitops/state").split()
prev, done = None, False
env = dict(os.environ, GIT_AUTHOR_NAME="x", GIT_AUTHOR_EMAIL="x@x", GIT_COMMITTER_NAME="x", GIT_COMMITTER_EMAIL="x@x")
for c in commits:
    msg = git("log", "-1", "--format=%B", c)
    ev = json.loads(msg)
    if not done and ev["type"] == "sync.succeeded" and ev["sha"] != c2:
        ev["sha"] = c2; done = True; msg = json.dumps(ev, separators=(",", ":"))
    args = ["commit-tree", git("rev-parse", c + "^{tree}"), "-m", msg] + (["-p", prev] if prev else [])
    prev = subprocess.run(["git", "-C", repo] + args, check=True, capture_output=True, text=True, env=env).stdout.strip()
subprocess.run(["git", "-C", repo, "update-ref", "refs/heads/gitops/state", prev], check=True)
# a copy of the tampered chain where no reflog or earlier verification knows the old tip
subprocess.run(["git", "init", "-q", "--bare", repo + "/../copy.git"], check=True)
subprocess.run(["git", "-C", repo, "push", "-q", repo + "/../copy.git", "gitops/state"], check=True)
PY
expect_rc "verify fails on the rewritten branch" 7 "$G" history verify
expect_contains "names the rewrite" "rewritten" "$out"
expect_rc "verify fails on a tampered copy with no reflog (replay)" 7 "$G" history verify --state-repo "$tmp/copy.git"
expect_contains "names the snapshot mismatch" "does not match the replay" "$out"
# a tampered approval: the signature no longer verifies
cd "$tmp" && rm -rf sig && mkdir sig && cd sig
"$G" keygen --out "$tmp/k" >/dev/null
mkdir -p app && printf 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n' > app/a.yaml
cat > gitops.yaml <<Y
apiVersion: gitops/v1
kind: Pipeline
environments:
  - {name: dev, track: main, namespace: d, apps: [{name: web, path: app}]}
  - name: prod
    from: dev
    namespace: p
    apps: [{name: web, path: app}]
    approval: {required: 1, approvers: [{name: alice, key: "$(cat "$tmp/k.pub")"}]}
Y
git init -q -b main && git add -A && git -c user.name=t -c user.email=t@t commit -qm one && S=$(git rev-parse HEAD)
"$G" history record --type sync.succeeded --env dev --sha "$S" --failed 0 >/dev/null
P=$("$G" promote "$S" prod 2>/dev/null)
expect_rc "approve" 0 "$G" approve "$P" --key "$tmp/k"
python3 - "$PWD" <<'PY'
import json, os, subprocess, sys
repo = sys.argv[1]
git = lambda *a: subprocess.run(["git", "-C", repo] + list(a), check=True, capture_output=True, text=True).stdout.strip()
commits = git("rev-list", "--reverse", "gitops/state").split()
prev = None
for c in commits:
    ev = json.loads(git("log", "-1", "--format=%B", c))
    if ev["type"] == "promotion.approved":
        ev["approvals"][0]["decision"] = "approve"; ev["promotion"] = ev["promotion"]  # same fields
        ev["approvals"][0]["signature"] = ev["approvals"][0]["signature"][:-4] + ("AAA=" if not ev["approvals"][0]["signature"].endswith("AAA=") else "BBB=")
    args = ["commit-tree", git("rev-parse", c + "^{tree}"), "-m", json.dumps(ev)] + (["-p", prev] if prev else [])
    prev = git(*args)
subprocess.run(["git", "init", "-q", "--bare", repo + "/../sigcopy.git"], check=True)
subprocess.run(["git", "-C", repo, "push", "-q", repo + "/../sigcopy.git", prev + ":refs/heads/gitops/state"], check=True)
PY
expect_rc "verify fails on a tampered signature" 7 "$G" history verify --state-repo "$tmp/sigcopy.git"
expect_contains "names the signature" "signature does not verify" "$out"
t_done
