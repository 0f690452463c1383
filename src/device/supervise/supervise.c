/* SPDX-License-Identifier: MIT */
/*
 * edgeidd supervise: the device daemons without systemd.
 *
 * It does for each daemon what its two systemd units do. Like the .socket
 * unit, it binds the daemon's socket (/run/aziot/NAME.sock, 0660, owned by
 * the daemon's user) and keeps it for as long as the daemon is wanted, so
 * a client's connection made while the daemon restarts waits for it
 * instead of failing. Like the .service unit, it runs the daemon (this
 * binary again, as edgeidd-NAME) as its own user with the socket passed
 * the systemd way (LISTEN_FDS), and restarts it when it dies, with a delay
 * that doubles while it keeps failing.
 *
 * A daemon counts as started when its socket answers an HTTP request: the
 * supervisor sends one as soon as the daemon is spawned, and it waits in
 * the socket's queue until the daemon serves. Daemons are started one at
 * a time in dependency order, each once the one before answered (or
 * failed), and stopped in the reverse order.
 *
 * Everything is one poll() loop: a signalfd for SIGCHLD, TERM, INT and
 * HUP, the control socket and its connections, each child's output pipe
 * and readiness probe. Requests to start and stop daemons (from signals,
 * from the control socket, and the first start) go through one queue of
 * jobs, run in order, so that a restart of everything and a request for
 * one daemon never interleave. What crosses to `edgeid system` is in
 * supervise_proto.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "common/cli_opts.h"
#include "common/fs.h"
#include "common/log.h"
#include "common/macro.h"
#include "common/peercred.h"
#include "device/daemon/daemon.h"
#include "device/supervise/supervise.h"
#include "device/supervise/supervise_internal.h"

#define SERVICES_MAX 8
#define JOBS_MAX 64
#define CONTROL_CONNS_MAX 8
/* How long a daemon may take to answer on its socket before the next one
 * is started anyway (as systemd's default TimeoutStartSec). Clients of a
 * slow daemon wait in its socket's queue meanwhile. */
#define START_TIMEOUT_MS 90000
/* SIGTERM, then SIGKILL after this (systemd's TimeoutStopSec is longer;
 * the daemons stop in milliseconds). */
#define STOP_TIMEOUT_MS 10000
/* A daemon that ran this long before it died was healthy: its restart
 * delay starts over. */
#define HEALTHY_RUN_MS 30000
#define PROBE_RETRY_MS 200
#define CONTROL_TIMEOUT_MS 5000
/* Failures in a row after which a crash loop is called one in the log. */
#define CRASH_LOOP_FAILS 5
#define ERROR_LINE_MAX 1024

static const char probe_request[] =
    "GET / HTTP/1.1\r\nHost: supervise\r\nConnection: close\r\n\r\n";

enum child_state {
	ST_DOWN,
	ST_STARTING,
	ST_RUNNING,
	ST_STOPPING,
	ST_RESTARTING,
};

static const char *const state_names[] = {
    [ST_DOWN] = "down",         [ST_STARTING] = "starting",     [ST_RUNNING] = "running",
    [ST_STOPPING] = "stopping", [ST_RESTARTING] = "restarting",
};

struct child {
	const struct supervise_service *svc;
	bool enabled;
	enum child_state state;
	bool want_up;
	bool stopped; /* down because it was asked to stop */
	pid_t pid;
	char ident[48]; /* edgeidd-NAME */
	char *sock_path, *status_path;
	int listen_fd, out_fd, probe_fd;
	char probe_buf[8];
	size_t probe_len;
	int64_t probe_retry_ms; /* 0: none pending */
	struct supervise_lines lines;
	struct supervise_log log;
	char run_error[ERROR_LINE_MAX]; /* last error record of this run */
	char run_raw[ERROR_LINE_MAX];   /* last line not written by the log module */
	char last_exit[96];
	char last_error[ERROR_LINE_MAX];
	unsigned restarts, fails;
	int64_t started_ms, restart_at_ms, kill_at_ms;
	time_t since, next_restart;
	bool switch_user;
	uid_t uid;
	gid_t gid;
	gid_t *groups;
	size_t n_groups;
};

enum job_type {
	JOB_START,
	JOB_STOP,
	JOB_STARTED, /* the first round of starts is done */
	JOB_EXIT,
};

struct job {
	enum job_type type;
	size_t child;
	uint64_t reply_to; /* control connection to answer, 0: none */
	bool begun;
	int64_t deadline_ms;
};

struct control_conn {
	int fd; /* -1: free slot */
	uint64_t id;
	char buf[SUPERVISE_CONTROL_LINE_MAX];
	size_t len;
	int64_t deadline_ms;
	bool waiting; /* the request was read; a job answers it */
};

struct supervisor {
	char *root;    /* NULL: "/" */
	char *run_dir; /* absolute */
	char *control_path, *pid_path;
	size_t log_size;
	bool foreground;
	pid_t self;
	struct child children[SERVICES_MAX];
	size_t n_children;
	int sigfd, control_fd, lock_fd;
	sigset_t oldmask;
	struct job jobs[JOBS_MAX];
	size_t job_head, n_jobs;
	struct control_conn conns[CONTROL_CONNS_MAX];
	uint64_t last_conn_id;
	bool started; /* the first round of starts is done */
	bool shutting_down;
	bool exit_now;
	int ready_fd; /* to the parent that waits while we detach; -1 */
	struct supervise_log own_log;
	FILE *own_log_stream;
	struct buf record;
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *level_name(enum log_level level)
{
	switch (level) {
	case LOG_LEVEL_ERR:
		return "error";
	case LOG_LEVEL_WARN:
		return "warning";
	case LOG_LEVEL_NOTICE:
		return "notice";
	case LOG_LEVEL_INFO:
		return "info";
	case LOG_LEVEL_DEBUG:
		return "debug";
	}
	return "info";
}

/* Log msg, and when it is about a daemon, put it in that daemon's log file
 * too, so `edgeid system logs NAME` tells the whole story. */
static void note(struct supervisor *sv, struct child *c, enum log_level level, const char *fmt, ...)
    _printf_(4, 5);
static void note(struct supervisor *sv, struct child *c, enum log_level level, const char *fmt, ...)
{
	char msg[2048], ts[32];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_msg(level, "%s", msg);
	if (!c || level > LOG_LEVEL_INFO)
		return;
	supervise_format_time(time(NULL), ts, sizeof(ts));
	buf_reset(&sv->record);
	if (buf_printf(&sv->record, "%s edgeidd-supervise[%ld] %s: %s\n", ts, (long)sv->self,
		       level_name(level), msg) == 0)
		(void)supervise_log_append(&c->log, sv->record.data, sv->record.len);
}

/* Tell the parent that waits while we detach (when there is one). */
static void tell_parent(struct supervisor *sv, const char *fmt, ...) _printf_(2, 3);
static void tell_parent(struct supervisor *sv, const char *fmt, ...)
{
	char msg[2048];
	va_list ap;
	int n;

	if (sv->ready_fd < 0)
		return;
	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n > 0)
		(void)!write(sv->ready_fd, msg, strnlen(msg, sizeof(msg)));
}

/* --- status files ---------------------------------------------------------- */

static void write_status(struct child *c)
{
	char since[32], next[32];
	_cleanup_free_ char *text = NULL;
	json_t *o;
	struct err e = {0};
	int r;

	supervise_format_time(c->since, since, sizeof(since));
	if (c->state == ST_RESTARTING)
		supervise_format_time(c->next_restart, next, sizeof(next));
	o = json_pack("{s:s, s:s, s:I, s:s, s:I, s:s?, s:s?, s:s?, s:b, s:s, s:s?}", "name",
		      c->svc->name, "state", state_names[c->state], "pid", (json_int_t)c->pid,
		      "since", since, "restarts", (json_int_t)c->restarts, "last_exit",
		      c->last_exit[0] ? c->last_exit : NULL, "last_error",
		      c->last_error[0] ? c->last_error : NULL, "next_restart",
		      c->state == ST_RESTARTING ? next : NULL, "stopped", c->stopped, "socket",
		      c->sock_path, "user", c->switch_user ? c->svc->user : NULL);
	if (!o) {
		log_err("%s: cannot build the status: out of memory", c->status_path);
		return;
	}
	text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (!text) {
		log_err("%s: cannot build the status: out of memory", c->status_path);
		return;
	}
	{
		size_t len = strlen(text);
		_cleanup_free_ char *line = malloc(len + 2);

		if (!line)
			return;
		memcpy(line, text, len);
		line[len] = '\n';
		line[len + 1] = '\0';
		r = fs_write_atomic(c->status_path, line, len + 1, 0644, FS_KEEP_OWNER,
				    FS_KEEP_GROUP, &e);
	}
	if (r < 0)
		log_err("%s", err_msg(&e, r));
}

static void set_state(struct supervisor *sv, struct child *c, enum child_state st)
{
	c->state = st;
	c->since = time(NULL);
	write_status(c);
}

/* --- sockets ------------------------------------------------------------ */

/* Whether something accepts connections on sa (a socket file left by a
 * process that is gone refuses them). */
static bool socket_in_use(const struct sockaddr_un *sa)
{
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return false;
	return connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0 || errno == EAGAIN;
}

static int bind_unix(const char *path, mode_t bind_umask, int *ret_fd, struct err *e)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	_cleanup_close_ int fd = -1;
	struct stat st;
	mode_t old;
	int r;

	if (strlen(path) >= sizeof(sa.sun_path))
		return err_set(e, -ENAMETOOLONG, "%s: a socket path must be shorter than %zu bytes",
			       path, sizeof(sa.sun_path));
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return err_set(e, -EEXIST, "%s exists and is not a socket; remove it",
				       path);
		if (socket_in_use(&sa))
			return err_set(e, -EADDRINUSE,
				       "%s: another process serves this socket (a daemon started "
				       "by systemd or by hand?); stop it first",
				       path);
		if (unlink(path) < 0)
			return err_set(e, -errno, "%s: cannot remove the old socket: %s", path,
				       strerror(errno));
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return err_set(e, -errno, "cannot create a socket: %s", strerror(errno));
	/* Nobody else can connect before the final mode is set. */
	old = umask(bind_umask);
	r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (r < 0)
		return err_set(e, -errno, "%s: cannot bind: %s", path, strerror(errno));
	if (listen(fd, SOMAXCONN) < 0)
		return err_set(e, -errno, "%s: cannot listen: %s", path, strerror(errno));
	*ret_fd = TAKE_FD(fd);
	return 0;
}

/* The daemon's socket, as its .socket unit makes it: the directory 0755,
 * the socket 0660 and owned by the daemon's user. */
static int open_listen(struct child *c, struct err *e)
{
	_cleanup_free_ char *dir = strdup(c->sock_path);
	_cleanup_close_ int fd = -1;
	char *slash;
	int r;

	if (!dir)
		return err_set(e, -ENOMEM, "out of memory");
	slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		r = fs_mkdir_p(dir, 0755, FS_KEEP_OWNER, FS_KEEP_GROUP, false, e);
		if (r < 0)
			return r;
	}
	r = bind_unix(c->sock_path, 0077, &fd, e);
	if (r < 0)
		return r;
	if (c->switch_user && chown(c->sock_path, c->uid, c->gid) < 0)
		return err_set(e, -errno, "%s: cannot give the socket to %s: %s", c->sock_path,
			       c->svc->user, strerror(errno));
	if (chmod(c->sock_path, 0660) < 0)
		return err_set(e, -errno, "%s: cannot set the socket's mode: %s", c->sock_path,
			       strerror(errno));
	c->listen_fd = TAKE_FD(fd);
	return 0;
}

static void close_listen(struct child *c)
{
	if (c->listen_fd < 0)
		return;
	close(c->listen_fd);
	c->listen_fd = -1;
	(void)unlink(c->sock_path);
}

/* --- the daemon's user ------------------------------------------------------ */

static int add_group(struct child *c, gid_t gid)
{
	gid_t *g;

	for (size_t i = 0; i < c->n_groups; i++)
		if (c->groups[i] == gid)
			return 0;
	g = reallocarray(c->groups, c->n_groups + 1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	c->groups = g;
	c->groups[c->n_groups++] = gid;
	return 0;
}

/* As root, a daemon runs as its aziot user when that user exists, with the
 * groups /etc/group gives it plus those of the sockets it calls. */
static int resolve_user(struct child *c, struct err *e)
{
	struct passwd pw, *pwr = NULL;
	char pwbuf[4096];
	int ng = 32;
	gid_t *groups = NULL;

	if (geteuid() != 0)
		return 0;
	if (getpwnam_r(c->svc->user, &pw, pwbuf, sizeof(pwbuf), &pwr) != 0 || !pwr) {
		log_notice("there is no user %s: %s runs as root", c->svc->user, c->svc->name);
		return 0;
	}
	for (;;) {
		gid_t *g = reallocarray(groups, (size_t)ng, sizeof(*g));
		int want = ng;

		if (!g) {
			free(groups);
			return err_set(e, -ENOMEM, "out of memory");
		}
		groups = g;
		if (getgrouplist(pw.pw_name, pw.pw_gid, groups, &want) >= 0) {
			ng = want;
			break;
		}
		if (want <= ng || want > 65536) {
			free(groups);
			return err_set(e, -E2BIG, "%s: cannot read the groups of the user",
				       c->svc->user);
		}
		ng = want;
	}
	c->groups = groups;
	c->n_groups = (size_t)ng;
	for (size_t i = 0; c->svc->groups[i]; i++) {
		struct group gr, *grr = NULL;
		char grbuf[4096];

		if (getgrnam_r(c->svc->groups[i], &gr, grbuf, sizeof(grbuf), &grr) != 0 || !grr)
			continue;
		if (add_group(c, gr.gr_gid) < 0)
			return err_set(e, -ENOMEM, "out of memory");
	}
	c->uid = pw.pw_uid;
	c->gid = pw.pw_gid;
	c->switch_user = true;
	return 0;
}

/* --- running a daemon ------------------------------------------------------ */

/* What a daemon gets of the supervisor's environment: what systemd would
 * give it (a unit starts with a clean environment) and the variables the
 * daemons and their libraries read. Nothing else, so that whatever the
 * shell that started the supervisor held (tokens, connection strings)
 * does not end up in every daemon's /proc/PID/environ. */
static bool inherited_env(const char *v)
{
	static const char *const names[] = {
	    "PATH",          "TZ",           "LANG",          "LANGUAGE",    "SSL_CERT_DIR",
	    "SSL_CERT_FILE", "OPENSSL_CONF", "SOFTHSM2_CONF", "https_proxy", "HTTPS_PROXY",
	    "http_proxy",    "HTTP_PROXY",   "no_proxy",      "NO_PROXY",    "all_proxy",
	    "ALL_PROXY",
	};
	/* AZIOT_*: aziot's log level and config paths; EDGEID_*: ours;
	 * TSS2_*: tpm2-tss's logging; SOFTHSM2_CONF: the PKCS#11 module the
	 * tests and docs use (with systemd, a unit's Environment= passes what
	 * another module needs); *SAN_OPTIONS: sanitizer builds. */
	static const char *const prefixes[] = {
	    "LC_", "AZIOT_", "EDGEID_", "TSS2_", "ASAN_OPTIONS=", "LSAN_OPTIONS=", "UBSAN_OPTIONS=",
	};
	size_t len = strcspn(v, "=");

	if (v[len] != '=')
		return false;
	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (strlen(names[i]) == len && strneq(v, names[i], len))
			return true;
	for (size_t i = 0; i < ARRAY_SIZE(prefixes); i++)
		if (strneq(v, prefixes[i], strlen(prefixes[i])))
			return true;
	return false;
}

static _noreturn_ void child_fail(const char *what, int err)
{
	dprintf(STDERR_FILENO, "edgeidd supervise: %s: %s\n", what, strerror(err));
	_exit(127);
}

/* In the forked child: the descriptors (stdin /dev/null, stdout and stderr
 * the pipe, the socket as fd 3), the user, then exec. */
static _noreturn_ void child_exec(struct supervisor *sv, struct child *c, int out_w, char **argv,
				  char **envp, char *listen_pid, size_t listen_pid_size)
{
	int nul, lfd, ofd, nfd;

	sigprocmask(SIG_SETMASK, &sv->oldmask, NULL);
	/* Its own session: a Ctrl-C at the supervisor's terminal reaches
	 * the supervisor, which stops the daemons in order. */
	(void)setsid();
	/* Every source above the targets 0..3 first, so that each dup2()
	 * below copies a different descriptor and clears close-on-exec. */
	nul = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (nul < 0)
		child_fail("/dev/null", errno);
	nfd = fcntl(nul, F_DUPFD_CLOEXEC, 10);
	lfd = fcntl(c->listen_fd, F_DUPFD_CLOEXEC, 10);
	ofd = fcntl(out_w, F_DUPFD_CLOEXEC, 10);
	if (nfd < 0 || lfd < 0 || ofd < 0)
		child_fail("cannot set up the descriptors", errno);
	if (dup2(nfd, STDIN_FILENO) < 0 || dup2(ofd, STDOUT_FILENO) < 0 ||
	    dup2(ofd, STDERR_FILENO) < 0 || dup2(lfd, 3) < 0)
		child_fail("cannot set up the descriptors", errno);
	if (chdir("/") < 0)
		child_fail("cannot change to /", errno);
	if (c->switch_user) {
		if (setgroups(c->n_groups, c->groups) < 0)
			child_fail("setgroups", errno);
		if (setgid(c->gid) < 0)
			child_fail("setgid", errno);
		if (setuid(c->uid) < 0)
			child_fail("setuid", errno);
	}
	/* Set after the user change, which clears it: the daemon is told
	 * when the supervisor dies, however it dies. */
	if (prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0) < 0)
		child_fail("PR_SET_PDEATHSIG", errno);
	if (getppid() != sv->self)
		_exit(1);
	snprintf(listen_pid, listen_pid_size, "LISTEN_PID=%ld", (long)getpid());
	execve("/proc/self/exe", argv, envp);
	child_fail("cannot run /proc/self/exe", errno);
}

static void probe_close(struct child *c)
{
	if (c->probe_fd >= 0) {
		close(c->probe_fd);
		c->probe_fd = -1;
	}
	c->probe_len = 0;
	c->probe_retry_ms = 0;
}

/* Ask the socket a question; the answer means the daemon serves. The
 * supervisor holds the listening socket, so the connection is accepted
 * into its queue at once and waits there for the daemon. */
static void probe_open(struct child *c)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd;

	probe_close(c);
	memcpy(sa.sun_path, c->sock_path, strlen(c->sock_path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    send(fd, probe_request, sizeof(probe_request) - 1, MSG_NOSIGNAL) !=
		(ssize_t)(sizeof(probe_request) - 1)) {
		if (fd >= 0)
			close(fd);
		c->probe_retry_ms = now_ms() + PROBE_RETRY_MS;
		return;
	}
	c->probe_fd = fd;
}

static int spawn(struct supervisor *sv, struct child *c, struct err *e)
{
	extern char **environ;
	char listen_pid[32] = "LISTEN_PID=";
	char listen_fds[] = "LISTEN_FDS=1";
	char *argv[4] = {c->ident, NULL, NULL, NULL};
	char root_opt[] = "--root";
	_cleanup_free_ char **envp = NULL;
	size_t n = 0, k = 0;
	int out[2];
	pid_t pid;
	int r;

	if (c->listen_fd < 0) {
		r = open_listen(c, e);
		if (r < 0)
			return r;
	}
	if (sv->root) {
		argv[1] = root_opt;
		argv[2] = sv->root;
	}
	while (environ[n])
		n++;
	envp = calloc(n + 3, sizeof(*envp));
	if (!envp)
		return err_set(e, -ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++)
		if (inherited_env(environ[i]))
			envp[k++] = environ[i];
	envp[k++] = listen_pid;
	envp[k++] = listen_fds;
	if (pipe2(out, O_CLOEXEC) < 0)
		return err_set(e, -errno, "cannot create a pipe: %s", strerror(errno));
	pid = fork();
	if (pid < 0) {
		r = -errno;
		close(out[0]);
		close(out[1]);
		return err_set(e, r, "cannot fork: %s", strerror(-r));
	}
	if (pid == 0)
		child_exec(sv, c, out[1], argv, envp, listen_pid, sizeof(listen_pid));
	close(out[1]);
	(void)fcntl(out[0], F_SETFL, O_NONBLOCK);
	c->out_fd = out[0];
	c->pid = pid;
	c->started_ms = now_ms();
	c->restart_at_ms = 0;
	c->stopped = false;
	c->lines.len = 0;
	c->run_error[0] = c->run_raw[0] = '\0';
	note(sv, c, LOG_LEVEL_INFO, "started %s (pid %ld%s%s)", c->svc->name, (long)pid,
	     c->switch_user ? ", user " : "", c->switch_user ? c->svc->user : "");
	set_state(sv, c, ST_STARTING);
	probe_open(c);
	return 0;
}

/* --- what the daemon says ---------------------------------------------------- */

struct line_ctx {
	struct supervisor *sv;
	struct child *c;
};

static void copy_clean(char *dst, size_t n, const char *src, size_t len)
{
	if (len >= n)
		len = n - 1;
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)src[i];

		dst[i] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
	}
	dst[len] = '\0';
}

static void on_line(void *userdata, const char *line, size_t len)
{
	struct line_ctx *lc = userdata;
	struct child *c = lc->c;
	time_t t;
	ssize_t off;

	if (supervise_log_record(line, len, c->ident, c->pid, time(NULL), &lc->sv->record) == 0)
		(void)supervise_log_append(&c->log, lc->sv->record.data, lc->sv->record.len);
	off = supervise_log_error_offset(line, len);
	if (off >= 0)
		copy_clean(c->run_error, sizeof(c->run_error), line + off, len - (size_t)off);
	else if (len > 0 && supervise_log_time(line, len, &t) < 0)
		copy_clean(c->run_raw, sizeof(c->run_raw), line, len);
}

/* Read what the daemon wrote; at the end of its output close the pipe. */
static void drain(struct supervisor *sv, struct child *c)
{
	struct line_ctx lc = {sv, c};
	char tmp[4096];

	while (c->out_fd >= 0) {
		ssize_t n = read(c->out_fd, tmp, sizeof(tmp));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			supervise_lines_flush(&c->lines, on_line, &lc);
			close(c->out_fd);
			c->out_fd = -1;
			return;
		}
		supervise_lines_feed(&c->lines, tmp, (size_t)n, on_line, &lc);
	}
}

static void probe_read(struct supervisor *sv, struct child *c)
{
	static const char http[] = "HTTP/1.";
	ssize_t n;

	n = read(c->probe_fd, c->probe_buf + c->probe_len, sizeof(c->probe_buf) - c->probe_len);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		/* Closed without an answer: ask again in a moment. */
		probe_close(c);
		c->probe_retry_ms = now_ms() + PROBE_RETRY_MS;
		return;
	}
	c->probe_len += (size_t)n;
	if (c->probe_len < sizeof(http) - 1)
		return;
	if (memcmp(c->probe_buf, http, sizeof(http) - 1) != 0) {
		note(sv, c, LOG_LEVEL_WARN, "%s answered on %s with something other than HTTP",
		     c->svc->name, c->sock_path);
		probe_close(c);
		c->probe_retry_ms = now_ms() + PROBE_RETRY_MS;
		return;
	}
	probe_close(c);
	if (c->state == ST_STARTING) {
		note(sv, c, LOG_LEVEL_INFO, "%s answers on %s", c->svc->name, c->sock_path);
		set_state(sv, c, ST_RUNNING);
	}
}

static void on_exit_status(struct supervisor *sv, struct child *c, int status)
{
	int64_t now = now_ms(), delay;
	bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
	const char *err;

	drain(sv, c);
	if (c->out_fd >= 0) {
		close(c->out_fd);
		c->out_fd = -1;
	}
	probe_close(c);
	supervise_exit_reason(status, c->last_exit, sizeof(c->last_exit));
	err = c->run_error[0] ? c->run_error : (!clean ? c->run_raw : "");
	snprintf(c->last_error, sizeof(c->last_error), "%s", err);
	c->pid = 0;

	if (sv->shutting_down || !c->want_up || c->state == ST_STOPPING) {
		c->stopped = true;
		note(sv, c, LOG_LEVEL_INFO, "%s stopped (%s)", c->svc->name, c->last_exit);
		set_state(sv, c, ST_DOWN);
		return;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 2) {
		/* Its command line is ours: trying again cannot help. */
		c->want_up = false;
		note(sv, c, LOG_LEVEL_ERR,
		     "%s %s%s%s: it refused its command line; not restarting it", c->svc->name,
		     c->last_exit, c->last_error[0] ? ": " : "", c->last_error);
		set_state(sv, c, ST_DOWN);
		return;
	}
	if (now - c->started_ms >= HEALTHY_RUN_MS)
		c->fails = 0;
	delay = supervise_backoff_ms(c->fails);
	c->fails++;
	c->restart_at_ms = now + delay;
	c->next_restart = time(NULL) + (time_t)((delay + 999) / 1000);
	if (c->fails >= CRASH_LOOP_FAILS)
		note(sv, c, LOG_LEVEL_ERR,
		     "%s %s%s%s; it keeps failing (%u times in a row): restarting it in %" PRId64
		     " s",
		     c->svc->name, c->last_exit, c->last_error[0] ? ": " : "", c->last_error,
		     c->fails, delay / 1000);
	else
		note(sv, c, LOG_LEVEL_WARN, "%s %s%s%s; restarting it in %" PRId64 " s",
		     c->svc->name, c->last_exit, c->last_error[0] ? ": " : "", c->last_error,
		     delay / 1000);
	set_state(sv, c, ST_RESTARTING);
}

static void reap(struct supervisor *sv)
{
	for (;;) {
		int status;
		pid_t pid = waitpid(-1, &status, WNOHANG);

		if (pid <= 0)
			return;
		for (size_t i = 0; i < sv->n_children; i++)
			if (sv->children[i].pid == pid)
				on_exit_status(sv, &sv->children[i], status);
	}
}

/* --- the control socket ------------------------------------------------------ */

static struct control_conn *conn_by_id(struct supervisor *sv, uint64_t id)
{
	for (size_t i = 0; i < CONTROL_CONNS_MAX && id; i++)
		if (sv->conns[i].fd >= 0 && sv->conns[i].id == id)
			return &sv->conns[i];
	return NULL;
}

static void conn_close(struct control_conn *cc)
{
	if (cc->fd >= 0)
		close(cc->fd);
	cc->fd = -1;
	cc->len = 0;
	cc->waiting = false;
}

static void send_line(int fd, const char *text)
{
	char line[SUPERVISE_CONTROL_LINE_MAX];
	int n = snprintf(line, sizeof(line), "%s\n", text);

	if (n >= (int)sizeof(line)) {
		n = (int)sizeof(line) - 1;
		line[n - 1] = '\n';
	}
	if (n > 0)
		(void)send(fd, line, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
}

/* Answer the request of connection id (if it is still there) and close it. */
static void reply(struct supervisor *sv, uint64_t id, const char *fmt, ...) _printf_(3, 4);
static void reply(struct supervisor *sv, uint64_t id, const char *fmt, ...)
{
	struct control_conn *cc = conn_by_id(sv, id);
	char text[SUPERVISE_CONTROL_LINE_MAX];
	va_list ap;

	if (!cc)
		return;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	send_line(cc->fd, text);
	conn_close(cc);
}

/* --- jobs --------------------------------------------------------------- */

static bool job_push(struct supervisor *sv, enum job_type type, size_t child, uint64_t reply_to)
{
	if (sv->n_jobs == JOBS_MAX)
		return false;
	sv->jobs[(sv->job_head + sv->n_jobs) % JOBS_MAX] =
	    (struct job){.type = type, .child = child, .reply_to = reply_to};
	sv->n_jobs++;
	return true;
}

static void job_pop(struct supervisor *sv)
{
	sv->job_head = (sv->job_head + 1) % JOBS_MAX;
	sv->n_jobs--;
}

static void start_failed(struct supervisor *sv, struct job *j, const char *why)
{
	struct child *c = &sv->children[j->child];

	if (j->reply_to)
		reply(sv, j->reply_to, "error %s", why);
	if (!sv->started) {
		log_warn("%s did not start: %s", c->svc->name, why);
		tell_parent(sv, "edgeidd supervise: %s did not start: %s\n", c->svc->name, why);
	}
}

/* Run the jobs at the head of the queue until one has to wait. */
static void run_jobs(struct supervisor *sv)
{
	while (sv->n_jobs > 0 && !sv->exit_now) {
		struct job *j = &sv->jobs[sv->job_head];
		struct child *c = &sv->children[j->child];
		int64_t now = now_ms();
		char why[ERROR_LINE_MAX + 128];

		switch (j->type) {
		case JOB_START:
			if (!j->begun) {
				struct err e = {0};
				int r;

				j->begun = true;
				j->deadline_ms = now + START_TIMEOUT_MS;
				c->want_up = true;
				c->fails = 0;
				if (c->pid == 0) {
					r = spawn(sv, c, &e);
					if (r < 0) {
						note(sv, c, LOG_LEVEL_ERR, "cannot start %s: %s",
						     c->svc->name, err_msg(&e, r));
						c->want_up = false;
						snprintf(c->last_error, sizeof(c->last_error), "%s",
							 err_msg(&e, r));
						set_state(sv, c, ST_DOWN);
						start_failed(sv, j, err_msg(&e, r));
						job_pop(sv);
						continue;
					}
				}
			}
			if (c->state == ST_RUNNING) {
				if (j->reply_to)
					reply(sv, j->reply_to, "ok");
			} else if (c->pid == 0) {
				snprintf(why, sizeof(why), "%s%s%s", c->last_exit,
					 c->last_error[0] ? ": " : "", c->last_error);
				start_failed(sv, j, why);
			} else if (now >= j->deadline_ms) {
				snprintf(why, sizeof(why), "it did not answer on %s within %d s",
					 c->sock_path, START_TIMEOUT_MS / 1000);
				note(sv, c, LOG_LEVEL_WARN, "%s: %s", c->svc->name, why);
				start_failed(sv, j, why);
			} else {
				return;
			}
			job_pop(sv);
			break;
		case JOB_STOP:
			if (!j->begun) {
				j->begun = true;
				c->want_up = false;
				c->restart_at_ms = 0;
				if (c->pid > 0) {
					note(sv, c, LOG_LEVEL_INFO, "stopping %s (pid %ld)",
					     c->svc->name, (long)c->pid);
					(void)kill(c->pid, SIGTERM);
					c->kill_at_ms = now + STOP_TIMEOUT_MS;
					set_state(sv, c, ST_STOPPING);
				}
			}
			if (c->pid > 0)
				return;
			close_listen(c);
			if (c->state != ST_DOWN || !c->stopped) {
				c->stopped = true;
				set_state(sv, c, ST_DOWN);
			}
			if (j->reply_to)
				reply(sv, j->reply_to, "ok");
			job_pop(sv);
			break;
		case JOB_STARTED:
			sv->started = true;
			if (sv->ready_fd >= 0) {
				tell_parent(sv, "\001");
				close(sv->ready_fd);
				sv->ready_fd = -1;
			}
			(void)daemon_notify("READY=1");
			log_info("every daemon has been started");
			job_pop(sv);
			break;
		case JOB_EXIT:
			if (j->reply_to)
				reply(sv, j->reply_to, "ok");
			sv->exit_now = true;
			job_pop(sv);
			return;
		}
	}
}

/* Drop the queue (answering whoever waits) and stop everything, in the
 * reverse of the start order; then exit. */
static void begin_shutdown(struct supervisor *sv, uint64_t reply_to)
{
	if (sv->shutting_down) {
		if (reply_to)
			reply(sv, reply_to, "error the supervisor is already stopping");
		return;
	}
	sv->shutting_down = true;
	(void)daemon_notify("STOPPING=1");
	while (sv->n_jobs > 0) {
		struct job *j = &sv->jobs[sv->job_head];

		if (j->reply_to)
			reply(sv, j->reply_to, "error the supervisor is stopping");
		job_pop(sv);
	}
	for (size_t i = sv->n_children; i-- > 0;)
		if (sv->children[i].enabled)
			(void)job_push(sv, JOB_STOP, i, 0);
	(void)job_push(sv, JOB_EXIT, 0, reply_to);
}

static void restart_all(struct supervisor *sv)
{
	if (sv->shutting_down)
		return;
	if (sv->n_jobs + 2 * sv->n_children > JOBS_MAX) {
		log_warn("SIGHUP ignored: too many requests are queued");
		return;
	}
	log_info("restarting every daemon");
	for (size_t i = sv->n_children; i-- > 0;)
		if (sv->children[i].enabled)
			(void)job_push(sv, JOB_STOP, i, 0);
	for (size_t i = 0; i < sv->n_children; i++)
		if (sv->children[i].enabled)
			(void)job_push(sv, JOB_START, i, 0);
}

static void enabled_names(struct supervisor *sv, char *buf, size_t n)
{
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < sv->n_children && used < n; i++) {
		int w;

		if (!sv->children[i].enabled)
			continue;
		w = snprintf(buf + used, n - used, "%s%s", used ? ", " : "",
			     sv->children[i].svc->name);
		if (w < 0)
			break;
		used += (size_t)w;
	}
}

static void control_request(struct supervisor *sv, struct control_conn *cc, char *line)
{
	char *name = strchr(line, ' ');
	int idx = -1;
	bool ok;

	cc->waiting = true;
	if (name)
		*name++ = '\0';
	if (streq(line, "shutdown") && !name) {
		log_info("stopping every daemon, as edgeid system stop asked");
		begin_shutdown(sv, cc->id);
		return;
	}
	if (!(streq(line, "start") || streq(line, "stop") || streq(line, "restart")) || !name) {
		reply(sv, cc->id,
		      "error unknown request: expected start NAME, stop NAME, restart NAME or "
		      "shutdown");
		return;
	}
	if (sv->shutting_down) {
		reply(sv, cc->id, "error the supervisor is stopping");
		return;
	}
	idx = supervise_service_find(name);
	if (idx < 0 || (size_t)idx >= sv->n_children || !sv->children[idx].enabled) {
		char names[128];

		enabled_names(sv, names, sizeof(names));
		reply(sv, cc->id, "error %s is not a daemon this supervisor runs (it runs %s)",
		      name, names);
		return;
	}
	if (sv->n_jobs + 2 > JOBS_MAX) {
		reply(sv, cc->id, "error busy: too many requests are queued");
		return;
	}
	if (streq(line, "start")) {
		ok = job_push(sv, JOB_START, (size_t)idx, cc->id);
	} else if (streq(line, "stop")) {
		ok = job_push(sv, JOB_STOP, (size_t)idx, cc->id);
	} else {
		ok = job_push(sv, JOB_STOP, (size_t)idx, 0) &&
		     job_push(sv, JOB_START, (size_t)idx, cc->id);
	}
	if (!ok)
		reply(sv, cc->id, "error busy: too many requests are queued");
}

static void control_read(struct supervisor *sv, struct control_conn *cc)
{
	ssize_t n = read(cc->fd, cc->buf + cc->len, sizeof(cc->buf) - 1 - cc->len);
	char *nl;

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		conn_close(cc);
		return;
	}
	cc->len += (size_t)n;
	cc->buf[cc->len] = '\0';
	nl = memchr(cc->buf, '\n', cc->len);
	if (!nl) {
		if (cc->len == sizeof(cc->buf) - 1) {
			send_line(cc->fd, "error request too long");
			conn_close(cc);
		}
		return;
	}
	*nl = '\0';
	if (nl > cc->buf && nl[-1] == '\r')
		nl[-1] = '\0';
	if (memchr(cc->buf, '\0', (size_t)(nl - cc->buf))) {
		send_line(cc->fd, "error malformed request");
		conn_close(cc);
		return;
	}
	control_request(sv, cc, cc->buf);
}

static void control_accept(struct supervisor *sv)
{
	struct control_conn *slot = NULL;
	struct peercred pc;
	int fd = accept4(sv->control_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (fd < 0)
		return;
	/* The socket is 0600 already; this also holds when its directory
	 * was made with looser modes. */
	if (peercred_get(fd, &pc) < 0 || (pc.uid != 0 && pc.uid != geteuid())) {
		send_line(fd, "error permission denied");
		close(fd);
		return;
	}
	for (size_t i = 0; i < CONTROL_CONNS_MAX; i++)
		if (sv->conns[i].fd < 0) {
			slot = &sv->conns[i];
			break;
		}
	if (!slot) {
		send_line(fd, "error busy: too many connections");
		close(fd);
		return;
	}
	*slot = (struct control_conn){
	    .fd = fd, .id = ++sv->last_conn_id, .deadline_ms = now_ms() + CONTROL_TIMEOUT_MS};
}

/* --- signals and the loop ---------------------------------------------------- */

static void on_signals(struct supervisor *sv)
{
	struct signalfd_siginfo si;

	while (read(sv->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGTERM:
		case SIGINT:
			if (sv->shutting_down) {
				log_warn("%s again: killing what is left",
					 strsignal((int)si.ssi_signo));
				for (size_t i = 0; i < sv->n_children; i++)
					if (sv->children[i].pid > 0)
						(void)kill(sv->children[i].pid, SIGKILL);
				break;
			}
			log_info("%s: stopping every daemon", strsignal((int)si.ssi_signo));
			begin_shutdown(sv, 0);
			break;
		case SIGHUP:
			restart_all(sv);
			break;
		default:
			break;
		}
	}
	reap(sv);
}

static void update_deadline(int64_t *wake, int64_t t)
{
	if (t > 0 && (*wake < 0 || t < *wake))
		*wake = t;
}

/* The timers: restarts after a delay, SIGKILL after a stop took too long,
 * probes to send again, control requests that never came. */
static int64_t run_timers(struct supervisor *sv)
{
	int64_t now = now_ms(), wake = -1;

	for (size_t i = 0; i < sv->n_children; i++) {
		struct child *c = &sv->children[i];

		if (c->state == ST_RESTARTING && c->want_up && !sv->shutting_down &&
		    c->restart_at_ms > 0) {
			if (c->restart_at_ms <= now) {
				struct err e = {0};
				int r;

				c->restarts++;
				r = spawn(sv, c, &e);
				if (r < 0) {
					int64_t delay = supervise_backoff_ms(c->fails++);

					note(sv, c, LOG_LEVEL_ERR,
					     "cannot restart %s: %s; trying again in %" PRId64 " s",
					     c->svc->name, err_msg(&e, r), delay / 1000);
					snprintf(c->last_error, sizeof(c->last_error), "%s",
						 err_msg(&e, r));
					c->restart_at_ms = now + delay;
					c->next_restart = time(NULL) + (time_t)(delay / 1000);
					set_state(sv, c, ST_RESTARTING);
				}
			}
			update_deadline(&wake, c->restart_at_ms);
		}
		if (c->state == ST_STOPPING && c->pid > 0) {
			if (c->kill_at_ms <= now) {
				note(sv, c, LOG_LEVEL_WARN,
				     "%s did not stop within %d s: killing it", c->svc->name,
				     STOP_TIMEOUT_MS / 1000);
				(void)kill(c->pid, SIGKILL);
				c->kill_at_ms = now + STOP_TIMEOUT_MS;
			}
			update_deadline(&wake, c->kill_at_ms);
		}
		if (c->pid > 0 && c->state == ST_STARTING && c->probe_fd < 0 &&
		    c->probe_retry_ms > 0) {
			if (c->probe_retry_ms <= now)
				probe_open(c);
			update_deadline(&wake, c->probe_retry_ms);
		}
	}
	for (size_t i = 0; i < sv->n_jobs; i++) {
		struct job *j = &sv->jobs[(sv->job_head + i) % JOBS_MAX];

		if (j->begun && j->type == JOB_START)
			update_deadline(&wake, j->deadline_ms);
	}
	for (size_t i = 0; i < CONTROL_CONNS_MAX; i++) {
		struct control_conn *cc = &sv->conns[i];

		if (cc->fd < 0 || cc->waiting)
			continue;
		if (cc->deadline_ms <= now)
			conn_close(cc);
		else
			update_deadline(&wake, cc->deadline_ms);
	}
	return wake;
}

enum poll_kind { P_SIGNALS, P_CONTROL, P_CONN, P_OUTPUT, P_PROBE };

static int loop(struct supervisor *sv)
{
	struct pollfd pfd[2 + CONTROL_CONNS_MAX + 2 * SERVICES_MAX];
	struct {
		enum poll_kind kind;
		size_t index;
	} what[ARRAY_SIZE(pfd)];

	while (!sv->exit_now) {
		int64_t wake, now;
		size_t n = 0;
		int timeout;

		run_jobs(sv);
		if (sv->exit_now)
			break;
		wake = run_timers(sv);
		/* Timers may have started or reaped something a job waits for. */
		run_jobs(sv);
		if (sv->exit_now)
			break;

		pfd[n] = (struct pollfd){.fd = sv->sigfd, .events = POLLIN};
		what[n++].kind = P_SIGNALS;
		pfd[n] = (struct pollfd){.fd = sv->control_fd, .events = POLLIN};
		what[n++].kind = P_CONTROL;
		for (size_t i = 0; i < CONTROL_CONNS_MAX; i++) {
			if (sv->conns[i].fd < 0 || sv->conns[i].waiting)
				continue;
			pfd[n] = (struct pollfd){.fd = sv->conns[i].fd, .events = POLLIN};
			what[n].kind = P_CONN;
			what[n++].index = i;
		}
		for (size_t i = 0; i < sv->n_children; i++) {
			if (sv->children[i].out_fd >= 0) {
				pfd[n] =
				    (struct pollfd){.fd = sv->children[i].out_fd, .events = POLLIN};
				what[n].kind = P_OUTPUT;
				what[n++].index = i;
			}
			if (sv->children[i].probe_fd >= 0) {
				pfd[n] = (struct pollfd){.fd = sv->children[i].probe_fd,
							 .events = POLLIN};
				what[n].kind = P_PROBE;
				what[n++].index = i;
			}
		}
		now = now_ms();
		timeout =
		    wake < 0
			? -1
			: (int)(wake > now ? (wake - now < INT_MAX ? wake - now : INT_MAX) : 0);
		if (poll(pfd, n, timeout) < 0) {
			if (errno == EINTR)
				continue;
			log_err("poll: %s", strerror(errno));
			return -errno;
		}
		/* Output and probes before signals: a daemon's last words are
		 * read before its exit is handled. */
		for (size_t i = 2; i < n; i++) {
			if (!pfd[i].revents)
				continue;
			switch (what[i].kind) {
			case P_CONN:
				if (sv->conns[what[i].index].fd == pfd[i].fd)
					control_read(sv, &sv->conns[what[i].index]);
				break;
			case P_OUTPUT:
				drain(sv, &sv->children[what[i].index]);
				break;
			case P_PROBE:
				if (sv->children[what[i].index].probe_fd == pfd[i].fd)
					probe_read(sv, &sv->children[what[i].index]);
				break;
			default:
				break;
			}
		}
		if (pfd[1].revents)
			control_accept(sv);
		if (pfd[0].revents)
			on_signals(sv);
	}
	return 0;
}

/* --- setting up ------------------------------------------------------------ */

static void usage(const char *prog, FILE *out)
{
	fprintf(out,
		"Usage: %s [OPTIONS]\n"
		"\n"
		"Start the device daemons, each as its own process and user, in order (keyd,\n"
		"certd, tpmd, identityd), and restart any that dies.\n"
		"\n"
		"Options:\n"
		"      --root DIR       run the daemons with --root DIR (also EDGEID_ROOT); their\n"
		"                       sockets and the run directory are under DIR too\n"
		"      --run-dir DIR    status, logs and control socket (default " SUPERVISE_RUN_DIR
		")\n"
		"      --only LIST      the daemons to run, separated by commas\n"
		"                       (default keyd,certd,tpmd,identityd)\n"
		"      --log-size SIZE  rotate a daemon's log file past SIZE bytes (K and M\n"
		"                       suffixes; default 1M)\n"
		"      --foreground     stay in the foreground (default: detach once the\n"
		"                       daemons have been started)\n"
		"  -h, --help           show this help\n"
		"\n"
		"Signals: TERM and INT stop the daemons and exit, HUP restarts them.\n"
		"'edgeid system status|logs|restart|stop' watch and control them.\n"
		"See edgeidd(8).\n",
		prog);
}

struct options {
	const char *root;
	const char *run_dir;
	const char *only;
	const char *log_size;
	bool foreground;
};

/* Returns 0, 1 (help printed), or -EINVAL (usage). */
static int parse_options(int argc, char **argv, struct options *o)
{
	enum { OPT_ROOT = 256, OPT_RUN_DIR, OPT_ONLY, OPT_LOG_SIZE, OPT_FOREGROUND };
	static const struct option longopts[] = {
	    {"root", required_argument, NULL, OPT_ROOT},
	    {"run-dir", required_argument, NULL, OPT_RUN_DIR},
	    {"only", required_argument, NULL, OPT_ONLY},
	    {"log-size", required_argument, NULL, OPT_LOG_SIZE},
	    {"foreground", no_argument, NULL, OPT_FOREGROUND},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int c;

	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_ROOT:
			o->root = optarg;
			break;
		case OPT_RUN_DIR:
			o->run_dir = optarg;
			break;
		case OPT_ONLY:
			o->only = optarg;
			break;
		case OPT_LOG_SIZE:
			o->log_size = optarg;
			break;
		case OPT_FOREGROUND:
			o->foreground = true;
			break;
		case 'h':
			usage(argv[0], stdout);
			return 1;
		default:
			return cli_opts_bad_option(argv);
		}
	}
	return cli_opts_no_operands(argc, argv);
}

/* path made absolute against the working directory (it need not exist). */
static char *absolute(const char *path)
{
	char cwd[PATH_MAX];

	if (path[0] == '/')
		return strdup(path);
	if (!getcwd(cwd, sizeof(cwd)))
		return NULL;
	return fs_path_join(cwd, path);
}

static char *under_root(const struct supervisor *sv, const char *path)
{
	return sv->root ? fs_path_join(sv->root, path) : strdup(path);
}

static int setup_children(struct supervisor *sv, const bool *enabled, struct err *e)
{
	const struct supervise_service *s;

	for (size_t i = 0; (s = supervise_service_at(i)) && i < SERVICES_MAX; i++) {
		struct child *c = &sv->children[i];
		_cleanup_free_ char *sock = NULL, *logp = NULL;
		int r;

		*c = (struct child){
		    .svc = s, .enabled = enabled[i], .listen_fd = -1, .out_fd = -1, .probe_fd = -1};
		sv->n_children = i + 1;
		snprintf(c->ident, sizeof(c->ident), "edgeidd-%s", s->name);
		if (asprintf(&sock, "%s/%s.sock", SUPERVISE_SOCKET_DIR, s->name) < 0 ||
		    asprintf(&c->status_path, "%s/%s/%s.json", sv->run_dir, SUPERVISE_STATUS_DIR,
			     s->name) < 0 ||
		    asprintf(&logp, "%s/%s/%s.log", sv->run_dir, SUPERVISE_LOG_DIR, s->name) < 0) {
			c->status_path = NULL;
			return err_set(e, -ENOMEM, "out of memory");
		}
		c->sock_path = under_root(sv, sock);
		if (!c->sock_path || supervise_log_init(&c->log, logp, sv->log_size) < 0)
			return err_set(e, -ENOMEM, "out of memory");
		if (!c->enabled) {
			/* What a previous run with other daemons left. */
			(void)unlink(c->status_path);
			continue;
		}
		r = resolve_user(c, e);
		if (r < 0)
			return r;
		c->since = time(NULL);
		write_status(c);
	}
	return 0;
}

/* One supervisor per run directory. */
static int take_lock(struct supervisor *sv, struct err *e)
{
	_cleanup_free_ char *path = fs_path_join(sv->run_dir, SUPERVISE_LOCK_FILE);
	struct flock lk = {.l_type = F_WRLCK, .l_whence = SEEK_SET};

	if (!path)
		return err_set(e, -ENOMEM, "out of memory");
	sv->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (sv->lock_fd < 0)
		return err_set(e, -errno, "%s: %s", path, strerror(errno));
	/* An open file description lock: it stays with the detached child
	 * after fork, and `edgeid system` can test it without taking it. */
	if (fcntl(sv->lock_fd, F_OFD_SETLK, &lk) < 0) {
		struct buf pid = {0};
		int r = -errno;
		bool busy = r == -EAGAIN || r == -EACCES;

		buf_init(&pid, 64);
		if (busy && fs_read_file(sv->pid_path, 64, &pid, NULL) == 0 && pid.len > 0) {
			pid.data[strcspn(pid.data, "\n")] = '\0';
			err_set(e, -EBUSY, "already running for %s (pid %s)", sv->run_dir,
				buf_str(&pid));
		} else if (busy) {
			err_set(e, -EBUSY, "already running for %s", sv->run_dir);
		} else {
			err_set(e, r, "%s: cannot lock: %s", path, strerror(-r));
		}
		buf_free(&pid);
		return busy ? -EBUSY : r;
	}
	return 0;
}

/* Detach: the parent waits until the first round of starts is done and
 * exits 0, or 1 when the supervisor could not start; what went wrong is
 * printed by the parent on its way out. Returns in the child only. */
static int detach(struct supervisor *sv, struct err *e)
{
	_cleanup_free_ char *logp = NULL;
	int p[2], nul;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		return err_set(e, -errno, "cannot create a pipe: %s", strerror(errno));
	pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return err_set(e, -errno, "cannot fork: %s", strerror(errno));
	}
	if (pid > 0) {
		char msg[16384];
		size_t len = 0;

		close(p[1]);
		for (;;) {
			ssize_t n = read(p[0], msg + len, sizeof(msg) - 1 - len);

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				break;
			len += (size_t)n;
			if (len == sizeof(msg) - 1)
				break;
		}
		if (len > 0 && msg[len - 1] == '\001') {
			(void)!write(STDERR_FILENO, msg, len - 1);
			_exit(0);
		}
		(void)!write(STDERR_FILENO, msg, len);
		_exit(1);
	}
	close(p[0]);
	sv->ready_fd = p[1];
	(void)setsid();
	if (chdir("/") < 0)
		return err_set(e, -errno, "cannot change to /: %s", strerror(errno));
	logp = fs_path_join(sv->run_dir, SUPERVISE_LOG_DIR "/supervise.log");
	if (!logp || supervise_log_init(&sv->own_log, logp, sv->log_size) < 0)
		return err_set(e, -ENOMEM, "out of memory");
	sv->own_log_stream = supervise_log_stream(&sv->own_log);
	if (sv->own_log_stream)
		log_set_stream(sv->own_log_stream);
	nul = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (nul < 0)
		return err_set(e, -errno, "/dev/null: %s", strerror(errno));
	(void)dup2(nul, STDIN_FILENO);
	(void)dup2(nul, STDOUT_FILENO);
	(void)dup2(nul, STDERR_FILENO);
	if (nul > STDERR_FILENO)
		close(nul);
	sv->self = getpid();
	return 0;
}

static int write_pid_file(struct supervisor *sv, struct err *e)
{
	char text[32];
	int n = snprintf(text, sizeof(text), "%ld\n", (long)sv->self);

	return fs_write_atomic(sv->pid_path, text, (size_t)n, 0644, FS_KEEP_OWNER, FS_KEEP_GROUP,
			       e);
}

static int setup(struct supervisor *sv, const struct options *o, struct err *e)
{
	bool enabled[SERVICES_MAX] = {false};
	_cleanup_free_ char *status_dir = NULL, *log_dir = NULL;
	const struct supervise_service *s;
	const char *root = o->root ? o->root : getenv("EDGEID_ROOT");
	sigset_t mask;
	int r;

	for (size_t i = 0; (s = supervise_service_at(i)) && i < SERVICES_MAX; i++)
		enabled[i] = s->by_default;
	if (o->only) {
		r = supervise_parse_only(o->only, enabled, SERVICES_MAX, e);
		if (r < 0)
			return r;
	}
	sv->log_size = SUPERVISE_LOG_SIZE_DEFAULT;
	if (o->log_size) {
		r = supervise_parse_size(o->log_size, &sv->log_size, e);
		if (r < 0)
			return r;
	}
	if (root && *root && !streq(root, "/")) {
		sv->root = realpath(root, NULL);
		if (!sv->root)
			return err_set(e, -errno, "--root %s: %s", root, strerror(errno));
	}
	sv->run_dir = o->run_dir ? absolute(o->run_dir) : under_root(sv, SUPERVISE_RUN_DIR);
	if (!sv->run_dir)
		return err_set(e, -ENOMEM, "out of memory");
	sv->control_path = fs_path_join(sv->run_dir, SUPERVISE_CONTROL_SOCKET);
	sv->pid_path = fs_path_join(sv->run_dir, SUPERVISE_PID_FILE);
	status_dir = fs_path_join(sv->run_dir, SUPERVISE_STATUS_DIR);
	log_dir = fs_path_join(sv->run_dir, SUPERVISE_LOG_DIR);
	if (!sv->control_path || !sv->pid_path || !status_dir || !log_dir)
		return err_set(e, -ENOMEM, "out of memory");

	umask(022);
	r = fs_mkdir_p(sv->run_dir, 0755, FS_KEEP_OWNER, FS_KEEP_GROUP, false, e);
	if (r >= 0)
		r = fs_mkdir_p(status_dir, 0755, FS_KEEP_OWNER, FS_KEEP_GROUP, false, e);
	if (r >= 0)
		r = fs_mkdir_p(log_dir, 0750, FS_KEEP_OWNER, FS_KEEP_GROUP, false, e);
	if (r < 0)
		return r;
	r = take_lock(sv, e);
	if (r < 0)
		return r;
	if (!o->foreground) {
		r = detach(sv, e);
		if (r < 0)
			return r;
	}

	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &mask, &sv->oldmask) < 0)
		return err_set(e, -errno, "cannot block signals: %s", strerror(errno));
	sv->sigfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sv->sigfd < 0)
		return err_set(e, -errno, "cannot watch for signals: %s", strerror(errno));

	r = bind_unix(sv->control_path, 0177, &sv->control_fd, e);
	if (r < 0)
		return r;
	(void)fcntl(sv->control_fd, F_SETFL, O_NONBLOCK);
	r = write_pid_file(sv, e);
	if (r < 0)
		return r;
	r = setup_children(sv, enabled, e);
	if (r < 0)
		return r;
	for (size_t i = 0; i < sv->n_children; i++)
		if (sv->children[i].enabled)
			(void)job_push(sv, JOB_START, i, 0);
	(void)job_push(sv, JOB_STARTED, 0, 0);
	return 0;
}

static void cleanup(struct supervisor *sv, bool remove_files)
{
	for (size_t i = 0; i < sv->n_children; i++) {
		struct child *c = &sv->children[i];

		if (c->out_fd >= 0)
			close(c->out_fd);
		probe_close(c);
		if (remove_files)
			close_listen(c);
		else if (c->listen_fd >= 0)
			close(c->listen_fd);
		supervise_log_done(&c->log);
		free(c->sock_path);
		free(c->status_path);
		free(c->groups);
	}
	for (size_t i = 0; i < CONTROL_CONNS_MAX; i++)
		conn_close(&sv->conns[i]);
	if (sv->control_fd >= 0) {
		close(sv->control_fd);
		if (remove_files) {
			(void)unlink(sv->control_path);
			(void)unlink(sv->pid_path);
		}
	}
	if (sv->sigfd >= 0)
		close(sv->sigfd);
	if (sv->ready_fd >= 0)
		close(sv->ready_fd);
	if (sv->own_log_stream) {
		log_set_stream(NULL);
		fclose(sv->own_log_stream);
	}
	supervise_log_done(&sv->own_log);
	if (sv->lock_fd >= 0)
		close(sv->lock_fd);
	buf_free(&sv->record);
	free(sv->control_path);
	free(sv->pid_path);
	free(sv->run_dir);
	free(sv->root);
}

int supervise_main(int argc, char **argv)
{
	struct supervisor sv = {.sigfd = -1, .control_fd = -1, .lock_fd = -1, .ready_fd = -1};
	struct options o = {0};
	struct err e = {0};
	bool owns_files = false;
	int r, status = 1;

	log_init("edgeidd-supervise");
	r = parse_options(argc, argv, &o);
	if (r != 0)
		return r > 0 ? 0 : 2;
	for (size_t i = 0; i < CONTROL_CONNS_MAX; i++)
		sv.conns[i].fd = -1;
	buf_init(&sv.record, SUPERVISE_LINE_MAX * 2);
	sv.self = getpid();

	r = setup(&sv, &o, &e);
	owns_files = sv.control_fd >= 0;
	if (r < 0) {
		if (r == -EINVAL && !sv.run_dir) {
			fprintf(stderr, "%s: %s\nTry '%s --help'.\n", argv[0], err_msg(&e, r),
				argv[0]);
			cleanup(&sv, false);
			return 2;
		}
		log_err("%s", err_msg(&e, r));
		tell_parent(&sv, "%s: %s\n", argv[0], err_msg(&e, r));
		goto out;
	}
	log_info("supervising from %s (pid %ld)", sv.run_dir, (long)sv.self);
	if (loop(&sv) == 0) {
		log_info("every daemon has stopped");
		status = 0;
	}
out:
	cleanup(&sv, owns_files);
	return status;
}
