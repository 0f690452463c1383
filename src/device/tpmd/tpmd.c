/* SPDX-License-Identifier: MIT */
#include "device/tpmd/tpmd.h"

const struct daemon_spec tpmd_spec = {
    .name = "tpmd",
    .summary = "the TPM service (not built yet)",
};
