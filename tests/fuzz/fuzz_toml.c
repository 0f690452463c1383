/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness for the TOML parser.
 *
 * Any input: toml_parse must either fail with a "fuzz.toml:LINE:COL: ..."
 * message or return a tree. For a tree, every key must be found again by
 * toml_table_find, every position must be 1-based, and every string, key,
 * integer and date/time must survive a trip through the writers: a small
 * document "KEY = VALUE" generated from it parses back to the same bytes.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/toml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Re-parses per input, so that big inputs stay fast. */
#define MAX_ROUND_TRIPS 64

struct walk {
	unsigned round_trips;
};

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);   \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

/* Generate "KEY = VALUE\n", parse it, and return the single value. */
static void round_trip(const char *key, size_t keylen, const struct toml_value *v)
{
	struct toml_value *root = NULL;
	const struct toml_kv *kv;
	struct err e = {0};
	struct buf doc;
	int r;

	buf_init(&doc, TOML_MAX_DOCUMENT);
	/* A quoted key can hold any bytes, NUL included. */
	r = toml_format_string(&doc, key, keylen);
	CHECK(r == 0);
	r = buf_append_str(&doc, " = ");
	CHECK(r == 0);
	switch (v->type) {
	case TOML_STRING:
		r = toml_format_string(&doc, v->str.ptr, v->str.len);
		break;
	case TOML_INTEGER:
		r = buf_printf(&doc, "%" PRId64, v->integer);
		break;
	default:
		r = buf_append_str(&doc, v->datetime);
		break;
	}
	CHECK(r == 0);
	r = buf_putc(&doc, '\n');
	CHECK(r == 0);

	r = toml_parse(doc.data, doc.len, "gen.toml", &root, &e);
	if (r < 0)
		fprintf(stderr, "generated document rejected: %s\n", e.msg);
	CHECK(r == 0);
	CHECK(root->table.n == 1);
	kv = &root->table.items[0];
	CHECK(kv->keylen == keylen && memcmp(kv->key, key, keylen) == 0);
	CHECK(kv->value->type == v->type);
	switch (v->type) {
	case TOML_STRING:
		CHECK(kv->value->str.len == v->str.len);
		CHECK(memcmp(kv->value->str.ptr, v->str.ptr, v->str.len) == 0);
		break;
	case TOML_INTEGER:
		CHECK(kv->value->integer == v->integer);
		break;
	default:
		CHECK(strcmp(kv->value->datetime, v->datetime) == 0);
		break;
	}
	toml_free(root);
	buf_free(&doc);
}

static void visit(struct walk *w, const char *key, size_t keylen, const struct toml_value *v)
{
	CHECK(v->pos.line >= 1 && v->pos.col >= 1);
	switch (v->type) {
	case TOML_STRING:
	case TOML_INTEGER:
	case TOML_DATETIME:
	case TOML_DATETIME_LOCAL:
	case TOML_DATE_LOCAL:
	case TOML_TIME_LOCAL:
		CHECK(v->type == TOML_STRING || v->type == TOML_INTEGER || v->datetime);
		if (v->type == TOML_STRING)
			CHECK(v->str.ptr[v->str.len] == '\0');
		if (w->round_trips < MAX_ROUND_TRIPS) {
			w->round_trips++;
			round_trip(key, keylen, v);
		}
		break;
	case TOML_ARRAY:
		/* Depth is bounded by TOML_MAX_DEPTH. */
		for (size_t i = 0; i < v->array.n; i++)
			visit(w, key, keylen, v->array.items[i]);
		break;
	case TOML_TABLE:
		for (size_t i = 0; i < v->table.n; i++) {
			const struct toml_kv *kv = &v->table.items[i];

			CHECK(kv->key_pos.line >= 1 && kv->key_pos.col >= 1);
			CHECK(kv->key[kv->keylen] == '\0');
			/* Keys with an escaped NUL cannot be looked up by C string. */
			if (strlen(kv->key) == kv->keylen)
				CHECK(toml_table_find(v, kv->key) == kv);
			visit(w, kv->key, kv->keylen, kv->value);
		}
		break;
	default:
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct toml_value *root = NULL;
	struct walk w = {0};
	struct err e = {0};
	int r;

	r = toml_parse((const char *)data, size, "fuzz.toml", &root, &e);
	if (r < 0) {
		CHECK(root == NULL);
		CHECK(r == -EINVAL || r == -E2BIG || r == -ENOMEM);
		if (r != -ENOMEM)
			CHECK(strncmp(e.msg, "fuzz.toml:", 10) == 0);
		return 0;
	}
	CHECK(root && root->type == TOML_TABLE);
	visit(&w, "", 0, root);
	toml_free(root);
	return 0;
}
