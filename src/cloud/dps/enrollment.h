/* SPDX-License-Identifier: MIT */
/*
 * Individual enrollments and enrollment groups (dps-protocol.md §5): the
 * validation and normalisation of what clients send, the views the service
 * API returns, and the operations on the store that the HTTP handlers and
 * the admin nouns share.
 *
 * A stored enrollment is the IndividualEnrollment / EnrollmentGroup JSON
 * with its secrets (symmetric keys) and without etag or registrationState,
 * which the views add. Ids keep the client's spelling in the document; the
 * store compares them case-insensitively.
 *
 * Failures return a negative errno with one sentence in e; dps_status_for()
 * turns them into the HTTP status and errorCode the service answers.
 */
#ifndef EDGEID_DPS_ENROLLMENT_H
#define EDGEID_DPS_ENROLLMENT_H

#include <stdbool.h>

#include <jansson.h>

#include "cloud/dps/dps.h"
#include "common/err.h"

struct store;

enum dps_kind {
	DPS_INDIVIDUAL,
	DPS_GROUP,
	DPS_REGISTRATION, /* for dps_status_for() only */
	DPS_CA,           /* for dps_status_for() only */
};

/* Map a failure of the functions here (and of the store) to a status:
 * -EINVAL, -EBADMSG 400/400004; -ENOENT 404 with 404201 (individual),
 * 404202 (group), 404203 (registration), 404204 (CA); -ESTALE 412;
 * -EEXIST 409; -E2BIG 413; -EACCES 401/401002; anything else 500. */
struct dps_status dps_status_for(int r, enum dps_kind kind);

/* The JSON field holding a kind's id: "registrationId" / "enrollmentGroupId". */
const char *dps_kind_id_field(enum dps_kind kind);

/*
 * Validate body (what a client PUT) as an enrollment of kind with the id
 * path_id (NULL: the id comes from the body), and build the document to
 * store in *ret (caller's). existing is the stored document when this is
 * an update (NULL otherwise): its createdDateTimeUtc is kept, and so are
 * its symmetric keys when body omits them (a client that PUTs back what it
 * read must not change a device's keys). Missing symmetric keys are
 * generated (64 random bytes). X.509 certificate info is computed from the
 * PEMs. settings (may be NULL) names the linked hubs iotHubs must come
 * from; store (may be NULL) is where caReferences must exist.
 * Returns 0, -EINVAL (the message names the field), -ENOMEM, -EIO.
 */
int dps_enrollment_normalize(const struct dps_settings *settings, struct store *store,
			     enum dps_kind kind, const char *path_id, const json_t *body,
			     const json_t *existing, json_t **ret, struct err *e);

/* The service view of a stored enrollment: a copy with "etag" added and,
 * unless with_keys, the symmetric keys removed (GET and query never
 * disclose them; the attestation-mechanism POST does). registration, when
 * non-NULL, is added as "registrationState". NULL on -ENOMEM. */
json_t *dps_enrollment_view(const json_t *doc, const char *etag, bool with_keys,
			    const json_t *registration);

/* Create or update (PUT). if_match: NULL, "*" or an etag (quotes allowed).
 * *ret_view (may be NULL) gets the view with keys; *ret_created whether it
 * is new. Returns 0, -EINVAL, -ENOENT (if_match on a missing one), -ESTALE,
 * -E2BIG, or a store code. */
int dps_enrollment_put(struct store *store, const struct dps_settings *settings, enum dps_kind kind,
		       const char *id, const json_t *body, const char *if_match, json_t **ret_view,
		       bool *ret_created, struct err *e);

/* GET: the view without keys (with registrationState for individual
 * enrollments that have one). Returns 0, -ENOENT, or a store code. */
int dps_enrollment_get(struct store *store, enum dps_kind kind, const char *id, bool with_keys,
		       json_t **ret_view, struct err *e);

/* The stored document and etag (with keys). Returns 0, -ENOENT, ... */
int dps_enrollment_load(struct store *store, enum dps_kind kind, const char *id, json_t **ret_doc,
			char **ret_etag, struct err *e);

/* DELETE (if_match as for put). Also deletes the registration records of
 * the enrollment (for a group: of every device registered through it).
 * Returns 0, -ENOENT, -ESTALE, or a store code. */
int dps_enrollment_delete(struct store *store, enum dps_kind kind, const char *id,
			  const char *if_match, struct err *e);

/* POST .../attestationmechanism: the attestation object with keys. */
int dps_enrollment_attestation(struct store *store, enum dps_kind kind, const char *id,
			       json_t **ret, struct err *e);

/* One page of a query (views without keys, in id order). *ret_continuation
 * is NULL on the last page. page_size 0 means DPS_PAGE_DEFAULT. Returns 0,
 * -EINVAL (a continuation token that is not ours), or a store code. */
int dps_enrollment_query(struct store *store, enum dps_kind kind, const char *continuation,
			 size_t page_size, json_t **ret_items, char **ret_continuation,
			 struct err *e);

/* Bulk operation (POST /enrollments or /enrollmentGroups): body
 * {"mode": create|update|updateIfMatchETag|delete, "enrollments" (or
 * "enrollmentGroups"): [at most DPS_BULK_MAX]}. Each item succeeds or fails
 * alone; *ret is {"isSuccessful": bool, "errors": [{"registrationId" (or
 * "enrollmentGroupId"), "errorCode", "errorStatus"}]}. Returns 0, or
 * -EINVAL when the body itself is malformed. */
int dps_enrollment_bulk(struct store *store, const struct dps_settings *settings,
			enum dps_kind kind, const json_t *body, json_t **ret, struct err *e);

/* Enable or disable (provisioningStatus) an individual enrollment or a group.
 * Returns 0, -ENOENT, or a store code. */
int dps_enrollment_set_status(struct store *store, enum dps_kind kind, const char *id, bool enabled,
			      struct err *e);

#endif
