/* SPDX-License-Identifier: MIT */
/*
 * The TPM context (TCTI loader + ESAPI), hierarchy authorization, the
 * translation of TSS2_RC codes, and the persistent-handle primitives the
 * other files build on.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tss2/tss2_mu.h>
#include <tss2/tss2_rc.h>
#include <tss2/tss2_sys.h>

#include "common/log.h"
#include "tpm/tpm_internal.h"

/* ---- response codes ---------------------------------------------------- */

/* Handle ranges for TPM2_GetCapability(TPM_CAP_HANDLES). Spelled out:
 * tpm2-tss 3.2's TPM2_TRANSIENT_FIRST shifts a signed int into its sign bit
 * (undefined behaviour that UBSan reports). */
#define HANDLES_TRANSIENT_FIRST 0x80000000u
#define HANDLES_LOADED_SESSION_FIRST 0x02000000u

/* The layer-independent part of a TSS2_RC (TSS2_BASE_RC_*). */
#define TSS2_BASE_RC(rc) ((rc)&0xffffu)

static bool rc_is_tpm_format(TSS2_RC rc)
{
	TSS2_RC layer = rc & TSS2_RC_LAYER_MASK;

	/* tpm2-abrmd answers in the TPM's own format from its own layer. */
	return layer == TSS2_TPM_RC_LAYER || layer == TSS2_RESMGR_TPM_RC_LAYER;
}

bool tpm_rc_is_fmt1(TSS2_RC rc, TPM2_RC error)
{
	/* A format-one code: bit 7 set, the error in bits 0-5, and the number
	 * of the handle, session or parameter it is about in bits 8-11. */
	return rc_is_tpm_format(rc) && (rc & TPM2_RC_FMT1) && (rc & (TPM2_RC_FMT1 | 0x3f)) == error;
}

static int tpm_rc_errno_tpm(TSS2_RC rc)
{
	TSS2_RC code = rc & 0xffff;

	if (code & TPM2_RC_FMT1) {
		switch (code & (TPM2_RC_FMT1 | 0x3f)) {
		case TPM2_RC_HANDLE:
			return -ENOENT;
		case TPM2_RC_AUTH_FAIL:
		case TPM2_RC_BAD_AUTH:
		case TPM2_RC_POLICY_FAIL:
			return -EACCES;
		default:
			/* A parameter, handle or session the TPM refused. */
			return -EBADMSG;
		}
	}
	switch (code) {
	case TPM2_RC_NV_DEFINED:
		return -EEXIST;
	case TPM2_RC_NV_SPACE:
	case TPM2_RC_OBJECT_MEMORY:
	case TPM2_RC_SESSION_MEMORY:
	case TPM2_RC_MEMORY:
	case TPM2_RC_SESSION_HANDLES:
	case TPM2_RC_OBJECT_HANDLES:
		return -ENOSPC;
	case TPM2_RC_AUTH_MISSING:
	case TPM2_RC_AUTH_UNAVAILABLE:
	case TPM2_RC_NV_AUTHORIZATION:
	case TPM2_RC_LOCKOUT:
		return -EACCES;
	case TPM2_RC_RETRY:
	case TPM2_RC_YIELDED:
	case TPM2_RC_TESTING:
	case TPM2_RC_CANCELED:
	case TPM2_RC_NV_RATE:
	case TPM2_RC_NV_UNAVAILABLE:
		return -EAGAIN;
	case TPM2_RC_COMMAND_CODE:
		return -EOPNOTSUPP;
	default:
		return -EIO;
	}
}

int tpm_rc_errno(TSS2_RC rc)
{
	if (rc == TSS2_RC_SUCCESS)
		return 0;
	if (rc_is_tpm_format(rc))
		return tpm_rc_errno_tpm(rc);
	switch (TSS2_BASE_RC(rc)) {
	case TSS2_BASE_RC_MEMORY:
		return -ENOMEM;
	case TSS2_BASE_RC_BAD_REFERENCE:
	case TSS2_BASE_RC_BAD_VALUE:
	case TSS2_BASE_RC_BAD_SIZE:
	case TSS2_BASE_RC_BAD_TR:
		return -EINVAL;
	case TSS2_BASE_RC_TRY_AGAIN:
		return -EAGAIN;
	case TSS2_BASE_RC_NO_CONNECTION:
		return -ECONNREFUSED;
	case TSS2_BASE_RC_NOT_SUPPORTED:
	case TSS2_BASE_RC_NOT_IMPLEMENTED:
		return -EOPNOTSUPP;
	default:
		return -EIO;
	}
}

int tpm_fail(struct err *e, TSS2_RC rc, const char *fmt, ...)
{
	char what[128];
	va_list ap;
	int r = tpm_rc_errno(rc);

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	log_debug("tpm: %s: 0x%08" PRIx32 " %s", what, (uint32_t)rc, Tss2_RC_Decode(rc));
	return err_set(e, r, "%s: %s", what, Tss2_RC_Decode(rc));
}

/* ---- ESYS_TR handles ---------------------------------------------------- */

void tpm_tr_release(struct tpm_tr *h)
{
	TSS2_RC rc;

	if (!h->esys || h->tr == ESYS_TR_NONE)
		return;
	if (h->flush) {
		/* Esys_FlushContext closes the ESYS_TR when the TPM accepted
		 * it; otherwise the TR is still ours to close. */
		rc = Esys_FlushContext(h->esys, h->tr);
		if (rc == TSS2_RC_SUCCESS) {
			h->tr = ESYS_TR_NONE;
			return;
		}
		log_debug("tpm: TPM2_FlushContext: 0x%08" PRIx32 " %s", (uint32_t)rc,
			  Tss2_RC_Decode(rc));
	}
	Esys_TR_Close(h->esys, &h->tr);
	h->tr = ESYS_TR_NONE;
}

int tpm_check_persistent(uint32_t handle, struct err *e)
{
	if (handle < TPM_PERSISTENT_OWNER_FIRST || handle > TPM_PERSISTENT_LAST)
		return err_set(e, -EINVAL,
			       "0x%08" PRIx32 " is not a persistent handle (0x81000000-0x81ffffff)",
			       handle);
	return 0;
}

/* Whether a persistent handle is occupied, asked with TPM2_GetCapability so
 * that an empty handle is an answer, not a TPM error (which tpm2-tss would
 * also log at error level). */
static int persistent_present(struct tpm *t, uint32_t handle, bool *ret, struct err *e)
{
	_cleanup_esys_ TPMS_CAPABILITY_DATA *cap = NULL;
	TPMI_YES_NO more = TPM2_NO;
	TSS2_RC rc;

	rc = Esys_GetCapability(t->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, TPM2_CAP_HANDLES,
				handle, 1, &more, &cap);
	if (rc != TSS2_RC_SUCCESS)
		return tpm_fail(e, rc, "TPM2_GetCapability(TPM_CAP_HANDLES, 0x%08" PRIx32 ")",
				handle);
	*ret = cap->data.handles.count >= 1 && cap->data.handles.handle[0] == handle;
	return 0;
}

int tpm_tr_persistent(struct tpm *t, uint32_t handle, struct tpm_tr *ret, struct err *e)
{
	ESYS_TR tr = ESYS_TR_NONE;
	bool present = false;
	TSS2_RC rc;
	int r;

	r = tpm_check_persistent(handle, e);
	if (r < 0)
		return r;
	r = persistent_present(t, handle, &present, e);
	if (r < 0)
		return r;
	if (!present)
		return err_set(e, -ENOENT, "no object at persistent handle 0x%08" PRIx32, handle);
	/* Esys_TR_FromTPMPublic sends TPM2_ReadPublic for the handle. */
	rc = Esys_TR_FromTPMPublic(t->esys, handle, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &tr);
	if (rc != TSS2_RC_SUCCESS)
		return tpm_fail(e, rc, "TPM2_ReadPublic(0x%08" PRIx32 ")", handle);
	*ret = (struct tpm_tr){.esys = t->esys, .tr = tr, .flush = false};
	return 0;
}

int tpm_marshal_public(const TPM2B_PUBLIC *pub, struct buf *ret, struct err *e)
{
	uint8_t wire[sizeof(TPM2B_PUBLIC)];
	size_t off = 0;
	TSS2_RC rc;
	int r;

	rc = Tss2_MU_TPM2B_PUBLIC_Marshal(pub, wire, sizeof(wire), &off);
	if (rc != TSS2_RC_SUCCESS)
		return tpm_fail(e, rc, "marshalling a TPM2B_PUBLIC");
	r = buf_append(ret, wire, off);
	if (r == -E2BIG)
		return err_set(e, r, "a %zu-byte TPM2B_PUBLIC does not fit the output buffer", off);
	if (r < 0)
		return err_set(e, r, "TPM2B_PUBLIC: %s", strerror(-r));
	return 0;
}

int tpm_evict_tr(struct tpm *t, struct tpm_tr *obj, uint32_t handle, struct err *e)
{
	ESYS_TR none = ESYS_TR_NONE;
	TSS2_RC rc;

	rc = Esys_EvictControl(t->esys, ESYS_TR_RH_OWNER, obj->tr, ESYS_TR_PASSWORD, ESYS_TR_NONE,
			       ESYS_TR_NONE, handle, &none);
	if (rc != TSS2_RC_SUCCESS)
		return tpm_fail(e, rc, "TPM2_EvictControl(0x%08" PRIx32 ")", handle);
	/* ESAPI keeps the TR of an evicted persistent object: close it. */
	Esys_TR_Close(t->esys, &obj->tr);
	obj->tr = ESYS_TR_NONE;
	log_debug("tpm: evicted 0x%08" PRIx32, handle);
	return 0;
}

int tpm_persist(struct tpm *t, ESYS_TR obj, uint32_t handle, struct err *e)
{
	_cleanup_tpm_tr_ struct tpm_tr persisted = TPM_TR_NONE(t);
	TSS2_RC rc;

	rc = Esys_EvictControl(t->esys, ESYS_TR_RH_OWNER, obj, ESYS_TR_PASSWORD, ESYS_TR_NONE,
			       ESYS_TR_NONE, handle, &persisted.tr);
	if (rc != TSS2_RC_SUCCESS)
		return tpm_fail(e, rc, "TPM2_EvictControl(0x%08" PRIx32 ")", handle);
	log_debug("tpm: persisted 0x%08" PRIx32, handle);
	return 0;
}

/* ---- context ------------------------------------------------------------ */

static int set_hierarchy_auth(ESYS_CONTEXT *esys, ESYS_TR hierarchy, const char *name,
			      const char *value, struct err *e)
{
	TPM2B_AUTH auth = {0};
	size_t len = value ? strlen(value) : 0;
	TSS2_RC rc;

	if (len > sizeof(auth.buffer))
		return err_set(e, -EINVAL,
			       "tpm.hierarchy_authorization.%s: longer than %zu bytes (%zu)", name,
			       sizeof(auth.buffer), len);
	/* aziot-tpmd appends a NUL (Rust's to_bytes_with_nul). The TPM removes
	 * trailing zero octets from an authValue before it compares, so the
	 * bytes without the NUL are the same authorization. */
	auth.size = (UINT16)len;
	if (len)
		memcpy(auth.buffer, value, len);
	rc = Esys_TR_SetAuth(esys, hierarchy, &auth);
	explicit_bzero(&auth, sizeof(auth));
	if (rc != TSS2_RC_SUCCESS)
		return tpm_fail(e, rc, "setting the %s authorization", name);
	return 0;
}

static int read_input_buffer(struct tpm *t, struct err *e)
{
	_cleanup_esys_ TPMS_CAPABILITY_DATA *cap = NULL;
	TPMI_YES_NO more = TPM2_NO;
	TSS2_RC rc;

	rc = Esys_GetCapability(t->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
				TPM2_CAP_TPM_PROPERTIES, TPM2_PT_INPUT_BUFFER, 1, &more, &cap);
	if (rc != TSS2_RC_SUCCESS)
		return tpm_fail(e, rc, "TPM2_GetCapability(TPM_PT_INPUT_BUFFER)");
	t->input_buffer = TPM2_MAX_DIGEST_BUFFER;
	if (cap->data.tpmProperties.count >= 1 &&
	    cap->data.tpmProperties.tpmProperty[0].property == TPM2_PT_INPUT_BUFFER) {
		uint32_t v = cap->data.tpmProperties.tpmProperty[0].value;

		/* Never more than a TPM2B_MAX_BUFFER holds; a TPM that
		 * reports nonsense gets a conservative size. */
		if (v >= 64 && v < t->input_buffer)
			t->input_buffer = (uint16_t)v;
	}
	log_debug("tpm: input buffer %u bytes", t->input_buffer);
	return 0;
}

int tpm_open(const char *tcti, const struct tpm_hierarchy_auth *auth, struct tpm **ret,
	     struct err *e)
{
	const char *conf = tcti && *tcti ? tcti : NULL;
	const char *shown = conf ? conf : "(loader default)";
	struct tpm *t;
	TSS2_RC rc;
	int r;

	if (auth && auth->endorsement && strlen(auth->endorsement) > TPM_AUTH_VALUE_MAX)
		return err_set(e, -EINVAL,
			       "tpm.hierarchy_authorization.endorsement: longer than %d bytes",
			       TPM_AUTH_VALUE_MAX);
	if (auth && auth->owner && strlen(auth->owner) > TPM_AUTH_VALUE_MAX)
		return err_set(e, -EINVAL,
			       "tpm.hierarchy_authorization.owner: longer than %d bytes",
			       TPM_AUTH_VALUE_MAX);

	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;

	rc = Tss2_TctiLdr_Initialize(conf, &t->tcti);
	if (rc != TSS2_RC_SUCCESS) {
		log_debug("tpm: Tss2_TctiLdr_Initialize(%s): 0x%08" PRIx32, shown, (uint32_t)rc);
		free(t);
		/* The loader answers "not supported" when no TCTI library
		 * matches the name, and passes on the library's error (an I/O
		 * error) when its TPM cannot be reached. */
		if (TSS2_BASE_RC(rc) == TSS2_BASE_RC_NOT_SUPPORTED ||
		    TSS2_BASE_RC(rc) == TSS2_BASE_RC_NOT_IMPLEMENTED)
			return err_set(
			    e, -ENOENT,
			    "tpm.tcti \"%s\": no TCTI of that name could be loaded (%s); "
			    "expected e.g. \"device:/dev/tpmrm0\", "
			    "\"swtpm:host=127.0.0.1,port=2321\" or \"tabrmd\"",
			    conf ? conf : "", Tss2_RC_Decode(rc));
		return err_set(e, -EIO,
			       "tpm.tcti \"%s\": cannot reach the TPM (%s); check that it exists "
			       "and that this user may open it",
			       conf ? conf : "", Tss2_RC_Decode(rc));
	}
	rc = Esys_Initialize(&t->esys, t->tcti, NULL);
	if (rc != TSS2_RC_SUCCESS) {
		r = tpm_fail(e, rc, "tpm.tcti \"%s\": Esys_Initialize", conf ? conf : "");
		tpm_close(t);
		return r;
	}
	r = set_hierarchy_auth(t->esys, ESYS_TR_RH_ENDORSEMENT, "endorsement",
			       auth ? auth->endorsement : NULL, e);
	if (r >= 0)
		r = set_hierarchy_auth(t->esys, ESYS_TR_RH_OWNER, "owner",
				       auth ? auth->owner : NULL, e);
	if (r >= 0) {
		r = read_input_buffer(t, e);
		if (r < 0)
			err_prefix(e, r, "tpm.tcti \"%s\"", conf ? conf : "");
	}
	if (r < 0) {
		tpm_close(t);
		return r;
	}
	log_debug("tpm: opened %s", shown);
	*ret = t;
	return 0;
}

void tpm_close(struct tpm *t)
{
	const TPM2B_AUTH wipe = {0};

	if (!t)
		return;
	if (t->esys) {
		/* Esys_Finalize frees the hierarchy authorizations without
		 * wiping them; overwriting them does. */
		Esys_TR_SetAuth(t->esys, ESYS_TR_RH_ENDORSEMENT, &wipe);
		Esys_TR_SetAuth(t->esys, ESYS_TR_RH_OWNER, &wipe);
		Esys_Finalize(&t->esys);
	}
	if (t->tcti)
		Tss2_TctiLdr_Finalize(&t->tcti);
	free(t);
}

/* ---- persistent objects ------------------------------------------------- */

int tpm_read_public(struct tpm *t, uint32_t handle, struct buf *ret, struct err *e)
{
	_cleanup_tpm_tr_ struct tpm_tr obj = TPM_TR_NONE(t);
	_cleanup_esys_ TPM2B_PUBLIC *pub = NULL;
	TSS2_RC rc;
	int r;

	r = tpm_tr_persistent(t, handle, &obj, e);
	if (r < 0)
		return r;
	rc = Esys_ReadPublic(t->esys, obj.tr, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &pub, NULL,
			     NULL);
	if (rc != TSS2_RC_SUCCESS)
		return tpm_fail(e, rc, "TPM2_ReadPublic(0x%08" PRIx32 ")", handle);
	return tpm_marshal_public(pub, ret, e);
}

int tpm_evict(struct tpm *t, uint32_t handle, struct err *e)
{
	_cleanup_tpm_tr_ struct tpm_tr obj = TPM_TR_NONE(t);
	int r;

	r = tpm_tr_persistent(t, handle, &obj, e);
	if (r < 0)
		return r;
	return tpm_evict_tr(t, &obj, handle, e);
}

/* Call fn for each handle TPM2_GetCapability(TPM_CAP_HANDLES) lists from
 * first on whose type (top byte) is one of types. fn may flush the handle:
 * the next query starts after the last handle listed. */
static int each_handle(struct tpm *t, TPM2_HANDLE first, const uint8_t *types, size_t n_types,
		       const char *what,
		       int (*fn)(struct tpm *t, TPM2_HANDLE h, void *ctx, struct err *e), void *ctx,
		       struct err *e)
{
	TPM2_HANDLE next = first;
	TPMI_YES_NO more;

	do {
		_cleanup_esys_ TPMS_CAPABILITY_DATA *cap = NULL;
		TSS2_RC rc;
		uint32_t i;
		int r;

		more = TPM2_NO;
		rc = Esys_GetCapability(t->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
					TPM2_CAP_HANDLES, next, TPM2_MAX_CAP_HANDLES, &more, &cap);
		if (rc != TSS2_RC_SUCCESS)
			return tpm_fail(e, rc, "TPM2_GetCapability(TPM_CAP_HANDLES, %s)", what);
		for (i = 0; i < cap->data.handles.count; i++) {
			TPM2_HANDLE h = cap->data.handles.handle[i];
			bool match = false;

			for (size_t k = 0; k < n_types; k++)
				match = match || h >> 24 == types[k];
			if (!match) {
				more = TPM2_NO;
				break;
			}
			r = fn(t, h, ctx, e);
			if (r < 0)
				return r;
			next = h + 1;
		}
		/* Past the queried type (a policy session listed among the
		 * loaded ones), asking on would query another kind of handle. */
		if (cap->data.handles.count == 0 || next >> 24 != first >> 24)
			more = TPM2_NO;
	} while (more == TPM2_YES);
	return 0;
}

static int count_one(struct tpm *t, TPM2_HANDLE h, void *ctx, struct err *e)
{
	(void)t, (void)h, (void)e;
	(*(uint32_t *)ctx)++;
	return 0;
}

/* TPM2_FlushContext of a raw handle, through the SAPI context under ESAPI:
 * ESAPI flushes only what it has an ESYS_TR for, and making one for
 * another client's object would cost a TPM2_ReadPublic per handle. */
static int flush_one(struct tpm *t, TPM2_HANDLE h, void *ctx, struct err *e)
{
	TSS2_SYS_CONTEXT *sys = NULL;
	TSS2_RC rc;

	rc = Esys_GetSysContext(t->esys, &sys);
	if (rc != TSS2_RC_SUCCESS)
		return tpm_fail(e, rc, "Esys_GetSysContext");
	rc = Tss2_Sys_FlushContext(sys, h);
	if (rc != TSS2_RC_SUCCESS)
		return tpm_fail(e, rc, "TPM2_FlushContext(0x%08" PRIx32 ")", h);
	log_debug("tpm: flushed 0x%08" PRIx32 ", left loaded by an earlier client", h);
	(*(uint32_t *)ctx)++;
	return 0;
}

static const uint8_t transient_types[] = {TPM2_HT_TRANSIENT};
/* Asked for loaded sessions, the TPM lists HMAC sessions (0x02...) and
 * policy sessions (0x03...) alike. */
static const uint8_t session_types[] = {TPM2_HT_HMAC_SESSION, TPM2_HT_POLICY_SESSION};

int tpm_flush_leftovers(struct tpm *t, uint32_t *ret_flushed, struct err *e)
{
	uint32_t n = 0;
	int r;

	r = each_handle(t, HANDLES_TRANSIENT_FIRST, transient_types, ARRAY_SIZE(transient_types),
			"transient", flush_one, &n, e);
	if (r >= 0)
		r = each_handle(t, HANDLES_LOADED_SESSION_FIRST, session_types,
				ARRAY_SIZE(session_types), "sessions", flush_one, &n, e);
	if (r < 0)
		return err_prefix(e, r, "flushing what an earlier client left loaded");
	if (ret_flushed)
		*ret_flushed = n;
	return 0;
}

int tpm_loaded_handles(struct tpm *t, uint32_t *ret_transient, uint32_t *ret_sessions,
		       struct err *e)
{
	uint32_t transient = 0, sessions = 0;
	int r;

	r = each_handle(t, HANDLES_TRANSIENT_FIRST, transient_types, ARRAY_SIZE(transient_types),
			"transient", count_one, &transient, e);
	if (r < 0)
		return r;
	r = each_handle(t, HANDLES_LOADED_SESSION_FIRST, session_types, ARRAY_SIZE(session_types),
			"sessions", count_one, &sessions, e);
	if (r < 0)
		return r;
	*ret_transient = transient;
	*ret_sessions = sessions;
	return 0;
}
