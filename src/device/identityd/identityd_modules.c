/* SPDX-License-Identifier: MIT */
/*
 * Module identities (aziot-compat.md §2.3, §5.7, §5.8): identityd's
 * /identities/modules API and the module branch of /identities/identity.
 * Modules live in the hub; identityd creates, reads, updates and deletes
 * them there with the device's own credential (identityd_hub.c).
 *
 * Module keys are derived, never random, as aziot derives them: from the
 * symmetric key aziot_identityd_master_id in keyd (made on first use, usage
 * "derive,sign"),
 *   primary   = HMAC-SHA256(master, "{moduleId}:{generationId}:primary")
 *   secondary = HMAC-SHA256(master, "{moduleId}:{generationId}:secondary")
 * through keyd's /derivedkey (a handle) and /derivedkey/export (the bytes,
 * which go to the hub and nowhere else). Creating a module is a PUT that
 * gives it its generationId, then a PUT with If-Match: * that sets the
 * keys. A caller gets the handle of the primary key and signs its own SAS
 * tokens with keyd /sign.
 *
 * Reads go to the hub and fall back to the local backup of the module
 * (homedir/modules/..., aziot's layout, §4.3) when the hub cannot answer;
 * with prefer_module_identity_cache the backup comes first. Writes always
 * go to the hub and keep the backup in step.
 *
 * The hub calls block for up to cloud_timeout_sec each, so each request
 * runs in a child process, as provisioning does (identityd.c): the child
 * does the whole operation and writes one JSON object, {"status": N,
 * "body": ...}, on a pipe; the event loop answers with it. The child
 * shares nothing with the parent but the settings and the device identity
 * it was forked with.
 *
 * Authorization is aziot's SettingsAuthorizer: root and the daemon
 * principal (IoT Edge: a principal without idtype) may do everything; a
 * host process (a principal with idtype "module" or "local") may only get
 * the module named after it; nobody else may do anything. A refusal is
 * 403 "authorization error", as everywhere in identityd.
 *
 * Local identities (type=local) are not supported.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>

#include "common/encode.h"
#include "common/fs.h"
#include "common/http_server.h"
#include "common/json.h"
#include "common/log.h"
#include "crypto/hash.h"
#include "device/daemon/daemon.h"
#include "device/identityd/identityd_private.h"

#define MASTER_KEY_ID "aziot_identityd_master_id"
#define BACKUP_DIR "modules"
/* A module backup is a few hundred bytes; a child's answer may list the
 * hub's limit of modules per device. */
#define BACKUP_MAX (64 * 1024)
#define ANSWER_MAX (4 * 1024 * 1024)
/* A derived key: 32 bytes. */
#define KEY_LEN 32

enum module_op { OP_LIST, OP_CREATE, OP_GET, OP_UPDATE, OP_DELETE };

/* One request, as the child works on it. */
struct module_job {
	enum module_op op;
	const char *module_id; /* NULL for OP_LIST */
	const struct identityd_settings *s;
	struct identityd_hub_device dev;
};

/* An answer: status and body (the caller's), as the child computes it. */
struct answer {
	int status;
	json_t *body; /* NULL for 204 */
};

/* --- answers -------------------------------------------------------------- */

/* Answer with aziot's error shape: the error, then its cause on a
 * "caused by:" line. Returns -ECANCELED: the operation ends here. */
static int fail(struct answer *a, int status, const char *first, const char *cause)
{
	_cleanup_free_ char *msg = NULL;

	if (cause && asprintf(&msg, "%s\ncaused by: %s", first, cause) < 0)
		msg = NULL;
	a->status = status;
	a->body = json_pack("{s:s}", "message", msg ? msg : first);
	return -ECANCELED;
}

/* The error of a hub call: aziot's HubClient error, 404 (§2.3). */
static int hub_failed(struct answer *a, const struct err *e, int r)
{
	return fail(a, 404, "Hub client error", err_msg(e, r));
}

/* keyd could not make or derive the module's keys: aziot's
 * Internal(MasterIdentityKey), 500. */
static int keys_failed(struct answer *a, const struct err *e, int r)
{
	_cleanup_free_ char *cause = NULL;

	if (asprintf(&cause, "master identity key error: %s", err_msg(e, r)) < 0)
		cause = NULL;
	return fail(a, 500, "internal error", cause);
}

/* --- backups (aziot-compat.md §4.3) ------------------------------------ */

static int sha256_hex(const char *s, struct buf *out)
{
	uint8_t md[HASH_SHA256_LEN];
	int r = hash_sha256(s, strlen(s), md);

	return r < 0 ? r : hex_encode(out, md, sizeof(md));
}

int identityd_module_backup_path(const char *homedir, const char *hub, const char *device_id,
				 const char *module_id, char **ret)
{
	_cleanup_buf_ struct buf p = {0};

	*ret = NULL;
	buf_init(&p, 8192);
	if (buf_printf(&p, "%s/" BACKUP_DIR "/", homedir) < 0 || sha256_hex(hub, &p) < 0 ||
	    buf_putc(&p, '-') < 0 || sha256_hex(device_id, &p) < 0)
		return -ENOMEM;
	if (module_id) {
		if (buf_putc(&p, '/') < 0)
			return -ENOMEM;
		/* aziot keeps the ASCII letters and digits of the id, then its hash. */
		for (const char *c = module_id; *c; c++)
			if (((*c | 0x20) >= 'a' && (*c | 0x20) <= 'z') || (*c >= '0' && *c <= '9'))
				if (buf_putc(&p, *c) < 0)
					return -ENOMEM;
		if (buf_putc(&p, '-') < 0 || sha256_hex(module_id, &p) < 0)
			return -ENOMEM;
	}
	*ret = buf_steal(&p, NULL);
	return *ret ? 0 : -ENOMEM;
}

json_t *identityd_module_backup_json(const json_t *module)
{
	static const char *const fields[] = {"moduleId", "managedBy", "deviceId", "generationId"};
	json_t *j = json_object();

	/* aziot's Module in its field order, without authentication; absent
	 * and null fields are left out. */
	for (size_t i = 0; j && i < ARRAY_SIZE(fields); i++) {
		json_t *v = json_object_get(module, fields[i]);

		if (json_is_string(v) && json_object_set(j, fields[i], v) < 0) {
			json_decref(j);
			return NULL;
		}
	}
	return j;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path) < 0 && errno != ENOENT ? -1 : 0;
}

/* The device's backup directory, made when missing; the backups of any
 * other device are removed then, as aziot does when the device changes.
 * Returns 0 or a negative errno with a sentence. */
static int backup_device_dir(const struct module_job *job, struct err *e)
{
	_cleanup_free_ char *dir = NULL, *top = NULL;
	struct stat st;
	int r;

	r = identityd_module_backup_path(job->s->homedir, job->dev.hub, job->dev.device_id, NULL,
					 &dir);
	if (r < 0)
		return err_set(e, r, "out of memory");
	if (stat(dir, &st) == 0)
		return 0;
	top = fs_path_join(job->s->homedir, BACKUP_DIR);
	if (!top)
		return err_set(e, -ENOMEM, "out of memory");
	if (nftw(top, remove_entry, 16, FTW_DEPTH | FTW_PHYS) < 0 && errno != ENOENT)
		log_warn("cannot remove the module backups of another device in %s: %s", top,
			 strerror(errno));
	return fs_mkdir_p(dir, 0700, FS_KEEP_OWNER, FS_KEEP_GROUP, false, e);
}

/* Keep the backup of module (the hub's Module JSON). Best effort, as in
 * aziot: a failure is logged and the request goes on. */
static void backup_write(const struct module_job *job, const json_t *module)
{
	_cleanup_free_ char *path = NULL, *text = NULL;
	_cleanup_json_ json_t *b = identityd_module_backup_json(module);
	const char *id = json_string_value(json_object_get(module, "moduleId"));
	struct err e = {0};
	int r;

	r = backup_device_dir(job, &e);
	if (r >= 0)
		r = identityd_module_backup_path(job->s->homedir, job->dev.hub, job->dev.device_id,
						 id, &path);
	if (r >= 0) {
		text = b ? json_dump_compact(b) : NULL;
		r = text ? fs_write_atomic(path, text, strlen(text), 0600, FS_KEEP_OWNER,
					   FS_KEEP_GROUP, &e)
			 : err_set(&e, -ENOMEM, "out of memory");
	}
	if (r < 0)
		log_warn("cannot save the backup of module '%s': %s", id, err_msg(&e, r));
}

static void backup_remove(const struct module_job *job, const char *module_id)
{
	_cleanup_free_ char *path = NULL;

	if (identityd_module_backup_path(job->s->homedir, job->dev.hub, job->dev.device_id,
					 module_id, &path) < 0)
		return;
	if (unlink(path) < 0 && errno != ENOENT)
		log_warn("cannot remove %s: %s", path, strerror(errno));
}

/* A module from its backup file: 0 and *ret, -ENOENT, or another errno
 * (logged) for a file that cannot be read or is not a module of this
 * device. */
static int backup_read_file(const struct module_job *job, const char *path, json_t **ret)
{
	_cleanup_buf_ struct buf text = {0};
	_cleanup_json_ json_t *j = NULL;
	const char *m = NULL, *d = NULL;
	struct err e = {0};
	int r;

	*ret = NULL;
	buf_init(&text, BACKUP_MAX);
	r = fs_read_file(path, BACKUP_MAX, &text, &e);
	if (r == -ENOENT)
		return r;
	if (r >= 0)
		r = json_parse(text.data ? text.data : "", text.len, 0, &j, &e);
	if (r >= 0 &&
	    (json_get_string(j, "moduleId", &m, NULL) < 0 ||
	     json_get_string(j, "deviceId", &d, NULL) < 0 || !streq(d, job->dev.device_id)))
		r = err_set(&e, -EBADMSG, "not a module of device '%s'", job->dev.device_id);
	if (r < 0) {
		log_warn("ignoring the module backup %s: %s", path, err_msg(&e, r));
		return r;
	}
	*ret = TAKE_PTR(j);
	return 0;
}

static int backup_read(const struct module_job *job, const char *module_id, json_t **ret)
{
	_cleanup_free_ char *path = NULL;

	*ret = NULL;
	if (identityd_module_backup_path(job->s->homedir, job->dev.hub, job->dev.device_id,
					 module_id, &path) < 0)
		return -ENOMEM;
	return backup_read_file(job, path, ret);
}

/* Every backed-up module of the device, in file name order: 0 and *ret (an
 * array), -ENOENT when there is no backup directory. */
static int backup_list(const struct module_job *job, json_t **ret)
{
	_cleanup_free_ char *dir = NULL;
	_cleanup_json_ json_t *list = json_array();
	struct dirent **names = NULL;
	int n, r = 0;

	*ret = NULL;
	if (!list || identityd_module_backup_path(job->s->homedir, job->dev.hub, job->dev.device_id,
						  NULL, &dir) < 0)
		return -ENOMEM;
	n = scandir(dir, &names, NULL, alphasort);
	if (n < 0)
		return -errno;
	for (int i = 0; i < n; i++) {
		_cleanup_free_ char *path = NULL;
		json_t *m = NULL;

		if (r == 0 && names[i]->d_name[0] != '.') {
			path = fs_path_join(dir, names[i]->d_name);
			if (!path)
				r = -ENOMEM;
			else if (backup_read_file(job, path, &m) == 0 &&
				 json_array_append_new(list, m) < 0)
				r = -ENOMEM;
		}
		free(names[i]);
	}
	free(names);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(list);
	return 0;
}

/* --- keys --------------------------------------------------------------- */

/* A string field of keyd's answer, copied (a secret of sorts: wiped when
 * freed by the caller). */
static int keyd_string(struct identityd_job_context *ctx, const char *path, const json_t *body,
		       const char *field, char **ret, struct err *e)
{
	_cleanup_json_ json_t *j = NULL;
	const char *s = NULL;
	int r;

	r = local_client_call(ctx->keyd, "POST", path, body, &j, NULL, e);
	if (r < 0)
		return r;
	if (json_get_string(j, field, &s, NULL) < 0)
		return err_set(e, -EBADMSG, "keyd: POST %s: the answer has no \"%s\"", path, field);
	*ret = strdup(s);
	return *ret ? 0 : err_set(e, -ENOMEM, "out of memory");
}

/* The handle of the key derived from master for "{module}:{gen}:{which}". */
static int derived_handle(struct identityd_job_context *ctx, const char *master,
			  const char *module_id, const char *generation_id, const char *which,
			  char **ret, struct err *e)
{
	_cleanup_buf_ struct buf data = {0}, b64 = {0};
	_cleanup_json_ json_t *body = NULL;

	buf_init(&data, 4096);
	buf_init(&b64, 8192);
	if (buf_printf(&data, "%s:%s:%s", module_id, generation_id, which) < 0 ||
	    base64_encode(&b64, data.data, data.len, B64_STANDARD) < 0)
		return err_set(e, -ENOMEM, "out of memory");
	body = json_pack("{s:s,s:s}", "baseKeyHandle", master, "derivationData", buf_str(&b64));
	if (!body)
		return err_set(e, -ENOMEM, "out of memory");
	return keyd_string(ctx, "/derivedkey", body, "keyHandle", ret, e);
}

/* The derived key of handle, base64 (as keyd gives it and the hub takes
 * it), checked to be 32 bytes. The caller wipes and frees *ret. */
static int derived_export(struct identityd_job_context *ctx, const char *handle, char **ret,
			  struct err *e)
{
	_cleanup_json_ json_t *body = json_pack("{s:s}", "keyHandle", handle);
	_cleanup_buf_ struct buf raw = {0};
	int r;

	*ret = NULL;
	if (!body)
		return err_set(e, -ENOMEM, "out of memory");
	r = keyd_string(ctx, "/derivedkey/export", body, "key", ret, e);
	if (r < 0)
		return r;
	buf_init_secret(&raw, 1024);
	if (base64_decode(&raw, *ret, strlen(*ret), B64_STANDARD, NULL) < 0 || raw.len != KEY_LEN) {
		explicit_bzero(*ret, strlen(*ret));
		free(*ret);
		*ret = NULL;
		return err_set(e, -EBADMSG, "keyd: /derivedkey/export: not a key of %d bytes",
			       KEY_LEN);
	}
	return 0;
}

/* The module's keys: the handle of the primary key (*ret_handle), and with
 * ret_auth the "authentication" object the hub gets, holding both keys. */
static int module_keys(struct identityd_job_context *ctx, const json_t *module, char **ret_handle,
		       json_t **ret_auth, struct err *e)
{
	_cleanup_json_ json_t *key_body = NULL;
	_cleanup_secret_ char *master = NULL, *secondary = NULL, *primary_key = NULL,
			      *secondary_key = NULL;
	_cleanup_secret_ char *primary = NULL;
	const char *id = json_string_value(json_object_get(module, "moduleId"));
	const char *gen = json_string_value(json_object_get(module, "generationId"));
	int r;

	*ret_handle = NULL;
	if (ret_auth)
		*ret_auth = NULL;
	/* POST /key makes the master key only when it does not exist yet. */
	key_body = json_pack("{s:s,s:s}", "keyId", MASTER_KEY_ID, "usage", "derive,sign");
	if (!key_body)
		return err_set(e, -ENOMEM, "out of memory");
	r = keyd_string(ctx, "/key", key_body, "keyHandle", &master, e);
	if (r >= 0)
		r = derived_handle(ctx, master, id, gen, "primary", &primary, e);
	if (r >= 0 && ret_auth) {
		r = derived_handle(ctx, master, id, gen, "secondary", &secondary, e);
		if (r >= 0)
			r = derived_export(ctx, primary, &primary_key, e);
		if (r >= 0)
			r = derived_export(ctx, secondary, &secondary_key, e);
		if (r >= 0) {
			*ret_auth =
			    json_pack("{s:{s:s,s:s},s:s}", "symmetricKey", "primaryKey",
				      primary_key, "secondaryKey", secondary_key, "type", "sas");
			if (!*ret_auth)
				r = err_set(e, -ENOMEM, "out of memory");
		}
	}
	if (r < 0)
		return r;
	*ret_handle = TAKE_PTR(primary);
	return 0;
}

/* --- identities ------------------------------------------------------------ */

json_t *identityd_module_identity(const struct identityd_hub_device *dev, const json_t *module,
				  const char *key_handle)
{
	json_t *spec = json_pack("{s:s,s:s,s:O,s:O}", "hubName", dev->hub, "gatewayHost",
				 dev->gateway, "deviceId", json_object_get(module, "deviceId"),
				 "moduleId", json_object_get(module, "moduleId"));
	json_t *gen = json_object_get(module, "generationId");

	if (!spec)
		return NULL;
	if ((json_is_string(gen) && json_object_set(spec, "genId", gen) < 0) ||
	    (key_handle && json_object_set_new(spec, "auth",
					       json_pack("{s:s,s:s}", "type", "sas", "keyHandle",
							 key_handle)) < 0)) {
		json_decref(spec);
		return NULL;
	}
	return json_pack("{s:s,s:o}", "type", "aziot", "spec", spec);
}

/* The identity of module with its key handle, as the answer. */
static int answer_identity(struct identityd_job_context *ctx, const struct module_job *job,
			   const json_t *module, struct answer *a)
{
	_cleanup_secret_ char *handle = NULL;
	struct err e = {0};
	int r;

	/* aziot: a module without generationId has no keys; not found. */
	if (!json_is_string(json_object_get(module, "generationId")))
		return fail(a, 400, "module identity not found", NULL);
	r = module_keys(ctx, module, &handle, NULL, &e);
	if (r < 0)
		return keys_failed(a, &e, r);
	a->status = 200;
	a->body = identityd_module_identity(&job->dev, module, handle);
	return 0;
}

/* The module from the hub, or from its backup (§5.8): the hub first and
 * the backup when the hub fails (a 404 removes the backup instead), or
 * with prefer_module_identity_cache the backup first. */
static int read_module(struct identityd_job_context *ctx, const struct module_job *job,
		       json_t **ret, struct answer *a)
{
	struct err e = {0};
	int r;

	if (job->s->prefer_module_identity_cache && backup_read(job, job->module_id, ret) == 0)
		return 0;
	r = identityd_hub_module(ctx, &job->dev, IDENTITYD_HUB_MODULE_GET, job->module_id, NULL,
				 ret, &e);
	if (r == 0) {
		backup_write(job, *ret);
		return 0;
	}
	if (r == -ENOENT)
		backup_remove(job, job->module_id);
	else if (backup_read(job, job->module_id, ret) == 0) {
		log_warn("%s; answering from the module's backup", err_msg(&e, r));
		return 0;
	}
	return hub_failed(a, &e, r);
}

static int op_list(struct identityd_job_context *ctx, const struct module_job *job,
		   struct answer *a)
{
	_cleanup_json_ json_t *modules = NULL, *ids = json_array();
	struct err e = {0};
	size_t i;
	json_t *m;
	int r = -ENOENT;

	if (!ids)
		return fail(a, 500, "internal error", "out of memory");
	if (job->s->prefer_module_identity_cache)
		r = backup_list(job, &modules);
	if (r < 0) {
		r = identityd_hub_module(ctx, &job->dev, IDENTITYD_HUB_MODULE_LIST, NULL, NULL,
					 &modules, &e);
		if (r == 0) {
			json_array_foreach (modules, i, m)
				backup_write(job, m);
		} else if (r != -ENOENT && backup_list(job, &modules) == 0) {
			log_warn("%s; answering from the module backups", err_msg(&e, r));
		} else {
			return hub_failed(a, &e, r);
		}
	}
	/* The list carries no keys: callers get them one module at a time. */
	json_array_foreach (modules, i, m)
		if (json_array_append_new(ids, identityd_module_identity(&job->dev, m, NULL)) < 0)
			return fail(a, 500, "internal error", "out of memory");
	a->status = 200;
	a->body = json_pack("{s:O}", "identities", ids);
	return 0;
}

/* Create: PUT create, derive the keys from its generationId, PUT update
 * with them. Update: the same from the module the hub has. */
static int op_write(struct identityd_job_context *ctx, const struct module_job *job,
		    struct answer *a)
{
	_cleanup_json_ json_t *module = NULL, *auth = NULL, *updated = NULL;
	_cleanup_secret_ char *handle = NULL;
	struct err e = {0};
	int r;

	r = identityd_hub_module(ctx, &job->dev,
				 job->op == OP_CREATE ? IDENTITYD_HUB_MODULE_CREATE
						      : IDENTITYD_HUB_MODULE_GET,
				 job->module_id, NULL, &module, &e);
	if (r < 0)
		return hub_failed(a, &e, r);
	if (!json_is_string(json_object_get(module, "generationId")))
		return fail(a, 400, "module identity not found", NULL);
	r = module_keys(ctx, module, &handle, &auth, &e);
	if (r < 0)
		return keys_failed(a, &e, r);
	r = identityd_hub_module(ctx, &job->dev, IDENTITYD_HUB_MODULE_UPDATE, job->module_id, auth,
				 &updated, &e);
	if (r < 0)
		return hub_failed(a, &e, r);
	backup_write(job, updated);
	log_info("module '%s' %s in hub %s", job->module_id,
		 job->op == OP_CREATE ? "created" : "updated", job->dev.hub);
	a->status = 200;
	a->body = identityd_module_identity(&job->dev, updated, handle);
	return 0;
}

static int op_delete(struct identityd_job_context *ctx, const struct module_job *job,
		     struct answer *a)
{
	struct err e = {0};
	int r;

	r = identityd_hub_module(ctx, &job->dev, IDENTITYD_HUB_MODULE_DELETE, job->module_id, NULL,
				 NULL, &e);
	if (r < 0)
		return hub_failed(a, &e, r);
	backup_remove(job, job->module_id);
	log_info("module '%s' deleted from hub %s", job->module_id, job->dev.hub);
	a->status = 204;
	return 0;
}

/* The whole operation, blocking (in the child). */
static void job_run(const struct module_job *job, struct answer *a)
{
	struct identityd_job_context ctx;
	enum identityd_fault fault;
	_cleanup_json_ json_t *module = NULL;
	struct err e = {0};
	int r;

	r = identityd_job_context_init(&ctx, job->s, &fault, &e);
	if (r < 0) {
		/* keyd (or certd) cannot give the device's credential: aziot's
		 * KeyClient error. */
		fail(a, 404, "Key client error", err_msg(&e, r));
		identityd_job_context_clear(&ctx);
		return;
	}
	switch (job->op) {
	case OP_LIST:
		op_list(&ctx, job, a);
		break;
	case OP_GET:
		if (read_module(&ctx, job, &module, a) == 0)
			answer_identity(&ctx, job, module, a);
		break;
	case OP_CREATE:
	case OP_UPDATE:
		op_write(&ctx, job, a);
		break;
	case OP_DELETE:
		op_delete(&ctx, job, a);
		break;
	}
	identityd_job_context_clear(&ctx);
}

/* --- the child process ------------------------------------------------------ */

struct module_call {
	struct http_request *req;
	pid_t pid;
	int fd;
	struct event *ev;
	struct buf out; /* the child's answer: holds a key handle */
};

static void log_answer(int status, const json_t *body)
{
	const char *msg = json_string_value(json_object_get(body, "message"));

	const char *cause = msg ? strstr(msg, "\ncaused by: ") : NULL;

	log_info("--> %d %s", status, http_status_text(status));
	if (status < 400 || !msg)
		return;
	/* One line each, as identityd.c logs its errors. */
	log_info("!!! %.*s", (int)(cause ? (size_t)(cause - msg) : strlen(msg)), msg);
	if (cause)
		log_info("!!! %s", cause + 1);
}

/* In the child: run the job, write the answer, exit. Never returns. */
_noreturn_ static void child_main(const struct module_job *job, int fd)
{
	struct answer a = {.status = 500};
	_cleanup_secret_ char *text = NULL;
	json_t *j;
	size_t off = 0, len;

	job_run(job, &a);
	if (!a.body && a.status != 204) {
		a.status = 500;
		a.body = json_pack("{s:s}", "message", "internal error\ncaused by: out of memory");
	}
	j = json_pack("{s:i,s:o}", "status", a.status, "body", a.body ? a.body : json_null());
	text = j ? json_dump_compact(j) : NULL;
	json_decref(j);
	len = text ? strlen(text) : 0;
	while (off < len) {
		ssize_t n = write(fd, text + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	_exit(text && off == len ? 0 : 1);
}

static void call_free(struct module_call *c)
{
	if (c->pid > 0) {
		kill(c->pid, SIGKILL);
		while (waitpid(c->pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	if (c->ev)
		event_free(c->ev);
	if (c->fd >= 0)
		close(c->fd);
	buf_free(&c->out);
	free(c);
}

/* The child closed its pipe: answer with what it wrote. */
static void call_finish(struct module_call *c)
{
	_cleanup_json_ json_t *j = NULL;
	struct http_request *req = c->req;
	int status = 0;
	int64_t st = 0;
	json_t *body = NULL;

	while (waitpid(c->pid, &status, 0) < 0 && errno == EINTR)
		;
	c->pid = 0;
	if (json_parse(c->out.data ? c->out.data : "", c->out.len, 0, &j, NULL) < 0 ||
	    json_get_int(j, "status", 200, 599, &st, NULL) < 0) {
		log_err("the module request's process failed (%s %d)",
			WIFSIGNALED(status) ? "signal" : "exit status",
			WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
		log_answer(500, NULL);
		(void)http_respond_message(req, 500, "internal error");
		call_free(c);
		return;
	}
	body = json_object_get(j, "body");
	log_answer((int)st, body);
	if (st == 204 || json_is_null(body))
		(void)http_respond(req, (int)st, NULL, NULL, 0);
	else
		(void)http_respond_json(req, (int)st, body);
	call_free(c);
}

static void on_child_output(evutil_socket_t fd, short what, void *arg)
{
	struct module_call *c = arg;
	char chunk[4096];
	ssize_t n;

	(void)what;
	for (;;) {
		n = read(fd, chunk, sizeof(chunk));
		if (n > 0) {
			/* Oversized: dropped, and answered as a failure. */
			if (buf_append(&c->out, chunk, (size_t)n) < 0)
				buf_reset(&c->out);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			explicit_bzero(chunk, sizeof(chunk));
			return;
		}
		break; /* EOF, or an error: the child is done either way */
	}
	explicit_bzero(chunk, sizeof(chunk));
	call_finish(c);
}

/* The client went away, or identityd is stopping: the child's work is
 * dropped (a hub write it made stays made, as when aziot's caller gives
 * up). */
static void on_call_abort(struct http_request *req, void *userdata)
{
	call_free(userdata);
	(void)http_respond_message(req, 500, "internal error");
}

int identityd_fork_reporter(pid_t *ret_pid, int *ret_fd)
{
	pid_t parent = getpid(), pid;
	sigset_t all, old;
	int fds[2];

	if (pipe2(fds, O_CLOEXEC) < 0)
		return -errno;
	/* No signal handler of the parent's may run in the child between
	 * fork and the reset below. */
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, &old);
	pid = fork();
	if (pid == 0) {
		sigset_t none;

		/* libevent's handlers would report our signals to the parent's
		 * loop through the pipe they share: back to the defaults. */
		for (int sig = 1; sig < NSIG; sig++)
			if (sig != SIGKILL && sig != SIGSTOP)
				signal(sig, sig == SIGPIPE ? SIG_IGN : SIG_DFL);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		(void)prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
		/* The parent died before the line above: nobody to work for, and
		 * a job done now could change the TPM behind a new identityd. */
		if (getppid() != parent)
			_exit(1);
		close(fds[0]);
		/* Nothing of the parent's: no listening socket, no clients. */
		if (fds[1] > 3)
			(void)close_range(3, (unsigned)fds[1] - 1, 0);
		(void)close_range((unsigned)fds[1] + 1, ~0u, 0);
		*ret_fd = fds[1];
		return 0;
	}
	sigprocmask(SIG_SETMASK, &old, NULL);
	close(fds[1]);
	if (pid < 0) {
		int r = -errno;

		close(fds[0]);
		return r;
	}
	/* Reading must not block the loop. */
	if (fcntl(fds[0], F_SETFL, O_NONBLOCK) < 0) {
		int r = -errno;

		kill(pid, SIGKILL);
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		close(fds[0]);
		return r;
	}
	*ret_pid = pid;
	*ret_fd = fds[0];
	return 1;
}

/* Run job in a child and answer dreq when it is done. */
static int run_job(struct daemon_request *dreq, struct event_base *base,
		   const struct module_job *job)
{
	struct http_request *req = daemon_request_http(dreq);
	struct module_call *c;
	int r;

	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->fd = -1;
	c->req = req;
	buf_init_secret(&c->out, ANSWER_MAX);
	r = identityd_fork_reporter(&c->pid, &c->fd);
	if (r == 0)
		child_main(job, c->fd);
	if (r < 0 || !(c->ev = event_new(base, c->fd, EV_READ | EV_PERSIST, on_child_output, c)) ||
	    event_add(c->ev, NULL) < 0 || http_request_defer(req, on_call_abort, c) < 0) {
		call_free(c);
		return r < 0 ? r : -ENOMEM;
	}
	return 0;
}

/* --- handlers ------------------------------------------------------------------ */

/* May uid do op on module_id (aziot's SettingsAuthorizer)? */
static bool may(const struct identityd_settings *s, uid_t uid, enum module_op op,
		const char *module_id)
{
	for (size_t i = 0; i < s->n_principals; i++) {
		const struct identityd_principal *p = &s->principals[i];

		if (p->uid != uid)
			continue;
		if (!p->has_idtype)
			return true;
		return op == OP_GET && module_id && streq(p->name, module_id) &&
		       (p->idtype & (IDENTITYD_IDTYPE_MODULE | IDENTITYD_IDTYPE_LOCAL));
	}
	return uid == 0;
}

/* Why the ?type= of the request (or the body's "type" of a create) is not
 * "aziot", the only type edgeid serves; NULL when it is. */
static const char *type_refusal(const char *type, char *buf, size_t n)
{
	if (!type)
		return "parameter \"type\" has an invalid value\ncaused by: missing parameter";
	if (streq(type, "aziot"))
		return NULL;
	if (streq(type, "local"))
		return "local identities are not supported";
	snprintf(buf, n, "parameter \"type\" has an invalid value\ncaused by: invalid type: %.64s",
		 type);
	return buf;
}

/* aziot refuses an empty (or blank) module name. */
static bool module_id_valid(const char *id)
{
	for (; id && *id; id++)
		if (*id != ' ' && *id != '\t' && *id != '\n' && *id != '\r')
			return true;
	return false;
}

/* Check who asks, then start op on the device's hub. type is the
 * request's type (already taken from the body for a create). */
static int start(struct daemon_request *req, void *state, enum module_op op, const char *module_id,
		 const char *type)
{
	struct identityd_state_view v;
	struct module_job job = {.op = op, .module_id = module_id};
	const char *why;
	char text[160];

	identityd_state_view(state, &v);
	if (!may(v.s, daemon_request_cred(req)->uid, op, module_id))
		return daemon_respond_error(req, 403, "authorization error");
	why = type_refusal(type, text, sizeof(text));
	if (why)
		return daemon_respond_error(req, 400, "%s", why);
	if (op != OP_LIST && !module_id_valid(module_id))
		return daemon_respond_error(req, 400,
					    "parameter \"module_id\" has an invalid value\ncaused "
					    "by: module name cannot be empty");
	if (!v.device)
		return daemon_respond_error(req, 400, "device identity not found");
	job.s = v.s;
	job.dev = (struct identityd_hub_device){
	    .hub = v.device->hub_name,
	    .gateway = v.device->gateway,
	    .device_id = v.device->device_id,
	};
	return run_job(req, v.base, &job);
}

int identityd_modules_list(struct daemon_request *req, void *state)
{
	return start(req, state, OP_LIST, NULL, daemon_request_query(req, "type"));
}

int identityd_modules_create(struct daemon_request *req, void *state)
{
	json_t *body = daemon_request_body(req);
	const char *id = NULL, *type = NULL;

	if (!body)
		return daemon_respond_error(req, 400, "missing request body");
	if (json_get_string(body, "moduleId", &id, NULL) < 0)
		return daemon_respond_error(req, 400,
					    "parameter \"module_id\" has an invalid value\ncaused "
					    "by: moduleId: expected a string");
	(void)json_get_string_opt(body, "type", &type, NULL);
	return start(req, state, OP_CREATE, id, type);
}

int identityd_modules_get(struct daemon_request *req, void *state)
{
	return start(req, state, OP_GET, daemon_request_param(req, "moduleId"),
		     daemon_request_query(req, "type"));
}

int identityd_modules_update(struct daemon_request *req, void *state)
{
	/* The body is any JSON, ignored; the type is the query's (§2.3). */
	return start(req, state, OP_UPDATE, daemon_request_param(req, "moduleId"),
		     daemon_request_query(req, "type"));
}

int identityd_modules_delete(struct daemon_request *req, void *state)
{
	return start(req, state, OP_DELETE, daemon_request_param(req, "moduleId"),
		     daemon_request_query(req, "type"));
}

int identityd_modules_get_caller(struct daemon_request *req, void *state)
{
	struct identityd_state_view v;
	uid_t uid = daemon_request_cred(req)->uid;

	identityd_state_view(state, &v);
	/* A host process without the device idtype gets its own module;
	 * everyone else what identityd.c answers (the device, or a refusal). */
	for (size_t i = 0; i < v.s->n_principals; i++) {
		const struct identityd_principal *p = &v.s->principals[i];

		if (p->uid != uid)
			continue;
		if (p->has_idtype && !(p->idtype & IDENTITYD_IDTYPE_DEVICE) &&
		    (p->idtype & (IDENTITYD_IDTYPE_MODULE | IDENTITYD_IDTYPE_LOCAL)))
			return start(req, state, OP_GET, p->name, "aziot");
		break;
	}
	return identityd_get_caller_identity(req, state);
}
