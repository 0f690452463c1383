/* SPDX-License-Identifier: MIT */
/*
 * edgeid's provisioning service (DPS), inside edgeid-cloud.
 *
 * Files, one role each:
 *   dps.c          the service entry (cloud_service_dps), request routing,
 *                  the DPS error body, group commit (http.h)
 *   config.c       the [dps] table
 *   values.c       timestamps, ids, generated keys, etags
 *   enrollment.c   individual enrollments and enrollment groups: validation,
 *                  normalisation, the service views, CRUD on the store
 *   registration.c registration records (DeviceRegistrationState)
 *   ca.c           CA certificates and their proof of possession
 *   cert.c         X.509 helpers
 *   attest.c       attestation: which enrollment a request proves, by SAS,
 *                  TLS client certificate or TPM challenge
 *   allocation.c   hashed / static / custom hub selection
 *   hub_client.c   the linked hubs' registry REST API
 *   assign.c       the assignment that completes a registration, on a small
 *                  thread pool per worker
 *   device_api.c   the device registration API (PUT register, GET operation)
 *   hold.c         register answers held until their assignment is final
 *   service_api.c  the enrollment service API
 *   admin.c        the admin nouns (enrollment, group, ca, registration)
 *
 * What crosses the worker boundary: nothing but the store. A registration
 * record holds everything needed to finish its assignment, so any worker
 * (of any process) can finish one that another acknowledged and then lost.
 */
#ifndef EDGEID_DPS_H
#define EDGEID_DPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>
#include <openssl/x509.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/macro.h"

struct store;
struct toml_value;

/* Limits from the DPS quotas and the service spec. */
#define DPS_ID_MAX 128           /* registration ids, group ids, device ids */
#define DPS_BODY_MAX (96 * 1024) /* "max message size 96 KB" */
#define DPS_BULK_MAX 10
#define DPS_PAGE_DEFAULT 100
#define DPS_PAGE_MAX 1000
#define DPS_GENERATED_KEY_BYTES 64
#define DPS_KEY_MIN_BYTES 16
#define DPS_KEY_MAX_BYTES 64
#define DPS_TPM_KEY_BYTES 32
#define DPS_HUB_API_VERSION "2021-04-12"
/* [dps] register_wait_ms: the default, and the most a request is held. */
#define DPS_REGISTER_WAIT_DEFAULT_MS 250
#define DPS_REGISTER_WAIT_MAX_MS 5000

enum dps_allocation {
	DPS_ALLOC_NONE = 0, /* not set on the enrollment: the service default */
	DPS_ALLOC_HASHED,
	DPS_ALLOC_GEOLATENCY, /* one region here: the same as hashed */
	DPS_ALLOC_STATIC,
	DPS_ALLOC_CUSTOM,
};

struct dps_policy {
	char *name;
	char *primary_key;   /* base64 */
	char *secondary_key; /* base64 or NULL */
};

struct dps_linked_hub {
	char *host_name;
	char *key_name;
	char *key; /* base64 */
	unsigned weight;
	bool apply_allocation_policy;
	char *ca_file; /* trust for its registry API; NULL: the system store */
};

struct dps_ca_config {
	char *name;
	X509 *cert;
};

struct dps_settings {
	char *id_scope;
	char *host_name; /* the service API's SAS audience */
	char *store_url;
	struct dps_policy *policies;
	size_t n_policies;
	struct dps_linked_hub *hubs;
	size_t n_hubs;
	struct dps_ca_config *cas; /* trusted (verified) by configuration */
	size_t n_cas;
	enum dps_allocation default_allocation;
	unsigned retry_after; /* seconds, sent on every 202 */
	/* How long register holds its answer for the assignment to finish
	 * (device_api.c); 0: answer "assigning" at once. */
	unsigned register_wait_ms;
	unsigned assignment_threads; /* per worker process */
	char *webhook_ca_file;       /* trust for custom allocation webhooks */
	/* How long an "assigning" record may go without progress before a
	 * status poll hands it to another worker. */
	unsigned assignment_stale_s;
};

/* config.c */
/* Parse the [dps] table (NULL: absent) of the config file named file.
 * host_name and store_url come from the runtime (may be NULL). Returns 0
 * and *ret (dps_settings_free), -EINVAL with "FILE:LINE:COL: dps.KEY:
 * expected ..." in e, -ENOMEM, or the errno of reading a CA file. */
int dps_config_parse_table(const struct toml_value *table, const char *file, const char *host_name,
			   const char *store_url, struct dps_settings **ret, struct err *e);
void dps_settings_free(struct dps_settings *s);
DEFINE_CLEANUP_FUNC(struct dps_settings *, dps_settings_free)

/* Parse "HostName=h;SharedAccessKeyName=n;SharedAccessKey=k" (keys in any
 * order, names case-insensitive). Strings are the caller's. Returns 0,
 * -EINVAL with the missing or malformed part in e. */
int dps_parse_connection_string(const char *s, char **ret_host, char **ret_key_name, char **ret_key,
				struct err *e);

const char *dps_allocation_name(enum dps_allocation a);
/* "hashed", "geoLatency", "static", "custom" (case-insensitive). 0 or -EINVAL. */
int dps_allocation_parse(const char *s, enum dps_allocation *ret);

/* The linked hub with that host name (case-insensitive), or NULL. */
const struct dps_linked_hub *dps_settings_find_hub(const struct dps_settings *s,
						   const char *host_name);

/* --- errors ---------------------------------------------------------------- */

/* What the service answers when a library function fails: an HTTP status
 * and a six-digit DPS errorCode, with the message in struct err. */
struct dps_status {
	int http;
	int code;
};

/* errorCodes used throughout (dps-protocol.md §1.7: status * 1000 + sub-code;
 * 400004, 401002, 404201, 404202, 400208, 400209 are attested publicly, the
 * others follow the pattern). */
#define DPS_E_BAD_REQUEST 400000
#define DPS_E_INVALID 400004
#define DPS_E_HUB_NOT_SPECIFIED 400208
#define DPS_E_HUB_UNAUTHORIZED 400209
#define DPS_E_UNAUTHORIZED 401002
#define DPS_E_NOT_FOUND 404000
#define DPS_E_ENROLLMENT_NOT_FOUND 404201
#define DPS_E_GROUP_NOT_FOUND 404202
#define DPS_E_REGISTRATION_NOT_FOUND 404203
#define DPS_E_CA_NOT_FOUND 404204
#define DPS_E_METHOD 405000
#define DPS_E_CONFLICT 409000
#define DPS_E_PRECONDITION 412000
#define DPS_E_TOO_LARGE 413000
#define DPS_E_INTERNAL 500000
#define DPS_E_HUB_FAILED 500208
#define DPS_E_WEBHOOK_FAILED 500209

/* --- time and ids ------------------------------------------------------- */

/* "2024-01-01T00:00:00.1234567Z" (seven fractional digits, as DPS prints
 * them) for the current time, into ret (at least 32 bytes). */
void dps_now_iso(char *ret, size_t size);
/* A random RFC 4122 v4 UUID string into ret (37 bytes). */
void dps_uuid(char ret[37]);

/* Whether s is a valid registration id (also enrollment group ids): 1 to
 * 128 characters, letters, digits, '-', '.', '_', ':', starting and ending
 * with a letter or digit. */
bool dps_valid_registration_id(const char *s);
/* Whether s is a valid IoT Hub device id: 1 to 128 characters of
 * letters, digits and - : . + % _ # * ? ! ( ) , = @ $ '. */
bool dps_valid_device_id(const char *s);

/* Append n random bytes as standard base64 to out (a symmetric key).
 * 0, -E2BIG, -ENOMEM, -EIO. */
int dps_random_key(size_t n, struct buf *out);
/* Whether s is standard base64 of DPS_KEY_MIN_BYTES..DPS_KEY_MAX_BYTES. */
bool dps_valid_key(const char *s);

/* Compare etags with surrounding double quotes ignored; "*" matches any. */
bool dps_etag_matches(const char *if_match, const char *etag);
/* The If-Match header value without surrounding quotes, into a new
 * string (caller frees); NULL when value is NULL or empty. "*" stays "*". */
char *dps_etag_unquote(const char *value);

#endif
