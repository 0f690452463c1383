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
#include "device/daemon/daemon.h"
#include "device/keyd/keyd.h"
#include "edgeid-version.h"

static const struct {
	const char *name;
	const struct daemon_spec *spec;
} daemons[] = {
    {"keyd", &keyd_spec},
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
		fprintf(out, "  %-10s %s\n", daemons[i].name, daemons[i].spec->summary);
	fprintf(out, "\n"
		     "Commands:\n"
		     "  version    print the version\n"
		     "  help       show this help\n"
		     "\n"
		     "'edgeidd DAEMON --help' lists a daemon's options. See edgeidd(8).\n");
}

static const struct daemon_spec *find(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(daemons); i++)
		if (streq(daemons[i].name, name))
			return daemons[i].spec;
	return NULL;
}

/* The daemon named by an invocation name: "edgeidd-keyd", "aziot-keyd". */
static const struct daemon_spec *from_argv0(const char *argv0)
{
	const char *base = strrchr(argv0, '/');

	base = base ? base + 1 : argv0;
	if (strneq(base, "edgeidd-", 8))
		return find(base + 8);
	if (strneq(base, "aziot-", 6))
		return find(base + 6);
	return NULL;
}

int main(int argc, char **argv)
{
	const struct daemon_spec *spec;

	log_init("edgeidd");
	if (argc < 1)
		return 2;
	spec = from_argv0(argv[0]);
	if (spec)
		return daemon_run(spec, argc, argv);

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
	spec = find(argv[1]);
	if (!spec) {
		fprintf(stderr, "edgeidd: unknown daemon or command '%s'\nTry 'edgeidd --help'.\n",
			argv[1]);
		return 2;
	}
	/* The daemon sees the rest as its options, and "edgeidd keyd" as its
	 * name in messages. */
	{
		char prog[64];

		snprintf(prog, sizeof(prog), "edgeidd %s", spec->name);
		argv[1] = prog;
		return daemon_run(spec, argc - 1, argv + 1);
	}
}
