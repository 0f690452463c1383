/* SPDX-License-Identifier: MIT */
/*
 * identityd's DPS client and cloud request rules against a scripted DPS:
 * an HTTP server on 127.0.0.1 (in a thread of this test) that answers each
 * request with the next scripted response and records what it received.
 * Sleeps are recorded instead of slept, so the waits identityd chooses
 * (Retry-After honoured and clamped, aziot's 429 schedule, the transport
 * retry back-off) are asserted exactly, and the tests take no time.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/json.h"
#include "common/log.h"
#include "device/identityd/identityd_private.h"

#define MAX_STEPS 16

struct step {
	int status;
	const char *retry_after; /* NULL: no header */
	const char *body;
};

static struct {
	pthread_t thread;
	pthread_mutex_t lock;
	struct event_base *base;
	struct evhttp *http;
	uint16_t port;
	int refused_fd;
	uint16_t refused_port;
	int wake[2];
	struct event *wake_ev;
	/* the script and what was received, under lock */
	struct step steps[MAX_STEPS];
	size_t n_steps, next;
	char seen[MAX_STEPS][512];
	/* sleeps asked for */
	unsigned sleeps[32];
	size_t n_sleeps;
	char payload[256];
} fx;

static void on_request(struct evhttp_request *req, void *arg)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req), *out = evbuffer_new();
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	const char *method = evhttp_request_get_command(req) == EVHTTP_REQ_PUT ? "PUT" : "GET";
	char body[256] = "";
	size_t n = evbuffer_get_length(in);
	struct step st = {500, NULL, "{\"message\":\"the script is over\"}"};

	(void)arg;
	if (n >= sizeof(body))
		n = sizeof(body) - 1;
	evbuffer_remove(in, body, n);
	body[n] = '\0';
	pthread_mutex_lock(&fx.lock);
	if (fx.next < fx.n_steps) {
		snprintf(fx.seen[fx.next], sizeof(fx.seen[0]), "%s %s %s", method,
			 evhttp_request_get_uri(req), body);
		st = fx.steps[fx.next++];
	}
	pthread_mutex_unlock(&fx.lock);
	evhttp_add_header(h, "Content-Type", "application/json; charset=utf-8");
	if (st.retry_after)
		evhttp_add_header(h, "Retry-After", st.retry_after);
	if (st.body)
		evbuffer_add(out, st.body, strlen(st.body));
	evhttp_send_reply(req, st.status, "x", out);
	evbuffer_free(out);
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what, (void)arg;
	event_base_loopbreak(fx.base);
}

static void *server_thread(void *arg)
{
	sigset_t set;

	(void)arg;
	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	event_base_dispatch(fx.base);
	return NULL;
}

static uint16_t socket_port(int fd)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);

	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	return ntohs(sa.sin_port);
}

static int setup(void **state)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	struct evhttp_bound_socket *bs;
	FILE *f;

	(void)state;
	log_set_level(LOG_LEVEL_WARN);
	pthread_mutex_init(&fx.lock, NULL);
	fx.base = event_base_new();
	fx.http = evhttp_new(fx.base);
	assert_non_null(fx.http);
	evhttp_set_gencb(fx.http, on_request, NULL);
	evhttp_set_allowed_methods(fx.http, EVHTTP_REQ_GET | EVHTTP_REQ_PUT);
	bs = evhttp_bind_socket_with_handle(fx.http, "127.0.0.1", 0);
	assert_non_null(bs);
	fx.port = socket_port(evhttp_bound_socket_get_fd(bs));
	/* Bound, never listening: connections are refused. */
	fx.refused_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fx.refused_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	fx.refused_port = socket_port(fx.refused_fd);
	assert_int_equal(pipe2(fx.wake, O_CLOEXEC | O_NONBLOCK), 0);
	fx.wake_ev = event_new(fx.base, fx.wake[0], EV_READ, on_wake, NULL);
	assert_int_equal(event_add(fx.wake_ev, NULL), 0);
	snprintf(fx.payload, sizeof(fx.payload), "/tmp/edgeid-test-identityd-dps-%d.json",
		 (int)getpid());
	f = fopen(fx.payload, "we");
	assert_non_null(f);
	fputs("{\"site\": \"lab\"}\n", f);
	fclose(f);
	assert_int_equal(pthread_create(&fx.thread, NULL, server_thread, NULL), 0);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	assert_int_equal(write(fx.wake[1], "x", 1), 1);
	assert_int_equal(pthread_join(fx.thread, NULL), 0);
	event_free(fx.wake_ev);
	close(fx.wake[0]);
	close(fx.wake[1]);
	close(fx.refused_fd);
	evhttp_free(fx.http);
	event_base_free(fx.base);
	unlink(fx.payload);
	return 0;
}

static void script(const struct step *steps, size_t n)
{
	pthread_mutex_lock(&fx.lock);
	memcpy(fx.steps, steps, n * sizeof(*steps));
	fx.n_steps = n;
	fx.next = 0;
	memset(fx.seen, 0, sizeof(fx.seen));
	pthread_mutex_unlock(&fx.lock);
	fx.n_sleeps = 0;
}

static void fake_sleep(unsigned ms)
{
	if (fx.n_sleeps < ARRAY_SIZE(fx.sleeps))
		fx.sleeps[fx.n_sleeps++] = ms;
}

/* An X.509 DPS device (no SAS to sign, so no keyd) at the scripted DPS. */
struct fixture {
	struct identityd_settings s;
	struct identityd_job_context ctx;
	char base[64];
};

static void fixture_init(struct fixture *f, bool payload)
{
	*f = (struct fixture){0};
	snprintf(f->base, sizeof(f->base), "http://127.0.0.1:%u", fx.port);
	f->s.source = IDENTITYD_SOURCE_DPS;
	f->s.auth = IDENTITYD_AUTH_X509;
	f->s.dps_base_url = f->base;
	f->s.scope_id = "0ne00000A0A";
	f->s.cloud_timeout_sec = 10;
	f->s.cloud_retries = 1;
	if (payload) {
		f->s.payload_path = fx.payload;
		f->s.payload_uri = "file:///payload.json";
	}
	f->ctx.s = &f->s;
	assert_int_equal(identityd_cloud_init(&f->ctx.cloud, &f->s), 0);
	f->ctx.cloud.sleep_ms = fake_sleep;
	f->ctx.registration_id = "reg1";
}

static void fixture_clear(struct fixture *f)
{
	identityd_cloud_clear(&f->ctx.cloud);
}

/* Run a registration; returns its errno and fault, with e. */
static int run(struct identityd_dps_result *r, enum identityd_fault *fault, struct err *e)
{
	struct fixture f;
	int rc;

	fixture_init(&f, false);
	err_clear(e);
	rc = identityd_dps_register(&f.ctx, r, fault, e);
	fixture_clear(&f);
	return rc;
}

#define OP "{\"operationId\":\"4.op1\",\"status\":\"assigning\"}"
#define ASSIGNING                                                                                  \
	"{\"operationId\":\"4.op1\",\"status\":\"assigning\",\"registrationState\":"               \
	"{\"registrationId\":\"reg1\",\"status\":\"assigning\"}}"
#define REG "/0ne00000A0A/registrations/reg1"

static void test_register_and_poll(void **state)
{
	const struct step steps[] = {
	    {202, "3", OP},
	    {202, NULL, ASSIGNING},
	    {202, "0", ASSIGNING},
	    {202, "100", ASSIGNING},
	    {200, "1",
	     "{\"operationId\":\"4.op1\",\"status\":\"assigned\",\"registrationState\":{"
	     "\"registrationId\":\"reg1\",\"assignedHub\":\"hub1.example\",\"deviceId\":\"dev1\","
	     "\"status\":\"assigned\"}}"},
	};
	struct identityd_dps_result r = {0};
	enum identityd_fault fault;
	struct fixture f;
	struct err e = {0};

	(void)state;
	script(steps, ARRAY_SIZE(steps));
	fixture_init(&f, true);
	assert_int_equal(identityd_dps_register(&f.ctx, &r, &fault, &e), 0);
	fixture_clear(&f);
	assert_int_equal(fault, IDENTITYD_FAULT_NONE);
	assert_string_equal(r.assigned_hub, "hub1.example");
	assert_string_equal(r.device_id, "dev1");
	identityd_dps_result_clear(&r);
	/* aziot's requests: the payload read from its file, the same
	 * operation polled. */
	assert_string_equal(fx.seen[0],
			    "PUT " REG "/register?api-version=2021-06-01 "
			    "{\"registrationId\":\"reg1\",\"payload\":{\"site\":\"lab\"}}");
	for (int i = 1; i < 5; i++)
		assert_string_equal(fx.seen[i],
				    "GET " REG "/operations/4.op1?api-version=2021-06-01 ");
	/* What Retry-After said, within 1 s..30 s; 2 s without one. */
	assert_int_equal(fx.n_sleeps, 4);
	assert_int_equal(fx.sleeps[0], 3000);
	assert_int_equal(fx.sleeps[1], 2000);
	assert_int_equal(fx.sleeps[2], 1000);
	assert_int_equal(fx.sleeps[3], 30000);
}

static void expect_failure(const struct step *steps, size_t n, int code,
			   enum identityd_fault want_fault, const char *msg)
{
	struct identityd_dps_result r = {0};
	enum identityd_fault fault;
	struct err e = {0};

	script(steps, n);
	assert_int_equal(run(&r, &fault, &e), code);
	assert_int_equal(fault, want_fault);
	assert_string_equal(e.msg, msg);
	assert_null(r.assigned_hub);
}

#define STEPS(...)                                                                                 \
	(const struct step[]){__VA_ARGS__},                                                        \
	    sizeof((const struct step[]){__VA_ARGS__}) / sizeof(struct step)

static void test_register_errors(void **state)
{
	char msg[512];

	(void)state;
	snprintf(msg, sizeof(msg),
		 "DPS at http://127.0.0.1:%u does not serve ID scope '0ne00000A0A' (404 The ID "
		 "scope \"0ne00000A0A\" is not served here. (errorCode 404000)); check "
		 "provisioning.id_scope",
		 fx.port);
	expect_failure(
	    STEPS({404, NULL,
		   "{\"errorCode\":404000,\"message\":\"The ID scope \\\"0ne00000A0A\\\" "
		   "is not served here.\"}"}),
	    -ENOENT, IDENTITYD_FAULT_PERMANENT, msg);
	expect_failure(
	    STEPS({401, NULL, "{\"errorCode\":401002,\"message\":\"Unauthorized\"}"}), -EACCES,
	    IDENTITYD_FAULT_REFUSED,
	    "DPS refused registration 'reg1' in ID scope '0ne00000A0A' (401 Unauthorized "
	    "(errorCode 401002)); check that an enrollment for it exists and that the "
	    "device's certificate matches it");
	expect_failure(
	    STEPS({202, "1", OP}, {200, NULL,
				   "{\"operationId\":\"4.op1\",\"status\":\"disabled\","
				   "\"registrationState\":{\"registrationId\":\"reg1\",\"status\":"
				   "\"disabled\"}}"}),
	    -EPERM, IDENTITYD_FAULT_REFUSED,
	    "DPS refused registration 'reg1' in ID scope '0ne00000A0A': the enrollment "
	    "is disabled; enable it, then reprovision the device");
	expect_failure(
	    STEPS({202, "1", OP},
		  {200, NULL,
		   "{\"operationId\":\"4.op1\",\"status\":\"failed\",\"registrationState\":"
		   "{\"registrationId\":\"reg1\",\"errorCode\":500208,\"errorMessage\":"
		   "\"the linked hub cannot be reached\"}}"}),
	    -EPROTO, IDENTITYD_FAULT_NETWORK,
	    "DPS could not assign registration 'reg1': the linked hub cannot be reached "
	    "(errorCode 500208)");
	expect_failure(
	    STEPS({202, "1", OP},
		  {200, NULL,
		   "{\"operationId\":\"4.op1\",\"status\":\"failed\",\"registrationState\":"
		   "{\"registrationId\":\"reg1\",\"errorCode\":400209,\"errorMessage\":"
		   "\"no hub for this device\"}}"}),
	    -EPROTO, IDENTITYD_FAULT_PERMANENT,
	    "DPS could not assign registration 'reg1': no hub for this device (errorCode "
	    "400209)");
	expect_failure(STEPS({202, "1", OP}, {200, NULL, "{\"status\":\"unassigned\"}"}), -EPROTO,
		       IDENTITYD_FAULT_PERMANENT,
		       "DPS answered registration 'reg1' with status 'unassigned'");
	expect_failure(STEPS({503, NULL, NULL}), -EAGAIN, IDENTITYD_FAULT_NETWORK,
		       "DPS could not register the device (503 Service Unavailable)");
	expect_failure(STEPS({202, NULL, "not json"}), -EBADMSG, IDENTITYD_FAULT_NETWORK,
		       "DPS answered HTTP 202 with a body that is not a JSON object");
	expect_failure(STEPS({202, NULL, "{\"status\":\"assigning\"}"}), -EBADMSG,
		       IDENTITYD_FAULT_NETWORK,
		       "DPS accepted registration 'reg1' without an operationId");
	expect_failure(STEPS({202, "1", OP},
			     {200, NULL, "{\"status\":\"assigned\",\"registrationState\":{}}"}),
		       -EBADMSG, IDENTITYD_FAULT_NETWORK,
		       "DPS assigned registration 'reg1' but named no hub or device id");
	expect_failure(STEPS({202, "1", OP}, {404, NULL, "{\"message\":\"no such operation\"}"}),
		       -ENOENT, IDENTITYD_FAULT_NETWORK,
		       "DPS no longer knows the operation of registration 'reg1' (404 no such "
		       "operation)");
}

/* 429: Retry-After honoured (at least 1 s), at most 4 times; then the 429
 * is an answer like any other. */
static void test_throttling(void **state)
{
	(void)state;
	expect_failure(STEPS({429, "2", NULL}, {429, "0", NULL}, {429, "2", NULL}, {429, "2", NULL},
			     {429, "2", NULL}),
		       -EAGAIN, IDENTITYD_FAULT_NETWORK,
		       "DPS could not register the device (429 Too Many Requests)");
	assert_int_equal(fx.n_sleeps, 4);
	assert_int_equal(fx.sleeps[0], 2000);
	assert_int_equal(fx.sleeps[1], 1000);
	assert_int_equal(fx.sleeps[2], 2000);
	assert_int_equal(fx.sleeps[3], 2000);
	assert_int_equal(fx.next, 5);

	/* Without Retry-After, aziot's schedule: 60 s plus up to 10 s. */
	{
		struct identityd_dps_result r = {0};
		enum identityd_fault fault;
		struct err e = {0};

		script(STEPS({429, NULL, NULL}, {202, "1", OP},
			     {200, NULL,
			      "{\"status\":\"assigned\",\"registrationState\":{\"assignedHub\":"
			      "\"h\",\"deviceId\":\"d\"}}"}));
		assert_int_equal(run(&r, &fault, &e), 0);
		identityd_dps_result_clear(&r);
		assert_int_equal(fx.n_sleeps, 2);
		assert_in_range(fx.sleeps[0], 60000, 69999);
		assert_int_equal(fx.sleeps[1], 1000);
	}
}

/* Transport failures: cloud_retries more attempts, 1 s, 2 s, ... apart. */
static void test_transport_retries(void **state)
{
	_cleanup_http_client_response_ struct http_client_response resp = {0};
	struct identityd_settings s = {.cloud_timeout_sec = 5, .cloud_retries = 3};
	struct identityd_cloud c;
	struct http_client_request req = {0};
	char url[128], msg[256];
	struct err e = {0};

	(void)state;
	fx.n_sleeps = 0;
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/x", fx.refused_port);
	req.url = url;
	assert_int_equal(identityd_cloud_init(&c, &s), 0);
	c.sleep_ms = fake_sleep;
	assert_int_equal(identityd_cloud_perform(&c, &req, &resp, &e), -ECONNREFUSED);
	identityd_cloud_clear(&c);
	snprintf(msg, sizeof(msg), "connecting to http://127.0.0.1:%u: connection refused",
		 fx.refused_port);
	assert_string_equal(e.msg, msg);
	assert_int_equal(fx.n_sleeps, 3);
	assert_int_equal(fx.sleeps[0], 1000);
	assert_int_equal(fx.sleeps[1], 2000);
	assert_int_equal(fx.sleeps[2], 4000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_register_and_poll),
	    cmocka_unit_test(test_register_errors),
	    cmocka_unit_test(test_throttling),
	    cmocka_unit_test(test_transport_retries),
	};

	return cmocka_run_group_tests_name("identityd_dps", tests, setup, teardown);
}
