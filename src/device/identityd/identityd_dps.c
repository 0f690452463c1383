/* SPDX-License-Identifier: MIT */
/*
 * Registration with DPS over HTTPS, as aziot-identityd does it
 * (aziot-compat.md §5.1, §5.2; dps-protocol.md §1, §3.3):
 *
 *   TPM:    GET tpmd /get_tpm_keys; PUT .../register with the EK and SRK and
 *           no Authorization -> 401 {"authenticationKey"} -> tpmd
 *           /import_auth_key; the SAS below is then signed in the TPM
 *   all:    PUT .../register {"registrationId", "payload"?} with the SAS
 *           (symmetric key: keyd HMAC; TPM: tpmd) or the TLS client
 *           certificate (X.509) -> 202 {"operationId"}
 *   poll:   GET .../operations/{operationId} until "assigned" (TPM: import
 *           registrationState.tpm.authenticationKey, the hub key), "failed"
 *           or "disabled"
 *
 * Where edgeid differs, on purpose: it waits what Retry-After says (1 s to
 * 30 s; 2 s without one) instead of a fixed 5 s, and signs a fresh SAS for
 * each poll instead of reusing one that expires after 30 s. The bytes of
 * each token are aziot's.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/encode.h"
#include "common/fs.h"
#include "common/json.h"
#include "common/log.h"
#include "device/identityd/identityd_private.h"

#define DPS_API_VERSION "2021-06-01"
#define POLL_DEFAULT_MS 2000
#define POLL_MIN_MS 1000
#define POLL_MAX_MS 30000
/* The assignment must be final this long after the registration. */
#define POLL_DEADLINE_SEC 600
#define PAYLOAD_MAX (64 * 1024)

struct dps {
	struct identityd_job_context *ctx;
	const struct identityd_settings *s;
	const char *regid;
	enum identityd_fault *fault;
	struct err *e;
};

static int fail(struct dps *d, enum identityd_fault fault, int r, const char *fmt, ...)
    _printf_(4, 5);
static int fail(struct dps *d, enum identityd_fault fault, int r, const char *fmt, ...)
{
	va_list ap;

	*d->fault = fault;
	va_start(ap, fmt);
	err_setv(d->e, r, fmt, ap);
	va_end(ap);
	return r;
}

/* As fail(), for an error e already describes: "what: <its message>". */
static int fail_in(struct dps *d, enum identityd_fault fault, int r, const char *what)
{
	*d->fault = fault;
	return err_prefix(d->e, r, "%s", what);
}

/* https://host/{scope}/registrations/{regid}{suffix}?api-version=... */
static int url(struct dps *d, const char *suffix, struct buf *out)
{
	if (buf_printf(out, "%s/", d->s->dps_base_url) < 0 ||
	    url_encode(out, d->s->scope_id, strlen(d->s->scope_id), NULL) < 0 ||
	    buf_append_str(out, "/registrations/") < 0 ||
	    url_encode(out, d->regid, strlen(d->regid), ":") < 0 ||
	    buf_printf(out, "%s?api-version=" DPS_API_VERSION, suffix) < 0)
		return fail(d, IDENTITYD_FAULT_LOCAL, -ENOMEM, "out of memory");
	return 0;
}

/* The payload file's JSON (read at each registration, as aziot does). */
static int payload(struct dps *d, json_t **ret)
{
	_cleanup_buf_ struct buf text = {0};
	struct err inner = {0};
	int r;

	*ret = NULL;
	if (!d->s->payload_path)
		return 0;
	buf_init(&text, PAYLOAD_MAX);
	r = fs_read_file(d->s->payload_path, PAYLOAD_MAX, &text, &inner);
	if (r >= 0)
		r = json_parse(text.data ? text.data : "", text.len, 0, ret, &inner);
	if (r < 0)
		return fail(d, IDENTITYD_FAULT_PERMANENT, r, "the DPS payload %s: %s",
			    d->s->payload_uri, err_msg(&inner, r));
	return 0;
}

static int register_body(struct dps *d, const struct buf *ek, const struct buf *srk, char **ret)
{
	_cleanup_json_ json_t *body = json_object(), *pl = NULL;
	_cleanup_buf_ struct buf ek64 = {0}, srk64 = {0};
	int r;

	buf_init(&ek64, 0);
	buf_init(&srk64, 0);
	r = payload(d, &pl);
	if (r < 0)
		return r;
	if (!body || json_object_set_new(body, "registrationId", json_string(d->regid)) < 0)
		goto oom;
	if (ek) {
		if (base64_encode(&ek64, ek->data, ek->len, B64_STANDARD) < 0 ||
		    base64_encode(&srk64, srk->data, srk->len, B64_STANDARD) < 0 ||
		    json_object_set_new(body, "tpm",
					json_pack("{s:s,s:s}", "endorsementKey", buf_str(&ek64),
						  "storageRootKey", buf_str(&srk64))) < 0)
			goto oom;
	}
	if (pl && json_object_set(body, "payload", pl) < 0)
		goto oom;
	*ret = json_dump_compact(body);
	if (*ret)
		return 0;
oom:
	return fail(d, IDENTITYD_FAULT_LOCAL, -ENOMEM, "out of memory");
}

/* The registration SAS (symmetric key, TPM); NULL for X.509. */
static int authorization(struct dps *d, char **ret)
{
	_cleanup_buf_ struct buf audience = {0}, token = {0};
	int r;

	*ret = NULL;
	if (d->s->auth == IDENTITYD_AUTH_X509)
		return 0;
	buf_init(&audience, 4096);
	buf_init_secret(&token, 4096);
	if (buf_printf(&audience, "%s/registrations/%s", d->s->scope_id, d->regid) < 0)
		return fail(d, IDENTITYD_FAULT_LOCAL, -ENOMEM, "out of memory");
	r = identityd_sas_build(buf_str(&audience), "registration", 0, identityd_job_sign, d->ctx,
				&token, d->e);
	if (r < 0)
		return fail_in(d, IDENTITYD_FAULT_LOCAL, r, "cannot sign the DPS SAS token");
	*ret = buf_steal(&token, NULL);
	return *ret ? 0 : fail(d, IDENTITYD_FAULT_LOCAL, -ENOMEM, "out of memory");
}

static int send(struct dps *d, const char *method, const char *target, const char *auth,
		const char *body, struct http_client_response *resp)
{
	struct http_header headers[2];
	size_t n = 0;
	struct http_client_request req = {.method = method, .url = target};
	struct err inner = {0};
	int r;

	if (body)
		headers[n++] = (struct http_header){"Content-Type", "application/json"};
	if (auth)
		headers[n++] = (struct http_header){"Authorization", auth};
	req.headers = headers;
	req.n_headers = n;
	req.body = body;
	req.body_len = body ? strlen(body) : 0;
	r = identityd_cloud_perform(&d->ctx->cloud, &req, resp, &inner);
	/* Retried: a device without a clock set yet sees valid certificates
	 * as not yet valid. */
	if (r == -EKEYREJECTED)
		return fail(d, IDENTITYD_FAULT_NETWORK, r,
			    "DPS's TLS certificate is not trusted (%s); add its CA to "
			    "trust_bundle_cert or to the system store",
			    err_msg(&inner, r));
	if (r < 0)
		return fail(d, IDENTITYD_FAULT_NETWORK, r, "cannot reach DPS: %s",
			    err_msg(&inner, r));
	return 0;
}

/* An answer DPS was not expected to give, as one sentence and a fault. */
static int refused(struct dps *d, const struct http_client_response *resp, const char *what,
		   bool polling)
{
	char text[512];
	long st = resp->status;

	identityd_cloud_error_text(resp, text, sizeof(text));
	if (st == 401)
		return fail(d, IDENTITYD_FAULT_REFUSED, -EACCES,
			    "DPS refused registration '%s' in ID scope '%s' (401 %s); check that "
			    "an enrollment for it exists and that the device's %s matches it",
			    d->regid, d->s->scope_id, text,
			    d->s->auth == IDENTITYD_AUTH_X509  ? "certificate"
			    : d->s->auth == IDENTITYD_AUTH_TPM ? "endorsement key"
							       : "symmetric key");
	if (st == 404 && polling)
		return fail(d, IDENTITYD_FAULT_NETWORK, -ENOENT,
			    "DPS no longer knows the operation of registration '%s' (404 %s)",
			    d->regid, text);
	if (st == 404)
		return fail(d, IDENTITYD_FAULT_PERMANENT, -ENOENT,
			    "DPS at %s does not serve ID scope '%s' (404 %s); check "
			    "provisioning.id_scope",
			    d->s->dps_base_url, d->s->scope_id, text);
	if (st == 429 || st >= 500)
		return fail(d, IDENTITYD_FAULT_NETWORK, -EAGAIN, "DPS could not %s (%ld %s)", what,
			    st, text);
	return fail(d, st == 403 ? IDENTITYD_FAULT_REFUSED : IDENTITYD_FAULT_PERMANENT, -EPROTO,
		    "DPS refused to %s for registration '%s' (%ld %s)", what, d->regid, st, text);
}

static int parse_json(struct dps *d, const struct http_client_response *resp, json_t **ret)
{
	struct err inner = {0};

	if (json_parse(buf_str(&resp->body), resp->body.len, 0, ret, &inner) < 0 ||
	    !json_is_object(*ret)) {
		json_decref(*ret);
		*ret = NULL;
		return fail(d, IDENTITYD_FAULT_NETWORK, -EBADMSG,
			    "DPS answered HTTP %ld with a body that is not a JSON object",
			    resp->status);
	}
	return 0;
}

/* TPM: the EK/SRK PUT without Authorization; DPS answers 401 with the
 * authentication key, which goes into the TPM. */
static int tpm_challenge(struct dps *d, const char *target)
{
	_cleanup_buf_ struct buf ek = {0}, srk = {0}, blob = {0};
	_cleanup_http_client_response_ struct http_client_response resp = {0};
	_cleanup_free_ char *body = NULL;
	_cleanup_json_ json_t *j = NULL;
	const char *key = NULL;
	int r;

	buf_init(&ek, 4096);
	buf_init(&srk, 4096);
	buf_init_secret(&blob, 16384);
	r = tpmd_client_get_keys(d->ctx->tpmd, &ek, &srk, d->e);
	if (r < 0)
		return fail_in(d, IDENTITYD_FAULT_LOCAL, r, "cannot read the TPM's keys");
	r = register_body(d, &ek, &srk, &body);
	if (r >= 0)
		r = send(d, "PUT", target, NULL, body, &resp);
	if (r < 0)
		return r;
	if (resp.status != 401)
		return resp.status == 202
			   ? fail(d, IDENTITYD_FAULT_PERMANENT, -EPROTO,
				  "DPS accepted registration '%s' without the TPM challenge; it "
				  "is not a TPM enrollment",
				  d->regid)
			   : refused(d, &resp, "start the TPM challenge", false);
	if (parse_json(d, &resp, &j) < 0)
		return -EBADMSG;
	if (json_get_string(j, "authenticationKey", &key, NULL) < 0)
		return fail(d, IDENTITYD_FAULT_REFUSED, -EACCES,
			    "DPS refused registration '%s' in ID scope '%s': the TPM's "
			    "endorsement key does not match an enrollment",
			    d->regid, d->s->scope_id);
	if (base64_decode(&blob, key, strlen(key), B64_STANDARD, NULL) < 0)
		return fail(d, IDENTITYD_FAULT_NETWORK, -EBADMSG,
			    "DPS sent an authenticationKey that is not base64");
	r = tpmd_client_import_auth_key(d->ctx->tpmd, blob.data, blob.len, d->e);
	if (r < 0)
		return fail_in(d, IDENTITYD_FAULT_LOCAL, r,
			       "the TPM could not import DPS's authentication key");
	return 0;
}

static unsigned poll_wait_ms(const struct http_client_response *resp)
{
	int64_t ms = resp->retry_after_ms >= 0 ? resp->retry_after_ms : POLL_DEFAULT_MS;

	if (ms < POLL_MIN_MS)
		ms = POLL_MIN_MS;
	if (ms > POLL_MAX_MS)
		ms = POLL_MAX_MS;
	return (unsigned)ms;
}

static void sleep_ms(struct dps *d, unsigned ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

	if (d->ctx->cloud.sleep_ms) {
		d->ctx->cloud.sleep_ms(ms);
		return;
	}
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* A final "assigned" answer: the hub and device id, and for TPM the hub
 * key, imported into the TPM. */
static int assigned(struct dps *d, const json_t *j, struct identityd_dps_result *ret)
{
	const char *hub = NULL, *device = NULL, *key = NULL;
	_cleanup_buf_ struct buf blob = {0};
	int r;

	if (json_get_string(j, "registrationState.assignedHub", &hub, NULL) < 0 ||
	    json_get_string(j, "registrationState.deviceId", &device, NULL) < 0 || !*hub ||
	    !*device)
		return fail(d, IDENTITYD_FAULT_NETWORK, -EBADMSG,
			    "DPS assigned registration '%s' but named no hub or device id",
			    d->regid);
	if (d->s->auth == IDENTITYD_AUTH_TPM &&
	    json_get_string_opt(j, "registrationState.tpm.authenticationKey", &key, NULL) == 0 &&
	    key) {
		buf_init_secret(&blob, 16384);
		if (base64_decode(&blob, key, strlen(key), B64_STANDARD, NULL) < 0)
			return fail(d, IDENTITYD_FAULT_NETWORK, -EBADMSG,
				    "DPS sent a hub authenticationKey that is not base64");
		r = tpmd_client_import_auth_key(d->ctx->tpmd, blob.data, blob.len, d->e);
		if (r < 0)
			return fail_in(d, IDENTITYD_FAULT_LOCAL, r,
				       "the TPM could not import the hub key DPS sent");
	}
	ret->assigned_hub = strdup(hub);
	ret->device_id = strdup(device);
	if (!ret->assigned_hub || !ret->device_id) {
		identityd_dps_result_clear(ret);
		return fail(d, IDENTITYD_FAULT_LOCAL, -ENOMEM, "out of memory");
	}
	return 0;
}

/* A 200/202 status answer. Returns 1 to keep polling, 0 when assigned. */
static int status_answer(struct dps *d, const json_t *j, struct identityd_dps_result *ret)
{
	const char *status = NULL, *msg = NULL;
	int64_t code = 0;

	if (json_get_string(j, "status", &status, NULL) < 0)
		return fail(d, IDENTITYD_FAULT_NETWORK, -EBADMSG,
			    "DPS answered the registration without a status");
	if (streq(status, "assigning"))
		return 1;
	if (streq(status, "assigned"))
		return assigned(d, j, ret);
	(void)json_get_string_opt(j, "registrationState.errorMessage", &msg, NULL);
	(void)json_get_int_opt(j, "registrationState.errorCode", INT64_MIN, INT64_MAX, 0, &code,
			       NULL);
	/* Retried, slowly (identityd.c): enabling the enrollment is done in
	 * the cloud, and a device in the field cannot be asked to
	 * reprovision. DPS's own words are kept when it gives any. */
	if (streq(status, "disabled")) {
		char dps_text[600] = "";

		if (msg && code)
			snprintf(dps_text, sizeof(dps_text), " (DPS: %s (errorCode %lld))", msg,
				 (long long)code);
		else if (msg)
			snprintf(dps_text, sizeof(dps_text), " (DPS: %s)", msg);
		return fail(d, IDENTITYD_FAULT_REFUSED, -EPERM,
			    "DPS refused registration '%s' in ID scope '%s': the enrollment is "
			    "disabled%s; enable it, then reprovision the device",
			    d->regid, d->s->scope_id, dps_text);
	}
	if (streq(status, "failed")) {
		return fail(d,
			    code >= 500000 || code / 1000 == 429       ? IDENTITYD_FAULT_NETWORK
			    : code / 1000 == 401 || code / 1000 == 403 ? IDENTITYD_FAULT_REFUSED
								       : IDENTITYD_FAULT_PERMANENT,
			    -EPROTO, "DPS could not assign registration '%s': %s (errorCode %lld)",
			    d->regid, msg ? msg : "no reason given", (long long)code);
	}
	return fail(d, IDENTITYD_FAULT_PERMANENT, -EPROTO,
		    "DPS answered registration '%s' with status '%s'", d->regid, status);
}

int identityd_dps_register(struct identityd_job_context *ctx, struct identityd_dps_result *ret,
			   enum identityd_fault *ret_fault, struct err *e)
{
	struct dps d = {
	    .ctx = ctx, .s = ctx->s, .regid = ctx->registration_id, .fault = ret_fault, .e = e};
	_cleanup_buf_ struct buf reg_url = {0}, op_url = {0};
	_cleanup_http_client_response_ struct http_client_response resp = {0};
	_cleanup_free_ char *body = NULL;
	_cleanup_secret_ char *auth = NULL;
	_cleanup_json_ json_t *j = NULL;
	const char *op = NULL;
	time_t deadline;
	int r;

	*ret = (struct identityd_dps_result){0};
	*ret_fault = IDENTITYD_FAULT_NONE;
	buf_init(&reg_url, 8192);
	buf_init(&op_url, 8192);
	r = url(&d, "/register", &reg_url);
	if (r < 0)
		return r;
	log_info("registering '%s' with DPS at %s (ID scope '%s', %s attestation)", d.regid,
		 ctx->s->dps_base_url, ctx->s->scope_id, identityd_auth_name(ctx->s));
	if (ctx->s->auth == IDENTITYD_AUTH_TPM) {
		r = tpm_challenge(&d, buf_str(&reg_url));
		if (r < 0)
			return r;
	}
	r = register_body(&d, NULL, NULL, &body);
	if (r >= 0)
		r = authorization(&d, &auth);
	if (r >= 0)
		r = send(&d, "PUT", buf_str(&reg_url), auth, body, &resp);
	if (r < 0)
		return r;
	if (resp.status != 202)
		return refused(&d, &resp, "register the device", false);
	if (parse_json(&d, &resp, &j) < 0)
		return -EBADMSG;
	if (json_get_string(j, "operationId", &op, NULL) < 0 || !*op)
		return fail(&d, IDENTITYD_FAULT_NETWORK, -EBADMSG,
			    "DPS accepted registration '%s' without an operationId", d.regid);
	{
		_cleanup_buf_ struct buf suffix = {0};

		buf_init(&suffix, 4096);
		if (buf_append_str(&suffix, "/operations/") < 0 ||
		    url_encode(&suffix, op, strlen(op), NULL) < 0)
			return fail(&d, IDENTITYD_FAULT_LOCAL, -ENOMEM, "out of memory");
		r = url(&d, buf_str(&suffix), &op_url);
		if (r < 0)
			return r;
	}
	r = status_answer(&d, j, ret);
	if (r <= 0)
		return r;

	deadline = time(NULL) + POLL_DEADLINE_SEC;
	for (;;) {
		sleep_ms(&d, poll_wait_ms(&resp));
		if (time(NULL) > deadline)
			return fail(&d, IDENTITYD_FAULT_NETWORK, -ETIMEDOUT,
				    "DPS did not finish registration '%s' within %d s", d.regid,
				    POLL_DEADLINE_SEC);
		if (auth) {
			explicit_bzero(auth, strlen(auth));
			free(auth);
			auth = NULL;
		}
		r = authorization(&d, &auth);
		if (r >= 0)
			r = send(&d, "GET", buf_str(&op_url), auth, NULL, &resp);
		if (r < 0)
			return r;
		if (resp.status != 200 && resp.status != 202)
			return refused(&d, &resp, "report the registration's status", true);
		json_decref(j);
		j = NULL;
		if (parse_json(&d, &resp, &j) < 0)
			return -EBADMSG;
		r = status_answer(&d, j, ret);
		if (r <= 0)
			return r;
	}
}

void identityd_dps_result_clear(struct identityd_dps_result *r)
{
	free(r->assigned_hub);
	free(r->device_id);
	*r = (struct identityd_dps_result){0};
}
