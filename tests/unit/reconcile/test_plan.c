/* Unit tests for reconcile/'s plan (plan.c: steps 2-4, read live, compare, confirm) and the
 * sync's ownership decisions on it (sync.c, as a dry run): desired objects (fixtures/desired,
 * app "web") against live objects recorded from the local control plane after server-side
 * applies with field manager gitops (fixtures/live, re-recorded by fixtures/record.sh), with
 * the recorded inventory of pipeline "shop", environment "prod". The live objects come through
 * the plan's live source (as from the daemon's watch caches); discovery is the recorded one of
 * tests/fixtures/kube. The client's server refuses connections: no request reaches a server
 * (the confirm step's dry run fails, which leaves a modification a modification).
 *
 * The live objects (all in namespace rectests-fixtures):
 *   settings, web   applied by gitops for shop/prod, in the inventory, unchanged: in sync
 *   flags           applied by gitops for shop/prod, in the inventory, data changed by hand
 *   handmade        made by hand (kubectl create), desired, in no inventory
 *   shared          applied by gitops for pipeline billing, environment prod; desired by shop
 *   retired         applied by gitops for shop/prod, in the inventory, no longer in git
 *   keep-me         likewise, annotated gitops.dev/prune: disabled
 *   legacy          applied by an earlier release (no pipeline label), prod, in the inventory
 *   staging-owned   applied by gitops for shop/staging, yet listed in prod's inventory
 *   by-hand-listed  made by hand, yet listed in prod's inventory
 *   unlisted        applied by gitops for shop/prod, in no inventory, not in git
 * and the inventory also lists "vanished", which does not exist; "new" is desired, not live. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "kube/internal.h"
#include "reconcile/internal.h"
#include "support/support.h"

#define FIXTURES "tests/unit/reconcile/fixtures/"
#define NS "rectests-fixtures"
#define REV "89abcdef0123456789abcdef0123456789abcdef"

static const char *const live_names[] = {"settings", "flags", "handmade", "shared", "retired", "keep-me",
					 "legacy", "staging-owned", "by-hand-listed", "unlisted"};

struct world {
	kube_client *c;
	rec_workspace *ws;
	struct mf_environment env;
	json_t *live;   /* key -> recorded live object */
	json_t *asked;  /* key -> times the live source was asked */
	json_t *lines;  /* progress lines */
};

static void on_progress(void *ud, const char *line)
{
	json_array_append_new(((struct world *)ud)->lines, json_string(line));
}

/* The plan's live source: the recorded objects (absent ones: NULL, as a watch cache says). */
static int recorded_live(void *ud, const struct kube_resource *r, const struct rec_ref *ref, json_t **out)
{
	struct world *w = ud;
	char *k = gitops_sprintf("%s/%s/%s/%s", ref->group, ref->kind, ref->namespace ? ref->namespace : "", ref->name);
	json_object_set_new(w->asked, k, json_integer(json_integer_value(json_object_get(w->asked, k)) + 1));
	json_t *o = json_object_get(w->live, k);
	free(k);
	*out = o ? json_deep_copy(o) : NULL; /* the plan cuts in-sync objects down in place */
	return GITOPS_OK;
}

static int setup(void **state)
{
	struct world *w = gitops_calloc(1, sizeof(*w));
	kube_config *cfg = NULL;
	struct kube_config_options co = {.kubeconfig = "tests/fixtures/kube/kubeconfig.yaml"};
	if (kube_config_load(&cfg, &co))
		fail_msg("kubeconfig: %s", gitops_error_last());
	struct kube_client_options o = {.max_retries = -1, .timeout_ms = 2000};
	if (kube_client_new(&w->c, cfg, &o))
		fail_msg("client: %s", gitops_error_last());
	json_t *api = t_fixture("tests/fixtures/kube/discovery-api.json"), *apis = t_fixture("tests/fixtures/kube/discovery-apis.json");
	assert_int_equal(kube_discovery_load(w->c, api, apis), GITOPS_OK);
	json_decref(api);
	json_decref(apis);
	w->live = json_object();
	for (size_t i = 0; i < sizeof(live_names) / sizeof(*live_names); i++) {
		json_t *obj = t_fixture(FIXTURES "live/configmap-%s.json", live_names[i]);
		char *key = rec_object_key(obj);
		json_object_set_new(w->live, key, obj);
		free(key);
	}
	json_t *dep = t_fixture(FIXTURES "live/deployment-web.json");
	char *k = rec_object_key(dep);
	json_object_set_new(w->live, k, dep);
	free(k);
	w->asked = json_object();
	w->lines = json_array();
	w->ws = gitops_calloc(1, sizeof(*w->ws));
	pthread_mutex_init(&w->ws->progress_lock, NULL);
	pthread_mutex_init(&w->ws->clients_lock, NULL);
	w->ws->opt.progress = on_progress;
	w->ws->opt.progress_ud = w;
	w->env.name = "prod";
	*state = w;
	return 0;
}

static int teardown(void **state)
{
	struct world *w = *state;
	kube_client_free(w->c);
	json_decref(w->live);
	json_decref(w->asked);
	json_decref(w->lines);
	pthread_mutex_destroy(&w->ws->progress_lock);
	pthread_mutex_destroy(&w->ws->clients_lock);
	free(w->ws);
	free(w);
	return 0;
}

/* The recorded inventory of shop/prod as the plan reads it. */
static rec_inventory *recorded_inventory(void)
{
	rec_inventory *inv = gitops_calloc(1, sizeof(*inv));
	inv->pipeline = gitops_strdup("shop");
	inv->env = gitops_strdup("prod");
	inv->repository = gitops_strdup("https://git.example.com/shop.git");
	inv->name = rec_inventory_name("shop", "prod");
	snprintf(inv->root_commit, sizeof(inv->root_commit), "0123456789abcdef0123456789abcdef01234567");
	inv->cm = t_fixture(FIXTURES "live/inventory.json");
	assert_int_equal(rec_inventory_parse(&inv->doc, inv->cm, inv->name), GITOPS_OK);
	assert_int_equal(rec_inventory_check(inv), GITOPS_OK);
	return inv;
}

/* Plans the desired objects fixtures/desired/<name>.json (NULL-terminated) against the
 * recorded live objects and inventory. */
static rec_plan *plan_of(struct world *w, const char *const *desired)
{
	rec_plan *p = gitops_calloc(1, sizeof(*p));
	snprintf(p->env, sizeof(p->env), "prod");
	snprintf(p->revision, sizeof(p->revision), REV);
	p->envp = &w->env;
	p->ws = w->ws;
	p->client = w->c;
	p->live = (struct rec_live_source){recorded_live, w};
	p->inv = recorded_inventory();
	p->inv_rv = gitops_strdup(rec_inventory_rv(p->inv));
	mf_objects *set = NULL;
	assert_int_equal(mf_objects_new(&set), GITOPS_OK);
	for (int i = 0; desired[i]; i++) {
		json_t *obj = t_fixture(FIXTURES "desired/%s.json", desired[i]);
		char *file = gitops_sprintf("apps/web/%s.yaml", desired[i]);
		assert_int_equal(mf_objects_add(set, obj, file, 1, "web", NULL), GITOPS_OK);
		free(file);
		json_decref(obj);
	}
	if (rec_plan_compare_set(p, set))
		fail_msg("plan: %s", gitops_error_last());
	return p;
}

static const struct rec_item *item(const rec_plan *p, const char *name)
{
	for (size_t i = 0; i < rec_plan_count(p); i++)
		if (!strcmp(rec_plan_item(p, i)->ref.name, name))
			return rec_plan_item(p, i);
	return NULL;
}

static const char *const state_names[] = {"IN_SYNC", "MODIFIED", "MISSING", "EXTRA"};

static void expect_item(const rec_plan *p, const char *name, drift_state state, bool in_inventory, bool owned,
			bool unmanaged)
{
	const struct rec_item *it = item(p, name);
	if (!it)
		fail_msg("%s: not in the plan", name);
	drift_state s = drift_result_state(it->result);
	if (s != state)
		fail_msg("%s: %s, want %s", name, state_names[s], state_names[state]);
	if (it->in_inventory != in_inventory || it->owned != owned || it->unmanaged != unmanaged)
		fail_msg("%s: in_inventory %d owned %d unmanaged %d, want %d %d %d", name, it->in_inventory, it->owned,
			 it->unmanaged, in_inventory, owned, unmanaged);
}

static const char *const all_desired[] = {"configmap-insync", "configmap-modified", "deployment-insync", "configmap-missing",
					  "configmap-handmade", "configmap-other-pipeline", NULL};

static void plan_sorts_recorded_objects_by_state_and_owner(void **state)
{
	struct world *w = *state;
	rec_plan *p = plan_of(w, all_desired);
	/* in sync: gitops' own fields have their values (the Deployment's defaults and the
	 * server's spelling of 0.5 CPU are not differences) */
	expect_item(p, "settings", DRIFT_IN_SYNC, true, true, false);
	expect_item(p, "web", DRIFT_IN_SYNC, true, true, false);
	/* need apply: changed by hand; not there */
	expect_item(p, "flags", DRIFT_MODIFIED, true, true, false);
	expect_item(p, "new", DRIFT_MISSING, false, false, false);
	assert_non_null(item(p, "flags")->desired);
	/* desired and live but not ours: made by hand, or another pipeline's (named) */
	expect_item(p, "handmade", drift_result_state(item(p, "handmade")->result), false, false, true);
	assert_null(item(p, "handmade")->owner);
	expect_item(p, "shared", drift_result_state(item(p, "shared")->result), false, false, true);
	assert_non_null(item(p, "shared")->owner);
	assert_string_equal(item(p, "shared")->owner, "pipeline billing, environment prod");
	/* pruned when pruning: in the inventory and carrying shop/prod's marks (an earlier
	 * release's objects carry no pipeline mark: the inventory entry decides) */
	expect_item(p, "retired", DRIFT_EXTRA, true, true, false);
	expect_item(p, "keep-me", DRIFT_EXTRA, true, true, false);
	expect_item(p, "legacy", DRIFT_EXTRA, true, true, false);
	/* listed in the inventory but not carrying shop/prod's marks: never shown, never pruned;
	 * like the entry whose object is gone, only dropped from the inventory by the next sync */
	assert_null(item(p, "staging-owned"));
	assert_null(item(p, "by-hand-listed"));
	assert_null(item(p, "vanished"));
	json_t *hidden = json_object();
	for (size_t i = p->n_visible; i < p->n; i++) {
		assert_null(p->entries[i].item.result);
		assert_null(p->entries[i].item.live);
		json_object_set_new(hidden, p->entries[i].key, json_true());
	}
	assert_int_equal(json_object_size(hidden), 3);
	assert_non_null(json_object_get(hidden, "/ConfigMap/" NS "/staging-owned"));
	assert_non_null(json_object_get(hidden, "/ConfigMap/" NS "/by-hand-listed"));
	assert_non_null(json_object_get(hidden, "/ConfigMap/" NS "/vanished"));
	json_decref(hidden);
	/* in no inventory and not desired: not even looked at */
	assert_null(json_object_get(w->asked, "/ConfigMap/" NS "/unlisted"));
	assert_int_equal(rec_plan_count(p), 9);
	size_t counts[4];
	rec_plan_counts(p, counts);
	assert_int_equal(counts[DRIFT_EXTRA], 3);
	assert_int_equal(counts[DRIFT_MISSING], 1);
	assert_false(rec_plan_in_sync(p));
	rec_plan_free(p);
}

static void plan_of_what_is_live_and_ours_is_in_sync(void **state)
{
	struct world *w = *state;
	/* only the in-sync objects desired, and the inventory's other entries either gone or not
	 * ours: nothing to do but prune the three that are ours */
	static const char *const desired[] = {"configmap-insync", "deployment-insync", NULL};
	rec_plan *p = plan_of(w, desired);
	expect_item(p, "settings", DRIFT_IN_SYNC, true, true, false);
	expect_item(p, "web", DRIFT_IN_SYNC, true, true, false);
	expect_item(p, "flags", DRIFT_EXTRA, true, true, false);
	assert_null(item(p, "handmade"));
	assert_null(item(p, "shared"));
	/* an in-sync live object is cut down to its metadata: its data is not kept */
	assert_null(json_object_get(item(p, "settings")->live, "data"));
	assert_null(json_object_get(json_object_get(item(p, "settings")->live, "metadata"), "managedFields"));
	assert_non_null(json_object_get(item(p, "flags")->live, "data")); /* EXTRA: kept whole */
	rec_plan_free(p);
}

static bool has_line(struct world *w, const char *start, const char *needle)
{
	size_t i;
	json_t *l;
	json_array_foreach(w->lines, i, l) {
		const char *s = json_string_value(l);
		if (!strncmp(s, start, strlen(start)) && strstr(s, needle))
			return true;
	}
	return false;
}

static void no_line_names(struct world *w, const char *start, const char *name)
{
	char *needle = gitops_sprintf(NS "/%s ", name);
	if (has_line(w, start, needle))
		fail_msg("a \"%s\" line names %s", start, name);
	free(needle);
}

/* The objects the sync tests plan: nothing to apply (the client reaches no server). */
static const char *const sync_desired[] = {"configmap-insync", "deployment-insync", "configmap-handmade",
					   "configmap-other-pipeline", NULL};

static void prune_deletes_only_what_is_listed_and_marked_ours(void **state)
{
	struct world *w = *state;
	rec_plan *p = plan_of(w, sync_desired);
	struct rec_sync_report rep;
	int rc = rec_sync(&rep, w->ws, p, &(struct rec_sync_options){.prune = true, .dry_run = true});
	/* the two objects that exist and are not ours make the sync fail, after the rest */
	assert_int_equal(rc, GITOPS_ERROR);
	assert_int_equal(rep.pruned, 3);
	assert_true(has_line(w, "pruned  ", NS "/retired (dry run"));
	assert_true(has_line(w, "pruned  ", NS "/legacy (dry run"));
	assert_true(has_line(w, "pruned  ", NS "/flags (dry run"));
	assert_int_equal(rep.kept, 1);
	assert_true(has_line(w, "kept    ", NS "/keep-me (gitops.dev/prune: disabled)"));
	static const char *const never[] = {"staging-owned", "by-hand-listed", "unlisted", "handmade", "shared",
					    "settings", "web", "vanished"};
	for (size_t i = 0; i < sizeof(never) / sizeof(*never); i++)
		no_line_names(w, "pruned", never[i]);
	/* not adopted without the opt-in */
	assert_int_equal(rep.unmanaged, 2);
	assert_int_equal(rep.adopted, 0);
	assert_true(has_line(w, "skipped ", NS "/handmade (apps/web/configmap-handmade.yaml:1): exists, not managed by gitops"));
	assert_true(has_line(w, "skipped ", "/shared (apps/web/configmap-other-pipeline.yaml:1): exists and belongs to "
				  "pipeline billing, environment prod"));
	no_line_names(w, "adopted", "handmade");
	assert_int_equal(rep.failed, 0);
	assert_int_equal(rep.created + rep.updated, 0);
	rec_plan_free(p);
}

static void adoption_takes_only_what_no_pipeline_owns(void **state)
{
	struct world *w = *state;
	/* --adopt, and sync: {adopt: true} in gitops.yaml */
	for (int how = 0; how < 2; how++) {
		json_array_clear(w->lines);
		w->env.sync_adopt = how == 1;
		rec_plan *p = plan_of(w, sync_desired);
		struct rec_sync_report rep;
		rec_sync(&rep, w->ws, p, &(struct rec_sync_options){.dry_run = true, .adopt = how == 0});
		assert_int_equal(rep.adopted, 1);
		assert_true(has_line(w, "adopted ", NS "/handmade (dry run)"));
		/* another pipeline's object is never taken over, even when adopting */
		assert_int_equal(rep.unmanaged, 1);
		assert_true(has_line(w, "skipped ", "/shared (apps/web/configmap-other-pipeline.yaml:1): exists and belongs to "
					  "pipeline billing, environment prod; gitops never takes it over"));
		no_line_names(w, "adopted", "shared");
		/* the adopted object is applied (here the server is unreachable: it fails) */
		assert_true(has_line(w, "failed  ", NS "/handmade"));
		/* prune off: nothing deleted, the extra objects are reported */
		assert_int_equal(rep.pruned, 0);
		assert_int_equal(rep.extra_kept, 4);
		rec_plan_free(p);
	}
	w->env.sync_adopt = false;
}

static void nothing_is_pruned_while_another_app_does_not_render(void **state)
{
	struct world *w = *state;
	rec_plan *p = plan_of(w, sync_desired);
	p->prune_blocked = gitops_strdup("app api does not render (bad.yaml:3: not YAML)");
	struct rec_sync_report rep;
	rec_sync(&rep, w->ws, p, &(struct rec_sync_options){.prune = true, .dry_run = true});
	assert_int_equal(rep.pruned, 0);
	assert_int_equal(rep.kept, 0);
	assert_int_equal(rep.extra_kept, 4);
	assert_true(has_line(w, "extra   ", NS "/retired (no longer in git; not pruned: app api does not render"));
	no_line_names(w, "pruned", "retired");
	rec_plan_free(p);
}

/* The confirm step's rule on recorded server-side dry runs. */
static void confirm_takes_a_dry_run_equal_to_live_as_in_sync(void **state)
{
	json_t *live = t_fixture(FIXTURES "live/deployment-web.json");
	json_t *dry = t_fixture(FIXTURES "live/dryrun-deployment-web.json");
	/* applying the Deployment again changes nothing (the server's managedFields time differs) */
	assert_true(rec_dry_run_is_noop(live, dry));
	/* bookkeeping alone never counts as a change */
	json_t *d2 = json_deep_copy(dry);
	json_t *meta = json_object_get(d2, "metadata");
	json_object_set_new(meta, "resourceVersion", json_string("999999"));
	json_object_set_new(meta, "generation", json_integer(42));
	json_object_del(meta, "managedFields");
	assert_true(rec_dry_run_is_noop(live, d2));
	/* but any other field does: a label, the spec */
	json_object_set_new(json_object_get(meta, "labels"), "gitops.dev/app", json_string("api"));
	assert_false(rec_dry_run_is_noop(live, d2));
	json_decref(d2);
	d2 = json_deep_copy(dry);
	json_object_set_new(json_object_get(d2, "spec"), "replicas", json_integer(3));
	assert_false(rec_dry_run_is_noop(live, d2));
	json_decref(d2);
	/* a ConfigMap changed by hand: the dry run puts gitops' value back, so it is a change */
	json_t *flags = t_fixture(FIXTURES "live/configmap-flags.json");
	json_t *dflags = t_fixture(FIXTURES "live/dryrun-configmap-flags.json");
	assert_false(rec_dry_run_is_noop(flags, dflags));
	json_decref(flags);
	json_decref(dflags);
	json_decref(live);
	json_decref(dry);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(plan_sorts_recorded_objects_by_state_and_owner, setup, teardown),
		cmocka_unit_test_setup_teardown(plan_of_what_is_live_and_ours_is_in_sync, setup, teardown),
		cmocka_unit_test_setup_teardown(prune_deletes_only_what_is_listed_and_marked_ours, setup, teardown),
		cmocka_unit_test_setup_teardown(adoption_takes_only_what_no_pipeline_owns, setup, teardown),
		cmocka_unit_test_setup_teardown(nothing_is_pruned_while_another_app_does_not_render, setup, teardown),
		cmocka_unit_test(confirm_takes_a_dry_run_equal_to_live_as_in_sync),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
