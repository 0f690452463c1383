/* SPDX-License-Identifier: MIT */
/*
 * certd's own configuration, as aziot's certd reads it and as `edgeid
 * config apply` writes it (specs/aziot-compat.md §3.9):
 *
 *   homedir_path = "/var/lib/aziot/certd"
 *   [cert_issuance.est]            accepted; EST is not implemented yet
 *   [cert_issuance.local_ca]       cert = "<cert id>", pk = "<key id>"
 *   [cert_issuance.<cert id>]      method = "self_signed" | "local_ca" | "est",
 *                                  expiry_days, common_name or [subject],
 *                                  and the EST-only url and auth keys
 *   [preloaded_certs]              <id> = "file:///path" or ["id", ...]
 *   [endpoints] aziot_keyd         unix:///path of keyd's socket
 *
 * max_requests and [[principal]] are the daemon runtime's. Other top-level
 * keys are ignored, as serde does for aziot; inside the tables certd knows,
 * an unknown key is an error, so that a typo is not silently ignored.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/fs.h"
#include "common/json.h"
#include "device/certd/certd.h"
#include "device/keyd/keyd.h"

/* A setting's name in messages (a long certificate id is cut short). */
#define PATH_MAX_LEN 256
#define WHERE_MAX_LEN 512

struct parser {
	const struct daemon_config *c;
	const char *root;
	struct certd_settings *s;
	struct err *e;
};

static int oom(struct parser *p)
{
	return err_set(p->e, -ENOMEM, "out of memory");
}

static char *under_root(const char *root, const char *path)
{
	if (!root || path[0] != '/')
		return strdup(path);
	return fs_path_join(root, path);
}

static bool is_one_of(const char *key, const char *const *keys)
{
	for (size_t i = 0; keys[i]; i++)
		if (streq(key, keys[i]))
			return true;
	return false;
}

/* A string value (v may be NULL: not set). Returns 0 or -EINVAL. */
static int want_string(struct parser *p, const json_t *v, const char *path)
{
	if (v && !json_is_string(v))
		return daemon_config_error(p->c, v, path, p->e, -EINVAL,
					   "expected a string, got %s", json_type_phrase(v));
	return 0;
}

/* --- [cert_issuance] -------------------------------------------------------------- */

static int parse_subject(struct parser *p, json_t *entry, const char *path,
			 struct certd_issuance *iss)
{
	json_t *cn = json_object_get(entry, "common_name");
	json_t *subject = json_object_get(entry, "subject");
	char where[WHERE_MAX_LEN];
	const char **keys;
	const char *key;
	json_t *v;
	size_t n = 0;
	int r;

	if (cn && subject) {
		snprintf(where, sizeof(where), "%s.subject", path);
		return daemon_config_error(
		    p->c, subject, where, p->e, -EINVAL,
		    "common_name and subject are both set; give one of them");
	}
	if (cn) {
		snprintf(where, sizeof(where), "%s.common_name", path);
		if (want_string(p, cn, where) < 0)
			return -EINVAL;
		iss->subject = calloc(1, sizeof(*iss->subject));
		if (!iss->subject)
			return oom(p);
		iss->n_subject = 1;
		iss->subject[0].field = strdup("CN");
		iss->subject[0].value = certd_utf8_prefix(json_string_value(cn), CERTD_CN_MAX);
		if (!iss->subject[0].field || !iss->subject[0].value)
			return oom(p);
		return 0;
	}
	if (!subject)
		return 0;
	snprintf(where, sizeof(where), "%s.subject", path);
	if (!json_is_object(subject))
		return daemon_config_error(
		    p->c, subject, where, p->e, -EINVAL,
		    "expected a table of strings (CN = \"...\", O = \"...\"), "
		    "got %s",
		    json_type_phrase(subject));
	if (json_object_size(subject) == 0)
		return daemon_config_error(p->c, subject, where, p->e, -EINVAL,
					   "expected at least one field");
	/* aziot keeps the table in a BTreeMap: the fields go into the name in
	 * bytewise order of their keys, whatever the order in the file. */
	keys = calloc(json_object_size(subject), sizeof(*keys));
	if (!keys)
		return oom(p);
	json_object_foreach (subject, key, v)
		keys[n++] = key;
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0 && strcmp(keys[j - 1], keys[j]) > 0; j--) {
			const char *t = keys[j];

			keys[j] = keys[j - 1];
			keys[j - 1] = t;
		}
	iss->subject = calloc(n, sizeof(*iss->subject));
	if (!iss->subject) {
		free(keys);
		return oom(p);
	}
	for (size_t i = 0; i < n; i++) {
		bool cn_field;

		v = json_object_get(subject, keys[i]);
		snprintf(where, sizeof(where), "%s.subject.%s", path, keys[i]);
		if (want_string(p, v, where) < 0) {
			free(keys);
			return -EINVAL;
		}
		cn_field = strcasecmp(keys[i], "CN") == 0;
		iss->subject[i].field = strdup(keys[i]);
		iss->subject[i].value = cn_field
					    ? certd_utf8_prefix(json_string_value(v), CERTD_CN_MAX)
					    : strdup(json_string_value(v));
		iss->n_subject++;
		if (!iss->subject[i].field || !iss->subject[i].value) {
			free(keys);
			return oom(p);
		}
	}
	free(keys);
	{
		struct err inner = {0};

		snprintf(where, sizeof(where), "%s.subject", path);
		r = certd_subject_check(iss->subject, iss->n_subject, &inner);
		if (r < 0)
			return daemon_config_error(p->c, subject, where, p->e, r, "%s",
						   err_msg(&inner, r));
	}
	return 0;
}

static int parse_issuance_entry(struct parser *p, const char *id, json_t *entry,
				struct certd_issuance *iss)
{
	static const char *const known[] = {
	    "method",
	    "expiry_days",
	    "common_name",
	    "subject",
	    "url",
	    "username",
	    "password",
	    "identity_cert",
	    "identity_pk",
	    "bootstrap_identity_cert",
	    "bootstrap_identity_pk",
	    NULL,
	};
	static const char *const est_strings[] = {
	    "url",
	    "username",
	    "password",
	    "identity_cert",
	    "identity_pk",
	    "bootstrap_identity_cert",
	    "bootstrap_identity_pk",
	    NULL,
	};
	char path[PATH_MAX_LEN], where[WHERE_MAX_LEN];
	json_t *method, *days, *v;
	const char *key, *m;

	snprintf(path, sizeof(path), "cert_issuance.%s", id);
	iss->id = strdup(id);
	if (!iss->id)
		return oom(p);
	iss->expiry_days = CERTD_EXPIRY_DAYS_DEFAULT;
	if (!json_is_object(entry))
		return daemon_config_error(p->c, entry, path, p->e, -EINVAL,
					   "expected a table with a method, got %s",
					   json_type_phrase(entry));
	json_object_foreach (entry, key, v) {
		if (is_one_of(key, known))
			continue;
		snprintf(where, sizeof(where), "%s.%s", path, key);
		return daemon_config_error(
		    p->c, v, where, p->e, -EINVAL,
		    "unknown setting (expected method, expiry_days, "
		    "common_name, subject, or the EST settings url, username, "
		    "password, identity_cert, identity_pk, "
		    "bootstrap_identity_cert, bootstrap_identity_pk)");
	}
	for (size_t i = 0; est_strings[i]; i++) {
		snprintf(where, sizeof(where), "%s.%s", path, est_strings[i]);
		if (want_string(p, json_object_get(entry, est_strings[i]), where) < 0)
			return -EINVAL;
	}

	method = json_object_get(entry, "method");
	snprintf(where, sizeof(where), "%s.method", path);
	if (!method)
		return daemon_config_error(p->c, entry, where, p->e, -EINVAL, "missing");
	if (want_string(p, method, where) < 0)
		return -EINVAL;
	m = json_string_value(method);
	if (streq(m, "self_signed"))
		iss->method = CERTD_METHOD_SELF_SIGNED;
	else if (streq(m, "local_ca"))
		iss->method = CERTD_METHOD_LOCAL_CA;
	else if (streq(m, "est"))
		iss->method = CERTD_METHOD_EST;
	else
		return daemon_config_error(
		    p->c, method, where, p->e, -EINVAL,
		    "expected one of \"self_signed\", \"local_ca\", \"est\", "
		    "got \"%s\"",
		    m);

	days = json_object_get(entry, "expiry_days");
	if (days) {
		snprintf(where, sizeof(where), "%s.expiry_days", path);
		if (!json_is_integer(days))
			return daemon_config_error(p->c, days, where, p->e, -EINVAL,
						   "expected an integer, got %s",
						   json_type_phrase(days));
		if (json_integer_value(days) < 1 ||
		    json_integer_value(days) > CERTD_EXPIRY_DAYS_MAX)
			return daemon_config_error(
			    p->c, days, where, p->e, -EINVAL,
			    "expected a number of days from 1 to %lld, got %lld",
			    CERTD_EXPIRY_DAYS_MAX, (long long)json_integer_value(days));
		iss->expiry_days = (unsigned)json_integer_value(days);
	}
	return parse_subject(p, entry, path, iss);
}

static int parse_local_ca(struct parser *p, json_t *lc)
{
	const char *key;
	json_t *v;
	char where[WHERE_MAX_LEN];

	if (!json_is_object(lc))
		return daemon_config_error(p->c, lc, "cert_issuance.local_ca", p->e, -EINVAL,
					   "expected a table with cert and pk, got %s",
					   json_type_phrase(lc));
	json_object_foreach (lc, key, v) {
		snprintf(where, sizeof(where), "cert_issuance.local_ca.%s", key);
		if (!streq(key, "cert") && !streq(key, "pk"))
			return daemon_config_error(p->c, v, where, p->e, -EINVAL,
						   "unknown setting (expected cert or pk)");
		if (want_string(p, v, where) < 0)
			return -EINVAL;
	}
	if (!json_object_get(lc, "cert"))
		return daemon_config_error(p->c, lc, "cert_issuance.local_ca.cert", p->e, -EINVAL,
					   "missing (the id of the local CA's certificate)");
	if (!json_object_get(lc, "pk"))
		return daemon_config_error(p->c, lc, "cert_issuance.local_ca.pk", p->e, -EINVAL,
					   "missing (the keyd id of the local CA's private key)");
	p->s->local_ca_cert = strdup(json_string_value(json_object_get(lc, "cert")));
	p->s->local_ca_pk = strdup(json_string_value(json_object_get(lc, "pk")));
	return p->s->local_ca_cert && p->s->local_ca_pk ? 0 : oom(p);
}

static int parse_cert_issuance(struct parser *p)
{
	json_t *table = NULL, *v;
	const char *key;
	int r;

	r = daemon_config_get_object_opt(p->c, "cert_issuance", &table, p->e);
	if (r < 0)
		return -EINVAL;
	if (!table)
		return 0;
	p->s->issuance = calloc(json_object_size(table) + 1, sizeof(*p->s->issuance));
	if (!p->s->issuance)
		return oom(p);
	json_object_foreach (table, key, v) {
		if (streq(key, "est")) {
			/* Parsed once EST issuance exists; until then a
			 * certificate to be issued by EST is refused when it is
			 * requested, and the table is only checked for shape. */
			if (!json_is_object(v))
				return daemon_config_error(p->c, v, "cert_issuance.est", p->e,
							   -EINVAL, "expected a table, got %s",
							   json_type_phrase(v));
			p->s->has_est = true;
			continue;
		}
		if (streq(key, "local_ca")) {
			r = parse_local_ca(p, v);
			if (r < 0)
				return r;
			continue;
		}
		r = parse_issuance_entry(p, key, v, &p->s->issuance[p->s->n_issuance++]);
		if (r < 0)
			return r;
	}
	return 0;
}

/* --- [preloaded_certs] ------------------------------------------------------------------ */

static int parse_preloaded(struct parser *p)
{
	json_t *table = NULL, *v;
	const char *key;
	char where[WHERE_MAX_LEN];
	int r;

	r = daemon_config_get_object_opt(p->c, "preloaded_certs", &table, p->e);
	if (r < 0)
		return -EINVAL;
	if (!table)
		return 0;
	p->s->preloaded = calloc(json_object_size(table) + 1, sizeof(*p->s->preloaded));
	if (!p->s->preloaded)
		return oom(p);
	json_object_foreach (table, key, v) {
		struct certd_preloaded *pc = &p->s->preloaded[p->s->n_preloaded++];

		snprintf(where, sizeof(where), "preloaded_certs.%s", key);
		pc->id = strdup(key);
		if (!pc->id)
			return oom(p);
		if (json_is_string(v)) {
			_cleanup_free_ char *file = NULL;

			r = keyd_file_uri_path(json_string_value(v), &file);
			if (r == -ENOMEM)
				return oom(p);
			if (r < 0)
				return daemon_config_error(
				    p->c, v, where, p->e, -EINVAL,
				    "expected a file:///path URI or a list of "
				    "certificate ids, got \"%s\"",
				    json_string_value(v));
			pc->path = under_root(p->root, file);
			if (!pc->path)
				return oom(p);
			continue;
		}
		if (!json_is_array(v))
			return daemon_config_error(p->c, v, where, p->e, -EINVAL,
						   "expected a file:///path URI or a list of "
						   "certificate ids, got %s",
						   json_type_phrase(v));
		pc->ids = calloc(json_array_size(v) + 1, sizeof(char *));
		if (!pc->ids)
			return oom(p);
		for (size_t i = 0; i < json_array_size(v); i++) {
			json_t *m = json_array_get(v, i);

			if (!json_is_string(m)) {
				snprintf(where, sizeof(where), "preloaded_certs.%s[%zu]", key, i);
				return daemon_config_error(p->c, m, where, p->e, -EINVAL,
							   "expected a certificate id, got %s",
							   json_type_phrase(m));
			}
			pc->ids[i] = strdup(json_string_value(m));
			if (!pc->ids[i])
				return oom(p);
			pc->n_ids++;
		}
	}
	/* A bundle's members are certificates, not further bundles (aziot's
	 * rule), which also keeps a bundle from containing itself. */
	for (size_t i = 0; i < p->s->n_preloaded; i++) {
		const struct certd_preloaded *pc = &p->s->preloaded[i];

		for (size_t j = 0; j < pc->n_ids; j++) {
			const struct certd_preloaded *m =
			    certd_settings_preloaded(p->s, pc->ids[j]);

			if (m && !m->path) {
				json_t *arr = json_object_get(table, pc->id);

				snprintf(where, sizeof(where), "preloaded_certs.%s[%zu]", pc->id,
					 j);
				return daemon_config_error(
				    p->c, json_array_get(arr, j), where, p->e, -EINVAL,
				    "\"%s\" is itself a list; a list's members must be "
				    "certificates",
				    pc->ids[j]);
			}
		}
	}
	return 0;
}

/* --- the whole ---------------------------------------------------------------------------- */

static int parse_keyd_endpoint(struct parser *p)
{
	json_t *endpoints = NULL, *v;
	const char *uri;
	int r;

	r = daemon_config_get_object_opt(p->c, "endpoints", &endpoints, p->e);
	if (r < 0)
		return -EINVAL;
	v = endpoints ? json_object_get(endpoints, "aziot_keyd") : NULL;
	if (want_string(p, v, "endpoints.aziot_keyd") < 0)
		return -EINVAL;
	if (!v) {
		p->s->keyd_socket = under_root(p->root, "/run/aziot/keyd.sock");
		return p->s->keyd_socket ? 0 : oom(p);
	}
	uri = json_string_value(v);
	if (!strneq(uri, "unix://", 7) || uri[7] != '/')
		return daemon_config_error(p->c, v, "endpoints.aziot_keyd", p->e, -EINVAL,
					   "expected a unix:///path URI, got \"%s\"", uri);
	p->s->keyd_socket = under_root(p->root, uri + 7);
	return p->s->keyd_socket ? 0 : oom(p);
}

int certd_settings_parse(const struct daemon_config *c, const char *root,
			 struct certd_settings *ret, struct err *e)
{
	struct certd_settings s = {0};
	struct parser p = {.c = c, .root = root, .s = &s, .e = e};
	const char *home = NULL;
	int r;

	r = daemon_config_get_string_opt(c, "homedir_path", &home, e);
	if (r < 0) {
		r = -EINVAL;
		goto fail;
	}
	if (home) {
		if (home[0] != '/') {
			json_t *v = json_object_get(daemon_config_root(c), "homedir_path");

			r = daemon_config_error(c, v, "homedir_path", e, -EINVAL,
						"expected an absolute path, got \"%s\"", home);
			goto fail;
		}
		s.homedir = under_root(root, home);
		s.certs_dir = s.homedir ? fs_path_join(s.homedir, "certs") : NULL;
		if (!s.homedir || !s.certs_dir) {
			r = oom(&p);
			goto fail;
		}
	}
	r = parse_cert_issuance(&p);
	if (r >= 0)
		r = parse_preloaded(&p);
	if (r >= 0)
		r = parse_keyd_endpoint(&p);
	if (r < 0)
		goto fail;
	*ret = s;
	return 0;
fail:
	certd_settings_clear(&s);
	return r;
}

void certd_settings_clear(struct certd_settings *s)
{
	if (!s)
		return;
	free(s->homedir);
	free(s->certs_dir);
	free(s->keyd_socket);
	free(s->local_ca_cert);
	free(s->local_ca_pk);
	for (size_t i = 0; i < s->n_issuance; i++) {
		free(s->issuance[i].id);
		for (size_t j = 0; j < s->issuance[i].n_subject; j++) {
			free(s->issuance[i].subject[j].field);
			free(s->issuance[i].subject[j].value);
		}
		free(s->issuance[i].subject);
	}
	free(s->issuance);
	for (size_t i = 0; i < s->n_preloaded; i++) {
		free(s->preloaded[i].id);
		free(s->preloaded[i].path);
		for (size_t j = 0; j < s->preloaded[i].n_ids; j++)
			free(s->preloaded[i].ids[j]);
		free(s->preloaded[i].ids);
	}
	free(s->preloaded);
	*s = (struct certd_settings){0};
}

const struct certd_issuance *certd_settings_issuance(const struct certd_settings *s, const char *id)
{
	for (size_t i = 0; i < s->n_issuance; i++)
		if (streq(s->issuance[i].id, id))
			return &s->issuance[i];
	return NULL;
}

const struct certd_preloaded *certd_settings_preloaded(const struct certd_settings *s,
						       const char *id)
{
	for (size_t i = 0; i < s->n_preloaded; i++)
		if (streq(s->preloaded[i].id, id))
			return &s->preloaded[i];
	return NULL;
}
