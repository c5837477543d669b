/* manifests/proc.c: runs a renderer binary (helm, kustomize): no shell, its own process group, a
 * bounded output and a timeout; stderr becomes the error message. Renderers run in a sandbox
 * (mf_sandbox): new user, mount, network, PID, IPC and UTS namespaces whose root is an empty
 * private tmpfs holding only the checkout (read-only), the renderer binary and /dev/null; no
 * network, no capabilities. Setting it up fails closed: a renderer never runs unconfined.
 * Thread-safe: fork() is followed only by async-signal-safe system calls until execve. */
#include "manifests/internal.h"
#include "common/mask.h"

#include <assert.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/securebits.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
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

/* ---- the sandbox ------------------------------------------------------------------------------ */

int mf_sandbox_check_binary(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return gitops_error_set(GITOPS_ENOTFOUND, "%s: %s", path, gitops_strerror(errno));
	Elf64_Ehdr eh;
	int rc = 0;
	bool is_elf = pread(fd, &eh, sizeof(eh), 0) == (ssize_t)sizeof(eh) && !memcmp(eh.e_ident, ELFMAG, SELFMAG) &&
		      eh.e_ident[EI_CLASS] == ELFCLASS64 && eh.e_phentsize == sizeof(Elf64_Phdr);
	bool dynamic = false;
	for (unsigned i = 0; is_elf && i < eh.e_phnum && i < 256; i++) {
		Elf64_Phdr ph;
		if (pread(fd, &ph, sizeof(ph), (off_t)(eh.e_phoff + (Elf64_Off)i * sizeof(ph))) != (ssize_t)sizeof(ph)) {
			is_elf = false;
			break;
		}
		if (ph.p_type == PT_INTERP)
			dynamic = true;
	}
	close(fd);
	if (!is_elf || dynamic)
		rc = gitops_error_set(GITOPS_EINVALID, "%s is %s; gitops runs renderers in an empty sandbox that holds only "
				      "the repository and the renderer, so the renderer must be a statically linked "
				      "64-bit executable (helm's and kustomize's release binaries are; a Go build with "
				      "CGO_ENABLED=0 is)", path, is_elf ? "dynamically linked" : "not a 64-bit ELF executable (a script?)");
	return rc;
}

/* Steps of the set-up in the child, reported through the status pipe when one fails. */
enum {
	SB_UNSHARE = 1, SB_SETGROUPS, SB_UIDMAP, SB_GIDMAP, SB_FORK, SB_PRIVATE, SB_TMPFS, SB_LAYOUT,
	SB_BIND_SRC, SB_BIND_BIN, SB_BIND_NULL, SB_PIVOT, SB_OLDROOT, SB_CHDIR, SB_CAPS, SB_EXEC,
};
static const char *const sb_steps[] = {
	"?", "unshare(user, mount, network, PID, IPC, UTS namespaces)", "deny setgroups", "write uid_map",
	"write gid_map", "fork into the PID namespace", "make mounts private", "mount the tmpfs root",
	"lay out the root", "bind the repository", "bind the renderer", "bind /dev/null", "pivot_root",
	"detach the host's root", "chdir", "drop capabilities", "execve",
};

/* Everything the child needs, prepared before fork: no allocation happens after it. */
struct sb_plan {
	char uid_map[64], gid_map[64];
	char *top;                           /* the empty mount point that becomes / */
	char *dirs[6];                       /* top/{src,bin,home,tmp,dev,old} */
	char *bin_mnt, *null_mnt, *exe;      /* top/bin/NAME, top/dev/null, /bin/NAME */
	const char *src, *bin, *cwd;         /* host checkout (may be NULL), host binary, cwd inside */
	unsigned long src_flags, bin_flags;  /* mount flags a read-only remount must keep */
};

static unsigned long locked_flags(const char *path)
{
	struct statvfs sv;
	unsigned long f = 0;
	if (statvfs(path, &sv))
		return 0;
	if (sv.f_flag & ST_NOSUID)
		f |= MS_NOSUID;
	if (sv.f_flag & ST_NODEV)
		f |= MS_NODEV;
	if (sv.f_flag & ST_NOEXEC)
		f |= MS_NOEXEC;
	if (sv.f_flag & ST_NOATIME)
		f |= MS_NOATIME;
	if (sv.f_flag & ST_NODIRATIME)
		f |= MS_NODIRATIME;
	if (sv.f_flag & ST_RELATIME)
		f |= MS_RELATIME;
	return f;
}

static void sb_plan_init(struct sb_plan *p, const struct mf_sandbox *sb, const char *bin, const char *cwd)
{
	memset(p, 0, sizeof(*p));
	snprintf(p->uid_map, sizeof(p->uid_map), "0 %u 1\n", (unsigned)geteuid());
	snprintf(p->gid_map, sizeof(p->gid_map), "0 %u 1\n", (unsigned)getegid());
	p->top = gitops_strdup(sb->work);
	static const char *const names[] = {"src", "bin", "home", "tmp", "dev", "old"};
	for (size_t i = 0; i < 6; i++)
		p->dirs[i] = gitops_sprintf("%s/%s", sb->work, names[i]);
	const char *base = strrchr(bin, '/');
	base = base ? base + 1 : bin;
	p->bin_mnt = gitops_sprintf("%s/bin/%s", sb->work, base);
	p->null_mnt = gitops_sprintf("%s/dev/null", sb->work);
	p->exe = gitops_sprintf("/bin/%s", base);
	p->src = sb->root;
	p->bin = bin;
	p->cwd = cwd ? cwd : "/";
	p->src_flags = sb->root ? locked_flags(sb->root) : 0;
	p->bin_flags = locked_flags(bin) & ~(unsigned long)MS_NOEXEC;
}

static void sb_plan_free(struct sb_plan *p)
{
	free(p->top);
	for (size_t i = 0; i < 6; i++)
		free(p->dirs[i]);
	free(p->bin_mnt);
	free(p->null_mnt);
	free(p->exe);
}

static void sb_fail(int fd, int step)
{
	int msg[2] = {step, errno};
	ssize_t w = write(fd, msg, sizeof(msg));
	(void)w;
	_exit(127);
}

static int write_proc(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = write(fd, text, strlen(text));
	int e = errno;
	close(fd);
	errno = e;
	return n == (ssize_t)strlen(text) ? 0 : -1;
}

static int touch(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0755);
	if (fd < 0)
		return -1;
	close(fd);
	return 0;
}

static int bind_ro(const char *from, const char *to, unsigned long keep)
{
	if (mount(from, to, NULL, MS_BIND, NULL))
		return -1;
	return mount(NULL, to, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | keep, NULL);
}

/* The child after fork: async-signal-safe calls only. Never returns. */
static void sb_child(const struct sb_plan *p, int st, char *const argv[], char *const envp[])
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS))
		sb_fail(st, SB_UNSHARE);
	if (write_proc("/proc/self/setgroups", "deny") && errno != ENOENT)
		sb_fail(st, SB_SETGROUPS);
	if (write_proc("/proc/self/uid_map", p->uid_map))
		sb_fail(st, SB_UIDMAP);
	if (write_proc("/proc/self/gid_map", p->gid_map))
		sb_fail(st, SB_GIDMAP);
	pid_t pid = fork();
	if (pid < 0)
		sb_fail(st, SB_FORK);
	if (pid > 0) {
		/* outside the PID namespace: wait for its init (the renderer) and pass its end on,
		 * holding no descriptor (a lock of the parent's must end with the parent) */
		syscall(SYS_close_range, 0U, ~0U, 0U);
		int status = 0;
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		if (WIFSIGNALED(status)) {
			signal(WTERMSIG(status), SIG_DFL);
			kill(getpid(), WTERMSIG(status));
		}
		_exit(WIFEXITED(status) ? WEXITSTATUS(status) : 127);
	}
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL))
		sb_fail(st, SB_PRIVATE);
	if (mount("gitops-render", p->top, "tmpfs", MS_NOSUID | MS_NODEV, "size=512m,mode=0755"))
		sb_fail(st, SB_TMPFS);
	for (size_t i = 0; i < 6; i++)
		if (mkdir(p->dirs[i], i == 3 ? 01777 : 0755))
			sb_fail(st, SB_LAYOUT);
	if (touch(p->bin_mnt) || touch(p->null_mnt))
		sb_fail(st, SB_LAYOUT);
	if (p->src && bind_ro(p->src, p->dirs[0], p->src_flags))
		sb_fail(st, SB_BIND_SRC);
	if (bind_ro(p->bin, p->bin_mnt, p->bin_flags))
		sb_fail(st, SB_BIND_BIN);
	if (mount("/dev/null", p->null_mnt, NULL, MS_BIND, NULL))
		sb_fail(st, SB_BIND_NULL);
	if (chdir(p->top) || syscall(SYS_pivot_root, ".", "old"))
		sb_fail(st, SB_PIVOT);
	if (chdir("/") || umount2("/old", MNT_DETACH) || rmdir("/old"))
		sb_fail(st, SB_OLDROOT);
	if (chdir(p->cwd))
		sb_fail(st, SB_CHDIR);
	/* root of the new user namespace only, and not even that: no capabilities, none regained by
	 * execve, no setuid gains */
	struct __user_cap_header_struct ch = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct cd[2];
	memset(cd, 0, sizeof(cd));
	if (prctl(PR_SET_SECUREBITS, SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP |
				     SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_KEEP_CAPS_LOCKED |
				     SECBIT_NO_CAP_AMBIENT_RAISE | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED) ||
	    syscall(SYS_capset, &ch, cd) || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		sb_fail(st, SB_CAPS);
	execve(p->exe, argv, envp);
	sb_fail(st, SB_EXEC);
}

/* Starts argv in the sandbox with stdout/stderr on the pipes; 0 with *out_pid, or an error. */
static int spawn_sandboxed(pid_t *out_pid, char *const argv[], char *const envp[], const char *cwd,
			   const struct mf_sandbox *sb, int out_fd, int err_fd)
{
	int rc = mf_sandbox_check_binary(argv[0]);
	if (rc)
		return rc;
	struct sb_plan p;
	sb_plan_init(&p, sb, argv[0], cwd);
	size_t argc = 0;
	while (argv[argc])
		argc++;
	char **args = gitops_calloc(argc + 1, sizeof(char *));
	memcpy(args, argv, argc * sizeof(char *));
	args[0] = p.exe;
	int st[2];
	if (pipe2(st, O_CLOEXEC)) {
		rc = gitops_error_set(GITOPS_EIO, "pipe: %s", gitops_strerror(errno));
		goto out;
	}
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pid_t pid = fork();
	if (pid == 0) {
		/* default dispositions, nothing blocked, stdio on the pipes, nothing else inherited */
		for (int sig = 1; sig < NSIG; sig++)
			signal(sig, SIG_DFL);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		setpgid(0, 0);
		close(st[0]);
		int nul = open("/dev/null", O_RDONLY);
		if (nul < 0 || dup2(nul, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(err_fd, 2) < 0)
			sb_fail(st[1], SB_LAYOUT);
		syscall(SYS_close_range, 3U, ~0U, 4U /* CLOSE_RANGE_CLOEXEC */);
		sb_child(&p, st[1], args, envp);
	}
	int fork_errno = errno;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	close(st[1]);
	if (pid < 0) {
		close(st[0]);
		rc = gitops_error_set(GITOPS_EIO, "fork: %s", gitops_strerror(fork_errno));
		goto out;
	}
	setpgid(pid, pid);
	int msg[2] = {0, 0};
	ssize_t n;
	while ((n = read(st[0], msg, sizeof(msg))) < 0 && errno == EINTR)
		;
	close(st[0]);
	if (n == (ssize_t)sizeof(msg)) {
		int status;
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		int step = msg[0] > 0 && msg[0] <= SB_EXEC ? msg[0] : 0;
		if (step == SB_EXEC)
			rc = gitops_error_set(GITOPS_EIO, "cannot run %s in its sandbox: %s", argv[0], gitops_strerror(msg[1]));
		else
			rc = gitops_error_set(GITOPS_EUNSUPPORTED,
					      "cannot isolate %s (%s: %s): gitops runs helm and kustomize only inside new "
					      "user, mount and network namespaces and never unconfined; allow user "
					      "namespaces (sysctl user.max_user_namespaces > 0; on Ubuntu "
					      "kernel.apparmor_restrict_unprivileged_userns=0) or, in a container, a "
					      "seccomp profile that permits unshare and mount (README \"Renderers\")",
					      argv[0], sb_steps[step], gitops_strerror(msg[1]));
		goto out;
	}
	*out_pid = pid;
out:
	free(args);
	sb_plan_free(&p);
	return rc;
}

int mf_proc_run(gitops_buf *out, char *const argv[], char *const envp[], const char *cwd,
		int timeout_ms, size_t max_out, const struct mf_sandbox *sb)
{
	int op[2] = {-1, -1}, ep[2] = {-1, -1};
	if (pipe2(op, O_CLOEXEC) || pipe2(ep, O_CLOEXEC)) {
		int rc = gitops_error_set(GITOPS_EIO, "pipe: %s", gitops_strerror(errno));
		for (int i = 0; i < 2; i++) {
			if (op[i] >= 0)
				close(op[i]);
			if (ep[i] >= 0)
				close(ep[i]);
		}
		return rc;
	}
	/* renderers only ever run in their sandbox: there is no unconfined path to fall back to */
	assert(sb);
	pid_t pid = -1;
	int src = spawn_sandboxed(&pid, argv, envp, cwd, sb, op[1], ep[1]);
	close(op[1]);
	close(ep[1]);
	if (src) {
		close(op[0]);
		close(ep[0]);
		return src;
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
			rc = gitops_error_set(GITOPS_EIO, "poll: %s", gitops_strerror(errno));
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
