/* SPDX-License-Identifier: MIT */
/*
 * identityd's files in its home directory (aziot-compat.md §4.3):
 *
 *   device_info          the provisioning result, TOML, exactly as aziot
 *                        writes it, so that a device provisioned by aziot
 *                        keeps its identity when edgeid takes over, and
 *                        the other way round;
 *   edgeid_provisioning  edgeid only: the digest of the provisioning
 *                        settings device_info was made with, so that a
 *                        changed ID scope or registration id is noticed
 *                        (iotedge#7013).
 *
 * Both are written atomically (temporary file, fsync, rename, directory
 * fsync) with mode 0600. A write that is killed half way leaves its
 * temporary file (".device_info.XXXXXX"); the next write or removal
 * deletes it.
 */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/fs.h"
#include "common/log.h"
#include "common/toml.h"
#include "device/identityd/identityd_private.h"

#define DEVICE_INFO_FILE "device_info"
#define DIGEST_FILE "edgeid_provisioning"
#define STATE_FILE_MAX (64 * 1024)
/* What mkostemp puts in place of XXXXXX. */
#define TEMPORARY_LETTERS "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

void identityd_device_info_clear(struct identityd_device_info *di)
{
	if (!di)
		return;
	free(di->hub_name);
	free(di->local_gateway_hostname);
	free(di->device_id);
	*di = (struct identityd_device_info){0};
}

int identityd_device_info_format(const struct identityd_device_info *di, struct buf *out)
{
	const struct {
		const char *key, *value;
	} fields[] = {
	    {"hub_name", di->hub_name},
	    {"local_gateway_hostname", di->local_gateway_hostname},
	    {"device_id", di->device_id},
	};
	int r;

	for (size_t i = 0; i < ARRAY_SIZE(fields); i++) {
		const char *v = fields[i].value ? fields[i].value : "";

		r = buf_printf(out, "%s = ", fields[i].key);
		if (r >= 0)
			r = toml_format_string(out, v, strlen(v));
		if (r >= 0)
			r = buf_putc(out, '\n');
		if (r < 0)
			return r;
	}
	return 0;
}

static int take_string(const struct toml_value *root, const char *name, const char *key, char **ret,
		       struct err *e)
{
	const struct toml_value *v = toml_table_get(root, key);

	if (!v)
		return err_set(e, -EBADMSG, "%s: missing key \"%s\"", name, key);
	if (v->type != TOML_STRING || memchr(v->str.ptr, '\0', v->str.len))
		return err_set(e, -EBADMSG, "%s:%u:%u: %s: expected a string", name, v->pos.line,
			       v->pos.col, key);
	if (v->str.len == 0)
		return err_set(e, -EBADMSG, "%s:%u:%u: %s: is empty", name, v->pos.line, v->pos.col,
			       key);
	*ret = strdup(v->str.ptr);
	return *ret ? 0 : err_set(e, -ENOMEM, "out of memory");
}

int identityd_device_info_parse(const char *text, size_t len, const char *name,
				struct identityd_device_info *ret, struct err *e)
{
	_cleanup_toml_ struct toml_value *root = NULL;
	struct identityd_device_info di = {0};
	size_t n = len;
	int r;

	/* aziot reads "unprovisioned" as no device (it never writes it). */
	while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r' || text[n - 1] == ' '))
		n--;
	if (n == strlen("unprovisioned") && strneq(text, "unprovisioned", n))
		return 1;
	r = toml_parse(text, len, name, &root, e);
	if (r == -ENOMEM)
		return r;
	if (r < 0) /* the parser's message says where */
		return -EBADMSG;
	r = take_string(root, name, "hub_name", &di.hub_name, e);
	if (r >= 0)
		r = take_string(root, name, "local_gateway_hostname", &di.local_gateway_hostname,
				e);
	if (r >= 0)
		r = take_string(root, name, "device_id", &di.device_id, e);
	if (r < 0) {
		identityd_device_info_clear(&di);
		return r;
	}
	*ret = di;
	return 0;
}

static int state_path(const char *homedir, const char *file, char **ret, struct err *e)
{
	*ret = fs_path_join(homedir, file);
	return *ret ? 0 : err_set(e, -ENOMEM, "out of memory");
}

/* Whether name is a temporary file fs_write_atomic makes for one of our
 * files: "." file "." and mkostemp's six letters or digits. */
static bool is_temporary(const char *name)
{
	static const char *const files[] = {DEVICE_INFO_FILE, DIGEST_FILE};

	if (name[0] != '.')
		return false;
	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		size_t n = strlen(files[i]);
		const char *x;

		if (!strneq(name + 1, files[i], n))
			continue;
		x = name + 1 + n;
		if (x[0] == '.' && strlen(x + 1) == 6 && strspn(x + 1, TEMPORARY_LETTERS) == 6)
			return true;
	}
	return false;
}

/* Remove the temporary files of writes that were killed before their
 * rename. Only identityd's main process writes these files, one at a time
 * and to the end, so a temporary it sees before it writes or removes one
 * belongs to a write that will never finish. Best effort: what cannot be
 * removed now is tried again at the next write. */
static void sweep_temporaries(const char *homedir)
{
	DIR *d = opendir(homedir);
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d)))
		if (is_temporary(de->d_name) && unlinkat(dirfd(d), de->d_name, 0) == 0)
			log_info("removed %s/%s, left by an interrupted write", homedir,
				 de->d_name);
	closedir(d);
}

int identityd_device_info_read(const char *homedir, struct identityd_device_info *ret,
			       struct err *e)
{
	_cleanup_free_ char *path = NULL;
	_cleanup_buf_ struct buf text = {0};
	struct err inner = {0};
	int r;

	r = state_path(homedir, DEVICE_INFO_FILE, &path, e);
	if (r < 0)
		return r;
	buf_init(&text, STATE_FILE_MAX);
	r = fs_read_file(path, STATE_FILE_MAX, &text, &inner);
	if (r == -ENOENT)
		return -ENOENT;
	if (r < 0)
		return err_set(e, r, "%s", err_msg(&inner, r));
	return identityd_device_info_parse(text.data ? text.data : "", text.len, path, ret, e);
}

int identityd_device_info_write(const char *homedir, const struct identityd_device_info *di,
				struct err *e)
{
	_cleanup_free_ char *path = NULL;
	_cleanup_buf_ struct buf text = {0};
	int r;

	r = state_path(homedir, DEVICE_INFO_FILE, &path, e);
	if (r < 0)
		return r;
	buf_init(&text, STATE_FILE_MAX);
	r = identityd_device_info_format(di, &text);
	if (r < 0)
		return err_set(e, r, "%s: cannot format: %s", path, strerror(-r));
	sweep_temporaries(homedir);
	return fs_write_atomic(path, text.data, text.len, 0600, FS_KEEP_OWNER, FS_KEEP_GROUP, e);
}

static int remove_file(const char *homedir, const char *file, struct err *e)
{
	_cleanup_free_ char *path = NULL;
	int r;

	r = state_path(homedir, file, &path, e);
	if (r < 0)
		return r;
	if (unlink(path) < 0 && errno != ENOENT)
		return err_set(e, -errno, "%s: cannot remove: %s", path, strerror(errno));
	return 0;
}

int identityd_device_info_remove(const char *homedir, struct err *e)
{
	int r;

	sweep_temporaries(homedir);
	r = remove_file(homedir, DEVICE_INFO_FILE, e);

	return r < 0 ? r : remove_file(homedir, DIGEST_FILE, e);
}

int identityd_digest_read(const char *homedir, char ret[65], struct err *e)
{
	_cleanup_free_ char *path = NULL;
	_cleanup_buf_ struct buf text = {0};
	struct err inner = {0};
	int r;

	r = state_path(homedir, DIGEST_FILE, &path, e);
	if (r < 0)
		return r;
	buf_init(&text, 256);
	r = fs_read_file(path, 256, &text, &inner);
	if (r == -ENOENT)
		return -ENOENT;
	if (r < 0)
		return err_set(e, r, "%s", err_msg(&inner, r));
	if (text.len < 64 || strspn(text.data, "0123456789abcdef") != 64)
		return err_set(e, -EBADMSG, "%s: not a digest", path);
	memcpy(ret, text.data, 64);
	ret[64] = '\0';
	return 0;
}

int identityd_digest_write(const char *homedir, const char digest[65], struct err *e)
{
	_cleanup_free_ char *path = NULL;
	char line[66];
	int r;

	r = state_path(homedir, DIGEST_FILE, &path, e);
	if (r < 0)
		return r;
	memcpy(line, digest, 64);
	line[64] = '\n';
	line[65] = '\0';
	return fs_write_atomic(path, line, 65, 0600, FS_KEEP_OWNER, FS_KEEP_GROUP, e);
}
