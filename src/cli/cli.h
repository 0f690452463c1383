/* SPDX-License-Identifier: MIT */
/*
 * The edgeid command line: one entry point per noun. Each returns the
 * process exit status (0 success, 1 failure, 2 usage error).
 */
#ifndef EDGEID_CLI_H
#define EDGEID_CLI_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

#include "common/macro.h"

#define CLI_EXIT_OK 0
#define CLI_EXIT_FAILURE 1
#define CLI_EXIT_USAGE 2

/* A verb of a noun: its name, its usage line and its --help text. */
struct cli_verb {
	const char *name;
	const char *usage;
	const char *help;
};

/* Pick the verb argv[1] names among verbs[0..n). Returns its index, or -1
 * with *ret_exit set: no verb (usage on stderr, CLI_EXIT_USAGE), -h/--help/
 * help (usage on stdout, CLI_EXIT_OK), an unknown verb ("edgeid NOUN:
 * unknown command 'X'" and usage on stderr, CLI_EXIT_USAGE). */
int cli_verb_pick(const char *noun, const struct cli_verb *verbs, size_t n,
		  void (*usage)(FILE *out), int argc, char **argv, int *ret_exit);

/* Print "PROG: MESSAGE", then "Usage: USAGE" when usage is not NULL, then
 * "Try 'PROG --help'." on stderr. prog is the command as typed ("edgeid
 * check", "edgeid tpm provisioning-info"). Returns CLI_EXIT_USAGE, for
 * the caller to return. */
int cli_usage_error(const char *prog, const char *usage, const char *fmt, ...) _printf_(3, 4);
int cli_usage_verror(const char *prog, const char *usage, const char *fmt, va_list ap)
    _printf_(3, 0);
/* The same for a verb of noun: "edgeid NOUN VERB: MESSAGE", the verb's
 * usage line and its --help hint. */
int cli_verb_usage_error(const char *noun, const struct cli_verb *verb, const char *fmt, ...)
    _printf_(3, 4);

/* edgeid config apply|show|check ... (argv[0] is "config") */
int cli_config_main(int argc, char **argv);
/* edgeid tpm provisioning-info ... */
int cli_tpm_main(int argc, char **argv);
/* edgeid system status|logs|restart|stop|reprovision ... */
int cli_system_main(int argc, char **argv);
/* edgeid identity show|list ... */
int cli_identity_main(int argc, char **argv);
/* edgeid check [OPTIONS] (argv[0] is "check"): exit 1 when a check failed */
int cli_check_main(int argc, char **argv);

#endif
