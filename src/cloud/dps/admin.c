/* SPDX-License-Identifier: MIT */
/*
 *   edgeid-cloud enrollment create --registration-id ID
 *            (--endorsement-key B64 | --symmetric-key [KEY] | --certificate PEM)
 *            [--device-id ID] [--edge-enabled] [--tag K=V]... [--hub HOST]...
 *            [--allocation hashed|static|custom] [--webhook URL] [--disabled]
 *   edgeid-cloud enrollment list | show ID [--keys] | delete ID | disable ID | enable ID
 *   edgeid-cloud group create ID (--symmetric-key [KEY] | --ca NAME | --signing-cert PEM)
 *            [--edge-enabled] [--tag K=V]... [--hub HOST]... [--allocation ...] [--disabled]
 *   edgeid-cloud group list | show ID [--keys] | delete ID | disable ID | enable ID
 *   edgeid-cloud ca add NAME --certificate PEM [--verified]
 *   edgeid-cloud ca verification-code NAME | verify NAME --certificate PEM
 *   edgeid-cloud ca list | show NAME | delete NAME
 *   edgeid-cloud registration list [--group ID] | show ID | delete ID
 * Every command takes --json. PEM arguments are files (or PEM text).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cloud/admin_output.h"
#include "cloud/dps/admin.h"
#include "cloud/dps/ca.h"
#include "cloud/dps/dps.h"
#include "cloud/dps/enrollment.h"
#include "cloud/dps/registration.h"
#include "cloud/store/store.h"
#include "common/fs.h"
#include "common/json.h"

#define MAX_MULTI 16

struct args {
	bool json, help, edge, disabled, keys, verified, symmetric;
	const char *registration_id, *endorsement_key, *symmetric_key, *certificate, *device_id;
	const char *allocation, *webhook, *ca, *signing_cert, *group;
	const char *tags[MAX_MULTI];
	size_t n_tags;
	const char *hubs[MAX_MULTI];
	size_t n_hubs;
	const char *pos[3];
	size_t n_pos;
};

static int fail(const char *noun, int r, const struct err *e)
{
	fprintf(stderr, "edgeid-cloud %s: %s\n", noun, err_msg(e, r));
	return 1;
}

static int parse_args(int argc, char **argv, struct args *a)
{
	static const struct admin_value_option with_value[] = {
	    {"--registration-id", offsetof(struct args, registration_id)},
	    {"--endorsement-key", offsetof(struct args, endorsement_key)},
	    {"--certificate", offsetof(struct args, certificate)},
	    {"--device-id", offsetof(struct args, device_id)},
	    {"--allocation", offsetof(struct args, allocation)},
	    {"--webhook", offsetof(struct args, webhook)},
	    {"--ca", offsetof(struct args, ca)},
	    {"--signing-cert", offsetof(struct args, signing_cert)},
	    {"--group", offsetof(struct args, group)},
	};
	int r;

	admin_output_take_flags(&argc, argv, &a->json, &a->help);
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];

		if (streq(arg, "--edge-enabled")) {
			a->edge = true;
			continue;
		}
		if (streq(arg, "--disabled")) {
			a->disabled = true;
			continue;
		}
		if (streq(arg, "--keys")) {
			a->keys = true;
			continue;
		}
		if (streq(arg, "--verified")) {
			a->verified = true;
			continue;
		}
		if (admin_option_is(arg, "--symmetric-key")) {
			a->symmetric = true;
			/* The key is optional: take the next argument only when it
			 * is one (an id is never base64 of 16 to 64 bytes). */
			if (arg[14] == '=')
				a->symmetric_key = arg + 15;
			else if (i + 1 < argc && dps_valid_key(argv[i + 1]))
				a->symmetric_key = argv[++i];
			continue;
		}
		if (admin_option_is(arg, "--tag") || admin_option_is(arg, "--hub")) {
			bool tag = arg[2] == 't';
			const char *v;

			r = admin_take_value(argc, argv, &i, tag ? "--tag" : "--hub", &v);
			if (r != 0)
				return r;
			if ((tag ? a->n_tags : a->n_hubs) == MAX_MULTI)
				return admin_usage_error(argv[0], "at most %d %s options",
							 MAX_MULTI, tag ? "--tag" : "--hub");
			if (tag)
				a->tags[a->n_tags++] = v;
			else
				a->hubs[a->n_hubs++] = v;
			continue;
		}
		r = admin_take_arg(argc, argv, &i, with_value, ARRAY_SIZE(with_value), a, a->pos,
				   ARRAY_SIZE(a->pos), &a->n_pos);
		if (r != 0)
			return r;
	}
	return 0;
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

/* A PEM argument: PEM text as is, otherwise a file to read. */
static int read_pem(const char *arg, char **ret, struct err *e)
{
	_cleanup_buf_ struct buf text = {0};
	int r;

	*ret = NULL;
	if (strstr(arg, "-----BEGIN")) {
		*ret = strdup(arg);
		return *ret ? 0 : -ENOMEM;
	}
	buf_init(&text, 1024 * 1024);
	r = fs_read_file(arg, 1024 * 1024, &text, e);
	if (r < 0)
		return r;
	*ret = buf_steal(&text, NULL);
	return *ret ? 0 : -ENOMEM;
}

/* Every page of a listing, as one array. */
static int list_all(struct store *st, enum dps_kind kind, const char *group, json_t **ret,
		    struct err *e)
{
	_cleanup_json_ json_t *all = json_array();
	_cleanup_free_ char *cont = NULL;
	int r;

	*ret = NULL;
	if (!all)
		return -ENOMEM;
	do {
		_cleanup_json_ json_t *items = NULL;
		char *next = NULL;

		if (kind == DPS_REGISTRATION)
			r = dps_registration_query(st, group, cont, DPS_PAGE_MAX, &items, &next, e);
		else
			r = dps_enrollment_query(st, kind, cont, DPS_PAGE_MAX, &items, &next, e);
		if (r < 0)
			return r;
		if (json_array_extend(all, items) < 0) {
			free(next);
			return -ENOMEM;
		}
		free(cont);
		cont = next;
	} while (cont);
	*ret = TAKE_PTR(all);
	return 0;
}

/* The enrollment body the admin options describe. */
static int build_enrollment(const char *noun, const struct args *a, enum dps_kind kind,
			    const char *id, json_t **ret)
{
	_cleanup_json_ json_t *body = json_object(), *att = NULL, *tags = NULL, *hubs = NULL;
	_cleanup_free_ char *pem = NULL;
	struct err e = {0};
	int methods, r;

	*ret = NULL;
	if (!body)
		return -ENOMEM;
	if (kind == DPS_INDIVIDUAL)
		methods = !!a->endorsement_key + a->symmetric + !!a->certificate;
	else
		methods = a->symmetric + !!a->ca + !!a->signing_cert;
	if (methods != 1)
		return admin_usage_error(
		    noun, "%s",
		    kind == DPS_INDIVIDUAL
			? "give exactly one of --endorsement-key, --symmetric-key, "
			  "--certificate"
			: "give exactly one of --symmetric-key, --ca, --signing-cert");
	if (a->endorsement_key) {
		att = json_pack("{s:s, s:{s:s}}", "type", "tpm", "tpm", "endorsementKey",
				a->endorsement_key);
	} else if (a->symmetric) {
		att = json_pack("{s:s, s:{}}", "type", "symmetricKey", "symmetricKey");
		if (att && a->symmetric_key)
			json_object_set_new(json_object_get(att, "symmetricKey"), "primaryKey",
					    json_string(a->symmetric_key));
	} else if (a->ca) {
		att = json_pack("{s:s, s:{s:{s:s}}}", "type", "x509", "x509", "caReferences",
				"primary", a->ca);
	} else {
		r = read_pem(a->certificate ? a->certificate : a->signing_cert, &pem, &e);
		if (r < 0) {
			fail(noun, r, &e);
			return 1;
		}
		att = json_pack("{s:s, s:{s:{s:{s:s}}}}", "type", "x509", "x509",
				a->certificate ? "clientCertificates" : "signingCertificates",
				"primary", "certificate", pem);
	}
	if (!att)
		return -ENOMEM;
	json_object_set_new(body, dps_kind_id_field(kind), json_string(id));
	json_object_set(body, "attestation", att);
	if (a->device_id)
		json_object_set_new(body, "deviceId", json_string(a->device_id));
	json_object_set_new(body, "capabilities", json_pack("{s:b}", "iotEdge", a->edge));
	json_object_set_new(body, "provisioningStatus",
			    json_string(a->disabled ? "disabled" : "enabled"));
	if (a->n_tags) {
		tags = json_object();
		for (size_t i = 0; tags && i < a->n_tags; i++) {
			const char *eq = strchr(a->tags[i], '=');
			_cleanup_free_ char *k = NULL;

			if (!eq || eq == a->tags[i])
				return admin_usage_error(
				    noun, "--tag: expected KEY=VALUE, got '%s'", a->tags[i]);
			k = strndup(a->tags[i], (size_t)(eq - a->tags[i]));
			if (!k || json_object_set_new(tags, k, json_string(eq + 1)) < 0)
				return -ENOMEM;
		}
		json_object_set_new(body, "initialTwin", json_pack("{s:O}", "tags", tags));
	}
	if (a->n_hubs) {
		hubs = json_array();
		for (size_t i = 0; hubs && i < a->n_hubs; i++)
			json_array_append_new(hubs, json_string(a->hubs[i]));
		json_object_set(body, "iotHubs", hubs);
		if (a->n_hubs == 1)
			json_object_set_new(body, "iotHubHostName", json_string(a->hubs[0]));
	}
	if (a->allocation)
		json_object_set_new(body, "allocationPolicy", json_string(a->allocation));
	if (a->webhook)
		json_object_set_new(
		    body, "customAllocationDefinition",
		    json_pack("{s:s, s:s}", "webhookUrl", a->webhook, "apiVersion", "2021-10-01"));
	*ret = TAKE_PTR(body);
	return 0;
}

static int enrollment_common(struct store *st, const struct dps_settings *settings, int argc,
			     char **argv, enum dps_kind kind)
{
	static const struct admin_column individual_cols[] = {
	    {"REGISTRATION ID", "registrationId"},
	    {"ATTESTATION", "attestation.type"},
	    {"DEVICE ID", "deviceId"},
	    {"STATUS", "provisioningStatus"},
	    {"IOT EDGE", "capabilities.iotEdge"},
	    {"HUBS", "iotHubs"},
	    {"ALLOCATION", "allocationPolicy"},
	};
	static const struct admin_column group_cols[] = {
	    {"GROUP ID", "enrollmentGroupId"},
	    {"ATTESTATION", "attestation.type"},
	    {"STATUS", "provisioningStatus"},
	    {"IOT EDGE", "capabilities.iotEdge"},
	    {"HUBS", "iotHubs"},
	    {"ALLOCATION", "allocationPolicy"},
	};
	const char *noun = argv[0];
	_cleanup_json_ json_t *out = NULL, *body = NULL;
	struct args a = {0};
	struct err e = {0};
	const char *verb, *id;
	int r;

	r = parse_args(argc, argv, &a);
	if (r != 0)
		return r;
	if (a.help) {
		if (kind == DPS_INDIVIDUAL)
			printf(
			    "Usage: edgeid-cloud enrollment VERB [ARGS] [--json]\n"
			    "\n"
			    "Individual enrollments of the provisioning service.\n"
			    "\n"
			    "  create --registration-id ID (--endorsement-key B64 | "
			    "--symmetric-key "
			    "[KEY] |\n"
			    "         --certificate PEM) [--device-id ID] [--edge-enabled] [--tag "
			    "K=V]...\n"
			    "         [--hub HOST]... [--allocation hashed|static|custom] "
			    "[--webhook "
			    "URL]\n"
			    "         [--disabled]      a new enrollment (keys generated when "
			    "omitted)\n"
			    "  list                      every enrollment\n"
			    "  show ID [--keys]          one enrollment (--keys: with its keys)\n"
			    "  delete ID                 the enrollment and its registration "
			    "record\n"
			    "  disable ID | enable ID    stop or allow the device's "
			    "registrations\n");
		else
			printf(
			    "Usage: edgeid-cloud group VERB [ARGS] [--json]\n"
			    "\n"
			    "Enrollment groups of the provisioning service.\n"
			    "\n"
			    "  create ID (--symmetric-key [KEY] | --ca NAME | --signing-cert PEM)\n"
			    "         [--edge-enabled] [--tag K=V]... [--hub HOST]...\n"
			    "         [--allocation hashed|static|custom] [--webhook URL] "
			    "[--disabled]\n"
			    "  list                      every group\n"
			    "  show ID [--keys]          one group (--keys: with its keys)\n"
			    "  delete ID                 the group and its registration records\n"
			    "  disable ID | enable ID    stop or allow its devices' "
			    "registrations\n");
		return 0;
	}
	if (a.n_pos == 0)
		return admin_usage_error(
		    noun, "%s", "a verb is needed: create, list, show, delete, disable, enable");
	verb = a.pos[0];
	id = a.n_pos > 1 ? a.pos[1] : NULL;
	if (a.n_pos > 2)
		return admin_usage_error(noun, "unexpected argument '%s'", a.pos[2]);
	if (streq(verb, "list")) {
		if (id)
			return admin_usage_error(noun, "unexpected argument '%s'", id);
		r = list_all(st, kind, NULL, &out, &e);
		if (r < 0)
			return fail(noun, r, &e);
		return kind == DPS_INDIVIDUAL
			   ? print(0, out, true, individual_cols, ARRAY_SIZE(individual_cols),
				   a.json)
			   : print(0, out, true, group_cols, ARRAY_SIZE(group_cols), a.json);
	}
	if (streq(verb, "create")) {
		if (kind == DPS_INDIVIDUAL) {
			if (id)
				return admin_usage_error(noun, "unexpected argument '%s'", id);
			id = a.registration_id;
			if (!id)
				return admin_usage_error(noun, "%s",
							 "create needs --registration-id ID");
		} else if (!id) {
			return admin_usage_error(noun, "%s", "create needs a group ID");
		}
		r = build_enrollment(noun, &a, kind, id, &body);
		if (r > 0)
			return r;
		if (r < 0)
			return fail(noun, r, &e);
		if (dps_enrollment_load(st, kind, id, NULL, NULL, NULL) == 0) {
			fprintf(stderr, "edgeid-cloud %s: \"%s\" already exists\n", noun, id);
			return 1;
		}
		r = dps_enrollment_put(st, settings, kind, id, body, NULL, &out, NULL, &e);
		if (r < 0)
			return fail(noun, r, &e);
		return print(0, out, false, NULL, 0, a.json);
	}
	if (!streq(verb, "show") && !streq(verb, "delete") && !streq(verb, "disable") &&
	    !streq(verb, "enable"))
		return admin_usage_error(noun, "unknown verb '%s'", verb);
	if (!id)
		return admin_usage_error(noun, "%s needs an ID", verb);
	if (streq(verb, "show")) {
		r = dps_enrollment_get(st, kind, id, a.keys, &out, &e);
		if (r < 0)
			return fail(noun, r, &e);
		return print(0, out, false, NULL, 0, a.json);
	}
	if (streq(verb, "delete")) {
		r = dps_enrollment_delete(st, kind, id, NULL, &e);
		if (r < 0)
			return fail(noun, r, &e);
		if (!a.json)
			printf("deleted %s %s\n",
			       kind == DPS_GROUP ? "enrollment group" : "enrollment", id);
		return 0;
	}
	r = dps_enrollment_set_status(st, kind, id, streq(verb, "enable"), &e);
	if (r < 0)
		return fail(noun, r, &e);
	r = dps_enrollment_get(st, kind, id, false, &out, &e);
	if (r < 0)
		return fail(noun, r, &e);
	return print(0, out, false, NULL, 0, a.json);
}

static int enrollment_main(struct store *st, const void *settings, int argc, char **argv)
{
	return enrollment_common(st, settings, argc, argv, DPS_INDIVIDUAL);
}

static int group_main(struct store *st, const void *settings, int argc, char **argv)
{
	return enrollment_common(st, settings, argc, argv, DPS_GROUP);
}

static int ca_main(struct store *st, const void *settings, int argc, char **argv)
{
	static const struct admin_column cols[] = {
	    {"NAME", "name"},
	    {"VERIFIED", "isVerified"},
	    {"SUBJECT", "info.subjectName"},
	    {"SHA1 THUMBPRINT", "info.sha1Thumbprint"},
	    {"NOT AFTER", "info.notAfterUtc"},
	};
	_cleanup_json_ json_t *out = NULL;
	_cleanup_free_ char *pem = NULL, *code = NULL;
	struct args a = {0};
	struct err e = {0};
	const char *verb, *name;
	int r;

	(void)settings;
	r = parse_args(argc, argv, &a);
	if (r != 0)
		return r;
	if (a.help) {
		printf(
		    "Usage: edgeid-cloud ca VERB [ARGS] [--json]\n"
		    "\n"
		    "CA certificates that X.509 enrollment groups reference (--ca NAME).\n"
		    "A CA is used only once verified: by proof of possession, or --verified.\n"
		    "\n"
		    "  add NAME --certificate PEM [--verified]\n"
		    "  verification-code NAME    issue a code; sign a certificate with CN = code\n"
		    "                            with the CA's key, then:\n"
		    "  verify NAME --certificate PEM\n"
		    "  list | show NAME | delete NAME\n");
		return 0;
	}
	if (a.n_pos == 0)
		return admin_usage_error(
		    "ca", "%s",
		    "a verb is needed: add, verification-code, verify, list, show, delete");
	verb = a.pos[0];
	name = a.n_pos > 1 ? a.pos[1] : NULL;
	if (a.n_pos > 2)
		return admin_usage_error("ca", "unexpected argument '%s'", a.pos[2]);
	if (streq(verb, "list")) {
		r = dps_ca_list(st, &out, &e);
		if (r < 0)
			return fail("ca", r, &e);
		return print(0, out, true, cols, ARRAY_SIZE(cols), a.json);
	}
	if (!streq(verb, "add") && !streq(verb, "verification-code") && !streq(verb, "verify") &&
	    !streq(verb, "show") && !streq(verb, "delete"))
		return admin_usage_error("ca", "unknown verb '%s'", verb);
	if (!name)
		return admin_usage_error("ca", "%s needs a NAME", verb);
	if (streq(verb, "add") || streq(verb, "verify")) {
		if (!a.certificate)
			return admin_usage_error("ca", "%s needs --certificate PEM", verb);
		r = read_pem(a.certificate, &pem, &e);
		if (r < 0)
			return fail("ca", r, &e);
	}
	if (streq(verb, "add")) {
		r = dps_ca_add(st, name, pem, a.verified, &out, &e);
		if (r < 0)
			return fail("ca", r, &e);
		return print(0, out, false, NULL, 0, a.json);
	}
	if (streq(verb, "verification-code")) {
		r = dps_ca_verification_code(st, name, &code, &e);
		if (r < 0)
			return fail("ca", r, &e);
		out = json_pack("{s:s, s:s}", "name", name, "verificationCode", code);
		return print(out ? 0 : -ENOMEM, out, false, NULL, 0, a.json);
	}
	if (streq(verb, "verify")) {
		r = dps_ca_verify(st, name, pem, &e);
		if (r < 0)
			return fail("ca", r, &e);
		r = dps_ca_get(st, name, &out, &e);
		if (r < 0)
			return fail("ca", r, &e);
		return print(0, out, false, NULL, 0, a.json);
	}
	if (streq(verb, "show")) {
		r = dps_ca_get(st, name, &out, &e);
		if (r < 0)
			return fail("ca", r, &e);
		return print(0, out, false, NULL, 0, a.json);
	}
	r = dps_ca_delete(st, name, &e);
	if (r < 0)
		return fail("ca", r, &e);
	if (!a.json)
		printf("deleted CA certificate %s\n", name);
	return 0;
}

static int registration_main(struct store *st, const void *settings, int argc, char **argv)
{
	static const struct admin_column cols[] = {
	    {"REGISTRATION ID", "registrationId"},
	    {"STATUS", "status"},
	    {"SUBSTATUS", "substatus"},
	    {"HUB", "assignedHub"},
	    {"DEVICE ID", "deviceId"},
	    {"LAST UPDATED", "lastUpdatedDateTimeUtc"},
	    {"ERROR", "errorMessage"},
	};
	_cleanup_json_ json_t *out = NULL;
	struct args a = {0};
	struct err e = {0};
	const char *verb, *id;
	int r;

	(void)settings;
	r = parse_args(argc, argv, &a);
	if (r != 0)
		return r;
	if (a.help) {
		printf("Usage: edgeid-cloud registration VERB [ARGS] [--json]\n"
		       "\n"
		       "Registration records: what happened when devices registered.\n"
		       "\n"
		       "  list [--group ID]   every record (or those of one enrollment group)\n"
		       "  show ID             one record\n"
		       "  delete ID           forget it (the device stays in its hub)\n");
		return 0;
	}
	if (a.n_pos == 0)
		return admin_usage_error("registration", "%s",
					 "a verb is needed: list, show, delete");
	verb = a.pos[0];
	id = a.n_pos > 1 ? a.pos[1] : NULL;
	if (a.n_pos > 2)
		return admin_usage_error("registration", "unexpected argument '%s'", a.pos[2]);
	if (streq(verb, "list")) {
		if (id)
			return admin_usage_error("registration", "unexpected argument '%s'", id);
		r = list_all(st, DPS_REGISTRATION, a.group, &out, &e);
		if (r < 0)
			return fail("registration", r, &e);
		return print(0, out, true, cols, ARRAY_SIZE(cols), a.json);
	}
	if (!streq(verb, "show") && !streq(verb, "delete"))
		return admin_usage_error("registration", "unknown verb '%s'", verb);
	if (!id)
		return admin_usage_error("registration", "%s needs a registration ID", verb);
	if (streq(verb, "show")) {
		r = dps_registration_get(st, id, &out, &e);
		if (r < 0)
			return fail("registration", r, &e);
		return print(0, out, false, NULL, 0, a.json);
	}
	r = dps_registration_delete(st, id, NULL, &e);
	if (r < 0)
		return fail("registration", r, &e);
	if (!a.json)
		printf("deleted registration record %s\n", id);
	return 0;
}

const struct cloud_admin_noun dps_admin_nouns[] = {
    {"enrollment", "DPS individual enrollments: create, list, show, delete, disable, enable",
     enrollment_main},
    {"group", "DPS enrollment groups: create, list, show, delete, disable, enable", group_main},
    {"ca", "DPS CA certificates: add, verification-code, verify, list, show, delete", ca_main},
    {"registration", "DPS registration records: list, show, delete", registration_main},
    {NULL, NULL, NULL},
};
