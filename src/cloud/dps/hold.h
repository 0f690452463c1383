/* SPDX-License-Identifier: MIT */
/*
 * Held register answers: a device's PUT register waits, for at most
 * [dps] register_wait_ms, for its assignment, so that a quick one is
 * answered with the final result instead of "assigning" and a poll a
 * Retry-After later (device_api.c says what the device sees).
 *
 * A hold goes through these steps, all on the worker's loop:
 *   1. dps_hold_start, in the handler, after the record was written in
 *      the open batch: the request is deferred and its timer armed.
 *   2. After the batch's commit: the assignment job is submitted, tagged
 *      with the hold (or, for a disabled enrollment, step 4 follows).
 *   3. The job is over (its outcome written in the loop's batch:
 *      dps_holds_job_done), or the timer fired.
 *   4. Once no batch is open on the loop's store handle (so that what is
 *      read there is committed): the record is read and the request
 *      answered 202 with what the status GET would report, with
 *      Retry-After. A record that does not name the operation means that
 *      its commit failed (or the device registered again since): 503
 *      without a body, as the batch answers a failed commit.
 * A client that disconnects ends the hold at once; the job still runs and
 * its outcome is still written. Nothing here is thread-safe.
 */
#ifndef EDGEID_DPS_HOLD_H
#define EDGEID_DPS_HOLD_H

#include <stdbool.h>

struct dps_worker;
struct dps_holds;
struct http_request;

/* The holds of worker w (its base, store, batch, assigner and settings;
 * w->batch and w->assigner may be gone by dps_holds_free). *ret is the
 * caller's (dps_holds_free). Returns 0 or -ENOMEM. */
int dps_holds_new(struct dps_worker *w, struct dps_holds **ret);

/* Answer what is due (with the batch closed), then free every hold. Held
 * requests must have been answered or aborted already (the HTTP server is
 * freed first); the assigner must be freed already. Accepts NULL. */
void dps_holds_free(struct dps_holds *hs);

/* From inside req's handler, after the record of registration_id naming
 * operation_id was written in the open batch: hold the answer. assign:
 * submit the assignment job after the commit (false for a disabled
 * enrollment, whose record is final already). Returns 0 (req is deferred
 * and will be answered), -ENOMEM or -EINVAL (nothing happened: the caller
 * answers). */
int dps_hold_start(struct dps_holds *hs, struct http_request *req, const char *registration_id,
		   const char *operation_id, bool assign);

/* The assigner's hooks.done for a job tagged with a hold. */
void dps_holds_job_done(struct dps_holds *hs, void *tag);

#endif
