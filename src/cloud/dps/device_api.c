/* SPDX-License-Identifier: MIT */
/*
 * The device registration API (dps-protocol.md §1):
 *   PUT  /{idScope}/registrations/{id}/register
 *   GET  /{idScope}/registrations/{id}/operations/{operationId}
 *   POST /{idScope}/registrations/{id}            (status lookup)
 * with any api-version. The assignment runs on the assignment threads; the
 * status GET reports "assigning" (202, Retry-After) until the record is
 * final (200).
 *
 * The register answer. A TPM device's first PUT gets 401 with the
 * challenge, as always. Otherwise the record is written "assigning" (or
 * "disabled") and the answer is held ([dps] register_wait_ms, 250 ms by
 * default; hold.c) while the assignment runs: if it is final in time, the
 * answer is 202 with the final RegistrationOperationStatus, the very body
 * the status GET would give ("assigned" with registrationState, "failed"
 * or "disabled" with theirs), so a device needs no poll and no
 * Retry-After wait; otherwise 202 "assigning" with Retry-After, and the
 * device polls. Always 202, never 200: aziot accepts exactly 202 for the
 * PUT (dps-protocol.md §1.4) and polls anyway; Node and identityd take a
 * final status from the PUT answer. Each answer is sent only once what it
 * reports is committed. register_wait_ms = 0 answers "assigning" at once
 * (the behaviour before the hold).
 *
 * Retry-After is [dps] retry_after, 1 second by default: an assignment
 * takes milliseconds, Node waits exactly the header's seconds and the C SDK
 * clamps it to at least 1, so 1 is the shortest wait every client honours;
 * a larger value only trades device latency for fewer polls.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/rand.h>

#include "cloud/dps/assign.h"
#include "cloud/dps/attest.h"
#include "cloud/dps/enrollment.h"
#include "cloud/dps/hold.h"
#include "cloud/dps/http.h"
#include "cloud/dps/registration.h"
#include "cloud/store/store.h"
#include "common/encode.h"
#include "common/http_server.h"
#include "common/json.h"
#include "common/log.h"

static void reply_failure(struct dps_worker *w, struct http_request *req, int r,
			  const struct err *e)
{
	if (r == -EACCES)
		dps_reply_error(w, req, 401, DPS_E_UNAUTHORIZED, err_msg(e, r));
	else if (r == -EBADMSG || r == -EINVAL)
		dps_reply_error(w, req, 400, DPS_E_INVALID, err_msg(e, r));
	else {
		log_warn("dps: registration: %s", err_msg(e, r));
		dps_reply_error(w, req, 500, DPS_E_INTERNAL, "Internal error.");
	}
}

void dps_set_retry_after(struct dps_worker *w, struct http_request *req)
{
	char text[16];

	snprintf(text, sizeof(text), "%u", w->settings->retry_after);
	(void)http_response_add_header(req, "Retry-After", text);
}

static void new_operation_id(char ret[64])
{
	char uuid[37];
	uint8_t r[8];

	dps_uuid(uuid);
	if (RAND_bytes(r, sizeof(r)) != 1)
		memset(r, 0, sizeof(r));
	snprintf(ret, 64, "4.%02x%02x%02x%02x%02x%02x%02x%02x.%s", r[0], r[1], r[2], r[3], r[4],
		 r[5], r[6], r[7], uuid);
}

/* Write the record of a new registration operation. */
static int begin_operation(struct store *store, const char *registration_id,
			   const struct dps_attest_result *a, const json_t *payload,
			   const char *operation_id, bool disabled, struct err *e)
{
	for (int attempt = 0; attempt < 5; attempt++) {
		_cleanup_json_ json_t *doc = NULL;
		_cleanup_free_ char *etag = NULL;
		struct store_write w = {.coll = STORE_REGISTRATIONS};
		json_t *priv, *request;
		char now[40];
		int r;

		r = dps_registration_load(store, registration_id, &doc, &etag, e);
		if (r == -ENOENT) {
			doc = json_object();
			w.create_only = true;
		} else if (r < 0) {
			return r;
		}
		if (!doc)
			return -ENOMEM;
		priv = dps_registration_private(doc);
		if (!priv) {
			priv = json_object();
			if (!priv || json_object_set_new(doc, DPS_REG_PRIVATE, priv) < 0)
				return -ENOMEM;
		}
		request = json_object();
		if (!request)
			return -ENOMEM;
		if (payload)
			json_object_set_new(request, "payload", json_deep_copy(payload));
		if (a->srk)
			json_object_set_new(request, "srk", json_string(a->srk));
		if (a->certificate_info)
			json_object_set(request, "certificateInfo", a->certificate_info);
		if (a->signing_info)
			json_object_set(request, "signingCertificateInfo", a->signing_info);
		dps_now_iso(now, sizeof(now));
		json_object_set_new(doc, "registrationId", json_string(registration_id));
		json_object_set_new(doc, "status",
				    json_string(disabled ? "disabled" : "assigning"));
		if (!json_object_get(doc, "createdDateTimeUtc"))
			json_object_set_new(doc, "createdDateTimeUtc", json_string(now));
		json_object_set_new(doc, "lastUpdatedDateTimeUtc", json_string(now));
		json_object_del(doc, "errorCode");
		json_object_del(doc, "errorMessage");
		json_object_set_new(priv, "operationId", json_string(operation_id));
		json_object_set_new(priv, "attestation",
				    json_string(dps_attest_type_name(a->type)));
		if (a->group_id)
			json_object_set_new(priv, "group", json_string(a->group_id));
		else
			json_object_del(priv, "group");
		json_object_set_new(priv, "request", request);
		json_object_set_new(priv, "started", json_integer((json_int_t)time(NULL)));
		w.key.part[0] = registration_id;
		w.doc = doc;
		w.if_match = etag;
		w.secondary = a->group_id;
		r = store_put(store, &w, NULL, e);
		if (r == -ESTALE || r == -EEXIST || r == -ENOENT) {
			err_clear(e);
			continue;
		}
		return r;
	}
	return err_set(e, -EBUSY, "the registration record kept changing");
}

/* Authenticate a device request; on failure the request is answered. */
static int authenticate(struct dps_worker *w, struct http_request *req, const char *registration_id,
			const json_t *body, const json_t *record, bool allow_challenge,
			struct dps_attest_result *ret)
{
	struct dps_attest_request ar = {
	    .registration_id = registration_id,
	    .record = record,
	    .authorization = http_request_header(req, "Authorization"),
	    .peer_chain = http_request_peer_chain(req),
	    .tpm =
		json_is_object(json_object_get(body, "tpm")) ? json_object_get(body, "tpm") : NULL,
	    .allow_challenge = allow_challenge,
	};
	struct err e = {0};
	int r;

	/* A TPM challenge writes K1 into the record: batch it. */
	if (allow_challenge && ar.tpm && !(ar.authorization && *ar.authorization) &&
	    !(ar.peer_chain && sk_X509_num(ar.peer_chain) > 0)) {
		r = dps_begin_write(w, &e);
		if (r < 0) {
			reply_failure(w, req, r, &e);
			return r;
		}
	}
	r = dps_attest(w->store, w->settings, &ar, ret, &e);
	if (r == DPS_ATTEST_CHALLENGE) {
		dps_reply(w, req, 401, ret->challenge, NULL, NULL);
		dps_attest_result_clear(ret);
		return -EACCES;
	}
	if (r < 0) {
		reply_failure(w, req, r, &e);
		return r;
	}
	return 0;
}

static bool body_id_matches(struct dps_worker *w, struct http_request *req, const json_t *body,
			    const char *registration_id)
{
	json_t *v = json_object_get(body, "registrationId");
	char msg[DPS_ID_MAX * 2 + 128];

	if (!v || json_is_null(v))
		return true;
	if (json_is_string(v) && strcasecmp(json_string_value(v), registration_id) == 0)
		return true;
	if (json_is_string(v))
		snprintf(
		    msg, sizeof(msg),
		    "registrationId: \"%.128s\" does not match the registration id in the path "
		    "(\"%s\").",
		    json_string_value(v), registration_id);
	else
		snprintf(msg, sizeof(msg), "registrationId: expected a string, got %s.",
			 json_type_phrase(v));
	dps_reply_error(w, req, 400, DPS_E_INVALID, msg);
	return false;
}

static void handle_register(struct dps_worker *w, struct http_request *req,
			    const char *registration_id)
{
	_cleanup_json_ json_t *body = NULL, *answer = NULL;
	struct dps_attest_result a = {0};
	struct err e = {0};
	char operation_id[64];
	bool disabled;
	json_t *payload;
	int r;

	if (dps_read_body(w, req, true, &body) < 0)
		return;
	if (!json_is_object(body)) {
		dps_reply_error(w, req, 400, DPS_E_INVALID,
				"The request body must be a JSON object (DeviceRegistration).");
		return;
	}
	if (!body_id_matches(w, req, body, registration_id))
		return;
	if (authenticate(w, req, registration_id, body, NULL, true, &a) < 0)
		return;
	payload = json_object_get(body, "payload");
	if (json_is_null(payload))
		payload = NULL;
	disabled =
	    streq(strempty(json_string_value(json_object_get(a.enrollment, "provisioningStatus"))),
		  "disabled");
	new_operation_id(operation_id);
	r = dps_begin_write(w, &e);
	if (r >= 0)
		r = begin_operation(w->store, registration_id, &a, payload, operation_id, disabled,
				    &e);
	dps_attest_result_clear(&a);
	if (r < 0) {
		reply_failure(w, req, r, &e);
		return;
	}
	/* Held until the assignment is final (hold.h), or today's answer. */
	if (w->settings->register_wait_ms > 0 &&
	    dps_hold_start(w->holds, req, registration_id, operation_id, !disabled) == 0)
		return;
	answer = dps_registration_assigning_status(operation_id, registration_id);
	dps_set_retry_after(w, req);
	dps_reply(w, req, 202, answer, disabled ? NULL : registration_id,
		  disabled ? NULL : operation_id);
}

/* After the device authenticated: answers 404 when its record (or the
 * named operation) does not exist. */
static int check_record(struct dps_worker *w, struct http_request *req, const char *registration_id,
			const char *operation_id, const json_t *doc)
{
	const char *current =
	    json_string_value(json_object_get(dps_registration_private(doc), "operationId"));
	char msg[256];

	if (!doc || !json_object_get(doc, "status") ||
	    (operation_id && !(current && streq(current, operation_id)))) {
		if (operation_id)
			snprintf(msg, sizeof(msg), "The operation \"%.64s\" was not found.",
				 operation_id);
		else
			snprintf(msg, sizeof(msg), "No registration record for \"%s\".",
				 registration_id);
		dps_reply_error(w, req, 404,
				operation_id ? DPS_E_NOT_FOUND : DPS_E_REGISTRATION_NOT_FOUND, msg);
		return -ENOENT;
	}
	return 0;
}

static void handle_operation(struct dps_worker *w, struct http_request *req,
			     const char *registration_id, const char *operation_id)
{
	_cleanup_json_ json_t *doc = NULL, *answer = NULL;
	_cleanup_free_ char *etag = NULL;
	struct dps_attest_result a = {0};
	const char *status;
	struct err e = {0};
	int r;

	/* The record first: it tells which group to try. Nothing about it is
	 * answered before the device authenticated. Node sends "{}" with the
	 * GET; it is ignored. */
	r = dps_registration_load(w->store, registration_id, &doc, &etag, &e);
	if (r < 0 && r != -ENOENT) {
		reply_failure(w, req, r, &e);
		return;
	}
	if (authenticate(w, req, registration_id, NULL, doc, false, &a) < 0)
		return;
	dps_attest_result_clear(&a);
	if (check_record(w, req, registration_id, operation_id, doc) < 0)
		return;
	status = json_string_value(json_object_get(doc, "status"));
	if (streq(status, "assigning")) {
		/* Writes only when the job went quiet (then alone, or in the batch). */
		r = dps_assign_restart(w->store, w->settings, doc, etag, &e);
		if (r < 0) {
			reply_failure(w, req, r, &e);
			return;
		}
		answer = dps_registration_operation_status(doc, etag, operation_id);
		dps_set_retry_after(w, req);
		dps_reply(w, req, 202, answer, r == 1 ? registration_id : NULL,
			  r == 1 ? operation_id : NULL);
		return;
	}
	answer = dps_registration_operation_status(doc, etag, operation_id);
	dps_reply(w, req, 200, answer, NULL, NULL);
}

static void handle_lookup(struct dps_worker *w, struct http_request *req,
			  const char *registration_id)
{
	_cleanup_json_ json_t *body = NULL, *doc = NULL, *answer = NULL;
	_cleanup_free_ char *etag = NULL;
	struct dps_attest_result a = {0};
	struct err e = {0};
	int r;

	if (dps_read_body(w, req, true, &body) < 0)
		return;
	if (!json_is_object(body)) {
		dps_reply_error(w, req, 400, DPS_E_INVALID,
				"The request body must be a JSON object (DeviceRegistration).");
		return;
	}
	if (!body_id_matches(w, req, body, registration_id))
		return;
	r = dps_registration_load(w->store, registration_id, &doc, &etag, &e);
	if (r < 0 && r != -ENOENT) {
		reply_failure(w, req, r, &e);
		return;
	}
	if (authenticate(w, req, registration_id, body, doc, false, &a) < 0)
		return;
	dps_attest_result_clear(&a);
	if (check_record(w, req, registration_id, NULL, doc) < 0)
		return;
	answer = dps_registration_device_view(doc, etag);
	dps_reply(w, req, 200, answer, NULL, NULL);
}

void dps_device_api(struct dps_worker *w, struct http_request *req, const struct dps_path *p)
{
	const char *method = http_request_method(req);
	const char *allow = NULL;
	char msg[256];

	if (!dps_seg_is(p->seg[0], w->settings->id_scope)) {
		snprintf(msg, sizeof(msg), "The ID scope \"%.64s\" is not served here.", p->seg[0]);
		dps_reply_error(w, req, 404, DPS_E_NOT_FOUND, msg);
		return;
	}
	if (!dps_valid_registration_id(p->seg[2])) {
		dps_reply_error(
		    w, req, 400, DPS_E_INVALID,
		    "The registration id must be 1 to 128 letters, digits, '-', '.', '_' "
		    "or ':', starting and ending with a letter or digit.");
		return;
	}
	if (p->n == 4 && dps_seg_is(p->seg[3], "register")) {
		if (streq(method, "PUT"))
			return handle_register(w, req, p->seg[2]);
		allow = "PUT";
	} else if (p->n == 5 && dps_seg_is(p->seg[3], "operations")) {
		if (streq(method, "GET"))
			return handle_operation(w, req, p->seg[2], p->seg[4]);
		allow = "GET";
	} else if (p->n == 3) {
		if (streq(method, "POST"))
			return handle_lookup(w, req, p->seg[2]);
		allow = "POST";
	}
	if (!allow) {
		dps_reply_error(w, req, 404, DPS_E_NOT_FOUND, "Not found.");
		return;
	}
	(void)http_response_add_header(req, "Allow", allow);
	dps_reply_error(w, req, 405, DPS_E_METHOD, "Method not allowed.");
}
