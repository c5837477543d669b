#!/usr/bin/env bash
# End-to-end tests of diff / sync / drift / status against the local control plane, with a real
# git repository: create, no-op resync, drift by another field manager, restore, fields others
# own, pruning that never touches objects gitops did not create, CRDs with their resources in
# one pass, Secret masking, partial failures and bad input.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../../lib.sh"
need kubectl
G=${GITOPS_BIN:?run through make test}
tmp=$(mktemp -d)
ns=sync-it-$$; other=sync-other-$$; group=it$$.gitops.dev
export GITOPS_DATA_DIR=$tmp/data
cleanup() { kubectl delete ns "$ns" "$other" --wait=false >/dev/null 2>&1
  kubectl delete crd "gadgets.$group" --wait=false >/dev/null 2>&1
  kubectl -n gitops-system get configmap,lease -o name 2>/dev/null | grep -E "\.it$$\$" |
    xargs -r kubectl -n gitops-system delete >/dev/null 2>&1; rm -rf "$tmp"; }
trap cleanup EXIT

repo=$tmp/repo; mkdir -p "$repo/web" "$repo/crd"
cd "$repo"
cat > gitops.yaml <<Y
apiVersion: gitops/v1
kind: Pipeline
branch: main
environments:
  - name: it$$
    track: main
    namespace: $ns
    apps:
      - {name: web, path: web}
      - {name: crd, path: crd}
    sync: {auto: false, prune: false, selfHeal: false}
Y
cat > web/namespace.yaml <<Y
apiVersion: v1
kind: Namespace
metadata: {name: $ns}
Y
cat > web/deploy.yaml <<'Y'
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: web
          image: nginx:1.27
          ports: [{containerPort: 80}]
          resources:
            requests: {cpu: 500m, memory: 0.5Gi}
            limits: {cpu: "1", memory: 1Gi}
Y
cat > web/service.yaml <<'Y'
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 80}]
Y
cat > web/config.yaml <<'Y'
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {color: blue, size: "3"}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: old}
data: {doomed: "yes"}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: replaced}
data: {v: "1"}
---
apiVersion: v1
kind: Secret
metadata: {name: creds}
stringData: {password: hunter2-$$}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: reader}
rules:
  - apiGroups: [""]
    resources: [configmaps]
    verbs: [get, list]
Y
cat > crd/crd.yaml <<Y
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: gadgets.$group}
spec:
  group: $group
  scope: Namespaced
  names: {plural: gadgets, singular: gadget, kind: Gadget}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec: {type: object, x-kubernetes-preserve-unknown-fields: true}
---
apiVersion: $group/v1
kind: Gadget
metadata: {name: g1}
spec: {size: 3}
Y
git init -q -b main && git add -A && git -c user.name=t -c user.email=t@t commit -qm init
commit() { git add -A && git -c user.name=t -c user.email=t@t commit -qm "$1"; }
rvs() { kubectl -n "$ns" get deploy,svc,cm,secret,role -o custom-columns=N:.metadata.name,RV:.metadata.resourceVersion --no-headers | sort; }
env=it$$

# --- first sync: everything is created, CRD and its resource in one pass
expect_rc "diff before the first sync exits 1" 1 "$G" diff "$env" --quiet
expect_rc "dry run exits 0" 0 "$G" sync "$env" --dry-run --quiet
expect_contains "dry run skips what needs a new Namespace or CRD" "skipped" "$out"
expect_eq "dry run created nothing" "" "$(kubectl get ns "$ns" -o name 2>/dev/null)"
expect_rc "first sync succeeds" 0 "$G" sync "$env"
expect_contains "first sync created every object" "10 created, 0 updated" "$out"
expect_eq "the custom resource exists" "3" "$(kubectl -n "$ns" get gadget.$group g1 -o jsonpath='{.spec.size}' 2>&1)"
expect_eq "objects carry gitops' labels" "gitops repo-$(git rev-list --max-parents=0 HEAD | cut -c1-16) $env web" \
  "$(kubectl -n "$ns" get cm settings -o jsonpath='{.metadata.labels.app\.kubernetes\.io/managed-by} {.metadata.labels.gitops\.dev/pipeline} {.metadata.labels.gitops\.dev/environment} {.metadata.labels.gitops\.dev/app}')"

# --- no false drift right after a sync; a second sync writes nothing
expect_rc "diff right after sync exits 0 (no false drift)" 0 "$G" diff "$env" --quiet
before=$(rvs)
expect_rc "second sync succeeds" 0 "$G" sync "$env"
expect_contains "second sync writes nothing" "0 created, 0 updated, 10 unchanged" "$out"
expect_eq "resourceVersions unchanged by the second sync" "$before" "$(rvs)"
expect_rc "drift: none" 0 "$G" drift "$env" --quiet

# --- drift: a managed field changed by another manager, a deleted object
printf 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings, namespace: %s}\ndata: {color: red}\n' "$ns" |
  kubectl apply --server-side --force-conflicts --field-manager=other -f - >/dev/null
kubectl -n "$ns" delete service web >/dev/null
expect_rc "drift exits 1" 1 "$G" drift "$env" --quiet
expect_contains "MODIFIED names the field" "MODIFIED" "$(echo "$out" | grep settings)"
expect_contains "MODIFIED lists .data.color" ".data.color" "$(echo "$out" | grep settings)"
expect_contains "DELETED service" "DELETED" "$(echo "$out" | grep 'Service')"
jout=$("$G" drift "$env" --json 2>/dev/null)
expect_contains "drift --json has the field path" '"path": ".data.color"' "$jout"
expect_rc "sync restores both" 0 "$G" sync "$env" --quiet
expect_eq "value restored" blue "$(kubectl -n "$ns" get cm settings -o jsonpath='{.data.color}')"
expect_eq "service restored" service/web "$(kubectl -n "$ns" get svc web -o name 2>&1)"
expect_rc "in sync again" 0 "$G" diff "$env" --quiet

# --- fields others own are not drift
kubectl -n "$ns" scale deploy web --replicas=5 >/dev/null
kubectl -n "$ns" annotate cm settings by-hand=yes >/dev/null
kubectl -n "$ns" label cm settings team=blue >/dev/null
expect_rc "scale + hand annotation + label are not drift" 0 "$G" drift "$env" --quiet

# --- Secrets are masked
kubectl -n "$ns" patch secret creds -p '{"stringData":{"password":"changed-by-hand-'$$'"}}' >/dev/null
dout=$("$G" diff "$env" --no-color --quiet 2>&1); drc=$?
expect_eq "a changed Secret is a difference" 1 "$drc"
expect_contains "the diff names the Secret key" "password" "$dout"
case "$dout$("$G" drift "$env" --json 2>&1)" in
  *hunter2-$$*|*changed-by-hand-$$*) fail "Secret value printed" ;; *) ok "no Secret value in diff or drift output" ;;
esac
rout=$("$G" render "$env" 2>&1)
expect_contains "render shows the Secret's key" "password" "$rout"
case "$rout" in *hunter2-$$*) fail "render printed a Secret value" ;; *) ok "render masks Secret values" ;; esac
"$G" sync "$env" --quiet >/dev/null 2>&1

# --- pruning: only what gitops created and git dropped
kubectl create ns "$other" >/dev/null
kubectl -n "$other" create configmap old --from-literal=mine=yes >/dev/null      # same kind+name elsewhere
kubectl -n "$ns" create configmap stray --from-literal=mine=yes >/dev/null       # never in git, no labels
kubectl -n "$ns" delete configmap replaced >/dev/null                            # replaced by a hand-made one
kubectl -n "$ns" create configmap replaced --from-literal=v=hand >/dev/null
python3 - web/config.yaml <<'PY'
import sys
p = sys.argv[1]; docs = open(p).read().split('---\n')
open(p, 'w').write('---\n'.join(d for d in docs if 'name: old}' not in d and 'name: replaced}' not in d))
PY
commit "drop old and replaced"
expect_rc "sync without prune keeps extras" 0 "$G" sync "$env"
expect_contains "extra reported, not deleted" "1 extra kept" "$out"
expect_eq "old still there (prune off)" configmap/old "$(kubectl -n "$ns" get cm old -o name 2>&1)"
expect_rc "drift shows the extra" 1 "$G" drift "$env" --quiet
expect_contains "EXTRA old" "EXTRA" "$(echo "$out" | grep '/old ')"
expect_rc "sync --prune" 0 "$G" sync "$env" --prune
expect_contains "one object pruned" "1 pruned" "$out"
expect_eq "old pruned" "" "$(kubectl -n "$ns" get cm old -o name --ignore-not-found 2>&1)"
expect_eq "same name in another namespace untouched" configmap/old "$(kubectl -n "$other" get cm old -o name 2>&1)"
expect_eq "hand-made object untouched" configmap/stray "$(kubectl -n "$ns" get cm stray -o name 2>&1)"
expect_eq "hand-made replacement untouched" hand "$(kubectl -n "$ns" get cm replaced -o jsonpath='{.data.v}' 2>&1)"
expect_rc "in sync after prune" 0 "$G" diff "$env" --quiet

# --- status
sout=$("$G" status "$env" --json 2>&1)
expect_contains "status: Synced" '"state": "Synced"' "$sout"
expect_contains "status: revision" "\"synced\": \"$(git rev-parse HEAD)\"" "$sout"

# --- a failing object does not stop the others
git checkout -q -b broken
cat > web/bad.yaml <<'Y'
apiVersion: v1
kind: ConfigMap
metadata: {name: Not_A_Valid_Name}
data: {x: "1"}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: fine-neighbour}
data: {x: "1"}
Y
commit broken
expect_rc "partial failure exits 6" 6 "$G" sync "$env" --revision broken
expect_contains "failure names the object and reason" "Not_A_Valid_Name" "$out"
expect_eq "the neighbour was applied" configmap/fine-neighbour "$(kubectl -n "$ns" get cm fine-neighbour -o name 2>&1)"
git checkout -q main

# --- bad input: one line, documented exit codes
expect_rc "unknown environment exits 3" 3 "$G" sync nowhere
expect_contains "names the known environments" "known: $env" "$out"
expect_rc "unknown revision exits 5" 5 "$G" diff "$env" --revision does-not-exist --quiet
git checkout -q -b badkind
printf 'apiVersion: example.com/v1\nkind: Unheard\nmetadata: {name: x}\n' > web/unknown.yaml
commit badkind
expect_rc "unknown kind exits 3" 3 "$G" sync "$env" --revision badkind --quiet
expect_contains "names file and line" "web/unknown.yaml:1" "$out"
git checkout -q main
git checkout -q main
printf 'apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]\nusers: [{name: u, user: {}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n' > "$tmp/dead.kubeconfig"
expect_rc "unreachable cluster exits 4" 4 "$G" diff "$env" --kubeconfig "$tmp/dead.kubeconfig" --quiet
expect_eq "unreachable cluster: one line" 1 "$(printf '%s\n' "$out" | wc -l)"
# --- the state branch may live in a separate repository (--state-repo)
git init -q --bare "$tmp/state.git"
expect_rc "sync with --state-repo" 0 "$G" sync "$env" --state-repo "$tmp/state.git" --quiet
expect_contains "the sync was recorded in the separate state repository" "sync.succeeded" \
  "$(git -C "$tmp/state.git" log --format=%s gitops/state 2>&1)"

# --- a renderer that is missing is bad input (exit 3), named
mkdir -p kapp && printf 'resources: [cm.yaml]\n' > kapp/kustomization.yaml && printf 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: k}\n' > kapp/cm.yaml
python3 - gitops.yaml <<'PY'
import sys; p = sys.argv[1]; s = open(p).read()
open(p, 'w').write(s.replace("      - {name: crd, path: crd}", "      - {name: crd, path: crd}\n      - {name: k, path: kapp}"))
PY
commit "a kustomize app"
expect_rc "missing kustomize binary exits 3" 3 env GITOPS_KUSTOMIZE=/nonexistent/kustomize "$G" diff "$env" --quiet
expect_contains "names the missing binary" "kustomize" "$out"
t_done
