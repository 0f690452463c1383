/* SPDX-License-Identifier: MIT */
/*
 * Registration records (STORE_REGISTRATIONS, key = registration id,
 * secondary = the enrollment group id for devices registered through a
 * group).
 *
 * The document is the DeviceRegistrationState / DeviceRegistrationResult
 * the APIs report (registrationId, createdDateTimeUtc, assignedHub,
 * deviceId, status, substatus, errorCode, errorMessage,
 * lastUpdatedDateTimeUtc, payload, tpm, x509, symmetricKey), plus a private
 * object DPS_REG_PRIVATE that no view shows:
 *   operationId     the current registration operation
 *   attestation     "symmetricKey" | "x509" | "tpm"
 *   group           the enrollment group id, when registered through one
 *   challenge       TPM: {"key": base64 K1, "srk": base64 TPM2B_PUBLIC}
 *   request         the inputs of the assignment in progress: payload,
 *                   X.509 certificate infos, the TPM SRK
 *   started         when the assignment in progress was (re)started, seconds
 * A record holding only a TPM challenge (no "status") is not reported by
 * the service API: the device never registered.
 */
#ifndef EDGEID_DPS_REGISTRATION_H
#define EDGEID_DPS_REGISTRATION_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "common/err.h"

struct store;

#define DPS_REG_PRIVATE "_edgeid"

/* The stored record. Returns 0, -ENOENT, or a store code. */
int dps_registration_load(struct store *store, const char *registration_id, json_t **ret_doc,
			  char **ret_etag, struct err *e);

/* DeviceRegistrationState as the service API reports it; NULL when the
 * record has no status yet (only a TPM challenge) or on -ENOMEM. */
json_t *dps_registration_service_view(const json_t *doc, const char *etag);

/* DeviceRegistrationResult as the device API reports it (adds tpm, x509,
 * symmetricKey and payload). NULL on -ENOMEM. */
json_t *dps_registration_device_view(const json_t *doc, const char *etag);

/* RegistrationOperationStatus (dps-protocol.md §1.5) of operation_id while
 * it is assigning: {"operationId", "status": "assigning",
 * "registrationState": {"registrationId", "status": "assigning"}} (aziot
 * requires registrationState.registrationId). NULL on -ENOMEM. */
json_t *dps_registration_assigning_status(const char *operation_id, const char *registration_id);

/* RegistrationOperationStatus of operation_id from its record doc (which
 * has a status): the one above while "assigning", else {"operationId",
 * "status", "registrationState": the device view}. What the status GET and
 * a held register answer carry. NULL on -ENOMEM. */
json_t *dps_registration_operation_status(const json_t *doc, const char *etag,
					  const char *operation_id);

/* Service API: GET /registrations/{id}. Returns 0, -ENOENT, ... */
int dps_registration_get(struct store *store, const char *registration_id, json_t **ret_view,
			 struct err *e);

/* DELETE /registrations/{id}. if_match as for enrollments. Returns 0,
 * -ENOENT, -ESTALE, ... */
int dps_registration_delete(struct store *store, const char *registration_id, const char *if_match,
			    struct err *e);

/* One page of the registration records of an enrollment group (group_id
 * non-NULL), or of all records (NULL). Service views in id order. */
int dps_registration_query(struct store *store, const char *group_id, const char *continuation,
			   size_t page_size, json_t **ret_items, char **ret_continuation,
			   struct err *e);

/* The private object of doc, or NULL. Borrowed. */
json_t *dps_registration_private(const json_t *doc);

#endif
