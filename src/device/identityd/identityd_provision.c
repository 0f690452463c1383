/* SPDX-License-Identifier: MIT */
/*
 * One provisioning job: everything that may block on the network or on
 * the other daemons, run to its end in a child process of identityd (see
 * identityd.c) and reported back as one JSON object.
 *
 * The order is aziot's startup (aziot-compat.md §5.8):
 *   - manual: the identity from the settings;
 *   - DPS with a valid device_info: that identity, checked against the hub;
 *     when the hub refuses it, register with DPS again; when DPS cannot be
 *     reached, keep it;
 *   - otherwise register with DPS, then check the new identity.
 * The hub check also covers the new identity: a hub that cannot be
 * reached only leaves a warning (the device works offline), a hub that
 * refuses a fresh assignment fails the job.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>

#include "common/encode.h"
#include "common/json.h"
#include "common/log.h"
#include "device/identityd/identityd_private.h"

#define KEYD_API_VERSION "2021-05-01"
#define TPMD_API_VERSION "2020-09-01"

int identityd_job_sign(void *vctx, const void *msg, size_t len, uint8_t ret[32], struct err *e)
{
	struct identityd_job_context *ctx = vctx;

	if (ctx->s->auth == IDENTITYD_AUTH_TPM)
		return tpmd_client_sign(ctx->tpmd, msg, len, ret, e);
	if (!ctx->key_handle)
		return err_set(e, -ENOKEY, "no key handle for the device key");
	return keyd_client_hmac(ctx->keyd, ctx->key_handle, msg, len, ret, e);
}

/* t as "2025-01-31T12:00:00Z" into buf. */
static const char *asn1_time_text(const ASN1_TIME *t, char *buf, size_t n)
{
	struct tm tm;

	if (ASN1_TIME_to_tm(t, &tm) != 1 || strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, n, "an unreadable date");
	return buf;
}

/* A certificate outside its validity is refused by DPS and the hub with a
 * TLS alert that says nothing about why; say it here. */
static int check_validity(const struct identityd_settings *s, X509 *leaf, struct err *e)
{
	const ASN1_TIME *not_before = X509_get0_notBefore(leaf);
	const ASN1_TIME *not_after = X509_get0_notAfter(leaf);
	char when[64];

	if (X509_cmp_current_time(not_after) < 0)
		return err_set(e, -EKEYEXPIRED,
			       "the identity certificate '%s' expired at %s; renew it or install a "
			       "new one",
			       s->cert_id, asn1_time_text(not_after, when, sizeof(when)));
	if (X509_cmp_current_time(not_before) > 0)
		return err_set(e, -EKEYEXPIRED,
			       "the identity certificate '%s' is not valid before %s; check the "
			       "device's clock",
			       s->cert_id, asn1_time_text(not_before, when, sizeof(when)));
	return 0;
}

/* One public parameter of the device key pair, from keyd (POST
 * /parameters/{name}), decoded into out. */
static int keyd_parameter(struct identityd_job_context *ctx, const char *name, struct buf *out,
			  struct err *e)
{
	_cleanup_json_ json_t *body = json_pack("{s:s}", "keyHandle", ctx->key_handle), *j = NULL;
	_cleanup_free_ char *path = NULL;
	const char *v = NULL;
	int r;

	if (!body || asprintf(&path, "/parameters/%s", name) < 0)
		return err_set(e, -ENOMEM, "out of memory");
	r = local_client_call(ctx->keyd, "POST", path, body, &j, NULL, e);
	if (r < 0)
		return r;
	if (json_get_string(j, "value", &v, e) < 0 ||
	    base64_decode(out, v, strlen(v), B64_STANDARD, NULL) < 0)
		return err_set(e, -EBADMSG, "keyd: POST %s: not a base64 \"value\"", path);
	return 0;
}

/* The certificate's public key as keyd's parameter of that name gives
 * it: the compressed EC point, or the RSA modulus. */
static int cert_parameter(EVP_PKEY *pub, bool ec, struct buf *out)
{
	if (ec) {
		uint8_t point[133];
		size_t len = 0;

		if (EVP_PKEY_get_octet_string_param(pub, OSSL_PKEY_PARAM_PUB_KEY, point,
						    sizeof(point), &len) != 1)
			return -EIO;
		if (len == 65 && point[0] == 0x04) {
			point[0] = (uint8_t)(0x02 | (point[64] & 1));
			len = 33;
		}
		return buf_append(out, point, len);
	} else {
		uint8_t modulus[1024]; /* RSA-8192 */
		BIGNUM *n = NULL;
		int len;

		if (EVP_PKEY_get_bn_param(pub, OSSL_PKEY_PARAM_RSA_N, &n) != 1)
			return -EIO;
		len = BN_num_bytes(n) <= (int)sizeof(modulus) ? BN_bn2bin(n, modulus) : -1;
		BN_free(n);
		return len < 0 ? -E2BIG : buf_append(out, modulus, (size_t)len);
	}
}

/* Is the certificate made for the key pair keyd holds? A mismatch would
 * only show as a TLS alert from DPS. keyd describes P-256 and RSA key
 * pairs; for others (or when keyd cannot say) the check is skipped. */
static int check_key_match(struct identityd_job_context *ctx, X509 *leaf, struct err *e)
{
	_cleanup_buf_ struct buf theirs = {0}, ours = {0};
	EVP_PKEY *pub = X509_get0_pubkey(leaf);
	struct err inner = {0};
	bool ec;
	int r;

	if (!pub)
		return 0;
	ec = EVP_PKEY_get_base_id(pub) == EVP_PKEY_EC;
	if (!ec && EVP_PKEY_get_base_id(pub) != EVP_PKEY_RSA)
		return 0;
	buf_init(&theirs, 4096);
	buf_init(&ours, 4096);
	/* A key pair of the other kind is refused with a sentence that says
	 * so: a mismatch too. */
	r = keyd_parameter(ctx, ec ? "ec-point" : "rsa-modulus", &theirs, &inner);
	if (r == -EPROTO && (strstr(err_msg(&inner, r), "is not an EC key pair") ||
			     strstr(err_msg(&inner, r), "is not an RSA key pair")))
		goto mismatch;
	if (r < 0) {
		log_debug("cannot compare the identity certificate with keyd's key pair: %s",
			  err_msg(&inner, r));
		return 0;
	}
	if (cert_parameter(pub, ec, &ours) < 0)
		return 0;
	if (ours.len == theirs.len && CRYPTO_memcmp(ours.data, theirs.data, ours.len) == 0)
		return 0;
mismatch:
	return err_set(e, -EKEYREJECTED,
		       "the identity certificate '%s' was not made for key pair '%s' in keyd; "
		       "install the certificate issued for that key, or the key it was issued "
		       "for",
		       ctx->s->cert_id, ctx->s->key_id);
}

/* Sets *fault: settings (a bad URI, no CN) are permanent; a certificate
 * that cannot be read, has expired or does not fit the key is retried,
 * as a renewal or a fixed file needs no change in the settings. */
static int x509_setup(struct identityd_job_context *ctx, enum identityd_fault *fault, struct err *e)
{
	X509 *leaf;
	int r;

	*fault = IDENTITYD_FAULT_LOCAL;
	r = identity_cert_load(ctx->s, ctx->s->cert_id, &ctx->certs, e);
	if (r == -EINVAL)
		*fault = IDENTITYD_FAULT_PERMANENT;
	if (r < 0)
		return err_prefix(e, r, "cannot read the identity certificate '%s'",
				  ctx->s->cert_id);
	leaf = sk_X509_value(ctx->certs, 0);
	r = check_validity(ctx->s, leaf, e);
	if (r >= 0)
		r = check_key_match(ctx, leaf, e);
	if (r < 0)
		return r;
	ctx->chain = sk_X509_new_null();
	if (!ctx->chain)
		return err_set(e, -ENOMEM, "out of memory");
	for (int i = 1; i < sk_X509_num(ctx->certs); i++)
		if (sk_X509_push(ctx->chain, sk_X509_value(ctx->certs, i)) <= 0)
			return err_set(e, -ENOMEM, "out of memory");
	r = keyd_pkey_new(ctx->s->keyd_socket, ctx->key_handle, X509_get0_pubkey(leaf), &ctx->pkey,
			  e);
	if (r == -ENOTSUP)
		*fault = IDENTITYD_FAULT_PERMANENT;
	if (r < 0)
		return r;
	ctx->cloud.cert = leaf;
	ctx->cloud.chain = ctx->chain;
	ctx->cloud.key = ctx->pkey;
	if (!ctx->registration_id) {
		ctx->registration_id = identity_cert_common_name(leaf);
		if (!ctx->registration_id) {
			*fault = IDENTITYD_FAULT_PERMANENT;
			return err_set(e, -EINVAL,
				       "the identity certificate has no subject CN to use as the "
				       "registration id; set provisioning.attestation."
				       "registration_id");
		}
	}
	return 0;
}

int identityd_job_context_init(struct identityd_job_context *ctx,
			       const struct identityd_settings *s, enum identityd_fault *ret_fault,
			       struct err *e)
{
	int r;

	*ctx = (struct identityd_job_context){.s = s};
	*ret_fault = IDENTITYD_FAULT_LOCAL;
	if (identityd_cloud_init(&ctx->cloud, s) < 0)
		return err_set(e, -ENOMEM, "out of memory");
	ctx->keyd = local_client_new("keyd", s->keyd_socket, KEYD_API_VERSION);
	ctx->tpmd = local_client_new("tpmd", s->tpmd_socket, TPMD_API_VERSION);
	if (!ctx->keyd || !ctx->tpmd)
		return err_set(e, -ENOMEM, "out of memory");
	if (s->registration_id) {
		ctx->registration_id = strdup(s->registration_id);
		if (!ctx->registration_id)
			return err_set(e, -ENOMEM, "out of memory");
	}
	switch (s->auth) {
	case IDENTITYD_AUTH_SAS:
		r = keyd_client_key_handle(ctx->keyd, s->key_id, &ctx->key_handle, e);
		return r < 0 ? err_prefix(e, r, "the device key '%s'", s->key_id) : 0;
	case IDENTITYD_AUTH_X509:
		r = keyd_client_key_pair_handle(ctx->keyd, s->key_id, &ctx->key_handle, e);
		if (r < 0)
			return err_prefix(e, r, "the device key pair '%s'", s->key_id);
		return x509_setup(ctx, ret_fault, e);
	case IDENTITYD_AUTH_TPM:
		return 0;
	}
	return 0;
}

void identityd_job_context_clear(struct identityd_job_context *ctx)
{
	identityd_cloud_clear(&ctx->cloud);
	local_client_free(ctx->keyd);
	local_client_free(ctx->tpmd);
	if (ctx->key_handle) {
		explicit_bzero(ctx->key_handle, strlen(ctx->key_handle));
		free(ctx->key_handle);
	}
	sk_X509_free(ctx->chain);
	sk_X509_pop_free(ctx->certs, X509_free);
	EVP_PKEY_free(ctx->pkey);
	free(ctx->registration_id);
	*ctx = (struct identityd_job_context){0};
}

void identityd_job_result_clear(struct identityd_job_result *r)
{
	free(r->hub_name);
	free(r->gateway);
	free(r->device_id);
	if (r->key_handle) {
		explicit_bzero(r->key_handle, strlen(r->key_handle));
		free(r->key_handle);
	}
	free(r->registration_id);
	free(r->error);
	*r = (struct identityd_job_result){0};
}

static const char *const fault_names[] = {"none", "network", "refused", "permanent", "local"};

json_t *identityd_job_result_to_json(const struct identityd_job_result *r)
{
	json_t *j = json_object();

	if (!j)
		return NULL;
#define SET(k, v)                                                                                  \
	do {                                                                                       \
		json_t *_v = (v);                                                                  \
		if (json_object_set_new(j, (k), _v ? _v : json_null()) < 0) {                      \
			json_decref(j);                                                            \
			return NULL;                                                               \
		}                                                                                  \
	} while (0)
	SET("ok", json_boolean(r->ok));
	SET("hub_name", r->hub_name ? json_string(r->hub_name) : NULL);
	SET("gateway", r->gateway ? json_string(r->gateway) : NULL);
	SET("device_id", r->device_id ? json_string(r->device_id) : NULL);
	SET("key_handle", r->key_handle ? json_string(r->key_handle) : NULL);
	SET("from_dps", json_boolean(r->from_dps));
	SET("hub_verified", json_boolean(r->hub_verified));
	SET("registration_id", r->registration_id ? json_string(r->registration_id) : NULL);
	SET("error", r->error ? json_string(r->error) : NULL);
	SET("fault", json_string(fault_names[r->fault]));
	SET("dps_error", json_boolean(r->dps_error));
#undef SET
	return j;
}

static int copy_opt(const json_t *j, const char *key, char **ret, struct err *e)
{
	const char *s = NULL;

	if (json_get_string_opt(j, key, &s, e) < 0)
		return -EBADMSG;
	if (s && !(*ret = strdup(s)))
		return err_set(e, -ENOMEM, "out of memory");
	return 0;
}

int identityd_job_result_from_json(const json_t *j, struct identityd_job_result *ret, struct err *e)
{
	struct identityd_job_result r = {0};
	const char *fault = NULL;
	int rc;

	rc = json_get_bool(j, "ok", &r.ok, e);
	if (rc >= 0)
		rc = json_get_bool_opt(j, "from_dps", false, &r.from_dps, e);
	if (rc >= 0)
		rc = json_get_bool_opt(j, "hub_verified", false, &r.hub_verified, e);
	if (rc >= 0)
		rc = json_get_bool_opt(j, "dps_error", false, &r.dps_error, e);
	if (rc >= 0)
		rc = json_get_string(j, "fault", &fault, e);
	if (rc >= 0) {
		rc = -EBADMSG;
		for (size_t i = 0; i < ARRAY_SIZE(fault_names); i++)
			if (streq(fault, fault_names[i])) {
				r.fault = (enum identityd_fault)i;
				rc = 0;
			}
		if (rc < 0)
			err_set(e, rc, "fault: unknown value \"%s\"", fault);
	}
	if (rc >= 0)
		rc = copy_opt(j, "hub_name", &r.hub_name, e);
	if (rc >= 0)
		rc = copy_opt(j, "gateway", &r.gateway, e);
	if (rc >= 0)
		rc = copy_opt(j, "device_id", &r.device_id, e);
	if (rc >= 0)
		rc = copy_opt(j, "key_handle", &r.key_handle, e);
	if (rc >= 0)
		rc = copy_opt(j, "registration_id", &r.registration_id, e);
	if (rc >= 0)
		rc = copy_opt(j, "error", &r.error, e);
	if (rc >= 0 && r.ok && (!r.hub_name || !r.gateway || !r.device_id))
		rc = err_set(e, -EBADMSG, "a successful result without its identity");
	if (rc < 0) {
		identityd_job_result_clear(&r);
		return rc == -ENOMEM ? rc : -EBADMSG;
	}
	*ret = r;
	return 0;
}

static void set_error(struct identityd_job_result *ret, enum identityd_fault fault,
		      const struct err *e, int r)
{
	free(ret->error);
	ret->error = strdup(err_msg(e, r));
	ret->fault = fault;
}

static int set_identity(struct identityd_job_result *ret, const struct identityd_settings *s,
			const char *hub, const char *device_id)
{
	const char *gw = s->local_gateway_hostname ? s->local_gateway_hostname : hub;

	free(ret->hub_name);
	free(ret->gateway);
	free(ret->device_id);
	ret->hub_name = strdup(hub);
	ret->gateway = strdup(gw);
	ret->device_id = strdup(device_id);
	return ret->hub_name && ret->gateway && ret->device_id ? 0 : -ENOMEM;
}

/* The identity device_info holds, its gateway included. */
static int use_backup(struct identityd_job_result *ret, const struct identityd_settings *s,
		      const struct identityd_device_info *backup)
{
	if (set_identity(ret, s, backup->hub_name, backup->device_id) < 0)
		return -ENOMEM;
	if (backup->local_gateway_hostname) {
		free(ret->gateway);
		ret->gateway = strdup(backup->local_gateway_hostname);
	}
	return ret->gateway ? 0 : -ENOMEM;
}

/* Check hub/device; fills ret->ok, hub_verified, and error (a warning when
 * the hub is only unreachable). Returns the outcome. */
static enum identityd_hub_outcome check(struct identityd_job_context *ctx,
					struct identityd_job_result *ret)
{
	struct err e = {0};
	enum identityd_hub_outcome o;

	o = identityd_hub_check(ctx, ret->hub_name, ret->gateway, ret->device_id, &e);
	switch (o) {
	case IDENTITYD_HUB_ACCEPTED:
		ret->ok = true;
		ret->hub_verified = true;
		log_info("the hub %s accepted device '%s'", ret->hub_name, ret->device_id);
		break;
	case IDENTITYD_HUB_UNREACHABLE:
		ret->ok = true;
		set_error(ret, IDENTITYD_FAULT_NETWORK, &e, -EAGAIN);
		ret->fault = IDENTITYD_FAULT_NONE;
		log_warn("%s; the identity is kept, unverified", err_msg(&e, -EAGAIN));
		break;
	case IDENTITYD_HUB_REFUSED:
		set_error(ret, IDENTITYD_FAULT_REFUSED, &e, -EACCES);
		break;
	case IDENTITYD_HUB_ERROR:
		set_error(ret, IDENTITYD_FAULT_NETWORK, &e, -EPROTO);
		break;
	}
	return o;
}

static void run_dps(struct identityd_job_context *ctx, const struct identityd_job *job,
		    struct identityd_job_result *ret)
{
	struct identityd_dps_result dr = {0};
	enum identityd_fault fault = IDENTITYD_FAULT_NONE;
	enum identityd_hub_outcome o;
	struct err e = {0};
	int r;

	if (job->have_backup && !job->force_dps) {
		if (use_backup(ret, ctx->s, &job->backup) < 0) {
			set_error(ret, IDENTITYD_FAULT_LOCAL, NULL, -ENOMEM);
			return;
		}
		log_info("using the identity in device_info: device '%s' in hub %s", ret->device_id,
			 ret->hub_name);
		o = check(ctx, ret);
		if (o == IDENTITYD_HUB_ACCEPTED || o == IDENTITYD_HUB_UNREACHABLE)
			return;
		/* Any other hub error: register again (§5.8). */
		log_warn("%s; registering with DPS again", ret->error);
		ret->ok = false;
	}

	r = identityd_dps_register(ctx, &dr, &fault, &e);
	if (r < 0) {
		ret->dps_error = true;
		if (job->have_backup && fault == IDENTITYD_FAULT_NETWORK) {
			log_warn("%s; keeping the identity in device_info", err_msg(&e, r));
			if (use_backup(ret, ctx->s, &job->backup) < 0) {
				set_error(ret, IDENTITYD_FAULT_LOCAL, NULL, -ENOMEM);
				return;
			}
			set_error(ret, fault, &e, r);
			ret->fault = IDENTITYD_FAULT_NONE;
			ret->ok = true;
			return;
		}
		ret->ok = false;
		free(ret->hub_name);
		free(ret->gateway);
		free(ret->device_id);
		ret->hub_name = ret->gateway = ret->device_id = NULL;
		set_error(ret, fault, &e, r);
		return;
	}
	log_info("DPS assigned registration '%s' to hub %s as device '%s'", ctx->registration_id,
		 dr.assigned_hub, dr.device_id);
	ret->from_dps = true;
	ret->dps_error = false;
	free(ret->error);
	ret->error = NULL;
	ret->fault = IDENTITYD_FAULT_NONE;
	r = set_identity(ret, ctx->s, dr.assigned_hub, dr.device_id);
	identityd_dps_result_clear(&dr);
	if (r < 0) {
		set_error(ret, IDENTITYD_FAULT_LOCAL, NULL, -ENOMEM);
		return;
	}
	check(ctx, ret);
}

void identityd_job_run(const struct identityd_settings *s, const struct identityd_job *job,
		       struct identityd_job_result *ret)
{
	struct identityd_job_context ctx;
	enum identityd_fault fault;
	struct err e = {0};
	int r;

	*ret = (struct identityd_job_result){0};
	if (s->source == IDENTITYD_SOURCE_NONE) {
		ret->ok = false;
		return;
	}
	r = identityd_job_context_init(&ctx, s, &fault, &e);
	if (r < 0) {
		set_error(ret, fault, &e, r);
		identityd_job_context_clear(&ctx);
		return;
	}
	if (ctx.registration_id)
		ret->registration_id = strdup(ctx.registration_id);

	if (s->source == IDENTITYD_SOURCE_MANUAL) {
		if (set_identity(ret, s, s->iothub_hostname, s->device_id) < 0)
			set_error(ret, IDENTITYD_FAULT_LOCAL, NULL, -ENOMEM);
		else
			check(&ctx, ret);
	} else {
		run_dps(&ctx, job, ret);
	}
	if (ret->ok && ctx.key_handle) {
		ret->key_handle = strdup(ctx.key_handle);
		if (!ret->key_handle) {
			ret->ok = false;
			set_error(ret, IDENTITYD_FAULT_LOCAL, NULL, -ENOMEM);
		}
	}
	identityd_job_context_clear(&ctx);
}
