#!/usr/bin/env bash
# examples/.gitlab-ci.yml as GitLab runs it: each job's script lines, read from the YAML (never
# copied here), run in a fresh detached checkout without a local main (what the GitLab runner
# makes), against a git smart-HTTP server and the local control plane. The reconciler's part
# (gitops sync of dev, staging, prod) runs beside them, as `gitops run` would in each cluster.
# The approver makes the signature from a normal clone of the repository.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
. "$root/tests/lib.sh"
need git; need python3; need helm; need kustomize; need kubectl; need jq
G=${GITOPS_BIN:?run through make test}
tmp=$(mktemp -d)
p=ci$$; pw=job-token-$$
srv=
unset GITOPS_GIT_TOKEN GITOPS_GIT_TOKEN_FILE GITOPS_GIT_USERNAME GITOPS_GIT_PASSWORD GITOPS_GIT_PASSWORD_FILE \
  GITOPS_STATE_REPO GITOPS_STATE_BRANCH GITLAB_USER_LOGIN GITHUB_ACTOR CI GITLAB_CI GITHUB_ACTIONS
cleanup() { [ -n "$srv" ] && kill "$srv" 2>/dev/null
  kubectl delete ns "$p-dev" "$p-staging" "$p-prod" --wait=false >/dev/null 2>&1
  kubectl -n gitops-system get configmap,lease -o name 2>/dev/null | grep "\.$p\." |
    xargs -r kubectl -n gitops-system delete >/dev/null 2>&1
  rm -rf "$tmp"; }
trap cleanup EXIT

# the manifests repository: examples/shop with the CI file at its root, as its header says
"$G" keygen --out "$tmp/alice.key" >/dev/null 2>&1 || fail "keygen"
work=$tmp/work; mkdir -p "$work" && cp -r "$root/examples/shop/." "$work/" && cp "$root/examples/.gitlab-ci.yml" "$work/"
sed -i "s/shop-\(dev\|staging\|prod\)/$p-\1/" "$work/gitops.yaml" "$work"/platform/*/namespace.yaml
sed -i "s/^name: shop /name: $p /" "$work/gitops.yaml"   # a pipeline of its own on this cluster
sed -i "s|ed25519:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=|$(cat "$tmp/alice.key.pub")|" "$work/gitops.yaml"
git -C "$work" init -q -b main && git -C "$work" add -A &&
  git -C "$work" -c user.name=dev -c user.email=dev@example.com commit -qm "shop" || fail "repository"
SHA=$(git -C "$work" rev-parse HEAD)
mkdir -p "$tmp/srv" && git clone -q --bare "$work" "$tmp/srv/shop.git"
python3 "$root/tests/fixtures/git_http_server.py" "$tmp/srv" "$pw" "$tmp/port" & srv=$!
for _ in $(seq 100); do [ -s "$tmp/port" ] && break; sleep 0.1; done
url="http://127.0.0.1:$(cat "$tmp/port")/shop.git"

# `gitops` on PATH, as in the image
mkdir -p "$tmp/bin" && ln -s "$G" "$tmp/bin/gitops"

# the jobs, from the YAML: every job must be one this test runs
ci=$work/.gitlab-ci.yml
jobs=$(python3 - "$ci" <<'P'
import sys, yaml
ci = yaml.safe_load(open(sys.argv[1]))
print(" ".join(k for k, v in ci.items() if isinstance(v, dict) and "script" in v and not k.startswith(".")))
P
)
expect_eq "the jobs of the example" "render promote-staging promote-prod approve-prod audit" "$jobs"
# job_script JOB: the job's shell script: global and job variables, before_script, script
job_script() { python3 - "$ci" "$1" <<'P'
import shlex, sys, yaml
ci = yaml.safe_load(open(sys.argv[1])); job = ci[sys.argv[2]]
print("set -eo pipefail")
for scope in (ci.get("variables") or {}, job.get("variables") or {}):
    for k, v in scope.items():
        print("export %s=%s" % (k, shlex.quote(str(v))))
for line in (job.get("before_script", ci.get("before_script")) or []) + job["script"]:
    if not isinstance(line, str):  # GitLab refuses the job: a line with ": " needs quotes
        print("echo 'not a string in %s: %r' >&2; exit 99" % (sys.argv[2], line))
    else:
        print(line)
P
}

# run_job JOB [VAR=VALUE...]: a fresh detached checkout without local branches (the GitLab
# runner: init, fetch the pipeline's branch into refs/remotes/origin, checkout the SHA), the
# predefined and project CI/CD variables, no kubeconfig; output in $out, exit code in $job_rc.
run_job() {
  local job=$1; shift
  local d=$tmp/jobs/$job
  rm -rf "$d"; git init -q "$d"
  git -C "$d" remote add origin "http://gitlab-ci-token:$pw@127.0.0.1:$(cat "$tmp/port")/shop.git"
  git -C "$d" fetch -q origin "+refs/heads/main:refs/remotes/origin/main" && git -C "$d" checkout -q --detach "$SHA"
  job_script "$job" > "$tmp/$job.sh"
  out=$(cd "$d" && env -u KUBECONFIG PATH="$tmp/bin:$PATH" HOME="$tmp/home-$job" GITOPS_DATA_DIR="$tmp/data-$job" \
    CI=true GITLAB_CI=true CI_COMMIT_SHA="$SHA" CI_COMMIT_BRANCH=main CI_DEFAULT_BRANCH=main CI_PIPELINE_ID=4711 \
    CI_PIPELINE_SOURCE=push GITLAB_USER_LOGIN=ci-user GITOPS_STATE_REPO="$url" GITOPS_GIT_TOKEN="$pw" "$@" \
    bash "$tmp/$job.sh" 2>&1); job_rc=$?
}
# the reconciler in the cluster: syncs an environment from the repository over https
reconcile() { GITOPS_DATA_DIR=$tmp/data-reconciler GITOPS_GIT_TOKEN=$pw "$G" sync "$1" --repo "$url" --quiet; }

run_job render
expect_eq "render job: exit 0 in a detached clone without main" 0 "$job_rc"
[ "$job_rc" = 0 ] || echo "$out"
expect_eq "the job's checkout has no local main (as on GitLab)" "" "$(git -C "$tmp/jobs/render" for-each-ref refs/heads)"

expect_rc "the reconciler deploys dev (tracks main)" 0 reconcile dev
# staging's reconciler keeps syncing; it has nothing to run (exit 3) until the promotion pins it
( for _ in $(seq 300); do reconcile staging >/dev/null 2>&1 && exit 0; sleep 1; done; exit 1 ) & rec=$!
run_job promote-staging
expect_eq "promote-staging job: promoted and waited until staging ran it" 0 "$job_rc"
[ "$job_rc" = 0 ] || echo "$out"
wait "$rec"; expect_eq "staging's reconciler deployed the promotion" 0 "$?"

run_job promote-prod
expect_eq "promote-prod job: exit 0" 0 "$job_rc"
[ "$job_rc" = 0 ] || echo "$out"
id=$(jq -r .id "$tmp/jobs/promote-prod/promotion.json" 2>/dev/null)
expect_eq "promotion.json (the artifact) holds a pending promotion" pending \
  "$(jq -r .status "$tmp/jobs/promote-prod/promotion.json" 2>/dev/null)"
expect_contains "the job tells approvers what to run" "gitops approve $id" "$out"

# the approver: a normal clone on their machine (credentials in the URL, no token variable)
git clone -q "http://alice:$pw@127.0.0.1:$(cat "$tmp/port")/shop.git" "$tmp/approver"
sig=$(cd "$tmp/approver" && GITOPS_DATA_DIR=$tmp/data-alice "$G" approve "$id" --key "$tmp/alice.key" --print-signature 2>&1)
expect_eq "the approver signs from a normal clone (state branch read from origin)" 1 \
  "$([ ${#sig} -ge 80 ] && [ "${sig#gitops:}" = "$sig" ] && echo 1)"
[ ${#sig} -ge 80 ] || echo "$sig"

run_job approve-prod PROMOTION_ID="$id" APPROVER=alice SIGNATURE="$sig"
expect_eq "approve-prod job: exit 0" 0 "$job_rc"
[ "$job_rc" = 0 ] || echo "$out"
expect_contains "the approval applied the promotion" "applied" "$out"
expect_rc "the prod reconciler deploys the approved commit" 0 reconcile prod
expect_eq "prod ran the pipeline's commit (recorded by its reconciler)" "$SHA" \
  "$(GITOPS_DATA_DIR=$tmp/data-alice GITOPS_GIT_TOKEN=$pw "$G" history --repo "$url" --env prod --type sync.succeeded --json | jq -r '.[0].sha')"
expect_rc "prod's objects are in the cluster" 0 kubectl -n "$p-prod" get deployment api

run_job audit
expect_eq "audit job: verify and DORA, exit 0" 0 "$job_rc"
[ "$job_rc" = 0 ] || echo "$out"
expect_contains "audit: the history is valid" "valid" "$out"
expect_contains "audit: DORA for prod" "deployment frequency" "$out"

# the events name who did what, with the CI trigger
ev=$(GITOPS_DATA_DIR=$tmp/data-alice GITOPS_GIT_TOKEN=$pw "$G" history --repo "$url" --type promotion. --json)
expect_eq "promotions recorded by the pipeline (trigger ci, actor from GitLab)" "ci ci-user" \
  "$(jq -r '[.[] | select(.type=="promotion.requested" and .environment=="prod")][0] | "\(.trigger) \(.actor)"' <<<"$ev")"
t_done
