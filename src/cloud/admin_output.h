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

#endif
