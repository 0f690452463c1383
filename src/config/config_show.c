/* SPDX-License-Identifier: MIT */
/*
 * config show: the effective super-config (defaults filled in), in the
 * super-config's own key names, with every secret replaced by "***".
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "config/config_value.h"

#define MASK "***"

#define TRY(expr)                                                                                  \
	do {                                                                                       \
		int _r = (expr);                                                                   \
		if (_r < 0)                                                                        \
			return _r;                                                                 \
	} while (0)

/* Copy s with the value of each "name=" attribute replaced by MASK. */
static int masked(struct buf *out, const char *s, const char *name)
{
	size_t nl = strlen(name);

	while (*s) {
		if (strneq(s, name, nl)) {
			TRY(buf_append(out, s, nl));
			TRY(buf_append_str(out, MASK));
			s += nl;
			while (*s && *s != '&' && *s != ';')
				s++;
			continue;
		}
		TRY(buf_putc(out, *s++));
	}
	return 0;
}

static int set_masked(struct config_value *t, const char *key, const char *s, const char *name)
{
	_cleanup_buf_ struct buf b = {0};

	buf_init_secret(&b, 0);
	TRY(masked(&b, s, name));
	return config_value_set_str(t, key, buf_str(&b));
}

/* A key URI: PINs masked. */
static int set_uri(struct config_value *t, const char *key, const char *uri)
{
	return set_masked(t, key, uri, "pin-value=");
}

static int set_policy(struct config_value *t, const char *key, const struct config_policy *p)
{
	_cleanup_buf_ struct buf b = {0};

	buf_init(&b, 64);
	TRY(config_policy_format(p, &b));
	return config_value_set_str(t, key, buf_str(&b));
}

static int show_auto_renew(struct config_value *parent, const char *key,
			   const struct config_auto_renew *a)
{
	struct config_value *t = config_value_subtable(parent, key);

	if (!t)
		return -ENOMEM;
	TRY(config_value_set_bool(t, "rotate_key", a->rotate_key));
	TRY(set_policy(t, "threshold", &a->threshold));
	return set_policy(t, "retry", &a->retry);
}

static int show_map(struct config_value *parent, const char *key, const struct config_map *m,
		    bool uris)
{
	struct config_value *t = config_value_subtable(parent, key);

	if (!t)
		return -ENOMEM;
	for (size_t i = 0; i < m->n; i++)
		TRY(uris ? set_uri(t, m->items[i].key, m->items[i].value)
			 : config_value_set_str(t, m->items[i].key, m->items[i].value));
	return 0;
}

static int show_est_auth(struct config_value *t, const struct config_est_auth *a)
{
	if (a->username) {
		TRY(config_value_set_str(t, "username", a->username));
		TRY(config_value_set_str(t, "password", MASK));
	}
	if (a->identity_cert) {
		TRY(config_value_set_str(t, "identity_cert", a->identity_cert));
		TRY(set_uri(t, "identity_pk", a->identity_pk));
	}
	if (a->bootstrap_identity_cert) {
		TRY(config_value_set_str(t, "bootstrap_identity_cert", a->bootstrap_identity_cert));
		TRY(set_uri(t, "bootstrap_identity_pk", a->bootstrap_identity_pk));
	}
	return 0;
}

static int show_issuance(struct config_value *t, const struct config_issuance *iss)
{
	TRY(config_value_set_str(t, "method", config_issuance_method_name(iss->method)));
	if (iss->common_name)
		TRY(config_value_set_str(t, "common_name", iss->common_name));
	if (iss->expiry_days)
		TRY(config_value_set_int(t, "expiry_days", iss->expiry_days));
	else if (iss->method != CONFIG_ISSUANCE_EST)
		TRY(config_value_set_int(t, "expiry_days", CONFIG_EXPIRY_DAYS_DEFAULT));
	if (iss->method == CONFIG_ISSUANCE_EST) {
		if (iss->url)
			TRY(config_value_set_str(t, "url", iss->url));
		TRY(show_est_auth(t, &iss->auth));
	}
	if (iss->subject.n)
		TRY(show_map(t, "subject", &iss->subject, false));
	if (iss->has_auto_renew)
		TRY(show_auto_renew(t, "auto_renew", &iss->auto_renew));
	return 0;
}

static int show_symkey(struct config_value *t, const char *key, const struct config_symkey *k)
{
	struct config_value *s = config_value_subtable(t, key);

	if (!s)
		return -ENOMEM;
	if (k->is_inline)
		return config_value_set_str(s, "value", MASK);
	return set_uri(s, "uri", k->uri);
}

static int show_x509(struct config_value *t, const struct config_x509 *x)
{
	if (!x->issued) {
		TRY(config_value_set_str(t, "identity_cert", x->identity_cert));
		return set_uri(t, "identity_pk", x->identity_pk);
	}
	{
		struct config_value *ic = config_value_subtable(t, "identity_cert");

		if (!ic)
			return -ENOMEM;
		return show_issuance(ic, &x->issuance);
	}
}

static int show_provisioning(struct config_value *root, const struct edgeid_config *c)
{
	const struct config_provisioning *pr = &c->provisioning;
	struct config_value *p = config_value_subtable(root, "provisioning"), *a;

	if (!p)
		return -ENOMEM;
	TRY(config_value_set_str(p, "source", config_source_name(pr->source)));
	switch (pr->source) {
	case CONFIG_SOURCE_MANUAL:
		if (pr->manual.from_connection_string)
			return set_masked(p, "connection_string", pr->manual.connection_string,
					  "SharedAccessKey=");
		TRY(config_value_set_str(p, "iothub_hostname", pr->manual.iothub_hostname));
		TRY(config_value_set_str(p, "device_id", pr->manual.device_id));
		a = config_value_subtable(p, "authentication");
		if (!a)
			return -ENOMEM;
		if (pr->manual.method == CONFIG_MANUAL_SAS) {
			TRY(config_value_set_str(a, "method", "sas"));
			return show_symkey(a, "device_id_pk", &pr->manual.device_id_pk);
		}
		TRY(config_value_set_str(a, "method", "x509"));
		return show_x509(a, &pr->manual.x509);
	case CONFIG_SOURCE_DPS:
		TRY(config_value_set_str(p, "global_endpoint", pr->dps.global_endpoint));
		TRY(config_value_set_str(p, "id_scope", pr->dps.id_scope));
		if (pr->dps.payload_uri) {
			struct config_value *pl = config_value_subtable(p, "payload");

			if (!pl)
				return -ENOMEM;
			TRY(config_value_set_str(pl, "uri", pr->dps.payload_uri));
		}
		a = config_value_subtable(p, "attestation");
		if (!a)
			return -ENOMEM;
		TRY(config_value_set_str(a, "method", config_attestation_name(pr->dps.method)));
		if (pr->dps.registration_subject.n)
			TRY(show_map(a, "registration_id", &pr->dps.registration_subject, false));
		else if (pr->dps.registration_id)
			TRY(config_value_set_str(a, "registration_id", pr->dps.registration_id));
		if (pr->dps.method == CONFIG_ATTEST_SYMMETRIC_KEY)
			return show_symkey(a, "symmetric_key", &pr->dps.symmetric_key);
		if (pr->dps.method == CONFIG_ATTEST_X509)
			return show_x509(a, &pr->dps.x509);
		return 0;
	case CONFIG_SOURCE_NONE:
		return 0;
	}
	return -EINVAL;
}

static int show_identity(struct config_value *root, const struct edgeid_config *c)
{
	struct config_value *t;

	TRY(config_value_set_str(root, "hostname", c->hostname));
	if (c->local_gateway_hostname)
		TRY(config_value_set_str(root, "local_gateway_hostname",
					 c->local_gateway_hostname));
	TRY(config_value_set_int(root, "cloud_timeout_sec", (int64_t)c->cloud_timeout_sec));
	TRY(config_value_set_int(root, "cloud_retries", c->cloud_retries));
	TRY(config_value_set_bool(root, "prefer_module_identity_cache",
				  c->prefer_module_identity_cache));
	TRY(config_value_set_str(root, "auto_reprovisioning_mode",
				 config_reprovisioning_name(c->auto_reprovisioning_mode)));
	TRY(config_value_set_bool(root, "allow_elevated_docker_permissions",
				  c->allow_elevated_docker_permissions));
	if (c->trust_bundle_cert)
		TRY(config_value_set_str(root, "trust_bundle_cert", c->trust_bundle_cert));
	if (c->manifest_trust_bundle_cert)
		TRY(config_value_set_str(root, "manifest_trust_bundle_cert",
					 c->manifest_trust_bundle_cert));
	if (c->imported_master_encryption_key)
		TRY(config_value_set_str(root, "imported_master_encryption_key",
					 c->imported_master_encryption_key));
	if (c->additional_info)
		TRY(config_value_set_str(root, "additional_info", c->additional_info));

	t = config_value_subtable(root, "aziot_max_requests");
	if (!t)
		return -ENOMEM;
	TRY(config_value_set_int(t, "keyd", c->aziot_max_requests.keyd));
	TRY(config_value_set_int(t, "certd", c->aziot_max_requests.certd));
	TRY(config_value_set_int(t, "tpmd", c->aziot_max_requests.tpmd));
	TRY(config_value_set_int(t, "identityd", c->aziot_max_requests.identityd));

	TRY(show_provisioning(root, c));
	if (c->has_localid) {
		t = config_value_subtable(root, "localid");
		if (!t)
			return -ENOMEM;
		TRY(config_value_set_str(t, "domain", c->localid_domain));
	}
	if (c->aziot_keys.n)
		TRY(show_map(root, "aziot_keys", &c->aziot_keys, true));
	if (c->preloaded_keys.n)
		TRY(show_map(root, "preloaded_keys", &c->preloaded_keys, true));
	if (c->n_preloaded_certs) {
		t = config_value_subtable(root, "preloaded_certs");
		if (!t)
			return -ENOMEM;
		for (size_t i = 0; i < c->n_preloaded_certs; i++) {
			const struct config_preloaded_cert *pc = &c->preloaded_certs[i];
			struct config_value *arr;

			if (pc->uri) {
				TRY(config_value_set_str(t, pc->id, pc->uri));
				continue;
			}
			arr = config_value_new_array();
			TRY(config_value_set(t, pc->id, arr));
			for (size_t j = 0; j < pc->n_ids; j++)
				TRY(config_value_push_str(arr, pc->ids[j]));
		}
	}
	if (c->est.present || c->local_ca.present || c->n_cert_issuance) {
		struct config_value *ci = config_value_subtable(root, "cert_issuance");

		if (!ci)
			return -ENOMEM;
		if (c->est.present) {
			struct config_value *est = config_value_subtable(ci, "est"), *arr;

			if (!est)
				return -ENOMEM;
			arr = config_value_new_array();
			TRY(config_value_set(est, "trusted_certs", arr));
			for (size_t i = 0; i < c->est.n_trusted_certs; i++)
				TRY(config_value_push_str(arr, c->est.trusted_certs[i]));
			if (c->est.has_auth) {
				struct config_value *a = config_value_subtable(est, "auth");

				if (!a)
					return -ENOMEM;
				TRY(show_est_auth(a, &c->est.auth));
			}
			TRY(show_auto_renew(est, "identity_auto_renew",
					    &c->est.identity_auto_renew));
			if (c->est.urls.n)
				TRY(show_map(est, "urls", &c->est.urls, false));
		}
		if (c->local_ca.present) {
			struct config_value *lc = config_value_subtable(ci, "local_ca");

			if (!lc)
				return -ENOMEM;
			if (c->local_ca.issued) {
				struct config_value *cert = config_value_subtable(lc, "cert");

				if (!cert)
					return -ENOMEM;
				TRY(show_issuance(cert, &c->local_ca.issuance));
			} else {
				TRY(config_value_set_str(lc, "cert", c->local_ca.cert));
				TRY(set_uri(lc, "pk", c->local_ca.pk));
			}
		}
		for (size_t i = 0; i < c->n_cert_issuance; i++) {
			t = config_value_subtable(ci, c->cert_issuance[i].id);
			if (!t)
				return -ENOMEM;
			TRY(show_issuance(t, &c->cert_issuance[i].issuance));
		}
	}
	t = config_value_subtable(root, "tpm");
	if (!t)
		return -ENOMEM;
	TRY(config_value_set_str(t, "tcti", c->tpm.tcti));
	TRY(config_value_set_int(t, "auth_key_index", c->tpm.auth_key_index));
	t = config_value_subtable(t, "hierarchy_authorization");
	if (!t)
		return -ENOMEM;
	TRY(config_value_set_str(t, "endorsement", *c->tpm.endorsement_auth ? MASK : ""));
	TRY(config_value_set_str(t, "owner", *c->tpm.owner_auth ? MASK : ""));
	if (c->n_principals) {
		struct config_value *arr = config_value_new_array();

		TRY(config_value_set(root, "principal", arr));
		for (size_t i = 0; i < c->n_principals; i++)
			TRY(config_show_principal(arr, &c->principals[i]));
	}
	return 0;
}

int config_show_principal(struct config_value *arr, const struct config_principal *pr)
{
	static const char *const idtypes[] = {"device", "module", "local"};
	struct config_value *p = config_value_new_table();

	TRY(config_value_push(arr, p));
	TRY(config_value_set_int(p, "uid", pr->uid));
	TRY(config_value_set_str(p, "name", pr->name));
	if (pr->has_idtype) {
		struct config_value *ids = config_value_new_array();

		TRY(config_value_set(p, "idtype", ids));
		for (int k = 0; k < 3; k++)
			if (pr->idtype & (1u << k))
				TRY(config_value_push_str(ids, idtypes[k]));
	}
	if (pr->has_localid) {
		struct config_value *l = config_value_subtable(p, "localid");

		if (!l)
			return -ENOMEM;
		TRY(config_value_set_str(l, "type", "x509"));
		TRY(config_value_set_str(l, "attributes",
					 pr->localid_server ? "server" : "client"));
	}
	return 0;
}

int config_show_moby_network(struct config_value *moby, const struct edgeid_config *c)
{
	struct config_value *sub;

	TRY(config_value_set_str(moby, "uri", c->moby.uri));
	if (!c->moby.network_is_table)
		return config_value_set_str(moby, "network", c->moby.network);
	sub = config_value_subtable(moby, "network");
	if (!sub)
		return -ENOMEM;
	TRY(config_value_set_str(sub, "name", c->moby.network));
	if (c->moby.has_ipv6)
		TRY(config_value_set_bool(sub, "ipv6", c->moby.ipv6));
	if (c->moby.ipam)
		TRY(config_value_set(sub, "ipam", config_value_dup(c->moby.ipam)));
	return 0;
}

int config_show_image_gc(struct config_value *root, const struct edgeid_config *c)
{
	struct config_value *t = config_value_subtable(root, "image_garbage_collection");

	if (!t)
		return -ENOMEM;
	TRY(config_value_set_bool(t, "enabled", c->image_gc.enabled));
	TRY(config_value_set_str(t, "cleanup_recurrence", c->image_gc.cleanup_recurrence));
	TRY(config_value_set_str(t, "image_age_cleanup_threshold",
				 c->image_gc.image_age_cleanup_threshold));
	return config_value_set_str(t, "cleanup_time", c->image_gc.cleanup_time);
}

int config_show_edge_runtime(struct config_value *root, const struct edgeid_config *c,
			     bool mask_secrets)
{
	struct config_value *t, *sub;

	t = config_value_subtable(root, "iotedge_max_requests");
	if (!t)
		return -ENOMEM;
	TRY(config_value_set_int(t, "management", c->iotedge_management_max_requests));
	TRY(config_value_set_int(t, "workload", c->iotedge_workload_max_requests));

	t = config_value_subtable(root, "agent");
	if (!t)
		return -ENOMEM;
	TRY(config_value_set_str(t, "name", c->agent.name));
	TRY(config_value_set_str(t, "type", c->agent.type));
	TRY(config_value_set_str(t, "imagePullPolicy", c->agent.image_pull_policy));
	sub = config_value_subtable(t, "config");
	if (!sub)
		return -ENOMEM;
	TRY(config_value_set_str(sub, "image", c->agent.image));
	TRY(config_value_set(sub, "createOptions", config_value_dup(c->agent.create_options)));
	if (c->agent.has_auth) {
		struct config_value *a = config_value_subtable(sub, "auth");

		if (!a)
			return -ENOMEM;
		if (c->agent.auth_serveraddress)
			TRY(config_value_set_str(a, "serveraddress", c->agent.auth_serveraddress));
		if (c->agent.auth_username)
			TRY(config_value_set_str(a, "username", c->agent.auth_username));
		if (c->agent.auth_password)
			TRY(config_value_set_str(a, "password",
						 mask_secrets ? MASK : c->agent.auth_password));
	}
	TRY(show_map(t, "env", &c->agent.env, false));

	t = config_value_subtable(root, "connect");
	if (!t)
		return -ENOMEM;
	TRY(config_value_set_str(t, "workload_uri", c->connect_workload_uri));
	TRY(config_value_set_str(t, "management_uri", c->connect_management_uri));
	t = config_value_subtable(root, "listen");
	if (!t)
		return -ENOMEM;
	TRY(config_value_set_str(t, "workload_uri", c->listen_workload_uri));
	TRY(config_value_set_str(t, "management_uri", c->listen_management_uri));
	if (c->listen_min_tls_version)
		TRY(config_value_set_str(t, "min_tls_version", c->listen_min_tls_version));
	t = config_value_subtable(root, "watchdog");
	if (!t)
		return -ENOMEM;
	if (c->watchdog_infinite)
		TRY(config_value_set_str(t, "max_retries", "infinite"));
	else
		TRY(config_value_set_int(t, "max_retries", c->watchdog_max_retries));
	return 0;
}

static int show_edge(struct config_value *root, const struct edgeid_config *c)
{
	struct config_value *t, *sub;

	TRY(config_show_edge_runtime(root, c, true));

	t = config_value_subtable(root, "edge_ca");
	if (!t)
		return -ENOMEM;
	switch (c->edge_ca.kind) {
	case CONFIG_EDGE_CA_QUICKSTART:
		TRY(config_value_set_int(t, "auto_generated_edge_ca_expiry_days",
					 c->edge_ca.expiry_days));
		if (c->edge_ca.common_name)
			TRY(config_value_set_str(t, "common_name", c->edge_ca.common_name));
		if (c->edge_ca.subject.n)
			TRY(show_map(t, "subject", &c->edge_ca.subject, false));
		TRY(show_auto_renew(t, "auto_renew", &c->edge_ca.auto_renew));
		break;
	case CONFIG_EDGE_CA_PRELOADED:
		TRY(config_value_set_str(t, "cert", c->edge_ca.cert));
		TRY(set_uri(t, "pk", c->edge_ca.pk));
		break;
	case CONFIG_EDGE_CA_ISSUED:
		TRY(show_issuance(t, &c->edge_ca.issuance));
		break;
	}

	t = config_value_subtable(root, "moby_runtime");
	if (!t)
		return -ENOMEM;
	TRY(config_show_moby_network(t, c));
	if (c->moby.content_trust_ca_certs.n) {
		sub = config_value_subtable(t, "content_trust");
		if (!sub)
			return -ENOMEM;
		TRY(show_map(sub, "ca_certs", &c->moby.content_trust_ca_certs, false));
	}
	return config_show_image_gc(root, c);
}

int config_show_render(const struct edgeid_config *c, bool json, struct buf *out)
{
	_cleanup_value_ struct config_value *root = config_value_new_table();

	if (!root)
		return -ENOMEM;
	TRY(show_identity(root, c));
	TRY(show_edge(root, c));
	return json ? config_value_render_json(root, out) : config_value_render_toml(root, out);
}
