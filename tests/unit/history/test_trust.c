/* Unit tests for what history/ checks before anything obeys the state branch: SSH commit
 * signatures (sshsig vectors made with ssh-keygen -Y sign, tests/fixtures/history/sshsig/), key
 * lines, reporter-signed records opening the promotion gate, and verification of a history
 * where one approval superseded two other promotions (a temporary bare repository, no cluster). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "history/history.h"
#include "support/support.h"

#define FIX "tests/fixtures/history/sshsig/"
#define SHA1 "0123456789abcdef0123456789abcdef01234567"
#define SHA2 "89abcdef0123456789abcdef0123456789abcdef"
#define SHA3 "fedcba9876543210fedcba9876543210fedcba98"

static char *slurp(const char *path, size_t *len)
{
	gitops_buf b = GITOPS_BUF_INIT;
	assert_int_equal(gitops_read_file(&b, path, 1 << 20), 0);
	*len = b.len;
	return gitops_buf_detach(&b);
}

static void sshsig_vectors(void **state)
{
	(void)state;
	size_t pl, sl, kl;
	char *payload = slurp(FIX "payload", &pl), *sig = slurp(FIX "payload.git.sig", &sl);
	char *pub = slurp(FIX "signer.pub", &kl), *other = slurp(FIX "other.pub", &kl);
	unsigned char blob[51], want[51], owant[51], raw[32];
	assert_int_equal(mf_key_parse_ssh(raw, want, pub), 0);
	assert_int_equal(mf_key_parse_ssh(raw, owant, other), 0);
	/* git's namespace, sha512 (ssh-keygen's default): valid, and the blob names the signer */
	assert_int_equal(hist_sshsig_verify(blob, sig, sl, payload, pl, "git"), 0);
	assert_memory_equal(blob, want, 51);
	assert_memory_not_equal(blob, owant, 51);
	char fp[64];
	hist_ssh_fingerprint(fp, blob);
	assert_true(!strncmp(fp, "SHA256:", 7) && strlen(fp) == 7 + 43);
	/* another namespace: refused */
	assert_int_equal(hist_sshsig_verify(blob, sig, sl, payload, pl, "file"), GITOPS_EFORBIDDEN);
	/* a changed payload (one byte): refused */
	payload[pl - 2] ^= 1;
	assert_int_equal(hist_sshsig_verify(blob, sig, sl, payload, pl, "git"), GITOPS_EFORBIDDEN);
	payload[pl - 2] ^= 1;
	/* sha256 variant */
	size_t s2l, s3l;
	char *s2 = slurp(FIX "payload.sha256.sig", &s2l), *s3 = slurp(FIX "payload.file.sig", &s3l);
	assert_int_equal(hist_sshsig_verify(NULL, s2, s2l, payload, pl, "git"), 0);
	/* signed for namespace "file": not a git signature */
	assert_int_equal(hist_sshsig_verify(NULL, s3, s3l, payload, pl, "git"), GITOPS_EFORBIDDEN);
	/* a flipped signature byte: the base64 still decodes, the signature does not verify */
	char *bad = gitops_strdup(sig);
	char *last = strstr(bad, "-----END") - 8;
	*last = *last == 'A' ? 'B' : 'A';
	int rc = hist_sshsig_verify(NULL, bad, sl, payload, pl, "git");
	assert_true(rc == GITOPS_EFORBIDDEN || rc == GITOPS_EINVALID);
	/* truncated or not an SSH signature: malformed */
	assert_int_equal(hist_sshsig_verify(NULL, sig, 60, payload, pl, "git"), GITOPS_EINVALID);
	const char *pgp = "-----BEGIN PGP SIGNATURE-----\nxx\n-----END PGP SIGNATURE-----\n";
	assert_int_equal(hist_sshsig_verify(NULL, pgp, strlen(pgp), payload, pl, "git"), GITOPS_EINVALID);
	free(bad);
	free(s2);
	free(s3);
	free(payload);
	free(sig);
	free(pub);
	free(other);
}

static void key_lines(void **state)
{
	(void)state;
	unsigned char raw[32], blob[51];
	assert_int_equal(mf_key_parse_ssh(raw, blob, "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ user"), GITOPS_EINVALID);
	assert_int_equal(mf_key_parse_ssh(raw, blob, "ssh-ed25519 AAAA"), GITOPS_EINVALID);
	assert_int_equal(mf_key_parse_ssh(raw, blob, "ssh-ed25519 not*base64"), GITOPS_EINVALID);
	assert_int_equal(mf_key_parse_ed25519(raw, "ed25519:AAAA"), GITOPS_EINVALID);
	assert_int_equal(mf_key_parse_ed25519(raw, "ed25519:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="), 0);
	assert_int_equal(raw[31], 31);
	assert_int_equal(mf_key_parse_ed25519(raw, "ed25519:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8= extra"), GITOPS_EINVALID);
	/* a bad reporter key is refused when gitops.yaml is read, naming its line */
	static const char y[] = "apiVersion: gitops/v1\nkind: Pipeline\nenvironments:\n  - name: dev\n    reporters:\n"
				"      - name: ci\n        key: ed25519:AAAA\n";
	struct mf_config *cfg = NULL;
	assert_int_equal(mf_config_parse(&cfg, y, sizeof(y) - 1, "gitops.yaml"), GITOPS_EINVALID);
	assert_non_null(strstr(gitops_error_last(), "gitops.yaml:7:"));
	static const char z[] = "apiVersion: gitops/v1\nkind: Pipeline\nenvironments:\n  - name: dev\n    commitSigners:\n"
				"      - {name: alice, key: \"ssh-rsa AAAAB3NzaC1yc2E\"}\n";
	assert_int_equal(mf_config_parse(&cfg, z, sizeof(z) - 1, "gitops.yaml"), GITOPS_EINVALID);
	assert_non_null(strstr(gitops_error_last(), "gitops.yaml:6:"));
	assert_non_null(strstr(gitops_error_last(), "commitSigners alice"));
}

/* ---- the store with a policy --------------------------------------------------------------- */

static char dir[64];
static struct mf_config *cfg;

/* The policy: one gitops.yaml (cfg) in effect at every time. */
static const struct hist_policy policy = {t_one_config, &cfg};

/* A store on repository `name` (created when new), with its own data directory `data_name`
 * (where the tip verified last is remembered: each machine has its own). */
static hist *open_store_as(const char *name, const char *data_name)
{
	hist *h = NULL;
	if (t_hist_open(&h, dir, name, data_name, &policy))
		fail_msg("%s", gitops_error_last());
	return h;
}

static hist *open_store(const char *name) { return open_store_as(name, "data"); }

static void load_config(const char *reporter_pub, const char *approver_pub)
{
	mf_config_free(cfg);
	cfg = NULL;
	char *y = gitops_sprintf("apiVersion: gitops/v1\nkind: Pipeline\nenvironments:\n"
				 "  - name: dev\n    track: main\n%s%s%s"
				 "  - name: staging\n    from: dev\n%s%s%s",
				 reporter_pub ? "    reporters: [{name: ci, key: \"" : "", reporter_pub ? reporter_pub : "",
				 reporter_pub ? "\"}]\n" : "",
				 approver_pub ? "    approval: {required: 1, approvers: [{name: alice, key: \"" : "",
				 approver_pub ? approver_pub : "", approver_pub ? "\"}]}\n" : "");
	assert_int_equal(mf_config_parse(&cfg, y, strlen(y), "gitops.yaml"), 0);
	free(y);
}

static void record(hist *h, const char *env, const char *sha)
{
	struct hist_event e = {.type = "sync.succeeded", .environment = env, .sha = sha, .actor = "t", .trigger = "auto",
			       .has_counts = true, .duration_ms = 1};
	assert_int_equal(hist_record(NULL, h, &e), 0);
}

static void reporter_signed_sync_opens_the_gate(void **state)
{
	(void)state;
	char *rk = gitops_sprintf("%s/reporter.key", dir), *xk = gitops_sprintf("%s/stranger.key", dir);
	char *rpub = NULL, *xpub = NULL;
	assert_int_equal(hist_keygen(&rpub, rk), 0);
	assert_int_equal(hist_keygen(&xpub, xk), 0);
	load_config(rpub, NULL);
	hist *h = open_store("gate");
	json_t *p = NULL;
	bool existing;
	/* an unsigned record (anyone who can push to the state branch can write one): no gate */
	record(h, "dev", SHA1);
	assert_int_equal(hist_promote(&p, &existing, h, cfg, "staging", SHA1, NULL), GITOPS_EFORBIDDEN);
	assert_non_null(strstr(gitops_error_last(), "reporters"));
	/* signed by a key that is not a listed reporter: no gate either */
	assert_int_equal(hist_set_signing_key(h, xk), 0);
	record(h, "dev", SHA2);
	assert_int_equal(hist_promote(&p, &existing, h, cfg, "staging", SHA2, NULL), GITOPS_EFORBIDDEN);
	/* signed by the listed reporter: the gate opens */
	assert_int_equal(hist_set_signing_key(h, rk), 0);
	record(h, "dev", SHA3);
	assert_int_equal(hist_promote(&p, &existing, h, cfg, "staging", SHA3, NULL), 0);
	assert_string_equal(json_string_value(json_object_get(p, "status")), "applied");
	json_decref(p);
	struct hist_verify_report r;
	assert_int_equal(hist_verify(&r, h), 0);
	assert_int_equal(r.signatures, 2); /* both record signatures verify */
	hist_verify_report_clear(&r);
	hist_free(h);
	free(rk);
	free(xk);
	free(rpub);
	free(xpub);
}

static void superseded_promotions_verify(void **state)
{
	(void)state;
	char *ak = gitops_sprintf("%s/alice.key", dir), *apub = NULL;
	assert_int_equal(hist_keygen(&apub, ak), 0);
	load_config(NULL, apub);
	/* several rounds: the ids are random, the order must never matter */
	for (int round = 0; round < 6; round++) {
		char name[16];
		snprintf(name, sizeof(name), "sup%d", round);
		hist *h = open_store(name);
		const char *shas[] = {SHA1, SHA2, SHA3};
		char *ids[3];
		for (int i = 0; i < 3; i++) {
			record(h, "dev", shas[i]);
			json_t *p = NULL;
			bool existing;
			assert_int_equal(hist_promote(&p, &existing, h, cfg, "staging", shas[i], NULL), 0);
			ids[i] = gitops_strdup(json_string_value(json_object_get(p, "id")));
			json_decref(p);
		}
		char *sig = NULL, *pub = NULL;
		const int pick = round % 3;
		assert_int_equal(hist_key_public(&pub, ak), 0);
		assert_int_equal(hist_sign(&sig, ak, "approve", ids[pick], "staging", shas[pick]), 0);
		json_t *after = NULL;
		assert_int_equal(hist_decide(&after, h, cfg, ids[pick], pub, sig, false, NULL), 0);
		assert_string_equal(json_string_value(json_object_get(after, "status")), "applied");
		json_decref(after);
		struct hist_verify_report r;
		assert_int_equal(hist_verify(&r, h), 0);
		assert_int_equal(r.events, 7);
		hist_verify_report_clear(&r);
		json_t *d = NULL;
		assert_int_equal(hist_promotion_get(&d, h, ids[(pick + 1) % 3]), 0);
		assert_string_equal(json_string_value(json_object_get(d, "status")), "superseded");
		json_decref(d);
		for (int i = 0; i < 3; i++)
			free(ids[i]);
		free(sig);
		free(pub);
		hist_free(h);
	}
	free(ak);
	free(apub);
}

/* Events written under a gitops.yaml the main branch never had (the writer's checks passed) are
 * refused by a reader that uses the real one: an ungated promotion of a gated environment, and an
 * approval by a key listed only in the other config (it verifies with the key in the event). */
static void events_under_another_config_are_refused(void **state)
{
	(void)state;
	char *ak = gitops_sprintf("%s/a2.key", dir), *mk = gitops_sprintf("%s/m2.key", dir);
	char *apub = NULL, *mpub = NULL;
	assert_int_equal(hist_keygen(&apub, ak), 0);
	assert_int_equal(hist_keygen(&mpub, mk), 0);
	/* 1. the attacker's config: staging not gated */
	load_config(NULL, NULL);
	hist *h = open_store("ungated");
	record(h, "dev", SHA1);
	json_t *p = NULL;
	bool existing;
	assert_int_equal(hist_promote(&p, &existing, h, cfg, "staging", SHA1, NULL), 0);
	assert_string_equal(json_string_value(json_object_get(p, "status")), "applied");
	json_decref(p);
	load_config(NULL, apub); /* the real one: staging needs alice */
	struct hist_verify_report r;
	assert_int_equal(hist_verify(&r, h), GITOPS_EPOLICY);
	assert_non_null(strstr(r.problem, "required approvals"));
	assert_non_null(strstr(r.problem, "commit "));
	hist_verify_report_clear(&r);
	hist_free(h);
	h = open_store_as("ungated", "victim"); /* a reader on another machine refuses to obey it */
	char pin[41];
	assert_int_equal(hist_pin(pin, h, "staging"), GITOPS_EPOLICY);
	hist_free(h);
	/* 2. the attacker's config lists mallory as the approver */
	load_config(NULL, mpub);
	h = open_store("mallory");
	record(h, "dev", SHA2);
	assert_int_equal(hist_promote(&p, &existing, h, cfg, "staging", SHA2, NULL), 0);
	char *id = gitops_strdup(json_string_value(json_object_get(p, "id")));
	json_decref(p);
	char *sig = NULL;
	assert_int_equal(hist_sign(&sig, mk, "approve", id, "staging", SHA2), 0);
	assert_int_equal(hist_decide(NULL, h, cfg, id, mpub, sig, false, NULL), 0);
	load_config(NULL, apub);
	assert_int_equal(hist_verify(&r, h), GITOPS_EPOLICY);
	assert_non_null(strstr(r.problem, "not an approver of staging"));
	hist_verify_report_clear(&r);
	hist_free(h);
	free(id);
	free(sig);
	free(ak);
	free(mk);
	free(apub);
	free(mpub);
}

/* A reader that verified the branch while a promotion was pending, then sees it rejected and an
 * approval of it appended afterwards (alice's real signature, made while it was pending, and
 * submitted by hand): the incremental replay knows the promotion is no longer pending. */
static void approval_after_rejection_is_refused(void **state)
{
	(void)state;
	char *ak = gitops_sprintf("%s/a3.key", dir), *bk = gitops_sprintf("%s/b3.key", dir);
	char *apub = NULL, *bpub = NULL;
	assert_int_equal(hist_keygen(&apub, ak), 0);
	assert_int_equal(hist_keygen(&bpub, bk), 0);
	mf_config_free(cfg);
	cfg = NULL;
	char *y = gitops_sprintf("apiVersion: gitops/v1\nkind: Pipeline\nenvironments:\n  - {name: dev, track: main}\n"
				 "  - name: staging\n    from: dev\n    approval:\n      required: 1\n      approvers:\n"
				 "        - {name: alice, key: \"%s\"}\n        - {name: bob, key: \"%s\"}\n", apub, bpub);
	assert_int_equal(mf_config_parse(&cfg, y, strlen(y), "gitops.yaml"), 0);
	free(y);
	hist *h = open_store("late");
	record(h, "dev", SHA1);
	json_t *p = NULL;
	bool existing;
	assert_int_equal(hist_promote(&p, &existing, h, cfg, "staging", SHA1, NULL), 0);
	char *id = gitops_strdup(json_string_value(json_object_get(p, "id")));
	json_decref(p);
	hist *victim = open_store_as("late", "victim");
	struct hist_verify_report r;
	assert_int_equal(hist_check(&r, victim), 0); /* remembers the tip with the promotion pending */
	hist_verify_report_clear(&r);
	char *asig = NULL, *bsig = NULL;
	assert_int_equal(hist_sign(&asig, ak, "approve", id, "staging", SHA1), 0);
	assert_int_equal(hist_sign(&bsig, bk, "reject", id, "staging", SHA1), 0);
	assert_int_equal(hist_decide(NULL, h, cfg, id, bpub, bsig, true, NULL), 0);
	/* the late approval, appended by hand on the rejection (same tree) */
	json_t *ev = json_pack("{s:i, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:[{s:s, s:s, s:s, s:s}]}", "v", 1, "id",
			       "1a7e1a7e1a7e", "time", "2099-01-01T00:00:00.000Z", "type", "promotion.approved",
			       "environment", "staging", "sha", SHA1, "actor", "ci", "trigger", "ci", "promotion", id,
			       "required", 1, "approvals", "approver", "alice", "key", apub, "signature", asig, "decision",
			       "approve");
	char *msg = json_dumps(ev, JSON_COMPACT);
	json_decref(ev);
	char *cmd = gitops_sprintf("cd %s/late.git && c=$(git commit-tree 'gitops/state^{tree}' -p gitops/state -m '%s') "
				   "&& git update-ref refs/heads/gitops/state $c", dir, msg);
	assert_int_equal(system(cmd), 0);
	free(cmd);
	free(msg);
	assert_int_equal(hist_check(&r, victim), GITOPS_EPOLICY);
	assert_non_null(strstr(r.problem, "is not pending"));
	hist_verify_report_clear(&r);
	hist_free(victim);
	hist_free(h);
	free(id);
	free(asig);
	free(bsig);
	free(ak);
	free(bk);
	free(apub);
	free(bpub);
}

static int setup(void **state)
{
	(void)state;
	return t_tmpdir(dir, sizeof(dir), "trust");
}

static int teardown(void **state)
{
	(void)state;
	mf_config_free(cfg);
	return t_rmtree(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(sshsig_vectors),
		cmocka_unit_test(key_lines),
		cmocka_unit_test(reporter_signed_sync_opens_the_gate),
		cmocka_unit_test(superseded_promotions_verify),
		cmocka_unit_test(events_under_another_config_are_refused),
		cmocka_unit_test(approval_after_rejection_is_refused),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
