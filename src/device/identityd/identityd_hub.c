/* SPDX-License-Identifier: MIT */
/*
 * The request that proves an identity works: the device asks the hub for
 * a cloud-to-device message (GET /devices/{id}/messages/deviceBound,
 * hub-protocol.md §5) with its own credential. 204 (nothing waiting) or
 * 200 (a message, which is abandoned at once so that it is delivered
 * again) means the hub knows the device and its key; 401, 403 and 404
 * mean it does not, and the device has to register again (aziot-compat.md
 * §5.8: a hub error that is not a network error leads to reprovisioning).
 *
 * aziot makes its module-list call for the same purpose; the device-facing
 * call needs no service rights and has no side effect.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/encode.h"
#include "common/log.h"
#include "device/identityd/identityd_private.h"

#define HUB_DEVICE_API_VERSION "2021-04-12"

static int device_url(const char *gateway, const char *device_id, const char *suffix,
		      struct buf *out)
{
	if (buf_printf(out, "https://%s/devices/", gateway) < 0 ||
	    url_encode(out, device_id, strlen(device_id), NULL) < 0 ||
	    buf_printf(out, "/messages/deviceBound%s?api-version=" HUB_DEVICE_API_VERSION, suffix) <
		0)
		return -ENOMEM;
	return 0;
}

/* Give a message the check received back to the hub. Best effort. */
static void abandon(struct identityd_job_context *ctx, const char *gateway, const char *device_id,
		    const char *auth, const char *etag)
{
	_cleanup_http_client_response_ struct http_client_response resp = {0};
	_cleanup_buf_ struct buf target = {0}, suffix = {0}, token = {0};
	struct http_header headers[1];
	struct http_client_request req = {.method = "POST", .headers = headers};
	size_t n = strlen(etag);

	buf_init(&target, 8192);
	buf_init(&suffix, 4096);
	if (n >= 2 && etag[0] == '"' && etag[n - 1] == '"')
		etag++, n -= 2;
	buf_init(&token, 4096);
	if (buf_append(&token, etag, n) < 0 || buf_append_str(&suffix, "/") < 0 ||
	    url_encode(&suffix, buf_str(&token), token.len, NULL) < 0 ||
	    buf_append_str(&suffix, "/abandon") < 0 ||
	    device_url(gateway, device_id, buf_str(&suffix), &target) < 0)
		return;
	req.url = buf_str(&target);
	if (auth) {
		headers[0] = (struct http_header){"Authorization", auth};
		req.n_headers = 1;
	}
	if (identityd_cloud_perform(&ctx->cloud, &req, &resp, NULL) == 0)
		log_debug("the hub's message was abandoned (HTTP %ld)", resp.status);
}

enum identityd_hub_outcome identityd_hub_check(struct identityd_job_context *ctx, const char *hub,
					       const char *gateway, const char *device_id,
					       struct err *e)
{
	_cleanup_http_client_response_ struct http_client_response resp = {0};
	_cleanup_buf_ struct buf target = {0}, audience = {0}, token = {0};
	struct http_header headers[1];
	struct http_client_request req = {.method = "GET", .headers = headers};
	struct err inner = {0};
	char text[512];
	int r;

	buf_init(&target, 8192);
	buf_init(&audience, 4096);
	buf_init_secret(&token, 4096);
	if (device_url(gateway, device_id, "", &target) < 0) {
		err_set(e, -ENOMEM, "out of memory");
		return IDENTITYD_HUB_ERROR;
	}
	req.url = buf_str(&target);
	if (ctx->s->auth != IDENTITYD_AUTH_X509) {
		/* Always the hub's name, even through a gateway (§5.5). */
		if (buf_printf(&audience, "%s/devices/%s", hub, device_id) < 0) {
			err_set(e, -ENOMEM, "out of memory");
			return IDENTITYD_HUB_ERROR;
		}
		r = identityd_sas_build(buf_str(&audience), NULL, 0, identityd_job_sign, ctx,
					&token, &inner);
		/* keyd or tpmd is down: the check cannot be made, which says
		 * nothing against the identity. */
		if (r < 0) {
			err_set(e, r, "cannot sign the hub SAS token: %s", err_msg(&inner, r));
			return IDENTITYD_HUB_UNREACHABLE;
		}
		headers[0] = (struct http_header){"Authorization", buf_str(&token)};
		req.n_headers = 1;
	}
	r = identityd_cloud_perform(&ctx->cloud, &req, &resp, &inner);
	if (r == -EKEYREJECTED) {
		err_set(e, r,
			"the hub's TLS certificate is not trusted (%s); add its CA to "
			"trust_bundle_cert or to the system store",
			err_msg(&inner, r));
		return IDENTITYD_HUB_UNREACHABLE;
	}
	if (r < 0) {
		err_set(e, r, "cannot reach the hub %s: %s", gateway, err_msg(&inner, r));
		return IDENTITYD_HUB_UNREACHABLE;
	}
	if (resp.status == 200 || resp.status == 204) {
		const char *etag = http_client_response_header(&resp, "ETag");

		if (resp.status == 200 && etag)
			abandon(ctx, gateway, device_id, req.n_headers ? buf_str(&token) : NULL,
				etag);
		return IDENTITYD_HUB_ACCEPTED;
	}
	identityd_cloud_error_text(&resp, text, sizeof(text));
	if (resp.status == 401 || resp.status == 403 || resp.status == 404) {
		err_set(e, -EACCES, "the hub %s refused device '%s' (%ld %s)", hub, device_id,
			resp.status, text);
		return IDENTITYD_HUB_REFUSED;
	}
	if (resp.status == 429 || resp.status >= 500) {
		err_set(e, -EAGAIN, "the hub %s could not answer (%ld %s)", hub, resp.status, text);
		return IDENTITYD_HUB_UNREACHABLE;
	}
	err_set(e, -EPROTO, "the hub %s answered device '%s' with %ld %s", hub, device_id,
		resp.status, text);
	return IDENTITYD_HUB_ERROR;
}
