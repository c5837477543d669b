#!/usr/bin/env bash
# The local control plane serves; the built kubectl creates and reads a ConfigMap; helm and
# kustomize render a tiny chart and an overlay. Needs build/cluster/env sourced (tests/run.sh).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../../lib.sh"
. "$here/../../testenv/versions.env"
need kubectl; need helm; need kustomize
tmp=$(mktemp -d); trap 'rm -rf "$tmp"; kubectl delete ns smoke-$$ --wait=false >/dev/null 2>&1' EXIT

expect_eq "apiserver /readyz" ok "$(kubectl get --raw /readyz 2>&1)"
expect_contains "kubectl is the pinned release" "$KUBERNETES_VERSION" "$(kubectl version --client 2>&1)"
expect_contains "apiserver is the pinned release" "$KUBERNETES_VERSION" "$(kubectl version 2>&1 | grep Server)"

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
t_done
