/* SPDX-License-Identifier: MIT */
/*
 * Drives the store for the crash test (test-store-crash.sh) and for
 * throughput measurements.
 *
 *   store-load-tool load URL PREFIX BATCH
 *       Registers devices PREFIX-00000000, PREFIX-00000001, ... until
 *       killed: per device an enrollment, a registration record and a hub
 *       device, each in its own inner transaction, BATCH of them in one
 *       outer transaction (group commit). Only after the outer commit has
 *       returned does it print the batch's keys, one per line: a printed
 *       key is an acknowledged write.
 *   store-load-tool verify URL FILE...
 *       Checks that every complete line (key) of the files names three
 *       documents with exactly the content "load" wrote for it, then runs
 *       the store's integrity check. Prints "verified N keys".
 *   store-load-tool bench URL PROCS SECONDS BATCH
 *       PROCS processes, each its own handle, run the DPS registration
 *       pattern (read the enrollment, write the registration record and
 *       the hub device) for SECONDS; prints registrations per second.
 *
 * Exit status: 0, 1 on a failed check or store error, 2 on bad usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cloud/store/store.h"
#include "common/buf.h"
#include "common/macro.h"

#define HUB "hub1.example.net"
#define KEY_MAX 96

static int usage(void)
{
	fprintf(stderr, "usage: store-load-tool load URL PREFIX BATCH\n"
			"       store-load-tool verify URL FILE...\n"
			"       store-load-tool bench URL PROCS SECONDS BATCH\n");
	return 2;
}

static int parse_uint(const char *s, unsigned long max, unsigned long *ret)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v > max)
		return -EINVAL;
	*ret = v;
	return 0;
}

static uint32_t fnv1a(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	return h;
}

/* The three documents of a key: their content follows from the key, so
 * that verify can tell a torn or mixed-up document from a good one. */
static json_t *enrollment_doc(const char *key)
{
	uint32_t h = fnv1a(key);
	size_t pad_len = h % 1500;
	char pad[1500];

	for (size_t i = 0; i < pad_len; i++)
		pad[i] = (char)('a' + (h + i) % 26);
	return json_pack("{s:s, s:{s:s, s:{s:s}}, s:s%, s:I}", "registrationId", key, "attestation",
			 "type", "symmetricKey", "symmetricKey", "primaryKey", key, "pad", pad,
			 pad_len, "check", (json_int_t)h);
}

static json_t *registration_doc(const char *key)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:I}", "registrationId", key, "status", "assigned",
			 "assignedHub", HUB, "deviceId", key, "check", (json_int_t)fnv1a(key) ^ 1);
}

static json_t *device_doc(const char *key)
{
	return json_pack("{s:s, s:s, s:{s:s}, s:I}", "deviceId", key, "status", "enabled",
			 "authentication", "type", "sas", "check", (json_int_t)fnv1a(key) ^ 2);
}

static int put(struct store *s, enum store_collection c, const struct store_key *key, json_t *doc,
	       const char *group, bool create_only, struct err *e)
{
	struct store_write w = {
	    .coll = c, .key = *key, .doc = doc, .secondary = group, .create_only = create_only};
	int r;

	if (!doc)
		return -ENOMEM;
	r = store_put(s, &w, NULL, e);
	json_decref(doc);
	return r;
}

static int register_one(struct store *s, const char *key, const char *group, struct err *e)
{
	int r;

	r = store_tx_begin(s, e);
	if (r < 0)
		return r;
	r = put(s, STORE_ENROLLMENTS, STORE_KEY(key), enrollment_doc(key), NULL, true, e);
	if (r >= 0)
		r = put(s, STORE_REGISTRATIONS, STORE_KEY(key), registration_doc(key), group, false,
			e);
	if (r >= 0)
		r = put(s, STORE_HUB_DEVICES, STORE_KEY(HUB, key), device_doc(key), NULL, false, e);
	if (r < 0) {
		(void)store_tx_rollback(s, NULL);
		return r;
	}
	return store_tx_commit(s, e);
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int cmd_load(const char *url, const char *prefix, unsigned long batch)
{
	_cleanup_store_ struct store *s = NULL;
	_cleanup_buf_ struct buf acked = {0};
	struct err e = {0};
	char group[KEY_MAX];
	int r;

	if (strlen(prefix) > 40 || batch == 0)
		return usage();
	snprintf(group, sizeof(group), "group-%s", prefix);
	buf_init(&acked, 0);
	r = store_open(url, &s, &e);
	if (r < 0)
		goto fail;
	for (unsigned long i = 0;; i++) {
		char key[KEY_MAX];

		if (i % batch == 0) {
			r = store_tx_begin(s, &e);
			if (r < 0)
				goto fail;
		}
		snprintf(key, sizeof(key), "%s-%08lu", prefix, i);
		r = register_one(s, key, group, &e);
		if (r < 0)
			goto fail;
		r = buf_printf(&acked, "%s\n", key);
		if (r < 0)
			goto fail;
		if (i % batch == batch - 1) {
			r = store_tx_commit(s, &e);
			if (r < 0)
				goto fail;
			/* Acknowledged only now. */
			r = write_all(STDOUT_FILENO, acked.data, acked.len);
			if (r < 0)
				goto fail;
			buf_reset(&acked);
		}
	}
fail:
	fprintf(stderr, "store-load-tool: load: %s\n", err_msg(&e, r));
	return 1;
}

static int check_doc(struct store *s, enum store_collection c, const struct store_key *key,
		     json_t *want, const char *id)
{
	_cleanup_(json_decrefp) json_t *got = NULL;
	struct err e = {0};
	int r;

	r = store_get(s, c, key, &got, NULL, &e);
	if (r < 0)
		fprintf(stderr, "%s: %s\n", id, err_msg(&e, r));
	else if (!json_equal(got, want)) {
		fprintf(stderr, "%s: %s: the document differs from what was written\n", id,
			store_collection_name(c));
		r = -1;
	}
	json_decref(want);
	return r < 0 ? -1 : 0;
}

static int cmd_verify(const char *url, char **files, int nfiles)
{
	_cleanup_store_ struct store *s = NULL;
	struct err e = {0};
	unsigned long n = 0, bad = 0;
	int r;

	r = store_open(url, &s, &e);
	if (r < 0) {
		fprintf(stderr, "store-load-tool: verify: %s\n", err_msg(&e, r));
		return 1;
	}
	for (int f = 0; f < nfiles; f++) {
		_cleanup_fclose_ FILE *fp = fopen(files[f], "re");
		char line[KEY_MAX + 2];

		if (!fp) {
			fprintf(stderr, "store-load-tool: %s: %s\n", files[f], strerror(errno));
			return 1;
		}
		while (fgets(line, sizeof(line), fp)) {
			size_t len = strlen(line);

			/* A line cut short by the kill was never acknowledged. */
			if (len == 0 || line[len - 1] != '\n')
				continue;
			line[len - 1] = '\0';
			n++;
			/* json_equal is order-insensitive; check_doc frees want. */
			if (check_doc(s, STORE_ENROLLMENTS, STORE_KEY(line), enrollment_doc(line),
				      line) < 0 ||
			    check_doc(s, STORE_REGISTRATIONS, STORE_KEY(line),
				      registration_doc(line), line) < 0 ||
			    check_doc(s, STORE_HUB_DEVICES, STORE_KEY(HUB, line), device_doc(line),
				      line) < 0)
				bad++;
		}
	}
	r = store_check(s, &e);
	if (r < 0) {
		fprintf(stderr, "store-load-tool: %s\n", err_msg(&e, r));
		return 1;
	}
	printf("verified %lu keys, %lu bad\n", n, bad);
	return bad ? 1 : 0;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One bench process: registrations until the deadline; the count goes to
 * fd as text. */
static int bench_child(const char *url, unsigned idx, double seconds, unsigned long batch, int fd)
{
	_cleanup_store_ struct store *s = NULL;
	struct err e = {0};
	unsigned long n = 0;
	double end;
	char out[32];
	int r, len;

	r = store_open(url, &s, &e);
	if (r < 0)
		goto fail;
	end = now_s() + seconds;
	while (now_s() < end) {
		/* Group commit when batch > 1: one outer transaction. */
		r = batch > 1 ? store_tx_begin(s, &e) : 0;
		for (unsigned long i = 0; r >= 0 && i < batch; i++, n++) {
			_cleanup_(json_decrefp) json_t *enr = NULL;
			char key[KEY_MAX], enr_key[KEY_MAX];

			snprintf(enr_key, sizeof(enr_key), "seed-%04lu", n % 1000);
			snprintf(key, sizeof(key), "bench-%u-%08lu", idx, n);
			r = store_tx_begin(s, &e);
			if (r >= 0)
				r = store_get(s, STORE_ENROLLMENTS, STORE_KEY(enr_key), &enr, NULL,
					      &e);
			if (r >= 0)
				r = put(s, STORE_REGISTRATIONS, STORE_KEY(key),
					registration_doc(key), NULL, false, &e);
			if (r >= 0)
				r = put(s, STORE_HUB_DEVICES, STORE_KEY(HUB, key), device_doc(key),
					NULL, false, &e);
			if (r >= 0)
				r = store_tx_commit(s, &e);
		}
		if (r >= 0 && batch > 1)
			r = store_tx_commit(s, &e);
		if (r < 0)
			goto fail;
	}
	len = snprintf(out, sizeof(out), "%lu\n", n);
	return write_all(fd, out, (size_t)len) < 0 ? 1 : 0;
fail:
	fprintf(stderr, "store-load-tool: bench: %s\n", err_msg(&e, r));
	return 1;
}

static int cmd_bench(const char *url, unsigned long procs, unsigned long seconds,
		     unsigned long batch)
{
	_cleanup_store_ struct store *s = NULL;
	_cleanup_fclose_ FILE *in = NULL;
	struct err e = {0};
	unsigned long total = 0, n, lo = ULONG_MAX, hi = 0;
	int fds[2], status, failed = 0, r;
	char line[32];

	if (procs == 0 || seconds == 0 || batch == 0)
		return usage();
	r = store_open(url, &s, &e);
	if (r >= 0)
		r = store_tx_begin(s, &e);
	for (unsigned i = 0; r >= 0 && i < 1000; i++) {
		char key[KEY_MAX];

		snprintf(key, sizeof(key), "seed-%04u", i);
		r = put(s, STORE_ENROLLMENTS, STORE_KEY(key), enrollment_doc(key), NULL, false, &e);
	}
	if (r >= 0)
		r = store_tx_commit(s, &e);
	if (r < 0) {
		fprintf(stderr, "store-load-tool: bench: %s\n", err_msg(&e, r));
		return 1;
	}
	store_close(TAKE_PTR(s));
	if (pipe2(fds, O_CLOEXEC) < 0)
		return 1;
	for (unsigned i = 0; i < procs; i++) {
		pid_t pid = fork();

		if (pid < 0)
			return 1;
		if (pid == 0) {
			close(fds[0]);
			_exit(bench_child(url, i, (double)seconds, batch, fds[1]));
		}
	}
	close(fds[1]);
	while (wait(&status) > 0)
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			failed = 1;
	in = fdopen(fds[0], "r");
	if (!in)
		return 1;
	while (fgets(line, sizeof(line), in)) {
		line[strcspn(line, "\n")] = '\0';
		if (parse_uint(line, ULONG_MAX, &n) == 0) {
			total += n;
			lo = n < lo ? n : lo;
			hi = n > hi ? n : hi;
		}
	}
	printf("%lu processes, batch %lu: %.0f registrations/s (%lu in %lu s; per process "
	       "%lu to %lu)\n",
	       procs, batch, (double)total / (double)seconds, total, seconds, lo, hi);
	return failed;
}

int main(int argc, char **argv)
{
	unsigned long a, b, c;

	if (argc >= 5 && streq(argv[1], "load") && argc == 5) {
		if (parse_uint(argv[4], 1000000, &a) < 0)
			return usage();
		return cmd_load(argv[2], argv[3], a);
	}
	if (argc >= 4 && streq(argv[1], "verify"))
		return cmd_verify(argv[2], argv + 3, argc - 3);
	if (argc == 6 && streq(argv[1], "bench")) {
		if (parse_uint(argv[3], 64, &a) < 0 || parse_uint(argv[4], 3600, &b) < 0 ||
		    parse_uint(argv[5], 1000000, &c) < 0)
			return usage();
		return cmd_bench(argv[2], a, b, c);
	}
	return usage();
}
