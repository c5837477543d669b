#!/usr/bin/env bash
# Runs the test programs and scripts and ends with one summary line: "N passed, N failed".
# usage: tests/run.sh all|unit|integration [MODULE]
# GITOPS_TEST_FILTER=<pattern> (`make test TEST=<pattern>`): only the cmocka cases whose names
# match the glob, and only the shell tests whose file names match it.
# Unit tests: build/asan/tests/unit/<module>/test_*. Integration tests (need the local control
# plane, started here when it is not running and stopped again at the end):
# build/asan/tests/integration/<module>/test_* and tests/integration/<module>/*.sh.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
kind=${1:-all}; module=${2:-}
export GITOPS_BIN=$root/build/asan/gitops
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
logdir=$root/build/test-logs; mkdir -p "$logdir"
passed=0; failed=0; failures=()
filter=${GITOPS_TEST_FILTER:-}
# shell tests run whole: with a filter, only those whose file name matches it
script_matches() { [ -z "$filter" ] || case "$t" in *.sh) [[ "$(basename "$t")" == $filter ]] ;; *) true ;; esac; }

# run_one NAME CMD...: runs one test program; counts its cases from cmocka-style closing lines.
run_one() {
  local name=$1; shift
  local logf="$logdir/$(echo "$name" | tr '/' '_').log"
  local start=$(date +%s)
  "$@" >"$logf" 2>&1; local rc=$?
  local p f
  p=$(grep -aE '^\[  PASSED  \] [0-9]+ test' "$logf" | tail -n 1 | awk '{print $4}')
  f=$(grep -aE '^\[  FAILED  \] [0-9]+ test' "$logf" | tail -n 1 | awk '{print $4}')
  p=${p:-0}; f=${f:-0}
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi   # crashed, sanitizer report, or no summary
  if [ "$p" -eq 0 ] && [ "$f" -eq 0 ] && [ "$rc" -eq 0 ] && [ -n "$filter" ]; then
    return 0   # no case of this program matches the filter
  fi
  if [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then f=1; echo "  (ran no test case)" >>"$logf"; fi
  passed=$((passed + p)); failed=$((failed + f))
  local secs=$(( $(date +%s) - start ))
  if [ "$f" -gt 0 ]; then
    printf 'FAIL %-55s %3d passed %3d failed (%ds)\n' "$name" "$p" "$f" "$secs"
    sed 's/^/     | /' "$logf" | tail -n 60
    failures+=("$name")
  else
    printf 'ok   %-55s %3d passed (%ds)\n' "$name" "$p" "$secs"
  fi
}

matches() { [ -z "$module" ] || [ "$1" = "$module" ]; }

if [ "$kind" = all ] || [ "$kind" = unit ]; then
  for t in build/asan/tests/unit/*/test_*; do
    [ -x "$t" ] || continue
    m=$(basename "$(dirname "$t")"); matches "$m" || continue
    run_one "unit/$m/$(basename "$t")" "$t"
  done
fi

if [ "$kind" = all ] || [ "$kind" = integration ]; then
  started=0
  if ! tests/testenv/cluster-status.sh >/dev/null 2>&1; then
    echo "[test] starting the local control plane"
    if ! tests/testenv/cluster-up.sh; then
      echo "FAIL the local control plane did not start"; echo "0 passed, 1 failed"; exit 1
    fi
    started=1
  fi
  # shellcheck disable=SC1091
  . build/cluster/env
  for t in build/asan/tests/integration/*/test_* tests/integration/*/*.sh; do
    [ -x "$t" ] || continue
    m=$(basename "$(dirname "$t")"); matches "$m" || continue
    script_matches || continue
    run_one "integration/$m/$(basename "$t")" "$t"
  done
  [ "$started" = 1 ] && tests/testenv/cluster-down.sh >/dev/null
fi

if [ ${#failures[@]} -gt 0 ]; then
  echo "failed: ${failures[*]} (logs in build/test-logs/)"
fi
if [ -n "$filter" ] && [ $((passed + failed)) -eq 0 ]; then
  echo "no test case matches '$filter'"; failed=1
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
