#!/usr/bin/env bash
# Commit-to-applied latency through a webhook: `gitops run` (release build, --interval 10m, so
# only the webhook can explain a sync) on the local control plane; N commits (default 20), each
# followed by a signed GitHub push webhook; the time from the webhook's send to the ConfigMap
# carrying the commit's value, watched with `kubectl get --watch`. Prints p50, p90 and max.
# Argo CD polls every 3 minutes by default, Flux every minute or more.
# usage: bench/webhook_bench.sh [N] (needs the local control plane: make cluster-up)
# BENCH_WEBHOOK_LOG=FILE keeps the daemon's log (text, with millisecond times) and the
# per-commit latencies there, to see where a slow one spent its time.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/build/cluster/env"
n=${1:-${BENCH_WEBHOOK_COMMITS:-20}}
t=$(mktemp -d); export GITOPS_DATA_DIR=$t/data
pid=; wpid=
trap '[ -n "${BENCH_WEBHOOK_LOG:-}" ] && sort -s -k1,1 $t/log $t/lat >"$BENCH_WEBHOOK_LOG" 2>/dev/null; [ -n "$pid" ] && kill $pid 2>/dev/null; [ -n "$wpid" ] && kill $wpid 2>/dev/null; wait 2>/dev/null; kubectl delete ns bench-hook --wait=false >/dev/null 2>&1; kubectl -n gitops-system delete cm gitops-inventory.hookbench.dev >/dev/null 2>&1; rm -rf $t' EXIT
# a namespace a previous run left terminating would make its objects "not managed"
kubectl delete ns bench-hook --ignore-not-found --wait=true >/dev/null 2>&1 || true
kubectl -n gitops-system delete cm gitops-inventory.hookbench.dev --ignore-not-found >/dev/null 2>&1 || true
mkdir -p $t/repo/app && cd $t/repo
cat > gitops.yaml <<Y
apiVersion: gitops/v1
kind: Pipeline
name: hookbench
branch: main
environments:
  - {name: dev, track: main, namespace: bench-hook, apps: [{name: app, path: app}], sync: {auto: true}}
Y
printf 'apiVersion: v1\nkind: Namespace\nmetadata: {name: bench-hook}\n' > app/ns.yaml
printf 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: rev}\ndata: {v: "0"}\n' > app/cm.yaml
git init -q -b main . && git add -A && git -c user.name=t -c user.email=t@t commit -qm v0
echo bench-secret > $t/secret
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$root/build/gitops" run --repo $t/repo --interval 10m --listen 127.0.0.1:$port --webhook-secret-file $t/secret \
  --log-format text >$t/log 2>&1 & pid=$!
for i in $(seq 1 300); do curl -fsS http://127.0.0.1:$port/readyz >/dev/null 2>&1 && break; sleep 0.5; done
# the daemon's first pass applies v0: `kubectl get NAME --watch` ends at once on an object that does
# not exist yet (on a loaded control plane the first pass can take seconds)
for i in $(seq 1 600); do kubectl -n bench-hook get cm rev >/dev/null 2>&1 && break; sleep 0.2; done
kubectl -n bench-hook get cm rev >/dev/null || { echo "webhook_bench: the first pass did not apply v0 in 120 s" >&2; exit 1; }
kubectl -n bench-hook get cm rev -o jsonpath='{.data.v}{"\n"}' --watch >$t/watch 2>$t/watch.err & wpid=$!
push='{"ref":"refs/heads/main"}'
sig=$(printf '%s' "$push" | openssl dgst -sha256 -hmac bench-secret | sed 's/^.*= /sha256=/')
lat=()
for i in $(seq 1 "$n"); do
  sed -i "s/v: \"[0-9]*\"/v: \"$i\"/" app/cm.yaml && git -c user.name=t -c user.email=t@t commit -qam "v$i"
  t0=$(date +%s%N); ts0=$(date -u -d "@${t0:0:10}.${t0:10:3}" +%Y-%m-%dT%H:%M:%S.%3NZ)
  curl -fsS -o /dev/null -X POST http://127.0.0.1:$port/hooks/github -H 'Content-Type: application/json' \
    -H 'X-GitHub-Event: push' -H "X-Hub-Signature-256: $sig" --data-binary "$push"
  until grep -qx "$i" $t/watch; do
    sleep 0.02
    if [ $(( ($(date +%s%N) - t0) / 1000000000 )) -ge 60 ]; then
      live=$(kubectl -n bench-hook get cm rev -o jsonpath='{.data.v}' 2>&1 || true)
      kill -0 $wpid 2>/dev/null && w=running || w="ended: $(tail -n 2 $t/watch.err | tr '\n' ' ')"
      echo "webhook_bench: commit v$i not seen applied after 60 s (ConfigMap value now: $live; kubectl watch $w; daemon log: BENCH_WEBHOOK_LOG=FILE keeps it)" >&2; exit 1
    fi
  done
  lat+=($(( ($(date +%s%N) - t0) / 1000000 )))
  echo "$ts0 bench: commit v$i: webhook sent; applied after ${lat[-1]} ms" >>$t/lat
done
mapfile -t s < <(printf '%s\n' "${lat[@]}" | sort -n)
p90=$(( n * 9 / 10 )); [ "$p90" -ge 1 ] || p90=1
echo "commit to applied through a webhook, $n commits: p50 ${s[$(( (n + 1) / 2 - 1 ))]} ms, p90 ${s[$((p90 - 1))]} ms, max ${s[$((n - 1))]} ms (goal: under 2 s)"
