/* SPDX-License-Identifier: MIT */
/*
 * identityd's calls to the hub, with the device's own credential (a SAS
 * signed by keyd or the TPM, or the TLS client certificate of an X.509
 * device):
 *
 *   - the request that proves an identity works: the device asks for a
 *     cloud-to-device message (GET /devices/{id}/messages/deviceBound,
 *     hub-protocol.md §5). 204 (nothing waiting) or 200 (a message, which
 *     is abandoned at once so that it is delivered again) means the hub
 *     knows the device and its key; 401, 403 and 404 mean it does not, and
 *     the device has to register again (aziot-compat.md §5.8: a hub error
 *     that is not a network error leads to reprovisioning). aziot makes its
 *     module-list call for the same purpose; the device-facing call needs
 *     no service rights and has no side effect;
 *
 *   - module identity CRUD, the calls of aziot's hub client byte for byte
 *     (hub-protocol.md §7, aziot-compat.md §5.7): api-version
 *     2017-11-08-preview, ids percent-encoded with aziot's set, If-Match: *
 *     unquoted on update and delete.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/encode.h"
#include "common/json.h"
#include "common/log.h"
#include "device/identityd/identityd_private.h"

#define HUB_DEVICE_API_VERSION "2021-04-12"
#define HUB_MODULE_API_VERSION "2017-11-08-preview"
/* What aziot leaves unencoded in a path segment besides RFC 3986's
 * unreserved characters: it encodes controls, space, '"', '#', '<', '>',
 * '`', '?', '{', '}' and '=' (aziot-compat.md §5.5), and every byte >= 0x80. */
#define AZIOT_PATH_KEEP "!$%&'()*+,/:;@[\\]^|"

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

/* The Authorization value for the device, appended to out: a SAS for the
 * hub's name (never the gateway's, §5.5) signed with the device's key;
 * nothing for X.509, which authenticates with its TLS client certificate.
 * Returns 0 or the signer's negative errno with a sentence. */
static int device_token(struct identityd_job_context *ctx, const char *hub, const char *device_id,
			struct buf *out, struct err *e)
{
	_cleanup_buf_ struct buf audience = {0};

	if (ctx->s->auth == IDENTITYD_AUTH_X509)
		return 0;
	buf_init(&audience, 4096);
	if (buf_printf(&audience, "%s/devices/%s", hub, device_id) < 0)
		return err_set(e, -ENOMEM, "out of memory");
	return identityd_sas_build(buf_str(&audience), NULL, 0, identityd_job_sign, ctx, out, e);
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
	_cleanup_buf_ struct buf target = {0}, token = {0};
	struct http_header headers[1];
	struct http_client_request req = {.method = "GET", .headers = headers};
	struct err inner = {0};
	char text[512];
	int r;

	buf_init(&target, 8192);
	buf_init_secret(&token, 4096);
	if (device_url(gateway, device_id, "", &target) < 0) {
		err_set(e, -ENOMEM, "out of memory");
		return IDENTITYD_HUB_ERROR;
	}
	req.url = buf_str(&target);
	r = device_token(ctx, hub, device_id, &token, &inner);
	/* keyd or tpmd answered that it cannot sign with the device's key (no
	 * authentication key in the TPM, say, after a tpmd killed in the middle
	 * of an import): the identity is unusable, as if the hub had refused
	 * it, and provisioning again is what mends it. keyd or tpmd down: the
	 * check cannot be made, which says nothing against the identity. */
	if (r == -EPROTO) {
		err_set(e, -EACCES, "cannot sign the hub SAS token: %s", err_msg(&inner, r));
		return IDENTITYD_HUB_REFUSED;
	}
	if (r < 0) {
		err_set(e, r, "cannot sign the hub SAS token: %s", err_msg(&inner, r));
		return IDENTITYD_HUB_UNREACHABLE;
	}
	if (token.len) {
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

/* --- module identities ---------------------------------------------------- */

static const char *const module_verbs[] = {"list", "get", "create", "update", "delete"};

static int modules_url(const struct identityd_hub_device *dev, const char *module_id,
		       struct buf *out)
{
	if (buf_printf(out, "https://%s/devices/", dev->gateway) < 0 ||
	    url_encode(out, dev->device_id, strlen(dev->device_id), AZIOT_PATH_KEEP) < 0 ||
	    buf_append_str(out, "/modules") < 0)
		return -ENOMEM;
	if (module_id && (buf_putc(out, '/') < 0 ||
			  url_encode(out, module_id, strlen(module_id), AZIOT_PATH_KEEP) < 0))
		return -ENOMEM;
	return buf_append_str(out, "?api-version=" HUB_MODULE_API_VERSION) < 0 ? -ENOMEM : 0;
}

/* The body of a PUT, in the field order of aziot's Module. */
static json_t *module_body(const struct identityd_hub_device *dev, const char *module_id,
			   const json_t *authentication)
{
	json_t *j = json_pack("{s:s,s:s}", "moduleId", module_id, "deviceId", dev->device_id);

	if (j && authentication &&
	    json_object_set(j, "authentication", (json_t *)authentication) < 0) {
		json_decref(j);
		return NULL;
	}
	return j;
}

/* Whether j is a Module JSON aziot can use: moduleId and deviceId strings,
 * generationId and managedBy strings when present. */
static bool module_json_valid(const json_t *j)
{
	const char *s = NULL;

	return json_is_object(j) && json_get_string(j, "moduleId", &s, NULL) >= 0 &&
	       json_get_string(j, "deviceId", &s, NULL) >= 0 &&
	       json_get_string_opt(j, "generationId", &s, NULL) >= 0 &&
	       (json_is_null(json_object_get(j, "managedBy")) ||
		json_get_string_opt(j, "managedBy", &s, NULL) >= 0);
}

/* Check and keep the body of a 2xx answer. */
static int module_answer(const struct http_client_response *resp, enum identityd_hub_module_op op,
			 const char *what, json_t **ret, struct err *e)
{
	_cleanup_json_ json_t *j = NULL;
	bool valid;

	if (op == IDENTITYD_HUB_MODULE_DELETE)
		return 0;
	if (json_parse(resp->body.data ? resp->body.data : "", resp->body.len, 0, &j, NULL) < 0)
		return err_set(e, -EBADMSG, "the hub's answer to %s is not JSON", what);
	if (op == IDENTITYD_HUB_MODULE_LIST) {
		size_t i;
		json_t *m;

		valid = json_is_array(j);
		json_array_foreach (j, i, m)
			valid = valid && module_json_valid(m);
	} else {
		valid = module_json_valid(j);
	}
	if (!valid)
		return err_set(e, -EBADMSG, "the hub's answer to %s is not %s", what,
			       op == IDENTITYD_HUB_MODULE_LIST ? "a list of modules" : "a module");
	*ret = TAKE_PTR(j);
	return 0;
}

int identityd_hub_module(struct identityd_job_context *ctx, const struct identityd_hub_device *dev,
			 enum identityd_hub_module_op op, const char *module_id,
			 const json_t *authentication, json_t **ret, struct err *e)
{
	_cleanup_http_client_response_ struct http_client_response resp = {0};
	_cleanup_buf_ struct buf target = {0}, token = {0}, what = {0};
	_cleanup_free_ char *text = NULL;
	_cleanup_json_ json_t *body = NULL;
	static const char *const methods[] = {"GET", "GET", "PUT", "PUT", "DELETE"};
	struct http_header headers[3];
	struct http_client_request req = {.method = methods[op], .headers = headers};
	struct err inner = {0};
	char why[512];
	int r;

	if (ret)
		*ret = NULL;
	buf_init(&target, 8192);
	buf_init_secret(&token, 4096);
	buf_init(&what, 1024);
	if (modules_url(dev, op == IDENTITYD_HUB_MODULE_LIST ? NULL : module_id, &target) < 0 ||
	    (op == IDENTITYD_HUB_MODULE_LIST
		 ? buf_printf(&what, "list the modules of device '%s'", dev->device_id)
		 : buf_printf(&what, "%s module '%s' of device '%s'", module_verbs[op], module_id,
			      dev->device_id)) < 0)
		return err_set(e, -ENOMEM, "out of memory");
	req.url = buf_str(&target);
	r = device_token(ctx, dev->hub, dev->device_id, &token, &inner);
	if (r < 0)
		return err_set(e, r, "cannot sign the hub SAS token: %s", err_msg(&inner, r));
	if (token.len)
		headers[req.n_headers++] = (struct http_header){"Authorization", buf_str(&token)};
	if (op == IDENTITYD_HUB_MODULE_CREATE || op == IDENTITYD_HUB_MODULE_UPDATE) {
		body = module_body(dev, module_id,
				   op == IDENTITYD_HUB_MODULE_UPDATE ? authentication : NULL);
		text = body ? json_dump_compact(body) : NULL;
		if (!text)
			return err_set(e, -ENOMEM, "out of memory");
		req.body = text;
		req.body_len = strlen(text);
		headers[req.n_headers++] = (struct http_header){"Content-Type", "application/json"};
	}
	if (op == IDENTITYD_HUB_MODULE_UPDATE || op == IDENTITYD_HUB_MODULE_DELETE)
		headers[req.n_headers++] = (struct http_header){"If-Match", "*"};

	r = identityd_cloud_perform(&ctx->cloud, &req, &resp, &inner);
	if (text)
		explicit_bzero(text, strlen(text));
	if (r < 0)
		return err_set(e, r, "cannot reach the hub %s to %s: %s", dev->gateway,
			       buf_str(&what), err_msg(&inner, r));
	if (resp.status >= 200 && resp.status <= 299)
		return module_answer(&resp, op, buf_str(&what), ret, e);
	identityd_cloud_error_text(&resp, why, sizeof(why));
	/* aziot takes a 500 for a network error (a parent edgeHub's way of
	 * saying IoT Hub cannot be reached), and so does a 429 after its
	 * retries or a 503. */
	r = resp.status == 404                         ? -ENOENT
	    : resp.status == 401 || resp.status == 403 ? -EACCES
	    : resp.status == 429 || resp.status >= 500 ? -EAGAIN
						       : -EPROTO;
	return err_set(e, r, "the hub %s refused to %s (%ld %s)", dev->hub, buf_str(&what),
		       resp.status, why);
}
