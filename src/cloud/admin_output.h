/* SPDX-License-Identifier: MIT */
/*
 * How every edgeid-cloud admin noun prints: a table with aligned columns
 * by default, JSON with --json. A noun builds its result once as JSON (an
 * array of objects for a list, an object for one record) and hands it
 * here with the columns the table shows; the JSON output is the whole
 * value, so scripts see every field.
 *
 * Table cells: strings as they are, numbers and booleans as JSON writes
 * them, absent or null as "-", objects and arrays as compact JSON. Columns
 * are separated by two spaces; the header row is the column titles.
 * JSON output is indented by two spaces and ends with a newline.
 */
#ifndef EDGEID_CLOUD_ADMIN_OUTPUT_H
#define EDGEID_CLOUD_ADMIN_OUTPUT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "common/macro.h"

struct admin_column {
	const char *title; /* "DEVICE ID" */
	const char *path;  /* a json.h path inside each row: "authentication.type" */
};

/* Print rows (a JSON array of objects) as a table of cols, or the whole
 * array as JSON when json is true. Returns 0, -EINVAL (rows is not an
 * array), -ENOMEM, -EIO (writing out failed). */
int admin_output_list(FILE *out, const json_t *rows, const struct admin_column *cols, size_t n_cols,
		      bool json);

/* Print one record: with json, the object as JSON; otherwise one
 * "key: value" line per leaf, nested keys joined with '.', aligned on the
 * colon. Returns as admin_output_list. */
int admin_output_object(FILE *out, const json_t *obj, bool json);

/* Print any value as indented JSON with a trailing newline. 0, -ENOMEM, -EIO. */
int admin_output_json(FILE *out, const json_t *v);

/* A cell's text as the table prints it. The caller frees. NULL on -ENOMEM. */
char *admin_output_cell(const json_t *v);

/* Parse the --json/-j and --help/-h flags shared by every admin verb out
 * of argv, in place: they are removed and argc is updated, so the verb
 * sees only its own arguments. Returns 0. */
int admin_output_take_flags(int *argc, char **argv, bool *ret_json, bool *ret_help);

/* ---- the verbs' arguments ---------------------------------------------- */

/* The exit status of a usage error. */
#define ADMIN_EXIT_USAGE 2

/* An option that takes a value ("--name value" or "--name=value"): the
 * value (borrowed from argv) is stored as a const char * at offset in the
 * verb's argument struct. */
struct admin_value_option {
	const char *name;
	size_t offset;
};

/* Print "edgeid-cloud NOUN: MESSAGE" and "Try 'edgeid-cloud NOUN --help'."
 * on stderr. Returns ADMIN_EXIT_USAGE. */
int admin_usage_error(const char *noun, const char *fmt, ...) _printf_(2, 3);

/* Is arg the option name, alone or as "name=value"? */
bool admin_option_is(const char *arg, const char *name);

/* The value of the option argv[*i], which admin_option_is(name): after
 * the '=' or the next argument (*i then moves past it). Returns 0, or
 * ADMIN_EXIT_USAGE after "NAME needs a value". */
int admin_take_value(int argc, char **argv, int *i, const char *name, const char **ret);

/* Take argv[*i] (argv[0] is the noun) as one of opts, its value stored at
 * base + offset, or as the next of at most max_pos positional arguments
 * (pos, *n_pos). Returns 0, or ADMIN_EXIT_USAGE after "unknown option
 * '...'" or "unexpected argument '...'". */
int admin_take_arg(int argc, char **argv, int *i, const struct admin_value_option *opts,
		   size_t n_opts, void *base, const char **pos, size_t max_pos, size_t *n_pos);

#endif
