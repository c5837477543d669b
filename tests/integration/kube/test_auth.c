/* Integration tests for kube/ authentication against the real apiserver: client certificates
 * (files and embedded data), bearer token, token file rotation, exec credential plugins, merged
 * KUBECONFIG files, and a wrong CA. Service-account tokens come from `kubectl create token`. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kube/kube.h"
#include "support/support.h"

static char dir[] = "/tmp/gitops-auth-XXXXXX";
static char *ns, *sa_reader, *sa_nobody, *tok_reader, *tok_nobody;
static const char *server, *pki;

static char *sh_out(const char *fmt, const char *a, const char *b)
{
	char *out = NULL;
	int st = t_sh(&out, fmt, a, b);
	if (st != 0)
		fail_msg("command failed (%d): %s", st, out);
	size_t n = strlen(out);
	while (n && (out[n - 1] == '\n' || out[n - 1] == ' '))
		out[--n] = '\0';
	return out;
}

static void write_text(const char *path, const char *text)
{
	assert_int_equal(gitops_write_file(path, text, strlen(text), 0600), 0);
}

/* A kubeconfig for the local apiserver with `user_yaml` as the user's fields. */
static char *kubeconfig_with(const char *name, const char *cluster_extra, const char *user_yaml)
{
	char *path = gitops_sprintf("%s/%s", dir, name);
	char *text = gitops_sprintf("apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: %s\n%s"
				    "users:\n- name: u\n  user:\n%scontexts:\n- name: ctx\n  context: {cluster: c, user: u}\n"
				    "current-context: ctx\n", server, cluster_extra, user_yaml);
	write_text(path, text);
	free(text);
	return path;
}

static int try_get(const char *kubeconfig, const char *context)
{
	kube_config *cfg;
	struct kube_config_options o = {.kubeconfig = kubeconfig, .context = context};
	int rc = kube_config_load(&cfg, &o);
	if (rc)
		return rc;
	kube_client *c;
	if ((rc = kube_client_new(&c, cfg, NULL)))
		return rc;
	json_t *got = NULL;
	rc = kube_get(&got, c, "v1", "ConfigMap", ns, "probe");
	json_decref(got);
	kube_client_free(c);
	return rc;
}

static int setup(void **state)
{
	(void)state;
	t_env("KUBECONFIG");
	server = t_env("GITOPS_APISERVER");
	const char *cluster_dir = t_env("GITOPS_CLUSTER_DIR");
	pki = gitops_sprintf("%s/pki", cluster_dir);
	if (!mkdtemp(dir))
		return -1;
	ns = t_unique("kube-auth");
	sa_reader = t_unique("reader");
	sa_nobody = t_unique("nobody");
	char *out = NULL;
	int st = t_sh(&out,
		      "kubectl create namespace %s && kubectl -n %s create configmap probe --from-literal=k=v && "
		      "kubectl -n %s create serviceaccount %s && kubectl -n %s create serviceaccount %s && "
		      "kubectl -n %s create role read-cm --verb=get --resource=configmaps && "
		      "kubectl -n %s create rolebinding %s --role=read-cm --serviceaccount=%s:%s",
		      ns, ns, ns, sa_reader, ns, sa_nobody, ns, ns, sa_reader, ns, sa_reader);
	if (st) {
		fprintf(stderr, "setup: %s\n", out);
		free(out);
		return -1;
	}
	free(out);
	tok_reader = sh_out("kubectl -n %s create token %s", ns, sa_reader);
	tok_nobody = sh_out("kubectl -n %s create token %s", ns, sa_nobody);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	t_sh(NULL, "kubectl delete namespace %s --wait=false; rm -rf %s", ns, dir);
	free(ns); free(sa_reader); free(sa_nobody); free(tok_reader); free(tok_nobody);
	free((char *)pki);
	return 0;
}

static void client_certificate_from_files_and_from_embedded_data(void **state)
{
	(void)state;
	char *user = gitops_sprintf("    client-certificate: %s/admin.crt\n    client-key: %s/admin.key\n", pki, pki);
	char *ca = gitops_sprintf("    certificate-authority: %s/ca.crt\n", pki);
	char *kc = kubeconfig_with("files", ca, user);
	assert_int_equal(try_get(kc, NULL), 0);
	free(kc); free(user); free(ca);

	char *b64 = NULL;
	char *cmd = gitops_sprintf("printf '    certificate-authority-data: %%s\\n' $(base64 -w0 %s/ca.crt)", pki);
	assert_int_equal(t_sh(&b64, "%s", cmd), 0);
	free(cmd);
	char *ub64 = NULL;
	assert_int_equal(t_sh(&ub64, "printf '    client-certificate-data: %%s\\n    client-key-data: %%s\\n' "
				     "$(base64 -w0 %s/admin.crt) $(base64 -w0 %s/admin.key)", pki, pki), 0);
	kc = kubeconfig_with("embedded", b64, ub64);
	assert_int_equal(try_get(kc, NULL), 0);
	free(kc); free(b64); free(ub64);
}

static void bearer_token_and_a_rejected_token(void **state)
{
	(void)state;
	char *ca = gitops_sprintf("    certificate-authority: %s/ca.crt\n", pki);
	char *user = gitops_sprintf("    token: %s\n", tok_reader);
	char *kc = kubeconfig_with("token", ca, user);
	assert_int_equal(try_get(kc, NULL), 0);
	free(kc); free(user);
	kc = kubeconfig_with("badtoken", ca, "    token: not-a-valid-token\n");
	assert_int_equal(try_get(kc, NULL), GITOPS_EUNAUTHORIZED);
	free(kc); free(ca);
}

static void token_file_rotation_is_picked_up(void **state)
{
	(void)state;
	char *tf = gitops_sprintf("%s/token", dir);
	write_text(tf, tok_reader);
	char *ca = gitops_sprintf("    certificate-authority: %s/ca.crt\n", pki);
	char *user = gitops_sprintf("    tokenFile: %s\n", tf);
	char *kc = kubeconfig_with("tokenfile", ca, user);
	kube_config *cfg;
	struct kube_config_options o = {.kubeconfig = kc};
	assert_int_equal(kube_config_load(&cfg, &o), 0);
	kube_client *c;
	assert_int_equal(kube_client_new(&c, cfg, NULL), 0);
	json_t *got = NULL;
	assert_int_equal(kube_get(&got, c, "v1", "ConfigMap", ns, "probe"), 0);
	json_decref(got);
	/* Both tokens are accepted; only the reader may get ConfigMaps: a 403 proves the switch. */
	write_text(tf, tok_nobody);
	assert_int_equal(kube_get(&got, c, "v1", "ConfigMap", ns, "probe"), GITOPS_EFORBIDDEN);
	assert_non_null(strstr(gitops_error_last(), sa_nobody));
	write_text(tf, tok_reader);
	assert_int_equal(kube_get(&got, c, "v1", "ConfigMap", ns, "probe"), 0);
	json_decref(got);
	kube_client_free(c);
	free(kc); free(user); free(ca); free(tf);
}

static void exec_plugin_is_cached_and_rerun_after_401(void **state)
{
	(void)state;
	/* The plugin hands out a bad token first, then the reader's: the 401 must re-run it. */
	char *script = gitops_sprintf("%s/plugin.sh", dir);
	char *count = gitops_sprintf("%s/count", dir);
	char *text = gitops_sprintf(
		"#!/bin/sh\nn=$(cat %s 2>/dev/null || echo 0); n=$((n+1)); echo $n > %s\n"
		"[ \"$n\" = 1 ] && tok=bogus || tok=%s\n"
		"echo \"$KUBERNETES_EXEC_INFO\" | grep -q ExecCredential || exit 3\n"
		"printf '{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\","
		"\"status\":{\"token\":\"%%s\",\"expirationTimestamp\":\"2099-01-01T00:00:00Z\"}}' \"$tok\"\n",
		count, count, tok_reader);
	write_text(script, text);
	chmod(script, 0700);
	char *ca = gitops_sprintf("    certificate-authority: %s/ca.crt\n", pki);
	char *user = gitops_sprintf("    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: %s\n"
				    "      interactiveMode: Never\n", script);
	char *kc = kubeconfig_with("exec", ca, user);
	kube_config *cfg;
	struct kube_config_options o = {.kubeconfig = kc};
	assert_int_equal(kube_config_load(&cfg, &o), 0);
	kube_client *c;
	assert_int_equal(kube_client_new(&c, cfg, NULL), 0);
	json_t *got = NULL;
	for (int i = 0; i < 3; i++) {
		assert_int_equal(kube_get(&got, c, "v1", "ConfigMap", ns, "probe"), 0);
		json_decref(got);
	}
	gitops_buf b = GITOPS_BUF_INIT;
	assert_int_equal(gitops_read_file(&b, count, 0), 0);
	assert_int_equal(atoi(b.ptr), 2); /* once at start (bad token), once after the 401 */
	gitops_buf_free(&b);
	kube_client_free(c);
	free(kc); free(user); free(ca); free(text); free(count); free(script);
}

static void merged_kubeconfig_files_and_contexts(void **state)
{
	(void)state;
	char *a = gitops_sprintf("%s/part-a", dir);
	char *text = gitops_sprintf("apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: %s\n"
				    "    certificate-authority: %s/ca.crt\nusers:\n- name: u\n  user:\n"
				    "    client-certificate: %s/admin.crt\n    client-key: %s/admin.key\n", server, pki, pki, pki);
	write_text(a, text);
	free(text);
	char *b = gitops_sprintf("%s/part-b", dir);
	write_text(b, "apiVersion: v1\nkind: Config\ncontexts:\n- name: one\n  context: {cluster: c, user: u}\n"
		      "- name: broken\n  context: {cluster: missing, user: u}\ncurrent-context: one\n");
	char *both = gitops_sprintf("%s:%s", a, b);
	assert_int_equal(try_get(both, NULL), 0);
	assert_int_equal(try_get(both, "one"), 0);
	assert_int_equal(try_get(both, "nope"), GITOPS_ENOTFOUND);
	assert_non_null(strstr(gitops_error_last(), "nope"));
	assert_int_equal(try_get(both, "broken"), GITOPS_ENOTFOUND);
	assert_non_null(strstr(gitops_error_last(), "missing"));
	char *bad = gitops_sprintf("%s/bad", dir);
	write_text(bad, "clusters: [\n  - {name: x\n");
	assert_int_equal(try_get(bad, NULL), GITOPS_EPARSE);
	assert_non_null(strstr(gitops_error_last(), bad));
	/* Input that made libfyaml 0.7.12 loop forever (found by make fuzz): refused at once. */
	assert_int_equal(gitops_write_file(bad, "%Z\xff\xff", 4, 0600), 0);
	assert_int_equal(try_get(bad, NULL), GITOPS_EPARSE);
	assert_non_null(strstr(gitops_error_last(), "invalid UTF-8"));
	free(a); free(b); free(both); free(bad);
}

static void wrong_ca_fails_with_a_tls_error(void **state)
{
	(void)state;
	char *out = NULL;
	assert_int_equal(t_sh(&out, "openssl req -x509 -newkey rsa:2048 -nodes -keyout %s/other.key -out %s/other.crt "
				    "-days 1 -subj /CN=other-ca", dir, dir), 0);
	free(out);
	char *ca = gitops_sprintf("    certificate-authority: %s/other.crt\n", dir);
	char *user = gitops_sprintf("    client-certificate: %s/admin.crt\n    client-key: %s/admin.key\n", pki, pki);
	char *kc = kubeconfig_with("wrongca", ca, user);
	assert_int_equal(try_get(kc, NULL), GITOPS_ETLS);
	assert_non_null(strstr(gitops_error_last(), "TLS"));
	free(kc); free(ca); free(user);
}

static void in_cluster_service_account_files(void **state)
{
	(void)state;
	char *sadir = gitops_sprintf("%s/sa", dir);
	char *out = NULL;
	assert_int_equal(t_sh(&out, "mkdir -p %s && cp %s/ca.crt %s/ca.crt", sadir, pki, sadir), 0);
	free(out);
	char *tf = gitops_sprintf("%s/token", sadir);
	write_text(tf, tok_reader);
	const char *hostport = server + strlen("https://");
	const char *colon = strrchr(hostport, ':');
	char *host = gitops_strndup(hostport, (size_t)(colon - hostport));
	setenv("KUBERNETES_SERVICE_HOST", host, 1);
	setenv("KUBERNETES_SERVICE_PORT", colon + 1, 1);
	setenv("GITOPS_SERVICEACCOUNT_DIR", sadir, 1);
	kube_config *cfg;
	struct kube_config_options o = {.in_cluster = true};
	assert_int_equal(kube_config_load(&cfg, &o), 0);
	assert_string_equal(kube_config_context(cfg), "in-cluster");
	kube_client *c;
	assert_int_equal(kube_client_new(&c, cfg, NULL), 0);
	json_t *got = NULL;
	assert_int_equal(kube_get(&got, c, "v1", "ConfigMap", ns, "probe"), 0);
	json_decref(got);
	kube_client_free(c);
	unsetenv("KUBERNETES_SERVICE_HOST");
	unsetenv("KUBERNETES_SERVICE_PORT");
	unsetenv("GITOPS_SERVICEACCOUNT_DIR");
	free(host); free(tf); free(sadir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(client_certificate_from_files_and_from_embedded_data),
		cmocka_unit_test(bearer_token_and_a_rejected_token),
		cmocka_unit_test(token_file_rotation_is_picked_up),
		cmocka_unit_test(exec_plugin_is_cached_and_rerun_after_401),
		cmocka_unit_test(merged_kubeconfig_files_and_contexts),
		cmocka_unit_test(wrong_ca_fails_with_a_tls_error),
		cmocka_unit_test(in_cluster_service_account_files),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
