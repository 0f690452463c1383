/* SPDX-License-Identifier: MIT */
/* certd: aziot's certificate file names, the settings (and their exact
 * errors), PEM and CSR input (and what is refused), the certificate built
 * from a CSR (serial, validity and its caps, names, SKID/AKID, copied
 * extensions, a key that does not match), and the file store. Signing
 * keys are software keys here; the integration test signs through keyd. */
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

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "common/fs.h"
#include "device/certd/certd.h"

/* 2026-01-01T00:00:00Z */
#define NOW ((time_t)1767225600)

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
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/edgeid-test-certd-XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_dir(void **state)
{
	(void)state;
	nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return 0;
}

/* --- helpers: keys, CSRs, PEM ---------------------------------------------------- */

static EVP_PKEY *ec_key(void)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");

	assert_non_null(k);
	return k;
}

/* A CSR for key with subject CN=cn and the extensions "name=value" given
 * (NULL-terminated list; may be NULL). */
static X509_REQ *make_csr(EVP_PKEY *key, const char *cn, const char *const *exts)
{
	X509_REQ *req = X509_REQ_new();
	X509_NAME *name = X509_REQ_get_subject_name(req);
	STACK_OF(X509_EXTENSION) *sk = sk_X509_EXTENSION_new_null();

	assert_int_equal(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
						    (const unsigned char *)cn, -1, -1, 0),
			 1);
	assert_int_equal(X509_REQ_set_pubkey(req, key), 1);
	for (size_t i = 0; exts && exts[i]; i++) {
		char n[64];
		const char *eq = strchr(exts[i], '=');
		X509_EXTENSION *x;

		snprintf(n, sizeof(n), "%.*s", (int)(eq - exts[i]), exts[i]);
		x = X509V3_EXT_conf(NULL, NULL, n, eq + 1);
		assert_non_null(x);
		sk_X509_EXTENSION_push(sk, x);
	}
	if (sk_X509_EXTENSION_num(sk) > 0)
		assert_int_equal(X509_REQ_add_extensions(req, sk), 1);
	sk_X509_EXTENSION_pop_free(sk, X509_EXTENSION_free);
	assert_true(X509_REQ_sign(req, key, EVP_sha256()) > 0);
	return req;
}

static char *csr_pem(X509_REQ *req)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *data, *out;
	long len;

	assert_int_equal(PEM_write_bio_X509_REQ(bio, req), 1);
	len = BIO_get_mem_data(bio, &data);
	out = strndup(data, (size_t)len);
	BIO_free(bio);
	return out;
}

static char *cert_pem(X509 *x)
{
	struct buf b;
	char *out;

	buf_init(&b, 0);
	assert_int_equal(certd_pem_encode(x, NULL, &b), 0);
	out = buf_steal(&b, NULL);
	return out;
}

/* A CA certificate for key, self-signed by certd_issue_cert, valid days. */
static X509 *make_ca(EVP_PKEY *key, const char *cn, unsigned days)
{
	static const char *const exts[] = {"basicConstraints=critical,CA:TRUE", NULL};
	X509_REQ *req = make_csr(key, cn, exts);
	struct certd_issue_params p = {.csr = req, .key = key, .expiry_days = days, .now = NOW};
	struct err e = {0};
	X509 *ca = NULL;

	assert_int_equal(certd_issue_cert(&p, &ca, &e), 0);
	X509_REQ_free(req);
	return ca;
}

static char *ext_text(X509 *x, int nid)
{
	int i = X509_get_ext_by_NID(x, nid, -1);
	BIO *bio;
	char *data, *out;
	long len;

	if (i < 0)
		return NULL;
	bio = BIO_new(BIO_s_mem());
	assert_int_equal(X509V3_EXT_print(bio, X509_get_ext(x, i), 0, 0), 1);
	len = BIO_get_mem_data(bio, &data);
	out = strndup(data, (size_t)len);
	BIO_free(bio);
	return out;
}

static time_t asn1_time(const ASN1_TIME *t)
{
	struct tm tm;

	assert_int_equal(ASN1_TIME_to_tm(t, &tm), 1);
	return timegm(&tm);
}

/* --- names ------------------------------------------------------------------------- */

static void test_file_names(void **state)
{
	static const struct {
		const char *id, *name;
	} cases[] = {
	    {"device-id",
	     "deviceid-bd732105ef89cf8edd2606a5309c8a26b7b5599a4e124a0fe6199b6b2f60e655.cer"},
	    {"local-ca",
	     "localca-f71a8ad7034763bddef5cd1be2038a6b758374a08a83e88a979839841e5294d4.cer"},
	    {"aziot-edged-ca",
	     "aziotedgedca-86f154be7ff14480027f0d00c59c223db6d9e4ab0b559fc523cca36a7c973d6d.cer"},
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		_cleanup_free_ char *got = NULL;

		assert_int_equal(certd_cert_file_name(cases[i].id, &got), 0);
		assert_string_equal(got, cases[i].name);
	}
}

static void test_utf8_prefix(void **state)
{
	char a70[71], a64[65];
	/* aziot's own test: 63 'a', 'á', 'a' is cut after the 'á'. */
	const char *boundary =
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\xc3\xa1"
	    "a";
	_cleanup_free_ char *p1 = NULL, *p2 = NULL, *p3 = NULL;

	(void)state;
	memset(a70, 'a', 70);
	a70[70] = '\0';
	memset(a64, 'a', 64);
	a64[64] = '\0';
	p1 = certd_utf8_prefix(a70, CERTD_CN_MAX);
	assert_string_equal(p1, a64);
	p2 = certd_utf8_prefix(boundary, CERTD_CN_MAX);
	assert_int_equal(strlen(p2), 65);
	assert_memory_equal(p2, boundary, 65);
	p3 = certd_utf8_prefix("short", CERTD_CN_MAX);
	assert_string_equal(p3, "short");
}

/* --- settings --------------------------------------------------------------------- */

static int parse_text(const char *text, const char *root, struct certd_settings *ret, struct err *e)
{
	const char *names[] = {"config.toml"};
	const char *texts[] = {text};
	struct daemon_config *c = NULL;
	int r;

	r = daemon_config_load_texts(names, texts, 1, &c, e);
	assert_int_equal(r, 0);
	r = certd_settings_parse(c, root, ret, e);
	daemon_config_free(c);
	return r;
}

static void test_settings(void **state)
{
	const char *text =
	    "homedir_path = \"/var/lib/aziot/certd\"\n"
	    "[cert_issuance.est]\n"
	    "trusted_certs = [\"est-server-ca-1\"]\n"
	    "[cert_issuance.local_ca]\n"
	    "cert = \"local-ca\"\n"
	    "pk = \"local-ca-key\"\n"
	    "[cert_issuance.device-id]\n"
	    "method = \"est\"\n"
	    "url = \"https://est.example.com/.well-known/est\"\n"
	    "[cert_issuance.\"mod.a\"]\n"
	    "method = \"local_ca\"\n"
	    "expiry_days = 365\n"
	    "subject = { O = \"Org\", CN = \"a\", L = \"AQ\" }\n"
	    "[cert_issuance.edge]\n"
	    "method = \"self_signed\"\n"
	    "common_name = "
	    "\"0123456789012345678901234567890123456789012345678901234567890123456\"\n"
	    "[preloaded_certs]\n"
	    "est-server-ca-1 = \"file:///var/secrets/est%20ca.pem\"\n"
	    "trust-bundle = [\"est-server-ca-1\", \"edge\"]\n"
	    "[endpoints]\n"
	    "aziot_keyd = \"unix:///run/k.sock\"\n";
	struct certd_settings s;
	const struct certd_issuance *iss;
	const struct certd_preloaded *pc;
	struct err e = {0};

	(void)state;
	assert_int_equal(parse_text(text, "/r", &s, &e), 0);
	assert_string_equal(s.homedir, "/r/var/lib/aziot/certd");
	assert_string_equal(s.certs_dir, "/r/var/lib/aziot/certd/certs");
	assert_string_equal(s.keyd_socket, "/r/run/k.sock");
	assert_string_equal(s.local_ca_cert, "local-ca");
	assert_string_equal(s.local_ca_pk, "local-ca-key");
	assert_true(s.has_est);
	assert_int_equal(s.n_issuance, 3);

	iss = certd_settings_issuance(&s, "device-id");
	assert_non_null(iss);
	assert_int_equal(iss->method, CERTD_METHOD_EST);
	assert_int_equal(iss->expiry_days, CERTD_EXPIRY_DAYS_DEFAULT);
	assert_int_equal(iss->n_subject, 0);

	/* A subject table: fields in bytewise order, whatever the file says. */
	iss = certd_settings_issuance(&s, "mod.a");
	assert_non_null(iss);
	assert_int_equal(iss->method, CERTD_METHOD_LOCAL_CA);
	assert_int_equal(iss->expiry_days, 365);
	assert_int_equal(iss->n_subject, 3);
	assert_string_equal(iss->subject[0].field, "CN");
	assert_string_equal(iss->subject[1].field, "L");
	assert_string_equal(iss->subject[2].field, "O");
	assert_string_equal(iss->subject[2].value, "Org");

	/* common_name: one CN, cut to 64 characters. */
	iss = certd_settings_issuance(&s, "edge");
	assert_int_equal(iss->method, CERTD_METHOD_SELF_SIGNED);
	assert_int_equal(iss->n_subject, 1);
	assert_string_equal(iss->subject[0].field, "CN");
	assert_int_equal(strlen(iss->subject[0].value), 64);

	pc = certd_settings_preloaded(&s, "est-server-ca-1");
	assert_string_equal(pc->path, "/r/var/secrets/est ca.pem");
	pc = certd_settings_preloaded(&s, "trust-bundle");
	assert_null(pc->path);
	assert_int_equal(pc->n_ids, 2);
	assert_string_equal(pc->ids[1], "edge");
	assert_null(certd_settings_issuance(&s, "nope"));
	certd_settings_clear(&s);

	/* Nothing at all: no homedir, keyd at its default place. */
	assert_int_equal(parse_text("", NULL, &s, &e), 0);
	assert_null(s.homedir);
	assert_null(s.certs_dir);
	assert_string_equal(s.keyd_socket, "/run/aziot/keyd.sock");
	certd_settings_clear(&s);
}

static void expect_settings_error(const char *text, const char *msg)
{
	struct certd_settings s;
	struct err e = {0};

	assert_int_equal(parse_text(text, NULL, &s, &e), -EINVAL);
	assert_string_equal(e.msg, msg);
}

static void test_settings_errors(void **state)
{
	(void)state;
	expect_settings_error("homedir_path = \"var/lib\"\n",
			      "config.toml:1:16: homedir_path: expected an absolute path, got "
			      "\"var/lib\"");
	expect_settings_error("[cert_issuance]\nx = 3\n",
			      "config.toml:2:5: cert_issuance.x: expected a table with a method, "
			      "got a number");
	expect_settings_error("[cert_issuance.x]\nexpiry_days = 3\n",
			      "config.toml:1:1: cert_issuance.x.method: missing");
	expect_settings_error("[cert_issuance.x]\nmethod = \"est\"\nexpiry_days = \"3\"\n",
			      "config.toml:3:15: cert_issuance.x.expiry_days: expected an integer, "
			      "got a string");
	expect_settings_error(
	    "[cert_issuance.x]\nmethod = \"est\"\nurl = 3\n",
	    "config.toml:3:7: cert_issuance.x.url: expected a string, got a number");
	expect_settings_error(
	    "[cert_issuance.x]\nmethod = \"local_ca\"\ncommon_name = \"a\"\nsubject = { CN = "
	    "\"b\" }\n",
	    "config.toml:4:11: cert_issuance.x.subject: common_name and subject are both set; "
	    "give one of them");
	expect_settings_error(
	    "[cert_issuance.x]\nmethod = \"local_ca\"\nsubject = { C = \"USA\" }\n",
	    "config.toml:3:11: cert_issuance.x.subject: C = \"USA\" is not a valid "
	    "value for that field");
	expect_settings_error("[cert_issuance.local_ca]\ncert = \"a\"\npk = \"b\"\nkey = \"c\"\n",
			      "config.toml:4:7: cert_issuance.local_ca.key: unknown setting "
			      "(expected cert or pk)");
	expect_settings_error("[preloaded_certs]\na = [\"b\", 3]\n",
			      "config.toml:2:11: preloaded_certs.a[1]: expected a certificate id, "
			      "got a number");
	expect_settings_error("[preloaded_certs]\na = [\"a\"]\n",
			      "config.toml:2:6: preloaded_certs.a[0]: \"a\" is itself a list; a "
			      "list's members must be certificates");
	expect_settings_error(
	    "[endpoints]\naziot_keyd = \"http://x\"\n",
	    "config.toml:2:14: endpoints.aziot_keyd: expected a unix:///path URI, "
	    "got \"http://x\"");
}

/* --- PEM and CSR input ------------------------------------------------------------------ */

static void expect_pem_error(const char *text, const char *msg)
{
	STACK_OF(X509) *chain = NULL;
	struct err e = {0};

	assert_int_equal(certd_pem_chain_parse(text, strlen(text), &chain, &e), -EINVAL);
	assert_null(chain);
	assert_string_equal(e.msg, msg);
}

static void test_pem_chain(void **state)
{
	EVP_PKEY *k = ec_key();
	X509 *a = make_ca(k, "a", 10), *b = make_ca(k, "b", 10);
	_cleanup_free_ char *pa = cert_pem(a), *pb = cert_pem(b), *text = NULL, *key = NULL;
	STACK_OF(X509) *chain = NULL;
	struct err e = {0};
	BIO *bio;
	char *data;
	long len;

	(void)state;
	/* Two certificates with RFC 7468 explanatory text around them. */
	assert_true(asprintf(&text, "Subject: a\n%s\nSubject: b\n%s\n", pa, pb) > 0);
	assert_int_equal(certd_pem_chain_parse(text, strlen(text), &chain, &e), 0);
	assert_int_equal(sk_X509_num(chain), 2);
	assert_int_equal(X509_cmp(sk_X509_value(chain, 0), a), 0);
	assert_int_equal(X509_cmp(sk_X509_value(chain, 1), b), 0);
	sk_X509_pop_free(chain, X509_free);

	expect_pem_error("", "the text holds no PEM certificate (expected \"-----BEGIN "
			     "CERTIFICATE-----\")");
	bio = BIO_new(BIO_s_mem());
	assert_int_equal(PEM_write_bio_PrivateKey(bio, k, NULL, NULL, 0, NULL, NULL), 1);
	len = BIO_get_mem_data(bio, &data);
	key = strndup(data, (size_t)len);
	BIO_free(bio);
	free(text);
	assert_true(asprintf(&text, "%s%s", pa, key) > 0);
	expect_pem_error(text, "PEM block 2 is a \"PRIVATE KEY\", not a \"CERTIFICATE\"");
	text[strlen(pa) + 40] = '\0'; /* cut inside the second block */
	expect_pem_error(text, "PEM block 2 is malformed (a BEGIN line without its END line, or "
			       "bad base64)");
	expect_pem_error("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
			 "certificate 1 is not a valid X.509 certificate");
	X509_free(a);
	X509_free(b);
	EVP_PKEY_free(k);
}

static void expect_csr_error(const char *text, const char *msg)
{
	X509_REQ *req = NULL;
	struct err e = {0};

	assert_int_equal(certd_csr_parse(text, strlen(text), &req, &e), -EINVAL);
	assert_null(req);
	assert_string_equal(e.msg, msg);
}

static void test_csr(void **state)
{
	static const char *const twice[] = {"extendedKeyUsage=clientAuth",
					    "extendedKeyUsage=serverAuth", NULL};
	EVP_PKEY *k = ec_key(), *other = ec_key();
	X509_REQ *req = make_csr(k, "leaf", NULL), *parsed = NULL;
	_cleanup_free_ char *pem = csr_pem(req), *dup = NULL, *forged = NULL, *two = NULL;
	X509_REQ *dreq;
	struct err e = {0};

	(void)state;
	assert_int_equal(certd_csr_parse(pem, strlen(pem), &parsed, &e), 0);
	assert_int_equal(EVP_PKEY_eq(X509_REQ_get0_pubkey(parsed), k), 1);
	X509_REQ_free(parsed);

	expect_csr_error("hello", "not a PEM certificate request (expected \"-----BEGIN "
				  "CERTIFICATE REQUEST-----\")");
	assert_true(asprintf(&two, "%s%s", pem, pem) > 0);
	expect_csr_error(two, "unexpected data after the certificate request");

	/* Signed, then its public key replaced: the signature no longer fits. */
	assert_int_equal(X509_REQ_set_pubkey(req, other), 1);
	forged = csr_pem(req);
	expect_csr_error(forged, "the CSR's signature does not verify with its public key");

	dreq = make_csr(k, "dup", twice);
	dup = csr_pem(dreq);
	expect_csr_error(dup, "the CSR requests the extension X509v3 Extended Key Usage twice");
	X509_REQ_free(dreq);
	X509_REQ_free(req);
	EVP_PKEY_free(k);
	EVP_PKEY_free(other);
}

/* --- issuing ------------------------------------------------------------------------------------ */

static void test_issue_by_ca(void **state)
{
	static const char *const exts[] = {"extendedKeyUsage=clientAuth",
					   "subjectAltName=DNS:leaf.local", NULL};
	static const struct certd_rdn subject[] = {{"CN", "override"}, {"O", "Org"}};
	EVP_PKEY *ca_key = ec_key(), *leaf_key = ec_key();
	X509 *ca = make_ca(ca_key, "ca", 365), *x = NULL, *y = NULL;
	X509_REQ *req = make_csr(leaf_key, "leaf", exts);
	struct certd_issue_params p = {
	    .csr = req,
	    .issuer = ca,
	    .key = ca_key,
	    .subject = subject,
	    .n_subject = 2,
	    .expiry_days = 10,
	    .now = NOW,
	};
	_cleanup_free_ char *eku = NULL, *san = NULL, *akid = NULL, *skid = NULL, *ca_skid = NULL;
	const ASN1_INTEGER *serial;
	unsigned char sbytes[32];
	BIGNUM *bn;
	char name[256];
	struct err e = {0};

	(void)state;
	assert_int_equal(certd_issue_cert(&p, &x, &e), 0);
	assert_int_equal(X509_get_version(x), X509_VERSION_3);
	assert_int_equal(X509_verify(x, ca_key), 1);
	assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(x), leaf_key), 1);
	X509_NAME_oneline(X509_get_subject_name(x), name, sizeof(name));
	assert_string_equal(name, "/CN=override/O=Org");
	X509_NAME_oneline(X509_get_issuer_name(x), name, sizeof(name));
	assert_string_equal(name, "/CN=ca");
	assert_int_equal(asn1_time(X509_get0_notBefore(x)), NOW);
	assert_int_equal(asn1_time(X509_get0_notAfter(x)), NOW + 10 * 86400);
	assert_int_equal(X509_get_signature_nid(x), NID_ecdsa_with_SHA256);

	/* 16 bytes, positive, never starting with a zero byte. */
	serial = X509_get0_serialNumber(x);
	bn = ASN1_INTEGER_to_BN(serial, NULL);
	assert_int_equal(BN_num_bytes(bn), 16);
	assert_int_equal(BN_bn2bin(bn, sbytes), 16);
	assert_int_equal(sbytes[0] & 0xc0, 0x40);
	assert_false(BN_is_negative(bn));
	BN_free(bn);

	eku = ext_text(x, NID_ext_key_usage);
	san = ext_text(x, NID_subject_alt_name);
	assert_string_equal(eku, "TLS Web Client Authentication");
	assert_string_equal(san, "DNS:leaf.local");
	skid = ext_text(x, NID_subject_key_identifier);
	ca_skid = ext_text(ca, NID_subject_key_identifier);
	akid = ext_text(x, NID_authority_key_identifier);
	assert_non_null(skid);
	assert_non_null(ca_skid);
	assert_non_null(akid);
	assert_non_null(strstr(akid, ca_skid));
	assert_string_not_equal(skid, ca_skid);

	/* Again: another serial. */
	assert_int_equal(certd_issue_cert(&p, &y, &e), 0);
	assert_int_not_equal(ASN1_INTEGER_cmp(X509_get0_serialNumber(x), X509_get0_serialNumber(y)),
			     0);

	X509_free(x);
	X509_free(y);
	X509_free(ca);
	X509_REQ_free(req);
	EVP_PKEY_free(ca_key);
	EVP_PKEY_free(leaf_key);
}

static void test_issue_validity(void **state)
{
	EVP_PKEY *ca_key = ec_key(), *leaf_key = ec_key();
	X509 *ca = make_ca(ca_key, "short", 2), *x = NULL;
	X509_REQ *req = make_csr(leaf_key, "leaf", NULL);
	struct certd_issue_params p = {.csr = req, .issuer = ca, .key = ca_key, .now = NOW};
	struct err e = {0};

	(void)state;
	/* The default 30 days, cut to the issuer's 2. */
	assert_int_equal(certd_issue_cert(&p, &x, &e), 0);
	assert_int_equal(asn1_time(X509_get0_notAfter(x)), NOW + 2 * 86400);
	X509_free(x);
	x = NULL;

	/* The issuer has expired. */
	p.now = NOW + 3 * 86400;
	assert_int_equal(certd_issue_cert(&p, &x, &e), -EKEYEXPIRED);
	assert_string_equal(e.msg, "the issuer's certificate expired on 2026-01-03T00:00:00Z");
	assert_null(x);

	/* Self-signed, with more days than there are until 9999. */
	p.issuer = NULL;
	p.key = leaf_key;
	p.now = NOW;
	p.expiry_days = UINT32_MAX;
	err_clear(&e);
	assert_int_equal(certd_issue_cert(&p, &x, &e), 0);
	assert_int_equal(asn1_time(X509_get0_notAfter(x)), (time_t)253402300799);
	assert_null(ext_text(x, NID_authority_key_identifier));
	assert_int_equal(X509_NAME_cmp(X509_get_subject_name(x), X509_get_issuer_name(x)), 0);
	X509_free(x);

	X509_free(ca);
	X509_REQ_free(req);
	EVP_PKEY_free(ca_key);
	EVP_PKEY_free(leaf_key);
}

static void test_issue_wrong_key(void **state)
{
	EVP_PKEY *ca_key = ec_key(), *leaf_key = ec_key(), *other = ec_key();
	X509 *ca = make_ca(ca_key, "ca", 30), *x = NULL;
	X509_REQ *req = make_csr(leaf_key, "leaf", NULL);
	struct certd_issue_params p = {.csr = req, .issuer = ca, .key = other, .now = NOW};
	static const struct certd_rdn bad[] = {{"C", "Portugal"}};
	struct err e = {0};

	(void)state;
	assert_int_equal(certd_issue_cert(&p, &x, &e), -EKEYREJECTED);
	assert_string_equal(e.msg, "the signing key is not the issuer certificate's key");
	p.issuer = NULL;
	err_clear(&e);
	assert_int_equal(certd_issue_cert(&p, &x, &e), -EKEYREJECTED);
	assert_string_equal(e.msg, "the signing key is not the CSR's key");
	p.key = leaf_key;
	p.subject = bad;
	p.n_subject = 1;
	err_clear(&e);
	assert_int_equal(certd_issue_cert(&p, &x, &e), -EINVAL);
	assert_string_equal(e.msg, "C = \"Portugal\" is not a valid value for that field");
	assert_null(x);
	X509_free(ca);
	X509_REQ_free(req);
	EVP_PKEY_free(ca_key);
	EVP_PKEY_free(leaf_key);
	EVP_PKEY_free(other);
}

/* --- the store ---------------------------------------------------------------------------------- */

static void test_store(void **state)
{
	char text[1024], home[128], path[256], pre[256];
	struct certd_settings s;
	struct buf b;
	struct err e = {0};
	struct stat st;

	(void)state;
	snprintf(pre, sizeof(pre), "%s/pre.pem", tmpdir);
	assert_int_equal(fs_write_atomic(pre, "PRE\n", 4, 0644, FS_KEEP_OWNER, FS_KEEP_GROUP, &e),
			 0);
	snprintf(home, sizeof(home), "%s/home", tmpdir);
	snprintf(text, sizeof(text),
		 "homedir_path = \"%s\"\n[preloaded_certs]\npre = \"file://%s\"\n"
		 "bundle = [\"pre\", \"missing\", \"mine\"]\nempty = [\"missing\"]\n",
		 home, pre);
	assert_int_equal(parse_text(text, NULL, &s, &e), 0);
	assert_int_equal(certd_store_setup(&s, &e), 0);
	snprintf(path, sizeof(path), "%s/certs", home);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);

	buf_init(&b, CERTD_PEM_MAX);
	assert_int_equal(certd_store_read(&s, "mine", &b, &e), -ENOENT);
	assert_int_equal(certd_store_write(&s, "mine", "MINE\n", 5, &e), 0);
	{
		_cleanup_free_ char *name = NULL;

		assert_int_equal(certd_cert_file_name("mine", &name), 0);
		snprintf(path, sizeof(path), "%s/certs/%s", home, name);
	}
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(certd_store_read(&s, "mine", &b, &e), 0);
	assert_string_equal(buf_str(&b), "MINE\n");

	/* A bundle: members in order, the missing one skipped. */
	buf_reset(&b);
	assert_int_equal(certd_store_read(&s, "bundle", &b, &e), 0);
	assert_string_equal(buf_str(&b), "PRE\nMINE\n");
	buf_reset(&b);
	assert_int_equal(certd_store_read(&s, "empty", &b, &e), -ENOENT);
	assert_int_equal(certd_store_write(&s, "bundle", "X", 1, &e), -EPERM);
	err_clear(&e);
	assert_int_equal(certd_store_delete(&s, "bundle", &e), -EPERM);

	/* A preloaded file is written in place, keeping its mode. */
	assert_int_equal(certd_store_write(&s, "pre", "NEW\n", 4, &e), 0);
	assert_int_equal(stat(pre, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0644);
	buf_reset(&b);
	assert_int_equal(certd_store_read(&s, "pre", &b, &e), 0);
	assert_string_equal(buf_str(&b), "NEW\n");

	assert_int_equal(certd_store_delete(&s, "mine", &e), 0);
	assert_int_equal(stat(path, &st), -1);
	assert_int_equal(certd_store_delete(&s, "mine", &e), 0);
	buf_free(&b);
	certd_settings_clear(&s);

	/* Without a homedir only preloaded ids exist. */
	assert_int_equal(parse_text("", NULL, &s, &e), 0);
	buf_init(&b, CERTD_PEM_MAX);
	assert_int_equal(certd_store_read(&s, "x", &b, &e), -ENOENT);
	err_clear(&e);
	assert_int_equal(certd_store_write(&s, "x", "X", 1, &e), -ENOENT);
	assert_string_equal(e.msg, "\"x\" is not preloaded and certd has no homedir_path to keep "
				   "certificates in");
	assert_int_equal(certd_store_delete(&s, "x", &e), 0);
	buf_free(&b);
	certd_settings_clear(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_file_names),
	    cmocka_unit_test(test_utf8_prefix),
	    cmocka_unit_test(test_settings),
	    cmocka_unit_test(test_settings_errors),
	    cmocka_unit_test(test_pem_chain),
	    cmocka_unit_test(test_csr),
	    cmocka_unit_test(test_issue_by_ca),
	    cmocka_unit_test(test_issue_validity),
	    cmocka_unit_test(test_issue_wrong_key),
	    cmocka_unit_test_setup_teardown(test_store, setup_dir, teardown_dir),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
