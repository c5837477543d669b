#!/usr/bin/env bash
# `gitops render` end to end: the example repository (plain, kustomize overlays, helm values per
# environment) rendered per environment as YAML and JSON, applied to the local apiserver, and the
# exit codes and one-line errors of bad input and git failures.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
. "$root/tests/lib.sh"
need git; need helm; need kustomize; need kubectl; need python3
gitops=${GITOPS_BIN:-$root/build/asan/gitops}
tmp=$(mktemp -d)
pfx=mft$$
trap 'rm -rf "$tmp"; for e in dev staging prod; do kubectl delete ns $pfx-$e --wait=false >/dev/null 2>&1; done' EXIT
export GITOPS_DATA_DIR=$tmp/data
commit() { git -C "$1" add -A && git -C "$1" -c user.name=t -c user.email=t@example.com commit -qm "$2"; }

repo=$tmp/shop
mkdir -p "$repo" && cp -r "$root/examples/shop/." "$repo/" && git -C "$repo" init -q -b main && commit "$repo" shop
git -C "$repo" tag v1
v1=$(git -C "$repo" rev-parse HEAD)

expect_rc "render --help" 0 "$gitops" render --help
expect_contains "help names the options" "--revision REV" "$out"
expect_rc "render without env is a usage error" 2 "$gitops" render --repo "$repo"
expect_rc "unknown option is a usage error" 2 "$gitops" render dev --bogus --repo "$repo"

for e in dev staging prod; do
  expect_rc "render $e" 0 "$gitops" render $e --repo "$repo"
  y=$out
  expect_eq "render $e prints 8 documents" 8 "$(grep -c '^---$' <<<"$y")"
  expect_contains "render $e fills the namespace" "namespace: shop-$e" "$y"
  expect_rc "render $e --json" 0 "$gitops" render $e --repo "$repo" --json
  expect_eq "render $e --json is a List of 8" "List 8" "$(python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["kind"], len(d["items"]))' <<<"$out")"
done
"$gitops" render prod --repo "$repo" --json > "$tmp/prod.json"
expect_eq "prod api has 3 replicas (kustomize overlay)" 3 "$(python3 -c '
import json,sys
d=json.load(open(sys.argv[1]))
print([o for o in d["items"] if o["kind"]=="Deployment" and o["metadata"]["name"]=="api"][0]["spec"]["replicas"])' "$tmp/prod.json")"
expect_eq "prod cache gets the prod values file" 256mb "$(python3 -c '
import json,sys
d=json.load(open(sys.argv[1]))
print([o for o in d["items"] if o["kind"]=="Deployment" and o["metadata"]["name"]=="cache"][0]["spec"]["template"]["spec"]["containers"][0]["args"][1])' "$tmp/prod.json")"

expect_rc "render --app" 0 "$gitops" render dev --repo "$repo" --app cache
expect_eq "--app renders that app only" 2 "$(grep -c '^---$' <<<"$out")"

# the default repository is the one of the working directory
expect_rc "render from inside the repository" 0 bash -c "cd '$repo/apps' && '$gitops' render dev --app frontend"
expect_contains "working-directory repository renders" "name: frontend" "$out"

# revisions: branch, tag, short SHA; a new commit; an unknown ref
sed -i 's/replicas: 3/replicas: 4/' "$repo/apps/api/overlays/prod/replicas.yaml"; commit "$repo" "prod api 4"
expect_rc "render the branch head" 0 "$gitops" render prod --repo "$repo" --app api --json
expect_contains "the new commit is fetched" '"replicas": 4' "$out"
expect_rc "render the tag" 0 "$gitops" render prod --repo "$repo" --app api --json --revision v1
expect_contains "--revision v1 renders the old commit" '"replicas": 3' "$out"
expect_rc "render a short SHA" 0 "$gitops" render prod --repo "$repo" --app api --json --revision "${v1:0:9}"
expect_contains "--revision <short sha> renders that commit" '"replicas": 3' "$out"
expect_rc "unknown revision exits 5" 5 "$gitops" render dev --repo "$repo" --revision no-such-ref
expect_contains "unknown revision is named" "unknown revision no-such-ref" "$out"
expect_eq "the error is one line" 1 "$(wc -l <<<"$out")"
expect_rc "missing repository exits 5" 5 "$gitops" render dev --repo "$tmp/nowhere"

# bad input: exit 3, one line naming file:line
expect_rc "unknown environment exits 3" 3 "$gitops" render qa --repo "$repo"
expect_contains "unknown environment lists the known ones" 'no environment "qa" (known: dev, staging, prod)' "$out"
expect_rc "unknown app exits 3" 3 "$gitops" render dev --repo "$repo" --app nope

bad=$tmp/bad; mkdir -p "$bad/web" && git -C "$bad" init -q -b main
printf 'apiVersion: gitops/v1\nkind: Pipeline\nenvironments:\n  - name: dev\n    apps: [{name: web, path: web, renderr: plain}]\n' > "$bad/gitops.yaml"
printf 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n' > "$bad/web/a.yaml"; commit "$bad" bad-config
expect_rc "bad config exits 3" 3 "$gitops" render dev --repo "$bad"
expect_contains "bad config names file:line:col" 'gitops.yaml:5:35: app: unknown key "renderr"' "$out"
printf 'apiVersion: gitops/v1\nkind: Pipeline\nenvironments:\n  - name: dev\n    apps: [{name: web, path: web}]\n' > "$bad/gitops.yaml"
printf 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata:\n  k: "\xff"\n' > "$bad/web/a.yaml"; commit "$bad" bad-utf8
expect_rc "invalid UTF-8 exits 3" 3 "$gitops" render dev --repo "$bad"
expect_contains "invalid UTF-8 names file:line" "web/a.yaml:5:" "$out"
python3 - "$bad/web/a.yaml" <<'PY'
import sys
lines = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]']
for i in range(1, 10):
    prev = chr(ord('a') + i - 1); cur = chr(ord('a') + i)
    lines.append('%s: &%s [%s]' % (cur, cur, ','.join(['*' + prev] * 10)))
open(sys.argv[1], 'w').write('\n'.join(lines) + '\n')
PY
commit "$bad" bomb
start=$(date +%s%N)
expect_rc "billion laughs exits 3" 3 "$gitops" render dev --repo "$bad"
expect_contains "billion laughs names the file" "web/a.yaml:" "$out"
expect_contains "billion laughs hits the node limit" "node limit" "$out"
ms=$(( ($(date +%s%N) - start) / 1000000 ))
if [ "$ms" -lt 5000 ]; then ok "billion laughs fails fast (${ms} ms)"; else fail "billion laughs took ${ms} ms"; fi

# renderer timeout and failure: exit 3, the message says which app and why
# (the stand-in renderer is the sandbox probe, a static executable: a script cannot run in the sandbox)
cc -static -O1 -o "$tmp/probe" "$root/tests/fixtures/manifests/sandbox/probe.c" || fail "cannot build the probe"
sleepy=$tmp/sleepy; mkdir -p "$sleepy/k"
printf 'apiVersion: gitops/v1\nkind: Pipeline\nenvironments:\n  - name: dev\n    apps:\n      - {name: k, path: k, renderer: kustomize}\n' > "$sleepy/gitops.yaml"
printf 'resources: []\n' > "$sleepy/k/kustomization.yaml"; : > "$sleepy/k/probe-sleep"
git -C "$sleepy" init -q -b main && commit "$sleepy" sleepy
start=$(date +%s)
expect_rc "a renderer over GITOPS_RENDER_TIMEOUT exits 3" 3 env GITOPS_KUSTOMIZE="$tmp/probe" GITOPS_RENDER_TIMEOUT=1s "$gitops" render dev --repo "$sleepy"
expect_contains "the timeout is named" "did not finish within 1000 ms" "$out"
[ $(( $(date +%s) - start )) -lt 10 ] && ok "the slow renderer was killed" || fail "the slow renderer was not killed in time"

# a render killed in the middle leaves nothing in /tmp, and its checkout under the data directory
# goes at the next start
mkdir -p "$tmp/tmpdir"
TMPDIR=$tmp/tmpdir GITOPS_KUSTOMIZE="$tmp/probe" "$gitops" render dev --repo "$sleepy" >/dev/null 2>&1 &
pid=$!
for _ in $(seq 100); do [ -n "$(ls -d "$GITOPS_DATA_DIR"/work/*/checkout-* 2>/dev/null)" ] && break; sleep 0.1; done
expect_contains "the render's checkout is under the data directory" "$GITOPS_DATA_DIR/work/" "$(ls -d "$GITOPS_DATA_DIR"/work/*/checkout-* 2>&1)"
kill -9 $pid; wait $pid 2>/dev/null
expect_eq "nothing of the killed render in its TMPDIR" "" "$(ls -A "$tmp/tmpdir")"
for _ in $(seq 50); do "$gitops" render dev --repo "$repo" --app frontend >/dev/null 2>&1; [ -z "$(ls -A "$GITOPS_DATA_DIR/work")" ] && break; sleep 0.1; done
expect_eq "the next render swept the killed one's checkout" "" "$(ls -A "$GITOPS_DATA_DIR/work")"

# no sandbox, no render: where user namespaces are not allowed (here: a user namespace whose own
# limit is 0, the host untouched) the renderer never runs unconfined
if command -v unshare >/dev/null; then
  expect_rc "a renderer that cannot be isolated exits 3" 3 unshare -U -r sh -c \
    "echo 0 > /proc/sys/user/max_user_namespaces && exec \"$gitops\" render dev --repo \"$repo\" --app api"
  expect_contains "the refusal says why and what to do" "cannot isolate" "$out"
  expect_contains "the refusal names the failed step" "unshare(user, mount, network, PID, IPC, UTS namespaces): No space left on device" "$out"
  expect_contains "the refusal points at the README" 'README "Renderers"' "$out"
else
  fail "unshare(1) is missing (util-linux)"
fi
expect_rc "a missing helm exits 3" 3 env GITOPS_HELM=/nonexistent/helm "$gitops" render dev --repo "$repo" --app cache
expect_contains "the missing helm is named" "GITOPS_HELM=/nonexistent/helm: not an executable file" "$out"

# the example is valid against the real apiserver: apply each environment into private namespaces
cp -r "$repo" "$tmp/applied"
grep -rl 'shop-' "$tmp/applied" --include='*.yaml' | xargs sed -i "s/shop-\(dev\|staging\|prod\)/$pfx-\1/g"
commit "$tmp/applied" "private namespaces"
for e in dev staging prod; do
  "$gitops" render $e --repo "$tmp/applied" > "$tmp/$e.yaml" 2> "$tmp/$e.err" || cat "$tmp/$e.err"
  expect_rc "the apiserver accepts $e (server-side apply)" 0 kubectl apply --server-side --field-manager=gitops-test -f "$tmp/$e.yaml"
  expect_eq "$e api Deployment exists" api "$(kubectl -n $pfx-$e get deploy api -o jsonpath='{.metadata.name}' 2>&1)"
done
t_done
