#!/usr/bin/env bash
# Several gitops processes sharing one data directory create and fetch the same mirror at once
# (a CI pipeline promoting while a reconciler syncs): every one of them must succeed.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../../lib.sh"
need git; need kustomize; need helm
G=${GITOPS_BIN:?run through make test}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
repo=$tmp/shop
cp -r "$here/../../../examples/shop" "$repo"
git -C "$repo" init -q -b main && git -C "$repo" add -A && git -C "$repo" -c user.name=t -c user.email=t@example.com commit -qm shop
# Many refs make concurrent fetches collide on reference locks (without the mirror lock, most of
# these processes fail: measured 23 of 30).
for b in $(seq 1 200); do git -C "$repo" branch "b$b"; done
for round in 1 2 3; do
  export GITOPS_DATA_DIR=$tmp/data-$round   # empty: the mirror is created by the race itself
  pids=()
  for i in 1 2 3 4 5 6; do
    "$G" render dev --repo "$repo" >"$tmp/out-$round-$i" 2>&1 & pids+=($!)
  done
  failed=0
  for i in "${!pids[@]}"; do wait "${pids[$i]}" || { failed=$((failed + 1)); cat "$tmp/out-$round-$((i + 1))" | tail -2; }; done
  expect_eq "round $round: 6 processes on an empty data dir all render" 0 "$failed"
  expect_eq "round $round: they render the same objects" 1 "$(md5sum "$tmp"/out-$round-* | cut -d' ' -f1 | sort -u | wc -l)"
  expect_eq "round $round: no fetch failed or warned" "" "$(grep -l fetch "$tmp"/out-$round-* 2>/dev/null)"
done
t_done
