/* SPDX-License-Identifier: MIT */
/*
 * edgeid-cloud serve: the parent that checks, forks and supervises, and
 * the worker processes that serve. See serve.h for the behaviour.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include "cloud/serve.h"
#include "cloud/store/store.h"
#include "common/buf.h"
#include "common/fs.h"
#include "common/http_server.h"
#include "common/log.h"
#include "common/macro.h"

#define RESTART_DELAY_MIN_MS 100
#define RESTART_DELAY_MAX_MS 10000
/* A worker that ran this long was healthy: its next restart is quick. */
#define HEALTHY_RUN_MS 10000
#define SHUTDOWN_GRACE_MS 10000
#define MAX_CONNECTIONS_PER_WORKER 4096
#define ERRMSG_MAX 900

struct worker {
	size_t svc;
	unsigned index;
	pid_t pid;      /* 0 when not running */
	int ready_fd;   /* read end of the readiness pipe, -1 when closed */
	bool ready;     /* reported ready in this run */
	unsigned fails; /* deaths in a row without a healthy run */
	int64_t started_ms;
	int64_t restart_at_ms; /* 0: no restart scheduled */
	char msg[ERRMSG_MAX + 1];
	size_t msg_len;
};

struct supervisor {
	const struct cloud_setup *setup;
	SSL_CTX *tls[CLOUD_MAX_SERVICES];
	bool announced[CLOUD_MAX_SERVICES];
	struct worker *workers;
	size_t n_workers;
	int sigfd;
	sigset_t oldmask;
	bool starting;      /* not every service has announced readiness yet */
	bool shutting;      /* stop requested (or a startup failure) */
	bool failed;        /* a startup failure: exit 1 */
	int64_t kill_at_ms; /* SIGKILL what is left after the grace period */
	const char *pid_file;
	bool pid_written;
	char fail_msg[ERR_MSG_MAX];
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* "127.0.0.2:443" or "[::1]:443" */
static void format_listen(const struct cloud_listen *l, char *out, size_t n)
{
	if (strchr(l->host, ':'))
		snprintf(out, n, "[%s]:%u", l->host, (unsigned)l->port);
	else
		snprintf(out, n, "%s:%u", l->host, (unsigned)l->port);
}

/* --- checks before forking --------------------------------------------- */

static int load_tls(const struct cloud_service_instance *si, SSL_CTX **ret, struct err *e)
{
	const char *name = si->service->name;
	const char *cert_file = si->common.tls_cert_file, *key_file = si->common.tls_key_file;
	STACK_OF(X509) *chain = NULL;
	X509 *leaf = NULL;
	EVP_PKEY *key = NULL;
	BIO *bio = NULL;
	int r;

	bio = BIO_new_file(cert_file, "r");
	if (!bio) {
		r = err_set(e, -errno ? -errno : -EIO, "%s: TLS certificate %s: cannot read: %s",
			    name, cert_file, strerror(errno ? errno : EIO));
		goto out;
	}
	leaf = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	if (!leaf) {
		r = err_set(e, -EINVAL, "%s: TLS certificate %s: no PEM certificate in the file",
			    name, cert_file);
		goto out;
	}
	chain = sk_X509_new_null();
	if (!chain) {
		r = err_set(e, -ENOMEM, "out of memory");
		goto out;
	}
	for (;;) {
		X509 *c = PEM_read_bio_X509(bio, NULL, NULL, NULL);

		if (!c)
			break;
		if (sk_X509_push(chain, c) <= 0) {
			X509_free(c);
			r = err_set(e, -ENOMEM, "out of memory");
			goto out;
		}
	}
	ERR_clear_error();
	BIO_free(bio);
	bio = BIO_new_file(key_file, "r");
	if (!bio) {
		r = err_set(e, -errno ? -errno : -EIO, "%s: TLS key %s: cannot read: %s", name,
			    key_file, strerror(errno ? errno : EIO));
		goto out;
	}
	key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	if (!key) {
		r = err_set(e, -EINVAL,
			    "%s: TLS key %s: no unencrypted PEM private key in the file", name,
			    key_file);
		goto out;
	}
	r = http_server_tls_ctx_new(leaf, chain, key, HTTP_TLS_CLIENT_CERT_OPTIONAL, ret);
	if (r == -EINVAL)
		err_set(e, r, "%s: TLS key %s does not match the certificate %s", name, key_file,
			cert_file);
	else if (r < 0)
		err_set(e, r, "%s: cannot set up TLS: %s", name, strerror(-r));
out:
	ERR_clear_error();
	BIO_free(bio);
	X509_free(leaf);
	sk_X509_pop_free(chain, X509_free);
	EVP_PKEY_free(key);
	return r;
}

/* Bind each address once without SO_REUSEPORT: that fails when anything
 * (another edgeid-cloud included) already listens there, which the
 * workers' own SO_REUSEPORT binds would not notice. */
static int probe_listen(const char *svc, const struct cloud_listen *l, struct err *e)
{
	union {
		struct sockaddr sa;
		struct sockaddr_in in;
		struct sockaddr_in6 in6;
	} a = {0};
	_cleanup_close_ int fd = -1;
	socklen_t len;
	char where[80];
	int one = 1;

	format_listen(l, where, sizeof(where));
	if (inet_pton(AF_INET, l->host, &a.in.sin_addr) == 1) {
		a.in.sin_family = AF_INET;
		a.in.sin_port = htons(l->port);
		len = sizeof(a.in);
	} else if (inet_pton(AF_INET6, l->host, &a.in6.sin6_addr) == 1) {
		a.in6.sin6_family = AF_INET6;
		a.in6.sin6_port = htons(l->port);
		len = sizeof(a.in6);
	} else {
		return err_set(e, -EINVAL, "%s: %s: not a numeric address", svc, where);
	}
	fd = socket(a.sa.sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return err_set(e, -errno, "%s: %s: cannot create a socket: %s", svc, where,
			       strerror(errno));
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (a.sa.sa_family == AF_INET6)
		(void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, &a.sa, len) == 0 && listen(fd, 1) == 0)
		return 0;
	if (errno == EADDRINUSE)
		return err_set(e, -errno, "%s: cannot listen on %s: the address is already in use",
			       svc, where);
	if (errno == EACCES)
		return err_set(e, -errno,
			       "%s: cannot listen on %s: permission denied (ports below 1024 need "
			       "root or CAP_NET_BIND_SERVICE)",
			       svc, where);
	return err_set(e, -errno, "%s: cannot listen on %s: %s", svc, where, strerror(errno));
}

/* Many connections per worker need many descriptors. */
static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* --- the worker -------------------------------------------------------- */

struct worker_run {
	struct event_base *base;
};

static void worker_on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct worker_run *run = arg;

	(void)what;
	(void)sig;
	event_base_loopexit(run->base, NULL);
}

static void report(int fd, const char *text)
{
	size_t n = strlen(text);

	while (n > 0) {
		ssize_t w = write(fd, text, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		text += w;
		n -= (size_t)w;
	}
}

static _noreturn_ void worker_fail(int fd, const char *svc, unsigned index, const char *msg)
{
	char line[ERRMSG_MAX];

	snprintf(line, sizeof(line), "E%s", msg);
	report(fd, line);
	log_err("worker %s/%u: %s", svc, index, msg);
	exit(1);
}

static _noreturn_ void worker_main(const struct cloud_setup *s, size_t svc, unsigned index,
				   SSL_CTX *tls, int ready_fd)
{
	const struct cloud_service_instance *si = &s->services[svc];
	const char *name = si->service->name;
	struct http_server_config hcfg = {
	    .max_body = 1024 * 1024,
	    .idle_timeout_ms = 60000,
	    .request_timeout_ms = 20000,
	    .write_timeout_ms = 30000,
	    .max_connections = MAX_CONNECTIONS_PER_WORKER,
	    .reuseport = true,
	    .json_errors = true,
	};
	struct cloud_worker w = {.cfg = &s->cfg, .common = &si->common, .index = index};
	struct worker_run run = {0};
	struct event *sigterm = NULL, *sigint = NULL;
	struct err e = {0};
	struct rlimit rl;
	void *state = NULL;
	int r;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    rl.rlim_cur < (rlim_t)MAX_CONNECTIONS_PER_WORKER + 64)
		hcfg.max_connections = rl.rlim_cur > 128 ? (unsigned)(rl.rlim_cur - 64) : 64;

	r = store_open(s->cfg.store_url, &w.store, &e);
	if (r < 0) {
		char msg[ERRMSG_MAX];

		snprintf(msg, sizeof(msg), "cannot open the store: %s", err_msg(&e, r));
		worker_fail(ready_fd, name, index, msg);
	}
	w.base = run.base = event_base_new();
	if (!w.base)
		worker_fail(ready_fd, name, index, "cannot create an event loop");
	w.http = http_server_new(w.base, &hcfg);
	if (!w.http)
		worker_fail(ready_fd, name, index, "out of memory");
	for (size_t i = 0; i < si->common.n_listen; i++) {
		const struct cloud_listen *l = &si->common.listen[i];
		char where[80], msg[ERRMSG_MAX];

		r = http_server_listen_tcp(w.http, l->host, l->port, tls, NULL);
		if (r < 0) {
			format_listen(l, where, sizeof(where));
			snprintf(msg, sizeof(msg), "cannot listen on %s: %s", where, strerror(-r));
			worker_fail(ready_fd, name, index, msg);
		}
	}
	if (si->service->worker_init) {
		r = si->service->worker_init(&w, si->settings, &state, &e);
		if (r < 0)
			worker_fail(ready_fd, name, index, err_msg(&e, r));
	}
	sigterm = evsignal_new(w.base, SIGTERM, worker_on_signal, &run);
	sigint = evsignal_new(w.base, SIGINT, worker_on_signal, &run);
	if (!sigterm || !sigint || evsignal_add(sigterm, NULL) < 0 ||
	    evsignal_add(sigint, NULL) < 0)
		worker_fail(ready_fd, name, index, "cannot watch for signals");

	report(ready_fd, "R");
	close(ready_fd);
	log_debug("worker %s/%u: serving", name, index);
	event_base_dispatch(w.base);
	log_debug("worker %s/%u: stopping", name, index);

	http_server_free(w.http);
	if (si->service->worker_free)
		si->service->worker_free(state);
	event_free(sigterm);
	event_free(sigint);
	event_base_free(w.base);
	store_close(w.store);
	exit(0);
}

/* --- the supervisor ---------------------------------------------------- */

static int spawn(struct supervisor *sv, struct worker *wk)
{
	const struct cloud_service_instance *si = &sv->setup->services[wk->svc];
	int p[2];
	pid_t pid, parent = getpid();

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0) {
		int r = -errno;
		close(p[0]);
		close(p[1]);
		return r;
	}
	if (pid == 0) {
		static char ident[64];
		enum log_level lvl = log_get_level();

		close(p[0]);
		close(sv->sigfd);
		for (size_t i = 0; i < sv->n_workers; i++)
			if (sv->workers[i].ready_fd >= 0)
				close(sv->workers[i].ready_fd);
		/* A worker must not outlive its supervisor. */
		(void)prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(1);
		signal(SIGTERM, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		signal(SIGHUP, SIG_DFL);
		sigprocmask(SIG_SETMASK, &sv->oldmask, NULL);
		snprintf(ident, sizeof(ident), "edgeid-cloud %s/%u", si->service->name, wk->index);
		log_init(ident);
		log_set_level(lvl);
		worker_main(sv->setup, wk->svc, wk->index, sv->tls[wk->svc], p[1]);
	}
	close(p[1]);
	(void)fcntl(p[0], F_SETFL, O_NONBLOCK);
	wk->pid = pid;
	wk->ready_fd = p[0];
	wk->ready = false;
	wk->msg_len = 0;
	wk->msg[0] = '\0';
	wk->started_ms = now_ms();
	wk->restart_at_ms = 0;
	return 0;
}

static void begin_shutdown(struct supervisor *sv)
{
	if (sv->shutting)
		return;
	sv->shutting = true;
	sv->kill_at_ms = now_ms() + SHUTDOWN_GRACE_MS;
	for (size_t i = 0; i < sv->n_workers; i++) {
		sv->workers[i].restart_at_ms = 0;
		if (sv->workers[i].pid > 0)
			kill(sv->workers[i].pid, SIGTERM);
	}
}

static void startup_failed(struct supervisor *sv, const char *msg)
{
	if (!sv->failed) {
		sv->failed = true;
		snprintf(sv->fail_msg, sizeof(sv->fail_msg), "%s", msg);
	}
	begin_shutdown(sv);
}

static void write_pid_file(struct supervisor *sv)
{
	char text[32];
	struct err e = {0};

	if (!sv->pid_file || sv->pid_written)
		return;
	snprintf(text, sizeof(text), "%ld\n", (long)getpid());
	if (fs_write_atomic(sv->pid_file, text, strlen(text), 0644, FS_KEEP_OWNER, FS_KEEP_GROUP,
			    &e) < 0)
		log_warn("cannot write the pid file: %s", err_msg(&e, -EIO));
	else
		sv->pid_written = true;
}

/* Print the readiness line of every service whose workers are all ready. */
static void announce(struct supervisor *sv)
{
	const struct cloud_setup *s = sv->setup;
	bool all = true;

	for (size_t svc = 0; svc < s->n_services; svc++) {
		const struct cloud_service_common *c = &s->services[svc].common;
		_cleanup_buf_ struct buf line = {0};
		bool ready = true;

		if (sv->announced[svc])
			continue;
		for (size_t i = 0; i < sv->n_workers; i++)
			if (sv->workers[i].svc == svc && !sv->workers[i].ready)
				ready = false;
		if (!ready) {
			all = false;
			continue;
		}
		buf_init(&line, 4096);
		if (buf_printf(&line, "edgeid-cloud: %s ready on ",
			       s->services[svc].service->name) < 0)
			continue;
		for (size_t l = 0; l < c->n_listen; l++) {
			char where[80];

			format_listen(&c->listen[l], where, sizeof(where));
			if (buf_printf(&line, "%s%s", l ? ", " : "", where) < 0)
				continue;
		}
		if (buf_printf(&line, " (%u worker%s)\n", c->workers, c->workers == 1 ? "" : "s") <
		    0)
			continue;
		fputs(buf_str(&line), stdout);
		fflush(stdout);
		sv->announced[svc] = true;
	}
	if (all && sv->starting) {
		sv->starting = false;
		write_pid_file(sv);
	}
}

/* Read what a worker wrote on its readiness pipe. */
static void drain(struct supervisor *sv, struct worker *wk)
{
	char tmp[512];

	while (wk->ready_fd >= 0) {
		ssize_t n = read(wk->ready_fd, tmp, sizeof(tmp));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			close(wk->ready_fd);
			wk->ready_fd = -1;
			break;
		}
		for (ssize_t i = 0; i < n; i++) {
			if (wk->msg_len == 0 && tmp[i] == 'R' && !wk->ready) {
				wk->ready = true;
				if (!sv->starting)
					log_info("worker %s/%u (pid %ld) is serving again",
						 sv->setup->services[wk->svc].service->name,
						 wk->index, (long)wk->pid);
				continue;
			}
			if (wk->msg_len < ERRMSG_MAX)
				wk->msg[wk->msg_len++] = tmp[i];
		}
		wk->msg[wk->msg_len] = '\0';
	}
	announce(sv);
}

static void on_exit_status(struct supervisor *sv, struct worker *wk, int status)
{
	const char *name = sv->setup->services[wk->svc].service->name;
	const char *detail;
	char why[96];
	int64_t now = now_ms(), delay;

	drain(sv, wk);
	detail = wk->msg_len > 1 && wk->msg[0] == 'E' ? wk->msg + 1 : NULL;
	if (WIFEXITED(status))
		snprintf(why, sizeof(why), "exited with status %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(why, sizeof(why), "was killed by signal %d (%s)", WTERMSIG(status),
			 strsignal(WTERMSIG(status)));
	else
		snprintf(why, sizeof(why), "stopped (status 0x%x)", (unsigned)status);
	wk->pid = 0;
	if (wk->ready_fd >= 0) {
		close(wk->ready_fd);
		wk->ready_fd = -1;
	}
	if (sv->shutting) {
		log_debug("worker %s/%u %s", name, wk->index, why);
		return;
	}
	if (sv->starting && !wk->ready) {
		char msg[ERR_MSG_MAX];

		if (detail)
			snprintf(msg, sizeof(msg), "%s: %s", name, detail);
		else
			snprintf(msg, sizeof(msg), "%s: worker %u %s before it was ready", name,
				 wk->index, why);
		startup_failed(sv, msg);
		return;
	}
	if (now - wk->started_ms >= HEALTHY_RUN_MS)
		wk->fails = 0;
	delay = RESTART_DELAY_MIN_MS;
	for (unsigned i = 0; i < wk->fails && delay < RESTART_DELAY_MAX_MS; i++)
		delay *= 2;
	if (delay > RESTART_DELAY_MAX_MS)
		delay = RESTART_DELAY_MAX_MS;
	wk->fails++;
	wk->ready = false;
	wk->restart_at_ms = now + delay;
	log_warn("worker %s/%u %s%s%s; restarting it in %.1f s", name, wk->index, why,
		 detail ? ": " : "", detail ? detail : "", (double)delay / 1000.0);
}

static void reap(struct supervisor *sv)
{
	for (;;) {
		int status;
		pid_t pid = waitpid(-1, &status, WNOHANG);

		if (pid <= 0)
			return;
		for (size_t i = 0; i < sv->n_workers; i++)
			if (sv->workers[i].pid == pid)
				on_exit_status(sv, &sv->workers[i], status);
	}
}

static void on_signals(struct supervisor *sv)
{
	struct signalfd_siginfo si;

	while (read(sv->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGTERM:
		case SIGINT:
			if (!sv->shutting)
				log_info("%s: stopping every worker", strsignal((int)si.ssi_signo));
			begin_shutdown(sv);
			break;
		case SIGHUP:
			log_info("SIGHUP ignored: restart edgeid-cloud to apply a new config");
			break;
		default:
			break;
		}
	}
	reap(sv);
}

static size_t live_workers(const struct supervisor *sv)
{
	size_t n = 0;

	for (size_t i = 0; i < sv->n_workers; i++)
		n += sv->workers[i].pid > 0;
	return n;
}

static int supervise(struct supervisor *sv)
{
	struct pollfd *pfd;
	size_t *owner;

	pfd = calloc(sv->n_workers + 1, sizeof(*pfd));
	owner = calloc(sv->n_workers + 1, sizeof(*owner));
	if (!pfd || !owner) {
		free(pfd);
		free(owner);
		return -ENOMEM;
	}
	while (!sv->shutting || live_workers(sv) > 0) {
		int64_t now = now_ms(), wake = -1;
		size_t n = 0;
		int timeout;

		for (size_t i = 0; i < sv->n_workers; i++) {
			struct worker *wk = &sv->workers[i];

			if (wk->pid == 0 && wk->restart_at_ms && !sv->shutting) {
				if (wk->restart_at_ms <= now) {
					int r = spawn(sv, wk);
					if (r < 0) {
						log_err("cannot restart worker %s/%u: %s",
							sv->setup->services[wk->svc].service->name,
							wk->index, strerror(-r));
						wk->restart_at_ms = now + RESTART_DELAY_MAX_MS;
					} else {
						log_info("worker %s/%u restarted (pid %ld)",
							 sv->setup->services[wk->svc].service->name,
							 wk->index, (long)wk->pid);
					}
				}
				if (wk->restart_at_ms && (wake < 0 || wk->restart_at_ms < wake))
					wake = wk->restart_at_ms;
			}
		}
		if (sv->shutting) {
			if (now >= sv->kill_at_ms) {
				for (size_t i = 0; i < sv->n_workers; i++)
					if (sv->workers[i].pid > 0)
						kill(sv->workers[i].pid, SIGKILL);
				sv->kill_at_ms = now + SHUTDOWN_GRACE_MS;
			}
			wake = sv->kill_at_ms;
		}
		pfd[n++] = (struct pollfd){.fd = sv->sigfd, .events = POLLIN};
		for (size_t i = 0; i < sv->n_workers; i++) {
			if (sv->workers[i].ready_fd < 0)
				continue;
			owner[n] = i;
			pfd[n++] = (struct pollfd){.fd = sv->workers[i].ready_fd, .events = POLLIN};
		}
		timeout = wake < 0 ? -1 : (int)(wake > now ? wake - now : 0);
		if (poll(pfd, n, timeout) < 0 && errno != EINTR) {
			log_err("poll: %s", strerror(errno));
			begin_shutdown(sv);
			continue;
		}
		for (size_t i = 1; i < n; i++)
			if (pfd[i].revents)
				drain(sv, &sv->workers[owner[i]]);
		if (pfd[0].revents)
			on_signals(sv);
		else
			reap(sv);
	}
	free(pfd);
	free(owner);
	return 0;
}

int cloud_serve(const struct cloud_setup *s, const char *pid_file, struct err *e)
{
	struct supervisor sv = {.setup = s, .sigfd = -1, .starting = true, .pid_file = pid_file};
	sigset_t mask;
	size_t total = 0;
	int r;

	if (s->n_services == 0)
		return err_set(e, -EINVAL, "%s: no service to serve: add a [hub] or [dps] table",
			       s->cfg.path);

	/* The store: this also creates the database and its schema once,
	 * before many workers would race to. The handle must not cross fork. */
	{
		struct store *st = NULL;
		struct err se = {0};

		r = store_open(s->cfg.store_url, &st, &se);
		if (r < 0)
			return err_set(e, r, "cannot open the store of %s: %s", s->cfg.path,
				       err_msg(&se, r));
		store_close(st);
	}
	for (size_t i = 0; i < s->n_services; i++) {
		const struct cloud_service_common *c = &s->services[i].common;

		r = load_tls(&s->services[i], &sv.tls[i], e);
		if (r < 0)
			goto out;
		for (size_t l = 0; l < c->n_listen; l++) {
			r = probe_listen(s->services[i].service->name, &c->listen[l], e);
			if (r < 0)
				goto out;
		}
		total += c->workers;
	}
	raise_nofile();

	sv.workers = calloc(total, sizeof(*sv.workers));
	if (!sv.workers) {
		r = err_set(e, -ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < s->n_services; i++)
		for (unsigned w = 0; w < s->services[i].common.workers; w++)
			sv.workers[sv.n_workers++] =
			    (struct worker){.svc = i, .index = w, .ready_fd = -1};

	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &mask, &sv.oldmask) < 0) {
		r = err_set(e, -errno, "cannot block signals: %s", strerror(errno));
		goto out;
	}
	sv.sigfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sv.sigfd < 0) {
		r = err_set(e, -errno, "cannot watch for signals: %s", strerror(errno));
		goto out_mask;
	}
	for (size_t i = 0; i < sv.n_workers && !sv.shutting; i++) {
		r = spawn(&sv, &sv.workers[i]);
		if (r < 0) {
			char msg[128];

			snprintf(msg, sizeof(msg), "cannot start a worker: %s", strerror(-r));
			startup_failed(&sv, msg);
		}
	}
	r = supervise(&sv);
	if (r < 0)
		err_set(e, r, "cannot supervise the workers: %s", strerror(-r));
	else if (sv.failed)
		r = err_set(e, -EIO, "%s", sv.fail_msg);
	if (sv.pid_written)
		(void)unlink(pid_file);
	close(sv.sigfd);
out_mask:
	sigprocmask(SIG_SETMASK, &sv.oldmask, NULL);
out:
	for (size_t i = 0; i < sv.n_workers; i++)
		if (sv.workers[i].ready_fd >= 0)
			close(sv.workers[i].ready_fd);
	free(sv.workers);
	for (size_t i = 0; i < s->n_services; i++)
		SSL_CTX_free(sv.tls[i]);
	return r;
}
