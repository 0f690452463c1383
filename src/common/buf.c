/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"

void buf_init(struct buf *b, size_t max)
{
	memset(b, 0, sizeof(*b));
	b->max = max ? max : BUF_MAX_DEFAULT;
	/* No allocation can be that large anyway; the cap keeps
	 * len + n + 1 and the doubling in buf_reserve() from overflowing
	 * when a caller passes SIZE_MAX to mean "no limit". */
	if (b->max > SIZE_MAX / 2)
		b->max = SIZE_MAX / 2;
}

void buf_init_secret(struct buf *b, size_t max)
{
	buf_init(b, max);
	b->secret = true;
}

/* Make room for n more content bytes plus the terminating NUL. */
static int buf_reserve(struct buf *b, size_t n)
{
	size_t need, cap;
	char *p;

	if (n > b->max || b->len > b->max - n)
		return -E2BIG;
	need = b->len + n + 1;
	if (need <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 64;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	if (cap > b->max + 1)
		cap = b->max + 1;
	if (b->secret) {
		/* realloc could leave a copy of the secret behind. */
		p = malloc(cap);
		if (!p)
			return -ENOMEM;
		if (b->data) {
			memcpy(p, b->data, b->len + 1);
			explicit_bzero(b->data, b->cap);
			free(b->data);
		}
	} else {
		p = realloc(b->data, cap);
		if (!p)
			return -ENOMEM;
	}
	b->data = p;
	b->cap = cap;
	return 0;
}

int buf_append(struct buf *b, const void *p, size_t n)
{
	int r = buf_reserve(b, n);

	if (r < 0)
		return r;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int buf_append_str(struct buf *b, const char *s)
{
	return buf_append(b, s, strlen(s));
}

int buf_putc(struct buf *b, char c)
{
	return buf_append(b, &c, 1);
}

int buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n, r;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -EINVAL;
	r = buf_reserve(b, (size_t)n);
	if (r < 0)
		return r;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}

const char *buf_str(const struct buf *b)
{
	return b->data ? b->data : "";
}

char *buf_steal(struct buf *b, size_t *ret_len)
{
	char *p = b->data;

	if (!p) {
		p = strdup("");
		if (!p)
			return NULL;
	}
	if (ret_len)
		*ret_len = b->len;
	b->data = NULL;
	b->len = b->cap = 0;
	return p;
}

void buf_reset(struct buf *b)
{
	if (b->data) {
		if (b->secret)
			explicit_bzero(b->data, b->cap);
		b->data[0] = '\0';
	}
	b->len = 0;
}

void buf_free(struct buf *b)
{
	if (!b)
		return;
	if (b->data && b->secret)
		explicit_bzero(b->data, b->cap);
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

int cursor_get_bytes(struct cursor *c, size_t n, const uint8_t **ret)
{
	if (c->left < n)
		return -EBADMSG;
	*ret = c->p;
	/* An empty cursor may hold NULL, and NULL + 0 is undefined. */
	if (n == 0)
		return 0;
	c->p += n;
	c->left -= n;
	return 0;
}

int cursor_skip(struct cursor *c, size_t n)
{
	const uint8_t *unused;

	return cursor_get_bytes(c, n, &unused);
}

int cursor_get_u8(struct cursor *c, uint8_t *ret)
{
	const uint8_t *p;
	int r = cursor_get_bytes(c, 1, &p);

	if (r == 0)
		*ret = p[0];
	return r;
}

int cursor_get_u16be(struct cursor *c, uint16_t *ret)
{
	const uint8_t *p;
	int r = cursor_get_bytes(c, 2, &p);

	if (r == 0)
		*ret = (uint16_t)((p[0] << 8) | p[1]);
	return r;
}

int cursor_get_u32be(struct cursor *c, uint32_t *ret)
{
	const uint8_t *p;
	int r = cursor_get_bytes(c, 4, &p);

	if (r == 0)
		*ret = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
	return r;
}

int cursor_get_u64be(struct cursor *c, uint64_t *ret)
{
	uint32_t hi, lo;

	if (c->left < 8)
		return -EBADMSG;
	if (cursor_get_u32be(c, &hi) < 0 || cursor_get_u32be(c, &lo) < 0)
		return -EBADMSG;
	*ret = (uint64_t)hi << 32 | lo;
	return 0;
}

int cursor_get_sized16(struct cursor *c, const uint8_t **ret, uint16_t *ret_len)
{
	struct cursor save = *c;
	uint16_t n;

	if (cursor_get_u16be(c, &n) < 0)
		return -EBADMSG;
	if (cursor_get_bytes(c, n, ret) < 0) {
		*c = save;
		return -EBADMSG;
	}
	*ret_len = n;
	return 0;
}

int cursor_expect_end(const struct cursor *c)
{
	return c->left == 0 ? 0 : -EBADMSG;
}
