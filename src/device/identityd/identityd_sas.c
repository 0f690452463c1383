/* SPDX-License-Identifier: MIT */
/*
 * SAS tokens as aziot-identityd builds them (aziot-compat.md §5.5,
 * connector.rs::generate_token), byte for byte:
 *
 *   resource_uri   = percent_encode(lowercase(audience), CONTROLS + ' ' '"'
 *                    '<' '>' '`' '#' '?' '{' '}' '=')      ('/' stays)
 *   string_to_sign = resource_uri "\n" expiry
 *   token          = "sr=" resource_uri "&sig=" form_urlencode(b64(hmac))
 *                    "&se=" expiry ["&skn=registration"]
 *
 * crypto/sas.c makes tokens the Node and C SDKs' way, from a key it holds;
 * here the key never leaves keyd or the TPM, and the encoding is aziot's.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "common/encode.h"
#include "device/identityd/identityd_private.h"

static bool resource_escaped(unsigned char c)
{
	return c < 0x20 || c >= 0x7f || strchr(" \"<>`#?{}=", c) != NULL;
}

int identityd_sas_resource(const char *audience, struct buf *out)
{
	static const char hex[] = "0123456789ABCDEF";

	for (const unsigned char *p = (const unsigned char *)audience; *p; p++) {
		unsigned char c = *p >= 'A' && *p <= 'Z' ? (unsigned char)(*p - 'A' + 'a') : *p;
		int r;

		if (resource_escaped(c)) {
			char esc[3] = {'%', hex[c >> 4], hex[c & 15]};

			r = buf_append(out, esc, 3);
		} else {
			r = buf_putc(out, (char)c);
		}
		if (r < 0)
			return r;
	}
	return 0;
}

/* application/x-www-form-urlencoded, as Rust's url::form_urlencoded:
 * alphanumerics and "*-._" stay, space is '+', the rest %XX. */
static int form_urlencode(const char *s, struct buf *out)
{
	static const char hex[] = "0123456789ABCDEF";

	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		int r;

		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || strchr("*-._", *p))
			r = buf_putc(out, (char)*p);
		else if (*p == ' ')
			r = buf_putc(out, '+');
		else
			r = buf_append(out, (char[3]){'%', hex[*p >> 4], hex[*p & 15]}, 3);
		if (r < 0)
			return r;
	}
	return 0;
}

int identityd_sas_token(const char *resource, uint64_t expiry, const uint8_t sig[32],
			const char *skn, struct buf *out)
{
	_cleanup_buf_ struct buf b64 = {0};
	size_t start = out->len;
	int r;

	buf_init(&b64, 128);
	r = base64_encode(&b64, sig, 32, B64_STANDARD);
	if (r >= 0)
		r = buf_printf(out, "SharedAccessSignature sr=%s&sig=", resource);
	if (r >= 0)
		r = form_urlencode(buf_str(&b64), out);
	if (r >= 0)
		r = buf_printf(out, "&se=%llu", (unsigned long long)expiry);
	if (r >= 0 && skn)
		r = buf_printf(out, "&skn=%s", skn);
	if (r < 0) {
		out->len = start;
		if (out->data)
			out->data[start] = '\0';
	}
	return r;
}

int identityd_sas_build(const char *audience, const char *skn, uint64_t now, identityd_sign_fn sign,
			void *ctx, struct buf *out, struct err *e)
{
	_cleanup_buf_ struct buf resource = {0}, to_sign = {0};
	uint64_t expiry = (now ? now : (uint64_t)time(NULL)) + IDENTITYD_SAS_LIFETIME;
	uint8_t sig[32];
	int r;

	buf_init(&resource, 4096);
	buf_init(&to_sign, 4200);
	r = identityd_sas_resource(audience, &resource);
	if (r >= 0)
		r = buf_printf(&to_sign, "%s\n%llu", buf_str(&resource),
			       (unsigned long long)expiry);
	if (r < 0)
		return err_set(e, r, "the SAS token for %s: %s", audience, strerror(-r));
	r = sign(ctx, to_sign.data, to_sign.len, sig, e);
	if (r < 0)
		return r;
	r = identityd_sas_token(buf_str(&resource), expiry, sig, skn, out);
	OPENSSL_cleanse(sig, sizeof(sig));
	if (r < 0)
		return err_set(e, r, "the SAS token for %s: %s", audience, strerror(-r));
	return 0;
}
