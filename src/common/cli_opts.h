/* SPDX-License-Identifier: MIT */
/*
 * The usage errors of a getopt_long() loop run with opterr = 0, worded the
 * same for every program:
 *
 *   PROG: option -x: unknown or missing its argument
 *   PROG: --bogus: unknown option or missing argument
 *   PROG: unexpected argument 'extra'
 *   Try 'PROG --help'.
 */
#ifndef EDGEID_CLI_OPTS_H
#define EDGEID_CLI_OPTS_H

/* Report the option getopt_long() just refused (it returned '?' or ':'),
 * naming it from optopt, or from argv[optind - 1] for a long option, on
 * stderr with the --help hint. Returns -EINVAL. */
int cli_opts_bad_option(char **argv);

/* After the getopt_long() loop: fail when an operand is left (the program
 * takes none). Returns 0, or -EINVAL with the message on stderr. */
int cli_opts_no_operands(int argc, char **argv);

#endif
