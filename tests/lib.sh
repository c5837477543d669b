# Shell test helpers (sourced). Each check prints ok/FAIL; t_done prints cmocka-style closing
# lines that tests/run.sh counts, and exits non-zero when a check failed.
t_pass=0; t_fail=0
ok()   { t_pass=$((t_pass + 1)); echo "ok   $1"; }
fail() { t_fail=$((t_fail + 1)); echo "FAIL $1"; [ $# -gt 1 ] && printf '     %s\n' "${@:2}"; return 0; }
# expect_eq NAME WANT GOT
expect_eq() { if [ "$2" = "$3" ]; then ok "$1"; else fail "$1" "want: $2" "got:  $3"; fi; }
# expect_contains NAME NEEDLE HAYSTACK
expect_contains() { case $3 in *"$2"*) ok "$1" ;; *) fail "$1" "want to contain: $2" "got: $3" ;; esac; }
# expect_rc NAME WANT_RC CMD...: runs CMD, compares its exit code; output in $out.
expect_rc() { local n=$1 want=$2; shift 2; out=$("$@" 2>&1); local rc=$?
  if [ "$rc" = "$want" ]; then ok "$n"; else fail "$n" "want exit $want, got $rc" "output: $out"; fi; }
need() { command -v "$1" >/dev/null || { echo "FAIL missing binary $1 (run make testenv / source build/cluster/env)"; echo "[  FAILED  ] 1 test(s)."; exit 1; }; }
t_done() {
  echo "[  PASSED  ] $t_pass test(s)."
  [ "$t_fail" -gt 0 ] && { echo "[  FAILED  ] $t_fail test(s)."; exit 1; }
  exit 0
}
