/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <string.h>
#include <sys/uio.h>

#include <openssl/rand.h>
#include <openssl/rsa.h>

#include "crypto/hash.h"
#include "crypto/openssl_cleanup.h"
#include "crypto/tpm_blob.h"

#define SEED_LEN 32      /* seeds are the size of the parents' nameAlg digest */
#define INNER_KEY_LEN 16 /* AES-128: the C SDK and aziot hard-code it in Import */
#define SYM_BITS 128     /* the EK's and SRK's symmetric keyBits */
#define RSA_LEN 256      /* RSA-2048 ciphertext */

/* The ID key's TPMT_PUBLIC: type, nameAlg, objectAttributes, empty
 * authPolicy, scheme HMAC + SHA-256, then a 32-byte unique. */
#define ID_PUBLIC_LEN (2 + 2 + 4 + 2 + 2 + 2 + 2 + HASH_SHA256_LEN)
#define ID_KEY_ATTRIBUTES                                                                          \
	(TPM_PUB_ATTR_SIGN | TPM_PUB_ATTR_NODA | TPM_PUB_ATTR_USERWITHAUTH) /* 0x00040440 */
/* TPM2B_SENSITIVE: size, sensitiveType, authValue (empty), seedValue, key. */
#define SENS2B_MAX (2 + 2 + 2 + 2 + SEED_LEN + 2 + TPM_BLOB_KEY_MAX)
/* A TPM2B_DIGEST holding a SHA-256 value. */
#define DIGEST2B_LEN (2 + HASH_SHA256_LEN)

#define BLOB "authentication key blob: "

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

int tpm_kdfa_sha256(const uint8_t *key, size_t key_len, const char *label, const uint8_t *ctx_u,
		    size_t ctx_u_len, const uint8_t *ctx_v, size_t ctx_v_len, size_t bits,
		    uint8_t *ret)
{
	uint8_t counter[4], bits_be[4], block[HASH_SHA256_LEN];
	size_t want = bits / 8, done = 0;
	int r = 0;

	if (!label || bits == 0 || bits % 8 != 0 || bits > 8192)
		return -EINVAL;
	put32(bits_be, (uint32_t)bits);
	for (uint32_t i = 1; done < want; i++) {
		/* The label is used with its terminating NUL. */
		struct iovec iov[] = {
		    {counter, sizeof(counter)}, {(void *)label, strlen(label) + 1},
		    {(void *)ctx_u, ctx_u_len}, {(void *)ctx_v, ctx_v_len},
		    {bits_be, sizeof(bits_be)},
		};
		size_t take;

		put32(counter, i);
		r = hash_hmac_sha256v(key, key_len, iov, ARRAY_SIZE(iov), block);
		if (r < 0)
			break;
		take = want - done < sizeof(block) ? want - done : sizeof(block);
		memcpy(ret + done, block, take);
		done += take;
	}
	explicit_bzero(block, sizeof(block));
	if (r < 0)
		explicit_bzero(ret, want);
	return r;
}

/* AES-128-CFB128 with an all-zero IV, as TPM 2.0 uses for every
 * parameter- and object-protection layer. in and out may not overlap. */
static int aes128_cfb(const uint8_t key[INNER_KEY_LEN], const uint8_t *in, size_t len, uint8_t *out)
{
	static const uint8_t iv[16];
	_cleanup_(EVP_CIPHER_CTX_freep) EVP_CIPHER_CTX *ctx = NULL;
	int n = 0, fin = 0;

	if (len == 0)
		return 0;
	ctx = EVP_CIPHER_CTX_new();
	if (!ctx || EVP_EncryptInit_ex(ctx, EVP_aes_128_cfb128(), NULL, key, iv) != 1 ||
	    EVP_EncryptUpdate(ctx, out, &n, in, (int)len) != 1 ||
	    EVP_EncryptFinal_ex(ctx, out + n, &fin) != 1 || (size_t)n + (size_t)fin != len)
		return hash_ssl_error("AES-128-CFB");
	return 0;
}

/* RSAES-OAEP with SHA-256 (hash and MGF1) and label including its NUL. */
static int rsa_oaep(EVP_PKEY *pkey, const char *label, const uint8_t *in, size_t in_len,
		    uint8_t out[RSA_LEN])
{
	_cleanup_(EVP_PKEY_CTX_freep) EVP_PKEY_CTX *ctx =
	    EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
	size_t label_len = strlen(label) + 1;
	size_t out_len = RSA_LEN;
	unsigned char *l;

	if (!ctx || EVP_PKEY_encrypt_init(ctx) != 1 ||
	    EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) != 1 ||
	    EVP_PKEY_CTX_set_rsa_oaep_md(ctx, EVP_sha256()) != 1 ||
	    EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, EVP_sha256()) != 1)
		return hash_ssl_error("RSA-OAEP setup");
	l = OPENSSL_memdup(label, label_len);
	if (!l)
		return -ENOMEM;
	if (EVP_PKEY_CTX_set0_rsa_oaep_label(ctx, l, (int)label_len) != 1) {
		OPENSSL_free(l);
		return hash_ssl_error("RSA-OAEP label");
	}
	if (EVP_PKEY_encrypt(ctx, out, &out_len, in, in_len) != 1 || out_len != RSA_LEN)
		return hash_ssl_error("RSA-OAEP encrypt");
	return 0;
}

static int check_parent(const char *what, const struct tpm_public *pub, struct err *e)
{
	if (!pub || pub->type != TPM_ALG_RSA || pub->name_alg != TPM_ALG_SHA256 ||
	    pub->sym_alg != TPM_ALG_AES || pub->sym_key_bits != SYM_BITS ||
	    pub->sym_mode != TPM_ALG_CFB || pub->unique_len != RSA_LEN || pub->raw_len <= 2)
		return err_set(
		    e, -EINVAL,
		    BLOB "%s is not an RSA-2048 storage key with SHA-256 and AES-128-CFB", what);
	return 0;
}

/* Everything secret the construction touches, wiped in one place. */
struct blob_secrets {
	uint8_t seed_value[SEED_LEN];
	uint8_t inner_key[INNER_KEY_LEN];
	uint8_t dup_seed[SEED_LEN];
	uint8_t cred_seed[SEED_LEN];
	uint8_t sym_key[SYM_BITS / 8];
	uint8_t hmac_key[HASH_SHA256_LEN];
	uint8_t sens2b[SENS2B_MAX];
	uint8_t inner_plain[DIGEST2B_LEN + SENS2B_MAX];
	uint8_t enc_sens[DIGEST2B_LEN + SENS2B_MAX];
	uint8_t cred_plain[2 + INNER_KEY_LEN];
};

static void blob_secrets_wipe(struct blob_secrets *s)
{
	explicit_bzero(s, sizeof(*s));
}

/* The public results, assembled at the end. */
struct blob_parts {
	uint8_t id_public[2 + ID_PUBLIC_LEN];
	uint8_t name_id[TPM_NAME_LEN];
	uint8_t name_srk[TPM_NAME_LEN];
	uint8_t dup_sens[DIGEST2B_LEN + SENS2B_MAX];
	size_t dup_sens_len;
	uint8_t outer_hmac[HASH_SHA256_LEN];
	uint8_t in_sym_seed[RSA_LEN];
	uint8_t enc_identity[2 + INNER_KEY_LEN];
	uint8_t integrity[HASH_SHA256_LEN];
	uint8_t secret[RSA_LEN];
	uint8_t enc_uri[TPM_BLOB_URI_MAX];
	size_t enc_uri_len;
};

static int append_u16(struct buf *b, size_t v)
{
	uint8_t be[2];

	put16(be, (uint16_t)v);
	return buf_append(b, be, sizeof(be));
}

static int append_tpm2b(struct buf *b, const uint8_t *p, size_t n)
{
	int r = append_u16(b, n);

	return r < 0 ? r : buf_append(b, p, n);
}

/* An item made of a TPM2B_DIGEST (an integrity HMAC), then data. */
static int append_hmac_and_data(struct buf *b, const uint8_t hmac[HASH_SHA256_LEN],
				const uint8_t *p, size_t n)
{
	int r = append_u16(b, DIGEST2B_LEN + n);

	if (r >= 0)
		r = append_tpm2b(b, hmac, HASH_SHA256_LEN);
	return r < 0 ? r : buf_append(b, p, n);
}

static int assemble(const struct blob_parts *pt, struct buf *ret_blob)
{
	_cleanup_buf_ struct buf out = {0};
	int r;

	buf_init(&out, TPM_BLOB_MAX);
	r = append_hmac_and_data(&out, pt->integrity, pt->enc_identity, sizeof(pt->enc_identity));
	if (r >= 0)
		r = append_tpm2b(&out, pt->secret, sizeof(pt->secret));
	if (r >= 0)
		r = append_hmac_and_data(&out, pt->outer_hmac, pt->dup_sens, pt->dup_sens_len);
	if (r >= 0)
		r = append_tpm2b(&out, pt->in_sym_seed, sizeof(pt->in_sym_seed));
	if (r >= 0)
		r = buf_append(&out, pt->id_public, sizeof(pt->id_public));
	if (r >= 0)
		r = append_tpm2b(&out, pt->enc_uri, pt->enc_uri_len);
	if (r >= 0)
		r = buf_append(ret_blob, out.data, out.len);
	return r;
}

/* Step 1-3 of dps-protocol.md §3.5: the ID key's public and sensitive
 * areas and its Name. Fills pt->id_public, pt->name_id, s->sens2b; returns
 * the length of s->sens2b or a negative errno. */
static int make_id_key(const uint8_t *key, size_t key_len, struct blob_secrets *s,
		       struct blob_parts *pt)
{
	uint8_t *p = pt->id_public;
	struct iovec unique_in[] = {
	    {s->seed_value, sizeof(s->seed_value)},
	    {(void *)key, key_len},
	};
	size_t tpmt_len;
	int r;

	put16(p, ID_PUBLIC_LEN);
	put16(p + 2, TPM_ALG_KEYEDHASH);
	put16(p + 4, TPM_ALG_SHA256);
	put32(p + 6, ID_KEY_ATTRIBUTES);
	put16(p + 10, 0); /* authPolicy: empty, as DPS sends it */
	put16(p + 12, TPM_ALG_HMAC);
	put16(p + 14, TPM_ALG_SHA256);
	put16(p + 16, HASH_SHA256_LEN);
	/* TPM2_Import recomputes unique = H(seedValue || key) and fails on a
	 * mismatch. */
	r = hash_sha256v(unique_in, ARRAY_SIZE(unique_in), p + 18);
	if (r < 0)
		return r;

	pt->name_id[0] = TPM_ALG_SHA256 >> 8;
	pt->name_id[1] = TPM_ALG_SHA256 & 0xff;
	r = hash_sha256(pt->id_public + 2, ID_PUBLIC_LEN, pt->name_id + 2);
	if (r < 0)
		return r;

	p = s->sens2b;
	tpmt_len = 2 + 2 + 2 + SEED_LEN + 2 + key_len;
	put16(p, (uint16_t)tpmt_len);
	put16(p + 2, TPM_ALG_KEYEDHASH); /* sensitiveType */
	put16(p + 4, 0);                 /* authValue: empty */
	put16(p + 6, SEED_LEN);          /* seedValue */
	memcpy(p + 8, s->seed_value, SEED_LEN);
	put16(p + 8 + SEED_LEN, (uint16_t)key_len); /* sensitive.bits */
	memcpy(p + 10 + SEED_LEN, key, key_len);
	return (int)(2 + tpmt_len);
}

/* Step 4-5: the duplicate (inner wrapper with the inner key, outer wrapper
 * to the SRK) and its seed encrypted to the SRK. */
static int make_duplicate(EVP_PKEY *srk_key, size_t sens2b_len, struct blob_secrets *s,
			  struct blob_parts *pt)
{
	struct iovec integrity_in[] = {
	    {s->sens2b, sens2b_len},
	    {pt->name_id, sizeof(pt->name_id)},
	};
	size_t inner_len = DIGEST2B_LEN + sens2b_len;
	struct iovec hmac_in[] = {
	    {pt->dup_sens, inner_len},
	    {pt->name_id, sizeof(pt->name_id)},
	};
	int r;

	put16(s->inner_plain, HASH_SHA256_LEN);
	r = hash_sha256v(integrity_in, ARRAY_SIZE(integrity_in), s->inner_plain + 2);
	if (r < 0)
		return r;
	memcpy(s->inner_plain + DIGEST2B_LEN, s->sens2b, sens2b_len);
	r = aes128_cfb(s->inner_key, s->inner_plain, inner_len, s->enc_sens);
	if (r < 0)
		return r;

	r = rsa_oaep(srk_key, "DUPLICATE", s->dup_seed, SEED_LEN, pt->in_sym_seed);
	if (r < 0)
		return r;
	r = tpm_kdfa_sha256(s->dup_seed, SEED_LEN, "STORAGE", pt->name_id, sizeof(pt->name_id),
			    NULL, 0, SYM_BITS, s->sym_key);
	if (r < 0)
		return r;
	r = aes128_cfb(s->sym_key, s->enc_sens, inner_len, pt->dup_sens);
	if (r < 0)
		return r;
	pt->dup_sens_len = inner_len;
	r = tpm_kdfa_sha256(s->dup_seed, SEED_LEN, "INTEGRITY", NULL, 0, NULL, 0,
			    HASH_SHA256_LEN * 8, s->hmac_key);
	if (r < 0)
		return r;
	return hash_hmac_sha256v(s->hmac_key, sizeof(s->hmac_key), hmac_in, ARRAY_SIZE(hmac_in),
				 pt->outer_hmac);
}

/* Step 6: MakeCredential to the EK for the SRK's Name, carrying the inner
 * key. */
static int make_credential(EVP_PKEY *ek_key, const struct tpm_public *srk, struct blob_secrets *s,
			   struct blob_parts *pt)
{
	struct iovec hmac_in[] = {
	    {pt->enc_identity, sizeof(pt->enc_identity)},
	    {pt->name_srk, sizeof(pt->name_srk)},
	};
	int r;

	r = tpm_public_name(srk, pt->name_srk);
	if (r < 0)
		return r;
	r = rsa_oaep(ek_key, "IDENTITY", s->cred_seed, SEED_LEN, pt->secret);
	if (r < 0)
		return r;
	put16(s->cred_plain, INNER_KEY_LEN);
	memcpy(s->cred_plain + 2, s->inner_key, INNER_KEY_LEN);
	r = tpm_kdfa_sha256(s->cred_seed, SEED_LEN, "STORAGE", pt->name_srk, sizeof(pt->name_srk),
			    NULL, 0, SYM_BITS, s->sym_key);
	if (r < 0)
		return r;
	r = aes128_cfb(s->sym_key, s->cred_plain, sizeof(s->cred_plain), pt->enc_identity);
	if (r < 0)
		return r;
	r = tpm_kdfa_sha256(s->cred_seed, SEED_LEN, "INTEGRITY", NULL, 0, NULL, 0,
			    HASH_SHA256_LEN * 8, s->hmac_key);
	if (r < 0)
		return r;
	return hash_hmac_sha256v(s->hmac_key, sizeof(s->hmac_key), hmac_in, ARRAY_SIZE(hmac_in),
				 pt->integrity);
}

int tpm_blob_build_with_uri(const struct tpm_public *ek, const struct tpm_public *srk,
			    const uint8_t *hmac_key, size_t key_len, const void *uri,
			    size_t uri_len, struct buf *ret_blob, struct err *e)
{
	_cleanup_(blob_secrets_wipe) struct blob_secrets s = {0};
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *ek_key = NULL;
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *srk_key = NULL;
	struct blob_parts parts = {0};
	struct blob_parts *pt = &parts;
	int r, sens2b_len;

	if (!hmac_key || key_len < TPM_BLOB_KEY_MIN || key_len > TPM_BLOB_KEY_MAX)
		return err_set(e, -EINVAL, BLOB "the HMAC key is %zu bytes, expected %d to %d",
			       key_len, TPM_BLOB_KEY_MIN, TPM_BLOB_KEY_MAX);
	if (uri_len > TPM_BLOB_URI_MAX || (uri_len > 0 && !uri))
		return err_set(e, -EINVAL, BLOB "encUri is longer than %d bytes", TPM_BLOB_URI_MAX);
	r = check_parent("EK", ek, e);
	if (r < 0)
		return r;
	r = check_parent("SRK", srk, e);
	if (r < 0)
		return r;
	if (tpm_public_to_pkey(ek, &ek_key) < 0 || tpm_public_to_pkey(srk, &srk_key) < 0)
		return err_set(e, -EIO, BLOB "cannot use the EK or SRK as an RSA key");

	if (RAND_priv_bytes(s.seed_value, sizeof(s.seed_value)) != 1 ||
	    RAND_priv_bytes(s.inner_key, sizeof(s.inner_key)) != 1 ||
	    RAND_priv_bytes(s.dup_seed, sizeof(s.dup_seed)) != 1 ||
	    RAND_priv_bytes(s.cred_seed, sizeof(s.cred_seed)) != 1)
		return err_set(e, hash_ssl_error("RAND_priv_bytes"), BLOB "no randomness");

	sens2b_len = make_id_key(hmac_key, key_len, &s, pt);
	r = sens2b_len;
	if (r >= 0)
		r = make_duplicate(srk_key, (size_t)sens2b_len, &s, pt);
	if (r >= 0)
		r = make_credential(ek_key, srk, &s, pt);
	if (r >= 0)
		r = aes128_cfb(s.inner_key, uri, uri_len, pt->enc_uri);
	if (r < 0)
		return err_set(e, r, BLOB "construction failed: %s", strerror(-r));
	pt->enc_uri_len = uri_len;

	r = assemble(pt, ret_blob);
	if (r < 0)
		return err_set(e, r, BLOB "output buffer too small");
	return 0;
}

int tpm_blob_build(const struct tpm_public *ek, const struct tpm_public *srk,
		   const uint8_t *hmac_key, size_t key_len, struct buf *ret_blob, struct err *e)
{
	return tpm_blob_build_with_uri(ek, srk, hmac_key, key_len, NULL, 0, ret_blob, e);
}

static int get_item(struct cursor *c, const char *what, struct tpm_blob_item *ret, struct err *e)
{
	const uint8_t *start = c->p;

	if (cursor_get_sized16(c, &ret->data, &ret->size) < 0)
		return err_set(e, -EBADMSG, BLOB "%s: truncated", what);
	ret->tpm2b = start;
	ret->tpm2b_len = (size_t)ret->size + 2;
	return 0;
}

static int check_not_empty(const struct tpm_blob_item *it, const char *what, struct err *e)
{
	if (it->size == 0)
		return err_set(e, -EBADMSG, BLOB "%s: empty", what);
	return 0;
}

/* Items 1 and 3: a TPM2B_DIGEST with a SHA-256 HMAC, then encrypted data. */
static int check_hmac_and_data(const struct tpm_blob_item *it, const char *what, struct err *e)
{
	struct cursor c = cursor_make(it->data, it->size);
	const uint8_t *hmac;
	uint16_t n;

	if (check_not_empty(it, what, e) < 0)
		return -EBADMSG;
	if (cursor_get_sized16(&c, &hmac, &n) < 0)
		return err_set(e, -EBADMSG, BLOB "%s: integrity HMAC truncated", what);
	if (n != HASH_SHA256_LEN)
		return err_set(e, -EBADMSG, BLOB "%s: integrity HMAC is %u bytes, expected %d",
			       what, n, HASH_SHA256_LEN);
	if (c.left == 0)
		return err_set(e, -EBADMSG, BLOB "%s: no encrypted data after the HMAC", what);
	return 0;
}

int tpm_blob_parse(const void *blob, size_t len, struct tpm_blob *ret, struct err *e)
{
	static const char *const names[] = {
	    "item 1 (credentialBlob)", "item 2 (secret)",   "item 3 (duplicate)",
	    "item 4 (inSymSeed)",      "item 5 (idKeyPub)", "item 6 (encUri)",
	};
	struct cursor c = cursor_make(blob, blob ? len : 0);
	struct tpm_blob b = {0};
	struct tpm_blob_item *items[] = {&b.id_object,   &b.secret,    &b.duplicate,
					 &b.in_sym_seed, &b.id_public, &b.enc_uri};
	struct tpm_public id_pub;
	int r;

	if (len > TPM_BLOB_MAX)
		return err_set(e, -EBADMSG, BLOB "longer than %d bytes", TPM_BLOB_MAX);
	for (size_t i = 0; i < ARRAY_SIZE(items); i++) {
		r = get_item(&c, names[i], items[i], e);
		if (r < 0)
			return r;
	}
	if (cursor_expect_end(&c) < 0)
		return err_set(e, -EBADMSG, BLOB "trailing data after item 6 (%zu bytes)", c.left);

	r = check_hmac_and_data(&b.id_object, names[0], e);
	if (r >= 0)
		r = check_not_empty(&b.secret, names[1], e);
	if (r >= 0)
		r = check_hmac_and_data(&b.duplicate, names[2], e);
	if (r >= 0)
		r = check_not_empty(&b.in_sym_seed, names[3], e);
	if (r < 0)
		return r;
	r = tpm_public_parse(b.id_public.tpm2b, b.id_public.tpm2b_len, TPM_ALG_KEYEDHASH, &id_pub,
			     e);
	if (r < 0)
		return err_prefix(e, r, BLOB "%s", names[4]);
	*ret = b;
	return 0;
}
