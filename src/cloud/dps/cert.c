/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <string.h>

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "cloud/dps/cert.h"
#include "common/encode.h"
#include "common/fs.h"
#include "common/log.h"
#include "crypto/openssl_cleanup.h"

#define CERT_TEXT_MAX (64 * 1024)
#define CERT_FILE_MAX (1024 * 1024)

DEFINE_CLEANUP_FUNC(BIO *, BIO_free)
DEFINE_CLEANUP_FUNC(X509_STORE *, X509_STORE_free)
DEFINE_CLEANUP_FUNC(X509_STORE_CTX *, X509_STORE_CTX_free)

static int ssl_fail(const char *what)
{
	unsigned long code;

	while ((code = ERR_get_error()) != 0) {
		char text[256];

		ERR_error_string_n(code, text, sizeof(text));
		log_debug("%s: %s", what, text);
	}
	return -EIO;
}

int dps_cert_parse(const char *text, X509 **ret, struct err *e)
{
	_cleanup_(BIO_freep) BIO *bio = NULL;
	size_t len;
	X509 *cert = NULL;

	*ret = NULL;
	if (!text)
		return err_set(e, -EINVAL, "expected a PEM certificate");
	len = strlen(text);
	if (len == 0 || len > CERT_TEXT_MAX)
		return err_set(e, -EINVAL, "expected a PEM certificate");
	if (strstr(text, "-----BEGIN")) {
		bio = BIO_new_mem_buf(text, (int)len);
		if (!bio)
			return -ENOMEM;
		cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	} else {
		_cleanup_buf_ struct buf der = {0};
		const unsigned char *p;

		buf_init(&der, CERT_TEXT_MAX);
		if (base64_decode(&der, text, len, B64_IGNORE_WS, NULL) == 0 && der.len > 0) {
			p = (const unsigned char *)der.data;
			cert = d2i_X509(NULL, &p, (long)der.len);
		}
	}
	if (!cert) {
		ssl_fail("reading a certificate");
		return err_set(e, -EINVAL, "expected a PEM certificate");
	}
	*ret = cert;
	return 0;
}

int dps_cert_read_file(const char *path, STACK_OF(X509) * *ret, struct err *e)
{
	_cleanup_buf_ struct buf text = {0};
	_cleanup_(BIO_freep) BIO *bio = NULL;
	STACK_OF(X509) * certs;
	X509 *cert;
	int r;

	*ret = NULL;
	buf_init(&text, CERT_FILE_MAX);
	r = fs_read_file(path, CERT_FILE_MAX, &text, e);
	if (r < 0)
		return r;
	bio = BIO_new_mem_buf(text.data, (int)text.len);
	certs = sk_X509_new_null();
	if (!bio || !certs) {
		sk_X509_free(certs);
		return -ENOMEM;
	}
	while ((cert = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
		if (sk_X509_push(certs, cert) <= 0) {
			X509_free(cert);
			sk_X509_pop_free(certs, X509_free);
			return -ENOMEM;
		}
	}
	ERR_clear_error();
	if (sk_X509_num(certs) == 0) {
		sk_X509_free(certs);
		return err_set(e, -EINVAL, "%s: no PEM certificate in the file", path);
	}
	*ret = certs;
	return 0;
}

int dps_cert_thumbprint(const X509 *cert, bool sha256, char *ret, size_t ret_size)
{
	static const char hex[] = "0123456789ABCDEF";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;

	if (X509_digest(cert, sha256 ? EVP_sha256() : EVP_sha1(), md, &md_len) != 1)
		return ssl_fail("X509_digest");
	if (ret_size < (size_t)md_len * 2 + 1)
		return -EINVAL;
	for (unsigned int i = 0; i < md_len; i++) {
		ret[2 * i] = hex[md[i] >> 4];
		ret[2 * i + 1] = hex[md[i] & 0xf];
	}
	ret[md_len * 2] = '\0';
	return 0;
}

int dps_cert_common_name(const X509 *cert, char **ret)
{
	const X509_NAME *name = X509_get_subject_name(cert);
	int idx = -1, last = -1;
	unsigned char *utf8 = NULL;
	int n;

	*ret = NULL;
	while ((idx = X509_NAME_get_index_by_NID(name, NID_commonName, idx)) >= 0)
		last = idx;
	if (last < 0)
		return 0;
	n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, last)));
	if (n < 0)
		return 0;
	*ret = strndup((const char *)utf8, (size_t)n);
	OPENSSL_free(utf8);
	if (!*ret)
		return -ENOMEM;
	/* A name with an embedded NUL is not a registration id. */
	if (strlen(*ret) != (size_t)n) {
		free(*ret);
		*ret = NULL;
	}
	return 0;
}

static char *name_text(const X509_NAME *name)
{
	_cleanup_(BIO_freep) BIO *bio = BIO_new(BIO_s_mem());
	char *data = NULL;
	long len;

	if (!bio)
		return NULL;
	/* RFC 2253 prints the most specific RDN first ("CN=x,O=y"); Azure
	 * separates them with ", ". */
	if (X509_NAME_print_ex(bio, name, 0,
			       (XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB & ~XN_FLAG_SEP_MASK) |
				   XN_FLAG_SEP_CPLUS_SPC) < 0)
		return NULL;
	len = BIO_get_mem_data(bio, &data);
	if (len < 0)
		return NULL;
	return strndup(data ? data : "", (size_t)len);
}

static json_t *asn1_time_iso(const ASN1_TIME *t)
{
	struct tm tm;
	char text[32];

	if (!t || ASN1_TIME_to_tm(t, &tm) != 1)
		return json_null();
	if (strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		return json_null();
	return json_string(text);
}

json_t *dps_cert_info(const X509 *cert)
{
	char sha1[DPS_CERT_SHA1_HEX_LEN + 1], sha256[DPS_CERT_SHA256_HEX_LEN + 1];
	_cleanup_free_ char *subject = name_text(X509_get_subject_name(cert));
	_cleanup_free_ char *issuer = name_text(X509_get_issuer_name(cert));
	_cleanup_(BN_freep) BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
	char *serial = bn ? BN_bn2hex(bn) : NULL;
	json_t *info;

	if (!subject || !issuer || !serial ||
	    dps_cert_thumbprint(cert, false, sha1, sizeof(sha1)) < 0 ||
	    dps_cert_thumbprint(cert, true, sha256, sizeof(sha256)) < 0) {
		OPENSSL_free(serial);
		return NULL;
	}
	info = json_pack("{s:s, s:s, s:s, s:s, s:o, s:o, s:s, s:I}", "subjectName", subject,
			 "sha1Thumbprint", sha1, "sha256Thumbprint", sha256, "issuerName", issuer,
			 "notBeforeUtc", asn1_time_iso(X509_get0_notBefore(cert)), "notAfterUtc",
			 asn1_time_iso(X509_get0_notAfter(cert)), "serialNumber", serial, "version",
			 (json_int_t)X509_get_version(cert) + 1);
	OPENSSL_free(serial);
	return info;
}

int dps_cert_verify_chain(X509 *leaf, STACK_OF(X509) * chain, X509 *const *anchors,
			  size_t n_anchors, time_t now, struct err *e)
{
	_cleanup_(X509_STORE_freep) X509_STORE *store = X509_STORE_new();
	_cleanup_(X509_STORE_CTX_freep) X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	int r;

	if (!store || !ctx)
		return -ENOMEM;
	if (n_anchors == 0)
		return err_set(e, -EKEYREJECTED, "no trusted certificate to verify against");
	for (size_t i = 0; i < n_anchors; i++)
		if (X509_STORE_add_cert(store, anchors[i]) != 1)
			return ssl_fail("X509_STORE_add_cert");
	if (X509_STORE_CTX_init(ctx, store, leaf, chain) != 1)
		return ssl_fail("X509_STORE_CTX_init");
	/* A group's signing certificate may be an intermediate: accept a
	 * chain that ends at any trusted certificate, not only at a root. */
	X509_STORE_CTX_set_flags(ctx, X509_V_FLAG_PARTIAL_CHAIN);
	if (now)
		X509_STORE_CTX_set_time(ctx, 0, now);
	r = X509_verify_cert(ctx);
	if (r != 1) {
		int code = X509_STORE_CTX_get_error(ctx);

		ERR_clear_error();
		return err_set(e, -EKEYREJECTED, "certificate chain does not verify: %s",
			       X509_verify_cert_error_string(code));
	}
	return 0;
}

int dps_cert_check_possession(X509 *ca, X509 *leaf, const char *expected_cn, struct err *e)
{
	_cleanup_free_ char *cn = NULL;
	EVP_PKEY *key = X509_get0_pubkey(ca);
	int r;

	if (!key)
		return err_set(e, -EKEYREJECTED, "the CA certificate has no usable public key");
	if (X509_verify(leaf, key) != 1) {
		ERR_clear_error();
		return err_set(e, -EKEYREJECTED,
			       "the verification certificate is not signed by the CA's key");
	}
	r = dps_cert_common_name(leaf, &cn);
	if (r < 0)
		return r;
	if (!cn || !streq(cn, expected_cn))
		return err_set(e, -EKEYREJECTED,
			       "the verification certificate's subject CN must be the verification "
			       "code \"%s\", got \"%s\"",
			       expected_cn, cn ? cn : "(none)");
	return 0;
}

int dps_cert_to_pem(const X509 *cert, struct buf *out)
{
	_cleanup_(BIO_freep) BIO *bio = BIO_new(BIO_s_mem());
	char *data = NULL;
	long len;

	if (!bio)
		return -ENOMEM;
	if (PEM_write_bio_X509(bio, cert) != 1)
		return ssl_fail("PEM_write_bio_X509");
	len = BIO_get_mem_data(bio, &data);
	if (len < 0)
		return -EIO;
	return buf_append(out, data, (size_t)len);
}
