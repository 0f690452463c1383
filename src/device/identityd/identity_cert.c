/* SPDX-License-Identifier: MIT */
/*
 * The device identity certificate for X.509 provisioning. aziot-identityd
 * asks certd for it by id (GET /certificates/device-id, aziot-compat.md
 * §5.3), and so does edgeid. When certd is not running (a device set
 * up without it), a certificate that certd would merely preload is read
 * from the file certd's configuration names ([preloaded_certs] device-id =
 * "file:///...", as `config apply` writes it); an id written as a file://
 * URI is read directly.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>

#include "common/encode.h"
#include "common/fs.h"
#include "common/json.h"
#include "common/log.h"
#include "device/identityd/identityd_private.h"

#define CERT_FILE_MAX (256 * 1024)
#define CERTD_API_VERSION "2020-09-01"

static int parse_pem_chain(const char *pem, size_t len, const char *what, STACK_OF(X509) * *ret,
			   struct err *e)
{
	STACK_OF(X509) *chain = sk_X509_new_null();
	BIO *bio = BIO_new_mem_buf(pem, (int)len);
	X509 *x;

	if (!chain || !bio) {
		sk_X509_free(chain);
		BIO_free(bio);
		return err_set(e, -ENOMEM, "out of memory");
	}
	while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
		if (sk_X509_push(chain, x) <= 0) {
			X509_free(x);
			sk_X509_pop_free(chain, X509_free);
			BIO_free(bio);
			return err_set(e, -ENOMEM, "out of memory");
		}
	}
	/* The loop ends on "no start line" after the last certificate. */
	ERR_clear_error();
	BIO_free(bio);
	if (sk_X509_num(chain) == 0) {
		sk_X509_free(chain);
		return err_set(e, -EBADMSG, "%s holds no PEM certificate", what);
	}
	*ret = chain;
	return 0;
}

static int read_pem_file(const char *path, STACK_OF(X509) * *ret, struct err *e)
{
	_cleanup_buf_ struct buf text = {0};
	int r;

	buf_init(&text, CERT_FILE_MAX);
	r = fs_read_file(path, CERT_FILE_MAX, &text, e);
	if (r < 0)
		return r;
	return parse_pem_chain(text.data ? text.data : "", text.len, path, ret, e);
}

static char *root_path(const struct identityd_settings *s, const char *path)
{
	if (!s->root || path[0] != '/')
		return strdup(path);
	return fs_path_join(s->root, path);
}

static int read_file_uri(const struct identityd_settings *s, const char *uri, STACK_OF(X509) * *ret,
			 struct err *e)
{
	_cleanup_buf_ struct buf dec = {0};
	_cleanup_free_ char *path = NULL;

	buf_init(&dec, 4096);
	if (!strneq(uri, "file://", 7) || uri[7] != '/' ||
	    url_decode(&dec, uri + 7, strlen(uri + 7), false) < 0)
		return err_set(e, -EINVAL, "\"%s\" is not a file:///path URI", uri);
	path = root_path(s, buf_str(&dec));
	if (!path)
		return err_set(e, -ENOMEM, "out of memory");
	return read_pem_file(path, ret, e);
}

/* certd is not running: the file its configuration preloads as cert_id.
 * A list entry (a virtual bundle) concatenates its members. */
static int from_certd_config(const struct identityd_settings *s, const char *cert_id,
			     STACK_OF(X509) * *ret, struct err *e)
{
	_cleanup_daemon_config_ struct daemon_config *c = NULL;
	json_t *certs, *v;
	int r;

	r = daemon_config_load(s->certd_config, s->certd_config_dir, &c, e);
	if (r < 0)
		return r;
	certs = json_object_get(daemon_config_root(c), "preloaded_certs");
	v = json_is_object(certs) ? json_object_get(certs, cert_id) : NULL;
	if (!v)
		return err_set(e, -ENOENT,
			       "the identity certificate \"%s\" is not available: certd is not "
			       "running and %s does not preload a certificate of that id",
			       cert_id, s->certd_config);
	if (json_is_string(v))
		return read_file_uri(s, json_string_value(v), ret, e);
	if (json_is_array(v)) {
		STACK_OF(X509) *all = sk_X509_new_null();
		size_t i;
		json_t *item;

		if (!all)
			return err_set(e, -ENOMEM, "out of memory");
		json_array_foreach (v, i, item) {
			STACK_OF(X509) *part = NULL;
			json_t *member = json_is_string(item)
					     ? json_object_get(certs, json_string_value(item))
					     : NULL;

			r = member && json_is_string(member)
				? read_file_uri(s, json_string_value(member), &part, e)
				: err_set(e, -EINVAL,
					  "%s: preloaded_certs.%s: member %zu is not a preloaded "
					  "file",
					  s->certd_config, cert_id, i);
			while (r >= 0 && sk_X509_num(part) > 0)
				if (sk_X509_push(all, sk_X509_shift(part)) <= 0)
					r = err_set(e, -ENOMEM, "out of memory");
			sk_X509_pop_free(part, X509_free);
			if (r < 0) {
				sk_X509_pop_free(all, X509_free);
				return r;
			}
		}
		*ret = all;
		return 0;
	}
	return err_set(e, -EINVAL, "%s: preloaded_certs.%s: expected a file URI or a list",
		       s->certd_config, cert_id);
}

int identity_cert_load(const struct identityd_settings *s, const char *cert_id,
		       STACK_OF(X509) * *ret, struct err *e)
{
	_cleanup_local_client_ struct local_client *certd = NULL;
	_cleanup_json_ json_t *j = NULL;
	_cleanup_buf_ struct buf path = {0};
	struct err inner = {0};
	const char *pem;
	int r;

	*ret = NULL;
	if (strneq(cert_id, "file://", 7))
		return read_file_uri(s, cert_id, ret, e);

	certd = local_client_new("certd", s->certd_socket, CERTD_API_VERSION);
	buf_init(&path, 4096);
	if (!certd || buf_append_str(&path, "/certificates/") < 0 ||
	    url_encode(&path, cert_id, strlen(cert_id), NULL) < 0)
		return err_set(e, -ENOMEM, "out of memory");
	r = local_client_call(certd, "GET", buf_str(&path), NULL, &j, NULL, &inner);
	if (r == -ENOENT || r == -ECONNREFUSED) {
		log_debug("certd is not running (%s); reading its preloaded certificates",
			  err_msg(&inner, r));
		return from_certd_config(s, cert_id, ret, e);
	}
	if (r < 0)
		return err_set(e, r, "%s", err_msg(&inner, r));
	if (json_get_string(j, "pem", &pem, NULL) < 0)
		return err_set(e, -EBADMSG, "certd: GET %s: the answer has no \"pem\"",
			       buf_str(&path));
	return parse_pem_chain(pem, strlen(pem), "certd's answer", ret, e);
}

char *identity_cert_common_name(X509 *cert)
{
	X509_NAME *name = X509_get_subject_name(cert);
	int i = name ? X509_NAME_get_index_by_NID(name, NID_commonName, -1) : -1;
	ASN1_STRING *data;
	unsigned char *utf8 = NULL;
	char *cn;
	int n;

	if (i < 0)
		return NULL;
	data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
	n = data ? ASN1_STRING_to_UTF8(&utf8, data) : -1;
	if (n <= 0)
		return NULL;
	cn = memchr(utf8, '\0', (size_t)n) ? NULL : strndup((const char *)utf8, (size_t)n);
	OPENSSL_free(utf8);
	return cn;
}
