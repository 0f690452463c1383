/* SPDX-License-Identifier: MIT */
/*
 * A daemon's configuration, read the way aziot's config-common does:
 *
 *   1. config.toml; a missing file is an empty table;
 *   2. every regular file whose name ends in ".toml" directly inside the
 *      config directory (symlinks and subdirectories are skipped), sorted
 *      by name, merged in that order: tables merge key by key, recursively;
 *      arrays are concatenated (so [[principal]] entries accumulate);
 *      any other value, or two values of different types, the later file
 *      wins. A missing directory is no files.
 *
 * The merged document is held as JSON (jansson) so the typed accessors of
 * common/json.h work on it; every value still knows the file, line and
 * column it was written at, and the accessors below put that in front of
 * their errors: "/etc/aziot/keyd/config.d/00-super.toml:4:7:
 * max_requests: expected an integer, got a string".
 *
 * TOML dates and times become strings. Strings and keys containing NUL
 * and non-finite floats are rejected.
 */
#ifndef EDGEID_DEVICE_DAEMON_CONFIG_H
#define EDGEID_DEVICE_DAEMON_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "common/err.h"

struct daemon_config;

/* Load file (need not exist) merged with dir (may be NULL; need not
 * exist). Returns 0 and *ret (free with daemon_config_free), or -EINVAL
 * (syntax errors, "FILE:LINE:COL: ..."), -E2BIG, -ENOMEM, or the errno of
 * reading a file or the directory, with a sentence in e. */
int daemon_config_load(const char *file, const char *dir, struct daemon_config **ret,
		       struct err *e);

/* The same from texts in memory, merged in the order given; names[i] is
 * used in messages. For tests and `--check` of proposed files. */
int daemon_config_load_texts(const char *const *names, const char *const *texts, size_t n,
			     struct daemon_config **ret, struct err *e);

void daemon_config_free(struct daemon_config *c);
static inline void daemon_config_freep(struct daemon_config **c)
{
	daemon_config_free(*c);
}
#define _cleanup_daemon_config_ _cleanup_(daemon_config_freep)

/* The merged document (an object). Borrowed. */
json_t *daemon_config_root(const struct daemon_config *c);

/* The files that were read, in merge order (the main file first, when it
 * existed). */
size_t daemon_config_n_files(const struct daemon_config *c);
const char *daemon_config_file(const struct daemon_config *c, size_t i);

/* Where v was written, as "FILE:LINE:COL", into buf (n bytes). Returns
 * buf, or NULL when v is not a value of c (or a boolean, whose JSON
 * values are shared). */
const char *daemon_config_where(const struct daemon_config *c, const json_t *v, char *buf,
				size_t n);

/* Typed accessors on the merged document with common/json.h paths
 * ("aziot_keys.homedir_path", "principal[2].uid") and return codes; the
 * _opt ones treat an absent value as "not set" (0, *ret NULL or def).
 * Errors carry the location of the offending value when it has one. */
int daemon_config_get_string_opt(const struct daemon_config *c, const char *path, const char **ret,
				 struct err *e);
int daemon_config_get_int_opt(const struct daemon_config *c, const char *path, int64_t min,
			      int64_t max, int64_t def, int64_t *ret, struct err *e);
int daemon_config_get_object_opt(const struct daemon_config *c, const char *path, json_t **ret,
				 struct err *e);
int daemon_config_get_array_opt(const struct daemon_config *c, const char *path, json_t **ret,
				struct err *e);

/* Set e to "<where v is>: <path>: <printf>" (or "<path>: ..." when v has
 * no location) and return code. */
int daemon_config_error(const struct daemon_config *c, const json_t *v, const char *path,
			struct err *e, int code, const char *fmt, ...) _printf_(6, 7);

#endif
