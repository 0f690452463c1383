/* SPDX-License-Identifier: MIT */
/*
 * keyd: every private and secret key of the device, behind aziot's Keys
 * Service API (specs/aziot-compat.md §2.1). See docs/internals/keyd.md for
 * what crosses its boundary.
 *
 * keyd.c        the daemon: settings, routes, the HTTP handlers
 * keyd_handle.c key handles: HMAC-authenticated, opaque to callers
 * keyd_store.c  where a key id lives and the operations on it
 * keyd_pkcs11.c keys in a PKCS#11 token, through the module's functions
 */
#ifndef EDGEID_DEVICE_KEYD_H
#define EDGEID_DEVICE_KEYD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/types.h>

#include "common/buf.h"
#include "common/err.h"
#include "device/daemon/daemon.h"

/* The daemon, for edgeidd's table. */
extern const struct daemon_spec keyd_spec;

/* The symmetric key keyd signs its handles with (aziot's id, so that an
 * existing device's key, and the handles made with it, stay valid). */
#define KEYD_HANDLE_KEY_ID "handle-validation-key"

/* --- key handles (keyd_handle.c) -------------------------------------- */

enum keyd_id_kind {
	KEYD_ID_KEY_PAIR,
	KEYD_ID_KEY,
	KEYD_ID_DERIVED,
};

struct keyd_id {
	enum keyd_id_kind kind;
	char *id;          /* KEY_PAIR, KEY: the key id */
	char *base_handle; /* DERIVED: the handle of the base key */
	uint8_t *data;     /* DERIVED: the derivation data */
	size_t data_len;
};

void keyd_id_clear(struct keyd_id *id);

/* HMAC-SHA256 with the handle key over data. Returns 0 or a negative
 * errno. */
typedef int (*keyd_mac_fn)(void *ctx, const void *data, size_t len, uint8_t ret[32]);

/* Longest handle keyd accepts (a derived handle embeds its base handle). */
#define KEYD_HANDLE_MAX 8192

/* A new handle for id, in aziot's format "sr=<b64 SR>&sig=<b64 MAC>"
 * where SR is {"key_id":{"KeyPair"|"Key":"<id>"} or
 * {"Derived":["<base handle>",[bytes...]]},"nonce":"<b64 of 64 random
 * bytes>"}. *ret is the caller's. Returns 0, -ENOMEM, -EIO, or mac's
 * error. */
int keyd_handle_make(keyd_mac_fn mac, void *ctx, const struct keyd_id *id, char **ret);

/* Check handle's MAC and decode it into *ret (cleared with
 * keyd_id_clear). Returns 0, -EBADMSG for anything that is not a handle
 * this key made (malformed, altered, forged, too long), or mac's error. */
int keyd_handle_parse(keyd_mac_fn mac, void *ctx, const char *handle, struct keyd_id *ret);

/* --- key storage (keyd_store.c) --------------------------------------- */

/* "<id without non-alphanumerics>-<sha256 hex of id>.key", the file name
 * aziot uses under <homedir>/keys/. *ret is the caller's. 0 or -ENOMEM. */
int keyd_key_file_name(const char *id, char **ret);

enum keyd_alg {
	KEYD_ALG_EC_P256,
	KEYD_ALG_RSA_2048,
	KEYD_ALG_RSA_4096,
};

/* aziot's preferredAlgorithms: colon-separated "ec-p256", "rsa-2048",
 * "rsa-4096", "*" (= ec-p256, rsa-2048), unknown components ignored,
 * duplicates dropped; NULL means "*". Returns the number written to
 * ret (0..3). */
size_t keyd_preferred_algorithms(const char *s, enum keyd_alg ret[3]);
const char *keyd_alg_name(enum keyd_alg alg);

/* The path of a file:// URI (percent-decoded; empty host or "localhost").
 * *ret is the caller's. Returns 0, -EINVAL (not such a URI), -ENOMEM. */
int keyd_file_uri_path(const char *uri, char **ret);

/* --- PKCS#11 (keyd_pkcs11.c) ---------------------------------------------- */

/* What keyd reads from a pkcs11: URI (RFC 7512): the slot by slot-id, token
 * label and/or serial; the object label; the pin-value. Values are
 * percent-decoded. Other attributes are accepted and ignored. */
struct keyd_p11_uri {
	char *token;
	char *serial;
	bool has_slot_id;
	unsigned long slot_id;
	char *object;
	char *pin; /* secret: wiped by keyd_p11_uri_clear */
};

/* Returns 0, -EINVAL (not a pkcs11: URI, a bad escape, an attribute twice,
 * a slot-id that is not a number), -EOPNOTSUPP (pin-source), -ENOMEM. */
int keyd_p11_uri_parse(const char *uri, struct keyd_p11_uri *ret);
void keyd_p11_uri_clear(struct keyd_p11_uri *u);
/* A copy of base naming object. 0 or -ENOMEM. */
int keyd_p11_uri_with_object(const struct keyd_p11_uri *base, const char *object,
			     struct keyd_p11_uri *ret);

struct keyd_p11;

enum keyd_p11_object {
	KEYD_P11_PRIVATE,
	KEYD_P11_PUBLIC,
	KEYD_P11_SECRET,
};

enum keyd_p11_mech {
	KEYD_P11_ECDSA,
	KEYD_P11_RSA_PKCS,
	KEYD_P11_RSA_X509,
	KEYD_P11_HMAC_SHA256,
};

/* Load and initialise the module at lib_path. All functions below return
 * 0 or a negative errno with a sentence in e (-ENOENT: no such object;
 * -EINVAL: the caller's input, with a client message). */
int keyd_p11_open(const char *lib_path, struct keyd_p11 **ret, struct err *e);
void keyd_p11_close(struct keyd_p11 *p);
/* Open (and log in to) the slot u names, to report a bad slot or pin early. */
int keyd_p11_check_slot(struct keyd_p11 *p, const struct keyd_p11_uri *u, struct err *e);
/* 1 when an object of that class has u's label, 0 when none. */
int keyd_p11_exists(struct keyd_p11 *p, const struct keyd_p11_uri *u, enum keyd_p11_object o,
		    struct err *e);
/* The public key of the pair labelled u->object. *ret is the caller's. */
int keyd_p11_public_key(struct keyd_p11 *p, const struct keyd_p11_uri *u, EVP_PKEY **ret,
			struct err *e);
int keyd_p11_generate_pair(struct keyd_p11 *p, const struct keyd_p11_uri *u, enum keyd_alg alg,
			   struct err *e);
/* Sign in with the private key (or, for HMAC, the secret key); ECDSA
 * signatures come out DER-encoded. */
int keyd_p11_sign(struct keyd_p11 *p, const struct keyd_p11_uri *u, enum keyd_p11_mech m,
		  const void *in, size_t len, struct buf *out, struct err *e);
/* Destroy every object labelled u->object (key pair: private and public). */
int keyd_p11_delete(struct keyd_p11 *p, const struct keyd_p11_uri *u, bool pair, struct err *e);
/* Relabel a key pair, after destroying any pair already labelled to. */
int keyd_p11_rename_pair(struct keyd_p11 *p, const struct keyd_p11_uri *from,
			 const struct keyd_p11_uri *to, struct err *e);
/* Generate (bytes NULL) or import a 32-byte HMAC (or AES, with aes) key.
 * -EOPNOTSUPP when the token cannot: the caller uses a file instead. */
int keyd_p11_create_secret(struct keyd_p11 *p, const struct keyd_p11_uri *u, bool aes,
			   const void *bytes, size_t len, struct err *e);
/* AES-GCM in the token: 0x02 || ct || tag, as for files. */
int keyd_p11_aead(struct keyd_p11 *p, const struct keyd_p11_uri *u, bool encrypt, const void *iv,
		  size_t iv_len, const void *aad, size_t aad_len, const void *in, size_t len,
		  struct buf *out, struct err *e);

/* --- settings and the store --------------------------------------------------- */

struct keyd_preloaded {
	char *id;
	char *path;       /* a file, already under --root; or NULL */
	char *pkcs11_uri; /* or a pkcs11: URI */
};

struct keyd_settings {
	char *homedir; /* NULL: keys only from [preloaded_keys] and the token */
	char *pkcs11_lib_path;
	char *pkcs11_base_slot; /* a pkcs11: URI */
	struct keyd_preloaded *preloaded;
	size_t n_preloaded;
};

void keyd_settings_clear(struct keyd_settings *s);

struct keyd_store;

/* Set up the store (creates <homedir>/keys 0700 and removes temporary
 * files an interrupted write left there) and load or create the handle
 * key. Returns 0 or a negative errno with a sentence in e. */
int keyd_store_new(const struct keyd_settings *s, struct keyd_store **ret, struct err *e);
void keyd_store_free(struct keyd_store *st);

/* The handle key's MAC, as a keyd_mac_fn (ctx is the store). */
int keyd_store_handle_mac(void *st, const void *data, size_t len, uint8_t ret[32]);

/*
 * Operations on key ids. Each returns 0 or a negative errno and fills e:
 *   -ENOENT, -EINVAL  the caller's mistake (no such key, wrong kind of key,
 *                     bad input); e holds the whole client message,
 *                     'a parameter has an invalid value\ncaused by: ...'
 *                     or 'parameter "x" has an invalid value\ncaused by: ...'
 *   anything else     keyd's own failure; e holds detail for the log only.
 */
int keyd_store_create_key_pair(struct keyd_store *st, const char *id, const enum keyd_alg *algs,
			       size_t n_algs, struct err *e);
int keyd_store_load_key_pair(struct keyd_store *st, const char *id, struct err *e);
int keyd_store_move_key_pair(struct keyd_store *st, const char *from, const char *to,
			     struct err *e);
int keyd_store_delete_key_pair(struct keyd_store *st, const char *id, struct err *e);
/* Public parameter name ("algorithm", "ec-curve-oid", "ec-point",
 * "rsa-modulus", "rsa-exponent") as aziot returns it (a word or base64). */
int keyd_store_key_pair_parameter(struct keyd_store *st, const char *id, const char *name,
				  char **ret, struct err *e);
/* ECDSA over a digest the caller computed; DER signature into out. */
int keyd_store_sign_ecdsa(struct keyd_store *st, const char *id, const void *digest, size_t len,
			  struct buf *out, struct err *e);
/* The RSA private-key operation ("encrypt" with RSA-PKCS1: PKCS#1 v1.5
 * type 1 padding; RSA-NO-PADDING: raw), the signing primitive. */
int keyd_store_rsa_private(struct keyd_store *st, const char *id, bool pkcs1, const void *in,
			   size_t len, struct buf *out, struct err *e);

/* Symmetric keys. In a token, an "encrypt"-only key is AES, any other a
 * generic secret for HMAC; files ignore the usage. */
int keyd_store_create_key(struct keyd_store *st, const char *id, bool aes, struct err *e);
int keyd_store_import_key(struct keyd_store *st, const char *id, const void *bytes, size_t len,
			  bool aes, struct err *e);
int keyd_store_load_key(struct keyd_store *st, const char *id, struct err *e);
int keyd_store_delete_key(struct keyd_store *st, const char *id, struct err *e);
/* HMAC-SHA256 with the key (also how a derived key is made). */
int keyd_store_hmac(struct keyd_store *st, const char *id, const void *data, size_t len,
		    uint8_t ret[32], struct err *e);
/* AES-256-GCM with the key: ciphertext 0x02 || ct || tag(16); decrypt
 * also takes iotedge 1.1's 0x01 || tag || ct. */
int keyd_store_aead(struct keyd_store *st, const char *id, bool encrypt, const void *iv,
		    size_t iv_len, const void *aad, size_t aad_len, const void *in, size_t len,
		    struct buf *out, struct err *e);

/* AES-256-GCM with a key in memory (32 bytes), aziot's formats as above.
 * Returns 0, -EINVAL (bad key length, malformed or unauthentic
 * ciphertext; message in e), -EIO. */
int keyd_aead(const uint8_t *key, size_t key_len, bool encrypt, const void *iv, size_t iv_len,
	      const void *aad, size_t aad_len, const void *in, size_t len, struct buf *out,
	      struct err *e);

#endif
