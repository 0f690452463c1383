/* SPDX-License-Identifier: MIT */
#include <stdio.h>

#include "cli/cli.h"
#include "common/macro.h"

int cli_verb_pick(const char *noun, const struct cli_verb *verbs, size_t n,
		  void (*usage)(FILE *out), int argc, char **argv, int *ret_exit)
{
	if (argc < 2) {
		usage(stderr);
		*ret_exit = CLI_EXIT_USAGE;
		return -1;
	}
	if (streq(argv[1], "-h") || streq(argv[1], "--help") || streq(argv[1], "help")) {
		usage(stdout);
		*ret_exit = CLI_EXIT_OK;
		return -1;
	}
	for (size_t i = 0; i < n; i++)
		if (streq(argv[1], verbs[i].name))
			return (int)i;
	fprintf(stderr, "edgeid %s: unknown command '%s'\n", noun, argv[1]);
	usage(stderr);
	*ret_exit = CLI_EXIT_USAGE;
	return -1;
}
