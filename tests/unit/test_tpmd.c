/* SPDX-License-Identifier: MIT */
/*
 * tpmd: its settings (exact errors with file, line and column), who may
 * call, and the TPM Service API served by the real daemon (daemon_run in a
 * child process) on a unix socket against a real TPM (swtpm on loopback):
 * routes, api-version, JSON and base64 validation with exact messages, the
 * EK and SRK, import of a blob built for this TPM and HMAC signing checked
 * against OpenSSL, and the 503 answers while the TPM is away. No mocks.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <pwd.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/buf.h"
#include "common/encode.h"
#include "common/fs.h"
#include "common/http_client.h"
#include "common/json.h"
#include "crypto/hash.h"
#include "crypto/tpm_blob.h"
#include "crypto/tpm_public.h"
#include "device/tpmd/tpmd.h"

#include "swtpm_fixture.h"

#define V "?api-version=" TPMD_API_VERSION

/* The EK of the Azure Node SDK's provisioning e2e tests: another TPM's. */
static const char other_ek_b64[] =
    "AToAAQALAAMAsgAgg3GXZ0SEs/gakMyNRqXXJP1S124GUgtk8qHaGzMUaaoABgCAAEMAEAgAAAAAAAEAtKEADl/sNRgm"
    "YAjP6gXmbccRaJoTnVixisUaek0OwAzFGN70xt9ZOYp6fhIwfcft3fdVKOrKpXYcTe72CGNkGJGlQz5ti9n2pQ0uJhcX"
    "8aefh4Onm7lVlUCQAVp1K0r6zI8vkEXWsBIvwvxk0eMJbFaq146kbTkJHIGczb89RkFH2TX+CgXeZOG9oXQzUNwktmTU"
    "acspamune5Wywc/ce8HsDFYchyUHogFhrZ/LPnzyTDXO8sSC5z5dvsUBtUME3iRYDyKgZOfBtmRMqQewD+4iH+ZEJjts"
    "yJiWR8hFhyKROnOuqXfNFwjd5IcNU4wtlKO0cLyXmTOfQK6Da1pr5Q==";

/* The fixed part of the EK (TCG template L-1) public area, up to the
 * modulus. */
static const uint8_t ek_head[] = {
    0x01, 0x3a, 0x00, 0x01, 0x00, 0x0b, 0x00, 0x03, 0x00, 0xb2, 0x00, 0x20, 0x83, 0x71, 0x97,
    0x67, 0x44, 0x84, 0xb3, 0xf8, 0x1a, 0x90, 0xcc, 0x8d, 0x46, 0xa5, 0xd7, 0x24, 0xfd, 0x52,
    0xd7, 0x6e, 0x06, 0x52, 0x0b, 0x64, 0xf2, 0xa1, 0xda, 0x1b, 0x33, 0x14, 0x69, 0xaa, 0x00,
    0x06, 0x00, 0x80, 0x00, 0x43, 0x00, 0x10, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00,
};

/* The HMAC key the tests deliver to the TPM, and another. */
static const uint8_t key_k[32] = {0x4b, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a,
				  0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15,
				  0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f};

static struct {
	bool available; /* swtpm is installed */
	char dir[64];
	struct swtpm_fixture sim;
	pid_t daemon;
	char sock[128];
	char log[128];
} g;

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void write_text(const char *path, const char *text)
{
	struct err e = {0};

	assert_int_equal(
	    fs_write_atomic(path, text, strlen(text), 0644, FS_KEEP_OWNER, FS_KEEP_GROUP, &e), 0);
}

/* ---- settings -------------------------------------------------------------- */

static int parse_text(const char *text, struct tpmd_settings *ret, struct err *e)
{
	static const char *const names[] = {"/etc/aziot/tpmd/config.d/00-super.toml"};
	const char *texts[] = {text};
	struct daemon_config *c = NULL;
	int r;

	r = daemon_config_load_texts(names, texts, 1, &c, e);
	if (r < 0)
		return r;
	r = tpmd_settings_parse(c, ret, e);
	daemon_config_free(c);
	return r;
}

static void expect_error(const char *text, const char *msg)
{
	struct tpmd_settings s = {0};
	struct err e = {0};

	assert_int_equal(parse_text(text, &s, &e), -EINVAL);
	assert_string_equal(e.msg, msg);
	assert_null(s.tcti);
}

static void test_settings_defaults(void **state)
{
	struct tpmd_settings s = {0};
	struct passwd *pw = getpwnam(TPMD_DEFAULT_PRINCIPAL_USER);
	struct err e = {0};

	(void)state;
	/* What `config apply` writes for an empty [tpm]: an empty file. */
	assert_int_equal(parse_text("", &s, &e), 0);
	assert_string_equal(s.tcti, "device");
	assert_int_equal(s.auth_key_handle, 0x81000100);
	assert_string_equal(s.endorsement_auth, "");
	assert_string_equal(s.owner_auth, "");
	/* No [[principal]]: identityd's user, when the system has it. */
	if (pw) {
		assert_true(s.uids_from_default);
		assert_int_equal(s.n_uids, 1);
		assert_int_equal(s.uids[0], pw->pw_uid);
		assert_true(tpmd_settings_allow(&s, pw->pw_uid));
	} else {
		assert_false(s.uids_from_default);
		assert_int_equal(s.n_uids, 0);
	}
	assert_true(tpmd_settings_allow(&s, 0));
	assert_false(tpmd_settings_allow(&s, 65534));
	tpmd_settings_clear(&s);
	assert_null(s.tcti);
	tpmd_settings_clear(&s);
}

static void test_settings_values(void **state)
{
	struct tpmd_settings a = {0}, b = {0};
	struct err e = {0};

	(void)state;
	assert_int_equal(parse_text("max_requests = 3\n"
				    "tcti = \"swtpm:host=127.0.0.1,port=2321\"\n"
				    "auth_key_index = 0x00_02_00\n"
				    "unknown_top_level = true\n"
				    "[hierarchy_authorization]\n"
				    "endorsement = \"e-pass\"\n"
				    "owner = \"o-pass\"\n"
				    "[[principal]]\n"
				    "uid = 5556\n"
				    "[[principal]]\n"
				    "uid = 1000\n",
				    &a, &e),
			 0);
	assert_string_equal(a.tcti, "swtpm:host=127.0.0.1,port=2321");
	assert_int_equal(a.auth_key_handle, 0x81000200);
	assert_string_equal(a.endorsement_auth, "e-pass");
	assert_string_equal(a.owner_auth, "o-pass");
	assert_false(a.uids_from_default);
	assert_int_equal(a.n_uids, 2);
	assert_true(tpmd_settings_allow(&a, 5556));
	assert_true(tpmd_settings_allow(&a, 1000));
	assert_true(tpmd_settings_allow(&a, 0));
	assert_false(tpmd_settings_allow(&a, 5557));
	assert_false(tpmd_settings_allow(&a, 65534));

	/* Only tcti and the hierarchy authorization decide whether a reload
	 * reopens the TPM. */
	assert_int_equal(parse_text("tcti = \"swtpm:host=127.0.0.1,port=2321\"\n"
				    "auth_key_index = 7\n"
				    "hierarchy_authorization = { endorsement = \"e-pass\", "
				    "owner = \"o-pass\" }\n",
				    &b, &e),
			 0);
	assert_true(tpmd_settings_same_tpm(&a, &b));
	tpmd_settings_clear(&b);
	assert_int_equal(parse_text("tcti = \"swtpm:host=127.0.0.1,port=2321\"\n"
				    "hierarchy_authorization = { endorsement = \"e-pasS\", "
				    "owner = \"o-pass\" }\n",
				    &b, &e),
			 0);
	assert_false(tpmd_settings_same_tpm(&a, &b));
	tpmd_settings_clear(&b);
	assert_int_equal(parse_text("hierarchy_authorization = { endorsement = \"e-pass\", "
				    "owner = \"o-pass\" }\n",
				    &b, &e),
			 0);
	assert_false(tpmd_settings_same_tpm(&a, &b));
	tpmd_settings_clear(&b);
	tpmd_settings_clear(&a);

	/* The highest index; an empty tcti (the loader's default list). */
	assert_int_equal(parse_text("auth_key_index = 0x7FFFFF\ntcti = \"\"\n", &a, &e), 0);
	assert_int_equal(a.auth_key_handle, 0x817FFFFF);
	assert_string_equal(a.tcti, "");
	tpmd_settings_clear(&a);
}

static void test_settings_errors(void **state)
{
	(void)state;
	/* aziot's template quotes it; the field is an integer. */
	expect_error("auth_key_index = \"0x00_01_00\"\n",
		     "/etc/aziot/tpmd/config.d/00-super.toml:1:18: auth_key_index: expected an "
		     "integer, got a string");
	expect_error("auth_key_index = 0x800000\n",
		     "/etc/aziot/tpmd/config.d/00-super.toml:1:18: auth_key_index: expected an "
		     "integer from 0 to 8388607, got 8388608");
	expect_error("auth_key_index = -1\n",
		     "/etc/aziot/tpmd/config.d/00-super.toml:1:18: auth_key_index: expected an "
		     "integer from 0 to 8388607, got -1");
	expect_error("auth_key_index = 1\n",
		     "/etc/aziot/tpmd/config.d/00-super.toml:1:18: auth_key_index: 0x000001 makes "
		     "0x81000001, the SRK's handle; choose another");
	expect_error("auth_key_index = 0x010001\n",
		     "/etc/aziot/tpmd/config.d/00-super.toml:1:18: auth_key_index: 0x010001 makes "
		     "0x81010001, the EK's handle; choose another");
	expect_error("tcti = 2321\n", "/etc/aziot/tpmd/config.d/00-super.toml:1:8: tcti: expected "
				      "a string, got a number");
	expect_error("[hierarchy_authorization]\nendorsment = \"x\"\n",
		     "/etc/aziot/tpmd/config.d/00-super.toml:2:14: "
		     "hierarchy_authorization.endorsment: unknown setting (expected endorsement or "
		     "owner)");
	expect_error("[hierarchy_authorization]\nowner = 1\n",
		     "/etc/aziot/tpmd/config.d/00-super.toml:2:9: hierarchy_authorization.owner: "
		     "expected a string, got a number");
	expect_error("[hierarchy_authorization]\nowner = "
		     "\"0123456789012345678901234567890123456789012345678901234567890123x\"\n",
		     "/etc/aziot/tpmd/config.d/00-super.toml:2:9: hierarchy_authorization.owner: "
		     "longer than 64 bytes (65)");
	expect_error("hierarchy_authorization = \"x\"\n",
		     "/etc/aziot/tpmd/config.d/00-super.toml:1:27: hierarchy_authorization: "
		     "expected an object, got a string");
	expect_error("[[principal]]\nuid = 1000\nkeys = [\"a\"]\n",
		     "/etc/aziot/tpmd/config.d/00-super.toml:3:8: principal[0].keys: unknown "
		     "setting (tpmd principals have only a uid)");
	expect_error("[[principal]]\nuid = 1\n[[principal]]\nname = \"x\"\n",
		     "/etc/aziot/tpmd/config.d/00-super.toml:4:8: principal[1].name: unknown "
		     "setting (tpmd principals have only a uid)");
	expect_error("[[principal]]\n",
		     "/etc/aziot/tpmd/config.d/00-super.toml:1:1: principal[0].uid: missing");
	expect_error("[[principal]]\nuid = \"aziotid\"\n",
		     "/etc/aziot/tpmd/config.d/00-super.toml:2:7: principal[0].uid: expected an "
		     "integer, got a string");
	expect_error("principal = 3\n", "/etc/aziot/tpmd/config.d/00-super.toml:1:13: principal: "
					"expected an array, got a number");
}

/* ---- swtpm and the daemon ---------------------------------------------- */

static void sleep_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};

	nanosleep(&ts, NULL);
}

struct resp {
	long status;
	char *body;
	json_t *json;
};

static void resp_clear(struct resp *r)
{
	free(r->body);
	json_decref(r->json);
	*r = (struct resp){0};
}

/* One request to tpmd. body NULL: none. Returns 0, or the transport's
 * negative errno (the daemon is not up yet, ...). */
static int request(const char *method, const char *path, const char *body, struct resp *ret)
{
	static const struct http_header json_ct[] = {{"Content-Type", "application/json"}};
	_cleanup_http_client_response_ struct http_client_response resp = {0};
	char url[512];
	struct http_client_request req = {
	    .method = method,
	    .url = url,
	    .headers = body ? json_ct : NULL,
	    .n_headers = body ? 1 : 0,
	    .body = body,
	    .body_len = body ? strlen(body) : 0,
	    .timeout_ms = 30000,
	    .unix_socket_path = g.sock,
	};
	struct err e = {0};
	int r;

	snprintf(url, sizeof(url), "http://tpmd.sock%s", path);
	*ret = (struct resp){0};
	r = http_client_perform(NULL, &req, &resp, &e);
	if (r < 0)
		return r;
	ret->status = resp.status;
	ret->body = strdup(buf_str(&resp.body));
	(void)json_parse(resp.body.data ? resp.body.data : "", resp.body.len, 0, &ret->json, NULL);
	return 0;
}

/* A request that must get an answer. */
static void call(const char *method, const char *path, const char *body, struct resp *ret)
{
	assert_int_equal(request(method, path, body, ret), 0);
}

static const char *message(const struct resp *r)
{
	const char *m = NULL;

	assert_int_equal(json_get_string(r->json, "message", &m, NULL), 0);
	return m;
}

/* call() and expect {"message": msg} with status. */
static void expect_error_response(const char *method, const char *path, const char *body,
				  long status, const char *msg)
{
	struct resp r;

	call(method, path, body, &r);
	if (r.status != status)
		fprintf(stderr, "# %s %s: got %ld %s\n", method, path, r.status, r.body);
	assert_int_equal(r.status, status);
	assert_string_equal(message(&r), msg);
	resp_clear(&r);
}

/* Run `edgeidd tpmd` (daemon_run) in a child with config text, logging to
 * g.log; wait until it answers. */
static void start_daemon(const char *config_text)
{
	char cfg[128], dropins[128];

	snprintf(cfg, sizeof(cfg), "%s/config.toml", g.dir);
	snprintf(dropins, sizeof(dropins), "%s/config.d", g.dir);
	snprintf(g.sock, sizeof(g.sock), "%s/tpmd.sock", g.dir);
	snprintf(g.log, sizeof(g.log), "%s/tpmd.log", g.dir);
	write_text(cfg, config_text);
	unlink(g.log);
	if (g.daemon > 0) { /* left by a failed case */
		kill(g.daemon, SIGKILL);
		waitpid(g.daemon, NULL, 0);
	}
	g.daemon = fork();
	assert_true(g.daemon >= 0);
	if (g.daemon == 0) {
		char *argv[] = {"edgeidd tpmd", "-c", cfg,    "--config-dir",
				dropins,        "-s", g.sock, NULL};
		int fd = open(g.log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (fd < 0 || dup2(fd, STDERR_FILENO) < 0)
			_exit(99);
		/* exit(), not _exit(): the sanitizers' leak check runs then. */
		exit(daemon_run(&tpmd_spec, 7, argv));
	}
	for (int i = 0; i < 400; i++) {
		struct resp r;

		if (request("GET", "/" V, NULL, &r) == 0) {
			resp_clear(&r);
			return;
		}
		assert_int_equal(waitpid(g.daemon, NULL, WNOHANG), 0);
		sleep_ms(25);
	}
	fail_msg("tpmd did not start; see %s", g.log);
}

/* SIGTERM; tpmd must exit 0 (and, under the sanitizers, without leaks). */
static void stop_daemon(void)
{
	int status = -1;

	if (g.daemon <= 0)
		return;
	kill(g.daemon, SIGTERM);
	assert_int_equal(waitpid(g.daemon, &status, 0), g.daemon);
	g.daemon = 0;
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* How many lines of the daemon's log contain s. */
static int log_count(const char *s)
{
	_cleanup_buf_ struct buf b = {0};
	int n = 0;

	buf_init(&b, 0);
	if (fs_read_file(g.log, 1 << 20, &b, NULL) < 0)
		return -1;
	for (const char *p = buf_str(&b); (p = strstr(p, s)); p += strlen(s))
		n++;
	return n;
}

static int group_setup(void **state)
{
	(void)state;
	setenv("TSS2_LOG", "all+none", 0);
	srand((unsigned)getpid() ^ (unsigned)time(NULL));
	snprintf(g.dir, sizeof(g.dir), "/tmp/edgeid-test-tpmd-XXXXXX");
	/* Traversable, for the cases that call as other users. */
	if (!mkdtemp(g.dir) || chmod(g.dir, 0755) < 0)
		return -1;
	g.available = swtpm_fixture_installed();
	if (!g.available)
		return 0;
	if (swtpm_fixture_start(&g.sim, g.dir, 0) < 0) {
		fprintf(stderr, "# swtpm did not start (log in %s)\n", g.dir);
		return -1;
	}
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	if (g.daemon > 0) {
		kill(g.daemon, SIGKILL);
		waitpid(g.daemon, NULL, 0);
	}
	swtpm_fixture_stop(&g.sim);
	nftw(g.dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return 0;
}

#define NEED_SWTPM()                                                                               \
	do {                                                                                       \
		if (!g.available)                                                                  \
			skip();                                                                    \
	} while (0)

static void config_for(const char *tcti, char *out, size_t n)
{
	snprintf(out, n, "tcti = \"%s\"\n[[principal]]\nuid = 4242\n", tcti);
}

/* The public areas from GET /get_tpm_keys, decoded. */
static void get_keys(struct buf *ek, struct buf *srk)
{
	const char *ek64, *srk64;
	struct resp r;

	call("GET", "/get_tpm_keys" V, NULL, &r);
	assert_int_equal(r.status, 200);
	assert_int_equal(json_object_size(r.json), 2);
	assert_int_equal(json_get_string(r.json, "endorsement_key", &ek64, NULL), 0);
	assert_int_equal(json_get_string(r.json, "storage_root_key", &srk64, NULL), 0);
	buf_init(ek, 4096);
	buf_init(srk, 4096);
	assert_int_equal(base64_decode(ek, ek64, strlen(ek64), B64_STANDARD, NULL), 0);
	assert_int_equal(base64_decode(srk, srk64, strlen(srk64), B64_STANDARD, NULL), 0);
	resp_clear(&r);
}

/* The base64 authentication-key blob for this TPM's EK and SRK carrying
 * key (or for ek_b64's TPM when non-NULL). */
static char *blob_for(const uint8_t *key, size_t key_len, const char *ek_b64)
{
	_cleanup_buf_ struct buf ek = {0}, srk = {0}, blob = {0}, b64 = {0};
	struct tpm_public ek_pub, srk_pub;
	struct err e = {0};

	get_keys(&ek, &srk);
	if (ek_b64)
		assert_int_equal(tpm_public_parse_base64(ek_b64, TPM_ALG_RSA, &ek_pub, &e), 0);
	else
		assert_int_equal(tpm_public_parse(ek.data, ek.len, TPM_ALG_RSA, &ek_pub, &e), 0);
	assert_int_equal(tpm_public_parse(srk.data, srk.len, TPM_ALG_RSA, &srk_pub, &e), 0);
	buf_init(&blob, TPM_BLOB_MAX);
	assert_int_equal(tpm_blob_build(&ek_pub, &srk_pub, key, key_len, &blob, &e), 0);
	buf_init(&b64, 0);
	assert_int_equal(base64_encode(&b64, blob.data, blob.len, B64_STANDARD), 0);
	return buf_steal(&b64, NULL);
}

/* POST /sign_with_auth_key of data; the digest must be HMAC-SHA256(key). */
static void expect_signature(const uint8_t *key, const void *data, size_t len)
{
	_cleanup_buf_ struct buf d64 = {0}, body = {0}, digest = {0};
	uint8_t want[HASH_SHA256_LEN];
	const char *got64;
	struct resp r;

	buf_init(&d64, 0);
	buf_init(&body, 0);
	buf_init(&digest, 64);
	assert_int_equal(base64_encode(&d64, data, len, B64_STANDARD), 0);
	assert_int_equal(buf_printf(&body, "{\"data\":\"%s\"}", buf_str(&d64)), 0);
	call("POST", "/sign_with_auth_key" V, buf_str(&body), &r);
	if (r.status != 200)
		fprintf(stderr, "# sign: %ld %s\n", r.status, r.body);
	assert_int_equal(r.status, 200);
	assert_int_equal(json_object_size(r.json), 1);
	assert_int_equal(json_get_string(r.json, "digest", &got64, NULL), 0);
	assert_int_equal(base64_decode(&digest, got64, strlen(got64), B64_STANDARD, NULL), 0);
	assert_int_equal(hash_hmac_sha256(key, 32, data, len, want), 0);
	assert_int_equal(digest.len, sizeof(want));
	assert_memory_equal(digest.data, want, sizeof(want));
	resp_clear(&r);
}

/* ---- the API ------------------------------------------------------------ */

static void test_api_common_rules(void **state)
{
	char cfg[256];

	(void)state;
	NEED_SWTPM();
	config_for(g.sim.tcti, cfg, sizeof(cfg));
	start_daemon(cfg);
	expect_error_response("GET", "/get_tpm_keys", NULL, 400, "api-version not specified");
	expect_error_response("GET", "/get_tpm_keys?api-version=2021-05-01", NULL, 400,
			      "invalid api-version \"2021-05-01\"");
	expect_error_response("GET", "/getTpmKeys" V, NULL, 404, "not found");
	expect_error_response("POST", "/get_tpm_keys" V, "{}", 400, "method not allowed");
	expect_error_response("GET", "/import_auth_key" V, NULL, 400, "method not allowed");
	expect_error_response("PUT", "/sign_with_auth_key" V, "{}", 400, "method not allowed");
}

static void test_api_get_tpm_keys(void **state)
{
	_cleanup_buf_ struct buf ek = {0}, srk = {0};
	struct resp r;

	(void)state;
	NEED_SWTPM();
	get_keys(&ek, &srk);
	/* The EK tpmd made at start-up, from the TCG L-1 template, and the
	 * SRK (tpm2_createprimary -C o defaults). */
	assert_int_equal(ek.len, 316);
	assert_memory_equal(ek.data, ek_head, sizeof(ek_head));
	assert_int_equal(srk.len, 284);
	assert_int_equal(log_count("EK 0x81010001 and SRK 0x81000001 are in place"), 1);

	/* The keys are the TPM's, not a copy: the same on every call, and a
	 * body on a GET is ignored. */
	call("GET", "/get_tpm_keys" V, "{\"x\":1}", &r);
	assert_int_equal(r.status, 200);
	{
		const char *ek64;
		_cleanup_buf_ struct buf again = {0};

		assert_int_equal(json_get_string(r.json, "endorsement_key", &ek64, NULL), 0);
		buf_init(&again, 4096);
		assert_int_equal(base64_decode(&again, ek64, strlen(ek64), B64_STANDARD, NULL), 0);
		assert_int_equal(again.len, ek.len);
		assert_memory_equal(again.data, ek.data, ek.len);
	}
	resp_clear(&r);
}

static void test_api_body_validation(void **state)
{
	_cleanup_free_ char *big = NULL;
	const char *p = "/import_auth_key" V;

	(void)state;
	NEED_SWTPM();
	expect_error_response("POST", p, NULL, 400, "missing request body");
	expect_error_response("POST", "/sign_with_auth_key" V, NULL, 400, "missing request body");
	expect_error_response("POST", p, "{\"key\":", 422,
			      "invalid JSON at 1:7: unexpected token near end of file");
	expect_error_response("POST", p, "[]", 422, "expected a JSON object, got an array");
	expect_error_response("POST", p, "{}", 422, "key: missing");
	expect_error_response("POST", p, "{\"key\":5}", 422,
			      "key: expected a string, got a number");
	expect_error_response("POST", p, "{\"Key\":\"AAAA\"}", 422, "key: missing");
	/* Standard base64 with padding, as aziot's ByteString. */
	expect_error_response("POST", p, "{\"key\":\"AAA\"}", 422,
			      "key: invalid base64 at offset 3");
	expect_error_response("POST", p, "{\"key\":\"AA-_\"}", 422,
			      "key: invalid base64 at offset 2");
	expect_error_response("POST", p, "{\"key\":\"AAAA AAAA\"}", 422,
			      "key: invalid base64 at offset 4");
	expect_error_response("POST", "/sign_with_auth_key" V, "{\"data\":\"aGVsbG8\"}", 422,
			      "data: invalid base64 at offset 7");
	expect_error_response("POST", "/sign_with_auth_key" V, "{\"data\":null}", 422,
			      "data: expected a string, got null");

	/* Sizes: 16 KiB of blob, 64 KiB of data to sign. */
	big = malloc(200000);
	assert_non_null(big);
	memcpy(big, "{\"key\":\"", 8);
	memset(big + 8, 'A', 21848);
	memcpy(big + 8 + 21848, "\"}", 3);
	expect_error_response("POST", p, big, 413, "key: too large (at most 16384 bytes)");
	memcpy(big, "{\"data\":\"", 9);
	memset(big + 9, 'A', 87384);
	memcpy(big + 9 + 87384, "\"}", 3);
	expect_error_response("POST", "/sign_with_auth_key" V, big, 413,
			      "data: too large (at most 65536 bytes)");

	/* Well-formed base64, not a blob: the library's sentence. */
	expect_error_response("POST", p, "{\"key\":\"AAAA\"}", 400,
			      "authentication key blob: item 2 (secret): truncated");
}

static void test_api_sign_before_import(void **state)
{
	(void)state;
	NEED_SWTPM();
	expect_error_response("POST", "/sign_with_auth_key" V, "{\"data\":\"aGVsbG8=\"}", 400,
			      "no authentication key has been imported (nothing at 0x81000100); "
			      "import one with /import_auth_key first");
}

static void test_api_import_and_sign(void **state)
{
	_cleanup_free_ char *blob = blob_for(key_k, sizeof(key_k), NULL);
	_cleanup_buf_ struct buf body = {0};
	uint8_t long_data[3000];
	struct resp r;

	(void)state;
	NEED_SWTPM();
	buf_init(&body, 0);
	assert_int_equal(buf_printf(&body, "{\"key\":\"%s\"}", blob), 0);
	call("POST", "/import_auth_key" V, buf_str(&body), &r);
	if (r.status != 200)
		fprintf(stderr, "# import: %ld %s\n", r.status, r.body);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "{}");
	resp_clear(&r);

	expect_signature(key_k, "hello", 5);
	expect_signature(key_k, "", 0);
	/* Longer than the TPM's input buffer: an HMAC sequence. */
	for (size_t i = 0; i < sizeof(long_data); i++)
		long_data[i] = (uint8_t)(i * 7);
	expect_signature(key_k, long_data, sizeof(long_data));
}

static void test_api_foreign_blob(void **state)
{
	_cleanup_free_ char *blob = NULL;
	_cleanup_buf_ struct buf body = {0};
	uint8_t other_key[32];
	struct resp r;

	(void)state;
	NEED_SWTPM();
	memset(other_key, 0x77, sizeof(other_key));
	blob = blob_for(other_key, sizeof(other_key), other_ek_b64);
	buf_init(&body, 0);
	assert_int_equal(buf_printf(&body, "{\"key\":\"%s\"}", blob), 0);
	call("POST", "/import_auth_key" V, buf_str(&body), &r);
	assert_int_equal(r.status, 400);
	assert_string_equal(
	    message(&r), "TPM2_ActivateCredential: tpm:error(2.0): commands not being accepted "
			 "because of a TPM failure; the authentication key was not made for this "
			 "TPM's EK and SRK (check the endorsement key enrolled for this device)");
	resp_clear(&r);
	/* The key imported before is still the one that signs. */
	expect_signature(key_k, "still K", 7);
}

/* As uid (and gid) in a child: the status and message of one request.
 * Returns 0 when they are as expected, else 1 (reasons on stderr). */
static int as_user(uid_t uid, const char *method, const char *path, const char *body, long status,
		   const char *msg)
{
	pid_t pid = fork();
	int st = -1;

	assert_true(pid >= 0);
	if (pid == 0) {
		struct resp r;
		const char *m = NULL;

		if (setgroups(0, NULL) < 0 || setresgid(uid, uid, uid) < 0 ||
		    setresuid(uid, uid, uid) < 0)
			_exit(2);
		if (request(method, path, body, &r) < 0)
			_exit(3);
		if (r.status != status) {
			fprintf(stderr, "# as uid %u: %s %s: got %ld %s\n", (unsigned)uid, method,
				path, r.status, r.body);
			_exit(1);
		}
		if (msg && (json_get_string(r.json, "message", &m, NULL) < 0 || !streq(m, msg))) {
			fprintf(stderr, "# as uid %u: %s %s: got %s\n", (unsigned)uid, method, path,
				r.body);
			_exit(1);
		}
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
}

static void test_api_principals(void **state)
{
	static const char refused[] = "user 65534 is not authorized to use the TPM service";

	(void)state;
	NEED_SWTPM();
	if (geteuid() != 0)
		skip();
	/* The socket is 0660; open it to everyone so that tpmd's own check
	 * is what is tested. */
	assert_int_equal(chmod(g.sock, 0666), 0);
	assert_int_equal(as_user(4242, "GET", "/get_tpm_keys" V, NULL, 200, NULL), 0);
	assert_int_equal(as_user(65534, "GET", "/get_tpm_keys" V, NULL, 403, refused), 0);
	assert_int_equal(
	    as_user(65534, "POST", "/sign_with_auth_key" V, "{\"data\":\"\"}", 403, refused), 0);
	/* Refused before the request is looked at. */
	assert_int_equal(as_user(65534, "POST", "/import_auth_key" V, "[]", 403, refused), 0);
	assert_int_equal(as_user(4242, "POST", "/import_auth_key" V, "[]", 422,
				 "expected a JSON object, got an array"),
			 0);
}

static void test_api_tpm_goes_away(void **state)
{
	_cleanup_buf_ struct buf ek_before = {0}, srk_before = {0}, ek = {0}, srk = {0};
	char want[256];
	struct resp r;
	int port = g.sim.port, i;

	(void)state;
	NEED_SWTPM();
	get_keys(&ek_before, &srk_before);
	swtpm_fixture_stop(&g.sim);
	/* The first command finds the connection gone. */
	call("GET", "/get_tpm_keys" V, NULL, &r);
	assert_int_equal(r.status, 503);
	snprintf(want, sizeof(want),
		 "the TPM is not available: tpm.tcti \"%s\": lost the connection to the TPM (",
		 g.sim.tcti);
	if (!strneq(message(&r), want, strlen(want)))
		fail_msg("got %s", r.body);
	resp_clear(&r);
	assert_int_equal(log_count("error: the TPM is unavailable: "), 1);
	/* Every route answers 503 with the reason; the request is still
	 * checked first. */
	call("POST", "/sign_with_auth_key" V, "{\"data\":\"\"}", &r);
	assert_int_equal(r.status, 503);
	assert_true(strneq(message(&r), "the TPM is not available: ", 26));
	resp_clear(&r);
	expect_error_response("POST", "/import_auth_key" V, "{}", 422, "key: missing");

	/* The TPM comes back (same state, same port): tpmd uses it again. */
	assert_int_equal(swtpm_fixture_start(&g.sim, g.dir, port), 0);
	for (i = 0; i < 400; i++) {
		call("GET", "/get_tpm_keys" V, NULL, &r);
		if (r.status == 200)
			break;
		assert_int_equal(r.status, 503);
		resp_clear(&r);
		sleep_ms(50);
	}
	assert_int_equal(r.status, 200);
	resp_clear(&r);
	assert_int_equal(log_count("notice: the TPM is available again"), 1);
	get_keys(&ek, &srk);
	assert_int_equal(ek.len, ek_before.len);
	assert_memory_equal(ek.data, ek_before.data, ek.len);
	assert_int_equal(srk.len, srk_before.len);
	assert_memory_equal(srk.data, srk_before.data, srk.len);
	/* The key imported before lives in the TPM. */
	expect_signature(key_k, "after", 5);
	stop_daemon();
}

static void test_api_unreachable_at_start(void **state)
{
	char cfg[256], tcti[96], want[512];
	int port;
	struct resp r;

	(void)state;
	NEED_SWTPM();
	for (port = 20000 + rand() % 40000; !swtpm_fixture_port_free(port); port++)
		;
	snprintf(tcti, sizeof(tcti), "swtpm:host=127.0.0.1,port=%d", port);
	config_for(tcti, cfg, sizeof(cfg));
	/* tpmd starts and serves; it does not exit. */
	start_daemon(cfg);
	snprintf(want, sizeof(want),
		 "the TPM is not available: tpm.tcti \"%s\": cannot reach the TPM (tcti:IO "
		 "failure); check that it exists and that this user may open it",
		 tcti);
	expect_error_response("GET", "/get_tpm_keys" V, NULL, 503, want);
	sleep_ms(1100); /* past TPMD_RETRY_ON_REQUEST_MS: this request tries again */
	expect_error_response("GET", "/get_tpm_keys" V, NULL, 503, want);
	expect_error_response("POST", "/sign_with_auth_key" V, "{\"data\":\"\"}", 503, want);
	/* Logged at error level once, not at every attempt. */
	assert_int_equal(log_count("error: the TPM is unavailable: "), 1);
	call("GET", "/get_tpm_keys" V, NULL, &r);
	assert_int_equal(r.status, 503);
	resp_clear(&r);
	stop_daemon();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_settings_defaults),
	    cmocka_unit_test(test_settings_values),
	    cmocka_unit_test(test_settings_errors),
	    cmocka_unit_test(test_api_common_rules),
	    cmocka_unit_test(test_api_get_tpm_keys),
	    cmocka_unit_test(test_api_body_validation),
	    cmocka_unit_test(test_api_sign_before_import),
	    cmocka_unit_test(test_api_import_and_sign),
	    cmocka_unit_test(test_api_foreign_blob),
	    cmocka_unit_test(test_api_principals),
	    cmocka_unit_test(test_api_tpm_goes_away),
	    cmocka_unit_test(test_api_unreachable_at_start),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
