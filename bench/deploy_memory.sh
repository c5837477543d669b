#!/usr/bin/env bash
# The resident memory of gitops run (release build) managing N ConfigMaps (default 10,000) in one
# environment with --leader-elect: the figure behind deploy/deployment.yaml's memory request.
# usage: bench/deploy_memory.sh [N] (needs the local control plane: make cluster-up; GITOPS=binary)
set -u
root=$(cd "$(dirname "$0")/.." && pwd); cd "$root" && . build/cluster/env; n=${1:-10000}
t=$(mktemp -d); export GITOPS_DATA_DIR=$t/data
mkdir -p $t/repo/app && cd $t/repo
cat > gitops.yaml <<Y
apiVersion: gitops/v1
kind: Pipeline
name: mem
branch: main
environments:
  - {name: big, track: main, namespace: mem-big, apps: [{name: app, path: app}], sync: {auto: true, selfHeal: true}}
Y
printf 'apiVersion: v1\nkind: Namespace\nmetadata: {name: mem-big}\n' > app/ns.yaml
for i in $(seq 1 $n); do printf -- '---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c-%d}\ndata: {i: "%d", color: blue}\n' $i $i; done > app/cms.yaml
git init -q -b main . && git add -A && git -c user.name=t -c user.email=t@t commit -qm one
"${GITOPS:-$root/build/gitops}" run --repo $t/repo --interval 30s --listen 127.0.0.1:0 --leader-elect --lease-namespace gitops-system --identity mem-0 --log-format text > $t/log 2>&1 &
pid=$!
sleep 1; for i in $(seq 1 900); do grep -q "watching $((n + 1)) " $t/log && break; sleep 1; done
sleep 20
echo "RSS after sync and watching $((n + 1)) objects: $(grep VmRSS /proc/$pid/status)"
echo "HWM: $(grep VmHWM /proc/$pid/status)"
tail -3 $t/log
kill -TERM $pid; wait $pid; echo "exit $?"
kubectl delete ns mem-big --wait=false >/dev/null
kubectl -n gitops-system delete cm gitops-inventory.mem.big >/dev/null 2>&1
rm -rf $t
