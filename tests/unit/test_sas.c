/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/buf.h"
#include "crypto/sas.h"

/* dps-protocol.md §2.4 and §2.6. */
#define GROUP_KEY                                                                                  \
	"8isrFI1sGsIlvvFSSFRiMfCNzv21fjbE/+ah/lSh3lF8e2YG1Te7w1KpZhJFFXJrqYKi9yegxkqIChbqOS9Egw=="
#define REG_ID "sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6"
#define DEVICE_KEY "Jsm0lyGpjaVYVP2g3FnmnmG9dI/9qU24wNoykUmermc="
#define SE 1700000000u
#define OTHER_KEY "c2VjcmV0LWtleS1ub3QtdGhlLXJpZ2h0LW9uZS4uLg=="

#define DPS_RESOURCE "0ne00000A0A/registrations/" REG_ID
#define HUB "myhub.azure-devices.net"

struct vector {
	const char *name;
	const char *resource; /* decoded */
	unsigned flags;
	const char *skn;
	const char *token;
};

static const struct vector vectors[] = {
    {"DPS (Node sym key)", DPS_RESOURCE, SAS_SKN_BEFORE_SE, "registration",
     "SharedAccessSignature sr=0ne00000A0A/registrations/sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6"
     "&sig=hUOH8hSLSay%2BbfE5WjQhRmpIvWZdSog5Tlv8EyKqBg4%3D&skn=registration&se=1700000000"},
    {"Hub device", HUB "/devices/dev1", SAS_SR_URL_ENCODE, NULL,
     "SharedAccessSignature sr=myhub.azure-devices.net%2Fdevices%2Fdev1"
     "&sig=K2ol0WGo3XQ9OjiirFsVwajTbNvxXcv%2FlHAzsYx2Bgg%3D&se=1700000000"},
    {"Hub module", HUB "/devices/dev1/modules/mod1", SAS_SR_URL_ENCODE, NULL,
     "SharedAccessSignature sr=myhub.azure-devices.net%2Fdevices%2Fdev1%2Fmodules%2Fmod1"
     "&sig=CfxFMRleXftOdIg3ebuxxmDuur8C2hyS2I4V%2FadWmF4%3D&se=1700000000"},
    {"Service (policy)", HUB, SAS_SKN_BEFORE_SE, "iothubowner",
     "SharedAccessSignature sr=myhub.azure-devices.net"
     "&sig=S37KlR5Nw%2FVRlEafNflN0IbdI7s%2BdNUVoiCO60IYlZs%3D&skn=iothubowner&se=1700000000"},
};

/* Parse text and verify it; the error lands in *e. */
static int check(const char *text, const char *key1, const char *key2,
		 const struct sas_verify_opts *opts, unsigned *ret_index, struct err *e)
{
	_cleanup_sas_token_ struct sas_token *t = NULL;
	int r;

	err_clear(e);
	r = sas_token_parse(text, strlen(text), &t, e);
	if (r < 0)
		return r;
	return sas_verify(t, key1, key2, opts, ret_index, e);
}

static struct sas_verify_opts opts_for(const char *resource)
{
	struct sas_verify_opts o = SAS_VERIFY_OPTS_INIT;

	o.resource = resource;
	o.now = SE;
	return o;
}

static void test_group_key_derivation(void **state)
{
	_cleanup_buf_ struct buf out = {0};
	struct err e = {0};

	(void)state;
	buf_init_secret(&out, 0);
	assert_int_equal(sas_derive_device_key(GROUP_KEY, REG_ID, &out, &e), 0);
	assert_string_equal(buf_str(&out), DEVICE_KEY);

	buf_reset(&out);
	assert_int_equal(sas_derive_device_key("not base64!", REG_ID, &out, &e), -EINVAL);
	assert_string_equal(e.msg, "group key: not valid base64 (at offset 3)");
	assert_int_equal(out.len, 0);
	err_clear(&e);
	assert_int_equal(sas_derive_device_key(GROUP_KEY, "", &out, &e), -EINVAL);
	assert_string_equal(e.msg, "key derivation: empty registration id");
}

/* The derived key signs tokens that verify: the two halves of §2.4 agree. */
static void test_group_key_signs_dps_token(void **state)
{
	_cleanup_buf_ struct buf key = {0};
	_cleanup_buf_ struct buf tok = {0};
	struct sas_verify_opts o = opts_for(DPS_RESOURCE);
	struct err e = {0};

	(void)state;
	buf_init_secret(&key, 0);
	buf_init(&tok, 0);
	assert_int_equal(sas_derive_device_key(GROUP_KEY, REG_ID, &key, &e), 0);
	assert_int_equal(sas_token_create(DPS_RESOURCE, buf_str(&key), SE, "registration",
					  SAS_SKN_BEFORE_SE, &tok, &e),
			 0);
	assert_string_equal(buf_str(&tok), vectors[0].token);
	o.key_name = "registration";
	assert_int_equal(check(buf_str(&tok), buf_str(&key), NULL, &o, NULL, &e), 0);
}

static void test_vectors_create(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(vectors); i++) {
		const struct vector *v = &vectors[i];
		_cleanup_buf_ struct buf tok = {0};
		struct err e = {0};

		buf_init(&tok, 0);
		assert_int_equal(
		    sas_token_create(v->resource, DEVICE_KEY, SE, v->skn, v->flags, &tok, &e), 0);
		if (!streq(buf_str(&tok), v->token))
			print_error("%s:\n  got  %s\n  want %s\n", v->name, buf_str(&tok),
				    v->token);
		assert_string_equal(buf_str(&tok), v->token);
	}
}

/* Default field order: sr, sig, se, skn — the same signature. */
static void test_create_default_order(void **state)
{
	_cleanup_buf_ struct buf tok = {0};
	struct err e = {0};

	(void)state;
	buf_init(&tok, 0);
	assert_int_equal(sas_token_create(HUB, DEVICE_KEY, SE, "iothubowner", 0, &tok, &e), 0);
	assert_string_equal(buf_str(&tok), "SharedAccessSignature sr=myhub.azure-devices.net"
					   "&sig=S37KlR5Nw%2FVRlEafNflN0IbdI7s%2BdNUVoiCO60IYlZs%3D"
					   "&se=1700000000&skn=iothubowner");
	buf_reset(&tok);
	assert_int_equal(sas_token_create(HUB "/devices/dev1", DEVICE_KEY, SE, NULL,
					  SAS_SR_URL_ENCODE | SAS_SR_LOWER_HEX, &tok, &e),
			 0);
	assert_true(strneq(
	    buf_str(&tok), "SharedAccessSignature sr=myhub.azure-devices.net%2fdevices%2fdev1&sig=",
	    strlen("SharedAccessSignature sr=myhub.azure-devices.net%2fdevices%2fdev1"
		   "&sig=")));
}

static void test_create_errors(void **state)
{
	_cleanup_buf_ struct buf tok = {0};
	struct err e = {0};

	(void)state;
	buf_init(&tok, 0);
	assert_int_equal(sas_token_create("a b/c", DEVICE_KEY, SE, NULL, 0, &tok, &e), -EINVAL);
	assert_string_equal(e.msg, "SAS token: resource \"a b/c\" must be URL-encoded to be sent");
	err_clear(&e);
	assert_int_equal(sas_token_create("", DEVICE_KEY, SE, NULL, 0, &tok, &e), -EINVAL);
	err_clear(&e);
	assert_int_equal(sas_token_create(HUB, "", SE, NULL, 0, &tok, &e), -EINVAL);
	assert_string_equal(e.msg, "SAS key: empty key");
	err_clear(&e);
	assert_int_equal(sas_token_create(HUB, DEVICE_KEY, SE, "", 0, &tok, &e), -EINVAL);
	err_clear(&e);
	assert_int_equal(sas_token_create(HUB, DEVICE_KEY, SE, NULL, SAS_SR_LOWER_HEX, &tok, &e),
			 -EINVAL);
	err_clear(&e);
	assert_int_equal(sas_token_create(HUB, DEVICE_KEY, SE, NULL, 1u << 7, &tok, &e), -EINVAL);
	assert_int_equal(tok.len, 0);
}

static void test_vectors_verify(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(vectors); i++) {
		const struct vector *v = &vectors[i];
		struct sas_verify_opts o = opts_for(v->resource);
		unsigned idx = 99;
		struct err e = {0};

		o.key_name = v->skn;
		assert_int_equal(check(v->token, DEVICE_KEY, NULL, &o, &idx, &e), 0);
		assert_int_equal(idx, 0);
		/* The secondary key matches too, and is reported as such. */
		assert_int_equal(check(v->token, OTHER_KEY, DEVICE_KEY, &o, &idx, &e), 0);
		assert_int_equal(idx, 1);
		/* Neither key. */
		assert_int_equal(check(v->token, OTHER_KEY, NULL, &o, &idx, &e), SAS_E_SIGNATURE);
		assert_string_equal(e.msg, "SAS token: signature does not match");
	}
}

static void test_parse_fields(void **state)
{
	_cleanup_sas_token_ struct sas_token *t = NULL;
	const char *text =
	    "sharedaccesssignature SIG=K2ol0WGo3XQ9OjiirFsVwajTbNvxXcv%2FlHAzsYx2Bgg%3D"
	    "&Se=1700000000&x-unknown=1&SR=myhub.azure-devices.net%2Fdevices%2Fdev1";
	struct sas_verify_opts o = opts_for(HUB "/devices/dev1");
	struct err e = {0};

	(void)state;
	assert_int_equal(sas_token_parse(text, strlen(text), &t, &e), 0);
	assert_string_equal(t->sr, "myhub.azure-devices.net%2Fdevices%2Fdev1");
	assert_string_equal(t->sig, "K2ol0WGo3XQ9OjiirFsVwajTbNvxXcv%2FlHAzsYx2Bgg%3D");
	assert_string_equal(t->se, "1700000000");
	assert_null(t->skn);
	assert_int_equal(t->expiry, SE);
	assert_int_equal(sas_verify(t, DEVICE_KEY, NULL, &o, NULL, &e), 0);

	/* A value keeps everything after the first '='. */
	sas_token_free(TAKE_PTR(t));
	text = "SharedAccessSignature sr=a=b&sig=x&se=1";
	assert_int_equal(sas_token_parse(text, strlen(text), &t, &e), 0);
	assert_string_equal(t->sr, "a=b");

	/* text need not be NUL-terminated: only len bytes are read. */
	sas_token_free(TAKE_PTR(t));
	text = "SharedAccessSignature sr=a&sig=x&se=12GARBAGE";
	assert_int_equal(sas_token_parse(text, strlen(text) - 7, &t, &e), 0);
	assert_int_equal(t->expiry, 12);
}

static void test_parse_rejections(void **state)
{
	static const struct {
		const char *text;
		const char *msg;
	} cases[] = {
	    {"", "SAS token: expected \"SharedAccessSignature sr=...&sig=...&se=...\""},
	    {"SharedAccessSignature",
	     "SAS token: expected \"SharedAccessSignature sr=...&sig=...&se=...\""},
	    {"Bearer sr=a&sig=b&se=1",
	     "SAS token: expected \"SharedAccessSignature sr=...&sig=...&se=...\""},
	    {"SharedAccessSignaturesr=a&sig=b&se=1",
	     "SAS token: expected \"SharedAccessSignature sr=...&sig=...&se=...\""},
	    {"SharedAccessSignature sr=a&sig=b&se=1&", "SAS token: empty field"},
	    {"SharedAccessSignature sr=a&&sig=b&se=1", "SAS token: empty field"},
	    {"SharedAccessSignature sr=a&sig&se=1", "SAS token: field \"sig\" has no '='"},
	    {"SharedAccessSignature sr=a&sig=b&se=1&SR=c", "SAS token: duplicate field \"sr\""},
	    {"SharedAccessSignature sr=a&sig=b&se=1&skn=x&Skn=y",
	     "SAS token: duplicate field \"skn\""},
	    {"SharedAccessSignature sr=a&sig=&se=1", "SAS token: field \"sig\" is empty"},
	    {"SharedAccessSignature sr=a&sig=b&se=1&skn=", "SAS token: field \"skn\" is empty"},
	    {"SharedAccessSignature sig=b&se=1", "SAS token: missing field \"sr\""},
	    {"SharedAccessSignature sr=a&se=1", "SAS token: missing field \"sig\""},
	    {"SharedAccessSignature sr=a&sig=b&skn=c", "SAS token: missing field \"se\""},
	    {"SharedAccessSignature sr=a&sig=b&se=17e8",
	     "SAS token: se: expected seconds since the epoch as a decimal number, got \"17e8\""},
	    {"SharedAccessSignature sr=a&sig=b&se=-1",
	     "SAS token: se: expected seconds since the epoch as a decimal number, got \"-1\""},
	    {"SharedAccessSignature sr=a&sig=b&se=+1",
	     "SAS token: se: expected seconds since the epoch as a decimal number, got \"+1\""},
	    {"SharedAccessSignature sr=a&sig=b&se=1700000000.5",
	     "SAS token: se: expected seconds since the epoch as a decimal number, got "
	     "\"1700000000.5\""},
	    {"SharedAccessSignature sr=a&sig=b&se=18446744073709551616",
	     "SAS token: se: expected seconds since the epoch as a decimal number, got "
	     "\"18446744073709551616\""},
	    {"SharedAccessSignature sr=a&sig=b&se=000000000000000000001",
	     "SAS token: se: expected seconds since the epoch as a decimal number, got "
	     "\"000000000000000000001\""},
	    {"SharedAccessSignature sr=a\tb&sig=b&se=1",
	     "SAS token: control character at offset 26"},
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		_cleanup_sas_token_ struct sas_token *t = NULL;
		struct err e = {0};
		int r = sas_token_parse(cases[i].text, strlen(cases[i].text), &t, &e);

		if (r != SAS_E_MALFORMED || !streq(e.msg, cases[i].msg))
			print_error("case %zu: %s -> %d %s\n", i, cases[i].text, r, e.msg);
		assert_int_equal(r, SAS_E_MALFORMED);
		assert_string_equal(e.msg, cases[i].msg);
		assert_null(t);
	}
}

static void test_parse_limits(void **state)
{
	char big[SAS_TOKEN_MAX + 2];
	const char *prefix = "SharedAccessSignature sig=b&se=1&sr=";
	_cleanup_sas_token_ struct sas_token *t = NULL;
	struct err e = {0};
	const char nul[] = "SharedAccessSignature sr=a\0&sig=b&se=1";

	(void)state;
	memset(big, 'a', sizeof(big));
	memcpy(big, prefix, strlen(prefix));
	big[sizeof(big) - 1] = '\0';
	/* Exactly SAS_TOKEN_MAX bytes is fine, one more is not. */
	assert_int_equal(sas_token_parse(big, SAS_TOKEN_MAX, &t, &e), 0);
	assert_int_equal(strlen(t->sr), SAS_TOKEN_MAX - strlen(prefix));
	assert_int_equal(sas_token_parse(big, SAS_TOKEN_MAX + 1, &t, &e), SAS_E_MALFORMED);
	assert_string_equal(e.msg, "SAS token: longer than 4096 bytes");

	err_clear(&e);
	assert_int_equal(sas_token_parse(nul, sizeof(nul) - 1, &t, &e), SAS_E_MALFORMED);
	assert_string_equal(e.msg, "SAS token: control character at offset 26");
	err_clear(&e);
	assert_int_equal(sas_token_parse(NULL, 10, &t, &e), SAS_E_MALFORMED);
}

static void test_expiry(void **state)
{
	const char *tok = vectors[1].token;
	struct sas_verify_opts o = opts_for(vectors[1].resource);
	struct err e = {0};

	(void)state;
	/* Five minutes of skew by default, inclusive. */
	o.now = SE + 300;
	assert_int_equal(check(tok, DEVICE_KEY, NULL, &o, NULL, &e), 0);
	o.now = SE + 301;
	assert_int_equal(check(tok, DEVICE_KEY, NULL, &o, NULL, &e), SAS_E_EXPIRED);
	assert_string_equal(e.msg, "SAS token: expired at 1700000000 (now 1700000301, 300 s of "
				   "clock skew allowed)");
	/* A configured skew. */
	o.clock_skew = 0;
	o.now = SE;
	assert_int_equal(check(tok, DEVICE_KEY, NULL, &o, NULL, &e), 0);
	o.now = SE + 1;
	assert_int_equal(check(tok, DEVICE_KEY, NULL, &o, NULL, &e), SAS_E_EXPIRED);
	/* now = 0 means the real clock: long after 2023-11-14. */
	o.now = 0;
	o.clock_skew = SAS_DEFAULT_CLOCK_SKEW;
	assert_int_equal(check(tok, DEVICE_KEY, NULL, &o, NULL, &e), SAS_E_EXPIRED);
	/* The signature is checked first: an expired token with a bad signature
	 * is reported as a bad signature. */
	o.now = SE + 1000;
	assert_int_equal(check(tok, OTHER_KEY, NULL, &o, NULL, &e), SAS_E_SIGNATURE);
}

static void test_expiry_far_future(void **state)
{
	_cleanup_buf_ struct buf tok = {0};
	struct sas_verify_opts o = opts_for(HUB);
	struct err e = {0};

	(void)state;
	buf_init(&tok, 0);
	assert_int_equal(sas_token_create(HUB, DEVICE_KEY, UINT64_MAX, NULL, 0, &tok, &e), 0);
	o.now = 0;
	assert_int_equal(check(buf_str(&tok), DEVICE_KEY, NULL, &o, NULL, &e), 0);
	o.now = UINT64_MAX;
	o.clock_skew = UINT64_MAX;
	assert_int_equal(check(buf_str(&tok), DEVICE_KEY, NULL, &o, NULL, &e), 0);
}

static void test_resource(void **state)
{
	struct sas_verify_opts o = opts_for(HUB "/devices/dev2");
	struct err e = {0};

	(void)state;
	assert_int_equal(check(vectors[1].token, DEVICE_KEY, NULL, &o, NULL, &e), SAS_E_RESOURCE);
	assert_string_equal(e.msg, "SAS token: resource \"myhub.azure-devices.net/devices/dev1\" "
				   "does not match \"myhub.azure-devices.net/devices/dev2\"");
	/* Case-insensitive, and one trailing '/' does not matter. */
	o.resource = "MyHub.Azure-Devices.NET/Devices/DEV1/";
	assert_int_equal(check(vectors[1].token, DEVICE_KEY, NULL, &o, NULL, &e), 0);
	/* A child of the token's resource needs allow_parent... */
	o.resource = HUB "/devices/dev1/modules/mod1";
	assert_int_equal(check(vectors[1].token, DEVICE_KEY, NULL, &o, NULL, &e), SAS_E_RESOURCE);
	o.allow_parent = true;
	assert_int_equal(check(vectors[1].token, DEVICE_KEY, NULL, &o, NULL, &e), 0);
	/* ...never works the other way round... */
	o.resource = HUB "/devices";
	assert_int_equal(check(vectors[1].token, DEVICE_KEY, NULL, &o, NULL, &e), SAS_E_RESOURCE);
	/* ...and only by whole segments. */
	o.resource = HUB "/devices/dev10";
	assert_int_equal(check(vectors[1].token, DEVICE_KEY, NULL, &o, NULL, &e), SAS_E_RESOURCE);
	/* The service token (sr = host) covers the whole hub. */
	o.resource = HUB "/devices/dev1";
	o.key_name = "iothubowner";
	assert_int_equal(check(vectors[3].token, DEVICE_KEY, NULL, &o, NULL, &e), 0);
	/* No expected resource is the caller's mistake. */
	o.resource = NULL;
	assert_int_equal(check(vectors[3].token, DEVICE_KEY, NULL, &o, NULL, &e), -EINVAL);
}

static void test_key_name(void **state)
{
	struct sas_verify_opts o = opts_for(DPS_RESOURCE);
	struct err e = {0};

	(void)state;
	o.key_name = "registration";
	assert_int_equal(check(vectors[0].token, DEVICE_KEY, NULL, &o, NULL, &e), 0);
	o.key_name = "Registration";
	assert_int_equal(check(vectors[0].token, DEVICE_KEY, NULL, &o, NULL, &e), SAS_E_KEY_NAME);
	assert_string_equal(e.msg, "SAS token: skn \"registration\" is not the expected key name "
				   "\"Registration\"");
	/* A token without skn, when one is required. */
	o.resource = HUB "/devices/dev1";
	o.key_name = "iothubowner";
	assert_int_equal(check(vectors[1].token, DEVICE_KEY, NULL, &o, NULL, &e), SAS_E_KEY_NAME);
	assert_string_equal(e.msg, "SAS token: no skn, expected \"iothubowner\"");
	/* Not checked when key_name is NULL. */
	o.resource = HUB;
	o.key_name = NULL;
	assert_int_equal(check(vectors[3].token, DEVICE_KEY, NULL, &o, NULL, &e), 0);
}

/* dps-protocol.md §2.2 step 1: each client signs its own form of sr, so sr
 * must be verified exactly as received. */
static void test_sr_as_received(void **state)
{
	static const unsigned forms[] = {0, SAS_SR_URL_ENCODE,
					 SAS_SR_URL_ENCODE | SAS_SR_LOWER_HEX};
	static const char *const srs[] = {
	    "0ne00000A0A/registrations/dev1",
	    "0ne00000A0A%2Fregistrations%2Fdev1",
	    "0ne00000A0A%2fregistrations%2fdev1",
	};
	_cleanup_buf_ struct buf b0 = {0};
	_cleanup_buf_ struct buf b1 = {0};
	_cleanup_buf_ struct buf b2 = {0};
	struct buf *tok[] = {&b0, &b1, &b2};
	struct sas_verify_opts o = opts_for("0ne00000A0A/registrations/dev1");
	struct err e = {0};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(forms); i++) {
		_cleanup_sas_token_ struct sas_token *t = NULL;

		buf_init(tok[i], 0);
		assert_int_equal(sas_token_create("0ne00000A0A/registrations/dev1", DEVICE_KEY, SE,
						  "registration", forms[i], tok[i], &e),
				 0);
		assert_int_equal(sas_token_parse(tok[i]->data, tok[i]->len, &t, &e), 0);
		assert_string_equal(t->sr, srs[i]);
		assert_int_equal(check(buf_str(tok[i]), DEVICE_KEY, NULL, &o, NULL, &e), 0);
	}
	/* The three signatures differ, and pairing one form's sr with another
	 * form's signature fails. */
	for (size_t i = 0; i < ARRAY_SIZE(forms); i++)
		for (size_t j = 0; j < ARRAY_SIZE(forms); j++) {
			_cleanup_sas_token_ struct sas_token *ti = NULL;
			_cleanup_sas_token_ struct sas_token *tj = NULL;
			char mixed[512];

			if (i == j)
				continue;
			assert_int_equal(sas_token_parse(tok[i]->data, tok[i]->len, &ti, &e), 0);
			assert_int_equal(sas_token_parse(tok[j]->data, tok[j]->len, &tj, &e), 0);
			assert_string_not_equal(ti->sig, tj->sig);
			assert_true((size_t)snprintf(mixed, sizeof(mixed),
						     "SharedAccessSignature sr=%s&sig=%s&se=%s"
						     "&skn=registration",
						     tj->sr, ti->sig, ti->se) < sizeof(mixed));
			assert_int_equal(check(mixed, DEVICE_KEY, NULL, &o, NULL, &e),
					 SAS_E_SIGNATURE);
		}
}

static void test_sig_encoding(void **state)
{
	/* Lowercase escapes in sig decode to the same signature... */
	const char *lower = "SharedAccessSignature sr=myhub.azure-devices.net%2Fdevices%2Fdev1"
			    "&sig=K2ol0WGo3XQ9OjiirFsVwajTbNvxXcv%2flHAzsYx2Bgg%3d&se=1700000000";
	/* ...a bad escape is malformed... */
	const char *bad = "SharedAccessSignature sr=myhub.azure-devices.net%2Fdevices%2Fdev1"
			  "&sig=K2ol0WGo3XQ9OjiirFsVwajTbNvxXcv%2GlHAzsYx2Bgg%3D&se=1700000000";
	struct sas_verify_opts o = opts_for(HUB "/devices/dev1");
	_cleanup_buf_ struct buf bad_sr = {0};
	struct err e = {0};

	(void)state;
	assert_int_equal(check(lower, DEVICE_KEY, NULL, &o, NULL, &e), 0);
	assert_int_equal(check(bad, DEVICE_KEY, NULL, &o, NULL, &e), SAS_E_MALFORMED);
	assert_string_equal(e.msg, "SAS token: sig: bad percent-escape");
	/* ...and so is one in sr, found once the signature over it checks out. */
	buf_init(&bad_sr, 0);
	assert_int_equal(sas_token_create("a%zz", DEVICE_KEY, SE, NULL, 0, &bad_sr, &e), 0);
	assert_int_equal(check(buf_str(&bad_sr), DEVICE_KEY, NULL, &o, NULL, &e), SAS_E_MALFORMED);
	assert_string_equal(e.msg, "SAS token: sr: bad percent-escape");
	/* With a signature that does not match, the signature is reported. */
	assert_int_equal(check(buf_str(&bad_sr), OTHER_KEY, NULL, &o, NULL, &e), SAS_E_SIGNATURE);
}

static void test_bad_keys(void **state)
{
	struct sas_verify_opts o = opts_for(vectors[1].resource);
	struct err e = {0};

	(void)state;
	assert_int_equal(check(vectors[1].token, "", NULL, &o, NULL, &e), -EINVAL);
	assert_string_equal(e.msg, "primary key: empty key");
	assert_int_equal(check(vectors[1].token, DEVICE_KEY, "%%%", &o, NULL, &e), -EINVAL);
	assert_string_equal(e.msg, "secondary key: not valid base64 (at offset 0)");
	/* Unpadded keys are accepted. */
	assert_int_equal(check(vectors[1].token, "Jsm0lyGpjaVYVP2g3FnmnmG9dI/9qU24wNoykUmermc",
			       NULL, &o, NULL, &e),
			 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_group_key_derivation),
	    cmocka_unit_test(test_group_key_signs_dps_token),
	    cmocka_unit_test(test_vectors_create),
	    cmocka_unit_test(test_create_default_order),
	    cmocka_unit_test(test_create_errors),
	    cmocka_unit_test(test_vectors_verify),
	    cmocka_unit_test(test_parse_fields),
	    cmocka_unit_test(test_parse_rejections),
	    cmocka_unit_test(test_parse_limits),
	    cmocka_unit_test(test_expiry),
	    cmocka_unit_test(test_expiry_far_future),
	    cmocka_unit_test(test_resource),
	    cmocka_unit_test(test_key_name),
	    cmocka_unit_test(test_sr_as_received),
	    cmocka_unit_test(test_sig_encoding),
	    cmocka_unit_test(test_bad_keys),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
