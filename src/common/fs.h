/* SPDX-License-Identifier: MIT */
/*
 * Files that must survive a crash.
 *
 * fs_write_atomic() writes to a temporary file in the same directory
 * (O_CLOEXEC|O_EXCL, created with the final mode), fsyncs it, sets owner
 * and mode, renames it over the target and fsyncs the directory. A reader
 * sees either the old file or the new one, never a torn one; on failure
 * the temporary is removed and the target is untouched.
 */
#ifndef EDGEID_FS_H
#define EDGEID_FS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "common/buf.h"
#include "common/err.h"

#define FS_KEEP_OWNER ((uid_t)-1)
#define FS_KEEP_GROUP ((gid_t)-1)

/* Write len bytes to path atomically with mode and owner (FS_KEEP_OWNER /
 * FS_KEEP_GROUP leave the creating process's). Returns 0 or a negative
 * errno, with "PATH: <what failed>: <reason>" in e. */
int fs_write_atomic(const char *path, const void *data, size_t len, mode_t mode, uid_t uid,
		    gid_t gid, struct err *e) _nodiscard_;

/* Read a whole file of at most max bytes into out (NUL-terminated).
 * -EFBIG when larger, otherwise the errno of open/read, with a message. */
int fs_read_file(const char *path, size_t max, struct buf *out, struct err *e) _nodiscard_;

/* mkdir -p: create path and missing parents. Directories it creates get
 * mode, uid and gid; existing ones are left alone unless fix_existing,
 * in which case the last component's mode and owner are set. */
int fs_mkdir_p(const char *path, mode_t mode, uid_t uid, gid_t gid, bool fix_existing,
	       struct err *e) _nodiscard_;

/* Join two path parts with exactly one '/' between them. Caller frees.
 * NULL on -ENOMEM. */
char *fs_path_join(const char *a, const char *b);

#endif
