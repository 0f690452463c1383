/* SPDX-License-Identifier: MIT */
/*
 * The linked hubs' registry REST API (hub-protocol.md §4), as DPS uses it
 * to create and update the devices it assigns: service SAS from the linked
 * hub's connection string (sr = host name, skn = policy), api-version
 * 2021-04-12, JSON bodies. Blocking (libcurl): called from the assignment
 * threads, one struct http_client per thread.
 */
#ifndef EDGEID_DPS_HUB_CLIENT_H
#define EDGEID_DPS_HUB_CLIENT_H

#include <stdbool.h>

#include <jansson.h>

#include "cloud/dps/dps.h"

struct http_client;

/* One registry call: method on path (already encoded, e.g.
 * "/devices/dev1"), with body (NULL: none) and If-Match (NULL: none).
 * *ret_status gets the HTTP status; *ret_body (may be NULL) the parsed JSON
 * response, or NULL when it has none. Returns 0 when the hub answered
 * (whatever the status), or the transport failure (message in e). */
int dps_hub_call(struct http_client *c, const struct dps_linked_hub *hub, const char *method,
		 const char *path, const json_t *body, const char *if_match, long *ret_status,
		 json_t **ret_body, struct err *e);

/* Create the device, or replace it when it exists (PUT, then PUT with
 * If-Match "*" on 409). Returns 0, -EACCES (the hub refused DPS's
 * credentials), -EPROTO (the hub answered another error; status and
 * message in e), or a transport failure. */
int dps_hub_upsert_device(struct http_client *c, const struct dps_linked_hub *hub,
			  const char *device_id, const json_t *device, struct err *e);

/* DELETE /devices/{id} with If-Match "*". A missing device is success. */
int dps_hub_delete_device(struct http_client *c, const struct dps_linked_hub *hub,
			  const char *device_id, struct err *e);

/* GET /twins/{id}: *ret is the twin, or NULL when the device is gone. */
int dps_hub_get_twin(struct http_client *c, const struct dps_linked_hub *hub, const char *device_id,
		     json_t **ret, struct err *e);

/* PATCH /twins/{id} with If-Match "*" and patch {"tags", "properties":
 * {"desired"}}. */
int dps_hub_patch_twin(struct http_client *c, const struct dps_linked_hub *hub,
		       const char *device_id, const json_t *patch, struct err *e);

#endif
