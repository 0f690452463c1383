/* SPDX-License-Identifier: MIT */
/* The hub's entry in the edgeid-cloud runtime. See hub.h. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

#include "cloud/hub/hub.h"

int hub_fail(struct hub_error *he, int status, const char *code, const char *fmt, ...)
{
	if (he) {
		va_list ap;

		he->status = status;
		he->code = code;
		va_start(ap, fmt);
		vsnprintf(he->message, sizeof(he->message), fmt, ap);
		va_end(ap);
	}
	switch (status) {
	case 400:
		return -EINVAL;
	case 401:
		return -EACCES;
	case 404:
		return -ENOENT;
	case 409:
		return -EEXIST;
	case 412:
		return -ESTALE;
	case 413:
		return -E2BIG;
	default:
		return -EIO;
	}
}

static int hub_worker_init(struct cloud_worker *w, const void *settings, void **ret_state,
			   struct err *e)
{
	struct hub_worker *hw = NULL;
	int r;

	r = hub_http_init(w, settings, &hw, e);
	if (r < 0)
		return r;
	*ret_state = hw;
	return 0;
}

static void hub_worker_free(void *state)
{
	hub_http_free(state);
}

const struct cloud_service cloud_service_hub = {
    .name = "hub",
    .config_parse = hub_config_parse,
    .config_free = hub_config_free,
    .worker_init = hub_worker_init,
    .worker_free = hub_worker_free,
    .admin_nouns = hub_admin_nouns,
};
