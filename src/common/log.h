/* SPDX-License-Identifier: MIT */
/*
 * Logging. Libraries log at debug only; a daemon logs once, at the level
 * it decides, where it decides what to do about an error.
 *
 * Output goes to stderr as "<level> <ident>: message" (systemd's journal
 * reads the "<N>" priority prefix when stderr is a journal stream).
 * Never pass secrets to these functions.
 */
#ifndef EDGEID_LOG_H
#define EDGEID_LOG_H

#include <stdarg.h>

#include "common/macro.h"

enum log_level {
	LOG_LEVEL_ERR = 3,
	LOG_LEVEL_WARN = 4,
	LOG_LEVEL_NOTICE = 5,
	LOG_LEVEL_INFO = 6,
	LOG_LEVEL_DEBUG = 7,
};

void log_init(const char *ident);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Parse "error", "warn", "notice", "info", "debug" (or 3..7). */
int log_level_parse(const char *s, enum log_level *ret_level);
/* Redirect output (tests). NULL restores stderr. */
void log_set_stream(void *stream);

void log_msg(enum log_level level, const char *fmt, ...) _printf_(2, 3);
void log_msgv(enum log_level level, const char *fmt, va_list ap) _printf_(2, 0);

#define log_err(...) log_msg(LOG_LEVEL_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_notice(...) log_msg(LOG_LEVEL_NOTICE, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...)                                                                             \
	do {                                                                                       \
		if (log_get_level() >= LOG_LEVEL_DEBUG)                                            \
			log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__);                                     \
	} while (0)

#endif
