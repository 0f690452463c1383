/* SPDX-License-Identifier: MIT */
/*
 * The edgeid-cloud config file: the shared [store] and [tls] tables, the
 * keys every service table has (listen, host_name, workers, tls_*), and
 * the helpers services use to read their own keys with errors that say
 * FILE:LINE:COL: PATH: what was expected.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cloud/cloud.h"
#include "common/macro.h"

#define KEYPATH_MAX 256
#define DEFAULT_STORE_URL "sqlite:///var/lib/edgeid-cloud/cloud.db"
#define WORKERS_MAX 256

static const char *const common_keys[] = {
    "listen", "host_name", "workers", "tls_cert", "tls_key", NULL,
};

static void path_join(char out[KEYPATH_MAX], const char *tpath, const char *key)
{
	if (tpath && *tpath)
		snprintf(out, KEYPATH_MAX, "%s.%s", tpath, key);
	else
		snprintf(out, KEYPATH_MAX, "%s", key);
}

int cloud_config_fail(const struct cloud_config *cfg, struct toml_pos pos, const char *path,
		      struct err *e, const char *fmt, ...)
{
	char msg[ERR_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return err_set(e, -EINVAL, "%s:%u:%u: %s: %s", cfg->path, pos.line, pos.col, path, msg);
}

static int fail_type(const struct cloud_config *cfg, const struct toml_value *v, const char *path,
		     const char *expected, struct err *e)
{
	char got[128];

	toml_describe(v, got, sizeof(got));
	return cloud_config_fail(cfg, v->pos, path, e, "expected %s, got %s", expected, got);
}

static int fail_missing(const struct cloud_config *cfg, const struct toml_value *table,
			const char *path, struct err *e)
{
	return cloud_config_fail(cfg, table->pos, path, e, "missing required key");
}

int cloud_config_check_keys(const struct cloud_config *cfg, const struct toml_value *table,
			    const char *tpath, const char *const *known, bool common_too,
			    struct err *e)
{
	for (size_t i = 0; i < table->table.n; i++) {
		const struct toml_kv *kv = &table->table.items[i];
		bool found = false;
		char path[KEYPATH_MAX];

		for (const char *const *k = known; k && *k && !found; k++)
			found = streq(*k, kv->key);
		for (const char *const *k = common_keys; common_too && *k && !found; k++)
			found = streq(*k, kv->key);
		if (found)
			continue;
		path_join(path, tpath, kv->key);
		return cloud_config_fail(cfg, kv->key_pos, path, e, "unknown key");
	}
	return 0;
}

int cloud_config_string(const struct cloud_config *cfg, const struct toml_value *table,
			const char *tpath, const char *key, bool required, const char **ret,
			struct err *e)
{
	const struct toml_value *v = toml_table_get(table, key);
	char path[KEYPATH_MAX];

	*ret = NULL;
	path_join(path, tpath, key);
	if (!v)
		return required ? fail_missing(cfg, table, path, e) : 0;
	if (v->type != TOML_STRING)
		return fail_type(cfg, v, path, "a string", e);
	if (strlen(v->str.ptr) != v->str.len)
		return cloud_config_fail(cfg, v->pos, path, e,
					 "expected a string without NUL characters");
	if (v->str.len == 0)
		return cloud_config_fail(cfg, v->pos, path, e,
					 "expected a non-empty string, got \"\"");
	*ret = v->str.ptr;
	return 0;
}

int cloud_config_int(const struct cloud_config *cfg, const struct toml_value *table,
		     const char *tpath, const char *key, bool required, int64_t min, int64_t max,
		     int64_t def, int64_t *ret, struct err *e)
{
	const struct toml_value *v = toml_table_get(table, key);
	char path[KEYPATH_MAX], expected[96];

	*ret = def;
	path_join(path, tpath, key);
	if (!v)
		return required ? fail_missing(cfg, table, path, e) : 0;
	snprintf(expected, sizeof(expected), "an integer from %lld to %lld", (long long)min,
		 (long long)max);
	if (v->type != TOML_INTEGER || v->integer < min || v->integer > max)
		return fail_type(cfg, v, path, expected, e);
	*ret = v->integer;
	return 0;
}

int cloud_config_bool(const struct cloud_config *cfg, const struct toml_value *table,
		      const char *tpath, const char *key, bool def, bool *ret, struct err *e)
{
	const struct toml_value *v = toml_table_get(table, key);
	char path[KEYPATH_MAX];

	*ret = def;
	if (!v)
		return 0;
	path_join(path, tpath, key);
	if (v->type != TOML_BOOL)
		return fail_type(cfg, v, path, "true or false", e);
	*ret = v->boolean;
	return 0;
}

int cloud_config_table_array(const struct cloud_config *cfg, const struct toml_value *table,
			     const char *tpath, const char *key, const struct toml_value **ret,
			     struct err *e)
{
	const struct toml_value *v = toml_table_get(table, key);
	char path[KEYPATH_MAX];

	*ret = NULL;
	if (!v)
		return 0;
	path_join(path, tpath, key);
	if (v->type != TOML_ARRAY)
		return fail_type(cfg, v, path, "an array of tables", e);
	for (size_t i = 0; i < v->array.n; i++) {
		char ipath[KEYPATH_MAX + 24];

		if (v->array.items[i]->type == TOML_TABLE)
			continue;
		snprintf(ipath, sizeof(ipath), "%s[%zu]", path, i);
		return fail_type(cfg, v->array.items[i], ipath, "a table", e);
	}
	*ret = v;
	return 0;
}

int cloud_config_strings(const struct cloud_config *cfg, const struct toml_value *table,
			 const char *tpath, const char *key, const char ***ret, struct err *e)
{
	const struct toml_value *v = toml_table_get(table, key);
	const struct toml_value *const *items;
	_cleanup_free_ const char **list = NULL;
	char path[KEYPATH_MAX];
	size_t n;

	*ret = NULL;
	if (!v)
		return 0;
	path_join(path, tpath, key);
	if (v->type == TOML_STRING) {
		items = (const struct toml_value *const *)&v;
		n = 1;
	} else if (v->type == TOML_ARRAY) {
		items = (const struct toml_value *const *)v->array.items;
		n = v->array.n;
	} else {
		return fail_type(cfg, v, path, "a string or an array of strings", e);
	}
	list = calloc(n + 1, sizeof(*list));
	if (!list)
		return err_set(e, -ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		const struct toml_value *it = items[i];
		char ipath[KEYPATH_MAX + 24];

		if (v->type == TOML_ARRAY)
			snprintf(ipath, sizeof(ipath), "%s[%zu]", path, i);
		else
			snprintf(ipath, sizeof(ipath), "%s", path);
		if (it->type != TOML_STRING || it->str.len == 0 ||
		    strlen(it->str.ptr) != it->str.len)
			return fail_type(cfg, it, ipath, "a non-empty string", e);
		list[i] = it->str.ptr;
	}
	*ret = TAKE_PTR(list);
	return 0;
}

/* --- the runtime's own tables ------------------------------------------ */

static int dup_opt(const char *s, char **ret, struct err *e)
{
	*ret = NULL;
	if (!s)
		return 0;
	*ret = strdup(s);
	return *ret ? 0 : err_set(e, -ENOMEM, "out of memory");
}

/* "127.0.0.2:443", "[::1]:8443" */
static int parse_listen(const struct cloud_config *cfg, const struct toml_value *v,
			const char *path, struct cloud_listen *ret, struct err *e)
{
	static const char expected[] = "an address and port like \"127.0.0.2:443\" or "
				       "\"[::1]:443\" (numeric address)";
	const char *s = v->str.ptr, *colon, *host_start, *host_end;
	char host[INET6_ADDRSTRLEN + 1];
	unsigned char addr[sizeof(struct in6_addr)];
	unsigned long port = 0;
	bool v6;

	if (v->type != TOML_STRING || strlen(s) != v->str.len)
		return fail_type(cfg, v, path, expected, e);
	v6 = s[0] == '[';
	if (v6) {
		host_start = s + 1;
		host_end = strchr(s, ']');
		if (!host_end || host_end[1] != ':')
			return fail_type(cfg, v, path, expected, e);
		colon = host_end + 1;
	} else {
		host_start = s;
		colon = strrchr(s, ':');
		if (!colon)
			return fail_type(cfg, v, path, expected, e);
		host_end = colon;
	}
	if ((size_t)(host_end - host_start) >= sizeof(host) || host_end == host_start)
		return fail_type(cfg, v, path, expected, e);
	memcpy(host, host_start, (size_t)(host_end - host_start));
	host[host_end - host_start] = '\0';
	if (inet_pton(v6 ? AF_INET6 : AF_INET, host, addr) != 1)
		return fail_type(cfg, v, path, expected, e);
	/* The port: 1 to 5 digits, 1..65535. */
	{
		const char *p = colon + 1;
		size_t nd = 0;

		for (; *p >= '0' && *p <= '9' && nd < 6; p++, nd++)
			port = port * 10 + (unsigned long)(*p - '0');
		if (*p || nd == 0 || nd > 5 || port == 0 || port > 65535)
			return cloud_config_fail(cfg, v->pos, path, e,
						 "expected a port from 1 to 65535 after the "
						 "address, got \"%s\"",
						 colon + 1);
	}
	ret->host = strdup(host);
	if (!ret->host)
		return err_set(e, -ENOMEM, "out of memory");
	ret->port = (uint16_t)port;
	return 0;
}

static int parse_common(struct cloud_setup *s, struct cloud_service_instance *si, struct err *e)
{
	const struct cloud_config *cfg = &s->cfg;
	const struct toml_value *t = si->table, *listen;
	const char *name = si->service->name, *str;
	struct cloud_service_common *c = &si->common;
	char path[KEYPATH_MAX];
	int64_t workers;
	long ncpu;
	int r;

	listen = toml_table_get(t, "listen");
	path_join(path, name, "listen");
	if (!listen)
		return fail_missing(cfg, t, path, e);
	if (listen->type == TOML_STRING) {
		r = parse_listen(cfg, listen, path, &c->listen[0], e);
		if (r < 0)
			return r;
		c->n_listen = 1;
	} else if (listen->type == TOML_ARRAY) {
		if (listen->array.n == 0 || listen->array.n > CLOUD_MAX_LISTEN)
			return cloud_config_fail(cfg, listen->pos, path, e,
						 "expected 1 to %d addresses, got %zu",
						 CLOUD_MAX_LISTEN, listen->array.n);
		for (size_t i = 0; i < listen->array.n; i++) {
			char ipath[KEYPATH_MAX + 24];

			snprintf(ipath, sizeof(ipath), "%s[%zu]", path, i);
			r = parse_listen(cfg, listen->array.items[i], ipath, &c->listen[i], e);
			if (r < 0)
				return r;
			c->n_listen = i + 1;
		}
	} else {
		return fail_type(cfg, listen, path,
				 "an array of addresses like [\"127.0.0.2:443\"]", e);
	}

	r = cloud_config_string(cfg, t, name, "host_name", false, &str, e);
	if (r < 0)
		return r;
	r = dup_opt(str ? str : c->listen[0].host, &c->host_name, e);
	if (r < 0)
		return r;

	ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	if (ncpu < 1)
		ncpu = 1;
	if (ncpu > WORKERS_MAX)
		ncpu = WORKERS_MAX;
	r = cloud_config_int(cfg, t, name, "workers", false, 1, WORKERS_MAX, ncpu, &workers, e);
	if (r < 0)
		return r;
	c->workers = (unsigned)workers;

	r = cloud_config_string(cfg, t, name, "tls_cert", false, &str, e);
	if (r < 0)
		return r;
	r = dup_opt(str ? str : cfg->tls_cert_file, &c->tls_cert_file, e);
	if (r < 0)
		return r;
	r = cloud_config_string(cfg, t, name, "tls_key", false, &str, e);
	if (r < 0)
		return r;
	return dup_opt(str ? str : cfg->tls_key_file, &c->tls_key_file, e);
}

/* After the service's own keys (so that a misspelled key is reported as
 * such rather than as a missing certificate). */
static int check_tls(const struct cloud_config *cfg, const struct cloud_service_instance *si,
		     struct err *e)
{
	const struct cloud_service_common *c = &si->common;
	const char *name = si->service->name;
	char path[KEYPATH_MAX];

	if (!c->tls_cert_file || !c->tls_key_file) {
		path_join(path, name, c->tls_cert_file ? "tls_key" : "tls_cert");
		return cloud_config_fail(cfg, si->table->pos, path, e,
					 "missing required key (and no [tls] %s to default to)",
					 c->tls_cert_file ? "key" : "cert");
	}
	return 0;
}

static int parse_shared(struct cloud_setup *s, struct err *e)
{
	static const char *const store_keys[] = {"url", NULL};
	static const char *const tls_keys[] = {"cert", "key", "client_ca", NULL};
	struct cloud_config *cfg = &s->cfg;
	const struct toml_value *t;
	const char *str;
	int r;

	t = toml_table_get(cfg->root, "store");
	if (t) {
		r = cloud_config_check_keys(cfg, t, "store", store_keys, false, e);
		if (r < 0)
			return r;
		r = cloud_config_string(cfg, t, "store", "url", true, &str, e);
		if (r < 0)
			return r;
		if (!strneq(str, "sqlite://", 9) && !strneq(str, "postgresql://", 13) &&
		    !strneq(str, "postgres://", 11))
			return fail_type(
			    cfg, toml_table_get(t, "url"), "store.url",
			    "a URL like \"sqlite:///var/lib/edgeid-cloud/cloud.db\" or "
			    "\"postgresql://...\"",
			    e);
	} else {
		str = DEFAULT_STORE_URL;
	}
	r = dup_opt(str, &cfg->store_url, e);
	if (r < 0)
		return r;

	t = toml_table_get(cfg->root, "tls");
	if (!t)
		return 0;
	r = cloud_config_check_keys(cfg, t, "tls", tls_keys, false, e);
	if (r < 0)
		return r;
	r = cloud_config_string(cfg, t, "tls", "cert", false, &str, e);
	if (r >= 0)
		r = dup_opt(str, &cfg->tls_cert_file, e);
	if (r >= 0)
		r = cloud_config_string(cfg, t, "tls", "key", false, &str, e);
	if (r >= 0)
		r = dup_opt(str, &cfg->tls_key_file, e);
	if (r >= 0)
		r = cloud_config_string(cfg, t, "tls", "client_ca", false, &str, e);
	if (r >= 0)
		r = dup_opt(str, &cfg->tls_client_ca_file, e);
	if (r < 0)
		return r;
	if (!cfg->tls_cert_file != !cfg->tls_key_file)
		return cloud_config_fail(cfg, t->pos, cfg->tls_cert_file ? "tls.key" : "tls.cert",
					 e, "missing required key (cert and key go together)");
	return 0;
}

int cloud_setup_load(const char *path, const struct cloud_service *const *services,
		     size_t n_services, struct cloud_setup **ret, struct err *e)
{
	_cleanup_(cloud_setup_freep) struct cloud_setup *s = NULL;
	struct cloud_config *cfg;
	int r;

	*ret = NULL;
	if (n_services > CLOUD_MAX_SERVICES)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return err_set(e, -ENOMEM, "out of memory");
	cfg = &s->cfg;
	cfg->path = strdup(path);
	if (!cfg->path)
		return err_set(e, -ENOMEM, "out of memory");
	r = toml_parse_file(path, &cfg->doc, e);
	if (r < 0)
		return r;
	cfg->root = cfg->doc;

	/* Every top-level key must be a table we know. */
	for (size_t i = 0; i < cfg->root->table.n; i++) {
		const struct toml_kv *kv = &cfg->root->table.items[i];
		bool known = streq(kv->key, "store") || streq(kv->key, "tls");
		char names[128] = "";
		size_t off = 0;

		for (size_t j = 0; j < n_services && !known; j++)
			known = streq(kv->key, services[j]->name);
		if (!known) {
			for (size_t j = 0; j < n_services; j++) {
				int w = snprintf(names + off, sizeof(names) - off, "[%s], ",
						 services[j]->name);
				if (w > 0 && (size_t)w < sizeof(names) - off)
					off += (size_t)w;
			}
			return cloud_config_fail(cfg, kv->key_pos, kv->key, e,
						 "unknown table (expected [store], [tls], %s)",
						 off ? (names[off - 2] = '\0', names) : "");
		}
		if (kv->value->type != TOML_TABLE)
			return fail_type(cfg, kv->value, kv->key, "a table", e);
	}

	r = parse_shared(s, e);
	if (r < 0)
		return r;

	for (size_t j = 0; j < n_services; j++) {
		const struct toml_value *t = toml_table_get(cfg->root, services[j]->name);
		struct cloud_service_instance *si;

		if (!t)
			continue;
		si = &s->services[s->n_services++];
		si->service = services[j];
		si->table = t;
		r = parse_common(s, si, e);
		if (r < 0)
			return r;
		if (si->service->config_parse) {
			r = si->service->config_parse(t, cfg, &si->common, &si->settings, e);
			if (r < 0)
				return err_isset(e) ? r
						    : err_set(e, r, "%s: [%s]: %s", cfg->path,
							      si->service->name, strerror(-r));
		}
		r = check_tls(cfg, si, e);
		if (r < 0)
			return r;
	}
	*ret = TAKE_PTR(s);
	return 0;
}

const struct cloud_service_instance *cloud_setup_find(const struct cloud_setup *s, const char *name)
{
	for (size_t i = 0; s && i < s->n_services; i++)
		if (streq(s->services[i].service->name, name))
			return &s->services[i];
	return NULL;
}

void cloud_setup_free(struct cloud_setup *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n_services; i++) {
		struct cloud_service_instance *si = &s->services[i];

		if (si->settings && si->service->config_free)
			si->service->config_free(si->settings);
		for (size_t l = 0; l < si->common.n_listen; l++)
			free(si->common.listen[l].host);
		free(si->common.host_name);
		free(si->common.tls_cert_file);
		free(si->common.tls_key_file);
	}
	free(s->cfg.path);
	free(s->cfg.store_url);
	free(s->cfg.tls_cert_file);
	free(s->cfg.tls_key_file);
	free(s->cfg.tls_client_ca_file);
	toml_free(s->cfg.doc);
	free(s);
}
