/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"

static const char *log_ident = "edgeid";
static enum log_level log_max = LOG_LEVEL_INFO;
static FILE *log_stream;
static int log_journal = -1;

/* Under systemd, stderr connected to the journal gets the priority
 * prefix and no timestamp (the journal adds its own). JOURNAL_STREAM is
 * inherited by every child, whatever its stderr is, so it counts only when
 * its "device:inode" is our stderr's, as systemd.exec(5) prescribes. */
static int stderr_is_journal(void)
{
	const char *env = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;
	char *end;

	if (!env || !isdigit((unsigned char)env[0]))
		return 0;
	errno = 0;
	dev = strtoull(env, &end, 10);
	if (errno != 0 || *end != ':' || !isdigit((unsigned char)end[1]))
		return 0;
	ino = strtoull(end + 1, &end, 10);
	if (errno != 0 || *end != '\0')
		return 0;
	if (fstat(STDERR_FILENO, &st) < 0)
		return 0;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void log_init(const char *ident)
{
	const char *env;
	enum log_level lvl;

	if (ident)
		log_ident = ident;
	env = getenv("EDGEID_LOG_LEVEL");
	if (env && log_level_parse(env, &lvl) == 0)
		log_max = lvl;
	log_journal = stderr_is_journal();
}

void log_set_level(enum log_level level)
{
	log_max = level;
}

enum log_level log_get_level(void)
{
	return log_max;
}

void log_set_stream(void *stream)
{
	log_stream = stream;
}

int log_level_parse(const char *s, enum log_level *ret_level)
{
	static const struct {
		const char *name;
		enum log_level level;
	} names[] = {
	    {"error", LOG_LEVEL_ERR},    {"err", LOG_LEVEL_ERR},       {"warn", LOG_LEVEL_WARN},
	    {"warning", LOG_LEVEL_WARN}, {"notice", LOG_LEVEL_NOTICE}, {"info", LOG_LEVEL_INFO},
	    {"debug", LOG_LEVEL_DEBUG},  {"3", LOG_LEVEL_ERR},         {"4", LOG_LEVEL_WARN},
	    {"5", LOG_LEVEL_NOTICE},     {"6", LOG_LEVEL_INFO},        {"7", LOG_LEVEL_DEBUG},
	};

	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		if (strcasecmp(s, names[i].name) == 0) {
			*ret_level = names[i].level;
			return 0;
		}
	}
	return -EINVAL;
}

static const char *level_name(enum log_level level)
{
	switch (level) {
	case LOG_LEVEL_ERR:
		return "error";
	case LOG_LEVEL_WARN:
		return "warning";
	case LOG_LEVEL_NOTICE:
		return "notice";
	case LOG_LEVEL_INFO:
		return "info";
	case LOG_LEVEL_DEBUG:
		return "debug";
	}
	return "?";
}

void log_msgv(enum log_level level, const char *fmt, va_list ap)
{
	FILE *out = log_stream ? log_stream : stderr;
	char line[2048];
	int saved = errno;

	if (level > log_max)
		return;
	vsnprintf(line, sizeof(line), fmt, ap);
	/* The journal prefix is for the journal only, not a stream that
	 * log_set_stream() substituted. */
	if (log_journal > 0 && out == stderr) {
		fprintf(out, "<%d>%s\n", (int)level, line);
	} else {
		char ts[32] = "";
		struct timespec now;
		struct tm tm;

		if (clock_gettime(CLOCK_REALTIME, &now) == 0 && gmtime_r(&now.tv_sec, &tm))
			strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
		fprintf(out, "%s %s[%ld] %s: %s\n", ts, log_ident, (long)getpid(),
			level_name(level), line);
	}
	fflush(out);
	errno = saved;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_msgv(level, fmt, ap);
	va_end(ap);
}
