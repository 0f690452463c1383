/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <string.h>

#include <openssl/core_names.h>

#include "common/encode.h"
#include "crypto/hash.h"
#include "crypto/openssl_cleanup.h"
#include "crypto/tpm_public.h"

#define PFX "TPM2B_PUBLIC: "
/* Longest base64 input decoded before parsing: enough for keys we refuse
 * (RSA-4096, ECC) to reach the parser and get a precise message. */
#define TPM_PUBLIC_BASE64_MAX 4096

static const char *alg_name(uint16_t alg)
{
	switch (alg) {
	case TPM_ALG_RSA:
		return "RSA";
	case 0x0004:
		return "SHA1";
	case TPM_ALG_HMAC:
		return "HMAC";
	case TPM_ALG_AES:
		return "AES";
	case TPM_ALG_KEYEDHASH:
		return "KEYEDHASH";
	case 0x000A:
		return "XOR";
	case TPM_ALG_SHA256:
		return "SHA256";
	case 0x000C:
		return "SHA384";
	case 0x000D:
		return "SHA512";
	case TPM_ALG_NULL:
		return "NULL";
	case 0x0012:
		return "SM3_256";
	case 0x0023:
		return "ECC";
	case 0x0025:
		return "SYMCIPHER";
	case 0x0040:
		return "CTR";
	case 0x0041:
		return "OFB";
	case 0x0042:
		return "CBC";
	case TPM_ALG_CFB:
		return "CFB";
	case 0x0044:
		return "ECB";
	default:
		return "unknown";
	}
}

static int truncated(struct err *e, const char *field)
{
	return err_set(e, -EBADMSG, PFX "%s: truncated", field);
}

/* Read a u16 algorithm id and require one value. */
static int expect_alg(struct cursor *c, const char *field, uint16_t want, uint16_t *ret,
		      struct err *e)
{
	uint16_t v;

	if (cursor_get_u16be(c, &v) < 0)
		return truncated(e, field);
	if (v != want)
		return err_set(e, -EOPNOTSUPP, PFX "%s: expected %s (0x%04x), got %s (0x%04x)",
			       field, alg_name(want), want, alg_name(v), v);
	*ret = v;
	return 0;
}

static int parse_rsa(struct cursor *c, struct tpm_public *pub, struct err *e)
{
	const uint32_t need = TPM_PUB_ATTR_RESTRICTED | TPM_PUB_ATTR_DECRYPT;
	const uint8_t *unique;
	uint32_t exponent;
	int r;

	r = expect_alg(c, "parameters.symmetric.algorithm", TPM_ALG_AES, &pub->sym_alg, e);
	if (r < 0)
		return r;
	if (cursor_get_u16be(c, &pub->sym_key_bits) < 0)
		return truncated(e, "parameters.symmetric.keyBits");
	if (pub->sym_key_bits != 128)
		return err_set(e, -EOPNOTSUPP,
			       PFX "parameters.symmetric.keyBits: expected 128, got %u",
			       pub->sym_key_bits);
	r = expect_alg(c, "parameters.symmetric.mode", TPM_ALG_CFB, &pub->sym_mode, e);
	if (r < 0)
		return r;
	r = expect_alg(c, "parameters.scheme", TPM_ALG_NULL, &pub->scheme, e);
	if (r < 0)
		return r;
	if (cursor_get_u16be(c, &pub->key_bits) < 0)
		return truncated(e, "parameters.keyBits");
	if (pub->key_bits != 2048)
		return err_set(e, -EOPNOTSUPP, PFX "parameters.keyBits: expected 2048, got %u",
			       pub->key_bits);
	if (cursor_get_u32be(c, &exponent) < 0)
		return truncated(e, "parameters.exponent");
	if (exponent == 0)
		exponent = 65537;
	if (exponent < 3 || exponent % 2 == 0)
		return err_set(e, -EOPNOTSUPP, PFX "parameters.exponent: %u is not an RSA exponent",
			       exponent);
	pub->exponent = exponent;
	if (cursor_get_sized16(c, &unique, &pub->unique_len) < 0)
		return truncated(e, "unique");
	if (pub->unique_len != 256)
		return err_set(e, -EBADMSG, PFX "unique: %u bytes, expected a 256-byte modulus",
			       pub->unique_len);
	if (!(unique[0] & 0x80) || !(unique[255] & 1))
		return err_set(e, -EBADMSG, PFX "unique: not a 2048-bit RSA modulus");
	memcpy(pub->unique, unique, pub->unique_len);
	if ((pub->attributes & need) != need || (pub->attributes & TPM_PUB_ATTR_SIGN))
		return err_set(e, -EOPNOTSUPP,
			       PFX "objectAttributes: 0x%08x is not a restricted decryption key "
				   "(restricted and decrypt set, sign clear)",
			       pub->attributes);
	return 0;
}

static int parse_keyedhash(struct cursor *c, struct tpm_public *pub, struct err *e)
{
	const uint32_t forbid = TPM_PUB_ATTR_RESTRICTED | TPM_PUB_ATTR_DECRYPT;
	const uint8_t *unique;
	int r;

	r = expect_alg(c, "parameters.scheme", TPM_ALG_HMAC, &pub->scheme, e);
	if (r < 0)
		return r;
	r = expect_alg(c, "parameters.scheme.hashAlg", TPM_ALG_SHA256, &pub->scheme_hash, e);
	if (r < 0)
		return r;
	if (cursor_get_sized16(c, &unique, &pub->unique_len) < 0)
		return truncated(e, "unique");
	if (pub->unique_len != HASH_SHA256_LEN)
		return err_set(e, -EBADMSG, PFX "unique: %u bytes, expected %d", pub->unique_len,
			       HASH_SHA256_LEN);
	memcpy(pub->unique, unique, pub->unique_len);
	if (!(pub->attributes & TPM_PUB_ATTR_SIGN) || (pub->attributes & forbid))
		return err_set(e, -EOPNOTSUPP,
			       PFX "objectAttributes: 0x%08x is not an HMAC signing key "
				   "(sign set, restricted and decrypt clear)",
			       pub->attributes);
	return 0;
}

int tpm_public_parse(const void *data, size_t len, uint16_t want_type, struct tpm_public *ret,
		     struct err *e)
{
	struct cursor c = cursor_make(data, data ? len : 0);
	struct tpm_public pub = {0};
	const uint8_t *policy;
	uint16_t size;
	int r;

	if (cursor_get_u16be(&c, &size) < 0)
		return err_set(e, -EBADMSG, PFX "shorter than its 2-byte size");
	if (size == 0)
		return err_set(e, -EBADMSG, PFX "empty public area");
	if (size != c.left)
		return err_set(e, -EBADMSG, PFX "size %u does not match the %zu bytes that follow",
			       size, c.left);

	if (cursor_get_u16be(&c, &pub.type) < 0)
		return truncated(e, "type");
	if (pub.type != TPM_ALG_RSA && pub.type != TPM_ALG_KEYEDHASH)
		return err_set(e, -EOPNOTSUPP,
			       PFX
			       "type: expected RSA (0x0001) or KEYEDHASH (0x0008), got %s (0x%04x)",
			       alg_name(pub.type), pub.type);
	if (want_type != 0 && pub.type != want_type)
		return err_set(e, -EOPNOTSUPP, PFX "type: expected %s (0x%04x), got %s (0x%04x)",
			       alg_name(want_type), want_type, alg_name(pub.type), pub.type);
	r = expect_alg(&c, "nameAlg", TPM_ALG_SHA256, &pub.name_alg, e);
	if (r < 0)
		return r;
	if (cursor_get_u32be(&c, &pub.attributes) < 0)
		return truncated(e, "objectAttributes");
	if (cursor_get_sized16(&c, &policy, &pub.auth_policy_len) < 0)
		return truncated(e, "authPolicy");
	if (pub.auth_policy_len != 0 && pub.auth_policy_len != HASH_SHA256_LEN)
		return err_set(e, -EBADMSG, PFX "authPolicy: %u bytes, expected 0 or %d",
			       pub.auth_policy_len, HASH_SHA256_LEN);
	memcpy(pub.auth_policy, policy, pub.auth_policy_len);

	r = pub.type == TPM_ALG_RSA ? parse_rsa(&c, &pub, e) : parse_keyedhash(&c, &pub, e);
	if (r < 0)
		return r;
	if (cursor_expect_end(&c) < 0)
		return err_set(e, -EBADMSG, PFX "trailing data after unique (%zu bytes)", c.left);

	/* Every accepted layout has a fixed size of at most TPM_PUBLIC_MAX. */
	if (len > sizeof(pub.raw))
		return err_set(e, -EBADMSG, PFX "longer than %d bytes", TPM_PUBLIC_MAX);
	memcpy(pub.raw, data, len);
	pub.raw_len = len;
	*ret = pub;
	return 0;
}

int tpm_public_parse_base64(const char *text, uint16_t want_type, struct tpm_public *ret,
			    struct err *e)
{
	_cleanup_buf_ struct buf bin = {0};
	size_t bad = 0;
	int r;

	buf_init(&bin, TPM_PUBLIC_BASE64_MAX);
	r = base64_decode(&bin, text ? text : "", text ? strlen(text) : 0, B64_STANDARD, &bad);
	if (r == -EINVAL)
		return err_set(e, -EBADMSG, PFX "not valid base64 (at offset %zu)", bad);
	if (r == -E2BIG)
		return err_set(e, -EBADMSG, PFX "longer than %d bytes", TPM_PUBLIC_BASE64_MAX);
	if (r < 0)
		return r;
	return tpm_public_parse(bin.data, bin.len, want_type, ret, e);
}

int tpm_public_name(const struct tpm_public *pub, uint8_t ret_name[TPM_NAME_LEN])
{
	if (pub->raw_len <= 2)
		return -EINVAL;
	ret_name[0] = TPM_ALG_SHA256 >> 8;
	ret_name[1] = TPM_ALG_SHA256 & 0xff;
	return hash_sha256(pub->raw + 2, pub->raw_len - 2, ret_name + 2);
}

int tpm_public_registration_id_hex(const struct tpm_public *pub, struct buf *ret)
{
	uint8_t digest[HASH_SHA256_LEN];
	int r;

	r = hash_sha256(pub->raw, pub->raw_len, digest);
	if (r < 0)
		return r;
	return hex_encode(ret, digest, sizeof(digest));
}

int tpm_public_registration_id_base32(const struct tpm_public *pub, struct buf *ret)
{
	uint8_t digest[HASH_SHA256_LEN];
	int r;

	r = hash_sha256(pub->raw, pub->raw_len, digest);
	if (r < 0)
		return r;
	return base32_encode(ret, digest, sizeof(digest), B32_LOWER | B32_NO_PAD);
}

int tpm_public_to_pkey(const struct tpm_public *pub, EVP_PKEY **ret)
{
	_cleanup_(BN_freep) BIGNUM *n = NULL;
	_cleanup_(BN_freep) BIGNUM *exp = NULL;
	_cleanup_(OSSL_PARAM_BLD_freep) OSSL_PARAM_BLD *bld = NULL;
	_cleanup_(OSSL_PARAM_freep) OSSL_PARAM *params = NULL;
	_cleanup_(EVP_PKEY_CTX_freep) EVP_PKEY_CTX *ctx = NULL;
	EVP_PKEY *pkey = NULL;

	if (pub->type != TPM_ALG_RSA || pub->unique_len == 0)
		return -EINVAL;
	n = BN_bin2bn(pub->unique, pub->unique_len, NULL);
	exp = BN_new();
	if (!n || !exp || BN_set_word(exp, pub->exponent) != 1)
		return hash_ssl_error("RSA public key numbers");
	bld = OSSL_PARAM_BLD_new();
	if (!bld || OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) != 1 ||
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, exp) != 1)
		return hash_ssl_error("RSA public key parameters");
	params = OSSL_PARAM_BLD_to_param(bld);
	ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
	if (!params || !ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
		return hash_ssl_error("EVP_PKEY_fromdata(RSA)");
	*ret = pkey;
	return 0;
}

bool tpm_public_same_key(const struct tpm_public *a, const struct tpm_public *b)
{
	if (a->type != b->type || a->unique_len != b->unique_len || a->unique_len == 0)
		return false;
	if (a->type == TPM_ALG_RSA && a->exponent != b->exponent)
		return false;
	return memcmp(a->unique, b->unique, a->unique_len) == 0;
}
