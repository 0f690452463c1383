/* SPDX-License-Identifier: MIT */
/*
 * TPM public areas and the DPS authentication-key blob. The blob tests
 * play the TPM in software: they generate the EK and SRK key pairs, build
 * a blob, then undo every layer with the private keys and a second,
 * independent KDFa, and check that the HMAC key comes out unchanged.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/rsa.h>

#include "common/buf.h"
#include "common/encode.h"
#include "crypto/tpm_blob.h"
#include "crypto/tpm_public.h"

/* The EK of the Azure Node SDK's provisioning e2e tests (316 bytes), and
 * its registration ids (dps-protocol.md §3.2). */
static const char node_ek_b64[] =
    "AToAAQALAAMAsgAgg3GXZ0SEs/gakMyNRqXXJP1S124GUgtk8qHaGzMUaaoABgCAAEMAEAgAAAAAAAEAtKEADl/sNRgm"
    "YAjP6gXmbccRaJoTnVixisUaek0OwAzFGN70xt9ZOYp6fhIwfcft3fdVKOrKpXYcTe72CGNkGJGlQz5ti9n2pQ0uJhcX"
    "8aefh4Onm7lVlUCQAVp1K0r6zI8vkEXWsBIvwvxk0eMJbFaq146kbTkJHIGczb89RkFH2TX+CgXeZOG9oXQzUNwktmTU"
    "acspamune5Wywc/ce8HsDFYchyUHogFhrZ/LPnzyTDXO8sSC5z5dvsUBtUME3iRYDyKgZOfBtmRMqQewD+4iH+ZEJjts"
    "yJiWR8hFhyKROnOuqXfNFwjd5IcNU4wtlKO0cLyXmTOfQK6Da1pr5Q==";
#define NODE_EK_REGID_HEX "c76c8a944842848256ad905ea3e4403d99c11e99bfabc3b60d5c0b2d9525f46e"
#define NODE_EK_REGID_B32 "y5wivfciikcievvnsbpkhzcahwm4chuzx6v4hnqnlqfs3fjf6rxa"
/* 000b || sha256 of the file without its first two bytes (coreutils). */
#define NODE_EK_NAME "000b9a97017ebea04c4918bae042bd49ac97449f5dfef060d27b0f748767b4220bc4"

/* An SRK as a Java SDK sample request sends it (284 bytes, attributes
 * 0x00030472, empty authPolicy). */
static const char java_srk_b64[] =
    "ARoAAQALAAMEcgAAAAYAgABDABAIAAAAAAABAOtkhwZsvTyGIda0EjHC88xtr/fRzS21rxDkqNkqILJxzwEnQIQJaEtq"
    "ezc+dvxDQP7ANLMtEzdrK8AyYz7DQ5wSoypbj8KOdeOltff/bH61SxkcJ2HszJjF9nEFkDRxY6ikUU7pGJ5D/VvtidPJ"
    "kh53nbRPyirsU69qIQIF6vCPd9TlYSYLMUu1H4qh3ER+vP5h59iMd4qLrvseta4o9gmOxE6oLHTQoojnoiIAKGPGAedq"
    "PsAaPJ2bjTHVJDkfmvKc1VqJIgaC8HC3YD/g56EP4Ppe53e45BckumbusvPfFLC/WsZ1lOFEVVXb4nyFpDm/myG+PwhnW"
    "CLTMjJ6w10=";
#define JAVA_SRK_NAME "000b92be486ae13a7e4b0d24bba7c631a50850c577b09085584234018026309dd32f"

/* A blob real DPS sent (920 bytes; quoted in the Java SDK's
 * RegisterResponseTPMParser). */
static const char dps_blob_b64[] =
    "ADQAIEIaHWyoUFwtwzRFtc/SrcYFlCat3n3kzQwndE58WWwnu7LYeOBURNP25cw63wJ2E0+PAQAhLOL+j81LidbaSuhc"
    "+TvWK5mdrTgzJdBgeHxGgRG+hrxRoiOnx6kMyNlqRi2DEsSRauAbCbs+XZwVLN44+inuS+KTshLtMNlobz/ewF0TAo0v"
    "huU4hmKVToaQ/hcFrRgDOJ+8jp/dApYn4miVnJAhYxwfPR/c2lIQXMN++VOoOkcXTbfj1xaAw62tGJuVP2OHk8P+pacT"
    "N+FVICmIEOW7VPuzYqyjjMaPMmAbeq1O7kizzBGC8jJ1D1vf1ZzeikyTy3/eXf/LSCm4yNfWR9/TNN+Xl33pkavSGm0s"
    "bosxox1VhgZqScMZyPAPY+iV/Am9iGtOy5jPF/3ZTIHbRsuvAI4AIBx+6ufIGZuFjfPAVpP2ekjyhmxjegXsGR9dTFWo"
    "t++Q4/GVq4YI683bqojkyPO8X/H3z4yGGd9aPZMgT7Z211cPpVlq7ki7GAL3fWVdodw41GqjYsGL9Nn3n27W6djiIQAx"
    "kiu6jRvIW26QZYPjGgr1ZC4MDkV+aO1GKCotU43mFZs0jUFZ9D4qAlyrAQBZ/AwCB4F3YmncQTCp764BnVjGI/Xo4wTn"
    "+EMOU/VckvgV1xkHBp2IJHj586+BEGYjyTFdPeTkymD9ASGTX7mFCjGgwn8ArwREcT5Kxv6AF4hQINeR1ixZ4cL5GMtt"
    "XIbDO/WygHjQqefhk3+17Zbv11dopSRhvO0dPF/+wQXml+0C62I3qtNcOco/fWyZiql2WQBbV2tuGChxfrXXkvGYPtiI"
    "1kzWrZUf9u8Wsv45q0KX5DbINqgqJ2vgAjvNBe35TR1sEoQBd0A+TPcVS2BeBQEVA01NjaRlijs88woCLe2BUwd5XEiM"
    "gDsrHVo8YRozOGs68AnP8nhAVqlMLyzbADAACAALAAQEQAAAAAUACwAgF9L3I1ZVCByjzEOGfp4w4tCGYYLxv1ZGb/Xl"
    "+whFEi0AmlJeuO9LZSq3XV2hZGBUfRdkNpfckWlZaY9bLkpJs6vse0VUb8Pu7czw56/kD0Fmrfpmwulo6ZtUlyuZGX0J"
    "9ETbYF7XHqTVxt5kyj4Fj67ttpz3B/RmToeTgjDNj5tdHKEtW2gruKz9zuE3qn+mHJhg/PhYGLPQ1h1UpGJd/2mZzLy7"
    "jD0M/tExrO+bXVF607AzrzDONRXnMRY=";

/* PolicySecret(TPM_RH_ENDORSEMENT), the EK templates' authPolicy. */
static const uint8_t ek_policy[32] = {
    0x83, 0x71, 0x97, 0x67, 0x44, 0x84, 0xb3, 0xf8, 0x1a, 0x90, 0xcc, 0x8d, 0x46, 0xa5, 0xd7, 0x24,
    0xfd, 0x52, 0xd7, 0x6e, 0x06, 0x52, 0x0b, 0x64, 0xf2, 0xa1, 0xda, 0x1b, 0x33, 0x14, 0x69, 0xaa,
};

DEFINE_CLEANUP_FUNC(EVP_PKEY *, EVP_PKEY_free)

static size_t decode_b64(const char *b64, uint8_t *out, size_t max)
{
	_cleanup_buf_ struct buf b = {0};

	buf_init(&b, max);
	assert_int_equal(base64_decode(&b, b64, strlen(b64), B64_STANDARD, NULL), 0);
	memcpy(out, b.data, b.len);
	return b.len;
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static void hex_of(const uint8_t *p, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * n] = '\0';
}

/* ---- tpm_public ---------------------------------------------------- */

static void test_public_node_ek(void **state)
{
	uint8_t raw[400], name[TPM_NAME_LEN];
	char name_hex[2 * TPM_NAME_LEN + 1];
	size_t len = decode_b64(node_ek_b64, raw, sizeof(raw));
	_cleanup_buf_ struct buf id = {0};
	struct tpm_public pub;
	struct err e = {0};

	(void)state;
	assert_int_equal(len, 316);
	assert_int_equal(tpm_public_parse(raw, len, TPM_ALG_RSA, &pub, &e), 0);
	assert_int_equal(pub.type, TPM_ALG_RSA);
	assert_int_equal(pub.name_alg, TPM_ALG_SHA256);
	assert_int_equal(pub.attributes, 0x000300B2);
	assert_int_equal(pub.auth_policy_len, 32);
	assert_memory_equal(pub.auth_policy, ek_policy, 32);
	assert_int_equal(pub.sym_alg, TPM_ALG_AES);
	assert_int_equal(pub.sym_key_bits, 128);
	assert_int_equal(pub.sym_mode, TPM_ALG_CFB);
	assert_int_equal(pub.scheme, TPM_ALG_NULL);
	assert_int_equal(pub.key_bits, 2048);
	assert_int_equal(pub.exponent, 65537);
	assert_int_equal(pub.unique_len, 256);
	assert_memory_equal(pub.unique, raw + 60, 256);
	assert_int_equal(pub.raw_len, 316);
	assert_memory_equal(pub.raw, raw, 316);

	assert_int_equal(tpm_public_name(&pub, name), 0);
	hex_of(name, sizeof(name), name_hex);
	assert_string_equal(name_hex, NODE_EK_NAME);

	buf_init(&id, 0);
	assert_int_equal(tpm_public_registration_id_hex(&pub, &id), 0);
	assert_string_equal(buf_str(&id), NODE_EK_REGID_HEX);
	assert_int_equal(id.len, TPM_REGID_HEX_LEN);
	buf_reset(&id);
	assert_int_equal(tpm_public_registration_id_base32(&pub, &id), 0);
	assert_string_equal(buf_str(&id), NODE_EK_REGID_B32);
	assert_int_equal(id.len, TPM_REGID_BASE32_LEN);

	/* The same from base64, and with "either type". */
	memset(&pub, 0, sizeof(pub));
	assert_int_equal(tpm_public_parse_base64(node_ek_b64, 0, &pub, &e), 0);
	assert_int_equal(pub.raw_len, 316);
}

static void test_public_java_srk(void **state)
{
	uint8_t name[TPM_NAME_LEN];
	char name_hex[2 * TPM_NAME_LEN + 1];
	struct tpm_public pub;
	struct err e = {0};

	(void)state;
	assert_int_equal(tpm_public_parse_base64(java_srk_b64, TPM_ALG_RSA, &pub, &e), 0);
	assert_int_equal(pub.raw_len, 284);
	assert_int_equal(pub.attributes, 0x00030472);
	assert_int_equal(pub.auth_policy_len, 0);
	assert_int_equal(pub.exponent, 65537);
	assert_int_equal(tpm_public_name(&pub, name), 0);
	hex_of(name, sizeof(name), name_hex);
	assert_string_equal(name_hex, JAVA_SRK_NAME);
}

static void test_public_pkey_and_equality(void **state)
{
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *pkey = NULL;
	uint8_t raw[400], n_bin[256];
	size_t len = decode_b64(node_ek_b64, raw, sizeof(raw));
	struct tpm_public ek, ek65537, srk;
	BIGNUM *n = NULL, *ex = NULL;
	struct err e = {0};

	(void)state;
	assert_int_equal(tpm_public_parse(raw, len, TPM_ALG_RSA, &ek, &e), 0);
	assert_int_equal(tpm_public_to_pkey(&ek, &pkey), 0);
	assert_int_equal(EVP_PKEY_get_bits(pkey), 2048);
	assert_int_equal(EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_N, &n), 1);
	assert_int_equal(EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_E, &ex), 1);
	assert_int_equal(BN_bn2binpad(n, n_bin, sizeof(n_bin)), 256);
	assert_memory_equal(n_bin, raw + 60, 256);
	assert_true(BN_is_word(ex, 65537));
	BN_free(n);
	BN_free(ex);

	/* The same key with the exponent spelled out: equal. */
	raw[54] = 0x00, raw[55] = 0x01, raw[56] = 0x00, raw[57] = 0x01;
	assert_int_equal(tpm_public_parse(raw, len, TPM_ALG_RSA, &ek65537, &e), 0);
	assert_int_equal(ek65537.exponent, 65537);
	assert_true(tpm_public_same_key(&ek, &ek65537));
	/* Another modulus: different. */
	raw[100] ^= 1;
	assert_int_equal(tpm_public_parse(raw, len, TPM_ALG_RSA, &ek65537, &e), 0);
	assert_false(tpm_public_same_key(&ek, &ek65537));
	assert_int_equal(tpm_public_parse_base64(java_srk_b64, TPM_ALG_RSA, &srk, &e), 0);
	assert_false(tpm_public_same_key(&ek, &srk));
	assert_true(tpm_public_same_key(&srk, &srk));
}

/* A mutation of the Node EK and the exact result it must produce. */
struct mutation {
	size_t offset; /* where to write */
	uint8_t bytes[4];
	size_t n;
	int code;
	const char *msg;
};

static void test_public_rejections(void **state)
{
	static const struct mutation cases[] = {
	    {2,
	     {0x00, 0x23},
	     2,
	     -EOPNOTSUPP,
	     "TPM2B_PUBLIC: type: expected RSA (0x0001) or KEYEDHASH (0x0008), got ECC (0x0023)"},
	    {4,
	     {0x00, 0x04},
	     2,
	     -EOPNOTSUPP,
	     "TPM2B_PUBLIC: nameAlg: expected SHA256 (0x000b), got SHA1 (0x0004)"},
	    {8, {0x00, 0xb2 | 0x04}, 2, 0, NULL}, /* stClear: still fine */
	    {7,
	     {0x07},
	     1,
	     -EOPNOTSUPP,
	     "TPM2B_PUBLIC: objectAttributes: 0x000700b2 is not a restricted decryption key "
	     "(restricted and decrypt set, sign clear)"},
	    {7,
	     {0x02},
	     1,
	     -EOPNOTSUPP,
	     "TPM2B_PUBLIC: objectAttributes: 0x000200b2 is not a restricted decryption key "
	     "(restricted and decrypt set, sign clear)"},
	    {10, {0x00, 0x14}, 2, -EBADMSG, "TPM2B_PUBLIC: authPolicy: 20 bytes, expected 0 or 32"},
	    {44,
	     {0x00, 0x10},
	     2,
	     -EOPNOTSUPP,
	     "TPM2B_PUBLIC: parameters.symmetric.algorithm: expected AES (0x0006), got NULL "
	     "(0x0010)"},
	    {46,
	     {0x01, 0x00},
	     2,
	     -EOPNOTSUPP,
	     "TPM2B_PUBLIC: parameters.symmetric.keyBits: expected 128, got 256"},
	    {48,
	     {0x00, 0x42},
	     2,
	     -EOPNOTSUPP,
	     "TPM2B_PUBLIC: parameters.symmetric.mode: expected CFB (0x0043), got CBC (0x0042)"},
	    {50,
	     {0x00, 0x17},
	     2,
	     -EOPNOTSUPP,
	     "TPM2B_PUBLIC: parameters.scheme: expected NULL (0x0010), got unknown (0x0017)"},
	    {52,
	     {0x0c, 0x00},
	     2,
	     -EOPNOTSUPP,
	     "TPM2B_PUBLIC: parameters.keyBits: expected 2048, got 3072"},
	    {54,
	     {0, 0, 0, 2},
	     4,
	     -EOPNOTSUPP,
	     "TPM2B_PUBLIC: parameters.exponent: 2 is not an RSA exponent"},
	    {58,
	     {0x00, 0xff},
	     2,
	     -EBADMSG,
	     "TPM2B_PUBLIC: unique: 255 bytes, expected a 256-byte modulus"},
	    {58, {0x01, 0x01}, 2, -EBADMSG, "TPM2B_PUBLIC: unique: truncated"},
	    {60, {0x00}, 1, -EBADMSG, "TPM2B_PUBLIC: unique: not a 2048-bit RSA modulus"},
	    {315, {0xe4}, 1, -EBADMSG, "TPM2B_PUBLIC: unique: not a 2048-bit RSA modulus"},
	    {0,
	     {0x01, 0x3b},
	     2,
	     -EBADMSG,
	     "TPM2B_PUBLIC: size 315 does not match the 314 bytes that follow"},
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		uint8_t raw[400];
		size_t len = decode_b64(node_ek_b64, raw, sizeof(raw));
		struct tpm_public pub;
		struct err e = {0};
		int r;

		memcpy(raw + cases[i].offset, cases[i].bytes, cases[i].n);
		r = tpm_public_parse(raw, len, 0, &pub, &e);
		if (!cases[i].msg) {
			assert_int_equal(r, 0);
			continue;
		}
		if (r != cases[i].code || !streq(e.msg, cases[i].msg))
			print_error("case %zu: %d %s\n", i, r, e.msg);
		assert_int_equal(r, cases[i].code);
		assert_string_equal(e.msg, cases[i].msg);
	}
}

static void test_public_sizes(void **state)
{
	uint8_t raw[400];
	size_t len = decode_b64(node_ek_b64, raw, sizeof(raw));
	struct tpm_public pub;
	struct err e = {0};

	(void)state;
	assert_int_equal(tpm_public_parse(raw, len - 1, 0, &pub, &e), -EBADMSG);
	assert_string_equal(e.msg,
			    "TPM2B_PUBLIC: size 314 does not match the 313 bytes that follow");
	err_clear(&e);
	raw[len] = 0;
	assert_int_equal(tpm_public_parse(raw, len + 1, 0, &pub, &e), -EBADMSG);
	assert_string_equal(e.msg,
			    "TPM2B_PUBLIC: size 314 does not match the 315 bytes that follow");
	/* A consistent size with a byte after the modulus. */
	err_clear(&e);
	put16(raw, 315);
	assert_int_equal(tpm_public_parse(raw, len + 1, 0, &pub, &e), -EBADMSG);
	assert_string_equal(e.msg, "TPM2B_PUBLIC: trailing data after unique (1 bytes)");
	/* A size that stops inside a field. */
	err_clear(&e);
	put16(raw, 5);
	assert_int_equal(tpm_public_parse(raw, 7, 0, &pub, &e), -EBADMSG);
	assert_string_equal(e.msg, "TPM2B_PUBLIC: objectAttributes: truncated");
	err_clear(&e);
	assert_int_equal(tpm_public_parse(raw, 1, 0, &pub, &e), -EBADMSG);
	assert_string_equal(e.msg, "TPM2B_PUBLIC: shorter than its 2-byte size");
	err_clear(&e);
	assert_int_equal(tpm_public_parse((const uint8_t *)"\0\0", 2, 0, &pub, &e), -EBADMSG);
	assert_string_equal(e.msg, "TPM2B_PUBLIC: empty public area");
	err_clear(&e);
	assert_int_equal(tpm_public_parse(NULL, 0, 0, &pub, &e), -EBADMSG);

	/* Wrong kind for the caller. */
	err_clear(&e);
	assert_int_equal(tpm_public_parse_base64(node_ek_b64, TPM_ALG_KEYEDHASH, &pub, &e),
			 -EOPNOTSUPP);
	assert_string_equal(e.msg,
			    "TPM2B_PUBLIC: type: expected KEYEDHASH (0x0008), got RSA (0x0001)");
	/* Not base64. */
	err_clear(&e);
	assert_int_equal(tpm_public_parse_base64("AToA*QAL", 0, &pub, &e), -EBADMSG);
	assert_string_equal(e.msg, "TPM2B_PUBLIC: not valid base64 (at offset 4)");
	/* An ECC P-256 EK (tpm-identity.md §3.1) is refused by type. */
	err_clear(&e);
	{
		uint8_t ecc[124] = {0x00, 0x7a, 0x00, 0x23, 0x00, 0x0b, 0x00, 0x03, 0x00, 0xb2};

		assert_int_equal(tpm_public_parse(ecc, sizeof(ecc), 0, &pub, &e), -EOPNOTSUPP);
		assert_string_equal(e.msg, "TPM2B_PUBLIC: type: expected RSA (0x0001) or KEYEDHASH "
					   "(0x0008), got ECC (0x0023)");
	}
}

/* ---- KDFa ----------------------------------------------------------- */

/* The straightforward reading of the definition, with HMAC(). */
static void kdfa_reference(const uint8_t *key, size_t key_len, const char *label, const uint8_t *u,
			   size_t u_len, const uint8_t *v, size_t v_len, size_t bits, uint8_t *out)
{
	uint8_t msg[512], block[32];
	size_t label_len = strlen(label) + 1, done = 0;

	for (uint32_t i = 1; done < bits / 8; i++) {
		size_t n = 0, take;
		unsigned int block_len = 0;

		msg[n++] = (uint8_t)(i >> 24), msg[n++] = (uint8_t)(i >> 16);
		msg[n++] = (uint8_t)(i >> 8), msg[n++] = (uint8_t)i;
		memcpy(msg + n, label, label_len), n += label_len;
		if (u_len > 0)
			memcpy(msg + n, u, u_len), n += u_len;
		if (v_len > 0)
			memcpy(msg + n, v, v_len), n += v_len;
		msg[n++] = (uint8_t)(bits >> 24), msg[n++] = (uint8_t)(bits >> 16);
		msg[n++] = (uint8_t)(bits >> 8), msg[n++] = (uint8_t)bits;
		assert_non_null(HMAC(EVP_sha256(), key, (int)key_len, msg, n, block, &block_len));
		take = bits / 8 - done < 32 ? bits / 8 - done : 32;
		memcpy(out + done, block, take);
		done += take;
	}
}

/* OpenSSL's SP800-108 counter-mode KBKDF: label || 0x00 || context || L. */
static void kdfa_openssl(const uint8_t *key, size_t key_len, const char *label, const uint8_t *ctx,
			 size_t ctx_len, size_t bits, uint8_t *out)
{
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "KBKDF", NULL);
	EVP_KDF_CTX *kctx = EVP_KDF_CTX_new(kdf);
	OSSL_PARAM params[] = {
	    OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_MODE, (char *)"counter", 0),
	    OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_MAC, (char *)"HMAC", 0),
	    OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0),
	    OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)key, key_len),
	    OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)label, strlen(label)),
	    OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)ctx, ctx_len),
	    OSSL_PARAM_construct_end(),
	};

	assert_non_null(kctx);
	assert_int_equal(EVP_KDF_derive(kctx, out, bits / 8, params), 1);
	EVP_KDF_CTX_free(kctx);
	EVP_KDF_free(kdf);
}

static void test_kdfa(void **state)
{
	static const size_t sizes[] = {8, 128, 256, 264, 520, 1024};
	uint8_t key[32], u[34], v[7];

	(void)state;
	for (size_t i = 0; i < sizeof(key); i++)
		key[i] = (uint8_t)(i * 7 + 1);
	for (size_t i = 0; i < sizeof(u); i++)
		u[i] = (uint8_t)(0xa0 + i);
	memcpy(v, "context", sizeof(v));

	for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
		uint8_t got[128], ref[128], ossl[128], uv[sizeof(u) + sizeof(v)];
		size_t n = sizes[i] / 8;

		memcpy(uv, u, sizeof(u));
		memcpy(uv + sizeof(u), v, sizeof(v));
		assert_int_equal(tpm_kdfa_sha256(key, sizeof(key), "STORAGE", u, sizeof(u), v,
						 sizeof(v), sizes[i], got),
				 0);
		kdfa_reference(key, sizeof(key), "STORAGE", u, sizeof(u), v, sizeof(v), sizes[i],
			       ref);
		kdfa_openssl(key, sizeof(key), "STORAGE", uv, sizeof(uv), sizes[i], ossl);
		assert_memory_equal(got, ref, n);
		assert_memory_equal(got, ossl, n);

		/* Empty contexts, as for the INTEGRITY key. */
		assert_int_equal(
		    tpm_kdfa_sha256(key, sizeof(key), "INTEGRITY", NULL, 0, NULL, 0, sizes[i], got),
		    0);
		kdfa_reference(key, sizeof(key), "INTEGRITY", NULL, 0, NULL, 0, sizes[i], ref);
		kdfa_openssl(key, sizeof(key), "INTEGRITY", NULL, 0, sizes[i], ossl);
		assert_memory_equal(got, ref, n);
		assert_memory_equal(got, ossl, n);
	}
	/* The length is part of the input: a 128-bit key is not a prefix of a
	 * 256-bit one. */
	{
		uint8_t k128[16], k256[32];

		assert_int_equal(tpm_kdfa_sha256(key, 32, "X", NULL, 0, NULL, 0, 128, k128), 0);
		assert_int_equal(tpm_kdfa_sha256(key, 32, "X", NULL, 0, NULL, 0, 256, k256), 0);
		assert_memory_not_equal(k128, k256, 16);
	}
	assert_int_equal(tpm_kdfa_sha256(key, 32, "X", NULL, 0, NULL, 0, 0, u), -EINVAL);
	assert_int_equal(tpm_kdfa_sha256(key, 32, "X", NULL, 0, NULL, 0, 12, u), -EINVAL);
	assert_int_equal(tpm_kdfa_sha256(key, 32, NULL, NULL, 0, NULL, 0, 128, u), -EINVAL);
}

/* ---- blob ----------------------------------------------------------- */

static void test_blob_parse_dps_sample(void **state)
{
	uint8_t raw[1024];
	size_t len = decode_b64(dps_blob_b64, raw, sizeof(raw));
	struct tpm_blob b;
	struct tpm_public id;
	struct err e = {0};

	(void)state;
	assert_int_equal(len, 920);
	assert_int_equal(tpm_blob_parse(raw, len, &b, &e), 0);
	assert_int_equal(b.id_object.size, 52);
	assert_int_equal(b.secret.size, 256);
	assert_int_equal(b.duplicate.size, 142);
	assert_int_equal(b.in_sym_seed.size, 256);
	assert_int_equal(b.id_public.size, 48);
	assert_int_equal(b.enc_uri.size, 154);
	assert_ptr_equal(b.id_object.tpm2b, raw);
	assert_ptr_equal(b.id_object.data, raw + 2);
	assert_ptr_equal(b.secret.tpm2b, raw + 54);
	assert_int_equal(b.secret.tpm2b_len, 258);
	assert_ptr_equal(b.enc_uri.data + b.enc_uri.size, raw + len);

	assert_int_equal(
	    tpm_public_parse(b.id_public.tpm2b, b.id_public.tpm2b_len, TPM_ALG_KEYEDHASH, &id, &e),
	    0);
	assert_int_equal(id.attributes, 0x00040440);
	assert_int_equal(id.auth_policy_len, 0);
	assert_int_equal(id.scheme, TPM_ALG_HMAC);
	assert_int_equal(id.scheme_hash, TPM_ALG_SHA256);
	assert_int_equal(id.unique_len, 32);
}

static void test_blob_parse_rejections(void **state)
{
	uint8_t raw[1024];
	size_t len = decode_b64(dps_blob_b64, raw, sizeof(raw));
	struct tpm_blob b;
	struct err e = {0};

	(void)state;
	assert_int_equal(tpm_blob_parse(raw, len - 1, &b, &e), -EBADMSG);
	assert_string_equal(e.msg, "authentication key blob: item 6 (encUri): truncated");
	err_clear(&e);
	assert_int_equal(tpm_blob_parse(raw, 100, &b, &e), -EBADMSG);
	assert_string_equal(e.msg, "authentication key blob: item 2 (secret): truncated");
	err_clear(&e);
	raw[len] = 0;
	assert_int_equal(tpm_blob_parse(raw, len + 1, &b, &e), -EBADMSG);
	assert_string_equal(e.msg, "authentication key blob: trailing data after item 6 (1 bytes)");

	/* A 31-byte integrity HMAC in item 1. */
	err_clear(&e);
	raw[3] = 31;
	assert_int_equal(tpm_blob_parse(raw, len, &b, &e), -EBADMSG);
	assert_string_equal(e.msg, "authentication key blob: item 1 (credentialBlob): integrity "
				   "HMAC is 31 bytes, expected 32");
	raw[3] = 32;

	/* The ID key turned into an RSA key: item 5 starts at 54+258+144+258. */
	err_clear(&e);
	assert_int_equal(get16(raw + 714), 48);
	raw[717] = 0x01;
	assert_int_equal(tpm_blob_parse(raw, len, &b, &e), -EOPNOTSUPP);
	assert_string_equal(e.msg,
			    "authentication key blob: item 5 (idKeyPub): TPM2B_PUBLIC: type: "
			    "expected KEYEDHASH (0x0008), got RSA (0x0001)");
	raw[717] = 0x08;

	/* An empty ID object (the Node client would crash on it). */
	err_clear(&e);
	{
		uint8_t small[64] = {0};

		/* Six empty items. */
		assert_int_equal(tpm_blob_parse(small, 12, &b, &e), -EBADMSG);
		assert_string_equal(e.msg,
				    "authentication key blob: item 1 (credentialBlob): empty");
	}
	err_clear(&e);
	assert_int_equal(tpm_blob_parse(raw, len, &b, &e), 0);
}

/* A TPM2B_PUBLIC for an RSA key pair, with the EK or SRK template. */
static void marshal_rsa(EVP_PKEY *pkey, bool ek, uint8_t *out, size_t *ret_len)
{
	BIGNUM *n = NULL;
	size_t p = 2;

	put16(out + p, TPM_ALG_RSA), p += 2;
	put16(out + p, TPM_ALG_SHA256), p += 2;
	out[p++] = 0x00, out[p++] = 0x03, out[p++] = ek ? 0x00 : 0x04, out[p++] = ek ? 0xb2 : 0x72;
	put16(out + p, ek ? 32 : 0), p += 2;
	if (ek)
		memcpy(out + p, ek_policy, 32), p += 32;
	put16(out + p, TPM_ALG_AES), p += 2;
	put16(out + p, 128), p += 2;
	put16(out + p, TPM_ALG_CFB), p += 2;
	put16(out + p, TPM_ALG_NULL), p += 2;
	put16(out + p, 2048), p += 2;
	memset(out + p, 0, 4), p += 4;
	put16(out + p, 256), p += 2;
	assert_int_equal(EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_N, &n), 1);
	assert_int_equal(BN_bn2binpad(n, out + p, 256), 256);
	p += 256;
	BN_free(n);
	put16(out, (uint16_t)(p - 2));
	*ret_len = p;
}

struct soft_tpm {
	EVP_PKEY *ek_key, *srk_key;
	struct tpm_public ek, srk;
};

static int soft_tpm_setup(void **state)
{
	struct soft_tpm *t = calloc(1, sizeof(*t));
	uint8_t raw[400];
	size_t len;
	struct err e = {0};

	assert_non_null(t);
	t->ek_key = EVP_RSA_gen(2048);
	t->srk_key = EVP_RSA_gen(2048);
	assert_non_null(t->ek_key);
	assert_non_null(t->srk_key);
	marshal_rsa(t->ek_key, true, raw, &len);
	assert_int_equal(len, 316);
	assert_int_equal(tpm_public_parse(raw, len, TPM_ALG_RSA, &t->ek, &e), 0);
	marshal_rsa(t->srk_key, false, raw, &len);
	assert_int_equal(len, 284);
	assert_int_equal(tpm_public_parse(raw, len, TPM_ALG_RSA, &t->srk, &e), 0);
	*state = t;
	return 0;
}

static int soft_tpm_teardown(void **state)
{
	struct soft_tpm *t = *state;

	EVP_PKEY_free(t->ek_key);
	EVP_PKEY_free(t->srk_key);
	free(t);
	return 0;
}

/* RSA-OAEP-SHA256 decryption with a label; returns the plaintext length or
 * -1 when the TPM would refuse it. */
static int oaep_decrypt(EVP_PKEY *key, const char *label, const uint8_t *in, size_t in_len,
			uint8_t *out, size_t out_max)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);
	unsigned char *l = OPENSSL_memdup(label, strlen(label) + 1);
	size_t out_len = out_max;
	int ok;

	assert_non_null(ctx);
	assert_int_equal(EVP_PKEY_decrypt_init(ctx), 1);
	assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING), 1);
	assert_int_equal(EVP_PKEY_CTX_set_rsa_oaep_md(ctx, EVP_sha256()), 1);
	assert_int_equal(EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, EVP_sha256()), 1);
	assert_int_equal(EVP_PKEY_CTX_set0_rsa_oaep_label(ctx, l, (int)strlen(label) + 1), 1);
	ok = EVP_PKEY_decrypt(ctx, out, &out_len, in, in_len);
	EVP_PKEY_CTX_free(ctx);
	return ok == 1 ? (int)out_len : -1;
}

static void cfb_decrypt(const uint8_t key[16], const uint8_t *in, size_t len, uint8_t *out)
{
	static const uint8_t iv[16];
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int n = 0, fin = 0;

	if (len == 0)
		return;
	assert_int_equal(EVP_DecryptInit_ex(ctx, EVP_aes_128_cfb128(), NULL, key, iv), 1);
	assert_int_equal(EVP_DecryptUpdate(ctx, out, &n, in, (int)len), 1);
	assert_int_equal(EVP_DecryptFinal_ex(ctx, out + n, &fin), 1);
	assert_int_equal(n + fin, (int)len);
	EVP_CIPHER_CTX_free(ctx);
}

static void sha256(const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len, uint8_t out[32])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	assert_int_equal(EVP_DigestInit_ex(ctx, EVP_sha256(), NULL), 1);
	assert_int_equal(EVP_DigestUpdate(ctx, a, a_len), 1);
	assert_int_equal(EVP_DigestUpdate(ctx, b, b_len), 1);
	assert_int_equal(EVP_DigestFinal_ex(ctx, out, NULL), 1);
	EVP_MD_CTX_free(ctx);
}

static void hmac2(const uint8_t key[32], const uint8_t *a, size_t a_len, const uint8_t *b,
		  size_t b_len, uint8_t out[32])
{
	uint8_t msg[512];
	unsigned int len = 0;

	assert_true(a_len + b_len <= sizeof(msg));
	memcpy(msg, a, a_len);
	memcpy(msg + a_len, b, b_len);
	assert_non_null(HMAC(EVP_sha256(), key, 32, msg, a_len + b_len, out, &len));
}

/* What ActivateCredential does: recover the inner key from items 1-2, given
 * the Name of the credentialed object. Returns false where the TPM would
 * fail. */
static bool soft_activate(EVP_PKEY *ek_key, const uint8_t name[TPM_NAME_LEN],
			  const struct tpm_blob *b, uint8_t inner[16])
{
	uint8_t seed[256], sym[16], hk[32], mac[32], plain[64];
	const uint8_t *enc = b->id_object.data + 34;
	size_t enc_len = b->id_object.size - 34u;

	if (oaep_decrypt(ek_key, "IDENTITY", b->secret.data, b->secret.size, seed, sizeof(seed)) !=
	    32)
		return false;
	kdfa_reference(seed, 32, "INTEGRITY", NULL, 0, NULL, 0, 256, hk);
	hmac2(hk, enc, enc_len, name, TPM_NAME_LEN, mac);
	if (get16(b->id_object.data) != 32 || memcmp(mac, b->id_object.data + 2, 32) != 0)
		return false;
	kdfa_reference(seed, 32, "STORAGE", name, TPM_NAME_LEN, NULL, 0, 128, sym);
	assert_true(enc_len <= sizeof(plain));
	cfb_decrypt(sym, enc, enc_len, plain);
	assert_int_equal(get16(plain), 16);
	assert_int_equal(enc_len, 18);
	memcpy(inner, plain + 2, 16);
	return true;
}

/* What Import does: recover the HMAC key from items 3-5 with the inner key.
 * Returns its length, or -1 where the TPM would fail. */
static int soft_import(EVP_PKEY *srk_key, const struct tpm_blob *b, const uint8_t inner[16],
		       uint8_t *ret_key)
{
	uint8_t seed[256], sym[16], hk[32], mac[32], name[TPM_NAME_LEN], digest[32];
	uint8_t enc_sens[256], plain[256];
	const uint8_t *dup = b->duplicate.data + 34, *sens, *p;
	size_t dup_len = b->duplicate.size - 34u, sens_len;
	uint16_t key_len;

	if (oaep_decrypt(srk_key, "DUPLICATE", b->in_sym_seed.data, b->in_sym_seed.size, seed,
			 sizeof(seed)) != 32)
		return -1;
	name[0] = 0x00, name[1] = 0x0b;
	sha256(b->id_public.data, b->id_public.size, NULL, 0, name + 2);

	kdfa_reference(seed, 32, "INTEGRITY", NULL, 0, NULL, 0, 256, hk);
	hmac2(hk, dup, dup_len, name, sizeof(name), mac);
	if (memcmp(mac, b->duplicate.data + 2, 32) != 0)
		return -1;
	kdfa_reference(seed, 32, "STORAGE", name, sizeof(name), NULL, 0, 128, sym);
	assert_true(dup_len <= sizeof(enc_sens));
	cfb_decrypt(sym, dup, dup_len, enc_sens);
	cfb_decrypt(inner, enc_sens, dup_len, plain);

	/* innerIntegrity = H(TPM2B_SENSITIVE || Name) */
	assert_int_equal(get16(plain), 32);
	sens = plain + 34;
	sens_len = dup_len - 34;
	sha256(sens, sens_len, name, sizeof(name), digest);
	if (memcmp(digest, plain + 2, 32) != 0)
		return -1;

	/* TPM2B_SENSITIVE: size, type KEYEDHASH, empty authValue, seedValue, key. */
	assert_int_equal(get16(sens), sens_len - 2);
	assert_int_equal(get16(sens + 2), TPM_ALG_KEYEDHASH);
	assert_int_equal(get16(sens + 4), 0);
	assert_int_equal(get16(sens + 6), 32);
	p = sens + 8 + 32;
	key_len = get16(p);
	assert_int_equal(sens_len, 2 + 2 + 2 + 2 + 32 + 2 + key_len);
	memcpy(ret_key, p + 2, key_len);

	/* unique = H(seedValue || key), checked by Import. */
	sha256(sens + 8, 32, p + 2, key_len, digest);
	if (memcmp(digest, b->id_public.data + b->id_public.size - 32, 32) != 0)
		return -1;
	return key_len;
}

static void test_blob_structure(void **state)
{
	static const uint8_t id_pub_head[] = {0x00, 0x30, 0x00, 0x08, 0x00, 0x0b, 0x00, 0x04, 0x04,
					      0x40, 0x00, 0x00, 0x00, 0x05, 0x00, 0x0b, 0x00, 0x20};
	struct soft_tpm *t = *state;
	static const size_t key_sizes[] = {16, 32, 64};

	for (size_t i = 0; i < ARRAY_SIZE(key_sizes); i++) {
		_cleanup_buf_ struct buf blob = {0};
		uint8_t key[64];
		struct tpm_blob b;
		struct err e = {0};

		memset(key, 0x5a, sizeof(key));
		buf_init(&blob, 0);
		assert_int_equal(tpm_blob_build(&t->ek, &t->srk, key, key_sizes[i], &blob, &e), 0);
		assert_int_equal(tpm_blob_parse(blob.data, blob.len, &b, &e), 0);
		assert_int_equal(b.id_object.size, 52);
		assert_int_equal(b.secret.size, 256);
		/* 2+32 outer HMAC, 34 inner integrity, 2+2+2+2+32+2+K sensitive */
		assert_int_equal(b.duplicate.size, 34 + 34 + 42 + key_sizes[i]);
		assert_int_equal(b.in_sym_seed.size, 256);
		assert_int_equal(b.id_public.size, 48);
		assert_int_equal(b.enc_uri.size, 0);
		assert_memory_equal(b.id_public.tpm2b, id_pub_head, sizeof(id_pub_head));
		assert_int_equal(blob.len, 54 + 258 + 2 + b.duplicate.size + 258 + 50 + 2);
		if (key_sizes[i] == 32) {
			assert_int_equal(b.duplicate.size, 142);
			assert_int_equal(blob.len, 766);
		}
	}
}

static void test_blob_software_tpm_recovers_key(void **state)
{
	struct soft_tpm *t = *state;
	static const size_t key_sizes[] = {16, 32, 64};
	uint8_t srk_name[TPM_NAME_LEN];

	assert_int_equal(tpm_public_name(&t->srk, srk_name), 0);
	for (size_t i = 0; i < ARRAY_SIZE(key_sizes); i++) {
		_cleanup_buf_ struct buf blob = {0};
		uint8_t key[64], inner[16], got[128];
		struct tpm_blob b;
		struct err e = {0};

		for (size_t j = 0; j < sizeof(key); j++)
			key[j] = (uint8_t)(j * 13 + i);
		buf_init(&blob, 0);
		assert_int_equal(tpm_blob_build(&t->ek, &t->srk, key, key_sizes[i], &blob, &e), 0);
		assert_int_equal(tpm_blob_parse(blob.data, blob.len, &b, &e), 0);
		assert_true(soft_activate(t->ek_key, srk_name, &b, inner));
		assert_int_equal(soft_import(t->srk_key, &b, inner, got), (int)key_sizes[i]);
		assert_memory_equal(got, key, key_sizes[i]);
	}
}

static void test_blob_binds_ek_and_srk(void **state)
{
	struct soft_tpm *t = *state;
	_cleanup_buf_ struct buf blob = {0};
	uint8_t key[32] = {1, 2, 3}, inner[16], got[64], srk_name[TPM_NAME_LEN];
	uint8_t ek_name[TPM_NAME_LEN];
	struct tpm_blob b;
	struct err e = {0};

	buf_init(&blob, 0);
	assert_int_equal(tpm_public_name(&t->srk, srk_name), 0);
	assert_int_equal(tpm_public_name(&t->ek, ek_name), 0);
	assert_int_equal(tpm_blob_build(&t->ek, &t->srk, key, sizeof(key), &blob, &e), 0);
	assert_int_equal(tpm_blob_parse(blob.data, blob.len, &b, &e), 0);
	/* Another TPM's EK cannot open the credential... */
	assert_false(soft_activate(t->srk_key, srk_name, &b, inner));
	/* ...nor can the right EK with another credentialed object... */
	assert_false(soft_activate(t->ek_key, ek_name, &b, inner));
	/* ...and the duplicate opens only under the SRK. */
	assert_true(soft_activate(t->ek_key, srk_name, &b, inner));
	assert_int_equal(soft_import(t->ek_key, &b, inner, got), -1);
	assert_int_equal(soft_import(t->srk_key, &b, inner, got), 32);
	assert_memory_equal(got, key, 32);
}

static void test_blob_is_random(void **state)
{
	struct soft_tpm *t = *state;
	_cleanup_buf_ struct buf a = {0};
	_cleanup_buf_ struct buf c = {0};
	uint8_t key[32] = {0};
	struct tpm_blob ba, bc;
	struct err e = {0};

	buf_init(&a, 0);
	buf_init(&c, 0);
	assert_int_equal(tpm_blob_build(&t->ek, &t->srk, key, sizeof(key), &a, &e), 0);
	assert_int_equal(tpm_blob_build(&t->ek, &t->srk, key, sizeof(key), &c, &e), 0);
	assert_int_equal(a.len, c.len);
	assert_int_equal(tpm_blob_parse(a.data, a.len, &ba, &e), 0);
	assert_int_equal(tpm_blob_parse(c.data, c.len, &bc, &e), 0);
	/* Fresh seeds, inner key and seedValue each time: no item repeats. */
	assert_memory_not_equal(ba.id_object.data, bc.id_object.data, ba.id_object.size);
	assert_memory_not_equal(ba.secret.data, bc.secret.data, 256);
	assert_memory_not_equal(ba.duplicate.data, bc.duplicate.data, ba.duplicate.size);
	assert_memory_not_equal(ba.in_sym_seed.data, bc.in_sym_seed.data, 256);
	assert_memory_not_equal(ba.id_public.data, bc.id_public.data, ba.id_public.size);
}

static void test_blob_enc_uri(void **state)
{
	struct soft_tpm *t = *state;
	static const char uri[] = "hub.example.net/devices/dev1";
	_cleanup_buf_ struct buf blob = {0};
	uint8_t key[32] = {9}, inner[16], plain[64], srk_name[TPM_NAME_LEN];
	struct tpm_blob b;
	struct err e = {0};

	buf_init(&blob, 0);
	assert_int_equal(tpm_public_name(&t->srk, srk_name), 0);
	assert_int_equal(
	    tpm_blob_build_with_uri(&t->ek, &t->srk, key, sizeof(key), uri, strlen(uri), &blob, &e),
	    0);
	assert_int_equal(tpm_blob_parse(blob.data, blob.len, &b, &e), 0);
	assert_int_equal(b.enc_uri.size, strlen(uri));
	assert_memory_not_equal(b.enc_uri.data, uri, strlen(uri));
	assert_true(soft_activate(t->ek_key, srk_name, &b, inner));
	cfb_decrypt(inner, b.enc_uri.data, b.enc_uri.size, plain);
	assert_memory_equal(plain, uri, strlen(uri));
}

static void test_blob_build_errors(void **state)
{
	struct soft_tpm *t = *state;
	_cleanup_buf_ struct buf blob = {0};
	uint8_t key[65] = {0}, raw[1024];
	size_t len = decode_b64(dps_blob_b64, raw, sizeof(raw));
	struct tpm_public idpub;
	struct tpm_blob b;
	struct err e = {0};

	buf_init(&blob, 0);
	assert_int_equal(tpm_blob_build(&t->ek, &t->srk, key, 15, &blob, &e), -EINVAL);
	assert_string_equal(e.msg,
			    "authentication key blob: the HMAC key is 15 bytes, expected 16 to 64");
	err_clear(&e);
	assert_int_equal(tpm_blob_build(&t->ek, &t->srk, key, 65, &blob, &e), -EINVAL);
	err_clear(&e);
	assert_int_equal(tpm_blob_build(&t->ek, &t->srk, NULL, 32, &blob, &e), -EINVAL);

	/* An HMAC key where the EK should be. */
	assert_int_equal(tpm_blob_parse(raw, len, &b, &e), 0);
	assert_int_equal(tpm_public_parse(b.id_public.tpm2b, b.id_public.tpm2b_len, 0, &idpub, &e),
			 0);
	err_clear(&e);
	assert_int_equal(tpm_blob_build(&idpub, &t->srk, key, 32, &blob, &e), -EINVAL);
	assert_string_equal(e.msg,
			    "authentication key blob: EK is not an RSA-2048 storage key with "
			    "SHA-256 and AES-128-CFB");
	err_clear(&e);
	assert_int_equal(tpm_blob_build(&t->ek, &idpub, key, 32, &blob, &e), -EINVAL);
	assert_string_equal(e.msg,
			    "authentication key blob: SRK is not an RSA-2048 storage key with "
			    "SHA-256 and AES-128-CFB");
	err_clear(&e);
	assert_int_equal(tpm_blob_build_with_uri(&t->ek, &t->srk, key, 32, NULL, 1, &blob, &e),
			 -EINVAL);

	/* A full output buffer is left as it was. */
	{
		_cleanup_buf_ struct buf small = {0};

		buf_init(&small, 100);
		assert_int_equal(buf_append_str(&small, "keep"), 0);
		err_clear(&e);
		assert_int_equal(tpm_blob_build(&t->ek, &t->srk, key, 32, &small, &e), -E2BIG);
		assert_string_equal(buf_str(&small), "keep");
	}
	assert_int_equal(blob.len, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_public_node_ek),
	    cmocka_unit_test(test_public_java_srk),
	    cmocka_unit_test(test_public_pkey_and_equality),
	    cmocka_unit_test(test_public_rejections),
	    cmocka_unit_test(test_public_sizes),
	    cmocka_unit_test(test_kdfa),
	    cmocka_unit_test(test_blob_parse_dps_sample),
	    cmocka_unit_test(test_blob_parse_rejections),
	    cmocka_unit_test(test_blob_structure),
	    cmocka_unit_test(test_blob_software_tpm_recovers_key),
	    cmocka_unit_test(test_blob_binds_ek_and_srk),
	    cmocka_unit_test(test_blob_is_random),
	    cmocka_unit_test(test_blob_enc_uri),
	    cmocka_unit_test(test_blob_build_errors),
	};

	/* The group state, the software TPM's two key pairs, is handed to every
	 * test; the tpm_public tests ignore it. */
	return cmocka_run_group_tests(tests, soft_tpm_setup, soft_tpm_teardown);
}
