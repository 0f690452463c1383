/* SPDX-License-Identifier: MIT */
/*
 * edgeid-cloud: one program for the self-hosted cloud services. `serve`
 * runs them (serve.c); every other command is an admin noun of one of the
 * services below, run against the store of the config file.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cloud/cloud.h"
#include "cloud/serve.h"
#include "cloud/store/store.h"
#include "common/log.h"
#include "common/macro.h"
#include "edgeid-version.h"

#define EXIT_USAGE 2
#define DEFAULT_CONFIG "/etc/edgeid-cloud/config.toml"

/* The services this program hosts, in the order they start. */
static const struct cloud_service *const services[] = {
    &cloud_service_dps,
    &cloud_service_hub,
};

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: edgeid-cloud [--config FILE] [--verbose] COMMAND [ARGS...]\n"
		"\n"
		"Self-hosted device provisioning service and IoT hub.\n"
		"\n"
		"Commands:\n"
		"  %-12s %s\n",
		"serve", "run every service of the config file [--pid-file FILE]");
	for (size_t i = 0; i < ARRAY_SIZE(services); i++)
		for (const struct cloud_admin_noun *n = services[i]->admin_nouns; n && n->name; n++)
			fprintf(out, "  %-12s %s\n", n->name, n->summary);
	fprintf(out,
		"  %-12s %s\n"
		"\n"
		"Options:\n"
		"  -c, --config FILE  config file (default $EDGEID_CLOUD_CONFIG, else\n"
		"                     " DEFAULT_CONFIG ")\n"
		"  --json             admin commands print JSON instead of a table\n"
		"  -v, --verbose      log debug messages to stderr\n"
		"  -h, --help         show this help; COMMAND --help for its own\n"
		"  -V, --version      print the version\n"
		"\n"
		"See edgeid-cloud(1).\n",
		"version", "print the version");
}

/* Take "--config FILE" / "--config=FILE" out of argv wherever it stands
 * (before a "--"), so that "edgeid-cloud serve --config FILE" and
 * "edgeid-cloud device list --config FILE" both work. Returns 0, or
 * EXIT_USAGE when the option has no value. */
static int take_config(int *argc, char **argv, const char **config)
{
	int j = 1;

	for (int i = 1; i < *argc; i++) {
		const char *a = argv[i];

		if (streq(a, "--")) {
			while (i < *argc)
				argv[j++] = argv[i++];
			break;
		}
		if (strneq(a, "--config=", 9)) {
			*config = a + 9;
			continue;
		}
		if (streq(a, "--config")) {
			if (i + 1 >= *argc) {
				fprintf(stderr, "edgeid-cloud: --config needs a FILE\n");
				return EXIT_USAGE;
			}
			*config = argv[++i];
			continue;
		}
		argv[j++] = argv[i];
	}
	argv[j] = NULL;
	*argc = j;
	return 0;
}

static int serve_main(const char *config, int argc, char **argv)
{
	_cleanup_(cloud_setup_freep) struct cloud_setup *setup = NULL;
	const char *pid_file = NULL;
	struct err e = {0};
	int r;

	for (int i = 1; i < argc; i++) {
		if (streq(argv[i], "--pid-file") && i + 1 < argc) {
			pid_file = argv[++i];
		} else if (strneq(argv[i], "--pid-file=", 11)) {
			pid_file = argv[i] + 11;
		} else if (streq(argv[i], "--help") || streq(argv[i], "-h")) {
			printf(
			    "Usage: edgeid-cloud serve [--config FILE] [--pid-file FILE]\n"
			    "\n"
			    "Start every service of the config file and supervise its workers.\n"
			    "Prints \"edgeid-cloud: NAME ready on ADDRESS (N workers)\" for each\n"
			    "service once all its listeners are bound. SIGTERM stops it.\n");
			return 0;
		} else {
			fprintf(stderr,
				"edgeid-cloud: serve: unexpected argument '%s'\n"
				"Try 'edgeid-cloud serve --help'.\n",
				argv[i]);
			return EXIT_USAGE;
		}
	}
	r = cloud_setup_load(config, services, ARRAY_SIZE(services), &setup, &e);
	if (r < 0) {
		fprintf(stderr, "edgeid-cloud: %s\n", err_msg(&e, r));
		return 1;
	}
	r = cloud_serve(setup, pid_file, &e);
	if (r < 0) {
		fprintf(stderr, "edgeid-cloud: %s\n", err_msg(&e, r));
		return 1;
	}
	return 0;
}

static bool wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (streq(argv[i], "--"))
			return false;
		if (streq(argv[i], "--help") || streq(argv[i], "-h"))
			return true;
	}
	return false;
}

static int admin_main(const char *config, const struct cloud_service *svc,
		      const struct cloud_admin_noun *noun, int argc, char **argv)
{
	_cleanup_(cloud_setup_freep) struct cloud_setup *setup = NULL;
	_cleanup_store_ struct store *store = NULL;
	const struct cloud_service_instance *si;
	struct err e = {0};
	int r;

	r = cloud_setup_load(config, services, ARRAY_SIZE(services), &setup, &e);
	if (r < 0) {
		if (wants_help(argc, argv)) {
			printf("edgeid-cloud %s: %s\n(its commands need the config file: %s)\n",
			       noun->name, noun->summary, err_msg(&e, r));
			return 0;
		}
		fprintf(stderr, "edgeid-cloud: %s\n", err_msg(&e, r));
		return 1;
	}
	r = store_open(setup->cfg.store_url, &store, &e);
	if (r < 0) {
		fprintf(stderr, "edgeid-cloud: cannot open the store of %s: %s\n", config,
			err_msg(&e, r));
		return 1;
	}
	si = cloud_setup_find(setup, svc->name);
	return noun->main(store, si ? si->settings : NULL, argc, argv);
}

int main(int argc, char **argv)
{
	const char *config = getenv("EDGEID_CLOUD_CONFIG");
	int i = 1, r;

	log_init("edgeid-cloud");
	if (!config || !*config)
		config = DEFAULT_CONFIG;
	r = take_config(&argc, argv, &config);
	if (r != 0)
		return r;
	for (; i < argc && argv[i][0] == '-'; i++) {
		const char *a = argv[i];

		if (streq(a, "-h") || streq(a, "--help")) {
			usage(stdout);
			return 0;
		} else if (streq(a, "-V") || streq(a, "--version")) {
			printf("edgeid-cloud %s\n", EDGEID_VERSION);
			return 0;
		} else if (streq(a, "-v") || streq(a, "--verbose")) {
			log_set_level(LOG_LEVEL_DEBUG);
		} else if (streq(a, "-c") && i + 1 < argc) {
			config = argv[++i];
		} else {
			fprintf(stderr,
				"edgeid-cloud: unknown option '%s'\nTry 'edgeid-cloud --help'.\n",
				a);
			return EXIT_USAGE;
		}
	}
	if (i >= argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	argc -= i;
	argv += i;
	if (streq(argv[0], "serve"))
		return serve_main(config, argc, argv);
	if (streq(argv[0], "version")) {
		printf("edgeid-cloud %s\n", EDGEID_VERSION);
		return 0;
	}
	if (streq(argv[0], "help")) {
		usage(stdout);
		return 0;
	}
	for (size_t s = 0; s < ARRAY_SIZE(services); s++)
		for (const struct cloud_admin_noun *n = services[s]->admin_nouns; n && n->name; n++)
			if (streq(n->name, argv[0]))
				return admin_main(config, services[s], n, argc, argv);
	fprintf(stderr, "edgeid-cloud: unknown command '%s'\nTry 'edgeid-cloud --help'.\n",
		argv[0]);
	return EXIT_USAGE;
}
