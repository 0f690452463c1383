/* SPDX-License-Identifier: MIT */
/* Group commit for the services' event loops. See commit_batch.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "cloud/commit_batch.h"
#include "cloud/store/store.h"
#include "common/http_server.h"
#include "common/log.h"
#include "common/macro.h"

struct pending {
	struct http_request *req; /* NULL once the client went away */
	int status;
	char *content_type;
	void *body;
	size_t len;
	void *data;
	void (*data_free)(void *data);
	struct pending *next;
};

struct cloud_batch {
	struct store *store;
	struct event *flush;
	const char *name;
	cloud_batch_after_fn after;
	void *userdata;
	bool open;
	struct pending *head, *tail;
};

static void pending_free(struct pending *p)
{
	if (p->data_free)
		p->data_free(p->data);
	free(p->content_type);
	free(p->body);
	free(p);
}

static void on_abort(struct http_request *req, void *userdata)
{
	struct pending *p = userdata;

	/* The client is gone: finish req now (this frees it); the writes, and
	 * the after-commit action, still happen with the commit. */
	(void)http_respond(req, 500, NULL, NULL, 0);
	p->req = NULL;
}

void cloud_batch_flush(struct cloud_batch *b)
{
	struct pending *p = b->head;
	struct err e = {0};
	int r = 0;

	if (b->open) {
		r = store_tx_commit(b->store, &e);
		b->open = false;
		if (r < 0)
			log_warn("%s: committing a batch of writes: %s", b->name, err_msg(&e, r));
	}
	b->head = b->tail = NULL;
	while (p) {
		struct pending *next = p->next;

		if (r < 0) {
			/* Nothing of this batch is on disk: no answer may claim it. */
			if (p->req)
				(void)http_respond(p->req, 503, NULL, NULL, 0);
		} else {
			if (p->req)
				(void)http_respond(p->req, p->status, p->content_type, p->body,
						   p->len);
			if (p->data && b->after)
				b->after(b->userdata, p->data);
		}
		pending_free(p);
		p = next;
	}
}

static void flush_cb(evutil_socket_t fd, short what, void *userdata)
{
	(void)fd;
	(void)what;
	cloud_batch_flush(userdata);
}

int cloud_batch_new(struct event_base *base, struct store *store, const char *name,
		    cloud_batch_after_fn after, void *userdata, struct cloud_batch **ret)
{
	struct cloud_batch *b;

	*ret = NULL;
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->store = store;
	b->name = name;
	b->after = after;
	b->userdata = userdata;
	b->flush = event_new(base, -1, 0, flush_cb, b);
	if (!b->flush) {
		free(b);
		return -ENOMEM;
	}
	*ret = b;
	return 0;
}

void cloud_batch_free(struct cloud_batch *b)
{
	if (!b)
		return;
	cloud_batch_flush(b);
	event_free(b->flush);
	free(b);
}

int cloud_batch_begin(struct cloud_batch *b, struct err *e)
{
	int r;

	if (b->open)
		return 0;
	r = store_tx_begin(b->store, e);
	if (r < 0)
		return r;
	b->open = true;
	/* Runs after the callbacks already active in this iteration. */
	event_active(b->flush, 0, 0);
	return 0;
}

bool cloud_batch_is_open(const struct cloud_batch *b)
{
	return b->open;
}

void cloud_batch_respond(struct cloud_batch *b, struct http_request *req, int status,
			 const char *content_type, const void *body, size_t len, void *data,
			 void (*data_free)(void *data))
{
	struct pending *p;

	if (!b->open) {
		(void)http_respond(req, status, content_type, body, len);
		if (data && b->after)
			b->after(b->userdata, data);
		if (data_free)
			data_free(data);
		return;
	}
	p = calloc(1, sizeof(*p));
	if (!p) {
		if (data_free)
			data_free(data);
		(void)http_respond(req, 500, NULL, NULL, 0);
		return;
	}
	p->data = data;
	p->data_free = data_free;
	p->req = req;
	p->status = status;
	p->len = len;
	if ((content_type && !(p->content_type = strdup(content_type))) ||
	    (len > 0 && !(p->body = malloc(len)))) {
		pending_free(p);
		(void)http_respond(req, 500, NULL, NULL, 0);
		return;
	}
	if (len > 0)
		memcpy(p->body, body, len);
	if (http_request_defer(req, on_abort, p) < 0) {
		pending_free(p);
		(void)http_respond(req, 500, NULL, NULL, 0);
		return;
	}
	if (b->tail)
		b->tail->next = p;
	else
		b->head = p;
	b->tail = p;
}
