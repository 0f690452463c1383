/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/encode.h"

/* RFC 4648 section 10. */
static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
static const char *const b64[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
static const char *const b32[] = {
    "", "MY======", "MZXQ====", "MZXW6===", "MZXW6YQ=", "MZXW6YTB", "MZXW6YTBOI======",
};
static const char *const b16[] = {"",         "66",         "666f",        "666f6f",
				  "666f6f62", "666f6f6261", "666f6f626172"};

/* s without its '=' padding, in a static buffer. */
static const char *unpadded(const char *s)
{
	static char out[64];
	size_t n = strcspn(s, "=");

	assert_true(n < sizeof(out));
	memcpy(out, s, n);
	out[n] = '\0';
	return out;
}

static void lower(char *s)
{
	for (; *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

static void test_base64_rfc4648_vectors(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(plain); i++) {
		_cleanup_buf_ struct buf b = {0};
		const char *np = unpadded(b64[i]);
		char nopad[64];

		memcpy(nopad, np, strlen(np) + 1);
		buf_init(&b, 0);

		assert_int_equal(base64_encode(&b, plain[i], strlen(plain[i]), B64_STANDARD), 0);
		assert_string_equal(buf_str(&b), b64[i]);
		buf_reset(&b);
		assert_int_equal(base64_encode(&b, plain[i], strlen(plain[i]), B64_NO_PAD), 0);
		assert_string_equal(buf_str(&b), nopad);
		buf_reset(&b);

		/* Padding required (the default). */
		assert_int_equal(base64_decode(&b, b64[i], strlen(b64[i]), B64_STANDARD, NULL), 0);
		assert_int_equal(b.len, strlen(plain[i]));
		assert_memory_equal(buf_str(&b), plain[i], b.len);
		buf_reset(&b);
		/* Padding absent. */
		assert_int_equal(base64_decode(&b, nopad, strlen(nopad), B64_NO_PAD, NULL), 0);
		assert_string_equal(buf_str(&b), plain[i]);
		buf_reset(&b);
		/* Padding optional: both forms. */
		assert_int_equal(base64_decode(&b, b64[i], strlen(b64[i]), B64_PAD_OPTIONAL, NULL),
				 0);
		assert_string_equal(buf_str(&b), plain[i]);
		buf_reset(&b);
		assert_int_equal(base64_decode(&b, nopad, strlen(nopad), B64_PAD_OPTIONAL, NULL),
				 0);
		assert_string_equal(buf_str(&b), plain[i]);
	}
}

static void test_base64_url_alphabet(void **state)
{
	static const uint8_t bytes[] = {0xfb, 0xff, 0xbf, 0xfe};
	_cleanup_buf_ struct buf b = {0};
	size_t bad = 99;

	(void)state;
	buf_init(&b, 0);
	assert_int_equal(base64_encode(&b, bytes, sizeof(bytes), B64_STANDARD), 0);
	assert_string_equal(buf_str(&b), "+/+//g==");
	buf_reset(&b);
	assert_int_equal(base64_encode(&b, bytes, sizeof(bytes), B64_URL | B64_NO_PAD), 0);
	assert_string_equal(buf_str(&b), "-_-__g");
	buf_reset(&b);

	assert_int_equal(base64_decode(&b, "-_-__g", 6, B64_URL | B64_NO_PAD, NULL), 0);
	assert_int_equal(b.len, sizeof(bytes));
	assert_memory_equal(b.data, bytes, sizeof(bytes));
	buf_reset(&b);

	/* Each alphabet rejects the other's two characters. */
	assert_int_equal(base64_decode(&b, "+/+//g==", 8, B64_URL, &bad), -EINVAL);
	assert_int_equal(bad, 0);
	assert_int_equal(base64_decode(&b, "AA-_", 4, B64_STANDARD, &bad), -EINVAL);
	assert_int_equal(bad, 2);
	assert_int_equal(base64_decode(&b, "AA_-", 4, B64_STANDARD, &bad), -EINVAL);
	assert_int_equal(bad, 2);
	assert_int_equal(b.len, 0);
}

struct bad_b64 {
	const char *text;
	size_t len;
	unsigned flags;
	size_t offset;
};

static void test_base64_errors_exact_offsets(void **state)
{
	static const struct bad_b64 cases[] = {
	    {"Zm9v!mFy", 8, B64_STANDARD, 4},     /* not in the alphabet */
	    {"Zm\0v", 4, B64_STANDARD, 2},        /* embedded NUL */
	    {"Zg", 2, B64_STANDARD, 2},           /* padding required: missing at the end */
	    {"Zg=", 3, B64_STANDARD, 3},          /* incomplete padding */
	    {"Zg=", 3, B64_PAD_OPTIONAL, 3},      /* optional padding must still be whole */
	    {"Zg==", 4, B64_NO_PAD, 2},           /* padding where it must be absent */
	    {"=", 1, B64_STANDARD, 0},            /* padding with no data */
	    {"Z===", 4, B64_STANDARD, 1},         /* one character cannot hold a byte */
	    {"Zm9v====", 8, B64_STANDARD, 4},     /* padding after a whole group */
	    {"Zg===", 5, B64_STANDARD, 4},        /* too much padding */
	    {"Zm9==", 5, B64_STANDARD, 4},        /* too much padding */
	    {"Zg==Zg==", 8, B64_STANDARD, 4},     /* data after padding */
	    {"Zg=a", 4, B64_STANDARD, 3},         /* data inside padding */
	    {"Z", 1, B64_STANDARD, 0},            /* a lone final character */
	    {"Zm9vY", 5, B64_NO_PAD, 4},          /* a lone final character */
	    {"Zm9vY", 5, B64_PAD_OPTIONAL, 4},    /* a lone final character */
	    {"Zm9v\nYmFy", 9, B64_STANDARD, 4},   /* whitespace only with IGNORE_WS */
	    {"Zm9v\fYmFy", 9, B64_IGNORE_WS, 4},  /* form feed is not whitespace here */
	    {"Zm9vYmFy\n", 9, B64_STANDARD, 8},   /* a trailing newline too */
	    {"Zm9v\nY\r\n", 8, B64_IGNORE_WS, 5}, /* offsets count skipped whitespace */
	    {"Zm9v YmE", 8, B64_IGNORE_WS, 8},    /* missing padding after whitespace */
	    {"Zm9vYmE=", 8, B64_IGNORE_WS | B64_NO_PAD, 7},
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		_cleanup_buf_ struct buf b = {0};
		size_t bad = 12345;
		int r;

		buf_init(&b, 0);
		assert_int_equal(buf_append_str(&b, "kept"), 0);
		r = base64_decode(&b, cases[i].text, cases[i].len, cases[i].flags, &bad);
		if (r != -EINVAL || bad != cases[i].offset)
			fail_msg("case %zu: got %d at %zu, expected -EINVAL at %zu", i, r, bad,
				 cases[i].offset);
		/* Nothing was appended. */
		assert_int_equal(b.len, 4);
		assert_string_equal(buf_str(&b), "kept");
	}
}

static void test_base64_whitespace_and_lenient_bits(void **state)
{
	static const char pem[] = "Zm9v\r\nYmE=\r\n";
	_cleanup_buf_ struct buf b = {0};
	size_t off;

	(void)state;
	buf_init(&b, 0);
	assert_int_equal(base64_decode(&b, pem, strlen(pem), B64_IGNORE_WS, NULL), 0);
	assert_string_equal(buf_str(&b), "fooba");
	buf_reset(&b);
	/* Whitespace may split the padding, tabs and spaces too. */
	assert_int_equal(base64_decode(&b, " Zg=\t=\n", 7, B64_IGNORE_WS, NULL), 0);
	assert_string_equal(buf_str(&b), "f");
	buf_reset(&b);
	/* Only whitespace is an empty input. */
	assert_int_equal(base64_decode(&b, "\r\n", 2, B64_IGNORE_WS, NULL), 0);
	assert_int_equal(b.len, 0);

	/* Non-zero unused bits in the final group are accepted, as OpenSSL
	 * does: "Zh==" and "Zm9=" decode like "Zg==" and "Zm8=". */
	assert_int_equal(base64_decode(&b, "Zh==", 4, B64_STANDARD, NULL), 0);
	assert_string_equal(buf_str(&b), "f");
	buf_reset(&b);
	assert_int_equal(base64_decode(&b, "Zm9", 3, B64_NO_PAD, NULL), 0);
	assert_string_equal(buf_str(&b), "fo");
	buf_reset(&b);

	/* B64_CANONICAL refuses them, at the offending character, and leaves
	 * the buffer as it was; canonical text still decodes. */
	off = 99;
	assert_int_equal(base64_decode(&b, "Zh==", 4, B64_CANONICAL, &off), -EINVAL);
	assert_int_equal(off, 1);
	assert_int_equal(b.len, 0);
	assert_int_equal(base64_decode(&b, "Zm9v Zm9", 8,
				       B64_CANONICAL | B64_IGNORE_WS | B64_PAD_OPTIONAL, &off),
			 -EINVAL);
	assert_int_equal(off, 7);
	assert_int_equal(base64_decode(&b, "Zm8=", 4, B64_CANONICAL, NULL), 0);
	assert_string_equal(buf_str(&b), "fo");
}

static void test_base64_roundtrip_all_bytes(void **state)
{
	static const unsigned flag_sets[] = {B64_STANDARD, B64_URL, B64_NO_PAD,
					     B64_URL | B64_NO_PAD};
	uint8_t data[256];

	(void)state;
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(255 - i);
	for (size_t f = 0; f < ARRAY_SIZE(flag_sets); f++) {
		for (size_t n = 0; n <= sizeof(data); n += (n < 16 ? 1 : 37)) {
			_cleanup_buf_ struct buf enc = {0}, dec = {0};

			buf_init(&enc, 0);
			buf_init(&dec, 0);
			assert_int_equal(base64_encode(&enc, data, n, flag_sets[f]), 0);
			assert_int_equal(enc.len, (flag_sets[f] & B64_NO_PAD) ? (n * 4 + 2) / 3
									      : (n + 2) / 3 * 4);
			assert_int_equal(base64_decode(&dec, enc.data, enc.len, flag_sets[f], NULL),
					 0);
			assert_int_equal(dec.len, n);
			assert_memory_equal(buf_str(&dec), data, n);
		}
	}
}

static void test_base64_e2big_leaves_buffer(void **state)
{
	_cleanup_buf_ struct buf b = {0};
	size_t bad = 0;

	(void)state;
	/* "ab" + 8 characters of "foobar" is 10. */
	buf_init(&b, 9);
	assert_int_equal(buf_append_str(&b, "ab"), 0);
	assert_int_equal(base64_encode(&b, "foobar", 6, B64_STANDARD), -E2BIG);
	assert_string_equal(buf_str(&b), "ab");
	assert_int_equal(b.len, 2);
	b.max = 10;
	assert_int_equal(base64_encode(&b, "foobar", 6, B64_STANDARD), 0);
	assert_string_equal(buf_str(&b), "abZm9vYmFy");

	/* Decoding: 6 bytes into room for 5. */
	buf_free(&b);
	buf_init(&b, 5);
	assert_int_equal(base64_decode(&b, "Zm9vYmFy", 8, B64_STANDARD, NULL), -E2BIG);
	assert_int_equal(b.len, 0);
	/* Bad input is reported as such even when it would not fit either. */
	assert_int_equal(base64_decode(&b, "Zm9vYmF!", 8, B64_STANDARD, &bad), -EINVAL);
	assert_int_equal(bad, 7);
	b.max = 6;
	assert_int_equal(base64_decode(&b, "Zm9vYmFy", 8, B64_STANDARD, NULL), 0);
	assert_string_equal(buf_str(&b), "foobar");
}

static void test_base32_rfc4648_vectors(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(plain); i++) {
		_cleanup_buf_ struct buf b = {0};
		char low[64], low_nopad[64];

		memcpy(low, b32[i], strlen(b32[i]) + 1);
		lower(low);
		memcpy(low_nopad, unpadded(low), strlen(unpadded(low)) + 1);
		buf_init(&b, 0);

		assert_int_equal(base32_encode(&b, plain[i], strlen(plain[i]), B32_UPPER), 0);
		assert_string_equal(buf_str(&b), b32[i]);
		buf_reset(&b);
		/* The Azure C SDK's form: lowercase, no padding. */
		assert_int_equal(
		    base32_encode(&b, plain[i], strlen(plain[i]), B32_LOWER | B32_NO_PAD), 0);
		assert_string_equal(buf_str(&b), low_nopad);
		buf_reset(&b);
		assert_int_equal(base32_encode(&b, plain[i], strlen(plain[i]), B32_LOWER), 0);
		assert_string_equal(buf_str(&b), low);
		buf_reset(&b);
		assert_int_equal(base32_encode(&b, plain[i], strlen(plain[i]), B32_NO_PAD), 0);
		assert_string_equal(buf_str(&b), unpadded(b32[i]));
		buf_reset(&b);

		/* Decoding takes every combination. */
		assert_int_equal(base32_decode(&b, b32[i], strlen(b32[i]), NULL), 0);
		assert_string_equal(buf_str(&b), plain[i]);
		buf_reset(&b);
		assert_int_equal(base32_decode(&b, low, strlen(low), NULL), 0);
		assert_string_equal(buf_str(&b), plain[i]);
		buf_reset(&b);
		assert_int_equal(base32_decode(&b, low_nopad, strlen(low_nopad), NULL), 0);
		assert_string_equal(buf_str(&b), plain[i]);
		buf_reset(&b);
		assert_int_equal(
		    base32_decode(&b, unpadded(b32[i]), strlen(unpadded(b32[i])), NULL), 0);
		assert_string_equal(buf_str(&b), plain[i]);
	}
}

static void test_base32_mixed_case_and_binary(void **state)
{
	static const uint8_t bytes[] = {0x00, 0xff, 0x10, 0x83, 0x9e, 0xa5, 0x5a};
	_cleanup_buf_ struct buf b = {0};

	(void)state;
	buf_init(&b, 0);
	assert_int_equal(base32_decode(&b, "mZxW6yTbOi", 10, NULL), 0);
	assert_string_equal(buf_str(&b), "foobar");
	buf_reset(&b);
	assert_int_equal(base32_encode(&b, bytes, sizeof(bytes), B32_UPPER), 0);
	assert_string_equal(buf_str(&b), "AD7RBA46UVNA====");
	buf_reset(&b);
	assert_int_equal(base32_decode(&b, "ad7rba46uvna", 12, NULL), 0);
	assert_int_equal(b.len, sizeof(bytes));
	assert_memory_equal(b.data, bytes, sizeof(bytes));
}

struct bad_b32 {
	const char *text;
	size_t offset;
};

static void test_base32_errors_exact_offsets(void **state)
{
	static const struct bad_b32 cases[] = {
	    {"MZ1W6YQ", 2},          /* '1' is not base32 */
	    {"MZXW6Y0=", 6},         /* nor is '0' */
	    {"MZXW 6YQ", 4},         /* no whitespace */
	    {"M", 0},                /* one character cannot hold a byte */
	    {"MZX", 2},              /* three cannot either */
	    {"MZXW6Y", 5},           /* nor six */
	    {"MZXW6YTBO", 8},        /* a lone character after a whole group */
	    {"M=======", 1},         /* padding where no byte is complete */
	    {"MZX=====", 3},         /* same after three characters */
	    {"MY=====", 7},          /* incomplete padding: missing at the end */
	    {"MY=======", 8},        /* too much padding */
	    {"MY======MY======", 8}, /* data after padding */
	    {"========", 0},         /* padding with no data */
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		_cleanup_buf_ struct buf b = {0};
		size_t bad = 12345;
		int r;

		buf_init(&b, 0);
		r = base32_decode(&b, cases[i].text, strlen(cases[i].text), &bad);
		if (r != -EINVAL || bad != cases[i].offset)
			fail_msg("\"%s\": got %d at %zu, expected -EINVAL at %zu", cases[i].text, r,
				 bad, cases[i].offset);
		assert_int_equal(b.len, 0);
	}
}

static void test_hex_vectors_and_errors(void **state)
{
	_cleanup_buf_ struct buf b = {0};
	size_t bad = 99;

	(void)state;
	buf_init(&b, 0);
	for (size_t i = 0; i < ARRAY_SIZE(plain); i++) {
		char upper[64];

		assert_int_equal(hex_encode(&b, plain[i], strlen(plain[i])), 0);
		assert_string_equal(buf_str(&b), b16[i]);
		buf_reset(&b);
		assert_int_equal(hex_decode(&b, b16[i], strlen(b16[i]), NULL), 0);
		assert_string_equal(buf_str(&b), plain[i]);
		buf_reset(&b);
		/* RFC 4648 writes base16 in uppercase: accepted too. */
		for (size_t j = 0; j <= strlen(b16[i]); j++)
			upper[j] = (b16[i][j] >= 'a' && b16[i][j] <= 'f')
				       ? (char)(b16[i][j] - 'a' + 'A')
				       : b16[i][j];
		assert_int_equal(hex_decode(&b, upper, strlen(upper), NULL), 0);
		assert_string_equal(buf_str(&b), plain[i]);
		buf_reset(&b);
	}

	assert_int_equal(hex_encode(&b, "\x00\xff\x0a", 3), 0);
	assert_string_equal(buf_str(&b), "00ff0a");
	buf_reset(&b);

	assert_int_equal(buf_append_str(&b, "kept"), 0);
	assert_int_equal(hex_decode(&b, "zz", 2, &bad), -EINVAL);
	assert_int_equal(bad, 0);
	assert_int_equal(hex_decode(&b, "6g", 2, &bad), -EINVAL);
	assert_int_equal(bad, 1);
	assert_int_equal(hex_decode(&b, "666f6", 5, &bad), -EINVAL); /* odd: the unpaired digit */
	assert_int_equal(bad, 4);
	assert_int_equal(hex_decode(&b, "66 6f", 5, &bad), -EINVAL);
	assert_int_equal(bad, 2);
	assert_int_equal(hex_decode(&b, "0x66", 4, &bad), -EINVAL);
	assert_int_equal(bad, 1);
	assert_string_equal(buf_str(&b), "kept");

	/* Limits: 3 bytes into room for 2 more. */
	b.max = 6;
	assert_int_equal(hex_decode(&b, "666f6f", 6, NULL), -E2BIG);
	assert_string_equal(buf_str(&b), "kept");
	assert_int_equal(hex_encode(&b, "f", 1), 0);
	assert_string_equal(buf_str(&b), "kept66");
	assert_int_equal(hex_encode(&b, "f", 1), -E2BIG);
	assert_string_equal(buf_str(&b), "kept66");
}

static void test_url_encode(void **state)
{
	static const char uri[] = "myhub.azure-devices.net/devices/dev 01+x";
	static const char unreserved[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~";
	_cleanup_buf_ struct buf b = {0};

	(void)state;
	buf_init(&b, 0);
	/* A SAS token's resource URI: '/' kept, escapes uppercase. */
	assert_int_equal(url_encode(&b, uri, strlen(uri), "/"), 0);
	assert_string_equal(buf_str(&b), "myhub.azure-devices.net/devices/dev%2001%2Bx");
	buf_reset(&b);
	assert_int_equal(url_encode(&b, uri, strlen(uri), NULL), 0);
	assert_string_equal(buf_str(&b), "myhub.azure-devices.net%2Fdevices%2Fdev%2001%2Bx");
	buf_reset(&b);

	assert_int_equal(url_encode(&b, unreserved, strlen(unreserved), NULL), 0);
	assert_string_equal(buf_str(&b), unreserved);
	buf_reset(&b);
	/* Reserved and non-ASCII bytes. */
	assert_int_equal(url_encode(&b, "!*'();:@&=$,?#[]%\xc3\xa9", 19, ""), 0);
	assert_string_equal(buf_str(&b),
			    "%21%2A%27%28%29%3B%3A%40%26%3D%24%2C%3F%23%5B%5D%25%C3%A9");
	buf_reset(&b);
	/* A NUL is never "kept", even though strchr() finds one in every keep. */
	assert_int_equal(url_encode(&b, "a\0b", 3, "/"), 0);
	assert_string_equal(buf_str(&b), "a%00b");
	buf_reset(&b);
	assert_int_equal(url_encode(&b, "a=b&c", 5, "=&"), 0);
	assert_string_equal(buf_str(&b), "a=b&c");
	buf_reset(&b);

	/* "a b" is 5 encoded characters. */
	b.max = 4;
	assert_int_equal(url_encode(&b, "a b", 3, NULL), -E2BIG);
	assert_int_equal(b.len, 0);
	b.max = 5;
	assert_int_equal(url_encode(&b, "a b", 3, NULL), 0);
	assert_string_equal(buf_str(&b), "a%20b");
}

static void test_url_decode(void **state)
{
	static const char *const bad[] = {"%", "a%2", "%zz", "%2g", "%g2", "%00", "a%00b", "%%41"};
	_cleanup_buf_ struct buf b = {0};

	(void)state;
	buf_init(&b, 0);
	assert_int_equal(url_decode(&b, "a%2Fb%2fc%20d", 13, false), 0);
	assert_string_equal(buf_str(&b), "a/b/c d");
	buf_reset(&b);
	assert_int_equal(url_decode(&b, "a+b%2B", 6, false), 0);
	assert_string_equal(buf_str(&b), "a+b+");
	buf_reset(&b);
	assert_int_equal(url_decode(&b, "a+b%2B", 6, true), 0);
	assert_string_equal(buf_str(&b), "a b+");
	buf_reset(&b);
	assert_int_equal(url_decode(&b, "%C3%A9%01", 9, false), 0);
	assert_string_equal(buf_str(&b), "\xc3\xa9\x01");
	buf_reset(&b);

	assert_int_equal(buf_append_str(&b, "kept"), 0);
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		if (url_decode(&b, bad[i], strlen(bad[i]), false) != -EINVAL)
			fail_msg("\"%s\" was accepted", bad[i]);
		assert_string_equal(buf_str(&b), "kept");
	}
	/* A raw NUL would cut the decoded string short: rejected like %00. */
	assert_int_equal(url_decode(&b, "a\0b", 3, false), -EINVAL);
	assert_string_equal(buf_str(&b), "kept");

	b.max = 6;
	assert_int_equal(url_decode(&b, "%41%42%43", 9, false), -E2BIG);
	assert_string_equal(buf_str(&b), "kept");
	assert_int_equal(url_decode(&b, "%41%42", 6, false), 0);
	assert_string_equal(buf_str(&b), "keptAB");
}

static void test_secret_buffer_output(void **state)
{
	_cleanup_buf_ struct buf b = {0};

	(void)state;
	/* A key decoded into a secret buffer, growing past its first block. */
	buf_init_secret(&b, 0);
	for (int i = 0; i < 100; i++)
		assert_int_equal(base64_decode(&b, "Zm9vYmFy", 8, B64_STANDARD, NULL), 0);
	assert_int_equal(b.len, 600);
	assert_memory_equal(b.data + 594, "foobar", 6);
	assert_true(b.secret);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_base64_rfc4648_vectors),
	    cmocka_unit_test(test_base64_url_alphabet),
	    cmocka_unit_test(test_base64_errors_exact_offsets),
	    cmocka_unit_test(test_base64_whitespace_and_lenient_bits),
	    cmocka_unit_test(test_base64_roundtrip_all_bytes),
	    cmocka_unit_test(test_base64_e2big_leaves_buffer),
	    cmocka_unit_test(test_base32_rfc4648_vectors),
	    cmocka_unit_test(test_base32_mixed_case_and_binary),
	    cmocka_unit_test(test_base32_errors_exact_offsets),
	    cmocka_unit_test(test_hex_vectors_and_errors),
	    cmocka_unit_test(test_url_encode),
	    cmocka_unit_test(test_url_decode),
	    cmocka_unit_test(test_secret_buffer_output),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
