/* SPDX-License-Identifier: MIT */
/*
 * Who is on the other end of a unix socket, as the kernel says (SO_PEERCRED).
 *
 * The daemons authorise callers by uid (and identify modules by pid) from
 * these values; nothing a caller writes in a request is trusted for that.
 * The credentials are those of the process that called connect() (or
 * socketpair()), captured at that moment: a pid can be reused after that
 * process exits, so a pid is a hint for lookups, never a capability.
 */
#ifndef EDGEID_PEERCRED_H
#define EDGEID_PEERCRED_H

#include <sys/types.h>

struct peercred {
	pid_t pid;
	uid_t uid;
	gid_t gid;
};

/* Read the peer credentials of the connected unix stream socket fd.
 * Returns 0, -EAFNOSUPPORT when fd is not a unix socket, -ENOTCONN when it
 * has no peer, or the errno of getsockopt(). *ret is written only on
 * success. */
int peercred_get(int fd, struct peercred *ret);

#endif
