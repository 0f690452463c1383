/* SPDX-License-Identifier: MIT */
/* Tables and JSON for the admin nouns; see admin_output.h. */
#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cloud/admin_output.h"
#include "common/buf.h"
#include "common/json.h"
#include "common/macro.h"

#define CELL_MAX (64 * 1024)

/* Display width in characters (UTF-8 continuation bytes do not count). */
static size_t text_width(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		n += ((unsigned char)*s & 0xc0) != 0x80;
	return n;
}

char *admin_output_cell(const json_t *v)
{
	char *s = NULL;

	if (!v || json_is_null(v))
		return strdup("-");
	if (json_is_string(v)) {
		/* One line per cell: control characters would break the table. */
		s = strndup(json_string_value(v), CELL_MAX);
		for (char *p = s; p && *p; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				*p = '?';
		return s;
	}
	if (json_is_true(v))
		return strdup("true");
	if (json_is_false(v))
		return strdup("false");
	if (json_is_integer(v)) {
		if (asprintf(&s, "%" JSON_INTEGER_FORMAT, json_integer_value(v)) < 0)
			return NULL;
		return s;
	}
	return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
}

static int put(FILE *out, const char *s)
{
	return fputs(s, out) == EOF ? -EIO : 0;
}

static int pad(FILE *out, size_t n)
{
	for (; n > 0; n--)
		if (fputc(' ', out) == EOF)
			return -EIO;
	return 0;
}

int admin_output_json(FILE *out, const json_t *v)
{
	_cleanup_free_ char *s = json_dumps(v, JSON_INDENT(2) | JSON_ENCODE_ANY);

	if (!s)
		return -ENOMEM;
	if (fprintf(out, "%s\n", s) < 0 || fflush(out) != 0)
		return -EIO;
	return 0;
}

int admin_output_list(FILE *out, const json_t *rows, const struct admin_column *cols, size_t n_cols,
		      bool json)
{
	size_t n_rows, *width = NULL;
	char **cells = NULL;
	int r = 0;

	if (!json_is_array(rows))
		return -EINVAL;
	if (json)
		return admin_output_json(out, rows);
	n_rows = json_array_size(rows);
	width = calloc(n_cols ? n_cols : 1, sizeof(*width));
	cells = calloc(n_rows * n_cols + 1, sizeof(*cells));
	if (!width || !cells) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t c = 0; c < n_cols; c++)
		width[c] = text_width(cols[c].title);
	for (size_t i = 0; i < n_rows; i++) {
		const json_t *row = json_array_get(rows, i);

		for (size_t c = 0; c < n_cols; c++) {
			json_t *v = NULL;
			char **cell = &cells[i * n_cols + c];

			(void)json_get_value(row, cols[c].path, &v, NULL);
			*cell = admin_output_cell(v);
			if (!*cell) {
				r = -ENOMEM;
				goto out;
			}
			if (text_width(*cell) > width[c])
				width[c] = text_width(*cell);
		}
	}
	for (size_t i = 0; i <= n_rows && r == 0; i++) {
		for (size_t c = 0; c < n_cols && r == 0; c++) {
			const char *text = i == 0 ? cols[c].title : cells[(i - 1) * n_cols + c];

			r = put(out, text);
			if (r == 0 && c + 1 < n_cols)
				r = pad(out, width[c] - text_width(text) + 2);
		}
		if (r == 0)
			r = put(out, "\n");
	}
	if (r == 0 && fflush(out) != 0)
		r = -EIO;
out:
	for (size_t i = 0; cells && i < n_rows * n_cols; i++)
		free(cells[i]);
	free(cells);
	free(width);
	return r;
}

/* Collect "a.b.c" = leaf pairs of obj into keys/values (arrays of strings). */
static int flatten(const json_t *obj, const char *prefix, json_t *pairs)
{
	const char *key;
	json_t *v;

	json_object_foreach ((json_t *)obj, key, v) {
		_cleanup_free_ char *name = NULL;
		_cleanup_free_ char *cell = NULL;
		int r;

		if (asprintf(&name, "%s%s%s", prefix, *prefix ? "." : "", key) < 0)
			return -ENOMEM;
		if (json_is_object(v) && json_object_size(v) > 0) {
			r = flatten(v, name, pairs);
			if (r < 0)
				return r;
			continue;
		}
		cell = admin_output_cell(v);
		if (!cell || json_array_append_new(pairs, json_pack("[ss]", name, cell)) < 0)
			return -ENOMEM;
	}
	return 0;
}

int admin_output_object(FILE *out, const json_t *obj, bool json)
{
	_cleanup_json_ json_t *pairs = NULL;
	size_t w = 0, i;
	json_t *p;
	int r;

	if (!json_is_object(obj))
		return -EINVAL;
	if (json)
		return admin_output_json(out, obj);
	pairs = json_array();
	if (!pairs)
		return -ENOMEM;
	r = flatten(obj, "", pairs);
	if (r < 0)
		return r;
	json_array_foreach (pairs, i, p) {
		size_t kw = text_width(json_string_value(json_array_get(p, 0)));
		if (kw > w)
			w = kw;
	}
	json_array_foreach (pairs, i, p) {
		const char *k = json_string_value(json_array_get(p, 0));
		const char *v = json_string_value(json_array_get(p, 1));

		if (fprintf(out, "%s:", k) < 0 || pad(out, w - text_width(k) + 1) < 0 ||
		    fprintf(out, "%s\n", v) < 0)
			return -EIO;
	}
	return fflush(out) != 0 ? -EIO : 0;
}

int admin_output_take_flags(int *argc, char **argv, bool *ret_json, bool *ret_help)
{
	int j = 1;
	bool json = false, help = false, rest = false;

	for (int i = 1; i < *argc; i++) {
		const char *a = argv[i];

		if (!rest && (streq(a, "--json") || streq(a, "-j"))) {
			json = true;
			continue;
		}
		if (!rest && (streq(a, "--help") || streq(a, "-h"))) {
			help = true;
			continue;
		}
		if (streq(a, "--"))
			rest = true;
		argv[j++] = argv[i];
	}
	argv[j] = NULL;
	*argc = j;
	if (ret_json)
		*ret_json = json;
	if (ret_help)
		*ret_help = help;
	return 0;
}

int admin_usage_error(const char *noun, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "edgeid-cloud %s: ", noun);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'edgeid-cloud %s --help'.\n", noun);
	return ADMIN_EXIT_USAGE;
}

bool admin_option_is(const char *arg, const char *name)
{
	size_t n = strlen(name);

	return strneq(arg, name, n) && (arg[n] == '\0' || arg[n] == '=');
}

int admin_take_value(int argc, char **argv, int *i, const char *name, const char **ret)
{
	const char *a = argv[*i];
	size_t n = strlen(name);

	if (a[n] == '=') {
		*ret = a + n + 1;
		return 0;
	}
	if (*i + 1 >= argc)
		return admin_usage_error(argv[0], "%s needs a value", name);
	*ret = argv[++*i];
	return 0;
}

int admin_take_arg(int argc, char **argv, int *i, const struct admin_value_option *opts,
		   size_t n_opts, void *base, const char **pos, size_t max_pos, size_t *n_pos)
{
	const char *arg = argv[*i];

	for (size_t k = 0; k < n_opts; k++)
		if (admin_option_is(arg, opts[k].name))
			return admin_take_value(argc, argv, i, opts[k].name,
						(const char **)((char *)base + opts[k].offset));
	if (arg[0] == '-' && arg[1])
		return admin_usage_error(argv[0], "unknown option '%s'", arg);
	if (*n_pos == max_pos)
		return admin_usage_error(argv[0], "unexpected argument '%s'", arg);
	pos[(*n_pos)++] = arg;
	return 0;
}
