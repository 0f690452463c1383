/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/macro.h"
#include "swtpm_fixture.h"

static void sleep_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};

	nanosleep(&ts, NULL);
}

bool swtpm_fixture_port_free(int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool ok;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ok = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
	if (fd >= 0)
		close(fd);
	return ok;
}

static bool port_accepts(int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool ok;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
	if (fd >= 0)
		close(fd);
	return ok;
}

bool swtpm_fixture_installed(void)
{
	const char *path = getenv("PATH");
	_cleanup_free_ char *copy = strdup(path ? path : "/usr/bin:/bin");
	char *save = NULL;

	if (!copy)
		return false;
	for (char *dir = strtok_r(copy, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
		char exe[512];

		snprintf(exe, sizeof(exe), "%s/swtpm", dir);
		if (access(exe, X_OK) == 0)
			return true;
	}
	return false;
}

static pid_t spawn(const char *dir, int port)
{
	char server[96], ctrl[96], state[96], log[96];
	pid_t pid;

	snprintf(server, sizeof(server), "type=tcp,port=%d,bindaddr=127.0.0.1", port);
	snprintf(ctrl, sizeof(ctrl), "type=tcp,port=%d,bindaddr=127.0.0.1", port + 1);
	snprintf(state, sizeof(state), "dir=%s/state", dir);
	snprintf(log, sizeof(log), "file=%s/swtpm.log", dir);
	pid = fork();
	if (pid != 0)
		return pid;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	execlp("swtpm", "swtpm", "socket", "--tpm2", "--server", server, "--ctrl", ctrl,
	       "--tpmstate", state, "--flags", "not-need-init,startup-clear", "--log", log,
	       (char *)NULL);
	_exit(127);
}

int swtpm_fixture_start(struct swtpm_fixture *s, const char *dir, int port)
{
	char state[96];

	snprintf(state, sizeof(state), "%s/state", dir);
	if (mkdir(state, 0700) < 0 && errno != EEXIST)
		return -1;
	for (int attempt = 0; attempt < 20; attempt++) {
		int p = port ? port : 20000 + rand() % 40000;
		int status;

		if (!port && (!swtpm_fixture_port_free(p) || !swtpm_fixture_port_free(p + 1)))
			continue;
		s->pid = spawn(dir, p);
		if (s->pid < 0) {
			s->pid = 0;
			return -1;
		}
		for (int i = 0; i < 200; i++) {
			if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
				/* Lost the port to someone else, or no swtpm. */
				s->pid = 0;
				if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
					return -1;
				break;
			}
			if (port_accepts(p)) {
				s->port = p;
				snprintf(s->tcti, sizeof(s->tcti), "swtpm:host=127.0.0.1,port=%d",
					 p);
				return 0;
			}
			sleep_ms(50);
		}
		if (s->pid > 0) {
			kill(s->pid, SIGKILL);
			waitpid(s->pid, NULL, 0);
			s->pid = 0;
		}
		if (port)
			sleep_ms(200); /* the same port: wait for it to be released */
	}
	return -1;
}

void swtpm_fixture_stop(struct swtpm_fixture *s)
{
	if (s->pid > 0) {
		kill(s->pid, SIGTERM);
		waitpid(s->pid, NULL, 0);
		s->pid = 0;
	}
}
