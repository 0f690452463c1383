/* SPDX-License-Identifier: MIT */
/*
 * Test helper for tests/integration/test-tpm-*.sh: src/tpm from the shell,
 * so that its results can be compared with tpm2-tools on the same TPM.
 *
 *   tpm-tool [-T TCTI] [-e ENDORSEMENT_AUTH] [-o OWNER_AUTH] COMMAND ARGS
 *
 *   ensure-ek FILE           tpm_ensure_ek; write the TPM2B_PUBLIC to FILE
 *   ensure-srk FILE          tpm_ensure_srk; likewise
 *   read-public HANDLE FILE  tpm_read_public
 *   evict HANDLE             tpm_evict
 *   import HANDLE BLOB       tpm_import_auth_key with the base64 blob in the
 *                            file BLOB (as DPS sends authenticationKey)
 *   hmac HANDLE FILE         tpm_hmac of FILE's bytes; prints lowercase hex
 *   handles                  prints "transient N sessions M"
 *
 * TCTI defaults to $EDGEID_TEST_TCTI (set by tests/lib/swtpm.sh), then to
 * the loader's default. HANDLE is a number (0x81000100). Exit status 0 on
 * success, 1 on failure (the error sentence on stderr), 2 on bad usage.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/encode.h"
#include "common/err.h"
#include "common/fs.h"
#include "crypto/tpm_blob.h"
#include "tpm/tpm.h"

#define FILE_MAX (1024 * 1024)

static int parse_handle(const char *s, uint32_t *ret, struct err *e)
{
	unsigned long v;
	char *end;

	errno = 0;
	v = strtoul(s, &end, 0);
	if (errno || end == s || *end || v > UINT32_MAX)
		return err_set(e, -EINVAL, "\"%s\": expected a handle such as 0x81000100", s);
	*ret = (uint32_t)v;
	return 0;
}

static int write_buf(const char *path, const struct buf *b, struct err *e)
{
	return fs_write_atomic(path, b->data, b->len, 0644, FS_KEEP_OWNER, FS_KEEP_GROUP, e);
}

static int cmd_ensure(struct tpm *t, const char *cmd, const char *path, struct err *e)
{
	_cleanup_buf_ struct buf pub = {0};
	int r;

	buf_init(&pub, 4096);
	r = streq(cmd, "ensure-ek") ? tpm_ensure_ek(t, &pub, e) : tpm_ensure_srk(t, &pub, e);
	if (r < 0)
		return r;
	return write_buf(path, &pub, e);
}

static int cmd_read_public(struct tpm *t, const char *handle_s, const char *path, struct err *e)
{
	_cleanup_buf_ struct buf pub = {0};
	uint32_t handle;
	int r;

	r = parse_handle(handle_s, &handle, e);
	if (r < 0)
		return r;
	buf_init(&pub, 4096);
	r = tpm_read_public(t, handle, &pub, e);
	if (r < 0)
		return r;
	return write_buf(path, &pub, e);
}

static int cmd_import(struct tpm *t, const char *handle_s, const char *path, struct err *e)
{
	_cleanup_buf_ struct buf text = {0};
	_cleanup_buf_ struct buf blob = {0};
	uint32_t handle;
	int r;

	r = parse_handle(handle_s, &handle, e);
	if (r < 0)
		return r;
	buf_init(&text, FILE_MAX);
	r = fs_read_file(path, FILE_MAX, &text, e);
	if (r < 0)
		return r;
	buf_init(&blob, TPM_BLOB_MAX);
	r = base64_decode(&blob, text.data, text.len, B64_STANDARD | B64_IGNORE_WS, NULL);
	if (r < 0)
		return err_set(e, r, "%s: not base64", path);
	return tpm_import_auth_key(t, blob.data, blob.len, handle, e);
}

static int cmd_hmac(struct tpm *t, const char *handle_s, const char *path, struct err *e)
{
	_cleanup_buf_ struct buf data = {0};
	_cleanup_buf_ struct buf hex = {0};
	uint8_t mac[TPM_HMAC_LEN];
	uint32_t handle;
	int r;

	r = parse_handle(handle_s, &handle, e);
	if (r < 0)
		return r;
	buf_init(&data, FILE_MAX);
	r = fs_read_file(path, FILE_MAX, &data, e);
	if (r < 0)
		return r;
	r = tpm_hmac(t, handle, data.data, data.len, mac, e);
	if (r < 0)
		return r;
	buf_init(&hex, 0);
	r = hex_encode(&hex, mac, sizeof(mac));
	if (r < 0)
		return err_set(e, r, "hex: %s", strerror(-r));
	printf("%s\n", buf_str(&hex));
	return 0;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: tpm-tool [-T TCTI] [-e ENDORSEMENT_AUTH] [-o OWNER_AUTH] COMMAND ARGS\n"
		"  ensure-ek FILE | ensure-srk FILE | read-public HANDLE FILE | evict HANDLE\n"
		"  import HANDLE BLOB_B64_FILE | hmac HANDLE FILE | handles\n");
}

int main(int argc, char **argv)
{
	const char *tcti = getenv("EDGEID_TEST_TCTI");
	struct tpm_hierarchy_auth auth = {0};
	_cleanup_tpm_ struct tpm *t = NULL;
	struct err e = {0};
	const char *cmd;
	uint32_t handle;
	int opt, n, r;

	while ((opt = getopt(argc, argv, "T:e:o:")) != -1) {
		switch (opt) {
		case 'T':
			tcti = optarg;
			break;
		case 'e':
			auth.endorsement = optarg;
			break;
		case 'o':
			auth.owner = optarg;
			break;
		default:
			usage();
			return 2;
		}
	}
	if (optind >= argc) {
		usage();
		return 2;
	}
	cmd = argv[optind];
	n = argc - optind - 1;
	if (!((streq(cmd, "ensure-ek") && n == 1) || (streq(cmd, "ensure-srk") && n == 1) ||
	      (streq(cmd, "read-public") && n == 2) || (streq(cmd, "evict") && n == 1) ||
	      (streq(cmd, "import") && n == 2) || (streq(cmd, "hmac") && n == 2) ||
	      (streq(cmd, "handles") && n == 0))) {
		usage();
		return 2;
	}

	r = tpm_open(tcti, &auth, &t, &e);
	if (r >= 0) {
		char **a = argv + optind + 1;

		if (streq(cmd, "ensure-ek") || streq(cmd, "ensure-srk"))
			r = cmd_ensure(t, cmd, a[0], &e);
		else if (streq(cmd, "read-public"))
			r = cmd_read_public(t, a[0], a[1], &e);
		else if (streq(cmd, "evict")) {
			r = parse_handle(a[0], &handle, &e);
			if (r >= 0)
				r = tpm_evict(t, handle, &e);
		} else if (streq(cmd, "import"))
			r = cmd_import(t, a[0], a[1], &e);
		else if (streq(cmd, "hmac"))
			r = cmd_hmac(t, a[0], a[1], &e);
		else {
			uint32_t transient, sessions;

			r = tpm_loaded_handles(t, &transient, &sessions, &e);
			if (r >= 0)
				printf("transient %" PRIu32 " sessions %" PRIu32 "\n", transient,
				       sessions);
		}
	}
	if (r < 0) {
		fprintf(stderr, "tpm-tool: %s\n", err_msg(&e, r));
		return 1;
	}
	return 0;
}
