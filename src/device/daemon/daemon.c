/* SPDX-License-Identifier: MIT */
/*
 * daemon_run(): the life of a device daemon, from the command line to a
 * clean exit (see daemon.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "common/cli_opts.h"
#include "common/fs.h"
#include "common/http_server.h"
#include "common/log.h"
#include "device/daemon/daemon_private.h"
#include "edgeid-version.h"

#define MAX_REQUESTS_MAX 65535

struct options {
	const char *config;
	const char *config_dir;
	const char *root;
	const char *socket;
	const char *log_level;
	bool check;
};

const char *daemon_name(const struct daemon *d)
{
	return d->spec->name;
}

const struct daemon_config *daemon_get_config(const struct daemon *d)
{
	return d->config;
}

struct event_base *daemon_event_base(const struct daemon *d)
{
	return d->base;
}

const char *daemon_root(const struct daemon *d)
{
	return d->root;
}

char *daemon_path(const struct daemon *d, const char *path)
{
	if (!d->root || path[0] != '/')
		return strdup(path);
	return fs_path_join(d->root, path);
}

bool daemon_authorize(const struct daemon *d, uid_t uid, const char *id)
{
	return daemon_principals_allow(&d->principals, uid, id);
}

static void usage(const struct daemon_spec *spec, const char *prog, FILE *out)
{
	fprintf(out,
		"Usage: %s [OPTIONS]\n"
		"\n"
		"edgeid %s: %s\n"
		"\n"
		"Options:\n"
		"  -c, --config FILE      configuration (default /etc/aziot/%s/config.toml)\n"
		"      --config-dir DIR   drop-ins merged after it (default: config.d beside it)\n"
		"      --root DIR         look up default and configured paths under DIR\n"
		"                         (also EDGEID_ROOT)\n"
		"  -s, --socket PATH      serve on PATH (default /run/aziot/%s.sock), unless\n"
		"                         systemd passes a socket\n"
		"      --check            validate the configuration and exit\n"
		"      --log-level LEVEL  error, warn, notice, info (default) or debug\n"
		"  -h, --help             show this help\n"
		"  -V, --version          print the version\n"
		"\n"
		"Signals: TERM and INT stop, HUP re-reads the configuration.\n"
		"See edgeidd(8).\n",
		prog, spec->name, spec->summary, spec->name, spec->name);
}

/* Returns 0, 1 (exit 0: help or version printed), or -EINVAL (usage). */
static int parse_options(const struct daemon_spec *spec, int argc, char **argv, struct options *o)
{
	enum { OPT_CONFIG_DIR = 256, OPT_ROOT, OPT_CHECK, OPT_LOG_LEVEL };
	static const struct option longopts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"config-dir", required_argument, NULL, OPT_CONFIG_DIR},
	    {"root", required_argument, NULL, OPT_ROOT},
	    {"socket", required_argument, NULL, 's'},
	    {"check", no_argument, NULL, OPT_CHECK},
	    {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	int c;

	optind = 0; /* full re-initialisation: the dispatcher may have used getopt */
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+c:s:hV", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			o->config = optarg;
			break;
		case OPT_CONFIG_DIR:
			o->config_dir = optarg;
			break;
		case OPT_ROOT:
			o->root = optarg;
			break;
		case 's':
			o->socket = optarg;
			break;
		case OPT_CHECK:
			o->check = true;
			break;
		case OPT_LOG_LEVEL:
			o->log_level = optarg;
			break;
		case 'h':
			usage(spec, argv[0], stdout);
			return 1;
		case 'V':
			printf("edgeidd %s\n", EDGEID_VERSION);
			return 1;
		default:
			return cli_opts_bad_option(argv);
		}
	}
	return cli_opts_no_operands(argc, argv);
}

/* AZIOT_<NAME>_<what>, e.g. AZIOT_KEYD_CONFIG_DIR. */
static const char *aziot_env(const char *name, const char *what)
{
	char var[64];
	int n = snprintf(var, sizeof(var), "AZIOT_%s_%s", name, what);

	if (n < 0 || (size_t)n >= sizeof(var))
		return NULL;
	for (char *p = var; *p; p++)
		if (*p >= 'a' && *p <= 'z')
			*p = (char)(*p - 'a' + 'A');
	return getenv(var);
}

/* The process hardening every daemon gets before it reads anything. */
static int harden(struct err *e)
{
	struct rlimit no_core = {0, 0};
	int fd;

	umask(077);
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return err_set(e, -errno, "cannot set no_new_privs: %s", strerror(errno));
	/* Private keys live in this process's memory: no core dumps, no
	 * ptrace by other processes of the same user. */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		return err_set(e, -errno, "cannot turn off core dumps: %s", strerror(errno));
	if (setrlimit(RLIMIT_CORE, &no_core) < 0)
		return err_set(e, -errno, "cannot turn off core dumps: %s", strerror(errno));
	fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return err_set(e, -errno, "/dev/null: %s", strerror(errno));
	if (fd != STDIN_FILENO) {
		if (dup2(fd, STDIN_FILENO) < 0) {
			close(fd);
			return err_set(e, -errno, "cannot close stdin: %s", strerror(errno));
		}
		close(fd);
	}
	return 0;
}

static int load_config(struct daemon *d, const char *file, const char *dir,
		       struct daemon_config **ret_config, struct daemon_principals *ret_principals,
		       struct err *e)
{
	_cleanup_daemon_config_ struct daemon_config *c = NULL;
	int64_t max_requests;
	int r;

	r = daemon_config_load(file, dir, &c, e);
	if (r < 0)
		return r;
	r = daemon_config_get_int_opt(c, "max_requests", 1, MAX_REQUESTS_MAX,
				      DAEMON_MAX_REQUESTS_DEFAULT, &max_requests, e);
	if (r < 0)
		return r;
	*ret_principals = (struct daemon_principals){0};
	if (d->spec->principal_grants) {
		r = daemon_principals_parse(c, d->spec->principal_grants, ret_principals, e);
		if (r < 0)
			return r;
	}
	*ret_config = TAKE_PTR(c);
	return 0;
}

struct reload_ctx {
	struct daemon *d;
	const char *file, *dir;
};

static void on_stop(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;

	(void)what;
	log_info("%s: shutting down", strsignal((int)sig));
	event_base_loopexit(d->base, NULL);
}

static void on_reload(evutil_socket_t sig, short what, void *arg)
{
	struct reload_ctx *rc = arg;
	struct daemon *d = rc->d;
	struct daemon_config *next = NULL;
	struct daemon_principals principals;
	struct err e = {0};
	int r;

	(void)sig;
	(void)what;
	r = load_config(d, rc->file, rc->dir, &next, &principals, &e);
	if (r >= 0 && d->spec->reload)
		r = d->spec->reload(d, d->state, next, &e);
	if (r < 0) {
		log_err("reload failed, keeping the running configuration: %s", err_msg(&e, r));
		daemon_principals_clear(&principals);
		daemon_config_free(next);
		return;
	}
	daemon_config_free(d->config);
	d->config = next;
	daemon_principals_clear(&d->principals);
	d->principals = principals;
	log_info("configuration reloaded (%zu principals)", d->principals.n);
}

static int listen_socket(struct daemon *d, const char *socket_path, struct err *e)
{
	int n, r;

	n = daemon_listen_fds(true);
	if (n < 0)
		return err_set(e, n, "LISTEN_FDS: %s", strerror(-n));
	if (n > 1)
		return err_set(e, -EINVAL, "systemd passed %d sockets; %s serves exactly one", n,
			       d->spec->name);
	if (n == 1) {
		r = http_server_adopt_fd(d->srv, 3, NULL);
		if (r < 0)
			return err_set(e, r, "the socket systemd passed: %s", strerror(-r));
		log_info("serving on the socket passed by systemd");
		return 0;
	}

	{
		_cleanup_free_ char *dir = strdup(socket_path);
		char *slash = dir ? strrchr(dir, '/') : NULL;

		if (!dir)
			return err_set(e, -ENOMEM, "out of memory");
		if (slash && slash != dir) {
			*slash = '\0';
			/* As the aziot socket units' DirectoryMode=0755. */
			r = fs_mkdir_p(dir, 0755, FS_KEEP_OWNER, FS_KEEP_GROUP, false, e);
			if (r < 0)
				return r;
		}
	}
	r = http_server_listen_unix(d->srv, socket_path, 0660);
	if (r < 0)
		return err_set(e, r, "%s: cannot listen: %s", socket_path, strerror(-r));
	log_info("serving on %s", socket_path);
	return 0;
}

static int setup_log_level(const char *opt)
{
	const char *env = getenv("AZIOT_LOG");
	enum log_level lvl;

	if (opt) {
		if (log_level_parse(opt, &lvl) < 0)
			return -EINVAL;
		log_set_level(lvl);
		return 0;
	}
	/* AZIOT_LOG is env_logger syntax; a plain level is honoured. */
	if (env && streq(env, "trace"))
		log_set_level(LOG_LEVEL_DEBUG);
	else if (env && log_level_parse(env, &lvl) == 0)
		log_set_level(lvl);
	return 0;
}

int daemon_run(const struct daemon_spec *spec, int argc, char **argv)
{
	struct daemon d = {.spec = spec};
	struct options o = {0};
	_cleanup_free_ char *ident = NULL, *file = NULL, *dir = NULL, *sock = NULL;
	struct event *ev_term = NULL, *ev_int = NULL, *ev_hup = NULL;
	struct http_server_config hcfg = {.json_errors = true};
	struct reload_ctx rc;
	struct err e = {0};
	int64_t max_requests = DAEMON_MAX_REQUESTS_DEFAULT;
	int r, status = 1;

	if (asprintf(&ident, "edgeidd-%s", spec->name) < 0)
		return 1;
	log_init(ident);
	r = parse_options(spec, argc, argv, &o);
	if (r != 0)
		return r > 0 ? 0 : 2;
	if (setup_log_level(o.log_level) < 0) {
		fprintf(stderr, "%s: --log-level: expected error, warn, notice, info or debug\n",
			argv[0]);
		return 2;
	}

	if (!o.root)
		o.root = getenv("EDGEID_ROOT");
	if (o.root && *o.root && !streq(o.root, "/")) {
		d.root = strdup(o.root);
		if (!d.root)
			return 1;
	}
	if (!o.config)
		o.config = aziot_env(spec->name, "CONFIG");
	if (!o.config_dir)
		o.config_dir = aziot_env(spec->name, "CONFIG_DIR");
	if (o.config) {
		file = strdup(o.config);
	} else {
		_cleanup_free_ char *p = NULL;

		if (asprintf(&p, "/etc/aziot/%s/config.toml", spec->name) >= 0)
			file = daemon_path(&d, p);
	}
	if (!file)
		goto oom;
	if (o.config_dir) {
		dir = strdup(o.config_dir);
	} else {
		const char *slash = strrchr(file, '/');

		if (asprintf(&dir, "%.*sconfig.d", slash ? (int)(slash - file + 1) : 0, file) < 0)
			dir = NULL;
	}
	if (!dir)
		goto oom;
	if (o.socket) {
		sock = strdup(o.socket);
	} else {
		_cleanup_free_ char *p = NULL;

		if (asprintf(&p, "/run/aziot/%s.sock", spec->name) >= 0)
			sock = daemon_path(&d, p);
	}
	if (!sock)
		goto oom;

	r = harden(&e);
	if (r < 0) {
		log_err("%s", err_msg(&e, r));
		goto out;
	}
	r = load_config(&d, file, dir, &d.config, &d.principals, &e);
	if (r >= 0)
		r = daemon_config_get_int_opt(d.config, "max_requests", 1, MAX_REQUESTS_MAX,
					      DAEMON_MAX_REQUESTS_DEFAULT, &max_requests, &e);
	if (r < 0) {
		if (o.check)
			fprintf(stderr, "%s\n", err_msg(&e, r));
		else
			log_err("%s", err_msg(&e, r));
		goto out;
	}
	if (o.check) {
		r = spec->check ? spec->check(&d, &e) : 0;
		if (r < 0) {
			fprintf(stderr, "%s\n", err_msg(&e, r));
			goto out;
		}
		printf("%s: OK\n", file);
		status = 0;
		goto out;
	}

	d.base = event_base_new();
	if (!d.base)
		goto oom;
	hcfg.max_connections_per_uid = (unsigned)max_requests;
	d.srv = http_server_new(d.base, &hcfg);
	if (!d.srv || http_server_route(d.srv, NULL, "/*", daemon_dispatch, &d) < 0)
		goto oom;

	r = spec->init(&d, &d.state, &e);
	if (r < 0) {
		log_err("%s", err_msg(&e, r));
		goto out;
	}
	r = listen_socket(&d, sock, &e);
	if (r < 0) {
		log_err("%s", err_msg(&e, r));
		goto out;
	}

	rc = (struct reload_ctx){.d = &d, .file = file, .dir = dir};
	ev_term = evsignal_new(d.base, SIGTERM, on_stop, &d);
	ev_int = evsignal_new(d.base, SIGINT, on_stop, &d);
	ev_hup = evsignal_new(d.base, SIGHUP, on_reload, &rc);
	if (!ev_term || !ev_int || !ev_hup || evsignal_add(ev_term, NULL) < 0 ||
	    evsignal_add(ev_int, NULL) < 0 || evsignal_add(ev_hup, NULL) < 0) {
		log_err("cannot watch for signals");
		goto out;
	}

	(void)daemon_notify("READY=1");
	log_info("ready (edgeid %s, %zu principals, max_requests %lld)", EDGEID_VERSION,
		 d.principals.n, (long long)max_requests);
	if (event_base_dispatch(d.base) < 0) {
		log_err("event loop failed");
		goto out;
	}
	(void)daemon_notify("STOPPING=1");
	status = 0;
	goto out;

oom:
	log_err("out of memory");
out:
	if (ev_term)
		event_free(ev_term);
	if (ev_int)
		event_free(ev_int);
	if (ev_hup)
		event_free(ev_hup);
	http_server_free(d.srv);
	if (spec->fini && d.state)
		spec->fini(d.state);
	daemon_principals_clear(&d.principals);
	daemon_config_free(d.config);
	if (d.base)
		event_base_free(d.base);
	free(d.root);
	return status;
}
