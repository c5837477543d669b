#!/usr/bin/env bash
# The git source over ssh against a private sshd on loopback: a key file and a known_hosts entry
# (plain or hashed) let the fetch through; an unknown or changed host key, an unauthorized key or
# a missing key file are exit-5 errors that say what is wrong. Needs sshd (openssh-server).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
. "$root/tests/lib.sh"
need git; need ssh-keygen; need helm; need kustomize
sshd=$(command -v sshd || echo /usr/sbin/sshd)
if [ ! -x "$sshd" ]; then
  echo "FAIL sshd is not installed (Debian package openssh-server): cannot test the ssh transport"
  echo "[  FAILED  ] 1 test(s)."; exit 1
fi
gitops=${GITOPS_BIN:-$root/build/asan/gitops}
tmp=$(mktemp -d)
trap '[ -f "$tmp/sshd.pid" ] && kill "$(cat "$tmp/sshd.pid")" 2>/dev/null; rm -rf "$tmp"' EXIT
export GITOPS_DATA_DIR=$tmp/data
# libgit2 1.5.1 leaks ~100 bytes per ssh connection in its own known_hosts lookup (upstream bug)
# (full stacks, so that the suppression can match libgit2's entry point and nothing else)
export LSAN_OPTIONS=suppressions=$root/tests/fixtures/manifests/lsan-libgit2-ssh.supp:print_suppressions=0
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}:fast_unwind_on_malloc=0
chmod 700 "$tmp"

ssh-keygen -q -t ed25519 -N '' -f "$tmp/host_key" -C host
ssh-keygen -q -t ed25519 -N '' -f "$tmp/id" -C client
ssh-keygen -q -t ed25519 -N '' -f "$tmp/other" -C stranger
ssh-keygen -q -t ed25519 -N '' -f "$tmp/other_host" -C other-host
cp "$tmp/id.pub" "$tmp/authorized_keys"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$tmp/sshd_config" <<CFG
Port $port
ListenAddress 127.0.0.1
HostKey $tmp/host_key
PidFile $tmp/sshd.pid
AuthorizedKeysFile $tmp/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
CFG
mkdir -p /run/sshd 2>/dev/null
"$sshd" -f "$tmp/sshd_config" -E "$tmp/sshd.log" || { fail "sshd did not start" "$(cat "$tmp/sshd.log")"; t_done; }
for _ in $(seq 50); do [ -s "$tmp/sshd.pid" ] && break; sleep 0.1; done

work=$tmp/work; mkdir -p "$work" && cp -r "$root/examples/shop/." "$work/"
git -C "$work" init -q -b main && git -C "$work" add -A &&
  git -C "$work" -c user.name=t -c user.email=t@example.com commit -qm shop
git clone -q --bare "$work" "$tmp/shop.git"
url="ssh://$(id -un)@127.0.0.1:$port$tmp/shop.git"

echo "[127.0.0.1]:$port $(cut -d' ' -f1,2 "$tmp/host_key.pub")" > "$tmp/known_hosts"
echo "[127.0.0.1]:$port $(cut -d' ' -f1,2 "$tmp/other_host.pub")" > "$tmp/known_hosts_changed"
echo "example.org $(cut -d' ' -f1,2 "$tmp/host_key.pub")" > "$tmp/known_hosts_other"
cp "$tmp/known_hosts" "$tmp/known_hosts_hashed" && ssh-keygen -q -H -f "$tmp/known_hosts_hashed" >/dev/null 2>&1
# a private HOME: libgit2 also reads ~/.ssh/known_hosts (and leaks when it is missing)
mkdir -p "$tmp/home/.ssh" && : > "$tmp/home/.ssh/known_hosts"
run() { env HOME="$tmp/home" GITOPS_SSH_KEY="$1" GITOPS_SSH_KNOWN_HOSTS="$2" GITOPS_DATA_DIR="$3" "$gitops" render dev --repo "$url" --app frontend; }

expect_rc "ssh key + known_hosts: renders" 0 run "$tmp/id" "$tmp/known_hosts" "$tmp/d1"
expect_contains "ssh: the remote's objects" "name: frontend" "$out"
expect_rc "ssh with a hashed known_hosts entry: renders" 0 run "$tmp/id" "$tmp/known_hosts_hashed" "$tmp/d2"
grep -q '^|1|' "$tmp/known_hosts_hashed" && ok "the hashed file is hashed" || fail "ssh-keygen -H did not hash"

expect_rc "host not in known_hosts: exit 5" 5 run "$tmp/id" "$tmp/known_hosts_other" "$tmp/d3"
expect_contains "host not in known_hosts: says so" "ssh host key of [127.0.0.1]:$port is not in $tmp/known_hosts_other" "$out"
expect_rc "changed host key: exit 5" 5 run "$tmp/id" "$tmp/known_hosts_changed" "$tmp/d4"
expect_contains "changed host key: says so" "is not in $tmp/known_hosts_changed" "$out"
expect_rc "unauthorized key: exit 5" 5 run "$tmp/other" "$tmp/known_hosts" "$tmp/d5"
expect_contains "unauthorized key: an authentication error" "authentication" "$out"
expect_rc "missing key file: exit 5" 5 run "$tmp/nope" "$tmp/known_hosts" "$tmp/d6"
expect_contains "missing key file: names the setting" "GITOPS_SSH_KEY" "$out"
t_done
