/* SPDX-License-Identifier: MIT */
/*
 * What the two HTTP APIs of a DPS worker share: the worker's state, the
 * DPS error body, request bodies, and group commit.
 *
 * Group commit (cloud/commit_batch.h): the first handler of a loop
 * iteration that writes opens an outer store transaction
 * (dps_begin_write); every answer given while it is open waits until the
 * end of the iteration, when one commit makes all of that iteration's
 * writes durable. Only then are the answers sent and the assignment jobs
 * of the registrations they acknowledged queued. So a 202 is never sent
 * for a record that is not on disk, and one fsync serves many requests.
 */
#ifndef EDGEID_DPS_HTTP_H
#define EDGEID_DPS_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "cloud/dps/dps.h"

struct event_base;
struct http_request;
struct store;
struct dps_assigner;
struct dps_holds;
struct cloud_batch;

#define DPS_JSON_TYPE "application/json; charset=utf-8"
#define DPS_MAX_SEGMENTS 8

struct dps_worker {
	const struct dps_settings *settings;
	struct store *store;
	struct event_base *base;
	struct dps_assigner *assigner;
	struct cloud_batch *batch;
	struct dps_holds *holds; /* held register answers (hold.h) */
};

/* The request path split on '/', each segment percent-decoded. */
struct dps_path {
	size_t n;
	char *seg[DPS_MAX_SEGMENTS];
};

/* Answer req with status and body (borrowed; NULL: no body). While a
 * batch is open the answer waits for its commit; when registration_id and
 * operation_id are set, the assignment job is queued after the commit. */
void dps_reply(struct dps_worker *w, struct http_request *req, int status, const json_t *body,
	       const char *registration_id, const char *operation_id);

/* The DPS error body {"errorCode", "trackingId", "message", "timestampUtc"}
 * with status. */
void dps_reply_error(struct dps_worker *w, struct http_request *req, int status, int code,
		     const char *message);

/* Open the iteration's outer transaction if needed. 0 or a store code. */
int dps_begin_write(struct dps_worker *w, struct err *e);

/* Parse the request body as JSON (at most DPS_BODY_MAX bytes). An empty
 * body gives an empty object when allow_empty. On failure answers the
 * request (400/413) and returns a negative errno. */
int dps_read_body(struct dps_worker *w, struct http_request *req, bool allow_empty, json_t **ret);

/* Add "Retry-After: [dps] retry_after" to the answer of req (every 202). */
void dps_set_retry_after(struct dps_worker *w, struct http_request *req);

/* The two APIs (device_api.c, service_api.c). */
void dps_device_api(struct dps_worker *w, struct http_request *req, const struct dps_path *p);
void dps_service_api(struct dps_worker *w, struct http_request *req, const struct dps_path *p);

/* Whether a (decoded) path segment equals word, ignoring ASCII case. */
bool dps_seg_is(const char *seg, const char *word);

#endif
