/* SPDX-License-Identifier: MIT */
/* Scoped-cleanup helpers for the OpenSSL types src/crypto uses. */
#ifndef EDGEID_CRYPTO_OPENSSL_CLEANUP_H
#define EDGEID_CRYPTO_OPENSSL_CLEANUP_H

#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#include "common/macro.h"

DEFINE_CLEANUP_FUNC(EVP_MD_CTX *, EVP_MD_CTX_free)
DEFINE_CLEANUP_FUNC(EVP_MAC *, EVP_MAC_free)
DEFINE_CLEANUP_FUNC(EVP_MAC_CTX *, EVP_MAC_CTX_free)
DEFINE_CLEANUP_FUNC(EVP_CIPHER_CTX *, EVP_CIPHER_CTX_free)
DEFINE_CLEANUP_FUNC(EVP_PKEY *, EVP_PKEY_free)
DEFINE_CLEANUP_FUNC(EVP_PKEY_CTX *, EVP_PKEY_CTX_free)
DEFINE_CLEANUP_FUNC(BIGNUM *, BN_free)
DEFINE_CLEANUP_FUNC(OSSL_PARAM_BLD *, OSSL_PARAM_BLD_free)
DEFINE_CLEANUP_FUNC(OSSL_PARAM *, OSSL_PARAM_free)

#endif
