/* SPDX-License-Identifier: MIT */
/*
 * edgeid config apply|check|show: validate /etc/aziot/config.toml, split it
 * into each daemon's file, or print the effective configuration.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/macro.h"
#include "config/config.h"

struct opts {
	const char *file;
	const char *root;
	bool dry_run;
	bool json;
	bool help;
};

enum verb {
	VERB_APPLY,
	VERB_CHECK,
	VERB_SHOW,
};

static const struct cli_verb verbs[] = {
    [VERB_APPLY] = {"apply", "edgeid config apply [-c FILE] [--root DIR] [--dry-run]",
		    "Validate FILE and write each daemon's configuration from it:\n"
		    "/etc/aziot/{keyd,certd,identityd,tpmd,edged}/config.d/00-super.toml and,\n"
		    "for an inline symmetric key, /var/secrets/aziot/keyd/device-id.\n"
		    "\n"
		    "Options:\n"
		    "  -c, --config-file FILE  the super-config (default " CONFIG_DEFAULT_PATH ")\n"
		    "  --root DIR              write under DIR instead of / (also EDGEID_ROOT)\n"
		    "  --dry-run               print what would be written, write nothing\n"
		    "  -h, --help              show this help\n"},
    [VERB_CHECK] = {"check", "edgeid config check [-c FILE]",
		    "Validate FILE and print \"FILE: OK\", or the first error as\n"
		    "FILE:LINE:COLUMN: key: what was expected, got what.\n"
		    "\n"
		    "Options:\n"
		    "  -c, --config-file FILE  the super-config (default " CONFIG_DEFAULT_PATH ")\n"
		    "  -h, --help              show this help\n"},
    [VERB_SHOW] = {"show", "edgeid config show [-c FILE] [--json]",
		   "Print the effective configuration, defaults filled in, with keys,\n"
		   "passwords and PINs shown as \"***\".\n"
		   "\n"
		   "Options:\n"
		   "  -c, --config-file FILE  the super-config (default " CONFIG_DEFAULT_PATH ")\n"
		   "  --json                  print JSON instead of TOML\n"
		   "  -h, --help              show this help\n"},
};

static void usage(FILE *out)
{
	fprintf(out, "Usage: edgeid config COMMAND [OPTIONS]\n"
		     "\n"
		     "Commands:\n"
		     "  apply   validate config.toml and write each daemon's configuration\n"
		     "  check   validate config.toml only\n"
		     "  show    print the effective configuration, secrets masked\n"
		     "\n"
		     "Run 'edgeid config COMMAND --help' for a command's options.\n"
		     "See edgeid-config.toml(5).\n");
}

/* Returns -1 when parsed, otherwise the exit status. */
static int parse_opts(enum verb v, int argc, char **argv, struct opts *o)
{
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i];
		const char **dst = NULL;
		const char *inline_val = NULL;

		if (streq(a, "-h") || streq(a, "--help")) {
			o->help = true;
			continue;
		}
		if (streq(a, "-c") || streq(a, "--config-file") || streq(a, "--config"))
			dst = &o->file;
		else if (strneq(a, "--config-file=", 14))
			dst = &o->file, inline_val = a + 14;
		else if (strneq(a, "-c", 2) && a[2])
			dst = &o->file, inline_val = a + 2;
		else if (v == VERB_APPLY && streq(a, "--root"))
			dst = &o->root;
		else if (v == VERB_APPLY && strneq(a, "--root=", 7))
			dst = &o->root, inline_val = a + 7;
		else if (v == VERB_APPLY && streq(a, "--dry-run"))
			o->dry_run = true;
		else if (v == VERB_SHOW && streq(a, "--json"))
			o->json = true;
		else if (a[0] == '-')
			return cli_verb_usage_error("config", &verbs[v], "unknown option '%s'", a);
		else
			return cli_verb_usage_error("config", &verbs[v], "unexpected argument '%s'",
						    a);
		if (!dst)
			continue;
		if (!inline_val) {
			if (i + 1 >= argc)
				return cli_verb_usage_error("config", &verbs[v],
							    "option '%s' needs a value", a);
			inline_val = argv[++i];
		}
		if (!*inline_val)
			return cli_verb_usage_error("config", &verbs[v],
						    "option '%s' needs a non-empty value", a);
		*dst = inline_val;
	}
	if (!o->file)
		o->file = CONFIG_DEFAULT_PATH;
	return -1;
}

static void print_warnings(const struct edgeid_config *c)
{
	for (size_t i = 0; i < c->n_warnings; i++)
		fprintf(stderr, "%s\n", c->warnings[i]);
}

static int load(const char *file, struct edgeid_config **ret)
{
	struct err e = {0};
	int r = config_load(file, ret, &e);

	if (r < 0) {
		fprintf(stderr, "%s\n", err_msg(&e, r));
		return CLI_EXIT_FAILURE;
	}
	print_warnings(*ret);
	return CLI_EXIT_OK;
}

static int do_check(const struct opts *o)
{
	_cleanup_config_ struct edgeid_config *c = NULL;
	int r = load(o->file, &c);

	if (r != CLI_EXIT_OK)
		return r;
	printf("%s: OK\n", o->file);
	return CLI_EXIT_OK;
}

static int do_show(const struct opts *o)
{
	_cleanup_config_ struct edgeid_config *c = NULL;
	_cleanup_buf_ struct buf out = {0};
	int r = load(o->file, &c);

	if (r != CLI_EXIT_OK)
		return r;
	buf_init(&out, 0);
	r = config_show_render(c, o->json, &out);
	if (r < 0) {
		fprintf(stderr, "edgeid config show: %s\n", strerror(-r));
		return CLI_EXIT_FAILURE;
	}
	fputs(buf_str(&out), stdout);
	return CLI_EXIT_OK;
}

static int do_apply(const struct opts *o)
{
	_cleanup_config_ struct edgeid_config *c = NULL;
	_cleanup_config_plan_ struct config_plan *plan = NULL;
	struct config_users users;
	struct err e = {0};
	const char *root = o->root;
	int r;

	if (!root) {
		root = getenv("EDGEID_ROOT");
		if (root && !*root)
			root = NULL;
	}
	r = load(o->file, &c);
	if (r != CLI_EXIT_OK)
		return r;
	r = config_users_resolve(&users, &e);
	if (r < 0) {
		fprintf(stderr, "edgeid config apply: %s\n", err_msg(&e, r));
		return CLI_EXIT_FAILURE;
	}
	if (users.unprivileged) {
		if (!o->dry_run && (!root || streq(root, "/"))) {
			fprintf(stderr,
				"edgeid config apply: writing /etc/aziot needs root; run it "
				"as root, or give --root DIR\n");
			return CLI_EXIT_FAILURE;
		}
		fprintf(stderr,
			"notice: not running as root: files are owned by %s (uid %lu) instead of "
			"the service users\n",
			users.caller, (unsigned long)users.uid[CONFIG_USER_KEYD]);
	}
	r = config_plan_build(c, &users, o->file, root, &plan, &e);
	if (r < 0) {
		fprintf(stderr, "%s\n", err_msg(&e, r));
		return CLI_EXIT_FAILURE;
	}
	if (o->dry_run) {
		r = config_plan_describe(plan, root, &users, stdout);
		if (r < 0) {
			fprintf(stderr, "edgeid config apply: %s\n", strerror(-r));
			return CLI_EXIT_FAILURE;
		}
		printf("Dry run: nothing was written.\n");
		return CLI_EXIT_OK;
	}
	r = config_plan_write(plan, root, &users, stdout, &e);
	if (r < 0) {
		fflush(stdout);
		fprintf(stderr, "edgeid config apply: %s\n", err_msg(&e, r));
		return CLI_EXIT_FAILURE;
	}
	printf("Configuration applied.\n"
	       "Run 'edgeid system restart' for the daemons to use it.\n");
	return CLI_EXIT_OK;
}

int cli_config_main(int argc, char **argv)
{
	struct opts o = {0};
	int exit_status;
	enum verb v;
	int r;

	r = cli_verb_pick("config", verbs, ARRAY_SIZE(verbs), usage, argc, argv, &exit_status);
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
	switch (v) {
	case VERB_APPLY:
		return do_apply(&o);
	case VERB_CHECK:
		return do_check(&o);
	case VERB_SHOW:
		return do_show(&o);
	}
	return CLI_EXIT_FAILURE;
}
