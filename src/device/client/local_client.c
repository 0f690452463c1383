/* SPDX-License-Identifier: MIT */
/*
 * A client of the device daemons, over their unix sockets (identityd and
 * certd use it):
 * keyd (API 2021-05-01: key handles, HMAC for SAS tokens, ECDSA and RSA
 * for TLS) and tpmd (API 2020-09-01: EK/SRK, the DPS authentication key,
 * HMAC in the TPM). The JSON shapes are aziot's (aziot-compat.md §2.1,
 * §2.4); key handles and signatures are secrets of sorts and never logged.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "common/encode.h"
#include "common/json.h"
#include "common/http_client.h"
#include "common/http_server.h"
#include "common/log.h"
#include "device/client/client.h"

#define LOCAL_TIMEOUT_MS 30000
#define LOCAL_RESPONSE_MAX (1024 * 1024)

struct local_client {
	char *name;
	char *socket;
	char *api_version;
	struct http_client *http;
};

struct local_client *local_client_new(const char *name, const char *socket_path,
				      const char *api_version)
{
	struct local_client *lc = calloc(1, sizeof(*lc));

	if (!lc)
		return NULL;
	lc->name = strdup(name);
	lc->socket = strdup(socket_path);
	lc->api_version = strdup(api_version);
	if (!lc->name || !lc->socket || !lc->api_version) {
		local_client_free(lc);
		return NULL;
	}
	return lc;
}

void local_client_free(struct local_client *lc)
{
	if (!lc)
		return;
	http_client_free(lc->http);
	free(lc->name);
	free(lc->socket);
	free(lc->api_version);
	free(lc);
}

int local_client_call(struct local_client *lc, const char *method, const char *path,
		      const json_t *body, json_t **ret, long *ret_status, struct err *e)
{
	_cleanup_http_client_response_ struct http_client_response resp = {0};
	_cleanup_free_ char *url = NULL, *text = NULL;
	const struct http_header json_type = {"Content-Type", "application/json"};
	struct http_client_request req = {
	    .method = method,
	    .unix_socket_path = lc->socket,
	    .timeout_ms = LOCAL_TIMEOUT_MS,
	    .max_response_bytes = LOCAL_RESPONSE_MAX,
	    /* Answers hold key handles and signatures. */
	    .response_secret = true,
	};
	struct err inner = {0};
	json_t *j = NULL;
	int r;

	if (ret)
		*ret = NULL;
	if (ret_status)
		*ret_status = 0;
	if (!lc->http) {
		lc->http = http_client_new();
		if (!lc->http)
			return err_set(e, -ENOMEM, "out of memory");
	}
	if (asprintf(&url, "http://%s.sock%s%sapi-version=%s", lc->name, path,
		     strchr(path, '?') ? "&" : "?", lc->api_version) < 0) {
		url = NULL;
		return err_set(e, -ENOMEM, "out of memory");
	}
	req.url = url;
	if (body) {
		text = json_dump_compact(body);
		if (!text)
			return err_set(e, -ENOMEM, "out of memory");
		req.body = text;
		req.body_len = strlen(text);
		req.headers = &json_type;
		req.n_headers = 1;
	}
	r = http_client_perform(lc->http, &req, &resp, &inner);
	if (text)
		explicit_bzero(text, strlen(text));
	if (r < 0) {
		/* The client may hold a broken connection: start afresh. */
		http_client_free(lc->http);
		lc->http = NULL;
		return err_set(e, r, "cannot reach %s at %s: %s", lc->name, lc->socket,
			       r == -ENOENT         ? "no such socket (is it running?)"
			       : r == -ECONNREFUSED ? "connection refused (is it running?)"
						    : err_msg(&inner, r));
	}
	if (ret_status)
		*ret_status = resp.status;
	if (resp.body.len > 0 && json_parse(resp.body.data, resp.body.len, 0, &j, NULL) < 0)
		return err_set(e, -EBADMSG, "%s: %s %s: the answer (HTTP %ld) is not JSON",
			       lc->name, method, path, resp.status);
	if (resp.status < 200 || resp.status > 299) {
		const char *msg = NULL;

		(void)json_get_string_opt(j, "message", &msg, NULL);
		r = err_set(e, -EPROTO, "%s refused %s %s (HTTP %ld): %s", lc->name, method, path,
			    resp.status, msg ? msg : http_status_text((int)resp.status));
		json_decref(j);
		return r;
	}
	if (ret)
		*ret = j;
	else
		json_decref(j);
	return 0;
}

/* A string field of an answer, copied. */
static int answer_string(struct local_client *lc, const json_t *j, const char *field,
			 const char *what, char **ret, struct err *e)
{
	const char *s = NULL;

	if (json_get_string(j, field, &s, NULL) < 0)
		return err_set(e, -EBADMSG, "%s: %s: the answer has no \"%s\"", lc->name, what,
			       field);
	*ret = strdup(s);
	return *ret ? 0 : err_set(e, -ENOMEM, "out of memory");
}

/* A base64 field of an answer, decoded into out. */
static int answer_bytes(struct local_client *lc, const json_t *j, const char *field,
			const char *what, struct buf *out, struct err *e)
{
	const char *s = NULL;

	if (json_get_string(j, field, &s, NULL) < 0)
		return err_set(e, -EBADMSG, "%s: %s: the answer has no \"%s\"", lc->name, what,
			       field);
	if (base64_decode(out, s, strlen(s), B64_STANDARD, NULL) < 0)
		return err_set(e, -EBADMSG, "%s: %s: \"%s\" is not base64", lc->name, what, field);
	return 0;
}

static int b64_string(const void *data, size_t len, struct buf *out, struct err *e)
{
	int r = base64_encode(out, data, len, B64_STANDARD);

	return r < 0 ? err_set(e, r, "out of memory") : 0;
}

static int handle_of(struct local_client *lc, const char *kind, const char *key_id, char **ret,
		     struct err *e)
{
	_cleanup_json_ json_t *j = NULL;
	_cleanup_buf_ struct buf path = {0};
	int r;

	buf_init(&path, 4096);
	if (buf_printf(&path, "/%s/", kind) < 0 ||
	    url_encode(&path, key_id, strlen(key_id), NULL) < 0)
		return err_set(e, -ENOMEM, "out of memory");
	r = local_client_call(lc, "GET", buf_str(&path), NULL, &j, NULL, e);
	if (r < 0)
		return r;
	return answer_string(lc, j, "keyHandle", buf_str(&path), ret, e);
}

int keyd_client_key_handle(struct local_client *lc, const char *key_id, char **ret, struct err *e)
{
	return handle_of(lc, "key", key_id, ret, e);
}

int keyd_client_key_pair_handle(struct local_client *lc, const char *key_id, char **ret,
				struct err *e)
{
	return handle_of(lc, "keypair", key_id, ret, e);
}

int keyd_client_hmac(struct local_client *lc, const char *handle, const void *msg, size_t len,
		     uint8_t ret[32], struct err *e)
{
	_cleanup_buf_ struct buf m = {0}, sig = {0};
	_cleanup_json_ json_t *body = NULL, *j = NULL;
	int r;

	buf_init(&m, 0);
	buf_init_secret(&sig, 1024);
	r = b64_string(msg, len, &m, e);
	if (r < 0)
		return r;
	body = json_pack("{s:s,s:s,s:{s:s}}", "keyHandle", handle, "algorithm", "HMAC-SHA256",
			 "parameters", "message", buf_str(&m));
	if (!body)
		return err_set(e, -ENOMEM, "out of memory");
	r = local_client_call(lc, "POST", "/sign", body, &j, NULL, e);
	if (r >= 0)
		r = answer_bytes(lc, j, "signature", "/sign", &sig, e);
	if (r < 0)
		return r;
	if (sig.len != 32)
		return err_set(e, -EBADMSG, "keyd: /sign: an HMAC-SHA256 of %zu bytes", sig.len);
	memcpy(ret, sig.data, 32);
	return 0;
}

int keyd_client_sign_ecdsa(struct local_client *lc, const char *handle, const void *digest,
			   size_t len, struct buf *ret, struct err *e)
{
	_cleanup_buf_ struct buf d = {0};
	_cleanup_json_ json_t *body = NULL, *j = NULL;
	int r;

	buf_init(&d, 0);
	r = b64_string(digest, len, &d, e);
	if (r < 0)
		return r;
	body = json_pack("{s:s,s:s,s:{s:s}}", "keyHandle", handle, "algorithm", "ECDSA",
			 "parameters", "digest", buf_str(&d));
	if (!body)
		return err_set(e, -ENOMEM, "out of memory");
	r = local_client_call(lc, "POST", "/sign", body, &j, NULL, e);
	return r < 0 ? r : answer_bytes(lc, j, "signature", "/sign", ret, e);
}

int keyd_client_rsa_private(struct local_client *lc, const char *handle, bool pkcs1, const void *in,
			    size_t len, struct buf *ret, struct err *e)
{
	_cleanup_buf_ struct buf p = {0};
	_cleanup_json_ json_t *body = NULL, *j = NULL;
	int r;

	buf_init(&p, 0);
	r = b64_string(in, len, &p, e);
	if (r < 0)
		return r;
	body = json_pack("{s:s,s:s,s:s}", "keyHandle", handle, "algorithm",
			 pkcs1 ? "RSA-PKCS1" : "RSA-NO-PADDING", "plaintext", buf_str(&p));
	if (!body)
		return err_set(e, -ENOMEM, "out of memory");
	r = local_client_call(lc, "POST", "/encrypt", body, &j, NULL, e);
	return r < 0 ? r : answer_bytes(lc, j, "ciphertext", "/encrypt", ret, e);
}

int tpmd_client_get_keys(struct local_client *lc, struct buf *ret_ek, struct buf *ret_srk,
			 struct err *e)
{
	_cleanup_json_ json_t *j = NULL;
	int r;

	r = local_client_call(lc, "GET", "/get_tpm_keys", NULL, &j, NULL, e);
	if (r >= 0)
		r = answer_bytes(lc, j, "endorsement_key", "/get_tpm_keys", ret_ek, e);
	if (r >= 0)
		r = answer_bytes(lc, j, "storage_root_key", "/get_tpm_keys", ret_srk, e);
	return r;
}

int tpmd_client_import_auth_key(struct local_client *lc, const void *blob, size_t len,
				struct err *e)
{
	_cleanup_buf_ struct buf k = {0};
	_cleanup_json_ json_t *body = NULL;
	int r;

	buf_init_secret(&k, 0);
	r = b64_string(blob, len, &k, e);
	if (r < 0)
		return r;
	body = json_pack("{s:s}", "key", buf_str(&k));
	if (!body)
		return err_set(e, -ENOMEM, "out of memory");
	return local_client_call(lc, "POST", "/import_auth_key", body, NULL, NULL, e);
}

int tpmd_client_sign(struct local_client *lc, const void *data, size_t len, uint8_t ret[32],
		     struct err *e)
{
	_cleanup_buf_ struct buf d = {0}, digest = {0};
	_cleanup_json_ json_t *body = NULL, *j = NULL;
	int r;

	buf_init(&d, 0);
	buf_init_secret(&digest, 1024);
	r = b64_string(data, len, &d, e);
	if (r < 0)
		return r;
	body = json_pack("{s:s}", "data", buf_str(&d));
	if (!body)
		return err_set(e, -ENOMEM, "out of memory");
	r = local_client_call(lc, "POST", "/sign_with_auth_key", body, &j, NULL, e);
	if (r >= 0)
		r = answer_bytes(lc, j, "digest", "/sign_with_auth_key", &digest, e);
	if (r < 0)
		return r;
	if (digest.len != 32)
		return err_set(e, -EBADMSG, "tpmd: /sign_with_auth_key: a digest of %zu bytes",
			       digest.len);
	memcpy(ret, digest.data, 32);
	return 0;
}
