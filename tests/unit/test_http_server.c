/* SPDX-License-Identifier: MIT */
/*
 * The HTTP server on a real event loop (in a thread), spoken to by real
 * clients over unix sockets, TCP and TLS, with raw sockets so that the
 * exact bytes on the wire are what is asserted.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common/buf.h"
#include "common/http_server.h"
#include "common/log.h"
#include "common/peercred.h"

#define HELLO "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"

/* --- the server under test, in its own thread --------------------------- */

struct app {
	int aborts;  /* deferred requests whose client went away */
	int resets;  /* late answers that found the client gone */
	int pending; /* deferred requests not answered yet */
};

struct fixture {
	struct event_base *base;
	struct http_server *srv;
	struct event *stop_ev;
	int stop_pipe[2];
	pthread_t thread;
	bool running;
	bool stopping; /* set by the test thread once the loop is stopped */
	char dir[64];
	char sock[128];
	uint16_t port;
	struct app app; /* touched by the server thread only while it runs */
};

static int h_hello(struct http_request *req, void *userdata)
{
	return http_respond(req, 200, "text/plain", "hello", 5);
}

static int h_echo(struct http_request *req, void *userdata)
{
	size_t len;
	const void *body = http_request_body(req, &len);
	const char *ct = http_request_header(req, "content-type");

	return http_respond(req, 200, ct ? ct : "application/octet-stream", body, len);
}

static int h_len(struct http_request *req, void *userdata)
{
	char out[64];
	size_t len;

	(void)http_request_body(req, &len);
	snprintf(out, sizeof(out), "len=%zu", len);
	return http_respond(req, 200, "text/plain", out, strlen(out));
}

static int h_whoami(struct http_request *req, void *userdata)
{
	const struct peercred *pc = http_request_peercred(req);
	char out[128];

	if (pc)
		snprintf(out, sizeof(out), "pid=%ld uid=%ld gid=%ld remote=%s", (long)pc->pid,
			 (long)pc->uid, (long)pc->gid, http_request_remote_addr(req));
	else
		snprintf(out, sizeof(out), "none remote=%s", http_request_remote_addr(req));
	return http_respond(req, 200, "text/plain", out, strlen(out));
}

static int h_item_get(struct http_request *req, void *userdata)
{
	char out[256];

	snprintf(out, sizeof(out), "item=%s", http_request_path_param(req, "id"));
	return http_respond(req, 200, "text/plain", out, strlen(out));
}

static int h_item_delete(struct http_request *req, void *userdata)
{
	return http_respond(req, 204, NULL, NULL, 0);
}

static int h_query(struct http_request *req, void *userdata)
{
	char out[256];
	const char *a = http_request_query_param(req, "a");
	const char *b = http_request_query_param(req, "b");

	snprintf(out, sizeof(out), "a=%s b=%s n=%zu raw=%s", a ? a : "(null)", b ? b : "(null)",
		 http_request_query_count(req), strempty(http_request_query(req)));
	return http_respond(req, 200, "text/plain", out, strlen(out));
}

static int h_files(struct http_request *req, void *userdata)
{
	char out[256];

	snprintf(out, sizeof(out), "tail=%s", http_request_path_param(req, "*"));
	return http_respond(req, 200, "text/plain", out, strlen(out));
}

static int h_headers(struct http_request *req, void *userdata)
{
	char out[256];
	const char *v = http_request_header(req, "x-MiXeD");
	int r;

	snprintf(out, sizeof(out), "x-mixed=%s count=%zu", v ? v : "(null)",
		 http_request_header_count(req));
	r = http_response_add_header(req, "X-Reply", "yes");
	if (r < 0)
		return r;
	/* refused: the server owns these */
	if (http_response_add_header(req, "Content-Length", "1") != -EINVAL ||
	    http_response_add_header(req, "X-Bad", "a\r\nInjected: 1") != -EINVAL)
		return -EINVAL;
	return http_respond(req, 200, "text/plain", out, strlen(out));
}

static int h_json(struct http_request *req, void *userdata)
{
	json_t *o = json_pack("{s:b,s:i}", "ok", 1, "n", 3);
	int r = http_respond_json(req, 201, o);

	json_decref(o);
	return r;
}

static int h_fail(struct http_request *req, void *userdata)
{
	return -EIO;
}

static int h_cert(struct http_request *req, void *userdata)
{
	STACK_OF(X509) *chain = http_request_peer_chain(req);
	char out[512], cn0[64] = "", cn1[64] = "";
	int n = chain ? sk_X509_num(chain) : 0;

	if (n > 0)
		X509_NAME_get_text_by_NID(X509_get_subject_name(sk_X509_value(chain, 0)),
					  NID_commonName, cn0, sizeof(cn0));
	if (n > 1)
		X509_NAME_get_text_by_NID(X509_get_subject_name(sk_X509_value(chain, 1)),
					  NID_commonName, cn1, sizeof(cn1));
	snprintf(out, sizeof(out), "tls=%d certs=%d leaf=%s next=%s", http_request_is_tls(req), n,
		 cn0, cn1);
	return http_respond(req, 200, "text/plain", out, strlen(out));
}

struct later {
	struct fixture *fx;
	struct http_request *req;
	struct event *timer;
};

static void later_cb(evutil_socket_t fd, short what, void *arg)
{
	struct later *l = arg;
	int r = http_respond(l->req, 200, "text/plain", "late", 4);

	if (r == -ECONNRESET)
		l->fx->app.resets++;
	l->fx->app.pending--;
	event_free(l->timer);
	free(l);
}

/* The client is gone. While the loop runs, let the timer answer anyway
 * (into the void); when the server is being freed, finish at once. */
static void later_abort(struct http_request *req, void *userdata)
{
	struct later *l = userdata;

	l->fx->app.aborts++;
	if (l->fx->stopping)
		later_cb(-1, 0, l);
}

/* Answers 100 ms later from a timer; ?ms=N changes the delay. */
static int h_deferred(struct http_request *req, void *userdata)
{
	struct fixture *fx = userdata;
	struct later *l = calloc(1, sizeof(*l));
	const char *ms = http_request_query_param(req, "ms");
	struct timeval tv = {0, 100 * 1000};

	if (!l)
		return -ENOMEM;
	if (ms && streq(ms, "300"))
		tv.tv_usec = 300 * 1000;
	if (ms && streq(ms, "10000"))
		tv = (struct timeval){10, 0};
	l->fx = fx;
	l->req = req;
	l->timer = evtimer_new(fx->base, later_cb, l);
	if (!l->timer) {
		free(l);
		return -ENOMEM;
	}
	evtimer_add(l->timer, &tv);
	fx->app.pending++;
	return http_request_defer(req, later_abort, l);
}

static int h_stats(struct http_request *req, void *userdata)
{
	struct fixture *fx = userdata;
	char out[64];

	snprintf(out, sizeof(out), "aborts=%d resets=%d pending=%d", fx->app.aborts, fx->app.resets,
		 fx->app.pending);
	return http_respond(req, 200, "text/plain", out, strlen(out));
}

/* 64 KiB starting "n=<n>;" */
static int h_big(struct http_request *req, void *userdata)
{
	const char *n = http_request_path_param(req, "n");
	size_t len = 65536;
	char *body = malloc(len);
	int r;

	if (!body)
		return -ENOMEM;
	memset(body, 'x', len);
	snprintf(body, 32, "n=%s;", n);
	body[strlen(body)] = 'x';
	r = http_respond(req, 200, "application/octet-stream", body, len);
	free(body);
	return r;
}

static void stop_cb(evutil_socket_t fd, short what, void *arg)
{
	event_base_loopbreak(arg);
}

static void *server_main(void *arg)
{
	struct fixture *fx = arg;

	event_base_dispatch(fx->base);
	return NULL;
}

static void add_routes(struct fixture *fx)
{
	assert_int_equal(http_server_route(fx->srv, "GET", "/hello", h_hello, fx), 0);
	assert_int_equal(http_server_route(fx->srv, "POST", "/echo", h_echo, fx), 0);
	assert_int_equal(http_server_route(fx->srv, "POST", "/len", h_len, fx), 0);
	assert_int_equal(http_server_route(fx->srv, "GET", "/whoami", h_whoami, fx), 0);
	assert_int_equal(http_server_route(fx->srv, "GET", "/items/{id}", h_item_get, fx), 0);
	assert_int_equal(http_server_route(fx->srv, "DELETE", "/items/{id}", h_item_delete, fx), 0);
	assert_int_equal(http_server_route(fx->srv, "GET", "/query", h_query, fx), 0);
	assert_int_equal(http_server_route(fx->srv, NULL, "/files/*", h_files, fx), 0);
	assert_int_equal(http_server_route(fx->srv, "GET", "/headers", h_headers, fx), 0);
	assert_int_equal(http_server_route(fx->srv, "GET", "/json", h_json, fx), 0);
	assert_int_equal(http_server_route(fx->srv, "GET", "/fail", h_fail, fx), 0);
	assert_int_equal(http_server_route(fx->srv, "GET", "/cert", h_cert, fx), 0);
	assert_int_equal(http_server_route(fx->srv, "GET", "/deferred", h_deferred, fx), 0);
	assert_int_equal(http_server_route(fx->srv, "GET", "/stats", h_stats, fx), 0);
	assert_int_equal(http_server_route(fx->srv, "GET", "/big/{n}", h_big, fx), 0);
}

/* A server with cfg (NULL: defaults with JSON errors) on a unix socket in a
 * fresh directory; with tls, also on TCP 127.0.0.1 with that context. */
static struct fixture *fixture_new(const struct http_server_config *cfg, SSL_CTX *tls)
{
	struct http_server_config def = {.json_errors = true};
	struct fixture *fx = calloc(1, sizeof(*fx));

	assert_non_null(fx);
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/edgeid-http-XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	snprintf(fx->sock, sizeof(fx->sock), "%s/api.sock", fx->dir);
	fx->base = event_base_new();
	assert_non_null(fx->base);
	fx->srv = http_server_new(fx->base, cfg ? cfg : &def);
	assert_non_null(fx->srv);
	add_routes(fx);
	assert_int_equal(http_server_listen_unix(fx->srv, fx->sock, 0600), 0);
	assert_int_equal(http_server_listen_tcp(fx->srv, "127.0.0.1", 0, tls, &fx->port), 0);
	assert_true(fx->port > 0);
	assert_int_equal(pipe2(fx->stop_pipe, O_CLOEXEC), 0);
	fx->stop_ev = event_new(fx->base, fx->stop_pipe[0], EV_READ, stop_cb, fx->base);
	assert_non_null(fx->stop_ev);
	assert_int_equal(event_add(fx->stop_ev, NULL), 0);
	return fx;
}

static void fixture_start(struct fixture *fx)
{
	assert_int_equal(pthread_create(&fx->thread, NULL, server_main, fx), 0);
	fx->running = true;
}

/* Stop the loop and free the server (its callbacks run on this thread now). */
static void fixture_stop(struct fixture *fx)
{
	if (fx->running) {
		assert_int_equal(write(fx->stop_pipe[1], "x", 1), 1);
		assert_int_equal(pthread_join(fx->thread, NULL), 0);
		fx->running = false;
	}
	fx->stopping = true;
	http_server_free(fx->srv);
	fx->srv = NULL;
}

static void fixture_free(struct fixture *fx)
{
	fixture_stop(fx);
	event_free(fx->stop_ev);
	event_base_free(fx->base);
	close(fx->stop_pipe[0]);
	close(fx->stop_pipe[1]);
	/* the server removed its socket file */
	assert_int_equal(access(fx->sock, F_OK), -1);
	assert_int_equal(rmdir(fx->dir), 0);
	free(fx);
}

static struct fixture *start(const struct http_server_config *cfg)
{
	struct fixture *fx = fixture_new(cfg, NULL);

	fixture_start(fx);
	return fx;
}

/* --- raw clients --------------------------------------------------------- */

struct client {
	int fd;
	SSL_CTX *ctx;
	SSL *ssl;
	char *buf;
	size_t len;
	size_t cap;
};

struct response {
	char status[128];
	char *head; /* status line and header fields, with CRLFs */
	char *body;
	size_t body_len;
};

static void set_guard_timeouts(int fd)
{
	/* Only so that a broken server fails the test instead of hanging it. */
	struct timeval tv = {10, 0};

	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)), 0);
}

static void client_unix(struct client *cl, const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	memset(cl, 0, sizeof(*cl));
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	cl->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(cl->fd >= 0);
	set_guard_timeouts(cl->fd);
	assert_int_equal(connect(cl->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
}

static void client_tcp(struct client *cl, uint16_t port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};

	memset(cl, 0, sizeof(*cl));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cl->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(cl->fd >= 0);
	set_guard_timeouts(cl->fd);
	assert_int_equal(connect(cl->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
}

static void client_close(struct client *cl)
{
	if (cl->ssl)
		SSL_free(cl->ssl);
	if (cl->ctx)
		SSL_CTX_free(cl->ctx);
	if (cl->fd >= 0)
		close(cl->fd);
	free(cl->buf);
	memset(cl, 0, sizeof(*cl));
	cl->fd = -1;
}

static int client_send(struct client *cl, const void *p, size_t n)
{
	const char *s = p;

	while (n > 0) {
		ssize_t k;

		if (cl->ssl) {
			int w = SSL_write(cl->ssl, s, (int)n);
			if (w <= 0)
				return -EIO;
			k = w;
		} else {
			k = send(cl->fd, s, n, MSG_NOSIGNAL);
			if (k < 0)
				return -errno;
		}
		s += k;
		n -= (size_t)k;
	}
	return 0;
}

static void client_send_str(struct client *cl, const char *s)
{
	assert_int_equal(client_send(cl, s, strlen(s)), 0);
}

/* Read more bytes: >0 read, 0 end of stream (or reset), <0 error. */
static ssize_t client_fill(struct client *cl)
{
	ssize_t k;

	if (cl->cap - cl->len < 65536) {
		cl->cap = cl->cap ? cl->cap * 2 : 131072;
		cl->buf = realloc(cl->buf, cl->cap);
		assert_non_null(cl->buf);
	}
	if (cl->ssl) {
		int r = SSL_read(cl->ssl, cl->buf + cl->len, 65536);
		if (r <= 0) {
			int e = SSL_get_error(cl->ssl, r);
			ERR_clear_error();
			return e == SSL_ERROR_ZERO_RETURN ? 0 : -EIO;
		}
		k = r;
	} else {
		k = recv(cl->fd, cl->buf + cl->len, 65536, 0);
		if (k < 0)
			return errno == ECONNRESET ? 0 : -errno;
	}
	cl->len += (size_t)k;
	return k;
}

static bool resp_header(const struct response *r, const char *name, char *out, size_t n)
{
	size_t nl = strlen(name);

	for (const char *p = strstr(r->head, "\r\n"); p && p[2]; p = strstr(p + 2, "\r\n")) {
		const char *line = p + 2, *end = strstr(line, "\r\n");
		if (strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
			const char *v = line + nl + 1;
			while (*v == ' ')
				v++;
			snprintf(out, n, "%.*s", (int)(end - v), v);
			return true;
		}
	}
	return false;
}

static void response_free(struct response *r)
{
	free(r->head);
	free(r->body);
	memset(r, 0, sizeof(*r));
}

/* Read one response. head_request: a HEAD response has no body bytes. */
static int read_response_ex(struct client *cl, struct response *r, bool head_request)
{
	char *end, value[64];
	size_t head_len, body_len = 0;

	memset(r, 0, sizeof(*r));
	while (!(end = memmem(cl->buf ? cl->buf : "", cl->len, "\r\n\r\n", 4)))
		if (client_fill(cl) <= 0)
			return -1;
	head_len = (size_t)(end - cl->buf) + 4;
	r->head = strndup(cl->buf, head_len - 2);
	assert_non_null(r->head);
	snprintf(r->status, sizeof(r->status), "%.*s", (int)strcspn(r->head, "\r"), r->head);
	if (!head_request && resp_header(r, "Content-Length", value, sizeof(value))) {
		char *e;
		errno = 0;
		body_len = strtoull(value, &e, 10);
		assert_true(errno == 0 && *e == '\0');
	}
	while (cl->len < head_len + body_len)
		if (client_fill(cl) <= 0)
			return -1;
	r->body = malloc(body_len + 1);
	assert_non_null(r->body);
	memcpy(r->body, cl->buf + head_len, body_len);
	r->body[body_len] = '\0';
	r->body_len = body_len;
	memmove(cl->buf, cl->buf + head_len + body_len, cl->len - head_len - body_len);
	cl->len -= head_len + body_len;
	return 0;
}

static int read_response(struct client *cl, struct response *r)
{
	return read_response_ex(cl, r, false);
}

/* The server closed the connection and sent nothing more. */
static void assert_closed(struct client *cl)
{
	ssize_t k;

	while ((k = client_fill(cl)) > 0)
		;
	assert_int_equal(k, 0);
	assert_int_equal(cl->len, 0);
}

/* One request on a new connection; returns the response. */
static void roundtrip_unix(const char *sock, const char *request, struct response *r)
{
	struct client cl;

	client_unix(&cl, sock);
	client_send_str(&cl, request);
	assert_int_equal(read_response(&cl, r), 0);
	client_close(&cl);
}

/* The server still answers a fresh connection. */
static void assert_serves(struct fixture *fx)
{
	struct response r;

	roundtrip_unix(fx->sock, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", &r);
	assert_string_equal(r.status, "HTTP/1.1 200 OK");
	assert_string_equal(r.body, "hello");
	response_free(&r);
}

/* Send request on a new connection; assert the exact status line, the
 * error body, "Connection: close" and the close, then that the server
 * still serves. */
static void assert_rejected_n(struct fixture *fx, const char *request, size_t len,
			      const char *status, const char *message)
{
	struct client cl;
	struct response r;
	char value[64], body[256];

	client_unix(&cl, fx->sock);
	assert_int_equal(client_send(&cl, request, len), 0);
	assert_int_equal(read_response(&cl, &r), 0);
	assert_string_equal(r.status, status);
	assert_true(resp_header(&r, "Connection", value, sizeof(value)));
	assert_string_equal(value, "close");
	snprintf(body, sizeof(body), "{\"message\":\"%s\"}", message);
	assert_string_equal(r.body, body);
	assert_closed(&cl);
	client_close(&cl);
	response_free(&r);
	assert_serves(fx);
}

static void assert_rejected(struct fixture *fx, const char *request, const char *status,
			    const char *message)
{
	assert_rejected_n(fx, request, strlen(request), status, message);
}

/* --- tests: unix sockets, credentials ------------------------------------ */

static void test_peercred_get(void **state)
{
	struct peercred pc = {0};
	int sv[2], tcp;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(peercred_get(sv[0], &pc), 0);
	assert_int_equal(pc.pid, getpid());
	assert_int_equal(pc.uid, getuid());
	assert_int_equal(pc.gid, getgid());
	close(sv[0]);
	close(sv[1]);

	tcp = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(tcp >= 0);
	assert_int_equal(peercred_get(tcp, &pc), -EAFNOSUPPORT);
	close(tcp);
}

static void test_unix_get_post_peercred(void **state)
{
	struct fixture *fx = fixture_new(NULL, NULL);
	struct client cl;
	struct response r;
	struct stat st;
	char want[128], value[64];

	/* the requested mode exactly, socket type */
	assert_int_equal(stat(fx->sock, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);
	fixture_start(fx);

	roundtrip_unix(fx->sock, "GET /whoami HTTP/1.1\r\nHost: localhost\r\n\r\n", &r);
	assert_string_equal(r.status, "HTTP/1.1 200 OK");
	snprintf(want, sizeof(want), "pid=%ld uid=%ld gid=%ld remote=unix", (long)getpid(),
		 (long)getuid(), (long)getgid());
	assert_string_equal(r.body, want);
	assert_true(resp_header(&r, "Content-Type", value, sizeof(value)));
	assert_string_equal(value, "text/plain");
	/* IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT" */
	assert_true(resp_header(&r, "Date", value, sizeof(value)));
	assert_int_equal(strlen(value), 29);
	assert_string_equal(value + 25, " GMT");
	assert_false(resp_header(&r, "Connection", value, sizeof(value)));
	response_free(&r);

	client_unix(&cl, fx->sock);
	client_send_str(&cl, "POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Type: "
			     "application/json\r\nContent-Length: 11\r\n\r\n{\"a\":\"b c\"}");
	assert_int_equal(read_response(&cl, &r), 0);
	assert_string_equal(r.status, "HTTP/1.1 200 OK");
	assert_true(resp_header(&r, "Content-Length", value, sizeof(value)));
	assert_string_equal(value, "11");
	/* The echo handler answers with the request's own type. */
	assert_true(resp_header(&r, "Content-Type", value, sizeof(value)));
	assert_string_equal(value, "application/json");
	assert_string_equal(r.body, "{\"a\":\"b c\"}");
	response_free(&r);
	client_close(&cl);

	/* over TCP there are no credentials, and the address is the client's */
	{
		struct sockaddr_in local;
		socklen_t len = sizeof(local);

		client_tcp(&cl, fx->port);
		assert_int_equal(getsockname(cl.fd, (struct sockaddr *)&local, &len), 0);
		client_send_str(&cl, "GET /whoami HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
		assert_int_equal(read_response(&cl, &r), 0);
		snprintf(want, sizeof(want), "none remote=127.0.0.1:%u", ntohs(local.sin_port));
		assert_string_equal(r.body, want);
		response_free(&r);
		client_close(&cl);
	}
	fixture_free(fx);
}

static void test_tcp_reuseport(void **state)
{
	struct http_server_config shared = {.reuseport = true};
	struct event_base *base = event_base_new();
	struct http_server *a = http_server_new(base, &shared);
	struct http_server *b = http_server_new(base, &shared);
	struct http_server *c = http_server_new(base, NULL);
	uint16_t port = 0, port2 = 0;

	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(c);
	/* one process per core: several listeners on one port */
	assert_int_equal(http_server_listen_tcp(a, "127.0.0.1", 0, NULL, &port), 0);
	assert_int_equal(http_server_listen_tcp(b, "127.0.0.1", port, NULL, &port2), 0);
	assert_int_equal(port2, port);
	/* without SO_REUSEPORT the port is taken */
	assert_int_equal(http_server_listen_tcp(c, "127.0.0.1", port, NULL, NULL), -EADDRINUSE);
	http_server_free(a);
	http_server_free(b);
	http_server_free(c);
	event_base_free(base);
}

static void test_unix_mode_ignores_umask(void **state)
{
	struct fixture *fx = fixture_new(NULL, NULL);
	char path[108];
	struct stat st;
	mode_t old = umask(077);

	snprintf(path, sizeof(path), "%s/group.sock", fx->dir);
	assert_int_equal(http_server_listen_unix(fx->srv, path, 0660), 0);
	umask(old);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0660);
	fixture_free(fx);
	/* freeing the server removed it */
}

static void test_unix_stale_and_live_socket(void **state)
{
	struct fixture *fx = fixture_new(NULL, NULL);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char path[108], file[108];
	int fd;

	/* a socket file left behind by a dead process is replaced */
	snprintf(path, sizeof(path), "%s/stale.sock", fx->dir);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
	assert_int_equal(http_server_listen_unix(fx->srv, path, 0600), 0);
	/* one with a live server behind it is not */
	assert_int_equal(http_server_listen_unix(fx->srv, fx->sock, 0600), -EADDRINUSE);
	/* nor is a file that is not a socket */
	snprintf(file, sizeof(file), "%s/regular", fx->dir);
	fd = open(file, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(http_server_listen_unix(fx->srv, file, 0600), -EEXIST);
	assert_int_equal(unlink(file), 0);
	fixture_free(fx);
}

static void test_adopt_fd_and_connection(void **state)
{
	struct fixture *fx = fixture_new(NULL, NULL);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct response r;
	struct client cl;
	char path[108], want[128];
	int lfd, sv[2];

	/* a listening socket handed over, as systemd does */
	snprintf(path, sizeof(path), "%s/activated.sock", fx->dir);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(lfd, 16), 0);
	assert_int_equal(http_server_adopt_fd(fx->srv, lfd, NULL), 0);
	assert_int_equal(fcntl(lfd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	/* a connected socket is not a listener (and is closed) */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(http_server_adopt_fd(fx->srv, sv[0], NULL), -EINVAL);
	assert_int_equal(fcntl(sv[0], F_GETFD), -1);
	close(sv[1]);
	/* one end of a socketpair served as a connection */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(http_server_adopt_connection(fx->srv, sv[0], NULL), 0);
	fixture_start(fx);

	snprintf(want, sizeof(want), "pid=%ld uid=%ld gid=%ld remote=unix", (long)getpid(),
		 (long)getuid(), (long)getgid());
	roundtrip_unix(path, "GET /whoami HTTP/1.1\r\nHost: x\r\n\r\n", &r);
	assert_string_equal(r.body, want);
	response_free(&r);

	memset(&cl, 0, sizeof(cl));
	cl.fd = sv[1];
	set_guard_timeouts(cl.fd);
	client_send_str(&cl, "GET /whoami HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_int_equal(read_response(&cl, &r), 0);
	assert_string_equal(r.body, want);
	response_free(&r);
	client_close(&cl);
	/* an adopted socket's file is not the server's to remove */
	assert_int_equal(unlink(path), 0);
	fixture_free(fx);
}

/* --- tests: routing and answers ------------------------------------------ */

static void test_404_405_allow(void **state)
{
	struct fixture *fx = start(NULL);
	struct response r;
	char value[128];

	roundtrip_unix(fx->sock, "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", &r);
	assert_string_equal(r.status, "HTTP/1.1 404 Not Found");
	assert_string_equal(r.body, "{\"message\":\"not found\"}");
	assert_true(resp_header(&r, "Content-Type", value, sizeof(value)));
	assert_string_equal(value, "application/json; charset=utf-8");
	response_free(&r);

	roundtrip_unix(fx->sock, "POST /items/7 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
		       &r);
	assert_string_equal(r.status, "HTTP/1.1 405 Method Not Allowed");
	assert_true(resp_header(&r, "Allow", value, sizeof(value)));
	assert_string_equal(value, "GET, HEAD, DELETE");
	assert_string_equal(r.body, "{\"message\":\"method not allowed\"}");
	response_free(&r);

	/* 204 carries neither body nor Content-Length */
	roundtrip_unix(fx->sock, "DELETE /items/7 HTTP/1.1\r\nHost: x\r\n\r\n", &r);
	assert_string_equal(r.status, "HTTP/1.1 204 No Content");
	assert_false(resp_header(&r, "Content-Length", value, sizeof(value)));
	response_free(&r);
	fixture_free(fx);
}

static void test_params_query_headers(void **state)
{
	struct fixture *fx = start(NULL);
	struct response r;
	char value[64];

	roundtrip_unix(fx->sock, "GET /items/a%20b%2Fc HTTP/1.1\r\nHost: x\r\n\r\n", &r);
	assert_string_equal(r.body, "item=a b/c");
	response_free(&r);

	roundtrip_unix(fx->sock,
		       "GET /query?a=x%2By&b=hello+world&flag&a=second HTTP/1.1\r\nHost: x\r\n\r\n",
		       &r);
	assert_string_equal(r.body,
			    "a=x+y b=hello world n=4 raw=a=x%2By&b=hello+world&flag&a=second");
	response_free(&r);

	roundtrip_unix(fx->sock, "GET /files/a/b.txt HTTP/1.1\r\nHost: x\r\n\r\n", &r);
	assert_string_equal(r.body, "tail=a/b.txt");
	response_free(&r);
	/* any method on a route registered with NULL */
	roundtrip_unix(fx->sock, "PUT /files/ HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
		       &r);
	assert_string_equal(r.body, "tail=");
	response_free(&r);
	/* absolute-form is reduced to its path */
	roundtrip_unix(fx->sock, "GET http://example/items/9 HTTP/1.1\r\nHost: example\r\n\r\n",
		       &r);
	assert_string_equal(r.body, "item=9");
	response_free(&r);

	roundtrip_unix(
	    fx->sock, "GET /headers HTTP/1.1\r\nHost: x\r\nX-Mixed:   spaced value \t\r\n\r\n", &r);
	assert_string_equal(r.status, "HTTP/1.1 200 OK");
	assert_string_equal(r.body, "x-mixed=spaced value count=2");
	assert_true(resp_header(&r, "X-Reply", value, sizeof(value)));
	assert_string_equal(value, "yes");
	assert_false(resp_header(&r, "Injected", value, sizeof(value)));
	response_free(&r);

	/* HEAD is answered by the GET route, with the length but no body */
	{
		struct client cl;

		client_unix(&cl, fx->sock);
		client_send_str(&cl, "HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\n"
				     "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
		assert_int_equal(read_response_ex(&cl, &r, true), 0);
		assert_string_equal(r.status, "HTTP/1.1 200 OK");
		assert_true(resp_header(&r, "Content-Length", value, sizeof(value)));
		assert_string_equal(value, "5");
		response_free(&r);
		/* nothing of the HEAD answer's body came before this one */
		assert_int_equal(read_response(&cl, &r), 0);
		assert_string_equal(r.status, "HTTP/1.1 200 OK");
		assert_string_equal(r.body, "hello");
		response_free(&r);
		client_close(&cl);
	}
	fixture_free(fx);
}

/* Path parameters and query parameters are percent-decoded alike, except
 * that '+' is a space only in the query; a bad escape anywhere is refused. */
static void test_percent_decoding(void **state)
{
	struct fixture *fx = start(NULL);
	struct response r;

	roundtrip_unix(fx->sock, "GET /items/a+b%2B%41%e2%82%ac HTTP/1.1\r\nHost: x\r\n\r\n", &r);
	assert_string_equal(r.status, "HTTP/1.1 200 OK");
	assert_string_equal(r.body, "item=a+b+A\xe2\x82\xac");
	response_free(&r);

	roundtrip_unix(fx->sock, "GET /query?%61=1+2%202&b=%2b&=&b HTTP/1.1\r\nHost: x\r\n\r\n",
		       &r);
	assert_string_equal(r.body, "a=1 2 2 b=+ n=4 raw=%61=1+2%202&b=%2b&=&b");
	response_free(&r);

	assert_rejected(fx, "GET /items/ab%2 HTTP/1.1\r\nHost: x\r\n\r\n",
			"HTTP/1.1 400 Bad Request", "malformed request path");
	assert_rejected(fx, "GET /items/%g1 HTTP/1.1\r\nHost: x\r\n\r\n",
			"HTTP/1.1 400 Bad Request", "malformed request path");
	assert_rejected(fx, "GET /query?a=%00 HTTP/1.1\r\nHost: x\r\n\r\n",
			"HTTP/1.1 400 Bad Request", "malformed query string");
	assert_rejected(fx, "GET /query?%4=1 HTTP/1.1\r\nHost: x\r\n\r\n",
			"HTTP/1.1 400 Bad Request", "malformed query string");
	assert_rejected(fx, "GET /query?a=b% HTTP/1.1\r\nHost: x\r\n\r\n",
			"HTTP/1.1 400 Bad Request", "malformed query string");
	fixture_free(fx);
}

static void test_json_and_handler_error(void **state)
{
	struct fixture *fx = start(NULL);
	struct client cl;
	struct response r;
	char value[64];

	client_unix(&cl, fx->sock);
	client_send_str(&cl, "GET /json HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_int_equal(read_response(&cl, &r), 0);
	assert_string_equal(r.status, "HTTP/1.1 201 Created");
	assert_true(resp_header(&r, "Content-Type", value, sizeof(value)));
	assert_string_equal(value, "application/json; charset=utf-8");
	assert_string_equal(r.body, "{\"ok\":true,\"n\":3}");
	response_free(&r);

	/* a handler that fails without answering gets a 500; the connection stays */
	client_send_str(&cl, "GET /fail HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_int_equal(read_response(&cl, &r), 0);
	assert_string_equal(r.status, "HTTP/1.1 500 Internal Server Error");
	assert_string_equal(r.body, "{\"message\":\"internal error\"}");
	response_free(&r);
	client_send_str(&cl, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_int_equal(read_response(&cl, &r), 0);
	assert_string_equal(r.body, "hello");
	response_free(&r);
	client_close(&cl);
	fixture_free(fx);
}

static void test_route_patterns_rejected(void **state)
{
	struct event_base *base = event_base_new();
	struct http_server *srv = http_server_new(base, NULL);

	assert_non_null(srv);
	assert_int_equal(http_server_route(srv, "GET", "nope", h_hello, NULL), -EINVAL);
	assert_int_equal(http_server_route(srv, "GET", "/a/{id", h_hello, NULL), -EINVAL);
	assert_int_equal(http_server_route(srv, "GET", "/a/{}", h_hello, NULL), -EINVAL);
	assert_int_equal(http_server_route(srv, "GET", "/a/x{id}", h_hello, NULL), -EINVAL);
	assert_int_equal(http_server_route(srv, "GET", "/a/*/b", h_hello, NULL), -EINVAL);
	assert_int_equal(http_server_route(srv, "G T", "/a", h_hello, NULL), -EINVAL);
	assert_int_equal(http_server_route(srv, "GET", "/a/{id}/*", h_hello, NULL), 0);
	assert_int_equal(http_server_listen_tcp(srv, "localhost", 0, NULL, NULL), -EINVAL);
	http_server_free(srv);
	event_base_free(base);
}

/* --- tests: connections ------------------------------------------------- */

static void test_keepalive_and_pipelining(void **state)
{
	struct fixture *fx = start(NULL);
	struct client cl;
	struct response r;
	char value[64];

	/* two requests, one after the other, on one connection */
	client_unix(&cl, fx->sock);
	client_send_str(&cl, "GET /items/1 HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_int_equal(read_response(&cl, &r), 0);
	assert_string_equal(r.body, "item=1");
	response_free(&r);
	client_send_str(&cl, "GET /items/2 HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_int_equal(read_response(&cl, &r), 0);
	assert_string_equal(r.body, "item=2");
	response_free(&r);

	/* pipelined in one write, a deferred one among them: answered in order */
	client_send_str(&cl, "GET /items/3 HTTP/1.1\r\nHost: x\r\n\r\n"
			     "GET /deferred HTTP/1.1\r\nHost: x\r\n\r\n"
			     "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nfour"
			     "GET /items/5 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
	assert_int_equal(read_response(&cl, &r), 0);
	assert_string_equal(r.body, "item=3");
	response_free(&r);
	assert_int_equal(read_response(&cl, &r), 0);
	assert_string_equal(r.body, "late");
	response_free(&r);
	assert_int_equal(read_response(&cl, &r), 0);
	assert_string_equal(r.body, "four");
	response_free(&r);
	assert_int_equal(read_response(&cl, &r), 0);
	assert_string_equal(r.body, "item=5");
	/* Connection: close honoured */
	assert_true(resp_header(&r, "Connection", value, sizeof(value)));
	assert_string_equal(value, "close");
	response_free(&r);
	assert_closed(&cl);
	client_close(&cl);

	/* HTTP/1.0: no keep-alive, even when asked */
	client_unix(&cl, fx->sock);
	client_send_str(&cl, "GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
	assert_int_equal(read_response(&cl, &r), 0);
	assert_string_equal(r.status, "HTTP/1.1 200 OK");
	assert_true(resp_header(&r, "Connection", value, sizeof(value)));
	assert_string_equal(value, "close");
	response_free(&r);
	assert_closed(&cl);
	client_close(&cl);
	fixture_free(fx);
}

static void test_deferred_response(void **state)
{
	struct fixture *fx = start(NULL);
	struct client cl;
	struct response r;
	bool seen = false;

	roundtrip_unix(fx->sock, "GET /deferred HTTP/1.1\r\nHost: x\r\n\r\n", &r);
	assert_string_equal(r.status, "HTTP/1.1 200 OK");
	assert_string_equal(r.body, "late");
	response_free(&r);

	/* the client leaves before the answer: the request is aborted, and
	 * the late answer is refused without harm */
	client_unix(&cl, fx->sock);
	client_send_str(&cl, "GET /deferred?ms=300 HTTP/1.1\r\nHost: x\r\n\r\n");
	client_close(&cl);
	for (int tries = 0; tries < 200 && !seen; tries++) {
		roundtrip_unix(fx->sock, "GET /stats HTTP/1.1\r\nHost: x\r\n\r\n", &r);
		seen = streq(r.body, "aborts=1 resets=1 pending=0");
		response_free(&r);
		if (!seen)
			usleep(25 * 1000);
	}
	assert_true(seen);
	fixture_free(fx);
}

static void test_deferred_pending_at_free(void **state)
{
	struct fixture *fx = start(NULL);
	struct client cl;
	struct response r;
	bool seen = false;

	client_unix(&cl, fx->sock);
	client_send_str(&cl, "GET /deferred?ms=10000 HTTP/1.1\r\nHost: x\r\n\r\n");
	for (int tries = 0; tries < 200 && !seen; tries++) {
		roundtrip_unix(fx->sock, "GET /stats HTTP/1.1\r\nHost: x\r\n\r\n", &r);
		seen = streq(r.body, "aborts=0 resets=0 pending=1");
		response_free(&r);
		if (!seen)
			usleep(10 * 1000);
	}
	assert_true(seen);
	/* freeing the server aborts the request it still holds, and closes
	 * the connection */
	fixture_stop(fx);
	assert_int_equal(fx->app.aborts, 1);
	assert_int_equal(fx->app.resets, 1);
	assert_int_equal(fx->app.pending, 0);
	assert_closed(&cl);
	client_close(&cl);
	fixture_free(fx);
}

static void test_pipelined_large_responses(void **state)
{
	struct fixture *fx = start(NULL);
	struct client cl;
	struct response r;
	struct buf req;
	char want[16];

	/* more answers than the server buffers before it stops reading
	 * (256 KiB), with nobody reading them yet */
	buf_init(&req, 0);
	for (int i = 0; i < 24; i++)
		assert_int_equal(buf_printf(&req, "GET /big/%d HTTP/1.1\r\nHost: x\r\n\r\n", i), 0);
	client_unix(&cl, fx->sock);
	client_send_str(&cl, req.data);
	buf_free(&req);
	for (int i = 0; i < 24; i++) {
		assert_int_equal(read_response(&cl, &r), 0);
		assert_int_equal(r.body_len, 65536);
		snprintf(want, sizeof(want), "n=%d;x", i);
		assert_memory_equal(r.body, want, strlen(want));
		response_free(&r);
	}
	client_close(&cl);
	fixture_free(fx);
}

static void test_chunked_body(void **state)
{
	struct fixture *fx = start(NULL);
	struct client cl;
	struct response r;

	client_unix(&cl, fx->sock);
	client_send_str(&cl, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
			     "5\r\nhello\r\n6;name=value\r\n world\r\nA\r\n 012345678\r\n"
			     "0\r\nX-Trailer: t\r\n\r\n");
	assert_int_equal(read_response(&cl, &r), 0);
	assert_string_equal(r.status, "HTTP/1.1 200 OK");
	assert_string_equal(r.body, "hello world 012345678");
	response_free(&r);
	/* the connection goes on after a chunked body */
	client_send_str(&cl, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_int_equal(read_response(&cl, &r), 0);
	assert_string_equal(r.body, "hello");
	response_free(&r);
	client_close(&cl);

	assert_rejected(fx,
			"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
			"zz\r\nhello\r\n0\r\n\r\n",
			"HTTP/1.1 400 Bad Request", "malformed chunk size");
	assert_rejected(fx,
			"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
			"-5\r\nhello\r\n0\r\n\r\n",
			"HTTP/1.1 400 Bad Request", "malformed chunk size");
	assert_rejected(fx,
			"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
			"10000000000000000\r\n",
			"HTTP/1.1 400 Bad Request", "malformed chunk size");
	assert_rejected(fx,
			"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
			"3\r\nhelloX\r\n0\r\n\r\n",
			"HTTP/1.1 400 Bad Request", "chunk data not followed by CRLF");
	assert_rejected(
	    fx, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
	    "HTTP/1.1 501 Not Implemented", "unsupported transfer coding");
	fixture_free(fx);
}

static void test_expect_continue(void **state)
{
	struct fixture *fx = start(NULL);
	struct client cl;
	struct response r;

	client_unix(&cl, fx->sock);
	client_send_str(&cl, "POST /len HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
			     "Expect: 100-continue\r\n\r\n");
	assert_int_equal(read_response(&cl, &r), 0);
	assert_string_equal(r.status, "HTTP/1.1 100 Continue");
	response_free(&r);
	client_send_str(&cl, "abc");
	assert_int_equal(read_response(&cl, &r), 0);
	assert_string_equal(r.status, "HTTP/1.1 200 OK");
	assert_string_equal(r.body, "len=3");
	response_free(&r);
	client_close(&cl);
	fixture_free(fx);
}

/* --- tests: limits and malformed requests -------------------------------- */

static void test_request_line_limit(void **state)
{
	struct fixture *fx = start(NULL);
	struct buf req;
	struct response r;
	size_t pad =
	    HTTP_SERVER_DEFAULT_MAX_REQUEST_LINE - strlen("GET /query?x=") - strlen(" HTTP/1.1");

	/* exactly the limit is served */
	buf_init(&req, 0);
	assert_int_equal(buf_append_str(&req, "GET /query?x="), 0);
	for (size_t i = 0; i < pad; i++)
		assert_int_equal(buf_putc(&req, 'a'), 0);
	assert_int_equal(buf_append_str(&req, " HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
	roundtrip_unix(fx->sock, req.data, &r);
	assert_string_equal(r.status, "HTTP/1.1 200 OK");
	response_free(&r);
	buf_free(&req);

	/* one byte more is 414 */
	buf_init(&req, 0);
	assert_int_equal(buf_append_str(&req, "GET /query?x="), 0);
	for (size_t i = 0; i < pad + 1; i++)
		assert_int_equal(buf_putc(&req, 'a'), 0);
	assert_int_equal(buf_append_str(&req, " HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
	assert_rejected(fx, req.data, "HTTP/1.1 414 URI Too Long", "request line too long");
	buf_free(&req);

	/* and so is a line that never ends */
	buf_init(&req, 0);
	for (size_t i = 0; i < 3 * HTTP_SERVER_DEFAULT_MAX_REQUEST_LINE; i++)
		assert_int_equal(buf_putc(&req, 'G'), 0);
	assert_rejected(fx, req.data, "HTTP/1.1 414 URI Too Long", "request line too long");
	buf_free(&req);
	fixture_free(fx);
}

static void test_header_limits(void **state)
{
	struct fixture *fx = start(NULL);
	struct buf req;
	struct response r;
	/* "GET /hello HTTP/1.1\r\n" + "Host: x\r\n" + "X-Pad: <pad>\r\n" + "\r\n":
	 * the header section is 9 + 9 + pad + 2 bytes */
	size_t pad = HTTP_SERVER_DEFAULT_MAX_HEADER_BYTES - 20;

	for (int over = 0; over <= 1; over++) {
		buf_init(&req, 4 * HTTP_SERVER_DEFAULT_MAX_HEADER_BYTES);
		assert_int_equal(buf_append_str(&req, "GET /hello HTTP/1.1\r\nHost: x\r\nX-Pad: "),
				 0);
		for (size_t i = 0; i < pad + (size_t)over; i++)
			assert_int_equal(buf_putc(&req, 'p'), 0);
		assert_int_equal(buf_append_str(&req, "\r\n\r\n"), 0);
		if (!over) {
			roundtrip_unix(fx->sock, req.data, &r);
			assert_string_equal(r.status, "HTTP/1.1 200 OK");
			response_free(&r);
		} else {
			assert_rejected(fx, req.data,
					"HTTP/1.1 431 Request Header Fields Too Large",
					"header section too large");
		}
		buf_free(&req);
	}

	/* 100 fields are served, 101 are too many */
	for (int over = 0; over <= 1; over++) {
		buf_init(&req, 0);
		assert_int_equal(buf_append_str(&req, "GET /hello HTTP/1.1\r\nHost: x\r\n"), 0);
		for (int i = 1; i < HTTP_SERVER_DEFAULT_MAX_HEADERS + over; i++)
			assert_int_equal(buf_printf(&req, "X-H%d: %d\r\n", i, i), 0);
		assert_int_equal(buf_append_str(&req, "\r\n"), 0);
		if (!over) {
			roundtrip_unix(fx->sock, req.data, &r);
			assert_string_equal(r.status, "HTTP/1.1 200 OK");
			response_free(&r);
		} else {
			assert_rejected(fx, req.data,
					"HTTP/1.1 431 Request Header Fields Too Large",
					"too many header fields");
		}
		buf_free(&req);
	}
	fixture_free(fx);
}

static void test_body_limit(void **state)
{
	struct fixture *fx = start(NULL);
	struct client cl;
	struct response r;
	char head[128];
	char *body;

	/* exactly the limit is read */
	body = malloc(HTTP_SERVER_DEFAULT_MAX_BODY);
	assert_non_null(body);
	memset(body, 'b', HTTP_SERVER_DEFAULT_MAX_BODY);
	client_unix(&cl, fx->sock);
	snprintf(head, sizeof(head), "POST /len HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n",
		 HTTP_SERVER_DEFAULT_MAX_BODY);
	client_send_str(&cl, head);
	assert_int_equal(client_send(&cl, body, HTTP_SERVER_DEFAULT_MAX_BODY), 0);
	assert_int_equal(read_response(&cl, &r), 0);
	assert_string_equal(r.body, "len=1048576");
	response_free(&r);
	client_close(&cl);
	free(body);

	/* one byte more is refused from the header alone: no body is sent
	 * here, so an answer proves the server did not wait to read it */
	assert_rejected(fx, "POST /len HTTP/1.1\r\nHost: x\r\nContent-Length: 1048577\r\n\r\n",
			"HTTP/1.1 413 Content Too Large", "request body too large");
	assert_rejected(
	    fx, "POST /len HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n",
	    "HTTP/1.1 413 Content Too Large", "request body too large");
	/* a chunk that would cross the limit, refused from its size line */
	assert_rejected(fx,
			"POST /len HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
			"100001\r\n",
			"HTTP/1.1 413 Content Too Large", "request body too large");
	fixture_free(fx);
}

static void test_malformed_requests(void **state)
{
	struct fixture *fx = start(NULL);
	static const char nul_request[] = "GET /hel\0lo HTTP/1.1\r\nHost: x\r\n\r\n";

	assert_rejected(fx, "GARBAGE\r\n\r\n", "HTTP/1.1 400 Bad Request",
			"malformed request line");
	assert_rejected(fx, "GET  /hello HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 400 Bad Request",
			"malformed request line");
	assert_rejected(fx, "GET /hello HTTP/1.1 extra\r\nHost: x\r\n\r\n",
			"HTTP/1.1 400 Bad Request", "malformed request line");
	assert_rejected(fx, "G(T /hello HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 400 Bad Request",
			"malformed request line");
	assert_rejected_n(fx, nul_request, sizeof(nul_request) - 1, "HTTP/1.1 400 Bad Request",
			  "malformed request line");
	assert_rejected(fx, "GET /hello HTTP/2.0\r\nHost: x\r\n\r\n",
			"HTTP/1.1 505 HTTP Version Not Supported",
			"only HTTP/1.0 and HTTP/1.1 are supported");
	assert_rejected(fx, "GET hello HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 400 Bad Request",
			"request target must be an absolute path");
	assert_rejected(fx, "GET /files/../secret HTTP/1.1\r\nHost: x\r\n\r\n",
			"HTTP/1.1 400 Bad Request", "malformed request path");
	assert_rejected(fx, "GET /items/%00 HTTP/1.1\r\nHost: x\r\n\r\n",
			"HTTP/1.1 400 Bad Request", "malformed request path");
	assert_rejected(fx, "GET /query?a=%zz HTTP/1.1\r\nHost: x\r\n\r\n",
			"HTTP/1.1 400 Bad Request", "malformed query string");
	assert_rejected(fx, "GET /hello HTTP/1.1\r\n\r\n", "HTTP/1.1 400 Bad Request",
			"missing Host field");
	assert_rejected(fx, "GET /hello HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
			"HTTP/1.1 400 Bad Request", "more than one Host field");
	assert_rejected(fx, "GET /hello HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n",
			"HTTP/1.1 400 Bad Request", "malformed header field");
	assert_rejected(fx, "GET /hello HTTP/1.1\r\nHost : x\r\n\r\n", "HTTP/1.1 400 Bad Request",
			"malformed header field");
	assert_rejected(fx, "GET /hello HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n folded\r\n\r\n",
			"HTTP/1.1 400 Bad Request", "obsolete header line folding is not accepted");
	assert_rejected(fx,
			"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
			"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
			"HTTP/1.1 400 Bad Request", "both Content-Length and Transfer-Encoding");
	assert_rejected(fx,
			"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
			"Content-Length: 6\r\n\r\nhello!",
			"HTTP/1.1 400 Bad Request", "conflicting Content-Length fields");
	assert_rejected(fx, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello",
			"HTTP/1.1 400 Bad Request", "malformed Content-Length");
	assert_rejected(fx, "POST /len HTTP/1.1\r\nHost: x\r\nExpect: magic\r\n\r\n",
			"HTTP/1.1 417 Expectation Failed", "unsupported expectation");
	fixture_free(fx);
}

static void test_slow_client_timeout(void **state)
{
	struct http_server_config cfg = {
	    .json_errors = true,
	    .request_timeout_ms = 300,
	    .idle_timeout_ms = 300,
	};
	struct fixture *fx = start(&cfg);
	struct client slow, idle, fast;
	struct response r;
	char value[64];

	/* a request that starts and stalls */
	client_unix(&slow, fx->sock);
	client_send_str(&slow, "GET /hello HTTP/1.1\r\nHost: x\r\n");
	/* a connection that sends nothing at all */
	client_unix(&idle, fx->sock);

	/* meanwhile another client is served */
	client_unix(&fast, fx->sock);
	client_send_str(&fast, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_int_equal(read_response(&fast, &r), 0);
	assert_string_equal(r.body, "hello");
	response_free(&r);

	/* the stalled request is answered 408 and closed */
	assert_int_equal(read_response(&slow, &r), 0);
	assert_string_equal(r.status, "HTTP/1.1 408 Request Timeout");
	assert_true(resp_header(&r, "Connection", value, sizeof(value)));
	assert_string_equal(value, "close");
	response_free(&r);
	assert_closed(&slow);
	/* the idle one is closed without a word */
	assert_closed(&idle);
	client_close(&slow);
	client_close(&idle);
	client_close(&fast);
	assert_serves(fx);
	fixture_free(fx);
}

static void test_connection_limits(void **state)
{
	struct http_server_config cfg = {.max_connections = 2};
	struct fixture *fx = start(&cfg);
	struct client a, b, c;
	struct response r;
	bool served = false;

	client_unix(&a, fx->sock);
	client_send_str(&a, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_int_equal(read_response(&a, &r), 0);
	response_free(&r);
	client_unix(&b, fx->sock);
	client_send_str(&b, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_int_equal(read_response(&b, &r), 0);
	response_free(&r);
	/* a third is closed without a reply */
	client_unix(&c, fx->sock);
	(void)client_send(&c, HELLO, strlen(HELLO));
	assert_closed(&c);
	client_close(&c);
	/* both first ones still work */
	client_send_str(&a, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_int_equal(read_response(&a, &r), 0);
	assert_string_equal(r.body, "hello");
	response_free(&r);
	/* once one leaves, there is room again (the server notices in its own time) */
	client_close(&a);
	for (int tries = 0; tries < 200 && !served; tries++) {
		client_unix(&c, fx->sock);
		if (client_send(&c, HELLO, strlen(HELLO)) == 0 && read_response(&c, &r) == 0) {
			served = streq(r.body, "hello");
			response_free(&r);
		}
		client_close(&c);
		if (!served)
			usleep(10 * 1000);
	}
	assert_true(served);
	client_close(&b);
	fixture_free(fx);
}

static void test_connection_limit_per_uid(void **state)
{
	struct http_server_config cfg = {.max_connections_per_uid = 1};
	struct fixture *fx = start(&cfg);
	struct client a, b;
	struct response r;

	client_unix(&a, fx->sock);
	client_send_str(&a, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_int_equal(read_response(&a, &r), 0);
	response_free(&r);
	client_unix(&b, fx->sock);
	(void)client_send(&b, HELLO, strlen(HELLO));
	assert_closed(&b);
	client_close(&b);
	client_close(&a);
	fixture_free(fx);
}

/* --- tests: TLS ----------------------------------------------------------- */

struct pki {
	EVP_PKEY *ca_key, *srv_key, *dev_key;
	X509 *ca, *srv, *dev;
};

static void add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;

	X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	assert_non_null(ext);
	assert_int_equal(X509_add_ext(x, ext, -1), 1);
	X509_EXTENSION_free(ext);
}

static X509 *make_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key,
		       long serial, bool ca, const char *san)
{
	X509 *x = X509_new();
	X509_NAME *name;

	assert_non_null(x);
	assert_int_equal(X509_set_version(x, 2), 1);
	assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), serial), 1);
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), -60));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), 3600));
	assert_int_equal(X509_set_pubkey(x, key), 1);
	name = X509_get_subject_name(x);
	assert_int_equal(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
						    (const unsigned char *)cn, -1, -1, 0),
			 1);
	assert_int_equal(X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name), 1);
	add_ext(x, issuer ? issuer : x, NID_basic_constraints,
		ca ? "critical,CA:TRUE" : "CA:FALSE");
	if (san)
		add_ext(x, issuer ? issuer : x, NID_subject_alt_name, san);
	assert_true(X509_sign(x, issuer_key, EVP_sha256()) > 0);
	return x;
}

static void pki_make(struct pki *p)
{
	p->ca_key = EVP_EC_gen("P-256");
	p->srv_key = EVP_EC_gen("P-256");
	p->dev_key = EVP_EC_gen("P-256");
	assert_non_null(p->ca_key);
	assert_non_null(p->srv_key);
	assert_non_null(p->dev_key);
	p->ca = make_cert(p->ca_key, "Test CA", NULL, p->ca_key, 1, true, NULL);
	p->srv = make_cert(p->srv_key, "localhost", p->ca, p->ca_key, 2, false, "IP:127.0.0.1");
	p->dev = make_cert(p->dev_key, "device-1", p->ca, p->ca_key, 3, false, NULL);
}

static void pki_free(struct pki *p)
{
	X509_free(p->ca);
	X509_free(p->srv);
	X509_free(p->dev);
	EVP_PKEY_free(p->ca_key);
	EVP_PKEY_free(p->srv_key);
	EVP_PKEY_free(p->dev_key);
}

/* A TLS client that verifies the server; with_cert: presents device-1 and
 * the CA as its chain. Returns 0 when the handshake completed. */
static int client_tls(struct client *cl, uint16_t port, const struct pki *p, bool with_cert)
{
	client_tcp(cl, port);
	cl->ctx = SSL_CTX_new(TLS_client_method());
	assert_non_null(cl->ctx);
	assert_int_equal(X509_STORE_add_cert(SSL_CTX_get_cert_store(cl->ctx), p->ca), 1);
	SSL_CTX_set_verify(cl->ctx, SSL_VERIFY_PEER, NULL);
	if (with_cert) {
		assert_int_equal(SSL_CTX_use_certificate(cl->ctx, p->dev), 1);
		assert_int_equal(SSL_CTX_use_PrivateKey(cl->ctx, p->dev_key), 1);
		assert_int_equal(SSL_CTX_add1_chain_cert(cl->ctx, p->ca), 1);
	}
	cl->ssl = SSL_new(cl->ctx);
	assert_non_null(cl->ssl);
	assert_int_equal(X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(cl->ssl), "127.0.0.1"), 1);
	assert_int_equal(SSL_set_fd(cl->ssl, cl->fd), 1);
	if (SSL_connect(cl->ssl) != 1) {
		ERR_clear_error();
		return -EIO;
	}
	return 0;
}

static void test_tls_client_certificates(void **state)
{
	struct pki p = {0};
	SSL_CTX *tls = NULL;
	struct fixture *fx;
	struct client cl;
	struct response r;

	pki_make(&p);
	assert_int_equal(
	    http_server_tls_ctx_new(p.srv, NULL, p.dev_key, HTTP_TLS_CLIENT_CERT_OPTIONAL, &tls),
	    -EINVAL);
	assert_int_equal(
	    http_server_tls_ctx_new(p.srv, NULL, p.srv_key, HTTP_TLS_CLIENT_CERT_OPTIONAL, &tls),
	    0);
	fx = fixture_new(NULL, tls);
	SSL_CTX_free(tls); /* the listener holds its own reference */
	fixture_start(fx);

	/* with a client certificate: the handler sees leaf and chain */
	assert_int_equal(client_tls(&cl, fx->port, &p, true), 0);
	client_send_str(&cl, "GET /cert HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
	assert_int_equal(read_response(&cl, &r), 0);
	assert_string_equal(r.status, "HTTP/1.1 200 OK");
	assert_string_equal(r.body, "tls=1 certs=2 leaf=device-1 next=Test CA");
	response_free(&r);
	/* a second request on the same connection sees the same chain */
	client_send_str(&cl, "GET /cert HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
	assert_int_equal(read_response(&cl, &r), 0);
	assert_string_equal(r.body, "tls=1 certs=2 leaf=device-1 next=Test CA");
	response_free(&r);
	assert_closed(&cl);
	client_close(&cl);

	/* without one: still served, no chain */
	assert_int_equal(client_tls(&cl, fx->port, &p, false), 0);
	client_send_str(&cl, "GET /cert HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
	assert_int_equal(read_response(&cl, &r), 0);
	assert_string_equal(r.body, "tls=1 certs=0 leaf= next=");
	response_free(&r);
	/* a POST with a body over TLS */
	client_send_str(&cl, "POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 6\r\n\r\n"
			     "secret");
	assert_int_equal(read_response(&cl, &r), 0);
	assert_string_equal(r.body, "secret");
	response_free(&r);
	client_close(&cl);

	/* plain HTTP on the unix socket of the same server has no chain */
	roundtrip_unix(fx->sock, "GET /cert HTTP/1.1\r\nHost: x\r\n\r\n", &r);
	assert_string_equal(r.body, "tls=0 certs=0 leaf= next=");
	response_free(&r);
	fixture_free(fx);
	pki_free(&p);
}

static void test_tls_client_certificate_required(void **state)
{
	struct pki p = {0};
	SSL_CTX *tls = NULL;
	struct fixture *fx;
	struct client cl;
	struct response r;
	int hs;

	pki_make(&p);
	assert_int_equal(
	    http_server_tls_ctx_new(p.srv, NULL, p.srv_key, HTTP_TLS_CLIENT_CERT_REQUIRED, &tls),
	    0);
	fx = fixture_new(NULL, tls);
	SSL_CTX_free(tls);
	fixture_start(fx);

	/* without a certificate no request gets through (TLS 1.3 reports the
	 * refusal after the client's handshake, on the first read) */
	hs = client_tls(&cl, fx->port, &p, false);
	if (hs == 0) {
		(void)client_send(&cl, "GET /cert HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 39);
		assert_int_equal(read_response(&cl, &r), -1);
	}
	client_close(&cl);

	/* with one, served; a self-signed or foreign chain would be too: the
	 * application verifies chains */
	assert_int_equal(client_tls(&cl, fx->port, &p, true), 0);
	client_send_str(&cl, "GET /cert HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
	assert_int_equal(read_response(&cl, &r), 0);
	assert_string_equal(r.body, "tls=1 certs=2 leaf=device-1 next=Test CA");
	response_free(&r);
	client_close(&cl);
	fixture_free(fx);
	pki_free(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_peercred_get),
	    cmocka_unit_test(test_unix_get_post_peercred),
	    cmocka_unit_test(test_tcp_reuseport),
	    cmocka_unit_test(test_unix_mode_ignores_umask),
	    cmocka_unit_test(test_unix_stale_and_live_socket),
	    cmocka_unit_test(test_adopt_fd_and_connection),
	    cmocka_unit_test(test_404_405_allow),
	    cmocka_unit_test(test_params_query_headers),
	    cmocka_unit_test(test_percent_decoding),
	    cmocka_unit_test(test_json_and_handler_error),
	    cmocka_unit_test(test_route_patterns_rejected),
	    cmocka_unit_test(test_keepalive_and_pipelining),
	    cmocka_unit_test(test_deferred_response),
	    cmocka_unit_test(test_deferred_pending_at_free),
	    cmocka_unit_test(test_pipelined_large_responses),
	    cmocka_unit_test(test_chunked_body),
	    cmocka_unit_test(test_expect_continue),
	    cmocka_unit_test(test_request_line_limit),
	    cmocka_unit_test(test_header_limits),
	    cmocka_unit_test(test_body_limit),
	    cmocka_unit_test(test_malformed_requests),
	    cmocka_unit_test(test_slow_client_timeout),
	    cmocka_unit_test(test_connection_limits),
	    cmocka_unit_test(test_connection_limit_per_uid),
	    cmocka_unit_test(test_tls_client_certificates),
	    cmocka_unit_test(test_tls_client_certificate_required),
	};

	/* EDGEID_LOG_LEVEL=debug shows the server's view while debugging. */
	log_init("test_http_server");
	if (getenv("TEST_FILTER"))
		cmocka_set_test_filter(getenv("TEST_FILTER"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
