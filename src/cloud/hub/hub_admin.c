/* SPDX-License-Identifier: MIT */
/*
 * The hub's admin commands, on the store directly, through the same
 * registry functions the REST API uses:
 *
 *   edgeid-cloud device list [--hub NAME] [--json]
 *   edgeid-cloud device show ID [--hub NAME] [--json]
 *   edgeid-cloud device twin ID [--module MID] [--hub NAME] [--json]
 *   edgeid-cloud device create ID [--edge] [--auth sas|selfSigned|certificateAuthority]
 *                                 [--thumbprint HEX] [--hub NAME] [--json]
 *   edgeid-cloud device delete ID [--hub NAME]
 *   edgeid-cloud telemetry list DEVICE [--limit N] [--hub NAME] [--json]
 *
 * NAME is the hub's host name; the default is the [hub] host_name.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cloud/admin_output.h"
#include "cloud/hub/hub.h"
#include "cloud/store/store.h"
#include "common/buf.h"
#include "common/encode.h"
#include "common/json.h"
#include "common/macro.h"

struct admin_args {
	bool json;
	bool help;
	bool edge;
	const char *hub;
	const char *module;
	const char *auth;
	const char *thumbprint;
	const char *limit;
	const char *pos[2]; /* verb, id */
	size_t n_pos;
};

/* Parse argv (argv[0] is the noun). Returns 0 or ADMIN_EXIT_USAGE (printed). */
static int parse_args(int argc, char **argv, struct admin_args *a)
{
	static const struct admin_value_option with_value[] = {
	    {"--hub", offsetof(struct admin_args, hub)},
	    {"--module", offsetof(struct admin_args, module)},
	    {"--auth", offsetof(struct admin_args, auth)},
	    {"--thumbprint", offsetof(struct admin_args, thumbprint)},
	    {"--limit", offsetof(struct admin_args, limit)},
	};
	int r;

	admin_output_take_flags(&argc, argv, &a->json, &a->help);
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];

		if (streq(arg, "--edge")) {
			a->edge = true;
			continue;
		}
		r = admin_take_arg(argc, argv, &i, with_value, ARRAY_SIZE(with_value), a, a->pos,
				   ARRAY_SIZE(a->pos), &a->n_pos);
		if (r != 0)
			return r;
	}
	return 0;
}

static const char *hub_name(const struct admin_args *a, const void *settings)
{
	const struct hub_settings *hs = settings;

	if (a->hub)
		return a->hub;
	return hs ? hs->host_name : NULL;
}

static int report(const char *noun, int r, const struct hub_error *he)
{
	if (r == -ENOMEM || !he->code)
		fprintf(stderr, "edgeid-cloud %s: %s\n", noun, strerror(-r));
	else
		fprintf(stderr, "edgeid-cloud %s: %s (%s)\n", noun, he->message, he->code);
	return 1;
}

static int print(int r, const json_t *v, bool list, const struct admin_column *cols, size_t n,
		 bool json)
{
	if (r == 0)
		r = list ? admin_output_list(stdout, v, cols, n, json)
			 : admin_output_object(stdout, v, json);
	if (r < 0) {
		fprintf(stderr, "edgeid-cloud: cannot print the result: %s\n", strerror(-r));
		return 1;
	}
	return 0;
}

static void device_help(void)
{
	printf("Usage: edgeid-cloud device VERB [ARGS] [--hub NAME] [--json]\n"
	       "\n"
	       "Devices of the hub registry (NAME: the hub's host name; default [hub] host_name).\n"
	       "\n"
	       "  list                 every device: id, status, authentication, IoT Edge\n"
	       "  show ID              one device, keys included\n"
	       "  twin ID [--module M] the device's (or module's) twin\n"
	       "  create ID [--edge] [--auth sas|selfSigned|certificateAuthority]\n"
	       "            [--thumbprint HEX]   a new device (SAS keys are generated)\n"
	       "  delete ID            the device, its modules and twins\n");
}

static int device_main(struct store *st, const void *settings, int argc, char **argv)
{
	static const struct admin_column cols[] = {
	    {"DEVICE ID", "deviceId"},
	    {"STATUS", "status"},
	    {"AUTHENTICATION", "authentication.type"},
	    {"IOT EDGE", "capabilities.iotEdge"},
	    {"GENERATION ID", "generationId"},
	};
	struct admin_args a = {0};
	_cleanup_json_ json_t *out = NULL, *doc = NULL;
	_cleanup_free_ char *etag = NULL;
	struct hub_error he = {0};
	const char *hub, *verb, *id;
	int r;

	r = parse_args(argc, argv, &a);
	if (r != 0)
		return r;
	if (a.help) {
		device_help();
		return 0;
	}
	if (a.n_pos == 0)
		return admin_usage_error("device", "%s",
					 "a verb is needed: list, show, twin, create, delete");
	verb = a.pos[0];
	id = a.n_pos > 1 ? a.pos[1] : NULL;
	hub = hub_name(&a, settings);
	if (!hub) {
		fprintf(stderr, "edgeid-cloud device: the config file has no [hub]; name the hub "
				"with --hub NAME\n");
		return 1;
	}
	if (streq(verb, "list")) {
		if (id)
			return admin_usage_error("device", "unexpected argument '%s'", id);
		r = hub_device_list(st, hub, SIZE_MAX, &out, &he);
		if (r < 0)
			return report("device", r, &he);
		return print(0, out, true, cols, ARRAY_SIZE(cols), a.json);
	}
	if (!streq(verb, "show") && !streq(verb, "twin") && !streq(verb, "create") &&
	    !streq(verb, "delete"))
		return admin_usage_error("device", "unknown verb '%s'", verb);
	if (!id)
		return admin_usage_error("device", "%s needs a device ID", verb);
	if (streq(verb, "show")) {
		r = hub_device_get(st, hub, id, &doc, &etag, &he);
		if (r < 0)
			return report("device", r, &he);
		out = hub_identity_view(doc, etag);
		return print(out ? 0 : -ENOMEM, out, false, NULL, 0, a.json);
	}
	if (streq(verb, "twin")) {
		r = hub_twin_get(st, hub, id, a.module, &out, &he);
		if (r < 0)
			return report("device", r, &he);
		return print(0, out, false, NULL, 0, a.json);
	}
	if (streq(verb, "delete")) {
		r = hub_device_delete(st, hub, id, NULL, &he);
		if (r < 0)
			return report("device", r, &he);
		if (!a.json)
			printf("deleted device %s\n", id);
		return 0;
	}
	/* create */
	doc = json_pack("{s:s,s:{s:s},s:{s:b}}", "deviceId", id, "authentication", "type",
			a.auth ? a.auth : (a.thumbprint ? "selfSigned" : "sas"), "capabilities",
			"iotEdge", a.edge);
	if (doc && a.thumbprint &&
	    json_object_set_new(json_object_get(doc, "authentication"), "x509Thumbprint",
				json_pack("{s:s}", "primaryThumbprint", a.thumbprint)) < 0)
		return report("device", -ENOMEM, &he);
	if (!doc)
		return report("device", -ENOMEM, &he);
	r = hub_device_put(st, hub, id, doc, NULL, &out, &he);
	if (r < 0)
		return report("device", r, &he);
	return print(0, out, false, NULL, 0, a.json);
}

/* A message as the admin sees it. */
static json_t *message_view(const struct store_message *m)
{
	_cleanup_buf_ struct buf b64 = {0};
	char when[40];
	json_t *v, *text, *app, *sys;
	bool printable = true;

	buf_init(&b64, 2 * HUB_MESSAGE_MAX);
	for (size_t i = 0; i < m->body_len; i++)
		if (((const unsigned char *)m->body)[i] == 0)
			printable = false;
	text = printable && m->body_len ? json_stringn(m->body, m->body_len) : NULL;
	if (base64_encode(&b64, m->body, m->body_len, B64_STANDARD) < 0) {
		json_decref(text);
		return NULL;
	}
	hub_time_format(m->enqueued_ms ? m->enqueued_ms : 1, when);
	app = json_object_get(m->properties, "application");
	sys = json_object_get(m->properties, "system");
	v = json_pack("{s:I,s:s,s:o,s:o,s:I,s:o,s:s}", "seq", (json_int_t)m->seq, "enqueuedTime",
		      when, "properties", app ? json_incref(app) : json_object(),
		      "systemProperties", sys ? json_incref(sys) : json_object(), "size",
		      (json_int_t)m->body_len, "body", text ? text : json_null(), "bodyBase64",
		      buf_str(&b64));
	return v;
}

static void telemetry_help(void)
{
	printf("Usage: edgeid-cloud telemetry list DEVICE [--limit N] [--hub NAME] [--json]\n"
	       "\n"
	       "The newest device-to-cloud messages of DEVICE (default 20, at most %d), newest\n"
	       "first: body (as text when it is UTF-8, and base64), application properties\n"
	       "and system properties.\n",
	       STORE_PAGE_MAX);
}

static int telemetry_main(struct store *st, const void *settings, int argc, char **argv)
{
	static const struct admin_column cols[] = {
	    {"SEQ", "seq"},   {"ENQUEUED", "enqueuedTime"},
	    {"SIZE", "size"}, {"PROPERTIES", "properties"},
	    {"BODY", "body"},
	};
	_cleanup_store_messages_ struct store_messages *msgs = NULL;
	_cleanup_json_ json_t *out = NULL;
	struct admin_args a = {0};
	unsigned long limit = 20;
	struct err e = {0};
	const char *hub;
	int r;

	r = parse_args(argc, argv, &a);
	if (r != 0)
		return r;
	if (a.help) {
		telemetry_help();
		return 0;
	}
	if (a.n_pos == 0 || !streq(a.pos[0], "list"))
		return admin_usage_error("telemetry", "%s", "the verb is list");
	if (a.n_pos < 2)
		return admin_usage_error("telemetry", "%s", "list needs a DEVICE id");
	if (a.limit) {
		char *end;

		errno = 0;
		limit = strtoul(a.limit, &end, 10);
		if (errno || end == a.limit || *end || a.limit[0] == '-' || limit == 0 ||
		    limit > STORE_PAGE_MAX)
			return admin_usage_error("telemetry",
						 "--limit: expected a number from 1 to 1000, "
						 "got '%s'",
						 a.limit);
	}
	hub = hub_name(&a, settings);
	if (!hub) {
		fprintf(stderr, "edgeid-cloud telemetry: the config file has no [hub]; name the "
				"hub with --hub NAME\n");
		return 1;
	}
	r = store_telemetry_list(st, hub, a.pos[1], limit, &msgs, &e);
	if (r < 0) {
		fprintf(stderr, "edgeid-cloud telemetry: cannot read the messages: %s\n",
			err_msg(&e, r));
		return 1;
	}
	out = json_array();
	for (size_t i = 0; out && i < msgs->n; i++)
		if (json_array_append_new(out, message_view(&msgs->items[i])) < 0)
			json_decref(TAKE_PTR(out));
	return print(out ? 0 : -ENOMEM, out, true, cols, ARRAY_SIZE(cols), a.json);
}

const struct cloud_admin_noun hub_admin_nouns[] = {
    {"device", "hub devices: list, show, twin, create, delete", device_main},
    {"telemetry", "messages devices sent to the hub: list", telemetry_main},
    {NULL, NULL, NULL},
};
