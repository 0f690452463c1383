/* SPDX-License-Identifier: MIT */
/*
 * The two pieces of systemd's protocol the daemons use: socket activation
 * (LISTEN_PID, LISTEN_FDS) and readiness notification (NOTIFY_SOCKET).
 * Both are a few lines, written here rather than taken from libsystemd:
 * linked, libsystemd and the libraries it needs (libgcrypt, liblzma,
 * libzstd, liblz4, libcap) cost every daemon process about 124 kB of
 * private memory and 1.1 MB of resident pages for these two calls. Logs
 * need nothing from it either: under systemd stderr is a journal stream
 * (common/log.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/macro.h"
#include "device/daemon/daemon.h"

#define LISTEN_FDS_START 3

static int parse_uint(const char *s, unsigned long *ret)
{
	char *end;
	unsigned long v;

	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return -EINVAL;
	*ret = v;
	return 0;
}

int daemon_listen_fds(bool unset_env)
{
	unsigned long pid, n;
	int r = 0;

	if (!getenv("LISTEN_PID") || !getenv("LISTEN_FDS"))
		goto out;
	if (parse_uint(getenv("LISTEN_PID"), &pid) < 0 ||
	    parse_uint(getenv("LISTEN_FDS"), &n) < 0) {
		r = -EINVAL;
		goto out;
	}
	if (pid != (unsigned long)getpid())
		goto out;
	if (n > 1024) {
		r = -EINVAL;
		goto out;
	}
	for (unsigned long fd = LISTEN_FDS_START; fd < LISTEN_FDS_START + n; fd++) {
		int flags = fcntl((int)fd, F_GETFD);

		if (flags < 0 || fcntl((int)fd, F_SETFD, flags | FD_CLOEXEC) < 0) {
			r = -errno;
			goto out;
		}
	}
	r = (int)n;
out:
	if (unset_env) {
		unsetenv("LISTEN_PID");
		unsetenv("LISTEN_FDS");
		unsetenv("LISTEN_FDNAMES");
	}
	return r;
}

int daemon_notify(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	_cleanup_close_ int fd = -1;
	size_t len;
	socklen_t salen;

	if (!path || !*path)
		return 0;
	len = strlen(path);
	/* A path, or an abstract socket written with a leading '@'. */
	if ((path[0] != '/' && path[0] != '@') || len >= sizeof(sa.sun_path))
		return -EINVAL;
	memcpy(sa.sun_path, path, len);
	if (path[0] == '@')
		sa.sun_path[0] = '\0';
	salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + (path[0] == '/'));
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa, salen) < 0)
		return -errno;
	return 1;
}
