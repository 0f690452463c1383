/* SPDX-License-Identifier: MIT */
/*
 * What the files of identityd share; not for other daemons.
 *
 *   identityd.c           the daemon: route table, handlers, principals,
 *                         the provisioning state machine (event loop)
 *   identityd_settings.c  the identityd config file (aziot-compat.md §3.9)
 *   identityd_state.c     device_info and the other files in homedir (§4.3)
 *   identityd_sas.c       SAS tokens, byte for byte as aziot builds them (§5.5)
 *   identityd_cloud.c     HTTPS to DPS and the hub: trust, timeouts, retries
 *   identityd_dps.c       DPS registration: symmetric key, X.509, TPM (§5.2)
 *   identityd_hub.c       the hub calls: the request that proves an identity
 *                         works, module identity CRUD
 *   identityd_modules.c   the module identity API (/identities/modules)
 *   identityd_provision.c one provisioning job, run in a child process
 *   local_client.c        JSON over the unix sockets of keyd, tpmd, certd
 *   identity_cert.c       the device identity certificate (certd or file)
 *   keyd_pkey.c           an EVP_PKEY whose private operations call keyd
 */
#ifndef EDGEID_IDENTITYD_PRIVATE_H
#define EDGEID_IDENTITYD_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/http_client.h"
#include "device/client/client.h"
#include "device/daemon/daemon_config.h"

struct daemon_request;
struct event_base;

/* ---- settings (identityd_settings.c) --------------------------------- */

#define IDENTITYD_CLOUD_TIMEOUT_DEFAULT 70
#define IDENTITYD_CLOUD_RETRIES_DEFAULT 1
#define IDENTITYD_HOMEDIR_DEFAULT "/var/lib/aziot/identityd"

enum identityd_source {
	IDENTITYD_SOURCE_NONE,
	IDENTITYD_SOURCE_MANUAL,
	IDENTITYD_SOURCE_DPS,
};

/* How the device authenticates: manual "sas"/"x509", DPS
 * "symmetric_key"/"x509"/"tpm". */
enum identityd_auth {
	IDENTITYD_AUTH_SAS, /* manual sas, DPS symmetric_key */
	IDENTITYD_AUTH_X509,
	IDENTITYD_AUTH_TPM,
};

/* IoT Edge's auto_reprovisioning_mode (§3.3), read by identityd as an
 * edgeid extension of its own file. */
enum identityd_reprovisioning {
	IDENTITYD_REPROV_DYNAMIC,
	IDENTITYD_REPROV_ALWAYS_ON_STARTUP,
	IDENTITYD_REPROV_ON_ERROR_ONLY,
};

enum identityd_idtype {
	IDENTITYD_IDTYPE_DEVICE = 1 << 0,
	IDENTITYD_IDTYPE_MODULE = 1 << 1,
	IDENTITYD_IDTYPE_LOCAL = 1 << 2,
};

struct identityd_principal {
	uid_t uid;
	char *name;
	bool has_idtype; /* false: the daemon principal (IoT Edge) */
	unsigned idtype; /* IDENTITYD_IDTYPE_* */
};

struct identityd_settings {
	char *root; /* the --root directory, or NULL */
	char *hostname;
	char *homedir; /* under --root */
	bool prefer_module_identity_cache;
	uint64_t cloud_timeout_sec;
	uint32_t cloud_retries;
	enum identityd_reprovisioning reprovisioning;
	/* Extra CA certificates trusted for DPS and the hub, on top of the
	 * system store: a PEM file (under --root), or NULL. */
	char *trust_bundle;
	char *localid_domain; /* NULL when [localid] is absent */

	enum identityd_source source;
	enum identityd_auth auth;
	char *local_gateway_hostname; /* NULL: not nested */
	/* manual */
	char *iothub_hostname;
	char *device_id;
	/* DPS */
	char *global_endpoint; /* as written */
	char *dps_base_url;    /* "https://host[:port]": the path is dropped (§5.1) */
	char *scope_id;
	char *payload_uri;     /* as written, or NULL */
	char *payload_path;    /* the file (under --root), or NULL */
	char *registration_id; /* NULL for X.509 without one: the certificate's CN */
	/* key and certificate ids: the symmetric key (sas), the identity key
	 * pair and certificate (x509) */
	char *key_id;
	char *cert_id;

	/* Where the other daemons answer (under --root). */
	char *keyd_socket;
	char *tpmd_socket;
	char *certd_socket;
	/* certd's configuration, read for preloaded certificates when certd is
	 * not running (identity_cert.c). */
	char *certd_config;
	char *certd_config_dir;

	struct identityd_principal *principals;
	size_t n_principals;
	/* Warnings found while parsing (e.g. a second daemon principal), to be
	 * logged once by the daemon. */
	char **warnings;
	size_t n_warnings;
};

/* Read the identityd settings from a merged configuration. Paths in it
 * (homedir, payload, trust bundle, sockets) are looked up under root
 * (NULL or "/" for none). Errors name the file, line and column:
 *   "FILE:7:10: provisioning.source: expected one of "manual", "dps",
 *    "none", got "dsp""
 * Returns 0 and *ret (identityd_settings_free), -EINVAL, -ENOMEM. */
int identityd_settings_parse(const struct daemon_config *c, const char *root,
			     struct identityd_settings **ret, struct err *e);
void identityd_settings_free(struct identityd_settings *s);
DEFINE_CLEANUP_FUNC(struct identityd_settings *, identityd_settings_free)
#define _cleanup_identityd_settings_ _cleanup_(identityd_settings_freep)

/* A digest of the settings that decide which registration the device
 * makes (source, endpoint, scope, registration id, attestation, manual
 * hub and device): 64 lowercase hex digits in ret (65 bytes). */
int identityd_settings_provisioning_digest(const struct identityd_settings *s, char ret[65]);

/* "symmetric_key" | "x509" | "tpm" (DPS) or "sas" | "x509" (manual). */
const char *identityd_auth_name(const struct identityd_settings *s);
const char *identityd_reprovisioning_name(enum identityd_reprovisioning m);

/* ---- state files (identityd_state.c) ----------------------------------- */

/* device_info (§4.3). */
struct identityd_device_info {
	char *hub_name;
	char *local_gateway_hostname;
	char *device_id;
};

void identityd_device_info_clear(struct identityd_device_info *di);

/* Serialize as aziot writes it:
 *   hub_name = "..."\nlocal_gateway_hostname = "..."\ndevice_id = "..."\n
 * Returns 0, -EINVAL (not UTF-8), -ENOMEM. */
int identityd_device_info_format(const struct identityd_device_info *di, struct buf *out);

/* Parse the content of a device_info file. Returns 0 and *ret (cleared
 * with identityd_device_info_clear), 1 for the literal "unprovisioned"
 * (no device; *ret untouched), -EBADMSG with a sentence for anything else
 * (not TOML, a key missing, not a string, empty), -ENOMEM. */
int identityd_device_info_parse(const char *text, size_t len, const char *name,
				struct identityd_device_info *ret, struct err *e);

/* <homedir>/device_info: read (0, 1 unprovisioned, -ENOENT absent,
 * -EBADMSG invalid, other errnos of reading), write (atomically, mode
 * 0600), remove (absent is fine). */
int identityd_device_info_read(const char *homedir, struct identityd_device_info *ret,
			       struct err *e);
int identityd_device_info_write(const char *homedir, const struct identityd_device_info *di,
				struct err *e);
int identityd_device_info_remove(const char *homedir, struct err *e);

/* <homedir>/edgeid_provisioning: the digest of the provisioning settings
 * the device_info was made with (an edgeid file; aziot has none, so a
 * device taken over from aziot has none either). Read: 0 and the digest,
 * -ENOENT, other errnos. */
int identityd_digest_read(const char *homedir, char ret[65], struct err *e);
int identityd_digest_write(const char *homedir, const char digest[65], struct err *e);

/* ---- SAS tokens (identityd_sas.c) --------------------------------------- */

/* aziot's token lifetime: 30 s. */
#define IDENTITYD_SAS_LIFETIME 30

/* resource_uri of §5.5: audience lowercased (ASCII), then percent-encoded
 * with uppercase escapes for control characters, space, '"', '<', '>',
 * '`', '#', '?', '{', '}', '=' and every byte >= 0x80; '/' stays. Appends
 * to out. Returns 0, -E2BIG, -ENOMEM. */
int identityd_sas_resource(const char *audience, struct buf *out);

/* The token, appended to out:
 *   "SharedAccessSignature sr=" resource "&sig=" form_urlencode(b64(sig))
 *   "&se=" expiry ["&skn=" skn]
 * Returns 0, -E2BIG, -ENOMEM. */
int identityd_sas_token(const char *resource, uint64_t expiry, const uint8_t sig[32],
			const char *skn, struct buf *out);

/* Computes HMAC-SHA256 over msg with the device's key wherever it lives
 * (keyd, the TPM). Returns 0 or a negative errno with a sentence. */
typedef int (*identityd_sign_fn)(void *ctx, const void *msg, size_t len, uint8_t ret[32],
				 struct err *e);

/* Build the whole token for audience, expiring at now + 30 s, signed by
 * sign(ctx, resource "\n" expiry). now 0 means time(NULL). */
int identityd_sas_build(const char *audience, const char *skn, uint64_t now, identityd_sign_fn sign,
			void *ctx, struct buf *out, struct err *e);

/* ---- the identity certificate (identity_cert.c) ---------------------------- */

/* The certificate chain (leaf first) of cert_id: from certd when it runs;
 * when it does not (its socket is absent or refuses), from the file its
 * configuration preloads under that id; a "file://" URI in cert_id is read
 * directly. Returns 0 and *ret (sk_X509_pop_free), or a negative errno
 * with a sentence. */
int identity_cert_load(const struct identityd_settings *s, const char *cert_id,
		       STACK_OF(X509) * *ret, struct err *e);

/* The subject CN of cert, malloc'd, or NULL (none, or -ENOMEM). */
char *identity_cert_common_name(X509 *cert);

/* ---- HTTPS to the cloud (identityd_cloud.c) -------------------------------- */

struct identityd_cloud {
	struct http_client *http;
	const char *ca_file; /* the trust bundle, or NULL */
	const char *ca_dir;  /* the system store's hashed directory with a bundle */
	unsigned timeout_ms;
	unsigned retries;
	/* TLS client certificate (X.509), borrowed */
	X509 *cert;
	STACK_OF(X509) * chain;
	EVP_PKEY *key;
	/* Sleep for ms (tests replace it); NULL: nanosleep. */
	void (*sleep_ms)(unsigned ms);
};

/* Set up c for s. Returns 0 or -ENOMEM. */
int identityd_cloud_init(struct identityd_cloud *c, const struct identityd_settings *s);
void identityd_cloud_clear(struct identityd_cloud *c);

/* Send req (TLS settings come from c) with aziot's rules: each attempt
 * bounded by cloud_timeout_sec; transport failures (and timeouts) retried
 * cloud_retries times, 1 s, 2 s, 4 s... apart; a 429 waits its
 * Retry-After (1 s to 300 s), or aziot's 60/120/180/300 s schedule, at
 * most 4 times. Returns 0 with a response of any other status, or the
 * negative errno and sentence of the last transport failure (then
 * *ret_resp is empty). A 429 after the last retry is returned as a
 * response. */
int identityd_cloud_perform(struct identityd_cloud *c, const struct http_client_request *req,
			    struct http_client_response *ret_resp, struct err *e);

/* True when a transport errno means the service could not be reached in
 * time (connect, DNS, timeout, reset): the "network" errors of §5.6. */
bool identityd_cloud_is_network_error(int r);

/* The message of a DPS or hub error body ({"message"|"errorMessage"|
 * "Message": ...}), with its code when there is one, into buf (n bytes);
 * the status text when the body has none. Returns buf. */
const char *identityd_cloud_error_text(const struct http_client_response *resp, char *buf,
				       size_t n);

/* ---- one provisioning job (identityd_provision.c, identityd_dps.c,
 *      identityd_hub.c) ---------------------------------------------------- */

enum identityd_fault {
	IDENTITYD_FAULT_NONE,
	/* DPS or the hub could not be reached (connect, DNS, TLS, timeout,
	 * 5xx, 429 after its retries): try again later */
	IDENTITYD_FAULT_NETWORK,
	/* the service refused the device in a way that may change (401: an
	 * enrollment not created yet, a key or certificate not yet right) */
	IDENTITYD_FAULT_REFUSED,
	/* nothing will change without the operator: a disabled enrollment, an
	 * unknown ID scope, a malformed request, bad settings */
	IDENTITYD_FAULT_PERMANENT,
	/* keyd, tpmd or certd failed or cannot be reached */
	IDENTITYD_FAULT_LOCAL,
};

/* What the job works with; set up by identityd_job_context_init. */
struct identityd_job_context {
	const struct identityd_settings *s;
	struct identityd_cloud cloud;
	struct local_client *keyd;
	struct local_client *tpmd;
	char *key_handle;       /* keyd handle of the device key (sas, x509) */
	STACK_OF(X509) * certs; /* x509: leaf first */
	STACK_OF(X509) * chain; /* x509: certs after the leaf (borrowed from certs) */
	EVP_PKEY *pkey;         /* x509: the keyd-held key */
	char *registration_id;  /* DPS: configured, or the certificate's CN */
};

int identityd_job_context_init(struct identityd_job_context *ctx,
			       const struct identityd_settings *s, enum identityd_fault *ret_fault,
			       struct err *e);
void identityd_job_context_clear(struct identityd_job_context *ctx);

/* The SAS signer for the device's key (keyd HMAC or tpmd). */
int identityd_job_sign(void *ctx, const void *msg, size_t len, uint8_t ret[32], struct err *e);

struct identityd_dps_result {
	char *assigned_hub;
	char *device_id;
};

/* Register with DPS (§5.2) and wait for the assignment. For TPM the final
 * authentication key is imported into tpmd. Returns 0 and *ret (clear
 * with identityd_dps_result_clear), or a negative errno, one sentence in e
 * ("DPS refused registration 'dev1' in ID scope '0ne..': the enrollment is
 * disabled") and the fault. */
int identityd_dps_register(struct identityd_job_context *ctx, struct identityd_dps_result *ret,
			   enum identityd_fault *ret_fault, struct err *e);
void identityd_dps_result_clear(struct identityd_dps_result *r);

enum identityd_hub_outcome {
	IDENTITYD_HUB_ACCEPTED,
	IDENTITYD_HUB_REFUSED,     /* 401, 403 or 404: not this device, or not its key */
	IDENTITYD_HUB_UNREACHABLE, /* network, 5xx, 429 */
	IDENTITYD_HUB_ERROR,       /* any other answer */
};

/* Prove the identity works: GET /devices/{id}/messages/deviceBound on the
 * gateway host with the device's credential (SAS for sas and TPM, the TLS
 * client certificate for X.509). A sentence in e for anything but
 * ACCEPTED. */
enum identityd_hub_outcome identityd_hub_check(struct identityd_job_context *ctx, const char *hub,
					       const char *gateway, const char *device_id,
					       struct err *e);

/* ---- module identities in the hub (identityd_hub.c) -------------------- */

/* The device a module call is for. */
struct identityd_hub_device {
	const char *hub;     /* the hub's name: the SAS audience */
	const char *gateway; /* where the requests go (the hub, or a parent) */
	const char *device_id;
};

enum identityd_hub_module_op {
	IDENTITYD_HUB_MODULE_LIST,   /* GET .../modules: a JSON array */
	IDENTITYD_HUB_MODULE_GET,    /* GET .../modules/{id}: a Module */
	IDENTITYD_HUB_MODULE_CREATE, /* PUT {"moduleId","deviceId"}, no If-Match */
	IDENTITYD_HUB_MODULE_UPDATE, /* PUT with "authentication", If-Match: * */
	IDENTITYD_HUB_MODULE_DELETE, /* DELETE, If-Match: * */
};

/* One call of aziot's hub client (hub-protocol.md §7) on the modules of
 * dev, with the device's credential from ctx. module_id is ignored for
 * LIST; authentication (borrowed) is the object UPDATE sends, e.g.
 * {"symmetricKey":{"primaryKey":..,"secondaryKey":..},"type":"sas"}.
 * Returns 0 with *ret (the caller's; a Module object, an array of them
 * for LIST, NULL for DELETE; ret may be NULL), or a negative errno and a
 * sentence naming the hub, the call and the hub's message:
 *   -ENOENT   the hub answered 404 (no such module, or device)
 *   -EACCES   401 or 403: the hub refused the device's credential
 *   -EAGAIN   429 after the retries, or 5xx: aziot's network error
 *   -EPROTO   any other status
 *   -EBADMSG  a 2xx answer that is not a Module (or a list of them)
 *   transport errnos of identityd_cloud_perform, signing errnos. */
int identityd_hub_module(struct identityd_job_context *ctx, const struct identityd_hub_device *dev,
			 enum identityd_hub_module_op op, const char *module_id,
			 const json_t *authentication, json_t **ret, struct err *e);

/* The job's input, from the parent. */
struct identityd_job {
	/* the identity from device_info (NULL fields when none) */
	struct identityd_device_info backup;
	bool have_backup;
	/* register with DPS even with a backup; the backup is then only kept
	 * when DPS cannot be reached (AlwaysOnStartup, changed settings) */
	bool force_dps;
};

/* The job's outcome, sent back to the parent as one JSON object. */
struct identityd_job_result {
	bool ok;
	/* ok: the identity */
	char *hub_name;
	char *gateway;
	char *device_id;
	char *key_handle; /* NULL for TPM */
	bool from_dps;    /* registered with DPS in this job (else device_info or config) */
	bool hub_verified;
	char *registration_id; /* DPS: the one used */
	/* a failure (!ok), or a warning (ok: e.g. the hub was unreachable) */
	char *error;
	enum identityd_fault fault;
	bool dps_error; /* the failure came from DPS (aziot: "DPS client error") */
};

void identityd_job_result_clear(struct identityd_job_result *r);
json_t *identityd_job_result_to_json(const struct identityd_job_result *r);
/* Returns 0, -EBADMSG (with a sentence), -ENOMEM. */
int identityd_job_result_from_json(const json_t *j, struct identityd_job_result *ret,
				   struct err *e);

/* Run the job to its end, blocking: the backup verified against the hub
 * (and replaced through DPS when the hub refuses it), or a DPS
 * registration, or the manual identity; then the device key's handle.
 * Fills *ret; never fails beyond what ret says. */
void identityd_job_run(const struct identityd_settings *s, const struct identityd_job *job,
		       struct identityd_job_result *ret);

/* ---- module identities (identityd_modules.c) ------------------------------ */

/* What identityd.c lends the module API: its settings, the device identity
 * (NULL while there is none) and its event loop. All borrowed, valid until
 * the handler returns. Defined in identityd.c. */
struct identityd_state_view {
	const struct identityd_settings *s;
	const struct identityd_job_result *device;
	struct event_base *base;
};
void identityd_state_view(void *state, struct identityd_state_view *ret);
/* GET /identities/identity as identityd.c answers a caller that is not a
 * module: the device identity, or a refusal. Defined in identityd.c. */
int identityd_get_caller_identity(struct daemon_request *req, void *state);

/* The daemon_handler_fn of each route (state is identityd.c's):
 *   GET    /identities/modules?type=aziot       identityd_modules_list
 *   POST   /identities/modules                  identityd_modules_create
 *   GET    /identities/modules/{moduleId}?type= identityd_modules_get
 *   PUT    /identities/modules/{moduleId}?type= identityd_modules_update
 *   DELETE /identities/modules/{moduleId}?type= identityd_modules_delete
 *   GET    /identities/identity                 identityd_modules_get_caller
 * The last answers a host process's own module and leaves every other
 * caller to identityd_get_caller_identity. */
int identityd_modules_list(struct daemon_request *req, void *state);
int identityd_modules_create(struct daemon_request *req, void *state);
int identityd_modules_get(struct daemon_request *req, void *state);
int identityd_modules_update(struct daemon_request *req, void *state);
int identityd_modules_delete(struct daemon_request *req, void *state);
int identityd_modules_get_caller(struct daemon_request *req, void *state);

/* Fork a child that reports to its parent on a pipe, as identityd runs
 * whatever blocks on the network. In the child (returns 0): signals at
 * their defaults and unblocked, every fd closed but *ret_fd (the pipe's
 * write end, O_CLOEXEC), killed when the parent dies. In the parent
 * (returns 1): *ret_pid the child, *ret_fd the read end, non-blocking.
 * Returns a negative errno, with nothing left behind, when the pipe or the
 * fork fails. */
int identityd_fork_reporter(pid_t *ret_pid, int *ret_fd);

/* Where aziot backs a module up (§4.3):
 *   homedir/modules/<sha256hex(hub)>-<sha256hex(device_id)>
 *     /<ASCII letters and digits of module_id>-<sha256hex(module_id)>
 * module_id NULL: the device's directory. Returns 0 and *ret (caller
 * frees), -ENOMEM. */
int identityd_module_backup_path(const char *homedir, const char *hub, const char *device_id,
				 const char *module_id, char **ret);
/* The backup of a hub Module: moduleId, managedBy, deviceId, generationId
 * in that order (aziot's Module), absent or null ones left out, never the
 * keys. Caller's; NULL on -ENOMEM. */
json_t *identityd_module_backup_json(const json_t *module);
/* The Identity of a hub Module (§2.3):
 *   {"type":"aziot","spec":{"hubName","gatewayHost","deviceId","moduleId",
 *    "genId"(when known),"auth":{"type":"sas","keyHandle"}(with a handle)}}
 * Caller's; NULL on -ENOMEM. */
json_t *identityd_module_identity(const struct identityd_hub_device *dev, const json_t *module,
				  const char *key_handle);

#endif
