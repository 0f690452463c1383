/* SPDX-License-Identifier: MIT */
/*
 * Shared access signature (SAS) tokens, as DPS and IoT Hub use them
 * (dps-protocol.md §2):
 *
 *   SharedAccessSignature sr=<resource>&sig=<signature>&se=<expiry>[&skn=<key name>]
 *
 * The signature is base64(HMAC-SHA256(key, sr + "\n" + se)) over sr and se
 * exactly as they appear in the token. Clients disagree on how they encode
 * sr (not at all, %2F, %2f), and each signs its own form, so a verifier
 * must never normalise sr before checking the signature.
 *
 * Verification failures are distinct negative errnos (SAS_E_*), so that a
 * server can map each to its own protocol error, and come with one
 * sentence in struct err.
 */
#ifndef EDGEID_CRYPTO_SAS_H
#define EDGEID_CRYPTO_SAS_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/macro.h"

#define SAS_SCHEME "SharedAccessSignature"
/* Longest token accepted, header scheme included. Real tokens are well
 * under 512 bytes; the limit only bounds what a client can make us copy. */
#define SAS_TOKEN_MAX 4096
/* The C# validator's MaxClockSkew. */
#define SAS_DEFAULT_CLOCK_SKEW 300
/* Longest key accepted after base64 decoding (DPS keys are 16-64 bytes). */
#define SAS_KEY_MAX 512

#define SAS_E_MALFORMED (-EBADMSG)      /* not a well-formed token */
#define SAS_E_EXPIRED (-EKEYEXPIRED)    /* se + clock skew is in the past */
#define SAS_E_SIGNATURE (-EKEYREJECTED) /* sig matches none of the keys */
#define SAS_E_RESOURCE (-EACCES)        /* sr is not the expected resource */
#define SAS_E_KEY_NAME (-ENOKEY)        /* skn missing or not the expected one */

/* A parsed token. Every string is NUL-terminated and exactly as received
 * (nothing is URL-decoded), owned by the token. */
struct sas_token {
	const char *sr;  /* the resource, still encoded as the client sent it */
	const char *sig; /* the URL-encoded base64 signature */
	const char *se;  /* the expiry text: it is what was signed */
	const char *skn; /* the key name, or NULL when the token has none */
	uint64_t expiry; /* se as seconds since the Unix epoch */
	char *storage_;  /* private: the copy the fields point into */
};

/* Parse a token: "SharedAccessSignature " (scheme matched case-insensitively,
 * then one space), then fields separated by '&', each split on its first
 * '='. Field names are case-insensitive and may come in any order; unknown
 * fields are ignored. text is len bytes and need not be NUL-terminated.
 * Returns 0 and a new token in *ret (free with sas_token_free), or:
 *   SAS_E_MALFORMED  longer than SAS_TOKEN_MAX, NUL or control characters,
 *                    wrong scheme, a field without '=', a duplicated or empty
 *                    sr/sig/se/skn, a missing sr/sig/se, se not a decimal
 *                    number of at most 20 digits that fits in 64 bits;
 *   -ENOMEM. */
int sas_token_parse(const char *text, size_t len, struct sas_token **ret,
		    struct err *e) _nodiscard_;
/* Accepts NULL. */
void sas_token_free(struct sas_token *t);
DEFINE_CLEANUP_FUNC(struct sas_token *, sas_token_free)
#define _cleanup_sas_token_ _cleanup_(sas_token_freep)

struct sas_verify_opts {
	/* Required: the resource the request is for, decoded, e.g.
	 * "0ne00000A0A/registrations/dev1" or "hub.example/devices/d1". The
	 * URL-decoded sr must equal it, ignoring ASCII case and one trailing
	 * '/' on either side. */
	const char *resource;
	/* Also accept an sr that is a parent of resource by whole path segments
	 * (the hub validator's prefix rule): sr "hub.example" then authorises
	 * "hub.example/devices/d1", but sr "hub.example/dev" does not authorise
	 * "hub.example/devices". */
	bool allow_parent;
	/* When non-NULL, skn must be present and, URL-decoded, equal this
	 * (case-sensitive). NULL: skn is not checked. */
	const char *key_name;
	/* The current time in seconds since the epoch; 0 means time(NULL). */
	uint64_t now;
	/* A token is accepted until se + clock_skew (inclusive). */
	uint64_t clock_skew;
};
#define SAS_VERIFY_OPTS_INIT                                                                       \
	{                                                                                          \
		.clock_skew = SAS_DEFAULT_CLOCK_SKEW                                               \
	}

/* Verify a parsed token, in the order of dps-protocol.md §2.2: signature
 * (primary key, then secondary), expiry, resource, key name. Keys are
 * base64 (standard alphabet, padding optional); secondary_key may be NULL.
 * On success *ret_key_index (may be NULL) is 0 for the primary key, 1 for
 * the secondary. Returns 0, or:
 *   SAS_E_MALFORMED  sig or sr has a bad or %00 percent-escape;
 *   SAS_E_SIGNATURE  the signature matches neither key;
 *   SAS_E_EXPIRED    se + clock_skew < now;
 *   SAS_E_RESOURCE   sr is not opts->resource (or, with allow_parent, a parent);
 *   SAS_E_KEY_NAME   skn is missing or different from opts->key_name;
 *   -EINVAL          a key is empty, longer than SAS_KEY_MAX or not base64,
 *                    or opts->resource is NULL (the caller's mistake);
 *   -ENOMEM, -EIO. */
int sas_verify(const struct sas_token *t, const char *primary_key, const char *secondary_key,
	       const struct sas_verify_opts *opts, unsigned *ret_key_index,
	       struct err *e) _nodiscard_;

/* Append base64(HMAC-SHA256(key, sr + "\n" + se)) to ret_sig (not
 * URL-encoded). 0, -E2BIG, -ENOMEM, -EIO. */
int sas_sign(const void *key, size_t key_len, const char *sr, const char *se,
	     struct buf *ret_sig) _nodiscard_;

enum sas_create_flags {
	/* Percent-encode the resource, '/' included, with uppercase escapes
	 * (Node's encodeURIComponent). Without it sr is sent as given. */
	SAS_SR_URL_ENCODE = 1 << 0,
	/* With SAS_SR_URL_ENCODE: lowercase escapes, "%2f" (the C SDK). */
	SAS_SR_LOWER_HEX = 1 << 1,
	/* Field order sr, sig, skn, se (Node's SharedAccessSignature.create)
	 * instead of the default sr, sig, se, skn. */
	SAS_SKN_BEFORE_SE = 1 << 2,
};

/* Build a token for resource, signed with key_b64 (base64), expiring at
 * expiry, with skn=key_name when key_name is non-NULL. sig and skn are
 * URL-encoded with uppercase escapes. The token is appended to ret_token,
 * which is left unchanged on failure. Returns 0, -EINVAL (empty resource
 * or key_name, bad key, unknown flag), -E2BIG, -ENOMEM, -EIO. */
int sas_token_create(const char *resource, const char *key_b64, uint64_t expiry,
		     const char *key_name, unsigned flags, struct buf *ret_token,
		     struct err *e) _nodiscard_;

/* Group enrollment key derivation (dps-protocol.md §2.4): append
 * base64(HMAC-SHA256(base64decode(group_key_b64), registration_id)) to
 * ret_key_b64 (a secret buffer is advisable). 0, -EINVAL (bad group key,
 * empty registration id), -E2BIG, -ENOMEM, -EIO. */
int sas_derive_device_key(const char *group_key_b64, const char *registration_id,
			  struct buf *ret_key_b64, struct err *e) _nodiscard_;

#endif
