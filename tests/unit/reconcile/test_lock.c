/* Unit tests for reconcile/'s fencing decisions: when the sync lock (inventory.c) may be taken
 * from its holder, the body written to take or renew it (the resourceVersion read kept as the
 * compare-and-swap precondition), and when the daemon's leader election (lease.c) may write a
 * Lease. The Lease was recorded from the local control plane (fixtures/lease-lock.json,
 * re-recorded by fixtures/record.sh); no request reaches a server. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/common.h"
#include "reconcile/internal.h"
#include "support/support.h"

#define FIXTURES "tests/unit/reconcile/fixtures/"
#define LOCK "gitops-lock.shop.prod"

static json_t *recorded_lease(void) { return t_fixture(FIXTURES "live/lease-lock.json"); }

static json_t *spec_of(json_t *lease) { return json_object_get(lease, "spec"); }

static const char *sstr(json_t *o, const char *k) { return json_string_value(json_object_get(o, k)); }

/* A holder identity on this host: "host/pid/nonce". */
static char *holder_here(pid_t pid)
{
	char host[256] = "";
	gethostname(host, sizeof(host) - 1);
	return gitops_sprintf("%s/%ld/5f3a", host, (long)pid);
}

static void lock_is_taken_only_from_a_holder_gone_or_silent(void **state)
{
	json_t *lease = recorded_lease();
	/* held by a process on another host, leaseDurationSeconds 30: taken only once its record
	 * has not changed for 30 s on this host's clock */
	assert_string_equal(sstr(spec_of(lease), "holderIdentity"), "build-7/4242/5f3a");
	assert_false(rec_lock_free(lease, 0));
	assert_false(rec_lock_free(lease, 30000));
	assert_true(rec_lock_free(lease, 30001));
	/* a shorter duration named in the Lease counts */
	json_object_set_new(spec_of(lease), "leaseDurationSeconds", json_integer(5));
	assert_false(rec_lock_free(lease, 4000));
	assert_true(rec_lock_free(lease, 6000));
	/* none (or nonsense): 30 s */
	json_object_set_new(spec_of(lease), "leaseDurationSeconds", json_integer(0));
	assert_false(rec_lock_free(lease, 29000));
	assert_true(rec_lock_free(lease, 31000));
	json_object_set_new(spec_of(lease), "leaseDurationSeconds", json_integer(30));
	/* handed back (empty holder) or never held: free at once */
	json_object_set_new(spec_of(lease), "holderIdentity", json_string(""));
	assert_true(rec_lock_free(lease, 0));
	json_object_del(spec_of(lease), "holderIdentity");
	assert_true(rec_lock_free(lease, 0));
	/* a holder on this host: free at once when its process is gone, never while it lives */
	char *alive = holder_here(getpid());
	json_object_set_new(spec_of(lease), "holderIdentity", json_string(alive));
	assert_false(rec_lock_free(lease, 0));
	assert_false(rec_lock_free(lease, 30000));
	pid_t child = fork();
	if (child == 0)
		_exit(0);
	assert_true(child > 0);
	waitpid(child, NULL, 0);
	char *gone = holder_here(child);
	json_object_set_new(spec_of(lease), "holderIdentity", json_string(gone));
	assert_true(rec_lock_free(lease, 0));
	free(alive);
	free(gone);
	json_decref(lease);
}

/* A MicroTime as Kubernetes writes it: 2026-11-30T10:00:00.000000Z */
static void expect_micro_time(const char *t)
{
	assert_non_null(t);
	assert_int_equal(strlen(t), 27);
	assert_int_equal(t[10], 'T');
	assert_int_equal(t[19], '.');
	assert_int_equal(t[26], 'Z');
}

static void lock_body_keeps_the_precondition_and_the_acquire_time(void **state)
{
	json_t *lease = recorded_lease();
	const char *rv = sstr(json_object_get(lease, "metadata"), "resourceVersion");
	assert_non_null(rv);
	/* taking it over: the resourceVersion read is the precondition; a new acquireTime */
	json_t *take = rec_lock_body(LOCK, "me/1/a", lease);
	assert_string_equal(sstr(json_object_get(take, "metadata"), "resourceVersion"), rv);
	assert_string_equal(sstr(json_object_get(take, "metadata"), "uid"), sstr(json_object_get(lease, "metadata"), "uid"));
	assert_string_equal(sstr(spec_of(take), "holderIdentity"), "me/1/a");
	assert_int_equal(json_integer_value(json_object_get(spec_of(take), "leaseDurationSeconds")), 30);
	expect_micro_time(sstr(spec_of(take), "acquireTime"));
	expect_micro_time(sstr(spec_of(take), "renewTime"));
	assert_string_not_equal(sstr(spec_of(take), "acquireTime"), sstr(spec_of(lease), "acquireTime"));
	assert_string_not_equal(sstr(spec_of(take), "renewTime"), sstr(spec_of(lease), "renewTime"));
	/* the Lease read is not changed */
	assert_string_equal(sstr(spec_of(lease), "holderIdentity"), "build-7/4242/5f3a");
	/* renewing (same holder): the acquireTime stays */
	json_object_set_new(spec_of(take), "acquireTime", json_string("2026-11-30T10:05:00.000000Z"));
	json_t *renew = rec_lock_body(LOCK, "me/1/a", take);
	assert_string_equal(sstr(spec_of(renew), "acquireTime"), "2026-11-30T10:05:00.000000Z");
	assert_string_equal(sstr(json_object_get(renew, "metadata"), "resourceVersion"), rv);
	/* a new Lease: no precondition, in gitops-system, labelled as gitops' */
	json_t *fresh = rec_lock_body(LOCK, "me/1/a", NULL);
	json_t *meta = json_object_get(fresh, "metadata");
	assert_null(json_object_get(meta, "resourceVersion"));
	assert_string_equal(sstr(meta, "name"), LOCK);
	assert_string_equal(sstr(meta, "namespace"), REC_INVENTORY_NAMESPACE);
	assert_string_equal(sstr(json_object_get(meta, "labels"), REC_LABEL_MANAGED_BY), "gitops");
	assert_string_equal(sstr(fresh, "kind"), "Lease");
	assert_string_equal(sstr(fresh, "apiVersion"), "coordination.k8s.io/v1");
	assert_string_equal(sstr(spec_of(fresh), "holderIdentity"), "me/1/a");
	expect_micro_time(sstr(spec_of(fresh), "acquireTime"));
	json_decref(fresh);
	json_decref(renew);
	json_decref(take);
	json_decref(lease);
}

static void leader_takes_a_lease_only_when_free_and_below_its_share(void **state)
{
	json_t *lease = recorded_lease(); /* held by build-7/4242/5f3a for 30 s */
	const long long now = 1000000, dflt = 15000;
	bool mine = true;
	/* another holder whose record changed 10 s ago: never, whatever the share */
	assert_false(rec_lease_may_take(lease, "replica-b", now - 10000, now, dflt, 0, 5, &mine));
	assert_false(mine);
	/* unchanged for the 30 s it names: taken, if below the share */
	assert_true(rec_lease_may_take(lease, "replica-b", now - 30000, now, dflt, 0, 1, &mine));
	assert_false(mine);
	assert_false(rec_lease_may_take(lease, "replica-b", now - 30000, now, dflt, 1, 1, &mine));
	assert_false(rec_lease_may_take(lease, "replica-b", now - 29999, now, dflt, 0, 1, &mine));
	/* our own: renewed, also at or above the share */
	assert_true(rec_lease_may_take(lease, "build-7/4242/5f3a", now, now, dflt, 3, 1, &mine));
	assert_true(mine);
	/* no duration named: the configured one */
	json_object_del(spec_of(lease), "leaseDurationSeconds");
	assert_false(rec_lease_may_take(lease, "replica-b", now - 14000, now, dflt, 0, 1, &mine));
	assert_true(rec_lease_may_take(lease, "replica-b", now - 15000, now, dflt, 0, 1, &mine));
	/* released (empty holder): at once, below the share */
	json_object_set_new(spec_of(lease), "holderIdentity", json_string(""));
	assert_true(rec_lease_may_take(lease, "replica-b", now, now, dflt, 0, 1, &mine));
	assert_false(mine);
	assert_false(rec_lease_may_take(lease, "replica-b", now, now, dflt, 2, 2, &mine));
	json_decref(lease);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(lock_is_taken_only_from_a_holder_gone_or_silent),
		cmocka_unit_test(lock_body_keeps_the_precondition_and_the_acquire_time),
		cmocka_unit_test(leader_takes_a_lease_only_when_free_and_below_its_share),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
