#!/usr/bin/env bash
# The attacks of issue 10, played by someone who can push to git (any branch, tag or the state
# branch) but holds no approver key, no reporter key and no cluster credentials, each shown
# refused: a tag named main, HEAD on another branch, a hand-edited snapshot, forged rollback and
# approval events whose snapshots match the replay, a forged promotion gate, a deleted or mistyped
# state branch; plus signed commits (unsigned, unlisted signer, listed signer), a reporter-signed
# sync opening the gate, five concurrent rollbacks going one step each, events in time order.
# Real git (ssh-keygen and git with gpg.format=ssh make the commit signatures), the local
# control plane for the syncs.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../../lib.sh"
need kubectl
need ssh-keygen
G=${GITOPS_BIN:?run through make test}
tmp=$(mktemp -d)
p=tr$$x$RANDOM   # unique: a namespace of an earlier run with the same pid may still be terminating
dev=$p-dev stg=$p-staging prd=$p-prod ci=$p-ci qa=$p-qa sig=$p-signed
export GITOPS_DATA_DIR=$tmp/data
unset GITLAB_USER_LOGIN GITHUB_ACTOR CI GITLAB_CI GITHUB_ACTIONS GITOPS_STATE_REPO GITOPS_STATE_BRANCH GITOPS_MAIN_BRANCH GITOPS_SIGNING_KEY
cleanup() { for e in $dev $stg $prd $ci $qa $sig; do kubectl delete ns "$e" --wait=false >/dev/null 2>&1
  kubectl -n gitops-system delete configmap "gitops-inventory-$e" >/dev/null 2>&1; done
  rm -rf "$tmp"; }
trap cleanup EXIT
j() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

for k in alice carol mallory reporter stranger; do "$G" keygen --out "$tmp/$k.key" >/dev/null || fail "keygen $k"; done
ssh-keygen -q -t ed25519 -N '' -C alice@example.com -f "$tmp/alice_ssh" || fail "ssh-keygen alice"
ssh-keygen -q -t ed25519 -N '' -C eve@example.com -f "$tmp/eve_ssh" || fail "ssh-keygen eve"

repo=$tmp/repo; mkdir -p "$repo/app"; cd "$repo"
config() { # config MAIN_BRANCH EXTRA_APPROVER_LINE
cat > gitops.yaml <<Y
apiVersion: gitops/v1
kind: Pipeline
branch: $1
environments:
  - {name: $dev, track: main, namespace: $dev, apps: [{name: web, path: app}]}
  - {name: $stg, from: $dev, namespace: $stg, apps: [{name: web, path: app}]}
  - name: $prd
    from: $stg
    namespace: $prd
    apps: [{name: web, path: app}]
    approval:
      required: 1
      approvers:
        - {name: alice, key: "$(cat "$tmp/alice.key.pub")"}
$2
  - name: $ci
    track: main
    namespace: $ci
    apps: [{name: web, path: app}]
    reporters: [{name: ci-runner, key: "$(cat "$tmp/reporter.key.pub")"}]
  - {name: $qa, from: $ci, namespace: $qa, apps: [{name: web, path: app}]}
  - name: $sig
    track: main
    namespace: $sig
    apps: [{name: web, path: app}]
    commitSigners: [{name: alice, key: "$(cat "$tmp/alice_ssh.pub")"}]
Y
}
version() { printf 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web}\ndata: {version: "%s"}\n' "$1" > app/web.yaml; }
gc() { git -c user.name=dev -c user.email=dev@example.com "$@"; }
commit() { version "$1"; git add -A && gc commit -qm "v$1" && git rev-parse HEAD; }
signed_commit() { version "$1"; git add -A && gc -c gpg.format=ssh -c user.signingkey="$2" commit -S -qm "v$1" && git rev-parse HEAD; }
live() { kubectl -n "$1" get cm web -o jsonpath='{.data.version}' 2>/dev/null; }
for e in $dev $stg $prd $ci $qa $sig; do kubectl create ns "$e" >/dev/null || fail "create namespace $e"; done
# an operator restoring the state branch on purpose (the reflog would flag the rewrite)
restore() { git update-ref refs/heads/gitops/state "$1"; rm -f .git/logs/refs/heads/gitops/state; }
git init -q -b main
config main ""
C1=$(commit 1)

# --- bad keys in gitops.yaml are refused with the line
cp gitops.yaml "$tmp/good.yaml"
sed -i 's|reporters: \[{name: ci-runner, key: "ed25519:|reporters: [{name: ci-runner, key: "ed25519:AA|' gitops.yaml
gc commit -qam "bad reporter key"
expect_rc "a bad reporter key is refused at load" 3 "$G" render "$dev"
expect_contains "names gitops.yaml and the line" "gitops.yaml:$(grep -n ci-runner gitops.yaml | cut -d: -f1):" "$out"
cp "$tmp/good.yaml" gitops.yaml; gc commit -qam "good keys"; C1=$(git rev-parse HEAD)

# --- a CI clone without the local branch: refs/remotes/origin/main is the main branch
git clone -q "$repo" "$tmp/clone" && git -C "$tmp/clone" checkout -q --detach && git -C "$tmp/clone" branch -q -D main
expect_eq "the clone has no local main" "" "$(git -C "$tmp/clone" branch --list main)"
expect_rc "gitops.yaml and the tracked branch come from origin/main" 0 "$G" render "$dev" --repo "$tmp/clone"
expect_contains "renders main's content" 'version: "1"' "$out"

# --- attack: a tag named main with another gitops.yaml (an extra approver) and other content
expect_rc "sync dev" 0 "$G" sync "$dev" --quiet
expect_rc "promote to staging" 0 "$G" promote "$C1" "$stg"
expect_rc "sync staging" 0 "$G" sync "$stg" --quiet
P=$("$G" promote "$C1" "$prd" 2>/dev/null)
gc checkout -q -b evil
config evil "        - {name: mallory, key: \"$(cat "$tmp/mallory.key.pub")\"}"
EVIL=$(commit evil)
git tag main "$EVIL"
gc switch -q main
expect_rc "tag main: sync of the tracking environment" 0 "$G" sync "$dev" --quiet
expect_eq "tag main: dev runs the main branch, not the tag" 1 "$(live "$dev")"
expect_rc "tag main: the extra approver of the tag's gitops.yaml is refused" 7 "$G" approve "$P" --key "$tmp/mallory.key"
expect_contains "tag main: unknown key" "unknown key" "$out"

# --- attack: HEAD on another branch whose gitops.yaml says branch: evil
gc switch -q evil
expect_rc "HEAD on evil: the extra approver is refused" 7 "$G" approve "$P" --key "$tmp/mallory.key"
expect_rc "HEAD on evil: sync dev" 0 "$G" sync "$dev" --quiet
expect_eq "HEAD on evil: dev still runs main" 1 "$(live "$dev")"
gc switch -q main
git tag -d main >/dev/null

# --- attack: an approval made with a config the main branch never had (the event carries
# mallory's key, its signature verifies with it, its snapshot matches the replay)
GITOPS_DATA_DIR=$tmp/attacker GITOPS_MAIN_BRANCH=evil "$G" approve "$P" --key "$tmp/mallory.key" >/dev/null 2>&1 || fail "forging the approval"
expect_rc "forged approval: verify refuses it" 7 "$G" history verify
expect_contains "forged approval: not an approver then" "not an approver of $prd in gitops.yaml" "$out"
expect_contains "forged approval: names the commit" "commit $(git rev-parse gitops/state | cut -c1-12)" "$out"
expect_rc "forged approval: sync prod refuses to deploy its pin" 7 "$G" sync "$prd" --quiet
expect_rc "forged approval: promote refuses to act" 7 "$G" promote "$C1" "$stg"
expect_rc "forged approval: rollback refuses to act" 7 "$G" rollback "$dev" --to "$C1"
restore gitops/state~1

# --- attack: a hand-edited snapshot (a plain commit pinning dev to a never-deployed SHA)
C2=$(commit 2)
expect_rc "verify before the edit" 0 "$G" history verify
edit_pin() { # edit_pin MESSAGE SHA: commits a snapshot with dev pinned to SHA
  python3 - "$1" "$2" "$dev" <<'PY'
import json, os, subprocess, sys
msg, sha, name = sys.argv[1], sys.argv[2], sys.argv[3]
g = lambda *a, **k: subprocess.run(["git"] + list(a), check=True, capture_output=True, text=True, **k).stdout.strip()
tip = g("rev-parse", "gitops/state")
env = json.loads(g("show", tip + ":environments/" + name + ".json"))
env.update(pinned=sha, pinReason="rollback", pinnedAt="2026-01-01T00:00:00.000Z", pinnedBy="x", pinEvent="000000000000")
blob = subprocess.run(["git", "hash-object", "-w", "--stdin"], input=json.dumps(env, indent=2, sort_keys=True) + "\n",
                      check=True, capture_output=True, text=True).stdout.strip()
e = dict(os.environ, GIT_INDEX_FILE=os.path.abspath(".git/trust-index"))
subprocess.run(["git", "read-tree", tip], check=True, env=e)
subprocess.run(["git", "update-index", "--cacheinfo", "100644," + blob + ",environments/" + name + ".json"], check=True, env=e)
tree = subprocess.run(["git", "write-tree"], check=True, capture_output=True, text=True, env=e).stdout.strip()
os.remove(e["GIT_INDEX_FILE"])
c = g("commit-tree", tree, "-p", tip, "-m", msg)
g("update-ref", "refs/heads/gitops/state", c)
print(c)
PY
}
BAD=$(edit_pin "pin dev" "$C2")
expect_rc "hand-edited snapshot: verify fails" 7 "$G" history verify
expect_rc "hand-edited snapshot: sync refuses (exit 7)" 7 "$G" sync "$dev" --quiet
expect_contains "hand-edited snapshot: names the commit" "${BAD:0:12}" "$out"
expect_eq "hand-edited snapshot: nothing deployed" 1 "$(live "$dev")"
restore "$BAD~1"
# the same edit under a valid event message that changes nothing there
ev=$(python3 -c 'import json,datetime,sys; print(json.dumps({"v":1,"id":"abcdef012345","time":datetime.datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]+"Z","type":"drift.detected","environment":sys.argv[1],"actor":"x","trigger":"manual"}))' "$dev")
BAD=$(edit_pin "$ev" "$C2")
expect_rc "edited snapshot under a valid event: sync refuses" 7 "$G" sync "$dev" --quiet
expect_contains "edited snapshot: no event explains it" "no event explains it" "$out"
restore "$BAD~1"

# --- attack: a forged rollback whose snapshot matches the replay (to a never-deployed SHA)
forge_rollback() {
  python3 - "$1" "$dev" <<'PY'
import json, os, subprocess, sys, datetime
sha, name = sys.argv[1], sys.argv[2]
g = lambda *a: subprocess.run(["git"] + list(a), check=True, capture_output=True, text=True).stdout.strip()
tip = g("rev-parse", "gitops/state")
env = json.loads(g("show", tip + ":environments/" + name + ".json"))
t = datetime.datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
ev = {"v": 1, "id": "0badc0ffee00", "time": t, "type": "rollback", "environment": name, "sha": sha,
      "actor": "mallory", "trigger": "manual", "previous": env.get("pinned") or env.get("lastHealthy")}
env.update(pinned=sha, pinReason="rollback", pinnedAt=t, pinnedBy="mallory", pinEvent=ev["id"])
env.pop("promotion", None)
blob = subprocess.run(["git", "hash-object", "-w", "--stdin"], input=json.dumps(env, indent=2, sort_keys=True) + "\n",
                      check=True, capture_output=True, text=True).stdout.strip()
e = dict(os.environ, GIT_INDEX_FILE=os.path.abspath(".git/trust-index"))
subprocess.run(["git", "read-tree", tip], check=True, env=e)
subprocess.run(["git", "update-index", "--cacheinfo", "100644," + blob + ",environments/" + name + ".json"], check=True, env=e)
tree = subprocess.run(["git", "write-tree"], check=True, capture_output=True, text=True, env=e).stdout.strip()
os.remove(e["GIT_INDEX_FILE"])
c = g("commit-tree", tree, "-p", tip, "-m", json.dumps(ev, separators=(",", ":")))
g("update-ref", "refs/heads/gitops/state", c)
print(c)
PY
}
BAD=$(forge_rollback "$C2")
expect_rc "forged rollback: verify refuses it" 7 "$G" history verify
expect_contains "forged rollback: the precondition" "never deployed healthy there" "$out"
expect_rc "forged rollback: sync refuses" 7 "$G" sync "$dev" --quiet
expect_contains "forged rollback: names the commit" "${BAD:0:12}" "$out"
restore "$BAD~1"
expect_rc "restored: verify passes" 0 "$G" history verify

# --- an event older than the one before it (a replay of an old record, or a backdated one)
old=$(python3 -c 'import json,sys; print(json.dumps({"v":1,"id":"0ld0ld0ld0ld","time":"2020-01-01T00:00:00.000Z","type":"drift.detected","environment":sys.argv[1],"actor":"x","trigger":"manual"}))' "$dev")
BAD=$(git commit-tree "$(git rev-parse 'gitops/state^{tree}')" -p gitops/state -m "$old")
git update-ref refs/heads/gitops/state "$BAD"
expect_rc "a backdated event: verify refuses it" 7 "$G" history verify
expect_contains "backdated: time order" "before the previous event" "$out"
restore "$BAD~1"

# --- a legitimate approver added by a later commit on main: her approval verifies
config main "        - {name: carol, key: \"$(cat "$tmp/carol.key.pub")\"}"
gc commit -qam "prod: carol approves too"
expect_rc "carol, listed since the last commit, approves" 0 "$G" approve "$P" --key "$tmp/carol.key"
expect_rc "verify checks her against the gitops.yaml of that time" 0 "$G" history verify

# --- attack: the promotion gate forged with history record (ci lists reporters)
C3=$(commit 3)
expect_rc "an unsigned sync.succeeded can be recorded" 0 "$G" history record --type sync.succeeded --env "$ci" --sha "$C3" --failed 0
expect_rc "forged gate: promote refused" 7 "$G" promote "$C3" "$qa"
expect_contains "forged gate: says why" "signed by one of them" "$out"
expect_rc "signed by a stranger's key: still refused" 0 "$G" history record --type sync.succeeded --env "$ci" --sha "$C3" --failed 0 --signing-key "$tmp/stranger.key"
expect_rc "stranger's record: promote refused" 7 "$G" promote "$C3" "$qa"
expect_rc "a reporter-signed sync" 0 "$G" sync "$ci" --quiet --signing-key "$tmp/reporter.key"
expect_eq "the sync was recorded" "" "$(echo "$out" | grep "not recorded")"
expect_eq "the sync event carries the reporter's key" "$(cat "$tmp/reporter.key.pub")" "$("$G" history --env "$ci" --type sync.succeeded --limit 1 --json | j 'd[0]["signature"]["key"]')"
expect_rc "reporter-signed sync: the gate opens" 0 "$G" promote "$C3" "$qa"
expect_rc "GITOPS_SIGNING_KEY works too (history record)" 0 env GITOPS_SIGNING_KEY="$tmp/reporter.key" "$G" history record --type health.recovered --env ci
expect_rc "verify checks the record signatures" 0 "$G" history verify
expect_contains "signatures counted" "signatures verified" "$out"
# a signed record altered afterwards no longer verifies
python3 - <<'PY'
import json, subprocess
g = lambda *a: subprocess.run(["git"] + list(a), check=True, capture_output=True, text=True).stdout.strip()
revs = g("rev-list", "--reverse", "gitops/state").split()
prev = None
for c in revs:
    ev = json.loads(g("log", "-1", "--format=%B", c))
    if ev["type"] == "health.recovered" and "signature" in ev:
        ev["reason"] = "altered"
    args = ["commit-tree", g("rev-parse", c + "^{tree}"), "-m", json.dumps(ev)] + (["-p", prev] if prev else [])
    prev = g(*args)
subprocess.run(["git", "init", "-q", "--bare", "../altered.git"], check=True)
subprocess.run(["git", "push", "-q", "../altered.git", prev + ":refs/heads/gitops/state"], check=True)
PY
expect_rc "an altered signed record: verify fails" 7 "$G" history verify --state-repo "$tmp/altered.git"
expect_contains "names the record signature" "record's signature does not verify" "$out"

# --- signed commits: commitSigners of `signed`
U=$(commit 4)
expect_rc "unsigned commit refused" 7 "$G" sync "$sig" --quiet
expect_contains "unsigned: names the commit" "commit ${U:0:12} is not signed" "$out"
E=$(signed_commit 5 "$tmp/eve_ssh")
expect_rc "commit signed by an unlisted SSH key refused" 7 "$G" sync "$sig" --quiet
expect_contains "unlisted: names the commit and the key" "commit ${E:0:12} is signed by SHA256:" "$out"
expect_rc "--revision cannot bypass it" 7 "$G" sync "$sig" --revision "$U" --quiet
S=$(signed_commit 6 "$tmp/alice_ssh")
expect_eq "git itself sees the signature" 1 "$(git cat-file commit "$S" | grep -c '^gpgsig -----BEGIN SSH SIGNATURE-----')"
expect_rc "a commit signed by a listed signer deploys" 0 "$G" sync "$sig" --quiet
expect_eq "signed commit running" 6 "$(live "$sig")"
# a forged copy: same tree and signature, another message -> the signature no longer verifies
F=$(git cat-file commit "$S" | sed 's/^v6$/v6 forged/' | git hash-object -t commit -w --stdin)
git update-ref refs/heads/forged "$F"
expect_rc "a signature copied onto another commit is refused" 7 "$G" sync "$sig" --revision "$F" --quiet
expect_contains "copied signature: does not verify" "does not verify" "$out"

# --- five concurrent one-step rollbacks: each goes one step back from what it appends to
gc checkout -q -b rb
export GITOPS_STATE_BRANCH=gitops/rollbacks
R=()
for i in 1 2 3 4 5 6 7; do R+=("$(commit "r$i")"); "$G" history record --type sync.succeeded --env "$dev" --sha "${R[-1]}" --failed 0 >/dev/null; done
pids=()
for i in 1 2 3 4 5; do "$G" rollback "$dev" --reason "r$i" --json >"$tmp/rb$i" 2>&1 & pids+=($!); done
rcs=""; for pid in "${pids[@]}"; do wait "$pid"; rcs="$rcs$?"; done
expect_eq "five concurrent rollbacks all land" 00000 "$rcs"
expect_eq "five steps back in all: pinned to r2" "${R[1]}" "$(git show "gitops/rollbacks:environments/$dev.json" | j 'd["pinned"]')"
chain=$(git log --reverse --format=%B gitops/rollbacks | python3 -c '
import json,sys
evs=[json.loads(l) for l in sys.stdin if l.strip()]
print(" ".join(e["previous"][:7]+">"+e["sha"][:7] for e in evs if e["type"]=="rollback"))')
want=""; for i in 6 5 4 3 2; do want="$want${R[$i]:0:7}>${R[$((i-1))]:0:7} "; done
expect_eq "each rollback went exactly one step from the one before" "${want% }" "$chain"
expect_eq "events in time order" sorted "$(git log --reverse --format=%B gitops/rollbacks | python3 -c '
import json,sys
t=[json.loads(l)["time"] for l in sys.stdin if l.strip()]
print("sorted" if t==sorted(t) else "unsorted")')"
expect_rc "verify after concurrent rollbacks" 0 "$G" history verify

# --- a deleted or mistyped state branch
git branch -D gitops/rollbacks >/dev/null
expect_rc "deleted: verify fails" 7 "$G" history verify
expect_contains "deleted: says so" "is gone" "$out"
expect_rc "deleted: history fails" 7 "$G" history
expect_rc "deleted: dora fails" 7 "$G" history dora
expect_rc "deleted: sync refuses" 7 "$G" sync "$dev" --quiet
expect_rc "deleted: promote refuses" 7 "$G" promote "$C1" "$stg"
unset GITOPS_STATE_BRANCH
expect_rc "mistyped --state-branch: verify is not valid" 3 "$G" history verify --state-branch gitops/stat
expect_contains "mistyped: no state branch" "no state branch" "$out"
expect_rc "mistyped --state-branch: history says so" 3 "$G" history --state-branch gitops/stat
expect_rc "mistyped --state-branch: dora says so" 3 "$G" history dora --state-branch gitops/stat
t_done
