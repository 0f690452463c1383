/* SPDX-License-Identifier: MIT */
/*
 * The [hub] table beyond the runtime's common keys:
 *
 *   ca = ["/path/device-ca.pem"]      CAs for certificateAuthority devices
 *                                     (with [tls] client_ca; optional)
 *   [[hub.shared_access_policy]]      one per policy, like IoT Hub's
 *   name = "iothubowner"
 *   primary_key = "<base64>"          16 to 64 bytes
 *   secondary_key = "<base64>"        optional
 *   rights = "RegistryWrite ServiceConnect DeviceConnect"
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>

#include "cloud/hub/hub.h"
#include "common/buf.h"
#include "common/encode.h"
#include "common/macro.h"

#define KEY_MIN 16
#define KEY_MAX 64

static const struct {
	const char *name;
	unsigned bit;
} rights[] = {
    {"RegistryRead", HUB_RIGHT_REGISTRY_READ},
    {"RegistryWrite", HUB_RIGHT_REGISTRY_WRITE},
    {"ServiceConnect", HUB_RIGHT_SERVICE_CONNECT},
    {"DeviceConnect", HUB_RIGHT_DEVICE_CONNECT},
};

int hub_rights_parse(const char *text, unsigned *ret_rights, size_t *ret_bad_offset)
{
	unsigned bits = 0;
	const char *p = text;

	*ret_rights = 0;
	for (;;) {
		size_t n;
		bool found = false;

		while (*p == ' ' || *p == ',' || *p == '\t')
			p++;
		if (!*p)
			break;
		n = strcspn(p, " ,\t");
		for (size_t i = 0; i < ARRAY_SIZE(rights) && !found; i++) {
			if (strlen(rights[i].name) == n && strneq(rights[i].name, p, n)) {
				bits |= rights[i].bit;
				found = true;
			}
		}
		if (!found) {
			if (ret_bad_offset)
				*ret_bad_offset = (size_t)(p - text);
			return -EINVAL;
		}
		p += n;
	}
	if (!bits) {
		if (ret_bad_offset)
			*ret_bad_offset = 0;
		return -EINVAL;
	}
	/* RegistryWrite includes RegistryRead, as in IoT Hub. */
	if (bits & HUB_RIGHT_REGISTRY_WRITE)
		bits |= HUB_RIGHT_REGISTRY_READ;
	*ret_rights = bits;
	return 0;
}

static void policy_clear(struct hub_policy *p)
{
	free(p->name);
	if (p->primary_key) {
		explicit_bzero(p->primary_key, strlen(p->primary_key));
		free(p->primary_key);
	}
	if (p->secondary_key) {
		explicit_bzero(p->secondary_key, strlen(p->secondary_key));
		free(p->secondary_key);
	}
}

void hub_config_free(void *settings)
{
	struct hub_settings *hs = settings;

	if (!hs)
		return;
	for (size_t i = 0; i < hs->n_policies; i++)
		policy_clear(&hs->policies[i]);
	free(hs->policies);
	free(hs->host_name);
	sk_X509_pop_free(hs->ca, X509_free);
	free(hs);
}

static int check_key(const struct cloud_config *cfg, const struct toml_value *t, const char *tpath,
		     const char *key, bool required, char **ret, struct err *e)
{
	_cleanup_buf_ struct buf raw = {0};
	const char *s;
	char path[160];
	size_t bad = 0;
	int r;

	*ret = NULL;
	r = cloud_config_string(cfg, t, tpath, key, required, &s, e);
	if (r < 0 || !s)
		return r;
	snprintf(path, sizeof(path), "%s.%s", tpath, key);
	buf_init_secret(&raw, 1024);
	r = base64_decode(&raw, s, strlen(s), B64_STANDARD, &bad);
	if (r == -E2BIG || (r == 0 && (raw.len < KEY_MIN || raw.len > KEY_MAX)))
		return cloud_config_fail(cfg, toml_table_get(t, key)->pos, path, e,
					 "expected a base64-encoded key of %d to %d bytes, got %zu "
					 "bytes",
					 KEY_MIN, KEY_MAX, r == 0 ? raw.len : (size_t)1024);
	if (r < 0)
		return cloud_config_fail(cfg, toml_table_get(t, key)->pos, path, e,
					 "expected a base64-encoded key, got invalid base64 (at "
					 "character %zu)",
					 bad + 1);
	*ret = strdup(s);
	return *ret ? 0 : err_set(e, -ENOMEM, "out of memory");
}

static int parse_policy(const struct cloud_config *cfg, const struct toml_value *t,
			const char *tpath, struct hub_policy *p, struct err *e)
{
	static const char *const keys[] = {"name", "primary_key", "secondary_key", "rights", NULL};
	const char *s;
	char path[160];
	size_t bad = 0;
	int r;

	r = cloud_config_check_keys(cfg, t, tpath, keys, false, e);
	if (r < 0)
		return r;
	r = cloud_config_string(cfg, t, tpath, "name", true, &s, e);
	if (r < 0)
		return r;
	snprintf(path, sizeof(path), "%s.name", tpath);
	for (const char *c = s; *c; c++)
		if (!isalnum((unsigned char)*c) && *c != '-' && *c != '_' && *c != '.')
			return cloud_config_fail(cfg, toml_table_get(t, "name")->pos, path, e,
						 "expected letters, digits, '-', '_' or '.', got "
						 "\"%s\"",
						 s);
	p->name = strdup(s);
	if (!p->name)
		return err_set(e, -ENOMEM, "out of memory");
	r = check_key(cfg, t, tpath, "primary_key", true, &p->primary_key, e);
	if (r < 0)
		return r;
	r = check_key(cfg, t, tpath, "secondary_key", false, &p->secondary_key, e);
	if (r < 0)
		return r;
	r = cloud_config_string(cfg, t, tpath, "rights", true, &s, e);
	if (r < 0)
		return r;
	snprintf(path, sizeof(path), "%s.rights", tpath);
	if (hub_rights_parse(s, &p->rights, &bad) < 0)
		return cloud_config_fail(cfg, toml_table_get(t, "rights")->pos, path, e,
					 "expected rights among RegistryRead, RegistryWrite, "
					 "ServiceConnect, DeviceConnect, got \"%s\"",
					 s);
	return 0;
}

static int load_ca_file(const struct cloud_config *cfg, const struct toml_value *v,
			const char *path, const char *file, STACK_OF(X509) * ca, struct err *e)
{
	BIO *bio = BIO_new_file(file, "r");
	size_t n = 0;

	if (!bio) {
		int r = errno ? -errno : -EIO;
		ERR_clear_error();
		if (!v)
			return err_set(e, r, "%s: tls.client_ca: %s: cannot read: %s", cfg->path,
				       file, strerror(-r));
		return cloud_config_fail(cfg, v->pos, path, e, "%s: cannot read: %s", file,
					 strerror(-r));
	}
	for (;;) {
		X509 *c = PEM_read_bio_X509(bio, NULL, NULL, NULL);

		if (!c)
			break;
		if (sk_X509_push(ca, c) <= 0) {
			X509_free(c);
			BIO_free(bio);
			return err_set(e, -ENOMEM, "out of memory");
		}
		n++;
	}
	ERR_clear_error();
	BIO_free(bio);
	if (n == 0) {
		if (!v)
			return err_set(e, -EINVAL,
				       "%s: tls.client_ca: %s: no PEM certificate in it", cfg->path,
				       file);
		return cloud_config_fail(cfg, v->pos, path, e, "%s: no PEM certificate in it",
					 file);
	}
	return 0;
}

/* Fill hs from the [hub] table. */
static int parse_into(struct hub_settings *hs, const struct toml_value *table,
		      const struct cloud_config *cfg, const struct cloud_service_common *common,
		      struct err *e)
{
	_cleanup_free_ const char **ca_files = NULL;
	const struct toml_value *policies;
	int r;

	if (!(hs->host_name = strdup(common->host_name)) || !(hs->ca = sk_X509_new_null()))
		return err_set(e, -ENOMEM, "out of memory");

	r = cloud_config_table_array(cfg, table, "hub", "shared_access_policy", &policies, e);
	if (r < 0)
		return r;
	if (policies) {
		hs->policies = calloc(policies->array.n + 1, sizeof(*hs->policies));
		if (!hs->policies)
			return err_set(e, -ENOMEM, "out of memory");
		for (size_t i = 0; i < policies->array.n; i++) {
			const struct toml_value *t = policies->array.items[i];
			char tpath[64], npath[80];

			snprintf(tpath, sizeof(tpath), "hub.shared_access_policy[%zu]", i);
			hs->n_policies = i + 1;
			r = parse_policy(cfg, t, tpath, &hs->policies[i], e);
			if (r < 0)
				return r;
			snprintf(npath, sizeof(npath), "%s.name", tpath);
			for (size_t j = 0; j < i; j++)
				if (streq(hs->policies[j].name, hs->policies[i].name))
					return cloud_config_fail(
					    cfg, toml_table_get(t, "name")->pos, npath, e,
					    "policy \"%s\" is defined twice", hs->policies[i].name);
		}
	}

	if (cfg->tls_client_ca_file) {
		r = load_ca_file(cfg, NULL, NULL, cfg->tls_client_ca_file, hs->ca, e);
		if (r < 0)
			return r;
	}
	r = cloud_config_strings(cfg, table, "hub", "ca", &ca_files, e);
	if (r < 0)
		return r;
	for (size_t i = 0; ca_files && ca_files[i]; i++) {
		const struct toml_value *v = toml_table_get(table, "ca");
		char path[32];

		if (v->type == TOML_ARRAY) {
			v = v->array.items[i];
			snprintf(path, sizeof(path), "hub.ca[%zu]", i);
		} else {
			snprintf(path, sizeof(path), "hub.ca");
		}
		r = load_ca_file(cfg, v, path, ca_files[i], hs->ca, e);
		if (r < 0)
			return r;
	}
	return 0;
}

int hub_config_parse(const struct toml_value *table, const struct cloud_config *cfg,
		     const struct cloud_service_common *common, void **ret_settings, struct err *e)
{
	static const char *const keys[] = {"shared_access_policy", "ca", NULL};
	struct hub_settings *hs;
	int r;

	*ret_settings = NULL;
	r = cloud_config_check_keys(cfg, table, "hub", keys, true, e);
	if (r < 0)
		return r;
	hs = calloc(1, sizeof(*hs));
	if (!hs)
		return err_set(e, -ENOMEM, "out of memory");
	r = parse_into(hs, table, cfg, common, e);
	if (r < 0) {
		hub_config_free(hs);
		return r;
	}
	*ret_settings = hs;
	return 0;
}
