/* SPDX-License-Identifier: MIT */
#include <errno.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include "common/log.h"
#include "crypto/hash.h"
#include "crypto/openssl_cleanup.h"

int hash_ssl_error(const char *what)
{
	unsigned long code;
	char text[256];

	while ((code = ERR_get_error()) != 0) {
		ERR_error_string_n(code, text, sizeof(text));
		log_debug("%s: %s", what, text);
	}
	return -EIO;
}

int hash_sha256v(const struct iovec *iov, size_t n, uint8_t ret[HASH_SHA256_LEN])
{
	_cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned int len = 0;

	if (!ctx)
		return hash_ssl_error("EVP_MD_CTX_new");
	if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
		return hash_ssl_error("EVP_DigestInit_ex");
	for (size_t i = 0; i < n; i++)
		if (iov[i].iov_len > 0 &&
		    EVP_DigestUpdate(ctx, iov[i].iov_base, iov[i].iov_len) != 1)
			return hash_ssl_error("EVP_DigestUpdate");
	if (EVP_DigestFinal_ex(ctx, ret, &len) != 1 || len != HASH_SHA256_LEN)
		return hash_ssl_error("EVP_DigestFinal_ex");
	return 0;
}

int hash_sha256(const void *data, size_t len, uint8_t ret[HASH_SHA256_LEN])
{
	struct iovec iov = {(void *)data, len};

	return hash_sha256v(&iov, 1, ret);
}

int hash_hmac_sha256v(const void *key, size_t key_len, const struct iovec *iov, size_t n,
		      uint8_t ret[HASH_SHA256_LEN])
{
	static const uint8_t empty_key[1];
	_cleanup_(EVP_MAC_freep) EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	_cleanup_(EVP_MAC_CTX_freep) EVP_MAC_CTX *ctx = NULL;
	OSSL_PARAM params[] = {
	    OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
	    OSSL_PARAM_construct_end(),
	};
	size_t len = 0;

	if (!mac)
		return hash_ssl_error("EVP_MAC_fetch(HMAC)");
	ctx = EVP_MAC_CTX_new(mac);
	if (!ctx)
		return hash_ssl_error("EVP_MAC_CTX_new");
	/* A NULL key would mean "keep the previous key": pass a real pointer. */
	if (EVP_MAC_init(ctx, key_len > 0 ? key : empty_key, key_len, params) != 1)
		return hash_ssl_error("EVP_MAC_init");
	for (size_t i = 0; i < n; i++)
		if (iov[i].iov_len > 0 && EVP_MAC_update(ctx, iov[i].iov_base, iov[i].iov_len) != 1)
			return hash_ssl_error("EVP_MAC_update");
	if (EVP_MAC_final(ctx, ret, &len, HASH_SHA256_LEN) != 1 || len != HASH_SHA256_LEN)
		return hash_ssl_error("EVP_MAC_final");
	return 0;
}

int hash_hmac_sha256(const void *key, size_t key_len, const void *data, size_t len,
		     uint8_t ret[HASH_SHA256_LEN])
{
	struct iovec iov = {(void *)data, len};

	return hash_hmac_sha256v(key, key_len, &iov, 1, ret);
}
