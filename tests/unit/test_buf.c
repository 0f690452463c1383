/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/buf.h"

static void test_init_is_empty(void **state)
{
	_cleanup_buf_ struct buf b = {0};

	(void)state;
	buf_init(&b, 0);
	assert_null(b.data); /* nothing allocated yet */
	assert_int_equal(b.len, 0);
	assert_int_equal(b.max, BUF_MAX_DEFAULT);
	assert_false(b.secret);
	assert_string_equal(buf_str(&b), "");
	buf_init(&b, 7);
	assert_int_equal(b.max, 7);
	/* A zeroed buffer can be freed. */
	buf_free(&b);
	buf_free(NULL);
}

static void test_growth(void **state)
{
	_cleanup_buf_ struct buf b = {0};
	char big[5000];

	(void)state;
	buf_init(&b, 0);
	for (int i = 0; i < 10000; i++)
		assert_int_equal(buf_putc(&b, (char)('a' + i % 26)), 0);
	assert_int_equal(b.len, 10000);
	assert_true(b.cap >= b.len + 1);
	assert_int_equal(b.data[10000], '\0');
	for (int i = 0; i < 10000; i++)
		assert_int_equal(b.data[i], 'a' + i % 26);

	memset(big, 'Z', sizeof(big));
	assert_int_equal(buf_append(&b, big, sizeof(big)), 0);
	assert_int_equal(b.len, 15000);
	assert_memory_equal(b.data + 10000, big, sizeof(big));
	assert_int_equal(strlen(buf_str(&b)), 15000);
	/* Appending nothing is fine, also from NULL. */
	assert_int_equal(buf_append(&b, NULL, 0), 0);
	assert_int_equal(b.len, 15000);

	/* Embedded NULs are content; len counts them. */
	buf_reset(&b);
	assert_int_equal(buf_append(&b, "a\0b", 3), 0);
	assert_int_equal(b.len, 3);
	assert_memory_equal(b.data, "a\0b\0", 4);
}

static void test_max_leaves_content_unchanged(void **state)
{
	_cleanup_buf_ struct buf b = {0};
	static const char byte = 'x';

	(void)state;
	buf_init(&b, 10);
	assert_int_equal(buf_append_str(&b, "12345678"), 0);
	assert_int_equal(buf_append_str(&b, "abc"), -E2BIG);
	assert_int_equal(b.len, 8);
	assert_string_equal(buf_str(&b), "12345678");
	assert_int_equal(buf_printf(&b, "%d", 123), -E2BIG);
	assert_string_equal(buf_str(&b), "12345678");
	/* Exactly the maximum. */
	assert_int_equal(buf_append_str(&b, "9A"), 0);
	assert_string_equal(buf_str(&b), "123456789A");
	assert_int_equal(buf_putc(&b, 'B'), -E2BIG);
	assert_int_equal(buf_append(&b, NULL, 0), 0);
	assert_string_equal(buf_str(&b), "123456789A");
	/* Sizes that would overflow a naive len + n check. */
	assert_int_equal(buf_append(&b, &byte, SIZE_MAX), -E2BIG);
	assert_int_equal(buf_append(&b, &byte, SIZE_MAX - 5), -E2BIG);
	assert_int_equal(b.len, 10);

	/* The default maximum, to the byte. */
	buf_free(&b);
	buf_init(&b, 0);
	{
		_cleanup_free_ char *mb = calloc(1, BUF_MAX_DEFAULT);

		assert_non_null(mb);
		assert_int_equal(buf_append(&b, mb, BUF_MAX_DEFAULT), 0);
		assert_int_equal(buf_putc(&b, 'x'), -E2BIG);
		assert_int_equal(b.len, BUF_MAX_DEFAULT);
		assert_true(b.cap <= BUF_MAX_DEFAULT + 1);
	}

	/* SIZE_MAX as "no real limit" still refuses impossible sizes. */
	buf_free(&b);
	buf_init(&b, SIZE_MAX);
	assert_int_equal(buf_append_str(&b, "ok"), 0);
	assert_int_equal(buf_append(&b, &byte, SIZE_MAX - 1), -E2BIG);
	assert_string_equal(buf_str(&b), "ok");
}

static void test_printf(void **state)
{
	_cleanup_buf_ struct buf b = {0};
	char expect[400];

	(void)state;
	buf_init(&b, 0);
	assert_int_equal(buf_printf(&b, "%s", ""), 0);
	assert_string_equal(buf_str(&b), "");
	assert_int_equal(buf_printf(&b, "%s=%d", "port", 8443), 0);
	assert_int_equal(buf_printf(&b, ";%05x", 0xbeef), 0);
	assert_string_equal(buf_str(&b), "port=8443;0beef");
	assert_int_equal(b.len, 15);
	/* Longer than the first allocation. */
	assert_int_equal(buf_printf(&b, "%300s", "end"), 0);
	assert_int_equal(b.len, 315);
	snprintf(expect, sizeof(expect), "port=8443;0beef%300s", "end");
	assert_string_equal(buf_str(&b), expect);

	buf_free(&b);
	buf_init(&b, 5);
	assert_int_equal(buf_printf(&b, "%05d", 42), 0);
	assert_string_equal(buf_str(&b), "00042");
	assert_int_equal(buf_printf(&b, "%c", 'x'), -E2BIG);
	assert_string_equal(buf_str(&b), "00042");
}

static void test_steal(void **state)
{
	_cleanup_buf_ struct buf b = {0};
	_cleanup_free_ char *s = NULL, *empty = NULL;
	size_t len = 99;

	(void)state;
	buf_init(&b, 100);
	/* Never allocated: still a string the caller can free. */
	empty = buf_steal(&b, &len);
	assert_non_null(empty);
	assert_string_equal(empty, "");
	assert_int_equal(len, 0);

	assert_int_equal(buf_append_str(&b, "hello"), 0);
	s = buf_steal(&b, &len);
	assert_string_equal(s, "hello");
	assert_int_equal(len, 5);
	/* b is empty, keeps its maximum, and can be used again. */
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	assert_string_equal(buf_str(&b), "");
	assert_int_equal(b.max, 100);
	assert_int_equal(buf_append_str(&b, "again"), 0);
	assert_string_equal(buf_str(&b), "again");
	assert_ptr_not_equal(b.data, s);
}

static void test_secret(void **state)
{
	_cleanup_buf_ struct buf b = {0};
	char key[200];

	(void)state;
	buf_init_secret(&b, 0);
	assert_true(b.secret);
	for (size_t i = 0; i < sizeof(key); i++)
		key[i] = (char)(i + 1);
	/* Growth through several reallocations keeps the content. */
	for (int i = 0; i < 20; i++)
		assert_int_equal(buf_append(&b, key, sizeof(key)), 0);
	assert_int_equal(b.len, 20 * sizeof(key));
	for (int i = 0; i < 20; i++)
		assert_memory_equal(b.data + i * sizeof(key), key, sizeof(key));
	assert_int_equal(buf_printf(&b, "%s", "tail"), 0);
	assert_string_equal(b.data + b.len - 4, "tail");

	/* Reset wipes all of the memory it keeps. */
	{
		char *p = b.data;
		size_t cap = b.cap;

		buf_reset(&b);
		assert_ptr_equal(b.data, p);
		assert_int_equal(b.len, 0);
		for (size_t i = 0; i < cap; i++)
			assert_int_equal(p[i], 0);
	}
	assert_int_equal(buf_append_str(&b, "k2"), 0);
	assert_string_equal(buf_str(&b), "k2");

	/* A plain buffer only forgets. */
	{
		_cleanup_buf_ struct buf plain = {0};

		buf_init(&plain, 0);
		assert_int_equal(buf_append_str(&plain, "abc"), 0);
		buf_reset(&plain);
		assert_false(plain.secret);
		assert_int_equal(plain.len, 0);
		assert_string_equal(buf_str(&plain), "");
	}
}

static void test_cursor_readers(void **state)
{
	static const uint8_t msg[] = {
	    0x7f,                                           /* u8 */
	    0x12, 0x34,                                     /* u16 */
	    0xde, 0xad, 0xbe, 0xef,                         /* u32 */
	    0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, /* u64 */
	    0x00, 0x03, 'a',  'b',  'c',                    /* sized16 */
	    0x00, 0x00,                                     /* empty sized16 */
	    0xaa, 0xbb,                                     /* skipped */
	    'x',  'y',                                      /* bytes */
	};
	struct cursor c = cursor_make(msg, sizeof(msg));
	const uint8_t *p;
	uint16_t u16, n;
	uint32_t u32;
	uint64_t u64;
	uint8_t u8;

	(void)state;
	assert_int_equal(cursor_get_u8(&c, &u8), 0);
	assert_int_equal(u8, 0x7f);
	assert_int_equal(cursor_get_u16be(&c, &u16), 0);
	assert_int_equal(u16, 0x1234);
	assert_int_equal(cursor_get_u32be(&c, &u32), 0);
	assert_int_equal(u32, 0xdeadbeef);
	assert_int_equal(cursor_get_u64be(&c, &u64), 0);
	assert_true(u64 == UINT64_C(0x0102030405060708));
	assert_int_equal(cursor_expect_end(&c), -EBADMSG);
	assert_int_equal(cursor_get_sized16(&c, &p, &n), 0);
	assert_int_equal(n, 3);
	assert_memory_equal(p, "abc", 3);
	assert_ptr_equal(p, msg + 17);
	assert_int_equal(cursor_get_sized16(&c, &p, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(cursor_skip(&c, 2), 0);
	assert_int_equal(cursor_get_bytes(&c, 2, &p), 0);
	assert_memory_equal(p, "xy", 2);
	assert_int_equal(c.left, 0);
	assert_int_equal(cursor_expect_end(&c), 0);
	/* Zero bytes from an empty cursor, even one over NULL. */
	assert_int_equal(cursor_get_bytes(&c, 0, &p), 0);
	c = cursor_make(NULL, 0);
	assert_int_equal(cursor_get_bytes(&c, 0, &p), 0);
	assert_int_equal(cursor_skip(&c, 0), 0);
	assert_int_equal(cursor_expect_end(&c), 0);
	assert_int_equal(cursor_get_u8(&c, &u8), -EBADMSG);
}

/* Each short read fails and consumes nothing. */
static void test_cursor_short_reads(void **state)
{
	static const uint8_t seven[] = {1, 2, 3, 4, 5, 6, 7};
	static const uint8_t sized[] = {0x00, 0x05, 'a', 'b', 'c'};
	const uint8_t *p = NULL;
	struct cursor c;
	uint16_t u16 = 0, n = 42;
	uint32_t u32 = 42;
	uint64_t u64 = 42;
	uint8_t u8 = 42;

	(void)state;
	c = cursor_make(seven, sizeof(seven));
	assert_int_equal(cursor_get_u64be(&c, &u64), -EBADMSG);
	assert_ptr_equal(c.p, seven);
	assert_int_equal(c.left, 7);
	assert_true(u64 == 42);

	c = cursor_make(seven, 3);
	assert_int_equal(cursor_get_u32be(&c, &u32), -EBADMSG);
	assert_int_equal(c.left, 3);
	assert_int_equal(u32, 42);
	assert_int_equal(cursor_get_bytes(&c, 4, &p), -EBADMSG);
	assert_null(p);
	assert_int_equal(cursor_skip(&c, 4), -EBADMSG);
	assert_int_equal(c.left, 3);
	assert_ptr_equal(c.p, seven);

	c = cursor_make(seven, 1);
	assert_int_equal(cursor_get_u16be(&c, &u16), -EBADMSG);
	assert_int_equal(cursor_get_sized16(&c, &p, &n), -EBADMSG);
	assert_int_equal(c.left, 1);
	assert_int_equal(cursor_get_u8(&c, &u8), 0);
	assert_int_equal(u8, 1);
	assert_int_equal(cursor_get_u8(&c, &u8), -EBADMSG);
	assert_int_equal(u8, 1);

	/* The size says 5, three bytes follow: the size is not consumed. */
	c = cursor_make(sized, sizeof(sized));
	assert_int_equal(cursor_get_sized16(&c, &p, &n), -EBADMSG);
	assert_ptr_equal(c.p, sized);
	assert_int_equal(c.left, sizeof(sized));
	assert_int_equal(n, 42);
	assert_int_equal(cursor_expect_end(&c), -EBADMSG);
	assert_int_equal(cursor_get_u16be(&c, &u16), 0);
	assert_int_equal(u16, 5);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_init_is_empty),
	    cmocka_unit_test(test_growth),
	    cmocka_unit_test(test_max_leaves_content_unchanged),
	    cmocka_unit_test(test_printf),
	    cmocka_unit_test(test_steal),
	    cmocka_unit_test(test_secret),
	    cmocka_unit_test(test_cursor_readers),
	    cmocka_unit_test(test_cursor_short_reads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
