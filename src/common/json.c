/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"

/* Shown for a type error on the document itself, whose path is empty. */
#define JSON_ROOT_NAME "JSON document"

const char *json_type_phrase(const json_t *j)
{
	switch (json_typeof(j)) {
	case JSON_OBJECT:
		return "an object";
	case JSON_ARRAY:
		return "an array";
	case JSON_STRING:
		return "a string";
	case JSON_INTEGER:
	case JSON_REAL:
		return "a number";
	case JSON_TRUE:
	case JSON_FALSE:
		return "a boolean";
	case JSON_NULL:
		return "null";
	}
	return "an unknown value";
}

/* Count the containers opening before each byte, outside strings, so that
 * jansson (which recurses) never sees a document nested deeper than the
 * caller allows. Lines and columns are counted as jansson counts them:
 * 1-based, a column per UTF-8 character. */
static int json_check_depth(const char *text, size_t len, size_t max_depth, struct err *e)
{
	size_t depth = 0, line = 1, column = 0;
	bool in_string = false, escaped = false;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)text[i];

		if (c == '\n') {
			line++;
			column = 0;
		} else if ((c & 0xc0) != 0x80) {
			column++;
		}
		if (in_string) {
			if (escaped)
				escaped = false;
			else if (c == '\\')
				escaped = true;
			else if (c == '"')
				in_string = false;
			continue;
		}
		switch (c) {
		case '"':
			in_string = true;
			break;
		case '[':
		case '{':
			if (++depth > max_depth)
				return err_set(
				    e, -EBADMSG,
				    "invalid JSON at %zu:%zu: nested deeper than %zu levels", line,
				    column, max_depth);
			break;
		case ']':
		case '}':
			if (depth > 0)
				depth--;
			break;
		default:
			break;
		}
	}
	return 0;
}

int json_parse(const char *text, size_t len, size_t max_depth, json_t **ret, struct err *e)
{
	json_error_t jerr;
	json_t *j;
	int r;

	if (len > JSON_MAX_BYTES)
		return err_set(e, -E2BIG, "JSON document too large: %zu bytes, at most %d", len,
			       JSON_MAX_BYTES);
	if (!text)
		text = "";
	if (max_depth == 0)
		max_depth = JSON_MAX_DEPTH_DEFAULT;
	r = json_check_depth(text, len, max_depth, e);
	if (r < 0)
		return r;

	/* Without JSON_ALLOW_NUL jansson rejects \u0000; a raw NUL byte is a
	 * control character, which it rejects anywhere. */
	j = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (!j) {
		const char *why = jerr.text;

		if (json_error_code(&jerr) == json_error_out_of_memory)
			return -ENOMEM;
		if (len == 0)
			return err_set(e, -EBADMSG, "invalid JSON: empty document");
		/* jansson's own wording names its flag; say what is wrong. */
		if (json_error_code(&jerr) == json_error_null_character)
			why = "NUL character (\\u0000) in a string";
		return err_set(e, -EBADMSG, "invalid JSON at %d:%d: %s", jerr.line, jerr.column,
			       why);
	}
	*ret = j;
	return 0;
}

char *json_dump_compact(const json_t *j)
{
	if (!j)
		return NULL;
	return json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
}

/* The path up to (not including) offset end, for messages. */
#define PATH_FMT "%.*s"
#define PATH_ARG(path, end) (int)(end), (path)

static int json_type_error(const char *path, size_t end, const char *expected, const json_t *got,
			   struct err *e)
{
	if (end == 0)
		return err_set(e, -EBADMSG, JSON_ROOT_NAME ": expected %s, got %s", expected,
			       json_type_phrase(got));
	return err_set(e, -EBADMSG, PATH_FMT ": expected %s, got %s", PATH_ARG(path, end), expected,
		       json_type_phrase(got));
}

static int json_bad_path(const char *path, struct err *e)
{
	return err_set(e, -EINVAL, "invalid JSON path \"%s\"", strempty(path));
}

/* The path grammar, checked before any lookup so that a malformed path is
 * reported as such whatever the document holds:
 *   path    = segment *("." segment)
 *   segment = key *index, or (first segment only) 1*index
 *   key     = 1*(any character but ".", "[", "]")
 *   index   = "[" 1*DIGIT "]"    (fits in size_t) */
static bool json_path_valid(const char *path)
{
	const char *p = path;

	if (!path || *path == '\0')
		return false;
	for (;;) {
		size_t klen = strcspn(p, ".[]");

		if (klen == 0 && (p != path || *p != '['))
			return false;
		p += klen;
		while (*p == '[') {
			size_t idx = 0;

			p++;
			if (*p < '0' || *p > '9')
				return false;
			for (; *p >= '0' && *p <= '9'; p++) {
				if (idx > (SIZE_MAX - 9) / 10)
					return false;
				idx = idx * 10 + (size_t)(*p - '0');
			}
			if (*p != ']')
				return false;
			p++;
		}
		if (*p == '\0')
			return true;
		if (*p != '.')
			return false;
		p++;
	}
}

/*
 * Follow path from root. On success *ret is the value, or NULL when
 * optional and the value (or a parent) is absent or null.
 */
static int json_walk(const json_t *root, const char *path, bool optional, json_t **ret,
		     struct err *e)
{
	json_t *cur = (json_t *)root;
	const char *p = path;

	if (!root)
		return err_set(e, -EINVAL, "no JSON document");
	if (!json_path_valid(path))
		return json_bad_path(path, e);

	/* The syntax is valid from here on: no checks but the document's. */
	for (;;) {
		size_t klen = strcspn(p, ".[]");

		if (klen > 0) {
			_cleanup_free_ char *key = NULL;

			if (optional && json_is_null(cur))
				goto absent;
			if (!json_is_object(cur))
				return json_type_error(path, p == path ? 0 : (size_t)(p - path) - 1,
						       "an object", cur, e);
			key = strndup(p, klen);
			if (!key)
				return -ENOMEM;
			cur = json_object_get(cur, key);
			p += klen;
			if (!cur) {
				if (optional)
					goto absent;
				return err_set(e, -ENOENT, PATH_FMT ": missing",
					       PATH_ARG(path, p - path));
			}
		}

		while (*p == '[') {
			const char *open = p;
			size_t idx = 0;

			for (p++; *p != ']'; p++)
				idx = idx * 10 + (size_t)(*p - '0');
			p++;
			if (optional && json_is_null(cur))
				goto absent;
			if (!json_is_array(cur))
				return json_type_error(path, (size_t)(open - path), "an array", cur,
						       e);
			cur = json_array_get(cur, idx);
			if (!cur) {
				if (optional)
					goto absent;
				return err_set(e, -ENOENT, PATH_FMT ": missing",
					       PATH_ARG(path, p - path));
			}
		}

		if (*p == '\0')
			break;
		p++; /* '.' */
	}

	if (optional && json_is_null(cur))
		goto absent;
	*ret = cur;
	return 0;

absent:
	*ret = NULL;
	return 0;
}

static int json_expect(const char *path, const json_t *v, json_type type, struct err *e)
{
	static const char *const names[] = {
	    [JSON_OBJECT] = "an object",   [JSON_ARRAY] = "an array", [JSON_STRING] = "a string",
	    [JSON_INTEGER] = "an integer", [JSON_REAL] = "a number",  [JSON_TRUE] = "a boolean",
	    [JSON_FALSE] = "a boolean",    [JSON_NULL] = "null",
	};
	bool ok;

	if (type == JSON_TRUE || type == JSON_FALSE)
		ok = json_is_boolean(v);
	else
		ok = json_typeof(v) == type;
	if (ok)
		return 0;
	if (type == JSON_INTEGER && json_is_real(v))
		return err_set(e, -EBADMSG, "%s: expected an integer, got %.17g", path,
			       json_real_value(v));
	return json_type_error(path, strlen(path), names[type], v, e);
}

static int json_get_typed(const json_t *obj, const char *path, json_type type, bool optional,
			  json_t **ret, struct err *e)
{
	json_t *v = NULL;
	int r;

	r = json_walk(obj, path, optional, &v, e);
	if (r < 0)
		return r;
	if (v) {
		r = json_expect(path, v, type, e);
		if (r < 0)
			return r;
	}
	*ret = v;
	return 0;
}

static int json_string_checked(const char *path, const json_t *v, const char **ret, struct err *e)
{
	const char *s = json_string_value(v);

	/* Parsed documents never hold NUL, but built ones can (json_stringn). */
	if (strlen(s) != json_string_length(v))
		return err_set(e, -EBADMSG, "%s: string contains a NUL character", path);
	*ret = s;
	return 0;
}

int json_get_string(const json_t *obj, const char *path, const char **ret, struct err *e)
{
	json_t *v;
	int r = json_get_typed(obj, path, JSON_STRING, false, &v, e);

	if (r < 0)
		return r;
	return json_string_checked(path, v, ret, e);
}

int json_get_string_opt(const json_t *obj, const char *path, const char **ret, struct err *e)
{
	json_t *v;
	int r = json_get_typed(obj, path, JSON_STRING, true, &v, e);

	if (r < 0)
		return r;
	if (!v) {
		*ret = NULL;
		return 0;
	}
	return json_string_checked(path, v, ret, e);
}

static int json_int_checked(const char *path, const json_t *v, int64_t min, int64_t max,
			    int64_t *ret, struct err *e)
{
	json_int_t n = json_integer_value(v);

	if (n < min || n > max)
		return err_set(e, -ERANGE,
			       "%s: expected an integer from %" PRId64 " to %" PRId64
			       ", got %" JSON_INTEGER_FORMAT,
			       path, min, max, n);
	*ret = (int64_t)n;
	return 0;
}

int json_get_int(const json_t *obj, const char *path, int64_t min, int64_t max, int64_t *ret,
		 struct err *e)
{
	json_t *v;
	int r = json_get_typed(obj, path, JSON_INTEGER, false, &v, e);

	if (r < 0)
		return r;
	return json_int_checked(path, v, min, max, ret, e);
}

int json_get_int_opt(const json_t *obj, const char *path, int64_t min, int64_t max, int64_t def,
		     int64_t *ret, struct err *e)
{
	json_t *v;
	int r = json_get_typed(obj, path, JSON_INTEGER, true, &v, e);

	if (r < 0)
		return r;
	if (!v) {
		*ret = def;
		return 0;
	}
	return json_int_checked(path, v, min, max, ret, e);
}

int json_get_bool(const json_t *obj, const char *path, bool *ret, struct err *e)
{
	json_t *v;
	int r = json_get_typed(obj, path, JSON_TRUE, false, &v, e);

	if (r < 0)
		return r;
	*ret = json_is_true(v);
	return 0;
}

int json_get_bool_opt(const json_t *obj, const char *path, bool def, bool *ret, struct err *e)
{
	json_t *v;
	int r = json_get_typed(obj, path, JSON_TRUE, true, &v, e);

	if (r < 0)
		return r;
	*ret = v ? json_is_true(v) : def;
	return 0;
}

int json_get_object(const json_t *obj, const char *path, json_t **ret, struct err *e)
{
	return json_get_typed(obj, path, JSON_OBJECT, false, ret, e);
}

int json_get_object_opt(const json_t *obj, const char *path, json_t **ret, struct err *e)
{
	return json_get_typed(obj, path, JSON_OBJECT, true, ret, e);
}

int json_get_array(const json_t *obj, const char *path, json_t **ret, struct err *e)
{
	return json_get_typed(obj, path, JSON_ARRAY, false, ret, e);
}

int json_get_array_opt(const json_t *obj, const char *path, json_t **ret, struct err *e)
{
	return json_get_typed(obj, path, JSON_ARRAY, true, ret, e);
}

int json_get_value(const json_t *obj, const char *path, json_t **ret, struct err *e)
{
	return json_walk(obj, path, false, ret, e);
}
