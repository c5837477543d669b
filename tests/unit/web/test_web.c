/* Unit tests for web/ and the metrics registry: the Prometheus text format (HELP/TYPE, label
 * escapes, cumulative histogram buckets), GitHub's HMAC test vector, constant-time token checks,
 * and the server's answers (probes, 404, 405, 401 for a bad signature, 413 for a big body, a
 * valid push waking the environments that track its branch) through a real socket with libcurl. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "web/web.h"

static void metrics_follow_the_text_format(void **state)
{
	(void)state;
	gitops_metrics_reset();
	gitops_metric_add("gitops_sync_total", 1, "environment", "dev", "result", "succeeded", NULL);
	gitops_metric_add("gitops_sync_total", 2, "environment", "dev", "result", "succeeded", NULL);
	gitops_metric_add("gitops_sync_total", 1, "environment", "q\"a\\b\nc", "result", "failed", NULL);
	gitops_metric_set("gitops_managed_objects", 42, "environment", "dev", NULL);
	gitops_metric_observe("gitops_git_fetch_duration_seconds", 0.02, NULL);
	gitops_metric_observe("gitops_git_fetch_duration_seconds", 0.3, NULL);
	gitops_metric_observe("gitops_git_fetch_duration_seconds", 100, NULL);
	gitops_buf b = GITOPS_BUF_INIT;
	gitops_metrics_write(&b);
	const char *t = gitops_buf_cstr(&b);
	assert_non_null(strstr(t, "# TYPE gitops_sync_total counter\n"));
	assert_non_null(strstr(t, "# HELP gitops_sync_total "));
	assert_non_null(strstr(t, "gitops_sync_total{environment=\"dev\",result=\"succeeded\"} 3\n"));
	assert_non_null(strstr(t, "gitops_sync_total{environment=\"q\\\"a\\\\b\\nc\",result=\"failed\"} 1\n"));
	assert_non_null(strstr(t, "# TYPE gitops_managed_objects gauge\ngitops_managed_objects{environment=\"dev\"} 42\n"));
	assert_non_null(strstr(t, "# TYPE gitops_git_fetch_duration_seconds histogram\n"));
	assert_non_null(strstr(t, "gitops_git_fetch_duration_seconds_bucket{le=\"0.01\"} 0\n"));
	assert_non_null(strstr(t, "gitops_git_fetch_duration_seconds_bucket{le=\"0.025\"} 1\n"));
	assert_non_null(strstr(t, "gitops_git_fetch_duration_seconds_bucket{le=\"0.5\"} 2\n"));
	assert_non_null(strstr(t, "gitops_git_fetch_duration_seconds_bucket{le=\"30\"} 2\n"));
	assert_non_null(strstr(t, "gitops_git_fetch_duration_seconds_bucket{le=\"+Inf\"} 3\n"));
	assert_non_null(strstr(t, "gitops_git_fetch_duration_seconds_sum 100.32\n"));
	assert_non_null(strstr(t, "gitops_git_fetch_duration_seconds_count 3\n"));
	/* one HELP/TYPE per family; the text ends with a newline */
	assert_null(strstr(strstr(t, "# TYPE gitops_sync_total") + 1, "# TYPE gitops_sync_total"));
	assert_int_equal(t[b.len - 1], '\n');
	gitops_buf_free(&b);
	gitops_metrics_reset();
}

static void github_signature_matches_the_documented_vector(void **state)
{
	(void)state;
	const char *secret = "It's a Secret to Everybody", *body = "Hello, World!";
	const char *good = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
	assert_true(web_github_signature_ok(good, body, strlen(body), secret));
	assert_false(web_github_signature_ok(good, body, strlen(body), "another secret"));
	assert_false(web_github_signature_ok(good, "Hello, World?", 13, secret));
	assert_false(web_github_signature_ok("sha256=757107", body, strlen(body), secret));
	assert_false(web_github_signature_ok("sha1=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17", body,
					     strlen(body), secret));
	assert_false(web_github_signature_ok(NULL, body, strlen(body), secret));
	assert_true(web_token_ok("s3cret", "s3cret"));
	assert_false(web_token_ok("s3cre", "s3cret"));
	assert_false(web_token_ok("s3cret!", "s3cret"));
	assert_false(web_token_ok(NULL, "s3cret"));
}

static size_t sink(char *p, size_t s, size_t n, void *ud)
{
	gitops_buf_put(ud, p, s * n);
	return s * n;
}

/* One request; returns the status, *body gets the answer. */
static long call(int port, const char *method, const char *path, const char *const *headers, const char *data,
		 size_t len, gitops_buf *body)
{
	CURL *h = curl_easy_init();
	char url[256];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
	struct curl_slist *hl = NULL;
	for (size_t i = 0; headers && headers[i]; i++)
		hl = curl_slist_append(hl, headers[i]);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
	if (data) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, data);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)len);
	}
	gitops_buf_clear(body);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, body);
	long code = 0;
	if (curl_easy_perform(h) == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
	curl_slist_free_all(hl);
	curl_easy_cleanup(h);
	return code;
}

static char *sign(const char *secret, const char *body)
{
	unsigned char mac[32];
	unsigned int n = 0;
	HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)body, strlen(body), mac, &n);
	gitops_buf b = GITOPS_BUF_INIT;
	gitops_buf_puts(&b, "X-Hub-Signature-256: sha256=");
	for (unsigned i = 0; i < n; i++)
		gitops_buf_printf(&b, "%02x", mac[i]);
	return gitops_buf_detach(&b);
}

static void server_answers_probes_and_checks_webhooks(void **state)
{
	(void)state;
	gitops_metrics_reset();
	rec_control *ctl = rec_control_new(NULL);
	struct web_options o = {.listen = "127.0.0.1:0", .control = ctl, .webhook_secret = "hook-secret", .max_body = 4096};
	web_server *s = NULL;
	assert_int_equal(web_start(&s, &o), 0);
	int port = web_port(s);
	assert_true(port > 0);
	gitops_buf b = GITOPS_BUF_INIT;
	assert_int_equal(call(port, "GET", "/healthz", NULL, NULL, 0, &b), 200);
	/* not ready before the daemon registered and finished a first pass */
	assert_int_equal(call(port, "GET", "/readyz", NULL, NULL, 0, &b), 503);
	rec_control_pipeline(ctl, "shop", NULL, "main");
	rec_control_env_add(ctl, "shop", "dev", "main");
	rec_control_env_add(ctl, "shop", "qa", "release");
	/* a second pipeline (--repo repeated) with an environment of the same name */
	rec_control_pipeline(ctl, "site", NULL, "trunk");
	rec_control_env_add(ctl, "site", "dev", NULL);
	assert_int_equal(call(port, "GET", "/readyz", NULL, NULL, 0, &b), 503);
	assert_non_null(strstr(gitops_buf_cstr(&b), "dev"));
	rec_control_pass_done(ctl, "shop", "dev", 0, NULL, "abc", 3, 1);
	rec_control_pass_done(ctl, "shop", "qa", 0, NULL, "abc", 3, 1);
	assert_int_equal(call(port, "GET", "/readyz", NULL, NULL, 0, &b), 503);
	assert_non_null(strstr(gitops_buf_cstr(&b), "environment dev of pipeline site"));
	rec_control_pass_done(ctl, "site", "dev", 0, NULL, "abc", 3, 1);
	assert_int_equal(call(port, "GET", "/readyz", NULL, NULL, 0, &b), 200);
	assert_int_equal(call(port, "GET", "/nope", NULL, NULL, 0, &b), 404);
	assert_int_equal(call(port, "POST", "/metrics", NULL, "x", 1, &b), 405);
	assert_int_equal(call(port, "GET", "/hooks/github", NULL, NULL, 0, &b), 405);
	assert_int_equal(call(port, "GET", "/metrics", NULL, NULL, 0, &b), 200);
	assert_non_null(strstr(gitops_buf_cstr(&b), "gitops_build_info{version="));

	const char *push_main = "{\"ref\":\"refs/heads/main\",\"after\":\"abc\"}";
	const char *push_other = "{\"ref\":\"refs/heads/feature\",\"after\":\"abc\"}";
	char *sig = sign("hook-secret", push_main), *sig_other = sign("hook-secret", push_other),
	     *sig_bad = sign("not-the-secret", push_main);
	const char *gh[] = {"Content-Type: application/json", "X-GitHub-Event: push", sig, NULL};
	const char *gh_bad[] = {"Content-Type: application/json", "X-GitHub-Event: push", sig_bad, NULL};
	const char *gh_none[] = {"Content-Type: application/json", "X-GitHub-Event: push", NULL};
	const char *gh_other[] = {"Content-Type: application/json", "X-GitHub-Event: push", sig_other, NULL};
	assert_int_equal(call(port, "POST", "/hooks/github", gh_bad, push_main, strlen(push_main), &b), 401);
	assert_int_equal(call(port, "POST", "/hooks/github", gh_none, push_main, strlen(push_main), &b), 401);
	assert_int_equal(call(port, "POST", "/hooks/github", gh_other, push_other, strlen(push_other), &b), 200);
	assert_non_null(strstr(gitops_buf_cstr(&b), "ignored"));
	assert_int_equal(call(port, "POST", "/hooks/github", gh, push_main, strlen(push_main), &b), 200);
	assert_non_null(strstr(gitops_buf_cstr(&b), "accepted"));
	/* main is shop's main branch only: its two environments, not site's dev (main branch trunk) */
	assert_non_null(strstr(gitops_buf_cstr(&b), "2 environment(s)"));
	/* the poke ends the environments' waits at once */
	gitops_cancel *cancel = NULL;
	assert_int_equal(gitops_cancel_new(&cancel), 0);
	long long t0 = gitops_now_ms();
	assert_false(rec_control_wait(ctl, "shop", "dev", cancel, 600000));
	assert_false(rec_control_wait(ctl, "shop", "qa", cancel, 600000));
	assert_true(gitops_now_ms() - t0 < 600000);
	/* a body over the cap is refused whatever its signature */
	char *big = gitops_calloc(5000, 1);
	memset(big, 'x', 4999);
	assert_int_equal(call(port, "POST", "/hooks/github", gh, big, 4999, &b), 413);
	free(big);
	/* GitLab: the token, a push to a tracked branch */
	const char *push_rel = "{\"object_kind\":\"push\",\"ref\":\"refs/heads/release\"}";
	const char *gl[] = {"X-Gitlab-Event: Push Hook", "X-Gitlab-Token: hook-secret", NULL};
	const char *gl_bad[] = {"X-Gitlab-Event: Push Hook", "X-Gitlab-Token: hook-secre", NULL};
	assert_int_equal(call(port, "POST", "/hooks/gitlab", gl_bad, push_rel, strlen(push_rel), &b), 401);
	assert_int_equal(call(port, "POST", "/hooks/gitlab", gl, push_rel, strlen(push_rel), &b), 200);
	assert_non_null(strstr(gitops_buf_cstr(&b), "accepted"));
	assert_false(rec_control_wait(ctl, "shop", "qa", cancel, 600000));
	assert_int_equal(call(port, "GET", "/metrics", NULL, NULL, 0, &b), 200);
	const char *m = gitops_buf_cstr(&b);
	assert_non_null(strstr(m, "gitops_webhook_requests_total{provider=\"github\",result=\"unauthorized\"} 2\n"));
	assert_non_null(strstr(m, "gitops_webhook_requests_total{provider=\"github\",result=\"accepted\"} 1\n"));
	assert_non_null(strstr(m, "gitops_webhook_requests_total{provider=\"github\",result=\"ignored\"} 1\n"));
	assert_non_null(strstr(m, "gitops_webhook_requests_total{provider=\"github\",result=\"too_large\"} 1\n"));
	assert_non_null(strstr(m, "gitops_webhook_requests_total{provider=\"gitlab\",result=\"unauthorized\"} 1\n"));
	assert_non_null(strstr(m, "gitops_webhook_requests_total{provider=\"gitlab\",result=\"accepted\"} 1\n"));
	/* the daemon's own view (/api/v1/status is gitops status --json: see tests/integration/web/ops.sh) */
	assert_int_equal(call(port, "GET", "/api/v1/daemon?env=dev", NULL, NULL, 0, &b), 200);
	json_t *j = json_loads(gitops_buf_cstr(&b), 0, NULL);
	/* both pipelines' dev, each named with its pipeline */
	assert_int_equal(json_array_size(j), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(j, 0), "environment")), "dev");
	assert_string_equal(json_string_value(json_object_get(json_array_get(j, 0), "pipeline")), "shop");
	assert_string_equal(json_string_value(json_object_get(json_array_get(j, 0), "state")), "Synced");
	assert_string_equal(json_string_value(json_object_get(json_array_get(j, 1), "pipeline")), "site");
	json_decref(j);
	assert_int_equal(call(port, "GET", "/api/v1/daemon?env=nope", NULL, NULL, 0, &b), 404);
	gitops_cancel_free(cancel);
	free(sig);
	free(sig_other);
	free(sig_bad);
	gitops_buf_free(&b);
	web_stop(s);
	rec_control_free(ctl);
	gitops_metrics_reset();
}

static void bad_listen_addresses_are_refused(void **state)
{
	(void)state;
	rec_control *ctl = rec_control_new(NULL);
	web_server *s = NULL;
	struct web_options o = {.listen = "localhost", .control = ctl};
	assert_int_equal(web_start(&s, &o), GITOPS_EINVALID);
	o.listen = "nohost:80";
	assert_int_equal(web_start(&s, &o), GITOPS_EINVALID);
	assert_null(s);
	rec_control_free(ctl);
}

int main(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(metrics_follow_the_text_format),
		cmocka_unit_test(github_signature_matches_the_documented_vector),
		cmocka_unit_test(server_answers_probes_and_checks_webhooks),
		cmocka_unit_test(bad_listen_addresses_are_refused),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	curl_global_cleanup();
	return rc;
}
