/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config_value.h"

static struct config_value *value_new(enum config_value_type type)
{
	struct config_value *v = calloc(1, sizeof(*v));

	if (v)
		v->type = type;
	return v;
}

struct config_value *config_value_new_table(void)
{
	return value_new(CONFIG_VALUE_TABLE);
}

struct config_value *config_value_new_array(void)
{
	return value_new(CONFIG_VALUE_ARRAY);
}

struct config_value *config_value_new_string(const char *s, size_t len)
{
	struct config_value *v = value_new(CONFIG_VALUE_STRING);

	if (!v)
		return NULL;
	v->str.ptr = malloc(len + 1);
	if (!v->str.ptr) {
		free(v);
		return NULL;
	}
	if (len)
		memcpy(v->str.ptr, s, len);
	v->str.ptr[len] = '\0';
	v->str.len = len;
	return v;
}

struct config_value *config_value_new_integer(int64_t i)
{
	struct config_value *v = value_new(CONFIG_VALUE_INTEGER);

	if (v)
		v->integer = i;
	return v;
}

struct config_value *config_value_new_bool(bool b)
{
	struct config_value *v = value_new(CONFIG_VALUE_BOOL);

	if (v)
		v->boolean = b;
	return v;
}

struct config_value *config_value_new_float(double d)
{
	struct config_value *v = value_new(CONFIG_VALUE_FLOAT);

	if (v)
		v->flt = d;
	return v;
}

void config_value_free(struct config_value *v)
{
	if (!v)
		return;
	switch (v->type) {
	case CONFIG_VALUE_STRING:
		if (v->str.ptr) {
			explicit_bzero(v->str.ptr, v->str.len);
			free(v->str.ptr);
		}
		break;
	case CONFIG_VALUE_TABLE:
		for (size_t i = 0; i < v->table.n; i++) {
			free(v->table.items[i].key);
			config_value_free(v->table.items[i].value);
		}
		free(v->table.items);
		break;
	case CONFIG_VALUE_ARRAY:
		for (size_t i = 0; i < v->array.n; i++)
			config_value_free(v->array.items[i]);
		free(v->array.items);
		break;
	default:
		break;
	}
	free(v);
}

int config_value_set(struct config_value *t, const char *key, struct config_value *v)
{
	struct config_value_kv *items;
	char *k;

	if (!t || !v || t->type != CONFIG_VALUE_TABLE) {
		config_value_free(v);
		return -ENOMEM;
	}
	for (size_t i = 0; i < t->table.n; i++)
		if (streq(t->table.items[i].key, key)) {
			config_value_free(t->table.items[i].value);
			t->table.items[i].value = v;
			return 0;
		}
	k = strdup(key);
	items = k ? reallocarray(t->table.items, t->table.n + 1, sizeof(*items)) : NULL;
	if (!items) {
		free(k);
		config_value_free(v);
		return -ENOMEM;
	}
	t->table.items = items;
	items[t->table.n].key = k;
	items[t->table.n].value = v;
	t->table.n++;
	return 0;
}

int config_value_set_str(struct config_value *t, const char *key, const char *s)
{
	return config_value_set(t, key, config_value_new_string(s, strlen(s)));
}

int config_value_set_int(struct config_value *t, const char *key, int64_t i)
{
	return config_value_set(t, key, config_value_new_integer(i));
}

int config_value_set_bool(struct config_value *t, const char *key, bool b)
{
	return config_value_set(t, key, config_value_new_bool(b));
}

const struct config_value *config_value_get(const struct config_value *t, const char *key)
{
	if (!t || t->type != CONFIG_VALUE_TABLE)
		return NULL;
	for (size_t i = 0; i < t->table.n; i++)
		if (streq(t->table.items[i].key, key))
			return t->table.items[i].value;
	return NULL;
}

struct config_value *config_value_subtable(struct config_value *t, const char *key)
{
	struct config_value *sub = (struct config_value *)config_value_get(t, key);

	if (sub)
		return sub->type == CONFIG_VALUE_TABLE ? sub : NULL;
	sub = config_value_new_table();
	if (config_value_set(t, key, sub) < 0)
		return NULL;
	return sub;
}

int config_value_push(struct config_value *a, struct config_value *v)
{
	struct config_value **items;

	if (!a || !v || a->type != CONFIG_VALUE_ARRAY) {
		config_value_free(v);
		return -ENOMEM;
	}
	items = reallocarray(a->array.items, a->array.n + 1, sizeof(*items));
	if (!items) {
		config_value_free(v);
		return -ENOMEM;
	}
	a->array.items = items;
	items[a->array.n++] = v;
	return 0;
}

int config_value_push_str(struct config_value *a, const char *s)
{
	return config_value_push(a, config_value_new_string(s, strlen(s)));
}

struct config_value *config_value_from_toml(const struct toml_value *t)
{
	struct config_value *v = NULL;

	switch (t->type) {
	case TOML_STRING:
		return config_value_new_string(t->str.ptr, t->str.len);
	case TOML_INTEGER:
		return config_value_new_integer(t->integer);
	case TOML_FLOAT:
		return config_value_new_float(t->flt);
	case TOML_BOOL:
		return config_value_new_bool(t->boolean);
	case TOML_DATETIME:
	case TOML_DATETIME_LOCAL:
	case TOML_DATE_LOCAL:
	case TOML_TIME_LOCAL:
		return config_value_new_string(t->datetime, strlen(t->datetime));
	case TOML_ARRAY:
		v = config_value_new_array();
		for (size_t i = 0; v && i < t->array.n; i++)
			if (config_value_push(v, config_value_from_toml(t->array.items[i])) < 0) {
				config_value_free(v);
				return NULL;
			}
		return v;
	case TOML_TABLE:
		v = config_value_new_table();
		for (size_t i = 0; v && i < t->table.n; i++)
			if (config_value_set(v, t->table.items[i].key,
					     config_value_from_toml(t->table.items[i].value)) < 0) {
				config_value_free(v);
				return NULL;
			}
		return v;
	}
	return NULL;
}

struct config_value *config_value_dup(const struct config_value *s)
{
	struct config_value *v = NULL;

	switch (s->type) {
	case CONFIG_VALUE_STRING:
		return config_value_new_string(s->str.ptr, s->str.len);
	case CONFIG_VALUE_INTEGER:
		return config_value_new_integer(s->integer);
	case CONFIG_VALUE_FLOAT:
		return config_value_new_float(s->flt);
	case CONFIG_VALUE_BOOL:
		return config_value_new_bool(s->boolean);
	case CONFIG_VALUE_ARRAY:
		v = config_value_new_array();
		for (size_t i = 0; v && i < s->array.n; i++)
			if (config_value_push(v, config_value_dup(s->array.items[i])) < 0) {
				config_value_free(v);
				return NULL;
			}
		return v;
	case CONFIG_VALUE_TABLE:
		v = config_value_new_table();
		for (size_t i = 0; v && i < s->table.n; i++)
			if (config_value_set(v, s->table.items[i].key,
					     config_value_dup(s->table.items[i].value)) < 0) {
				config_value_free(v);
				return NULL;
			}
		return v;
	}
	return NULL;
}

/* ---- rendering ------------------------------------------------------- */

int config_value_quote(struct buf *out, const char *s, size_t len)
{
	int r = buf_putc(out, '"');

	for (size_t i = 0; r == 0 && i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		switch (c) {
		case '"':
			r = buf_append_str(out, "\\\"");
			break;
		case '\\':
			r = buf_append_str(out, "\\\\");
			break;
		case '\b':
			r = buf_append_str(out, "\\b");
			break;
		case '\t':
			r = buf_append_str(out, "\\t");
			break;
		case '\n':
			r = buf_append_str(out, "\\n");
			break;
		case '\f':
			r = buf_append_str(out, "\\f");
			break;
		case '\r':
			r = buf_append_str(out, "\\r");
			break;
		default:
			if (c < 0x20 || c == 0x7f)
				r = buf_printf(out, "\\u%04x", c);
			else
				r = buf_putc(out, (char)c);
		}
	}
	return r < 0 ? r : buf_putc(out, '"');
}

static bool key_is_bare(const char *k)
{
	if (!*k)
		return false;
	for (; *k; k++)
		if (!((*k >= 'A' && *k <= 'Z') || (*k >= 'a' && *k <= 'z') ||
		      (*k >= '0' && *k <= '9') || *k == '_' || *k == '-'))
			return false;
	return true;
}

static int toml_key(struct buf *out, const char *k)
{
	if (key_is_bare(k))
		return buf_append_str(out, k);
	return config_value_quote(out, k, strlen(k));
}

static int render_float(struct buf *out, double d, bool json)
{
	char tmp[64];

	if (isnan(d))
		return buf_append_str(out, json ? "null" : "nan");
	if (isinf(d))
		return buf_append_str(out, json ? "null" : (d < 0 ? "-inf" : "inf"));
	snprintf(tmp, sizeof(tmp), "%.17g", d);
	if (!strpbrk(tmp, ".eE"))
		return buf_printf(out, "%s.0", tmp);
	return buf_append_str(out, tmp);
}

static bool is_array_of_tables(const struct config_value *v)
{
	if (v->type != CONFIG_VALUE_ARRAY || v->array.n == 0)
		return false;
	for (size_t i = 0; i < v->array.n; i++)
		if (v->array.items[i]->type != CONFIG_VALUE_TABLE)
			return false;
	return true;
}

static int toml_inline(struct buf *out, const struct config_value *v)
{
	int r = 0;

	switch (v->type) {
	case CONFIG_VALUE_STRING:
		return config_value_quote(out, v->str.ptr, v->str.len);
	case CONFIG_VALUE_INTEGER:
		return buf_printf(out, "%" PRId64, v->integer);
	case CONFIG_VALUE_BOOL:
		return buf_append_str(out, v->boolean ? "true" : "false");
	case CONFIG_VALUE_FLOAT:
		return render_float(out, v->flt, false);
	case CONFIG_VALUE_ARRAY:
		r = buf_putc(out, '[');
		for (size_t i = 0; r == 0 && i < v->array.n; i++) {
			if (i)
				r = buf_append_str(out, ", ");
			if (r == 0)
				r = toml_inline(out, v->array.items[i]);
		}
		return r < 0 ? r : buf_putc(out, ']');
	case CONFIG_VALUE_TABLE:
		if (v->table.n == 0)
			return buf_append_str(out, "{}");
		r = buf_append_str(out, "{ ");
		for (size_t i = 0; r == 0 && i < v->table.n; i++) {
			if (i)
				r = buf_append_str(out, ", ");
			if (r == 0)
				r = toml_key(out, v->table.items[i].key);
			if (r == 0)
				r = buf_append_str(out, " = ");
			if (r == 0)
				r = toml_inline(out, v->table.items[i].value);
		}
		return r < 0 ? r : buf_append_str(out, " }");
	}
	return -EINVAL;
}

static int toml_path(const char *prefix, const char *key, struct buf *ret_path)
{
	int r = 0;

	if (prefix && *prefix) {
		r = buf_append_str(ret_path, prefix);
		if (r == 0)
			r = buf_putc(ret_path, '.');
	}
	if (r == 0)
		r = toml_key(ret_path, key);
	return r;
}

/* The blank line before a [header], unless the output starts or already
 * ends with one. */
static const char *header_sep(const struct buf *out)
{
	if (out->len == 0 ||
	    (out->len >= 2 && out->data[out->len - 1] == '\n' && out->data[out->len - 2] == '\n'))
		return "";
	return "\n";
}

/* The body of table t whose header path is prefix ("" for the root). */
static int toml_body(struct buf *out, const struct config_value *t, const char *prefix)
{
	int r = 0;

	for (size_t i = 0; r == 0 && i < t->table.n; i++) {
		const struct config_value *v = t->table.items[i].value;

		if (v->type == CONFIG_VALUE_TABLE || is_array_of_tables(v))
			continue;
		r = toml_key(out, t->table.items[i].key);
		if (r == 0)
			r = buf_append_str(out, " = ");
		if (r == 0)
			r = toml_inline(out, v);
		if (r == 0)
			r = buf_putc(out, '\n');
	}
	for (size_t i = 0; r == 0 && i < t->table.n; i++) {
		const struct config_value *v = t->table.items[i].value;
		_cleanup_buf_ struct buf path = {0};
		bool has_plain = false;

		if (v->type != CONFIG_VALUE_TABLE && !is_array_of_tables(v))
			continue;
		buf_init(&path, 0);
		r = toml_path(prefix, t->table.items[i].key, &path);
		if (r < 0)
			break;
		if (v->type == CONFIG_VALUE_TABLE) {
			for (size_t j = 0; j < v->table.n; j++) {
				const struct config_value *c = v->table.items[j].value;

				if (c->type != CONFIG_VALUE_TABLE && !is_array_of_tables(c))
					has_plain = true;
			}
			/* A table holding only subtables needs no header of its own. */
			if (has_plain || v->table.n == 0)
				r = buf_printf(out, "%s[%s]\n", header_sep(out), buf_str(&path));
			if (r == 0)
				r = toml_body(out, v, buf_str(&path));
			continue;
		}
		for (size_t j = 0; r == 0 && j < v->array.n; j++) {
			r = buf_printf(out, "%s[[%s]]\n", header_sep(out), buf_str(&path));
			if (r == 0)
				r = toml_body(out, v->array.items[j], buf_str(&path));
		}
	}
	return r;
}

int config_value_render_toml(const struct config_value *root, struct buf *out)
{
	if (root->type != CONFIG_VALUE_TABLE)
		return -EINVAL;
	return toml_body(out, root, "");
}

static int json_indent(struct buf *out, unsigned depth)
{
	int r = 0;

	for (unsigned i = 0; r == 0 && i < depth; i++)
		r = buf_append_str(out, "  ");
	return r;
}

static int json_value(struct buf *out, const struct config_value *v, unsigned depth)
{
	int r = 0;

	switch (v->type) {
	case CONFIG_VALUE_STRING:
		return config_value_quote(out, v->str.ptr, v->str.len);
	case CONFIG_VALUE_INTEGER:
		return buf_printf(out, "%" PRId64, v->integer);
	case CONFIG_VALUE_BOOL:
		return buf_append_str(out, v->boolean ? "true" : "false");
	case CONFIG_VALUE_FLOAT:
		return render_float(out, v->flt, true);
	case CONFIG_VALUE_ARRAY:
		if (v->array.n == 0)
			return buf_append_str(out, "[]");
		r = buf_append_str(out, "[\n");
		for (size_t i = 0; r == 0 && i < v->array.n; i++) {
			r = json_indent(out, depth + 1);
			if (r == 0)
				r = json_value(out, v->array.items[i], depth + 1);
			if (r == 0)
				r = buf_append_str(out, i + 1 < v->array.n ? ",\n" : "\n");
		}
		if (r == 0)
			r = json_indent(out, depth);
		return r < 0 ? r : buf_putc(out, ']');
	case CONFIG_VALUE_TABLE:
		if (v->table.n == 0)
			return buf_append_str(out, "{}");
		r = buf_append_str(out, "{\n");
		for (size_t i = 0; r == 0 && i < v->table.n; i++) {
			const char *k = v->table.items[i].key;

			r = json_indent(out, depth + 1);
			if (r == 0)
				r = config_value_quote(out, k, strlen(k));
			if (r == 0)
				r = buf_append_str(out, ": ");
			if (r == 0)
				r = json_value(out, v->table.items[i].value, depth + 1);
			if (r == 0)
				r = buf_append_str(out, i + 1 < v->table.n ? ",\n" : "\n");
		}
		if (r == 0)
			r = json_indent(out, depth);
		return r < 0 ? r : buf_putc(out, '}');
	}
	return -EINVAL;
}

int config_value_render_json(const struct config_value *v, struct buf *out)
{
	int r = json_value(out, v, 0);

	return r < 0 ? r : buf_putc(out, '\n');
}
