/* SPDX-License-Identifier: MIT */
/*
 * edgeidd: the device daemons in one binary. The daemon is chosen by the
 * name the binary was invoked as (edgeidd-keyd, or aziot-keyd for a
 * drop-in symlink) or by the first argument (edgeidd keyd ...). Each runs
 * as its own process; this file only picks one.
 */
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "common/macro.h"
#include "device/certd/certd.h"
#include "device/daemon/daemon.h"
#include "device/identityd/identityd.h"
#include "device/keyd/keyd.h"
#include "device/supervise/supervise.h"
#include "device/tpmd/tpmd.h"
#include "edgeid-version.h"

/* Each entry is a daemon run by the shared runtime (spec), or a program of
 * its own (main: the supervisor). */
static const struct {
	const char *name;
	const struct daemon_spec *spec;
	int (*main)(int argc, char **argv);
	const char *summary;
} daemons[] = {
    {"keyd", &keyd_spec, NULL, NULL},
    {"certd", &certd_spec, NULL, NULL},
    {"tpmd", &tpmd_spec, NULL, NULL},
    {"identityd", &identityd_spec, NULL, NULL},
    {"supervise", NULL, supervise_main, "start the daemons, restart them when they die"},
};

static void usage(FILE *out)
{
	fprintf(out, "Usage: edgeidd DAEMON [OPTIONS]\n"
		     "       edgeidd-DAEMON [OPTIONS]   (also aziot-DAEMON)\n"
		     "\n"
		     "The edgeid device daemons. Each runs as its own process.\n"
		     "\n"
		     "Daemons:\n");
	for (size_t i = 0; i < ARRAY_SIZE(daemons); i++)
		fprintf(out, "  %-10s %s\n", daemons[i].name,
			daemons[i].spec ? daemons[i].spec->summary : daemons[i].summary);
	fprintf(out, "\n"
		     "Commands:\n"
		     "  version    print the version\n"
		     "  help       show this help\n"
		     "\n"
		     "'edgeidd DAEMON --help' lists a daemon's options. See edgeidd(8).\n");
}

static int find(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(daemons); i++)
		if (streq(daemons[i].name, name))
			return (int)i;
	return -1;
}

/* The daemon named by an invocation name: "edgeidd-keyd", "aziot-keyd". */
static int from_argv0(const char *argv0)
{
	const char *base = strrchr(argv0, '/');

	base = base ? base + 1 : argv0;
	if (strneq(base, "edgeidd-", 8))
		return find(base + 8);
	if (strneq(base, "aziot-", 6))
		return find(base + 6);
	return -1;
}

static int run(int i, int argc, char **argv)
{
	if (daemons[i].spec)
		return daemon_run(daemons[i].spec, argc, argv);
	return daemons[i].main(argc, argv);
}

int main(int argc, char **argv)
{
	int i;

	log_init("edgeidd");
	if (argc < 1)
		return 2;
	i = from_argv0(argv[0]);
	if (i >= 0)
		return run(i, argc, argv);

	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (streq(argv[1], "-h") || streq(argv[1], "--help") || streq(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	if (streq(argv[1], "-V") || streq(argv[1], "--version") || streq(argv[1], "version")) {
		printf("edgeidd %s\n", EDGEID_VERSION);
		return 0;
	}
	i = find(argv[1]);
	if (i < 0) {
		fprintf(stderr, "edgeidd: unknown daemon or command '%s'\nTry 'edgeidd --help'.\n",
			argv[1]);
		return 2;
	}
	/* The daemon sees the rest as its options, and "edgeidd keyd" as its
	 * name in messages. */
	{
		char prog[64];

		snprintf(prog, sizeof(prog), "edgeidd %s", daemons[i].name);
		argv[1] = prog;
		return run(i, argc - 1, argv + 1);
	}
}
