/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/json.h"

static const char dps_doc[] =
    "{\n"
    "  \"operationId\": \"4.abc\",\n"
    "  \"status\": \"assigned\",\n"
    "  \"retry\": 3,\n"
    "  \"ratio\": 1.5,\n"
    "  \"edge\": true,\n"
    "  \"gone\": null,\n"
    "  \"registrationState\": {\n"
    "    \"assignedHub\": 42,\n"
    "    \"deviceId\": \"dev1\",\n"
    "    \"payload\": null\n"
    "  },\n"
    "  \"items\": [{\"id\": \"a\"}, {\"id\": \"b\"}, {\"id\": \"c\", \"n\": -7}],\n"
    "  \"dots.key\": 1\n"
    "}";

static json_t *parse_ok(const char *text)
{
	struct err e = {0};
	json_t *j = NULL;

	assert_int_equal(json_parse(text, strlen(text), 0, &j, &e), 0);
	assert_string_equal(e.msg, "");
	assert_non_null(j);
	return j;
}

static void expect_parse_error(const char *text, size_t len, size_t depth, int code,
			       const char *msg)
{
	struct err e = {0};
	json_t *j = NULL;

	assert_int_equal(json_parse(text, len, depth, &j, &e), code);
	assert_null(j);
	assert_string_equal(e.msg, msg);
}

static void test_parse_and_dump(void **state)
{
	_cleanup_json_ json_t *j =
	    parse_ok(" {\"b\": [1, 2.5, \"x\"], \"a\": {\"c\": null}, \"t\": true} ");
	_cleanup_free_ char *out = json_dump_compact(j);

	assert_string_equal(out, "{\"b\":[1,2.5,\"x\"],\"a\":{\"c\":null},\"t\":true}");
	assert_null(json_dump_compact(NULL));
}

static void test_parse_any_top_level_value(void **state)
{
	_cleanup_json_ json_t *s = parse_ok("\"text\"");
	_cleanup_json_ json_t *n = parse_ok("17");

	assert_string_equal(json_string_value(s), "text");
	assert_int_equal(json_integer_value(n), 17);
}

static void test_parse_invalid_with_position(void **state)
{
	expect_parse_error("{\"a\":1,}", 8, 0, -EBADMSG,
			   "invalid JSON at 1:8: string or '}' expected near '}'");
	expect_parse_error("\n  [1,\n  2,,]", 13, 0, -EBADMSG,
			   "invalid JSON at 3:5: unexpected token near ','");
	expect_parse_error("{\"a\":1} x", 9, 0, -EBADMSG,
			   "invalid JSON at 1:9: end of file expected near 'x'");
	expect_parse_error("", 0, 0, -EBADMSG, "invalid JSON: empty document");
	expect_parse_error(NULL, 0, 0, -EBADMSG, "invalid JSON: empty document");
	expect_parse_error("99999999999999999999", 20, 0, -EBADMSG,
			   "invalid JSON at 1:20: too big integer near '99999999999999999999'");
}

static void test_parse_uses_len_not_nul(void **state)
{
	/* Only the first 7 bytes are the document. */
	_cleanup_json_ json_t *j = NULL;
	struct err e = {0};

	assert_int_equal(json_parse("{\"a\":1}garbage", 7, 0, &j, &e), 0);
	assert_int_equal(json_integer_value(json_object_get(j, "a")), 1);
}

static void test_parse_rejects_duplicate_keys(void **state)
{
	const char *t = "{\"a\":1,\"b\":{\"a\":2,\"a\":3}}";

	expect_parse_error(t, strlen(t), 0, -EBADMSG,
			   "invalid JSON at 1:21: duplicate object key near '\"a\"'");
}

static void test_parse_rejects_nul(void **state)
{
	static const char raw[] = "{\"a\":\"x\0y\"}";
	const char *esc = "{\"a\":\"x\\u0000y\"}";

	expect_parse_error(esc, strlen(esc), 0, -EBADMSG,
			   "invalid JSON at 1:15: NUL character (\\u0000) in a string");
	expect_parse_error(raw, sizeof(raw) - 1, 0, -EBADMSG,
			   "invalid JSON at 1:7: control character 0x0 near '\"x'");
}

static char *nested(size_t depth)
{
	char *s = malloc(2 * depth + 1);

	assert_non_null(s);
	memset(s, '[', depth);
	memset(s + depth, ']', depth);
	s[2 * depth] = '\0';
	return s;
}

static void test_parse_depth_limit(void **state)
{
	_cleanup_free_ char *d32 = nested(32), *d33 = nested(33), *d4 = nested(4);
	_cleanup_json_ json_t *j = NULL, *k = NULL, *m = NULL;
	const char *strings = "[\"[[[[{{{{\", {\"k[\": \"\\\"[[[[\"}]";
	const char *deep_lines = "{\n \"a\": {\"b\": [\n  [1]]}}";
	struct err e = {0};

	/* Default limit: 32 containers deep. */
	assert_int_equal(json_parse(d32, strlen(d32), 0, &j, &e), 0);
	expect_parse_error(d33, strlen(d33), 0, -EBADMSG,
			   "invalid JSON at 1:33: nested deeper than 32 levels");

	/* Caller's limit; the position is the first bracket too many. */
	expect_parse_error(d4, strlen(d4), 3, -EBADMSG,
			   "invalid JSON at 1:4: nested deeper than 3 levels");
	expect_parse_error(deep_lines, strlen(deep_lines), 3, -EBADMSG,
			   "invalid JSON at 3:3: nested deeper than 3 levels");
	assert_int_equal(json_parse(d4, strlen(d4), 4, &k, &e), 0);

	/* Brackets inside strings, escaped quotes included, do not count. */
	assert_int_equal(json_parse(strings, strlen(strings), 2, &m, &e), 0);
	assert_string_equal(e.msg, "");
}

static void test_parse_size_cap(void **state)
{
	size_t n = JSON_MAX_BYTES + 1;
	_cleanup_free_ char *big = malloc(n);
	struct err e = {0};
	json_t *j = NULL;

	assert_non_null(big);
	memset(big, ' ', n);
	big[0] = '1';
	assert_int_equal(json_parse(big, n, 0, &j, &e), -E2BIG);
	assert_null(j);
	assert_string_equal(e.msg, "JSON document too large: 4194305 bytes, at most 4194304");

	/* Exactly the cap is fine. */
	assert_int_equal(json_parse(big, n - 1, 0, &j, &e), 0);
	assert_int_equal(json_integer_value(j), 1);
	json_decref(j);
}

static void test_get_string(void **state)
{
	_cleanup_json_ json_t *j = parse_ok(dps_doc);
	const char *s = NULL;
	struct err e = {0};

	assert_int_equal(json_get_string(j, "status", &s, &e), 0);
	assert_string_equal(s, "assigned");
	assert_int_equal(json_get_string(j, "registrationState.deviceId", &s, &e), 0);
	assert_string_equal(s, "dev1");
	assert_int_equal(json_get_string(j, "items[2].id", &s, &e), 0);
	assert_string_equal(s, "c");
	assert_string_equal(e.msg, "");
}

static void expect_string_error(const json_t *j, const char *path, int code, const char *msg)
{
	const char *s = "untouched";
	struct err e = {0};

	assert_int_equal(json_get_string(j, path, &s, &e), code);
	assert_string_equal(e.msg, msg);
	assert_int_equal(e.code, code);
	assert_string_equal(s, "untouched");
}

static void test_path_errors(void **state)
{
	_cleanup_json_ json_t *j = parse_ok(dps_doc);

	expect_string_error(j, "registrationState.assignedHub", -EBADMSG,
			    "registrationState.assignedHub: expected a string, got a number");
	expect_string_error(j, "registrationState.hub", -ENOENT, "registrationState.hub: missing");
	expect_string_error(j, "registration.assignedHub", -ENOENT, "registration: missing");
	expect_string_error(j, "status.code", -EBADMSG, "status: expected an object, got a string");
	expect_string_error(j, "items[3].id", -ENOENT, "items[3]: missing");
	expect_string_error(j, "items[1].name", -ENOENT, "items[1].name: missing");
	expect_string_error(j, "items.id", -EBADMSG, "items: expected an object, got an array");
	expect_string_error(j, "status[0]", -EBADMSG, "status: expected an array, got a string");
	expect_string_error(j, "items[2].n", -EBADMSG,
			    "items[2].n: expected a string, got a number");
	expect_string_error(j, "items[0]", -EBADMSG, "items[0]: expected a string, got an object");
	expect_string_error(j, "gone", -EBADMSG, "gone: expected a string, got null");
	expect_string_error(j, "edge", -EBADMSG, "edge: expected a string, got a boolean");
	expect_string_error(j, "gone.x", -EBADMSG, "gone: expected an object, got null");
	expect_string_error(j, "[0]", -EBADMSG, "JSON document: expected an array, got an object");
	/* Keys with a dot are not addressable by path. */
	expect_string_error(j, "dots.key", -ENOENT, "dots: missing");
}

static void test_root_array_path(void **state)
{
	_cleanup_json_ json_t *j = parse_ok("[{\"id\":\"x\"}, [\"y\", [\"z\"]]]");
	const char *s = NULL;
	struct err e = {0};

	assert_int_equal(json_get_string(j, "[0].id", &s, &e), 0);
	assert_string_equal(s, "x");
	assert_int_equal(json_get_string(j, "[1][1][0]", &s, &e), 0);
	assert_string_equal(s, "z");
	expect_string_error(j, "id", -EBADMSG, "JSON document: expected an object, got an array");
	expect_string_error(j, "[1][2][0]", -ENOENT, "[1][2]: missing");
	expect_string_error(j, "[1][0][0]", -EBADMSG, "[1][0]: expected an array, got a string");
}

static void test_malformed_paths(void **state)
{
	static const char *const bad[] = {"",     "a..b", "a.",    ".a",  "a[",    "a[]",
					  "a[x]", "a[1",  "a[-1]", "a]b", "a[1]b", "[0]."};
	_cleanup_json_ json_t *j = parse_ok("{\"a\": [1]}");

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct err e = {0};
		char want[64];
		const char *s;

		snprintf(want, sizeof(want), "invalid JSON path \"%s\"", bad[i]);
		assert_int_equal(json_get_string(j, bad[i], &s, &e), -EINVAL);
		assert_string_equal(e.msg, want);
	}
	{
		struct err e = {0};
		const char *s;

		assert_int_equal(json_get_string_opt(NULL, "a", &s, &e), -EINVAL);
		assert_string_equal(e.msg, "no JSON document");
	}
}

static void test_get_int(void **state)
{
	_cleanup_json_ json_t *j =
	    parse_ok("{\"n\": 3, \"neg\": -7, \"max\": 9223372036854775807,"
		     " \"min\": -9223372036854775808, \"r\": 1.5, \"e\": 1e3, \"s\": \"5\"}");
	int64_t v = 0;
	struct err e = {0};

	assert_int_equal(json_get_int(j, "n", 0, 10, &v, &e), 0);
	assert_int_equal(v, 3);
	assert_int_equal(json_get_int(j, "neg", -7, -7, &v, &e), 0);
	assert_int_equal(v, -7);
	assert_int_equal(json_get_int(j, "max", INT64_MIN, INT64_MAX, &v, &e), 0);
	assert_true(v == INT64_MAX);
	assert_int_equal(json_get_int(j, "min", INT64_MIN, INT64_MAX, &v, &e), 0);
	assert_true(v == INT64_MIN);
	assert_string_equal(e.msg, "");

	v = 99;
	assert_int_equal(json_get_int(j, "n", 4, 10, &v, &e), -ERANGE);
	assert_string_equal(e.msg, "n: expected an integer from 4 to 10, got 3");
	assert_int_equal(v, 99);

	err_clear(&e);
	assert_int_equal(json_get_int(j, "r", 0, 10, &v, &e), -EBADMSG);
	assert_string_equal(e.msg, "r: expected an integer, got 1.5");
	err_clear(&e);
	assert_int_equal(json_get_int(j, "e", 0, 10000, &v, &e), -EBADMSG);
	assert_string_equal(e.msg, "e: expected an integer, got 1000");
	err_clear(&e);
	assert_int_equal(json_get_int(j, "s", 0, 10, &v, &e), -EBADMSG);
	assert_string_equal(e.msg, "s: expected an integer, got a string");
	err_clear(&e);
	assert_int_equal(json_get_int(j, "x", 0, 10, &v, &e), -ENOENT);
	assert_string_equal(e.msg, "x: missing");
	assert_int_equal(v, 99);
}

static void test_get_bool(void **state)
{
	_cleanup_json_ json_t *j = parse_ok("{\"t\": true, \"f\": false, \"n\": 0}");
	bool b = false;
	struct err e = {0};

	assert_int_equal(json_get_bool(j, "t", &b, &e), 0);
	assert_true(b);
	assert_int_equal(json_get_bool(j, "f", &b, &e), 0);
	assert_false(b);
	assert_int_equal(json_get_bool(j, "n", &b, &e), -EBADMSG);
	assert_string_equal(e.msg, "n: expected a boolean, got a number");
}

static void test_get_object_array_value(void **state)
{
	_cleanup_json_ json_t *j = parse_ok(dps_doc);
	json_t *o = NULL, *a = NULL, *v = NULL;
	struct err e = {0};

	assert_int_equal(json_get_object(j, "registrationState", &o, &e), 0);
	assert_ptr_equal(o, json_object_get(j, "registrationState"));
	assert_int_equal(json_get_array(j, "items", &a, &e), 0);
	assert_int_equal(json_array_size(a), 3);
	assert_int_equal(json_get_object(j, "items[1]", &o, &e), 0);
	assert_ptr_equal(o, json_array_get(a, 1));
	assert_int_equal(json_get_value(j, "gone", &v, &e), 0);
	assert_true(json_is_null(v));
	assert_int_equal(json_get_value(j, "ratio", &v, &e), 0);
	assert_true(json_is_real(v));
	assert_string_equal(e.msg, "");

	assert_int_equal(json_get_object(j, "items", &o, &e), -EBADMSG);
	assert_string_equal(e.msg, "items: expected an object, got an array");
	err_clear(&e);
	assert_int_equal(json_get_array(j, "registrationState", &a, &e), -EBADMSG);
	assert_string_equal(e.msg, "registrationState: expected an array, got an object");
	err_clear(&e);
	assert_int_equal(json_get_value(j, "nothing", &v, &e), -ENOENT);
	assert_string_equal(e.msg, "nothing: missing");
}

static void test_optional(void **state)
{
	_cleanup_json_ json_t *j = parse_ok(dps_doc);
	const char *s = "untouched";
	json_t *o = (json_t *)1, *a = (json_t *)1;
	int64_t v = 0;
	bool b = false;
	struct err e = {0};

	/* Absent, absent parent, null, null parent: all "not present". */
	assert_int_equal(json_get_string_opt(j, "registrationState.etag", &s, &e), 0);
	assert_null(s);
	s = "untouched";
	assert_int_equal(json_get_string_opt(j, "nothing.etag", &s, &e), 0);
	assert_null(s);
	s = "untouched";
	assert_int_equal(json_get_string_opt(j, "gone", &s, &e), 0);
	assert_null(s);
	s = "untouched";
	assert_int_equal(json_get_string_opt(j, "registrationState.payload.x", &s, &e), 0);
	assert_null(s);
	s = "untouched";
	assert_int_equal(json_get_string_opt(j, "items[7].id", &s, &e), 0);
	assert_null(s);
	assert_int_equal(json_get_int_opt(j, "timeout", 0, 100, 30, &v, &e), 0);
	assert_int_equal(v, 30);
	assert_int_equal(json_get_bool_opt(j, "gone", true, &b, &e), 0);
	assert_true(b);
	assert_int_equal(json_get_object_opt(j, "registrationState.payload", &o, &e), 0);
	assert_null(o);
	assert_int_equal(json_get_array_opt(j, "list", &a, &e), 0);
	assert_null(a);
	assert_string_equal(e.msg, "");

	/* Present values are returned and checked like the strict forms. */
	assert_int_equal(json_get_string_opt(j, "status", &s, &e), 0);
	assert_string_equal(s, "assigned");
	assert_int_equal(json_get_int_opt(j, "retry", 0, 100, 30, &v, &e), 0);
	assert_int_equal(v, 3);
	assert_int_equal(json_get_bool_opt(j, "edge", false, &b, &e), 0);
	assert_true(b);
	assert_int_equal(json_get_object_opt(j, "registrationState", &o, &e), 0);
	assert_non_null(o);
	assert_int_equal(json_get_array_opt(j, "items", &a, &e), 0);
	assert_int_equal(json_array_size(a), 3);

	assert_int_equal(json_get_string_opt(j, "registrationState.assignedHub", &s, &e), -EBADMSG);
	assert_string_equal(e.msg,
			    "registrationState.assignedHub: expected a string, got a number");
	err_clear(&e);
	assert_int_equal(json_get_string_opt(j, "status.code", &s, &e), -EBADMSG);
	assert_string_equal(e.msg, "status: expected an object, got a string");
	err_clear(&e);
	assert_int_equal(json_get_int_opt(j, "retry", 5, 100, 30, &v, &e), -ERANGE);
	assert_string_equal(e.msg, "retry: expected an integer from 5 to 100, got 3");
	err_clear(&e);
	assert_int_equal(json_get_bool_opt(j, "retry", false, &b, &e), -EBADMSG);
	assert_string_equal(e.msg, "retry: expected a boolean, got a number");
}

static void test_built_string_with_nul(void **state)
{
	_cleanup_json_ json_t *j = json_object();
	const char *s = NULL;
	struct err e = {0};

	assert_int_equal(json_object_set_new(j, "k", json_stringn("a\0b", 3)), 0);
	assert_int_equal(json_get_string(j, "k", &s, &e), -EBADMSG);
	assert_string_equal(e.msg, "k: string contains a NUL character");
}

static void test_type_phrase(void **state)
{
	_cleanup_json_ json_t *j = parse_ok("[{}, [], \"\", 1, 1.0, true, false, null]");
	static const char *const want[] = {"an object", "an array",  "a string",  "a number",
					   "a number",  "a boolean", "a boolean", "null"};

	for (size_t i = 0; i < 8; i++)
		assert_string_equal(json_type_phrase(json_array_get(j, i)), want[i]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_and_dump),
	    cmocka_unit_test(test_parse_any_top_level_value),
	    cmocka_unit_test(test_parse_invalid_with_position),
	    cmocka_unit_test(test_parse_uses_len_not_nul),
	    cmocka_unit_test(test_parse_rejects_duplicate_keys),
	    cmocka_unit_test(test_parse_rejects_nul),
	    cmocka_unit_test(test_parse_depth_limit),
	    cmocka_unit_test(test_parse_size_cap),
	    cmocka_unit_test(test_get_string),
	    cmocka_unit_test(test_path_errors),
	    cmocka_unit_test(test_root_array_path),
	    cmocka_unit_test(test_malformed_paths),
	    cmocka_unit_test(test_get_int),
	    cmocka_unit_test(test_get_bool),
	    cmocka_unit_test(test_get_object_array_value),
	    cmocka_unit_test(test_optional),
	    cmocka_unit_test(test_built_string_with_nul),
	    cmocka_unit_test(test_type_phrase),
	};

	return cmocka_run_group_tests_name("json", tests, NULL, NULL);
}
