/* SPDX-License-Identifier: MIT */
/*
 * The device's TPM through tpm2-tss ESAPI, for edgeid-tpmd: the EK and SRK
 * (created and persisted when missing), the DPS authentication key
 * (ActivateCredential + Import, dps-protocol.md §3.6) and HMAC signing with
 * it. docs/internals/tpm.md describes handles, templates and sequences.
 *
 * One struct tpm owns one ESAPI context; it is not thread-safe (one daemon
 * owns the TPM and serialises requests). Every function leaves no transient
 * object or session loaded in the TPM, on success and on failure.
 *
 * Errors: 0 or a negative errno, and one sentence in e naming the TPM
 * command and the tpm2-tss decoding of its response code, e.g.
 *   "TPM2_ActivateCredential: tpm:parameter(2):integrity check failed".
 * The response codes map to errno values as follows (tpm.md has the table):
 *   -ENOENT      no object at a persistent handle (TPM_RC_HANDLE)
 *   -EACCES      a hierarchy or object authorization failed or is locked out
 *   -EBADMSG     the TPM refused data given to it (a blob made for another
 *                TPM, a corrupt duplicate, ...)
 *   -EEXIST      a persistent handle is occupied (TPM_RC_NV_DEFINED)
 *   -ENOSPC      no room: object/session slots or persistent memory
 *   -EAGAIN      the TPM asks to retry (TPM_RC_RETRY, _YIELDED, _TESTING)
 *   -EIO         the TCTI could not reach the TPM; other TPM failures
 *   -ENOMEM, -EINVAL (bad arguments, message says which), -E2BIG (a ret
 *                buffer's maximum would be exceeded)
 */
#ifndef EDGEID_TPM_H
#define EDGEID_TPM_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/macro.h"

/* Persistent handles (tpm-identity.md §1, aziot-compat.md §4.4). */
#define TPM_EK_HANDLE 0x81010001u
#define TPM_SRK_HANDLE 0x81000001u
/* 0x81000000 + the default [tpm] auth_key_index (0x000100). */
#define TPM_AUTH_KEY_HANDLE_DEFAULT 0x81000100u
/* Owner-managed persistent range, where the auth key may live. */
#define TPM_PERSISTENT_OWNER_FIRST 0x81000000u
#define TPM_PERSISTENT_OWNER_LAST 0x817FFFFFu
#define TPM_PERSISTENT_LAST 0x81FFFFFFu

/* Longest hierarchy authorization value (sizeof(TPMU_HA)). */
#define TPM_AUTH_VALUE_MAX 64
/* HMAC-SHA256 output. */
#define TPM_HMAC_LEN 32

struct tpm;

/* [tpm.hierarchy_authorization]: the authorization values of
 * TPM_RH_ENDORSEMENT and TPM_RH_OWNER as configured. NULL and "" both mean
 * empty. They are given to the TPM without aziot's trailing NUL, which the
 * TPM strips from authorization values anyway (tpm.md). */
struct tpm_hierarchy_auth {
	const char *endorsement;
	const char *owner;
};

/* Open the TPM through a TCTI loader string, as in config.toml [tpm] tcti:
 * "device", "device:/dev/tpmrm0", "swtpm:host=127.0.0.1,port=2321",
 * "tabrmd", ...; NULL or "" lets the loader try its default list. auth may
 * be NULL (both empty). Sends one TPM2_GetCapability to check that the TPM
 * answers. *ret is owned by the caller (tpm_close). Returns 0, -EINVAL (an
 * authorization value longer than TPM_AUTH_VALUE_MAX), -ENOENT (no TCTI
 * library of that name), -EIO (the TPM cannot be reached), -ENOMEM. */
int tpm_open(const char *tcti, const struct tpm_hierarchy_auth *auth, struct tpm **ret,
	     struct err *e) _nodiscard_;
/* Release the ESAPI and TCTI contexts and wipe the authorization values.
 * Accepts NULL. */
void tpm_close(struct tpm *t);
static inline void tpm_closep(struct tpm **t)
{
	tpm_close(*t);
}
#define _cleanup_tpm_ _cleanup_(tpm_closep)

/* The EK at TPM_EK_HANDLE. When the handle is empty, create it with the TCG
 * default template L-1 (what `tpm2_createek -G rsa` uses: RSA-2048,
 * SHA-256, attributes 0x000300B2, PolicySecret(TPM_RH_ENDORSEMENT) policy,
 * AES-128-CFB, 256 zero bytes of unique) under the endorsement hierarchy
 * and persist it (owner authorization). An object already at the handle is
 * used as it is. Appends the marshalled TPM2B_PUBLIC (exactly the bytes of
 * `tpm2_readpublic -c 0x81010001 -o ek.pub`; 316 for an RSA-2048 EK) to
 * ret_ek_pub. Returns 0 or an error above. */
int tpm_ensure_ek(struct tpm *t, struct buf *ret_ek_pub, struct err *e) _nodiscard_;

/* The SRK at TPM_SRK_HANDLE, created when missing with the template of
 * `tpm2_createprimary -C o` (tpm2-tools 5.x defaults: RSA-2048, SHA-256,
 * attributes 0x00030072 = fixedtpm|fixedparent|sensitivedataorigin|
 * userwithauth|restricted|decrypt, empty authPolicy, AES-128-CFB, empty
 * unique) under the owner hierarchy, and persisted. Appends the marshalled
 * TPM2B_PUBLIC (284 bytes for RSA-2048) to ret_srk_pub. */
int tpm_ensure_srk(struct tpm *t, struct buf *ret_srk_pub, struct err *e) _nodiscard_;

/* Append the marshalled TPM2B_PUBLIC of the object at handle (a persistent
 * handle 0x81000000-0x81FFFFFF) to ret. -ENOENT when the handle is empty. */
int tpm_read_public(struct tpm *t, uint32_t handle, struct buf *ret, struct err *e) _nodiscard_;

/* Remove the persistent object at handle (owner authorization).
 * -ENOENT when the handle is empty. */
int tpm_evict(struct tpm *t, uint32_t handle, struct err *e) _nodiscard_;

/* The DPS flow: take the authenticationKey blob (base64-decoded; six TPM2B
 * items, tpm_blob_parse), recover its inner wrapper key with
 * PolicySecret(TPM_RH_ENDORSEMENT) + ActivateCredential(SRK, EK), Import the
 * HMAC key under the SRK (AES-128-CFB inner wrapper), Load it, and persist it
 * at persistent_handle, replacing what was there. The old object is removed
 * only once the new key is loaded, so a blob that fails leaves it in place.
 * The EK and SRK must exist (tpm_ensure_ek/srk). The inner key is wiped.
 * Returns 0, or:
 *   -EINVAL   persistent_handle outside 0x81000000-0x817FFFFF, or the EK's
 *             or SRK's handle;
 *   -EBADMSG  malformed blob, or the TPM refused it (made for another EK or
 *             SRK, tampered with); the message says which command refused;
 *   -EOPNOTSUPP  the blob's key is not an HMAC-SHA256 key;
 *   -ENOENT   no EK or SRK; or any error above. */
int tpm_import_auth_key(struct tpm *t, const void *blob, size_t len, uint32_t persistent_handle,
			struct err *e) _nodiscard_;

/* HMAC-SHA256 of data under the key at persistent_handle: TPM2_HMAC when
 * len fits the TPM's input buffer (TPM_PT_INPUT_BUFFER, at most 1024), an
 * HMAC sequence (HMAC_Start, SequenceUpdate, SequenceComplete) otherwise.
 * data may be NULL when len is 0. Returns 0 and fills ret_mac, -ENOENT (no
 * key imported at that handle), -EBADMSG or -EACCES (the object there is no
 * HMAC-SHA256 key usable with an empty password, e.g. the EK), or an error
 * above. */
int tpm_hmac(struct tpm *t, uint32_t persistent_handle, const void *data, size_t len,
	     uint8_t ret_mac[TPM_HMAC_LEN], struct err *e) _nodiscard_;

/* Flush every transient object (HMAC sequences included) and every loaded
 * session the TPM lists, for the daemon that owns the TPM to call when it
 * opens it. Without a resource manager (swtpm:, /dev/tpm0) the TPM keeps
 * what a client left loaded when it died: a tpmd killed in the middle of
 * an import leaves its policy session and the loaded key there, and swtpm
 * has three object slots, so a few such deaths make every later import
 * fail with -ENOSPC. Such a TPM serves one client at a time, so what is
 * loaded when its owner connects belongs to a client that is gone. Saved
 * (context-saved) sessions are not loaded and are left alone; through a
 * resource manager (/dev/tpmrm0, tabrmd) a connection sees only its own
 * handles, and this flushes nothing. *ret_flushed (may be NULL) is the
 * number flushed. Returns 0, or an error above with "flushing what an
 * earlier client left loaded: TPM2_FlushContext(0x80000001): ...". */
int tpm_flush_leftovers(struct tpm *t, uint32_t *ret_flushed, struct err *e) _nodiscard_;

/* How many transient objects and loaded sessions the TPM holds
 * (TPM2_GetCapability TPM_CAP_HANDLES); both are 0 between calls of this
 * API unless another client left something behind. */
int tpm_loaded_handles(struct tpm *t, uint32_t *ret_transient, uint32_t *ret_sessions,
		       struct err *e) _nodiscard_;

#endif
