/* SPDX-License-Identifier: MIT */
/*
 * edgeid identity show|list: the device's identity as identityd holds it,
 * with how it was provisioned and, when it was not, why. Talks to
 * identityd's socket (aziot's Identity Service API plus edgeid's
 * /identities/provisioning/status).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli/cli.h"
#include "common/fs.h"
#include "common/http_client.h"
#include "common/json.h"
#include "common/macro.h"

#define IDENTITYD_SOCKET "/run/aziot/identityd.sock"

struct options {
	const char *socket;
	const char *root;
	bool json;
};

static void usage(FILE *out)
{
	fprintf(out, "Usage: edgeid identity show [--json] [--root DIR] [--socket PATH]\n"
		     "       edgeid identity list [--json] [--root DIR] [--socket PATH]\n"
		     "\n"
		     "The device's identities, from identityd.\n"
		     "\n"
		     "Commands:\n"
		     "  show   the device identity: hub, device id, authentication, and how it\n"
		     "         was provisioned (or why it is not)\n"
		     "  list   every identity identityd holds, one per line\n"
		     "\n"
		     "Options:\n"
		     "  --json          print identityd's JSON\n"
		     "  --root DIR      look for the socket under DIR (also EDGEID_ROOT)\n"
		     "  --socket PATH   identityd's socket (default " IDENTITYD_SOCKET ")\n"
		     "  -h, --help      show this help\n"
		     "\n"
		     "Exit status: 0 when the device has an identity, 1 when it has none or\n"
		     "identityd cannot be asked, 2 for a usage error.\n");
}

/* One call to identityd. Returns the HTTP status (the JSON body in *ret),
 * or -1 after printing why identityd could not be asked. */
static long call(const char *socket, const char *method, const char *path, const char *body,
		 json_t **ret)
{
	_cleanup_http_client_response_ struct http_client_response resp = {0};
	const struct http_header type = {"Content-Type", "application/json"};
	struct http_client_request req = {
	    .method = method,
	    .url = path,
	    .unix_socket_path = socket,
	    .body = body,
	    .body_len = body ? strlen(body) : 0,
	    .headers = body ? &type : NULL,
	    .n_headers = body ? 1 : 0,
	    .response_secret = true,
	};
	struct err e = {0};
	int r;

	*ret = NULL;
	r = http_client_perform(NULL, &req, &resp, &e);
	if (r < 0) {
		fprintf(stderr, "edgeid identity: cannot reach identityd at %s: %s\n", socket,
			r == -ENOENT || r == -ECONNREFUSED ? "it is not running" : err_msg(&e, r));
		return -1;
	}
	if (json_parse(buf_str(&resp.body), resp.body.len, 0, ret, NULL) < 0) {
		fprintf(stderr,
			"edgeid identity: identityd answered %s with HTTP %ld and no JSON\n", path,
			resp.status);
		return -1;
	}
	return resp.status;
}

static const char *str(const json_t *j, const char *path)
{
	const char *s = NULL;

	if (json_get_string_opt(j, path, &s, NULL) < 0 || !s)
		return NULL;
	return s;
}

static void row(const char *name, const char *value)
{
	if (value)
		printf("  %-16s %s\n", name, value);
}

static void print_show(const json_t *identity, const json_t *prov, const json_t *status)
{
	const char *auth = str(identity, "spec.auth.type"), *from = str(status, "device.from");
	const char *state = str(status, "state"), *err = str(status, "last_error");
	bool verified = false, retrying = false;
	int64_t failures = 0, next = -1;
	char buf[256];

	(void)json_get_bool_opt(status, "device.hub_verified", false, &verified, NULL);
	(void)json_get_bool_opt(status, "retrying", false, &retrying, NULL);
	(void)json_get_int_opt(status, "failures", 0, INT64_MAX, 0, &failures, NULL);
	(void)json_get_int_opt(status, "next_attempt_in_sec", 0, INT64_MAX, -1, &next, NULL);

	printf("Device identity\n");
	if (identity) {
		row("hub:", str(identity, "spec.hubName"));
		row("gateway:", str(identity, "spec.gatewayHost"));
		row("device id:", str(identity, "spec.deviceId"));
		if (auth) {
			snprintf(buf, sizeof(buf), "%s%s", auth,
				 streq(auth, "tpm")    ? " (key in the TPM)"
				 : streq(auth, "x509") ? " (certificate device-id, key in keyd)"
						       : " (key in keyd)");
			row("authentication:", buf);
		}
		if (from) {
			snprintf(buf, sizeof(buf), "%s%s",
				 streq(from, "dps")        ? "DPS"
				 : streq(from, "settings") ? "the settings (manual)"
							   : "device_info (saved earlier)",
				 verified ? "; accepted by the hub"
					  : "; not verified with the hub");
			row("from:", buf);
		}
	} else {
		printf("  none\n");
	}
	printf("Provisioning\n");
	snprintf(buf, sizeof(buf), "%s%s%s%s", str(prov, "source") ? str(prov, "source") : "?",
		 str(prov, "auth") ? " (" : "", str(prov, "auth") ? str(prov, "auth") : "",
		 str(prov, "auth") ? ")" : "");
	row("source:", buf);
	row("endpoint:", str(prov, "endpoint"));
	row("ID scope:", str(prov, "scope_id"));
	row("registration id:", str(prov, "registration_id"));
	if (state) {
		if (streq(state, "failed") && failures > 0)
			snprintf(buf, sizeof(buf), "failed (%lld attempt%s%s)", (long long)failures,
				 failures == 1 ? "" : "s",
				 retrying ? "; trying again" : "; not trying again");
		else
			snprintf(buf, sizeof(buf), "%s", state);
		if (retrying && next >= 0)
			snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf), " in %lld s",
				 (long long)next);
		row("state:", buf);
	}
	row(identity ? "warning:" : "last error:", err);
	row("last attempt:", str(status, "last_attempt"));
}

static int show(const char *socket, bool json, bool list)
{
	_cleanup_json_ json_t *status = NULL, *prov = NULL, *identity = NULL;
	long st;

	st = call(socket, "GET",
		  "http://identityd.sock/identities/provisioning/status?api-version=2021-12-01",
		  NULL, &status);
	if (st < 0)
		return CLI_EXIT_FAILURE;
	if (st != 200) {
		fprintf(stderr, "edgeid identity: identityd: %s\n",
			str(status, "message") ? str(status, "message") : "unexpected answer");
		return CLI_EXIT_FAILURE;
	}
	st = call(socket, "GET",
		  "http://identityd.sock/identities/provisioning?api-version=2021-12-01", NULL,
		  &prov);
	if (st < 0)
		return CLI_EXIT_FAILURE;
	if (streq(str(status, "state") ? str(status, "state") : "", "provisioned")) {
		st = call(socket, "POST",
			  "http://identityd.sock/identities/device?api-version=2020-09-01",
			  "{\"type\":\"aziot\"}", &identity);
		if (st < 0)
			return CLI_EXIT_FAILURE;
		if (st == 403) {
			fprintf(stderr,
				"edgeid identity: identityd refused to show the device identity: "
				"run as root, or as a principal with idtype \"device\"\n");
			return CLI_EXIT_FAILURE;
		}
		if (st != 200) {
			json_decref(identity);
			identity = NULL;
		}
	}
	if (json) {
		_cleanup_json_ json_t *all = json_pack("{s:O?,s:O?,s:O?}", "identity", identity,
						       "provisioning", prov, "status", status);
		_cleanup_free_ char *text = all ? json_dumps(all, JSON_INDENT(2)) : NULL;

		if (!text)
			return CLI_EXIT_FAILURE;
		printf("%s\n", text);
	} else if (list) {
		printf("%-8s %-32s %-32s %s\n", "TYPE", "ID", "HUB", "AUTH");
		if (identity)
			printf("%-8s %-32s %-32s %s\n", "device", str(identity, "spec.deviceId"),
			       str(identity, "spec.hubName"),
			       str(identity, "spec.auth.type") ? str(identity, "spec.auth.type")
							       : "");
	} else {
		print_show(identity, prov, status);
	}
	return identity ? CLI_EXIT_OK : CLI_EXIT_FAILURE;
}

int cli_identity_main(int argc, char **argv)
{
	struct options o = {0};
	_cleanup_free_ char *socket = NULL;
	const char *verb;

	if (argc < 2) {
		usage(stderr);
		return CLI_EXIT_USAGE;
	}
	verb = argv[1];
	if (streq(verb, "-h") || streq(verb, "--help") || streq(verb, "help")) {
		usage(stdout);
		return CLI_EXIT_OK;
	}
	if (!streq(verb, "show") && !streq(verb, "list")) {
		fprintf(stderr,
			"edgeid identity: unknown command '%s'\nTry 'edgeid identity --help'.\n",
			verb);
		return CLI_EXIT_USAGE;
	}
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i];

		if (streq(a, "-h") || streq(a, "--help")) {
			usage(stdout);
			return CLI_EXIT_OK;
		} else if (streq(a, "--json")) {
			o.json = true;
		} else if ((streq(a, "--root") || streq(a, "--socket")) && i + 1 < argc) {
			*(streq(a, "--root") ? &o.root : &o.socket) = argv[++i];
		} else if (strneq(a, "--root=", 7)) {
			o.root = a + 7;
		} else if (strneq(a, "--socket=", 9)) {
			o.socket = a + 9;
		} else {
			fprintf(stderr,
				"edgeid identity: unknown option or missing argument '%s'\nTry "
				"'edgeid identity --help'.\n",
				a);
			return CLI_EXIT_USAGE;
		}
	}
	if (!o.root) {
		o.root = getenv("EDGEID_ROOT");
		if (o.root && !*o.root)
			o.root = NULL;
	}
	if (o.socket)
		socket = strdup(o.socket);
	else if (o.root && !streq(o.root, "/"))
		socket = fs_path_join(o.root, IDENTITYD_SOCKET);
	else
		socket = strdup(IDENTITYD_SOCKET);
	if (!socket)
		return CLI_EXIT_FAILURE;
	return show(socket, o.json, streq(verb, "list"));
}
