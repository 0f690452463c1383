/* SPDX-License-Identifier: MIT */
/*
 * edgeid-cloud: the self-hosted provisioning service (dps), hub registry
 * (hub) and, later, EST CA (est).
 *
 * `edgeid-cloud serve --config FILE` starts, for every service enabled in
 * FILE, a group of worker processes (one per core by default) that share
 * the service's listening addresses with SO_REUSEPORT. Each worker has its
 * own event loop, HTTP server and store handle; workers share nothing in
 * memory, so any of them (or any process on another machine using the same
 * PostgreSQL store) can answer any request.
 *
 * `edgeid-cloud NOUN VERB ...` administers the services by calling the
 * same library functions the HTTP handlers call, on the store directly.
 *
 * A service plugs in through struct cloud_service: it parses its own
 * [NAME] table of the config file, sets up its routes in each worker, and
 * may provide admin nouns.
 */
#ifndef EDGEID_CLOUD_H
#define EDGEID_CLOUD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/toml.h"

struct event_base;
struct http_server;
struct store;

#define CLOUD_MAX_LISTEN 8

/* Settings every service has, parsed by the runtime from [NAME]:
 *   listen   = ["127.0.0.2:443", "[::1]:8443"]   (required)
 *   host_name = "dps.example.test"   the name clients use (SAS audience,
 *                                    assignedHub); default: first listen host
 *   workers  = 2                     default: number of cores
 *   tls_cert = "/path/server.pem"    PEM chain, leaf first (default [tls])
 *   tls_key  = "/path/server.key"
 * and the shared top-level tables:
 *   [store] url = "sqlite:///var/lib/edgeid-cloud/cloud.db"
 *   [tls]   cert, key   (defaults for every service)
 *           client_ca = "/path"  (optional) extra trust for client certs */
struct cloud_listen {
	char *host; /* numeric address, no brackets */
	uint16_t port;
};

struct cloud_service_common {
	struct cloud_listen listen[CLOUD_MAX_LISTEN];
	size_t n_listen;
	char *host_name;
	unsigned workers;
	char *tls_cert_file;
	char *tls_key_file;
};

struct cloud_config {
	char *path; /* the config file, as given */
	char *store_url;
	char *tls_cert_file;
	char *tls_key_file;
	char *tls_client_ca_file;
	const struct toml_value *root; /* the whole parsed document */
	struct toml_value *doc;        /* owned */
};

/* What a worker hands to a service's worker_init. */
struct cloud_worker {
	struct event_base *base;
	struct http_server *http;
	struct store *store;
	const struct cloud_config *cfg;
	const struct cloud_service_common *common;
	unsigned index; /* 0..workers-1 */
};

struct cloud_admin_noun {
	const char *name;    /* "enrollment" */
	const char *summary; /* one line for --help */
	/* argv[0] is the noun. Returns the exit status (0, 1 failure, 2 usage).
	 * settings is what config_parse returned (NULL when the service's
	 * table is absent from the config file). */
	int (*main)(struct store *store, const void *settings, int argc, char **argv);
};

struct cloud_service {
	const char *name; /* "dps", "hub": also the config table name */
	/* Parse the service's own keys of its [NAME] table (the runtime has
	 * already taken listen/host_name/workers/tls_*; ignore those). Errors
	 * as "FILE:LINE:COL: NAME.KEY: what was expected". */
	int (*config_parse)(const struct toml_value *table, const struct cloud_config *cfg,
			    const struct cloud_service_common *common, void **ret_settings,
			    struct err *e);
	void (*config_free)(void *settings);
	/* In each worker process, after fork: register routes on w->http.
	 * *ret_state is passed to worker_free at shutdown. */
	int (*worker_init)(struct cloud_worker *w, const void *settings, void **ret_state,
			   struct err *e);
	void (*worker_free)(void *state);
	const struct cloud_admin_noun *admin_nouns; /* NULL-name terminated, or NULL */
};

extern const struct cloud_service cloud_service_dps;
extern const struct cloud_service cloud_service_hub;

/* --- the runtime, for services ------------------------------------------
 * Everything below is provided by the runtime library (libcloud) and may
 * be called by services from config_parse and from their admin nouns. */

#define CLOUD_MAX_SERVICES 4

/* One service enabled in the config file, as the runtime parsed it. */
struct cloud_service_instance {
	const struct cloud_service *service;
	const struct toml_value *table; /* its [NAME] table, in cfg->doc */
	struct cloud_service_common common;
	void *settings; /* what service->config_parse returned; owned */
};

/* A whole config file: the shared part and every enabled service. */
struct cloud_setup {
	struct cloud_config cfg;
	struct cloud_service_instance services[CLOUD_MAX_SERVICES];
	size_t n_services;
};

/* Read and check the config file at path: [store], [tls], and for each of
 * services[] whose table is present, the common keys and then the
 * service's config_parse. Tables other than store, tls and those of
 * services[] are an error (a misspelled service). Returns 0 and a setup
 * in *ret (free with cloud_setup_free), or a negative errno with one
 * sentence in e ("FILE:LINE:COL: KEY: expected ..."): -ENOENT and other
 * errnos of reading, -EINVAL for content, -ENOMEM. */
int cloud_setup_load(const char *path, const struct cloud_service *const *services,
		     size_t n_services, struct cloud_setup **ret, struct err *e);
/* Accepts NULL. */
void cloud_setup_free(struct cloud_setup *s);
DEFINE_CLEANUP_FUNC(struct cloud_setup *, cloud_setup_free)

/* The instance of the service called name, or NULL when not enabled. */
const struct cloud_service_instance *cloud_setup_find(const struct cloud_setup *s,
						      const char *name);

/* Config-file errors for services, all in the form
 *   FILE:LINE:COL: PATH: MESSAGE
 * where PATH is tpath + "." + key ("hub.shared_access_policy[1].name").
 * Each returns 0, -EINVAL (with the message in e), or -ENOMEM.
 *
 * cloud_config_fail: the message at pos (a value's pos, a key's key_pos);
 * returns -EINVAL. */
int cloud_config_fail(const struct cloud_config *cfg, struct toml_pos pos, const char *path,
		      struct err *e, const char *fmt, ...) _printf_(5, 6);
/* Fail on any key of table that is neither in known (NULL-terminated) nor,
 * with common_too, one of the runtime's common service keys (listen,
 * host_name, workers, tls_cert, tls_key). */
int cloud_config_check_keys(const struct cloud_config *cfg, const struct toml_value *table,
			    const char *tpath, const char *const *known, bool common_too,
			    struct err *e);
/* A string (non-empty, no NUL). Absent: *ret = NULL and 0, or "missing
 * required key" when required. *ret is borrowed from cfg->doc. */
int cloud_config_string(const struct cloud_config *cfg, const struct toml_value *table,
			const char *tpath, const char *key, bool required, const char **ret,
			struct err *e);
/* An integer in [min, max]; absent: *ret = def (or an error when required). */
int cloud_config_int(const struct cloud_config *cfg, const struct toml_value *table,
		     const char *tpath, const char *key, bool required, int64_t min, int64_t max,
		     int64_t def, int64_t *ret, struct err *e);
int cloud_config_bool(const struct cloud_config *cfg, const struct toml_value *table,
		      const char *tpath, const char *key, bool def, bool *ret, struct err *e);
/* An array of tables (or absent: *ret = NULL, 0). *ret is borrowed. */
int cloud_config_table_array(const struct cloud_config *cfg, const struct toml_value *table,
			     const char *tpath, const char *key, const struct toml_value **ret,
			     struct err *e);
/* A string or an array of strings, as a NULL-terminated array of borrowed
 * strings that the caller frees (free(), not the strings). Absent: NULL. */
int cloud_config_strings(const struct cloud_config *cfg, const struct toml_value *table,
			 const char *tpath, const char *key, const char ***ret, struct err *e);

#endif
