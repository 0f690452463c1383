/* SPDX-License-Identifier: MIT */
/*
 * dps-load: drives full DPS registrations over HTTPS (dps-protocol.md §1,
 * §3.3) from many simulated devices and reports registrations per second
 * and latency percentiles.
 *
 * One thread, one libevent loop, C keep-alive TLS connections. A device
 * that has a request to send takes an idle connection, or waits in a FIFO
 * for one; while it waits for its next poll it holds no connection. So a
 * few connections carry thousands of registering devices.
 *
 * A symmetric-key device: PUT register with a SAS signed with its
 * enrollment key (bench_sym_key) -> 202 assigning + Retry-After -> wait ->
 * GET operations/{id} until 200 assigned. A TPM device: PUT register with
 * its EK and SRK and no Authorization -> 401 with the authenticationKey
 * blob -> unwrap it in software (bench_tpm_unwrap) -> PUT again with a SAS
 * signed with the recovered key (Node's style: sr URL-encoded, tpm object
 * sent again) -> 202 -> poll -> 200 assigned with a second blob. A server
 * that holds the register answer until the assignment is final answers
 * the PUT 202 with the final status ("assigned", or "failed" /
 * "disabled"): the device is done without polling, as Node's client is.
 *
 * Latency is measured per device from the moment it is started (its
 * first PUT is queued) to the final "assigned" answer (of the PUT or of a
 * poll). Between polls a device waits Retry-After (the default, what real
 * clients do), or --poll-ms milliseconds to measure how long the server
 * itself takes.
 *
 * Load: closed loop (--inflight devices registering at once; one starts
 * when another ends), or open loop at --rate devices per second (still
 * capped at --inflight).
 *
 * For crash tests: with --enroll-key each device first creates its own
 * individual enrollment through the service API (PUT enrollments/{id},
 * service SAS of the policy --enroll-policy), and --ack-log appends a line
 * to a file the moment each acknowledgement arrives: "enrollment ID" for a
 * 200/201 to that PUT, "accepted ID OPERATION-ID" for a 202 to PUT
 * register, "registration ID HUB DEVICE-ID" for a final "assigned" (after
 * the "accepted" line when the PUT answer itself is final). A line
 * is one write(2) on an O_APPEND file: it survives this process being
 * killed right after (not a power cut, which the tests do not simulate).
 * Without these options nothing changes.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <jansson.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "bench/bench_common.h"
#include "cloud/store/store.h"
#include "common/encode.h"
#include "common/json.h"
#include "crypto/sas.h"
#include "crypto/tpm_blob.h"

#define API_VERSION "2021-06-01"
#define SERVICE_API_VERSION "2021-10-01"
#define DEFAULT_ENROLL_POLICY "provisioningserviceowner"
#define ACK_LINE_MAX 512
#define SAS_LIFETIME_S 3600
#define KEY_NAME "registration"
#define RESPONSE_BODY_MAX (256 * 1024)
#define HEADER_LINE_MAX 8192
#define REQUEST_TIMEOUT_S 30
#define CONNECT_TIMEOUT_S 10
#define RECONNECTS_MAX 100
#define ERROR_KINDS_MAX 32
#define HUBS_MAX 16
#define DEVICES_MAX 10000000u
#define CONNECTIONS_MAX 4096u
#define DEFAULT_SEED "edgeid-bench"
/* Node's default when a 202 carries no Retry-After. */
#define RETRY_AFTER_DEFAULT_MS 2000

enum req {
	REQ_CHALLENGE, /* TPM: PUT register without Authorization, 401 expected */
	REQ_REGISTER,  /* PUT register with a SAS, 202 expected */
	REQ_POLL,      /* GET operations/{operationId} */
	REQ_ENROLL,    /* PUT enrollments/{id} (service API, --enroll-key), 200 expected */
	REQ_COUNT,
};

static const char *const req_names[REQ_COUNT] = {"PUT register (TPM challenge)", "PUT register",
						 "GET operation", "PUT enrollment"};

struct options {
	enum bench_kind kind;
	const char *host;
	uint16_t port;
	const char *ca_file;
	const char *id_scope;
	const char *seed;
	const char *tpm_keys;
	uint64_t first, count, stride;
	uint64_t connections, inflight, rate;
	int64_t poll_ms; /* -1: honour Retry-After */
	uint64_t max_seconds;
	bool unwrap_final;
	const char *verify_store;
	uint64_t server_pid;
	const char *json_file;
	const char *md_file;
	const char *label;
	const char *ack_log;
	const char *enroll_key; /* base64 key of a service policy; NULL: no enrollments */
	const char *enroll_policy;
};

struct load;

struct device {
	struct load *l;
	uint64_t index; /* the enrollment's */
	char id[BENCH_ID_MAX];
	enum req next;
	char *token; /* the Authorization header value */
	char *operation_id;
	const char *hub; /* interned assignedHub, once assigned */
	uint64_t start_ns, queued_ns;
	struct event *timer;
	struct device *queue_next;
	unsigned polls;
	bool started, finished, assigned;
};

enum parse_state { P_STATUS, P_HEADERS, P_BODY };

struct conn {
	struct load *l;
	unsigned no;
	struct bufferevent *bev;
	bool connected;
	bool dead; /* gave up reconnecting */
	unsigned reconnects;
	struct device *dev; /* the device whose request is in flight */
	enum req req;
	uint64_t sent_ns;
	enum parse_state ps;
	int status;
	uint64_t content_length;
	int64_t retry_after; /* seconds, -1 when absent */
	bool close_after;
	struct conn *idle_next;
};

struct error_kind {
	char kind[128];
	char example[200];
	uint64_t n;
};

struct load {
	struct options o;
	struct event_base *base;
	SSL_CTX *ssl_ctx;
	struct sockaddr_storage addr;
	socklen_t addr_len;
	bool host_is_ip;
	struct bench_tpm_pool *pool;

	struct conn *conns;
	size_t n_connected;
	struct conn *idle;
	struct device *devices;
	struct device *q_head, *q_tail;

	uint64_t started, in_flight, finished, succeeded;
	bool timed_phase, stopped_by_deadline, starting;
	uint64_t t_start, t_end;
	uint64_t *done_ns; /* completion times of successes, in order */
	struct bench_samples latency;
	struct bench_samples req_latency[REQ_COUNT];
	uint64_t requests[REQ_COUNT];
	uint64_t polls;
	uint64_t final_puts; /* PUT register answers that were final */
	uint64_t queue_wait_ns_sum, queue_wait_ns_max, queued_requests;
	uint64_t reconnects;

	struct error_kind errors[ERROR_KINDS_MAX];
	size_t n_errors;
	uint64_t errors_other;

	char *hubs[HUBS_MAX];
	size_t n_hubs;

	int ack_fd;          /* --ack-log, -1 without */
	char *service_token; /* the service SAS for --enroll-key */

	struct event *ticker, *deadline, *connect_timer;
};

static void conn_start_request(struct conn *c, struct device *d);
static void conn_reconnect(struct conn *c);
static void device_send(struct device *d);

/* --- errors and results -------------------------------------------------- */

static void count_error(struct load *l, const char *kind, const char *example)
{
	struct error_kind *k = NULL;

	for (size_t i = 0; i < l->n_errors; i++)
		if (streq(l->errors[i].kind, kind))
			k = &l->errors[i];
	if (!k && l->n_errors < ERROR_KINDS_MAX) {
		k = &l->errors[l->n_errors++];
		snprintf(k->kind, sizeof(k->kind), "%s", kind);
		snprintf(k->example, sizeof(k->example), "%s", strempty(example));
	}
	if (k)
		k->n++;
	else
		l->errors_other++;
}

static const char *intern_hub(struct load *l, const char *hub)
{
	for (size_t i = 0; i < l->n_hubs; i++)
		if (streq(l->hubs[i], hub))
			return l->hubs[i];
	if (l->n_hubs == HUBS_MAX)
		return NULL;
	l->hubs[l->n_hubs] = strdup(hub);
	return l->hubs[l->n_hubs] ? l->hubs[l->n_hubs++] : NULL;
}

/* One line "WHAT ID[ A[ B]]" into --ack-log, in a single write. A failure
 * is counted as an error of the device: the test reading the log must not
 * trust a run that lost lines. */
static int ack(struct load *l, const char *what, const char *id, const char *a, const char *b)
{
	char line[ACK_LINE_MAX];
	size_t len, done = 0;
	int n;

	if (l->ack_fd < 0)
		return 0;
	n = snprintf(line, sizeof(line), "%s %s%s%s%s%s\n", what, id, a ? " " : "", a ? a : "",
		     b ? " " : "", b ? b : "");
	if (n < 0 || (size_t)n >= sizeof(line))
		return -E2BIG;
	len = (size_t)n;
	while (done < len) {
		ssize_t w = write(l->ack_fd, line + done, len - done);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? -errno : -EIO;
		done += (size_t)w;
	}
	return 0;
}

static void start_devices(struct load *l);

static void device_finish(struct device *d, const char *error_kind, const char *example)
{
	struct load *l = d->l;
	uint64_t now = bench_now_ns();

	if (d->finished)
		return;
	d->finished = true;
	if (error_kind) {
		count_error(l, error_kind, example);
	} else {
		d->assigned = true;
		l->done_ns[l->succeeded++] = now;
		if (bench_samples_add(&l->latency, (double)(now - d->start_ns) / 1e6) < 0)
			count_error(l, "out of memory", NULL);
	}
	free(d->token);
	d->token = NULL;
	free(d->operation_id);
	d->operation_id = NULL;
	if (d->timer) {
		event_free(d->timer);
		d->timer = NULL;
	}
	l->in_flight--;
	l->finished++;
	if (l->finished == l->o.count) {
		l->t_end = now;
		event_base_loopexit(l->base, NULL);
		return;
	}
	if (l->o.rate == 0)
		start_devices(l);
}

static void device_fail_errno(struct device *d, const char *what, int r, const struct err *e)
{
	char kind[128];

	snprintf(kind, sizeof(kind), "%s: %s", what, err_msg(e, r));
	device_finish(d, kind, NULL);
}

/* --- starting devices -------------------------------------------------------- */

static int make_sas(struct device *d, const char *key_b64, unsigned flags, struct err *e)
{
	_cleanup_buf_ struct buf token = {0};
	char resource[256];
	int r;

	snprintf(resource, sizeof(resource), "%s/registrations/%s", d->l->o.id_scope, d->id);
	buf_init_secret(&token, SAS_TOKEN_MAX);
	r = sas_token_create(resource, key_b64, (uint64_t)time(NULL) + SAS_LIFETIME_S, KEY_NAME,
			     flags, &token, e);
	if (r < 0)
		return r;
	free(d->token);
	d->token = buf_steal(&token, NULL);
	return d->token ? 0 : -ENOMEM;
}

static void poll_cb(evutil_socket_t fd, short what, void *userdata)
{
	(void)fd;
	(void)what;
	device_send(userdata);
}

static void device_start(struct load *l, struct device *d)
{
	struct err e = {0};
	int r = 0;

	d->started = true;
	d->start_ns = bench_now_ns();
	l->started++;
	l->in_flight++;
	d->timer = evtimer_new(l->base, poll_cb, d);
	if (!d->timer) {
		device_finish(d, "out of memory", NULL);
		return;
	}
	if (l->o.kind == BENCH_SYM) {
		_cleanup_buf_ struct buf key = {0};

		buf_init_secret(&key, 128);
		r = bench_sym_key(l->o.seed, d->index, 0, &key);
		if (r >= 0)
			r = make_sas(d, buf_str(&key), 0, &e);
		if (r < 0) {
			device_fail_errno(d, "making the SAS", r, &e);
			return;
		}
		d->next = REQ_REGISTER;
	} else {
		d->next = REQ_CHALLENGE;
	}
	if (l->o.enroll_key)
		d->next = REQ_ENROLL;
	device_send(d);
}

static void start_devices(struct load *l)
{
	uint64_t due = l->o.count;

	/* A device that fails at once ends inside this loop; it continues. */
	if (!l->timed_phase || l->starting)
		return;
	if (l->o.rate > 0) {
		uint64_t elapsed = bench_now_ns() - l->t_start;

		due = (uint64_t)((double)elapsed / 1e9 * (double)l->o.rate) + 1;
		if (due > l->o.count)
			due = l->o.count;
	}
	l->starting = true;
	while (l->started < due && l->in_flight < l->o.inflight)
		device_start(l, &l->devices[l->started]);
	l->starting = false;
}

static void ticker_cb(evutil_socket_t fd, short what, void *userdata)
{
	struct load *l = userdata;

	(void)fd;
	(void)what;
	start_devices(l);
	if (l->started == l->o.count)
		event_del(l->ticker);
}

static void deadline_cb(evutil_socket_t fd, short what, void *userdata)
{
	struct load *l = userdata;

	(void)fd;
	(void)what;
	l->stopped_by_deadline = true;
	l->t_end = bench_now_ns();
	event_base_loopexit(l->base, NULL);
}

/* --- connections ------------------------------------------------------------ */

static void device_send(struct device *d)
{
	struct load *l = d->l;
	struct conn *c = l->idle;

	if (c) {
		l->idle = c->idle_next;
		c->idle_next = NULL;
		conn_start_request(c, d);
		return;
	}
	d->queued_ns = bench_now_ns();
	d->queue_next = NULL;
	if (l->q_tail)
		l->q_tail->queue_next = d;
	else
		l->q_head = d;
	l->q_tail = d;
}

/* The connection is free: give it the next waiting device, or park it. */
static void conn_idle(struct conn *c)
{
	struct load *l = c->l;
	struct device *d = l->q_head;

	if (d) {
		uint64_t wait = bench_now_ns() - d->queued_ns;

		l->q_head = d->queue_next;
		if (!l->q_head)
			l->q_tail = NULL;
		l->queue_wait_ns_sum += wait;
		l->queued_requests++;
		if (wait > l->queue_wait_ns_max)
			l->queue_wait_ns_max = wait;
		conn_start_request(c, d);
		return;
	}
	c->idle_next = l->idle;
	l->idle = c;
}

static void conn_unlink_idle(struct conn *c)
{
	struct conn **p = &c->l->idle;

	while (*p && *p != c)
		p = &(*p)->idle_next;
	if (*p)
		*p = c->idle_next;
	c->idle_next = NULL;
}

/* The individual enrollment a device of the bench registers with, as the
 * service API takes it: the keys dps-populate would store. */
static int enrollment_body(const struct load *l, const struct device *d, struct buf *out)
{
	if (l->o.kind == BENCH_TPM)
		return buf_printf(out,
				  "{\"registrationId\":\"%s\",\"attestation\":{\"type\":\"tpm\","
				  "\"tpm\":{\"endorsementKey\":\"%s\"}}}",
				  d->id, bench_tpm_pool_get(l->pool, d->index)->ek_b64);
	{
		_cleanup_buf_ struct buf primary = {0}, secondary = {0};
		int r;

		buf_init_secret(&primary, 128);
		buf_init_secret(&secondary, 128);
		r = bench_sym_key(l->o.seed, d->index, 0, &primary);
		if (r >= 0)
			r = bench_sym_key(l->o.seed, d->index, 1, &secondary);
		if (r >= 0)
			r = buf_printf(out,
				       "{\"registrationId\":\"%s\",\"attestation\":{\"type\":"
				       "\"symmetricKey\",\"symmetricKey\":{\"primaryKey\":\"%s\","
				       "\"secondaryKey\":\"%s\"}}}",
				       d->id, buf_str(&primary), buf_str(&secondary));
		return r;
	}
}

static int write_request(struct conn *c, struct device *d)
{
	struct load *l = c->l;
	struct evbuffer *out = bufferevent_get_output(c->bev);
	_cleanup_buf_ struct buf body = {0};
	const char *auth = d->next == REQ_CHALLENGE ? NULL : d->token;
	int r;

	if (d->next == REQ_POLL) {
		_cleanup_buf_ struct buf op = {0};

		buf_init(&op, 1024);
		r = url_encode(&op, d->operation_id, strlen(d->operation_id), NULL);
		if (r < 0)
			return r;
		r = evbuffer_add_printf(
		    out,
		    "GET /%s/registrations/%s/operations/%s?api-version=" API_VERSION
		    " HTTP/1.1\r\nHost: %s\r\nAccept: application/json\r\n"
		    "Authorization: %s\r\n\r\n",
		    l->o.id_scope, d->id, buf_str(&op), l->o.host, auth);
		return r < 0 ? -ENOMEM : 0;
	}
	if (d->next == REQ_ENROLL) {
		buf_init_secret(&body, 8192);
		r = enrollment_body(l, d, &body);
		if (r < 0)
			return r;
		r = evbuffer_add_printf(out,
					"PUT /enrollments/%s?api-version=" SERVICE_API_VERSION
					" HTTP/1.1\r\nHost: %s\r\nAccept: application/json\r\n"
					"Content-Type: application/json; charset=utf-8\r\n"
					"Content-Length: %zu\r\nAuthorization: %s\r\n\r\n",
					d->id, l->o.host, body.len, l->service_token);
		if (r < 0 || evbuffer_add(out, body.data, body.len) != 0)
			return -ENOMEM;
		return 0;
	}
	buf_init(&body, 4096);
	if (l->o.kind == BENCH_TPM) {
		const struct bench_tpm_key *k = bench_tpm_pool_get(l->pool, d->index);

		r = buf_printf(&body,
			       "{\"registrationId\":\"%s\",\"tpm\":{\"endorsementKey\":\"%s\","
			       "\"storageRootKey\":\"%s\"}}",
			       d->id, k->ek_b64, k->srk_b64);
	} else {
		r = buf_printf(&body, "{\"registrationId\":\"%s\"}", d->id);
	}
	if (r < 0)
		return r;
	r = evbuffer_add_printf(out,
				"PUT /%s/registrations/%s/register?api-version=" API_VERSION
				" HTTP/1.1\r\nHost: %s\r\nAccept: application/json\r\n"
				"Content-Type: application/json; charset=utf-8\r\n"
				"Content-Length: %zu\r\n%s%s%s\r\n",
				l->o.id_scope, d->id, l->o.host, body.len,
				auth ? "Authorization: " : "", auth ? auth : "",
				auth ? "\r\n" : "");
	if (r < 0 || evbuffer_add(out, body.data, body.len) != 0)
		return -ENOMEM;
	return 0;
}

static void conn_start_request(struct conn *c, struct device *d)
{
	struct timeval tv = {.tv_sec = REQUEST_TIMEOUT_S};
	int r;

	c->dev = d;
	c->req = d->next;
	c->ps = P_STATUS;
	c->status = 0;
	c->content_length = 0;
	c->retry_after = -1;
	c->close_after = false;
	c->sent_ns = bench_now_ns();
	r = write_request(c, d);
	if (r < 0) {
		c->dev = NULL;
		device_fail_errno(d, "writing a request", r, NULL);
		conn_idle(c);
		return;
	}
	c->l->requests[c->req]++;
	bufferevent_set_timeouts(c->bev, &tv, &tv);
}

/* --- responses --------------------------------------------------------------- */

static void wait_then_poll(struct device *d, int64_t retry_after_s)
{
	struct load *l = d->l;
	int64_t ms = l->o.poll_ms >= 0    ? l->o.poll_ms
		     : retry_after_s >= 0 ? retry_after_s * 1000
					  : RETRY_AFTER_DEFAULT_MS;
	struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};

	d->next = REQ_POLL;
	if (ms == 0) {
		device_send(d);
		return;
	}
	if (evtimer_add(d->timer, &tv) < 0)
		device_finish(d, "cannot arm a timer", NULL);
}

static void http_error(struct device *d, enum req req, int status, const json_t *body,
		       const char *raw)
{
	json_t *code = json_object_get(body, "errorCode");
	char kind[128];

	if (json_is_integer(code))
		snprintf(kind, sizeof(kind), "%s: HTTP %d (errorCode %" JSON_INTEGER_FORMAT ")",
			 req_names[req], status, json_integer_value(code));
	else
		snprintf(kind, sizeof(kind), "%s: HTTP %d", req_names[req], status);
	device_finish(d, kind, raw);
}

/* The TPM challenge: recover the key from the blob, sign the SAS, PUT again. */
static void on_challenge(struct device *d, const json_t *body)
{
	const struct bench_tpm_key *k = bench_tpm_pool_get(d->l->pool, d->index);
	const char *blob_b64 = json_string_value(json_object_get(body, "authenticationKey"));
	_cleanup_buf_ struct buf blob = {0}, key_b64 = {0};
	uint8_t key[TPM_BLOB_KEY_MAX];
	struct err e = {0};
	size_t key_len = 0;
	int r;

	if (!blob_b64) {
		device_finish(d, "TPM challenge: no authenticationKey", NULL);
		return;
	}
	buf_init(&blob, TPM_BLOB_MAX);
	buf_init_secret(&key_b64, 256);
	r = base64_decode(&blob, blob_b64, strlen(blob_b64), B64_STANDARD, NULL);
	if (r < 0) {
		device_finish(d, "TPM challenge: authenticationKey is not base64", NULL);
		return;
	}
	r = bench_tpm_unwrap(k, blob.data, blob.len, key, &key_len, &e);
	if (r >= 0)
		r = base64_encode(&key_b64, key, key_len, B64_STANDARD);
	explicit_bzero(key, sizeof(key));
	/* Node's TPM client: sr encodeURIComponent'd, skn=registration. */
	if (r >= 0)
		r = make_sas(d, buf_str(&key_b64), SAS_SR_URL_ENCODE, &e);
	if (r < 0) {
		device_fail_errno(d, "TPM challenge", r, &e);
		return;
	}
	d->next = REQ_REGISTER;
	device_send(d);
}

/* A final status: a 200 to a poll, or a 202 to PUT register that is not
 * "assigning". */
static void on_final(struct device *d, const json_t *body, const char *raw)
{
	struct load *l = d->l;
	const char *status = json_string_value(json_object_get(body, "status"));
	json_t *state = json_object_get(body, "registrationState");
	const char *hub = json_string_value(json_object_get(state, "assignedHub"));
	const char *device_id = json_string_value(json_object_get(state, "deviceId"));
	char kind[128];

	if (!status || !streq(status, "assigned")) {
		json_t *code = json_object_get(state, "errorCode");

		snprintf(kind, sizeof(kind), "registration %s (errorCode %" JSON_INTEGER_FORMAT ")",
			 status ? status : "without status",
			 json_is_integer(code) ? json_integer_value(code) : 0);
		device_finish(d, kind, raw);
		return;
	}
	if (!hub || !device_id || strcasecmp(device_id, d->id) != 0) {
		device_finish(d, "assigned without assignedHub or with another deviceId", raw);
		return;
	}
	d->hub = intern_hub(l, hub);
	if (!d->hub) {
		device_finish(d, "assigned to more hubs than the bench tracks", NULL);
		return;
	}
	if (l->o.kind == BENCH_TPM) {
		const char *blob_b64 = json_string_value(
		    json_object_get(json_object_get(state, "tpm"), "authenticationKey"));
		_cleanup_buf_ struct buf blob = {0};
		struct tpm_blob parsed;
		struct err e = {0};
		int r;

		if (!blob_b64) {
			device_finish(d, "assigned without tpm.authenticationKey", raw);
			return;
		}
		buf_init(&blob, TPM_BLOB_MAX);
		r = base64_decode(&blob, blob_b64, strlen(blob_b64), B64_STANDARD, NULL);
		if (r < 0)
			r = err_set(&e, r, "tpm.authenticationKey is not base64");
		if (r >= 0 && !l->o.unwrap_final)
			r = tpm_blob_parse(blob.data, blob.len, &parsed, &e);
		if (r >= 0 && l->o.unwrap_final) {
			uint8_t key[TPM_BLOB_KEY_MAX];
			size_t key_len;

			r = bench_tpm_unwrap(bench_tpm_pool_get(l->pool, d->index), blob.data,
					     blob.len, key, &key_len, &e);
			explicit_bzero(key, sizeof(key));
		}
		if (r < 0) {
			device_fail_errno(d, "the hub key blob", r, &e);
			return;
		}
	}
	if (ack(l, "registration", d->id, hub, device_id) < 0) {
		device_finish(d, "cannot write --ack-log", NULL);
		return;
	}
	device_finish(d, NULL, NULL);
}

static void on_response(struct conn *c, struct device *d, const char *raw, size_t len)
{
	_cleanup_json_ json_t *body = NULL;
	_cleanup_free_ char *text = NULL;
	const char *status;

	if (len > 0 && json_parse(raw, len, 0, &body, NULL) < 0)
		body = NULL;
	text = strndup(raw, len < 199 ? len : 199);
	switch (c->req) {
	case REQ_ENROLL:
		if ((c->status != 200 && c->status != 201) || !body)
			return http_error(d, c->req, c->status, body, text);
		if (ack(c->l, "enrollment", d->id, NULL, NULL) < 0) {
			device_finish(d, "cannot write --ack-log", NULL);
			return;
		}
		d->next = c->l->o.kind == BENCH_TPM ? REQ_CHALLENGE : REQ_REGISTER;
		device_send(d);
		return;
	case REQ_CHALLENGE:
		if (c->status != 401 || !body)
			return http_error(d, c->req, c->status, body, text);
		return on_challenge(d, body);
	case REQ_REGISTER:
		if (c->status == 200 && body)
			return on_final(d, body, text);
		if (c->status != 202 || !body)
			return http_error(d, c->req, c->status, body, text);
		status = json_string_value(json_object_get(body, "operationId"));
		if (!status) {
			device_finish(d, "PUT register: 202 without operationId", text);
			return;
		}
		d->operation_id = strdup(status);
		if (!d->operation_id) {
			device_finish(d, "out of memory", NULL);
			return;
		}
		if (ack(c->l, "accepted", d->id, d->operation_id, NULL) < 0) {
			device_finish(d, "cannot write --ack-log", NULL);
			return;
		}
		status = json_string_value(json_object_get(body, "status"));
		if (status && !streq(status, "assigning")) {
			c->l->final_puts++;
			return on_final(d, body, text);
		}
		return wait_then_poll(d, c->retry_after);
	case REQ_POLL:
		d->polls++;
		c->l->polls++;
		if (c->status == 202 && body)
			return wait_then_poll(d, c->retry_after);
		if (c->status != 200 || !body)
			return http_error(d, c->req, c->status, body, text);
		return on_final(d, body, text);
	case REQ_COUNT:
		break;
	}
}

/* Parse a header line; 0 or -EPROTO. */
static int parse_header(struct conn *c, const char *line)
{
	const char *colon = strchr(line, ':');
	const char *v;
	uint64_t n;
	size_t name_len;

	if (!colon)
		return -EPROTO;
	name_len = (size_t)(colon - line);
	for (v = colon + 1; *v == ' ' || *v == '\t'; v++)
		;
	if (name_len == 14 && strncasecmp(line, "Content-Length", 14) == 0) {
		if (bench_parse_u64(v, RESPONSE_BODY_MAX, &n) < 0)
			return -EPROTO;
		c->content_length = n;
	} else if (name_len == 11 && strncasecmp(line, "Retry-After", 11) == 0) {
		if (bench_parse_u64(v, 3600, &n) == 0)
			c->retry_after = (int64_t)n;
	} else if (name_len == 10 && strncasecmp(line, "Connection", 10) == 0) {
		c->close_after = strcasecmp(v, "close") == 0;
	} else if (name_len == 17 && strncasecmp(line, "Transfer-Encoding", 17) == 0) {
		return -EPROTO; /* the DPS always sends Content-Length */
	}
	return 0;
}

static void conn_fail_request(struct conn *c, const char *kind)
{
	struct device *d = c->dev;

	c->dev = NULL;
	if (d)
		device_finish(d, kind, NULL);
}

static void read_cb(struct bufferevent *bev, void *userdata)
{
	struct conn *c = userdata;
	struct evbuffer *in = bufferevent_get_input(bev);

	for (;;) {
		if (c->ps != P_BODY) {
			size_t n;
			_cleanup_free_ char *line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF);
			uint64_t code;

			if (!line) {
				if (evbuffer_get_length(in) > HEADER_LINE_MAX)
					goto protocol_error;
				return;
			}
			if (!c->dev)
				goto protocol_error; /* nothing was asked */
			if (c->ps == P_STATUS) {
				char digits[4] = {0};

				if (n < 12 || strncmp(line, "HTTP/1.", 7) != 0 || line[8] != ' ')
					goto protocol_error;
				memcpy(digits, line + 9, 3);
				if (bench_parse_u64(digits, 599, &code) < 0 || code < 200)
					goto protocol_error;
				c->status = (int)code;
				c->ps = P_HEADERS;
			} else if (n == 0) {
				c->ps = P_BODY;
			} else if (parse_header(c, line) < 0) {
				goto protocol_error;
			}
			continue;
		}
		if (evbuffer_get_length(in) < c->content_length)
			return;
		{
			struct device *d = c->dev;
			const char *body =
			    (const char *)evbuffer_pullup(in, (ssize_t)c->content_length);
			uint64_t now = bench_now_ns();
			bool close_after = c->close_after;

			if (c->content_length > 0 && !body)
				goto protocol_error;
			bufferevent_set_timeouts(bev, NULL, NULL);
			if (bench_samples_add(&c->l->req_latency[c->req],
					      (double)(now - c->sent_ns) / 1e6) < 0)
				count_error(c->l, "out of memory", NULL);
			c->dev = NULL;
			on_response(c, d, body ? body : "", (size_t)c->content_length);
			evbuffer_drain(in, (size_t)c->content_length);
			c->ps = P_STATUS;
			if (close_after) {
				conn_reconnect(c);
				return;
			}
			if (!c->connected)
				return;
			conn_idle(c);
			if (evbuffer_get_length(in) > 0 && !c->dev)
				goto protocol_error; /* bytes nobody asked for */
		}
	}
protocol_error:
	conn_fail_request(c, "malformed HTTP response");
	conn_reconnect(c);
}

static void event_cb(struct bufferevent *bev, short what, void *userdata)
{
	struct conn *c = userdata;
	struct load *l = c->l;

	(void)bev;
	if (what & BEV_EVENT_CONNECTED) {
		c->connected = true;
		l->n_connected++;
		if (!l->timed_phase && l->n_connected == l->o.connections)
			event_base_loopbreak(l->base);
		conn_idle(c);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT)
		conn_fail_request(c, "no response within 30 s");
	else if (what & BEV_EVENT_EOF)
		conn_fail_request(c, "connection closed by the server");
	else
		conn_fail_request(c, "connection error");
	if (!l->timed_phase && !c->connected) {
		unsigned long err = bufferevent_get_openssl_error(c->bev);

		fprintf(stderr, "dps-load: connection %u: %s\n", c->no,
			err ? ERR_reason_error_string(err) : "cannot connect");
		c->dead = true;
		event_base_loopbreak(l->base);
		return;
	}
	conn_reconnect(c);
}

static int conn_open(struct conn *c)
{
	struct load *l = c->l;
	SSL *ssl;
	int fd, one = 1;

	fd = socket(l->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* Loopback: a blocking connect returns at once. */
	if (connect(fd, (const struct sockaddr *)&l->addr, l->addr_len) < 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0 ||
	    evutil_make_socket_nonblocking(fd) < 0) {
		int r = -errno;

		close(fd);
		return r;
	}
	ssl = SSL_new(l->ssl_ctx);
	if (!ssl) {
		close(fd);
		return -ENOMEM;
	}
	if ((l->host_is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), l->o.host)
			   : X509_VERIFY_PARAM_set1_host(SSL_get0_param(ssl), l->o.host, 0)) != 1 ||
	    (!l->host_is_ip && SSL_set_tlsext_host_name(ssl, l->o.host) != 1)) {
		SSL_free(ssl);
		close(fd);
		return -EIO;
	}
	c->bev = bufferevent_openssl_socket_new(l->base, fd, ssl, BUFFEREVENT_SSL_CONNECTING,
						BEV_OPT_CLOSE_ON_FREE);
	if (!c->bev) {
		SSL_free(ssl);
		close(fd);
		return -ENOMEM;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
	bufferevent_setcb(c->bev, read_cb, NULL, event_cb, c);
	if (bufferevent_enable(c->bev, EV_READ | EV_WRITE) < 0)
		return -ENOMEM;
	return 0;
}

static void conn_close(struct conn *c)
{
	conn_unlink_idle(c);
	if (c->bev) {
		bufferevent_free(c->bev);
		c->bev = NULL;
	}
	if (c->connected) {
		c->connected = false;
		c->l->n_connected--;
	}
}

static void conn_reconnect(struct conn *c)
{
	int r;

	conn_fail_request(c, "connection lost");
	conn_close(c);
	if (c->reconnects >= RECONNECTS_MAX) {
		c->dead = true;
		return;
	}
	c->reconnects++;
	c->l->reconnects++;
	r = conn_open(c);
	if (r < 0) {
		fprintf(stderr, "dps-load: reconnecting: %s\n", strerror(-r));
		c->dead = true;
	}
}

static void connect_timeout_cb(evutil_socket_t fd, short what, void *userdata)
{
	(void)fd;
	(void)what;
	event_base_loopbreak(((struct load *)userdata)->base);
}

static int tls_setup(struct load *l)
{
	struct in6_addr a6;
	struct in_addr a4;

	memset(&l->addr, 0, sizeof(l->addr));
	if (inet_pton(AF_INET, l->o.host, &a4) == 1) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&l->addr;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(l->o.port);
		sin->sin_addr = a4;
		l->addr_len = sizeof(*sin);
	} else if (inet_pton(AF_INET6, l->o.host, &a6) == 1) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&l->addr;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(l->o.port);
		sin6->sin6_addr = a6;
		l->addr_len = sizeof(*sin6);
	} else {
		fprintf(stderr, "dps-load: --host must be a numeric loopback address\n");
		return -EINVAL;
	}
	l->host_is_ip = true;
	l->ssl_ctx = SSL_CTX_new(TLS_client_method());
	if (!l->ssl_ctx || SSL_CTX_set_min_proto_version(l->ssl_ctx, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_load_verify_locations(l->ssl_ctx, l->o.ca_file, NULL) != 1) {
		fprintf(stderr, "dps-load: %s: cannot load the CA certificate\n", l->o.ca_file);
		return -EIO;
	}
	SSL_CTX_set_verify(l->ssl_ctx, SSL_VERIFY_PEER, NULL);
	return 0;
}

/* --- CPU accounting ------------------------------------------------------------ */

/* user + system CPU seconds of this process. */
static double self_cpu_s(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) < 0)
		return 0;
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* CPU seconds the whole machine has spent running processes (user, nice
 * and system time from /proc/stat). Interrupt and softirq time is left
 * out: processes are not charged for it either, and the loopback traffic
 * of the benchmark itself is most of it. */
static double machine_busy_s(void)
{
	unsigned long long v[3] = {0};
	char line[512], *p, *end;
	FILE *f = fopen("/proc/stat", "re");

	if (!f)
		return 0;
	p = fgets(line, sizeof(line), f);
	fclose(f);
	if (!p || strncmp(line, "cpu ", 4) != 0)
		return 0;
	p = line + 4;
	for (int i = 0; i < 3; i++) {
		errno = 0;
		v[i] = strtoull(p, &end, 10);
		if (errno != 0 || end == p)
			return 0;
		p = end;
	}
	return (double)(v[0] + v[1] + v[2]) / (double)sysconf(_SC_CLK_TCK);
}

/* ppid and utime + stime (ticks) from /proc/PID/stat. 0 or -1. */
static int proc_stat(const char *pid, uint64_t *ret_ppid, uint64_t *ret_ticks)
{
	char path[64], text[1024];
	const char *p;
	size_t n;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%s/stat", pid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = '\0';
	/* "pid (comm) state ppid ..." - comm may hold anything but ends at the last ')'. */
	p = strrchr(text, ')');
	if (!p)
		return -1;
	p += 2;
	{
		char *end;
		unsigned long long v[15];

		/* fields 3..17: state, ppid, ..., utime (14), stime (15) */
		p = strchr(p, ' '); /* skip the state */
		for (int i = 4; i <= 15 && p; i++) {
			errno = 0;
			v[i - 4] = strtoull(p + 1, &end, 10);
			if (errno != 0 || end == p + 1)
				return -1;
			p = end;
		}
		if (!p)
			return -1;
		*ret_ppid = v[0];
		*ret_ticks = v[10] + v[11];
	}
	return 0;
}

/* CPU seconds used so far by process root and every process below it. */
static double tree_cpu_s(uint64_t root)
{
	struct proc {
		uint64_t pid, ppid, ticks;
	} *procs = NULL;
	size_t n = 0, cap = 0;
	uint64_t total = 0;
	struct dirent *de;
	DIR *dir;

	if (root == 0)
		return 0;
	dir = opendir("/proc");
	if (!dir)
		return 0;
	while ((de = readdir(dir))) {
		uint64_t pid, ppid, ticks;

		if (bench_parse_u64(de->d_name, UINT32_MAX, &pid) < 0 ||
		    proc_stat(de->d_name, &ppid, &ticks) < 0)
			continue;
		if (n == cap) {
			struct proc *p = reallocarray(procs, cap ? cap * 2 : 256, sizeof(*p));

			if (!p)
				break;
			procs = p;
			cap = cap ? cap * 2 : 256;
		}
		procs[n++] = (struct proc){pid, ppid, ticks};
	}
	closedir(dir);
	/* Processes below root: repeat until no new one is found (the tree is shallow). */
	{
		bool *in = calloc(n ? n : 1, sizeof(*in));
		bool grew = true;

		for (size_t i = 0; in && i < n; i++)
			in[i] = procs[i].pid == root;
		while (in && grew) {
			grew = false;
			for (size_t i = 0; i < n; i++) {
				if (in[i])
					continue;
				for (size_t j = 0; j < n; j++)
					if (in[j] && procs[j].pid == procs[i].ppid) {
						in[i] = grew = true;
						break;
					}
			}
		}
		for (size_t i = 0; in && i < n; i++)
			if (in[i])
				total += procs[i].ticks;
		free(in);
	}
	free(procs);
	return (double)total / (double)sysconf(_SC_CLK_TCK);
}

/* --- verification --------------------------------------------------------------- */

static int verify_hub(struct load *l, uint64_t *ret_present, uint64_t *ret_missing)
{
	_cleanup_(store_closep) struct store *s = NULL;
	struct err e = {0};
	int r;

	*ret_present = *ret_missing = 0;
	r = store_open(l->o.verify_store, &s, &e);
	if (r < 0) {
		fprintf(stderr, "dps-load: --verify-store: %s\n", err_msg(&e, r));
		return r;
	}
	for (uint64_t i = 0; i < l->o.count; i++) {
		struct device *d = &l->devices[i];

		if (!d->assigned)
			continue;
		err_clear(&e);
		r = store_get(s, STORE_HUB_DEVICES, STORE_KEY(d->hub, d->id), NULL, NULL, &e);
		if (r == 0)
			(*ret_present)++;
		else if (r == -ENOENT)
			(*ret_missing)++;
		else {
			fprintf(stderr, "dps-load: --verify-store: %s\n", err_msg(&e, r));
			return r;
		}
	}
	return 0;
}

static double nonneg(double v)
{
	return v > 0 ? v : 0;
}

/* --- report ------------------------------------------------------------------- */

struct results {
	double wall_s, rate_overall, rate_steady;
	double p50, p90, p99, max, mean;
	uint64_t errors, unfinished;
	double client_cpu_s, server_cpu_s, machine_cpu_s;
	bool verified;
	uint64_t hub_present, hub_missing;
};

/* Registrations per second while the run was in steady state: between the
 * 10th and the 90th percentile of completions, which leaves out the start
 * (no device has finished its first Retry-After yet) and the tail. */
static double steady_rate(const struct load *l)
{
	size_t a, b;

	if (l->succeeded < 20)
		return 0;
	a = l->succeeded / 10;
	b = l->succeeded - l->succeeded / 10 - 1;
	if (l->done_ns[b] <= l->done_ns[a])
		return 0;
	return (double)(b - a) / ((double)(l->done_ns[b] - l->done_ns[a]) / 1e9);
}

static void print_results(struct load *l, struct results *res)
{
	const struct options *o = &l->o;

	printf("dps-load: %s registrations against %s:%u (%s)\n",
	       o->kind == BENCH_TPM ? "TPM" : "symmetric-key", o->host, o->port,
	       o->poll_ms >= 0 ? "polling every --poll-ms" : "honouring Retry-After");
	if (o->poll_ms >= 0)
		printf("  poll interval         %" PRId64 " ms\n", o->poll_ms);
	printf("  devices               %" PRIu64 " (enrollments %" PRIu64 " + %" PRIu64
	       " * i), %" PRIu64 " connections, %" PRIu64 " in flight at most%s\n",
	       o->count, o->first, o->stride, o->connections, o->inflight,
	       o->rate ? "" : " (closed loop)");
	if (o->rate)
		printf("  offered rate          %" PRIu64 " devices/s\n", o->rate);
	printf("  assigned              %" PRIu64 "\n", l->succeeded);
	printf("  errors                %" PRIu64 "\n", res->errors);
	for (size_t i = 0; i < l->n_errors; i++) {
		printf("    %8" PRIu64 "  %s\n", l->errors[i].n, l->errors[i].kind);
		if (l->errors[i].example[0])
			printf("              e.g. %s\n", l->errors[i].example);
	}
	if (l->errors_other)
		printf("    %8" PRIu64 "  (other kinds)\n", l->errors_other);
	if (res->unfinished)
		printf("  unfinished            %" PRIu64 " (stopped after %" PRIu64 " s)\n",
		       res->unfinished, o->max_seconds);
	printf("  wall time             %.2f s\n", res->wall_s);
	printf("  registrations/s       %.0f steady (10%%-90%% of completions), %.0f overall\n",
	       res->rate_steady, res->rate_overall);
	printf("  latency ms            p50 %.1f  p90 %.1f  p99 %.1f  max %.1f  mean %.1f\n",
	       res->p50, res->p90, res->p99, res->max, res->mean);
	for (int i = 0; i < REQ_COUNT; i++) {
		if (l->req_latency[i].n == 0)
			continue;
		printf("  %-28s %8" PRIu64 " requests, ms p50 %.1f  p99 %.1f  max %.1f\n",
		       req_names[i], l->requests[i],
		       bench_samples_percentile(&l->req_latency[i], 50),
		       bench_samples_percentile(&l->req_latency[i], 99),
		       bench_samples_percentile(&l->req_latency[i], 100));
	}
	printf("  polls per device      %.2f\n",
	       l->finished ? (double)l->polls / (double)l->finished : 0.0);
	printf("  final PUT answers     %" PRIu64 " (no poll needed)\n", l->final_puts);
	printf("  waits for a connection %" PRIu64
	       ", mean %.2f ms, max %.1f ms; reconnects %" PRIu64 "\n",
	       l->queued_requests,
	       l->queued_requests ? (double)l->queue_wait_ns_sum / (double)l->queued_requests / 1e6
				  : 0.0,
	       (double)l->queue_wait_ns_max / 1e6, l->reconnects);
	printf("  client CPU            %.2f s (%.3f ms per registration)\n", res->client_cpu_s,
	       l->succeeded ? res->client_cpu_s * 1e3 / (double)l->succeeded : 0.0);
	if (o->server_pid)
		printf("  server CPU            %.2f s (%.3f ms per registration)\n",
		       res->server_cpu_s,
		       l->succeeded ? res->server_cpu_s * 1e3 / (double)l->succeeded : 0.0);
	/* Other processes on the machine compete with the server for the
	 * same cores: say how much. */
	printf("  machine CPU in processes %.2f s of %.2f s available (%ld CPUs); other processes "
	       "%.2f s\n",
	       res->machine_cpu_s, res->wall_s * (double)sysconf(_SC_NPROCESSORS_ONLN),
	       sysconf(_SC_NPROCESSORS_ONLN),
	       o->server_pid ? nonneg(res->machine_cpu_s - res->server_cpu_s - res->client_cpu_s)
			     : 0.0);
	if (res->verified)
		printf("  hub devices           %" PRIu64 " present, %" PRIu64 " missing\n",
		       res->hub_present, res->hub_missing);
}

static int write_json(struct load *l, const struct results *res)
{
	_cleanup_json_ json_t *j = NULL, *errors = json_object(), *reqs = json_object();
	const struct options *o = &l->o;

	if (!errors || !reqs)
		return -ENOMEM;
	for (size_t i = 0; i < l->n_errors; i++)
		json_object_set_new(errors, l->errors[i].kind,
				    json_integer((json_int_t)l->errors[i].n));
	if (l->errors_other)
		json_object_set_new(errors, "other", json_integer((json_int_t)l->errors_other));
	for (int i = 0; i < REQ_COUNT; i++)
		if (l->req_latency[i].n)
			json_object_set_new(
			    reqs, req_names[i],
			    json_pack("{s:I, s:f, s:f, s:f}", "count", (json_int_t)l->requests[i],
				      "p50_ms", bench_samples_percentile(&l->req_latency[i], 50),
				      "p99_ms", bench_samples_percentile(&l->req_latency[i], 99),
				      "max_ms", bench_samples_percentile(&l->req_latency[i], 100)));
	j = json_pack(
	    "{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:f, s:f, s:f, s:f, "
	    "s:f, s:f, s:O, s:O, s:f, s:f, s:f, s:f}",
	    "label", strempty(o->label), "kind", bench_kind_name(o->kind), "mode",
	    o->poll_ms >= 0 ? "poll" : "retry-after", "poll_ms", (json_int_t)o->poll_ms, "devices",
	    (json_int_t)o->count, "connections", (json_int_t)o->connections, "inflight",
	    (json_int_t)o->inflight, "rate", (json_int_t)o->rate, "assigned",
	    (json_int_t)l->succeeded, "errors", (json_int_t)res->errors, "unfinished",
	    (json_int_t)res->unfinished, "wall_s", res->wall_s, "registrations_per_s",
	    res->rate_steady, "registrations_per_s_overall", res->rate_overall, "p50_ms", res->p50,
	    "p90_ms", res->p90, "p99_ms", res->p99, "max_ms", res->max, "mean_ms", res->mean,
	    "error_kinds", errors, "requests", reqs, "polls_per_device",
	    l->finished ? (double)l->polls / (double)l->finished : 0.0, "client_cpu_s",
	    res->client_cpu_s, "server_cpu_s", res->server_cpu_s, "machine_busy_cpu_s",
	    res->machine_cpu_s);
	if (j)
		json_object_set_new(j, "final_put_answers",
				    json_integer((json_int_t)l->final_puts));
	if (j && o->server_pid && res->wall_s > 0)
		json_object_set_new(
		    j, "other_processes_cpus",
		    json_real(nonneg((res->machine_cpu_s - res->server_cpu_s - res->client_cpu_s) /
				     res->wall_s)));
	if (!j)
		return -ENOMEM;
	if (res->verified) {
		json_object_set_new(j, "hub_devices_present",
				    json_integer((json_int_t)res->hub_present));
		json_object_set_new(j, "hub_devices_missing",
				    json_integer((json_int_t)res->hub_missing));
	}
	if (json_dump_file(j, o->json_file, JSON_INDENT(2)) != 0) {
		fprintf(stderr, "dps-load: %s: cannot write\n", o->json_file);
		return -EIO;
	}
	return 0;
}

/* One row of the report's table (the script writes the header):
 * | run | reg/s | p50 | p90 | p99 | max | assigned | errors | polls/reg |
 * server CPU ms/reg | client CPU ms/reg | other load | hub devices | */
static int append_md_row(struct load *l, const struct results *res)
{
	const struct options *o = &l->o;
	FILE *f = fopen(o->md_file, "ae");
	char server[32] = "-", verified[48] = "-", others[32] = "-";

	if (!f) {
		fprintf(stderr, "dps-load: %s: %s\n", o->md_file, strerror(errno));
		return -errno;
	}
	if (o->server_pid && l->succeeded)
		snprintf(server, sizeof(server), "%.2f",
			 res->server_cpu_s * 1e3 / (double)l->succeeded);
	/* Process times and /proc/stat are sampled differently: a small
	 * negative difference means none. */
	if (o->server_pid && res->wall_s > 0)
		snprintf(others, sizeof(others), "%.2f CPUs",
			 nonneg((res->machine_cpu_s - res->server_cpu_s - res->client_cpu_s) /
				res->wall_s));
	if (res->verified)
		snprintf(verified, sizeof(verified), "%" PRIu64 "/%" PRIu64, res->hub_present,
			 l->succeeded);
	fprintf(f,
		"| %s | %.0f | %.1f | %.1f | %.1f | %.1f | %" PRIu64 "/%" PRIu64 " | %" PRIu64
		" | %.2f | %s | %.2f | %s | %s |\n",
		strempty(o->label), res->rate_steady, res->p50, res->p90, res->p99, res->max,
		l->succeeded, o->count, res->errors + res->unfinished,
		l->finished ? (double)l->polls / (double)l->finished : 0.0, server,
		l->succeeded ? res->client_cpu_s * 1e3 / (double)l->succeeded : 0.0, others,
		verified);
	if (fclose(f) != 0) {
		fprintf(stderr, "dps-load: %s: %s\n", o->md_file, strerror(errno));
		return -EIO;
	}
	return 0;
}

/* --- main ----------------------------------------------------------------------- */

static int usage(FILE *out)
{
	fprintf(out,
		"usage: dps-load --kind sym|tpm --ca FILE [options]\n"
		"  --host ADDR          DPS address (127.0.0.2)\n"
		"  --port N             (443)\n"
		"  --id-scope SCOPE     (0ne00000A0A)\n"
		"  --seed TEXT          key seed, as given to dps-populate (edgeid-bench)\n"
		"  --tpm-keys FILE      the TPM pool dps-populate enrolled (--kind tpm)\n"
		"  --first N --count N --stride N\n"
		"                       register enrollments first + i * stride, i < count\n"
		"                       (0, 1000, 1)\n"
		"  --connections N      keep-alive TLS connections (32)\n"
		"  --inflight N         devices registering at once (1000)\n"
		"  --rate N             start N devices per second (default: closed loop)\n"
		"  --poll-ms N          poll every N ms instead of honouring Retry-After\n"
		"  --max-seconds N      stop after N seconds (120)\n"
		"  --unwrap-final       TPM: also unwrap the hub-key blob (2 RSA decryptions)\n"
		"  --verify-store URL   afterwards, check the hub devices in this store\n"
		"  --server-pid PID     report the CPU time of PID and its children\n"
		"  --json FILE          write the results as JSON\n"
		"  --md-row FILE        append a Markdown table row, labelled --label TEXT\n"
		"  --enroll-key KEY     first create each device's enrollment through the\n"
		"                       service API, signed with this service policy key\n"
		"  --enroll-policy NAME that policy's name (" DEFAULT_ENROLL_POLICY ")\n"
		"  --ack-log FILE       append a line per acknowledgement as it arrives:\n"
		"                       \"enrollment ID\", \"accepted ID OPERATION-ID\" (202),\n"
		"                       \"registration ID HUB DEVICE-ID\" (assigned)\n"
		"  --help               this text\n");
	return 2;
}

static int parse_options(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
	    {"kind", required_argument, NULL, 'k'},
	    {"host", required_argument, NULL, 'H'},
	    {"port", required_argument, NULL, 'P'},
	    {"ca", required_argument, NULL, 'c'},
	    {"id-scope", required_argument, NULL, 'i'},
	    {"seed", required_argument, NULL, 's'},
	    {"tpm-keys", required_argument, NULL, 't'},
	    {"first", required_argument, NULL, 'f'},
	    {"count", required_argument, NULL, 'n'},
	    {"stride", required_argument, NULL, 'S'},
	    {"connections", required_argument, NULL, 'C'},
	    {"inflight", required_argument, NULL, 'D'},
	    {"rate", required_argument, NULL, 'r'},
	    {"poll-ms", required_argument, NULL, 'p'},
	    {"max-seconds", required_argument, NULL, 'm'},
	    {"unwrap-final", no_argument, NULL, 'u'},
	    {"verify-store", required_argument, NULL, 'v'},
	    {"server-pid", required_argument, NULL, 'x'},
	    {"json", required_argument, NULL, 'j'},
	    {"md-row", required_argument, NULL, 'M'},
	    {"label", required_argument, NULL, 'L'},
	    {"ack-log", required_argument, NULL, 'a'},
	    {"enroll-key", required_argument, NULL, 'e'},
	    {"enroll-policy", required_argument, NULL, 'E'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	bool have_kind = false;
	uint64_t v;
	int c;

	*o = (struct options){
	    .host = "127.0.0.2",
	    .port = 443,
	    .id_scope = "0ne00000A0A",
	    .seed = DEFAULT_SEED,
	    .count = 1000,
	    .stride = 1,
	    .connections = 32,
	    .inflight = 1000,
	    .poll_ms = -1,
	    .max_seconds = 120,
	    .enroll_policy = DEFAULT_ENROLL_POLICY,
	};
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		int r = 0;

		switch (c) {
		case 'k':
			r = bench_kind_parse(optarg, &o->kind);
			have_kind = r == 0;
			break;
		case 'H':
			o->host = optarg;
			break;
		case 'P':
			r = bench_parse_u64(optarg, 65535, &v);
			o->port = (uint16_t)v;
			break;
		case 'c':
			o->ca_file = optarg;
			break;
		case 'i':
			o->id_scope = optarg;
			break;
		case 's':
			o->seed = optarg;
			break;
		case 't':
			o->tpm_keys = optarg;
			break;
		case 'f':
			r = bench_parse_u64(optarg, DEVICES_MAX * 10ull, &o->first);
			break;
		case 'n':
			r = bench_parse_u64(optarg, DEVICES_MAX, &o->count);
			break;
		case 'S':
			r = bench_parse_u64(optarg, DEVICES_MAX, &o->stride);
			break;
		case 'C':
			r = bench_parse_u64(optarg, CONNECTIONS_MAX, &o->connections);
			break;
		case 'D':
			r = bench_parse_u64(optarg, DEVICES_MAX, &o->inflight);
			break;
		case 'r':
			r = bench_parse_u64(optarg, 1000000, &o->rate);
			break;
		case 'p':
			r = bench_parse_u64(optarg, 60000, &v);
			o->poll_ms = (int64_t)v;
			break;
		case 'm':
			r = bench_parse_u64(optarg, 24 * 3600, &o->max_seconds);
			break;
		case 'u':
			o->unwrap_final = true;
			break;
		case 'v':
			o->verify_store = optarg;
			break;
		case 'x':
			r = bench_parse_u64(optarg, UINT32_MAX, &o->server_pid);
			break;
		case 'j':
			o->json_file = optarg;
			break;
		case 'M':
			o->md_file = optarg;
			break;
		case 'L':
			o->label = optarg;
			break;
		case 'a':
			o->ack_log = optarg;
			break;
		case 'e':
			o->enroll_key = optarg;
			break;
		case 'E':
			o->enroll_policy = optarg;
			break;
		case 'h':
			usage(stdout);
			return -1;
		default:
			return usage(stderr);
		}
		if (r < 0) {
			fprintf(stderr, "dps-load: %s: not valid here\n", optarg);
			return 2;
		}
	}
	if (optind != argc || !have_kind || !o->ca_file || o->count == 0 || o->stride == 0 ||
	    o->connections == 0 || o->inflight == 0 || o->max_seconds == 0 ||
	    (o->kind == BENCH_TPM && !o->tpm_keys))
		return usage(stderr);
	return 0;
}

static int run(struct load *l)
{
	struct timeval tick = {.tv_usec = 1000};
	struct timeval deadline = {.tv_sec = (time_t)l->o.max_seconds};
	struct timeval connect_to = {.tv_sec = CONNECT_TIMEOUT_S};
	struct results res = {0};
	double cpu0, server0, machine0;
	int r;

	/* Connect every connection before the clock starts. */
	l->connect_timer = evtimer_new(l->base, connect_timeout_cb, l);
	if (!l->connect_timer || evtimer_add(l->connect_timer, &connect_to) < 0)
		return -ENOMEM;
	for (uint64_t i = 0; i < l->o.connections; i++) {
		l->conns[i].l = l;
		l->conns[i].no = (unsigned)i;
		r = conn_open(&l->conns[i]);
		if (r < 0) {
			fprintf(stderr, "dps-load: connecting to %s:%u: %s\n", l->o.host, l->o.port,
				strerror(-r));
			return r;
		}
	}
	event_base_dispatch(l->base);
	evtimer_del(l->connect_timer);
	if (l->n_connected != l->o.connections) {
		fprintf(stderr, "dps-load: %zu of %" PRIu64 " TLS connections came up\n",
			l->n_connected, l->o.connections);
		return -ECONNREFUSED;
	}

	cpu0 = self_cpu_s();
	server0 = tree_cpu_s(l->o.server_pid);
	machine0 = machine_busy_s();
	l->timed_phase = true;
	l->t_start = bench_now_ns();
	l->deadline = evtimer_new(l->base, deadline_cb, l);
	if (!l->deadline || evtimer_add(l->deadline, &deadline) < 0)
		return -ENOMEM;
	if (l->o.rate > 0) {
		l->ticker = event_new(l->base, -1, EV_PERSIST, ticker_cb, l);
		if (!l->ticker || evtimer_add(l->ticker, &tick) < 0)
			return -ENOMEM;
	}
	start_devices(l);
	event_base_dispatch(l->base);
	if (!l->t_end)
		l->t_end = bench_now_ns();
	res.client_cpu_s = self_cpu_s() - cpu0;
	res.server_cpu_s = l->o.server_pid ? tree_cpu_s(l->o.server_pid) - server0 : 0;
	res.machine_cpu_s = machine_busy_s() - machine0;

	res.wall_s = (double)(l->t_end - l->t_start) / 1e9;
	res.rate_overall = res.wall_s > 0 ? (double)l->succeeded / res.wall_s : 0;
	res.rate_steady = steady_rate(l);
	res.p50 = bench_samples_percentile(&l->latency, 50);
	res.p90 = bench_samples_percentile(&l->latency, 90);
	res.p99 = bench_samples_percentile(&l->latency, 99);
	res.max = bench_samples_percentile(&l->latency, 100);
	res.mean = bench_samples_mean(&l->latency);
	res.unfinished = l->o.count - l->finished;
	res.errors = l->finished - l->succeeded;
	if (l->o.verify_store) {
		r = verify_hub(l, &res.hub_present, &res.hub_missing);
		res.verified = r >= 0;
	}
	print_results(l, &res);
	if (l->o.json_file && write_json(l, &res) < 0)
		return -EIO;
	if (l->o.md_file && append_md_row(l, &res) < 0)
		return -EIO;
	return res.errors == 0 && res.unfinished == 0 && (!res.verified || res.hub_missing == 0)
		   ? 0
		   : 1;
}

static void load_free(struct load *l)
{
	for (uint64_t i = 0; l->conns && i < l->o.connections; i++)
		if (l->conns[i].bev)
			bufferevent_free(l->conns[i].bev);
	for (uint64_t i = 0; l->devices && i < l->o.count; i++) {
		free(l->devices[i].token);
		free(l->devices[i].operation_id);
		if (l->devices[i].timer)
			event_free(l->devices[i].timer);
	}
	for (size_t i = 0; i < l->n_hubs; i++)
		free(l->hubs[i]);
	if (l->ticker)
		event_free(l->ticker);
	if (l->deadline)
		event_free(l->deadline);
	if (l->connect_timer)
		event_free(l->connect_timer);
	free(l->conns);
	free(l->devices);
	free(l->done_ns);
	bench_samples_free(&l->latency);
	for (int i = 0; i < REQ_COUNT; i++)
		bench_samples_free(&l->req_latency[i]);
	bench_tpm_pool_free(l->pool);
	if (l->ack_fd >= 0)
		close(l->ack_fd);
	if (l->service_token) {
		explicit_bzero(l->service_token, strlen(l->service_token));
		free(l->service_token);
	}
	if (l->base)
		event_base_free(l->base);
	SSL_CTX_free(l->ssl_ctx);
}

/* The service SAS of --enroll-key: sr = the DPS host, as the service
 * verifies it. */
static int service_token(struct load *l, struct err *e)
{
	_cleanup_buf_ struct buf token = {0};
	int r;

	buf_init_secret(&token, SAS_TOKEN_MAX);
	r = sas_token_create(l->o.host, l->o.enroll_key, (uint64_t)time(NULL) + SAS_LIFETIME_S,
			     l->o.enroll_policy, 0, &token, e);
	if (r < 0)
		return r;
	l->service_token = buf_steal(&token, NULL);
	return l->service_token ? 0 : -ENOMEM;
}

int main(int argc, char **argv)
{
	struct load l = {.ack_fd = -1};
	struct err e = {0};
	int r;

	r = parse_options(argc, argv, &l.o);
	if (r < 0)
		return 0; /* --help */
	if (r != 0)
		return r;
	if (l.o.first + (l.o.count - 1) * l.o.stride >= DEVICES_MAX * 10ull) {
		fprintf(stderr, "dps-load: enrollment indexes out of range\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	if (l.o.ack_log) {
		l.ack_fd = open(l.o.ack_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (l.ack_fd < 0) {
			fprintf(stderr, "dps-load: %s: %s\n", l.o.ack_log, strerror(errno));
			return 1;
		}
	}
	if (l.o.enroll_key) {
		r = service_token(&l, &e);
		if (r < 0) {
			fprintf(stderr, "dps-load: --enroll-key: %s\n", err_msg(&e, r));
			load_free(&l);
			return 1;
		}
	}
	if (l.o.kind == BENCH_TPM) {
		r = bench_tpm_pool_load(l.o.tpm_keys, 0, &l.pool, &e);
		if (r < 0) {
			fprintf(stderr, "dps-load: the TPM pool: %s\n", err_msg(&e, r));
			return 1;
		}
	}
	l.base = event_base_new();
	l.conns = calloc(l.o.connections, sizeof(*l.conns));
	l.devices = calloc(l.o.count, sizeof(*l.devices));
	l.done_ns = calloc(l.o.count, sizeof(*l.done_ns));
	if (!l.base || !l.conns || !l.devices || !l.done_ns) {
		fprintf(stderr, "dps-load: out of memory\n");
		load_free(&l);
		return 1;
	}
	for (uint64_t i = 0; i < l.o.count; i++) {
		l.devices[i].l = &l;
		l.devices[i].index = l.o.first + i * l.o.stride;
		bench_registration_id(l.o.kind, l.devices[i].index, l.devices[i].id);
	}
	r = tls_setup(&l);
	if (r >= 0)
		r = run(&l);
	load_free(&l);
	return r < 0 ? 1 : r;
}
