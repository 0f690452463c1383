/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <string.h>

#include "common/err.h"

int err_setv(struct err *e, int code, const char *fmt, va_list ap)
{
	if (!e || e->msg[0] != '\0')
		return code;
	e->code = code;
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	return code;
}

int err_set(struct err *e, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	err_setv(e, code, fmt, ap);
	va_end(ap);
	return code;
}

int err_prefix(struct err *e, int code, const char *fmt, ...)
{
	char prefix[ERR_MSG_MAX], joined[2 * ERR_MSG_MAX + 2];
	va_list ap;

	if (!e)
		return code;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	if (e->msg[0] == '\0') {
		e->code = code;
		snprintf(e->msg, sizeof(e->msg), "%s", prefix);
		return code;
	}
	snprintf(joined, sizeof(joined), "%s: %s", prefix, e->msg);
	/* Truncate to the message size; a long chain keeps its start. */
	joined[sizeof(e->msg) - 1] = '\0';
	memcpy(e->msg, joined, sizeof(e->msg));
	return e->code;
}

const char *err_msg(const struct err *e, int code)
{
	if (e && e->msg[0] != '\0')
		return e->msg;
	return strerror(code < 0 ? -code : code);
}
