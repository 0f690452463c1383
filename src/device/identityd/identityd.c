/* SPDX-License-Identifier: MIT */
#include "device/identityd/identityd.h"

const struct daemon_spec identityd_spec = {
    .name = "identityd",
    .summary = "the identity service (not built yet)",
};
