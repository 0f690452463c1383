/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <string.h>

#include "cloud/dps/dps.h"
#include "cloud/dps/registration.h"
#include "cloud/store/store.h"
#include "common/json.h"

int dps_registration_load(struct store *store, const char *registration_id, json_t **ret_doc,
			  char **ret_etag, struct err *e)
{
	struct err why = {0};
	int r;

	if (!registration_id || !*registration_id)
		return -ENOENT;
	r = store_get(store, STORE_REGISTRATIONS, STORE_KEY(registration_id), ret_doc, ret_etag,
		      &why);
	/* Callers word "not found" themselves. */
	if (r < 0 && r != -ENOENT)
		return err_set(e, r, "%s", err_msg(&why, r));
	return r;
}

json_t *dps_registration_private(const json_t *doc)
{
	json_t *p = json_object_get(doc, DPS_REG_PRIVATE);

	return json_is_object(p) ? p : NULL;
}

static json_t *view(const json_t *doc, const char *etag, const char *const *fields)
{
	_cleanup_json_ json_t *out = json_object();

	if (!out || !json_object_get(doc, "status"))
		return NULL;
	for (const char *const *f = fields; *f; f++) {
		json_t *v = json_object_get(doc, *f);

		if (v && !json_is_null(v) && json_object_set(out, *f, v) < 0)
			return NULL;
		if (streq(*f, "lastUpdatedDateTimeUtc") && etag &&
		    json_object_set_new(out, "etag", json_string(etag)) < 0)
			return NULL;
	}
	return TAKE_PTR(out);
}

json_t *dps_registration_service_view(const json_t *doc, const char *etag)
{
	static const char *const fields[] = {
	    "registrationId",
	    "createdDateTimeUtc",
	    "assignedHub",
	    "deviceId",
	    "status",
	    "substatus",
	    "errorCode",
	    "errorMessage",
	    "lastUpdatedDateTimeUtc",
	    "payload",
	    NULL,
	};

	return view(doc, etag, fields);
}

json_t *dps_registration_device_view(const json_t *doc, const char *etag)
{
	static const char *const fields[] = {
	    "registrationId",
	    "createdDateTimeUtc",
	    "assignedHub",
	    "deviceId",
	    "status",
	    "substatus",
	    "errorCode",
	    "errorMessage",
	    "lastUpdatedDateTimeUtc",
	    "payload",
	    "x509",
	    "symmetricKey",
	    "tpm",
	    NULL,
	};

	return view(doc, etag, fields);
}

json_t *dps_registration_assigning_status(const char *operation_id, const char *registration_id)
{
	return json_pack("{s:s, s:s, s:{s:s, s:s}}", "operationId", operation_id, "status",
			 "assigning", "registrationState", "registrationId", registration_id,
			 "status", "assigning");
}

json_t *dps_registration_operation_status(const json_t *doc, const char *etag,
					  const char *operation_id)
{
	const char *status = json_string_value(json_object_get(doc, "status"));
	json_t *state;

	if (!status)
		return NULL;
	if (streq(status, "assigning"))
		return dps_registration_assigning_status(
		    operation_id,
		    strempty(json_string_value(json_object_get(doc, "registrationId"))));
	state = dps_registration_device_view(doc, etag);
	if (!state)
		return NULL;
	/* "o" steals state, also when json_pack fails. */
	return json_pack("{s:s, s:s, s:o}", "operationId", operation_id, "status", status,
			 "registrationState", state);
}

int dps_registration_get(struct store *store, const char *registration_id, json_t **ret_view,
			 struct err *e)
{
	_cleanup_json_ json_t *doc = NULL;
	_cleanup_free_ char *etag = NULL;
	int r;

	*ret_view = NULL;
	r = dps_registration_load(store, registration_id, &doc, &etag, e);
	if (r == 0 && !json_object_get(doc, "status"))
		r = -ENOENT;
	if (r == -ENOENT)
		return err_set(e, -ENOENT, "No registration record for \"%s\".", registration_id);
	if (r < 0)
		return r;
	*ret_view = dps_registration_service_view(doc, etag);
	return *ret_view ? 0 : -ENOMEM;
}

int dps_registration_delete(struct store *store, const char *registration_id, const char *if_match,
			    struct err *e)
{
	_cleanup_free_ char *match = dps_etag_unquote(if_match);
	struct err why = {0};
	int r;

	if (match && streq(match, "*")) {
		free(match);
		match = NULL;
	}
	r = store_delete(store, STORE_REGISTRATIONS, STORE_KEY(registration_id), match, &why);
	if (r < 0 && r != -ENOENT && r != -ESTALE)
		return err_set(e, r, "%s", err_msg(&why, r));
	if (r == -ENOENT)
		return err_set(e, -ENOENT, "No registration record for \"%s\".", registration_id);
	if (r == -ESTALE)
		return err_set(e, -ESTALE,
			       "The etag does not match the registration record's current etag.");
	return r;
}

int dps_registration_query(struct store *store, const char *group_id, const char *continuation,
			   size_t page_size, json_t **ret_items, char **ret_continuation,
			   struct err *e)
{
	_cleanup_store_page_ struct store_page *page = NULL;
	_cleanup_json_ json_t *items = json_array();
	struct err why = {0};
	struct store_query q = {
	    .coll = STORE_REGISTRATIONS,
	    .secondary = group_id,
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
		json_t *v = dps_registration_service_view(page->items[i].doc, page->items[i].etag);

		/* Records holding only a TPM challenge are not registrations. */
		if (v && json_array_append_new(items, v) < 0)
			return -ENOMEM;
	}
	if (page->continuation && !(*ret_continuation = strdup(page->continuation)))
		return -ENOMEM;
	*ret_items = TAKE_PTR(items);
	return 0;
}
