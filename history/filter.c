/* history/filter: the query filters of `gitops history` and of GET /api/v1/history, read from
 * their text form in one place so that both accept and refuse the same values. */
#include "history.h"

#include <stdlib.h>
#include <string.h>

int hist_filter_parse(struct hist_filter *f, const char *since, const char *until, const char *limit)
{
	if ((since && hist_parse_time(&f->since_ms, since)) || (until && hist_parse_time(&f->until_ms, until)))
		return GITOPS_EINVALID;
	if (f->type && !hist_type_known(f->type) && !strchr(f->type, '*') && f->type[strlen(f->type) - 1] != '.')
		return gitops_error_set(GITOPS_EINVALID, "unknown event type %s; see README (\"History events\")", f->type);
	if (limit) {
		char *end;
		long n = strtol(limit, &end, 10);
		if (!*limit || *end || n < 0)
			return gitops_error_set(GITOPS_EINVALID, "limit wants a number, got %s", limit);
		f->limit = (size_t)n;
	}
	return 0;
}
