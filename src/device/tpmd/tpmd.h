/* SPDX-License-Identifier: MIT */
/*
 * tpmd: aziot's TPM Service API (specs/aziot-compat.md §2.4) over src/tpm.
 *
 * The daemon owns the TPM through one ESAPI context, opened at start-up and
 * kept: it ensures the EK (0x81010001) and SRK (0x81000001) exist, imports
 * the DPS authentication key and signs with it. When the TPM cannot be
 * reached it keeps serving, answers 503 with the reason and tries again
 * with a growing delay (tpmd_conn below).
 *
 * What crosses the socket: public areas (EK, SRK), the authentication-key
 * blob (wrapped to this TPM's EK and SRK: useless anywhere else) and HMAC
 * digests. The HMAC key never leaves the TPM.
 */
#ifndef EDGEID_TPMD_H
#define EDGEID_TPMD_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/err.h"
#include "device/daemon/daemon.h"
#include "tpm/tpm.h"

extern const struct daemon_spec tpmd_spec;

/* The only api-version of the TPM Service API. */
#define TPMD_API_VERSION "2020-09-01"
/* The user whose uid may call when no [[principal]] is configured: Azure's
 * identityd, tpmd's only client. */
#define TPMD_DEFAULT_PRINCIPAL_USER "aziotid"
/* [tpm] auth_key_index: an offset from 0x81000000. */
#define TPMD_AUTH_KEY_INDEX_DEFAULT 0x000100
#define TPMD_AUTH_KEY_INDEX_MAX 0x7FFFFF
/* Decoded sizes accepted in request fields. */
#define TPMD_KEY_BLOB_MAX 16384
#define TPMD_SIGN_DATA_MAX 65536

/* --- settings (tpmd_settings.c) ------------------------------------------ */

struct tpmd_settings {
	char *tcti;               /* never NULL; "" lets the loader choose */
	uint32_t auth_key_handle; /* 0x81000000 + auth_key_index */
	char *endorsement_auth;   /* secret; never NULL, "" when unset */
	char *owner_auth;         /* secret; never NULL, "" when unset */
	/* Who may call besides uid 0: the [[principal]] uids, or, with no
	 * [[principal]] at all, the uid of TPMD_DEFAULT_PRINCIPAL_USER when
	 * that user exists (then uids_from_default is set). */
	uid_t *uids;
	size_t n_uids;
	bool uids_from_default;
};

/* Read tpmd's settings from c:
 *   tcti = "device"                   (string; default "device")
 *   auth_key_index = 0x000100         (integer 0..0x7FFFFF)
 *   [hierarchy_authorization]         (endorsement, owner: strings of at
 *                                      most TPM_AUTH_VALUE_MAX bytes)
 *   [[principal]] uid = N             (integer 0..4294967294; no other key)
 * Other top-level keys are left alone (max_requests is the runtime's; aziot
 * ignores unknown keys too). Errors name file, line and column:
 * "FILE:2:18: auth_key_index: expected an integer, got a string".
 * Returns 0 (clear *ret with tpmd_settings_clear), -EINVAL or -ENOMEM. */
int tpmd_settings_parse(const struct daemon_config *c, struct tpmd_settings *ret, struct err *e);
/* Wipe the authorization values and free everything; *s is left zeroed.
 * Accepts a zeroed struct. */
void tpmd_settings_clear(struct tpmd_settings *s);
/* Whether a and b open the TPM the same way (tcti and both
 * authorization values); the auth key handle and principals may differ. */
bool tpmd_settings_same_tpm(const struct tpmd_settings *a, const struct tpmd_settings *b);
/* May uid call? uid 0 always may; otherwise uid must be in s->uids. */
bool tpmd_settings_allow(const struct tpmd_settings *s, uid_t uid);

/* --- the TPM connection (tpmd_conn.c) ------------------------------------ */

/* Retry delays after failed attempts to reach the TPM, in seconds: the
 * first retry after TPMD_RETRY_FIRST_S, doubling up to TPMD_RETRY_MAX_S. */
#define TPMD_RETRY_FIRST_S 1
#define TPMD_RETRY_MAX_S 60
/* A request that finds the TPM unavailable tries once itself when the
 * last attempt is at least this old, so a TPM that came back is used at
 * once rather than at the next timer. */
#define TPMD_RETRY_ON_REQUEST_MS 1000

struct event_base;
struct tpmd_conn;

/* A connection to the TPM of tcti with the given hierarchy authorization
 * (the strings are copied), not yet attempted. Returns 0 and *ret (free
 * with tpmd_conn_free), or -ENOMEM. */
int tpmd_conn_new(struct event_base *base, const char *tcti, const struct tpm_hierarchy_auth *auth,
		  struct tpmd_conn **ret);
/* The first attempt: tpm_open, then tpm_ensure_ek and tpm_ensure_srk. When
 * it fails the reason is logged at error level and later attempts run from
 * a timer on base. */
void tpmd_conn_start(struct tpmd_conn *c);
/* Close the TPM, cancel the timer, wipe the authorization. Accepts NULL. */
void tpmd_conn_free(struct tpmd_conn *c);
static inline void tpmd_conn_freep(struct tpmd_conn **c)
{
	tpmd_conn_free(*c);
}
#define _cleanup_tpmd_conn_ _cleanup_(tpmd_conn_freep)

/* The open TPM, or NULL with the reason it is not available in e ("tpm.tcti
 * \"device\": cannot reach the TPM (...)"). Borrowed until the next call of
 * tpmd_conn_lost or tpmd_conn_free. */
struct tpm *tpmd_conn_get(struct tpmd_conn *c, struct err *e);

/* A TPM command failed with r and message e. When r can mean that the TPM
 * went away (-EIO, -ECONNREFUSED, -ECONNRESET, -EPIPE) and the TPM does
 * not answer a probe either, the context is closed and retries are
 * scheduled. Returns true when the connection was lost. */
bool tpmd_conn_check_lost(struct tpmd_conn *c, int r, const struct err *e);

#endif
