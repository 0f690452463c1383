/* SPDX-License-Identifier: MIT */
/*
 * The hub's HTTP handlers. One route takes every request: IoT Hub paths
 * are case-insensitive in practice (Node asks for ".../messages/devicebound",
 * the docs write "deviceBound"), so the path is split and matched here,
 * word by word, ignoring case; ids are percent-decoded and exact.
 *
 * Every request is authenticated before its body is looked at. Answers are
 * JSON with Content-Type "application/json; charset=utf-8"; errors have
 * IoT Hub's shape (hub-protocol.md §4.4) and an iothub-errorcode header.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/rand.h>

#include "cloud/commit_batch.h"
#include "cloud/hub/hub.h"
#include "cloud/store/store.h"
#include "common/buf.h"
#include "common/encode.h"
#include "common/http_server.h"
#include "common/json.h"
#include "common/log.h"
#include "common/macro.h"

#define JSON_TYPE "application/json; charset=utf-8"
#define BATCH_TYPE "application/vnd.microsoft.iothub.json"
#define MAX_SEGMENTS 8
/* A batch of messages can be no larger than one message (§9). */
#define BATCH_MAX_MESSAGES 500

struct hub_worker {
	struct cloud_worker *w;
	const struct hub_settings *hs;
	X509_STORE *ca_store;
	struct cloud_batch *batch;
};

/* --- answers ------------------------------------------------------------- */

/* Every answer goes through the batch (cloud/commit_batch.h): while the
 * loop iteration's writes are not committed, answers wait for the commit,
 * reads included, since they may have seen those writes. Returns 0. */
static int reply(struct hub_worker *hw, struct http_request *req, int status,
		 const char *content_type, const void *body, size_t len)
{
	cloud_batch_respond(hw->batch, req, status, content_type, body, len, NULL, NULL);
	return 0;
}

static int respond_json(struct hub_worker *hw, struct http_request *req, int status,
			const json_t *body)
{
	_cleanup_free_ char *text = json_dump_compact(body);

	if (!text)
		return reply(hw, req, 500, NULL, NULL, 0);
	return reply(hw, req, status, JSON_TYPE, text, strlen(text));
}

static int respond_error(struct hub_worker *hw, struct http_request *req,
			 const struct hub_error *he)
{
	_cleanup_json_ json_t *body = NULL;
	_cleanup_free_ char *message = NULL, *exception = NULL;
	unsigned char id[16];
	_cleanup_buf_ struct buf hex = {0};
	char stamp[32];
	time_t now = time(NULL);
	struct tm tm;

	buf_init(&hex, 64);
	if (RAND_bytes(id, sizeof(id)) != 1 || hex_encode(&hex, id, sizeof(id)) < 0)
		memset(id, 0, sizeof(id));
	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%m/%d/%Y %H:%M:%S", &tm);
	if (asprintf(&message, "ErrorCode:%s;%s", he->code, he->message) < 0 ||
	    asprintf(&exception, "Tracking ID:%s-G:%u-TimeStamp:%s", buf_str(&hex), hw->w->index,
		     stamp) < 0)
		return reply(hw, req, 500, NULL, NULL, 0);
	body = json_pack("{s:s,s:s}", "Message", message, "ExceptionMessage", exception);
	if (!body)
		return reply(hw, req, 500, NULL, NULL, 0);
	(void)http_response_add_header(req, "iothub-errorcode", he->code);
	if (he->status >= 500)
		log_warn("%s %s: %d %s: %s", http_request_method(req), http_request_path(req),
			 he->status, he->code, he->message);
	else
		log_debug("%s %s: %d %s: %s", http_request_method(req), http_request_path(req),
			  he->status, he->code, he->message);
	return respond_json(hw, req, he->status, body);
}

/* Answer a registry function's result: r < 0 with he filled, or -ENOMEM. */
static int respond_result(struct hub_worker *hw, struct http_request *req, int r, int status,
			  const json_t *body, const struct hub_error *he)
{
	if (r == -ENOMEM || (r < 0 && !he->code)) {
		struct hub_error oom = {.status = 500, .code = "ServerError"};

		snprintf(oom.message, sizeof(oom.message), "%s", strerror(-r));
		return respond_error(hw, req, &oom);
	}
	if (r < 0)
		return respond_error(hw, req, he);
	if (!body)
		return reply(hw, req, status, NULL, NULL, 0);
	return respond_json(hw, req, status, body);
}

static int fail(struct hub_worker *hw, struct http_request *req, int status, const char *code,
		const char *fmt, ...) _printf_(5, 6);
static int fail(struct hub_worker *hw, struct http_request *req, int status, const char *code,
		const char *fmt, ...)
{
	struct hub_error he = {.status = status, .code = code};
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(he.message, sizeof(he.message), fmt, ap);
	va_end(ap);
	return respond_error(hw, req, &he);
}

/* Open the loop iteration's batch before a write (what: "device registry",
 * "messages"); false when the request has been answered. */
static bool begin_write(struct hub_worker *hw, struct http_request *req, const char *what)
{
	struct err e = {0};
	int r = cloud_batch_begin(hw->batch, &e);

	if (r == 0)
		return true;
	if (r == -EBUSY)
		fail(hw, req, 503, "ServiceUnavailable", "the %s is busy; retry", what);
	else
		fail(hw, req, 500, "ServerError", "cannot access the %s: %s", what, err_msg(&e, r));
	return false;
}

/* The request body as JSON, or an answered 400 (return -EINVAL). */
static int body_json(struct hub_worker *hw, struct http_request *req, json_t **ret)
{
	size_t len;
	const char *body = http_request_body(req, &len);
	struct err e = {0};
	int r;

	*ret = NULL;
	if (len == 0) {
		fail(hw, req, 400, "ArgumentInvalid", "the request body is empty: expected JSON");
		return -EINVAL;
	}
	r = json_parse(body, len, 0, ret, &e);
	if (r == -ENOMEM) {
		fail(hw, req, 500, "ServerError", "out of memory");
		return r;
	}
	if (r < 0) {
		fail(hw, req, 400, "ArgumentInvalid", "the request body is not valid JSON: %s",
		     err_msg(&e, r));
		return -EINVAL;
	}
	return 0;
}

/* --- service endpoints ------------------------------------------------------ */

static bool auth_service(struct hub_worker *hw, struct http_request *req, unsigned need)
{
	struct hub_error he = {0};

	if (hub_auth_service(hw->hs, http_request_header(req, "Authorization"), need, 0, &he) == 0)
		return true;
	respond_error(hw, req, &he);
	return false;
}

static int top_param(struct http_request *req, size_t *ret)
{
	const char *s = http_request_query_param(req, "top");
	unsigned long v = 0;
	char *end;

	*ret = HUB_LIST_MAX;
	if (!s)
		return 0;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || end == s || *end || s[0] == '-' || v == 0 || v > HUB_LIST_MAX)
		return -EINVAL;
	*ret = v;
	return 0;
}

static int devices(struct hub_worker *hw, struct http_request *req, const char *method,
		   const char *id)
{
	const char *hub = hw->hs->host_name;
	struct store *st = hw->w->store;
	_cleanup_json_ json_t *out = NULL, *body = NULL;
	struct hub_error he = {0};
	int r;

	if (!id) {
		size_t top;

		if (!streq(method, "GET"))
			return fail(hw, req, 405, "MethodNotAllowed", "use GET on /devices");
		if (!auth_service(hw, req, HUB_RIGHT_REGISTRY_READ))
			return 0;
		if (top_param(req, &top) < 0)
			return fail(hw, req, 400, "ArgumentInvalid",
				    "top: expected a number from 1 to %d", HUB_LIST_MAX);
		r = hub_device_list(st, hub, top, &out, &he);
		return respond_result(hw, req, r, 200, out, &he);
	}
	if (streq(method, "GET")) {
		_cleanup_free_ char *etag = NULL;

		if (!auth_service(hw, req, HUB_RIGHT_REGISTRY_READ))
			return 0;
		r = hub_device_get(st, hub, id, &body, &etag, &he);
		if (r == 0) {
			out = hub_identity_view(body, etag);
			r = out ? 0 : -ENOMEM;
		}
		return respond_result(hw, req, r, 200, out, &he);
	}
	if (streq(method, "PUT")) {
		if (!auth_service(hw, req, HUB_RIGHT_REGISTRY_WRITE))
			return 0;
		if (body_json(hw, req, &body) < 0 || !begin_write(hw, req, "device registry"))
			return 0;
		r = hub_device_put(st, hub, id, body, http_request_header(req, "If-Match"), &out,
				   &he);
		return respond_result(hw, req, r, 200, out, &he);
	}
	if (streq(method, "DELETE")) {
		if (!auth_service(hw, req, HUB_RIGHT_REGISTRY_WRITE) ||
		    !begin_write(hw, req, "device registry"))
			return 0;
		r = hub_device_delete(st, hub, id, http_request_header(req, "If-Match"), &he);
		return respond_result(hw, req, r, 204, NULL, &he);
	}
	return fail(hw, req, 405, "MethodNotAllowed", "use GET, PUT or DELETE on a device");
}

/* Read an identity for authentication: 0 (found or not: *ret NULL), or an
 * answered store failure (-EIO). */
static int identity_read(struct hub_worker *hw, struct http_request *req,
			 enum store_collection coll, const struct store_key *key, json_t **ret)
{
	struct err e = {0};
	int r = store_get(hw->w->store, coll, key, ret, NULL, &e);

	if (r == 0 || r == -ENOENT || r == -EINVAL || r == -ENAMETOOLONG)
		return 0;
	fail(hw, req, r == -EBUSY ? 503 : 500, r == -EBUSY ? "ServiceUnavailable" : "ServerError",
	     "cannot read the device registry: %s", err_msg(&e, r));
	return -EIO;
}

/* Authenticate a call on the modules of device id: a service with need,
 * or the IoT Edge device itself (hub_auth_modules); false when the
 * request has been answered. */
static bool auth_modules(struct hub_worker *hw, struct http_request *req, const char *id,
			 unsigned need, bool *ret_by_device)
{
	_cleanup_json_ json_t *device = NULL;
	struct hub_error he = {0};

	*ret_by_device = false;
	/* Only a device's own credential needs its document. */
	if (http_request_header(req, "Authorization") || http_request_peer_chain(req)) {
		if (identity_read(hw, req, STORE_HUB_DEVICES, STORE_KEY(hw->hs->host_name, id),
				  &device) < 0)
			return false;
	}
	if (hub_auth_modules(hw->hs, http_request_header(req, "Authorization"), need, id, device,
			     http_request_peer_chain(req), hw->ca_store, 0, ret_by_device,
			     &he) == 0)
		return true;
	respond_error(hw, req, &he);
	return false;
}

/* A device gives its modules keys only: the hub makes them, or takes the
 * ones aziot-identityd derived. false when the request has been answered. */
static bool device_module_body(struct hub_worker *hw, struct http_request *req, const json_t *body)
{
	const char *type = NULL;

	(void)json_get_string_opt(body, "authentication.type", &type, NULL);
	if (json_object_get(json_object_get(body, "authentication"), "x509Thumbprint") ||
	    (type && !streq(type, "sas"))) {
		fail(hw, req, 400, "ArgumentInvalid",
		     "authentication: a device gives its modules \"sas\" authentication only");
		return false;
	}
	return true;
}

static int modules(struct hub_worker *hw, struct http_request *req, const char *method,
		   const char *id, const char *mid)
{
	const char *hub = hw->hs->host_name;
	struct store *st = hw->w->store;
	_cleanup_json_ json_t *out = NULL, *body = NULL;
	struct hub_error he = {0};
	bool by_device;
	int r;

	if (!mid) {
		if (!streq(method, "GET"))
			return fail(hw, req, 405, "MethodNotAllowed",
				    "use GET on a device's modules");
		if (!auth_modules(hw, req, id, HUB_RIGHT_REGISTRY_READ, &by_device))
			return 0;
		r = hub_module_list(st, hub, id, &out, &he);
		return respond_result(hw, req, r, 200, out, &he);
	}
	if (streq(method, "GET")) {
		_cleanup_free_ char *etag = NULL;

		if (!auth_modules(hw, req, id, HUB_RIGHT_REGISTRY_READ, &by_device))
			return 0;
		r = hub_module_get(st, hub, id, mid, &body, &etag, &he);
		if (r == 0) {
			out = hub_identity_view(body, etag);
			r = out ? 0 : -ENOMEM;
		}
		return respond_result(hw, req, r, 200, out, &he);
	}
	if (streq(method, "PUT")) {
		if (!auth_modules(hw, req, id, HUB_RIGHT_REGISTRY_WRITE, &by_device))
			return 0;
		if (body_json(hw, req, &body) < 0 ||
		    (by_device && !device_module_body(hw, req, body)) ||
		    !begin_write(hw, req, "device registry"))
			return 0;
		r = hub_module_put(st, hub, id, mid, body, http_request_header(req, "If-Match"),
				   &out, &he);
		return respond_result(hw, req, r, 200, out, &he);
	}
	if (streq(method, "DELETE")) {
		if (!auth_modules(hw, req, id, HUB_RIGHT_REGISTRY_WRITE, &by_device) ||
		    !begin_write(hw, req, "device registry"))
			return 0;
		r = hub_module_delete(st, hub, id, mid, http_request_header(req, "If-Match"), &he);
		return respond_result(hw, req, r, 204, NULL, &he);
	}
	return fail(hw, req, 405, "MethodNotAllowed", "use GET, PUT or DELETE on a module");
}

static int twins(struct hub_worker *hw, struct http_request *req, const char *method,
		 const char *id, const char *mid)
{
	const char *hub = hw->hs->host_name;
	struct store *st = hw->w->store;
	_cleanup_json_ json_t *out = NULL, *body = NULL;
	struct hub_error he = {0};
	bool replace = streq(method, "PUT");
	int r;

	if (!streq(method, "GET") && !streq(method, "PATCH") && !replace)
		return fail(hw, req, 405, "MethodNotAllowed", "use GET, PATCH or PUT on a twin");
	if (!auth_service(hw, req, HUB_RIGHT_SERVICE_CONNECT))
		return 0;
	if (streq(method, "GET")) {
		r = hub_twin_get(st, hub, id, mid, &out, &he);
		return respond_result(hw, req, r, 200, out, &he);
	}
	if (body_json(hw, req, &body) < 0 || !begin_write(hw, req, "device registry"))
		return 0;
	r = hub_twin_update(st, hub, id, mid, body, replace, http_request_header(req, "If-Match"),
			    &out, &he);
	return respond_result(hw, req, r, 200, out, &he);
}

/* --- device-facing endpoints ------------------------------------------------- */

/* Authenticate the device (and module) the path names; false when the
 * request has been answered. */
static bool auth_device(struct hub_worker *hw, struct http_request *req, const char *id,
			const char *mid)
{
	const char *hub = hw->hs->host_name, *status = NULL;
	_cleanup_json_ json_t *device = NULL, *module = NULL;
	struct hub_error he = {0};

	if (identity_read(hw, req, STORE_HUB_DEVICES, STORE_KEY(hub, id), &device) < 0)
		return false;
	if (device && mid &&
	    identity_read(hw, req, STORE_HUB_MODULES, STORE_KEY(hub, id, mid), &module) < 0)
		return false;
	/* A module of a disabled device is disabled too. */
	(void)json_get_string_opt(device, "status", &status, NULL);
	if (module && status && streq(status, "disabled"))
		hub_fail(&he, 401, "IotHubUnauthorizedAccess", "the device is disabled");
	else if (hub_auth_device(hw->hs, http_request_header(req, "Authorization"), id, mid,
				 mid ? module : device, http_request_peer_chain(req), hw->ca_store,
				 0, &he) == 0)
		return true;
	respond_error(hw, req, &he);
	return false;
}

/* Copy the iothub-app-* and system property headers into props. */
static int collect_properties(struct http_request *req, json_t *app, json_t *sys)
{
	static const struct {
		const char *header, *name;
	} system_headers[] = {
	    {"iothub-messageid", "messageId"},
	    {"iothub-correlationid", "correlationId"},
	    {"iothub-userid", "userId"},
	    {"iothub-to", "to"},
	    {"iothub-expiry", "expiryTimeUtc"},
	    {"iothub-ack", "ack"},
	    {"iothub-contenttype", "contentType"},
	    {"iothub-contentencoding", "contentEncoding"},
	    {"iothub-interface-id", "interfaceId"},
	    {"iothub-creationtimeutc", "creationTimeUtc"},
	    {"dt-subject", "dt-subject"},
	};
	size_t n = http_request_header_count(req);

	for (size_t i = 0; i < n; i++) {
		const char *name, *value;

		if (http_request_header_at(req, i, &name, &value) < 0)
			break;
		if (strncasecmp(name, "iothub-app-", 11) == 0 && name[11]) {
			if (json_object_set_new(app, name + 11, json_string(value)) < 0)
				return -ENOMEM;
			continue;
		}
		for (size_t s = 0; s < ARRAY_SIZE(system_headers); s++)
			if (strcasecmp(name, system_headers[s].header) == 0 &&
			    json_object_set_new(sys, system_headers[s].name, json_string(value)) <
				0)
				return -ENOMEM;
	}
	return 0;
}

static int64_t realtime_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int append(struct hub_worker *hw, const char *device_id, json_t *props, const void *body,
		  size_t len, struct err *e)
{
	struct store_message m = {
	    .enqueued_ms = realtime_ms(),
	    .properties = props,
	    .body = (void *)body,
	    .body_len = len,
	};

	return store_telemetry_append(hw->w->store, hw->hs->host_name, device_id, &m, NULL, e);
}

/* The messages of a batch body, appended in one transaction. */
static int append_batch(struct hub_worker *hw, struct http_request *req, const char *device_id,
			const char *module_id, const json_t *sys_base)
{
	_cleanup_json_ json_t *batch = NULL;
	struct err e = {0};
	size_t i;
	json_t *item;
	int r;

	if (body_json(hw, req, &batch) < 0)
		return 0;
	if (!json_is_array(batch) || json_array_size(batch) == 0 ||
	    json_array_size(batch) > BATCH_MAX_MESSAGES)
		return fail(hw, req, 400, "ArgumentInvalid",
			    "a batch must be a JSON array of 1 to %d messages", BATCH_MAX_MESSAGES);
	r = store_tx_begin(hw->w->store, &e);
	if (r < 0)
		return fail(hw, req, 503, "ServiceUnavailable", "cannot store messages: %s",
			    err_msg(&e, r));
	json_array_foreach (batch, i, item) {
		_cleanup_json_ json_t *props = NULL;
		_cleanup_buf_ struct buf raw = {0};
		json_t *app, *sys, *p = NULL;
		const char *b64 = NULL, *key;
		json_t *v;

		buf_init(&raw, HUB_MESSAGE_MAX);
		r = json_get_string(item, "body", &b64, &e);
		if (r >= 0)
			r = json_get_object_opt(item, "properties", &p, &e);
		if (r < 0 || base64_decode(&raw, b64, strlen(b64), B64_STANDARD, NULL) < 0) {
			(void)store_tx_rollback(hw->w->store, NULL);
			if (r >= 0)
				return fail(hw, req, 400, "ArgumentInvalid",
					    "[%zu].body: expected base64", i);
			return fail(hw, req, 400, "ArgumentInvalid", "[%zu].%s", i, err_msg(&e, r));
		}
		props = json_pack("{s:{},s:o}", "application", "system", json_deep_copy(sys_base));
		app = json_object_get(props, "application");
		sys = json_object_get(props, "system");
		if (!props || !app || !sys) {
			(void)store_tx_rollback(hw->w->store, NULL);
			return fail(hw, req, 500, "ServerError", "out of memory");
		}
		json_object_foreach (p, key, v) {
			if (!json_is_string(v))
				continue;
			if (strncasecmp(key, "iothub-app-", 11) == 0)
				(void)json_object_set(app, key + 11, v);
			else if (streq(key, "dt-subject"))
				(void)json_object_set(sys, key, v);
		}
		if (module_id)
			(void)json_object_set_new(sys, "connectionModuleId",
						  json_string(module_id));
		r = append(hw, device_id, props, raw.data ? raw.data : "", raw.len, &e);
		if (r < 0) {
			(void)store_tx_rollback(hw->w->store, NULL);
			return fail(hw, req, 500, "ServerError", "cannot store the message: %s",
				    err_msg(&e, r));
		}
	}
	r = store_tx_commit(hw->w->store, &e);
	if (r < 0)
		return fail(hw, req, 500, "ServerError", "cannot store the messages: %s",
			    err_msg(&e, r));
	return reply(hw, req, 204, NULL, NULL, 0);
}

static int telemetry(struct hub_worker *hw, struct http_request *req, const char *method,
		     const char *id, const char *mid)
{
	_cleanup_json_ json_t *props = NULL;
	const char *ctype;
	struct err e = {0};
	size_t len;
	const void *body;
	int r;

	if (!streq(method, "POST"))
		return fail(hw, req, 405, "MethodNotAllowed", "use POST to send a message");
	if (!auth_device(hw, req, id, mid))
		return 0;
	body = http_request_body(req, &len);
	if (len > HUB_MESSAGE_MAX)
		return fail(hw, req, 413, "MessageTooLarge",
			    "a message is at most %d bytes, got %zu", HUB_MESSAGE_MAX, len);
	props = json_pack("{s:{},s:{s:s}}", "application", "system", "connectionDeviceId", id);
	if (!props || collect_properties(req, json_object_get(props, "application"),
					 json_object_get(props, "system")) < 0)
		return fail(hw, req, 500, "ServerError", "out of memory");
	if (!begin_write(hw, req, "message store"))
		return 0;
	ctype = http_request_header(req, "Content-Type");
	if (ctype && strncasecmp(ctype, BATCH_TYPE, strlen(BATCH_TYPE)) == 0)
		return append_batch(hw, req, id, mid, json_object_get(props, "system"));
	if (mid && json_object_set_new(json_object_get(props, "system"), "connectionModuleId",
				       json_string(mid)) < 0)
		return fail(hw, req, 500, "ServerError", "out of memory");
	r = append(hw, id, props, body, len, &e);
	if (r == -E2BIG)
		return fail(hw, req, 413, "MessageTooLarge",
			    "the message or its properties are too "
			    "large");
	if (r < 0)
		return fail(hw, req, r == -EBUSY ? 503 : 500,
			    r == -EBUSY ? "ServiceUnavailable" : "ServerError",
			    "cannot store the message: %s", err_msg(&e, r));
	return reply(hw, req, 204, NULL, NULL, 0);
}

/* Cloud-to-device messages: the hub has none to give (§5), so polling
 * gets 204 and a lock token is never valid. */
static int device_bound(struct hub_worker *hw, struct http_request *req, const char *method,
			const char *id, size_t n_extra)
{
	if (!auth_device(hw, req, id, NULL))
		return 0;
	if (n_extra == 0) {
		if (!streq(method, "GET"))
			return fail(hw, req, 405, "MethodNotAllowed",
				    "use GET to receive a cloud-to-device message");
		return reply(hw, req, 204, NULL, NULL, 0);
	}
	return fail(hw, req, 412, "DeviceMessageLockLost",
		    "the lock token is not that of a message delivered to this device");
}

/* --- routing ----------------------------------------------------------------- */

struct path {
	char *seg[MAX_SEGMENTS];
	size_t n;
};

static void path_clear(struct path *p)
{
	for (size_t i = 0; i < p->n; i++)
		free(p->seg[i]);
	p->n = 0;
}

/* Split "/a/b%2Fc/" into decoded segments; a trailing '/' adds nothing.
 * Returns 0, -EINVAL (bad escape, too many segments), -ENOMEM. */
static int path_split(const char *raw, struct path *p)
{
	const char *s = raw;

	p->n = 0;
	if (*s == '/')
		s++;
	while (*s) {
		const char *end = strchrnul(s, '/');
		_cleanup_buf_ struct buf dec = {0};

		if (p->n == MAX_SEGMENTS)
			return -EINVAL;
		buf_init(&dec, 1024);
		if (url_decode(&dec, s, (size_t)(end - s), false) < 0)
			return -EINVAL;
		p->seg[p->n] = buf_steal(&dec, NULL);
		if (!p->seg[p->n])
			return -ENOMEM;
		p->n++;
		s = *end ? end + 1 : end;
	}
	return 0;
}

static bool is(const struct path *p, size_t i, const char *word)
{
	return i < p->n && strcasecmp(p->seg[i], word) == 0;
}

static int route(struct http_request *req, void *userdata)
{
	struct hub_worker *hw = userdata;
	const char *method = http_request_method(req);
	struct path p = {0};
	int r;

	r = path_split(http_request_path(req), &p);
	if (r == -ENOMEM) {
		path_clear(&p);
		return -ENOMEM;
	}
	if (r < 0) {
		path_clear(&p);
		return fail(hw, req, 400, "ArgumentInvalid", "the request path is malformed");
	}
	for (size_t i = 0; i < p.n; i++) {
		if (!*p.seg[i] || memchr(p.seg[i], '/', strlen(p.seg[i]))) {
			path_clear(&p);
			return fail(hw, req, 404, "NotFound", "no such resource: %s",
				    http_request_path(req));
		}
	}

	if (is(&p, 0, "devices")) {
		if (p.n == 1)
			r = devices(hw, req, method, NULL);
		else if (p.n == 2)
			r = devices(hw, req, method, p.seg[1]);
		else if (p.n == 3 && is(&p, 2, "modules"))
			r = modules(hw, req, method, p.seg[1], NULL);
		else if (p.n == 4 && is(&p, 2, "modules"))
			r = modules(hw, req, method, p.seg[1], p.seg[3]);
		else if (p.n == 4 && is(&p, 2, "messages") && is(&p, 3, "events"))
			r = telemetry(hw, req, method, p.seg[1], NULL);
		else if (p.n == 6 && is(&p, 2, "modules") && is(&p, 4, "messages") &&
			 is(&p, 5, "events"))
			r = telemetry(hw, req, method, p.seg[1], p.seg[3]);
		else if (p.n >= 4 && p.n <= 6 && is(&p, 2, "messages") &&
			 is(&p, 3, "devicebound") && (p.n < 6 || is(&p, 5, "abandon")))
			r = device_bound(hw, req, method, p.seg[1], p.n - 4);
		else
			r = fail(hw, req, 404, "NotFound", "no such resource: %s",
				 http_request_path(req));
	} else if (is(&p, 0, "twins") && (p.n == 2 || (p.n == 4 && is(&p, 2, "modules")))) {
		r = twins(hw, req, method, p.seg[1], p.n == 4 ? p.seg[3] : NULL);
	} else {
		r = fail(hw, req, 404, "NotFound", "no such resource: %s", http_request_path(req));
	}
	path_clear(&p);
	return r == -ECONNRESET ? 0 : r;
}

int hub_http_init(struct cloud_worker *w, const struct hub_settings *hs, struct hub_worker **ret,
		  struct err *e)
{
	struct hub_worker *hw;
	X509_STORE *ca_store;
	int r;

	*ret = NULL;
	ca_store = hub_ca_store_new(hs);
	if (!ca_store)
		return err_set(e, -ENOMEM, "cannot set up the device CA store");
	hw = calloc(1, sizeof(*hw));
	if (!hw) {
		X509_STORE_free(ca_store);
		return err_set(e, -ENOMEM, "out of memory");
	}
	*hw = (struct hub_worker){.w = w, .hs = hs, .ca_store = ca_store};
	r = cloud_batch_new(w->base, w->store, "hub", NULL, NULL, &hw->batch);
	if (r < 0) {
		hub_http_free(hw);
		return err_set(e, r, "cannot set up the hub's group commit: %s", strerror(-r));
	}
	r = http_server_route(w->http, NULL, "/*", route, hw);
	if (r < 0) {
		hub_http_free(hw);
		return err_set(e, r, "cannot add the hub's routes: %s", strerror(-r));
	}
	*ret = hw;
	return 0;
}

void hub_http_free(struct hub_worker *hw)
{
	if (!hw)
		return;
	cloud_batch_free(hw->batch);
	X509_STORE_free(hw->ca_store);
	free(hw);
}
