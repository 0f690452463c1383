/* SPDX-License-Identifier: MIT */
/*
 * [[principal]] entries: which uid may use which ids (keyd: keys, certd:
 * certs), with aziot's wildmatch patterns.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "device/daemon/daemon.h"

/* Length of the UTF-8 sequence that starts with byte c (1 for anything
 * that is not a valid lead byte, so malformed input still advances). */
static size_t utf8_len(unsigned char c)
{
	if (c >= 0xf0 && c <= 0xf4)
		return 4;
	if (c >= 0xe0)
		return c <= 0xef ? 3 : 1;
	if (c >= 0xc2)
		return 2;
	return 1;
}

static size_t char_len(const char *s)
{
	size_t n = utf8_len((unsigned char)*s);

	for (size_t i = 1; i < n; i++)
		if (((unsigned char)s[i] & 0xc0) != 0x80)
			return 1;
	return n;
}

/* Iterative matcher with one backtrack point (the last '*'), which is
 * enough because '*' matches any run: linear in practice, never
 * exponential. */
bool daemon_wildmatch(const char *p, const char *s)
{
	const char *star_p = NULL, *star_s = NULL;

	while (*s) {
		if (*p == '*') {
			while (*p == '*')
				p++;
			star_p = p;
			star_s = s;
			continue;
		}
		if (*p == '?') {
			p++;
			s += char_len(s);
			continue;
		}
		if (*p && *p == *s) {
			p++;
			s++;
			continue;
		}
		if (!star_p)
			return false;
		/* Let the last '*' swallow one more character and retry. */
		star_s += char_len(star_s);
		s = star_s;
		p = star_p;
	}
	while (*p == '*')
		p++;
	return *p == '\0';
}

void daemon_principals_clear(struct daemon_principals *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n; i++) {
		for (size_t j = 0; j < p->items[i].n_grants; j++)
			free(p->items[i].grants[j]);
		free(p->items[i].grants);
	}
	free(p->items);
	p->items = NULL;
	p->n = 0;
}

static int parse_one(const struct daemon_config *c, json_t *entry, size_t idx,
		     const char *grants_key, struct daemon_principal *ret, struct err *e)
{
	char path[128];
	json_t *uid, *grants;
	size_t i;

	snprintf(path, sizeof(path), "principal[%zu]", idx);
	if (!json_is_object(entry))
		return daemon_config_error(c, entry, path, e, -EINVAL, "expected a table, got %s",
					   json_type_phrase(entry));
	uid = json_object_get(entry, "uid");
	snprintf(path, sizeof(path), "principal[%zu].uid", idx);
	if (!uid)
		return daemon_config_error(c, entry, path, e, -EINVAL, "missing");
	if (!json_is_integer(uid))
		return daemon_config_error(c, uid, path, e, -EINVAL, "expected an integer, got %s",
					   json_type_phrase(uid));
	if (json_integer_value(uid) < 0 || json_integer_value(uid) > (json_int_t)UINT32_MAX - 1)
		return daemon_config_error(c, uid, path, e, -EINVAL,
					   "expected a uid between 0 and 4294967294, got %lld",
					   (long long)json_integer_value(uid));
	ret->uid = (uid_t)json_integer_value(uid);

	grants = json_object_get(entry, grants_key);
	snprintf(path, sizeof(path), "principal[%zu].%s", idx, grants_key);
	if (!grants)
		return daemon_config_error(c, entry, path, e, -EINVAL, "missing");
	if (!json_is_array(grants))
		return daemon_config_error(c, grants, path, e, -EINVAL,
					   "expected an array of strings, got %s",
					   json_type_phrase(grants));
	ret->grants = calloc(json_array_size(grants) + 1, sizeof(char *));
	if (!ret->grants)
		return err_set(e, -ENOMEM, "out of memory");
	for (i = 0; i < json_array_size(grants); i++) {
		json_t *g = json_array_get(grants, i);

		if (!json_is_string(g)) {
			snprintf(path, sizeof(path), "principal[%zu].%s[%zu]", idx, grants_key, i);
			return daemon_config_error(c, g, path, e, -EINVAL,
						   "expected a string, got %s",
						   json_type_phrase(g));
		}
		ret->grants[i] = strdup(json_string_value(g));
		if (!ret->grants[i])
			return err_set(e, -ENOMEM, "out of memory");
		ret->n_grants++;
	}
	return 0;
}

int daemon_principals_parse(const struct daemon_config *c, const char *grants_key,
			    struct daemon_principals *ret, struct err *e)
{
	struct daemon_principals p = {0};
	json_t *arr = NULL;
	int r;

	r = daemon_config_get_array_opt(c, "principal", &arr, e);
	if (r < 0)
		return -EINVAL;
	if (arr && json_array_size(arr) > 0) {
		p.items = calloc(json_array_size(arr), sizeof(*p.items));
		if (!p.items)
			return err_set(e, -ENOMEM, "out of memory");
		for (size_t i = 0; i < json_array_size(arr); i++) {
			p.n++;
			r = parse_one(c, json_array_get(arr, i), i, grants_key, &p.items[i], e);
			if (r < 0) {
				daemon_principals_clear(&p);
				return r;
			}
		}
	}
	*ret = p;
	return 0;
}

bool daemon_principals_allow(const struct daemon_principals *p, uid_t uid, const char *id)
{
	if (uid == 0)
		return true;
	for (size_t i = 0; i < p->n; i++) {
		if (p->items[i].uid != uid)
			continue;
		for (size_t j = 0; j < p->items[i].n_grants; j++)
			if (daemon_wildmatch(p->items[i].grants[j], id))
				return true;
	}
	return false;
}
