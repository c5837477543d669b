#!/usr/bin/env bash
# Every command's options against the README's command reference ("## Commands"): the
# synopsis there is the usage of `gitops <cmd> --help`; the options --help lists are exactly
# those of the synopsis (the groups "[cluster options]" and "[repository options]" expanded from
# the README's bullets); --help exits 0; an unknown option and a value option without its value
# exit 2 with one line naming the option and the command; `--opt=V` and `--opt V` give the same
# result. The expected lists come from the README, never from the binary. No cluster needed:
# every command runs in an empty directory, where it fails the same way after parsing.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../../lib.sh"
G=${GITOPS_BIN:?run through make test}
readme=$here/../../../README.md
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/empty"
cd "$tmp/empty" || exit 1
export GITOPS_DATA_DIR=$tmp/data KUBECONFIG=$tmp/no-kubeconfig HOME=$tmp/home
unset GITOPS_STATE_REPO GITOPS_STATE_BRANCH GITOPS_SIGNING_KEY GITLAB_USER_LOGIN GITHUB_ACTOR CI

# The README's command reference: the first code block of "## Commands", and the option groups.
section=$(awk '/^## Commands$/ {on=1; next} on && /^## / {exit} on' "$readme")
block=$(printf '%s\n' "$section" | awk '/^```/ {n++; next} n == 1')
[ -n "$block" ] || { fail "README has a code block under ## Commands"; t_done; }
group() { # group NAME: the options of the README bullet "- `[NAME]`: ...", as --name=VALUE
  printf '%s\n' "$section" | awk -v g="- \`[$1]\`" 'index($0, g) == 1 {on=1; print; next}
    on && /^  / {print; next} {on=0}' | tr '\n' ' ' | grep -oE '`--[a-z-]+ [^`]+`' | tr -d '`' | sed 's/ /=/' | sort -u; }
cluster_opts=$(group "cluster options"); repo_opts=$(group "repository options")
expect_eq "README defines [cluster options]" "--context=NAME --kubeconfig=FILE" "$(echo $cluster_opts)"
expect_eq "README defines [repository options]" "--repo=URL|PATH --state-branch=B --state-repo=URL|PATH" "$(echo $repo_opts)"

# synopsis CMD: the README's entry for "gitops CMD" (continuation lines joined), whitespace squeezed
synopsis() {
  printf '%s\n' "$block" | awk -v c="gitops $1 " '
    /^gitops / {on = (index($0 " ", c) == 1) && !(substr($0, length(c) + 1) ~ /^(show|dora|verify|record)( |$)/ && c == "gitops history ")}
    on' | tr -s ' \n' '  ' | sed 's/ $//'; }
# help_usage CMD: the usage lines of `gitops CMD --help`, the same way
help_usage() { $G $1 --help | sed -n '/^$/q;p' | sed 's/^usage: //; s/^       //' |
  awk 'NR > 1 && /^gitops / {exit} {print}' | tr -s ' \n' '  ' | sed 's/ $//'; }
# readme_opts CMD: the options the README gives CMD, one per line: "--name" or "--name=V"
readme_opts() {
  local s; s=$(synopsis "$1")
  printf '%s\n' "$s" | grep -oE -- '--[a-z-]+( [A-Za-z|]+[.]*)?' | sed -E 's/ ([A-Za-z|]+)/=\1/; s/\.\.\.$//'
  case $s in *"[cluster options]"*) printf '%s\n' $cluster_opts ;; esac
  case $s in *"[repository options]"*) printf '%s\n' $repo_opts ;; esac; }
# help_opts CMD: the options listed by `gitops CMD --help` (the entries of its option sections)
help_opts() { $G $1 --help | grep -oE '^  (-[a-z], )?--[a-z-]+' | sed -E 's/^  (-[a-z], )?//' | sort -u; }

commands=$($G --help | awk '/^Commands:/ {on=1; next} on && /^$/ {exit} on {print $1}')
expect_contains "the command list names render" "render" "$(echo $commands)"
expect_contains "the command list names history" "history" "$(echo $commands)"
all=""
for c in $commands; do
  all="$all $c"
  [ "$c" = history ] && all="$all history_show history_dora history_verify history_record"
done

for cc in $all; do
  c=${cc/_/ }
  syn=$(synopsis "$c")
  if [ -z "$syn" ]; then fail "README synopsis of gitops $c"; continue; fi
  expect_eq "README synopsis of gitops $c is its --help usage" "$syn" "$(help_usage "$c")"
  out=$($G $c --help 2>&1); rc=$?
  expect_eq "gitops $c --help exits 0" 0 "$rc"
  want=$( (readme_opts "$c" | sed 's/=.*//'; echo --help) | sort -u)
  expect_eq "gitops $c --help lists exactly the README's options" "$(echo $want)" "$(echo $(help_opts "$c"))"
  # required arguments and options (not in brackets in the synopsis) so that parsing gets past them
  base=()
  for w in $(printf '%s\n' "$syn" | sed -E 's/\[[^]]*\]//g'); do
    case $w in gitops|${c%% *}|${c#* }) ;; "<"*">") base+=(x) ;; --*) base+=("$w" "$tmp/nodir/v") ;; esac
  done
  [ "${c%% *}" = run ] && base+=(--listen off --quiet)
  [ "${c%% *}" = help ] && base=()
  # an unknown option: exit 2, one line, naming it and the command, pointing at --help
  out=$($G $c "${base[@]}" --no-such-option 2>&1); rc=$?
  expect_eq "gitops $c --no-such-option exits 2" 2 "$rc"
  expect_eq "gitops $c --no-such-option is one line" "gitops: $c: unknown option --no-such-option; see 'gitops $c --help'" "$out"
  while read -r o; do
    [ -n "$o" ] || continue
    name=${o%%=*}
    if [ "$name" = "$o" ]; then   # a switch: a value is a usage error
      out=$($G $c "${base[@]}" "$name=yes" 2>&1); rc=$?
      expect_eq "gitops $c $name=yes exits 2 with one line" "2 gitops: $c: $name takes no value; see 'gitops $c --help'" "$rc $out"
      continue
    fi
    # a value option with its value missing
    out=$($G $c "${base[@]}" "$name" 2>&1); rc=$?
    expect_eq "gitops $c $name (no value) exits 2 with one line" \
      "2 gitops: $c: $name needs a value (${o#*=}); see 'gitops $c --help'" "$rc $out"
    # --name=V and --name V: the same exit code and output (whatever parsing leads to next)
    eq=$(timeout 60 $G $c "${base[@]}" "$name=$tmp/nodir/v" 2>&1; echo "rc=$?")
    sp=$(timeout 60 $G $c "${base[@]}" "$name" "$tmp/nodir/v" 2>&1; echo "rc=$?")
    expect_eq "gitops $c: $name=V and $name V give the same result" "$eq" "$sp"
    case $eq in *"unknown option"*|*"needs a value"*|*"unexpected argument"*|*"rc=124") fail "gitops $c $name=V parsed" "$eq" ;; esac
  done < <(readme_opts "$c" | sort -u)
done

# Values reach the command the same way in both spellings: render, in a small repository (plain
# YAML; no cluster read), prints the one app asked for, at the revision asked for.
repo=$tmp/repo; mkdir -p "$repo/web" "$repo/api"
cat > "$repo/gitops.yaml" <<Y
apiVersion: gitops/v1
kind: Pipeline
environments:
  - name: dev
    track: main
    namespace: opt-ns
    apps: [{name: web, path: web}, {name: api, path: api}]
Y
for a in web api; do printf 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: %s}\ndata: {v: "1"}\n' $a > "$repo/$a/cm.yaml"; done
git -C "$repo" init -q -b main && git -C "$repo" add -A &&
  git -C "$repo" -c user.name=t -c user.email=t@t commit -qm one || fail "a git repository"
first=$(git -C "$repo" rev-parse HEAD)
sed -i 's/"1"/"2"/' "$repo/web/cm.yaml"; git -C "$repo" -c user.name=t -c user.email=t@t commit -qam two
eq=$($G render dev --app=web --revision="$first" --repo="$repo" -q 2>&1)
sp=$($G render dev --app web --revision "$first" --repo "$repo" --quiet 2>&1)
expect_eq "render: --app=web --revision=SHA --repo=R and --app web --revision SHA --repo R print the same" "$eq" "$sp"
expect_contains "render --app=web prints web" "name: web" "$eq"
expect_contains "render --revision=SHA prints that revision" 'v: "1"' "$eq"
case $eq in *"name: api"*) fail "render --app=web printed api too" "$eq" ;; *) ok "render --app=web prints web only" ;; esac
(cd "$repo" && $G render dev --app=api --json >"$tmp/j1" 2>&1; $G render --json dev --app api >"$tmp/j2" 2>&1)
expect_eq "render --app=api --json and --json --app api print the same" "$(cat "$tmp/j1")" "$(cat "$tmp/j2")"
expect_contains "render --app=api --json prints api" '"name": "api"' "$(cat "$tmp/j1")"

# `--` ends the options: what follows is an argument, even --help
out=$($G render -- --help 2>&1); rc=$?
expect_eq "gitops render -- --help: --help is the environment" 5 "$rc"
case $out in *"usage:"*) fail "gitops render -- --help printed the help" "$out" ;; *) ok "gitops render -- --help is not a help request" ;; esac
out=$($G render x y 2>&1); rc=$?
expect_eq "gitops render x y: one argument too many" "2 gitops: render: unexpected argument y; see 'gitops render --help'" "$rc $out"
t_done
