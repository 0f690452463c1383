/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <string.h>

#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "cloud/dps/ca.h"
#include "cloud/dps/cert.h"
#include "cloud/store/store.h"
#include "common/encode.h"
#include "common/json.h"

static json_t *ca_view(const json_t *doc, const char *etag)
{
	json_t *view = json_deep_copy(doc);

	if (view && etag && json_object_set_new(view, "etag", json_string(etag)) < 0) {
		json_decref(view);
		return NULL;
	}
	return view;
}

int dps_ca_add(struct store *store, const char *name, const char *pem, bool verified,
	       json_t **ret_view, struct err *e)
{
	_cleanup_x509_ X509 *cert = NULL;
	_cleanup_json_ json_t *doc = NULL;
	_cleanup_buf_ struct buf norm = {0};
	_cleanup_free_ char *etag = NULL;
	struct store_write w = {.coll = STORE_CA_CERTIFICATES};
	struct err why = {0};
	char now[40];
	int r;

	if (ret_view)
		*ret_view = NULL;
	if (!dps_valid_registration_id(name))
		return err_set(e, -EINVAL,
			       "CA name: expected 1 to 128 letters, digits, '-', '.', '_' or ':'");
	r = dps_cert_parse(pem, &cert, e);
	if (r < 0)
		return r;
	if (X509_check_ca(cert) == 0)
		return err_set(e, -EINVAL,
			       "the certificate is not a CA certificate "
			       "(basicConstraints CA:TRUE is missing)");
	buf_init(&norm, 64 * 1024);
	r = dps_cert_to_pem(cert, &norm);
	if (r < 0)
		return r;
	dps_now_iso(now, sizeof(now));
	doc = json_pack("{s:s, s:s, s:b, s:o, s:s, s:s}", "name", name, "certificate",
			buf_str(&norm), "isVerified", verified, "info", dps_cert_info(cert),
			"createdDateTimeUtc", now, "lastUpdatedDateTimeUtc", now);
	if (!doc)
		return -ENOMEM;
	w.key.part[0] = name;
	w.doc = doc;
	w.create_only = true;
	r = store_put(store, &w, &etag, &why);
	if (r == -EEXIST)
		return err_set(e, -EEXIST, "A CA certificate named \"%s\" already exists.", name);
	if (r < 0)
		return err_set(e, r, "%s", err_msg(&why, r));
	if (ret_view && !(*ret_view = ca_view(doc, etag)))
		return -ENOMEM;
	return 0;
}

static int load(struct store *store, const char *name, json_t **doc, char **etag, struct err *e)
{
	struct err why = {0};
	int r = store_get(store, STORE_CA_CERTIFICATES, STORE_KEY(name), doc, etag, &why);

	if (r == -ENOENT)
		return err_set(e, -ENOENT, "No CA certificate named \"%s\".", name);
	if (r < 0)
		return err_set(e, r, "%s", err_msg(&why, r));
	return r;
}

int dps_ca_verification_code(struct store *store, const char *name, char **ret_code, struct err *e)
{
	_cleanup_json_ json_t *doc = NULL;
	_cleanup_free_ char *etag = NULL;
	_cleanup_buf_ struct buf code = {0};
	struct store_write w = {.coll = STORE_CA_CERTIFICATES};
	uint8_t raw[24];
	char now[40];
	int r;

	*ret_code = NULL;
	r = load(store, name, &doc, &etag, e);
	if (r < 0)
		return r;
	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return -EIO;
	buf_init(&code, 128);
	r = hex_encode(&code, raw, sizeof(raw));
	if (r < 0)
		return r;
	dps_now_iso(now, sizeof(now));
	if (json_object_set_new(doc, "verificationCode", json_string(buf_str(&code))) < 0 ||
	    json_object_set_new(doc, "lastUpdatedDateTimeUtc", json_string(now)) < 0)
		return -ENOMEM;
	w.key.part[0] = name;
	w.doc = doc;
	w.if_match = etag;
	r = store_put(store, &w, NULL, e);
	if (r < 0)
		return r;
	*ret_code = buf_steal(&code, NULL);
	return *ret_code ? 0 : -ENOMEM;
}

int dps_ca_verify(struct store *store, const char *name, const char *pem, struct err *e)
{
	_cleanup_json_ json_t *doc = NULL;
	_cleanup_free_ char *etag = NULL;
	_cleanup_x509_ X509 *ca = NULL, *leaf = NULL;
	struct store_write w = {.coll = STORE_CA_CERTIFICATES};
	const char *code;
	char now[40];
	int r;

	r = load(store, name, &doc, &etag, e);
	if (r < 0)
		return r;
	code = json_string_value(json_object_get(doc, "verificationCode"));
	if (!code)
		return err_set(
		    e, -EINVAL,
		    "No verification code was issued for \"%s\": run ca verification-code "
		    "first.",
		    name);
	r = dps_cert_parse(json_string_value(json_object_get(doc, "certificate")), &ca, e);
	if (r < 0)
		return -EBADMSG;
	r = dps_cert_parse(pem, &leaf, e);
	if (r < 0)
		return r;
	r = dps_cert_check_possession(ca, leaf, code, e);
	if (r < 0)
		return r;
	dps_now_iso(now, sizeof(now));
	if (json_object_set_new(doc, "isVerified", json_true()) < 0 ||
	    json_object_del(doc, "verificationCode") < 0 ||
	    json_object_set_new(doc, "lastUpdatedDateTimeUtc", json_string(now)) < 0)
		return -ENOMEM;
	w.key.part[0] = name;
	w.doc = doc;
	w.if_match = etag;
	return store_put(store, &w, NULL, e);
}

int dps_ca_get(struct store *store, const char *name, json_t **ret_view, struct err *e)
{
	_cleanup_json_ json_t *doc = NULL;
	_cleanup_free_ char *etag = NULL;
	int r;

	*ret_view = NULL;
	r = load(store, name, &doc, &etag, e);
	if (r < 0)
		return r;
	*ret_view = ca_view(doc, etag);
	return *ret_view ? 0 : -ENOMEM;
}

int dps_ca_list(struct store *store, json_t **ret_items, struct err *e)
{
	_cleanup_json_ json_t *items = json_array();
	_cleanup_free_ char *cont = NULL;
	int r;

	*ret_items = NULL;
	if (!items)
		return -ENOMEM;
	do {
		_cleanup_store_page_ struct store_page *page = NULL;
		struct store_query q = {.coll = STORE_CA_CERTIFICATES,
					.continuation = cont,
					.page_size = STORE_PAGE_MAX};

		r = store_list(store, &q, &page, e);
		if (r < 0)
			return r;
		for (size_t i = 0; i < page->n; i++)
			if (json_array_append_new(
				items, ca_view(page->items[i].doc, page->items[i].etag)) < 0)
				return -ENOMEM;
		free(cont);
		cont = page->continuation ? strdup(page->continuation) : NULL;
		if (page->continuation && !cont)
			return -ENOMEM;
	} while (cont);
	*ret_items = TAKE_PTR(items);
	return 0;
}

int dps_ca_delete(struct store *store, const char *name, struct err *e)
{
	struct err why = {0};
	int r = store_delete(store, STORE_CA_CERTIFICATES, STORE_KEY(name), NULL, &why);

	if (r < 0 && r != -ENOENT)
		return err_set(e, r, "%s", err_msg(&why, r));
	if (r == -ENOENT)
		return err_set(e, -ENOENT, "No CA certificate named \"%s\".", name);
	return r;
}

static X509 *config_ca(const struct dps_settings *settings, const char *name)
{
	for (size_t i = 0; settings && i < settings->n_cas; i++)
		if (streq(settings->cas[i].name, name))
			return settings->cas[i].cert;
	return NULL;
}

bool dps_ca_exists(struct store *store, const struct dps_settings *settings, const char *name)
{
	if (config_ca(settings, name))
		return true;
	return store &&
	       store_get(store, STORE_CA_CERTIFICATES, STORE_KEY(name), NULL, NULL, NULL) == 0;
}

int dps_ca_trusted(struct store *store, const struct dps_settings *settings, const char *name,
		   X509 **ret, struct err *e)
{
	_cleanup_json_ json_t *doc = NULL;
	X509 *cert = config_ca(settings, name);
	int r;

	*ret = NULL;
	if (cert) {
		if (X509_up_ref(cert) != 1)
			return -EIO;
		*ret = cert;
		return 0;
	}
	r = load(store, name, &doc, NULL, e);
	if (r < 0)
		return r;
	if (!json_is_true(json_object_get(doc, "isVerified")))
		return err_set(e, -EACCES, "The CA certificate \"%s\" is not verified.", name);
	return dps_cert_parse(json_string_value(json_object_get(doc, "certificate")), ret, e) < 0
		   ? -EBADMSG
		   : 0;
}
