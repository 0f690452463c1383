/* SPDX-License-Identifier: MIT */
/*
 * edgeid tpm provisioning-info: what a DPS individual enrollment needs from
 * this device's TPM, read straight from the TPM (not through tpmd), as the
 * IoT Edge documentation's tpm2-tools script does it (seeds/000):
 *
 *   tpm2_readpublic -Q -c 0x81010001 -o ek.pub   (tpm2_createek ... when missing)
 *   printf "Gathering the registration information...\n\nRegistration Id:\n%s\n\n
 *           Endorsement Key:\n%s\n" $(sha256sum -b ek.pub | cut -d' ' -f1 | ...)
 *           $(base64 -w0 ek.pub)
 *
 * ek.pub is the EK's marshalled TPM2B_PUBLIC, so the registration id is the
 * lowercase hex SHA-256 of those bytes, size prefix included, and the
 * endorsement key their base64. The output is the script's, byte for byte.
 * --base32 prints the Azure IoT C SDK's registration id instead (lowercase
 * unpadded base32 of the same SHA-256, tpm-identity.md §3.2).
 */
#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "cli/cli.h"
#include "common/buf.h"
#include "common/encode.h"
#include "common/err.h"
#include "common/json.h"
#include "common/macro.h"
#include "config/config.h"
#include "crypto/hash.h"
#include "tpm/tpm.h"

#define PROG "edgeid tpm provisioning-info"

struct opts {
	const char *tcti;
	const char *config;
	bool base32;
	bool json;
	bool help;
};

static void usage(FILE *out)
{
	fprintf(out, "Usage: edgeid tpm COMMAND [OPTIONS]\n"
		     "\n"
		     "Commands:\n"
		     "  provisioning-info   print the TPM's registration id and endorsement key\n"
		     "\n"
		     "Run 'edgeid tpm COMMAND --help' for a command's options. See edgeid(1).\n");
}

static void usage_provisioning_info(FILE *out)
{
	fprintf(
	    out,
	    "Usage: " PROG " [--tcti TCTI] [-c FILE] [--base32] [--json]\n"
	    "\n"
	    "Print the registration id and endorsement key of this device's TPM, for an\n"
	    "individual enrollment in the provisioning service, exactly as the IoT Edge\n"
	    "documentation's tpm2-tools script prints them: the registration id is the\n"
	    "SHA-256 of the EK public area in hex (sha256sum -b ek.pub), the endorsement\n"
	    "key its base64. The EK (0x81010001) and SRK (0x81000001) are created and\n"
	    "persisted when missing.\n"
	    "\n"
	    "Options:\n"
	    "  --tcti TCTI             the TPM (default: [tpm] tcti of the super-config,\n"
	    "                          else \"device\"); the super-config is then read\n"
	    "                          only when -c names it\n"
	    "  -c, --config-file FILE  the super-config, for [tpm] (default " CONFIG_DEFAULT_PATH
	    ")\n"
	    "  --base32                the registration id as the Azure IoT C SDK makes it:\n"
	    "                          lowercase base32 of the same SHA-256, no padding\n"
	    "  --json                  print {\"registration_id\", \"endorsement_key\"}\n"
	    "  -h, --help              show this help\n"
	    "\n"
	    "Needs root, or read-write access to the TPM device (/dev/tpmrm0). With\n"
	    "swtpm, which serves one client at a time, stop edgeidd tpmd first.\n");
}

/* Returns -1 when parsed, otherwise the exit status. */
static int parse_opts(int argc, char **argv, struct opts *o)
{
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i];
		const char **dst = NULL;
		const char *inline_val = NULL;

		if (streq(a, "-h") || streq(a, "--help")) {
			o->help = true;
			continue;
		}
		if (streq(a, "--base32")) {
			o->base32 = true;
			continue;
		}
		if (streq(a, "--json")) {
			o->json = true;
			continue;
		}
		if (streq(a, "--tcti"))
			dst = &o->tcti;
		else if (strneq(a, "--tcti=", 7))
			dst = &o->tcti, inline_val = a + 7;
		else if (streq(a, "-c") || streq(a, "--config-file") || streq(a, "--config"))
			dst = &o->config;
		else if (strneq(a, "--config-file=", 14))
			dst = &o->config, inline_val = a + 14;
		else if (strneq(a, "--config=", 9))
			dst = &o->config, inline_val = a + 9;
		else if (strneq(a, "-c", 2))
			dst = &o->config, inline_val = a + 2;
		else if (a[0] == '-')
			return cli_usage_error(PROG, NULL, "unknown option '%s'", a);
		else
			return cli_usage_error(PROG, NULL, "unexpected argument '%s'", a);
		if (!inline_val) {
			if (i + 1 >= argc)
				return cli_usage_error(PROG, NULL, "option '%s' needs a value", a);
			inline_val = argv[++i];
		}
		*dst = inline_val;
	}
	return -1;
}

/* --- why the TPM cannot be reached ------------------------------------ */

/* The reason in the library's "... cannot reach the TPM (REASON); ..." */
static void open_reason(const char *msg, char *out, size_t n)
{
	static const char marker[] = "cannot reach the TPM (";
	const char *p = strstr(msg, marker), *end;

	if (p) {
		p += strlen(marker);
		end = strchr(p, ')');
		if (end) {
			snprintf(out, n, "%.*s", (int)(end - p), p);
			return;
		}
	}
	snprintf(out, n, "%s", msg);
}

/* For the device TCTI: a reason that names the device node, when a
 * missing node or its permissions explain the failure. Returns the errno
 * (ENOENT, EACCES) or 0 when the nodes look usable. */
static int device_reason(const char *tcti, char *out, size_t n)
{
	const char *paths[2] = {"/dev/tpmrm0", "/dev/tpm0"};
	size_t n_paths = 2, missing = 0;

	/* "" lets the loader try its default list, which starts with these. */
	if (strneq(tcti, "device:", 7) && tcti[7]) {
		paths[0] = tcti + 7;
		n_paths = 1;
	} else if (!streq(tcti, "device") && !streq(tcti, "device:") && *tcti) {
		return 0;
	}
	for (size_t i = 0; i < n_paths; i++) {
		struct stat st;

		if (stat(paths[i], &st) < 0) {
			missing++;
			continue;
		}
		if (access(paths[i], R_OK | W_OK) < 0 && errno == EACCES) {
			struct group *g = getgrgid(st.st_gid);

			if (g && st.st_gid != 0 && (st.st_mode & S_IRWXG) == (S_IRGRP | S_IWGRP))
				snprintf(out, n,
					 "%s: permission denied; run as root (sudo) or as a member "
					 "of group %s",
					 paths[i], g->gr_name);
			else
				snprintf(out, n, "%s: permission denied; run as root (sudo)",
					 paths[i]);
			return EACCES;
		}
	}
	if (missing == n_paths) {
		if (n_paths == 1)
			snprintf(out, n, "%s does not exist", paths[0]);
		else
			snprintf(out, n, "neither /dev/tpmrm0 nor /dev/tpm0 exists");
		return ENOENT;
	}
	return 0;
}

static int open_failed(const char *tcti, const char *source, int r, const struct err *e)
{
	char reason[ERR_MSG_MAX];

	if (r == -EIO) {
		switch (device_reason(tcti, reason, sizeof(reason))) {
		case EACCES:
			fprintf(stderr, PROG ": cannot open the TPM at %s (%s): %s\n", tcti, source,
				reason);
			return CLI_EXIT_FAILURE;
		case ENOENT:
			fprintf(stderr,
				PROG ": cannot reach the TPM at %s (%s): %s; is there a TPM, with "
				     "its driver loaded, and is [tpm] tcti right?\n",
				tcti, source, reason);
			return CLI_EXIT_FAILURE;
		default:
			open_reason(err_msg(e, r), reason, sizeof(reason));
			fprintf(stderr,
				PROG ": cannot reach the TPM at %s (%s): %s; is the TPM service "
				     "running and is [tpm] tcti right?\n",
				*tcti ? tcti : "the loader's default TCTIs", source, reason);
			return CLI_EXIT_FAILURE;
		}
	}
	fprintf(stderr, PROG ": %s\n", err_msg(e, r));
	return CLI_EXIT_FAILURE;
}

/* --- output ------------------------------------------------------------- */

static int print_info(const struct buf *ek, bool base32, bool json)
{
	_cleanup_buf_ struct buf id = {0}, ek64 = {0};
	uint8_t digest[HASH_SHA256_LEN];
	int r;

	buf_init(&id, 0);
	buf_init(&ek64, 0);
	r = hash_sha256(ek->data, ek->len, digest);
	if (r >= 0)
		r = base32 ? base32_encode(&id, digest, sizeof(digest), B32_LOWER | B32_NO_PAD)
			   : hex_encode(&id, digest, sizeof(digest));
	if (r >= 0)
		r = base64_encode(&ek64, ek->data, ek->len, B64_STANDARD);
	if (r < 0) {
		fprintf(stderr, PROG ": %s\n", strerror(-r));
		return CLI_EXIT_FAILURE;
	}
	if (json) {
		_cleanup_json_ json_t *o = json_pack("{s:s, s:s}", "registration_id", buf_str(&id),
						     "endorsement_key", buf_str(&ek64));
		_cleanup_free_ char *text = o ? json_dump_compact(o) : NULL;

		if (!text) {
			fprintf(stderr, PROG ": out of memory\n");
			return CLI_EXIT_FAILURE;
		}
		printf("%s\n", text);
	} else {
		/* The seeds' printf, word for word. */
		printf("Gathering the registration information...\n\nRegistration Id:\n%s\n\n"
		       "Endorsement Key:\n%s\n",
		       buf_str(&id), buf_str(&ek64));
	}
	if (fflush(stdout) != 0) {
		fprintf(stderr, PROG ": writing the output: %s\n", strerror(errno));
		return CLI_EXIT_FAILURE;
	}
	return CLI_EXIT_OK;
}

static int provisioning_info(int argc, char **argv)
{
	struct opts o = {0};
	_cleanup_config_ struct edgeid_config *cfg = NULL;
	_cleanup_buf_ struct buf ek = {0}, srk = {0};
	char source[4200];
	struct tpm_hierarchy_auth auth = {0};
	const char *path, *tcti;
	_cleanup_tpm_ struct tpm *t = NULL;
	struct err e = {0};
	int r, status;

	status = parse_opts(argc, argv, &o);
	if (status >= 0)
		return status;
	if (o.help) {
		usage_provisioning_info(stdout);
		return CLI_EXIT_OK;
	}

	/* The super-config gives [tpm] tcti and the hierarchy authorization
	 * tpmd would use. It is read when named with -c, or from its default
	 * place when there is one and --tcti is not given (--tcti alone needs
	 * nothing else, not even permission to read config.toml). */
	path = o.config ? o.config : CONFIG_DEFAULT_PATH;
	if (o.config || !o.tcti) {
		r = config_load(path, &cfg, &e);
		if (r < 0)
			cfg = NULL;
		if (r < 0 && !(r == -ENOENT && !o.config)) {
			fprintf(stderr, PROG ": %s%s\n", err_msg(&e, r),
				r == -EACCES ? "; run as root, or give the TPM with --tcti" : "");
			return CLI_EXIT_FAILURE;
		}
	}
	if (o.tcti) {
		tcti = o.tcti;
		snprintf(source, sizeof(source), "from --tcti");
	} else if (cfg) {
		tcti = cfg->tpm.tcti;
		snprintf(source, sizeof(source), "[tpm] tcti of %s", path);
	} else {
		tcti = CONFIG_TCTI_DEFAULT;
		snprintf(source, sizeof(source), "the default");
	}
	if (cfg) {
		auth.endorsement = cfg->tpm.endorsement_auth;
		auth.owner = cfg->tpm.owner_auth;
	}

	/* tpm2-tss prints its own lines for what the TPM refuses; the
	 * failure is reported below, once. */
	setenv("TSS2_LOG", "all+none", 0);
	err_clear(&e);
	r = tpm_open(tcti, &auth, &t, &e);
	if (r < 0)
		return open_failed(tcti, source, r, &e);
	buf_init(&ek, 4096);
	buf_init(&srk, 4096);
	r = tpm_ensure_ek(t, &ek, &e);
	if (r >= 0)
		r = tpm_ensure_srk(t, &srk, &e);
	if (r < 0) {
		if (r == -EACCES)
			fprintf(stderr, PROG ": %s; check [tpm.hierarchy_authorization] in %s\n",
				err_msg(&e, r), cfg ? path : CONFIG_DEFAULT_PATH);
		else
			fprintf(stderr, PROG ": %s\n", err_msg(&e, r));
		return CLI_EXIT_FAILURE;
	}
	return print_info(&ek, o.base32, o.json);
}

int cli_tpm_main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return CLI_EXIT_USAGE;
	}
	if (streq(argv[1], "-h") || streq(argv[1], "--help") || streq(argv[1], "help")) {
		usage(stdout);
		return CLI_EXIT_OK;
	}
	if (streq(argv[1], "provisioning-info"))
		return provisioning_info(argc, argv);
	fprintf(stderr, "edgeid tpm: unknown command '%s'\nTry 'edgeid tpm --help'.\n", argv[1]);
	return CLI_EXIT_USAGE;
}
