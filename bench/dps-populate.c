/* SPDX-License-Identifier: MIT */
/*
 * Fills the cloud store with the enrollments the DPS benchmark registers,
 * and clears what a benchmark run left behind.
 *
 *   dps-populate enroll --store URL [--sym N] [--tpm N] [--seed TEXT]
 *                       [--tpm-keys FILE] [--tpm-pairs N] [--batch N]
 *       Writes individual enrollments bench-sym-00000000 .. N-1 (symmetric
 *       keys derived from the seed, see bench_common.h) and bench-tpm-...
 *       (EKs from the TPM pool FILE, generated with --tpm-pairs key pairs
 *       when it does not exist), replacing any that exist, BATCH of them
 *       per transaction. Each document is what the enrollment service API
 *       stores for the equivalent PUT: the first of each kind goes through
 *       dps_enrollment_normalize(), the rest are copies with their own id
 *       and keys.
 *   dps-populate reset --store URL --hub HOST
 *       Deletes every DPS registration record and the hub's devices,
 *       modules and twins, so that the next run registers devices for the
 *       first time. Run it while edgeid-cloud is stopped.
 *   dps-populate count --store URL [--hub HOST]
 *       Prints the number of enrollments, registration records and (with
 *       --hub) the hub's devices.
 *   dps-populate keys --tpm-keys FILE [--tpm-pairs N]
 *       Makes the TPM pool FILE (N pairs of RSA-2048 keys, 16 by default)
 *       unless it exists, and checks that it loads.
 *
 * Exit status: 0, 1 on a store or key error, 2 on bad usage.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "bench/bench_common.h"
#include "cloud/dps/enrollment.h"
#include "cloud/store/store.h"
#include "common/json.h"

#define ENROLL_MAX 10000000u
#define BATCH_DEFAULT 5000
#define BATCH_MAX 100000
#define PROGRESS_EVERY 100000
#define DEFAULT_SEED "edgeid-bench"
#define DEFAULT_PAIRS 16

struct options {
	const char *store_url;
	const char *hub;
	const char *seed;
	const char *tpm_keys;
	uint64_t sym, tpm, pairs, batch;
};

static int usage(void)
{
	fprintf(stderr, "usage: dps-populate enroll --store URL [--sym N] [--tpm N] [--seed TEXT]\n"
			"                           [--tpm-keys FILE] [--tpm-pairs N] [--batch N]\n"
			"       dps-populate reset --store URL --hub HOST\n"
			"       dps-populate count --store URL [--hub HOST]\n"
			"       dps-populate keys --tpm-keys FILE [--tpm-pairs N]\n");
	return 2;
}

static int fail(const char *what, int r, const struct err *e)
{
	fprintf(stderr, "dps-populate: %s: %s\n", what, err_msg(e, r));
	return 1;
}

/* The stored document for the first enrollment of a kind, from the same
 * normalisation the enrollment service applies to a PUT. */
static int template_doc(enum bench_kind kind, const struct options *o,
			const struct bench_tpm_pool *pool, json_t **ret, struct err *e)
{
	_cleanup_json_ json_t *body = NULL;
	char id[BENCH_ID_MAX];

	bench_registration_id(kind, 0, id);
	if (kind == BENCH_SYM) {
		_cleanup_buf_ struct buf primary = {0}, secondary = {0};
		int r;

		buf_init_secret(&primary, 128);
		buf_init_secret(&secondary, 128);
		r = bench_sym_key(o->seed, 0, 0, &primary);
		if (r >= 0)
			r = bench_sym_key(o->seed, 0, 1, &secondary);
		if (r < 0)
			return r;
		body =
		    json_pack("{s:s, s:{s:s, s:{s:s, s:s}}}", "registrationId", id, "attestation",
			      "type", "symmetricKey", "symmetricKey", "primaryKey",
			      buf_str(&primary), "secondaryKey", buf_str(&secondary));
	} else {
		body = json_pack("{s:s, s:{s:s, s:{s:s}}}", "registrationId", id, "attestation",
				 "type", "tpm", "tpm", "endorsementKey",
				 bench_tpm_pool_get(pool, 0)->ek_b64);
	}
	if (!body)
		return -ENOMEM;
	return dps_enrollment_normalize(NULL, NULL, DPS_INDIVIDUAL, id, body, NULL, ret, e);
}

static json_t *path_get(json_t *doc, const char *a, const char *b, const char *c)
{
	json_t *v = json_object_get(doc, a);

	if (b)
		v = json_object_get(v, b);
	if (c)
		v = json_object_get(v, c);
	return json_is_string(v) ? v : NULL;
}

static int enroll_kind(struct store *s, enum bench_kind kind, uint64_t n, const struct options *o,
		       const struct bench_tpm_pool *pool, struct err *e)
{
	_cleanup_json_ json_t *doc = NULL;
	_cleanup_buf_ struct buf key = {0};
	json_t *id_v, *primary_v = NULL, *secondary_v = NULL, *ek_v = NULL;
	uint64_t t0 = bench_now_ns();
	int r;

	if (n == 0)
		return 0;
	r = template_doc(kind, o, pool, &doc, e);
	if (r < 0)
		return err_prefix(e, r, "the %s enrollment template", bench_kind_name(kind));
	id_v = path_get(doc, "registrationId", NULL, NULL);
	if (kind == BENCH_SYM) {
		primary_v = path_get(doc, "attestation", "symmetricKey", "primaryKey");
		secondary_v = path_get(doc, "attestation", "symmetricKey", "secondaryKey");
	} else {
		ek_v = path_get(doc, "attestation", "tpm", "endorsementKey");
	}
	if (!id_v || (kind == BENCH_SYM && (!primary_v || !secondary_v)) ||
	    (kind == BENCH_TPM && !ek_v))
		return err_set(e, -EPROTO,
			       "the normalised %s enrollment does not have the expected fields",
			       bench_kind_name(kind));
	buf_init_secret(&key, 128);

	for (uint64_t i = 0; i < n; i++) {
		struct store_write w = {.coll = STORE_ENROLLMENTS, .doc = doc};
		char id[BENCH_ID_MAX];

		if (i % o->batch == 0) {
			r = store_tx_begin(s, e);
			if (r < 0)
				return r;
		}
		bench_registration_id(kind, i, id);
		if (json_string_set(id_v, id) < 0)
			return -ENOMEM;
		if (kind == BENCH_SYM) {
			for (unsigned which = 0; which < 2; which++) {
				buf_reset(&key);
				r = bench_sym_key(o->seed, i, which, &key);
				if (r < 0)
					return r;
				if (json_string_set(which == 0 ? primary_v : secondary_v,
						    buf_str(&key)) < 0)
					return -ENOMEM;
			}
		} else if (json_string_set(ek_v, bench_tpm_pool_get(pool, i)->ek_b64) < 0) {
			return -ENOMEM;
		}
		w.key.part[0] = id;
		r = store_put(s, &w, NULL, e);
		if (r < 0) {
			(void)store_tx_rollback(s, NULL);
			return err_prefix(e, r, "%s", id);
		}
		if ((i + 1) % o->batch == 0 || i + 1 == n) {
			r = store_tx_commit(s, e);
			if (r < 0)
				return r;
		}
		if ((i + 1) % PROGRESS_EVERY == 0)
			fprintf(stderr, "dps-populate: %" PRIu64 " of %" PRIu64 " %s enrollments\n",
				i + 1, n, bench_kind_name(kind));
	}
	{
		double s_elapsed = (double)(bench_now_ns() - t0) / 1e9;

		printf("enrolled %" PRIu64 " %s enrollments in %.1f s (%.0f/s)\n", n,
		       bench_kind_name(kind), s_elapsed,
		       s_elapsed > 0 ? (double)n / s_elapsed : 0.0);
	}
	return 0;
}

static int cmd_enroll(const struct options *o)
{
	_cleanup_(store_closep) struct store *s = NULL;
	_cleanup_(bench_tpm_pool_freep) struct bench_tpm_pool *pool = NULL;
	struct err e = {0};
	int r;

	if (o->tpm > 0) {
		if (!o->tpm_keys) {
			fprintf(stderr, "dps-populate: --tpm needs --tpm-keys FILE\n");
			return 2;
		}
		r = bench_tpm_pool_load(o->tpm_keys, o->pairs, &pool, &e);
		if (r < 0)
			return fail("the TPM pool", r, &e);
	}
	r = store_open(o->store_url, &s, &e);
	if (r < 0)
		return fail("opening the store", r, &e);
	r = enroll_kind(s, BENCH_SYM, o->sym, o, pool, &e);
	if (r >= 0)
		r = enroll_kind(s, BENCH_TPM, o->tpm, o, pool, &e);
	if (r < 0)
		return fail("enrolling", r, &e);
	return 0;
}

static int cmd_keys(const struct options *o)
{
	_cleanup_(bench_tpm_pool_freep) struct bench_tpm_pool *pool = NULL;
	struct err e = {0};
	int r;

	r = bench_tpm_pool_load(o->tpm_keys, o->pairs, &pool, &e);
	if (r < 0)
		return fail("the TPM pool", r, &e);
	printf("%s: %zu EK/SRK pairs\n", o->tpm_keys, pool->n);
	return 0;
}

static int count(struct store *s, enum store_collection c, const char *prefix, uint64_t *ret,
		 struct err *e)
{
	struct store_query q = {.coll = c};

	q.prefix.part[0] = prefix;
	return store_count(s, &q, ret, e);
}

/* Delete every registration record, a page at a time. */
static int delete_registrations(struct store *s, uint64_t *ret_deleted, struct err *e)
{
	uint64_t total, deleted = 0;
	int r;

	r = count(s, STORE_REGISTRATIONS, NULL, &total, e);
	if (r < 0)
		return r;
	/* Each pass deletes a full page, so total / page + 1 passes suffice. */
	for (uint64_t pass = 0; pass <= total / STORE_PAGE_MAX + 1; pass++) {
		_cleanup_store_page_ struct store_page *page = NULL;
		struct store_query q = {.coll = STORE_REGISTRATIONS, .page_size = STORE_PAGE_MAX};

		r = store_list(s, &q, &page, e);
		if (r < 0)
			return r;
		if (page->n == 0)
			break;
		for (size_t i = 0; i < page->n; i++) {
			r = store_delete(s, STORE_REGISTRATIONS, STORE_KEY(page->items[i].key[0]),
					 NULL, e);
			if (r < 0)
				return r;
			deleted++;
		}
	}
	*ret_deleted = deleted;
	return 0;
}

static int cmd_reset(const struct options *o)
{
	static const enum store_collection hub_colls[] = {STORE_TWINS, STORE_HUB_MODULES,
							  STORE_HUB_DEVICES};
	_cleanup_(store_closep) struct store *s = NULL;
	uint64_t regs = 0, devices = 0;
	struct err e = {0};
	int r;

	r = store_open(o->store_url, &s, &e);
	if (r < 0)
		return fail("opening the store", r, &e);
	r = store_tx_begin(s, &e);
	if (r >= 0)
		r = delete_registrations(s, &regs, &e);
	for (size_t i = 0; r >= 0 && i < ARRAY_SIZE(hub_colls); i++) {
		struct store_query q = {.coll = hub_colls[i]};
		uint64_t n = 0;

		q.prefix.part[0] = o->hub;
		r = store_delete_matching(s, &q, &n, &e);
		if (hub_colls[i] == STORE_HUB_DEVICES)
			devices = n;
	}
	if (r >= 0)
		r = store_tx_commit(s, &e);
	else if (store_tx_depth(s) > 0)
		(void)store_tx_rollback(s, NULL);
	if (r < 0)
		return fail("resetting", r, &e);
	printf("deleted %" PRIu64 " registration records and %" PRIu64 " hub devices\n", regs,
	       devices);
	return 0;
}

static int cmd_count(const struct options *o)
{
	_cleanup_(store_closep) struct store *s = NULL;
	uint64_t enrollments, registrations, devices = 0;
	struct err e = {0};
	int r;

	r = store_open(o->store_url, &s, &e);
	if (r < 0)
		return fail("opening the store", r, &e);
	r = count(s, STORE_ENROLLMENTS, NULL, &enrollments, &e);
	if (r >= 0)
		r = count(s, STORE_REGISTRATIONS, NULL, &registrations, &e);
	if (r >= 0 && o->hub)
		r = count(s, STORE_HUB_DEVICES, o->hub, &devices, &e);
	if (r < 0)
		return fail("counting", r, &e);
	printf("enrollments %" PRIu64 "\nregistrations %" PRIu64 "\n", enrollments, registrations);
	if (o->hub)
		printf("hub-devices %" PRIu64 "\n", devices);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"store", required_argument, NULL, 's'},
	    {"hub", required_argument, NULL, 'h'},
	    {"sym", required_argument, NULL, 'y'},
	    {"tpm", required_argument, NULL, 't'},
	    {"seed", required_argument, NULL, 'e'},
	    {"tpm-keys", required_argument, NULL, 'k'},
	    {"tpm-pairs", required_argument, NULL, 'p'},
	    {"batch", required_argument, NULL, 'b'},
	    {NULL, 0, NULL, 0},
	};
	struct options o = {.seed = DEFAULT_SEED, .pairs = DEFAULT_PAIRS, .batch = BATCH_DEFAULT};
	const char *cmd;
	int c;

	if (argc < 2)
		return usage();
	cmd = argv[1];
	optind = 2;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		int r = 0;

		switch (c) {
		case 's':
			o.store_url = optarg;
			break;
		case 'h':
			o.hub = optarg;
			break;
		case 'y':
			r = bench_parse_u64(optarg, ENROLL_MAX, &o.sym);
			break;
		case 't':
			r = bench_parse_u64(optarg, ENROLL_MAX, &o.tpm);
			break;
		case 'e':
			o.seed = optarg;
			break;
		case 'k':
			o.tpm_keys = optarg;
			break;
		case 'p':
			r = bench_parse_u64(optarg, BENCH_TPM_POOL_MAX, &o.pairs);
			break;
		case 'b':
			r = bench_parse_u64(optarg, BATCH_MAX, &o.batch);
			break;
		default:
			return usage();
		}
		if (r < 0) {
			fprintf(stderr, "dps-populate: %s: not a number in range\n", optarg);
			return 2;
		}
	}
	if (optind != argc || o.batch == 0 || o.pairs == 0)
		return usage();
	if (streq(cmd, "keys") && o.tpm_keys)
		return cmd_keys(&o);
	if (!o.store_url)
		return usage();
	if (streq(cmd, "enroll"))
		return cmd_enroll(&o);
	if (streq(cmd, "reset") && o.hub)
		return cmd_reset(&o);
	if (streq(cmd, "count"))
		return cmd_count(&o);
	return usage();
}
