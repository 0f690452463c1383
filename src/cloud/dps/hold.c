/* SPDX-License-Identifier: MIT */
/* Held register answers. See hold.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "cloud/commit_batch.h"
#include "cloud/dps/assign.h"
#include "cloud/dps/hold.h"
#include "cloud/dps/http.h"
#include "cloud/dps/registration.h"
#include "common/http_server.h"
#include "common/json.h"
#include "common/log.h"

struct hold {
	struct dps_holds *hs;
	struct http_request *req; /* NULL once answered, or when the client left */
	char *registration_id;
	char *operation_id;
	struct event *timer;
	bool assign;      /* submit the job after the commit */
	bool submitted;   /* step 2 (hold.h) is done */
	bool job_pending; /* the assigner has this hold as a job's tag */
	bool due;         /* the timer fired */
	bool queued;      /* on the settle queue */
	struct hold *prev, *next;
	struct hold *queue_next;
};

struct dps_holds {
	struct dps_worker *w;
	struct event *settle; /* runs the settle queue */
	struct hold *all;     /* every hold not freed yet */
	struct hold *q_head, *q_tail;
};

static void hold_free(struct hold *h)
{
	struct dps_holds *hs = h->hs;

	if (h->prev)
		h->prev->next = h->next;
	else if (hs->all == h)
		hs->all = h->next;
	if (h->next)
		h->next->prev = h->prev;
	if (h->timer)
		event_free(h->timer);
	free(h->registration_id);
	free(h->operation_id);
	free(h);
}

/* Free h once nothing refers to it any more: not its request, not the
 * assigner, not the settle queue. */
static void hold_release(struct hold *h)
{
	if (h->req || h->job_pending || h->queued)
		return;
	hold_free(h);
}

static void enqueue(struct hold *h)
{
	struct dps_holds *hs = h->hs;

	if (h->queued)
		return;
	h->queued = true;
	h->queue_next = NULL;
	if (hs->q_tail)
		hs->q_tail->queue_next = h;
	else
		hs->q_head = h;
	hs->q_tail = h;
	event_active(hs->settle, 0, 0);
}

/* Step 4: answer from the committed record. */
static void answer(struct hold *h)
{
	struct dps_worker *w = h->hs->w;
	struct http_request *req = h->req;
	_cleanup_json_ json_t *doc = NULL, *body = NULL;
	_cleanup_free_ char *etag = NULL, *text = NULL;
	const char *current = NULL;
	struct err e = {0};
	int r;

	h->req = NULL;
	event_del(h->timer);
	r = dps_registration_load(w->store, h->registration_id, &doc, &etag, &e);
	if (r < 0 && r != -ENOENT)
		log_warn("dps: registration %s: %s", h->registration_id, err_msg(&e, r));
	if (r == 0 && json_object_get(doc, "status"))
		current = json_string_value(
		    json_object_get(dps_registration_private(doc), "operationId"));
	if (!current || !streq(current, h->operation_id)) {
		/* Nothing tells that the record was ever committed. */
		log_debug("dps: registration %s: the record does not name operation %s; "
			  "answering 503",
			  h->registration_id, h->operation_id);
		(void)http_respond(req, 503, NULL, NULL, 0);
		return;
	}
	body = dps_registration_operation_status(doc, etag, h->operation_id);
	text = body ? json_dump_compact(body) : NULL;
	if (!text) {
		(void)http_respond(req, 500, NULL, NULL, 0);
		return;
	}
	dps_set_retry_after(w, req);
	(void)http_respond(req, 202, DPS_JSON_TYPE, text, strlen(text));
}

/* Steps 2 and 4 for everything queued. Only with no batch open. */
static void settle(struct dps_holds *hs)
{
	struct hold *h;

	while ((h = hs->q_head)) {
		hs->q_head = h->queue_next;
		if (!hs->q_head)
			hs->q_tail = NULL;
		h->queue_next = NULL;
		h->queued = false;
		if (h->req && !h->submitted) {
			h->submitted = true;
			if (h->assign && hs->w->assigner &&
			    dps_assigner_submit(hs->w->assigner, h->registration_id,
						h->operation_id, h) == 0) {
				h->job_pending = true;
				if (!h->due)
					continue;
			} else if (h->assign) {
				log_debug("dps: cannot queue the assignment of %s; it waits for a "
					  "poll",
					  h->registration_id);
			}
		}
		if (h->req)
			answer(h);
		hold_release(h);
	}
}

static void settle_cb(evutil_socket_t fd, short what, void *userdata)
{
	struct dps_holds *hs = userdata;

	(void)fd;
	(void)what;
	/* While a batch is open, what the loop's handle reads includes
	 * writes not committed yet. Its commit is already active (the batch
	 * activates it when it opens), so activated again this runs after. */
	if (hs->w->batch && cloud_batch_is_open(hs->w->batch)) {
		event_active(hs->settle, 0, 0);
		return;
	}
	settle(hs);
}

static void timer_cb(evutil_socket_t fd, short what, void *userdata)
{
	struct hold *h = userdata;

	(void)fd;
	(void)what;
	h->due = true;
	if (h->req)
		enqueue(h);
}

static void on_abort(struct http_request *req, void *userdata)
{
	struct hold *h = userdata;

	/* The client is gone: finish req (this frees it). The job, if any,
	 * still runs and its outcome is still written. */
	(void)http_respond(req, 500, NULL, NULL, 0);
	h->req = NULL;
	event_del(h->timer);
	hold_release(h);
}

void dps_holds_job_done(struct dps_holds *hs, void *tag)
{
	struct hold *h = tag;

	(void)hs;
	h->job_pending = false;
	if (h->req)
		enqueue(h);
	else
		hold_release(h);
}

int dps_hold_start(struct dps_holds *hs, struct http_request *req, const char *registration_id,
		   const char *operation_id, bool assign)
{
	unsigned ms = hs->w->settings->register_wait_ms;
	struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (suseconds_t)(ms % 1000) * 1000};
	struct hold *h = calloc(1, sizeof(*h));
	int r;

	if (!h)
		return -ENOMEM;
	h->hs = hs;
	h->assign = assign;
	h->next = hs->all;
	if (hs->all)
		hs->all->prev = h;
	hs->all = h;
	h->registration_id = strdup(registration_id);
	h->operation_id = strdup(operation_id);
	h->timer = evtimer_new(hs->w->base, timer_cb, h);
	if (!h->registration_id || !h->operation_id || !h->timer ||
	    evtimer_add(h->timer, &tv) < 0) {
		hold_free(h);
		return -ENOMEM;
	}
	r = http_request_defer(req, on_abort, h);
	if (r < 0) {
		hold_free(h);
		return r;
	}
	h->req = req;
	/* Step 2 waits for the commit of the batch the record is in. */
	enqueue(h);
	return 0;
}

int dps_holds_new(struct dps_worker *w, struct dps_holds **ret)
{
	struct dps_holds *hs = calloc(1, sizeof(*hs));

	*ret = NULL;
	if (!hs)
		return -ENOMEM;
	hs->w = w;
	hs->settle = event_new(w->base, -1, 0, settle_cb, hs);
	if (!hs->settle) {
		free(hs);
		return -ENOMEM;
	}
	*ret = hs;
	return 0;
}

void dps_holds_free(struct dps_holds *hs)
{
	if (!hs)
		return;
	settle(hs);
	while (hs->all) {
		/* Only a request that was never aborted could be here. */
		if (hs->all->req)
			(void)http_respond(hs->all->req, 503, NULL, NULL, 0);
		hold_free(hs->all);
	}
	event_free(hs->settle);
	free(hs);
}
