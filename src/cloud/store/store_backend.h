/* SPDX-License-Identifier: MIT */
/*
 * What a store backend implements (store_sqlite.c today, store_pg.c next).
 *
 * store.c checks and normalises every argument before a backend sees it:
 * key parts are valid UTF-8, non-empty (the twin module id may be ""),
 * lowercased where the collection folds case and at most STORE_KEY_MAX
 * bytes; documents are compact JSON text within the collection's limit;
 * etags are generated; continuation tokens are decoded. A backend maps
 * the calls onto its database and translates its error codes once, with
 * its own message in struct err (never document content, never a URL).
 *
 * Ordering contract: keys compare as byte strings (SQLite BINARY; in
 * PostgreSQL use COLLATE "C"), so a continuation token means the same
 * position on every backend.
 */
#ifndef EDGEID_STORE_BACKEND_H
#define EDGEID_STORE_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cloud/store/store.h"
#include "common/err.h"

enum store_sync {
	STORE_SYNC_FULL,   /* flush on every commit: survives power loss */
	STORE_SYNC_NORMAL, /* survives a process crash; power loss may lose the last commits */
};

struct store_params {
	enum store_sync sync;
	unsigned busy_timeout_ms;
};

/* The collection's shape, shared by all backends. */
struct store_collection_info {
	const char *name;       /* "enrollments": for messages */
	unsigned nkeys;         /* key parts, 1..STORE_KEY_PARTS */
	unsigned fold;          /* bit i: part i is case-insensitive */
	bool last_may_be_empty; /* twins: "" is the device's own twin */
	bool has_secondary;
	size_t default_limit;
};
const struct store_collection_info *store_collection_info(enum store_collection c);

/* A normalised selection: nprefix leading key parts fixed, or (nprefix 0)
 * a secondary key, or everything. */
struct store_selection {
	enum store_collection coll;
	unsigned nprefix;
	const char *prefix[STORE_KEY_PARTS];
	const char *secondary;
};

struct store_row {
	const char *key[STORE_KEY_PARTS];
	const char *secondary; /* NULL when none */
	const char *etag;
	const char *doc;
	size_t doc_len;
};
/* Called once per row; the row's memory lives until the callback returns.
 * A negative return stops the iteration and is returned. */
typedef int (*store_row_fn)(void *userdata, const struct store_row *row);

struct store_message_row {
	uint64_t seq;
	int64_t enqueued_ms;
	const char *properties; /* JSON text or NULL */
	size_t properties_len;
	const void *body;
	size_t body_len;
};
typedef int (*store_message_fn)(void *userdata, const struct store_message_row *row);

struct store_put_args {
	enum store_collection coll;
	const char *key[STORE_KEY_PARTS];
	const char *secondary;
	const char *doc;
	size_t doc_len;
	const char *if_match;
	bool create_only;
	const char *etag; /* the new etag */
};

struct store_ops {
	const char *name;
	int (*open_store)(const char *path, const struct store_params *p, void **ret,
			  struct err *e);
	void (*close_store)(void *be);
	int (*get)(void *be, enum store_collection c, const char *const key[], store_row_fn fn,
		   void *userdata, struct err *e);
	int (*put)(void *be, const struct store_put_args *a, struct err *e);
	int (*del)(void *be, enum store_collection c, const char *const key[], const char *if_match,
		   struct err *e);
	/* Up to limit rows of sel in key order, after the key parts in after
	 * (NULL: from the start). after holds the parts not fixed by the
	 * prefix: nkeys - nprefix of them (all nkeys for a secondary key). */
	int (*list)(void *be, const struct store_selection *sel, const char *const after[],
		    size_t limit, store_row_fn fn, void *userdata, struct err *e);
	int (*count)(void *be, const struct store_selection *sel, uint64_t *ret, struct err *e);
	int (*delete_matching)(void *be, const struct store_selection *sel, uint64_t *ret,
			       struct err *e);
	int (*tx_begin)(void *be, struct err *e);
	int (*tx_commit)(void *be, struct err *e);
	int (*tx_rollback)(void *be, struct err *e);
	unsigned (*tx_depth)(const void *be);
	int (*telemetry_append)(void *be, const char *hub, const char *device_id,
				int64_t enqueued_ms, const char *properties, size_t properties_len,
				const void *body, size_t body_len, uint64_t *ret_seq,
				struct err *e);
	int (*telemetry_list)(void *be, const char *hub, const char *device_id, size_t max,
			      store_message_fn fn, void *userdata, struct err *e);
	int (*telemetry_prune)(void *be, int64_t before_ms, uint64_t *ret, struct err *e);
	int (*check)(void *be, struct err *e);
};

extern const struct store_ops store_sqlite_ops;

#endif
