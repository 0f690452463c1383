/* SPDX-License-Identifier: MIT */
/*
 * TPM 2.0 public areas (TPM2B_PUBLIC), as DPS carries them base64-encoded
 * in endorsementKey / storageRootKey and as `tpm2_readpublic -o` writes
 * them: a big-endian u16 size, then the marshalled TPMT_PUBLIC.
 *
 * The parser is strict and accepts only what the DPS TPM flow uses
 * (dps-protocol.md §3, tpm-identity.md §2):
 *   - RSA-2048 restricted decryption keys (EK, SRK) with nameAlg SHA-256,
 *     symmetric AES-128-CFB, scheme NULL;
 *   - KEYEDHASH HMAC-SHA256 signing keys with nameAlg SHA-256 (the ID key
 *     in the authentication-key blob).
 * Anything else is refused with a message naming the offending field.
 */
#ifndef EDGEID_CRYPTO_TPM_PUBLIC_H
#define EDGEID_CRYPTO_TPM_PUBLIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/macro.h"

#define TPM_ALG_RSA 0x0001
#define TPM_ALG_HMAC 0x0005
#define TPM_ALG_AES 0x0006
#define TPM_ALG_KEYEDHASH 0x0008
#define TPM_ALG_SHA256 0x000B
#define TPM_ALG_NULL 0x0010
#define TPM_ALG_CFB 0x0043

/* TPMA_OBJECT bits. */
#define TPM_PUB_ATTR_FIXEDTPM 0x00000002u
#define TPM_PUB_ATTR_FIXEDPARENT 0x00000010u
#define TPM_PUB_ATTR_SENSITIVEDATAORIGIN 0x00000020u
#define TPM_PUB_ATTR_USERWITHAUTH 0x00000040u
#define TPM_PUB_ATTR_ADMINWITHPOLICY 0x00000080u
#define TPM_PUB_ATTR_NODA 0x00000400u
#define TPM_PUB_ATTR_RESTRICTED 0x00010000u
#define TPM_PUB_ATTR_DECRYPT 0x00020000u
#define TPM_PUB_ATTR_SIGN 0x00040000u

/* Largest TPM2B_PUBLIC the parser can accept (an RSA-2048 key with a
 * SHA-256 authPolicy is 316 bytes). */
#define TPM_PUBLIC_MAX 316
/* A Name with a SHA-256 nameAlg: u16 0x000B, then the digest. */
#define TPM_NAME_LEN 34
/* Lengths of the two registration-id forms (hex, unpadded base32). */
#define TPM_REGID_HEX_LEN 64
#define TPM_REGID_BASE32_LEN 52

struct tpm_public {
	uint16_t type;     /* TPM_ALG_RSA or TPM_ALG_KEYEDHASH */
	uint16_t name_alg; /* always TPM_ALG_SHA256 */
	uint32_t attributes;
	uint16_t auth_policy_len; /* 0 or 32 */
	uint8_t auth_policy[32];
	/* RSA: parameters.symmetric (AES/128/CFB) and parameters.scheme (NULL).
	 * KEYEDHASH: sym_* are 0, scheme is TPM_ALG_HMAC with scheme_hash. */
	uint16_t sym_alg;
	uint16_t sym_key_bits;
	uint16_t sym_mode;
	uint16_t scheme;
	uint16_t scheme_hash;
	/* RSA only: 2048, and the exponent with a marshalled 0 read as 65537. */
	uint16_t key_bits;
	uint32_t exponent;
	/* RSA: the modulus (256 bytes, big-endian). KEYEDHASH: the 32-byte
	 * unique digest. */
	uint16_t unique_len;
	uint8_t unique[256];
	/* The TPM2B_PUBLIC exactly as parsed, size prefix included. */
	size_t raw_len;
	uint8_t raw[TPM_PUBLIC_MAX];
};

/* Parse len bytes holding exactly one TPM2B_PUBLIC. want_type is
 * TPM_ALG_RSA, TPM_ALG_KEYEDHASH, or 0 for either. Returns 0 and fills
 * *ret, or:
 *   -EBADMSG     truncated, trailing bytes, sizes that disagree, a zero-sized
 *                public area;
 *   -EOPNOTSUPP  well-formed but not one of the supported kinds (another
 *                type, nameAlg, symmetric, scheme, key size, attributes),
 *                or not want_type.
 * The message in e names the field, e.g.
 *   "TPM2B_PUBLIC: parameters.keyBits: expected 2048, got 3072". */
int tpm_public_parse(const void *data, size_t len, uint16_t want_type, struct tpm_public *ret,
		     struct err *e) _nodiscard_;
/* As tpm_public_parse, from standard base64 (padding required, as DPS and
 * the SDKs send it). Bad base64 is -EBADMSG. */
int tpm_public_parse_base64(const char *text, uint16_t want_type, struct tpm_public *ret,
			    struct err *e) _nodiscard_;

/* The object's Name: u16 0x000B, then SHA-256 of the TPMT_PUBLIC (the raw
 * bytes without their size prefix). 0 or -EIO. */
int tpm_public_name(const struct tpm_public *pub, uint8_t ret_name[TPM_NAME_LEN]) _nodiscard_;

/* DPS registration ids derived from an EK (dps-protocol.md §3.2), both
 * over the whole TPM2B_PUBLIC, size prefix included:
 *   hex:    lowercase hex of SHA-256 (what `sha256sum ek.pub` prints);
 *   base32: lowercase RFC 4648 base32 of SHA-256, '=' padding removed
 *           (Node TpmSecurityClient and the C SDK).
 * The text is appended to ret. 0, -E2BIG, -ENOMEM, -EIO. */
int tpm_public_registration_id_hex(const struct tpm_public *pub, struct buf *ret) _nodiscard_;
int tpm_public_registration_id_base32(const struct tpm_public *pub, struct buf *ret) _nodiscard_;

/* The RSA public key as an OpenSSL key, owned by the caller
 * (EVP_PKEY_free). 0, -EINVAL (not an RSA public area), -EIO. */
int tpm_public_to_pkey(const struct tpm_public *pub, EVP_PKEY **ret) _nodiscard_;

/* Whether two public areas hold the same key: same type and, for RSA,
 * same modulus and exponent (a marshalled 0 and 65537 are equal); for
 * KEYEDHASH, the same unique. Attributes and policies are not compared:
 * the same TPM key read by different stacks must compare equal. */
bool tpm_public_same_key(const struct tpm_public *a, const struct tpm_public *b);

#endif
