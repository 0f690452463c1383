/* SPDX-License-Identifier: MIT */
#include <stddef.h>

#include "cloud/cloud.h"

const struct cloud_service cloud_service_dps = {.name = "dps"};
