#!/usr/bin/env python3
"""Apiserver helper for bench/flux_bench.sh: creates the Flux objects, triggers reconciles, edits
ConfigMaps, waits on watches (one LIST and one WATCH per wait, never polling) and reads the
apiserver's request counters.

Talks to the local control plane of build/cluster/env (GITOPS_APISERVER, GITOPS_CLUSTER_DIR,
admin client certificate). Every request this helper makes is written to $KAPI_OWN_DIR (one JSON
file per process, by the verb apiserver_request_total gives it), so that `snap` reports the
requests of everyone else: the controllers under test.

usage: kapi.py SUBCOMMAND ARGS...   (see the functions named cmd_* below)
"""
import http.client
import json
import os
import ssl
import sys
import time
import urllib.parse

WRITE_VERBS = ("POST", "PUT", "PATCH", "APPLY", "DELETE", "DELETECOLLECTION")
KS = "/apis/kustomize.toolkit.fluxcd.io/v1"
SRC = "/apis/source.toolkit.fluxcd.io/v1"
REQUESTED_AT = "reconcile.fluxcd.io/requestedAt"

own = {}


def save_own():
    d = os.environ.get("KAPI_OWN_DIR")
    if d and own:
        with open(os.path.join(d, f"own-{os.getpid()}-{time.time_ns()}.json"), "w") as f:
            json.dump(own, f)


def resource_of(path):
    """The resource[/subresource] apiserver_request_total gives a request to path."""
    parts = urllib.parse.urlsplit(path).path.strip("/").split("/")
    rest = parts[2:] if parts[0] == "api" else parts[3:]
    if len(rest) >= 3 and rest[0] == "namespaces":
        rest = rest[2:]
    return rest[0] + (f"/{rest[2]}" if len(rest) > 2 else "")


def count_own(verb, path):
    key = f"{verb} {resource_of(path)}"
    own[key] = own.get(key, 0) + 1


def now_ms():
    return time.time_ns() // 1_000_000


class Api:
    def __init__(self):
        d = os.environ["GITOPS_CLUSTER_DIR"]
        u = urllib.parse.urlsplit(os.environ["GITOPS_APISERVER"])
        self.ctx = ssl.create_default_context(cafile=f"{d}/pki/ca.crt")
        self.ctx.load_cert_chain(f"{d}/pki/admin.crt", f"{d}/pki/admin.key")
        self.host, self.port = u.hostname, u.port
        self.conn = None

    def _conn(self):
        if self.conn is None:
            self.conn = http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=3600)
        return self.conn

    def request(self, verb, method, path, body=None, ctype="application/json", ok=(200, 201)):
        """verb: how apiserver_request_total counts this request (LIST, GET, PATCH, ...)."""
        if verb:
            count_own(verb, path)
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = ctype
        c = self._conn()
        c.request(method, path, body=data, headers=headers)
        r = c.getresponse()
        payload = r.read()
        if r.status not in ok:
            raise SystemExit(f"kapi: {method} {path}: HTTP {r.status}: {payload[:300].decode(errors='replace')}")
        return json.loads(payload) if payload and r.headers.get("Content-Type", "").startswith("application/json") else payload

    def watch(self, path, rv):
        """Yields watch events (dicts) from resourceVersion rv, on its own connection."""
        count_own("WATCH", path)
        sep = "&" if "?" in path else "?"
        c = http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=3600)
        c.request("GET", f"{path}{sep}watch=1&resourceVersion={rv}&allowWatchBookmarks=true&timeoutSeconds=3600",
                  headers={"Accept": "application/json"})
        r = c.getresponse()
        if r.status != 200:
            raise SystemExit(f"kapi: watch {path}: HTTP {r.status}: {r.read()[:300].decode(errors='replace')}")
        for line in r:
            if line.strip():
                yield json.loads(line)

    def list(self, path):
        out = self.request("LIST", "GET", path)
        return out["items"], out["metadata"]["resourceVersion"]

    def merge_patch(self, path, patch, verb="PATCH"):
        return self.request(verb, "PATCH", path, patch, ctype="application/merge-patch+json")


def list_watch(api, path, step, timeout_s, t0):
    """LIST then WATCH path; step(name, obj or None) after the list and after every event returns
    True when done. Returns ms since t0 at completion; exits 1 on timeout."""
    deadline = time.monotonic() + timeout_s
    items, rv = api.list(path)
    for o in items:
        if step(o["metadata"]["name"], o):
            return now_ms() - t0
    if step(None, None):
        return now_ms() - t0
    while time.monotonic() < deadline:
        for ev in api.watch(path, rv):
            t = ev.get("type")
            if t == "ERROR":
                items, rv = api.list(path)  # expired: relist
                for o in items:
                    if step(o["metadata"]["name"], o):
                        return now_ms() - t0
                break
            o = ev["object"]
            rv = o["metadata"]["resourceVersion"]
            if t == "BOOKMARK":
                continue
            if step(o["metadata"]["name"], None if t == "DELETED" else o):
                return now_ms() - t0
            if time.monotonic() >= deadline:
                break
    return None


def cond(o, typ):
    for c in (o.get("status") or {}).get("conditions") or []:
        if c.get("type") == typ:
            return c
    return None


# ---- subcommands -------------------------------------------------------------------------

def cmd_snap(api, args):
    """snap: prints {verb: requests} from apiserver_request_total, leases, non-resource requests
    (/metrics, discovery) and this helper's own requests left out; dry-run APPLYs and PATCHes are
    counted as "<VERB>(dry-run)"."""
    text = api.request(None, "GET", "/metrics").decode()
    counts = {}
    for line in text.splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels, value = line.rsplit(" ", 1)
        lab = dict(kv.split("=", 1) for kv in labels[len("apiserver_request_total{"):-1].split(","))
        lab = {k: v.strip('"') for k, v in lab.items()}
        if lab.get("resource", "") in ("", "leases"):
            continue
        verb = lab["verb"]
        if lab.get("dry_run"):
            verb += "(dry-run)"
        res = lab["resource"] + ("/" + lab["subresource"] if lab.get("subresource") else "")
        key = f"{verb} {res}"
        counts[key] = counts.get(key, 0) + int(float(value))
    # What the controllers themselves count having sent (client-go's rest_client_requests_total on
    # their metrics endpoints, KAPI_METRICS="URL..."): a cross-check that leaves out the
    # apiserver's own background requests.
    import urllib.request
    for url in os.environ.get("KAPI_METRICS", "").split():
        with urllib.request.urlopen(url.rstrip("/") + "/metrics", timeout=10) as r:
            for line in r.read().decode().splitlines():
                if line.startswith("rest_client_requests_total{"):
                    labels, value = line.rsplit(" ", 1)
                    method = labels.split('method="', 1)[1].split('"', 1)[0]
                    counts[f"client {method}"] = counts.get(f"client {method}", 0) + int(float(value))
    d = os.environ.get("KAPI_OWN_DIR")
    if d:
        for fn in os.listdir(d):
            with open(os.path.join(d, fn)) as f:
                for v, n in json.load(f).items():
                    counts[v] = counts.get(v, 0) - n
    print(json.dumps(counts))


def cmd_delta(_api, args):
    """delta A.json B.json [--resources]: prints "<requests> <writes> <by verb>", or with
    --resources the requests by verb and resource, most first."""
    a, b = (json.load(open(p)) for p in args[:2])
    full = {k: b.get(k, 0) - a.get(k, 0) for k in set(a) | set(b)}
    if "--client" in args:
        c = {k.split(" ", 1)[1]: n for k, n in full.items() if k.startswith("client ") and n}
        print(f"{sum(c.values())} (" + ", ".join(f"{k} {n}" for k, n in sorted(c.items())) + ")" if c else "0")
        return
    full = {k: n for k, n in full.items() if not k.startswith("client ")}
    if "--resources" in args:
        print(", ".join(f"{k} {n}" for k, n in sorted(full.items(), key=lambda kv: -kv[1])[:8] if n) or "none")
        return
    d = {}
    for k, n in full.items():
        v = k.split(" ")[0]
        d[v] = d.get(v, 0) + n
    d = {v: n for v, n in d.items() if n}
    total = sum(d.values())
    writes = sum(n for v, n in d.items() if v in WRITE_VERBS)
    order = ["GET", "LIST", "WATCH", "POST", "PUT", "PATCH", "APPLY", "DELETE", "DELETECOLLECTION"]
    keys = sorted(d, key=lambda v: (order.index(v.split("(")[0]) if v.split("(")[0] in order else 99, v))
    split = ", ".join(f"{v} {d[v]}" for v in keys) or "none"
    print(total, writes, split)


def cmd_create(api, args):
    """create NS TARGET_NS APPS URL INTERVAL SOURCE_INTERVAL USER PASSWORD: the Secret, the
    GitRepository `apps` (branch main) and one Kustomization app-NNNN per app (path
    ./apps/app-NNNN, prune, targetNamespace TARGET_NS)."""
    ns, tns, apps, url, interval, sinterval, user, pw = args
    api.request("POST", "POST", f"/api/v1/namespaces/{ns}/secrets", {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "git-auth", "namespace": ns},
        "stringData": {"username": user, "password": pw}})
    api.request("POST", "POST", f"{SRC}/namespaces/{ns}/gitrepositories", {
        "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
        "metadata": {"name": "apps", "namespace": ns},
        "spec": {"interval": sinterval, "url": url, "ref": {"branch": "main"}, "secretRef": {"name": "git-auth"}}})
    for i in range(int(apps)):
        api.request("POST", "POST", f"{KS}/namespaces/{ns}/kustomizations", {
            "apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
            "metadata": {"name": f"app-{i:04d}", "namespace": ns},
            "spec": {"interval": interval, "path": f"./apps/app-{i:04d}", "prune": True,
                     "targetNamespace": tns, "timeout": "2m",
                     "sourceRef": {"kind": "GitRepository", "name": "apps"}}})


def cmd_wait_ks(api, args):
    """wait-ks NS COUNT SHA T0_MS TIMEOUT_S [TOKEN]: waits until COUNT Kustomizations are Ready with
    lastAppliedRevision at SHA (and, with TOKEN, lastHandledReconcileAt == TOKEN); prints ms since
    T0_MS."""
    ns, count, sha, t0, timeout = args[0], int(args[1]), args[2], int(args[3]), float(args[4])
    token = args[5] if len(args) > 5 else None
    done, last = set(), {}

    # Latched: once seen Ready at SHA, a Kustomization stays done while its lastAppliedRevision
    # stays at SHA, because its next interval reconcile turns Ready to Unknown for a while (with
    # 1,000 of them some always are, so "all Ready at once" may never happen).
    def step(name, o):
        if name is None:
            return len(done) >= count
        last[name] = o
        st = (o or {}).get("status") or {}
        c = cond(o, "Ready") if o else None
        at = o is not None and st.get("lastAppliedRevision", "").endswith(sha) and \
            (token is None or st.get("lastHandledReconcileAt") == token)
        ok = (at and c is not None and c.get("status") == "True"
              and st.get("observedGeneration") == o["metadata"].get("generation"))
        if ok:
            done.add(name)
        elif not at:
            done.discard(name)
        return len(done) >= count

    ms = list_watch(api, f"{KS}/namespaces/{ns}/kustomizations", step, timeout, t0)
    if ms is None:
        bad = [(n, (cond(o, "Ready") or {}).get("message", "no Ready condition")) for n, o in sorted(last.items())
               if n not in done and o]
        sys.stderr.write(f"kapi: timeout after {timeout:.0f}s: {len(done)}/{count} Kustomizations done; "
                         f"first not done: {bad[:3]}\n")
        sys.exit(1)
    print(ms)


def cmd_wait_source(api, args):
    """wait-source NS SHA T0_MS TIMEOUT_S: waits until GitRepository `apps` has an artifact at SHA."""
    ns, sha, t0, timeout = args[0], args[1], int(args[2]), float(args[3])
    state = {}

    def step(name, o):
        if o is not None and name == "apps":
            state["rev"] = ((o.get("status") or {}).get("artifact") or {}).get("revision", "")
            state["msg"] = (cond(o, "Ready") or {}).get("message", "")
        return state.get("rev", "").endswith(sha)

    ms = list_watch(api, f"{SRC}/namespaces/{ns}/gitrepositories", step, timeout, t0)
    if ms is None:
        sys.exit(f"kapi: timeout: GitRepository {ns}/apps not at {sha}: {state}")
    print(ms)


def cmd_wait_cm(api, args):
    """wait-cm NS KEY VALUE T0_MS TIMEOUT_S NAME...: waits until each ConfigMap NAME has
    data[KEY] == VALUE; prints, per NAME in order, ms since T0_MS (or "timeout")."""
    ns, key, value, t0, timeout, names = args[0], args[1], args[2], int(args[3]), float(args[4]), args[5:]
    want, at = set(names), {}

    def step(name, o):
        if name in want and name not in at and o is not None and (o.get("data") or {}).get(key) == value:
            at[name] = now_ms() - t0
        return len(at) == len(want)

    path = f"/api/v1/namespaces/{ns}/configmaps"
    if len(names) == 1:
        path += "?fieldSelector=" + urllib.parse.quote(f"metadata.name={names[0]}")
    list_watch(api, path, step, timeout, t0)
    print(" ".join(str(at.get(n, "timeout")) for n in names))


def cmd_wait_all(api, args):
    """wait-all NS SELECTOR KEY VALUE COUNT T0_MS TIMEOUT_S: waits until COUNT ConfigMaps matching the
    label SELECTOR have data[KEY] == VALUE; prints ms since T0_MS."""
    ns, sel, key, value, count, t0, timeout = args[0], args[1], args[2], args[3], int(args[4]), int(args[5]), float(args[6])
    done = set()

    def step(name, o):
        if name is not None:
            ok = o is not None and (o.get("data") or {}).get(key) == value
            (done.add if ok else done.discard)(name)
        return len(done) >= count

    ms = list_watch(api, f"/api/v1/namespaces/{ns}/configmaps?labelSelector=" + urllib.parse.quote(sel),
                    step, timeout, t0)
    if ms is None:
        sys.exit(f"kapi: timeout after {timeout:.0f}s: {len(done)}/{count} ConfigMaps with {key}={value}")
    print(ms)


def cmd_annotate(api, args):
    """annotate NS PLURAL TOKEN NAME...|--all: sets reconcile.fluxcd.io/requestedAt=TOKEN, as
    `flux reconcile` does (PLURAL: kustomizations or gitrepositories)."""
    ns, plural, token, names = args[0], args[1], args[2], args[3:]
    base = f"{KS if plural == 'kustomizations' else SRC}/namespaces/{ns}/{plural}"
    if names == ["--all"]:
        names = [o["metadata"]["name"] for o in api.list(base)[0]]
    for n in names:
        api.merge_patch(f"{base}/{n}", {"metadata": {"annotations": {REQUESTED_AT: token}}})


def cmd_edit_cm(api, args):
    """edit-cm NS KEY VALUE NAME...: what `kubectl edit` of data[KEY] does (a patch by another
    field manager); prints the epoch ms after the last edit."""
    ns, key, value, names = args[0], args[1], args[2], args[3:]
    for n in names:
        api.merge_patch(f"/api/v1/namespaces/{ns}/configmaps/{n}?fieldManager=kubectl-edit", {"data": {key: value}})
    print(now_ms())


def cmd_count(api, args):
    """count PATH: prints how many items a LIST of PATH returns."""
    print(len(api.list(args[0])[0]))


def cmd_release(api, args):
    """release NS: after the controllers stopped, drops the Flux finalizers in NS and deletes its
    Kustomizations and GitRepositories (nothing is pruned: the caller deletes the namespaces)."""
    ns = args[0]
    for base in (f"{KS}/namespaces/{ns}/kustomizations", f"{SRC}/namespaces/{ns}/gitrepositories"):
        for o in api.list(base)[0]:
            if o["metadata"].get("finalizers"):
                api.merge_patch(f"{base}/{o['metadata']['name']}", {"metadata": {"finalizers": None}})
        api.request("DELETECOLLECTION", "DELETE", base)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    fn = globals().get("cmd_" + sys.argv[1].replace("-", "_"))
    if fn is None:
        sys.exit(f"kapi: unknown subcommand {sys.argv[1]}")
    try:
        fn(Api(), sys.argv[2:])
    finally:
        save_own()


if __name__ == "__main__":
    main()
