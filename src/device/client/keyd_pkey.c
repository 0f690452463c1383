/* SPDX-License-Identifier: MIT */
/*
 * A private key that stays in keyd: identityd's TLS client key, certd's
 * signing key for the certificates it issues.
 *
 * The EVP_PKEY made here carries only the public key (from the identity
 * certificate, or a CSR, or an issuer's certificate) and a key method whose private operations are
 * calls to keyd, exactly as aziot's OpenSSL engine does them
 * (aziot-compat.md §1.1):
 *   EC   ECDSA over the digest OpenSSL computed: keyd /sign "ECDSA", which
 *        answers a DER ECDSA-Sig-Value;
 *   RSA  the raw private-key operation: keyd /encrypt "RSA-PKCS1" (TLS 1.2
 *        PKCS#1 v1.5 signatures, over the DigestInfo OpenSSL built) or
 *        "RSA-NO-PADDING" (PSS, which OpenSSL pads itself: TLS 1.3).
 *
 * Why EC_KEY_METHOD / RSA_METHOD and not a provider: OpenSSL 3 still
 * honours these (deprecated but supported through 3.x) by taking the
 * legacy code path for a key whose method is not the built-in one (it
 * marks such keys "foreign" and never exports their private half), and
 * libssl signs with such keys through EVP_DigestSign like any other. A
 * provider doing the same needs a key manager, a signature implementation
 * per algorithm and parameter plumbing: several times the code for the
 * same two operations. The deprecation warnings are silenced in this file
 * only.
 */
#define OPENSSL_SUPPRESS_DEPRECATED 1

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "common/log.h"
#include "device/client/client.h"

#define KEYD_API_VERSION "2021-05-01"

/* What a key remembers: where keyd is and which key to use. */
struct keyd_ref {
	char *socket;
	char *handle;
	struct local_client *keyd;
};

static int ec_index = -1, rsa_index = -1;
static EC_KEY_METHOD *ec_method;
static RSA_METHOD *rsa_method;

static void ref_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	struct keyd_ref *ref = ptr;

	(void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
	if (!ref)
		return;
	local_client_free(ref->keyd);
	free(ref->socket);
	if (ref->handle) {
		explicit_bzero(ref->handle, strlen(ref->handle));
		free(ref->handle);
	}
	free(ref);
}

static struct local_client *ref_client(struct keyd_ref *ref)
{
	if (!ref->keyd)
		ref->keyd = local_client_new("keyd", ref->socket, KEYD_API_VERSION);
	return ref->keyd;
}

static int ec_sign(int type, const unsigned char *dgst, int dlen, unsigned char *sig,
		   unsigned int *siglen, const BIGNUM *kinv, const BIGNUM *r, EC_KEY *eckey)
{
	struct keyd_ref *ref = EC_KEY_get_ex_data(eckey, ec_index);
	_cleanup_buf_ struct buf der = {0};
	struct local_client *kc;
	struct err e = {0};

	(void)type, (void)kinv, (void)r;
	buf_init(&der, 1024);
	kc = ref ? ref_client(ref) : NULL;
	if (!kc || dlen < 0 ||
	    keyd_client_sign_ecdsa(kc, ref->handle, dgst, (size_t)dlen, &der, &e) < 0) {
		log_debug("ECDSA through keyd failed: %s", err_msg(&e, -EIO));
		ERR_raise_data(ERR_LIB_EC, ERR_R_OPERATION_FAIL, "keyd: %s", err_msg(&e, -EIO));
		return 0;
	}
	if (der.len > (size_t)ECDSA_size(eckey)) {
		ERR_raise_data(ERR_LIB_EC, ERR_R_INTERNAL_ERROR, "keyd's signature is too long");
		return 0;
	}
	memcpy(sig, der.data, der.len);
	*siglen = (unsigned int)der.len;
	return 1;
}

static ECDSA_SIG *ec_sign_sig(const unsigned char *dgst, int dlen, const BIGNUM *kinv,
			      const BIGNUM *r, EC_KEY *eckey)
{
	unsigned char sig[256];
	const unsigned char *p = sig;
	unsigned int len = 0;

	if (ECDSA_size(eckey) > (int)sizeof(sig) ||
	    ec_sign(0, dgst, dlen, sig, &len, kinv, r, eckey) != 1)
		return NULL;
	return d2i_ECDSA_SIG(NULL, &p, (long)len);
}

/* keyd computes k itself; nothing to set up. */
static int ec_sign_setup(EC_KEY *eckey, BN_CTX *ctx, BIGNUM **kinvp, BIGNUM **rp)
{
	(void)eckey, (void)ctx, (void)kinvp, (void)rp;
	return 1;
}

static int rsa_priv_enc(int flen, const unsigned char *from, unsigned char *to, RSA *rsa,
			int padding)
{
	struct keyd_ref *ref = RSA_get_ex_data(rsa, rsa_index);
	_cleanup_buf_ struct buf out = {0};
	struct local_client *kc;
	struct err e = {0};

	if (padding != RSA_PKCS1_PADDING && padding != RSA_NO_PADDING) {
		ERR_raise(ERR_LIB_RSA, RSA_R_UNKNOWN_PADDING_TYPE);
		return -1;
	}
	buf_init(&out, 4096);
	kc = ref ? ref_client(ref) : NULL;
	if (!kc || flen < 0 ||
	    keyd_client_rsa_private(kc, ref->handle, padding == RSA_PKCS1_PADDING, from,
				    (size_t)flen, &out, &e) < 0) {
		log_debug("RSA through keyd failed: %s", err_msg(&e, -EIO));
		ERR_raise_data(ERR_LIB_RSA, ERR_R_OPERATION_FAIL, "keyd: %s", err_msg(&e, -EIO));
		return -1;
	}
	if (out.len != (size_t)RSA_size(rsa)) {
		ERR_raise_data(ERR_LIB_RSA, ERR_R_INTERNAL_ERROR,
			       "keyd's answer is not the size of the modulus");
		return -1;
	}
	memcpy(to, out.data, out.len);
	return (int)out.len;
}

/* The key only signs: decryption with it is refused. */
static int rsa_priv_dec(int flen, const unsigned char *from, unsigned char *to, RSA *rsa,
			int padding)
{
	(void)flen, (void)from, (void)to, (void)rsa, (void)padding;
	ERR_raise(ERR_LIB_RSA, ERR_R_OPERATION_FAIL);
	return -1;
}

static int methods_init(void)
{
	if (ec_method)
		return 0;
	ec_index = EC_KEY_get_ex_new_index(0, NULL, NULL, NULL, ref_free);
	rsa_index = RSA_get_ex_new_index(0, NULL, NULL, NULL, ref_free);
	if (ec_index < 0 || rsa_index < 0)
		return -ENOMEM;
	rsa_method = RSA_meth_dup(RSA_PKCS1_OpenSSL());
	if (!rsa_method || RSA_meth_set1_name(rsa_method, "edgeid keyd") != 1 ||
	    RSA_meth_set_priv_enc(rsa_method, rsa_priv_enc) != 1 ||
	    RSA_meth_set_priv_dec(rsa_method, rsa_priv_dec) != 1 ||
	    RSA_meth_set_flags(rsa_method, RSA_meth_get_flags(rsa_method) | RSA_FLAG_EXT_PKEY) !=
		1) {
		RSA_meth_free(rsa_method);
		rsa_method = NULL;
		return -ENOMEM;
	}
	ec_method = EC_KEY_METHOD_new(EC_KEY_get_default_method());
	if (!ec_method) {
		RSA_meth_free(rsa_method);
		rsa_method = NULL;
		return -ENOMEM;
	}
	EC_KEY_METHOD_set_sign(ec_method, ec_sign, ec_sign_setup, ec_sign_sig);
	return 0;
}

static struct keyd_ref *ref_new(const char *socket_path, const char *handle)
{
	struct keyd_ref *ref = calloc(1, sizeof(*ref));

	if (!ref)
		return NULL;
	ref->socket = strdup(socket_path);
	ref->handle = strdup(handle);
	if (!ref->socket || !ref->handle) {
		ref_free(NULL, ref, NULL, 0, 0, NULL);
		return NULL;
	}
	return ref;
}

int keyd_pkey_new(const char *socket_path, const char *handle, EVP_PKEY *pub, EVP_PKEY **ret,
		  struct err *e)
{
	EVP_PKEY *pkey = NULL;
	struct keyd_ref *ref;

	*ret = NULL;
	if (!pub)
		return err_set(e, -EINVAL, "no usable public key for the keyd-held key");
	if (methods_init() < 0)
		return err_set(e, -ENOMEM, "out of memory");
	ref = ref_new(socket_path, handle);
	pkey = EVP_PKEY_new();
	if (!ref || !pkey)
		goto oom;
	if (EVP_PKEY_get_base_id(pub) == EVP_PKEY_EC) {
		const EC_KEY *src = EVP_PKEY_get0_EC_KEY(pub);
		EC_KEY *ec = src ? EC_KEY_dup(src) : NULL;

		if (!ec)
			goto oom;
		if (EC_KEY_set_method(ec, ec_method) != 1 ||
		    EC_KEY_set_ex_data(ec, ec_index, ref) != 1) {
			EC_KEY_free(ec);
			goto oom;
		}
		ref = NULL; /* the key owns it now */
		if (EVP_PKEY_assign_EC_KEY(pkey, ec) != 1) {
			EC_KEY_free(ec);
			goto oom;
		}
	} else if (EVP_PKEY_get_base_id(pub) == EVP_PKEY_RSA) {
		const RSA *src = EVP_PKEY_get0_RSA(pub);
		RSA *rsa = src ? RSAPublicKey_dup(src) : NULL;

		if (!rsa)
			goto oom;
		if (RSA_set_method(rsa, rsa_method) != 1 ||
		    RSA_set_ex_data(rsa, rsa_index, ref) != 1) {
			RSA_free(rsa);
			goto oom;
		}
		ref = NULL;
		if (EVP_PKEY_assign_RSA(pkey, rsa) != 1) {
			RSA_free(rsa);
			goto oom;
		}
	} else {
		ref_free(NULL, ref, NULL, 0, 0, NULL);
		EVP_PKEY_free(pkey);
		return err_set(e, -ENOTSUP,
			       "the key is neither EC nor RSA; keyd cannot sign with it");
	}
	*ret = pkey;
	return 0;
oom:
	ERR_clear_error();
	ref_free(NULL, ref, NULL, 0, 0, NULL);
	EVP_PKEY_free(pkey);
	return err_set(e, -ENOMEM, "cannot set up the keyd-held private key");
}
