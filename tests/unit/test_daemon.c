/* SPDX-License-Identifier: MIT */
/* The device daemon runtime: config merge rules, principals and their
 * wildcards, socket activation and readiness without libsystemd. */
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/json.h"
#include "device/daemon/daemon.h"

static char tmpdir[64];

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	return remove(path) < 0 ? -1 : 0;
}

static int setup_dir(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/edgeid-test-daemon-XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_dir(void **state)
{
	(void)state;
	nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return 0;
}

static void write_file(const char *dir, const char *name, const char *text)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static char *dump(const struct daemon_config *c)
{
	return json_dumps(daemon_config_root(c), JSON_COMPACT);
}

/* --- wildmatch ------------------------------------------------------------ */

static void test_wildmatch(void **state)
{
	(void)state;
	assert_true(daemon_wildmatch("device-id", "device-id"));
	assert_false(daemon_wildmatch("device-id", "device-id2"));
	assert_false(daemon_wildmatch("device-id", "Device-id"));
	assert_true(daemon_wildmatch("*", ""));
	assert_true(daemon_wildmatch("*", "anything at all"));
	assert_true(daemon_wildmatch("est-id-*", "est-id-device-id"));
	assert_true(daemon_wildmatch("est-id-*", "est-id-"));
	assert_false(daemon_wildmatch("est-id-*", "est-id"));
	assert_true(daemon_wildmatch("*-temp", "device-id-temp"));
	assert_false(daemon_wildmatch("*-temp", "device-id-temp2"));
	assert_true(daemon_wildmatch("a?c", "abc"));
	assert_false(daemon_wildmatch("a?c", "ac"));
	assert_false(daemon_wildmatch("a?c", "abbc"));
	assert_true(daemon_wildmatch("a?c", "a\xc3\xa9"
					    "c")); /* one character, two bytes */
	assert_true(daemon_wildmatch("a*b*c", "axxbyyc"));
	assert_true(daemon_wildmatch("a*b*c", "abc"));
	assert_false(daemon_wildmatch("a*b*c", "axxbyy"));
	assert_true(daemon_wildmatch("**x", "abx"));
	assert_false(daemon_wildmatch("", "a"));
	assert_true(daemon_wildmatch("", ""));
	/* Backtracking stays linear: this would take ages if exponential. */
	assert_false(daemon_wildmatch("*a*a*a*a*a*a*a*a*a*b",
				      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
}

/* --- config merge ------------------------------------------------------- */

static struct daemon_config *load2(const char *a, const char *b)
{
	const char *names[] = {"config.toml", "config.d/00-super.toml"};
	const char *texts[] = {a, b};
	struct daemon_config *c = NULL;
	struct err e = {0};

	assert_int_equal(daemon_config_load_texts(names, texts, b ? 2 : 1, &c, &e), 0);
	return c;
}

static void test_merge_rules(void **state)
{
	_cleanup_free_ char *s = NULL;
	struct daemon_config *c;

	(void)state;
	c = load2("max_requests = 5\n"
		  "name = \"a\"\n"
		  "list = [1, 2]\n"
		  "mixed = [1]\n"
		  "[aziot_keys]\n"
		  "homedir_path = \"/var/lib/aziot/keyd\"\n"
		  "[aziot_keys.sub]\n"
		  "x = 1\n"
		  "[[principal]]\n"
		  "uid = 1\n"
		  "keys = [\"a\"]\n",
		  "max_requests = 7\n"
		  "list = [3]\n"
		  "mixed = \"now a string\"\n"
		  "[aziot_keys]\n"
		  "pkcs11_lib_path = \"/lib.so\"\n"
		  "[aziot_keys.sub]\n"
		  "y = 2\n"
		  "[[principal]]\n"
		  "uid = 2\n"
		  "keys = [\"b\"]\n");
	s = dump(c);
	assert_string_equal(s,
			    "{\"max_requests\":7,\"name\":\"a\",\"list\":[1,2,3],"
			    "\"mixed\":\"now a string\",\"aziot_keys\":{\"homedir_path\":"
			    "\"/var/lib/aziot/keyd\",\"sub\":{\"x\":1,\"y\":2},"
			    "\"pkcs11_lib_path\":\"/lib.so\"},\"principal\":[{\"uid\":1,\"keys\":"
			    "[\"a\"]},{\"uid\":2,\"keys\":[\"b\"]}]}");
	daemon_config_free(c);
}

static void test_merge_table_replaces_scalar(void **state)
{
	_cleanup_free_ char *s = NULL;
	struct daemon_config *c;

	(void)state;
	/* A table where the base had a scalar (and the reverse): later wins. */
	c = load2("a = 1\n[b]\nx = 1\n", "b = 2\n[a]\ny = 3\n");
	s = dump(c);
	assert_string_equal(s, "{\"a\":{\"y\":3},\"b\":2}");
	daemon_config_free(c);
}

static void test_config_locations(void **state)
{
	struct daemon_config *c;
	struct err e = {0};
	int64_t v;
	const char *str;

	(void)state;
	c = load2("max_requests = 5\n",
		  "\n\nmax_requests = \"ten\"\n[aziot_keys]\nhomedir_path = 3\n");
	assert_int_equal(daemon_config_get_int_opt(c, "max_requests", 1, 100, 10, &v, &e),
			 -EBADMSG);
	assert_string_equal(e.msg, "config.d/00-super.toml:3:16: max_requests: expected an "
				   "integer, got a string");
	err_clear(&e);
	assert_int_equal(daemon_config_get_string_opt(c, "aziot_keys.homedir_path", &str, &e),
			 -EBADMSG);
	assert_string_equal(e.msg, "config.d/00-super.toml:5:16: aziot_keys.homedir_path: "
				   "expected a string, got a number");
	err_clear(&e);
	assert_int_equal(daemon_config_get_string_opt(c, "absent.key", &str, &e), 0);
	assert_null(str);
	daemon_config_free(c);
}

static void test_config_dir(void **state)
{
	_cleanup_free_ char *s = NULL;
	char dir[128], sub[160], link[160];
	struct daemon_config *c = NULL;
	struct err e = {0};

	(void)state;
	snprintf(dir, sizeof(dir), "%s/config.d", tmpdir);
	assert_int_equal(mkdir(dir, 0700), 0);
	write_file(tmpdir, "config.toml", "order = [\"main\"]\n");
	write_file(dir, "10-b.toml", "order = [\"10-b\"]\n");
	write_file(dir, "02-a.toml", "order = [\"02-a\"]\n");
	write_file(dir, "99-z.toml.disabled", "order = [\"disabled\"]\n");
	write_file(dir, "notes.txt", "this is not toml = [\n");
	write_file(dir, ".toml", "order = [\"dotfile\"]\n");
	snprintf(sub, sizeof(sub), "%s/sub.toml", dir);
	assert_int_equal(mkdir(sub, 0700), 0);
	write_file(sub, "inner.toml", "order = [\"subdir\"]\n");
	snprintf(link, sizeof(link), "%s/50-link.toml", dir);
	assert_int_equal(symlink("10-b.toml", link), 0);

	snprintf(sub, sizeof(sub), "%s/config.toml", tmpdir);
	assert_int_equal(daemon_config_load(sub, dir, &c, &e), 0);
	s = dump(c);
	assert_string_equal(s, "{\"order\":[\"main\",\"02-a\",\"10-b\"]}");
	assert_int_equal(daemon_config_n_files(c), 3);
	daemon_config_free(c);
	c = NULL;

	/* A missing main file is an empty table; a missing directory no files. */
	snprintf(sub, sizeof(sub), "%s/absent.toml", tmpdir);
	assert_int_equal(daemon_config_load(sub, dir, &c, &e), 0);
	free(s);
	s = dump(c);
	assert_string_equal(s, "{\"order\":[\"02-a\",\"10-b\"]}");
	daemon_config_free(c);
	c = NULL;
	snprintf(link, sizeof(link), "%s/absent.d", tmpdir);
	assert_int_equal(daemon_config_load(sub, link, &c, &e), 0);
	free(s);
	s = dump(c);
	assert_string_equal(s, "{}");
	daemon_config_free(c);
	c = NULL;

	/* A syntax error names the drop-in. */
	write_file(dir, "20-bad.toml", "order = [\n");
	snprintf(sub, sizeof(sub), "%s/config.toml", tmpdir);
	assert_int_equal(daemon_config_load(sub, dir, &c, &e), -EINVAL);
	assert_null(c);
	snprintf(link, sizeof(link), "%s/20-bad.toml:2:1: ", dir);
	assert_memory_equal(e.msg, link, strlen(link));
}

/* --- principals ----------------------------------------------------------- */

static void test_principals(void **state)
{
	struct daemon_principals p;
	struct daemon_config *c;
	struct err e = {0};

	(void)state;
	c = load2("[[principal]]\nuid = 5556\nkeys = [\"aziot_identityd_master_id\", "
		  "\"device-id\"]\n",
		  "[[principal]]\nuid = 5555\nkeys = [\"est-id-*\", \"local-ca\"]\n"
		  "[[principal]]\nuid = 5556\nkeys = [\"device-id-temp\", \"mod?\"]\n");
	assert_int_equal(daemon_principals_parse(c, "keys", &p, &e), 0);
	assert_int_equal(p.n, 3);
	assert_true(daemon_principals_allow(&p, 5556, "device-id"));
	assert_true(daemon_principals_allow(&p, 5556, "aziot_identityd_master_id"));
	/* Entries with the same uid are unioned. */
	assert_true(daemon_principals_allow(&p, 5556, "device-id-temp"));
	assert_true(daemon_principals_allow(&p, 5556, "mod1"));
	assert_false(daemon_principals_allow(&p, 5556, "mod12"));
	assert_false(daemon_principals_allow(&p, 5556, "local-ca"));
	assert_true(daemon_principals_allow(&p, 5555, "est-id-device-id"));
	assert_false(daemon_principals_allow(&p, 5555, "device-id"));
	/* Unknown uids get nothing; root gets everything. */
	assert_false(daemon_principals_allow(&p, 65534, "device-id"));
	assert_false(daemon_principals_allow(&p, 65534, ""));
	assert_true(daemon_principals_allow(&p, 0, "device-id"));
	assert_true(daemon_principals_allow(&p, 0, "anything"));
	daemon_principals_clear(&p);
	daemon_config_free(c);

	/* No principals at all. */
	c = load2("", NULL);
	assert_int_equal(daemon_principals_parse(c, "keys", &p, &e), 0);
	assert_int_equal(p.n, 0);
	assert_false(daemon_principals_allow(&p, 1000, "device-id"));
	assert_true(daemon_principals_allow(&p, 0, "device-id"));
	daemon_principals_clear(&p);
	daemon_config_free(c);
}

static void expect_principal_error(const char *text, const char *msg)
{
	struct daemon_principals p = {0};
	struct daemon_config *c = load2(text, NULL);
	struct err e = {0};

	assert_int_equal(daemon_principals_parse(c, "keys", &p, &e), -EINVAL);
	assert_string_equal(e.msg, msg);
	assert_int_equal(p.n, 0);
	daemon_config_free(c);
}

static void test_principal_errors(void **state)
{
	(void)state;
	expect_principal_error("[[principal]]\nuid = \"1000\"\nkeys = []\n",
			       "config.toml:2:7: principal[0].uid: expected an integer, got a "
			       "string");
	expect_principal_error("[[principal]]\nuid = -1\nkeys = []\n",
			       "config.toml:2:7: principal[0].uid: expected a uid between 0 and "
			       "4294967294, got -1");
	expect_principal_error("[[principal]]\nuid = 1\nkeys = []\n[[principal]]\nkeys = []\n",
			       "config.toml:4:1: principal[1].uid: missing");
	expect_principal_error("[[principal]]\nuid = 1\n",
			       "config.toml:1:1: principal[0].keys: missing");
	expect_principal_error("[[principal]]\nuid = 1\nkeys = \"a\"\n",
			       "config.toml:3:8: principal[0].keys: expected an array of strings, "
			       "got a string");
	expect_principal_error("[[principal]]\nuid = 1\nkeys = [\"a\", 2]\n",
			       "config.toml:3:14: principal[0].keys[1]: expected a string, got a "
			       "number");
	expect_principal_error("principal = 3\n",
			       "config.toml:1:13: principal: expected an array, got a number");
}

/* --- systemd protocol --------------------------------------------------- */

static void test_listen_fds(void **state)
{
	char pid[32];
	int fd;

	(void)state;
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	assert_int_equal(daemon_listen_fds(true), 0);

	fd = socket(AF_UNIX, SOCK_STREAM, 0); /* no CLOEXEC: the function must set it */
	assert_true(fd >= 0);
	assert_int_equal(dup2(fd, 3), 3);
	if (fd != 3)
		close(fd);
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	setenv("LISTEN_PID", pid, 1);
	setenv("LISTEN_FDS", "1", 1);
	assert_int_equal(daemon_listen_fds(false), 1);
	assert_true(fcntl(3, F_GETFD) & FD_CLOEXEC);
	assert_non_null(getenv("LISTEN_FDS"));
	assert_int_equal(daemon_listen_fds(true), 1);
	assert_null(getenv("LISTEN_FDS"));
	assert_null(getenv("LISTEN_PID"));

	/* For another process: not ours. */
	setenv("LISTEN_PID", "1", 1);
	setenv("LISTEN_FDS", "1", 1);
	assert_int_equal(daemon_listen_fds(true), 0);
	/* Malformed. */
	setenv("LISTEN_PID", pid, 1);
	setenv("LISTEN_FDS", "one", 1);
	assert_int_equal(daemon_listen_fds(true), -EINVAL);
	close(3);
}

static void test_notify(void **state)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char buf[64];
	ssize_t n;
	int fd;

	(void)state;
	unsetenv("NOTIFY_SOCKET");
	assert_int_equal(daemon_notify("READY=1"), 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/notify", tmpdir);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	setenv("NOTIFY_SOCKET", sa.sun_path, 1);
	assert_int_equal(daemon_notify("READY=1"), 1);
	n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
	assert_int_equal(n, 7);
	buf[n] = '\0';
	assert_string_equal(buf, "READY=1");
	close(fd);

	/* An abstract socket, written with '@'. */
	memset(sa.sun_path, 0, sizeof(sa.sun_path));
	snprintf(sa.sun_path + 1, sizeof(sa.sun_path) - 1, "edgeid-test-notify-%d", (int)getpid());
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_int_equal(
	    bind(fd, (struct sockaddr *)&sa,
		 (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(sa.sun_path + 1))),
	    0);
	snprintf(buf, sizeof(buf), "@%s", sa.sun_path + 1);
	setenv("NOTIFY_SOCKET", buf, 1);
	assert_int_equal(daemon_notify("STOPPING=1"), 1);
	n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
	assert_int_equal(n, 10);
	close(fd);
	setenv("NOTIFY_SOCKET", "relative", 1);
	assert_int_equal(daemon_notify("READY=1"), -EINVAL);
	unsetenv("NOTIFY_SOCKET");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_wildmatch),
	    cmocka_unit_test(test_merge_rules),
	    cmocka_unit_test(test_merge_table_replaces_scalar),
	    cmocka_unit_test(test_config_locations),
	    cmocka_unit_test_setup_teardown(test_config_dir, setup_dir, teardown_dir),
	    cmocka_unit_test(test_principals),
	    cmocka_unit_test(test_principal_errors),
	    cmocka_unit_test(test_listen_fds),
	    cmocka_unit_test_setup_teardown(test_notify, setup_dir, teardown_dir),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
