/* SPDX-License-Identifier: MIT */
/*
 * config.toml -> struct edgeid_config.
 *
 * The rules follow what aziotctl and iotedge accept (serde, see
 * specs/aziot-compat.md §3): the same keys, types, tags and defaults.
 * Where serde would silently drop a value the user obviously meant (a key
 * of the other provisioning source, half of an auth pair, a top-level key
 * written inside [provisioning]) we stop with an error instead; unknown
 * keys, which serde ignores, produce a warning with a "did you mean".
 * Problems that would only surface when a daemon uses a value (a PKCS#11
 * key without pkcs11_lib_path, an EST certificate without any URL) are
 * warnings too, so that every config aziot accepts is accepted here.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/encode.h"
#include "common/toml.h"
#include "config/config.h"
#include "config/config_value.h"

#define KEYPATH_MAX 512

struct pwarning {
	struct toml_pos pos;
	size_t seq;
	char *text;
};

/* An EST/local-CA issuance seen while parsing, checked once everything is
 * known (URLs may come from [cert_issuance.est.urls]). */
struct pissuance {
	const struct config_issuance *iss;
	char id[128];
	char path[KEYPATH_MAX];
	struct toml_pos pos;
};

struct pkcs11_use {
	char path[KEYPATH_MAX];
	struct toml_pos pos;
};

struct pctx {
	const char *file;
	struct err *e;
	struct edgeid_config *cfg;
	struct pwarning *warnings;
	size_t n_warnings;
	bool oom;
	struct pissuance *issuances;
	size_t n_issuances;
	struct pkcs11_use *pkcs11;
	size_t n_pkcs11;
	struct toml_pos gateway_pos;
};

typedef const struct toml_value tv_t;

enum {
	REQ = 1 << 0,      /* a missing key is an error */
	NONEMPTY = 1 << 1, /* "" is an error */
};

static const struct toml_pos pos_start = {1, 1};

/* ---- small helpers --------------------------------------------------- */

static char *xstrdup(struct pctx *p, const char *s)
{
	char *d = strdup(s);

	if (!d)
		p->oom = true;
	return d;
}

static void zfree(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

static bool bare_key(const char *k)
{
	if (!*k)
		return false;
	for (; *k; k++)
		if (!((*k >= 'A' && *k <= 'Z') || (*k >= 'a' && *k <= 'z') ||
		      (*k >= '0' && *k <= '9') || *k == '_' || *k == '-'))
			return false;
	return true;
}

/* out = parent.key, with key quoted when it is not bare. */
static void path_join(char *out, const char *parent, const char *key)
{
	char q[KEYPATH_MAX];

	if (bare_key(key)) {
		snprintf(q, sizeof(q), "%s", key);
	} else {
		size_t j = 0;

		q[j++] = '"';
		for (const char *k = key; *k && j < sizeof(q) - 3; k++) {
			if (*k == '"' || *k == '\\')
				q[j++] = '\\';
			q[j++] = *k;
		}
		q[j++] = '"';
		q[j] = '\0';
	}
	if (parent && *parent)
		snprintf(out, KEYPATH_MAX, "%s.%.*s", parent, KEYPATH_MAX - 2, q);
	else
		snprintf(out, KEYPATH_MAX, "%s", q);
}

/* Replace the value of pin-value=... in s (a URI) with ***. */
static void mask_pins(const char *s, char *out, size_t n)
{
	size_t j = 0;

	while (*s && j + 1 < n) {
		if (strneq(s, "pin-value=", 10)) {
			const char *rep = "pin-value=***";

			for (const char *r = rep; *r && j + 1 < n; r++)
				out[j++] = *r;
			s += 10;
			while (*s && *s != '&' && *s != ';')
				s++;
			continue;
		}
		out[j++] = *s++;
	}
	out[j] = '\0';
}

/* How a value is shown after "got": as toml_describe, with PINs in
 * pkcs11: URIs masked. */
static void describe(tv_t *v, char *out, size_t n)
{
	char masked[256];

	if (v->type != TOML_STRING) {
		toml_describe(v, out, n);
		return;
	}
	mask_pins(v->str.ptr, masked, sizeof(masked));
	toml_describe_string(masked, strlen(masked), out, n);
}

static int fail(struct pctx *p, struct toml_pos pos, const char *path, const char *fmt, ...)
    _printf_(4, 5);
static int fail(struct pctx *p, struct toml_pos pos, const char *path, const char *fmt, ...)
{
	char msg[ERR_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return err_set(p->e, -EINVAL, "%s:%u:%u: %s: %s", p->file, pos.line, pos.col, path, msg);
}

static void warn(struct pctx *p, struct toml_pos pos, const char *path, const char *fmt, ...)
    _printf_(4, 5);
static void warn(struct pctx *p, struct toml_pos pos, const char *path, const char *fmt, ...)
{
	char msg[ERR_MSG_MAX], *text;
	struct pwarning *w;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (asprintf(&text, "%s:%u:%u: warning: %s: %s", p->file, pos.line, pos.col, path, msg) <
	    0) {
		p->oom = true;
		return;
	}
	w = reallocarray(p->warnings, p->n_warnings + 1, sizeof(*w));
	if (!w) {
		free(text);
		p->oom = true;
		return;
	}
	p->warnings = w;
	w[p->n_warnings] = (struct pwarning){pos, p->n_warnings, text};
	p->n_warnings++;
}

static int fail_type(struct pctx *p, tv_t *v, const char *path, const char *expected)
{
	char got[256];

	describe(v, got, sizeof(got));
	return fail(p, v->pos, path, "expected %s, got %s", expected, got);
}

/* Edit distance, for "did you mean". Strings longer than 63 are far. */
static unsigned distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	unsigned row[64];

	if (la > 63 || lb > 63)
		return 99;
	for (size_t j = 0; j <= lb; j++)
		row[j] = (unsigned)j;
	for (size_t i = 1; i <= la; i++) {
		unsigned prev = row[0];

		row[0] = (unsigned)i;
		for (size_t j = 1; j <= lb; j++) {
			unsigned cur = row[j];
			unsigned best = prev + (a[i - 1] == b[j - 1] ? 0 : 1);

			if (row[j] + 1 < best)
				best = row[j] + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			prev = cur;
		}
	}
	return row[lb];
}

static bool close_to(const char *typo, const char *key)
{
	unsigned d = distance(typo, key);
	size_t l = strlen(key);

	return d > 0 && (d <= 1 || (d <= 2 && l >= 5));
}

static bool in_list(const char *k, const char *const *list)
{
	for (; list && *list; list++)
		if (streq(k, *list))
			return true;
	return false;
}

/* A missing required key. Points at the table; mentions a key of the
 * table that looks like a misspelling of it. */
static int fail_missing(struct pctx *p, tv_t *tbl, const char *tpath, const char *key,
			bool is_table)
{
	char path[KEYPATH_MAX];

	path_join(path, tpath, key);
	for (size_t i = 0; tbl && i < tbl->table.n; i++)
		if (close_to(tbl->table.items[i].key, key))
			return fail(p, tbl->pos, path,
				    "missing required %s (found \"%s\": misspelled?)",
				    is_table ? "table" : "key", tbl->table.items[i].key);
	return fail(p, tbl ? tbl->pos : pos_start, path, "missing required %s",
		    is_table ? "table" : "key");
}

/* Warn about every key of tbl not in known (NULL-terminated). */
static void warn_unknown(struct pctx *p, tv_t *tbl, const char *tpath, const char *const *known)
{
	for (size_t i = 0; i < tbl->table.n; i++) {
		const struct toml_kv *kv = &tbl->table.items[i];
		const char *guess = NULL;
		char path[KEYPATH_MAX];

		if (in_list(kv->key, known))
			continue;
		for (const char *const *k = known; *k; k++)
			if (close_to(kv->key, *k)) {
				guess = *k;
				break;
			}
		path_join(path, tpath, kv->key);
		if (guess)
			warn(p, kv->key_pos, path, "unknown key, ignored (did you mean \"%s\"?)",
			     guess);
		else
			warn(p, kv->key_pos, path, "unknown key, ignored");
	}
}

/* ---- typed getters: 1 present, 0 absent, <0 error ---------------------- */

static int get_table(struct pctx *p, tv_t *tbl, const char *tpath, const char *key, unsigned flags,
		     tv_t **ret)
{
	tv_t *v = toml_table_get(tbl, key);
	char path[KEYPATH_MAX];

	*ret = NULL;
	if (!v)
		return flags & REQ ? fail_missing(p, tbl, tpath, key, true) : 0;
	path_join(path, tpath, key);
	if (v->type != TOML_TABLE)
		return fail_type(p, v, path, "a table");
	*ret = v;
	return 1;
}

static int check_string(struct pctx *p, tv_t *v, const char *path, unsigned flags)
{
	if (v->type != TOML_STRING)
		return fail_type(p, v, path, "a string");
	if (strlen(v->str.ptr) != v->str.len)
		return fail(p, v->pos, path, "expected a string without NUL characters");
	if ((flags & NONEMPTY) && v->str.len == 0)
		return fail(p, v->pos, path, "expected a non-empty string, got \"\"");
	return 0;
}

static int get_string(struct pctx *p, tv_t *tbl, const char *tpath, const char *key, unsigned flags,
		      char **ret, tv_t **ret_v)
{
	tv_t *v = toml_table_get(tbl, key);
	char path[KEYPATH_MAX];
	int r;

	if (ret_v)
		*ret_v = v;
	if (!v)
		return flags & REQ ? fail_missing(p, tbl, tpath, key, false) : 0;
	path_join(path, tpath, key);
	r = check_string(p, v, path, flags);
	if (r < 0)
		return r;
	zfree(*ret);
	*ret = xstrdup(p, v->str.ptr);
	return *ret ? 1 : -ENOMEM;
}

static int get_int(struct pctx *p, tv_t *tbl, const char *tpath, const char *key, unsigned flags,
		   int64_t min, int64_t max, const char *expected, int64_t *ret)
{
	tv_t *v = toml_table_get(tbl, key);
	char path[KEYPATH_MAX];

	if (!v)
		return flags & REQ ? fail_missing(p, tbl, tpath, key, false) : 0;
	path_join(path, tpath, key);
	if (v->type != TOML_INTEGER || v->integer < min || v->integer > max)
		return fail_type(p, v, path, expected);
	*ret = v->integer;
	return 1;
}

static int get_u32(struct pctx *p, tv_t *tbl, const char *tpath, const char *key, unsigned flags,
		   uint32_t min, const char *expected, uint32_t *ret)
{
	int64_t i = 0;
	int r = get_int(p, tbl, tpath, key, flags, min, UINT32_MAX, expected, &i);

	if (r > 0)
		*ret = (uint32_t)i;
	return r;
}

static int get_bool(struct pctx *p, tv_t *tbl, const char *tpath, const char *key, unsigned flags,
		    bool *ret)
{
	tv_t *v = toml_table_get(tbl, key);
	char path[KEYPATH_MAX];

	if (!v)
		return flags & REQ ? fail_missing(p, tbl, tpath, key, false) : 0;
	path_join(path, tpath, key);
	if (v->type != TOML_BOOL)
		return fail_type(p, v, path, "a boolean (true or false)");
	*ret = v->boolean;
	return 1;
}

static int fail_enum(struct pctx *p, tv_t *v, const char *path, const char *const *names)
{
	char expected[512] = "one of ";
	size_t off = strlen(expected);

	for (size_t i = 0; names[i]; i++) {
		int w = snprintf(expected + off, sizeof(expected) - off, "%s\"%s\"", i ? ", " : "",
				 names[i]);

		if (w < 0 || (size_t)w >= sizeof(expected) - off)
			break;
		off += (size_t)w;
	}
	return fail_type(p, v, path, expected);
}

/* names is NULL-terminated; *ret is the index. */
static int get_enum(struct pctx *p, tv_t *tbl, const char *tpath, const char *key, unsigned flags,
		    const char *const *names, int *ret, tv_t **ret_v)
{
	tv_t *v = toml_table_get(tbl, key);
	char path[KEYPATH_MAX];

	if (ret_v)
		*ret_v = v;
	if (!v)
		return flags & REQ ? fail_missing(p, tbl, tpath, key, false) : 0;
	path_join(path, tpath, key);
	if (v->type == TOML_STRING)
		for (int i = 0; names[i]; i++)
			if (v->str.len == strlen(names[i]) && streq(v->str.ptr, names[i])) {
				*ret = i;
				return 1;
			}
	return fail_enum(p, v, path, names);
}

/* ---- URIs ----------------------------------------------------------- */

enum uri_kind {
	URI_PLAIN = -1, /* not a URI: a plain string */
	URI_KEY,        /* file:// or pkcs11: */
	URI_FILE,       /* file:// */
	URI_HTTP,       /* http(s):// with a host */
	URI_ENDPOINT,   /* unix://, fd://, http(s)://, tcp:// (daemon sockets, Docker) */
};

static bool file_uri_ok(const char *s)
{
	const char *rest;

	if (!strneq(s, "file://", 7))
		return false;
	rest = s + 7;
	if (strneq(rest, "localhost/", 10))
		rest += 9;
	return rest[0] == '/' && rest[1] != '\0';
}

static bool http_url_ok(const char *s, bool *ret_insecure)
{
	const char *host;
	size_t hl;

	if (strneq(s, "https://", 8)) {
		host = s + 8;
		*ret_insecure = false;
	} else if (strneq(s, "http://", 7)) {
		host = s + 7;
		*ret_insecure = true;
	} else {
		return false;
	}
	if (strchr(host, '@'))
		host = strchr(host, '@') + 1;
	hl = strcspn(host, "/?#:");
	if (hl == 0)
		return false;
	for (size_t i = 0; i < hl; i++)
		if (host[i] == ' ' || host[i] == '\t')
			return false;
	return true;
}

static void note_pkcs11(struct pctx *p, const char *path, struct toml_pos pos)
{
	struct pkcs11_use *u = reallocarray(p->pkcs11, p->n_pkcs11 + 1, sizeof(*u));

	if (!u) {
		p->oom = true;
		return;
	}
	p->pkcs11 = u;
	snprintf(u[p->n_pkcs11].path, sizeof(u->path), "%s", path);
	u[p->n_pkcs11].pos = pos;
	p->n_pkcs11++;
}

static int check_uri(struct pctx *p, tv_t *v, const char *path, enum uri_kind kind)
{
	const char *s;
	bool insecure = false;
	int r = check_string(p, v, path, 0);

	if (r < 0)
		return r;
	s = v->str.ptr;
	switch (kind) {
	case URI_PLAIN:
		return 0;
	case URI_KEY:
		if (strneq(s, "pkcs11:", 7)) {
			note_pkcs11(p, path, v->pos);
			return 0;
		}
		if (file_uri_ok(s))
			return 0;
		return fail_type(p, v, path,
				 "a file:// URI with an absolute path (file:///path/key.pem) or a "
				 "pkcs11: URI");
	case URI_FILE:
		if (file_uri_ok(s))
			return 0;
		return fail_type(p, v, path, "a file:// URI with an absolute path (file:///path)");
	case URI_HTTP:
		if (!http_url_ok(s, &insecure))
			return fail_type(p, v, path, "an https:// URL with a host name");
		if (insecure)
			warn(p, v->pos, path,
			     "http:// sends credentials and certificates unencrypted and lets "
			     "anyone "
			     "on the path tamper with them; use https://");
		return 0;
	case URI_ENDPOINT: {
		static const char *const schemes[] = {"unix://",  "fd://",  "http://",
						      "https://", "tcp://", NULL};

		for (size_t i = 0; schemes[i]; i++)
			if (strneq(s, schemes[i], strlen(schemes[i])) && s[strlen(schemes[i])])
				return 0;
		return fail_type(p, v, path,
				 "a unix://, fd://, http:// or tcp:// URI (e.g. "
				 "\"unix:///var/run/docker.sock\")");
	}
	}
	return -EINVAL;
}

static int get_uri(struct pctx *p, tv_t *tbl, const char *tpath, const char *key, unsigned flags,
		   enum uri_kind kind, char **ret)
{
	tv_t *v = toml_table_get(tbl, key);
	char path[KEYPATH_MAX];
	int r;

	if (!v)
		return flags & REQ ? fail_missing(p, tbl, tpath, key, false) : 0;
	path_join(path, tpath, key);
	r = check_uri(p, v, path, kind);
	if (r < 0)
		return r;
	zfree(*ret);
	*ret = xstrdup(p, v->str.ptr);
	return *ret ? 1 : -ENOMEM;
}

/* ---- maps ------------------------------------------------------------ */

static int map_add(struct pctx *p, struct config_map *m, const char *k, const char *v)
{
	struct config_map_entry *items = reallocarray(m->items, m->n + 1, sizeof(*items));
	char *kd, *vd;

	if (!items)
		goto oom;
	m->items = items;
	kd = strdup(k);
	vd = strdup(v);
	if (!kd || !vd) {
		free(kd);
		zfree(vd);
		goto oom;
	}
	items[m->n].key = kd;
	items[m->n].value = vd;
	m->n++;
	return 0;
oom:
	p->oom = true;
	return -ENOMEM;
}

const char *config_map_get(const struct config_map *m, const char *key)
{
	for (size_t i = 0; i < m->n; i++)
		if (streq(m->items[i].key, key))
			return m->items[i].value;
	return NULL;
}

static void map_free(struct config_map *m)
{
	for (size_t i = 0; i < m->n; i++) {
		free(m->items[i].key);
		zfree(m->items[i].value);
	}
	free(m->items);
	m->items = NULL;
	m->n = 0;
}

/* A table of strings (each checked as kind, or plain strings when kind is
 * negative). */
static int parse_string_map(struct pctx *p, tv_t *tbl, const char *tpath, enum uri_kind kind,
			    struct config_map *out)
{
	for (size_t i = 0; i < tbl->table.n; i++) {
		const struct toml_kv *kv = &tbl->table.items[i];
		char path[KEYPATH_MAX];
		int r;

		path_join(path, tpath, kv->key);
		if (strlen(kv->key) != kv->keylen)
			return fail(p, kv->key_pos, path, "expected a key without NUL characters");
		if (kind == URI_PLAIN)
			r = check_string(p, kv->value, path, 0);
		else
			r = check_uri(p, kv->value, path, kind);
		if (r < 0)
			return r;
		r = map_add(p, out, kv->key, kv->value->str.ptr);
		if (r < 0)
			return r;
	}
	return 0;
}

/* ---- policies, auto_renew --------------------------------------------- */

int config_policy_parse(const char *s, struct config_policy *ret)
{
	size_t digits = strspn(s, "0123456789");
	const char *unit = s + digits;
	uint64_t n = 0;

	if (digits == 0 || digits > 15)
		return -EINVAL;
	for (size_t i = 0; i < digits; i++)
		n = n * 10 + (uint64_t)(s[i] - '0');
	if (streq(unit, "%")) {
		if (n == 0 || n >= 100)
			return -EINVAL;
		ret->unit = CONFIG_POLICY_PERCENT;
	} else if (streq(unit, "min")) {
		if (n == 0)
			return -EINVAL;
		ret->unit = CONFIG_POLICY_MINUTES;
	} else if (streq(unit, "day")) {
		if (n == 0)
			return -EINVAL;
		ret->unit = CONFIG_POLICY_DAYS;
	} else {
		return -EINVAL;
	}
	ret->value = n;
	return 0;
}

int config_policy_format(const struct config_policy *pol, struct buf *out)
{
	static const char *const units[] = {"%", "min", "day"};

	return buf_printf(out, "%llu%s", (unsigned long long)pol->value, units[pol->unit]);
}

static int get_policy(struct pctx *p, tv_t *tbl, const char *tpath, const char *key,
		      struct config_policy *ret)
{
	tv_t *v = toml_table_get(tbl, key);
	char path[KEYPATH_MAX];
	static const char expected[] =
	    "a percentage like \"80%\" (0-100 exclusive), a duration like \"90min\" or "
	    "\"7day\"";

	if (!v)
		return fail_missing(p, tbl, tpath, key, false);
	path_join(path, tpath, key);
	if (v->type != TOML_STRING || strlen(v->str.ptr) != v->str.len ||
	    config_policy_parse(v->str.ptr, ret) < 0)
		return fail_type(p, v, path, expected);
	return 1;
}

static const char *const auto_renew_keys[] = {"rotate_key", "threshold", "retry", NULL};

static int parse_auto_renew(struct pctx *p, tv_t *tbl, const char *path,
			    struct config_auto_renew *out)
{
	int r;

	r = get_bool(p, tbl, path, "rotate_key", REQ, &out->rotate_key);
	if (r >= 0)
		r = get_policy(p, tbl, path, "threshold", &out->threshold);
	if (r >= 0)
		r = get_policy(p, tbl, path, "retry", &out->retry);
	if (r < 0)
		return r;
	warn_unknown(p, tbl, path, auto_renew_keys);
	return 0;
}

static void auto_renew_default(struct config_auto_renew *a)
{
	a->rotate_key = true;
	a->threshold = (struct config_policy){CONFIG_POLICY_PERCENT, 80};
	a->retry = (struct config_policy){CONFIG_POLICY_PERCENT, 4};
}

/* ---- symmetric keys --------------------------------------------------- */

static int decode_key(struct pctx *p, const char *text, size_t len, tv_t *v, const char *path,
		      const char *what, uint8_t **ret, size_t *ret_len)
{
	_cleanup_buf_ struct buf out = {0};
	size_t bad = 0;
	int r;

	buf_init_secret(&out, 64 * 1024);
	if (len == 0)
		return fail(p, v->pos, path, "expected a base64-encoded key%s, got an empty string",
			    what);
	r = base64_decode(&out, text, len, B64_PAD_OPTIONAL, &bad);
	if (r == -ENOMEM) {
		p->oom = true;
		return r;
	}
	if (r < 0)
		/* Never echo the key itself. */
		return fail(p, v->pos, path,
			    "expected a base64-encoded key%s, got invalid base64 (at character "
			    "%zu)",
			    what, bad + 1);
	if (out.len == 0)
		return fail(p, v->pos, path, "expected a base64-encoded key%s, got no key bytes",
			    what);
	*ret_len = out.len;
	*ret = (uint8_t *)buf_steal(&out, NULL);
	if (!*ret) {
		p->oom = true;
		return -ENOMEM;
	}
	return 0;
}

static int parse_symkey(struct pctx *p, tv_t *tbl, const char *tpath, const char *key,
			struct config_symkey *out)
{
	static const char *const known[] = {"value", "uri", NULL};
	static const char expected[] =
	    "{ value = \"<base64 key>\" } or { uri = \"file:///path\" | \"pkcs11:...\" }";
	char path[KEYPATH_MAX], vpath[KEYPATH_MAX];
	tv_t *v = toml_table_get(tbl, key), *val, *uri;
	int r;

	if (!v)
		return fail_missing(p, tbl, tpath, key, false);
	path_join(path, tpath, key);
	if (v->type != TOML_TABLE) {
		char got[256];

		if (v->type == TOML_STRING)
			/* A bare string may well be the key itself: do not echo it. */
			return fail(p, v->pos, path, "expected %s, got a string", expected);
		describe(v, got, sizeof(got));
		return fail(p, v->pos, path, "expected %s, got %s", expected, got);
	}
	val = toml_table_get(v, "value");
	uri = toml_table_get(v, "uri");
	if (val && uri)
		return fail(p, v->pos, path, "expected either value or uri, got both");
	if (!val && !uri)
		return fail(p, v->pos, path, "expected %s, got neither value nor uri", expected);
	if (val) {
		path_join(vpath, path, "value");
		if (val->type != TOML_STRING)
			return fail_type(p, val, vpath, "a base64-encoded key string");
		r = decode_key(p, val->str.ptr, val->str.len, val, vpath, "", &out->key,
			       &out->key_len);
		if (r < 0)
			return r;
		out->is_inline = true;
	} else {
		r = get_uri(p, v, path, "uri", REQ, URI_KEY, &out->uri);
		if (r < 0)
			return r;
	}
	warn_unknown(p, v, path, known);
	return 0;
}

/* ---- EST auth and issuance options ------------------------------------- */

/* Both or neither of a pair. */
static int get_pair(struct pctx *p, tv_t *tbl, const char *tpath, const char *a, const char *b,
		    enum uri_kind ka, enum uri_kind kb, char **ret_a, char **ret_b)
{
	tv_t *va = toml_table_get(tbl, a), *vb = toml_table_get(tbl, b);
	char path[KEYPATH_MAX];
	int r;

	if (!va && !vb)
		return 0;
	if (!vb || !va) {
		tv_t *have = va ? va : vb;
		const char *missing = va ? b : a, *given = va ? a : b;

		path_join(path, tpath, missing);
		return fail(p, have->pos, path, "missing required key (required together with %s)",
			    given);
	}
	if (ka == URI_PLAIN) {
		r = get_string(p, tbl, tpath, a, NONEMPTY, ret_a, NULL);
		if (r >= 0)
			r = get_string(p, tbl, tpath, b, 0, ret_b, NULL);
	} else {
		r = get_uri(p, tbl, tpath, a, REQ, ka, ret_a);
		if (r >= 0)
			r = get_uri(p, tbl, tpath, b, REQ, kb, ret_b);
	}
	return r < 0 ? r : 1;
}

static const char *const est_auth_keys[] = {"username",
					    "password",
					    "identity_cert",
					    "identity_pk",
					    "bootstrap_identity_cert",
					    "bootstrap_identity_pk",
					    NULL};

static void est_auth_free(struct config_est_auth *a)
{
	zfree(a->username);
	zfree(a->password);
	zfree(a->identity_cert);
	zfree(a->identity_pk);
	zfree(a->bootstrap_identity_cert);
	zfree(a->bootstrap_identity_pk);
	memset(a, 0, sizeof(*a));
}

/* Returns 1 when any auth was given. */
static int parse_est_auth(struct pctx *p, tv_t *tbl, const char *tpath, struct config_est_auth *out)
{
	int basic, id, boot;
	char path[KEYPATH_MAX];

	basic = get_pair(p, tbl, tpath, "username", "password", URI_PLAIN, URI_PLAIN,
			 &out->username, &out->password);
	if (basic < 0)
		return basic;
	id = get_pair(p, tbl, tpath, "identity_cert", "identity_pk", URI_FILE, URI_KEY,
		      &out->identity_cert, &out->identity_pk);
	if (id < 0)
		return id;
	boot = get_pair(p, tbl, tpath, "bootstrap_identity_cert", "bootstrap_identity_pk", URI_FILE,
			URI_KEY, &out->bootstrap_identity_cert, &out->bootstrap_identity_pk);
	if (boot < 0)
		return boot;
	if (id > 0 && boot > 0) {
		/* aziot's untagged enum tries the bootstrap pair first. */
		path_join(path, tpath, "identity_cert");
		warn(
		    p, toml_table_find(tbl, "identity_cert")->key_pos, path,
		    "ignored, together with identity_pk: the bootstrap identity is used to request "
		    "the EST identity certificate");
		zfree(out->identity_cert);
		zfree(out->identity_pk);
		out->identity_cert = out->identity_pk = NULL;
	}
	return basic > 0 || id > 0 || boot > 0;
}

static const char *const issuance_method_names[] = {"est", "local_ca", "self_signed", NULL};

static const char *const issuance_keys[] = {"method",
					    "common_name",
					    "subject",
					    "expiry_days",
					    "url",
					    "username",
					    "password",
					    "identity_cert",
					    "identity_pk",
					    "bootstrap_identity_cert",
					    "bootstrap_identity_pk",
					    "auto_renew",
					    NULL};

static int parse_subject(struct pctx *p, tv_t *v, const char *path, struct config_map *out)
{
	if (v->type != TOML_TABLE)
		return fail_type(p, v, path,
				 "a table of DN attributes like { CN = \"my-device\" }");
	if (v->table.n == 0)
		return fail(p, v->pos, path,
			    "expected at least one DN attribute like { CN = \"my-device\" }, got "
			    "an empty table");
	return parse_string_map(p, v, path, URI_PLAIN, out);
}

/* common_name or subject: the one written first wins (serde flatten). */
static int parse_cn_or_subject(struct pctx *p, tv_t *tbl, const char *tpath, char **ret_cn,
			       struct config_map *ret_subject)
{
	const struct toml_kv *cn = toml_table_find(tbl, "common_name");
	const struct toml_kv *subj = toml_table_find(tbl, "subject");
	char path[KEYPATH_MAX];
	bool use_cn;

	if (!cn && !subj)
		return 0;
	use_cn =
	    cn && (!subj || cn->key_pos.line < subj->key_pos.line ||
		   (cn->key_pos.line == subj->key_pos.line && cn->key_pos.col < subj->key_pos.col));
	if (cn && subj) {
		const struct toml_kv *loser = use_cn ? subj : cn;

		path_join(path, tpath, loser->key);
		warn(p, loser->key_pos, path,
		     "ignored: %s is given first, and only one of "
		     "common_name and subject is used",
		     use_cn ? "common_name" : "subject");
	}
	if (use_cn)
		return get_string(p, tbl, tpath, "common_name", NONEMPTY, ret_cn, NULL);
	path_join(path, tpath, "subject");
	return parse_subject(p, subj->value, path, ret_subject);
}

static void issuance_free(struct config_issuance *i)
{
	zfree(i->common_name);
	map_free(&i->subject);
	zfree(i->url);
	est_auth_free(&i->auth);
}

static void note_issuance(struct pctx *p, const struct config_issuance *iss, const char *id,
			  const char *path, struct toml_pos pos)
{
	struct pissuance *n = reallocarray(p->issuances, p->n_issuances + 1, sizeof(*n));

	if (!n) {
		p->oom = true;
		return;
	}
	p->issuances = n;
	n += p->n_issuances++;
	n->iss = iss;
	snprintf(n->id, sizeof(n->id), "%s", id);
	snprintf(n->path, sizeof(n->path), "%s", path);
	n->pos = pos;
}

/* Cert issuance options (spec §3.8). extra lists keys the caller handles. */
static int parse_issuance(struct pctx *p, tv_t *tbl, const char *tpath, const char *cert_id,
			  const char *const *extra, struct config_issuance *out)
{
	int method = 0, r;
	int64_t days = 0;
	char path[KEYPATH_MAX];
	tv_t *ar;

	r = get_enum(p, tbl, tpath, "method", REQ, issuance_method_names, &method, NULL);
	if (r < 0)
		return r;
	out->method = (enum config_issuance_method)method;
	r = parse_cn_or_subject(p, tbl, tpath, &out->common_name, &out->subject);
	if (r < 0)
		return r;
	r = get_int(p, tbl, tpath, "expiry_days", 0, 1, UINT32_MAX,
		    "a number of days greater than 0", &days);
	if (r < 0)
		return r;
	if (r > 0)
		out->expiry_days = (uint32_t)days;
	if (out->method == CONFIG_ISSUANCE_EST) {
		r = get_uri(p, tbl, tpath, "url", 0, URI_HTTP, &out->url);
		if (r < 0)
			return r;
		r = parse_est_auth(p, tbl, tpath, &out->auth);
		if (r < 0)
			return r;
	} else {
		for (size_t i = 0; i < tbl->table.n; i++) {
			const struct toml_kv *kv = &tbl->table.items[i];

			if (!streq(kv->key, "url") && !in_list(kv->key, est_auth_keys))
				continue;
			path_join(path, tpath, kv->key);
			warn(p, kv->key_pos, path, "ignored: only used with method = \"est\"");
		}
	}
	r = get_table(p, tbl, tpath, "auto_renew", 0, &ar);
	if (r < 0)
		return r;
	if (r > 0) {
		path_join(path, tpath, "auto_renew");
		r = parse_auto_renew(p, ar, path, &out->auto_renew);
		if (r < 0)
			return r;
		out->has_auto_renew = true;
	}
	for (size_t i = 0; i < tbl->table.n; i++) {
		const struct toml_kv *kv = &tbl->table.items[i];
		const char *guess = NULL;

		if (in_list(kv->key, issuance_keys) || in_list(kv->key, extra))
			continue;
		for (const char *const *k = issuance_keys; *k; k++)
			if (close_to(kv->key, *k))
				guess = *k;
		path_join(path, tpath, kv->key);
		if (guess)
			warn(p, kv->key_pos, path, "unknown key, ignored (did you mean \"%s\"?)",
			     guess);
		else
			warn(p, kv->key_pos, path, "unknown key, ignored");
	}
	note_issuance(p, out, cert_id, tpath, tbl->pos);
	return 0;
}

/* identity_cert (file URI or issuance table) + identity_pk. */
static int parse_x509(struct pctx *p, tv_t *tbl, const char *tpath, struct config_x509 *out)
{
	tv_t *cert = toml_table_get(tbl, "identity_cert");
	char path[KEYPATH_MAX];
	int r;

	if (!cert)
		return fail_missing(p, tbl, tpath, "identity_cert", false);
	path_join(path, tpath, "identity_cert");
	if (cert->type == TOML_STRING) {
		r = get_uri(p, tbl, tpath, "identity_cert", REQ, URI_FILE, &out->identity_cert);
		if (r >= 0)
			r = get_uri(p, tbl, tpath, "identity_pk", REQ, URI_KEY, &out->identity_pk);
		return r < 0 ? r : 0;
	}
	if (cert->type != TOML_TABLE)
		return fail_type(p, cert, path,
				 "a file:// URI or an issuance table like { method = \"est\" }");
	out->issued = true;
	r = parse_issuance(p, cert, path, CONFIG_ID_DEVICE, NULL, &out->issuance);
	if (r < 0)
		return r;
	if (toml_table_get(tbl, "identity_pk")) {
		path_join(path, tpath, "identity_pk");
		warn(p, toml_table_find(tbl, "identity_pk")->key_pos, path,
		     "ignored: the key of an issued identity certificate is generated on the "
		     "device");
	}
	return 0;
}

static void x509_free(struct config_x509 *x)
{
	zfree(x->identity_cert);
	zfree(x->identity_pk);
	issuance_free(&x->issuance);
}

static void symkey_free(struct config_symkey *k)
{
	if (k->key) {
		explicit_bzero(k->key, k->key_len);
		free(k->key);
	}
	zfree(k->uri);
	memset(k, 0, sizeof(*k));
}

/* ---- [provisioning] ----------------------------------------------------- */

static const char *const source_names[] = {"manual", "dps", "none", NULL};
static const char *const manual_only_keys[] = {"connection_string", "iothub_hostname", "device_id",
					       "authentication", NULL};
static const char *const dps_only_keys[] = {"global_endpoint", "id_scope", "attestation", "payload",
					    NULL};
/* Top-level keys users put under a table header by mistake (aziot#638). */
static const char *const top_level_scalars[] = {"auto_reprovisioning_mode",
						"hostname",
						"local_gateway_hostname",
						"parent_hostname",
						"cloud_timeout_sec",
						"cloud_retries",
						"prefer_module_identity_cache",
						"trust_bundle_cert",
						"allow_elevated_docker_permissions",
						"imported_master_encryption_key",
						"additional_info",
						NULL};

static int reject_top_level_keys(struct pctx *p, tv_t *tbl, const char *tpath)
{
	for (size_t i = 0; i < tbl->table.n; i++) {
		const struct toml_kv *kv = &tbl->table.items[i];
		char path[KEYPATH_MAX];

		if (!in_list(kv->key, top_level_scalars))
			continue;
		path_join(path, tpath, kv->key);
		return fail(p, kv->key_pos, path,
			    "%s is a top-level key, not part of [%s]; move it above the first "
			    "[table] header",
			    kv->key, tpath);
	}
	return 0;
}

static int reject_keys_of(struct pctx *p, tv_t *tbl, const char *tpath, const char *const *keys,
			  const char *belongs, const char *source)
{
	for (size_t i = 0; i < tbl->table.n; i++) {
		const struct toml_kv *kv = &tbl->table.items[i];
		char path[KEYPATH_MAX];

		if (!in_list(kv->key, keys))
			continue;
		path_join(path, tpath, kv->key);
		return fail(
		    p, kv->key_pos, path,
		    "only valid with source = \"%s\", got source = \"%s\" (two provisioning "
		    "blocks mixed?)",
		    belongs, source);
	}
	return 0;
}

static const char *const cs_format =
    "\"HostName=<hub>;DeviceId=<id>;SharedAccessKey=<base64 key>\"";

static int parse_connection_string(struct pctx *p, tv_t *v, const char *path,
				   struct config_manual *m)
{
	const char *s = v->str.ptr, *end = s + v->str.len;
	const char *key_text = NULL;
	size_t key_len = 0;
	bool have_key = false;

	while (s < end) {
		const char *semi = memchr(s, ';', (size_t)(end - s));
		const char *seg_end = semi ? semi : end;
		const char *eq = memchr(s, '=', (size_t)(seg_end - s));
		size_t klen, vlen;
		char **dst = NULL;

		if (seg_end == s) {
			s = seg_end + 1;
			continue;
		}
		if (!eq)
			return fail(p, v->pos, path,
				    "expected %s, got a part without \"=\" (at character %zu)",
				    cs_format, (size_t)(s - v->str.ptr) + 1);
		klen = (size_t)(eq - s);
		vlen = (size_t)(seg_end - eq - 1);
		if (klen == 8 && strneq(s, "HostName", 8))
			dst = &m->iothub_hostname;
		else if (klen == 8 && strneq(s, "DeviceId", 8))
			dst = &m->device_id;
		else if (klen == 15 && strneq(s, "SharedAccessKey", 15)) {
			key_text = eq + 1;
			key_len = vlen;
			have_key = true;
		}
		if (dst) {
			zfree(*dst);
			*dst = strndup(eq + 1, vlen);
			if (!*dst) {
				p->oom = true;
				return -ENOMEM;
			}
		}
		s = seg_end + (semi ? 1 : 0);
	}
	if (!m->iothub_hostname)
		return fail(p, v->pos, path, "expected %s, got no HostName", cs_format);
	if (!*m->iothub_hostname)
		return fail(p, v->pos, path, "expected %s, got an empty HostName", cs_format);
	if (!m->device_id)
		return fail(p, v->pos, path, "expected %s, got no DeviceId", cs_format);
	if (!*m->device_id)
		return fail(p, v->pos, path, "expected %s, got an empty DeviceId", cs_format);
	if (!have_key)
		return fail(p, v->pos, path, "expected %s, got no SharedAccessKey", cs_format);
	return decode_key(p, key_text, key_len, v, path, " in SharedAccessKey",
			  &m->device_id_pk.key, &m->device_id_pk.key_len);
}

static int parse_manual(struct pctx *p, tv_t *prov, struct config_manual *m)
{
	static const char *const cs_keys[] = {"source", "connection_string", NULL};
	static const char *const explicit_keys[] = {"source", "iothub_hostname", "device_id",
						    "authentication", NULL};
	static const char *const methods[] = {"sas", "x509", NULL};
	static const char *const sas_keys[] = {"method", "device_id_pk", NULL};
	static const char *const x509_keys[] = {"method", "identity_cert", "identity_pk", NULL};
	tv_t *cs = toml_table_get(prov, "connection_string"), *auth;
	char path[KEYPATH_MAX];
	int r, method = 0;

	r = reject_keys_of(p, prov, "provisioning", dps_only_keys, "dps", "manual");
	if (r < 0)
		return r;
	if (cs) {
		for (size_t i = 1; explicit_keys[i]; i++) {
			const struct toml_kv *kv = toml_table_find(prov, explicit_keys[i]);

			if (!kv)
				continue;
			path_join(path, "provisioning", kv->key);
			return fail(p, kv->key_pos, path,
				    "not allowed together with connection_string; use either "
				    "connection_string or iothub_hostname, device_id and "
				    "[provisioning.authentication]");
		}
		r = check_string(p, cs, "provisioning.connection_string", NONEMPTY);
		if (r < 0)
			return r;
		m->from_connection_string = true;
		m->method = CONFIG_MANUAL_SAS;
		m->device_id_pk.is_inline = true;
		m->connection_string = xstrdup(p, cs->str.ptr);
		if (!m->connection_string)
			return -ENOMEM;
		r = parse_connection_string(p, cs, "provisioning.connection_string", m);
		if (r < 0)
			return r;
		warn_unknown(p, prov, "provisioning", cs_keys);
		return 0;
	}
	r = get_string(p, prov, "provisioning", "iothub_hostname", REQ | NONEMPTY,
		       &m->iothub_hostname, NULL);
	if (r >= 0)
		r = get_string(p, prov, "provisioning", "device_id", REQ | NONEMPTY, &m->device_id,
			       NULL);
	if (r >= 0)
		r = get_table(p, prov, "provisioning", "authentication", REQ, &auth);
	if (r < 0)
		return r;
	warn_unknown(p, prov, "provisioning", explicit_keys);
	r = reject_top_level_keys(p, auth, "provisioning.authentication");
	if (r < 0)
		return r;
	r = get_enum(p, auth, "provisioning.authentication", "method", REQ, methods, &method, NULL);
	if (r < 0)
		return r;
	m->method = (enum config_manual_method)method;
	if (m->method == CONFIG_MANUAL_SAS) {
		r = parse_symkey(p, auth, "provisioning.authentication", "device_id_pk",
				 &m->device_id_pk);
		if (r < 0)
			return r;
		warn_unknown(p, auth, "provisioning.authentication", sas_keys);
		return 0;
	}
	r = parse_x509(p, auth, "provisioning.authentication", &m->x509);
	if (r < 0)
		return r;
	if (m->x509.issued && m->x509.issuance.has_auto_renew)
		warn(p, toml_table_get(toml_table_get(auth, "identity_cert"), "auto_renew")->pos,
		     "provisioning.authentication.identity_cert.auto_renew",
		     "ignored: the device identity certificate is renewed only with DPS "
		     "provisioning (IoT Hub must learn the new certificate)");
	warn_unknown(p, auth, "provisioning.authentication", x509_keys);
	return 0;
}

static int parse_registration_subject(struct pctx *p, tv_t *v, const char *path,
				      struct config_dps *d)
{
	const char *cn;
	int r = parse_subject(p, v, path, &d->registration_subject);

	if (r < 0)
		return r;
	cn = config_map_get(&d->registration_subject, "CN");
	if (!cn || !*cn)
		return fail(p, v->pos, path,
			    "expected a subject table with CN = \"<registration id>\", got no CN");
	d->registration_id = xstrdup(p, cn);
	return d->registration_id ? 0 : -ENOMEM;
}

static int parse_dps(struct pctx *p, tv_t *prov, struct config_dps *d)
{
	static const char *const dps_keys[] = {"source",      "global_endpoint", "id_scope",
					       "attestation", "payload",         NULL};
	static const char *const methods[] = {"symmetric_key", "x509", "tpm", NULL};
	static const char *const sk_keys[] = {"method", "registration_id", "symmetric_key", NULL};
	static const char *const x509_keys[] = {"method", "registration_id", "identity_cert",
						"identity_pk", NULL};
	static const char *const tpm_keys[] = {"method", "registration_id", NULL};
	static const char *const payload_keys[] = {"uri", NULL};
	const char *ap = "provisioning.attestation";
	tv_t *att, *payload, *rid;
	int r, method = 0;

	r = reject_keys_of(p, prov, "provisioning", manual_only_keys, "manual", "dps");
	if (r < 0)
		return r;
	r = get_uri(p, prov, "provisioning", "global_endpoint", REQ, URI_HTTP, &d->global_endpoint);
	if (r >= 0)
		r = get_string(p, prov, "provisioning", "id_scope", REQ | NONEMPTY, &d->id_scope,
			       NULL);
	if (r >= 0)
		r = get_table(p, prov, "provisioning", "payload", 0, &payload);
	if (r < 0)
		return r;
	if (payload) {
		r = get_uri(p, payload, "provisioning.payload", "uri", REQ, URI_FILE,
			    &d->payload_uri);
		if (r < 0)
			return r;
		warn_unknown(p, payload, "provisioning.payload", payload_keys);
	}
	r = get_table(p, prov, "provisioning", "attestation", REQ, &att);
	if (r < 0)
		return r;
	warn_unknown(p, prov, "provisioning", dps_keys);
	r = reject_top_level_keys(p, att, ap);
	if (r < 0)
		return r;
	r = get_enum(p, att, ap, "method", REQ, methods, &method, NULL);
	if (r < 0)
		return r;
	d->method = (enum config_attestation)method;
	switch (d->method) {
	case CONFIG_ATTEST_SYMMETRIC_KEY:
		r = get_string(p, att, ap, "registration_id", REQ | NONEMPTY, &d->registration_id,
			       NULL);
		if (r >= 0)
			r = parse_symkey(p, att, ap, "symmetric_key", &d->symmetric_key);
		if (r < 0)
			return r;
		warn_unknown(p, att, ap, sk_keys);
		break;
	case CONFIG_ATTEST_X509:
		rid = toml_table_get(att, "registration_id");
		if (rid && rid->type == TOML_TABLE)
			r = parse_registration_subject(
			    p, rid, "provisioning.attestation.registration_id", d);
		else
			r = get_string(p, att, ap, "registration_id", NONEMPTY, &d->registration_id,
				       NULL);
		if (r >= 0)
			r = parse_x509(p, att, ap, &d->x509);
		if (r < 0)
			return r;
		if (d->x509.issued && !d->registration_id)
			warn(p, att->pos, "provisioning.attestation.registration_id",
			     "not set: the identity certificate is issued on the device, and "
			     "without "
			     "a registration id it cannot be requested the first time");
		warn_unknown(p, att, ap, x509_keys);
		break;
	case CONFIG_ATTEST_TPM:
		r = get_string(p, att, ap, "registration_id", REQ | NONEMPTY, &d->registration_id,
			       NULL);
		if (r < 0)
			return r;
		warn_unknown(p, att, ap, tpm_keys);
		break;
	}
	return 0;
}

static int parse_provisioning(struct pctx *p, tv_t *root)
{
	struct config_provisioning *pr = &p->cfg->provisioning;
	tv_t *prov;
	int r, source = 0;

	r = get_table(p, root, "", "provisioning", REQ, &prov);
	if (r < 0)
		return r;
	r = reject_top_level_keys(p, prov, "provisioning");
	if (r < 0)
		return r;
	r = get_enum(p, prov, "provisioning", "source", REQ, source_names, &source, NULL);
	if (r < 0)
		return r;
	pr->source = (enum config_source)source;
	switch (pr->source) {
	case CONFIG_SOURCE_MANUAL:
		return parse_manual(p, prov, &pr->manual);
	case CONFIG_SOURCE_DPS:
		return parse_dps(p, prov, &pr->dps);
	case CONFIG_SOURCE_NONE:
		r = reject_keys_of(p, prov, "provisioning", manual_only_keys, "manual", "none");
		if (r >= 0)
			r = reject_keys_of(p, prov, "provisioning", dps_only_keys, "dps", "none");
		if (r < 0)
			return r;
		warn_unknown(p, prov, "provisioning", (const char *const[]){"source", NULL});
		return 0;
	}
	return -EINVAL;
}

/* ---- [cert_issuance] --------------------------------------------------- */

static const char *const reserved_cert_ids[] = {CONFIG_ID_DEVICE,       CONFIG_ID_DEVICE_TEMP,
						CONFIG_ID_LOCAL_CA,     CONFIG_ID_EDGE_CA,
						CONFIG_ID_EDGE_CA_TEMP, NULL};

static int parse_est(struct pctx *p, tv_t *est)
{
	static const char *const known[] = {"trusted_certs", "auth", "identity_auto_renew", "urls",
					    NULL};
	const char *ep = "cert_issuance.est";
	struct config_est *e = &p->cfg->est;
	tv_t *tc = toml_table_get(est, "trusted_certs"), *auth, *ar, *urls;
	int r;

	e->present = true;
	if (tc) {
		if (tc->type != TOML_ARRAY)
			return fail_type(p, tc, "cert_issuance.est.trusted_certs",
					 "an array of file:// URIs");
		e->trusted_certs = calloc(tc->array.n ? tc->array.n : 1, sizeof(char *));
		if (!e->trusted_certs) {
			p->oom = true;
			return -ENOMEM;
		}
		for (size_t i = 0; i < tc->array.n; i++) {
			char path[KEYPATH_MAX];

			snprintf(path, sizeof(path), "cert_issuance.est.trusted_certs[%zu]", i);
			r = check_uri(p, tc->array.items[i], path, URI_FILE);
			if (r < 0)
				return r;
			e->trusted_certs[i] = xstrdup(p, tc->array.items[i]->str.ptr);
			if (!e->trusted_certs[i])
				return -ENOMEM;
			e->n_trusted_certs = i + 1;
		}
	}
	r = get_table(p, est, ep, "auth", 0, &auth);
	if (r < 0)
		return r;
	if (auth) {
		r = parse_est_auth(p, auth, "cert_issuance.est.auth", &e->auth);
		if (r < 0)
			return r;
		if (r == 0)
			return fail(p, auth->pos, "cert_issuance.est.auth",
				    "empty authentication parameters: expected username and "
				    "password, identity_cert and identity_pk, or "
				    "bootstrap_identity_cert and bootstrap_identity_pk");
		e->has_auth = true;
		warn_unknown(p, auth, "cert_issuance.est.auth", est_auth_keys);
	}
	auto_renew_default(&e->identity_auto_renew);
	r = get_table(p, est, ep, "identity_auto_renew", 0, &ar);
	if (r < 0)
		return r;
	if (ar) {
		r = parse_auto_renew(p, ar, "cert_issuance.est.identity_auto_renew",
				     &e->identity_auto_renew);
		if (r < 0)
			return r;
		e->identity_auto_renew_set = true;
	}
	r = get_table(p, est, ep, "urls", 0, &urls);
	if (r < 0)
		return r;
	if (urls) {
		r = parse_string_map(p, urls, "cert_issuance.est.urls", URI_HTTP, &e->urls);
		if (r < 0)
			return r;
	}
	warn_unknown(p, est, ep, known);
	return 0;
}

static int parse_local_ca(struct pctx *p, tv_t *lc)
{
	static const char *const known[] = {"cert", "pk", NULL};
	struct config_local_ca *l = &p->cfg->local_ca;
	const char *lp = "cert_issuance.local_ca";
	tv_t *cert = toml_table_get(lc, "cert");
	int r;

	l->present = true;
	if (!cert)
		return fail_missing(p, lc, lp, "cert", false);
	if (cert->type == TOML_TABLE) {
		l->issued = true;
		r = parse_issuance(p, cert, "cert_issuance.local_ca.cert", CONFIG_ID_LOCAL_CA, NULL,
				   &l->issuance);
		if (r < 0)
			return r;
		if (toml_table_get(lc, "pk"))
			warn(p, toml_table_find(lc, "pk")->key_pos, "cert_issuance.local_ca.pk",
			     "ignored: the key of an issued local CA certificate is generated on "
			     "the device");
	} else {
		r = get_uri(p, lc, lp, "cert", REQ, URI_FILE, &l->cert);
		if (r >= 0)
			r = get_uri(p, lc, lp, "pk", REQ, URI_KEY, &l->pk);
		if (r < 0)
			return r;
	}
	warn_unknown(p, lc, lp, known);
	return 0;
}

static int parse_cert_issuance(struct pctx *p, tv_t *root)
{
	struct edgeid_config *c = p->cfg;
	tv_t *ci, *v;
	int r;

	r = get_table(p, root, "", "cert_issuance", 0, &ci);
	if (r <= 0)
		return r;
	r = get_table(p, ci, "cert_issuance", "est", 0, &v);
	if (r > 0)
		r = parse_est(p, v);
	if (r < 0)
		return r;
	r = get_table(p, ci, "cert_issuance", "local_ca", 0, &v);
	if (r > 0)
		r = parse_local_ca(p, v);
	if (r < 0)
		return r;
	c->cert_issuance = calloc(ci->table.n ? ci->table.n : 1, sizeof(*c->cert_issuance));
	if (!c->cert_issuance) {
		p->oom = true;
		return -ENOMEM;
	}
	for (size_t i = 0; i < ci->table.n; i++) {
		const struct toml_kv *kv = &ci->table.items[i];
		struct config_cert_entry *ce = &c->cert_issuance[c->n_cert_issuance];
		char path[KEYPATH_MAX];

		if (streq(kv->key, "est") || streq(kv->key, "local_ca"))
			continue;
		path_join(path, "cert_issuance", kv->key);
		if (kv->value->type != TOML_TABLE)
			return fail_type(p, kv->value, path,
					 "a table of issuance options like { method = \"est\" }");
		if (strlen(kv->key) != kv->keylen || kv->keylen == 0)
			return fail(p, kv->key_pos, path, "expected a certificate id");
		if (in_list(kv->key, reserved_cert_ids))
			return fail(p, kv->key_pos, path,
				    "the certificate id \"%s\" is reserved for the certificates "
				    "config apply generates (device identity, local CA, Edge CA)",
				    kv->key);
		ce->id = xstrdup(p, kv->key);
		if (!ce->id)
			return -ENOMEM;
		c->n_cert_issuance++;
		r = parse_issuance(p, kv->value, path, kv->key, NULL, &ce->issuance);
		if (r < 0)
			return r;
	}
	return 0;
}

/* ---- keys, certs, tpm, throttling, principals ---------------------------- */

static int parse_aziot_keys(struct pctx *p, tv_t *root)
{
	struct edgeid_config *c = p->cfg;
	tv_t *ak;
	int r;

	r = get_table(p, root, "", "aziot_keys", 0, &ak);
	if (r <= 0)
		return r;
	for (size_t i = 0; i < ak->table.n; i++) {
		const struct toml_kv *kv = &ak->table.items[i];
		char path[KEYPATH_MAX];

		path_join(path, "aziot_keys", kv->key);
		r = check_string(p, kv->value, path, NONEMPTY);
		if (r < 0)
			return r;
		if (streq(kv->key, "homedir_path")) {
			warn(p, kv->key_pos, path,
			     "ignored: config apply always sets it to /var/lib/aziot/keyd");
			continue;
		}
		if (streq(kv->key, "pkcs11_base_slot")) {
			if (!strneq(kv->value->str.ptr, "pkcs11:", 7))
				return fail_type(
				    p, kv->value, path,
				    "a pkcs11: URI like \"pkcs11:slot-id=0?pin-value=1234\"");
		} else if (streq(kv->key, "pkcs11_lib_path")) {
			if (kv->value->str.ptr[0] != '/')
				return fail_type(p, kv->value, path,
						 "an absolute path to a PKCS#11 module");
		} else {
			/* keyd passes every entry to its key library, which refuses
			 * names it does not know at start-up. */
			const char *guess =
			    close_to(kv->key, "pkcs11_lib_path")    ? " (did you mean "
								      "\"pkcs11_lib_path\"?)"
			    : close_to(kv->key, "pkcs11_base_slot") ? " (did you mean "
								      "\"pkcs11_base_slot\"?)"
								    : "";

			return fail(
			    p, kv->key_pos, path,
			    "expected one of \"pkcs11_lib_path\", \"pkcs11_base_slot\", got "
			    "unknown parameter \"%s\"%s",
			    kv->key, guess);
		}
		r = map_add(p, &c->aziot_keys, kv->key, kv->value->str.ptr);
		if (r < 0)
			return r;
	}
	return 0;
}

static int parse_preloaded(struct pctx *p, tv_t *root)
{
	struct edgeid_config *c = p->cfg;
	tv_t *pk, *pc;
	int r;

	r = get_table(p, root, "", "preloaded_keys", 0, &pk);
	if (r > 0)
		r = parse_string_map(p, pk, "preloaded_keys", URI_KEY, &c->preloaded_keys);
	if (r < 0)
		return r;
	r = get_table(p, root, "", "preloaded_certs", 0, &pc);
	if (r <= 0)
		return r;
	c->preloaded_certs = calloc(pc->table.n ? pc->table.n : 1, sizeof(*c->preloaded_certs));
	if (!c->preloaded_certs) {
		p->oom = true;
		return -ENOMEM;
	}
	for (size_t i = 0; i < pc->table.n; i++) {
		const struct toml_kv *kv = &pc->table.items[i];
		struct config_preloaded_cert *e = &c->preloaded_certs[i];
		char path[KEYPATH_MAX];

		path_join(path, "preloaded_certs", kv->key);
		e->id = xstrdup(p, kv->key);
		if (!e->id)
			return -ENOMEM;
		c->n_preloaded_certs = i + 1;
		if (kv->value->type == TOML_STRING) {
			r = check_uri(p, kv->value, path, URI_FILE);
			if (r < 0)
				return r;
			e->uri = xstrdup(p, kv->value->str.ptr);
			if (!e->uri)
				return -ENOMEM;
			continue;
		}
		if (kv->value->type != TOML_ARRAY)
			return fail_type(p, kv->value, path,
					 "a file:// URI or an array of certificate ids");
		e->ids = calloc(kv->value->array.n ? kv->value->array.n : 1, sizeof(char *));
		if (!e->ids) {
			p->oom = true;
			return -ENOMEM;
		}
		for (size_t j = 0; j < kv->value->array.n; j++) {
			tv_t *item = kv->value->array.items[j];
			char ipath[KEYPATH_MAX + 32];

			snprintf(ipath, sizeof(ipath), "%s[%zu]", path, j);
			r = check_string(p, item, ipath, NONEMPTY);
			if (r < 0)
				return r;
			e->ids[j] = xstrdup(p, item->str.ptr);
			if (!e->ids[j])
				return -ENOMEM;
			e->n_ids = j + 1;
		}
	}
	/* A bundle lists certificates, not other bundles. */
	for (size_t i = 0; i < c->n_preloaded_certs; i++)
		for (size_t j = 0; j < c->preloaded_certs[i].n_ids; j++)
			for (size_t k = 0; k < c->n_preloaded_certs; k++)
				if (c->preloaded_certs[k].ids &&
				    streq(c->preloaded_certs[k].id, c->preloaded_certs[i].ids[j])) {
					char path[KEYPATH_MAX];

					path_join(path, "preloaded_certs",
						  c->preloaded_certs[i].id);
					return fail(
					    p, pc->table.items[i].value->pos, path,
					    "expected ids of certificate files, got \"%s\", "
					    "which is itself a list",
					    c->preloaded_certs[i].ids[j]);
				}
	return 0;
}

static int parse_tpm(struct pctx *p, tv_t *root)
{
	static const char *const known[] = {"tcti", "auth_key_index", "hierarchy_authorization",
					    NULL};
	static const char *const ha_keys[] = {"endorsement", "owner", NULL};
	struct config_tpm *t = &p->cfg->tpm;
	tv_t *tpm, *aki, *ha;
	int r;

	t->auth_key_index = CONFIG_AUTH_KEY_INDEX_DEFAULT;
	r = get_table(p, root, "", "tpm", 0, &tpm);
	if (r < 0)
		return r;
	if (tpm) {
		r = get_string(p, tpm, "tpm", "tcti", 0, &t->tcti, NULL);
		if (r < 0)
			return r;
		aki = toml_table_get(tpm, "auth_key_index");
		if (aki && aki->type == TOML_STRING)
			/* The upstream template shows it quoted; the field is an integer. */
			return fail_type(p, aki, "tpm.auth_key_index",
					 "an integer from 0 to 0x7FFFFF written without quotes "
					 "(auth_key_index = 0x00_01_00)");
		r = get_int(p, tpm, "tpm", "auth_key_index", 0, 0, CONFIG_AUTH_KEY_INDEX_MAX,
			    "an integer from 0 to 0x7FFFFF (an offset from 0x81000000)",
			    &(int64_t){0});
		if (r < 0)
			return r;
		if (r > 0)
			t->auth_key_index = (uint32_t)aki->integer;
		r = get_table(p, tpm, "tpm", "hierarchy_authorization", 0, &ha);
		if (r < 0)
			return r;
		if (ha) {
			r = get_string(p, ha, "tpm.hierarchy_authorization", "endorsement", 0,
				       &t->endorsement_auth, NULL);
			if (r >= 0)
				r = get_string(p, ha, "tpm.hierarchy_authorization", "owner", 0,
					       &t->owner_auth, NULL);
			if (r < 0)
				return r;
			warn_unknown(p, ha, "tpm.hierarchy_authorization", ha_keys);
		}
		warn_unknown(p, tpm, "tpm", known);
	}
	if (!t->tcti)
		t->tcti = xstrdup(p, CONFIG_TCTI_DEFAULT);
	if (!t->endorsement_auth)
		t->endorsement_auth = xstrdup(p, "");
	if (!t->owner_auth)
		t->owner_auth = xstrdup(p, "");
	return p->oom ? -ENOMEM : 0;
}

static int parse_max_requests(struct pctx *p, tv_t *root)
{
	static const char *const known[] = {"keyd", "certd", "tpmd", "identityd", NULL};
	static const char expected[] = "a number of simultaneous connections (an integer >= 0)";
	struct config_max_requests *m = &p->cfg->aziot_max_requests;
	const char *mp = "aziot_max_requests";
	tv_t *t;
	int r;

	m->keyd = m->certd = m->tpmd = m->identityd = CONFIG_MAX_REQUESTS_DEFAULT;
	r = get_table(p, root, "", mp, 0, &t);
	if (r <= 0)
		return r;
	m->present = true;
	r = get_u32(p, t, mp, "keyd", REQ, 0, expected, &m->keyd);
	if (r >= 0)
		r = get_u32(p, t, mp, "certd", REQ, 0, expected, &m->certd);
	if (r >= 0)
		r = get_u32(p, t, mp, "tpmd", REQ, 0, expected, &m->tpmd);
	if (r >= 0)
		r = get_u32(p, t, mp, "identityd", REQ, 0, expected, &m->identityd);
	if (r < 0)
		return r;
	warn_unknown(p, t, mp, known);
	return 0;
}

static int parse_principals(struct pctx *p, tv_t *root)
{
	static const char *const known[] = {"uid", "name", "idtype", "localid", NULL};
	static const char *const idtypes[] = {"device", "module", "local", NULL};
	static const char *const localid_keys[] = {"type", "attributes", NULL};
	static const char *const lid_types[] = {"x509", NULL};
	static const char *const lid_attrs[] = {"client", "server", NULL};
	struct edgeid_config *c = p->cfg;
	tv_t *arr = toml_table_get(root, "principal");
	int r;

	if (!arr)
		return 0;
	if (arr->type != TOML_ARRAY)
		return fail_type(p, arr, "principal", "an array of tables ([[principal]])");
	c->principals = calloc(arr->array.n ? arr->array.n : 1, sizeof(*c->principals));
	if (!c->principals) {
		p->oom = true;
		return -ENOMEM;
	}
	for (size_t i = 0; i < arr->array.n; i++) {
		struct config_principal *pr = &c->principals[i];
		tv_t *t = arr->array.items[i], *idt, *lid;
		char path[KEYPATH_MAX], sub[KEYPATH_MAX];
		int64_t uid = 0;
		int which = 0;

		snprintf(path, sizeof(path), "principal[%zu]", i);
		if (t->type != TOML_TABLE)
			return fail_type(p, t, path, "a table ([[principal]])");
		c->n_principals = i + 1;
		r = get_int(p, t, path, "uid", REQ, 0, UINT32_MAX - 1,
			    "a user id (an integer >= 0)", &uid);
		if (r < 0)
			return r;
		pr->uid = (uint32_t)uid;
		r = get_string(p, t, path, "name", REQ | NONEMPTY, &pr->name, NULL);
		if (r < 0)
			return r;
		path_join(sub, path, "name");
		if (streq(pr->name, "aziot-edge"))
			return fail(
			    p, toml_table_get(t, "name")->pos, sub,
			    "expected a module name, got \"aziot-edge\", which config apply "
			    "reserves for the module runtime");
		for (size_t j = 0; j < i; j++)
			if (streq(c->principals[j].name, pr->name))
				return fail(
				    p, toml_table_get(t, "name")->pos, sub,
				    "expected a unique name, got \"%s\" again (principal[%zu])",
				    pr->name, j);
		idt = toml_table_get(t, "idtype");
		if (idt) {
			path_join(sub, path, "idtype");
			if (idt->type != TOML_ARRAY) {
				char got[256];

				describe(idt, got, sizeof(got));
				return fail(
				    p, idt->pos, sub,
				    "expected an array like [\"device\", \"module\"], got %s", got);
			}
			pr->has_idtype = true;
			for (size_t j = 0; j < idt->array.n; j++) {
				tv_t *item = idt->array.items[j];
				bool ok = false;

				for (int k = 0; idtypes[k]; k++)
					if (item->type == TOML_STRING &&
					    streq(item->str.ptr, idtypes[k])) {
						pr->idtype |= 1u << k;
						ok = true;
					}
				if (!ok) {
					char ipath[KEYPATH_MAX + 32];

					snprintf(ipath, sizeof(ipath), "%s[%zu]", sub, j);
					return fail_enum(p, item, ipath, idtypes);
				}
			}
		}
		r = get_table(p, t, path, "localid", 0, &lid);
		if (r < 0)
			return r;
		if (lid) {
			path_join(sub, path, "localid");
			r = get_enum(p, lid, sub, "type", REQ, lid_types, &which, NULL);
			if (r < 0)
				return r;
			which = 0;
			r = get_enum(p, lid, sub, "attributes", 0, lid_attrs, &which, NULL);
			if (r < 0)
				return r;
			pr->has_localid = true;
			pr->localid_server = which == 1;
			warn_unknown(p, lid, sub, localid_keys);
			if (!(pr->idtype & CONFIG_IDTYPE_LOCAL))
				warn(p, lid->pos, sub, "ignored: only used with idtype \"local\"");
		}
		path_join(sub, path, "idtype");
		if ((pr->idtype & CONFIG_IDTYPE_LOCAL) && !c->has_localid)
			return fail(p, idt->pos, sub,
				    "\"local\" needs [localid] domain = \"...\" at top level");
		if ((pr->idtype & (CONFIG_IDTYPE_DEVICE | CONFIG_IDTYPE_MODULE)) &&
		    c->provisioning.source == CONFIG_SOURCE_NONE)
			return fail(
			    p, idt->pos, sub,
			    "\"device\" and \"module\" identities need IoT Hub provisioning, "
			    "got source = \"none\"");
		warn_unknown(p, t, path, known);
	}
	return 0;
}

/* ---- IoT Edge keys ------------------------------------------------------ */

static int parse_agent(struct pctx *p, tv_t *root)
{
	static const char *const known[] = {"name",   "type", "imagePullPolicy",
					    "config", "env",  NULL};
	static const char *const config_keys[] = {"image", "createOptions", "auth", NULL};
	static const char *const auth_keys[] = {"serveraddress", "username", "password", NULL};
	static const char *const pull[] = {"on-create", "never", NULL};
	static const char *const types[] = {"docker", NULL};
	struct config_agent *a = &p->cfg->agent;
	tv_t *t, *cfg, *co, *auth, *env;
	int r, which = 0;

	r = get_table(p, root, "", "agent", 0, &t);
	if (r < 0)
		return r;
	if (!t) {
		a->name = xstrdup(p, "edgeAgent");
		a->type = xstrdup(p, "docker");
		a->image_pull_policy = xstrdup(p, "on-create");
		a->image = xstrdup(p, CONFIG_AGENT_IMAGE_DEFAULT);
		a->create_options = config_value_new_table();
		if (!a->create_options)
			p->oom = true;
		return p->oom ? -ENOMEM : 0;
	}
	r = get_string(p, t, "agent", "name", REQ | NONEMPTY, &a->name, NULL);
	if (r >= 0)
		r = get_enum(p, t, "agent", "type", REQ, types, &which, NULL);
	if (r < 0)
		return r;
	a->type = xstrdup(p, "docker");
	which = 0;
	r = get_enum(p, t, "agent", "imagePullPolicy", 0, pull, &which, NULL);
	if (r < 0)
		return r;
	a->image_pull_policy = xstrdup(p, pull[which]);
	r = get_table(p, t, "agent", "config", REQ, &cfg);
	if (r >= 0)
		r = get_string(p, cfg, "agent.config", "image", REQ | NONEMPTY, &a->image, NULL);
	if (r < 0)
		return r;
	co = toml_table_get(cfg, "createOptions");
	if (co && co->type != TOML_TABLE)
		return fail_type(p, co, "agent.config.createOptions",
				 "a TOML inline table like { HostConfig = { ... } } (not a JSON "
				 "string)");
	a->create_options = co ? config_value_from_toml(co) : config_value_new_table();
	if (!a->create_options) {
		p->oom = true;
		return -ENOMEM;
	}
	r = get_table(p, cfg, "agent.config", "auth", 0, &auth);
	if (r < 0)
		return r;
	if (auth) {
		a->has_auth = true;
		r = get_string(p, auth, "agent.config.auth", "serveraddress", 0,
			       &a->auth_serveraddress, NULL);
		if (r >= 0)
			r = get_string(p, auth, "agent.config.auth", "username", 0,
				       &a->auth_username, NULL);
		if (r >= 0)
			r = get_string(p, auth, "agent.config.auth", "password", 0,
				       &a->auth_password, NULL);
		if (r < 0)
			return r;
		warn_unknown(p, auth, "agent.config.auth", auth_keys);
	}
	warn_unknown(p, cfg, "agent.config", config_keys);
	r = get_table(p, t, "agent", "env", 0, &env);
	if (r > 0)
		r = parse_string_map(p, env, "agent.env", URI_PLAIN, &a->env);
	if (r < 0)
		return r;
	warn_unknown(p, t, "agent", known);
	return p->oom ? -ENOMEM : 0;
}

static int parse_endpoints_pair(struct pctx *p, tv_t *root, const char *name, char **workload,
				char **management, const char *def_w, const char *def_m)
{
	static const char *const connect_keys[] = {"workload_uri", "management_uri", NULL};
	static const char *const listen_keys[] = {"workload_uri", "management_uri",
						  "min_tls_version", NULL};
	static const char *const tls[] = {"tls1.0", "tls1.1", "tls1.2", "tls1.3", NULL};
	tv_t *t;
	int r, which = 0;

	r = get_table(p, root, "", name, 0, &t);
	if (r < 0)
		return r;
	if (t) {
		r = get_uri(p, t, name, "workload_uri", 0, URI_ENDPOINT, workload);
		if (r >= 0)
			r = get_uri(p, t, name, "management_uri", 0, URI_ENDPOINT, management);
		if (r < 0)
			return r;
		if (streq(name, "listen")) {
			r = get_enum(p, t, name, "min_tls_version", 0, tls, &which, NULL);
			if (r < 0)
				return r;
			if (r > 0)
				p->cfg->listen_min_tls_version = xstrdup(p, tls[which]);
		}
		warn_unknown(p, t, name, streq(name, "listen") ? listen_keys : connect_keys);
	}
	if (!*workload)
		*workload = xstrdup(p, def_w);
	if (!*management)
		*management = xstrdup(p, def_m);
	return p->oom ? -ENOMEM : 0;
}

static int parse_edge_ca(struct pctx *p, tv_t *root)
{
	static const char *const quick_keys[] = {"auto_generated_edge_ca_expiry_days", "auto_renew",
						 "common_name", "subject", NULL};
	struct config_edge_ca *ec = &p->cfg->edge_ca;
	tv_t *t, *ar;
	int r;

	ec->kind = CONFIG_EDGE_CA_QUICKSTART;
	ec->expiry_days = CONFIG_EDGE_CA_EXPIRY_DAYS_DEFAULT;
	ec->has_auto_renew = true;
	auto_renew_default(&ec->auto_renew);
	r = get_table(p, root, "", "edge_ca", 0, &t);
	if (r <= 0)
		return r;
	if (toml_table_get(t, "method")) {
		ec->kind = CONFIG_EDGE_CA_ISSUED;
		r = parse_issuance(p, t, "edge_ca", CONFIG_ID_EDGE_CA, NULL, &ec->issuance);
		if (r < 0)
			return r;
		ec->has_auto_renew = ec->issuance.has_auto_renew;
		ec->auto_renew = ec->issuance.auto_renew;
		return 0;
	}
	if (toml_table_get(t, "cert") || toml_table_get(t, "pk")) {
		ec->kind = CONFIG_EDGE_CA_PRELOADED;
		ec->has_auto_renew = false;
		r = get_uri(p, t, "edge_ca", "cert", REQ, URI_FILE, &ec->cert);
		if (r >= 0)
			r = get_uri(p, t, "edge_ca", "pk", REQ, URI_KEY, &ec->pk);
		if (r < 0)
			return r;
		if (toml_table_get(t, "auto_renew"))
			warn(p, toml_table_find(t, "auto_renew")->key_pos, "edge_ca.auto_renew",
			     "ignored: an Edge CA loaded from files cannot be renewed on the "
			     "device");
		warn_unknown(p, t, "edge_ca",
			     (const char *const[]){"cert", "pk", "auto_renew", NULL});
		return 0;
	}
	r = get_u32(p, t, "edge_ca", "auto_generated_edge_ca_expiry_days", 0, 1,
		    "a number of days greater than 0", &ec->expiry_days);
	if (r < 0)
		return r;
	r = parse_cn_or_subject(p, t, "edge_ca", &ec->common_name, &ec->subject);
	if (r < 0)
		return r;
	r = get_table(p, t, "edge_ca", "auto_renew", 0, &ar);
	if (r < 0)
		return r;
	if (ar) {
		r = parse_auto_renew(p, ar, "edge_ca.auto_renew", &ec->auto_renew);
		if (r < 0)
			return r;
		if (!ec->auto_renew.rotate_key)
			return fail(
			    p, toml_table_get(ar, "rotate_key")->pos,
			    "edge_ca.auto_renew.rotate_key",
			    "expected true for the auto-generated (quickstart) Edge CA, got "
			    "false; use method = \"local_ca\" or \"est\" to keep the key");
	}
	warn_unknown(p, t, "edge_ca", quick_keys);
	return 0;
}

static int parse_moby(struct pctx *p, tv_t *root)
{
	static const char *const known[] = {"uri", "network", "content_trust", NULL};
	static const char *const net_keys[] = {"name", "ipv6", "ipam", NULL};
	static const char *const ct_keys[] = {"ca_certs", NULL};
	struct config_moby *m = &p->cfg->moby;
	tv_t *t, *net, *ct, *ca, *ipam;
	int r;

	r = get_table(p, root, "", "moby_runtime", 0, &t);
	if (r < 0)
		return r;
	if (t) {
		r = get_uri(p, t, "moby_runtime", "uri", 0, URI_ENDPOINT, &m->uri);
		if (r < 0)
			return r;
		net = toml_table_get(t, "network");
		if (net && net->type == TOML_TABLE) {
			m->network_is_table = true;
			r = get_string(p, net, "moby_runtime.network", "name", REQ | NONEMPTY,
				       &m->network, NULL);
			if (r >= 0)
				r = get_bool(p, net, "moby_runtime.network", "ipv6", 0, &m->ipv6);
			if (r < 0)
				return r;
			m->has_ipv6 = r > 0;
			r = get_table(p, net, "moby_runtime.network", "ipam", 0, &ipam);
			if (r < 0)
				return r;
			if (ipam) {
				m->ipam = config_value_from_toml(ipam);
				if (!m->ipam) {
					p->oom = true;
					return -ENOMEM;
				}
			}
			warn_unknown(p, net, "moby_runtime.network", net_keys);
		} else if (net) {
			r = get_string(p, t, "moby_runtime", "network", NONEMPTY, &m->network,
				       NULL);
			if (r < 0)
				return r;
		}
		r = get_table(p, t, "moby_runtime", "content_trust", 0, &ct);
		if (r < 0)
			return r;
		if (ct) {
			r = get_table(p, ct, "moby_runtime.content_trust", "ca_certs", 0, &ca);
			if (r > 0)
				r = parse_string_map(p, ca, "moby_runtime.content_trust.ca_certs",
						     URI_FILE, &m->content_trust_ca_certs);
			if (r < 0)
				return r;
			warn_unknown(p, ct, "moby_runtime.content_trust", ct_keys);
		}
		warn_unknown(p, t, "moby_runtime", known);
	}
	if (!m->uri)
		m->uri = xstrdup(p, CONFIG_MOBY_URI_DEFAULT);
	if (!m->network)
		m->network = xstrdup(p, CONFIG_MOBY_NETWORK_DEFAULT);
	return p->oom ? -ENOMEM : 0;
}

static bool hhmm_ok(const char *s)
{
	return strlen(s) == 5 && s[2] == ':' && s[0] >= '0' && s[0] <= '2' && s[1] >= '0' &&
	       s[1] <= '9' && (s[0] < '2' || s[1] <= '3') && s[3] >= '0' && s[3] <= '5' &&
	       s[4] >= '0' && s[4] <= '9';
}

static int parse_image_gc(struct pctx *p, tv_t *root)
{
	static const char *const known[] = {"enabled", "cleanup_recurrence",
					    "image_age_cleanup_threshold", "cleanup_time", NULL};
	struct config_image_gc *g = &p->cfg->image_gc;
	const char *gp = "image_garbage_collection";
	tv_t *t, *time;
	int r;

	g->enabled = true;
	r = get_table(p, root, "", gp, 0, &t);
	if (r < 0)
		return r;
	if (t) {
		g->present = true;
		r = get_bool(p, t, gp, "enabled", 0, &g->enabled);
		if (r >= 0)
			r = get_string(p, t, gp, "cleanup_recurrence", NONEMPTY,
				       &g->cleanup_recurrence, NULL);
		if (r >= 0)
			r = get_string(p, t, gp, "image_age_cleanup_threshold", NONEMPTY,
				       &g->image_age_cleanup_threshold, NULL);
		if (r >= 0)
			r = get_string(p, t, gp, "cleanup_time", 0, &g->cleanup_time, &time);
		if (r < 0)
			return r;
		if (g->cleanup_time && !hhmm_ok(g->cleanup_time))
			return fail_type(p, time, "image_garbage_collection.cleanup_time",
					 "a 24-hour time \"HH:MM\"");
		warn_unknown(p, t, gp, known);
	}
	if (!g->cleanup_recurrence)
		g->cleanup_recurrence = xstrdup(p, "1d");
	if (!g->image_age_cleanup_threshold)
		g->image_age_cleanup_threshold = xstrdup(p, "7d");
	if (!g->cleanup_time)
		g->cleanup_time = xstrdup(p, "00:00");
	return p->oom ? -ENOMEM : 0;
}

static int parse_edge(struct pctx *p, tv_t *root)
{
	static const char *const modes[] = {"Dynamic", "AlwaysOnStartup", "OnErrorOnly", NULL};
	static const char *const imr_keys[] = {"management", "workload", NULL};
	static const char expected_n[] = "a number of simultaneous connections (an integer >= 0)";
	struct edgeid_config *c = p->cfg;
	tv_t *t, *v;
	int r, mode = 0;

	r = get_uri(p, root, "", "trust_bundle_cert", 0, URI_FILE, &c->trust_bundle_cert);
	if (r >= 0)
		r = get_uri(p, root, "", "manifest_trust_bundle_cert", 0, URI_FILE,
			    &c->manifest_trust_bundle_cert);
	if (r >= 0)
		r = get_bool(p, root, "", "allow_elevated_docker_permissions", 0,
			     &c->allow_elevated_docker_permissions);
	if (r >= 0)
		r = get_enum(p, root, "", "auto_reprovisioning_mode", 0, modes, &mode, NULL);
	if (r < 0)
		return r;
	c->auto_reprovisioning_mode = (enum config_reprovisioning)mode;
	r = get_string(p, root, "", "imported_master_encryption_key", NONEMPTY,
		       &c->imported_master_encryption_key, &v);
	if (r < 0)
		return r;
	if (r > 0 && c->imported_master_encryption_key[0] != '/')
		return fail_type(p, v, "imported_master_encryption_key", "an absolute path");
	r = get_uri(p, root, "", "additional_info", 0, URI_FILE, &c->additional_info);
	if (r < 0)
		return r;
	c->iotedge_management_max_requests = CONFIG_IOTEDGE_MANAGEMENT_MAX_REQUESTS_DEFAULT;
	c->iotedge_workload_max_requests = CONFIG_IOTEDGE_WORKLOAD_MAX_REQUESTS_DEFAULT;
	r = get_table(p, root, "", "iotedge_max_requests", 0, &t);
	if (r < 0)
		return r;
	if (t) {
		r = get_u32(p, t, "iotedge_max_requests", "management", 0, 0, expected_n,
			    &c->iotedge_management_max_requests);
		if (r >= 0)
			r = get_u32(p, t, "iotedge_max_requests", "workload", 0, 0, expected_n,
				    &c->iotedge_workload_max_requests);
		if (r < 0)
			return r;
		warn_unknown(p, t, "iotedge_max_requests", imr_keys);
	}
	r = parse_agent(p, root);
	if (r >= 0)
		r = parse_endpoints_pair(
		    p, root, "connect", &c->connect_workload_uri, &c->connect_management_uri,
		    CONFIG_CONNECT_WORKLOAD_DEFAULT, CONFIG_CONNECT_MANAGEMENT_DEFAULT);
	if (r >= 0)
		r = parse_endpoints_pair(p, root, "listen", &c->listen_workload_uri,
					 &c->listen_management_uri, CONFIG_LISTEN_WORKLOAD_DEFAULT,
					 CONFIG_LISTEN_MANAGEMENT_DEFAULT);
	if (r < 0)
		return r;
	c->watchdog_infinite = true;
	r = get_table(p, root, "", "watchdog", 0, &t);
	if (r < 0)
		return r;
	if (t) {
		v = toml_table_get(t, "max_retries");
		if (v && v->type == TOML_STRING && streq(v->str.ptr, "infinite")) {
			c->watchdog_infinite = true;
		} else if (v) {
			if (v->type != TOML_INTEGER || v->integer < 0 || v->integer > UINT32_MAX)
				return fail_type(p, v, "watchdog.max_retries",
						 "\"infinite\" or an integer >= 0");
			c->watchdog_infinite = false;
			c->watchdog_max_retries = (uint32_t)v->integer;
		}
		warn_unknown(p, t, "watchdog", (const char *const[]){"max_retries", NULL});
	}
	r = parse_edge_ca(p, root);
	if (r >= 0)
		r = parse_moby(p, root);
	if (r >= 0)
		r = parse_image_gc(p, root);
	return r;
}

/* ---- top level ------------------------------------------------------------ */

static const char *const top_keys[] = {"hostname",
				       "local_gateway_hostname",
				       "parent_hostname",
				       "cloud_timeout_sec",
				       "cloud_retries",
				       "prefer_module_identity_cache",
				       "aziot_max_requests",
				       "provisioning",
				       "localid",
				       "aziot_keys",
				       "preloaded_keys",
				       "cert_issuance",
				       "preloaded_certs",
				       "tpm",
				       "endpoints",
				       "principal",
				       "trust_bundle_cert",
				       "manifest_trust_bundle_cert",
				       "allow_elevated_docker_permissions",
				       "auto_reprovisioning_mode",
				       "imported_master_encryption_key",
				       "additional_info",
				       "iotedge_max_requests",
				       "agent",
				       "connect",
				       "listen",
				       "watchdog",
				       "edge_ca",
				       "moby_runtime",
				       "image_garbage_collection",
				       NULL};

static int parse_top(struct pctx *p, tv_t *root)
{
	struct edgeid_config *c = p->cfg;
	tv_t *gw = toml_table_get(root, "local_gateway_hostname");
	tv_t *parent = toml_table_get(root, "parent_hostname"), *v;
	int64_t i = 0;
	int r;

	r = get_string(p, root, "", "hostname", NONEMPTY, &c->hostname, NULL);
	if (r < 0)
		return r;
	if (!c->hostname) {
		char h[HOST_NAME_MAX + 1];

		if (gethostname(h, sizeof(h)) < 0)
			return err_set(p->e, -errno,
				       "%s: hostname: not set, and gethostname() failed: %s",
				       p->file, strerror(errno));
		h[HOST_NAME_MAX] = '\0';
		c->hostname = xstrdup(p, h);
		c->hostname_default = true;
		if (!c->hostname)
			return -ENOMEM;
	}
	if (gw && parent)
		return fail(p, toml_table_find(root, "parent_hostname")->key_pos, "parent_hostname",
			    "expected only one of local_gateway_hostname and parent_hostname (they "
			    "are the same setting), got both");
	r = get_string(p, root, "", gw ? "local_gateway_hostname" : "parent_hostname", NONEMPTY,
		       &c->local_gateway_hostname, &v);
	if (r < 0)
		return r;
	if (v)
		p->gateway_pos = v->pos;
	c->cloud_timeout_sec = CONFIG_CLOUD_TIMEOUT_DEFAULT;
	r = get_int(p, root, "", "cloud_timeout_sec", 0, CONFIG_CLOUD_TIMEOUT_MIN, INT64_MAX,
		    "an integer of at least 70 (seconds)", &i);
	if (r < 0)
		return r;
	if (r > 0)
		c->cloud_timeout_sec = (uint64_t)i;
	c->cloud_retries = CONFIG_CLOUD_RETRIES_DEFAULT;
	r = get_u32(p, root, "", "cloud_retries", 0, 0, "an integer >= 0", &c->cloud_retries);
	if (r >= 0)
		r = get_bool(p, root, "", "prefer_module_identity_cache", 0,
			     &c->prefer_module_identity_cache);
	return r < 0 ? r : 0;
}

static int parse_localid(struct pctx *p, tv_t *root)
{
	tv_t *t;
	int r = get_table(p, root, "", "localid", 0, &t);

	if (r <= 0)
		return r;
	r = get_string(p, t, "localid", "domain", REQ | NONEMPTY, &p->cfg->localid_domain, NULL);
	if (r < 0)
		return r;
	p->cfg->has_localid = true;
	warn_unknown(p, t, "localid", (const char *const[]){"domain", NULL});
	return 0;
}

/* Checks that need the whole configuration. */
static int cross_check(struct pctx *p, tv_t *root)
{
	struct edgeid_config *c = p->cfg;
	const struct toml_kv *kv;

	if (c->local_gateway_hostname && c->provisioning.source == CONFIG_SOURCE_DPS)
		return fail(p, p->gateway_pos,
			    toml_table_get(root, "parent_hostname") ? "parent_hostname"
								    : "local_gateway_hostname",
			    "DPS provisioning is not supported in nested mode; remove it or use "
			    "source = \"manual\"");
	if (!config_map_get(&c->aziot_keys, "pkcs11_lib_path"))
		for (size_t i = 0; i < p->n_pkcs11; i++)
			warn(
			    p, p->pkcs11[i].pos, p->pkcs11[i].path,
			    "PKCS#11 URI, but [aziot_keys] pkcs11_lib_path is not set: keyd cannot "
			    "load this key");
	for (size_t i = 0; i < p->n_issuances; i++) {
		const struct pissuance *pi = &p->issuances[i];

		if (pi->iss->method == CONFIG_ISSUANCE_EST && !pi->iss->url &&
		    !config_map_get(&c->est.urls, pi->id) &&
		    !config_map_get(&c->est.urls, "default"))
			warn(p, pi->pos, pi->path,
			     "method = \"est\" but no EST URL: set url here, or "
			     "[cert_issuance.est.urls] "
			     "default");
		if (pi->iss->method == CONFIG_ISSUANCE_LOCAL_CA && !c->local_ca.present)
			warn(p, pi->pos, pi->path,
			     "method = \"local_ca\" needs [cert_issuance.local_ca] cert and pk");
	}
	kv = toml_table_find(root, "endpoints");
	if (kv)
		warn(p, kv->key_pos, "endpoints",
		     "ignored: [endpoints] is only honoured by debug builds of the daemons");
	warn_unknown(p, root, "", top_keys);
	return 0;
}

/* Wipe every string of the parse tree: it held keys and passwords. */
static void toml_wipe(struct toml_value *v)
{
	if (!v)
		return;
	switch (v->type) {
	case TOML_STRING:
		if (v->str.ptr)
			explicit_bzero(v->str.ptr, v->str.len);
		break;
	case TOML_ARRAY:
		for (size_t i = 0; i < v->array.n; i++)
			toml_wipe(v->array.items[i]);
		break;
	case TOML_TABLE:
		for (size_t i = 0; i < v->table.n; i++)
			toml_wipe(v->table.items[i].value);
		break;
	default:
		break;
	}
}

static int warning_cmp(const void *a, const void *b)
{
	const struct pwarning *x = a, *y = b;

	if (x->pos.line != y->pos.line)
		return x->pos.line < y->pos.line ? -1 : 1;
	if (x->pos.col != y->pos.col)
		return x->pos.col < y->pos.col ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

int config_parse(const char *text, size_t len, const char *filename, struct edgeid_config **ret,
		 struct err *e)
{
	struct toml_value *root = NULL;
	struct pctx p = {.file = filename, .e = e};
	int r;

	*ret = NULL;
	r = toml_parse(text, len, filename, &root, e);
	if (r < 0)
		return r;
	p.cfg = calloc(1, sizeof(*p.cfg));
	if (!p.cfg) {
		r = -ENOMEM;
		goto out;
	}
	p.cfg->allow_elevated_docker_permissions = true;
	r = parse_top(&p, root);
	if (r >= 0)
		r = parse_provisioning(&p, root);
	if (r >= 0)
		r = parse_localid(&p, root);
	if (r >= 0)
		r = parse_aziot_keys(&p, root);
	if (r >= 0)
		r = parse_preloaded(&p, root);
	if (r >= 0)
		r = parse_cert_issuance(&p, root);
	if (r >= 0)
		r = parse_tpm(&p, root);
	if (r >= 0)
		r = parse_max_requests(&p, root);
	if (r >= 0)
		r = parse_principals(&p, root);
	if (r >= 0)
		r = parse_edge(&p, root);
	if (r >= 0)
		r = cross_check(&p, root);
	if (r >= 0 && p.oom)
		r = -ENOMEM;
	if (r >= 0 && p.n_warnings) {
		qsort(p.warnings, p.n_warnings, sizeof(*p.warnings), warning_cmp);
		p.cfg->warnings = calloc(p.n_warnings, sizeof(char *));
		if (!p.cfg->warnings) {
			r = -ENOMEM;
		} else {
			for (size_t i = 0; i < p.n_warnings; i++) {
				p.cfg->warnings[i] = p.warnings[i].text;
				p.warnings[i].text = NULL;
			}
			p.cfg->n_warnings = p.n_warnings;
		}
	}
	if (r == -ENOMEM)
		err_set(e, r, "%s: out of memory", filename);
out:
	for (size_t i = 0; i < p.n_warnings; i++)
		free(p.warnings[i].text);
	free(p.warnings);
	free(p.issuances);
	free(p.pkcs11);
	toml_wipe(root);
	toml_free(root);
	if (r < 0) {
		config_free(p.cfg);
		return r;
	}
	*ret = p.cfg;
	return 0;
}

int config_load(const char *path, struct edgeid_config **ret, struct err *e)
{
	_cleanup_buf_ struct buf text = {0};
	_cleanup_close_ int fd = -1;
	struct stat st;
	char chunk[8192];

	*ret = NULL;
	buf_init_secret(&text, TOML_MAX_DOCUMENT);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return err_set(e, -errno, "%s: cannot read: %s", path, strerror(errno));
	if (fstat(fd, &st) < 0)
		return err_set(e, -errno, "%s: cannot read: %s", path, strerror(errno));
	if (S_ISDIR(st.st_mode))
		return err_set(e, -EISDIR, "%s: cannot read: %s", path, strerror(EISDIR));
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		int r;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int saved = errno;

			explicit_bzero(chunk, sizeof(chunk));
			return err_set(e, -saved, "%s: cannot read: %s", path, strerror(saved));
		}
		if (n == 0)
			break;
		r = buf_append(&text, chunk, (size_t)n);
		if (r < 0) {
			explicit_bzero(chunk, sizeof(chunk));
			if (r == -E2BIG)
				return err_set(e, r, "%s: cannot read: larger than %d bytes", path,
					       TOML_MAX_DOCUMENT);
			return err_set(e, r, "%s: cannot read: %s", path, strerror(-r));
		}
	}
	explicit_bzero(chunk, sizeof(chunk));
	return config_parse(buf_str(&text), text.len, path, ret, e);
}

void config_free(struct edgeid_config *c)
{
	if (!c)
		return;
	zfree(c->hostname);
	zfree(c->local_gateway_hostname);
	zfree(c->provisioning.manual.connection_string);
	zfree(c->provisioning.manual.iothub_hostname);
	zfree(c->provisioning.manual.device_id);
	symkey_free(&c->provisioning.manual.device_id_pk);
	x509_free(&c->provisioning.manual.x509);
	zfree(c->provisioning.dps.global_endpoint);
	zfree(c->provisioning.dps.id_scope);
	zfree(c->provisioning.dps.payload_uri);
	zfree(c->provisioning.dps.registration_id);
	map_free(&c->provisioning.dps.registration_subject);
	symkey_free(&c->provisioning.dps.symmetric_key);
	x509_free(&c->provisioning.dps.x509);
	zfree(c->localid_domain);
	map_free(&c->aziot_keys);
	map_free(&c->preloaded_keys);
	for (size_t i = 0; i < c->est.n_trusted_certs; i++)
		zfree(c->est.trusted_certs[i]);
	free(c->est.trusted_certs);
	est_auth_free(&c->est.auth);
	map_free(&c->est.urls);
	zfree(c->local_ca.cert);
	zfree(c->local_ca.pk);
	issuance_free(&c->local_ca.issuance);
	for (size_t i = 0; i < c->n_cert_issuance; i++) {
		free(c->cert_issuance[i].id);
		issuance_free(&c->cert_issuance[i].issuance);
	}
	free(c->cert_issuance);
	for (size_t i = 0; i < c->n_preloaded_certs; i++) {
		struct config_preloaded_cert *pc = &c->preloaded_certs[i];

		free(pc->id);
		zfree(pc->uri);
		for (size_t j = 0; j < pc->n_ids; j++)
			free(pc->ids[j]);
		free(pc->ids);
	}
	free(c->preloaded_certs);
	zfree(c->tpm.tcti);
	zfree(c->tpm.endorsement_auth);
	zfree(c->tpm.owner_auth);
	for (size_t i = 0; i < c->n_principals; i++)
		free(c->principals[i].name);
	free(c->principals);
	zfree(c->trust_bundle_cert);
	zfree(c->manifest_trust_bundle_cert);
	zfree(c->imported_master_encryption_key);
	zfree(c->additional_info);
	zfree(c->agent.name);
	zfree(c->agent.type);
	zfree(c->agent.image_pull_policy);
	zfree(c->agent.image);
	config_value_free(c->agent.create_options);
	zfree(c->agent.auth_serveraddress);
	zfree(c->agent.auth_username);
	zfree(c->agent.auth_password);
	map_free(&c->agent.env);
	zfree(c->connect_workload_uri);
	zfree(c->connect_management_uri);
	zfree(c->listen_workload_uri);
	zfree(c->listen_management_uri);
	zfree(c->listen_min_tls_version);
	zfree(c->edge_ca.common_name);
	map_free(&c->edge_ca.subject);
	zfree(c->edge_ca.cert);
	zfree(c->edge_ca.pk);
	issuance_free(&c->edge_ca.issuance);
	zfree(c->moby.uri);
	zfree(c->moby.network);
	config_value_free(c->moby.ipam);
	map_free(&c->moby.content_trust_ca_certs);
	zfree(c->image_gc.cleanup_recurrence);
	zfree(c->image_gc.image_age_cleanup_threshold);
	zfree(c->image_gc.cleanup_time);
	for (size_t i = 0; i < c->n_warnings; i++)
		free(c->warnings[i]);
	free(c->warnings);
	free(c);
}

const char *config_source_name(enum config_source s)
{
	return source_names[s];
}

const char *config_attestation_name(enum config_attestation a)
{
	static const char *const names[] = {"symmetric_key", "x509", "tpm"};

	return names[a];
}

const char *config_issuance_method_name(enum config_issuance_method m)
{
	return issuance_method_names[m];
}

const char *config_reprovisioning_name(enum config_reprovisioning m)
{
	static const char *const names[] = {"Dynamic", "AlwaysOnStartup", "OnErrorOnly"};

	return names[m];
}
