/* SPDX-License-Identifier: MIT */
/*
 * The cloud side's storage: one interface, one backend per file.
 *
 * Every service process opens its own handle (store_open) after fork and
 * keeps nothing in memory that another process, or another machine sharing
 * the same database, would need. A handle is used by one thread at a time
 * and must not cross fork().
 *
 * What is stored
 *   Documents: the JSON documents of the wire protocols (an enrollment, a
 *   registration record, a hub device, a twin, ...), each under a key of
 *   one to three parts, with an etag that changes on every write. The store
 *   does not look inside a document; the service keeps "registrationId",
 *   "etag" and the other fields in it as it sees fit.
 *   Telemetry: append-only device-to-cloud messages (store_telemetry_*).
 *
 * Keys
 *   Parts are non-empty UTF-8 strings of at most STORE_KEY_MAX bytes.
 *   Registration ids and hub host names are compared case-insensitively
 *   (ASCII): the store keeps them lowercased and lists them that way; the
 *   original spelling belongs in the document. Everything else is exact.
 *   Listings come in byte order of the stored keys.
 *
 * Etags
 *   Opaque strings, new and unpredictable on every write, so an etag from a
 *   deleted and recreated document never matches the new one. Quoting is
 *   the service's business: pass the bare value.
 *
 * Errors
 *   Negative errno; the database's own message, when there is one, is in
 *   struct err. No message ever contains a document's content. The codes
 *   common to every function:
 *     -EINVAL        an argument is malformed (bad key, bad token, ...)
 *     -ENAMETOOLONG  a key part is longer than STORE_KEY_MAX
 *     -EBUSY         another process held the database longer than the
 *                    busy timeout
 *     -EIO, -ENOSPC, -EROFS, -ENOMEM   what the system said
 *     -EBADMSG       the database or a stored document is corrupt
 *     -ECANCELED     the database rolled back the open transaction after an
 *                    earlier error; roll back to the outermost level
 *     -EAGAIN        (backends with optimistic concurrency, i.e. PostgreSQL)
 *                    the transaction lost a conflict and was rolled back:
 *                    run it again. SQLite serializes writers and never
 *                    returns it.
 */
#ifndef EDGEID_STORE_H
#define EDGEID_STORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/macro.h"

struct store;

enum store_collection {
	STORE_ENROLLMENTS,       /* registration id */
	STORE_ENROLLMENT_GROUPS, /* enrollment group id */
	STORE_REGISTRATIONS,     /* registration id; secondary: enrollment group id */
	STORE_CA_CERTIFICATES,   /* certificate name */
	STORE_HUB_DEVICES,       /* hub host name, device id */
	STORE_HUB_MODULES,       /* hub host name, device id, module id */
	STORE_TWINS,             /* hub host name, device id, module id (NULL: the device's) */
	STORE_TELEMETRY,         /* not a document collection: store_telemetry_* */
	STORE_COLLECTION_COUNT,
};

#define STORE_KEY_PARTS 3
#define STORE_KEY_MAX 256
#define STORE_PAGE_DEFAULT 100
#define STORE_PAGE_MAX 1000
/* Continuation tokens are at most this long; longer input is -EINVAL. */
#define STORE_TOKEN_MAX 2048

/* Default size limits: a document's compact JSON text, or for telemetry a
 * message body. The properties of a message are limited separately. */
#define STORE_DOC_MAX_DEFAULT (64 * 1024)
#define STORE_TWIN_MAX_DEFAULT (256 * 1024)
#define STORE_TELEMETRY_BODY_MAX_DEFAULT (256 * 1024)
#define STORE_TELEMETRY_PROPERTIES_MAX (64 * 1024)
#define STORE_LIMIT_CEILING (16 * 1024 * 1024)

struct store_key {
	const char *part[STORE_KEY_PARTS]; /* unused trailing parts NULL */
};
/* STORE_KEY("hub1.example.net", "dev1") */
#define STORE_KEY(...) (&(const struct store_key){{__VA_ARGS__}})

/* Open the store at url:
 *   sqlite:///ABSOLUTE/PATH[?synchronous=full|normal&busy_timeout_ms=N]
 *   PATH                     a file path (no "://"), SQLite with defaults
 *   postgresql://...         not implemented yet: -EPROTONOSUPPORT
 * SQLite defaults: synchronous=full (an acknowledged write survives power
 * loss), busy_timeout_ms=5000, WAL journal. A new database file is created
 * with mode 0600 (documents hold device keys) and its schema is brought up
 * to date in one transaction. URLs are never echoed into messages (a
 * PostgreSQL URL may carry a password). *ret is the caller's (store_close).
 * Returns 0, -EINVAL (malformed URL), -EPROTONOSUPPORT (scheme),
 * -EPROTO (the schema is newer than this program, or the file is some
 * other application's database), -EBADMSG (not a database), -ENOENT,
 * -EACCES, -ENOTSUP (no WAL on this file system), -ENOMEM, -EIO. */
int store_open(const char *url, struct store **ret, struct err *e);
/* Roll back an open transaction and release everything. Accepts NULL. */
void store_close(struct store *s);
DEFINE_CLEANUP_FUNC(struct store *, store_close)
#define _cleanup_store_ _cleanup_(store_closep)

/* Size limit in bytes for a collection on this handle (see the defaults
 * above); for STORE_TELEMETRY the message body limit. Returns 0, -EINVAL
 * (0 or above STORE_LIMIT_CEILING, or no such collection). */
int store_set_limit(struct store *s, enum store_collection c, size_t max_bytes);

/* Fetch a document. ret_doc (caller's, json_decref) and ret_etag (caller's,
 * free) may each be NULL. Returns 0, -ENOENT, or a common code. */
int store_get(struct store *s, enum store_collection c, const struct store_key *key,
	      json_t **ret_doc, char **ret_etag, struct err *e);

struct store_write {
	enum store_collection coll;
	struct store_key key;
	const json_t *doc;     /* a JSON object; stored as compact text */
	const char *secondary; /* STORE_REGISTRATIONS: the enrollment group id or NULL;
				  must be NULL for the other collections */
	const char *if_match;  /* NULL: create or replace; "*": replace, which must exist;
				  otherwise replace only if this is the current etag */
	bool create_only;      /* create, -EEXIST if it exists (if_match must be NULL) */
};

/* Write a document. *ret_etag (may be NULL) receives the new etag, the
 * caller's to free. Returns 0, -ENOENT (if_match given, no document),
 * -ESTALE (if_match is not the current etag), -EEXIST (create_only, it
 * exists), -E2BIG (the document is over the collection's limit), -EINVAL
 * (doc is not an object, or a bad combination), or a common code. */
int store_put(struct store *s, const struct store_write *w, char **ret_etag, struct err *e);

/* Delete a document; if_match as for store_put. Returns 0, -ENOENT,
 * -ESTALE, or a common code. */
int store_delete(struct store *s, enum store_collection c, const struct store_key *key,
		 const char *if_match, struct err *e);

struct store_query {
	enum store_collection coll;
	/* Leading parts set (at most all but the last): only keys starting
	 * with them, e.g. {hub, device} for a device's modules. */
	struct store_key prefix;
	/* Set: only documents with this secondary key; prefix must be empty. */
	const char *secondary;
	/* NULL or "": from the start; otherwise the continuation of a previous
	 * page of the same query, from any handle or process. */
	const char *continuation;
	size_t page_size; /* 0: STORE_PAGE_DEFAULT; capped at STORE_PAGE_MAX */
};

struct store_item {
	char *key[STORE_KEY_PARTS]; /* as stored (lowercased where folded); unused NULL */
	char *secondary;            /* NULL when none */
	char *etag;
	json_t *doc;
};

struct store_page {
	size_t n;
	struct store_item *items;
	/* Opaque text to pass as the next query's continuation; NULL on the
	 * last page (a full last page is never followed by an empty one). */
	char *continuation;
};

/* One page of a listing, in key order (keyset pagination: each call is an
 * index range scan, whatever the position). Documents written between
 * pages appear or not according to where their key falls. *ret is the
 * caller's (store_page_free). Returns 0 (possibly zero items), -EINVAL
 * (bad prefix, or a continuation not from this query), or a common code. */
int store_list(struct store *s, const struct store_query *q, struct store_page **ret,
	       struct err *e);
void store_page_free(struct store_page *p);
DEFINE_CLEANUP_FUNC(struct store_page *, store_page_free)
#define _cleanup_store_page_ _cleanup_(store_page_freep)

/* How many documents match q (continuation and page_size are ignored).
 * This counts index entries: O(n), meant for administration, not for a
 * request path. Returns 0 or a common code. */
int store_count(struct store *s, const struct store_query *q, uint64_t *ret_count, struct err *e);

/* Delete every document matching q, which must have a prefix or a
 * secondary key (a whole collection is never deleted by accident), e.g. a
 * device's modules and twins. *ret_deleted may be NULL. Returns 0, -EINVAL
 * or a common code. */
int store_delete_matching(struct store *s, const struct store_query *q, uint64_t *ret_deleted,
			  struct err *e);

/* Transactions nest. The outermost store_tx_begin takes the database's
 * write lock (waiting up to the busy timeout for other processes); an
 * inner one is a savepoint that store_tx_rollback undoes alone. Nothing is
 * durable, nor visible to other handles, until the outermost commit
 * returns 0. Writes outside a transaction commit one by one.
 *
 * Inside a transaction, what store_get returned stays current until the
 * commit: no other handle writes that document in between, so a
 * read-modify-write needs no If-Match. (SQLite: one writer at a time. A
 * PostgreSQL backend must give the same promise, e.g. SELECT ... FOR
 * UPDATE for reads inside a transaction, or SERIALIZABLE and -EAGAIN.)
 *
 * Group commit: an event-driven service opens an outer transaction for
 * the requests of one loop iteration, runs each request in an inner one
 * (its failure rolls back only its own writes), commits the outer one at
 * the end of the iteration and only then answers those requests, so that
 * one flush to disk acknowledges all of them. Never keep a transaction
 * open across I/O that waits for a peer: other processes wait for it.
 *
 * begin: 0, -EBUSY, or a common code. commit: 0, -EINVAL (none open),
 * -ECANCELED, or a common code (on an error of the outermost commit the
 * transaction is rolled back). rollback: 0, -EINVAL (none open), or a
 * common code; the level is closed in every case. */
int store_tx_begin(struct store *s, struct err *e);
int store_tx_commit(struct store *s, struct err *e);
int store_tx_rollback(struct store *s, struct err *e);
/* Open levels: 0 outside a transaction. */
unsigned store_tx_depth(const struct store *s);

/* A device-to-cloud message. */
struct store_message {
	uint64_t seq;        /* assigned at append: unique, never reused; a later append
				gets a larger one */
	int64_t enqueued_ms; /* milliseconds since the Unix epoch, set by the service */
	json_t *properties;  /* an object of application/system properties, or NULL */
	void *body;          /* any bytes */
	size_t body_len;
};

struct store_messages {
	size_t n;
	struct store_message *items; /* owned: properties and body included */
};

/* Append a message for (hub, device_id); m->seq is ignored, properties and
 * body are copied. *ret_seq may be NULL. Returns 0, -E2BIG (body over the
 * telemetry limit or properties over STORE_TELEMETRY_PROPERTIES_MAX),
 * -EINVAL, or a common code. */
int store_telemetry_append(struct store *s, const char *hub, const char *device_id,
			   const struct store_message *m, uint64_t *ret_seq, struct err *e);
/* The newest max messages of (hub, device_id), newest first (by enqueued
 * time, then by seq). max 0: STORE_PAGE_DEFAULT; capped at STORE_PAGE_MAX.
 * *ret is the caller's (store_messages_free). Returns 0 or a common code. */
int store_telemetry_list(struct store *s, const char *hub, const char *device_id, size_t max,
			 struct store_messages **ret, struct err *e);
void store_messages_free(struct store_messages *l);
DEFINE_CLEANUP_FUNC(struct store_messages *, store_messages_free)
#define _cleanup_store_messages_ _cleanup_(store_messages_freep)
/* Delete every message enqueued before before_ms (all devices). Returns 0
 * or a common code. */
int store_telemetry_prune(struct store *s, int64_t before_ms, uint64_t *ret_deleted, struct err *e);

/* Check the database's integrity (SQLite: PRAGMA integrity_check). Slow on
 * a big database: for administration and tests. Returns 0, -EBADMSG with
 * the first problem found, or a common code. */
int store_check(struct store *s, struct err *e);

/* "enrollments", "hub devices", ...: for messages. */
const char *store_collection_name(enum store_collection c);

#endif
