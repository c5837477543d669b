#!/usr/bin/env bash
# deploy/ end to end: gitops itself applies the Kustomize manifests to the local control plane
# (server-side apply with strict field validation: a misspelt field is refused), the Deployment
# rolls out on the kwok nodes, and the daemon then runs out of cluster with the Deployment's own
# arguments under the ServiceAccount's token (so the RBAC rules are what it really gets): it
# becomes ready, takes its Lease, syncs an environment, and stops with SIGTERM.
# Every wait is on a condition with a generous timeout; no wall-clock time is asserted.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
. "$here/../../lib.sh"
need kubectl
need kustomize
need curl
G=${GITOPS_BIN:?run through make test}
: "${GITOPS_CLUSTER_DIR:?source build/cluster/env}"
tmp=$(mktemp -d)
p=inst$$; ns=deploy-it-$$
export GITOPS_DATA_DIR=$tmp/data
daemon_pid=
cleanup() { [ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null; wait 2>/dev/null
  kubectl -n gitops-system delete deploy/gitops svc/gitops pdb/gitops sa/gitops role/gitops rolebinding/gitops cm/gitops-config \
    --ignore-not-found --wait=false >/dev/null 2>&1
  kubectl delete clusterrole/gitops clusterrolebinding/gitops --ignore-not-found >/dev/null 2>&1
  # gitops-system itself stays (other pipelines keep their inventories there): only our adoption goes
  kubectl label ns gitops-system app.kubernetes.io/managed-by- app.kubernetes.io/name- app.kubernetes.io/part-of- \
    gitops.dev/app- gitops.dev/environment- gitops.dev/pipeline- >/dev/null 2>&1
  kubectl -n gitops-system get cm,lease -o name 2>/dev/null | grep -E "\.($p|app$p)\.|gitops-app$p-|replica-deploy-test" | xargs -r kubectl -n gitops-system delete >/dev/null 2>&1
  kubectl delete ns "$ns" --wait=false >/dev/null 2>&1; rm -rf "$tmp"; }
trap cleanup EXIT
wait_for() { local t=$1; shift; local end=$((SECONDS + t)); while [ $SECONDS -lt $end ]; do "$@" >/dev/null 2>&1 && return 0; sleep 0.5; done; return 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

expect_rc "kustomize builds deploy/" 0 kustomize build "$root/deploy"
for k in Namespace ServiceAccount ClusterRole ClusterRoleBinding Role RoleBinding ConfigMap Deployment Service PodDisruptionBudget; do
  expect_contains "deploy/ has a $k" "kind: $k" "$out"
done

# --- gitops applies deploy/ (an app rendered by kustomize) ----------------------------------------
inst=$tmp/install; mkdir -p "$inst"; cp -r "$root/deploy" "$inst/app"; rm -f "$inst/app/Dockerfile" "$inst/app/README.md"
cat > "$inst/gitops.yaml" <<Y
apiVersion: gitops/v1
kind: Pipeline
name: $p
branch: main
environments:
  - {name: install, track: main, namespace: gitops-system, apps: [{name: gitops, path: app}]}
Y
(cd "$inst" && git init -q -b main . && git add -A && git -c user.name=t -c user.email=t@t commit -qm install)
# strict validation: a misspelt field is refused by the server, nothing half-applied
cp -r "$inst" "$tmp/bad"; sed -i 's/^  replicas: 2/  replicaz: 2/' "$tmp/bad/app/deployment.yaml"
(cd "$tmp/bad" && sed -i "s/name: $p/name: bad$p/" gitops.yaml && git -c user.name=t -c user.email=t@t commit -qam typo)
expect_rc "a misspelt field in deploy/ is refused by the server's dry run (strict validation)" 6 "$G" sync install --repo "$tmp/bad" --adopt --dry-run
expect_contains "  naming the field" "replicaz" "$out"
expect_eq "  and the dry run wrote nothing" "" "$(kubectl -n gitops-system get deploy gitops -o name 2>/dev/null)"
expect_rc "gitops syncs deploy/ into gitops-system" 0 "$G" sync install --repo "$inst" --adopt --quiet
if wait_for 180 kubectl -n gitops-system rollout status deploy/gitops --timeout=5s; then ok "the Deployment rolls out (two replicas on kwok nodes)"; else fail "rollout" "$(kubectl -n gitops-system get deploy,pods 2>&1)"; fi
expect_eq "the probes are /healthz and /readyz" "/healthz /readyz" \
  "$(kubectl -n gitops-system get deploy gitops -o jsonpath='{.spec.template.spec.containers[0].livenessProbe.httpGet.path} {.spec.template.spec.containers[0].readinessProbe.httpGet.path}')"
expect_eq "it runs as non-root" true "$(kubectl -n gitops-system get deploy gitops -o jsonpath='{.spec.template.spec.securityContext.runAsNonRoot}')"
expect_eq "the PodDisruptionBudget keeps one of two" 1 "$(kubectl -n gitops-system get pdb gitops -o jsonpath='{.spec.minAvailable}')"

# --- the daemon with the Deployment's arguments, as the ServiceAccount ----------------------------
token=$(kubectl -n gitops-system create token gitops --duration 1h)
[ -n "$token" ] || fail "ServiceAccount token"
python3 - "$KUBECONFIG" "$tmp/sa.kubeconfig" "$token" <<'PY'
import json, subprocess, sys
src, dst, token = sys.argv[1:4]
cfg = json.loads(subprocess.check_output(["kubectl", "--kubeconfig", src, "config", "view", "--raw", "--minify", "-o", "json"]))
cfg["users"] = [{"name": "gitops-sa", "user": {"token": token}}]
cfg["contexts"][0]["context"]["user"] = "gitops-sa"
open(dst, "w").write(json.dumps(cfg))
PY
expect_rc "the ServiceAccount may not read Secrets in kube-system through a namespaced rule only (sanity)" 0 \
  kubectl --kubeconfig "$tmp/sa.kubeconfig" auth can-i patch configmaps -n default
expect_eq "the ServiceAccount cannot impersonate" no "$(kubectl --kubeconfig "$tmp/sa.kubeconfig" auth can-i impersonate users 2>/dev/null)"
# a manifests repository for the daemon to reconcile
repo=$tmp/repo; mkdir -p "$repo/app"
cat > "$repo/gitops.yaml" <<Y
apiVersion: gitops/v1
kind: Pipeline
name: app$p
branch: main
environments:
  - {name: prod, track: main, namespace: $ns, apps: [{name: app, path: app}], sync: {auto: true, selfHeal: true}}
Y
printf 'apiVersion: v1\nkind: Namespace\nmetadata: {name: %s}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {color: blue}\n' "$ns" > "$repo/app/all.yaml"
(cd "$repo" && git init -q -b main . && git add -A && git -c user.name=t -c user.email=t@t commit -qm one)
printf 'webhook-secret\n' > "$tmp/webhook-secret"
port=$(free_port)
mapfile -t args < <(kubectl -n gitops-system get deploy gitops -o json | python3 -c '
import json, sys
for a in json.load(sys.stdin)["spec"]["template"]["spec"]["containers"][0]["args"]: print(a)')
expect_eq "the Deployment runs gitops run" run "${args[0]}"
# what only exists inside the pod is pointed at its local equivalent; every other argument as is
for i in "${!args[@]}"; do
  args[$i]=${args[$i]//\$(GITOPS_REPO)/$repo}
  args[$i]=${args[$i]//\/etc\/gitops\/webhook\/secret/$tmp/webhook-secret}
  args[$i]=${args[$i]//0.0.0.0:9090/127.0.0.1:$port}
done
echo "     (gitops ${args[*]})"
KUBECONFIG=$tmp/sa.kubeconfig POD_NAME=deploy-test-0 POD_NAMESPACE=gitops-system "$G" "${args[@]}" >"$tmp/daemon.log" 2>&1 & daemon_pid=$!
if wait_for 120 curl -fsS "http://127.0.0.1:$port/readyz"; then ok "the daemon becomes ready under the ServiceAccount"; else fail "readyz" "$(tail -20 "$tmp/daemon.log")"; fi
if wait_for 120 bash -c "[ \"\$(kubectl -n $ns get cm settings -o jsonpath='{.data.color}' 2>/dev/null)\" = blue ]"; then ok "it syncs the environment with the RBAC of deploy/"; else fail "sync as SA" "$(tail -20 "$tmp/daemon.log")"; fi
expect_eq "it holds the environment's Lease" deploy-test-0 "$(kubectl -n gitops-system get lease "gitops-app$p-prod" -o jsonpath='{.spec.holderIdentity}' 2>&1)"
expect_contains "gitops_leader says so" "gitops_leader{pipeline=\"app$p\",environment=\"prod\"} 1" "$(curl -fsS "http://127.0.0.1:$port/metrics")"
expect_eq "its logs are JSON lines" 0 "$(grep -vc -e '^{' -e '^gitops: SIG' "$tmp/daemon.log")"
expect_eq "no permission was refused" 0 "$(grep -c -i forbidden "$tmp/daemon.log")"
kill -TERM "$daemon_pid"; wait "$daemon_pid"; rc=$?; daemon_pid=
expect_eq "SIGTERM exits 0" 0 "$rc"
expect_eq "the Lease was released" "" "$(kubectl -n gitops-system get lease "gitops-app$p-prod" -o jsonpath='{.spec.holderIdentity}' 2>&1)"
t_done
