/* SPDX-License-Identifier: MIT */
/* Module identities on both sides: who the hub lets manage a device's
 * modules (hub_auth_modules: services by policy, IoT Edge devices by
 * their own credential), and what identityd keeps and answers for a
 * module (aziot's backup path and content, the Identity JSON). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cloud/hub/hub.h"
#include "common/json.h"
#include "common/macro.h"
#include "device/identityd/identityd_private.h"

#define HUB "myhub.azure-devices.net"
#define KEY "Jsm0lyGpjaVYVP2g3FnmnmG9dI/9qU24wNoykUmermc="
#define KEY2 "c2VjcmV0LWtleS1ub3QtdGhlLXJpZ2h0LW9uZS4uLg=="
#define SE 1700000000u
/* hub-protocol.md §3 test vectors, all signed with KEY. */
#define DEVICE_TOKEN                                                                               \
	"SharedAccessSignature sr=myhub.azure-devices.net%2Fdevices%2Fdev1"                        \
	"&sig=K2ol0WGo3XQ9OjiirFsVwajTbNvxXcv%2FlHAzsYx2Bgg%3D&se=1700000000"
#define MODULE_TOKEN                                                                               \
	"SharedAccessSignature sr=myhub.azure-devices.net%2Fdevices%2Fdev1%2Fmodules%2Fmod1"       \
	"&sig=CfxFMRleXftOdIg3ebuxxmDuur8C2hyS2I4V%2FadWmF4%3D&se=1700000000"
#define SERVICE_TOKEN                                                                              \
	"SharedAccessSignature sr=myhub.azure-devices.net"                                         \
	"&sig=S37KlR5Nw%2FVRlEafNflN0IbdI7s%2BdNUVoiCO60IYlZs%3D&skn=iothubowner&se=1700000000"

/* --- the hub ------------------------------------------------------------------ */

static struct hub_policy policies[] = {
    {(char *)"iothubowner", (char *)KEY, NULL,
     HUB_RIGHT_REGISTRY_READ | HUB_RIGHT_REGISTRY_WRITE | HUB_RIGHT_SERVICE_CONNECT},
};
static struct hub_settings settings = {(char *)HUB, policies, 1, NULL};

static json_t *device(bool edge, const char *status, const char *key)
{
	return json_pack("{s:s,s:s,s:{s:s,s:{s:s,s:n}},s:{s:b}}", "deviceId", "dev1", "status",
			 status, "authentication", "type", "sas", "symmetricKey", "primaryKey", key,
			 "secondaryKey", "capabilities", "iotEdge", edge);
}

/* hub_auth_modules for dev1 at SE: 0 and who spoke, or the sentence. */
static void expect(const char *token, const json_t *dev, unsigned need, int by_device,
		   const char *message)
{
	struct hub_error he = {0};
	bool by = !by_device;
	int r = hub_auth_modules(&settings, token, need, "dev1", dev, NULL, NULL, SE, &by, &he);

	if (!message) {
		assert_int_equal(r, 0);
		assert_int_equal(by, by_device);
		return;
	}
	assert_int_equal(r, -EACCES);
	assert_false(by);
	assert_int_equal(he.status, 401);
	assert_string_equal(he.code, "IotHubUnauthorizedAccess");
	assert_string_equal(he.message, message);
}

static void test_hub_auth_modules(void **state)
{
	_cleanup_json_ json_t *edge = device(true, "enabled", KEY);
	_cleanup_json_ json_t *leaf = device(false, "enabled", KEY);
	_cleanup_json_ json_t *disabled = device(true, "disabled", KEY);
	_cleanup_json_ json_t *other_key = device(true, "enabled", KEY2);

	(void)state;
	/* A service, whatever the device. */
	expect(SERVICE_TOKEN, NULL, HUB_RIGHT_REGISTRY_WRITE, 0, NULL);
	expect(SERVICE_TOKEN, leaf, HUB_RIGHT_REGISTRY_READ, 0, NULL);
	/* The IoT Edge device itself. */
	expect(DEVICE_TOKEN, edge, HUB_RIGHT_REGISTRY_WRITE, 1, NULL);
	expect(DEVICE_TOKEN, leaf, HUB_RIGHT_REGISTRY_WRITE, 1,
	       "device \"dev1\" is not an IoT Edge device: only IoT Edge devices manage their "
	       "own modules");
	expect(DEVICE_TOKEN, disabled, HUB_RIGHT_REGISTRY_READ, 1, "the device is disabled");
	expect(DEVICE_TOKEN, other_key, HUB_RIGHT_REGISTRY_READ, 1,
	       "the SharedAccessSignature's signature does not match");
	expect(DEVICE_TOKEN, NULL, HUB_RIGHT_REGISTRY_READ, 1, "no such device");
	/* A token for one of its modules, even signed with the device's key,
	 * does not speak for the device. */
	expect(MODULE_TOKEN, edge, HUB_RIGHT_REGISTRY_READ, 1,
	       "the SharedAccessSignature's resource (sr) is not this hub or this identity");
	/* What is not a device's SAS is a service's, refused as such. */
	expect(NULL, edge, HUB_RIGHT_REGISTRY_READ, 0, "no Authorization header");
	expect("Bearer x", edge, HUB_RIGHT_REGISTRY_READ, 0,
	       "the Authorization header is not a valid SharedAccessSignature");
	expect(DEVICE_TOKEN "&skn=primary", edge, HUB_RIGHT_REGISTRY_READ, 0,
	       "no shared access policy is called \"primary\"");
	/* The device's SAS has expired 5 minutes after se. */
	{
		struct hub_error he = {0};
		bool by = false;

		assert_int_equal(hub_auth_modules(&settings, DEVICE_TOKEN, HUB_RIGHT_REGISTRY_READ,
						  "dev1", edge, NULL, NULL, SE + 301, &by, &he),
				 -EACCES);
		assert_string_equal(he.message,
				    "the SharedAccessSignature expired (se=1700000000)");
	}
}

/* --- identityd ------------------------------------------------------------------ */

#define HUB_HASH "7d4a2c5ea3b698a673926d4ebb8c0d2034c367424a491480224fbd729008150e"
#define DEV1_HASH "cf4b9c1f5eb31deb9ea41f56faa757b68be9cab8b73f463229df17036bdfa13e"

static void test_backup_path(void **state)
{
	char *p = NULL;

	(void)state;
	assert_int_equal(
	    identityd_module_backup_path("/var/lib/aziot/identityd", HUB, "dev1", NULL, &p), 0);
	assert_string_equal(p, "/var/lib/aziot/identityd/modules/" HUB_HASH "-" DEV1_HASH);
	free(p);
	/* aziot keeps the ASCII letters and digits of the module id. */
	assert_int_equal(identityd_module_backup_path("/h", HUB, "dev1", "$edgeHub", &p), 0);
	assert_string_equal(
	    p, "/h/modules/" HUB_HASH "-" DEV1_HASH
	       "/edgeHub-07251bd86d05cec4586f9b02f78f72c5559c80babb2dda5158102342edcc717a");
	free(p);
	assert_int_equal(identityd_module_backup_path("/h", HUB, "dev1", "edgeAgent", &p), 0);
	assert_string_equal(
	    p, "/h/modules/" HUB_HASH "-" DEV1_HASH
	       "/edgeAgent-018ba92574387c9eed40392e1801a45393e392feb046f51b5bb0c365db2ca541");
	free(p);
}

static char *dump(json_t *j)
{
	char *text;

	assert_non_null(j);
	text = json_dump_compact(j);
	json_decref(j);
	assert_non_null(text);
	return text;
}

static void test_backup_json(void **state)
{
	_cleanup_json_ json_t *hub_module = NULL, *managed = NULL;
	_cleanup_free_ char *a = NULL, *b = NULL;
	static const char hub_answer[] =
	    "{\"moduleId\":\"m1\",\"managedBy\":null,\"deviceId\":\"dev1\",\"generationId\":"
	    "\"638000000000000001\",\"etag\":\"e\",\"connectionState\":\"Disconnected\","
	    "\"authentication\":{\"symmetricKey\":{\"primaryKey\":\"" KEY
	    "\",\"secondaryKey\":\"" KEY2 "\"},\"type\":\"sas\"}}";

	(void)state;
	assert_int_equal(json_parse(hub_answer, strlen(hub_answer), 0, &hub_module, NULL), 0);
	/* No keys, no null managedBy, aziot's field order. */
	a = dump(identityd_module_backup_json(hub_module));
	assert_string_equal(a, "{\"moduleId\":\"m1\",\"deviceId\":\"dev1\",\"generationId\":"
			       "\"638000000000000001\"}");
	managed = json_pack("{s:s,s:s,s:s}", "deviceId", "dev1", "moduleId", "m2", "managedBy",
			    "iotedge");
	b = dump(identityd_module_backup_json(managed));
	assert_string_equal(
	    b, "{\"moduleId\":\"m2\",\"managedBy\":\"iotedge\",\"deviceId\":\"dev1\"}");
}

static void test_identity_json(void **state)
{
	const struct identityd_hub_device dev = {HUB, "gateway.local", "dev1"};
	_cleanup_json_ json_t *m = json_pack("{s:s,s:s,s:s}", "moduleId", "m1", "deviceId", "dev1",
					     "generationId", "638000000000000001");
	_cleanup_json_ json_t *no_gen =
	    json_pack("{s:s,s:s}", "moduleId", "m2", "deviceId", "dev1");
	_cleanup_free_ char *a = NULL, *b = NULL, *c = NULL;

	(void)state;
	a = dump(identityd_module_identity(&dev, m, "sr=abc&sig=def"));
	assert_string_equal(a,
			    "{\"type\":\"aziot\",\"spec\":{\"hubName\":\"" HUB "\",\"gatewayHost\":"
			    "\"gateway.local\",\"deviceId\":\"dev1\",\"moduleId\":\"m1\",\"genId\":"
			    "\"638000000000000001\",\"auth\":{\"type\":\"sas\",\"keyHandle\":\"sr="
			    "abc&sig=def\"}}}");
	/* List entries carry no auth; an unknown genId is left out. */
	b = dump(identityd_module_identity(&dev, m, NULL));
	assert_null(strstr(b, "auth"));
	c = dump(identityd_module_identity(&dev, no_gen, NULL));
	assert_string_equal(c, "{\"type\":\"aziot\",\"spec\":{\"hubName\":\"" HUB
			       "\",\"gatewayHost\":\"gateway.local\",\"deviceId\":\"dev1\","
			       "\"moduleId\":\"m2\"}}");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_hub_auth_modules),
	    cmocka_unit_test(test_backup_path),
	    cmocka_unit_test(test_backup_json),
	    cmocka_unit_test(test_identity_json),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
