/* SPDX-License-Identifier: MIT */
/*
 * identityd: aziot's Identity Service (aziot-compat.md §2.3) on the daemon
 * runtime. The device provisions itself (manual, or DPS with a symmetric
 * key, an X.509 certificate or the TPM), keeps the result in device_info,
 * and hands its identity to the callers its principals allow.
 *
 * Provisioning blocks on the network for up to cloud_timeout_sec per
 * request, so it never runs on the event loop: each job (identityd_job_run)
 * runs in a child process, which reports one JSON object on a pipe and
 * exits. The loop keeps serving meanwhile, so that the state and the last
 * error can be read at any time (GET /identities/provisioning/status, an
 * edgeid addition). A shutdown kills the child; nothing it half did
 * matters, because only the parent writes device_info.
 *
 * Where it differs from aziot, on purpose:
 *   - a failed provisioning does not end the process (aziot exits and is
 *     restarted by systemd every 5 s, issue #613): it is logged as one
 *     sentence, kept for the status call, and retried with exponential
 *     back-off (2 s doubling up to 5 min) where retrying can help; what
 *     only someone in the cloud can fix (a disabled enrollment, a
 *     registration DPS does not accept yet) is retried no more often than
 *     every 30 s; an unknown ID scope or bad settings are not retried
 *     until the settings change or the operator reprovisions;
 *   - changed provisioning settings (ID scope, registration id, ...) lead
 *     to a new registration, at start-up and on SIGHUP (iotedge#7013);
 *   - a refused caller gets 403 "authorization error" (aziot: 401), like
 *     keyd's refusals.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/rand.h>

#include "common/fs.h"
#include "common/http_server.h"
#include "common/json.h"
#include "common/log.h"
#include "device/identityd/identityd.h"
#include "device/identityd/identityd_private.h"

#define RESULT_MAX (64 * 1024)
#define BACKOFF_FIRST_MS 2000u
#define BACKOFF_MAX_MS (300u * 1000u)
/* A refusal is undone by someone in the cloud, not by time: asking again
 * sooner only loads DPS. */
#define BACKOFF_REFUSED_MIN_MS (30u * 1000u)
/* A caller asking for the device identity while a job runs waits for its
 * outcome at most this long (aziot's clients give up after 30 s). */
#define DEVICE_WAIT_MS 20000

enum wait_kind { WAIT_DEVICE, WAIT_REPROVISION };

struct identityd;

struct waiter {
	struct waiter *next;
	struct identityd *st;
	struct http_request *req;
	enum wait_kind kind;
	uint64_t wanted; /* answered once job number `wanted` is done */
	struct event *timeout;
};

struct identityd {
	struct daemon *d;
	struct identityd_settings *s;

	/* The identity, when there is one. */
	bool have_device;
	struct identityd_job_result device;
	char *registration_id; /* the last one a job used (DPS) */

	/* What happened last. */
	char *last_error; /* a failure, or a warning next to an identity */
	bool last_dps_error;
	enum identityd_fault last_fault; /* of the last failed job */
	unsigned failures;               /* consecutive failed jobs */
	bool will_retry;                 /* the last failure is retried (now or after a back-off) */
	time_t last_attempt, last_success, next_retry;

	/* The job in progress. */
	pid_t child;
	int child_fd;
	struct event *child_ev;
	struct buf child_out;
	bool child_force;
	uint64_t started, done;
	/* Asked for while a job runs: start another when it ends. */
	bool pending, pending_force, pending_clear;
	struct event *retry_ev;
	bool retry_force;

	struct waiter *waiters;
};

static int start_job(struct identityd *st, bool force_dps, bool clear);

/* --- time ---------------------------------------------------------------- */

static json_t *json_time(time_t t)
{
	struct tm tm;
	char buf[32];

	if (!t || !gmtime_r(&t, &tm) || strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		return json_null();
	return json_string(buf);
}

/* --- principals (aziot's SettingsAuthenticator and SettingsAuthorizer) --- */

enum caller {
	CALLER_UNKNOWN,
	CALLER_ROOT,
	CALLER_DAEMON, /* a principal without idtype (IoT Edge) */
	CALLER_HOST,   /* a principal with idtype */
};

static enum caller authenticate(const struct identityd *st, uid_t uid,
				const struct identityd_principal **ret)
{
	*ret = NULL;
	for (size_t i = 0; i < st->s->n_principals; i++)
		if (st->s->principals[i].uid == uid) {
			*ret = &st->s->principals[i];
			return (*ret)->has_idtype ? CALLER_HOST : CALLER_DAEMON;
		}
	return uid == 0 ? CALLER_ROOT : CALLER_UNKNOWN;
}

static bool may_get_device(const struct identityd *st, uid_t uid)
{
	const struct identityd_principal *p;

	switch (authenticate(st, uid, &p)) {
	case CALLER_ROOT:
	case CALLER_DAEMON:
		return true;
	case CALLER_HOST:
		return p->idtype & IDENTITYD_IDTYPE_DEVICE;
	case CALLER_UNKNOWN:
		break;
	}
	return false;
}

static bool may_reprovision(const struct identityd *st, uid_t uid)
{
	const struct identityd_principal *p;
	enum caller c = authenticate(st, uid, &p);

	return c == CALLER_ROOT || c == CALLER_DAEMON;
}

/* A refusal says nothing about the identity or whether there is one. */
static int refuse(struct daemon_request *req)
{
	return daemon_respond_error(req, 403, "authorization error");
}

/* --- answers ------------------------------------------------------------- */

static json_t *device_identity_json(const struct identityd *st)
{
	const struct identityd_job_result *dv = &st->device;
	json_t *auth;

	switch (st->s->auth) {
	case IDENTITYD_AUTH_SAS:
		auth = json_pack("{s:s,s:s}", "type", "sas", "keyHandle",
				 dv->key_handle ? dv->key_handle : "");
		break;
	case IDENTITYD_AUTH_X509:
		auth = json_pack("{s:s,s:s,s:s}", "type", "x509", "keyHandle",
				 dv->key_handle ? dv->key_handle : "", "certId", st->s->cert_id);
		break;
	default:
		auth = json_pack("{s:s}", "type", "tpm");
		break;
	}
	if (!auth)
		return NULL;
	return json_pack("{s:s,s:{s:s,s:s,s:s,s:o}}", "type", "aziot", "spec", "hubName",
			 dv->hub_name, "gatewayHost", dv->gateway, "deviceId", dv->device_id,
			 "auth", auth);
}

static void log_answer(int status)
{
	log_info("--> %d %s", status, http_status_text(status));
}

static int answer_json(struct http_request *req, int status, json_t *body)
{
	int r;

	log_answer(status);
	r = body ? http_respond_json(req, status, body)
		 : http_respond_message(req, 500, "internal error");
	json_decref(body);
	return r;
}

static int answer_error(struct http_request *req, int status, const char *first, const char *cause)
{
	_cleanup_free_ char *msg = NULL;

	if (cause && asprintf(&msg, "%s\ncaused by: %s", first, cause) < 0)
		msg = NULL;
	log_answer(status);
	log_info("!!! %s", first);
	if (cause)
		log_info("!!! caused by: %s", cause);
	return http_respond_message(req, status, msg ? msg : first);
}

/* The device identity request, now: the identity, or why there is none. */
static int answer_device(struct identityd *st, struct http_request *req)
{
	if (st->have_device)
		return answer_json(req, 200, device_identity_json(st));
	return answer_error(req, 400, "device identity not found",
			    st->s->source == IDENTITYD_SOURCE_NONE
				? "provisioning.source is \"none\""
			    : st->child > 0 ? "provisioning is in progress"
					    : st->last_error);
}

static int answer_reprovision(struct identityd *st, struct http_request *req)
{
	if (st->have_device || st->s->source == IDENTITYD_SOURCE_NONE) {
		log_answer(204);
		return http_respond(req, 204, NULL, NULL, 0);
	}
	return answer_error(req, 404,
			    st->last_dps_error ? "DPS client error" : "provisioning failed",
			    st->last_error ? st->last_error : "no identity");
}

/* --- waiting callers ----------------------------------------------------- */

static void waiter_unlink(struct identityd *st, struct waiter *w)
{
	for (struct waiter **p = &st->waiters; *p; p = &(*p)->next)
		if (*p == w) {
			*p = w->next;
			break;
		}
	if (w->timeout)
		event_free(w->timeout);
	free(w);
}

static void waiter_answer(struct identityd *st, struct waiter *w)
{
	struct http_request *req = w->req;
	enum wait_kind kind = w->kind;

	waiter_unlink(st, w);
	if (kind == WAIT_DEVICE)
		answer_device(st, req);
	else
		answer_reprovision(st, req);
}

static void on_waiter_abort(struct http_request *req, void *userdata)
{
	struct waiter *w = userdata;

	waiter_unlink(w->st, w);
	/* Finishing the request frees it; the client is gone. */
	(void)http_respond_message(req, 500, "internal error");
}

static void on_waiter_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct waiter *w = arg;

	(void)fd, (void)what;
	waiter_answer(w->st, w);
}

static int wait_for(struct identityd *st, struct daemon_request *dreq, enum wait_kind kind,
		    uint64_t wanted)
{
	struct http_request *req = daemon_request_http(dreq);
	struct waiter *w = calloc(1, sizeof(*w));

	if (!w)
		return -ENOMEM;
	*w = (struct waiter){.st = st, .req = req, .kind = kind, .wanted = wanted};
	if (kind == WAIT_DEVICE) {
		struct timeval tv = {.tv_sec = DEVICE_WAIT_MS / 1000};

		w->timeout = evtimer_new(daemon_event_base(st->d), on_waiter_timeout, w);
		if (!w->timeout || evtimer_add(w->timeout, &tv) < 0) {
			if (w->timeout)
				event_free(w->timeout);
			free(w);
			return -ENOMEM;
		}
	}
	if (http_request_defer(req, on_waiter_abort, w) < 0) {
		if (w->timeout)
			event_free(w->timeout);
		free(w);
		return -EINVAL;
	}
	w->next = st->waiters;
	st->waiters = w;
	return 0;
}

static void answer_waiters(struct identityd *st)
{
	struct waiter *w = st->waiters, *next;

	for (; w; w = next) {
		next = w->next;
		if (w->wanted <= st->done)
			waiter_answer(st, w);
	}
}

/* --- jobs ------------------------------------------------------------------- */

static void set_last_error(struct identityd *st, const char *msg)
{
	free(st->last_error);
	st->last_error = msg ? strdup(msg) : NULL;
}

/* The wait after the failures-th failure in a row of the given fault. */
static unsigned backoff_ms(unsigned failures, enum identityd_fault fault)
{
	unsigned ms = BACKOFF_FIRST_MS;
	uint32_t r = 0;

	for (unsigned i = 1; i < failures && ms < BACKOFF_MAX_MS; i++)
		ms *= 2;
	if (ms > BACKOFF_MAX_MS)
		ms = BACKOFF_MAX_MS;
	if (fault == IDENTITYD_FAULT_REFUSED && ms < BACKOFF_REFUSED_MIN_MS)
		ms = BACKOFF_REFUSED_MIN_MS;
	/* Up to a fifth more, so that a fleet that lost its DPS at once does
	 * not come back at once. */
	if (RAND_bytes((unsigned char *)&r, sizeof(r)) == 1)
		ms += r % (ms / 5 + 1);
	return ms;
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
	struct identityd *st = arg;

	(void)fd, (void)what;
	st->next_retry = 0;
	if (start_job(st, st->retry_force, false) < 0)
		log_err("cannot start provisioning again: out of resources");
}

static void schedule_retry(struct identityd *st, bool force)
{
	unsigned ms = backoff_ms(st->failures, st->last_fault);
	struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};

	if (!st->retry_ev)
		st->retry_ev = evtimer_new(daemon_event_base(st->d), on_retry, st);
	if (!st->retry_ev || evtimer_add(st->retry_ev, &tv) < 0) {
		log_err("cannot schedule another provisioning attempt");
		return;
	}
	st->retry_force = force;
	st->next_retry = time(NULL) + (time_t)((ms + 999) / 1000);
	log_info("trying again in %u s (%u failed attempt%s so far)", (ms + 999) / 1000,
		 st->failures, st->failures == 1 ? "" : "s");
}

static void persist(struct identityd *st)
{
	struct identityd_device_info di = {
	    .hub_name = st->device.hub_name,
	    .local_gateway_hostname = st->device.gateway,
	    .device_id = st->device.device_id,
	};
	char digest[65];
	struct err e = {0};
	int r;

	r = identityd_device_info_write(st->s->homedir, &di, &e);
	if (r >= 0 && identityd_settings_provisioning_digest(st->s, digest) >= 0)
		r = identityd_digest_write(st->s->homedir, digest, &e);
	if (r < 0)
		log_err("cannot save the provisioning result: %s", err_msg(&e, r));
}

static void job_done(struct identityd *st, struct identityd_job_result *res, bool force)
{
	bool retry;

	st->done = st->started;
	st->last_attempt = time(NULL);
	if (res->registration_id) {
		free(st->registration_id);
		st->registration_id = TAKE_PTR(res->registration_id);
	}
	if (res->ok) {
		identityd_job_result_clear(&st->device);
		st->device = *res;
		*res = (struct identityd_job_result){0};
		st->have_device = true;
		st->failures = 0;
		st->will_retry = false;
		st->last_fault = IDENTITYD_FAULT_NONE;
		st->last_success = st->last_attempt;
		st->last_dps_error = st->device.dps_error;
		set_last_error(st, st->device.error);
		persist(st);
		log_info("provisioned: device '%s' in hub %s (%s)%s", st->device.device_id,
			 st->device.hub_name,
			 st->device.from_dps                        ? "assigned by DPS"
			 : st->s->source == IDENTITYD_SOURCE_MANUAL ? "from the settings"
								    : "from device_info",
			 st->device.hub_verified ? ", accepted by the hub" : "");
	} else if (st->s->source == IDENTITYD_SOURCE_NONE) {
		st->have_device = false;
		st->will_retry = false;
	} else {
		const char *msg = res->error ? res->error : "provisioning failed";
		/* The same failure again is no news: logged once at error level,
		 * then at info with the count. */
		bool repeated = st->failures > 0 && st->last_error && streq(st->last_error, msg);

		st->have_device = false;
		identityd_job_result_clear(&st->device);
		st->failures++;
		st->last_dps_error = res->dps_error;
		st->last_fault = res->fault;
		set_last_error(st, msg);
		if (repeated)
			log_info("attempt %u failed the same way: %s", st->failures, msg);
		else
			log_err("%s", msg);
		retry = res->fault != IDENTITYD_FAULT_PERMANENT;
		st->will_retry = retry;
		if (retry && !st->pending)
			schedule_retry(st, force);
		else if (!retry)
			log_notice("not trying again: fix the settings (identityd registers again "
				   "when they change) or the cloud, then run `edgeid system "
				   "reprovision`");
	}
	answer_waiters(st);
	if (st->pending) {
		bool f = st->pending_force, c = st->pending_clear;

		st->pending = st->pending_force = st->pending_clear = false;
		if (start_job(st, f, c) < 0)
			log_err("cannot start provisioning: out of resources");
	}
}

static void child_finished(struct identityd *st)
{
	struct identityd_job_result res = {0};
	_cleanup_json_ json_t *j = NULL;
	struct err e = {0};
	int status = 0, r;
	bool force = st->child_force;

	event_free(st->child_ev);
	st->child_ev = NULL;
	close(st->child_fd);
	st->child_fd = -1;
	while (waitpid(st->child, &status, 0) < 0 && errno == EINTR)
		;
	st->child = 0;
	r = json_parse(st->child_out.data ? st->child_out.data : "", st->child_out.len, 0, &j, &e);
	if (r >= 0)
		r = identityd_job_result_from_json(j, &res, &e);
	buf_reset(&st->child_out);
	if (r < 0) {
		char why[128];

		if (WIFSIGNALED(status))
			snprintf(why, sizeof(why), "killed by signal %d", WTERMSIG(status));
		else
			snprintf(why, sizeof(why), "exit status %d", WEXITSTATUS(status));
		res = (struct identityd_job_result){.fault = IDENTITYD_FAULT_LOCAL};
		if (asprintf(&res.error, "the provisioning process failed (%s)", why) < 0)
			res.error = NULL;
	}
	job_done(st, &res, force);
	identityd_job_result_clear(&res);
}

static void on_child_output(evutil_socket_t fd, short what, void *arg)
{
	struct identityd *st = arg;
	char chunk[4096];
	ssize_t n;

	(void)what;
	for (;;) {
		n = read(fd, chunk, sizeof(chunk));
		if (n > 0) {
			if (buf_append(&st->child_out, chunk, (size_t)n) < 0) {
				/* Oversized: treat as garbage; the parse fails. */
				buf_reset(&st->child_out);
			}
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		break; /* EOF, or an error: the child is done either way */
	}
	explicit_bzero(chunk, sizeof(chunk));
	child_finished(st);
}

/* In the child: do the job, write the result, exit. Never returns. */
_noreturn_ static void child_main(struct identityd *st, const struct identityd_job *job, int fd)
{
	struct identityd_job_result res;
	_cleanup_free_ char *text = NULL;
	json_t *j;
	size_t off = 0, len;

	identityd_job_run(st->s, job, &res);
	j = identityd_job_result_to_json(&res);
	text = j ? json_dump_compact(j) : NULL;
	len = text ? strlen(text) : 0;
	while (off < len) {
		ssize_t n = write(fd, text + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	_exit(text ? 0 : 1);
}

/* The job's input: device_info, unless it is to be ignored. */
static void prepare_job(struct identityd *st, bool *force_dps, struct identityd_job *job)
{
	struct err e = {0};
	char want[65], have[65];
	int r;

	*job = (struct identityd_job){.force_dps = *force_dps};
	if (st->s->source != IDENTITYD_SOURCE_DPS)
		return;
	r = identityd_device_info_read(st->s->homedir, &job->backup, &e);
	if (r == -EBADMSG) {
		struct err e2 = {0};

		log_warn("%s; removing it", err_msg(&e, r));
		if (identityd_device_info_remove(st->s->homedir, &e2) < 0)
			log_err("%s", err_msg(&e2, -EIO));
		return;
	}
	if (r < 0 && r != -ENOENT)
		log_warn("cannot read device_info: %s", err_msg(&e, r));
	if (r != 0)
		return;
	job->have_backup = true;
	/* Registered with other settings than these: register again. */
	if (!*force_dps && identityd_settings_provisioning_digest(st->s, want) >= 0 &&
	    identityd_digest_read(st->s->homedir, have, NULL) >= 0 && !streq(want, have)) {
		log_notice("the provisioning settings changed since device '%s' was provisioned; "
			   "registering again",
			   job->backup.device_id);
		*force_dps = true;
		job->force_dps = true;
	}
}

static int spawn(struct identityd *st, const struct identityd_job *job, bool force)
{
	pid_t pid;
	int fd, r;

	r = identityd_fork_reporter(&pid, &fd);
	if (r < 0)
		return r;
	if (r == 0)
		child_main(st, job, fd);
	st->child = pid;
	st->child_fd = fd;
	st->child_force = force;
	st->child_ev =
	    event_new(daemon_event_base(st->d), fd, EV_READ | EV_PERSIST, on_child_output, st);
	if (!st->child_ev || event_add(st->child_ev, NULL) < 0) {
		kill(pid, SIGKILL);
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		if (st->child_ev)
			event_free(st->child_ev);
		st->child_ev = NULL;
		close(fd);
		st->child = 0;
		st->child_fd = -1;
		return -ENOMEM;
	}
	return 0;
}

/* Start a job now, or after the one in progress. clear: forget the
 * identity first (the reprovision call). Returns the number of the job
 * that will answer, or a negative errno. */
static int start_job(struct identityd *st, bool force_dps, bool clear)
{
	struct identityd_job job;
	int r;

	if (st->child > 0) {
		st->pending = true;
		st->pending_force |= force_dps;
		st->pending_clear |= clear;
		return 0;
	}
	if (st->retry_ev)
		evtimer_del(st->retry_ev);
	st->next_retry = 0;
	if (clear) {
		struct err e = {0};

		st->have_device = false;
		identityd_job_result_clear(&st->device);
		if (identityd_device_info_remove(st->s->homedir, &e) < 0)
			log_err("%s", err_msg(&e, -EIO));
	}
	prepare_job(st, &force_dps, &job);
	st->started++;
	r = spawn(st, &job, force_dps);
	identityd_device_info_clear(&job.backup);
	if (r < 0) {
		struct identityd_job_result res = {.fault = IDENTITYD_FAULT_LOCAL};

		if (asprintf(&res.error, "cannot start the provisioning process: %s",
			     strerror(-r)) < 0)
			res.error = NULL;
		job_done(st, &res, force_dps);
		identityd_job_result_clear(&res);
		return r;
	}
	return 0;
}

/* The job number a request made now would see finish. */
static uint64_t current_job(const struct identityd *st)
{
	return st->child > 0 ? st->started : st->done;
}

/* --- handlers ------------------------------------------------------------ */

static int device_request(struct daemon_request *req, struct identityd *st)
{
	if (!may_get_device(st, daemon_request_cred(req)->uid))
		return refuse(req);
	if (!st->have_device && st->child > 0)
		return wait_for(st, req, WAIT_DEVICE, current_job(st));
	return answer_device(st, daemon_request_http(req));
}

static int get_device(struct daemon_request *req, void *state)
{
	return device_request(req, state);
}

static int post_device(struct daemon_request *req, void *state)
{
	json_t *body = daemon_request_body(req);

	/* aziot parses {"type": "aziot"} and does not use it. */
	if (!body)
		return daemon_respond_error(req, 400, "missing request body");
	return device_request(req, state);
}

static int get_caller_identity(struct daemon_request *req, void *state)
{
	struct identityd *st = state;
	const struct identityd_principal *p;

	if (may_get_device(st, daemon_request_cred(req)->uid))
		return device_request(req, st);
	if (authenticate(st, daemon_request_cred(req)->uid, &p) == CALLER_HOST &&
	    (p->idtype & (IDENTITYD_IDTYPE_MODULE | IDENTITYD_IDTYPE_LOCAL)))
		return daemon_respond_error(req, 400,
					    "module identity not found\ncaused by: edgeid does "
					    "not manage module identities yet");
	return refuse(req);
}

static int post_reprovision(struct daemon_request *req, void *state)
{
	struct identityd *st = state;
	bool running = st->child > 0;
	int r;

	if (!may_reprovision(st, daemon_request_cred(req)->uid))
		return refuse(req);
	if (st->s->source == IDENTITYD_SOURCE_NONE)
		return daemon_respond_no_content(req);
	log_info("reprovisioning requested by uid %u", (unsigned)daemon_request_cred(req)->uid);
	r = start_job(st, true, true);
	if (r < 0)
		return answer_reprovision(st, daemon_request_http(req));
	/* The job that answers: the one just started, or the one after the
	 * job in progress. */
	return wait_for(st, req, WAIT_REPROVISION, running ? st->started + 1 : st->started);
}

/* global_endpoint as Rust's Url prints it: an empty path is "/". */
static json_t *endpoint_json(const char *url)
{
	_cleanup_free_ char *s = NULL;
	const char *host = strstr(url, "://");

	if (host && !strchr(host + 3, '/') && asprintf(&s, "%s/", url) >= 0)
		return json_string(s);
	return json_string(url);
}

static json_t *payload_json(const struct identityd_settings *s)
{
	_cleanup_buf_ struct buf text = {0};
	struct err e = {0};
	json_t *j = NULL;

	if (!s->payload_path)
		return json_null();
	buf_init(&text, 64 * 1024);
	if (fs_read_file(s->payload_path, 64 * 1024, &text, &e) < 0 ||
	    json_parse(text.data ? text.data : "", text.len, 0, &j, &e) < 0) {
		log_warn("the DPS payload %s: %s", s->payload_uri, err_msg(&e, -EIO));
		return json_null();
	}
	return j;
}

/* The registration id, for X.509 without one configured: the CN of the
 * identity certificate (learned by the last job, or read now). */
static json_t *registration_id_json(struct identityd *st)
{
	STACK_OF(X509) *certs = NULL;
	char *cn;

	if (st->s->registration_id)
		return json_string(st->s->registration_id);
	if (st->registration_id)
		return json_string(st->registration_id);
	if (identity_cert_load(st->s, st->s->cert_id, &certs, NULL) < 0)
		return json_null();
	cn = identity_cert_common_name(sk_X509_value(certs, 0));
	sk_X509_pop_free(certs, X509_free);
	if (!cn)
		return json_null();
	st->registration_id = cn;
	return json_string(cn);
}

static int get_provisioning(struct daemon_request *req, void *state)
{
	struct identityd *st = state;
	const struct identityd_settings *s = st->s;
	json_t *j;

	switch (s->source) {
	case IDENTITYD_SOURCE_DPS:
		j = json_pack("{s:s,s:s,s:o,s:s,s:o,s:o}", "source", "dps", "auth",
			      identityd_auth_name(s), "endpoint", endpoint_json(s->global_endpoint),
			      "scope_id", s->scope_id, "registration_id", registration_id_json(st),
			      "payload", payload_json(s));
		break;
	case IDENTITYD_SOURCE_MANUAL:
		j = json_pack("{s:s,s:s}", "source", "manual", "auth", identityd_auth_name(s));
		break;
	default:
		j = json_pack("{s:s}", "source", "none");
		break;
	}
	if (!j)
		return -ENOMEM;
	daemon_respond_json(req, 200, j);
	json_decref(j);
	return 0;
}

static const char *state_name(const struct identityd *st)
{
	if (st->have_device)
		return "provisioned";
	if (st->s->source == IDENTITYD_SOURCE_NONE)
		return "unprovisioned";
	if (st->child > 0 || !st->last_error)
		return "provisioning";
	return "failed";
}

static int get_status(struct daemon_request *req, void *state)
{
	struct identityd *st = state;
	static const char *const sources[] = {"none", "manual", "dps"};
	/* What kind of failure last_error is: "network" (DPS, the hub or
	 * their TLS could not be reached), "refused" (DPS or the hub refused
	 * the device: a disabled or missing enrollment, the wrong key),
	 * "permanent" (settings, an unknown ID scope), "local" (keyd, tpmd,
	 * certd, the identity certificate). */
	static const char *const faults[] = {NULL, "network", "refused", "permanent", "local"};
	bool failed = !st->have_device && st->failures > 0 && st->last_error;
	json_t *j, *device = json_null();
	time_t now = time(NULL);

	if (st->have_device)
		device = json_pack("{s:s,s:s,s:s,s:s,s:b}", "hub_name", st->device.hub_name,
				   "gateway_host", st->device.gateway, "device_id",
				   st->device.device_id, "from",
				   st->device.from_dps                        ? "dps"
				   : st->s->source == IDENTITYD_SOURCE_MANUAL ? "settings"
									      : "device_info",
				   "hub_verified", st->device.hub_verified);
	j = json_pack(
	    "{s:s,s:s,s:s?,s:o,s:b,s:s?,s:s?,s:I,s:b,s:o,s:o,s:o}", "state", state_name(st),
	    "source", sources[st->s->source], "auth",
	    st->s->source == IDENTITYD_SOURCE_NONE ? NULL : identityd_auth_name(st->s), "device",
	    device, "busy", st->child > 0, "last_error", st->last_error, "fault",
	    failed && (size_t)st->last_fault < ARRAY_SIZE(faults) ? faults[st->last_fault] : NULL,
	    "failures", (json_int_t)st->failures, "retrying", !st->have_device && st->will_retry,
	    "next_attempt_in_sec",
	    st->next_retry ? json_integer(st->next_retry > now ? st->next_retry - now : 0)
			   : json_null(),
	    "last_attempt", json_time(st->last_attempt), "last_success",
	    json_time(st->last_success));
	if (!j)
		return -ENOMEM;
	daemon_respond_json(req, 200, j);
	json_decref(j);
	return 0;
}

static int get_trust_bundle(struct daemon_request *req, void *state)
{
	_cleanup_json_ json_t *j = json_pack("{s:s}", "certificate", "");

	(void)state;
	return j ? daemon_respond_json(req, 200, j) : -ENOMEM;
}

/* --- the daemon ---------------------------------------------------------- */

static int load_settings(struct daemon *d, const struct daemon_config *c,
			 struct identityd_settings **ret, struct err *e)
{
	return identityd_settings_parse(c, daemon_root(d), ret, e);
}

static void log_warnings(const struct identityd_settings *s)
{
	for (size_t i = 0; i < s->n_warnings; i++)
		log_warn("%s", s->warnings[i]);
}

static int identityd_check(struct daemon *d, struct err *e)
{
	_cleanup_identityd_settings_ struct identityd_settings *s = NULL;
	int r = load_settings(d, daemon_get_config(d), &s, e);

	if (r >= 0)
		for (size_t i = 0; i < s->n_warnings; i++)
			fprintf(stderr, "warning: %s\n", s->warnings[i]);
	return r;
}

static void identityd_fini(void *state)
{
	struct identityd *st = state;

	if (!st)
		return;
	while (st->waiters) {
		struct http_request *req = st->waiters->req;

		waiter_unlink(st, st->waiters);
		(void)http_respond_message(req, 503, "identityd is shutting down");
	}
	if (st->child > 0) {
		kill(st->child, SIGKILL);
		while (waitpid(st->child, NULL, 0) < 0 && errno == EINTR)
			;
	}
	if (st->child_ev)
		event_free(st->child_ev);
	if (st->child_fd >= 0)
		close(st->child_fd);
	if (st->retry_ev)
		event_free(st->retry_ev);
	buf_free(&st->child_out);
	identityd_job_result_clear(&st->device);
	identityd_settings_free(st->s);
	free(st->registration_id);
	free(st->last_error);
	free(st);
}

static int identityd_init(struct daemon *d, void **ret_state, struct err *e)
{
	struct identityd *st = calloc(1, sizeof(*st));
	int r;

	if (!st)
		return err_set(e, -ENOMEM, "out of memory");
	*ret_state = st;
	st->d = d;
	st->child_fd = -1;
	buf_init_secret(&st->child_out, RESULT_MAX);
	r = load_settings(d, daemon_get_config(d), &st->s, e);
	if (r < 0)
		return r;
	log_warnings(st->s);
	r = fs_mkdir_p(st->s->homedir, 0700, FS_KEEP_OWNER, FS_KEEP_GROUP, false, e);
	if (r < 0)
		return r;
	log_info("provisioning: source %s%s%s, auto_reprovisioning_mode %s",
		 st->s->source == IDENTITYD_SOURCE_DPS      ? "dps"
		 : st->s->source == IDENTITYD_SOURCE_MANUAL ? "manual"
							    : "none",
		 st->s->source == IDENTITYD_SOURCE_NONE ? "" : ", ",
		 st->s->source == IDENTITYD_SOURCE_NONE ? "" : identityd_auth_name(st->s),
		 identityd_reprovisioning_name(st->s->reprovisioning));
	if (st->s->source == IDENTITYD_SOURCE_NONE)
		return 0;
	r = start_job(st,
		      st->s->source == IDENTITYD_SOURCE_DPS &&
			  st->s->reprovisioning == IDENTITYD_REPROV_ALWAYS_ON_STARTUP,
		      false);
	if (r < 0)
		return err_set(e, r, "cannot start provisioning: %s", strerror(-r));
	return 0;
}

static int identityd_reload(struct daemon *d, void *state, const struct daemon_config *next,
			    struct err *e)
{
	struct identityd *st = state;
	struct identityd_settings *s = NULL;
	char before[65], after[65];
	bool changed;
	int r;

	r = load_settings(d, next, &s, e);
	if (r < 0)
		return r;
	log_warnings(s);
	changed = identityd_settings_provisioning_digest(st->s, before) < 0 ||
		  identityd_settings_provisioning_digest(s, after) < 0 || !streq(before, after);
	identityd_settings_free(st->s);
	st->s = s;
	if (!changed)
		return 0;
	log_notice("the provisioning settings changed; provisioning again");
	if (s->source == IDENTITYD_SOURCE_NONE) {
		st->have_device = false;
		identityd_job_result_clear(&st->device);
		return 0;
	}
	r = start_job(st, s->source == IDENTITYD_SOURCE_DPS, false);
	return r < 0 ? err_set(e, r, "cannot start provisioning: %s", strerror(-r)) : 0;
}

/* --- for the module API (identityd_modules.c) --------------------------- */

void identityd_state_view(void *state, struct identityd_state_view *ret)
{
	struct identityd *st = state;

	*ret = (struct identityd_state_view){
	    .s = st->s,
	    .device = st->have_device ? &st->device : NULL,
	    .base = daemon_event_base(st->d),
	};
}

int identityd_get_caller_identity(struct daemon_request *req, void *state)
{
	return get_caller_identity(req, state);
}

static const char *const identityd_api_versions[] = {"2020-09-01", "2021-12-01", "2022-08-01",
						     NULL};

static const struct daemon_route identityd_routes[] = {
    {.pattern = "/identities/device", .get = get_device, .post = post_device},
    {.pattern = "/identities/device/reprovision", .post = post_reprovision},
    {.pattern = "/identities/identity", .get = identityd_modules_get_caller},
    {.pattern = "/identities/modules",
     .get = identityd_modules_list,
     .post = identityd_modules_create},
    {.pattern = "/identities/modules/{moduleId}",
     .get = identityd_modules_get,
     .put = identityd_modules_update,
     .del = identityd_modules_delete},
    {.pattern = "/identities/provisioning",
     .min_api_version = "2021-12-01",
     .get = get_provisioning},
    {.pattern = "/identities/provisioning/status",
     .min_api_version = "2021-12-01",
     .get = get_status,
     .quiet = true},
    {.pattern = "/trust-bundle", .get = get_trust_bundle},
};

const struct daemon_spec identityd_spec = {
    .name = "identityd",
    .summary = "the identity service: provisioning and the device's identity",
    .api_versions = identityd_api_versions,
    .routes = identityd_routes,
    .n_routes = ARRAY_SIZE(identityd_routes),
    .init = identityd_init,
    .check = identityd_check,
    .reload = identityd_reload,
    .fini = identityd_fini,
};
