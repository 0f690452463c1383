/* SPDX-License-Identifier: MIT */
/*
 * Devices and modules of the hub registry (hub-protocol.md §4.1, §4.2):
 * what a request body may hold, what is stored, what a client sees, and
 * the store operations the REST handlers and admin commands share.
 *
 * Stored documents are the Device / Module JSON without "etag": the etag
 * is the store's, added to every view, so it changes on every write.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/rand.h>

#include "cloud/hub/hub.h"
#include "cloud/store/store.h"
#include "common/buf.h"
#include "common/encode.h"
#include "common/json.h"
#include "common/macro.h"

#define KEY_MIN 16
#define KEY_MAX 64
#define KEY_NEW 32
#define NEVER "0001-01-01T00:00:00Z"

bool hub_id_valid(const char *id)
{
	static const char extra[] = "-.%_*?!(),:=@$'";
	size_t n = 0;

	for (; id[n]; n++) {
		unsigned char c = (unsigned char)id[n];

		if (n >= HUB_ID_MAX || c >= 0x80 || (!isalnum(c) && !strchr(extra, c)))
			return false;
	}
	return n > 0;
}

static int64_t realtime_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void hub_time_format(int64_t ms, char out[40])
{
	time_t t;
	struct tm tm;

	if (ms == 0)
		ms = realtime_ms();
	t = (time_t)(ms / 1000);
	if (!gmtime_r(&t, &tm)) {
		snprintf(out, 40, "%s", NEVER);
		return;
	}
	/* Azure writes seven fractional digits; we know milliseconds. */
	snprintf(out, 40, "%04d-%02d-%02dT%02d:%02d:%02d.%03u0000Z", (tm.tm_year + 1900) % 10000,
		 (tm.tm_mon + 1) % 100, tm.tm_mday % 100, tm.tm_hour % 100, tm.tm_min % 100,
		 tm.tm_sec % 100, (unsigned)(ms % 1000) % 1000u);
}

static int bad_request(struct hub_error *he, const struct err *e, int r)
{
	if (r == -ENOMEM)
		return hub_fail(he, 500, "ServerError", "out of memory");
	return hub_fail(he, 400, "ArgumentInvalid", "%s", err_msg(e, r));
}

/* Map a store failure to the hub's error (the detail goes to the log of
 * the caller through he->message). */
static int store_failed(struct hub_error *he, const struct err *e, int r, const char *what)
{
	if (r == -EBUSY)
		return hub_fail(he, 503, "ServiceUnavailable", "the registry is busy; retry");
	if (r == -E2BIG)
		return hub_fail(he, 400, "ArgumentInvalid", "the %s is too large", what);
	return hub_fail(he, 500, "ServerError", "cannot access the %s: %s", what, err_msg(e, r));
}

/* A new identity's generationId: 18 digits like IoT Hub's (.NET ticks). */
static int new_generation_id(char out[32])
{
	uint32_t rnd;

	if (RAND_bytes((unsigned char *)&rnd, sizeof(rnd)) != 1)
		return -EIO;
	/* Ticks of 100 ns since 0001-01-01, the low digits made random so
	 * that two identities created in the same millisecond differ. */
	snprintf(out, 32, "%" PRIu64,
		 (uint64_t)realtime_ms() * 10000u + UINT64_C(621355968000000000) + rnd % 10000u);
	return 0;
}

static int new_key(char **ret)
{
	unsigned char raw[KEY_NEW];
	_cleanup_buf_ struct buf b64 = {0};
	int r;

	buf_init_secret(&b64, 128);
	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return -EIO;
	r = base64_encode(&b64, raw, sizeof(raw), B64_STANDARD);
	explicit_bzero(raw, sizeof(raw));
	if (r < 0)
		return r;
	*ret = buf_steal(&b64, NULL);
	return *ret ? 0 : -ENOMEM;
}

static int check_key(const char *path, const char *key, struct hub_error *he)
{
	_cleanup_buf_ struct buf raw = {0};
	int r;

	buf_init_secret(&raw, 256);
	r = base64_decode(&raw, key, strlen(key), B64_STANDARD, NULL);
	if (r < 0 || raw.len < KEY_MIN || raw.len > KEY_MAX)
		return hub_fail(he, 400, "ArgumentInvalid",
				"%s: expected a base64 key of %d to %d bytes", path, KEY_MIN,
				KEY_MAX);
	return 0;
}

/* 40 (SHA-1) or 64 (SHA-256) hex digits, stored uppercase. */
static int check_thumbprint(const char *path, const char *s, char **ret, struct hub_error *he)
{
	size_t n = strlen(s);
	char *up;

	if (n != 40 && n != 64)
		return hub_fail(he, 400, "ArgumentInvalid",
				"%s: expected a SHA-1 or SHA-256 thumbprint (40 or 64 hex digits)",
				path);
	up = strdup(s);
	if (!up)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		if (!isxdigit((unsigned char)up[i])) {
			free(up);
			return hub_fail(he, 400, "ArgumentInvalid",
					"%s: expected a SHA-1 or SHA-256 thumbprint (40 or 64 hex "
					"digits)",
					path);
		}
		up[i] = (char)toupper((unsigned char)up[i]);
	}
	*ret = up;
	return 0;
}

static json_t *string_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

/* The "authentication" object of a new document, from the body's and
 * (on update) the current one's. */
static int build_authentication(const json_t *body, const json_t *current, json_t **ret,
				struct hub_error *he)
{
	const char *type = NULL, *keys[2] = {NULL, NULL}, *thumbs[2] = {NULL, NULL};
	static const char *const key_paths[2] = {"authentication.symmetricKey.primaryKey",
						 "authentication.symmetricKey.secondaryKey"};
	static const char *const thumb_paths[2] = {
	    "authentication.x509Thumbprint.primaryThumbprint",
	    "authentication.x509Thumbprint.secondaryThumbprint"};
	char *made_keys[2] = {NULL, NULL}, *made_thumbs[2] = {NULL, NULL};
	struct err e = {0};
	json_t *auth = NULL;
	int r;

	r = json_get_string_opt(body, "authentication.type", &type, &e);
	for (size_t i = 0; r >= 0 && i < 2; i++)
		r = json_get_string_opt(body, key_paths[i], &keys[i], &e);
	for (size_t i = 0; r >= 0 && i < 2; i++)
		r = json_get_string_opt(body, thumb_paths[i], &thumbs[i], &e);
	if (r < 0)
		return bad_request(he, &e, r);
	for (size_t i = 0; i < 2; i++) {
		if (keys[i] && !*keys[i])
			keys[i] = NULL;
		if (thumbs[i] && !*thumbs[i])
			thumbs[i] = NULL;
	}
	if (!type)
		type = thumbs[0] || thumbs[1] ? "selfSigned" : "sas";

	if (streq(type, "sas")) {
		const char *cur_type = NULL;

		(void)json_get_string_opt(current, "authentication.type", &cur_type, NULL);
		for (size_t i = 0; i < 2; i++) {
			if (keys[i]) {
				r = check_key(key_paths[i], keys[i], he);
				if (r < 0)
					goto out;
				continue;
			}
			/* Empty: keep the current key of a SAS identity, else make one. */
			if (cur_type && streq(cur_type, "sas"))
				(void)json_get_string_opt(current, key_paths[i], &keys[i], NULL);
			if (keys[i] && *keys[i])
				continue;
			r = new_key(&made_keys[i]);
			if (r < 0) {
				r = hub_fail(he, 500, "ServerError", "cannot generate a key");
				goto out;
			}
			keys[i] = made_keys[i];
		}
		thumbs[0] = thumbs[1] = NULL;
	} else if (streq(type, "selfSigned")) {
		if (!thumbs[0]) {
			r = hub_fail(he, 400, "ArgumentInvalid",
				     "%s: a selfSigned identity needs a primary thumbprint",
				     thumb_paths[0]);
			goto out;
		}
		for (size_t i = 0; i < 2; i++) {
			if (!thumbs[i])
				continue;
			r = check_thumbprint(thumb_paths[i], thumbs[i], &made_thumbs[i], he);
			if (r < 0)
				goto out;
			thumbs[i] = made_thumbs[i];
		}
		keys[0] = keys[1] = NULL;
	} else if (streq(type, "certificateAuthority") || streq(type, "none")) {
		keys[0] = keys[1] = thumbs[0] = thumbs[1] = NULL;
	} else {
		r = hub_fail(he, 400, "ArgumentInvalid",
			     "authentication.type: expected one of \"sas\", \"selfSigned\", "
			     "\"certificateAuthority\", \"none\", got \"%.64s\"",
			     type);
		goto out;
	}
	auth = json_pack("{s:{s:o,s:o},s:{s:o,s:o},s:s}", "symmetricKey", "primaryKey",
			 string_or_null(keys[0]), "secondaryKey", string_or_null(keys[1]),
			 "x509Thumbprint", "primaryThumbprint", string_or_null(thumbs[0]),
			 "secondaryThumbprint", string_or_null(thumbs[1]), "type", type);
	r = auth ? 0 : -ENOMEM;
	*ret = auth;
out:
	for (size_t i = 0; i < 2; i++) {
		if (made_keys[i]) {
			explicit_bzero(made_keys[i], strlen(made_keys[i]));
			free(made_keys[i]);
		}
		free(made_thumbs[i]);
	}
	return r;
}

/* The fields devices and modules share, in Azure's order. */
struct identity_common {
	const char *generation_id;
	const char *connection_state_time;
	const char *last_activity;
	json_t *authentication;
};

static int check_body_ids(const json_t *body, const char *device_id, const char *module_id,
			  struct hub_error *he)
{
	const char *s = NULL;
	struct err e = {0};
	int r;

	if (!json_is_object(body))
		return hub_fail(he, 400, "ArgumentInvalid",
				"the body must be a JSON object, not %s", json_type_phrase(body));
	r = json_get_string_opt(body, "deviceId", &s, &e);
	if (r < 0)
		return bad_request(he, &e, r);
	if (s && !streq(s, device_id))
		return hub_fail(
		    he, 400, "ArgumentInvalid",
		    "deviceId: \"%.128s\" in the body is not \"%s\" of the request path", s,
		    device_id);
	if (!module_id)
		return 0;
	r = json_get_string_opt(body, "moduleId", &s, &e);
	if (r < 0)
		return bad_request(he, &e, r);
	if (s && !streq(s, module_id))
		return hub_fail(
		    he, 400, "ArgumentInvalid",
		    "moduleId: \"%.128s\" in the body is not \"%s\" of the request path", s,
		    module_id);
	return 0;
}

int hub_device_build(const json_t *body, const char *device_id, const json_t *current,
		     int64_t now_ms, json_t **ret, struct hub_error *he)
{
	_cleanup_json_ json_t *doc = NULL, *parents = NULL;
	_cleanup_free_ char *made_scope = NULL;
	json_t *auth = NULL, *scopes = NULL;
	const char *status = NULL, *reason = NULL, *scope = NULL, *generation = NULL;
	const char *cur_status = NULL, *status_time = NEVER, *cur_scope = NULL;
	char gen[32], now[40];
	bool edge = false;
	struct err e = {0};
	int r;

	*ret = NULL;
	if (!hub_id_valid(device_id))
		return hub_fail(he, 400, "ArgumentInvalid",
				"deviceId: expected 1 to 128 letters, digits or - . %% _ * ? ! ( ) "
				", : = @ $ '");
	r = check_body_ids(body, device_id, NULL, he);
	if (r < 0)
		return r;
	r = json_get_string_opt(body, "status", &status, &e);
	if (r >= 0)
		r = json_get_string_opt(body, "statusReason", &reason, &e);
	if (r >= 0)
		r = json_get_bool_opt(body, "capabilities.iotEdge", false, &edge, &e);
	if (r >= 0)
		r = json_get_string_opt(body, "deviceScope", &scope, &e);
	if (r >= 0)
		r = json_get_array_opt(body, "parentScopes", &scopes, &e);
	if (r < 0)
		return bad_request(he, &e, r);
	if (status && strcasecmp(status, "enabled") != 0 && strcasecmp(status, "disabled") != 0)
		return hub_fail(he, 400, "ArgumentInvalid",
				"status: expected \"enabled\" or \"disabled\", got \"%.64s\"",
				status);
	status = status && strcasecmp(status, "disabled") == 0 ? "disabled" : "enabled";
	parents = json_array();
	if (!parents)
		return -ENOMEM;
	for (size_t i = 0; scopes && i < json_array_size(scopes); i++) {
		json_t *s = json_array_get(scopes, i);

		if (!json_is_string(s))
			return hub_fail(he, 400, "ArgumentInvalid",
					"parentScopes[%zu]: expected a string, got %s", i,
					json_type_phrase(s));
		if (json_array_append(parents, s) < 0)
			return -ENOMEM;
	}

	hub_time_format(now_ms, now);
	if (current) {
		(void)json_get_string_opt(current, "generationId", &generation, NULL);
		(void)json_get_string_opt(current, "status", &cur_status, NULL);
		(void)json_get_string_opt(current, "statusUpdatedTime", &status_time, NULL);
		(void)json_get_string_opt(current, "deviceScope", &cur_scope, NULL);
		if (!status_time)
			status_time = NEVER;
		if (cur_status && !streq(cur_status, status))
			status_time = now;
	}
	if (!generation) {
		if (new_generation_id(gen) < 0)
			return hub_fail(he, 500, "ServerError", "cannot make a generation id");
		generation = gen;
	}
	/* An IoT Edge device is its own scope; children name it as parent. */
	if (!scope && edge) {
		scope = cur_scope;
		if (!scope) {
			if (asprintf(&made_scope, "ms-azure-iot-edge://%s-%s", device_id,
				     generation) < 0)
				return -ENOMEM;
			scope = made_scope;
		}
	}
	r = build_authentication(body, current, &auth, he);
	if (r < 0)
		return r;
	doc = json_pack("{s:s,s:s,s:s,s:s,s:o,s:s,s:s,s:s,s:i,s:o,s:{s:b},s:o,s:O}", "deviceId",
			device_id, "generationId", generation, "connectionState", "Disconnected",
			"status", status, "statusReason", string_or_null(reason),
			"connectionStateUpdatedTime", NEVER, "statusUpdatedTime", status_time,
			"lastActivityTime", NEVER, "cloudToDeviceMessageCount", 0, "authentication",
			auth, "capabilities", "iotEdge", edge, "deviceScope", string_or_null(scope),
			"parentScopes", parents);
	if (!doc)
		return -ENOMEM;
	*ret = TAKE_PTR(doc);
	return 0;
}

int hub_module_build(const json_t *body, const char *device_id, const char *module_id,
		     const json_t *current, int64_t now_ms, json_t **ret, struct hub_error *he)
{
	const char *managed_by = NULL, *generation = NULL;
	json_t *auth = NULL, *doc;
	struct err e = {0};
	char gen[32];
	int r;

	(void)now_ms;
	*ret = NULL;
	if (!hub_id_valid(module_id))
		return hub_fail(he, 400, "ArgumentInvalid",
				"moduleId: expected 1 to 128 letters, digits or - . %% _ * ? ! ( ) "
				", : = @ $ '");
	r = check_body_ids(body, device_id, module_id, he);
	if (r < 0)
		return r;
	r = json_get_string_opt(body, "managedBy", &managed_by, &e);
	if (r < 0)
		return bad_request(he, &e, r);
	if (current)
		(void)json_get_string_opt(current, "generationId", &generation, NULL);
	if (!generation) {
		if (new_generation_id(gen) < 0)
			return hub_fail(he, 500, "ServerError", "cannot make a generation id");
		generation = gen;
	}
	r = build_authentication(body, current, &auth, he);
	if (r < 0)
		return r;
	doc = json_pack("{s:s,s:o,s:s,s:s,s:s,s:s,s:s,s:i,s:o}", "moduleId", module_id, "managedBy",
			string_or_null(managed_by), "deviceId", device_id, "generationId",
			generation, "connectionState", "Disconnected", "connectionStateUpdatedTime",
			NEVER, "lastActivityTime", NEVER, "cloudToDeviceMessageCount", 0,
			"authentication", auth);
	if (!doc)
		return -ENOMEM;
	*ret = doc;
	return 0;
}

json_t *hub_identity_view(const json_t *doc, const char *etag)
{
	json_t *view = json_object(), *v;
	const char *key;
	bool placed = false;

	if (!view)
		return NULL;
	/* "etag" goes right after generationId, where Azure puts it. */
	json_object_foreach ((json_t *)doc, key, v) {
		if (streq(key, "etag"))
			continue;
		if (json_object_set(view, key, v) < 0)
			goto fail;
		if (streq(key, "generationId")) {
			if (json_object_set_new(view, "etag", json_string(etag ? etag : "")) < 0)
				goto fail;
			placed = true;
		}
	}
	if (!placed && json_object_set_new(view, "etag", json_string(etag ? etag : "")) < 0)
		goto fail;
	return view;
fail:
	json_decref(view);
	return NULL;
}

/* --- If-Match ------------------------------------------------------------ */

/* The etag of an If-Match header without quotes (Node quotes it, aziot
 * does not); "*" for any. NULL when absent. The caller frees. */
static char *if_match_value(const char *h, bool *ret_oom)
{
	size_t n;
	char *v;

	*ret_oom = false;
	if (!h)
		return NULL;
	while (*h == ' ' || *h == '\t')
		h++;
	if (strneq(h, "W/", 2))
		h += 2;
	n = strlen(h);
	while (n > 0 && (h[n - 1] == ' ' || h[n - 1] == '\t'))
		n--;
	if (n >= 2 && h[0] == '"' && h[n - 1] == '"') {
		h++;
		n -= 2;
	}
	v = strndup(h, n);
	*ret_oom = !v;
	return v;
}

/* Decide a write against the current etag: 0 to go on (with *ret_if_match
 * the store's if_match), or the error. */
static int precondition(const char *header, const char *current_etag, bool exists, const char *what,
			const char *id, bool create_when_absent, char **ret_if_match,
			struct hub_error *he)
{
	bool oom;
	char *m = if_match_value(header, &oom);

	*ret_if_match = NULL;
	if (oom)
		return -ENOMEM;
	if (!m || !*m) {
		free(m);
		if (exists && create_when_absent)
			return hub_fail(he, 409,
					streq(what, "device") ? "DeviceAlreadyExists"
							      : "ModuleAlreadyExistsOnDevice",
					"a %s with id \"%s\" already exists", what, id);
		*ret_if_match = NULL;
		return 0;
	}
	if (!exists) {
		free(m);
		return hub_fail(he, 404,
				streq(what, "device") ? "DeviceNotFound" : "ModuleNotFound",
				"%s \"%s\" does not exist", what, id);
	}
	if (!streq(m, "*") && (!current_etag || !streq(m, current_etag))) {
		free(m);
		return hub_fail(
		    he, 412, "PreconditionFailed",
		    "the %s's etag does not match If-Match: it was changed since it was "
		    "read",
		    what);
	}
	*ret_if_match = m;
	return 0;
}

/* --- devices --------------------------------------------------------------- */

int hub_device_get(struct store *st, const char *hub, const char *device_id, json_t **ret_doc,
		   char **ret_etag, struct hub_error *he)
{
	struct err e = {0};
	int r;

	r = store_get(st, STORE_HUB_DEVICES, STORE_KEY(hub, device_id), ret_doc, ret_etag, &e);
	if (r == -ENOENT || r == -EINVAL || r == -ENAMETOOLONG)
		return hub_fail(he, 404, "DeviceNotFound", "device \"%.128s\" does not exist",
				device_id);
	if (r < 0)
		return store_failed(he, &e, r, "device registry");
	return 0;
}

/* Create or update a device (module_id NULL) or one of its modules: the
 * write hub_device_put and hub_module_put share. The caller has checked
 * that the device of a module exists. */
static int identity_put(struct store *st, const char *hub, const char *device_id,
			const char *module_id, const json_t *body, const char *if_match,
			json_t **ret, struct hub_error *he)
{
	_cleanup_json_ json_t *current = NULL, *doc = NULL, *twin = NULL;
	_cleanup_free_ char *etag = NULL, *match = NULL, *new_etag = NULL;
	const char *what = module_id ? "module" : "device";
	const char *id = module_id ? module_id : device_id;
	const struct store_key key = {{hub, device_id, module_id}};
	enum store_collection coll = module_id ? STORE_HUB_MODULES : STORE_HUB_DEVICES;
	struct err e = {0};
	bool exists;
	int r;

	if (ret)
		*ret = NULL;
	if (!hub_id_valid(id))
		return hub_fail(
		    he, 400, "ArgumentInvalid",
		    "%sId: expected 1 to 128 letters, digits or - . %% _ * ? ! ( ) , : = "
		    "@ $ '",
		    what);
	r = store_get(st, coll, &key, &current, &etag, &e);
	if (r < 0 && r != -ENOENT)
		return store_failed(he, &e, r, "device registry");
	exists = r == 0;
	r = precondition(if_match, etag, exists, what, id, true, &match, he);
	if (r < 0)
		return r;
	r = module_id ? hub_module_build(body, device_id, module_id, current, 0, &doc, he)
		      : hub_device_build(body, device_id, current, 0, &doc, he);
	if (r < 0)
		return r;
	r = store_tx_begin(st, &e);
	if (r < 0)
		return store_failed(he, &e, r, "device registry");
	r = store_put(st,
		      &(struct store_write){.coll = coll,
					    .key = key,
					    .doc = doc,
					    .if_match = exists ? etag : NULL,
					    .create_only = !exists},
		      &new_etag, &e);
	/* A new device or module gets its twin. */
	if (r == 0 && !exists) {
		twin = hub_twin_new(0);
		r = twin ? store_put(
			       st,
			       &(struct store_write){.coll = STORE_TWINS, .key = key, .doc = twin},
			       NULL, &e)
			 : -ENOMEM;
	}
	if (r == 0)
		r = store_tx_commit(st, &e);
	else
		(void)store_tx_rollback(st, NULL);
	if (r == -EEXIST)
		return hub_fail(he, 409,
				module_id ? "ModuleAlreadyExistsOnDevice" : "DeviceAlreadyExists",
				"a %s with id \"%s\" already exists", what, id);
	if (r == -ESTALE || r == -ENOENT)
		return hub_fail(he, 412, "PreconditionFailed",
				"the %s was changed while it was being written; retry", what);
	if (r < 0)
		return store_failed(he, &e, r, "device registry");
	if (ret) {
		*ret = hub_identity_view(doc, new_etag);
		if (!*ret)
			return -ENOMEM;
	}
	return 0;
}

int hub_device_put(struct store *st, const char *hub, const char *device_id, const json_t *body,
		   const char *if_match, json_t **ret, struct hub_error *he)
{
	return identity_put(st, hub, device_id, NULL, body, if_match, ret, he);
}

/* Delete a device (module_id NULL) with its modules and twins, or one
 * module with its twin: what hub_device_delete and hub_module_delete share. */
static int identity_delete(struct store *st, const char *hub, const char *device_id,
			   const char *module_id, const char *if_match, struct hub_error *he)
{
	_cleanup_free_ char *etag = NULL, *match = NULL;
	const char *what = module_id ? "module" : "device";
	const struct store_key key = {{hub, device_id, module_id}};
	struct err e = {0};
	int r;

	r = module_id ? hub_module_get(st, hub, device_id, module_id, NULL, &etag, he)
		      : hub_device_get(st, hub, device_id, NULL, &etag, he);
	if (r < 0)
		return r;
	r = precondition(if_match, etag, true, what, module_id ? module_id : device_id, false,
			 &match, he);
	if (r < 0)
		return r;
	r = store_tx_begin(st, &e);
	if (r < 0)
		return store_failed(he, &e, r, "device registry");
	r = store_delete(st, module_id ? STORE_HUB_MODULES : STORE_HUB_DEVICES, &key, etag, &e);
	if (r == 0 && module_id) {
		r = store_delete(st, STORE_TWINS, &key, NULL, &e);
		if (r == -ENOENT)
			r = 0;
	} else if (r == 0) {
		/* The device's twin is under the same prefix as its modules'. */
		r = store_delete_matching(
		    st,
		    &(struct store_query){.coll = STORE_HUB_MODULES, .prefix = {{hub, device_id}}},
		    NULL, &e);
		if (r == 0)
			r = store_delete_matching(
			    st,
			    &(struct store_query){.coll = STORE_TWINS,
						  .prefix = {{hub, device_id}}},
			    NULL, &e);
	}
	if (r == 0)
		r = store_tx_commit(st, &e);
	else
		(void)store_tx_rollback(st, NULL);
	if (r == -ESTALE || r == -ENOENT)
		return hub_fail(he, 412, "PreconditionFailed",
				"the %s was changed while it was being deleted; retry", what);
	if (r < 0)
		return store_failed(he, &e, r, "device registry");
	return 0;
}

int hub_device_delete(struct store *st, const char *hub, const char *device_id,
		      const char *if_match, struct hub_error *he)
{
	return identity_delete(st, hub, device_id, NULL, if_match, he);
}

/* Every document under prefix (up to max), as views. */
static int list_views(struct store *st, enum store_collection coll, const struct store_key *prefix,
		      size_t max, json_t **ret, struct hub_error *he)
{
	_cleanup_json_ json_t *out = json_array();
	_cleanup_free_ char *cont = NULL;
	struct err e = {0};

	*ret = NULL;
	if (!out)
		return -ENOMEM;
	while (json_array_size(out) < max) {
		_cleanup_store_page_ struct store_page *page = NULL;
		struct store_query q = {.coll = coll, .prefix = *prefix, .continuation = cont};
		size_t want = max - json_array_size(out);
		int r;

		q.page_size = want < STORE_PAGE_MAX ? want : STORE_PAGE_MAX;
		r = store_list(st, &q, &page, &e);
		if (r < 0)
			return store_failed(he, &e, r, "device registry");
		for (size_t i = 0; i < page->n; i++) {
			json_t *v = hub_identity_view(page->items[i].doc, page->items[i].etag);

			if (!v || json_array_append_new(out, v) < 0)
				return -ENOMEM;
		}
		free(cont);
		cont = page->continuation ? strdup(page->continuation) : NULL;
		if (!cont)
			break;
	}
	*ret = TAKE_PTR(out);
	return 0;
}

int hub_device_list(struct store *st, const char *hub, size_t max, json_t **ret,
		    struct hub_error *he)
{
	return list_views(st, STORE_HUB_DEVICES, STORE_KEY(hub), max, ret, he);
}

/* --- modules --------------------------------------------------------------- */

int hub_module_get(struct store *st, const char *hub, const char *device_id, const char *module_id,
		   json_t **ret_doc, char **ret_etag, struct hub_error *he)
{
	struct err e = {0};
	int r;

	r = hub_device_get(st, hub, device_id, NULL, NULL, he);
	if (r < 0)
		return r;
	r = store_get(st, STORE_HUB_MODULES, STORE_KEY(hub, device_id, module_id), ret_doc,
		      ret_etag, &e);
	if (r == -ENOENT || r == -EINVAL || r == -ENAMETOOLONG)
		return hub_fail(he, 404, "ModuleNotFound",
				"module \"%.128s\" does not exist on device \"%.128s\"", module_id,
				device_id);
	if (r < 0)
		return store_failed(he, &e, r, "device registry");
	return 0;
}

int hub_module_put(struct store *st, const char *hub, const char *device_id, const char *module_id,
		   const json_t *body, const char *if_match, json_t **ret, struct hub_error *he)
{
	int r;

	if (ret)
		*ret = NULL;
	r = hub_device_get(st, hub, device_id, NULL, NULL, he);
	if (r < 0)
		return r;
	return identity_put(st, hub, device_id, module_id, body, if_match, ret, he);
}

int hub_module_delete(struct store *st, const char *hub, const char *device_id,
		      const char *module_id, const char *if_match, struct hub_error *he)
{
	return identity_delete(st, hub, device_id, module_id, if_match, he);
}

int hub_module_list(struct store *st, const char *hub, const char *device_id, json_t **ret,
		    struct hub_error *he)
{
	int r = hub_device_get(st, hub, device_id, NULL, NULL, he);

	if (r < 0)
		return r;
	return list_views(st, STORE_HUB_MODULES, STORE_KEY(hub, device_id), HUB_LIST_MAX, ret, he);
}
