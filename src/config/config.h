/* SPDX-License-Identifier: MIT */
/*
 * The aziot super-config (/etc/aziot/config.toml) as typed C structures.
 *
 * One struct edgeid_config holds everything `aziotctl config apply` and
 * `iotedge config apply` accept: the identity-service keys (provisioning,
 * certificate issuance, keys, TPM, throttling) and the IoT Edge keys
 * (agent, edge CA, Moby runtime, ...). config_parse() fills defaults, so a
 * reader never has to know them; every error a user can make comes back as
 * one line "FILE:LINE:COL: key.path: what was expected, got what".
 *
 * Secrets (symmetric keys, passwords, PINs inside PKCS#11 URIs, the
 * connection string) live in ordinary strings of this structure; every
 * string and byte array is wiped when config_free() releases it.
 *
 * config_plan_build() splits a parsed config into the per-daemon files of
 * the aziot schemas (keyd, certd, identityd, tpmd, edged) and the secret
 * key files; config_plan_write() writes them. config_show_render() prints
 * the effective configuration with secrets masked.
 */
#ifndef EDGEID_CONFIG_H
#define EDGEID_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "common/buf.h"
#include "common/err.h"

#define CONFIG_DEFAULT_PATH "/etc/aziot/config.toml"

#define CONFIG_CLOUD_TIMEOUT_MIN 70
#define CONFIG_CLOUD_TIMEOUT_DEFAULT 70
#define CONFIG_CLOUD_RETRIES_DEFAULT 1
#define CONFIG_MAX_REQUESTS_DEFAULT 10
#define CONFIG_EXPIRY_DAYS_DEFAULT 30
#define CONFIG_EDGE_CA_EXPIRY_DAYS_DEFAULT 90
#define CONFIG_AUTH_KEY_INDEX_DEFAULT 0x100
#define CONFIG_AUTH_KEY_INDEX_MAX 0x7FFFFF
#define CONFIG_TCTI_DEFAULT "device"
#define CONFIG_IOTEDGE_MANAGEMENT_MAX_REQUESTS_DEFAULT 50
#define CONFIG_IOTEDGE_WORKLOAD_MAX_REQUESTS_DEFAULT 10
#define CONFIG_AGENT_IMAGE_DEFAULT "mcr.microsoft.com/azureiotedge-agent:1.6"
#define CONFIG_CONNECT_WORKLOAD_DEFAULT "unix:///var/run/iotedge/workload.sock"
#define CONFIG_CONNECT_MANAGEMENT_DEFAULT "unix:///var/run/iotedge/mgmt.sock"
#define CONFIG_LISTEN_WORKLOAD_DEFAULT "fd://aziot-edged.workload.socket"
#define CONFIG_LISTEN_MANAGEMENT_DEFAULT "fd://aziot-edged.mgmt.socket"
#define CONFIG_MOBY_URI_DEFAULT "unix:///var/run/docker.sock"
#define CONFIG_MOBY_NETWORK_DEFAULT "azure-iot-edge"

/* Where apply puts an inline symmetric key (the raw bytes), and the URI
 * keyd is given for it. */
#define CONFIG_SECRETS_DIR "/var/secrets/aziot/keyd"
#define CONFIG_DEVICE_ID_KEY_PATH CONFIG_SECRETS_DIR "/device-id"
#define CONFIG_MASTER_KEY_PATH CONFIG_SECRETS_DIR "/imported-master-encryption-key"

/* Key and certificate ids apply generates (as aziotctl/iotedge do). */
#define CONFIG_ID_DEVICE "device-id"
#define CONFIG_ID_DEVICE_TEMP "device-id-temp"
#define CONFIG_ID_LOCAL_CA "local-ca"
#define CONFIG_ID_EST "est-id"
#define CONFIG_ID_EST_TEMP "est-id-temp"
#define CONFIG_ID_EST_BOOTSTRAP "est-bootstrap-id"
#define CONFIG_ID_EST_SERVER_CA_PREFIX "est-server-ca-"
#define CONFIG_ID_MASTER "aziot_identityd_master_id"
#define CONFIG_ID_EDGE_CA "aziot-edged-ca"
#define CONFIG_ID_EDGE_CA_TEMP "aziot-edged-ca-temp"
#define CONFIG_ID_EDGE_TRUST_BUNDLE "aziot-edged-trust-bundle"
#define CONFIG_ID_TRUST_BUNDLE_USER "trust-bundle-user"
#define CONFIG_ID_EDGE_MASTER_KEY "iotedge_master_encryption_id"
#define CONFIG_ID_CONTENT_TRUST_PREFIX "content-trust-"

/* An ordered string map (document order): preloaded keys, EST URLs,
 * [aziot_keys], [agent.env], subject DNs, ... */
struct config_map_entry {
	char *key;
	char *value;
};

struct config_map {
	struct config_map_entry *items;
	size_t n;
};

/* Look a key up; NULL when absent. */
const char *config_map_get(const struct config_map *m, const char *key);

/* A certificate-renewal policy: "<n>%" (0 < n < 100), "<n>min", "<n>day". */
enum config_policy_unit {
	CONFIG_POLICY_PERCENT,
	CONFIG_POLICY_MINUTES,
	CONFIG_POLICY_DAYS,
};

struct config_policy {
	enum config_policy_unit unit;
	uint64_t value;
};

/* Parse a policy string. 0 or -EINVAL. */
int config_policy_parse(const char *s, struct config_policy *ret);
/* Format back to the canonical string ("80%", "90min", "7day"). */
int config_policy_format(const struct config_policy *p, struct buf *out) _nodiscard_;

/* [... .auto_renew]: all three keys are required when the table is present. */
struct config_auto_renew {
	bool rotate_key;
	struct config_policy threshold;
	struct config_policy retry;
};

/* EST authentication, global ([cert_issuance.est.auth]) or per certificate.
 * Pairs are all-or-nothing; when both x509 pairs are given the bootstrap
 * pair wins (as in aziot) and identity_cert/identity_pk are NULL. */
struct config_est_auth {
	char *username;
	char *password; /* secret */
	char *identity_cert;
	char *identity_pk;
	char *bootstrap_identity_cert;
	char *bootstrap_identity_pk;
};

enum config_issuance_method {
	CONFIG_ISSUANCE_EST,
	CONFIG_ISSUANCE_LOCAL_CA,
	CONFIG_ISSUANCE_SELF_SIGNED,
};

/* Cert issuance options (identity_cert tables, edge_ca, local_ca.cert,
 * [cert_issuance.<id>]). */
struct config_issuance {
	enum config_issuance_method method;
	char *common_name;           /* NULL, or ... */
	struct config_map subject;   /* ... a DN table (n == 0 when unused) */
	uint32_t expiry_days;        /* 0 = not given (certd default 30) */
	char *url;                   /* EST only; NULL = [cert_issuance.est.urls] */
	struct config_est_auth auth; /* EST only, per-certificate auth */
	bool has_auto_renew;
	struct config_auto_renew auto_renew;
};

/* A device identity certificate: preloaded files or issued by certd. */
struct config_x509 {
	bool issued;
	char *identity_cert;             /* preloaded: file:// URI */
	char *identity_pk;               /* preloaded: file:// or pkcs11: URI */
	struct config_issuance issuance; /* issued */
};

/* A symmetric key: inline (decoded bytes) or a key URI. */
struct config_symkey {
	bool is_inline;
	uint8_t *key; /* inline: raw bytes, secret */
	size_t key_len;
	char *uri; /* otherwise: file:// or pkcs11: */
};

enum config_source {
	CONFIG_SOURCE_MANUAL,
	CONFIG_SOURCE_DPS,
	CONFIG_SOURCE_NONE,
};

enum config_manual_method {
	CONFIG_MANUAL_SAS,
	CONFIG_MANUAL_X509,
};

enum config_attestation {
	CONFIG_ATTEST_SYMMETRIC_KEY,
	CONFIG_ATTEST_X509,
	CONFIG_ATTEST_TPM,
};

struct config_manual {
	bool from_connection_string;
	char *connection_string; /* secret; as written */
	char *iothub_hostname;
	char *device_id;
	enum config_manual_method method;  /* SAS for a connection string */
	struct config_symkey device_id_pk; /* SAS */
	struct config_x509 x509;           /* X509 */
};

struct config_dps {
	char *global_endpoint;
	char *id_scope;
	char *payload_uri; /* NULL when absent */
	enum config_attestation method;
	/* registration_id: a string, or (x509 only) a subject table whose CN
	 * is the registration id. NULL/empty for x509 without one. */
	char *registration_id;
	struct config_map registration_subject;
	struct config_symkey symmetric_key; /* SYMMETRIC_KEY */
	struct config_x509 x509;            /* X509 */
};

struct config_provisioning {
	enum config_source source;
	struct config_manual manual;
	struct config_dps dps;
};

struct config_max_requests {
	bool present;
	uint32_t keyd, certd, tpmd, identityd;
};

struct config_est {
	bool present;
	char **trusted_certs; /* file:// URIs */
	size_t n_trusted_certs;
	bool has_auth;
	struct config_est_auth auth;
	bool identity_auto_renew_set;
	struct config_auto_renew identity_auto_renew; /* default true/80%/4% */
	struct config_map urls;                       /* "default" and cert ids */
};

struct config_local_ca {
	bool present;
	bool issued;
	char *cert; /* preloaded */
	char *pk;
	struct config_issuance issuance; /* issued */
};

/* [cert_issuance.<id>] entries other than est and local_ca. */
struct config_cert_entry {
	char *id;
	struct config_issuance issuance;
};

/* [preloaded_certs]: a file URI or a list of cert ids. */
struct config_preloaded_cert {
	char *id;
	char *uri;  /* NULL for a list */
	char **ids; /* list */
	size_t n_ids;
};

struct config_tpm {
	char *tcti;
	uint32_t auth_key_index;
	char *endorsement_auth; /* secret; "" by default */
	char *owner_auth;       /* secret; "" by default */
};

enum config_idtype {
	CONFIG_IDTYPE_DEVICE = 1 << 0,
	CONFIG_IDTYPE_MODULE = 1 << 1,
	CONFIG_IDTYPE_LOCAL = 1 << 2,
};

/* [[principal]]: identityd principals (an edgeid extension of the
 * super-config; aziot expects these in identityd/config.d instead). */
struct config_principal {
	uint32_t uid;
	char *name;
	bool has_idtype;
	unsigned idtype; /* CONFIG_IDTYPE_* */
	bool has_localid;
	bool localid_server; /* attributes = "server" (default "client") */
};

enum config_reprovisioning {
	CONFIG_REPROV_DYNAMIC,
	CONFIG_REPROV_ALWAYS_ON_STARTUP,
	CONFIG_REPROV_ON_ERROR_ONLY,
};

/* An opaque TOML subtree kept for output (agent createOptions, network
 * ipam): see config_value.h. */
struct config_value;

struct config_agent {
	char *name;
	char *type;
	char *image_pull_policy; /* "on-create" | "never" */
	char *image;
	struct config_value *create_options; /* a table, never NULL */
	bool has_auth;
	char *auth_serveraddress;
	char *auth_username;
	char *auth_password; /* secret */
	struct config_map env;
};

enum config_edge_ca_kind {
	CONFIG_EDGE_CA_QUICKSTART,
	CONFIG_EDGE_CA_ISSUED,
	CONFIG_EDGE_CA_PRELOADED,
};

struct config_edge_ca {
	enum config_edge_ca_kind kind;
	/* QUICKSTART */
	uint32_t expiry_days;
	char *common_name;
	struct config_map subject;
	/* PRELOADED */
	char *cert;
	char *pk;
	/* ISSUED */
	struct config_issuance issuance;
	/* QUICKSTART (always set) and ISSUED (when given) */
	bool has_auto_renew;
	struct config_auto_renew auto_renew;
};

struct config_moby {
	char *uri;
	char *network;
	bool network_is_table;
	bool has_ipv6;
	bool ipv6;
	struct config_value *ipam;                /* NULL when absent */
	struct config_map content_trust_ca_certs; /* hostname -> file URI */
};

struct config_image_gc {
	bool present;
	bool enabled;
	char *cleanup_recurrence;
	char *image_age_cleanup_threshold;
	char *cleanup_time;
};

struct edgeid_config {
	char *hostname; /* default gethostname() */
	bool hostname_default;
	char *local_gateway_hostname; /* alias parent_hostname; NULL = not nested */
	uint64_t cloud_timeout_sec;
	uint32_t cloud_retries;
	bool prefer_module_identity_cache;
	struct config_max_requests aziot_max_requests;
	struct config_provisioning provisioning;
	bool has_localid;
	char *localid_domain;
	struct config_map aziot_keys; /* pkcs11_lib_path, pkcs11_base_slot */
	struct config_map preloaded_keys;
	struct config_est est;
	struct config_local_ca local_ca;
	struct config_cert_entry *cert_issuance;
	size_t n_cert_issuance;
	struct config_preloaded_cert *preloaded_certs;
	size_t n_preloaded_certs;
	struct config_tpm tpm;
	struct config_principal *principals;
	size_t n_principals;

	/* IoT Edge */
	char *trust_bundle_cert;
	char *manifest_trust_bundle_cert; /* accepted; not used (as in IoT Edge) */
	bool allow_elevated_docker_permissions;
	enum config_reprovisioning auto_reprovisioning_mode;
	char *imported_master_encryption_key; /* absolute path */
	char *additional_info;                /* file:// URI */
	uint32_t iotedge_management_max_requests;
	uint32_t iotedge_workload_max_requests;
	struct config_agent agent;
	char *connect_workload_uri;
	char *connect_management_uri;
	char *listen_workload_uri;
	char *listen_management_uri;
	char *listen_min_tls_version; /* NULL when absent */
	bool watchdog_infinite;
	uint32_t watchdog_max_retries;
	struct config_edge_ca edge_ca;
	struct config_moby moby;
	struct config_image_gc image_gc;

	/* Warnings ("FILE:LINE:COL: warning: key: text"), sorted by position:
	 * unknown keys, insecure EST URLs, settings that are ignored. */
	char **warnings;
	size_t n_warnings;
};

/* Parse and validate a super-config held in memory (len bytes; need not be
 * NUL-terminated). filename appears in messages exactly as given.
 * Returns 0 and a config owned by the caller (config_free), or
 *   -EINVAL  syntax or validation error, one line in e
 *   -E2BIG   larger than TOML_MAX_DOCUMENT
 *   -ENOMEM
 * Missing optional keys get their defaults; hostname defaults to
 * gethostname(). */
int config_parse(const char *text, size_t len, const char *filename, struct edgeid_config **ret,
		 struct err *e);

/* Read path and config_parse() it. A file that cannot be read gives the
 * negative errno and "PATH: cannot read: <strerror>" in e. */
int config_load(const char *path, struct edgeid_config **ret, struct err *e);

/* Wipe and free everything; accepts NULL. */
void config_free(struct edgeid_config *c);
static inline void config_freep(struct edgeid_config **c)
{
	config_free(*c);
}
#define _cleanup_config_ _cleanup_(config_freep)

/* Names for messages and output. */
const char *config_source_name(enum config_source s);
const char *config_attestation_name(enum config_attestation a);
const char *config_issuance_method_name(enum config_issuance_method m);
const char *config_reprovisioning_name(enum config_reprovisioning m);

/* ---- config apply ---------------------------------------------------- */

enum config_user {
	CONFIG_USER_KEYD,      /* aziotks */
	CONFIG_USER_CERTD,     /* aziotcs */
	CONFIG_USER_IDENTITYD, /* aziotid */
	CONFIG_USER_TPMD,      /* aziottpm */
	CONFIG_USER_EDGED,     /* iotedge */
	CONFIG_USER_ROOT,      /* root-owned parent directories */
	CONFIG_USER_COUNT,
};

struct config_users {
	uid_t uid[CONFIG_USER_COUNT];
	gid_t gid[CONFIG_USER_COUNT];
	const char *name[CONFIG_USER_COUNT]; /* owner names for messages */
	bool unprivileged;                   /* every user is the caller (not running as root) */
	char caller[64];                     /* the caller's name when unprivileged */
};

/* The service user names ("aziotks", ...; "root"). */
const char *config_user_name(enum config_user u);

/* Resolve the service users. As root: getpwnam() of each, and a missing
 * user is -ENOENT with a message naming it and scripts/install-deps.sh.
 * Otherwise every user (and root) is the caller's uid/gid and
 * ret->unprivileged is set. */
int config_users_resolve(struct config_users *ret, struct err *e);

struct config_out_dir {
	char *path; /* absolute, without the root prefix */
	mode_t mode;
	enum config_user owner;
	bool fix_existing; /* set mode/owner even when it exists */
};

struct config_out_file {
	char *path; /* absolute, without the root prefix */
	mode_t mode;
	enum config_user owner;
	uint8_t *data; /* secret-wiped on free */
	size_t len;
};

/* Everything apply writes, in the order it writes it. */
struct config_plan {
	struct config_out_dir *dirs;
	size_t n_dirs;
	struct config_out_file *files;
	size_t n_files;
};

/* Split c into the per-daemon files. source_path is named in each
 * generated file's header. root (NULL or "" for /) prefixes the path of
 * imported_master_encryption_key, which is read here. users supplies the
 * uids written into [[principal]] tables.
 * Returns 0 and the plan (config_plan_free), -EINVAL with a message (e.g.
 * the imported master key cannot be read), -ENOMEM. */
int config_plan_build(const struct edgeid_config *c, const struct config_users *users,
		      const char *source_path, const char *root, struct config_plan **ret,
		      struct err *e);

/* The file of the plan at this absolute path, or NULL. */
const struct config_out_file *config_plan_find(const struct config_plan *p, const char *path);

/* Create the directories and write the files under root (NULL or "" for
 * /), atomically, with the owners from users. Each file written is
 * reported on out as "wrote PATH (OWNER, MODE)" when out is non-NULL.
 * Returns 0 or the first failure's negative errno with a message. */
int config_plan_write(const struct config_plan *p, const char *root,
		      const struct config_users *users, FILE *out, struct err *e);

/* Print what config_plan_write would do, writing nothing. */
int config_plan_describe(const struct config_plan *p, const char *root,
			 const struct config_users *users, FILE *out);

void config_plan_free(struct config_plan *p);
static inline void config_plan_freep(struct config_plan **p)
{
	config_plan_free(*p);
}
#define _cleanup_config_plan_ _cleanup_(config_plan_freep)

/* ---- config show ----------------------------------------------------- */

/* Add to root (aziot-edged's table) the settings edged reads as config.toml
 * gives them: [iotedge_max_requests], [agent] (with its env and registry
 * auth), [connect], [listen] and [watchdog]. mask_secrets replaces the agent
 * registry password with "***" (for display); apply passes false. Values
 * are copied; root keeps owning them. Returns 0 or -ENOMEM. */
int config_show_edge_runtime(struct config_value *root, const struct edgeid_config *c,
			     bool mask_secrets) _nodiscard_;

/* Set in moby (edged's [moby_runtime]) uri and network (a string, or a
 * table with name, ipv6 and ipam), as config.toml gives them. Returns 0
 * or -ENOMEM. */
int config_show_moby_network(struct config_value *moby, const struct edgeid_config *c) _nodiscard_;

/* Add to root (edged's table) [image_garbage_collection] with its four
 * settings. Returns 0 or -ENOMEM. */
int config_show_image_gc(struct config_value *root, const struct edgeid_config *c) _nodiscard_;

/* Append to arr (identityd's [[principal]] array) one table for pr: uid,
 * name, idtype (when given) and localid (when given), as the super-config
 * spells them. Returns 0 or -ENOMEM. */
int config_show_principal(struct config_value *arr, const struct config_principal *pr) _nodiscard_;

/* Append the effective configuration (defaults filled in) to out, as TOML
 * or (json) JSON. Symmetric keys, passwords, TPM hierarchy auth values,
 * SharedAccessKey and pin-value in PKCS#11 URIs are replaced by "***".
 * Returns 0, -ENOMEM or -E2BIG. */
int config_show_render(const struct edgeid_config *c, bool json, struct buf *out) _nodiscard_;

#endif
