/* SPDX-License-Identifier: MIT */
/*
 * Device and module twins (hub-protocol.md §4.3): what services may write
 * (tags and desired properties, as a JSON merge patch or a replacement),
 * the versions and $metadata that change with each write, and the Twin
 * JSON a client reads.
 *
 * The stored twin:
 *   {"tags":{..},
 *    "properties":{"desired":{..,"$metadata":{..},"$version":N},
 *                  "reported":{..,"$metadata":{..},"$version":M}},
 *    "version":V}
 * $metadata mirrors the properties: every key has {"$lastUpdated": time,
 * "$lastUpdatedVersion": desired version} (reported keys only the time),
 * objects also hold their members' entries, and the root has the time and
 * version of the last write.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cloud/hub/hub.h"
#include "cloud/store/store.h"
#include "common/json.h"
#include "common/macro.h"

#define KEY_BYTES_MAX 1024
#define UPDATE_ATTEMPTS 3

static int invalid(struct hub_error *he, const char *fmt, ...) _printf_(2, 3);
static int invalid(struct hub_error *he, const char *fmt, ...)
{
	char text[480];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	return hub_fail(he, 400, "ArgumentInvalid", "%s", text);
}

static json_t *meta_new(const char *now, json_int_t version, bool with_version)
{
	return with_version
		   ? json_pack("{s:s,s:I}", "$lastUpdated", now, "$lastUpdatedVersion", version)
		   : json_pack("{s:s}", "$lastUpdated", now);
}

json_t *hub_twin_new(int64_t now_ms)
{
	char now[40];

	hub_time_format(now_ms, now);
	return json_pack("{s:{},s:{s:{s:{s:s,s:I},s:I},s:{s:{s:s},s:I}},s:I}", "tags", "properties",
			 "desired", "$metadata", "$lastUpdated", now, "$lastUpdatedVersion",
			 (json_int_t)1, "$version", (json_int_t)1, "reported", "$metadata",
			 "$lastUpdated", now, "$version", (json_int_t)1, "version", (json_int_t)1);
}

/* A twin key: 1 to 1024 bytes, none of '.', '$', space, C0/C1 controls. */
static bool key_valid(const char *k)
{
	size_t n = strlen(k);

	if (n == 0 || n > KEY_BYTES_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)k[i];

		if (c < 0x20 || c == 0x7f || c == '.' || c == '$' || c == ' ')
			return false;
		/* C1 controls U+0080..U+009F are 0xC2 0x80..0x9F in UTF-8. */
		if (c == 0xc2 && i + 1 < n && (unsigned char)k[i + 1] <= 0x9f &&
		    (unsigned char)k[i + 1] >= 0x80)
			return false;
	}
	return true;
}

/* Check the keys and nesting of a value written at path (depth counts the
 * objects above it, the section itself being 1). */
static int check_value(const json_t *v, const char *path, unsigned depth, bool allow_null,
		       struct hub_error *he)
{
	const char *key;
	json_t *m;

	if (json_is_null(v) && !allow_null)
		return invalid(he, "%s: null is only allowed in a patch, to delete a property",
			       path);
	if (!json_is_object(v))
		return 0;
	if (depth > HUB_TWIN_DEPTH_MAX)
		return invalid(he, "%s: properties nest at most %d levels deep", path,
			       HUB_TWIN_DEPTH_MAX);
	json_object_foreach ((json_t *)v, key, m) {
		char sub[320];
		int r;

		/* A path for messages: a very deep one ends in "...". */
		if (snprintf(sub, sizeof(sub), "%s.%.200s", path, key) >= (int)sizeof(sub))
			memcpy(sub + sizeof(sub) - 4, "...", 4);
		if (!key_valid(key))
			return invalid(
			    he,
			    "%s: a property name must be 1 to 1024 bytes without '.', '$', "
			    "spaces or control characters",
			    sub);
		r = check_value(m, sub, depth + 1, allow_null, he);
		if (r < 0)
			return r;
	}
	return 0;
}

/* RFC 7386 merge of patch into target, keeping meta (may be NULL: tags)
 * in step. */
static int merge(json_t *target, json_t *meta, const json_t *patch, const char *now,
		 json_int_t version)
{
	const char *key;
	json_t *pv;

	json_object_foreach ((json_t *)patch, key, pv) {
		if (json_is_null(pv)) {
			json_object_del(target, key);
			if (meta)
				json_object_del(meta, key);
			continue;
		}
		if (json_is_object(pv)) {
			json_t *t = json_object_get(target, key);
			json_t *m = meta ? json_object_get(meta, key) : NULL;
			int r;

			if (!json_is_object(t)) {
				t = json_object();
				if (!t || json_object_set_new(target, key, t) < 0)
					return -ENOMEM;
			}
			if (meta && !json_is_object(m)) {
				m = json_object();
				if (!m || json_object_set_new(meta, key, m) < 0)
					return -ENOMEM;
			}
			r = merge(t, m, pv, now, version);
			if (r < 0)
				return r;
			if (m && (json_object_set_new(m, "$lastUpdated", json_string(now)) < 0 ||
				  json_object_set_new(m, "$lastUpdatedVersion",
						      json_integer(version)) < 0))
				return -ENOMEM;
			continue;
		}
		if (json_object_set_new(target, key, json_deep_copy(pv)) < 0)
			return -ENOMEM;
		if (meta && json_object_set_new(meta, key, meta_new(now, version, true)) < 0)
			return -ENOMEM;
	}
	return 0;
}

/* The size of a section as a client counts it: without $metadata/$version. */
static size_t section_size(const json_t *section)
{
	_cleanup_json_ json_t *copy = json_copy((json_t *)section);
	_cleanup_free_ char *text = NULL;

	if (!copy)
		return SIZE_MAX;
	json_object_del(copy, "$metadata");
	json_object_del(copy, "$version");
	text = json_dumps(copy, JSON_COMPACT);
	return text ? strlen(text) : SIZE_MAX;
}

int hub_twin_apply(json_t *twin, const json_t *body, bool replace, int64_t now_ms,
		   struct hub_error *he)
{
	json_t *tags = NULL, *props = NULL, *desired = NULL, *reported = NULL;
	json_t *t_tags, *t_desired, *t_meta;
	json_int_t version, dversion;
	struct err e = {0};
	char now[40];
	int r;

	if (!json_is_object(body))
		return invalid(he, "the body must be a JSON object, not %s",
			       json_type_phrase(body));
	r = json_get_object_opt(body, "tags", &tags, &e);
	if (r >= 0)
		r = json_get_object_opt(body, "properties", &props, &e);
	if (r >= 0)
		r = json_get_object_opt(body, "properties.desired", &desired, &e);
	if (r < 0)
		return invalid(he, "%s", err_msg(&e, r));
	if (props)
		reported = json_object_get(props, "reported");
	if (reported && !json_is_null(reported))
		return invalid(he, "properties.reported: reported properties are written by the "
				   "device, not by a service");
	if (tags) {
		r = check_value(tags, "tags", 1, !replace, he);
		if (r < 0)
			return r;
	}
	if (desired) {
		_cleanup_json_ json_t *clean = json_copy(desired);

		/* A client may send back what it read: $metadata and $version
		 * are ours and ignored. */
		if (!clean)
			return -ENOMEM;
		json_object_del(clean, "$metadata");
		json_object_del(clean, "$version");
		r = check_value(clean, "properties.desired", 1, !replace, he);
		if (r < 0)
			return r;
	}

	hub_time_format(now_ms, now);
	t_tags = json_object_get(twin, "tags");
	t_desired = json_object_get(json_object_get(twin, "properties"), "desired");
	if (!json_is_object(t_tags) || !json_is_object(t_desired))
		return hub_fail(he, 500, "ServerError", "the stored twin is damaged");
	t_meta = json_object_get(t_desired, "$metadata");
	if (!json_is_object(t_meta)) {
		t_meta = json_object();
		if (!t_meta || json_object_set_new(t_desired, "$metadata", t_meta) < 0)
			return -ENOMEM;
	}
	version = json_integer_value(json_object_get(twin, "version"));
	dversion = json_integer_value(json_object_get(t_desired, "$version"));

	if (replace) {
		json_object_clear(t_tags);
		if (tags && merge(t_tags, NULL, tags, now, 0) < 0)
			return -ENOMEM;
		json_object_clear(t_desired);
		t_meta = json_object();
		if (!t_meta || json_object_set_new(t_desired, "$metadata", t_meta) < 0)
			return -ENOMEM;
		dversion++;
		if (desired) {
			_cleanup_json_ json_t *clean = json_copy(desired);

			if (!clean)
				return -ENOMEM;
			json_object_del(clean, "$metadata");
			json_object_del(clean, "$version");
			if (merge(t_desired, t_meta, clean, now, dversion) < 0)
				return -ENOMEM;
		}
	} else {
		if (tags && merge(t_tags, NULL, tags, now, 0) < 0)
			return -ENOMEM;
		if (desired) {
			_cleanup_json_ json_t *clean = json_copy(desired);

			if (!clean)
				return -ENOMEM;
			json_object_del(clean, "$metadata");
			json_object_del(clean, "$version");
			dversion++;
			if (merge(t_desired, t_meta, clean, now, dversion) < 0)
				return -ENOMEM;
		}
	}
	if (desired || replace) {
		if (json_object_set_new(t_meta, "$lastUpdated", json_string(now)) < 0 ||
		    json_object_set_new(t_meta, "$lastUpdatedVersion", json_integer(dversion)) <
			0 ||
		    json_object_set_new(t_desired, "$version", json_integer(dversion)) < 0)
			return -ENOMEM;
	}
	if (json_object_set_new(twin, "version", json_integer(version + 1)) < 0)
		return -ENOMEM;
	if (section_size(t_tags) > HUB_TWIN_TAGS_MAX)
		return hub_fail(he, 400, "ArgumentInvalid", "tags: at most %d bytes are allowed",
				HUB_TWIN_TAGS_MAX);
	if (section_size(t_desired) > HUB_TWIN_PROPERTIES_MAX)
		return hub_fail(he, 400, "ArgumentInvalid",
				"properties.desired: at most %d bytes are allowed",
				HUB_TWIN_PROPERTIES_MAX);
	return 0;
}

json_t *hub_twin_view(const json_t *twin, const char *twin_etag, const json_t *identity,
		      const char *identity_etag, const char *module_id)
{
	_cleanup_json_ json_t *view = json_object();
	const char *type = NULL;
	json_t *v;
	static const char *const copied[] = {
	    "status",          "statusReason",     "statusUpdatedTime",
	    "connectionState", "lastActivityTime", "cloudToDeviceMessageCount"};

	if (!view)
		return NULL;
	if (json_object_set(view, "deviceId", json_object_get(identity, "deviceId")) < 0)
		return NULL;
	if (module_id && json_object_set_new(view, "moduleId", json_string(module_id)) < 0)
		return NULL;
	if (json_object_set_new(view, "etag", json_string(twin_etag ? twin_etag : "")) < 0 ||
	    json_object_set_new(view, "deviceEtag",
				json_string(identity_etag ? identity_etag : "")) < 0)
		return NULL;
	for (size_t i = 0; i < ARRAY_SIZE(copied); i++) {
		v = json_object_get(identity, copied[i]);
		/* The twin calls it statusUpdateTime. */
		if (v && json_object_set(view,
					 streq(copied[i], "statusUpdatedTime") ? "statusUpdateTime"
									       : copied[i],
					 v) < 0)
			return NULL;
	}
	(void)json_get_string_opt(identity, "authentication.type", &type, NULL);
	if (json_object_set_new(view, "authenticationType", json_string(type ? type : "sas")) < 0)
		return NULL;
	v = json_object_get(json_object_get(identity, "authentication"), "x509Thumbprint");
	if (v && json_object_set(view, "x509Thumbprint", v) < 0)
		return NULL;
	if (json_object_set_new(view, "modelId", json_string("")) < 0 ||
	    json_object_set(view, "version", json_object_get(twin, "version")) < 0)
		return NULL;
	v = json_object_get(identity, "capabilities");
	if (!module_id && v && json_object_set(view, "capabilities", v) < 0)
		return NULL;
	if (json_object_set(view, "tags", json_object_get(twin, "tags")) < 0 ||
	    json_object_set(view, "properties", json_object_get(twin, "properties")) < 0)
		return NULL;
	return TAKE_PTR(view);
}

static int identity_get(struct store *st, const char *hub, const char *device_id,
			const char *module_id, json_t **ret_doc, char **ret_etag,
			struct hub_error *he)
{
	if (module_id)
		return hub_module_get(st, hub, device_id, module_id, ret_doc, ret_etag, he);
	return hub_device_get(st, hub, device_id, ret_doc, ret_etag, he);
}

/* The stored twin, or a new one when the identity has none yet. */
static int twin_load(struct store *st, const char *hub, const char *device_id,
		     const char *module_id, json_t **ret, char **ret_etag, struct hub_error *he)
{
	struct err e = {0};
	int r;

	r = store_get(st, STORE_TWINS, STORE_KEY(hub, device_id, module_id), ret, ret_etag, &e);
	if (r == -ENOENT) {
		*ret = hub_twin_new(0);
		*ret_etag = NULL;
		return *ret ? 0 : -ENOMEM;
	}
	if (r < 0)
		return hub_fail(he, 500, "ServerError", "cannot read the twin: %s", err_msg(&e, r));
	return 0;
}

int hub_twin_get(struct store *st, const char *hub, const char *device_id, const char *module_id,
		 json_t **ret, struct hub_error *he)
{
	_cleanup_json_ json_t *identity = NULL, *twin = NULL;
	_cleanup_free_ char *ietag = NULL, *tetag = NULL;
	int r;

	*ret = NULL;
	r = identity_get(st, hub, device_id, module_id, &identity, &ietag, he);
	if (r < 0)
		return r;
	r = twin_load(st, hub, device_id, module_id, &twin, &tetag, he);
	if (r < 0)
		return r;
	*ret = hub_twin_view(twin, tetag, identity, ietag, module_id);
	return *ret ? 0 : -ENOMEM;
}

int hub_twin_update(struct store *st, const char *hub, const char *device_id, const char *module_id,
		    const json_t *body, bool replace, const char *if_match, json_t **ret,
		    struct hub_error *he)
{
	_cleanup_free_ char *want = NULL;
	bool any = true;

	if (ret)
		*ret = NULL;
	if (if_match) {
		size_t n;

		while (*if_match == ' ')
			if_match++;
		n = strlen(if_match);
		if (n >= 2 && if_match[0] == '"' && if_match[n - 1] == '"') {
			if_match++;
			n -= 2;
		}
		want = strndup(if_match, n);
		if (!want)
			return -ENOMEM;
		any = !*want || streq(want, "*");
	}
	/* Optimistic: read, change, write if nobody wrote in between. */
	for (unsigned attempt = 0; attempt < UPDATE_ATTEMPTS; attempt++) {
		_cleanup_json_ json_t *identity = NULL, *twin = NULL;
		_cleanup_free_ char *ietag = NULL, *tetag = NULL, *new_etag = NULL;
		struct err e = {0};
		int r;

		r = identity_get(st, hub, device_id, module_id, &identity, &ietag, he);
		if (r < 0)
			return r;
		r = twin_load(st, hub, device_id, module_id, &twin, &tetag, he);
		if (r < 0)
			return r;
		if (!any && (!tetag || !streq(want, tetag)))
			return hub_fail(he, 412, "PreconditionFailed",
					"the twin's etag does not match If-Match: it was changed "
					"since it was read");
		r = hub_twin_apply(twin, body, replace, 0, he);
		if (r < 0)
			return r;
		r = store_put(st,
			      &(struct store_write){.coll = STORE_TWINS,
						    .key = {{hub, device_id, module_id}},
						    .doc = twin,
						    .if_match = tetag,
						    .create_only = !tetag},
			      &new_etag, &e);
		if (r == -ESTALE || r == -EEXIST || r == -ENOENT) {
			if (!any)
				return hub_fail(he, 412, "PreconditionFailed",
						"the twin was changed since it was read");
			continue;
		}
		if (r == -E2BIG)
			return hub_fail(he, 400, "ArgumentInvalid", "the twin is too large");
		if (r < 0)
			return hub_fail(he, 500, "ServerError", "cannot write the twin: %s",
					err_msg(&e, r));
		if (ret) {
			*ret = hub_twin_view(twin, new_etag, identity, ietag, module_id);
			if (!*ret)
				return -ENOMEM;
		}
		return 0;
	}
	return hub_fail(he, 503, "ServiceUnavailable",
			"the twin is being changed by others; retry");
}
