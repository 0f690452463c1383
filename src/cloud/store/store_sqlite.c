/* SPDX-License-Identifier: MIT */
/*
 * The SQLite store backend: one database file shared by every process of
 * every service on the machine.
 *
 * - WAL journal: readers never wait for the writer; one writer at a time.
 * - synchronous=FULL by default: a commit returns after the WAL is on disk.
 * - Every write runs in a transaction that begins with BEGIN IMMEDIATE, so
 *   that the write lock is taken (or waited for, through the busy handler)
 *   before anything is read; a deferred transaction that reads and then
 *   writes can fail with SQLITE_BUSY at once when another process committed
 *   in between, and no busy handler helps then.
 * - Statements are prepared once per handle and kept.
 * - Each collection is a table: its key columns (UNIQUE, the index every
 *   lookup and every page of a listing uses), an optional secondary key
 *   with its own index, the etag and the document as JSON text.
 * - The schema is migrated at open, in one transaction, from the ordered
 *   list below; a database newer than the list is refused.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cloud/store/store_backend.h"
#include "common/buf.h"
#include "common/log.h"

/* Table and column names per collection. */
static const struct table {
	const char *name;
	const char *key[STORE_KEY_PARTS];
	const char *secondary;
} tables[STORE_COLLECTION_COUNT] = {
    [STORE_ENROLLMENTS] = {"enrollments", {"registration_id"}, NULL},
    [STORE_ENROLLMENT_GROUPS] = {"enrollment_groups", {"group_id"}, NULL},
    [STORE_REGISTRATIONS] = {"registrations", {"registration_id"}, "group_id"},
    [STORE_CA_CERTIFICATES] = {"ca_certificates", {"name"}, NULL},
    [STORE_HUB_DEVICES] = {"hub_devices", {"hub", "device_id"}, NULL},
    [STORE_HUB_MODULES] = {"hub_modules", {"hub", "device_id", "module_id"}, NULL},
    [STORE_TWINS] = {"twins", {"hub", "device_id", "module_id"}, NULL},
};

/* Schema migrations, applied in order; step i brings the schema to
 * version i + 1. Never edit a released step: append a new one. */
static const char *const migrations[] = {
    /* 1 */
    "CREATE TABLE enrollments ("
    "  registration_id TEXT NOT NULL UNIQUE,"
    "  etag TEXT NOT NULL,"
    "  doc TEXT NOT NULL);"
    "CREATE TABLE enrollment_groups ("
    "  group_id TEXT NOT NULL UNIQUE,"
    "  etag TEXT NOT NULL,"
    "  doc TEXT NOT NULL);"
    "CREATE TABLE registrations ("
    "  registration_id TEXT NOT NULL UNIQUE,"
    "  group_id TEXT,"
    "  etag TEXT NOT NULL,"
    "  doc TEXT NOT NULL);"
    "CREATE INDEX registrations_by_group ON registrations (group_id, registration_id)"
    "  WHERE group_id IS NOT NULL;"
    "CREATE TABLE ca_certificates ("
    "  name TEXT NOT NULL UNIQUE,"
    "  etag TEXT NOT NULL,"
    "  doc TEXT NOT NULL);"
    "CREATE TABLE hub_devices ("
    "  hub TEXT NOT NULL,"
    "  device_id TEXT NOT NULL,"
    "  etag TEXT NOT NULL,"
    "  doc TEXT NOT NULL,"
    "  UNIQUE (hub, device_id));"
    "CREATE TABLE hub_modules ("
    "  hub TEXT NOT NULL,"
    "  device_id TEXT NOT NULL,"
    "  module_id TEXT NOT NULL,"
    "  etag TEXT NOT NULL,"
    "  doc TEXT NOT NULL,"
    "  UNIQUE (hub, device_id, module_id));"
    /* module_id '' is the device's own twin. */
    "CREATE TABLE twins ("
    "  hub TEXT NOT NULL,"
    "  device_id TEXT NOT NULL,"
    "  module_id TEXT NOT NULL,"
    "  etag TEXT NOT NULL,"
    "  doc TEXT NOT NULL,"
    "  UNIQUE (hub, device_id, module_id));"
    /* AUTOINCREMENT: seq never goes back, even when the newest rows
	 * are pruned. The by-device index ends in the rowid (seq), which
	 * gives "newest first" without sorting. */
    "CREATE TABLE telemetry ("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  hub TEXT NOT NULL,"
    "  device_id TEXT NOT NULL,"
    "  enqueued_ms INTEGER NOT NULL,"
    "  properties TEXT,"
    "  body BLOB NOT NULL);"
    "CREATE INDEX telemetry_by_device ON telemetry (hub, device_id, enqueued_ms);"
    "CREATE INDEX telemetry_by_time ON telemetry (enqueued_ms);",
};
#define SCHEMA_VERSION ((int)ARRAY_SIZE(migrations))

enum doc_op {
	OP_GET,
	OP_ETAG,
	OP_INSERT,
	OP_UPSERT,
	OP_UPDATE,
	OP_UPDATE_MATCH,
	OP_DELETE,
	OP_DELETE_MATCH,
	OP_LIST,            /* variant: selection kind * 2 + has "after" */
	OP_COUNT,           /* variant: selection kind */
	OP_DELETE_MATCHING, /* variant: selection kind */
	OP_MAX,
};
#define VARIANTS 8
/* Selection kinds: 0..2 = prefix length, 3 = secondary key. */
#define KIND_SECONDARY 3

/* Parameter numbers in generated statements. */
#define P_KEY 1      /* ?1..?3 */
#define P_SEC 4      /* secondary key (value or selection) */
#define P_ETAG 5     /* new etag */
#define P_DOC 6      /* new document */
#define P_IF_MATCH 7 /* etag to compare */
#define P_AFTER 11   /* ?11..?13: the position of a listing */
#define P_LIMIT 20

enum misc_stmt {
	M_BEGIN,
	M_COMMIT,
	M_ROLLBACK,
	M_SAVEPOINT,
	M_RELEASE,
	M_ROLLBACK_TO,
	M_TEL_APPEND,
	M_TEL_LIST,
	M_TEL_PRUNE,
	M_MAX,
};

static const char *const misc_sql[M_MAX] = {
    [M_BEGIN] = "BEGIN IMMEDIATE",
    [M_COMMIT] = "COMMIT",
    [M_ROLLBACK] = "ROLLBACK",
    [M_SAVEPOINT] = "SAVEPOINT store_tx",
    [M_RELEASE] = "RELEASE store_tx",
    [M_ROLLBACK_TO] = "ROLLBACK TO store_tx",
    [M_TEL_APPEND] = "INSERT INTO telemetry (hub, device_id, enqueued_ms, properties, body) "
		     "VALUES (?1, ?2, ?3, ?4, ?5)",
    [M_TEL_LIST] = "SELECT seq, enqueued_ms, properties, body FROM telemetry "
		   "WHERE hub = ?1 AND device_id = ?2 "
		   "ORDER BY enqueued_ms DESC, seq DESC LIMIT ?3",
    [M_TEL_PRUNE] = "DELETE FROM telemetry WHERE enqueued_ms < ?1",
};

struct sqlite_store {
	sqlite3 *db;
	char *path;
	unsigned busy_timeout_ms;
	struct timespec busy_start;
	uint64_t jitter; /* xorshift state for the busy handler */
	unsigned depth;  /* open transaction levels */
	bool lost;       /* SQLite rolled the open transaction back on its own */
	sqlite3_stmt *doc_stmt[STORE_COLLECTION_COUNT][OP_MAX][VARIANTS];
	sqlite3_stmt *misc[M_MAX];
};

/* ---- errors ---- */

static int translate(int rc)
{
	switch (rc) {
	case SQLITE_CONSTRAINT_UNIQUE:
	case SQLITE_CONSTRAINT_PRIMARYKEY:
		return -EEXIST;
	default:
		break;
	}
	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_ROW:
	case SQLITE_DONE:
		return 0;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_READONLY:
		return -EROFS;
	case SQLITE_PERM:
	case SQLITE_AUTH:
		return -EACCES;
	case SQLITE_INTERRUPT:
		return -EINTR;
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_CANTOPEN:
		return -ENOENT;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		return -EBADMSG;
	case SQLITE_TOOBIG:
		return -E2BIG;
	case SQLITE_CONSTRAINT:
	case SQLITE_MISMATCH:
	case SQLITE_RANGE:
	case SQLITE_MISUSE:
	case SQLITE_ERROR:
		return -EINVAL;
	case SQLITE_NOLFS:
		return -EFBIG;
	default:
		return -EIO;
	}
}

/* Translate rc once, with SQLite's message (which never quotes bound
 * values) after the database path and what was being done. */
static int sql_err(struct sqlite_store *b, int rc, const char *what, struct err *e)
{
	int r = translate(rc);

	if (r == 0)
		r = -EIO;
	/* A disk-full or I/O error can make SQLite roll back the whole
	 * transaction by itself; later statements would then autocommit. */
	if (b->depth > 0 && sqlite3_get_autocommit(b->db))
		b->lost = true;
	log_debug("store %s: %s: %s (%d)", b->path, what, sqlite3_errmsg(b->db), rc);
	if (r == -EBUSY)
		return err_set(e, r,
			       "%s: %s: the database stayed locked by another process for "
			       "more than %u ms",
			       b->path, what, b->busy_timeout_ms);
	return err_set(e, r, "%s: %s: %s", b->path, what, sqlite3_errmsg(b->db));
}

static int lost_err(struct sqlite_store *b, struct err *e)
{
	return err_set(e, -ECANCELED,
		       "%s: the database rolled back the transaction after an earlier error",
		       b->path);
}

/* ---- statements ---- */

static void stmt_resetp(sqlite3_stmt **st)
{
	if (*st) {
		sqlite3_reset(*st);
		sqlite3_clear_bindings(*st);
	}
}
#define _cleanup_reset_ _cleanup_(stmt_resetp)

static int prepare(struct sqlite_store *b, const char *sql, sqlite3_stmt **ret, struct err *e)
{
	int rc = sqlite3_prepare_v3(b->db, sql, -1, SQLITE_PREPARE_PERSISTENT, ret, NULL);

	if (rc != SQLITE_OK)
		return sql_err(b, rc, "prepare", e);
	return 0;
}

static int misc(struct sqlite_store *b, enum misc_stmt m, sqlite3_stmt **ret, struct err *e)
{
	int r;

	if (!b->misc[m]) {
		r = prepare(b, misc_sql[m], &b->misc[m], e);
		if (r < 0)
			return r;
	}
	*ret = b->misc[m];
	return 0;
}

/* Key columns [from, to) separated by sep; with param, each followed by
 * " = ?N", where part i is parameter param + i. */
static int cols(struct buf *sql, const struct table *t, unsigned from, unsigned to, const char *sep,
		unsigned param)
{
	int r = 0;

	for (unsigned i = from; r >= 0 && i < to; i++) {
		r = buf_printf(sql, "%s%s", i == from ? "" : sep, t->key[i]);
		if (r >= 0 && param)
			r = buf_printf(sql, " = ?%u", param + i);
	}
	return r;
}

static int build_sql(enum store_collection c, enum doc_op op, unsigned variant, struct buf *sql)
{
	const struct store_collection_info *ci = store_collection_info(c);
	const struct table *t = &tables[c];
	unsigned n = ci->nkeys, kind = variant / 2, from;
	bool after = variant & 1;
	int r = 0;

	switch (op) {
	case OP_GET:
		r = buf_printf(sql, "SELECT etag, doc, %s FROM %s WHERE ",
			       t->secondary ? t->secondary : "NULL", t->name);
		if (r >= 0)
			r = cols(sql, t, 0, n, " AND ", P_KEY);
		return r;
	case OP_ETAG:
		r = buf_printf(sql, "SELECT etag FROM %s WHERE ", t->name);
		if (r >= 0)
			r = cols(sql, t, 0, n, " AND ", P_KEY);
		return r;
	case OP_INSERT:
	case OP_UPSERT:
		r = buf_printf(sql, "INSERT INTO %s (", t->name);
		if (r >= 0)
			r = cols(sql, t, 0, n, ", ", 0);
		if (r >= 0 && t->secondary)
			r = buf_printf(sql, ", %s", t->secondary);
		if (r >= 0)
			r = buf_append_str(sql, ", etag, doc) VALUES (");
		for (unsigned i = 0; r >= 0 && i < n; i++)
			r = buf_printf(sql, "?%u, ", P_KEY + i);
		if (r >= 0 && t->secondary)
			r = buf_printf(sql, "?%u, ", P_SEC);
		if (r >= 0)
			r = buf_printf(sql, "?%u, ?%u)", P_ETAG, P_DOC);
		if (r >= 0 && op == OP_UPSERT) {
			r = buf_append_str(sql, " ON CONFLICT (");
			if (r >= 0)
				r = cols(sql, t, 0, n, ", ", 0);
			if (r >= 0)
				r = buf_append_str(sql, ") DO UPDATE SET ");
			if (r >= 0 && t->secondary)
				r = buf_printf(sql, "%s = excluded.%s, ", t->secondary,
					       t->secondary);
			if (r >= 0)
				r = buf_append_str(sql, "etag = excluded.etag, doc = excluded.doc");
		}
		return r;
	case OP_UPDATE:
	case OP_UPDATE_MATCH:
		r = buf_printf(sql, "UPDATE %s SET ", t->name);
		if (r >= 0 && t->secondary)
			r = buf_printf(sql, "%s = ?%u, ", t->secondary, P_SEC);
		if (r >= 0)
			r = buf_printf(sql, "etag = ?%u, doc = ?%u WHERE ", P_ETAG, P_DOC);
		if (r >= 0)
			r = cols(sql, t, 0, n, " AND ", P_KEY);
		if (r >= 0 && op == OP_UPDATE_MATCH)
			r = buf_printf(sql, " AND etag = ?%u", P_IF_MATCH);
		return r;
	case OP_DELETE:
	case OP_DELETE_MATCH:
		r = buf_printf(sql, "DELETE FROM %s WHERE ", t->name);
		if (r >= 0)
			r = cols(sql, t, 0, n, " AND ", P_KEY);
		if (r >= 0 && op == OP_DELETE_MATCH)
			r = buf_printf(sql, " AND etag = ?%u", P_IF_MATCH);
		return r;
	case OP_LIST:
	case OP_COUNT:
	case OP_DELETE_MATCHING:
		if (op == OP_LIST) {
			r = buf_append_str(sql, "SELECT ");
			for (unsigned i = 0; r >= 0 && i < STORE_KEY_PARTS; i++)
				r = buf_printf(sql, "%s, ", i < n ? t->key[i] : "NULL");
			if (r >= 0)
				r = buf_printf(sql, "%s, etag, doc FROM %s",
					       t->secondary ? t->secondary : "NULL", t->name);
		} else {
			kind = variant;
			after = false;
			r = buf_printf(sql, "%s FROM %s",
				       op == OP_COUNT ? "SELECT count(*)" : "DELETE", t->name);
		}
		if (r < 0)
			return r;
		if (kind == KIND_SECONDARY) {
			r = buf_printf(sql, " WHERE %s = ?%u", t->secondary, P_SEC);
			from = 0;
		} else {
			if (kind > 0)
				r = buf_append_str(sql, " WHERE ");
			if (r >= 0)
				r = cols(sql, t, 0, kind, " AND ", P_KEY);
			from = kind;
		}
		if (r >= 0 && after) {
			/* A row value: an index range scan on (prefix, rest). */
			r = buf_append_str(sql, kind == 0 ? " WHERE (" : " AND (");
			if (r >= 0)
				r = cols(sql, t, from, n, ", ", 0);
			r = r < 0 ? r : buf_append_str(sql, ") > (");
			for (unsigned i = from; r >= 0 && i < n; i++)
				r = buf_printf(sql, "%s?%u", i == from ? "" : ", ",
					       P_AFTER + i - from);
			r = r < 0 ? r : buf_append_str(sql, ")");
		}
		if (r >= 0 && op == OP_LIST) {
			r = buf_append_str(sql, " ORDER BY ");
			if (r >= 0)
				r = cols(sql, t, from, n, ", ", 0);
			if (r >= 0)
				r = buf_printf(sql, " LIMIT ?%u", P_LIMIT);
		}
		return r;
	case OP_MAX:
		break;
	}
	return -EINVAL;
}

static int doc_stmt(struct sqlite_store *b, enum store_collection c, enum doc_op op,
		    unsigned variant, sqlite3_stmt **ret, struct err *e)
{
	sqlite3_stmt **slot = &b->doc_stmt[c][op][variant];
	_cleanup_buf_ struct buf sql = {0};
	int r;

	if (!*slot) {
		buf_init(&sql, 4096);
		r = build_sql(c, op, variant, &sql);
		if (r < 0)
			return err_set(e, r, "%s: building a statement failed", b->path);
		r = prepare(b, buf_str(&sql), slot, e);
		if (r < 0)
			return r;
	}
	*ret = *slot;
	return 0;
}

static int bind_text(struct sqlite_store *b, sqlite3_stmt *st, int i, const char *s, size_t n,
		     struct err *e)
{
	int rc;

	if (n > INT_MAX)
		return err_set(e, -E2BIG, "%s: a value is too large", b->path);
	rc = s ? sqlite3_bind_text(st, i, s, (int)n, SQLITE_STATIC) : sqlite3_bind_null(st, i);
	if (rc != SQLITE_OK)
		return sql_err(b, rc, "bind", e);
	return 0;
}

static int bind_str(struct sqlite_store *b, sqlite3_stmt *st, int i, const char *s, struct err *e)
{
	return bind_text(b, st, i, s, s ? strlen(s) : 0, e);
}

static int bind_int(struct sqlite_store *b, sqlite3_stmt *st, int i, int64_t v, struct err *e)
{
	int rc = sqlite3_bind_int64(st, i, v);

	if (rc != SQLITE_OK)
		return sql_err(b, rc, "bind", e);
	return 0;
}

static int bind_key(struct sqlite_store *b, sqlite3_stmt *st, enum store_collection c,
		    const char *const key[], struct err *e)
{
	unsigned n = store_collection_info(c)->nkeys;
	int r = 0;

	for (unsigned i = 0; r >= 0 && i < n; i++)
		r = bind_str(b, st, P_KEY + (int)i, key[i], e);
	return r;
}

/* Step a statement that returns no rows (or whose rows do not matter). */
static int step_done(struct sqlite_store *b, sqlite3_stmt *st, const char *what, struct err *e)
{
	int rc;

	do
		rc = sqlite3_step(st);
	while (rc == SQLITE_ROW);
	if (rc != SQLITE_DONE)
		return sql_err(b, rc, what, e);
	return 0;
}

static int exec_misc(struct sqlite_store *b, enum misc_stmt m, const char *what, struct err *e)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	int r;

	r = misc(b, m, &st, e);
	if (r < 0)
		return r;
	return step_done(b, st, what, e);
}

/* ---- transactions ---- */

/* A write outside a transaction gets its own: BEGIN IMMEDIATE waits for
 * the write lock through the busy handler. */
static int write_begin(struct sqlite_store *b, bool *implicit, struct err *e)
{
	int r;

	*implicit = false;
	if (b->lost)
		return lost_err(b, e);
	if (b->depth > 0)
		return 0;
	r = exec_misc(b, M_BEGIN, "begin", e);
	if (r < 0)
		return r;
	*implicit = true;
	return 0;
}

static int write_end(struct sqlite_store *b, bool implicit, int r, struct err *e)
{
	int r2;

	if (!implicit)
		return r;
	if (r >= 0) {
		r2 = exec_misc(b, M_COMMIT, "commit", e);
		if (r2 >= 0)
			return r;
		r = r2;
	}
	if (!sqlite3_get_autocommit(b->db))
		(void)exec_misc(b, M_ROLLBACK, "rollback", NULL);
	return r;
}

static int sqlite_tx_begin(void *be, struct err *e)
{
	struct sqlite_store *b = be;
	int r;

	if (b->lost)
		return lost_err(b, e);
	if (b->depth == UINT_MAX)
		return err_set(e, -EINVAL, "%s: transactions nested too deep", b->path);
	r = exec_misc(b, b->depth == 0 ? M_BEGIN : M_SAVEPOINT, "begin", e);
	if (r < 0)
		return r;
	b->depth++;
	return 0;
}

static void level_closed(struct sqlite_store *b)
{
	b->depth--;
	if (b->depth == 0)
		b->lost = false;
}

static int sqlite_tx_commit(void *be, struct err *e)
{
	struct sqlite_store *b = be;
	int r;

	if (b->depth == 0)
		return err_set(e, -EINVAL, "%s: commit without a transaction", b->path);
	if (b->lost) {
		level_closed(b);
		return lost_err(b, e);
	}
	if (b->depth > 1) {
		r = exec_misc(b, M_RELEASE, "release savepoint", e);
		level_closed(b);
		return r;
	}
	r = exec_misc(b, M_COMMIT, "commit", e);
	if (r < 0 && !sqlite3_get_autocommit(b->db))
		(void)exec_misc(b, M_ROLLBACK, "rollback", NULL);
	level_closed(b);
	return r;
}

static int sqlite_tx_rollback(void *be, struct err *e)
{
	struct sqlite_store *b = be;
	int r = 0;

	if (b->depth == 0)
		return err_set(e, -EINVAL, "%s: rollback without a transaction", b->path);
	if (!b->lost) {
		if (b->depth > 1) {
			r = exec_misc(b, M_ROLLBACK_TO, "roll back to savepoint", e);
			if (r >= 0)
				r = exec_misc(b, M_RELEASE, "release savepoint", e);
		} else if (!sqlite3_get_autocommit(b->db)) {
			r = exec_misc(b, M_ROLLBACK, "rollback", e);
		}
	}
	level_closed(b);
	return r;
}

static unsigned sqlite_tx_depth(const void *be)
{
	const struct sqlite_store *b = be;

	return b->depth;
}

/* ---- documents ---- */

static int sqlite_get(void *be, enum store_collection c, const char *const key[], store_row_fn fn,
		      void *userdata, struct err *e)
{
	struct sqlite_store *b = be;
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct store_row row = {0};
	int r, rc;

	if (b->lost)
		return lost_err(b, e);
	r = doc_stmt(b, c, OP_GET, 0, &st, e);
	if (r < 0)
		return r;
	r = bind_key(b, st, c, key, e);
	if (r < 0)
		return r;
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return err_set(e, -ENOENT, "%s: not found", store_collection_name(c));
	if (rc != SQLITE_ROW)
		return sql_err(b, rc, "get", e);
	for (unsigned i = 0; i < STORE_KEY_PARTS; i++)
		row.key[i] = key[i];
	row.etag = (const char *)sqlite3_column_text(st, 0);
	row.doc = (const char *)sqlite3_column_text(st, 1);
	row.doc_len = (size_t)sqlite3_column_bytes(st, 1);
	row.secondary = (const char *)sqlite3_column_text(st, 2);
	if (!row.etag || !row.doc)
		return sqlite3_errcode(b->db) == SQLITE_NOMEM
			   ? -ENOMEM
			   : sql_err(b, SQLITE_CORRUPT, "get", e);
	return fn(userdata, &row);
}

/* After a conditional write changed nothing: was it absent, or another
 * version? */
static int absent_or_stale(struct sqlite_store *b, enum store_collection c, const char *const key[],
			   struct err *e)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	const char *name = store_collection_name(c);
	int r, rc;

	r = doc_stmt(b, c, OP_ETAG, 0, &st, e);
	if (r < 0)
		return r;
	r = bind_key(b, st, c, key, e);
	if (r < 0)
		return r;
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return err_set(e, -ENOENT, "%s: not found", name);
	if (rc != SQLITE_ROW)
		return sql_err(b, rc, "read etag", e);
	return err_set(e, -ESTALE, "%s: the etag does not match the current version", name);
}

static int put_locked(struct sqlite_store *b, const struct store_put_args *a, struct err *e)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	const char *name = store_collection_name(a->coll);
	enum doc_op op;
	int r, rc;

	if (a->create_only)
		op = OP_INSERT;
	else if (!a->if_match)
		op = OP_UPSERT;
	else if (streq(a->if_match, "*"))
		op = OP_UPDATE;
	else
		op = OP_UPDATE_MATCH;
	r = doc_stmt(b, a->coll, op, 0, &st, e);
	if (r < 0)
		return r;
	r = bind_key(b, st, a->coll, a->key, e);
	if (r >= 0 && tables[a->coll].secondary)
		r = bind_str(b, st, P_SEC, a->secondary, e);
	if (r >= 0)
		r = bind_str(b, st, P_ETAG, a->etag, e);
	if (r >= 0)
		r = bind_text(b, st, P_DOC, a->doc, a->doc_len, e);
	if (r >= 0 && op == OP_UPDATE_MATCH)
		r = bind_str(b, st, P_IF_MATCH, a->if_match, e);
	if (r < 0)
		return r;
	rc = sqlite3_step(st);
	if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY) {
		/* Only reachable for create-only: an upsert resolves it. */
		return err_set(e, -EEXIST, "%s: a document with this key already exists", name);
	}
	if (rc != SQLITE_DONE)
		return sql_err(b, rc, "put", e);
	if ((op == OP_UPDATE || op == OP_UPDATE_MATCH) && sqlite3_changes(b->db) == 0) {
		sqlite3_reset(st);
		return absent_or_stale(b, a->coll, a->key, e);
	}
	return 0;
}

static int sqlite_put(void *be, const struct store_put_args *a, struct err *e)
{
	struct sqlite_store *b = be;
	bool implicit;
	int r;

	r = write_begin(b, &implicit, e);
	if (r < 0)
		return r;
	r = put_locked(b, a, e);
	return write_end(b, implicit, r, e);
}

static int del_locked(struct sqlite_store *b, enum store_collection c, const char *const key[],
		      const char *if_match, struct err *e)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	bool match = if_match && !streq(if_match, "*");
	int r;

	r = doc_stmt(b, c, match ? OP_DELETE_MATCH : OP_DELETE, 0, &st, e);
	if (r < 0)
		return r;
	r = bind_key(b, st, c, key, e);
	if (r >= 0 && match)
		r = bind_str(b, st, P_IF_MATCH, if_match, e);
	if (r >= 0)
		r = step_done(b, st, "delete", e);
	if (r < 0)
		return r;
	if (sqlite3_changes(b->db) == 0) {
		sqlite3_reset(st);
		return absent_or_stale(b, c, key, e);
	}
	return 0;
}

static int sqlite_del(void *be, enum store_collection c, const char *const key[],
		      const char *if_match, struct err *e)
{
	struct sqlite_store *b = be;
	bool implicit;
	int r;

	r = write_begin(b, &implicit, e);
	if (r < 0)
		return r;
	r = del_locked(b, c, key, if_match, e);
	return write_end(b, implicit, r, e);
}

static unsigned kind_of(const struct store_selection *sel)
{
	return sel->secondary ? KIND_SECONDARY : sel->nprefix;
}

static int bind_selection(struct sqlite_store *b, sqlite3_stmt *st,
			  const struct store_selection *sel, struct err *e)
{
	int r = 0;

	if (sel->secondary)
		return bind_str(b, st, P_SEC, sel->secondary, e);
	for (unsigned i = 0; r >= 0 && i < sel->nprefix; i++)
		r = bind_str(b, st, P_KEY + (int)i, sel->prefix[i], e);
	return r;
}

static int sqlite_list(void *be, const struct store_selection *sel, const char *const after[],
		       size_t limit, store_row_fn fn, void *userdata, struct err *e)
{
	struct sqlite_store *b = be;
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	unsigned n = store_collection_info(sel->coll)->nkeys;
	unsigned from = sel->secondary ? 0 : sel->nprefix;
	int r, rc;

	if (b->lost)
		return lost_err(b, e);
	r = doc_stmt(b, sel->coll, OP_LIST, kind_of(sel) * 2 + (after ? 1 : 0), &st, e);
	if (r < 0)
		return r;
	r = bind_selection(b, st, sel, e);
	for (unsigned i = 0; r >= 0 && after && i < n - from; i++)
		r = bind_str(b, st, P_AFTER + (int)i, after[i], e);
	if (r >= 0)
		r = bind_int(b, st, P_LIMIT, (int64_t)limit, e);
	if (r < 0)
		return r;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_row row = {0};

		for (unsigned i = 0; i < n; i++) {
			row.key[i] = (const char *)sqlite3_column_text(st, (int)i);
			if (!row.key[i])
				return sql_err(b, SQLITE_CORRUPT, "list", e);
		}
		row.secondary = (const char *)sqlite3_column_text(st, STORE_KEY_PARTS);
		row.etag = (const char *)sqlite3_column_text(st, STORE_KEY_PARTS + 1);
		row.doc = (const char *)sqlite3_column_text(st, STORE_KEY_PARTS + 2);
		row.doc_len = (size_t)sqlite3_column_bytes(st, STORE_KEY_PARTS + 2);
		if (!row.etag || !row.doc)
			return sql_err(b, SQLITE_CORRUPT, "list", e);
		r = fn(userdata, &row);
		if (r < 0)
			return r;
	}
	if (rc != SQLITE_DONE)
		return sql_err(b, rc, "list", e);
	return 0;
}

static int sqlite_count(void *be, const struct store_selection *sel, uint64_t *ret, struct err *e)
{
	struct sqlite_store *b = be;
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	int r, rc;

	if (b->lost)
		return lost_err(b, e);
	r = doc_stmt(b, sel->coll, OP_COUNT, kind_of(sel), &st, e);
	if (r >= 0)
		r = bind_selection(b, st, sel, e);
	if (r < 0)
		return r;
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW)
		return sql_err(b, rc, "count", e);
	*ret = (uint64_t)sqlite3_column_int64(st, 0);
	return 0;
}

static int sqlite_delete_matching(void *be, const struct store_selection *sel, uint64_t *ret,
				  struct err *e)
{
	struct sqlite_store *b = be;
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	bool implicit;
	int r;

	r = write_begin(b, &implicit, e);
	if (r < 0)
		return r;
	r = doc_stmt(b, sel->coll, OP_DELETE_MATCHING, kind_of(sel), &st, e);
	if (r >= 0)
		r = bind_selection(b, st, sel, e);
	if (r >= 0)
		r = step_done(b, st, "delete", e);
	if (r >= 0)
		*ret = (uint64_t)sqlite3_changes(b->db);
	stmt_resetp(&st);
	return write_end(b, implicit, r, e);
}

/* ---- telemetry ---- */

static int sqlite_telemetry_append(void *be, const char *hub, const char *device_id,
				   int64_t enqueued_ms, const char *properties,
				   size_t properties_len, const void *body, size_t body_len,
				   uint64_t *ret_seq, struct err *e)
{
	struct sqlite_store *b = be;
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	bool implicit;
	int r, rc;

	if (body_len > INT_MAX)
		return err_set(e, -E2BIG, "telemetry: the body is too large");
	r = write_begin(b, &implicit, e);
	if (r < 0)
		return r;
	r = misc(b, M_TEL_APPEND, &st, e);
	if (r >= 0)
		r = bind_str(b, st, 1, hub, e);
	if (r >= 0)
		r = bind_str(b, st, 2, device_id, e);
	if (r >= 0)
		r = bind_int(b, st, 3, enqueued_ms, e);
	if (r >= 0)
		r = bind_text(b, st, 4, properties, properties_len, e);
	if (r >= 0) {
		/* A NULL pointer would bind SQL NULL; the column wants a blob. */
		rc = sqlite3_bind_blob(st, 5, body_len ? body : "", (int)body_len, SQLITE_STATIC);
		if (rc != SQLITE_OK)
			r = sql_err(b, rc, "bind", e);
	}
	if (r >= 0)
		r = step_done(b, st, "append telemetry", e);
	if (r >= 0)
		*ret_seq = (uint64_t)sqlite3_last_insert_rowid(b->db);
	stmt_resetp(&st);
	return write_end(b, implicit, r, e);
}

static int sqlite_telemetry_list(void *be, const char *hub, const char *device_id, size_t max,
				 store_message_fn fn, void *userdata, struct err *e)
{
	struct sqlite_store *b = be;
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	int r, rc;

	if (b->lost)
		return lost_err(b, e);
	r = misc(b, M_TEL_LIST, &st, e);
	if (r >= 0)
		r = bind_str(b, st, 1, hub, e);
	if (r >= 0)
		r = bind_str(b, st, 2, device_id, e);
	if (r >= 0)
		r = bind_int(b, st, 3, (int64_t)max, e);
	if (r < 0)
		return r;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_message_row row = {
		    .seq = (uint64_t)sqlite3_column_int64(st, 0),
		    .enqueued_ms = sqlite3_column_int64(st, 1),
		    .properties = (const char *)sqlite3_column_text(st, 2),
		    .properties_len = (size_t)sqlite3_column_bytes(st, 2),
		    .body = sqlite3_column_blob(st, 3),
		    .body_len = (size_t)sqlite3_column_bytes(st, 3),
		};

		r = fn(userdata, &row);
		if (r < 0)
			return r;
	}
	if (rc != SQLITE_DONE)
		return sql_err(b, rc, "list telemetry", e);
	return 0;
}

static int sqlite_telemetry_prune(void *be, int64_t before_ms, uint64_t *ret, struct err *e)
{
	struct sqlite_store *b = be;
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	bool implicit;
	int r;

	r = write_begin(b, &implicit, e);
	if (r < 0)
		return r;
	r = misc(b, M_TEL_PRUNE, &st, e);
	if (r >= 0)
		r = bind_int(b, st, 1, before_ms, e);
	if (r >= 0)
		r = step_done(b, st, "prune telemetry", e);
	if (r >= 0)
		*ret = (uint64_t)sqlite3_changes(b->db);
	stmt_resetp(&st);
	return write_end(b, implicit, r, e);
}

static int sqlite_check(void *be, struct err *e)
{
	struct sqlite_store *b = be;
	sqlite3_stmt *st = NULL;
	int rc, r = 0;

	rc = sqlite3_prepare_v2(b->db, "PRAGMA integrity_check", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return sql_err(b, rc, "integrity check", e);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const char *res = (const char *)sqlite3_column_text(st, 0);

		if (!res || !streq(res, "ok")) {
			char first[200];

			/* The report is several lines: keep the start of it on one. */
			snprintf(first, sizeof(first), "%s", res ? res : "no result");
			for (char *c = first; *c; c++)
				if (*c == '\n')
					*c = ' ';
			r = err_set(e, -EBADMSG, "%s: integrity check failed: %s", b->path, first);
		}
	} else {
		r = sql_err(b, rc, "integrity check", e);
	}
	sqlite3_finalize(st);
	return r;
}

/* ---- open / close ---- */

/* SQLite's own busy handler backs off to 100 ms sleeps; under steady
 * contention between a few writers, short sleeps with jitter keep the
 * lock handed over quickly and evenly. */
static int busy_handler(void *arg, int count)
{
	struct sqlite_store *b = arg;
	struct timespec now, nap;
	int64_t elapsed_ms;
	unsigned shift = count < 5 ? (unsigned)count : 5;
	uint64_t x;

	clock_gettime(CLOCK_MONOTONIC, &now);
	if (count == 0)
		b->busy_start = now;
	elapsed_ms = (now.tv_sec - b->busy_start.tv_sec) * 1000 +
		     (now.tv_nsec - b->busy_start.tv_nsec) / 1000000;
	if (elapsed_ms >= (int64_t)b->busy_timeout_ms)
		return 0;
	x = b->jitter;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	b->jitter = x;
	/* 50 us doubling to 1.6 ms, plus up to as much again at random. */
	nap.tv_sec = 0;
	nap.tv_nsec = (long)((50000ull << shift) + x % (50000ull << shift));
	nanosleep(&nap, NULL);
	return 1;
}

static int exec_sql(struct sqlite_store *b, const char *sql, const char *what, struct err *e)
{
	int rc = sqlite3_exec(b->db, sql, NULL, NULL, NULL);

	if (rc != SQLITE_OK)
		return sql_err(b, rc, what, e);
	return 0;
}

/* A one-row, one-column query. */
static int query_int(struct sqlite_store *b, const char *sql, int64_t *ret, struct err *e)
{
	sqlite3_stmt *st = NULL;
	int rc, r = 0;

	rc = sqlite3_prepare_v2(b->db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return sql_err(b, rc, "read the schema", e);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*ret = sqlite3_column_int64(st, 0);
	else
		r = sql_err(b, rc, "read the schema", e);
	sqlite3_finalize(st);
	return r;
}

static int schema_version(struct sqlite_store *b, int64_t *ret, struct err *e)
{
	int64_t n = 0;
	int r;

	r = query_int(b,
		      "SELECT count(*) FROM sqlite_master "
		      "WHERE type = 'table' AND name = 'schema_version'",
		      &n, e);
	if (r < 0)
		return r;
	if (n == 0) {
		r = query_int(
		    b, "SELECT count(*) FROM sqlite_master WHERE name NOT GLOB 'sqlite_*'", &n, e);
		if (r < 0)
			return r;
		if (n > 0)
			return err_set(e, -EPROTO,
				       "%s: not an edgeid store (it holds other tables and no "
				       "schema_version)",
				       b->path);
		*ret = 0;
		return 0;
	}
	return query_int(b, "SELECT coalesce(max(version), 0) FROM schema_version", ret, e);
}

static int too_new(struct sqlite_store *b, int64_t v, struct err *e)
{
	return err_set(e, -EPROTO,
		       "%s: the database has schema version %lld, newer than the %d this "
		       "program knows; use a newer edgeid",
		       b->path, (long long)v, SCHEMA_VERSION);
}

static int migrate(struct sqlite_store *b, struct err *e)
{
	int64_t v;
	int r;

	r = schema_version(b, &v, e);
	if (r < 0)
		return r;
	if (v > SCHEMA_VERSION)
		return too_new(b, v, e);
	if (v == SCHEMA_VERSION)
		return 0;

	/* Another process may be migrating too: look again under the lock. */
	r = exec_sql(b, "BEGIN IMMEDIATE", "begin migration", e);
	if (r < 0)
		return r;
	r = schema_version(b, &v, e);
	if (r >= 0 && v > SCHEMA_VERSION)
		r = too_new(b, v, e);
	if (r >= 0 && v == 0)
		r = exec_sql(b,
			     "CREATE TABLE schema_version ("
			     "  version INTEGER PRIMARY KEY,"
			     "  applied_utc TEXT NOT NULL)",
			     "create schema_version", e);
	for (int64_t i = v; r >= 0 && i < SCHEMA_VERSION; i++) {
		char sql[160];

		r = exec_sql(b, migrations[i], "migrate", e);
		if (r < 0)
			break;
		snprintf(sql, sizeof(sql),
			 "INSERT INTO schema_version VALUES "
			 "(%lld, strftime('%%Y-%%m-%%dT%%H:%%M:%%fZ', 'now'))",
			 (long long)i + 1);
		r = exec_sql(b, sql, "migrate", e);
		if (r >= 0)
			log_debug("store %s: schema migrated to version %lld", b->path,
				  (long long)i + 1);
	}
	if (r >= 0)
		return exec_sql(b, "COMMIT", "commit migration", e);
	(void)sqlite3_exec(b->db, "ROLLBACK", NULL, NULL, NULL);
	return r;
}

static int fsync_parent(const char *path)
{
	_cleanup_free_ char *dir = strdup(path);
	_cleanup_close_ int fd = -1;
	char *slash;

	if (!dir)
		return -ENOMEM;
	slash = strrchr(dir, '/');
	if (!slash)
		dir[0] = '.', dir[1] = '\0';
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) < 0)
		return -errno;
	return 0;
}

/* Create the file ourselves: mode 0600 (SQLite gives its -wal and -shm
 * files the database's mode) and a durable directory entry, which SQLite
 * does not sync for the main file. */
static int create_file(const char *path, struct err *e)
{
	_cleanup_close_ int fd = -1;
	int r;

	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, 0600);
	if (fd < 0) {
		if (errno == EEXIST)
			return 0;
		r = -errno;
		return err_set(e, r, "%s: cannot create the database: %s", path, strerror(-r));
	}
	r = fsync(fd) < 0 ? -errno : fsync_parent(path);
	if (r < 0)
		return err_set(e, r, "%s: cannot sync the new database: %s", path, strerror(-r));
	return 0;
}

static void sqlite_close(void *be)
{
	struct sqlite_store *b = be;

	if (!b)
		return;
	if (b->db && !sqlite3_get_autocommit(b->db))
		(void)sqlite3_exec(b->db, "ROLLBACK", NULL, NULL, NULL);
	for (unsigned c = 0; c < STORE_COLLECTION_COUNT; c++)
		for (unsigned op = 0; op < OP_MAX; op++)
			for (unsigned v = 0; v < VARIANTS; v++)
				sqlite3_finalize(b->doc_stmt[c][op][v]);
	for (unsigned m = 0; m < M_MAX; m++)
		sqlite3_finalize(b->misc[m]);
	sqlite3_close_v2(b->db);
	free(b->path);
	free(b);
}
DEFINE_CLEANUP_FUNC(struct sqlite_store *, sqlite_close)

static int sqlite_open(const char *path, const struct store_params *p, void **ret, struct err *e)
{
	_cleanup_(sqlite_closep) struct sqlite_store *b = NULL;
	_cleanup_free_ char *copy = NULL;
	struct timespec now;
	sqlite3_stmt *st = NULL;
	const char *mode;
	char pragmas[256];
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
	int rc, r;

	r = create_file(path, e);
	if (r < 0)
		return r;
	copy = strdup(path);
	b = calloc(1, sizeof(*b));
	if (!copy || !b)
		return -ENOMEM;
	b->path = TAKE_PTR(copy);
	b->busy_timeout_ms = p->busy_timeout_ms;
	clock_gettime(CLOCK_REALTIME, &now);
	b->jitter = ((uint64_t)getpid() << 32) ^ (uint64_t)now.tv_nsec ^ 0x9e3779b97f4a7c15ull;

	rc = sqlite3_open_v2(path, &b->db, flags, NULL);
	if (rc != SQLITE_OK) {
		if (!b->db)
			return -ENOMEM;
		r = translate(rc);
		if (sqlite3_system_errno(b->db) > 0)
			r = -sqlite3_system_errno(b->db);
		return err_set(e, r ? r : -EIO, "%s: cannot open the database: %s", path,
			       sqlite3_errmsg(b->db));
	}
	sqlite3_extended_result_codes(b->db, 1);
	/* No schema tricks through SQL, no extension loading. */
	sqlite3_db_config(b->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
	sqlite3_db_config(b->db, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0, NULL);
	sqlite3_busy_handler(b->db, busy_handler, b);
	/* Keep the WAL file when the last handle closes: commits that append
	 * to a growing file make every flush a file system journal commit
	 * too (measured: about ten times slower than overwriting in place),
	 * so a restarted service should not have to grow it again. Its size
	 * stays bounded by journal_size_limit. */
	sqlite3_file_control(b->db, "main", SQLITE_FCNTL_PERSIST_WAL, &(int){1});

	/* The journal mode is a property of the file. Reading it needs no
	 * lock; setting it takes one (the busy handler waits) and answers the
	 * mode in effect. Only the first open of a new file sets it, so a
	 * process opening a busy database does not queue for the write lock. */
	rc = sqlite3_prepare_v2(b->db, "PRAGMA journal_mode", -1, &st, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		mode = (const char *)sqlite3_column_text(st, 0);
		if (!mode || strcasecmp(mode, "wal") != 0) {
			sqlite3_finalize(st);
			rc = sqlite3_prepare_v2(b->db, "PRAGMA journal_mode = WAL", -1, &st, NULL);
			if (rc == SQLITE_OK)
				rc = sqlite3_step(st);
		}
	}
	if (rc != SQLITE_ROW) {
		r = sql_err(b, rc, "enable WAL", e);
		sqlite3_finalize(st);
		return r;
	}
	mode = (const char *)sqlite3_column_text(st, 0);
	if (!mode || strcasecmp(mode, "wal") != 0) {
		sqlite3_finalize(st);
		return err_set(e, -ENOTSUP,
			       "%s: the database cannot use a WAL journal (is it on a network "
			       "file system?)",
			       path);
	}
	sqlite3_finalize(st);

	snprintf(pragmas, sizeof(pragmas),
		 "PRAGMA synchronous = %s;"
		 "PRAGMA trusted_schema = OFF;"
		 "PRAGMA foreign_keys = OFF;"
		 "PRAGMA temp_store = MEMORY;"
		 "PRAGMA cache_size = -16384;"
		 "PRAGMA journal_size_limit = 67108864;",
		 p->sync == STORE_SYNC_FULL ? "FULL" : "NORMAL");
	r = exec_sql(b, pragmas, "configure", e);
	if (r < 0)
		return r;
	r = migrate(b, e);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(b);
	return 0;
}

const struct store_ops store_sqlite_ops = {
    .name = "sqlite",
    .open_store = sqlite_open,
    .close_store = sqlite_close,
    .get = sqlite_get,
    .put = sqlite_put,
    .del = sqlite_del,
    .list = sqlite_list,
    .count = sqlite_count,
    .delete_matching = sqlite_delete_matching,
    .tx_begin = sqlite_tx_begin,
    .tx_commit = sqlite_tx_commit,
    .tx_rollback = sqlite_tx_rollback,
    .tx_depth = sqlite_tx_depth,
    .telemetry_append = sqlite_telemetry_append,
    .telemetry_list = sqlite_telemetry_list,
    .telemetry_prune = sqlite_telemetry_prune,
    .check = sqlite_check,
};
