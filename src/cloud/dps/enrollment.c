/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "cloud/dps/ca.h"
#include "cloud/dps/cert.h"
#include "cloud/dps/enrollment.h"
#include "cloud/dps/registration.h"
#include "cloud/store/store.h"
#include "common/json.h"
#include "crypto/tpm_public.h"

#define ID_RULE                                                                                    \
	"expected 1 to 128 letters, digits, '-', '.', '_' or ':', starting and ending with a "     \
	"letter or digit"

struct dps_status dps_status_for(int r, enum dps_kind kind)
{
	static const int not_found[] = {
	    [DPS_INDIVIDUAL] = DPS_E_ENROLLMENT_NOT_FOUND,
	    [DPS_GROUP] = DPS_E_GROUP_NOT_FOUND,
	    [DPS_REGISTRATION] = DPS_E_REGISTRATION_NOT_FOUND,
	    [DPS_CA] = DPS_E_CA_NOT_FOUND,
	};

	switch (r) {
	case -EINVAL:
	case -EBADMSG:
	case -ENAMETOOLONG:
		return (struct dps_status){400, DPS_E_INVALID};
	case -ENOENT:
		return (struct dps_status){404, not_found[kind]};
	case -ESTALE:
		return (struct dps_status){412, DPS_E_PRECONDITION};
	case -EEXIST:
		return (struct dps_status){409, DPS_E_CONFLICT};
	case -E2BIG:
		return (struct dps_status){413, DPS_E_TOO_LARGE};
	case -EACCES:
		return (struct dps_status){401, DPS_E_UNAUTHORIZED};
	default:
		return (struct dps_status){500, DPS_E_INTERNAL};
	}
}

const char *dps_kind_id_field(enum dps_kind kind)
{
	return kind == DPS_GROUP ? "enrollmentGroupId" : "registrationId";
}

static enum store_collection kind_collection(enum dps_kind kind)
{
	return kind == DPS_GROUP ? STORE_ENROLLMENT_GROUPS : STORE_ENROLLMENTS;
}

static const char *kind_noun(enum dps_kind kind)
{
	return kind == DPS_GROUP ? "enrollment group" : "enrollment";
}

/* --- normalisation ------------------------------------------------------ */

static int set_new(json_t *obj, const char *key, json_t *value)
{
	if (!value)
		return -ENOMEM;
	return json_object_set_new(obj, key, value) == 0 ? 0 : -ENOMEM;
}

static int set_copy(json_t *obj, const char *key, const json_t *value)
{
	return set_new(obj, key, json_deep_copy(value));
}

/* A symmetric key at path: the client's (validated), else existing's, else
 * a new one. */
static int normalize_key(const json_t *given, const char *name, const json_t *existing, json_t *out,
			 struct err *e)
{
	const char *key = NULL, *old = NULL;
	struct err ignore = {0};
	int r;

	r = given ? json_get_string_opt(given, name, &key, NULL) : 0;
	if (r < 0 || (key && *key && !dps_valid_key(key)))
		return err_set(e, -EINVAL,
			       "attestation.symmetricKey.%s: expected base64 of %d to %d bytes",
			       name, DPS_KEY_MIN_BYTES, DPS_KEY_MAX_BYTES);
	if (key && *key)
		return set_new(out, name, json_string(key));
	if (existing && json_get_string_opt(existing, name, &old, &ignore) == 0 && old &&
	    dps_valid_key(old))
		return set_new(out, name, json_string(old));
	{
		_cleanup_buf_ struct buf gen = {0};

		buf_init_secret(&gen, 256);
		r = dps_random_key(DPS_GENERATED_KEY_BYTES, &gen);
		if (r < 0)
			return r;
		return set_new(out, name, json_string(buf_str(&gen)));
	}
}

/* {"primary": {"certificate": PEM, "info"}, "secondary": ...} at path. */
static int normalize_certs(const json_t *given, const char *path, json_t **ret, struct err *e)
{
	static const char *const slots[] = {"primary", "secondary"};
	_cleanup_json_ json_t *out = json_object();

	*ret = NULL;
	if (!out)
		return -ENOMEM;
	if (!json_is_object(given))
		return err_set(e, -EINVAL, "%s: expected an object, got %s", path,
			       json_type_phrase(given));
	for (size_t i = 0; i < ARRAY_SIZE(slots); i++) {
		_cleanup_x509_ X509 *cert = NULL;
		json_t *slot = json_object_get(given, slots[i]);
		const char *pem = NULL;
		json_t *info;

		if (!slot || json_is_null(slot)) {
			if (i == 0)
				return err_set(e, -EINVAL, "%s.primary: missing", path);
			continue;
		}
		if (!json_is_object(slot))
			return err_set(e, -EINVAL, "%s.%s: expected an object, got %s", path,
				       slots[i], json_type_phrase(slot));
		pem = json_string_value(json_object_get(slot, "certificate"));
		if (!pem || dps_cert_parse(pem, &cert, NULL) < 0)
			return err_set(e, -EINVAL, "%s.%s.certificate: expected a PEM certificate",
				       path, slots[i]);
		{
			_cleanup_buf_ struct buf norm = {0};
			json_t *o;

			buf_init(&norm, 64 * 1024);
			if (dps_cert_to_pem(cert, &norm) < 0)
				return -ENOMEM;
			info = dps_cert_info(cert);
			o = json_pack("{s:s, s:o}", "certificate", buf_str(&norm), "info", info);
			if (!o || set_new(out, slots[i], o) < 0)
				return -ENOMEM;
		}
	}
	*ret = TAKE_PTR(out);
	return 0;
}

static int normalize_x509(const struct dps_settings *settings, struct store *store,
			  enum dps_kind kind, const json_t *x509, json_t *out, struct err *e)
{
	json_t *client = json_object_get(x509, "clientCertificates");
	json_t *signing = json_object_get(x509, "signingCertificates");
	json_t *refs = json_object_get(x509, "caReferences");
	json_t *norm = NULL;
	int r;

	if (json_is_null(client))
		client = NULL;
	if (json_is_null(signing))
		signing = NULL;
	if (json_is_null(refs))
		refs = NULL;
	if (kind == DPS_INDIVIDUAL) {
		if (!client)
			return err_set(
			    e, -EINVAL,
			    "attestation.x509.clientCertificates: missing (an individual "
			    "enrollment names the device's own certificate)");
		r = normalize_certs(client, "attestation.x509.clientCertificates", &norm, e);
		if (r < 0)
			return r;
		return set_new(out, "clientCertificates", norm);
	}
	if (client)
		return err_set(e, -EINVAL,
			       "attestation.x509.clientCertificates: not allowed in an enrollment "
			       "group (use signingCertificates or caReferences)");
	if (!!signing == !!refs)
		return err_set(
		    e, -EINVAL,
		    "attestation.x509: expected either signingCertificates or caReferences");
	if (signing) {
		r = normalize_certs(signing, "attestation.x509.signingCertificates", &norm, e);
		if (r < 0)
			return r;
		return set_new(out, "signingCertificates", norm);
	}
	norm = json_object();
	if (!norm)
		return -ENOMEM;
	if (!json_is_object(refs)) {
		json_decref(norm);
		return err_set(e, -EINVAL,
			       "attestation.x509.caReferences: expected an object, got %s",
			       json_type_phrase(refs));
	}
	for (int i = 0; i < 2; i++) {
		const char *slot = i == 0 ? "primary" : "secondary";
		json_t *v = json_object_get(refs, slot);

		if (!v || json_is_null(v)) {
			if (i == 0) {
				json_decref(norm);
				return err_set(e, -EINVAL,
					       "attestation.x509.caReferences.primary: missing");
			}
			continue;
		}
		if (!json_is_string(v)) {
			json_decref(norm);
			return err_set(
			    e, -EINVAL,
			    "attestation.x509.caReferences.%s: expected a string, got %s", slot,
			    json_type_phrase(v));
		}
		if (store && !dps_ca_exists(store, settings, json_string_value(v))) {
			json_decref(norm);
			return err_set(
			    e, -EINVAL,
			    "attestation.x509.caReferences.%s: no CA certificate named \"%s\"",
			    slot, json_string_value(v));
		}
		if (set_copy(norm, slot, v) < 0) {
			json_decref(norm);
			return -ENOMEM;
		}
	}
	return set_new(out, "caReferences", norm);
}

static int normalize_attestation(const struct dps_settings *settings, struct store *store,
				 enum dps_kind kind, const json_t *body, const json_t *existing,
				 json_t **ret, struct err *e)
{
	_cleanup_json_ json_t *out = json_object();
	json_t *att = NULL, *inner = NULL;
	const char *type = NULL;
	int r;

	*ret = NULL;
	if (!out)
		return -ENOMEM;
	r = json_get_object(body, "attestation", &att, e);
	if (r < 0)
		return -EINVAL;
	r = json_get_string(att, "type", &type, NULL);
	if (r < 0 || !(streq(type, "symmetricKey") || streq(type, "x509") ||
		       (streq(type, "tpm") && kind == DPS_INDIVIDUAL))) {
		if (r == -ENOENT)
			return err_set(e, -EINVAL, "attestation.type: missing");
		if (r < 0)
			return err_set(e, -EINVAL, "attestation.type: expected a string");
		if (kind == DPS_GROUP)
			return err_set(
			    e, -EINVAL,
			    "attestation.type: expected \"symmetricKey\" or \"x509\" for an "
			    "enrollment group, got \"%s\"",
			    type);
		return err_set(
		    e, -EINVAL,
		    "attestation.type: expected one of \"tpm\", \"x509\", \"symmetricKey\", "
		    "got \"%s\"",
		    type);
	}
	if (set_new(out, "type", json_string(type)) < 0)
		return -ENOMEM;

	if (json_get_object_opt(att, type, &inner, NULL) < 0)
		return err_set(e, -EINVAL, "attestation.%s: expected an object", type);

	if (streq(type, "tpm")) {
		const char *ek = NULL, *srk = NULL;
		struct tpm_public pub;
		struct err why = {0};
		json_t *tpm;

		if (!inner || json_get_string(inner, "endorsementKey", &ek, NULL) < 0)
			return err_set(
			    e, -EINVAL,
			    "attestation.tpm.endorsementKey: missing (base64 of the EK's "
			    "TPM2B_PUBLIC)");
		if (tpm_public_parse_base64(ek, TPM_ALG_RSA, &pub, &why) < 0)
			return err_set(e, -EINVAL, "attestation.tpm.endorsementKey: %s", why.msg);
		if (json_get_string_opt(inner, "storageRootKey", &srk, NULL) < 0)
			return err_set(e, -EINVAL,
				       "attestation.tpm.storageRootKey: expected a string");
		err_clear(&why);
		if (srk && *srk && tpm_public_parse_base64(srk, TPM_ALG_RSA, &pub, &why) < 0)
			return err_set(e, -EINVAL, "attestation.tpm.storageRootKey: %s", why.msg);
		tpm = json_pack("{s:s}", "endorsementKey", ek);
		if (!tpm || (srk && *srk && set_new(tpm, "storageRootKey", json_string(srk)) < 0)) {
			json_decref(tpm);
			return -ENOMEM;
		}
		if (set_new(out, "tpm", tpm) < 0)
			return -ENOMEM;
	} else if (streq(type, "symmetricKey")) {
		_cleanup_json_ json_t *keys = json_object();
		json_t *old = NULL;
		const char *old_type = NULL;

		if (!keys)
			return -ENOMEM;
		if (existing &&
		    json_get_string_opt(existing, "attestation.type", &old_type, NULL) == 0 &&
		    old_type && streq(old_type, "symmetricKey"))
			(void)json_get_object_opt(existing, "attestation.symmetricKey", &old, NULL);
		r = normalize_key(inner, "primaryKey", old, keys, e);
		if (r >= 0)
			r = normalize_key(inner, "secondaryKey", old, keys, e);
		if (r < 0)
			return r;
		if (set_new(out, "symmetricKey", TAKE_PTR(keys)) < 0)
			return -ENOMEM;
	} else {
		json_t *x509 = json_object();

		if (!x509)
			return -ENOMEM;
		if (!inner) {
			json_decref(x509);
			return err_set(e, -EINVAL, "attestation.x509: missing");
		}
		r = normalize_x509(settings, store, kind, inner, x509, e);
		if (r < 0) {
			json_decref(x509);
			return r;
		}
		if (set_new(out, "x509", x509) < 0)
			return -ENOMEM;
	}
	*ret = TAKE_PTR(out);
	return 0;
}

static int check_hub(const struct dps_settings *settings, const char *path, const char *host,
		     struct err *e)
{
	if (!settings || dps_settings_find_hub(settings, host))
		return 0;
	return err_set(e, -EINVAL, "%s: \"%s\" is not a linked IoT hub", path, host);
}

int dps_enrollment_normalize(const struct dps_settings *settings, struct store *store,
			     enum dps_kind kind, const char *path_id, const json_t *body,
			     const json_t *existing, json_t **ret, struct err *e)
{
	const char *id_field = dps_kind_id_field(kind);
	_cleanup_json_ json_t *out = json_object();
	json_t *att = NULL, *v = NULL, *hubs = NULL;
	const char *id = NULL, *s = NULL, *hub = NULL, *created = NULL;
	enum dps_allocation alloc = DPS_ALLOC_NONE;
	bool b;
	char now[40];
	int r;

	*ret = NULL;
	if (!out)
		return -ENOMEM;
	if (!json_is_object(body))
		return err_set(e, -EINVAL, "expected a JSON object, got %s",
			       json_type_phrase(body));

	/* The id. */
	r = json_get_string_opt(body, id_field, &id, e);
	if (r < 0)
		return -EINVAL;
	if (path_id && id && strcasecmp(path_id, id) != 0)
		return err_set(e, -EINVAL, "%s: \"%s\" does not match the id in the path (\"%s\")",
			       id_field, id, path_id);
	if (!id)
		id = path_id;
	if (!id)
		return err_set(e, -EINVAL, "%s: missing", id_field);
	if (!dps_valid_registration_id(id))
		return err_set(e, -EINVAL, "%s: %s", id_field, ID_RULE);
	if (set_new(out, id_field, json_string(id)) < 0)
		return -ENOMEM;

	if (kind == DPS_INDIVIDUAL) {
		r = json_get_string_opt(body, "deviceId", &s, e);
		if (r < 0)
			return -EINVAL;
		if (s && *s) {
			if (!dps_valid_device_id(s))
				return err_set(e, -EINVAL,
					       "deviceId: expected 1 to 128 letters, digits or "
					       "- : . + %% _ # * ? ! ( ) , = @ $ '");
			if (set_new(out, "deviceId", json_string(s)) < 0)
				return -ENOMEM;
		}
	}

	r = normalize_attestation(settings, store, kind, body, existing, &att, e);
	if (r < 0)
		return r;
	if (set_new(out, "attestation", att) < 0)
		return -ENOMEM;

	r = json_get_bool_opt(body, "capabilities.iotEdge", false, &b, e);
	if (r < 0)
		return -EINVAL;
	if (set_new(out, "capabilities", json_pack("{s:b}", "iotEdge", b)) < 0)
		return -ENOMEM;

	r = json_get_string_opt(body, "iotHubHostName", &hub, e);
	if (r < 0)
		return -EINVAL;
	if (hub && *hub) {
		r = check_hub(settings, "iotHubHostName", hub, e);
		if (r < 0)
			return r;
		if (set_new(out, "iotHubHostName", json_string(hub)) < 0)
			return -ENOMEM;
	} else {
		hub = NULL;
	}
	r = json_get_array_opt(body, "iotHubs", &hubs, e);
	if (r < 0)
		return -EINVAL;
	if (hubs) {
		size_t i;

		json_array_foreach (hubs, i, v) {
			char path[32];

			snprintf(path, sizeof(path), "iotHubs[%zu]", i);
			if (!json_is_string(v) || !*json_string_value(v))
				return err_set(e, -EINVAL, "%s: expected a hub host name", path);
			r = check_hub(settings, path, json_string_value(v), e);
			if (r < 0)
				return r;
		}
		if (set_copy(out, "iotHubs", hubs) < 0)
			return -ENOMEM;
	}

	v = NULL;
	r = json_get_object_opt(body, "initialTwin", &v, e);
	if (r < 0)
		return -EINVAL;
	if (v) {
		json_t *tags = NULL, *desired = NULL, *twin = json_object();

		if (!twin)
			return -ENOMEM;
		if (json_get_object_opt(v, "tags", &tags, NULL) < 0) {
			json_decref(twin);
			return err_set(e, -EINVAL, "initialTwin.tags: expected an object");
		}
		if (json_get_object_opt(v, "properties.desired", &desired, NULL) < 0) {
			json_decref(twin);
			return err_set(e, -EINVAL,
				       "initialTwin.properties.desired: expected an object");
		}
		if ((tags && set_copy(twin, "tags", tags) < 0) ||
		    (desired &&
		     set_new(twin, "properties", json_pack("{s:O}", "desired", desired)) < 0)) {
			json_decref(twin);
			return -ENOMEM;
		}
		if (set_new(out, "initialTwin", twin) < 0)
			return -ENOMEM;
	}

	s = NULL;
	r = json_get_string_opt(body, "provisioningStatus", &s, e);
	if (r < 0)
		return -EINVAL;
	if (s && !streq(s, "enabled") && !streq(s, "disabled"))
		return err_set(
		    e, -EINVAL,
		    "provisioningStatus: expected \"enabled\" or \"disabled\", got \"%s\"", s);
	if (set_new(out, "provisioningStatus", json_string(s ? s : "enabled")) < 0)
		return -ENOMEM;

	{
		bool update = true, migrate = true;

		if (json_get_bool_opt(body, "reprovisionPolicy.updateHubAssignment", true, &update,
				      e) < 0 ||
		    json_get_bool_opt(body, "reprovisionPolicy.migrateDeviceData", true, &migrate,
				      e) < 0)
			return -EINVAL;
		if (set_new(out, "reprovisionPolicy",
			    json_pack("{s:b, s:b}", "updateHubAssignment", update,
				      "migrateDeviceData", migrate)) < 0)
			return -ENOMEM;
	}

	s = NULL;
	r = json_get_string_opt(body, "allocationPolicy", &s, e);
	if (r < 0)
		return -EINVAL;
	if (s) {
		if (dps_allocation_parse(s, &alloc) < 0)
			return err_set(
			    e, -EINVAL,
			    "allocationPolicy: expected one of \"hashed\", \"geoLatency\", "
			    "\"static\", \"custom\", got \"%s\"",
			    s);
		if (set_new(out, "allocationPolicy", json_string(dps_allocation_name(alloc))) < 0)
			return -ENOMEM;
	}
	if (alloc == DPS_ALLOC_STATIC && !hub && (!hubs || json_array_size(hubs) != 1))
		return err_set(e, -EINVAL,
			       "allocationPolicy: \"static\" needs iotHubHostName or exactly one "
			       "entry in iotHubs");

	v = NULL;
	r = json_get_object_opt(body, "customAllocationDefinition", &v, e);
	if (r < 0)
		return -EINVAL;
	if (v) {
		const char *url = NULL, *api = NULL;

		if (json_get_string_opt(v, "webhookUrl", &url, e) < 0 ||
		    json_get_string_opt(v, "apiVersion", &api, e) < 0)
			return err_set(e, -EINVAL, "customAllocationDefinition: expected strings");
		if (url && strncasecmp(url, "https://", 8) != 0 &&
		    strncasecmp(url, "http://", 7) != 0)
			return err_set(
			    e, -EINVAL,
			    "customAllocationDefinition.webhookUrl: expected an https:// URL");
		if (url) {
			json_t *def = json_pack("{s:s}", "webhookUrl", url);

			if (!def || (api && set_new(def, "apiVersion", json_string(api)) < 0)) {
				json_decref(def);
				return -ENOMEM;
			}
			if (set_new(out, "customAllocationDefinition", def) < 0)
				return -ENOMEM;
		} else {
			v = NULL;
		}
	}
	if (alloc == DPS_ALLOC_CUSTOM && !v)
		return err_set(e, -EINVAL,
			       "customAllocationDefinition.webhookUrl: missing (required by "
			       "allocationPolicy \"custom\")");

	if (kind == DPS_INDIVIDUAL) {
		v = NULL;
		r = json_get_object_opt(body, "optionalDeviceInformation", &v, e);
		if (r < 0)
			return -EINVAL;
		if (v && set_copy(out, "optionalDeviceInformation", v) < 0)
			return -ENOMEM;
	}

	dps_now_iso(now, sizeof(now));
	if (existing)
		(void)json_get_string_opt(existing, "createdDateTimeUtc", &created, NULL);
	if (set_new(out, "createdDateTimeUtc", json_string(created ? created : now)) < 0 ||
	    set_new(out, "lastUpdatedDateTimeUtc", json_string(now)) < 0)
		return -ENOMEM;
	*ret = TAKE_PTR(out);
	return 0;
}

/* --- views ---------------------------------------------------------------- */

json_t *dps_enrollment_view(const json_t *doc, const char *etag, bool with_keys,
			    const json_t *registration)
{
	_cleanup_json_ json_t *view = json_deep_copy(doc);
	json_t *keys;

	if (!view)
		return NULL;
	if (!with_keys) {
		keys = json_object_get(json_object_get(view, "attestation"), "symmetricKey");
		if (keys)
			json_object_clear(keys);
	}
	if (etag && set_new(view, "etag", json_string(etag)) < 0)
		return NULL;
	if (registration && set_copy(view, "registrationState", registration) < 0)
		return NULL;
	return TAKE_PTR(view);
}

/* --- store operations ------------------------------------------------------ */

int dps_enrollment_load(struct store *store, enum dps_kind kind, const char *id, json_t **ret_doc,
			char **ret_etag, struct err *e)
{
	struct err why = {0};
	int r;

	if (!id || !*id)
		return -ENOENT;
	r = store_get(store, kind_collection(kind), STORE_KEY(id), ret_doc, ret_etag, &why);
	/* Callers word "not found" themselves. */
	if (r < 0 && r != -ENOENT)
		return err_set(e, r, "%s", err_msg(&why, r));
	return r;
}

static int registration_view_of(struct store *store, const char *id, json_t **ret)
{
	_cleanup_json_ json_t *doc = NULL;
	_cleanup_free_ char *etag = NULL;
	int r;

	*ret = NULL;
	r = dps_registration_load(store, id, &doc, &etag, NULL);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	*ret = dps_registration_service_view(doc, etag);
	return 0;
}

int dps_enrollment_put(struct store *store, const struct dps_settings *settings, enum dps_kind kind,
		       const char *id, const json_t *body, const char *if_match, json_t **ret_view,
		       bool *ret_created, struct err *e)
{
	_cleanup_json_ json_t *existing = NULL, *doc = NULL, *reg = NULL;
	_cleanup_free_ char *old_etag = NULL, *etag = NULL;
	_cleanup_free_ char *match = dps_etag_unquote(if_match);
	struct store_write w = {0};
	struct err why = {0};
	int r;

	if (ret_view)
		*ret_view = NULL;
	if (ret_created)
		*ret_created = false;
	r = store_tx_begin(store, e);
	if (r < 0)
		return r;
	r = dps_enrollment_load(store, kind, id, &existing, &old_etag, e);
	if (r == -ENOENT) {
		existing = NULL;
		if (match) {
			r = err_set(e, -ENOENT, "The %s \"%s\" does not exist.", kind_noun(kind),
				    id);
			goto rollback;
		}
	} else if (r < 0) {
		goto rollback;
	} else if (match && !streq(match, "*") && !streq(match, old_etag)) {
		r = err_set(e, -ESTALE, "The etag does not match the %s's current etag.",
			    kind_noun(kind));
		goto rollback;
	}
	r = dps_enrollment_normalize(settings, store, kind, id, body, existing, &doc, e);
	if (r < 0)
		goto rollback;
	w.coll = kind_collection(kind);
	w.key.part[0] = id;
	w.doc = doc;
	/* The etag read above was checked inside this transaction. */
	w.if_match = old_etag;
	w.create_only = !existing;
	if (!existing)
		w.if_match = NULL;
	r = store_put(store, &w, &etag, &why);
	if (r == -E2BIG)
		r = err_set(e, -E2BIG, "The %s is too large.", kind_noun(kind));
	else if (r < 0)
		r = err_set(e, r, "%s", err_msg(&why, r));
	if (r < 0)
		goto rollback;
	r = store_tx_commit(store, e);
	if (r < 0)
		return r;
	if (kind == DPS_INDIVIDUAL && ret_view && registration_view_of(store, id, &reg) < 0)
		reg = NULL;
	if (ret_view) {
		*ret_view = dps_enrollment_view(doc, etag, true, reg);
		if (!*ret_view)
			return -ENOMEM;
	}
	if (ret_created)
		*ret_created = !existing;
	return 0;
rollback:
	(void)store_tx_rollback(store, NULL);
	return r;
}

int dps_enrollment_get(struct store *store, enum dps_kind kind, const char *id, bool with_keys,
		       json_t **ret_view, struct err *e)
{
	_cleanup_json_ json_t *doc = NULL, *reg = NULL;
	_cleanup_free_ char *etag = NULL;
	int r;

	*ret_view = NULL;
	r = dps_enrollment_load(store, kind, id, &doc, &etag, e);
	if (r == -ENOENT)
		return err_set(e, -ENOENT, "The %s \"%s\" does not exist.", kind_noun(kind), id);
	if (r < 0)
		return r;
	if (kind == DPS_INDIVIDUAL) {
		r = registration_view_of(store, id, &reg);
		if (r < 0)
			return r;
	}
	*ret_view = dps_enrollment_view(doc, etag, with_keys, reg);
	return *ret_view ? 0 : -ENOMEM;
}

int dps_enrollment_delete(struct store *store, enum dps_kind kind, const char *id,
			  const char *if_match, struct err *e)
{
	_cleanup_free_ char *match = dps_etag_unquote(if_match);
	struct err why = {0};
	int r;

	if (match && streq(match, "*")) {
		free(match);
		match = NULL;
	}
	r = store_tx_begin(store, e);
	if (r < 0)
		return r;
	r = store_delete(store, kind_collection(kind), STORE_KEY(id), match, &why);
	if (r == -ENOENT)
		r = err_set(e, -ENOENT, "The %s \"%s\" does not exist.", kind_noun(kind), id);
	else if (r == -ESTALE)
		r = err_set(e, -ESTALE, "The etag does not match the %s's current etag.",
			    kind_noun(kind));
	else if (r < 0)
		r = err_set(e, r, "%s", err_msg(&why, r));
	if (r >= 0) {
		if (kind == DPS_INDIVIDUAL) {
			r = store_delete(store, STORE_REGISTRATIONS, STORE_KEY(id), NULL, &why);
			if (r == -ENOENT)
				r = 0;
			else if (r < 0)
				r = err_set(e, r, "%s", err_msg(&why, r));
		} else {
			struct store_query q = {.coll = STORE_REGISTRATIONS, .secondary = id};

			r = store_delete_matching(store, &q, NULL, e);
		}
	}
	if (r < 0) {
		(void)store_tx_rollback(store, NULL);
		return r;
	}
	return store_tx_commit(store, e);
}

int dps_enrollment_attestation(struct store *store, enum dps_kind kind, const char *id,
			       json_t **ret, struct err *e)
{
	_cleanup_json_ json_t *doc = NULL;
	int r;

	*ret = NULL;
	r = dps_enrollment_load(store, kind, id, &doc, NULL, e);
	if (r == -ENOENT)
		return err_set(e, -ENOENT, "The %s \"%s\" does not exist.", kind_noun(kind), id);
	if (r < 0)
		return r;
	*ret = json_deep_copy(json_object_get(doc, "attestation"));
	return *ret ? 0 : -ENOMEM;
}

int dps_enrollment_query(struct store *store, enum dps_kind kind, const char *continuation,
			 size_t page_size, json_t **ret_items, char **ret_continuation,
			 struct err *e)
{
	_cleanup_store_page_ struct store_page *page = NULL;
	_cleanup_json_ json_t *items = json_array();
	struct err why = {0};
	struct store_query q = {
	    .coll = kind_collection(kind),
	    .continuation = continuation,
	    .page_size = page_size ? page_size : DPS_PAGE_DEFAULT,
	};
	int r;

	*ret_items = NULL;
	*ret_continuation = NULL;
	if (!items)
		return -ENOMEM;
	if (q.page_size > DPS_PAGE_MAX)
		q.page_size = DPS_PAGE_MAX;
	r = store_list(store, &q, &page, &why);
	if (r == -EINVAL)
		return err_set(e, -EINVAL,
			       "x-ms-continuation: not a continuation token of this query");
	if (r < 0)
		return err_set(e, r, "%s", err_msg(&why, r));
	for (size_t i = 0; i < page->n; i++) {
		json_t *view =
		    dps_enrollment_view(page->items[i].doc, page->items[i].etag, false, NULL);

		if (!view || json_array_append_new(items, view) < 0)
			return -ENOMEM;
	}
	if (page->continuation && !(*ret_continuation = strdup(page->continuation)))
		return -ENOMEM;
	*ret_items = TAKE_PTR(items);
	return 0;
}

static int bulk_error(json_t *errors, const char *id_field, const char *id, int r,
		      enum dps_kind kind, const struct err *why)
{
	struct dps_status st = dps_status_for(r, kind);
	json_t *item = json_pack("{s:s, s:i, s:s}", id_field, id ? id : "", "errorCode", st.code,
				 "errorStatus", err_msg(why, r));

	if (!item)
		return -ENOMEM;
	return json_array_append_new(errors, item) == 0 ? 0 : -ENOMEM;
}

int dps_enrollment_bulk(struct store *store, const struct dps_settings *settings,
			enum dps_kind kind, const json_t *body, json_t **ret, struct err *e)
{
	const char *list_field = kind == DPS_GROUP ? "enrollmentGroups" : "enrollments";
	const char *id_field = dps_kind_id_field(kind);
	_cleanup_json_ json_t *errors = json_array();
	json_t *items = NULL, *item;
	const char *mode = NULL;
	size_t i;
	int r;

	*ret = NULL;
	if (!errors)
		return -ENOMEM;
	if (!json_is_object(body))
		return err_set(e, -EINVAL, "expected a JSON object, got %s",
			       json_type_phrase(body));
	r = json_get_string(body, "mode", &mode, e);
	if (r < 0)
		return -EINVAL;
	if (!streq(mode, "create") && !streq(mode, "update") && !streq(mode, "updateIfMatchETag") &&
	    !streq(mode, "delete"))
		return err_set(
		    e, -EINVAL,
		    "mode: expected one of \"create\", \"update\", \"updateIfMatchETag\", "
		    "\"delete\", got \"%s\"",
		    mode);
	r = json_get_array(body, list_field, &items, e);
	if (r < 0)
		return -EINVAL;
	if (json_array_size(items) == 0 || json_array_size(items) > DPS_BULK_MAX)
		return err_set(e, -EINVAL, "%s: expected 1 to %d items, got %zu", list_field,
			       DPS_BULK_MAX, json_array_size(items));
	json_array_foreach (items, i, item) {
		const char *id = json_string_value(json_object_get(item, id_field));
		const char *etag = json_string_value(json_object_get(item, "etag"));
		_cleanup_json_ json_t *existing = NULL;
		struct err why = {0};

		if (!json_is_object(item) || !id || !dps_valid_registration_id(id)) {
			err_set(&why, -EINVAL, "%s[%zu].%s: %s", list_field, i, id_field, ID_RULE);
			r = bulk_error(errors, id_field, id, -EINVAL, kind, &why);
			if (r < 0)
				return r;
			continue;
		}
		if (streq(mode, "delete")) {
			r = dps_enrollment_delete(store, kind, id, etag, &why);
		} else if (streq(mode, "create")) {
			r = dps_enrollment_load(store, kind, id, &existing, NULL, NULL);
			if (r == 0)
				r = err_set(&why, -EEXIST, "The %s \"%s\" already exists.",
					    kind_noun(kind), id);
			else if (r == -ENOENT)
				r = dps_enrollment_put(store, settings, kind, id, item, NULL, NULL,
						       NULL, &why);
		} else if (streq(mode, "update")) {
			r = dps_enrollment_put(store, settings, kind, id, item, NULL, NULL, NULL,
					       &why);
		} else {
			r = dps_enrollment_put(store, settings, kind, id, item, etag ? etag : "*",
					       NULL, NULL, &why);
		}
		if (r < 0) {
			r = bulk_error(errors, id_field, id, r, kind, &why);
			if (r < 0)
				return r;
		}
	}
	*ret =
	    json_pack("{s:b, s:O}", "isSuccessful", json_array_size(errors) == 0, "errors", errors);
	return *ret ? 0 : -ENOMEM;
}

int dps_enrollment_set_status(struct store *store, enum dps_kind kind, const char *id, bool enabled,
			      struct err *e)
{
	_cleanup_json_ json_t *doc = NULL;
	_cleanup_free_ char *etag = NULL;
	struct store_write w = {0};
	char now[40];
	int r;

	r = dps_enrollment_load(store, kind, id, &doc, &etag, e);
	if (r == -ENOENT)
		return err_set(e, -ENOENT, "The %s \"%s\" does not exist.", kind_noun(kind), id);
	if (r < 0)
		return r;
	dps_now_iso(now, sizeof(now));
	if (set_new(doc, "provisioningStatus", json_string(enabled ? "enabled" : "disabled")) < 0 ||
	    set_new(doc, "lastUpdatedDateTimeUtc", json_string(now)) < 0)
		return -ENOMEM;
	w.coll = kind_collection(kind);
	w.key.part[0] = id;
	w.doc = doc;
	w.if_match = etag;
	return store_put(store, &w, NULL, e);
}
