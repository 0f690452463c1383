/* SPDX-License-Identifier: MIT */
/*
 * SHA-256 and HMAC-SHA256 over one or more byte ranges, the two primitives
 * SAS tokens and the TPM key wrapping are built from. OpenSSL failures are
 * translated here (-EIO, detail logged at debug) so callers see errnos.
 */
#ifndef EDGEID_CRYPTO_HASH_H
#define EDGEID_CRYPTO_HASH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "common/macro.h"

#define HASH_SHA256_LEN 32

/* SHA-256 of the concatenation of n ranges. 0 or -EIO. */
int hash_sha256v(const struct iovec *iov, size_t n, uint8_t ret[HASH_SHA256_LEN]) _nodiscard_;
int hash_sha256(const void *data, size_t len, uint8_t ret[HASH_SHA256_LEN]) _nodiscard_;

/* HMAC-SHA256 keyed with key (key_len may be 0) over the concatenation of n
 * ranges. 0 or -EIO. */
int hash_hmac_sha256v(const void *key, size_t key_len, const struct iovec *iov, size_t n,
		      uint8_t ret[HASH_SHA256_LEN]) _nodiscard_;
int hash_hmac_sha256(const void *key, size_t key_len, const void *data, size_t len,
		     uint8_t ret[HASH_SHA256_LEN]) _nodiscard_;

/* Log the OpenSSL error queue at debug, prefixed with what failed, and
 * empty it. Returns -EIO, so a failure path is `return hash_ssl_error("x");`. */
int hash_ssl_error(const char *what);

#endif
