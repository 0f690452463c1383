/* SPDX-License-Identifier: MIT */
/* keyd: aziot's key file names, handles (and that altered or forged ones
 * are refused), preferredAlgorithms, AES-256-GCM formats and the file
 * store. */
#include <fcntl.h>
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
#include "common/json.h"
#include "crypto/hash.h"
#include "device/keyd/keyd.h"

static char tmpdir[64];

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	return remove(path) < 0 ? -1 : 0;
}

static int setup_dir(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/edgeid-test-keyd-XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_dir(void **state)
{
	(void)state;
	nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return 0;
}

/* --- file names ------------------------------------------------------------ */

static void expect_name(const char *id, const char *name)
{
	_cleanup_free_ char *got = NULL;

	assert_int_equal(keyd_key_file_name(id, &got), 0);
	assert_string_equal(got, name);
}

static void test_file_names(void **state)
{
	(void)state;
	/* specs/aziot-compat.md §4.2: must match to reuse a device's keys. */
	expect_name(
	    "device-id",
	    "deviceid-bd732105ef89cf8edd2606a5309c8a26b7b5599a4e124a0fe6199b6b2f60e655.key");
	expect_name(
	    "handle-validation-key",
	    "handlevalidationkey-40f1ca41fe8b50f53e10f3e3a580dcae24087f37aa498ba9903f2612b03"
	    "e90ba.key");
	expect_name("aziot_identityd_master_id",
		    "aziotidentitydmasterid-91b92c2c06a5a5dda5fbc9c48b4d428d930b9c1b8b2956a1044ccbc"
		    "7a266afc9.key");
	expect_name("est-id",
		    "estid-c45f3e96a312cc524fecceddbc40dfc2aa789eae911d8bc7dd4eda19b93be900.key");
	expect_name("local-ca",
		    "localca-f71a8ad7034763bddef5cd1be2038a6b758374a08a83e88a979839841e5294d4.key");
	expect_name("aziot-edged-ca",
		    "aziotedgedca-86f154be7ff14480027f0d00c59c223db6d9e4ab0b559fc523cca36a7c973d6d."
		    "key");
	/* Only ASCII alphanumerics survive; the hash keeps ids apart. */
	expect_name("../x",
		    "x-d6b96a97d147daaae49eb87a5ca7bfbc280e79551016df8aa5edc5920d21c274.key");
	expect_name("", "-e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855.key");
}

/* --- preferredAlgorithms, URIs -------------------------------------------------- */

static void test_preferred_algorithms(void **state)
{
	enum keyd_alg a[3];

	(void)state;
	assert_int_equal(keyd_preferred_algorithms(NULL, a), 2);
	assert_int_equal(a[0], KEYD_ALG_EC_P256);
	assert_int_equal(a[1], KEYD_ALG_RSA_2048);
	assert_int_equal(keyd_preferred_algorithms("*", a), 2);
	assert_int_equal(a[0], KEYD_ALG_EC_P256);
	assert_int_equal(keyd_preferred_algorithms("rsa-4096:*", a), 3);
	assert_int_equal(a[0], KEYD_ALG_RSA_4096);
	assert_int_equal(a[1], KEYD_ALG_EC_P256);
	assert_int_equal(a[2], KEYD_ALG_RSA_2048);
	assert_int_equal(keyd_preferred_algorithms("rsa-2048:ec-p256:rsa-2048", a), 2);
	assert_int_equal(a[0], KEYD_ALG_RSA_2048);
	assert_int_equal(a[1], KEYD_ALG_EC_P256);
	assert_int_equal(keyd_preferred_algorithms("ed25519:ec-p384", a), 0);
	assert_int_equal(keyd_preferred_algorithms("", a), 0);
	assert_int_equal(keyd_preferred_algorithms("ed25519::rsa-4096", a), 1);
	assert_int_equal(a[0], KEYD_ALG_RSA_4096);
}

static void test_file_uri(void **state)
{
	char *p = NULL;

	(void)state;
	assert_int_equal(keyd_file_uri_path("file:///var/secrets/aziot/keyd/device-id", &p), 0);
	assert_string_equal(p, "/var/secrets/aziot/keyd/device-id");
	free(p);
	assert_int_equal(keyd_file_uri_path("file://localhost/a%20b/c", &p), 0);
	assert_string_equal(p, "/a b/c");
	free(p);
	assert_int_equal(keyd_file_uri_path("file://host/a", &p), -EINVAL);
	assert_int_equal(keyd_file_uri_path("/var/key", &p), -EINVAL);
	assert_int_equal(keyd_file_uri_path("file:///a%00b", &p), -EINVAL);
	assert_int_equal(keyd_file_uri_path("file:///a?x=1", &p), -EINVAL);
}

static void test_pkcs11_uri(void **state)
{
	struct keyd_p11_uri u = {0}, w = {0};

	(void)state;
	assert_int_equal(keyd_p11_uri_parse("pkcs11:token=Key%20pairs;object=est%2Did;slot-id=3"
					    "?pin-value=12%2634&module-name=softhsm2",
					    &u),
			 0);
	assert_string_equal(u.token, "Key pairs");
	assert_string_equal(u.object, "est-id");
	assert_true(u.has_slot_id);
	assert_int_equal(u.slot_id, 3);
	assert_string_equal(u.pin, "12&34");
	assert_null(u.serial);
	assert_int_equal(keyd_p11_uri_with_object(&u, "device-id", &w), 0);
	assert_string_equal(w.object, "device-id");
	assert_string_equal(w.token, "Key pairs");
	assert_string_equal(w.pin, "12&34");
	keyd_p11_uri_clear(&w);
	keyd_p11_uri_clear(&u);
	assert_null(u.token);

	/* aziot's base slot forms. */
	assert_int_equal(keyd_p11_uri_parse("pkcs11:slot-id=0?pin-value=1234", &u), 0);
	assert_true(u.has_slot_id);
	assert_int_equal(u.slot_id, 0);
	assert_null(u.object);
	keyd_p11_uri_clear(&u);
	assert_int_equal(keyd_p11_uri_parse("pkcs11:serial=abc;type=private;id=%01%02", &u), 0);
	assert_string_equal(u.serial, "abc");
	assert_null(u.pin);
	keyd_p11_uri_clear(&u);
	assert_int_equal(keyd_p11_uri_parse("pkcs11:", &u), 0);
	keyd_p11_uri_clear(&u);

	assert_int_equal(keyd_p11_uri_parse("file:///x", &u), -EINVAL);
	assert_int_equal(keyd_p11_uri_parse("pkcs11:token", &u), -EINVAL);
	assert_int_equal(keyd_p11_uri_parse("pkcs11:token=a;token=b", &u), -EINVAL);
	assert_int_equal(keyd_p11_uri_parse("pkcs11:slot-id=x", &u), -EINVAL);
	assert_int_equal(keyd_p11_uri_parse("pkcs11:slot-id=-1", &u), -EINVAL);
	assert_int_equal(keyd_p11_uri_parse("pkcs11:object=a%2", &u), -EINVAL);
	assert_int_equal(keyd_p11_uri_parse("pkcs11:object=a%00b", &u), -EINVAL);
	assert_int_equal(keyd_p11_uri_parse("pkcs11:token=t?pin-source=file:/pin", &u),
			 -EOPNOTSUPP);
	assert_null(u.token);
}

/* --- handles ------------------------------------------------------------- */

struct mac_key {
	uint8_t key[32];
};

static int test_mac(void *ctx, const void *data, size_t len, uint8_t ret[32])
{
	struct mac_key *k = ctx;

	return hash_hmac_sha256(k->key, sizeof(k->key), data, len, ret);
}

static struct mac_key key_a = {{1, 2, 3}}, key_b = {{9, 9, 9}};

static __attribute__((noinline)) char *make(enum keyd_id_kind kind, const char *id)
{
	struct keyd_id kid = {.kind = kind, .id = (char *)id};
	char *h = NULL;

	assert_int_equal(keyd_handle_make(test_mac, &key_a, &kid, &h), 0);
	return h;
}

/* The SR part of a handle, decoded. */
static char *sr_of(const char *handle)
{
	_cleanup_buf_ struct buf b = {0};
	const char *amp = strchr(handle, '&');

	buf_init(&b, 0);
	assert_true(strneq(handle, "sr=", 3));
	assert_non_null(amp);
	assert_int_equal(base64_decode(&b, handle + 3, (size_t)(amp - handle - 3), 0, NULL), 0);
	return buf_steal(&b, NULL);
}

static void test_handle_round_trip(void **state)
{
	_cleanup_free_ char *h1 = NULL, *h2 = NULL, *hd = NULL, *sr = NULL;
	struct keyd_id id = {0};
	uint8_t data[] = {0, 1, 255};
	struct keyd_id derived = {.kind = KEYD_ID_DERIVED, .data = data, .data_len = 3};

	(void)state;
	h1 = make(KEYD_ID_KEY_PAIR, "device-id");
	h2 = make(KEYD_ID_KEY_PAIR, "device-id");
	/* A fresh nonce every time: two handles for one key differ. */
	assert_string_not_equal(h1, h2);
	sr = sr_of(h1);
	/* aziot's SR layout exactly, up to the nonce. */
	{
		static const char head[] = "{\"key_id\":{\"KeyPair\":\"device-id\"},\"nonce\":\"";

		assert_memory_equal(sr, head, strlen(head));
		assert_int_equal(strlen(sr), strlen(head) + 88 + 2);
		assert_string_equal(sr + strlen(sr) - 2, "\"}");
	}

	assert_int_equal(keyd_handle_parse(test_mac, &key_a, h1, &id), 0);
	assert_int_equal(id.kind, KEYD_ID_KEY_PAIR);
	assert_string_equal(id.id, "device-id");
	keyd_id_clear(&id);

	free(h2);
	h2 = make(KEYD_ID_KEY, "sym\"key\\");
	assert_int_equal(keyd_handle_parse(test_mac, &key_a, h2, &id), 0);
	assert_int_equal(id.kind, KEYD_ID_KEY);
	assert_string_equal(id.id, "sym\"key\\");
	keyd_id_clear(&id);

	derived.base_handle = h2;
	assert_int_equal(keyd_handle_make(test_mac, &key_a, &derived, &hd), 0);
	free(sr);
	sr = sr_of(hd);
	assert_memory_equal(sr, "{\"key_id\":{\"Derived\":[\"sr=", 26);
	assert_non_null(strstr(sr, "\",[0,1,255]]},\"nonce\":\""));
	assert_int_equal(keyd_handle_parse(test_mac, &key_a, hd, &id), 0);
	assert_int_equal(id.kind, KEYD_ID_DERIVED);
	assert_string_equal(id.base_handle, h2);
	assert_int_equal(id.data_len, 3);
	assert_memory_equal(id.data, data, 3);
	keyd_id_clear(&id);
}

/* A handle made by hand the way the Rust keyd does (SR text, then MAC). */
static char *handle_for_sr(const struct mac_key *k, const char *sr)
{
	_cleanup_buf_ struct buf b = {0};
	uint8_t mac[32];

	buf_init(&b, 0);
	assert_int_equal(hash_hmac_sha256(k->key, sizeof(k->key), sr, strlen(sr), mac), 0);
	assert_int_equal(buf_append_str(&b, "sr="), 0);
	assert_int_equal(base64_encode(&b, sr, strlen(sr), 0), 0);
	assert_int_equal(buf_append_str(&b, "&sig="), 0);
	assert_int_equal(base64_encode(&b, mac, sizeof(mac), 0), 0);
	return buf_steal(&b, NULL);
}

static void test_handle_aziot_format(void **state)
{
	_cleanup_free_ char *h = NULL;
	struct keyd_id id = {0};

	(void)state;
	h = handle_for_sr(&key_a, "{\"key_id\":{\"Key\":\"aziot_identityd_master_id\"},\"nonce\":"
				  "\"AAAA\"}");
	assert_int_equal(keyd_handle_parse(test_mac, &key_a, h, &id), 0);
	assert_int_equal(id.kind, KEYD_ID_KEY);
	assert_string_equal(id.id, "aziot_identityd_master_id");
	keyd_id_clear(&id);
}

static void expect_rejected(const struct mac_key *k, const char *h)
{
	struct keyd_id id = {0};

	assert_int_equal(keyd_handle_parse(test_mac, (void *)k, h, &id), -EBADMSG);
	assert_null(id.id);
}

static void test_handle_forgeries(void **state)
{
	_cleanup_free_ char *h = NULL, *t = NULL, *forged = NULL, *other_sr = NULL;
	_cleanup_buf_ struct buf big = {0};
	char *amp;

	(void)state;
	h = make(KEYD_ID_KEY_PAIR, "device-id");

	/* Made with another key. */
	expect_rejected(&key_b, h);

	/* Any altered character of the SR or of the MAC. */
	t = strdup(h);
	for (size_t i = 3; t[i]; i++) {
		char orig = t[i];

		if (t[i] == '&' || t[i] == '=' || (t[i] == 's' && t[i + 1] == 'i'))
			continue;
		t[i] = t[i] == 'A' ? 'B' : 'A';
		expect_rejected(&key_a, t);
		t[i] = orig;
	}

	/* The MAC of one handle on the SR of another key id. */
	other_sr =
	    handle_for_sr(&key_b, "{\"key_id\":{\"KeyPair\":\"est-id\"},\"nonce\":\"AAAA\"}");
	amp = strchr(other_sr, '&');
	free(t);
	t = malloc(strlen(h) + strlen(other_sr) + 1);
	assert_non_null(t);
	memcpy(t, other_sr, (size_t)(amp - other_sr));
	memcpy(t + (amp - other_sr), strchr(h, '&'), strlen(strchr(h, '&')) + 1);
	expect_rejected(&key_a, t);

	/* A valid MAC over an SR that is not a key id (only keyd makes MACs,
	 * but the decoder must still refuse nonsense). */
	forged = handle_for_sr(&key_a, "{\"key_id\":{\"Secret\":\"x\"},\"nonce\":\"\"}");
	expect_rejected(&key_a, forged);
	free(forged);
	forged = handle_for_sr(&key_a, "{\"key_id\":{\"Derived\":[\"x\",[256]]},\"nonce\":\"\"}");
	expect_rejected(&key_a, forged);
	free(forged);
	forged = handle_for_sr(&key_a, "[]");
	expect_rejected(&key_a, forged);

	/* Malformed. */
	expect_rejected(&key_a, "");
	expect_rejected(&key_a, "device-id");
	expect_rejected(&key_a, "sr=&sig=");
	expect_rejected(&key_a, strchr(h, '&') + 1);
	free(t);
	t = strndup(h, (size_t)(strchr(h, '&') - h));
	expect_rejected(&key_a, t);
	free(t);
	t = strdup(h);
	t[strlen(t) - 1] = '\0'; /* padding removed */
	expect_rejected(&key_a, t);
	buf_init(&big, 0);
	for (int i = 0; i < KEYD_HANDLE_MAX / 4 + 1; i++)
		assert_int_equal(buf_append_str(&big, "AAAA"), 0);
	expect_rejected(&key_a, buf_str(&big));
}

/* --- AES-256-GCM --------------------------------------------------------- */

static void test_aead_vectors(void **state)
{
	/* GCM specification test case 14: 256-bit zero key, 96-bit zero IV. */
	static const uint8_t key[32], iv[12], pt[16];
	static const uint8_t ct[16] = {0xce, 0xa7, 0x40, 0x3d, 0x4d, 0x60, 0x6b, 0x6e,
				       0x07, 0x4e, 0xc5, 0xd3, 0xba, 0xf3, 0x9d, 0x18};
	static const uint8_t tag[16] = {0xd0, 0xd1, 0xc8, 0xa7, 0x99, 0x99, 0x6b, 0xf0,
					0x26, 0x5b, 0x98, 0xb5, 0xd4, 0x8a, 0xb9, 0x19};
	_cleanup_buf_ struct buf out = {0}, back = {0};
	uint8_t v1[33];
	struct err e = {0};

	(void)state;
	buf_init(&out, 0);
	buf_init(&back, 0);
	assert_int_equal(keyd_aead(key, 32, true, iv, 12, NULL, 0, pt, 16, &out, &e), 0);
	assert_int_equal(out.len, 33);
	assert_int_equal((uint8_t)out.data[0], 0x02);
	assert_memory_equal(out.data + 1, ct, 16);
	assert_memory_equal(out.data + 17, tag, 16);

	assert_int_equal(keyd_aead(key, 32, false, iv, 12, NULL, 0, out.data, out.len, &back, &e),
			 0);
	assert_int_equal(back.len, 16);
	assert_memory_equal(back.data, pt, 16);

	/* iotedge 1.1's version 1: tag first. */
	v1[0] = 0x01;
	memcpy(v1 + 1, tag, 16);
	memcpy(v1 + 17, ct, 16);
	buf_reset(&back);
	assert_int_equal(keyd_aead(key, 32, false, iv, 12, NULL, 0, v1, 33, &back, &e), 0);
	assert_memory_equal(back.data, pt, 16);

	/* Altered ciphertext, wrong AAD, unknown version, too short. */
	out.data[5] ^= 1;
	buf_reset(&back);
	assert_int_equal(keyd_aead(key, 32, false, iv, 12, NULL, 0, out.data, out.len, &back, &e),
			 -EINVAL);
	assert_string_equal(e.msg, "parameter \"ciphertext\" has an invalid value\ncaused by: it "
				   "does not authenticate with this key, IV and AAD");
	assert_int_equal(back.len, 0);
	out.data[5] ^= 1;
	err_clear(&e);
	assert_int_equal(keyd_aead(key, 32, false, iv, 12, "x", 1, out.data, out.len, &back, &e),
			 -EINVAL);
	err_clear(&e);
	out.data[0] = 0x03;
	assert_int_equal(keyd_aead(key, 32, false, iv, 12, NULL, 0, out.data, out.len, &back, &e),
			 -EINVAL);
	assert_string_equal(e.msg, "parameter \"ciphertext\" has an invalid value\ncaused by: "
				   "unknown version 3");
	err_clear(&e);
	assert_int_equal(keyd_aead(key, 32, false, iv, 12, NULL, 0, out.data, 16, &back, &e),
			 -EINVAL);
	assert_string_equal(e.msg, "parameter \"ciphertext\" has an invalid value\ncaused by: "
				   "malformed ciphertext");
	err_clear(&e);
	assert_int_equal(keyd_aead(key, 16, true, iv, 12, NULL, 0, pt, 16, &back, &e), -EINVAL);
	assert_string_equal(e.msg, "a parameter has an invalid value\ncaused by: AEAD needs a "
				   "32-byte key; this key has 16 bytes");
}

/* --- the file store ---------------------------------------------------------- */

static struct keyd_store *new_store(void)
{
	struct keyd_settings s = {0};
	struct keyd_store *st = NULL;
	struct err e = {0};
	char home[128];

	snprintf(home, sizeof(home), "%s/home", tmpdir);
	s.homedir = home;
	assert_int_equal(keyd_store_new(&s, &st, &e), 0);
	return st;
}

static void key_file(const char *id, char *path, size_t n)
{
	_cleanup_free_ char *name = NULL;

	assert_int_equal(keyd_key_file_name(id, &name), 0);
	snprintf(path, n, "%s/home/keys/%s", tmpdir, name);
}

static void test_store_files(void **state)
{
	struct keyd_store *st;
	struct err e = {0};
	struct stat sb;
	char path[256], stale[256];
	enum keyd_alg ec = KEYD_ALG_EC_P256;
	uint8_t mac1[32], mac2[32];
	_cleanup_free_ char *value = NULL;
	int fd;

	(void)state;
	st = new_store();
	/* The handle key exists from the start, 32 bytes, 0600. */
	key_file(KEYD_HANDLE_KEY_ID, path, sizeof(path));
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_size, 32);
	assert_int_equal(sb.st_mode & 07777, 0600);
	snprintf(path, sizeof(path), "%s/home/keys", tmpdir);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0700);

	/* A key pair: PKCS#8 PEM, 0600, created once. */
	assert_int_equal(keyd_store_create_key_pair(st, "device-id", &ec, 1, &e), 0);
	key_file("device-id", path, sizeof(path));
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0600);
	{
		char head[28] = {0};

		fd = open(path, O_RDONLY | O_CLOEXEC);
		assert_true(fd >= 0);
		assert_int_equal(read(fd, head, 27), 27);
		close(fd);
		assert_string_equal(head, "-----BEGIN PRIVATE KEY-----");
	}
	assert_int_equal(keyd_store_key_pair_parameter(st, "device-id", "algorithm", &value, &e),
			 0);
	assert_string_equal(value, "ECDSA");

	/* Symmetric: create is idempotent, import overwrites. */
	assert_int_equal(keyd_store_create_key(st, "sym", false, &e), 0);
	assert_int_equal(keyd_store_hmac(st, "sym", "m", 1, mac1, &e), 0);
	assert_int_equal(keyd_store_create_key(st, "sym", false, &e), 0);
	assert_int_equal(keyd_store_hmac(st, "sym", "m", 1, mac2, &e), 0);
	assert_memory_equal(mac1, mac2, 32);
	assert_int_equal(keyd_store_import_key(st, "sym", "0123456789", 10, false, &e), 0);
	assert_int_equal(keyd_store_hmac(st, "sym", "m", 1, mac2, &e), 0);
	assert_int_equal(hash_hmac_sha256("0123456789", 10, "m", 1, mac1), 0);
	assert_memory_equal(mac1, mac2, 32);

	/* Not found, wrong kind. */
	assert_int_equal(keyd_store_load_key(st, "nope", &e), -ENOENT);
	assert_string_equal(e.msg, "a parameter has an invalid value\ncaused by: key \"nope\" not "
				   "found");
	err_clear(&e);
	assert_int_equal(keyd_store_load_key_pair(st, "nope", &e), -ENOENT);
	assert_string_equal(e.msg, "a parameter has an invalid value\ncaused by: key pair \"nope\" "
				   "not found");
	err_clear(&e);
	assert_int_equal(keyd_store_load_key_pair(st, "sym", &e), -EINVAL);
	assert_string_equal(e.msg, "a parameter has an invalid value\ncaused by: \"sym\" is not a "
				   "key pair");
	err_clear(&e);
	assert_int_equal(keyd_store_load_key(st, "device-id", &e), -EINVAL);
	assert_string_equal(e.msg,
			    "a parameter has an invalid value\ncaused by: \"device-id\" is a "
			    "key pair, not a symmetric key");
	err_clear(&e);

	/* Move and delete. */
	assert_int_equal(keyd_store_move_key_pair(st, "device-id", "device-id-2", &e), 0);
	assert_int_equal(keyd_store_load_key_pair(st, "device-id-2", &e), 0);
	assert_int_equal(keyd_store_load_key_pair(st, "device-id", &e), -ENOENT);
	err_clear(&e);
	assert_int_equal(keyd_store_move_key_pair(st, "device-id", "x", &e), -ENOENT);
	err_clear(&e);
	assert_int_equal(keyd_store_delete_key_pair(st, "device-id-2", &e), 0);
	assert_int_equal(keyd_store_delete_key_pair(st, "device-id-2", &e), 0);
	assert_int_equal(keyd_store_load_key_pair(st, "device-id-2", &e), -ENOENT);
	err_clear(&e);
	keyd_store_free(st);

	/* A temporary left by a crash is removed at the next start; the
	 * handle key is the same one. */
	snprintf(stale, sizeof(stale), "%s/home/keys/.deviceid-x.key.AbC123", tmpdir);
	fd = open(stale, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	close(fd);
	st = new_store();
	assert_int_equal(stat(stale, &sb), -1);
	keyd_store_free(st);
}

static void test_store_handle_key_persists(void **state)
{
	_cleanup_free_ char *h = NULL;
	struct keyd_id kid = {.kind = KEYD_ID_KEY, .id = (char *)"sym"};
	struct keyd_id id = {0};
	struct keyd_store *st;

	(void)state;
	st = new_store();
	assert_int_equal(keyd_handle_make(keyd_store_handle_mac, st, &kid, &h), 0);
	keyd_store_free(st);
	/* Handles survive a restart. */
	st = new_store();
	assert_int_equal(keyd_handle_parse(keyd_store_handle_mac, st, h, &id), 0);
	assert_string_equal(id.id, "sym");
	keyd_id_clear(&id);
	keyd_store_free(st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_file_names),
	    cmocka_unit_test(test_preferred_algorithms),
	    cmocka_unit_test(test_file_uri),
	    cmocka_unit_test(test_pkcs11_uri),
	    cmocka_unit_test(test_handle_round_trip),
	    cmocka_unit_test(test_handle_aziot_format),
	    cmocka_unit_test(test_handle_forgeries),
	    cmocka_unit_test(test_aead_vectors),
	    cmocka_unit_test_setup_teardown(test_store_files, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_store_handle_key_persists, setup_dir,
					    teardown_dir),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
