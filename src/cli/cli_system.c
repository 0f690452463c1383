/* SPDX-License-Identifier: MIT */
/*
 * edgeid system status|logs|restart|stop|reprovision: the device daemons as
 * a whole, the way `iotedge system` and `aziotctl system` handle them.
 *
 * Two managers run the daemons. Where their systemd units are installed
 * (and systemd runs), systemctl and journalctl do the work, as aziotctl
 * does. Elsewhere `edgeidd supervise` runs them, and this file reads the
 * state it keeps and talks to its control socket (supervise_proto.h).
 * With --root or --run-dir (a device image, a test) only the supervisor is
 * considered. EDGEID_SYSTEM_MANAGER=systemd|supervise overrides the choice.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cli/cli.h"
#include "cli/cli_probe.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/http_client.h"
#include "common/json.h"
#include "common/macro.h"
#include "device/supervise/supervise_proto.h"

#define SERVICES_MAX 8
/* The identity service's API version for reprovisioning (aziotctl's). */
#define REPROVISION_API_VERSION "2021-12-01"
/* Registering with DPS, polling included, fits in this. */
#define REPROVISION_TIMEOUT_MS 120000
/* How long to wait for the supervisor: a stop takes at most its SIGKILL
 * delay, a start at most its start timeout. */
#define CONTROL_STOP_TIMEOUT_MS 30000
#define CONTROL_START_TIMEOUT_MS 120000
#define LOG_READ_MAX ((size_t)64 * 1024 * 1024)
#define LOG_LINES_DEFAULT 1000
#define LOG_LINES_FOLLOW_DEFAULT 10
#define BAD_STATE_LINES 10
/* A longer line is printed in pieces by logs -f. */
#define LOG_LINE_MAX 16384

enum verb {
	VERB_STATUS,
	VERB_LOGS,
	VERB_RESTART,
	VERB_STOP,
	VERB_REPROVISION,
};

static const struct cli_verb verbs[] = {
    [VERB_STATUS] = {"status", "edgeid system status [-o text|json] [--root DIR] [--run-dir DIR]",
		     "Show whether each daemon runs and answers on its socket: Running, Ready\n"
		     "(idle; systemd starts it on its first request), Starting, Stopping, or\n"
		     "Down with the reason. For identityd, whether the device is provisioned,\n"
		     "or why not and when it tries again; for tpmd, whether it can use the\n"
		     "TPM. Exits 1 when a daemon is down.\n"
		     "\n"
		     "Options:\n"
		     "  -o, --output FORMAT  text (default) or json\n"
		     "  --root DIR           the daemons of edgeidd supervise --root DIR\n"
		     "  --run-dir DIR        the supervisor's run directory (default "
		     "/run/edgeid)\n"
		     "  -h, --help           show this help\n"},
    [VERB_LOGS] = {"logs",
		   "edgeid system logs [-f] [--since TIME] [-n N|all] [SERVICE...] [-- "
		   "JOURNALCTL-ARGS]",
		   "Show the daemons' logs (all of them, or the SERVICEs: keyd, certd, tpmd,\n"
		   "identityd), from journald under systemd, else from edgeidd supervise's\n"
		   "log files.\n"
		   "\n"
		   "Options:\n"
		   "  -f, --follow      keep printing new lines\n"
		   "  --since TIME      from TIME on: \"2026-11-23 07:00:00\" (local time),\n"
		   "                    \"2026-11-23T07:00:00Z\", \"today\", \"-10m\", \"2 hours "
		   "ago\"\n"
		   "  -n, --lines N     the last N lines, or all (default 1000; 10 with -f)\n"
		   "  --root DIR, --run-dir DIR   as for status\n"
		   "  -- ARGS           under systemd, more arguments for journalctl\n"
		   "  -h, --help        show this help\n"},
    [VERB_RESTART] = {"restart", "edgeid system restart [SERVICE...] [--root DIR] [--run-dir DIR]",
		      "Stop the daemons (all, or the SERVICEs) in reverse dependency order,\n"
		      "then start them in order: keyd, certd, tpmd, identityd. Under systemd\n"
		      "the socket units are started and identityd, as aziotctl does; the others\n"
		      "start on their first request. Without systemd, starts edgeidd supervise\n"
		      "when it is not running.\n"
		      "\n"
		      "Options:\n"
		      "  --root DIR, --run-dir DIR   as for status\n"
		      "  -h, --help                  show this help\n"},
    [VERB_STOP] = {"stop", "edgeid system stop [SERVICE...] [--root DIR] [--run-dir DIR]",
		   "Stop the daemons (all, or the SERVICEs), in reverse dependency order.\n"
		   "Under systemd their socket units are stopped too, so that no request\n"
		   "starts them again. Without SERVICEs, edgeidd supervise exits as well.\n"
		   "\n"
		   "Options:\n"
		   "  --root DIR, --run-dir DIR   as for status\n"
		   "  -h, --help                  show this help\n"},
    [VERB_REPROVISION] = {"reprovision", "edgeid system reprovision [--root DIR]",
			  "Ask the identity service to provision the device again (DPS\n"
			  "registration or the manual settings) and reconcile its module\n"
			  "identities: POST /identities/device/reprovision on identityd's "
			  "socket.\n"
			  "\n"
			  "Options:\n"
			  "  --root DIR   the socket under DIR (/run/aziot/identityd.sock)\n"
			  "  -h, --help   show this help\n"},
};

enum manager {
	MGR_SUPERVISE,
	MGR_SYSTEMD,
};

struct opts {
	const char *root;
	const char *run_dir;
	const char *output;
	const char *since;
	const char *lines;
	bool follow;
	bool help;
	bool selected[SERVICES_MAX];
	bool any_selected;
	char **journal_args;
	int n_journal_args;
};

struct ctx {
	enum verb verb;
	char *root;    /* NULL: "/" */
	char *run_dir; /* absolute */
	enum manager mgr;
	bool supervisor_running;
	bool explicit_dirs; /* --root, --run-dir or EDGEID_ROOT */
};

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: edgeid system COMMAND [OPTIONS]\n"
		"\n"
		"Commands:\n"
		"  status       whether each daemon runs and answers\n"
		"  logs         the daemons' logs\n"
		"  restart      restart the daemons\n"
		"  stop         stop the daemons\n"
		"  reprovision  provision the device again\n"
		"\n"
		"Run 'edgeid system COMMAND --help' for a command's options. See edgeid(1).\n");
}

static int fail(enum verb v, const char *fmt, ...) _printf_(2, 3);
static int fail(enum verb v, const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fprintf(stderr, "edgeid system %s: ", verbs[v].name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return CLI_EXIT_FAILURE;
}

/* --- services ---------------------------------------------------------------- */

static size_t n_services(void)
{
	size_t n = 0;

	while (n < SERVICES_MAX && supervise_service_at(n))
		n++;
	return n;
}

static const char *svc_name(size_t i)
{
	return supervise_service_at(i)->name;
}

/* "keyd", "edgeid-keyd", "aziot-keyd", with or without ".service". */
static int service_from_arg(const char *arg)
{
	char name[64];
	size_t len = strlen(arg);
	const char *p = arg;

	if (len > 8 && streq(arg + len - 8, ".service"))
		len -= 8;
	if (strneq(p, "edgeid-", 7))
		p += 7, len -= 7;
	else if (strneq(p, "aziot-", 6))
		p += 6, len -= 6;
	if (len >= sizeof(name))
		return -1;
	memcpy(name, p, len);
	name[len] = '\0';
	return supervise_service_find(name);
}

static void service_list_text(char *buf, size_t n)
{
	size_t total = n_services(), used = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < total && used < n; i++) {
		int w = snprintf(buf + used, n - used, "%s%s",
				 i == 0           ? ""
				 : i + 1 == total ? " or "
						  : ", ",
				 svc_name(i));
		if (w < 0)
			break;
		used += (size_t)w;
	}
}

/* The order status lists services in: aziotctl's (identityd, keyd, certd,
 * tpmd). */
static const char *const display_order[] = {"identityd", "keyd", "certd", "tpmd"};

/* --- options ----------------------------------------------------------------- */

/* Returns -1 when parsed, otherwise the exit status. */
static int parse_opts(enum verb v, int argc, char **argv, struct opts *o)
{
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i];
		const char **dst = NULL;
		const char *val = NULL;
		size_t eq = strcspn(a, "=");
		char name[32];

		if (streq(a, "-h") || streq(a, "--help")) {
			o->help = true;
			continue;
		}
		if (streq(a, "--")) {
			if (v != VERB_LOGS)
				return cli_verb_usage_error("system", &verbs[v],
							    "unexpected argument '--'");
			o->journal_args = argv + i + 1;
			o->n_journal_args = argc - i - 1;
			break;
		}
		if (a[0] != '-' || streq(a, "-")) {
			int idx;

			if (v == VERB_STATUS || v == VERB_REPROVISION)
				return cli_verb_usage_error("system", &verbs[v],
							    "unexpected argument '%s'", a);
			idx = service_from_arg(a);
			if (idx < 0) {
				char list[128];

				service_list_text(list, sizeof(list));
				return cli_verb_usage_error("system", &verbs[v],
							    "unknown service '%s' (expected %s)", a,
							    list);
			}
			o->selected[idx] = true;
			o->any_selected = true;
			continue;
		}
		if (strneq(a, "--", 2) && a[eq] == '=') {
			if (eq >= sizeof(name))
				return cli_verb_usage_error("system", &verbs[v],
							    "unknown option '%s'", a);
			memcpy(name, a, eq);
			name[eq] = '\0';
			val = a + eq + 1;
		} else {
			snprintf(name, sizeof(name), "%s", a);
		}
		if (streq(name, "--root")) {
			dst = &o->root;
		} else if (streq(name, "--run-dir") && v != VERB_REPROVISION) {
			dst = &o->run_dir;
		} else if (v == VERB_STATUS && (streq(name, "-o") || streq(name, "--output"))) {
			dst = &o->output;
		} else if (v == VERB_LOGS && streq(name, "--since")) {
			dst = &o->since;
		} else if (v == VERB_LOGS && (streq(name, "-n") || streq(name, "--lines"))) {
			dst = &o->lines;
		} else if (v == VERB_LOGS && (streq(name, "-f") || streq(name, "--follow")) &&
			   !val) {
			o->follow = true;
			continue;
		} else {
			return cli_verb_usage_error("system", &verbs[v], "unknown option '%s'", a);
		}
		if (!val) {
			if (i + 1 >= argc)
				return cli_verb_usage_error("system", &verbs[v],
							    "option '%s' needs a value", a);
			val = argv[++i];
		}
		if (!*val)
			return cli_verb_usage_error("system", &verbs[v],
						    "option '%s' needs a non-empty value", name);
		*dst = val;
	}
	if (o->output && !streq(o->output, "text") && !streq(o->output, "json"))
		return cli_verb_usage_error(
		    "system", &verbs[v], "--output: expected text or json, got \"%s\"", o->output);
	return -1;
}

/* --- which manager ------------------------------------------------------------ */

static char *absolute(const char *path)
{
	char cwd[PATH_MAX];

	if (path[0] == '/')
		return strdup(path);
	if (!getcwd(cwd, sizeof(cwd)))
		return NULL;
	return fs_path_join(cwd, path);
}

static char *under_root(const struct ctx *x, const char *path)
{
	return x->root ? fs_path_join(x->root, path) : strdup(path);
}

static char *socket_path(const struct ctx *x, size_t idx)
{
	return cli_probe_socket_path(x->root, svc_name(idx));
}

/* A supervisor runs when it holds the lock on its lock file. F_OFD_GETLK
 * asks without taking it, so this never stands in a starting supervisor's
 * way. */
static bool supervisor_running(const struct ctx *x)
{
	_cleanup_free_ char *path = fs_path_join(x->run_dir, SUPERVISE_LOCK_FILE);
	_cleanup_close_ int fd = -1;
	struct flock lk = {.l_type = F_RDLCK, .l_whence = SEEK_SET};

	if (!path)
		return false;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return false;
	if (fcntl(fd, F_OFD_GETLK, &lk) < 0)
		return false;
	return lk.l_type != F_UNLCK;
}

/* `systemctl show` of the units, as one key=value table per unit. */
struct unit_props {
	char load[32], active[32], sub[32], result[32];
	long main_pid, restarts;
};

static void copy_value(char *dst, size_t n, const char *v, size_t len)
{
	if (len >= n)
		len = n - 1;
	memcpy(dst, v, len);
	dst[len] = '\0';
}

static long parse_long(const char *v, size_t len)
{
	long r = 0;

	for (size_t i = 0; i < len; i++) {
		if (v[i] < '0' || v[i] > '9' || r > (LONG_MAX - 9) / 10)
			return 0;
		r = r * 10 + (v[i] - '0');
	}
	return r;
}

static int systemd_show(const char *unit, struct unit_props *ret)
{
	char arg_unit[128];
	char *argv[] = {"systemctl", "show",
			"-p",        "LoadState,ActiveState,SubState,Result,MainPID,NRestarts",
			arg_unit,    NULL};
	_cleanup_buf_ struct buf out = {0};
	const char *p;
	int r;

	*ret = (struct unit_props){0};
	snprintf(arg_unit, sizeof(arg_unit), "%s", unit);
	buf_init(&out, 64 * 1024);
	r = cli_probe_run(argv, &out, NULL);
	if (r != 0)
		return r < 0 ? r : -EIO;
	for (p = buf_str(&out); *p;) {
		size_t len = strcspn(p, "\n"), klen = strcspn(p, "=");

		if (klen < len) {
			const char *v = p + klen + 1;
			size_t vlen = len - klen - 1;

			if (klen == 9 && strneq(p, "LoadState", 9))
				copy_value(ret->load, sizeof(ret->load), v, vlen);
			else if (klen == 11 && strneq(p, "ActiveState", 11))
				copy_value(ret->active, sizeof(ret->active), v, vlen);
			else if (klen == 8 && strneq(p, "SubState", 8))
				copy_value(ret->sub, sizeof(ret->sub), v, vlen);
			else if (klen == 6 && strneq(p, "Result", 6))
				copy_value(ret->result, sizeof(ret->result), v, vlen);
			else if (klen == 7 && strneq(p, "MainPID", 7))
				ret->main_pid = parse_long(v, vlen);
			else if (klen == 9 && strneq(p, "NRestarts", 9))
				ret->restarts = parse_long(v, vlen);
		}
		p += len;
		if (*p == '\n')
			p++;
	}
	return 0;
}

static void unit_name(size_t idx, const char *type, char *buf, size_t n)
{
	snprintf(buf, n, "edgeid-%s.%s", svc_name(idx), type);
}

static bool systemd_has_units(void)
{
	struct unit_props p;
	char unit[64];

	if (access("/run/systemd/system", F_OK) < 0)
		return false;
	unit_name(0, "service", unit, sizeof(unit));
	return systemd_show(unit, &p) == 0 && streq(p.load, "loaded");
}

static int setup_ctx(enum verb v, const struct opts *o, struct ctx *x)
{
	const char *root = o->root ? o->root : getenv("EDGEID_ROOT");
	const char *forced = getenv("EDGEID_SYSTEM_MANAGER");

	x->verb = v;
	if (root && *root && !streq(root, "/")) {
		x->root = absolute(root);
		if (!x->root)
			return fail(v, "out of memory");
		x->explicit_dirs = true;
	}
	if (o->run_dir) {
		x->run_dir = absolute(o->run_dir);
		x->explicit_dirs = true;
	} else {
		x->run_dir = under_root(x, SUPERVISE_RUN_DIR);
	}
	if (!x->run_dir)
		return fail(v, "out of memory");
	x->supervisor_running = supervisor_running(x);
	if (forced && *forced) {
		if (streq(forced, "systemd"))
			x->mgr = MGR_SYSTEMD;
		else if (streq(forced, "supervise"))
			x->mgr = MGR_SUPERVISE;
		else
			return cli_verb_usage_error(
			    "system", &verbs[v],
			    "EDGEID_SYSTEM_MANAGER: expected systemd or supervise, "
			    "got \"%s\"",
			    forced);
	} else if (x->supervisor_running || x->explicit_dirs) {
		x->mgr = MGR_SUPERVISE;
	} else {
		x->mgr = systemd_has_units() ? MGR_SYSTEMD : MGR_SUPERVISE;
	}
	return -1;
}

/* --- talking to the supervisor ------------------------------------------------------ */

/* Send one request line and read the answer line. Returns 0 ("ok"), or
 * -EIO with the supervisor's sentence in e, or another negative errno
 * when it cannot be reached. */
static int control(const struct ctx *x, const char *request, int timeout_ms, struct err *e)
{
	_cleanup_free_ char *path = fs_path_join(x->run_dir, SUPERVISE_CONTROL_SOCKET);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	_cleanup_close_ int fd = -1;
	char answer[SUPERVISE_CONTROL_LINE_MAX + 1];
	char line[SUPERVISE_CONTROL_LINE_MAX];
	size_t len = 0;
	int n;

	if (!path)
		return err_set(e, -ENOMEM, "out of memory");
	if (strlen(path) >= sizeof(sa.sun_path))
		return err_set(e, -ENAMETOOLONG, "%s: path too long for a socket", path);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return err_set(e, -errno, "cannot create a socket: %s", strerror(errno));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int r = -errno;

		if (r == -EACCES)
			return err_set(e, r, "%s: permission denied (run it as root)", path);
		return err_set(e, r, "cannot reach edgeidd supervise at %s: %s", path,
			       strerror(-r));
	}
	n = snprintf(line, sizeof(line), "%s\n", request);
	if (n < 0 || (size_t)n >= sizeof(line) ||
	    send(fd, line, (size_t)n, MSG_NOSIGNAL) != (ssize_t)n)
		return err_set(e, -EIO, "cannot send the request to edgeidd supervise");
	for (;;) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		ssize_t got;
		int pr = poll(&pfd, 1, timeout_ms);

		if (pr < 0 && errno == EINTR)
			continue;
		if (pr == 0)
			return err_set(e, -ETIMEDOUT,
				       "edgeidd supervise did not answer within %d s",
				       timeout_ms / 1000);
		got = read(fd, answer + len, sizeof(answer) - 1 - len);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			break;
		len += (size_t)got;
		if (memchr(answer, '\n', len) || len == sizeof(answer) - 1)
			break;
	}
	answer[len] = '\0';
	answer[strcspn(answer, "\n")] = '\0';
	if (streq(answer, "ok"))
		return 0;
	if (strneq(answer, "error ", 6))
		return err_set(e, -EIO, "%s", answer + 6);
	return err_set(e, -EIO, "edgeidd supervise closed the connection without an answer");
}

/* --- status ------------------------------------------------------------------ */

enum state_word { W_RUNNING, W_READY, W_STARTING, W_STOPPING, W_DOWN };

static const char *const word_text[] = {"Running", "Ready", "Starting", "Stopping", "Down"};
static const char *const word_json[] = {"running", "ready", "starting", "stopping", "down"};
static const char *const word_colour[] = {"\033[32m", "\033[32m", "\033[33m", "\033[33m",
					  "\033[31m"};

struct svc_status {
	size_t idx;
	enum state_word word;
	char detail[2048];  /* "(...)" after Running, or the reason after "Down - " */
	char summary[2048]; /* what a running daemon says of itself, after ", " */
	bool bad;           /* down, and not because it was asked to stop */
	bool warn;          /* running, but not doing its job yet (yellow) */
	json_t *info;       /* extra JSON fields */
};

/* The request that asks a daemon how it is: a status call it answers
 * without logging above debug. The others get "GET /" without
 * api-version, which they answer 400 and log at debug too. */
static const char *status_target(size_t idx)
{
	const char *name = svc_name(idx);

	if (streq(name, "identityd"))
		return "/identities/provisioning/status?api-version=" REPROVISION_API_VERSION;
	if (streq(name, "tpmd"))
		return "/tpm/status?api-version=2020-09-01";
	return "/";
}

/* Does the socket answer an HTTP request? Any answer counts. A 200 JSON
 * object answering status_target() is put in *ret (NULL otherwise; the
 * caller decrefs). */
static int probe(const char *sock, size_t idx, json_t **ret, struct err *e)
{
	return cli_probe_socket(sock, status_target(idx), ret, e);
}

static void plural(char *buf, size_t n, long count, const char *what)
{
	snprintf(buf, n, "%ld %s%s", count, what, count == 1 ? "" : "s");
}

static const char *jstr(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s && *s ? s : NULL;
}

static json_int_t jint(const json_t *o, const char *key)
{
	return json_integer_value(json_object_get(o, key));
}

/* "exited with status 1: <error>" from a status file. */
static void exit_text(const json_t *st, char *buf, size_t n)
{
	const char *ex = jstr(st, "last_exit"), *er = jstr(st, "last_error");

	snprintf(buf, n, "%s%s%s", ex ? ex : "", ex && er ? ": " : "", er ? er : "");
}

/* An error chain ("X\ncaused by: Y", aziot's) on one line: "X; caused by:
 * Y". Cut to the buffer's size. */
static void one_line(char *text, size_t n)
{
	char out[2048];
	size_t o = 0;

	for (const char *p = text; *p && o + 3 < sizeof(out); p++) {
		if (*p == '\n') {
			out[o++] = ';';
			out[o++] = ' ';
		} else {
			out[o++] = *p;
		}
	}
	out[o] = '\0';
	snprintf(text, n, "%s", out);
}

/* identityd's provisioning status in a few words: "provisioned to hub H
 * as device D", or "not provisioned: <why>; retrying in 12 s (3 failed
 * attempts)". */
static void provisioning_summary(const json_t *st, struct svc_status *s)
{
	const char *state = strempty(jstr(st, "state")), *why = jstr(st, "last_error");
	const json_t *dev = json_object_get(st, "device");
	const json_t *next = json_object_get(st, "next_attempt_in_sec");
	json_int_t failures = jint(st, "failures");
	char tail[256], attempts[64];

	if (streq(state, "provisioned") && json_is_object(dev)) {
		if (!json_is_true(json_object_get(dev, "hub_verified")) && why)
			snprintf(s->summary, sizeof(s->summary),
				 "provisioned to hub %s as device %s, not verified: %s",
				 strempty(jstr(dev, "hub_name")), strempty(jstr(dev, "device_id")),
				 why);
		else
			snprintf(s->summary, sizeof(s->summary),
				 "provisioned to hub %s as device %s",
				 strempty(jstr(dev, "hub_name")), strempty(jstr(dev, "device_id")));
		return;
	}
	/* provisioning.source "none": nothing to do, nothing to say. */
	if (streq(state, "unprovisioned"))
		return;
	s->warn = true;
	if (!why || failures <= 0) {
		snprintf(s->summary, sizeof(s->summary), "provisioning");
		return;
	}
	plural(attempts, sizeof(attempts), (long)failures, "failed attempt");
	if (json_is_true(json_object_get(st, "busy")))
		snprintf(tail, sizeof(tail), "trying again now (%s)", attempts);
	else if (!json_is_true(json_object_get(st, "retrying")))
		snprintf(tail, sizeof(tail),
			 "not retrying until the settings change or 'edgeid system reprovision'");
	else if (json_is_integer(next))
		snprintf(tail, sizeof(tail), "retrying in %lld s (%s)",
			 (long long)json_integer_value(next), attempts);
	else
		snprintf(tail, sizeof(tail), "retrying soon (%s)", attempts);
	snprintf(s->summary, sizeof(s->summary), "not provisioned: %s; %s", why, tail);
}

/* tpmd's TPM: nothing when it can be used, else "TPM unavailable:
 * <why>". */
static void tpm_summary(const json_t *st, struct svc_status *s)
{
	const char *why = jstr(st, "error");

	if (streq(strempty(jstr(st, "tpm")), "available"))
		return;
	s->warn = true;
	snprintf(s->summary, sizeof(s->summary), "TPM unavailable: %s; tpmd keeps trying",
		 why ? why : "no reason given");
}

/* Running, and whether it answers: a Running that does not answer is
 * reported Down, unless we may not connect to it (not root). */
static void check_answer(struct svc_status *s, const char *sock, const char *running_detail)
{
	_cleanup_json_ json_t *own = NULL;
	struct err e = {0};
	int r = probe(sock, s->idx, &own, &e);

	json_object_set_new(s->info, "answering",
			    r == 0         ? json_true()
			    : r == -EACCES ? json_null()
					   : json_false());
	if (r == 0 || r == -EACCES) {
		s->word = W_RUNNING;
		snprintf(s->detail, sizeof(s->detail), "%s", running_detail);
		if (!own)
			return;
		if (streq(svc_name(s->idx), "identityd")) {
			provisioning_summary(own, s);
			json_object_set(s->info, "provisioning", own);
		} else if (streq(svc_name(s->idx), "tpmd")) {
			tpm_summary(own, s);
			json_object_set(s->info, "tpm", own);
		}
		one_line(s->summary, sizeof(s->summary));
		json_object_set_new(s->info, "summary",
				    s->summary[0] ? json_string(s->summary) : json_null());
		return;
	}
	s->word = W_DOWN;
	s->bad = true;
	snprintf(s->detail, sizeof(s->detail), "not answering: %s", err_msg(&e, r));
}

static int status_supervised(const struct ctx *x, size_t idx, struct svc_status *s)
{
	_cleanup_free_ char *path = NULL;
	_cleanup_buf_ struct buf text = {0};
	_cleanup_json_ json_t *st = NULL;
	_cleanup_free_ char *sock = socket_path(x, idx);
	const char *state;
	char why[1536], restarts[32], running[1700] = "";
	json_int_t nrestarts;
	int r;

	if (!sock ||
	    asprintf(&path, "%s/%s/%s.json", x->run_dir, SUPERVISE_STATUS_DIR, svc_name(idx)) < 0)
		return -ENOMEM;
	buf_init(&text, SUPERVISE_STATUS_MAX);
	r = fs_read_file(path, SUPERVISE_STATUS_MAX, &text, NULL);
	if (r < 0)
		return r;
	if (json_parse(text.data, text.len, 0, &st, NULL) < 0 || !json_is_object(st))
		return -EBADMSG;
	state = jstr(st, "state");
	if (!state)
		return -EBADMSG;
	s->info = json_object();
	if (!s->info)
		return -ENOMEM;
	json_object_set_new(s->info, "pid", json_integer(jint(st, "pid")));
	nrestarts = jint(st, "restarts");
	json_object_set_new(s->info, "restarts", json_integer(nrestarts));
	json_object_set(s->info, "last_exit", json_object_get(st, "last_exit"));
	json_object_set(s->info, "last_error", json_object_get(st, "last_error"));
	json_object_set_new(s->info, "since", json_string(strempty(jstr(st, "since"))));
	json_object_set_new(s->info, "socket", json_string(sock));
	exit_text(st, why, sizeof(why));
	plural(restarts, sizeof(restarts), (long)nrestarts, "restart");
	if (nrestarts > 0)
		snprintf(running, sizeof(running), "(%s; last exit: %s)", restarts,
			 strempty(jstr(st, "last_exit")));

	if (!x->supervisor_running) {
		s->word = W_DOWN;
		if (streq(state, "down") && json_is_true(json_object_get(st, "stopped"))) {
			snprintf(s->detail, sizeof(s->detail), "stopped");
		} else {
			s->bad = true;
			snprintf(s->detail, sizeof(s->detail), "edgeidd supervise is not running");
		}
	} else if (streq(state, "running")) {
		check_answer(s, sock, running);
	} else if (streq(state, "starting")) {
		s->word = W_STARTING;
	} else if (streq(state, "stopping")) {
		s->word = W_STOPPING;
	} else if (streq(state, "restarting")) {
		const char *next = jstr(st, "next_restart");
		time_t t;
		char when[64] = "soon";

		if (next && supervise_log_time(next, strlen(next), &t) == 0 && t > time(NULL))
			snprintf(when, sizeof(when), "in %lld s", (long long)(t - time(NULL)));
		s->word = W_DOWN;
		s->bad = true;
		snprintf(s->detail, sizeof(s->detail), "%s (restarting %s%s%s%s)",
			 why[0] ? why : "failed", when, nrestarts > 0 ? "; " : "",
			 nrestarts > 0 ? restarts : "", nrestarts > 0 ? " so far" : "");
	} else {
		s->word = W_DOWN;
		if (json_is_true(json_object_get(st, "stopped"))) {
			snprintf(s->detail, sizeof(s->detail), "stopped");
		} else {
			s->bad = true;
			snprintf(s->detail, sizeof(s->detail), "%s",
				 why[0] ? why : "not started yet");
		}
	}
	return 0;
}

static int status_systemd(const struct ctx *x, size_t idx, struct svc_status *s)
{
	struct unit_props svc, sock;
	char unit[64], sock_unit[64], restarts[32];
	_cleanup_free_ char *sock_path = socket_path(x, idx);
	int r;

	unit_name(idx, "service", unit, sizeof(unit));
	unit_name(idx, "socket", sock_unit, sizeof(sock_unit));
	r = systemd_show(unit, &svc);
	if (r < 0)
		return r;
	if (!streq(svc.load, "loaded"))
		return -ENOENT;
	r = systemd_show(sock_unit, &sock);
	if (r < 0)
		return r;
	s->info = json_object();
	if (!s->info || !sock_path)
		return -ENOMEM;
	json_object_set_new(s->info, "pid", json_integer(svc.main_pid));
	json_object_set_new(s->info, "restarts", json_integer(svc.restarts));
	json_object_set_new(s->info, "active_state", json_string(svc.active));
	json_object_set_new(s->info, "sub_state", json_string(svc.sub));
	json_object_set_new(s->info, "result", json_string(svc.result));
	json_object_set_new(s->info, "socket_state", json_string(sock.active));
	json_object_set_new(s->info, "socket", json_string(sock_path));
	plural(restarts, sizeof(restarts), svc.restarts, "restart");

	if (streq(svc.active, "active")) {
		char running[64] = "";

		if (svc.restarts > 0)
			snprintf(running, sizeof(running), "(%s)", restarts);
		if (streq(sock.load, "loaded") && !streq(sock.active, "active")) {
			s->word = W_DOWN;
			s->bad = true;
			snprintf(s->detail, sizeof(s->detail), "socket error: %s is %s", sock_unit,
				 sock.active);
			return 0;
		}
		check_answer(s, sock_path, running);
	} else if (streq(svc.active, "activating") || streq(svc.active, "reloading")) {
		s->word = W_STARTING;
	} else if (streq(svc.active, "deactivating")) {
		s->word = W_STOPPING;
	} else if (streq(svc.active, "inactive") && streq(sock.active, "active")) {
		s->word = W_READY;
	} else if (streq(svc.active, "failed")) {
		s->word = W_DOWN;
		s->bad = true;
		snprintf(s->detail, sizeof(s->detail), "failed (%s)", svc.result);
	} else {
		s->word = W_DOWN;
		snprintf(s->detail, sizeof(s->detail), "%s; %s is %s", svc.active, sock_unit,
			 sock.active[0] ? sock.active : "missing");
	}
	return 0;
}

/* The last n lines of text (len bytes) start at the returned offset. */
static size_t tail_offset(const char *text, size_t len, size_t n)
{
	size_t i = len;

	if (i > 0 && text[i - 1] == '\n')
		i--;
	while (i > 0) {
		if (text[i - 1] == '\n' && --n == 0)
			return i;
		i--;
	}
	return 0;
}

static void print_bad_state(const struct ctx *x, const struct svc_status *s)
{
	printf("\nedgeid-%s is in a bad state because:\n", svc_name(s->idx));
	if (x->mgr == MGR_SYSTEMD) {
		char unit[64], sock_unit[64];
		char *argv[] = {"journalctl", "-u", unit, "-u", sock_unit,
				"--no-pager", "-e", "-n", "10", NULL};

		unit_name(s->idx, "service", unit, sizeof(unit));
		unit_name(s->idx, "socket", sock_unit, sizeof(sock_unit));
		if (cli_probe_run(argv, NULL, NULL) < 0)
			printf("(journalctl could not be run)\n");
		return;
	}
	{
		_cleanup_free_ char *path = NULL;
		_cleanup_buf_ struct buf text = {0};
		struct err e = {0};
		int r;

		if (asprintf(&path, "%s/%s/%s.log", x->run_dir, SUPERVISE_LOG_DIR,
			     svc_name(s->idx)) < 0)
			return;
		buf_init(&text, LOG_READ_MAX);
		r = fs_read_file(path, LOG_READ_MAX, &text, &e);
		if (r < 0) {
			printf("(%s)\n", err_msg(&e, r));
			return;
		}
		fputs(text.data + tail_offset(text.data, text.len, BAD_STATE_LINES), stdout);
		if (text.len > 0 && text.data[text.len - 1] != '\n')
			putchar('\n');
	}
}

static bool use_colour(void)
{
	const char *term = getenv("TERM");

	return isatty(STDOUT_FILENO) && !getenv("NO_COLOR") && !(term && streq(term, "dumb"));
}

static int do_status(const struct ctx *x, const struct opts *o)
{
	struct svc_status st[SERVICES_MAX];
	size_t n = 0;
	bool any_down = false, json = o->output && streq(o->output, "json");
	bool colour = !json && use_colour();
	bool have_state = false;

	for (size_t d = 0; d < ARRAY_SIZE(display_order); d++) {
		int idx = supervise_service_find(display_order[d]);
		struct svc_status *s = &st[n];
		int r;

		if (idx < 0)
			continue;
		*s = (struct svc_status){.idx = (size_t)idx};
		r = x->mgr == MGR_SYSTEMD ? status_systemd(x, (size_t)idx, s)
					  : status_supervised(x, (size_t)idx, s);
		if (r == -ENOENT) {
			json_decref(s->info);
			continue;
		}
		if (r < 0) {
			s->word = W_DOWN;
			s->bad = true;
			snprintf(s->detail, sizeof(s->detail), "cannot read its state: %s",
				 strerror(-r));
		}
		have_state = true;
		n++;
	}
	if (!have_state && x->mgr == MGR_SUPERVISE) {
		/* Neither a supervisor nor what one left behind. */
		for (size_t d = 0; d < ARRAY_SIZE(display_order); d++) {
			int idx = supervise_service_find(display_order[d]);

			if (idx < 0 || !supervise_service_at((size_t)idx)->by_default)
				continue;
			st[n] =
			    (struct svc_status){.idx = (size_t)idx, .word = W_DOWN, .bad = false};
			snprintf(st[n].detail, sizeof(st[n].detail),
				 "not running (edgeidd supervise is not running%s)",
				 x->explicit_dirs ? "" : " and there are no systemd units");
			n++;
		}
	}
	for (size_t i = 0; i < n; i++)
		any_down |= st[i].word == W_DOWN;

	if (json) {
		json_t *root = json_object(), *arr = json_array();

		for (size_t i = 0; i < n; i++) {
			char name[64];
			json_t *o2 = json_object();

			snprintf(name, sizeof(name), "edgeid-%s", svc_name(st[i].idx));
			json_object_set_new(o2, "name", json_string(name));
			json_object_set_new(o2, "daemon", json_string(svc_name(st[i].idx)));
			json_object_set_new(o2, "status", json_string(word_json[st[i].word]));
			json_object_set_new(o2, "detail",
					    st[i].detail[0] ? json_string(st[i].detail)
							    : json_null());
			if (st[i].info)
				json_object_update(o2, st[i].info);
			json_array_append_new(arr, o2);
		}
		json_object_set_new(root, "manager",
				    json_string(x->mgr == MGR_SYSTEMD ? "systemd" : "supervise"));
		json_object_set_new(root, "services", arr);
		json_dumpf(root, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		putchar('\n');
		json_decref(root);
		for (size_t i = 0; i < n; i++)
			json_decref(st[i].info);
		return any_down ? CLI_EXIT_FAILURE : CLI_EXIT_OK;
	}

	printf("System services:\n");
	for (size_t i = 0; i < n; i++) {
		char name[64];
		const struct svc_status *s = &st[i];

		snprintf(name, sizeof(name), "edgeid-%s", svc_name(s->idx));
		printf("    %-24s%s%s", name,
		       !colour   ? ""
		       : s->warn ? word_colour[W_STARTING]
				 : word_colour[s->word],
		       word_text[s->word]);
		if (s->detail[0])
			printf(s->word == W_DOWN ? " - %s" : " %s", s->detail);
		if (s->summary[0])
			printf(", %s", s->summary);
		printf("%s\n", colour ? "\033[0m" : "");
	}
	for (size_t i = 0; i < n; i++)
		if (st[i].bad)
			print_bad_state(x, &st[i]);
	printf("\nUse 'edgeid system logs' to check for non-fatal errors.\n");
	for (size_t i = 0; i < n; i++)
		json_decref(st[i].info);
	return any_down ? CLI_EXIT_FAILURE : CLI_EXIT_OK;
}

/* --- logs --------------------------------------------------------------------- */

static void pick(const struct ctx *x, const struct opts *o, bool *sel);

/* --since: journalctl's common forms. Times without a zone are local. */
static int parse_since(const char *s, time_t now, time_t *ret)
{
	static const struct {
		const char *unit;
		long seconds;
	} units[] = {
	    {"s", 1},        {"sec", 1},     {"secs", 1},      {"second", 1},     {"seconds", 1},
	    {"m", 60},       {"min", 60},    {"mins", 60},     {"minute", 60},    {"minutes", 60},
	    {"h", 3600},     {"hour", 3600}, {"hours", 3600},  {"d", 86400},      {"day", 86400},
	    {"days", 86400}, {"w", 604800},  {"week", 604800}, {"weeks", 604800},
	};
	struct tm tm;
	size_t len = strlen(s);

	if (streq(s, "now")) {
		*ret = now;
		return 0;
	}
	if (streq(s, "today") || streq(s, "yesterday")) {
		localtime_r(&now, &tm);
		tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
		if (streq(s, "yesterday"))
			tm.tm_mday--;
		tm.tm_isdst = -1;
		*ret = mktime(&tm);
		return 0;
	}
	/* -10m, 10m ago, 10 minutes ago, 1 day */
	if (s[0] == '-' || (s[0] >= '0' && s[0] <= '9' && (len < 10 || s[4] != '-'))) {
		const char *p = s + (s[0] == '-');
		bool minus = s[0] == '-';
		long n = 0;
		size_t ul;

		if (*p < '0' || *p > '9')
			return -EINVAL;
		for (; *p >= '0' && *p <= '9'; p++) {
			if (n > 1000000000L)
				return -EINVAL;
			n = n * 10 + (*p - '0');
		}
		while (*p == ' ')
			p++;
		ul = strcspn(p, " ");
		if (ul == 0 || !(p[ul] == '\0' || (!minus && streq(p + ul, " ago"))))
			return -EINVAL;
		for (size_t i = 0; i < ARRAY_SIZE(units); i++)
			if (strlen(units[i].unit) == ul && strneq(p, units[i].unit, ul)) {
				*ret = now - (time_t)(n * units[i].seconds);
				return 0;
			}
		return -EINVAL;
	}
	/* YYYY-MM-DD[( |T)HH:MM[:SS][Z]] */
	{
		int year, mon, mday, hour = 0, min = 0, sec = 0;
		bool utc = false;
		size_t n = len;

		if (n > 10 && s[n - 1] == 'Z') {
			utc = true;
			n--;
		}
		if ((n != 10 && n != 16 && n != 19) || s[4] != '-' || s[7] != '-')
			return -EINVAL;
		year = supervise_digits(s, 4);
		mon = supervise_digits(s + 5, 2);
		mday = supervise_digits(s + 8, 2);
		if (n >= 16) {
			if ((s[10] != ' ' && s[10] != 'T') || s[13] != ':')
				return -EINVAL;
			hour = supervise_digits(s + 11, 2);
			min = supervise_digits(s + 14, 2);
		}
		if (n == 19) {
			if (s[16] != ':')
				return -EINVAL;
			sec = supervise_digits(s + 17, 2);
		}
		if (year < 1970 || mon < 1 || mon > 12 || mday < 1 || mday > 31 || hour < 0 ||
		    hour > 23 || min < 0 || min > 59 || sec < 0 || sec > 60)
			return -EINVAL;
		tm = (struct tm){.tm_year = year - 1900,
				 .tm_mon = mon - 1,
				 .tm_mday = mday,
				 .tm_hour = hour,
				 .tm_min = min,
				 .tm_sec = sec,
				 .tm_isdst = -1};
		*ret = utc ? timegm(&tm) : mktime(&tm);
		return 0;
	}
}

struct log_line {
	time_t t;
	size_t svc, seq;
	const char *p;
	size_t len;
};

static int cmp_lines(const void *a, const void *b)
{
	const struct log_line *x = a, *y = b;

	if (x->t != y->t)
		return x->t < y->t ? -1 : 1;
	if (x->svc != y->svc)
		return x->svc < y->svc ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* The last max bytes of the file open at fd, up to size; when it had to
 * skip, from the first whole line. */
static int read_tail(int fd, size_t size, struct buf *out)
{
	size_t start = size > LOG_READ_MAX ? size - LOG_READ_MAX : 0, at = start;
	char tmp[65536];
	int r;

	while (at < size) {
		size_t want = size - at < sizeof(tmp) ? size - at : sizeof(tmp);
		ssize_t n = pread(fd, tmp, want, (off_t)at);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		r = buf_append(out, tmp, (size_t)n);
		if (r < 0)
			return r;
		at += (size_t)n;
	}
	if (start > 0) {
		const char *nl = memchr(out->data, '\n', out->len);
		size_t skip = nl ? (size_t)(nl - out->data) + 1 : out->len;

		memmove(out->data, out->data + skip, out->len - skip + 1);
		out->len -= skip;
	}
	return 0;
}

struct followed {
	size_t svc;
	char *path;
	int fd;
	ino_t ino;
	off_t off;
	struct buf partial;
};

static int open_log(struct followed *f)
{
	struct stat st;

	f->fd = open(f->path, O_RDONLY | O_CLOEXEC);
	if (f->fd < 0)
		return -errno;
	if (fstat(f->fd, &st) < 0) {
		close(f->fd);
		f->fd = -1;
		return -errno;
	}
	f->ino = st.st_ino;
	f->off = 0;
	return 0;
}

/* Print what was appended to f since last time. */
static void follow_read(struct followed *f)
{
	char tmp[65536];

	for (;;) {
		ssize_t n = pread(f->fd, tmp, sizeof(tmp), f->off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		f->off += n;
		for (ssize_t i = 0; i < n; i++) {
			if (tmp[i] != '\n') {
				if (buf_putc(&f->partial, tmp[i]) < 0) {
					fwrite(f->partial.data, 1, f->partial.len, stdout);
					buf_reset(&f->partial);
					if (buf_putc(&f->partial, tmp[i]) < 0)
						continue;
				}
				continue;
			}
			fwrite(f->partial.data, 1, f->partial.len, stdout);
			putchar('\n');
			buf_reset(&f->partial);
		}
	}
}

static _noreturn_ void follow(struct followed *files, size_t n)
{
	for (;;) {
		for (size_t i = 0; i < n; i++) {
			struct followed *f = &files[i];
			struct stat st;

			if (f->fd < 0 && open_log(f) < 0)
				continue;
			follow_read(f);
			/* Rotated: the rest of the old file was read above. */
			if (stat(f->path, &st) == 0 && st.st_ino != f->ino) {
				close(f->fd);
				if (open_log(f) == 0)
					follow_read(f);
			}
		}
		if (fflush(stdout) == EOF)
			exit(CLI_EXIT_OK);
		poll(NULL, 0, 250);
	}
}

static int logs_journald(const struct opts *o, const bool *sel)
{
	char **argv;
	char units[SERVICES_MAX][64];
	size_t k = 0, total = n_services();

	argv = calloc(2 * total + 10 + (size_t)o->n_journal_args, sizeof(*argv));
	if (!argv)
		return fail(VERB_LOGS, "out of memory");
	argv[k++] = "journalctl";
	{
		size_t n = 0;

		for (size_t i = 0; i < total; i++)
			n += sel[i];
		if (n == 0) {
			free(argv);
			return fail(VERB_LOGS, "no edgeid units are installed");
		}
	}
	for (size_t i = 0; i < total; i++) {
		if (!sel[i])
			continue;
		unit_name(i, "service", units[i], sizeof(units[i]));
		argv[k++] = "-u";
		argv[k++] = units[i];
	}
	argv[k++] = "--no-pager";
	if (o->follow)
		argv[k++] = "-f";
	if (o->since) {
		argv[k++] = "--since";
		argv[k++] = (char *)o->since;
	}
	if (o->lines) {
		argv[k++] = "-n";
		argv[k++] = (char *)o->lines;
	}
	if (!o->follow && !o->since && !o->lines && o->n_journal_args == 0)
		argv[k++] = "-e";
	for (int i = 0; i < o->n_journal_args; i++)
		argv[k++] = o->journal_args[i];
	fflush(stdout);
	execvp(argv[0], argv);
	free(argv);
	return fail(VERB_LOGS, "cannot run journalctl: %s", strerror(errno));
}

static int do_logs(const struct ctx *x, const struct opts *o)
{
	bool sel[SERVICES_MAX] = {false};
	size_t total = n_services(), nf = 0, nlines = 0, cap = 0;
	struct followed files[SERVICES_MAX];
	struct buf texts[SERVICES_MAX * 2];
	struct log_line *lines = NULL;
	long want = -1;
	time_t since = 0;
	int status = CLI_EXIT_OK, r;

	for (size_t i = 0; i < total; i++)
		sel[i] = o->any_selected ? o->selected[i] : true;
	if (o->lines) {
		if (streq(o->lines, "all")) {
			want = LONG_MAX;
		} else {
			want = 0;
			for (const char *p = o->lines; *p; p++) {
				if (*p < '0' || *p > '9' || want > 100000000L)
					return cli_verb_usage_error(
					    "system", &verbs[VERB_LOGS],
					    "--lines: expected a number or all, "
					    "got \"%s\"",
					    o->lines);
				want = want * 10 + (*p - '0');
			}
		}
	}
	if (x->mgr == MGR_SYSTEMD) {
		pick(x, o, sel);
		return logs_journald(o, sel);
	}
	if (o->n_journal_args > 0)
		return cli_verb_usage_error(
		    "system", &verbs[VERB_LOGS],
		    "arguments after -- are for journalctl, which is not in use "
		    "here: the daemons run under edgeidd supervise");
	if (o->since && parse_since(o->since, time(NULL), &since) < 0)
		return cli_verb_usage_error(
		    "system", &verbs[VERB_LOGS],
		    "--since: expected a time such as \"2026-11-23 07:00:00\", "
		    "\"-10m\" or \"2 hours ago\", got \"%s\"",
		    o->since);
	if (want < 0)
		want = o->since    ? LONG_MAX
		       : o->follow ? LOG_LINES_FOLLOW_DEFAULT
				   : LOG_LINES_DEFAULT;

	{
		_cleanup_free_ char *dir = fs_path_join(x->run_dir, SUPERVISE_LOG_DIR);

		if (!dir)
			return fail(VERB_LOGS, "out of memory");
		if (access(dir, R_OK | X_OK) < 0) {
			if (errno == ENOENT) {
				if (!o->follow) {
					printf("-- No entries --\n");
					return CLI_EXIT_OK;
				}
			} else {
				return fail(VERB_LOGS, "%s: %s%s", dir, strerror(errno),
					    errno == EACCES ? " (run it as root)" : "");
			}
		}
	}

	/* The current files are opened first and read up to the size they
	 * had then, so that -f goes on exactly where the listing ended. */
	for (size_t i = 0; i < total; i++) {
		struct followed *f;
		struct stat st;

		if (!sel[i])
			continue;
		f = &files[nf++];
		*f = (struct followed){.svc = i, .fd = -1};
		buf_init(&f->partial, LOG_LINE_MAX);
		buf_init(&texts[2 * i], LOG_READ_MAX);
		buf_init(&texts[2 * i + 1], LOG_READ_MAX);
		if (asprintf(&f->path, "%s/%s/%s.log", x->run_dir, SUPERVISE_LOG_DIR, svc_name(i)) <
		    0) {
			f->path = NULL;
			status = fail(VERB_LOGS, "out of memory");
			goto out;
		}
		if (open_log(f) == 0 && fstat(f->fd, &st) == 0) {
			_cleanup_free_ char *old = NULL;
			_cleanup_close_ int ofd = -1;
			struct stat ost;

			f->off = st.st_size;
			if (asprintf(&old, "%s.1", f->path) >= 0) {
				ofd = open(old, O_RDONLY | O_CLOEXEC);
				if (ofd >= 0 && fstat(ofd, &ost) == 0)
					(void)read_tail(ofd, (size_t)ost.st_size, &texts[2 * i]);
			}
			r = read_tail(f->fd, (size_t)st.st_size, &texts[2 * i + 1]);
			if (r < 0) {
				status = fail(VERB_LOGS, "%s: %s", f->path, strerror(-r));
				goto out;
			}
		} else if (errno != ENOENT) {
			status = fail(VERB_LOGS, "%s: %s", f->path, strerror(errno));
			goto out;
		}
	}

	for (size_t i = 0; i < total; i++) {
		if (!sel[i])
			continue;
		for (int part = 0; part < 2; part++) {
			const struct buf *b = &texts[2 * i + part];
			time_t last = 0;

			for (size_t at = 0; at < b->len;) {
				const char *p = b->data + at;
				size_t len = strcspn(p, "\n");
				time_t t;

				if (supervise_log_time(p, len, &t) == 0)
					last = t;
				if (nlines == cap) {
					size_t ncap = cap ? cap * 2 : 1024;
					struct log_line *nl =
					    reallocarray(lines, ncap, sizeof(*nl));

					if (!nl) {
						status = fail(VERB_LOGS, "out of memory");
						goto out;
					}
					lines = nl;
					cap = ncap;
				}
				if (!o->since || last >= since) {
					lines[nlines] = (struct log_line){
					    .t = last, .svc = i, .seq = nlines, .p = p, .len = len};
					nlines++;
				}
				at += len + (p[len] == '\n');
			}
		}
	}
	if (nlines > 0)
		qsort(lines, nlines, sizeof(*lines), cmp_lines);
	{
		size_t first = (size_t)want < nlines ? nlines - (size_t)want : 0;

		if (nlines == 0 && !o->follow)
			printf("-- No entries --\n");
		for (size_t i = first; i < nlines; i++) {
			fwrite(lines[i].p, 1, lines[i].len, stdout);
			putchar('\n');
		}
	}
	free(lines);
	lines = NULL;
	if (o->follow) {
		for (size_t i = 0; i < total; i++) {
			if (!sel[i])
				continue;
			buf_free(&texts[2 * i]);
			buf_free(&texts[2 * i + 1]);
		}
		fflush(stdout);
		follow(files, nf);
	}
out:
	free(lines);
	for (size_t j = 0; j < nf; j++) {
		if (files[j].fd >= 0)
			close(files[j].fd);
		free(files[j].path);
		buf_free(&files[j].partial);
		buf_free(&texts[2 * files[j].svc]);
		buf_free(&texts[2 * files[j].svc + 1]);
	}
	return status;
}

/* --- restart and stop ------------------------------------------------------------ */

/* Which services: those named, else every one the manager has. */
static void pick(const struct ctx *x, const struct opts *o, bool *sel)
{
	size_t total = n_services();

	for (size_t i = 0; i < total; i++) {
		if (o->any_selected) {
			sel[i] = o->selected[i];
		} else if (x->mgr == MGR_SYSTEMD) {
			struct unit_props p;
			char unit[64];

			unit_name(i, "service", unit, sizeof(unit));
			sel[i] = systemd_show(unit, &p) == 0 && streq(p.load, "loaded");
		} else {
			_cleanup_free_ char *path = NULL;

			sel[i] = asprintf(&path, "%s/%s/%s.json", x->run_dir, SUPERVISE_STATUS_DIR,
					  svc_name(i)) >= 0 &&
				 access(path, F_OK) == 0;
		}
	}
}

static void progress(const char *what, size_t idx)
{
	printf("%s edgeid-%s...", what, svc_name(idx));
	fflush(stdout);
}

static bool systemctl(enum verb v, const char *action, const char *unit)
{
	char *argv[] = {"systemctl", (char *)action, (char *)unit, NULL};
	_cleanup_buf_ struct buf errs = {0};
	int r;

	buf_init(&errs, 64 * 1024);
	r = cli_probe_run(argv, NULL, &errs);
	if (r == 0)
		return true;
	printf("Failed!\n");
	while (errs.len > 0 && (errs.data[errs.len - 1] == '\n' || errs.data[errs.len - 1] == ' '))
		errs.data[--errs.len] = '\0';
	if (r < 0)
		fail(v, "cannot run systemctl: %s", strerror(-r));
	else
		fail(v, "systemctl %s %s: %s", action, unit, errs.len ? buf_str(&errs) : "failed");
	return false;
}

static int stop_start_systemd(const struct ctx *x, enum verb v, const bool *sel)
{
	size_t total = n_services();
	bool ok = true;

	(void)x;
	for (size_t i = total; i-- > 0;) {
		char unit[64], sock[64];

		if (!sel[i])
			continue;
		unit_name(i, "service", unit, sizeof(unit));
		unit_name(i, "socket", sock, sizeof(sock));
		progress("Stopping", i);
		if (systemctl(v, "stop", unit) && (v == VERB_RESTART || systemctl(v, "stop", sock)))
			printf("Stopped!\n");
		else
			ok = false;
	}
	if (v == VERB_STOP)
		return ok ? CLI_EXIT_OK : CLI_EXIT_FAILURE;
	/* As aziotctl: the sockets, then the services that are not started
	 * by their first request. */
	for (size_t i = 0; i < total; i++) {
		char unit[64], sock[64];
		const struct supervise_service *s = supervise_service_at(i);

		if (!sel[i])
			continue;
		unit_name(i, "service", unit, sizeof(unit));
		unit_name(i, "socket", sock, sizeof(sock));
		progress("Starting", i);
		if (systemctl(v, "start", sock) &&
		    (s->socket_activated || systemctl(v, "start", unit)))
			printf("Started!\n");
		else
			ok = false;
	}
	return ok ? CLI_EXIT_OK : CLI_EXIT_FAILURE;
}

/* Without a supervisor, `restart` starts one. */
static int start_supervisor(const struct ctx *x, const struct opts *o)
{
	_cleanup_free_ char *prog = cli_probe_sibling("edgeidd");
	char only[256] = "";
	char *argv[12];
	size_t k = 0, used = 0;
	int r;

	if (!prog)
		return fail(VERB_RESTART, "out of memory");
	argv[k++] = prog;
	argv[k++] = "supervise";
	if (x->root) {
		argv[k++] = "--root";
		argv[k++] = x->root;
	}
	if (o->run_dir) {
		argv[k++] = "--run-dir";
		argv[k++] = x->run_dir;
	}
	if (o->any_selected) {
		for (size_t i = 0; i < n_services(); i++)
			if (o->selected[i])
				used += (size_t)snprintf(only + used, sizeof(only) - used, "%s%s",
							 used ? "," : "", svc_name(i));
		argv[k++] = "--only";
		argv[k++] = only;
	}
	argv[k] = NULL;
	printf("Starting edgeidd supervise...");
	fflush(stdout);
	r = cli_probe_run(argv, NULL, NULL);
	if (r == 0) {
		printf("Started!\n");
		return CLI_EXIT_OK;
	}
	printf("Failed!\n");
	if (r < 0)
		return fail(VERB_RESTART, "cannot run %s: %s", prog, strerror(-r));
	return CLI_EXIT_FAILURE;
}

/* After "shutdown" was answered the supervisor still removes its files;
 * wait until it is gone, so that what runs next sees it stopped. */
static void wait_supervisor_gone(const struct ctx *x)
{
	for (int i = 0; i < 300 && supervisor_running(x); i++)
		poll(NULL, 0, 50);
}

static int stop_start_supervised(const struct ctx *x, const struct opts *o, enum verb v)
{
	bool sel[SERVICES_MAX] = {false};
	size_t total = n_services();
	bool ok = true;

	if (!x->supervisor_running) {
		if (v == VERB_RESTART)
			return start_supervisor(x, o);
		printf("edgeidd supervise is not running: nothing to stop.\n");
		return CLI_EXIT_OK;
	}
	pick(x, o, sel);
	for (size_t i = total; i-- > 0;) {
		char req[64];
		struct err e = {0};
		int r;

		if (!sel[i])
			continue;
		snprintf(req, sizeof(req), "stop %s", svc_name(i));
		progress("Stopping", i);
		r = control(x, req, CONTROL_STOP_TIMEOUT_MS, &e);
		if (r == 0) {
			printf("Stopped!\n");
			continue;
		}
		printf("Failed!\n");
		fail(v, "%s: %s", svc_name(i), err_msg(&e, r));
		ok = false;
		if (r != -EIO)
			return CLI_EXIT_FAILURE;
	}
	if (v == VERB_STOP) {
		if (!o->any_selected) {
			struct err e = {0};
			int r;

			printf("Stopping edgeidd supervise...");
			fflush(stdout);
			r = control(x, "shutdown", CONTROL_STOP_TIMEOUT_MS, &e);
			if (r < 0) {
				printf("Failed!\n");
				return fail(v, "%s", err_msg(&e, r));
			}
			wait_supervisor_gone(x);
			printf("Stopped!\n");
		}
		return ok ? CLI_EXIT_OK : CLI_EXIT_FAILURE;
	}
	for (size_t i = 0; i < total; i++) {
		char req[64];
		struct err e = {0};
		int r;

		if (!sel[i])
			continue;
		snprintf(req, sizeof(req), "start %s", svc_name(i));
		progress("Starting", i);
		r = control(x, req, CONTROL_START_TIMEOUT_MS, &e);
		if (r == 0) {
			printf("Started!\n");
			continue;
		}
		printf("Failed!\n");
		fail(v, "%s: %s", svc_name(i), err_msg(&e, r));
		ok = false;
		if (r != -EIO)
			return CLI_EXIT_FAILURE;
	}
	return ok ? CLI_EXIT_OK : CLI_EXIT_FAILURE;
}

static int do_stop_start(const struct ctx *x, const struct opts *o, enum verb v)
{
	if (x->mgr == MGR_SYSTEMD) {
		bool sel[SERVICES_MAX] = {false};

		pick(x, o, sel);
		return stop_start_systemd(x, v, sel);
	}
	return stop_start_supervised(x, o, v);
}

/* --- reprovision ------------------------------------------------------------------ */

static int do_reprovision(const struct ctx *x)
{
	static const char body[] = "{\"type\":\"aziot\"}";
	static const struct http_header headers[] = {{"Content-Type", "application/json"}};
	_cleanup_free_ char *sock = NULL;
	_cleanup_http_client_response_ struct http_client_response resp = {0};
	struct http_client_request req = {
	    .method = "POST",
	    .url = "http://identityd.sock/identities/device/"
		   "reprovision?api-version=" REPROVISION_API_VERSION,
	    .headers = headers,
	    .n_headers = ARRAY_SIZE(headers),
	    .body = body,
	    .body_len = sizeof(body) - 1,
	    .timeout_ms = REPROVISION_TIMEOUT_MS,
	    .max_response_bytes = 64 * 1024,
	};
	struct err e = {0};
	int idx = supervise_service_find("identityd"), r;

	sock = socket_path(x, (size_t)idx);
	if (!sock)
		return fail(VERB_REPROVISION, "out of memory");
	req.unix_socket_path = sock;
	r = http_client_perform(NULL, &req, &resp, &e);
	if (r < 0)
		return fail(VERB_REPROVISION, "cannot reach the identity service: %s%s",
			    err_msg(&e, r),
			    r == -EACCES ? " (run it as root)" : "; see 'edgeid system status'");
	if (resp.status >= 200 && resp.status < 300) {
		printf("Successfully reprovisioned with IoT Hub.\n");
		return CLI_EXIT_OK;
	}
	{
		_cleanup_json_ json_t *j = NULL;
		const char *msg = NULL;

		if (json_parse(resp.body.data, resp.body.len, 0, &j, NULL) == 0)
			msg = json_string_value(json_object_get(j, "message"));
		if (msg)
			return fail(VERB_REPROVISION, "the identity service answered %ld: %s",
				    resp.status, msg);
		return fail(VERB_REPROVISION, "the identity service answered %ld", resp.status);
	}
}

/* --- entry --------------------------------------------------------------------- */

int cli_system_main(int argc, char **argv)
{
	struct opts o = {0};
	int exit_status;
	struct ctx x = {0};
	enum verb v;
	int r;

	r = cli_verb_pick("system", verbs, ARRAY_SIZE(verbs), usage, argc, argv, &exit_status);
	if (r < 0)
		return exit_status;
	v = (enum verb)r;
	r = parse_opts(v, argc, argv, &o);
	if (r >= 0)
		return r;
	if (o.help) {
		printf("Usage: %s\n\n%s", verbs[v].usage, verbs[v].help);
		return CLI_EXIT_OK;
	}
	r = setup_ctx(v, &o, &x);
	if (r < 0) {
		switch (v) {
		case VERB_STATUS:
			r = do_status(&x, &o);
			break;
		case VERB_LOGS:
			r = do_logs(&x, &o);
			break;
		case VERB_RESTART:
		case VERB_STOP:
			r = do_stop_start(&x, &o, v);
			break;
		case VERB_REPROVISION:
			r = do_reprovision(&x);
			break;
		}
	}
	free(x.root);
	free(x.run_dir);
	return r;
}
