/* SPDX-License-Identifier: MIT */
/*
 * Bounded buffers and cursor readers.
 *
 * struct buf grows up to a maximum fixed at creation: appending past it
 * fails with -E2BIG and leaves the buffer unchanged, so input from the
 * network can never make us allocate without bound. The data is always
 * kept NUL-terminated (the NUL is not counted in len).
 *
 * struct cursor reads untrusted bytes: every getter checks the length
 * before it consumes and fails with -EBADMSG on a short read; a parse
 * ends with cursor_expect_end() so that trailing bytes are an error.
 */
#ifndef EDGEID_BUF_H
#define EDGEID_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/macro.h"

#define BUF_MAX_DEFAULT (1024 * 1024)

struct buf {
	char *data; /* NUL-terminated when non-NULL; owned */
	size_t len;
	size_t cap;
	size_t max;  /* bytes of content allowed, at most */
	bool secret; /* wipe on growth and free */
};

/* Initialise an empty buffer holding at most max bytes (0 means
 * BUF_MAX_DEFAULT). Allocates nothing. */
void buf_init(struct buf *b, size_t max);
/* As buf_init, and every byte is wiped before memory is released. */
void buf_init_secret(struct buf *b, size_t max);

/* Append. 0, -E2BIG past the maximum (buffer unchanged), -ENOMEM. */
int buf_append(struct buf *b, const void *p, size_t n) _nodiscard_;
int buf_append_str(struct buf *b, const char *s) _nodiscard_;
int buf_putc(struct buf *b, char c) _nodiscard_;
int buf_printf(struct buf *b, const char *fmt, ...) _printf_(2, 3) _nodiscard_;

/* Content as a C string; "" for an empty buffer. Owned by b. */
const char *buf_str(const struct buf *b);
/* Take the content out as a malloc'd NUL-terminated string (the caller
 * frees it); b is left empty. Returns NULL only on -ENOMEM. */
char *buf_steal(struct buf *b, size_t *ret_len);
/* Forget the content, keep the memory (wiped for secret buffers). */
void buf_reset(struct buf *b);
/* Release the memory (wiped for secret buffers). Accepts a zeroed buf. */
void buf_free(struct buf *b);
static inline void buf_freep(struct buf *b)
{
	buf_free(b);
}
#define _cleanup_buf_ _cleanup_(buf_freep)

struct cursor {
	const uint8_t *p;
	size_t left;
};

static inline struct cursor cursor_make(const void *p, size_t n)
{
	struct cursor c = {p, n};
	return c;
}

/* Each returns 0, or -EBADMSG when fewer bytes remain than requested
 * (nothing is consumed then). */
int cursor_get_u8(struct cursor *c, uint8_t *ret) _nodiscard_;
int cursor_get_u16be(struct cursor *c, uint16_t *ret) _nodiscard_;
int cursor_get_u32be(struct cursor *c, uint32_t *ret) _nodiscard_;
int cursor_get_u64be(struct cursor *c, uint64_t *ret) _nodiscard_;
/* Point *ret at the next n bytes inside the cursor's memory. */
int cursor_get_bytes(struct cursor *c, size_t n, const uint8_t **ret) _nodiscard_;
/* A TPM2B-style field: a 16-bit big-endian size, then that many bytes. */
int cursor_get_sized16(struct cursor *c, const uint8_t **ret, uint16_t *ret_len) _nodiscard_;
int cursor_skip(struct cursor *c, size_t n) _nodiscard_;
/* 0 when nothing is left, -EBADMSG otherwise. */
int cursor_expect_end(const struct cursor *c) _nodiscard_;

#endif
