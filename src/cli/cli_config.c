/* SPDX-License-Identifier: MIT */
#include <stdio.h>

#include "cli/cli.h"

int cli_config_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "edgeid config: not built yet\n");
	return CLI_EXIT_FAILURE;
}
