/* SPDX-License-Identifier: MIT */
/*
 * The hub: an IoT Hub registry (devices, modules, twins) that Microsoft's
 * azure-iothub Registry drives unchanged, and the device-facing HTTPS
 * endpoints (telemetry, cloud-to-device polling) of azure-iot-device-http.
 * hub-protocol.md is the reference for every field and status.
 *
 * Files:
 *   hub.c           the service table, worker setup, request routing
 *   hub_config.c    [hub] keys: shared access policies, device CAs
 *   hub_auth.c      who is calling: service SAS, device SAS, device X.509,
 *                   an IoT Edge device on its own modules
 *   hub_registry.c  devices and modules: validation, storage, views
 *   hub_twin.c      twins: merge-patch, replace, versions, $metadata
 *   hub_http.c      the HTTP handlers (registry, twins, device-facing)
 *   hub_admin.c     `edgeid-cloud device ...` and `telemetry ...`
 *
 * Registry functions take a store and return 0 or a negative errno; a
 * failure a client caused also fills struct hub_error with the HTTP status,
 * the IoT Hub error code and one sentence, which hub_http.c sends as
 *   {"Message":"ErrorCode:<code>;<sentence>","ExceptionMessage":"..."}
 * and the admin commands print.
 */
#ifndef EDGEID_CLOUD_HUB_H
#define EDGEID_CLOUD_HUB_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/x509.h>

#include "cloud/cloud.h"
#include "common/macro.h"

struct store;

/* Telemetry body limit (hub-protocol.md §9: D2C message 256 KB). */
#define HUB_MESSAGE_MAX (256 * 1024)
/* Device and module ids: at most 128 ASCII characters. */
#define HUB_ID_MAX 128
/* Twin limits (§9): tags 8 KB, desired and reported 32 KB each, depth 10. */
#define HUB_TWIN_TAGS_MAX (8 * 1024)
#define HUB_TWIN_PROPERTIES_MAX (32 * 1024)
#define HUB_TWIN_DEPTH_MAX 10
/* Devices per list call (the REST API's maximum for `top`). */
#define HUB_LIST_MAX 1000

/* --- settings ([hub] table) ---------------------------------------------- */

enum hub_right {
	HUB_RIGHT_REGISTRY_READ = 1 << 0,
	HUB_RIGHT_REGISTRY_WRITE = 1 << 1,
	HUB_RIGHT_SERVICE_CONNECT = 1 << 2,
	HUB_RIGHT_DEVICE_CONNECT = 1 << 3,
};

struct hub_policy {
	char *name;
	char *primary_key;   /* base64; wiped when freed */
	char *secondary_key; /* NULL when not configured */
	unsigned rights;     /* enum hub_right bits */
};

struct hub_settings {
	char *host_name; /* the hub's name: SAS audience, store key */
	struct hub_policy *policies;
	size_t n_policies;
	STACK_OF(X509) * ca; /* trusted for certificateAuthority devices */
};

/* config_parse / config_free of cloud_service_hub. */
int hub_config_parse(const struct toml_value *table, const struct cloud_config *cfg,
		     const struct cloud_service_common *common, void **ret_settings, struct err *e);
void hub_config_free(void *settings);

/* "RegistryRead RegistryWrite ServiceConnect DeviceConnect" (separated by
 * spaces and/or commas, any order) into enum hub_right bits; RegistryWrite
 * includes RegistryRead. Returns 0, or -EINVAL with *ret_bad_offset (may be
 * NULL) at the first unknown word (0 when there is no word at all). */
int hub_rights_parse(const char *text, unsigned *ret_rights, size_t *ret_bad_offset);

/* --- errors ---------------------------------------------------------------- */

struct hub_error {
	int status;       /* HTTP status */
	const char *code; /* "DeviceNotFound" (static) */
	char message[512];
};

/* Fill he (may be NULL) and return the negative errno matching status
 * (400 -EINVAL, 401 -EACCES, 404 -ENOENT, 409 -EEXIST, 412 -ESTALE,
 * 413 -E2BIG, others -EIO). */
int hub_fail(struct hub_error *he, int status, const char *code, const char *fmt, ...)
    _printf_(4, 5);

/* --- who is calling ---------------------------------------------------------- */

/* A service call: Authorization must be a SAS with sr = the hub's host
 * name and skn = a policy whose keys sign it and whose rights include one
 * of need (enum hub_right bits). now 0 means time(NULL). Returns 0 or
 * -EACCES with a 401 IotHubUnauthorizedAccess in he. */
int hub_auth_service(const struct hub_settings *hs, const char *authorization, unsigned need,
		     uint64_t now, struct hub_error *he);

/* A device (module_id NULL) or module call for the identity doc (as
 * stored; NULL when it does not exist): a SAS whose sr is
 * {host}/devices/{id}[/modules/{mid}] signed with the identity's keys (or
 * with skn = a policy with DeviceConnect), or else the TLS client chain
 * (chain may be NULL): selfSigned identities by the SHA-1 or SHA-256
 * thumbprint of the leaf, certificateAuthority ones by a chain to
 * ca_store whose leaf CN is the device id. A disabled device, or a
 * missing one, is refused like a bad credential. Returns 0 or -EACCES with
 * a 401 IotHubUnauthorizedAccess in he. */
int hub_auth_device(const struct hub_settings *hs, const char *authorization, const char *device_id,
		    const char *module_id, const json_t *identity, STACK_OF(X509) * chain,
		    X509_STORE *ca_store, uint64_t now, struct hub_error *he);

/* A registry call on the modules of device_id (hub-protocol.md §7). Either
 * a service call, checked as hub_auth_service does (a SAS that names a
 * policy, anything that is not a SAS, or no credential at all), or the
 * device itself, as aziot-identityd calls for an IoT Edge device: a SAS
 * without skn signed with the device's keys (a TPM-signed one included) or
 * its TLS client certificate, checked as hub_auth_device does against
 * device (its stored document; NULL when it does not exist), and only when
 * the device has capabilities.iotEdge, as IoT Hub lets only IoT Edge
 * devices manage their modules. *ret_by_device says which one spoke.
 * Returns 0, or -EACCES with a 401 IotHubUnauthorizedAccess in he (500
 * ServerError on -ENOMEM). */
int hub_auth_modules(const struct hub_settings *hs, const char *authorization, unsigned need,
		     const char *device_id, const json_t *device, STACK_OF(X509) * chain,
		     X509_STORE *ca_store, uint64_t now, bool *ret_by_device, struct hub_error *he);

/* A verification store holding hs->ca (the caller frees it). NULL on -ENOMEM. */
X509_STORE *hub_ca_store_new(const struct hub_settings *hs);

/* --- registry ---------------------------------------------------------------- */

/* Whether id is a valid device or module id: 1 to 128 ASCII letters, digits
 * and - . % _ * ? ! ( ) , : = @ $ ' */
bool hub_id_valid(const char *id);

/* "2024-05-01T12:00:00.1234567Z" for ms since the epoch (0: now). 40 bytes. */
void hub_time_format(int64_t ms, char out[40]);

/* Build the stored document of a device from a request body (the Device
 * JSON of §4.1) for device_id, given the current document (NULL on
 * create). Keys left empty are generated (or kept from current), a new
 * generationId is made on create, status times are kept or set, and the
 * output fields are in the order Azure sends them. now_ms 0 means now.
 * Returns 0 and *ret (caller's), or -EINVAL with a 400 ArgumentInvalid
 * naming the field in he, or -ENOMEM. */
int hub_device_build(const json_t *body, const char *device_id, const json_t *current,
		     int64_t now_ms, json_t **ret, struct hub_error *he);
/* The same for a module of device_id (§4.2). */
int hub_module_build(const json_t *body, const char *device_id, const char *module_id,
		     const json_t *current, int64_t now_ms, json_t **ret, struct hub_error *he);

/* The JSON a client sees: the stored document plus "etag". Caller's. */
json_t *hub_identity_view(const json_t *doc, const char *etag);

/* Store-level operations, shared by the REST handlers and the admin
 * commands. hub is the host name. if_match is the raw If-Match header
 * (quoted or not; "*" any; NULL none). *ret (when given) is the view the
 * client gets, the caller's.
 *
 * hub_device_put: no if_match creates (409 DeviceAlreadyExists when it
 * exists); otherwise updates (404 DeviceNotFound, 412 PreconditionFailed).
 * A new device gets a twin. */
int hub_device_put(struct store *st, const char *hub, const char *device_id, const json_t *body,
		   const char *if_match, json_t **ret, struct hub_error *he);
int hub_device_get(struct store *st, const char *hub, const char *device_id, json_t **ret_doc,
		   char **ret_etag, struct hub_error *he);
/* Also deletes the device's modules and twins. */
int hub_device_delete(struct store *st, const char *hub, const char *device_id,
		      const char *if_match, struct hub_error *he);
/* Up to max devices (views) in id order, as a JSON array. */
int hub_device_list(struct store *st, const char *hub, size_t max, json_t **ret,
		    struct hub_error *he);

int hub_module_put(struct store *st, const char *hub, const char *device_id, const char *module_id,
		   const json_t *body, const char *if_match, json_t **ret, struct hub_error *he);
int hub_module_get(struct store *st, const char *hub, const char *device_id, const char *module_id,
		   json_t **ret_doc, char **ret_etag, struct hub_error *he);
int hub_module_delete(struct store *st, const char *hub, const char *device_id,
		      const char *module_id, const char *if_match, struct hub_error *he);
int hub_module_list(struct store *st, const char *hub, const char *device_id, json_t **ret,
		    struct hub_error *he);

/* --- twins ------------------------------------------------------------------- */

/* A new twin document (what is stored): empty tags, desired and reported
 * at $version 1, version 1. Caller's; NULL on -ENOMEM. */
json_t *hub_twin_new(int64_t now_ms);

/* Apply a PATCH body ({"tags":{..},"properties":{"desired":{..}}}, JSON
 * merge-patch: null deletes) to the stored twin in place: tags and desired
 * merged, $metadata updated, desired $version incremented when desired
 * changed, version incremented. With replace (PUT), tags and desired are
 * replaced by the body's instead. Reported properties cannot be written by
 * a service. Validates keys (no '.', '$', space or control characters; at
 * most 1 KB), depth (at most 10) and sizes. Returns 0, -EINVAL with a 400
 * ArgumentInvalid in he, -E2BIG with a 400 too, -ENOMEM. */
int hub_twin_apply(json_t *twin, const json_t *body, bool replace, int64_t now_ms,
		   struct hub_error *he);

/* The Twin JSON of §4.3 for the stored twin and its device or module
 * (identity, as stored, with identity_etag). Caller's; NULL on -ENOMEM. */
json_t *hub_twin_view(const json_t *twin, const char *twin_etag, const json_t *identity,
		      const char *identity_etag, const char *module_id);

/* GET / PATCH / PUT a twin through the store. module_id NULL for the
 * device's. 404 DeviceNotFound / ModuleNotFound, 412 PreconditionFailed. */
int hub_twin_get(struct store *st, const char *hub, const char *device_id, const char *module_id,
		 json_t **ret, struct hub_error *he);
int hub_twin_update(struct store *st, const char *hub, const char *device_id, const char *module_id,
		    const json_t *body, bool replace, const char *if_match, json_t **ret,
		    struct hub_error *he);

/* --- admin ------------------------------------------------------------------- */

extern const struct cloud_admin_noun hub_admin_nouns[];

/* --- HTTP -------------------------------------------------------------------- */

struct hub_worker;
/* Route every request of w->http to the hub. */
int hub_http_init(struct cloud_worker *w, const struct hub_settings *hs, struct hub_worker **ret,
		  struct err *e);
void hub_http_free(struct hub_worker *hw);

#endif
