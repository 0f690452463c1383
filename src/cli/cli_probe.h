/* SPDX-License-Identifier: MIT */
/*
 * Looking at the device daemons from the command line, shared by
 * `edgeid system` and `edgeid check`: where a daemon's socket is, whether
 * it answers there, and running a helper program (systemctl, edgeidd
 * --check, timedatectl) to read what it prints.
 */
#ifndef EDGEID_CLI_PROBE_H
#define EDGEID_CLI_PROBE_H

#include <jansson.h>

#include "common/buf.h"
#include "common/err.h"

/* How long one probe of a daemon's socket may take. */
#define CLI_PROBE_TIMEOUT_MS 3000

/* The socket of the device daemon called name ("keyd"):
 * ROOT/run/aziot/NAME.sock, or /run/aziot/NAME.sock when root is NULL.
 * Returns a string the caller frees, or NULL when out of memory. */
char *cli_probe_socket_path(const char *root, const char *name);

/* Does something answer HTTP on the unix socket at sock? Sends GET target
 * ("/", or a status call with its api-version); any answer counts (the
 * daemons answer 400 to a request without api-version). With ret_body, a
 * 200 answer whose body is a JSON object is put there for the caller to
 * json_decref (NULL otherwise). Returns 0, or the negative errno of
 * http_client_perform() with its sentence in e: -ENOENT or -ECONNREFUSED
 * when nothing listens, -EACCES when the caller may not connect,
 * -ETIMEDOUT after CLI_PROBE_TIMEOUT_MS. */
int cli_probe_socket(const char *sock, const char *target, json_t **ret_body, struct err *e);

/* The root directory the command works under: opt (--root) when given,
 * else $EDGEID_ROOT, made absolute. *ret is NULL for "/" or none, else a
 * string the caller frees. Returns 0 or -ENOMEM (also when the current
 * directory cannot be read for a relative path). */
int cli_probe_root(const char *opt, char **ret);

/* The program called name in the directory of the running edgeid
 * (/proc/self/exe), when it is there and executable, else name itself for
 * a PATH search. Returns a string the caller frees, or NULL on -ENOMEM. */
char *cli_probe_sibling(const char *name);

/* Run argv (argv[0] searched in PATH) with stdin on /dev/null. With out
 * (errs), its standard output (error) is collected there, up to the
 * buffer's maximum (the rest is read and dropped); otherwise it is
 * inherited. Returns its exit status (128 + N after signal N), or a
 * negative errno when it could not be run (-ENOENT: no such program). */
int cli_probe_run(char *const argv[], struct buf *out, struct buf *errs);

#endif
