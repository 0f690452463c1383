/* SPDX-License-Identifier: MIT */
/*
 * The provisioning service's decisions, on a real SQLite store in a fresh
 * directory per test: the [dps] config table and its exact errors; hub
 * allocation (hashed spread and weights, stability, static, candidates);
 * enrollment validation with exact messages; etag rules; query paging;
 * bulk operations; attestation by symmetric key (individual, group with
 * the documented derivation vector, precedence), X.509 (thumbprints,
 * CN, chains to signing certificates and verified CAs, validity) and TPM
 * (the 401 challenge's exact shape, K1 stored for any worker, a wrong or
 * malformed EK); the CA proof of possession; assignment outcomes that need
 * no hub (no linked hub, disabled enrollment).
 */
#include <errno.h>
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
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "cloud/dps/allocation.h"
#include "cloud/dps/assign.h"
#include "cloud/dps/attest.h"
#include "cloud/dps/ca.h"
#include "cloud/dps/cert.h"
#include "cloud/dps/dps.h"
#include "cloud/dps/enrollment.h"
#include "cloud/dps/registration.h"
#include "cloud/store/store.h"
#include "common/buf.h"
#include "common/encode.h"
#include "common/json.h"
#include "common/toml.h"
#include "crypto/sas.h"
#include "crypto/tpm_blob.h"
#include "crypto/tpm_public.h"

/* The EK of the Azure Node SDK's e2e tests, and an SRK from an SDK sample. */
#define EK_TEXT                                                                                    \
	"AToAAQALAAMAsgAgg3GXZ0SEs/gakMyNRqXXJP1S124GUgtk8qHaGzMUaaoABgCAAEMAEAgAAAAAAAEAtKEADl/"  \
	"sNRgm"                                                                                    \
	"YAjP6gXmbccRaJoTnVixisUaek0OwAzFGN70xt9ZOYp6fhIwfcft3fdVKOrKpXYcTe72CGNkGJGlQz5ti9n2pQ0u" \
	"JhcX"                                                                                     \
	"8aefh4Onm7lVlUCQAVp1K0r6zI8vkEXWsBIvwvxk0eMJbFaq146kbTkJHIGczb89RkFH2TX+"                 \
	"CgXeZOG9oXQzUNwktmTU"                                                                     \
	"acspamune5Wywc/ce8HsDFYchyUHogFhrZ/"                                                      \
	"LPnzyTDXO8sSC5z5dvsUBtUME3iRYDyKgZOfBtmRMqQewD+4iH+ZEJjts"                                \
	"yJiWR8hFhyKROnOuqXfNFwjd5IcNU4wtlKO0cLyXmTOfQK6Da1pr5Q=="
static const char EK[] = EK_TEXT;
static const char SRK[] =
    "ARoAAQALAAMEcgAAAAYAgABDABAIAAAAAAABAOtkhwZsvTyGIda0EjHC88xtr/fRzS21rxDkqNkqILJxzwEnQIQJaEtq"
    "ezc+dvxDQP7ANLMtEzdrK8AyYz7DQ5wSoypbj8KOdeOltff/bH61SxkcJ2HszJjF9nEFkDRxY6ikUU7pGJ5D/VvtidPJ"
    "kh53nbRPyirsU69qIQIF6vCPd9TlYSYLMUu1H4qh3ER+vP5h59iMd4qLrvseta4o9gmOxE6oLHTQoojnoiIAKGPGAedq"
    "PsAaPJ2bjTHVJDkfmvKc1VqJIgaC8HC3YD/g56EP4Ppe53e45BckumbusvPfFLC/WsZ1lOFEVVXb4nyFpDm/myG+PwhnW"
    "CLTMjJ6w10=";
/* dps-protocol.md §2.4 and §2.6. */
static const char GROUP_KEY[] =
    "8isrFI1sGsIlvvFSSFRiMfCNzv21fjbE/+ah/lSh3lF8e2YG1Te7w1KpZhJFFXJrqYKi9yegxkqIChbqOS9Egw==";
static const char VECTOR_ID[] = "sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6";
static const char VECTOR_TOKEN[] =
    "SharedAccessSignature sr=0ne00000A0A/registrations/sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6"
    "&sig=hUOH8hSLSay%2BbfE5WjQhRmpIvWZdSog5Tlv8EyKqBg4%3D&skn=registration&se=1700000000";
#define KEY_A_TEXT "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="
#define KEY_B_TEXT "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI="
#define GROUP_KEY_TEXT                                                                             \
	"8isrFI1sGsIlvvFSSFRiMfCNzv21fjbE/+ah/lSh3lF8e2YG1Te7w1KpZhJFFXJrqYKi9yegxkqIChbqOS9Egw=="
static const char KEY_A[] = KEY_A_TEXT;
static const char KEY_B[] = KEY_B_TEXT;

struct fixture {
	char dir[64];
	char url[160];
	struct store *store;
	struct dps_settings *settings;
};

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	return remove(path) < 0 ? -1 : 0;
}

static int parse_settings(const char *text, struct dps_settings **ret, struct err *e)
{
	_cleanup_toml_ struct toml_value *root = NULL;
	int r;

	r = toml_parse(text, strlen(text), "cloud.toml", &root, e);
	if (r < 0)
		return r;
	return dps_config_parse_table(toml_table_get(root, "dps"), "cloud.toml", "dps.example.test",
				      NULL, ret, e);
}

static const char BASE_CONFIG[] =
    "[dps]\n"
    "id_scope = \"0ne00000A0A\"\n"
    "[[dps.shared_access_policy]]\n"
    "name = \"provisioningserviceowner\"\n"
    "primary_key = \"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\"\n"
    "[[dps.linked_hub]]\n"
    "connection_string = \"HostName=hub1.example.test;SharedAccessKeyName=iothubowner;"
    "SharedAccessKey=AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\"\n"
    "[[dps.linked_hub]]\n"
    "connection_string = \"HostName=hub2.example.test;SharedAccessKeyName=iothubowner;"
    "SharedAccessKey=AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\"\n"
    "allocation_weight = 2\n"
    "[[dps.linked_hub]]\n"
    "connection_string = \"HostName=hub3.example.test;SharedAccessKeyName=iothubowner;"
    "SharedAccessKey=AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\"\n"
    "apply_allocation_policy = false\n";

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct err e = {0};

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/edgeid-test-dps-XXXXXX");
	if (!mkdtemp(f->dir)) {
		free(f);
		return -1;
	}
	snprintf(f->url, sizeof(f->url), "sqlite://%s/cloud.db", f->dir);
	if (store_open(f->url, &f->store, &e) < 0) {
		fprintf(stderr, "store_open: %s\n", e.msg);
		return -1;
	}
	if (parse_settings(BASE_CONFIG, &f->settings, &e) < 0) {
		fprintf(stderr, "config: %s\n", e.msg);
		return -1;
	}
	free(f->settings->store_url);
	f->settings->store_url = strdup(f->url);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	store_close(f->store);
	dps_settings_free(f->settings);
	nftw(f->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

static json_t *parse(const char *text)
{
	json_t *j = NULL;

	assert_int_equal(json_parse(text, strlen(text), 0, &j, NULL), 0);
	return j;
}

/* --- config ------------------------------------------------------------------ */

static void test_config_ok(void **state)
{
	struct fixture *f = *state;
	struct dps_settings *s = f->settings;

	assert_string_equal(s->id_scope, "0ne00000A0A");
	assert_string_equal(s->host_name, "dps.example.test");
	assert_int_equal(s->n_policies, 1);
	assert_int_equal(s->n_hubs, 3);
	assert_string_equal(s->hubs[1].host_name, "hub2.example.test");
	assert_string_equal(s->hubs[1].key_name, "iothubowner");
	assert_int_equal(s->hubs[1].weight, 2);
	assert_false(s->hubs[2].apply_allocation_policy);
	assert_int_equal(s->default_allocation, DPS_ALLOC_HASHED);
	assert_int_equal(s->retry_after, 1);
	assert_ptr_equal(dps_settings_find_hub(s, "HUB1.example.TEST"), &s->hubs[0]);
	assert_null(dps_settings_find_hub(s, "hub4.example.test"));
}

static void config_error(const char *text, const char *expected)
{
	struct dps_settings *s = NULL;
	struct err e = {0};

	assert_int_equal(parse_settings(text, &s, &e), -EINVAL);
	assert_null(s);
	assert_string_equal(e.msg, expected);
}

static void test_config_errors(void **state)
{
	(void)state;
	config_error("[dps]\nlisten = []\n",
		     "cloud.toml:1:1: dps.id_scope: missing (expected a string)");
	config_error("[dps]\nid_scope = 7\n",
		     "cloud.toml:2:12: dps.id_scope: expected a string, got integer");
	config_error("[dps]\nid_scope = \"0ne\"\nallocation_policy = \"random\"\n",
		     "cloud.toml:3:21: dps.allocation_policy: expected one of \"hashed\", "
		     "\"geoLatency\", \"static\", \"custom\", got \"random\"");
	config_error("[dps]\nid_scope = \"0ne\"\nretry_after = 0\n",
		     "cloud.toml:3:15: dps.retry_after: expected an integer from 1 to 60");
	config_error("[dps]\nid_scope = \"0ne\"\ncolour = \"blue\"\n",
		     "cloud.toml:3:1: dps.colour: unknown key");
	config_error("[dps]\nid_scope = \"0ne\"\n[[dps.linked_hub]]\nconnection_string = "
		     "\"HostName=h;SharedAccessKey=AQEBAQEBAQEBAQEBAQEBAQ==\"\n",
		     "cloud.toml:4:21: dps.linked_hub[0].connection_string: expected a "
		     "SharedAccessKeyName=... part");
	config_error("[dps]\nid_scope = \"0ne\"\n[[dps.linked_hub]]\nconnection_string = "
		     "\"HostName=h;SharedAccessKeyName=n;SharedAccessKey=abc\"\n",
		     "cloud.toml:4:21: dps.linked_hub[0].connection_string: expected a "
		     "SharedAccessKey=<base64 of 16 to 64 bytes> part");
	config_error("[dps]\nid_scope = \"0ne\"\n[[dps.shared_access_policy]]\nname = \"p\"\n"
		     "primary_key = \"short\"\n",
		     "cloud.toml:5:15: dps.shared_access_policy[0].primary_key: expected base64 of "
		     "16 to 64 bytes");
	config_error("[dps]\nid_scope = \"0ne\"\n[[dps.ca_certificate]]\nname = \"root\"\n"
		     "certificate = \"/nonexistent/ca.pem\"\n",
		     "cloud.toml:5:15: dps.ca_certificate[0].certificate: /nonexistent/ca.pem: "
		     "cannot open: No such file or directory");
}

static void test_connection_string(void **state)
{
	char *h = NULL, *n = NULL, *k = NULL;
	struct err e = {0};

	(void)state;
	/* Any order, names in any case, empty parts skipped. */
	assert_int_equal(dps_parse_connection_string(
			     "sharedaccesskey=AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=;;"
			     "SHAREDACCESSKEYNAME=owner;hostname=h.example",
			     &h, &n, &k, &e),
			 0);
	assert_string_equal(h, "h.example");
	assert_string_equal(n, "owner");
	assert_string_equal(k, KEY_B);
	free(h);
	free(n);
	free(k);
	assert_int_equal(
	    dps_parse_connection_string("SharedAccessKeyName=o;SharedAccessKey=x", &h, &n, &k, &e),
	    -EINVAL);
	assert_string_equal(e.msg, "expected a HostName=... part");
	assert_null(h);
	err_clear(&e);
	assert_int_equal(dps_parse_connection_string("HostName", &h, &n, &k, &e), -EINVAL);
	assert_string_equal(e.msg, "expected Name=value parts separated by ';'");
}

/* --- allocation ------------------------------------------------------------------- */

static void test_neg_ln(void **state)
{
	(void)state;
	assert_true(dps_alloc_neg_ln(1.0) < 1e-15 && dps_alloc_neg_ln(1.0) > -1e-15);
	assert_true(dps_alloc_neg_ln(0.5) - 0.6931471805599453 < 1e-12);
	assert_true(dps_alloc_neg_ln(0.5) - 0.6931471805599453 > -1e-12);
	assert_true(dps_alloc_neg_ln(1e-10) - 23.025850929940457 < 1e-9);
	assert_true(dps_alloc_neg_ln(1e-10) - 23.025850929940457 > -1e-9);
}

static void count_spread(const struct dps_linked_hub *const *hubs, size_t n, unsigned counts[])
{
	for (int i = 0; i < 3000; i++) {
		char id[32];
		size_t k = 99;

		snprintf(id, sizeof(id), "device-%04d", i);
		assert_int_equal(dps_alloc_hashed(id, hubs, n, &k), 0);
		assert_true(k < n);
		counts[k]++;
	}
}

static void test_hashed_even(void **state)
{
	struct dps_linked_hub h[3] = {
	    {.host_name = "hub1.example.test", .weight = 1},
	    {.host_name = "hub2.example.test", .weight = 1},
	    {.host_name = "hub3.example.test", .weight = 1},
	};
	const struct dps_linked_hub *hubs[3] = {&h[0], &h[1], &h[2]};
	unsigned counts[3] = {0};

	(void)state;
	count_spread(hubs, 3, counts);
	for (int i = 0; i < 3; i++) {
		print_message("# hub%d: %u of 3000\n", i + 1, counts[i]);
		/* 1000 each, within 10 % (about 4 standard deviations). */
		assert_in_range(counts[i], 900, 1100);
	}
}

static void test_hashed_weights(void **state)
{
	struct dps_linked_hub h[3] = {
	    {.host_name = "hub1.example.test", .weight = 1},
	    {.host_name = "hub2.example.test", .weight = 2},
	    {.host_name = "hub3.example.test", .weight = 1},
	};
	const struct dps_linked_hub *hubs[3] = {&h[0], &h[1], &h[2]};
	unsigned counts[3] = {0};

	(void)state;
	count_spread(hubs, 3, counts);
	assert_in_range(counts[0], 650, 850);
	assert_in_range(counts[1], 1350, 1650);
	assert_in_range(counts[2], 650, 850);
}

static void test_hashed_stable(void **state)
{
	struct dps_linked_hub h[3] = {
	    {.host_name = "hub1.example.test", .weight = 1},
	    {.host_name = "hub2.example.test", .weight = 1},
	    {.host_name = "hub3.example.test", .weight = 1},
	};
	const struct dps_linked_hub *three[3] = {&h[0], &h[1], &h[2]};
	const struct dps_linked_hub *two[2] = {&h[0], &h[1]};
	size_t a, b, moved = 0;

	(void)state;
	assert_int_equal(dps_alloc_hashed("x", three, 0, &a), -ENOENT);
	for (int i = 0; i < 1000; i++) {
		char id[32];

		snprintf(id, sizeof(id), "Device-%d", i);
		assert_int_equal(dps_alloc_hashed(id, three, 3, &a), 0);
		/* Case does not matter; order of the hubs does not matter. */
		for (char *p = id; *p; p++)
			if (*p >= 'A' && *p <= 'Z')
				*p = (char)(*p - 'A' + 'a');
		assert_int_equal(dps_alloc_hashed(id, three, 3, &b), 0);
		assert_int_equal(a, b);
		/* Removing hub3 moves only hub3's devices. */
		assert_int_equal(dps_alloc_hashed(id, two, 2, &b), 0);
		if (a != 2)
			assert_int_equal(a, b);
		else
			moved++;
	}
	assert_in_range(moved, 250, 420);
}

static void test_candidates_and_static(void **state)
{
	struct fixture *f = *state;
	const struct dps_linked_hub *c[DPS_ALLOC_MAX_HUBS], *h = NULL;
	_cleanup_json_ json_t *none = parse("{}");
	_cleanup_json_ json_t *listed =
	    parse("{\"iotHubs\":[\"hub3.example.test\",\"nope.example\",\"HUB3.example.test\"]}");
	_cleanup_json_ json_t *fixed = parse("{\"allocationPolicy\":\"static\","
					     "\"iotHubHostName\":\"hub2.example.test\"}");
	_cleanup_json_ json_t *one = parse("{\"iotHubs\":[\"hub1.example.test\"]}");
	_cleanup_json_ json_t *unlinked = parse("{\"iotHubHostName\":\"hub9.example.test\"}");
	struct err e = {0};

	/* Without iotHubs: the hubs that apply the policy (not hub3). */
	assert_int_equal(dps_alloc_candidates(f->settings, none, c, DPS_ALLOC_MAX_HUBS), 2);
	assert_ptr_equal(c[0], &f->settings->hubs[0]);
	assert_ptr_equal(c[1], &f->settings->hubs[1]);
	/* With iotHubs: the linked ones listed, once. */
	assert_int_equal(dps_alloc_candidates(f->settings, listed, c, DPS_ALLOC_MAX_HUBS), 1);
	assert_ptr_equal(c[0], &f->settings->hubs[2]);

	assert_int_equal(dps_alloc_policy(f->settings, none), DPS_ALLOC_HASHED);
	assert_int_equal(dps_alloc_policy(f->settings, fixed), DPS_ALLOC_STATIC);
	assert_int_equal(dps_alloc_static(f->settings, fixed, &h, &e), 0);
	assert_ptr_equal(h, &f->settings->hubs[1]);
	assert_int_equal(dps_alloc_static(f->settings, one, &h, &e), 0);
	assert_ptr_equal(h, &f->settings->hubs[0]);
	assert_int_equal(dps_alloc_static(f->settings, none, &h, &e), -ENOENT);
	assert_string_equal(
	    e.msg, "The enrollment's allocation policy is static, but it names no IoT hub.");
	err_clear(&e);
	assert_int_equal(dps_alloc_static(f->settings, unlinked, &h, &e), -EINVAL);
	assert_string_equal(e.msg,
			    "The IoT hub \"hub9.example.test\" is not linked to this service.");
}

/* --- enrollments ------------------------------------------------------------- */

static void normalize_error(struct fixture *f, enum dps_kind kind, const char *path_id,
			    const char *body_text, const char *expected)
{
	_cleanup_json_ json_t *body = parse(body_text);
	json_t *out = NULL;
	struct err e = {0};

	assert_int_equal(
	    dps_enrollment_normalize(f->settings, f->store, kind, path_id, body, NULL, &out, &e),
	    -EINVAL);
	assert_null(out);
	assert_string_equal(e.msg, expected);
	assert_int_equal(dps_status_for(-EINVAL, kind).http, 400);
	assert_int_equal(dps_status_for(-EINVAL, kind).code, 400004);
}

#define SYM "\"attestation\":{\"type\":\"symmetricKey\"}"

static void test_enrollment_validation(void **state)
{
	struct fixture *f = *state;

	normalize_error(f, DPS_INDIVIDUAL, "dev1", "[]", "expected a JSON object, got an array");
	normalize_error(f, DPS_INDIVIDUAL, "dev1", "{\"registrationId\":\"other\"," SYM "}",
			"registrationId: \"other\" does not match the id in the path (\"dev1\")");
	normalize_error(f, DPS_INDIVIDUAL, "-dev1", "{" SYM "}",
			"registrationId: expected 1 to 128 letters, digits, '-', '.', '_' or ':', "
			"starting and ending with a letter or digit");
	normalize_error(f, DPS_INDIVIDUAL, NULL, "{" SYM "}", "registrationId: missing");
	normalize_error(f, DPS_INDIVIDUAL, "dev1", "{}", "attestation: missing");
	normalize_error(f, DPS_INDIVIDUAL, "dev1", "{\"attestation\":[]}",
			"attestation: expected an object, got an array");
	normalize_error(f, DPS_INDIVIDUAL, "dev1", "{\"attestation\":{}}",
			"attestation.type: missing");
	normalize_error(
	    f, DPS_INDIVIDUAL, "dev1", "{\"attestation\":{\"type\":\"none\"}}",
	    "attestation.type: expected one of \"tpm\", \"x509\", \"symmetricKey\", got "
	    "\"none\"");
	normalize_error(f, DPS_GROUP, "g1", "{\"attestation\":{\"type\":\"tpm\"}}",
			"attestation.type: expected \"symmetricKey\" or \"x509\" for an enrollment "
			"group, got \"tpm\"");
	normalize_error(
	    f, DPS_INDIVIDUAL, "dev1", "{\"attestation\":{\"type\":\"tpm\",\"tpm\":{}}}",
	    "attestation.tpm.endorsementKey: missing (base64 of the EK's TPM2B_PUBLIC)");
	normalize_error(
	    f, DPS_INDIVIDUAL, "dev1",
	    "{\"attestation\":{\"type\":\"tpm\",\"tpm\":{\"endorsementKey\":\"AAEC\"}}}",
	    "attestation.tpm.endorsementKey: TPM2B_PUBLIC: type: truncated");
	normalize_error(
	    f, DPS_INDIVIDUAL, "dev1",
	    "{\"attestation\":{\"type\":\"symmetricKey\",\"symmetricKey\":{\"primaryKey\":"
	    "\"abc\"}}}",
	    "attestation.symmetricKey.primaryKey: expected base64 of 16 to 64 bytes");
	normalize_error(
	    f, DPS_INDIVIDUAL, "dev1",
	    "{\"attestation\":{\"type\":\"x509\",\"x509\":{\"signingCertificates\":{}}}}",
	    "attestation.x509.clientCertificates: missing (an individual enrollment names "
	    "the device's own certificate)");
	normalize_error(f, DPS_INDIVIDUAL, "dev1",
			"{\"attestation\":{\"type\":\"x509\",\"x509\":{\"clientCertificates\":{"
			"\"primary\":{\"certificate\":\"junk\"}}}}}",
			"attestation.x509.clientCertificates.primary.certificate: expected a PEM "
			"certificate");
	normalize_error(f, DPS_GROUP, "g1", "{\"attestation\":{\"type\":\"x509\",\"x509\":{}}}",
			"attestation.x509: expected either signingCertificates or caReferences");
	normalize_error(
	    f, DPS_GROUP, "g1",
	    "{\"attestation\":{\"type\":\"x509\",\"x509\":{\"caReferences\":{\"primary\":"
	    "\"nope\"}}}}",
	    "attestation.x509.caReferences.primary: no CA certificate named \"nope\"");
	normalize_error(
	    f, DPS_INDIVIDUAL, "dev1", "{\"deviceId\":\"a/b\"," SYM "}",
	    "deviceId: expected 1 to 128 letters, digits or - : . + % _ # * ? ! ( ) , = @ "
	    "$ '");
	normalize_error(f, DPS_INDIVIDUAL, "dev1", "{\"iotHubs\":[\"hub9.example.test\"]," SYM "}",
			"iotHubs[0]: \"hub9.example.test\" is not a linked IoT hub");
	normalize_error(f, DPS_INDIVIDUAL, "dev1", "{\"iotHubHostName\":\"hub9\"," SYM "}",
			"iotHubHostName: \"hub9\" is not a linked IoT hub");
	normalize_error(f, DPS_INDIVIDUAL, "dev1", "{\"provisioningStatus\":\"off\"," SYM "}",
			"provisioningStatus: expected \"enabled\" or \"disabled\", got \"off\"");
	normalize_error(f, DPS_INDIVIDUAL, "dev1", "{\"allocationPolicy\":\"random\"," SYM "}",
			"allocationPolicy: expected one of \"hashed\", \"geoLatency\", \"static\", "
			"\"custom\", got \"random\"");
	normalize_error(f, DPS_INDIVIDUAL, "dev1", "{\"allocationPolicy\":\"static\"," SYM "}",
			"allocationPolicy: \"static\" needs iotHubHostName or exactly one entry in "
			"iotHubs");
	normalize_error(f, DPS_INDIVIDUAL, "dev1", "{\"allocationPolicy\":\"custom\"," SYM "}",
			"customAllocationDefinition.webhookUrl: missing (required by "
			"allocationPolicy \"custom\")");
	normalize_error(f, DPS_INDIVIDUAL, "dev1",
			"{\"capabilities\":{\"iotEdge\":\"yes\"}," SYM "}",
			"capabilities.iotEdge: expected a boolean, got a string");
	normalize_error(f, DPS_INDIVIDUAL, "dev1", "{\"initialTwin\":{\"tags\":[]}," SYM "}",
			"initialTwin.tags: expected an object");
}

static void test_enrollment_normalize(void **state)
{
	struct fixture *f = *state;
	_cleanup_json_ json_t *body =
	    parse("{\"registrationId\":\"Dev-1\",\"attestation\":{\"type\":\"symmetricKey\"},"
		  "\"etag\":\"ignored\",\"registrationState\":{},\"unknown\":1,"
		  "\"initialTwin\":{\"tags\":{\"a\":1},\"properties\":{\"desired\":{\"b\":2}}}}");
	_cleanup_json_ json_t *doc = NULL, *again = NULL, *view = NULL;
	_cleanup_buf_ struct buf raw = {0};
	const char *p1, *p2;
	struct err e = {0};

	assert_int_equal(dps_enrollment_normalize(f->settings, f->store, DPS_INDIVIDUAL, "dev-1",
						  body, NULL, &doc, &e),
			 0);
	/* The body's spelling of the id; defaults; no etag or unknown keys. */
	assert_string_equal(json_string_value(json_object_get(doc, "registrationId")), "Dev-1");
	assert_string_equal(json_string_value(json_object_get(doc, "provisioningStatus")),
			    "enabled");
	assert_true(
	    json_is_false(json_object_get(json_object_get(doc, "capabilities"), "iotEdge")));
	assert_true(json_is_true(
	    json_object_get(json_object_get(doc, "reprovisionPolicy"), "migrateDeviceData")));
	assert_null(json_object_get(doc, "etag"));
	assert_null(json_object_get(doc, "unknown"));
	assert_null(json_object_get(doc, "registrationState"));
	assert_null(json_object_get(doc, "allocationPolicy"));
	assert_int_equal(
	    json_integer_value(json_object_get(
		json_object_get(json_object_get(json_object_get(doc, "initialTwin"), "properties"),
				"desired"),
		"b")),
	    2);
	/* 64 generated bytes per key. */
	assert_int_equal(json_get_string(doc, "attestation.symmetricKey.primaryKey", &p1, NULL), 0);
	buf_init(&raw, 128);
	assert_int_equal(base64_decode(&raw, p1, strlen(p1), B64_STANDARD, NULL), 0);
	assert_int_equal(raw.len, 64);
	/* An update without keys keeps them. */
	assert_int_equal(dps_enrollment_normalize(f->settings, f->store, DPS_INDIVIDUAL, "dev-1",
						  body, doc, &again, &e),
			 0);
	assert_int_equal(json_get_string(again, "attestation.symmetricKey.primaryKey", &p2, NULL),
			 0);
	assert_string_equal(p1, p2);
	/* The view without keys. */
	view = dps_enrollment_view(doc, "etag1", false, NULL);
	assert_string_equal(json_string_value(json_object_get(view, "etag")), "etag1");
	assert_int_equal(
	    json_object_size(json_object_get(json_object_get(view, "attestation"), "symmetricKey")),
	    0);
}

static void test_enrollment_etags(void **state)
{
	struct fixture *f = *state;
	_cleanup_json_ json_t *body = parse("{" SYM "}");
	_cleanup_json_ json_t *v1 = NULL, *v2 = NULL, *got = NULL;
	char quoted[128];
	struct err e = {0};
	bool created = false;
	const char *etag1, *etag2;

	/* If-Match on a missing enrollment: 404. */
	assert_int_equal(dps_enrollment_put(f->store, f->settings, DPS_INDIVIDUAL, "dev1", body,
					    "*", NULL, NULL, &e),
			 -ENOENT);
	assert_string_equal(e.msg, "The enrollment \"dev1\" does not exist.");
	assert_int_equal(dps_status_for(-ENOENT, DPS_INDIVIDUAL).code, 404201);
	err_clear(&e);
	assert_int_equal(dps_enrollment_put(f->store, f->settings, DPS_INDIVIDUAL, "dev1", body,
					    NULL, &v1, &created, &e),
			 0);
	assert_true(created);
	etag1 = json_string_value(json_object_get(v1, "etag"));
	assert_non_null(etag1);
	/* Node sends the etag unquoted, others quoted: both match. */
	snprintf(quoted, sizeof(quoted), "\"%s\"", etag1);
	assert_int_equal(dps_enrollment_put(f->store, f->settings, DPS_INDIVIDUAL, "DEV1", body,
					    quoted, &v2, &created, &e),
			 0);
	assert_false(created);
	etag2 = json_string_value(json_object_get(v2, "etag"));
	assert_string_not_equal(etag1, etag2);
	/* The old etag no longer matches: 412. */
	assert_int_equal(dps_enrollment_put(f->store, f->settings, DPS_INDIVIDUAL, "dev1", body,
					    etag1, NULL, NULL, &e),
			 -ESTALE);
	assert_string_equal(e.msg, "The etag does not match the enrollment's current etag.");
	assert_int_equal(dps_status_for(-ESTALE, DPS_INDIVIDUAL).http, 412);
	err_clear(&e);
	assert_int_equal(dps_enrollment_delete(f->store, DPS_INDIVIDUAL, "dev1", etag1, &e),
			 -ESTALE);
	err_clear(&e);
	assert_int_equal(dps_enrollment_delete(f->store, DPS_INDIVIDUAL, "dev1", etag2, &e), 0);
	assert_int_equal(dps_enrollment_get(f->store, DPS_INDIVIDUAL, "dev1", false, &got, &e),
			 -ENOENT);
	assert_string_equal(e.msg, "The enrollment \"dev1\" does not exist.");

	assert_true(dps_etag_matches(NULL, "x"));
	assert_true(dps_etag_matches("*", "x"));
	assert_true(dps_etag_matches("\"*\"", "x"));
	assert_true(dps_etag_matches("\"x\"", "x"));
	assert_false(dps_etag_matches("y", "x"));
}

static void test_enrollment_paging(void **state)
{
	struct fixture *f = *state;
	_cleanup_json_ json_t *body = parse("{" SYM "}");
	_cleanup_free_ char *cont = NULL;
	size_t sizes[5] = {0}, pages = 0, seen = 0;
	struct err e = {0};

	for (int i = 24; i >= 0; i--) {
		char id[16];

		snprintf(id, sizeof(id), "dev-%02d", i);
		assert_int_equal(dps_enrollment_put(f->store, f->settings, DPS_INDIVIDUAL, id, body,
						    NULL, NULL, NULL, &e),
				 0);
	}
	do {
		_cleanup_json_ json_t *items = NULL;
		char *next = NULL;
		size_t i;
		json_t *v;

		assert_int_equal(
		    dps_enrollment_query(f->store, DPS_INDIVIDUAL, cont, 10, &items, &next, &e), 0);
		json_array_foreach (items, i, v) {
			char id[16];

			snprintf(id, sizeof(id), "dev-%02zu", seen++);
			assert_string_equal(json_string_value(json_object_get(v, "registrationId")),
					    id);
			assert_non_null(json_object_get(v, "etag"));
			assert_int_equal(json_object_size(json_object_get(
					     json_object_get(v, "attestation"), "symmetricKey")),
					 0);
		}
		assert_true(pages < 5);
		sizes[pages++] = json_array_size(items);
		free(cont);
		cont = next;
	} while (cont);
	assert_int_equal(pages, 3);
	assert_int_equal(sizes[0], 10);
	assert_int_equal(sizes[1], 10);
	assert_int_equal(sizes[2], 5);
	{
		_cleanup_json_ json_t *items = NULL;
		char *next = NULL;

		assert_int_equal(dps_enrollment_query(f->store, DPS_INDIVIDUAL, "garbage", 10,
						      &items, &next, &e),
				 -EINVAL);
		assert_string_equal(e.msg,
				    "x-ms-continuation: not a continuation token of this query");
	}
}

static void test_enrollment_bulk(void **state)
{
	struct fixture *f = *state;
	_cleanup_json_ json_t *create =
	    parse("{\"mode\":\"create\",\"enrollments\":[{\"registrationId\":\"b1\"," SYM "},"
		  "{\"registrationId\":\"b2\"," SYM "}]}");
	_cleanup_json_ json_t *bad_item =
	    parse("{\"mode\":\"update\",\"enrollments\":[{\"registrationId\":\"b3\"," SYM "},"
		  "{\"registrationId\":\"b4\",\"attestation\":{\"type\":\"none\"}}]}");
	_cleanup_json_ json_t *stale =
	    parse("{\"mode\":\"updateIfMatchETag\",\"enrollments\":[{\"registrationId\":\"b1\","
		  "\"etag\":\"old\"," SYM "}]}");
	_cleanup_json_ json_t *r1 = NULL, *r2 = NULL, *r3 = NULL, *r4 = NULL, *r5 = NULL,
			      *big = NULL;
	_cleanup_free_ char *t2 = NULL, *t3 = NULL, *t4 = NULL;
	struct err e = {0};

	assert_int_equal(
	    dps_enrollment_bulk(f->store, f->settings, DPS_INDIVIDUAL, create, &r1, &e), 0);
	assert_true(json_is_true(json_object_get(r1, "isSuccessful")));
	assert_int_equal(json_array_size(json_object_get(r1, "errors")), 0);
	assert_int_equal(
	    dps_enrollment_bulk(f->store, f->settings, DPS_INDIVIDUAL, create, &r2, &e), 0);
	t2 = json_dump_compact(r2);
	assert_string_equal(t2, "{\"isSuccessful\":false,\"errors\":["
				"{\"registrationId\":\"b1\",\"errorCode\":409000,\"errorStatus\":"
				"\"The enrollment \\\"b1\\\" already exists.\"},"
				"{\"registrationId\":\"b2\",\"errorCode\":409000,\"errorStatus\":"
				"\"The enrollment \\\"b2\\\" already exists.\"}]}");
	/* One bad item fails alone. */
	assert_int_equal(
	    dps_enrollment_bulk(f->store, f->settings, DPS_INDIVIDUAL, bad_item, &r3, &e), 0);
	t3 = json_dump_compact(r3);
	assert_string_equal(
	    t3, "{\"isSuccessful\":false,\"errors\":[{\"registrationId\":\"b4\","
		"\"errorCode\":400004,\"errorStatus\":\"attestation.type: expected one "
		"of \\\"tpm\\\", \\\"x509\\\", \\\"symmetricKey\\\", got \\\"none\\\"\"}]}");
	assert_int_equal(dps_enrollment_load(f->store, DPS_INDIVIDUAL, "b3", NULL, NULL, NULL), 0);
	assert_int_equal(dps_enrollment_bulk(f->store, f->settings, DPS_INDIVIDUAL, stale, &r4, &e),
			 0);
	t4 = json_dump_compact(r4);
	assert_string_equal(t4,
			    "{\"isSuccessful\":false,\"errors\":[{\"registrationId\":\"b1\","
			    "\"errorCode\":412000,\"errorStatus\":\"The etag does not match the "
			    "enrollment's current etag.\"}]}");

	big = parse("{\"mode\":\"delete\",\"enrollments\":[{},{},{},{},{},{},{},{},{},{},{}]}");
	assert_int_equal(dps_enrollment_bulk(f->store, f->settings, DPS_INDIVIDUAL, big, &r5, &e),
			 -EINVAL);
	assert_string_equal(e.msg, "enrollments: expected 1 to 10 items, got 11");
	json_decref(big);
	err_clear(&e);
	big = parse("{\"mode\":\"merge\",\"enrollmentGroups\":[]}");
	assert_int_equal(dps_enrollment_bulk(f->store, f->settings, DPS_GROUP, big, &r5, &e),
			 -EINVAL);
	assert_string_equal(e.msg, "mode: expected one of \"create\", \"update\", "
				   "\"updateIfMatchETag\", \"delete\", got \"merge\"");
}

/* --- attestation: symmetric keys --------------------------------------------- */

static void put_enrollment(struct fixture *f, enum dps_kind kind, const char *id, const char *body)
{
	_cleanup_json_ json_t *j = parse(body);
	struct err e = {0};

	if (dps_enrollment_put(f->store, f->settings, kind, id, j, NULL, NULL, NULL, &e) < 0)
		fail_msg("put %s: %s", id, e.msg);
}

static char *token(const char *resource, const char *key, uint64_t expiry, const char *skn,
		   unsigned flags)
{
	struct buf t;
	struct err e = {0};

	buf_init(&t, 4096);
	assert_int_equal(sas_token_create(resource, key, expiry, skn, flags, &t, &e), 0);
	return buf_steal(&t, NULL);
}

static int attest(struct fixture *f, const char *id, const char *auth, STACK_OF(X509) * chain,
		  const json_t *tpm, bool challenge, uint64_t now, struct dps_attest_result *ret,
		  struct err *e)
{
	struct dps_attest_request req = {
	    .registration_id = id,
	    .authorization = auth,
	    .peer_chain = chain,
	    .tpm = tpm,
	    .allow_challenge = challenge,
	    .now = now,
	};

	err_clear(e);
	return dps_attest(f->store, f->settings, &req, ret, e);
}

static void test_attest_symmetric_individual(void **state)
{
	struct fixture *f = *state;
	uint64_t now = (uint64_t)time(NULL);
	_cleanup_free_ char *good =
	    token("0ne00000A0A/registrations/dev1", KEY_A, now + 3600, "registration", 0);
	_cleanup_free_ char *second = token("0ne00000A0A/registrations/dev1", KEY_B, now + 3600,
					    "registration", SAS_SR_URL_ENCODE | SAS_SR_LOWER_HEX);
	_cleanup_free_ char *wrong =
	    token("0ne00000A0A/registrations/dev1", GROUP_KEY, now + 3600, "registration", 0);
	_cleanup_free_ char *expired =
	    token("0ne00000A0A/registrations/dev1", KEY_A, now - 1000, "registration", 0);
	_cleanup_free_ char *other =
	    token("0ne00000A0A/registrations/dev2", KEY_A, now + 3600, "registration", 0);
	_cleanup_free_ char *skn =
	    token("0ne00000A0A/registrations/dev1", KEY_A, now + 3600, "other", 0);
	_cleanup_free_ char *unknown =
	    token("0ne00000A0A/registrations/dev9", KEY_A, now + 3600, "registration", 0);
	struct dps_attest_result a = {0};
	struct err e = {0};

	put_enrollment(f, DPS_INDIVIDUAL, "dev1",
		       "{\"attestation\":{\"type\":\"symmetricKey\",\"symmetricKey\":{"
		       "\"primaryKey\":\"" KEY_A_TEXT "\",\"secondaryKey\":\"" KEY_B_TEXT "\"}}}");
	assert_int_equal(attest(f, "dev1", good, NULL, NULL, false, 0, &a, &e), 0);
	assert_int_equal(a.type, DPS_ATTEST_SYMMETRIC_KEY);
	assert_string_equal(a.primary_key, KEY_A);
	assert_string_equal(a.secondary_key, KEY_B);
	assert_null(a.group_id);
	dps_attest_result_clear(&a);
	/* The secondary key, an sr encoded as the C SDK does, and a path id in
	 * another case. */
	assert_int_equal(attest(f, "DEV1", second, NULL, NULL, false, 0, &a, &e), 0);
	dps_attest_result_clear(&a);

	assert_int_equal(attest(f, "dev1", wrong, NULL, NULL, false, 0, &a, &e), -EACCES);
	assert_string_equal(e.msg, "Unauthorized");
	/* An unknown registration answers exactly as a wrong key does. */
	assert_int_equal(attest(f, "dev9", unknown, NULL, NULL, false, 0, &a, &e), -EACCES);
	assert_string_equal(e.msg, "Unauthorized");
	assert_int_equal(attest(f, "dev1", expired, NULL, NULL, false, 0, &a, &e), -EACCES);
	assert_string_equal(e.msg, "Unauthorized: the SharedAccessSignature has expired.");
	assert_int_equal(attest(f, "dev1", other, NULL, NULL, false, 0, &a, &e), -EACCES);
	assert_string_equal(
	    e.msg, "Unauthorized: the SharedAccessSignature is not for this registration.");
	assert_int_equal(attest(f, "dev1", skn, NULL, NULL, false, 0, &a, &e), -EACCES);
	assert_string_equal(
	    e.msg, "Unauthorized: the SharedAccessSignature's skn must be \"registration\".");
	assert_int_equal(attest(f, "dev1", "Bearer abc", NULL, NULL, false, 0, &a, &e), -EACCES);
	assert_string_equal(e.msg, "Unauthorized: the Authorization header is not a valid "
				   "SharedAccessSignature.");
	/* Nothing at all. */
	assert_int_equal(attest(f, "dev1", NULL, NULL, NULL, true, 0, &a, &e), -EACCES);
	assert_string_equal(e.msg, "Unauthorized");
	/* A disabled enrollment still authenticates (the caller reports it). */
	put_enrollment(f, DPS_INDIVIDUAL, "dev1",
		       "{\"provisioningStatus\":\"disabled\",\"attestation\":{\"type\":"
		       "\"symmetricKey\",\"symmetricKey\":{\"primaryKey\":\"" KEY_A_TEXT "\"}}}");
	assert_int_equal(attest(f, "dev1", good, NULL, NULL, false, 0, &a, &e), 0);
	assert_string_equal(json_string_value(json_object_get(a.enrollment, "provisioningStatus")),
			    "disabled");
	dps_attest_result_clear(&a);
}

static void test_attest_symmetric_group(void **state)
{
	struct fixture *f = *state;
	struct dps_attest_result a = {0};
	struct err e = {0};

	put_enrollment(f, DPS_GROUP, "other-group",
		       "{\"attestation\":{\"type\":\"symmetricKey\",\"symmetricKey\":{"
		       "\"primaryKey\":\"" KEY_A_TEXT "\"}}}");
	put_enrollment(f, DPS_GROUP, "vector-group",
		       "{\"attestation\":{\"type\":\"symmetricKey\",\"symmetricKey\":{"
		       "\"primaryKey\":\"" KEY_B_TEXT "\",\"secondaryKey\":\"" GROUP_KEY_TEXT
		       "\"}}}");
	/* The documented vector: the device key derived from the group's
	 * (secondary) key signs the token Node builds. */
	assert_int_equal(
	    attest(f, VECTOR_ID, VECTOR_TOKEN, NULL, NULL, false, 1700000000 - 60, &a, &e), 0);
	assert_string_equal(a.group_id, "vector-group");
	assert_string_equal(a.secondary_key, "Jsm0lyGpjaVYVP2g3FnmnmG9dI/9qU24wNoykUmermc=");
	dps_attest_result_clear(&a);
	/* The group named by the device's record is tried first; a record
	 * naming another (or a missing) group still finds the right one. */
	for (int i = 0; i < 3; i++) {
		static const char *const hints[] = {"vector-group", "other-group", "gone-group"};
		_cleanup_json_ json_t *rec =
		    json_pack("{s:s, s:{s:s}}", "registrationId", VECTOR_ID, DPS_REG_PRIVATE,
			      "group", hints[i]);
		struct dps_attest_request req = {.registration_id = VECTOR_ID,
						 .authorization = VECTOR_TOKEN,
						 .record = rec,
						 .now = 1700000000};

		assert_int_equal(dps_attest(f->store, f->settings, &req, &a, &e), 0);
		assert_string_equal(a.group_id, "vector-group");
		dps_attest_result_clear(&a);
	}
	/* 5 minutes of clock skew, not more. */
	assert_int_equal(attest(f, VECTOR_ID, VECTOR_TOKEN, NULL, NULL, false, 1700000300, &a, &e),
			 0);
	dps_attest_result_clear(&a);
	assert_int_equal(attest(f, VECTOR_ID, VECTOR_TOKEN, NULL, NULL, false, 1700000301, &a, &e),
			 -EACCES);
	/* An individual enrollment for the id takes precedence over groups. */
	put_enrollment(f, DPS_INDIVIDUAL, VECTOR_ID,
		       "{\"attestation\":{\"type\":\"symmetricKey\",\"symmetricKey\":{"
		       "\"primaryKey\":\"" KEY_A_TEXT "\"}}}");
	assert_int_equal(attest(f, VECTOR_ID, VECTOR_TOKEN, NULL, NULL, false, 1700000000, &a, &e),
			 -EACCES);
	assert_string_equal(e.msg, "Unauthorized");
}

/* --- attestation: X.509 -------------------------------------------------------- */

static long serial = 1;

static EVP_PKEY *new_key(void)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");

	assert_non_null(k);
	return k;
}

static void add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;

	X509V3_set_ctx(&ctx, issuer ? issuer : cert, cert, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	assert_non_null(ext);
	assert_int_equal(X509_add_ext(cert, ext, -1), 1);
	X509_EXTENSION_free(ext);
}

/* A certificate for key with CN=cn, valid from now+from to now+to seconds,
 * signed by issuer (NULL: self-signed). */
static X509 *new_cert(const char *cn, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key, bool ca,
		      long from, long to)
{
	X509 *x = X509_new();

	assert_non_null(x);
	assert_int_equal(X509_set_version(x, 2), 1);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
	X509_gmtime_adj(X509_getm_notBefore(x), from);
	X509_gmtime_adj(X509_getm_notAfter(x), to);
	assert_int_equal(X509_set_pubkey(x, key), 1);
	assert_int_equal(X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
						    (const unsigned char *)cn, -1, -1, 0),
			 1);
	assert_int_equal(X509_set_issuer_name(x, X509_get_subject_name(issuer ? issuer : x)), 1);
	if (ca) {
		add_ext(x, issuer, NID_basic_constraints, "critical,CA:TRUE");
		add_ext(x, issuer, NID_key_usage, "critical,keyCertSign,cRLSign");
	}
	assert_true(X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256()) > 0);
	return x;
}

static char *pem_of(X509 *cert)
{
	struct buf b;

	buf_init(&b, 64 * 1024);
	assert_int_equal(dps_cert_to_pem(cert, &b), 0);
	return buf_steal(&b, NULL);
}

static STACK_OF(X509) * chain_of(X509 *leaf, X509 *extra)
{
	STACK_OF(X509) *sk = sk_X509_new_null();

	sk_X509_push(sk, leaf);
	if (extra)
		sk_X509_push(sk, extra);
	return sk;
}

struct pki {
	EVP_PKEY *ca_key, *other_key, *dev_key;
	X509 *ca, *other_ca, *self, *leaf, *foreign, *expired;
};

static void pki_make(struct pki *p)
{
	p->ca_key = new_key();
	p->other_key = new_key();
	p->dev_key = new_key();
	p->ca = new_cert("test device CA", p->ca_key, NULL, NULL, true, -3600, 86400);
	p->other_ca = new_cert("another CA", p->other_key, NULL, NULL, true, -3600, 86400);
	p->self = new_cert("x509-self", p->dev_key, NULL, NULL, false, -3600, 86400);
	p->leaf = new_cert("x509-dev", p->dev_key, p->ca, p->ca_key, false, -3600, 86400);
	p->foreign =
	    new_cert("x509-dev", p->dev_key, p->other_ca, p->other_key, false, -3600, 86400);
	p->expired = new_cert("x509-old", p->dev_key, p->ca, p->ca_key, false, -7200, -3600);
}

static void pki_free(struct pki *p)
{
	EVP_PKEY_free(p->ca_key);
	EVP_PKEY_free(p->other_key);
	EVP_PKEY_free(p->dev_key);
	X509_free(p->ca);
	X509_free(p->other_ca);
	X509_free(p->self);
	X509_free(p->leaf);
	X509_free(p->foreign);
	X509_free(p->expired);
}

static void put_x509(struct fixture *f, enum dps_kind kind, const char *id, const char *what,
		     X509 *cert)
{
	_cleanup_free_ char *pem = pem_of(cert);
	_cleanup_json_ json_t *body =
	    json_pack("{s:{s:s, s:{s:{s:{s:s}}}}}", "attestation", "type", "x509", "x509", what,
		      "primary", "certificate", pem);
	struct err e = {0};

	assert_non_null(body);
	if (dps_enrollment_put(f->store, f->settings, kind, id, body, NULL, NULL, NULL, &e) < 0)
		fail_msg("put %s: %s", id, e.msg);
}

static void test_attest_x509(void **state)
{
	struct fixture *f = *state;
	struct dps_attest_result a = {0};
	struct err e = {0};
	struct pki p;
	STACK_OF(X509) * sk;

	pki_make(&p);
	put_x509(f, DPS_INDIVIDUAL, "x509-self", "clientCertificates", p.self);
	put_x509(f, DPS_GROUP, "x509-group", "signingCertificates", p.ca);

	/* Individual: the enrolled certificate, by thumbprint. */
	sk = chain_of(p.self, NULL);
	assert_int_equal(attest(f, "x509-self", NULL, sk, NULL, false, 0, &a, &e), 0);
	assert_int_equal(a.type, DPS_ATTEST_X509);
	assert_null(a.group_id);
	assert_string_equal(json_string_value(json_object_get(a.certificate_info, "subjectName")),
			    "CN=x509-self");
	dps_attest_result_clear(&a);
	/* The CN must be the registration id. */
	assert_int_equal(attest(f, "x509-dev", NULL, sk, NULL, false, 0, &a, &e), -EACCES);
	assert_string_equal(e.msg, "Unauthorized: the client certificate's subject CN must be the "
				   "registration id.");
	sk_X509_free(sk);

	/* An individual enrollment with another certificate: refused, and the
	 * groups are not consulted. */
	put_x509(f, DPS_INDIVIDUAL, "x509-dev", "clientCertificates", p.self);
	sk = chain_of(p.leaf, NULL);
	assert_int_equal(attest(f, "x509-dev", NULL, sk, NULL, false, 0, &a, &e), -EACCES);
	assert_string_equal(e.msg, "Unauthorized");
	assert_int_equal(dps_enrollment_delete(f->store, DPS_INDIVIDUAL, "x509-dev", NULL, &e), 0);

	/* Group: the chain verifies to the signing certificate. */
	assert_int_equal(attest(f, "x509-dev", NULL, sk, NULL, false, 0, &a, &e), 0);
	assert_string_equal(a.group_id, "x509-group");
	assert_string_equal(json_string_value(json_object_get(a.signing_info, "subjectName")),
			    "CN=test device CA");
	dps_attest_result_clear(&a);
	sk_X509_free(sk);

	/* A certificate from another CA, even with the other CA in the chain. */
	sk = chain_of(p.foreign, p.other_ca);
	assert_int_equal(attest(f, "x509-dev", NULL, sk, NULL, false, 0, &a, &e), -EACCES);
	assert_string_equal(e.msg, "Unauthorized");
	sk_X509_free(sk);

	/* Outside its validity period. */
	sk = chain_of(p.expired, NULL);
	assert_int_equal(attest(f, "x509-old", NULL, sk, NULL, false, 0, &a, &e), -EACCES);
	assert_string_equal(e.msg,
			    "Unauthorized: the client certificate is not valid at this time.");
	sk_X509_free(sk);
	pki_free(&p);
}

static void test_ca_possession(void **state)
{
	struct fixture *f = *state;
	_cleanup_free_ char *ca_pem = NULL, *leaf_pem = NULL, *code = NULL, *proof_pem = NULL;
	_cleanup_free_ char *wrong_cn_pem = NULL, *wrong_key_pem = NULL;
	_cleanup_json_ json_t *view = NULL, *group = NULL;
	struct dps_attest_result a = {0};
	struct err e = {0};
	struct pki p;
	STACK_OF(X509) * sk;
	X509 *proof, *wrong_cn, *wrong_key;

	pki_make(&p);
	ca_pem = pem_of(p.ca);
	leaf_pem = pem_of(p.leaf);
	assert_int_equal(dps_ca_add(f->store, "root", leaf_pem, false, NULL, &e), -EINVAL);
	assert_string_equal(e.msg, "the certificate is not a CA certificate (basicConstraints "
				   "CA:TRUE is missing)");
	err_clear(&e);
	assert_int_equal(dps_ca_add(f->store, "root", ca_pem, false, &view, &e), 0);
	assert_true(json_is_false(json_object_get(view, "isVerified")));
	assert_int_equal(dps_ca_add(f->store, "root", ca_pem, false, NULL, &e), -EEXIST);

	group = json_pack("{s:{s:s, s:{s:{s:s}}}}", "attestation", "type", "x509", "x509",
			  "caReferences", "primary", "root");
	assert_int_equal(dps_enrollment_put(f->store, f->settings, DPS_GROUP, "ca-group", group,
					    NULL, NULL, NULL, &e),
			 0);
	/* Not verified yet: not trusted. */
	sk = chain_of(p.leaf, NULL);
	assert_int_equal(attest(f, "x509-dev", NULL, sk, NULL, false, 0, &a, &e), -EACCES);

	err_clear(&e);
	assert_int_equal(dps_ca_verify(f->store, "root", leaf_pem, &e), -EINVAL);
	assert_string_equal(e.msg, "No verification code was issued for \"root\": run ca "
				   "verification-code first.");
	assert_int_equal(dps_ca_verification_code(f->store, "root", &code, &e), 0);
	assert_int_equal(strlen(code), 48);
	proof = new_cert(code, p.dev_key, p.ca, p.ca_key, false, -60, 3600);
	wrong_cn = new_cert("not-the-code", p.dev_key, p.ca, p.ca_key, false, -60, 3600);
	wrong_key = new_cert(code, p.dev_key, p.ca, p.other_key, false, -60, 3600);
	proof_pem = pem_of(proof);
	wrong_cn_pem = pem_of(wrong_cn);
	wrong_key_pem = pem_of(wrong_key);
	err_clear(&e);
	assert_int_equal(dps_ca_verify(f->store, "root", wrong_key_pem, &e), -EKEYREJECTED);
	assert_string_equal(e.msg, "the verification certificate is not signed by the CA's key");
	err_clear(&e);
	assert_int_equal(dps_ca_verify(f->store, "root", wrong_cn_pem, &e), -EKEYREJECTED);
	assert_true(strstr(e.msg, "must be the verification code") != NULL);
	assert_int_equal(dps_ca_verify(f->store, "root", proof_pem, &e), 0);

	assert_int_equal(attest(f, "x509-dev", NULL, sk, NULL, false, 0, &a, &e), 0);
	assert_string_equal(a.group_id, "ca-group");
	dps_attest_result_clear(&a);
	sk_X509_free(sk);
	X509_free(proof);
	X509_free(wrong_cn);
	X509_free(wrong_key);
	pki_free(&p);
}

/* --- attestation: TPM ------------------------------------------------------------ */

static void test_attest_tpm(void **state)
{
	struct fixture *f = *state;
	_cleanup_json_ json_t *tpm =
	    json_pack("{s:s, s:s}", "endorsementKey", EK, "storageRootKey", SRK);
	_cleanup_json_ json_t *wrong =
	    json_pack("{s:s, s:s}", "endorsementKey", SRK, "storageRootKey", SRK);
	_cleanup_json_ json_t *bad =
	    json_pack("{s:s, s:s}", "endorsementKey", "AAEC", "storageRootKey", SRK);
	_cleanup_json_ json_t *bad_srk =
	    json_pack("{s:s, s:s}", "endorsementKey", EK, "storageRootKey", "AA==");
	_cleanup_json_ json_t *reg = NULL, *view = NULL;
	_cleanup_free_ char *node = NULL, *aziot = NULL, *etag = NULL;
	_cleanup_buf_ struct buf blob = {0};
	struct dps_attest_result a = {0};
	struct tpm_blob parts;
	struct err e = {0};
	const char *k1, *srk;
	uint64_t now = (uint64_t)time(NULL);

	put_enrollment(f, DPS_INDIVIDUAL, "tpm-dev",
		       "{\"attestation\":{\"type\":\"tpm\",\"tpm\":{\"endorsementKey\":\"" EK_TEXT
		       "\"}}}");

	/* Without a challenge allowed (the status GET): just 401. */
	assert_int_equal(attest(f, "tpm-dev", NULL, NULL, tpm, false, 0, &a, &e), -EACCES);
	assert_int_equal(attest(f, "tpm-dev", NULL, NULL, tpm, true, 0, &a, &e),
			 DPS_ATTEST_CHALLENGE);
	/* The 401 body: exactly message, authenticationKey, keyName. */
	assert_string_equal(json_string_value(json_object_get(a.challenge, "message")),
			    "Authorization required, resend request using supplied key");
	assert_string_equal(json_string_value(json_object_get(a.challenge, "keyName")),
			    "registration");
	assert_int_equal(json_object_size(a.challenge), 3);
	buf_init(&blob, TPM_BLOB_MAX);
	{
		const char *b64 =
		    json_string_value(json_object_get(a.challenge, "authenticationKey"));

		assert_non_null(b64);
		assert_int_equal(base64_decode(&blob, b64, strlen(b64), B64_STANDARD, NULL), 0);
		assert_int_equal(tpm_blob_parse(blob.data, blob.len, &parts, &e), 0);
		/* K1 is 32 bytes: the ID key's sensitive area has the DPS layout. */
		assert_int_equal(parts.duplicate.size, 142);
	}
	dps_attest_result_clear(&a);

	/* K1 and the SRK are in the record, which the service API does not
	 * report (the device has not registered). */
	assert_int_equal(dps_registration_load(f->store, "tpm-dev", &reg, &etag, &e), 0);
	k1 = json_string_value(
	    json_object_get(json_object_get(dps_registration_private(reg), "challenge"), "key"));
	srk = json_string_value(
	    json_object_get(json_object_get(dps_registration_private(reg), "challenge"), "srk"));
	assert_non_null(k1);
	assert_string_equal(srk, SRK);
	assert_null(dps_registration_service_view(reg, etag));
	assert_int_equal(dps_registration_get(f->store, "tpm-dev", &view, &e), -ENOENT);

	/* Node's second PUT: tpm again, sr encodeURIComponent'd. */
	node = token("0ne00000A0A/registrations/tpm-dev", k1, now + 3600, "registration",
		     SAS_SR_URL_ENCODE);
	assert_int_equal(attest(f, "tpm-dev", node, NULL, tpm, true, 0, &a, &e), 0);
	assert_int_equal(a.type, DPS_ATTEST_TPM);
	assert_string_equal(a.srk, SRK);
	dps_attest_result_clear(&a);
	/* aziot's: no tpm object, lowercased audience. */
	aziot = token("0ne00000a0a/registrations/tpm-dev", k1, now + 3600, "registration", 0);
	assert_int_equal(attest(f, "tpm-dev", aziot, NULL, NULL, true, 0, &a, &e), 0);
	dps_attest_result_clear(&a);
	/* A signed PUT carrying another EK is refused. */
	assert_int_equal(attest(f, "tpm-dev", node, NULL, wrong, true, 0, &a, &e), -EACCES);

	/* Another TPM's EK: 401, no challenge; malformed keys: 400. */
	assert_int_equal(attest(f, "tpm-dev", NULL, NULL, wrong, true, 0, &a, &e), -EACCES);
	assert_string_equal(e.msg, "Unauthorized");
	assert_null(a.challenge);
	assert_int_equal(attest(f, "tpm-dev", NULL, NULL, bad, true, 0, &a, &e), -EBADMSG);
	assert_string_equal(e.msg, "Endorsement key is invalid, or does not match the Enrollment.");
	assert_int_equal(attest(f, "tpm-dev", NULL, NULL, bad_srk, true, 0, &a, &e), -EBADMSG);
	assert_string_equal(e.msg, "Storage root key is invalid.");
	/* No enrollment: the same 401 as a wrong EK. */
	assert_int_equal(attest(f, "tpm-other", NULL, NULL, tpm, true, 0, &a, &e), -EACCES);
	assert_string_equal(e.msg, "Unauthorized");
	/* The old K1 stops working once a new challenge replaced it. */
	assert_int_equal(attest(f, "tpm-dev", NULL, NULL, tpm, true, 0, &a, &e),
			 DPS_ATTEST_CHALLENGE);
	dps_attest_result_clear(&a);
	assert_int_equal(attest(f, "tpm-dev", node, NULL, tpm, true, 0, &a, &e), -EACCES);
}

/* --- assignment without a hub --------------------------------------------------- */

static void put_record(struct fixture *f, const char *id, const char *operation_id,
		       json_int_t started)
{
	_cleanup_json_ json_t *doc =
	    json_pack("{s:s, s:s, s:{s:s, s:s, s:I}}", "registrationId", id, "status", "assigning",
		      DPS_REG_PRIVATE, "operationId", operation_id, "attestation", "symmetricKey",
		      "started", started);
	struct store_write w = {.coll = STORE_REGISTRATIONS, .doc = doc};
	struct err e = {0};

	w.key.part[0] = id;
	assert_int_equal(store_put(f->store, &w, NULL, &e), 0);
}

static json_t *record(struct fixture *f, const char *id)
{
	json_t *doc = NULL;
	struct err e = {0};

	assert_int_equal(dps_registration_load(f->store, id, &doc, NULL, &e), 0);
	return doc;
}

static void test_assign_outcomes(void **state)
{
	struct fixture *f = *state;
	_cleanup_json_ json_t *r1 = NULL, *r2 = NULL, *r3 = NULL, *r4 = NULL, *dev = NULL;
	_cleanup_json_ json_t *a1 = NULL, *a2 = NULL;
	_cleanup_free_ char *t1 = NULL, *t2 = NULL, *etag = NULL;
	struct err e = {0};
	size_t hubs = f->settings->n_hubs;

	put_enrollment(f, DPS_INDIVIDUAL, "a1", "{\"iotHubs\":[\"hub3.example.test\"]," SYM "}");
	put_enrollment(f, DPS_INDIVIDUAL, "a2", "{\"provisioningStatus\":\"disabled\"," SYM "}");
	put_enrollment(f, DPS_INDIVIDUAL, "a3", "{" SYM "}");

	/* No linked hub left: failed, 400208. */
	f->settings->n_hubs = 0;
	put_record(f, "a1", "op-1", time(NULL));
	assert_int_equal(dps_assign_run(f->store, f->settings, NULL, "a1", "op-1", &e), 0);
	f->settings->n_hubs = hubs;
	r1 = record(f, "a1");
	dev = dps_registration_device_view(r1, "e1");
	a1 = json_pack("[O, O, O, b]", json_object_get(dev, "status"),
		       json_object_get(dev, "errorCode"), json_object_get(dev, "errorMessage"),
		       json_object_get(dev, DPS_REG_PRIVATE) != NULL);
	t1 = json_dump_compact(a1);
	assert_string_equal(t1, "[\"failed\",400208,\"No linked IoT hub is available for this "
				"enrollment.\",false]");
	assert_non_null(json_object_get(r1, "createdDateTimeUtc"));

	/* Disabled since the device registered: disabled. */
	put_record(f, "a2", "op-2", time(NULL));
	assert_int_equal(dps_assign_run(f->store, f->settings, NULL, "a2", "op-2", &e), 0);
	r2 = record(f, "a2");
	assert_string_equal(json_string_value(json_object_get(r2, "status")), "disabled");

	/* Another operation owns the record: nothing is written. */
	put_record(f, "a3", "op-3", time(NULL));
	assert_int_equal(dps_assign_run(f->store, f->settings, NULL, "a3", "op-old", &e), 0);
	r3 = record(f, "a3");
	assert_string_equal(json_string_value(json_object_get(r3, "status")), "assigning");

	/* The enrollment went away: failed, 404201. */
	assert_int_equal(dps_enrollment_delete(f->store, DPS_INDIVIDUAL, "a3", NULL, &e), 0);
	put_record(f, "a3", "op-3", time(NULL));
	assert_int_equal(dps_assign_run(f->store, f->settings, NULL, "a3", "op-3", &e), 0);
	json_decref(r3);
	r3 = record(f, "a3");
	a2 = json_pack("[O, O]", json_object_get(r3, "status"), json_object_get(r3, "errorCode"));
	t2 = json_dump_compact(a2);
	assert_string_equal(t2, "[\"failed\",404201]");

	/* A quiet job is restarted once. */
	put_record(f, "a4", "op-4", time(NULL) - 100);
	assert_int_equal(dps_registration_load(f->store, "a4", &r4, &etag, &e), 0);
	assert_int_equal(dps_assign_restart(f->store, f->settings, r4, etag, &e), 1);
	json_decref(r4);
	free(etag);
	assert_int_equal(dps_registration_load(f->store, "a4", &r4, &etag, &e), 0);
	assert_int_equal(dps_assign_restart(f->store, f->settings, r4, etag, &e), 0);
	json_decref(dev);
	dev = NULL;
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_config_ok),
	    T(test_config_errors),
	    T(test_connection_string),
	    T(test_neg_ln),
	    T(test_hashed_even),
	    T(test_hashed_weights),
	    T(test_hashed_stable),
	    T(test_candidates_and_static),
	    T(test_enrollment_validation),
	    T(test_enrollment_normalize),
	    T(test_enrollment_etags),
	    T(test_enrollment_paging),
	    T(test_enrollment_bulk),
	    T(test_attest_symmetric_individual),
	    T(test_attest_symmetric_group),
	    T(test_attest_x509),
	    T(test_ca_possession),
	    T(test_attest_tpm),
	    T(test_assign_outcomes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
