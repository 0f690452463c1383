/* SPDX-License-Identifier: MIT */
/*
 * libcurl loaded at run time (common/dl_curl.c): nothing of it is mapped
 * until the first use, the table works once loaded, and a missing library
 * or function gives the sentence a user sees. The last case runs this
 * program again with LD_LIBRARY_PATH pointing at a "libcurl.so.4" that is
 * another library, to see http_client's error through the public API.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/buf.h"
#include "common/dl_curl.h"
#include "common/http_client.h"
#include "common/macro.h"

/* Whether a mapping of this process names soname. */
static bool mapped(const char *soname)
{
	_cleanup_fclose_ FILE *f = fopen("/proc/self/maps", "re");
	char line[PATH_MAX + 128];

	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		if (strstr(line, soname))
			return true;
	return false;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && streq(s + n - m, suffix);
}

static void test_missing_library(void **state)
{
	struct dl_curl fn, untouched;
	struct err e = {0};

	(void)state;
	memset(&fn, 0x5a, sizeof(fn));
	untouched = fn;
	assert_int_equal(dl_curl_open("libedgeid-test-absent.so.4", &fn, &e), -ELIBACC);
	assert_string_equal(e.msg, "libedgeid-test-absent.so.4 could not be loaded: "
				   "libedgeid-test-absent.so.4: cannot open shared object file: "
				   "No such file or directory");
	assert_memory_equal(&fn, &untouched, sizeof(fn));
}

static void test_missing_function(void **state)
{
	struct dl_curl fn, untouched;
	struct err e = {0};

	(void)state;
	memset(&fn, 0x5a, sizeof(fn));
	untouched = fn;
	/* A library that loads but is not libcurl: the first function looked
	 * up is missing. */
	assert_int_equal(dl_curl_open("libc.so.6", &fn, &e), -ELIBACC);
	assert_true(strneq(e.msg, "libc.so.6 could not be loaded: ", 31));
	assert_true(ends_with(e.msg, ": undefined symbol: curl_global_init"));
	assert_memory_equal(&fn, &untouched, sizeof(fn));
}

/* Must run before anything in this process loads libcurl. */
static void test_not_mapped_before_first_use(void **state)
{
	time_t t;

	(void)state;
	assert_false(mapped("libcurl"));
	/* Neither a delta-seconds Retry-After nor a malformed date needs it. */
	assert_int_equal(http_client_parse_date("soon", &t), -EINVAL);
	assert_false(mapped("libcurl"));
}

static void test_loaded_on_first_use(void **state)
{
	const struct dl_curl *fn = NULL, *again = NULL;
	const curl_version_info_data *v;
	struct err e = {0};
	time_t t = 0;

	(void)state;
	assert_int_equal(http_client_global_init(&e), 0);
	assert_true(mapped(DL_CURL_SONAME));
	assert_int_equal(dl_curl_get(&fn, &e), 0);
	assert_int_equal(dl_curl_get(&again, &e), 0);
	assert_ptr_equal(fn, again);
	assert_false(err_isset(&e));

	assert_string_equal(fn->easy_strerror(CURLE_OK), "No error");
	v = fn->version_info(CURLVERSION_NOW);
	assert_non_null(v);
	/* http_client installs in-memory client keys through an OpenSSL
	 * SSL_CTX: the libcurl found must be the OpenSSL build. */
	assert_non_null(v->ssl_version);
	assert_true(strneq(v->ssl_version, "OpenSSL/", 8));

	assert_int_equal(http_client_parse_date(" Sun, 06 Nov 1994 08:49:37 GMT ", &t), 0);
	assert_int_equal(t, 784111777);
}

/* Run as a child with a "libcurl.so.4" that is not libcurl: print what
 * http_client says, one line each. */
static int child_main(void)
{
	_cleanup_http_client_response_ struct http_client_response resp = {0};
	const struct http_client_request req = {.url = "http://127.0.0.1:1/x"};
	_cleanup_http_client_ struct http_client *c = http_client_new();
	struct err e = {0}, e2 = {0}, e3 = {0};
	int64_t ms;
	int r;

	if (!c)
		return 1;
	r = http_client_perform(c, &req, &resp, &e);
	printf("perform %d %s\n", r, e.msg);
	r = http_client_perform(NULL, &req, &resp, &e2);
	printf("one-off %d %s\n", r, e2.msg);
	r = http_client_global_init(&e3);
	printf("init %d %s\n", r, e3.msg);
	printf("retry-after %d\n",
	       http_client_parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 0, &ms));
	printf("retry-after-seconds %d\n", http_client_parse_retry_after("7", 0, &ms));
	return 0;
}

static void test_library_not_libcurl(void **state)
{
	char dir[] = "/tmp/edgeid-dl-curl.XXXXXX", lib[PATH_MAX], self[PATH_MAX], out[4096];
	_cleanup_buf_ struct buf expect = {0};
	const char *target = NULL;
	static const char *const candidates[] = {
	    "/lib/x86_64-linux-gnu/libz.so.1", "/usr/lib/x86_64-linux-gnu/libz.so.1",
	    "/lib/aarch64-linux-gnu/libz.so.1", "/lib64/libz.so.1"};
	int fds[2], status;
	ssize_t n, len = 0;
	ssize_t self_len;
	pid_t pid;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(candidates) && !target; i++)
		if (access(candidates[i], R_OK) == 0)
			target = candidates[i];
	if (!target)
		skip();
	self_len = readlink("/proc/self/exe", self, sizeof(self) - 1);
	assert_true(self_len > 0);
	self[self_len] = '\0';
	assert_non_null(mkdtemp(dir));
	snprintf(lib, sizeof(lib), "%s/libcurl.so.4", dir);
	assert_int_equal(symlink(target, lib), 0);

	assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char *argv[] = {self, "--child", NULL};

		dup2(fds[1], STDOUT_FILENO);
		setenv("LD_LIBRARY_PATH", dir, 1);
		execv(self, argv);
		_exit(127);
	}
	close(fds[1]);
	while ((n = read(fds[0], out + len, sizeof(out) - 1 - (size_t)len)) > 0)
		len += n;
	close(fds[0]);
	out[len] = '\0';
	assert_int_equal(waitpid(pid, &status, 0), pid);
	unlink(lib);
	rmdir(dir);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);

	/* dlerror() names the file it loaded: the symlink's path. */
	buf_init(&expect, 0);
	assert_int_equal(buf_printf(&expect,
				    "perform %d libcurl.so.4 could not be loaded: %s: undefined "
				    "symbol: curl_global_init\n"
				    "one-off %d libcurl.so.4 could not be loaded: %s: undefined "
				    "symbol: curl_global_init\n"
				    "init %d libcurl.so.4 could not be loaded: %s: undefined "
				    "symbol: curl_global_init\n"
				    "retry-after %d\n"
				    "retry-after-seconds 0\n",
				    -ELIBACC, lib, -ELIBACC, lib, -ELIBACC, lib, -ELIBACC),
			 0);
	assert_string_equal(out, buf_str(&expect));
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_not_mapped_before_first_use),
	    cmocka_unit_test(test_missing_library),
	    cmocka_unit_test(test_missing_function),
	    cmocka_unit_test(test_loaded_on_first_use),
	    cmocka_unit_test(test_library_not_libcurl),
	};

	if (argc == 2 && streq(argv[1], "--child"))
		return child_main();
	return cmocka_run_group_tests_name("dl_curl", tests, NULL, NULL);
}
