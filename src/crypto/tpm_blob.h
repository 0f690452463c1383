/* SPDX-License-Identifier: MIT */
/*
 * The DPS TPM authentication-key blob (dps-protocol.md §3.4, §3.5), built
 * in software without a TPM: it delivers an HMAC key K into the device's
 * TPM so that only the TPM holding the given EK, under the given SRK, can
 * load it. Six consecutive TPM2B items:
 *
 *   1 TPM2B_ID_OBJECT        MakeCredential to the EK, bound to the SRK's
 *                            Name, protecting a 16-byte inner wrapper key
 *   2 TPM2B_ENCRYPTED_SECRET its seed, RSA-OAEP to the EK ("IDENTITY")
 *   3 TPM2B_PRIVATE          the ID key's sensitive area, duplicated to the
 *                            SRK with the inner wrapper (AES-128-CFB)
 *   4 TPM2B_ENCRYPTED_SECRET its seed, RSA-OAEP to the SRK ("DUPLICATE")
 *   5 TPM2B_PUBLIC           the ID key: KEYEDHASH HMAC-SHA256
 *   6 TPM2B_DATA             encUri: bytes encrypted with the inner key
 *
 * The device does PolicySecret(endorsement), ActivateCredential(SRK, EK),
 * Import(SRK, inner key, AES-128-CFB), Load, and then signs SAS tokens with
 * TPM2_HMAC under K.
 */
#ifndef EDGEID_CRYPTO_TPM_BLOB_H
#define EDGEID_CRYPTO_TPM_BLOB_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/macro.h"
#include "crypto/tpm_public.h"

/* HMAC key sizes the construction accepts (16, 32 and 64 were verified
 * against a TPM; DPS uses 32). */
#define TPM_BLOB_KEY_MIN 16
#define TPM_BLOB_KEY_MAX 64
/* Longest encUri plaintext accepted. */
#define TPM_BLOB_URI_MAX 1024
/* Largest blob tpm_blob_parse accepts. */
#define TPM_BLOB_MAX 8192

/* Build the blob that delivers hmac_key (key_len bytes, TPM_BLOB_KEY_MIN to
 * TPM_BLOB_KEY_MAX) to the TPM holding ek, under srk, with an empty encUri.
 * ek and srk must be parsed RSA public areas. The blob (binary, not base64)
 * is appended to ret_blob. Randomness comes from RAND_priv_bytes; every
 * intermediate secret is wiped. Returns 0, or:
 *   -EINVAL  key size out of range, ek or srk not an RSA storage key;
 *   -E2BIG   ret_blob's maximum would be exceeded (ret_blob unchanged);
 *   -ENOMEM, -EIO (OpenSSL failed; detail at debug). */
int tpm_blob_build(const struct tpm_public *ek, const struct tpm_public *srk,
		   const uint8_t *hmac_key, size_t key_len, struct buf *ret_blob,
		   struct err *e) _nodiscard_;
/* As tpm_blob_build, with encUri = AES-128-CFB(inner key, uri) (uri_len at
 * most TPM_BLOB_URI_MAX; uri may be NULL when uri_len is 0). */
int tpm_blob_build_with_uri(const struct tpm_public *ek, const struct tpm_public *srk,
			    const uint8_t *hmac_key, size_t key_len, const void *uri,
			    size_t uri_len, struct buf *ret_blob, struct err *e) _nodiscard_;

/* One TPM2B item inside a blob. Pointers point into the parsed memory. */
struct tpm_blob_item {
	const uint8_t *tpm2b; /* the marshalled item: u16 size, then the content */
	size_t tpm2b_len;     /* size + 2 */
	const uint8_t *data;  /* the content */
	uint16_t size;
};

struct tpm_blob {
	struct tpm_blob_item id_object;   /* TPM2B_ID_OBJECT (credentialBlob) */
	struct tpm_blob_item secret;      /* TPM2B_ENCRYPTED_SECRET for ActivateCredential */
	struct tpm_blob_item duplicate;   /* TPM2B_PRIVATE */
	struct tpm_blob_item in_sym_seed; /* TPM2B_ENCRYPTED_SECRET for Import */
	struct tpm_blob_item id_public;   /* TPM2B_PUBLIC of the ID key */
	struct tpm_blob_item enc_uri;     /* TPM2B_DATA, may be empty */
};

/* Split a blob into its six items, checking that it holds exactly six,
 * that items 1-5 are not empty, that items 1 and 3 start with a TPM2B_DIGEST
 * followed by data, and that item 5 is an HMAC-SHA256 KEYEDHASH public area
 * (tpm_public_parse). ret's pointers point into blob. Returns 0, -EBADMSG
 * (malformed; the message names the item), -EOPNOTSUPP (item 5 is not a
 * supported key). */
int tpm_blob_parse(const void *blob, size_t len, struct tpm_blob *ret, struct err *e) _nodiscard_;

/* KDFa (TPM 2.0 Part 1 §11.4.10.2; SP800-108 counter mode) with HMAC-SHA256:
 * the first bits/8 bytes of HMAC(key, BE32(i) || label || 0x00 || ctx_u ||
 * ctx_v || BE32(bits)) for i = 1, 2, ... into ret. bits must be a non-zero
 * multiple of 8, at most 8192. 0, -EINVAL, -EIO. */
int tpm_kdfa_sha256(const uint8_t *key, size_t key_len, const char *label, const uint8_t *ctx_u,
		    size_t ctx_u_len, const uint8_t *ctx_v, size_t ctx_v_len, size_t bits,
		    uint8_t *ret) _nodiscard_;

#endif
