/* SPDX-License-Identifier: MIT */
/*
 * The EK and SRK: read them from their persistent handles, or create them
 * from fixed templates and persist them. A primary key is derived from the
 * hierarchy's seed and the template, so the templates must match the other
 * stacks' byte for byte to give the same key (tpm-identity.md §2).
 */
#include <errno.h>
#include <inttypes.h>

#include "common/log.h"
#include "tpm/tpm_internal.h"

/* PolicySecret(TPM_RH_ENDORSEMENT): the EK's authPolicy. */
#define EK_AUTH_POLICY                                                                             \
	{                                                                                          \
		0x83, 0x71, 0x97, 0x67, 0x44, 0x84, 0xb3, 0xf8, 0x1a, 0x90, 0xcc, 0x8d, 0x46,      \
		    0xa5, 0xd7, 0x24, 0xfd, 0x52, 0xd7, 0x6e, 0x06, 0x52, 0x0b, 0x64, 0xf2, 0xa1,  \
		    0xda, 0x1b, 0x33, 0x14, 0x69, 0xaa                                             \
	}

/* TCG EK Credential Profile, template L-1 (RSA 2048), as tpm2_createek -G rsa
 * and aziot-tpmd's EK_RSA_TEMPLATE build it. */
static const TPM2B_PUBLIC ek_template = {
    .publicArea =
	{
	    .type = TPM2_ALG_RSA,
	    .nameAlg = TPM2_ALG_SHA256,
	    .objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
				TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_ADMINWITHPOLICY |
				TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT,
	    .authPolicy = {.size = 32, .buffer = EK_AUTH_POLICY},
	    .parameters.rsaDetail =
		{
		    .symmetric = {.algorithm = TPM2_ALG_AES,
				  .keyBits.aes = 128,
				  .mode.aes = TPM2_ALG_CFB},
		    .scheme = {.scheme = TPM2_ALG_NULL},
		    .keyBits = 2048,
		    .exponent = 0,
		},
	    /* 256 zero bytes: the size matters, the TPM fills in the modulus. */
	    .unique.rsa = {.size = 256},
	},
};

/* tpm2_createprimary -C o with tpm2-tools 5.x defaults (-G
 * rsa2048:null:aes128cfb, -g sha256, -a fixedtpm|fixedparent|
 * sensitivedataorigin|userwithauth|restricted|decrypt), which the seeds'
 * provisioning script runs. Note: no noDA, unlike the TCG Provisioning
 * Guidance template aziot-tpmd uses; the unique field is empty. */
static const TPM2B_PUBLIC srk_template = {
    .publicArea =
	{
	    .type = TPM2_ALG_RSA,
	    .nameAlg = TPM2_ALG_SHA256,
	    .objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
				TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH |
				TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT,
	    .authPolicy = {.size = 0},
	    .parameters.rsaDetail =
		{
		    .symmetric = {.algorithm = TPM2_ALG_AES,
				  .keyBits.aes = 128,
				  .mode.aes = TPM2_ALG_CFB},
		    .scheme = {.scheme = TPM2_ALG_NULL},
		    .keyBits = 2048,
		    .exponent = 0,
		},
	    .unique.rsa = {.size = 0},
	},
};

static int create_primary(struct tpm *t, ESYS_TR hierarchy, const char *hierarchy_name,
			  const TPM2B_PUBLIC *template, uint32_t handle, struct err *e)
{
	_cleanup_tpm_tr_ struct tpm_tr obj = TPM_TR_NONE(t);
	_cleanup_esys_ TPM2B_PUBLIC *pub = NULL;
	_cleanup_esys_ TPM2B_CREATION_DATA *creation = NULL;
	_cleanup_esys_ TPM2B_DIGEST *creation_hash = NULL;
	_cleanup_esys_ TPMT_TK_CREATION *ticket = NULL;
	const TPM2B_SENSITIVE_CREATE sensitive = {0};
	const TPM2B_DATA outside = {0};
	const TPML_PCR_SELECTION pcrs = {0};
	TSS2_RC rc;

	log_debug("tpm: creating the primary key for 0x%08" PRIx32 " in the %s hierarchy", handle,
		  hierarchy_name);
	rc = Esys_CreatePrimary(t->esys, hierarchy, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
				&sensitive, template, &outside, &pcrs, &obj.tr, &pub, &creation,
				&creation_hash, &ticket);
	if (rc != TSS2_RC_SUCCESS)
		return tpm_fail(e, rc, "TPM2_CreatePrimary(%s)", hierarchy_name);
	obj.flush = true;
	return tpm_persist(t, obj.tr, handle, e);
}

static int ensure_primary(struct tpm *t, uint32_t handle, ESYS_TR hierarchy,
			  const char *hierarchy_name, const TPM2B_PUBLIC *template, struct buf *ret,
			  struct err *e)
{
	struct err absent = {0};
	int r;

	r = tpm_read_public(t, handle, ret, &absent);
	if (r != -ENOENT) {
		if (r < 0)
			return err_set(e, r, "%s", absent.msg);
		return 0;
	}
	r = create_primary(t, hierarchy, hierarchy_name, template, handle, e);
	if (r < 0)
		return r;
	/* Read it back through the same path as an existing key, so both
	 * cases return what TPM2_ReadPublic says. */
	return tpm_read_public(t, handle, ret, e);
}

int tpm_ensure_ek(struct tpm *t, struct buf *ret_ek_pub, struct err *e)
{
	return ensure_primary(t, TPM_EK_HANDLE, ESYS_TR_RH_ENDORSEMENT, "endorsement", &ek_template,
			      ret_ek_pub, e);
}

int tpm_ensure_srk(struct tpm *t, struct buf *ret_srk_pub, struct err *e)
{
	return ensure_primary(t, TPM_SRK_HANDLE, ESYS_TR_RH_OWNER, "owner", &srk_template,
			      ret_srk_pub, e);
}
