/* SPDX-License-Identifier: MIT */
/*
 * What the DPS benchmark programs share: the registration ids and keys of
 * the bench enrollments (dps-populate enrolls them, dps-load registers
 * them; both derive everything from an index and a seed, so the load
 * generator needs nothing from the store), the pool of software "TPMs"
 * (RSA-2048 EK and SRK key pairs), the software equivalent of what a TPM
 * does with a DPS authentication-key blob, and latency statistics.
 */
#ifndef EDGEID_BENCH_COMMON_H
#define EDGEID_BENCH_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/macro.h"
#include "crypto/tpm_public.h"

enum bench_kind {
	BENCH_SYM, /* symmetric-key individual enrollments */
	BENCH_TPM, /* TPM individual enrollments */
};

/* Longest registration id the bench makes, NUL included. */
#define BENCH_ID_MAX 32
/* Bytes of a bench enrollment's symmetric keys (DPS accepts 16 to 64). */
#define BENCH_SYM_KEY_BYTES 32
/* Largest TPM pool accepted (pairs of keys). */
#define BENCH_TPM_POOL_MAX 4096

/* "sym" or "tpm". */
const char *bench_kind_name(enum bench_kind kind);
/* Parse "sym" / "tpm". 0 or -EINVAL. */
int bench_kind_parse(const char *s, enum bench_kind *ret);

/* The registration id of enrollment index of kind, "bench-sym-00000042",
 * into ret (BENCH_ID_MAX bytes). */
void bench_registration_id(enum bench_kind kind, uint64_t index, char ret[BENCH_ID_MAX]);

/* A symmetric-key enrollment's key, which 0 for the primary, 1 for the
 * secondary: base64 of HMAC-SHA256(seed, "<registration id>/<which>"),
 * appended to ret_b64 (use a secret buffer). 0, -E2BIG, -ENOMEM, -EIO. */
int bench_sym_key(const char *seed, uint64_t index, unsigned which,
		  struct buf *ret_b64) _nodiscard_;

/* One software TPM: the EK and the SRK with their private keys, their
 * public areas as a TPM would marshal them (the EK with the default EK
 * template's attributes and policy, the SRK with the SRK template's), and
 * the SRK's Name. */
struct bench_tpm_key {
	EVP_PKEY *ek, *srk;
	struct tpm_public ek_pub, srk_pub;
	char *ek_b64, *srk_b64; /* base64 TPM2B_PUBLIC, as DPS carries them */
	uint8_t srk_name[TPM_NAME_LEN];
};

struct bench_tpm_pool {
	size_t n;
	struct bench_tpm_key *keys;
};

/* Load the pool from path: PEM private keys, EK and SRK alternately. When
 * path does not exist and create_pairs > 0, generate that many pairs of
 * RSA-2048 keys and write them to path (mode 0600) first. *ret is the
 * caller's (bench_tpm_pool_free). Returns 0, -ENOENT (no file and
 * create_pairs is 0), -EBADMSG (not an even number of RSA-2048 keys, or
 * more than BENCH_TPM_POOL_MAX pairs), -ENOMEM, -EIO, or what reading or
 * writing the file failed with; the message is in e. */
int bench_tpm_pool_load(const char *path, size_t create_pairs, struct bench_tpm_pool **ret,
			struct err *e) _nodiscard_;
/* Accepts NULL. */
void bench_tpm_pool_free(struct bench_tpm_pool *p);
DEFINE_CLEANUP_FUNC(struct bench_tpm_pool *, bench_tpm_pool_free)

/* The TPM of enrollment index. Pool keys are reused: enrollment i has the
 * EK of pair i mod n (the service does not require EKs to be unique). */
const struct bench_tpm_key *bench_tpm_pool_get(const struct bench_tpm_pool *p, uint64_t index);

/* What the device's TPM does with a DPS authentication-key blob
 * (dps-protocol.md §3.5, §3.6), in software: ActivateCredential with the
 * EK (check the integrity HMAC against the SRK's Name, recover the inner
 * wrapper key), then Import under the SRK (check the outer HMAC, remove
 * both wrappers, check the inner integrity and the public area's unique
 * digest). The HMAC key goes to ret_key (TPM_BLOB_KEY_MAX bytes), its size
 * to *ret_len. Returns 0, -EBADMSG (the blob is malformed or a check
 * fails where a TPM would refuse it; the message says which), -ENOMEM,
 * -EIO. */
int bench_tpm_unwrap(const struct bench_tpm_key *k, const void *blob, size_t len, uint8_t *ret_key,
		     size_t *ret_len, struct err *e) _nodiscard_;

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t bench_now_ns(void);

/* Latency samples in milliseconds, growing without a fixed bound (one
 * per registration or request of a run). */
struct bench_samples {
	double *v;
	size_t n, cap;
	bool sorted;
};

/* 0 or -ENOMEM. */
int bench_samples_add(struct bench_samples *s, double ms) _nodiscard_;
/* The nearest-rank percentile p (0 < p <= 100) of the samples, sorting
 * them in place the first time; 0 when there are none. */
double bench_samples_percentile(struct bench_samples *s, double p);
double bench_samples_mean(const struct bench_samples *s);
void bench_samples_free(struct bench_samples *s);

/* A decimal number without sign, at most max. 0 or -EINVAL. */
int bench_parse_u64(const char *s, uint64_t max, uint64_t *ret) _nodiscard_;

#endif
