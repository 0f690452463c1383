/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "cloud/dps/allocation.h"
#include "crypto/hash.h"

enum dps_allocation dps_alloc_policy(const struct dps_settings *settings, const json_t *enrollment)
{
	enum dps_allocation a;

	if (dps_allocation_parse(json_string_value(json_object_get(enrollment, "allocationPolicy")),
				 &a) == 0)
		return a;
	return settings->default_allocation;
}

size_t dps_alloc_candidates(const struct dps_settings *settings, const json_t *enrollment,
			    const struct dps_linked_hub **ret, size_t max)
{
	json_t *list = json_object_get(enrollment, "iotHubs");
	size_t n = 0, i;
	json_t *v;

	if (json_array_size(list) > 0) {
		json_array_foreach (list, i, v) {
			const struct dps_linked_hub *h =
			    dps_settings_find_hub(settings, json_string_value(v));
			bool dup = false;

			for (size_t j = 0; h && j < n; j++)
				dup = dup || ret[j] == h;
			if (h && !dup && n < max)
				ret[n++] = h;
		}
		return n;
	}
	for (i = 0; i < settings->n_hubs && n < max; i++)
		if (settings->hubs[i].apply_allocation_policy)
			ret[n++] = &settings->hubs[i];
	return n;
}

/* ln(x) for x > 0 from the IEEE 754 representation: x = m * 2^k with m in
 * [1, 2), ln(m) = 2 atanh((m - 1) / (m + 1)) by its series, which
 * converges quickly because the argument is below 1/3. */
double dps_alloc_neg_ln(double u)
{
	static const double ln2 = 0.69314718055994530942;
	uint64_t bits;
	int64_t k;
	double m, t, t2, term, sum = 0;

	if (!(u > 0))
		return 1e308;
	memcpy(&bits, &u, sizeof(bits));
	k = (int64_t)((bits >> 52) & 0x7ff) - 1023;
	bits = (bits & 0x000fffffffffffffULL) | 0x3ff0000000000000ULL;
	memcpy(&m, &bits, sizeof(m));
	t = (m - 1) / (m + 1);
	t2 = t * t;
	term = t;
	for (int i = 1; i < 60; i += 2) {
		sum += term / i;
		term *= t2;
	}
	return -((double)k * ln2 + 2 * sum);
}

static uint64_t score_hash(const char *registration_id, const char *host)
{
	uint8_t digest[HASH_SHA256_LEN];
	char lower_id[DPS_ID_MAX + 1], lower_host[256];
	struct iovec iov[3];
	size_t n;
	uint64_t x = 0;

	n = strnlen(registration_id, DPS_ID_MAX);
	for (size_t i = 0; i < n; i++)
		lower_id[i] = (char)tolower((unsigned char)registration_id[i]);
	lower_id[n] = '\0';
	n = strnlen(host, sizeof(lower_host) - 1);
	for (size_t i = 0; i < n; i++)
		lower_host[i] = (char)tolower((unsigned char)host[i]);
	lower_host[n] = '\0';
	iov[0] = (struct iovec){lower_id, strlen(lower_id)};
	iov[1] = (struct iovec){(void *)"", 1};
	iov[2] = (struct iovec){lower_host, strlen(lower_host)};
	if (hash_sha256v(iov, 3, digest) < 0)
		return 0;
	for (int i = 0; i < 8; i++)
		x = x << 8 | digest[i];
	return x;
}

int dps_alloc_hashed(const char *registration_id, const struct dps_linked_hub *const *hubs,
		     size_t n, size_t *ret_index)
{
	double best = -1;
	size_t best_i = 0;

	if (n == 0)
		return -ENOENT;
	for (size_t i = 0; i < n; i++) {
		uint64_t h = score_hash(registration_id, hubs[i]->host_name);
		/* u uniform in (0, 1]: the top 53 bits, plus one, over 2^53. */
		double u = (double)((h >> 11) + 1) / 9007199254740992.0;
		double score =
		    (double)(hubs[i]->weight ? hubs[i]->weight : 1) / dps_alloc_neg_ln(u);

		if (score > best) {
			best = score;
			best_i = i;
		}
	}
	*ret_index = best_i;
	return 0;
}

int dps_alloc_static(const struct dps_settings *settings, const json_t *enrollment,
		     const struct dps_linked_hub **ret, struct err *e)
{
	const char *host = json_string_value(json_object_get(enrollment, "iotHubHostName"));
	json_t *list = json_object_get(enrollment, "iotHubs");

	*ret = NULL;
	if (!host && json_array_size(list) == 1)
		host = json_string_value(json_array_get(list, 0));
	if (!host)
		return err_set(
		    e, -ENOENT,
		    "The enrollment's allocation policy is static, but it names no IoT hub.");
	*ret = dps_settings_find_hub(settings, host);
	if (!*ret)
		return err_set(e, -EINVAL, "The IoT hub \"%s\" is not linked to this service.",
			       host);
	return 0;
}
