/* SPDX-License-Identifier: MIT */
#ifndef EDGEID_TPMD_H
#define EDGEID_TPMD_H

#include "device/daemon/daemon.h"

extern const struct daemon_spec tpmd_spec;

#endif
