#!/usr/bin/env bash
# Stops kube-apiserver only (etcd keeps running); tests use it with apiserver-start.sh.
set -uo pipefail
dir=$1
pid=$(cat "$dir/apiserver.pid" 2>/dev/null) || exit 0
kill "$pid" 2>/dev/null || exit 0
for i in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || exit 0; sleep 0.1; done
kill -9 "$pid" 2>/dev/null; exit 0
