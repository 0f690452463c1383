/* SPDX-License-Identifier: MIT */
/*
 * TOML 1.0 parser (Debian ships no C one). Parses a whole document into a
 * tree that remembers where every key and value stood, so that the config
 * model can report "file:line:column: key: what was expected".
 *
 * Limits: documents up to TOML_MAX_DOCUMENT bytes, nesting up to
 * TOML_MAX_DEPTH arrays/inline tables. Input must be UTF-8.
 */
#ifndef EDGEID_TOML_H
#define EDGEID_TOML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"

#define TOML_MAX_DOCUMENT (4 * 1024 * 1024)
#define TOML_MAX_DEPTH 128

enum toml_type {
	TOML_STRING,
	TOML_INTEGER,
	TOML_FLOAT,
	TOML_BOOL,
	TOML_DATETIME,       /* offset date-time: 1979-05-27T07:32:00Z */
	TOML_DATETIME_LOCAL, /* 1979-05-27T07:32:00 */
	TOML_DATE_LOCAL,     /* 1979-05-27 */
	TOML_TIME_LOCAL,     /* 07:32:00 */
	TOML_ARRAY,
	TOML_TABLE,
};

struct toml_pos {
	unsigned line; /* 1-based */
	unsigned col;  /* 1-based, in characters (code points) */
};

struct toml_value;

struct toml_kv {
	char *key; /* UTF-8, NUL-terminated; may contain an escaped NUL, see keylen */
	size_t keylen;
	struct toml_pos key_pos; /* where the (last segment of the) key was written */
	struct toml_value *value;
};

struct toml_value {
	enum toml_type type;
	struct toml_pos pos; /* where the value starts (for tables: header or first key) */
	union {
		struct {
			char *ptr; /* NUL-terminated; may contain NUL, see len */
			size_t len;
		} str;
		int64_t integer;
		double flt;
		bool boolean;
		/* Date/time kinds: the value normalised as RFC 3339 text
		 * ('T' separator, uppercase 'Z'), e.g. "1979-05-27T07:32:00Z". */
		char *datetime;
		struct {
			struct toml_value **items;
			size_t n;
		} array;
		struct {
			struct toml_kv *items; /* in document order */
			size_t n;
		} table;
	};
};

/* Parse text (len bytes, need not be NUL-terminated). filename is used in
 * error messages only ("config.toml:3:7: expected '=' after key").
 * Returns 0 and the root table in *ret_root (free with toml_free), or
 * -EINVAL for a syntax or semantic error (message in e), -E2BIG for an
 * oversized document, -ENOMEM. On failure *ret_root is NULL.
 * Every message starts "FILENAME:LINE:COL: " (columns in characters),
 * except out of memory ("FILENAME: out of memory").
 * Strings and keys are valid UTF-8 (an escaped NUL may appear inside);
 * a CRLF inside a multi-line string is stored as LF. */
int toml_parse(const char *text, size_t len, const char *filename, struct toml_value **ret_root,
	       struct err *e);

/* Read and parse a file. Errors: those of toml_parse, plus the negative
 * errno of open/read with "PATH: cannot read: <reason>" in e. */
int toml_parse_file(const char *path, struct toml_value **ret_root, struct err *e);

/* Free a tree from toml_parse or toml_parse_file. Accepts NULL. */
void toml_free(struct toml_value *v);
static inline void toml_freep(struct toml_value **v)
{
	toml_free(*v);
}
#define _cleanup_toml_ _cleanup_(toml_freep)

/* Lookup in a table by exact key; NULL when absent or v is not a table. */
const struct toml_kv *toml_table_find(const struct toml_value *table, const char *key);
const struct toml_value *toml_table_get(const struct toml_value *table, const char *key);

/* "string", "integer", "float", "boolean", "offset date-time",
 * "local date-time", "local date", "local time", "array", "table". */
const char *toml_type_name(enum toml_type type);

/* How a value reads after "got" in an error message: strings quoted, with
 * '"' and '\\' escaped, control characters as '?', and shortened to about
 * 150 characters with "..."; other scalars as written; date/times with
 * their kind; containers as "an array" / "a table". Always NUL-terminates
 * out (n > 0). */
void toml_describe(const struct toml_value *v, char *out, size_t n);
/* The string form of toml_describe, for text a caller has already
 * rewritten (e.g. with secrets masked). */
void toml_describe_string(const char *s, size_t len, char *out, size_t n);

/* Writing TOML (for the per-daemon files config apply generates). */
/* Append s (len bytes of UTF-8, NUL allowed) as a TOML basic string, with
 * quotes and escapes for '"', '\\' and every control character. Returns 0,
 * -EINVAL when s is not valid UTF-8, -E2BIG past out's maximum, -ENOMEM;
 * on failure out is left as it was. A basic string is also a valid quoted
 * key, for keys that contain NUL. */
int toml_format_string(struct buf *out, const char *s, size_t len) _nodiscard_;
/* Append a key: bare when it is [A-Za-z0-9_-]+, quoted otherwise.
 * Returns as toml_format_string. */
int toml_format_key(struct buf *out, const char *key) _nodiscard_;

#endif
