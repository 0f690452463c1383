/* SPDX-License-Identifier: MIT */
/*
 * Who is calling the hub (hub-protocol.md §3): services with a policy SAS,
 * devices and modules with their own SAS or a TLS client certificate.
 * Every refusal is a 401 IotHubUnauthorizedAccess whose sentence says what
 * was wrong with the credential, never anything about the keys.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "cloud/hub/hub.h"
#include "common/buf.h"
#include "common/encode.h"
#include "common/json.h"
#include "common/macro.h"
#include "crypto/sas.h"

#define UNAUTHORIZED "IotHubUnauthorizedAccess"

static int unauthorized(struct hub_error *he, const char *fmt, ...) _printf_(2, 3);
static int unauthorized(struct hub_error *he, const char *fmt, ...)
{
	char text[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	return hub_fail(he, 401, UNAUTHORIZED, "%s", text);
}

/* The sentence for a failed sas_verify. */
static int sas_refused(int r, const struct sas_token *t, struct hub_error *he)
{
	switch (r) {
	case SAS_E_SIGNATURE:
		return unauthorized(he, "the SharedAccessSignature's signature does not match");
	case SAS_E_EXPIRED:
		return unauthorized(he, "the SharedAccessSignature expired (se=%s)", t->se);
	case SAS_E_RESOURCE:
		return unauthorized(he, "the SharedAccessSignature's resource (sr) is not this "
					"hub or this identity");
	case SAS_E_KEY_NAME:
		return unauthorized(he, "the SharedAccessSignature's key name (skn) is wrong");
	case SAS_E_MALFORMED:
		return unauthorized(he, "the SharedAccessSignature is malformed");
	default:
		return hub_fail(he, 500, "ServerError", "cannot verify the SharedAccessSignature");
	}
}

static int parse_token(const char *authorization, struct sas_token **ret, struct hub_error *he)
{
	int r;

	*ret = NULL;
	if (!authorization || !*authorization)
		return unauthorized(he, "no Authorization header");
	r = sas_token_parse(authorization, strlen(authorization), ret, NULL);
	if (r == -ENOMEM)
		return hub_fail(he, 500, "ServerError", "out of memory");
	if (r < 0)
		return unauthorized(he, "the Authorization header is not a valid "
					"SharedAccessSignature");
	return 0;
}

static const struct hub_policy *find_policy(const struct hub_settings *hs, const char *skn)
{
	_cleanup_buf_ struct buf name = {0};

	buf_init(&name, 256);
	if (url_decode(&name, skn, strlen(skn), false) < 0)
		return NULL;
	for (size_t i = 0; i < hs->n_policies; i++)
		if (streq(hs->policies[i].name, buf_str(&name)))
			return &hs->policies[i];
	return NULL;
}

static const char *right_name(unsigned need)
{
	if (need & HUB_RIGHT_REGISTRY_WRITE)
		return "RegistryWrite";
	if (need & HUB_RIGHT_REGISTRY_READ)
		return "RegistryRead";
	if (need & HUB_RIGHT_SERVICE_CONNECT)
		return "ServiceConnect";
	return "DeviceConnect";
}

/* Verify t with policy p for resource. */
static int verify_policy(const struct hub_policy *p, const struct sas_token *t,
			 const char *resource, uint64_t now, struct hub_error *he)
{
	struct sas_verify_opts o = SAS_VERIFY_OPTS_INIT;
	int r;

	o.resource = resource;
	o.allow_parent = true;
	o.key_name = p->name;
	o.now = now;
	r = sas_verify(t, p->primary_key, p->secondary_key, &o, NULL, NULL);
	return r < 0 ? sas_refused(r, t, he) : 0;
}

int hub_auth_service(const struct hub_settings *hs, const char *authorization, unsigned need,
		     uint64_t now, struct hub_error *he)
{
	_cleanup_sas_token_ struct sas_token *t = NULL;
	const struct hub_policy *p;
	int r;

	r = parse_token(authorization, &t, he);
	if (r < 0)
		return r;
	if (!t->skn)
		return unauthorized(he, "the SharedAccessSignature names no shared access policy "
					"(skn)");
	p = find_policy(hs, t->skn);
	if (!p)
		return unauthorized(he, "no shared access policy is called \"%s\"", t->skn);
	r = verify_policy(p, t, hs->host_name, now, he);
	if (r < 0)
		return r;
	if (!(p->rights & need)) {
		char text[200];

		snprintf(text, sizeof(text), "the policy \"%s\" does not grant %s", p->name,
			 right_name(need));
		return hub_fail(he, 401, UNAUTHORIZED, "%s", text);
	}
	return 0;
}

static const char *doc_string(const json_t *doc, const char *path)
{
	const char *s = NULL;

	(void)json_get_string_opt(doc, path, &s, NULL);
	return s && *s ? s : NULL;
}

/* Whether the leaf's SHA-1 or SHA-256 thumbprint is one of the identity's. */
static bool thumbprint_matches(const json_t *identity, X509 *leaf)
{
	const char *want[2] = {
	    doc_string(identity, "authentication.x509Thumbprint.primaryThumbprint"),
	    doc_string(identity, "authentication.x509Thumbprint.secondaryThumbprint"),
	};
	const EVP_MD *mds[2] = {EVP_sha1(), EVP_sha256()};

	for (size_t m = 0; m < ARRAY_SIZE(mds); m++) {
		unsigned char md[EVP_MAX_MD_SIZE];
		unsigned int n = 0;
		_cleanup_buf_ struct buf hex = {0};

		buf_init(&hex, 256);
		if (X509_digest(leaf, mds[m], md, &n) != 1 || hex_encode(&hex, md, n) < 0)
			continue;
		for (size_t i = 0; i < ARRAY_SIZE(want); i++)
			if (want[i] && strlen(want[i]) == hex.len &&
			    strcasecmp(want[i], buf_str(&hex)) == 0)
				return true;
	}
	return false;
}

static bool cert_current(X509 *c)
{
	return X509_cmp_current_time(X509_get0_notBefore(c)) < 0 &&
	       X509_cmp_current_time(X509_get0_notAfter(c)) > 0;
}

/* The leaf's subject CN equals id. */
static bool cn_is(X509 *leaf, const char *id)
{
	X509_NAME *subject = X509_get_subject_name(leaf);
	int i = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
	ASN1_STRING *s;

	if (i < 0)
		return false;
	s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, i));
	return s && (size_t)ASN1_STRING_length(s) == strlen(id) &&
	       memcmp(ASN1_STRING_get0_data(s), id, strlen(id)) == 0;
}

static bool chain_verifies(X509_STORE *store, STACK_OF(X509) * chain)
{
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	STACK_OF(X509) *untrusted = NULL;
	bool ok = false;

	if (!ctx || !store)
		goto out;
	untrusted = sk_X509_new_null();
	if (!untrusted)
		goto out;
	for (int i = 1; i < sk_X509_num(chain); i++)
		if (sk_X509_push(untrusted, sk_X509_value(chain, i)) <= 0)
			goto out;
	if (X509_STORE_CTX_init(ctx, store, sk_X509_value(chain, 0), untrusted) != 1)
		goto out;
	if (X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT) != 1)
		goto out;
	ok = X509_verify_cert(ctx) == 1;
out:
	ERR_clear_error();
	sk_X509_free(untrusted);
	X509_STORE_CTX_free(ctx);
	return ok;
}

static int auth_certificate(const json_t *identity, const char *type, const char *device_id,
			    STACK_OF(X509) * chain, X509_STORE *ca_store, struct hub_error *he)
{
	X509 *leaf = chain && sk_X509_num(chain) > 0 ? sk_X509_value(chain, 0) : NULL;

	if (!leaf)
		return unauthorized(he, "no Authorization header and no client certificate");
	if (streq(type, "selfSigned")) {
		if (!thumbprint_matches(identity, leaf))
			return unauthorized(he, "the client certificate's thumbprint is not the "
						"device's");
		if (!cert_current(leaf))
			return unauthorized(he, "the client certificate is expired or not yet "
						"valid");
		return 0;
	}
	if (streq(type, "certificateAuthority")) {
		if (!cn_is(leaf, device_id))
			return unauthorized(he,
					    "the client certificate's common name is not the "
					    "device id \"%s\"",
					    device_id);
		if (!chain_verifies(ca_store, chain))
			return unauthorized(he, "the client certificate does not chain to a "
						"trusted CA");
		return 0;
	}
	return unauthorized(he, "the identity does not use X.509 authentication (type \"%s\")",
			    type);
}

int hub_auth_device(const struct hub_settings *hs, const char *authorization, const char *device_id,
		    const char *module_id, const json_t *identity, STACK_OF(X509) * chain,
		    X509_STORE *ca_store, uint64_t now, struct hub_error *he)
{
	_cleanup_sas_token_ struct sas_token *t = NULL;
	_cleanup_free_ char *resource = NULL;
	struct sas_verify_opts o = SAS_VERIFY_OPTS_INIT;
	const char *type, *status;
	int r;

	if (!identity)
		return unauthorized(he, "%s", module_id ? "no such module" : "no such device");
	status = doc_string(identity, "status");
	if (status && streq(status, "disabled"))
		return unauthorized(he, "the device is disabled");
	type = doc_string(identity, "authentication.type");
	if (!type)
		type = "sas";

	if (!authorization || !*authorization)
		return auth_certificate(identity, type, device_id, chain, ca_store, he);

	if (module_id)
		r = asprintf(&resource, "%s/devices/%s/modules/%s", hs->host_name, device_id,
			     module_id);
	else
		r = asprintf(&resource, "%s/devices/%s", hs->host_name, device_id);
	if (r < 0)
		return hub_fail(he, 500, "ServerError", "out of memory");
	r = parse_token(authorization, &t, he);
	if (r < 0)
		return r;
	o.resource = resource;
	o.now = now;
	if (t->skn && !module_id) {
		/* A policy with DeviceConnect may speak for any device. Node's
		 * modules under IoT Edge send skn=primary with their own key, so
		 * an skn that names no policy falls through to the keys below. */
		const struct hub_policy *p = find_policy(hs, t->skn);

		if (p) {
			r = verify_policy(p, t, resource, now, he);
			if (r < 0)
				return r;
			if (!(p->rights & HUB_RIGHT_DEVICE_CONNECT))
				return unauthorized(he,
						    "the policy \"%s\" does not grant "
						    "DeviceConnect",
						    p->name);
			return 0;
		}
	}
	if (!streq(type, "sas"))
		return unauthorized(he,
				    "the identity uses X.509 authentication, not keys (type "
				    "\"%s\")",
				    type);
	r = sas_verify(t, doc_string(identity, "authentication.symmetricKey.primaryKey"),
		       doc_string(identity, "authentication.symmetricKey.secondaryKey"), &o, NULL,
		       NULL);
	if (r == -EINVAL)
		return unauthorized(he, "the identity has no usable keys");
	return r < 0 ? sas_refused(r, t, he) : 0;
}

int hub_auth_modules(const struct hub_settings *hs, const char *authorization, unsigned need,
		     const char *device_id, const json_t *device, STACK_OF(X509) * chain,
		     X509_STORE *ca_store, uint64_t now, bool *ret_by_device, struct hub_error *he)
{
	_cleanup_sas_token_ struct sas_token *t = NULL;
	bool edge = false;
	int r;

	*ret_by_device = false;
	/* A token that names a policy, one that is not a SAS, or no credential
	 * at all: a service call, refused with the service's reasons. */
	if (authorization && *authorization) {
		if (sas_token_parse(authorization, strlen(authorization), &t, NULL) < 0 || t->skn)
			return hub_auth_service(hs, authorization, need, now, he);
	} else if (!chain || sk_X509_num(chain) == 0) {
		return hub_auth_service(hs, authorization, need, now, he);
	}
	r = hub_auth_device(hs, authorization, device_id, NULL, device, chain, ca_store, now, he);
	if (r < 0)
		return r;
	(void)json_get_bool_opt(device, "capabilities.iotEdge", false, &edge, NULL);
	if (!edge)
		return unauthorized(
		    he,
		    "device \"%s\" is not an IoT Edge device: only IoT Edge devices "
		    "manage their own modules",
		    device_id);
	*ret_by_device = true;
	return 0;
}

X509_STORE *hub_ca_store_new(const struct hub_settings *hs)
{
	X509_STORE *store = X509_STORE_new();

	if (!store)
		return NULL;
	for (int i = 0; hs->ca && i < sk_X509_num(hs->ca); i++) {
		if (X509_STORE_add_cert(store, sk_X509_value(hs->ca, i)) != 1) {
			ERR_clear_error();
			X509_STORE_free(store);
			return NULL;
		}
	}
	return store;
}
