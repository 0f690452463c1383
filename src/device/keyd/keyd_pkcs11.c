/* SPDX-License-Identifier: MIT */
/*
 * Keys in a PKCS#11 token (an HSM, SoftHSM, tpm2-pkcs11), used through the
 * module's own function list: keyd dlopen()s pkcs11_lib_path, finds the slot
 * a pkcs11: URI (RFC 7512) names, logs in with its pin-value once per slot,
 * and keeps that session for the life of the process.
 *
 * Objects are found by class and label (the key id, or the URI's object).
 * Key pairs are generated in the token (sensitive, not extractable) and used
 * there: ECDSA (the raw r||s the token returns is turned into DER, as aziot
 * does), RSA PKCS#1 v1.5 and raw private-key operations. Symmetric keys are
 * generic secrets (HMAC-SHA256) or AES keys (AES-GCM). The private and secret
 * key values never leave the token; only public attributes are read.
 *
 * Token errors are translated here, once: CKR_* values are logged at debug
 * and become a negative errno with a sentence for keyd's log.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/x509.h>

#include <p11-kit/pkcs11.h>

#include "common/encode.h"
#include "common/log.h"
#include "crypto/openssl_cleanup.h"
#include "device/keyd/keyd.h"

#define MAX_SLOTS 64

/* DER of the P-256 OID (CKA_EC_PARAMS of a named-curve P-256 key). */
static const uint8_t p256_oid[] = {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};

struct session {
	CK_SLOT_ID slot;
	CK_SESSION_HANDLE h;
};

struct keyd_p11 {
	void *dl;
	CK_FUNCTION_LIST_PTR f;
	struct session sessions[MAX_SLOTS];
	size_t n_sessions;
};

/* --- URIs (RFC 7512) ------------------------------------------------------ */

void keyd_p11_uri_clear(struct keyd_p11_uri *u)
{
	if (!u)
		return;
	free(u->token);
	free(u->serial);
	free(u->object);
	if (u->pin) {
		explicit_bzero(u->pin, strlen(u->pin));
		free(u->pin);
	}
	*u = (struct keyd_p11_uri){0};
}

static int set_attr(char **dst, const char *v, size_t len)
{
	_cleanup_buf_ struct buf b = {0};

	buf_init_secret(&b, 4096);
	if (url_decode(&b, v, len, false) < 0)
		return -EINVAL;
	if (*dst) /* an attribute given twice */
		return -EINVAL;
	*dst = buf_steal(&b, NULL);
	return *dst ? 0 : -ENOMEM;
}

int keyd_p11_uri_parse(const char *uri, struct keyd_p11_uri *ret)
{
	struct keyd_p11_uri u = {0};
	const char *p;
	bool query = false;
	int r = 0;

	if (!strneq(uri, "pkcs11:", 7))
		return -EINVAL;
	p = uri + 7;
	while (*p && r == 0) {
		size_t n = strcspn(p, query ? "&" : ";?");
		const char *eq = memchr(p, '=', n);
		size_t nlen = eq ? (size_t)(eq - p) : n;
		const char *v = eq ? eq + 1 : NULL;
		size_t vlen = eq ? n - nlen - 1 : 0;

		if (n > 0 && !eq) {
			r = -EINVAL;
			break;
		}
		if (!query && nlen == 5 && strneq(p, "token", 5)) {
			r = set_attr(&u.token, v, vlen);
		} else if (!query && nlen == 6 && strneq(p, "serial", 6)) {
			r = set_attr(&u.serial, v, vlen);
		} else if (!query && nlen == 6 && strneq(p, "object", 6)) {
			r = set_attr(&u.object, v, vlen);
		} else if (!query && nlen == 7 && strneq(p, "slot-id", 7)) {
			char *s = NULL, *end;

			r = set_attr(&s, v, vlen);
			if (r == 0) {
				errno = 0;
				u.slot_id = strtoul(s, &end, 10);
				if (u.has_slot_id || !*s || *s < '0' || *s > '9' || *end ||
				    errno != 0)
					r = -EINVAL;
				u.has_slot_id = true;
			}
			free(s);
		} else if (query && nlen == 9 && strneq(p, "pin-value", 9)) {
			r = set_attr(&u.pin, v, vlen);
		} else if (query && nlen == 10 && strneq(p, "pin-source", 10)) {
			r = -EOPNOTSUPP;
		}
		/* Other attributes (type, id, manufacturer, module-name, ...)
		 * narrow nothing keyd looks at; they are accepted and ignored. */
		p += n;
		if (*p == '?' && !query) {
			query = true;
			p++;
		} else if (*p) {
			p++;
		}
	}
	if (r < 0) {
		keyd_p11_uri_clear(&u);
		return r;
	}
	*ret = u;
	return 0;
}

int keyd_p11_uri_with_object(const struct keyd_p11_uri *base, const char *object,
			     struct keyd_p11_uri *ret)
{
	struct keyd_p11_uri u = {.has_slot_id = base->has_slot_id, .slot_id = base->slot_id};

	u.token = base->token ? strdup(base->token) : NULL;
	u.serial = base->serial ? strdup(base->serial) : NULL;
	u.pin = base->pin ? strdup(base->pin) : NULL;
	u.object = strdup(object);
	if ((base->token && !u.token) || (base->serial && !u.serial) || (base->pin && !u.pin) ||
	    !u.object) {
		keyd_p11_uri_clear(&u);
		return -ENOMEM;
	}
	*ret = u;
	return 0;
}

/* --- the module -------------------------------------------------------------- */

static int ckr(struct err *e, CK_RV rv, const char *what)
{
	log_debug("pkcs11: %s: CKR 0x%lx", what, (unsigned long)rv);
	return err_set(e, -EIO, "PKCS#11 %s failed (CKR 0x%lx)", what, (unsigned long)rv);
}

int keyd_p11_open(const char *lib_path, struct keyd_p11 **ret, struct err *e)
{
	struct keyd_p11 *p = calloc(1, sizeof(*p));
	CK_C_GetFunctionList get;
	CK_C_INITIALIZE_ARGS args = {.flags = CKF_OS_LOCKING_OK};
	CK_RV rv;

	if (!p)
		return err_set(e, -ENOMEM, "out of memory");
	p->dl = dlopen(lib_path, RTLD_NOW | RTLD_LOCAL);
	if (!p->dl) {
		free(p);
		return err_set(e, -ENOENT, "%s: cannot load the PKCS#11 module: %s", lib_path,
			       dlerror());
	}
	get = (CK_C_GetFunctionList)dlsym(p->dl, "C_GetFunctionList");
	if (!get || get(&p->f) != CKR_OK || !p->f) {
		dlclose(p->dl);
		free(p);
		return err_set(e, -EINVAL, "%s: not a PKCS#11 module (no C_GetFunctionList)",
			       lib_path);
	}
	rv = p->f->C_Initialize(&args);
	if (rv != CKR_OK && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED) {
		dlclose(p->dl);
		free(p);
		return err_set(e, -EIO, "%s: C_Initialize failed (CKR 0x%lx)", lib_path,
			       (unsigned long)rv);
	}
	*ret = p;
	return 0;
}

void keyd_p11_close(struct keyd_p11 *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n_sessions; i++)
		p->f->C_CloseSession(p->sessions[i].h);
	p->f->C_Finalize(NULL);
	dlclose(p->dl);
	free(p);
}

/* A blank-padded PKCS#11 string field equals s? */
static bool padded_eq(const unsigned char *field, size_t n, const char *s)
{
	size_t len = n;

	while (len > 0 && field[len - 1] == ' ')
		len--;
	return strlen(s) == len && memcmp(field, s, len) == 0;
}

static int find_slot(struct keyd_p11 *p, const struct keyd_p11_uri *u, CK_SLOT_ID *ret,
		     struct err *e)
{
	CK_SLOT_ID slots[MAX_SLOTS];
	CK_ULONG n = MAX_SLOTS;
	CK_RV rv;

	rv = p->f->C_GetSlotList(CK_TRUE, slots, &n);
	if (rv != CKR_OK)
		return ckr(e, rv, "C_GetSlotList");
	for (CK_ULONG i = 0; i < n; i++) {
		CK_TOKEN_INFO ti;

		if (u->has_slot_id && slots[i] != u->slot_id)
			continue;
		if (u->token || u->serial) {
			if (p->f->C_GetTokenInfo(slots[i], &ti) != CKR_OK)
				continue;
			if (u->token && !padded_eq(ti.label, sizeof(ti.label), u->token))
				continue;
			if (u->serial &&
			    !padded_eq(ti.serialNumber, sizeof(ti.serialNumber), u->serial))
				continue;
		}
		*ret = slots[i];
		return 0;
	}
	return err_set(e, -ENODEV, "no PKCS#11 token matches%s%s%s%s", u->token ? " token=" : "",
		       strempty(u->token), u->has_slot_id ? " and the slot-id" : "",
		       u->serial ? " and the serial" : "");
}

/* The logged-in session for the slot u names (opened once). */
static int session(struct keyd_p11 *p, const struct keyd_p11_uri *u, CK_SESSION_HANDLE *ret,
		   struct err *e)
{
	CK_SLOT_ID slot;
	CK_SESSION_HANDLE h;
	CK_RV rv;
	int r;

	*ret = CK_INVALID_HANDLE;
	r = find_slot(p, u, &slot, e);
	if (r < 0)
		return r;
	for (size_t i = 0; i < p->n_sessions; i++)
		if (p->sessions[i].slot == slot) {
			*ret = p->sessions[i].h;
			return 0;
		}
	if (p->n_sessions == MAX_SLOTS)
		return err_set(e, -EMFILE, "too many PKCS#11 slots in use");
	rv = p->f->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &h);
	if (rv != CKR_OK)
		return ckr(e, rv, "C_OpenSession");
	if (u->pin) {
		rv = p->f->C_Login(h, CKU_USER, (CK_UTF8CHAR_PTR)u->pin, strlen(u->pin));
		if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN) {
			p->f->C_CloseSession(h);
			return ckr(e, rv, "C_Login (check pin-value)");
		}
	}
	p->sessions[p->n_sessions++] = (struct session){.slot = slot, .h = h};
	*ret = h;
	return 0;
}

int keyd_p11_check_slot(struct keyd_p11 *p, const struct keyd_p11_uri *u, struct err *e)
{
	CK_SESSION_HANDLE h;

	return session(p, u, &h, e);
}

static CK_OBJECT_CLASS class_of(enum keyd_p11_object o)
{
	switch (o) {
	case KEYD_P11_PRIVATE:
		return CKO_PRIVATE_KEY;
	case KEYD_P11_PUBLIC:
		return CKO_PUBLIC_KEY;
	case KEYD_P11_SECRET:
		return CKO_SECRET_KEY;
	}
	return CKO_DATA;
}

/* Up to max objects of class o labelled u->object. */
static int find_objects(struct keyd_p11 *p, CK_SESSION_HANDLE h, const struct keyd_p11_uri *u,
			enum keyd_p11_object o, CK_OBJECT_HANDLE *ret, CK_ULONG max,
			CK_ULONG *ret_n, struct err *e)
{
	CK_OBJECT_CLASS cls = class_of(o);
	CK_ATTRIBUTE t[] = {
	    {CKA_CLASS, &cls, sizeof(cls)},
	    {CKA_LABEL, u->object, u->object ? strlen(u->object) : 0},
	};
	CK_RV rv;

	rv = p->f->C_FindObjectsInit(h, t, u->object ? 2 : 1);
	if (rv != CKR_OK)
		return ckr(e, rv, "C_FindObjectsInit");
	rv = p->f->C_FindObjects(h, ret, max, ret_n);
	p->f->C_FindObjectsFinal(h);
	if (rv != CKR_OK)
		return ckr(e, rv, "C_FindObjects");
	return 0;
}

static int find_one(struct keyd_p11 *p, const struct keyd_p11_uri *u, enum keyd_p11_object o,
		    CK_SESSION_HANDLE *ret_h, CK_OBJECT_HANDLE *ret, struct err *e)
{
	CK_ULONG n = 0;
	int r;

	r = session(p, u, ret_h, e);
	if (r >= 0)
		r = find_objects(p, *ret_h, u, o, ret, 1, &n, e);
	if (r < 0)
		return r;
	return n == 1 ? 0 : -ENOENT;
}

int keyd_p11_exists(struct keyd_p11 *p, const struct keyd_p11_uri *u, enum keyd_p11_object o,
		    struct err *e)
{
	CK_SESSION_HANDLE h;
	CK_OBJECT_HANDLE obj;
	int r = find_one(p, u, o, &h, &obj, e);

	return r == -ENOENT ? 0 : r < 0 ? r : 1;
}

/* One attribute's value, malloc'd. */
static int get_attr(struct keyd_p11 *p, CK_SESSION_HANDLE h, CK_OBJECT_HANDLE obj,
		    CK_ATTRIBUTE_TYPE type, uint8_t **ret, size_t *ret_len, struct err *e)
{
	CK_ATTRIBUTE a = {type, NULL, 0};
	CK_RV rv;

	rv = p->f->C_GetAttributeValue(h, obj, &a, 1);
	if (rv != CKR_OK)
		return ckr(e, rv, "C_GetAttributeValue");
	a.pValue = malloc(a.ulValueLen + 1);
	if (!a.pValue)
		return err_set(e, -ENOMEM, "out of memory");
	rv = p->f->C_GetAttributeValue(h, obj, &a, 1);
	if (rv != CKR_OK) {
		free(a.pValue);
		return ckr(e, rv, "C_GetAttributeValue");
	}
	*ret = a.pValue;
	*ret_len = a.ulValueLen;
	return 0;
}

static int ec_public(const uint8_t *params, size_t plen, const uint8_t *point, size_t len,
		     EVP_PKEY **ret, struct err *e)
{
	/* SubjectPublicKeyInfo prefixes for P-256, uncompressed and compressed. */
	static const uint8_t spki65[] = {0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48,
					 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48,
					 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00};
	static const uint8_t spki33[] = {0x30, 0x39, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48,
					 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48,
					 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x22, 0x00};
	uint8_t der[sizeof(spki65) + 65];
	const uint8_t *q = der;
	size_t prefix;

	if (plen != sizeof(p256_oid) || memcmp(params, p256_oid, plen) != 0)
		return err_set(e, -EINVAL, "the token's EC key is not on P-256");
	/* CKA_EC_POINT is a DER OCTET STRING; some tokens give the bare point. */
	if (len >= 2 && point[0] == 0x04 && point[1] == len - 2 && (len == 67 || len == 35)) {
		point += 2;
		len -= 2;
	}
	if (len == 65 && point[0] == 0x04)
		prefix = sizeof(spki65);
	else if (len == 33 && (point[0] == 0x02 || point[0] == 0x03))
		prefix = sizeof(spki33);
	else
		return err_set(e, -EINVAL, "the token's EC point is malformed");
	memcpy(der, len == 65 ? spki65 : spki33, prefix);
	memcpy(der + prefix, point, len);
	*ret = d2i_PUBKEY(NULL, &q, (long)(prefix + len));
	return *ret ? 0 : err_set(e, -EIO, "the token's EC public key does not parse");
}

static int rsa_public(const uint8_t *n, size_t nlen, const uint8_t *ex, size_t elen, EVP_PKEY **ret,
		      struct err *e)
{
	_cleanup_(BN_freep) BIGNUM *bn = BN_bin2bn(n, (int)nlen, NULL);
	_cleanup_(BN_freep) BIGNUM *be = BN_bin2bn(ex, (int)elen, NULL);
	_cleanup_(OSSL_PARAM_BLD_freep) OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	_cleanup_(OSSL_PARAM_freep) OSSL_PARAM *params = NULL;
	_cleanup_(EVP_PKEY_CTX_freep) EVP_PKEY_CTX *ctx =
	    EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);

	if (!bn || !be || !bld || !ctx ||
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) != 1 ||
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be) != 1 ||
	    !(params = OSSL_PARAM_BLD_to_param(bld)) || EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, ret, EVP_PKEY_PUBLIC_KEY, params) != 1)
		return err_set(e, -EIO, "the token's RSA public key does not convert");
	return 0;
}

int keyd_p11_public_key(struct keyd_p11 *p, const struct keyd_p11_uri *u, EVP_PKEY **ret,
			struct err *e)
{
	_cleanup_free_ uint8_t *a = NULL, *b = NULL, *kt = NULL;
	size_t alen = 0, blen = 0, ktlen = 0;
	CK_SESSION_HANDLE h;
	CK_OBJECT_HANDLE obj;
	CK_KEY_TYPE type;
	int r;

	/* The public object; an RSA private object carries n and e too. */
	r = find_one(p, u, KEYD_P11_PUBLIC, &h, &obj, e);
	if (r == -ENOENT)
		r = find_one(p, u, KEYD_P11_PRIVATE, &h, &obj, e);
	if (r < 0)
		return r;
	r = get_attr(p, h, obj, CKA_KEY_TYPE, &kt, &ktlen, e);
	if (r < 0)
		return r;
	if (ktlen != sizeof(type))
		return err_set(e, -EIO, "the token's CKA_KEY_TYPE is malformed");
	memcpy(&type, kt, sizeof(type));
	if (type == CKK_EC) {
		r = get_attr(p, h, obj, CKA_EC_PARAMS, &a, &alen, e);
		if (r >= 0)
			r = get_attr(p, h, obj, CKA_EC_POINT, &b, &blen, e);
		return r < 0 ? r : ec_public(a, alen, b, blen, ret, e);
	}
	if (type == CKK_RSA) {
		r = get_attr(p, h, obj, CKA_MODULUS, &a, &alen, e);
		if (r >= 0)
			r = get_attr(p, h, obj, CKA_PUBLIC_EXPONENT, &b, &blen, e);
		return r < 0 ? r : rsa_public(a, alen, b, blen, ret, e);
	}
	return err_set(e, -EINVAL, "the token's key is neither EC nor RSA");
}

int keyd_p11_generate_pair(struct keyd_p11 *p, const struct keyd_p11_uri *u, enum keyd_alg alg,
			   struct err *e)
{
	CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	CK_ULONG bits = alg == KEYD_ALG_RSA_4096 ? 4096 : 2048;
	uint8_t e65537[] = {0x01, 0x00, 0x01};
	CK_MECHANISM mech = {
	    alg == KEYD_ALG_EC_P256 ? CKM_EC_KEY_PAIR_GEN : CKM_RSA_PKCS_KEY_PAIR_GEN, NULL, 0};
	size_t label = strlen(u->object);
	CK_ATTRIBUTE pub_ec[] = {
	    {CKA_TOKEN, &yes, sizeof(yes)},
	    {CKA_LABEL, u->object, label},
	    {CKA_VERIFY, &yes, sizeof(yes)},
	    {CKA_EC_PARAMS, (void *)p256_oid, sizeof(p256_oid)},
	};
	CK_ATTRIBUTE pub_rsa[] = {
	    {CKA_TOKEN, &yes, sizeof(yes)},
	    {CKA_LABEL, u->object, label},
	    {CKA_VERIFY, &yes, sizeof(yes)},
	    {CKA_MODULUS_BITS, &bits, sizeof(bits)},
	    {CKA_PUBLIC_EXPONENT, e65537, sizeof(e65537)},
	};
	CK_ATTRIBUTE priv[] = {
	    {CKA_TOKEN, &yes, sizeof(yes)},     {CKA_LABEL, u->object, label},
	    {CKA_PRIVATE, &yes, sizeof(yes)},   {CKA_SENSITIVE, &yes, sizeof(yes)},
	    {CKA_EXTRACTABLE, &no, sizeof(no)}, {CKA_SIGN, &yes, sizeof(yes)},
	};
	CK_SESSION_HANDLE h;
	CK_OBJECT_HANDLE pubh, privh;
	CK_RV rv;
	int r;

	r = session(p, u, &h, e);
	if (r < 0)
		return r;
	if (alg == KEYD_ALG_EC_P256)
		rv = p->f->C_GenerateKeyPair(h, &mech, pub_ec, ARRAY_SIZE(pub_ec), priv,
					     ARRAY_SIZE(priv), &pubh, &privh);
	else
		rv = p->f->C_GenerateKeyPair(h, &mech, pub_rsa, ARRAY_SIZE(pub_rsa), priv,
					     ARRAY_SIZE(priv), &pubh, &privh);
	if (rv != CKR_OK)
		return ckr(e, rv, "C_GenerateKeyPair");
	return 0;
}

/* An ECDSA signature as the token gives it (r || s) in DER. */
static int ecdsa_der(const uint8_t *raw, size_t len, struct buf *out, struct err *e)
{
	ECDSA_SIG *sig = ECDSA_SIG_new();
	BIGNUM *r = BN_bin2bn(raw, (int)(len / 2), NULL);
	BIGNUM *s = BN_bin2bn(raw + len / 2, (int)(len / 2), NULL);
	uint8_t *der = NULL;
	int n, rc = 0;

	if (!sig || !r || !s || len % 2 != 0 || ECDSA_SIG_set0(sig, r, s) != 1) {
		BN_free(r);
		BN_free(s);
		ECDSA_SIG_free(sig);
		return err_set(e, -EIO, "the token's ECDSA signature is malformed");
	}
	n = i2d_ECDSA_SIG(sig, &der);
	if (n <= 0 || buf_append(out, der, (size_t)n) < 0)
		rc = err_set(e, -EIO, "encoding the ECDSA signature failed");
	OPENSSL_free(der);
	ECDSA_SIG_free(sig);
	return rc;
}

int keyd_p11_sign(struct keyd_p11 *p, const struct keyd_p11_uri *u, enum keyd_p11_mech m,
		  const void *in, size_t len, struct buf *out, struct err *e)
{
	static const CK_MECHANISM_TYPE types[] = {
	    [KEYD_P11_ECDSA] = CKM_ECDSA,
	    [KEYD_P11_RSA_PKCS] = CKM_RSA_PKCS,
	    [KEYD_P11_RSA_X509] = CKM_RSA_X_509,
	    [KEYD_P11_HMAC_SHA256] = CKM_SHA256_HMAC,
	};
	CK_MECHANISM mech = {types[m], NULL, 0};
	_cleanup_free_ uint8_t *sig = NULL;
	CK_ULONG siglen = 0;
	CK_SESSION_HANDLE h;
	CK_OBJECT_HANDLE key;
	CK_RV rv;
	int r;

	r = find_one(p, u, m == KEYD_P11_HMAC_SHA256 ? KEYD_P11_SECRET : KEYD_P11_PRIVATE, &h, &key,
		     e);
	if (r < 0)
		return r;
	rv = p->f->C_SignInit(h, &mech, key);
	if (rv != CKR_OK)
		return ckr(e, rv, "C_SignInit");
	rv = p->f->C_Sign(h, (CK_BYTE_PTR)in, len, NULL, &siglen);
	if (rv == CKR_OK) {
		sig = malloc(siglen + 1);
		if (!sig) {
			/* finish the operation the token started */
			CK_ULONG zero = 0;

			(void)p->f->C_Sign(h, (CK_BYTE_PTR)in, len, NULL, &zero);
			return err_set(e, -ENOMEM, "out of memory");
		}
		rv = p->f->C_Sign(h, (CK_BYTE_PTR)in, len, sig, &siglen);
	}
	if (rv == CKR_DATA_LEN_RANGE || rv == CKR_DATA_INVALID)
		return err_set(e, -EINVAL,
			       "a parameter has an invalid value\ncaused by: the token refused "
			       "this input");
	if (rv != CKR_OK)
		return ckr(e, rv, "C_Sign");
	if (m == KEYD_P11_ECDSA)
		return ecdsa_der(sig, siglen, out, e);
	return buf_append(out, sig, siglen) < 0 ? err_set(e, -ENOMEM, "out of memory") : 0;
}

static int destroy_all(struct keyd_p11 *p, CK_SESSION_HANDLE h, const struct keyd_p11_uri *u,
		       enum keyd_p11_object o, struct err *e)
{
	CK_OBJECT_HANDLE objs[16];
	CK_ULONG n = 0;
	int r;

	r = find_objects(p, h, u, o, objs, ARRAY_SIZE(objs), &n, e);
	for (CK_ULONG i = 0; r >= 0 && i < n; i++) {
		CK_RV rv = p->f->C_DestroyObject(h, objs[i]);

		if (rv != CKR_OK)
			r = ckr(e, rv, "C_DestroyObject");
	}
	return r;
}

int keyd_p11_delete(struct keyd_p11 *p, const struct keyd_p11_uri *u, bool pair, struct err *e)
{
	CK_SESSION_HANDLE h;
	int r;

	if (!u->object)
		return err_set(e, -EINVAL,
			       "a parameter has an invalid value\ncaused by: a PKCS#11 key without "
			       "an object label cannot be deleted");
	r = session(p, u, &h, e);
	if (r < 0)
		return r;
	if (!pair)
		return destroy_all(p, h, u, KEYD_P11_SECRET, e);
	r = destroy_all(p, h, u, KEYD_P11_PRIVATE, e);
	return r < 0 ? r : destroy_all(p, h, u, KEYD_P11_PUBLIC, e);
}

int keyd_p11_rename_pair(struct keyd_p11 *p, const struct keyd_p11_uri *from,
			 const struct keyd_p11_uri *to, struct err *e)
{
	static const enum keyd_p11_object kinds[] = {KEYD_P11_PRIVATE, KEYD_P11_PUBLIC};
	CK_SESSION_HANDLE h;
	int r;

	if (!from->object || !to->object)
		return err_set(e, -EINVAL,
			       "a parameter has an invalid value\ncaused by: PKCS#11 keys without "
			       "an object label cannot be moved");
	r = keyd_p11_exists(p, from, KEYD_P11_PRIVATE, e);
	if (r == 0)
		return err_set(e, -ENOENT,
			       "a parameter has an invalid value\ncaused by: key pair \"%s\" not "
			       "found",
			       from->object);
	if (r < 0)
		return r;
	r = keyd_p11_delete(p, to, true, e);
	if (r >= 0)
		r = session(p, from, &h, e);
	for (size_t k = 0; r >= 0 && k < ARRAY_SIZE(kinds); k++) {
		CK_OBJECT_HANDLE objs[16];
		CK_ULONG n = 0;
		CK_ATTRIBUTE label = {CKA_LABEL, to->object, strlen(to->object)};

		r = find_objects(p, h, from, kinds[k], objs, ARRAY_SIZE(objs), &n, e);
		for (CK_ULONG i = 0; r >= 0 && i < n; i++) {
			CK_RV rv = p->f->C_SetAttributeValue(h, objs[i], &label, 1);

			if (rv != CKR_OK)
				r = ckr(e, rv, "C_SetAttributeValue (CKA_LABEL)");
		}
	}
	return r;
}

/* --- symmetric keys ---------------------------------------------------------- */

int keyd_p11_create_secret(struct keyd_p11 *p, const struct keyd_p11_uri *u, bool aes,
			   const void *bytes, size_t len, struct err *e)
{
	CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
	CK_KEY_TYPE type = aes ? CKK_AES : CKK_GENERIC_SECRET;
	CK_ULONG value_len = 32;
	CK_MECHANISM mech = {aes ? CKM_AES_KEY_GEN : CKM_GENERIC_SECRET_KEY_GEN, NULL, 0};
	CK_ATTRIBUTE t[] = {
	    {CKA_CLASS, &cls, sizeof(cls)},
	    {CKA_KEY_TYPE, &type, sizeof(type)},
	    {CKA_TOKEN, &yes, sizeof(yes)},
	    {CKA_LABEL, u->object, strlen(u->object)},
	    {CKA_PRIVATE, &yes, sizeof(yes)},
	    {CKA_SENSITIVE, &yes, sizeof(yes)},
	    {CKA_EXTRACTABLE, &no, sizeof(no)},
	    {aes ? CKA_ENCRYPT : CKA_SIGN, &yes, sizeof(yes)},
	    {aes ? CKA_DECRYPT : CKA_VERIFY, &yes, sizeof(yes)},
	    /* last: the value to import, or the length to generate */
	    {bytes ? CKA_VALUE : CKA_VALUE_LEN, bytes ? (void *)bytes : &value_len,
	     bytes ? len : sizeof(value_len)},
	};
	CK_SESSION_HANDLE h;
	CK_OBJECT_HANDLE obj;
	CK_RV rv;
	int r;

	r = session(p, u, &h, e);
	if (r < 0)
		return r;
	if (bytes)
		rv = p->f->C_CreateObject(h, t, ARRAY_SIZE(t), &obj);
	else
		rv = p->f->C_GenerateKey(h, &mech, t, ARRAY_SIZE(t), &obj);
	/* Tokens that cannot hold such a key: the caller falls back to a file,
	 * as aziot does. */
	if (rv == CKR_FUNCTION_NOT_SUPPORTED || rv == CKR_MECHANISM_INVALID ||
	    (bytes && rv != CKR_OK)) {
		log_debug("pkcs11: the token cannot %s this key (CKR 0x%lx)",
			  bytes ? "import" : "generate", (unsigned long)rv);
		return -EOPNOTSUPP;
	}
	if (rv != CKR_OK)
		return ckr(e, rv, bytes ? "C_CreateObject" : "C_GenerateKey");
	return 0;
}

int keyd_p11_aead(struct keyd_p11 *p, const struct keyd_p11_uri *u, bool encrypt, const void *iv,
		  size_t iv_len, const void *aad, size_t aad_len, const void *in, size_t len,
		  struct buf *out, struct err *e)
{
	CK_GCM_PARAMS gcm = {
	    .pIv = (unsigned char *)iv,
	    .ulIvLen = iv_len,
	    .ulIvBits = iv_len * 8,
	    .pAAD = (unsigned char *)aad,
	    .ulAADLen = aad_len,
	    .ulTagBits = 128,
	};
	CK_MECHANISM mech = {CKM_AES_GCM, &gcm, sizeof(gcm)};
	_cleanup_free_ uint8_t *res = NULL;
	const uint8_t *src = in;
	CK_ULONG n = 0, srclen = len;
	CK_SESSION_HANDLE h;
	CK_OBJECT_HANDLE key;
	CK_RV rv;
	int r;

	if (iv_len == 0)
		return err_set(e, -EINVAL,
			       "parameter \"iv\" has an invalid value\ncaused by: the IV is empty");
	if (!encrypt) {
		if (len < 1 + 16 || src[0] != 0x02)
			return err_set(e, -EINVAL,
				       "parameter \"ciphertext\" has an invalid value\ncaused by: "
				       "malformed ciphertext");
		src++;
		srclen--;
	}
	r = find_one(p, u, KEYD_P11_SECRET, &h, &key, e);
	if (r < 0)
		return r;
	rv = encrypt ? p->f->C_EncryptInit(h, &mech, key) : p->f->C_DecryptInit(h, &mech, key);
	if (rv != CKR_OK)
		return ckr(e, rv, encrypt ? "C_EncryptInit" : "C_DecryptInit");
	n = srclen + 32;
	res = malloc(n);
	if (!res)
		return err_set(e, -ENOMEM, "out of memory");
	rv = encrypt ? p->f->C_Encrypt(h, (CK_BYTE_PTR)src, srclen, res, &n)
		     : p->f->C_Decrypt(h, (CK_BYTE_PTR)src, srclen, res, &n);
	/* A tag that does not match: tokens say so in several ways (SoftHSM
	 * with CKR_GENERAL_ERROR). */
	if (!encrypt && (rv == CKR_ENCRYPTED_DATA_INVALID || rv == CKR_ENCRYPTED_DATA_LEN_RANGE ||
			 rv == CKR_FUNCTION_FAILED || rv == CKR_GENERAL_ERROR))
		return err_set(e, -EINVAL,
			       "parameter \"ciphertext\" has an invalid value\ncaused by: it does "
			       "not authenticate with this key, IV and AAD");
	if (rv != CKR_OK)
		return ckr(e, rv, encrypt ? "C_Encrypt" : "C_Decrypt");
	if ((encrypt && buf_putc(out, 0x02) < 0) || buf_append(out, res, n) < 0)
		return err_set(e, -ENOMEM, "out of memory");
	OPENSSL_cleanse(res, n);
	return 0;
}
