/* SPDX-License-Identifier: MIT */
/*
 * Test helper for tests/integration/test-tpm-blob.sh: the server half of
 * DPS TPM attestation from files, so that a real TPM (swtpm) driven by
 * tpm2-tools can play the device.
 *
 *   tpm-blob-tool build EK.pub SRK.pub KEY_HEX OUTDIR
 *       Build the authentication-key blob for the TPM2B_PUBLIC files EK.pub
 *       and SRK.pub (as tpm2_readpublic -o writes them) carrying the HMAC
 *       key KEY_HEX. Writes OUTDIR/blob.b64 (what DPS sends), and splits it
 *       again with the parser into one marshalled TPM2B per file:
 *         id_object.bin  secret.bin  duplicate.bin  in_sym_seed.bin
 *         id_key.pub     enc_uri.bin
 *       plus credential.bin (items 1 and 2 in the tpm2_makecredential file
 *       format that tpm2_activatecredential -i reads).
 *   tpm-blob-tool regid PUB
 *       Print the hex and base32 registration ids of a TPM2B_PUBLIC file.
 *   tpm-blob-tool name PUB
 *       Print the Name of a TPM2B_PUBLIC file in hex.
 *
 * Exit status 0 on success, 1 on failure (with the reason on stderr), 2 on
 * bad usage.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/buf.h"
#include "common/encode.h"
#include "common/err.h"
#include "common/fs.h"
#include "crypto/tpm_blob.h"
#include "crypto/tpm_public.h"

static int read_public(const char *path, struct tpm_public *ret, struct err *e)
{
	_cleanup_buf_ struct buf raw = {0};
	int r;

	buf_init(&raw, 4096);
	r = fs_read_file(path, 4096, &raw, e);
	if (r < 0)
		return r;
	r = tpm_public_parse(raw.data, raw.len, 0, ret, e);
	if (r < 0)
		return err_prefix(e, r, "%s", path);
	return 0;
}

static int write_file(const char *dir, const char *name, const void *data, size_t len,
		      struct err *e)
{
	_cleanup_free_ char *path = fs_path_join(dir, name);

	if (!path)
		return -ENOMEM;
	return fs_write_atomic(path, data, len, 0644, FS_KEEP_OWNER, FS_KEEP_GROUP, e);
}

static int cmd_build(const char *ek_path, const char *srk_path, const char *key_hex,
		     const char *dir, struct err *e)
{
	/* tpm2-tools' credential file: magic, version, TPM2B_ID_OBJECT,
	 * TPM2B_ENCRYPTED_SECRET. */
	static const uint8_t cred_header[] = {0xba, 0xdc, 0xc0, 0xde, 0x00, 0x00, 0x00, 0x01};
	static const char *const names[] = {"id_object.bin",   "secret.bin", "duplicate.bin",
					    "in_sym_seed.bin", "id_key.pub", "enc_uri.bin"};
	_cleanup_buf_ struct buf key = {0};
	_cleanup_buf_ struct buf blob = {0};
	_cleanup_buf_ struct buf b64 = {0};
	_cleanup_buf_ struct buf cred = {0};
	struct tpm_public ek, srk;
	struct tpm_blob parts;
	int r;

	r = read_public(ek_path, &ek, e);
	if (r >= 0)
		r = read_public(srk_path, &srk, e);
	if (r < 0)
		return r;
	buf_init_secret(&key, 128);
	r = hex_decode(&key, key_hex, strlen(key_hex), NULL);
	if (r < 0)
		return err_set(e, r, "KEY_HEX: expected an even number of hex digits");

	buf_init(&blob, TPM_BLOB_MAX);
	r = tpm_blob_build(&ek, &srk, (const uint8_t *)key.data, key.len, &blob, e);
	if (r < 0)
		return r;
	buf_init(&b64, 0);
	r = base64_encode(&b64, blob.data, blob.len, B64_STANDARD);
	if (r >= 0)
		r = buf_putc(&b64, '\n');
	if (r >= 0)
		r = write_file(dir, "blob.b64", b64.data, b64.len, e);
	if (r < 0)
		return err_set(e, r, "blob.b64: %s", strerror(-r));

	/* Split what a device would receive, not what we built. */
	buf_reset(&blob);
	r = base64_decode(&blob, b64.data, b64.len - 1, B64_STANDARD, NULL);
	if (r < 0)
		return err_set(e, r, "blob.b64: cannot decode it again");
	r = tpm_blob_parse(blob.data, blob.len, &parts, e);
	if (r < 0)
		return r;
	{
		const struct tpm_blob_item *items[] = {&parts.id_object, &parts.secret,
						       &parts.duplicate, &parts.in_sym_seed,
						       &parts.id_public, &parts.enc_uri};

		for (size_t i = 0; i < ARRAY_SIZE(items); i++) {
			r = write_file(dir, names[i], items[i]->tpm2b, items[i]->tpm2b_len, e);
			if (r < 0)
				return r;
		}
	}
	buf_init(&cred, 0);
	r = buf_append(&cred, cred_header, sizeof(cred_header));
	if (r >= 0)
		r = buf_append(&cred, parts.id_object.tpm2b, parts.id_object.tpm2b_len);
	if (r >= 0)
		r = buf_append(&cred, parts.secret.tpm2b, parts.secret.tpm2b_len);
	if (r >= 0)
		r = write_file(dir, "credential.bin", cred.data, cred.len, e);
	return r;
}

static int cmd_regid(const char *path, struct err *e)
{
	_cleanup_buf_ struct buf hex = {0};
	_cleanup_buf_ struct buf b32 = {0};
	struct tpm_public pub;
	int r;

	r = read_public(path, &pub, e);
	if (r < 0)
		return r;
	buf_init(&hex, 0);
	buf_init(&b32, 0);
	r = tpm_public_registration_id_hex(&pub, &hex);
	if (r >= 0)
		r = tpm_public_registration_id_base32(&pub, &b32);
	if (r < 0)
		return err_set(e, r, "registration id: %s", strerror(-r));
	printf("%s %s\n", buf_str(&hex), buf_str(&b32));
	return 0;
}

static int cmd_name(const char *path, struct err *e)
{
	_cleanup_buf_ struct buf hex = {0};
	uint8_t name[TPM_NAME_LEN];
	struct tpm_public pub;
	int r;

	r = read_public(path, &pub, e);
	if (r < 0)
		return r;
	buf_init(&hex, 0);
	r = tpm_public_name(&pub, name);
	if (r >= 0)
		r = hex_encode(&hex, name, sizeof(name));
	if (r < 0)
		return err_set(e, r, "name: %s", strerror(-r));
	printf("%s\n", buf_str(&hex));
	return 0;
}

int main(int argc, char **argv)
{
	struct err e = {0};
	int r;

	if (argc == 6 && streq(argv[1], "build"))
		r = cmd_build(argv[2], argv[3], argv[4], argv[5], &e);
	else if (argc == 3 && streq(argv[1], "regid"))
		r = cmd_regid(argv[2], &e);
	else if (argc == 3 && streq(argv[1], "name"))
		r = cmd_name(argv[2], &e);
	else {
		fprintf(stderr, "usage: tpm-blob-tool build EK.pub SRK.pub KEY_HEX OUTDIR\n"
				"       tpm-blob-tool regid PUB\n"
				"       tpm-blob-tool name PUB\n");
		return 2;
	}
	if (r < 0) {
		fprintf(stderr, "tpm-blob-tool: %s\n", err_msg(&e, r));
		return 1;
	}
	return 0;
}
