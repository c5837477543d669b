/* manifests/proc.c: runs a renderer binary (helm, kustomize) with posix_spawn, no shell, its own
 * process group, a bounded output and a timeout; stderr becomes the error message. */
#include "manifests/internal.h"
#include "common/mask.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

int mf_find_binary(char **out, const char *name)
{
	*out = NULL;
	char envname[64];
	snprintf(envname, sizeof(envname), "GITOPS_%s", name);
	for (char *p = envname; *p; p++)
		if (*p >= 'a' && *p <= 'z')
			*p = (char)(*p - 'a' + 'A');
	const char *e = getenv(envname);
	if (e && *e) {
		if (access(e, X_OK))
			return gitops_error_set(GITOPS_ENOTFOUND, "%s=%s: not an executable file", envname, e);
		*out = gitops_strdup(e);
		return 0;
	}
	const char *path = getenv("PATH");
	if (path) {
		char *copy = gitops_strdup(path), *save = NULL;
		for (char *d = strtok_r(copy, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
			char *cand = gitops_sprintf("%s/%s", *d ? d : ".", name);
			struct stat st;
			if (!stat(cand, &st) && S_ISREG(st.st_mode) && !access(cand, X_OK)) {
				*out = cand;
				free(copy);
				return 0;
			}
			free(cand);
		}
		free(copy);
	}
	return gitops_error_set(GITOPS_ENOTFOUND, "%s not found: install it on PATH or set %s to its path", name, envname);
}

/* One line of stderr text: newlines folded, trimmed, bounded. */
static char *one_line(const gitops_buf *b)
{
	gitops_buf o = GITOPS_BUF_INIT;
	/* a renderer may quote what it read, Secrets included */
	char *masked = gitops_mask_text(gitops_buf_cstr(b), NULL);
	const char *s = masked;
	bool space = false;
	for (; *s && o.len < 2000; s++) {
		if (*s == '\n' || *s == '\r' || *s == '\t') {
			space = o.len > 0;
			continue;
		}
		if (space) {
			gitops_buf_puts(&o, "; ");
			space = false;
		}
		gitops_buf_putc(&o, *s);
	}
	free(masked);
	return gitops_buf_detach(&o);
}

int mf_proc_run(gitops_buf *out, char *const argv[], char *const envp[], const char *cwd,
		int timeout_ms, size_t max_out)
{
	int op[2] = {-1, -1}, ep[2] = {-1, -1};
	if (pipe2(op, O_CLOEXEC) || pipe2(ep, O_CLOEXEC)) {
		int rc = gitops_error_set(GITOPS_EIO, "pipe: %s", strerror(errno));
		for (int i = 0; i < 2; i++) {
			if (op[i] >= 0)
				close(op[i]);
			if (ep[i] >= 0)
				close(ep[i]);
		}
		return rc;
	}
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&at);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, op[1], 1);
	posix_spawn_file_actions_adddup2(&fa, ep[1], 2);
	if (cwd)
		posix_spawn_file_actions_addchdir_np(&fa, cwd);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	posix_spawnattr_setpgroup(&at, 0);
	sigset_t none, all;
	sigemptyset(&none);
	sigfillset(&all);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &all);
	pid_t pid;
	int err = posix_spawn(&pid, argv[0], &fa, &at, argv, envp);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	close(op[1]);
	close(ep[1]);
	if (err) {
		close(op[0]);
		close(ep[0]);
		return gitops_error_set(GITOPS_EIO, "cannot run %s: %s", argv[0], strerror(err));
	}
	gitops_buf eb = GITOPS_BUF_INIT;
	long long deadline = gitops_now_ms() + timeout_ms;
	struct pollfd fds[2] = {{op[0], POLLIN, 0}, {ep[0], POLLIN, 0}};
	int open_fds = 2, rc = 0;
	char buf[65536];
	while (open_fds > 0) {
		long long left = deadline - gitops_now_ms();
		if (left <= 0) {
			rc = gitops_error_set(GITOPS_ETIMEOUT, "%s did not finish within %d ms (killed)", argv[0], timeout_ms);
			break;
		}
		int n = poll(fds, 2, (int)(left > 1000 ? 1000 : left));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = gitops_error_set(GITOPS_EIO, "poll: %s", strerror(errno));
			break;
		}
		for (int i = 0; i < 2; i++) {
			if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			ssize_t r = read(fds[i].fd, buf, sizeof(buf));
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0) {
				close(fds[i].fd);
				fds[i].fd = -1;
				open_fds--;
				continue;
			}
			if (i == 0) {
				if (out->len + (size_t)r > max_out) {
					rc = gitops_error_set(GITOPS_EINVALID, "%s printed more than %zu bytes (killed)", argv[0], max_out);
					break;
				}
				gitops_buf_put(out, buf, (size_t)r);
			} else if (eb.len < 65536) {
				gitops_buf_put(&eb, buf, (size_t)r);
			}
		}
		if (rc)
			break;
	}
	if (rc)
		kill(-pid, SIGKILL);
	for (int i = 0; i < 2; i++)
		if (fds[i].fd >= 0)
			close(fds[i].fd);
	int status = 0;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (!rc && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
		char *line = one_line(&eb);
		if (WIFSIGNALED(status))
			rc = gitops_error_set(GITOPS_EIO, "%s killed by signal %d: %s", argv[0], WTERMSIG(status), line);
		else
			rc = gitops_error_set(GITOPS_EINVALID, "%s failed (exit %d): %s", argv[0], WEXITSTATUS(status),
					      *line ? line : "(no error output)");
		free(line);
	}
	gitops_buf_free(&eb);
	return rc;
}
