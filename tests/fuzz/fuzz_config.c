/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness for the super-config model: config_parse() on arbitrary
 * bytes, and for every document it accepts, the apply split and both show
 * renderings, which must succeed and (for TOML) parse again.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/toml.h"
#include "config/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct config_users fuzz_users = {
    .uid = {5554, 5555, 5556, 5557, 5558, 0},
    .gid = {5554, 5555, 5556, 5557, 5558, 0},
    .name = {"aziotks", "aziotcs", "aziotid", "aziottpm", "iotedge", "root"},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct edgeid_config *c = NULL;
	struct config_plan *plan = NULL;
	struct toml_value *again = NULL;
	struct err e = {0};
	struct buf out;

	if (config_parse((const char *)data, size, "fuzz.toml", &c, &e) < 0)
		return 0;
	/* Apply would read this file from the host: not the fuzzer's business. */
	free(c->imported_master_encryption_key);
	c->imported_master_encryption_key = NULL;
	if (config_plan_build(c, &fuzz_users, "fuzz.toml", NULL, &plan, &e) < 0)
		abort();
	for (size_t i = 0; i < plan->n_files; i++) {
		if (plan->files[i].path[0] == '/' && plan->files[i].mode != 0600)
			abort();
	}
	config_plan_free(plan);

	buf_init(&out, 0);
	if (config_show_render(c, false, &out) < 0)
		abort();
	err_clear(&e);
	if (toml_parse(buf_str(&out), out.len, "show.toml", &again, &e) < 0)
		abort();
	toml_free(again);
	buf_reset(&out);
	if (config_show_render(c, true, &out) < 0)
		abort();
	buf_free(&out);
	config_free(c);
	return 0;
}
