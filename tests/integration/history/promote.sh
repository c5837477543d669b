#!/usr/bin/env bash
# End-to-end promotion on the local control plane, with a real git repository and the state
# branch in it: dev -> staging -> prod with two required Ed25519 approvals; refusals (never
# healthy upstream, unknown key, forged, replayed and duplicate approvals, unknown env/SHA);
# rollback that a new commit on the tracked branch does not override; resume; queries; verify.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../../lib.sh"
need kubectl
G=${GITOPS_BIN:?run through make test}
tmp=$(mktemp -d)
p=hp$$; dev=$p-dev; stg=$p-staging; prd=$p-prod
export GITOPS_DATA_DIR=$tmp/data
unset GITLAB_USER_LOGIN GITHUB_ACTOR CI GITLAB_CI GITHUB_ACTIONS GITOPS_STATE_REPO GITOPS_STATE_BRANCH
cleanup() { kubectl delete ns "$dev" "$stg" "$prd" --wait=false >/dev/null 2>&1
  kubectl -n gitops-system get configmap,lease -o name 2>/dev/null | grep "\.$p-" |
    xargs -r kubectl -n gitops-system delete >/dev/null 2>&1
  rm -rf "$tmp"; }
trap cleanup EXIT

for k in alice bob mallory; do "$G" keygen --out "$tmp/$k.key" >/dev/null || fail "keygen $k"; done
expect_eq "keygen: private key mode 0600" 600 "$(stat -c %a "$tmp/alice.key")"
expect_contains "keygen: one-line public key" "ed25519:" "$(cat "$tmp/alice.key.pub")"
expect_rc "keygen never overwrites" 3 "$G" keygen --out "$tmp/alice.key"

repo=$tmp/repo; mkdir -p "$repo/app"; cd "$repo"
cat > gitops.yaml <<Y
apiVersion: gitops/v1
kind: Pipeline
branch: main
environments:
  - name: $p-dev
    track: main
    namespace: $dev
    apps: [{name: web, path: app}]
  - name: $p-staging
    from: $p-dev
    namespace: $stg
    apps: [{name: web, path: app}]
  - name: $p-prod
    from: $p-staging
    namespace: $prd
    apps: [{name: web, path: app}]
    approval:
      required: 2
      approvers:
        - {name: alice, key: "$(cat "$tmp/alice.key.pub")"}
        - {name: bob, key: "$(cat "$tmp/bob.key.pub")"}
Y
version() { printf 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web}\ndata: {version: "%s"}\n' "$1" > app/web.yaml
  printf 'apiVersion: v1\nkind: Namespace\nmetadata: {name: $(NS)}\n' >/dev/null; }
git init -q -b main
commit() { version "$1"; git add -A && git -c user.name=dev -c user.email=d@d commit -qm "v$1"; git rev-parse HEAD; }
for e in "$dev" "$stg" "$prd"; do kubectl create ns "$e" >/dev/null; done
live() { kubectl -n "$1" get cm web -o jsonpath='{.data.version}' 2>/dev/null; }
C1=$(commit 1)

# --- staging has nothing to run until a promotion; upstream gate
expect_rc "sync of a promoted env without a pin exits 3" 3 "$G" sync "$p-staging" --quiet
expect_contains "the message says to promote" "gitops promote" "$out"
expect_rc "promote refused: never healthy in dev" 7 "$G" promote "$C1" "$p-staging"
expect_contains "refusal names the upstream" "never ran healthy in $p-dev" "$out"
expect_rc "unknown environment exits 3" 3 "$G" promote "$C1" nowhere
expect_rc "unknown SHA exits 5" 5 "$G" promote 0123456789abcdef0123456789abcdef01234567 "$p-staging"
expect_rc "dry-run sync is not recorded" 0 "$G" sync "$p-dev" --dry-run --quiet
expect_eq "nothing recorded yet" 0 "$("$G" history --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')"
expect_rc "sync dev" 0 "$G" sync "$p-dev" --quiet
expect_eq "dev runs v1" 1 "$(live "$dev")"
expect_eq "sync.succeeded recorded with the SHA" "sync.succeeded $C1" \
  "$("$G" history --env "$p-dev" --json | python3 -c 'import json,sys; e=json.load(sys.stdin)[0]; print(e["type"], e["sha"])')"
"$G" sync "$p-dev" --quiet >/dev/null 2>&1
expect_eq "a no-op resync is not an event" 1 "$("$G" history --env "$p-dev" --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')"

# --- dev -> staging (not gated: pinned at once); same SHA twice gives the same promotion
P1=$("$G" promote "$C1" "$p-staging" --actor ci-bot 2>/dev/null); rc=$?
expect_eq "promote to staging exits 0" 0 "$rc"
expect_eq "the same SHA twice gives the same promotion" "$P1" "$("$G" promote "$C1" "$p-staging" 2>/dev/null)"
expect_eq "--json has the id" "$P1 applied" "$("$G" promote "$C1" "$p-staging" --json 2>/dev/null | python3 -c 'import json,sys; j=json.load(sys.stdin); print(j["id"], j["status"])')"
expect_eq "--actor recorded" ci-bot "$("$G" history show "$P1" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["events"][0]["actor"])')"
expect_rc "sync staging deploys the pin" 0 "$G" sync "$p-staging" --quiet
expect_eq "staging runs v1" 1 "$(live "$stg")"

# --- staging -> prod: gated by two approvals
C2=$(commit 2)
P2=$(GITHUB_ACTOR=gh-user "$G" promote "$C1" "$p-prod" 2>/dev/null)
expect_eq "actor from GITHUB_ACTOR" gh-user "$("$G" history show "$P2" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["events"][0]["actor"])')"
expect_eq "prod promotion is pending" pending "$("$G" promote "$C1" "$p-prod" --json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')"
expect_rc "prod has no pin while pending" 3 "$G" sync "$p-prod" --quiet
expect_rc "unknown key refused" 7 "$G" approve "$P2" --key "$tmp/mallory.key"
expect_contains "unknown key: clear message" "unknown key" "$out"
forged=$("$G" approve "$P2" --key "$tmp/mallory.key" --print-signature)
expect_rc "forged signature refused" 7 "$G" approve "$P2" --approver alice --signature "$forged"
expect_contains "forged: clear message" "forged" "$out"
# a second pending promotion, to replay alice's signature for it on P2
"$G" sync "$p-dev" --quiet >/dev/null 2>&1
P3=$("$G" promote "$C2" "$p-staging" 2>/dev/null)
"$G" sync "$p-staging" --quiet >/dev/null 2>&1
P4=$("$G" promote "$C2" "$p-prod" 2>/dev/null)
expect_eq "two pending prod promotions are distinct" 1 "$([ -n "$P4" ] && [ "$P4" != "$P2" ] && echo 1)"
sig4=$("$G" approve "$P4" --key "$tmp/alice.key" --print-signature)
expect_rc "replayed signature refused" 7 "$G" approve "$P2" --approver alice --signature "$sig4"
expect_contains "replay: names the promotion it was made for" "made for promotion $P4" "$out"
expect_rc "garbage signature refused" 7 "$G" approve "$P2" --approver alice --signature "AAAA"
expect_rc "not an approver by name refused" 7 "$G" approve "$P2" --approver mallory --signature "$sig4"
expect_rc "alice approves" 0 "$G" approve "$P2" --key "$tmp/alice.key"
expect_contains "one of two" "1 of 2" "$out"
expect_rc "duplicate approval refused" 7 "$G" approve "$P2" --key "$tmp/alice.key"
expect_contains "duplicate: clear message" "already approved" "$out"
expect_rc "still no pin after one approval" 3 "$G" sync "$p-prod" --quiet
expect_rc "bob approves" 0 "$G" approve "$P2" --key "$tmp/bob.key"
expect_contains "promotion applied" "pinned to ${C1:0:12}" "$out"
expect_rc "the other pending prod promotion was superseded" 7 "$G" approve "$P4" --key "$tmp/bob.key"
expect_contains "superseded: clear message" "superseded" "$out"
expect_rc "sync prod deploys the approved SHA" 0 "$G" sync "$p-prod" --quiet
expect_eq "prod runs v1" 1 "$(live "$prd")"
expect_eq "show: both approvals" "applied 2" "$("$G" history show "$P2" --json | python3 -c 'import json,sys; p=json.load(sys.stdin)["promotion"]; print(p["status"], len(p["approvals"]))')"
# a rejection
P5=$("$G" promote "$C2" "$p-prod" 2>/dev/null)
expect_rc "reject needs a reason" 2 "$G" reject "$P5" --key "$tmp/bob.key"
expect_rc "bob rejects" 0 "$G" reject "$P5" --key "$tmp/bob.key" --reason "change freeze"
expect_rc "a rejected promotion cannot be approved" 7 "$G" approve "$P5" --key "$tmp/alice.key"
expect_eq "prod still pinned to C1" 1 "$("$G" sync "$p-prod" --quiet >/dev/null 2>&1; live "$prd")"

# --- rollback on the tracking environment; a new commit does not override it
C3=$(commit 3)
"$G" sync "$p-dev" --quiet >/dev/null 2>&1
expect_eq "dev runs v3" 3 "$(live "$dev")"
expect_rc "rollback --to an unknown SHA refused" 7 "$G" rollback "$p-dev" --to 0123456789abcdef
expect_rc "rollback too far refused" 7 "$G" rollback "$p-dev" --steps 9
expect_rc "rollback dev" 0 "$G" rollback "$p-dev" --reason "v3 breaks checkout"
expect_contains "rolled back to C2" "${C2:0:12}" "$out"
C4=$(commit 4)
expect_rc "sync dev after a new commit" 0 "$G" sync "$p-dev" --quiet
expect_eq "dev stays on the rollback (v2), not the new head" 2 "$(live "$dev")"
expect_eq "rollback recorded with reason" "rollback v3 breaks checkout $C2" \
  "$("$G" history --env "$p-dev" --type rollback --json | python3 -c 'import json,sys; e=json.load(sys.stdin)[0]; print(e["type"], e["reason"], e["sha"])')"
expect_rc "a second rollback goes further back" 0 "$G" rollback "$p-dev"
expect_contains "one more step: C1" "${C1:0:12}" "$out"
expect_rc "resume dev" 0 "$G" resume "$p-dev"
expect_rc "resume twice: not pinned" 3 "$G" resume "$p-dev"
expect_rc "resume a promoted env exits 3" 3 "$G" resume "$p-staging"
"$G" sync "$p-dev" --quiet >/dev/null 2>&1
expect_eq "dev follows main again (v4)" 4 "$(live "$dev")"

# --- queries, DORA, verify
expect_eq "filter by type family" 1 "$("$G" history --type promotion. --env "$p-prod" --json | python3 -c 'import json,sys; a=json.load(sys.stdin); print(int(len(a)>=5 and all(e["type"].startswith("promotion.") for e in a)))')"
expect_eq "filter by sha prefix" 1 "$("$G" history --sha "${C4:0:8}" --json | python3 -c 'import json,sys; a=json.load(sys.stdin); print(int(len(a)>=1 and all(e["sha"]=="'"$C4"'" for e in a)))')"
expect_eq "--limit" 2 "$("$G" history --limit 2 --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')"
expect_rc "table output" 0 "$G" history --env "$p-prod"
expect_contains "table has the header" "TYPE" "$out"
expect_eq "dora: dev deployments (v1 v2 v3, back to v2, v4)" 5 "$("$G" history dora --env "$p-dev" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["deploymentFrequency"]["deployments"])')"
expect_eq "dora: lead time measured" 1 "$("$G" history dora --env "$p-dev" --json | python3 -c 'import json,sys; print(int(json.load(sys.stdin)["leadTime"]["samples"]>=3))')"
expect_rc "history verify" 0 "$G" history verify
expect_contains "verify counts signatures" "3 signatures" "$out"
expect_eq "promote needs no cluster" 0 "$(KUBECONFIG=/nonexistent "$G" promote "$C4" "$p-staging" >/dev/null 2>&1; echo $?)"
t_done
