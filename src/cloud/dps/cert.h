/* SPDX-License-Identifier: MIT */
/*
 * X.509 for DPS: reading the PEM certificates of enrollments and CA
 * records, the X509CertificateInfo the service API reports, thumbprints,
 * and the application-layer chain verification of X.509 attestation (the
 * TLS layer accepts any client chain, http_server.h).
 */
#ifndef EDGEID_DPS_CERT_H
#define EDGEID_DPS_CERT_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <jansson.h>
#include <openssl/x509.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/macro.h"

DEFINE_CLEANUP_FUNC(X509 *, X509_free)
#define _cleanup_x509_ _cleanup_(X509_freep)

/* Thumbprints as Azure prints them: uppercase hex without separators. */
#define DPS_CERT_SHA1_HEX_LEN 40
#define DPS_CERT_SHA256_HEX_LEN 64

/* Parse one certificate. text is PEM ("-----BEGIN CERTIFICATE-----"), or
 * the base64 of the DER without armour (the portal and ARM accept both).
 * Anything after the first PEM certificate is ignored. Returns 0 and the
 * certificate in *ret (caller frees with X509_free), -EINVAL with "expected
 * a PEM certificate" in e. */
int dps_cert_parse(const char *text, X509 **ret, struct err *e);

/* Read a file holding one or more PEM certificates into a new stack (the
 * caller frees with OSSL_STACK_OF_X509_free / sk_X509_pop_free). Returns 0,
 * -ENOENT etc. (errno of reading, "PATH: cannot read: ..."), -EINVAL (no
 * certificate in it). */
int dps_cert_read_file(const char *path, STACK_OF(X509) * *ret, struct err *e);

/* SHA-1 / SHA-256 thumbprint of the DER as uppercase hex, into ret (at
 * least DPS_CERT_SHA256_HEX_LEN + 1 bytes). 0 or -EIO. */
int dps_cert_thumbprint(const X509 *cert, bool sha256, char *ret, size_t ret_size);

/* The subject's (last) commonName as UTF-8 in *ret (caller frees); NULL
 * when there is none. Returns 0, -ENOMEM. */
int dps_cert_common_name(const X509 *cert, char **ret);

/* X509CertificateInfo: {subjectName, sha1Thumbprint, sha256Thumbprint,
 * issuerName, notBeforeUtc, notAfterUtc, serialNumber, version}. Names are
 * "CN=dev1, O=Example" (RFC 2253 order reversed, as Azure shows them),
 * times ISO 8601 with "Z", the serial uppercase hex, version 3 for v3.
 * Returns a new object, or NULL on -ENOMEM. */
json_t *dps_cert_info(const X509 *cert);

/* Verify that leaf chains, through the untrusted certificates chain (may
 * be NULL), to one of anchors (a trust anchor may be an intermediate: the
 * chain stops there). Validity periods are checked at time now (0: the
 * current time). Returns 0, -EKEYREJECTED when it does not verify (the
 * reason in e), -ENOMEM, -EIO. */
int dps_cert_verify_chain(X509 *leaf, STACK_OF(X509) * chain, X509 *const *anchors,
			  size_t n_anchors, time_t now, struct err *e);

/* Whether cert is a CA certificate whose key signed leaf, and leaf's
 * subject commonName is expected (proof of possession of a CA's key:
 * the CA-verification flow). Returns 0, -EKEYREJECTED (with the reason). */
int dps_cert_check_possession(X509 *ca, X509 *leaf, const char *expected_cn, struct err *e);

/* Append the PEM of cert to out. 0, -E2BIG, -ENOMEM, -EIO. */
int dps_cert_to_pem(const X509 *cert, struct buf *out);

#endif
