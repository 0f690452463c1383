/* SPDX-License-Identifier: MIT */
/*
 * The DPS authentication key (dps-protocol.md §3.4-3.6, aziot-compat.md
 * §5.4): a blob from the provisioning service delivers an HMAC key that only
 * this TPM can load.
 *
 *   StartAuthSession(policy, SHA-256)
 *   PolicySecret(TPM_RH_ENDORSEMENT)               the EK's policy
 *   ActivateCredential(activate = SRK, key = EK)   -> the inner wrapper key
 *   Import(SRK, inner key, AES-128-CFB)            -> the key's private area
 *   Load(SRK)                                      -> a transient object
 *   EvictControl(old object at the handle)         only now: a bad blob
 *                                                  leaves the old key
 *   EvictControl(transient -> handle)
 *
 * Every transient object and the session are flushed on every path; the TPM
 * has only a few slots and, without a resource manager, keeps what a client
 * leaves behind.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "crypto/tpm_blob.h"

#include <tss2/tss2_mu.h>
#include <tss2/tss2_rc.h>

#include "common/log.h"
#include "tpm/tpm_internal.h"

/* Unmarshal one blob item into its TSS type, requiring that the item is
 * consumed exactly. tpm2-tss refuses to unmarshal a TPM2B_PUBLIC into a
 * destination whose size field is not 0: dest must be zeroed. */
#define UNMARSHAL_ITEM(type, item, dest, label, e)                                                 \
	({                                                                                         \
		size_t _off = 0;                                                                   \
		TSS2_RC _rc =                                                                      \
		    Tss2_MU_##type##_Unmarshal((item)->tpm2b, (item)->tpm2b_len, &_off, (dest));   \
		_rc != TSS2_RC_SUCCESS || _off != (item)->tpm2b_len                                \
		    ? err_set((e), -EBADMSG, "authentication key: %s: not a valid " #type, label)  \
		    : 0;                                                                           \
	})

struct import_items {
	TPM2B_ID_OBJECT credential;
	TPM2B_ENCRYPTED_SECRET secret;
	TPM2B_PRIVATE duplicate;
	TPM2B_ENCRYPTED_SECRET in_sym_seed;
	TPM2B_PUBLIC public;
};

static int unmarshal_blob(const void *blob, size_t len, struct import_items *ret, struct err *e)
{
	struct tpm_blob parts;
	int r;

	r = tpm_blob_parse(blob, len, &parts, e);
	if (r < 0)
		return r; /* "authentication key blob: ..." */
	r = UNMARSHAL_ITEM(TPM2B_ID_OBJECT, &parts.id_object, &ret->credential,
			   "item 1 (credentialBlob)", e);
	if (r >= 0)
		r = UNMARSHAL_ITEM(TPM2B_ENCRYPTED_SECRET, &parts.secret, &ret->secret,
				   "item 2 (secret)", e);
	if (r >= 0)
		r = UNMARSHAL_ITEM(TPM2B_PRIVATE, &parts.duplicate, &ret->duplicate,
				   "item 3 (duplicate)", e);
	if (r >= 0)
		r = UNMARSHAL_ITEM(TPM2B_ENCRYPTED_SECRET, &parts.in_sym_seed, &ret->in_sym_seed,
				   "item 4 (inSymSeed)", e);
	if (r >= 0)
		r = UNMARSHAL_ITEM(TPM2B_PUBLIC, &parts.id_public, &ret->public,
				   "item 5 (objectPublic)", e);
	return r;
}

/* A refusal of the blob's content by ActivateCredential or Import: the
 * usual cause is a blob made for another TPM, so say so. swtpm (libtpms)
 * answers a secret encrypted to another EK with TPM_RC_FAILURE (0x101)
 * rather than TPM_RC_VALUE, and stays operational; count it as a refusal
 * too. */
static int refused(struct err *e, TSS2_RC rc, const char *command, const char *hint)
{
	int r = tpm_rc_errno(rc);

	if (r == -EBADMSG || rc == TPM2_RC_FAILURE) {
		log_debug("tpm: %s: 0x%08" PRIx32 " %s", command, (uint32_t)rc, Tss2_RC_Decode(rc));
		return err_set(e, -EBADMSG, "%s: %s; %s", command, Tss2_RC_Decode(rc), hint);
	}
	return tpm_fail(e, rc, "%s", command);
}

/* PolicySecret + ActivateCredential: the inner wrapper key into ret_key. */
static int activate(struct tpm *t, const struct tpm_tr *srk, const struct tpm_tr *ek,
		    const struct import_items *items, TPM2B_DATA *ret_key, struct err *e)
{
	static const TPMT_SYM_DEF no_symmetric = {.algorithm = TPM2_ALG_NULL};
	_cleanup_tpm_tr_ struct tpm_tr session = TPM_TR_NONE(t);
	_cleanup_esys_digest_secret_ TPM2B_DIGEST *inner = NULL;
	_cleanup_esys_ TPM2B_TIMEOUT *timeout = NULL;
	_cleanup_esys_ TPMT_TK_AUTH *ticket = NULL;
	TSS2_RC rc;

	rc = Esys_StartAuthSession(t->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
				   ESYS_TR_NONE, NULL, TPM2_SE_POLICY, &no_symmetric,
				   TPM2_ALG_SHA256, &session.tr);
	if (rc != TSS2_RC_SUCCESS)
		return tpm_fail(e, rc, "TPM2_StartAuthSession");
	/* ESAPI starts sessions with continueSession set: the session stays
	 * loaded after use, and the cleanup flushes it. */
	session.flush = true;

	rc = Esys_PolicySecret(t->esys, ESYS_TR_RH_ENDORSEMENT, session.tr, ESYS_TR_PASSWORD,
			       ESYS_TR_NONE, ESYS_TR_NONE, NULL, NULL, NULL, 0, &timeout, &ticket);
	if (rc != TSS2_RC_SUCCESS)
		return tpm_fail(e, rc, "TPM2_PolicySecret(TPM_RH_ENDORSEMENT)");

	rc = Esys_ActivateCredential(t->esys, srk->tr, ek->tr, ESYS_TR_PASSWORD, session.tr,
				     ESYS_TR_NONE, &items->credential, &items->secret, &inner);
	if (rc != TSS2_RC_SUCCESS)
		return refused(e, rc, "TPM2_ActivateCredential",
			       "the authentication key was not made for this TPM's EK and SRK "
			       "(check the endorsement key enrolled for this device)");
	if (inner->size == 0 || inner->size > sizeof(ret_key->buffer))
		return err_set(
		    e, -EBADMSG,
		    "TPM2_ActivateCredential: the credential is %u bytes, expected 1-%zu",
		    inner->size, sizeof(ret_key->buffer));
	ret_key->size = inner->size;
	memcpy(ret_key->buffer, inner->buffer, inner->size);
	return 0;
}

/* Import + Load under the SRK: the new key as a transient object. */
static int import_and_load(struct tpm *t, const struct tpm_tr *srk,
			   const struct import_items *items, const TPM2B_DATA *inner,
			   struct tpm_tr *ret, struct err *e)
{
	static const TPMT_SYM_DEF_OBJECT aes128cfb = {
	    .algorithm = TPM2_ALG_AES, .keyBits.aes = 128, .mode.aes = TPM2_ALG_CFB};
	_cleanup_esys_ TPM2B_PRIVATE *private = NULL;
	TSS2_RC rc;

	rc = Esys_Import(t->esys, srk->tr, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, inner,
			 &items->public, &items->duplicate, &items->in_sym_seed, &aes128cfb,
			 &private);
	if (rc != TSS2_RC_SUCCESS)
		return refused(e, rc, "TPM2_Import",
			       "the authentication key is corrupt or was not made for this TPM's "
			       "SRK");
	rc = Esys_Load(t->esys, srk->tr, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, private,
		       &items->public, &ret->tr);
	if (rc != TSS2_RC_SUCCESS)
		return tpm_fail(e, rc, "TPM2_Load");
	ret->flush = true;
	return 0;
}

int tpm_import_auth_key(struct tpm *t, const void *blob, size_t len, uint32_t persistent_handle,
			struct err *e)
{
	_cleanup_tpm_tr_ struct tpm_tr ek = TPM_TR_NONE(t);
	_cleanup_tpm_tr_ struct tpm_tr srk = TPM_TR_NONE(t);
	_cleanup_tpm_tr_ struct tpm_tr key = TPM_TR_NONE(t);
	_cleanup_tpm_tr_ struct tpm_tr old = TPM_TR_NONE(t);
	struct import_items items = {0};
	TPM2B_DATA inner = {0};
	struct err absent = {0};
	int r;

	if (persistent_handle < TPM_PERSISTENT_OWNER_FIRST ||
	    persistent_handle > TPM_PERSISTENT_OWNER_LAST)
		return err_set(e, -EINVAL,
			       "authentication key handle 0x%08" PRIx32
			       " is outside the owner's persistent range 0x81000000-0x817fffff",
			       persistent_handle);
	if (persistent_handle == TPM_SRK_HANDLE || persistent_handle == TPM_EK_HANDLE)
		return err_set(e, -EINVAL,
			       "authentication key handle 0x%08" PRIx32
			       " is the %s's; choose another tpm.auth_key_index",
			       persistent_handle,
			       persistent_handle == TPM_SRK_HANDLE ? "SRK" : "EK");

	r = unmarshal_blob(blob, len, &items, e);
	if (r < 0)
		return r;
	r = tpm_tr_persistent(t, TPM_EK_HANDLE, &ek, e);
	if (r >= 0)
		r = tpm_tr_persistent(t, TPM_SRK_HANDLE, &srk, e);
	if (r < 0)
		return r;

	r = activate(t, &srk, &ek, &items, &inner, e);
	if (r >= 0)
		r = import_and_load(t, &srk, &items, &inner, &key, e);
	explicit_bzero(&inner, sizeof(inner));
	if (r < 0)
		return r;

	/* The new key is loaded: only now replace the old one. */
	r = tpm_tr_persistent(t, persistent_handle, &old, &absent);
	if (r >= 0) {
		r = tpm_evict_tr(t, &old, persistent_handle, e);
		if (r < 0)
			return r;
	} else if (r != -ENOENT) {
		return err_set(e, r, "%s", absent.msg);
	}
	r = tpm_persist(t, key.tr, persistent_handle, e);
	if (r < 0)
		return r;
	log_debug("tpm: authentication key imported at 0x%08" PRIx32, persistent_handle);
	return 0;
}
