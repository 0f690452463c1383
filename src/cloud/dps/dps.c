/* SPDX-License-Identifier: MIT */
/*
 * The provisioning service inside edgeid-cloud: configuration, the worker
 * (routes, group commit, the assignment threads) and the admin nouns. One
 * catch-all route dispatches both APIs, because DPS paths are
 * case-insensitive and the error bodies of unknown paths are DPS's own.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "cloud/cloud.h"
#include "cloud/commit_batch.h"
#include "cloud/dps/admin.h"
#include "cloud/dps/assign.h"
#include "cloud/dps/hold.h"
#include "cloud/dps/http.h"
#include "cloud/store/store.h"
#include "common/encode.h"
#include "common/http_server.h"
#include "common/json.h"
#include "common/log.h"

/* What a 202 acknowledged: the assignment job queued after the commit. */
struct assignment_ticket {
	char *registration_id;
	char *operation_id;
};

bool dps_seg_is(const char *seg, const char *word)
{
	return seg && strcasecmp(seg, word) == 0;
}

/* --- answers ------------------------------------------------------------ */

static void ticket_free(void *data)
{
	struct assignment_ticket *t = data;

	if (!t)
		return;
	free(t->registration_id);
	free(t->operation_id);
	free(t);
}

/* After the commit that made the record durable: queue its assignment. */
static void submit_ticket(void *userdata, void *data)
{
	struct dps_worker *w = userdata;
	struct assignment_ticket *t = data;

	/* No assigner once the worker is being freed: a poll restarts the job. */
	if (!w->assigner ||
	    dps_assigner_submit(w->assigner, t->registration_id, t->operation_id, NULL) < 0)
		log_debug("dps: cannot queue the assignment of %s; it waits for a poll",
			  t->registration_id);
}

void dps_reply(struct dps_worker *w, struct http_request *req, int status, const json_t *body,
	       const char *registration_id, const char *operation_id)
{
	_cleanup_free_ char *text = body ? json_dump_compact(body) : NULL;
	struct assignment_ticket *t = NULL;

	if (body && !text) {
		(void)http_respond(req, 500, NULL, NULL, 0);
		return;
	}
	if (registration_id && operation_id) {
		t = calloc(1, sizeof(*t));
		if (!t || !(t->registration_id = strdup(registration_id)) ||
		    !(t->operation_id = strdup(operation_id))) {
			ticket_free(t);
			(void)http_respond(req, 500, NULL, NULL, 0);
			return;
		}
	}
	cloud_batch_respond(w->batch, req, status, text ? DPS_JSON_TYPE : NULL, text,
			    text ? strlen(text) : 0, t, ticket_free);
}

void dps_reply_error(struct dps_worker *w, struct http_request *req, int status, int code,
		     const char *message)
{
	_cleanup_json_ json_t *body = NULL;
	char tracking[37], now[40], code_text[16];

	dps_uuid(tracking);
	dps_now_iso(now, sizeof(now));
	snprintf(code_text, sizeof(code_text), "%d", code);
	(void)http_response_add_header(req, "x-ms-error-code", code_text);
	body = json_pack("{s:i, s:s, s:s, s:s}", "errorCode", code, "trackingId", tracking,
			 "message", message, "timestampUtc", now);
	dps_reply(w, req, status, body, NULL, NULL);
}

int dps_begin_write(struct dps_worker *w, struct err *e)
{
	return cloud_batch_begin(w->batch, e);
}

static int begin_write_cb(void *userdata, struct err *e)
{
	return dps_begin_write(userdata, e);
}

static void job_done_cb(void *userdata, void *tag)
{
	struct dps_worker *w = userdata;

	dps_holds_job_done(w->holds, tag);
}

int dps_read_body(struct dps_worker *w, struct http_request *req, bool allow_empty, json_t **ret)
{
	struct err e = {0};
	const char *body;
	size_t len;
	char msg[ERR_MSG_MAX + 64];
	int r;

	*ret = NULL;
	body = http_request_body(req, &len);
	if (len > DPS_BODY_MAX) {
		snprintf(msg, sizeof(msg), "The request body is larger than %d bytes.",
			 DPS_BODY_MAX);
		dps_reply_error(w, req, 413, DPS_E_TOO_LARGE, msg);
		return -E2BIG;
	}
	if (len == 0 && allow_empty) {
		*ret = json_object();
		return *ret ? 0 : -ENOMEM;
	}
	r = json_parse(body, len, 0, ret, &e);
	if (r < 0) {
		snprintf(msg, sizeof(msg), "The request body is not valid JSON: %s",
			 err_msg(&e, r));
		dps_reply_error(w, req, 400, DPS_E_BAD_REQUEST, msg);
		return r;
	}
	return 0;
}

/* --- dispatch ----------------------------------------------------------- */

static void path_free(struct dps_path *p)
{
	for (size_t i = 0; i < p->n; i++)
		free(p->seg[i]);
	p->n = 0;
}

/* Split the raw path; -EINVAL for a bad escape or too many segments. */
static int path_split(const char *raw, struct dps_path *ret)
{
	const char *p = raw;

	ret->n = 0;
	if (*p == '/')
		p++;
	while (*p) {
		const char *end = strchr(p, '/');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		_cleanup_buf_ struct buf seg = {0};

		if (ret->n == DPS_MAX_SEGMENTS)
			return -EINVAL;
		buf_init(&seg, 1024);
		if (len == 0 || url_decode(&seg, p, len, false) < 0 || seg.len == 0 ||
		    strlen(seg.data) != seg.len)
			return -EINVAL;
		ret->seg[ret->n] = buf_steal(&seg, NULL);
		if (!ret->seg[ret->n])
			return -ENOMEM;
		ret->n++;
		p = end ? end + 1 : p + len;
	}
	return 0;
}

static int dispatch(struct http_request *req, void *userdata)
{
	struct dps_worker *w = userdata;
	struct dps_path p = {0};
	int r;

	r = path_split(http_request_path(req), &p);
	if (r < 0 || p.n == 0) {
		path_free(&p);
		dps_reply_error(w, req, 404, DPS_E_NOT_FOUND, "Not found.");
		return 0;
	}
	if (dps_seg_is(p.seg[0], "enrollments") || dps_seg_is(p.seg[0], "enrollmentgroups") ||
	    (dps_seg_is(p.seg[0], "registrations") &&
	     !(p.n >= 2 && dps_seg_is(p.seg[1], "registrations"))))
		dps_service_api(w, req, &p);
	else if (p.n >= 3 && dps_seg_is(p.seg[1], "registrations"))
		dps_device_api(w, req, &p);
	else
		dps_reply_error(w, req, 404, DPS_E_NOT_FOUND, "Not found.");
	path_free(&p);
	return 0;
}

/* --- the service ---------------------------------------------------------- */

static int config_parse(const struct toml_value *table, const struct cloud_config *cfg,
			const struct cloud_service_common *common, void **ret_settings,
			struct err *e)
{
	struct dps_settings *s = NULL;
	int r;

	*ret_settings = NULL;
	r = dps_config_parse_table(table, cfg ? cfg->path : NULL, common ? common->host_name : NULL,
				   cfg ? cfg->store_url : NULL, &s, e);
	if (r < 0)
		return r;
	*ret_settings = s;
	return 0;
}

static void config_free(void *settings)
{
	dps_settings_free(settings);
}

static void worker_free(void *state)
{
	struct dps_worker *w = state;

	if (!w)
		return;
	/* The assigner's last outcomes join the batch, then it is flushed;
	 * the held answers go last (their requests were aborted already when
	 * the HTTP server was freed before this). */
	dps_assigner_free(w->assigner);
	w->assigner = NULL;
	cloud_batch_free(w->batch);
	w->batch = NULL;
	dps_holds_free(w->holds);
	free(w);
}

static int worker_init(struct cloud_worker *cw, const void *settings, void **ret_state,
		       struct err *e)
{
	struct dps_assigner_hooks hooks = {.begin_write = begin_write_cb, .done = job_done_cb};
	struct dps_worker *w;
	int r;

	*ret_state = NULL;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->settings = settings;
	w->store = cw->store;
	w->base = cw->base;
	hooks.userdata = w;
	store_set_limit(w->store, STORE_REGISTRATIONS, STORE_DOC_MAX_DEFAULT);
	r = cloud_batch_new(cw->base, w->store, "dps", submit_ticket, w, &w->batch);
	if (r >= 0)
		r = dps_holds_new(w, &w->holds);
	if (r < 0) {
		worker_free(w);
		return -ENOMEM;
	}
	r = dps_assigner_new(w->settings, cw->base, w->store, &hooks, &w->assigner, e);
	if (r >= 0)
		r = http_server_route(cw->http, NULL, "/*", dispatch, w);
	if (r < 0) {
		worker_free(w);
		return err_set(e, r, "dps: cannot set up the worker: %s", strerror(-r));
	}
	*ret_state = w;
	return 0;
}

const struct cloud_service cloud_service_dps = {
    .name = "dps",
    .config_parse = config_parse,
    .config_free = config_free,
    .worker_init = worker_init,
    .worker_free = worker_free,
    .admin_nouns = dps_admin_nouns,
};
