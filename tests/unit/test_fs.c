/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/fs.h"

#define NOBODY 65534

/* Each test gets a fresh directory, removed afterwards. */
struct fixture {
	char dir[64];
};

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	return remove(path) < 0 ? -1 : 0;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/edgeid-test-fs-XXXXXX");
	if (!mkdtemp(f->dir)) {
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	chmod(f->dir, 0700);
	nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

/* dir/name in a static buffer (two slots, so two paths can be live). */
static const char *at(const struct fixture *f, const char *name)
{
	static char slots[2][512];
	static int which;
	char *p = slots[which];

	which = !which;
	snprintf(p, sizeof(slots[0]), "%s/%s", f->dir, name);
	return p;
}

/* The directory's entries, sorted and joined with ',' . */
static void list_dir(const char *dir, char *out, size_t size)
{
	struct dirent **names;
	int n = scandir(dir, &names, NULL, alphasort);
	size_t used = 0;

	assert_true(n >= 0);
	out[0] = '\0';
	for (int i = 0; i < n; i++) {
		if (!streq(names[i]->d_name, ".") && !streq(names[i]->d_name, "..")) {
			int w = snprintf(out + used, size - used, "%s%s", used ? "," : "",
					 names[i]->d_name);
			assert_true(w > 0 && (size_t)w < size - used);
			used += (size_t)w;
		}
		free(names[i]);
	}
	free(names);
}

static void assert_file(const char *path, const void *data, size_t len, mode_t mode)
{
	_cleanup_buf_ struct buf b = {0};
	struct err e = {0};
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, mode);
	buf_init(&b, 0);
	assert_int_equal(fs_read_file(path, 1 << 20, &b, &e), 0);
	assert_int_equal(b.len, len);
	assert_memory_equal(buf_str(&b), data, len);
}

static void test_write_atomic_content_and_mode(void **state)
{
	static const mode_t umasks[] = {0, 077};
	static const mode_t modes[] = {0600, 0644, 0400};
	static const char data[] = "key\0material\n";
	struct fixture *f = *state;
	mode_t saved = umask(0);

	for (size_t u = 0; u < ARRAY_SIZE(umasks); u++) {
		umask(umasks[u]);
		for (size_t m = 0; m < ARRAY_SIZE(modes); m++) {
			struct err e = {0};
			char name[32];

			snprintf(name, sizeof(name), "f-%03o-%03o", (unsigned)umasks[u],
				 (unsigned)modes[m]);
			assert_int_equal(fs_write_atomic(at(f, name), data, sizeof(data), modes[m],
							 FS_KEEP_OWNER, FS_KEEP_GROUP, &e),
					 0);
			assert_false(err_isset(&e));
			assert_file(at(f, name), data, sizeof(data), modes[m]);
		}
	}
	umask(saved);

	/* An empty file. */
	assert_int_equal(
	    fs_write_atomic(at(f, "empty"), NULL, 0, 0640, FS_KEEP_OWNER, FS_KEEP_GROUP, NULL), 0);
	assert_file(at(f, "empty"), "", 0, 0640);
}

static void test_write_atomic_replace_leaves_no_temp(void **state)
{
	struct fixture *f = *state;
	const char *target = at(f, "target");
	char listing[256];
	struct err e = {0};
	struct stat before, after;

	assert_int_equal(fs_write_atomic(target, "old", 3, 0644, FS_KEEP_OWNER, FS_KEEP_GROUP, &e),
			 0);
	assert_int_equal(stat(target, &before), 0);
	/* A read-only target is replaced too: rename needs the directory. */
	assert_int_equal(chmod(target, 0400), 0);
	assert_int_equal(
	    fs_write_atomic(target, "new content", 11, 0600, FS_KEEP_OWNER, FS_KEEP_GROUP, &e), 0);
	assert_file(target, "new content", 11, 0600);
	/* A new inode took its place; nothing else is left in the directory. */
	assert_int_equal(stat(target, &after), 0);
	assert_int_not_equal(before.st_ino, after.st_ino);
	list_dir(f->dir, listing, sizeof(listing));
	assert_string_equal(listing, "target");

	/* A relative path: the temporary goes to the current directory. */
	{
		char cwd[512];

		assert_non_null(getcwd(cwd, sizeof(cwd)));
		assert_int_equal(chdir(f->dir), 0);
		assert_int_equal(
		    fs_write_atomic("rel", "r", 1, 0644, FS_KEEP_OWNER, FS_KEEP_GROUP, &e), 0);
		assert_int_equal(chdir(cwd), 0);
	}
	assert_file(at(f, "rel"), "r", 1, 0644);
	list_dir(f->dir, listing, sizeof(listing));
	assert_string_equal(listing, "rel,target");
}

static void test_write_atomic_unwritable_dir_keeps_old(void **state)
{
	struct fixture *f = *state;
	char path[600], expect[800], listing[256];
	struct err e = {0};

	if (geteuid() == 0) {
		/* Root ignores directory permissions: make the parent a
		 * regular file instead, and check that file survives. */
		assert_int_equal(fs_write_atomic(at(f, "old"), "old", 3, 0644, FS_KEEP_OWNER,
						 FS_KEEP_GROUP, NULL),
				 0);
		snprintf(path, sizeof(path), "%s/new", at(f, "old"));
		assert_int_equal(
		    fs_write_atomic(path, "new", 3, 0644, FS_KEEP_OWNER, FS_KEEP_GROUP, &e),
		    -ENOTDIR);
		snprintf(expect, sizeof(expect),
			 "%s: cannot create temporary file: Not a directory", path);
		assert_string_equal(e.msg, expect);
		assert_int_equal(e.code, -ENOTDIR);
		assert_file(at(f, "old"), "old", 3, 0644);
	} else {
		const char *target = at(f, "target");

		assert_int_equal(
		    fs_write_atomic(target, "old", 3, 0644, FS_KEEP_OWNER, FS_KEEP_GROUP, NULL), 0);
		assert_int_equal(chmod(f->dir, 0555), 0);
		assert_int_equal(
		    fs_write_atomic(target, "new", 3, 0644, FS_KEEP_OWNER, FS_KEEP_GROUP, &e),
		    -EACCES);
		assert_int_equal(chmod(f->dir, 0700), 0);
		snprintf(expect, sizeof(expect),
			 "%s: cannot create temporary file: Permission denied", target);
		assert_string_equal(e.msg, expect);
		assert_file(target, "old", 3, 0644);
	}
	list_dir(f->dir, listing, sizeof(listing));
	assert_string_equal(listing, geteuid() == 0 ? "old" : "target");

	/* A missing directory. */
	err_clear(&e);
	assert_int_equal(
	    fs_write_atomic(at(f, "nope/x"), "x", 1, 0644, FS_KEEP_OWNER, FS_KEEP_GROUP, &e),
	    -ENOENT);
	snprintf(expect, sizeof(expect),
		 "%s: cannot create temporary file: No such file or directory", at(f, "nope/x"));
	assert_string_equal(e.msg, expect);
}

/* A failure after the temporary exists: the file size limit stops the
 * write (root included). The temporary is removed, the old file kept. */
static void test_write_atomic_write_failure_removes_temp(void **state)
{
	static char big[65536];
	struct fixture *f = *state;
	const char *target = at(f, "target");
	char expect[800], listing[256];
	struct rlimit saved, small;
	struct err e = {0};
	void (*old_handler)(int);
	int r;

	memset(big, 'x', sizeof(big));
	assert_int_equal(
	    fs_write_atomic(target, "old content", 11, 0600, FS_KEEP_OWNER, FS_KEEP_GROUP, NULL),
	    0);

	assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved), 0);
	small = saved;
	small.rlim_cur = 4096;
	old_handler = signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
	r = fs_write_atomic(target, big, sizeof(big), 0600, FS_KEEP_OWNER, FS_KEEP_GROUP, &e);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &saved), 0);
	signal(SIGXFSZ, old_handler);

	assert_int_equal(r, -EFBIG);
	snprintf(expect, sizeof(expect), "%s: cannot write temporary file: File too large", target);
	assert_string_equal(e.msg, expect);
	assert_file(target, "old content", 11, 0600);
	list_dir(f->dir, listing, sizeof(listing));
	assert_string_equal(listing, "target");
}

static void test_write_atomic_rename_failure_removes_temp(void **state)
{
	struct fixture *f = *state;
	const char *target = at(f, "adir");
	char expect[800], listing[256];
	struct err e = {0};
	struct stat st;

	/* A directory where the file should go: the rename fails. */
	assert_int_equal(mkdir(target, 0755), 0);
	assert_int_equal(fs_write_atomic(target, "x", 1, 0644, FS_KEEP_OWNER, FS_KEEP_GROUP, &e),
			 -EISDIR);
	snprintf(expect, sizeof(expect),
		 "%s: cannot rename temporary file into place: Is a directory", target);
	assert_string_equal(e.msg, expect);
	assert_int_equal(stat(target, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	list_dir(f->dir, listing, sizeof(listing));
	assert_string_equal(listing, "adir");

	/* A path that names no file at all. */
	err_clear(&e);
	snprintf(expect, sizeof(expect), "%s/", f->dir);
	assert_int_equal(fs_write_atomic(expect, "x", 1, 0644, FS_KEEP_OWNER, FS_KEEP_GROUP, &e),
			 -EISDIR);
	assert_true(strstr(e.msg, ": not a file name") != NULL);
}

static void test_write_atomic_owner(void **state)
{
	struct fixture *f = *state;
	struct stat st;
	struct err e = {0};

	if (geteuid() != 0) {
		char expect[800], listing[256];

		/* What can be checked without root: the refusal to give a
		 * file away (to root here, surely not the caller). */
		assert_int_equal(fs_write_atomic(at(f, "owned"), "s", 1, 0640, 0, 0, &e), -EPERM);
		snprintf(expect, sizeof(expect),
			 "%s: cannot set owner of temporary file: Operation not permitted",
			 at(f, "owned"));
		assert_string_equal(e.msg, expect);
		list_dir(f->dir, listing, sizeof(listing));
		assert_string_equal(listing, "");
		skip();
		return;
	}
	assert_int_equal(fs_write_atomic(at(f, "owned"), "s", 1, 0640, NOBODY, NOBODY, &e), 0);
	assert_int_equal(stat(at(f, "owned"), &st), 0);
	assert_int_equal(st.st_uid, NOBODY);
	assert_int_equal(st.st_gid, NOBODY);
	assert_int_equal(st.st_mode & 07777, 0640);

	/* Group only; the owner stays the creator's. */
	assert_int_equal(fs_write_atomic(at(f, "group"), "s", 1, 0640, FS_KEEP_OWNER, NOBODY, &e),
			 0);
	assert_int_equal(stat(at(f, "group"), &st), 0);
	assert_int_equal(st.st_uid, 0);
	assert_int_equal(st.st_gid, NOBODY);

	/* Directories too, every one that is created. */
	assert_int_equal(fs_mkdir_p(at(f, "o/p"), 0750, NOBODY, NOBODY, false, &e), 0);
	assert_int_equal(stat(at(f, "o"), &st), 0);
	assert_int_equal(st.st_uid, NOBODY);
	assert_int_equal(st.st_gid, NOBODY);
	assert_int_equal(st.st_mode & 07777, 0750);
	assert_int_equal(stat(at(f, "o/p"), &st), 0);
	assert_int_equal(st.st_uid, NOBODY);
	assert_int_equal(st.st_mode & 07777, 0750);

	/* An existing directory changes owner only with fix_existing. */
	assert_int_equal(mkdir(at(f, "mine"), 0700), 0);
	assert_int_equal(fs_mkdir_p(at(f, "mine"), 0750, NOBODY, NOBODY, false, &e), 0);
	assert_int_equal(stat(at(f, "mine"), &st), 0);
	assert_int_equal(st.st_uid, 0);
	assert_int_equal(fs_mkdir_p(at(f, "mine"), 0750, NOBODY, NOBODY, true, &e), 0);
	assert_int_equal(stat(at(f, "mine"), &st), 0);
	assert_int_equal(st.st_uid, NOBODY);
	assert_int_equal(st.st_gid, NOBODY);
	assert_int_equal(st.st_mode & 07777, 0750);
}

/*
 * A child replaces the file in a loop, alternating two contents of
 * different sizes, and is killed at a random moment. Whatever the moment,
 * the file holds one whole content. (SIGKILL shows the rename is atomic;
 * surviving power loss also rests on the fsyncs, which a test cannot
 * observe.)
 */
static void test_write_atomic_crash_safety(void **state)
{
	const size_t len_a = 1536 * 1024, len_b = 3 * 1024 * 1024;
	struct fixture *f = *state;
	const char *target = at(f, "big");
	_cleanup_free_ uint8_t *a = malloc(len_a), *b = malloc(len_b);
	unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
	int seen_a = 0, seen_b = 0;

	assert_non_null(a);
	assert_non_null(b);
	for (size_t i = 0; i < len_a; i++)
		a[i] = (uint8_t)('a' + i % 26);
	for (size_t i = 0; i < len_b; i++)
		b[i] = (uint8_t)('A' + i % 23);
	assert_int_equal(
	    fs_write_atomic(target, a, len_a, 0600, FS_KEEP_OWNER, FS_KEEP_GROUP, NULL), 0);
	print_message("# seed %u\n", seed);

	for (int iter = 0; iter < 20; iter++) {
		_cleanup_buf_ struct buf got = {0};
		struct timespec delay = {0, 0};
		struct err e = {0};
		int status;
		pid_t pid = fork();

		assert_true(pid >= 0);
		if (pid == 0) {
			for (unsigned k = 0;; k++) {
				int r = (k % 2)
					    ? fs_write_atomic(target, a, len_a, 0600, FS_KEEP_OWNER,
							      FS_KEEP_GROUP, NULL)
					    : fs_write_atomic(target, b, len_b, 0600, FS_KEEP_OWNER,
							      FS_KEEP_GROUP, NULL);
				if (r < 0)
					_exit(1);
			}
		}
		delay.tv_nsec = (long)(rand_r(&seed) % 40) * 1000000L;
		nanosleep(&delay, NULL);
		assert_int_equal(kill(pid, SIGKILL), 0);
		assert_int_equal(waitpid(pid, &status, 0), pid);
		/* Killed while still writing, not stopped by an error. */
		assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

		buf_init(&got, 8 * 1024 * 1024);
		assert_int_equal(fs_read_file(target, 8 * 1024 * 1024, &got, &e), 0);
		if (got.len == len_a && memcmp(got.data, a, len_a) == 0)
			seen_a++;
		else if (got.len == len_b && memcmp(got.data, b, len_b) == 0)
			seen_b++;
		else
			fail_msg("iteration %d: %zu bytes, neither old nor new content", iter,
				 got.len);
	}
	print_message("# old/new seen: %d/%d\n", seen_a, seen_b);
}

static void test_read_file_limits(void **state)
{
	struct fixture *f = *state;
	const char *path = at(f, "hundred");
	char data[100], expect[800];
	_cleanup_buf_ struct buf b = {0};
	struct err e = {0};

	memset(data, 'z', sizeof(data));
	assert_int_equal(
	    fs_write_atomic(path, data, sizeof(data), 0600, FS_KEEP_OWNER, FS_KEEP_GROUP, NULL), 0);
	buf_init(&b, 0);

	/* Exactly at the limit; the content is appended to what is there. */
	assert_int_equal(buf_append_str(&b, "pre:"), 0);
	assert_int_equal(fs_read_file(path, 100, &b, &e), 0);
	assert_int_equal(b.len, 104);
	assert_memory_equal(b.data, "pre:zzz", 7);
	assert_int_equal(b.data[104], '\0');

	/* One byte over: refused, the buffer as it was. */
	buf_reset(&b);
	assert_int_equal(buf_append_str(&b, "pre:"), 0);
	assert_int_equal(fs_read_file(path, 99, &b, &e), -EFBIG);
	snprintf(expect, sizeof(expect), "%s: file is larger than 99 bytes", path);
	assert_string_equal(e.msg, expect);
	assert_string_equal(buf_str(&b), "pre:");

	/* A file with no size to ask (a device): the read loop stops it. */
	err_clear(&e);
	assert_int_equal(fs_read_file("/dev/zero", 100000, &b, &e), -EFBIG);
	assert_string_equal(e.msg, "/dev/zero: file is larger than 100000 bytes");
	assert_string_equal(buf_str(&b), "pre:");
	err_clear(&e);
	assert_int_equal(fs_read_file("/dev/zero", 0, &b, &e), -EFBIG);
	assert_string_equal(e.msg, "/dev/zero: file is larger than 0 bytes");

	/* The buffer's own maximum is a limit too. */
	{
		_cleanup_buf_ struct buf small = {0};

		buf_init(&small, 50);
		err_clear(&e);
		assert_int_equal(fs_read_file(path, 1000, &small, &e), -EFBIG);
		snprintf(expect, sizeof(expect), "%s: file is larger than 50 bytes", path);
		assert_string_equal(e.msg, expect);
		assert_int_equal(small.len, 0);
	}

	/* Errors from open and read. */
	err_clear(&e);
	assert_int_equal(fs_read_file(at(f, "missing"), 10, &b, &e), -ENOENT);
	snprintf(expect, sizeof(expect), "%s: cannot open: No such file or directory",
		 at(f, "missing"));
	assert_string_equal(e.msg, expect);
	err_clear(&e);
	assert_int_equal(fs_read_file(f->dir, 10, &b, &e), -EISDIR);
	snprintf(expect, sizeof(expect), "%s: cannot read: Is a directory", f->dir);
	assert_string_equal(e.msg, expect);
	assert_string_equal(buf_str(&b), "pre:");
}

static void test_read_file_large_and_empty(void **state)
{
	const size_t len = 200000; /* several read chunks */
	struct fixture *f = *state;
	_cleanup_free_ char *data = malloc(len);
	_cleanup_buf_ struct buf b = {0};

	assert_non_null(data);
	for (size_t i = 0; i < len; i++)
		data[i] = (char)(i * 7 % 251);
	assert_int_equal(
	    fs_write_atomic(at(f, "large"), data, len, 0600, FS_KEEP_OWNER, FS_KEEP_GROUP, NULL),
	    0);
	buf_init(&b, len);
	assert_int_equal(fs_read_file(at(f, "large"), len, &b, NULL), 0);
	assert_int_equal(b.len, len);
	assert_memory_equal(b.data, data, len);

	buf_free(&b);
	buf_init(&b, 0);
	assert_int_equal(
	    fs_write_atomic(at(f, "empty"), "", 0, 0600, FS_KEEP_OWNER, FS_KEEP_GROUP, NULL), 0);
	assert_int_equal(fs_read_file(at(f, "empty"), 0, &b, NULL), 0);
	assert_int_equal(b.len, 0);
	assert_string_equal(buf_str(&b), "");
}

static mode_t mode_of(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	return st.st_mode & 07777;
}

static void test_mkdir_p_modes(void **state)
{
	struct fixture *f = *state;
	mode_t saved = umask(077);
	char expect[800];
	struct err e = {0};

	/* Every created level gets the mode, whatever the umask. */
	assert_int_equal(fs_mkdir_p(at(f, "a/b/c"), 0755, FS_KEEP_OWNER, FS_KEEP_GROUP, false, &e),
			 0);
	assert_int_equal(mode_of(at(f, "a")), 0755);
	assert_int_equal(mode_of(at(f, "a/b")), 0755);
	assert_int_equal(mode_of(at(f, "a/b/c")), 0755);
	/* Again: nothing to do. */
	assert_int_equal(fs_mkdir_p(at(f, "a/b/c"), 0700, FS_KEEP_OWNER, FS_KEEP_GROUP, false, &e),
			 0);
	assert_int_equal(mode_of(at(f, "a/b/c")), 0755);

	umask(0);
	assert_int_equal(fs_mkdir_p(at(f, "u"), 0750, FS_KEEP_OWNER, FS_KEEP_GROUP, false, &e), 0);
	assert_int_equal(mode_of(at(f, "u")), 0750);
	umask(saved);

	/* Existing directories are left alone... */
	assert_int_equal(mkdir(at(f, "x"), 0700), 0);
	assert_int_equal(chmod(at(f, "x"), 0700), 0);
	assert_int_equal(fs_mkdir_p(at(f, "x/y"), 0711, FS_KEEP_OWNER, FS_KEEP_GROUP, false, &e),
			 0);
	assert_int_equal(mode_of(at(f, "x")), 0700);
	assert_int_equal(mode_of(at(f, "x/y")), 0711);
	/* ...unless fix_existing, which touches only the last one. */
	assert_int_equal(chmod(at(f, "x/y"), 0700), 0);
	assert_int_equal(fs_mkdir_p(at(f, "x/y"), 0751, FS_KEEP_OWNER, FS_KEEP_GROUP, true, &e), 0);
	assert_int_equal(mode_of(at(f, "x")), 0700);
	assert_int_equal(mode_of(at(f, "x/y")), 0751);

	/* Repeated and trailing slashes. */
	snprintf(expect, sizeof(expect), "%s//m///n/", f->dir);
	assert_int_equal(fs_mkdir_p(expect, 0700, FS_KEEP_OWNER, FS_KEEP_GROUP, false, &e), 0);
	assert_int_equal(mode_of(at(f, "m/n")), 0700);
	assert_false(err_isset(&e));
}

static void test_mkdir_p_errors(void **state)
{
	struct fixture *f = *state;
	char expect[800];
	struct err e = {0};

	assert_int_equal(
	    fs_write_atomic(at(f, "file"), "x", 1, 0644, FS_KEEP_OWNER, FS_KEEP_GROUP, NULL), 0);
	/* A file in the middle of the path is named. */
	assert_int_equal(
	    fs_mkdir_p(at(f, "file/sub/dir"), 0755, FS_KEEP_OWNER, FS_KEEP_GROUP, false, &e),
	    -ENOTDIR);
	snprintf(expect, sizeof(expect), "%s: cannot create directory %s: Not a directory",
		 at(f, "file/sub/dir"), at(f, "file"));
	assert_string_equal(e.msg, expect);
	/* A file at the end of it. */
	err_clear(&e);
	assert_int_equal(fs_mkdir_p(at(f, "file/"), 0755, FS_KEEP_OWNER, FS_KEEP_GROUP, false, &e),
			 -ENOTDIR);
	snprintf(expect, sizeof(expect), "%s: cannot create directory: Not a directory",
		 at(f, "file/"));
	assert_string_equal(e.msg, expect);
	/* A component longer than any file name. */
	{
		char longname[300];

		memset(longname, 'n', sizeof(longname) - 1);
		longname[sizeof(longname) - 1] = '\0';
		err_clear(&e);
		assert_int_equal(
		    fs_mkdir_p(at(f, longname), 0755, FS_KEEP_OWNER, FS_KEEP_GROUP, false, &e),
		    -ENAMETOOLONG);
		snprintf(expect, sizeof(expect), "%s: cannot create directory: File name too long",
			 at(f, longname));
		assert_string_equal(e.msg, expect);
	}
	err_clear(&e);
	assert_int_equal(fs_mkdir_p("", 0755, FS_KEEP_OWNER, FS_KEEP_GROUP, false, &e), -EINVAL);
	assert_string_equal(e.msg, ": empty directory name");
	assert_file(at(f, "file"), "x", 1, 0644);
}

static void test_path_join(void **state)
{
	static const char *const cases[][3] = {
	    {"/etc", "edgeid", "/etc/edgeid"},
	    {"/etc/", "edgeid", "/etc/edgeid"},
	    {"/etc//", "//edgeid", "/etc/edgeid"},
	    {"/", "run", "/run"},
	    {"/", "/run", "/run"},
	    {"rel", "a/b/", "rel/a/b/"},
	    {"", "name", "name"},
	    {"dir", "", "dir/"},
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		_cleanup_free_ char *p = fs_path_join(cases[i][0], cases[i][1]);

		assert_non_null(p);
		assert_string_equal(p, cases[i][2]);
	}
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
	    T(test_write_atomic_content_and_mode),
	    T(test_write_atomic_replace_leaves_no_temp),
	    T(test_write_atomic_unwritable_dir_keeps_old),
	    T(test_write_atomic_write_failure_removes_temp),
	    T(test_write_atomic_rename_failure_removes_temp),
	    T(test_write_atomic_owner),
	    T(test_write_atomic_crash_safety),
	    T(test_read_file_limits),
	    T(test_read_file_large_and_empty),
	    T(test_mkdir_p_modes),
	    T(test_mkdir_p_errors),
	    T(test_path_join),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
