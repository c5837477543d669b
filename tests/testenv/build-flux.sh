#!/usr/bin/env bash
# Builds Flux's source-controller and kustomize-controller (for the Flux baseline in make bench)
# from their Go modules at the versions pinned in versions.env, through the Go module proxy, into
# a cache outside the repository, once; copies their CRDs (config/crd/bases of the modules) beside.
# Usage: build-flux.sh        Prints the cache dir on the last line: <dir>/bin/{source,kustomize}-controller
#                             and <dir>/crds/*.yaml. No Flux code or binary ever enters the repository.
# The modules replace their /api module with ./api, which a module zip does not hold, so
# `go install …@version` refuses them; the module source is copied out of the module cache and
# that one replace is turned into a requirement on the same /api version (all other replaces and
# the go.sum stay upstream's).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/versions.env"
. "$here/lib.sh"

: "${FLUX_SOURCE_CONTROLLER_VERSION:?missing in versions.env}"
: "${FLUX_KUSTOMIZE_CONTROLLER_VERSION:?missing in versions.env}"
# Same scheme as testenv_cachedir (one dir per pinned versions), its own dir and lock so that a
# long control-plane build does not hold it up.
dir="${XDG_CACHE_HOME:-$HOME/.cache}/gitops-testenv/flux-source-${FLUX_SOURCE_CONTROLLER_VERSION}_kustomize-${FLUX_KUSTOMIZE_CONTROLLER_VERSION}"
bin=$dir/bin crds=$dir/crds work=$dir/src
mkdir -p "$bin" "$crds" "$work"
exec 9>"$dir/.build.lock"
flock 9

export GOTOOLCHAIN=local GOFLAGS=-mod=mod GOSUMDB=off CGO_ENABLED=0
export GOPROXY=${GOPROXY:-https://proxy.golang.org}

log() { printf '[testenv] %s\n' "$*" >&2; }
run_logged() { # NAME CMD...: output to a log; on failure the log's tail, and fail
  local name=$1; shift
  local logf="$work/$name.log"
  if ! "$@" >"$logf" 2>&1; then
    log "FAILED: $name (log: $logf); last lines:"
    tail -n 40 "$logf" >&2
    exit 1
  fi
}

# build_controller NAME VERSION [CRD-FILE...]: (default CRDs: every file in config/crd/bases)
build_controller() {
  local name=$1 ver=$2; shift 2
  local mod="github.com/fluxcd/$name"
  if [ ! -x "$bin/$name" ]; then
    command -v go >/dev/null || { log "go is not installed; install Go >= 1.26 and retry"; exit 1; }
    log "flux $name $ver: downloading the module"
    local moddir
    moddir=$(cd "$work" && go mod download -json "$mod@$ver" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
    [ -n "$moddir" ] && [ -d "$moddir" ] || { log "go mod download $mod@$ver gave no module dir"; exit 1; }
    local d="$work/$name-$ver"
    rm -rf "$d"; cp -r "$moddir" "$d"; chmod -R u+w "$d"
    (cd "$d" && go mod edit -dropreplace="$mod/api" -require="$mod/api@$ver")
    # A module version the proxy refuses (FLUX_GO_FALLBACKS in versions.env): said loudly, and
    # replaced by the nearest version it serves.
    local fb m want alt
    for fb in ${FLUX_GO_FALLBACKS:-}; do
      m=${fb%%@*}; want=${fb#*@}; want=${want%%=*}; alt=${fb#*=}
      grep -qE "^[[:space:]]*(require[[:space:]]+)?$m $want( |\$)" "$d/go.mod" || continue
      if ! (cd "$work" && go mod download "$m@$want" >/dev/null 2>&1); then
        log "flux $name $ver: the Go module proxy does not serve $m@$want; building with $m@$alt instead"
        (cd "$d" && go mod edit -replace="$m=$m@$alt")
      fi
    done
    log "flux $name $ver: building (several minutes on a cold cache)"
    (cd "$d" && run_logged "$name" go build -trimpath -ldflags "-s -w" -o "$bin/$name.tmp" .)
    mv "$bin/$name.tmp" "$bin/$name"
    local f
    if [ $# -eq 0 ]; then set -- "$d"/config/crd/bases/*.yaml; else set -- "${@/#/$d/config/crd/bases/}"; fi
    for f in "$@"; do cp "$f" "$crds/"; done
  fi
}

build_controller source-controller "$FLUX_SOURCE_CONTROLLER_VERSION"
build_controller kustomize-controller "$FLUX_KUSTOMIZE_CONTROLLER_VERSION" kustomize.toolkit.fluxcd.io_kustomizations.yaml
echo "$dir"
