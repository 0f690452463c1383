/* SPDX-License-Identifier: MIT */
/*
 * The runtime every device daemon shares (keyd, certd, identityd, tpmd).
 *
 * A daemon is described by one struct daemon_spec: its name, the API
 * versions it knows, its route table and three callbacks. daemon_run()
 * does everything else the aziot daemons do the same way:
 *
 *   - options: -c/--config FILE (default /etc/aziot/NAME/config.toml, or
 *     $AZIOT_NAME_CONFIG), --config-dir DIR (default config.d beside the
 *     main file, or $AZIOT_NAME_CONFIG_DIR), --root DIR ($EDGEID_ROOT),
 *     -s/--socket PATH (default /run/aziot/NAME.sock), --check,
 *     --log-level LEVEL;
 *   - the configuration: config.toml merged with every config.d/ *.toml in
 *     name order (tables merged, arrays concatenated, other values
 *     replaced; see daemon_config.h), then [[principal]] entries;
 *   - the process: umask 077, no new privileges, not dumpable and no core
 *     files (private keys live in memory), stdin on /dev/null;
 *   - the socket: one handed over by systemd (LISTEN_FDS), or a unix
 *     socket at the path, mode 0660; at most max_requests connections at
 *     once per peer uid (more are closed without a reply);
 *   - requests, as aziot's http-common does: api-version is required and
 *     must be one the daemon knows, routes match exact paths with
 *     "{name}" segments, bodies of POST/DELETE/PUT are parsed as JSON,
 *     errors are {"message": "..."}; each request and its answer are
 *     logged at info, except GETs of quiet routes and "GET /" without
 *     api-version (the liveness probe of `edgeid system status`, answered
 *     400 like any request without api-version), logged at debug;
 *   - signals: SIGTERM and SIGINT stop the loop cleanly, SIGHUP re-reads
 *     the configuration (principals, then the daemon's own reload);
 *   - readiness: sd_notify("READY=1") once the socket is served.
 *
 * With --root DIR every absolute path the daemon uses by default or reads
 * from its configuration is looked up under DIR (daemon_path()); paths
 * given on the command line are used as given.
 */
#ifndef EDGEID_DEVICE_DAEMON_H
#define EDGEID_DEVICE_DAEMON_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <jansson.h>

#include "common/err.h"
#include "common/peercred.h"
#include "device/daemon/daemon_config.h"

struct daemon;
struct daemon_request;
struct event_base;
struct http_request;

/* Default per-uid connection limit (aziot's max_requests default). */
#define DAEMON_MAX_REQUESTS_DEFAULT 10

/* Answers one request. Return 0 once it has answered with one of the
 * daemon_respond*() calls (or deferred the underlying http_request, see
 * daemon_request_http()); a negative errno without an answer is sent as
 * 500 "internal error". state is what spec->init returned. */
typedef int (*daemon_handler_fn)(struct daemon_request *req, void *state);

/* One path. pattern is exact, with "{name}" segments that match one
 * non-empty segment, percent-decoded (a segment that does not decode to
 * UTF-8 without NUL does not match). A NULL handler answers 400 "method
 * not allowed", as aziot does. */
struct daemon_route {
	const char *pattern;
	const char *min_api_version; /* NULL: from the oldest the daemon knows */
	const char *max_api_version; /* NULL: no upper bound */
	daemon_handler_fn get;
	daemon_handler_fn post;
	daemon_handler_fn put;
	daemon_handler_fn del;
	/* A status read that tools poll (`edgeid system status`): its GETs
	 * and their answers are logged at debug, not info, so that polling
	 * leaves the log alone. */
	bool quiet;
};

struct daemon_spec {
	const char *name;                /* "keyd": paths, socket and log ident */
	const char *summary;             /* one line for --help */
	const char *const *api_versions; /* known versions, oldest first, NULL-terminated */
	const struct daemon_route *routes;
	size_t n_routes;
	/* With a name ("keys", "certs"), [[principal]] entries are read as
	 * { uid = N, <name> = ["id", "glob*", ...] } (both required) and
	 * daemon_authorize() answers from them. NULL: the daemon reads
	 * [[principal]] itself, if at all. */
	const char *principal_grants;
	/* After the configuration is loaded and before the socket is served:
	 * read the daemon's own settings from daemon_get_config(d) and set up
	 * its state (*ret_state is passed to handlers and the callbacks below).
	 * Must not keep pointers into the configuration: a reload replaces it.
	 * Returns 0, or a negative errno with a sentence in e. */
	int (*init)(struct daemon *d, void **ret_state, struct err *e);
	/* --check: validate the daemon's own settings in daemon_get_config(d)
	 * without side effects. NULL: nothing beyond the common settings. */
	int (*check)(struct daemon *d, struct err *e);
	/* SIGHUP, after the new configuration was loaded and its principals
	 * parsed; returning an error keeps the old configuration and
	 * principals. NULL: only the principals are reloaded. */
	int (*reload)(struct daemon *d, void *state, const struct daemon_config *next,
		      struct err *e);
	/* Free the state (also after a failed init, with what init returned). */
	void (*fini)(void *state);
};

/* Run the daemon described by spec with the command line argv (argv[0] is
 * the name it was invoked as; options follow). Returns the process exit
 * status: 0 after a clean shutdown (or --help, --check), 1 when the
 * configuration or the socket could not be set up (logged), 2 for a bad
 * command line. */
int daemon_run(const struct daemon_spec *spec, int argc, char **argv);

/* --- the running daemon --------------------------------------------- */

const char *daemon_name(const struct daemon *d);
/* The current merged configuration; replaced on reload. Borrowed. */
const struct daemon_config *daemon_get_config(const struct daemon *d);
struct event_base *daemon_event_base(const struct daemon *d);
/* The --root directory, or NULL when none is in effect. */
const char *daemon_root(const struct daemon *d);

/* path (absolute) under the --root directory when one is in effect, else
 * a copy of path. The caller frees. NULL on -ENOMEM. */
char *daemon_path(const struct daemon *d, const char *path);

/* May the process with uid use the object called id? uid 0 always may;
 * otherwise a [[principal]] with that uid must grant a pattern that
 * matches id (daemon_wildmatch). Entries with the same uid are unioned.
 * Always false for a daemon without principal_grants (except uid 0). */
bool daemon_authorize(const struct daemon *d, uid_t uid, const char *id);

/* --- requests ----------------------------------------------------- */

/* The matched "{name}" segment, decoded; NULL when the route has none. */
const char *daemon_request_param(const struct daemon_request *req, const char *name);
/* The request body parsed as JSON, or NULL when there was none (empty, or
 * a content type other than JSON on POST/DELETE). Borrowed. */
json_t *daemon_request_body(const struct daemon_request *req);
/* The request body as a JSON object, borrowed; NULL after answering 400
 * "missing request body" or 422 "expected a JSON object, got ...". */
json_t *daemon_request_object(struct daemon_request *req);
/* The string at path in obj into *ret (borrowed); an optional one
 * (!required) may be absent or null (*ret NULL). Returns 0, or 1 after
 * answering 422 with json_get_string's sentence. */
int daemon_request_string(struct daemon_request *req, const json_t *obj, const char *path,
			  bool required, const char **ret);
/* The api-version of the request (one of spec->api_versions). */
const char *daemon_request_api_version(const struct daemon_request *req);
/* A query parameter other than api-version (decoded); NULL when absent. */
const char *daemon_request_query(const struct daemon_request *req, const char *name);
/* The caller as the kernel reports it. Never NULL inside a handler. */
const struct peercred *daemon_request_cred(const struct daemon_request *req);
/* The underlying request, for handlers that answer later
 * (http_request_defer() then http_respond_*()). */
struct http_request *daemon_request_http(const struct daemon_request *req);

/* Answers. Each returns 0 (or what http_respond returned; the request is
 * finished either way). */
int daemon_respond_json(struct daemon_request *req, int status, const json_t *body);
/* 204, no body. */
int daemon_respond_no_content(struct daemon_request *req);
/* {"message": <printf>} with status. */
int daemon_respond_error(struct daemon_request *req, int status, const char *fmt, ...)
    _printf_(3, 4);

/* --- helpers shared with the tests ------------------------------------- */

/* aziot's wildmatch: '*' matches any run of characters (also none), '?'
 * exactly one character (a UTF-8 sequence counts as one); everything else
 * matches itself, case-sensitively. */
bool daemon_wildmatch(const char *pattern, const char *s);

struct daemon_principal {
	uid_t uid;
	char **grants; /* patterns */
	size_t n_grants;
};

struct daemon_principals {
	struct daemon_principal *items;
	size_t n;
};

/* Read [[principal]] from c: each entry a table with an integer uid
 * (0..4294967294) and grants_key, an array of strings. Errors name the
 * file, line and column: "FILE:3:7: principal[0].uid: expected an integer,
 * got a string". Returns 0, -EINVAL, -ENOMEM. On success the caller clears
 * *ret with daemon_principals_clear(). */
int daemon_principals_parse(const struct daemon_config *c, const char *grants_key,
			    struct daemon_principals *ret, struct err *e);
void daemon_principals_clear(struct daemon_principals *p);
/* The rule of daemon_authorize(). */
bool daemon_principals_allow(const struct daemon_principals *p, uid_t uid, const char *id);

/* systemd socket activation without libsystemd: the number of listening
 * fds passed (from SD_LISTEN_FDS_START = 3) when LISTEN_PID is our pid,
 * after marking them close-on-exec; 0 when none. With unset_env the
 * LISTEN_* variables are removed. Returns the count or a negative errno
 * (-EINVAL: malformed variables). */
int daemon_listen_fds(bool unset_env);

/* sd_notify without libsystemd: send state ("READY=1") to $NOTIFY_SOCKET.
 * Returns 1 when sent, 0 when there is no NOTIFY_SOCKET, or a negative
 * errno. */
int daemon_notify(const char *state);

#endif
