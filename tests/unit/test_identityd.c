/* SPDX-License-Identifier: MIT */
/* identityd: SAS tokens byte for byte as aziot builds them, the
 * device_info file (format, parse, atomic 0600 write), the identityd
 * settings with their exact errors, the provisioning digest, and the job
 * result that crosses from the provisioning process to the daemon. */
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/encode.h"
#include "common/fs.h"
#include "common/json.h"
#include "crypto/hash.h"
#include "device/identityd/identityd_private.h"

static char tmpdir[64];

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st, (void)type, (void)ftw;
	return remove(path) < 0 ? -1 : 0;
}

static int setup_dir(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/edgeid-test-identityd-XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_dir(void **state)
{
	(void)state;
	nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return 0;
}

/* --- SAS tokens (aziot-compat.md §5.5) --------------------------------------- */

static void test_sas_resource_encoding(void **state)
{
	_cleanup_buf_ struct buf out = {0};

	(void)state;
	buf_init(&out, 0);
	/* Lowercased (ASCII only); CONTROLS, space " < > ` # ? { } = and
	 * non-ASCII bytes escaped with uppercase hex; '/', '%', '&', '+', '~'
	 * and the rest left alone. */
	assert_int_equal(identityd_sas_resource("AbC/x y\"<>`#?{}=%&+~:\xc3\x89\x01\x7f", &out), 0);
	assert_string_equal(buf_str(&out), "abc/x%20y%22%3C%3E%60%23%3F%7B%7D%3D%&+~:%C3%89%01%7F");
}

static void test_sas_token_format(void **state)
{
	_cleanup_buf_ struct buf out = {0};
	uint8_t sig[32];

	(void)state;
	/* base64 "++//++//...++8=": every character form_urlencode escapes. */
	for (size_t i = 0; i < 30; i += 3)
		memcpy(sig + i, "\xfb\xef\xff", 3);
	sig[30] = 0xfb;
	sig[31] = 0xef;
	buf_init(&out, 0);
	assert_int_equal(identityd_sas_token("0ne00000a0a/registrations/dev1", 1700000030, sig,
					     "registration", &out),
			 0);
	assert_string_equal(
	    buf_str(&out),
	    "SharedAccessSignature sr=0ne00000a0a/registrations/dev1&sig="
	    "%2B%2B%2F%2F%2B%2B%2F%2F%2B%2B%2F%2F%2B%2B%2F%2F%2B%2B%2F%2F%2B%2B%2F%2F%2B%2B%2F%2F"
	    "%2B%2B%2F%2F%2B%2B%2F%2F%2B%2B%2F%2F%2B%2B8%3D&se=1700000030&skn=registration");
	/* The hub token has no skn. */
	buf_reset(&out);
	assert_int_equal(identityd_sas_token("hub/devices/d", 5, sig, NULL, &out), 0);
	assert_true(strstr(buf_str(&out), "&se=5") != NULL);
	assert_null(strstr(buf_str(&out), "skn"));
}

struct hmac_signer {
	const char *key_b64;
	char signed_text[256];
	int fail;
};

static int hmac_sign(void *ctx, const void *msg, size_t len, uint8_t ret[32], struct err *e)
{
	struct hmac_signer *s = ctx;
	_cleanup_buf_ struct buf key = {0};

	if (s->fail)
		return err_set(e, s->fail, "keyd refused /sign (HTTP 400): invalid handle");
	assert_true(len < sizeof(s->signed_text));
	memcpy(s->signed_text, msg, len);
	s->signed_text[len] = '\0';
	buf_init(&key, 0);
	assert_int_equal(base64_decode(&key, s->key_b64, strlen(s->key_b64), B64_STANDARD, NULL),
			 0);
	return hash_hmac_sha256(key.data, key.len, msg, len, ret);
}

/* Expected values computed independently (Python hmac) from the recipe of
 * §5.5 with the key of dps-protocol.md §2.6. */
static void test_sas_build_dps(void **state)
{
	struct hmac_signer s = {.key_b64 = "Jsm0lyGpjaVYVP2g3FnmnmG9dI/9qU24wNoykUmermc="};
	_cleanup_buf_ struct buf out = {0};
	struct err e = {0};

	(void)state;
	buf_init(&out, 0);
	assert_int_equal(
	    identityd_sas_build("0ne00000A0A/registrations/sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6",
				"registration", 1700000000, hmac_sign, &s, &out, &e),
	    0);
	assert_string_equal(s.signed_text, "0ne00000a0a/registrations/"
					   "sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6\n1700000030");
	assert_string_equal(buf_str(&out),
			    "SharedAccessSignature sr=0ne00000a0a/registrations/"
			    "sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6&sig=vtP%2FCwyttl9lP12e%"
			    "2BJsk4mQ5o8MbGYfmY7g4A11LvW8%3D&se=1700000030&skn=registration");
}

static void test_sas_build_hub(void **state)
{
	struct hmac_signer s = {.key_b64 = "Jsm0lyGpjaVYVP2g3FnmnmG9dI/9qU24wNoykUmermc="};
	_cleanup_buf_ struct buf out = {0};
	struct err e = {0};

	(void)state;
	buf_init(&out, 0);
	assert_int_equal(identityd_sas_build("MyHub.azure-devices.net/devices/Dev 1?x=y#z", NULL,
					     1700000000, hmac_sign, &s, &out, &e),
			 0);
	assert_string_equal(s.signed_text,
			    "myhub.azure-devices.net/devices/dev%201%3Fx%3Dy%23z\n1700000030");
	assert_string_equal(buf_str(&out),
			    "SharedAccessSignature sr=myhub.azure-devices.net/devices/"
			    "dev%201%3Fx%3Dy%23z&sig=9FWMeCFVY0RFD58COH0q%2FRnsOUR3AKo4w1Se%"
			    "2BnzEHBc%3D&se=1700000030");
}

static void test_sas_build_sign_fails(void **state)
{
	struct hmac_signer s = {.key_b64 = "", .fail = -EPROTO};
	_cleanup_buf_ struct buf out = {0};
	struct err e = {0};

	(void)state;
	buf_init(&out, 0);
	assert_int_equal(
	    identityd_sas_build("a/registrations/b", "registration", 1, hmac_sign, &s, &out, &e),
	    -EPROTO);
	assert_string_equal(e.msg, "keyd refused /sign (HTTP 400): invalid handle");
	assert_int_equal(out.len, 0);
}

/* --- device_info (§4.3) --------------------------------------------------------- */

static void test_device_info_format(void **state)
{
	struct identityd_device_info di = {
	    .hub_name = "hub1.example.net",
	    .local_gateway_hostname = "hub1.example.net",
	    .device_id = "dev \"1\"\\x",
	};
	_cleanup_buf_ struct buf out = {0};

	(void)state;
	buf_init(&out, 0);
	assert_int_equal(identityd_device_info_format(&di, &out), 0);
	assert_string_equal(buf_str(&out), "hub_name = \"hub1.example.net\"\n"
					   "local_gateway_hostname = \"hub1.example.net\"\n"
					   "device_id = \"dev \\\"1\\\"\\\\x\"\n");
}

static void expect_parse_error(const char *text, int code, const char *msg)
{
	struct identityd_device_info di = {0};
	struct err e = {0};

	assert_int_equal(identityd_device_info_parse(text, strlen(text), "device_info", &di, &e),
			 code);
	assert_string_equal(e.msg, msg);
	assert_null(di.hub_name);
}

static void test_device_info_parse(void **state)
{
	static const char good[] = "hub_name = \"h\"\nlocal_gateway_hostname = \"g\"\n"
				   "device_id = \"d\"\n";
	struct identityd_device_info di = {0};
	struct err e = {0};

	(void)state;
	assert_int_equal(identityd_device_info_parse(good, strlen(good), "device_info", &di, &e),
			 0);
	assert_string_equal(di.hub_name, "h");
	assert_string_equal(di.local_gateway_hostname, "g");
	assert_string_equal(di.device_id, "d");
	identityd_device_info_clear(&di);

	/* aziot's "no device". */
	assert_int_equal(identityd_device_info_parse("unprovisioned\n", 14, "x", &di, &e), 1);
	assert_null(di.hub_name);

	expect_parse_error("hub_name = \"h\"\ndevice_id = \"d\"\n", -EBADMSG,
			   "device_info: missing key \"local_gateway_hostname\"");
	expect_parse_error("hub_name = 1\nlocal_gateway_hostname = \"g\"\ndevice_id = \"d\"\n",
			   -EBADMSG, "device_info:1:12: hub_name: expected a string");
	expect_parse_error("hub_name = \"h\"\nlocal_gateway_hostname = \"g\"\ndevice_id = \"\"\n",
			   -EBADMSG, "device_info:3:13: device_id: is empty");
	expect_parse_error("hub_name = \n", -EBADMSG,
			   "device_info:1:12: expected a value, got end of line");
}

static void test_device_info_files(void **state)
{
	struct identityd_device_info di = {
	    .hub_name = "hub2", .local_gateway_hostname = "gw", .device_id = "dev9"};
	struct identityd_device_info got = {0};
	_cleanup_free_ char *path = fs_path_join(tmpdir, "device_info");
	char digest[65], back[65];
	struct err e = {0};
	struct stat st;
	FILE *f;

	(void)state;
	assert_int_equal(identityd_device_info_read(tmpdir, &got, &e), -ENOENT);
	assert_int_equal(identityd_device_info_write(tmpdir, &di, &e), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(identityd_device_info_read(tmpdir, &got, &e), 0);
	assert_string_equal(got.hub_name, "hub2");
	assert_string_equal(got.local_gateway_hostname, "gw");
	assert_string_equal(got.device_id, "dev9");
	identityd_device_info_clear(&got);

	memset(digest, 'a', 64);
	digest[64] = '\0';
	assert_int_equal(identityd_digest_read(tmpdir, back, &e), -ENOENT);
	assert_int_equal(identityd_digest_write(tmpdir, digest, &e), 0);
	assert_int_equal(identityd_digest_read(tmpdir, back, &e), 0);
	assert_string_equal(back, digest);

	/* A file aziot (or a crash of something else) left invalid. */
	f = fopen(path, "we");
	assert_non_null(f);
	fputs("hub_name = \"x\"\n", f);
	fclose(f);
	assert_int_equal(identityd_device_info_read(tmpdir, &got, &e), -EBADMSG);

	assert_int_equal(identityd_device_info_remove(tmpdir, &e), 0);
	assert_int_equal(identityd_device_info_read(tmpdir, &got, &e), -ENOENT);
	assert_int_equal(identityd_digest_read(tmpdir, back, &e), -ENOENT);
	assert_int_equal(identityd_device_info_remove(tmpdir, &e), 0);
}

/* --- settings (§3.9) -------------------------------------------------------------- */

static int parse(const char *text, const char *root, struct identityd_settings **ret, struct err *e)
{
	_cleanup_daemon_config_ struct daemon_config *c = NULL;
	const char *names[] = {"identityd.toml"};
	int r;

	r = daemon_config_load_texts(names, &text, 1, &c, e);
	assert_int_equal(r, 0);
	return identityd_settings_parse(c, root, ret, e);
}

static void expect_error(const char *text, const char *msg)
{
	struct identityd_settings *s = NULL;
	struct err e = {0};

	assert_int_equal(parse(text, NULL, &s, &e), -EINVAL);
	assert_null(s);
	assert_string_equal(e.msg, msg);
}

#define HEAD "hostname = \"dev\"\nhomedir = \"/var/lib/aziot/identityd\"\n"

static void test_settings_dps_symmetric_key(void **state)
{
	_cleanup_identityd_settings_ struct identityd_settings *s = NULL;
	struct err e = {0};

	(void)state;
	assert_int_equal(parse(HEAD "cloud_timeout_sec = 90\ncloud_retries = 3\n"
				    "trust_bundle_cert = \"file:///etc/edgeid/ca%20x.pem\"\n"
				    "auto_reprovisioning_mode = \"AlwaysOnStartup\"\n"
				    "[provisioning]\nsource = \"dps\"\n"
				    "global_endpoint = \"https://dps.example:8443/some/path\"\n"
				    "scope_id = \"0ne00000A0A\"\n"
				    "payload = { uri = \"file:///etc/p.json\" }\n"
				    "[provisioning.attestation]\nmethod = \"symmetric_key\"\n"
				    "registration_id = \"dev1\"\nsymmetric_key = \"device-id\"\n"
				    "[endpoints]\naziot_keyd = \"unix:///tmp/k.sock\"\n",
			       "/r", &s, &e),
			 0);
	assert_string_equal(s->hostname, "dev");
	assert_string_equal(s->homedir, "/r/var/lib/aziot/identityd");
	assert_int_equal(s->cloud_timeout_sec, 90);
	assert_int_equal(s->cloud_retries, 3);
	assert_string_equal(s->trust_bundle, "/r/etc/edgeid/ca x.pem");
	assert_int_equal(s->reprovisioning, IDENTITYD_REPROV_ALWAYS_ON_STARTUP);
	assert_int_equal(s->source, IDENTITYD_SOURCE_DPS);
	assert_int_equal(s->auth, IDENTITYD_AUTH_SAS);
	assert_string_equal(identityd_auth_name(s), "symmetric_key");
	assert_string_equal(s->dps_base_url, "https://dps.example:8443");
	assert_string_equal(s->scope_id, "0ne00000A0A");
	assert_string_equal(s->payload_uri, "file:///etc/p.json");
	assert_string_equal(s->payload_path, "/r/etc/p.json");
	assert_string_equal(s->registration_id, "dev1");
	assert_string_equal(s->key_id, "device-id");
	assert_string_equal(s->keyd_socket, "/r/tmp/k.sock");
	assert_string_equal(s->tpmd_socket, "/r/run/aziot/tpmd.sock");
	assert_string_equal(s->certd_config, "/r/etc/aziot/certd/config.toml");
}

static void test_settings_defaults_and_other_methods(void **state)
{
	struct identityd_settings *s = NULL;
	struct err e = {0};

	(void)state;
	assert_int_equal(parse(HEAD "[provisioning]\nsource = \"dps\"\n"
				    "global_endpoint = \"https://global.azure-devices-"
				    "provisioning.net/\"\nscope_id = \"s\"\n"
				    "[provisioning.attestation]\nmethod = \"x509\"\n"
				    "identity_cert = \"device-id\"\nidentity_pk = \"device-id\"\n"
				    "[provisioning.attestation.registration_id]\nCN = \"reg-cn\"\n"
				    "L = \"AQ\"\n",
			       NULL, &s, &e),
			 0);
	assert_int_equal(s->cloud_timeout_sec, 70);
	assert_int_equal(s->cloud_retries, 1);
	assert_null(s->trust_bundle);
	assert_int_equal(s->reprovisioning, IDENTITYD_REPROV_DYNAMIC);
	assert_int_equal(s->auth, IDENTITYD_AUTH_X509);
	assert_string_equal(s->registration_id, "reg-cn");
	assert_string_equal(s->cert_id, "device-id");
	assert_string_equal(s->keyd_socket, "/run/aziot/keyd.sock");
	assert_string_equal(s->dps_base_url, "https://global.azure-devices-provisioning.net");
	identityd_settings_free(s);
	s = NULL;

	/* X.509 without a registration id: the certificate's CN later. */
	assert_int_equal(parse(HEAD "[provisioning]\nsource = \"dps\"\n"
				    "global_endpoint = \"https://d/\"\nscope_id = \"s\"\n"
				    "[provisioning.attestation]\nmethod = \"x509\"\n"
				    "identity_cert = \"device-id\"\nidentity_pk = \"device-id\"\n",
			       NULL, &s, &e),
			 0);
	assert_null(s->registration_id);
	identityd_settings_free(s);
	s = NULL;

	assert_int_equal(parse(HEAD "[provisioning]\nsource = \"dps\"\n"
				    "global_endpoint = \"https://d/\"\nscope_id = \"s\"\n"
				    "[provisioning.attestation]\nmethod = \"tpm\"\n"
				    "registration_id = \"r\"\n",
			       NULL, &s, &e),
			 0);
	assert_int_equal(s->auth, IDENTITYD_AUTH_TPM);
	assert_string_equal(identityd_auth_name(s), "tpm");
	identityd_settings_free(s);
	s = NULL;

	assert_int_equal(parse(HEAD "[provisioning]\nsource = \"manual\"\n"
				    "iothub_hostname = \"hub\"\ndevice_id = \"d\"\n"
				    "[provisioning.authentication]\nmethod = \"sas\"\n"
				    "device_id_pk = \"device-id\"\n",
			       NULL, &s, &e),
			 0);
	assert_int_equal(s->source, IDENTITYD_SOURCE_MANUAL);
	assert_string_equal(identityd_auth_name(s), "sas");
	assert_string_equal(s->iothub_hostname, "hub");
	assert_string_equal(s->key_id, "device-id");
	identityd_settings_free(s);
	s = NULL;

	assert_int_equal(parse(HEAD "[provisioning]\nsource = \"none\"\n", NULL, &s, &e), 0);
	assert_int_equal(s->source, IDENTITYD_SOURCE_NONE);
	identityd_settings_free(s);
}

static void test_settings_errors(void **state)
{
	(void)state;
	expect_error("homedir = \"/x\"\n[provisioning]\nsource = \"none\"\n",
		     "identityd.toml: missing key \"hostname\"");
	expect_error("hostname = \"h\"\nhomedir = \"x\"\n[provisioning]\nsource = \"none\"\n",
		     "identityd.toml:2:11: homedir: expected an absolute path, got \"x\"");
	expect_error(HEAD, "identityd.toml: missing key \"provisioning\"");
	expect_error(HEAD "[provisioning]\nsource = \"dsp\"\n",
		     "identityd.toml:4:10: provisioning.source: expected one of \"none\", "
		     "\"manual\" or \"dps\", got \"dsp\"");
	expect_error(HEAD "cloud_timeout_sec = 0\n[provisioning]\nsource = \"none\"\n",
		     "identityd.toml:3:21: cloud_timeout_sec: expected an integer from 1 to 86400, "
		     "got 0");
	expect_error(HEAD "auto_reprovisioning_mode = \"dynamic\"\n[provisioning]\n"
			  "source = \"none\"\n",
		     "identityd.toml:3:28: auto_reprovisioning_mode: expected one of \"Dynamic\", "
		     "\"AlwaysOnStartup\" or \"OnErrorOnly\", got \"dynamic\"");
	expect_error(HEAD
		     "trust_bundle_cert = \"/etc/ca.pem\"\n[provisioning]\nsource = \"none\"\n",
		     "identityd.toml:3:21: trust_bundle_cert: expected a file:///path URI, got "
		     "\"/etc/ca.pem\"");
	expect_error(HEAD "[provisioning]\nsource = \"dps\"\nglobal_endpoint = \"http://d/\"\n",
		     "identityd.toml:5:19: provisioning.global_endpoint: expected an https:// URL, "
		     "got \"http://d/\"");
	expect_error(
	    HEAD "[provisioning]\nsource = \"dps\"\nglobal_endpoint = \"https://d/\"\n"
		 "scope_id = \"s\"\n[provisioning.attestation]\nmethod = \"tpm\"\n",
	    "identityd.toml:7:1: provisioning.attestation: missing key \"registration_id\"");
	expect_error(
	    HEAD "[provisioning]\nsource = \"dps\"\nlocal_gateway_hostname = \"p\"\n",
	    "identityd.toml:5:26: provisioning.local_gateway_hostname: DPS provisioning is "
	    "not supported in nested mode");
	expect_error(HEAD "[provisioning]\nsource = \"manual\"\niothub_hostname = \"h\"\n"
			  "device_id = \"d\"\n[provisioning.authentication]\nmethod = \"x509\"\n"
			  "identity_cert = \"device-id\"\n",
		     "identityd.toml:7:1: provisioning.authentication: missing key "
		     "\"identity_pk\"");
	expect_error(HEAD "[provisioning]\nsource = \"none\"\n[[principal]]\nuid = 5\n"
			  "name = \"m\"\n[[principal]]\nuid = 6\nname = \"m\"\n",
		     "identityd.toml:10:8: principal[1].name: duplicate principal name \"m\"");
	expect_error(HEAD "[provisioning]\nsource = \"none\"\n[[principal]]\nuid = 5\n"
			  "name = \"m\"\nidtype = [\"device\"]\n",
		     "identityd.toml:8:10: principal[0].idtype: idtype \"device\" and \"module\" "
		     "need provisioning; the source is \"none\"");
	expect_error(HEAD "[provisioning]\nsource = \"manual\"\niothub_hostname = \"h\"\n"
			  "device_id = \"d\"\n[provisioning.authentication]\nmethod = \"sas\"\n"
			  "device_id_pk = \"k\"\n[[principal]]\nuid = 5\nname = \"m\"\n"
			  "idtype = [\"local\"]\n",
		     "identityd.toml:13:10: principal[0].idtype: idtype \"local\" needs [localid] "
		     "domain");
	expect_error(HEAD "[provisioning]\nsource = \"none\"\n[[principal]]\nuid = -1\n"
			  "name = \"m\"\n",
		     "identityd.toml:6:7: principal[0].uid: expected an integer from 0 to "
		     "4294967294");
}

static void test_settings_principals(void **state)
{
	_cleanup_identityd_settings_ struct identityd_settings *s = NULL;
	struct err e = {0};

	(void)state;
	assert_int_equal(parse(HEAD "[provisioning]\nsource = \"manual\"\niothub_hostname = \"h\"\n"
				    "device_id = \"d\"\n[provisioning.authentication]\n"
				    "method = \"sas\"\ndevice_id_pk = \"k\"\n"
				    "[[principal]]\nuid = 992\nname = \"aziot-edge\"\n"
				    "[[principal]]\nuid = 1000\nname = \"agent\"\n"
				    "idtype = [\"device\", \"module\"]\n"
				    "[[principal]]\nuid = 1001\nname = \"second-daemon\"\n",
			       NULL, &s, &e),
			 0);
	assert_int_equal(s->n_principals, 2);
	assert_int_equal(s->principals[0].uid, 992);
	assert_false(s->principals[0].has_idtype);
	assert_int_equal(s->principals[1].uid, 1000);
	assert_true(s->principals[1].has_idtype);
	assert_int_equal(s->principals[1].idtype,
			 IDENTITYD_IDTYPE_DEVICE | IDENTITYD_IDTYPE_MODULE);
	/* aziot keeps one principal without idtype. */
	assert_int_equal(s->n_warnings, 1);
	assert_string_equal(s->warnings[0], "principal[2]: only one principal may lack idtype; "
					    "\"second-daemon\" (uid 1001) is ignored");
}

#define DIGEST_BASE                                                                                \
	"[provisioning]\nsource = \"dps\"\nglobal_endpoint = \"https://d/\"\n"                     \
	"scope_id = \"%s\"\n[provisioning.attestation]\nmethod = \"tpm\"\n"                        \
	"registration_id = \"r\"\n"

static void digest_of(const char *head, const char *scope, char ret[65])
{
	struct identityd_settings *s = NULL;
	struct err e = {0};
	char text[512];

	snprintf(text, sizeof(text), "%s" DIGEST_BASE, head, scope);
	assert_int_equal(parse(text, NULL, &s, &e), 0);
	assert_int_equal(identityd_settings_provisioning_digest(s, ret), 0);
	identityd_settings_free(s);
}

static void test_settings_digest(void **state)
{
	char a[65], b[65], c[65];

	(void)state;
	digest_of("hostname = \"one\"\nhomedir = \"/h\"\n", "scope-a", a);
	/* Another host name and home: the same registration. */
	digest_of("hostname = \"two\"\nhomedir = \"/other\"\n", "scope-a", b);
	assert_string_equal(a, b);
	/* Another ID scope: another registration. */
	digest_of("hostname = \"one\"\nhomedir = \"/h\"\n", "scope-b", c);
	assert_string_not_equal(a, c);
	assert_int_equal(strlen(a), 64);
}

/* --- the job result ------------------------------------------------------------ */

static void test_job_result_json(void **state)
{
	struct identityd_job_result r = {
	    .ok = true,
	    .hub_name = "h",
	    .gateway = "g",
	    .device_id = "d",
	    .key_handle = "sr=x&sig=y",
	    .from_dps = true,
	    .hub_verified = true,
	    .registration_id = "reg",
	    .error = "the hub h could not answer (503 Service Unavailable)",
	};
	struct identityd_job_result back = {0};
	_cleanup_json_ json_t *j = identityd_job_result_to_json(&r);
	_cleanup_json_ json_t *bad = NULL;
	struct err e = {0};

	(void)state;
	assert_non_null(j);
	assert_int_equal(identityd_job_result_from_json(j, &back, &e), 0);
	assert_true(back.ok);
	assert_string_equal(back.hub_name, "h");
	assert_string_equal(back.gateway, "g");
	assert_string_equal(back.device_id, "d");
	assert_string_equal(back.key_handle, "sr=x&sig=y");
	assert_true(back.from_dps);
	assert_true(back.hub_verified);
	assert_string_equal(back.registration_id, "reg");
	assert_string_equal(back.error, r.error);
	assert_int_equal(back.fault, IDENTITYD_FAULT_NONE);
	identityd_job_result_clear(&back);

	bad = json_pack("{s:b,s:s}", "ok", 0, "fault", "sometimes");
	assert_int_equal(identityd_job_result_from_json(bad, &back, &e), -EBADMSG);
	assert_string_equal(e.msg, "fault: unknown value \"sometimes\"");
	json_decref(bad);
	/* ok without the identity is refused. */
	bad = json_pack("{s:b,s:s}", "ok", 1, "fault", "none");
	err_clear(&e);
	assert_int_equal(identityd_job_result_from_json(bad, &back, &e), -EBADMSG);
	assert_string_equal(e.msg, "a successful result without its identity");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sas_resource_encoding),
	    cmocka_unit_test(test_sas_token_format),
	    cmocka_unit_test(test_sas_build_dps),
	    cmocka_unit_test(test_sas_build_hub),
	    cmocka_unit_test(test_sas_build_sign_fails),
	    cmocka_unit_test(test_device_info_format),
	    cmocka_unit_test(test_device_info_parse),
	    cmocka_unit_test_setup_teardown(test_device_info_files, setup_dir, teardown_dir),
	    cmocka_unit_test(test_settings_dps_symmetric_key),
	    cmocka_unit_test(test_settings_defaults_and_other_methods),
	    cmocka_unit_test(test_settings_errors),
	    cmocka_unit_test(test_settings_principals),
	    cmocka_unit_test(test_settings_digest),
	    cmocka_unit_test(test_job_result_json),
	};

	return cmocka_run_group_tests_name("identityd", tests, NULL, NULL);
}
