/* common: the cancellation token: an atomic flag for cheap checks and an eventfd so that a
 * thread blocked in poll() (a sleep, a backoff, a wait for health) wakes at once. */
#include "common/common.h"

#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

struct gitops_cancel {
	atomic_bool set;
	int fd;
};

int gitops_cancel_new(gitops_cancel **out)
{
	*out = NULL;
	int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (fd < 0)
		return gitops_error_set(GITOPS_EIO, "eventfd: %s", gitops_strerror(errno));
	gitops_cancel *c = gitops_calloc(1, sizeof(*c));
	atomic_init(&c->set, false);
	c->fd = fd;
	*out = c;
	return GITOPS_OK;
}

void gitops_cancel_free(gitops_cancel *c)
{
	if (!c)
		return;
	close(c->fd);
	free(c);
}

void gitops_cancel_set(gitops_cancel *c)
{
	if (!c)
		return;
	atomic_store(&c->set, true);
	uint64_t one = 1;
	/* write(2) is async-signal-safe; a full counter (never in practice) still leaves it readable */
	ssize_t w = write(c->fd, &one, sizeof(one));
	(void)w;
}

bool gitops_cancel_is_set(const gitops_cancel *c) { return c && atomic_load(&((gitops_cancel *)c)->set); }

const atomic_bool *gitops_cancel_flag(const gitops_cancel *c) { return &c->set; }

int gitops_cancel_fd(const gitops_cancel *c) { return c->fd; }

bool gitops_cancel_sleep(gitops_cancel *c, long long ms)
{
	long long end = gitops_now_ms() + (ms > 0 ? ms : 0);
	for (;;) {
		if (gitops_cancel_is_set(c))
			return true;
		long long left = end - gitops_now_ms();
		if (left <= 0)
			return false;
		if (!c) {
			struct timespec ts = {left / 1000, (left % 1000) * 1000000L};
			nanosleep(&ts, NULL);
			continue;
		}
		struct pollfd p = {.fd = c->fd, .events = POLLIN};
		poll(&p, 1, left > 1000000 ? 1000000 : (int)left);
	}
}
