/* SPDX-License-Identifier: MIT */
/*
 * tpmd's configuration file: what `edgeid config apply` writes from the
 * super-config's [tpm] (aziot-compat.md §3.9), plus [[principal]] uids, an
 * edgeid addition (aziot's tpmd lets anyone who can open the socket call).
 */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "common/json.h"
#include "common/log.h"
#include "device/tpmd/tpmd.h"

void tpmd_settings_clear(struct tpmd_settings *s)
{
	if (!s)
		return;
	free(s->tcti);
	if (s->endorsement_auth)
		OPENSSL_clear_free(s->endorsement_auth, strlen(s->endorsement_auth));
	if (s->owner_auth)
		OPENSSL_clear_free(s->owner_auth, strlen(s->owner_auth));
	free(s->uids);
	*s = (struct tpmd_settings){0};
}

/* A string setting that may be absent (def then). */
static int get_string(const struct daemon_config *c, const char *path, const char *def, char **ret,
		      struct err *e)
{
	const char *v = NULL;
	int r;

	r = daemon_config_get_string_opt(c, path, &v, e);
	if (r < 0)
		return -EINVAL;
	*ret = strdup(v ? v : def);
	if (!*ret)
		return err_set(e, -ENOMEM, "out of memory");
	return 0;
}

static int parse_hierarchy_auth(const struct daemon_config *c, struct tpmd_settings *s,
				struct err *e)
{
	json_t *table = NULL, *v;
	const char *key;
	int r;

	r = daemon_config_get_object_opt(c, "hierarchy_authorization", &table, e);
	if (r < 0)
		return -EINVAL;
	json_object_foreach (table, key, v) {
		char path[128];

		snprintf(path, sizeof(path), "hierarchy_authorization.%s", key);
		if (!streq(key, "endorsement") && !streq(key, "owner"))
			return daemon_config_error(
			    c, v, path, e, -EINVAL,
			    "unknown setting (expected endorsement or owner)");
		if (!json_is_string(v))
			return daemon_config_error(c, v, path, e, -EINVAL,
						   "expected a string, got %s",
						   json_type_phrase(v));
		/* The value itself is a secret: never in a message. */
		if (json_string_length(v) > TPM_AUTH_VALUE_MAX)
			return daemon_config_error(c, v, path, e, -EINVAL,
						   "longer than %d bytes (%zu)", TPM_AUTH_VALUE_MAX,
						   json_string_length(v));
	}
	r = get_string(c, "hierarchy_authorization.endorsement", "", &s->endorsement_auth, e);
	if (r >= 0)
		r = get_string(c, "hierarchy_authorization.owner", "", &s->owner_auth, e);
	return r;
}

static int parse_principals(const struct daemon_config *c, struct tpmd_settings *s, struct err *e)
{
	json_t *arr = NULL;
	int r;

	r = daemon_config_get_array_opt(c, "principal", &arr, e);
	if (r < 0)
		return -EINVAL;
	if (!arr || json_array_size(arr) == 0) {
		struct passwd *pw = getpwnam(TPMD_DEFAULT_PRINCIPAL_USER);

		if (!pw)
			return 0;
		s->uids = malloc(sizeof(*s->uids));
		if (!s->uids)
			return err_set(e, -ENOMEM, "out of memory");
		s->uids[0] = pw->pw_uid;
		s->n_uids = 1;
		s->uids_from_default = true;
		return 0;
	}
	s->uids = calloc(json_array_size(arr), sizeof(*s->uids));
	if (!s->uids)
		return err_set(e, -ENOMEM, "out of memory");
	for (size_t i = 0; i < json_array_size(arr); i++) {
		json_t *entry = json_array_get(arr, i), *v;
		const char *key;
		char path[128];
		int64_t uid;

		snprintf(path, sizeof(path), "principal[%zu]", i);
		if (!json_is_object(entry))
			return daemon_config_error(c, entry, path, e, -EINVAL,
						   "expected a table, got %s",
						   json_type_phrase(entry));
		json_object_foreach (entry, key, v) {
			if (streq(key, "uid"))
				continue;
			snprintf(path, sizeof(path), "principal[%zu].%s", i, key);
			return daemon_config_error(c, v, path, e, -EINVAL,
						   "unknown setting (tpmd principals have only a "
						   "uid)");
		}
		snprintf(path, sizeof(path), "principal[%zu].uid", i);
		if (!json_object_get(entry, "uid"))
			return daemon_config_error(c, entry, path, e, -EINVAL, "missing");
		r = daemon_config_get_int_opt(c, path, 0, (int64_t)UINT32_MAX - 1, 0, &uid, e);
		if (r < 0)
			return -EINVAL;
		s->uids[s->n_uids++] = (uid_t)uid;
	}
	return 0;
}

int tpmd_settings_parse(const struct daemon_config *c, struct tpmd_settings *ret, struct err *e)
{
	struct tpmd_settings s = {0};
	int64_t index;
	int r;

	r = get_string(c, "tcti", "device", &s.tcti, e);
	if (r >= 0) {
		r = daemon_config_get_int_opt(c, "auth_key_index", 0, TPMD_AUTH_KEY_INDEX_MAX,
					      TPMD_AUTH_KEY_INDEX_DEFAULT, &index, e);
		if (r < 0)
			r = -EINVAL;
		else
			s.auth_key_handle = TPM_PERSISTENT_OWNER_FIRST + (uint32_t)index;
		/* The import would replace the EK or the SRK. */
		if (r >= 0 &&
		    (s.auth_key_handle == TPM_EK_HANDLE || s.auth_key_handle == TPM_SRK_HANDLE)) {
			json_t *v = json_object_get(daemon_config_root(c), "auth_key_index");

			r = daemon_config_error(
			    c, v, "auth_key_index", e, -EINVAL,
			    "0x%06x makes 0x%08x, the %s's handle; choose another", (unsigned)index,
			    s.auth_key_handle, s.auth_key_handle == TPM_EK_HANDLE ? "EK" : "SRK");
		}
	}
	if (r >= 0)
		r = parse_hierarchy_auth(c, &s, e);
	if (r >= 0)
		r = parse_principals(c, &s, e);
	if (r < 0) {
		tpmd_settings_clear(&s);
		return r;
	}
	*ret = s;
	return 0;
}

bool tpmd_settings_same_tpm(const struct tpmd_settings *a, const struct tpmd_settings *b)
{
	size_t ea = strlen(a->endorsement_auth), oa = strlen(a->owner_auth);

	/* Constant time for the secrets; their lengths are not secret enough
	 * to matter once they differ. */
	return streq(a->tcti, b->tcti) && ea == strlen(b->endorsement_auth) &&
	       oa == strlen(b->owner_auth) &&
	       CRYPTO_memcmp(a->endorsement_auth, b->endorsement_auth, ea) == 0 &&
	       CRYPTO_memcmp(a->owner_auth, b->owner_auth, oa) == 0;
}

bool tpmd_settings_allow(const struct tpmd_settings *s, uid_t uid)
{
	if (uid == 0)
		return true;
	for (size_t i = 0; i < s->n_uids; i++)
		if (s->uids[i] == uid)
			return true;
	return false;
}
