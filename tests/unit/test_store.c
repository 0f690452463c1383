/* SPDX-License-Identifier: MIT */
/*
 * The store on real SQLite files in a fresh directory per test: URLs,
 * schema migrations, documents and etags in every collection, keyset
 * pagination, secondary keys, nested transactions, two processes writing
 * at once, size limits, telemetry. Two cases print throughput figures as
 * TAP diagnostics (never asserted): a 100k-enrollment database and the
 * registration write pattern with synchronous FULL and NORMAL, with and
 * without group commit.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <sqlite3.h>

#include "cloud/store/store.h"
#include "common/macro.h"

struct fixture {
	char dir[64];
	char path[128];
	char url[160];
	struct store *s;
};

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	return remove(path) < 0 ? -1 : 0;
}

static int setup_dir(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/edgeid-test-store-XXXXXX");
	if (!mkdtemp(f->dir)) {
		free(f);
		return -1;
	}
	snprintf(f->path, sizeof(f->path), "%s/store.db", f->dir);
	snprintf(f->url, sizeof(f->url), "sqlite://%s", f->path);
	*state = f;
	return 0;
}

/* A directory and a store opened in it. */
static int setup(void **state)
{
	struct fixture *f;
	struct err e = {0};

	if (setup_dir(state) < 0)
		return -1;
	f = *state;
	if (store_open(f->path, &f->s, &e) < 0) {
		fprintf(stderr, "store_open: %s\n", e.msg);
		return -1;
	}
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	store_close(f->s);
	nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A small document: {"id": id, "n": n}. */
static json_t *doc_n(const char *id, int n)
{
	json_t *j = json_pack("{s:s, s:i}", "id", id, "n", n);

	assert_non_null(j);
	return j;
}

/* Write doc (taking the caller's reference) or fail the test. */
static void put_ok(struct store *s, enum store_collection c, const struct store_key *key,
		   json_t *doc, char **ret_etag)
{
	struct store_write w = {.coll = c, .key = *key, .doc = doc};
	struct err e = {0};
	int r = store_put(s, &w, ret_etag, &e);

	json_decref(doc);
	if (r < 0)
		fail_msg("store_put: %d %s", r, e.msg);
}

static int put_n(struct store *s, enum store_collection c, const struct store_key *key, int n,
		 const char *if_match, bool create_only, char **ret_etag, struct err *e)
{
	_cleanup_(json_decrefp) json_t *doc = doc_n("x", n);
	struct store_write w = {
	    .coll = c, .key = *key, .doc = doc, .if_match = if_match, .create_only = create_only};

	return store_put(s, &w, ret_etag, e);
}

/* The "n" of the document at key, or -1 when absent. */
static int get_n(struct store *s, enum store_collection c, const struct store_key *key)
{
	_cleanup_(json_decrefp) json_t *doc = NULL;
	struct err e = {0};
	int r = store_get(s, c, key, &doc, NULL, &e);

	if (r == -ENOENT)
		return -1;
	if (r < 0)
		fail_msg("store_get: %d %s", r, e.msg);
	return (int)json_integer_value(json_object_get(doc, "n"));
}

/* ---- opening ---- */

static void open_err(const char *url, int code, const char *msg)
{
	struct store *s = NULL;
	struct err e = {0};

	assert_int_equal(store_open(url, &s, &e), code);
	assert_null(s);
	assert_string_equal(e.msg, msg);
}

static void test_open_urls(void **state)
{
	struct fixture *f = *state;
	_cleanup_store_ struct store *a = NULL, *b = NULL;
	char dir[160], url[200];
	struct err e = {0};

	open_err("", -EINVAL, "store URL is empty");
	open_err("postgresql://edgeid:secret@db.example/edgeid", -EPROTONOSUPPORT,
		 "store URL: PostgreSQL is not supported yet; use sqlite:///PATH or a file path");
	open_err("postgres://db/x", -EPROTONOSUPPORT,
		 "store URL: PostgreSQL is not supported yet; use sqlite:///PATH or a file path");
	open_err("mysql://db/x", -EPROTONOSUPPORT,
		 "store URL: unknown scheme \"mysql\" (expected sqlite or postgresql)");
	open_err("sqlite://host/x.db", -EINVAL,
		 "store URL: expected sqlite:///ABSOLUTE/PATH (a host part is not supported)");
	open_err("sqlite:///", -EINVAL, "store URL: no database path given");
	open_err("sqlite:///tmp/x%zz", -EINVAL, "store URL: the path is not validly encoded");
	open_err("sqlite:///tmp/x.db?synchronous=off", -EINVAL,
		 "store URL: synchronous: expected \"full\" or \"normal\", got \"off\"");
	open_err("sqlite:///tmp/x.db?busy_timeout_ms=-1", -EINVAL,
		 "store URL: busy_timeout_ms: expected milliseconds from 0 to 600000, got \"-1\"");
	open_err("sqlite:///tmp/x.db?busy_timeout_ms=5s", -EINVAL,
		 "store URL: busy_timeout_ms: expected milliseconds from 0 to 600000, got \"5s\"");
	open_err("sqlite:///tmp/x.db?cache=big", -EINVAL,
		 "store URL: unknown parameter 'cache' (expected synchronous or busy_timeout_ms)");
	open_err("sqlite:///tmp/x.db?synchronous", -EINVAL,
		 "store URL: parameter 'synchronous' has no value");

	/* A URL and a plain path name the same file; %20 is decoded. */
	snprintf(dir, sizeof(dir), "%s/with space", f->dir);
	assert_int_equal(mkdir(dir, 0700), 0);
	snprintf(url, sizeof(url),
		 "sqlite://%s/with%%20space/s.db?synchronous=normal&busy_timeout_ms=100", f->dir);
	assert_int_equal(store_open(url, &a, &e), 0);
	put_ok(a, STORE_CA_CERTIFICATES, STORE_KEY("root"), doc_n("root", 7), NULL);
	snprintf(url, sizeof(url), "%s/with space/s.db", f->dir);
	assert_int_equal(store_open(url, &b, &e), 0);
	assert_int_equal(get_n(b, STORE_CA_CERTIFICATES, STORE_KEY("root")), 7);
}

static void test_open_missing_directory(void **state)
{
	struct fixture *f = *state;
	char path[200], msg[300];

	snprintf(path, sizeof(path), "%s/no/such/dir.db", f->dir);
	snprintf(msg, sizeof(msg), "%s: cannot create the database: No such file or directory",
		 path);
	open_err(path, -ENOENT, msg);
}

static void test_open_private_file_and_cloexec(void **state)
{
	struct fixture *f = *state;
	const char *suffix[] = {"", "-wal", "-shm"};
	struct stat st;
	DIR *d;
	struct dirent *de;
	mode_t saved = umask(022);

	/* The fixture opened it under the test's umask; open another. */
	store_close(f->s);
	f->s = NULL;
	unlink(f->path);
	assert_int_equal(store_open(f->path, &f->s, NULL), 0);
	umask(saved);
	put_ok(f->s, STORE_ENROLLMENTS, STORE_KEY("r1"), doc_n("r1", 1), NULL);
	for (size_t i = 0; i < ARRAY_SIZE(suffix); i++) {
		char p[200];

		snprintf(p, sizeof(p), "%s%s", f->path, suffix[i]);
		assert_int_equal(stat(p, &st), 0);
		assert_int_equal(st.st_mode & 0777, 0600);
	}

	/* Every descriptor the store holds is close-on-exec. */
	d = opendir("/proc/self/fd");
	assert_non_null(d);
	while ((de = readdir(d))) {
		char link[300], target[512], *end;
		ssize_t n;
		long fd;

		if (de->d_name[0] == '.')
			continue;
		errno = 0;
		fd = strtol(de->d_name, &end, 10);
		assert_true(errno == 0 && *end == '\0' && fd >= 0 && fd <= INT32_MAX);
		if (fd == dirfd(d))
			continue;
		snprintf(link, sizeof(link), "/proc/self/fd/%s", de->d_name);
		n = readlink(link, target, sizeof(target) - 1);
		if (n <= 0)
			continue;
		target[n] = '\0';
		if (strstr(target, f->path))
			assert_true(fcntl((int)fd, F_GETFD) & FD_CLOEXEC);
	}
	closedir(d);
}

static void raw_exec(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	char *msg = NULL;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("%s: %s", sql, msg);
	sqlite3_close(db);
}

static int64_t raw_int(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int64_t v;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

static const char *raw_text(const char *path, const char *sql, char *buf, size_t size)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	snprintf(buf, size, "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	sqlite3_close(db);
	return buf;
}

static void test_migration_from_empty_file(void **state)
{
	struct fixture *f = *state;
	char buf[32];
	int fd;

	fd = open(f->path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(store_open(f->path, &f->s, NULL), 0);
	assert_int_equal(raw_int(f->path, "SELECT max(version) FROM schema_version"), 1);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM schema_version"), 1);
	assert_string_equal(raw_text(f->path, "PRAGMA journal_mode", buf, sizeof(buf)), "wal");
	store_close(f->s);
	/* Reopening applies nothing twice. */
	assert_int_equal(store_open(f->path, &f->s, NULL), 0);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM schema_version"), 1);
	assert_int_equal(
	    raw_int(f->path, "SELECT count(*) FROM sqlite_master WHERE name = 'enrollments'"), 1);
}

static void test_refuses_newer_schema(void **state)
{
	struct fixture *f = *state;
	char msg[300];

	assert_int_equal(store_open(f->path, &f->s, NULL), 0);
	store_close(f->s);
	f->s = NULL;
	raw_exec(f->path, "INSERT INTO schema_version VALUES (2, 'later')");
	snprintf(msg, sizeof(msg),
		 "%s: the database has schema version 2, newer than the 1 this program knows; "
		 "use a newer edgeid",
		 f->path);
	open_err(f->path, -EPROTO, msg);
}

static void test_refuses_foreign_database(void **state)
{
	struct fixture *f = *state;
	char msg[300];

	raw_exec(f->path, "CREATE TABLE accounts (name TEXT)");
	snprintf(msg, sizeof(msg),
		 "%s: not an edgeid store (it holds other tables and no schema_version)", f->path);
	open_err(f->path, -EPROTO, msg);
}

static void test_refuses_non_database(void **state)
{
	struct fixture *f = *state;
	char junk[8192];
	struct store *s = NULL;
	struct err e = {0};
	FILE *fp;

	memset(junk, 'x', sizeof(junk));
	fp = fopen(f->path, "we");
	assert_non_null(fp);
	assert_int_equal(fwrite(junk, 1, sizeof(junk), fp), sizeof(junk));
	fclose(fp);
	assert_int_equal(store_open(f->path, &s, &e), -EBADMSG);
	assert_non_null(strstr(e.msg, "file is not a database"));
}

/* ---- documents ---- */

struct coll_case {
	enum store_collection c;
	struct store_key key;
};

static const struct coll_case every_collection[] = {
    {STORE_ENROLLMENTS, {{"reg-1"}}},
    {STORE_ENROLLMENT_GROUPS, {{"group-1"}}},
    {STORE_REGISTRATIONS, {{"reg-1"}}},
    {STORE_CA_CERTIFICATES, {{"root-ca"}}},
    {STORE_HUB_DEVICES, {{"hub1.example.net", "dev1"}}},
    {STORE_HUB_MODULES, {{"hub1.example.net", "dev1", "mod1"}}},
    {STORE_TWINS, {{"hub1.example.net", "dev1", NULL}}},
    {STORE_TWINS, {{"hub1.example.net", "dev1", "mod1"}}},
};

static void test_crud_every_collection(void **state)
{
	struct fixture *f = *state;

	for (size_t i = 0; i < ARRAY_SIZE(every_collection); i++) {
		const struct coll_case *cc = &every_collection[i];
		_cleanup_(json_decrefp) json_t *doc = NULL, *got = NULL, *doc2 = NULL;
		_cleanup_free_ char *etag = NULL, *etag_got = NULL, *etag2 = NULL;
		_cleanup_store_page_ struct store_page *page = NULL;
		struct store_query q = {.coll = cc->c};
		struct err e = {0};
		char msg[64];
		uint64_t n;

		doc = json_pack("{s:s, s:{s:s}, s:b}", "name", "first", "nested", "k", "v", "flag",
				1);
		put_ok(f->s, cc->c, &cc->key, json_incref(doc), &etag);
		assert_non_null(etag);
		assert_int_equal(store_get(f->s, cc->c, &cc->key, &got, &etag_got, &e), 0);
		assert_true(json_equal(doc, got));
		assert_string_equal(etag, etag_got);

		assert_int_equal(store_list(f->s, &q, &page, &e), 0);
		assert_int_equal(page->n, i == ARRAY_SIZE(every_collection) - 1 ? 2 : 1);
		assert_null(page->continuation);
		assert_int_equal(store_count(f->s, &q, &n, &e), 0);
		assert_int_equal(n, page->n);

		doc2 = doc_n("second", 2);
		put_ok(f->s, cc->c, &cc->key, json_incref(doc2), &etag2);
		assert_string_not_equal(etag, etag2);
		assert_int_equal(get_n(f->s, cc->c, &cc->key), 2);

		assert_int_equal(store_delete(f->s, cc->c, &cc->key, NULL, &e), 0);
		assert_int_equal(get_n(f->s, cc->c, &cc->key), -1);
		err_clear(&e);
		assert_int_equal(store_delete(f->s, cc->c, &cc->key, NULL, &e), -ENOENT);
		snprintf(msg, sizeof(msg), "%s: not found", store_collection_name(cc->c));
		assert_string_equal(e.msg, msg);
		/* Put it back, for the listing count of the next case. */
		if (cc->c == STORE_TWINS)
			put_ok(f->s, cc->c, &cc->key, json_incref(doc), NULL);
	}
}

static void test_not_found_messages(void **state)
{
	struct fixture *f = *state;
	struct err e = {0};

	assert_int_equal(store_get(f->s, STORE_HUB_DEVICES, STORE_KEY("h", "d"), NULL, NULL, &e),
			 -ENOENT);
	assert_string_equal(e.msg, "hub devices: not found");
	err_clear(&e);
	assert_int_equal(store_delete(f->s, STORE_ENROLLMENTS, STORE_KEY("r"), NULL, &e), -ENOENT);
	assert_string_equal(e.msg, "enrollments: not found");
}

static void test_etag_rules(void **state)
{
	struct fixture *f = *state;
	const struct store_key *k = STORE_KEY("reg-etag");
	_cleanup_free_ char *e1 = NULL, *e2 = NULL, *e3 = NULL, *e4 = NULL;
	struct err e = {0};

	/* If-Match on a document that does not exist. */
	assert_int_equal(put_n(f->s, STORE_ENROLLMENTS, k, 1, "*", false, NULL, &e), -ENOENT);
	assert_int_equal(put_n(f->s, STORE_ENROLLMENTS, k, 1, "abc", false, NULL, NULL), -ENOENT);
	assert_int_equal(get_n(f->s, STORE_ENROLLMENTS, k), -1);

	assert_int_equal(put_n(f->s, STORE_ENROLLMENTS, k, 1, NULL, true, &e1, NULL), 0);
	/* Create-only when it exists. */
	err_clear(&e);
	assert_int_equal(put_n(f->s, STORE_ENROLLMENTS, k, 9, NULL, true, NULL, &e), -EEXIST);
	assert_string_equal(e.msg, "enrollments: a document with this key already exists");
	assert_int_equal(get_n(f->s, STORE_ENROLLMENTS, k), 1);

	/* The current etag matches, once. */
	assert_int_equal(put_n(f->s, STORE_ENROLLMENTS, k, 2, e1, false, &e2, NULL), 0);
	assert_string_not_equal(e1, e2);
	err_clear(&e);
	assert_int_equal(put_n(f->s, STORE_ENROLLMENTS, k, 3, e1, false, NULL, &e), -ESTALE);
	assert_string_equal(e.msg, "enrollments: the etag does not match the current version");
	assert_int_equal(get_n(f->s, STORE_ENROLLMENTS, k), 2);

	/* The wildcard matches any version. */
	assert_int_equal(put_n(f->s, STORE_ENROLLMENTS, k, 4, "*", false, &e3, NULL), 0);
	assert_string_not_equal(e2, e3);
	/* No If-Match: unconditional. */
	assert_int_equal(put_n(f->s, STORE_ENROLLMENTS, k, 5, NULL, false, &e4, NULL), 0);

	/* Bad combinations. */
	err_clear(&e);
	assert_int_equal(put_n(f->s, STORE_ENROLLMENTS, k, 6, e4, true, NULL, &e), -EINVAL);
	assert_string_equal(e.msg, "enrollments: create-only and If-Match exclude each other");
	assert_int_equal(put_n(f->s, STORE_ENROLLMENTS, k, 6, "", false, NULL, NULL), -EINVAL);

	/* Delete with a stale etag, then with the current one. */
	err_clear(&e);
	assert_int_equal(store_delete(f->s, STORE_ENROLLMENTS, k, e3, &e), -ESTALE);
	assert_int_equal(get_n(f->s, STORE_ENROLLMENTS, k), 5);
	assert_int_equal(store_delete(f->s, STORE_ENROLLMENTS, k, e4, NULL), 0);
	assert_int_equal(store_delete(f->s, STORE_ENROLLMENTS, k, "*", NULL), -ENOENT);

	/* A recreated document does not match the old etag. */
	assert_int_equal(put_n(f->s, STORE_ENROLLMENTS, k, 7, NULL, true, NULL, NULL), 0);
	assert_int_equal(put_n(f->s, STORE_ENROLLMENTS, k, 8, e4, false, NULL, NULL), -ESTALE);
	assert_int_equal(store_delete(f->s, STORE_ENROLLMENTS, k, "*", NULL), 0);
}

static void test_case_insensitive_ids(void **state)
{
	struct fixture *f = *state;
	_cleanup_(json_decrefp) json_t *got = NULL;
	_cleanup_store_page_ struct store_page *page = NULL;
	_cleanup_(json_decrefp) json_t *doc = json_pack("{s:s}", "registrationId", "Device-ABC.01");

	put_ok(f->s, STORE_ENROLLMENTS, STORE_KEY("Device-ABC.01"), json_incref(doc), NULL);
	assert_int_equal(
	    store_get(f->s, STORE_ENROLLMENTS, STORE_KEY("device-abc.01"), &got, NULL, NULL), 0);
	/* The original spelling is in the document, the key is folded. */
	assert_string_equal(json_string_value(json_object_get(got, "registrationId")),
			    "Device-ABC.01");
	assert_int_equal(
	    put_n(f->s, STORE_ENROLLMENTS, STORE_KEY("DEVICE-abc.01"), 2, NULL, true, NULL, NULL),
	    -EEXIST);
	assert_int_equal(
	    store_list(f->s, &(struct store_query){.coll = STORE_ENROLLMENTS}, &page, NULL), 0);
	assert_int_equal(page->n, 1);
	assert_string_equal(page->items[0].key[0], "device-abc.01");
	assert_null(page->items[0].key[1]);

	/* Registrations fold too; group ids, device and module ids do not. */
	put_ok(f->s, STORE_REGISTRATIONS, STORE_KEY("REG"), doc_n("r", 1), NULL);
	assert_int_equal(get_n(f->s, STORE_REGISTRATIONS, STORE_KEY("reg")), 1);
	put_ok(f->s, STORE_ENROLLMENT_GROUPS, STORE_KEY("Group"), doc_n("g", 1), NULL);
	assert_int_equal(get_n(f->s, STORE_ENROLLMENT_GROUPS, STORE_KEY("group")), -1);
	/* Hub names are DNS names: case-insensitive. */
	put_ok(f->s, STORE_HUB_DEVICES, STORE_KEY("Hub1.Example.NET", "Dev1"), doc_n("d", 1), NULL);
	put_ok(f->s, STORE_HUB_DEVICES, STORE_KEY("hub1.example.net", "dev1"), doc_n("d", 2), NULL);
	assert_int_equal(get_n(f->s, STORE_HUB_DEVICES, STORE_KEY("HUB1.example.net", "Dev1")), 1);
	assert_int_equal(get_n(f->s, STORE_HUB_DEVICES, STORE_KEY("hub1.example.net", "dev1")), 2);
	assert_int_equal(get_n(f->s, STORE_HUB_DEVICES, STORE_KEY("hub1.example.net", "DEV1")), -1);
}

static void test_key_validation(void **state)
{
	struct fixture *f = *state;
	char longkey[STORE_KEY_MAX + 2];
	struct err e = {0};

	memset(longkey, 'a', sizeof(longkey));
	longkey[STORE_KEY_MAX + 1] = '\0';
	assert_int_equal(
	    put_n(f->s, STORE_ENROLLMENTS, STORE_KEY(longkey), 1, NULL, false, NULL, &e),
	    -ENAMETOOLONG);
	assert_string_equal(e.msg, "enrollments: key part 1 is 257 bytes long, the limit is 256");
	longkey[STORE_KEY_MAX] = '\0';
	assert_int_equal(
	    put_n(f->s, STORE_ENROLLMENTS, STORE_KEY(longkey), 1, NULL, false, NULL, NULL), 0);

	err_clear(&e);
	assert_int_equal(put_n(f->s, STORE_ENROLLMENTS, STORE_KEY(""), 1, NULL, false, NULL, &e),
			 -EINVAL);
	assert_string_equal(e.msg, "enrollments: key part 1 is empty");
	err_clear(&e);
	assert_int_equal(put_n(f->s, STORE_HUB_DEVICES, STORE_KEY("hub"), 1, NULL, false, NULL, &e),
			 -EINVAL);
	assert_string_equal(e.msg, "hub devices: key part 2 is missing");
	err_clear(&e);
	assert_int_equal(
	    put_n(f->s, STORE_ENROLLMENTS, STORE_KEY("a", "b"), 1, NULL, false, NULL, &e), -EINVAL);
	assert_string_equal(e.msg, "enrollments: the key has 1 part(s), got more");
	err_clear(&e);
	assert_int_equal(
	    put_n(f->s, STORE_ENROLLMENTS, STORE_KEY("bad\xc3("), 1, NULL, false, NULL, &e),
	    -EINVAL);
	assert_string_equal(e.msg, "enrollments: key part 1 is not valid UTF-8");
	/* Modules need a module id; a twin without one is the device's. */
	assert_int_equal(
	    put_n(f->s, STORE_HUB_MODULES, STORE_KEY("h", "d", NULL), 1, NULL, false, NULL, NULL),
	    -EINVAL);
	assert_int_equal(put_n(f->s, STORE_TWINS, STORE_KEY("h", "d"), 1, NULL, false, NULL, NULL),
			 0);
	assert_int_equal(get_n(f->s, STORE_TWINS, STORE_KEY("h", "d", "")), 1);
	/* UTF-8 keys are fine. */
	assert_int_equal(put_n(f->s, STORE_HUB_DEVICES, STORE_KEY("h", "g\xc3\xa9rard"), 1, NULL,
			       false, NULL, NULL),
			 0);
	/* Telemetry is not a document collection. */
	err_clear(&e);
	assert_int_equal(
	    put_n(f->s, STORE_TELEMETRY, STORE_KEY("h", "d"), 1, NULL, false, NULL, &e), -EINVAL);
	assert_string_equal(e.msg, "store: 7 is not a document collection");
}

static void test_document_limits(void **state)
{
	struct fixture *f = *state;
	_cleanup_free_ char *big = malloc(70000);
	_cleanup_(json_decrefp) json_t *doc = NULL, *arr = NULL;
	struct store_write w = {.coll = STORE_ENROLLMENTS, .key = {{"r1"}}};
	struct err e = {0};

	assert_non_null(big);
	memset(big, 'k', 69999);
	memcpy(big, "SECRET-KEY-MATERIAL", 19);
	big[69999] = '\0';
	doc = json_pack("{s:s}", "primaryKey", big);
	w.doc = doc;
	assert_int_equal(store_put(f->s, &w, NULL, &e), -E2BIG);
	assert_string_equal(e.msg, "enrollments: the document is 70016 bytes, the limit is 65536");
	assert_null(strstr(e.msg, "SECRET"));

	/* Twins are allowed more by default, and limits are per handle. */
	w.coll = STORE_TWINS;
	w.key = (struct store_key){{"h", "d"}};
	assert_int_equal(store_put(f->s, &w, NULL, NULL), 0);
	assert_int_equal(store_set_limit(f->s, STORE_TWINS, 1024), 0);
	err_clear(&e);
	assert_int_equal(store_put(f->s, &w, NULL, &e), -E2BIG);
	assert_string_equal(e.msg, "twins: the document is 70016 bytes, the limit is 1024");
	assert_int_equal(store_set_limit(f->s, STORE_TWINS, 0), -EINVAL);
	assert_int_equal(store_set_limit(f->s, STORE_TWINS, STORE_LIMIT_CEILING + 1), -EINVAL);

	/* A document is an object. */
	arr = json_array();
	w.doc = arr;
	err_clear(&e);
	assert_int_equal(store_put(f->s, &w, NULL, &e), -EINVAL);
	assert_string_equal(e.msg, "twins: the document must be a JSON object");
	w.doc = NULL;
	assert_int_equal(store_put(f->s, &w, NULL, NULL), -EINVAL);
}

/* ---- listing ---- */

static void shuffle(int *v, int n)
{
	for (int i = n - 1; i > 0; i--) {
		int j = rand() % (i + 1), t = v[i];

		v[i] = v[j];
		v[j] = t;
	}
}

static void test_pagination_1000_by_7(void **state)
{
	struct fixture *f = *state;
	static int order[1000];
	static char seen[1000];
	_cleanup_free_ char *resume = NULL;
	_cleanup_store_ struct store *other = NULL;
	struct store_query q = {.coll = STORE_ENROLLMENTS, .page_size = 7};
	char prev[32] = "", first_after_resume[32] = "";
	size_t total = 0, pages = 0;

	for (int i = 0; i < 1000; i++)
		order[i] = i;
	srand(7);
	shuffle(order, 1000);
	assert_int_equal(store_tx_begin(f->s, NULL), 0);
	for (int i = 0; i < 1000; i++) {
		char id[32];

		snprintf(id, sizeof(id), "Reg-%04d", order[i]);
		put_ok(f->s, STORE_ENROLLMENTS, STORE_KEY(id), doc_n(id, order[i]), NULL);
	}
	assert_int_equal(store_tx_commit(f->s, NULL), 0);

	memset(seen, 0, sizeof(seen));
	for (;;) {
		_cleanup_store_page_ struct store_page *page = NULL;
		_cleanup_free_ char *next = NULL;
		struct err e = {0};

		if (store_list(f->s, &q, &page, &e) < 0)
			fail_msg("store_list: %s", e.msg);
		pages++;
		for (size_t i = 0; i < page->n; i++) {
			int n = (int)json_integer_value(json_object_get(page->items[i].doc, "n"));
			char want[32];

			snprintf(want, sizeof(want), "reg-%04d", n);
			assert_string_equal(page->items[i].key[0], want);
			assert_true(strcmp(prev, want) < 0);
			snprintf(prev, sizeof(prev), "%s", want);
			assert_int_equal(seen[n], 0);
			seen[n] = 1;
			assert_non_null(page->items[i].etag);
			total++;
		}
		if (!page->continuation) {
			assert_int_equal(page->n, 1000 % 7);
			break;
		}
		assert_int_equal(page->n, 7);
		next = strdup(page->continuation);
		if (pages == 50) {
			resume = strdup(next);
			snprintf(first_after_resume, sizeof(first_after_resume), "reg-%04d", 350);
		}
		free((char *)q.continuation);
		q.continuation = TAKE_PTR(next);
	}
	free((char *)q.continuation);
	assert_int_equal(total, 1000);
	assert_int_equal(pages, 1000 / 7 + 1);

	/* Another handle (another process, in production) resumes from a
	 * token exactly where the first left off. */
	assert_int_equal(store_open(f->path, &other, NULL), 0);
	{
		_cleanup_store_page_ struct store_page *page = NULL;

		q.continuation = resume;
		assert_int_equal(store_list(other, &q, &page, NULL), 0);
		assert_int_equal(page->n, 7);
		assert_string_equal(page->items[0].key[0], first_after_resume);
		assert_string_equal(page->items[6].key[0], "reg-0356");
	}
}

static void test_pagination_full_last_page(void **state)
{
	struct fixture *f = *state;
	_cleanup_store_page_ struct store_page *p1 = NULL, *p2 = NULL, *p0 = NULL;
	struct store_query q = {.coll = STORE_CA_CERTIFICATES, .page_size = 7};

	assert_int_equal(store_list(f->s, &q, &p0, NULL), 0);
	assert_int_equal(p0->n, 0);
	assert_null(p0->continuation);
	for (int i = 0; i < 14; i++) {
		char id[16];

		snprintf(id, sizeof(id), "ca-%02d", i);
		put_ok(f->s, STORE_CA_CERTIFICATES, STORE_KEY(id), doc_n(id, i), NULL);
	}
	assert_int_equal(store_list(f->s, &q, &p1, NULL), 0);
	assert_int_equal(p1->n, 7);
	assert_non_null(p1->continuation);
	q.continuation = p1->continuation;
	assert_int_equal(store_list(f->s, &q, &p2, NULL), 0);
	assert_int_equal(p2->n, 7);
	/* No empty page after a full last one. */
	assert_null(p2->continuation);
	assert_string_equal(p2->items[6].key[0], "ca-13");
}

static void test_page_size_bounds(void **state)
{
	struct fixture *f = *state;
	_cleanup_store_page_ struct store_page *p0 = NULL, *pbig = NULL;

	assert_int_equal(store_tx_begin(f->s, NULL), 0);
	for (int i = 0; i < STORE_PAGE_MAX + 5; i++) {
		char id[16];

		snprintf(id, sizeof(id), "g%05d", i);
		put_ok(f->s, STORE_ENROLLMENT_GROUPS, STORE_KEY(id), doc_n(id, i), NULL);
	}
	assert_int_equal(store_tx_commit(f->s, NULL), 0);
	assert_int_equal(
	    store_list(f->s, &(struct store_query){.coll = STORE_ENROLLMENT_GROUPS}, &p0, NULL), 0);
	assert_int_equal(p0->n, STORE_PAGE_DEFAULT);
	assert_int_equal(
	    store_list(f->s,
		       &(struct store_query){.coll = STORE_ENROLLMENT_GROUPS, .page_size = 100000},
		       &pbig, NULL),
	    0);
	assert_int_equal(pbig->n, STORE_PAGE_MAX);
	assert_non_null(pbig->continuation);
}

static void test_continuation_tokens_checked(void **state)
{
	struct fixture *f = *state;
	_cleanup_store_page_ struct store_page *p = NULL, *bad = NULL;
	char big[STORE_TOKEN_MAX + 2];
	struct store_query q = {.coll = STORE_ENROLLMENTS, .page_size = 1};
	struct err e = {0};

	put_ok(f->s, STORE_ENROLLMENTS, STORE_KEY("a"), doc_n("a", 1), NULL);
	put_ok(f->s, STORE_ENROLLMENTS, STORE_KEY("b"), doc_n("b", 2), NULL);
	assert_int_equal(store_list(f->s, &q, &p, NULL), 0);
	assert_non_null(p->continuation);

	/* A token of another collection or selection. */
	q.coll = STORE_ENROLLMENT_GROUPS;
	q.continuation = p->continuation;
	assert_int_equal(store_list(f->s, &q, &bad, &e), -EINVAL);
	assert_string_equal(e.msg, "continuation token belongs to another query");
	q.coll = STORE_REGISTRATIONS;
	q.secondary = "g";
	err_clear(&e);
	assert_int_equal(store_list(f->s, &q, &bad, &e), -EINVAL);
	assert_string_equal(e.msg, "continuation token belongs to another query");

	/* Garbage, truncation, trailing bytes, oversize. */
	q.coll = STORE_ENROLLMENTS;
	q.secondary = NULL;
	q.continuation = "not a token!";
	err_clear(&e);
	assert_int_equal(store_list(f->s, &q, &bad, &e), -EINVAL);
	assert_string_equal(e.msg, "continuation token is malformed");
	q.continuation = "AQAAAQ"; /* v1, enrollments, kind 0, one part, then nothing */
	assert_int_equal(store_list(f->s, &q, &bad, NULL), -EINVAL);
	q.continuation = "AQAAAQABYQA"; /* ... part "a", then a stray byte */
	assert_int_equal(store_list(f->s, &q, &bad, NULL), -EINVAL);
	q.continuation = "AQAAAQABYQ"; /* exactly part "a": valid, gives "b" */
	assert_int_equal(store_list(f->s, &q, &bad, NULL), 0);
	assert_int_equal(bad->n, 1);
	assert_string_equal(bad->items[0].key[0], "b");
	memset(big, 'A', sizeof(big));
	big[sizeof(big) - 1] = '\0';
	q.continuation = big;
	err_clear(&e);
	assert_int_equal(store_list(f->s, &q, &p, &e), -EINVAL);
	assert_string_equal(e.msg, "continuation token is too long");
}

static void test_prefix_listing(void **state)
{
	struct fixture *f = *state;
	const char *hub = "hub1.example.net";
	_cleanup_store_page_ struct store_page *mods = NULL, *all = NULL, *twins = NULL, *p2 = NULL;
	struct store_query q = {.coll = STORE_HUB_MODULES, .prefix = {{hub, "dev1"}}};
	struct err e = {0};
	uint64_t n;

	put_ok(f->s, STORE_HUB_MODULES, STORE_KEY(hub, "dev1", "m3"), doc_n("m", 3), NULL);
	put_ok(f->s, STORE_HUB_MODULES, STORE_KEY(hub, "dev1", "m1"), doc_n("m", 1), NULL);
	put_ok(f->s, STORE_HUB_MODULES, STORE_KEY(hub, "dev1", "m2"), doc_n("m", 2), NULL);
	put_ok(f->s, STORE_HUB_MODULES, STORE_KEY(hub, "dev2", "m1"), doc_n("m", 4), NULL);
	put_ok(f->s, STORE_HUB_MODULES, STORE_KEY("hub2", "dev1", "m1"), doc_n("m", 5), NULL);

	assert_int_equal(store_list(f->s, &q, &mods, NULL), 0);
	assert_int_equal(mods->n, 3);
	for (size_t i = 0; i < 3; i++) {
		char want[8];

		snprintf(want, sizeof(want), "m%zu", i + 1);
		assert_string_equal(mods->items[i].key[0], hub);
		assert_string_equal(mods->items[i].key[1], "dev1");
		assert_string_equal(mods->items[i].key[2], want);
	}
	/* Paging inside a prefix stays inside it. */
	q.page_size = 2;
	assert_int_equal(store_list(f->s, &q, &p2, NULL), 0);
	assert_int_equal(p2->n, 2);
	q.continuation = p2->continuation;
	{
		_cleanup_store_page_ struct store_page *p3 = NULL;

		assert_int_equal(store_list(f->s, &q, &p3, NULL), 0);
		assert_int_equal(p3->n, 1);
		assert_string_equal(p3->items[0].key[2], "m3");
		assert_null(p3->continuation);
	}

	q = (struct store_query){.coll = STORE_HUB_MODULES, .prefix = {{"HUB1.example.net"}}};
	assert_int_equal(store_list(f->s, &q, &all, NULL), 0);
	assert_int_equal(all->n, 4);
	assert_int_equal(store_count(f->s, &q, &n, NULL), 0);
	assert_int_equal(n, 4);

	/* The device twin ("") sorts before its module twins. */
	put_ok(f->s, STORE_TWINS, STORE_KEY(hub, "dev1", "m1"), doc_n("t", 2), NULL);
	put_ok(f->s, STORE_TWINS, STORE_KEY(hub, "dev1"), doc_n("t", 1), NULL);
	q = (struct store_query){.coll = STORE_TWINS, .prefix = {{hub, "dev1"}}};
	assert_int_equal(store_list(f->s, &q, &twins, NULL), 0);
	assert_int_equal(twins->n, 2);
	assert_string_equal(twins->items[0].key[2], "");
	assert_string_equal(twins->items[1].key[2], "m1");

	/* Bad prefixes. */
	q = (struct store_query){.coll = STORE_HUB_MODULES, .prefix = {{hub, "dev1", "m1"}}};
	assert_int_equal(store_list(f->s, &q, &all, &e), -EINVAL);
	assert_string_equal(e.msg, "hub modules: a key prefix has at most 2 part(s), got 3");
	q = (struct store_query){.coll = STORE_HUB_MODULES, .prefix = {{NULL, "dev1"}}};
	err_clear(&e);
	assert_int_equal(store_list(f->s, &q, &all, &e), -EINVAL);
	assert_string_equal(e.msg, "hub modules: key prefix part 2 is set after an unset one");
	q = (struct store_query){.coll = STORE_ENROLLMENTS, .prefix = {{"x"}}};
	assert_int_equal(store_list(f->s, &q, &all, NULL), -EINVAL);

	/* Deleting a device's modules and twins. */
	q = (struct store_query){.coll = STORE_HUB_MODULES, .prefix = {{hub, "dev1"}}};
	assert_int_equal(store_delete_matching(f->s, &q, &n, NULL), 0);
	assert_int_equal(n, 3);
	q = (struct store_query){.coll = STORE_TWINS, .prefix = {{hub, "dev1"}}};
	assert_int_equal(store_delete_matching(f->s, &q, &n, NULL), 0);
	assert_int_equal(n, 2);
	assert_int_equal(get_n(f->s, STORE_HUB_MODULES, STORE_KEY(hub, "dev2", "m1")), 4);
	q = (struct store_query){.coll = STORE_HUB_MODULES};
	err_clear(&e);
	assert_int_equal(store_delete_matching(f->s, &q, &n, &e), -EINVAL);
	assert_string_equal(e.msg, "hub modules: deleting needs a key prefix or a secondary key, "
				   "not the whole collection");
	assert_int_equal(store_count(f->s, &q, &n, NULL), 0);
	assert_int_equal(n, 2);
}

static void put_reg(struct store *s, const char *id, const char *group)
{
	_cleanup_(json_decrefp) json_t *doc = json_pack("{s:s}", "registrationId", id);
	struct store_write w = {
	    .coll = STORE_REGISTRATIONS, .key = {{id}}, .doc = doc, .secondary = group};
	struct err e = {0};

	if (store_put(s, &w, NULL, &e) < 0)
		fail_msg("put_reg: %s", e.msg);
}

static void test_secondary_key_listing(void **state)
{
	struct fixture *f = *state;
	struct store_query q = {
	    .coll = STORE_REGISTRATIONS, .secondary = "group-a", .page_size = 3};
	size_t got = 0;
	char prev[16] = "";
	struct err e = {0};
	uint64_t n;

	for (int i = 0; i < 30; i++) {
		char id[16];

		snprintf(id, sizeof(id), "r%02d", i);
		put_reg(f->s, id, i % 3 == 0 ? "group-a" : i % 3 == 1 ? "group-b" : NULL);
	}
	for (;;) {
		_cleanup_store_page_ struct store_page *p = NULL;

		assert_int_equal(store_list(f->s, &q, &p, NULL), 0);
		for (size_t i = 0; i < p->n; i++) {
			const char *k = p->items[i].key[0];
			int num = (k[1] - '0') * 10 + (k[2] - '0');

			assert_int_equal(num % 3, 0);
			assert_string_equal(p->items[i].secondary, "group-a");
			assert_true(strcmp(prev, p->items[i].key[0]) < 0);
			snprintf(prev, sizeof(prev), "%s", p->items[i].key[0]);
			got++;
		}
		free((char *)q.continuation);
		q.continuation = p->continuation ? strdup(p->continuation) : NULL;
		if (!q.continuation)
			break;
	}
	assert_int_equal(got, 10);
	assert_int_equal(store_count(f->s, &q, &n, NULL), 0);
	assert_int_equal(n, 10);

	/* Moving a registration to another group moves it in the index. */
	put_reg(f->s, "r00", "group-b");
	assert_int_equal(store_count(f->s, &q, &n, NULL), 0);
	assert_int_equal(n, 9);
	q.secondary = "group-b";
	assert_int_equal(store_count(f->s, &q, &n, NULL), 0);
	assert_int_equal(n, 11);
	/* Listing everything shows the group of each. */
	{
		_cleanup_store_page_ struct store_page *p = NULL;

		assert_int_equal(
		    store_list(f->s,
			       &(struct store_query){.coll = STORE_REGISTRATIONS, .page_size = 3},
			       &p, NULL),
		    0);
		assert_string_equal(p->items[0].secondary, "group-b");
		assert_string_equal(p->items[1].secondary, "group-b");
		assert_null(p->items[2].secondary);
	}
	assert_int_equal(store_delete_matching(f->s, &q, &n, NULL), 0);
	assert_int_equal(n, 11);

	{
		_cleanup_(json_decrefp) json_t *doc = doc_n("x", 1);
		struct store_write w = {
		    .coll = STORE_REGISTRATIONS, .key = {{"x"}}, .doc = doc, .secondary = ""};

		err_clear(&e);
		assert_int_equal(store_put(f->s, &w, NULL, &e), -EINVAL);
		assert_string_equal(e.msg, "registrations: the secondary key is empty");
	}
	err_clear(&e);

	/* Secondary keys exist only where the collection has one. */
	q = (struct store_query){.coll = STORE_ENROLLMENTS, .secondary = "g"};
	assert_int_equal(store_count(f->s, &q, &n, &e), -EINVAL);
	assert_string_equal(e.msg, "enrollments: no secondary key in this collection");
	{
		_cleanup_(json_decrefp) json_t *doc = doc_n("x", 1);
		struct store_write w = {
		    .coll = STORE_ENROLLMENTS, .key = {{"x"}}, .doc = doc, .secondary = "g"};

		assert_int_equal(store_put(f->s, &w, NULL, NULL), -EINVAL);
	}
}

/* ---- transactions ---- */

static void test_transactions(void **state)
{
	struct fixture *f = *state;
	_cleanup_store_ struct store *other = NULL;
	struct err e = {0};
	uint64_t n;

	assert_int_equal(store_open(f->path, &other, NULL), 0);
	assert_int_equal(store_tx_commit(f->s, &e), -EINVAL);
	assert_int_equal(store_tx_rollback(f->s, NULL), -EINVAL);

	/* Rollback leaves nothing. */
	assert_int_equal(store_tx_begin(f->s, NULL), 0);
	assert_int_equal(store_tx_depth(f->s), 1);
	put_reg(f->s, "r1", "g");
	put_ok(f->s, STORE_HUB_DEVICES, STORE_KEY("h", "r1"), doc_n("d", 1), NULL);
	assert_int_equal(get_n(f->s, STORE_HUB_DEVICES, STORE_KEY("h", "r1")), 1);
	/* Not visible to another handle before the commit. */
	assert_int_equal(get_n(other, STORE_HUB_DEVICES, STORE_KEY("h", "r1")), -1);
	assert_int_equal(store_tx_rollback(f->s, NULL), 0);
	assert_int_equal(store_tx_depth(f->s), 0);
	assert_int_equal(get_n(f->s, STORE_HUB_DEVICES, STORE_KEY("h", "r1")), -1);
	assert_int_equal(store_get(f->s, STORE_REGISTRATIONS, STORE_KEY("r1"), NULL, NULL, NULL),
			 -ENOENT);

	/* Commit makes both visible to the other handle. */
	assert_int_equal(store_tx_begin(f->s, NULL), 0);
	put_reg(f->s, "r1", "g");
	put_ok(f->s, STORE_HUB_DEVICES, STORE_KEY("h", "r1"), doc_n("d", 1), NULL);
	/* A failed write inside does not spoil the transaction. */
	assert_int_equal(
	    put_n(f->s, STORE_HUB_DEVICES, STORE_KEY("h", "r1"), 5, NULL, true, NULL, NULL),
	    -EEXIST);
	assert_int_equal(store_tx_commit(f->s, NULL), 0);
	assert_int_equal(get_n(other, STORE_HUB_DEVICES, STORE_KEY("h", "r1")), 1);
	assert_int_equal(store_get(other, STORE_REGISTRATIONS, STORE_KEY("r1"), NULL, NULL, NULL),
			 0);

	/* Nested: the inner rollback undoes only the inner writes. */
	assert_int_equal(store_tx_begin(f->s, NULL), 0);
	put_ok(f->s, STORE_HUB_DEVICES, STORE_KEY("h", "outer"), doc_n("d", 1), NULL);
	assert_int_equal(store_tx_begin(f->s, NULL), 0);
	assert_int_equal(store_tx_depth(f->s), 2);
	put_ok(f->s, STORE_HUB_DEVICES, STORE_KEY("h", "inner1"), doc_n("d", 2), NULL);
	assert_int_equal(store_tx_rollback(f->s, NULL), 0);
	assert_int_equal(store_tx_begin(f->s, NULL), 0);
	put_ok(f->s, STORE_HUB_DEVICES, STORE_KEY("h", "inner2"), doc_n("d", 3), NULL);
	assert_int_equal(store_tx_commit(f->s, NULL), 0);
	assert_int_equal(store_tx_depth(f->s), 1);
	/* An inner commit is not durable or visible yet. */
	assert_int_equal(get_n(other, STORE_HUB_DEVICES, STORE_KEY("h", "inner2")), -1);
	assert_int_equal(store_tx_commit(f->s, NULL), 0);
	assert_int_equal(get_n(other, STORE_HUB_DEVICES, STORE_KEY("h", "outer")), 1);
	assert_int_equal(get_n(other, STORE_HUB_DEVICES, STORE_KEY("h", "inner1")), -1);
	assert_int_equal(get_n(other, STORE_HUB_DEVICES, STORE_KEY("h", "inner2")), 3);

	/* Closing a handle with an open transaction rolls it back. */
	assert_int_equal(store_tx_begin(other, NULL), 0);
	put_ok(other, STORE_HUB_DEVICES, STORE_KEY("h", "abandoned"), doc_n("d", 1), NULL);
	store_close(other);
	other = NULL;
	assert_int_equal(get_n(f->s, STORE_HUB_DEVICES, STORE_KEY("h", "abandoned")), -1);
	assert_int_equal(
	    store_count(f->s, &(struct store_query){.coll = STORE_HUB_DEVICES, .prefix = {{"h"}}},
			&n, NULL),
	    0);
	assert_int_equal(n, 3);
}

static void test_busy_timeout_reported(void **state)
{
	struct fixture *f = *state;
	_cleanup_store_ struct store *other = NULL;
	char url[200], msg[400];
	struct err e = {0};

	snprintf(url, sizeof(url), "%s?busy_timeout_ms=50", f->url);
	assert_int_equal(store_open(url, &other, NULL), 0);
	assert_int_equal(store_tx_begin(f->s, NULL), 0);
	assert_int_equal(put_n(other, STORE_ENROLLMENTS, STORE_KEY("r"), 1, NULL, false, NULL, &e),
			 -EBUSY);
	snprintf(msg, sizeof(msg),
		 "%s: begin: the database stayed locked by another process for more than 50 ms",
		 f->path);
	assert_string_equal(e.msg, msg);
	/* Reads go on while another handle writes. */
	assert_int_equal(get_n(other, STORE_ENROLLMENTS, STORE_KEY("r")), -1);
	assert_int_equal(store_tx_rollback(f->s, NULL), 0);
	assert_int_equal(put_n(other, STORE_ENROLLMENTS, STORE_KEY("r"), 1, NULL, false, NULL, &e),
			 0);
}

/* Each child: read-modify-write of one shared counter in a transaction,
 * and documents of its own, written one by one. */
static int child_writer(const char *path, int id, int rounds)
{
	struct store *s = NULL;
	struct err e = {0};
	int r;

	r = store_open(path, &s, &e);
	if (r < 0)
		goto fail;
	for (int i = 0; i < rounds; i++) {
		char key[32];
		int n;

		r = store_tx_begin(s, &e);
		if (r < 0)
			goto fail;
		n = get_n(s, STORE_ENROLLMENT_GROUPS, STORE_KEY("counter"));
		r = put_n(s, STORE_ENROLLMENT_GROUPS, STORE_KEY("counter"), n < 0 ? 1 : n + 1, NULL,
			  false, NULL, &e);
		if (r < 0)
			goto fail;
		r = store_tx_commit(s, &e);
		if (r < 0)
			goto fail;
		snprintf(key, sizeof(key), "p%d-%04d", id, i);
		r = put_n(s, STORE_ENROLLMENTS, STORE_KEY(key), i, NULL, true, NULL, &e);
		if (r < 0)
			goto fail;
	}
	store_close(s);
	return 0;
fail:
	fprintf(stderr, "child %d: %d %s\n", id, r, e.msg);
	store_close(s);
	return 1;
}

static void test_two_processes_write_concurrently(void **state)
{
	struct fixture *f = *state;
	enum { ROUNDS = 300, CHILDREN = 2 };
	pid_t pid[CHILDREN];
	uint64_t n;

	for (int c = 0; c < CHILDREN; c++) {
		pid[c] = fork();
		assert_true(pid[c] >= 0);
		if (pid[c] == 0)
			_exit(child_writer(f->path, c, ROUNDS));
	}
	for (int c = 0; c < CHILDREN; c++) {
		int status;

		assert_int_equal(waitpid(pid[c], &status, 0), pid[c]);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}
	/* No increment lost, every document there. */
	assert_int_equal(get_n(f->s, STORE_ENROLLMENT_GROUPS, STORE_KEY("counter")),
			 ROUNDS * CHILDREN);
	assert_int_equal(
	    store_count(f->s, &(struct store_query){.coll = STORE_ENROLLMENTS}, &n, NULL), 0);
	assert_int_equal(n, ROUNDS * CHILDREN);
	assert_int_equal(store_check(f->s, NULL), 0);
}

/* ---- telemetry ---- */

static void append(struct store *s, const char *dev, int64_t t, const char *body, size_t len,
		   json_t *props, uint64_t *ret_seq)
{
	struct store_message m = {
	    .enqueued_ms = t, .properties = props, .body = (void *)body, .body_len = len};
	struct err e = {0};

	if (store_telemetry_append(s, "hub1", dev, &m, ret_seq, &e) < 0)
		fail_msg("append: %s", e.msg);
}

static void test_telemetry(void **state)
{
	struct fixture *f = *state;
	_cleanup_store_messages_ struct store_messages *l = NULL, *l3 = NULL, *other = NULL;
	_cleanup_(json_decrefp) json_t *props = json_pack("{s:s}", "iothub-app-kind", "temp");
	_cleanup_free_ char *big = calloc(1, STORE_TELEMETRY_BODY_MAX_DEFAULT + 1);
	struct store_message m = {.enqueued_ms = 1};
	uint64_t seq[6], n;
	struct err e = {0};

	append(f->s, "dev1", 1000, "a", 1, NULL, &seq[0]);
	append(f->s, "dev1", 3000, "c\0c", 3, props, &seq[1]);
	append(f->s, "dev1", 2000, "b", 1, NULL, &seq[2]);
	append(f->s, "dev1", 3000, "", 0, NULL, &seq[3]); /* same time: the later seq first */
	append(f->s, "dev2", 5000, "x", 1, NULL, &seq[4]);
	assert_true(seq[0] < seq[1] && seq[1] < seq[2] && seq[2] < seq[3] && seq[3] < seq[4]);

	assert_int_equal(store_telemetry_list(f->s, "HUB1", "dev1", 0, &l, NULL), 0);
	assert_int_equal(l->n, 4);
	assert_int_equal(l->items[0].seq, seq[3]);
	assert_int_equal(l->items[0].body_len, 0);
	assert_non_null(l->items[0].body);
	assert_null(l->items[0].properties);
	assert_int_equal(l->items[1].seq, seq[1]);
	assert_int_equal(l->items[1].enqueued_ms, 3000);
	assert_int_equal(l->items[1].body_len, 3);
	assert_memory_equal(l->items[1].body, "c\0c", 3);
	assert_true(json_equal(l->items[1].properties, props));
	assert_int_equal(l->items[2].enqueued_ms, 2000);
	assert_int_equal(l->items[3].enqueued_ms, 1000);

	/* Bounded: the newest max. */
	assert_int_equal(store_telemetry_list(f->s, "hub1", "dev1", 2, &l3, NULL), 0);
	assert_int_equal(l3->n, 2);
	assert_int_equal(l3->items[1].seq, seq[1]);
	assert_int_equal(store_telemetry_list(f->s, "hub1", "dev3", 0, &other, NULL), 0);
	assert_int_equal(other->n, 0);

	/* The body limit (exactly at it is fine), properties an object. */
	assert_non_null(big);
	append(f->s, "dev3", 1, big, STORE_TELEMETRY_BODY_MAX_DEFAULT, NULL, NULL);
	m.body = big;
	m.body_len = STORE_TELEMETRY_BODY_MAX_DEFAULT + 1;
	assert_int_equal(store_telemetry_append(f->s, "hub1", "dev3", &m, NULL, &e), -E2BIG);
	assert_string_equal(e.msg, "telemetry: the body is 262145 bytes, the limit is 262144");
	assert_int_equal(store_set_limit(f->s, STORE_TELEMETRY, 4), 0);
	m.body_len = 5;
	assert_int_equal(store_telemetry_append(f->s, "hub1", "dev3", &m, NULL, NULL), -E2BIG);
	m.body_len = 4;
	assert_int_equal(store_telemetry_append(f->s, "hub1", "dev3", &m, NULL, NULL), 0);
	m.properties = json_array();
	err_clear(&e);
	assert_int_equal(store_telemetry_append(f->s, "hub1", "dev3", &m, NULL, &e), -EINVAL);
	assert_string_equal(e.msg, "telemetry: properties must be a JSON object");
	json_decref(m.properties);
	m.properties = NULL;
	assert_int_equal(store_telemetry_append(f->s, "hub1", "", &m, NULL, NULL), -EINVAL);

	/* Prune by age, all devices. */
	assert_int_equal(store_telemetry_prune(f->s, 2500, &n, NULL), 0);
	assert_int_equal(n, 4); /* dev1 at 1000 and 2000, dev3's two at 1 */
	store_messages_free(l);
	l = NULL;
	assert_int_equal(store_telemetry_list(f->s, "hub1", "dev1", 0, &l, NULL), 0);
	assert_int_equal(l->n, 2);
	/* Sequence numbers never go back, even after pruning the newest. */
	assert_int_equal(store_telemetry_prune(f->s, INT64_MAX, &n, NULL), 0);
	append(f->s, "dev1", 1, "z", 1, NULL, &seq[5]);
	assert_true(seq[5] > seq[4]);
}

/* ---- integrity ---- */

static void test_check_finds_corruption(void **state)
{
	struct fixture *f = *state;
	struct store *s = NULL;
	struct err e = {0};
	char junk[4096];
	int fd, r;

	assert_int_equal(store_tx_begin(f->s, NULL), 0);
	for (int i = 0; i < 2000; i++) {
		char id[16];

		snprintf(id, sizeof(id), "r%05d", i);
		put_ok(f->s, STORE_ENROLLMENTS, STORE_KEY(id), doc_n(id, i), NULL);
	}
	assert_int_equal(store_tx_commit(f->s, NULL), 0);
	assert_int_equal(store_check(f->s, NULL), 0);
	store_close(f->s); /* the last close checkpoints the WAL into the file */
	f->s = NULL;

	memset(junk, 0x5a, sizeof(junk));
	fd = open(f->path, O_WRONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	for (off_t page = 3; page < 12; page++)
		assert_int_equal(pwrite(fd, junk, sizeof(junk), page * 4096),
				 (ssize_t)sizeof(junk));
	close(fd);
	r = store_open(f->path, &s, &e);
	if (r == 0) {
		r = store_check(s, &e);
		store_close(s);
	}
	assert_int_equal(r, -EBADMSG);
	print_message("# corruption reported as: %s\n", e.msg);
}

/* ---- scale and throughput (diagnostics, not asserted) ---- */

static void test_100k_enrollments(void **state)
{
	struct fixture *f = *state;
	enum { N = 100000, LOOKUPS = 20000 };
	_cleanup_store_page_ struct store_page *page = NULL;
	struct store_query q = {.coll = STORE_ENROLLMENTS, .page_size = 100};
	double t0, t1, t2, t3;
	uint64_t n;

	t0 = now_s();
	for (int i = 0; i < N; i++) {
		json_t *doc;
		char id[32];

		if (i % 1000 == 0)
			assert_int_equal(store_tx_begin(f->s, NULL), 0);
		snprintf(id, sizeof(id), "device-%07d", (i * 7919) % N);
		doc = json_pack(
		    "{s:s, s:{s:s, s:{s:s}}, s:s}", "registrationId", id, "attestation", "type",
		    "tpm", "tpm", "endorsementKey",
		    "AToAAQALAAMAsgAgg3GXZ0SEs/"
		    "gakMyNRqXXJP1S124GUgtk8qHaGzMUaaoABgCAAEMAEAgAAAAAAAEAxsj2gUScTk1UjuioeTlfGYZr"
		    "rimExB+bScH75adUMRIi2UOMxG1kw4y+9RW/"
		    "IVoMl4e620VxZad0ARX2gUqVjYO7KPVt3dyKhZS3dkcvfBisBhP1XH9B33VqHG9SHnbnQXdBUaCgKA"
		    "fxome8UmBKfe+naTsE5fkvjb/do3/dD6l4sGBwFCnKRdln4XpM03zLpoHFao8zOwt8l/"
		    "uP3qUIxmCYv9A7m69Ms+5/pCkTu/rK4mRDsfhZ0QLfbzVI6zQFOKF/"
		    "rwsfBtFeWlWtcuJMKlXdD8TXWElTzgh7JS4qhFzreL0c1mI0GCj+"
		    "Aws0usZh7dLIVPnlgZcBhgy1SSDQMQ==",
		    "provisioningStatus", "enabled");
		put_ok(f->s, STORE_ENROLLMENTS, STORE_KEY(id), doc, NULL);
		if (i % 1000 == 999)
			assert_int_equal(store_tx_commit(f->s, NULL), 0);
	}
	t1 = now_s();
	srand(1);
	for (int i = 0; i < LOOKUPS; i++) {
		_cleanup_(json_decrefp) json_t *doc = NULL;
		char id[32];

		snprintf(id, sizeof(id), "DEVICE-%07d", rand() % N);
		assert_int_equal(
		    store_get(f->s, STORE_ENROLLMENTS, STORE_KEY(id), &doc, NULL, NULL), 0);
	}
	t2 = now_s();
	/* 51 pages of 100, each resumed from the previous token. */
	t3 = now_s();
	assert_int_equal(store_list(f->s, &q, &page, NULL), 0);
	for (int i = 0; i < 50 && page->continuation; i++) {
		_cleanup_store_page_ struct store_page *next = NULL;

		q.continuation = page->continuation;
		assert_int_equal(store_list(f->s, &q, &next, NULL), 0);
		store_page_free(page);
		page = TAKE_PTR(next);
	}
	q.continuation = NULL;
	print_message("# %d enrollments: inserted at %.0f/s (1000 per transaction); "
		      "get by key (random, case-folded) %.1f us; a page of 100 %.0f us\n",
		      N, N / (t1 - t0), (t2 - t1) * 1e6 / LOOKUPS, (now_s() - t3) * 1e6 / 51);
	assert_int_equal(
	    store_count(f->s, &(struct store_query){.coll = STORE_ENROLLMENTS}, &n, NULL), 0);
	assert_int_equal(n, N);
}

/* The DPS write pattern of one registration: read the enrollment, write
 * the registration record, write the hub device. */
static void one_registration(struct store *s, int i, bool own_tx)
{
	_cleanup_(json_decrefp) json_t *enr = NULL, *reg = NULL, *dev = NULL;
	char id[32];

	snprintf(id, sizeof(id), "bench-%06d", i % 1000);
	if (own_tx)
		assert_int_equal(store_tx_begin(s, NULL), 0);
	assert_int_equal(store_get(s, STORE_ENROLLMENTS, STORE_KEY(id), &enr, NULL, NULL), 0);
	reg = json_pack("{s:s, s:s, s:s, s:s, s:s}", "registrationId", id, "status", "assigned",
			"assignedHub", "hub1.example.net", "deviceId", id, "substatus",
			"initialAssignment");
	dev = json_pack("{s:s, s:s, s:{s:s, s:{s:s, s:s}}}", "deviceId", id, "status", "enabled",
			"authentication", "type", "sas", "symmetricKey", "primaryKey",
			"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0cw==", "secondaryKey",
			"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0cw==");
	put_ok(s, STORE_REGISTRATIONS, STORE_KEY(id), TAKE_PTR(reg), NULL);
	put_ok(s, STORE_HUB_DEVICES, STORE_KEY("hub1.example.net", id), TAKE_PTR(dev), NULL);
	if (own_tx)
		assert_int_equal(store_tx_commit(s, NULL), 0);
}

static double bench(const struct fixture *f, const char *sync, int batch, int n)
{
	_cleanup_store_ struct store *s = NULL;
	char url[200];
	double t0;

	snprintf(url, sizeof(url), "%s?synchronous=%s", f->url, sync);
	assert_int_equal(store_open(url, &s, NULL), 0);
	t0 = now_s();
	for (int i = 0; i < n; i++) {
		/* Group commit: one outer transaction for `batch` requests,
		 * each in its own inner one. */
		if (batch > 1 && i % batch == 0)
			assert_int_equal(store_tx_begin(s, NULL), 0);
		one_registration(s, i, true);
		if (batch > 1 && (i % batch == batch - 1 || i == n - 1))
			assert_int_equal(store_tx_commit(s, NULL), 0);
	}
	return n / (now_s() - t0);
}

static void test_registration_throughput(void **state)
{
	struct fixture *f = *state;
	enum { N = 2000 };

	assert_int_equal(store_tx_begin(f->s, NULL), 0);
	for (int i = 0; i < 1000; i++) {
		char id[32];

		snprintf(id, sizeof(id), "bench-%06d", i);
		put_ok(f->s, STORE_ENROLLMENTS, STORE_KEY(id), doc_n(id, i), NULL);
	}
	assert_int_equal(store_tx_commit(f->s, NULL), 0);
	print_message("# one process, registrations/s (1 read + 2 writes each): "
		      "FULL %.0f, NORMAL %.0f; group commit of 32: FULL %.0f, NORMAL %.0f\n",
		      bench(f, "full", 1, N), bench(f, "normal", 1, N), bench(f, "full", 32, N),
		      bench(f, "normal", 32, N));
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
#define TD(fn) cmocka_unit_test_setup_teardown(fn, setup_dir, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_open_urls),
	    TD(test_open_missing_directory),
	    T(test_open_private_file_and_cloexec),
	    TD(test_migration_from_empty_file),
	    TD(test_refuses_newer_schema),
	    TD(test_refuses_foreign_database),
	    TD(test_refuses_non_database),
	    T(test_crud_every_collection),
	    T(test_not_found_messages),
	    T(test_etag_rules),
	    T(test_case_insensitive_ids),
	    T(test_key_validation),
	    T(test_document_limits),
	    T(test_pagination_1000_by_7),
	    T(test_pagination_full_last_page),
	    T(test_page_size_bounds),
	    T(test_continuation_tokens_checked),
	    T(test_prefix_listing),
	    T(test_secondary_key_listing),
	    T(test_transactions),
	    T(test_busy_timeout_reported),
	    T(test_two_processes_write_concurrently),
	    T(test_telemetry),
	    T(test_check_finds_corruption),
	    T(test_100k_enrollments),
	    T(test_registration_throughput),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
