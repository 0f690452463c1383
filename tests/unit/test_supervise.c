/* SPDX-License-Identifier: MIT */
/* The supervisor's rules: how a daemon's output becomes log records (its
 * own times kept, others stamped, control characters made harmless, long
 * lines cut), which records are errors, log rotation, exit reasons, the
 * restart back-off and the option values. */
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/buf.h"
#include "common/fs.h"
#include "device/supervise/supervise_internal.h"

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
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/edgeid-test-supervise-XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_dir(void **state)
{
	(void)state;
	return nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* 2026-11-23T07:00:00Z */
#define T0 ((time_t)1795417200)

static void test_log_time(void **state)
{
	time_t t = 0;

	(void)state;
	assert_int_equal(supervise_log_time("2026-11-23T07:00:00Z edgeidd-keyd[1] info: x", 44, &t),
			 0);
	assert_int_equal(t, T0);
	assert_int_equal(supervise_log_time("2026-11-23T07:00:00Z", 20, &t), 0);
	assert_int_equal(t, T0);
	/* Not a time, or not followed by a space. */
	assert_int_equal(supervise_log_time("2026-11-23T07:00:00Zx", 21, &t), -1);
	assert_int_equal(supervise_log_time("2026-11-23 07:00:00Z x", 22, &t), -1);
	assert_int_equal(supervise_log_time("2026-13-23T07:00:00Z x", 22, &t), -1);
	assert_int_equal(supervise_log_time("2026-11-23T24:00:00Z x", 22, &t), -1);
	assert_int_equal(supervise_log_time("2026-11-2", 9, &t), -1);
	assert_int_equal(supervise_log_time("+026-11-23T07:00:00Z x", 22, &t), -1);
	/* Only the first len bytes count. */
	assert_int_equal(supervise_log_time("2026-11-23T07:00:00Z", 19, &t), -1);
}

static void test_record_keeps_time(void **state)
{
	static const char line[] = "2026-11-23T06:59:58Z edgeidd-keyd[77] info: ready";
	struct buf out;

	(void)state;
	buf_init(&out, 0);
	assert_int_equal(supervise_log_record(line, strlen(line), "edgeidd-keyd", 77, T0, &out), 0);
	assert_string_equal(buf_str(&out), "2026-11-23T06:59:58Z edgeidd-keyd[77] info: ready\n");
	buf_free(&out);
}

static void test_record_stamps_other_lines(void **state)
{
	static const char line[] = "==77==ERROR: AddressSanitizer: heap-use-after-free";
	struct buf out;

	(void)state;
	buf_init(&out, 0);
	assert_int_equal(supervise_log_record(line, strlen(line), "edgeidd-keyd", 77, T0, &out), 0);
	assert_string_equal(buf_str(&out), "2026-11-23T07:00:00Z edgeidd-keyd[77]: ==77==ERROR: "
					   "AddressSanitizer: heap-use-after-free\n");
	/* An empty line is a record too. */
	assert_int_equal(supervise_log_record("", 0, "edgeidd-tpmd", 5, T0, &out), 0);
	assert_string_equal(buf_str(&out), "2026-11-23T07:00:00Z edgeidd-tpmd[5]: \n");
	buf_free(&out);
}

static void test_record_control_characters(void **state)
{
	static const char line[] = "a\tb\033[31mc\rd\x7f"
				   "e\0f";
	struct buf out;

	(void)state;
	buf_init(&out, 0);
	assert_int_equal(supervise_log_record(line, sizeof(line) - 1, "x", 1, T0, &out), 0);
	assert_int_equal(out.len, strlen("2026-11-23T07:00:00Z x[1]: ") + sizeof(line) - 1 + 1);
	assert_memory_equal(out.data + out.len - (sizeof(line) - 1) - 1, "a\tb?[31mc?d?e?f\n",
			    sizeof(line));
	buf_free(&out);
}

static void test_error_offset(void **state)
{
	static const char err[] =
	    "2026-11-23T07:00:00Z edgeidd-keyd[77] error: config.toml:1:1: bad";
	static const char warn[] = "2026-11-23T07:00:00Z edgeidd-keyd[77] warning: error: no";
	static const char raw[] = "edgeidd keyd: error: unexpected argument";
	static const char spaced[] = "2026-11-23T07:00:00Z edge idd[77] error: x";
	ssize_t off;

	(void)state;
	off = supervise_log_error_offset(err, strlen(err));
	assert_true(off > 0);
	assert_string_equal(err + off, "config.toml:1:1: bad");
	assert_int_equal(supervise_log_error_offset(warn, strlen(warn)), -1);
	assert_int_equal(supervise_log_error_offset(raw, strlen(raw)), -1);
	assert_int_equal(supervise_log_error_offset(spaced, strlen(spaced)), -1);
	/* Cut before the message: not a record of level error. */
	assert_int_equal(supervise_log_error_offset(err, 44), -1);
}

struct collected {
	char lines[8][SUPERVISE_LINE_MAX + 1];
	size_t len[8];
	size_t n;
};

static void collect(void *userdata, const char *line, size_t len)
{
	struct collected *c = userdata;

	assert_true(c->n < 8);
	memcpy(c->lines[c->n], line, len);
	c->lines[c->n][len] = '\0';
	c->len[c->n++] = len;
}

static void test_lines_split(void **state)
{
	struct supervise_lines lb = {.len = 0};
	struct collected c = {.n = 0};

	(void)state;
	/* Lines arrive in arbitrary pieces; CRLF ends a line like LF. */
	supervise_lines_feed(&lb, "one\ntw", 6, collect, &c);
	supervise_lines_feed(&lb, "o\r\n\nthr", 7, collect, &c);
	assert_int_equal(c.n, 3);
	assert_string_equal(c.lines[0], "one");
	assert_string_equal(c.lines[1], "two");
	assert_string_equal(c.lines[2], "");
	supervise_lines_flush(&lb, collect, &c);
	assert_int_equal(c.n, 4);
	assert_string_equal(c.lines[3], "thr");
	/* Nothing left: a second flush emits nothing. */
	supervise_lines_flush(&lb, collect, &c);
	assert_int_equal(c.n, 4);
}

static void test_lines_long(void **state)
{
	struct supervise_lines lb = {.len = 0};
	struct collected *c = calloc(1, sizeof(*c));
	char *big = malloc(SUPERVISE_LINE_MAX + 11);

	(void)state;
	assert_non_null(c);
	assert_non_null(big);
	memset(big, 'x', SUPERVISE_LINE_MAX + 10);
	big[SUPERVISE_LINE_MAX + 10] = '\n';
	supervise_lines_feed(&lb, big, SUPERVISE_LINE_MAX + 11, collect, c);
	assert_int_equal(c->n, 2);
	assert_int_equal(c->len[0], SUPERVISE_LINE_MAX);
	assert_int_equal(c->len[1], 10);
	free(big);
	free(c);
}

static void test_exit_reason(void **state)
{
	char buf[96];
	int status;
	pid_t pid;

	(void)state;
	supervise_exit_reason(1 << 8, buf, sizeof(buf));
	assert_string_equal(buf, "exited with status 1");
	supervise_exit_reason(0, buf, sizeof(buf));
	assert_string_equal(buf, "exited with status 0");
	/* A real SIGKILL, as waitpid() reports it. */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		raise(SIGKILL);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	supervise_exit_reason(status, buf, sizeof(buf));
	assert_string_equal(buf, "killed by signal 9");
	supervise_exit_reason(SIGSEGV | 0x80, buf, sizeof(buf));
	assert_string_equal(buf, "killed by signal 11 (core dumped)");
}

static void test_backoff(void **state)
{
	(void)state;
	assert_int_equal(supervise_backoff_ms(0), 1000);
	assert_int_equal(supervise_backoff_ms(1), 2000);
	assert_int_equal(supervise_backoff_ms(2), 4000);
	assert_int_equal(supervise_backoff_ms(5), 32000);
	assert_int_equal(supervise_backoff_ms(6), 60000);
	assert_int_equal(supervise_backoff_ms(7), 60000);
	assert_int_equal(supervise_backoff_ms(4000000000u), 60000);
}

static void test_parse_only(void **state)
{
	bool en[8];
	struct err e = {0};

	(void)state;
	assert_int_equal(supervise_parse_only("identityd,keyd", en, 8, &e), 0);
	assert_true(en[supervise_service_find("keyd")]);
	assert_true(en[supervise_service_find("identityd")]);
	assert_false(en[supervise_service_find("tpmd")]);
	assert_false(en[supervise_service_find("certd")]);

	assert_int_equal(supervise_parse_only("keyd,tmpd", en, 8, &e), -EINVAL);
	assert_string_equal(
	    e.msg, "--only: unknown daemon \"tmpd\" (expected keyd, certd, tpmd, identityd)");
	err_clear(&e);
	assert_int_equal(supervise_parse_only("keyd,,tpmd", en, 8, &e), -EINVAL);
	assert_string_equal(e.msg, "--only: expected daemon names separated by commas (keyd, "
				   "certd, tpmd, identityd), got \"keyd,,tpmd\"");
	err_clear(&e);
	assert_int_equal(supervise_parse_only("", en, 8, &e), -EINVAL);
	err_clear(&e);
	assert_int_equal(supervise_parse_only("tpmd,tpmd", en, 8, &e), -EINVAL);
	assert_string_equal(e.msg, "--only: \"tpmd\" is named twice");
	err_clear(&e);
	assert_int_equal(supervise_parse_only("keydkeydkeydkeydkeydkeydkeydkeydkeyd", en, 8, &e),
			 -EINVAL);
}

static void test_parse_size(void **state)
{
	struct err e = {0};
	size_t v = 0;

	(void)state;
	assert_int_equal(supervise_parse_size("4096", &v, &e), 0);
	assert_int_equal(v, 4096);
	assert_int_equal(supervise_parse_size("8K", &v, &e), 0);
	assert_int_equal(v, 8192);
	assert_int_equal(supervise_parse_size("3m", &v, &e), 0);
	assert_int_equal(v, 3 * 1024 * 1024);
	assert_int_equal(supervise_parse_size("4095", &v, &e), -EINVAL);
	assert_string_equal(e.msg, "--log-size: at least 4096 bytes, got \"4095\"");
	err_clear(&e);
	assert_int_equal(supervise_parse_size("1G", &v, &e), -EINVAL);
	assert_string_equal(e.msg, "--log-size: expected a number of bytes with an optional K or "
				   "M, got \"1G\"");
	err_clear(&e);
	assert_int_equal(supervise_parse_size("-5", &v, &e), -EINVAL);
	err_clear(&e);
	assert_int_equal(supervise_parse_size("99999999999999999999999", &v, &e), -EINVAL);
	assert_string_equal(e.msg, "--log-size: \"99999999999999999999999\" is too large");
}

static size_t file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? (size_t)st.st_size : (size_t)-1;
}

static void test_log_rotation(void **state)
{
	char path[128], old[140], line[101];
	struct supervise_log l;
	struct buf content;
	struct stat st;

	(void)state;
	snprintf(path, sizeof(path), "%s/keyd.log", tmpdir);
	snprintf(old, sizeof(old), "%s.1", path);
	memset(line, 'a', 99);
	line[99] = '\n';
	line[100] = '\0';
	assert_int_equal(supervise_log_init(&l, path, 4096), 0);
	/* 40 lines of 100 bytes fit; the 41st moves them to keyd.log.1. */
	for (int i = 0; i < 40; i++)
		assert_int_equal(supervise_log_append(&l, line, 100), 0);
	assert_int_equal(file_size(path), 4000);
	assert_int_equal(file_size(old), (size_t)-1);
	line[0] = 'b';
	assert_int_equal(supervise_log_append(&l, line, 100), 0);
	assert_int_equal(file_size(old), 4000);
	assert_int_equal(file_size(path), 100);
	buf_init(&content, 0);
	assert_int_equal(fs_read_file(path, 4096, &content, NULL), 0);
	assert_memory_equal(content.data, line, 100);
	buf_free(&content);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640 & ~022 & 07777);
	/* Past the limit again: the older .1 is replaced. */
	for (int i = 0; i < 40; i++)
		assert_int_equal(supervise_log_append(&l, line, 100), 0);
	assert_int_equal(file_size(old), 4000);
	buf_init(&content, 0);
	assert_int_equal(fs_read_file(old, 4096, &content, NULL), 0);
	assert_int_equal(content.data[0], 'b');
	buf_free(&content);
	supervise_log_done(&l);

	/* A new writer goes on where the file is (its size counts). */
	assert_int_equal(supervise_log_init(&l, path, 4096), 0);
	assert_int_equal(supervise_log_append(&l, line, 100), 0);
	assert_int_equal(file_size(path), 200);
	/* One record larger than the limit still goes in, alone. */
	{
		char *big = malloc(5000);

		assert_non_null(big);
		memset(big, 'c', 5000);
		assert_int_equal(supervise_log_append(&l, big, 5000), 0);
		assert_int_equal(file_size(path), 5000);
		assert_int_equal(file_size(old), 200);
		free(big);
	}
	supervise_log_done(&l);
	supervise_log_done(&l);
}

static void test_log_stream(void **state)
{
	char path[128];
	struct supervise_log l;
	struct buf content;
	FILE *f;

	(void)state;
	snprintf(path, sizeof(path), "%s/supervise.log", tmpdir);
	assert_int_equal(supervise_log_init(&l, path, 4096), 0);
	f = supervise_log_stream(&l);
	assert_non_null(f);
	fprintf(f, "first %d\n", 1);
	fflush(f);
	assert_int_equal(file_size(path), 8);
	fprintf(f, "second\n");
	fclose(f);
	buf_init(&content, 0);
	assert_int_equal(fs_read_file(path, 4096, &content, NULL), 0);
	assert_string_equal(buf_str(&content), "first 1\nsecond\n");
	buf_free(&content);
	supervise_log_done(&l);
}

static void test_services(void **state)
{
	const struct supervise_service *s;

	(void)state;
	/* Start order: dependencies first. */
	assert_int_equal(supervise_service_find("keyd"), 0);
	assert_true(supervise_service_find("certd") < supervise_service_find("identityd"));
	assert_true(supervise_service_find("tpmd") < supervise_service_find("identityd"));
	assert_int_equal(supervise_service_find("edged"), -1);
	s = supervise_service_at((size_t)supervise_service_find("identityd"));
	assert_string_equal(s->user, "aziotid");
	assert_string_equal(s->groups[0], "aziotcs");
	assert_string_equal(s->groups[1], "aziotks");
	assert_string_equal(s->groups[2], "aziottpm");
	assert_null(s->groups[3]);
	assert_false(s->socket_activated);
	/* certd signs through keyd, and is started by default like the others. */
	assert_true(supervise_service_find("keyd") < supervise_service_find("certd"));
	assert_true(supervise_service_at((size_t)supervise_service_find("certd"))->by_default);
	assert_null(supervise_service_at(4));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_log_time),
	    cmocka_unit_test(test_record_keeps_time),
	    cmocka_unit_test(test_record_stamps_other_lines),
	    cmocka_unit_test(test_record_control_characters),
	    cmocka_unit_test(test_error_offset),
	    cmocka_unit_test(test_lines_split),
	    cmocka_unit_test(test_lines_long),
	    cmocka_unit_test(test_exit_reason),
	    cmocka_unit_test(test_backoff),
	    cmocka_unit_test(test_parse_only),
	    cmocka_unit_test(test_parse_size),
	    cmocka_unit_test_setup_teardown(test_log_rotation, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_log_stream, setup_dir, teardown_dir),
	    cmocka_unit_test(test_services),
	};

	umask(022);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
