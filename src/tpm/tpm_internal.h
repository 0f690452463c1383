/* SPDX-License-Identifier: MIT */
/*
 * Shared by the files of src/tpm: the context, the one place TSS2_RC codes
 * become errno values and sentences, and scoped release of ESAPI handles
 * and ESAPI-allocated results.
 */
#ifndef EDGEID_TPM_INTERNAL_H
#define EDGEID_TPM_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <tss2/tss2_esys.h>
#include <tss2/tss2_tctildr.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/macro.h"
#include "tpm/tpm.h"

struct tpm {
	TSS2_TCTI_CONTEXT *tcti;
	ESYS_CONTEXT *esys;
	/* Largest TPM2B_MAX_BUFFER the TPM takes in one command. */
	uint16_t input_buffer;
};

/* Translate rc: log it at debug and return its negative errno, setting e to
 * "<what>: <Tss2_RC_Decode(rc)>", where what is the printf-formatted name of
 * the TPM command (e.g. "TPM2_EvictControl(0x81000100)"). */
int tpm_fail(struct err *e, TSS2_RC rc, const char *fmt, ...) _printf_(3, 4);
/* The errno for rc alone (docs/internals/tpm.md, "Errors"). */
int tpm_rc_errno(TSS2_RC rc);
/* Whether rc is a TPM response code with the given format-one error
 * (TPM2_RC_HANDLE, TPM2_RC_INTEGRITY, ...), whatever handle, session or
 * parameter number it carries. */
bool tpm_rc_is_fmt1(TSS2_RC rc, TPM2_RC error);

/* An ESYS_TR that is released when it leaves scope: Esys_TR_Close for a
 * persistent object's or a hierarchy's handle (nothing to do in the TPM),
 * Esys_FlushContext for a transient object, sequence or session. */
struct tpm_tr {
	ESYS_CONTEXT *esys;
	ESYS_TR tr;
	bool flush;
};
#define TPM_TR_NONE(t) ((struct tpm_tr){.esys = (t)->esys, .tr = ESYS_TR_NONE})
void tpm_tr_release(struct tpm_tr *h);
#define _cleanup_tpm_tr_ _cleanup_(tpm_tr_release)

/* Free ESAPI results (Esys_Free); the _secret_ variant wipes a TPM2B_DIGEST
 * first. */
static inline void tpm_esys_freep(void *p)
{
	Esys_Free(*(void **)p);
}
#define _cleanup_esys_ _cleanup_(tpm_esys_freep)
static inline void tpm_esys_digest_secret_freep(TPM2B_DIGEST **p)
{
	if (*p) {
		explicit_bzero(*p, sizeof(**p));
		Esys_Free(*p);
	}
}
#define _cleanup_esys_digest_secret_ _cleanup_(tpm_esys_digest_secret_freep)

/* 0, or -EINVAL when handle is not a persistent handle (0x81xxxxxx). */
int tpm_check_persistent(uint32_t handle, struct err *e);
/* Resolve the persistent object at handle to an ESYS_TR (released with
 * Esys_TR_Close). -ENOENT when nothing is there. */
int tpm_tr_persistent(struct tpm *t, uint32_t handle, struct tpm_tr *ret, struct err *e);
/* Append Tss2_MU_TPM2B_PUBLIC_Marshal(pub) to ret. */
int tpm_marshal_public(const TPM2B_PUBLIC *pub, struct buf *ret, struct err *e);
/* Remove the persistent object behind obj (owner authorization); obj's
 * ESYS_TR is closed on success. */
int tpm_evict_tr(struct tpm *t, struct tpm_tr *obj, uint32_t handle, struct err *e);
/* Persist the transient object obj at handle (owner authorization). */
int tpm_persist(struct tpm *t, ESYS_TR obj, uint32_t handle, struct err *e);

#endif
