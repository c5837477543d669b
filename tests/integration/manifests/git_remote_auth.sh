#!/usr/bin/env bash
# The git source over smart HTTP with basic/token auth (git http-backend behind a small python
# server): a token from the environment or a file is accepted; a wrong or missing one is an auth
# error (exit 5) that says what to set; when the server goes away the last mirror still renders.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
. "$root/tests/lib.sh"
need git; need python3; need helm; need kustomize
gitops=${GITOPS_BIN:-$root/build/asan/gitops}
tmp=$(mktemp -d)
srv_pid=
trap '[ -n "$srv_pid" ] && kill $srv_pid 2>/dev/null; rm -rf "$tmp"' EXIT
export GITOPS_DATA_DIR=$tmp/data
unset GITOPS_GIT_TOKEN GITOPS_GIT_TOKEN_FILE GITOPS_GIT_USERNAME GITOPS_GIT_PASSWORD GITOPS_GIT_PASSWORD_FILE

work=$tmp/work; mkdir -p "$work" && cp -r "$root/examples/shop/." "$work/"
git -C "$work" init -q -b main && git -C "$work" add -A &&
  git -C "$work" -c user.name=t -c user.email=t@example.com commit -qm shop
mkdir -p "$tmp/srv" && git clone -q --bare "$work" "$tmp/srv/shop.git"

python3 "$root/tests/fixtures/git_http_server.py" "$tmp/srv" s3cret-token "$tmp/port" &
srv_pid=$!
for _ in $(seq 50); do [ -s "$tmp/port" ] && break; sleep 0.1; done
url="http://127.0.0.1:$(cat "$tmp/port")/shop.git"

expect_rc "no credentials: exit 5" 5 "$gitops" render dev --repo "$url"
expect_contains "no credentials: says what to set" "GITOPS_GIT_TOKEN" "$out"
expect_eq "no credentials: one line" 1 "$(wc -l <<<"$out")"

expect_rc "wrong token: exit 5" 5 env GITOPS_GIT_TOKEN=wrong "$gitops" render dev --repo "$url"
expect_contains "wrong token: an authentication error" "fetch $url: authentication failed: the server refused the credentials" "$out"

expect_rc "token from the environment renders" 0 env GITOPS_GIT_TOKEN=s3cret-token "$gitops" render dev --repo "$url"
expect_contains "the remote's objects are rendered" "name: frontend" "$out"

printf 's3cret-token\n' > "$tmp/token"
expect_rc "token from a file renders" 0 env GITOPS_GIT_TOKEN_FILE="$tmp/token" "$gitops" render staging --repo "$url"
expect_rc "basic user/password renders" 0 env GITOPS_GIT_USERNAME=alice GITOPS_GIT_PASSWORD=s3cret-token "$gitops" render prod --repo "$url"

kill $srv_pid; wait $srv_pid 2>/dev/null; srv_pid=
expect_rc "server gone: the last mirror still renders" 0 env GITOPS_GIT_TOKEN=s3cret-token "$gitops" render dev --repo "$url" --app frontend
expect_contains "server gone: a warning names the fetch failure" "warning: fetch $url" "$out"
expect_contains "server gone: the mirror is kept" "last fetched mirror is kept" "$out"
t_done
