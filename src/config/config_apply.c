/* SPDX-License-Identifier: MIT */
/*
 * config apply: split a parsed super-config into the per-daemon files of
 * the aziot schemas (specs/aziot-compat.md §3.9 and §3.11) and write them.
 *
 * The ids are those aziotctl and iotedge use ("device-id", "est-id",
 * "aziot-edged-ca", ...), so a device configured by Azure's tools and one
 * configured here keep the same keys, certificates and principals.
 */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fs.h"
#include "config/config.h"
#include "config/config_value.h"

#define MASTER_KEY_MAX (64 * 1024)

static const char *const service_user_names[CONFIG_USER_COUNT] = {
    "aziotks", "aziotcs", "aziotid", "aziottpm", "iotedge", "root",
};

const char *config_user_name(enum config_user u)
{
	return service_user_names[u];
}

int config_users_resolve(struct config_users *ret, struct err *e)
{
	memset(ret, 0, sizeof(*ret));
	if (geteuid() == 0) {
		for (int i = 0; i < CONFIG_USER_COUNT; i++) {
			const struct passwd *pw;

			ret->name[i] = service_user_names[i];
			if (i == CONFIG_USER_ROOT)
				continue; /* uid/gid 0 */
			errno = 0;
			pw = getpwnam(service_user_names[i]);
			if (!pw)
				return err_set(
				    e, errno ? -errno : -ENOENT,
				    "user \"%s\" does not exist; install edgeid's system "
				    "users (scripts/install-deps.sh creates them)",
				    service_user_names[i]);
			ret->uid[i] = pw->pw_uid;
			ret->gid[i] = pw->pw_gid;
		}
		return 0;
	}
	{
		const struct passwd *pw = getpwuid(getuid());

		if (pw)
			snprintf(ret->caller, sizeof(ret->caller), "%s", pw->pw_name);
		else
			snprintf(ret->caller, sizeof(ret->caller), "%lu", (unsigned long)getuid());
	}
	ret->unprivileged = true;
	for (int i = 0; i < CONFIG_USER_COUNT; i++) {
		ret->uid[i] = getuid();
		ret->gid[i] = getgid();
		ret->name[i] = ret->caller;
	}
	return 0;
}

/* ---- building the daemon tables ---------------------------------------- */

struct idlist {
	char **ids;
	size_t n;
};

struct gen {
	const struct edgeid_config *c;
	const struct config_users *u;
	struct err *e;
	struct config_value *keyd, *certd, *identityd, *tpmd, *edged;
	struct config_value *keys;     /* keyd [preloaded_keys] */
	struct config_value *certs;    /* certd [preloaded_certs] */
	struct config_value *issuance; /* certd [cert_issuance] */
	struct idlist id_keys, id_certs, cs_keys, edge_keys, edge_certs;
	const uint8_t *device_key; /* borrowed from c */
	size_t device_key_len;
	uint8_t *master_key; /* owned, wiped */
	size_t master_key_len;
};

static int idlist_add(struct idlist *l, const char *id)
{
	char **ids;

	for (size_t i = 0; i < l->n; i++)
		if (streq(l->ids[i], id))
			return 0;
	ids = reallocarray(l->ids, l->n + 1, sizeof(*ids));
	if (!ids)
		return -ENOMEM;
	l->ids = ids;
	ids[l->n] = strdup(id);
	if (!ids[l->n])
		return -ENOMEM;
	l->n++;
	return 0;
}

static void idlist_free(struct idlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->ids[i]);
	free(l->ids);
}

static struct config_value *idlist_array(const struct idlist *l)
{
	struct config_value *a = config_value_new_array();

	for (size_t i = 0; a && i < l->n; i++)
		if (config_value_push_str(a, l->ids[i]) < 0) {
			config_value_free(a);
			return NULL;
		}
	return a;
}

#define TRY(expr)                                                                                  \
	do {                                                                                       \
		int _r = (expr);                                                                   \
		if (_r < 0)                                                                        \
			return _r;                                                                 \
	} while (0)

static int policy_str(const struct config_policy *pol, char *out, size_t n)
{
	_cleanup_buf_ struct buf b = {0};

	buf_init(&b, 64);
	TRY(config_policy_format(pol, &b));
	snprintf(out, n, "%s", buf_str(&b));
	return 0;
}

static int auto_renew_table(const struct config_auto_renew *a, struct config_value **ret)
{
	_cleanup_value_ struct config_value *t = config_value_new_table();
	char pol[64];

	if (!t)
		return -ENOMEM;
	TRY(config_value_set_bool(t, "rotate_key", a->rotate_key));
	TRY(policy_str(&a->threshold, pol, sizeof(pol)));
	TRY(config_value_set_str(t, "threshold", pol));
	TRY(policy_str(&a->retry, pol, sizeof(pol)));
	TRY(config_value_set_str(t, "retry", pol));
	*ret = TAKE_PTR(t);
	return 0;
}

static bool auto_renew_is_default(const struct config_auto_renew *a)
{
	return a->rotate_key && a->threshold.unit == CONFIG_POLICY_PERCENT &&
	       a->threshold.value == 80 && a->retry.unit == CONFIG_POLICY_PERCENT &&
	       a->retry.value == 4;
}

static int map_table(const struct config_map *m, struct config_value **ret)
{
	_cleanup_value_ struct config_value *t = config_value_new_table();

	if (!t)
		return -ENOMEM;
	for (size_t i = 0; i < m->n; i++)
		TRY(config_value_set_str(t, m->items[i].key, m->items[i].value));
	*ret = TAKE_PTR(t);
	return 0;
}

static int set_map(struct config_value *t, const char *key, const struct config_map *m)
{
	struct config_value *v = NULL;

	TRY(map_table(m, &v));
	return config_value_set(t, key, v);
}

static int set_auto_renew(struct config_value *t, const char *key,
			  const struct config_auto_renew *a)
{
	struct config_value *v = NULL;

	TRY(auto_renew_table(a, &v));
	return config_value_set(t, key, v);
}

/* EST auth (global or per certificate): preloads the files under ids
 * derived from suffix ("" for the global one, "-<certid>" otherwise) and
 * writes the certd keys into t. */
static int est_auth(struct gen *g, const struct config_est_auth *a, const char *suffix,
		    struct config_value *t)
{
	char id[256], boot[256], temp[300];

	snprintf(id, sizeof(id), CONFIG_ID_EST "%s", suffix);
	snprintf(boot, sizeof(boot), CONFIG_ID_EST_BOOTSTRAP "%s", suffix);
	snprintf(temp, sizeof(temp), "%s-temp", id);
	if (a->username) {
		TRY(config_value_set_str(t, "username", a->username));
		TRY(config_value_set_str(t, "password", a->password));
	}
	if (a->identity_cert) {
		TRY(config_value_set_str(g->certs, id, a->identity_cert));
		TRY(config_value_set_str(g->keys, id, a->identity_pk));
		TRY(config_value_set_str(t, "identity_cert", id));
		TRY(config_value_set_str(t, "identity_pk", id));
		TRY(idlist_add(&g->cs_keys, id));
	}
	if (a->bootstrap_identity_cert) {
		TRY(config_value_set_str(g->certs, boot, a->bootstrap_identity_cert));
		TRY(config_value_set_str(g->keys, boot, a->bootstrap_identity_pk));
		/* certd requests the identity certificate id with the bootstrap one. */
		TRY(config_value_set_str(t, "identity_cert", id));
		TRY(config_value_set_str(t, "identity_pk", id));
		TRY(config_value_set_str(t, "bootstrap_identity_cert", boot));
		TRY(config_value_set_str(t, "bootstrap_identity_pk", boot));
		TRY(idlist_add(&g->cs_keys, id));
		if (g->c->est.identity_auto_renew.rotate_key)
			TRY(idlist_add(&g->cs_keys, temp));
		TRY(idlist_add(&g->cs_keys, boot));
	}
	return 0;
}

/* certd [cert_issuance.<cert_id>] from issuance options. */
static int issuance_entry(struct gen *g, const struct config_issuance *iss, const char *cert_id,
			  struct config_value **ret)
{
	_cleanup_value_ struct config_value *t = config_value_new_table();
	char suffix[200];

	if (!t)
		return -ENOMEM;
	TRY(config_value_set_str(t, "method", config_issuance_method_name(iss->method)));
	if (iss->method == CONFIG_ISSUANCE_EST) {
		if (iss->url)
			TRY(config_value_set_str(t, "url", iss->url));
		snprintf(suffix, sizeof(suffix), "-%s", cert_id);
		TRY(est_auth(g, &iss->auth, suffix, t));
	}
	if (iss->expiry_days)
		TRY(config_value_set_int(t, "expiry_days", iss->expiry_days));
	if (iss->common_name)
		TRY(config_value_set_str(t, "common_name", iss->common_name));
	else if (iss->subject.n)
		TRY(set_map(t, "subject", &iss->subject));
	*ret = TAKE_PTR(t);
	return 0;
}

/* Add cert_id (and, for renewal, cert_id-temp with the same options). */
static int add_issuance(struct gen *g, const struct config_issuance *iss, const char *cert_id,
			const char *temp_id)
{
	struct config_value *t = NULL;

	TRY(issuance_entry(g, iss, cert_id, &t));
	if (temp_id) {
		struct config_value *dup = config_value_dup(t);

		if (!dup) {
			config_value_free(t);
			return -ENOMEM;
		}
		TRY(config_value_set(g->issuance, cert_id, t));
		return config_value_set(g->issuance, temp_id, dup);
	}
	return config_value_set(g->issuance, cert_id, t);
}

static int device_symkey(struct gen *g, const struct config_symkey *k)
{
	if (k->is_inline) {
		g->device_key = k->key;
		g->device_key_len = k->key_len;
		TRY(config_value_set_str(g->keys, CONFIG_ID_DEVICE,
					 "file://" CONFIG_DEVICE_ID_KEY_PATH));
	} else {
		TRY(config_value_set_str(g->keys, CONFIG_ID_DEVICE, k->uri));
	}
	return idlist_add(&g->id_keys, CONFIG_ID_DEVICE);
}

/* The device identity certificate. renew: DPS with auto_renew. Writes
 * identity_cert/identity_pk into t. */
static int device_x509(struct gen *g, const struct config_x509 *x, bool renew,
		       struct config_value *t)
{
	bool temp = renew && x->issued && x->issuance.has_auto_renew;

	if (x->issued) {
		TRY(add_issuance(g, &x->issuance, CONFIG_ID_DEVICE,
				 temp ? CONFIG_ID_DEVICE_TEMP : NULL));
		TRY(idlist_add(&g->id_certs, CONFIG_ID_DEVICE));
		if (temp) {
			TRY(idlist_add(&g->id_certs, CONFIG_ID_DEVICE_TEMP));
		}
	} else {
		TRY(config_value_set_str(g->certs, CONFIG_ID_DEVICE, x->identity_cert));
		TRY(config_value_set_str(g->keys, CONFIG_ID_DEVICE, x->identity_pk));
	}
	TRY(idlist_add(&g->id_keys, CONFIG_ID_DEVICE));
	if (temp && x->issuance.auto_renew.rotate_key)
		TRY(idlist_add(&g->id_keys, CONFIG_ID_DEVICE_TEMP));
	TRY(config_value_set_str(t, "identity_cert", CONFIG_ID_DEVICE));
	return config_value_set_str(t, "identity_pk", CONFIG_ID_DEVICE);
}

/* identityd's CSR subject for an issued manual certificate: CN is the
 * device id; other attributes of subject are kept, uppercased. */
static int manual_csr_subject(const struct config_manual *m, struct config_value *auth)
{
	struct config_value *s;

	if (!m->x509.issued || m->x509.issuance.subject.n == 0)
		return 0;
	s = config_value_subtable(auth, "csr_subject");
	if (!s)
		return -ENOMEM;
	TRY(config_value_set_str(s, "CN", m->device_id));
	for (size_t i = 0; i < m->x509.issuance.subject.n; i++) {
		const struct config_map_entry *en = &m->x509.issuance.subject.items[i];
		char up[128];
		size_t j;

		for (j = 0; j < sizeof(up) - 1 && en->key[j]; j++)
			up[j] = (char)(en->key[j] >= 'a' && en->key[j] <= 'z' ? en->key[j] - 32
									      : en->key[j]);
		up[j] = '\0';
		if (streq(up, "CN"))
			continue;
		TRY(config_value_set_str(s, up, en->value));
	}
	return 0;
}

static int gen_provisioning(struct gen *g)
{
	const struct config_provisioning *pr = &g->c->provisioning;
	struct config_value *prov = config_value_subtable(g->identityd, "provisioning"), *sub;

	if (!prov)
		return -ENOMEM;
	if (g->c->local_gateway_hostname)
		TRY(config_value_set_str(prov, "local_gateway_hostname",
					 g->c->local_gateway_hostname));
	TRY(config_value_set_str(prov, "source", config_source_name(pr->source)));
	switch (pr->source) {
	case CONFIG_SOURCE_MANUAL:
		TRY(config_value_set_str(prov, "iothub_hostname", pr->manual.iothub_hostname));
		TRY(config_value_set_str(prov, "device_id", pr->manual.device_id));
		sub = config_value_subtable(prov, "authentication");
		if (!sub)
			return -ENOMEM;
		if (pr->manual.method == CONFIG_MANUAL_SAS) {
			TRY(config_value_set_str(sub, "method", "sas"));
			TRY(config_value_set_str(sub, "device_id_pk", CONFIG_ID_DEVICE));
			return device_symkey(g, &pr->manual.device_id_pk);
		}
		TRY(config_value_set_str(sub, "method", "x509"));
		TRY(device_x509(g, &pr->manual.x509, false, sub));
		return manual_csr_subject(&pr->manual, sub);
	case CONFIG_SOURCE_DPS:
		TRY(config_value_set_str(prov, "global_endpoint", pr->dps.global_endpoint));
		TRY(config_value_set_str(prov, "scope_id", pr->dps.id_scope));
		if (pr->dps.payload_uri) {
			sub = config_value_subtable(prov, "payload");
			if (!sub)
				return -ENOMEM;
			TRY(config_value_set_str(sub, "uri", pr->dps.payload_uri));
		}
		sub = config_value_subtable(prov, "attestation");
		if (!sub)
			return -ENOMEM;
		TRY(config_value_set_str(sub, "method", config_attestation_name(pr->dps.method)));
		if (pr->dps.registration_subject.n)
			TRY(set_map(sub, "registration_id", &pr->dps.registration_subject));
		else if (pr->dps.registration_id)
			TRY(config_value_set_str(sub, "registration_id", pr->dps.registration_id));
		switch (pr->dps.method) {
		case CONFIG_ATTEST_SYMMETRIC_KEY:
			TRY(config_value_set_str(sub, "symmetric_key", CONFIG_ID_DEVICE));
			return device_symkey(g, &pr->dps.symmetric_key);
		case CONFIG_ATTEST_X509:
			TRY(device_x509(g, &pr->dps.x509, true, sub));
			if (pr->dps.x509.issued && pr->dps.x509.issuance.has_auto_renew)
				TRY(set_auto_renew(sub, "identity_auto_renew",
						   &pr->dps.x509.issuance.auto_renew));
			return 0;
		case CONFIG_ATTEST_TPM:
			return 0;
		}
		return -EINVAL;
	case CONFIG_SOURCE_NONE:
		return 0;
	}
	return -EINVAL;
}

static int gen_cert_issuance(struct gen *g)
{
	const struct edgeid_config *c = g->c;

	if (c->est.present) {
		struct config_value *est = config_value_subtable(g->issuance, "est");
		struct config_value *tc = config_value_new_array();

		if (!est || !tc) {
			config_value_free(tc);
			return -ENOMEM;
		}
		for (size_t i = 0; i < c->est.n_trusted_certs; i++) {
			char id[64];

			snprintf(id, sizeof(id), CONFIG_ID_EST_SERVER_CA_PREFIX "%zu", i + 1);
			TRY(config_value_set_str(g->certs, id, c->est.trusted_certs[i]));
			if (config_value_push_str(tc, id) < 0) {
				config_value_free(tc);
				return -ENOMEM;
			}
		}
		if (c->est.n_trusted_certs)
			TRY(config_value_set(est, "trusted_certs", tc));
		else
			config_value_free(tc);
		if (c->est.has_auth)
			TRY(est_auth(g, &c->est.auth, "", est));
		if (!auto_renew_is_default(&c->est.identity_auto_renew))
			TRY(set_auto_renew(est, "identity_auto_renew",
					   &c->est.identity_auto_renew));
		if (c->est.urls.n)
			TRY(set_map(est, "urls", &c->est.urls));
	}
	if (c->local_ca.present) {
		struct config_value *lc = config_value_subtable(g->issuance, "local_ca");

		if (!lc)
			return -ENOMEM;
		if (c->local_ca.issued) {
			TRY(add_issuance(g, &c->local_ca.issuance, CONFIG_ID_LOCAL_CA, NULL));
		} else {
			TRY(config_value_set_str(g->certs, CONFIG_ID_LOCAL_CA, c->local_ca.cert));
			TRY(config_value_set_str(g->keys, CONFIG_ID_LOCAL_CA, c->local_ca.pk));
		}
		TRY(config_value_set_str(lc, "cert", CONFIG_ID_LOCAL_CA));
		TRY(config_value_set_str(lc, "pk", CONFIG_ID_LOCAL_CA));
		TRY(idlist_add(&g->cs_keys, CONFIG_ID_LOCAL_CA));
	}
	for (size_t i = 0; i < c->n_cert_issuance; i++)
		TRY(add_issuance(g, &c->cert_issuance[i].issuance, c->cert_issuance[i].id, NULL));
	return 0;
}

static int gen_edge_ca(struct gen *g)
{
	const struct config_edge_ca *ec = &g->c->edge_ca;
	struct config_value *bundle;

	switch (ec->kind) {
	case CONFIG_EDGE_CA_PRELOADED:
		TRY(config_value_set_str(g->certs, CONFIG_ID_EDGE_CA, ec->cert));
		TRY(config_value_set_str(g->keys, CONFIG_ID_EDGE_CA, ec->pk));
		break;
	case CONFIG_EDGE_CA_ISSUED:
		TRY(add_issuance(g, &ec->issuance, CONFIG_ID_EDGE_CA, CONFIG_ID_EDGE_CA_TEMP));
		TRY(idlist_add(&g->cs_keys, CONFIG_ID_EDGE_CA));
		break;
	case CONFIG_EDGE_CA_QUICKSTART: {
		struct config_issuance iss = {
		    .method = CONFIG_ISSUANCE_SELF_SIGNED,
		    .expiry_days = ec->expiry_days,
		    .common_name = ec->common_name,
		    .subject = ec->subject,
		};

		TRY(add_issuance(g, &iss, CONFIG_ID_EDGE_CA, CONFIG_ID_EDGE_CA_TEMP));
		TRY(idlist_add(&g->cs_keys, CONFIG_ID_EDGE_CA));
		break;
	}
	}
	bundle = config_value_new_array();
	if (!bundle || config_value_push_str(bundle, CONFIG_ID_EDGE_CA) < 0) {
		config_value_free(bundle);
		return -ENOMEM;
	}
	if (g->c->trust_bundle_cert) {
		TRY(config_value_set_str(g->certs, CONFIG_ID_TRUST_BUNDLE_USER,
					 g->c->trust_bundle_cert));
		if (config_value_push_str(bundle, CONFIG_ID_TRUST_BUNDLE_USER) < 0) {
			config_value_free(bundle);
			return -ENOMEM;
		}
	}
	TRY(config_value_set(g->certs, CONFIG_ID_EDGE_TRUST_BUNDLE, bundle));
	TRY(idlist_add(&g->edge_keys, CONFIG_ID_EDGE_CA));
	TRY(idlist_add(&g->edge_keys, CONFIG_ID_EDGE_MASTER_KEY));
	TRY(idlist_add(&g->edge_certs, CONFIG_ID_EDGE_CA));
	TRY(idlist_add(&g->edge_certs, "aziot-edged/module/*"));
	if (ec->kind != CONFIG_EDGE_CA_PRELOADED && ec->has_auto_renew) {
		TRY(idlist_add(&g->edge_certs, CONFIG_ID_EDGE_CA_TEMP));
		if (ec->auto_renew.rotate_key)
			TRY(idlist_add(&g->edge_keys, CONFIG_ID_EDGE_CA_TEMP));
	}
	return 0;
}

static int add_principal(struct config_value *root, uid_t uid, const char *list_key,
			 const struct idlist *ids)
{
	struct config_value *arr = (struct config_value *)config_value_get(root, "principal");
	struct config_value *p;

	if (ids && ids->n == 0)
		return 0;
	if (!arr) {
		arr = config_value_new_array();
		TRY(config_value_set(root, "principal", arr));
	}
	p = config_value_new_table();
	TRY(config_value_push(arr, p));
	TRY(config_value_set_int(p, "uid", (int64_t)uid));
	if (ids)
		TRY(config_value_set(p, list_key, idlist_array(ids)));
	return 0;
}

static int gen_edged(struct gen *g)
{
	const struct edgeid_config *c = g->c;
	struct config_value *e = g->edged, *t, *sub;

	TRY(config_value_set_str(e, "hostname", c->hostname));
	TRY(config_value_set_str(e, "homedir", "/var/lib/aziot/edged"));
	TRY(config_value_set_str(e, "edge_ca_cert", CONFIG_ID_EDGE_CA));
	TRY(config_value_set_str(e, "edge_ca_key", CONFIG_ID_EDGE_CA));
	TRY(config_value_set_str(e, "trust_bundle_cert", CONFIG_ID_EDGE_TRUST_BUNDLE));
	TRY(config_value_set_str(e, "auto_reprovisioning_mode",
				 config_reprovisioning_name(c->auto_reprovisioning_mode)));
	TRY(config_value_set_bool(e, "allow_elevated_docker_permissions",
				  c->allow_elevated_docker_permissions));
	if (c->additional_info)
		TRY(config_value_set_str(e, "additional_info", c->additional_info));
	if (c->edge_ca.kind == CONFIG_EDGE_CA_QUICKSTART) {
		if (c->edge_ca.common_name)
			TRY(config_value_set_str(e, "edge_ca_subject", c->edge_ca.common_name));
		else if (c->edge_ca.subject.n)
			TRY(set_map(e, "edge_ca_subject", &c->edge_ca.subject));
	} else if (c->edge_ca.kind == CONFIG_EDGE_CA_ISSUED) {
		if (c->edge_ca.issuance.common_name)
			TRY(config_value_set_str(e, "edge_ca_subject",
						 c->edge_ca.issuance.common_name));
		else if (c->edge_ca.issuance.subject.n)
			TRY(set_map(e, "edge_ca_subject", &c->edge_ca.issuance.subject));
	}
	if (c->edge_ca.kind != CONFIG_EDGE_CA_PRELOADED && c->edge_ca.has_auto_renew)
		TRY(set_auto_renew(e, "edge_ca_auto_renew", &c->edge_ca.auto_renew));
	TRY(config_show_edge_runtime(e, c, false));

	t = config_value_subtable(e, "moby_runtime");
	if (!t)
		return -ENOMEM;
	TRY(config_show_moby_network(t, c));
	if (c->moby.content_trust_ca_certs.n) {
		struct config_value *ca;

		sub = config_value_subtable(t, "content_trust");
		ca = sub ? config_value_subtable(sub, "ca_certs") : NULL;
		if (!ca)
			return -ENOMEM;
		for (size_t i = 0; i < c->moby.content_trust_ca_certs.n; i++) {
			const struct config_map_entry *en =
			    &c->moby.content_trust_ca_certs.items[i];
			char id[300];

			snprintf(id, sizeof(id), CONFIG_ID_CONTENT_TRUST_PREFIX "%s", en->key);
			TRY(config_value_set_str(g->certs, id, en->value));
			TRY(config_value_set_str(ca, en->key, id));
		}
	}
	return c->image_gc.present ? config_show_image_gc(e, c) : 0;
}

static int read_master_key(struct gen *g, const char *root, const char *source_path)
{
	_cleanup_buf_ struct buf data = {0};
	_cleanup_free_ char *path = NULL;
	_cleanup_close_ int fd = -1;
	char chunk[4096];

	buf_init_secret(&data, MASTER_KEY_MAX);
	path = root && *root ? fs_path_join(root, g->c->imported_master_encryption_key)
			     : strdup(g->c->imported_master_encryption_key);
	if (!path)
		return -ENOMEM;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return err_set(g->e, -errno,
			       "%s: imported_master_encryption_key: cannot read %s: %s",
			       source_path, path, strerror(errno));
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		int r;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int saved = errno;

			explicit_bzero(chunk, sizeof(chunk));
			return err_set(g->e, -saved,
				       "%s: imported_master_encryption_key: cannot read %s: %s",
				       source_path, path, strerror(saved));
		}
		if (n == 0)
			break;
		r = buf_append(&data, chunk, (size_t)n);
		explicit_bzero(chunk, sizeof(chunk));
		if (r < 0)
			return err_set(g->e, r, "%s: imported_master_encryption_key: %s: %s",
				       source_path, path,
				       r == -E2BIG ? "larger than 64 KiB" : strerror(-r));
	}
	if (data.len == 0)
		return err_set(g->e, -EINVAL, "%s: imported_master_encryption_key: %s is empty",
			       source_path, path);
	g->master_key_len = data.len;
	g->master_key = (uint8_t *)buf_steal(&data, NULL);
	return g->master_key ? 0 : -ENOMEM;
}

static int gen_all(struct gen *g, const char *root, const char *source_path)
{
	const struct edgeid_config *c = g->c;
	struct config_value *t;

	/* keyd */
	if (c->aziot_max_requests.keyd != CONFIG_MAX_REQUESTS_DEFAULT)
		TRY(config_value_set_int(g->keyd, "max_requests", c->aziot_max_requests.keyd));
	t = config_value_subtable(g->keyd, "aziot_keys");
	if (!t)
		return -ENOMEM;
	TRY(config_value_set_str(t, "homedir_path", "/var/lib/aziot/keyd"));
	for (size_t i = 0; i < c->aziot_keys.n; i++)
		TRY(config_value_set_str(t, c->aziot_keys.items[i].key,
					 c->aziot_keys.items[i].value));
	g->keys = config_value_subtable(g->keyd, "preloaded_keys");

	/* certd */
	TRY(config_value_set_str(g->certd, "homedir_path", "/var/lib/aziot/certd"));
	if (c->aziot_max_requests.certd != CONFIG_MAX_REQUESTS_DEFAULT)
		TRY(config_value_set_int(g->certd, "max_requests", c->aziot_max_requests.certd));
	g->issuance = config_value_subtable(g->certd, "cert_issuance");
	g->certs = config_value_subtable(g->certd, "preloaded_certs");
	if (!g->keys || !g->issuance || !g->certs)
		return -ENOMEM;

	/* identityd */
	TRY(config_value_set_str(g->identityd, "hostname", c->hostname));
	TRY(config_value_set_str(g->identityd, "homedir", "/var/lib/aziot/identityd"));
	TRY(config_value_set_bool(g->identityd, "prefer_module_identity_cache",
				  c->prefer_module_identity_cache));
	if (c->aziot_max_requests.identityd != CONFIG_MAX_REQUESTS_DEFAULT)
		TRY(config_value_set_int(g->identityd, "max_requests",
					 c->aziot_max_requests.identityd));
	if (c->cloud_timeout_sec != CONFIG_CLOUD_TIMEOUT_DEFAULT)
		TRY(config_value_set_int(g->identityd, "cloud_timeout_sec",
					 (int64_t)c->cloud_timeout_sec));
	if (c->cloud_retries != CONFIG_CLOUD_RETRIES_DEFAULT)
		TRY(config_value_set_int(g->identityd, "cloud_retries", c->cloud_retries));
	/* edgeid's identityd also trusts the bundle for DPS and the hub (a
	 * self-hosted cloud with its own CA); aziot's ignores unknown keys. */
	if (c->trust_bundle_cert)
		TRY(config_value_set_str(g->identityd, "trust_bundle_cert", c->trust_bundle_cert));
	/* aziot gives this to edged only; edgeid's identityd applies it itself. */
	TRY(config_value_set_str(g->identityd, "auto_reprovisioning_mode",
				 config_reprovisioning_name(c->auto_reprovisioning_mode)));
	TRY(idlist_add(&g->id_keys, CONFIG_ID_MASTER));
	TRY(gen_cert_issuance(g));
	TRY(gen_provisioning(g));
	if (c->has_localid) {
		t = config_value_subtable(g->identityd, "localid");
		if (!t)
			return -ENOMEM;
		TRY(config_value_set_str(t, "domain", c->localid_domain));
	}

	TRY(gen_edge_ca(g));
	if (c->imported_master_encryption_key) {
		TRY(read_master_key(g, root, source_path));
		TRY(config_value_set_str(g->keys, CONFIG_ID_EDGE_MASTER_KEY,
					 "file://" CONFIG_MASTER_KEY_PATH));
	}

	/* The user's own preloaded entries; ids apply generated take precedence. */
	for (size_t i = 0; i < c->preloaded_keys.n; i++)
		if (!config_value_get(g->keys, c->preloaded_keys.items[i].key))
			TRY(config_value_set_str(g->keys, c->preloaded_keys.items[i].key,
						 c->preloaded_keys.items[i].value));
	for (size_t i = 0; i < c->n_preloaded_certs; i++) {
		const struct config_preloaded_cert *pc = &c->preloaded_certs[i];
		struct config_value *arr;

		if (config_value_get(g->certs, pc->id))
			continue;
		if (pc->uri) {
			TRY(config_value_set_str(g->certs, pc->id, pc->uri));
			continue;
		}
		arr = config_value_new_array();
		for (size_t j = 0; arr && j < pc->n_ids; j++)
			if (config_value_push_str(arr, pc->ids[j]) < 0) {
				config_value_free(arr);
				arr = NULL;
			}
		TRY(config_value_set(g->certs, pc->id, arr));
	}

	/* tpmd */
	if (c->aziot_max_requests.tpmd != CONFIG_MAX_REQUESTS_DEFAULT)
		TRY(config_value_set_int(g->tpmd, "max_requests", c->aziot_max_requests.tpmd));
	if (!streq(c->tpm.tcti, CONFIG_TCTI_DEFAULT))
		TRY(config_value_set_str(g->tpmd, "tcti", c->tpm.tcti));
	if (c->tpm.auth_key_index != CONFIG_AUTH_KEY_INDEX_DEFAULT)
		TRY(config_value_set_int(g->tpmd, "auth_key_index", c->tpm.auth_key_index));
	if (*c->tpm.endorsement_auth || *c->tpm.owner_auth) {
		t = config_value_subtable(g->tpmd, "hierarchy_authorization");
		if (!t)
			return -ENOMEM;
		TRY(config_value_set_str(t, "endorsement", c->tpm.endorsement_auth));
		TRY(config_value_set_str(t, "owner", c->tpm.owner_auth));
	}

	TRY(gen_edged(g));

	/* Principals. */
	TRY(add_principal(g->keyd, g->u->uid[CONFIG_USER_IDENTITYD], "keys", &g->id_keys));
	TRY(add_principal(g->keyd, g->u->uid[CONFIG_USER_CERTD], "keys", &g->cs_keys));
	TRY(add_principal(g->keyd, g->u->uid[CONFIG_USER_EDGED], "keys", &g->edge_keys));
	TRY(add_principal(g->certd, g->u->uid[CONFIG_USER_IDENTITYD], "certs", &g->id_certs));
	TRY(add_principal(g->certd, g->u->uid[CONFIG_USER_EDGED], "certs", &g->edge_certs));
	{
		struct config_value *arr = config_value_new_array(), *p;

		TRY(config_value_set(g->identityd, "principal", arr));
		p = config_value_new_table();
		TRY(config_value_push(arr, p));
		TRY(config_value_set_int(p, "uid", g->u->uid[CONFIG_USER_EDGED]));
		TRY(config_value_set_str(p, "name", "aziot-edge"));
		for (size_t i = 0; i < c->n_principals; i++)
			TRY(config_show_principal(arr, &c->principals[i]));
	}
	return 0;
}

/* Empty tables would only add noise to the files. */
static void drop_if_empty(struct config_value *t, const char *key)
{
	const struct config_value *v = config_value_get(t, key);

	if (!v || v->type != CONFIG_VALUE_TABLE || v->table.n != 0)
		return;
	for (size_t i = 0; i < t->table.n; i++)
		if (streq(t->table.items[i].key, key)) {
			free(t->table.items[i].key);
			config_value_free(t->table.items[i].value);
			memmove(&t->table.items[i], &t->table.items[i + 1],
				(t->table.n - i - 1) * sizeof(t->table.items[0]));
			t->table.n--;
			return;
		}
}

/* ---- the plan ------------------------------------------------------------ */

static int plan_dir(struct config_plan *p, const char *path, mode_t mode, enum config_user owner,
		    bool fix)
{
	struct config_out_dir *d = reallocarray(p->dirs, p->n_dirs + 1, sizeof(*d));

	if (!d)
		return -ENOMEM;
	p->dirs = d;
	d[p->n_dirs] = (struct config_out_dir){strdup(path), mode, owner, fix};
	if (!d[p->n_dirs].path)
		return -ENOMEM;
	p->n_dirs++;
	return 0;
}

static int plan_file(struct config_plan *p, const char *path, mode_t mode, enum config_user owner,
		     const void *data, size_t len)
{
	struct config_out_file *f = reallocarray(p->files, p->n_files + 1, sizeof(*f));

	if (!f)
		return -ENOMEM;
	p->files = f;
	f += p->n_files;
	*f = (struct config_out_file){strdup(path), mode, owner, malloc(len ? len : 1), len};
	if (!f->path || !f->data) {
		free(f->path);
		free(f->data);
		return -ENOMEM;
	}
	memcpy(f->data, data, len);
	p->n_files++;
	return 0;
}

static int plan_toml(struct config_plan *p, const char *path, enum config_user owner,
		     const struct config_value *t, const char *source_path)
{
	_cleanup_buf_ struct buf out = {0};

	buf_init_secret(&out, 0);
	TRY(buf_printf(&out,
		       "# This file is generated by `edgeid config apply` from %s.\n"
		       "# Do not edit it; edit %s and run `edgeid config apply` again.\n\n",
		       source_path, source_path));
	TRY(config_value_render_toml(t, &out));
	return plan_file(p, path, 0600, owner, out.data, out.len);
}

static void gen_free(struct gen *g)
{
	config_value_free(g->keyd);
	config_value_free(g->certd);
	config_value_free(g->identityd);
	config_value_free(g->tpmd);
	config_value_free(g->edged);
	idlist_free(&g->id_keys);
	idlist_free(&g->id_certs);
	idlist_free(&g->cs_keys);
	idlist_free(&g->edge_keys);
	idlist_free(&g->edge_certs);
	if (g->master_key) {
		explicit_bzero(g->master_key, g->master_key_len);
		free(g->master_key);
	}
}

int config_plan_build(const struct edgeid_config *c, const struct config_users *users,
		      const char *source_path, const char *root, struct config_plan **ret,
		      struct err *e)
{
	static const struct {
		const char *dir;
		enum config_user owner;
	} services[] = {
	    {"/etc/aziot/keyd", CONFIG_USER_KEYD},
	    {"/etc/aziot/certd", CONFIG_USER_CERTD},
	    {"/etc/aziot/identityd", CONFIG_USER_IDENTITYD},
	    {"/etc/aziot/tpmd", CONFIG_USER_TPMD},
	    {"/etc/aziot/edged", CONFIG_USER_EDGED},
	};
	struct gen g = {.c = c, .u = users, .e = e};
	struct config_plan *p = NULL;
	struct config_value *tables[5];
	int r;

	*ret = NULL;
	g.keyd = config_value_new_table();
	g.certd = config_value_new_table();
	g.identityd = config_value_new_table();
	g.tpmd = config_value_new_table();
	g.edged = config_value_new_table();
	p = calloc(1, sizeof(*p));
	if (!g.keyd || !g.certd || !g.identityd || !g.tpmd || !g.edged || !p) {
		r = -ENOMEM;
		goto out;
	}
	r = gen_all(&g, root, source_path);
	if (r < 0)
		goto out;
	drop_if_empty(g.keyd, "preloaded_keys");
	drop_if_empty(g.certd, "preloaded_certs");
	drop_if_empty(g.certd, "cert_issuance");
	tables[0] = g.keyd;
	tables[1] = g.certd;
	tables[2] = g.identityd;
	tables[3] = g.tpmd;
	tables[4] = g.edged;

	if (g.device_key || g.master_key) {
		r = plan_dir(p, "/var/secrets", 0755, CONFIG_USER_ROOT, false);
		if (r >= 0)
			r = plan_dir(p, "/var/secrets/aziot", 0755, CONFIG_USER_ROOT, false);
		if (r >= 0)
			r = plan_dir(p, CONFIG_SECRETS_DIR, 0700, CONFIG_USER_KEYD, true);
		if (r >= 0 && g.device_key)
			r = plan_file(p, CONFIG_DEVICE_ID_KEY_PATH, 0600, CONFIG_USER_KEYD,
				      g.device_key, g.device_key_len);
		if (r >= 0 && g.master_key)
			r = plan_file(p, CONFIG_MASTER_KEY_PATH, 0600, CONFIG_USER_KEYD,
				      g.master_key, g.master_key_len);
		if (r < 0)
			goto out;
	}
	r = plan_dir(p, "/etc/aziot", 0755, CONFIG_USER_ROOT, false);
	for (size_t i = 0; r >= 0 && i < ARRAY_SIZE(services); i++) {
		char dir[128], file[160];

		snprintf(dir, sizeof(dir), "%s/config.d", services[i].dir);
		snprintf(file, sizeof(file), "%s/00-super.toml", dir);
		r = plan_dir(p, services[i].dir, 0755, CONFIG_USER_ROOT, false);
		if (r >= 0)
			r = plan_dir(p, dir, 0700, services[i].owner, true);
		if (r >= 0)
			r = plan_toml(p, file, services[i].owner, tables[i], source_path);
	}
out:
	gen_free(&g);
	if (r < 0) {
		config_plan_free(p);
		if (r == -ENOMEM)
			err_set(e, r, "out of memory");
		return r;
	}
	*ret = p;
	return 0;
}

const struct config_out_file *config_plan_find(const struct config_plan *p, const char *path)
{
	for (size_t i = 0; i < p->n_files; i++)
		if (streq(p->files[i].path, path))
			return &p->files[i];
	return NULL;
}

void config_plan_free(struct config_plan *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n_dirs; i++)
		free(p->dirs[i].path);
	free(p->dirs);
	for (size_t i = 0; i < p->n_files; i++) {
		free(p->files[i].path);
		if (p->files[i].data) {
			explicit_bzero(p->files[i].data, p->files[i].len);
			free(p->files[i].data);
		}
	}
	free(p->files);
	free(p);
}

static char *rooted(const char *root, const char *path)
{
	if (!root || !*root || streq(root, "/"))
		return strdup(path);
	return fs_path_join(root, path);
}

int config_plan_write(const struct config_plan *p, const char *root,
		      const struct config_users *users, FILE *out, struct err *e)
{
	int r;

	for (size_t i = 0; i < p->n_dirs; i++) {
		const struct config_out_dir *d = &p->dirs[i];
		_cleanup_free_ char *path = rooted(root, d->path);

		if (!path)
			return err_set(e, -ENOMEM, "out of memory");
		r = fs_mkdir_p(path, d->mode, users->uid[d->owner], users->gid[d->owner],
			       d->fix_existing, e);
		if (r < 0)
			return r;
	}
	for (size_t i = 0; i < p->n_files; i++) {
		const struct config_out_file *f = &p->files[i];
		_cleanup_free_ char *path = rooted(root, f->path);

		if (!path)
			return err_set(e, -ENOMEM, "out of memory");
		r = fs_write_atomic(path, f->data, f->len, f->mode, users->uid[f->owner],
				    users->gid[f->owner], e);
		if (r < 0)
			return r;
		if (out)
			fprintf(out, "wrote %s (owner %s, mode %04o)\n", path,
				users->name[f->owner], (unsigned)f->mode);
	}
	return 0;
}

int config_plan_describe(const struct config_plan *p, const char *root,
			 const struct config_users *users, FILE *out)
{
	for (size_t i = 0; i < p->n_dirs; i++) {
		const struct config_out_dir *d = &p->dirs[i];
		_cleanup_free_ char *path = rooted(root, d->path);
		struct stat st;

		if (!path)
			return -ENOMEM;
		if (stat(path, &st) == 0 && !d->fix_existing)
			continue;
		fprintf(out, "would %s directory %s (owner %s, mode %04o)\n",
			stat(path, &st) == 0 ? "update" : "create", path, users->name[d->owner],
			(unsigned)d->mode);
	}
	for (size_t i = 0; i < p->n_files; i++) {
		const struct config_out_file *f = &p->files[i];
		_cleanup_free_ char *path = rooted(root, f->path);

		if (!path)
			return -ENOMEM;
		fprintf(out, "would write %s (owner %s, mode %04o, %zu bytes)\n", path,
			users->name[f->owner], (unsigned)f->mode, f->len);
	}
	return 0;
}
