/* SPDX-License-Identifier: MIT */
/*
 * A real TPM for unit tests: swtpm (a TPM 2.0 simulator built on libtpms)
 * serving on a loopback port, reached through the swtpm TCTI. The child
 * dies with the test program (PR_SET_PDEATHSIG), even when it crashes.
 */
#ifndef EDGEID_TEST_SWTPM_FIXTURE_H
#define EDGEID_TEST_SWTPM_FIXTURE_H

#include <stdbool.h>
#include <sys/types.h>

struct swtpm_fixture {
	pid_t pid;     /* 0 while not running */
	int port;      /* the command port; the control port is port + 1 */
	char tcti[96]; /* "swtpm:host=127.0.0.1,port=PORT" */
};

/* Whether an executable swtpm is on PATH. */
bool swtpm_fixture_installed(void);

/* Whether port (TCP, 127.0.0.1) can be bound right now. */
bool swtpm_fixture_port_free(int port);

/* Start swtpm with its state in dir/state (created when missing, kept
 * across restarts) and its log in dir/swtpm.log, on port, or on a free port pair when port is 0. A fixed
 * port is retried while it is still being released. Fills s and returns 0
 * once swtpm accepts connections; -1 when it could not be started. */
int swtpm_fixture_start(struct swtpm_fixture *s, const char *dir, int port);

/* Stop swtpm (SIGTERM, so it saves its state) and reap it; a stopped
 * fixture is left alone. */
void swtpm_fixture_stop(struct swtpm_fixture *s);

#endif
