/* SPDX-License-Identifier: MIT */
/*
 * The supervisor's small parts: log files with rotation, a child's output
 * split into records, exit reasons, back-off, option values.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/macro.h"
#include "device/supervise/supervise_internal.h"

/* --- log files ------------------------------------------------------------ */

int supervise_log_init(struct supervise_log *l, const char *path, size_t max)
{
	*l = (struct supervise_log){.fd = -1, .max = max};
	l->path = strdup(path);
	return l->path ? 0 : -ENOMEM;
}

static int log_open(struct supervise_log *l)
{
	struct stat st;

	l->fd = open(l->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0640);
	if (l->fd < 0)
		return -errno;
	l->size = fstat(l->fd, &st) == 0 ? (size_t)st.st_size : 0;
	return 0;
}

static int log_rotate(struct supervise_log *l)
{
	_cleanup_free_ char *old = NULL;

	if (asprintf(&old, "%s.1", l->path) < 0)
		return -ENOMEM;
	if (l->fd >= 0) {
		close(l->fd);
		l->fd = -1;
	}
	if (rename(l->path, old) < 0 && errno != ENOENT)
		return -errno;
	return log_open(l);
}

int supervise_log_append(struct supervise_log *l, const char *data, size_t len)
{
	int r;

	if (l->fd < 0) {
		r = log_open(l);
		if (r < 0)
			return r;
	}
	/* A file that already holds something rotates before it would pass
	 * the limit; a single record larger than the limit still goes in. */
	if (l->size > 0 && l->size + len > l->max) {
		r = log_rotate(l);
		if (r < 0)
			return r;
	}
	while (len > 0) {
		ssize_t n = write(l->fd, data, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		data += n;
		len -= (size_t)n;
		l->size += (size_t)n;
	}
	return 0;
}

void supervise_log_done(struct supervise_log *l)
{
	if (l->fd >= 0)
		close(l->fd);
	free(l->path);
	*l = (struct supervise_log){.fd = -1};
}

static ssize_t log_stream_write(void *cookie, const char *data, size_t len)
{
	/* A failed write is dropped: the supervisor must not stop because its
	 * own log cannot be written. */
	(void)supervise_log_append(cookie, data, len);
	return (ssize_t)len;
}

FILE *supervise_log_stream(struct supervise_log *l)
{
	cookie_io_functions_t io = {.write = log_stream_write};
	FILE *f = fopencookie(l, "w", io);

	if (f)
		setvbuf(f, NULL, _IOLBF, 0);
	return f;
}

void supervise_format_time(time_t t, char *buf, size_t n)
{
	struct tm tm;

	if (!gmtime_r(&t, &tm) || strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, n, "1970-01-01T00:00:00Z");
}

int supervise_log_record(const char *line, size_t len, const char *ident, pid_t pid, time_t now,
			 struct buf *out)
{
	time_t t;
	size_t start;
	int r;

	buf_reset(out);
	if (supervise_log_time(line, len, &t) < 0) {
		char ts[32];

		supervise_format_time(now, ts, sizeof(ts));
		r = buf_printf(out, "%s %s[%ld]: ", ts, ident, (long)pid);
		if (r < 0)
			return r;
	}
	start = out->len;
	r = buf_append(out, line, len);
	if (r < 0)
		return r;
	for (size_t i = start; i < out->len; i++) {
		unsigned char ch = (unsigned char)out->data[i];

		if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
			out->data[i] = '?';
	}
	return buf_putc(out, '\n');
}

ssize_t supervise_log_error_offset(const char *line, size_t len)
{
	static const char level[] = "] error: ";
	time_t t;

	if (supervise_log_time(line, len, &t) < 0)
		return -1;
	/* "<time> <ident>[<pid>] error: ": the first "]" after the ident. */
	for (size_t i = SUPERVISE_LOG_TIME_LEN + 1; i < len; i++) {
		if (line[i] == ' ')
			return -1;
		if (line[i] == ']') {
			if (len - i < sizeof(level) - 1 ||
			    memcmp(line + i, level, sizeof(level) - 1))
				return -1;
			return (ssize_t)(i + sizeof(level) - 1);
		}
	}
	return -1;
}

/* --- output split into lines ------------------------------------------------ */

static void emit(struct supervise_lines *lb, supervise_line_fn fn, void *userdata)
{
	size_t n = lb->len;

	if (n > 0 && lb->buf[n - 1] == '\r')
		n--;
	fn(userdata, lb->buf, n);
	lb->len = 0;
}

void supervise_lines_feed(struct supervise_lines *lb, const char *data, size_t n,
			  supervise_line_fn fn, void *userdata)
{
	for (size_t i = 0; i < n; i++) {
		if (data[i] == '\n') {
			emit(lb, fn, userdata);
			continue;
		}
		if (lb->len == sizeof(lb->buf))
			emit(lb, fn, userdata);
		lb->buf[lb->len++] = data[i];
	}
}

void supervise_lines_flush(struct supervise_lines *lb, supervise_line_fn fn, void *userdata)
{
	if (lb->len > 0)
		emit(lb, fn, userdata);
}

/* --- small rules ------------------------------------------------------------ */

void supervise_exit_reason(int status, char *buf, size_t n)
{
	if (WIFEXITED(status))
		snprintf(buf, n, "exited with status %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, n, "killed by signal %d%s", WTERMSIG(status),
			 WCOREDUMP(status) ? " (core dumped)" : "");
	else
		snprintf(buf, n, "ended with wait status 0x%x", (unsigned)status);
}

int64_t supervise_backoff_ms(unsigned fails)
{
	int64_t d = SUPERVISE_BACKOFF_MIN_MS;

	for (unsigned i = 0; i < fails && d < SUPERVISE_BACKOFF_MAX_MS; i++)
		d *= 2;
	return d < SUPERVISE_BACKOFF_MAX_MS ? d : SUPERVISE_BACKOFF_MAX_MS;
}

static void known_names(char *buf, size_t n)
{
	const struct supervise_service *s;
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; (s = supervise_service_at(i)) && used < n; i++) {
		int w = snprintf(buf + used, n - used, "%s%s", i ? ", " : "", s->name);

		if (w < 0)
			break;
		used += (size_t)w;
	}
}

int supervise_parse_only(const char *list, bool *ret_enabled, size_t n, struct err *e)
{
	const char *p = list;
	char names[128];

	for (size_t i = 0; i < n; i++)
		ret_enabled[i] = false;
	known_names(names, sizeof(names));
	for (;;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		char name[32];
		int idx;

		if (len == 0)
			return err_set(e, -EINVAL,
				       "--only: expected daemon names separated by commas "
				       "(%s), got \"%s\"",
				       names, list);
		if (len >= sizeof(name))
			return err_set(e, -EINVAL, "--only: unknown daemon \"%.*s\" (expected %s)",
				       (int)len, p, names);
		memcpy(name, p, len);
		name[len] = '\0';
		idx = supervise_service_find(name);
		if (idx < 0 || (size_t)idx >= n)
			return err_set(e, -EINVAL, "--only: unknown daemon \"%s\" (expected %s)",
				       name, names);
		if (ret_enabled[idx])
			return err_set(e, -EINVAL, "--only: \"%s\" is named twice", name);
		ret_enabled[idx] = true;
		if (!comma)
			return 0;
		p = comma + 1;
	}
}

int supervise_parse_size(const char *s, size_t *ret, struct err *e)
{
	uint64_t v = 0, mult = 1;
	const char *p = s;

	if (*p < '0' || *p > '9')
		return err_set(e, -EINVAL, "--log-size: expected a number of bytes, got \"%s\"", s);
	for (; *p >= '0' && *p <= '9'; p++) {
		if (v > (UINT64_MAX - 9) / 10)
			return err_set(e, -EINVAL, "--log-size: \"%s\" is too large", s);
		v = v * 10 + (uint64_t)(*p - '0');
	}
	if (*p == 'K' || *p == 'k')
		mult = 1024, p++;
	else if (*p == 'M' || *p == 'm')
		mult = 1024 * 1024, p++;
	if (*p != '\0')
		return err_set(e, -EINVAL,
			       "--log-size: expected a number of bytes with an optional K or M, "
			       "got \"%s\"",
			       s);
	if (v > (uint64_t)(SIZE_MAX / 2) / mult)
		return err_set(e, -EINVAL, "--log-size: \"%s\" is too large", s);
	v *= mult;
	if (v < SUPERVISE_LOG_SIZE_MIN)
		return err_set(e, -EINVAL, "--log-size: at least %zu bytes, got \"%s\"",
			       SUPERVISE_LOG_SIZE_MIN, s);
	*ret = (size_t)v;
	return 0;
}
