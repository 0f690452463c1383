/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fs.h"

static int write_all(int fd, const void *data, size_t len)
{
	const char *p = data;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* A path's directory, for fsync after rename: "." for "name", "/" for
 * "/name". Caller frees. */
static char *dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');

	if (!slash)
		return strdup(".");
	if (slash == path)
		return strdup("/");
	return strndup(path, (size_t)(slash - path));
}

static int fsync_dir(const char *dir)
{
	_cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	/* Some filesystems (certain FUSE and network ones) cannot sync a
	 * directory and say EINVAL; there is nothing more to do there. */
	if (fsync(fd) < 0 && errno != EINVAL)
		return -errno;
	return 0;
}

/*
 * The temporary is ".NAME.XXXXXX" next to the target, so the rename
 * never crosses a filesystem. mkostemp creates it 0600 (narrowed further
 * by the umask), and its final owner and mode are set before the first
 * byte is written: a secret is never readable by anyone it should not
 * be, not even for a moment. The owner is set first because chown may
 * clear set-id bits that the mode asks for.
 *
 * A crash before the rename leaves the target as it was (and possibly a
 * stale ".NAME.XXXXXX"); after it, the new content is complete because it
 * was fsynced first. Once the rename has happened, a failure to sync the
 * directory is still reported: the new content is in place but may not
 * survive a power loss.
 */
int fs_write_atomic(const char *path, const void *data, size_t len, mode_t mode, uid_t uid,
		    gid_t gid, struct err *e)
{
	_cleanup_free_ char *tmp = NULL, *dir = NULL;
	_cleanup_close_ int fd = -1;
	const char *base, *what;
	size_t dirlen;
	int r;

	if (!path || (len > 0 && !data))
		return err_set(e, -EINVAL, "%s: invalid arguments", strempty(path));
	base = strrchr(path, '/');
	base = base ? base + 1 : path;
	if (*base == '\0' || streq(base, ".") || streq(base, ".."))
		return err_set(e, -EISDIR, "%s: not a file name", path);
	dirlen = (size_t)(base - path);
	dir = dir_of(path);
	tmp = malloc(dirlen + 1 + strlen(base) + sizeof(".XXXXXX"));
	if (!dir || !tmp)
		return err_set(e, -ENOMEM, "%s: out of memory", path);
	memcpy(tmp, path, dirlen);
	tmp[dirlen] = '.';
	memcpy(tmp + dirlen + 1, base, strlen(base));
	memcpy(tmp + dirlen + 1 + strlen(base), ".XXXXXX", sizeof(".XXXXXX"));

	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return err_set(e, -errno, "%s: cannot create temporary file: %s", path,
			       strerror(errno));

	what = "set owner of";
	if ((uid != FS_KEEP_OWNER || gid != FS_KEEP_GROUP) && fchown(fd, uid, gid) < 0)
		goto fail_errno;
	what = "set mode of";
	if (fchmod(fd, mode & 07777) < 0)
		goto fail_errno;
	what = "write";
	r = write_all(fd, data, len);
	if (r < 0) {
		errno = -r;
		goto fail_errno;
	}
	what = "sync";
	if (fsync(fd) < 0)
		goto fail_errno;
	/* close() can report a deferred write error (NFS). */
	what = "write";
	if (close(TAKE_FD(fd)) < 0)
		goto fail_errno;
	if (rename(tmp, path) < 0) {
		r = -errno;
		(void)unlink(tmp);
		return err_set(e, r, "%s: cannot rename temporary file into place: %s", path,
			       strerror(-r));
	}
	r = fsync_dir(dir);
	if (r < 0)
		return err_set(e, r, "%s: cannot sync directory %s: %s", path, dir, strerror(-r));
	return 0;

fail_errno:
	r = -errno;
	(void)unlink(tmp);
	return err_set(e, r, "%s: cannot %s temporary file: %s", path, what, strerror(-r));
}

int fs_read_file(const char *path, size_t max, struct buf *out, struct err *e)
{
	_cleanup_close_ int fd = -1;
	size_t start = out->len, total = 0;
	struct stat st;
	char chunk[16384];
	int r = 0;

	fd = open(path, O_RDONLY | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return err_set(e, -errno, "%s: cannot open: %s", path, strerror(errno));
	/* A regular file says its size: refuse before reading anything. */
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (uintmax_t)st.st_size > max)
		return err_set(e, -EFBIG, "%s: file is larger than %zu bytes", path, max);
	for (;;) {
		/* Ask for one byte more than allowed, to see the excess. */
		size_t want = max - total < sizeof(chunk) ? max - total + 1 : sizeof(chunk);
		ssize_t n = read(fd, chunk, want);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = err_set(e, -errno, "%s: cannot read: %s", path, strerror(errno));
			break;
		}
		if (n == 0)
			break;
		if ((size_t)n > max - total) {
			r = err_set(e, -EFBIG, "%s: file is larger than %zu bytes", path, max);
			break;
		}
		total += (size_t)n;
		r = buf_append(out, chunk, (size_t)n);
		if (r == -E2BIG) {
			r = err_set(e, -EFBIG, "%s: file is larger than %zu bytes", path,
				    out->max - start);
			break;
		}
		if (r < 0) {
			r = err_set(e, r, "%s: cannot read: %s", path, strerror(-r));
			break;
		}
	}
	/* The file may be a key: leave no copy behind. */
	explicit_bzero(chunk, sizeof(chunk));
	if (r < 0 && out->data && out->len > start) {
		explicit_bzero(out->data + start, out->len - start);
		out->len = start;
		out->data[start] = '\0';
	}
	return r;
}

/* Give a directory we created (or were asked to fix) its owner, then its
 * mode: chown may clear the set-group-id bit. */
static int fix_dir(int fd, mode_t mode, uid_t uid, gid_t gid, const char **ret_what)
{
	*ret_what = "set owner of";
	if ((uid != FS_KEEP_OWNER || gid != FS_KEEP_GROUP) && fchown(fd, uid, gid) < 0)
		return -errno;
	*ret_what = "set mode of";
	if (fchmod(fd, mode & 07777) < 0)
		return -errno;
	return 0;
}

/*
 * Walks the path one component at a time with *at() calls, holding the
 * parent open, so a component swapped for a symlink mid-way cannot
 * redirect a chown/chmod. A new directory is created 0700 and opened
 * without following symlinks before its owner and mode are set; existing
 * components are followed like mkdir -p does (/var/run -> /run).
 */
/* "PATH: cannot WHAT directory[ PREFIX]: reason", naming the component
 * that failed (path up to end) unless it is the whole path. */
static int mkdir_fail(struct err *e, const char *path, size_t end, const char *what, int r)
{
	size_t i = end, len = strlen(path);

	while (i < len && path[i] == '/')
		i++;
	if (i == len || end == 0)
		return err_set(e, r, "%s: cannot %s directory: %s", path, what, strerror(-r));
	return err_set(e, r, "%s: cannot %s directory %.*s: %s", path, what, (int)end, path,
		       strerror(-r));
}

int fs_mkdir_p(const char *path, mode_t mode, uid_t uid, gid_t gid, bool fix_existing,
	       struct err *e)
{
	_cleanup_close_ int cur = -1;
	char name[NAME_MAX + 1];
	const char *what;
	size_t i = 0, len;
	bool created = false;
	int r;

	if (!path || *path == '\0')
		return err_set(e, -EINVAL, "%s: empty directory name", strempty(path));
	len = strlen(path);
	cur = open(path[0] == '/' ? "/" : ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (cur < 0)
		return mkdir_fail(e, path, 0, "open", -errno);

	while (i < len) {
		size_t first;
		int next;

		while (path[i] == '/')
			i++;
		if (i == len)
			break;
		first = i;
		while (i < len && path[i] != '/')
			i++;
		if (i - first > NAME_MAX)
			return mkdir_fail(e, path, i, "create", -ENAMETOOLONG);
		memcpy(name, path + first, i - first);
		name[i - first] = '\0';

		created = mkdirat(cur, name, 0700) == 0;
		if (!created && errno != EEXIST)
			return mkdir_fail(e, path, i, "create", -errno);
		if (created)
			next = openat(cur, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		else
			next = openat(cur, name, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (next < 0)
			return mkdir_fail(e, path, i, "create", -errno);
		close(cur);
		cur = next;
		if (created) {
			r = fix_dir(cur, mode, uid, gid, &what);
			if (r < 0)
				return mkdir_fail(e, path, i, what, r);
		}
	}

	if (!created && fix_existing) {
		_cleanup_close_ int fd = openat(cur, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

		if (fd < 0)
			return mkdir_fail(e, path, len, "open", -errno);
		r = fix_dir(fd, mode, uid, gid, &what);
		if (r < 0)
			return mkdir_fail(e, path, len, what, r);
	}
	return 0;
}

char *fs_path_join(const char *a, const char *b)
{
	size_t la = strlen(a), lb;
	char *ret;

	while (la > 0 && a[la - 1] == '/')
		la--;
	while (*b == '/')
		b++;
	lb = strlen(b);
	/* "/" joined with "x" is "/x"; "" joined with "x" is "x". */
	if (la == 0 && a[0] != '/')
		return strdup(b);
	ret = malloc(la + 1 + lb + 1);
	if (!ret)
		return NULL;
	memcpy(ret, a, la);
	ret[la] = '/';
	memcpy(ret + la + 1, b, lb + 1);
	return ret;
}
