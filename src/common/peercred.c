/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <sys/socket.h>

#include "common/peercred.h"

int peercred_get(int fd, struct peercred *ret)
{
	struct ucred cred = {0};
	socklen_t len = sizeof(int);
	int domain = 0;

	/* SO_PEERCRED answers on any socket (with "nobody" for TCP); only a
	 * unix socket's answer means anything. */
	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0)
		return -errno;
	if (domain != AF_UNIX)
		return -EAFNOSUPPORT;
	len = sizeof(cred);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return -errno;
	if (len != sizeof(cred))
		return -EIO;
	/* An unconnected socket reports pid 0 and the overflow ids. */
	if (cred.pid == 0)
		return -ENOTCONN;
	ret->pid = cred.pid;
	ret->uid = cred.uid;
	ret->gid = cred.gid;
	return 0;
}
