#!/usr/bin/env bash
# Builds the pinned control-plane binaries (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl, kwok, helm, kustomize) from their Go modules through the Go module proxy
# into a cache outside the repository, once. A binary already there is kept (kwok is rebuilt when
# KWOK_VERSION changes: it is not part of the cache dir's name).
# Usage: build.sh [component...]   (default: all). Prints the cache bin dir on the last line.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/versions.env"
. "$here/lib.sh"

bin=$(testenv_bindir)
mkdir -p "$bin"
work=$(testenv_cachedir)/src
mkdir -p "$work"
# One build at a time: a second caller waits for the first, then finds the binaries there.
exec 9>"$(testenv_cachedir)/.build.lock"
flock 9

export GOTOOLCHAIN=local GOFLAGS=-mod=mod GOSUMDB=off CGO_ENABLED=0
export GOPROXY=${GOPROXY:-https://proxy.golang.org}

log() { printf '[testenv] %s\n' "$*" >&2; }

# run_logged NAME CMD...: runs CMD with output to a log; on failure prints the log's tail and fails.
run_logged() {
  local name=$1; shift
  local logf="$work/$name.log"
  if ! "$@" >"$logf" 2>&1; then
    log "FAILED: $name (log: $logf); last lines:"
    tail -n 40 "$logf" >&2
    exit 1
  fi
}

build_kube() { # builds kube-apiserver, kubectl, kube-controller-manager, kube-scheduler from a wrapper module
  local want=()
  for b in kube-apiserver kubectl kube-controller-manager kube-scheduler; do [ -x "$bin/$b" ] || want+=("$b"); done
  [ ${#want[@]} -eq 0 ] && return 0
  local minor=${KUBERNETES_VERSION#v1.}; minor=${minor%%.*}
  local stagever="v0.${KUBERNETES_VERSION#v1.}"
  local d="$work/kubernetes-$KUBERNETES_VERSION"
  mkdir -p "$d"
  log "kubernetes $KUBERNETES_VERSION: resolving staging modules"
  curl -fsSL "$GOPROXY/k8s.io/kubernetes/@v/$KUBERNETES_VERSION.mod" -o "$d/upstream.mod"
  {
    echo "module gitops.local/testenv/kubernetes"
    echo "go 1.26"
    echo "require k8s.io/kubernetes $KUBERNETES_VERSION"
    echo "replace ("
    grep -E '=> \./staging/src/' "$d/upstream.mod" | awk -v v="$stagever" '{print "\t" $1 " => " $1 " " v}'
    echo ")"
  } >"$d/go.mod"
  local ldf="-s -w -X k8s.io/component-base/version.gitVersion=$KUBERNETES_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/client-go/pkg/version.gitVersion=$KUBERNETES_VERSION -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"
  for b in "${want[@]}"; do
    log "kubernetes $KUBERNETES_VERSION: building $b (several minutes on a cold cache)"
    (cd "$d" && run_logged "$b" go build -trimpath -ldflags "$ldf" -o "$bin/$b.tmp" "k8s.io/kubernetes/cmd/$b")
    mv "$bin/$b.tmp" "$bin/$b"
  done
}

build_etcd() {
  [ -x "$bin/etcd" ] && return 0
  local d="$work/etcd-$ETCD_VERSION"
  mkdir -p "$d"
  cat >"$d/go.mod" <<MOD
module gitops.local/testenv/etcd
go 1.26
require go.etcd.io/etcd/server/v3 $ETCD_VERSION
MOD
  cat >"$d/main.go" <<'GO'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  log "etcd $ETCD_VERSION: building"
  (cd "$d" && run_logged etcd go build -trimpath -ldflags "-s -w" -o "$bin/etcd.tmp" .)
  mv "$bin/etcd.tmp" "$bin/etcd"
}

build_helm() {
  [ -x "$bin/helm" ] && return 0
  log "helm $HELM_VERSION: building"
  local minor=${HELM_VERSION#v3.}; minor=${minor%%.*}
  run_logged helm env GOBIN="$bin" go install -trimpath \
    -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
    "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
}

build_kustomize() {
  [ -x "$bin/kustomize" ] && return 0
  log "kustomize $KUSTOMIZE_VERSION: building"
  run_logged kustomize env GOBIN="$bin" go install -trimpath -ldflags "-s -w" \
    "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION"
}

build_kwok() { # the version is in a stamp next to the binary, so a new KWOK_VERSION rebuilds it
  [ -x "$bin/kwok" ] && [ "$(cat "$bin/.kwok-version" 2>/dev/null)" = "$KWOK_VERSION" ] && return 0
  log "kwok $KWOK_VERSION: building"
  run_logged kwok env GOBIN="$bin" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
  echo "$KWOK_VERSION" > "$bin/.kwok-version"
}

command -v go >/dev/null || { log "go is not installed; install Go 1.26 (the Debian/Go toolchain) and retry"; exit 1; }
comps=("$@"); [ ${#comps[@]} -eq 0 ] && comps=(etcd kube helm kustomize kwok)
for c in "${comps[@]}"; do
  case $c in
    etcd) build_etcd ;; kube) build_kube ;; helm) build_helm ;; kustomize) build_kustomize ;; kwok) build_kwok ;;
    *) log "unknown component $c"; exit 2 ;;
  esac
done
echo "$bin"
