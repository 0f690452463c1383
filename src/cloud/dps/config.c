/* SPDX-License-Identifier: MIT */
/*
 * The [dps] table of the edgeid-cloud config file (the runtime has taken
 * listen, host_name, workers, tls_cert and tls_key already):
 *
 *   [dps]
 *   id_scope = "0ne00000A0A"                  required
 *   allocation_policy = "hashed"              hashed | geoLatency | static | custom
 *   retry_after = 1                           seconds on every 202 (1..60)
 *   register_wait_ms = 250                    hold register for the assignment (0..5000)
 *   assignment_threads = 16                   per worker process (1..64)
 *   assignment_stale_seconds = 30             (5..3600)
 *   hub_ca_file = "/path/ca.pem"              trust for linked hubs (default: system)
 *   webhook_ca_file = "/path/ca.pem"          trust for custom allocation webhooks
 *   [[dps.shared_access_policy]]              the enrollment API's credentials
 *   name = "provisioningserviceowner"
 *   primary_key = "<base64>"
 *   secondary_key = "<base64>"                optional
 *   [[dps.linked_hub]]
 *   connection_string = "HostName=..;SharedAccessKeyName=..;SharedAccessKey=.."
 *   allocation_weight = 1                     1..1000
 *   apply_allocation_policy = true
 *   ca_file = "/path/ca.pem"                  optional, overrides hub_ca_file
 *   [[dps.ca_certificate]]                    CAs trusted for X.509 groups
 *   name = "root"
 *   certificate = "/path/root.pem"
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "cloud/dps/cert.h"
#include "cloud/dps/dps.h"
#include "common/encode.h"
#include "common/toml.h"

struct cfgctx {
	const char *file;
	struct err *e;
};

static int fail(const struct cfgctx *c, const struct toml_pos *pos, const char *key,
		const char *fmt, ...) _printf_(4, 5);
static int fail(const struct cfgctx *c, const struct toml_pos *pos, const char *key,
		const char *fmt, ...)
{
	char what[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	return err_set(c->e, -EINVAL, "%s:%u:%u: %s: %s", c->file, pos ? pos->line : 1,
		       pos ? pos->col : 1, key, what);
}

/* "prefix.name" for messages; a name too long for the buffer is cut, which
 * only shortens a message. */
static const char *join_key(char *buf, size_t size, const char *prefix, const char *name)
{
	int n = snprintf(buf, size, "%s.%s", prefix, name);

	if (n < 0 || (size_t)n >= size)
		buf[size - 1] = '\0';
	return buf;
}

static int get_string(const struct cfgctx *c, const struct toml_value *table, const char *prefix,
		      const char *name, bool required, char **ret)
{
	const struct toml_kv *kv = toml_table_find(table, name);
	char key[128];

	join_key(key, sizeof(key), prefix, name);
	if (!kv) {
		if (required)
			return fail(c, &table->pos, key, "missing (expected a string)");
		return 0;
	}
	if (kv->value->type != TOML_STRING)
		return fail(c, &kv->value->pos, key, "expected a string, got %s",
			    toml_type_name(kv->value->type));
	if (kv->value->str.len == 0 || strlen(kv->value->str.ptr) != kv->value->str.len)
		return fail(c, &kv->value->pos, key, "expected a non-empty string");
	free(*ret);
	*ret = strdup(kv->value->str.ptr);
	return *ret ? 0 : -ENOMEM;
}

static int get_uint(const struct cfgctx *c, const struct toml_value *table, const char *prefix,
		    const char *name, unsigned min, unsigned max, unsigned *ret)
{
	const struct toml_kv *kv = toml_table_find(table, name);
	char key[128];

	join_key(key, sizeof(key), prefix, name);
	if (!kv)
		return 0;
	if (kv->value->type != TOML_INTEGER || kv->value->integer < min || kv->value->integer > max)
		return fail(c, &kv->value->pos, key, "expected an integer from %u to %u", min, max);
	*ret = (unsigned)kv->value->integer;
	return 0;
}

static int get_bool(const struct cfgctx *c, const struct toml_value *table, const char *prefix,
		    const char *name, bool *ret)
{
	const struct toml_kv *kv = toml_table_find(table, name);
	char key[128];

	join_key(key, sizeof(key), prefix, name);
	if (!kv)
		return 0;
	if (kv->value->type != TOML_BOOL)
		return fail(c, &kv->value->pos, key, "expected true or false, got %s",
			    toml_type_name(kv->value->type));
	*ret = kv->value->boolean;
	return 0;
}

/* Every key of table must be one of known (NULL-terminated). */
static int check_keys(const struct cfgctx *c, const struct toml_value *table, const char *prefix,
		      const char *const *known)
{
	for (size_t i = 0; i < table->table.n; i++) {
		const struct toml_kv *kv = &table->table.items[i];
		bool ok = false;
		char key[160];

		for (const char *const *k = known; *k; k++)
			if (streq(kv->key, *k))
				ok = true;
		if (ok)
			continue;
		join_key(key, sizeof(key), prefix, kv->key);
		return fail(c, &kv->key_pos, key, "unknown key");
	}
	return 0;
}

/* An array of tables under name: each item is passed to fn. */
static int each_table(const struct cfgctx *c, const struct toml_value *table, const char *name,
		      int (*fn)(const struct cfgctx *, const struct toml_value *, const char *,
				struct dps_settings *),
		      struct dps_settings *s)
{
	const struct toml_kv *kv = toml_table_find(table, name);
	char key[128];
	int r;

	if (!kv)
		return 0;
	snprintf(key, sizeof(key), "dps.%s", name);
	if (kv->value->type != TOML_ARRAY)
		return fail(c, &kv->value->pos, key, "expected an array of tables ([[%s]])", key);
	for (size_t i = 0; i < kv->value->array.n; i++) {
		const struct toml_value *item = kv->value->array.items[i];
		char prefix[128];

		snprintf(prefix, sizeof(prefix), "dps.%s[%zu]", name, i);
		if (item->type != TOML_TABLE)
			return fail(c, &item->pos, prefix, "expected a table, got %s",
				    toml_type_name(item->type));
		r = fn(c, item, prefix, s);
		if (r < 0)
			return r;
	}
	return 0;
}

static int parse_policy(const struct cfgctx *c, const struct toml_value *t, const char *prefix,
			struct dps_settings *s)
{
	static const char *const known[] = {"name", "primary_key", "secondary_key", NULL};
	struct dps_policy p = {0};
	struct dps_policy *grown;
	char key[160];
	int r;

	r = check_keys(c, t, prefix, known);
	if (r >= 0)
		r = get_string(c, t, prefix, "name", true, &p.name);
	if (r >= 0)
		r = get_string(c, t, prefix, "primary_key", true, &p.primary_key);
	if (r >= 0)
		r = get_string(c, t, prefix, "secondary_key", false, &p.secondary_key);
	if (r >= 0 && !dps_valid_key(p.primary_key)) {
		snprintf(key, sizeof(key), "%s.primary_key", prefix);
		r = fail(c, &toml_table_find(t, "primary_key")->value->pos, key,
			 "expected base64 of %d to %d bytes", DPS_KEY_MIN_BYTES, DPS_KEY_MAX_BYTES);
	}
	if (r >= 0 && p.secondary_key && !dps_valid_key(p.secondary_key)) {
		snprintf(key, sizeof(key), "%s.secondary_key", prefix);
		r = fail(c, &toml_table_find(t, "secondary_key")->value->pos, key,
			 "expected base64 of %d to %d bytes", DPS_KEY_MIN_BYTES, DPS_KEY_MAX_BYTES);
	}
	for (size_t i = 0; r >= 0 && i < s->n_policies; i++)
		if (streq(s->policies[i].name, p.name)) {
			snprintf(key, sizeof(key), "%s.name", prefix);
			r = fail(c, &toml_table_find(t, "name")->value->pos, key,
				 "policy \"%s\" is defined twice", p.name);
		}
	if (r >= 0) {
		grown = reallocarray(s->policies, s->n_policies + 1, sizeof(*grown));
		if (!grown)
			r = -ENOMEM;
		else {
			s->policies = grown;
			s->policies[s->n_policies++] = p;
			return 0;
		}
	}
	free(p.name);
	free(p.primary_key);
	free(p.secondary_key);
	return r;
}

static int parse_hub(const struct cfgctx *c, const struct toml_value *t, const char *prefix,
		     struct dps_settings *s)
{
	static const char *const known[] = {"connection_string", "allocation_weight",
					    "apply_allocation_policy", "ca_file", NULL};
	_cleanup_free_ char *cs = NULL;
	struct dps_linked_hub h = {.weight = 1, .apply_allocation_policy = true};
	struct dps_linked_hub *grown;
	struct err inner = {0};
	char key[160];
	int r;

	r = check_keys(c, t, prefix, known);
	if (r >= 0)
		r = get_string(c, t, prefix, "connection_string", true, &cs);
	if (r >= 0) {
		r = dps_parse_connection_string(cs, &h.host_name, &h.key_name, &h.key, &inner);
		if (r < 0) {
			snprintf(key, sizeof(key), "%s.connection_string", prefix);
			r = fail(c, &toml_table_find(t, "connection_string")->value->pos, key, "%s",
				 inner.msg);
		}
	}
	if (r >= 0)
		r = get_uint(c, t, prefix, "allocation_weight", 1, 1000, &h.weight);
	if (r >= 0)
		r = get_bool(c, t, prefix, "apply_allocation_policy", &h.apply_allocation_policy);
	if (r >= 0)
		r = get_string(c, t, prefix, "ca_file", false, &h.ca_file);
	for (size_t i = 0; r >= 0 && i < s->n_hubs; i++)
		if (strcasecmp(s->hubs[i].host_name, h.host_name) == 0) {
			snprintf(key, sizeof(key), "%s.connection_string", prefix);
			r = fail(c, &toml_table_find(t, "connection_string")->value->pos, key,
				 "hub \"%s\" is linked twice", h.host_name);
		}
	if (r >= 0) {
		grown = reallocarray(s->hubs, s->n_hubs + 1, sizeof(*grown));
		if (!grown)
			r = -ENOMEM;
		else {
			s->hubs = grown;
			s->hubs[s->n_hubs++] = h;
			return 0;
		}
	}
	free(h.host_name);
	free(h.key_name);
	if (h.key)
		explicit_bzero(h.key, strlen(h.key));
	free(h.key);
	free(h.ca_file);
	return r;
}

static int parse_ca(const struct cfgctx *c, const struct toml_value *t, const char *prefix,
		    struct dps_settings *s)
{
	static const char *const known[] = {"name", "certificate", NULL};
	_cleanup_free_ char *name = NULL, *path = NULL;
	STACK_OF(X509) *certs = NULL;
	struct dps_ca_config *grown;
	struct err inner = {0};
	char key[160];
	int r;

	r = check_keys(c, t, prefix, known);
	if (r >= 0)
		r = get_string(c, t, prefix, "name", true, &name);
	if (r >= 0)
		r = get_string(c, t, prefix, "certificate", true, &path);
	if (r < 0)
		return r;
	if (!dps_valid_registration_id(name)) {
		snprintf(key, sizeof(key), "%s.name", prefix);
		return fail(c, &toml_table_find(t, "name")->value->pos, key,
			    "expected 1 to 128 letters, digits, '-', '.', '_' or ':'");
	}
	r = dps_cert_read_file(path, &certs, &inner);
	if (r < 0) {
		snprintf(key, sizeof(key), "%s.certificate", prefix);
		return fail(c, &toml_table_find(t, "certificate")->value->pos, key, "%s",
			    inner.msg[0] ? inner.msg : strerror(-r));
	}
	grown = reallocarray(s->cas, s->n_cas + 1, sizeof(*grown));
	if (!grown) {
		sk_X509_pop_free(certs, X509_free);
		return -ENOMEM;
	}
	s->cas = grown;
	s->cas[s->n_cas].name = TAKE_PTR(name);
	s->cas[s->n_cas].cert = sk_X509_shift(certs);
	s->n_cas++;
	sk_X509_pop_free(certs, X509_free);
	return 0;
}

/* Settings with every default. NULL on -ENOMEM. */
static struct dps_settings *settings_new(const char *host_name, const char *store_url)
{
	struct dps_settings *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->default_allocation = DPS_ALLOC_HASHED;
	s->retry_after = 1;
	s->register_wait_ms = DPS_REGISTER_WAIT_DEFAULT_MS;
	/* The threads mostly wait for the hub's answer: with 4 per worker they
	 * were the bottleneck of symmetric-key registrations (bench/README.md). */
	s->assignment_threads = 16;
	s->assignment_stale_s = 30;
	if ((host_name && !(s->host_name = strdup(host_name))) ||
	    (store_url && !(s->store_url = strdup(store_url)))) {
		dps_settings_free(s);
		return NULL;
	}
	return s;
}

int dps_config_parse_table(const struct toml_value *table, const char *file, const char *host_name,
			   const char *store_url, struct dps_settings **ret, struct err *e)
{
	static const char *const known[] = {
	    "listen",
	    "host_name",
	    "workers",
	    "tls_cert",
	    "tls_key",
	    "id_scope",
	    "allocation_policy",
	    "retry_after",
	    "register_wait_ms",
	    "assignment_threads",
	    "hub_ca_file",
	    "webhook_ca_file",
	    "assignment_stale_seconds",
	    "shared_access_policy",
	    "linked_hub",
	    "ca_certificate",
	    NULL,
	};
	const struct cfgctx c = {.file = file ? file : "config", .e = e};
	_cleanup_(dps_settings_freep) struct dps_settings *s = NULL;
	_cleanup_free_ char *alloc = NULL, *hub_ca = NULL;
	int r;

	*ret = NULL;
	s = settings_new(host_name, store_url);
	if (!s)
		return -ENOMEM;
	if (!table)
		return err_set(e, -EINVAL, "%s: dps: missing table [dps]", c.file);

	r = check_keys(&c, table, "dps", known);
	if (r < 0)
		return r;
	r = get_string(&c, table, "dps", "id_scope", true, &s->id_scope);
	if (r < 0)
		return r;
	if (!dps_valid_registration_id(s->id_scope) || strchr(s->id_scope, ':'))
		return fail(&c, &toml_table_find(table, "id_scope")->value->pos, "dps.id_scope",
			    "expected letters, digits, '-', '.' or '_', like \"0ne00000A0A\"");
	r = get_string(&c, table, "dps", "allocation_policy", false, &alloc);
	if (r < 0)
		return r;
	if (alloc && dps_allocation_parse(alloc, &s->default_allocation) < 0)
		return fail(&c, &toml_table_find(table, "allocation_policy")->value->pos,
			    "dps.allocation_policy",
			    "expected one of \"hashed\", \"geoLatency\", \"static\", \"custom\", "
			    "got \"%s\"",
			    alloc);
	r = get_uint(&c, table, "dps", "retry_after", 1, 60, &s->retry_after);
	if (r >= 0)
		r = get_uint(&c, table, "dps", "register_wait_ms", 0, DPS_REGISTER_WAIT_MAX_MS,
			     &s->register_wait_ms);
	if (r >= 0)
		r = get_uint(&c, table, "dps", "assignment_threads", 1, 64, &s->assignment_threads);
	if (r >= 0)
		r = get_uint(&c, table, "dps", "assignment_stale_seconds", 5, 3600,
			     &s->assignment_stale_s);
	if (r >= 0)
		r = get_string(&c, table, "dps", "hub_ca_file", false, &hub_ca);
	if (r >= 0)
		r = get_string(&c, table, "dps", "webhook_ca_file", false, &s->webhook_ca_file);
	if (r >= 0)
		r = each_table(&c, table, "shared_access_policy", parse_policy, s);
	if (r >= 0)
		r = each_table(&c, table, "linked_hub", parse_hub, s);
	if (r >= 0)
		r = each_table(&c, table, "ca_certificate", parse_ca, s);
	if (r < 0)
		return r;
	for (size_t i = 0; i < s->n_hubs; i++)
		if (!s->hubs[i].ca_file && hub_ca && !(s->hubs[i].ca_file = strdup(hub_ca)))
			return -ENOMEM;
	*ret = TAKE_PTR(s);
	return 0;
}

void dps_settings_free(struct dps_settings *s)
{
	if (!s)
		return;
	free(s->id_scope);
	free(s->host_name);
	free(s->store_url);
	for (size_t i = 0; i < s->n_policies; i++) {
		free(s->policies[i].name);
		if (s->policies[i].primary_key)
			explicit_bzero(s->policies[i].primary_key,
				       strlen(s->policies[i].primary_key));
		free(s->policies[i].primary_key);
		if (s->policies[i].secondary_key)
			explicit_bzero(s->policies[i].secondary_key,
				       strlen(s->policies[i].secondary_key));
		free(s->policies[i].secondary_key);
	}
	free(s->policies);
	for (size_t i = 0; i < s->n_hubs; i++) {
		free(s->hubs[i].host_name);
		free(s->hubs[i].key_name);
		if (s->hubs[i].key)
			explicit_bzero(s->hubs[i].key, strlen(s->hubs[i].key));
		free(s->hubs[i].key);
		free(s->hubs[i].ca_file);
	}
	free(s->hubs);
	for (size_t i = 0; i < s->n_cas; i++) {
		free(s->cas[i].name);
		X509_free(s->cas[i].cert);
	}
	free(s->cas);
	free(s->webhook_ca_file);
	free(s);
}

int dps_parse_connection_string(const char *s, char **ret_host, char **ret_key_name, char **ret_key,
				struct err *e)
{
	_cleanup_free_ char *host = NULL, *name = NULL, *key = NULL;
	const char *p = s;

	*ret_host = *ret_key_name = *ret_key = NULL;
	while (p && *p) {
		const char *end = strchr(p, ';');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		const char *eq = memchr(p, '=', len);
		char **slot = NULL;

		if (len == 0) {
			p = end ? end + 1 : NULL;
			continue;
		}
		if (!eq)
			return err_set(e, -EINVAL, "expected Name=value parts separated by ';'");
		if ((size_t)(eq - p) == 8 && strncasecmp(p, "HostName", 8) == 0)
			slot = &host;
		else if ((size_t)(eq - p) == 19 && strncasecmp(p, "SharedAccessKeyName", 19) == 0)
			slot = &name;
		else if ((size_t)(eq - p) == 15 && strncasecmp(p, "SharedAccessKey", 15) == 0)
			slot = &key;
		if (slot) {
			free(*slot);
			*slot = strndup(eq + 1, len - (size_t)(eq - p) - 1);
			if (!*slot)
				return -ENOMEM;
		}
		p = end ? end + 1 : NULL;
	}
	if (!host || !*host)
		return err_set(e, -EINVAL, "expected a HostName=... part");
	if (!name || !*name)
		return err_set(e, -EINVAL, "expected a SharedAccessKeyName=... part");
	if (!key || !dps_valid_key(key)) {
		if (key)
			explicit_bzero(key, strlen(key));
		return err_set(e, -EINVAL,
			       "expected a SharedAccessKey=<base64 of %d to %d bytes> part",
			       DPS_KEY_MIN_BYTES, DPS_KEY_MAX_BYTES);
	}
	*ret_host = TAKE_PTR(host);
	*ret_key_name = TAKE_PTR(name);
	*ret_key = TAKE_PTR(key);
	return 0;
}

const char *dps_allocation_name(enum dps_allocation a)
{
	switch (a) {
	case DPS_ALLOC_HASHED:
		return "hashed";
	case DPS_ALLOC_GEOLATENCY:
		return "geoLatency";
	case DPS_ALLOC_STATIC:
		return "static";
	case DPS_ALLOC_CUSTOM:
		return "custom";
	default:
		return "none";
	}
}

int dps_allocation_parse(const char *s, enum dps_allocation *ret)
{
	static const enum dps_allocation all[] = {DPS_ALLOC_HASHED, DPS_ALLOC_GEOLATENCY,
						  DPS_ALLOC_STATIC, DPS_ALLOC_CUSTOM};

	for (size_t i = 0; s && i < ARRAY_SIZE(all); i++)
		if (strcasecmp(s, dps_allocation_name(all[i])) == 0) {
			*ret = all[i];
			return 0;
		}
	return -EINVAL;
}

const struct dps_linked_hub *dps_settings_find_hub(const struct dps_settings *s,
						   const char *host_name)
{
	for (size_t i = 0; s && host_name && i < s->n_hubs; i++)
		if (strcasecmp(s->hubs[i].host_name, host_name) == 0)
			return &s->hubs[i];
	return NULL;
}
