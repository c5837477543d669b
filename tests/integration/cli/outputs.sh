#!/usr/bin/env bash
# What gitops prints and records, against the local control plane: Secret values never leak
# through apiserver refusals (sync, diff, progress, events), failures are kept in events and
# shown under --quiet, diff shows refusals as errors, exit codes for user mistakes, --quiet and
# --json everywhere, one JSON shape per thing, status from the history (last sync, pins, pending
# promotions, an unreachable environment as one row), no-op app syncs not recorded, history
# --app finds environment-wide syncs, promote --wait on a rejected or superseded promotion.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../../lib.sh"
need kubectl; need jq
G=${GITOPS_BIN:?run through make test}
tmp=$(mktemp -d)
p=out$$; ns=$p-ns; secret=918273645
export GITOPS_DATA_DIR=$tmp/data
unset GITLAB_USER_LOGIN GITHUB_ACTOR CI GITLAB_CI GITHUB_ACTIONS GITOPS_STATE_REPO GITOPS_STATE_BRANCH
cleanup() { kubectl delete ns "$ns" --wait=false >/dev/null 2>&1
  kubectl -n gitops-system get configmap,lease -o name 2>/dev/null | grep "\.$p-" |
    xargs -r kubectl -n gitops-system delete >/dev/null 2>&1
  rm -rf "$tmp"; }
trap cleanup EXIT

"$G" keygen --out "$tmp/al.key" >/dev/null 2>&1
# a kubeconfig whose server refuses connections: the "down" environment's cluster
sed "s|server: .*|server: https://127.0.0.1:1|" "$KUBECONFIG" > "$tmp/down.kubeconfig"
repo=$tmp/repo; mkdir -p "$repo/api" "$repo/web" "$repo/bad"; cd "$repo"
cat > gitops.yaml <<Y
apiVersion: gitops/v1
kind: Pipeline
environments:
  - name: $p-a
    track: main
    namespace: $ns
    apps: [{name: api, path: api}, {name: web, path: web}]
  - name: $p-b
    from: $p-a
    namespace: $ns
    apps: [{name: api, path: api}]
    approval: {required: 1, approvers: [{name: al, key: "$(cat "$tmp/al.key.pub")"}]}
  - name: $p-bad
    track: main
    namespace: $ns
    apps: [{name: bad, path: bad}]
  - name: $p-down
    track: main
    namespace: $ns
    cluster: {kubeconfig: $tmp/down.kubeconfig}
    apps: [{name: web, path: web}]
Y
printf 'apiVersion: v1\nkind: Namespace\nmetadata: {name: %s}\n' "$ns" > web/ns.yaml
cm() { printf 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: %s}\ndata: {v: "%s"}\n' "$1" "$2" > "$3"; }
cm api 1 api/cm.yaml; cm web 1 web/cm.yaml
# The apiserver refuses this Service (port out of range) in an app that also carries a Secret
# whose value must never be printed.
cat > bad/svc.yaml <<Y
apiVersion: v1
kind: Service
metadata: {name: db}
spec: {ports: [{port: 70000}]}
---
apiVersion: v1
kind: Secret
metadata: {name: db}
stringData: {password: "$secret"}
Y
cm fine 1 bad/fine.yaml
git init -q -b main
commit() { git add -A && git -c user.name=t -c user.email=t@t commit -qm "$1"; git rev-parse HEAD; }
C1=$(commit one)
kubectl create ns "$ns" >/dev/null 2>&1

# --- Secret values never leak; failures shown under --quiet and kept in the event
# An unquoted number as a Secret value: the apiserver would refuse it quoting the value
# ("expected string, got ...{Value:918273645}"); gitops refuses it first, when reading the YAML,
# without printing it. (A repository of its own.)
mkdir -p "$tmp/y/badyaml" && cd "$tmp/y" && cat > gitops.yaml <<Y
apiVersion: gitops/v1
kind: Pipeline
environments: [{name: $p-badyaml, track: main, namespace: $ns, apps: [{name: badyaml, path: badyaml}]}]
Y
cat > badyaml/secret.yaml <<Y
apiVersion: v1
kind: Secret
metadata: {name: db}
stringData: {password: $secret}
Y
git init -q -b main && commit y >/dev/null
expect_rc "a non-string Secret value is refused when read: exit 3" 3 "$G" diff "$p-badyaml"
expect_contains "... naming file:line and the key" "badyaml/secret.yaml:1: Secret db: stringData.password must be a string" "$out"
expect_eq "... without the value" "" "$(grep -o "$secret" <<<"$out")"
expect_rc "sync of it: exit 3, nothing applied" 3 "$G" sync "$p-badyaml"
expect_eq "... without the value" "" "$(grep -o "$secret" <<<"$out")"
cd "$repo"
expect_rc "diff shows the refusal as an error: exit 3" 3 "$G" diff "$p-bad"
expect_contains "diff: refused by the apiserver" "refused by the apiserver" "$out"
expect_eq "diff: the value is not shown" "" "$(grep -o "$secret" <<<"$out")"
dj=$("$G" diff "$p-bad" --json 2>/dev/null)
expect_eq "diff --json: state REFUSED with the environment" "REFUSED $p-bad" \
  "$(jq -r '.[] | select(.kind=="Service") | "\(.state) \(.environment)"' <<<"$dj")"
expect_eq "diff --json: the fine objects stay creates" "MISSING MISSING" "$(jq -r '[.[] | select(.kind!="Service") | .state] | join(" ")' <<<"$dj")"
expect_eq "diff --json: no value" "" "$(grep -o "$secret" <<<"$dj")"
expect_rc "sync with a refused object exits 6" 6 "$G" sync "$p-bad" --quiet
expect_contains "--quiet still says which object failed" "Service $ns/db" "$out"
expect_contains "... and why (the apiserver's reason)" "spec.ports[0].port" "$out"
expect_eq "the Secret's value is not in sync's output" "" "$(grep -o "$secret" <<<"$out")"
expect_rc "sync (progress lines) also exits 6" 6 "$G" sync "$p-bad"
expect_eq "the value is not in the progress lines" "" "$(grep -o "$secret" <<<"$out")"
ev=$("$G" history --env "$p-bad" --type sync.failed --json)
expect_eq "sync.failed keeps the failed object" "Service $ns/db" "$(jq -r '.[0].failures[0].object' <<<"$ev")"
expect_contains "sync.failed keeps the reason" "spec.ports[0].port" "$(jq -r '.[0].failures[0].reason' <<<"$ev")"
expect_eq "the value is not in the event" "" "$(grep -o "$secret" <<<"$ev")"
expect_eq "the value is nowhere in the state branch" "" "$(git log gitops/state --format=%B | grep -o "$secret")"

# --- render: a scalar stringData and the last-applied annotation are masked; --json is a List
mkdir -p "$tmp/r/s" && cd "$tmp/r" && cat > gitops.yaml <<Y
apiVersion: gitops/v1
kind: Pipeline
environments: [{name: r, namespace: $ns, apps: [{name: s, path: s}]}]
Y
cat > s/s.yaml <<'Y'
apiVersion: v1
kind: Secret
metadata:
  name: s
  annotations:
    kubectl.kubernetes.io/last-applied-configuration: '{"stringData":{"p":"lastappliedvalue"}}'
stringData: {p: lastappliedvalue}
Y
git init -q -b main && commit r >/dev/null
expect_rc "render" 0 "$G" render r
expect_eq "render: no Secret value" "" "$(grep -oE 'lastappliedvalue' <<<"$out")"
expect_eq "render --json of one object is a List" "List 1" "$("$G" render r --json | jq -r '"\(.kind) \(.items|length)"')"
sed -i 's/^stringData: .*/stringData: scalarvalue/' s/s.yaml && commit r2 >/dev/null
expect_rc "render of a scalar stringData: refused (exit 3)" 3 "$G" render r
expect_contains "... saying what it is" "stringData must be a mapping of strings, not a string" "$out"
expect_eq "... without the value" "" "$(grep -oE 'scalarvalue' <<<"$out")"
cd "$repo"

# --- exit codes for user mistakes; --quiet accepted
expect_rc "unknown --context: exit 3" 3 "$G" diff "$p-a" --context nope
expect_rc "missing --kubeconfig: exit 3" 3 "$G" diff "$p-a" --kubeconfig "$tmp/none"
expect_rc "keygen into a missing directory: exit 3" 3 "$G" keygen --out "$tmp/no/such/k.key"
expect_contains "keygen: says what to do" "mkdir -p" "$out"
expect_rc "history --env unknown: exit 3" 3 "$G" history --env nope
expect_rc "rollback --to too short: exit 2" 2 "$G" rollback "$p-a" --to abc
expect_rc "keygen --quiet" 0 "$G" keygen --out "$tmp/q.key" --quiet
expect_rc "history --quiet" 0 "$G" history --quiet
expect_rc "history dora --quiet --json" 0 "$G" history dora --quiet --json

# --- sync: counts in JSON; app syncs; history --app
sj=$("$G" sync "$p-a" --json --quiet --adopt)   # the Namespace was made with kubectl: adopted
expect_eq "sync --json: counts (the namespace exists)" "2 0 1" "$(jq -r '"\(.counts.created) \(.counts.failed) \(.counts.adopted)"' <<<"$sj")"
expect_eq "the environment-wide sync recorded the apps it changed" "api,web" \
  "$("$G" history --env "$p-a" --json | jq -r '.[0].apps | sort | join(",")')"
cm api 2 api/cm.yaml; C2=$(commit two)
expect_rc "sync of one app" 0 "$G" sync "$p-a" --app api --quiet
n1=$("$G" history --env "$p-a" --json | jq length)
expect_rc "the same app sync again" 0 "$G" sync "$p-a" --app api --quiet
expect_eq "a no-op sync of one app is not recorded" "$n1" "$("$G" history --env "$p-a" --json | jq length)"
expect_eq "history --app api finds the environment-wide sync too" 2 "$("$G" history --app api --env "$p-a" --json | jq length)"
expect_eq "history --app web: only the environment-wide sync" 1 "$("$G" history --app web --env "$p-a" --json | jq length)"

# --- status: last sync from history, pins, pending promotions, an unreachable environment
"$G" sync "$p-a" --quiet >/dev/null 2>&1
newp=$("$G" promote "$C2" "$p-b" --json --quiet); rc=$?
expect_eq "promote to b (gated: pending)" "0 pending false" "$rc $(jq -r '"\(.status) \(.existing)"' <<<"$newp")"
P=$(jq -r .id <<<"$newp")
expect_rc "rollback a (pinned)" 0 "$G" rollback "$p-a" --quiet
st=$("$G" status --json 2>/dev/null); rc=$?
expect_eq "status exits 4: one environment's cluster is down" 4 "$rc"
last=$("$G" history --env "$p-a" --type sync. --json | jq -r '.[0].time')
expect_eq "status: SYNCED AT is the last sync in the history" "$last" "$(jq -r ".[] | select(.environment==\"$p-a\") | .syncedAt" <<<"$st")"
expect_eq "status: the pin and why" "rollback $C1" "$(jq -r ".[] | select(.environment==\"$p-a\") | \"\(.pin.reason) \(.pin.sha)\"" <<<"$st")"
expect_eq "status: the pending promotion" "$P" "$(jq -r ".[] | select(.environment==\"$p-b\") | .pending[0].id" <<<"$st")"
expect_eq "status: the down environment is a row with its error" "Unknown 1" \
  "$(jq -r ".[] | select(.environment==\"$p-down\") | \"\(.state) \(.error | length > 0 | if . then 1 else 0 end)\"" <<<"$st")"
expect_eq "status: the other environments are still shown" 4 "$(jq length <<<"$st")"
expect_eq "status and sync name counts the same way" "inSync modified missing extra" \
  "$(jq -r ".[] | select(.environment==\"$p-a\") | .counts | keys_unsorted | join(\" \")" <<<"$st")"
expect_rc "status table" 4 "$G" status
expect_contains "status table: pinned by rollback" "pinned to ${C1:0:12} by rollback" "$out"
expect_contains "status table: pending promotion" "pending promotion $P" "$out"
# --- status --apps: a row per app (issue 13), in JSON and in the table
sa=$("$G" status "$p-a" --apps --json 2>/dev/null)
expect_eq "status --apps --json: a row per app with source and object count" "api plain 1|web plain 2" \
  "$(jq -r '[.[0].apps[] | "\(.app) \(.source) \(.objects)"] | join("|")' <<<"$sa")"
expect_eq "status --apps --json: an app is OutOfSync when one of its objects differs" \
  "$(jq -r '[.[0].apps[] | if (.counts.modified + .counts.missing + .counts.extra) > 0 then "OutOfSync" else "Synced" end] | join(" ")' <<<"$sa")" \
  "$(jq -r '[.[0].apps[].state] | join(" ")' <<<"$sa")"
expect_eq "status --apps --json: the apps' counts add up to the environment's" \
  "$(jq -r '.[0].counts | [.inSync, .modified, .missing, .extra] | join(" ")' <<<"$sa")" \
  "$(jq -r '[.[0].apps[].counts] | [(map(.inSync) | add), (map(.modified) | add), (map(.missing) | add), (map(.extra) | add)] | join(" ")' <<<"$sa")"
expect_eq "status --apps --json: the apps' health" "Healthy Healthy" "$(jq -r '[.[0].apps[].health] | join(" ")' <<<"$sa")"
expect_rc "status --apps table" 0 "$G" status "$p-a" --apps
expect_contains "status --apps table: the app rows" "APP          SOURCE" "$out"
expect_contains "status --apps table: the web app" "  web          plain" "$out"

# --- promote --json: one shape for new and existing
old=$("$G" promote "$C2" "$p-b" --json 2>/dev/null)
expect_eq "promote --json: an existing promotion has the keys of a new one" "$(jq -c keys <<<"$newp") true" \
  "$(jq -c keys <<<"$old") $(jq -r .existing <<<"$old")"

# --- promote --wait: rejected, then superseded (was a use-after-free)
( sleep 3; "$G" reject "$P" --key "$tmp/al.key" --reason no --quiet ) &
expect_rc "promote --wait on a rejected promotion: exit 7" 7 "$G" promote "$C2" "$p-b" --wait --timeout 60s --quiet
expect_contains "promote --wait says it was rejected" "was rejected" "$out"
expect_eq "no garbage in the message" "" "$(grep -a 'was rejected' <<<"$out" | LC_ALL=C grep -a '[^[:print:]]')"
wait
cm api 3 api/cm.yaml; C3=$(commit three)
"$G" resume "$p-a" --quiet; "$G" sync "$p-a" --quiet >/dev/null 2>&1
P3=$("$G" promote "$C3" "$p-b" 2>/dev/null)
( sleep 3; P4=$("$G" promote "$C2" "$p-b" 2>/dev/null); "$G" approve "$P4" --key "$tmp/al.key" --quiet ) &
expect_rc "promote --wait on a superseded promotion: exit 7" 7 "$G" promote "$C3" "$p-b" --wait --timeout 60s --quiet
expect_contains "promote --wait says it was superseded" "was superseded" "$out"
wait
# --- promote --wait interrupted: Ctrl-C ends the wait at once (exit 1), the promotion stays
"$G" promote "$C2" "$p-b" --wait --timeout 10m >/dev/null 2>"$tmp/wait.err" & wpid=$!
for _ in $(seq 50); do grep -q . "$tmp/wait.err" 2>/dev/null && break; kill -0 $wpid 2>/dev/null || break; sleep 0.2; done
sleep 1; kill -INT $wpid; wait $wpid; rc=$?
expect_eq "promote --wait interrupted by SIGINT: exit 1" 1 "$rc"
expect_contains "promote --wait says it was interrupted" "interrupted" "$(cat "$tmp/wait.err")"
expect_eq "the interrupted wait left the promotion applied" "applied" \
  "$("$G" promote "$C2" "$p-b" --json 2>/dev/null | jq -r .status)"
t_done
