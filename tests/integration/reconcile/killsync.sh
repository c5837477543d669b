#!/usr/bin/env bash
# kill -9 at random points of a 2,000-object sync, several times, then a revert in git and a
# prune: nothing the killed syncs created may be left behind, because every object is in the
# inventory before it is applied (issue 9).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../../lib.sh"
need kubectl
G=${GITOPS_BIN:?run through make test}
N=${KILLSYNC_OBJECTS:-2000}
tmp=$(mktemp -d)
export GITOPS_DATA_DIR=$tmp/data
export GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@t GIT_COMMITTER_NAME=t GIT_COMMITTER_EMAIL=t@t
ns=kill-$$; env=k$$
cleanup() {
  kubectl delete --raw "/api/v1/namespaces/$ns/configmaps" >/dev/null 2>&1
  kubectl delete ns "$ns" --wait=false >/dev/null 2>&1
  kubectl -n gitops-system delete configmap "gitops-inventory.kill$$.$env" >/dev/null 2>&1
  kubectl -n gitops-system delete lease "gitops-lock.kill$$.$env" >/dev/null 2>&1
  rm -rf "$tmp"
}
trap cleanup EXIT
kubectl create ns "$ns" >/dev/null
repo=$tmp/repo; mkdir -p "$repo/app" && cd "$repo"
printf 'apiVersion: gitops/v1\nkind: Pipeline\nname: kill%s\nenvironments:\n  - name: %s\n    namespace: %s\n    apps: [{name: app, path: app}]\n' "$$" "$env" "$ns" > gitops.yaml
printf 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: keep}\ndata: {v: "1"}\n' > app/keep.yaml
commit() { git add -A && git -c user.name=t -c user.email=t@t commit -qm "$1"; }
git init -q -b main && commit base
expect_rc "sync the base" 0 "$G" sync "$env" --quiet
python3 - app/many.yaml "$N" <<'PY'
import sys
with open(sys.argv[1], "w") as f:
    for i in range(int(sys.argv[2])):
        f.write(f"---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: many-{i:05d}}}\ndata: {{i: \"{i}\"}}\n")
PY
commit "$N objects"
live() { kubectl -n "$ns" get cm -l gitops.dev/pipeline=kill$$ -o name | wc -l; }
killed_mid=0
for round in 1 2 3 4; do
  "$G" sync "$env" >"$tmp/sync.$round" 2>&1 & pid=$!
  if [ "$round" = 1 ]; then
    # a random point early on: rendering, planning, taking the lock, writing the intent
    sleep "$(python3 -c "import random; print(random.uniform(0.05, 0.6))")"
  else
    # a random point among the applies: after 1..N/4 more objects were created
    want=$(python3 -c "import random; print(random.randint(1, $N // 4))")
    while kill -0 "$pid" 2>/dev/null && [ "$(grep -c '^created ' "$tmp/sync.$round" 2>/dev/null || true)" -lt "$want" ]; do
      sleep 0.01
    done
  fi
  kill -9 "$pid" 2>/dev/null && killed_mid=$((killed_mid + 1)); wait "$pid" 2>/dev/null
  echo "round $round: killed after $(grep -c '^created ' "$tmp/sync.$round") creates; $(live) objects live"
done
expect_eq "every sync was killed before it finished" 4 "$killed_mid"
expect_eq "the killed syncs left objects behind" yes "$([ "$(live)" -gt 1 ] && [ "$(live)" -lt $((N + 1)) ] && echo yes || echo "no: $(live)")"
git revert --no-edit HEAD >/dev/null
expect_rc "sync --prune after the revert" 0 "$G" sync "$env" --prune
expect_eq "nothing the killed syncs created is left" "configmap/keep" "$(kubectl -n "$ns" get cm -o name | xargs)"
expect_eq "the inventory holds only what git has" "keep" \
  "$(kubectl -n gitops-system get configmap "gitops-inventory.kill$$.$env" -o jsonpath='{.data.inventory\.json}' |
     python3 -c 'import json,sys; print(" ".join(o["name"] for o in json.load(sys.stdin)["objects"]))')"
expect_rc "in sync" 0 "$G" diff "$env" --quiet
t_done
