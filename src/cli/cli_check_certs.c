/* SPDX-License-Identifier: MIT */
/*
 * edgeid check: the certificate checks. Every certificate in the files the
 * super-config names (identity-certificate-expiry), in the trust bundle
 * identityd uses and the EST trusted certificates (trust-bundle-expiry),
 * and in certd's store (certd-store-expiry): an error when one has expired
 * or is not valid yet, a warning when one expires within 7 days.
 */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "cli/cli_check.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/macro.h"
#include "config/config.h"

#define EXPIRY_WARN_SEC (7 * 86400)
#define CERT_FILE_MAX (1024 * 1024)

struct expiry {
	time_t now;
	size_t n_files, n_certs;
	time_t first_end; /* the earliest notAfter seen */
	char first_path[512];
	struct buf errors, warnings;
};

static void expiry_init(struct expiry *ex)
{
	*ex = (struct expiry){.now = time(NULL)};
	buf_init(&ex->errors, CLI_CHECK_REASON_MAX);
	buf_init(&ex->warnings, CLI_CHECK_REASON_MAX);
}

static void expiry_clear(struct expiry *ex)
{
	buf_free(&ex->errors);
	buf_free(&ex->warnings);
}

static void expiry_note(struct buf *b, const char *fmt, ...) _printf_(2, 3);
static void expiry_note(struct buf *b, const char *fmt, ...)
{
	_cleanup_free_ char *text = NULL;
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = vasprintf(&text, fmt, ap);
	va_end(ap);
	if (r >= 0)
		cli_check_append_line(b, text, strlen(text));
}

static int asn1_time(const ASN1_TIME *t, time_t *ret)
{
	struct tm tm;

	if (!t || ASN1_TIME_to_tm(t, &tm) != 1)
		return -EINVAL;
	*ret = timegm(&tm);
	return 0;
}

static void subject_text(X509 *cert, char *buf, size_t n)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *p = NULL;
	long len;

	buf[0] = '\0';
	if (!bio)
		return;
	if (X509_NAME_print_ex(bio, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253) >= 0) {
		len = BIO_get_mem_data(bio, &p);
		if (len > 0)
			snprintf(buf, n, "%.*s", (int)len, p);
	}
	BIO_free(bio);
}

static void expiry_cert(struct expiry *ex, const char *path, X509 *cert)
{
	time_t end, start;
	char subject[256], when[64];

	subject_text(cert, subject, sizeof(subject));
	if (asn1_time(X509_get0_notAfter(cert), &end) < 0 ||
	    asn1_time(X509_get0_notBefore(cert), &start) < 0) {
		expiry_note(&ex->errors, "%s: \"%s\" has a validity period that cannot be read",
			    path, subject);
		return;
	}
	ex->n_certs++;
	if (ex->first_path[0] == '\0' || end < ex->first_end) {
		ex->first_end = end;
		snprintf(ex->first_path, sizeof(ex->first_path), "%s", path);
	}
	if (end < ex->now) {
		cli_check_rfc3339(end, when, sizeof(when));
		expiry_note(&ex->errors, "%s: \"%s\" expired on %s", path, subject, when);
	} else if (start > ex->now) {
		cli_check_rfc3339(start, when, sizeof(when));
		expiry_note(&ex->errors, "%s: \"%s\" is not valid before %s; is the clock right?",
			    path, subject, when);
	} else if (end - ex->now < EXPIRY_WARN_SEC) {
		long long left = (long long)(end - ex->now);
		long long days = (left + 43200) / 86400;

		cli_check_rfc3339(end, when, sizeof(when));
		if (left < 86400)
			expiry_note(&ex->warnings, "%s: \"%s\" expires on %s (in less than a day)",
				    path, subject, when);
		else
			expiry_note(&ex->warnings, "%s: \"%s\" expires on %s (in %lld day%s)", path,
				    subject, when, days, days == 1 ? "" : "s");
	}
}

/* Every certificate in the PEM file at path. */
static void expiry_file(struct expiry *ex, const char *path)
{
	_cleanup_buf_ struct buf text = {0};
	struct err e = {0};
	size_t before = ex->n_certs;
	BIO *bio;
	X509 *cert;
	int r;

	ex->n_files++;
	buf_init(&text, CERT_FILE_MAX);
	r = fs_read_file(path, CERT_FILE_MAX, &text, &e);
	if (r < 0) {
		expiry_note(&ex->errors, "%s", err_msg(&e, r));
		return;
	}
	bio = BIO_new_mem_buf(text.data, (int)text.len);
	if (!bio) {
		expiry_note(&ex->errors, "%s: out of memory", path);
		return;
	}
	while ((cert = PEM_read_bio_X509(bio, NULL, NULL, NULL))) {
		expiry_cert(ex, path, cert);
		X509_free(cert);
	}
	ERR_clear_error();
	BIO_free(bio);
	if (ex->n_certs == before && !strstr(buf_str(&ex->errors), path))
		expiry_note(&ex->errors, "%s: no PEM certificate in it", path);
}

/* The result of the files looked at; none is a skip saying why_none. */
static void expiry_outcome(struct expiry *ex, struct outcome *o, const char *why_none)
{
	char when[64];

	if (ex->errors.len > 0) {
		cli_check_say(o, RESULT_ERROR, "%s", buf_str(&ex->errors));
		if (ex->warnings.len > 0)
			cli_check_add_line(o, "%s", buf_str(&ex->warnings));
	} else if (ex->warnings.len > 0) {
		cli_check_say(o, RESULT_WARNING, "%s", buf_str(&ex->warnings));
	} else if (ex->n_files == 0) {
		cli_check_say(o, RESULT_SKIPPED, "%s", why_none);
	} else {
		cli_check_rfc3339(ex->first_end, when, sizeof(when));
		cli_check_say(o, RESULT_OK,
			      "%zu certificate%s in %zu file%s; the first to expire: %s on %s",
			      ex->n_certs, ex->n_certs == 1 ? "" : "s", ex->n_files,
			      ex->n_files == 1 ? "" : "s", ex->first_path, when);
	}
}

static void expiry_uri(struct ctx *x, struct expiry *ex, const char *uri)
{
	_cleanup_free_ char *path = NULL;

	if (!uri)
		return;
	path = cli_check_file_of(x, uri);
	if (path)
		expiry_file(ex, path);
}

void cli_check_identity_expiry(struct ctx *x, int arg, struct outcome *o)
{
	const struct edgeid_config *c = cli_check_super_config(x);
	const struct config_provisioning *p;
	struct expiry ex;

	(void)arg;
	if (!c) {
		cli_check_say(o, RESULT_SKIPPED, "%s cannot be read", cli_check_config_path(x));
		return;
	}
	p = &c->provisioning;
	expiry_init(&ex);
	if (p->source == CONFIG_SOURCE_DPS && p->dps.method == CONFIG_ATTEST_X509 &&
	    !p->dps.x509.issued)
		expiry_uri(x, &ex, p->dps.x509.identity_cert);
	if (p->source == CONFIG_SOURCE_MANUAL && p->manual.method == CONFIG_MANUAL_X509 &&
	    !p->manual.x509.issued)
		expiry_uri(x, &ex, p->manual.x509.identity_cert);
	if (c->est.present && c->est.has_auth) {
		expiry_uri(x, &ex, c->est.auth.identity_cert);
		expiry_uri(x, &ex, c->est.auth.bootstrap_identity_cert);
	}
	if (c->local_ca.present && !c->local_ca.issued)
		expiry_uri(x, &ex, c->local_ca.cert);
	if (c->edge_ca.kind == CONFIG_EDGE_CA_PRELOADED)
		expiry_uri(x, &ex, c->edge_ca.cert);
	for (size_t i = 0; i < c->n_preloaded_certs; i++)
		expiry_uri(x, &ex, c->preloaded_certs[i].uri);
	expiry_outcome(&ex, o, "no certificate files are configured");
	expiry_clear(&ex);
}

void cli_check_trust_expiry(struct ctx *x, int arg, struct outcome *o)
{
	const struct edgeid_config *c = cli_check_super_config(x);
	struct provisioning p;
	struct expiry ex;

	(void)arg;
	cli_check_provisioning(x, &p);
	expiry_init(&ex);
	expiry_uri(x, &ex, p.trust_uri);
	if (c && c->est.present)
		for (size_t i = 0; i < c->est.n_trusted_certs; i++)
			expiry_uri(x, &ex, c->est.trusted_certs[i]);
	expiry_outcome(&ex, o, "no trust bundle is configured: the system store is used");
	expiry_clear(&ex);
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void cli_check_store_expiry(struct ctx *x, int arg, struct outcome *o)
{
	const char *home = cli_check_dcfg_string(x, D_CERTD, "homedir_path");
	_cleanup_free_ char *h = cli_check_under_root(x, home ? home : "/var/lib/aziot/certd");
	_cleanup_free_ char *dir = h ? fs_path_join(h, "certs") : NULL;
	DIR *d;
	struct dirent *de;
	char **names = NULL;
	size_t n = 0, cap = 0;
	struct expiry ex;

	(void)arg;
	if (!dir) {
		cli_check_say(o, RESULT_ERROR, "out of memory");
		return;
	}
	d = opendir(dir);
	if (!d) {
		if (errno == ENOENT)
			cli_check_say(o, RESULT_SKIPPED,
				      "%s does not exist: certd has stored no certificates", dir);
		else
			cli_check_say(o, RESULT_SKIPPED, "%s: %s%s", dir, strerror(errno),
				      errno == EACCES ? "; run 'edgeid check' as root" : "");
		return;
	}
	while ((de = readdir(d))) {
		char **grown;

		if (de->d_name[0] == '.')
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			grown = reallocarray(names, cap, sizeof(*names));
			if (!grown)
				break;
			names = grown;
		}
		names[n] = strdup(de->d_name);
		if (names[n])
			n++;
	}
	closedir(d);
	if (n > 0)
		qsort(names, n, sizeof(*names), cmp_names);
	expiry_init(&ex);
	for (size_t i = 0; i < n; i++) {
		_cleanup_free_ char *path = fs_path_join(dir, names[i]);
		struct stat st;

		if (path && stat(path, &st) == 0 && S_ISREG(st.st_mode))
			expiry_file(&ex, path);
		free(names[i]);
	}
	free(names);
	{
		_cleanup_free_ char *none = NULL;

		if (asprintf(&none, "%s holds no certificates", dir) < 0)
			none = NULL;
		expiry_outcome(&ex, o, none ? none : "certd's store holds no certificates");
	}
	expiry_clear(&ex);
}
