/* SPDX-License-Identifier: MIT */
/*
 * Error conventions.
 *
 * Library functions return int: 0 on success, a negative errno on failure.
 * Where the caller needs to tell a user what went wrong, the function also
 * takes a `struct err *` (may be NULL) and fills it with one sentence that
 * says what was wrong and where, e.g.
 *   config.toml:14:9: provisioning.attestation.method: expected one of ...
 * err_set() returns the code it was given, so a failure path is one line:
 *   return err_set(e, -EINVAL, "%s: expected a string", key);
 */
#ifndef EDGEID_ERR_H
#define EDGEID_ERR_H

#include <stdarg.h>
#include <stddef.h>

#include "common/macro.h"

#define ERR_MSG_MAX 1024

struct err {
	int code; /* negative errno, 0 when unset */
	char msg[ERR_MSG_MAX];
};

/* Record a message in e (when non-NULL). Returns code unchanged. A message
 * already set is kept: the innermost, most precise cause wins. */
int err_set(struct err *e, int code, const char *fmt, ...) _printf_(3, 4);
int err_setv(struct err *e, int code, const char *fmt, va_list ap) _printf_(3, 0);

/* Prefix an already-set message with "prefix: ". Returns e->code, or code
 * when e is NULL. */
int err_prefix(struct err *e, int code, const char *fmt, ...) _printf_(3, 4);

static inline void err_clear(struct err *e)
{
	if (e) {
		e->code = 0;
		e->msg[0] = '\0';
	}
}

static inline int err_isset(const struct err *e)
{
	return e && e->msg[0] != '\0';
}

/* The message, or strerror(-code) when none was recorded. Never NULL. */
const char *err_msg(const struct err *e, int code);

#endif
