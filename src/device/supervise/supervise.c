/* SPDX-License-Identifier: MIT */
#include <stdio.h>

#include "device/supervise/supervise.h"

int supervise_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "edgeidd supervise: not built yet\n");
	return 1;
}
