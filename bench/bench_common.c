/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "bench/bench_common.h"
#include "common/encode.h"
#include "common/fs.h"
#include "crypto/hash.h"
#include "crypto/openssl_cleanup.h"
#include "crypto/tpm_blob.h"

#define RSA_BITS 2048
#define RSA_BYTES (RSA_BITS / 8)
#define SEED_BYTES 32
#define INNER_KEY_BYTES 16
/* A PEM RSA-2048 private key is about 1.7 KB. */
#define POOL_FILE_MAX (BENCH_TPM_POOL_MAX * 2 * 4096)

DEFINE_CLEANUP_FUNC(BIO *, BIO_free)

/* The authPolicy of the default EK template (PolicySecret(endorsement)). */
static const uint8_t ek_policy[32] = {
    0x83, 0x71, 0x97, 0x67, 0x44, 0x84, 0xb3, 0xf8, 0x1a, 0x90, 0xcc, 0x8d, 0x46, 0xa5, 0xd7, 0x24,
    0xfd, 0x52, 0xd7, 0x6e, 0x06, 0x52, 0x0b, 0x64, 0xf2, 0xa1, 0xda, 0x1b, 0x33, 0x14, 0x69, 0xaa,
};

const char *bench_kind_name(enum bench_kind kind)
{
	return kind == BENCH_TPM ? "tpm" : "sym";
}

int bench_kind_parse(const char *s, enum bench_kind *ret)
{
	if (streq(s, "sym"))
		*ret = BENCH_SYM;
	else if (streq(s, "tpm"))
		*ret = BENCH_TPM;
	else
		return -EINVAL;
	return 0;
}

void bench_registration_id(enum bench_kind kind, uint64_t index, char ret[BENCH_ID_MAX])
{
	snprintf(ret, BENCH_ID_MAX, "bench-%s-%08" PRIu64, bench_kind_name(kind), index);
}

int bench_sym_key(const char *seed, uint64_t index, unsigned which, struct buf *ret_b64)
{
	char id[BENCH_ID_MAX], msg[BENCH_ID_MAX + 16];
	uint8_t key[HASH_SHA256_LEN];
	int r;

	bench_registration_id(BENCH_SYM, index, id);
	snprintf(msg, sizeof(msg), "%s/%u", id, which);
	r = hash_hmac_sha256(seed, strlen(seed), msg, strlen(msg), key);
	if (r >= 0)
		r = base64_encode(ret_b64, key, BENCH_SYM_KEY_BYTES, B64_STANDARD);
	explicit_bzero(key, sizeof(key));
	return r;
}

/* --- the TPM pool -------------------------------------------------------- */

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)(v >> 16));
	put16(p + 2, (uint16_t)v);
}

/* The TPM2B_PUBLIC a TPM reports for an RSA-2048 key created from the EK
 * template (tpm-identity.md §2) or the SRK template (dps-protocol.md §3.1). */
static int marshal_rsa(EVP_PKEY *pkey, bool ek, uint8_t out[TPM_PUBLIC_MAX], size_t *ret_len)
{
	_cleanup_(BN_freep) BIGNUM *n = NULL;
	_cleanup_(BN_freep) BIGNUM *exp = NULL;
	size_t p = 2;

	if (EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_N, &n) != 1 ||
	    EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_E, &exp) != 1)
		return hash_ssl_error("reading an RSA key");
	if (BN_num_bits(n) != RSA_BITS || !BN_is_word(exp, 65537))
		return -EBADMSG;
	put16(out + p, TPM_ALG_RSA), p += 2;
	put16(out + p, TPM_ALG_SHA256), p += 2;
	put32(out + p, ek ? 0x000300b2u : 0x00030472u), p += 4;
	put16(out + p, ek ? sizeof(ek_policy) : 0), p += 2;
	if (ek)
		memcpy(out + p, ek_policy, sizeof(ek_policy)), p += sizeof(ek_policy);
	put16(out + p, TPM_ALG_AES), p += 2;
	put16(out + p, 128), p += 2;
	put16(out + p, TPM_ALG_CFB), p += 2;
	put16(out + p, TPM_ALG_NULL), p += 2;
	put16(out + p, RSA_BITS), p += 2;
	put32(out + p, 0), p += 4; /* exponent 0: the default, 65537 */
	put16(out + p, RSA_BYTES), p += 2;
	if (BN_bn2binpad(n, out + p, RSA_BYTES) != RSA_BYTES)
		return hash_ssl_error("BN_bn2binpad");
	p += RSA_BYTES;
	put16(out, (uint16_t)(p - 2));
	*ret_len = p;
	return 0;
}

static int public_of(EVP_PKEY *pkey, bool ek, struct tpm_public *ret_pub, char **ret_b64,
		     struct err *e)
{
	_cleanup_buf_ struct buf b64 = {0};
	uint8_t raw[TPM_PUBLIC_MAX];
	size_t len = 0;
	int r;

	r = marshal_rsa(pkey, ek, raw, &len);
	if (r == -EBADMSG)
		return err_set(e, r, "the TPM pool holds a key that is not RSA-2048 with e=65537");
	if (r < 0)
		return err_set(e, r, "cannot read a key of the TPM pool");
	r = tpm_public_parse(raw, len, TPM_ALG_RSA, ret_pub, e);
	if (r < 0)
		return r;
	buf_init(&b64, 1024);
	r = base64_encode(&b64, raw, len, B64_STANDARD);
	if (r < 0)
		return r;
	*ret_b64 = buf_steal(&b64, NULL);
	return *ret_b64 ? 0 : -ENOMEM;
}

static int pool_generate(const char *path, size_t pairs, struct err *e)
{
	_cleanup_(BIO_freep) BIO *mem = BIO_new(BIO_s_mem());
	char *data = NULL;
	long len;
	int r;

	if (!mem)
		return -ENOMEM;
	for (size_t i = 0; i < pairs * 2; i++) {
		_cleanup_(EVP_PKEY_freep) EVP_PKEY *k = EVP_RSA_gen(RSA_BITS);

		if (!k)
			return err_set(e, hash_ssl_error("EVP_RSA_gen"),
				       "cannot generate an RSA-2048 key");
		if (PEM_write_bio_PrivateKey(mem, k, NULL, NULL, 0, NULL, NULL) != 1)
			return err_set(e, hash_ssl_error("PEM_write_bio_PrivateKey"),
				       "cannot encode an RSA-2048 key");
	}
	len = BIO_get_mem_data(mem, &data);
	if (len <= 0 || !data)
		return err_set(e, -EIO, "cannot encode the TPM pool");
	r = fs_write_atomic(path, data, (size_t)len, 0600, FS_KEEP_OWNER, FS_KEEP_GROUP, e);
	OPENSSL_cleanse(data, (size_t)len);
	return r;
}

static int pool_key_init(struct bench_tpm_key *k, struct err *e)
{
	int r;

	r = public_of(k->ek, true, &k->ek_pub, &k->ek_b64, e);
	if (r >= 0)
		r = public_of(k->srk, false, &k->srk_pub, &k->srk_b64, e);
	if (r >= 0 && tpm_public_name(&k->srk_pub, k->srk_name) < 0)
		r = err_set(e, -EIO, "cannot compute the SRK's Name");
	return r;
}

int bench_tpm_pool_load(const char *path, size_t create_pairs, struct bench_tpm_pool **ret,
			struct err *e)
{
	_cleanup_(bench_tpm_pool_freep) struct bench_tpm_pool *p = NULL;
	_cleanup_(BIO_freep) BIO *mem = NULL;
	_cleanup_buf_ struct buf text = {0};
	_cleanup_free_ EVP_PKEY **keys = NULL;
	size_t n = 0;
	int r;

	*ret = NULL;
	if (create_pairs > BENCH_TPM_POOL_MAX)
		return err_set(e, -EINVAL, "a TPM pool holds at most %d key pairs",
			       BENCH_TPM_POOL_MAX);
	buf_init_secret(&text, POOL_FILE_MAX);
	r = fs_read_file(path, POOL_FILE_MAX, &text, e);
	if (r == -ENOENT && create_pairs > 0) {
		err_clear(e);
		r = pool_generate(path, create_pairs, e);
		if (r < 0)
			return r;
		r = fs_read_file(path, POOL_FILE_MAX, &text, e);
	}
	if (r < 0)
		return r;
	mem = BIO_new_mem_buf(text.data, (int)text.len);
	keys = calloc(BENCH_TPM_POOL_MAX * 2, sizeof(*keys));
	if (!mem || !keys)
		return -ENOMEM;
	for (;;) {
		EVP_PKEY *k = PEM_read_bio_PrivateKey(mem, NULL, NULL, NULL);

		if (!k)
			break;
		if (n == BENCH_TPM_POOL_MAX * 2) {
			EVP_PKEY_free(k);
			r = err_set(e, -EBADMSG, "%s: more than %d key pairs", path,
				    BENCH_TPM_POOL_MAX);
			goto out;
		}
		keys[n++] = k;
	}
	ERR_clear_error(); /* the end of the input is an error to PEM_read */
	if (n == 0 || n % 2 != 0) {
		r = err_set(e, -EBADMSG, "%s: expected EK and SRK private keys in pairs, found %zu",
			    path, n);
		goto out;
	}
	p = calloc(1, sizeof(*p));
	if (p)
		p->keys = calloc(n / 2, sizeof(*p->keys));
	if (!p || !p->keys) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n / 2; i++) {
		p->keys[i].ek = keys[2 * i];
		p->keys[i].srk = keys[2 * i + 1];
		keys[2 * i] = keys[2 * i + 1] = NULL;
		p->n++;
		r = pool_key_init(&p->keys[i], e);
		if (r < 0) {
			err_prefix(e, r, "%s", path);
			goto out;
		}
	}
	*ret = TAKE_PTR(p);
	r = 0;
out:
	for (size_t i = 0; i < n; i++)
		EVP_PKEY_free(keys[i]);
	return r;
}

void bench_tpm_pool_free(struct bench_tpm_pool *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n; i++) {
		EVP_PKEY_free(p->keys[i].ek);
		EVP_PKEY_free(p->keys[i].srk);
		free(p->keys[i].ek_b64);
		free(p->keys[i].srk_b64);
	}
	free(p->keys);
	free(p);
}

const struct bench_tpm_key *bench_tpm_pool_get(const struct bench_tpm_pool *p, uint64_t index)
{
	return &p->keys[index % p->n];
}

/* --- the software TPM ------------------------------------------------------ */

/* RSAES-OAEP (SHA-256, MGF1-SHA-256) decryption with the label and its NUL,
 * as TPM2_ActivateCredential and TPM2_Import decrypt their seeds. Returns
 * the plaintext size, or a negative errno. */
static int oaep_decrypt(EVP_PKEY *key, const char *label, const uint8_t *in, size_t in_len,
			uint8_t *out, size_t out_max)
{
	_cleanup_(EVP_PKEY_CTX_freep) EVP_PKEY_CTX *ctx =
	    EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);
	size_t label_len = strlen(label) + 1;
	size_t out_len = out_max;
	unsigned char *l;

	if (!ctx || EVP_PKEY_decrypt_init(ctx) != 1 ||
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
	if (EVP_PKEY_decrypt(ctx, out, &out_len, in, in_len) != 1) {
		(void)hash_ssl_error("RSA-OAEP decrypt");
		return -EBADMSG;
	}
	return (int)out_len;
}

/* AES-128-CFB128 with a zero IV, the TPM's parameter encryption. */
static int cfb_decrypt(const uint8_t key[16], const uint8_t *in, size_t len, uint8_t *out)
{
	static const uint8_t iv[16];
	_cleanup_(EVP_CIPHER_CTX_freep) EVP_CIPHER_CTX *ctx = NULL;
	int n = 0, fin = 0;

	if (len == 0)
		return 0;
	ctx = EVP_CIPHER_CTX_new();
	if (!ctx)
		return -ENOMEM;
	if (EVP_DecryptInit_ex(ctx, EVP_aes_128_cfb128(), NULL, key, iv) != 1 ||
	    EVP_DecryptUpdate(ctx, out, &n, in, (int)len) != 1 ||
	    EVP_DecryptFinal_ex(ctx, out + n, &fin) != 1 || (size_t)n + (size_t)fin != len)
		return hash_ssl_error("AES-128-CFB");
	return 0;
}

/* Scratch space for one unwrap, wiped at the end. */
struct unwrap_secrets {
	uint8_t seed[RSA_BYTES];
	uint8_t hmac_key[HASH_SHA256_LEN];
	uint8_t sym_key[16];
	uint8_t inner[INNER_KEY_BYTES];
	uint8_t plain[512];
	uint8_t enc_sens[512];
};

static void unwrap_secrets_wipe(struct unwrap_secrets *s)
{
	explicit_bzero(s, sizeof(*s));
}

#define UNWRAP "authentication key blob: "

/* TPM2_ActivateCredential: the inner wrapper key from items 1 and 2. */
static int activate(const struct bench_tpm_key *k, const struct tpm_blob *b,
		    struct unwrap_secrets *s, struct err *e)
{
	struct cursor c = cursor_make(b->id_object.data, b->id_object.size);
	const uint8_t *integrity, *enc, *inner;
	uint16_t integrity_len, inner_len;
	uint8_t mac[HASH_SHA256_LEN];
	size_t enc_len;
	int r;

	if (cursor_get_sized16(&c, &integrity, &integrity_len) < 0 ||
	    integrity_len != HASH_SHA256_LEN || c.left == 0 || c.left > sizeof(s->plain))
		return err_set(e, -EBADMSG, UNWRAP "credentialBlob is malformed");
	enc = c.p;
	enc_len = c.left;
	r = oaep_decrypt(k->ek, "IDENTITY", b->secret.data, b->secret.size, s->seed,
			 sizeof(s->seed));
	if (r == -EBADMSG || r != SEED_BYTES)
		return err_set(e, -EBADMSG, UNWRAP "the EK cannot decrypt the credential seed");
	if (r < 0)
		return r;
	r = tpm_kdfa_sha256(s->seed, SEED_BYTES, "INTEGRITY", NULL, 0, NULL, 0, 256, s->hmac_key);
	if (r >= 0)
		r = hash_hmac_sha256v(s->hmac_key, sizeof(s->hmac_key),
				      (const struct iovec[]){{(void *)enc, enc_len},
							     {(void *)k->srk_name, TPM_NAME_LEN}},
				      2, mac);
	if (r < 0)
		return r;
	if (CRYPTO_memcmp(mac, integrity, HASH_SHA256_LEN) != 0)
		return err_set(e, -EBADMSG,
			       UNWRAP "the credential's integrity HMAC does not match (another "
				      "EK or SRK?)");
	r = tpm_kdfa_sha256(s->seed, SEED_BYTES, "STORAGE", k->srk_name, TPM_NAME_LEN, NULL, 0, 128,
			    s->sym_key);
	if (r >= 0)
		r = cfb_decrypt(s->sym_key, enc, enc_len, s->plain);
	if (r < 0)
		return r;
	c = cursor_make(s->plain, enc_len);
	if (cursor_get_sized16(&c, &inner, &inner_len) < 0 || inner_len != INNER_KEY_BYTES ||
	    cursor_expect_end(&c) < 0)
		return err_set(e, -EBADMSG, UNWRAP "the credential is not a 16-byte key");
	memcpy(s->inner, inner, INNER_KEY_BYTES);
	return 0;
}

/* TPM2_Import: the HMAC key from items 3 to 5 and the inner wrapper key. */
static int import(const struct bench_tpm_key *k, const struct tpm_blob *b, struct unwrap_secrets *s,
		  uint8_t *ret_key, size_t *ret_len, struct err *e)
{
	struct cursor c = cursor_make(b->duplicate.data, b->duplicate.size);
	const uint8_t *outer, *dup, *integrity, *sens, *auth, *seed_value, *key;
	uint16_t outer_len, integrity_len, sens_len, type, auth_len, seed_len, key_len;
	uint8_t name[TPM_NAME_LEN], digest[HASH_SHA256_LEN];
	struct tpm_public id_pub;
	size_t dup_len;
	int r;

	if (cursor_get_sized16(&c, &outer, &outer_len) < 0 || outer_len != HASH_SHA256_LEN ||
	    c.left == 0 || c.left > sizeof(s->plain))
		return err_set(e, -EBADMSG, UNWRAP "duplicate is malformed");
	dup = c.p;
	dup_len = c.left;
	r = tpm_public_parse(b->id_public.tpm2b, b->id_public.tpm2b_len, TPM_ALG_KEYEDHASH, &id_pub,
			     e);
	if (r < 0)
		return r;
	r = tpm_public_name(&id_pub, name);
	if (r < 0)
		return r;
	r = oaep_decrypt(k->srk, "DUPLICATE", b->in_sym_seed.data, b->in_sym_seed.size, s->seed,
			 sizeof(s->seed));
	if (r == -EBADMSG || r != SEED_BYTES)
		return err_set(e, -EBADMSG, UNWRAP "the SRK cannot decrypt the import seed");
	if (r < 0)
		return r;
	r = tpm_kdfa_sha256(s->seed, SEED_BYTES, "INTEGRITY", NULL, 0, NULL, 0, 256, s->hmac_key);
	if (r >= 0)
		r = hash_hmac_sha256v(
		    s->hmac_key, sizeof(s->hmac_key),
		    (const struct iovec[]){{(void *)dup, dup_len}, {name, sizeof(name)}}, 2,
		    digest);
	if (r < 0)
		return r;
	if (CRYPTO_memcmp(digest, outer, HASH_SHA256_LEN) != 0)
		return err_set(e, -EBADMSG, UNWRAP "the duplicate's outer HMAC does not match");
	r = tpm_kdfa_sha256(s->seed, SEED_BYTES, "STORAGE", name, sizeof(name), NULL, 0, 128,
			    s->sym_key);
	if (r >= 0)
		r = cfb_decrypt(s->sym_key, dup, dup_len, s->enc_sens);
	if (r >= 0)
		r = cfb_decrypt(s->inner, s->enc_sens, dup_len, s->plain);
	if (r < 0)
		return r;

	/* TPM2B innerIntegrity = H(TPM2B_SENSITIVE || Name), then TPM2B_SENSITIVE. */
	c = cursor_make(s->plain, dup_len);
	if (cursor_get_sized16(&c, &integrity, &integrity_len) < 0 ||
	    integrity_len != HASH_SHA256_LEN)
		return err_set(e, -EBADMSG, UNWRAP "the inner integrity is malformed");
	sens = c.p;
	r = hash_sha256v((const struct iovec[]){{(void *)sens, c.left}, {name, sizeof(name)}}, 2,
			 digest);
	if (r < 0)
		return r;
	if (CRYPTO_memcmp(digest, integrity, HASH_SHA256_LEN) != 0)
		return err_set(e, -EBADMSG, UNWRAP "the inner integrity does not match");
	if (cursor_get_u16be(&c, &sens_len) < 0 || sens_len != c.left ||
	    cursor_get_u16be(&c, &type) < 0 || type != TPM_ALG_KEYEDHASH ||
	    cursor_get_sized16(&c, &auth, &auth_len) < 0 ||
	    cursor_get_sized16(&c, &seed_value, &seed_len) < 0 ||
	    cursor_get_sized16(&c, &key, &key_len) < 0 || cursor_expect_end(&c) < 0 ||
	    key_len < TPM_BLOB_KEY_MIN || key_len > TPM_BLOB_KEY_MAX)
		return err_set(e, -EBADMSG, UNWRAP "the sensitive area is malformed");
	(void)auth;
	/* Import checks unique = H(seedValue || key). */
	r = hash_sha256v(
	    (const struct iovec[]){{(void *)seed_value, seed_len}, {(void *)key, key_len}}, 2,
	    digest);
	if (r < 0)
		return r;
	if (id_pub.unique_len != HASH_SHA256_LEN ||
	    CRYPTO_memcmp(digest, id_pub.unique, HASH_SHA256_LEN) != 0)
		return err_set(e, -EBADMSG, UNWRAP "the ID key's unique does not match its key");
	memcpy(ret_key, key, key_len);
	*ret_len = key_len;
	return 0;
}

int bench_tpm_unwrap(const struct bench_tpm_key *k, const void *blob, size_t len, uint8_t *ret_key,
		     size_t *ret_len, struct err *e)
{
	struct unwrap_secrets s;
	struct tpm_blob b;
	int r;

	*ret_len = 0;
	r = tpm_blob_parse(blob, len, &b, e);
	if (r < 0)
		return r;
	r = activate(k, &b, &s, e);
	if (r >= 0)
		r = import(k, &b, &s, ret_key, ret_len, e);
	unwrap_secrets_wipe(&s);
	return r;
}

/* --- time and statistics ---------------------------------------------------- */

uint64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int bench_samples_add(struct bench_samples *s, double ms)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 1024;
		double *v = reallocarray(s->v, cap, sizeof(*v));

		if (!v)
			return -ENOMEM;
		s->v = v;
		s->cap = cap;
	}
	s->v[s->n++] = ms;
	s->sorted = false;
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

double bench_samples_percentile(struct bench_samples *s, double p)
{
	size_t rank;

	if (s->n == 0)
		return 0;
	if (!s->sorted) {
		qsort(s->v, s->n, sizeof(*s->v), cmp_double);
		s->sorted = true;
	}
	/* Nearest rank: the smallest value with at least p% of samples <= it. */
	rank = (size_t)((p / 100.0) * (double)s->n + 0.999999);
	if (rank < 1)
		rank = 1;
	if (rank > s->n)
		rank = s->n;
	return s->v[rank - 1];
}

double bench_samples_mean(const struct bench_samples *s)
{
	double sum = 0;

	if (s->n == 0)
		return 0;
	for (size_t i = 0; i < s->n; i++)
		sum += s->v[i];
	return sum / (double)s->n;
}

void bench_samples_free(struct bench_samples *s)
{
	free(s->v);
	*s = (struct bench_samples){0};
}

int bench_parse_u64(const char *s, uint64_t max, uint64_t *ret)
{
	unsigned long long v;
	char *end;

	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v > max)
		return -EINVAL;
	*ret = v;
	return 0;
}
