/* SPDX-License-Identifier: MIT */
#include <stdio.h>

#include "cli/cli.h"

int cli_identity_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "edgeid identity: not available yet\n");
	return CLI_EXIT_FAILURE;
}
