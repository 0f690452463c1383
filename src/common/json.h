/* SPDX-License-Identifier: MIT */
/*
 * JSON glue over jansson: a bounded parser and typed accessors whose errors
 * name the JSON path of the offending value.
 *
 * A path is a dotted list of object keys, each optionally followed by array
 * indexes: "registrationState.assignedHub", "items[2].id", "[0].name" (the
 * document itself is an array). Keys containing '.', '[' or ']' cannot be
 * addressed this way; walk to the parent with json_get_object() and use
 * json_object_get() for those.
 *
 * Errors read like
 *   registrationState.assignedHub: expected a string, got a number
 *   registrationState: missing
 * and the return codes are the same for every accessor:
 *   -ENOENT   a value on the path is absent (array index past the end too)
 *   -EBADMSG  a value on the path has the wrong type
 *   -ERANGE   an integer outside the range the caller allows
 *   -EINVAL   the path itself is malformed, or obj is NULL (programming errors)
 *
 * Pointers returned by the accessors are borrowed: they live as long as the
 * document they were read from and must not be freed (nor json_decref'd).
 * As with jansson's json_object_get(), a const document gives non-const
 * values, so that they can be iterated with jansson's macros.
 *
 * The _opt variants treat an absent value, an absent parent and JSON null
 * (at any level) the same way: not present, return 0. A present value of
 * the wrong type is still an error.
 */
#ifndef EDGEID_JSON_H
#define EDGEID_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/macro.h"

/* Nesting allowed by json_parse() when the caller passes max_depth 0. */
#define JSON_MAX_DEPTH_DEFAULT 32
/* Largest document json_parse() accepts, in bytes. */
#define JSON_MAX_BYTES (4 * 1024 * 1024)

/* json_decrefp() comes with jansson (for its json_auto_t). */
#define _cleanup_json_ _cleanup_(json_decrefp)

/* Parse len bytes of text (need not be NUL-terminated) into *ret, which the
 * caller owns (json_decref). Any JSON value is accepted at the top level.
 * Rejects duplicate object keys, NUL characters in strings (raw or \u0000),
 * trailing bytes, nesting deeper than max_depth containers (0 means
 * JSON_MAX_DEPTH_DEFAULT) and documents over JSON_MAX_BYTES. Errors carry
 * the 1-based line:column: "invalid JSON at 1:17: ...".
 * Returns 0, -EBADMSG (invalid or too deep), -E2BIG (too large), -ENOMEM. */
int json_parse(const char *text, size_t len, size_t max_depth, json_t **ret, struct err *e);

/* Serialize without whitespace, keys in insertion order. Returns a malloc'd
 * NUL-terminated string the caller frees, or NULL on -ENOMEM or when j is
 * NULL. */
char *json_dump_compact(const json_t *j);

/* "an object", "an array", "a string", "a number", "a boolean", "null";
 * static storage. For error messages. */
const char *json_type_phrase(const json_t *j);

/* Typed accessors; see the top of this file for paths and return codes. */
int json_get_string(const json_t *obj, const char *path, const char **ret, struct err *e);
/* An integer in [min, max]; a number with a fraction or exponent is not
 * an integer. */
int json_get_int(const json_t *obj, const char *path, int64_t min, int64_t max, int64_t *ret,
		 struct err *e);
int json_get_bool(const json_t *obj, const char *path, bool *ret, struct err *e);
int json_get_object(const json_t *obj, const char *path, json_t **ret, struct err *e);
int json_get_array(const json_t *obj, const char *path, json_t **ret, struct err *e);
/* Any value, whatever its type (null included). */
int json_get_value(const json_t *obj, const char *path, json_t **ret, struct err *e);

/* Not present: *ret = NULL (pointers) or *ret = def (int, bool), return 0. */
int json_get_string_opt(const json_t *obj, const char *path, const char **ret, struct err *e);
int json_get_int_opt(const json_t *obj, const char *path, int64_t min, int64_t max, int64_t def,
		     int64_t *ret, struct err *e);
int json_get_bool_opt(const json_t *obj, const char *path, bool def, bool *ret, struct err *e);
int json_get_object_opt(const json_t *obj, const char *path, json_t **ret, struct err *e);
int json_get_array_opt(const json_t *obj, const char *path, json_t **ret, struct err *e);

#endif
