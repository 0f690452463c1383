/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/cli_probe.h"
#include "common/fs.h"
#include "common/http_client.h"
#include "common/json.h"
#include "common/macro.h"
#include "device/supervise/supervise_proto.h"

char *cli_probe_socket_path(const char *root, const char *name)
{
	_cleanup_free_ char *p = NULL;

	if (asprintf(&p, "%s/%s.sock", SUPERVISE_SOCKET_DIR, name) < 0)
		return NULL;
	return root ? fs_path_join(root, p) : TAKE_PTR(p);
}

int cli_probe_socket(const char *sock, const char *target, json_t **ret_body, struct err *e)
{
	_cleanup_free_ char *url = NULL;
	struct http_client_request req = {
	    .method = "GET",
	    .unix_socket_path = sock,
	    .timeout_ms = CLI_PROBE_TIMEOUT_MS,
	    .connect_timeout_ms = CLI_PROBE_TIMEOUT_MS,
	    .max_response_bytes = 64 * 1024,
	};
	_cleanup_http_client_response_ struct http_client_response resp = {0};
	int r;

	if (ret_body)
		*ret_body = NULL;
	if (asprintf(&url, "http://localhost%s", target) < 0)
		return err_set(e, -ENOMEM, "out of memory");
	req.url = url;
	r = http_client_perform(NULL, &req, &resp, e);
	if (r < 0 || !ret_body || resp.status != 200)
		return r;
	if (json_parse(buf_str(&resp.body), resp.body.len, 0, ret_body, NULL) < 0 ||
	    !json_is_object(*ret_body)) {
		json_decref(*ret_body);
		*ret_body = NULL;
	}
	return 0;
}

int cli_probe_root(const char *opt, char **ret)
{
	const char *root = opt ? opt : getenv("EDGEID_ROOT");
	char cwd[PATH_MAX];

	*ret = NULL;
	if (!root || !*root || streq(root, "/"))
		return 0;
	if (root[0] == '/')
		*ret = strdup(root);
	else if (getcwd(cwd, sizeof(cwd)))
		*ret = fs_path_join(cwd, root);
	return *ret ? 0 : -ENOMEM;
}

char *cli_probe_sibling(const char *name)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	char *slash, *p = NULL;

	if (n > 0) {
		self[n] = '\0';
		slash = strrchr(self, '/');
		if (slash) {
			*slash = '\0';
			p = fs_path_join(self, name);
			if (p && access(p, X_OK) == 0)
				return p;
			free(p);
		}
	}
	return strdup(name);
}

int cli_probe_run(char *const argv[], struct buf *out, struct buf *errs)
{
	extern char **environ;
	posix_spawn_file_actions_t fa;
	int po[2] = {-1, -1}, pe[2] = {-1, -1};
	pid_t pid;
	int r, status;

	if ((out && pipe2(po, O_CLOEXEC) < 0) || (errs && pipe2(pe, O_CLOEXEC) < 0)) {
		r = -errno;
		goto fail_pipes;
	}
	fflush(stdout);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
	if (out)
		posix_spawn_file_actions_adddup2(&fa, po[1], STDOUT_FILENO);
	if (errs)
		posix_spawn_file_actions_adddup2(&fa, pe[1], STDERR_FILENO);
	r = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (po[1] >= 0)
		close(po[1]);
	if (pe[1] >= 0)
		close(pe[1]);
	po[1] = pe[1] = -1;
	if (r != 0) {
		r = -r;
		goto fail_pipes;
	}
	for (;;) {
		struct pollfd pfd[2];
		nfds_t n = 0;
		char tmp[4096];

		if (po[0] >= 0)
			pfd[n++] = (struct pollfd){.fd = po[0], .events = POLLIN};
		if (pe[0] >= 0)
			pfd[n++] = (struct pollfd){.fd = pe[0], .events = POLLIN};
		if (n == 0)
			break;
		if (poll(pfd, n, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		for (nfds_t i = 0; i < n; i++) {
			int *fd = pfd[i].fd == po[0] ? &po[0] : &pe[0];
			struct buf *dst = fd == &po[0] ? out : errs;
			ssize_t got;

			if (!pfd[i].revents)
				continue;
			got = read(*fd, tmp, sizeof(tmp));
			if (got < 0 && errno == EINTR)
				continue;
			if (got <= 0) {
				close(*fd);
				*fd = -1;
				continue;
			}
			/* Past the limit the rest is dropped: it is only shown. */
			if (buf_append(dst, tmp, (size_t)got) < 0)
				continue;
		}
	}
	for (int i = 0; i < 2; i++) {
		if (po[i] >= 0)
			close(po[i]);
		if (pe[i] >= 0)
			close(pe[i]);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);

fail_pipes:
	for (int i = 0; i < 2; i++) {
		if (po[i] >= 0)
			close(po[i]);
		if (pe[i] >= 0)
			close(pe[i]);
	}
	return r;
}
