/* SPDX-License-Identifier: MIT */
/*
 * What certd reads from callers (PEM certificates, PEM PKCS#10 requests)
 * and the certificate it builds from a request. Everything here is plain
 * OpenSSL on values in memory: no files, no keyd (the signing key is an
 * EVP_PKEY the caller made, normally one whose private half is in keyd).
 * OpenSSL failures become errnos here, with the queue logged at debug.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "crypto/hash.h"
#include "device/certd/certd.h"

DEFINE_CLEANUP_FUNC(BIO *, BIO_free)
DEFINE_CLEANUP_FUNC(X509 *, X509_free)
DEFINE_CLEANUP_FUNC(X509_REQ *, X509_REQ_free)
DEFINE_CLEANUP_FUNC(X509_NAME *, X509_NAME_free)
DEFINE_CLEANUP_FUNC(ASN1_OCTET_STRING *, ASN1_OCTET_STRING_free)
DEFINE_CLEANUP_FUNC(AUTHORITY_KEYID *, AUTHORITY_KEYID_free)
DEFINE_CLEANUP_FUNC(BIGNUM *, BN_free)

static void x509_stack_free(STACK_OF(X509) * *p)
{
	sk_X509_pop_free(*p, X509_free);
}

static void ext_stack_free(STACK_OF(X509_EXTENSION) * *p)
{
	sk_X509_EXTENSION_pop_free(*p, X509_EXTENSION_free);
}

static void openssl_freep(unsigned char **p)
{
	OPENSSL_free(*p);
}

static void openssl_charp_freep(char **p)
{
	OPENSSL_free(*p);
}

/* --- PEM -------------------------------------------------------------------------- */

/* One PEM block from bio: 1 with its label and DER, 0 at the end (only
 * explanatory text left), -EINVAL for a block that is broken (a BEGIN line
 * without its END, bad base64). */
static int next_block(BIO *bio, char **ret_name, unsigned char **ret_der, long *ret_len)
{
	char *header = NULL;
	unsigned long err;

	ERR_clear_error();
	if (PEM_read_bio(bio, ret_name, &header, ret_der, ret_len) == 1) {
		OPENSSL_free(header);
		return 1;
	}
	err = ERR_peek_last_error();
	ERR_clear_error();
	if (ERR_GET_LIB(err) == ERR_LIB_PEM && ERR_GET_REASON(err) == PEM_R_NO_START_LINE)
		return 0;
	return -EINVAL;
}

int certd_pem_chain_parse(const char *text, size_t len, STACK_OF(X509) * *ret, struct err *e)
{
	_cleanup_(x509_stack_free) STACK_OF(X509) *chain = NULL;
	_cleanup_(BIO_freep) BIO *bio = NULL;

	if (len > CERTD_PEM_MAX)
		return err_set(e, -EINVAL, "the PEM text is larger than %d bytes", CERTD_PEM_MAX);
	if (memchr(text, '\0', len))
		return err_set(e, -EINVAL, "the PEM text contains a NUL character");
	chain = sk_X509_new_null();
	bio = BIO_new_mem_buf(text, (int)len);
	if (!chain || !bio)
		return -ENOMEM;
	for (int i = 1;; i++) {
		_cleanup_(openssl_charp_freep) char *name = NULL;
		_cleanup_(openssl_freep) unsigned char *der = NULL;
		const unsigned char *p;
		long n = 0;
		X509 *x;
		int r = next_block(bio, &name, &der, &n);

		if (r == 0)
			break;
		if (r < 0)
			return err_set(
			    e, -EINVAL,
			    "PEM block %d is malformed (a BEGIN line without its END line, "
			    "or bad base64)",
			    i);
		if (!streq(name, "CERTIFICATE"))
			return err_set(e, -EINVAL,
				       "PEM block %d is a \"%s\", not a \"CERTIFICATE\"", i, name);
		p = der;
		x = d2i_X509(NULL, &p, n);
		if (!x || p != der + n) {
			X509_free(x);
			ERR_clear_error();
			return err_set(e, -EINVAL,
				       "certificate %d is not a valid X.509 certificate", i);
		}
		if (sk_X509_push(chain, x) <= 0) {
			X509_free(x);
			return -ENOMEM;
		}
	}
	if (sk_X509_num(chain) == 0)
		return err_set(e, -EINVAL,
			       "the text holds no PEM certificate (expected \"-----BEGIN "
			       "CERTIFICATE-----\")");
	*ret = TAKE_PTR(chain);
	return 0;
}

/* Does the request carry the same extension twice? RFC 5280 forbids it in
 * a certificate, and it would be copied there. */
static bool duplicate_extensions(const STACK_OF(X509_EXTENSION) * exts, char *ret_name, size_t n)
{
	for (int i = 0; i < sk_X509_EXTENSION_num(exts); i++)
		for (int j = i + 1; j < sk_X509_EXTENSION_num(exts); j++) {
			const ASN1_OBJECT *a =
			    X509_EXTENSION_get_object(sk_X509_EXTENSION_value(exts, i));
			const ASN1_OBJECT *b =
			    X509_EXTENSION_get_object(sk_X509_EXTENSION_value(exts, j));

			if (OBJ_cmp(a, b) == 0) {
				if (OBJ_obj2txt(ret_name, (int)n, a, 0) <= 0)
					snprintf(ret_name, n, "?");
				return true;
			}
		}
	return false;
}

int certd_csr_parse(const char *text, size_t len, X509_REQ **ret, struct err *e)
{
	_cleanup_(X509_REQ_freep) X509_REQ *req = NULL;
	_cleanup_(BIO_freep) BIO *bio = NULL;
	_cleanup_(openssl_charp_freep) char *name = NULL;
	_cleanup_(openssl_freep) unsigned char *der = NULL;
	_cleanup_(ext_stack_free) STACK_OF(X509_EXTENSION) *exts = NULL;
	const unsigned char *p;
	EVP_PKEY *pub;
	long n = 0;
	char ext_name[128];
	int r;

	if (len > CERTD_CSR_MAX)
		return err_set(e, -EINVAL, "the CSR is larger than %d bytes", CERTD_CSR_MAX);
	if (memchr(text, '\0', len))
		return err_set(e, -EINVAL, "the CSR contains a NUL character");
	bio = BIO_new_mem_buf(text, (int)len);
	if (!bio)
		return -ENOMEM;
	r = next_block(bio, &name, &der, &n);
	if (r <= 0)
		return err_set(e, -EINVAL,
			       "not a PEM certificate request (expected \"-----BEGIN CERTIFICATE "
			       "REQUEST-----\")");
	if (!streq(name, "CERTIFICATE REQUEST") && !streq(name, "NEW CERTIFICATE REQUEST"))
		return err_set(e, -EINVAL,
			       "the PEM block is a \"%s\", not a \"CERTIFICATE REQUEST\"", name);
	p = der;
	req = d2i_X509_REQ(NULL, &p, n);
	if (!req || p != der + n) {
		ERR_clear_error();
		return err_set(e, -EINVAL, "the PEM block does not hold a valid PKCS#10 request");
	}
	{
		_cleanup_(openssl_charp_freep) char *name2 = NULL;
		_cleanup_(openssl_freep) unsigned char *der2 = NULL;
		long n2 = 0;

		if (next_block(bio, &name2, &der2, &n2) != 0)
			return err_set(e, -EINVAL, "unexpected data after the certificate request");
	}
	pub = X509_REQ_get0_pubkey(req);
	if (!pub) {
		ERR_clear_error();
		return err_set(e, -EINVAL, "the CSR's public key is not one OpenSSL can read");
	}
	if (X509_REQ_verify(req, pub) != 1) {
		ERR_clear_error();
		return err_set(e, -EINVAL,
			       "the CSR's signature does not verify with its public key");
	}
	if (X509_REQ_get_attr_by_NID(req, NID_ext_req, -1) >= 0 ||
	    X509_REQ_get_attr_by_NID(req, NID_ms_ext_req, -1) >= 0) {
		exts = X509_REQ_get_extensions(req);
		if (!exts) {
			ERR_clear_error();
			return err_set(e, -EINVAL, "the CSR's requested extensions are malformed");
		}
		if (duplicate_extensions(exts, ext_name, sizeof(ext_name)))
			return err_set(e, -EINVAL, "the CSR requests the extension %s twice",
				       ext_name);
	}
	*ret = TAKE_PTR(req);
	return 0;
}

/* --- names --------------------------------------------------------------------------- */

char *certd_utf8_prefix(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t chars = 0;

	while (*p && chars < n) {
		p++;
		while ((*p & 0xc0) == 0x80)
			p++;
		chars++;
	}
	return strndup(s, (size_t)((const char *)p - s));
}

static int build_name(const struct certd_rdn *rdns, size_t n, X509_NAME **ret, struct err *e)
{
	_cleanup_(X509_NAME_freep) X509_NAME *name = X509_NAME_new();

	if (!name)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		if (OBJ_txt2nid(rdns[i].field) == NID_undef) {
			ERR_clear_error();
			return err_set(
			    e, -EINVAL,
			    "\"%s\" is not a name attribute OpenSSL knows (CN, O, OU, L, "
			    "ST, C, ...)",
			    rdns[i].field);
		}
		if (X509_NAME_add_entry_by_txt(name, rdns[i].field, MBSTRING_UTF8,
					       (const unsigned char *)rdns[i].value, -1, -1,
					       0) != 1) {
			ERR_clear_error();
			return err_set(e, -EINVAL,
				       "%s = \"%s\" is not a valid value for that field",
				       rdns[i].field, rdns[i].value);
		}
	}
	*ret = TAKE_PTR(name);
	return 0;
}

int certd_subject_check(const struct certd_rdn *rdns, size_t n, struct err *e)
{
	X509_NAME *name = NULL;
	int r = build_name(rdns, n, &name, e);

	X509_NAME_free(name);
	return r;
}

/* --- issuing --------------------------------------------------------------------------- */

static int ssl_fail(struct err *e, const char *what)
{
	(void)hash_ssl_error(what);
	return err_set(e, -EIO, "%s failed", what);
}

/*
 * The serial number: 16 random bytes, the top bit cleared (a positive
 * INTEGER) and the next one set (always 16 octets, never zero), so 126
 * random bits. aziot leaves the serial unset, which makes it 0 for every
 * certificate: then issuer and serial no longer name one certificate as
 * RFC 5280 requires, revocation cannot tell certificates apart, and some
 * TLS stacks refuse to see two certificates with the same issuer and
 * serial. Random serials are unique without certd keeping any state.
 */
static int set_serial(X509 *x, struct err *e)
{
	_cleanup_(BN_freep) BIGNUM *bn = NULL;
	unsigned char bytes[16];

	if (RAND_bytes(bytes, sizeof(bytes)) != 1)
		return ssl_fail(e, "generating a serial number");
	bytes[0] = (unsigned char)((bytes[0] & 0x7f) | 0x40);
	bn = BN_bin2bn(bytes, sizeof(bytes), NULL);
	if (!bn || !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)))
		return ssl_fail(e, "setting the serial number");
	return 0;
}

static void time_text(const ASN1_TIME *t, char *buf, size_t n)
{
	struct tm tm;

	if (ASN1_TIME_to_tm(t, &tm) != 1 || strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, n, "(an unreadable time)");
}

/* 9999-12-31T23:59:59Z */
#define LAST_TIME ((time_t)253402300799)

/* notBefore now, notAfter now + days, capped at the issuer's notAfter. */
static int set_validity(X509 *x, X509 *issuer, unsigned days, time_t now, struct err *e)
{
	if (issuer && X509_cmp_time(X509_get0_notAfter(issuer), &now) <= 0) {
		char when[64];

		time_text(X509_get0_notAfter(issuer), when, sizeof(when));
		ERR_clear_error();
		return err_set(e, -EKEYEXPIRED, "the issuer's certificate expired on %s", when);
	}
	if (!X509_time_adj_ex(X509_getm_notBefore(x), 0, 0, &now))
		return ssl_fail(e, "setting the validity");
	/* Past 9999 there is no time to write: RFC 5280's "no well-defined
	 * expiration date" is the latest there is. */
	if (now >= LAST_TIME || days > (uint64_t)(LAST_TIME - now) / 86400) {
		if (ASN1_TIME_set_string_X509(X509_getm_notAfter(x), "99991231235959Z") != 1)
			return ssl_fail(e, "setting the validity");
	} else if (!X509_time_adj_ex(X509_getm_notAfter(x), (int)days, 0, &now)) {
		return ssl_fail(e, "setting the validity");
	}
	if (issuer && ASN1_TIME_compare(X509_get0_notAfter(x), X509_get0_notAfter(issuer)) > 0 &&
	    X509_set1_notAfter(x, X509_get0_notAfter(issuer)) != 1)
		return ssl_fail(e, "capping the validity at the issuer's");
	return 0;
}

static int copy_extensions(X509 *x, X509_REQ *csr, struct err *e)
{
	_cleanup_(ext_stack_free) STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(csr);

	ERR_clear_error(); /* none is not an error */
	for (int i = 0; i < sk_X509_EXTENSION_num(exts); i++)
		if (X509_add_ext(x, sk_X509_EXTENSION_value(exts, i), -1) != 1)
			return ssl_fail(e, "copying the CSR's extensions");
	return 0;
}

/* SubjectKeyIdentifier, RFC 5280 4.2.1.2 method (1): the SHA-1 of the
 * subjectPublicKey bits. */
static int add_skid(X509 *x, struct err *e)
{
	_cleanup_(ASN1_OCTET_STRING_freep) ASN1_OCTET_STRING *id = NULL;
	const unsigned char *pk;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;
	int pk_len;

	if (X509_get_ext_by_NID(x, NID_subject_key_identifier, -1) >= 0)
		return 0;
	if (X509_PUBKEY_get0_param(NULL, &pk, &pk_len, NULL, X509_get_X509_PUBKEY(x)) != 1 ||
	    EVP_Digest(pk, (size_t)pk_len, md, &md_len, EVP_sha1(), NULL) != 1)
		return ssl_fail(e, "computing the subject key identifier");
	id = ASN1_OCTET_STRING_new();
	if (!id || ASN1_OCTET_STRING_set(id, md, (int)md_len) != 1 ||
	    X509_add1_ext_i2d(x, NID_subject_key_identifier, id, 0, X509V3_ADD_DEFAULT) != 1)
		return ssl_fail(e, "adding the subject key identifier");
	return 0;
}

/* AuthorityKeyIdentifier (keyid) from the issuer's SubjectKeyIdentifier;
 * none when the issuer has none, as in aziot. */
static int add_akid(X509 *x, X509 *issuer, struct err *e)
{
	_cleanup_(AUTHORITY_KEYID_freep) AUTHORITY_KEYID *akid = NULL;
	const ASN1_OCTET_STRING *skid;

	if (X509_get_ext_by_NID(x, NID_authority_key_identifier, -1) >= 0)
		return 0;
	skid = X509_get0_subject_key_id(issuer);
	ERR_clear_error();
	if (!skid)
		return 0;
	akid = AUTHORITY_KEYID_new();
	if (!akid || !(akid->keyid = ASN1_OCTET_STRING_dup(skid)) ||
	    X509_add1_ext_i2d(x, NID_authority_key_identifier, akid, 0, X509V3_ADD_DEFAULT) != 1)
		return ssl_fail(e, "adding the authority key identifier");
	return 0;
}

int certd_issue_cert(const struct certd_issue_params *p, X509 **ret, struct err *e)
{
	_cleanup_(X509_freep) X509 *x = X509_new();
	_cleanup_(X509_NAME_freep) X509_NAME *subject = NULL;
	EVP_PKEY *pub = X509_REQ_get0_pubkey(p->csr);
	time_t now = p->now ? p->now : time(NULL);
	int r;

	if (!x)
		return -ENOMEM;
	if (!pub)
		return ssl_fail(e, "reading the CSR's public key");
	if (p->n_subject > 0) {
		r = build_name(p->subject, p->n_subject, &subject, e);
		if (r < 0)
			return r;
	}
	if (X509_set_version(x, X509_VERSION_3) != 1 ||
	    X509_set_subject_name(x, subject ? subject : X509_REQ_get_subject_name(p->csr)) != 1 ||
	    X509_set_issuer_name(x, p->issuer ? X509_get_subject_name(p->issuer)
					      : X509_get_subject_name(x)) != 1 ||
	    X509_set_pubkey(x, pub) != 1)
		return ssl_fail(e, "setting the certificate's names and key");
	r = set_serial(x, e);
	if (r >= 0)
		r = set_validity(x, p->issuer,
				 p->expiry_days ? p->expiry_days : CERTD_EXPIRY_DAYS_DEFAULT, now,
				 e);
	if (r >= 0)
		r = copy_extensions(x, p->csr, e);
	if (r >= 0)
		r = add_skid(x, e);
	if (r >= 0 && p->issuer)
		r = add_akid(x, p->issuer, e);
	if (r < 0)
		return r;
	if (X509_sign(x, p->key, EVP_sha256()) <= 0)
		return ssl_fail(e, "signing the certificate");
	/* The key that signed must be the issuer's (or for a self-signed
	 * certificate, the subject's own): a certificate nobody can verify is
	 * refused here rather than handed out. */
	if (X509_verify(x, p->issuer ? X509_get0_pubkey(p->issuer) : pub) != 1) {
		ERR_clear_error();
		return err_set(e, -EKEYREJECTED,
			       p->issuer ? "the signing key is not the issuer certificate's key"
					 : "the signing key is not the CSR's key");
	}
	*ret = TAKE_PTR(x);
	return 0;
}

int certd_pem_encode(X509 *cert, STACK_OF(X509) * chain, struct buf *out)
{
	_cleanup_(BIO_freep) BIO *bio = BIO_new(BIO_s_mem());
	char *data;
	long len;

	if (!bio)
		return -ENOMEM;
	if (PEM_write_bio_X509(bio, cert) != 1)
		return hash_ssl_error("PEM-encoding the certificate");
	for (int i = 0; i < sk_X509_num(chain); i++)
		if (PEM_write_bio_X509(bio, sk_X509_value(chain, i)) != 1)
			return hash_ssl_error("PEM-encoding the chain");
	len = BIO_get_mem_data(bio, &data);
	if (len < 0)
		return -EIO;
	return buf_append(out, data, (size_t)len);
}
