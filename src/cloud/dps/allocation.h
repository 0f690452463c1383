/* SPDX-License-Identifier: MIT */
/*
 * Choosing a hub for a device (the enrollment's allocationPolicy, else the
 * service's default):
 *   hashed (and geoLatency: one region here) - weighted rendezvous hashing
 *       of the registration id over the candidate hubs: every hub gets a
 *       share proportional to its allocation_weight, a device keeps its hub
 *       as long as that hub stays linked, and adding or removing a hub moves
 *       only the devices that must move;
 *   static - the enrollment's iotHubHostName (or its only iotHubs entry);
 *   custom - a webhook decides (assign.c calls it; the hub it names must be
 *       a candidate).
 * Candidates: the enrollment's iotHubs when it lists any, otherwise every
 * linked hub with apply_allocation_policy.
 */
#ifndef EDGEID_DPS_ALLOCATION_H
#define EDGEID_DPS_ALLOCATION_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "cloud/dps/dps.h"

#define DPS_ALLOC_MAX_HUBS 64

/* The candidate hubs of enrollment (a stored enrollment or group) into
 * ret (at most DPS_ALLOC_MAX_HUBS, borrowed from settings). Returns the
 * number found (0: none). */
size_t dps_alloc_candidates(const struct dps_settings *settings, const json_t *enrollment,
			    const struct dps_linked_hub **ret, size_t max);

/* The policy in force: the enrollment's, else the settings' default. */
enum dps_allocation dps_alloc_policy(const struct dps_settings *settings, const json_t *enrollment);

/* Hashed: the index in hubs[0..n) chosen for registration_id (compared
 * case-insensitively). Returns 0, -ENOENT when n is 0. */
int dps_alloc_hashed(const char *registration_id, const struct dps_linked_hub *const *hubs,
		     size_t n, size_t *ret_index);

/* Static: the enrollment's hub. Returns 0, -ENOENT (the enrollment names
 * none: "hub not specified"), -EINVAL (the hub it names is not linked). */
int dps_alloc_static(const struct dps_settings *settings, const json_t *enrollment,
		     const struct dps_linked_hub **ret, struct err *e);

/* -ln(u) for u in (0, 1], in double precision without libm (exposed for
 * the unit tests). */
double dps_alloc_neg_ln(double u);

#endif
