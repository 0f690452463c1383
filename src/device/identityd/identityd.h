/* SPDX-License-Identifier: MIT */
#ifndef EDGEID_IDENTITYD_H
#define EDGEID_IDENTITYD_H

#include "device/daemon/daemon.h"

extern const struct daemon_spec identityd_spec;

#endif
