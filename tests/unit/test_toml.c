/* SPDX-License-Identifier: MIT */
/*
 * TOML parser: the exact messages a user sees for broken documents (with
 * line:column in characters), the positions the config model reports
 * from, the decoded values, lookups, the writers, and the limits.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/toml.h"

struct error_case {
	const char *doc;
	const char *msg;
};

static struct toml_value *parse_ok(const char *doc)
{
	struct toml_value *root = NULL;
	struct err e = {0};
	int r = toml_parse(doc, strlen(doc), "config.toml", &root, &e);

	if (r < 0)
		print_error("unexpected failure: %s\n", e.msg);
	assert_int_equal(r, 0);
	assert_non_null(root);
	assert_int_equal(root->type, TOML_TABLE);
	return root;
}

static void check_errors(const struct error_case *cases, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct toml_value *root = (struct toml_value *)0x1;
		struct err e = {0};
		int r = toml_parse(cases[i].doc, strlen(cases[i].doc), "config.toml", &root, &e);

		assert_int_equal(r, -EINVAL);
		assert_null(root);
		assert_int_equal(e.code, -EINVAL);
		assert_string_equal(e.msg, cases[i].msg);
	}
}

static const struct toml_value *get(const struct toml_value *t, const char *key)
{
	const struct toml_value *v = toml_table_get(t, key);

	if (!v)
		print_error("key %s not found\n", key);
	assert_non_null(v);
	return v;
}

static void assert_pos(struct toml_pos pos, unsigned line, unsigned col)
{
	if (pos.line != line || pos.col != col)
		print_error("position %u:%u, expected %u:%u\n", pos.line, pos.col, line, col);
	assert_int_equal(pos.line, line);
	assert_int_equal(pos.col, col);
}

/* ---- Messages ---------------------------------------------------------------- */

static void test_errors_syntax(void **state)
{
	static const struct error_case cases[] = {
	    {"a = 1\nb = 2\nfoo   bar = 3\n", "config.toml:3:7: expected '=' after key \"foo\""},
	    {"= 1\n", "config.toml:1:1: expected a key or a [table] header, got '='"},
	    {"key =\n", "config.toml:1:6: expected a value, got end of line"},
	    {"key = # nothing\n", "config.toml:1:7: expected a value, got '#'"},
	    {"first = \"Tom\" last = \"P\"\n",
	     "config.toml:1:15: expected end of line after a value, got 'l'"},
	    {"[error] this = 1\n",
	     "config.toml:1:9: expected end of line after a table header, got 't'"},
	    {"[a\n", "config.toml:1:3: expected ']' to close the table header, got end of line"},
	    {"[[a]\n",
	     "config.toml:1:4: expected ']]' to close the array of tables header, got ']'"},
	    {"[a..b]\n", "config.toml:1:4: expected a key, got '.'"},
	    {"\"\"\"k\"\"\" = 1\n", "config.toml:1:1: a key cannot be a multi-line string"},
	    {"a = [1 2]\n", "config.toml:1:8: expected ',' or ']' after an array element, got '2'"},
	    {"a = [1,\n", "config.toml:2:1: expected a value, got end of file"},
	    {"t = {x = 3 y = 4}\n",
	     "config.toml:1:12: expected ',' or '}' after a value in an inline table, got 'y'"},
	    {"t = {a = 1,\nb = 2}\n",
	     "config.toml:1:12: newlines are not allowed inside an inline table"},
	    {"t = { a = 1, }\n",
	     "config.toml:1:14: trailing comma is not allowed in an inline table"},
	    {"t = {,}\n", "config.toml:1:6: expected a key in inline table, got ','"},
	    {"\xd0\xba\xd0\xbb\xd1\x8e\xd1\x87 = 1\n",
	     "config.toml:1:1: expected a key or a [table] header, got '\xd0\xba' (U+043A)"},
	    {"\x0c", "config.toml:1:1: expected a key or a [table] header, got U+000C"},
	};

	(void)state;
	check_errors(cases, sizeof(cases) / sizeof(cases[0]));
}

/* Columns count characters, not bytes; a tab is one column; CRLF ends a line. */
static void test_errors_columns(void **state)
{
	static const struct error_case cases[] = {
	    {"name = \"\xc3\xa9\" x\n",
	     "config.toml:1:12: expected end of line after a value, got 'x'"},
	    {"\ta\t=\t1\tx\n", "config.toml:1:8: expected end of line after a value, got 'x'"},
	    {"a = 1\r\nb = 2\r\nc\r\n", "config.toml:3:2: expected '=' after key \"c\""},
	    {"\xef\xbb\xbf"
	     "a b = 1\n",
	     "config.toml:1:3: expected '=' after key \"a\""},
	    {"s = \"\"\"\n\xe2\x82\xac\xe2\x82\xac\n\"\"\" x\n",
	     "config.toml:3:5: expected end of line after a value, got 'x'"},
	};

	(void)state;
	check_errors(cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_errors_strings(void **state)
{
	static const struct error_case cases[] = {
	    {"a = \"bad \\a escape\"\n",
	     "config.toml:1:10: invalid escape sequence '\\a' in string"},
	    {"a = \"\\x41\"\n", "config.toml:1:6: invalid escape sequence '\\x' in string"},
	    {"a = \"\\uD801\"\n",
	     "config.toml:1:6: invalid escape sequence '\\uD801': U+D801 is not a Unicode scalar "
	     "value"},
	    {"a = \"\\U00110000\"\n",
	     "config.toml:1:6: invalid escape sequence '\\U00110000': U+110000 is not a Unicode "
	     "scalar value"},
	    {"a = \"val\\ue\"\n",
	     "config.toml:1:9: invalid escape sequence: \\u needs 4 hexadecimal digits"},
	    {"a = \"\\U0001F60\"\n",
	     "config.toml:1:6: invalid escape sequence: \\U needs 8 hexadecimal digits"},
	    {"a = \"x\x01y\"\n",
	     "config.toml:1:7: control character U+0001 is not allowed in a string; write it as "
	     "an escape sequence"},
	    {"a = \"\"\"x\x1fy\"\"\"\n",
	     "config.toml:1:9: control character U+001F is not allowed in a string; write it as "
	     "an escape sequence"},
	    {"a = 'x\x7f'\n",
	     "config.toml:1:7: control character U+007F is not allowed in a literal string"},
	    {"a = 1 # x\x10\n",
	     "config.toml:1:10: control character U+0010 is not allowed in a comment"},
	    {"a = \"unterminated\nb = 1\n",
	     "config.toml:1:5: string is not closed before the end of the line (use \"\"\" for a "
	     "multi-line string)"},
	    {"a = 'open\n",
	     "config.toml:1:5: string is not closed before the end of the line (use ''' for a "
	     "multi-line string)"},
	    {"a = \"open", "config.toml:1:5: unterminated string: missing closing '\"'"},
	    {"a = 'open", "config.toml:1:5: unterminated string: missing closing \"'\""},
	    {"a = \"\"\"\nnever closed\n",
	     "config.toml:1:5: unterminated multi-line string: missing closing \"\"\""},
	    {"a = '''x''''''\n",
	     "config.toml:1:9: too many quotes at the end of a multi-line string (at most two may "
	     "stand before the closing ''')"},
	    {"a = \"\"\"\n  foo \\ x\"\"\"\n",
	     "config.toml:2:7: invalid escape sequence in string: '\\' followed by ' '"},
	    {"a = \"first\" \"second\"\n",
	     "config.toml:1:13: expected end of line after a value, got '\"'"},
	};

	(void)state;
	check_errors(cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_errors_encoding(void **state)
{
	static const struct error_case cases[] = {
	    {"a = \"\xc3\xa9\xff\"\n",
	     "config.toml:1:7: the document is not valid UTF-8 (byte 0xFF)"},
	    {"# ok\n# \xc3\n", "config.toml:2:3: the document is not valid UTF-8 (byte 0xC3)"},
	    /* A UTF-8 encoded surrogate and an overlong '/'. */
	    {"a = \"\xed\xa0\x80\"\n",
	     "config.toml:1:6: the document is not valid UTF-8 (byte 0xED)"},
	    {"a = \"\xc0\xaf\"\n", "config.toml:1:6: the document is not valid UTF-8 (byte 0xC0)"},
	    {"a = \"\xf4\x90\x80\x80\"\n",
	     "config.toml:1:6: the document is not valid UTF-8 (byte 0xF4)"},
	    {"a = 1\rb = 2\n", "config.toml:1:6: carriage return not followed by a line feed"},
	    {"a = \"\"\"x\ry\"\"\"\n",
	     "config.toml:1:9: carriage return not followed by a line feed"},
	};

	(void)state;
	check_errors(cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_errors_numbers(void **state)
{
	static const struct error_case cases[] = {
	    {"n = 0123\n",
	     "config.toml:1:5: invalid integer '0123': leading zeros are not allowed"},
	    {"n = 9223372036854775808\n",
	     "config.toml:1:5: integer '9223372036854775808' is out of range (a 64-bit signed "
	     "integer holds -9223372036854775808 to 9223372036854775807)"},
	    {"n = -9223372036854775809\n",
	     "config.toml:1:5: integer '-9223372036854775809' is out of range (a 64-bit signed "
	     "integer holds -9223372036854775808 to 9223372036854775807)"},
	    {"n = 0x8000000000000000\n",
	     "config.toml:1:5: integer '0x8000000000000000' is out of range (a 64-bit signed "
	     "integer holds -9223372036854775808 to 9223372036854775807)"},
	    {"n = 1__000\n",
	     "config.toml:1:5: invalid integer '1__000': underscores must stand between digits"},
	    {"n = 0x_1\n",
	     "config.toml:1:5: invalid hexadecimal integer '0x_1': underscores must stand between "
	     "digits"},
	    {"n = -0xff\n",
	     "config.toml:1:5: invalid integer '-0xff': hexadecimal, octal and binary integers "
	     "cannot have a sign"},
	    {"n = 0o78\n", "config.toml:1:5: invalid octal integer '0o78': unexpected '8'"},
	    {"n = 0b\n", "config.toml:1:5: invalid binary integer '0b': expected a digit"},
	    {"n = 0X1F\n", "config.toml:1:5: invalid integer '0X1F': unexpected 'X'"},
	    {"f = 1.\n",
	     "config.toml:1:5: invalid float '1.': a decimal point must have digits on both sides"},
	    {"f = .5\n",
	     "config.toml:1:5: invalid float '.5': a decimal point must have digits on both sides"},
	    {"f = 1e400\n", "config.toml:1:5: float '1e400' is out of range"},
	    {"f = 1e\n", "config.toml:1:5: invalid float '1e': expected digits in the exponent"},
	    {"f = 1.5.2\n", "config.toml:1:5: invalid float '1.5.2': unexpected '.'"},
	    {"f = 03.14\n",
	     "config.toml:1:5: invalid float '03.14': leading zeros are not allowed"},
	    {"b = TRUE\n",
	     "config.toml:1:5: invalid value 'TRUE' (strings must be quoted; booleans are true or "
	     "false)"},
	    {"s = hostname\n",
	     "config.toml:1:5: invalid value 'hostname' (strings must be quoted; booleans are "
	     "true or false)"},
	    {"n = --1\n", "config.toml:1:5: invalid number '--1'"},
	    {"n = +in\n", "config.toml:1:5: invalid number '+in'"},
	    /* A sign at the very end of the input (found by fuzzing). */
	    {"n = -", "config.toml:1:5: invalid number '-'"},
	};

	(void)state;
	check_errors(cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_errors_datetimes(void **state)
{
	static const struct error_case cases[] = {
	    {"d = 2023-02-29\n",
	     "config.toml:1:5: invalid date/time '2023-02-29': day out of range for the month"},
	    {"d = 1900-02-29\n",
	     "config.toml:1:5: invalid date/time '1900-02-29': day out of range for the month"},
	    {"d = 2024-04-31\n",
	     "config.toml:1:5: invalid date/time '2024-04-31': day out of range for the month"},
	    {"d = 2023-13-01\n",
	     "config.toml:1:5: invalid date/time '2023-13-01': month out of range (01-12)"},
	    {"d = 2023-00-01\n",
	     "config.toml:1:5: invalid date/time '2023-00-01': month out of range (01-12)"},
	    {"d = 2023-01-01T24:00:00\n",
	     "config.toml:1:5: invalid date/time '2023-01-01T24:00:00': hour out of range "
	     "(00-23)"},
	    {"d = 2023-01-01T23:60:00\n",
	     "config.toml:1:5: invalid date/time '2023-01-01T23:60:00': minute out of range "
	     "(00-59)"},
	    {"d = 2023-01-01T23:59:61Z\n",
	     "config.toml:1:5: invalid date/time '2023-01-01T23:59:61Z': second out of range "
	     "(00-60)"},
	    {"d = 2023-01-01 12:00:00+24:00\n",
	     "config.toml:1:5: invalid date/time '2023-01-01 12:00:00+24:00': time zone offset "
	     "out of range"},
	    {"d = 2023-01-01T12:00:00+1:00\n",
	     "config.toml:1:5: invalid date/time '2023-01-01T12:00:00+1:00': expected 'Z' or a "
	     "time zone offset as +HH:MM or -HH:MM after the time"},
	    {"t = 12:00:00Z\n",
	     "config.toml:1:5: invalid date/time '12:00:00Z': a local time cannot have a time "
	     "zone offset"},
	    {"d = 2023-01-01T12:00\n",
	     "config.toml:1:5: invalid date/time '2023-01-01T12:00': expected a time as HH:MM:SS"},
	    {"d = 2023-01-01T12:00:00.\n",
	     "config.toml:1:5: invalid date/time '2023-01-01T12:00:00.': expected digits after "
	     "the decimal point of the seconds"},
	    {"d = 2023-1-01\n",
	     "config.toml:1:5: invalid date/time '2023-1-01': expected a date as YYYY-MM-DD"},
	    {"d = 2023-01-01X12:00:00\n",
	     "config.toml:1:5: invalid date/time '2023-01-01X12:00:00': expected 'T' or a space "
	     "between the date and the time"},
	};

	(void)state;
	check_errors(cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_errors_tables(void **state)
{
	static const struct error_case cases[] = {
	    {"\n[provisioning]\nx = 1\n\n[provisioning]\n",
	     "config.toml:5:1: table [provisioning] is defined twice (first at line 2)"},
	    {"name = \"a\"\nname = \"b\"\n",
	     "config.toml:2:1: key \"name\" is defined twice (first at line 1)"},
	    {"t = { a = 1, a = 2 }\n",
	     "config.toml:1:14: key \"a\" is defined twice (first at line 1)"},
	    {"a.b = 1\na.b.c = 2\n",
	     "config.toml:2:3: cannot set key \"a.b.c\": \"a.b\" is already an integer (line 1)"},
	    {"a = 1\na.b = 2\n",
	     "config.toml:2:1: cannot set key \"a.b\": \"a\" is already an integer (line 1)"},
	    {"fruit = []\n[[fruit]]\n",
	     "config.toml:2:1: cannot define array of tables [[fruit]]: \"fruit\" is already a "
	     "static array (line 1)"},
	    {"[[a]]\n[a]\n",
	     "config.toml:2:1: table [a] is already defined as an array of tables (line 1)"},
	    {"[a]\n[[a]]\n",
	     "config.toml:2:1: cannot define array of tables [[a]]: \"a\" is already a table "
	     "(line 1)"},
	    {"[[albums.songs]]\n[[albums]]\n",
	     "config.toml:2:1: cannot define array of tables [[albums]]: \"albums\" is already a "
	     "table (line 1)"},
	    {"[fruit]\napple.color = \"red\"\n[fruit.apple]\n",
	     "config.toml:3:1: table [fruit.apple] is already defined by dotted keys (line 2)"},
	    {"[a.b.c]\nz = 9\n[a]\nb.c.t = 1\n",
	     "config.toml:4:3: cannot add key \"b.c.t\" with a dotted key: table [a.b.c] is "
	     "defined by a header (line 1)"},
	    {"a = {b = 1}\na.c = 2\n",
	     "config.toml:2:1: cannot add key \"a.c\": \"a\" is an inline table (line 1), which "
	     "cannot be extended"},
	    {"a = {b = 1}\n[a.c]\n",
	     "config.toml:2:1: cannot define table [a.c]: \"a\" is an inline table (line 1), "
	     "which cannot be extended"},
	    {"a = {b = 1}\n[a]\n",
	     "config.toml:2:1: table [a] is already defined as an inline table (line 1)"},
	    {"a = 1\n[a.b]\n",
	     "config.toml:2:1: cannot define table [a.b]: \"a\" is already an integer (line 1)"},
	    {"a = [{b = 1}]\n[a.c]\n",
	     "config.toml:2:1: cannot define table [a.c]: \"a\" is already an array (line 1)"},
	    {"[[tab.arr]]\n[tab]\narr.val = 1\n",
	     "config.toml:3:1: cannot set key \"arr.val\": \"arr\" is already an array of tables "
	     "(line 1)"},
	    {"[\"a b\".c]\nx = 1\n[ \"a b\" . c ]\n",
	     "config.toml:3:1: table [\"a b\".c] is defined twice (first at line 1)"},
	    {"[a]\nb = 1\n[a.b.c]\n",
	     "config.toml:3:1: cannot define table [a.b.c]: \"a.b\" is already an integer (line "
	     "2)"},
	};

	(void)state;
	check_errors(cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_error_without_err(void **state)
{
	struct toml_value *root = NULL;

	(void)state;
	/* e may be NULL; the default file name appears when none is given. */
	assert_int_equal(toml_parse("a = ", 4, "x.toml", &root, NULL), -EINVAL);
	assert_null(root);

	struct err e = {0};
	assert_int_equal(toml_parse("a = ", 4, NULL, &root, &e), -EINVAL);
	assert_string_equal(e.msg, "<input>:1:5: expected a value, got end of file");
}

/* The text need not be NUL-terminated: documents that end inside every
 * kind of token, parsed from buffers of exactly their size (the sanitizer
 * build catches any read past the end). */
static void test_input_not_terminated(void **state)
{
	static const struct {
		const char *doc;
		int code;
	} cases[] = {
	    {"n = -", -EINVAL},
	    {"n = +", -EINVAL},
	    {"n = 1", 0},
	    {"n = 1.", -EINVAL},
	    {"n = 1e", -EINVAL},
	    {"n = 0x", -EINVAL},
	    {"n = 1_", -EINVAL},
	    {"b = tru", -EINVAL},
	    {"b = true", 0},
	    {"f = -inf", 0},
	    {"d = 1979-05-27", 0},
	    {"d = 1979-05-27 07:32", -EINVAL},
	    {"d = 1979-05-27T", -EINVAL},
	    {"t = 07:32:00.", -EINVAL},
	    {"d = 1979-05-27T07:32:00+01:0", -EINVAL},
	    {"s = \"abc", -EINVAL},
	    {"s = \"a\\", -EINVAL},
	    {"s = \"\\u12", -EINVAL},
	    {"s = \"\"\"a\"\"", -EINVAL},
	    {"s = '''a''", -EINVAL},
	    {"s = \"\"\"a\\", -EINVAL},
	    {"s = \"\"\"a\\ ", -EINVAL},
	    {"s = '", -EINVAL},
	    {"k", -EINVAL},
	    {"k.", -EINVAL},
	    {"k =", -EINVAL},
	    {"[a", -EINVAL},
	    {"[[a]", -EINVAL},
	    {"[a]", 0},
	    {"a = 1 #c", 0},
	    {"t = {a = 1", -EINVAL},
	    {"t = {", -EINVAL},
	    {"a = [1,", -EINVAL},
	    {"a = \"x\"\r", -EINVAL},
	    {"\xc3", -EINVAL},
	    {"\xef\xbb", -EINVAL},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t len = strlen(cases[i].doc);
		char *exact = malloc(len);
		struct toml_value *root = NULL;
		struct err e = {0};
		int r;

		assert_non_null(exact);
		memcpy(exact, cases[i].doc, len);
		r = toml_parse(exact, len, "cut.toml", &root, &e);
		if (r != cases[i].code)
			print_error("\"%s\": %d (%s)\n", cases[i].doc, r, e.msg);
		assert_int_equal(r, cases[i].code);
		toml_free(root);
		free(exact);
	}
}

/* ---- Positions ------------------------------------------------------------------- */

static void test_positions(void **state)
{
	static const char doc[] = "title = \"x\"\n"                     /* 1 */
				  "[server]\n"                          /* 2 */
				  "host = 'h'\n"                        /* 3 */
				  "ports = [ 80,\n"                     /* 4 */
				  "          443 ]\n"                   /* 5 */
				  "\"quoted key\" = { a.b = true }\n"   /* 6 */
				  "[[srv . inst]]\n"                    /* 7 */
				  "  name = \"\"\"\n"                   /* 8 */
				  "multi\"\"\"\n"                       /* 9 */
				  "  t = { \"\xc3\xa4\" = 1, b = 2 }\n" /* 10 */
				  "\tx.y.z = 1979-05-27 07:32:00Z\n"    /* 11 */
				  "[[srv.inst]]\n";                     /* 12 */
	struct toml_value *root = parse_ok(doc);
	const struct toml_value *server, *ports, *q, *a, *srv, *inst, *el, *t, *x;
	const struct toml_kv *kv;

	(void)state;
	assert_pos(root->pos, 1, 1);
	kv = toml_table_find(root, "title");
	assert_pos(kv->key_pos, 1, 1);
	assert_pos(kv->value->pos, 1, 9);

	kv = toml_table_find(root, "server");
	assert_pos(kv->key_pos, 2, 2);
	server = kv->value;
	assert_pos(server->pos, 2, 1);
	kv = toml_table_find(server, "host");
	assert_pos(kv->key_pos, 3, 1);
	assert_pos(kv->value->pos, 3, 8);
	ports = get(server, "ports");
	assert_pos(ports->pos, 4, 9);
	assert_int_equal(ports->array.n, 2);
	assert_pos(ports->array.items[0]->pos, 4, 11);
	assert_pos(ports->array.items[1]->pos, 5, 11);

	kv = toml_table_find(server, "quoted key");
	assert_pos(kv->key_pos, 6, 1);
	q = kv->value;
	assert_pos(q->pos, 6, 16);
	kv = toml_table_find(q, "a");
	assert_pos(kv->key_pos, 6, 18);
	a = kv->value;
	assert_pos(a->pos, 6, 18);
	kv = toml_table_find(a, "b");
	assert_pos(kv->key_pos, 6, 20);
	assert_pos(kv->value->pos, 6, 24);

	/* srv is created implicitly by the header; inst is written at 7:9. */
	kv = toml_table_find(root, "srv");
	assert_pos(kv->key_pos, 7, 3);
	srv = kv->value;
	kv = toml_table_find(srv, "inst");
	assert_pos(kv->key_pos, 7, 9);
	inst = kv->value;
	assert_int_equal(inst->type, TOML_ARRAY);
	assert_int_equal(inst->array.n, 2);
	assert_pos(inst->pos, 7, 1);
	el = inst->array.items[0];
	assert_pos(el->pos, 7, 1);
	assert_pos(inst->array.items[1]->pos, 12, 1);
	kv = toml_table_find(el, "name");
	assert_pos(kv->key_pos, 8, 3);
	assert_pos(kv->value->pos, 8, 10);
	assert_string_equal(kv->value->str.ptr, "multi");

	/* Columns are characters: the 2-byte 'ä' counts once. */
	t = get(el, "t");
	assert_pos(t->pos, 10, 7);
	kv = toml_table_find(t, "\xc3\xa4");
	assert_pos(kv->key_pos, 10, 9);
	assert_pos(kv->value->pos, 10, 15);
	kv = toml_table_find(t, "b");
	assert_pos(kv->key_pos, 10, 18);
	assert_pos(kv->value->pos, 10, 22);

	/* A tab is one column; the dotted tables start where their key is written. */
	kv = toml_table_find(el, "x");
	assert_pos(kv->key_pos, 11, 2);
	x = kv->value;
	assert_pos(x->pos, 11, 2);
	kv = toml_table_find(get(x, "y"), "z");
	assert_pos(kv->key_pos, 11, 6);
	assert_pos(kv->value->pos, 11, 10);
	assert_int_equal(kv->value->type, TOML_DATETIME);
	assert_string_equal(kv->value->datetime, "1979-05-27T07:32:00Z");
	toml_free(root);
}

static void test_positions_bom_crlf(void **state)
{
	struct toml_value *root = parse_ok("\xef\xbb\xbf"
					   "a = 1\r\nb = \"\"\"\r\nx\r\ny\"\"\"\r\nc = 3");
	const struct toml_kv *kv;

	(void)state;
	kv = toml_table_find(root, "a");
	assert_pos(kv->key_pos, 1, 1);
	assert_pos(kv->value->pos, 1, 5);
	kv = toml_table_find(root, "b");
	assert_pos(kv->value->pos, 2, 5);
	/* CRLF inside a multi-line string is stored as LF. */
	assert_string_equal(kv->value->str.ptr, "x\ny");
	kv = toml_table_find(root, "c");
	assert_pos(kv->key_pos, 5, 1);
	assert_pos(kv->value->pos, 5, 5);
	toml_free(root);
}

/* A table first created implicitly takes the position of its own header. */
static void test_positions_implicit_then_defined(void **state)
{
	struct toml_value *root = parse_ok("[a.b]\nx = 1\n\n[a]\ny = 2\n");
	const struct toml_value *a = get(root, "a");

	(void)state;
	assert_pos(a->pos, 4, 1);
	assert_pos(toml_table_find(root, "a")->key_pos, 1, 2);
	assert_pos(get(a, "b")->pos, 1, 1);
	/* Document order. */
	assert_int_equal(a->table.n, 2);
	assert_string_equal(a->table.items[0].key, "b");
	assert_string_equal(a->table.items[1].key, "y");
	toml_free(root);
}

/* ---- Values ------------------------------------------------------------------------ */

static void test_values(void **state)
{
	static const char doc[] =
	    "i1 = 0\ni2 = -9223372036854775808\ni3 = 9223372036854775807\n"
	    "i4 = 0xDEAD_beef\ni5 = 0o755\ni6 = 0b1101\ni7 = +1_000\n"
	    "f1 = 3.14\nf2 = -1e-3\nf3 = 6.626e-34\nf4 = 1_000.5\nf5 = +inf\nf6 = -inf\n"
	    "f7 = nan\nf8 = -0.0\nf9 = 1E+2\n"
	    "b1 = true\nb2 = false\n"
	    "d1 = 1979-05-27T07:32:00Z\nd2 = 1979-05-27 00:32:00.999999-07:00\n"
	    "d3 = 1979-05-27t07:32:00z\nd4 = 1979-05-27T07:32:00\nd5 = 1979-05-27\n"
	    "d6 = 07:32:00.5\nd7 = 2024-02-29\nd8 = 2016-12-31T23:59:60Z\n"
	    "s1 = \"tab\\there \\\"q\\\" \\\\ \\u00e9 \\U0001F600 \\b\\f\\r\\n\"\n"
	    "s2 = 'C:\\path\\no escapes'\n"
	    "s3 = \"\"\"\nline1\n  line2 \\\n     joined\"\"\"\n"
	    "s4 = '''\nraw \\n ''x'' '''\n"
	    "s5 = \"\"\"\"\"quotes\"\"\"\"\"\n"
	    "s6 = \"nul\\u0000byte\"\n"
	    "a1 = []\na2 = [1, \"two\", [3.0], {four = 4},]\n"
	    "e = {}\n";
	struct toml_value *root = parse_ok(doc);
	const struct toml_value *v;

	(void)state;
	assert_int_equal(get(root, "i1")->integer, 0);
	assert_true(get(root, "i2")->integer == INT64_MIN);
	assert_true(get(root, "i3")->integer == INT64_MAX);
	assert_int_equal(get(root, "i4")->integer, 0xDEADBEEF);
	assert_int_equal(get(root, "i5")->integer, 0755);
	assert_int_equal(get(root, "i6")->integer, 13);
	assert_int_equal(get(root, "i7")->integer, 1000);
	assert_int_equal(get(root, "i7")->type, TOML_INTEGER);

	assert_true(get(root, "f1")->flt == 3.14);
	assert_true(get(root, "f2")->flt == -1e-3);
	assert_true(get(root, "f3")->flt == 6.626e-34);
	assert_true(get(root, "f4")->flt == 1000.5);
	assert_true(isinf(get(root, "f5")->flt) && get(root, "f5")->flt > 0);
	assert_true(isinf(get(root, "f6")->flt) && get(root, "f6")->flt < 0);
	assert_true(isnan(get(root, "f7")->flt));
	assert_true(get(root, "f8")->flt == 0.0 && signbit(get(root, "f8")->flt));
	assert_true(get(root, "f9")->flt == 100.0);
	assert_int_equal(get(root, "f9")->type, TOML_FLOAT);

	assert_true(get(root, "b1")->boolean);
	assert_int_equal(get(root, "b1")->type, TOML_BOOL);
	assert_false(get(root, "b2")->boolean);

	v = get(root, "d1");
	assert_int_equal(v->type, TOML_DATETIME);
	assert_string_equal(v->datetime, "1979-05-27T07:32:00Z");
	assert_string_equal(get(root, "d2")->datetime, "1979-05-27T00:32:00.999999-07:00");
	assert_string_equal(get(root, "d3")->datetime, "1979-05-27T07:32:00Z");
	v = get(root, "d4");
	assert_int_equal(v->type, TOML_DATETIME_LOCAL);
	assert_string_equal(v->datetime, "1979-05-27T07:32:00");
	v = get(root, "d5");
	assert_int_equal(v->type, TOML_DATE_LOCAL);
	assert_string_equal(v->datetime, "1979-05-27");
	v = get(root, "d6");
	assert_int_equal(v->type, TOML_TIME_LOCAL);
	assert_string_equal(v->datetime, "07:32:00.5");
	assert_string_equal(get(root, "d7")->datetime, "2024-02-29");
	assert_string_equal(get(root, "d8")->datetime, "2016-12-31T23:59:60Z");

	assert_string_equal(get(root, "s1")->str.ptr,
			    "tab\there \"q\" \\ \xc3\xa9 \xf0\x9f\x98\x80 \b\f\r\n");
	assert_string_equal(get(root, "s2")->str.ptr, "C:\\path\\no escapes");
	assert_string_equal(get(root, "s3")->str.ptr, "line1\n  line2 joined");
	assert_string_equal(get(root, "s4")->str.ptr, "raw \\n ''x'' ");
	assert_string_equal(get(root, "s5")->str.ptr, "\"\"quotes\"\"");
	v = get(root, "s6");
	assert_int_equal(v->str.len, 8);
	assert_memory_equal(v->str.ptr, "nul\0byte", 9);

	assert_int_equal(get(root, "a1")->type, TOML_ARRAY);
	assert_int_equal(get(root, "a1")->array.n, 0);
	v = get(root, "a2");
	assert_int_equal(v->array.n, 4);
	assert_int_equal(v->array.items[0]->type, TOML_INTEGER);
	assert_int_equal(v->array.items[1]->type, TOML_STRING);
	assert_int_equal(v->array.items[2]->type, TOML_ARRAY);
	assert_int_equal(v->array.items[3]->type, TOML_TABLE);
	assert_int_equal(get(v->array.items[3], "four")->integer, 4);
	assert_int_equal(get(root, "e")->type, TOML_TABLE);
	assert_int_equal(get(root, "e")->table.n, 0);
	toml_free(root);
}

/* The TOML 1.0 table rules that are allowed, as the spec shows them. */
static void test_tables_allowed(void **state)
{
	static const char doc[] =
	    "[fruit]\napple.color = \"red\"\napple.taste.sweet = true\n"
	    "[fruit.apple.texture]\nsmooth = true\n"
	    "[x.y.z]\n[x]\nw = 1\n"
	    "[[fruits]]\nname = \"apple\"\n[fruits.physical]\ncolor = \"red\"\n"
	    "[[fruits.varieties]]\nname = \"red\"\n[[fruits.varieties]]\n"
	    "[[fruits]]\nname = \"banana\"\n"
	    "[dog.\"tater.man\"]\ntype.name = \"pug\"\n";
	struct toml_value *root = parse_ok(doc);
	const struct toml_value *apple, *fruits;

	(void)state;
	apple = get(get(root, "fruit"), "apple");
	assert_string_equal(get(apple, "color")->str.ptr, "red");
	assert_true(get(get(apple, "taste"), "sweet")->boolean);
	assert_true(get(get(apple, "texture"), "smooth")->boolean);
	assert_int_equal(get(get(root, "x"), "w")->integer, 1);
	fruits = get(root, "fruits");
	assert_int_equal(fruits->array.n, 2);
	assert_int_equal(get(fruits->array.items[0], "varieties")->array.n, 2);
	assert_string_equal(get(fruits->array.items[1], "name")->str.ptr, "banana");
	assert_null(toml_table_get(fruits->array.items[1], "physical"));
	assert_string_equal(get(get(get(get(root, "dog"), "tater.man"), "type"), "name")->str.ptr,
			    "pug");
	toml_free(root);
}

/* ---- Lookups ------------------------------------------------------------------------ */

static void test_lookups(void **state)
{
	struct toml_value *root = parse_ok("a = 1\n\"\" = 2\n\"k\\u0000x\" = 3\n[t]\nb = 'x'\n");
	const struct toml_value *t;
	const struct toml_kv *kv;

	(void)state;
	assert_int_equal(toml_table_get(root, "a")->integer, 1);
	assert_int_equal(toml_table_get(root, "")->integer, 2);
	assert_null(toml_table_get(root, "missing"));
	assert_null(toml_table_get(root, "A"));
	/* A key with an escaped NUL is not found by its prefix. */
	assert_null(toml_table_get(root, "k"));
	kv = &root->table.items[2];
	assert_int_equal(kv->keylen, 3);
	assert_memory_equal(kv->key, "k\0x", 4);

	t = toml_table_get(root, "t");
	assert_non_null(t);
	assert_string_equal(toml_table_get(t, "b")->str.ptr, "x");
	/* Lookups are not dotted paths, and need a table. */
	assert_null(toml_table_get(root, "t.b"));
	assert_null(toml_table_get(toml_table_get(root, "a"), "x"));
	assert_null(toml_table_find(NULL, "a"));
	assert_null(toml_table_get(NULL, "a"));
	toml_free(root);
	toml_free(NULL);
}

static void test_type_names(void **state)
{
	(void)state;
	assert_string_equal(toml_type_name(TOML_STRING), "string");
	assert_string_equal(toml_type_name(TOML_INTEGER), "integer");
	assert_string_equal(toml_type_name(TOML_FLOAT), "float");
	assert_string_equal(toml_type_name(TOML_BOOL), "boolean");
	assert_string_equal(toml_type_name(TOML_DATETIME), "offset date-time");
	assert_string_equal(toml_type_name(TOML_DATETIME_LOCAL), "local date-time");
	assert_string_equal(toml_type_name(TOML_DATE_LOCAL), "local date");
	assert_string_equal(toml_type_name(TOML_TIME_LOCAL), "local time");
	assert_string_equal(toml_type_name(TOML_ARRAY), "array");
	assert_string_equal(toml_type_name(TOML_TABLE), "table");
}

/* ---- Writers ------------------------------------------------------------------------ */

static void test_format_string(void **state)
{
	struct buf b;

	(void)state;
	buf_init(&b, 0);
	assert_int_equal(toml_format_string(&b, "plain", 5), 0);
	assert_string_equal(buf_str(&b), "\"plain\"");
	buf_reset(&b);
	assert_int_equal(toml_format_string(&b, "a\"b\\c\n\t\r\b\f\x01\x1f\x7f \xc3\xa9", 16), 0);
	assert_string_equal(buf_str(&b),
			    "\"a\\\"b\\\\c\\n\\t\\r\\b\\f\\u0001\\u001F\\u007F \xc3\xa9\"");
	buf_reset(&b);
	assert_int_equal(toml_format_string(&b, "a\0b", 3), 0);
	assert_string_equal(buf_str(&b), "\"a\\u0000b\"");
	buf_reset(&b);
	assert_int_equal(toml_format_string(&b, "", 0), 0);
	assert_string_equal(buf_str(&b), "\"\"");

	/* Invalid UTF-8 is refused and leaves the buffer as it was. */
	buf_reset(&b);
	assert_int_equal(buf_append_str(&b, "k = "), 0);
	assert_int_equal(toml_format_string(&b, "ok\xff", 3), -EINVAL);
	assert_int_equal(toml_format_string(&b, "\xed\xa0\x80", 3), -EINVAL);
	assert_int_equal(toml_format_string(&b, "\xc3", 1), -EINVAL);
	assert_string_equal(buf_str(&b), "k = ");
	assert_int_equal(b.len, 4);
	buf_free(&b);

	/* Past the buffer's maximum: -E2BIG, nothing appended. */
	buf_init(&b, 8);
	assert_int_equal(buf_append_str(&b, "x="), 0);
	assert_int_equal(toml_format_string(&b, "too long", 8), -E2BIG);
	assert_string_equal(buf_str(&b), "x=");
	buf_free(&b);
}

static void test_format_key(void **state)
{
	struct buf b;

	(void)state;
	buf_init(&b, 0);
	assert_int_equal(toml_format_key(&b, "Abc_def-09"), 0);
	assert_string_equal(buf_str(&b), "Abc_def-09");
	buf_reset(&b);
	assert_int_equal(toml_format_key(&b, "a.b"), 0);
	assert_string_equal(buf_str(&b), "\"a.b\"");
	buf_reset(&b);
	assert_int_equal(toml_format_key(&b, ""), 0);
	assert_string_equal(buf_str(&b), "\"\"");
	buf_reset(&b);
	assert_int_equal(toml_format_key(&b, "with space"), 0);
	assert_string_equal(buf_str(&b), "\"with space\"");
	buf_reset(&b);
	assert_int_equal(toml_format_key(&b, "\xc3\xa9t\xc3\xa9"), 0);
	assert_string_equal(buf_str(&b), "\"\xc3\xa9t\xc3\xa9\"");
	buf_reset(&b);
	assert_int_equal(toml_format_key(&b, "q\"\\"), 0);
	assert_string_equal(buf_str(&b), "\"q\\\"\\\\\"");
	buf_free(&b);
}

/* Whatever the writers produce parses back to the same bytes. */
static void test_format_round_trip(void **state)
{
	static const char *const samples[] = {
	    "",
	    "bare",
	    "a.b",
	    "with space",
	    "\"quoted\"",
	    "back\\slash",
	    "tab\tnl\ncr\r",
	    "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80",
	    "'single'",
	    "#not a comment",
	    "[x]",
	    "=",
	    "\xef\xbb\xbf\x62om", /* BOM then "bom" */
	};
	char all[128];
	struct buf doc;
	struct toml_value *root;
	struct err e = {0};

	(void)state;
	for (int c = 0; c < 128; c++)
		all[c] = (char)c;
	buf_init(&doc, 0);
	for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
		assert_int_equal(toml_format_key(&doc, samples[i]), 0);
		assert_int_equal(buf_append_str(&doc, " = "), 0);
		assert_int_equal(toml_format_string(&doc, samples[i], strlen(samples[i])), 0);
		assert_int_equal(buf_putc(&doc, '\n'), 0);
	}
	assert_int_equal(buf_append_str(&doc, "all = "), 0);
	assert_int_equal(toml_format_string(&doc, all, sizeof(all)), 0);
	assert_int_equal(buf_putc(&doc, '\n'), 0);

	assert_int_equal(toml_parse(doc.data, doc.len, "gen.toml", &root, &e), 0);
	assert_int_equal(root->table.n, sizeof(samples) / sizeof(samples[0]) + 1);
	for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
		const struct toml_value *v = toml_table_get(root, samples[i]);

		assert_non_null(v);
		assert_int_equal(v->str.len, strlen(samples[i]));
		assert_string_equal(v->str.ptr, samples[i]);
	}
	assert_int_equal(toml_table_get(root, "all")->str.len, sizeof(all));
	assert_memory_equal(toml_table_get(root, "all")->str.ptr, all, sizeof(all));
	toml_free(root);
	buf_free(&doc);
}

/* ---- Limits --------------------------------------------------------------------------- */

static void test_size_limit(void **state)
{
	size_t n = (size_t)TOML_MAX_DOCUMENT + 1;
	char *doc = malloc(n);
	struct toml_value *root = NULL;
	struct err e = {0};

	(void)state;
	assert_non_null(doc);
	/* A comment that fills the limit exactly parses... */
	memset(doc, 'x', n);
	doc[0] = '#';
	assert_int_equal(toml_parse(doc, n - 1, "big.toml", &root, &e), 0);
	assert_int_equal(root->table.n, 0);
	toml_free(root);
	/* ...one byte more does not. */
	root = NULL;
	assert_int_equal(toml_parse(doc, n, "big.toml", &root, &e), -E2BIG);
	assert_null(root);
	assert_int_equal(e.code, -E2BIG);
	assert_string_equal(e.msg,
			    "big.toml:1:4194305: document exceeds the limit of 4194304 bytes");
	free(doc);
}

static char *repeat(const char *head, const char *unit, size_t count, const char *tail)
{
	size_t hl = strlen(head), ul = strlen(unit), tl = strlen(tail);
	char *s = malloc(hl + ul * count + tl + 1), *p = s;

	assert_non_null(s);
	memcpy(p, head, hl);
	p += hl;
	for (size_t i = 0; i < count; i++, p += ul)
		memcpy(p, unit, ul);
	memcpy(p, tail, tl + 1);
	return s;
}

static void expect_parse(char *doc, int code, const char *msg)
{
	struct toml_value *root = NULL;
	struct err e = {0};
	int r = toml_parse(doc, strlen(doc), "deep.toml", &root, &e);

	if (r != code)
		print_error("parse returned %d (%s)\n", r, e.msg);
	assert_int_equal(r, code);
	if (msg)
		assert_string_equal(e.msg, msg);
	toml_free(root);
	free(doc);
}

static void test_depth_limit(void **state)
{
	char *a, *b;

	(void)state;
	/* 128 nested arrays under the root table are fine, 129 are not. */
	a = repeat("a = ", "[", 128, "");
	b = repeat(a, "]", 128, "\n");
	free(a);
	expect_parse(b, 0, NULL);
	a = repeat("a = ", "[", 129, "");
	b = repeat(a, "]", 129, "\n");
	free(a);
	expect_parse(b, -EINVAL, "deep.toml:1:133: nesting deeper than 128 levels");

	/* The same for inline tables, headers and dotted keys, and any mix. */
	expect_parse(repeat("a = ", "{b = ", 129, ""), -EINVAL,
		     "deep.toml:1:645: nesting deeper than 128 levels");
	expect_parse(repeat("[a", ".a", 127, "]\n"), 0, NULL);
	expect_parse(repeat("[a", ".a", 128, "]\n"), -EINVAL,
		     "deep.toml:1:258: nesting deeper than 128 levels");
	expect_parse(repeat("a", ".a", 128, " = 1\n"), 0, NULL);
	expect_parse(repeat("a", ".a", 128, " = []\n"), -EINVAL,
		     "deep.toml:1:261: nesting deeper than 128 levels");
	expect_parse(repeat("a", ".a", 129, " = 1\n"), -EINVAL,
		     "deep.toml:1:259: nesting deeper than 128 levels");
	expect_parse(repeat("[[a", ".a", 126, "]]\n"), 0, NULL);
	expect_parse(repeat("[[a", ".a", 127, "]]\n"), -EINVAL,
		     "deep.toml:1:257: nesting deeper than 128 levels");
	a = repeat("[a", ".a", 99, "]\n");
	expect_parse(repeat(a, "b.", 28, "c = [1]\n"), -EINVAL,
		     "deep.toml:2:61: nesting deeper than 128 levels");
	free(a);

	/* Hostile input fails fast instead of exhausting the stack. */
	expect_parse(repeat("a = ", "[", 1000000, ""), -EINVAL,
		     "deep.toml:1:133: nesting deeper than 128 levels");
	expect_parse(repeat("a = ", "{b=", 1000000, ""), -EINVAL,
		     "deep.toml:1:389: nesting deeper than 128 levels");
	expect_parse(repeat("", "a.", 1000000, "a = 1\n"), -EINVAL,
		     "deep.toml:1:259: nesting deeper than 128 levels");
}

/* Lookups use an index: 100 000 keys parse and are found without a
 * quadratic search (this test would take minutes otherwise). */
static void test_large_table(void **state)
{
	enum { N = 100000 };
	struct toml_value *root;
	const struct toml_value *t;
	struct err e = {0};
	struct buf doc;
	char key[32];

	(void)state;
	buf_init(&doc, TOML_MAX_DOCUMENT);
	assert_int_equal(buf_append_str(&doc, "[big]\n"), 0);
	for (int i = 0; i < N; i++)
		assert_int_equal(buf_printf(&doc, "key%d = %d\n", i, i * 3), 0);
	assert_int_equal(toml_parse(doc.data, doc.len, "big.toml", &root, &e), 0);
	t = toml_table_get(root, "big");
	assert_non_null(t);
	assert_int_equal(t->table.n, N);
	for (int i = 0; i < N; i++) {
		const struct toml_kv *kv;

		snprintf(key, sizeof(key), "key%d", i);
		kv = toml_table_find(t, key);
		assert_non_null(kv);
		assert_int_equal(kv->value->integer, i * 3);
		assert_int_equal(kv->key_pos.line, i + 2);
		assert_ptr_equal(kv, &t->table.items[i]);
	}
	assert_null(toml_table_find(t, "key100000"));

	/* A duplicate at the end is still found. */
	assert_int_equal(buf_append_str(&doc, "key77777 = 0\n"), 0);
	toml_free(root);
	root = NULL;
	err_clear(&e);
	assert_int_equal(toml_parse(doc.data, doc.len, "big.toml", &root, &e), -EINVAL);
	assert_string_equal(e.msg, "big.toml:100002:1: key \"key77777\" is defined twice (first at "
				   "line 77779)");
	buf_free(&doc);
}

/* ---- Files ------------------------------------------------------------------------------ */

static void test_parse_file(void **state)
{
	char path[] = "/tmp/test_toml_XXXXXX";
	static const char text[] = "[a]\nb = \"c\"\nd = ?\n";
	struct toml_value *root = NULL;
	struct err e = {0};
	int fd;

	(void)state;
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	assert_int_equal(toml_parse_file(path, &root, &e), -EINVAL);
	assert_null(root);
	/* Messages name the file as given. */
	assert_memory_equal(e.msg, path, strlen(path));
	assert_string_equal(e.msg + strlen(path), ":3:5: expected a value, got '?'");

	fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "x = 1\n", 6), 6);
	close(fd);
	err_clear(&e);
	assert_int_equal(toml_parse_file(path, &root, &e), 0);
	assert_int_equal(toml_table_get(root, "x")->integer, 1);
	toml_free(root);
	unlink(path);

	err_clear(&e);
	assert_int_equal(toml_parse_file("/nonexistent/edgeid.toml", &root, &e), -ENOENT);
	assert_null(root);
	assert_string_equal(e.msg,
			    "/nonexistent/edgeid.toml: cannot read: No such file or directory");
}

/* toml_describe: what error messages show after "got". */
static void test_describe(void **state)
{
	struct toml_value *root = parse_ok("s = \"a\\\"b\\\\c\\u0001\"\n"
					   "i = -42\nf = 1.5\nb = false\n"
					   "d = 1979-05-27T07:32:00Z\nt = 07:32:00\n"
					   "a = [1]\nn = {x = 1}\n");
	char out[256], long_s[400];

	(void)state;
	toml_describe(toml_table_get(root, "s"), out, sizeof(out));
	assert_string_equal(out, "\"a\\\"b\\\\c?\"");
	toml_describe(toml_table_get(root, "i"), out, sizeof(out));
	assert_string_equal(out, "-42");
	toml_describe(toml_table_get(root, "f"), out, sizeof(out));
	assert_string_equal(out, "1.5");
	toml_describe(toml_table_get(root, "b"), out, sizeof(out));
	assert_string_equal(out, "false");
	toml_describe(toml_table_get(root, "d"), out, sizeof(out));
	assert_string_equal(out, "offset date-time 1979-05-27T07:32:00Z");
	toml_describe(toml_table_get(root, "t"), out, sizeof(out));
	assert_string_equal(out, "local time 07:32:00");
	toml_describe(toml_table_get(root, "a"), out, sizeof(out));
	assert_string_equal(out, "an array");
	toml_describe(toml_table_get(root, "n"), out, sizeof(out));
	assert_string_equal(out, "a table");

	/* Long strings are cut, and say so; a small out is still terminated. */
	memset(long_s, 'x', sizeof(long_s));
	toml_describe_string(long_s, sizeof(long_s), out, sizeof(out));
	assert_int_equal(strlen(out), 1 + 152 + 3 + 1);
	assert_string_equal(out + strlen(out) - 4, "...\"");
	toml_describe_string("abcdef", 6, out, 4);
	assert_string_equal(out, "\"ab");
	toml_free(root);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_errors_syntax),
	    cmocka_unit_test(test_errors_columns),
	    cmocka_unit_test(test_errors_strings),
	    cmocka_unit_test(test_errors_encoding),
	    cmocka_unit_test(test_errors_numbers),
	    cmocka_unit_test(test_errors_datetimes),
	    cmocka_unit_test(test_errors_tables),
	    cmocka_unit_test(test_error_without_err),
	    cmocka_unit_test(test_input_not_terminated),
	    cmocka_unit_test(test_positions),
	    cmocka_unit_test(test_positions_bom_crlf),
	    cmocka_unit_test(test_positions_implicit_then_defined),
	    cmocka_unit_test(test_values),
	    cmocka_unit_test(test_tables_allowed),
	    cmocka_unit_test(test_lookups),
	    cmocka_unit_test(test_type_names),
	    cmocka_unit_test(test_format_string),
	    cmocka_unit_test(test_format_key),
	    cmocka_unit_test(test_format_round_trip),
	    cmocka_unit_test(test_size_limit),
	    cmocka_unit_test(test_depth_limit),
	    cmocka_unit_test(test_large_table),
	    cmocka_unit_test(test_parse_file),
	    cmocka_unit_test(test_describe),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
