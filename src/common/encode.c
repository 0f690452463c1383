/* SPDX-License-Identifier: MIT */
/*
 * Text encodings.
 *
 * Every encoder and decoder runs its loop twice: once counting the output
 * (and, for decoders, validating every character), then once writing it.
 * So bad input is reported as -EINVAL with the offset of the first
 * offending character whatever the buffer's maximum, -E2BIG is decided
 * before anything is appended, and on any failure the output buffer is
 * left exactly as it was.
 *
 * Where a decoder's error offset points:
 *   - a character outside the alphabet, a misplaced '=', or data after
 *     padding: that character;
 *   - a final group with too few characters to hold a byte (one base64
 *     character, one, three or six base32 characters, an odd hex digit):
 *     the last character of that group;
 *   - missing or incomplete padding where padding is required: len, the
 *     offset where the missing '=' should have been.
 *
 * Like OpenSSL (and unlike Go's Strict mode), decoders accept a final
 * group whose unused low bits are not zero ("Zh==" decodes to "f", as
 * "Zg==" does): senders in the field produce them, the decoded bytes are
 * the same. B64_CANONICAL refuses them (at the offset of that last
 * character) where a text must have one spelling only.
 *
 * Decoded output may be a secret (a base64 symmetric key): the staging
 * chunk is wiped, and so are bytes rolled back on failure.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "common/encode.h"

/* Output of one pass: counted only (out == NULL) or appended to out in
 * chunks. */
struct sink {
	struct buf *out;
	size_t count;
	size_t n;
	int error;
	uint8_t chunk[512];
};

static void sink_flush(struct sink *s)
{
	int r;

	if (s->n == 0)
		return;
	if (s->error == 0) {
		r = buf_append(s->out, s->chunk, s->n);
		if (r < 0)
			s->error = r;
	}
	s->n = 0;
}

static void sink_put(struct sink *s, uint8_t v)
{
	if (!s->out) {
		if (s->count < SIZE_MAX)
			s->count++;
		return;
	}
	s->chunk[s->n++] = v;
	if (s->n == sizeof(s->chunk))
		sink_flush(s);
}

/* Undo what a failed pass appended, wiping it. */
static void buf_rollback(struct buf *b, size_t len)
{
	if (!b->data || b->len <= len)
		return;
	explicit_bzero(b->data + len, b->len - len);
	b->len = len;
	b->data[len] = '\0';
}

/* Finish the writing pass: flush, wipe the staging chunk, roll back on
 * failure. */
static int sink_finish(struct sink *s, size_t start)
{
	sink_flush(s);
	explicit_bzero(s->chunk, sizeof(s->chunk));
	if (s->error < 0) {
		buf_rollback(s->out, start);
		return s->error;
	}
	return 0;
}

/* Would count more bytes fit in b? */
static int buf_room(const struct buf *b, size_t count)
{
	if (b->len > b->max || count > b->max - b->len)
		return -E2BIG;
	return 0;
}

static const char b64_std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char b64_url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
static const char b32_upper[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
static const char b32_lower[] = "abcdefghijklmnopqrstuvwxyz234567";
static const char hex_lower[] = "0123456789abcdef";
static const char hex_upper[] = "0123456789ABCDEF";

/* Emit the bits of data as groups of `bits` bits (6 for base64, 5 for
 * base32), most significant first, the last group zero-filled on the
 * right; then '=' up to a multiple of `group` characters when pad. */
static void radix_encode_pass(struct sink *s, const uint8_t *p, size_t len, const char *alphabet,
			      unsigned bits, unsigned group, bool pad)
{
	unsigned mask = (1u << bits) - 1, have = 0;
	uint32_t acc = 0;
	size_t chars = 0;

	for (size_t i = 0; i < len; i++) {
		acc = (acc << 8 | p[i]) & 0xffff;
		have += 8;
		while (have >= bits) {
			have -= bits;
			sink_put(s, (uint8_t)alphabet[(acc >> have) & mask]);
			chars++;
		}
	}
	if (have > 0) {
		sink_put(s, (uint8_t)alphabet[(acc << (bits - have)) & mask]);
		chars++;
	}
	while (pad && chars % group != 0) {
		sink_put(s, '=');
		chars++;
	}
}

static int radix_encode(struct buf *out, const void *data, size_t len, const char *alphabet,
			unsigned bits, unsigned group, bool pad)
{
	struct sink s = {0};
	size_t start = out->len;

	if (len > 0 && !data)
		return -EINVAL;
	radix_encode_pass(&s, data, len, alphabet, bits, group, pad);
	if (buf_room(out, s.count) < 0)
		return -E2BIG;
	s.out = out;
	radix_encode_pass(&s, data, len, alphabet, bits, group, pad);
	return sink_finish(&s, start);
}

int base64_encode(struct buf *out, const void *data, size_t len, unsigned flags)
{
	return radix_encode(out, data, len, (flags & B64_URL) ? b64_url : b64_std, 6, 4,
			    !(flags & B64_NO_PAD));
}

int base32_encode(struct buf *out, const void *data, size_t len, unsigned flags)
{
	return radix_encode(out, data, len, (flags & B32_LOWER) ? b32_lower : b32_upper, 5, 8,
			    !(flags & B32_NO_PAD));
}

static int b64_value(char c, bool url)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == (url ? '-' : '+'))
		return 62;
	if (c == (url ? '_' : '/'))
		return 63;
	return -1;
}

static int b32_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a';
	if (c >= '2' && c <= '7')
		return c - '2' + 26;
	return -1;
}

enum pad_rule {
	PAD_REQUIRED,
	PAD_FORBIDDEN,
	PAD_OPTIONAL,
};

struct radix {
	unsigned bits;  /* per character */
	unsigned group; /* characters per padded group */
	/* bit n set: a final group of n characters holds whole bytes */
	unsigned valid_partial;
	enum pad_rule pad;
	bool url;    /* base64 alphabet */
	bool base32; /* base32 alphabet */
	bool ignore_ws;
	bool canonical; /* the final group's unused bits must be zero */
};

static int bad_at(size_t *ret_bad_offset, size_t offset)
{
	if (ret_bad_offset)
		*ret_bad_offset = offset;
	return -EINVAL;
}

/* One decoding pass; see the top of the file for the error offsets. */
static int radix_decode_pass(struct sink *s, const struct radix *rx, const char *text, size_t len,
			     size_t *ret_bad_offset)
{
	unsigned n = 0, npad = 0, have = 0;
	size_t last_data = 0;
	uint32_t acc = 0;
	int v;

	for (size_t i = 0; i < len; i++) {
		char c = text[i];

		if (rx->ignore_ws && (c == ' ' || c == '\t' || c == '\r' || c == '\n'))
			continue;
		if (c == '=') {
			/* '=' only completes a final group that holds whole
			 * bytes, and never beyond the group's size. */
			if (rx->pad == PAD_FORBIDDEN ||
			    (npad == 0 && !(rx->valid_partial & (1u << n))) ||
			    n + npad >= rx->group)
				return bad_at(ret_bad_offset, i);
			npad++;
			continue;
		}
		v = rx->base32 ? b32_value(c) : b64_value(c, rx->url);
		if (v < 0 || npad > 0)
			return bad_at(ret_bad_offset, i);
		last_data = i;
		acc = (acc << rx->bits | (unsigned)v) & 0xffff;
		have += rx->bits;
		if (have >= 8) {
			have -= 8;
			sink_put(s, (uint8_t)(acc >> have));
		}
		n = (n + 1) % rx->group;
	}
	if (npad > 0) {
		if (n + npad != rx->group)
			return bad_at(ret_bad_offset, len);
	} else if (n > 0) {
		if (!(rx->valid_partial & (1u << n)))
			return bad_at(ret_bad_offset, last_data);
		if (rx->pad == PAD_REQUIRED)
			return bad_at(ret_bad_offset, len);
	}
	/* The remaining `have` bits are the final group's filler. */
	if (rx->canonical && have > 0 && (acc & ((1u << have) - 1)) != 0)
		return bad_at(ret_bad_offset, last_data);
	return 0;
}

static int radix_decode(struct buf *out, const struct radix *rx, const char *text, size_t len,
			size_t *ret_bad_offset)
{
	struct sink s = {0};
	size_t start = out->len;
	int r;

	if (len > 0 && !text)
		return -EINVAL;
	r = radix_decode_pass(&s, rx, text, len, ret_bad_offset);
	if (r < 0)
		return r;
	if (buf_room(out, s.count) < 0)
		return -E2BIG;
	s.out = out;
	(void)radix_decode_pass(&s, rx, text, len, NULL);
	return sink_finish(&s, start);
}

int base64_decode(struct buf *out, const char *text, size_t len, unsigned flags,
		  size_t *ret_bad_offset)
{
	struct radix rx = {
	    .bits = 6,
	    .group = 4,
	    .valid_partial = 1u << 2 | 1u << 3,
	    .url = flags & B64_URL,
	    .ignore_ws = flags & B64_IGNORE_WS,
	    .canonical = flags & B64_CANONICAL,
	};

	/* PAD_OPTIONAL wins over NO_PAD when both are given. */
	if (flags & B64_PAD_OPTIONAL)
		rx.pad = PAD_OPTIONAL;
	else if (flags & B64_NO_PAD)
		rx.pad = PAD_FORBIDDEN;
	else
		rx.pad = PAD_REQUIRED;
	return radix_decode(out, &rx, text, len, ret_bad_offset);
}

/* Padding is optional and case does not matter: the Azure C SDK writes
 * lowercase base32 without '=', RFC 4648 uppercase with it. */
int base32_decode(struct buf *out, const char *text, size_t len, size_t *ret_bad_offset)
{
	const struct radix rx = {
	    .bits = 5,
	    .group = 8,
	    .valid_partial = 1u << 2 | 1u << 4 | 1u << 5 | 1u << 7,
	    .pad = PAD_OPTIONAL,
	    .base32 = true,
	};

	return radix_decode(out, &rx, text, len, ret_bad_offset);
}

static void hex_encode_pass(struct sink *s, const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		sink_put(s, (uint8_t)hex_lower[p[i] >> 4]);
		sink_put(s, (uint8_t)hex_lower[p[i] & 0xf]);
	}
}

int hex_encode(struct buf *out, const void *data, size_t len)
{
	struct sink s = {0};
	size_t start = out->len;

	if (len > 0 && !data)
		return -EINVAL;
	hex_encode_pass(&s, data, len);
	if (buf_room(out, s.count) < 0)
		return -E2BIG;
	s.out = out;
	hex_encode_pass(&s, data, len);
	return sink_finish(&s, start);
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int hex_decode_pass(struct sink *s, const char *text, size_t len, size_t *ret_bad_offset)
{
	for (size_t i = 0; i < len; i += 2) {
		int hi = hex_value(text[i]), lo;

		/* A bad digit, or the unpaired last one. */
		if (hi < 0 || i + 1 == len)
			return bad_at(ret_bad_offset, i);
		lo = hex_value(text[i + 1]);
		if (lo < 0)
			return bad_at(ret_bad_offset, i + 1);
		sink_put(s, (uint8_t)(hi << 4 | lo));
	}
	return 0;
}

int hex_decode(struct buf *out, const char *text, size_t len, size_t *ret_bad_offset)
{
	struct sink s = {0};
	size_t start = out->len;
	int r;

	if (len > 0 && !text)
		return -EINVAL;
	r = hex_decode_pass(&s, text, len, ret_bad_offset);
	if (r < 0)
		return r;
	if (buf_room(out, s.count) < 0)
		return -E2BIG;
	s.out = out;
	(void)hex_decode_pass(&s, text, len, NULL);
	return sink_finish(&s, start);
}

static bool url_unreserved(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || c == '~';
}

/* Escapes are uppercase (RFC 3986 2.1), as the Azure SDKs produce them:
 * a SAS token's signature covers the encoded resource URI, so the exact
 * bytes matter. */
static void url_encode_pass(struct sink *s, const char *p, size_t len, const char *keep)
{
	for (size_t i = 0; i < len; i++) {
		char c = p[i];
		uint8_t u = (uint8_t)c;

		if (url_unreserved(c) || (keep && c != '\0' && strchr(keep, c))) {
			sink_put(s, u);
		} else {
			sink_put(s, '%');
			sink_put(s, (uint8_t)hex_upper[u >> 4]);
			sink_put(s, (uint8_t)hex_upper[u & 0xf]);
		}
	}
}

int url_encode(struct buf *out, const char *s, size_t len, const char *keep)
{
	struct sink sk = {0};
	size_t start = out->len;

	if (len > 0 && !s)
		return -EINVAL;
	url_encode_pass(&sk, s, len, keep);
	if (buf_room(out, sk.count) < 0)
		return -E2BIG;
	sk.out = out;
	url_encode_pass(&sk, s, len, keep);
	return sink_finish(&sk, start);
}

/* A literal NUL is rejected like %00: the decoded text is used as a C
 * string, and a NUL inside it would silently cut it short. */
static int url_decode_pass(struct sink *sk, const char *s, size_t len, bool plus_as_space)
{
	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (c == '\0')
			return -EINVAL;
		if (c == '%') {
			int hi, lo;

			if (len - i < 3)
				return -EINVAL;
			hi = hex_value(s[i + 1]);
			lo = hex_value(s[i + 2]);
			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
				return -EINVAL;
			sink_put(sk, (uint8_t)(hi << 4 | lo));
			i += 2;
		} else if (c == '+' && plus_as_space) {
			sink_put(sk, ' ');
		} else {
			sink_put(sk, (uint8_t)c);
		}
	}
	return 0;
}

int url_decode(struct buf *out, const char *s, size_t len, bool plus_as_space)
{
	struct sink sk = {0};
	size_t start = out->len;
	int r;

	if (len > 0 && !s)
		return -EINVAL;
	r = url_decode_pass(&sk, s, len, plus_as_space);
	if (r < 0)
		return r;
	if (buf_room(out, sk.count) < 0)
		return -E2BIG;
	sk.out = out;
	(void)url_decode_pass(&sk, s, len, plus_as_space);
	return sink_finish(&sk, start);
}
