/* SPDX-License-Identifier: MIT */
/*
 * keyd: aziot's Keys Service API (specs/aziot-compat.md §2.1) on the
 * daemon runtime. This file holds the settings, the route table and the
 * handlers; they parse the caller's JSON, check who may use which key id,
 * and call keyd_store.c. Private keys never leave the store; the only
 * secret that crosses the socket is a derived key, on
 * /derivedkey/export, as the API defines.
 *
 * Authorization (aziot's rules): calls that name a key id check the caller's uid
 * against the [[principal]] keys patterns (uid 0 always passes) and answer
 * 403 "user <uid> is not authorized to access the key <id>" otherwise
 * (aziot answers 401; 403 is the status HTTP means for "authenticated,
 * not allowed", and clients treat both as a refusal),
 * before looking at the key, so the answer says nothing about whether it
 * exists. Calls that take a handle need none: the handle is the
 * capability, and only keyd can make one.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "common/encode.h"
#include "common/json.h"
#include "common/log.h"
#include "crypto/hash.h"
#include "device/keyd/keyd.h"

#define BYTES_FIELD_MAX (1024 * 1024)

struct keyd {
	struct daemon *d;
	struct keyd_store *store;
};

/* --- settings ------------------------------------------------------------ */

static int parse_settings(struct daemon *d, struct keyd_settings *ret, struct err *e)
{
	const struct daemon_config *c = daemon_get_config(d);
	struct keyd_settings s = {0};
	json_t *table = NULL, *v;
	const char *key;
	int r;

	r = daemon_config_get_object_opt(c, "aziot_keys", &table, e);
	if (r < 0)
		return -EINVAL;
	json_object_foreach (table, key, v) {
		char path[256];

		snprintf(path, sizeof(path), "aziot_keys.%s", key);
		if (!json_is_string(v)) {
			r = daemon_config_error(c, v, path, e, -EINVAL, "expected a string, got %s",
						json_type_phrase(v));
			goto fail;
		}
		if (streq(key, "homedir_path")) {
			if (json_string_value(v)[0] != '/') {
				r = daemon_config_error(c, v, path, e, -EINVAL,
							"expected an absolute path, got \"%s\"",
							json_string_value(v));
				goto fail;
			}
			free(s.homedir);
			s.homedir = daemon_path(d, json_string_value(v));
			if (!s.homedir) {
				r = err_set(e, -ENOMEM, "out of memory");
				goto fail;
			}
		} else if (streq(key, "pkcs11_lib_path")) {
			/* A system library, not device state: never under --root. */
			free(s.pkcs11_lib_path);
			s.pkcs11_lib_path = strdup(json_string_value(v));
			if (!s.pkcs11_lib_path) {
				r = err_set(e, -ENOMEM, "out of memory");
				goto fail;
			}
		} else if (streq(key, "pkcs11_base_slot")) {
			struct keyd_p11_uri u;

			r = keyd_p11_uri_parse(json_string_value(v), &u);
			if (r < 0) {
				r = daemon_config_error(c, v, path, e, -EINVAL, "%s",
							r == -EOPNOTSUPP
							    ? "pin-source is not supported; give "
							      "the pin as pin-value"
							    : "expected a pkcs11: URI (RFC 7512)");
				goto fail;
			}
			keyd_p11_uri_clear(&u);
			free(s.pkcs11_base_slot);
			s.pkcs11_base_slot = strdup(json_string_value(v));
			if (!s.pkcs11_base_slot) {
				r = err_set(e, -ENOMEM, "out of memory");
				goto fail;
			}
		} else {
			r = daemon_config_error(c, v, path, e, -EINVAL,
						"unknown setting (expected homedir_path, "
						"pkcs11_lib_path or pkcs11_base_slot)");
			goto fail;
		}
	}

	table = NULL;
	r = daemon_config_get_object_opt(c, "preloaded_keys", &table, e);
	if (r < 0) {
		r = -EINVAL;
		goto fail;
	}
	if (table) {
		s.preloaded = calloc(json_object_size(table) + 1, sizeof(*s.preloaded));
		if (!s.preloaded) {
			r = err_set(e, -ENOMEM, "out of memory");
			goto fail;
		}
	}
	json_object_foreach (table, key, v) {
		struct keyd_preloaded *p = &s.preloaded[s.n_preloaded];
		_cleanup_free_ char *file = NULL;
		char path[512];

		snprintf(path, sizeof(path), "preloaded_keys.%s", key);
		if (!json_is_string(v)) {
			r = daemon_config_error(c, v, path, e, -EINVAL, "expected a string, got %s",
						json_type_phrase(v));
			goto fail;
		}
		if (strneq(json_string_value(v), "pkcs11:", 7)) {
			struct keyd_p11_uri u;

			r = keyd_p11_uri_parse(json_string_value(v), &u);
			keyd_p11_uri_clear(&u);
			if (r < 0) {
				r = daemon_config_error(c, v, path, e, -EINVAL, "%s",
							r == -EOPNOTSUPP
							    ? "pin-source is not supported; give "
							      "the pin as pin-value"
							    : "expected a pkcs11: URI (RFC 7512)");
				goto fail;
			}
			if (!json_is_string(json_object_get(
				json_object_get(daemon_config_root(c), "aziot_keys"),
				"pkcs11_lib_path"))) {
				r = daemon_config_error(c, v, path, e, -EINVAL,
							"a PKCS#11 key needs "
							"aziot_keys.pkcs11_lib_path");
				goto fail;
			}
			p->id = strdup(key);
			p->pkcs11_uri = strdup(json_string_value(v));
			s.n_preloaded++;
			if (!p->id || !p->pkcs11_uri) {
				r = err_set(e, -ENOMEM, "out of memory");
				goto fail;
			}
			continue;
		}
		r = keyd_file_uri_path(json_string_value(v), &file);
		if (r < 0) {
			r = daemon_config_error(c, v, path, e, -EINVAL,
						"expected a file:///path URI, got \"%s\"",
						json_string_value(v));
			goto fail;
		}
		p->id = strdup(key);
		p->path = daemon_path(d, file);
		s.n_preloaded++;
		if (!p->id || !p->path) {
			r = err_set(e, -ENOMEM, "out of memory");
			goto fail;
		}
	}
	*ret = s;
	return 0;
fail:
	keyd_settings_clear(&s);
	return r;
}

static int keyd_check(struct daemon *d, struct err *e)
{
	struct keyd_settings s;
	int r = parse_settings(d, &s, e);

	if (r >= 0)
		keyd_settings_clear(&s);
	return r;
}

static void keyd_fini(void *state)
{
	struct keyd *k = state;

	if (!k)
		return;
	keyd_store_free(k->store);
	free(k);
}

static int keyd_init(struct daemon *d, void **ret_state, struct err *e)
{
	struct keyd_settings s;
	struct keyd *k;
	int r;

	r = parse_settings(d, &s, e);
	if (r < 0)
		return r;
	k = calloc(1, sizeof(*k));
	if (!k) {
		keyd_settings_clear(&s);
		return err_set(e, -ENOMEM, "out of memory");
	}
	k->d = d;
	r = keyd_store_new(&s, &k->store, e);
	keyd_settings_clear(&s);
	if (r < 0) {
		free(k);
		return r;
	}
	*ret_state = k;
	return 0;
}

/* --- request helpers ----------------------------------------------------- */

/* A failed store operation: the caller's mistake is 400 with the message,
 * keyd's own is 500 "internal error" with the detail in the log only. */
static int fail(struct daemon_request *req, int r, const struct err *e)
{
	if (r == -ENOENT || r == -EINVAL)
		return daemon_respond_error(req, 400, "%s", err_msg(e, r));
	log_err("%s", err_msg(e, r));
	return daemon_respond_error(req, 500, "internal error");
}

/* A base64 field (standard alphabet, padding required) decoded into out. */
static int field_bytes(struct daemon_request *req, const json_t *obj, const char *path,
		       bool required, struct buf *out)
{
	const char *s = NULL;
	size_t bad = 0;
	int r;

	if (daemon_request_string(req, obj, path, required, &s))
		return 1;
	if (!s)
		return 0;
	r = base64_decode(out, s, strlen(s), B64_STANDARD, &bad);
	if (r == -EINVAL) {
		daemon_respond_error(req, 422, "%s: invalid base64 at offset %zu", path, bad);
		return 1;
	}
	if (r < 0) {
		daemon_respond_error(req, r == -E2BIG ? 413 : 500, "%s: %s", path,
				     r == -E2BIG ? "too large" : "internal error");
		return 1;
	}
	return 0;
}

/* May the caller use id? Answers 403 (or 400 for keyd's own key) when not. */
static bool allowed(struct keyd *k, struct daemon_request *req, const char *id)
{
	uid_t uid = daemon_request_cred(req)->uid;

	if (!daemon_authorize(k->d, uid, id)) {
		daemon_respond_error(req, 403, "user %u is not authorized to access the key %s",
				     (unsigned)uid, id);
		return false;
	}
	/* Whoever holds a handle to the handle key can mint handles to every
	 * key; no caller gets one, whatever its principal patterns say. */
	if (streq(id, KEYD_HANDLE_KEY_ID)) {
		daemon_respond_error(req, 400,
				     "parameter \"id\" has an invalid value\ncaused by: \"%s\" is "
				     "keyd's own key",
				     id);
		return false;
	}
	return true;
}

static int respond_string(struct daemon_request *req, const char *name, const char *value)
{
	_cleanup_json_ json_t *o = json_pack("{s:s}", name, value);

	return o ? daemon_respond_json(req, 200, o) : -ENOMEM;
}

static int respond_bytes(struct daemon_request *req, const char *name, const void *data, size_t len)
{
	_cleanup_buf_ struct buf b = {0};
	_cleanup_json_ json_t *o = NULL;

	buf_init_secret(&b, 0);
	if (base64_encode(&b, data, len, B64_STANDARD) < 0)
		return -ENOMEM;
	o = json_pack("{s:s}", name, buf_str(&b));
	return o ? daemon_respond_json(req, 200, o) : -ENOMEM;
}

static int respond_handle(struct keyd *k, struct daemon_request *req, enum keyd_id_kind kind,
			  const char *id)
{
	_cleanup_free_ char *handle = NULL;
	struct keyd_id kid = {.kind = kind, .id = (char *)id};
	int r;

	r = keyd_handle_make(keyd_store_handle_mac, k->store, &kid, &handle);
	if (r < 0)
		return r;
	return respond_string(req, "keyHandle", handle);
}

/* What a handle refers to. For a derived handle, id is the base key's. */
struct target {
	enum keyd_id_kind kind;
	char *id;
	uint8_t *data;
	size_t data_len;
};

static void target_clear(struct target *t)
{
	free(t->id);
	free(t->data);
}

static int invalid_handle(struct daemon_request *req, const char *cause)
{
	return daemon_respond_error(
	    req, 400, "parameter \"handle\" has an invalid value\ncaused by: %s", cause);
}

/* Verify handle. Returns 0 with *ret, or 1 after answering. */
static int resolve(struct keyd *k, struct daemon_request *req, const char *handle,
		   struct target *ret)
{
	struct keyd_id id = {0}, base = {0};
	int r;

	r = keyd_handle_parse(keyd_store_handle_mac, k->store, handle, &id);
	if (r == -EBADMSG) {
		invalid_handle(req, "invalid handle");
		return 1;
	}
	if (r < 0) {
		log_err("checking a key handle: %s", strerror(-r));
		daemon_respond_error(req, 500, "internal error");
		return 1;
	}
	*ret = (struct target){.kind = id.kind};
	if (id.kind != KEYD_ID_DERIVED) {
		ret->id = TAKE_PTR(id.id);
		keyd_id_clear(&id);
		return 0;
	}
	r = keyd_handle_parse(keyd_store_handle_mac, k->store, id.base_handle, &base);
	if (r < 0 || base.kind == KEYD_ID_DERIVED) {
		keyd_id_clear(&id);
		keyd_id_clear(&base);
		invalid_handle(req, r < 0 ? "invalid handle"
					  : "nested derived keys are not supported, import the "
					    "outer derived key first");
		return 1;
	}
	ret->id = TAKE_PTR(base.id);
	ret->data = TAKE_PTR(id.data);
	ret->data_len = id.data_len;
	keyd_id_clear(&id);
	keyd_id_clear(&base);
	return 0;
}

/* The handle in field name of the body. Returns 0 with *ret, or 1. */
static int body_handle(struct keyd *k, struct daemon_request *req, const json_t *body,
		       const char *name, struct target *ret)
{
	const char *handle;

	if (daemon_request_string(req, body, name, true, &handle))
		return 1;
	return resolve(k, req, handle, ret);
}

static int bad_mechanism(struct daemon_request *req)
{
	return daemon_respond_error(req, 400,
				    "parameter \"mechanism\" has an invalid value\ncaused by: "
				    "mechanism cannot be used with this key type");
}

/* The derived key of t (DERIVED): HMAC-SHA256(base key, derivation data). */
static int derive(struct keyd *k, const struct target *t, uint8_t ret[32], struct err *e)
{
	return keyd_store_hmac(k->store, t->id, t->data, t->data_len, ret, e);
}

/* --- /key, /keypair ------------------------------------------------------ */

/* aziot's usage list; *ret_aes when it asks for encryption only (a token
 * then makes an AES key rather than an HMAC one). */
static int parse_usage(struct daemon_request *req, const char *usage, bool *ret_aes)
{
	bool enc = false, mac = false;

	for (const char *p = usage;;) {
		size_t n = strcspn(p, ",");

		if (!((n == 6 && strneq(p, "derive", 6)) || (n == 7 && strneq(p, "encrypt", 7)) ||
		      (n == 4 && strneq(p, "sign", 4)))) {
			daemon_respond_error(req, 422,
					     "usage: unknown value \"%.*s\", expected \"derive\", "
					     "\"encrypt\" or \"sign\"",
					     (int)n, p);
			return 1;
		}
		if (n == 7)
			enc = true;
		else
			mac = true;
		if (p[n] == '\0') {
			*ret_aes = enc && !mac;
			return 0;
		}
		p += n + 1;
	}
}

static int post_key(struct daemon_request *req, void *state)
{
	struct keyd *k = state;
	_cleanup_buf_ struct buf bytes = {0};
	const char *id, *usage, *kb = NULL;
	json_t *body = daemon_request_object(req);
	struct err e = {0};
	bool aes = false;
	int r;

	buf_init_secret(&bytes, BYTES_FIELD_MAX);
	if (!body)
		return 0;
	if (daemon_request_string(req, body, "keyId", true, &id) ||
	    daemon_request_string(req, body, "usage", true, &usage) ||
	    parse_usage(req, usage, &aes) ||
	    daemon_request_string(req, body, "keyBytes", false, &kb) ||
	    field_bytes(req, body, "keyBytes", false, &bytes))
		return 0;
	if (!allowed(k, req, id))
		return 0;
	r = kb ? keyd_store_import_key(k->store, id, bytes.data, bytes.len, aes, &e)
	       : keyd_store_create_key(k->store, id, aes, &e);
	if (r < 0)
		return fail(req, r, &e);
	return respond_handle(k, req, KEYD_ID_KEY, id);
}

static int get_key(struct daemon_request *req, void *state)
{
	struct keyd *k = state;
	const char *id = daemon_request_param(req, "keyId");
	struct err e = {0};
	int r;

	if (!allowed(k, req, id))
		return 0;
	r = keyd_store_load_key(k->store, id, &e);
	if (r < 0)
		return fail(req, r, &e);
	return respond_handle(k, req, KEYD_ID_KEY, id);
}

static int delete_by_handle(struct keyd *k, struct daemon_request *req, enum keyd_id_kind kind)
{
	json_t *body = daemon_request_object(req);
	struct target t = {0};
	struct err e = {0};
	int r;

	if (!body || body_handle(k, req, body, "keyHandle", &t))
		return 0;
	if (t.kind != kind) {
		target_clear(&t);
		return invalid_handle(req, kind == KEYD_ID_KEY ? "handle is not for a key"
							       : "handle is not for a key pair");
	}
	r = kind == KEYD_ID_KEY ? keyd_store_delete_key(k->store, t.id, &e)
				: keyd_store_delete_key_pair(k->store, t.id, &e);
	target_clear(&t);
	if (r < 0)
		return fail(req, r, &e);
	return daemon_respond_no_content(req);
}

static int delete_key(struct daemon_request *req, void *state)
{
	return delete_by_handle(state, req, KEYD_ID_KEY);
}

static int delete_key_pair(struct daemon_request *req, void *state)
{
	return delete_by_handle(state, req, KEYD_ID_KEY_PAIR);
}

static int post_key_pair(struct daemon_request *req, void *state)
{
	struct keyd *k = state;
	const char *id, *prefs = NULL;
	json_t *body = daemon_request_object(req);
	enum keyd_alg algs[3];
	struct err e = {0};
	size_t n;
	int r;

	if (!body)
		return 0;
	if (daemon_request_string(req, body, "keyId", true, &id) ||
	    daemon_request_string(req, body, "preferredAlgorithms", false, &prefs))
		return 0;
	if (!allowed(k, req, id))
		return 0;
	n = keyd_preferred_algorithms(prefs, algs);
	r = keyd_store_create_key_pair(k->store, id, algs, n, &e);
	if (r < 0)
		return fail(req, r, &e);
	return respond_handle(k, req, KEYD_ID_KEY_PAIR, id);
}

static int get_key_pair(struct daemon_request *req, void *state)
{
	struct keyd *k = state;
	const char *id = daemon_request_param(req, "keyPairId");
	struct err e = {0};
	int r;

	if (!allowed(k, req, id))
		return 0;
	r = keyd_store_load_key_pair(k->store, id, &e);
	if (r < 0)
		return fail(req, r, &e);
	return respond_handle(k, req, KEYD_ID_KEY_PAIR, id);
}

/* POST /key/{id} and /keypair/{id}: a move, for key pairs only. */
static int post_move(struct daemon_request *req, struct keyd *k, const char *type, const char *to)
{
	json_t *body = daemon_request_object(req);
	const char *from;
	struct err e = {0};
	int r;

	if (!body || daemon_request_string(req, body, "from", true, &from))
		return 0;
	if (streq(from, to))
		return daemon_respond_error(req, 400,
					    "source and destination for move are identical");
	if (!streq(type, "keypair"))
		return daemon_respond_error(req, 400, "invalid type \"%s\"", type);
	if (!allowed(k, req, from) || !allowed(k, req, to))
		return 0;
	r = keyd_store_move_key_pair(k->store, from, to, &e);
	if (r < 0)
		return fail(req, r, &e);
	return daemon_respond_no_content(req);
}

static int post_key_id(struct daemon_request *req, void *state)
{
	return post_move(req, state, "key", daemon_request_param(req, "keyId"));
}

static int post_key_pair_id(struct daemon_request *req, void *state)
{
	return post_move(req, state, "keypair", daemon_request_param(req, "keyPairId"));
}

/* --- /parameters, /sign, /encrypt, /decrypt -------------------------------- */

static int post_parameters(struct daemon_request *req, void *state)
{
	struct keyd *k = state;
	json_t *body = daemon_request_object(req);
	_cleanup_free_ char *value = NULL;
	struct target t = {0};
	struct err e = {0};
	int r;

	if (!body || body_handle(k, req, body, "keyHandle", &t))
		return 0;
	if (t.kind != KEYD_ID_KEY_PAIR) {
		target_clear(&t);
		return invalid_handle(req, "handle is not for a key pair");
	}
	r = keyd_store_key_pair_parameter(k->store, t.id, daemon_request_param(req, "name"), &value,
					  &e);
	target_clear(&t);
	if (r < 0)
		return fail(req, r, &e);
	return respond_string(req, "value", value);
}

static int post_sign(struct daemon_request *req, void *state)
{
	struct keyd *k = state;
	json_t *body = daemon_request_object(req);
	_cleanup_buf_ struct buf in = {0}, sig = {0};
	const char *alg;
	struct target t = {0};
	struct err e = {0};
	uint8_t mac[32], derived[32];
	bool ecdsa;
	int r;

	buf_init_secret(&in, BYTES_FIELD_MAX);
	buf_init(&sig, 0);
	if (!body || daemon_request_string(req, body, "algorithm", true, &alg))
		return 0;
	ecdsa = streq(alg, "ECDSA");
	if (!ecdsa && !streq(alg, "HMAC-SHA256"))
		return daemon_respond_error(
		    req, 422,
		    "algorithm: unknown value \"%s\", expected \"ECDSA\" or "
		    "\"HMAC-SHA256\"",
		    alg);
	if (field_bytes(req, body, ecdsa ? "parameters.digest" : "parameters.message", true, &in))
		return 0;
	if (body_handle(k, req, body, "keyHandle", &t))
		return 0;

	if (ecdsa && t.kind == KEYD_ID_KEY_PAIR) {
		r = keyd_store_sign_ecdsa(k->store, t.id, in.data, in.len, &sig, &e);
	} else if (!ecdsa && t.kind == KEYD_ID_KEY) {
		r = keyd_store_hmac(k->store, t.id, in.data, in.len, mac, &e);
		if (r >= 0 && buf_append(&sig, mac, sizeof(mac)) < 0)
			r = err_set(&e, -ENOMEM, "out of memory");
	} else if (!ecdsa && t.kind == KEYD_ID_DERIVED) {
		r = derive(k, &t, derived, &e);
		if (r >= 0 && hash_hmac_sha256(derived, sizeof(derived), in.data, in.len, mac) < 0)
			r = err_set(&e, -EIO, "HMAC-SHA256 failed");
		if (r >= 0 && buf_append(&sig, mac, sizeof(mac)) < 0)
			r = err_set(&e, -ENOMEM, "out of memory");
		OPENSSL_cleanse(derived, sizeof(derived));
	} else {
		target_clear(&t);
		return bad_mechanism(req);
	}
	target_clear(&t);
	if (r < 0)
		return fail(req, r, &e);
	return respond_bytes(req, "signature", sig.data, sig.len);
}

enum cipher_alg { ALG_AEAD, ALG_RSA_PKCS1, ALG_RSA_NO_PADDING };

/* POST /encrypt and /decrypt. */
static int cipher(struct daemon_request *req, struct keyd *k, bool encrypt)
{
	json_t *body = daemon_request_object(req);
	_cleanup_buf_ struct buf in = {0}, iv = {0}, aad = {0}, out = {0};
	const char *alg_name, *in_name = encrypt ? "plaintext" : "ciphertext";
	struct target t = {0};
	struct err e = {0};
	enum cipher_alg alg;
	uint8_t derived[32];
	int r;

	buf_init_secret(&in, BYTES_FIELD_MAX);
	buf_init(&iv, 4096);
	buf_init(&aad, BYTES_FIELD_MAX);
	buf_init_secret(&out, BYTES_FIELD_MAX + 64);
	if (!body || daemon_request_string(req, body, "algorithm", true, &alg_name))
		return 0;
	if (streq(alg_name, "AEAD"))
		alg = ALG_AEAD;
	else if (streq(alg_name, "RSA-PKCS1"))
		alg = ALG_RSA_PKCS1;
	else if (streq(alg_name, "RSA-NO-PADDING"))
		alg = ALG_RSA_NO_PADDING;
	else
		return daemon_respond_error(req, 422,
					    "algorithm: unknown value \"%s\", expected \"AEAD\", "
					    "\"RSA-PKCS1\" or \"RSA-NO-PADDING\"",
					    alg_name);
	if (alg == ALG_AEAD && (field_bytes(req, body, "parameters.iv", true, &iv) ||
				field_bytes(req, body, "parameters.aad", true, &aad)))
		return 0;
	if (field_bytes(req, body, in_name, true, &in))
		return 0;
	if (body_handle(k, req, body, "keyHandle", &t))
		return 0;

	if (alg == ALG_AEAD && t.kind == KEYD_ID_KEY) {
		r = keyd_store_aead(k->store, t.id, encrypt, iv.data, iv.len, aad.data, aad.len,
				    in.data, in.len, &out, &e);
	} else if (alg == ALG_AEAD && t.kind == KEYD_ID_DERIVED) {
		r = derive(k, &t, derived, &e);
		if (r >= 0)
			r = keyd_aead(derived, sizeof(derived), encrypt, iv.data, iv.len, aad.data,
				      aad.len, in.data, in.len, &out, &e);
		OPENSSL_cleanse(derived, sizeof(derived));
	} else if (alg != ALG_AEAD && encrypt && t.kind == KEYD_ID_KEY_PAIR) {
		r = keyd_store_rsa_private(k->store, t.id, alg == ALG_RSA_PKCS1, in.data, in.len,
					   &out, &e);
	} else {
		target_clear(&t);
		return bad_mechanism(req);
	}
	target_clear(&t);
	if (r < 0)
		return fail(req, r, &e);
	return respond_bytes(req, encrypt ? "ciphertext" : "plaintext", out.data, out.len);
}

static int post_encrypt(struct daemon_request *req, void *state)
{
	return cipher(req, state, true);
}

static int post_decrypt(struct daemon_request *req, void *state)
{
	return cipher(req, state, false);
}

/* --- /derivedkey --------------------------------------------------------- */

static int post_derived_key(struct daemon_request *req, void *state)
{
	struct keyd *k = state;
	json_t *body = daemon_request_object(req);
	_cleanup_buf_ struct buf data = {0};
	_cleanup_free_ char *handle = NULL;
	const char *base;
	struct target t = {0};
	struct keyd_id id = {.kind = KEYD_ID_DERIVED};
	int r;

	buf_init(&data, BYTES_FIELD_MAX);
	if (!body || daemon_request_string(req, body, "baseKeyHandle", true, &base) ||
	    field_bytes(req, body, "derivationData", true, &data))
		return 0;
	if (resolve(k, req, base, &t))
		return 0;
	if (t.kind != KEYD_ID_KEY) {
		target_clear(&t);
		return invalid_handle(req, t.kind == KEYD_ID_DERIVED
					       ? "nested derived keys are not supported, import "
						 "the outer derived key first"
					       : "derived keys need a symmetric base key, and this "
						 "handle is for a key pair");
	}
	target_clear(&t);
	id.base_handle = (char *)base;
	id.data = (uint8_t *)data.data;
	id.data_len = data.len;
	r = keyd_handle_make(keyd_store_handle_mac, k->store, &id, &handle);
	if (r < 0)
		return r;
	return respond_string(req, "keyHandle", handle);
}

static int post_derived_key_export(struct daemon_request *req, void *state)
{
	struct keyd *k = state;
	json_t *body = daemon_request_object(req);
	struct target t = {0};
	struct err e = {0};
	uint8_t derived[32];
	int r;

	if (!body || body_handle(k, req, body, "keyHandle", &t))
		return 0;
	if (t.kind != KEYD_ID_DERIVED) {
		target_clear(&t);
		return invalid_handle(req, "handle is not for a derived key");
	}
	r = derive(k, &t, derived, &e);
	target_clear(&t);
	if (r < 0)
		return fail(req, r, &e);
	r = respond_bytes(req, "key", derived, sizeof(derived));
	OPENSSL_cleanse(derived, sizeof(derived));
	return r;
}

/* --- the daemon ---------------------------------------------------------- */

static const char *const keyd_api_versions[] = {"2020-09-01", "2021-05-01", NULL};

static const struct daemon_route keyd_routes[] = {
    {.pattern = "/key", .post = post_key, .del = delete_key},
    {.pattern = "/key/{keyId}", .get = get_key, .post = post_key_id},
    {.pattern = "/keypair", .post = post_key_pair, .del = delete_key_pair},
    {.pattern = "/keypair/{keyPairId}", .get = get_key_pair, .post = post_key_pair_id},
    {.pattern = "/parameters/{name}", .post = post_parameters},
    {.pattern = "/sign", .post = post_sign},
    {.pattern = "/encrypt", .post = post_encrypt},
    {.pattern = "/decrypt", .post = post_decrypt},
    {.pattern = "/derivedkey", .post = post_derived_key},
    {.pattern = "/derivedkey/export", .post = post_derived_key_export},
};

const struct daemon_spec keyd_spec = {
    .name = "keyd",
    .summary = "the keys service: every private and secret key of the device",
    .api_versions = keyd_api_versions,
    .routes = keyd_routes,
    .n_routes = ARRAY_SIZE(keyd_routes),
    .principal_grants = "keys",
    .init = keyd_init,
    .check = keyd_check,
    .fini = keyd_fini,
};
