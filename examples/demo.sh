#!/usr/bin/env bash
# make demo: starts the local control plane (when it is not running) and shows gitops at work on
# the example shop repository: render, diff, sync, a no-op resync, drift made with kubectl and
# corrected, a change in git, pruning, promotion, a signed approval, rollback and the audit log;
# then gitops run at work: a commit reaching dev by itself, a hand edit corrected within a second,
# a promotion deployed, a broken image rolled back automatically. The control plane keeps running afterwards
# (`make cluster-down` stops it); the demo repository is in build/demo/shop.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
tests/testenv/cluster-up.sh
. build/cluster/env
export PATH=$root/build:$PATH GITOPS_DATA_DIR=$root/build/demo/data
bold=$(tput bold 2>/dev/null || true); plain=$(tput sgr0 2>/dev/null || true)
step() { printf '\n%s==> %s%s\n' "$bold" "$*" "$plain"; }
run() { printf '%s$ %s%s\n' "$bold" "$*" "$plain"; "$@" || true; }

repo=$root/build/demo/shop
rm -rf "$repo" "$GITOPS_DATA_DIR" "$root/build/demo/alice.key" "$root/build/demo/alice.key.pub"
mkdir -p "$(dirname "$repo")"
cp -r examples/shop "$repo"
cd "$repo"
git init -q -b main && git add -A && git -c user.name=demo -c user.email=demo@example.com commit -qm "shop: first version"
commit() { git add -A && git -c user.name=demo -c user.email=demo@example.com commit -qm "$1"; }
# A fresh demo: delete what an earlier run applied (its inventories list it), except the
# Namespaces (this control plane has no namespace controller to finish deleting them), which are
# handed over to this run's repository: a new repository is a new root commit.
python3 - "$(git rev-list --max-parents=0 HEAD)" "$repo" <<'PY'
import json, subprocess, sys
root, repo = sys.argv[1:]
def kubectl(*args):
    return subprocess.run(["kubectl", *args], capture_output=True, text=True)
for env in ("dev", "staging", "prod"):
    namespaces = []
    for name in ("gitops-inventory.shop." + env, "gitops-inventory-" + env):
        got = kubectl("-n", "gitops-system", "get", "configmap", name, "-o", "json")
        if got.returncode:
            continue
        for o in json.loads(json.loads(got.stdout)["data"]["inventory.json"])["objects"]:
            if o["kind"] == "Namespace":
                namespaces.append(dict(o, app="platform"))
                continue
            group = o["apiVersion"].rpartition("/")[0]
            what = o["kind"].lower() + ("." + group if group else "")
            kubectl("delete", what, o["name"], *(["-n", o["namespace"]] if o.get("namespace") else []),
                    "--ignore-not-found", "--wait=false")
        kubectl("-n", "gitops-system", "delete", "configmap", name)
    kubectl("-n", "gitops-system", "delete", "lease", "gitops-lock.shop." + env, "--ignore-not-found")
    if namespaces:
        doc = {"pipeline": "shop", "environment": env, "repository": repo, "rootCommit": root,
               "revision": "", "syncedAt": "", "objects": namespaces}
        cm = {"apiVersion": "v1", "kind": "ConfigMap",
              "metadata": {"name": "gitops-inventory.shop." + env, "namespace": "gitops-system"},
              "data": {"inventory.json": json.dumps(doc)}}
        subprocess.run(["kubectl", "create", "-f", "-"], input=json.dumps(cm), capture_output=True, text=True)
PY
for n in frontend-notes frontend-flags; do kubectl -n shop-dev delete configmap "$n" --ignore-not-found >/dev/null 2>&1 || true; done

step "The pipeline: three environments of one repository"
run sed -n '1,20p' gitops.yaml
step "What dev would run (plain YAML, a kustomize overlay, a helm chart)"
gitops render dev | head -n 24; echo "..."
step "diff: everything is missing (exit code 1 = differences)"
run gitops diff dev --quiet
step "sync: Namespaces first, then the rest in parallel"
run gitops sync dev
step "A second sync writes nothing, and diff agrees (exit 0)"
run gitops sync dev
run gitops diff dev --quiet
run gitops status
step "Drift: someone changes an image by hand and deletes a Service"
run kubectl -n shop-dev set image deployment/frontend web=nginx:1.99
run kubectl -n shop-dev delete service api
run kubectl -n shop-dev scale deployment api --replicas=4
echo "(scaling api is not drift: gitops.yaml ignores /spec/replicas of Deployment api)"
run gitops drift
step "sync corrects it"
run gitops sync dev
run gitops drift
step "A change in git: a new page and a banner, committed"
sed -i 's|<h1>The shop</h1>|<h1>The shop, now with a sale</h1>|' apps/frontend/configmap.yaml
printf 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: frontend-banner}\ndata: {text: "20%% off"}\n' > apps/frontend/banner.yaml
commit "frontend: announce the sale"
run gitops diff dev
run gitops sync dev
step "Pruning: the banner leaves git; a hand-made ConfigMap next to it is never touched"
git rm -q apps/frontend/banner.yaml
commit "frontend: the sale is over"
run kubectl -n shop-dev create configmap frontend-notes --from-literal=owner=me
run gitops sync dev --prune
run kubectl -n shop-dev get configmaps
step "Ownership: an object made by hand is never taken over silently"
run kubectl -n shop-dev create configmap frontend-flags --from-literal=beta=on
printf 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: frontend-flags}\ndata: {beta: "off"}\n' > apps/frontend/flags.yaml
commit "frontend: feature flags in git"
run gitops diff dev --quiet
echo "(sync skips it and exits 6; --adopt, or sync: {adopt: true} in gitops.yaml, takes it over)"
run gitops sync dev
run gitops sync dev --adopt
step "Promotion: the commit dev runs healthy goes to staging (not gated: pinned at once)"
sha=$(git rev-parse HEAD)
run gitops promote "$sha" staging --actor ci-pipeline
run gitops sync staging --quiet
step "prod is gated: alice's key is listed as approver (a reviewed commit like any other)"
run gitops keygen --out "$root/build/demo/alice.key"
sed -i "s|ed25519:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=|$(cat "$root/build/demo/alice.key.pub")|" gitops.yaml
commit "prod: alice approves"
printf '%s$ gitops promote %s prod --json%s\n' "$bold" "$sha" "$plain"
id=$(gitops promote "$sha" prod --actor ci-pipeline --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
echo "pending promotion $id: prod has nothing to run until it is approved"
run gitops sync prod --quiet
run gitops approve "$id" --key "$root/build/demo/alice.key"
run gitops sync prod
step "Rollback: dev goes back to its previous healthy commit, and stays there"
run gitops rollback dev --reason "the sale page is broken"
run gitops sync dev
run gitops status
step "The audit log, DORA metrics, and a check of the whole chain"
run gitops history --limit 12
run gitops history dora
run gitops history verify
step "gitops run: the reconciler takes over (dev follows main again, staging its promotions)"
run gitops resume dev --reason "the sale page is fixed"
log=$root/build/demo/run.log
printf '%s$ gitops run --interval 2s --env dev --env staging --listen 127.0.0.1:0 --log-format text > %s &%s\n' "$bold" "${log#$root/}" "$plain"
gitops run --interval 2s --env dev --env staging --listen 127.0.0.1:0 --log-format text >"$log" 2>&1 &
daemon=$!
trap 'kill "$daemon" 2>/dev/null || true' EXIT
# waits for a line of the daemon's log (after line $2); prints the ones matching $3
await() { for _ in $(seq 1 900); do tail -n +"$2" "$log" | grep -q -- "$1" && break; sleep 0.2; done
  tail -n +"$2" "$log" | grep -E -- "$3" | cut -c12- | sed 's/^/    /' | tail -n 6 || true; }
mark() { wc -l <"$log"; }
await "dev: watching" 1 "dev: (synced|health gate passed|watching)"
step "A commit reaches dev by itself"
sed -i 's|<h1>The shop, now with a sale</h1>|<h1>The shop: new arrivals</h1>|' apps/frontend/configmap.yaml
commit "frontend: new arrivals"
sha=$(git rev-parse HEAD); m=$(mark)
await "dev: synced ${sha:0:12}" "$m" "dev: (syncing|synced|health gate)"
run kubectl -n shop-dev get configmap frontend-site -o jsonpath='{.data.index\.html}'
step "Someone edits a Deployment by hand: corrected within a second"
m=$(mark)
run kubectl -n shop-dev set image deployment/frontend web=nginx:1.99
await "corrected Deployment shop-dev/frontend" "$m" "dev: (drift|corrected)"
run kubectl -n shop-dev get deployment frontend -o jsonpath='{.spec.template.spec.containers[0].image}{"\n"}'
step "A promotion: staging deploys it by itself once dev ran it healthy"
m=$(mark)
run gitops promote "$sha" staging --actor ci-pipeline
await "staging: synced ${sha:0:12}" "$m" "staging: (synced|health gate)"
step "A broken image: the health gate fails, dev is rolled back automatically"
sed -i 's|image: nginx:1.27-alpine|image: nginx:broken|' apps/frontend/deployment.yaml
commit "frontend: upgrade nginx (broken)"
bad=$(git rev-parse HEAD); m=$(mark)
await "dev: rolled back" "$m" "dev: (syncing ${bad:0:12}|health gate|failed its|rolled back)"
# the same mark: the rollback's own sync may be logged before this line runs
await "dev: synced ${sha:0:12}" "$m" "dev: (syncing ${sha:0:12}|synced ${sha:0:12})"
echo "the broken commit can never be promoted:"
run gitops promote "$bad" staging --actor ci-pipeline
step "Status and history: suspended, pinned and why, health, the daemon's last error"
run gitops status
run gitops history --limit 14
kill -TERM "$daemon"; wait "$daemon" || true
printf '\n%sThe control plane is still running: `source build/cluster/env` to use kubectl, `make cluster-down` to stop it.%s\n' "$bold" "$plain"
