/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>

#include <openssl/crypto.h>

#include "common/encode.h"
#include "crypto/hash.h"
#include "crypto/sas.h"

/* base64 of a SHA-256 HMAC is 44 characters; leave room for a client that
 * URL-encodes it twice, which then simply fails to verify. */
#define SAS_SIG_MAX 256

enum sas_field {
	FIELD_SR,
	FIELD_SIG,
	FIELD_SE,
	FIELD_SKN,
	FIELD_COUNT,
};

static const char *const field_names[FIELD_COUNT] = {"sr", "sig", "se", "skn"};

static char ascii_lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* Locale-independent case-insensitive comparison of n bytes. */
static bool ascii_caseeq(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (ascii_lower(a[i]) != ascii_lower(b[i]))
			return false;
	return true;
}

void sas_token_free(struct sas_token *t)
{
	if (!t)
		return;
	free(t->storage_);
	free(t);
}

static int parse_expiry(const char *s, uint64_t *ret)
{
	size_t n = strlen(s);
	uint64_t v = 0;

	if (n == 0 || n > 20)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		unsigned d;

		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		d = (unsigned)(s[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -EINVAL;
		v = v * 10 + d;
	}
	*ret = v;
	return 0;
}

int sas_token_parse(const char *text, size_t len, struct sas_token **ret, struct err *e)
{
	_cleanup_sas_token_ struct sas_token *t = NULL;
	const size_t scheme_len = strlen(SAS_SCHEME);
	const char *values[FIELD_COUNT] = {0};
	char *p;

	if (!text)
		len = 0;
	if (len > SAS_TOKEN_MAX)
		return err_set(e, SAS_E_MALFORMED, "SAS token: longer than %d bytes",
			       SAS_TOKEN_MAX);
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)text[i] < 0x20 || text[i] == 0x7f)
			return err_set(e, SAS_E_MALFORMED,
				       "SAS token: control character at offset %zu", i);
	if (len <= scheme_len || text[scheme_len] != ' ' ||
	    !ascii_caseeq(text, SAS_SCHEME, scheme_len))
		return err_set(e, SAS_E_MALFORMED,
			       "SAS token: expected \"" SAS_SCHEME " sr=...&sig=...&se=...\"");

	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->storage_ = strndup(text + scheme_len + 1, len - scheme_len - 1);
	if (!t->storage_)
		return -ENOMEM;

	p = t->storage_;
	for (;;) {
		char *amp = strchr(p, '&');
		char *eq;
		size_t f;

		if (amp)
			*amp = '\0';
		if (*p == '\0')
			return err_set(e, SAS_E_MALFORMED, "SAS token: empty field");
		eq = strchr(p, '=');
		if (!eq)
			return err_set(e, SAS_E_MALFORMED, "SAS token: field \"%.32s\" has no '='",
				       p);
		*eq = '\0';
		for (f = 0; f < FIELD_COUNT; f++)
			if (strlen(p) == strlen(field_names[f]) &&
			    ascii_caseeq(p, field_names[f], strlen(p)))
				break;
		/* Unknown fields are not signed and mean nothing to us. */
		if (f < FIELD_COUNT) {
			if (values[f])
				return err_set(e, SAS_E_MALFORMED,
					       "SAS token: duplicate field \"%s\"", field_names[f]);
			if (eq[1] == '\0')
				return err_set(e, SAS_E_MALFORMED,
					       "SAS token: field \"%s\" is empty", field_names[f]);
			values[f] = eq + 1;
		}
		if (!amp)
			break;
		p = amp + 1;
	}

	for (size_t f = 0; f < FIELD_SKN; f++)
		if (!values[f])
			return err_set(e, SAS_E_MALFORMED, "SAS token: missing field \"%s\"",
				       field_names[f]);
	if (parse_expiry(values[FIELD_SE], &t->expiry) < 0)
		return err_set(e, SAS_E_MALFORMED,
			       "SAS token: se: expected seconds since the epoch as a decimal "
			       "number, got \"%.32s\"",
			       values[FIELD_SE]);

	t->sr = values[FIELD_SR];
	t->sig = values[FIELD_SIG];
	t->se = values[FIELD_SE];
	t->skn = values[FIELD_SKN];
	*ret = TAKE_PTR(t);
	return 0;
}

/* Decode a base64 key into a secret buffer the caller has zeroed. */
static int key_decode(const char *what, const char *b64, struct buf *ret, struct err *e)
{
	size_t bad = 0;
	int r;

	buf_init_secret(ret, SAS_KEY_MAX);
	if (!b64 || !*b64)
		return err_set(e, -EINVAL, "%s: empty key", what);
	r = base64_decode(ret, b64, strlen(b64), B64_PAD_OPTIONAL, &bad);
	if (r == -E2BIG)
		return err_set(e, -EINVAL, "%s: longer than %d bytes", what, SAS_KEY_MAX);
	if (r == -EINVAL)
		return err_set(e, -EINVAL, "%s: not valid base64 (at offset %zu)", what, bad);
	if (r < 0)
		return err_set(e, r, "%s: %s", what, strerror(-r));
	if (ret->len == 0)
		return err_set(e, -EINVAL, "%s: empty key", what);
	return 0;
}

int sas_sign(const void *key, size_t key_len, const char *sr, const char *se, struct buf *ret_sig)
{
	struct iovec iov[] = {
	    {(void *)sr, strlen(sr)},
	    {(void *)"\n", 1},
	    {(void *)se, strlen(se)},
	};
	uint8_t mac[HASH_SHA256_LEN];
	int r;

	r = hash_hmac_sha256v(key, key_len, iov, ARRAY_SIZE(iov), mac);
	if (r < 0)
		return r;
	r = base64_encode(ret_sig, mac, sizeof(mac), B64_STANDARD);
	explicit_bzero(mac, sizeof(mac));
	return r;
}

/* 1 when the signature matches, 0 when not, negative on failure. */
static int signature_matches(const struct buf *key, const struct sas_token *t,
			     const struct buf *sig)
{
	_cleanup_buf_ struct buf want = {0};
	int r;

	/* The expected signature is a valid token for (sr, se): keep it secret. */
	buf_init_secret(&want, SAS_SIG_MAX);
	r = sas_sign(key->data, key->len, t->sr, t->se, &want);
	if (r < 0)
		return r;
	return want.len == sig->len && CRYPTO_memcmp(want.data, sig->data, sig->len) == 0;
}

/* Both strings with one trailing '/' ignored; sr may be a parent of want by
 * whole segments when allow_parent. */
static bool resource_matches(const char *sr, size_t sr_len, const char *want, bool allow_parent)
{
	size_t want_len = strlen(want);

	if (sr_len > 0 && sr[sr_len - 1] == '/')
		sr_len--;
	if (want_len > 0 && want[want_len - 1] == '/')
		want_len--;
	if (sr_len == want_len)
		return ascii_caseeq(sr, want, sr_len);
	if (!allow_parent || sr_len == 0 || sr_len > want_len)
		return false;
	return want[sr_len] == '/' && ascii_caseeq(sr, want, sr_len);
}

int sas_verify(const struct sas_token *t, const char *primary_key, const char *secondary_key,
	       const struct sas_verify_opts *opts, unsigned *ret_key_index, struct err *e)
{
	_cleanup_buf_ struct buf key0 = {0};
	_cleanup_buf_ struct buf key1 = {0};
	struct buf *keys[2] = {&key0, &key1};
	_cleanup_buf_ struct buf sig = {0};
	_cleanup_buf_ struct buf sr = {0};
	const char *key_b64[2] = {primary_key, secondary_key};
	static const char *const key_what[2] = {"primary key", "secondary key"};
	size_t n_keys = secondary_key ? 2 : 1;
	unsigned matched = 0;
	uint64_t now;
	int r;

	if (!t || !opts || !opts->resource)
		return err_set(e, -EINVAL, "SAS verification: no expected resource given");
	for (size_t i = 0; i < n_keys; i++) {
		r = key_decode(key_what[i], key_b64[i], keys[i], e);
		if (r < 0)
			return r;
	}

	buf_init(&sig, SAS_SIG_MAX);
	r = url_decode(&sig, t->sig, strlen(t->sig), false);
	if (r == -E2BIG)
		return err_set(e, SAS_E_SIGNATURE, "SAS token: signature does not match");
	if (r < 0)
		return err_set(e, r == -EINVAL ? SAS_E_MALFORMED : r,
			       "SAS token: sig: bad percent-escape");

	for (matched = 0; matched < n_keys; matched++) {
		r = signature_matches(keys[matched], t, &sig);
		if (r < 0)
			return err_set(e, r, "SAS token: computing the signature failed");
		if (r > 0)
			break;
	}
	if (matched == n_keys)
		return err_set(e, SAS_E_SIGNATURE, "SAS token: signature does not match");

	now = opts->now ? opts->now : (uint64_t)time(NULL);
	if (t->expiry < now && now - t->expiry > opts->clock_skew)
		return err_set(e, SAS_E_EXPIRED,
			       "SAS token: expired at %" PRIu64 " (now %" PRIu64 ", %" PRIu64
			       " s of clock skew allowed)",
			       t->expiry, now, opts->clock_skew);

	buf_init(&sr, SAS_TOKEN_MAX);
	r = url_decode(&sr, t->sr, strlen(t->sr), false);
	if (r < 0)
		return err_set(e, r == -EINVAL ? SAS_E_MALFORMED : r,
			       "SAS token: sr: bad percent-escape");
	if (!resource_matches(sr.data ? sr.data : "", sr.len, opts->resource, opts->allow_parent))
		return err_set(e, SAS_E_RESOURCE,
			       "SAS token: resource \"%.256s\" does not match \"%.256s\"",
			       buf_str(&sr), opts->resource);

	if (opts->key_name) {
		_cleanup_buf_ struct buf skn = {0};

		if (!t->skn)
			return err_set(e, SAS_E_KEY_NAME, "SAS token: no skn, expected \"%s\"",
				       opts->key_name);
		buf_init(&skn, SAS_TOKEN_MAX);
		r = url_decode(&skn, t->skn, strlen(t->skn), false);
		if (r < 0)
			return err_set(e, r == -EINVAL ? SAS_E_MALFORMED : r,
				       "SAS token: skn: bad percent-escape");
		if (!streq(buf_str(&skn), opts->key_name))
			return err_set(
			    e, SAS_E_KEY_NAME,
			    "SAS token: skn \"%.64s\" is not the expected key name \"%s\"",
			    buf_str(&skn), opts->key_name);
	}

	if (ret_key_index)
		*ret_key_index = matched;
	return 0;
}

/* Characters that would break the token's syntax if sr were sent raw. */
static bool resource_needs_encoding(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s <= 0x20 || *s == 0x7f || *s == '&')
			return true;
	return false;
}

int sas_token_create(const char *resource, const char *key_b64, uint64_t expiry,
		     const char *key_name, unsigned flags, struct buf *ret_token, struct err *e)
{
	const unsigned known = SAS_SR_URL_ENCODE | SAS_SR_LOWER_HEX | SAS_SKN_BEFORE_SE;
	_cleanup_buf_ struct buf key = {0};
	_cleanup_buf_ struct buf sr = {0};
	_cleanup_buf_ struct buf sig = {0};
	_cleanup_buf_ struct buf tok = {0};
	char se[24];
	int r;

	if (flags & ~known)
		return err_set(e, -EINVAL, "SAS token: unknown flags 0x%x", flags & ~known);
	if ((flags & SAS_SR_LOWER_HEX) && !(flags & SAS_SR_URL_ENCODE))
		return err_set(e, -EINVAL, "SAS token: lowercase escapes need URL encoding");
	if (!resource || !*resource)
		return err_set(e, -EINVAL, "SAS token: empty resource");
	if (key_name && !*key_name)
		return err_set(e, -EINVAL, "SAS token: empty key name");
	if (!(flags & SAS_SR_URL_ENCODE) && resource_needs_encoding(resource))
		return err_set(e, -EINVAL,
			       "SAS token: resource \"%.256s\" must be URL-encoded to be sent",
			       resource);
	r = key_decode("SAS key", key_b64, &key, e);
	if (r < 0)
		return r;

	buf_init(&sr, SAS_TOKEN_MAX);
	if (flags & SAS_SR_URL_ENCODE) {
		r = url_encode(&sr, resource, strlen(resource), NULL);
		if (r >= 0 && (flags & SAS_SR_LOWER_HEX))
			for (size_t i = 0; i + 2 < sr.len; i++)
				if (sr.data[i] == '%') {
					sr.data[i + 1] = ascii_lower(sr.data[i + 1]);
					sr.data[i + 2] = ascii_lower(sr.data[i + 2]);
				}
	} else {
		r = buf_append_str(&sr, resource);
	}
	if (r < 0)
		return err_set(e, r, "SAS token: resource too long");

	(void)snprintf(se, sizeof(se), "%" PRIu64, expiry);
	buf_init(&sig, SAS_SIG_MAX);
	r = sas_sign(key.data, key.len, buf_str(&sr), se, &sig);
	if (r < 0)
		return err_set(e, r, "SAS token: signing failed");

	buf_init(&tok, SAS_TOKEN_MAX);
	r = buf_printf(&tok, SAS_SCHEME " sr=%s&sig=", buf_str(&sr));
	if (r >= 0)
		r = url_encode(&tok, sig.data, sig.len, NULL);
	if (r >= 0 && key_name && (flags & SAS_SKN_BEFORE_SE)) {
		r = buf_append_str(&tok, "&skn=");
		if (r >= 0)
			r = url_encode(&tok, key_name, strlen(key_name), NULL);
	}
	if (r >= 0)
		r = buf_printf(&tok, "&se=%s", se);
	if (r >= 0 && key_name && !(flags & SAS_SKN_BEFORE_SE)) {
		r = buf_append_str(&tok, "&skn=");
		if (r >= 0)
			r = url_encode(&tok, key_name, strlen(key_name), NULL);
	}
	if (r >= 0)
		r = buf_append(ret_token, tok.data, tok.len);
	if (r < 0)
		return err_set(e, r, "SAS token: longer than %d bytes", SAS_TOKEN_MAX);
	return 0;
}

int sas_derive_device_key(const char *group_key_b64, const char *registration_id,
			  struct buf *ret_key_b64, struct err *e)
{
	_cleanup_buf_ struct buf key = {0};
	uint8_t mac[HASH_SHA256_LEN];
	int r;

	if (!registration_id || !*registration_id)
		return err_set(e, -EINVAL, "key derivation: empty registration id");
	r = key_decode("group key", group_key_b64, &key, e);
	if (r < 0)
		return r;
	r = hash_hmac_sha256(key.data, key.len, registration_id, strlen(registration_id), mac);
	if (r < 0)
		return err_set(e, r, "key derivation: HMAC failed");
	r = base64_encode(ret_key_b64, mac, sizeof(mac), B64_STANDARD);
	explicit_bzero(mac, sizeof(mac));
	if (r < 0)
		return err_set(e, r, "key derivation: output buffer too small");
	return 0;
}
