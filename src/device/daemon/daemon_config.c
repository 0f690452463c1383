/* SPDX-License-Identifier: MIT */
/*
 * Reading and merging a daemon's config.toml and config.d/ (see
 * daemon_config.h for the rules).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/json.h"
#include "common/macro.h"
#include "common/toml.h"
#include "device/daemon/daemon_config.h"

struct origin {
	const json_t *v; /* holds a reference, so the address stays ours */
	size_t file;
	unsigned line, col;
};

struct daemon_config {
	json_t *root;
	char **files;
	size_t n_files;
	struct origin *origins;
	size_t n_origins, cap_origins;
};

void daemon_config_free(struct daemon_config *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n_origins; i++)
		json_decref((json_t *)c->origins[i].v);
	free(c->origins);
	for (size_t i = 0; i < c->n_files; i++)
		free(c->files[i]);
	free(c->files);
	json_decref(c->root);
	free(c);
}

json_t *daemon_config_root(const struct daemon_config *c)
{
	return c->root;
}

size_t daemon_config_n_files(const struct daemon_config *c)
{
	return c->n_files;
}

const char *daemon_config_file(const struct daemon_config *c, size_t i)
{
	return i < c->n_files ? c->files[i] : NULL;
}

static int add_origin(struct daemon_config *c, json_t *v, const struct toml_pos *pos)
{
	/* true, false and null are shared singletons: no location for them. */
	if (json_is_boolean(v) || json_is_null(v))
		return 0;
	if (c->n_origins == c->cap_origins) {
		size_t cap = c->cap_origins ? c->cap_origins * 2 : 64;
		struct origin *o = realloc(c->origins, cap * sizeof(*o));

		if (!o)
			return -ENOMEM;
		c->origins = o;
		c->cap_origins = cap;
	}
	c->origins[c->n_origins++] = (struct origin){
	    .v = json_incref(v), .file = c->n_files - 1, .line = pos->line, .col = pos->col};
	return 0;
}

/* TOML tree -> JSON, recording where every value was written. The depth is
 * bounded by the TOML parser (TOML_MAX_DEPTH). */
static int convert(struct daemon_config *c, const struct toml_value *tv, json_t **ret,
		   struct err *e)
{
	const char *file = c->files[c->n_files - 1];
	_cleanup_json_ json_t *v = NULL;
	int r;

	switch (tv->type) {
	case TOML_STRING:
		if (memchr(tv->str.ptr, '\0', tv->str.len))
			return err_set(e, -EINVAL,
				       "%s:%u:%u: strings containing NUL characters are not "
				       "supported",
				       file, tv->pos.line, tv->pos.col);
		v = json_stringn(tv->str.ptr, tv->str.len);
		break;
	case TOML_INTEGER:
		v = json_integer((json_int_t)tv->integer);
		break;
	case TOML_FLOAT:
		if (!isfinite(tv->flt))
			return err_set(e, -EINVAL, "%s:%u:%u: inf and nan are not supported", file,
				       tv->pos.line, tv->pos.col);
		v = json_real(tv->flt);
		break;
	case TOML_BOOL:
		v = json_boolean(tv->boolean);
		break;
	case TOML_DATETIME:
	case TOML_DATETIME_LOCAL:
	case TOML_DATE_LOCAL:
	case TOML_TIME_LOCAL:
		v = json_string(tv->datetime);
		break;
	case TOML_ARRAY:
		v = json_array();
		for (size_t i = 0; v && i < tv->array.n; i++) {
			json_t *item;

			r = convert(c, tv->array.items[i], &item, e);
			if (r < 0)
				return r;
			if (json_array_append_new(v, item) < 0)
				return err_set(e, -ENOMEM, "%s: out of memory", file);
		}
		break;
	case TOML_TABLE:
		v = json_object();
		for (size_t i = 0; v && i < tv->table.n; i++) {
			const struct toml_kv *kv = &tv->table.items[i];
			json_t *item;

			if (memchr(kv->key, '\0', kv->keylen))
				return err_set(e, -EINVAL,
					       "%s:%u:%u: keys containing NUL characters are not "
					       "supported",
					       file, kv->key_pos.line, kv->key_pos.col);
			r = convert(c, kv->value, &item, e);
			if (r < 0)
				return r;
			if (json_object_set_new(v, kv->key, item) < 0)
				return err_set(e, -ENOMEM, "%s: out of memory", file);
		}
		break;
	}
	if (!v)
		return err_set(e, -ENOMEM, "%s: out of memory", file);
	r = add_origin(c, v, &tv->pos);
	if (r < 0)
		return err_set(e, r, "%s: out of memory", file);
	*ret = TAKE_PTR(v);
	return 0;
}

/* Merge patch into base (both objects) by aziot's rules. */
static int merge(json_t *base, json_t *patch)
{
	const char *key;
	json_t *pv;

	json_object_foreach (patch, key, pv) {
		json_t *bv = json_object_get(base, key);

		if (json_is_object(bv) && json_is_object(pv)) {
			int r = merge(bv, pv);

			if (r < 0)
				return r;
		} else if (json_is_array(bv) && json_is_array(pv)) {
			if (json_array_extend(bv, pv) < 0)
				return -ENOMEM;
		} else if (json_object_set(base, key, pv) < 0) {
			return -ENOMEM;
		}
	}
	return 0;
}

static struct daemon_config *config_new(void)
{
	struct daemon_config *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->root = json_object();
	if (!c->root) {
		free(c);
		return NULL;
	}
	return c;
}

/* Add one parsed document (file name for messages) to c. */
static int config_add(struct daemon_config *c, const char *name, const struct toml_value *doc,
		      struct err *e)
{
	_cleanup_json_ json_t *j = NULL;
	char **files;
	int r;

	files = realloc(c->files, (c->n_files + 1) * sizeof(*files));
	if (!files)
		return err_set(e, -ENOMEM, "%s: out of memory", name);
	c->files = files;
	c->files[c->n_files] = strdup(name);
	if (!c->files[c->n_files])
		return err_set(e, -ENOMEM, "%s: out of memory", name);
	c->n_files++;

	r = convert(c, doc, &j, e);
	if (r < 0)
		return r;
	if (merge(c->root, j) < 0)
		return err_set(e, -ENOMEM, "%s: out of memory", name);
	return 0;
}

int daemon_config_load_texts(const char *const *names, const char *const *texts, size_t n,
			     struct daemon_config **ret, struct err *e)
{
	struct daemon_config *c = config_new();
	int r;

	if (!c)
		return err_set(e, -ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		_cleanup_toml_ struct toml_value *doc = NULL;

		r = toml_parse(texts[i], strlen(texts[i]), names[i], &doc, e);
		if (r >= 0)
			r = config_add(c, names[i], doc, e);
		if (r < 0) {
			daemon_config_free(c);
			return r;
		}
	}
	*ret = c;
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_names(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

/* The config.d files in merge order. *ret_n is 0 when dir is missing. */
static int list_dir(const char *dir, char ***ret, size_t *ret_n, struct err *e)
{
	DIR *d;
	struct dirent *de;
	char **names = NULL;
	size_t n = 0;
	int r = 0;

	*ret = NULL;
	*ret_n = 0;
	d = opendir(dir);
	if (!d) {
		if (errno == ENOENT)
			return 0;
		return err_set(e, -errno, "%s: cannot read directory: %s", dir, strerror(errno));
	}
	while ((errno = 0, de = readdir(d))) {
		size_t len = strlen(de->d_name);
		struct stat st;
		char **grown;
		char *path;

		/* "x.toml": an extension after a non-empty stem, as aziot's
		 * Path::extension() sees it. */
		if (len <= 5 || !streq(de->d_name + len - 5, ".toml"))
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISREG(st.st_mode))
			continue;
		grown = realloc(names, (n + 1) * sizeof(*names));
		path = grown ? malloc(strlen(dir) + 1 + len + 1) : NULL;
		if (!path) {
			if (grown)
				names = grown;
			r = err_set(e, -ENOMEM, "%s: out of memory", dir);
			goto out;
		}
		names = grown;
		memcpy(path, dir, strlen(dir));
		path[strlen(dir)] = '/';
		memcpy(path + strlen(dir) + 1, de->d_name, len + 1);
		names[n++] = path;
	}
	if (errno != 0)
		r = err_set(e, -errno, "%s: cannot read directory: %s", dir, strerror(errno));
out:
	closedir(d);
	if (r < 0) {
		free_names(names, n);
		return r;
	}
	if (n > 1)
		qsort(names, n, sizeof(*names), cmp_str);
	*ret = names;
	*ret_n = n;
	return 0;
}

static int load_file(struct daemon_config *c, const char *path, bool missing_ok, struct err *e)
{
	_cleanup_toml_ struct toml_value *doc = NULL;
	struct err e2 = {0};
	int r;

	r = toml_parse_file(path, &doc, &e2);
	if (r == -ENOENT && missing_ok)
		return 0;
	if (r < 0)
		return err_set(e, r, "%s", err_msg(&e2, r));
	return config_add(c, path, doc, e);
}

int daemon_config_load(const char *file, const char *dir, struct daemon_config **ret, struct err *e)
{
	struct daemon_config *c = config_new();
	char **names = NULL;
	size_t n = 0;
	int r;

	if (!c)
		return err_set(e, -ENOMEM, "out of memory");
	r = file ? load_file(c, file, true, e) : 0;
	if (r >= 0 && dir)
		r = list_dir(dir, &names, &n, e);
	for (size_t i = 0; r >= 0 && i < n; i++)
		r = load_file(c, names[i], false, e);
	free_names(names, n);
	if (r < 0) {
		daemon_config_free(c);
		return r;
	}
	*ret = c;
	return 0;
}

const char *daemon_config_where(const struct daemon_config *c, const json_t *v, char *buf, size_t n)
{
	if (!v)
		return NULL;
	for (size_t i = 0; i < c->n_origins; i++) {
		const struct origin *o = &c->origins[i];

		if (o->v == v) {
			snprintf(buf, n, "%s:%u:%u", c->files[o->file], o->line, o->col);
			return buf;
		}
	}
	return NULL;
}

int daemon_config_error(const struct daemon_config *c, const json_t *v, const char *path,
			struct err *e, int code, const char *fmt, ...)
{
	char where[512], msg[ERR_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (daemon_config_where(c, v, where, sizeof(where)))
		return err_set(e, code, "%s: %s: %s", where, path, msg);
	return err_set(e, code, "%s: %s", path, msg);
}

/* Put the location of the value at path (when there is one) in front of
 * the accessor's message. */
static int located(const struct daemon_config *c, const char *path, int r, struct err *inner,
		   struct err *e)
{
	char where[512];
	json_t *v = NULL;

	if (json_get_value(c->root, path, &v, NULL) == 0 &&
	    daemon_config_where(c, v, where, sizeof(where)))
		return err_set(e, r, "%s: %s", where, err_msg(inner, r));
	return err_set(e, r, "%s", err_msg(inner, r));
}

int daemon_config_get_string_opt(const struct daemon_config *c, const char *path, const char **ret,
				 struct err *e)
{
	struct err inner = {0};
	int r = json_get_string_opt(c->root, path, ret, &inner);

	return r < 0 ? located(c, path, r, &inner, e) : 0;
}

int daemon_config_get_int_opt(const struct daemon_config *c, const char *path, int64_t min,
			      int64_t max, int64_t def, int64_t *ret, struct err *e)
{
	struct err inner = {0};
	int r = json_get_int_opt(c->root, path, min, max, def, ret, &inner);

	return r < 0 ? located(c, path, r, &inner, e) : 0;
}

int daemon_config_get_object_opt(const struct daemon_config *c, const char *path, json_t **ret,
				 struct err *e)
{
	struct err inner = {0};
	int r = json_get_object_opt(c->root, path, ret, &inner);

	return r < 0 ? located(c, path, r, &inner, e) : 0;
}

int daemon_config_get_array_opt(const struct daemon_config *c, const char *path, json_t **ret,
				struct err *e)
{
	struct err inner = {0};
	int r = json_get_array_opt(c->root, path, ret, &inner);

	return r < 0 ? located(c, path, r, &inner, e) : 0;
}
