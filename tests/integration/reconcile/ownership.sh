#!/usr/bin/env bash
# Ownership (issue 9) against the local control plane, with real git repositories: two
# pipelines with the same environment names on one cluster, the pipeline identity, dry runs that
# delete nothing, --app never pruning what another app desires, the Namespace and CRD rules,
# gitops.dev/prune: disabled, explicit adoption, two environments defining one object, an
# inventory of an earlier release, one in the grouped form, and concurrent syncs followed by a
# prune.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../../lib.sh"
need kubectl
G=${GITOPS_BIN:?run through make test}
tmp=$(mktemp -d)
export GITOPS_DATA_DIR=$tmp/data
export GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@t GIT_COMMITTER_NAME=t GIT_COMMITTER_EMAIL=t@t
env=own$$; nsa=own-a-$$; nsb=own-b-$$; nsx=own-x-$$; group=own$$.gitops.dev
cleanup() {
  kubectl delete ns "$nsa" "$nsb" "$nsx" "own-c-$$" "own-g-$$" --wait=false >/dev/null 2>&1
  kubectl delete crd "widgets.$group" --wait=false >/dev/null 2>&1
  kubectl -n default delete configmap "b-new-$$" >/dev/null 2>&1
  kubectl -n gitops-system get configmap,lease -o name 2>/dev/null | grep -E "$$\$" |
    xargs -r kubectl -n gitops-system delete >/dev/null 2>&1
  rm -rf "$tmp"
}
trap cleanup EXIT
commit() { git add -A && git -c user.name=t -c user.email=t@t commit -qm "$1"; }
inv() { # inv PIPELINE ENV: the inventory's object names, sorted, one line
  kubectl -n gitops-system get configmap "gitops-inventory.$1.$2" -o jsonpath='{.data.inventory\.json}' 2>/dev/null |
    python3 -c 'import json,sys; d=json.load(sys.stdin); print(" ".join(sorted(o["name"] for o in d["objects"])))' 2>/dev/null
}
cm() { printf -- '---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: %s%s}\ndata: {v: "%s"}\n' "$1" "${3:+, namespace: $3}" "${2:-1}"; }
exists() { kubectl -n "$1" get configmap "$2" -o name --ignore-not-found 2>/dev/null; }

# --- two repositories, no `name`, the same environment name, one cluster
mkrepo() { # mkrepo DIR NAMESPACE
  mkdir -p "$1/app" && cd "$1"
  printf 'apiVersion: gitops/v1\nkind: Pipeline\nenvironments:\n  - name: %s\n    namespace: %s\n    apps: [{name: app, path: app}]\n' "$env" "$2" > gitops.yaml
  { printf 'apiVersion: v1\nkind: Namespace\nmetadata: {name: %s}\n' "$2"; cm shared; cm "only-$2"; } > app/objects.yaml
  git init -q -b main && commit init
}
mkrepo "$tmp/a" "$nsa"; mkrepo "$tmp/b" "$nsb"
pa=repo-$(git -C "$tmp/a" rev-list --max-parents=0 HEAD | cut -c1-16)
pb=repo-$(git -C "$tmp/b" rev-list --max-parents=0 HEAD | cut -c1-16)
cd "$tmp/a"
expect_rc "pipeline a: sync" 0 "$G" sync "$env" --prune
expect_contains "pipeline a: created its objects" "3 created" "$out"
expect_eq "objects carry the pipeline label" "$pa $env app" \
  "$(kubectl -n "$nsa" get cm shared -o jsonpath='{.metadata.labels.gitops\.dev/pipeline} {.metadata.labels.gitops\.dev/environment} {.metadata.labels.gitops\.dev/app}')"
sout=$("$G" status "$env" 2>&1)
expect_contains "status names the pipeline (root commit of the repository)" "pipeline $pa" "$sout"
expect_eq "a clone has the same identity" "pipeline $pa" \
  "$(git clone -q "$tmp/a" "$tmp/a-clone" && cd "$tmp/a-clone" && "$G" status "$env" 2>&1 | head -1)"
expect_eq "the inventory is per pipeline and environment" "only-$nsa $nsa shared" "$(inv "$pa" "$env")"
expect_contains "the inventory records the repository" "$tmp/a" \
  "$(kubectl -n gitops-system get configmap "gitops-inventory.$pa.$env" -o jsonpath='{.data.inventory\.json}')"
cd "$tmp/b"
expect_rc "pipeline b: diff before its first sync sees nothing of a" 1 "$G" diff "$env" --no-color --quiet
case $out in *"$nsa"*) fail "pipeline b's diff shows pipeline a's objects" "$out" ;; *) ok "pipeline b's diff never shows a's objects" ;; esac
expect_rc "pipeline b: sync --prune" 0 "$G" sync "$env" --prune
expect_contains "pipeline b pruned nothing" "0 pruned" "$out"
expect_eq "a's objects untouched by b's prune" "configmap/shared" "$(exists "$nsa" shared)"
expect_eq "a's Namespace untouched by b's prune" "Active" "$(kubectl get ns "$nsa" -o jsonpath='{.status.phase}')"
# b now declares a's object: never taken over, even with --adopt; the error names the owner
cm shared 2 "$nsa" >> app/objects.yaml; commit "b wants a's object"
expect_rc "b: an object of another pipeline is skipped (exit 6)" 6 "$G" sync "$env"
expect_contains "the skip names the owner" "belongs to pipeline $pa, environment $env" "$out"
expect_rc "b: --adopt does not take another pipeline's object" 6 "$G" sync "$env" --adopt
expect_eq "a's object unchanged" "1 $pa" "$(kubectl -n "$nsa" get cm shared -o jsonpath='{.data.v} {.metadata.labels.gitops\.dev/pipeline}')"
dout=$("$G" diff "$env" --no-color 2>&1)
expect_contains "b's diff marks it" "exists, not managed by gitops (owned by pipeline $pa" "$dout"
git revert --no-edit HEAD >/dev/null
expect_rc "b: sync --prune after dropping it" 0 "$G" sync "$env" --prune
expect_eq "a's object survives b's prune" "configmap/shared" "$(exists "$nsa" shared)"
cd "$tmp/a"
expect_rc "a: still in sync after all of b's syncs" 0 "$G" diff "$env" --quiet

# --- a `name` must be a DNS label; two repositories cannot share one
cd "$tmp/b"
sed -i '1i name: Not_A_Label' gitops.yaml; commit "bad name"
expect_rc "a name that is not a DNS label exits 3" 3 "$G" diff "$env" --quiet
expect_contains "names gitops.yaml:line" "gitops.yaml:1" "$out"
sed -i "1s/.*/name: two$$/" gitops.yaml; cm b-named >> app/objects.yaml; commit "named"
expect_rc "a named pipeline syncs" 6 "$G" sync "$env"
expect_contains "b's objects under the old identity are not silently taken by the new name" "belongs to pipeline $pb" "$out"
expect_rc "adopting them from the earlier identity of the same repository is refused too" 6 "$G" sync "$env" --adopt --quiet
cd "$tmp/a"
sed -i "1i name: two$$" gitops.yaml; commit "same name as b"
expect_rc "another repository with the same name is refused" 3 "$G" diff "$env" --quiet
expect_contains "the error says the name is taken" "pipeline name \"two$$\" is taken" "$out"
git revert --no-edit HEAD >/dev/null

# --- one repository, apps a and b, environments e and f
repo=$tmp/c; mkdir -p "$repo/a" "$repo/b" "$repo/crd" && cd "$repo"
cat > gitops.yaml <<Y
apiVersion: gitops/v1
kind: Pipeline
name: own$$
environments:
  - name: $env
    namespace: $nsx
    apps: [{name: a, path: a}, {name: b, path: b}, {name: crd, path: crd}]
  - name: f$$
    namespace: $nsx
    apps: [{name: a, path: a}]
Y
printf 'apiVersion: v1\nkind: Namespace\nmetadata: {name: %s}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {ports: [{port: 80}]}\n' "$nsx" > a/ns.yaml
{ cm moving; cm stays-a; } > a/objects.yaml
cm stays-b > b/objects.yaml
cat > crd/crd.yaml <<Y
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.$group}
spec:
  group: $group
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
    - name: v1
      served: true
      storage: true
      schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
---
apiVersion: $group/v1
kind: Widget
metadata: {name: ours}
Y
git init -q -b main && commit init
expect_rc "sync e" 0 "$G" sync "$env"
expect_contains "e created everything" "7 created" "$out"

# --dry-run deletes and writes nothing
rv0=$(kubectl -n gitops-system get configmap "gitops-inventory.own$$.$env" -o jsonpath='{.metadata.resourceVersion}')
git rm -q a/objects.yaml && commit "drop a's objects"
expect_rc "sync --prune --dry-run" 0 "$G" sync "$env" --prune --dry-run
expect_contains "dry run reports what it would prune" "2 pruned" "$out"
expect_eq "dry run deleted nothing" "configmap/moving configmap/stays-a" "$(echo $(exists "$nsx" moving) $(exists "$nsx" stays-a))"
expect_eq "dry run wrote no inventory" "$rv0" \
  "$(kubectl -n gitops-system get configmap "gitops-inventory.own$$.$env" -o jsonpath='{.metadata.resourceVersion}')"
git revert --no-edit HEAD >/dev/null

# --app: an object moved from app a to app b is never pruned by a's sync
{ cm stays-a; } > a/objects.yaml; { cm stays-b; cm moving; } > b/objects.yaml; commit "moving: from a to b"
expect_rc "sync --app b" 0 "$G" sync "$env" --app b --prune
expect_eq "moving now belongs to app b" b "$(kubectl -n "$nsx" get cm moving -o jsonpath='{.metadata.labels.gitops\.dev/app}')"
expect_rc "sync --app a --prune" 0 "$G" sync "$env" --app a --prune
expect_eq "a's sync did not prune what b desires" configmap/moving "$(exists "$nsx" moving)"
{ cm moving; cm stays-a; } > a/objects.yaml; { cm stays-b; } > b/objects.yaml; commit "moving: back to a"
expect_rc "sync --app a (moving back)" 0 "$G" sync "$env" --app a --prune
expect_rc "sync --app b --prune (moving is a's again)" 0 "$G" sync "$env" --app b --prune
expect_eq "b's sync did not prune what a desires" configmap/moving "$(exists "$nsx" moving)"
cm "b-new-$$" 1 default > b/objects.yaml; commit "b: stays-b leaves git"
expect_rc "sync --app b --prune prunes b's own" 0 "$G" sync "$env" --app b --prune
expect_eq "stays-b pruned" "" "$(exists "$nsx" stays-b)"
expect_eq "a's objects untouched" "configmap/moving configmap/stays-a" "$(echo $(exists "$nsx" moving) $(exists "$nsx" stays-a))"

# two environments of one pipeline defining the same object: never taken from each other
expect_rc "f: the objects of e are skipped (exit 6)" 6 "$G" sync "f$$" --adopt
expect_contains "f's skip names the owner" "belongs to pipeline own$$, environment $env" "$out"
expect_eq "e still owns it" "$env" "$(kubectl -n "$nsx" get cm stays-a -o jsonpath='{.metadata.labels.gitops\.dev/environment}')"
expect_rc "f: --prune deletes nothing of e" 6 "$G" sync "f$$" --prune
expect_eq "e's objects survive f's prune" configmap/stays-a "$(exists "$nsx" stays-a)"

# adoption: a hand-made object whose name is added to git
kubectl -n "$nsx" create configmap handmade --from-literal=v=hand --from-literal=mine=yes >/dev/null
cm handmade 2 >> a/objects.yaml; commit "handmade in git"
expect_rc "diff marks the hand-made object" 1 "$G" diff "$env" --no-color
expect_contains "exists, not managed by gitops" "ConfigMap $nsx/handmade: exists, not managed by gitops" "$out"
jout=$("$G" diff "$env" --json 2>/dev/null)
expect_contains "diff --json: managed false" '"managed": false' "$jout"
expect_rc "sync skips it (exit 6)" 6 "$G" sync "$env"
expect_contains "the skip says how to adopt" "--adopt" "$out"
expect_eq "the hand-made object is untouched" "hand" "$(kubectl -n "$nsx" get cm handmade -o jsonpath='{.data.v}')"
case $("$G" drift "$env" 2>&1) in *handmade*) fail "drift reports an object gitops does not manage" ;; *) ok "drift ignores the unmanaged object" ;; esac
expect_rc "sync --adopt takes it over" 0 "$G" sync "$env" --adopt
expect_contains "reported as adopted" "adopted ConfigMap $nsx/handmade" "$out"
expect_eq "now gitops' (value and labels)" "2 own$$" "$(kubectl -n "$nsx" get cm handmade -o jsonpath='{.data.v} {.metadata.labels.gitops\.dev/pipeline}')"
kubectl -n "$nsx" create configmap handmade2 --from-literal=v=hand >/dev/null
cm handmade2 >> a/objects.yaml
sed -i "0,/    apps: \[{name: a, path: a}, {name: b/s//    sync: {adopt: true}\n    apps: [{name: a, path: a}, {name: b/" gitops.yaml
commit "adopt: true"
expect_rc "sync: {adopt: true} adopts without the flag" 0 "$G" sync "$env"
expect_contains "reported as adopted" "adopted ConfigMap $nsx/handmade2" "$out"
sed -i '/adopt: true/d' gitops.yaml; commit "adopt: default"

# prune: disabled keeps an object that leaves git
python3 - a/objects.yaml <<'PY'
import sys; p = sys.argv[1]; s = open(p).read()
open(p, 'w').write(s.replace("metadata: {name: handmade}", "metadata: {name: handmade, annotations: {gitops.dev/prune: disabled}}"))
PY
commit "handmade: prune disabled"
expect_rc "sync the annotation" 0 "$G" sync "$env" --quiet
python3 - a/objects.yaml <<'PY'
import sys; p = sys.argv[1]; docs = open(p).read().split('---\n')
open(p, 'w').write('---\n'.join(d for d in docs if 'name: handmade,' not in d and 'name: handmade2}' not in d))
PY
commit "handmade leaves git"
expect_rc "sync --prune" 0 "$G" sync "$env" --prune
expect_contains "kept, reported" "kept    ConfigMap $nsx/handmade (gitops.dev/prune: disabled)" "$out"
expect_eq "the annotated object is kept" configmap/handmade "$(exists "$nsx" handmade)"
expect_eq "the other one is pruned" "" "$(exists "$nsx" handmade2)"
case " $(inv "own$$" "$env") " in *" handmade "*) fail "a kept object stays in the inventory" ;; *) ok "a kept object leaves the inventory" ;; esac

# the Namespace rule and the CRD rule
kubectl -n "$nsx" create configmap theirs --from-literal=x=1 >/dev/null
kubectl -n "$nsx" create secret generic their-secret --from-literal=x=1 >/dev/null
kubectl -n "$nsx" delete configmap handmade >/dev/null
# what the endpoints controller keeps for our Service (no owner reference): not someone else's
printf '{"apiVersion":"v1","kind":"Endpoints","metadata":{"name":"web","namespace":"%s"}}' "$nsx" | kubectl create -f - >/dev/null
printf 'apiVersion: %s/v1\nkind: Widget\nmetadata: {name: theirs, namespace: %s}\n' "$group" "$nsx" | kubectl apply -f - >/dev/null
git rm -q -r a crd && mkdir a crd && echo "(empty)" > a/README.md && echo "(empty)" > crd/README.md && commit "a and crd leave git"
expect_rc "sync --prune (Namespace and CRD hold others' objects)" 0 "$G" sync "$env" --prune
expect_contains "Namespace kept with the count" "kept    Namespace $nsx: holds 3 objects gitops does not manage" "$out"
expect_contains "CRD kept" "kept    CustomResourceDefinition widgets.$group: holds 1 object gitops does not manage" "$out"
expect_eq "the Namespace is not being deleted" "Active" "$(kubectl get ns "$nsx" -o jsonpath='{.status.phase}')"
expect_eq "their objects are there" "configmap/theirs secret/their-secret" "$(kubectl -n "$nsx" get cm/theirs secret/their-secret -o name | xargs)"
expect_eq "our objects in it were pruned" "" "$(exists "$nsx" stays-a)"
expect_eq "our custom resource was pruned" "" "$(kubectl -n "$nsx" get widget.$group ours -o name --ignore-not-found 2>&1)"
expect_eq "their custom resource is there" "widget.$group/theirs" "$(kubectl -n "$nsx" get widget.$group theirs -o name 2>&1)"
kubectl -n "$nsx" delete configmap theirs >/dev/null; kubectl -n "$nsx" delete secret their-secret >/dev/null
kubectl -n "$nsx" delete widget.$group theirs >/dev/null
expect_rc "sync --prune once they are gone" 0 "$G" sync "$env" --prune
expect_contains "Namespace pruned" "pruned  Namespace $nsx" "$out"
expect_contains "CRD pruned" "pruned  CustomResourceDefinition widgets.$group" "$out"
expect_contains "the Namespace is being deleted" "Terminating" "$(kubectl get ns "$nsx" -o jsonpath='{.status.phase}' 2>&1 || echo Terminating)"

# --- an inventory of an earlier release (gitops-inventory-<env>): used only when its revision is
# a commit of this repository
repo=$tmp/legacy; mkdir -p "$repo/app" && cd "$repo"; nsl=own-c-$$
kubectl create ns "$nsl" >/dev/null
printf 'apiVersion: gitops/v1\nkind: Pipeline\nenvironments:\n  - name: %s\n    namespace: %s\n    apps: [{name: app, path: app}]\n' "old$$" "$nsl" > gitops.yaml
{ cm keep; cm old; } > app/o.yaml; git init -q -b main && commit init; c1=$(git rev-parse HEAD)
for n in keep old; do  # as an earlier release labelled them
  kubectl -n "$nsl" create configmap "$n" --from-literal=v=1 >/dev/null
  kubectl -n "$nsl" label configmap "$n" app.kubernetes.io/managed-by=gitops gitops.dev/environment="old$$" gitops.dev/app=app >/dev/null
done
kubectl -n "$nsl" create configmap foreign --from-literal=v=1 >/dev/null
kubectl -n "$nsl" label configmap foreign app.kubernetes.io/managed-by=gitops gitops.dev/environment="old$$" gitops.dev/app=app >/dev/null
python3 - "$c1" "$nsl" "old$$" <<'PY' | kubectl apply -f - >/dev/null
import json, sys
sha, ns, env = sys.argv[1:]
objs = [{"apiVersion": "v1", "kind": "ConfigMap", "namespace": ns, "name": n, "app": "app"} for n in ("keep", "old")]
print(json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "gitops-inventory-" + env, "namespace": "gitops-system"},
  "data": {"inventory.json": json.dumps({"revision": sha, "syncedAt": "", "objects": objs})}}))
PY
cm keep > app/o.yaml; commit "old leaves git"
expect_rc "first sync with an earlier release's inventory" 0 "$G" sync "old$$" --prune
expect_contains "takes the earlier entries over" "using 2 entries of the inventory gitops-system/gitops-inventory-old$$" "$out"
expect_eq "an object it recorded is pruned" "" "$(exists "$nsl" old)"
expect_eq "an object it did not record is not" configmap/foreign "$(exists "$nsl" foreign)"
expect_eq "the kept object now has the pipeline label" "repo-$(git rev-list --max-parents=0 HEAD | cut -c1-16)" \
  "$(kubectl -n "$nsl" get cm keep -o jsonpath='{.metadata.labels.gitops\.dev/pipeline}')"

# --- an inventory in its grouped form (what a sync writes when the plain one would pass 1 MB):
# read back whole, so what it lists is owned (kept, pruned) and nothing else is
repo=$tmp/grouped; mkdir -p "$repo/app" && cd "$repo"; nsg=own-g-$$
kubectl create ns "$nsg" >/dev/null
printf 'apiVersion: gitops/v1\nkind: Pipeline\nname: grp%s\nenvironments:\n  - name: g%s\n    namespace: %s\n    apps: [{name: app, path: app}]\n' "$$" "$$" "$nsg" > gitops.yaml
cm keep > app/o.yaml; git init -q -b main && commit init
for n in keep gone1 gone2 foreign; do
  kubectl -n "$nsg" create configmap "$n" --from-literal=v=1 >/dev/null
  kubectl -n "$nsg" label configmap "$n" app.kubernetes.io/managed-by=gitops gitops.dev/pipeline="grp$$" \
    gitops.dev/environment="g$$" gitops.dev/app=app >/dev/null
done
python3 - "$nsg" "$$" <<'PY' | kubectl apply -f - >/dev/null
import json, sys
ns, pid = sys.argv[1:]
doc = {"pipeline": "grp" + pid, "environment": "g" + pid, "revision": "", "syncedAt": "",
       "groups": [{"apiVersion": "v1", "kind": "ConfigMap", "namespace": ns, "app": "app", "names": ["gone1", "keep"]},
                  {"apiVersion": "v1", "kind": "ConfigMap", "namespace": ns, "app": "app", "names": ["gone2"]}]}
print(json.dumps({"apiVersion": "v1", "kind": "ConfigMap",
  "metadata": {"name": "gitops-inventory.grp%s.g%s" % (pid, pid), "namespace": "gitops-system"},
  "data": {"inventory.json": json.dumps(doc)}}))
PY
expect_rc "sync --prune with a grouped inventory" 0 "$G" sync "g$$" --prune
expect_contains "its entries are owned: the one still in git is unchanged" "1 unchanged" "$out"
expect_eq "entries of both groups are pruned" "" "$(exists "$nsg" gone1)$(exists "$nsg" gone2)"
expect_eq "an object it does not list is not" configmap/foreign "$(exists "$nsg" foreign)"
expect_eq "written back in the plain form" "keep" "$(inv "grp$$" "g$$")"

# --- concurrent syncs of one environment, then a prune that removes everything git dropped
repo=$tmp/conc; mkdir -p "$repo/app" && cd "$repo"
printf 'apiVersion: gitops/v1\nkind: Pipeline\nname: own%s\nenvironments:\n  - name: c%s\n    namespace: %s\n    apps: [{name: app, path: app}]\n' "$$" "$$" "$nsb" > gitops.yaml
cm base > app/base.yaml; git init -q -b main && commit base
git checkout -q -b r1 && for i in $(seq 1 20); do cm "r1-$i"; done > app/r.yaml && commit r1
git checkout -q main && git checkout -q -b r2 && for i in $(seq 1 20); do cm "r2-$i"; done > app/r.yaml && commit r2
git checkout -q main
for round in 1 2 3 4 5; do
  "$G" sync "c$$" --revision r1 --prune >"$tmp/s1.$round" 2>&1 & p1=$!
  "$G" sync "c$$" --revision r2 --prune >"$tmp/s2.$round" 2>&1 & p2=$!
  wait $p1; r1=$?; wait $p2; r2=$?
  expect_eq "round $round: both concurrent syncs succeed" "0 0" "$r1 $r2"
done
cat "$tmp"/s1.* "$tmp"/s2.* | grep -q "waiting for another sync" && ok "a concurrent sync waited for the lock" ||
  ok "(the syncs did not overlap this time)"
live=$(kubectl -n "$nsb" get cm -l gitops.dev/pipeline=own$$ -o name | sed 's|configmap/||' | sort | xargs)
expect_eq "every live object of the pipeline is in the inventory" "$live" "$(inv "own$$" "c$$")"
expect_rc "sync main --prune" 0 "$G" sync "c$$" --prune
expect_eq "the prune left exactly what git has" "base" \
  "$(kubectl -n "$nsb" get cm -l gitops.dev/pipeline=own$$ -o name | sed 's|configmap/||' | xargs)"
expect_eq "the inventory holds exactly that" "base" "$(inv "own$$" "c$$")"

# --- a render cache entry altered to hold another object than the one it names (the cache keeps
# objects as text until they are compared): refused, nothing applied in its place
python3 - "$GITOPS_DATA_DIR/render-cache" "intruder-$$" "$nsb" <<'PY'
import json, os, sys
root, name, ns = sys.argv[1:]
n = 0
for d, _, files in os.walk(root):
    for f in files:
        p = os.path.join(d, f); lines = open(p).read().split("\n")
        for i, row in enumerate(json.loads(lines[0])["rows"]):  # then one object per line
            if row[3] == "ConfigMap" and row[5] == "base":
                o = json.loads(lines[i + 1]); o["metadata"] = {"name": name, "namespace": ns}
                lines[i + 1] = json.dumps(o, separators=(",", ":")); n += 1
        open(p, "w").write("\n".join(lines))
assert n > 0, "no cache entry holds ConfigMap base"
PY
expect_rc "diff refuses an altered render cache entry (exit 3)" 3 "$G" diff "c$$" --quiet
expect_contains "the error names the object and the cache" "ConfigMap base: the render cache entry is damaged" "$out"
expect_rc "so does sync" 3 "$G" sync "c$$" --prune
expect_eq "nothing was applied in its place" "" "$(exists "$nsb" "intruder-$$")"
expect_eq "nor pruned" "base" "$(inv "own$$" "c$$")"
rm -rf "$GITOPS_DATA_DIR/render-cache"
expect_rc "without the cache: rendered again, in sync" 0 "$G" diff "c$$" --quiet
# a row naming another namespace than its object's text has: refused too, never applied there
python3 - "$GITOPS_DATA_DIR/render-cache" <<'PY'
import json, os, sys
n = 0
for d, _, files in os.walk(sys.argv[1]):
    for f in files:
        p = os.path.join(d, f); lines = open(p).read().split("\n"); head = json.loads(lines[0])
        for row in head["rows"]:
            if row[3] == "ConfigMap" and row[5] == "base":
                row[4] = "kube-system"; n += 1
        lines[0] = json.dumps(head, separators=(",", ":"))
        open(p, "w").write("\n".join(lines))
assert n > 0, "no cache entry holds ConfigMap base"
PY
expect_rc "diff refuses a render cache row whose namespace is not its object's (exit 3)" 3 "$G" diff "c$$" --quiet
expect_contains "the error names the object and the cache" "ConfigMap base: the render cache entry is damaged" "$out"
expect_rc "so does sync" 3 "$G" sync "c$$" --prune
expect_eq "nothing was applied in that namespace" "" "$(exists kube-system base)"
expect_eq "nor pruned" "base" "$(inv "own$$" "c$$")"
rm -rf "$GITOPS_DATA_DIR/render-cache"
expect_rc "without the cache: in sync again" 0 "$G" diff "c$$" --quiet
t_done
