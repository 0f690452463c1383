/* SPDX-License-Identifier: MIT */
/*
 * Group commit for the services' event loops (store.h, "Group commit").
 *
 * The first handler of a loop iteration that writes opens an outer store
 * transaction (cloud_batch_begin); every answer given through
 * cloud_batch_respond while it is open waits (http_request_defer) until the
 * end of the iteration, when one commit makes all of that iteration's
 * writes durable. Only then are the answers sent and their after-commit
 * actions run. An answer is never sent for a write that is not on disk,
 * and one fsync serves many requests. Answers given while no batch is open
 * (reads of an iteration that wrote nothing) go out at once.
 *
 * When the commit fails, nothing of the iteration is on disk: every
 * waiting request is answered 503 without a body and no after-commit
 * action runs.
 *
 * Everything runs on the loop's thread; nothing is thread-safe.
 */
#ifndef EDGEID_CLOUD_COMMIT_BATCH_H
#define EDGEID_CLOUD_COMMIT_BATCH_H

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"

struct event_base;
struct http_request;
struct store;
struct cloud_batch;

/* What runs once an answer's writes are durable (after the answer is
 * sent), with the data given to cloud_batch_respond. */
typedef void (*cloud_batch_after_fn)(void *userdata, void *data);

/* A batcher for the writes of store on base's loop. after (may be NULL)
 * runs for each answer that carries data, with userdata. name ("dps",
 * "hub") prefixes the warning logged when a commit fails. *ret is the
 * caller's (cloud_batch_free). Returns 0 or -ENOMEM. */
int cloud_batch_new(struct event_base *base, struct store *store, const char *name,
		    cloud_batch_after_fn after, void *userdata, struct cloud_batch **ret);
/* Commit what is open and answer what waits, then free. Accepts NULL. */
void cloud_batch_free(struct cloud_batch *b);

/* Open the iteration's outer transaction if none is open. Returns 0, or
 * the code of store_tx_begin (-EBUSY, ...) with e filled. */
int cloud_batch_begin(struct cloud_batch *b, struct err *e);
/* Whether a batch is open. */
bool cloud_batch_is_open(const struct cloud_batch *b);

/* Answer req with status, content_type (NULL: none) and len bytes of body
 * (copied; NULL with len 0: no body): at once when no batch is open,
 * otherwise after the batch's commit. data (may be NULL) is handed to the
 * batcher's after function once the answer's writes are durable, and freed
 * with data_free (may be NULL) in every case, including when the commit
 * failed. On -ENOMEM the request is answered 500 at once and data freed. */
void cloud_batch_respond(struct cloud_batch *b, struct http_request *req, int status,
			 const char *content_type, const void *body, size_t len, void *data,
			 void (*data_free)(void *data));

/* Commit the open batch (if any) and answer what waits. The end of each
 * loop iteration does this by itself. */
void cloud_batch_flush(struct cloud_batch *b);

#endif
