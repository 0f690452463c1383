/* SPDX-License-Identifier: MIT */
/*
 * edgeid: the command line. One table of nouns; each noun parses its own
 * verbs and options (cli_<noun>.c).
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "common/log.h"
#include "common/macro.h"
#include "edgeid-version.h"

static int cli_version_main(int argc, char **argv);
static int cli_help_main(int argc, char **argv);

static const struct {
	const char *name;
	int (*main)(int argc, char **argv);
	const char *summary;
} nouns[] = {
    {"config", cli_config_main, "validate, apply and show config.toml"},
    {"system", cli_system_main, "status, logs, restart and reprovisioning of the daemons"},
    {"identity", cli_identity_main, "the device's identities"},
    {"check", cli_check_main, "check the configuration, daemons, provisioning and connectivity"},
    {"tpm", cli_tpm_main, "the TPM's registration id and endorsement key"},
    {"version", cli_version_main, "print the version"},
    {"help", cli_help_main, "show this help"},
};

static void usage(FILE *out)
{
	fprintf(out, "Usage: edgeid [--verbose] COMMAND [ARGS...]\n"
		     "\n"
		     "Zero-touch identity and provisioning for Linux edge devices.\n"
		     "\n"
		     "Commands:\n");
	for (size_t i = 0; i < ARRAY_SIZE(nouns); i++)
		fprintf(out, "  %-10s %s\n", nouns[i].name, nouns[i].summary);
	fprintf(out, "\n"
		     "Options:\n"
		     "  -v, --verbose   log debug messages to stderr\n"
		     "  -h, --help      show this help\n"
		     "  -V, --version   print the version\n"
		     "\n"
		     "'edgeid COMMAND --help' shows a command's verbs and options.\n"
		     "See edgeid(1) and edgeid-config.toml(5).\n");
}

static int cli_version_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	printf("edgeid %s\n", EDGEID_VERSION);
	return CLI_EXIT_OK;
}

static int cli_help_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	usage(stdout);
	return CLI_EXIT_OK;
}

int main(int argc, char **argv)
{
	int i = 1;

	log_init("edgeid");
	for (; i < argc && argv[i][0] == '-'; i++) {
		const char *a = argv[i];

		if (streq(a, "-h") || streq(a, "--help")) {
			usage(stdout);
			return CLI_EXIT_OK;
		} else if (streq(a, "-V") || streq(a, "--version")) {
			return cli_version_main(0, NULL);
		} else if (streq(a, "-v") || streq(a, "--verbose")) {
			log_set_level(LOG_LEVEL_DEBUG);
		} else {
			fprintf(stderr, "edgeid: unknown option '%s'\nTry 'edgeid --help'.\n", a);
			return CLI_EXIT_USAGE;
		}
	}
	if (i >= argc) {
		usage(stderr);
		return CLI_EXIT_USAGE;
	}
	for (size_t n = 0; n < ARRAY_SIZE(nouns); n++)
		if (streq(argv[i], nouns[n].name))
			return nouns[n].main(argc - i, argv + i);
	fprintf(stderr, "edgeid: unknown command '%s'\nTry 'edgeid --help'.\n", argv[i]);
	return CLI_EXIT_USAGE;
}
