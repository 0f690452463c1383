/* SPDX-License-Identifier: MIT */
#include <stdarg.h>
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

int cli_usage_verror(const char *prog, const char *usage, const char *fmt, va_list ap)
{
	fprintf(stderr, "%s: ", prog);
	vfprintf(stderr, fmt, ap);
	if (usage)
		fprintf(stderr, "\nUsage: %s", usage);
	fprintf(stderr, "\nTry '%s --help'.\n", prog);
	return CLI_EXIT_USAGE;
}

int cli_usage_error(const char *prog, const char *usage, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = cli_usage_verror(prog, usage, fmt, ap);
	va_end(ap);
	return r;
}

int cli_verb_usage_error(const char *noun, const struct cli_verb *verb, const char *fmt, ...)
{
	char prog[128];
	va_list ap;
	int r;

	snprintf(prog, sizeof(prog), "edgeid %s %s", noun, verb->name);
	va_start(ap, fmt);
	r = cli_usage_verror(prog, verb->usage, fmt, ap);
	va_end(ap);
	return r;
}
