/* SPDX-License-Identifier: MIT */
/*
 * Key handles. A handle is the capability to use one key: calls that take
 * a handle (sign, encrypt, decrypt, derive, parameters, delete) do not
 * look at the caller's uid, so a handle must be impossible to make
 * without keyd's handle key. It is aziot's format, which keeps the handles
 * an existing device's services hold valid after the switch:
 *
 *   sr=<base64 of SR>&sig=<base64 of HMAC-SHA256(handle key, SR)>
 *   SR = {"key_id":<KeyId>,"nonce":"<base64 of 64 random bytes>"}
 *
 * The MAC is checked (in constant time) before the SR is parsed, so the
 * JSON parser only ever sees text keyd wrote.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "common/encode.h"
#include "common/json.h"
#include "common/log.h"
#include "device/keyd/keyd.h"

#define NONCE_LEN 64

void keyd_id_clear(struct keyd_id *id)
{
	if (!id)
		return;
	free(id->id);
	free(id->base_handle);
	free(id->data);
	*id = (struct keyd_id){0};
}

static json_t *key_id_json(const struct keyd_id *id)
{
	json_t *bytes, *v;

	switch (id->kind) {
	case KEYD_ID_KEY_PAIR:
		return json_pack("{s:s}", "KeyPair", id->id);
	case KEYD_ID_KEY:
		return json_pack("{s:s}", "Key", id->id);
	case KEYD_ID_DERIVED:
		bytes = json_array();
		for (size_t i = 0; bytes && i < id->data_len; i++)
			if (json_array_append_new(bytes, json_integer(id->data[i])) < 0) {
				json_decref(bytes);
				return NULL;
			}
		if (!bytes)
			return NULL;
		v = json_pack("{s:[s,o]}", "Derived", id->base_handle, bytes);
		return v;
	}
	return NULL;
}

int keyd_handle_make(keyd_mac_fn mac, void *ctx, const struct keyd_id *id, char **ret)
{
	_cleanup_json_ json_t *sr = NULL;
	_cleanup_free_ char *text = NULL;
	_cleanup_buf_ struct buf nonce_b64 = {0}, out = {0};
	uint8_t nonce[NONCE_LEN], sig[32];
	json_t *kid;
	int r;

	buf_init(&nonce_b64, 0);
	buf_init(&out, KEYD_HANDLE_MAX * 2);
	if (RAND_bytes(nonce, sizeof(nonce)) != 1)
		return -EIO;
	if (base64_encode(&nonce_b64, nonce, sizeof(nonce), B64_STANDARD) < 0)
		return -ENOMEM;
	kid = key_id_json(id);
	if (!kid)
		return -ENOMEM;
	sr = json_pack("{s:o,s:s}", "key_id", kid, "nonce", buf_str(&nonce_b64));
	if (!sr)
		return -ENOMEM;
	text = json_dumps(sr, JSON_COMPACT);
	if (!text)
		return -ENOMEM;
	r = mac(ctx, text, strlen(text), sig);
	if (r < 0)
		return r;
	if (buf_append_str(&out, "sr=") < 0 ||
	    base64_encode(&out, text, strlen(text), B64_STANDARD) < 0 ||
	    buf_append_str(&out, "&sig=") < 0 ||
	    base64_encode(&out, sig, sizeof(sig), B64_STANDARD) < 0)
		return -ENOMEM;
	*ret = buf_steal(&out, NULL);
	return *ret ? 0 : -ENOMEM;
}

/* ["<base handle>", [bytes...]] */
static int decode_derived(const json_t *v, struct keyd_id *ret)
{
	struct keyd_id id = {.kind = KEYD_ID_DERIVED};
	json_t *bytes;

	if (!json_is_array(v) || json_array_size(v) != 2 || !json_is_string(json_array_get(v, 0)) ||
	    !json_is_array(json_array_get(v, 1)))
		return -EBADMSG;
	bytes = json_array_get(v, 1);
	id.base_handle = strdup(json_string_value(json_array_get(v, 0)));
	id.data = malloc(json_array_size(bytes) + 1);
	if (!id.base_handle || !id.data) {
		keyd_id_clear(&id);
		return -ENOMEM;
	}
	for (size_t i = 0; i < json_array_size(bytes); i++) {
		json_t *b = json_array_get(bytes, i);

		if (!json_is_integer(b) || json_integer_value(b) < 0 ||
		    json_integer_value(b) > 255) {
			keyd_id_clear(&id);
			return -EBADMSG;
		}
		id.data[i] = (uint8_t)json_integer_value(b);
	}
	id.data_len = json_array_size(bytes);
	*ret = id;
	return 0;
}

static int decode_sr(const char *text, struct keyd_id *ret)
{
	_cleanup_json_ json_t *sr = NULL;
	json_t *kid, *v;
	const char *kind;
	char *id;

	if (json_parse(text, strlen(text), 0, &sr, NULL) < 0 || !json_is_object(sr))
		return -EBADMSG;
	kid = json_object_get(sr, "key_id");
	if (!json_is_object(kid) || json_object_size(kid) != 1)
		return -EBADMSG;
	kind = json_object_iter_key(json_object_iter(kid));
	v = json_object_iter_value(json_object_iter(kid));
	if (streq(kind, "Derived"))
		return decode_derived(v, ret);
	if ((!streq(kind, "KeyPair") && !streq(kind, "Key")) || !json_is_string(v))
		return -EBADMSG;
	id = strdup(json_string_value(v));
	if (!id)
		return -ENOMEM;
	*ret =
	    (struct keyd_id){.kind = streq(kind, "Key") ? KEYD_ID_KEY : KEYD_ID_KEY_PAIR, .id = id};
	return 0;
}

int keyd_handle_parse(keyd_mac_fn mac, void *ctx, const char *handle, struct keyd_id *ret)
{
	_cleanup_buf_ struct buf sr = {0}, sig = {0};
	const char *p = handle, *sr_b64 = NULL, *sig_b64 = NULL;
	size_t sr_len = 0, sig_len = 0;
	uint8_t want[32];
	int r;

	if (strlen(handle) > KEYD_HANDLE_MAX)
		return -EBADMSG;
	/* "&"-separated parameters; the last sr= and sig= count, as in aziot. */
	while (*p) {
		size_t n = strcspn(p, "&");

		if (n >= 3 && strneq(p, "sr=", 3)) {
			sr_b64 = p + 3;
			sr_len = n - 3;
		} else if (n >= 4 && strneq(p, "sig=", 4)) {
			sig_b64 = p + 4;
			sig_len = n - 4;
		}
		p += n + (p[n] == '&');
	}
	if (!sr_b64 || !sig_b64)
		return -EBADMSG;
	buf_init(&sr, KEYD_HANDLE_MAX);
	buf_init(&sig, 64);
	if (base64_decode(&sr, sr_b64, sr_len, B64_CANONICAL, NULL) < 0 ||
	    base64_decode(&sig, sig_b64, sig_len, B64_CANONICAL, NULL) < 0)
		return -EBADMSG;
	if (sig.len != sizeof(want) || memchr(sr.data, '\0', sr.len))
		return -EBADMSG;
	r = mac(ctx, sr.data, sr.len, want);
	if (r < 0)
		return r;
	if (CRYPTO_memcmp(want, sig.data, sizeof(want)) != 0) {
		log_debug("keyd: a handle with a wrong MAC was presented");
		return -EBADMSG;
	}
	return decode_sr(buf_str(&sr), ret);
}
