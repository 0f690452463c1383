/* SPDX-License-Identifier: MIT */
/* What daemon.c and request.c share; not for the daemons themselves. */
#ifndef EDGEID_DEVICE_DAEMON_PRIVATE_H
#define EDGEID_DEVICE_DAEMON_PRIVATE_H

#include "device/daemon/daemon.h"

struct daemon {
	const struct daemon_spec *spec;
	struct event_base *base;
	struct http_server *srv;
	struct daemon_config *config;
	struct daemon_principals principals;
	char *root; /* NULL: "/" */
	void *state;
};

/* The catch-all http_handler_fn that runs aziot's request rules and the
 * spec's routes; userdata is the struct daemon. */
int daemon_dispatch(struct http_request *hreq, void *userdata);

#endif
