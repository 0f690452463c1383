/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness for the HTTP server's request parser.
 *
 * The input is what a client sends on one connection: it is written into
 * one end of a socketpair whose other end the server serves
 * (http_server_adopt_connection), three times, each on a fresh connection:
 * in one write; in writes of 1, 2, 4, 8, ... bytes, so that every parser
 * state also meets the end of the data read so far; and in one write
 * followed at once by a half-close. In the first two, the client
 * half-closes once the server has nothing more to do; then the loop runs
 * until the server has let go of the connection.
 *
 * Checked for every input:
 * - handlers only see requests that keep the documented promises (token
 *   method, absolute path without dot segments, trimmed header values
 *   without controls, body within the limit and NUL-terminated, a body as
 *   long as its Content-Length, route parameters that match the path);
 * - what comes back is a sequence of well-formed responses (complete but
 *   for a half-close in the middle of things), and nothing follows one
 *   that says "Connection: close";
 * - the connection is freed and its descriptor closed: nothing hangs and
 *   nothing is left behind (LeakSanitizer checks the memory).
 * No sleeps: the loop only ever waits for the server's own timers, which
 * are tiny here, and only when a connection does not end by itself.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "common/buf.h"
#include "common/http_server.h"
#include "common/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Small limits, so that short inputs reach every limit. */
#define MAX_REQUEST_LINE 256
#define MAX_HEADER_BYTES 512
#define MAX_HEADERS 8
#define MAX_BODY 2048
#define BIG_BODY (64 * 1024)
/* Only reached when a connection does not end by itself. */
#define TIMEOUT_MS 20
/* Loop turns allowed per connection before it counts as hung. */
#define MAX_TURNS 20000
/* Loop turns that only block on timers (each at most TIMEOUT_MS). */
#define MAX_WAITS 50
/* Everything the server sends for one input is kept for the checks. */
#define MAX_RESPONSE_BYTES (64 * 1024 * 1024)

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);   \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

static struct event_base *base;
static struct http_server *srv;

/* --- handlers ------------------------------------------------------------ */

static bool is_tchar(unsigned char ch)
{
	if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9'))
		return true;
	return ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

static bool is_token(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!is_tchar((unsigned char)*s))
			return false;
	return true;
}

/* Every request a handler sees must keep what http_server.h promises.
 * A HEAD (answered by a GET route) is marked, so that the response checks
 * know its answer has a Content-Length but no body, whoever answers it. */
static void check_request(struct http_request *req)
{
	const char *path = http_request_path(req), *query = http_request_query(req);
	const char *name, *value, *cl;
	size_t n, len;
	const char *body;

	CHECK(is_token(http_request_method(req)));
	CHECK(http_request_target(req) && *http_request_target(req));
	CHECK(path[0] == '/');
	CHECK(!strstr(path, "/./") && !strstr(path, "/../"));
	len = strlen(path);
	CHECK(!(len >= 2 && streq(path + len - 2, "/.")));
	CHECK(!(len >= 3 && streq(path + len - 3, "/..")));
	CHECK(!strchr(path, '?') && !strchr(path, '#'));
	CHECK(http_request_version(req) == 10 || http_request_version(req) == 11);

	n = http_request_header_count(req);
	CHECK(n <= MAX_HEADERS);
	for (size_t i = 0; i < n; i++) {
		CHECK(http_request_header_at(req, i, &name, &value) == 0);
		CHECK(is_token(name));
		for (const char *p = value; *p; p++)
			CHECK(((unsigned char)*p >= 0x20 || *p == '\t') && *p != 0x7f);
		len = strlen(value);
		CHECK(len == 0 || (value[0] != ' ' && value[0] != '\t' && value[len - 1] != ' ' &&
				   value[len - 1] != '\t'));
		/* lookup by name finds the first field of that name */
		for (size_t k = 0; k < i; k++) {
			const char *earlier;
			CHECK(http_request_header_at(req, k, &earlier, NULL) == 0);
			if (strcasecmp(earlier, name) == 0) {
				name = NULL;
				break;
			}
		}
		if (name)
			CHECK(http_request_header(req, name) == value);
	}
	CHECK(http_request_header_at(req, n, &name, &value) == -ENOENT);
	if (http_request_version(req) == 11)
		CHECK(http_request_header(req, "Host") != NULL);

	body = http_request_body(req, &len);
	CHECK(body && body[len] == '\0');
	CHECK(len <= MAX_BODY);
	cl = http_request_header(req, "Content-Length");
	if (cl) {
		char *end;
		unsigned long long v;

		errno = 0;
		v = strtoull(cl, &end, 10);
		CHECK(errno == 0 && *end == '\0' && v == len);
		CHECK(!http_request_header(req, "Transfer-Encoding"));
	}

	n = http_request_query_count(req);
	CHECK((query != NULL) || n == 0);
	for (size_t i = 0; i < n; i++) {
		CHECK(http_request_query_at(req, i, &name, &value) == 0);
		CHECK(name && value);
	}
	CHECK(http_request_query_at(req, n, &name, &value) == -ENOENT);
	CHECK(http_request_peercred(req) != NULL);
	CHECK(!http_request_is_tls(req) && !http_request_peer_chain(req));
	CHECK(streq(http_request_remote_addr(req), "unix"));
	if (streq(http_request_method(req), "HEAD"))
		CHECK(http_response_add_header(req, "X-Fuzz-Head", "1") == 0);
}

static int respond(struct http_request *req, const char *content_type, const void *body, size_t len)
{
	int r = http_respond(req, 200, content_type, body, len);

	CHECK(r == 0);
	return r;
}

static int h_hello(struct http_request *req, void *userdata)
{
	check_request(req);
	return respond(req, "text/plain", "hello", 5);
}

static int h_echo(struct http_request *req, void *userdata)
{
	const char *ct = http_request_header(req, "Content-Type");
	const void *body;
	size_t len;

	check_request(req);
	body = http_request_body(req, &len);
	return respond(req, ct, body, len);
}

static int h_item(struct http_request *req, void *userdata)
{
	const char *id = http_request_path_param(req, "id");
	const char *path = http_request_path(req);

	check_request(req);
	/* one raw segment, decoded: never longer than it was */
	CHECK(strncmp(path, "/items/", 7) == 0 && path[7] && !strchr(path + 7, '/'));
	CHECK(id && *id && strlen(id) <= strlen(path + 7));
	CHECK(!http_request_path_param(req, "*"));
	return respond(req, "text/plain", id, strlen(id));
}

static int h_item_delete(struct http_request *req, void *userdata)
{
	check_request(req);
	CHECK(http_request_path_param(req, "id"));
	CHECK(http_respond(req, 204, NULL, NULL, 0) == 0);
	return 0;
}

static int h_files(struct http_request *req, void *userdata)
{
	const char *tail = http_request_path_param(req, "*");

	check_request(req);
	CHECK(tail);
	CHECK(strncmp(http_request_path(req), "/files/", 7) == 0);
	CHECK(streq(http_request_path(req) + 7, tail));
	return respond(req, "text/plain", tail, strlen(tail));
}

/* Query parameters, and a response header made from one (?h=...), which
 * the server must refuse when it would break the response. */
static int h_query(struct http_request *req, void *userdata)
{
	const char *h = http_request_query_param(req, "h");
	struct buf out;
	int r;

	check_request(req);
	buf_init(&out, 0);
	for (size_t i = 0; i < http_request_query_count(req); i++) {
		const char *name, *value;

		CHECK(http_request_query_at(req, i, &name, &value) == 0);
		r = buf_printf(&out, "%s=%s\n", name, value);
		CHECK(r == 0);
	}
	if (h) {
		r = http_response_add_header(req, "X-Fuzz-Echo", h);
		CHECK(r == 0 || r == -EINVAL || r == -E2BIG);
		for (const char *p = h; r == 0 && *p; p++)
			CHECK(*p != '\r' && *p != '\n');
	}
	/* as a name too, unless it would pass for one of our markers */
	if (h && strncasecmp(h, "X-Fuzz", 6) != 0) {
		r = http_response_add_header(req, h, "v");
		CHECK(r == 0 || r == -EINVAL);
	}
	CHECK(http_response_add_header(req, "Content-Length", "0") == -EINVAL);
	r = respond(req, "text/plain", buf_str(&out), out.len);
	buf_free(&out);
	return r;
}

/* Enough pipelined requests for this fill the server's output past the
 * point where it stops reading. */
static int h_big(struct http_request *req, void *userdata)
{
	static char body[BIG_BODY];

	check_request(req);
	if (!body[0])
		memset(body, 'b', sizeof(body));
	return respond(req, "application/octet-stream", body, sizeof(body));
}

static int h_fail(struct http_request *req, void *userdata)
{
	check_request(req);
	return -EIO; /* the server answers 500 */
}

struct later {
	struct http_request *req;
	struct event *ev;
	bool aborted;
};

static void later_cb(evutil_socket_t fd, short what, void *arg)
{
	struct later *l = arg;
	int r = http_respond(l->req, 200, "text/plain", "late", 4);

	CHECK(l->aborted ? r == -ECONNRESET : r == 0);
	event_free(l->ev);
	free(l);
}

static void later_abort(struct http_request *req, void *userdata)
{
	struct later *l = userdata;

	CHECK(l->req == req && !l->aborted);
	l->aborted = true;
}

/* Answered from the loop, after the handler returned; pipelined requests
 * behind it wait. */
static int h_deferred(struct http_request *req, void *userdata)
{
	struct later *l = calloc(1, sizeof(*l));

	CHECK(l);
	check_request(req);
	l->req = req;
	l->ev = event_new(base, -1, 0, later_cb, l);
	CHECK(l->ev);
	CHECK(http_request_defer(req, later_abort, l) == 0);
	event_active(l->ev, EV_TIMEOUT, 0);
	return 0;
}

static void setup(void)
{
	struct http_server_config cfg = {
	    .max_request_line = MAX_REQUEST_LINE,
	    .max_header_bytes = MAX_HEADER_BYTES,
	    .max_headers = MAX_HEADERS,
	    .max_body = MAX_BODY,
	    .idle_timeout_ms = TIMEOUT_MS,
	    .request_timeout_ms = TIMEOUT_MS,
	    /* The client here always reads; a short write timeout would
	     * only fire when this process stalls, cutting an answer short. */
	    .write_timeout_ms = 10000,
	    .json_errors = true,
	};
	FILE *null = fopen("/dev/null", "we");

	/* The debug lines are formatted too (and thrown away). */
	CHECK(null);
	log_set_stream(null);
	log_set_level(LOG_LEVEL_DEBUG);
	base = event_base_new();
	CHECK(base);
	srv = http_server_new(base, &cfg);
	CHECK(srv);
	CHECK(http_server_route(srv, "GET", "/hello", h_hello, NULL) == 0);
	CHECK(http_server_route(srv, "POST", "/echo", h_echo, NULL) == 0);
	CHECK(http_server_route(srv, "GET", "/items/{id}", h_item, NULL) == 0);
	CHECK(http_server_route(srv, "DELETE", "/items/{id}", h_item_delete, NULL) == 0);
	CHECK(http_server_route(srv, NULL, "/files/*", h_files, NULL) == 0);
	CHECK(http_server_route(srv, "GET", "/query", h_query, NULL) == 0);
	CHECK(http_server_route(srv, "GET", "/fail", h_fail, NULL) == 0);
	CHECK(http_server_route(srv, "GET", "/big", h_big, NULL) == 0);
	CHECK(http_server_route(srv, "GET", "/deferred", h_deferred, NULL) == 0);
}

/* --- the client side ------------------------------------------------------ */

struct client {
	int fd;
	struct buf in; /* everything received */
	bool eof;      /* the server closed its side */
};

/* Take whatever the server has sent. */
static void client_drain(struct client *cl)
{
	char chunk[16384];

	while (!cl->eof) {
		ssize_t k = recv(cl->fd, chunk, sizeof(chunk), MSG_DONTWAIT);

		if (k > 0) {
			CHECK(buf_append(&cl->in, chunk, (size_t)k) == 0);
			continue;
		}
		if (k == 0 || errno == ECONNRESET)
			cl->eof = true;
		else
			CHECK(errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR);
		return;
	}
}

static bool server_busy(void)
{
	return event_base_get_num_events(base, EVENT_BASE_COUNT_ADDED | EVENT_BASE_COUNT_ACTIVE) >
	       0;
}

/* One loop turn without waiting, then collect the output. */
static void turn(struct client *cl)
{
	CHECK(event_base_loop(base, EVLOOP_NONBLOCK) >= 0);
	client_drain(cl);
}

/* Value of header name in the head [p, end), or NULL. */
static const char *find_header(const char *p, const char *end, const char *name, size_t *ret_len)
{
	size_t n = strlen(name);

	p = memmem(p, (size_t)(end - p), "\r\n", 2);
	while (p && p + 2 < end) {
		const char *line = p + 2;
		const char *eol = memmem(line, (size_t)(end - line), "\r\n", 2);

		if (!eol)
			eol = end;
		if ((size_t)(eol - line) > n + 1 && strncasecmp(line, name, n) == 0 &&
		    line[n] == ':' && line[n + 1] == ' ') {
			*ret_len = (size_t)(eol - line) - n - 2;
			return line + n + 2;
		}
		p = eol < end ? eol : NULL;
	}
	return NULL;
}

/* What came back is well-formed responses, one after the other, the last
 * one possibly cut short unless complete. */
static void check_responses(const struct buf *in, bool complete)
{
	const char *p = buf_str(in), *end = p + in->len;

	while (p < end) {
		const char *head_end = memmem(p, (size_t)(end - p), "\r\n\r\n", 4);
		const char *v;
		size_t vlen, body = 0;
		int status;
		bool bodyless, last;

		if (!head_end && !complete)
			return;
		CHECK(head_end);
		CHECK(end - p > 13 && memcmp(p, "HTTP/1.1 ", 9) == 0);
		CHECK(p[9] >= '1' && p[9] <= '5' && p[10] >= '0' && p[10] <= '9' && p[11] >= '0' &&
		      p[11] <= '9' && p[12] == ' ');
		status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
		for (const char *q = p; q < head_end; q++)
			CHECK(*q != '\0' && (*q != '\n' || q[-1] == '\r'));
		head_end += 2; /* the last field's CRLF belongs to the head */

		if (status == 100) {
			CHECK(head_end - p == 23);
			p = head_end + 2;
			continue;
		}
		bodyless = status == 204 || status == 304 ||
			   find_header(p, head_end, "X-Fuzz-Head", &vlen);
		v = find_header(p, head_end, "Content-Length", &vlen);
		CHECK(!v == (status == 204 || status == 304));
		if (v) {
			for (size_t i = 0; i < vlen; i++) {
				CHECK(v[i] >= '0' && v[i] <= '9');
				body = body * 10 + (size_t)(v[i] - '0');
			}
		}
		if (bodyless)
			body = 0;
		v = find_header(p, head_end, "Connection", &vlen);
		last = v && vlen == 5 && memcmp(v, "close", 5) == 0;
		p = head_end + 2;
		if ((size_t)(end - p) < body && !complete)
			return;
		CHECK((size_t)(end - p) >= body);
		p += body;
		CHECK(!last || p == end);
	}
}

enum mode {
	ONE_WRITE,  /* all at once; half-close once the server is idle */
	TRICKLE,    /* writes of 1, 2, 4, 8, ... bytes; half-close when idle */
	HALF_CLOSE, /* all at once, and half-close at once */
};

static const char *const mode_names[] = {"in one write", "trickled", "half-closed at once"};

/* One connection that receives data[0..size) as mode says. */
static void run(const uint8_t *data, size_t size, enum mode mode)
{
	struct client cl = {.fd = -1};
	size_t off = 0, step = mode == TRICKLE ? 1 : 0;
	int sv[2], turns = 0, waits = 0, idle = 0;

	buf_init(&cl.in, MAX_RESPONSE_BYTES);
	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) == 0);
	cl.fd = sv[1];
	CHECK(http_server_adopt_connection(srv, sv[0], NULL) == 0);

	/* Send it all, while the server reads and answers. */
	while (off < size && !cl.eof) {
		size_t n = step && step < size - off ? step : size - off;
		ssize_t k = send(cl.fd, data + off, n, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (k > 0) {
			off += (size_t)k;
			if (step)
				step *= 2;
		} else if (errno == EPIPE || errno == ECONNRESET) {
			break; /* the server has closed: the rest is never read */
		} else {
			CHECK(errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR);
		}
		turn(&cl);
		CHECK(++turns < MAX_TURNS);
	}
	/* Let it finish what it can with what it has, */
	while (mode != HALF_CLOSE && idle < 3 && !cl.eof) {
		size_t before = cl.in.len;
		bool active;

		turn(&cl);
		active = event_base_get_num_events(base, EVENT_BASE_COUNT_ACTIVE) > 0;
		idle = active || cl.in.len != before ? 0 : idle + 1;
		CHECK(++turns < MAX_TURNS);
	}
	/* then end the request stream and wait until the server lets go. */
	CHECK(shutdown(cl.fd, SHUT_WR) == 0);
	while (server_busy()) {
		turn(&cl);
		if (++turns % 64 == 0 && server_busy()) {
			/* Not ending by itself: its timers are due soon. */
			CHECK(++waits <= MAX_WAITS);
			CHECK(event_base_loop(base, EVLOOP_ONCE) >= 0);
			client_drain(&cl);
		}
		CHECK(turns < MAX_TURNS);
	}
	client_drain(&cl);
	CHECK(cl.eof);
	/* the server closed its end of the pair */
	CHECK(fcntl(sv[0], F_GETFD) == -1 && errno == EBADF);
	/* FUZZ_HTTP_DUMP=1 shows the answers to a reproducer on stderr. */
	if (getenv("FUZZ_HTTP_DUMP"))
		fprintf(stderr, "--- %s:\n%s\n", mode_names[mode], buf_str(&cl.in));
	/* A half-close in the middle of a request (or while one is deferred)
	 * ends the connection, possibly in the middle of an answer. */
	check_responses(&cl.in, mode != HALF_CLOSE);
	close(cl.fd);
	buf_free(&cl.in);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!base)
		setup();
	run(data, size, ONE_WRITE);
	run(data, size, TRICKLE);
	run(data, size, HALF_CLOSE);
	return 0;
}
