/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>

#include "common/cli_opts.h"

int cli_opts_bad_option(char **argv)
{
	/* getopt_long sets optopt to a long option's value (often >= 256) when
	 * its argument is missing: name it as written instead. */
	if (optopt > 0 && optopt < 128 && isgraph(optopt))
		fprintf(stderr, "%s: option -%c: unknown or missing its argument\n", argv[0],
			optopt);
	else
		fprintf(stderr, "%s: %s: unknown option or missing argument\n", argv[0],
			argv[optind - 1]);
	fprintf(stderr, "Try '%s --help'.\n", argv[0]);
	return -EINVAL;
}

int cli_opts_no_operands(int argc, char **argv)
{
	if (optind < argc) {
		fprintf(stderr, "%s: unexpected argument '%s'\nTry '%s --help'.\n", argv[0],
			argv[optind], argv[0]);
		return -EINVAL;
	}
	return 0;
}
