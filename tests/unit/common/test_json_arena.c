/* Unit tests for common/json_arena.c: objects parsed into an arena behave as any jansson value,
 * and the arena's chunks go back once their objects are freed, from any thread. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#endif

/* A list page like the apiserver's: n ConfigMaps with managedFields. */
static char *page_text(int n)
{
	gitops_buf b = GITOPS_BUF_INIT;
	gitops_buf_puts(&b, "{\"kind\":\"ConfigMapList\",\"items\":[");
	for (int i = 0; i < n; i++)
		gitops_buf_printf(&b, "%s{\"metadata\":{\"name\":\"cm-%04d\",\"namespace\":\"ns\",\"managedFields\":[{\"manager\":"
				  "\"gitops\",\"fieldsV1\":{\"f:data\":{\"f:index\":{}}}}]},\"data\":{\"index\":\"%d\"}}",
				  i ? "," : "", i, i);
	gitops_buf_puts(&b, "]}");
	return gitops_buf_detach(&b);
}

static json_t *parse_in(gitops_json_arena *a, const char *text)
{
	gitops_json_arena *was = gitops_json_arena_use(a);
	json_t *doc = json_loads(text, 0, NULL);
	gitops_json_arena_use(was);
	return doc;
}

static void chunks_go_back_when_the_page_is_freed(void **state)
{
	(void)state;
	size_t before = gitops_json_arena_in_use();
	char *text = page_text(2000);
	gitops_json_arena *a = gitops_json_arena_open();
	json_t *doc = parse_in(a, text);
	assert_non_null(doc);
	assert_true(gitops_json_arena_bytes(a) >= 512 * 1024); /* cut from the arena, several chunks */
	assert_true(gitops_json_arena_in_use() > before);
	gitops_json_arena_close(a);
	/* an ordinary value: read, changed (the new members come from malloc), dumped */
	json_t *items = json_object_get(doc, "items");
	assert_int_equal(json_array_size(items), 2000);
	json_t *first = json_array_get(items, 0);
	json_object_set_new(first, "kind", json_string("ConfigMap"));
	char *s = json_dumps(first, JSON_COMPACT);
	assert_non_null(strstr(s, "\"name\":\"cm-0000\""));
	assert_non_null(strstr(s, "\"kind\":\"ConfigMap\""));
	free(s); /* outside an arena, what jansson returns is free()d as documented */
	json_decref(doc);
	assert_int_equal(gitops_json_arena_in_use(), before);
	free(text);
}

static void a_kept_object_pins_only_its_chunk(void **state)
{
	(void)state;
	size_t before = gitops_json_arena_in_use();
	char *text = page_text(4000);
	gitops_json_arena *a = gitops_json_arena_open();
	json_t *doc = parse_in(a, text);
	gitops_json_arena_close(a);
	size_t all = gitops_json_arena_in_use() - before;
	json_t *kept = json_incref(json_array_get(json_object_get(doc, "items"), 3999));
	json_decref(doc);
	size_t pinned = gitops_json_arena_in_use() - before;
	assert_true(pinned > 0);
	assert_true(pinned < all / 4);
	assert_string_equal(json_string_value(json_object_get(json_object_get(kept, "data"), "index")), "3999");
	/* a copy made outside the arena pins nothing */
	json_t *copy = json_deep_copy(kept);
	json_decref(kept);
	assert_int_equal(gitops_json_arena_in_use(), before);
	assert_string_equal(json_string_value(json_object_get(json_object_get(copy, "metadata"), "name")), "cm-3999");
	json_decref(copy);
	free(text);
}

static void *free_on_other_thread(void *arg)
{
	json_decref(arg);
	return NULL;
}

static void objects_are_freed_from_any_thread(void **state)
{
	(void)state;
	size_t before = gitops_json_arena_in_use();
	char *text = page_text(1000);
	gitops_json_arena *a = gitops_json_arena_open();
	json_t *doc = parse_in(a, text);
	gitops_json_arena_close(a);
	pthread_t th[4];
	json_t *items = json_object_get(doc, "items");
	for (int t = 0; t < 4; t++) {
		json_t *part = json_array();
		for (size_t i = (size_t)t; i < json_array_size(items); i += 4)
			json_array_append(part, json_array_get(items, i));
		assert_int_equal(pthread_create(&th[t], NULL, free_on_other_thread, part), 0);
	}
	json_decref(doc);
	for (int t = 0; t < 4; t++)
		pthread_join(th[t], NULL);
	assert_int_equal(gitops_json_arena_in_use(), before);
	free(text);
}

static void a_value_larger_than_a_chunk_comes_from_malloc(void **state)
{
	(void)state;
	size_t before = gitops_json_arena_in_use();
	size_t n = 600 * 1024;
	char *text = malloc(n + 16);
	memcpy(text, "{\"big\":\"", 8);
	memset(text + 8, 'x', n);
	memcpy(text + 8 + n, "\"}", 3);
	gitops_json_arena *a = gitops_json_arena_open();
	json_t *doc = parse_in(a, text);
	gitops_json_arena_close(a);
	assert_int_equal(json_string_length(json_object_get(doc, "big")), n);
	json_decref(doc);
	assert_int_equal(gitops_json_arena_in_use(), before);
	free(text);
}

static void trimmed_chunks_are_used_again(void **state)
{
	(void)state;
	size_t before = gitops_json_arena_in_use();
	char *text = page_text(3000);
	for (int round = 0; round < 3; round++) {
		gitops_json_arena *a = gitops_json_arena_open();
		json_t *doc = parse_in(a, text);
		gitops_json_arena_close(a);
		assert_int_equal(json_array_size(json_object_get(doc, "items")), 3000);
		assert_string_equal(json_string_value(json_object_get(json_object_get(json_array_get(
					    json_object_get(doc, "items"), 2999), "metadata"), "name")), "cm-2999");
		json_decref(doc);
		gitops_json_arena_trim(); /* the pool's pages go back; its list must survive that */
	}
	assert_int_equal(gitops_json_arena_in_use(), before);
	free(text);
}

static void an_empty_arena_costs_nothing(void **state)
{
	(void)state;
	size_t before = gitops_json_arena_in_use();
	gitops_json_arena *a = gitops_json_arena_open();
	assert_int_equal(gitops_json_arena_bytes(a), 0);
	gitops_json_arena_close(a);
	gitops_json_arena_close(NULL);
	assert_int_equal(gitops_json_arena_in_use(), before);
}

/* The sanitizer build keeps ASan's checks for blocks cut from an arena: a block freed while its
 * chunk still holds others is poisoned (a use after free is caught), and so are the bytes past
 * each block's end (an overflow is caught), as for malloc's blocks. */
static void freed_and_overflowed_blocks_are_caught_by_asan(void **state)
{
	(void)state;
#if defined(__SANITIZE_ADDRESS__)
	gitops_json_arena *a = gitops_json_arena_open();
	gitops_json_arena *was = gitops_json_arena_use(a);
	json_t *doc = json_loads("{\"b\":\"other\"}", 0, NULL);
	json_object_set_new(doc, "a", json_string("0123456789abcdef")); /* a block of 17 bytes */
	gitops_json_arena_use(was);
	gitops_json_arena_close(a);
	json_t *s = json_object_get(doc, "a");
	const char *txt = json_string_value(s);
	assert_non_null(txt);
	assert_false(__asan_region_is_poisoned((void *)txt, strlen(txt) + 1));
	assert_true(__asan_address_is_poisoned(txt + strlen(txt) + 1)); /* past the block */
	json_object_del(doc, "a"); /* frees the string; "b" keeps the chunk */
	assert_true(__asan_address_is_poisoned(txt));
	assert_true(__asan_address_is_poisoned(s));
	assert_string_equal(json_string_value(json_object_get(doc, "b")), "other");
	json_decref(doc);
#else
	fail_msg("the unit tests run in the sanitizer build");
#endif
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(chunks_go_back_when_the_page_is_freed),
		cmocka_unit_test(a_kept_object_pins_only_its_chunk),
		cmocka_unit_test(objects_are_freed_from_any_thread),
		cmocka_unit_test(a_value_larger_than_a_chunk_comes_from_malloc),
		cmocka_unit_test(trimmed_chunks_are_used_again),
		cmocka_unit_test(an_empty_arena_costs_nothing),
		cmocka_unit_test(freed_and_overflowed_blocks_are_caught_by_asan),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
