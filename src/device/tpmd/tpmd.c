/* SPDX-License-Identifier: MIT */
/*
 * tpmd: aziot's TPM Service API (specs/aziot-compat.md §2.4) on the daemon
 * runtime. This file holds the route table and the handlers; settings are
 * in tpmd_settings.c, the TPM connection and its retries in tpmd_conn.c,
 * the TPM itself behind src/tpm.
 *
 *   GET  /get_tpm_keys        {"endorsement_key": b64, "storage_root_key": b64}
 *   POST /import_auth_key     {"key": b64}  -> {}
 *   POST /sign_with_auth_key  {"data": b64} -> {"digest": b64}
 *   GET  /tpm/status          {"tpm": "available"|"unavailable", "tcti",
 *                             "error"} (edgeid's; what `edgeid system
 *                             status` shows)
 *
 * Each handler checks, in this order: the caller's uid (403 "user N is not
 * authorized to use the TPM service", before anything else, so a refused
 * caller learns nothing about the TPM), the request (400, 413, 422), then
 * whether the TPM is reachable (503 with the reason), then the TPM command.
 * The caller's mistakes are 4xx with a sentence; tpmd's and the TPM's own
 * failures are 500 "internal error" with the detail in the log.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "common/encode.h"
#include "common/json.h"
#include "common/log.h"
#include "crypto/tpm_blob.h"
#include "device/tpmd/tpmd.h"

struct tpmd {
	struct daemon *d;
	struct tpmd_settings s;
	struct tpmd_conn *conn;
};

/* --- the daemon's life ------------------------------------------------- */

static void log_principals(const struct tpmd_settings *s)
{
	if (s->uids_from_default)
		log_info("callers: uid 0 and uid %u (user " TPMD_DEFAULT_PRINCIPAL_USER
			 ", as no [[principal]] is configured)",
			 (unsigned)s->uids[0]);
	else if (s->n_uids == 0)
		log_warn("callers: uid 0 only (no [[principal]] is configured and there is no "
			 "user " TPMD_DEFAULT_PRINCIPAL_USER ")");
	else
		log_info("callers: uid 0 and %zu [[principal]] uid(s)", s->n_uids);
}

static int open_conn(struct daemon *d, const struct tpmd_settings *s, struct tpmd_conn **ret,
		     struct err *e)
{
	struct tpm_hierarchy_auth auth = {.endorsement = s->endorsement_auth,
					  .owner = s->owner_auth};

	if (tpmd_conn_new(daemon_event_base(d), s->tcti, &auth, ret) < 0)
		return err_set(e, -ENOMEM, "out of memory");
	return 0;
}

static int tpmd_check(struct daemon *d, struct err *e)
{
	struct tpmd_settings s;
	int r = tpmd_settings_parse(daemon_get_config(d), &s, e);

	if (r >= 0)
		tpmd_settings_clear(&s);
	return r;
}

static void tpmd_fini(void *state)
{
	struct tpmd *t = state;

	if (!t)
		return;
	tpmd_conn_free(t->conn);
	tpmd_settings_clear(&t->s);
	free(t);
}

static int tpmd_init(struct daemon *d, void **ret_state, struct err *e)
{
	struct tpmd *t;
	int r;

	/* tpm2-tss logs every command the TPM refuses on stderr at error
	 * level; tpmd reports failures itself, once. An operator who wants
	 * the library's own trace sets TSS2_LOG (e.g. all+debug). */
	if (setenv("TSS2_LOG", "all+none", 0) < 0)
		return err_set(e, -errno, "TSS2_LOG: %s", strerror(errno));
	t = calloc(1, sizeof(*t));
	if (!t)
		return err_set(e, -ENOMEM, "out of memory");
	t->d = d;
	r = tpmd_settings_parse(daemon_get_config(d), &t->s, e);
	if (r >= 0)
		r = open_conn(d, &t->s, &t->conn, e);
	if (r < 0) {
		tpmd_fini(t);
		return r;
	}
	log_principals(&t->s);
	tpmd_conn_start(t->conn);
	*ret_state = t;
	return 0;
}

/* SIGHUP: new principals and auth key handle at once; a new tcti or new
 * hierarchy authorization reopens the TPM. */
static int tpmd_reload(struct daemon *d, void *state, const struct daemon_config *next,
		       struct err *e)
{
	struct tpmd *t = state;
	struct tpmd_settings s;
	struct tpmd_conn *conn = NULL;
	int r;

	r = tpmd_settings_parse(next, &s, e);
	if (r < 0)
		return r;
	if (!tpmd_settings_same_tpm(&s, &t->s)) {
		r = open_conn(d, &s, &conn, e);
		if (r < 0) {
			tpmd_settings_clear(&s);
			return r;
		}
		/* Close the old context before the new one opens: swtpm and
		 * /dev/tpm0 serve one client at a time. */
		tpmd_conn_free(t->conn);
		t->conn = conn;
		log_info("the TPM settings changed: reopening the TPM");
	}
	tpmd_settings_clear(&t->s);
	t->s = s;
	log_principals(&t->s);
	if (conn)
		tpmd_conn_start(conn);
	return 0;
}

/* --- request helpers ---------------------------------------------------- */

static bool allowed(struct tpmd *t, struct daemon_request *req)
{
	uid_t uid = daemon_request_cred(req)->uid;

	if (tpmd_settings_allow(&t->s, uid))
		return true;
	daemon_respond_error(req, 403, "user %u is not authorized to use the TPM service",
			     (unsigned)uid);
	return false;
}

/* The open TPM, or NULL after answering 503 with the reason. */
static struct tpm *tpm_or_503(struct tpmd *t, struct daemon_request *req)
{
	struct err e = {0};
	struct tpm *tpm = tpmd_conn_get(t->conn, &e);

	if (!tpm)
		daemon_respond_error(req, 503, "the TPM is not available: %s", err_msg(&e, -EIO));
	return tpm;
}

/* A TPM command failed with r (not the caller's fault): 503 when the TPM
 * went away or asks to retry, otherwise 500 with the detail in the log. */
static int tpm_failed(struct tpmd *t, struct daemon_request *req, int r, const struct err *e)
{
	if (tpmd_conn_check_lost(t->conn, r, e))
		return tpm_or_503(t, req) ? daemon_respond_error(req, 500, "internal error") : 0;
	if (r == -EAGAIN)
		return daemon_respond_error(req, 503, "the TPM is busy: %s; try again",
					    err_msg(e, r));
	log_err("%s", err_msg(e, r));
	return daemon_respond_error(req, 500, "internal error");
}

/* The required base64 field name of obj (standard alphabet, padding
 * required, as aziot's ByteString) decoded into out, whose maximum is
 * max. Returns 0, or 1 after answering. */
static int field_bytes(struct daemon_request *req, const json_t *obj, const char *name, size_t max,
		       struct buf *out)
{
	struct err e = {0};
	const char *s;
	size_t bad = 0;
	int r;

	r = json_get_string(obj, name, &s, &e);
	if (r < 0) {
		daemon_respond_error(req, 422, "%s", err_msg(&e, r));
		return 1;
	}
	r = base64_decode(out, s, strlen(s), B64_STANDARD, &bad);
	if (r == -EINVAL) {
		daemon_respond_error(req, 422, "%s: invalid base64 at offset %zu", name, bad);
		return 1;
	}
	if (r == -E2BIG) {
		daemon_respond_error(req, 413, "%s: too large (at most %zu bytes)", name, max);
		return 1;
	}
	if (r < 0) {
		daemon_respond_error(req, 500, "internal error");
		return 1;
	}
	return 0;
}

/* Make sure the EK and SRK are there (another program may have evicted
 * them since start-up), appending their public areas to ek and srk. */
static int ensure_keys(struct tpm *tpm, struct buf *ek, struct buf *srk, struct err *e)
{
	int r = tpm_ensure_ek(tpm, ek, e);

	return r < 0 ? r : tpm_ensure_srk(tpm, srk, e);
}

/* --- handlers ------------------------------------------------------------ */

static int get_tpm_keys(struct daemon_request *req, void *state)
{
	struct tpmd *t = state;
	_cleanup_buf_ struct buf ek = {0}, srk = {0}, ek64 = {0}, srk64 = {0};
	_cleanup_json_ json_t *o = NULL;
	struct err e = {0};
	struct tpm *tpm;
	int r;

	if (!allowed(t, req))
		return 0;
	/* A body, if any, is ignored (as aziot does). */
	tpm = tpm_or_503(t, req);
	if (!tpm)
		return 0;
	buf_init(&ek, 4096);
	buf_init(&srk, 4096);
	r = ensure_keys(tpm, &ek, &srk, &e);
	if (r < 0)
		return tpm_failed(t, req, r, &e);
	buf_init(&ek64, 0);
	buf_init(&srk64, 0);
	if (base64_encode(&ek64, ek.data, ek.len, B64_STANDARD) < 0 ||
	    base64_encode(&srk64, srk.data, srk.len, B64_STANDARD) < 0)
		return -ENOMEM;
	o = json_pack("{s:s, s:s}", "endorsement_key", buf_str(&ek64), "storage_root_key",
		      buf_str(&srk64));
	return o ? daemon_respond_json(req, 200, o) : -ENOMEM;
}

static int post_import_auth_key(struct daemon_request *req, void *state)
{
	struct tpmd *t = state;
	_cleanup_buf_ struct buf blob = {0}, ek = {0}, srk = {0};
	_cleanup_json_ json_t *o = NULL;
	struct tpm_blob parts;
	struct err e = {0};
	json_t *body;
	struct tpm *tpm;
	int r;

	if (!allowed(t, req))
		return 0;
	buf_init(&blob, TPMD_KEY_BLOB_MAX);
	body = daemon_request_object(req);
	if (!body || field_bytes(req, body, "key", TPMD_KEY_BLOB_MAX, &blob))
		return 0;
	/* The blob's shape is the request's: checked before the TPM is asked
	 * for, and told in the parser's own words ("authentication key blob:
	 * item 1 (credentialBlob): truncated"). */
	r = tpm_blob_parse(blob.data, blob.len, &parts, &e);
	if (r == -EBADMSG || r == -EOPNOTSUPP)
		return daemon_respond_error(req, 400, "%s", err_msg(&e, r));
	if (r < 0)
		return r;
	tpm = tpm_or_503(t, req);
	if (!tpm)
		return 0;
	buf_init(&ek, 4096);
	buf_init(&srk, 4096);
	r = ensure_keys(tpm, &ek, &srk, &e);
	if (r >= 0)
		r = tpm_import_auth_key(tpm, blob.data, blob.len, t->s.auth_key_handle, &e);
	/* A blob that is malformed, of the wrong kind, or made for another
	 * TPM: the caller's (or DPS's) to fix, and the sentence says which. */
	if (r == -EBADMSG || r == -EOPNOTSUPP)
		return daemon_respond_error(req, 400, "%s", err_msg(&e, r));
	if (r < 0)
		return tpm_failed(t, req, r, &e);
	log_info("imported the authentication key at 0x%08x", t->s.auth_key_handle);
	o = json_object();
	return o ? daemon_respond_json(req, 200, o) : -ENOMEM;
}

static int post_sign_with_auth_key(struct daemon_request *req, void *state)
{
	struct tpmd *t = state;
	_cleanup_buf_ struct buf data = {0}, digest = {0};
	_cleanup_json_ json_t *o = NULL;
	uint8_t mac[TPM_HMAC_LEN];
	struct err e = {0};
	json_t *body;
	struct tpm *tpm;
	int r;

	if (!allowed(t, req))
		return 0;
	buf_init(&data, TPMD_SIGN_DATA_MAX);
	body = daemon_request_object(req);
	if (!body || field_bytes(req, body, "data", TPMD_SIGN_DATA_MAX, &data))
		return 0;
	tpm = tpm_or_503(t, req);
	if (!tpm)
		return 0;
	r = tpm_hmac(tpm, t->s.auth_key_handle, data.data, data.len, mac, &e);
	if (r == -ENOENT)
		return daemon_respond_error(req, 400,
					    "no authentication key has been imported (nothing at "
					    "0x%08x); import one with /import_auth_key first",
					    t->s.auth_key_handle);
	if (r < 0)
		return tpm_failed(t, req, r, &e);
	/* The digest is half of a SAS token: wiped once sent. */
	buf_init_secret(&digest, 0);
	r = base64_encode(&digest, mac, sizeof(mac), B64_STANDARD);
	OPENSSL_cleanse(mac, sizeof(mac));
	if (r < 0)
		return -ENOMEM;
	o = json_pack("{s:s}", "digest", buf_str(&digest));
	return o ? daemon_respond_json(req, 200, o) : -ENOMEM;
}

/* Whether the TPM can be used now, and why not. Like a request, it tries
 * to reach an unavailable TPM again when the last attempt is a second
 * old, so the answer is current. */
static int get_tpm_status(struct daemon_request *req, void *state)
{
	struct tpmd *t = state;
	_cleanup_json_ json_t *o = NULL;
	struct err e = {0};
	bool available;

	if (!allowed(t, req))
		return 0;
	available = tpmd_conn_get(t->conn, &e) != NULL;
	o = json_pack("{s:s, s:s, s:s?}", "tpm", available ? "available" : "unavailable", "tcti",
		      t->s.tcti, "error", available ? NULL : err_msg(&e, -EIO));
	return o ? daemon_respond_json(req, 200, o) : -ENOMEM;
}

/* --- the daemon ---------------------------------------------------------- */

static const char *const tpmd_api_versions[] = {TPMD_API_VERSION, NULL};

static const struct daemon_route tpmd_routes[] = {
    {.pattern = "/get_tpm_keys", .get = get_tpm_keys},
    {.pattern = "/import_auth_key", .post = post_import_auth_key},
    {.pattern = "/sign_with_auth_key", .post = post_sign_with_auth_key},
    {.pattern = "/tpm/status", .get = get_tpm_status, .quiet = true},
};

const struct daemon_spec tpmd_spec = {
    .name = "tpmd",
    .summary = "the TPM service: EK and SRK, the DPS authentication key, HMAC signing",
    .api_versions = tpmd_api_versions,
    .routes = tpmd_routes,
    .n_routes = ARRAY_SIZE(tpmd_routes),
    .principal_grants = NULL, /* [[principal]] is read by tpmd_settings.c */
    .init = tpmd_init,
    .check = tpmd_check,
    .reload = tpmd_reload,
    .fini = tpmd_fini,
};
