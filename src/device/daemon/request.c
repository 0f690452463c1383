/* SPDX-License-Identifier: MIT */
/*
 * One request through aziot's common server rules (http-common's
 * make_service!): api-version first, then the route (path and version),
 * then the method, then the body; errors as {"message": "..."}.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/encode.h"
#include "common/http_server.h"
#include "common/json.h"
#include "common/log.h"
#include "device/daemon/daemon_private.h"

#define MAX_PARAMS 8
#define MAX_SEGMENTS 16

struct daemon_request {
	struct daemon *d;
	struct http_request *http;
	const struct peercred *cred;
	const char *api_version;
	json_t *body;
	const char *names[MAX_PARAMS];
	size_t name_lens[MAX_PARAMS];
	char *values[MAX_PARAMS];
	size_t n_params;
	bool answered;
	/* A poll (a quiet route, the liveness probe): logged at debug. */
	enum log_level level;
};

const char *daemon_request_param(const struct daemon_request *req, const char *name)
{
	for (size_t i = 0; i < req->n_params; i++)
		if (strlen(name) == req->name_lens[i] &&
		    strneq(req->names[i], name, req->name_lens[i]))
			return req->values[i];
	return NULL;
}

json_t *daemon_request_body(const struct daemon_request *req)
{
	return req->body;
}

json_t *daemon_request_object(struct daemon_request *req)
{
	if (!req->body) {
		daemon_respond_error(req, 400, "missing request body");
		return NULL;
	}
	if (!json_is_object(req->body)) {
		daemon_respond_error(req, 422, "expected a JSON object, got %s",
				     json_type_phrase(req->body));
		return NULL;
	}
	return req->body;
}

int daemon_request_string(struct daemon_request *req, const json_t *obj, const char *path,
			  bool required, const char **ret)
{
	struct err e = {0};
	int r = required ? json_get_string(obj, path, ret, &e)
			 : json_get_string_opt(obj, path, ret, &e);

	if (r < 0) {
		daemon_respond_error(req, 422, "%s", err_msg(&e, r));
		return 1;
	}
	return 0;
}

const char *daemon_request_api_version(const struct daemon_request *req)
{
	return req->api_version;
}

const char *daemon_request_query(const struct daemon_request *req, const char *name)
{
	return http_request_query_param(req->http, name);
}

const struct peercred *daemon_request_cred(const struct daemon_request *req)
{
	return req->cred;
}

struct http_request *daemon_request_http(const struct daemon_request *req)
{
	return req->http;
}

static void log_response(const struct daemon_request *req, int status)
{
	if (req->level <= log_get_level())
		log_msg(req->level, "--> %d %s", status, http_status_text(status));
}

int daemon_respond_json(struct daemon_request *req, int status, const json_t *body)
{
	req->answered = true;
	log_response(req, status);
	return http_respond_json(req->http, status, body);
}

int daemon_respond_no_content(struct daemon_request *req)
{
	req->answered = true;
	log_response(req, 204);
	return http_respond(req->http, 204, NULL, NULL, 0);
}

int daemon_respond_error(struct daemon_request *req, int status, const char *fmt, ...)
{
	char msg[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	req->answered = true;
	log_response(req, status);
	/* aziot logs the error chain line by line with "!!! ". */
	for (const char *p = msg; *p;) {
		const char *nl = strchr(p, '\n');
		int len = nl ? (int)(nl - p) : (int)strlen(p);

		if (req->level <= log_get_level())
			log_msg(req->level, "!!! %.*s", len, p);
		p += len + (nl != NULL);
	}
	return http_respond_message(req->http, status, msg);
}

/* Rust's {:?} of a string, which aziot uses in `invalid api-version "x"`. */
static int debug_quote(struct buf *out, const char *s)
{
	int r = buf_putc(out, '"');

	for (; r == 0 && *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			r = buf_printf(out, "\\%c", c);
		else if (c == '\n')
			r = buf_append_str(out, "\\n");
		else if (c == '\r')
			r = buf_append_str(out, "\\r");
		else if (c == '\t')
			r = buf_append_str(out, "\\t");
		else if (c < 0x20 || c == 0x7f)
			r = buf_printf(out, "\\u{%x}", c);
		else
			r = buf_putc(out, (char)c);
	}
	return r ? r : buf_putc(out, '"');
}

static bool utf8_valid(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	while (*p) {
		size_t n;
		unsigned cp;

		if (*p < 0x80) {
			p++;
			continue;
		} else if (*p >= 0xc2 && *p <= 0xdf) {
			n = 1;
			cp = *p & 0x1f;
		} else if (*p >= 0xe0 && *p <= 0xef) {
			n = 2;
			cp = *p & 0x0f;
		} else if (*p >= 0xf0 && *p <= 0xf4) {
			n = 3;
			cp = *p & 0x07;
		} else {
			return false;
		}
		for (size_t i = 1; i <= n; i++) {
			if ((p[i] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (p[i] & 0x3f);
		}
		if ((n == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
		    (n == 3 && (cp < 0x10000 || cp > 0x10ffff)))
			return false;
		p += n + 1;
	}
	return true;
}

static void params_clear(struct daemon_request *req)
{
	for (size_t i = 0; i < req->n_params; i++)
		free(req->values[i]);
	req->n_params = 0;
}

/* Does path match pattern? On a match the "{name}" segments are decoded
 * into req. Returns 1 (match), 0 (no match), -ENOMEM. */
static int route_match(const char *pattern, const char *path, struct daemon_request *req)
{
	const char *p = pattern, *s = path;

	params_clear(req);
	if (*p != '/' || *s != '/')
		return 0;
	while (*p == '/' && *s == '/') {
		const char *pe, *se;

		p++;
		s++;
		pe = p + strcspn(p, "/");
		se = s + strcspn(s, "/");
		if (*p == '{' && pe > p + 1 && pe[-1] == '}') {
			_cleanup_buf_ struct buf v = {0};

			if (se == s || req->n_params == MAX_PARAMS)
				return 0;
			buf_init(&v, 4096);
			if (url_decode(&v, s, (size_t)(se - s), false) < 0)
				return 0;
			if (memchr(v.data, '\0', v.len) || !utf8_valid(buf_str(&v)))
				return 0;
			req->names[req->n_params] = p + 1;
			req->name_lens[req->n_params] = (size_t)(pe - p - 2);
			req->values[req->n_params] = buf_steal(&v, NULL);
			if (!req->values[req->n_params])
				return -ENOMEM;
			req->n_params++;
		} else if (pe - p != se - s || !strneq(p, s, (size_t)(pe - p))) {
			return 0;
		}
		p = pe;
		s = se;
	}
	return *p == '\0' && *s == '\0';
}

static int version_index(const struct daemon_spec *spec, const char *v)
{
	for (int i = 0; spec->api_versions[i]; i++)
		if (streq(spec->api_versions[i], v))
			return i;
	return -1;
}

static bool route_accepts(const struct daemon_spec *spec, const struct daemon_route *rt,
			  int version)
{
	if (rt->min_api_version && version < version_index(spec, rt->min_api_version))
		return false;
	if (rt->max_api_version && version > version_index(spec, rt->max_api_version))
		return false;
	return true;
}

/* Is the Content-Type absent or application/json (parameters ignored)? */
static bool content_type_is_json(struct http_request *hreq)
{
	const char *ct = http_request_header(hreq, "Content-Type");
	size_t len;

	if (!ct)
		return true;
	len = strcspn(ct, ";");
	while (len > 0 && (ct[len - 1] == ' ' || ct[len - 1] == '\t'))
		len--;
	while (len > 0 && (*ct == ' ' || *ct == '\t'))
		ct++, len--;
	return len == strlen("application/json") && strneq(ct, "application/json", len);
}

/* Parse the body for POST/DELETE (optional) and PUT (required). Returns 0,
 * or 1 when an error was answered. */
static int read_body(struct daemon_request *req, bool put)
{
	size_t len;
	const char *body = http_request_body(req->http, &len);
	struct err e = {0};

	if (put && !content_type_is_json(req->http)) {
		daemon_respond_error(req, 415, "request body must be application/json");
		return 1;
	}
	if (!put && (len == 0 || !content_type_is_json(req->http)))
		return 0;
	if (json_parse(body, len, 0, &req->body, &e) < 0) {
		daemon_respond_error(req, 422, "%s", err_msg(&e, -EBADMSG));
		return 1;
	}
	return 0;
}

static int dispatch(struct daemon *d, struct daemon_request *req)
{
	const struct daemon_spec *spec = d->spec;
	const char *method = http_request_method(req->http);
	const char *path = http_request_path(req->http);
	const struct daemon_route *rt = NULL;
	daemon_handler_fn fn = NULL;
	int version, r;

	req->api_version = http_request_query_param(req->http, "api-version");
	if (!req->api_version)
		return daemon_respond_error(req, 400, "api-version not specified");
	version = version_index(spec, req->api_version);
	if (version < 0) {
		_cleanup_buf_ struct buf q = {0};

		buf_init(&q, 4096);
		if (debug_quote(&q, req->api_version) < 0)
			return -ENOMEM;
		return daemon_respond_error(req, 400, "invalid api-version %s", buf_str(&q));
	}
	req->api_version = spec->api_versions[version];

	for (size_t i = 0; i < spec->n_routes && !rt; i++) {
		if (!route_accepts(spec, &spec->routes[i], version))
			continue;
		r = route_match(spec->routes[i].pattern, path, req);
		if (r < 0)
			return r;
		if (r > 0)
			rt = &spec->routes[i];
	}
	if (!rt)
		return daemon_respond_error(req, 404, "not found");

	if (streq(method, "GET")) {
		fn = rt->get;
	} else if (streq(method, "POST") || streq(method, "DELETE")) {
		fn = streq(method, "POST") ? rt->post : rt->del;
		if (fn && read_body(req, false))
			return 0;
	} else if (streq(method, "PUT")) {
		fn = rt->put;
		if (fn && read_body(req, true))
			return 0;
	}
	if (!fn)
		return daemon_respond_error(req, 400, "method not allowed");
	return fn(req, d->state);
}

/* Is hreq a poll, logged at debug: a GET of a quiet route, or the
 * liveness probe "GET /" without api-version? */
static bool is_poll(const struct daemon_spec *spec, struct http_request *hreq)
{
	const char *path = http_request_path(hreq);
	struct daemon_request tmp = {0};
	bool quiet = false;

	if (!streq(http_request_method(hreq), "GET"))
		return false;
	if (!http_request_query_param(hreq, "api-version"))
		return streq(path, "/");
	for (size_t i = 0; i < spec->n_routes && !quiet; i++)
		quiet =
		    spec->routes[i].quiet && route_match(spec->routes[i].pattern, path, &tmp) > 0;
	params_clear(&tmp);
	return quiet;
}

int daemon_dispatch(struct http_request *hreq, void *userdata)
{
	struct daemon *d = userdata;
	struct daemon_request req = {.d = d, .http = hreq, .level = LOG_LEVEL_INFO};
	int r;

	req.cred = http_request_peercred(hreq);
	if (!req.cred) {
		log_err("request on a socket without peer credentials; refusing it");
		return daemon_respond_error(&req, 500, "internal error");
	}
	if (is_poll(d->spec, hreq))
		req.level = LOG_LEVEL_DEBUG;
	if (req.level <= log_get_level())
		log_msg(req.level, "<-- %s %s (uid %u, pid %d)", http_request_method(hreq),
			http_request_path(hreq), (unsigned)req.cred->uid, (int)req.cred->pid);
	r = dispatch(d, &req);
	if (r < 0 && !req.answered) {
		log_err("%s %s: %s", http_request_method(hreq), http_request_path(hreq),
			strerror(-r));
		r = daemon_respond_error(&req, 500, "internal error");
	}
	params_clear(&req);
	json_decref(req.body);
	return req.answered ? 0 : r;
}
