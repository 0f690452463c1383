/* SPDX-License-Identifier: MIT */
/*
 * HTTPS to DPS and the hub with aziot's request rules (aziot-compat.md
 * §5.1, §5.6): each attempt bounded by cloud_timeout_sec, transport
 * failures retried cloud_retries times, 429 answered with a back-off.
 *
 * Trust: the system store, plus the certificates of trust_bundle_cert when
 * it is set (a self-hosted DPS and hub with their own CA). libcurl, once
 * given a CA file, no longer reads its default bundle, so the system store
 * is then named by its hashed directory (OpenSSL's default certificate
 * directory, or $SSL_CERT_DIR) next to the bundle.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>
#include <openssl/x509.h>

#include "common/json.h"
#include "common/http_server.h"
#include "common/log.h"
#include "device/identityd/identityd_private.h"

#define RETRY_AFTER_MIN_MS 1000
#define RETRY_AFTER_MAX_MS (300 * 1000)
#define THROTTLE_RETRIES 4
#define CLOUD_RESPONSE_MAX (256 * 1024)

static void sleep_default(unsigned ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

int identityd_cloud_init(struct identityd_cloud *c, const struct identityd_settings *s)
{
	*c = (struct identityd_cloud){0};
	c->http = http_client_new();
	if (!c->http)
		return -ENOMEM;
	c->timeout_ms = (unsigned)(s->cloud_timeout_sec * 1000);
	c->retries = s->cloud_retries;
	if (s->trust_bundle) {
		const char *dir = getenv("SSL_CERT_DIR");

		c->ca_file = s->trust_bundle;
		c->ca_dir = dir && *dir ? dir : X509_get_default_cert_dir();
	}
	return 0;
}

void identityd_cloud_clear(struct identityd_cloud *c)
{
	http_client_free(c->http);
	*c = (struct identityd_cloud){0};
}

bool identityd_cloud_is_network_error(int r)
{
	switch (r) {
	case -ECONNREFUSED:
	case -ECONNRESET:
	case -ECONNABORTED:
	case -EHOSTUNREACH:
	case -ENETUNREACH:
	case -ENETDOWN:
	case -ETIMEDOUT:
	case -EPIPE:
	case -EPROTO:
	case -EKEYREJECTED:
	case -EBADMSG:
	case -EIO:
		return true;
	default:
		return false;
	}
}

static unsigned jitter(unsigned max_ms)
{
	uint32_t v = 0;

	if (max_ms == 0 || RAND_bytes((unsigned char *)&v, sizeof(v)) != 1)
		return 0;
	return v % max_ms;
}

int identityd_cloud_perform(struct identityd_cloud *c, const struct http_client_request *req,
			    struct http_client_response *ret_resp, struct err *e)
{
	/* aziot's schedule when a 429 says nothing (http-common backoff.rs). */
	static const unsigned throttle_ms[THROTTLE_RETRIES][2] = {
	    {60000, 10000}, {120000, 20000}, {180000, 30000}, {300000, 30000}};
	void (*sleep_ms)(unsigned) = c->sleep_ms ? c->sleep_ms : sleep_default;
	struct http_client_request r = *req;
	unsigned failures = 0, throttled = 0;

	r.timeout_ms = c->timeout_ms;
	r.max_response_bytes = CLOUD_RESPONSE_MAX;
	r.ca_file = c->ca_file;
	r.ca_dir = c->ca_dir;
	r.client_cert = c->cert;
	r.client_chain = c->chain;
	r.client_key = c->key;
	for (;;) {
		struct err inner = {0};
		int rc;

		http_client_response_free(ret_resp);
		rc = http_client_perform(c->http, &r, ret_resp, &inner);
		if (rc < 0) {
			if (failures >= c->retries || !identityd_cloud_is_network_error(rc))
				return err_set(e, rc, "%s", err_msg(&inner, rc));
			log_debug("%s; trying again (%u of %u)", err_msg(&inner, rc), failures + 1,
				  c->retries);
			sleep_ms(1000u << (failures < 5 ? failures : 5));
			failures++;
			continue;
		}
		if (ret_resp->status != 429 || throttled >= THROTTLE_RETRIES)
			return 0;
		{
			unsigned wait =
			    ret_resp->retry_after_ms >= 0
				? (unsigned)ret_resp->retry_after_ms
				: throttle_ms[throttled][0] + jitter(throttle_ms[throttled][1]);

			if (wait < RETRY_AFTER_MIN_MS)
				wait = RETRY_AFTER_MIN_MS;
			if (wait > RETRY_AFTER_MAX_MS)
				wait = RETRY_AFTER_MAX_MS;
			log_info("%.*s is throttling requests (429); waiting %u s",
				 (int)strcspn(req->url, "?"), req->url, wait / 1000);
			sleep_ms(wait);
		}
		throttled++;
	}
}

const char *identityd_cloud_error_text(const struct http_client_response *resp, char *buf, size_t n)
{
	_cleanup_json_ json_t *j = NULL;
	const char *msg = NULL;
	int64_t code = 0;

	if (resp->body.len && json_parse(resp->body.data, resp->body.len, 0, &j, NULL) == 0 &&
	    json_is_object(j)) {
		if (json_get_string_opt(j, "message", &msg, NULL) < 0 || !msg)
			(void)json_get_string_opt(j, "errorMessage", &msg, NULL);
		if (!msg)
			(void)json_get_string_opt(j, "Message", &msg, NULL);
		if (json_get_int_opt(j, "errorCode", INT64_MIN, INT64_MAX, 0, &code, NULL) < 0 ||
		    !code)
			(void)json_get_int_opt(j, "code", INT64_MIN, INT64_MAX, 0, &code, NULL);
	}
	if (msg && code)
		snprintf(buf, n, "%s (errorCode %lld)", msg, (long long)code);
	else if (msg)
		snprintf(buf, n, "%s", msg);
	else
		snprintf(buf, n, "%s", http_status_text((int)resp->status));
	return buf;
}
