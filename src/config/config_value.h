/* SPDX-License-Identifier: MIT */
/*
 * A small ordered value tree (tables, arrays, strings, integers, booleans,
 * floats) used to build what config apply and config show print, and to
 * keep opaque parts of config.toml (agent createOptions, network ipam).
 * Rendered as TOML or JSON. Every string is wiped when the tree is freed,
 * because generated daemon files carry secrets.
 *
 * Builders return 0 or -ENOMEM; a table keeps keys in insertion order and
 * setting an existing key replaces its value.
 */
#ifndef EDGEID_CONFIG_VALUE_H
#define EDGEID_CONFIG_VALUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/macro.h"
#include "common/toml.h"

enum config_value_type {
	CONFIG_VALUE_TABLE,
	CONFIG_VALUE_ARRAY,
	CONFIG_VALUE_STRING,
	CONFIG_VALUE_INTEGER,
	CONFIG_VALUE_BOOL,
	CONFIG_VALUE_FLOAT,
};

struct config_value;

struct config_value_kv {
	char *key;
	struct config_value *value;
};

struct config_value {
	enum config_value_type type;
	union {
		struct {
			char *ptr;
			size_t len;
		} str;
		int64_t integer;
		bool boolean;
		double flt;
		struct {
			struct config_value_kv *items;
			size_t n;
		} table;
		struct {
			struct config_value **items;
			size_t n;
		} array;
	};
};

struct config_value *config_value_new_table(void);
struct config_value *config_value_new_array(void);
/* NULL on -ENOMEM. s may contain NUL bytes (len given). */
struct config_value *config_value_new_string(const char *s, size_t len);
struct config_value *config_value_new_integer(int64_t i);
struct config_value *config_value_new_bool(bool b);
struct config_value *config_value_new_float(double d);

/* Deep copy of a TOML value; date/time values become strings. NULL on
 * -ENOMEM. */
struct config_value *config_value_from_toml(const struct toml_value *v);
/* Deep copy. */
struct config_value *config_value_dup(const struct config_value *v);

/* Insert (or replace) key in table t; takes ownership of v even on
 * failure. */
int config_value_set(struct config_value *t, const char *key, struct config_value *v) _nodiscard_;
int config_value_set_str(struct config_value *t, const char *key, const char *s) _nodiscard_;
int config_value_set_int(struct config_value *t, const char *key, int64_t i) _nodiscard_;
int config_value_set_bool(struct config_value *t, const char *key, bool b) _nodiscard_;
/* Get (or create) the subtable key of t; NULL on -ENOMEM or when key holds
 * a non-table. */
struct config_value *config_value_subtable(struct config_value *t, const char *key);
/* Append to an array; takes ownership of v even on failure. */
int config_value_push(struct config_value *a, struct config_value *v) _nodiscard_;
int config_value_push_str(struct config_value *a, const char *s) _nodiscard_;

const struct config_value *config_value_get(const struct config_value *t, const char *key);

/* Render a table as a TOML document / any value as JSON (2-space indent,
 * trailing newline). 0, -ENOMEM, -E2BIG. */
int config_value_render_toml(const struct config_value *root, struct buf *out) _nodiscard_;
int config_value_render_json(const struct config_value *v, struct buf *out) _nodiscard_;

/* Append s as a quoted string with TOML/JSON escapes (the two agree). */
int config_value_quote(struct buf *out, const char *s, size_t len) _nodiscard_;

void config_value_free(struct config_value *v);
DEFINE_CLEANUP_FUNC(struct config_value *, config_value_free)
#define _cleanup_value_ _cleanup_(config_value_freep)

#endif
