/* SPDX-License-Identifier: MIT */
/*
 * TOML 1.0 parser, and the two writers config apply needs.
 *
 * One forward pass over the document with a cursor that knows its line
 * and column. Before it, the whole document is checked to be UTF-8 with
 * no bare carriage return, so the lexer may take any byte >= 0x80 as part
 * of a valid character and any '\r' as the start of "\r\n".
 *
 * Every value is allocated as a struct tnode whose first member is the
 * public struct toml_value. The extra fields remember how a table came to
 * exist (the redefinition rules depend on it), where it was first defined
 * (for "first at line N") and its depth; tables and arrays (struct tcont)
 * add their capacity and, for tables, a hash index over the keys so that
 * a table with many keys is not searched linearly. The hash is keyed with
 * random bytes drawn once per document, so a document cannot be crafted
 * to make its keys collide.
 *
 * Recursion: value parsing recurses into arrays and inline tables, and
 * toml_free into children. Both are bounded: no container may sit deeper
 * than TOML_MAX_DEPTH, whether it was nested by brackets, braces, dotted
 * keys or table headers.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/toml.h"

enum node_kind {
	KIND_LEAF,
	KIND_TABLE_IMPLICIT, /* created for the parent path of a header: [a.b] creates a */
	KIND_TABLE_HEADER,   /* defined by [a], or an element of [[a]] */
	KIND_TABLE_DOTTED,   /* created by a dotted key: a.b = 1 creates a */
	KIND_TABLE_INLINE,   /* { ... }: complete once closed */
	KIND_ARRAY_STATIC,   /* [ ... ] */
	KIND_ARRAY_TABLES,   /* grown by [[a]] headers */
};

struct tnode {
	struct toml_value v; /* first: every toml_value from this file is a tnode */
	enum node_kind kind;
	unsigned depth;      /* containers only; the root table is 0 */
	struct toml_pos def; /* where it was (explicitly) defined */
};

/* Tables and arrays are allocated as this, leaves as a plain tnode. */
struct tcont {
	struct tnode n;
	size_t cap;       /* allocated items */
	uint32_t *index;  /* tables: open addressing, item index + 1, 0 = free */
	size_t icap;      /* slots in index, a power of two */
	uint64_t seed[2]; /* tables: hash key */
};

/* Tables up to this size are searched linearly. */
#define INDEX_MIN_ITEMS 8
/* Keys and values quoted in messages are cut to this many bytes. */
#define MSG_SNIPPET 80

static struct tnode *node_of(const struct toml_value *v)
{
	return (struct tnode *)v;
}

/* Only for a node whose type is TOML_TABLE or TOML_ARRAY. */
static struct tcont *cont_of(const struct tnode *n)
{
	return (struct tcont *)n;
}

/* ---- Keyed hash (SipHash-1-3) ------------------------------------------ */

static uint64_t rotl64(uint64_t x, unsigned b)
{
	return (x << b) | (x >> (64 - b));
}

static void sip_round(uint64_t v[4])
{
	v[0] += v[1];
	v[1] = rotl64(v[1], 13);
	v[1] ^= v[0];
	v[0] = rotl64(v[0], 32);
	v[2] += v[3];
	v[3] = rotl64(v[3], 16);
	v[3] ^= v[2];
	v[0] += v[3];
	v[3] = rotl64(v[3], 21);
	v[3] ^= v[0];
	v[2] += v[1];
	v[1] = rotl64(v[1], 17);
	v[1] ^= v[2];
	v[2] = rotl64(v[2], 32);
}

static uint64_t key_hash(const uint64_t k[2], const char *s, size_t len)
{
	const uint8_t *in = (const uint8_t *)s;
	uint64_t v[4] = {
	    k[0] ^ UINT64_C(0x736f6d6570736575),
	    k[1] ^ UINT64_C(0x646f72616e646f6d),
	    k[0] ^ UINT64_C(0x6c7967656e657261),
	    k[1] ^ UINT64_C(0x7465646279746573),
	};
	size_t left = len;
	uint64_t m;

	for (; left >= 8; in += 8, left -= 8) {
		m = 0;
		for (unsigned i = 0; i < 8; i++)
			m |= (uint64_t)in[i] << (8 * i);
		v[3] ^= m;
		sip_round(v);
		v[0] ^= m;
	}
	m = (uint64_t)len << 56;
	for (unsigned i = 0; i < left; i++)
		m |= (uint64_t)in[i] << (8 * i);
	v[3] ^= m;
	sip_round(v);
	v[0] ^= m;
	v[2] ^= 0xff;
	sip_round(v);
	sip_round(v);
	sip_round(v);
	return v[0] ^ v[1] ^ v[2] ^ v[3];
}

/* One key per document, shared by its tables. */
static void random_seed(uint64_t seed[2])
{
	static uint64_t counter;
	struct timespec ts;

	if (getrandom(seed, 2 * sizeof(uint64_t), GRND_NONBLOCK) == 2 * sizeof(uint64_t))
		return;
	/* No entropy yet (early boot): still differ per run. */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	seed[0] = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)getpid();
	seed[1] = (uint64_t)(uintptr_t)seed ^ __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED);
}

/* ---- Nodes ---------------------------------------------------------------- */

static struct tnode *leaf_new(enum toml_type type, struct toml_pos pos)
{
	struct tnode *n = calloc(1, sizeof(*n));

	if (!n)
		return NULL;
	n->v.type = type;
	n->v.pos = pos;
	n->kind = KIND_LEAF;
	n->def = pos;
	return n;
}

/* A table or an array; seed is the document's hash key. */
static struct tnode *container_new(enum toml_type type, enum node_kind kind, struct toml_pos pos,
				   unsigned depth, const uint64_t seed[2])
{
	struct tcont *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->n.v.type = type;
	c->n.v.pos = pos;
	c->n.kind = kind;
	c->n.depth = depth;
	c->n.def = pos;
	c->seed[0] = seed[0];
	c->seed[1] = seed[1];
	return &c->n;
}

void toml_free(struct toml_value *v)
{
	struct tnode *n;

	if (!v)
		return;
	n = node_of(v);
	switch (v->type) {
	case TOML_STRING:
		free(v->str.ptr);
		break;
	case TOML_DATETIME:
	case TOML_DATETIME_LOCAL:
	case TOML_DATE_LOCAL:
	case TOML_TIME_LOCAL:
		free(v->datetime);
		break;
	case TOML_ARRAY:
		/* Depth is bounded by TOML_MAX_DEPTH, so this recursion is too. */
		for (size_t i = 0; i < v->array.n; i++)
			toml_free(v->array.items[i]);
		free(v->array.items);
		break;
	case TOML_TABLE:
		for (size_t i = 0; i < v->table.n; i++) {
			free(v->table.items[i].key);
			toml_free(v->table.items[i].value);
		}
		free(v->table.items);
		free(cont_of(n)->index);
		break;
	default:
		break;
	}
	free(n);
}

static void node_freep(struct tnode **n)
{
	if (*n)
		toml_free(&(*n)->v);
}
#define _cleanup_node_ _cleanup_(node_freep)

static bool key_eq(const struct toml_kv *kv, const char *key, size_t len)
{
	return kv->keylen == len && memcmp(kv->key, key, len) == 0;
}

static struct toml_kv *table_lookup(const struct tnode *t, const char *key, size_t len)
{
	const struct tcont *c = cont_of(t);
	struct toml_kv *items = t->v.table.items;
	size_t mask, slot;

	if (!c->index) {
		for (size_t i = 0; i < t->v.table.n; i++)
			if (key_eq(&items[i], key, len))
				return &items[i];
		return NULL;
	}
	mask = c->icap - 1;
	for (slot = key_hash(c->seed, key, len) & mask; c->index[slot]; slot = (slot + 1) & mask) {
		struct toml_kv *kv = &items[c->index[slot] - 1];

		if (key_eq(kv, key, len))
			return kv;
	}
	return NULL;
}

static void index_put(uint32_t *index, size_t icap, const uint64_t seed[2],
		      const struct toml_kv *kv, size_t i)
{
	size_t mask = icap - 1, slot;

	for (slot = key_hash(seed, kv->key, kv->keylen) & mask; index[slot];
	     slot = (slot + 1) & mask)
		;
	index[slot] = (uint32_t)(i + 1);
}

/* Make room for one more item, in the array and in the index. Nothing
 * observable changes on failure. */
static int table_reserve(struct tnode *tn)
{
	struct tcont *t = cont_of(tn);
	size_t n = t->n.v.table.n;

	if (n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 4;
		struct toml_kv *items;

		if (cap > SIZE_MAX / sizeof(*items) || cap > UINT32_MAX - 1)
			return -ENOMEM;
		items = realloc(t->n.v.table.items, cap * sizeof(*items));
		if (!items)
			return -ENOMEM;
		t->n.v.table.items = items;
		t->cap = cap;
	}
	if (n + 1 > INDEX_MIN_ITEMS && (n + 1) * 2 > t->icap) {
		size_t icap = t->icap ? t->icap * 2 : 64;
		uint32_t *index;

		while ((n + 1) * 2 > icap)
			icap *= 2;
		index = calloc(icap, sizeof(*index));
		if (!index)
			return -ENOMEM;
		for (size_t i = 0; i < n; i++)
			index_put(index, icap, t->seed, &t->n.v.table.items[i], i);
		free(t->index);
		t->index = index;
		t->icap = icap;
	}
	return 0;
}

/* Add key = val to t. On success t owns val; on failure the caller still does. */
static int table_append(struct tnode *tn, const char *key, size_t len, struct toml_pos key_pos,
			struct tnode *val)
{
	struct tcont *t = cont_of(tn);
	struct toml_kv *kv;
	char *k;
	int r;

	r = table_reserve(tn);
	if (r < 0)
		return r;
	k = malloc(len + 1);
	if (!k)
		return -ENOMEM;
	memcpy(k, key, len);
	k[len] = '\0';
	kv = &t->n.v.table.items[t->n.v.table.n];
	kv->key = k;
	kv->keylen = len;
	kv->key_pos = key_pos;
	kv->value = &val->v;
	if (t->index)
		index_put(t->index, t->icap, t->seed, kv, t->n.v.table.n);
	t->n.v.table.n++;
	return 0;
}

static int array_append(struct tnode *an, struct tnode *item)
{
	struct tcont *a = cont_of(an);
	if (a->n.v.array.n == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 4;
		struct toml_value **items;

		if (cap > SIZE_MAX / sizeof(*items))
			return -ENOMEM;
		items = realloc(a->n.v.array.items, cap * sizeof(*items));
		if (!items)
			return -ENOMEM;
		a->n.v.array.items = items;
		a->cap = cap;
	}
	a->n.v.array.items[a->n.v.array.n++] = &item->v;
	return 0;
}

/* ---- Writers --------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s (at most left bytes), 0 when
 * invalid. Rejects overlong forms, surrogates and code points past U+10FFFF. */
static size_t utf8_seq_len(const uint8_t *s, size_t left)
{
	uint8_t c = s[0], lo = 0x80, hi = 0xBF;
	size_t n;

	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF)
		n = 2;
	else if (c >= 0xE0 && c <= 0xEF)
		n = 3;
	else if (c >= 0xF0 && c <= 0xF4)
		n = 4;
	else
		return 0;
	if (c == 0xE0)
		lo = 0xA0;
	else if (c == 0xED)
		hi = 0x9F;
	else if (c == 0xF0)
		lo = 0x90;
	else if (c == 0xF4)
		hi = 0x8F;
	if (left < n || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (s[i] < 0x80 || s[i] > 0xBF)
			return 0;
	return n;
}

static int format_string(struct buf *out, const char *s, size_t len)
{
	const uint8_t *u = (const uint8_t *)s;
	int r = buf_putc(out, '"');

	for (size_t i = 0; r >= 0 && i < len;) {
		uint8_t c = u[i];
		size_t n;

		switch (c) {
		case '"':
			r = buf_append_str(out, "\\\"");
			break;
		case '\\':
			r = buf_append_str(out, "\\\\");
			break;
		case '\b':
			r = buf_append_str(out, "\\b");
			break;
		case '\t':
			r = buf_append_str(out, "\\t");
			break;
		case '\n':
			r = buf_append_str(out, "\\n");
			break;
		case '\f':
			r = buf_append_str(out, "\\f");
			break;
		case '\r':
			r = buf_append_str(out, "\\r");
			break;
		default:
			if (c < 0x20 || c == 0x7F) {
				r = buf_printf(out, "\\u%04X", c);
				break;
			}
			n = utf8_seq_len(u + i, len - i);
			if (n == 0)
				return -EINVAL;
			r = buf_append(out, u + i, n);
			i += n;
			continue;
		}
		i++;
	}
	if (r < 0)
		return r;
	return buf_putc(out, '"');
}

static bool is_bare_key_char(int c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-';
}

static int format_key(struct buf *out, const char *key, size_t len)
{
	bool bare = len > 0;

	for (size_t i = 0; bare && i < len; i++)
		bare = is_bare_key_char((unsigned char)key[i]);
	if (bare)
		return buf_append(out, key, len);
	return format_string(out, key, len);
}

/* Undo a partial append: a writer either appends all or nothing. */
static int buf_rollback(struct buf *out, size_t len, int r)
{
	if (out->len > len) {
		out->len = len;
		out->data[len] = '\0';
	}
	return r;
}

int toml_format_string(struct buf *out, const char *s, size_t len)
{
	size_t saved = out->len;
	int r = format_string(out, s, len);

	return r < 0 ? buf_rollback(out, saved, r) : 0;
}

int toml_format_key(struct buf *out, const char *key)
{
	size_t saved = out->len;
	int r = format_key(out, key, strlen(key));

	return r < 0 ? buf_rollback(out, saved, r) : 0;
}

const char *toml_type_name(enum toml_type type)
{
	switch (type) {
	case TOML_STRING:
		return "string";
	case TOML_INTEGER:
		return "integer";
	case TOML_FLOAT:
		return "float";
	case TOML_BOOL:
		return "boolean";
	case TOML_DATETIME:
		return "offset date-time";
	case TOML_DATETIME_LOCAL:
		return "local date-time";
	case TOML_DATE_LOCAL:
		return "local date";
	case TOML_TIME_LOCAL:
		return "local time";
	case TOML_ARRAY:
		return "array";
	case TOML_TABLE:
		return "table";
	}
	return "value";
}

static const char *type_with_article(const struct tnode *n)
{
	switch (n->v.type) {
	case TOML_STRING:
		return "a string";
	case TOML_INTEGER:
		return "an integer";
	case TOML_FLOAT:
		return "a float";
	case TOML_BOOL:
		return "a boolean";
	case TOML_DATETIME:
		return "an offset date-time";
	case TOML_DATETIME_LOCAL:
		return "a local date-time";
	case TOML_DATE_LOCAL:
		return "a local date";
	case TOML_TIME_LOCAL:
		return "a local time";
	case TOML_ARRAY:
		return n->kind == KIND_ARRAY_TABLES ? "an array of tables" : "an array";
	case TOML_TABLE:
		return n->kind == KIND_TABLE_INLINE ? "an inline table" : "a table";
	}
	return "a value";
}

/* ---- Lookups ---------------------------------------------------------------- */

const struct toml_kv *toml_table_find(const struct toml_value *table, const char *key)
{
	if (!table || !key || table->type != TOML_TABLE)
		return NULL;
	return table_lookup(node_of(table), key, strlen(key));
}

const struct toml_value *toml_table_get(const struct toml_value *table, const char *key)
{
	const struct toml_kv *kv = toml_table_find(table, key);

	return kv ? kv->value : NULL;
}

/* ---- Parser state ------------------------------------------------------------ */

struct keyseg {
	char *s;
	size_t len;
	struct toml_pos pos;
};

struct keypath {
	struct keyseg *segs;
	size_t n, cap;
};

static void keypath_free(struct keypath *kp)
{
	for (size_t i = 0; i < kp->n; i++)
		free(kp->segs[i].s);
	free(kp->segs);
	kp->segs = NULL;
	kp->n = kp->cap = 0;
}

struct parser {
	const char *s;
	size_t len;
	size_t i;
	unsigned line, col; /* of s[i] */
	const char *filename;
	struct err *e;
	locale_t c_locale;
	struct buf str;   /* scratch for string contents */
	uint64_t seed[2]; /* hash key of the document's tables */
	struct tnode *root;
	struct tnode *cur;       /* table that key/value lines go to */
	struct keypath cur_path; /* its header, for messages */
};

static int peek(const struct parser *p)
{
	return p->i < p->len ? (unsigned char)p->s[p->i] : -1;
}

static int peek_at(const struct parser *p, size_t k)
{
	return p->len - p->i > k ? (unsigned char)p->s[p->i + k] : -1;
}

static void adv(struct parser *p)
{
	unsigned char c = (unsigned char)p->s[p->i++];

	if (c == '\n') {
		p->line++;
		p->col = 1;
	} else if ((c & 0xC0) != 0x80) {
		p->col++;
	}
}

static void adv_n(struct parser *p, size_t n)
{
	while (n--)
		adv(p);
}

static struct toml_pos here(const struct parser *p)
{
	struct toml_pos pos = {p->line, p->col};

	return pos;
}

static bool at_newline(const struct parser *p)
{
	int c = peek(p);

	return c == '\n' || (c == '\r' && peek_at(p, 1) == '\n');
}

static void eat_newline(struct parser *p)
{
	if (peek(p) == '\r')
		adv(p);
	adv(p);
}

static int perr(struct parser *p, struct toml_pos at, const char *fmt, ...) _printf_(3, 4);
static int perr(struct parser *p, struct toml_pos at, const char *fmt, ...)
{
	char msg[ERR_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return err_set(p->e, -EINVAL, "%s:%u:%u: %s", p->filename, at.line, at.col, msg);
}

static int pfail(struct parser *p, int r)
{
	if (r == -ENOMEM)
		return err_set(p->e, r, "%s: out of memory", p->filename);
	return err_set(p->e, r, "%s: %s", p->filename, strerror(-r));
}

static int depth_error(struct parser *p, struct toml_pos at)
{
	return perr(p, at, "nesting deeper than %d levels", TOML_MAX_DEPTH);
}

/* Code point of the valid UTF-8 sequence at s. */
static uint32_t utf8_decode(const uint8_t *s, size_t n)
{
	uint32_t cp;

	if (n == 1)
		return s[0];
	cp = s[0] & (0x7F >> n);
	for (size_t i = 1; i < n; i++)
		cp = (cp << 6) | (s[i] & 0x3F);
	return cp;
}

/* What stands at the cursor, for "got X" in messages. */
static const char *describe_here(const struct parser *p, char *buf, size_t size)
{
	int c = peek(p);

	if (c < 0)
		return "end of file";
	if (at_newline(p))
		return "end of line";
	if (c >= 0x80) {
		const uint8_t *u = (const uint8_t *)p->s + p->i;
		size_t n = utf8_seq_len(u, p->len - p->i);

		snprintf(buf, size, "'%.*s' (U+%04" PRIX32 ")", (int)n, (const char *)u,
			 utf8_decode(u, n));
	} else if (c < 0x20 || c == 0x7F) {
		snprintf(buf, size, "U+%04X", (unsigned)c);
	} else {
		snprintf(buf, size, "'%c'", c);
	}
	return buf;
}

#define DESCRIBE(p) describe_here((p), (char[32]){0}, 32)

/* Cut s to at most MSG_SNIPPET bytes on a character boundary. */
static int snippet_len(const char *s, size_t len)
{
	size_t n = len;

	if (n > MSG_SNIPPET) {
		n = MSG_SNIPPET;
		while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
			n--;
	}
	return (int)n;
}

/* A key path for messages, as one quoted string: "a.b.c". */
static const char *render_key(char *out, size_t size, const struct keyseg *segs, size_t n)
{
	_cleanup_buf_ struct buf joined = {0}, quoted = {0};
	int r = 0;

	buf_init(&joined, 0);
	buf_init(&quoted, 0);
	for (size_t i = 0; r >= 0 && i < n; i++) {
		if (i > 0)
			r = buf_putc(&joined, '.');
		if (r >= 0)
			r = buf_append(&joined, segs[i].s, segs[i].len);
	}
	if (r >= 0)
		r = format_string(&quoted, joined.data ? joined.data : "", joined.len);
	if (r < 0) {
		snprintf(out, size, "(key)");
		return out;
	}
	if (quoted.len > MSG_SNIPPET + 2)
		snprintf(out, size, "%.*s...\"", snippet_len(quoted.data, quoted.len), quoted.data);
	else
		snprintf(out, size, "%s", quoted.data);
	return out;
}

/* A table name for messages, in header syntax: a."b c".d, the parts of
 * prefix first, then those of segs. */
static const char *render_table(char *out, size_t size, const struct keypath *prefix,
				const struct keyseg *segs, size_t n)
{
	_cleanup_buf_ struct buf b = {0};
	size_t np = prefix ? prefix->n : 0;
	int r = 0;

	buf_init(&b, 0);
	for (size_t i = 0; r >= 0 && i < np + n; i++) {
		const struct keyseg *seg = i < np ? &prefix->segs[i] : &segs[i - np];

		if (i > 0)
			r = buf_putc(&b, '.');
		if (r >= 0)
			r = format_key(&b, seg->s, seg->len);
	}
	if (r < 0) {
		snprintf(out, size, "(table)");
		return out;
	}
	if (b.len > MSG_SNIPPET)
		snprintf(out, size, "%.*s...", snippet_len(b.data, b.len), b.data);
	else
		snprintf(out, size, "%s", b.data ? b.data : "");
	return out;
}

#define NAME_MAX_LEN (MSG_SNIPPET + 16)
#define KEY(segs, n) render_key((char[NAME_MAX_LEN]){0}, NAME_MAX_LEN, (segs), (n))
#define TABLE(prefix, segs, n)                                                                     \
	render_table((char[NAME_MAX_LEN]){0}, NAME_MAX_LEN, (prefix), (segs), (n))

/* ---- Whole-document checks ------------------------------------------------------ */

static int check_document(struct parser *p)
{
	const uint8_t *u = (const uint8_t *)p->s;
	struct toml_pos pos = {1, 1};
	size_t i = p->i;

	while (i < p->len) {
		size_t n;

		if (u[i] == '\n') {
			pos.line++;
			pos.col = 1;
			i++;
			continue;
		}
		if (u[i] == '\r' && (i + 1 == p->len || u[i + 1] != '\n'))
			return perr(p, pos, "carriage return not followed by a line feed");
		n = utf8_seq_len(u + i, p->len - i);
		if (n == 0)
			return perr(p, pos, "the document is not valid UTF-8 (byte 0x%02X)", u[i]);
		i += n;
		pos.col++;
	}
	return 0;
}

/* Line and column of byte offset off (for the size limit message). */
static struct toml_pos pos_of_offset(const char *s, size_t off)
{
	struct toml_pos pos = {1, 1};

	for (size_t i = 0; i < off; i++) {
		if (s[i] == '\n') {
			pos.line++;
			pos.col = 1;
		} else if (((unsigned char)s[i] & 0xC0) != 0x80) {
			pos.col++;
		}
	}
	return pos;
}

/* ---- Whitespace, comments, newlines ------------------------------------------------ */

static void skip_ws(struct parser *p)
{
	int c;

	while ((c = peek(p)) == ' ' || c == '\t')
		adv(p);
}

static bool is_control(int c)
{
	return (c >= 0 && c < 0x20 && c != '\t') || c == 0x7F;
}

/* At '#': consume the comment, not the newline that ends it. */
static int skip_comment(struct parser *p)
{
	adv(p);
	for (;;) {
		int c = peek(p);

		if (c < 0 || at_newline(p))
			return 0;
		if (is_control(c))
			return perr(p, here(p),
				    "control character U+%04X is not allowed in a comment",
				    (unsigned)c);
		adv(p);
	}
}

/* Whitespace, newlines and comments, as allowed between array elements. */
static int skip_ws_comments_newlines(struct parser *p)
{
	for (;;) {
		int c = peek(p);

		if (c == ' ' || c == '\t') {
			adv(p);
		} else if (at_newline(p)) {
			eat_newline(p);
		} else if (c == '#') {
			int r = skip_comment(p);

			if (r < 0)
				return r;
		} else {
			return 0;
		}
	}
}

/* After a key/value pair or a header: an optional comment, then the end of
 * the line or of the document. */
static int expect_eol(struct parser *p, const char *after)
{
	skip_ws(p);
	if (peek(p) == '#') {
		int r = skip_comment(p);

		if (r < 0)
			return r;
	}
	if (peek(p) < 0)
		return 0;
	if (at_newline(p)) {
		eat_newline(p);
		return 0;
	}
	return perr(p, here(p), "expected end of line after %s, got %s", after, DESCRIBE(p));
}

/* ---- Strings ----------------------------------------------------------------- */

static int hex_value(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int append_utf8(struct buf *b, uint32_t cp)
{
	char out[4];
	size_t n;

	if (cp < 0x80) {
		out[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		out[0] = (char)(0xC0 | (cp >> 6));
		out[1] = (char)(0x80 | (cp & 0x3F));
		n = 2;
	} else if (cp < 0x10000) {
		out[0] = (char)(0xE0 | (cp >> 12));
		out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		out[2] = (char)(0x80 | (cp & 0x3F));
		n = 3;
	} else {
		out[0] = (char)(0xF0 | (cp >> 18));
		out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
		out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
		out[3] = (char)(0x80 | (cp & 0x3F));
		n = 4;
	}
	return buf_append(b, out, n);
}

/* At '\\' inside a basic string: decode one escape into p->str. */
static int parse_escape(struct parser *p)
{
	struct toml_pos at = here(p);
	int c, r = 0;

	adv(p);
	c = peek(p);
	switch (c) {
	case 'b':
		r = buf_putc(&p->str, '\b');
		break;
	case 't':
		r = buf_putc(&p->str, '\t');
		break;
	case 'n':
		r = buf_putc(&p->str, '\n');
		break;
	case 'f':
		r = buf_putc(&p->str, '\f');
		break;
	case 'r':
		r = buf_putc(&p->str, '\r');
		break;
	case '"':
		r = buf_putc(&p->str, '"');
		break;
	case '\\':
		r = buf_putc(&p->str, '\\');
		break;
	case 'u':
	case 'U': {
		unsigned digits = c == 'u' ? 4 : 8;
		uint32_t cp = 0;

		for (unsigned k = 0; k < digits; k++) {
			int h = hex_value(peek_at(p, 1 + k));

			if (h < 0)
				return perr(
				    p, at,
				    "invalid escape sequence: \\%c needs %u hexadecimal digits", c,
				    digits);
			cp = (cp << 4) | (uint32_t)h;
		}
		if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			return perr(p, at,
				    "invalid escape sequence '\\%c%.*s': U+%04" PRIX32
				    " is not a Unicode scalar value",
				    c, (int)digits, p->s + p->i + 1, cp);
		r = append_utf8(&p->str, cp);
		adv_n(p, digits);
		break;
	}
	default:
		if (c > 0x20 && c < 0x7F)
			return perr(p, at, "invalid escape sequence '\\%c' in string", c);
		return perr(p, at, "invalid escape sequence in string: '\\' followed by %s",
			    DESCRIBE(p));
	}
	if (r < 0)
		return pfail(p, r);
	adv(p);
	return 0;
}

static int string_control_error(struct parser *p, int c, bool literal)
{
	if (literal)
		return perr(p, here(p),
			    "control character U+%04X is not allowed in a literal string",
			    (unsigned)c);
	return perr(p, here(p),
		    "control character U+%04X is not allowed in a string; write it as an escape "
		    "sequence",
		    (unsigned)c);
}

/* Append the run of ordinary characters at the cursor to p->str. stop
 * lists the bytes that end a run besides controls. */
static int take_run(struct parser *p, const char *stop)
{
	size_t start = p->i;

	for (;;) {
		int c = peek(p);

		if (c < 0 || is_control(c) || strchr(stop, c))
			break;
		adv(p);
	}
	if (p->i > start) {
		int r = buf_append(&p->str, p->s + start, p->i - start);

		if (r < 0)
			return pfail(p, r);
	}
	return 0;
}

/* A one-line string, basic (") or literal ('), into p->str. */
static int parse_line_string(struct parser *p)
{
	struct toml_pos open = here(p);
	bool literal = peek(p) == '\'';
	int r;

	adv(p);
	for (;;) {
		int c;

		r = take_run(p, literal ? "'" : "\"\\");
		if (r < 0)
			return r;
		c = peek(p);
		if (c < 0)
			return perr(p, open, "unterminated string: missing closing %s",
				    literal ? "\"'\"" : "'\"'");
		if (at_newline(p))
			return perr(p, open,
				    "string is not closed before the end of the line (use %s for a "
				    "multi-line string)",
				    literal ? "'''" : "\"\"\"");
		if ((c == '\'' && literal) || (c == '"' && !literal)) {
			adv(p);
			return 0;
		}
		if (c == '\\') {
			r = parse_escape(p);
			if (r < 0)
				return r;
			continue;
		}
		return string_control_error(p, c, literal);
	}
}

/* A multi-line string (""" or '''), into p->str. */
static int parse_multiline_string(struct parser *p)
{
	struct toml_pos open = here(p);
	int q = peek(p);
	bool literal = q == '\'';
	int r;

	adv_n(p, 3);
	/* A newline right after the opening delimiter is trimmed. */
	if (at_newline(p))
		eat_newline(p);
	for (;;) {
		size_t quotes = 0;
		int c;

		r = take_run(p, literal ? "'\r\n" : "\"\\\r\n");
		if (r < 0)
			return r;
		c = peek(p);
		if (c < 0)
			return perr(p, open, "unterminated multi-line string: missing closing %s",
				    literal ? "'''" : "\"\"\"");
		if (c == q) {
			while (peek_at(p, quotes) == q)
				quotes++;
			if (quotes < 3) {
				r = buf_append(&p->str, p->s + p->i, quotes);
				if (r < 0)
					return pfail(p, r);
				adv_n(p, quotes);
				continue;
			}
			if (quotes > 5)
				return perr(p, here(p),
					    "too many quotes at the end of a multi-line string (at "
					    "most two may stand before the closing %s)",
					    literal ? "'''" : "\"\"\"");
			/* Up to two quotes before the delimiter belong to the string. */
			r = buf_append(&p->str, p->s + p->i, quotes - 3);
			if (r < 0)
				return pfail(p, r);
			adv_n(p, quotes);
			return 0;
		}
		if (at_newline(p)) {
			/* "\r\n" is stored as "\n": values do not depend on the
			 * line endings of the file. */
			eat_newline(p);
			r = buf_putc(&p->str, '\n');
			if (r < 0)
				return pfail(p, r);
			continue;
		}
		if (c == '\\') {
			size_t k = 1;
			int d;

			/* A backslash ending a line (trailing blanks allowed)
			 * swallows the newline and the whitespace after it. */
			while ((d = peek_at(p, k)) == ' ' || d == '\t')
				k++;
			if (d == '\n' || (d == '\r' && peek_at(p, k + 1) == '\n')) {
				adv_n(p, k);
				for (;;) {
					d = peek(p);
					if (d == ' ' || d == '\t')
						adv(p);
					else if (at_newline(p))
						eat_newline(p);
					else
						break;
				}
				continue;
			}
			r = parse_escape(p);
			if (r < 0)
				return r;
			continue;
		}
		return string_control_error(p, c, literal);
	}
}

/* Copy p->str into a new string value. */
static int string_node(struct parser *p, struct toml_pos pos, struct tnode **ret)
{
	struct tnode *n = leaf_new(TOML_STRING, pos);

	if (!n)
		return pfail(p, -ENOMEM);
	n->v.str.ptr = malloc(p->str.len + 1);
	if (!n->v.str.ptr) {
		free(n);
		return pfail(p, -ENOMEM);
	}
	if (p->str.len)
		memcpy(n->v.str.ptr, p->str.data, p->str.len);
	n->v.str.ptr[p->str.len] = '\0';
	n->v.str.len = p->str.len;
	*ret = n;
	return 0;
}

/* ---- Keys ---------------------------------------------------------------------- */

static bool is_key_start(int c)
{
	return is_bare_key_char(c) || c == '"' || c == '\'';
}

static int parse_key(struct parser *p, struct keypath *kp)
{
	for (;;) {
		struct keyseg seg = {.pos = here(p)};
		int c = peek(p);

		/* At most TOML_MAX_DEPTH tables and the key of a value in the
		 * deepest one; the tables' depth is checked as they are made. */
		if (kp->n > TOML_MAX_DEPTH)
			return depth_error(p, seg.pos);
		if (c == '"' || c == '\'') {
			if (peek_at(p, 1) == c && peek_at(p, 2) == c)
				return perr(p, seg.pos, "a key cannot be a multi-line string");
			buf_reset(&p->str);
			int r = parse_line_string(p);
			if (r < 0)
				return r;
			seg.len = p->str.len;
			seg.s = malloc(seg.len + 1);
			if (!seg.s)
				return pfail(p, -ENOMEM);
			if (seg.len)
				memcpy(seg.s, p->str.data, seg.len);
			seg.s[seg.len] = '\0';
		} else if (is_bare_key_char(c)) {
			size_t start = p->i;

			while (is_bare_key_char(peek(p)))
				adv(p);
			seg.len = p->i - start;
			seg.s = strndup(p->s + start, seg.len);
			if (!seg.s)
				return pfail(p, -ENOMEM);
		} else {
			return perr(p, seg.pos, "expected a key, got %s", DESCRIBE(p));
		}
		if (kp->n == kp->cap) {
			size_t cap = kp->cap ? kp->cap * 2 : 4;
			struct keyseg *segs = realloc(kp->segs, cap * sizeof(*segs));

			if (!segs) {
				free(seg.s);
				return pfail(p, -ENOMEM);
			}
			kp->segs = segs;
			kp->cap = cap;
		}
		kp->segs[kp->n++] = seg;
		skip_ws(p);
		if (peek(p) != '.')
			return 0;
		adv(p);
		skip_ws(p);
	}
}

/* ---- Scalars -------------------------------------------------------------------- */

static bool is_digit(int c)
{
	return c >= '0' && c <= '9';
}

static bool is_token_char(int c)
{
	return is_bare_key_char(c) || c == '+' || c == '.' || c == ':';
}

static bool digits_at(const char *s, size_t len, size_t at, size_t n)
{
	if (at + n > len)
		return false;
	for (size_t i = at; i < at + n; i++)
		if (!is_digit((unsigned char)s[i]))
			return false;
	return true;
}

static bool looks_like_date(const char *s, size_t len)
{
	return digits_at(s, len, 0, 4) && len > 4 && s[4] == '-';
}

static bool looks_like_time(const char *s, size_t len)
{
	return digits_at(s, len, 0, 2) && len > 2 && s[2] == ':';
}

static unsigned two_digits(const char *s)
{
	return (unsigned)(s[0] - '0') * 10 + (unsigned)(s[1] - '0');
}

static unsigned days_in_month(unsigned year, unsigned month)
{
	static const unsigned days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;

	return month == 2 && leap ? 29 : days[month - 1];
}

/* Parse a date/time token; on failure *why says what is wrong. */
static int datetime_scan(const char *s, size_t len, enum toml_type *ret_type, struct buf *out,
			 const char **why)
{
	bool have_date = false;
	size_t i = 0;
	int r;

	if (looks_like_date(s, len)) {
		unsigned year, month, day;

		if (!digits_at(s, len, 5, 2) || len < 8 || s[7] != '-' ||
		    !digits_at(s, len, 8, 2) || (len > 10 && is_digit((unsigned char)s[10]))) {
			*why = "expected a date as YYYY-MM-DD";
			return -EINVAL;
		}
		year = two_digits(s) * 100 + two_digits(s + 2);
		month = two_digits(s + 5);
		day = two_digits(s + 8);
		if (month < 1 || month > 12) {
			*why = "month out of range (01-12)";
			return -EINVAL;
		}
		if (day < 1 || day > days_in_month(year, month)) {
			*why = "day out of range for the month";
			return -EINVAL;
		}
		have_date = true;
		r = buf_append(out, s, 10);
		if (r < 0)
			return r;
		i = 10;
		if (i == len) {
			*ret_type = TOML_DATE_LOCAL;
			return 0;
		}
		if (s[i] != 'T' && s[i] != 't' && s[i] != ' ') {
			*why = "expected 'T' or a space between the date and the time";
			return -EINVAL;
		}
		i++;
		r = buf_putc(out, 'T');
		if (r < 0)
			return r;
	}

	if (!digits_at(s, len, i, 2) || len < i + 3 || s[i + 2] != ':' ||
	    !digits_at(s, len, i + 3, 2) || len < i + 6 || s[i + 5] != ':' ||
	    !digits_at(s, len, i + 6, 2) || (len > i + 8 && is_digit((unsigned char)s[i + 8]))) {
		*why = "expected a time as HH:MM:SS";
		return -EINVAL;
	}
	if (two_digits(s + i) > 23) {
		*why = "hour out of range (00-23)";
		return -EINVAL;
	}
	if (two_digits(s + i + 3) > 59) {
		*why = "minute out of range (00-59)";
		return -EINVAL;
	}
	/* 60 is a leap second. */
	if (two_digits(s + i + 6) > 60) {
		*why = "second out of range (00-60)";
		return -EINVAL;
	}
	size_t start = i;
	i += 8;
	if (i < len && s[i] == '.') {
		i++;
		if (!digits_at(s, len, i, 1)) {
			*why = "expected digits after the decimal point of the seconds";
			return -EINVAL;
		}
		while (i < len && is_digit((unsigned char)s[i]))
			i++;
	}
	r = buf_append(out, s + start, i - start);
	if (r < 0)
		return r;
	if (i == len) {
		*ret_type = have_date ? TOML_DATETIME_LOCAL : TOML_TIME_LOCAL;
		return 0;
	}
	if (!have_date) {
		*why = "a local time cannot have a time zone offset";
		return -EINVAL;
	}
	if ((s[i] == 'Z' || s[i] == 'z') && i + 1 == len) {
		*ret_type = TOML_DATETIME;
		return buf_putc(out, 'Z');
	}
	if ((s[i] == '+' || s[i] == '-') && len == i + 6 && digits_at(s, len, i + 1, 2) &&
	    s[i + 3] == ':' && digits_at(s, len, i + 4, 2)) {
		if (two_digits(s + i + 1) > 23 || two_digits(s + i + 4) > 59) {
			*why = "time zone offset out of range";
			return -EINVAL;
		}
		*ret_type = TOML_DATETIME;
		return buf_append(out, s + i, 6);
	}
	*why = "expected 'Z' or a time zone offset as +HH:MM or -HH:MM after the time";
	return -EINVAL;
}

static int parse_datetime(struct parser *p, const char *tok, size_t len, struct toml_pos pos,
			  struct tnode **ret)
{
	const char *why = "invalid date/time";
	enum toml_type type = TOML_DATETIME;
	struct tnode *n;
	int r;

	buf_reset(&p->str);
	r = datetime_scan(tok, len, &type, &p->str, &why);
	if (r == -EINVAL)
		return perr(p, pos, "invalid date/time '%.*s': %s", snippet_len(tok, len), tok,
			    why);
	if (r < 0)
		return pfail(p, r);
	n = leaf_new(type, pos);
	if (!n)
		return pfail(p, -ENOMEM);
	n->v.datetime = strndup(p->str.data, p->str.len);
	if (!n->v.datetime) {
		free(n);
		return pfail(p, -ENOMEM);
	}
	*ret = n;
	return 0;
}

static bool is_base_digit(int c, unsigned base)
{
	switch (base) {
	case 2:
		return c == '0' || c == '1';
	case 8:
		return c >= '0' && c <= '7';
	case 16:
		return hex_value(c) >= 0;
	default:
		return is_digit(c);
	}
}

/* Digits of the given base with single underscores between them, starting
 * at *i. NULL when fine, otherwise what is wrong. */
static const char *scan_digits(const char *s, size_t len, size_t *i, unsigned base)
{
	if (*i >= len || !is_base_digit((unsigned char)s[*i], base))
		return *i < len && s[*i] == '_' ? "underscores must stand between digits"
						: "expected a digit";
	while (*i < len) {
		int c = (unsigned char)s[*i];

		if (is_base_digit(c, base)) {
			(*i)++;
		} else if (c == '_') {
			if (*i + 1 >= len || !is_base_digit((unsigned char)s[*i + 1], base))
				return "underscores must stand between digits";
			(*i)++;
		} else {
			break;
		}
	}
	return NULL;
}

static int parse_integer(struct parser *p, const char *tok, size_t len, struct toml_pos pos,
			 struct tnode **ret)
{
	const char *why = NULL, *kind = "integer";
	unsigned base = 10;
	bool neg = false;
	uint64_t mag = 0, limit;
	size_t i = 0, start;
	struct tnode *n;

	if (len >= 2 && tok[0] == '0' && (tok[1] == 'x' || tok[1] == 'o' || tok[1] == 'b')) {
		base = tok[1] == 'x' ? 16 : tok[1] == 'o' ? 8 : 2;
		kind = base == 16  ? "hexadecimal integer"
		       : base == 8 ? "octal integer"
				   : "binary integer";
		i = 2;
	} else {
		if (tok[0] == '+' || tok[0] == '-') {
			neg = tok[0] == '-';
			i = 1;
			if (len >= 3 && tok[1] == '0' &&
			    (tok[2] == 'x' || tok[2] == 'o' || tok[2] == 'b'))
				return perr(p, pos,
					    "invalid integer '%.*s': hexadecimal, octal and binary "
					    "integers cannot have a sign",
					    snippet_len(tok, len), tok);
		}
		if (i + 1 < len && tok[i] == '0' &&
		    (is_digit((unsigned char)tok[i + 1]) || tok[i + 1] == '_'))
			return perr(p, pos, "invalid integer '%.*s': leading zeros are not allowed",
				    snippet_len(tok, len), tok);
	}
	start = i;
	why = scan_digits(tok, len, &i, base);
	if (why)
		return perr(p, pos, "invalid %s '%.*s': %s", kind, snippet_len(tok, len), tok, why);
	if (i < len)
		return perr(p, pos, "invalid %s '%.*s': unexpected '%c'", kind,
			    snippet_len(tok, len), tok, tok[i]);
	limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	for (i = start; i < len; i++) {
		unsigned d;

		if (tok[i] == '_')
			continue;
		d = (unsigned)hex_value((unsigned char)tok[i]);
		if (mag > (limit - d) / base)
			return perr(p, pos,
				    "integer '%.*s' is out of range (a 64-bit signed integer holds "
				    "-9223372036854775808 to 9223372036854775807)",
				    snippet_len(tok, len), tok);
		mag = mag * base + d;
	}
	n = leaf_new(TOML_INTEGER, pos);
	if (!n)
		return pfail(p, -ENOMEM);
	if (neg)
		n->v.integer = mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag;
	else
		n->v.integer = (int64_t)mag;
	*ret = n;
	return 0;
}

static int parse_float(struct parser *p, const char *tok, size_t len, struct toml_pos pos,
		       struct tnode **ret)
{
	_cleanup_free_ char *plain = NULL;
	const char *why = NULL;
	size_t i = 0, k = 0;
	struct tnode *n;
	char *end;
	double d;

	if (tok[0] == '+' || tok[0] == '-')
		i = 1;
	if (i < len && tok[i] == '0' && i + 1 < len &&
	    (is_digit((unsigned char)tok[i + 1]) || tok[i + 1] == '_'))
		why = "leading zeros are not allowed";
	if (!why && i < len && tok[i] == '.')
		why = "a decimal point must have digits on both sides";
	if (!why)
		why = scan_digits(tok, len, &i, 10);
	if (!why && i < len && tok[i] == '.') {
		i++;
		if (i >= len || !is_digit((unsigned char)tok[i]))
			why = i < len && tok[i] == '_' ? "underscores must stand between digits"
						       : "a decimal point must have digits on both "
							 "sides";
		else
			why = scan_digits(tok, len, &i, 10);
	}
	if (!why && i < len && (tok[i] == 'e' || tok[i] == 'E')) {
		i++;
		if (i < len && (tok[i] == '+' || tok[i] == '-'))
			i++;
		why = scan_digits(tok, len, &i, 10);
		if (why && strcmp(why, "expected a digit") == 0)
			why = "expected digits in the exponent";
	}
	if (why)
		return perr(p, pos, "invalid float '%.*s': %s", snippet_len(tok, len), tok, why);
	if (i < len)
		return perr(p, pos, "invalid float '%.*s': unexpected '%c'", snippet_len(tok, len),
			    tok, tok[i]);

	plain = malloc(len + 1);
	if (!plain)
		return pfail(p, -ENOMEM);
	for (i = 0; i < len; i++)
		if (tok[i] != '_')
			plain[k++] = tok[i];
	plain[k] = '\0';
	errno = 0;
	d = strtod_l(plain, &end, p->c_locale);
	if (end != plain + k)
		return perr(p, pos, "invalid float '%.*s'", snippet_len(tok, len), tok);
	if (errno == ERANGE && isinf(d))
		return perr(p, pos, "float '%.*s' is out of range", snippet_len(tok, len), tok);
	n = leaf_new(TOML_FLOAT, pos);
	if (!n)
		return pfail(p, -ENOMEM);
	n->v.flt = d;
	*ret = n;
	return 0;
}

/* Booleans, numbers, dates and times: everything that is not quoted or
 * bracketed. The token runs to the first character that cannot be part
 * of any of them, which is always one that may follow a value. */
static int parse_bare_value(struct parser *p, struct tnode **ret)
{
	struct toml_pos pos = here(p);
	const char *tok = p->s + p->i, *body;
	size_t len, blen;
	struct tnode *n;

	while (is_token_char(peek(p)))
		adv(p);
	len = (size_t)(p->s + p->i - tok);
	/* "1979-05-27 07:32:00": a space may separate date and time. */
	if (len == 10 && looks_like_date(tok, len) && peek(p) == ' ' && is_digit(peek_at(p, 1)) &&
	    is_digit(peek_at(p, 2)) && peek_at(p, 3) == ':') {
		adv(p);
		while (is_token_char(peek(p)))
			adv(p);
		len = (size_t)(p->s + p->i - tok);
	}
	if (len == 0)
		return perr(p, pos, "expected a value, got %s", DESCRIBE(p));

	if ((len == 4 && memcmp(tok, "true", 4) == 0) ||
	    (len == 5 && memcmp(tok, "false", 5) == 0)) {
		n = leaf_new(TOML_BOOL, pos);
		if (!n)
			return pfail(p, -ENOMEM);
		n->v.boolean = tok[0] == 't';
		*ret = n;
		return 0;
	}
	body = tok;
	blen = len;
	if (tok[0] == '+' || tok[0] == '-') {
		body++;
		blen--;
	}
	if (blen == 3 && (memcmp(body, "inf", 3) == 0 || memcmp(body, "nan", 3) == 0)) {
		n = leaf_new(TOML_FLOAT, pos);
		if (!n)
			return pfail(p, -ENOMEM);
		if (body[0] == 'i')
			n->v.flt = tok[0] == '-' ? -INFINITY : INFINITY;
		else
			n->v.flt = tok[0] == '-' ? -NAN : NAN;
		*ret = n;
		return 0;
	}
	if (looks_like_date(tok, len) || looks_like_time(tok, len))
		return parse_datetime(p, tok, len, pos, ret);
	if (tok != body && (blen == 0 || (!is_digit((unsigned char)body[0]) && body[0] != '.')))
		return perr(p, pos, "invalid number '%.*s'", snippet_len(tok, len), tok);
	if (!is_digit((unsigned char)tok[0]) && tok[0] != '.' && tok[0] != '_' && tok == body)
		return perr(p, pos,
			    "invalid value '%.*s' (strings must be quoted; booleans are true or "
			    "false)",
			    snippet_len(tok, len), tok);
	/* 0x, 0o, 0b: an integer even with E among its digits. */
	if (!(blen >= 2 && body[0] == '0' &&
	      (body[1] == 'x' || body[1] == 'o' || body[1] == 'b')) &&
	    (memchr(tok, '.', len) || memchr(tok, 'e', len) || memchr(tok, 'E', len)))
		return parse_float(p, tok, len, pos, ret);
	return parse_integer(p, tok, len, pos, ret);
}

/* ---- Tables and the redefinition rules ----------------------------------------- */

static int new_table(struct parser *p, struct tnode *parent, const struct keyseg *seg,
		     enum node_kind kind, struct toml_pos pos, struct tnode **ret)
{
	struct tnode *t;
	int r;

	if (parent->depth + 1 > TOML_MAX_DEPTH)
		return depth_error(p, seg->pos);
	t = container_new(TOML_TABLE, kind, pos, parent->depth + 1, p->seed);
	if (!t)
		return pfail(p, -ENOMEM);
	r = table_append(parent, seg->s, seg->len, seg->pos, t);
	if (r < 0) {
		toml_free(&t->v);
		return pfail(p, r);
	}
	*ret = t;
	return 0;
}

/* For "key = value" in table t: walk (creating) the tables of a dotted key
 * up to the last part, and check the last part is free. */
static int resolve_dotted(struct parser *p, struct tnode *t, const struct keypath *prefix,
			  const struct keypath *kp, struct tnode **ret)
{
	const struct keyseg *segs = kp->segs;
	const struct toml_kv *kv;
	size_t last = kp->n - 1;
	int r;

	for (size_t i = 0; i < last; i++) {
		struct tnode *child;

		kv = table_lookup(t, segs[i].s, segs[i].len);
		if (!kv) {
			r = new_table(p, t, &segs[i], KIND_TABLE_DOTTED, segs[i].pos, &child);
			if (r < 0)
				return r;
			t = child;
			continue;
		}
		child = node_of(kv->value);
		switch (child->kind) {
		case KIND_TABLE_IMPLICIT:
			/* Made by a header for its parent path, not yet defined:
			 * the dotted key defines it. */
			child->kind = KIND_TABLE_DOTTED;
			child->def = segs[i].pos;
			break;
		case KIND_TABLE_DOTTED:
			break;
		case KIND_TABLE_HEADER:
			return perr(
			    p, segs[i].pos,
			    "cannot add key %s with a dotted key: table [%s] is defined by a "
			    "header (line %u)",
			    KEY(segs, kp->n), TABLE(prefix, segs, i + 1), child->def.line);
		case KIND_TABLE_INLINE:
			return perr(p, segs[i].pos,
				    "cannot add key %s: %s is an inline table (line %u), which "
				    "cannot be extended",
				    KEY(segs, kp->n), KEY(segs, i + 1), child->def.line);
		default:
			return perr(p, segs[i].pos, "cannot set key %s: %s is already %s (line %u)",
				    KEY(segs, kp->n), KEY(segs, i + 1), type_with_article(child),
				    child->def.line);
		}
		t = child;
	}
	kv = table_lookup(t, segs[last].s, segs[last].len);
	if (kv)
		return perr(p, segs[last].pos, "key %s is defined twice (first at line %u)",
			    KEY(segs, kp->n), node_of(kv->value)->def.line);
	*ret = t;
	return 0;
}

static int parse_value(struct parser *p, unsigned depth, struct tnode **ret);

/* key = value, into table t; prefix is t's header (NULL inside an inline
 * table), for messages. kp receives the key; the caller frees it. */
static int parse_keyval(struct parser *p, struct tnode *t, const struct keypath *prefix,
			struct keypath *kp)
{
	_cleanup_node_ struct tnode *val = NULL;
	const struct keyseg *last;
	struct tnode *target = NULL;
	int r;

	r = parse_key(p, kp);
	if (r < 0)
		return r;
	if (peek(p) != '=')
		return perr(p, here(p), "expected '=' after key %s", KEY(kp->segs, kp->n));
	adv(p);
	skip_ws(p);
	r = resolve_dotted(p, t, prefix, kp, &target);
	if (r < 0)
		return r;
	r = parse_value(p, target->depth + 1, &val);
	if (r < 0)
		return r;
	last = &kp->segs[kp->n - 1];
	r = table_append(target, last->s, last->len, last->pos, val);
	if (r < 0)
		return pfail(p, r);
	TAKE_PTR(val);
	return 0;
}

static int parse_array(struct parser *p, unsigned depth, struct tnode **ret)
{
	_cleanup_node_ struct tnode *a = NULL;
	struct toml_pos open = here(p);
	int r;

	if (depth > TOML_MAX_DEPTH)
		return depth_error(p, open);
	a = container_new(TOML_ARRAY, KIND_ARRAY_STATIC, open, depth, p->seed);
	if (!a)
		return pfail(p, -ENOMEM);
	adv(p);
	for (;;) {
		_cleanup_node_ struct tnode *item = NULL;

		r = skip_ws_comments_newlines(p);
		if (r < 0)
			return r;
		if (peek(p) == ']')
			break;
		r = parse_value(p, depth + 1, &item);
		if (r < 0)
			return r;
		r = array_append(a, item);
		if (r < 0)
			return pfail(p, r);
		TAKE_PTR(item);
		r = skip_ws_comments_newlines(p);
		if (r < 0)
			return r;
		if (peek(p) == ']')
			break;
		if (peek(p) != ',')
			return perr(p, here(p),
				    "expected ',' or ']' after an array element, got %s",
				    DESCRIBE(p));
		adv(p);
	}
	adv(p);
	*ret = TAKE_PTR(a);
	return 0;
}

static int parse_inline_table(struct parser *p, unsigned depth, struct tnode **ret)
{
	_cleanup_node_ struct tnode *t = NULL;
	struct toml_pos open = here(p);
	int r;

	if (depth > TOML_MAX_DEPTH)
		return depth_error(p, open);
	/* Built like a table with dotted keys; closed when complete. */
	t = container_new(TOML_TABLE, KIND_TABLE_DOTTED, open, depth, p->seed);
	if (!t)
		return pfail(p, -ENOMEM);
	adv(p);
	skip_ws(p);
	if (peek(p) == '}') {
		adv(p);
		t->kind = KIND_TABLE_INLINE;
		*ret = TAKE_PTR(t);
		return 0;
	}
	for (;;) {
		struct keypath kp = {0};

		skip_ws(p);
		if (at_newline(p))
			return perr(p, here(p), "newlines are not allowed inside an inline table");
		if (!is_key_start(peek(p)))
			return perr(p, here(p), "expected a key in inline table, got %s",
				    DESCRIBE(p));
		r = parse_keyval(p, t, NULL, &kp);
		keypath_free(&kp);
		if (r < 0)
			return r;
		skip_ws(p);
		if (peek(p) == '}')
			break;
		if (at_newline(p))
			return perr(p, here(p), "newlines are not allowed inside an inline table");
		if (peek(p) != ',')
			return perr(p, here(p),
				    "expected ',' or '}' after a value in an inline table, "
				    "got %s",
				    DESCRIBE(p));
		adv(p);
		skip_ws(p);
		if (peek(p) == '}')
			return perr(p, here(p), "trailing comma is not allowed in an inline table");
	}
	adv(p);
	t->kind = KIND_TABLE_INLINE;
	*ret = TAKE_PTR(t);
	return 0;
}

static int parse_value(struct parser *p, unsigned depth, struct tnode **ret)
{
	struct toml_pos pos = here(p);
	int c = peek(p), r;

	switch (c) {
	case '"':
	case '\'':
		buf_reset(&p->str);
		if (peek_at(p, 1) == c && peek_at(p, 2) == c)
			r = parse_multiline_string(p);
		else
			r = parse_line_string(p);
		if (r < 0)
			return r;
		return string_node(p, pos, ret);
	case '[':
		return parse_array(p, depth, ret);
	case '{':
		return parse_inline_table(p, depth, ret);
	default:
		return parse_bare_value(p, ret);
	}
}

/* [a.b.c] or [[a.b.c]]: find or create the table, make it current. */
static int parse_header(struct parser *p)
{
	struct toml_pos open = here(p);
	_cleanup_(keypath_free) struct keypath kp = {0};
	const struct keyseg *segs;
	struct tnode *t = p->root, *child;
	const struct toml_kv *kv;
	bool aot = false;
	char what[NAME_MAX_LEN + 40];
	size_t last;
	int r;

	adv(p);
	if (peek(p) == '[') {
		aot = true;
		adv(p);
	}
	skip_ws(p);
	r = parse_key(p, &kp);
	if (r < 0)
		return r;
	segs = kp.segs;
	last = kp.n - 1;
	if (aot) {
		if (peek(p) != ']' || peek_at(p, 1) != ']')
			return perr(p, here(p),
				    "expected ']]' to close the array of tables header, got %s",
				    DESCRIBE(p));
		adv_n(p, 2);
		snprintf(what, sizeof(what), "array of tables [[%s]]", TABLE(NULL, segs, kp.n));
	} else {
		if (peek(p) != ']')
			return perr(p, here(p), "expected ']' to close the table header, got %s",
				    DESCRIBE(p));
		adv(p);
		snprintf(what, sizeof(what), "table [%s]", TABLE(NULL, segs, kp.n));
	}

	for (size_t i = 0; i < last; i++) {
		kv = table_lookup(t, segs[i].s, segs[i].len);
		if (!kv) {
			r = new_table(p, t, &segs[i], KIND_TABLE_IMPLICIT, open, &child);
			if (r < 0)
				return r;
			t = child;
			continue;
		}
		child = node_of(kv->value);
		switch (child->kind) {
		case KIND_TABLE_IMPLICIT:
		case KIND_TABLE_HEADER:
		case KIND_TABLE_DOTTED:
			t = child;
			break;
		case KIND_ARRAY_TABLES:
			/* The most recent element. */
			t = node_of(child->v.array.items[child->v.array.n - 1]);
			break;
		case KIND_TABLE_INLINE:
			return perr(
			    p, open,
			    "cannot define %s: %s is an inline table (line %u), which cannot "
			    "be extended",
			    what, KEY(segs, i + 1), child->def.line);
		default:
			return perr(p, open, "cannot define %s: %s is already %s (line %u)", what,
				    KEY(segs, i + 1), type_with_article(child), child->def.line);
		}
	}

	kv = table_lookup(t, segs[last].s, segs[last].len);
	child = kv ? node_of(kv->value) : NULL;
	if (aot) {
		struct tnode *elem;

		if (!child) {
			struct tnode *arr;

			if (t->depth + 2 > TOML_MAX_DEPTH)
				return depth_error(p, segs[last].pos);
			arr = container_new(TOML_ARRAY, KIND_ARRAY_TABLES, open, t->depth + 1,
					    p->seed);
			if (!arr)
				return pfail(p, -ENOMEM);
			r = table_append(t, segs[last].s, segs[last].len, segs[last].pos, arr);
			if (r < 0) {
				toml_free(&arr->v);
				return pfail(p, r);
			}
			child = arr;
		} else if (child->kind != KIND_ARRAY_TABLES) {
			return perr(p, open, "cannot define %s: %s is already %s (line %u)", what,
				    KEY(segs, kp.n),
				    child->kind == KIND_ARRAY_STATIC ? "a static array"
								     : type_with_article(child),
				    child->def.line);
		}
		elem =
		    container_new(TOML_TABLE, KIND_TABLE_HEADER, open, child->depth + 1, p->seed);
		if (!elem)
			return pfail(p, -ENOMEM);
		r = array_append(child, elem);
		if (r < 0) {
			toml_free(&elem->v);
			return pfail(p, r);
		}
		p->cur = elem;
	} else if (!child) {
		r = new_table(p, t, &segs[last], KIND_TABLE_HEADER, open, &p->cur);
		if (r < 0)
			return r;
	} else {
		switch (child->kind) {
		case KIND_TABLE_IMPLICIT:
			child->kind = KIND_TABLE_HEADER;
			child->def = open;
			child->v.pos = open;
			p->cur = child;
			break;
		case KIND_TABLE_HEADER:
			return perr(p, open, "%s is defined twice (first at line %u)", what,
				    child->def.line);
		case KIND_TABLE_DOTTED:
			return perr(p, open, "%s is already defined by dotted keys (line %u)", what,
				    child->def.line);
		case KIND_TABLE_INLINE:
			return perr(p, open, "%s is already defined as an inline table (line %u)",
				    what, child->def.line);
		case KIND_ARRAY_TABLES:
			return perr(p, open,
				    "%s is already defined as an array of tables (line %u)", what,
				    child->def.line);
		default:
			return perr(p, open, "cannot define %s: %s is already %s (line %u)", what,
				    KEY(segs, kp.n), type_with_article(child), child->def.line);
		}
	}
	keypath_free(&p->cur_path);
	p->cur_path = kp;
	kp = (struct keypath){0};
	return expect_eol(p, aot ? "an array of tables header" : "a table header");
}

static int parse_document(struct parser *p)
{
	for (;;) {
		int c, r;

		skip_ws(p);
		c = peek(p);
		if (c < 0)
			return 0;
		if (at_newline(p)) {
			eat_newline(p);
			continue;
		}
		if (c == '#') {
			r = skip_comment(p);
		} else if (c == '[') {
			r = parse_header(p);
		} else if (is_key_start(c)) {
			struct keypath kp = {0};

			r = parse_keyval(p, p->cur, &p->cur_path, &kp);
			keypath_free(&kp);
			if (r >= 0)
				r = expect_eol(p, "a value");
		} else {
			r = perr(p, here(p), "expected a key or a [table] header, got %s",
				 DESCRIBE(p));
		}
		if (r < 0)
			return r;
	}
}

int toml_parse(const char *text, size_t len, const char *filename, struct toml_value **ret_root,
	       struct err *e)
{
	struct parser p = {
	    .s = text,
	    .len = len,
	    .line = 1,
	    .col = 1,
	    .filename = filename ? filename : "<input>",
	    .e = e,
	};
	int r;

	*ret_root = NULL;
	if (len > TOML_MAX_DOCUMENT) {
		struct toml_pos at = pos_of_offset(text, TOML_MAX_DOCUMENT);

		return err_set(e, -E2BIG, "%s:%u:%u: document exceeds the limit of %d bytes",
			       p.filename, at.line, at.col, TOML_MAX_DOCUMENT);
	}
	/* A byte order mark may start the document. */
	if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0)
		p.i = 3;
	r = check_document(&p);
	if (r < 0)
		return r;
	p.c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
	if (!p.c_locale)
		return pfail(&p, -ENOMEM);
	buf_init(&p.str, TOML_MAX_DOCUMENT);
	random_seed(p.seed);
	p.root = container_new(TOML_TABLE, KIND_TABLE_HEADER, here(&p), 0, p.seed);
	if (!p.root) {
		r = pfail(&p, -ENOMEM);
	} else {
		p.cur = p.root;
		r = parse_document(&p);
	}
	buf_free(&p.str);
	keypath_free(&p.cur_path);
	freelocale(p.c_locale);
	if (r < 0) {
		log_debug("toml: %s", err_msg(e, r));
		toml_free(p.root ? &p.root->v : NULL);
		return r;
	}
	*ret_root = &p.root->v;
	return 0;
}

int toml_parse_file(const char *path, struct toml_value **ret_root, struct err *e)
{
	_cleanup_close_ int fd = -1;
	_cleanup_free_ char *data = NULL;
	size_t len = 0, cap = 0;

	*ret_root = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return err_set(e, -errno, "%s: cannot read: %s", path, strerror(errno));
	/* Read one byte past the limit so toml_parse can report it. */
	for (;;) {
		ssize_t n;

		if (len == cap) {
			size_t ncap = cap ? cap * 2 : 16384;
			char *d;

			if (ncap > (size_t)TOML_MAX_DOCUMENT + 1)
				ncap = (size_t)TOML_MAX_DOCUMENT + 1;
			if (ncap == cap)
				break;
			d = realloc(data, ncap);
			if (!d)
				return err_set(e, -ENOMEM, "%s: out of memory", path);
			data = d;
			cap = ncap;
		}
		n = read(fd, data + len, cap - len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return err_set(e, -errno, "%s: cannot read: %s", path, strerror(errno));
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	return toml_parse(data ? data : "", len, path, ret_root, e);
}

void toml_describe_string(const char *s, size_t len, char *out, size_t n)
{
	char shown[160];
	size_t i = 0, j = 0;

	for (; i < len && j < sizeof(shown) - 8; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\') {
			shown[j++] = '\\';
			shown[j++] = (char)c;
		} else {
			shown[j++] = c < 0x20 || c == 0x7f ? '?' : (char)c;
		}
	}
	shown[j] = '\0';
	snprintf(out, n, "\"%s%s\"", shown, i < len ? "..." : "");
}

void toml_describe(const struct toml_value *v, char *out, size_t n)
{
	switch (v->type) {
	case TOML_STRING:
		toml_describe_string(v->str.ptr, v->str.len, out, n);
		break;
	case TOML_INTEGER:
		snprintf(out, n, "%lld", (long long)v->integer);
		break;
	case TOML_FLOAT:
		snprintf(out, n, "%g", v->flt);
		break;
	case TOML_BOOL:
		snprintf(out, n, "%s", v->boolean ? "true" : "false");
		break;
	case TOML_DATETIME:
	case TOML_DATETIME_LOCAL:
	case TOML_DATE_LOCAL:
	case TOML_TIME_LOCAL:
		snprintf(out, n, "%s %s", toml_type_name(v->type), v->datetime);
		break;
	case TOML_ARRAY:
		snprintf(out, n, "an array");
		break;
	case TOML_TABLE:
		snprintf(out, n, "a table");
		break;
	}
}
