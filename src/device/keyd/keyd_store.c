/* SPDX-License-Identifier: MIT */
/*
 * Where a key id lives, and what keyd does with it. The layout is aziot's
 * (specs/aziot-compat.md §4.2), so an existing device's keys are used in
 * place:
 *
 *   a preloaded id:  the file or token object its [preloaded_keys] URI
 *                    names (a file is also written to on create and import,
 *                    as aziot does);
 *   any other id:    the object labelled id in the pkcs11_base_slot token
 *                    (when pkcs11_lib_path and pkcs11_base_slot are set),
 *                    then <homedir>/keys/<alnum-only id>-<sha256 hex>.key.
 *                    Loading takes the first that has the key; a new key
 *                    pair goes to the first; a new symmetric key to the
 *                    first that can hold it; delete removes it everywhere.
 *
 * Key pairs are PEM private keys (written as PKCS#8; any PEM private key
 * OpenSSL reads is accepted); symmetric keys are the raw bytes. Every
 * write goes through fs_write_atomic() with mode 0600: a crash leaves the
 * old file or the new one, never a torn key. Private and secret bytes read
 * from files are held in wiped buffers and freed as soon as the operation
 * is done; nothing here logs key material.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

#include "common/encode.h"
#include "common/fs.h"
#include "common/log.h"
#include "crypto/hash.h"
#include "crypto/openssl_cleanup.h"
#include "device/keyd/keyd.h"

/* Largest key file keyd reads (a PEM RSA-4096 key is about 3.3 KB). */
#define KEY_FILE_MAX (64 * 1024)
#define SYMMETRIC_KEY_LEN 32
#define GCM_TAG_LEN 16

DEFINE_CLEANUP_FUNC(BIO *, BIO_free)

struct store_preloaded {
	char *id;
	bool p11;
	char *path;
	struct keyd_p11_uri uri;
};

struct keyd_store {
	char *keys_dir; /* NULL without a homedir */
	struct store_preloaded *preloaded;
	size_t n_preloaded;
	struct keyd_p11 *p11; /* the module, with pkcs11_lib_path */
	bool has_base;        /* pkcs11_base_slot too: new keys go to the token */
	struct keyd_p11_uri base;
};

/* --- names, URIs, algorithms --------------------------------------------- */

int keyd_key_file_name(const char *id, char **ret)
{
	_cleanup_buf_ struct buf b = {0};
	uint8_t hash[HASH_SHA256_LEN];

	buf_init(&b, 0);
	if (hash_sha256(id, strlen(id), hash) < 0)
		return -EIO;
	for (const char *p = id; *p; p++) {
		char c = *p;

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
			if (buf_putc(&b, c) < 0)
				return -ENOMEM;
	}
	if (buf_putc(&b, '-') < 0 || hex_encode(&b, hash, sizeof(hash)) < 0 ||
	    buf_append_str(&b, ".key") < 0)
		return -ENOMEM;
	*ret = buf_steal(&b, NULL);
	return *ret ? 0 : -ENOMEM;
}

size_t keyd_preferred_algorithms(const char *s, enum keyd_alg ret[3])
{
	size_t n = 0;

	if (!s)
		s = "*";
	while (true) {
		size_t len = strcspn(s, ":");
		enum keyd_alg add[2];
		size_t n_add = 0;

		if (len == 1 && s[0] == '*') {
			add[n_add++] = KEYD_ALG_EC_P256;
			add[n_add++] = KEYD_ALG_RSA_2048;
		} else if (len == 7 && strneq(s, "ec-p256", 7)) {
			add[n_add++] = KEYD_ALG_EC_P256;
		} else if (len == 8 && strneq(s, "rsa-2048", 8)) {
			add[n_add++] = KEYD_ALG_RSA_2048;
		} else if (len == 8 && strneq(s, "rsa-4096", 8)) {
			add[n_add++] = KEYD_ALG_RSA_4096;
		}
		for (size_t i = 0; i < n_add; i++) {
			bool seen = false;

			for (size_t j = 0; j < n; j++)
				seen = seen || ret[j] == add[i];
			if (!seen && n < 3)
				ret[n++] = add[i];
		}
		if (s[len] == '\0')
			break;
		s += len + 1;
	}
	return n;
}

const char *keyd_alg_name(enum keyd_alg alg)
{
	switch (alg) {
	case KEYD_ALG_EC_P256:
		return "ec-p256";
	case KEYD_ALG_RSA_2048:
		return "rsa-2048";
	case KEYD_ALG_RSA_4096:
		return "rsa-4096";
	}
	return "?";
}

int keyd_file_uri_path(const char *uri, char **ret)
{
	_cleanup_buf_ struct buf b = {0};
	const char *path;

	if (!strneq(uri, "file://", 7))
		return -EINVAL;
	path = uri + 7;
	if (strneq(path, "localhost/", 10))
		path += 9;
	if (path[0] != '/' || strchr(path, '?') || strchr(path, '#'))
		return -EINVAL;
	buf_init(&b, 4096);
	if (url_decode(&b, path, strlen(path), false) < 0)
		return -EINVAL;
	*ret = buf_steal(&b, NULL);
	return *ret ? 0 : -ENOMEM;
}

void keyd_settings_clear(struct keyd_settings *s)
{
	if (!s)
		return;
	free(s->homedir);
	free(s->pkcs11_lib_path);
	if (s->pkcs11_base_slot) {
		explicit_bzero(s->pkcs11_base_slot, strlen(s->pkcs11_base_slot));
		free(s->pkcs11_base_slot);
	}
	for (size_t i = 0; i < s->n_preloaded; i++) {
		free(s->preloaded[i].id);
		free(s->preloaded[i].path);
		if (s->preloaded[i].pkcs11_uri) {
			explicit_bzero(s->preloaded[i].pkcs11_uri,
				       strlen(s->preloaded[i].pkcs11_uri));
			free(s->preloaded[i].pkcs11_uri);
		}
	}
	free(s->preloaded);
	*s = (struct keyd_settings){0};
}

/* --- errors ------------------------------------------------------------ */

/* The caller's mistake: aziot's InvalidParameter(None) with a cause. */
static int invalid(struct err *e, int code, const char *fmt, ...) _printf_(3, 4);
static int invalid(struct err *e, int code, const char *fmt, ...)
{
	char cause[ERR_MSG_MAX - 64];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cause, sizeof(cause), fmt, ap);
	va_end(ap);
	return err_set(e, code, "a parameter has an invalid value\ncaused by: %s", cause);
}

/* keyd's own failure, with the OpenSSL queue logged at debug. */
static int ssl_fail(struct err *e, const char *what)
{
	(void)hash_ssl_error(what);
	return err_set(e, -EIO, "%s failed (OpenSSL)", what);
}

/* --- locations ------------------------------------------------------------- */

/* One place a key id may live. */
struct loc {
	bool p11;
	char *path;              /* a file */
	struct keyd_p11_uri uri; /* or a token object */
};

static void locs_clear(struct loc *l, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(l[i].path);
		keyd_p11_uri_clear(&l[i].uri);
		l[i] = (struct loc){0};
	}
}

/* Where id may live, in aziot's order (§4.2): its [preloaded_keys]
 * location only; otherwise the token's base slot (when configured), then
 * <homedir>/keys/. */
static int locate(const struct keyd_store *st, const char *id, struct loc ret[2], size_t *ret_n,
		  struct err *e)
{
	size_t n = 0;

	for (size_t i = 0; i < st->n_preloaded; i++) {
		const struct store_preloaded *p = &st->preloaded[i];

		if (!streq(p->id, id))
			continue;
		ret[0] = (struct loc){.p11 = p->p11};
		if (p->p11 ? keyd_p11_uri_with_object(&p->uri, p->uri.object ? p->uri.object : id,
						      &ret[0].uri) < 0
			   : !(ret[0].path = strdup(p->path)))
			return err_set(e, -ENOMEM, "out of memory");
		*ret_n = 1;
		return 0;
	}
	if (st->p11 && st->has_base) {
		ret[n] = (struct loc){.p11 = true};
		if (keyd_p11_uri_with_object(&st->base, id, &ret[n].uri) < 0)
			return err_set(e, -ENOMEM, "out of memory");
		n++;
	}
	if (st->keys_dir) {
		_cleanup_free_ char *name = NULL;

		if (keyd_key_file_name(id, &name) < 0 ||
		    !(ret[n].path = fs_path_join(st->keys_dir, name))) {
			locs_clear(ret, n);
			return err_set(e, -ENOMEM, "out of memory");
		}
		ret[n++].p11 = false;
	}
	if (n == 0)
		return invalid(e, -EINVAL,
			       "key \"%s\" is not preloaded and keyd has no PKCS#11 base slot or "
			       "homedir_path to keep keys in",
			       id);
	*ret_n = n;
	return 0;
}

/* Read a key file into secret memory. -ENOENT when it does not exist. */
static int read_key_file(const char *path, struct buf *out, struct err *e)
{
	struct err e2 = {0};
	int r;

	buf_free(out);
	buf_init_secret(out, KEY_FILE_MAX);
	r = fs_read_file(path, KEY_FILE_MAX, out, &e2);
	if (r == -ENOENT)
		return -ENOENT;
	if (r < 0)
		return err_set(e, r, "%s", err_msg(&e2, r));
	return 0;
}

static int write_key_file(const char *path, const void *data, size_t len, struct err *e)
{
	return fs_write_atomic(path, data, len, 0600, FS_KEEP_OWNER, FS_KEEP_GROUP, e);
}

static bool looks_like_pem(const struct buf *b)
{
	return b->len >= 10 && strneq(b->data, "-----BEGIN", 10);
}

/* A PEM passphrase prompt must never block or guess: encrypted key files
 * are not supported, as in aziot. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

/* The key pair id at the first of locs that has it: *ret_pkey is the
 * private key of a file, or the public key of a token object, and
 * *ret_loc says which location. -ENOENT (with the client message) when no
 * location has it; with malformed_as_missing an unreadable file counts as
 * absent (for create-if-not-exists). */
static int find_pair(const char *id, struct loc *locs, size_t n, bool malformed_as_missing,
		     EVP_PKEY **ret_pkey, struct loc **ret_loc, struct keyd_store *st,
		     struct err *e)
{
	for (size_t i = 0; i < n; i++) {
		_cleanup_buf_ struct buf pem = {0};
		_cleanup_(BIO_freep) BIO *bio = NULL;
		EVP_PKEY *pkey;
		int r;

		if (locs[i].p11) {
			r = keyd_p11_exists(st->p11, &locs[i].uri, KEYD_P11_PRIVATE, e);
			if (r == 0)
				continue;
			if (r > 0)
				r = keyd_p11_public_key(st->p11, &locs[i].uri, ret_pkey, e);
			if (r < 0)
				return r;
			*ret_loc = &locs[i];
			return 0;
		}
		r = read_key_file(locs[i].path, &pem, e);
		if (r == -ENOENT)
			continue;
		if (r < 0)
			return r;
		bio = BIO_new_mem_buf(pem.data, (int)pem.len);
		if (!bio)
			return err_set(e, -ENOMEM, "out of memory");
		pkey = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
		if (!pkey) {
			ERR_clear_error();
			if (malformed_as_missing)
				continue;
			if (!looks_like_pem(&pem))
				return invalid(e, -EINVAL, "\"%s\" is not a key pair", id);
			return err_set(e, -EIO, "%s: not a PEM private key OpenSSL can read",
				       locs[i].path);
		}
		*ret_pkey = pkey;
		*ret_loc = &locs[i];
		return 0;
	}
	return invalid(e, -ENOENT, "key pair \"%s\" not found", id);
}

/* The symmetric key id at the first of locs that has it; a file's bytes go
 * to out (secret). An empty file counts as missing with empty_as_missing,
 * else it is an error, as in aziot. */
static int find_key(const char *id, struct loc *locs, size_t n, bool empty_as_missing,
		    struct buf *out, struct loc **ret_loc, struct keyd_store *st, struct err *e)
{
	for (size_t i = 0; i < n; i++) {
		int r;

		if (locs[i].p11) {
			r = keyd_p11_exists(st->p11, &locs[i].uri, KEYD_P11_SECRET, e);
			if (r == 0)
				continue;
			if (r < 0)
				return r;
			*ret_loc = &locs[i];
			return 0;
		}
		r = read_key_file(locs[i].path, out, e);
		if (r == -ENOENT || (r == 0 && out->len == 0 && empty_as_missing))
			continue;
		if (r < 0)
			return r;
		if (out->len == 0)
			return err_set(e, -EIO, "%s: key file is empty", locs[i].path);
		if (looks_like_pem(out))
			return invalid(e, -EINVAL, "\"%s\" is a key pair, not a symmetric key", id);
		*ret_loc = &locs[i];
		return 0;
	}
	return invalid(e, -ENOENT, "key \"%s\" not found", id);
}

/* The locations of one key id and, once found, the one that has it: what
 * every operation on an existing key starts with. Cleared when it leaves
 * scope (_cleanup_where_), on every path. */
struct where {
	struct loc locs[2];
	size_t n;
	struct loc *at;
};

static void where_clear(struct where *w)
{
	/* All of locs: locate may fail with the first one filled in. */
	locs_clear(w->locs, ARRAY_SIZE(w->locs));
	*w = (struct where){0};
}
#define _cleanup_where_ _cleanup_(where_clear)

static int where_locate(const struct keyd_store *st, const char *id, struct where *w, struct err *e)
{
	return locate(st, id, w->locs, &w->n, e);
}

/* The key pair id (find_pair, a malformed file is an error). */
static int where_pair(struct keyd_store *st, const char *id, struct where *w, EVP_PKEY **ret_pkey,
		      struct err *e)
{
	int r = where_locate(st, id, w, e);

	return r < 0 ? r : find_pair(id, w->locs, w->n, false, ret_pkey, &w->at, st, e);
}

/* The symmetric key id (find_key, an empty file is an error). */
static int where_key(struct keyd_store *st, const char *id, struct where *w, struct buf *ret_key,
		     struct err *e)
{
	int r = where_locate(st, id, w, e);

	return r < 0 ? r : find_key(id, w->locs, w->n, false, ret_key, &w->at, st, e);
}

/* --- the store ----------------------------------------------------------- */

/* Remove ".<name>.key.XXXXXX" files that a write interrupted by a crash
 * left behind (fs_write_atomic's temporaries): they may hold key bytes. */
static void sweep_temporaries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d))) {
		const char *n = de->d_name, *k;
		size_t len = strlen(n);

		if (n[0] != '.' || len < 12 || !(k = strstr(n, ".key.")) || k + 11 != n + len)
			continue;
		if (unlinkat(dirfd(d), n, 0) == 0)
			log_info("removed %s/%s, left by an interrupted write", dir, n);
	}
	closedir(d);
}

static int store_setup(struct keyd_store *st, const struct keyd_settings *s, struct err *e)
{
	int r;

	if (s->homedir) {
		st->keys_dir = fs_path_join(s->homedir, "keys");
		if (!st->keys_dir)
			return err_set(e, -ENOMEM, "out of memory");
		r = fs_mkdir_p(st->keys_dir, 0700, FS_KEEP_OWNER, FS_KEEP_GROUP, false, e);
		if (r < 0)
			return r;
		sweep_temporaries(st->keys_dir);
	}
	if (s->pkcs11_lib_path) {
		r = keyd_p11_open(s->pkcs11_lib_path, &st->p11, e);
		if (r < 0)
			return r;
	}
	if (s->pkcs11_base_slot && st->p11) {
		r = keyd_p11_uri_parse(s->pkcs11_base_slot, &st->base);
		if (r < 0)
			return err_set(e, r, "pkcs11_base_slot: not a usable pkcs11: URI");
		st->has_base = true;
		/* As aziot: a wrong slot or pin shows at start, not at first use. */
		r = keyd_p11_check_slot(st->p11, &st->base, e);
		if (r < 0)
			return err_prefix(e, r, "pkcs11_base_slot");
	}
	st->preloaded = calloc(s->n_preloaded + 1, sizeof(*st->preloaded));
	if (!st->preloaded)
		return err_set(e, -ENOMEM, "out of memory");
	for (size_t i = 0; i < s->n_preloaded; i++) {
		struct store_preloaded *p = &st->preloaded[st->n_preloaded++];

		p->id = strdup(s->preloaded[i].id);
		if (!p->id)
			return err_set(e, -ENOMEM, "out of memory");
		if (s->preloaded[i].pkcs11_uri) {
			if (!st->p11)
				return err_set(e, -EINVAL,
					       "preloaded key \"%s\" is in a PKCS#11 token, and "
					       "pkcs11_lib_path is not set",
					       p->id);
			r = keyd_p11_uri_parse(s->preloaded[i].pkcs11_uri, &p->uri);
			if (r < 0)
				return err_set(
				    e, r, "preloaded key \"%s\": not a usable pkcs11: URI", p->id);
			p->p11 = true;
		} else {
			p->path = strdup(s->preloaded[i].path);
			if (!p->path)
				return err_set(e, -ENOMEM, "out of memory");
		}
	}
	return 0;
}

int keyd_store_new(const struct keyd_settings *s, struct keyd_store **ret, struct err *e)
{
	struct keyd_store *st = calloc(1, sizeof(*st));
	int r;

	if (!st)
		return err_set(e, -ENOMEM, "out of memory");
	r = store_setup(st, s, e);
	if (r >= 0 && !st->keys_dir && !st->has_base) {
		bool preloaded = false;

		for (size_t i = 0; i < st->n_preloaded; i++)
			preloaded = preloaded || streq(st->preloaded[i].id, KEYD_HANDLE_KEY_ID);
		if (!preloaded)
			r = err_set(e, -EINVAL,
				    "aziot_keys.homedir_path is not set: keyd has nowhere to keep "
				    "its keys (it is normally /var/lib/aziot/keyd)");
	}
	/* The handle key: created at the first start, then kept. */
	if (r >= 0)
		r = keyd_store_create_key(st, KEYD_HANDLE_KEY_ID, false, e);
	if (r < 0) {
		keyd_store_free(st);
		return r;
	}
	*ret = st;
	return 0;
}

void keyd_store_free(struct keyd_store *st)
{
	if (!st)
		return;
	for (size_t i = 0; i < st->n_preloaded; i++) {
		free(st->preloaded[i].id);
		free(st->preloaded[i].path);
		keyd_p11_uri_clear(&st->preloaded[i].uri);
	}
	free(st->preloaded);
	keyd_p11_uri_clear(&st->base);
	keyd_p11_close(st->p11);
	free(st->keys_dir);
	free(st);
}

int keyd_store_handle_mac(void *ctx, const void *data, size_t len, uint8_t ret[32])
{
	struct err e = {0};
	int r = keyd_store_hmac(ctx, KEYD_HANDLE_KEY_ID, data, len, ret, &e);

	if (r < 0)
		log_err("the handle key \"%s\": %s", KEYD_HANDLE_KEY_ID, err_msg(&e, r));
	/* Whatever went wrong, it is keyd's failure, not a bad handle. */
	return r < 0 ? -EIO : 0;
}

/* --- key pairs ----------------------------------------------------------- */

static int generate(enum keyd_alg alg, EVP_PKEY **ret)
{
	switch (alg) {
	case KEYD_ALG_EC_P256:
		*ret = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
		break;
	case KEYD_ALG_RSA_2048:
		*ret = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
		break;
	case KEYD_ALG_RSA_4096:
		*ret = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)4096);
		break;
	}
	return *ret ? 0 : -EIO;
}

/* PKCS#8 PEM of pkey into secret memory. */
static int to_pem(EVP_PKEY *pkey, struct buf *out)
{
	_cleanup_(BIO_freep) BIO *bio = BIO_new(BIO_s_mem());
	char *data;
	long len;
	int r;

	if (!bio || PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL) != 1)
		return -EIO;
	len = BIO_get_mem_data(bio, &data);
	if (len <= 0)
		return -EIO;
	r = buf_append(out, data, (size_t)len);
	OPENSSL_cleanse(data, (size_t)len);
	return r;
}

static int create_pair_file(const char *path, enum keyd_alg alg, struct err *e)
{
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *pkey = NULL;
	_cleanup_buf_ struct buf pem = {0};

	if (generate(alg, &pkey) < 0)
		return ssl_fail(e, "key pair generation");
	buf_init_secret(&pem, KEY_FILE_MAX);
	if (to_pem(pkey, &pem) < 0)
		return ssl_fail(e, "PEM encoding");
	return write_key_file(path, pem.data, pem.len, e);
}

int keyd_store_create_key_pair(struct keyd_store *st, const char *id, const enum keyd_alg *algs,
			       size_t n_algs, struct err *e)
{
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *pkey = NULL;
	_cleanup_where_ struct where w = {0};
	int r;

	r = where_locate(st, id, &w, e);
	if (r < 0)
		return r;
	r = find_pair(id, w.locs, w.n, true, &pkey, &w.at, st, e);
	if (r != -ENOENT)
		return r;
	err_clear(e);
	if (n_algs == 0)
		return invalid(e, -EINVAL,
			       "preferredAlgorithms names no algorithm keyd supports (ec-p256, "
			       "rsa-2048, rsa-4096, *)");
	/* Only the first location; a file gets the first algorithm, a token
	 * each in turn until one works (aziot's rules). */
	if (!w.locs[0].p11) {
		r = create_pair_file(w.locs[0].path, algs[0], e);
		if (r >= 0)
			log_info("created key pair \"%s\" (%s)", id, keyd_alg_name(algs[0]));
		return r;
	}
	for (size_t i = 0; i < n_algs; i++) {
		struct err e2 = {0};

		r = keyd_p11_generate_pair(st->p11, &w.locs[0].uri, algs[i], &e2);
		if (r >= 0) {
			log_info("created key pair \"%s\" (%s) in the PKCS#11 token", id,
				 keyd_alg_name(algs[i]));
			return r;
		}
		log_warn("key pair \"%s\": %s: %s", id, keyd_alg_name(algs[i]), err_msg(&e2, r));
	}
	return invalid(e, -EINVAL,
		       "the PKCS#11 token could not generate any of the preferred "
		       "algorithms");
}

int keyd_store_load_key_pair(struct keyd_store *st, const char *id, struct err *e)
{
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *pkey = NULL;
	_cleanup_where_ struct where w = {0};

	return where_pair(st, id, &w, &pkey, e);
}

static int rename_file(const char *from_id, const char *from, const char *to, struct err *e)
{
	_cleanup_free_ char *dir = NULL;

	if (rename(from, to) < 0) {
		if (errno == ENOENT)
			return invalid(e, -ENOENT, "key pair \"%s\" not found", from_id);
		return err_set(e, -errno, "rename %s to %s: %s", from, to, strerror(errno));
	}
	/* Make the rename durable. */
	dir = strdup(to);
	if (dir && strrchr(dir, '/')) {
		int fd;

		*strrchr(dir, '/') = '\0';
		fd = open(*dir ? dir : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd >= 0) {
			(void)fsync(fd);
			close(fd);
		}
	}
	return 0;
}

int keyd_store_move_key_pair(struct keyd_store *st, const char *from, const char *to, struct err *e)
{
	_cleanup_where_ struct where wf = {0}, wt = {0};
	const struct loc *lf = &wf.locs[0], *lt = &wt.locs[0];
	int r;

	r = where_locate(st, from, &wf, e);
	if (r >= 0)
		r = where_locate(st, to, &wt, e);
	if (r < 0)
		return r;
	/* The first location of each, as aziot. */
	if (!lf->p11 && !lt->p11)
		r = rename_file(from, lf->path, lt->path, e);
	else if (lf->p11 && lt->p11)
		r = keyd_p11_rename_pair(st->p11, &lf->uri, &lt->uri, e);
	else
		r = invalid(e, -EINVAL,
			    "a key pair cannot be moved between a file and a PKCS#11 "
			    "token");
	if (r >= 0)
		log_info("moved key pair \"%s\" to \"%s\"", from, to);
	return r;
}

/* Delete id at every location. */
static int delete_everywhere(struct keyd_store *st, const char *id, bool pair, struct err *e)
{
	_cleanup_where_ struct where w = {0};
	int r;

	r = where_locate(st, id, &w, e);
	for (size_t i = 0; r >= 0 && i < w.n; i++) {
		const struct loc *l = &w.locs[i];

		if (l->p11)
			r = keyd_p11_delete(st->p11, &l->uri, pair, e);
		else if (unlink(l->path) < 0 && errno != ENOENT)
			r = err_set(e, -errno, "%s: cannot delete: %s", l->path, strerror(errno));
	}
	if (r >= 0)
		log_info("deleted %s \"%s\"", pair ? "key pair" : "key", id);
	return r;
}

int keyd_store_delete_key_pair(struct keyd_store *st, const char *id, struct err *e)
{
	return delete_everywhere(st, id, true, e);
}

static int b64_string(const void *data, size_t len, char **ret)
{
	_cleanup_buf_ struct buf b = {0};

	buf_init(&b, 0);
	if (base64_encode(&b, data, len, B64_STANDARD) < 0)
		return -ENOMEM;
	*ret = buf_steal(&b, NULL);
	return *ret ? 0 : -ENOMEM;
}

static int bn_param(EVP_PKEY *pkey, const char *name, char **ret, struct err *e)
{
	_cleanup_(BN_freep) BIGNUM *bn = NULL;
	_cleanup_free_ uint8_t *bytes = NULL;
	int n;

	if (EVP_PKEY_get_bn_param(pkey, name, &bn) != 1)
		return ssl_fail(e, "reading an RSA parameter");
	n = BN_num_bytes(bn);
	bytes = malloc((size_t)n + 1);
	if (!bytes)
		return err_set(e, -ENOMEM, "out of memory");
	BN_bn2bin(bn, bytes);
	return b64_string(bytes, (size_t)n, ret) < 0 ? err_set(e, -ENOMEM, "out of memory") : 0;
}

static int pair_parameter(EVP_PKEY *pkey, const char *id, const char *name, char **ret,
			  struct err *e)
{
	/* DER of the OID 1.2.840.10045.3.1.7 (prime256v1), tag and length. */
	static const uint8_t p256_oid[] = {0x06, 0x08, 0x2a, 0x86, 0x48,
					   0xce, 0x3d, 0x03, 0x01, 0x07};
	int base = EVP_PKEY_get_base_id(pkey);
	bool ec = base == EVP_PKEY_EC;
	bool rsa = base == EVP_PKEY_RSA || base == EVP_PKEY_RSA_PSS;

	if (streq(name, "algorithm")) {
		if (!ec && !rsa)
			return invalid(e, -EINVAL, "key pair \"%s\" is neither RSA nor EC", id);
		*ret = strdup(ec ? "ECDSA" : "RSA");
		return *ret ? 0 : err_set(e, -ENOMEM, "out of memory");
	}
	if (streq(name, "ec-curve-oid") || streq(name, "ec-point")) {
		char group[64];
		uint8_t point[133];
		size_t len = 0;

		if (!ec)
			return invalid(e, -EINVAL, "key pair \"%s\" is not an EC key pair", id);
		if (EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group,
						   sizeof(group), NULL) != 1 ||
		    !streq(group, "prime256v1"))
			return invalid(e, -EINVAL, "the curve of key pair \"%s\" is not P-256", id);
		if (streq(name, "ec-curve-oid"))
			return b64_string(p256_oid, sizeof(p256_oid), ret) < 0
				   ? err_set(e, -ENOMEM, "out of memory")
				   : 0;
		if (EVP_PKEY_get_octet_string_param(pkey, OSSL_PKEY_PARAM_PUB_KEY, point,
						    sizeof(point), &len) != 1)
			return ssl_fail(e, "reading the EC point");
		/* aziot returns the compressed form: 02|03 by the parity of Y, then X. */
		if (len == 65 && point[0] == 0x04) {
			point[0] = (uint8_t)(0x02 | (point[64] & 1));
			len = 33;
		} else if (len != 33) {
			return err_set(e, -EIO, "unexpected EC point encoding");
		}
		return b64_string(point, len, ret) < 0 ? err_set(e, -ENOMEM, "out of memory") : 0;
	}
	if (streq(name, "rsa-modulus") || streq(name, "rsa-exponent")) {
		if (!rsa)
			return invalid(e, -EINVAL, "key pair \"%s\" is not an RSA key pair", id);
		return bn_param(pkey,
				streq(name, "rsa-modulus") ? OSSL_PKEY_PARAM_RSA_N
							   : OSSL_PKEY_PARAM_RSA_E,
				ret, e);
	}
	return invalid(e, -EINVAL,
		       "unknown parameter \"%s\" (expected algorithm, ec-curve-oid, ec-point, "
		       "rsa-modulus or rsa-exponent)",
		       name);
}

int keyd_store_key_pair_parameter(struct keyd_store *st, const char *id, const char *name,
				  char **ret, struct err *e)
{
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *pkey = NULL;
	_cleanup_where_ struct where w = {0};
	int r;

	r = where_pair(st, id, &w, &pkey, e);
	return r < 0 ? r : pair_parameter(pkey, id, name, ret, e);
}

static int pkey_sign(EVP_PKEY *pkey, int rsa_padding, const void *in, size_t len, struct buf *out,
		     struct err *e)
{
	_cleanup_(EVP_PKEY_CTX_freep) EVP_PKEY_CTX *ctx = NULL;
	_cleanup_free_ uint8_t *sig = NULL;
	size_t siglen = 0;

	ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
	if (!ctx || EVP_PKEY_sign_init(ctx) != 1)
		return ssl_fail(e, "signing");
	if (rsa_padding && EVP_PKEY_CTX_set_rsa_padding(ctx, rsa_padding) != 1)
		return ssl_fail(e, "setting RSA padding");
	if (EVP_PKEY_sign(ctx, NULL, &siglen, in, len) != 1)
		return ssl_fail(e, "signing");
	sig = malloc(siglen);
	if (!sig)
		return err_set(e, -ENOMEM, "out of memory");
	if (EVP_PKEY_sign(ctx, sig, &siglen, in, len) != 1) {
		ERR_clear_error();
		return invalid(e, -EINVAL, "the key could not sign this input");
	}
	return buf_append(out, sig, siglen) < 0 ? err_set(e, -ENOMEM, "out of memory") : 0;
}

int keyd_store_sign_ecdsa(struct keyd_store *st, const char *id, const void *digest, size_t len,
			  struct buf *out, struct err *e)
{
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *pkey = NULL;
	_cleanup_where_ struct where w = {0};
	int r;

	r = where_pair(st, id, &w, &pkey, e);
	if (r < 0)
		return r;
	if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_EC)
		return invalid(e, -EINVAL, "ECDSA needs an EC key pair; \"%s\" is not one", id);
	if (len == 0)
		return invalid(e, -EINVAL, "the digest is empty");
	if (w.at->p11)
		return keyd_p11_sign(st->p11, &w.at->uri, KEYD_P11_ECDSA, digest, len, out, e);
	return pkey_sign(pkey, 0, digest, len, out, e);
}

int keyd_store_rsa_private(struct keyd_store *st, const char *id, bool pkcs1, const void *in,
			   size_t len, struct buf *out, struct err *e)
{
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *pkey = NULL;
	_cleanup_where_ struct where w = {0};
	size_t k;
	int r;

	r = where_pair(st, id, &w, &pkey, e);
	if (r < 0)
		return r;
	k = (size_t)EVP_PKEY_get_size(pkey);
	if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_RSA)
		return invalid(e, -EINVAL, "%s needs an RSA key pair; \"%s\" is not one",
			       pkcs1 ? "RSA-PKCS1" : "RSA-NO-PADDING", id);
	if (pkcs1 && len + 11 > k)
		return invalid(e, -EINVAL,
			       "RSA-PKCS1 input is %zu bytes; this %zu-bit key takes at most %zu",
			       len, k * 8, k - 11);
	if (!pkcs1 && len != k)
		return invalid(
		    e, -EINVAL,
		    "RSA-NO-PADDING input is %zu bytes; this %zu-bit key takes exactly %zu", len,
		    k * 8, k);
	if (w.at->p11)
		return keyd_p11_sign(st->p11, &w.at->uri,
				     pkcs1 ? KEYD_P11_RSA_PKCS : KEYD_P11_RSA_X509, in, len, out,
				     e);
	return pkey_sign(pkey, pkcs1 ? RSA_PKCS1_PADDING : RSA_NO_PADDING, in, len, out, e);
}

/* --- symmetric keys ------------------------------------------------------ */

/* Generate (bytes NULL) or import at the first location that takes it: a
 * token that cannot hold the key passes it on to the file (aziot's rule). */
static int create_key(struct keyd_store *st, const char *id, const void *bytes, size_t len,
		      bool aes, struct loc *locs, size_t n, struct err *e)
{
	for (size_t i = 0; i < n; i++) {
		uint8_t fresh[SYMMETRIC_KEY_LEN];
		int r;

		if (locs[i].p11) {
			r = keyd_p11_create_secret(st->p11, &locs[i].uri, aes, bytes, len, e);
			if (r == -EOPNOTSUPP)
				continue;
			if (r >= 0)
				log_info("%s key \"%s\" in the PKCS#11 token",
					 bytes ? "imported" : "created", id);
			return r;
		}
		if (!bytes) {
			/* 32 bytes: the HMAC-SHA256 key or the AES-256-GCM key. */
			if (RAND_priv_bytes(fresh, sizeof(fresh)) != 1)
				return ssl_fail(e, "random key generation");
		}
		r = write_key_file(locs[i].path, bytes ? bytes : fresh, bytes ? len : sizeof(fresh),
				   e);
		OPENSSL_cleanse(fresh, sizeof(fresh));
		if (r >= 0)
			log_info("%s key \"%s\"", bytes ? "imported" : "created", id);
		return r;
	}
	return err_set(e, -EIO, "no location can hold key \"%s\"", id);
}

int keyd_store_create_key(struct keyd_store *st, const char *id, bool aes, struct err *e)
{
	_cleanup_buf_ struct buf key = {0};
	_cleanup_where_ struct where w = {0};
	int r;

	r = where_locate(st, id, &w, e);
	if (r >= 0)
		r = find_key(id, w.locs, w.n, true, &key, &w.at, st, e);
	if (r == -ENOENT) {
		err_clear(e);
		r = create_key(st, id, NULL, 0, aes, w.locs, w.n, e);
	}
	return r;
}

int keyd_store_import_key(struct keyd_store *st, const char *id, const void *bytes, size_t len,
			  bool aes, struct err *e)
{
	_cleanup_where_ struct where w = {0};
	int r;

	if (len == 0)
		return err_set(e, -EINVAL,
			       "parameter \"keyBytes\" has an invalid value\ncaused by: the key is "
			       "empty");
	r = where_locate(st, id, &w, e);
	/* An import replaces the key, wherever it was. */
	for (size_t i = 0; r >= 0 && i < w.n; i++)
		if (w.locs[i].p11)
			r = keyd_p11_delete(st->p11, &w.locs[i].uri, false, e);
	return r < 0 ? r : create_key(st, id, bytes, len, aes, w.locs, w.n, e);
}

int keyd_store_load_key(struct keyd_store *st, const char *id, struct err *e)
{
	_cleanup_buf_ struct buf key = {0};
	_cleanup_where_ struct where w = {0};

	return where_key(st, id, &w, &key, e);
}

int keyd_store_delete_key(struct keyd_store *st, const char *id, struct err *e)
{
	return delete_everywhere(st, id, false, e);
}

int keyd_store_hmac(struct keyd_store *st, const char *id, const void *data, size_t len,
		    uint8_t ret[32], struct err *e)
{
	_cleanup_buf_ struct buf key = {0}, mac = {0};
	_cleanup_where_ struct where w = {0};
	int r;

	r = where_key(st, id, &w, &key, e);
	if (r < 0)
		return r;
	if (!w.at->p11)
		return hash_hmac_sha256(key.data, key.len, data, len, ret) < 0
			   ? err_set(e, -EIO, "HMAC-SHA256 failed")
			   : 0;
	buf_init_secret(&mac, 64);
	r = keyd_p11_sign(st->p11, &w.at->uri, KEYD_P11_HMAC_SHA256, data, len, &mac, e);
	if (r < 0)
		return r;
	if (mac.len != 32)
		return err_set(e, -EIO, "the token's HMAC-SHA256 is %zu bytes", mac.len);
	memcpy(ret, mac.data, 32);
	return 0;
}

int keyd_aead(const uint8_t *key, size_t key_len, bool encrypt, const void *iv, size_t iv_len,
	      const void *aad, size_t aad_len, const void *in, size_t len, struct buf *out,
	      struct err *e)
{
	_cleanup_(EVP_CIPHER_CTX_freep) EVP_CIPHER_CTX *ctx = NULL;
	const uint8_t *ct = in, *tag = NULL;
	uint8_t tagbuf[GCM_TAG_LEN];
	size_t ct_len = len;
	uint8_t *dst;
	int n = 0, fin = 0;

	if (key_len != SYMMETRIC_KEY_LEN)
		return invalid(e, -EINVAL, "AEAD needs a 32-byte key; this key has %zu bytes",
			       key_len);
	if (iv_len == 0)
		return err_set(e, -EINVAL,
			       "parameter \"iv\" has an invalid value\ncaused by: the IV is empty");
	if (len > INT32_MAX - 64 || aad_len > INT32_MAX)
		return invalid(e, -EINVAL, "the input is too large");
	if (!encrypt) {
		const uint8_t *c = in;

		if (len < 1 + GCM_TAG_LEN)
			return err_set(e, -EINVAL,
				       "parameter \"ciphertext\" has an invalid value\ncaused by: "
				       "malformed ciphertext");
		if (c[0] == 0x02) {
			ct = c + 1;
			ct_len = len - 1 - GCM_TAG_LEN;
			tag = c + len - GCM_TAG_LEN;
		} else if (c[0] == 0x01) {
			tag = c + 1;
			ct = c + 1 + GCM_TAG_LEN;
			ct_len = len - 1 - GCM_TAG_LEN;
		} else {
			return err_set(e, -EINVAL,
				       "parameter \"ciphertext\" has an invalid value\ncaused by: "
				       "unknown version %u",
				       c[0]);
		}
	}

	ctx = EVP_CIPHER_CTX_new();
	if (!ctx || EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL, encrypt) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, (int)iv_len, NULL) != 1 ||
	    EVP_CipherInit_ex(ctx, NULL, NULL, key, iv, encrypt) != 1)
		return ssl_fail(e, "AES-256-GCM setup");
	if (aad_len > 0 && EVP_CipherUpdate(ctx, NULL, &n, aad, (int)aad_len) != 1)
		return ssl_fail(e, "AES-256-GCM");
	n = 0;
	if (encrypt && buf_putc(out, 0x02) < 0)
		return err_set(e, -ENOMEM, "out of memory");
	/* Room for the output in place: append zeroes, then write over them. */
	{
		size_t start = out->len;
		static const uint8_t zero[256];

		for (size_t left = ct_len + GCM_TAG_LEN; left > 0;) {
			size_t k = left < sizeof(zero) ? left : sizeof(zero);

			if (buf_append(out, zero, k) < 0)
				return err_set(e, -ENOMEM, "out of memory");
			left -= k;
		}
		dst = (uint8_t *)out->data + start;
		if (ct_len > 0 && EVP_CipherUpdate(ctx, dst, &n, ct, (int)ct_len) != 1)
			return ssl_fail(e, "AES-256-GCM");
		if (!encrypt) {
			memcpy(tagbuf, tag, GCM_TAG_LEN);
			if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, GCM_TAG_LEN, tagbuf) !=
			    1)
				return ssl_fail(e, "AES-256-GCM");
		}
		if (EVP_CipherFinal_ex(ctx, dst + n, &fin) != 1) {
			ERR_clear_error();
			OPENSSL_cleanse(dst, ct_len);
			out->len = start;
			return err_set(e, -EINVAL,
				       "parameter \"ciphertext\" has an invalid value\ncaused by: "
				       "it does not authenticate with this key, IV and AAD");
		}
		if (encrypt) {
			if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, GCM_TAG_LEN,
						dst + ct_len) != 1)
				return ssl_fail(e, "AES-256-GCM");
			out->len = start + ct_len + GCM_TAG_LEN;
		} else {
			out->len = start + ct_len;
		}
		out->data[out->len] = '\0';
	}
	return 0;
}

int keyd_store_aead(struct keyd_store *st, const char *id, bool encrypt, const void *iv,
		    size_t iv_len, const void *aad, size_t aad_len, const void *in, size_t len,
		    struct buf *out, struct err *e)
{
	_cleanup_buf_ struct buf key = {0};
	_cleanup_where_ struct where w = {0};
	int r;

	r = where_key(st, id, &w, &key, e);
	if (r < 0)
		return r;
	if (w.at->p11)
		return keyd_p11_aead(st->p11, &w.at->uri, encrypt, iv, iv_len, aad, aad_len, in,
				     len, out, e);
	return keyd_aead((const uint8_t *)key.data, key.len, encrypt, iv, iv_len, aad, aad_len, in,
			 len, out, e);
}
