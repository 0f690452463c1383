/* SPDX-License-Identifier: MIT */
/*
 * edgeid check: what `iotedge check` and `aziotctl check` do for the
 * identity service. One line per check, grouped, then a summary:
 *
 *   Configuration checks
 *   --------------------
 *   √ keyd configuration is well-formed - OK
 *   × identityd has provisioned the device - Error
 *       DPS refused registration 'dev1' ...
 *
 * Each check reads what the daemons themselves read: the super-config,
 * each daemon's applied configuration (validated by the daemon's own code,
 * `edgeidd NAME --check`), their sockets (probed as `edgeid system status`
 * does), identityd's provisioning status, tpmd (or the TPM directly when
 * tpmd does not answer), and DPS and the hub over HTTPS with the trust
 * identityd uses. What several checks need is fetched once, by whichever
 * check asks first (struct ctx). Where something is wrong, the reason is
 * the daemon's own sentence, the one `edgeid system status` and `edgeid
 * system logs` show: identityd's last error and whether it tries again,
 * tpmd's reason the TPM is unavailable.
 *
 * The certificate checks are in cli_check_certs.c (cli_check.h is what the
 * two files share).
 *
 * With --root DIR (or EDGEID_ROOT) the device is the one under DIR: its
 * configuration, its sockets and the files its configuration names, as for
 * `edgeidd --root` and `edgeid system --root`.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/x509.h>

#include "cli/cli.h"
#include "cli/cli_check.h"
#include "cli/cli_probe.h"
#include "common/buf.h"
#include "common/encode.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/http_client.h"
#include "common/json.h"
#include "common/macro.h"
#include "config/config.h"
#include "crypto/hash.h"
#include "device/daemon/daemon_config.h"
#include "device/tpmd/tpmd.h"
#include "tpm/tpm.h"

#define PROG "edgeid check"
/* The identity service's API version of /identities/provisioning/status. */
#define IDENTITYD_STATUS_API_VERSION "2021-12-01"
/* One HTTPS request to DPS or the hub. */
#define REMOTE_TIMEOUT_MS 10000
/* tpmd may have to create the EK first, which takes a real TPM a while. */
#define TPM_KEYS_TIMEOUT_MS 60000
#define CLOCK_SKEW_WARN_SEC 300
#define PROGRAM_OUTPUT_MAX (64 * 1024)
#define IDENTITYD_STATUS_MAX (256 * 1024)

/* --- the checks ------------------------------------------------------------- */

enum group {
	GROUP_CONFIGURATION,
	GROUP_CONNECTIVITY,
};

static const char *const group_title[] = {"Configuration checks", "Connectivity checks"};
static const char *const group_json[] = {"configuration", "connectivity"};

static const char *const result_json[] = {"ok", "warning", "error", "skipped"};

static const char *const daemon_names[D_COUNT] = {"keyd", "certd", "tpmd", "identityd"};

struct check {
	const char *id;
	enum group group;
	const char *description;
	void (*run)(struct ctx *x, int arg, struct outcome *o);
	int arg;
};

/* --- what the checks share ------------------------------------------------------ */

/* `edgeidd NAME --check`, run once. */
struct daemon_check {
	bool done;
	int status;   /* exit status, or a negative errno when it could not run */
	bool unknown; /* edgeidd has no such daemon */
	struct buf out, errs;
};

/* An HTTPS request to DPS or the hub, made once. */
struct remote {
	bool done;
	char *url;
	char *trust; /* trust bundle file, or NULL: the system store */
	int r;
	struct err e;
	long status;
	bool has_date;
	time_t date, local; /* the server's Date, and our clock meanwhile */
};

struct ctx {
	char *root; /* NULL: / */
	char *config_path;

	bool super_done;
	int super_r;
	struct err super_e;
	struct edgeid_config *super;

	bool dcfg_done[D_COUNT];
	struct daemon_config *dcfg[D_COUNT];

	struct daemon_check dcheck[D_COUNT];

	bool probe_done[D_COUNT];
	int probe_r[D_COUNT];
	struct err probe_e[D_COUNT];
	char *sock[D_COUNT];

	bool status_done;
	int status_r;
	struct err status_e;
	long status_code;
	json_t *status; /* identityd's answer, when it was JSON */

	struct remote dps, hub;
};

/* --- outcomes ----------------------------------------------------------------- */

void cli_check_append_line(struct buf *b, const char *text, size_t len)
{
	if (b->len > 0 && buf_putc(b, '\n') < 0)
		return;
	if (buf_append(b, text, len) < 0)
		return; /* the line is left out */
}

static void add_linev(struct outcome *o, const char *fmt, va_list ap) _printf_(2, 0);
static void add_linev(struct outcome *o, const char *fmt, va_list ap)
{
	_cleanup_free_ char *text = NULL;

	if (vasprintf(&text, fmt, ap) < 0)
		return;
	cli_check_append_line(&o->reason, text, strlen(text));
}

void cli_check_add_line(struct outcome *o, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	add_linev(o, fmt, ap);
	va_end(ap);
}

void cli_check_say(struct outcome *o, enum result r, const char *fmt, ...)
{
	va_list ap;

	o->result = r;
	va_start(ap, fmt);
	add_linev(o, fmt, ap);
	va_end(ap);
}

/* Append text (several lines, perhaps), without its trailing blank space. */
static void add_text(struct outcome *o, const char *text)
{
	size_t len = strlen(text);

	while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == ' '))
		len--;
	if (len > 0)
		cli_check_append_line(&o->reason, text, len);
}

void cli_check_rfc3339(time_t t, char *buf, size_t n)
{
	struct tm tm;

	if (!gmtime_r(&t, &tm) || strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, n, "%lld", (long long)t);
}

/* --- paths -------------------------------------------------------------------- */

const char *cli_check_config_path(const struct ctx *x)
{
	return x->config_path;
}

char *cli_check_under_root(const struct ctx *x, const char *path)
{
	return x->root && path[0] == '/' ? fs_path_join(x->root, path) : strdup(path);
}

char *cli_check_file_of(const struct ctx *x, const char *uri)
{
	_cleanup_buf_ struct buf dec = {0};

	if (!uri)
		return NULL;
	if (uri[0] == '/')
		return cli_check_under_root(x, uri);
	buf_init(&dec, 4096);
	if (!strneq(uri, "file://", 7) || uri[7] != '/' ||
	    url_decode(&dec, uri + 7, strlen(uri + 7), false) < 0)
		return NULL;
	return cli_check_under_root(x, buf_str(&dec));
}

/* --- the super-config ------------------------------------------------------------- */

const struct edgeid_config *cli_check_super_config(struct ctx *x)
{
	if (!x->super_done) {
		x->super_done = true;
		x->super_r = config_load(x->config_path, &x->super, &x->super_e);
		if (x->super_r < 0)
			x->super = NULL;
	}
	return x->super;
}

/* --- the daemons' configurations ---------------------------------------------------- */

/* AZIOT_<NAME>_<what>, which the daemons honour too. */
static const char *aziot_env(const char *name, const char *what)
{
	char var[64];
	int n = snprintf(var, sizeof(var), "AZIOT_%s_%s", name, what);

	if (n < 0 || (size_t)n >= sizeof(var))
		return NULL;
	for (char *p = var; *p; p++)
		if (*p >= 'a' && *p <= 'z')
			*p = (char)(*p - 'a' + 'A');
	return getenv(var);
}

/* The daemon's merged configuration, as it reads it; NULL when it cannot
 * be read (the daemon's own --check says why). */
static const struct daemon_config *daemon_cfg(struct ctx *x, enum daemon_idx d)
{
	_cleanup_free_ char *file = NULL, *dir = NULL;
	const char *env_file = aziot_env(daemon_names[d], "CONFIG");
	const char *env_dir = aziot_env(daemon_names[d], "CONFIG_DIR");

	if (x->dcfg_done[d])
		return x->dcfg[d];
	x->dcfg_done[d] = true;
	if (env_file && *env_file) {
		file = strdup(env_file);
	} else {
		_cleanup_free_ char *p = NULL;

		if (asprintf(&p, "/etc/aziot/%s/config.toml", daemon_names[d]) >= 0)
			file = cli_check_under_root(x, p);
	}
	if (file) {
		if (env_dir && *env_dir) {
			dir = strdup(env_dir);
		} else {
			const char *slash = strrchr(file, '/');

			if (asprintf(&dir, "%.*sconfig.d", slash ? (int)(slash - file + 1) : 0,
				     file) < 0)
				dir = NULL;
		}
	}
	if (!file || !dir || daemon_config_load(file, dir, &x->dcfg[d], NULL) < 0)
		x->dcfg[d] = NULL;
	return x->dcfg[d];
}

const char *cli_check_dcfg_string(struct ctx *x, enum daemon_idx d, const char *path)
{
	const struct daemon_config *c = daemon_cfg(x, d);
	const char *v = NULL;

	if (!c || daemon_config_get_string_opt(c, path, &v, NULL) < 0)
		return NULL;
	return v;
}

void cli_check_provisioning(struct ctx *x, struct provisioning *ret)
{
	const struct edgeid_config *c;

	*ret = (struct provisioning){0};
	if (daemon_cfg(x, D_IDENTITYD)) {
		ret->source = cli_check_dcfg_string(x, D_IDENTITYD, "provisioning.source");
		ret->endpoint =
		    cli_check_dcfg_string(x, D_IDENTITYD, "provisioning.global_endpoint");
		ret->method =
		    cli_check_dcfg_string(x, D_IDENTITYD, "provisioning.attestation.method");
		if (!ret->method)
			ret->method = cli_check_dcfg_string(x, D_IDENTITYD,
							    "provisioning.authentication.method");
		ret->hub = cli_check_dcfg_string(x, D_IDENTITYD, "provisioning.iothub_hostname");
		ret->trust_uri = cli_check_dcfg_string(x, D_IDENTITYD, "trust_bundle_cert");
		return;
	}
	c = cli_check_super_config(x);
	if (!c)
		return;
	ret->source = config_source_name(c->provisioning.source);
	ret->trust_uri = c->trust_bundle_cert;
	if (c->provisioning.source == CONFIG_SOURCE_DPS) {
		ret->endpoint = c->provisioning.dps.global_endpoint;
		ret->method = config_attestation_name(c->provisioning.dps.method);
	} else if (c->provisioning.source == CONFIG_SOURCE_MANUAL) {
		ret->hub = c->provisioning.manual.iothub_hostname;
	}
}

/* --- edgeidd NAME --check -------------------------------------------------------------- */

static struct daemon_check *daemon_check(struct ctx *x, enum daemon_idx d)
{
	struct daemon_check *c = &x->dcheck[d];
	_cleanup_free_ char *prog = NULL;
	char *argv[8];
	size_t k = 0;

	if (c->done)
		return c;
	c->done = true;
	buf_init(&c->out, PROGRAM_OUTPUT_MAX);
	buf_init(&c->errs, PROGRAM_OUTPUT_MAX);
	prog = cli_probe_sibling("edgeidd");
	if (!prog) {
		c->status = -ENOMEM;
		return c;
	}
	argv[k++] = prog;
	argv[k++] = (char *)daemon_names[d];
	argv[k++] = "--check";
	if (x->root) {
		argv[k++] = "--root";
		argv[k++] = x->root;
	}
	argv[k] = NULL;
	c->status = cli_probe_run(argv, &c->out, &c->errs);
	c->unknown = c->status == CLI_EXIT_USAGE &&
		     strstr(buf_str(&c->errs), "unknown daemon or command") != NULL;
	return c;
}

/* --- sockets ---------------------------------------------------------------------- */

/* Does the daemon answer on its socket? 0 or the negative errno (and
 * x->probe_e). */
static int daemon_answers(struct ctx *x, enum daemon_idx d)
{
	if (x->probe_done[d])
		return x->probe_r[d];
	x->probe_done[d] = true;
	x->sock[d] = cli_probe_socket_path(x->root, daemon_names[d]);
	if (!x->sock[d])
		x->probe_r[d] = err_set(&x->probe_e[d], -ENOMEM, "out of memory");
	else
		x->probe_r[d] = cli_probe_socket(x->sock[d], "/", NULL, &x->probe_e[d]);
	return x->probe_r[d];
}

/* GET path on the daemon's socket: 0 with the status and the JSON body
 * (NULL when it was not JSON), or the negative errno of the transport. */
static int daemon_get(struct ctx *x, enum daemon_idx d, const char *path, unsigned timeout_ms,
		      size_t max, long *ret_status, json_t **ret_body, struct err *e)
{
	_cleanup_http_client_response_ struct http_client_response resp = {0};
	struct http_client_request req = {
	    .method = "GET",
	    .url = path,
	    .unix_socket_path = x->sock[d],
	    .timeout_ms = timeout_ms,
	    .max_response_bytes = max,
	};
	int r;

	*ret_body = NULL;
	r = http_client_perform(NULL, &req, &resp, e);
	if (r < 0)
		return r;
	*ret_status = resp.status;
	if (json_parse(buf_str(&resp.body), resp.body.len, 0, ret_body, NULL) < 0)
		*ret_body = NULL;
	return 0;
}

/* The "message" of a daemon's error answer, or "HTTP <status>". */
static const char *answer_text(const json_t *body, long status, char *buf, size_t n)
{
	const char *msg = body ? json_string_value(json_object_get(body, "message")) : NULL;

	if (msg && *msg)
		return msg;
	snprintf(buf, n, "HTTP %ld", status);
	return buf;
}

/* identityd's provisioning status (NULL when it could not be had). */
static const json_t *identityd_status(struct ctx *x)
{
	if (x->status_done)
		return x->status;
	x->status_done = true;
	x->status_r = daemon_answers(x, D_IDENTITYD);
	if (x->status_r < 0)
		return NULL;
	x->status_r = daemon_get(x, D_IDENTITYD,
				 "http://identityd.sock/identities/provisioning/"
				 "status?api-version=" IDENTITYD_STATUS_API_VERSION,
				 REMOTE_TIMEOUT_MS, IDENTITYD_STATUS_MAX, &x->status_code,
				 &x->status, &x->status_e);
	if (x->status_r == 0 && x->status_code != 200) {
		json_decref(x->status);
		x->status = NULL;
	}
	return x->status;
}

static const char *jstr(const json_t *j, const char *path)
{
	const char *s = NULL;

	if (!j || json_get_string_opt(j, path, &s, NULL) < 0 || !s || !*s)
		return NULL;
	return s;
}

/* --- DPS and the hub --------------------------------------------------------------- */

/* GET url with identityd's trust: the system store, plus the trust bundle
 * when one is configured (then the store is named by its directory, as
 * identityd does, since libcurl no longer reads its default bundle). */
static struct remote *remote_get(struct ctx *x, struct remote *rm, const char *url,
				 const char *trust_uri)
{
	_cleanup_http_client_response_ struct http_client_response resp = {0};
	struct http_client_request req = {
	    .method = "GET",
	    .url = url,
	    .timeout_ms = REMOTE_TIMEOUT_MS,
	    .connect_timeout_ms = REMOTE_TIMEOUT_MS,
	    .max_response_bytes = 64 * 1024,
	};
	const char *dir = getenv("SSL_CERT_DIR"), *date;
	time_t before, after;

	if (rm->done)
		return rm;
	rm->done = true;
	rm->url = strdup(url);
	if (!rm->url) {
		rm->r = err_set(&rm->e, -ENOMEM, "out of memory");
		return rm;
	}
	if (trust_uri) {
		rm->trust = cli_check_file_of(x, trust_uri);
		if (!rm->trust) {
			rm->r =
			    err_set(&rm->e, -EINVAL,
				    "trust_bundle_cert: expected a file:///path URI, got \"%s\"",
				    trust_uri);
			return rm;
		}
		req.ca_file = rm->trust;
		req.ca_dir = dir && *dir ? dir : X509_get_default_cert_dir();
	}
	before = time(NULL);
	rm->r = http_client_perform(NULL, &req, &resp, &rm->e);
	after = time(NULL);
	if (rm->r < 0)
		return rm;
	rm->status = resp.status;
	date = http_client_response_header(&resp, "Date");
	if (date) {
		time_t t;

		if (http_client_parse_date(date, &t) == 0) {
			rm->has_date = true;
			rm->date = t;
			rm->local = before + (after - before) / 2;
		}
	}
	return rm;
}

static const char *remote_host(const char *url, char *buf, size_t n)
{
	const char *p = strstr(url, "://");
	size_t len;

	p = p ? p + 3 : url;
	len = strcspn(p, "/?#");
	snprintf(buf, n, "%.*s", (int)len, p);
	return buf;
}

/* DPS, when the device is provisioned by DPS; NULL otherwise (why in o,
 * as a skip, when o is given). */
static struct remote *dps(struct ctx *x, struct outcome *o)
{
	struct provisioning p;

	if (x->dps.done)
		return &x->dps;
	cli_check_provisioning(x, &p);
	if (!p.source) {
		if (o)
			cli_check_say(
			    o, RESULT_SKIPPED,
			    "the provisioning settings cannot be read (neither identityd's "
			    "configuration nor %s)",
			    x->config_path);
		return NULL;
	}
	if (!streq(p.source, "dps") || !p.endpoint) {
		if (o)
			cli_check_say(o, RESULT_SKIPPED,
				      "provisioning.source is \"%s\": no DPS is used", p.source);
		return NULL;
	}
	return remote_get(x, &x->dps, p.endpoint, p.trust_uri);
}

/* The hub: the one identityd was assigned, else the manual settings'. */
static struct remote *hub(struct ctx *x, struct outcome *o)
{
	struct provisioning p;
	const char *name;
	_cleanup_free_ char *url = NULL;

	if (x->hub.done)
		return &x->hub;
	cli_check_provisioning(x, &p);
	name = jstr(identityd_status(x), "device.hub_name");
	if (!name)
		name = p.hub;
	if (!name) {
		if (o)
			cli_check_say(o, RESULT_SKIPPED, "no hub is known yet: %s",
				      daemon_answers(x, D_IDENTITYD) < 0
					  ? "identityd is not running"
					  : "the device is not provisioned");
		return NULL;
	}
	if (asprintf(&url, "https://%s/", name) < 0) {
		if (o)
			cli_check_say(o, RESULT_ERROR, "out of memory");
		return NULL;
	}
	return remote_get(x, &x->hub, url, p.trust_uri);
}

/* --- configuration checks ------------------------------------------------------- */

static void check_super_config(struct ctx *x, int arg, struct outcome *o)
{
	const struct edgeid_config *c = cli_check_super_config(x);

	(void)arg;
	if (!c) {
		cli_check_say(o, RESULT_ERROR, "%s", err_msg(&x->super_e, x->super_r));
		if (x->super_r == -EACCES && geteuid() != 0)
			cli_check_add_line(o, "run 'edgeid check' as root");
		return;
	}
	if (c->n_warnings > 0) {
		o->result = RESULT_WARNING;
		for (size_t i = 0; i < c->n_warnings; i++)
			cli_check_add_line(o, "%s", c->warnings[i]);
		return;
	}
	cli_check_say(o, RESULT_OK, "%s: OK", x->config_path);
}

static void check_daemon_config(struct ctx *x, int arg, struct outcome *o)
{
	struct daemon_check *c = daemon_check(x, (enum daemon_idx)arg);
	const char *name = daemon_names[arg];

	if (c->status < 0) {
		cli_check_say(o, RESULT_ERROR, "cannot run edgeidd: %s", strerror(-c->status));
		return;
	}
	if (c->unknown) {
		cli_check_say(o, RESULT_SKIPPED, "edgeidd has no %s to read it", name);
		return;
	}
	if (c->status != 0) {
		o->result = RESULT_ERROR;
		add_text(o, buf_str(&c->errs));
		if (o->reason.len == 0)
			cli_check_add_line(o, "edgeidd %s --check exited with status %d", name,
					   c->status);
		if (geteuid() != 0 && strstr(buf_str(&c->errs), "Permission denied"))
			cli_check_add_line(o, "run 'edgeid check' as root");
		return;
	}
	/* Warnings come on stderr as "warning: ..." lines. */
	for (const char *p = buf_str(&c->errs); *p;) {
		size_t len = strcspn(p, "\n");

		if (strneq(p, "warning: ", 9)) {
			o->result = RESULT_WARNING;
			cli_check_add_line(o, "%.*s", (int)(len - 9), p + 9);
		}
		p += len + (p[len] == '\n');
	}
	if (o->result == RESULT_OK)
		add_text(o, buf_str(&c->out));
}

/* The daemons `config apply` writes a 00-super.toml for. */
static const char *const applied_daemons[] = {"keyd", "certd", "identityd", "tpmd", "edged"};

static void check_configs_up_to_date(struct ctx *x, int arg, struct outcome *o)
{
	struct stat st_super;
	char stale[128] = "";
	size_t stale_idx[ARRAY_SIZE(applied_daemons)];
	size_t used = 0, n_found = 0, n_stale = 0;

	(void)arg;
	if (stat(x->config_path, &st_super) < 0) {
		cli_check_say(o, RESULT_SKIPPED, "%s: %s", x->config_path, strerror(errno));
		return;
	}
	for (size_t i = 0; i < ARRAY_SIZE(applied_daemons); i++) {
		_cleanup_free_ char *p = NULL, *path = NULL;
		struct stat st;

		if (asprintf(&p, "/etc/aziot/%s/config.d/00-super.toml", applied_daemons[i]) < 0 ||
		    !(path = cli_check_under_root(x, p))) {
			cli_check_say(o, RESULT_ERROR, "out of memory");
			return;
		}
		if (stat(path, &st) < 0)
			continue;
		n_found++;
		if (st_super.st_mtim.tv_sec > st.st_mtim.tv_sec ||
		    (st_super.st_mtim.tv_sec == st.st_mtim.tv_sec &&
		     st_super.st_mtim.tv_nsec > st.st_mtim.tv_nsec)) {
			stale_idx[n_stale++] = i;
		}
	}
	if (n_found == 0) {
		cli_check_say(
		    o, RESULT_ERROR,
		    "no daemon configuration has been written from %s; run 'edgeid config apply'",
		    x->config_path);
		return;
	}
	for (size_t k = 0; k < n_stale; k++) {
		int w = snprintf(stale + used, sizeof(stale) - used, "%s%s",
				 k == 0             ? ""
				 : k + 1 == n_stale ? " and "
						    : ", ",
				 applied_daemons[stale_idx[k]]);

		if (w > 0 && (size_t)w < sizeof(stale) - used)
			used += (size_t)w;
	}
	if (n_stale > 0) {
		cli_check_say(
		    o, RESULT_ERROR,
		    "%s was modified after the configuration of %s was written from it; run "
		    "'edgeid config apply'",
		    x->config_path, stale);
		return;
	}
	cli_check_say(o, RESULT_OK, "%zu daemon configurations are newer than %s", n_found,
		      x->config_path);
}

/* The value of "Key: value" or "key=value" output, trimmed; NULL. */
static const char *output_value(const char *text, const char *key, char *buf, size_t n)
{
	size_t klen = strlen(key);

	for (const char *p = text; *p;) {
		size_t len = strcspn(p, "\n");

		if (len > klen && strneq(p, key, klen)) {
			const char *v = p + klen;
			size_t vlen = len - klen;

			while (vlen > 0 && (*v == ' ' || *v == ':' || *v == '=' || *v == '\t'))
				v++, vlen--;
			while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\r'))
				vlen--;
			snprintf(buf, n, "%.*s", (int)vlen, v);
			return buf;
		}
		p += len + (p[len] == '\n');
	}
	return NULL;
}

/* What the time daemons say: 1 synchronised (what they said in good), 0
 * not (why in o, as a warning), -1 none could tell. */
static int clock_tools(struct outcome *o, struct outcome *good)
{
	char *timedatectl[] = {"timedatectl", "show", "-p", "NTPSynchronized", "--value", NULL};
	char *chronyc[] = {"chronyc", "-n", "tracking", NULL};
	_cleanup_buf_ struct buf out = {0}, errs = {0};
	int said = -1;
	char v[128];

	buf_init(&out, PROGRAM_OUTPUT_MAX);
	buf_init(&errs, PROGRAM_OUTPUT_MAX);
	if (cli_probe_run(timedatectl, &out, &errs) == 0 &&
	    output_value(buf_str(&out), "", v, sizeof(v))) {
		if (streq(v, "no")) {
			cli_check_say(o, RESULT_WARNING,
				      "timedatectl: the system clock is not synchronized "
				      "(NTPSynchronized=no)");
			said = 0;
		} else if (streq(v, "yes")) {
			cli_check_add_line(good, "timedatectl: NTPSynchronized=yes");
			said = 1;
		}
	}
	buf_reset(&out);
	buf_reset(&errs);
	if (cli_probe_run(chronyc, &out, &errs) == 0 &&
	    output_value(buf_str(&out), "Leap status", v, sizeof(v))) {
		if (streq(v, "Not synchronised")) {
			cli_check_say(o, RESULT_WARNING,
				      "chronyc tracking: Leap status: Not synchronised");
			said = 0;
		} else if (said < 0) {
			cli_check_add_line(good, "chronyc tracking: Leap status: %s", v);
			said = 1;
		}
	}
	return said;
}

static void check_host_time(struct ctx *x, int arg, struct outcome *o)
{
	struct remote *ref = dps(x, NULL);
	struct outcome good = {0};
	char host[256];
	int tools;

	(void)arg;
	buf_init(&good.reason, CLI_CHECK_REASON_MAX);
	if (!ref || ref->r < 0 || !ref->has_date)
		ref = hub(x, NULL);
	if (ref && (ref->r < 0 || !ref->has_date))
		ref = NULL;
	if (ref) {
		long long skew = (long long)ref->local - (long long)ref->date;
		long long abs_skew = skew < 0 ? -skew : skew;
		char theirs[64];

		remote_host(ref->url, host, sizeof(host));
		cli_check_rfc3339(ref->date, theirs, sizeof(theirs));
		if (abs_skew > CLOCK_SKEW_WARN_SEC)
			cli_check_say(
			    o, RESULT_WARNING,
			    "the local clock is %lld s %s %s (its Date: %s); set the time, or TLS "
			    "and SAS tokens may fail",
			    abs_skew, skew > 0 ? "ahead of" : "behind", host, theirs);
		else
			cli_check_add_line(&good, "within %lld s of the clock of %s", abs_skew,
					   host);
	}
	tools = clock_tools(o, &good);
	if (o->result == RESULT_OK) {
		if (!ref && tools < 0)
			cli_check_say(
			    o, RESULT_SKIPPED,
			    "nothing to compare the clock with: no Date from DPS or the hub, and "
			    "neither timedatectl nor chronyc could tell");
		else
			add_text(o, buf_str(&good.reason));
	}
	buf_free(&good.reason);
}

/* --- daemons ------------------------------------------------------------------- */

static void check_running(struct ctx *x, int arg, struct outcome *o)
{
	enum daemon_idx d = (enum daemon_idx)arg;
	int r = daemon_answers(x, d);

	if (r == 0) {
		cli_check_say(o, RESULT_OK, "answers on %s", x->sock[d]);
		return;
	}
	if (r == -EACCES) {
		cli_check_say(
		    o, RESULT_WARNING,
		    "%s: permission denied; run 'edgeid check' as root to see whether it answers",
		    x->sock[d]);
		return;
	}
	if ((r == -ENOENT || r == -ECONNREFUSED) && daemon_check(x, d)->unknown) {
		cli_check_say(o, RESULT_SKIPPED, "edgeidd has no %s; nothing answers on %s",
			      daemon_names[d], x->sock[d]);
		return;
	}
	cli_check_say(o, RESULT_ERROR, "not answering on %s: %s", x->sock[d],
		      err_msg(&x->probe_e[d], r));
	cli_check_add_line(o, "see 'edgeid system status' and 'edgeid system logs %s'",
			   daemon_names[d]);
}

/* The registration id of an EK public area: the hex SHA-256 of it. */
static void ek_text(const void *ek, size_t len, char *buf, size_t n)
{
	_cleanup_buf_ struct buf hex = {0};
	uint8_t digest[HASH_SHA256_LEN];

	buf_init(&hex, 0);
	if (hash_sha256(ek, len, digest) < 0 || hex_encode(&hex, digest, sizeof(digest)) < 0) {
		snprintf(buf, n, "endorsement key present");
		return;
	}
	snprintf(buf, n, "endorsement key present; registration id %s", buf_str(&hex));
}

/* GET path on tpmd: 0 with its answer (200) in *ret_body (JSON, or NULL),
 * or -1 with why in o's reason. */
static int tpmd_get(struct ctx *x, const char *path, json_t **ret_body, struct outcome *o)
{
	struct err e = {0};
	char tmp[64];
	long status = 0;
	int r;

	r = daemon_get(x, D_TPMD, path, TPM_KEYS_TIMEOUT_MS, 64 * 1024, &status, ret_body, &e);
	if (r < 0) {
		cli_check_add_line(o, "tpmd: %s", err_msg(&e, r));
		return -1;
	}
	if (status == 200)
		return 0;
	cli_check_add_line(o, "tpmd answered %ld: %s", status,
			   answer_text(*ret_body, status, tmp, sizeof(tmp)));
	if (status == 403 && geteuid() != 0)
		cli_check_add_line(o, "run 'edgeid check' as root");
	return -1;
}

/* Through tpmd: GET /tpm/status says whether tpmd can use the TPM, and
 * only then is GET /get_tpm_keys asked (tpmd creates the EK and SRK when it
 * opens the TPM, so by then they are there: the check itself never has an
 * EK created). 0 with what was found in o's reason, or -1 with why. */
static int tpm_through_tpmd(struct ctx *x, struct outcome *o)
{
	_cleanup_json_ json_t *st = NULL, *keys = NULL;
	_cleanup_buf_ struct buf ek = {0};
	const char *ek64, *why;
	char found[256];

	if (tpmd_get(x, "http://tpmd.sock/tpm/status?api-version=" TPMD_API_VERSION, &st, o) < 0)
		return -1;
	if (!streq(strempty(jstr(st, "tpm")), "available")) {
		why = jstr(st, "error");
		cli_check_add_line(o, "through tpmd: the TPM is unavailable: %s",
				   why ? why : "tpmd gives no reason");
		cli_check_add_line(o, "tpmd keeps trying; see 'edgeid system logs tpmd'");
		return -1;
	}
	if (tpmd_get(x, "http://tpmd.sock/get_tpm_keys?api-version=" TPMD_API_VERSION, &keys, o) <
	    0)
		return -1;
	ek64 = jstr(keys, "endorsement_key");
	buf_init(&ek, 4096);
	if (!ek64 || base64_decode(&ek, ek64, strlen(ek64), B64_STANDARD, NULL) < 0) {
		cli_check_add_line(o, "tpmd answered without an endorsement key");
		return -1;
	}
	ek_text(ek.data, ek.len, found, sizeof(found));
	cli_check_add_line(o, "through tpmd: %s", found);
	return 0;
}

/* Straight to the TPM, reading only (nothing is created). 0 with what was
 * found in o's reason, or -1 with why: the TPM library's sentence, which
 * is the one tpmd reports too. */
static int tpm_direct(struct ctx *x, struct outcome *o)
{
	const struct edgeid_config *c = NULL;
	const char *tcti = cli_check_dcfg_string(x, D_TPMD, "tcti");
	_cleanup_tpm_ struct tpm *t = NULL;
	_cleanup_buf_ struct buf ek = {0};
	struct err e = {0};
	char found[256];
	int r;

	if (!tcti && (c = cli_check_super_config(x)))
		tcti = c->tpm.tcti;
	if (!tcti)
		tcti = CONFIG_TCTI_DEFAULT;
	/* tpm2-tss prints its own lines for what fails; the reason is
	 * reported once, below. */
	setenv("TSS2_LOG", "all+none", 0);
	r = tpm_open(tcti, NULL, &t, &e);
	if (r < 0) {
		cli_check_add_line(o, "directly (tpmd is not answering): %s", err_msg(&e, r));
		return -1;
	}
	buf_init(&ek, 4096);
	r = tpm_read_public(t, TPM_EK_HANDLE, &ek, &e);
	if (r == -ENOENT) {
		cli_check_add_line(
		    o,
		    "directly (tpmd is not answering): the TPM at %s has no endorsement key at "
		    "0x%08x; tpmd creates it when it starts, or run 'edgeid tpm "
		    "provisioning-info'",
		    tcti, TPM_EK_HANDLE);
		return -1;
	}
	if (r < 0) {
		cli_check_add_line(o, "directly (tpmd is not answering): %s", err_msg(&e, r));
		return -1;
	}
	ek_text(ek.data, ek.len, found, sizeof(found));
	cli_check_add_line(o, "directly (tpmd is not answering): the TPM at %s: %s", tcti, found);
	return 0;
}

static void check_tpm(struct ctx *x, int arg, struct outcome *o)
{
	struct provisioning p;
	int r;

	(void)arg;
	cli_check_provisioning(x, &p);
	if (daemon_answers(x, D_TPMD) == 0)
		r = tpm_through_tpmd(x, o);
	else
		r = tpm_direct(x, o);
	if (r == 0) {
		o->result = RESULT_OK;
	} else if (p.method && streq(p.method, "tpm")) {
		o->result = RESULT_ERROR;
	} else {
		o->result = RESULT_SKIPPED;
		cli_check_add_line(o, "provisioning does not use the TPM");
	}
}

/* Whether identityd tries again, in the words `edgeid system status`
 * uses. */
static void retry_line(const json_t *s, struct outcome *o)
{
	const json_t *next = json_object_get(s, "next_attempt_in_sec");
	int64_t failures = 0;
	bool busy = false, retrying = false;
	char attempts[64] = "";

	(void)json_get_int_opt(s, "failures", 0, INT64_MAX, 0, &failures, NULL);
	(void)json_get_bool_opt(s, "busy", false, &busy, NULL);
	(void)json_get_bool_opt(s, "retrying", false, &retrying, NULL);
	if (failures > 0)
		snprintf(attempts, sizeof(attempts), " (%lld failed attempt%s)",
			 (long long)failures, failures == 1 ? "" : "s");
	if (busy)
		cli_check_add_line(o, "identityd is trying again now%s", attempts);
	else if (!retrying)
		cli_check_add_line(o, "identityd is not retrying until the settings change or "
				      "'edgeid system reprovision'");
	else if (json_is_integer(next))
		cli_check_add_line(o,
				   "identityd is retrying in %lld s%s; once the cause is fixed, "
				   "'edgeid system reprovision' tries at once",
				   (long long)json_integer_value(next), attempts);
	else
		cli_check_add_line(o,
				   "identityd is retrying soon%s; once the cause is fixed, 'edgeid "
				   "system reprovision' tries at once",
				   attempts);
}

static void check_provisioned(struct ctx *x, int arg, struct outcome *o)
{
	const json_t *s = identityd_status(x);
	const char *state, *last_error, *device_id, *hub_name, *from;
	bool verified = false;
	int64_t failures = 0;

	(void)arg;
	if (!s) {
		if (daemon_answers(x, D_IDENTITYD) < 0)
			cli_check_say(o, RESULT_SKIPPED, "identityd is not running");
		else if (x->status_r < 0)
			cli_check_say(o, RESULT_ERROR, "cannot ask identityd: %s",
				      err_msg(&x->status_e, x->status_r));
		else
			cli_check_say(o, RESULT_ERROR, "identityd answered %ld: %s", x->status_code,
				      x->status_code == 403
					  ? "permission denied; run 'edgeid check' as root"
					  : "unexpected answer");
		return;
	}
	state = jstr(s, "state");
	last_error = jstr(s, "last_error");
	device_id = jstr(s, "device.device_id");
	hub_name = jstr(s, "device.hub_name");
	from = jstr(s, "device.from");
	(void)json_get_bool_opt(s, "device.hub_verified", false, &verified, NULL);
	(void)json_get_int_opt(s, "failures", 0, INT64_MAX, 0, &failures, NULL);
	if (!state) {
		cli_check_say(o, RESULT_ERROR, "identityd's status has no state");
		return;
	}
	if (streq(state, "provisioned")) {
		if (verified || !last_error) {
			cli_check_say(o, RESULT_OK, "device '%s' in hub %s (from %s)",
				      strempty(device_id), strempty(hub_name), from ? from : "?");
			return;
		}
		/* The last error is the hub's, or DPS's when identityd kept
		 * the identity it had because DPS could not be reached. */
		cli_check_say(
		    o, RESULT_WARNING, "device '%s' in hub %s (from %s), not verified: %s",
		    strempty(device_id), strempty(hub_name), from ? from : "?", last_error);
		if (from && streq(from, "device_info"))
			cli_check_add_line(o,
					   "identityd keeps the identity it had; once the cause is "
					   "fixed, 'edgeid system reprovision' registers again");
		return;
	}
	if (streq(state, "unprovisioned")) {
		cli_check_say(
		    o, RESULT_WARNING,
		    "provisioning.source is \"none\": the device has no identity in a hub");
		return;
	}
	/* Failed, or trying again after attempts that failed: identityd's
	 * sentence for the last failure, then whether it tries again. */
	if (streq(state, "failed") || (last_error && failures > 0)) {
		cli_check_say(o, RESULT_ERROR, "%s",
			      last_error ? last_error : "provisioning failed");
		retry_line(s, o);
		return;
	}
	cli_check_say(o, RESULT_WARNING, "identityd is still provisioning the device");
	if (last_error)
		cli_check_add_line(o, "the last attempt failed: %s", last_error);
}

/* --- connectivity -------------------------------------------------------------- */

/* what: "DPS" or "the hub"; unreachable: what to look at when nothing
 * answers there. */
static void remote_outcome(struct remote *rm, const char *what, const char *unreachable,
			   struct outcome *o)
{
	char host[256];

	remote_host(rm->url, host, sizeof(host));
	if (rm->r == 0) {
		cli_check_say(o, RESULT_OK,
			      "%s answered HTTP %ld over TLS, its certificate trusted (%s)", host,
			      rm->status, rm->trust ? rm->trust : "the system store");
		return;
	}
	cli_check_say(o, RESULT_ERROR, "%s", err_msg(&rm->e, rm->r));
	if (rm->r == -EKEYREJECTED)
		cli_check_add_line(
		    o,
		    "trusted: %s%s; add the CA of %s's certificate to trust_bundle_cert or "
		    "to the system store",
		    rm->trust ? rm->trust : "the system store",
		    rm->trust ? " and the system store" : "", what);
	else if (rm->r == -ECONNREFUSED || rm->r == -EHOSTUNREACH || rm->r == -ENETUNREACH ||
		 rm->r == -ETIMEDOUT)
		cli_check_add_line(o, "%s", unreachable);
}

static void check_dps(struct ctx *x, int arg, struct outcome *o)
{
	struct remote *rm = dps(x, o);

	(void)arg;
	if (rm)
		remote_outcome(rm, "DPS",
			       "check provisioning.global_endpoint, and that DPS runs there and "
			       "this host can reach it",
			       o);
}

static void check_hub(struct ctx *x, int arg, struct outcome *o)
{
	struct remote *rm = hub(x, o);

	(void)arg;
	if (rm)
		remote_outcome(rm, "the hub",
			       "check that the hub runs there and that this host can reach it", o);
}

/* In the order they are run and printed. */
static const struct check checks[] = {
    {"config-well-formed", GROUP_CONFIGURATION, "config.toml is well-formed", check_super_config,
     0},
    {"keyd-config-well-formed", GROUP_CONFIGURATION, "keyd configuration is well-formed",
     check_daemon_config, D_KEYD},
    {"certd-config-well-formed", GROUP_CONFIGURATION, "certd configuration is well-formed",
     check_daemon_config, D_CERTD},
    {"tpmd-config-well-formed", GROUP_CONFIGURATION, "tpmd configuration is well-formed",
     check_daemon_config, D_TPMD},
    {"identityd-config-well-formed", GROUP_CONFIGURATION, "identityd configuration is well-formed",
     check_daemon_config, D_IDENTITYD},
    {"configs-up-to-date", GROUP_CONFIGURATION, "daemon configurations up-to-date with config.toml",
     check_configs_up_to_date, 0},
    {"host-local-time", GROUP_CONFIGURATION, "host time is close to reference time",
     check_host_time, 0},
    {"identity-certificate-expiry", GROUP_CONFIGURATION,
     "identity certificates are valid for at least 7 days", cli_check_identity_expiry, 0},
    {"trust-bundle-expiry", GROUP_CONFIGURATION,
     "trusted CA certificates are valid for at least 7 days", cli_check_trust_expiry, 0},
    {"certd-store-expiry", GROUP_CONFIGURATION,
     "certificates in certd's store are valid for at least 7 days", cli_check_store_expiry, 0},
    {"keyd-running", GROUP_CONFIGURATION, "keyd is running", check_running, D_KEYD},
    {"certd-running", GROUP_CONFIGURATION, "certd is running", check_running, D_CERTD},
    {"tpmd-running", GROUP_CONFIGURATION, "tpmd is running", check_running, D_TPMD},
    {"identityd-running", GROUP_CONFIGURATION, "identityd is running", check_running, D_IDENTITYD},
    {"tpm-endorsement-key", GROUP_CONFIGURATION, "TPM is reachable and has an endorsement key",
     check_tpm, 0},
    {"identityd-provisioned", GROUP_CONFIGURATION, "identityd has provisioned the device",
     check_provisioned, 0},
    {"host-connect-dps-endpoint", GROUP_CONNECTIVITY,
     "host can connect to and perform TLS handshake with DPS endpoint", check_dps, 0},
    {"host-connect-iothub", GROUP_CONNECTIVITY,
     "host can connect to and perform TLS handshake with IoT Hub HTTPS port", check_hub, 0},
};

/* --- options ------------------------------------------------------------------------ */

struct opts {
	const char *config;
	const char *root;
	const char *output;
	bool dont_run[ARRAY_SIZE(checks)];
	bool verbose;
	bool warnings_as_errors;
	bool list;
	bool help;
};

static void usage(FILE *out)
{
	fprintf(out, "Usage: " PROG " [-c FILE] [--root DIR] [-o text|json] [--dont-run IDS]\n"
		     "                    [--verbose] [--warnings-as-errors] [--list]\n"
		     "\n"
		     "Check the device the way 'iotedge check' does: the configuration, the\n"
		     "daemons, the TPM, provisioning, the clock, certificate expiry, and the\n"
		     "connection to DPS and the hub. One line per check: OK, Warning or Error,\n"
		     "with the reason. Exits 1 when a check raised an error.\n"
		     "\n"
		     "Options:\n"
		     "  -c, --config FILE     the super-config (default " CONFIG_DEFAULT_PATH ")\n"
		     "  --root DIR            the device under DIR: its configuration, sockets\n"
		     "                        and files (also EDGEID_ROOT)\n"
		     "  -o, --output FORMAT   text (default) or json\n"
		     "  --dont-run IDS        do not run these checks (ids separated by spaces or\n"
		     "                        commas; the option may be repeated)\n"
		     "  --verbose             also print what the checks that passed found\n"
		     "  --warnings-as-errors  exit 1 when a check raised a warning too\n"
		     "  -l, --list            list the checks and exit\n"
		     "  -h, --help            show this help\n"
		     "\n"
		     "See edgeid(1).\n");
}

static int find_check(const char *id, size_t len)
{
	for (size_t i = 0; i < ARRAY_SIZE(checks); i++)
		if (strlen(checks[i].id) == len && strneq(checks[i].id, id, len))
			return (int)i;
	return -1;
}

static int parse_dont_run(const char *list, struct opts *o)
{
	for (const char *p = list; *p;) {
		size_t len;
		int i;

		p += strspn(p, " ,\t");
		len = strcspn(p, " ,\t");
		if (len == 0)
			break;
		i = find_check(p, len);
		if (i < 0)
			return cli_usage_error(PROG, NULL,
					       "--dont-run: unknown check '%.*s'; '" PROG
					       " --list' lists them",
					       (int)len, p);
		o->dont_run[i] = true;
		p += len;
	}
	return -1;
}

/* Returns -1 when parsed, otherwise the exit status. */
static int parse_opts(int argc, char **argv, struct opts *o)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char **dst = NULL;
		const char *val = NULL, *dont_run = NULL;
		size_t eq = strcspn(a, "=");
		char name[32];

		if (a[0] != '-' || streq(a, "-"))
			return cli_usage_error(PROG, NULL, "unexpected argument '%s'", a);
		if (strneq(a, "--", 2) && a[eq] == '=') {
			if (eq >= sizeof(name))
				return cli_usage_error(PROG, NULL, "unknown option '%s'", a);
			memcpy(name, a, eq);
			name[eq] = '\0';
			val = a + eq + 1;
		} else if (strneq(a, "-c", 2) && a[2]) {
			snprintf(name, sizeof(name), "-c");
			val = a + 2;
		} else if (strneq(a, "-o", 2) && a[2]) {
			snprintf(name, sizeof(name), "-o");
			val = a + 2;
		} else {
			snprintf(name, sizeof(name), "%s", a);
		}
		if (!val) {
			bool *flag = NULL;

			if (streq(name, "-h") || streq(name, "--help"))
				flag = &o->help;
			else if (streq(name, "-l") || streq(name, "--list"))
				flag = &o->list;
			else if (streq(name, "--verbose"))
				flag = &o->verbose;
			else if (streq(name, "--warnings-as-errors"))
				flag = &o->warnings_as_errors;
			if (flag) {
				*flag = true;
				continue;
			}
		}
		if (streq(name, "-c") || streq(name, "--config") || streq(name, "--config-file"))
			dst = &o->config;
		else if (streq(name, "--root"))
			dst = &o->root;
		else if (streq(name, "-o") || streq(name, "--output"))
			dst = &o->output;
		else if (streq(name, "--dont-run"))
			dst = &dont_run;
		else
			return cli_usage_error(PROG, NULL, "unknown option '%s'", a);
		if (!val) {
			if (i + 1 >= argc)
				return cli_usage_error(PROG, NULL, "option '%s' needs a value", a);
			val = argv[++i];
		}
		if (!*val)
			return cli_usage_error(PROG, NULL, "option '%s' needs a non-empty value",
					       name);
		*dst = val;
		if (dont_run) {
			int r = parse_dont_run(dont_run, o);

			if (r >= 0)
				return r;
		}
	}
	if (o->output && !streq(o->output, "text") && !streq(o->output, "json"))
		return cli_usage_error(PROG, NULL, "--output: expected text or json, got \"%s\"",
				       o->output);
	return -1;
}

/* --- output -------------------------------------------------------------------------- */

static bool use_colour(void)
{
	const char *term = getenv("TERM");

	return isatty(STDOUT_FILENO) && !getenv("NO_COLOR") && !(term && streq(term, "dumb"));
}

static void print_list(void)
{
	printf("%-30s %s\n", "CHECK", "DESCRIPTION");
	for (size_t i = 0; i < ARRAY_SIZE(checks); i++)
		printf("%-30s %s\n", checks[i].id, checks[i].description);
}

static void print_text(const struct check *c, const struct outcome *o, bool colour, bool verbose)
{
	static const char *const marks[] = {"\u221a", "\u203c", "\u00d7", "-"};
	static const char *const words[] = {"OK", "Warning", "Error", "Skipped"};
	static const char *const colours[] = {"\033[32m", "\033[33m", "\033[31m", ""};
	const char *on = colour ? colours[o->result] : "", *off = colour && *on ? "\033[0m" : "";
	bool show = o->result != RESULT_OK || verbose;

	printf("%s%s %s - %s%s\n", on, marks[o->result], c->description, words[o->result], off);
	if (!show)
		return;
	for (const char *p = buf_str(&o->reason); *p;) {
		size_t len = strcspn(p, "\n");

		printf("%s    %.*s%s\n", on, (int)len, p, off);
		p += len + (p[len] == '\n');
	}
}

static json_t *json_result(const struct check *c, const struct outcome *o)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:s?}", "id", c->id, "group", group_json[c->group],
			 "description", c->description, "result", result_json[o->result], "reason",
			 o->reason.len ? buf_str(&o->reason) : NULL);
}

static void ctx_clear(struct ctx *x)
{
	free(x->root);
	free(x->config_path);
	config_free(x->super);
	for (size_t d = 0; d < D_COUNT; d++) {
		daemon_config_free(x->dcfg[d]);
		buf_free(&x->dcheck[d].out);
		buf_free(&x->dcheck[d].errs);
		free(x->sock[d]);
	}
	json_decref(x->status);
	free(x->dps.url);
	free(x->dps.trust);
	free(x->hub.url);
	free(x->hub.trust);
}

int cli_check_main(int argc, char **argv)
{
	struct opts o = {0};
	struct ctx x = {0};
	size_t counts[4] = {0};
	bool json, colour;
	json_t *results = NULL;
	int r, last_group = -1;

	r = parse_opts(argc, argv, &o);
	if (r >= 0)
		return r;
	if (o.help) {
		usage(stdout);
		return CLI_EXIT_OK;
	}
	if (o.list) {
		print_list();
		return CLI_EXIT_OK;
	}
	json = o.output && streq(o.output, "json");
	colour = !json && use_colour();
	if (cli_probe_root(o.root, &x.root) < 0) {
		fprintf(stderr, PROG ": out of memory\n");
		return CLI_EXIT_FAILURE;
	}
	x.config_path = o.config ? strdup(o.config) : cli_check_under_root(&x, CONFIG_DEFAULT_PATH);
	if (json)
		results = json_array();
	if (!x.config_path || (json && !results)) {
		fprintf(stderr, PROG ": out of memory\n");
		ctx_clear(&x);
		return CLI_EXIT_FAILURE;
	}

	for (size_t i = 0; i < ARRAY_SIZE(checks); i++) {
		const struct check *c = &checks[i];
		struct outcome out = {.result = RESULT_OK};

		buf_init(&out.reason, CLI_CHECK_REASON_MAX);
		if (o.dont_run[i])
			cli_check_say(&out, RESULT_SKIPPED, "not run (--dont-run)");
		else
			c->run(&x, c->arg, &out);
		counts[out.result]++;
		if (json) {
			json_array_append_new(results, json_result(c, &out));
		} else {
			if ((int)c->group != last_group) {
				size_t len = strlen(group_title[c->group]);

				printf("%s%s\n", last_group < 0 ? "" : "\n", group_title[c->group]);
				for (size_t k = 0; k < len; k++)
					putchar('-');
				putchar('\n');
				last_group = (int)c->group;
			}
			print_text(c, &out, colour, o.verbose);
			fflush(stdout);
		}
		buf_free(&out.reason);
	}

	if (json) {
		_cleanup_json_ json_t *root = json_pack(
		    "{s:o, s:{s:I, s:I, s:I, s:I}}", "checks", results, "summary", "succeeded",
		    (json_int_t)counts[RESULT_OK], "warnings", (json_int_t)counts[RESULT_WARNING],
		    "errors", (json_int_t)counts[RESULT_ERROR], "skipped",
		    (json_int_t)counts[RESULT_SKIPPED]);

		if (!root || json_dumpf(root, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER) < 0) {
			fprintf(stderr, PROG ": out of memory\n");
			ctx_clear(&x);
			return CLI_EXIT_FAILURE;
		}
		putchar('\n');
	} else {
		printf(
		    "\n%zu check(s) succeeded. %zu check(s) raised warnings. %zu check(s) raised "
		    "errors.",
		    counts[RESULT_OK], counts[RESULT_WARNING], counts[RESULT_ERROR]);
		if (counts[RESULT_SKIPPED] > 0)
			printf(" %zu check(s) were skipped.", counts[RESULT_SKIPPED]);
		putchar('\n');
	}
	ctx_clear(&x);
	if (fflush(stdout) != 0) {
		fprintf(stderr, PROG ": writing the output: %s\n", strerror(errno));
		return CLI_EXIT_FAILURE;
	}
	if (counts[RESULT_ERROR] > 0 || (o.warnings_as_errors && counts[RESULT_WARNING] > 0))
		return CLI_EXIT_FAILURE;
	return CLI_EXIT_OK;
}
