/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cloud/dps/hub_client.h"
#include "common/encode.h"
#include "common/http_client.h"
#include "common/json.h"
#include "common/log.h"
#include "crypto/sas.h"

#define HUB_TIMEOUT_MS 20000
#define HUB_TOKEN_LIFETIME 3600

int dps_hub_call(struct http_client *c, const struct dps_linked_hub *hub, const char *method,
		 const char *path, const json_t *body, const char *if_match, long *ret_status,
		 json_t **ret_body, struct err *e)
{
	_cleanup_(http_client_response_freep) struct http_client_response resp = {0};
	_cleanup_buf_ struct buf token = {0}, url = {0};
	_cleanup_free_ char *text = NULL;
	struct http_header headers[4];
	size_t n = 0;
	int r;

	*ret_status = 0;
	if (ret_body)
		*ret_body = NULL;
	buf_init_secret(&token, 1024);
	buf_init(&url, 4096);
	r = sas_token_create(hub->host_name, hub->key, (uint64_t)time(NULL) + HUB_TOKEN_LIFETIME,
			     hub->key_name, 0, &token, e);
	if (r < 0)
		return r;
	r = buf_printf(&url, "https://%s%s%sapi-version=%s", hub->host_name, path,
		       strchr(path, '?') ? "&" : "?", DPS_HUB_API_VERSION);
	if (r < 0)
		return r;
	headers[n++] = (struct http_header){"Authorization", buf_str(&token)};
	headers[n++] = (struct http_header){"Accept", "application/json"};
	if (body) {
		text = json_dump_compact(body);
		if (!text)
			return -ENOMEM;
		headers[n++] =
		    (struct http_header){"Content-Type", "application/json; charset=utf-8"};
	}
	if (if_match)
		headers[n++] = (struct http_header){"If-Match", if_match};
	{
		struct http_client_request req = {
		    .method = method,
		    .url = buf_str(&url),
		    .headers = headers,
		    .n_headers = n,
		    .body = text,
		    .body_len = text ? strlen(text) : 0,
		    .timeout_ms = HUB_TIMEOUT_MS,
		    .ca_file = hub->ca_file,
		};

		r = http_client_perform(c, &req, &resp, e);
	}
	if (r < 0)
		return r;
	*ret_status = resp.status;
	if (ret_body && resp.body.len > 0)
		(void)json_parse(resp.body.data, resp.body.len, 0, ret_body, NULL);
	return 0;
}

static int hub_error(const struct dps_linked_hub *hub, const char *what, long status,
		     const json_t *body, struct err *e)
{
	const char *msg = json_string_value(json_object_get(body, "Message"));

	if (!msg)
		msg = json_string_value(json_object_get(body, "message"));
	if (status == 401 || status == 403)
		return err_set(e, -EACCES,
			       "The IoT hub %s refused the service's credentials (%s: HTTP %ld).",
			       hub->host_name, what, status);
	return err_set(e, -EPROTO, "The IoT hub %s failed to %s: HTTP %ld%s%s", hub->host_name,
		       what, status, msg ? ": " : ".", msg ? msg : "");
}

static int device_path(const char *prefix, const char *device_id, struct buf *out)
{
	int r = buf_append_str(out, prefix);

	if (r >= 0)
		r = url_encode(out, device_id, strlen(device_id), NULL);
	return r;
}

int dps_hub_upsert_device(struct http_client *c, const struct dps_linked_hub *hub,
			  const char *device_id, const json_t *device, struct err *e)
{
	_cleanup_buf_ struct buf path = {0};
	_cleanup_json_ json_t *body = NULL;
	long status;
	int r;

	buf_init(&path, 1024);
	r = device_path("/devices/", device_id, &path);
	if (r < 0)
		return r;
	r = dps_hub_call(c, hub, "PUT", buf_str(&path), device, NULL, &status, &body, e);
	if (r < 0)
		return r;
	if (status == 409) {
		json_decref(body);
		body = NULL;
		r = dps_hub_call(c, hub, "PUT", buf_str(&path), device, "\"*\"", &status, &body, e);
		if (r < 0)
			return r;
	}
	if (status >= 200 && status < 300)
		return 0;
	return hub_error(hub, "create the device", status, body, e);
}

int dps_hub_delete_device(struct http_client *c, const struct dps_linked_hub *hub,
			  const char *device_id, struct err *e)
{
	_cleanup_buf_ struct buf path = {0};
	_cleanup_json_ json_t *body = NULL;
	long status;
	int r;

	buf_init(&path, 1024);
	r = device_path("/devices/", device_id, &path);
	if (r >= 0)
		r = dps_hub_call(c, hub, "DELETE", buf_str(&path), NULL, "\"*\"", &status, &body,
				 e);
	if (r < 0)
		return r;
	if ((status >= 200 && status < 300) || status == 404)
		return 0;
	return hub_error(hub, "delete the device", status, body, e);
}

int dps_hub_get_twin(struct http_client *c, const struct dps_linked_hub *hub, const char *device_id,
		     json_t **ret, struct err *e)
{
	_cleanup_buf_ struct buf path = {0};
	_cleanup_json_ json_t *body = NULL;
	long status;
	int r;

	*ret = NULL;
	buf_init(&path, 1024);
	r = device_path("/twins/", device_id, &path);
	if (r >= 0)
		r = dps_hub_call(c, hub, "GET", buf_str(&path), NULL, NULL, &status, &body, e);
	if (r < 0)
		return r;
	if (status == 404)
		return 0;
	if (status >= 200 && status < 300 && json_is_object(body)) {
		*ret = TAKE_PTR(body);
		return 0;
	}
	return hub_error(hub, "read the device twin", status, body, e);
}

int dps_hub_patch_twin(struct http_client *c, const struct dps_linked_hub *hub,
		       const char *device_id, const json_t *patch, struct err *e)
{
	_cleanup_buf_ struct buf path = {0};
	_cleanup_json_ json_t *body = NULL;
	long status;
	int r;

	buf_init(&path, 1024);
	r = device_path("/twins/", device_id, &path);
	if (r >= 0)
		r = dps_hub_call(c, hub, "PATCH", buf_str(&path), patch, "\"*\"", &status, &body,
				 e);
	if (r < 0)
		return r;
	if (status >= 200 && status < 300)
		return 0;
	return hub_error(hub, "update the device twin", status, body, e);
}
