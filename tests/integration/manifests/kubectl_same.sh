#!/usr/bin/env bash
# "Same as kubectl": every manifest of tests/fixtures/manifests/corpus/ is rendered by gitops (as a
# plain app in a real git repository) and read by `kubectl create --dry-run=client -o json`; the
# objects must be equal (numbers compared as kubectl's JSON round trip leaves them). Every file of
# tests/fixtures/manifests/refused/ is refused by both: gitops with exit 3 and file:line.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
. "$root/tests/lib.sh"
need kubectl; need git; need python3
gitops=${GITOPS_BIN:-$root/build/asan/gitops}
corpus=$root/tests/fixtures/manifests/corpus
refused=$root/tests/fixtures/manifests/refused
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
export GITOPS_DATA_DIR=$tmp/data

# one app per corpus file; namespace "default" as kubectl's context gives it
repo=$tmp/repo; mkdir -p "$repo"
{
  echo "apiVersion: gitops/v1"; echo "kind: Pipeline"; echo "environments:"
  echo "  - name: corpus"; echo "    namespace: default"; echo "    apps:"
} > "$repo/gitops.yaml"
n=0
for f in "$corpus"/*; do
  n=$((n + 1)); app=f$n
  mkdir -p "$repo/corpus/$app"; cp "$f" "$repo/corpus/$app/"
  echo "      - {name: $app, path: corpus/$app}" >> "$repo/gitops.yaml"
done
r=0
for f in "$refused"/*; do
  r=$((r + 1)); app=r$r
  mkdir -p "$repo/refused/$app"; cp "$f" "$repo/refused/$app/"
  echo "      - {name: $app, path: refused/$app}" >> "$repo/gitops.yaml"
done
git -C "$repo" init -q -b main && git -C "$repo" add -A &&
  git -C "$repo" -c user.name=t -c user.email=t@example.com commit -qm corpus

# same A B: the objects of two JSON files (kubectl's concatenated objects or a List) are equal
same() {
  python3 - "$1" "$2" <<'PY'
import json, sys

def norm(v):
    # kubectl's unstructured JSON turns integral numbers into int64 and the rest into float64
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    if isinstance(v, (int, float)):
        if isinstance(v, int) and -2**63 <= v < 2**63:
            return v
        f = float(v)
        return int(f) if f.is_integer() and -2**63 <= f < 2**63 else f
    if isinstance(v, list):
        return [norm(x) for x in v]
    return {k: norm(x) for k, x in v.items()}

def objects(path):
    # kubectl prints one JSON value per object (concatenated); gitops one object or a List
    text, out, i = open(path).read(), [], 0
    dec = json.JSONDecoder()
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            break
        doc, i = dec.raw_decode(text, i)
        if doc.get("kind") == "List" and isinstance(doc.get("items"), list):
            out.extend(doc["items"])
        else:
            out.append(doc)
    # gitops render prints Secret values as "***" (never in clear): compare them masked
    for o in out:
        if o.get("kind") == "Secret" and o.get("apiVersion") == "v1":
            for f in ("data", "stringData"):
                if isinstance(o.get(f), dict):
                    o[f] = {key: "***" for key in o[f]}
    return out

k = [norm(o) for o in objects(sys.argv[1])]
g = [norm(o) for o in objects(sys.argv[2])]
if k != g:
    print("kubectl:", json.dumps(k, sort_keys=True))
    print("gitops: ", json.dumps(g, sort_keys=True))
    sys.exit(1)
print(len(k))
PY
}

n=0
for f in "$corpus"/*; do
  n=$((n + 1)); name=$(basename "$f")
  if ! kubectl create --dry-run=client --validate=false -o json -f "$f" > "$tmp/k.json" 2> "$tmp/k.err"; then
    fail "$name: kubectl could not read it" "$(cat "$tmp/k.err")"; continue
  fi
  if ! "$gitops" render corpus --repo "$repo" --app "f$n" --json > "$tmp/g.json" 2> "$tmp/g.err"; then
    fail "$name: gitops render failed" "$(cat "$tmp/g.err")"; continue
  fi
  if diff=$(same "$tmp/k.json" "$tmp/g.json"); then
    ok "$name: same objects as kubectl ($diff)"
  else
    fail "$name: objects differ from kubectl" "$diff"
  fi
  # the YAML gitops prints must read back the same in kubectl (quoting of yes, 0755, ...)
  if ! "$gitops" render corpus --repo "$repo" --app "f$n" > "$tmp/g.yaml" 2> "$tmp/g.err" ||
     ! kubectl create --dry-run=client --validate=false -o json -f "$tmp/g.yaml" > "$tmp/ky.json" 2> "$tmp/k.err"; then
    fail "$name: gitops YAML output not readable by kubectl" "$(cat "$tmp/g.err" "$tmp/k.err")"; continue
  fi
  if diff=$(same "$tmp/k.json" "$tmp/ky.json"); then
    ok "$name: kubectl reads gitops' YAML output the same"
  else
    fail "$name: kubectl reads gitops' YAML output differently" "$diff"
  fi
done
[ "$n" -ge 10 ] || fail "the corpus has only $n files"

# refused by kubectl when reading, refused by gitops with the file and the line, nothing printed
r=0
for f in "$refused"/*; do
  r=$((r + 1)); name=$(basename "$f")
  if kubectl create --dry-run=client --validate=false -o json -f "$f" > "$tmp/k.json" 2> "$tmp/k.err"; then
    fail "$name: kubectl reads it (the fixture should be one kubectl refuses)"; continue
  fi
  "$gitops" render corpus --repo "$repo" --app "r$r" > "$tmp/g.out" 2> "$tmp/g.err"; rc=$?
  if [ "$rc" -ne 3 ]; then
    fail "$name: gitops render exit $rc, want 3" "$(cat "$tmp/g.err")"; continue
  fi
  if ! grep -qE "refused/r$r/$name:[0-9]+" "$tmp/g.err" || [ -s "$tmp/g.out" ]; then
    fail "$name: no file:line in the error, or output printed" "$(cat "$tmp/g.err")"; continue
  fi
  ok "$name: refused like kubectl ($(head -c 160 "$tmp/g.err"))"
done
[ "$r" -ge 6 ] || fail "the refused corpus has only $r files"
t_done
