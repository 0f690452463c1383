/* SPDX-License-Identifier: MIT */
/*
 * CA certificates that X.509 enrollment groups may reference by name
 * (attestation.x509.caReferences). A CA is trusted for attestation only
 * once it is verified: either by proof of possession of its key (Azure's
 * flow: the service issues a verification code, the owner signs a leaf
 * with CN = that code with the CA's key, the service checks the signature)
 * or by being listed in the config file ([[dps.ca_certificate]]).
 *
 * Stored document (STORE_CA_CERTIFICATES, key = name):
 *   {"name", "certificate": PEM, "isVerified": bool, "verificationCode":
 *    string or absent, "info": X509CertificateInfo, "createdDateTimeUtc",
 *    "lastUpdatedDateTimeUtc"}
 */
#ifndef EDGEID_DPS_CA_H
#define EDGEID_DPS_CA_H

#include <stdbool.h>

#include <jansson.h>
#include <openssl/x509.h>

#include "cloud/dps/dps.h"

struct store;

/* Add a CA. pem must be a CA certificate (basicConstraints CA:TRUE).
 * Returns 0, -EINVAL (bad name or certificate), -EEXIST, or a store code. */
int dps_ca_add(struct store *store, const char *name, const char *pem, bool verified,
	       json_t **ret_view, struct err *e);

/* Issue (and store) a fresh verification code for name. The code is the
 * caller's. Returns 0, -ENOENT, or a store code. */
int dps_ca_verification_code(struct store *store, const char *name, char **ret_code, struct err *e);

/* Check a proof of possession: pem is a certificate signed by the CA's key
 * whose subject CN is the current verification code. Marks the CA
 * verified. Returns 0, -ENOENT, -EINVAL (no code issued yet, bad PEM),
 * -EKEYREJECTED (the proof does not hold; reason in e), or a store code. */
int dps_ca_verify(struct store *store, const char *name, const char *pem, struct err *e);

/* Views (without the verification code's secrecy concerns: it is not a
 * secret). */
int dps_ca_get(struct store *store, const char *name, json_t **ret_view, struct err *e);
int dps_ca_list(struct store *store, json_t **ret_items, struct err *e);
int dps_ca_delete(struct store *store, const char *name, struct err *e);

/* Whether a CA of that name exists (in the config or the store). */
bool dps_ca_exists(struct store *store, const struct dps_settings *settings, const char *name);

/* The trusted certificate named name: a configured CA, or a stored one that
 * is verified. *ret is the caller's (X509_free). Returns 0, -ENOENT,
 * -EACCES (stored but not verified), or a store code. */
int dps_ca_trusted(struct store *store, const struct dps_settings *settings, const char *name,
		   X509 **ret, struct err *e);

#endif
