/* libFuzzer target: drift comparison and output. The input is two JSON documents separated by a
 * NUL byte (desired, live); quantities are also compared from the first line of each. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "drift/drift.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	const char *sep = memchr(text, '\0', size);
	size_t n1 = sep ? (size_t)(sep - text) : size;
	json_error_t jerr;
	json_t *desired = json_loadb(text, n1, JSON_DECODE_ANY, &jerr);
	json_t *live = sep ? json_loadb(sep + 1, size - n1 - 1, JSON_DECODE_ANY, &jerr) : NULL;
	drift_result *r = NULL;
	if (drift_compare(&r, desired, live, NULL) == 0) {
		gitops_buf out = GITOPS_BUF_INIT;
		drift_result_format_diff(&out, r, DRIFT_FORMAT_COLOR);
		drift_result_format_summary(&out, r);
		json_t *j = NULL;
		drift_result_to_json(&j, r);
		json_decref(j);
		gitops_buf_free(&out);
		drift_result_free(r);
	}
	/* Quantities: the two documents' texts as quantity strings (NUL-terminated copies). */
	if (sep && n1 < 64 && size - n1 - 1 < 64) {
		char a[64], b[64];
		memcpy(a, text, n1);
		a[n1] = '\0';
		memcpy(b, sep + 1, size - n1 - 1);
		b[size - n1 - 1] = '\0';
		if (!memchr(b, '\0', size - n1 - 1)) {
			int equal;
			drift_quantity_equal(&equal, a, b);
		}
	}
	json_decref(desired);
	json_decref(live);
	return 0;
}
