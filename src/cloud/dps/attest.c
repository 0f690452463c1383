/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/rand.h>

#include "cloud/dps/attest.h"
#include "cloud/dps/ca.h"
#include "cloud/dps/cert.h"
#include "cloud/dps/enrollment.h"
#include "cloud/dps/registration.h"
#include "cloud/store/store.h"
#include "common/encode.h"
#include "common/json.h"
#include "common/log.h"
#include "crypto/sas.h"
#include "crypto/tpm_blob.h"
#include "crypto/tpm_public.h"

#define REGISTRATION_KEY_NAME "registration"

static void free_secret(char **p)
{
	if (*p) {
		explicit_bzero(*p, strlen(*p));
		free(*p);
		*p = NULL;
	}
}

void dps_attest_result_clear(struct dps_attest_result *r)
{
	if (!r)
		return;
	json_decref(r->enrollment);
	free(r->group_id);
	free_secret(&r->primary_key);
	free_secret(&r->secondary_key);
	json_decref(r->certificate_info);
	json_decref(r->signing_info);
	free(r->srk);
	json_decref(r->challenge);
	memset(r, 0, sizeof(*r));
}

const char *dps_attest_type_name(enum dps_attest_type t)
{
	switch (t) {
	case DPS_ATTEST_SYMMETRIC_KEY:
		return "symmetricKey";
	case DPS_ATTEST_X509:
		return "x509";
	case DPS_ATTEST_TPM:
		return "tpm";
	}
	return "none";
}

static int unauthorized(struct err *e)
{
	return err_set(e, -EACCES, DPS_MSG_UNAUTHORIZED);
}

static const char *attestation_type(const json_t *enrollment)
{
	const char *t =
	    json_string_value(json_object_get(json_object_get(enrollment, "attestation"), "type"));

	return t ? t : "";
}

/* Call fn for each stored group whose attestation type is type, until fn
 * returns non-zero (returned) or the groups run out (0). */
static int each_group(struct store *store, const char *type,
		      int (*fn)(const json_t *group, void *ctx), void *ctx, struct err *e)
{
	_cleanup_free_ char *cont = NULL;
	int r;

	do {
		_cleanup_store_page_ struct store_page *page = NULL;
		struct store_query q = {.coll = STORE_ENROLLMENT_GROUPS,
					.continuation = cont,
					.page_size = STORE_PAGE_MAX};

		r = store_list(store, &q, &page, e);
		if (r < 0)
			return r;
		for (size_t i = 0; i < page->n; i++) {
			if (!streq(attestation_type(page->items[i].doc), type))
				continue;
			r = fn(page->items[i].doc, ctx);
			if (r != 0)
				return r;
		}
		free(cont);
		cont = page->continuation ? strdup(page->continuation) : NULL;
		if (page->continuation && !cont)
			return -ENOMEM;
	} while (cont);
	return 0;
}

/* --- symmetric key and TPM SAS ------------------------------------------------- */

/* Checks that do not depend on any enrollment, so their precise messages
 * reveal nothing: well-formed, not expired, for this registration, skn. */
static int sas_precheck(const char *authorization, const char *resource, uint64_t now,
			struct sas_token **ret, struct err *e)
{
	_cleanup_sas_token_ struct sas_token *t = NULL;
	_cleanup_buf_ struct buf sr = {0};
	size_t n;

	*ret = NULL;
	if (sas_token_parse(authorization, strlen(authorization), &t, NULL) < 0)
		return err_set(e, -EACCES,
			       "Unauthorized: the Authorization header is not a valid "
			       "SharedAccessSignature.");
	if (t->expiry + SAS_DEFAULT_CLOCK_SKEW < now)
		return err_set(e, -EACCES, "Unauthorized: the SharedAccessSignature has expired.");
	buf_init(&sr, SAS_TOKEN_MAX);
	if (url_decode(&sr, t->sr, strlen(t->sr), false) < 0)
		return err_set(e, -EACCES,
			       "Unauthorized: the Authorization header is not a valid "
			       "SharedAccessSignature.");
	n = sr.len;
	if (n > 0 && sr.data[n - 1] == '/')
		n--;
	if (n != strlen(resource) || strncasecmp(sr.data, resource, n) != 0)
		return err_set(
		    e, -EACCES,
		    "Unauthorized: the SharedAccessSignature is not for this registration.");
	if (t->skn && !streq(t->skn, REGISTRATION_KEY_NAME))
		return err_set(
		    e, -EACCES,
		    "Unauthorized: the SharedAccessSignature's skn must be \"registration\".");
	*ret = TAKE_PTR(t);
	return 0;
}

static int sas_check(const struct sas_token *t, const char *resource, uint64_t now,
		     const char *primary, const char *secondary)
{
	struct sas_verify_opts opts = SAS_VERIFY_OPTS_INIT;

	opts.resource = resource;
	opts.now = now;
	return sas_verify(t, primary, secondary, &opts, NULL, NULL);
}

struct group_sas_ctx {
	const struct sas_token *token;
	const char *resource;
	const char *registration_id;
	uint64_t now;
	json_t *match;
	char *primary;
	char *secondary;
	int error;
};

static int derive(const json_t *group, const char *field, const char *registration_id, char **ret)
{
	_cleanup_buf_ struct buf key = {0};
	const char *group_key = json_string_value(json_object_get(
	    json_object_get(json_object_get(group, "attestation"), "symmetricKey"), field));
	int r;

	*ret = NULL;
	if (!group_key)
		return 0;
	buf_init_secret(&key, 256);
	r = sas_derive_device_key(group_key, registration_id, &key, NULL);
	if (r < 0)
		return r;
	*ret = buf_steal(&key, NULL);
	return *ret ? 0 : -ENOMEM;
}

static int try_group_sas(const json_t *group, void *userdata)
{
	struct group_sas_ctx *c = userdata;
	char *primary = NULL, *secondary = NULL;
	int r;

	r = derive(group, "primaryKey", c->registration_id, &primary);
	if (r >= 0)
		r = derive(group, "secondaryKey", c->registration_id, &secondary);
	if (r < 0 || !primary) {
		free_secret(&primary);
		free_secret(&secondary);
		return r < 0 ? r : 0;
	}
	r = sas_check(c->token, c->resource, c->now, primary, secondary);
	if (r == 0) {
		c->match = json_deep_copy(group);
		c->primary = primary;
		c->secondary = secondary;
		return c->match ? 1 : -ENOMEM;
	}
	free_secret(&primary);
	free_secret(&secondary);
	return 0;
}

static int dup_secret(const char *s, char **ret)
{
	*ret = NULL;
	if (!s)
		return 0;
	*ret = strdup(s);
	return *ret ? 0 : -ENOMEM;
}

/* The TPM request's EK, when it sent one, must be the enrollment's. */
static int tpm_check_ek(const json_t *enrollment, const json_t *tpm, struct err *e)
{
	const char *sent = json_string_value(json_object_get(tpm, "endorsementKey"));
	const char *enrolled = json_string_value(json_object_get(
	    json_object_get(json_object_get(enrollment, "attestation"), "tpm"), "endorsementKey"));
	struct tpm_public a, b;

	if (!sent)
		return 0;
	if (tpm_public_parse_base64(sent, TPM_ALG_RSA, &a, NULL) < 0)
		return err_set(e, -EBADMSG,
			       "Endorsement key is invalid, or does not match the Enrollment.");
	if (!enrolled || tpm_public_parse_base64(enrolled, TPM_ALG_RSA, &b, NULL) < 0 ||
	    !tpm_public_same_key(&a, &b))
		return unauthorized(e);
	return 0;
}

static int attest_sas(struct store *store, const struct dps_settings *settings,
		      const struct dps_attest_request *req, uint64_t now,
		      struct dps_attest_result *ret, struct err *e)
{
	_cleanup_sas_token_ struct sas_token *token = NULL;
	_cleanup_json_ json_t *enrollment = NULL;
	char resource[DPS_ID_MAX * 2 + 32];
	const char *type;
	int r;

	snprintf(resource, sizeof(resource), "%s/registrations/%s", settings->id_scope,
		 req->registration_id);
	r = sas_precheck(req->authorization, resource, now, &token, e);
	if (r < 0)
		return r;

	r = dps_enrollment_load(store, DPS_INDIVIDUAL, req->registration_id, &enrollment, NULL,
				NULL);
	if (r < 0 && r != -ENOENT)
		return r;
	if (r == 0) {
		type = attestation_type(enrollment);
		if (streq(type, "symmetricKey")) {
			json_t *keys = json_object_get(json_object_get(enrollment, "attestation"),
						       "symmetricKey");
			const char *p = json_string_value(json_object_get(keys, "primaryKey"));
			const char *s = json_string_value(json_object_get(keys, "secondaryKey"));

			if (!p || sas_check(token, resource, now, p, s) < 0)
				return unauthorized(e);
			ret->type = DPS_ATTEST_SYMMETRIC_KEY;
			r = dup_secret(p, &ret->primary_key);
			if (r >= 0)
				r = dup_secret(s, &ret->secondary_key);
			if (r < 0)
				return r;
		} else if (streq(type, "tpm")) {
			_cleanup_json_ json_t *reg = NULL;
			json_t *challenge;
			const char *k1;

			if (req->record) {
				reg = json_incref((json_t *)req->record);
			} else {
				r = dps_registration_load(store, req->registration_id, &reg, NULL,
							  NULL);
				if (r < 0 && r != -ENOENT)
					return r;
			}
			challenge = json_object_get(dps_registration_private(reg), "challenge");
			k1 = json_string_value(json_object_get(challenge, "key"));
			if (!k1 || sas_check(token, resource, now, k1, NULL) < 0)
				return unauthorized(e);
			r = tpm_check_ek(enrollment, req->tpm, e);
			if (r < 0)
				return r;
			ret->type = DPS_ATTEST_TPM;
			ret->srk =
			    strdup(strempty(json_string_value(json_object_get(challenge, "srk"))));
			if (!ret->srk)
				return -ENOMEM;
		} else {
			return unauthorized(e);
		}
		ret->enrollment = TAKE_PTR(enrollment);
		return 0;
	}

	{
		struct group_sas_ctx c = {.token = token,
					  .resource = resource,
					  .registration_id = req->registration_id,
					  .now = now};
		const char *hint = json_string_value(
		    json_object_get(dps_registration_private(req->record), "group"));
		_cleanup_json_ json_t *group = NULL;

		r = hint ? dps_enrollment_load(store, DPS_GROUP, hint, &group, NULL, NULL)
			 : -ENOENT;
		if (r < 0 && r != -ENOENT)
			return r;
		if (r == 0 && streq(attestation_type(group), "symmetricKey")) {
			r = try_group_sas(group, &c);
			if (r < 0)
				return r;
		}
		if (!c.match) {
			r = each_group(store, "symmetricKey", try_group_sas, &c, e);
			if (r < 0)
				return r;
		}
		if (!c.match)
			return unauthorized(e);
		ret->type = DPS_ATTEST_SYMMETRIC_KEY;
		ret->enrollment = c.match;
		ret->primary_key = c.primary;
		ret->secondary_key = c.secondary;
		ret->group_id = strdup(
		    strempty(json_string_value(json_object_get(c.match, "enrollmentGroupId"))));
		return ret->group_id ? 0 : -ENOMEM;
	}
}

/* --- X.509 -------------------------------------------------------------- */

struct group_x509_ctx {
	struct store *store;
	const struct dps_settings *settings;
	X509 *leaf;
	STACK_OF(X509) * chain;
	uint64_t now;
	json_t *match;
	json_t *signing_info;
};

static int try_group_x509(const json_t *group, void *userdata)
{
	struct group_x509_ctx *c = userdata;
	json_t *x509 = json_object_get(json_object_get(group, "attestation"), "x509");
	json_t *signing = json_object_get(x509, "signingCertificates");
	json_t *refs = json_object_get(x509, "caReferences");
	static const char *const slots[] = {"primary", "secondary"};

	for (size_t i = 0; i < ARRAY_SIZE(slots); i++) {
		_cleanup_x509_ X509 *anchor = NULL;
		X509 *anchors[1];
		int r;

		if (signing) {
			const char *pem = json_string_value(
			    json_object_get(json_object_get(signing, slots[i]), "certificate"));

			if (!pem || dps_cert_parse(pem, &anchor, NULL) < 0)
				continue;
		} else {
			const char *name = json_string_value(json_object_get(refs, slots[i]));

			if (!name || dps_ca_trusted(c->store, c->settings, name, &anchor, NULL) < 0)
				continue;
		}
		anchors[0] = anchor;
		r = dps_cert_verify_chain(c->leaf, c->chain, anchors, 1, (time_t)c->now, NULL);
		if (r == -EKEYREJECTED)
			continue;
		if (r < 0)
			return r;
		c->match = json_deep_copy(group);
		c->signing_info = dps_cert_info(anchor);
		return c->match && c->signing_info ? 1 : -ENOMEM;
	}
	return 0;
}

static bool thumbprint_matches(const json_t *certs, const char *sha1)
{
	static const char *const slots[] = {"primary", "secondary"};

	for (size_t i = 0; i < ARRAY_SIZE(slots); i++) {
		const char *t = json_string_value(json_object_get(
		    json_object_get(json_object_get(certs, slots[i]), "info"), "sha1Thumbprint"));

		if (t && strcasecmp(t, sha1) == 0)
			return true;
	}
	return false;
}

static int attest_x509(struct store *store, const struct dps_settings *settings,
		       const struct dps_attest_request *req, uint64_t now,
		       struct dps_attest_result *ret, struct err *e)
{
	_cleanup_json_ json_t *enrollment = NULL;
	_cleanup_free_ char *cn = NULL;
	STACK_OF(X509) *rest = NULL;
	X509 *leaf = sk_X509_value(req->peer_chain, 0);
	char sha1[DPS_CERT_SHA1_HEX_LEN + 1];
	int r;

	if (!leaf)
		return unauthorized(e);
	r = dps_cert_common_name(leaf, &cn);
	if (r < 0)
		return r;
	if (!cn || strcasecmp(cn, req->registration_id) != 0)
		return err_set(e, -EACCES,
			       "Unauthorized: the client certificate's subject CN must be the "
			       "registration id.");
	if (X509_cmp_time(X509_get0_notAfter(leaf), &(time_t){(time_t)now}) < 0 ||
	    X509_cmp_time(X509_get0_notBefore(leaf), &(time_t){(time_t)now}) > 0)
		return err_set(e, -EACCES,
			       "Unauthorized: the client certificate is not valid at this time.");
	r = dps_cert_thumbprint(leaf, false, sha1, sizeof(sha1));
	if (r < 0)
		return r;

	r = dps_enrollment_load(store, DPS_INDIVIDUAL, req->registration_id, &enrollment, NULL,
				NULL);
	if (r < 0 && r != -ENOENT)
		return r;
	if (r == 0) {
		json_t *x509 = json_object_get(json_object_get(enrollment, "attestation"), "x509");

		if (!streq(attestation_type(enrollment), "x509") ||
		    !thumbprint_matches(json_object_get(x509, "clientCertificates"), sha1))
			return unauthorized(e);
		ret->type = DPS_ATTEST_X509;
		ret->enrollment = TAKE_PTR(enrollment);
		ret->certificate_info = dps_cert_info(leaf);
		return ret->certificate_info ? 0 : -ENOMEM;
	}

	rest = sk_X509_dup(req->peer_chain);
	if (!rest)
		return -ENOMEM;
	(void)sk_X509_shift(rest);
	{
		struct group_x509_ctx c = {
		    .store = store, .settings = settings, .leaf = leaf, .chain = rest, .now = now};

		r = each_group(store, "x509", try_group_x509, &c, e);
		sk_X509_free(rest);
		if (r < 0) {
			json_decref(c.match);
			json_decref(c.signing_info);
			return r;
		}
		if (!c.match)
			return unauthorized(e);
		ret->type = DPS_ATTEST_X509;
		ret->enrollment = c.match;
		ret->signing_info = c.signing_info;
		ret->certificate_info = dps_cert_info(leaf);
		ret->group_id = strdup(
		    strempty(json_string_value(json_object_get(c.match, "enrollmentGroupId"))));
		return ret->certificate_info && ret->group_id ? 0 : -ENOMEM;
	}
}

/* --- TPM challenge ---------------------------------------------------------- */

/* Remember K1 and the SRK in the registration record (created when the
 * device has none yet), keeping whatever else it holds. */
static int store_challenge(struct store *store, const char *registration_id, const char *k1,
			   const char *srk, struct err *e)
{
	for (int attempt = 0; attempt < 5; attempt++) {
		_cleanup_json_ json_t *doc = NULL;
		_cleanup_free_ char *etag = NULL;
		struct store_write w = {.coll = STORE_REGISTRATIONS};
		json_t *priv, *challenge;
		int r;

		r = dps_registration_load(store, registration_id, &doc, &etag, e);
		if (r == -ENOENT) {
			doc = json_pack("{s:s}", "registrationId", registration_id);
			w.create_only = true;
		} else if (r < 0) {
			return r;
		}
		if (!doc)
			return -ENOMEM;
		priv = dps_registration_private(doc);
		if (!priv) {
			priv = json_object();
			if (!priv || json_object_set_new(doc, DPS_REG_PRIVATE, priv) < 0)
				return -ENOMEM;
		}
		challenge = json_pack("{s:s, s:s}", "key", k1, "srk", srk);
		if (!challenge || json_object_set_new(priv, "challenge", challenge) < 0)
			return -ENOMEM;
		w.key.part[0] = registration_id;
		w.doc = doc;
		w.if_match = etag;
		w.secondary = json_string_value(json_object_get(priv, "group"));
		r = store_put(store, &w, NULL, e);
		if (r == -ESTALE || r == -EEXIST || r == -ENOENT) {
			err_clear(e);
			continue;
		}
		return r;
	}
	return err_set(e, -EBUSY, "the registration record kept changing");
}

static int attest_tpm_challenge(struct store *store, const struct dps_attest_request *req,
				struct dps_attest_result *ret, struct err *e)
{
	_cleanup_json_ json_t *enrollment = NULL;
	_cleanup_buf_ struct buf blob = {0}, b64 = {0}, k1_b64 = {0};
	const char *ek_text = json_string_value(json_object_get(req->tpm, "endorsementKey"));
	const char *srk_text = json_string_value(json_object_get(req->tpm, "storageRootKey"));
	const char *enrolled;
	struct tpm_public ek, srk, enrolled_ek;
	uint8_t k1[DPS_TPM_KEY_BYTES];
	int r;

	/* Malformed keys are the request's fault whatever is enrolled. */
	if (!ek_text || tpm_public_parse_base64(ek_text, TPM_ALG_RSA, &ek, NULL) < 0)
		return err_set(e, -EBADMSG,
			       "Endorsement key is invalid, or does not match the Enrollment.");
	if (!srk_text || tpm_public_parse_base64(srk_text, TPM_ALG_RSA, &srk, NULL) < 0)
		return err_set(e, -EBADMSG, "Storage root key is invalid.");

	r = dps_enrollment_load(store, DPS_INDIVIDUAL, req->registration_id, &enrollment, NULL,
				NULL);
	if (r == -ENOENT)
		return unauthorized(e);
	if (r < 0)
		return r;
	if (!streq(attestation_type(enrollment), "tpm"))
		return unauthorized(e);
	enrolled = json_string_value(json_object_get(
	    json_object_get(json_object_get(enrollment, "attestation"), "tpm"), "endorsementKey"));
	if (!enrolled || tpm_public_parse_base64(enrolled, TPM_ALG_RSA, &enrolled_ek, NULL) < 0 ||
	    !tpm_public_same_key(&ek, &enrolled_ek))
		return unauthorized(e);

	if (RAND_priv_bytes(k1, sizeof(k1)) != 1)
		return -EIO;
	buf_init(&blob, TPM_BLOB_MAX);
	buf_init(&b64, TPM_BLOB_MAX * 2);
	buf_init_secret(&k1_b64, 128);
	r = tpm_blob_build(&enrolled_ek, &srk, k1, sizeof(k1), &blob, e);
	if (r >= 0)
		r = base64_encode(&b64, blob.data, blob.len, B64_STANDARD);
	if (r >= 0)
		r = base64_encode(&k1_b64, k1, sizeof(k1), B64_STANDARD);
	explicit_bzero(k1, sizeof(k1));
	if (r < 0)
		return r;
	r = store_challenge(store, req->registration_id, buf_str(&k1_b64), srk_text, e);
	if (r < 0)
		return r;
	ret->type = DPS_ATTEST_TPM;
	ret->challenge =
	    json_pack("{s:s, s:s, s:s}", "message", DPS_MSG_TPM_CHALLENGE, "authenticationKey",
		      buf_str(&b64), "keyName", REGISTRATION_KEY_NAME);
	return ret->challenge ? DPS_ATTEST_CHALLENGE : -ENOMEM;
}

int dps_attest(struct store *store, const struct dps_settings *settings,
	       const struct dps_attest_request *req, struct dps_attest_result *ret, struct err *e)
{
	uint64_t now = req->now ? req->now : (uint64_t)time(NULL);
	int r;

	memset(ret, 0, sizeof(*ret));
	if (!req->registration_id || !dps_valid_registration_id(req->registration_id))
		return unauthorized(e);
	if (req->authorization && *req->authorization)
		r = attest_sas(store, settings, req, now, ret, e);
	else if (req->peer_chain && sk_X509_num(req->peer_chain) > 0)
		r = attest_x509(store, settings, req, now, ret, e);
	else if (req->tpm && req->allow_challenge)
		r = attest_tpm_challenge(store, req, ret, e);
	else
		r = unauthorized(e);
	if (r < 0)
		dps_attest_result_clear(ret);
	return r;
}
