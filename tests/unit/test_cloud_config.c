/* SPDX-License-Identifier: MIT */
/* The edgeid-cloud config file: shared tables, the common service keys,
 * and the exact FILE:LINE:COL errors (src/cloud/cloud_config.c). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cloud/cloud.h"
#include "common/macro.h"

/* A service whose own keys are "color" (a string, required) and "size"
 * (an integer 1..10), read through the runtime's helpers. */
struct fake_settings {
	char color[32];
	int64_t size;
	char host[64];
};

static int fake_parse(const struct toml_value *table, const struct cloud_config *cfg,
		      const struct cloud_service_common *common, void **ret, struct err *e)
{
	static const char *const keys[] = {"color", "size", NULL};
	struct fake_settings *s;
	const char *color;
	int64_t size;
	int r;

	r = cloud_config_check_keys(cfg, table, "fake", keys, true, e);
	if (r < 0)
		return r;
	r = cloud_config_string(cfg, table, "fake", "color", true, &color, e);
	if (r < 0)
		return r;
	r = cloud_config_int(cfg, table, "fake", "size", false, 1, 10, 3, &size, e);
	if (r < 0)
		return r;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	snprintf(s->color, sizeof(s->color), "%s", color);
	snprintf(s->host, sizeof(s->host), "%s", common->host_name);
	s->size = size;
	*ret = s;
	return 0;
}

static const struct cloud_service fake = {
    .name = "fake",
    .config_parse = fake_parse,
    .config_free = free,
};
static const struct cloud_service other = {.name = "other"};
static const struct cloud_service *const services[] = {&fake, &other};

static char path[64];

static int setup(void **state)
{
	(void)state;
	snprintf(path, sizeof(path), "/tmp/edgeid-cloud-config-XXXXXX");
	int fd = mkstemp(path);
	if (fd < 0)
		return -1;
	close(fd);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	unlink(path);
	return 0;
}

static void write_config(const char *text)
{
	FILE *f = fopen(path, "we");

	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

/* Load text; expect failure with message "PATH:" + suffix (suffix starts
 * with the line number). */
static void expect_error(const char *text, int code, const char *suffix)
{
	struct cloud_setup *s = NULL;
	struct err e = {0};
	char want[1200];

	write_config(text);
	assert_int_equal(cloud_setup_load(path, services, ARRAY_SIZE(services), &s, &e), code);
	assert_null(s);
	snprintf(want, sizeof(want), "%s:%s", path, suffix);
	assert_string_equal(e.msg, want);
}

#define TLS "[tls]\ncert = \"/c.pem\"\nkey = \"/k.pem\"\n"

static void test_full(void **state)
{
	_cleanup_(cloud_setup_freep) struct cloud_setup *s = NULL;
	const struct cloud_service_instance *si;
	const struct fake_settings *fs;
	struct err e = {0};

	(void)state;
	write_config("[store]\nurl = \"sqlite:///var/tmp/x.db\"\n" TLS "client_ca = \"/ca.pem\"\n"
		     "[fake]\nlisten = [\"127.0.0.2:443\", \"[::1]:8443\"]\nworkers = 3\n"
		     "color = \"blue\"\ntls_key = \"/own.key\"\n");
	assert_int_equal(cloud_setup_load(path, services, ARRAY_SIZE(services), &s, &e), 0);
	assert_string_equal(s->cfg.path, path);
	assert_string_equal(s->cfg.store_url, "sqlite:///var/tmp/x.db");
	assert_string_equal(s->cfg.tls_client_ca_file, "/ca.pem");
	assert_int_equal(s->n_services, 1);
	assert_null(cloud_setup_find(s, "other"));
	si = cloud_setup_find(s, "fake");
	assert_non_null(si);
	assert_int_equal(si->common.n_listen, 2);
	assert_string_equal(si->common.listen[0].host, "127.0.0.2");
	assert_int_equal(si->common.listen[0].port, 443);
	assert_string_equal(si->common.listen[1].host, "::1");
	assert_int_equal(si->common.listen[1].port, 8443);
	/* host_name defaults to the first listen host. */
	assert_string_equal(si->common.host_name, "127.0.0.2");
	assert_int_equal(si->common.workers, 3);
	/* tls_cert from [tls], tls_key the service's own. */
	assert_string_equal(si->common.tls_cert_file, "/c.pem");
	assert_string_equal(si->common.tls_key_file, "/own.key");
	fs = si->settings;
	assert_string_equal(fs->color, "blue");
	assert_int_equal(fs->size, 3);
	assert_string_equal(fs->host, "127.0.0.2");
}

static void test_defaults(void **state)
{
	_cleanup_(cloud_setup_freep) struct cloud_setup *s = NULL;
	struct err e = {0};
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

	(void)state;
	write_config(TLS "[fake]\nlisten = \"0.0.0.0:4443\"\nhost_name = \"hub.example\"\n"
			 "color = \"red\"\nsize = 10\n");
	assert_int_equal(cloud_setup_load(path, services, ARRAY_SIZE(services), &s, &e), 0);
	assert_string_equal(s->cfg.store_url, "sqlite:///var/lib/edgeid-cloud/cloud.db");
	assert_null(s->cfg.tls_client_ca_file);
	assert_string_equal(s->services[0].common.host_name, "hub.example");
	assert_int_equal(s->services[0].common.n_listen, 1);
	assert_int_equal(s->services[0].common.workers, ncpu < 1 ? 1 : ncpu > 256 ? 256 : ncpu);
	assert_int_equal(((struct fake_settings *)s->services[0].settings)->size, 10);
}

static void test_no_services(void **state)
{
	_cleanup_(cloud_setup_freep) struct cloud_setup *s = NULL;
	struct err e = {0};

	(void)state;
	write_config("# nothing\n");
	assert_int_equal(cloud_setup_load(path, services, ARRAY_SIZE(services), &s, &e), 0);
	assert_int_equal(s->n_services, 0);
}

static void test_shared_errors(void **state)
{
	(void)state;
	expect_error("[fake]\nlisten = 1\n[extra]\n", -EINVAL,
		     "3:2: extra: unknown table (expected [store], [tls], [fake], [other])");
	expect_error("fake = 1\n", -EINVAL, "1:8: fake: expected a table, got 1");
	expect_error(
	    "[store]\nurl = \"mysql://x\"\n", -EINVAL,
	    "2:7: store.url: expected a URL like \"sqlite:///var/lib/edgeid-cloud/cloud.db\""
	    " or \"postgresql://...\", got \"mysql://x\"");
	expect_error("[store]\n", -EINVAL, "1:1: store.url: missing required key");
	expect_error("[store]\nurl = \"sqlite:///x\"\npath = \"/x\"\n", -EINVAL,
		     "3:1: store.path: unknown key");
	expect_error("[tls]\ncert = \"/c.pem\"\n", -EINVAL,
		     "1:1: tls.key: missing required key (cert and key go together)");
	expect_error("[tls]\ncert = 5\n", -EINVAL, "2:8: tls.cert: expected a string, got 5");
	expect_error("[tls]\ncert = \"\"\n", -EINVAL,
		     "2:8: tls.cert: expected a non-empty string, got \"\"");
	expect_error("a = \n", -EINVAL, "1:5: expected a value, got end of line");
}

static void test_service_errors(void **state)
{
	(void)state;
	expect_error(TLS "[fake]\ncolor = \"x\"\n", -EINVAL,
		     "4:1: fake.listen: missing required key");
	expect_error(TLS "[fake]\nlisten = [\"127.0.0.2\"]\ncolor = \"x\"\n", -EINVAL,
		     "5:11: fake.listen[0]: expected an address and port like \"127.0.0.2:443\" or "
		     "\"[::1]:443\" (numeric address), got \"127.0.0.2\"");
	expect_error(TLS "[fake]\nlisten = [\"localhost:443\"]\n", -EINVAL,
		     "5:11: fake.listen[0]: expected an address and port like \"127.0.0.2:443\" or "
		     "\"[::1]:443\" (numeric address), got \"localhost:443\"");
	expect_error(TLS "[fake]\nlisten = [\"127.0.0.1:443\", \"::1:443\"]\n", -EINVAL,
		     "5:28: fake.listen[1]: expected an address and port like \"127.0.0.2:443\" or "
		     "\"[::1]:443\" (numeric address), got \"::1:443\"");
	expect_error(TLS "[fake]\nlisten = \"127.0.0.1:65536\"\n", -EINVAL,
		     "5:10: fake.listen: expected a port from 1 to 65535 after the address, got "
		     "\"65536\"");
	expect_error(TLS "[fake]\nlisten = \"[::1]:0\"\n", -EINVAL,
		     "5:10: fake.listen: expected a port from 1 to 65535 after the address, got "
		     "\"0\"");
	expect_error(TLS "[fake]\nlisten = []\n", -EINVAL,
		     "5:10: fake.listen: expected 1 to 8 addresses, got 0");
	expect_error(TLS "[fake]\nlisten = {a = 1}\n", -EINVAL,
		     "5:10: fake.listen: expected an array of addresses like [\"127.0.0.2:443\"], "
		     "got a table");
	expect_error(TLS "[fake]\nlisten = \"127.0.0.1:1\"\nworkers = 0\n", -EINVAL,
		     "6:11: fake.workers: expected an integer from 1 to 256, got 0");
	expect_error(TLS "[fake]\nlisten = \"127.0.0.1:1\"\nworkers = \"2\"\n", -EINVAL,
		     "6:11: fake.workers: expected an integer from 1 to 256, got \"2\"");
	/* The service's own keys, through the helpers. */
	expect_error(TLS "[fake]\nlisten = \"127.0.0.1:1\"\n", -EINVAL,
		     "4:1: fake.color: missing required key");
	expect_error(TLS "[fake]\nlisten = \"127.0.0.1:1\"\ncolor = \"x\"\nsize = 11\n", -EINVAL,
		     "7:8: fake.size: expected an integer from 1 to 10, got 11");
	expect_error(TLS "[fake]\nlisten = \"127.0.0.1:1\"\ncolour = \"x\"\n", -EINVAL,
		     "6:1: fake.colour: unknown key");
	/* No certificate anywhere: reported after the service's own keys. */
	expect_error("[fake]\nlisten = \"127.0.0.1:1\"\ncolor = \"x\"\n", -EINVAL,
		     "1:1: fake.tls_cert: missing required key (and no [tls] cert to default to)");
}

static void test_unreadable(void **state)
{
	struct cloud_setup *s = NULL;
	struct err e = {0};

	(void)state;
	assert_int_equal(
	    cloud_setup_load("/nonexistent/cloud.toml", services, ARRAY_SIZE(services), &s, &e),
	    -ENOENT);
	assert_null(s);
	assert_string_equal(e.msg,
			    "/nonexistent/cloud.toml: cannot read: No such file or directory");
}

/* The helpers services call for their own keys. */
static void test_helpers(void **state)
{
	_cleanup_toml_ struct toml_value *doc = NULL;
	struct cloud_config cfg = {.path = (char *)"x.toml"};
	_cleanup_free_ const char **list = NULL;
	const struct toml_value *arr = NULL;
	struct err e = {0};
	const char *s;
	bool b;
	int64_t i;
	static const char text[] = "one = \"a\"\nmany = [\"b\", \"c\"]\nbad = [\"d\", 1]\n"
				   "flag = true\nnum = 5\n[[tab]]\nx = 1\n[[tab]]\n";

	(void)state;
	assert_int_equal(toml_parse(text, strlen(text), "x.toml", &doc, &e), 0);
	cfg.root = doc;

	assert_int_equal(cloud_config_strings(&cfg, doc, "t", "one", &list, &e), 0);
	assert_string_equal(list[0], "a");
	assert_null(list[1]);
	free(TAKE_PTR(list));
	assert_int_equal(cloud_config_strings(&cfg, doc, "t", "many", &list, &e), 0);
	assert_string_equal(list[0], "b");
	assert_string_equal(list[1], "c");
	assert_null(list[2]);
	free(TAKE_PTR(list));
	assert_int_equal(cloud_config_strings(&cfg, doc, "t", "absent", &list, &e), 0);
	assert_null(list);
	assert_int_equal(cloud_config_strings(&cfg, doc, "t", "bad", &list, &e), -EINVAL);
	assert_string_equal(e.msg, "x.toml:3:13: t.bad[1]: expected a non-empty string, got 1");

	err_clear(&e);
	assert_int_equal(cloud_config_bool(&cfg, doc, "t", "flag", false, &b, &e), 0);
	assert_true(b);
	assert_int_equal(cloud_config_bool(&cfg, doc, "t", "absent", true, &b, &e), 0);
	assert_true(b);
	assert_int_equal(cloud_config_bool(&cfg, doc, "t", "num", false, &b, &e), -EINVAL);
	assert_string_equal(e.msg, "x.toml:5:7: t.num: expected true or false, got 5");

	err_clear(&e);
	assert_int_equal(cloud_config_int(&cfg, doc, "", "num", true, 0, 5, 0, &i, &e), 0);
	assert_int_equal(i, 5);
	assert_int_equal(cloud_config_int(&cfg, doc, "", "nope", true, 0, 5, 0, &i, &e), -EINVAL);
	assert_string_equal(e.msg, "x.toml:1:1: nope: missing required key");

	err_clear(&e);
	assert_int_equal(cloud_config_table_array(&cfg, doc, "t", "tab", &arr, &e), 0);
	assert_int_equal(arr->array.n, 2);
	assert_int_equal(cloud_config_table_array(&cfg, doc, "t", "one", &arr, &e), -EINVAL);
	assert_null(arr);
	assert_string_equal(e.msg, "x.toml:1:7: t.one: expected an array of tables, got \"a\"");

	err_clear(&e);
	assert_int_equal(cloud_config_string(&cfg, doc, "t", "many", false, &s, &e), -EINVAL);
	assert_string_equal(e.msg, "x.toml:2:8: t.many: expected a string, got an array");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_full, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_no_services, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_shared_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_service_errors, setup, teardown),
	    cmocka_unit_test(test_unreadable),
	    cmocka_unit_test(test_helpers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
