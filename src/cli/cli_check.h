/* SPDX-License-Identifier: MIT */
/*
 * What the files of `edgeid check` share; private to them. cli_check.c
 * holds the check table, the options, the output, what the checks fetch
 * once (struct ctx) and every check but certificate expiry, which is in
 * cli_check_certs.c.
 */
#ifndef EDGEID_CLI_CHECK_H
#define EDGEID_CLI_CHECK_H

#include <stddef.h>
#include <time.h>

#include "common/buf.h"
#include "common/macro.h"
#include "config/config.h"

/* The most a check's reason may hold; the rest is dropped. */
#define CLI_CHECK_REASON_MAX (64 * 1024)

enum result {
	RESULT_OK,
	RESULT_WARNING,
	RESULT_ERROR,
	RESULT_SKIPPED,
};

/* What a check found: its result and the lines that say why (for OK, what
 * it found, shown with --verbose). */
struct outcome {
	enum result result;
	struct buf reason;
};

/* The daemons, in aziotctl's order. */
enum daemon_idx {
	D_KEYD,
	D_CERTD,
	D_TPMD,
	D_IDENTITYD,
	D_COUNT,
};

/* What the checks fetch once and share (cli_check.c). */
struct ctx;

/* How the device is provisioned, as identityd sees it (its own
 * configuration), else as the super-config says. The strings belong to
 * the context. */
struct provisioning {
	const char *source; /* "dps", "manual", "none"; NULL when unknown */
	const char *endpoint;
	const char *method;
	const char *hub;       /* manual */
	const char *trust_uri; /* trust_bundle_cert */
};

/* --- outcomes --- */

/* Append len bytes of text to b as a new line. Past the buffer's maximum
 * the rest is dropped: it is only shown. */
void cli_check_append_line(struct buf *b, const char *text, size_t len);
/* Append one line to o's reason. */
void cli_check_add_line(struct outcome *o, const char *fmt, ...) _printf_(2, 3);
/* Set o's result to r and append one line to its reason. */
void cli_check_say(struct outcome *o, enum result r, const char *fmt, ...) _printf_(3, 4);
/* t as 2006-01-02T15:04:05Z in buf (its seconds when it cannot be). */
void cli_check_rfc3339(time_t t, char *buf, size_t n);

/* --- the device, through the context --- */

/* The super-config's path (-c, else the default under the root). */
const char *cli_check_config_path(const struct ctx *x);
/* path under the root (a relative path as it is). Returns a string the
 * caller frees, or NULL when out of memory. */
char *cli_check_under_root(const struct ctx *x, const char *path);
/* The file a configuration value names: a file:///path URI (percent-
 * decoded) or an absolute path, under the root. Returns a string the
 * caller frees; NULL for anything else or when out of memory. */
char *cli_check_file_of(const struct ctx *x, const char *uri);
/* The super-config, loaded at the first call; NULL when it cannot be read
 * (config-well-formed says why). Owned by the context. */
const struct edgeid_config *cli_check_super_config(struct ctx *x);
/* A string of daemon d's merged configuration; NULL when absent, not a
 * string or unreadable. Owned by the context. */
const char *cli_check_dcfg_string(struct ctx *x, enum daemon_idx d, const char *path);
/* How the device is provisioned, in *ret. */
void cli_check_provisioning(struct ctx *x, struct provisioning *ret);

/* --- the certificate checks (cli_check_certs.c) --- */

void cli_check_identity_expiry(struct ctx *x, int arg, struct outcome *o);
void cli_check_trust_expiry(struct ctx *x, int arg, struct outcome *o);
void cli_check_store_expiry(struct ctx *x, int arg, struct outcome *o);

#endif
