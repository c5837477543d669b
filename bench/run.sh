#!/usr/bin/env bash
# make bench: runs the benchmarks side by side against the local control plane (started here
# when it is not running, and stopped again at the end) and prints their figures.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
started=0
if ! tests/testenv/cluster-status.sh >/dev/null 2>&1; then
  tests/testenv/cluster-up.sh
  started=1
fi
trap '[ "$started" = 1 ] && tests/testenv/cluster-down.sh >/dev/null' EXIT
. build/cluster/env
echo "== kube/ cache: list-then-watch of ${BENCH_CACHE_OBJECTS:-10000} ConfigMaps"
build/bench/cache_fill "${BENCH_CACHE_OBJECTS:-10000}"
echo
echo "== sync and diff: gitops against kubectl on the same objects, at ${BENCH_SIZES:-1100 11000} objects"
bench/sync_bench.sh
echo
echo "== history/: ${BENCH_HISTORY_EVENTS:-100000} events appended, then a filtered query and DORA"
build/bench/history_bench "${BENCH_HISTORY_EVENTS:-100000}"
echo
echo "== Flux baseline: source-controller and kustomize-controller, out of cluster, same objects"
if [ "${BENCH_FLUX:-1}" != 0 ]; then bench/flux_bench.sh; else echo "skipped (BENCH_FLUX=0)"; fi
echo
echo "== gitops run on the same objects"
if build/gitops run --help >/dev/null 2>&1; then bench/gitops_run_bench.sh
else echo "gitops' daemon figures are not available yet (build/gitops has no run command)"; fi
echo
echo "== gitops run: commit to applied through a webhook"
bench/webhook_bench.sh
