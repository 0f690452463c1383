/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/rand.h>
#include <sys/eventfd.h>

#include "cloud/dps/allocation.h"
#include "cloud/dps/assign.h"
#include "cloud/dps/attest.h"
#include "cloud/dps/enrollment.h"
#include "cloud/dps/hub_client.h"
#include "cloud/dps/registration.h"
#include "cloud/store/store.h"
#include "common/encode.h"
#include "common/http_client.h"
#include "common/json.h"
#include "common/log.h"
#include "crypto/sas.h"
#include "crypto/tpm_blob.h"
#include "crypto/tpm_public.h"

#define QUEUE_MAX 65536
/* Outcomes written in one transaction at most. */
#define BATCH_MAX 32
/* Jobs a thread takes at once when it writes its own outcomes (no loop);
 * with a loop, one at a time, so that no job waits behind another's hub
 * call while a thread is idle. */
#define THREAD_TAKE_MAX 8
#define WEBHOOK_TIMEOUT_MS 10000
#define WEBHOOK_RESPONSE_MAX (64 * 1024)
/* Transient hub failures are retried this many times, 250 ms apart. */
#define HUB_ATTEMPTS 3

struct job {
	char *registration_id;
	char *operation_id;
	json_t *outcome; /* fields to merge into the record; NULL: nothing to write */
	void *tag;       /* handed back to hooks.done; never dereferenced here */
	struct job *next;
};

struct dps_assigner {
	const struct dps_settings *settings;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct job *head, *tail;
	size_t queued;
	bool stop;
	pthread_t *threads;
	/* One HTTP client per thread, made on the loop's thread (libcurl's
	 * global setup is not to be raced). */
	struct http_client **clients;
	size_t n_threads;
	/* With an event loop: finished jobs go back to it (done list, eventfd)
	 * and are written by the loop's store handle in its batch. */
	struct store *loop_store;
	struct dps_assigner_hooks hooks;
	int efd;
	struct event *done_ev;
	struct job *done_head, *done_tail;
};

static void job_free(struct job *j)
{
	if (!j)
		return;
	free(j->registration_id);
	free(j->operation_id);
	json_decref(j->outcome);
	free(j);
}

/* Hand a tagged job back to whoever submitted it (the loop's thread). */
static void job_done(struct dps_assigner *a, struct job *j)
{
	if (j->tag && a->hooks.done)
		a->hooks.done(a->hooks.userdata, j->tag);
	j->tag = NULL;
}

/* --- the outcome of one job ------------------------------------------------ */

static json_t *failed(int code, const char *message)
{
	return json_pack("{s:s, s:i, s:s}", "status", "failed", "errorCode", code, "errorMessage",
			 message);
}

static int status_code_of(int r)
{
	return r == -EACCES ? DPS_E_HUB_UNAUTHORIZED : DPS_E_HUB_FAILED;
}

/* A device twin's tags and desired properties, without the metadata the
 * hub adds, as a patch for another hub. */
static json_t *twin_patch_from(const json_t *twin)
{
	json_t *tags = json_object_get(twin, "tags");
	json_t *desired = json_object_get(json_object_get(twin, "properties"), "desired");
	json_t *patch = json_object(), *d;
	const char *k;
	json_t *v;

	if (!patch)
		return NULL;
	if (json_is_object(tags) && json_object_size(tags) > 0)
		json_object_set(patch, "tags", tags);
	if (json_is_object(desired)) {
		d = json_object();
		json_object_foreach (desired, k, v) {
			if (k[0] != '$')
				json_object_set(d, k, v);
		}
		if (json_object_size(d) > 0)
			json_object_set_new(patch, "properties", json_pack("{s:o}", "desired", d));
		else
			json_decref(d);
	}
	return patch;
}

/* The device's hub authentication, and for TPM the blob delivering K2. */
static int device_authentication(const json_t *doc, const json_t *enrollment,
				 const char *registration_id, json_t **ret_auth,
				 json_t **ret_tpm_result, struct err *e)
{
	json_t *priv = dps_registration_private(doc);
	const char *type = json_string_value(json_object_get(priv, "attestation"));
	const char *group = json_string_value(json_object_get(priv, "group"));
	json_t *att = json_object_get(enrollment, "attestation");
	int r;

	*ret_auth = NULL;
	*ret_tpm_result = NULL;
	if (!type)
		return err_set(e, -EBADMSG, "the registration record names no attestation");
	if (streq(type, "symmetricKey")) {
		json_t *keys = json_object_get(att, "symmetricKey");
		const char *p = json_string_value(json_object_get(keys, "primaryKey"));
		const char *s = json_string_value(json_object_get(keys, "secondaryKey"));
		_cleanup_buf_ struct buf dp = {0}, ds = {0};

		buf_init_secret(&dp, 256);
		buf_init_secret(&ds, 256);
		if (!p)
			return err_set(e, -EBADMSG, "the enrollment has no symmetric key");
		if (group) {
			r = sas_derive_device_key(p, registration_id, &dp, e);
			if (r >= 0 && s)
				r = sas_derive_device_key(s, registration_id, &ds, e);
			if (r < 0)
				return r;
			p = buf_str(&dp);
			s = s ? buf_str(&ds) : NULL;
		}
		*ret_auth = json_pack("{s:s, s:{s:s, s:s}}", "type", "sas", "symmetricKey",
				      "primaryKey", p, "secondaryKey", s ? s : p);
	} else if (streq(type, "x509")) {
		json_t *certs = json_object_get(json_object_get(att, "x509"), "clientCertificates");
		const char *t1, *t2;

		if (group) {
			*ret_auth = json_pack("{s:s}", "type", "certificateAuthority");
		} else {
			t1 = json_string_value(json_object_get(
			    json_object_get(json_object_get(certs, "primary"), "info"),
			    "sha1Thumbprint"));
			t2 = json_string_value(json_object_get(
			    json_object_get(json_object_get(certs, "secondary"), "info"),
			    "sha1Thumbprint"));
			*ret_auth = json_pack("{s:s, s:{s:s}}", "type", "selfSigned",
					      "x509Thumbprint", "primaryThumbprint", t1 ? t1 : "");
			if (*ret_auth && t2)
				json_object_set_new(json_object_get(*ret_auth, "x509Thumbprint"),
						    "secondaryThumbprint", json_string(t2));
		}
	} else if (streq(type, "tpm")) {
		const char *ek_text = json_string_value(
		    json_object_get(json_object_get(att, "tpm"), "endorsementKey"));
		const char *srk_text =
		    json_string_value(json_object_get(json_object_get(priv, "request"), "srk"));
		_cleanup_buf_ struct buf blob = {0}, b64 = {0}, k2_b64 = {0}, k2s_b64 = {0};
		struct tpm_public ek, srk;
		uint8_t k2[DPS_TPM_KEY_BYTES], k2s[DPS_TPM_KEY_BYTES];

		if (!ek_text || tpm_public_parse_base64(ek_text, TPM_ALG_RSA, &ek, e) < 0 ||
		    !srk_text || tpm_public_parse_base64(srk_text, TPM_ALG_RSA, &srk, e) < 0)
			return err_set(e, -EBADMSG,
				       "the TPM keys of the registration are unusable");
		/* K2, the hub key: the device gets it only inside the blob. The
		 * secondary key is random too; no one can use it. */
		if (RAND_priv_bytes(k2, sizeof(k2)) != 1 || RAND_priv_bytes(k2s, sizeof(k2s)) != 1)
			return -EIO;
		buf_init(&blob, TPM_BLOB_MAX);
		buf_init(&b64, TPM_BLOB_MAX * 2);
		buf_init_secret(&k2_b64, 128);
		buf_init_secret(&k2s_b64, 128);
		r = tpm_blob_build(&ek, &srk, k2, sizeof(k2), &blob, e);
		if (r >= 0)
			r = base64_encode(&b64, blob.data, blob.len, B64_STANDARD);
		if (r >= 0)
			r = base64_encode(&k2_b64, k2, sizeof(k2), B64_STANDARD);
		if (r >= 0)
			r = base64_encode(&k2s_b64, k2s, sizeof(k2s), B64_STANDARD);
		explicit_bzero(k2, sizeof(k2));
		explicit_bzero(k2s, sizeof(k2s));
		if (r < 0)
			return r;
		*ret_auth =
		    json_pack("{s:s, s:{s:s, s:s}}", "type", "sas", "symmetricKey", "primaryKey",
			      buf_str(&k2_b64), "secondaryKey", buf_str(&k2s_b64));
		*ret_tpm_result = json_pack("{s:s}", "authenticationKey", buf_str(&b64));
		if (!*ret_tpm_result)
			return -ENOMEM;
	} else {
		return err_set(e, -EBADMSG, "unknown attestation \"%s\"", type);
	}
	return *ret_auth ? 0 : -ENOMEM;
}

/* The custom allocation webhook: which hub, and what initial twin and
 * payload. */
static int call_webhook(struct http_client *c, const struct dps_settings *settings,
			const json_t *doc, const json_t *enrollment,
			const struct dps_linked_hub *const *candidates, size_t n,
			const struct dps_linked_hub **ret_hub, json_t **ret_twin,
			json_t **ret_payload, struct err *e)
{
	_cleanup_(http_client_response_freep) struct http_client_response resp = {0};
	_cleanup_json_ json_t *body = NULL, *context = NULL, *hubs = json_array(), *answer = NULL;
	_cleanup_free_ char *text = NULL;
	json_t *priv = dps_registration_private(doc);
	json_t *request = json_object_get(priv, "request");
	const char *type = json_string_value(json_object_get(priv, "attestation"));
	const char *url = json_string_value(json_object_get(
	    json_object_get(enrollment, "customAllocationDefinition"), "webhookUrl"));
	const char *host;
	struct http_header headers[] = {
	    {"Content-Type", "application/json; charset=utf-8"},
	    {"Accept", "application/json"},
	};
	int r;

	*ret_hub = NULL;
	*ret_twin = *ret_payload = NULL;
	if (!hubs)
		return -ENOMEM;
	if (!url)
		return err_set(
		    e, -ENOENT,
		    "The allocation policy is custom, but the enrollment has no webhookUrl.");
	for (size_t i = 0; i < n; i++)
		json_array_append_new(hubs, json_string(candidates[i]->host_name));
	context = json_pack("{s:O}", "registrationId", json_object_get(doc, "registrationId"));
	if (!context)
		return -ENOMEM;
	if (json_object_get(doc, "assignedHub"))
		json_object_set(context, "currentIotHubHostName",
				json_object_get(doc, "assignedHub"));
	if (json_object_get(doc, "deviceId"))
		json_object_set(context, "currentDeviceId", json_object_get(doc, "deviceId"));
	if (type && streq(type, "tpm"))
		json_object_set_new(
		    context, "tpm",
		    json_pack(
			"{s:O, s:O}", "endorsementKey",
			json_object_get(
			    json_object_get(json_object_get(enrollment, "attestation"), "tpm"),
			    "endorsementKey"),
			"storageRootKey", json_object_get(request, "srk")));
	else if (type && streq(type, "x509"))
		json_object_set_new(context, "x509",
				    json_pack("{s:O*}", "certificateInfo",
					      json_object_get(request, "certificateInfo")));
	else
		json_object_set_new(context, "symmetricKey", json_object());
	if (json_object_get(request, "payload"))
		json_object_set(context, "payload", json_object_get(request, "payload"));
	{
		_cleanup_json_ json_t *view = dps_enrollment_view(enrollment, NULL, false, NULL);

		body = json_pack("{s:O, s:O, s:O}",
				 json_object_get(enrollment, "enrollmentGroupId")
				     ? "enrollmentGroup"
				     : "individualEnrollment",
				 view, "deviceRuntimeContext", context, "linkedHubs", hubs);
	}
	text = json_dump_compact(body);
	if (!text)
		return -ENOMEM;
	{
		struct http_client_request req = {
		    .method = "POST",
		    .url = url,
		    .headers = headers,
		    .n_headers = ARRAY_SIZE(headers),
		    .body = text,
		    .body_len = strlen(text),
		    .timeout_ms = WEBHOOK_TIMEOUT_MS,
		    .max_response_bytes = WEBHOOK_RESPONSE_MAX,
		    .ca_file = settings->webhook_ca_file,
		};

		r = http_client_perform(c, &req, &resp, e);
	}
	if (r < 0)
		return r;
	if (resp.status < 200 || resp.status >= 300)
		return err_set(e, -EPROTO, "The custom allocation webhook answered HTTP %ld.",
			       resp.status);
	if (json_parse(resp.body.data, resp.body.len, 0, &answer, NULL) < 0 ||
	    !json_is_object(answer))
		return err_set(e, -EPROTO,
			       "The custom allocation webhook did not answer a JSON object.");
	host = json_string_value(json_object_get(answer, "iotHubHostName"));
	if (!host)
		return err_set(e, -ENOENT,
			       "The custom allocation webhook returned no iotHubHostName.");
	for (size_t i = 0; i < n; i++)
		if (strcasecmp(candidates[i]->host_name, host) == 0)
			*ret_hub = candidates[i];
	if (!*ret_hub)
		return err_set(
		    e, -ENOENT,
		    "The custom allocation webhook returned \"%s\", which is not one of the "
		    "enrollment's linked IoT hubs.",
		    host);
	if (json_is_object(json_object_get(answer, "initialTwin")))
		*ret_twin = json_incref(json_object_get(answer, "initialTwin"));
	if (json_object_get(answer, "payload") && !json_is_null(json_object_get(answer, "payload")))
		*ret_payload = json_incref(json_object_get(answer, "payload"));
	return 0;
}

static void pause_ms(unsigned ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

/* Transport failures and 5xx answers are worth another try; an answer
 * that refuses (4xx) is not. */
static bool transient(int r)
{
	return r != -EACCES && r != -EPROTO && r != -EINVAL && r != -ENOMEM;
}

static int hub_upsert(struct http_client *c, const struct dps_linked_hub *hub, const char *id,
		      const json_t *device, struct err *e)
{
	int r = 0;

	for (int i = 0; i < HUB_ATTEMPTS; i++) {
		err_clear(e);
		r = dps_hub_upsert_device(c, hub, id, device, e);
		if (r >= 0 || !transient(r))
			return r;
		pause_ms(250);
	}
	return r;
}

/* The device moves from (old_hub, old_id) to (hub, device_id): another
 * hub, or another device id. Its data in the new place comes from the old
 * device's twin (migrate: tags and desired properties) or from *twin, the
 * initial twin (!migrate); the caller removes the old device once the new
 * one is written (ReprovisionPolicy, dps-protocol.md §5: "Device data was
 * removed from the previously assigned IoT hub").
 *
 * A job may run twice (its process died before it wrote the outcome), so
 * the old device is the mark of progress. While it exists, whatever the
 * new hub has under device_id is stale and is deleted, so that the device
 * starts there from exactly the data chosen. Once it is gone, an earlier
 * run already moved the device: the new hub's device keeps its data
 * (*twin becomes NULL). Neither there: the device starts from *twin.
 * Returns 0 or the hub failure (message in e). */
static int move_device(struct http_client *c, const struct dps_linked_hub *old_hub,
		       const char *old_id, const struct dps_linked_hub *hub, const char *device_id,
		       bool migrate, json_t **twin, struct err *e)
{
	_cleanup_json_ json_t *old = NULL, *current = NULL;
	int r;

	r = dps_hub_get_twin(c, old_hub, old_id, &old, e);
	if (r < 0)
		return r;
	if (old) {
		r = dps_hub_delete_device(c, hub, device_id, e);
		if (r < 0)
			return r;
		if (migrate) {
			json_t *patch = twin_patch_from(old);

			if (!patch)
				return -ENOMEM;
			json_decref(*twin);
			*twin = patch;
		}
		return 0;
	}
	r = dps_hub_get_twin(c, hub, device_id, &current, e);
	if (r < 0)
		return r;
	if (current) {
		json_decref(*twin);
		*twin = NULL;
	}
	return 0;
}

static int compute(struct store *store, const struct dps_settings *settings, struct http_client *c,
		   const char *registration_id, const char *operation_id, json_t **ret,
		   struct err *e)
{
	_cleanup_json_ json_t *doc = NULL, *enrollment = NULL, *auth = NULL, *tpm_result = NULL;
	_cleanup_json_ json_t *device = NULL, *twin = NULL, *payload = NULL, *fields = NULL;
	const struct dps_linked_hub *candidates[DPS_ALLOC_MAX_HUBS];
	const struct dps_linked_hub *hub = NULL, *previous_hub;
	json_t *priv, *policy;
	const char *group, *device_id, *previous_id, *substatus;
	struct err why = {0};
	bool update_hub, migrate, moved = false;
	size_t n;
	int r;

	*ret = NULL;
	r = dps_registration_load(store, registration_id, &doc, NULL, e);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	priv = dps_registration_private(doc);
	if (!streq(strempty(json_string_value(json_object_get(doc, "status"))), "assigning") ||
	    !streq(strempty(json_string_value(json_object_get(priv, "operationId"))), operation_id))
		return 0;
	registration_id = json_string_value(json_object_get(doc, "registrationId"));
	if (!registration_id)
		return -EBADMSG;

	group = json_string_value(json_object_get(priv, "group"));
	r = dps_enrollment_load(store, group ? DPS_GROUP : DPS_INDIVIDUAL,
				group ? group : registration_id, &enrollment, NULL, e);
	if (r == -ENOENT) {
		*ret = failed(group ? DPS_E_GROUP_NOT_FOUND : DPS_E_ENROLLMENT_NOT_FOUND,
			      "The enrollment was deleted while the device was registering.");
		return *ret ? 0 : -ENOMEM;
	}
	if (r < 0)
		return r;
	if (streq(strempty(json_string_value(json_object_get(enrollment, "provisioningStatus"))),
		  "disabled")) {
		*ret = json_pack("{s:s}", "status", "disabled");
		return *ret ? 0 : -ENOMEM;
	}

	r = device_authentication(doc, enrollment, registration_id, &auth, &tpm_result, &why);
	if (r < 0) {
		*ret = failed(DPS_E_INTERNAL, err_msg(&why, r));
		return *ret ? 0 : -ENOMEM;
	}

	policy = json_object_get(enrollment, "reprovisionPolicy");
	update_hub = !json_is_false(json_object_get(policy, "updateHubAssignment"));
	migrate = !json_is_false(json_object_get(policy, "migrateDeviceData"));
	previous_hub =
	    dps_settings_find_hub(settings, json_string_value(json_object_get(doc, "assignedHub")));
	previous_id = json_string_value(json_object_get(doc, "deviceId"));
	if (!previous_hub || !previous_id)
		previous_hub = NULL, previous_id = NULL;

	n = dps_alloc_candidates(settings, enrollment, candidates, ARRAY_SIZE(candidates));
	twin = json_incref(json_object_get(enrollment, "initialTwin"));
	if (previous_hub && !update_hub) {
		hub = previous_hub;
	} else {
		switch (dps_alloc_policy(settings, enrollment)) {
		case DPS_ALLOC_STATIC:
			r = dps_alloc_static(settings, enrollment, &hub, &why);
			if (r < 0) {
				*ret = failed(DPS_E_HUB_NOT_SPECIFIED, why.msg);
				return *ret ? 0 : -ENOMEM;
			}
			break;
		case DPS_ALLOC_CUSTOM: {
			json_t *custom_twin = NULL;

			r = call_webhook(c, settings, doc, enrollment, candidates, n, &hub,
					 &custom_twin, &payload, &why);
			if (r < 0) {
				*ret = failed(r == -ENOENT ? DPS_E_HUB_NOT_SPECIFIED
							   : DPS_E_WEBHOOK_FAILED,
					      err_msg(&why, r));
				return *ret ? 0 : -ENOMEM;
			}
			if (custom_twin) {
				json_decref(twin);
				twin = custom_twin;
			}
			break;
		}
		default: {
			size_t i;

			if (dps_alloc_hashed(registration_id, candidates, n, &i) == 0)
				hub = candidates[i];
			break;
		}
		}
	}
	if (!hub) {
		*ret = failed(DPS_E_HUB_NOT_SPECIFIED,
			      "No linked IoT hub is available for this enrollment.");
		return *ret ? 0 : -ENOMEM;
	}

	device_id = json_string_value(json_object_get(enrollment, "deviceId"));
	if (!device_id || json_object_get(enrollment, "enrollmentGroupId"))
		device_id = registration_id;
	device = json_pack(
	    "{s:s, s:s, s:O, s:{s:b}}", "deviceId", device_id, "status", "enabled",
	    "authentication", auth, "capabilities", "iotEdge",
	    json_is_true(json_object_get(json_object_get(enrollment, "capabilities"), "iotEdge")));
	if (!device)
		return -ENOMEM;

	if (!previous_hub) {
		substatus = "initialAssignment";
	} else if (previous_hub == hub && streq(previous_id, device_id)) {
		substatus = migrate ? "reprovisionedToInitialAssignment" : "deviceDataReset";
		if (migrate) {
			json_decref(twin);
			twin = NULL;
		} else {
			r = dps_hub_delete_device(c, hub, device_id, &why);
			if (r < 0) {
				*ret = failed(status_code_of(r), err_msg(&why, r));
				return *ret ? 0 : -ENOMEM;
			}
		}
	} else {
		r = move_device(c, previous_hub, previous_id, hub, device_id, migrate, &twin, &why);
		if (r < 0) {
			*ret = failed(status_code_of(r), err_msg(&why, r));
			return *ret ? 0 : -ENOMEM;
		}
		substatus = migrate ? "deviceDataMigrated" : "deviceDataReset";
		moved = true;
	}

	r = hub_upsert(c, hub, device_id, device, &why);
	if (r >= 0 && twin && json_object_size(twin) > 0) {
		err_clear(&why);
		r = dps_hub_patch_twin(c, hub, device_id, twin, &why);
	}
	/* Last: while the old hub has the device, a rerun of this job starts
	 * the move over from its data. */
	if (r >= 0 && moved) {
		err_clear(&why);
		r = dps_hub_delete_device(c, previous_hub, previous_id, &why);
	}
	if (r < 0) {
		*ret = failed(status_code_of(r), err_msg(&why, r));
		return *ret ? 0 : -ENOMEM;
	}

	fields = json_pack("{s:s, s:s, s:s, s:s}", "status", "assigned", "substatus", substatus,
			   "assignedHub", hub->host_name, "deviceId", device_id);
	if (!fields)
		return -ENOMEM;
	if (payload)
		json_object_set(fields, "payload", payload);
	if (tpm_result)
		json_object_set(fields, "tpm", tpm_result);
	{
		json_t *request = json_object_get(priv, "request");
		const char *type = json_string_value(json_object_get(priv, "attestation"));

		if (type && streq(type, "x509")) {
			json_t *x = json_object();

			if (!x)
				return -ENOMEM;
			if (json_object_get(request, "certificateInfo"))
				json_object_set(x, "certificateInfo",
						json_object_get(request, "certificateInfo"));
			if (group)
				json_object_set_new(x, "enrollmentGroupId", json_string(group));
			if (json_object_get(request, "signingCertificateInfo"))
				json_object_set(x, "signingCertificateInfo",
						json_object_get(request, "signingCertificateInfo"));
			json_object_set_new(fields, "x509", x);
		} else if (type && streq(type, "symmetricKey")) {
			json_object_set_new(fields, "symmetricKey",
					    group ? json_pack("{s:s}", "enrollmentGroupId", group)
						  : json_object());
		}
	}
	*ret = TAKE_PTR(fields);
	return 0;
}

/* Write the outcomes of jobs[0..n) in one transaction. */
static int commit(struct store *store, struct job **jobs, size_t n, struct err *e)
{
	static const char *const cleared[] = {"substatus", "errorCode", "errorMessage", "payload",
					      "tpm",       "x509",      "symmetricKey"};
	bool any = false;
	int r;

	for (size_t i = 0; i < n; i++)
		any = any || jobs[i]->outcome;
	if (!any)
		return 0;
	r = store_tx_begin(store, e);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		_cleanup_json_ json_t *doc = NULL;
		_cleanup_free_ char *etag = NULL;
		struct store_write w = {.coll = STORE_REGISTRATIONS};
		json_t *priv;
		const char *k;
		json_t *v;
		char now[40];

		if (!jobs[i]->outcome)
			continue;
		r = dps_registration_load(store, jobs[i]->registration_id, &doc, &etag, e);
		if (r == -ENOENT)
			continue;
		if (r < 0)
			goto fail;
		priv = dps_registration_private(doc);
		if (!streq(strempty(json_string_value(json_object_get(doc, "status"))),
			   "assigning") ||
		    !streq(strempty(json_string_value(json_object_get(priv, "operationId"))),
			   jobs[i]->operation_id))
			continue;
		for (size_t f = 0; f < ARRAY_SIZE(cleared); f++)
			json_object_del(doc, cleared[f]);
		json_object_foreach (jobs[i]->outcome, k, v)
			json_object_set(doc, k, v);
		dps_now_iso(now, sizeof(now));
		if (!json_object_get(doc, "createdDateTimeUtc"))
			json_object_set_new(doc, "createdDateTimeUtc", json_string(now));
		json_object_set_new(doc, "lastUpdatedDateTimeUtc", json_string(now));
		json_object_del(priv, "request");
		json_object_del(priv, "started");
		w.key.part[0] = jobs[i]->registration_id;
		w.doc = doc;
		w.if_match = etag;
		w.secondary = json_string_value(json_object_get(priv, "group"));
		r = store_put(store, &w, NULL, e);
		if (r < 0)
			goto fail;
	}
	return store_tx_commit(store, e);
fail:
	(void)store_tx_rollback(store, NULL);
	return r;
}

int dps_assign_run(struct store *store, const struct dps_settings *settings,
		   struct http_client *client, const char *registration_id,
		   const char *operation_id, struct err *e)
{
	struct job j = {.registration_id = (char *)registration_id,
			.operation_id = (char *)operation_id};
	struct job *jobs[1] = {&j};
	int r;

	r = compute(store, settings, client, registration_id, operation_id, &j.outcome, e);
	if (r >= 0)
		r = commit(store, jobs, 1, e);
	json_decref(j.outcome);
	return r;
}

int dps_assign_restart(struct store *store, const struct dps_settings *settings, json_t *doc,
		       const char *etag, struct err *e)
{
	json_t *priv = dps_registration_private(doc);
	json_int_t started = json_integer_value(json_object_get(priv, "started"));
	json_int_t now = (json_int_t)time(NULL);
	struct store_write w = {.coll = STORE_REGISTRATIONS};
	int r;

	if (!priv || now - started < (json_int_t)settings->assignment_stale_s)
		return 0;
	if (json_object_set_new(priv, "started", json_integer(now)) < 0)
		return -ENOMEM;
	w.key.part[0] = json_string_value(json_object_get(doc, "registrationId"));
	w.doc = doc;
	w.if_match = etag;
	w.secondary = json_string_value(json_object_get(priv, "group"));
	if (!w.key.part[0])
		return -EBADMSG;
	r = store_put(store, &w, NULL, e);
	if (r == -ESTALE || r == -ENOENT)
		return 0;
	return r < 0 ? r : 1;
}

/* --- the thread pool --------------------------------------------------------- */

struct thread_arg {
	struct dps_assigner *a;
	struct http_client *client;
};

static void *worker(void *userdata)
{
	struct thread_arg *arg = userdata;
	struct dps_assigner *a = arg->a;
	struct http_client *client = arg->client;
	_cleanup_(store_closep) struct store *store = NULL;

	free(arg);
	for (;;) {
		struct job *jobs[BATCH_MAX];
		struct err e = {0};
		size_t n = 0;
		int r;

		pthread_mutex_lock(&a->lock);
		while (!a->stop && !a->head)
			pthread_cond_wait(&a->cond, &a->lock);
		if (a->stop) {
			pthread_mutex_unlock(&a->lock);
			break;
		}
		while (a->head && n < (a->done_ev ? 1 : THREAD_TAKE_MAX)) {
			jobs[n++] = a->head;
			a->head = a->head->next;
			a->queued--;
		}
		if (!a->head)
			a->tail = NULL;
		pthread_mutex_unlock(&a->lock);

		if (!store) {
			r = store_open(a->settings->store_url, &store, &e);
			if (r < 0) {
				log_warn("dps: assignment: cannot open the store: %s",
					 err_msg(&e, r));
				store = NULL;
			}
		}
		for (size_t i = 0; store && i < n; i++) {
			err_clear(&e);
			r = compute(store, a->settings, client, jobs[i]->registration_id,
				    jobs[i]->operation_id, &jobs[i]->outcome, &e);
			if (r < 0)
				log_warn("dps: assignment of %s: %s", jobs[i]->registration_id,
					 err_msg(&e, r));
		}
		/* With a loop every job goes back to it, even one that could
		 * not run: whoever tagged it waits for its end. */
		if (a->done_ev) {
			uint64_t one = 1;

			pthread_mutex_lock(&a->lock);
			for (size_t i = 0; i < n; i++) {
				jobs[i]->next = NULL;
				if (a->done_tail)
					a->done_tail->next = jobs[i];
				else
					a->done_head = jobs[i];
				a->done_tail = jobs[i];
			}
			pthread_mutex_unlock(&a->lock);
			if (write(a->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
				log_warn("dps: assignment: waking the loop: %s", strerror(errno));
			continue;
		}
		if (store) {
			err_clear(&e);
			r = commit(store, jobs, n, &e);
			if (r < 0)
				/* The records stay "assigning"; a poll restarts them. */
				log_warn("dps: assignment: writing %zu outcomes: %s", n,
					 err_msg(&e, r));
		}
		for (size_t i = 0; i < n; i++)
			job_free(jobs[i]);
	}
	return NULL;
}

/* Write the outcomes the threads finished, in the loop's batch. */
static void write_done(struct dps_assigner *a)
{
	struct job *list, *j;
	struct job *jobs[BATCH_MAX];
	struct err e = {0};
	size_t n = 0;
	int r;

	pthread_mutex_lock(&a->lock);
	list = a->done_head;
	a->done_head = a->done_tail = NULL;
	pthread_mutex_unlock(&a->lock);
	if (!list)
		return;
	r = a->hooks.begin_write ? a->hooks.begin_write(a->hooks.userdata, &e) : 0;
	while (list) {
		j = list;
		list = list->next;
		jobs[n++] = j;
		if (n == BATCH_MAX || !list) {
			if (r >= 0) {
				err_clear(&e);
				r = commit(a->loop_store, jobs, n, &e);
			}
			if (r < 0)
				/* The records stay "assigning"; a poll restarts them. */
				log_warn("dps: assignment: writing %zu outcomes: %s", n,
					 err_msg(&e, r));
			for (size_t i = 0; i < n; i++) {
				job_done(a, jobs[i]);
				job_free(jobs[i]);
			}
			n = 0;
			r = 0;
		}
	}
}

static void done_cb(evutil_socket_t fd, short what, void *userdata)
{
	uint64_t count;

	(void)what;
	while (read(fd, &count, sizeof(count)) == (ssize_t)sizeof(count))
		;
	write_done(userdata);
}

int dps_assigner_new(const struct dps_settings *settings, struct event_base *base,
		     struct store *loop_store, const struct dps_assigner_hooks *hooks,
		     struct dps_assigner **ret, struct err *e)
{
	struct dps_assigner *a;
	int r;

	*ret = NULL;
	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->settings = settings;
	a->efd = -1;
	pthread_mutex_init(&a->lock, NULL);
	pthread_cond_init(&a->cond, NULL);
	if (base) {
		a->loop_store = loop_store;
		if (hooks)
			a->hooks = *hooks;
		a->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (a->efd < 0) {
			r = -errno;
			dps_assigner_free(a);
			return err_set(e, r, "dps: eventfd: %s", strerror(-r));
		}
		a->done_ev = event_new(base, a->efd, EV_READ | EV_PERSIST, done_cb, a);
		if (!a->done_ev || event_add(a->done_ev, NULL) < 0) {
			dps_assigner_free(a);
			return -ENOMEM;
		}
	}
	a->threads = calloc(settings->assignment_threads, sizeof(*a->threads));
	if (!a->threads) {
		dps_assigner_free(a);
		return -ENOMEM;
	}
	a->clients = calloc(settings->assignment_threads, sizeof(*a->clients));
	if (!a->clients) {
		dps_assigner_free(a);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < settings->assignment_threads; i++) {
		struct thread_arg *arg = calloc(1, sizeof(*arg));

		a->clients[i] = http_client_new();
		if (!arg || !a->clients[i]) {
			free(arg);
			dps_assigner_free(a);
			return err_set(e, -ENOMEM, "dps: cannot set up the assignment threads");
		}
		arg->a = a;
		arg->client = a->clients[i];
		r = pthread_create(&a->threads[i], NULL, worker, arg);
		if (r != 0) {
			free(arg);
			dps_assigner_free(a);
			return err_set(e, -r, "dps: cannot start the assignment threads: %s",
				       strerror(r));
		}
		a->n_threads++;
	}
	*ret = a;
	return 0;
}

int dps_assigner_submit(struct dps_assigner *a, const char *registration_id,
			const char *operation_id, void *tag)
{
	struct job *j = calloc(1, sizeof(*j));

	if (!j)
		return -ENOMEM;
	j->registration_id = strdup(registration_id);
	j->operation_id = strdup(operation_id);
	j->tag = a->done_ev ? tag : NULL;
	if (!j->registration_id || !j->operation_id) {
		job_free(j);
		return -ENOMEM;
	}
	pthread_mutex_lock(&a->lock);
	if (a->queued >= QUEUE_MAX) {
		pthread_mutex_unlock(&a->lock);
		job_free(j);
		return -EAGAIN;
	}
	if (a->tail)
		a->tail->next = j;
	else
		a->head = j;
	a->tail = j;
	a->queued++;
	pthread_cond_signal(&a->cond);
	pthread_mutex_unlock(&a->lock);
	return 0;
}

void dps_assigner_free(struct dps_assigner *a)
{
	if (!a)
		return;
	pthread_mutex_lock(&a->lock);
	a->stop = true;
	pthread_cond_broadcast(&a->cond);
	pthread_mutex_unlock(&a->lock);
	for (size_t i = 0; i < a->n_threads; i++)
		pthread_join(a->threads[i], NULL);
	/* Finished outcomes are written now rather than redone later. */
	if (a->done_ev) {
		write_done(a);
		event_free(a->done_ev);
	}
	if (a->efd >= 0)
		close(a->efd);
	while (a->head) {
		struct job *next = a->head->next;

		job_done(a, a->head);
		job_free(a->head);
		a->head = next;
	}
	for (unsigned i = 0; a->clients && i < a->settings->assignment_threads; i++)
		http_client_free(a->clients[i]);
	free(a->clients);
	free(a->threads);
	pthread_mutex_destroy(&a->lock);
	pthread_cond_destroy(&a->cond);
	free(a);
}
