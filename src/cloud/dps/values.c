/* SPDX-License-Identifier: MIT */
/* Values the service mints and checks: timestamps, ids, keys, etags. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/rand.h>

#include "cloud/dps/dps.h"
#include "common/encode.h"

void dps_now_iso(char *ret, size_t size)
{
	struct timespec ts;
	struct tm tm;
	char date[24];

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(ret, size, "%s.%07ldZ", date, ts.tv_nsec / 100);
}

void dps_uuid(char ret[37])
{
	static const char hex[] = "0123456789abcdef";
	uint8_t b[16];
	size_t o = 0;

	if (RAND_bytes(b, sizeof(b)) != 1) {
		/* The ids are opaque; uniqueness is what matters. */
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		memcpy(b, &ts, sizeof(ts) < sizeof(b) ? sizeof(ts) : sizeof(b));
	}
	b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
	b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
	for (size_t i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			ret[o++] = '-';
		ret[o++] = hex[b[i] >> 4];
		ret[o++] = hex[b[i] & 0xf];
	}
	ret[o] = '\0';
}

static bool is_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool dps_valid_registration_id(const char *s)
{
	size_t n;

	if (!s)
		return false;
	n = strlen(s);
	if (n == 0 || n > DPS_ID_MAX || !is_alnum(s[0]) || !is_alnum(s[n - 1]))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!is_alnum(s[i]) && !strchr("-._:", s[i]))
			return false;
	return true;
}

bool dps_valid_device_id(const char *s)
{
	size_t n;

	if (!s)
		return false;
	n = strlen(s);
	if (n == 0 || n > DPS_ID_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!is_alnum(s[i]) && !strchr("-:.+%_#*?!(),=@$'", s[i]))
			return false;
	return true;
}

int dps_random_key(size_t n, struct buf *out)
{
	uint8_t key[DPS_KEY_MAX_BYTES];
	int r;

	if (n > sizeof(key))
		return -EINVAL;
	if (RAND_priv_bytes(key, (int)n) != 1)
		return -EIO;
	r = base64_encode(out, key, n, B64_STANDARD);
	explicit_bzero(key, sizeof(key));
	return r;
}

bool dps_valid_key(const char *s)
{
	_cleanup_buf_ struct buf raw = {0};

	if (!s)
		return false;
	buf_init_secret(&raw, DPS_KEY_MAX_BYTES + 3);
	if (base64_decode(&raw, s, strlen(s), B64_STANDARD, NULL) < 0)
		return false;
	return raw.len >= DPS_KEY_MIN_BYTES && raw.len <= DPS_KEY_MAX_BYTES;
}

char *dps_etag_unquote(const char *value)
{
	size_t n;

	if (!value)
		return NULL;
	n = strlen(value);
	if (n >= 2 && value[0] == '"' && value[n - 1] == '"') {
		value++;
		n -= 2;
	}
	if (n == 0)
		return NULL;
	return strndup(value, n);
}

bool dps_etag_matches(const char *if_match, const char *etag)
{
	_cleanup_free_ char *a = dps_etag_unquote(if_match);
	_cleanup_free_ char *b = dps_etag_unquote(etag);

	if (!a)
		return true;
	if (streq(a, "*"))
		return true;
	return b && streq(a, b);
}
