/* SPDX-License-Identifier: MIT */
#include <stdio.h>

#include "cli/cli.h"

int cli_tpm_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "edgeid tpm: not available yet\n");
	return CLI_EXIT_FAILURE;
}
