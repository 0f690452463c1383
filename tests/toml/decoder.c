/* SPDX-License-Identifier: MIT */
/*
 * toml-test decoder: reads a TOML document on stdin and prints it on
 * stdout as toml-test's tagged JSON (every leaf is {"type": T, "value": S},
 * tables are objects, arrays are arrays). An invalid document exits 1 with
 * the parser's message ("<stdin>:LINE:COL: ...") on stderr.
 *
 * Usage: toml-decoder [NAME]   NAME replaces "<stdin>" in messages.
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/toml.h"

static json_t *tagged(const char *type, const char *value)
{
	return json_pack("{s:s, s:s}", "type", type, "value", value);
}

/* The shortest text that reads back as the same double. */
static void format_float(double d, char *out, size_t size)
{
	if (isnan(d)) {
		snprintf(out, size, "nan");
		return;
	}
	if (isinf(d)) {
		snprintf(out, size, "%s", d < 0 ? "-inf" : "inf");
		return;
	}
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(out, size, "%.*g", prec, d);
		if (strtod(out, NULL) == d)
			break;
	}
	/* "3" reads as an integer to most tools: write "3.0". */
	if (!strpbrk(out, ".e") && strlen(out) + 3 <= size)
		memcpy(out + strlen(out), ".0", 3);
}

static json_t *to_json(const struct toml_value *v)
{
	char text[64];
	json_t *j;

	switch (v->type) {
	case TOML_STRING:
		j = json_object();
		if (j &&
		    (json_object_set_new(j, "type", json_string("string")) < 0 ||
		     json_object_set_new(j, "value", json_stringn(v->str.ptr, v->str.len)) < 0)) {
			json_decref(j);
			return NULL;
		}
		return j;
	case TOML_INTEGER:
		snprintf(text, sizeof(text), "%" PRId64, v->integer);
		return tagged("integer", text);
	case TOML_FLOAT:
		format_float(v->flt, text, sizeof(text));
		return tagged("float", text);
	case TOML_BOOL:
		return tagged("bool", v->boolean ? "true" : "false");
	case TOML_DATETIME:
		return tagged("datetime", v->datetime);
	case TOML_DATETIME_LOCAL:
		return tagged("datetime-local", v->datetime);
	case TOML_DATE_LOCAL:
		return tagged("date-local", v->datetime);
	case TOML_TIME_LOCAL:
		return tagged("time-local", v->datetime);
	case TOML_ARRAY:
		j = json_array();
		for (size_t i = 0; j && i < v->array.n; i++) {
			/* Depth is bounded by TOML_MAX_DEPTH. */
			if (json_array_append_new(j, to_json(v->array.items[i])) < 0) {
				json_decref(j);
				return NULL;
			}
		}
		return j;
	case TOML_TABLE:
		j = json_object();
		for (size_t i = 0; j && i < v->table.n; i++) {
			const struct toml_kv *kv = &v->table.items[i];

			if (json_object_setn_new(j, kv->key, kv->keylen, to_json(kv->value)) < 0) {
				json_decref(j);
				return NULL;
			}
		}
		return j;
	}
	return NULL;
}

int main(int argc, char **argv)
{
	_cleanup_toml_ struct toml_value *root = NULL;
	const char *name = argc > 1 ? argv[1] : "<stdin>";
	struct err e = {0};
	char *data;
	size_t len = 0, cap = (size_t)TOML_MAX_DOCUMENT + 1;
	json_t *j;
	int r;

	/* One byte past the limit, so the parser reports an oversized input. */
	data = malloc(cap);
	if (!data) {
		fprintf(stderr, "toml-decoder: out of memory\n");
		return 1;
	}
	while (len < cap) {
		ssize_t n = read(STDIN_FILENO, data + len, cap - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			fprintf(stderr, "toml-decoder: cannot read stdin: %s\n", strerror(errno));
			free(data);
			return 1;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	r = toml_parse(data, len, name, &root, &e);
	free(data);
	if (r < 0) {
		fprintf(stderr, "%s\n", err_msg(&e, r));
		return 1;
	}
	j = to_json(root);
	if (!j || json_dumpf(j, stdout, JSON_INDENT(2) | JSON_SORT_KEYS) < 0) {
		fprintf(stderr, "toml-decoder: cannot write JSON\n");
		json_decref(j);
		return 1;
	}
	json_decref(j);
	putchar('\n');
	return fflush(stdout) == 0 ? 0 : 1;
}
