#!/usr/bin/env bash
# The local control plane serves; the built kubectl creates and reads a ConfigMap; helm and
# kustomize render a tiny chart and an overlay; workloads run on kwok's fake nodes: a Deployment
# becomes Available with Ready pods, a Job completes, a namespace finishes deleting, and pods of an
# image tagged `broken` never get Ready. Needs build/cluster/env sourced (tests/run.sh).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../../lib.sh"
. "$here/../../testenv/versions.env"
need kubectl; need helm; need kustomize; need kube-controller-manager; need kube-scheduler; need kwok
tmp=$(mktemp -d); trap 'rm -rf "$tmp"; kubectl delete ns smoke-$$ smoke-gone-$$ --wait=false >/dev/null 2>&1' EXIT

expect_eq "apiserver /readyz" ok "$(kubectl get --raw /readyz 2>&1)"
expect_contains "kubectl is the pinned release" "$KUBERNETES_VERSION" "$(kubectl version --client 2>&1)"
expect_contains "apiserver is the pinned release" "$KUBERNETES_VERSION" "$(kubectl version 2>&1 | grep Server)"
expect_contains "controller-manager is the pinned release" "$KUBERNETES_VERSION" "$(kube-controller-manager --version 2>&1)"
expect_contains "scheduler is the pinned release" "$KUBERNETES_VERSION" "$(kube-scheduler --version 2>&1)"
expect_contains "kwok is the pinned release" "${KWOK_VERSION#v}" "$(kwok --version 2>&1)"

kubectl create namespace smoke-$$ >/dev/null
expect_rc "kubectl creates a ConfigMap" 0 kubectl -n smoke-$$ create configmap hello --from-literal=greeting=hi
expect_eq "kubectl reads it back" hi "$(kubectl -n smoke-$$ get configmap hello -o jsonpath='{.data.greeting}')"

mkdir -p "$tmp/chart/templates"
cat > "$tmp/chart/Chart.yaml" <<Y
apiVersion: v2
name: tiny
version: 0.1.0
Y
echo 'color: blue' > "$tmp/chart/values.yaml"
cat > "$tmp/chart/templates/cm.yaml" <<'Y'
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-cfg
data:
  color: {{ .Values.color | quote }}
Y
echo 'color: red' > "$tmp/prod.yaml"
out=$(helm template web "$tmp/chart" -f "$tmp/prod.yaml" 2>&1)
expect_contains "helm renders the release name" "name: web-cfg" "$out"
expect_contains "helm applies the values file" 'color: "red"' "$out"

mkdir -p "$tmp/kust/base" "$tmp/kust/overlay"
cat > "$tmp/kust/base/cm.yaml" <<Y
apiVersion: v1
kind: ConfigMap
metadata: {name: app}
data: {mode: base}
Y
printf 'resources: [cm.yaml]\n' > "$tmp/kust/base/kustomization.yaml"
printf 'resources: [../base]\nnamePrefix: prod-\n' > "$tmp/kust/overlay/kustomization.yaml"
out=$(kustomize build "$tmp/kust/overlay" 2>&1)
expect_contains "kustomize applies the overlay's prefix" "name: prod-app" "$out"
expect_contains "kustomize keeps the base's data" "mode: base" "$out"
# Workloads on the fake nodes.
nodes=${GITOPS_FAKE_NODES:-3}
expect_eq "$nodes kwok nodes are Ready" "$(yes True | head -n "$nodes" | xargs)" \
  "$(kubectl get nodes -l type=kwok -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status} {end}' | xargs)"
kubectl apply -f - >/dev/null <<Y
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: smoke-$$}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: "nginx:1.27"}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: bad, namespace: smoke-$$}
spec:
  replicas: 1
  progressDeadlineSeconds: 2
  selector: {matchLabels: {app: bad}}
  template:
    metadata: {labels: {app: bad}}
    spec: {containers: [{name: app, image: "example.com/app:broken"}]}
---
apiVersion: batch/v1
kind: Job
metadata: {name: once, namespace: smoke-$$}
spec:
  template:
    spec: {restartPolicy: Never, containers: [{name: once, image: "busybox:1"}]}
Y
expect_rc "the Deployment rolls out" 0 kubectl -n smoke-$$ rollout status deployment/web --timeout=90s
expect_eq "it is Available" True \
  "$(kubectl -n smoke-$$ get deployment web -o jsonpath='{.status.conditions[?(@.type=="Available")].status}')"
expect_eq "its two pods are Ready on kwok nodes" "True kwok-node True kwok-node" \
  "$(kubectl -n smoke-$$ get pods -l app=web -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status} {.spec.nodeName} {end}' | sed 's/kwok-node-[0-9]*/kwok-node/g' | xargs)"
expect_rc "the Job completes" 0 kubectl -n smoke-$$ wait --for=condition=Complete job/once --timeout=90s
expect_eq "its pod Succeeded" Succeeded "$(kubectl -n smoke-$$ get pods -l job-name=once -o jsonpath='{.items[0].status.phase}')"
# The broken image: its Deployment goes past its 2 s progress deadline with no pod Ready.
expect_rc "the broken Deployment exceeds its progress deadline" 0 kubectl -n smoke-$$ wait deployment/bad \
  --for=jsonpath='{.status.conditions[?(@.type=="Progressing")].reason}'=ProgressDeadlineExceeded --timeout=90s
expect_eq "its pod is in CrashLoopBackOff, not Ready" "CrashLoopBackOff False" \
  "$(kubectl -n smoke-$$ get pods -l app=bad -o jsonpath='{.items[0].status.containerStatuses[0].state.waiting.reason} {.items[0].status.conditions[?(@.type=="Ready")].status}')"
expect_eq "the broken Deployment has no ready replica" "" \
  "$(kubectl -n smoke-$$ get deployment bad -o jsonpath='{.status.readyReplicas}')"
# A namespace with running pods finishes deleting (namespace controller, kwok deletes the pods).
kubectl create namespace smoke-gone-$$ >/dev/null
kubectl -n smoke-gone-$$ create deployment app --image=nginx:1.27 --replicas=2 >/dev/null
expect_rc "a Deployment in it rolls out" 0 kubectl -n smoke-gone-$$ rollout status deployment/app --timeout=90s
expect_rc "the namespace finishes deleting" 0 kubectl delete namespace smoke-gone-$$ --timeout=120s
expect_contains "it is gone" NotFound "$(kubectl get namespace smoke-gone-$$ 2>&1)"
t_done
