/* SPDX-License-Identifier: MIT */
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/err.h"
#include "common/log.h"

static void test_err_set_keeps_first(void **state)
{
	struct err e = {0};

	(void)state;
	assert_false(err_isset(&e));
	assert_int_equal(err_set(&e, -EINVAL, "%s: expected a string", "hostname"), -EINVAL);
	assert_true(err_isset(&e));
	assert_int_equal(e.code, -EINVAL);
	assert_string_equal(e.msg, "hostname: expected a string");
	/* The innermost cause was recorded first and wins. */
	assert_int_equal(err_set(&e, -ENOENT, "outer %d", 2), -ENOENT);
	assert_int_equal(e.code, -EINVAL);
	assert_string_equal(e.msg, "hostname: expected a string");

	/* NULL: nothing recorded, the code passed through. */
	assert_int_equal(err_set(NULL, -EIO, "ignored"), -EIO);

	err_clear(&e);
	assert_false(err_isset(&e));
	assert_int_equal(e.code, 0);
	assert_int_equal(err_set(&e, -EPERM, "second"), -EPERM);
	assert_string_equal(e.msg, "second");
	err_clear(NULL);
	assert_false(err_isset(NULL));
}

static void test_err_set_truncates(void **state)
{
	char long_text[3000];
	struct err e = {0};

	(void)state;
	memset(long_text, 'q', sizeof(long_text) - 1);
	long_text[sizeof(long_text) - 1] = '\0';
	assert_int_equal(err_set(&e, -E2BIG, "start:%s", long_text), -E2BIG);
	assert_int_equal(strlen(e.msg), ERR_MSG_MAX - 1);
	assert_memory_equal(e.msg, "start:qqq", 9);
}

static void test_err_prefix_chains(void **state)
{
	struct err e = {0};
	char long_prefix[ERR_MSG_MAX + 100];

	(void)state;
	err_set(&e, -EINVAL, "expected one of \"x509\", \"tpm\", got \"tmp\"");
	assert_int_equal(err_prefix(&e, -EIO, "%s", "provisioning.attestation.method"), -EINVAL);
	assert_int_equal(err_prefix(&e, -EIO, "%s:%d:%d", "config.toml", 14, 9), -EINVAL);
	assert_string_equal(e.msg, "config.toml:14:9: provisioning.attestation.method: "
				   "expected one of \"x509\", \"tpm\", got \"tmp\"");
	assert_int_equal(e.code, -EINVAL);

	/* Nothing set yet: the prefix becomes the message. */
	err_clear(&e);
	assert_int_equal(err_prefix(&e, -ENOENT, "config.toml"), -ENOENT);
	assert_string_equal(e.msg, "config.toml");
	assert_int_equal(e.code, -ENOENT);

	assert_int_equal(err_prefix(NULL, -EACCES, "x"), -EACCES);

	/* A chain longer than the message keeps its start. */
	memset(long_prefix, 'p', sizeof(long_prefix) - 1);
	long_prefix[sizeof(long_prefix) - 1] = '\0';
	err_clear(&e);
	err_set(&e, -EINVAL, "cause");
	err_prefix(&e, -EINVAL, "%s", long_prefix);
	assert_int_equal(strlen(e.msg), ERR_MSG_MAX - 1);
	assert_int_equal(e.msg[0], 'p');
	assert_int_equal(e.msg[ERR_MSG_MAX - 2], 'p');
}

static void test_err_msg_fallback(void **state)
{
	struct err e = {0};

	(void)state;
	assert_string_equal(err_msg(NULL, -ENOENT), "No such file or directory");
	assert_string_equal(err_msg(&e, -EACCES), "Permission denied");
	assert_string_equal(err_msg(&e, EACCES), "Permission denied");
	err_set(&e, -EACCES, "/etc/edgeid/keys: cannot open: Permission denied");
	assert_string_equal(err_msg(&e, -ENOENT),
			    "/etc/edgeid/keys: cannot open: Permission denied");
}

static void test_log_level_parse(void **state)
{
	static const struct {
		const char *s;
		int r;
		enum log_level level;
	} cases[] = {
	    {"error", 0, LOG_LEVEL_ERR},
	    {"ERR", 0, LOG_LEVEL_ERR},
	    {"warn", 0, LOG_LEVEL_WARN},
	    {"Warning", 0, LOG_LEVEL_WARN},
	    {"notice", 0, LOG_LEVEL_NOTICE},
	    {"info", 0, LOG_LEVEL_INFO},
	    {"debug", 0, LOG_LEVEL_DEBUG},
	    {"3", 0, LOG_LEVEL_ERR},
	    {"7", 0, LOG_LEVEL_DEBUG},
	    {"8", -EINVAL, 0},
	    {"", -EINVAL, 0},
	    {"debugg", -EINVAL, 0},
	    {"inf", -EINVAL, 0},
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		enum log_level level = (enum log_level)0;

		assert_int_equal(log_level_parse(cases[i].s, &level), cases[i].r);
		if (cases[i].r == 0)
			assert_int_equal(level, cases[i].level);
	}
}

/* Lines logged while f captured them. */
static char *captured(FILE *f)
{
	long n;
	char *s;

	assert_int_equal(fflush(f), 0);
	n = ftell(f);
	assert_true(n >= 0);
	s = calloc(1, (size_t)n + 1);
	assert_non_null(s);
	rewind(f);
	assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
	return s;
}

static void assert_matches(const char *text, const char *pattern)
{
	regex_t re;
	int r;

	assert_int_equal(regcomp(&re, pattern, REG_EXTENDED | REG_NEWLINE), 0);
	r = regexec(&re, text, 0, NULL, 0);
	regfree(&re);
	if (r != 0)
		fail_msg("\"%s\" does not match /%s/", text, pattern);
}

static void test_log_format_and_filter(void **state)
{
	_cleanup_fclose_ FILE *f = tmpfile();
	_cleanup_free_ char *out = NULL;
	char pattern[256];

	(void)state;
	assert_non_null(f);
	unsetenv("EDGEID_LOG_LEVEL");
	log_init("edgeid-test");
	log_set_stream(f);
	log_set_level(LOG_LEVEL_INFO);

	errno = EAGAIN;
	log_info("listening on %s", "/run/edgeid/keyd.sock");
	assert_int_equal(errno, EAGAIN); /* logging keeps errno */
	log_debug("suppressed at info %d", 1);
	log_msg(LOG_LEVEL_DEBUG, "suppressed too");
	log_warn("certificate expires in %d days", 3);
	log_err("cannot bind: %s", "Address in use");
	log_notice("reloaded");
	out = captured(f);
	log_set_stream(NULL);

	snprintf(pattern, sizeof(pattern),
		 "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z edgeid-test\\[%ld\\] ",
		 (long)getpid());
	/* Four lines, in order, each stamped, with the level word. */
	{
		char full[2048];

		snprintf(full, sizeof(full),
			 "%sinfo: listening on /run/edgeid/keyd.sock\n"
			 "%swarning: certificate expires in 3 days\n"
			 "%serror: cannot bind: Address in use\n"
			 "%snotice: reloaded\n$",
			 pattern, pattern + 1, pattern + 1, pattern + 1);
		assert_matches(out, full);
	}
	assert_null(strstr(out, "suppressed"));
	assert_null(strstr(out, "debug"));
}

static void test_log_debug_and_error_levels(void **state)
{
	_cleanup_fclose_ FILE *f = tmpfile();
	_cleanup_free_ char *out = NULL;

	(void)state;
	assert_non_null(f);
	log_set_stream(f);
	log_set_level(LOG_LEVEL_DEBUG);
	assert_int_equal(log_get_level(), LOG_LEVEL_DEBUG);
	log_debug("shown at debug");
	log_set_level(LOG_LEVEL_ERR);
	log_warn("not shown at error");
	log_notice("nor this");
	log_err("shown at error");
	out = captured(f);
	log_set_stream(NULL);
	log_set_level(LOG_LEVEL_INFO);

	assert_matches(out, "^[^\n]* debug: shown at debug\n[^\n]* error: shown at error\n$");
}

static void test_log_level_from_environment(void **state)
{
	_cleanup_fclose_ FILE *f = tmpfile();
	_cleanup_free_ char *out = NULL;

	(void)state;
	assert_non_null(f);
	setenv("EDGEID_LOG_LEVEL", "debug", 1);
	log_init(NULL);
	assert_int_equal(log_get_level(), LOG_LEVEL_DEBUG);
	setenv("EDGEID_LOG_LEVEL", "loud", 1);
	log_set_level(LOG_LEVEL_WARN);
	log_init(NULL); /* an invalid value changes nothing */
	assert_int_equal(log_get_level(), LOG_LEVEL_WARN);
	unsetenv("EDGEID_LOG_LEVEL");

	log_set_stream(f);
	log_warn("ident kept");
	out = captured(f);
	log_set_stream(NULL);
	log_set_level(LOG_LEVEL_INFO);
	assert_matches(out, " edgeid-test\\[[0-9]+\\] warning: ident kept\n$");
}

/* With stderr on the journal: "<priority>message", no timestamp; but only
 * when JOURNAL_STREAM names our stderr, and never on a substituted stream. */
static void test_log_journal_stream(void **state)
{
	_cleanup_fclose_ FILE *f = tmpfile(), *other = tmpfile();
	_cleanup_free_ char *out = NULL, *out_other = NULL;
	int saved_stderr = dup(STDERR_FILENO);
	char env[64];
	struct stat st;

	(void)state;
	assert_non_null(f);
	assert_non_null(other);
	assert_true(saved_stderr >= 0);
	assert_int_equal(fstat(fileno(f), &st), 0);
	fflush(stderr);
	assert_true(dup2(fileno(f), STDERR_FILENO) >= 0);

	snprintf(env, sizeof(env), "%llu:%llu", (unsigned long long)st.st_dev,
		 (unsigned long long)st.st_ino);
	setenv("JOURNAL_STREAM", env, 1);
	log_init(NULL);
	log_notice("to the journal");
	log_set_stream(other);
	log_notice("to a file");
	log_set_stream(NULL);

	/* Inherited from a parent whose stderr was the journal. */
	snprintf(env, sizeof(env), "%llu:%llu", (unsigned long long)st.st_dev,
		 (unsigned long long)st.st_ino + 1);
	setenv("JOURNAL_STREAM", env, 1);
	log_init(NULL);
	log_notice("not the journal");
	setenv("JOURNAL_STREAM", "garbage", 1);
	log_init(NULL);
	log_notice("garbage");

	fflush(stderr);
	assert_true(dup2(saved_stderr, STDERR_FILENO) >= 0);
	close(saved_stderr);
	unsetenv("JOURNAL_STREAM");
	log_init(NULL);

	out = captured(f);
	out_other = captured(other);
	assert_matches(out,
		       "^<5>to the journal\n[0-9TZ:-]+ edgeid-test\\[[0-9]+\\] notice: not the "
		       "journal\n[^\n]+ notice: garbage\n$");
	assert_matches(out_other, "^[0-9TZ:-]+ edgeid-test\\[[0-9]+\\] notice: to a file\n$");
}

static void test_log_long_message_truncated(void **state)
{
	_cleanup_fclose_ FILE *f = tmpfile();
	_cleanup_free_ char *out = NULL, *big = malloc(5000);

	(void)state;
	assert_non_null(f);
	assert_non_null(big);
	memset(big, 'm', 4999);
	big[4999] = '\0';
	log_set_stream(f);
	log_info("%s", big);
	out = captured(f);
	log_set_stream(NULL);
	/* One line, cut short, still terminated. */
	assert_matches(out, "^[^\n]* info: m+\n$");
	assert_true(strlen(out) < 2200);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_err_set_keeps_first),
	    cmocka_unit_test(test_err_set_truncates),
	    cmocka_unit_test(test_err_prefix_chains),
	    cmocka_unit_test(test_err_msg_fallback),
	    cmocka_unit_test(test_log_level_parse),
	    cmocka_unit_test(test_log_format_and_filter),
	    cmocka_unit_test(test_log_debug_and_error_levels),
	    cmocka_unit_test(test_log_level_from_environment),
	    cmocka_unit_test(test_log_journal_stream),
	    cmocka_unit_test(test_log_long_message_truncated),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
