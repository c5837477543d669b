#!/usr/bin/env bash
# Hooks, as Argo CD runs them, synced to the local control plane: Helm's pre-install/pre-upgrade
# hooks before the app's other objects and post-install/post-upgrade after them, test hooks never
# applied, delete policies respected, hooks never drift, never in the inventory, never pruned; a
# failing PreSync hook stops the sync before anything else is written. Also: helm renders with the
# cluster's version, and with the version last seen when the cluster is unreachable.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
. "$here/../../lib.sh"
need kubectl; need helm; need git; need jq
G=${GITOPS_BIN:?run through make test}
tmp=$(mktemp -d)
ns=hooks-it-$$; env=hk$$
export GITOPS_DATA_DIR=$tmp/data
cleanup() { kubectl delete ns "$ns" --wait=false >/dev/null 2>&1
  kubectl -n gitops-system delete configmap "gitops-inventory.$env.$env" lease/"gitops-lock.$env.$env" >/dev/null 2>&1
  rm -rf "$tmp"; }
trap cleanup EXIT
commit() { git -C "$repo" add -A && git -C "$repo" -c user.name=t -c user.email=t@example.com commit -qm "$1"; }
kubectl create ns "$ns" >/dev/null

repo=$tmp/repo; mkdir -p "$repo/chart/templates"
cat > "$repo/gitops.yaml" <<Y
apiVersion: gitops/v1
kind: Pipeline
name: $env
environments:
  - name: $env
    track: main
    namespace: $ns
    apps:
      - {name: web, path: chart}
Y
printf 'apiVersion: v2\nname: web\nversion: 0.1.0\nkubeVersion: ">=1.23.0-0"\n' > "$repo/chart/Chart.yaml"
cat > "$repo/chart/templates/all.yaml" <<'Y'
apiVersion: v1
kind: ConfigMap
metadata: {name: main}
data:
  kube: {{ .Capabilities.KubeVersion.Version | quote }}
  rev: {{ .Values.rev | default "1" | quote }}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: migrate
  annotations: {helm.sh/hook: "pre-install,pre-upgrade", helm.sh/hook-weight: "-5"}
data: {step: "1"}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: notify
  annotations: {helm.sh/hook: post-install, helm.sh/hook-delete-policy: hook-succeeded}
data: {step: "2"}
---
apiVersion: v1
kind: Pod
metadata:
  name: "{{ .Release.Name }}-test-{{ randAlphaNum 5 | lower }}"
  annotations: {helm.sh/hook: test}
spec:
  containers: [{name: t, image: busybox}]
Y
git -C "$repo" init -q -b main && commit hooks
cd "$repo"

out=$("$G" sync "$env" 2>&1); rc=$?
expect_eq "sync with hooks exits 0" 0 "$rc"
order=$(grep -E '^created' <<<"$out" | sed 's/ (dry run)//')
expect_eq "PreSync hook, then the app, then the PostSync hook" \
  "created PreSync hook ConfigMap $ns/migrate
created ConfigMap $ns/main
created PostSync hook ConfigMap $ns/notify" "$order"
expect_contains "hook-succeeded deletes the PostSync hook" "deleted PostSync hook ConfigMap $ns/notify (hook delete policy)" "$out"
expect_eq "the PreSync hook stays (before-hook-creation)" migrate "$(kubectl -n "$ns" get cm migrate -o jsonpath='{.metadata.name}' 2>&1)"
expect_rc "the PostSync hook is gone" 1 kubectl -n "$ns" get cm notify
expect_eq "the test hook Pod was never created" "" "$(kubectl -n "$ns" get pods -o name 2>&1)"
expect_eq "helm rendered for the cluster's version" "$(kubectl version -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["serverVersion"]["gitVersion"])')" \
  "$(kubectl -n "$ns" get cm main -o jsonpath='{.data.kube}')"
inv=$(kubectl -n gitops-system get configmap "gitops-inventory.$env.$env" -o json)
expect_contains "the inventory holds the app's object" '\"name\":\"main\"' "$inv"
case $inv in *migrate*|*notify*|*-test-*) fail "hooks are not in the inventory" "$inv" ;; *) ok "hooks are not in the inventory" ;; esac

expect_rc "diff after the sync: in sync (hooks are not drift)" 0 "$G" diff "$env"
expect_rc "a second sync exits 0" 0 "$G" sync "$env"
case $out in *"PreSync hook"*) fail "a sync with nothing to do ran hooks" "$out" ;; *) ok "a sync with nothing to do runs no hook" ;; esac

# a change: the PreSync hook is deleted and created again (before-hook-creation), the app updated
uid=$(kubectl -n "$ns" get cm migrate -o jsonpath='{.metadata.uid}')
printf 'rev: "2"\n' > "$repo/chart/values.yaml"; commit "rev 2"
expect_rc "sync of a change exits 0" 0 "$G" sync "$env" --prune
expect_contains "the PreSync hook ran again" "created PreSync hook ConfigMap $ns/migrate" "$out"
[ "$uid" != "$(kubectl -n "$ns" get cm migrate -o jsonpath='{.metadata.uid}')" ] && ok "before-hook-creation made a new object" || fail "the PreSync hook was not recreated"
expect_eq "the app was updated" 2 "$(kubectl -n "$ns" get cm main -o jsonpath='{.data.rev}')"
expect_eq "prune left the hook alone" migrate "$(kubectl -n "$ns" get cm migrate -o jsonpath='{.metadata.name}' 2>&1)"

# a hook that is not ours is never replaced, and a failing PreSync hook stops the sync
kubectl -n "$ns" delete cm migrate >/dev/null
kubectl -n "$ns" create cm migrate --from-literal=owner=someone-else >/dev/null
printf 'rev: "3"\n' > "$repo/chart/values.yaml"; commit "rev 3"
expect_rc "a PreSync hook failure fails the sync" 6 "$G" sync "$env"
expect_contains "the failure names the hook and why" "PreSync hook ConfigMap $ns/migrate" "$out"
expect_contains "the failure says it is not ours" "is not this environment's" "$out"
expect_eq "nothing else was applied" 2 "$(kubectl -n "$ns" get cm main -o jsonpath='{.data.rev}')"
expect_eq "the other owner's object is untouched" someone-else "$(kubectl -n "$ns" get cm migrate -o jsonpath='{.data.owner}')"

# podinfo's real chart (kubeVersion >=1.23.0-0; seven test-hook Pods with random names): synced,
# no test Pod created, in sync afterwards, a second gitops with its own render cache agrees
cp -r "$root/tests/fixtures/manifests/podinfo/podinfo" "$repo/podinfo"
cat >> "$repo/gitops.yaml" <<Y
      - {name: podinfo, path: podinfo}
Y
commit podinfo
expect_rc "podinfo syncs" 0 "$G" sync "$env" --app podinfo
expect_eq "podinfo's Deployment is there" podinfo "$(kubectl -n "$ns" get deploy podinfo -o jsonpath='{.metadata.name}' 2>&1)"
# (the Deployment's own Pods run on the fake nodes; a test Pod is one with no owner)
expect_eq "none of podinfo's test Pods was created" "" \
  "$(kubectl -n "$ns" get pods -o json | jq -r '.items[] | select((.metadata.ownerReferences // []) | length == 0) | .metadata.name')"
expect_rc "podinfo in sync after the sync" 0 "$G" diff "$env" --app podinfo
expect_rc "another render cache sees it in sync too" 0 env GITOPS_DATA_DIR="$tmp/data2" "$G" diff "$env" --app podinfo

# helm without the cluster: the capabilities last seen (same kubeconfig), said on stderr
cp "$KUBECONFIG" "$tmp/kubeconfig"
expect_rc "render with the cluster" 0 "$G" render "$env" --kubeconfig "$tmp/kubeconfig"
sed -i 's#server: https://[^ ]*#server: https://127.0.0.1:1#' "$tmp/kubeconfig"
printf 'rev: "4"\n' > "$repo/chart/values.yaml"; commit "rev 4"
expect_rc "render with the cluster unreachable" 0 "$G" render "$env" --kubeconfig "$tmp/kubeconfig"
expect_contains "the render says it uses the capabilities last seen" "capabilities last seen" "$out"
expect_contains "helm got the version last seen" "kube: $(kubectl -n "$ns" get cm main -o jsonpath='{.data.kube}')" "$out"
t_done
