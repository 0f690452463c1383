/* SPDX-License-Identifier: MIT */
/*
 * What the supervisor's files share, and the parts of it the unit tests
 * call: log files with rotation, splitting a child's output into lines,
 * exit reasons, the restart back-off and the option parsers.
 */
#ifndef EDGEID_SUPERVISE_INTERNAL_H
#define EDGEID_SUPERVISE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <time.h>

#include "common/buf.h"
#include "common/err.h"
#include "device/supervise/supervise_proto.h"

/* A line of a daemon's output longer than this is cut into pieces. */
#define SUPERVISE_LINE_MAX 4096
/* Default size at which a log file is rotated. */
#define SUPERVISE_LOG_SIZE_DEFAULT ((size_t)1024 * 1024)
/* Smallest --log-size: room for a few lines. */
#define SUPERVISE_LOG_SIZE_MIN ((size_t)4096)
/* Restart delays: the first, and the cap the doubling stops at. */
#define SUPERVISE_BACKOFF_MIN_MS 1000
#define SUPERVISE_BACKOFF_MAX_MS 60000

/* --- log files ------------------------------------------------------------ */

/* An append-only file that is renamed to PATH.1 when a write would take it
 * past max bytes. */
struct supervise_log {
	char *path;
	int fd; /* -1 until the first write */
	size_t size;
	size_t max;
};

/* Set up l for path (copied); nothing is opened yet. Returns 0 or -ENOMEM. */
int supervise_log_init(struct supervise_log *l, const char *path, size_t max);
/* Append len bytes (whole lines), rotating first when they would not fit.
 * The file is created 0640 when missing. Returns 0, or a negative errno
 * (the data is lost; the next write tries again). */
int supervise_log_append(struct supervise_log *l, const char *data, size_t len);
/* Close the file and free the path; l may be zeroed. */
void supervise_log_done(struct supervise_log *l);
/* A stdio stream whose output goes to l (for the supervisor's own log when
 * it runs in the background). The caller closes it before l is done. NULL
 * with errno on failure. */
FILE *supervise_log_stream(struct supervise_log *l);

/* One record of a daemon's output as its log file holds it, newline
 * included, into out (reset first). A line that already starts with a
 * time (what edgeid's log module writes) is kept; any other gets
 * "<now> <ident>[<pid>]: " in front. Control characters other than tab
 * become '?'. Returns 0 or -ENOMEM. */
int supervise_log_record(const char *line, size_t len, const char *ident, pid_t pid, time_t now,
			 struct buf *out);

/* When line is a record edgeid's log module wrote at level error
 * ("<time> <ident>[<pid>] error: <message>"), the offset of its message;
 * otherwise -1. */
ssize_t supervise_log_error_offset(const char *line, size_t len);

/* "2026-11-23T07:00:00Z" for t, into buf (at least 21 bytes). */
void supervise_format_time(time_t t, char *buf, size_t n);

/* --- output split into lines ------------------------------------------------ */

struct supervise_lines {
	char buf[SUPERVISE_LINE_MAX];
	size_t len;
};

typedef void (*supervise_line_fn)(void *userdata, const char *line, size_t len);

/* Feed n bytes; fn is called for every complete line (without its newline
 * or a CR before it), and for a piece of SUPERVISE_LINE_MAX bytes when a
 * line is longer. */
void supervise_lines_feed(struct supervise_lines *lb, const char *data, size_t n,
			  supervise_line_fn fn, void *userdata);
/* At the end of the output: hand out what is left as a last line. */
void supervise_lines_flush(struct supervise_lines *lb, supervise_line_fn fn, void *userdata);

/* --- small rules ------------------------------------------------------------ */

/* How a child ended, from a wait() status: "exited with status 1",
 * "killed by signal 9", "killed by signal 11 (core dumped)". */
void supervise_exit_reason(int status, char *buf, size_t n);

/* The delay before restart number fails + 1 of a daemon that keeps failing:
 * SUPERVISE_BACKOFF_MIN_MS doubled per failure, at most
 * SUPERVISE_BACKOFF_MAX_MS. */
int64_t supervise_backoff_ms(unsigned fails);

/* --only: a comma-separated list of daemon names. Sets ret_enabled[i] for
 * the daemon at supervise_service_at(i) (n entries, all others false).
 * Returns 0, or -EINVAL with a sentence: an unknown or repeated name, an
 * empty list or entry. */
int supervise_parse_only(const char *list, bool *ret_enabled, size_t n, struct err *e);

/* --log-size: bytes, with an optional K or M suffix (powers of 1024), at
 * least SUPERVISE_LOG_SIZE_MIN. Returns 0 or -EINVAL with a sentence. */
int supervise_parse_size(const char *s, size_t *ret, struct err *e);

#endif
