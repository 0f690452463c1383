/* SPDX-License-Identifier: MIT */
/*
 * src/tpm against a real TPM: the group setup starts swtpm (a TPM 2.0
 * simulator built on libtpms) on a free loopback port with a fresh state
 * directory, and every case talks to it through the swtpm TCTI, as tpmd
 * talks to /dev/tpmrm0. No mocks.
 *
 * swtpm serves one connection at a time, so a case never holds two
 * connections at once (the library's and a raw ESAPI one used to arrange or
 * inspect the TPM's state).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "common/buf.h"
#include "common/encode.h"
#include "crypto/tpm_blob.h"
#include "crypto/tpm_public.h"
#include "tpm/tpm.h"

#include "swtpm_fixture.h"

#include <tss2/tss2_esys.h>
#include <tss2/tss2_tctildr.h>

#define AUTH_KEY TPM_AUTH_KEY_HANDLE_DEFAULT

/* The EK of the Azure Node SDK's provisioning e2e tests: another TPM. */
static const char other_ek_b64[] =
    "AToAAQALAAMAsgAgg3GXZ0SEs/gakMyNRqXXJP1S124GUgtk8qHaGzMUaaoABgCAAEMAEAgAAAAAAAEAtKEADl/sNRgm"
    "YAjP6gXmbccRaJoTnVixisUaek0OwAzFGN70xt9ZOYp6fhIwfcft3fdVKOrKpXYcTe72CGNkGJGlQz5ti9n2pQ0uJhcX"
    "8aefh4Onm7lVlUCQAVp1K0r6zI8vkEXWsBIvwvxk0eMJbFaq146kbTkJHIGczb89RkFH2TX+CgXeZOG9oXQzUNwktmTU"
    "acspamune5Wywc/ce8HsDFYchyUHogFhrZ/LPnzyTDXO8sSC5z5dvsUBtUME3iRYDyKgZOfBtmRMqQewD+4iH+ZEJjts"
    "yJiWR8hFhyKROnOuqXfNFwjd5IcNU4wtlKO0cLyXmTOfQK6Da1pr5Q==";
/* An SRK from a Java SDK sample request: another TPM's SRK. */
static const char other_srk_b64[] =
    "ARoAAQALAAMEcgAAAAYAgABDABAIAAAAAAABAOtkhwZsvTyGIda0EjHC88xtr/fRzS21rxDkqNkqILJxzwEnQIQJaEtq"
    "ezc+dvxDQP7ANLMtEzdrK8AyYz7DQ5wSoypbj8KOdeOltff/bH61SxkcJ2HszJjF9nEFkDRxY6ikUU7pGJ5D/VvtidPJ"
    "kh53nbRPyirsU69qIQIF6vCPd9TlYSYLMUu1H4qh3ER+vP5h59iMd4qLrvseta4o9gmOxE6oLHTQoojnoiIAKGPGAedq"
    "PsAaPJ2bjTHVJDkfmvKc1VqJIgaC8HC3YD/g56EP4Ppe53e45BckumbusvPfFLC/WsZ1lOFEVVXb4nyFpDm/myG+PwhnW"
    "CLTMjJ6w10=";

/* The fixed part of the EK (TCG template L-1) and SRK (tpm2_createprimary
 * -C o defaults) public areas, up to the modulus. */
static const uint8_t ek_head[] = {
    0x01, 0x3a, 0x00, 0x01, 0x00, 0x0b, 0x00, 0x03, 0x00, 0xb2, 0x00, 0x20, 0x83, 0x71, 0x97,
    0x67, 0x44, 0x84, 0xb3, 0xf8, 0x1a, 0x90, 0xcc, 0x8d, 0x46, 0xa5, 0xd7, 0x24, 0xfd, 0x52,
    0xd7, 0x6e, 0x06, 0x52, 0x0b, 0x64, 0xf2, 0xa1, 0xda, 0x1b, 0x33, 0x14, 0x69, 0xaa, 0x00,
    0x06, 0x00, 0x80, 0x00, 0x43, 0x00, 0x10, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00,
};
static const uint8_t srk_head[] = {
    0x01, 0x1a, 0x00, 0x01, 0x00, 0x0b, 0x00, 0x03, 0x00, 0x72, 0x00, 0x00, 0x00, 0x06,
    0x00, 0x80, 0x00, 0x43, 0x00, 0x10, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00,
};

/* ---- swtpm -------------------------------------------------------------- */

static struct {
	bool available; /* swtpm is installed */
	char dir[64];
	struct swtpm_fixture sim;
} g;

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int group_setup(void **state)
{
	(void)state;
	/* tpm2-tss logs refused commands at error level on stderr; the
	 * expected refusals here would drown the TAP output. */
	setenv("TSS2_LOG", "all+none", 0);
	g.available = swtpm_fixture_installed();
	if (!g.available)
		return 0;
	srand((unsigned)getpid() ^ (unsigned)time(NULL));
	snprintf(g.dir, sizeof(g.dir), "/tmp/edgeid-test-tpm-XXXXXX");
	if (!mkdtemp(g.dir))
		return -1;
	if (swtpm_fixture_start(&g.sim, g.dir, 0) < 0) {
		fprintf(stderr, "# swtpm did not start (log in %s)\n", g.dir);
		return -1;
	}
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	swtpm_fixture_stop(&g.sim);
	if (g.dir[0])
		nftw(g.dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return 0;
}

#define NEED_SWTPM()                                                                               \
	do {                                                                                       \
		if (!g.available)                                                                  \
			skip();                                                                    \
	} while (0)

/* ---- helpers ------------------------------------------------------------ */

static struct tpm *open_tpm(const struct tpm_hierarchy_auth *auth)
{
	struct tpm *t = NULL;
	struct err e = {0};
	int r = tpm_open(g.sim.tcti, auth, &t, &e);

	if (r < 0)
		fail_msg("tpm_open(%s): %s", g.sim.tcti, err_msg(&e, r));
	return t;
}

static void assert_nothing_loaded(struct tpm *t)
{
	uint32_t transient = 99, sessions = 99;
	struct err e = {0};

	assert_int_equal(tpm_loaded_handles(t, &transient, &sessions, &e), 0);
	assert_int_equal(transient, 0);
	assert_int_equal(sessions, 0);
}

static void get_public(struct tpm *t, uint32_t handle, struct buf *ret)
{
	struct err e = {0};
	int r;

	buf_init(ret, 4096);
	r = handle == TPM_EK_HANDLE    ? tpm_ensure_ek(t, ret, &e)
	    : handle == TPM_SRK_HANDLE ? tpm_ensure_srk(t, ret, &e)
				       : tpm_read_public(t, handle, ret, &e);
	if (r < 0)
		fail_msg("0x%08x: %s", handle, err_msg(&e, r));
}

static void parse_public(const struct buf *raw, struct tpm_public *ret)
{
	struct err e = {0};

	if (tpm_public_parse(raw->data, raw->len, TPM_ALG_RSA, ret, &e) < 0)
		fail_msg("%s", e.msg);
}

static void parse_public_b64(const char *b64, struct tpm_public *ret)
{
	struct err e = {0};

	if (tpm_public_parse_base64(b64, TPM_ALG_RSA, ret, &e) < 0)
		fail_msg("%s", e.msg);
}

static void build_blob(const struct tpm_public *ek, const struct tpm_public *srk,
		       const uint8_t *key, size_t key_len, struct buf *ret)
{
	struct err e = {0};

	buf_init(ret, TPM_BLOB_MAX);
	if (tpm_blob_build(ek, srk, key, key_len, ret, &e) < 0)
		fail_msg("tpm_blob_build: %s", e.msg);
}

/* The EK and SRK of the test TPM, created when missing. */
static void device_keys(struct tpm *t, struct tpm_public *ek, struct tpm_public *srk)
{
	_cleanup_buf_ struct buf ek_raw = {0};
	_cleanup_buf_ struct buf srk_raw = {0};

	get_public(t, TPM_EK_HANDLE, &ek_raw);
	get_public(t, TPM_SRK_HANDLE, &srk_raw);
	parse_public(&ek_raw, ek);
	parse_public(&srk_raw, srk);
}

static void sw_hmac(const uint8_t *key, size_t key_len, const void *data, size_t len,
		    uint8_t out[32])
{
	size_t out_len = 0;

	assert_non_null(EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, key_len, data, len, out,
				  32, &out_len));
	assert_int_equal(out_len, 32);
}

/* tpm_hmac under AUTH_KEY equals HMAC-SHA256 with key. */
static void assert_tpm_hmac(struct tpm *t, const uint8_t *key, size_t key_len, const void *data,
			    size_t len)
{
	uint8_t want[32], got[32];
	struct err e = {0};
	int r;

	sw_hmac(key, key_len, data, len, want);
	r = tpm_hmac(t, AUTH_KEY, data, len, got, &e);
	if (r < 0)
		fail_msg("tpm_hmac(%zu bytes): %s", len, err_msg(&e, r));
	assert_memory_equal(got, want, 32);
}

static void import_key(struct tpm *t, const uint8_t *key, size_t key_len)
{
	struct tpm_public ek, srk;
	_cleanup_buf_ struct buf blob = {0};
	struct err e = {0};
	int r;

	device_keys(t, &ek, &srk);
	build_blob(&ek, &srk, key, key_len, &blob);
	r = tpm_import_auth_key(t, blob.data, blob.len, AUTH_KEY, &e);
	if (r < 0)
		fail_msg("tpm_import_auth_key: %s", err_msg(&e, r));
}

static void evict_if_present(struct tpm *t, uint32_t handle)
{
	struct err e = {0};
	int r = tpm_evict(t, handle, &e);

	if (r < 0 && r != -ENOENT)
		fail_msg("tpm_evict(0x%08x): %s", handle, err_msg(&e, r));
}

/* A raw ESAPI connection, to arrange what the library must cope with. */
struct raw {
	TSS2_TCTI_CONTEXT *tcti;
	ESYS_CONTEXT *esys;
};

static void raw_open(struct raw *raw)
{
	assert_int_equal(Tss2_TctiLdr_Initialize(g.sim.tcti, &raw->tcti), TSS2_RC_SUCCESS);
	assert_int_equal(Esys_Initialize(&raw->esys, raw->tcti, NULL), TSS2_RC_SUCCESS);
}

static void raw_close(struct raw *raw)
{
	Esys_Finalize(&raw->esys);
	Tss2_TctiLdr_Finalize(&raw->tcti);
}

static TSS2_RC raw_change_auth(struct raw *raw, ESYS_TR hierarchy, const void *old_auth,
			       size_t old_len, const char *new_auth)
{
	TPM2B_AUTH old = {.size = (UINT16)old_len}, new = {0};

	memcpy(old.buffer, old_auth, old_len);
	new.size = (UINT16)strlen(new_auth);
	memcpy(new.buffer, new_auth, new.size);
	assert_int_equal(Esys_TR_SetAuth(raw->esys, hierarchy, &old), TSS2_RC_SUCCESS);
	return Esys_HierarchyChangeAuth(raw->esys, hierarchy, ESYS_TR_PASSWORD, ESYS_TR_NONE,
					ESYS_TR_NONE, &new);
}

/* ---- tests -------------------------------------------------------------- */

static void test_open_errors(void **state)
{
	struct tpm_hierarchy_auth auth = {0};
	struct tpm *t = NULL;
	struct err e = {0};
	char tcti[96], long_auth[TPM_AUTH_VALUE_MAX + 2];
	int port;

	(void)state;
	assert_int_equal(tpm_open("nosuchtcti", NULL, &t, &e), -ENOENT);
	assert_string_equal(e.msg, "tpm.tcti \"nosuchtcti\": no TCTI of that name could be loaded "
				   "(tcti:Functionality not supported); expected e.g. "
				   "\"device:/dev/tpmrm0\", \"swtpm:host=127.0.0.1,port=2321\" or "
				   "\"tabrmd\"");
	assert_null(t);

	/* A loopback port nobody listens on. */
	for (port = 20000 + rand() % 40000; !swtpm_fixture_port_free(port); port++)
		;
	snprintf(tcti, sizeof(tcti), "swtpm:host=127.0.0.1,port=%d", port);
	err_clear(&e);
	assert_int_equal(tpm_open(tcti, NULL, &t, &e), -EIO);
	{
		char want[256];

		snprintf(want, sizeof(want),
			 "tpm.tcti \"%s\": cannot reach the TPM (tcti:IO failure); check that it "
			 "exists and that this user may open it",
			 tcti);
		assert_string_equal(e.msg, want);
	}
	assert_null(t);

	err_clear(&e);
	assert_int_equal(tpm_open("device:/nonexistent/tpmrm0", NULL, &t, &e), -EIO);
	assert_string_equal(e.msg, "tpm.tcti \"device:/nonexistent/tpmrm0\": cannot reach the TPM "
				   "(tcti:IO failure); check that it exists and that this user may "
				   "open it");

	memset(long_auth, 'a', sizeof(long_auth) - 1);
	long_auth[sizeof(long_auth) - 1] = '\0';
	auth.owner = long_auth;
	err_clear(&e);
	assert_int_equal(tpm_open(g.sim.tcti, &auth, &t, &e), -EINVAL);
	assert_string_equal(e.msg, "tpm.hierarchy_authorization.owner: longer than 64 bytes");
	assert_null(t);
	long_auth[TPM_AUTH_VALUE_MAX] = '\0';
	auth.owner = NULL;
	auth.endorsement = long_auth; /* exactly 64: accepted */
	if (g.available) {
		err_clear(&e);
		assert_int_equal(tpm_open(g.sim.tcti, &auth, &t, &e), 0);
		tpm_close(t);
	}
	tpm_close(NULL);
}

static void test_ek_created_and_persisted(void **state)
{
	_cleanup_buf_ struct buf first = {0};
	_cleanup_buf_ struct buf again = {0};
	_cleanup_buf_ struct buf read = {0};
	_cleanup_buf_ struct buf recreated = {0};
	struct tpm_public pub;
	struct tpm *t;
	struct err e = {0};

	(void)state;
	NEED_SWTPM();
	t = open_tpm(NULL);
	evict_if_present(t, TPM_EK_HANDLE);
	buf_init(&read, 4096);
	assert_int_equal(tpm_read_public(t, TPM_EK_HANDLE, &read, &e), -ENOENT);
	assert_string_equal(e.msg, "no object at persistent handle 0x81010001");

	get_public(t, TPM_EK_HANDLE, &first);
	assert_int_equal(first.len, 316);
	assert_memory_equal(first.data, ek_head, sizeof(ek_head));
	parse_public(&first, &pub);
	assert_int_equal(pub.attributes, 0x000300b2);
	assert_nothing_loaded(t);
	tpm_close(t);

	/* Persisted: another connection reads the same key, ensure does not
	 * create a second one. */
	t = open_tpm(NULL);
	get_public(t, TPM_EK_HANDLE, &again);
	assert_int_equal(again.len, first.len);
	assert_memory_equal(again.data, first.data, first.len);
	err_clear(&e);
	assert_int_equal(tpm_read_public(t, TPM_EK_HANDLE, &read, &e), 0);
	assert_memory_equal(read.data, first.data, first.len);

	/* The template is deterministic: evicted and re-created from the same
	 * endorsement seed, it is the same key (as after TPM2_Clear). */
	assert_int_equal(tpm_evict(t, TPM_EK_HANDLE, &e), 0);
	get_public(t, TPM_EK_HANDLE, &recreated);
	assert_int_equal(recreated.len, first.len);
	assert_memory_equal(recreated.data, first.data, first.len);
	assert_nothing_loaded(t);
	tpm_close(t);
}

static void test_srk_created_and_persisted(void **state)
{
	_cleanup_buf_ struct buf first = {0};
	_cleanup_buf_ struct buf again = {0};
	_cleanup_buf_ struct buf recreated = {0};
	_cleanup_buf_ struct buf small = {0};
	struct tpm_public pub;
	struct tpm *t;
	struct err e = {0};

	(void)state;
	NEED_SWTPM();
	t = open_tpm(NULL);
	evict_if_present(t, TPM_SRK_HANDLE);
	get_public(t, TPM_SRK_HANDLE, &first);
	assert_int_equal(first.len, 284);
	assert_memory_equal(first.data, srk_head, sizeof(srk_head));
	parse_public(&first, &pub);
	assert_int_equal(pub.attributes, 0x00030072);
	tpm_close(t);

	t = open_tpm(NULL);
	get_public(t, TPM_SRK_HANDLE, &again);
	assert_int_equal(again.len, first.len);
	assert_memory_equal(again.data, first.data, first.len);
	assert_int_equal(tpm_evict(t, TPM_SRK_HANDLE, &e), 0);
	get_public(t, TPM_SRK_HANDLE, &recreated);
	assert_memory_equal(recreated.data, first.data, first.len);

	/* A buffer too small for the answer: -E2BIG, nothing appended. */
	buf_init(&small, 100);
	err_clear(&e);
	assert_int_equal(tpm_ensure_srk(t, &small, &e), -E2BIG);
	assert_string_equal(e.msg, "a 284-byte TPM2B_PUBLIC does not fit the output buffer");
	assert_int_equal(small.len, 0);
	assert_nothing_loaded(t);
	tpm_close(t);
}

static void test_read_public_and_evict_errors(void **state)
{
	_cleanup_buf_ struct buf b = {0};
	struct tpm *t;
	struct err e = {0};

	(void)state;
	NEED_SWTPM();
	t = open_tpm(NULL);
	buf_init(&b, 4096);
	assert_int_equal(tpm_read_public(t, 0x81000123, &b, &e), -ENOENT);
	assert_string_equal(e.msg, "no object at persistent handle 0x81000123");
	err_clear(&e);
	assert_int_equal(tpm_evict(t, 0x81000123, &e), -ENOENT);
	assert_string_equal(e.msg, "no object at persistent handle 0x81000123");
	err_clear(&e);
	assert_int_equal(tpm_read_public(t, 0x80000001, &b, &e), -EINVAL);
	assert_string_equal(e.msg, "0x80000001 is not a persistent handle (0x81000000-0x81ffffff)");
	err_clear(&e);
	assert_int_equal(tpm_evict(t, 0x40000001, &e), -EINVAL);
	assert_int_equal(b.len, 0);
	assert_nothing_loaded(t);
	tpm_close(t);
}

static void test_import_and_hmac(void **state)
{
	static const char sas[] = "0ne00000a0a%2fregistrations%2fdevice-01\n1700003600";
	uint8_t key[32], big[2500];
	struct tpm *t;

	(void)state;
	NEED_SWTPM();
	assert_int_equal(RAND_bytes(key, sizeof(key)), 1);
	assert_int_equal(RAND_bytes(big, sizeof(big)), 1);
	t = open_tpm(NULL);
	evict_if_present(t, AUTH_KEY);
	import_key(t, key, sizeof(key));
	assert_nothing_loaded(t);

	assert_tpm_hmac(t, key, sizeof(key), sas, strlen(sas));
	/* 2,500 bytes: more than the TPM takes at once, so a sequence. */
	assert_tpm_hmac(t, key, sizeof(key), big, sizeof(big));
	/* Around the 1,024-byte input buffer, and nothing at all. */
	assert_tpm_hmac(t, key, sizeof(key), big, 1024);
	assert_tpm_hmac(t, key, sizeof(key), big, 1025);
	assert_tpm_hmac(t, key, sizeof(key), big, 2048);
	assert_tpm_hmac(t, key, sizeof(key), NULL, 0);
	assert_nothing_loaded(t);
	tpm_close(t);

	/* Persisted: a new connection signs with it. */
	t = open_tpm(NULL);
	assert_tpm_hmac(t, key, sizeof(key), sas, strlen(sas));
	tpm_close(t);
}

static void test_import_replaces_key(void **state)
{
	static const char data[] = "string to sign";
	uint8_t k1[32], k2[16], k3[64], mac[32], old_mac[32];
	struct tpm *t;
	struct err e = {0};

	(void)state;
	NEED_SWTPM();
	assert_int_equal(RAND_bytes(k1, sizeof(k1)), 1);
	assert_int_equal(RAND_bytes(k2, sizeof(k2)), 1);
	assert_int_equal(RAND_bytes(k3, sizeof(k3)), 1);
	t = open_tpm(NULL);
	import_key(t, k1, sizeof(k1));
	assert_tpm_hmac(t, k1, sizeof(k1), data, strlen(data));

	/* The hub key replaces the registration key at the same handle. */
	import_key(t, k2, sizeof(k2));
	assert_tpm_hmac(t, k2, sizeof(k2), data, strlen(data));
	sw_hmac(k1, sizeof(k1), data, strlen(data), old_mac);
	assert_int_equal(tpm_hmac(t, AUTH_KEY, data, strlen(data), mac, &e), 0);
	assert_memory_not_equal(mac, old_mac, 32);

	import_key(t, k3, sizeof(k3));
	assert_tpm_hmac(t, k3, sizeof(k3), data, strlen(data));
	assert_nothing_loaded(t);
	tpm_close(t);
}

/* A blob the TPM refuses fails with message want (-EBADMSG), leaves the key
 * imported before it in place, and leaves nothing loaded. */
static void assert_refused(struct tpm *t, const void *blob, size_t len, const char *want,
			   const uint8_t *old_key)
{
	static const char data[] = "still the old key";
	struct err e = {0};

	assert_int_equal(tpm_import_auth_key(t, blob, len, AUTH_KEY, &e), -EBADMSG);
	assert_string_equal(e.msg, want);
	assert_tpm_hmac(t, old_key, 32, data, strlen(data));
	assert_nothing_loaded(t);
}

static void test_import_refused_blobs(void **state)
{
	_cleanup_buf_ struct buf blob = {0};
	struct tpm_public ek, srk, other_ek, other_srk;
	uint8_t key[32], other[32];
	struct tpm *t;

	(void)state;
	NEED_SWTPM();
	assert_int_equal(RAND_bytes(key, sizeof(key)), 1);
	assert_int_equal(RAND_bytes(other, sizeof(other)), 1);
	parse_public_b64(other_ek_b64, &other_ek);
	parse_public_b64(other_srk_b64, &other_srk);
	t = open_tpm(NULL);
	import_key(t, key, sizeof(key));
	device_keys(t, &ek, &srk);

	/* Made for another TPM's EK. swtpm (libtpms) answers TPM_RC_FAILURE
	 * where a hardware TPM gives TPM_RC_VALUE. */
	build_blob(&other_ek, &srk, other, sizeof(other), &blob);
	assert_refused(t, blob.data, blob.len,
		       "TPM2_ActivateCredential: tpm:error(2.0): commands not being accepted "
		       "because of a TPM failure; the authentication key was not made for this "
		       "TPM's EK and SRK (check the endorsement key enrolled for this device)",
		       key);

	/* Our EK, but bound to another SRK's Name. */
	buf_free(&blob);
	build_blob(&ek, &other_srk, other, sizeof(other), &blob);
	assert_refused(t, blob.data, blob.len,
		       "TPM2_ActivateCredential: tpm:parameter(1):integrity check failed; the "
		       "authentication key was not made for this TPM's EK and SRK (check the "
		       "endorsement key enrolled for this device)",
		       key);

	/* For this TPM, one bit of the duplicate flipped: the credential
	 * activates, Import finds the outer HMAC wrong. Item 3 starts after
	 * the 2+52-byte credential and the 2+256-byte secret. */
	buf_free(&blob);
	build_blob(&ek, &srk, other, sizeof(other), &blob);
	blob.data[2 + 52 + 2 + 256 + 2 + 40] ^= 0x01;
	assert_refused(t, blob.data, blob.len,
		       "TPM2_Import: tpm:parameter(3):integrity check failed; the authentication "
		       "key is corrupt or was not made for this TPM's SRK",
		       key);
	tpm_close(t);
}

static void test_import_bad_arguments(void **state)
{
	_cleanup_buf_ struct buf blob = {0};
	struct tpm_public ek, srk;
	uint8_t key[32] = {1};
	struct tpm *t;
	struct err e = {0};

	(void)state;
	NEED_SWTPM();
	t = open_tpm(NULL);
	device_keys(t, &ek, &srk);
	build_blob(&ek, &srk, key, sizeof(key), &blob);

	assert_int_equal(tpm_import_auth_key(t, blob.data, blob.len, 0x81800100, &e), -EINVAL);
	assert_string_equal(e.msg, "authentication key handle 0x81800100 is outside the owner's "
				   "persistent range 0x81000000-0x817fffff");
	err_clear(&e);
	assert_int_equal(tpm_import_auth_key(t, blob.data, blob.len, TPM_SRK_HANDLE, &e), -EINVAL);
	assert_string_equal(e.msg, "authentication key handle 0x81000001 is the SRK's; choose "
				   "another tpm.auth_key_index");
	err_clear(&e);
	assert_int_equal(tpm_import_auth_key(t, blob.data, blob.len, TPM_EK_HANDLE, &e), -EINVAL);
	assert_string_equal(e.msg, "authentication key handle 0x81010001 is the EK's; choose "
				   "another tpm.auth_key_index");

	/* Truncated: the parser names the item, the TPM is not asked. */
	err_clear(&e);
	assert_int_equal(tpm_import_auth_key(t, blob.data, 100, AUTH_KEY, &e), -EBADMSG);
	assert_true(strncmp(e.msg, "authentication key blob: ", 25) == 0);
	err_clear(&e);
	assert_int_equal(tpm_import_auth_key(t, blob.data, 0, AUTH_KEY, &e), -EBADMSG);
	assert_nothing_loaded(t);
	tpm_close(t);
}

static void test_import_needs_ek_and_srk(void **state)
{
	_cleanup_buf_ struct buf blob = {0};
	struct tpm_public ek, srk;
	uint8_t key[32] = {2};
	struct tpm *t;
	struct err e = {0};

	(void)state;
	NEED_SWTPM();
	t = open_tpm(NULL);
	device_keys(t, &ek, &srk);
	build_blob(&ek, &srk, key, sizeof(key), &blob);
	assert_int_equal(tpm_evict(t, TPM_SRK_HANDLE, &e), 0);
	assert_int_equal(tpm_import_auth_key(t, blob.data, blob.len, AUTH_KEY, &e), -ENOENT);
	assert_string_equal(e.msg, "no object at persistent handle 0x81000001");
	/* Re-created from the same seed: the blob is valid again. */
	device_keys(t, &ek, &srk);
	err_clear(&e);
	assert_int_equal(tpm_import_auth_key(t, blob.data, blob.len, AUTH_KEY, &e), 0);
	assert_tpm_hmac(t, key, sizeof(key), "x", 1);
	assert_nothing_loaded(t);
	tpm_close(t);
}

static void test_hmac_errors(void **state)
{
	uint8_t mac[32];
	struct tpm *t;
	struct err e = {0};

	(void)state;
	NEED_SWTPM();
	t = open_tpm(NULL);
	assert_int_equal(tpm_hmac(t, 0x81000123, "x", 1, mac, &e), -ENOENT);
	assert_string_equal(e.msg, "no object at persistent handle 0x81000123");
	/* The EK is no HMAC key (and is usable only with a policy). */
	err_clear(&e);
	assert_int_equal(tpm_hmac(t, TPM_EK_HANDLE, "x", 1, mac, &e), -EACCES);
	assert_string_equal(e.msg, "TPM2_HMAC(0x81010001): tpm:error(2.0): authValue or "
				   "authPolicy is not available for selected entity");
	err_clear(&e);
	assert_int_equal(tpm_hmac(t, AUTH_KEY, NULL, 1, mac, &e), -EINVAL);
	assert_nothing_loaded(t);
	tpm_close(t);
}

/* The checks that nothing stays loaded can fail: objects and sessions
 * another client left behind are counted. */
/* Load an HMAC primary in the null hierarchy and start a policy session
 * without a resource manager, then disconnect: both stay loaded, as after a
 * client killed in the middle of its work. Their TPM handles are returned. */
static void leave_object_and_session(TPM2_HANDLE *ret_obj, TPM2_HANDLE *ret_session)
{
	const TPM2B_SENSITIVE_CREATE sensitive = {0};
	const TPM2B_DATA outside = {0};
	const TPML_PCR_SELECTION pcrs = {0};
	const TPMT_SYM_DEF none = {.algorithm = TPM2_ALG_NULL};
	TPM2B_PUBLIC template = {
	    .publicArea = {.type = TPM2_ALG_KEYEDHASH,
			   .nameAlg = TPM2_ALG_SHA256,
			   .objectAttributes = TPMA_OBJECT_SIGN_ENCRYPT | TPMA_OBJECT_USERWITHAUTH |
					       TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
					       TPMA_OBJECT_SENSITIVEDATAORIGIN,
			   .parameters.keyedHashDetail.scheme = {
			       .scheme = TPM2_ALG_HMAC, .details.hmac.hashAlg = TPM2_ALG_SHA256}}};
	ESYS_TR obj = ESYS_TR_NONE, session = ESYS_TR_NONE;
	struct raw raw;

	raw_open(&raw);
	assert_int_equal(Esys_CreatePrimary(raw.esys, ESYS_TR_RH_NULL, ESYS_TR_PASSWORD,
					    ESYS_TR_NONE, ESYS_TR_NONE, &sensitive, &template,
					    &outside, &pcrs, &obj, NULL, NULL, NULL, NULL),
			 TSS2_RC_SUCCESS);
	assert_int_equal(Esys_StartAuthSession(raw.esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
					       ESYS_TR_NONE, ESYS_TR_NONE, NULL, TPM2_SE_POLICY,
					       &none, TPM2_ALG_SHA256, &session),
			 TSS2_RC_SUCCESS);
	assert_int_equal(Esys_TR_GetTpmHandle(raw.esys, obj, ret_obj), TSS2_RC_SUCCESS);
	assert_int_equal(Esys_TR_GetTpmHandle(raw.esys, session, ret_session), TSS2_RC_SUCCESS);
	raw_close(&raw); /* no resource manager: both stay loaded */
}

static void test_loaded_handles_counts_leftovers(void **state)
{
	ESYS_TR obj = ESYS_TR_NONE, session = ESYS_TR_NONE;
	TPM2_HANDLE obj_handle = 0, session_handle = 0;
	uint32_t transient = 0, sessions = 0;
	struct raw raw;
	struct tpm *t;
	struct err e = {0};

	(void)state;
	NEED_SWTPM();
	leave_object_and_session(&obj_handle, &session_handle);

	t = open_tpm(NULL);
	assert_int_equal(tpm_loaded_handles(t, &transient, &sessions, &e), 0);
	assert_int_equal(transient, 1);
	assert_int_equal(sessions, 1);
	tpm_close(t);

	raw_open(&raw);
	assert_int_equal(Esys_TR_FromTPMPublic(raw.esys, obj_handle, ESYS_TR_NONE, ESYS_TR_NONE,
					       ESYS_TR_NONE, &obj),
			 TSS2_RC_SUCCESS);
	assert_int_equal(Esys_FlushContext(raw.esys, obj), TSS2_RC_SUCCESS);
	assert_int_equal(Esys_TR_FromTPMPublic(raw.esys, session_handle, ESYS_TR_NONE, ESYS_TR_NONE,
					       ESYS_TR_NONE, &session),
			 TSS2_RC_SUCCESS);
	assert_int_equal(Esys_FlushContext(raw.esys, session), TSS2_RC_SUCCESS);
	raw_close(&raw);

	t = open_tpm(NULL);
	assert_nothing_loaded(t);
	tpm_close(t);
}

/* What a killed client left loaded is flushed when tpmd connects. */
static void test_flush_leftovers(void **state)
{
	TPM2_HANDLE obj_handle = 0, session_handle = 0;
	uint32_t transient = 9, sessions = 9, flushed = 0;
	struct tpm *t;
	struct err e = {0};

	(void)state;
	NEED_SWTPM();
	leave_object_and_session(&obj_handle, &session_handle);

	t = open_tpm(NULL);
	assert_int_equal(tpm_flush_leftovers(t, &flushed, &e), 0);
	assert_int_equal(flushed, 2);
	assert_int_equal(tpm_loaded_handles(t, &transient, &sessions, &e), 0);
	assert_int_equal(transient, 0);
	assert_int_equal(sessions, 0);
	assert_int_equal(tpm_flush_leftovers(t, &flushed, &e), 0);
	assert_int_equal(flushed, 0);
	tpm_close(t);
}

static void test_hierarchy_auth(void **state)
{
	static const char owner_auth[] = "owner-secret";
	static const char endorsement_auth[] = "endorsement-secret";
	struct tpm_hierarchy_auth right = {.endorsement = endorsement_auth, .owner = owner_auth};
	struct tpm_hierarchy_auth wrong_owner = {.endorsement = endorsement_auth, .owner = "x"};
	struct tpm_hierarchy_auth empty = {.endorsement = "", .owner = ""};
	_cleanup_buf_ struct buf srk = {0};
	_cleanup_buf_ struct buf blob = {0};
	struct tpm_public ek_pub, srk_pub;
	uint8_t key[32];
	struct raw raw;
	struct tpm *t;
	struct err e = {0};

	(void)state;
	NEED_SWTPM();
	assert_int_equal(RAND_bytes(key, sizeof(key)), 1);
	t = open_tpm(NULL);
	device_keys(t, &ek_pub, &srk_pub);
	build_blob(&ek_pub, &srk_pub, key, sizeof(key), &blob);
	tpm_close(t);

	/* The owner sets hierarchy authorizations (tpm2_changeauth -c o/e). */
	raw_open(&raw);
	assert_int_equal(raw_change_auth(&raw, ESYS_TR_RH_OWNER, "", 0, owner_auth),
			 TSS2_RC_SUCCESS);
	assert_int_equal(raw_change_auth(&raw, ESYS_TR_RH_ENDORSEMENT, "", 0, endorsement_auth),
			 TSS2_RC_SUCCESS);
	raw_close(&raw);

	/* Owner authorization is needed to persist and evict. */
	t = open_tpm(&empty);
	assert_int_equal(tpm_evict(t, TPM_SRK_HANDLE, &e), -EACCES);
	assert_string_equal(e.msg, "TPM2_EvictControl(0x81000001): tpm:session(1):"
				   "authorization failure without DA implications");
	tpm_close(t);
	t = open_tpm(&right);
	err_clear(&e);
	assert_int_equal(tpm_evict(t, TPM_SRK_HANDLE, &e), 0);
	tpm_close(t);
	t = open_tpm(&wrong_owner);
	buf_init(&srk, 4096);
	err_clear(&e);
	assert_int_equal(tpm_ensure_srk(t, &srk, &e), -EACCES);
	assert_string_equal(e.msg, "TPM2_CreatePrimary(owner): tpm:session(1):authorization "
				   "failure without DA implications");
	assert_nothing_loaded(t);
	tpm_close(t);
	t = open_tpm(&right);
	err_clear(&e);
	assert_int_equal(tpm_ensure_srk(t, &srk, &e), 0);
	tpm_close(t);

	/* Endorsement authorization is needed for the EK's policy. */
	t = open_tpm(&empty);
	err_clear(&e);
	assert_int_equal(tpm_import_auth_key(t, blob.data, blob.len, AUTH_KEY, &e), -EACCES);
	assert_string_equal(e.msg, "TPM2_PolicySecret(TPM_RH_ENDORSEMENT): tpm:session(1):"
				   "authorization failure without DA implications");
	assert_nothing_loaded(t);
	tpm_close(t);
	t = open_tpm(&right);
	err_clear(&e);
	assert_int_equal(tpm_import_auth_key(t, blob.data, blob.len, AUTH_KEY, &e), 0);
	assert_tpm_hmac(t, key, sizeof(key), "y", 1);
	tpm_close(t);

	/* aziot-tpmd sends the value with a trailing NUL: the TPM strips
	 * trailing zeros, so that is the same authorization. Restore the
	 * empty values that way. */
	raw_open(&raw);
	assert_int_equal(
	    raw_change_auth(&raw, ESYS_TR_RH_OWNER, owner_auth, sizeof(owner_auth), ""),
	    TSS2_RC_SUCCESS);
	assert_int_equal(raw_change_auth(&raw, ESYS_TR_RH_ENDORSEMENT, endorsement_auth,
					 sizeof(endorsement_auth), ""),
			 TSS2_RC_SUCCESS);
	raw_close(&raw);
	t = open_tpm(NULL);
	assert_tpm_hmac(t, key, sizeof(key), "z", 1);
	assert_nothing_loaded(t);
	tpm_close(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_open_errors),
	    cmocka_unit_test(test_ek_created_and_persisted),
	    cmocka_unit_test(test_srk_created_and_persisted),
	    cmocka_unit_test(test_read_public_and_evict_errors),
	    cmocka_unit_test(test_import_and_hmac),
	    cmocka_unit_test(test_import_replaces_key),
	    cmocka_unit_test(test_import_refused_blobs),
	    cmocka_unit_test(test_import_bad_arguments),
	    cmocka_unit_test(test_import_needs_ek_and_srk),
	    cmocka_unit_test(test_hmac_errors),
	    cmocka_unit_test(test_loaded_handles_counts_leftovers),
	    cmocka_unit_test(test_flush_leftovers),
	    cmocka_unit_test(test_hierarchy_auth),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
