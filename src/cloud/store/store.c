/* SPDX-License-Identifier: MIT */
/*
 * The backend-independent half of the store: URL dispatch, argument checks,
 * key folding, size limits, etags, continuation tokens, and turning rows
 * into JSON. Backends (store_backend.h) only talk to their database.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "cloud/store/store.h"
#include "cloud/store/store_backend.h"
#include "common/buf.h"
#include "common/encode.h"
#include "common/log.h"

struct store {
	const struct store_ops *ops;
	void *be;
	size_t limit[STORE_COLLECTION_COUNT];
};

/* Registration ids (part 0 of enrollments and registrations) and hub host
 * names (part 0 of the hub collections) fold case: dps-protocol.md §1.9,
 * and DNS names are case-insensitive. Device and module ids are exact. */
static const struct store_collection_info collections[STORE_COLLECTION_COUNT] = {
    [STORE_ENROLLMENTS] = {"enrollments", 1, 1u << 0, false, false, STORE_DOC_MAX_DEFAULT},
    [STORE_ENROLLMENT_GROUPS] = {"enrollment groups", 1, 0, false, false, STORE_DOC_MAX_DEFAULT},
    [STORE_REGISTRATIONS] = {"registrations", 1, 1u << 0, false, true, STORE_DOC_MAX_DEFAULT},
    [STORE_CA_CERTIFICATES] = {"CA certificates", 1, 0, false, false, STORE_DOC_MAX_DEFAULT},
    [STORE_HUB_DEVICES] = {"hub devices", 2, 1u << 0, false, false, STORE_DOC_MAX_DEFAULT},
    [STORE_HUB_MODULES] = {"hub modules", 3, 1u << 0, false, false, STORE_DOC_MAX_DEFAULT},
    [STORE_TWINS] = {"twins", 3, 1u << 0, true, false, STORE_TWIN_MAX_DEFAULT},
    [STORE_TELEMETRY] = {"telemetry", 2, 1u << 0, false, false, STORE_TELEMETRY_BODY_MAX_DEFAULT},
};

const struct store_collection_info *store_collection_info(enum store_collection c)
{
	if ((unsigned)c >= STORE_COLLECTION_COUNT)
		return NULL;
	return &collections[c];
}

const char *store_collection_name(enum store_collection c)
{
	const struct store_collection_info *ci = store_collection_info(c);

	return ci ? ci->name : "unknown collection";
}

/* A document collection's shape, or NULL (and e says why). */
static const struct store_collection_info *doc_collection(enum store_collection c, struct err *e)
{
	if ((unsigned)c >= STORE_COLLECTION_COUNT || c == STORE_TELEMETRY) {
		err_set(e, -EINVAL, "store: %d is not a document collection", (int)c);
		return NULL;
	}
	return &collections[c];
}

/* ---- keys ---- */

static bool utf8_valid(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	while (i < n) {
		unsigned char c = p[i];
		size_t len;
		uint32_t cp;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			len = 2;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			len = 3;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			len = 4;
			cp = c & 0x07;
		} else {
			return false;
		}
		if (n - i < len)
			return false;
		for (size_t k = 1; k < len; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (p[i + k] & 0x3f);
		}
		/* Overlong forms, surrogates, beyond U+10FFFF. */
		if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += len;
	}
	return true;
}

struct key_buf {
	char part[STORE_KEY_PARTS][STORE_KEY_MAX + 1];
	const char *ptr[STORE_KEY_PARTS];
};

/* ASCII only, whatever the locale: other bytes belong to UTF-8 sequences. */
static char ascii_lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* For key_part(): the value checked is the secondary key. */
#define PART_SECONDARY UINT_MAX

/* Check key part i (or the secondary key) and copy it into out, folded
 * when fold. */
static int key_part(const struct store_collection_info *ci, unsigned i, const char *in,
		    bool may_be_empty, bool fold, char *out, struct err *e)
{
	char what[32];
	size_t n;

	if (i == PART_SECONDARY)
		snprintf(what, sizeof(what), "the secondary key");
	else
		snprintf(what, sizeof(what), "key part %u", i + 1);
	if (!in) {
		if (!may_be_empty)
			return err_set(e, -EINVAL, "%s: %s is missing", ci->name, what);
		in = "";
	}
	n = strlen(in);
	if (n == 0 && !may_be_empty)
		return err_set(e, -EINVAL, "%s: %s is empty", ci->name, what);
	if (n > STORE_KEY_MAX)
		return err_set(e, -ENAMETOOLONG, "%s: %s is %zu bytes long, the limit is %d",
			       ci->name, what, n, STORE_KEY_MAX);
	if (!utf8_valid(in, n))
		return err_set(e, -EINVAL, "%s: %s is not valid UTF-8", ci->name, what);
	for (size_t k = 0; k < n; k++)
		out[k] = fold ? ascii_lower(in[k]) : in[k];
	out[n] = '\0';
	return 0;
}

/* A complete key of collection ci, normalised into kb. */
static int key_full(const struct store_collection_info *ci, const struct store_key *key,
		    struct key_buf *kb, struct err *e)
{
	int r;

	if (!key)
		return err_set(e, -EINVAL, "%s: no key given", ci->name);
	for (unsigned i = 0; i < STORE_KEY_PARTS; i++) {
		kb->ptr[i] = NULL;
		if (i >= ci->nkeys) {
			if (key->part[i])
				return err_set(e, -EINVAL, "%s: the key has %u part(s), got more",
					       ci->name, ci->nkeys);
			continue;
		}
		r = key_part(ci, i, key->part[i], ci->last_may_be_empty && i == ci->nkeys - 1,
			     ci->fold & (1u << i), kb->part[i], e);
		if (r < 0)
			return r;
		kb->ptr[i] = kb->part[i];
	}
	return 0;
}

/* The selection a query makes, normalised into sel (prefix parts in kb). */
static int selection(const struct store_query *q, struct store_selection *sel, struct key_buf *kb,
		     struct err *e)
{
	const struct store_collection_info *ci;
	unsigned n = 0;
	int r;

	if (!q)
		return err_set(e, -EINVAL, "store: no query given");
	ci = doc_collection(q->coll, e);
	if (!ci)
		return -EINVAL;
	*sel = (struct store_selection){.coll = q->coll};
	while (n < STORE_KEY_PARTS && q->prefix.part[n])
		n++;
	for (unsigned i = n; i < STORE_KEY_PARTS; i++)
		if (q->prefix.part[i])
			return err_set(e, -EINVAL,
				       "%s: key prefix part %u is set after an unset one", ci->name,
				       i + 1);
	if (n >= ci->nkeys)
		return err_set(e, -EINVAL, "%s: a key prefix has at most %u part(s), got %u",
			       ci->name, ci->nkeys - 1, n);
	for (unsigned i = 0; i < n; i++) {
		r = key_part(ci, i, q->prefix.part[i], false, ci->fold & (1u << i), kb->part[i], e);
		if (r < 0)
			return r;
		sel->prefix[i] = kb->part[i];
	}
	sel->nprefix = n;
	if (q->secondary) {
		if (!ci->has_secondary)
			return err_set(e, -EINVAL, "%s: no secondary key in this collection",
				       ci->name);
		if (n > 0)
			return err_set(
			    e, -EINVAL,
			    "%s: a query takes a key prefix or a secondary key, not both",
			    ci->name);
		/* Part STORE_KEY_PARTS-1 of kb is free: a prefix is shorter. */
		r = key_part(ci, PART_SECONDARY, q->secondary, false, false,
			     kb->part[STORE_KEY_PARTS - 1], e);
		if (r < 0)
			return r;
		sel->secondary = kb->part[STORE_KEY_PARTS - 1];
	}
	return 0;
}

/* ---- continuation tokens ----
 *
 * base64url (no padding) of: version (1), collection, selection kind
 * (the prefix length, or 0xff for a secondary key), the number of key
 * parts that follow, then each part as a 16-bit big-endian length and its
 * bytes. The parts are the last key returned, minus the fixed prefix.
 * The token is a position, not a credential: a forged one only moves the
 * caller within a listing it may read anyway. */

#define TOKEN_VERSION 1
#define TOKEN_SECONDARY 0xff

static unsigned sel_kind(const struct store_selection *sel)
{
	return sel->secondary ? TOKEN_SECONDARY : sel->nprefix;
}

static unsigned sel_after_parts(const struct store_selection *sel)
{
	return collections[sel->coll].nkeys - sel->nprefix;
}

static int token_encode(const struct store_selection *sel, const struct store_row *last, char **ret)
{
	_cleanup_buf_ struct buf raw = {0}, out = {0};
	unsigned nparts = sel_after_parts(sel);
	uint8_t head[4] = {TOKEN_VERSION, (uint8_t)sel->coll, (uint8_t)sel_kind(sel),
			   (uint8_t)nparts};
	int r;

	buf_init(&raw, STORE_TOKEN_MAX);
	buf_init(&out, STORE_TOKEN_MAX);
	r = buf_append(&raw, head, sizeof(head));
	for (unsigned i = sel->nprefix; r >= 0 && i < sel->nprefix + nparts; i++) {
		size_t n = strlen(last->key[i]);
		uint8_t len[2] = {(uint8_t)(n >> 8), (uint8_t)n};

		r = buf_append(&raw, len, 2);
		if (r >= 0)
			r = buf_append(&raw, last->key[i], n);
	}
	if (r >= 0)
		r = base64_encode(&out, raw.data, raw.len, B64_URL | B64_NO_PAD);
	if (r < 0)
		return r;
	*ret = buf_steal(&out, NULL);
	return *ret ? 0 : -ENOMEM;
}

static int token_decode(const struct store_selection *sel, const char *token, struct key_buf *after,
			struct err *e)
{
	_cleanup_buf_ struct buf raw = {0};
	size_t n = strlen(token);
	unsigned nparts = sel_after_parts(sel);
	struct cursor c;
	uint8_t v, coll, kind, count;

	if (n > STORE_TOKEN_MAX)
		return err_set(e, -EINVAL, "continuation token is too long");
	buf_init(&raw, STORE_TOKEN_MAX);
	if (base64_decode(&raw, token, n, B64_URL | B64_NO_PAD, NULL) < 0)
		return err_set(e, -EINVAL, "continuation token is malformed");
	c = cursor_make(raw.data, raw.len);
	if (cursor_get_u8(&c, &v) < 0 || cursor_get_u8(&c, &coll) < 0 ||
	    cursor_get_u8(&c, &kind) < 0 || cursor_get_u8(&c, &count) < 0 || v != TOKEN_VERSION)
		return err_set(e, -EINVAL, "continuation token is malformed");
	if (coll != sel->coll || kind != sel_kind(sel) || count != nparts)
		return err_set(e, -EINVAL, "continuation token belongs to another query");
	for (unsigned i = 0; i < nparts; i++) {
		const uint8_t *p;
		uint16_t len;

		if (cursor_get_u16be(&c, &len) < 0 || len > STORE_KEY_MAX ||
		    cursor_get_bytes(&c, len, &p) < 0 || memchr(p, '\0', len) ||
		    !utf8_valid((const char *)p, len))
			return err_set(e, -EINVAL, "continuation token is malformed");
		memcpy(after->part[i], p, len);
		after->part[i][len] = '\0';
		after->ptr[i] = after->part[i];
	}
	if (cursor_expect_end(&c) < 0)
		return err_set(e, -EINVAL, "continuation token is malformed");
	return 0;
}

/* ---- open / close ---- */

static int parse_params(char *query, struct store_params *p, struct err *e)
{
	for (char *kv = query, *next; kv; kv = next) {
		char *val, *end;
		unsigned long ms;

		next = strchr(kv, '&');
		if (next)
			*next++ = '\0';
		if (!kv[0])
			continue;
		val = strchr(kv, '=');
		if (!val)
			return err_set(e, -EINVAL, "store URL: parameter '%.64s' has no value", kv);
		*val++ = '\0';
		if (streq(kv, "synchronous")) {
			if (strcasecmp(val, "full") == 0)
				p->sync = STORE_SYNC_FULL;
			else if (strcasecmp(val, "normal") == 0)
				p->sync = STORE_SYNC_NORMAL;
			else
				return err_set(e, -EINVAL,
					       "store URL: synchronous: expected \"full\" or "
					       "\"normal\", got \"%.64s\"",
					       val);
		} else if (streq(kv, "busy_timeout_ms")) {
			errno = 0;
			ms = strtoul(val, &end, 10);
			if (errno != 0 || end == val || *end != '\0' || val[0] == '-' ||
			    ms > 600000)
				return err_set(e, -EINVAL,
					       "store URL: busy_timeout_ms: expected milliseconds "
					       "from 0 to 600000, got \"%.64s\"",
					       val);
			p->busy_timeout_ms = (unsigned)ms;
		} else {
			return err_set(e, -EINVAL,
				       "store URL: unknown parameter '%.64s' (expected synchronous "
				       "or busy_timeout_ms)",
				       kv);
		}
	}
	return 0;
}

int store_open(const char *url, struct store **ret, struct err *e)
{
	struct store_params params = {.sync = STORE_SYNC_FULL, .busy_timeout_ms = 5000};
	_cleanup_free_ char *path = NULL;
	_cleanup_free_ struct store *s = NULL;
	const struct store_ops *ops = &store_sqlite_ops;
	const char *sep;
	int r;

	if (!url || !url[0])
		return err_set(e, -EINVAL, "store URL is empty");
	sep = strstr(url, "://");
	if (!sep) {
		path = strdup(url);
		if (!path)
			return -ENOMEM;
	} else {
		size_t scheme_len = (size_t)(sep - url);
		const char *rest = sep + 3, *q;
		_cleanup_buf_ struct buf dec = {0};
		_cleanup_free_ char *query = NULL;

		if ((scheme_len == 10 && strncasecmp(url, "postgresql", 10) == 0) ||
		    (scheme_len == 8 && strncasecmp(url, "postgres", 8) == 0))
			return err_set(e, -EPROTONOSUPPORT,
				       "store URL: PostgreSQL is not supported yet; use "
				       "sqlite:///PATH or a file path");
		if (scheme_len != 6 || strncasecmp(url, "sqlite", 6) != 0)
			return err_set(e, -EPROTONOSUPPORT,
				       "store URL: unknown scheme \"%.*s\" (expected sqlite or "
				       "postgresql)",
				       (int)(scheme_len > 32 ? 32 : scheme_len), url);
		if (rest[0] != '/')
			return err_set(
			    e, -EINVAL,
			    "store URL: expected sqlite:///ABSOLUTE/PATH (a host part is "
			    "not supported)");
		q = strchr(rest, '?');
		buf_init(&dec, 4096);
		if (url_decode(&dec, rest, q ? (size_t)(q - rest) : strlen(rest), false) < 0)
			return err_set(e, -EINVAL, "store URL: the path is not validly encoded");
		if (streq(buf_str(&dec), "/"))
			return err_set(e, -EINVAL, "store URL: no database path given");
		path = buf_steal(&dec, NULL);
		if (!path)
			return -ENOMEM;
		if (q) {
			query = strdup(q + 1);
			if (!query)
				return -ENOMEM;
			r = parse_params(query, &params, e);
			if (r < 0)
				return r;
		}
	}

	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->ops = ops;
	for (unsigned i = 0; i < STORE_COLLECTION_COUNT; i++)
		s->limit[i] = collections[i].default_limit;
	r = ops->open_store(path, &params, &s->be, e);
	if (r < 0)
		return r;
	log_debug("store: opened %s (%s)", path, ops->name);
	*ret = TAKE_PTR(s);
	return 0;
}

void store_close(struct store *s)
{
	if (!s)
		return;
	s->ops->close_store(s->be);
	free(s);
}

int store_set_limit(struct store *s, enum store_collection c, size_t max_bytes)
{
	if ((unsigned)c >= STORE_COLLECTION_COUNT || max_bytes == 0 ||
	    max_bytes > STORE_LIMIT_CEILING)
		return -EINVAL;
	s->limit[c] = max_bytes;
	return 0;
}

/* ---- documents ---- */

static int new_etag(char ret[17])
{
	static const char hex[] = "0123456789abcdef";
	uint8_t rnd[8];

	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		return -errno;
	for (size_t i = 0; i < sizeof(rnd); i++) {
		ret[2 * i] = hex[rnd[i] >> 4];
		ret[2 * i + 1] = hex[rnd[i] & 0xf];
	}
	ret[16] = '\0';
	return 0;
}

static int parse_doc(const char *text, size_t len, json_t **ret, struct err *e)
{
	json_error_t jerr;
	json_t *j;

	/* Documents were written by jansson, which may emit \u0000. */
	j = json_loadb(text, len, JSON_ALLOW_NUL, &jerr);
	if (!j || !json_is_object(j)) {
		json_decref(j);
		return err_set(e, -EBADMSG, "a stored document is not a JSON object (corrupt)");
	}
	*ret = j;
	return 0;
}

struct get_ctx {
	json_t **ret_doc;
	char **ret_etag;
	struct err *e;
};

static int get_row(void *userdata, const struct store_row *row)
{
	struct get_ctx *g = userdata;
	_cleanup_(json_decrefp) json_t *doc = NULL;
	int r;

	if (g->ret_doc) {
		r = parse_doc(row->doc, row->doc_len, &doc, g->e);
		if (r < 0)
			return r;
	}
	if (g->ret_etag) {
		*g->ret_etag = strdup(row->etag);
		if (!*g->ret_etag)
			return -ENOMEM;
	}
	if (g->ret_doc)
		*g->ret_doc = TAKE_PTR(doc);
	return 0;
}

int store_get(struct store *s, enum store_collection c, const struct store_key *key,
	      json_t **ret_doc, char **ret_etag, struct err *e)
{
	const struct store_collection_info *ci;
	struct key_buf kb;
	struct get_ctx g = {ret_doc, ret_etag, e};
	int r;

	ci = doc_collection(c, e);
	if (!ci)
		return -EINVAL;
	r = key_full(ci, key, &kb, e);
	if (r < 0)
		return r;
	return s->ops->get(s->be, c, kb.ptr, get_row, &g, e);
}

static bool empty(const char *s)
{
	return !s || !s[0];
}

int store_put(struct store *s, const struct store_write *w, char **ret_etag, struct err *e)
{
	const struct store_collection_info *ci;
	struct store_put_args a;
	_cleanup_free_ char *text = NULL, *etag_out = NULL;
	char etag[17], sec[STORE_KEY_MAX + 1];
	struct key_buf kb;
	size_t len;
	int r;

	if (!w)
		return err_set(e, -EINVAL, "store: nothing to write");
	ci = doc_collection(w->coll, e);
	if (!ci)
		return -EINVAL;
	r = key_full(ci, &w->key, &kb, e);
	if (r < 0)
		return r;
	if (!json_is_object(w->doc))
		return err_set(e, -EINVAL, "%s: the document must be a JSON object", ci->name);
	if (w->create_only && w->if_match)
		return err_set(e, -EINVAL, "%s: create-only and If-Match exclude each other",
			       ci->name);
	if (w->if_match && empty(w->if_match))
		return err_set(e, -EINVAL, "%s: If-Match is empty", ci->name);
	if (w->secondary) {
		if (!ci->has_secondary)
			return err_set(e, -EINVAL, "%s: no secondary key in this collection",
				       ci->name);
		r = key_part(ci, PART_SECONDARY, w->secondary, false, false, sec, e);
		if (r < 0)
			return r;
	}
	text = json_dumps(w->doc, JSON_COMPACT);
	if (!text)
		return -ENOMEM;
	len = strlen(text);
	if (len > s->limit[w->coll])
		return err_set(e, -E2BIG, "%s: the document is %zu bytes, the limit is %zu",
			       ci->name, len, s->limit[w->coll]);
	r = new_etag(etag);
	if (r < 0)
		return err_set(e, r, "store: no random bytes for an etag");
	if (ret_etag) {
		etag_out = strdup(etag);
		if (!etag_out)
			return -ENOMEM;
	}
	a = (struct store_put_args){
	    .coll = w->coll,
	    .secondary = w->secondary ? sec : NULL,
	    .doc = text,
	    .doc_len = len,
	    .if_match = w->if_match,
	    .create_only = w->create_only,
	    .etag = etag,
	};
	memcpy(a.key, kb.ptr, sizeof(a.key));
	r = s->ops->put(s->be, &a, e);
	if (r < 0)
		return r;
	if (ret_etag)
		*ret_etag = TAKE_PTR(etag_out);
	return 0;
}

int store_delete(struct store *s, enum store_collection c, const struct store_key *key,
		 const char *if_match, struct err *e)
{
	const struct store_collection_info *ci;
	struct key_buf kb;
	int r;

	ci = doc_collection(c, e);
	if (!ci)
		return -EINVAL;
	r = key_full(ci, key, &kb, e);
	if (r < 0)
		return r;
	if (if_match && empty(if_match))
		return err_set(e, -EINVAL, "%s: If-Match is empty", ci->name);
	return s->ops->del(s->be, c, kb.ptr, if_match, e);
}

/* ---- listing ---- */

static void item_clear(struct store_item *it)
{
	for (unsigned i = 0; i < STORE_KEY_PARTS; i++)
		free(it->key[i]);
	free(it->secondary);
	free(it->etag);
	json_decref(it->doc);
}

void store_page_free(struct store_page *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n; i++)
		item_clear(&p->items[i]);
	free(p->items);
	free(p->continuation);
	free(p);
}

/* An empty page with room for n items; NULL on -ENOMEM. */
static struct store_page *page_new(size_t n)
{
	struct store_page *p = calloc(1, sizeof(*p));

	if (p) {
		p->items = calloc(n, sizeof(*p->items));
		if (!p->items) {
			free(p);
			return NULL;
		}
	}
	return p;
}

struct list_ctx {
	const struct store_selection *sel;
	struct store_page *page;
	size_t page_size;
	bool more;
	struct err *e;
};

static int list_row(void *userdata, const struct store_row *row)
{
	struct list_ctx *l = userdata;
	struct store_item *it;
	int r;

	if (l->page->n == l->page_size) {
		/* The one row past the page: there is a next page, and it
		 * starts after the last item kept. */
		l->more = true;
		return 0;
	}
	it = &l->page->items[l->page->n];
	*it = (struct store_item){0};
	r = parse_doc(row->doc, row->doc_len, &it->doc, l->e);
	if (r < 0)
		return r;
	l->page->n++; /* counted now so that a failure below frees it */
	for (unsigned i = 0; i < STORE_KEY_PARTS; i++) {
		if (!row->key[i])
			continue;
		it->key[i] = strdup(row->key[i]);
		if (!it->key[i])
			return -ENOMEM;
	}
	it->etag = strdup(row->etag);
	if (!it->etag)
		return -ENOMEM;
	if (row->secondary) {
		it->secondary = strdup(row->secondary);
		if (!it->secondary)
			return -ENOMEM;
	}
	return 0;
}

static size_t clamp_page(size_t n)
{
	if (n == 0)
		return STORE_PAGE_DEFAULT;
	return n > STORE_PAGE_MAX ? STORE_PAGE_MAX : n;
}

int store_list(struct store *s, const struct store_query *q, struct store_page **ret, struct err *e)
{
	_cleanup_store_page_ struct store_page *page = NULL;
	struct store_selection sel;
	struct key_buf kb, after;
	struct list_ctx l;
	int r;

	r = selection(q, &sel, &kb, e);
	if (r < 0)
		return r;
	if (!empty(q->continuation)) {
		r = token_decode(&sel, q->continuation, &after, e);
		if (r < 0)
			return r;
	}
	l = (struct list_ctx){.sel = &sel, .page_size = clamp_page(q->page_size), .e = e};
	page = page_new(l.page_size);
	if (!page)
		return -ENOMEM;
	l.page = page;
	r = s->ops->list(s->be, &sel, empty(q->continuation) ? NULL : after.ptr, l.page_size + 1,
			 list_row, &l, e);
	if (r < 0)
		return r;
	if (l.more) {
		const struct store_item *last = &page->items[page->n - 1];
		struct store_row row = {.key = {last->key[0], last->key[1], last->key[2]}};

		r = token_encode(&sel, &row, &page->continuation);
		if (r < 0)
			return r;
	}
	*ret = TAKE_PTR(page);
	return 0;
}

int store_count(struct store *s, const struct store_query *q, uint64_t *ret_count, struct err *e)
{
	struct store_selection sel;
	struct key_buf kb;
	int r;

	r = selection(q, &sel, &kb, e);
	if (r < 0)
		return r;
	return s->ops->count(s->be, &sel, ret_count, e);
}

int store_delete_matching(struct store *s, const struct store_query *q, uint64_t *ret_deleted,
			  struct err *e)
{
	struct store_selection sel;
	struct key_buf kb;
	uint64_t n = 0;
	int r;

	r = selection(q, &sel, &kb, e);
	if (r < 0)
		return r;
	if (sel.nprefix == 0 && !sel.secondary)
		return err_set(e, -EINVAL,
			       "%s: deleting needs a key prefix or a secondary key, not the whole "
			       "collection",
			       store_collection_name(q->coll));
	r = s->ops->delete_matching(s->be, &sel, &n, e);
	if (r < 0)
		return r;
	if (ret_deleted)
		*ret_deleted = n;
	return 0;
}

/* ---- transactions ---- */

int store_tx_begin(struct store *s, struct err *e)
{
	return s->ops->tx_begin(s->be, e);
}

int store_tx_commit(struct store *s, struct err *e)
{
	return s->ops->tx_commit(s->be, e);
}

int store_tx_rollback(struct store *s, struct err *e)
{
	return s->ops->tx_rollback(s->be, e);
}

unsigned store_tx_depth(const struct store *s)
{
	return s->ops->tx_depth(s->be);
}

/* ---- telemetry ---- */

static int device_key(const char *hub, const char *device_id, struct key_buf *kb, struct err *e)
{
	return key_full(&collections[STORE_TELEMETRY], STORE_KEY(hub, device_id), kb, e);
}

int store_telemetry_append(struct store *s, const char *hub, const char *device_id,
			   const struct store_message *m, uint64_t *ret_seq, struct err *e)
{
	_cleanup_free_ char *props = NULL;
	size_t props_len = 0;
	struct key_buf kb;
	uint64_t seq;
	int r;

	r = device_key(hub, device_id, &kb, e);
	if (r < 0)
		return r;
	if (!m || (m->body_len > 0 && !m->body))
		return err_set(e, -EINVAL, "telemetry: no message given");
	if (m->body_len > s->limit[STORE_TELEMETRY])
		return err_set(e, -E2BIG, "telemetry: the body is %zu bytes, the limit is %zu",
			       m->body_len, s->limit[STORE_TELEMETRY]);
	if (m->properties) {
		if (!json_is_object(m->properties))
			return err_set(e, -EINVAL, "telemetry: properties must be a JSON object");
		props = json_dumps(m->properties, JSON_COMPACT);
		if (!props)
			return -ENOMEM;
		props_len = strlen(props);
		if (props_len > STORE_TELEMETRY_PROPERTIES_MAX)
			return err_set(e, -E2BIG,
				       "telemetry: the properties are %zu bytes, the limit is %d",
				       props_len, STORE_TELEMETRY_PROPERTIES_MAX);
	}
	r = s->ops->telemetry_append(s->be, kb.ptr[0], kb.ptr[1], m->enqueued_ms, props, props_len,
				     m->body, m->body_len, &seq, e);
	if (r < 0)
		return r;
	if (ret_seq)
		*ret_seq = seq;
	return 0;
}

void store_messages_free(struct store_messages *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n; i++) {
		json_decref(l->items[i].properties);
		free(l->items[i].body);
	}
	free(l->items);
	free(l);
}

/* An empty list with room for max messages; NULL on -ENOMEM. */
static struct store_messages *messages_new(size_t max)
{
	struct store_messages *l = calloc(1, sizeof(*l));

	if (l) {
		l->items = calloc(max, sizeof(*l->items));
		if (!l->items) {
			free(l);
			return NULL;
		}
	}
	return l;
}

struct msg_ctx {
	struct store_messages *list;
	size_t max;
	struct err *e;
};

static int message_row(void *userdata, const struct store_message_row *row)
{
	struct msg_ctx *mc = userdata;
	struct store_message *m;
	int r;

	if (mc->list->n == mc->max)
		return 0;
	m = &mc->list->items[mc->list->n++];
	*m = (struct store_message){.seq = row->seq, .enqueued_ms = row->enqueued_ms};
	if (row->properties) {
		r = parse_doc(row->properties, row->properties_len, &m->properties, mc->e);
		if (r < 0)
			return r;
	}
	/* One byte more than needed, so that an empty body is not NULL. */
	m->body = malloc(row->body_len + 1);
	if (!m->body)
		return -ENOMEM;
	if (row->body_len > 0)
		memcpy(m->body, row->body, row->body_len);
	m->body_len = row->body_len;
	return 0;
}

int store_telemetry_list(struct store *s, const char *hub, const char *device_id, size_t max,
			 struct store_messages **ret, struct err *e)
{
	_cleanup_store_messages_ struct store_messages *l = NULL;
	struct key_buf kb;
	struct msg_ctx mc;
	int r;

	r = device_key(hub, device_id, &kb, e);
	if (r < 0)
		return r;
	max = clamp_page(max);
	l = messages_new(max);
	if (!l)
		return -ENOMEM;
	mc = (struct msg_ctx){.list = l, .max = max, .e = e};
	r = s->ops->telemetry_list(s->be, kb.ptr[0], kb.ptr[1], max, message_row, &mc, e);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(l);
	return 0;
}

int store_telemetry_prune(struct store *s, int64_t before_ms, uint64_t *ret_deleted, struct err *e)
{
	uint64_t n = 0;
	int r;

	r = s->ops->telemetry_prune(s->be, before_ms, &n, e);
	if (r < 0)
		return r;
	if (ret_deleted)
		*ret_deleted = n;
	return 0;
}

int store_check(struct store *s, struct err *e)
{
	return s->ops->check(s->be, e);
}
