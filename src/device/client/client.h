/* SPDX-License-Identifier: MIT */
/*
 * Clients of the device daemons' unix sockets, for the daemons that call
 * each other (identityd and certd call keyd; identityd calls tpmd and
 * certd): one JSON call over HTTP/1.1 (local_client.c), the keyd and tpmd
 * calls built on it, and an EVP_PKEY whose private half stays in keyd
 * (keyd_pkey.c).
 */
#ifndef EDGEID_DEVICE_CLIENT_H
#define EDGEID_DEVICE_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/macro.h"

/* ---- unix-socket clients (local_client.c) --------------------------------- */

struct local_client;

/* A client for the daemon called name ("keyd") at socket_path, speaking
 * api_version. NULL on -ENOMEM. */
struct local_client *local_client_new(const char *name, const char *socket_path,
				      const char *api_version);
void local_client_free(struct local_client *lc);
DEFINE_CLEANUP_FUNC(struct local_client *, local_client_free)
#define _cleanup_local_client_ _cleanup_(local_client_freep)

/* One call: method on path (without the api-version, which is added),
 * body (may be NULL). A 2xx answer returns 0 with its JSON in *ret (NULL
 * for an empty body; the caller decrefs). Errors, with a sentence naming
 * the daemon, its socket and the call:
 *   -ECONNREFUSED, -ENOENT, ...  the daemon cannot be reached
 *   -EPROTO   it answered with an error status (*ret_status has it, and
 *             the sentence its message)
 *   -EBADMSG  the answer is not JSON
 * ret_status may be NULL. */
int local_client_call(struct local_client *lc, const char *method, const char *path,
		      const json_t *body, json_t **ret, long *ret_status, struct err *e);

/* keyd (API 2021-05-01). Handles are malloc'd strings the caller frees. */
int keyd_client_key_handle(struct local_client *lc, const char *key_id, char **ret, struct err *e);
int keyd_client_key_pair_handle(struct local_client *lc, const char *key_id, char **ret,
				struct err *e);
int keyd_client_hmac(struct local_client *lc, const char *handle, const void *msg, size_t len,
		     uint8_t ret[32], struct err *e);
/* ECDSA over a digest the caller computed: a DER ECDSA-Sig-Value. */
int keyd_client_sign_ecdsa(struct local_client *lc, const char *handle, const void *digest,
			   size_t len, struct buf *ret, struct err *e);
/* RSA private-key operation ("RSA-PKCS1" or "RSA-NO-PADDING" /encrypt). */
int keyd_client_rsa_private(struct local_client *lc, const char *handle, bool pkcs1, const void *in,
			    size_t len, struct buf *ret, struct err *e);

/* tpmd (API 2020-09-01). */
int tpmd_client_get_keys(struct local_client *lc, struct buf *ret_ek, struct buf *ret_srk,
			 struct err *e);
int tpmd_client_import_auth_key(struct local_client *lc, const void *blob, size_t len,
				struct err *e);
int tpmd_client_sign(struct local_client *lc, const void *data, size_t len, uint8_t ret[32],
		     struct err *e);

/* ---- keyd-held private keys for TLS (keyd_pkey.c) -------------------------- */

/* An EVP_PKEY with the public key pub (not kept) whose private operations
 * go to keyd with handle (EC: /sign ECDSA; RSA: /encrypt RSA-PKCS1 or
 * RSA-NO-PADDING, as aziot's engine does). It keeps its own copy of
 * socket_path and handle. Returns 0 and *ret (EVP_PKEY_free), -ENOTSUP
 * for a key type other than EC P-256/P-384 or RSA, -ENOMEM, -EIO. */
int keyd_pkey_new(const char *socket_path, const char *handle, EVP_PKEY *pub, EVP_PKEY **ret,
		  struct err *e);

#endif
