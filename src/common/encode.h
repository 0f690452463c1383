/* SPDX-License-Identifier: MIT */
/*
 * Text encodings: base64 (RFC 4648 standard and URL alphabets), base32
 * (RFC 4648, as the Azure C SDK uses for TPM registration ids), hex, and
 * URL percent-encoding (RFC 3986).
 *
 * Encoders append to a struct buf. Decoders reject anything that is not
 * valid in their alphabet and report where: -EINVAL for bad input,
 * -E2BIG when the output buffer's maximum would be exceeded.
 */
#ifndef EDGEID_ENCODE_H
#define EDGEID_ENCODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

enum b64_flags {
	B64_STANDARD = 0,          /* + / alphabet, '=' padding required on decode */
	B64_URL = 1 << 0,          /* - _ alphabet */
	B64_NO_PAD = 1 << 1,       /* encode: omit '='; decode: padding must be absent */
	B64_PAD_OPTIONAL = 1 << 2, /* decode: accept input with or without padding */
	B64_IGNORE_WS = 1 << 3,    /* decode: skip CR, LF, space, tab (PEM, EST bodies) */
	/* decode: the final group's unused low bits must be zero, so that
	 * exactly one text decodes to given bytes (for MACs and handles compared
	 * as text); by default they are ignored, as OpenSSL does */
	B64_CANONICAL = 1 << 4,
};

int base64_encode(struct buf *out, const void *data, size_t len, unsigned flags) _nodiscard_;
/* Decode text (len chars) into out. Returns 0, -EINVAL (bad character,
 * bad length or bad padding; *ret_bad_offset, when non-NULL, is set to the
 * offset of the first offending character), -E2BIG, -ENOMEM. */
int base64_decode(struct buf *out, const char *text, size_t len, unsigned flags,
		  size_t *ret_bad_offset) _nodiscard_;

enum b32_flags {
	B32_UPPER = 0,
	B32_LOWER = 1 << 0, /* encode lowercase; decode accepts both cases always */
	B32_NO_PAD = 1 << 1,
};
int base32_encode(struct buf *out, const void *data, size_t len, unsigned flags) _nodiscard_;
int base32_decode(struct buf *out, const char *text, size_t len,
		  size_t *ret_bad_offset) _nodiscard_;

/* Lowercase hex. */
int hex_encode(struct buf *out, const void *data, size_t len) _nodiscard_;
/* Accepts both cases; odd length or a non-hex character is -EINVAL. */
int hex_decode(struct buf *out, const char *text, size_t len, size_t *ret_bad_offset) _nodiscard_;

/* Percent-encode everything but RFC 3986 unreserved characters
 * (A-Z a-z 0-9 - . _ ~). keep, when non-NULL, lists extra characters to
 * leave as they are (e.g. "/" for a SAS token's resource URI). */
int url_encode(struct buf *out, const char *s, size_t len, const char *keep) _nodiscard_;
/* Decode %XX escapes; '+' is left as '+' unless plus_as_space. A bad or
 * truncated escape is -EINVAL; %00 is rejected (-EINVAL). */
int url_decode(struct buf *out, const char *s, size_t len, bool plus_as_space) _nodiscard_;

#endif
