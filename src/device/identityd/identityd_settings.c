/* SPDX-License-Identifier: MIT */
/*
 * identityd's configuration file: aziot_identityd_config::Settings as
 * `config apply` writes it (aziot-compat.md §3.9), plus three edgeid keys
 * that aziot's identityd ignores (it does not deny unknown keys):
 *
 *   trust_bundle_cert = "file:///path/ca.pem"   CA certificates trusted for
 *       DPS and the hub in addition to the system store (the super-config
 *       key of the same name, which IoT Edge already has);
 *   auto_reprovisioning_mode = "Dynamic" | "AlwaysOnStartup" | "OnErrorOnly"
 *       (the IoT Edge super-config key; aziot gives it to edged only);
 *   [endpoints] aziot_keyd / aziot_tpmd / aziot_certd = "unix:///path"
 *       (aziot honours these in debug builds only).
 *
 * Unknown keys are ignored, as serde does for aziot.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/encode.h"
#include "common/fs.h"
#include "common/json.h"
#include "crypto/hash.h"
#include "device/identityd/identityd_private.h"

#define UID_MAX_VALUE 4294967294LL

struct parser {
	const struct daemon_config *c;
	const char *root;
	struct identityd_settings *s;
	struct err *e;
};

static char *under_root(const char *root, const char *path)
{
	if (!root || !*root || streq(root, "/") || path[0] != '/')
		return strdup(path);
	return fs_path_join(root, path);
}

static int oom(struct parser *p)
{
	return err_set(p->e, -ENOMEM, "out of memory");
}

/* "<first file>: " for settings that are missing altogether. */
static const char *main_file(const struct daemon_config *c)
{
	return daemon_config_n_files(c) ? daemon_config_file(c, 0) : "identityd configuration";
}

/* The value at path in table (NULL: the root), or NULL. */
static json_t *lookup(struct parser *p, const json_t *table, const char *key)
{
	return json_object_get(table ? table : daemon_config_root(p->c), key);
}

static int missing(struct parser *p, const json_t *table, const char *table_path, const char *key)
{
	char where[512];

	if (table && daemon_config_where(p->c, table, where, sizeof(where)))
		return err_set(p->e, -EINVAL, "%s: %s: missing key \"%s\"", where, table_path, key);
	if (table_path && *table_path)
		return err_set(p->e, -EINVAL, "%s: %s: missing key \"%s\"", main_file(p->c),
			       table_path, key);
	return err_set(p->e, -EINVAL, "%s: missing key \"%s\"", main_file(p->c), key);
}

static void join_path(char *buf, size_t n, const char *table_path, const char *key)
{
	if (table_path && *table_path)
		snprintf(buf, n, "%s.%s", table_path, key);
	else
		snprintf(buf, n, "%s", key);
}

/* A string at table.key; *ret NULL when absent and optional. */
static int get_string(struct parser *p, const json_t *table, const char *table_path,
		      const char *key, bool required, const char **ret)
{
	json_t *v = lookup(p, table, key);
	char path[256];

	*ret = NULL;
	join_path(path, sizeof(path), table_path, key);
	if (!v || json_is_null(v)) {
		if (required)
			return missing(p, table, table_path, key);
		return 0;
	}
	if (!json_is_string(v))
		return daemon_config_error(p->c, v, path, p->e, -EINVAL,
					   "expected a string, got %s", json_type_phrase(v));
	if (required && !*json_string_value(v))
		return daemon_config_error(p->c, v, path, p->e, -EINVAL,
					   "expected a non-empty string");
	*ret = json_string_value(v);
	return 0;
}

static int dup_string(struct parser *p, const json_t *table, const char *table_path,
		      const char *key, bool required, char **ret)
{
	const char *s;
	int r = get_string(p, table, table_path, key, required, &s);

	if (r < 0 || !s)
		return r;
	*ret = strdup(s);
	return *ret ? 0 : oom(p);
}

/* One of words (NULL-terminated); *ret is the index. */
static int get_enum(struct parser *p, const json_t *table, const char *table_path, const char *key,
		    const char *const *words, bool required, int def, int *ret)
{
	_cleanup_buf_ struct buf list = {0};
	const char *s;
	char path[256];
	int r;

	*ret = def;
	r = get_string(p, table, table_path, key, required, &s);
	if (r < 0 || !s)
		return r;
	for (int i = 0; words[i]; i++)
		if (streq(words[i], s)) {
			*ret = i;
			return 0;
		}
	buf_init(&list, 1024);
	for (int i = 0; words[i]; i++)
		if (buf_printf(&list, "%s\"%s\"",
			       i == 0         ? ""
			       : words[i + 1] ? ", "
					      : " or ",
			       words[i]) < 0)
			return oom(p);
	join_path(path, sizeof(path), table_path, key);
	return daemon_config_error(p->c, lookup(p, table, key), path, p->e, -EINVAL,
				   "expected one of %s, got \"%s\"", buf_str(&list), s);
}

static int get_table(struct parser *p, const json_t *table, const char *table_path, const char *key,
		     bool required, json_t **ret)
{
	json_t *v = lookup(p, table, key);
	char path[256];

	*ret = NULL;
	join_path(path, sizeof(path), table_path, key);
	if (!v) {
		if (required)
			return missing(p, table, table_path, key);
		return 0;
	}
	if (!json_is_object(v))
		return daemon_config_error(p->c, v, path, p->e, -EINVAL, "expected a table, got %s",
					   json_type_phrase(v));
	*ret = v;
	return 0;
}

static int get_int(struct parser *p, const char *key, int64_t min, int64_t max, int64_t def,
		   int64_t *ret)
{
	json_t *v = lookup(p, NULL, key);

	*ret = def;
	if (!v)
		return 0;
	if (!json_is_integer(v))
		return daemon_config_error(p->c, v, key, p->e, -EINVAL,
					   "expected an integer, got %s", json_type_phrase(v));
	if (json_integer_value(v) < min || json_integer_value(v) > max)
		return daemon_config_error(
		    p->c, v, key, p->e, -EINVAL, "expected an integer from %lld to %lld, got %lld",
		    (long long)min, (long long)max, (long long)json_integer_value(v));
	*ret = json_integer_value(v);
	return 0;
}

/* "file:///abs/path" (percent-decoded); the path goes under root. */
static int file_uri(struct parser *p, const json_t *v, const char *path, const char *uri,
		    char **ret)
{
	_cleanup_buf_ struct buf dec = {0};

	buf_init(&dec, 4096);
	if (!strneq(uri, "file://", 7) || uri[7] != '/' ||
	    url_decode(&dec, uri + 7, strlen(uri + 7), false) < 0)
		return daemon_config_error(p->c, v, path, p->e, -EINVAL,
					   "expected a file:///path URI, got \"%s\"", uri);
	*ret = under_root(p->root, buf_str(&dec));
	return *ret ? 0 : oom(p);
}

/* "unix:///path" of [endpoints]; the default when absent. */
static int endpoint(struct parser *p, const json_t *endpoints, const char *key, const char *def,
		    char **ret)
{
	char path[128];
	const char *uri;
	int r;

	snprintf(path, sizeof(path), "endpoints.%s", key);
	r = get_string(p, endpoints, "endpoints", key, false, &uri);
	if (r < 0)
		return r;
	if (!uri) {
		*ret = under_root(p->root, def);
		return *ret ? 0 : oom(p);
	}
	if (!strneq(uri, "unix://", 7) || uri[7] != '/')
		return daemon_config_error(p->c, lookup(p, endpoints, key), path, p->e, -EINVAL,
					   "expected a unix:///path URI, got \"%s\"", uri);
	*ret = under_root(p->root, uri + 7);
	return *ret ? 0 : oom(p);
}

static int warn(struct parser *p, const char *fmt, ...) _printf_(2, 3);
static int warn(struct parser *p, const char *fmt, ...)
{
	char **w = realloc(p->s->warnings, (p->s->n_warnings + 1) * sizeof(*w));
	va_list ap;
	int n;

	if (!w)
		return oom(p);
	p->s->warnings = w;
	va_start(ap, fmt);
	n = vasprintf(&w[p->s->n_warnings], fmt, ap);
	va_end(ap);
	if (n < 0)
		return oom(p);
	p->s->n_warnings++;
	return 0;
}

/* "https://host[:port]/anything" -> "https://host[:port]" (§5.1: the path
 * is replaced). */
static int base_url(struct parser *p, const json_t *v, const char *url, char **ret)
{
	const char *host, *end;

	if (!strneq(url, "https://", 8))
		return daemon_config_error(p->c, v, "provisioning.global_endpoint", p->e, -EINVAL,
					   "expected an https:// URL, got \"%s\"", url);
	host = url + 8;
	end = host + strcspn(host, "/?#");
	if (end == host || memchr(host, '@', (size_t)(end - host)))
		return daemon_config_error(p->c, v, "provisioning.global_endpoint", p->e, -EINVAL,
					   "expected an https://host/ URL, got \"%s\"", url);
	if (asprintf(ret, "https://%.*s", (int)(end - host), host) < 0) {
		*ret = NULL;
		return oom(p);
	}
	return 0;
}

/* registration_id: a string, or (X.509) a subject table whose CN is the id. */
static int registration_id(struct parser *p, const json_t *att, bool x509, bool required)
{
	json_t *v = lookup(p, att, "registration_id"), *cn;

	if (x509 && v && json_is_object(v)) {
		cn = json_object_get(v, "CN");
		if (!cn || !json_is_string(cn) || !*json_string_value(cn))
			return daemon_config_error(
			    p->c, v, "provisioning.attestation.registration_id", p->e, -EINVAL,
			    "a subject table needs a CN (the registration id)");
		p->s->registration_id = strdup(json_string_value(cn));
		return p->s->registration_id ? 0 : oom(p);
	}
	return dup_string(p, att, "provisioning.attestation", "registration_id", required,
			  &p->s->registration_id);
}

static int parse_manual(struct parser *p, const json_t *prov)
{
	static const char *const methods[] = {"sas", "x509", NULL};
	struct identityd_settings *s = p->s;
	json_t *auth;
	int method, r;

	r = dup_string(p, prov, "provisioning", "iothub_hostname", true, &s->iothub_hostname);
	if (r >= 0)
		r = dup_string(p, prov, "provisioning", "device_id", true, &s->device_id);
	if (r >= 0)
		r = get_table(p, prov, "provisioning", "authentication", true, &auth);
	if (r >= 0)
		r = get_enum(p, auth, "provisioning.authentication", "method", methods, true, 0,
			     &method);
	if (r < 0)
		return r;
	if (method == 0) {
		s->auth = IDENTITYD_AUTH_SAS;
		return dup_string(p, auth, "provisioning.authentication", "device_id_pk", true,
				  &s->key_id);
	}
	s->auth = IDENTITYD_AUTH_X509;
	r = dup_string(p, auth, "provisioning.authentication", "identity_cert", true, &s->cert_id);
	if (r >= 0)
		r = dup_string(p, auth, "provisioning.authentication", "identity_pk", true,
			       &s->key_id);
	return r;
}

static int parse_dps(struct parser *p, const json_t *prov)
{
	static const char *const methods[] = {"symmetric_key", "x509", "tpm", NULL};
	struct identityd_settings *s = p->s;
	json_t *att, *payload;
	const char *uri;
	int method, r;

	if (s->local_gateway_hostname)
		return daemon_config_error(p->c, lookup(p, prov, "local_gateway_hostname"),
					   "provisioning.local_gateway_hostname", p->e, -EINVAL,
					   "DPS provisioning is not supported in nested mode");
	r = dup_string(p, prov, "provisioning", "global_endpoint", true, &s->global_endpoint);
	if (r >= 0)
		r = base_url(p, lookup(p, prov, "global_endpoint"), s->global_endpoint,
			     &s->dps_base_url);
	if (r >= 0)
		r = dup_string(p, prov, "provisioning", "scope_id", true, &s->scope_id);
	if (r >= 0)
		r = get_table(p, prov, "provisioning", "payload", false, &payload);
	if (r < 0)
		return r;
	if (payload) {
		r = get_string(p, payload, "provisioning.payload", "uri", true, &uri);
		if (r < 0)
			return r;
		s->payload_uri = strdup(uri);
		if (!s->payload_uri)
			return oom(p);
		r = file_uri(p, lookup(p, payload, "uri"), "provisioning.payload.uri", uri,
			     &s->payload_path);
		if (r < 0)
			return r;
	}
	r = get_table(p, prov, "provisioning", "attestation", true, &att);
	if (r >= 0)
		r = get_enum(p, att, "provisioning.attestation", "method", methods, true, 0,
			     &method);
	if (r < 0)
		return r;
	switch (method) {
	case 0:
		s->auth = IDENTITYD_AUTH_SAS;
		r = registration_id(p, att, false, true);
		if (r >= 0)
			r = dup_string(p, att, "provisioning.attestation", "symmetric_key", true,
				       &s->key_id);
		return r;
	case 1:
		s->auth = IDENTITYD_AUTH_X509;
		r = registration_id(p, att, true, false);
		if (r >= 0)
			r = dup_string(p, att, "provisioning.attestation", "identity_cert", true,
				       &s->cert_id);
		if (r >= 0)
			r = dup_string(p, att, "provisioning.attestation", "identity_pk", true,
				       &s->key_id);
		return r;
	default:
		s->auth = IDENTITYD_AUTH_TPM;
		return registration_id(p, att, false, true);
	}
}

static int parse_provisioning(struct parser *p)
{
	static const char *const sources[] = {"none", "manual", "dps", NULL};
	struct identityd_settings *s = p->s;
	json_t *prov;
	int source, r;

	r = get_table(p, NULL, "", "provisioning", true, &prov);
	if (r >= 0)
		r = dup_string(p, prov, "provisioning", "local_gateway_hostname", false,
			       &s->local_gateway_hostname);
	if (r >= 0)
		r = get_enum(p, prov, "provisioning", "source", sources, true, 0, &source);
	if (r < 0)
		return r;
	s->source = (enum identityd_source)source;
	if (s->source == IDENTITYD_SOURCE_MANUAL)
		return parse_manual(p, prov);
	if (s->source == IDENTITYD_SOURCE_DPS)
		return parse_dps(p, prov);
	return 0;
}

static int parse_principal(struct parser *p, const json_t *v, size_t i, bool *have_daemon)
{
	static const char *const idtypes[] = {"device", "module", "local"};
	struct identityd_settings *s = p->s;
	struct identityd_principal pr = {0};
	char path[64];
	json_t *uid, *name, *idtype, *item;
	size_t j;

	snprintf(path, sizeof(path), "principal[%zu]", i);
	if (!json_is_object(v))
		return daemon_config_error(p->c, v, path, p->e, -EINVAL, "expected a table, got %s",
					   json_type_phrase(v));
	uid = json_object_get(v, "uid");
	name = json_object_get(v, "name");
	idtype = json_object_get(v, "idtype");
	if (!uid)
		return daemon_config_error(p->c, v, path, p->e, -EINVAL, "missing key \"uid\"");
	if (!json_is_integer(uid) || json_integer_value(uid) < 0 ||
	    json_integer_value(uid) > UID_MAX_VALUE) {
		snprintf(path, sizeof(path), "principal[%zu].uid", i);
		return daemon_config_error(p->c, uid, path, p->e, -EINVAL,
					   "expected an integer from 0 to %lld", UID_MAX_VALUE);
	}
	if (!name)
		return daemon_config_error(p->c, v, path, p->e, -EINVAL, "missing key \"name\"");
	if (!json_is_string(name) || !*json_string_value(name)) {
		snprintf(path, sizeof(path), "principal[%zu].name", i);
		return daemon_config_error(p->c, name, path, p->e, -EINVAL,
					   "expected a non-empty string");
	}
	for (size_t k = 0; k < s->n_principals; k++)
		if (streq(s->principals[k].name, json_string_value(name))) {
			snprintf(path, sizeof(path), "principal[%zu].name", i);
			return daemon_config_error(p->c, name, path, p->e, -EINVAL,
						   "duplicate principal name \"%s\"",
						   json_string_value(name));
		}
	pr.uid = (uid_t)json_integer_value(uid);
	if (idtype) {
		snprintf(path, sizeof(path), "principal[%zu].idtype", i);
		if (!json_is_array(idtype))
			return daemon_config_error(p->c, idtype, path, p->e, -EINVAL,
						   "expected an array of \"device\", \"module\" "
						   "or \"local\", got %s",
						   json_type_phrase(idtype));
		pr.has_idtype = true;
		json_array_foreach (idtype, j, item) {
			size_t k;

			for (k = 0; k < 3; k++)
				if (json_is_string(item) &&
				    streq(json_string_value(item), idtypes[k]))
					break;
			if (k == 3)
				return daemon_config_error(p->c, item, path, p->e, -EINVAL,
							   "expected \"device\", \"module\" or "
							   "\"local\"");
			pr.idtype |= 1u << k;
		}
		if ((pr.idtype & IDENTITYD_IDTYPE_LOCAL) && !s->localid_domain)
			return daemon_config_error(p->c, idtype, path, p->e, -EINVAL,
						   "idtype \"local\" needs [localid] domain");
		if ((pr.idtype & (IDENTITYD_IDTYPE_DEVICE | IDENTITYD_IDTYPE_MODULE)) &&
		    s->source == IDENTITYD_SOURCE_NONE)
			return daemon_config_error(p->c, idtype, path, p->e, -EINVAL,
						   "idtype \"device\" and \"module\" need "
						   "provisioning; the source is \"none\"");
	} else if (*have_daemon) {
		/* aziot: only one principal without idtype. */
		return warn(p, "%s: only one principal may lack idtype; \"%s\" (uid %u) is ignored",
			    path, json_string_value(name), (unsigned)pr.uid);
	} else {
		*have_daemon = true;
	}
	pr.name = strdup(json_string_value(name));
	if (!pr.name)
		return oom(p);
	s->principals[s->n_principals++] = pr;
	return 0;
}

static int parse_principals(struct parser *p)
{
	json_t *arr = lookup(p, NULL, "principal"), *v;
	bool have_daemon = false;
	size_t i;
	int r;

	if (!arr)
		return 0;
	if (!json_is_array(arr))
		return daemon_config_error(p->c, arr, "principal", p->e, -EINVAL,
					   "expected an array of tables ([[principal]]), got %s",
					   json_type_phrase(arr));
	p->s->principals = calloc(json_array_size(arr) + 1, sizeof(*p->s->principals));
	if (!p->s->principals)
		return oom(p);
	json_array_foreach (arr, i, v) {
		r = parse_principal(p, v, i, &have_daemon);
		if (r < 0)
			return r;
	}
	return 0;
}

int identityd_settings_parse(const struct daemon_config *c, const char *root,
			     struct identityd_settings **ret, struct err *e)
{
	static const char *const modes[] = {"Dynamic", "AlwaysOnStartup", "OnErrorOnly", NULL};
	_cleanup_identityd_settings_ struct identityd_settings *s = calloc(1, sizeof(*s));
	struct parser p = {.c = c, .root = root, .s = s, .e = e};
	const char *str;
	json_t *v, *endpoints, *localid;
	int64_t n;
	int mode, r;

	if (!s)
		return err_set(e, -ENOMEM, "out of memory");
	if (root && *root && !streq(root, "/")) {
		s->root = strdup(root);
		if (!s->root)
			return oom(&p);
	}
	r = dup_string(&p, NULL, "", "hostname", true, &s->hostname);
	if (r < 0)
		return r;
	r = get_string(&p, NULL, "", "homedir", true, &str);
	if (r < 0)
		return r;
	if (str[0] != '/')
		return daemon_config_error(c, lookup(&p, NULL, "homedir"), "homedir", e, -EINVAL,
					   "expected an absolute path, got \"%s\"", str);
	s->homedir = under_root(root, str);
	if (!s->homedir)
		return oom(&p);
	v = lookup(&p, NULL, "prefer_module_identity_cache");
	if (v && !json_is_boolean(v))
		return daemon_config_error(c, v, "prefer_module_identity_cache", e, -EINVAL,
					   "expected a boolean, got %s", json_type_phrase(v));
	s->prefer_module_identity_cache = v && json_is_true(v);
	r = get_int(&p, "cloud_timeout_sec", 1, 86400, IDENTITYD_CLOUD_TIMEOUT_DEFAULT, &n);
	if (r < 0)
		return r;
	s->cloud_timeout_sec = (uint64_t)n;
	r = get_int(&p, "cloud_retries", 0, 100, IDENTITYD_CLOUD_RETRIES_DEFAULT, &n);
	if (r < 0)
		return r;
	s->cloud_retries = (uint32_t)n;
	r = get_enum(&p, NULL, "", "auto_reprovisioning_mode", modes, false, 0, &mode);
	if (r < 0)
		return r;
	s->reprovisioning = (enum identityd_reprovisioning)mode;
	r = get_string(&p, NULL, "", "trust_bundle_cert", false, &str);
	if (r >= 0 && str)
		r = file_uri(&p, lookup(&p, NULL, "trust_bundle_cert"), "trust_bundle_cert", str,
			     &s->trust_bundle);
	if (r >= 0)
		r = get_table(&p, NULL, "", "localid", false, &localid);
	if (r >= 0 && localid)
		r = dup_string(&p, localid, "localid", "domain", true, &s->localid_domain);
	if (r >= 0)
		r = parse_provisioning(&p);
	if (r >= 0)
		r = get_table(&p, NULL, "", "endpoints", false, &endpoints);
	if (r >= 0)
		r = endpoint(&p, endpoints, "aziot_keyd", "/run/aziot/keyd.sock", &s->keyd_socket);
	if (r >= 0)
		r = endpoint(&p, endpoints, "aziot_tpmd", "/run/aziot/tpmd.sock", &s->tpmd_socket);
	if (r >= 0)
		r = endpoint(&p, endpoints, "aziot_certd", "/run/aziot/certd.sock",
			     &s->certd_socket);
	if (r >= 0)
		r = parse_principals(&p);
	if (r < 0)
		return r;
	s->certd_config = under_root(root, "/etc/aziot/certd/config.toml");
	s->certd_config_dir = under_root(root, "/etc/aziot/certd/config.d");
	if (!s->certd_config || !s->certd_config_dir)
		return oom(&p);
	*ret = TAKE_PTR(s);
	return 0;
}

void identityd_settings_free(struct identityd_settings *s)
{
	if (!s)
		return;
	free(s->root);
	free(s->hostname);
	free(s->homedir);
	free(s->trust_bundle);
	free(s->localid_domain);
	free(s->local_gateway_hostname);
	free(s->iothub_hostname);
	free(s->device_id);
	free(s->global_endpoint);
	free(s->dps_base_url);
	free(s->scope_id);
	free(s->payload_uri);
	free(s->payload_path);
	free(s->registration_id);
	free(s->key_id);
	free(s->cert_id);
	free(s->keyd_socket);
	free(s->tpmd_socket);
	free(s->certd_socket);
	free(s->certd_config);
	free(s->certd_config_dir);
	for (size_t i = 0; i < s->n_principals; i++)
		free(s->principals[i].name);
	free(s->principals);
	for (size_t i = 0; i < s->n_warnings; i++)
		free(s->warnings[i]);
	free(s->warnings);
	free(s);
}

const char *identityd_auth_name(const struct identityd_settings *s)
{
	switch (s->auth) {
	case IDENTITYD_AUTH_SAS:
		return s->source == IDENTITYD_SOURCE_DPS ? "symmetric_key" : "sas";
	case IDENTITYD_AUTH_X509:
		return "x509";
	case IDENTITYD_AUTH_TPM:
		return "tpm";
	}
	return "";
}

const char *identityd_reprovisioning_name(enum identityd_reprovisioning m)
{
	switch (m) {
	case IDENTITYD_REPROV_DYNAMIC:
		return "Dynamic";
	case IDENTITYD_REPROV_ALWAYS_ON_STARTUP:
		return "AlwaysOnStartup";
	case IDENTITYD_REPROV_ON_ERROR_ONLY:
		return "OnErrorOnly";
	}
	return "";
}

int identityd_settings_provisioning_digest(const struct identityd_settings *s, char ret[65])
{
	static const char *const sources[] = {"none", "manual", "dps"};
	const char *fields[] = {
	    sources[s->source], identityd_auth_name(s),
	    s->dps_base_url,    s->scope_id,
	    s->registration_id, s->key_id,
	    s->cert_id,         s->iothub_hostname,
	    s->device_id,       s->local_gateway_hostname,
	};
	_cleanup_buf_ struct buf text = {0}, hex = {0};
	uint8_t digest[HASH_SHA256_LEN];
	int r;

	buf_init(&text, 0);
	buf_init(&hex, 0);
	/* Each field with its length, so that no two settings collide. */
	for (size_t i = 0; i < ARRAY_SIZE(fields); i++) {
		r = fields[i] ? buf_printf(&text, "%zu:%s;", strlen(fields[i]), fields[i])
			      : buf_append_str(&text, "-;");
		if (r < 0)
			return r;
	}
	r = hash_sha256(text.data, text.len, digest);
	if (r < 0)
		return r;
	r = hex_encode(&hex, digest, sizeof(digest));
	if (r < 0)
		return r;
	memcpy(ret, hex.data, 65);
	return 0;
}
