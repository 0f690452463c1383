/* SPDX-License-Identifier: MIT */
/*
 * What crosses between `edgeidd supervise` and `edgeid system`.
 *
 * The supervisor starts the device daemons where there is no systemd. The
 * command line reads what it left in its run directory and asks it to
 * start and stop daemons over a control socket. Nothing else is shared:
 * this header is all the two programs have in common (it defines no
 * symbols, so the CLI includes it without linking the supervisor).
 *
 * The run directory (default /run/edgeid, under --root), mode 0755:
 *
 *   supervise.lock     write-locked (fcntl F_OFD_SETLK, the whole file) by
 *                      the running supervisor: one per run directory.
 *                      F_OFD_GETLK tells a reader whether one runs.
 *   supervise.pid      its pid, once it serves the control socket.
 *   supervise.sock     the control socket (unix stream, mode 0600); only
 *                      uid 0 and the supervisor's own uid are answered.
 *   status/NAME.json   one per supervised daemon (mode 0644), replaced
 *                      atomically on every change of state:
 *                        {"name": "keyd",
 *                         "state": "running",   see below
 *                         "pid": 1234,          0 when not running
 *                         "since": "2026-11-23T07:00:00Z", when the state began
 *                         "restarts": 2,        restarts after an exit nobody asked for
 *                         "last_exit": "killed by signal 9", or null
 *                         "last_error": "...",  the last error line of the run
 *                                               that ended last, or null
 *                         "next_restart": "...Z", or null
 *                         "socket": "/run/aziot/keyd.sock",
 *                         "user": "aziotks"}    or null: the supervisor's own
 *                      States: "starting" (spawned; its socket has not
 *                      answered yet), "running" (it answered), "stopping",
 *                      "restarting" (it exited; restarted at next_restart),
 *                      "down" (not running, not to be restarted: stopped on
 *                      request, or refused its command line).
 *   logs/NAME.log      the daemon's standard output and error, one line per
 *   logs/NAME.log.1    record, each starting with an RFC 3339 UTC time
 *                      ("2026-11-23T07:00:00Z edgeidd-keyd[1234] info: ...");
 *                      the supervisor's own notes about the daemon are
 *                      there too. When NAME.log would grow past the size
 *                      limit it becomes NAME.log.1 (replacing the older
 *                      one). Directory 0750, files 0640.
 *
 * The control socket takes one request per connection, a line:
 *
 *   start NAME | stop NAME | restart NAME | shutdown
 *
 * and answers one line once it is done: "ok" or "error <sentence>". start
 * (and restart) answer when the daemon's socket answers, or with the
 * reason it did not start; shutdown stops every daemon, answers, then the
 * supervisor exits 0.
 */
#ifndef EDGEID_SUPERVISE_PROTO_H
#define EDGEID_SUPERVISE_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <time.h>

#define SUPERVISE_RUN_DIR "/run/edgeid"
#define SUPERVISE_SOCKET_DIR "/run/aziot"
#define SUPERVISE_LOCK_FILE "supervise.lock"
#define SUPERVISE_PID_FILE "supervise.pid"
#define SUPERVISE_CONTROL_SOCKET "supervise.sock"
#define SUPERVISE_STATUS_DIR "status"
#define SUPERVISE_LOG_DIR "logs"
/* A control request or answer line, the newline included. */
#define SUPERVISE_CONTROL_LINE_MAX 1280
/* A status file, at most. */
#define SUPERVISE_STATUS_MAX 8192

/* A device daemon as systemd and the supervisor run it. */
struct supervise_service {
	const char *name;      /* "keyd": the edgeidd daemon, its socket and files */
	const char *user;      /* aziot's system user for it */
	const char *groups[4]; /* the groups of the sockets it calls (aziot's
				  * memberships), NULL-terminated */
	bool by_default;       /* started when --only is not given */
	bool socket_activated; /* systemd starts it on its first request */
};

/* The daemons in start order: each one's dependencies come first (certd
 * signs through keyd; identityd calls all three). Returns NULL past the
 * end. */
static inline const struct supervise_service *supervise_service_at(size_t i)
{
	static const struct supervise_service services[] = {
	    {"keyd", "aziotks", {NULL}, true, true},
	    {"certd", "aziotcs", {"aziotks", NULL}, true, true},
	    {"tpmd", "aziottpm", {NULL}, true, true},
	    {"identityd", "aziotid", {"aziotcs", "aziotks", "aziottpm"}, true, false},
	};

	return i < sizeof(services) / sizeof(services[0]) ? &services[i] : NULL;
}

/* The index of the daemon called name ("keyd"), or -1. */
static inline int supervise_service_find(const char *name)
{
	const struct supervise_service *s;

	for (size_t i = 0; (s = supervise_service_at(i)); i++)
		if (strcmp(s->name, name) == 0)
			return (int)i;
	return -1;
}

/* Length of the time that starts every log line: "2026-11-23T07:00:00Z". */
#define SUPERVISE_LOG_TIME_LEN 20

/* n decimal digits at p as a number, or -1 when one is not a digit. */
static inline int supervise_digits(const char *p, size_t n)
{
	int v = 0;

	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		v = v * 10 + (p[i] - '0');
	}
	return v;
}

/* The time a log line starts with, "YYYY-MM-DDTHH:MM:SSZ" followed by a
 * space or the end of the line. Returns 0 and *ret (seconds since the
 * epoch), or -1 when the line does not start with one. */
static inline int supervise_log_time(const char *line, size_t len, time_t *ret)
{
	struct tm tm = {0};
	int year, mon, mday, hour, min, sec;

	if (len < SUPERVISE_LOG_TIME_LEN || line[4] != '-' || line[7] != '-' || line[10] != 'T' ||
	    line[13] != ':' || line[16] != ':' || line[19] != 'Z' ||
	    (len > SUPERVISE_LOG_TIME_LEN && line[20] != ' '))
		return -1;
	year = supervise_digits(line, 4);
	mon = supervise_digits(line + 5, 2);
	mday = supervise_digits(line + 8, 2);
	hour = supervise_digits(line + 11, 2);
	min = supervise_digits(line + 14, 2);
	sec = supervise_digits(line + 17, 2);
	if (year < 1970 || mon < 1 || mon > 12 || mday < 1 || mday > 31 || hour < 0 || hour > 23 ||
	    min < 0 || min > 59 || sec < 0 || sec > 60)
		return -1;
	tm.tm_year = year - 1900;
	tm.tm_mon = mon - 1;
	tm.tm_mday = mday;
	tm.tm_hour = hour;
	tm.tm_min = min;
	tm.tm_sec = sec;
	*ret = timegm(&tm);
	return 0;
}

#endif
