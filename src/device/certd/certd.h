/* SPDX-License-Identifier: MIT */
/*
 * certd: aziot's Certificates Service API (specs/aziot-compat.md §2.2) on
 * the daemon runtime. See docs/internals/certd.md for what crosses its
 * boundary.
 *
 * certd.c           the daemon: routes, the HTTP handlers, signing through keyd
 * certd_settings.c  its configuration: homedir_path, cert_issuance,
 *                   preloaded_certs, endpoints
 * certd_store.c     where a certificate id lives: reading, writing, deleting
 * certd_issue.c     PEM and CSR input, and building a certificate from a CSR
 *
 * certd holds no private key. Signing (self_signed, local_ca, an explicit
 * issuer) is done by keyd through a key handle; the only secret that passes
 * through certd is such a handle.
 */
#ifndef EDGEID_DEVICE_CERTD_H
#define EDGEID_DEVICE_CERTD_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <openssl/types.h>
#include <openssl/x509.h>

#include "common/buf.h"
#include "common/err.h"
#include "device/daemon/daemon.h"

/* The daemon, for edgeidd's table. */
extern const struct daemon_spec certd_spec;

/* The only api-version of the Certificates Service API. */
#define CERTD_API_VERSION "2020-09-01"
/* keyd's api-version certd speaks, as aziot-certd does. */
#define CERTD_KEYD_API_VERSION "2021-05-01"
/* Validity of an issued certificate when expiry_days is not set. */
#define CERTD_EXPIRY_DAYS_DEFAULT 30
#define CERTD_EXPIRY_DAYS_MAX 4294967295LL /* aziot's u32 */
/* Characters (not bytes) a common name is cut to, as aziot does (the
 * ub-common-name of RFC 5280). */
#define CERTD_CN_MAX 64
/* Largest PEM text certd accepts or reads: a CSR, and a certificate chain. */
#define CERTD_CSR_MAX (64 * 1024)
#define CERTD_PEM_MAX (512 * 1024)

/* --- settings (certd_settings.c) ------------------------------------------ */

enum certd_method {
	CERTD_METHOD_SELF_SIGNED,
	CERTD_METHOD_LOCAL_CA,
	CERTD_METHOD_EST,
};

/* One attribute of a subject override: field as OpenSSL names it ("CN",
 * "O", "organizationName"), value UTF-8. */
struct certd_rdn {
	char *field;
	char *value;
};

/* [cert_issuance.<id>]: how certificate id is issued without an explicit
 * issuer. */
struct certd_issuance {
	char *id;
	enum certd_method method;
	unsigned expiry_days; /* CERTD_EXPIRY_DAYS_DEFAULT when not set */
	/* The subject override, in the order it is written into the
	 * certificate (aziot's: common_name alone, or the subject table's
	 * fields sorted bytewise); n_subject 0: the CSR's subject. */
	struct certd_rdn *subject;
	size_t n_subject;
};

/* [preloaded_certs] <id>: a file, or a bundle of other ids. */
struct certd_preloaded {
	char *id;
	char *path; /* a file:// URI's path, under --root; NULL for a bundle */
	char **ids; /* a bundle's members */
	size_t n_ids;
};

struct certd_settings {
	char *homedir;     /* under --root; NULL: only preloaded certificates */
	char *certs_dir;   /* <homedir>/certs, or NULL */
	char *keyd_socket; /* [endpoints] aziot_keyd, default /run/aziot/keyd.sock */
	char *local_ca_cert, *local_ca_pk; /* [cert_issuance.local_ca] ids, or NULL */
	bool has_est;                      /* [cert_issuance.est] is present */
	struct certd_issuance *issuance;
	size_t n_issuance;
	struct certd_preloaded *preloaded;
	size_t n_preloaded;
};

/* Read certd's settings from c; absolute paths (homedir_path, file://
 * URIs, the keyd socket) are put under root when it is not NULL. Errors
 * name the file, line and column of the offending value:
 * "/etc/aziot/certd/config.toml:7:10: cert_issuance.x.method: expected one
 * of \"self_signed\", \"local_ca\", \"est\", got \"ca\"". Returns 0 (clear
 * *ret with certd_settings_clear), -EINVAL, -ENOMEM. */
int certd_settings_parse(const struct daemon_config *c, const char *root,
			 struct certd_settings *ret, struct err *e);
void certd_settings_clear(struct certd_settings *s);

/* Borrowed lookups; NULL when id has no entry. */
const struct certd_issuance *certd_settings_issuance(const struct certd_settings *s,
						     const char *id);
const struct certd_preloaded *certd_settings_preloaded(const struct certd_settings *s,
						       const char *id);

/* --- the store (certd_store.c) ---------------------------------------------- */

/* "<id without non-alphanumerics>-<sha256 hex of id>.cer", the name aziot
 * uses under <homedir>/certs/ (§4.2). *ret is the caller's. Returns 0,
 * -ENOMEM, -EIO. */
int certd_cert_file_name(const char *id, char **ret);

/* Create <homedir>/certs (0700) when there is a homedir, and remove the
 * temporaries an interrupted write left in it. 0 or a negative errno with
 * a sentence in e. */
int certd_store_setup(const struct certd_settings *s, struct err *e);

/*
 * The certificate text of id: a preloaded file, the concatenation of a
 * bundle's members (members that do not exist are skipped, as in aziot),
 * or <homedir>/certs/<name>. Appended to out (whose maximum should be
 * CERTD_PEM_MAX). Returns 0; -ENOENT when there is none (a bundle none of
 * whose members exists); -EFBIG, -EIO and other errnos of reading, with a
 * sentence in e.
 */
int certd_store_read(const struct certd_settings *s, const char *id, struct buf *out,
		     struct err *e);

/*
 * Write (atomically) or delete the certificate of id: a preloaded id's
 * file (keeping its permission bits), or <homedir>/certs/<name> with mode
 * 0600, owned by the daemon's user. Deleting what does not exist succeeds.
 * Returns 0; -EPERM when id is a preloaded bundle, -ENOENT when it is not
 * preloaded and there is no homedir_path (both with the sentence a caller
 * may be shown, in e); other errnos with detail for the log.
 */
int certd_store_write(const struct certd_settings *s, const char *id, const void *pem, size_t len,
		      struct err *e);
int certd_store_delete(const struct certd_settings *s, const char *id, struct err *e);

/* --- input and issuance (certd_issue.c) ------------------------------------------ */

/* Parse text (len bytes) as one or more PEM certificates, leaf first, with
 * nothing else in it but the explanatory text RFC 7468 allows between
 * blocks. Returns 0 and *ret (sk_X509_pop_free(X509_free)); -EINVAL with
 * the reason in e ("the PEM text holds no certificate", "PEM block 2 is a
 * \"PRIVATE KEY\", not a \"CERTIFICATE\"", ...); -ENOMEM. */
int certd_pem_chain_parse(const char *text, size_t len, STACK_OF(X509) * *ret, struct err *e);

/* Parse text as one PEM PKCS#10 request and verify its self-signature.
 * Returns 0 and *ret (X509_REQ_free); -EINVAL with the reason in e (not
 * PEM, not a request, a signature that does not verify, duplicate
 * extensions, trailing data); -ENOMEM. */
int certd_csr_parse(const char *text, size_t len, X509_REQ **ret, struct err *e);

/* Does the subject override rdns[n] make a valid X.509 name (known field
 * names, values within their types' limits)? 0, or -EINVAL with the field
 * in e. */
int certd_subject_check(const struct certd_rdn *rdns, size_t n, struct err *e);

/* The first n UTF-8 characters of s, as a new string (s itself when
 * shorter). NULL on -ENOMEM. */
char *certd_utf8_prefix(const char *s, size_t n);

struct certd_issue_params {
	X509_REQ *csr;                   /* verified */
	X509 *issuer;                    /* the issuer's certificate; NULL: self-signed */
	EVP_PKEY *key;                   /* signs: the issuer's private key, or the CSR key's own */
	const struct certd_rdn *subject; /* override, or NULL: the CSR's subject */
	size_t n_subject;
	unsigned expiry_days; /* 0: CERTD_EXPIRY_DAYS_DEFAULT */
	time_t now;           /* 0: time(NULL) */
};

/*
 * Build the certificate aziot's certd issues for a CSR (X.509 v3, public
 * key and extensions from the CSR, subject from the override or the CSR,
 * a random serial, notBefore now, notAfter now + expiry_days capped at the
 * issuer's notAfter, a SubjectKeyIdentifier and, with an issuer that has
 * one, an AuthorityKeyIdentifier, SHA-256) and sign it with p->key.
 * Returns 0 and *ret (X509_free), or:
 *   -EKEYEXPIRED   the issuer's certificate has expired (e says when)
 *   -EKEYREJECTED  the signature does not verify with the issuer's (or for
 *                  self-signed, the CSR's) public key: p->key is not the
 *                  key that belongs to it
 *   -EINVAL        the subject override is not a valid name (e says why)
 *   -EIO           OpenSSL or the key's signer failed (detail logged at
 *                  debug, a sentence in e)
 *   -ENOMEM
 */
int certd_issue_cert(const struct certd_issue_params *p, X509 **ret, struct err *e);

/* The PEM text of cert followed by chain's certificates (may be NULL),
 * appended to out. 0, -ENOMEM, -E2BIG, -EIO. */
int certd_pem_encode(X509 *cert, STACK_OF(X509) * chain, struct buf *out);

#endif
