#!/usr/bin/env bash
# make fuzz: runs every libFuzzer target under tests/fuzz/ for FUZZ_SECONDS (default 60) each,
# seeded from the repository's own manifests and fixtures. A crash, leak or sanitizer report
# fails the run and leaves the reproducer in build/fuzz/crashes/<target>/.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
secs=${FUZZ_SECONDS:-60}
# Known leaks inside libraries from Debian packages (each documented with its upstream issue).
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$root/tests/fuzz/lsan.supp:print_suppressions=0}
# Full unwinding: the Debian libraries have no frame pointers, and the suppressions match frames
# inside them.
export ASAN_OPTIONS=${ASAN_OPTIONS:-fast_unwind_on_malloc=0}
status=0
seed() { # seed TARGET DIR: a starting corpus
  local t=$1 d=$2
  mkdir -p "$d"
  case $t in
    fuzz_yaml) find examples tests/fixtures/manifests -name '*.yaml' -size -64k -exec cp {} "$d/" \; 2>/dev/null ;;
    fuzz_config) find examples tests/fixtures -name 'gitops*.yaml' -exec cp {} "$d/" \; 2>/dev/null ;;
    fuzz_kubeconfig) printf 'apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "https://127.0.0.1:6443"}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n' > "$d/seed.yaml" ;;
    fuzz_drift) for f in tests/fixtures/drift/desired/*.json; do
        l="tests/fixtures/drift/live/$(basename "$f")"; [ -f "$l" ] && { cat "$f"; printf '\0'; cat "$l"; } > "$d/$(basename "$f")"; done 2>/dev/null
      printf '500m\0000.5' > "$d/q1" ;;
  esac
}
for bin in build/fuzz/fuzz_*; do
  [ -x "$bin" ] || continue
  t=$(basename "$bin")
  corpus=build/fuzz/corpus/$t; crashes=build/fuzz/crashes/$t
  [ -d "$corpus" ] || seed "$t" "$corpus"
  mkdir -p "$crashes"
  printf '== %s: %ss\n' "$t" "$secs"
  if "$bin" -max_total_time="$secs" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
       -artifact_prefix="$crashes/" -print_final_stats=1 "$corpus" > "build/fuzz/$t.log" 2>&1; then
    grep -E '^stat::number_of_executed_units|^#[0-9]+.*DONE' "build/fuzz/$t.log" | tail -1
  else
    echo "FAIL $t: see build/fuzz/$t.log and $crashes/"; tail -30 "build/fuzz/$t.log"; status=1
  fi
done
exit $status
