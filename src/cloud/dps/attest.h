/* SPDX-License-Identifier: MIT */
/*
 * Attestation: which enrollment a device registration request proves it
 * belongs to (dps-protocol.md §1.9, §2, §3).
 *
 *   Authorization: SharedAccessSignature ...   symmetric key (individual
 *       enrollment keys, else each symmetric-key group's derived keys) or,
 *       for a TPM enrollment, the key K1 of the device's last challenge;
 *   a TLS client certificate (no Authorization)   X.509: the individual
 *       enrollment's certificate by thumbprint, else a group whose signing
 *       certificate or verified CA the chain verifies to; the subject CN must
 *       be the registration id;
 *   neither, with a "tpm" object in the body   TPM: the challenge. The EK
 *       must be the individual enrollment's; a fresh 32-byte K1 goes to the
 *       device in the authenticationKey blob, built for the enrollment's EK
 *       and the request's SRK, and is stored with that SRK in the
 *       registration record, so that the signed PUT can reach any worker.
 *
 * An individual enrollment takes precedence: when one exists for the
 * registration id, groups are not consulted. Every failure that could tell
 * whether an enrollment exists answers the same "Unauthorized".
 */
#ifndef EDGEID_DPS_ATTEST_H
#define EDGEID_DPS_ATTEST_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>
#include <openssl/x509.h>

#include "cloud/dps/dps.h"

struct store;

#define DPS_ATTEST_CHALLENGE 1
#define DPS_MSG_UNAUTHORIZED "Unauthorized"
#define DPS_MSG_TPM_CHALLENGE "Authorization required, resend request using supplied key"

enum dps_attest_type {
	DPS_ATTEST_SYMMETRIC_KEY,
	DPS_ATTEST_X509,
	DPS_ATTEST_TPM,
};

struct dps_attest_request {
	const char *registration_id; /* from the path, as received */
	const char *authorization;   /* the header, or NULL */
	STACK_OF(X509) * peer_chain; /* leaf first; NULL without a client certificate */
	const json_t *tpm;           /* the body's "tpm" object, or NULL */
	bool allow_challenge;        /* register: answer a TPM request without auth */
	/* The device's registration record when the caller has it (NULL: read
	 * it when needed): its TPM challenge, and its enrollment group, which
	 * is tried before the others (a status poll need not scan groups). */
	const json_t *record;
	uint64_t now; /* 0: time(NULL) */
};

struct dps_attest_result {
	enum dps_attest_type type;
	json_t *enrollment; /* the stored individual enrollment or group */
	char *group_id;     /* NULL for an individual enrollment */
	/* Symmetric key: the device's keys (the enrollment's, or derived from
	 * the group's), base64; wiped when cleared. */
	char *primary_key;
	char *secondary_key;
	/* X.509: X509CertificateInfo of the leaf, and for groups of the
	 * certificate the chain verified to. */
	json_t *certificate_info;
	json_t *signing_info;
	/* TPM: the base64 SRK the device's key was imported under. */
	char *srk;
	/* When DPS_ATTEST_CHALLENGE is returned: the 401 body. */
	json_t *challenge;
};

/* Authenticate req. Returns:
 *   0                     authenticated: ret is filled (dps_attest_result_clear);
 *   DPS_ATTEST_CHALLENGE  TPM challenge issued: ret->challenge is the 401 body;
 *   -EACCES               not authenticated (401 401002; the message in e);
 *   -EBADMSG              the request's EK or SRK is malformed (400 400004);
 *   other negative errno  a store or crypto failure (500). */
int dps_attest(struct store *store, const struct dps_settings *settings,
	       const struct dps_attest_request *req, struct dps_attest_result *ret, struct err *e);

void dps_attest_result_clear(struct dps_attest_result *r);

const char *dps_attest_type_name(enum dps_attest_type t);

#endif
