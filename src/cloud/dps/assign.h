/* SPDX-License-Identifier: MIT */
/*
 * Completing a registration: choose the hub, create or update the device
 * there through its registry API, write the outcome into the registration
 * record.
 *
 * The job starts once the record says "assigning" (durably); it runs
 * here, on a few threads per worker process, because the hub and webhook
 * clients are blocking. Each thread has its own HTTP client (kept-alive
 * connections to the hubs) and its own store handle for reading. The
 * outcomes go back to the event loop (an eventfd), which writes them in
 * its batch with the loop's store handle: one writer per process keeps
 * the database's write lock uncontended, and one commit serves many
 * outcomes. A held register answer (hold.h) or the device's status poll
 * reads the record.
 *
 * The record carries every input of the job, so a job is never only in
 * memory: if a process dies with jobs queued, a later status poll that
 * finds the record "assigning" for longer than assignment_stale_seconds
 * hands it to a thread again (dps_assign_restart). Jobs are idempotent:
 * the device is created or replaced, and an outcome is written only while
 * the record still names the job's operation.
 *
 * Outcomes (dps-protocol.md §1.5, §5; hub-protocol.md §8):
 *   first assignment                    initialAssignment, initialTwin applied
 *   again, same hub, migrateDeviceData  reprovisionedToInitialAssignment (the
 *                                       device and its twin kept)
 *   again, same hub, !migrate           deviceDataReset (device recreated with
 *                                       the initial twin)
 *   again, another hub, migrate         deviceDataMigrated (tags and desired
 *                                       properties copied from the old hub's
 *                                       twin), the old hub's device deleted
 *   again, another hub, !migrate        deviceDataReset (the initial twin),
 *                                       the old hub's device deleted
 *   again, !updateHubAssignment         the hub it has: as "same hub" above
 *   no hub to assign                    failed, errorCode 400208
 *   the hub refused DPS's credentials   failed, errorCode 400209
 *   the hub or the webhook failed       failed, errorCode 500208 / 500209
 */
#ifndef EDGEID_DPS_ASSIGN_H
#define EDGEID_DPS_ASSIGN_H

#include <jansson.h>

#include "cloud/dps/dps.h"

struct store;
struct http_client;
struct dps_assigner;

struct event_base;

/* With an event loop, what the loop calls (on its thread). */
struct dps_assigner_hooks {
	/* Open the loop's batch; outcomes are written in it. */
	int (*begin_write)(void *userdata, struct err *e);
	/* A job submitted with a tag is over: its outcome is written in the
	 * open batch (durable once that commits), or nothing was written (no
	 * outcome, a failed write, or the assigner is being freed). Called
	 * exactly once per tagged job. May be NULL. */
	void (*done)(void *userdata, void *tag);
	void *userdata;
};

/* Start settings->assignment_threads threads (they open their store
 * handles from settings->store_url). With base, outcomes are written on
 * base's loop with loop_store as hooks says (hooks is copied); without,
 * each thread writes its own and hooks is unused (may be NULL). settings
 * and loop_store must outlive the assigner. Returns 0, -ENOMEM, or the
 * errno of eventfd or pthread_create. */
int dps_assigner_new(const struct dps_settings *settings, struct event_base *base,
		     struct store *loop_store, const struct dps_assigner_hooks *hooks,
		     struct dps_assigner **ret, struct err *e);

/* Queue the job for registration_id's operation operation_id. tag (may be
 * NULL; only with an event loop) is handed back to hooks->done when the
 * job is over; the threads never touch it. Returns 0, -ENOMEM, -EAGAIN
 * (the queue is full: the record stays "assigning" and a later poll
 * restarts it); on failure done is not called. */
int dps_assigner_submit(struct dps_assigner *a, const char *registration_id,
			const char *operation_id, void *tag);

/* Stop the threads after the jobs they are running, write the outcomes
 * they finished (queued jobs stay "assigning" in the store), call done for
 * every tagged job, and free. From the loop's thread. Accepts NULL. */
void dps_assigner_free(struct dps_assigner *a);
DEFINE_CLEANUP_FUNC(struct dps_assigner *, dps_assigner_free)

/* Run one job on the calling thread and write its outcome (admin, tests).
 * client may be NULL (a one-off one is used). Returns 0 (the outcome,
 * success or failure, is in the record; also when there was nothing to
 * do), or a store failure. */
int dps_assign_run(struct store *store, const struct dps_settings *settings,
		   struct http_client *client, const char *registration_id,
		   const char *operation_id, struct err *e);

/* Mark an "assigning" record whose job went quiet as restarted now, so
 * that only one worker picks it up. doc/etag as loaded. Returns 1 when the
 * caller should submit the job, 0 when it is not stale (or someone else
 * restarted it), or a store failure. */
int dps_assign_restart(struct store *store, const struct dps_settings *settings, json_t *doc,
		       const char *etag, struct err *e);

#endif
