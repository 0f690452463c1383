/* SPDX-License-Identifier: MIT */
/*
 * Where a certificate id lives (specs/aziot-compat.md §3.5, §4.2), so that
 * an existing aziot device's certificates are used in place:
 *
 *   a preloaded id:  the file its [preloaded_certs] URI names; it is also
 *                    written to on create and import, as aziot does;
 *   a bundle:        the concatenation of its members, read only;
 *   any other id:    <homedir>/certs/<alnum-only id>-<sha256 hex>.cer.
 *
 * Files hold the PEM text exactly as it was created or imported. Every
 * write goes through fs_write_atomic(): a crash leaves the old certificate
 * or the new one, never a torn one.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fs.h"
#include "common/log.h"
#include "device/certd/certd.h"
#include "device/keyd/keyd.h"

int certd_cert_file_name(const char *id, char **ret)
{
	_cleanup_free_ char *name = NULL;
	size_t len;
	int r;

	/* One implementation of aziot's id-to-name scheme: keyd's, with the
	 * certificate extension in place of ".key". */
	r = keyd_key_file_name(id, &name);
	if (r < 0)
		return r;
	len = strlen(name);
	if (len < 4 || !streq(name + len - 4, ".key"))
		return -EIO;
	memcpy(name + len - 4, ".cer", 4);
	*ret = TAKE_PTR(name);
	return 0;
}

/* Remove ".<name>.cer.XXXXXX" files that a write interrupted by a crash
 * left behind (fs_write_atomic's temporaries). */
static void sweep_temporaries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d))) {
		const char *n = de->d_name, *k;
		size_t len = strlen(n);

		if (n[0] != '.' || len < 12 || !(k = strstr(n, ".cer.")) || k + 11 != n + len)
			continue;
		if (unlinkat(dirfd(d), n, 0) == 0)
			log_info("removed %s/%s, left by an interrupted write", dir, n);
	}
	closedir(d);
}

int certd_store_setup(const struct certd_settings *s, struct err *e)
{
	int r;

	if (!s->certs_dir)
		return 0;
	r = fs_mkdir_p(s->certs_dir, 0700, FS_KEEP_OWNER, FS_KEEP_GROUP, false, e);
	if (r < 0)
		return r;
	sweep_temporaries(s->certs_dir);
	return 0;
}

/* The file of a certificate id that is not a bundle. -EPERM (bundle),
 * -ENOENT (no homedir), -ENOMEM, with a sentence. */
static int file_of(const struct certd_settings *s, const char *id, char **ret, struct err *e)
{
	const struct certd_preloaded *pc = certd_settings_preloaded(s, id);
	_cleanup_free_ char *name = NULL;

	if (pc && !pc->path)
		return err_set(e, -EPERM,
			       "\"%s\" is a preloaded list of other certificates; it cannot be "
			       "written or deleted",
			       id);
	if (pc) {
		*ret = strdup(pc->path);
		return *ret ? 0 : err_set(e, -ENOMEM, "out of memory");
	}
	if (!s->certs_dir)
		return err_set(e, -ENOENT,
			       "\"%s\" is not preloaded and certd has no homedir_path to keep "
			       "certificates in",
			       id);
	if (certd_cert_file_name(id, &name) < 0)
		return err_set(e, -ENOMEM, "out of memory");
	*ret = fs_path_join(s->certs_dir, name);
	return *ret ? 0 : err_set(e, -ENOMEM, "out of memory");
}

/* Append the file at path to out; -ENOENT (nothing appended, no message)
 * when it does not exist. */
static int read_file(const char *path, struct buf *out, struct err *e)
{
	struct err inner = {0};
	size_t left = out->max > out->len ? out->max - out->len : 0;
	int r;

	r = fs_read_file(path, left, out, &inner);
	if (r == -ENOENT)
		return -ENOENT;
	if (r < 0)
		return err_set(e, r, "%s", err_msg(&inner, r));
	return 0;
}

int certd_store_read(const struct certd_settings *s, const char *id, struct buf *out, struct err *e)
{
	const struct certd_preloaded *pc = certd_settings_preloaded(s, id);
	bool any = false;

	if (!pc || pc->path) {
		_cleanup_free_ char *path = NULL;
		int r = file_of(s, id, &path, NULL);

		if (r == -ENOMEM)
			return err_set(e, r, "out of memory");
		if (r < 0)
			return -ENOENT; /* no homedir: no such certificate */
		return read_file(path, out, e);
	}
	/* A bundle: its members in order, skipping those that do not exist
	 * (aziot's behaviour); members are never bundles (checked with the
	 * settings). */
	for (size_t i = 0; i < pc->n_ids; i++) {
		_cleanup_free_ char *path = NULL;
		int r = file_of(s, pc->ids[i], &path, NULL);

		if (r == -ENOMEM)
			return err_set(e, r, "out of memory");
		if (r < 0)
			continue;
		r = read_file(path, out, e);
		if (r == -ENOENT)
			continue;
		if (r < 0)
			return r;
		any = true;
	}
	return any ? 0 : -ENOENT;
}

int certd_store_write(const struct certd_settings *s, const char *id, const void *pem, size_t len,
		      struct err *e)
{
	_cleanup_free_ char *path = NULL;
	mode_t mode = 0600;
	struct stat st;
	int r;

	r = file_of(s, id, &path, e);
	if (r < 0)
		return r;
	/* A preloaded file is the user's: it keeps its permission bits (a CA
	 * certificate others read stays readable). Its owner becomes certd's
	 * user, which cannot give files away. */
	if (certd_settings_preloaded(s, id) && stat(path, &st) == 0)
		mode = st.st_mode & 07777;
	return fs_write_atomic(path, pem, len, mode, FS_KEEP_OWNER, FS_KEEP_GROUP, e);
}

int certd_store_delete(const struct certd_settings *s, const char *id, struct err *e)
{
	_cleanup_free_ char *path = NULL;
	struct err inner = {0};
	int r;

	r = file_of(s, id, &path, &inner);
	if (r == -ENOENT)
		return 0; /* no homedir: nothing to delete */
	if (r < 0)
		return err_set(e, r, "%s", err_msg(&inner, r));
	if (unlink(path) < 0 && errno != ENOENT)
		return err_set(e, -errno, "%s: cannot delete: %s", path, strerror(errno));
	return 0;
}
