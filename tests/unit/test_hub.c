/* SPDX-License-Identifier: MIT */
/* The hub: its config keys, device and module JSON rules, twin merge rules,
 * authentication decisions, and the registry operations on a real SQLite
 * store (src/cloud/hub/). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "cloud/hub/hub.h"
#include "cloud/store/store.h"
#include "common/json.h"
#include "common/macro.h"

#define HUB "myhub.azure-devices.net"
#define KEY "Jsm0lyGpjaVYVP2g3FnmnmG9dI/9qU24wNoykUmermc="
#define KEY2 "c2VjcmV0LWtleS1ub3QtdGhlLXJpZ2h0LW9uZS4uLg=="
#define SE 1700000000u
/* hub-protocol.md §3 test vectors. */
#define DEVICE_TOKEN                                                                               \
	"SharedAccessSignature sr=myhub.azure-devices.net%2Fdevices%2Fdev1"                        \
	"&sig=K2ol0WGo3XQ9OjiirFsVwajTbNvxXcv%2FlHAzsYx2Bgg%3D&se=1700000000"
#define MODULE_TOKEN                                                                               \
	"SharedAccessSignature sr=myhub.azure-devices.net%2Fdevices%2Fdev1%2Fmodules%2Fmod1"       \
	"&sig=CfxFMRleXftOdIg3ebuxxmDuur8C2hyS2I4V%2FadWmF4%3D&se=1700000000"
#define SERVICE_BASE                                                                               \
	"SharedAccessSignature sr=myhub.azure-devices.net"                                         \
	"&sig=S37KlR5Nw%2FVRlEafNflN0IbdI7s%2BdNUVoiCO60IYlZs%3D"
#define SERVICE_TOKEN SERVICE_BASE "&skn=iothubowner&se=1700000000"

static json_t *parse(const char *text)
{
	json_t *j = NULL;

	assert_int_equal(json_parse(text, strlen(text), 0, &j, NULL), 0);
	return j;
}

static const char *str(const json_t *doc, const char *path)
{
	const char *s = NULL;

	if (json_get_string(doc, path, &s, NULL) < 0)
		return NULL;
	return s;
}

static json_int_t num(const json_t *doc, const char *path)
{
	int64_t i = -1;

	assert_int_equal(json_get_int(doc, path, INT64_MIN, INT64_MAX, &i, NULL), 0);
	return i;
}

/* --- config ---------------------------------------------------------------- */

static char cfg_path[64];

static int cfg_setup(void **state)
{
	int fd;

	(void)state;
	snprintf(cfg_path, sizeof(cfg_path), "/tmp/edgeid-hub-config-XXXXXX");
	fd = mkstemp(cfg_path);
	if (fd < 0)
		return -1;
	close(fd);
	return 0;
}

static int cfg_teardown(void **state)
{
	(void)state;
	unlink(cfg_path);
	return 0;
}

static int load(const char *text, struct cloud_setup **ret, struct err *e)
{
	static const struct cloud_service *const services[] = {&cloud_service_hub};
	FILE *f = fopen(cfg_path, "we");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	return cloud_setup_load(cfg_path, services, 1, ret, e);
}

#define HUB_HEAD "[tls]\ncert = \"/c.pem\"\nkey = \"/k.pem\"\n[hub]\nlisten = [\"127.0.0.3:443\"]\n"

static void expect_config_error(const char *text, const char *suffix)
{
	struct cloud_setup *s = NULL;
	struct err e = {0};
	char want[1200];

	assert_int_equal(load(text, &s, &e), -EINVAL);
	assert_null(s);
	snprintf(want, sizeof(want), "%s:%s", cfg_path, suffix);
	assert_string_equal(e.msg, want);
}

static void test_config(void **state)
{
	_cleanup_(cloud_setup_freep) struct cloud_setup *s = NULL;
	const struct hub_settings *hs;
	struct err e = {0};

	(void)state;
	assert_int_equal(load(HUB_HEAD "host_name = \"" HUB "\"\n"
				       "[[hub.shared_access_policy]]\nname = \"iothubowner\"\n"
				       "primary_key = \"" KEY "\"\nsecondary_key = \"" KEY2 "\"\n"
				       "rights = \"RegistryWrite ServiceConnect DeviceConnect\"\n"
				       "[[hub.shared_access_policy]]\nname = \"reader\"\n"
				       "primary_key = \"" KEY2 "\"\nrights = \"RegistryRead\"\n",
			      &s, &e),
			 0);
	hs = s->services[0].settings;
	assert_string_equal(hs->host_name, HUB);
	assert_int_equal(hs->n_policies, 2);
	assert_string_equal(hs->policies[0].name, "iothubowner");
	assert_string_equal(hs->policies[0].primary_key, KEY);
	assert_string_equal(hs->policies[0].secondary_key, KEY2);
	assert_int_equal(hs->policies[0].rights,
			 HUB_RIGHT_REGISTRY_READ | HUB_RIGHT_REGISTRY_WRITE |
			     HUB_RIGHT_SERVICE_CONNECT | HUB_RIGHT_DEVICE_CONNECT);
	assert_null(hs->policies[1].secondary_key);
	assert_int_equal(hs->policies[1].rights, HUB_RIGHT_REGISTRY_READ);
	assert_int_equal(sk_X509_num(hs->ca), 0);
}

static void test_config_errors(void **state)
{
	(void)state;
	expect_config_error(HUB_HEAD "[[hub.shared_access_policy]]\nname = \"a\"\n"
				     "primary_key = \"c2hvcnQ=\"\nrights = \"RegistryRead\"\n",
			    "8:15: hub.shared_access_policy[0].primary_key: expected a "
			    "base64-encoded key of 16 to 64 bytes, got 5 bytes");
	expect_config_error(HUB_HEAD "[[hub.shared_access_policy]]\nname = \"a\"\n"
				     "primary_key = \"not base64!\"\nrights = \"RegistryRead\"\n",
			    "8:15: hub.shared_access_policy[0].primary_key: expected a "
			    "base64-encoded key, got invalid base64 (at character 4)");
	expect_config_error(HUB_HEAD "[[hub.shared_access_policy]]\nname = \"a\"\n"
				     "primary_key = \"" KEY "\"\nrights = \"RegistryRead Admin\"\n",
			    "9:10: hub.shared_access_policy[0].rights: expected rights among "
			    "RegistryRead, RegistryWrite, ServiceConnect, DeviceConnect, got "
			    "\"RegistryRead Admin\"");
	expect_config_error(HUB_HEAD "[[hub.shared_access_policy]]\nname = \"a\"\n"
				     "primary_key = \"" KEY "\"\n",
			    "6:1: hub.shared_access_policy[0].rights: missing required key");
	expect_config_error(HUB_HEAD "[[hub.shared_access_policy]]\nname = \"a b\"\n"
				     "primary_key = \"" KEY "\"\nrights = \"DeviceConnect\"\n",
			    "7:8: hub.shared_access_policy[0].name: expected letters, digits, '-', "
			    "'_' or '.', got \"a b\"");
	expect_config_error(
	    HUB_HEAD "[[hub.shared_access_policy]]\nname = \"a\"\n"
		     "primary_key = \"" KEY "\"\nrights = \"DeviceConnect\"\n"
		     "[[hub.shared_access_policy]]\nname = \"a\"\n"
		     "primary_key = \"" KEY "\"\nrights = \"DeviceConnect\"\n",
	    "11:8: hub.shared_access_policy[1].name: policy \"a\" is defined twice");
	expect_config_error(HUB_HEAD "[[hub.shared_access_policy]]\nname = \"a\"\n"
				     "primary_key = \"" KEY
				     "\"\nrights = \"DeviceConnect\"\nkey = 1\n",
			    "10:1: hub.shared_access_policy[0].key: unknown key");
	expect_config_error(HUB_HEAD "shared_access_policy = 1\n",
			    "6:24: hub.shared_access_policy: expected an array of tables, got 1");
	expect_config_error(HUB_HEAD "ca = [\"/nonexistent/ca.pem\"]\n",
			    "6:7: hub.ca[0]: /nonexistent/ca.pem: cannot read: No such file or "
			    "directory");
	expect_config_error(HUB_HEAD "cas = 1\n", "6:1: hub.cas: unknown key");
}

static void test_rights(void **state)
{
	unsigned bits = 0;
	size_t bad = 99;

	(void)state;
	assert_int_equal(hub_rights_parse("ServiceConnect,DeviceConnect", &bits, &bad), 0);
	assert_int_equal(bits, HUB_RIGHT_SERVICE_CONNECT | HUB_RIGHT_DEVICE_CONNECT);
	assert_int_equal(hub_rights_parse("  RegistryWrite  ", &bits, &bad), 0);
	assert_int_equal(bits, HUB_RIGHT_REGISTRY_READ | HUB_RIGHT_REGISTRY_WRITE);
	assert_int_equal(hub_rights_parse("RegistryRead registrywrite", &bits, &bad), -EINVAL);
	assert_int_equal(bad, 13);
	assert_int_equal(hub_rights_parse(" , ", &bits, &bad), -EINVAL);
	assert_int_equal(bad, 0);
}

/* --- devices and modules ---------------------------------------------------- */

static void test_ids(void **state)
{
	char long_id[HUB_ID_MAX + 2];

	(void)state;
	assert_true(hub_id_valid("dev-1.a_b*?!(),:=@$'%"));
	assert_false(hub_id_valid(""));
	assert_false(hub_id_valid("a b"));
	assert_false(hub_id_valid("a/b"));
	assert_false(hub_id_valid("caf\xc3\xa9"));
	memset(long_id, 'a', sizeof(long_id));
	long_id[HUB_ID_MAX] = '\0';
	assert_true(hub_id_valid(long_id));
	long_id[HUB_ID_MAX] = 'a';
	long_id[HUB_ID_MAX + 1] = '\0';
	assert_false(hub_id_valid(long_id));
}

static void expect_build_error(const char *body, const char *message)
{
	_cleanup_json_ json_t *b = parse(body);
	json_t *doc = NULL;
	struct hub_error he = {0};

	assert_int_equal(hub_device_build(b, "dev1", NULL, 0, &doc, &he), -EINVAL);
	assert_null(doc);
	assert_int_equal(he.status, 400);
	assert_string_equal(he.code, "ArgumentInvalid");
	assert_string_equal(he.message, message);
}

static void test_device_build(void **state)
{
	_cleanup_json_ json_t *b = NULL, *doc = NULL, *doc2 = NULL, *view = NULL;
	struct hub_error he = {0};
	const char *k1, *k2;

	(void)state;
	/* What Node sends for {deviceId} alone: empty keys, generated here. */
	b = parse("{\"deviceId\":\"dev1\",\"authentication\":{\"type\":\"sas\","
		  "\"symmetricKey\":{\"primaryKey\":\"\",\"secondaryKey\":\"\"}}}");
	assert_int_equal(hub_device_build(b, "dev1", NULL, 1700000000123, &doc, &he), 0);
	assert_string_equal(str(doc, "deviceId"), "dev1");
	assert_string_equal(str(doc, "status"), "enabled");
	assert_string_equal(str(doc, "connectionState"), "Disconnected");
	assert_string_equal(str(doc, "statusUpdatedTime"), "0001-01-01T00:00:00Z");
	assert_string_equal(str(doc, "authentication.type"), "sas");
	k1 = str(doc, "authentication.symmetricKey.primaryKey");
	k2 = str(doc, "authentication.symmetricKey.secondaryKey");
	assert_int_equal(strlen(k1), 44);
	assert_int_equal(strlen(k2), 44);
	assert_string_not_equal(k1, k2);
	assert_true(json_is_null(json_object_get(
	    json_object_get(json_object_get(doc, "authentication"), "x509Thumbprint"),
	    "primaryThumbprint")));
	assert_int_equal(strlen(str(doc, "generationId")), 18);
	assert_true(
	    json_is_false(json_object_get(json_object_get(doc, "capabilities"), "iotEdge")));
	assert_null(json_object_get(doc, "etag"));

	/* An update keeps keys and generationId, and a status change is dated. */
	json_decref(b);
	b = parse("{\"status\":\"Disabled\"}");
	assert_int_equal(hub_device_build(b, "dev1", doc, 1700000000123, &doc2, &he), 0);
	assert_string_equal(str(doc2, "status"), "disabled");
	assert_string_equal(str(doc2, "statusUpdatedTime"), "2023-11-14T22:13:20.1230000Z");
	assert_string_equal(str(doc2, "generationId"), str(doc, "generationId"));
	assert_string_equal(str(doc2, "authentication.symmetricKey.primaryKey"), k1);
	assert_string_equal(str(doc2, "authentication.symmetricKey.secondaryKey"), k2);

	view = hub_identity_view(doc2, "ETAG");
	assert_string_equal(str(view, "etag"), "ETAG");
	{
		const char *keys[4];
		size_t i = 0;
		const char *key;
		json_t *v;

		json_object_foreach (view, key, v) {
			if (i < 4)
				keys[i] = key;
			i++;
		}
		assert_string_equal(keys[0], "deviceId");
		assert_string_equal(keys[1], "generationId");
		assert_string_equal(keys[2], "etag");
		assert_string_equal(keys[3], "connectionState");
	}
}

static void test_device_build_x509(void **state)
{
	_cleanup_json_ json_t *b = NULL, *doc = NULL, *b2 = NULL, *doc2 = NULL;
	struct hub_error he = {0};

	(void)state;
	/* No type with a thumbprint: selfSigned, as Node normalises. */
	b = parse("{\"authentication\":{\"x509Thumbprint\":{\"primaryThumbprint\":"
		  "\"0123456789abcdef0123456789abcdef01234567\",\"secondaryThumbprint\":null}},"
		  "\"capabilities\":{\"iotEdge\":true}}");
	assert_int_equal(hub_device_build(b, "edge1", NULL, 0, &doc, &he), 0);
	assert_string_equal(str(doc, "authentication.type"), "selfSigned");
	assert_string_equal(str(doc, "authentication.x509Thumbprint.primaryThumbprint"),
			    "0123456789ABCDEF0123456789ABCDEF01234567");
	assert_true(json_is_null(
	    json_object_get(json_object_get(json_object_get(doc, "authentication"), "symmetricKey"),
			    "primaryKey")));
	assert_true(strneq(str(doc, "deviceScope"), "ms-azure-iot-edge://edge1-", 26));
	assert_string_equal(str(doc, "deviceScope") + 26, str(doc, "generationId"));

	b2 = parse("{\"authentication\":{\"type\":\"certificateAuthority\"}}");
	assert_int_equal(hub_device_build(b2, "ca1", NULL, 0, &doc2, &he), 0);
	assert_string_equal(str(doc2, "authentication.type"), "certificateAuthority");
	assert_true(json_is_null(json_object_get(doc2, "deviceScope")));
}

static void test_device_build_errors(void **state)
{
	(void)state;
	expect_build_error("[]", "the body must be a JSON object, not an array");
	expect_build_error("{\"deviceId\":\"dev2\"}",
			   "deviceId: \"dev2\" in the body is not \"dev1\" of the request path");
	expect_build_error("{\"deviceId\":7}", "deviceId: expected a string, got a number");
	expect_build_error("{\"status\":\"paused\"}",
			   "status: expected \"enabled\" or \"disabled\", got \"paused\"");
	expect_build_error("{\"capabilities\":{\"iotEdge\":1}}",
			   "capabilities.iotEdge: expected a boolean, got a number");
	expect_build_error("{\"parentScopes\":[1]}",
			   "parentScopes[0]: expected a string, got a number");
	expect_build_error("{\"authentication\":{\"type\":\"sas\",\"symmetricKey\":{\"primaryKey\":"
			   "\"AAAA\"}}}",
			   "authentication.symmetricKey.primaryKey: expected a base64 key of 16 to "
			   "64 bytes");
	expect_build_error("{\"authentication\":{\"type\":\"selfSigned\"}}",
			   "authentication.x509Thumbprint.primaryThumbprint: a selfSigned identity "
			   "needs a primary thumbprint");
	expect_build_error("{\"authentication\":{\"type\":\"selfSigned\",\"x509Thumbprint\":{"
			   "\"primaryThumbprint\":\"0123456789abcdef0123456789abcdef0123456g\"}}}",
			   "authentication.x509Thumbprint.primaryThumbprint: expected a SHA-1 or "
			   "SHA-256 thumbprint (40 or 64 hex digits)");
	expect_build_error("{\"authentication\":{\"type\":\"token\"}}",
			   "authentication.type: expected one of \"sas\", \"selfSigned\", "
			   "\"certificateAuthority\", \"none\", got \"token\"");
	expect_build_error("{\"authentication\":[]}",
			   "authentication: expected an object, got an array");
}

static void test_module_build(void **state)
{
	_cleanup_json_ json_t *b = NULL, *doc = NULL, *b2 = NULL, *doc2 = NULL;
	struct hub_error he = {0};

	(void)state;
	/* aziot-identityd's create, then its update with derived keys (§7). */
	b = parse("{\"moduleId\":\"m1\",\"deviceId\":\"d1\"}");
	assert_int_equal(hub_module_build(b, "d1", "m1", NULL, 0, &doc, &he), 0);
	assert_string_equal(str(doc, "moduleId"), "m1");
	assert_string_equal(str(doc, "deviceId"), "d1");
	assert_true(json_is_null(json_object_get(doc, "managedBy")));
	b2 = parse("{\"moduleId\":\"m1\",\"deviceId\":\"d1\",\"authentication\":{\"symmetricKey\":{"
		   "\"primaryKey\":\"" KEY "\",\"secondaryKey\":\"" KEY2 "\"},\"type\":\"sas\"}}");
	assert_int_equal(hub_module_build(b2, "d1", "m1", doc, 0, &doc2, &he), 0);
	assert_string_equal(str(doc2, "generationId"), str(doc, "generationId"));
	assert_string_equal(str(doc2, "authentication.symmetricKey.primaryKey"), KEY);
	assert_string_equal(str(doc2, "authentication.symmetricKey.secondaryKey"), KEY2);

	json_decref(doc2);
	doc2 = NULL;
	assert_int_equal(hub_module_build(b2, "d1", "m2", NULL, 0, &doc2, &he), -EINVAL);
	assert_string_equal(he.message,
			    "moduleId: \"m1\" in the body is not \"m2\" of the request path");
}

/* --- twins ----------------------------------------------------------------- */

static int apply(json_t *twin, const char *body, bool replace, struct hub_error *he)
{
	_cleanup_json_ json_t *b = parse(body);

	return hub_twin_apply(twin, b, replace, 1700000000000, he);
}

static void test_twin_merge(void **state)
{
	_cleanup_json_ json_t *twin = hub_twin_new(1700000000000);
	_cleanup_free_ char *text = NULL;
	struct hub_error he = {0};

	(void)state;
	assert_int_equal(num(twin, "version"), 1);
	assert_int_equal(num(twin, "properties.desired.$version"), 1);
	assert_int_equal(num(twin, "properties.reported.$version"), 1);

	assert_int_equal(
	    apply(twin,
		  "{\"tags\":{\"site\":\"lab\",\"rack\":{\"row\":3,\"col\":1}},"
		  "\"properties\":{\"desired\":{\"rate\":5,\"cfg\":{\"a\":1,\"b\":[1,2]}}}}",
		  false, &he),
	    0);
	assert_int_equal(num(twin, "version"), 2);
	assert_int_equal(num(twin, "properties.desired.$version"), 2);
	assert_int_equal(num(twin, "properties.desired.$metadata.rate.$lastUpdatedVersion"), 2);
	assert_string_equal(str(twin, "properties.desired.$metadata.cfg.a.$lastUpdated"),
			    "2023-11-14T22:13:20.0000000Z");
	assert_int_equal(num(twin, "properties.desired.$metadata.$lastUpdatedVersion"), 2);

	/* Merge patch: null deletes (value and metadata), the rest stays. */
	assert_int_equal(apply(twin,
			       "{\"tags\":{\"rack\":{\"col\":null}},"
			       "\"properties\":{\"desired\":{\"cfg\":{\"a\":null,\"c\":\"x\"}}}}",
			       false, &he),
			 0);
	text = json_dumps(json_object_get(twin, "tags"), JSON_COMPACT);
	assert_string_equal(text, "{\"site\":\"lab\",\"rack\":{\"row\":3}}");
	free(TAKE_PTR(text));
	{
		_cleanup_json_ json_t *d =
		    json_copy(json_object_get(json_object_get(twin, "properties"), "desired"));

		json_object_del(d, "$metadata");
		json_object_del(d, "$version");
		text = json_dumps(d, JSON_COMPACT);
	}
	assert_string_equal(text, "{\"rate\":5,\"cfg\":{\"b\":[1,2],\"c\":\"x\"}}");
	assert_null(json_object_get(
	    json_object_get(
		json_object_get(json_object_get(json_object_get(twin, "properties"), "desired"),
				"$metadata"),
		"cfg"),
	    "a"));
	assert_int_equal(num(twin, "properties.desired.$version"), 3);
	assert_int_equal(num(twin, "version"), 3);

	/* Tags only: desired $version stays. */
	assert_int_equal(apply(twin, "{\"tags\":{\"x\":1}}", false, &he), 0);
	assert_int_equal(num(twin, "properties.desired.$version"), 3);
	assert_int_equal(num(twin, "version"), 4);

	/* What a client read back ($metadata, $version) is ignored. */
	assert_int_equal(apply(twin,
			       "{\"properties\":{\"desired\":{\"$version\":99,\"$metadata\":{},"
			       "\"rate\":6}}}",
			       false, &he),
			 0);
	assert_int_equal(num(twin, "properties.desired.rate"), 6);
	assert_int_equal(num(twin, "properties.desired.$version"), 4);
}

static void test_twin_replace(void **state)
{
	_cleanup_json_ json_t *twin = hub_twin_new(0);
	struct hub_error he = {0};

	(void)state;
	assert_int_equal(
	    apply(twin, "{\"tags\":{\"a\":1},\"properties\":{\"desired\":{\"x\":1}}}", false, &he),
	    0);
	assert_int_equal(
	    apply(twin, "{\"tags\":{\"b\":2},\"properties\":{\"desired\":{\"y\":2}}}", true, &he),
	    0);
	assert_null(json_object_get(json_object_get(twin, "tags"), "a"));
	assert_int_equal(num(twin, "tags.b"), 2);
	assert_int_equal(num(twin, "properties.desired.y"), 2);
	assert_int_equal(json_get_value(twin, "properties.desired.x", NULL, NULL), -ENOENT);
	assert_int_equal(num(twin, "properties.desired.$version"), 3);
	/* A replacement may not delete with null. */
	assert_int_equal(apply(twin, "{\"tags\":{\"b\":null}}", true, &he), -EINVAL);
	assert_string_equal(he.message,
			    "tags.b: null is only allowed in a patch, to delete a property");
}

static void expect_twin_error(const char *body, const char *message)
{
	_cleanup_json_ json_t *twin = hub_twin_new(0);
	_cleanup_free_ char *before = json_dumps(twin, JSON_COMPACT);
	_cleanup_free_ char *after = NULL;
	struct hub_error he = {0};

	assert_int_equal(apply(twin, body, false, &he), -EINVAL);
	assert_int_equal(he.status, 400);
	assert_string_equal(he.code, "ArgumentInvalid");
	assert_string_equal(he.message, message);
	/* A refused patch changes nothing. */
	after = json_dumps(twin, JSON_COMPACT);
	assert_string_equal(before, after);
}

/* {"tags": {"k": {"k": ... 1}}}: levels objects, the tags object included. */
static void nest(char *out, size_t size, int levels)
{
	size_t n = (size_t)snprintf(out, size, "{\"tags\":");

	for (int i = 0; i < levels; i++)
		n += (size_t)snprintf(out + n, size - n, "{\"k\":");
	n += (size_t)snprintf(out + n, size - n, "1");
	for (int i = 0; i <= levels; i++)
		n += (size_t)snprintf(out + n, size - n, "}");
}

static void test_twin_errors(void **state)
{
	char deep[512], big[HUB_TWIN_TAGS_MAX + 64];
	size_t n = 0;

	(void)state;
	expect_twin_error("[1]", "the body must be a JSON object, not an array");
	expect_twin_error("{\"tags\":[1]}", "tags: expected an object, got an array");
	expect_twin_error("{\"properties\":{\"desired\":5}}",
			  "properties.desired: expected an object, got a number");
	expect_twin_error("{\"properties\":{\"reported\":{\"a\":1}}}",
			  "properties.reported: reported properties are written by the device, "
			  "not by a service");
	expect_twin_error("{\"tags\":{\"a.b\":1}}",
			  "tags.a.b: a property name must be 1 to 1024 bytes without '.', '$', "
			  "spaces or control characters");
	expect_twin_error("{\"properties\":{\"desired\":{\"x\":{\"has space\":1}}}}",
			  "properties.desired.x.has space: a property name must be 1 to 1024 bytes "
			  "without '.', '$', spaces or control characters");
	expect_twin_error(
	    "{\"tags\":{\"\\u0085\":1}}",
	    "tags.\xc2\x85: a property name must be 1 to 1024 bytes without '.', '$', "
	    "spaces or control characters");
	/* Depth: the section's own object is level 1; ten levels are allowed. */
	nest(deep, sizeof(deep), 11);
	expect_twin_error(deep, "tags.k.k.k.k.k.k.k.k.k.k: properties nest at most 10 levels deep");
	{
		_cleanup_json_ json_t *twin = hub_twin_new(0);
		struct hub_error he = {0};

		nest(deep, sizeof(deep), 10);
		assert_int_equal(apply(twin, deep, false, &he), 0);
	}
	/* Tags over 8 KB. */
	n = (size_t)snprintf(big, sizeof(big), "{\"tags\":{\"big\":\"");
	memset(big + n, 'x', HUB_TWIN_TAGS_MAX);
	snprintf(big + n + HUB_TWIN_TAGS_MAX, sizeof(big) - n - HUB_TWIN_TAGS_MAX, "\"}}");
	{
		_cleanup_json_ json_t *twin = hub_twin_new(0);
		struct hub_error he = {0};

		assert_int_equal(apply(twin, big, false, &he), -EINVAL);
		assert_string_equal(he.message, "tags: at most 8192 bytes are allowed");
	}
}

static void test_twin_view(void **state)
{
	_cleanup_json_ json_t *twin = hub_twin_new(0), *b = NULL, *dev = NULL, *view = NULL;
	struct hub_error he = {0};

	(void)state;
	b = parse("{\"authentication\":{\"type\":\"certificateAuthority\"},"
		  "\"capabilities\":{\"iotEdge\":true}}");
	assert_int_equal(hub_device_build(b, "d1", NULL, 0, &dev, &he), 0);
	view = hub_twin_view(twin, "T", dev, "D", NULL);
	assert_string_equal(str(view, "deviceId"), "d1");
	assert_string_equal(str(view, "etag"), "T");
	assert_string_equal(str(view, "deviceEtag"), "D");
	assert_string_equal(str(view, "status"), "enabled");
	assert_string_equal(str(view, "statusUpdateTime"), "0001-01-01T00:00:00Z");
	assert_string_equal(str(view, "authenticationType"), "certificateAuthority");
	assert_int_equal(num(view, "version"), 1);
	assert_true(
	    json_is_true(json_object_get(json_object_get(view, "capabilities"), "iotEdge")));
	assert_int_equal(num(view, "properties.desired.$version"), 1);
	assert_null(json_object_get(view, "moduleId"));
	json_decref(view);
	view = hub_twin_view(twin, "T", dev, "D", "m1");
	assert_string_equal(str(view, "moduleId"), "m1");
	assert_null(json_object_get(view, "capabilities"));
}

/* --- authentication ----------------------------------------------------------- */

static struct hub_policy policies[] = {
    {(char *)"iothubowner", (char *)KEY, NULL,
     HUB_RIGHT_REGISTRY_READ | HUB_RIGHT_REGISTRY_WRITE | HUB_RIGHT_SERVICE_CONNECT |
	 HUB_RIGHT_DEVICE_CONNECT},
    {(char *)"reader", (char *)KEY2, NULL, HUB_RIGHT_REGISTRY_READ},
    {(char *)"second", (char *)KEY2, (char *)KEY, HUB_RIGHT_REGISTRY_READ},
};
static struct hub_settings settings = {(char *)HUB, policies, 3, NULL};

static void expect_service(const char *token, unsigned need, uint64_t now, int code,
			   const char *message)
{
	struct hub_error he = {0};

	assert_int_equal(hub_auth_service(&settings, token, need, now, &he), code);
	if (code == 0)
		return;
	assert_int_equal(he.status, 401);
	assert_string_equal(he.code, "IotHubUnauthorizedAccess");
	assert_string_equal(he.message, message);
}

static void test_auth_service(void **state)
{
	(void)state;
	expect_service(SERVICE_TOKEN, HUB_RIGHT_REGISTRY_WRITE, SE, 0, NULL);
	/* Accepted up to the 5-minute skew, not a second later. */
	expect_service(SERVICE_TOKEN, HUB_RIGHT_SERVICE_CONNECT, SE + 300, 0, NULL);
	expect_service(SERVICE_TOKEN, HUB_RIGHT_SERVICE_CONNECT, SE + 301, -EACCES,
		       "the SharedAccessSignature expired (se=1700000000)");
	expect_service(NULL, HUB_RIGHT_REGISTRY_READ, SE, -EACCES, "no Authorization header");
	expect_service("Basic abc", HUB_RIGHT_REGISTRY_READ, SE, -EACCES,
		       "the Authorization header is not a valid SharedAccessSignature");
	expect_service(DEVICE_TOKEN, HUB_RIGHT_REGISTRY_READ, SE, -EACCES,
		       "the SharedAccessSignature names no shared access policy (skn)");
	/* The right signature under another policy's name. */
	expect_service(SERVICE_BASE "&skn=reader&se=1700000000", HUB_RIGHT_REGISTRY_READ, SE,
		       -EACCES, "the SharedAccessSignature's signature does not match");
	/* The skn is not signed: the same signature verifies with "second"'s
	 * secondary key. */
	expect_service(SERVICE_BASE "&skn=second&se=1700000000", HUB_RIGHT_REGISTRY_READ, SE, 0,
		       NULL);
	expect_service(SERVICE_BASE "&skn=nobody&se=1700000000", HUB_RIGHT_REGISTRY_READ, SE,
		       -EACCES, "no shared access policy is called \"nobody\"");
	/* A policy without the right. */
	settings.policies[0].rights = HUB_RIGHT_REGISTRY_READ;
	expect_service(SERVICE_TOKEN, HUB_RIGHT_REGISTRY_WRITE, SE, -EACCES,
		       "the policy \"iothubowner\" does not grant RegistryWrite");
	expect_service(SERVICE_TOKEN, HUB_RIGHT_SERVICE_CONNECT, SE, -EACCES,
		       "the policy \"iothubowner\" does not grant ServiceConnect");
	settings.policies[0].rights = HUB_RIGHT_REGISTRY_READ | HUB_RIGHT_REGISTRY_WRITE |
				      HUB_RIGHT_SERVICE_CONNECT | HUB_RIGHT_DEVICE_CONNECT;
	/* A token for another hub. */
	settings.host_name = (char *)"otherhub.example";
	expect_service(SERVICE_TOKEN, HUB_RIGHT_REGISTRY_READ, SE, -EACCES,
		       "the SharedAccessSignature's resource (sr) is not this hub or this "
		       "identity");
	settings.host_name = (char *)HUB;
}

static json_t *sas_identity(const char *primary, const char *secondary, const char *status)
{
	return json_pack("{s:s,s:s,s:{s:s,s:{s:s,s:s}}}", "deviceId", "dev1", "status", status,
			 "authentication", "type", "sas", "symmetricKey", "primaryKey", primary,
			 "secondaryKey", secondary);
}

static void expect_device(const char *token, const char *module, const json_t *identity,
			  STACK_OF(X509) * chain, X509_STORE *store, uint64_t now,
			  const char *message)
{
	struct hub_error he = {0};
	int r = hub_auth_device(&settings, token, "dev1", module, identity, chain, store, now, &he);

	if (!message) {
		assert_int_equal(r, 0);
		return;
	}
	assert_int_equal(r, -EACCES);
	assert_int_equal(he.status, 401);
	assert_string_equal(he.message, message);
}

static void test_auth_device_sas(void **state)
{
	_cleanup_json_ json_t *id = sas_identity(KEY2, KEY, "enabled");
	_cleanup_json_ json_t *disabled = sas_identity(KEY, KEY2, "disabled");
	_cleanup_json_ json_t *other = sas_identity(KEY2, KEY2, "enabled");
	_cleanup_json_ json_t *x509 =
	    json_pack("{s:s,s:{s:s}}", "deviceId", "dev1", "authentication", "type", "selfSigned");

	(void)state;
	/* The secondary key signs too; sr encoded as Node sends it. */
	expect_device(DEVICE_TOKEN, NULL, id, NULL, NULL, SE, NULL);
	expect_device(DEVICE_TOKEN, NULL, other, NULL, NULL, SE,
		      "the SharedAccessSignature's signature does not match");
	expect_device(DEVICE_TOKEN, NULL, id, NULL, NULL, SE + 301,
		      "the SharedAccessSignature expired (se=1700000000)");
	expect_device(DEVICE_TOKEN, NULL, disabled, NULL, NULL, SE, "the device is disabled");
	expect_device(DEVICE_TOKEN, NULL, NULL, NULL, NULL, SE, "no such device");
	expect_device(DEVICE_TOKEN, NULL, x509, NULL, NULL, SE,
		      "the identity uses X.509 authentication, not keys (type \"selfSigned\")");
	/* A module token is for the module only. */
	expect_device(MODULE_TOKEN, "mod1", id, NULL, NULL, SE, NULL);
	expect_device(MODULE_TOKEN, NULL, id, NULL, NULL, SE,
		      "the SharedAccessSignature's resource (sr) is not this hub or this identity");
	expect_device(DEVICE_TOKEN, "mod1", id, NULL, NULL, SE,
		      "the SharedAccessSignature's resource (sr) is not this hub or this identity");
	/* A policy with DeviceConnect may speak for the device. */
	expect_device(SERVICE_TOKEN, NULL, other, NULL, NULL, SE, NULL);
	settings.policies[0].rights = HUB_RIGHT_SERVICE_CONNECT;
	expect_device(SERVICE_TOKEN, NULL, other, NULL, NULL, SE,
		      "the policy \"iothubowner\" does not grant DeviceConnect");
	settings.policies[0].rights = HUB_RIGHT_REGISTRY_READ | HUB_RIGHT_REGISTRY_WRITE |
				      HUB_RIGHT_SERVICE_CONNECT | HUB_RIGHT_DEVICE_CONNECT;
	expect_device(NULL, NULL, id, NULL, NULL, SE,
		      "no Authorization header and no client certificate");
}

/* A P-256 key and a certificate for CN=cn, issued by issuer (NULL:
 * self-signed). */
static X509 *make_cert(const char *cn, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key, bool ca,
		       long days_valid)
{
	X509 *c = X509_new();
	X509_NAME *name = X509_NAME_new();
	X509V3_CTX ctx;
	X509_EXTENSION *ext;

	assert_non_null(c);
	assert_int_equal(X509_set_version(c, 2), 1);
	ASN1_INTEGER_set(X509_get_serialNumber(c), (long)random());
	X509_gmtime_adj(X509_getm_notBefore(c), -3600);
	X509_gmtime_adj(X509_getm_notAfter(c), days_valid * 86400);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_subject_name(c, name);
	X509_set_issuer_name(c, issuer ? X509_get_subject_name(issuer) : name);
	X509_NAME_free(name);
	X509_set_pubkey(c, key);
	X509V3_set_ctx(&ctx, issuer ? issuer : c, c, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints,
				  ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
	X509_add_ext(c, ext, -1);
	X509_EXTENSION_free(ext);
	if (ca) {
		ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_key_usage, "critical,keyCertSign");
		X509_add_ext(c, ext, -1);
		X509_EXTENSION_free(ext);
	}
	assert_true(X509_sign(c, issuer_key ? issuer_key : key, EVP_sha256()) > 0);
	return c;
}

static EVP_PKEY *make_key(void)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");

	assert_non_null(k);
	return k;
}

static STACK_OF(X509) * chain_of(X509 *leaf, X509 *ca)
{
	STACK_OF(X509) *s = sk_X509_new_null();

	sk_X509_push(s, leaf);
	if (ca)
		sk_X509_push(s, ca);
	return s;
}

static void test_auth_device_x509(void **state)
{
	EVP_PKEY *ca_key = make_key(), *other_key = make_key(), *dev_key = make_key();
	X509 *ca = make_cert("device CA", ca_key, NULL, NULL, true, 30);
	X509 *other_ca = make_cert("device CA", other_key, NULL, NULL, true, 30);
	X509 *self = make_cert("dev1", dev_key, NULL, NULL, false, 30);
	X509 *expired = make_cert("dev1", dev_key, NULL, NULL, false, -1);
	X509 *leaf = make_cert("dev1", dev_key, ca, ca_key, false, 30);
	X509 *wrong_cn = make_cert("dev2", dev_key, ca, ca_key, false, 30);
	X509 *foreign = make_cert("dev1", dev_key, other_ca, other_key, false, 30);
	STACK_OF(X509) *c_self = chain_of(self, NULL), *c_expired = chain_of(expired, NULL);
	STACK_OF(X509) *c_leaf = chain_of(leaf, NULL), *c_wrong = chain_of(wrong_cn, ca);
	STACK_OF(X509) *c_foreign = chain_of(foreign, other_ca);
	unsigned char md[32];
	unsigned int n = 0;
	char hex[65];
	json_t *self_id, *ca_id;
	X509_STORE *store;

	(void)state;
	settings.ca = sk_X509_new_null();
	sk_X509_push(settings.ca, ca);
	store = hub_ca_store_new(&settings);
	assert_non_null(store);

	/* selfSigned: the SHA-256 thumbprint, in either case, as secondary. */
	assert_int_equal(X509_digest(self, EVP_sha256(), md, &n), 1);
	for (unsigned i = 0; i < n; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	self_id = json_pack("{s:s,s:{s:s,s:{s:s,s:s}}}", "deviceId", "dev1", "authentication",
			    "type", "selfSigned", "x509Thumbprint", "primaryThumbprint",
			    "0000000000000000000000000000000000000000", "secondaryThumbprint", hex);
	ca_id = json_pack("{s:s,s:{s:s}}", "deviceId", "dev1", "authentication", "type",
			  "certificateAuthority");

	expect_device(NULL, NULL, self_id, c_self, store, 0, NULL);
	expect_device(NULL, NULL, self_id, c_leaf, store, 0,
		      "the client certificate's thumbprint is not the device's");
	/* The expired one has the same key but is another certificate. */
	json_object_set_new(
	    json_object_get(json_object_get(self_id, "authentication"), "x509Thumbprint"),
	    "primaryThumbprint", json_string(""));
	assert_int_equal(X509_digest(expired, EVP_sha1(), md, &n), 1);
	for (unsigned i = 0; i < n; i++)
		snprintf(hex + 2 * i, 3, "%02X", md[i]);
	json_object_set_new(
	    json_object_get(json_object_get(self_id, "authentication"), "x509Thumbprint"),
	    "primaryThumbprint", json_string(hex));
	expect_device(NULL, NULL, self_id, c_expired, store, 0,
		      "the client certificate is expired or not yet valid");
	expect_device(NULL, NULL, self_id, NULL, store, 0,
		      "no Authorization header and no client certificate");

	/* certificateAuthority: chain to a trusted CA, CN = device id. */
	expect_device(NULL, NULL, ca_id, c_leaf, store, 0, NULL);
	expect_device(NULL, NULL, ca_id, c_wrong, store, 0,
		      "the client certificate's common name is not the device id \"dev1\"");
	expect_device(NULL, NULL, ca_id, c_foreign, store, 0,
		      "the client certificate does not chain to a trusted CA");
	expect_device(NULL, NULL, ca_id, c_self, store, 0,
		      "the client certificate does not chain to a trusted CA");
	{
		_cleanup_json_ json_t *sas = sas_identity(KEY, KEY2, "enabled");

		expect_device(NULL, NULL, sas, c_leaf, store, 0,
			      "the identity does not use X.509 authentication (type \"sas\")");
	}

	json_decref(self_id);
	json_decref(ca_id);
	X509_STORE_free(store);
	sk_X509_free(c_self);
	sk_X509_free(c_expired);
	sk_X509_free(c_leaf);
	sk_X509_free(c_wrong);
	sk_X509_free(c_foreign);
	sk_X509_pop_free(settings.ca, X509_free);
	settings.ca = NULL;
	X509_free(other_ca);
	X509_free(self);
	X509_free(expired);
	X509_free(leaf);
	X509_free(wrong_cn);
	X509_free(foreign);
	EVP_PKEY_free(ca_key);
	EVP_PKEY_free(other_key);
	EVP_PKEY_free(dev_key);
}

/* --- the registry on a store ---------------------------------------------------- */

static char db_dir[64];

static int store_setup(void **state)
{
	char url[128];
	struct store *st = NULL;

	snprintf(db_dir, sizeof(db_dir), "/tmp/edgeid-hub-store-XXXXXX");
	if (!mkdtemp(db_dir))
		return -1;
	snprintf(url, sizeof(url), "sqlite://%s/cloud.db", db_dir);
	if (store_open(url, &st, NULL) < 0)
		return -1;
	*state = st;
	return 0;
}

static int store_teardown(void **state)
{
	static const char *const files[] = {"cloud.db", "cloud.db-wal", "cloud.db-shm"};
	char path[128];

	store_close(*state);
	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		snprintf(path, sizeof(path), "%s/%s", db_dir, files[i]);
		(void)unlink(path);
	}
	return rmdir(db_dir);
}

static void test_registry(void **state)
{
	struct store *st = *state;
	_cleanup_json_ json_t *empty = parse("{}"), *created = NULL, *list = NULL, *twin = NULL;
	_cleanup_json_ json_t *disable = parse("{\"status\":\"disabled\"}"), *updated = NULL;
	_cleanup_json_ json_t *patch = parse("{\"tags\":{\"t\":1}}"), *patched = NULL;
	_cleanup_json_ json_t *mod = NULL;
	struct hub_error he = {0};
	char quoted[256];

	(void)state;
	assert_int_equal(hub_device_put(st, HUB, "dev1", empty, NULL, &created, &he), 0);
	assert_non_null(str(created, "etag"));
	assert_int_equal(hub_device_put(st, HUB, "dev1", empty, NULL, NULL, &he), -EEXIST);
	assert_int_equal(he.status, 409);
	assert_string_equal(he.code, "DeviceAlreadyExists");
	assert_string_equal(he.message, "a device with id \"dev1\" already exists");

	assert_int_equal(hub_device_put(st, HUB, "dev1", disable, "\"stale\"", NULL, &he), -ESTALE);
	assert_int_equal(he.status, 412);
	assert_string_equal(he.code, "PreconditionFailed");
	snprintf(quoted, sizeof(quoted), "\"%s\"", str(created, "etag"));
	assert_int_equal(hub_device_put(st, HUB, "dev1", disable, quoted, &updated, &he), 0);
	assert_string_equal(str(updated, "status"), "disabled");
	assert_string_not_equal(str(updated, "etag"), str(created, "etag"));
	/* The old etag is stale now. */
	assert_int_equal(hub_device_put(st, HUB, "dev1", disable, quoted, NULL, &he), -ESTALE);
	assert_int_equal(hub_device_put(st, HUB, "ghost", empty, "*", NULL, &he), -ENOENT);
	assert_string_equal(he.code, "DeviceNotFound");

	/* The host name is case-insensitive in the store. */
	assert_int_equal(
	    hub_device_put(st, "MyHub.Azure-Devices.net", "dev2", empty, NULL, NULL, &he), 0);
	assert_int_equal(hub_device_list(st, HUB, 10, &list, &he), 0);
	assert_int_equal(json_array_size(list), 2);
	assert_string_equal(str(list, "[0].deviceId"), "dev1");
	assert_string_equal(str(list, "[1].deviceId"), "dev2");
	json_decref(TAKE_PTR(list));
	assert_int_equal(hub_device_list(st, HUB, 1, &list, &he), 0);
	assert_int_equal(json_array_size(list), 1);
	json_decref(TAKE_PTR(list));
	assert_int_equal(hub_device_list(st, "other.example", 10, &list, &he), 0);
	assert_int_equal(json_array_size(list), 0);
	json_decref(TAKE_PTR(list));

	/* A new device has a twin; patch it with its etag. */
	assert_int_equal(hub_twin_get(st, HUB, "dev1", NULL, &twin, &he), 0);
	assert_int_equal(num(twin, "version"), 1);
	assert_string_equal(str(twin, "deviceEtag"), str(updated, "etag"));
	snprintf(quoted, sizeof(quoted), "\"%s\"", str(twin, "etag"));
	assert_int_equal(
	    hub_twin_update(st, HUB, "dev1", NULL, patch, false, quoted, &patched, &he), 0);
	assert_int_equal(num(patched, "tags.t"), 1);
	assert_int_equal(num(patched, "version"), 2);
	assert_int_equal(hub_twin_update(st, HUB, "dev1", NULL, patch, false, quoted, NULL, &he),
			 -ESTALE);
	assert_int_equal(hub_twin_get(st, HUB, "nobody", NULL, &list, &he), -ENOENT);
	assert_string_equal(he.code, "DeviceNotFound");

	/* Modules, and what a device delete takes with it. */
	assert_int_equal(hub_module_put(st, HUB, "dev1", "m1", empty, NULL, &mod, &he), 0);
	assert_int_equal(hub_module_put(st, HUB, "dev1", "m1", empty, NULL, NULL, &he), -EEXIST);
	assert_string_equal(he.code, "ModuleAlreadyExistsOnDevice");
	assert_int_equal(hub_module_put(st, HUB, "nobody", "m1", empty, NULL, NULL, &he), -ENOENT);
	assert_string_equal(he.code, "DeviceNotFound");
	assert_int_equal(hub_twin_update(st, HUB, "dev1", "m1", patch, false, "*", NULL, &he), 0);
	assert_int_equal(hub_device_delete(st, HUB, "dev1", "\"nope\"", &he), -ESTALE);
	assert_int_equal(hub_device_delete(st, HUB, "dev1", "*", &he), 0);
	assert_int_equal(hub_device_get(st, HUB, "dev1", NULL, NULL, &he), -ENOENT);
	assert_int_equal(hub_device_put(st, HUB, "dev1", empty, NULL, NULL, &he), 0);
	assert_int_equal(hub_module_get(st, HUB, "dev1", "m1", NULL, NULL, &he), -ENOENT);
	assert_string_equal(he.code, "ModuleNotFound");
	json_decref(TAKE_PTR(twin));
	assert_int_equal(hub_twin_get(st, HUB, "dev1", NULL, &twin, &he), 0);
	assert_int_equal(num(twin, "version"), 1);
	assert_int_equal(json_object_size(json_object_get(twin, "tags")), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_config, cfg_setup, cfg_teardown),
	    cmocka_unit_test_setup_teardown(test_config_errors, cfg_setup, cfg_teardown),
	    cmocka_unit_test(test_rights),
	    cmocka_unit_test(test_ids),
	    cmocka_unit_test(test_device_build),
	    cmocka_unit_test(test_device_build_x509),
	    cmocka_unit_test(test_device_build_errors),
	    cmocka_unit_test(test_module_build),
	    cmocka_unit_test(test_twin_merge),
	    cmocka_unit_test(test_twin_replace),
	    cmocka_unit_test(test_twin_errors),
	    cmocka_unit_test(test_twin_view),
	    cmocka_unit_test(test_auth_service),
	    cmocka_unit_test(test_auth_device_sas),
	    cmocka_unit_test(test_auth_device_x509),
	    cmocka_unit_test_setup_teardown(test_registry, store_setup, store_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
