/* SPDX-License-Identifier: MIT */
/*
 * The enrollment service API (dps-protocol.md §5), as
 * azure-iot-provisioning-service drives it:
 *   PUT|GET|DELETE /enrollments/{id}          POST /enrollments (bulk)
 *   POST /enrollments/{id}/attestationmechanism
 *   POST /enrollments/query
 *   the same under /enrollmentGroups (any case)
 *   GET|DELETE /registrations/{id}            POST /registrations/{groupId}/query
 * Authorization: a service SAS (sr = this service's host name, skn = one
 * of the [[dps.shared_access_policy]] names).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "cloud/dps/enrollment.h"
#include "cloud/dps/http.h"
#include "cloud/dps/registration.h"
#include "cloud/store/store.h"
#include "common/http_server.h"
#include "common/json.h"
#include "common/log.h"
#include "crypto/sas.h"

static void reply_failure(struct dps_worker *w, struct http_request *req, int r, enum dps_kind kind,
			  const struct err *e)
{
	struct dps_status st = dps_status_for(r, kind);

	if (st.http >= 500) {
		log_warn("dps: service API: %s", err_msg(e, r));
		dps_reply_error(w, req, st.http, st.code, "Internal error.");
		return;
	}
	dps_reply_error(w, req, st.http, st.code, err_msg(e, r));
}

static bool authorized(struct dps_worker *w, struct http_request *req)
{
	const char *header = http_request_header(req, "Authorization");
	_cleanup_sas_token_ struct sas_token *t = NULL;
	const struct dps_settings *s = w->settings;

	if (header && s->host_name && sas_token_parse(header, strlen(header), &t, NULL) == 0 &&
	    t->skn) {
		for (size_t i = 0; i < s->n_policies; i++) {
			struct sas_verify_opts opts = SAS_VERIFY_OPTS_INIT;

			if (!streq(s->policies[i].name, t->skn))
				continue;
			opts.resource = s->host_name;
			opts.key_name = s->policies[i].name;
			if (sas_verify(t, s->policies[i].primary_key, s->policies[i].secondary_key,
				       &opts, NULL, NULL) == 0)
				return true;
		}
	}
	dps_reply_error(w, req, 401, DPS_E_UNAUTHORIZED, "Unauthorized");
	return false;
}

static void reply_method(struct dps_worker *w, struct http_request *req, const char *allow)
{
	(void)http_response_add_header(req, "Allow", allow);
	dps_reply_error(w, req, 405, DPS_E_METHOD, "Method not allowed.");
}

/* x-ms-max-item-count: 0 when absent; -1 (answered) when invalid. */
static long page_size(struct dps_worker *w, struct http_request *req)
{
	const char *v = http_request_header(req, "x-ms-max-item-count");
	char *end = NULL;
	long n;

	if (!v || !*v)
		return 0;
	errno = 0;
	n = strtol(v, &end, 10);
	if (errno != 0 || !end || *end || n < 1 || n > DPS_PAGE_MAX) {
		char msg[128];

		snprintf(msg, sizeof(msg), "x-ms-max-item-count: expected an integer from 1 to %d.",
			 DPS_PAGE_MAX);
		dps_reply_error(w, req, 400, DPS_E_INVALID, msg);
		return -1;
	}
	return n;
}

static void reply_page(struct dps_worker *w, struct http_request *req, const char *item_type,
		       long size, json_t *items, const char *continuation)
{
	char text[16];

	(void)http_response_add_header(req, "x-ms-item-type", item_type);
	snprintf(text, sizeof(text), "%ld", size ? size : DPS_PAGE_DEFAULT);
	(void)http_response_add_header(req, "x-ms-max-item-count", text);
	/* Node reads "more pages" from the header's presence alone. */
	if (continuation)
		(void)http_response_add_header(req, "x-ms-continuation", continuation);
	dps_reply(w, req, 200, items, NULL, NULL);
}

static void query(struct dps_worker *w, struct http_request *req, enum dps_kind kind,
		  const char *group_id)
{
	_cleanup_json_ json_t *body = NULL, *items = NULL;
	_cleanup_free_ char *next = NULL;
	const char *cont = http_request_header(req, "x-ms-continuation");
	struct err e = {0};
	long size;
	int r;

	/* The query specification ({"query": "*"}) is read and not
	 * interpreted: every query lists everything, in id order. */
	if (dps_read_body(w, req, true, &body) < 0)
		return;
	size = page_size(w, req);
	if (size < 0)
		return;
	if (kind == DPS_REGISTRATION)
		r = dps_registration_query(w->store, group_id, cont, (size_t)size, &items, &next,
					   &e);
	else
		r = dps_enrollment_query(w->store, kind, cont, (size_t)size, &items, &next, &e);
	if (r < 0)
		return reply_failure(w, req, r, kind, &e);
	reply_page(w, req,
		   kind == DPS_GROUP        ? "EnrollmentGroup"
		   : kind == DPS_INDIVIDUAL ? "Enrollment"
					    : "DeviceRegistration",
		   size, items, next);
}

static void enrollments(struct dps_worker *w, struct http_request *req, enum dps_kind kind,
			const struct dps_path *p)
{
	const char *method = http_request_method(req);
	_cleanup_json_ json_t *body = NULL, *answer = NULL;
	struct err e = {0};
	int r;

	if (p->n == 1) {
		if (!streq(method, "POST"))
			return reply_method(w, req, "POST");
		if (dps_read_body(w, req, false, &body) < 0)
			return;
		r = dps_begin_write(w, &e);
		if (r >= 0)
			r = dps_enrollment_bulk(w->store, w->settings, kind, body, &answer, &e);
		if (r < 0)
			return reply_failure(w, req, r, kind, &e);
		return dps_reply(w, req, 200, answer, NULL, NULL);
	}
	if (p->n == 2 && streq(method, "POST") && dps_seg_is(p->seg[1], "query"))
		return query(w, req, kind, NULL);
	if (p->n == 3 && dps_seg_is(p->seg[2], "attestationmechanism")) {
		if (!streq(method, "POST"))
			return reply_method(w, req, "POST");
		r = dps_enrollment_attestation(w->store, kind, p->seg[1], &answer, &e);
		if (r < 0)
			return reply_failure(w, req, r, kind, &e);
		return dps_reply(w, req, 200, answer, NULL, NULL);
	}
	if (p->n != 2) {
		dps_reply_error(w, req, 404, DPS_E_NOT_FOUND, "Not found.");
		return;
	}
	if (streq(method, "PUT")) {
		if (dps_read_body(w, req, false, &body) < 0)
			return;
		r = dps_begin_write(w, &e);
		if (r >= 0)
			r = dps_enrollment_put(w->store, w->settings, kind, p->seg[1], body,
					       http_request_header(req, "If-Match"), &answer, NULL,
					       &e);
		if (r < 0)
			return reply_failure(w, req, r, kind, &e);
		return dps_reply(w, req, 200, answer, NULL, NULL);
	}
	if (streq(method, "GET") || streq(method, "HEAD")) {
		r = dps_enrollment_get(w->store, kind, p->seg[1], false, &answer, &e);
		if (r < 0)
			return reply_failure(w, req, r, kind, &e);
		return dps_reply(w, req, 200, answer, NULL, NULL);
	}
	if (streq(method, "DELETE")) {
		r = dps_begin_write(w, &e);
		if (r >= 0)
			r = dps_enrollment_delete(w->store, kind, p->seg[1],
						  http_request_header(req, "If-Match"), &e);
		if (r < 0)
			return reply_failure(w, req, r, kind, &e);
		return dps_reply(w, req, 204, NULL, NULL, NULL);
	}
	reply_method(w, req, "GET, PUT, DELETE");
}

static void registrations(struct dps_worker *w, struct http_request *req, const struct dps_path *p)
{
	const char *method = http_request_method(req);
	_cleanup_json_ json_t *answer = NULL;
	struct err e = {0};
	int r;

	if (p->n == 3 && dps_seg_is(p->seg[2], "query")) {
		if (!streq(method, "POST"))
			return reply_method(w, req, "POST");
		return query(w, req, DPS_REGISTRATION, p->seg[1]);
	}
	if (p->n != 2) {
		dps_reply_error(w, req, 404, DPS_E_NOT_FOUND, "Not found.");
		return;
	}
	if (streq(method, "GET") || streq(method, "HEAD")) {
		r = dps_registration_get(w->store, p->seg[1], &answer, &e);
		if (r < 0)
			return reply_failure(w, req, r, DPS_REGISTRATION, &e);
		return dps_reply(w, req, 200, answer, NULL, NULL);
	}
	if (streq(method, "DELETE")) {
		r = dps_begin_write(w, &e);
		if (r >= 0)
			r = dps_registration_delete(w->store, p->seg[1],
						    http_request_header(req, "If-Match"), &e);
		if (r < 0)
			return reply_failure(w, req, r, DPS_REGISTRATION, &e);
		return dps_reply(w, req, 204, NULL, NULL, NULL);
	}
	reply_method(w, req, "GET, DELETE");
}

void dps_service_api(struct dps_worker *w, struct http_request *req, const struct dps_path *p)
{
	if (!authorized(w, req))
		return;
	if (dps_seg_is(p->seg[0], "enrollments"))
		enrollments(w, req, DPS_INDIVIDUAL, p);
	else if (dps_seg_is(p->seg[0], "enrollmentgroups"))
		enrollments(w, req, DPS_GROUP, p);
	else
		registrations(w, req, p);
}
