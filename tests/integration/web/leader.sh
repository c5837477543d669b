#!/usr/bin/env bash
# Leader election end to end: three `gitops run --leader-elect` replicas against one control
# plane and six environments. Each takes its fair share (two Leases each), exactly one replica
# applies each environment, gitops_leader says who leads what; a webhook sent to one replica
# reaches the leaders of the others' environments (through their Leases); killing a replica
# (-9) hands its environments over once its Leases expire; SIGTERM releases the Leases at once
# so the last replica takes them all. The interval is 10 minutes: every new commit here arrives
# through a webhook sent to a single replica.
# Every wait is on a condition with a generous timeout; no wall-clock time is asserted.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../../lib.sh"
need kubectl
need curl
G=${GITOPS_BIN:?run through make test}
: "${GITOPS_CLUSTER_DIR:?source build/cluster/env}"
tmp=$(mktemp -d)
p=le$$   # pipeline name, also the prefix of the namespaces
envs="e1 e2 e3 e4 e5 e6"
declare -A pid port
cleanup() { for r in r1 r2 r3; do [ -n "${pid[$r]:-}" ] && kill -9 "${pid[$r]}" 2>/dev/null; done; wait 2>/dev/null
  for e in $envs; do kubectl delete ns "$p-$e" --wait=false >/dev/null 2>&1; done
  kubectl -n gitops-system get cm,lease -o name 2>/dev/null | grep -E "gitops-$p-|gitops-replica-$p|inventory\.$p\." | xargs -r kubectl -n gitops-system delete >/dev/null 2>&1
  rm -rf "$tmp"; }
trap cleanup EXIT
wait_for() { local t=$1; shift; local end=$((SECONDS + t)); while [ $SECONDS -lt $end ]; do "$@" >/dev/null 2>&1 && return 0; sleep 0.5; done; return 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
kubectl get ns gitops-system >/dev/null 2>&1 || kubectl create ns gitops-system >/dev/null
echo hook-secret > "$tmp/hook-secret"
push='{"ref":"refs/heads/main"}'
sig=$(printf '%s' "$push" | openssl dgst -sha256 -hmac hook-secret | sed 's/^.*= /sha256=/')
# webhook R: a signed GitHub push sent to replica R only
webhook() { curl -fsS -o /dev/null -X POST "http://127.0.0.1:${port[$1]}/hooks/github" -H 'Content-Type: application/json' \
  -H 'X-GitHub-Event: push' -H "X-Hub-Signature-256: $sig" --data-binary "$push"; }
start() { local r=$1; port[$r]=${port[$r]:-$(free_port)}
  GITOPS_DATA_DIR=$tmp/data-$r "$G" run --repo "$repo" --interval 10m --leader-elect --identity "$p-$r" \
    --lease-namespace gitops-system --lease-duration 6s --listen "127.0.0.1:${port[$r]}" --log-format text \
    --webhook-secret-file "$tmp/hook-secret" \
    >>"$tmp/$r.log" 2>&1 & pid[$r]=$!; }
# holders: "env=holder" for the six Leases
holders() { kubectl -n gitops-system get lease -o json | python3 -c '
import json, sys
p = sys.argv[1]
for it in json.load(sys.stdin)["items"]:
    n = it["metadata"]["name"]
    if n.startswith("gitops-%s-" % p):
        print(n[len("gitops-%s-" % p):] + "=" + (it["spec"].get("holderIdentity") or ""))' "$p" | sort; }
count_of() { holders | grep -c "=$p-$1\$"; }
# spread A B C: the replicas hold A, B and C Leases (in any order), and all six are held
spread_is() { local got; got=$(for r in r1 r2 r3; do count_of $r; done | sort -n | tr '\n' ' ')
  [ "$got" = "$1 " ] && [ "$(holders | grep -c "=$p-r")" = 6 ]; }
cm_is() { [ "$(kubectl -n "$p-$1" get configmap settings -o jsonpath='{.data.color}' 2>/dev/null)" = "$2" ]; }
all_are() { for e in $envs; do cm_is "$e" "$1" || return 1; done; }
leader_metric() { curl -fsS "http://127.0.0.1:${port[$1]}/metrics" | grep -c "^gitops_leader{pipeline=\"$p\",environment=\"e[1-6]\"} 1$"; }

repo=$tmp/repo; mkdir -p "$repo"; cd "$repo"
{ echo "apiVersion: gitops/v1"; echo "kind: Pipeline"; echo "name: $p"; echo "branch: main"; echo "environments:"
  for e in $envs; do printf '  - {name: %s, track: main, namespace: %s-%s, apps: [{name: app, path: app}], sync: {auto: true, selfHeal: true}}\n' "$e" "$p" "$e"; done
} > gitops.yaml
mkdir app
printf 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {color: blue}\n' > app/cm.yaml
for e in $envs; do kubectl create ns "$p-$e" >/dev/null; done
git init -q -b main . && git add -A && git -c user.name=t -c user.email=t@t commit -qm one

# --- three replicas share six environments: two each ------------------------------------------
for r in r1 r2 r3; do start $r; done
if wait_for 180 spread_is "2 2 2"; then ok "three replicas hold two Leases each"; else fail "spread" "$(holders | tr '\n' ' ')"; fi
if wait_for 180 all_are blue; then ok "every environment is synced"; else fail "initial sync" "$(tail -5 "$tmp/r1.log")"; fi
# exactly one replica applied each environment
dup=""
for e in $envs; do
  n=0; for r in r1 r2 r3; do grep -q " $e: synced " "$tmp/$r.log" && n=$((n + 1)); done
  [ "$n" = 1 ] || dup="$dup $e:$n"
done
expect_eq "each environment was applied by exactly one replica" "" "$dup"
for r in r1 r2 r3; do
  if wait_for 30 bash -c "[ \"\$(curl -fsS http://127.0.0.1:${port[$r]}/metrics | grep -c '^gitops_leader{pipeline=\"$p\",environment=\"e[1-6]\"} 1\$')\" = 2 ]"; then
    ok "gitops_leader shows 2 environments led on $r"; else fail "leader metric $r" "$(curl -fsS "http://127.0.0.1:${port[$r]}/metrics" | grep gitops_leader)"; fi
done
expect_eq "followers are ready too" 200 "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:${port[r2]}/readyz")"

# --- a webhook sent to one replica reaches every environment's leader -----------------------------
sed -i 's/blue/green/' app/cm.yaml && git -c user.name=t -c user.email=t@t commit -qam two
expect_rc "the webhook is accepted by r2" 0 webhook r2
if wait_for 120 all_are green; then ok "the push reaches all six environments, four of them led by the other replicas"; else fail "webhook via Leases" "$(holders | tr '\n' ' ')" "$(for e in $envs; do printf '%s=%s ' $e "$(kubectl -n "$p-$e" get configmap settings -o jsonpath='{.data.color}')"; done)" "$(grep -h -e requested -e 'synced' -e error "$tmp"/r*.log | tail -20)"; fi

# --- the leader of e1 dies: its environments are taken over -------------------------------------
victim=$(holders | grep '^e1=' | cut -d= -f2); victim=${victim#$p-}
kill -9 "${pid[$victim]}"; wait "${pid[$victim]}" 2>/dev/null; pid[$victim]=
echo "     (killed $victim, which held: $(holders | grep "=$p-$victim\$" | cut -d= -f1 | tr '\n' ' '))"
if wait_for 120 spread_is "0 3 3"; then ok "after the kill the two others hold three Leases each"; else fail "hand-over" "$(holders | tr '\n' ' ')"; fi
sed -i 's/green/purple/' app/cm.yaml && git -c user.name=t -c user.email=t@t commit -qam purple
survivor=r1; [ "$victim" = r1 ] && survivor=r2
webhook "$survivor" || fail "webhook to $survivor"
if wait_for 180 all_are purple; then ok "a new commit reaches all six environments after the hand-over"; else fail "sync after hand-over" "$(holders | tr '\n' ' ')"; fi

# --- SIGTERM releases the Leases at once ------------------------------------------------------
rest=(); for r in r1 r2 r3; do [ -n "${pid[$r]:-}" ] && rest+=("$r"); done
kill -TERM "${pid[${rest[0]}]}"; wait "${pid[${rest[0]}]}"; rc=$?; pid[${rest[0]}]=
expect_eq "SIGTERM exits 0" 0 "$rc"
expect_eq "its Leases were released before it exited" 0 "$(count_of "${rest[0]}")"
if wait_for 60 bash -c "[ \"\$(kubectl -n gitops-system get lease -o json | python3 -c 'import json,sys; print(sum(1 for i in json.load(sys.stdin)[\"items\"] if i[\"metadata\"][\"name\"].startswith(\"gitops-$p-\") and i[\"spec\"].get(\"holderIdentity\") == \"$p-${rest[1]}\"))')\" = 6 ]"; then
  ok "the last replica takes all six Leases"; else fail "take-all" "$(holders | tr '\n' ' ')"; fi
sed -i 's/purple/yellow/' app/cm.yaml && git -c user.name=t -c user.email=t@t commit -qam three
webhook "${rest[1]}" || fail "webhook to the last replica"
if wait_for 180 all_are yellow; then ok "one replica left reconciles all six"; else fail "sync by the last replica"; fi
kill -TERM "${pid[${rest[1]}]}"; wait "${pid[${rest[1]}]}"; pid[${rest[1]}]=
t_done
