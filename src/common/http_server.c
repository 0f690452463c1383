/* SPDX-License-Identifier: MIT */
/*
 * HTTP/1.1 server: listeners, connections, the request parser, routing and
 * responses. See http_server.h for the contract.
 *
 * A connection is a small state machine:
 *   READING   parsing a request (or idle between requests)
 *   HANDLING  one complete request is with its handler (maybe deferred);
 *             further pipelined bytes wait in the input buffer
 *   CLOSING   a final response is queued; close once it is written
 *   LINGER    written and half-closed; discard what the client still sends
 *             for a moment, so that its unread data does not turn our
 *             close into a reset that destroys the response in flight
 * The bufferevent callbacks only take notes; the work happens in a callback
 * of our own from the loop (conn_run), so nothing of ours runs inside a call
 * we make into libevent, and a connection is only freed from a loop
 * callback or http_server_free().
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>

#include "common/buf.h"
#include "common/encode.h"
#include "common/http_server.h"
#include "common/log.h"

#define LINGER_MS 2000
#define OUTPUT_HIGH (256 * 1024)         /* stop parsing pipelined requests above this */
#define CHUNK_LINE_MAX 1024              /* chunk-size line with extensions */
#define RESPONSE_HEADERS_MAX (16 * 1024) /* handler-added response headers */
#define ACCEPT_BATCH 64
#define ACCEPT_PAUSE_MS 100

enum conn_state {
	C_READING,
	C_HANDLING,
	C_CLOSING,
	C_LINGER,
};

enum parse_state {
	P_LINE,
	P_HEADERS,
	P_BODY,
	P_CHUNK_SIZE,
	P_CHUNK_DATA,
	P_CHUNK_END,
	P_TRAILERS,
};

struct kv {
	char *name;
	char *value;
};

struct hdr_ref {
	size_t name; /* offsets into hdr_arena */
	size_t value;
};

struct http_request {
	struct http_conn *conn; /* NULL once the client is gone */
	char *method;
	char *target;
	char *path;
	char *query;
	int version;

	struct buf hdr_arena; /* "name\0value\0" for every field */
	struct hdr_ref *hdrs;
	size_t n_hdrs;
	size_t cap_hdrs;

	struct kv *params;
	size_t n_params;
	struct kv *query_kv;
	size_t n_query;

	struct buf body;

	bool has_cred;
	struct peercred cred;
	STACK_OF(X509) * chain;
	bool tls;
	char remote[64];

	bool head;  /* HEAD served by a GET route: send no body */
	bool close; /* the client does not keep the connection */
	bool in_handler;
	bool deferred;
	bool responded;
	struct buf resp_hdrs;
	http_abort_fn on_abort;
	void *abort_userdata;
};

struct http_conn {
	struct http_conn *prev, *next;
	struct http_server *srv;
	int fd;
	SSL *ssl; /* NULL without TLS */
	struct bufferevent *bev;
	struct event *timer;
	struct event *kick; /* run the state machine from the loop */
	enum conn_state state;
	enum parse_state ps;
	struct http_request *req; /* being parsed, or with its handler */
	size_t scan_off;          /* input bytes already known to hold no LF */
	size_t hdr_bytes;         /* bytes of header (or trailer) section so far */
	size_t n_fields;
	uint64_t remaining; /* body or chunk bytes still to read */
	bool started;       /* a byte of the current request has arrived */
	bool paused;        /* waiting for the output to drain */
	bool close_after;   /* close once the current response is written */
	bool eof;
	bool tls;
	bool chain_done;
	short pending_io;     /* EV_READ, EV_WRITE noted by the callbacks */
	short pending_events; /* BEV_EVENT_* noted by the callbacks */
	bool has_cred;
	struct peercred cred;
	STACK_OF(X509) * chain;
	char remote[64];
};

struct listener {
	struct listener *next;
	struct http_server *srv;
	int fd;
	struct event *ev;
	struct event *pause;
	SSL_CTX *tls;
	char *unix_path; /* unlinked on free when it is still our socket */
	dev_t dev;
	ino_t ino;
};

struct route {
	char *method; /* NULL: any */
	char **segs;
	size_t n_segs;
	bool prefix;
	http_handler_fn fn;
	void *userdata;
};

struct http_server {
	struct event_base *base;
	struct http_server_config cfg;
	struct listener *listeners;
	struct http_conn *conns;
	unsigned n_conns;
	struct route *routes;
	size_t n_routes;
};

static void conn_process(struct http_conn *c);
static void conn_free(struct http_conn *c);

/* --- small helpers ----------------------------------------------------- */

static bool is_tchar(unsigned char ch)
{
	if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9'))
		return true;
	return ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

static bool is_token(const char *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!is_tchar((unsigned char)s[i]))
			return false;
	return true;
}

/* A field value we are willing to send: no CR, LF, NUL or other controls
 * except HTAB. */
static bool is_field_value(const char *s)
{
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
			return false;
	}
	return true;
}

static int hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* s[0..n) percent-decoded ('+' as space with plus_as_space) into a new
 * string in *ret. Returns 0, -EBADMSG (a bad or truncated escape, or %00,
 * which would cut the string short), -ENOMEM. */
static int pct_decode(const char *s, size_t n, bool plus_as_space, char **ret)
{
	_cleanup_buf_ struct buf b;
	int r;

	buf_init(&b, n + 1); /* decoding never lengthens; +1 as 0 means "default" */
	r = url_decode(&b, s, n, plus_as_space);
	if (r == -EINVAL)
		return -EBADMSG;
	if (r < 0)
		return -ENOMEM;
	*ret = buf_steal(&b, NULL);
	return *ret ? 0 : -ENOMEM;
}

static struct timeval ms_to_tv(unsigned ms)
{
	struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
	return tv;
}

/* IMF-fixdate (RFC 9110 5.6.7), independent of the locale. */
static void http_date(char *out, size_t n)
{
	static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
	static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
					   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	time_t now = time(NULL);
	struct tm tm;

	if (!gmtime_r(&now, &tm))
		memset(&tm, 0, sizeof(tm));
	snprintf(out, n, "%.3s, %02d %.3s %04d %02d:%02d:%02d GMT", days[(unsigned)tm.tm_wday % 7],
		 tm.tm_mday, months[(unsigned)tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour,
		 tm.tm_min, tm.tm_sec);
}

const char *http_status_text(int status)
{
	switch (status) {
	case 100:
		return "Continue";
	case 101:
		return "Switching Protocols";
	case 200:
		return "OK";
	case 201:
		return "Created";
	case 202:
		return "Accepted";
	case 203:
		return "Non-Authoritative Information";
	case 204:
		return "No Content";
	case 205:
		return "Reset Content";
	case 206:
		return "Partial Content";
	case 300:
		return "Multiple Choices";
	case 301:
		return "Moved Permanently";
	case 302:
		return "Found";
	case 303:
		return "See Other";
	case 304:
		return "Not Modified";
	case 307:
		return "Temporary Redirect";
	case 308:
		return "Permanent Redirect";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 402:
		return "Payment Required";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 406:
		return "Not Acceptable";
	case 407:
		return "Proxy Authentication Required";
	case 408:
		return "Request Timeout";
	case 409:
		return "Conflict";
	case 410:
		return "Gone";
	case 411:
		return "Length Required";
	case 412:
		return "Precondition Failed";
	case 413:
		return "Content Too Large";
	case 414:
		return "URI Too Long";
	case 415:
		return "Unsupported Media Type";
	case 416:
		return "Range Not Satisfiable";
	case 417:
		return "Expectation Failed";
	case 421:
		return "Misdirected Request";
	case 422:
		return "Unprocessable Content";
	case 425:
		return "Too Early";
	case 426:
		return "Upgrade Required";
	case 428:
		return "Precondition Required";
	case 429:
		return "Too Many Requests";
	case 431:
		return "Request Header Fields Too Large";
	case 451:
		return "Unavailable For Legal Reasons";
	case 500:
		return "Internal Server Error";
	case 501:
		return "Not Implemented";
	case 502:
		return "Bad Gateway";
	case 503:
		return "Service Unavailable";
	case 504:
		return "Gateway Timeout";
	case 505:
		return "HTTP Version Not Supported";
	default:
		return "";
	}
}

/* --- requests ---------------------------------------------------------- */

static void kv_free(struct kv *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].name);
		free(v[i].value);
	}
	free(v);
}

static void request_free(struct http_request *req)
{
	if (!req)
		return;
	free(req->method);
	free(req->target);
	free(req->path);
	free(req->query);
	buf_free(&req->hdr_arena);
	free(req->hdrs);
	kv_free(req->params, req->n_params);
	kv_free(req->query_kv, req->n_query);
	buf_free(&req->body);
	if (req->chain)
		sk_X509_pop_free(req->chain, X509_free);
	buf_free(&req->resp_hdrs);
	free(req);
}

static struct http_request *request_new(struct http_conn *c)
{
	struct http_request *req = calloc(1, sizeof(*req));

	if (!req)
		return NULL;
	req->conn = c;
	buf_init(&req->hdr_arena, c->srv->cfg.max_header_bytes);
	buf_init(&req->body, c->srv->cfg.max_body);
	buf_init(&req->resp_hdrs, RESPONSE_HEADERS_MAX);
	return req;
}

/* Split the raw query into decoded name/value pairs. -EBADMSG on a bad
 * escape, -ENOMEM. */
static int request_parse_query(struct http_request *req)
{
	const char *q = req->query;
	size_t n = 1;

	if (!q)
		return 0;
	for (const char *p = q; *p; p++)
		n += *p == '&';
	req->query_kv = calloc(n, sizeof(*req->query_kv));
	if (!req->query_kv)
		return -ENOMEM;
	while (*q) {
		const char *end = strchrnul(q, '&');
		const char *eq = memchr(q, '=', (size_t)(end - q));
		struct kv *kv;
		int r;

		if (end == q) {
			q++;
			continue;
		}
		if (!eq)
			eq = end;
		kv = &req->query_kv[req->n_query++];
		r = pct_decode(q, (size_t)(eq - q), true, &kv->name);
		if (r == 0 && eq < end)
			r = pct_decode(eq + 1, (size_t)(end - eq - 1), true, &kv->value);
		else if (r == 0 && !(kv->value = strdup("")))
			r = -ENOMEM;
		if (r < 0)
			return r;
		q = *end ? end + 1 : end;
	}
	return 0;
}

const char *http_request_method(const struct http_request *req)
{
	return req->method;
}

const char *http_request_target(const struct http_request *req)
{
	return req->target;
}

const char *http_request_path(const struct http_request *req)
{
	return req->path;
}

const char *http_request_query(const struct http_request *req)
{
	return req->query;
}

int http_request_version(const struct http_request *req)
{
	return req->version;
}

const char *http_request_path_param(const struct http_request *req, const char *name)
{
	for (size_t i = 0; i < req->n_params; i++)
		if (streq(req->params[i].name, name))
			return req->params[i].value;
	return NULL;
}

const char *http_request_query_param(const struct http_request *req, const char *name)
{
	for (size_t i = 0; i < req->n_query; i++)
		if (streq(req->query_kv[i].name, name))
			return req->query_kv[i].value;
	return NULL;
}

size_t http_request_query_count(const struct http_request *req)
{
	return req->n_query;
}

int http_request_query_at(const struct http_request *req, size_t i, const char **ret_name,
			  const char **ret_value)
{
	if (i >= req->n_query)
		return -ENOENT;
	if (ret_name)
		*ret_name = req->query_kv[i].name;
	if (ret_value)
		*ret_value = req->query_kv[i].value;
	return 0;
}

const char *http_request_header(const struct http_request *req, const char *name)
{
	for (size_t i = 0; i < req->n_hdrs; i++)
		if (strcasecmp(req->hdr_arena.data + req->hdrs[i].name, name) == 0)
			return req->hdr_arena.data + req->hdrs[i].value;
	return NULL;
}

size_t http_request_header_count(const struct http_request *req)
{
	return req->n_hdrs;
}

int http_request_header_at(const struct http_request *req, size_t i, const char **ret_name,
			   const char **ret_value)
{
	if (i >= req->n_hdrs)
		return -ENOENT;
	if (ret_name)
		*ret_name = req->hdr_arena.data + req->hdrs[i].name;
	if (ret_value)
		*ret_value = req->hdr_arena.data + req->hdrs[i].value;
	return 0;
}

const void *http_request_body(const struct http_request *req, size_t *ret_len)
{
	if (ret_len)
		*ret_len = req->body.len;
	return buf_str(&req->body);
}

const struct peercred *http_request_peercred(const struct http_request *req)
{
	return req->has_cred ? &req->cred : NULL;
}

STACK_OF(X509) * http_request_peer_chain(const struct http_request *req)
{
	return req->chain;
}

bool http_request_is_tls(const struct http_request *req)
{
	return req->tls;
}

const char *http_request_remote_addr(const struct http_request *req)
{
	return req->remote;
}

/* --- connections: timers and output ------------------------------------ */

static void conn_arm(struct http_conn *c, unsigned ms)
{
	struct timeval tv = ms_to_tv(ms);

	evtimer_add(c->timer, &tv);
}

static void conn_disarm(struct http_conn *c)
{
	evtimer_del(c->timer);
}

static void conn_kick(struct http_conn *c)
{
	event_active(c->kick, EV_TIMEOUT, 0);
}

static size_t conn_outlen(struct http_conn *c)
{
	return evbuffer_get_length(bufferevent_get_output(c->bev));
}

/* Queue one complete response. extra holds "Name: value\r\n" lines. */
static int conn_write_response(struct http_conn *c, int status, const struct buf *extra,
			       const char *content_type, const void *body, size_t len, bool head,
			       bool close)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	_cleanup_buf_ struct buf h;
	bool bodyless = status < 200 || status == 204 || status == 304;
	char date[64];
	int r;

	buf_init(&h, RESPONSE_HEADERS_MAX + 1024);
	http_date(date, sizeof(date));
	r = buf_printf(&h, "HTTP/1.1 %d %s\r\nDate: %s\r\n", status, http_status_text(status),
		       date);
	if (r == 0 && content_type && !bodyless)
		r = buf_printf(&h, "Content-Type: %s\r\n", content_type);
	if (r == 0 && !bodyless)
		r = buf_printf(&h, "Content-Length: %zu\r\n", len);
	if (r == 0 && close)
		r = buf_append_str(&h, "Connection: close\r\n");
	if (r == 0 && extra && extra->len)
		r = buf_append(&h, extra->data, extra->len);
	if (r == 0)
		r = buf_append_str(&h, "\r\n");
	if (r < 0)
		return r;
	if (evbuffer_add(out, h.data, h.len) != 0)
		return -ENOMEM;
	if (!bodyless && !head && len > 0 && evbuffer_add(out, body, len) != 0)
		return -ENOMEM;
	return 0;
}

/* The body of an error the server makes itself. */
static int error_body(const struct http_server *srv, const char *message, struct buf *out,
		      const char **ret_content_type)
{
	if (srv->cfg.json_errors) {
		json_t *o = json_pack("{s:s}", "message", message);
		char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
		int r;

		json_decref(o);
		if (!s)
			return -ENOMEM;
		r = buf_append_str(out, s);
		free(s);
		*ret_content_type = "application/json; charset=utf-8";
		return r;
	}
	*ret_content_type = "text/plain; charset=utf-8";
	return buf_printf(out, "%s\n", message);
}

/* Answer the current request with an error of our own and close. */
static int conn_fail(struct http_conn *c, int status, const char *message)
{
	_cleanup_buf_ struct buf body;
	const char *ctype = NULL;

	log_debug("http: %s: %d %s", c->remote, status, message);
	request_free(c->req);
	c->req = NULL;
	conn_disarm(c);
	buf_init(&body, 0);
	if (error_body(c->srv, message, &body, &ctype) == 0)
		(void)conn_write_response(c, status, NULL, ctype, body.data, body.len, false, true);
	c->state = C_CLOSING;
	c->close_after = true;
	conn_kick(c);
	return -1;
}

/* --- the parser -------------------------------------------------------- */

/* The next complete line in the input: 1 with *ret_line pointing at it
 * (contiguous, valid until the input is drained), *ret_len its length
 * without CR LF and *ret_total with them; 0 when no LF is buffered yet. A
 * bare LF ends a line too (RFC 9112 2.2). */
static int conn_line(struct http_conn *c, char **ret_line, size_t *ret_len, size_t *ret_total)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	size_t avail = evbuffer_get_length(in), len;
	struct evbuffer_ptr ptr;
	char *line;

	if (c->scan_off >= avail)
		return 0;
	if (evbuffer_ptr_set(in, &ptr, c->scan_off, EVBUFFER_PTR_SET) != 0)
		return 0;
	ptr = evbuffer_search(in, "\n", 1, &ptr);
	if (ptr.pos < 0) {
		c->scan_off = avail;
		return 0;
	}
	line = (char *)evbuffer_pullup(in, (ev_ssize_t)ptr.pos + 1);
	if (!line)
		return 0;
	len = (size_t)ptr.pos;
	if (len > 0 && line[len - 1] == '\r')
		len--;
	*ret_line = line;
	*ret_len = len;
	*ret_total = (size_t)ptr.pos + 1;
	return 1;
}

static void conn_consume(struct http_conn *c, size_t n)
{
	evbuffer_drain(bufferevent_get_input(c->bev), n);
	c->scan_off = 0;
}

/* "/a/./b", "/a/../b": we do not resolve dot segments, we refuse them, so
 * that a prefix route never sees a path that climbs out of it. */
static bool has_dot_segment(const char *path)
{
	for (const char *p = path; *p; p++) {
		if (*p != '/')
			continue;
		if (p[1] == '.' && (p[2] == '/' || p[2] == '\0'))
			return true;
		if (p[1] == '.' && p[2] == '.' && (p[3] == '/' || p[3] == '\0'))
			return true;
	}
	return false;
}

static int parse_request_line(struct http_conn *c, const char *line, size_t len)
{
	const char *sp1, *sp2, *target, *path, *q, *v;
	size_t tlen, vlen;
	struct http_request *req;
	char *decoded = NULL;
	int r;

	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)line[i];
		if (ch < 0x20 || ch >= 0x7f)
			return conn_fail(c, 400, "malformed request line");
	}
	sp1 = memchr(line, ' ', len);
	sp2 = memrchr(line, ' ', len);
	if (!sp1 || sp1 == sp2 || !is_token(line, (size_t)(sp1 - line)))
		return conn_fail(c, 400, "malformed request line");
	target = sp1 + 1;
	tlen = (size_t)(sp2 - target);
	v = sp2 + 1;
	vlen = len - (size_t)(v - line);
	if (tlen == 0 || memchr(target, ' ', tlen) || memchr(target, '#', tlen))
		return conn_fail(c, 400, "malformed request line");
	if (vlen != 8 || memcmp(v, "HTTP/", 5) != 0 || v[6] != '.' || v[5] < '0' || v[5] > '9' ||
	    v[7] < '0' || v[7] > '9')
		return conn_fail(c, 400, "malformed request line");
	if (v[5] != '1' || (v[7] != '0' && v[7] != '1'))
		return conn_fail(c, 505, "only HTTP/1.0 and HTTP/1.1 are supported");

	req = request_new(c);
	if (!req)
		return conn_fail(c, 500, "out of memory");
	c->req = req;
	req->version = v[7] == '1' ? 11 : 10;
	req->method = strndup(line, (size_t)(sp1 - line));
	req->target = strndup(target, tlen);
	if (!req->method || !req->target)
		return conn_fail(c, 500, "out of memory");

	/* origin-form, or absolute-form reduced to its path and query. */
	path = req->target;
	if (strncasecmp(path, "http://", 7) == 0 || strncasecmp(path, "https://", 8) == 0) {
		path = strstr(path, "://") + 3;
		path += strcspn(path, "/?");
	} else if (path[0] != '/') {
		return conn_fail(c, 400, "request target must be an absolute path");
	}
	q = strchr(path, '?');
	if (path[0] == '/')
		req->path = strndup(path, q ? (size_t)(q - path) : strlen(path));
	else
		req->path = strdup("/");
	if (!req->path || (q && !(req->query = strdup(q + 1))))
		return conn_fail(c, 500, "out of memory");
	/* Decoded here only to check every escape, so that route parameters
	 * (decoded per segment when a route matches) cannot fail later. */
	r = pct_decode(req->path, strlen(req->path), false, &decoded);
	free(decoded);
	if (r == -ENOMEM)
		return conn_fail(c, 500, "out of memory");
	if (r < 0 || has_dot_segment(req->path))
		return conn_fail(c, 400, "malformed request path");
	r = request_parse_query(req);
	if (r == -ENOMEM)
		return conn_fail(c, 500, "out of memory");
	if (r < 0)
		return conn_fail(c, 400, "malformed query string");
	req->close = req->version == 10;
	return 0;
}

static int parse_header_line(struct http_conn *c, const char *line, size_t len)
{
	struct http_request *req = c->req;
	const char *colon, *v, *vend;
	struct hdr_ref ref;

	if (line[0] == ' ' || line[0] == '\t')
		return conn_fail(c, 400, "obsolete header line folding is not accepted");
	colon = memchr(line, ':', len);
	if (!colon || !is_token(line, (size_t)(colon - line)))
		return conn_fail(c, 400, "malformed header field");
	v = colon + 1;
	vend = line + len;
	while (v < vend && (*v == ' ' || *v == '\t'))
		v++;
	while (vend > v && (vend[-1] == ' ' || vend[-1] == '\t'))
		vend--;
	for (const char *p = v; p < vend; p++) {
		unsigned char ch = (unsigned char)*p;
		if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
			return conn_fail(c, 400, "malformed header field");
	}
	if (req->n_hdrs == req->cap_hdrs) {
		size_t cap = req->cap_hdrs ? req->cap_hdrs * 2 : 16;
		struct hdr_ref *n = reallocarray(req->hdrs, cap, sizeof(*n));
		if (!n)
			return conn_fail(c, 500, "out of memory");
		req->hdrs = n;
		req->cap_hdrs = cap;
	}
	ref.name = req->hdr_arena.len;
	ref.value = ref.name + (size_t)(colon - line) + 1;
	if (buf_append(&req->hdr_arena, line, (size_t)(colon - line)) < 0 ||
	    buf_putc(&req->hdr_arena, '\0') < 0 ||
	    buf_append(&req->hdr_arena, v, (size_t)(vend - v)) < 0 ||
	    buf_putc(&req->hdr_arena, '\0') < 0)
		return conn_fail(c, 431, "header section too large");
	req->hdrs[req->n_hdrs++] = ref;
	return 0;
}

static bool has_token(const char *list, const char *token)
{
	size_t n = strlen(token);

	while (*list) {
		const char *end = strchrnul(list, ',');
		const char *s = list, *e = end;

		while (s < e && (*s == ' ' || *s == '\t'))
			s++;
		while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		if ((size_t)(e - s) == n && strncasecmp(s, token, n) == 0)
			return true;
		list = *end ? end + 1 : end;
	}
	return false;
}

/* The header section is complete: check framing, choose how to read the
 * body. Returns 1 when the request is complete, 0 to go on, -1 failed. */
static int headers_done(struct http_conn *c)
{
	struct http_server_config *cfg = &c->srv->cfg;
	struct http_request *req = c->req;
	const char *expect = NULL;
	unsigned n_host = 0, n_te = 0;
	bool have_cl = false, chunked = false;
	uint64_t cl = 0;

	for (size_t i = 0; i < req->n_hdrs; i++) {
		const char *name = req->hdr_arena.data + req->hdrs[i].name;
		const char *value = req->hdr_arena.data + req->hdrs[i].value;

		if (strcasecmp(name, "host") == 0) {
			n_host++;
		} else if (strcasecmp(name, "content-length") == 0) {
			uint64_t n = 0;
			size_t len = strlen(value);

			if (len == 0 || strspn(value, "0123456789") != len)
				return conn_fail(c, 400, "malformed Content-Length");
			for (size_t k = 0; k < len; k++)
				n = n > (UINT64_MAX - 9) / 10 ? UINT64_MAX
							      : n * 10 + (uint64_t)(value[k] - '0');
			if (have_cl && n != cl)
				return conn_fail(c, 400, "conflicting Content-Length fields");
			have_cl = true;
			cl = n;
		} else if (strcasecmp(name, "transfer-encoding") == 0) {
			n_te++;
			chunked = strcasecmp(value, "chunked") == 0;
		} else if (strcasecmp(name, "connection") == 0) {
			if (has_token(value, "close"))
				req->close = true;
		} else if (strcasecmp(name, "expect") == 0) {
			expect = value;
		}
	}
	if (n_host > 1 || (n_host == 0 && req->version == 11))
		return conn_fail(c, 400,
				 n_host ? "more than one Host field" : "missing Host field");
	if (n_te && have_cl)
		return conn_fail(c, 400, "both Content-Length and Transfer-Encoding");
	if (n_te && req->version == 10)
		return conn_fail(c, 400, "Transfer-Encoding in an HTTP/1.0 request");
	if (n_te && (n_te > 1 || !chunked))
		return conn_fail(c, 501, "unsupported transfer coding");
	if (have_cl && cl > cfg->max_body)
		return conn_fail(c, 413, "request body too large");
	if (expect) {
		if (strcasecmp(expect, "100-continue") != 0)
			return conn_fail(c, 417, "unsupported expectation");
		if (req->version == 11 && (chunked || cl > 0) &&
		    evbuffer_get_length(bufferevent_get_input(c->bev)) == 0)
			(void)evbuffer_add(bufferevent_get_output(c->bev),
					   "HTTP/1.1 100 Continue\r\n\r\n", 25);
	}
	c->hdr_bytes = 0; /* trailers get a budget of their own */
	c->n_fields = 0;
	if (chunked) {
		c->ps = P_CHUNK_SIZE;
		return 0;
	}
	if (cl > 0) {
		c->remaining = cl;
		c->ps = P_BODY;
		return 0;
	}
	return 1;
}

/* Move up to n body bytes from the input into the request. */
static int conn_take_body(struct http_conn *c, size_t n)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	struct evbuffer_iovec v[8];

	while (n > 0) {
		int k = evbuffer_peek(in, (ev_ssize_t)n, NULL, v, 8);
		size_t done = 0;

		if (k <= 0)
			break;
		for (int i = 0; i < k && i < 8 && done < n; i++) {
			size_t m = v[i].iov_len < n - done ? v[i].iov_len : n - done;

			if (buf_append(&c->req->body, v[i].iov_base, m) < 0)
				return -ENOMEM;
			done += m;
		}
		evbuffer_drain(in, done);
		n -= done;
	}
	return 0;
}

static int parse_chunk_size(struct http_conn *c, const char *line, size_t len)
{
	uint64_t size = 0;
	size_t i = 0;

	for (; i < len && hexval(line[i]) >= 0; i++) {
		if (i >= 15)
			return conn_fail(c, 400, "malformed chunk size");
		size = size * 16 + (uint64_t)hexval(line[i]);
	}
	if (i == 0)
		return conn_fail(c, 400, "malformed chunk size");
	while (i < len && (line[i] == ' ' || line[i] == '\t'))
		i++;
	if (i < len && line[i] != ';')
		return conn_fail(c, 400, "malformed chunk size");
	for (; i < len; i++) {
		unsigned char ch = (unsigned char)line[i];
		if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
			return conn_fail(c, 400, "malformed chunk extension");
	}
	if (size > c->srv->cfg.max_body - c->req->body.len)
		return conn_fail(c, 413, "request body too large");
	c->remaining = size;
	c->ps = size ? P_CHUNK_DATA : P_TRAILERS;
	return 0;
}

/* Advance the parser. Returns 1 when a request is complete, 0 when it needs
 * more input, -1 when the connection failed (an error response is queued). */
static int conn_parse(struct http_conn *c)
{
	struct http_server_config *cfg = &c->srv->cfg;
	struct evbuffer *in = bufferevent_get_input(c->bev);
	char *line;
	size_t len, total;
	int r;

	for (;;) {
		switch (c->ps) {
		case P_LINE:
			if (!conn_line(c, &line, &len, &total)) {
				if (evbuffer_get_length(in) > cfg->max_request_line + 1)
					return conn_fail(c, 414, "request line too long");
				return 0;
			}
			if (len > cfg->max_request_line)
				return conn_fail(c, 414, "request line too long");
			if (len == 0) { /* empty lines before a request are ignored */
				conn_consume(c, total);
				continue;
			}
			r = parse_request_line(c, line, len);
			if (r < 0)
				return r;
			conn_consume(c, total);
			c->ps = P_HEADERS;
			c->hdr_bytes = 0;
			c->n_fields = 0;
			break;

		case P_HEADERS:
		case P_TRAILERS:
			if (!conn_line(c, &line, &len, &total)) {
				if (c->hdr_bytes + evbuffer_get_length(in) > cfg->max_header_bytes)
					return conn_fail(c, 431, "header section too large");
				return 0;
			}
			c->hdr_bytes += total;
			if (c->hdr_bytes > cfg->max_header_bytes)
				return conn_fail(c, 431, "header section too large");
			if (len == 0) {
				conn_consume(c, total);
				if (c->ps == P_TRAILERS)
					return 1;
				r = headers_done(c);
				if (r != 0)
					return r;
				break;
			}
			if (++c->n_fields > cfg->max_headers)
				return conn_fail(c, 431, "too many header fields");
			if (c->ps == P_HEADERS) {
				r = parse_header_line(c, line, len);
				if (r < 0)
					return r;
			} else if (line[0] == ' ' || line[0] == '\t' || !memchr(line, ':', len)) {
				/* trailer fields are checked for form, then dropped */
				return conn_fail(c, 400, "malformed trailer field");
			}
			conn_consume(c, total);
			break;

		case P_BODY:
		case P_CHUNK_DATA: {
			size_t avail = evbuffer_get_length(in);
			size_t n = avail < c->remaining ? avail : (size_t)c->remaining;

			if (n == 0)
				return 0;
			if (conn_take_body(c, n) < 0)
				return conn_fail(c, 500, "out of memory");
			c->remaining -= n;
			if (c->remaining > 0)
				return 0;
			if (c->ps == P_BODY)
				return 1;
			c->ps = P_CHUNK_END;
			break;
		}

		case P_CHUNK_SIZE:
			if (!conn_line(c, &line, &len, &total)) {
				if (evbuffer_get_length(in) > CHUNK_LINE_MAX)
					return conn_fail(c, 400, "malformed chunk size");
				return 0;
			}
			if (len > CHUNK_LINE_MAX)
				return conn_fail(c, 400, "malformed chunk size");
			r = parse_chunk_size(c, line, len);
			if (r < 0)
				return r;
			conn_consume(c, total);
			break;

		case P_CHUNK_END: {
			unsigned char crlf[2];
			ev_ssize_t n = evbuffer_copyout(in, crlf, 2);

			if (n < 1)
				return 0;
			if (crlf[0] == '\n') {
				conn_consume(c, 1);
			} else if (crlf[0] != '\r') {
				return conn_fail(c, 400, "chunk data not followed by CRLF");
			} else if (n < 2) {
				return 0;
			} else if (crlf[1] != '\n') {
				return conn_fail(c, 400, "chunk data not followed by CRLF");
			} else {
				conn_consume(c, 2);
			}
			c->ps = P_CHUNK_SIZE;
			break;
		}
		}
	}
}

/* --- routing ----------------------------------------------------------- */

static void route_clear(struct route *rt)
{
	free(rt->method);
	for (size_t i = 0; i < rt->n_segs; i++)
		free(rt->segs[i]);
	free(rt->segs);
}

/* Walk path against rt. With req, also store the parameters in it.
 * Returns 1 on a match, 0 otherwise, -ENOMEM. */
static int route_walk(const struct route *rt, const char *path, struct http_request *req)
{
	const char *p = path;
	size_t n_params = 0;

	for (size_t i = 0; i < rt->n_segs; i++) {
		const char *seg = rt->segs[i], *end;
		size_t n;

		if (*p != '/')
			return 0;
		p++;
		end = strchrnul(p, '/');
		n = (size_t)(end - p);
		if (seg[0] == '{') {
			if (n == 0)
				return 0;
			if (req) {
				struct kv *kv = &req->params[n_params++];
				int r;

				req->n_params = n_params;
				kv->name = strndup(seg + 1, strlen(seg) - 2);
				if (!kv->name)
					return -ENOMEM;
				/* '+' stays '+' in a path. Every escape was
				 * checked with the request line: only
				 * -ENOMEM is left. */
				r = pct_decode(p, n, false, &kv->value);
				if (r < 0)
					return r;
			}
		} else if (strlen(seg) != n || memcmp(seg, p, n) != 0) {
			return 0;
		}
		p = end;
	}
	if (!rt->prefix)
		return *p == '\0';
	if (*p != '/')
		return 0;
	if (req) {
		struct kv *kv = &req->params[n_params++];
		req->n_params = n_params;
		kv->name = strdup("*");
		kv->value = strdup(p + 1);
		if (!kv->name || !kv->value)
			return -ENOMEM;
	}
	return 1;
}

static int route_capture(const struct route *rt, struct http_request *req)
{
	size_t n = rt->prefix ? 1 : 0;

	for (size_t i = 0; i < rt->n_segs; i++)
		n += rt->segs[i][0] == '{';
	if (n == 0)
		return 0;
	req->params = calloc(n, sizeof(*req->params));
	if (!req->params)
		return -ENOMEM;
	return route_walk(rt, req->path, req) < 0 ? -ENOMEM : 0;
}

static bool allow_has(const struct buf *allow, const char *method)
{
	const char *p = buf_str(allow);
	size_t n = strlen(method);

	while (*p) {
		const char *end = strchrnul(p, ',');
		if ((size_t)(end - p) == n && memcmp(p, method, n) == 0)
			return true;
		p = *end ? end + 2 : end;
	}
	return false;
}

static int allow_add(struct buf *allow, const char *method)
{
	if (allow_has(allow, method))
		return 0;
	if (allow->len && buf_append_str(allow, ", ") < 0)
		return -ENOMEM;
	return buf_append_str(allow, method);
}

/* The route for req, or NULL with the methods the path has in allow. */
static const struct route *route_find(const struct http_server *srv, struct http_request *req,
				      struct buf *allow)
{
	const struct route *get = NULL;

	for (size_t i = 0; i < srv->n_routes; i++) {
		const struct route *rt = &srv->routes[i];

		if (route_walk(rt, req->path, NULL) != 1)
			continue;
		if (!rt->method || streq(rt->method, req->method))
			return rt;
		if (!get && streq(rt->method, "GET"))
			get = rt;
		(void)allow_add(allow, rt->method);
		if (streq(rt->method, "GET"))
			(void)allow_add(allow, "HEAD");
	}
	if (get && streq(req->method, "HEAD")) {
		req->head = true;
		return get;
	}
	return NULL;
}

/* --- dispatch and answers ---------------------------------------------- */

/* The current request has been answered: free it and go on. */
static void conn_request_done(struct http_conn *c, bool from_loop)
{
	request_free(c->req);
	c->req = NULL;
	if (c->close_after) {
		c->state = C_CLOSING;
		conn_kick(c);
		return;
	}
	c->state = C_READING;
	c->ps = P_LINE;
	c->started = false;
	c->scan_off = 0;
	conn_arm(c, c->srv->cfg.idle_timeout_ms);
	if (from_loop)
		conn_kick(c);
}

static int request_send(struct http_request *req, int status, const char *content_type,
			const void *body, size_t len)
{
	struct http_conn *c = req->conn;
	int ret = 0, r;

	req->responded = true;
	if (!c) {
		if (!req->in_handler)
			request_free(req);
		return -ECONNRESET;
	}
	if (status < 200 || status > 599 || (content_type && !is_field_value(content_type))) {
		ret = -EINVAL;
		status = 500;
		content_type = NULL;
		body = NULL;
		len = 0;
	}
	if (req->close)
		c->close_after = true;
	r = conn_write_response(c, status, &req->resp_hdrs, content_type, body, len, req->head,
				c->close_after);
	if (r < 0) {
		ret = r;
		c->close_after = true;
	}
	log_debug("http: %s: %s %s -> %d", c->remote, req->method, req->path, status);
	if (!req->in_handler)
		conn_request_done(c, true);
	return ret;
}

/* Answer with an error of our own, keeping the connection. */
static void request_send_error(struct http_request *req, int status, const char *message)
{
	_cleanup_buf_ struct buf body;
	const char *ctype = NULL;

	buf_init(&body, 0);
	if (error_body(req->conn->srv, message, &body, &ctype) < 0) {
		req->close = true;
		(void)request_send(req, 500, NULL, NULL, 0);
		return;
	}
	(void)request_send(req, status, ctype, body.data, body.len);
}

static void conn_load_chain(struct http_conn *c)
{
	SSL *ssl = c->ssl;
	STACK_OF(X509) * sent;
	X509 *leaf;

	c->chain_done = true;
	if (!ssl)
		return;
	leaf = SSL_get0_peer_certificate(ssl);
	if (!leaf)
		return;
	c->chain = sk_X509_new_null();
	if (!c->chain)
		return;
	if (X509_up_ref(leaf) != 1 || sk_X509_push(c->chain, leaf) <= 0) {
		X509_free(leaf);
		sk_X509_free(c->chain);
		c->chain = NULL;
		return;
	}
	/* On the server side this stack holds what came after the leaf. */
	sent = SSL_get_peer_cert_chain(ssl);
	for (int i = 0; sent && i < sk_X509_num(sent); i++) {
		X509 *x = sk_X509_value(sent, i);

		if (i == 0 && X509_cmp(x, leaf) == 0)
			continue;
		if (X509_up_ref(x) != 1)
			continue;
		if (sk_X509_push(c->chain, x) <= 0)
			X509_free(x);
	}
}

static void conn_dispatch(struct http_conn *c)
{
	struct http_request *req = c->req;
	const struct route *rt;
	_cleanup_buf_ struct buf allow;
	int r;

	buf_init(&allow, 1024);
	c->state = C_HANDLING;
	c->started = false;
	c->close_after = false;
	conn_disarm(c);

	/* Until the handler returns, an answer only queues bytes; the request
	 * is finished below. */
	req->in_handler = true;
	req->has_cred = c->has_cred;
	req->cred = c->cred;
	req->tls = c->tls;
	memcpy(req->remote, c->remote, sizeof(req->remote));
	if (c->tls && !c->chain_done)
		conn_load_chain(c);
	if (c->chain && !(req->chain = X509_chain_up_ref(c->chain))) {
		request_send_error(req, 500, "out of memory");
		conn_request_done(c, false);
		return;
	}

	rt = route_find(c->srv, req, &allow);
	if (!rt) {
		if (allow.len) {
			if (buf_printf(&req->resp_hdrs, "Allow: %s\r\n", allow.data) < 0)
				req->close = true;
			request_send_error(req, 405, "method not allowed");
		} else {
			request_send_error(req, 404, "not found");
		}
		conn_request_done(c, false);
		return;
	}
	if (route_capture(rt, req) < 0) {
		request_send_error(req, 500, "out of memory");
		conn_request_done(c, false);
		return;
	}

	r = rt->fn(req, rt->userdata);
	req->in_handler = false;
	if (req->responded) {
		conn_request_done(c, false);
		return;
	}
	if (req->deferred)
		return;
	log_debug("http: %s: %s %s: handler returned %d without answering", c->remote, req->method,
		  req->path, r);
	req->in_handler = true;
	request_send_error(req, 500, "internal error");
	conn_request_done(c, false);
}

int http_response_add_header(struct http_request *req, const char *name, const char *value)
{
	static const char *const reserved[] = {"content-length", "date", "connection",
					       "transfer-encoding"};

	if (!req || !name || !value)
		return -EINVAL;
	if (req->responded)
		return -EALREADY;
	if (!is_token(name, strlen(name)) || !is_field_value(value))
		return -EINVAL;
	for (size_t i = 0; i < ARRAY_SIZE(reserved); i++)
		if (strcasecmp(name, reserved[i]) == 0)
			return -EINVAL;
	return buf_printf(&req->resp_hdrs, "%s: %s\r\n", name, value);
}

int http_respond(struct http_request *req, int status, const char *content_type, const void *body,
		 size_t len)
{
	if (!req)
		return -EINVAL;
	if (req->responded)
		return -EALREADY;
	return request_send(req, status, content_type, body, len);
}

int http_respond_json(struct http_request *req, int status, const json_t *body)
{
	char *s;
	int r;

	if (!req)
		return -EINVAL;
	if (req->responded)
		return -EALREADY;
	s = body ? json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
	if (!s) {
		(void)request_send(req, 500, NULL, NULL, 0);
		return body ? -ENOMEM : -EINVAL;
	}
	r = request_send(req, status, "application/json; charset=utf-8", s, strlen(s));
	free(s);
	return r;
}

int http_respond_message(struct http_request *req, int status, const char *message)
{
	json_t *o;
	int r;

	if (!req || !message)
		return -EINVAL;
	o = json_pack("{s:s}", "message", message);
	r = http_respond_json(req, status, o);
	json_decref(o);
	return r;
}

int http_request_defer(struct http_request *req, http_abort_fn on_abort, void *userdata)
{
	if (!req || !req->in_handler || req->responded)
		return -EINVAL;
	req->deferred = true;
	req->on_abort = on_abort;
	req->abort_userdata = userdata;
	return 0;
}

/* --- connection callbacks ---------------------------------------------- */

static void conn_process(struct http_conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);

	while (c->state == C_READING) {
		if (conn_outlen(c) > OUTPUT_HIGH) {
			c->paused = true;
			bufferevent_disable(c->bev, EV_READ);
			return;
		}
		if (c->paused || !(bufferevent_get_enabled(c->bev) & EV_READ)) {
			c->paused = false;
			if (!c->eof)
				bufferevent_enable(c->bev, EV_READ);
		}
		if (!c->started) {
			if (evbuffer_get_length(in) == 0) {
				if (c->eof) { /* nothing more will come */
					c->state = C_CLOSING;
					conn_kick(c);
				}
				return;
			}
			c->started = true;
			conn_arm(c, c->srv->cfg.request_timeout_ms);
		}
		if (conn_parse(c) <= 0) {
			if (c->state == C_READING && c->eof) { /* a request cut short */
				c->state = C_CLOSING;
				conn_kick(c);
			}
			return;
		}
		conn_dispatch(c);
	}
}

/* The final response is written: close, politely. */
static void conn_finish(struct http_conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);

	if (c->eof) {
		conn_free(c);
		return;
	}
	if (c->ssl) {
		(void)SSL_shutdown(c->ssl); /* sends close_notify; no answer awaited */
		ERR_clear_error();
		conn_free(c);
		return;
	}
	if (shutdown(c->fd, SHUT_WR) < 0) {
		conn_free(c);
		return;
	}
	c->state = C_LINGER;
	evbuffer_drain(in, evbuffer_get_length(in));
	bufferevent_disable(c->bev, EV_WRITE);
	bufferevent_enable(c->bev, EV_READ);
	conn_arm(c,
		 c->srv->cfg.idle_timeout_ms < LINGER_MS ? c->srv->cfg.idle_timeout_ms : LINGER_MS);
}

/* The bufferevent callbacks only note what happened and let conn_run()
 * act from the loop: an OpenSSL bufferevent calls them synchronously from
 * inside evbuffer_add() and bufferevent_enable(), where acting (freeing the
 * connection) would pull the floor from under the caller. libevent's own
 * BEV_OPT_DEFER_CALLBACKS would do the same, but it keeps references that
 * are never released when the loop stops before they run. */
static void conn_read_cb(struct bufferevent *bev, void *arg)
{
	struct http_conn *c = arg;

	c->pending_io |= EV_READ;
	conn_kick(c);
}

static void conn_write_cb(struct bufferevent *bev, void *arg)
{
	struct http_conn *c = arg;

	c->pending_io |= EV_WRITE;
	conn_kick(c);
}

static void conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct http_conn *c = arg;

	c->pending_events |= what;
	conn_kick(c);
}

/* Returns true when c was freed. */
static bool conn_on_events(struct http_conn *c, short what)
{
	if (what & (BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)) {
		if (c->tls) {
			unsigned long e;
			while ((e = bufferevent_get_openssl_error(c->bev)) != 0)
				log_debug("http: %s: TLS: %s", c->remote,
					  ERR_reason_error_string(e));
			ERR_clear_error();
		}
		log_debug("http: %s: connection %s", c->remote,
			  what & BEV_EVENT_TIMEOUT ? "timed out writing" : "failed");
		conn_free(c);
		return true;
	}
	if (!(what & BEV_EVENT_EOF))
		return false; /* BEV_EVENT_CONNECTED: TLS handshake done */
	c->eof = true;
	switch (c->state) {
	case C_READING:
	case C_CLOSING:
		/* Answers already queued are still delivered; then close. */
		if (conn_outlen(c) == 0) {
			conn_free(c);
			return true;
		}
		if (c->state == C_READING) {
			request_free(c->req);
			c->req = NULL;
			c->state = C_CLOSING;
		}
		return false;
	case C_HANDLING:
		/* Clients do not half-close HTTP/1.1 connections: the client
		 * went away, and a deferred request is aborted. */
	case C_LINGER:
		conn_free(c);
		return true;
	}
	return false;
}

static void conn_on_read(struct http_conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	const struct http_server_config *cfg = &c->srv->cfg;

	switch (c->state) {
	case C_READING:
		conn_process(c);
		break;
	case C_HANDLING:
		/* Keep reading to notice a disconnect, but only so much. */
		if (evbuffer_get_length(in) > cfg->max_request_line + cfg->max_header_bytes)
			bufferevent_disable(c->bev, EV_READ);
		break;
	case C_CLOSING:
	case C_LINGER:
		evbuffer_drain(in, evbuffer_get_length(in));
		break;
	}
}

/* Everything that is due on c, in order: input, end of input or errors,
 * then whatever waits for the output to drain. */
static void conn_run(struct http_conn *c)
{
	short io = c->pending_io, what = c->pending_events;

	c->pending_io = 0;
	c->pending_events = 0;
	if (io & EV_READ)
		conn_on_read(c);
	if (what && conn_on_events(c, what))
		return;
	switch (c->state) {
	case C_READING:
		if (!c->paused || conn_outlen(c) == 0)
			conn_process(c);
		break;
	case C_CLOSING:
		/* libevent also reports "written" when there was nothing to
		 * write, so look at the output itself. */
		if (conn_outlen(c) == 0)
			conn_finish(c);
		break;
	case C_HANDLING:
	case C_LINGER:
		break;
	}
}

static void conn_kick_cb(evutil_socket_t fd, short what, void *arg)
{
	conn_run(arg);
}

static void conn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct http_conn *c = arg;

	switch (c->state) {
	case C_READING:
		if (c->started) {
			(void)conn_fail(c, 408, "request not received in time");
		} else if (conn_outlen(c) > 0) {
			conn_arm(c, c->srv->cfg.idle_timeout_ms); /* the write timeout watches it */
		} else {
			log_debug("http: %s: idle connection closed", c->remote);
			conn_free(c);
		}
		break;
	case C_LINGER:
		conn_free(c);
		break;
	case C_HANDLING:
	case C_CLOSING:
		break;
	}
}

static void conn_free(struct http_conn *c)
{
	struct http_server *srv = c->srv;
	struct http_request *orphan = NULL;

	if (c->req) {
		if (c->state == C_HANDLING && c->req->deferred && !c->req->responded) {
			orphan = c->req;
			orphan->conn = NULL;
		} else {
			request_free(c->req);
		}
		c->req = NULL;
	}
	if (c->prev)
		c->prev->next = c->next;
	else
		srv->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	srv->n_conns--;
	event_free(c->timer);
	event_free(c->kick);
	if (c->chain)
		sk_X509_pop_free(c->chain, X509_free);
	/* libevent finalizes a bufferevent from the loop; closing the socket
	 * here (not with BEV_OPT_CLOSE_ON_FREE) lets the client see the close
	 * now, even when the loop does not run again. */
	bufferevent_free(c->bev);
	SSL_free(c->ssl);
	close(c->fd);
	ERR_clear_error();
	free(c);
	if (orphan && orphan->on_abort)
		orphan->on_abort(orphan, orphan->abort_userdata);
}

static void format_remote(const struct sockaddr_storage *ss, char *out, size_t n)
{
	char addr[INET6_ADDRSTRLEN];

	switch (ss->ss_family) {
	case AF_INET: {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
		if (!inet_ntop(AF_INET, &sin->sin_addr, addr, sizeof(addr)))
			addr[0] = '\0';
		snprintf(out, n, "%s:%u", addr, ntohs(sin->sin_port));
		break;
	}
	case AF_INET6: {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
		if (!inet_ntop(AF_INET6, &sin6->sin6_addr, addr, sizeof(addr)))
			addr[0] = '\0';
		snprintf(out, n, "[%s]:%u", addr, ntohs(sin6->sin6_port));
		break;
	}
	case AF_UNIX:
		snprintf(out, n, "unix");
		break;
	default:
		snprintf(out, n, "unknown");
		break;
	}
}

static unsigned conns_of_uid(const struct http_server *srv, uid_t uid)
{
	unsigned n = 0;

	for (const struct http_conn *c = srv->conns; c; c = c->next)
		n += c->has_cred && c->cred.uid == uid;
	return n;
}

/* Start serving connected socket fd (taken in every case). */
static int server_add_connection(struct http_server *srv, int fd, const struct sockaddr_storage *ss,
				 SSL_CTX *tls)
{
	_cleanup_close_ int cfd = fd;
	struct timeval wt = ms_to_tv(srv->cfg.write_timeout_ms);
	struct http_conn *c;
	int one = 1;

	if (srv->n_conns >= srv->cfg.max_connections) {
		log_debug("http: connection limit (%u) reached, dropping a connection",
			  srv->cfg.max_connections);
		return -EBUSY;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->srv = srv;
	format_remote(ss, c->remote, sizeof(c->remote));
	if (ss->ss_family == AF_UNIX) {
		c->has_cred = peercred_get(cfd, &c->cred) == 0;
		if (c->has_cred && srv->cfg.max_connections_per_uid &&
		    conns_of_uid(srv, c->cred.uid) >= srv->cfg.max_connections_per_uid) {
			log_debug("http: max simultaneous connections reached for user %u",
				  (unsigned)c->cred.uid);
			free(c);
			return -EBUSY;
		}
	} else if (ss->ss_family == AF_INET || ss->ss_family == AF_INET6) {
		(void)setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	c->timer = evtimer_new(srv->base, conn_timer_cb, c);
	c->kick = event_new(srv->base, -1, 0, conn_kick_cb, c);
	if (!c->timer || !c->kick)
		goto fail;
	if (tls) {
		SSL *ssl = SSL_new(tls);
		long min;

		if (!ssl)
			goto fail;
		min = SSL_get_min_proto_version(ssl);
		if ((min == 0 || min < TLS1_2_VERSION) &&
		    SSL_set_min_proto_version(ssl, TLS1_2_VERSION) != 1) {
			SSL_free(ssl);
			goto fail;
		}
		SSL_set_options(ssl, SSL_OP_NO_RENEGOTIATION);
		c->bev = bufferevent_openssl_socket_new(srv->base, cfd, ssl,
							BUFFEREVENT_SSL_ACCEPTING, 0);
		if (!c->bev) {
			SSL_free(ssl);
			goto fail;
		}
		bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
		c->ssl = ssl;
		c->tls = true;
	} else {
		c->bev = bufferevent_socket_new(srv->base, cfd, 0);
		if (!c->bev)
			goto fail;
	}
	c->fd = TAKE_FD(cfd);
	bufferevent_setcb(c->bev, conn_read_cb, conn_write_cb, conn_event_cb, c);
	bufferevent_set_timeouts(c->bev, NULL, &wt);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	c->next = srv->conns;
	if (srv->conns)
		srv->conns->prev = c;
	srv->conns = c;
	srv->n_conns++;
	conn_arm(c, srv->cfg.idle_timeout_ms);
	log_debug("http: %s: connected", c->remote);
	return 0;
fail:
	if (c->timer)
		event_free(c->timer);
	if (c->kick)
		event_free(c->kick);
	free(c);
	return -ENOMEM;
}

/* --- listeners --------------------------------------------------------- */

static void listener_free(struct listener *l)
{
	struct stat st;

	if (l->ev)
		event_free(l->ev);
	if (l->pause)
		event_free(l->pause);
	if (l->fd >= 0)
		close(l->fd);
	if (l->unix_path && stat(l->unix_path, &st) == 0 && st.st_dev == l->dev &&
	    st.st_ino == l->ino)
		(void)unlink(l->unix_path);
	free(l->unix_path);
	SSL_CTX_free(l->tls);
	free(l);
}

static void listener_resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct listener *l = arg;

	event_add(l->ev, NULL);
}

static void listener_accept_cb(evutil_socket_t lfd, short what, void *arg)
{
	struct listener *l = arg;

	for (int i = 0; i < ACCEPT_BATCH; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int fd;

		memset(&ss, 0, sizeof(ss));
		fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0) {
			struct timeval tv = ms_to_tv(ACCEPT_PAUSE_MS);

			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			/* Out of descriptors or memory: the level-triggered
			 * event would spin, so wait a little. */
			log_debug("http: accept: %m");
			event_del(l->ev);
			evtimer_add(l->pause, &tv);
			return;
		}
		(void)server_add_connection(l->srv, fd, &ss, l->tls);
	}
}

/* Serve listening socket fd (taken in every case). */
static int listener_add(struct http_server *srv, int fd, SSL_CTX *tls, const char *unix_path)
{
	struct listener *l = calloc(1, sizeof(*l));
	struct stat st;

	if (!l) {
		close(fd);
		return -ENOMEM;
	}
	l->srv = srv;
	l->fd = fd;
	if (tls) {
		if (SSL_CTX_up_ref(tls) != 1) {
			listener_free(l);
			return -ENOMEM;
		}
		l->tls = tls;
	}
	if (unix_path) {
		l->unix_path = strdup(unix_path);
		if (!l->unix_path) {
			listener_free(l);
			return -ENOMEM;
		}
		if (stat(unix_path, &st) == 0) {
			l->dev = st.st_dev;
			l->ino = st.st_ino;
		}
	}
	l->ev = event_new(srv->base, fd, EV_READ | EV_PERSIST, listener_accept_cb, l);
	l->pause = evtimer_new(srv->base, listener_resume_cb, l);
	if (!l->ev || !l->pause || event_add(l->ev, NULL) != 0) {
		listener_free(l);
		return -ENOMEM;
	}
	l->next = srv->listeners;
	srv->listeners = l;
	return 0;
}

/* Remove a socket file that nobody accepts on any more. */
static int unix_remove_stale(const char *path, const struct sockaddr_un *sa, socklen_t salen)
{
	_cleanup_close_ int fd = -1;
	struct stat st;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode))
		return -EEXIST;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (const struct sockaddr *)sa, salen) == 0 || errno == EAGAIN)
		return -EADDRINUSE;
	if (errno != ECONNREFUSED)
		return -errno;
	if (unlink(path) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

int http_server_listen_unix(struct http_server *srv, const char *path, mode_t mode)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	_cleanup_close_ int fd = -1;
	socklen_t salen;
	size_t n;
	int r;

	if (!srv || !path || !*path)
		return -EINVAL;
	n = strlen(path);
	if (n >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, n + 1);
	salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	r = unix_remove_stale(path, &sa, salen);
	if (r < 0)
		return r;
	/* The file is created with the socket's mode minus the umask; never
	 * more open than asked, and exact after the chmod below. */
	if (fchmod(fd, mode) < 0)
		return -errno;
	if (bind(fd, (const struct sockaddr *)&sa, salen) < 0)
		return -errno;
	if (chmod(path, mode) < 0 || listen(fd, SOMAXCONN) < 0) {
		r = -errno;
		(void)unlink(path);
		return r;
	}
	r = listener_add(srv, TAKE_FD(fd), NULL, path);
	if (r < 0)
		(void)unlink(path);
	return r;
}

int http_server_listen_tcp(struct http_server *srv, const char *host, uint16_t port,
			   SSL_CTX *tls_ctx, uint16_t *ret_port)
{
	struct addrinfo hints = {
	    .ai_family = AF_UNSPEC,
	    .ai_socktype = SOCK_STREAM,
	    .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE,
	};
	struct addrinfo *ai = NULL;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	_cleanup_close_ int fd = -1;
	char portstr[8];
	int one = 1, r;

	if (!srv || !host)
		return -EINVAL;
	snprintf(portstr, sizeof(portstr), "%u", (unsigned)port);
	if (getaddrinfo(host, portstr, &hints, &ai) != 0 || !ai)
		return -EINVAL;
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		r = -errno;
		freeaddrinfo(ai);
		return r;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    (srv->cfg.reuseport &&
	     setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) ||
	    (ai->ai_family == AF_INET6 &&
	     setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0) ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, SOMAXCONN) < 0 ||
	    getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) {
		r = -errno;
		freeaddrinfo(ai);
		return r;
	}
	freeaddrinfo(ai);
	if (ret_port)
		*ret_port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
							   : ((struct sockaddr_in *)&ss)->sin_port);
	return listener_add(srv, TAKE_FD(fd), tls_ctx, NULL);
}

/* Make a received socket fit for the loop: non-blocking, close-on-exec,
 * a stream socket. */
static int fd_prepare(int fd, bool listening)
{
	int v = 0, fl;
	socklen_t len = sizeof(v);

	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &len) < 0)
		return -errno;
	if (v != SOCK_STREAM)
		return -EINVAL;
	len = sizeof(v);
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &len) < 0)
		return -errno;
	if (!v != !listening)
		return -EINVAL;
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
		return -errno;
	return 0;
}

int http_server_adopt_fd(struct http_server *srv, int fd, SSL_CTX *tls_ctx)
{
	_cleanup_close_ int lfd = fd;
	int r;

	if (!srv || fd < 0)
		return -EINVAL;
	r = fd_prepare(lfd, true);
	if (r < 0)
		return r;
	return listener_add(srv, TAKE_FD(lfd), tls_ctx, NULL);
}

int http_server_adopt_connection(struct http_server *srv, int fd, SSL_CTX *tls_ctx)
{
	_cleanup_close_ int cfd = fd;
	struct sockaddr_storage ss, local;
	socklen_t sl = sizeof(ss), ll = sizeof(local);
	int r;

	if (!srv || fd < 0)
		return -EINVAL;
	r = fd_prepare(cfd, false);
	if (r < 0)
		return r;
	memset(&ss, 0, sizeof(ss));
	memset(&local, 0, sizeof(local));
	if (getsockname(cfd, (struct sockaddr *)&local, &ll) < 0)
		return -errno;
	/* An unnamed peer (socketpair) has no address; the family is ours. */
	if (getpeername(cfd, (struct sockaddr *)&ss, &sl) < 0 || ss.ss_family == AF_UNSPEC)
		ss.ss_family = local.ss_family;
	return server_add_connection(srv, TAKE_FD(cfd), &ss, tls_ctx);
}

/* --- TLS contexts ------------------------------------------------------ */

/* Any chain passes the handshake: the application verifies it against
 * what it knows (enrollment groups, CA certificates), not OpenSSL. */
static int accept_any_chain(int preverify_ok, X509_STORE_CTX *ctx)
{
	return 1;
}

int http_server_tls_ctx_set_client_auth(SSL_CTX *ctx, enum http_tls_client_auth auth)
{
	if (!ctx)
		return -EINVAL;
	switch (auth) {
	case HTTP_TLS_CLIENT_CERT_NONE:
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
		return 0;
	case HTTP_TLS_CLIENT_CERT_OPTIONAL:
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, accept_any_chain);
		break;
	case HTTP_TLS_CLIENT_CERT_REQUIRED:
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
				   accept_any_chain);
		break;
	default:
		return -EINVAL;
	}
	/* A resumed session carries no chain; the handler needs one. */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	if (SSL_CTX_set_num_tickets(ctx, 0) != 1)
		return -EIO;
	return 0;
}

int http_server_tls_ctx_new(X509 *cert, STACK_OF(X509) * chain, EVP_PKEY *key,
			    enum http_tls_client_auth auth, SSL_CTX **ret_ctx)
{
	SSL_CTX *ctx;
	int r;

	if (!cert || !key || !ret_ctx)
		return -EINVAL;
	ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx)
		return -ENOMEM;
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
		r = -EIO;
		goto fail;
	}
	if (SSL_CTX_use_certificate(ctx, cert) != 1 || SSL_CTX_use_PrivateKey(ctx, key) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		log_debug("http: TLS server key or certificate rejected: %s",
			  ERR_reason_error_string(ERR_peek_last_error()));
		r = -EINVAL;
		goto fail;
	}
	for (int i = 0; chain && i < sk_X509_num(chain); i++) {
		if (SSL_CTX_add1_chain_cert(ctx, sk_X509_value(chain, i)) != 1) {
			r = -ENOMEM;
			goto fail;
		}
	}
	r = http_server_tls_ctx_set_client_auth(ctx, auth);
	if (r < 0)
		goto fail;
	*ret_ctx = ctx;
	return 0;
fail:
	ERR_clear_error();
	SSL_CTX_free(ctx);
	return r;
}

/* --- the server -------------------------------------------------------- */

struct http_server *http_server_new(struct event_base *base, const struct http_server_config *cfg)
{
	struct http_server *srv;
	struct sigaction sa;

	if (!base) {
		errno = EINVAL;
		return NULL;
	}
	srv = calloc(1, sizeof(*srv));
	if (!srv) {
		errno = ENOMEM;
		return NULL;
	}
	srv->base = base;
	if (cfg)
		srv->cfg = *cfg;
	if (!srv->cfg.max_request_line)
		srv->cfg.max_request_line = HTTP_SERVER_DEFAULT_MAX_REQUEST_LINE;
	if (!srv->cfg.max_header_bytes)
		srv->cfg.max_header_bytes = HTTP_SERVER_DEFAULT_MAX_HEADER_BYTES;
	if (!srv->cfg.max_headers)
		srv->cfg.max_headers = HTTP_SERVER_DEFAULT_MAX_HEADERS;
	if (!srv->cfg.max_body)
		srv->cfg.max_body = HTTP_SERVER_DEFAULT_MAX_BODY;
	if (!srv->cfg.idle_timeout_ms)
		srv->cfg.idle_timeout_ms = HTTP_SERVER_DEFAULT_IDLE_TIMEOUT_MS;
	if (!srv->cfg.request_timeout_ms)
		srv->cfg.request_timeout_ms = HTTP_SERVER_DEFAULT_REQUEST_TIMEOUT_MS;
	if (!srv->cfg.write_timeout_ms)
		srv->cfg.write_timeout_ms = HTTP_SERVER_DEFAULT_WRITE_TIMEOUT_MS;
	if (!srv->cfg.max_connections)
		srv->cfg.max_connections = HTTP_SERVER_DEFAULT_MAX_CONNECTIONS;

	if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL &&
	    !(sa.sa_flags & SA_SIGINFO)) {
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = SIG_IGN;
		(void)sigaction(SIGPIPE, &sa, NULL);
	}
	return srv;
}

void http_server_free(struct http_server *srv)
{
	if (!srv)
		return;
	while (srv->listeners) {
		struct listener *l = srv->listeners;
		srv->listeners = l->next;
		listener_free(l);
	}
	while (srv->conns)
		conn_free(srv->conns);
	for (size_t i = 0; i < srv->n_routes; i++)
		route_clear(&srv->routes[i]);
	free(srv->routes);
	free(srv);
}

static int route_parse(struct route *rt, const char *pattern)
{
	const char *s;

	if (!pattern || pattern[0] != '/')
		return -EINVAL;
	s = pattern + 1;
	for (;;) {
		const char *end = strchrnul(s, '/');
		size_t n = (size_t)(end - s);
		char **segs;

		if (*end == '\0' && n == 1 && s[0] == '*') {
			rt->prefix = true;
			return 0;
		}
		if (memchr(s, '*', n))
			return -EINVAL;
		if (n && s[0] == '{') {
			if (n < 3 || s[n - 1] != '}' || memchr(s + 1, '{', n - 1) ||
			    memchr(s + 1, '}', n - 2))
				return -EINVAL;
		} else if (memchr(s, '{', n) || memchr(s, '}', n)) {
			return -EINVAL;
		}
		segs = reallocarray(rt->segs, rt->n_segs + 1, sizeof(*segs));
		if (!segs)
			return -ENOMEM;
		rt->segs = segs;
		rt->segs[rt->n_segs] = strndup(s, n);
		if (!rt->segs[rt->n_segs])
			return -ENOMEM;
		rt->n_segs++;
		if (*end == '\0')
			return 0;
		s = end + 1;
	}
}

int http_server_route(struct http_server *srv, const char *method, const char *pattern,
		      http_handler_fn fn, void *userdata)
{
	struct route rt = {.fn = fn, .userdata = userdata};
	struct route *routes;
	int r;

	if (!srv || !fn || (method && !is_token(method, strlen(method))))
		return -EINVAL;
	r = route_parse(&rt, pattern);
	if (r == 0 && method && !(rt.method = strdup(method)))
		r = -ENOMEM;
	if (r == 0) {
		routes = reallocarray(srv->routes, srv->n_routes + 1, sizeof(*routes));
		if (!routes)
			r = -ENOMEM;
		else
			srv->routes = routes;
	}
	if (r < 0) {
		route_clear(&rt);
		return r;
	}
	srv->routes[srv->n_routes++] = rt;
	return 0;
}
