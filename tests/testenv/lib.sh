# Shared helpers for the test environment scripts (sourced, not run).
# testenv_cachedir: where built binaries live, keyed by the pinned versions.
testenv_cachedir() {
  printf '%s/gitops-testenv/k8s-%s_etcd-%s_helm-%s_kustomize-%s' \
    "${XDG_CACHE_HOME:-$HOME/.cache}" "$KUBERNETES_VERSION" "$ETCD_VERSION" "$HELM_VERSION" "$KUSTOMIZE_VERSION"
}
testenv_bindir() { printf '%s/bin' "$(testenv_cachedir)"; }
