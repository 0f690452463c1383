/* SPDX-License-Identifier: MIT */
/*
 * HMAC-SHA256 with a persistent TPM key (the DPS authentication key signs
 * the DPS and IoT Hub SAS tokens). One TPM2_HMAC when the data fits the
 * TPM's input buffer; an HMAC sequence otherwise, as the Node and aziot
 * clients do.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "common/log.h"
#include "tpm/tpm_internal.h"

static int hmac_sequence(struct tpm *t, const struct tpm_tr *key, uint32_t handle,
			 const uint8_t *data, size_t len, TPM2B_DIGEST **ret, struct err *e)
{
	_cleanup_tpm_tr_ struct tpm_tr seq = TPM_TR_NONE(t);
	_cleanup_esys_ TPMT_TK_HASHCHECK *ticket = NULL;
	const TPM2B_AUTH no_auth = {0};
	TPM2B_MAX_BUFFER chunk;
	size_t max = t->input_buffer;
	TSS2_RC rc;

	rc = Esys_HMAC_Start(t->esys, key->tr, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
			     &no_auth, TPM2_ALG_SHA256, &seq.tr);
	if (rc != TSS2_RC_SUCCESS)
		return tpm_fail(e, rc, "TPM2_HMAC_Start(0x%08" PRIx32 ")", handle);
	seq.flush = true;

	/* Whole chunks while more than one chunk is left; the last 1..max
	 * bytes go with SequenceComplete. */
	while (len > max) {
		chunk.size = (UINT16)max;
		memcpy(chunk.buffer, data, max);
		rc = Esys_SequenceUpdate(t->esys, seq.tr, ESYS_TR_PASSWORD, ESYS_TR_NONE,
					 ESYS_TR_NONE, &chunk);
		if (rc != TSS2_RC_SUCCESS)
			return tpm_fail(e, rc, "TPM2_SequenceUpdate");
		data += max;
		len -= max;
	}
	chunk.size = (UINT16)len;
	memcpy(chunk.buffer, data, len);
	rc = Esys_SequenceComplete(t->esys, seq.tr, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
				   &chunk, ESYS_TR_RH_NULL, ret, &ticket);
	if (rc != TSS2_RC_SUCCESS)
		return tpm_fail(e, rc, "TPM2_SequenceComplete");
	/* The TPM dropped the sequence object and ESAPI closed its TR. */
	seq.tr = ESYS_TR_NONE;
	return 0;
}

int tpm_hmac(struct tpm *t, uint32_t persistent_handle, const void *data, size_t len,
	     uint8_t ret_mac[TPM_HMAC_LEN], struct err *e)
{
	_cleanup_tpm_tr_ struct tpm_tr key = TPM_TR_NONE(t);
	_cleanup_esys_ TPM2B_DIGEST *mac = NULL;
	TPM2B_MAX_BUFFER buffer;
	TSS2_RC rc;
	int r;

	if (!data && len)
		return err_set(e, -EINVAL, "tpm_hmac: no data");
	r = tpm_tr_persistent(t, persistent_handle, &key, e);
	if (r < 0)
		return r;

	if (len <= t->input_buffer) {
		buffer.size = (UINT16)len;
		if (len)
			memcpy(buffer.buffer, data, len);
		rc = Esys_HMAC(t->esys, key.tr, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
			       &buffer, TPM2_ALG_SHA256, &mac);
		if (rc != TSS2_RC_SUCCESS)
			return tpm_fail(e, rc, "TPM2_HMAC(0x%08" PRIx32 ")", persistent_handle);
	} else {
		r = hmac_sequence(t, &key, persistent_handle, data, len, &mac, e);
		if (r < 0)
			return r;
	}
	if (mac->size != TPM_HMAC_LEN)
		return err_set(e, -EBADMSG,
			       "TPM2_HMAC(0x%08" PRIx32 "): the TPM returned %u bytes, expected %d",
			       persistent_handle, mac->size, TPM_HMAC_LEN);
	memcpy(ret_mac, mac->buffer, TPM_HMAC_LEN);
	log_debug("tpm: HMAC of %zu bytes with 0x%08" PRIx32, len, persistent_handle);
	return 0;
}
