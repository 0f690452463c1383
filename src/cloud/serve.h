/* SPDX-License-Identifier: MIT */
/*
 * edgeid-cloud serve: the supervising parent and its worker processes.
 *
 * The parent checks everything it can before it forks (the store opens,
 * every certificate and key loads, every listening address is free), then
 * starts `workers` processes per service. Each worker opens its own store
 * handle, event loop and HTTP server, binds every address of its service
 * with SO_REUSEPORT, calls the service's worker_init and reports "ready"
 * through a pipe. When every worker of a service is ready, the parent
 * prints one line on stdout:
 *   edgeid-cloud: hub ready on 127.0.0.3:443 (2 workers)
 * A worker that dies is restarted with a growing delay (100 ms doubling to
 * 10 s; back to 100 ms after it has run for 10 s); SIGTERM or SIGINT is
 * forwarded to every worker, and the parent exits 0 once all have exited
 * (those still running after 10 s are killed).
 */
#ifndef EDGEID_CLOUD_SERVE_H
#define EDGEID_CLOUD_SERVE_H

#include "cloud/cloud.h"

/* Serve every service of s until SIGTERM/SIGINT. pid_file (may be NULL)
 * is written once every service is ready and removed at exit. Returns 0
 * after a clean shutdown, or a negative errno with one sentence in e when
 * serving could not start (nothing was left running). */
int cloud_serve(const struct cloud_setup *s, const char *pid_file, struct err *e);

#endif
