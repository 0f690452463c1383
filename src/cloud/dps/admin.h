/* SPDX-License-Identifier: MIT */
/*
 * The DPS admin nouns of edgeid-cloud (enrollment, group, ca,
 * registration): what the Azure portal and `az iot dps` do, on the store
 * directly, through the same functions as the service API.
 */
#ifndef EDGEID_DPS_ADMIN_H
#define EDGEID_DPS_ADMIN_H

#include "cloud/cloud.h"

extern const struct cloud_admin_noun dps_admin_nouns[];

#endif
